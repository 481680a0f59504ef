"""Reading the JSON parameter files users give (custom pars, AstroDrizzle sets, catalog configs)."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import InvalidParameterError

__all__ = ["read_json_object"]


def read_json_object(path, what: str = "parameter file") -> dict:
    """Read a JSON file that must hold one object.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    what : str
        What the file is, for the messages (``"custom parameter file"``).

    Returns
    -------
    dict
        The decoded object.

    Raises
    ------
    InvalidParameterError
        The file cannot be read, is not valid JSON, or does not hold a JSON object; the
        message names the file and the problem.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise InvalidParameterError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidParameterError(f"{what} {path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidParameterError(f"{what} {path}: must hold a JSON object, not "
                                    f"{type(data).__name__}")
    return data
