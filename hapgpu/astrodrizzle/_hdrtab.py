"""The ``HDRTAB`` extension of AstroDrizzle products: input header keywords, one row per chip.

AstroDrizzle appends to every drizzled product a binary table, ``EXTNAME = 'HDRTAB'``, that
records header keywords of the inputs: one row per input chip (SCI extension) in drizzle order,
one column per keyword named in the instrument's header rules without a combining function
(drizzlepac ``outputimage.getTemplates`` -> fitsblender ``get_blended_headers``). A row's value
of a keyword is read from the exposure's PRIMARY header, else from the chip's SCI header (the
two headers concatenated, the first occurrence winning).

The column lists per instrument are data: ``hapgpu/data/hdrtab_columns.json`` (fitsblender's own
rules, what AstroDrizzle uses without a rules file: the ``"default"`` rules) and
``hapgpu/data/header_rules_mvm.json`` (drizzlepac's ``<instrument>_mvm_header_hap.rules``, which
``runmultihap`` gives AstroDrizzle for every sky-cell layer: the ``"mvm"`` rules, selected by the
AstroDrizzle parameter ``header_rules``). The MVM rules also drop keywords from the product's
primary header (:func:`apply_primary_rules`). Column types
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

__all__ = ["HDRTAB_EXTNAME", "HEADER_RULES", "hdrtab_columns", "build_hdrtab", "apply_primary_rules",
           "table_hdu", "table_fields"]

#: EXTNAME of the table (AstroDrizzle writes no EXTVER card for it).
HDRTAB_EXTNAME = "HDRTAB"

# FITS binary-table format of each numpy kind a column's values can take.
_FORMATS = {"b": "L", "i": "K", "f": "D", "c": "M"}


#: Names of the header rule sets (AstroDrizzle parameter ``header_rules``) -> data file.
HEADER_RULES = {"default": "hdrtab_columns.json", "mvm": "header_rules_mvm.json"}


@lru_cache(maxsize=None)
def _column_sets(rules: str = "default") -> dict:
    if rules not in HEADER_RULES:
        raise InvalidInputError(f"header rules {rules!r}: must be one of {', '.join(HEADER_RULES)}")
    text = resources.files("hapgpu").joinpath("data", HEADER_RULES[rules]).read_text("utf-8")
    return json.loads(text)


def _rule_set(instrument: str, rules: str) -> dict:
    """The rule set of one instrument: its own in ``rules``, else the default rules' (or HST's)."""
    own = _column_sets(rules)["instruments"].get(instrument)
    if own is not None:
        return own
    default = _column_sets("default")
    return default["instruments"].get(instrument) or default["instruments"][default["fallback"]]


def hdrtab_columns(instruments: Sequence[str], rules: str = "default") -> list[str]:
    """HDRTAB column names for inputs of the given instruments, in column order.

    Parameters
    ----------
    instruments : sequence of str
        ``INSTRUME`` values of the inputs (any case), in input order.
    rules : {"default", "mvm"}
        The rule set (:data:`HEADER_RULES`): fitsblender's instrument rules, or drizzlepac's
        MVM layer rules (``<instrument>_mvm_header_hap.rules``; WFC3, ACS and WFPC2, which
        record ``WCSTYPE`` where the default rules record ``SKYCELL``).

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
        ``instruments`` is empty; ``rules`` is not a known rule set.
    """
    if not instruments:
        raise InvalidInputError("HDRTAB: no input instrument given")
    columns: list[str] = []
    seen: set[str] = set()
    for instrument in dict.fromkeys(str(i).strip().upper() for i in instruments):
        for name in _rule_set(instrument, rules)["columns"]:
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


def _column(keyword: str, values: list, sources: Sequence[str]) -> np.ndarray:
    """One column's values (None = missing) as the array it is stored from, typed as described
    in the module: bool (``L``), int64 (``K``), float64 (``D``), complex128 (``M``) or ASCII
    bytes ``S<n>`` (``nA``, ``n`` the longest text, at least 1)."""
    array = np.asarray([np.nan if v is None else v for v in values])
    kind = array.dtype.kind
    if kind == "U":  # header text is ASCII
        width = max(array.dtype.itemsize // np.dtype("U1").itemsize, 1)
        try:
            return array.astype(f"S{width}")
        except UnicodeEncodeError as exc:
            raise InvalidInputError(f"{sources[0]}: {keyword} values {values!r} are not ASCII text") from exc
    if kind not in _FORMATS:
        raise InvalidInputError(f"{sources[0]}: {keyword} values {values!r} have no common FITS "
                                "table type (logical, integer, real, complex or text)")
    return array


#: numpy kinds :func:`table_hdu` stores (astropy gives bool ``L``, integers ``I``/``J``/``K``,
#: reals ``E``/``D``, complex ``C``/``M`` and bytes ``S<n>`` ``nA``).
_TABLE_KINDS = ("b", "i", "f", "c", "S")


def table_hdu(fields: Sequence[tuple[str, np.ndarray]]):
    """A binary table HDU of named columns, made from one record array.

    Parameters
    ----------
    fields : sequence of (str, numpy.ndarray)
        Column name and values, in column order, every array 1-D and of the same length:
        bool (``L``), integer (``I``/``J``/``K``), real (``E``/``D``), complex (``C``/``M``) or
        bytes ``S<n>`` (``nA``), any byte order.

    Returns
    -------
    astropy.io.fits.BinTableHDU
        Without EXTNAME. The same header and table bytes as ``BinTableHDU.from_columns`` of one
        ``fits.Column(name, format, array)`` per field, without the Column objects made and
        copied per column on the way (a rebuilt HDRTAB no longer copies every column of the
        old one through ``ColDefs`` concatenation).

    Raises
    ------
    InvalidInputError
        No field, arrays of different lengths, or a dtype a FITS binary table cannot hold.
    """
    from astropy.io import fits

    fields = list(fields)
    if not fields:
        raise InvalidInputError("a table needs at least one column")
    n_rows = len(fields[0][1])
    dtypes = []
    for name, array in fields:
        if array.ndim != 1 or len(array) != n_rows:
            raise InvalidInputError(f"table column {name}: {array.shape} values, expected ({n_rows},)")
        if array.dtype.kind not in _TABLE_KINDS:
            raise InvalidInputError(f"table column {name}: dtype {array.dtype} has no FITS table format")
        dtypes.append((name, array.dtype))
    records = np.empty(n_rows, dtype=dtypes)
    for name, array in fields:
        records[name] = array
    return fits.BinTableHDU(data=records)


def table_fields(hdu) -> list[tuple[str, np.ndarray]] | None:
    """The columns of a binary table HDU as :func:`table_hdu` takes them, or None when a
    column carries more than a name and a plain format (units, scaling, null value,
    dimensions, a repeat count on a number, a variable-length array): such a table is left
    to astropy's own column handling.

    Text columns keep their stored bytes (trailing blanks included), logical ones come back
    as bool, numbers as stored (big-endian when read from a file).
    """
    columns = hdu.columns
    raw = hdu.data.view(np.ndarray) if hdu.data is not None else None
    if raw is None:
        return None
    fields = []
    for column in columns:
        extra = (column.unit, column.null, column.bscale, column.bzero, column.disp, column.dim,
                 column.start, column.coord_type, column.coord_unit)
        if any(v not in (None, "") for v in extra):
            return None
        code = str(column.format)
        if code == "L":
            fields.append((column.name, np.asarray(hdu.data[column.name], dtype=bool)))
        elif code in ("I", "J", "K", "E", "D", "C", "M") or (code.endswith("A") and code[:-1].isdigit()):
            fields.append((column.name, raw[column.name]))
        else:
            return None
    return fields


def build_hdrtab(headers: Sequence[tuple], *, sources: Sequence[str] | None = None, rules: str = "default"):
    """The ``HDRTAB`` binary table of a drizzled product.

    Parameters
    ----------
    headers : sequence of (astropy.io.fits.Header, astropy.io.fits.Header)
        ``(primary, sci)`` headers of every input chip, in drizzle order (inputs in order, each
        input's SCI extensions by EXTVER), as the input files read when the product is written
        (MDRIZSKY from the sky step included). One row each.
    sources : sequence of str, optional
        A label per row for error messages, e.g. ``"a_flc.fits[sci,1]"``.
    rules : {"default", "mvm"}
        The rule set of the columns (:func:`hdrtab_columns`).

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
    fields = [(keyword, _column(keyword, [_cell(p, s, keyword) for p, s in headers], sources))
              for keyword in hdrtab_columns(instruments, rules)]
    table = table_hdu(fields)
    table.header["EXTNAME"] = HDRTAB_EXTNAME
    return table


def _section_keywords(header, title: str) -> list[str]:
    """The keywords fitsblender drops with a primary-header section (``<delete> / TITLE``).

    The title card is the first card whose value holds ``title``; the section runs to the next
    card whose value holds a ``/`` (other than ``'N/A'``) and, as fitsblender
    (``find_keywords_in_section``), the card just before that one is kept (the blank card
    closing a section). A section with no such end (fitsblender then fails) runs to the first
    HISTORY or COMMENT card after it, else to the end; HISTORY and COMMENT cards are never
    dropped.
    """
    cards = header.cards
    values = [str(card.value) for card in cards]
    start = next((i for i, v in enumerate(values) if title in v), None)
    if start is None:
        return []
    end = next((i for i in range(start + 1, len(values))
                if "/" in values[i] and values[i] not in ("N/A", " ", "")), None)
    if end is None:
        end = 1 + next((i for i in range(start + 1, len(values))
                        if cards[i].keyword in ("HISTORY", "COMMENT")), len(values))
    return [card.keyword for card in cards[start + 1:end - 1]
            if card.keyword and card.keyword not in ("HISTORY", "COMMENT")]


def apply_primary_rules(header, instruments: Sequence[str], rules: str = "default"):
    """The first input's primary header as a product's primary header template under ``rules``.

    Parameters
    ----------
    header : astropy.io.fits.Header
        Primary header of the first input (not modified).
    instruments : sequence of str
        ``INSTRUME`` values of the inputs (any case).
    rules : {"default", "mvm"}
        ``"default"``: the header as it is (a copy). ``"mvm"``: drizzlepac's MVM layer rules
        (fitsblender ``KeywordRules.apply`` on the primary header): the sections of
        ``primary_delete_sections`` lose their title card and their keywords (calibration
        switches and reference files), the keywords of ``primary_delete`` are removed
        (``<delete>`` rules and the HDRTAB-only keywords), and those of ``primary_values`` present
        are set to their constant (``PA_V3 = 0``, ...).

    Returns
    -------
    astropy.io.fits.Header
        A new header.

    Raises
    ------
    InvalidInputError
        ``rules`` is not a known rule set.
    """
    out = header.copy()
    if rules == "default":
        return out
    _column_sets(rules)  # an unknown name is refused here
    sets = [_rule_set(i, rules) for i in dict.fromkeys(str(i).strip().upper() for i in instruments)]
    titles = list(dict.fromkeys(t for s in sets for t in s.get("primary_delete_sections", ())))
    doomed = []
    for title in titles:
        doomed += _section_keywords(out, title)
    # the title cards, last first (the indices of earlier cards do not move)
    for index in sorted((i for i, card in enumerate(out.cards)
                         if str(card.value).strip().startswith("/")
                         and any(t in str(card.value) for t in titles)), reverse=True):
        del out[index]
    doomed += [k for s in sets for k in s.get("primary_delete", ())]
    for keyword in dict.fromkeys(doomed):
        while keyword in out:
            del out[keyword]
    for s in sets:
        for keyword, value in s.get("primary_values", {}).items():
            if keyword in out:
                out[keyword] = value
    return out
