"""Which exposures an SVM run can use, in which order, under which filter name (§1.1, §1.3, §1.4).

* :func:`analyze_exposure` applies drizzlepac's viability rules (``analyze.analyze_data``) to
  one calibrated exposure; :func:`select_viable_rows` screens a poller's rows with it.
* :func:`sort_rows` orders the rows as ``poller_utils.sort_poller_table`` does: exposure time
  ascending, ties by descending ``PHOTFLAM``. The order decides which exposure comes first in
  every product list, hence the reference image of the relative fit and the ``crclean`` flag.
* :func:`determine_filter_name` turns a poller's ``filters`` field into the name used in
  product file names.
* :class:`ExitCode` holds ``runsinglehap``'s exit statuses (drizzlepac's ``analyze.Ret_code``
  plus 1 for any other failure).
"""

from __future__ import annotations

import enum
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from ..errors import InvalidInputError, InvalidParameterError, NoUsableInputError

__all__ = [
    "CAL_TARGETS",
    "CAL_TARGETS_WFPC2",
    "ExitCode",
    "Viability",
    "analyze_exposure",
    "determine_filter_name",
    "read_photflam",
    "select_viable_rows",
    "sort_rows",
]

log = logging.getLogger(__name__)


class ExitCode(enum.IntEnum):
    """Exit statuses of an SVM run (hap-pipeline.md §1.1 step 10).

    ``OK`` also covers an empty poller (nothing to do). ``ERROR`` is any failure not listed.
    ``KEYWORD_UPDATE_PROBLEM``: a product keyword could not be updated.
    ``SBCHRC_DATA``: MVM only, every usable row was ACS/HRC or ACS/SBC.
    ``NO_VIABLE_DATA``: no exposure passed the viability filter, or only grism/prism
    exposures did.
    """

    OK = 0
    ERROR = 1
    KEYWORD_UPDATE_PROBLEM = 15
    SBCHRC_DATA = 55
    NO_VIABLE_DATA = 65


#: Substrings of ``TARGNAME`` marking calibration targets (ACS, WFC3), rule 5.
CAL_TARGETS = ("DARK", "TUNG", "BIAS", "FLAT", "DEUT", "EARTH-CAL")
#: The same for WFPC2 exposures whose ``IMAGETYP`` is not ``EXT``, rule 6.
CAL_TARGETS_WFPC2 = ("INTFLAT", "UVFLAT", "VISFLAT", "KSPOTS", "DARK", "BIAS", "EARTH-CALIB")

_MODES = ("svm", "mvm")


@dataclass(frozen=True)
class Viability:
    """Verdict of the viability filter on one exposure.

    Attributes
    ----------
    ok : bool
        The exposure can be used (drizzlepac's ``doProcess``).
    reason : str
        Why it cannot, as drizzlepac's ``processMsg`` (``KEYWORD=value``, e.g.
        ``OBSTYPE=SPECTROSCOPIC``, or ``SCI data all zeros``); empty when ``ok``.
    warning : str
        Set when the exposure is used but its result may be compromised (``FGSLOCK`` in gyro
        or coarse lock); empty otherwise.
    """

    ok: bool
    reason: str = ""
    warning: str = ""


@dataclass(frozen=True)
class _Facts:
    """The header facts the rules read (drizzlepac's per-instrument keyword choice)."""

    instrument: str
    detector: str
    obstype: str
    drizcorr: str
    mtflag: str
    scan_typ: str
    targname: str
    imagetyp: str
    exptime: float
    fgslock: str
    chinject: str
    sfilter: str


