"""Updating a FITS file all at once: the changes are made on a copy that replaces it."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .errors import InvalidInputError

__all__ = ["update_in_copy"]


def update_in_copy(path, work, *, prefix: str = ".hapgpu-update-"):
    """Run ``work(hdul)`` on a copy of ``path`` opened for update, then replace ``path`` by it.

    The copy lies beside the file (same folder, so the rename is atomic); a failure at any
    point leaves ``path`` exactly as it was and removes the copy.

    Parameters
    ----------
    path : str or os.PathLike
        The FITS file.
    work : callable
        ``work(hdul) -> result`` on the open copy (``astropy.io.fits.HDUList``, mode
        ``update``). Returning False discards the copy: ``path`` is left untouched.
    prefix : str
        Name prefix of the temporary copy.

    Returns
    -------
    object
        What ``work`` returned.

    Raises
    ------
    InvalidInputError
        The file cannot be copied, opened, updated or replaced (the message names it).
    """
    from astropy.io import fits

    path = Path(path)
    fd, temp = tempfile.mkstemp(prefix=prefix, suffix=".fits", dir=path.absolute().parent)
    os.close(fd)
    try:
        try:
            shutil.copy2(path, temp)
        except OSError as exc:
            raise InvalidInputError(f"{path}: cannot copy the file for its update ({exc})") from None
        try:
            with fits.open(temp, mode="update", memmap=False) as hdul:
                result = work(hdul)
                if result is not False:
                    hdul.flush()
            if result is not False:
                os.replace(temp, path)
        except OSError as exc:
            raise InvalidInputError(f"{path}: cannot update the file ({exc})") from None
        return result
    finally:
        if os.path.exists(temp):
            os.remove(temp)
