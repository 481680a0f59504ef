"""The ``HDRTAB`` extension of AstroDrizzle products: input header keywords, one row per chip.

AstroDrizzle appends to every drizzled product a binary table, ``EXTNAME = 'HDRTAB'``, that
records header keywords of the inputs: one row per input chip (SCI extension) in drizzle order,
one column per keyword named in the instrument's header rules without a combining function
(drizzlepac ``outputimage.getTemplates`` -> fitsblender ``get_blended_headers``). A row's value
of a keyword is read from the exposure's PRIMARY header, else from the chip's SCI header (the
two headers concatenated, the first occurrence winning).

The column lists per instrument are data, ``hapgpu/data/hdrtab_columns.json``. Column types
follow the values, as numpy types a list of header values: all logical -> ``L``; integers (and
logicals) -> ``K`` (int64); any real number, or a logical or integer column with a missing value
-> ``D`` (float64, NaN where missing); any string -> ``nA``, ``n`` the longest text, where a number in a string
column is written as its text (a missing value as ``nan``) and then widens the column to 21
(integer), 32 (real) or 5 (logical) characters at least.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources

import numpy as np

from ..errors import InvalidInputError

__all__ = ["HDRTAB_EXTNAME", "hdrtab_columns", "build_hdrtab"]

#: EXTNAME of the table (AstroDrizzle writes no EXTVER card for it).
HDRTAB_EXTNAME = "HDRTAB"

# FITS binary-table format of each numpy kind a column's values can take.
_FORMATS = {"b": "L", "i": "K", "f": "D", "c": "M"}


@lru_cache(maxsize=1)
def _column_sets() -> dict:
    text = resources.files("hapgpu").joinpath("data", "hdrtab_columns.json").read_text("utf-8")
    return json.loads(text)


def hdrtab_columns(instruments: Sequence[str]) -> list[str]:
    """HDRTAB column names for inputs of the given instruments, in column order.

    Parameters
    ----------
    instruments : sequence of str
        ``INSTRUME`` values of the inputs (any case), in input order.

    Returns
    -------
    list of str
        The first instrument's keyword set, followed by every keyword of each later instrument
        not yet present (fitsblender merges the rules of several instruments this way). An
        instrument without a set of its own (e.g. ``COS``) uses the generic ``HST`` set, as
        fitsblender falls back to ``hst_header.rules``.

    Notes
    -----
    Every input's instrument counts here. fitsblender looks only at the rows of its first ``n``
    chips, ``n`` the number of distinct exposures, so for mixed-instrument inputs it can miss
    an instrument; and it prefers any ``*.rules`` file in the working directory to its own.
    Neither is reproduced.

    Raises
    ------
    InvalidInputError
        ``instruments`` is empty.
    """
    if not instruments:
        raise InvalidInputError("HDRTAB: no input instrument given")
    sets = _column_sets()
    columns: list[str] = []
    seen: set[str] = set()
    for instrument in dict.fromkeys(str(i).strip().upper() for i in instruments):
        entry = sets["instruments"].get(instrument) or sets["instruments"][sets["fallback"]]
        for name in entry["columns"]:
            if name not in seen:
                seen.add(name)
                columns.append(name)
    return columns


def _cell(primary, sci, keyword: str):
    """The value of ``keyword`` for one row: PRIMARY first, then SCI; None when absent."""
    from astropy.io.fits.card import Undefined

    for header in (primary, sci):
        if keyword in header:
            value = header[keyword]
            return None if isinstance(value, Undefined) else value
    return None


def _column(keyword: str, values: list, sources: Sequence[str]):
    """One ``fits.Column`` of ``values`` (None = missing), typed as described in the module."""
    from astropy.io import fits

    array = np.asarray([np.nan if v is None else v for v in values])
    kind = array.dtype.kind
    if kind == "U":  # header text is ASCII
        width = max(array.dtype.itemsize // np.dtype("U1").itemsize, 1)
        return fits.Column(name=keyword, format=f"{width}A", array=array)
    if kind not in _FORMATS:
        raise InvalidInputError(f"{sources[0]}: {keyword} values {values!r} have no common FITS "
                                "table type (logical, integer, real, complex or text)")
    return fits.Column(name=keyword, format=_FORMATS[kind], array=array)


def build_hdrtab(headers: Sequence[tuple], *, sources: Sequence[str] | None = None):
    """The ``HDRTAB`` binary table of a drizzled product.

    Parameters
    ----------
    headers : sequence of (astropy.io.fits.Header, astropy.io.fits.Header)
        ``(primary, sci)`` headers of every input chip, in drizzle order (inputs in order, each
        input's SCI extensions by EXTVER), as the input files read when the product is written
        (MDRIZSKY from the sky step included). One row each.
    sources : sequence of str, optional
        A label per row for error messages, e.g. ``"a_flc.fits[sci,1]"``.

    Returns
    -------
    astropy.io.fits.BinTableHDU
        ``EXTNAME = 'HDRTAB'``; columns from :func:`hdrtab_columns` of the rows' ``INSTRUME``
        values, typed as the module describes.

    Raises
    ------
    InvalidInputError
        No rows, a primary header without ``INSTRUME``, or a keyword whose values cannot share
        a FITS column type (the message names the chip).
    """
    from astropy.io import fits

    headers = list(headers)
    if not headers:
        raise InvalidInputError("HDRTAB: no input headers given")
    sources = list(sources) if sources is not None else [f"input chip {i + 1}" for i in range(len(headers))]
    if len(sources) != len(headers):
        raise InvalidInputError(f"HDRTAB: {len(sources)} source labels for {len(headers)} rows")
    instruments = []
    for (primary, _), source in zip(headers, sources):
        if "INSTRUME" not in primary:
            raise InvalidInputError(f"{source}: primary header has no INSTRUME keyword")
        instruments.append(primary["INSTRUME"])
    columns = [_column(keyword, [_cell(p, s, keyword) for p, s in headers], sources)
               for keyword in hdrtab_columns(instruments)]
    table = fits.BinTableHDU.from_columns(columns)
    table.header["EXTNAME"] = HDRTAB_EXTNAME
    return table