def analyze_exposure(path, *, mode: str = "svm") -> Viability:
    """Apply drizzlepac's viability rules to one calibrated exposure (hap-pipeline.md §1.3).

    Keywords come from the primary header. For WFPC2 the detector is ``PC``, ``OBSTYPE`` is
    ``IMAGING`` when ``IMAGETYP == EXT`` (else ``CAL``) and ``MTFLAG`` is read as a logical;
    ``SCAN_TYP`` and ``FILTER`` are read for WFC3 only, ``CHINJECT`` for WFC3/UVIS only; ACS
    filters are ``FILTER1`` and ``FILTER2`` (blanks dropped) joined with ``_``. The rules, in
    order, first match wins:

    1. ``OBSTYPE != IMAGING``; 2. ``DRIZCORR`` in {OMIT, SKIPPED}; 3. ``MTFLAG == T`` (moving
    target); 4. ``SCAN_TYP`` in {C, D} (spatial scan); 5. not WFPC2 and ``TARGNAME`` contains
    one of :data:`CAL_TARGETS`; 6. WFPC2, ``IMAGETYP != EXT`` and ``TARGNAME`` contains one of
    :data:`CAL_TARGETS_WFPC2`; 7. ``abs(EXPTIME) <= 1e-5``; 8. ``FGSLOCK`` contains ``GY`` or
    ``COARSE``: a **warning only**, the exposure is kept (and rule 9 is not reached);
    9. ``CHINJECT != NONE``.

    Then each ``_``-separated filter token in turn: a token starting with ``G`` or ``PR``
    (grism, prism) clears any earlier verdict in an SVM run with a non-zero exposure time (the
    exposure is kept so that it gets the direct images' WCS); otherwise (MVM, or zero
    exposure time) a note is added to the rejection. A token starting with ``BLOCK`` (SBC
    internal) rejects; one starting with ``FR`` (ramp) rejects in MVM only. Finally, if no
    rule fired, an exposure whose every SCI array is zero (or that has no SCI extension) is
    rejected.

    Parameters
    ----------
    path : str or os.PathLike
        Calibrated exposure (FLT/FLC).
    mode : {"svm", "mvm"}
        The pipeline asking; grism/prism exposures are usable in SVM only, ramp exposures are
        rejected in MVM only. (MVM's bad-guiding check is not part of this function.)

    Returns
    -------
    Viability

    Raises
    ------
    InvalidParameterError
        ``mode`` is not ``svm`` or ``mvm``.
    InvalidInputError
        The file cannot be read or lacks a keyword a rule needs; the message names both.

    Notes
    -----
    Source: drizzlepac ``haputils/analyze.py`` ``analyze_data`` (as coded: a grism token clears
    a rejection by any earlier rule; an FGSLOCK warning skips the CHINJECT and all-zero checks).
    One deliberate difference: where drizzlepac crashes adding its grism note to a number or
    to nothing (zero-exposure grism data, or MVM grism data no earlier rule rejected), the
    exposure is rejected with the note appended to the reason.
    """
    mode = str(mode).lower()
    if mode not in _MODES:
        raise InvalidParameterError(f"mode must be one of {_MODES}, got {mode!r}")
    path = Path(path)
    try:
        with fits.open(path, memmap=False) as hdul:
            facts = _read_facts(hdul[0].header, path)
            key, value = _first_rule(facts)
            key, value = _filter_tokens(facts, key, value, mode, path)
            if key is None:
                if not _has_nonzero_science(hdul, path):
                    log.warning("%s: science data all zeros; the exposure cannot be used", path)
                    return Viability(False, "SCI data all zeros")
                return Viability(True)
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the exposure ({exc})") from None
    message = f"{key}={value}"
    if key == "FGSLOCK":
        warning = f"{message}: the exposure is used, but the result may be compromised"
        log.warning("%s: %s", path, warning)
        return Viability(True, "", warning)
    log.warning("%s: %s; the exposure cannot be used", path, message)
    return Viability(False, message)


def _text(header: fits.Header, keyword: str, path: Path) -> str:
    if keyword not in header:
        raise InvalidInputError(f"{path}: primary header has no {keyword} keyword "
                                "(needed by the viability filter)")
    return str(header[keyword]).upper()


def _read_facts(header: fits.Header, path: Path) -> _Facts:
    instrument = _text(header, "INSTRUME", path).strip()
    if instrument == "WFPC2":
        detector = "PC"
        obstype = "IMAGING" if _text(header, "IMAGETYP", path) == "EXT" else "CAL"
        mtflag = _logical(header, "MTFLAG", path)
    else:
        detector = _text(header, "DETECTOR", path).strip()
        obstype = _text(header, "OBSTYPE", path)
        mtflag = _logical(header, "MTFLAG", path)
    scan_typ = _text(header, "SCAN_TYP", path) if instrument == "WFC3" else ""
    if instrument == "WFC3":
        sfilter = _text(header, "FILTER", path)
    elif instrument == "ACS":
        names = [_text(header, k, path).strip() for k in ("FILTER1", "FILTER2")]
        sfilter = "_".join(n for n in names if n)
    else:
        sfilter = ""
    exptime = header.get("EXPTIME")
    if exptime is None:
        raise InvalidInputError(f"{path}: primary header has no EXPTIME keyword")
    try:
        exptime = float(exptime)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{path}: EXPTIME = {exptime!r} is not a number") from None
    chinject = "NONE"
    if instrument == "WFC3" and detector == "UVIS":
        chinject = _text(header, "CHINJECT", path)
    imagetyp = str(header.get("IMAGETYP", "")).upper()
    if instrument == "WFPC2":
        imagetyp = _text(header, "IMAGETYP", path)
    return _Facts(instrument=instrument, detector=detector, obstype=obstype,
                  drizcorr=_text(header, "DRIZCORR", path), mtflag=mtflag, scan_typ=scan_typ,
                  targname=_text(header, "TARGNAME", path), imagetyp=imagetyp, exptime=exptime,
                  fgslock=_text(header, "FGSLOCK", path), chinject=chinject, sfilter=sfilter)


def _logical(header: fits.Header, keyword: str, path: Path) -> str:
    """``T``/``F`` from a logical keyword, or the upper-cased text of a string one."""
    if keyword not in header:
        raise InvalidInputError(f"{path}: primary header has no {keyword} keyword "
                                "(needed by the viability filter)")
    value = header[keyword]
    if isinstance(value, (bool, np.bool_)):
        return "T" if value else "F"
    return str(value).strip().upper()


def _first_rule(f: _Facts) -> tuple[str | None, object]:
    """Rules 1-9 (first match wins): (keyword, value) of the rule that fired, or (None, None)."""
    wfpc2 = f.instrument == "WFPC2"
    if f.obstype != "IMAGING":
        return ("IMAGETYP" if wfpc2 else "OBSTYPE"), f.obstype
    if f.drizcorr in ("OMIT", "SKIPPED"):
        return "DRIZCORR", f.drizcorr
    if f.mtflag == "T":
        return "MTFLAG", f.mtflag
    if f.scan_typ in ("C", "D"):
        return "SCAN_TYP", f.scan_typ
    if not wfpc2 and any(t in f.targname for t in CAL_TARGETS):
        return "TARGNAME", f.targname
    if wfpc2 and f.imagetyp != "EXT" and any(t in f.targname for t in CAL_TARGETS_WFPC2):
        return "TARGNAME", f.targname
    if abs(f.exptime) <= 1e-5:
        return "EXPTIME", f.exptime
    if "GY" in f.fgslock or "COARSE" in f.fgslock:
        return "FGSLOCK", f.fgslock
    if f.chinject != "NONE":
        return "CHINJECT", f.chinject
    return None, None


def _filter_tokens(f: _Facts, key, value, mode: str, path: Path):
    """The filter-token pass after rules 1-9: grism/prism exception, BLOCK, ramp (MVM)."""
    zero_time = abs(f.exptime) <= 1e-5
    for token in f.sfilter.upper().split("_"):
        if token.startswith(("G", "PR")):
            if mode == "svm" and not zero_time:
                key, value = None, None
                log.info("%s: grism/prism exposure kept to carry the visit's WCS", path)
            else:
                note = ("Grism/Prism data and MVM processing" if mode == "mvm"
                        else "Grism/Prism data and EXPTIME = 0.0")
                if key is None:
                    key, value = "FILTER", f.sfilter
                value = f"{value}, {note}"
        if token.startswith("BLOCK"):
            key, value = "FILTER", f.sfilter
        if token.startswith("FR") and mode == "mvm":
            key, value = "FILTER", "Ramp data and MVM processing"
    return key, value


#: Pixels of a SCI image read per block when looking for a non-zero value.
_NONZERO_BLOCK_PIXELS = 1 << 20


def _any_nonzero(hdu) -> bool:
    """Whether an image HDU holds a non-zero value, reading it in row blocks (``hdu.section``)
    and stopping at the first block that has one: calibrated data answer after one block."""
    shape = tuple(int(n) for n in (hdu.shape or ()))
    if not shape or 0 in shape:
        return False
    if len(shape) == 1:
        return bool(np.any(hdu.section[:] != 0))
    row_pixels = max(1, math.prod(shape[1:]))
    rows = max(1, _NONZERO_BLOCK_PIXELS // row_pixels)
    for start in range(0, shape[0], rows):
        if np.any(hdu.section[start:start + rows] != 0):
            return True
    return False


def _has_nonzero_science(hdul: fits.HDUList, path: Path) -> bool:
    """Whether any SCI extension holds a non-zero value (False without SCI extensions)."""
    found = False
    for hdu in hdul:
        if hdu.header.get("EXTNAME") != "SCI":
            continue
        if _any_nonzero(hdu):
            found = True
        else:
            log.warning("%s: (SCI, %s) is all zeros", path, hdu.header.get("EXTVER", 1))
    if not any(h.header.get("EXTNAME") == "SCI" for h in hdul):
        log.warning("%s: no SCI extension", path)
    return found


def select_viable_rows(rows, *, mode: str = "svm"):
    """The poller rows whose exposures pass :func:`analyze_exposure`, in input order.

    Parameters
    ----------
    rows : sequence of hapgpu.svm._poller.PollerRow
    mode : {"svm", "mvm"}

    Returns
    -------
    list of PollerRow
        Empty only when ``rows`` is.

    Raises
    ------
    NoUsableInputError
        No row is viable (exit status :attr:`ExitCode.NO_VIABLE_DATA`); the message names each
        file and why it was dropped.
    InvalidInputError
        A file cannot be read or lacks a keyword (see :func:`analyze_exposure`).
    """
    kept, dropped = [], []
    for row in rows:
        verdict = analyze_exposure(row.source, mode=mode)
        if verdict.ok:
            kept.append(row)
        else:
            dropped.append(f"{row.filename} ({verdict.reason})")
    if rows and not kept:
        raise NoUsableInputError("no viable exposure for drizzling: " + "; ".join(dropped))
    log.info("%d of %d exposures are viable", len(kept), len(rows))
    return kept


def read_photflam(path) -> float:
    """``PHOTFLAM`` of an exposure: from the primary header for WFC3/IR, else from SCI,1.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    float
        Inverse sensitivity, erg s^-1 cm^-2 Angstrom^-1 per electron s^-1.

    Raises
    ------
    InvalidInputError
        The file cannot be read, has no SCI,1 where needed, or lacks ``PHOTFLAM``.
    """
    path = Path(path)
    try:
        with fits.open(path, memmap=False) as hdul:
            primary = hdul[0].header
            instrument = str(primary.get("INSTRUME", "")).strip().upper()
            detector = str(primary.get("DETECTOR", "")).strip().upper()
            if instrument == "WFC3" and detector == "IR":
                header, where = primary, "primary header"
            else:
                try:
                    header, where = hdul["SCI", 1].header, "SCI,1 header"
                except KeyError:
                    raise InvalidInputError(f"{path}: no SCI,1 extension") from None
            value = header.get("PHOTFLAM")
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the exposure ({exc})") from None
    if value is None:
        raise InvalidInputError(f"{path}: {where} has no PHOTFLAM keyword")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{path}: PHOTFLAM = {value!r} is not a number") from None


def sort_rows(rows, photflam=None):
    """Order poller rows by exposure time ascending, ties by ``PHOTFLAM`` descending (§1.4).

    The sort is stable: rows equal in both keys (an FLT and the FLC of one exposure) keep
    their input order, as in drizzlepac's ``np.lexsort((-photflam, exptime))``.

    Parameters
    ----------
    rows : sequence of hapgpu.svm._poller.PollerRow
    photflam : sequence of float, optional
        ``PHOTFLAM`` of each row; read with :func:`read_photflam` when not given.

    Returns
    -------
    list of PollerRow

    Raises
    ------
    InvalidParameterError
        ``photflam`` has another length than ``rows``.
    InvalidInputError
        See :func:`read_photflam`.
    """
    rows = list(rows)
    if photflam is None:
        photflam = [read_photflam(row.source) for row in rows]
    photflam = [float(p) for p in photflam]
    if len(photflam) != len(rows):
        raise InvalidParameterError(f"photflam has {len(photflam)} values for {len(rows)} rows")
    order = sorted(range(len(rows)), key=lambda i: (rows[i].exptime, -photflam[i]))
    return [rows[i] for i in order]


def determine_filter_name(filters: str) -> str:
    """The filter name of product file names from a poller's ``filters`` field (§1.4).

    Lower-case, split on ``;`` and keep the first two names (ACS/SBC's third is bogus); drop
    names containing ``clear`` or ``n/a``; none left gives ``clear``; a polarizer (``pol*``)
    goes second; join with ``-``.

    Parameters
    ----------
    filters : str
        E.g. ``F606W;POL60V``, ``CLEAR1L;F814W``, ``F140LP;N/A;F140LP``.

    Returns
    -------
    str
        E.g. ``f606w-pol60v``, ``f814w``, ``f140lp``; ``clear`` when every filter is clear.

    Notes
    -----
    Source: drizzlepac ``poller_utils.determine_filter_name``.
    """
    names = [n for n in str(filters).lower().split(";")[:2]
             if "clear" not in n and "n/a" not in n]
    if not names:
        return "clear"
    if names[0].startswith("pol"):
        names.reverse()
    return "-".join(names).rstrip("-")
