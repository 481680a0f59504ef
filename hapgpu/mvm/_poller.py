"""Reading an MVM poller file (hap-pipeline.md §2.3).

An MVM poller is headerless comma-separated text with exactly 10 columns::

    filename, proposal_id, program_id, obset_id, exptime, filters, detector,
    skycell-pPPPPxXXyYY, NEW|OLD, pathname

e.g. ``hst_12286_0r_acs_wfc_f775w_jbl70rtv_flc.fits,12286,BL7,0R,486.0,F775W,WFC,
skycell-p1889x07y19,NEW,/archive/...``. The file names are normally SVM-renamed FLT/FLC
files. :func:`read_mvm_poller` applies drizzlepac's ``poller_utils.build_poller_table``
(``poller_type='mvm'``) rules, in its order:

1. every listed file is kept in :attr:`MvmPoller.all_mvm_exposures` (drizzlepac's
   ``all_mvm_exposures``: the bounded frame of §2.5 covers them all);
2. the NEW/OLD column must be ``NEW`` or ``OLD`` (any case); ``0``/``1`` and anything else is an
   error naming the line. OLD rows are not processed;
3. ``MVM_ONLY_CTE`` (default off): UVIS and WFC rows whose file is not CTE-corrected
   (``filename[-6] != 'c'``) are not processed;
4. nothing left: :class:`NoViableDataError` with exit status 65;
5. the viability filter with ``type=mvm`` (:func:`hapgpu.svm._analyze.analyze_exposure`,
   grism and ramp exposures rejected), then the bad-guiding check
   (:func:`hapgpu.mvm._guiding.verify_guiding`), then, with ``MVM_INCLUDE_SMALL`` off, the HRC and
   SBC rows are dropped; nothing left: :class:`NoViableDataError` (65, or 55 when only HRC/SBC
   rows were viable);
6. the sky cell is the first usable row's. As coded in drizzlepac, every usable row is then
   assigned to that cell (the poller's cell column of the other rows is not used; a row naming
   another cell is logged);
7. the instrument of a row is given by the first letter of its ``ipppssoo`` token
   (``filename.split('_')[-2][0]``).

hapgpu never modifies its inputs and never copies them into the working folder: where
drizzlepac copies a file missing from the working folder from ``pathname``, hapgpu resolves the
file it reads (:attr:`MvmPollerRow.source`): the search folders first (by default the current
folder, then the poller's), then ``pathname``. OLD files are resolved too, since the bounded
frame reads them.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidInputError, InvalidParameterError, NoUsableInputError
from ..svm._analyze import ExitCode, analyze_exposure
from ..svm._poller import INSTRUMENT_LETTERS

__all__ = [
    "MVM_POLLER_COLUMNS",
    "MvmPoller",
    "MvmPollerRow",
    "NoViableDataError",
    "mvm_switches",
    "read_mvm_poller",
]

log = logging.getLogger(__name__)

#: Detectors dropped when ``MVM_INCLUDE_SMALL`` is off (ACS/HRC and ACS/SBC).
SMALL_DETECTORS = ("HRC", "SBC")

#: Columns of the MVM poller, in order (drizzlepac's ``MVM_POLLER_COLNAMES``).
MVM_POLLER_COLUMNS = ("filename", "proposal_id", "program_id", "obset_id", "exptime", "filters",
                      "detector", "skycell_id", "skycell_new", "pathname")

#: Instruments with HAP parameter sets, hence with MVM products.
_MVM_INSTRUMENTS = ("WFC3", "ACS", "WFPC2")
#: An exposure name: ``hst_..._<ipppssoo>_fl[tc].fits`` or ``<ipppssoot>_fl[tc].fits``.
_EXPOSURE_NAME = re.compile(r"^(?:hst_[a-z0-9_-]+_([a-z0-9]{8})|([a-z0-9]{9}))_fl[tc]\.fits$")
_SKYCELL_NAME = re.compile(r"^skycell-p\d{4}x\d{2}y\d{2}$")

#: The environment switches read by :func:`mvm_switches` and their defaults.
MVM_SWITCHES = {"MVM_ONLY_CTE": False, "MVM_INCLUDE_SMALL": True}


class NoViableDataError(NoUsableInputError):
    """An MVM poller leaves nothing to process; ``exit_code`` is ``runmultihap``'s status.

    Parameters
    ----------
    message : str
        What was dropped and why (names the poller).
    exit_code : int
        65 (:attr:`hapgpu.svm.ExitCode.NO_VIABLE_DATA`: every row OLD, not CTE-corrected or not
        viable), 55 (:attr:`~hapgpu.svm.ExitCode.SBCHRC_DATA`: only HRC/SBC rows were viable
        and ``MVM_INCLUDE_SMALL`` is off) or 0 (the poller lists nothing: nothing to do).
    """

    def __init__(self, message: str, exit_code: int = int(ExitCode.NO_VIABLE_DATA)):
        super().__init__(message)
        self.exit_code = int(exit_code)


@dataclass(frozen=True)
class MvmPollerRow:
    """One line of an MVM poller.

    Attributes
    ----------
    filename : str
        File name without folders, e.g. ``hst_11665_06_wfc3_uvis_f555w_ib4606c5_flc.fits``.
    proposal_id : int
    program_id : str
    obset_id : str
        Kept as text (``06``, ``0R``).
    exptime : float
        Exposure time, seconds (the poller's column).
    filters : str
        As recorded (``F555W``, ``CLEAR1L;F814W``).
    detector : str
        As recorded, upper case (``UVIS``, ``IR``, ``WFC``, ``HRC``, ``SBC``, ``PC``).
    skycell : str
        The row's sky cell as the poller gives it (``skycell-p1889x07y19``).
    new : bool
        ``NEW`` (True) or ``OLD`` (False).
    pathname : str
        The poller's ``pathname`` column.
    source : pathlib.Path
        Absolute path of the file hapgpu reads for this row.
    line : int
        Line number in the poller (1-based).
    """

    filename: str
    proposal_id: int
    program_id: str
    obset_id: str
    exptime: float
    filters: str
    detector: str
    skycell: str
    new: bool
    pathname: str
    source: Path
    line: int = 0

    @property
    def ipppssoo(self) -> str:
        """The exposure's ``ipppssoo``: the token before the suffix of an ``hst_`` name, else the
        first 8 characters of the pipeline name (lower case)."""
        name = self.filename.lower()
        return name.split("_")[-2] if name.startswith("hst_") else name[:8]

    @property
    def instrument(self) -> str:
        """``WFC3``, ``ACS`` or ``WFPC2`` from the first letter of ``filename.split('_')[-2]``."""
        return INSTRUMENT_LETTERS[self.filename.split("_")[-2][0].lower()]

    @property
    def filetype(self) -> str:
        """``flt`` or ``flc``."""
        return self.filename[:-len(".fits")].rsplit("_", 1)[-1].lower()

    @property
    def cte_corrected(self) -> bool:
        """Whether the file is CTE-corrected (drizzlepac's ``filename[-6] == 'c'``)."""
        return self.filename[-6] == "c"


@dataclass(frozen=True)
class MvmPoller:
    """An MVM poller after drizzlepac's selection rules (see the module notes).

    Attributes
    ----------
    path : pathlib.Path
        The poller file.
    skycell : str
        The sky cell processed: the first usable row's.
    rows : tuple of MvmPollerRow
        The usable NEW rows, in poller order (not yet sorted; :func:`hapgpu.mvm.build_layers`
        sorts them as SVM does).
    old_rows : tuple of MvmPollerRow
        The OLD rows (not processed; they widen the bounded frame).
    all_mvm_exposures : tuple of pathlib.Path
        The file of every poller line, NEW and OLD, usable or not, in poller order.
    dropped : tuple of (str, str)
        ``(filename, reason)`` of every NEW row not processed.
    only_cte, include_small : bool
        The switches applied.
    """

    path: Path
    skycell: str
    rows: tuple[MvmPollerRow, ...]
    old_rows: tuple[MvmPollerRow, ...] = ()
    all_mvm_exposures: tuple[Path, ...] = ()
    dropped: tuple[tuple[str, str], ...] = field(default=())
    only_cte: bool = False
    include_small: bool = True


def mvm_switches(environ=None) -> dict:
    """``{"MVM_ONLY_CTE": bool, "MVM_INCLUDE_SMALL": bool}`` from the environment.

    Parameters
    ----------
    environ : mapping, optional
        Default ``os.environ``.

    Returns
    -------
    dict
        Defaults: ``MVM_ONLY_CTE`` off, ``MVM_INCLUDE_SMALL`` on; values ``on``/``yes``/``true``
        and ``off``/``no``/``false`` in any case (hap-pipeline.md §0).

    Raises
    ------
    InvalidParameterError
        A variable holds another value.
    """
    from ..svm._pipeline import env_switch

    return {name: env_switch(name, default, environ) for name, default in MVM_SWITCHES.items()}


def read_mvm_poller(path, *, only_cte: bool | None = None, include_small: bool | None = None,
                    check_guiding: bool = True, search_dirs=None, guiding=None,
                    before_guiding=None) -> MvmPoller:
    """Read an MVM poller and select the rows to process (hap-pipeline.md §2.3).

    Parameters
    ----------
    path : str or os.PathLike
        The poller: 10 comma-separated columns per line (blank lines and ``#`` lines ignored).
    only_cte : bool, optional
        Process only CTE-corrected UVIS/WFC files; default: ``MVM_ONLY_CTE`` (off).
    include_small : bool, optional
        Process ACS/HRC and ACS/SBC rows; default: ``MVM_INCLUDE_SMALL`` (on).
    check_guiding : bool, keyword-only
        Run the bad-guiding check on the viable rows (drizzlepac always does in MVM).
    search_dirs : sequence of str or os.PathLike, optional
        Folders where the listed files are looked for, in order (default: the current folder,
        then the poller's); the ``pathname`` column is tried last.
    guiding : hapgpu.mvm.GuidingCache, optional
        Where the bad-guiding verdicts are taken from and kept: a run reading several pollers
        passes one cache to every call, so that an exposure listed by several pollers is
        checked once. Default: a fresh cache (every viable exposure is checked).
    before_guiding : callable, optional
        Called as ``before_guiding(provisional)`` once the viability filter has run and before
        the bad-guiding check, with the :class:`MvmPoller` the rows would give if every viable
        exposure passed the check (not called when none is viable or the check is off). The
        check is the slow part of reading a poller and rejects an exposure rarely: the caller
        can start work on the provisional rows meanwhile (:func:`hapgpu.mvm.run_mvm` starts
        the renamed input copies) and reconcile with the result.

    Returns
    -------
    MvmPoller

    Raises
    ------
    InvalidInputError
        The poller is missing or unreadable; a line has another number of columns than 10; a
        field cannot be read (proposal id, exposure time, sky-cell name); the NEW/OLD column is
        ``0``, ``1`` or another value than NEW/OLD; a name is not an FLT/FLC exposure name of
        WFC3, ACS or WFPC2; a listed file is found nowhere. Each message names the poller and
        the line.
    NoViableDataError
        Nothing to process (``exit_code`` 65, or 55 for HRC/SBC only with ``include_small``
        off, or 0 for a poller without lines); the message names every file and why it was
        dropped.
    InvalidParameterError
        ``path`` is not a file name (drizzlepac's list input fails as coded);
        ``MVM_ONLY_CTE`` or ``MVM_INCLUDE_SMALL`` holds a value that is not a switch.

    Notes
    -----
    Source: drizzlepac ``poller_utils.build_poller_table`` and ``analyze.analyze_wrapper``
    (``type='mvm'``, ``use_sbchrc``).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidParameterError(f"an MVM poller is a file name, got {type(path).__name__} (a "
                                    "list of exposures cannot be used: write a poller with "
                                    "hapgpu.mvm.generate_poller_file)")
    poller = Path(path)
    if only_cte is None or include_small is None:
        switches = mvm_switches()
        only_cte = switches["MVM_ONLY_CTE"] if only_cte is None else bool(only_cte)
        include_small = (switches["MVM_INCLUDE_SMALL"] if include_small is None
                         else bool(include_small))
    from ..svm._poller import _read_lines, _search_dirs

    lines = _read_lines(poller)
    if not lines:  # drizzlepac exits with status 0 on an empty poller
        raise NoViableDataError(f"{poller}: the poller lists no exposures; nothing to do",
                                exit_code=int(ExitCode.OK))
    dirs = _search_dirs(poller, search_dirs)
    rows = [_parse_row(poller, number, fields, dirs) for number, fields in lines]
    _check_unique(poller, rows)
    all_exposures = tuple(row.source for row in rows)
    old_rows = tuple(row for row in rows if not row.new)
    dropped: list[tuple[str, str]] = []
    candidates = []
    for row in rows:
        if not row.new:
            continue
        if only_cte and row.detector in ("UVIS", "WFC") and not row.cte_corrected:
            dropped.append((row.filename, "not CTE-corrected and MVM_ONLY_CTE is on"))
            continue
        candidates.append(row)
    if not candidates:
        why = "every exposure is OLD (already MVM processed)" if not dropped else (
            "no NEW CTE-corrected exposure: " + _reasons(dropped))
        raise NoViableDataError(f"{poller}: nothing to process: {why}")
    if old_rows:
        log.info("%s: %d OLD exposure(s) not processed (they widen the bounded frame): %s",
                 poller, len(old_rows), ", ".join(r.filename for r in old_rows))

    def provisional(viable):
        rows = viable if include_small else [r for r in viable if r.detector not in SMALL_DETECTORS]
        if rows:
            before_guiding(MvmPoller(path=poller, skycell=rows[0].skycell, rows=tuple(rows),
                                     old_rows=old_rows, all_mvm_exposures=all_exposures,
                                     only_cte=bool(only_cte), include_small=bool(include_small)))

    usable = _viable_rows(candidates, dropped, guiding if check_guiding else False,
                          None if before_guiding is None else provisional)
    if not usable:
        raise NoViableDataError(f"{poller}: no viable exposure for MVM processing: "
                                + _reasons(dropped))
    if not include_small:
        small = [row for row in usable if row.detector in SMALL_DETECTORS]
        dropped += [(row.filename, "ACS/HRC or ACS/SBC and MVM_INCLUDE_SMALL is off")
                    for row in small]
        usable = [row for row in usable if row.detector not in SMALL_DETECTORS]
        if not usable:
            raise NoViableDataError(f"{poller}: only HRC/SBC exposures are viable and "
                                    "MVM_INCLUDE_SMALL is off: " + _reasons(dropped),
                                    exit_code=int(ExitCode.SBCHRC_DATA))
    skycell = usable[0].skycell
    for row in usable[1:]:
        if row.skycell != skycell:
            log.warning("%s, line %d: %s names %s; processed in %s, the first usable row's sky "
                        "cell (as drizzlepac does)", poller, row.line, row.filename, row.skycell,
                        skycell)
    for filename, reason in dropped:
        log.warning("%s: %s not processed: %s", poller, filename, reason)
    log.info("%s: %d exposure(s) to process in %s", poller, len(usable), skycell)
    return MvmPoller(path=poller, skycell=skycell, rows=tuple(usable), old_rows=old_rows,
                     all_mvm_exposures=all_exposures, dropped=tuple(dropped),
                     only_cte=bool(only_cte), include_small=bool(include_small))


def _reasons(dropped) -> str:
    return "; ".join(f"{name} ({reason})" for name, reason in dropped)


def _parse_row(poller: Path, number: int, fields: list[str], dirs) -> MvmPollerRow:
    from ..svm._poller import _find_file, checked_columns

    where = f"{poller}, line {number}"
    if len(fields) != len(MVM_POLLER_COLUMNS):
        raise InvalidInputError(
            f"{where}: {len(fields)} columns; an MVM poller has {len(MVM_POLLER_COLUMNS)} "
            f"({', '.join(MVM_POLLER_COLUMNS[:7])}, skycell-pPPPPxXXyYY, NEW|OLD, pathname)")
    values = dict(zip(MVM_POLLER_COLUMNS, fields))
    entry = values["filename"]
    name = Path(entry).name
    match = _EXPOSURE_NAME.match(name)
    if match is None:
        raise InvalidInputError(
            f"{where}: {entry} is not an FLT/FLC exposure name (an SVM name "
            "hst_<propid>_<obset>_<instr>_<det>_<filter>_<ipppssoo>_fl[tc].fits or a pipeline "
            "name <ipppssoot>_fl[tc].fits, lower case)")
    instrument = INSTRUMENT_LETTERS.get((match[1] or match[2])[0])
    if instrument not in _MVM_INSTRUMENTS:
        raise InvalidInputError(
            f"{where}: {name} is a {instrument or 'unknown instrument'} exposure; MVM products "
            f"exist for {', '.join(_MVM_INSTRUMENTS)} only")
    flag = values["skycell_new"]
    if flag.upper() not in ("NEW", "OLD"):
        hint = {"0": " (use NEW instead of 0)", "1": " (use OLD instead of 1)"}.get(flag, "")
        raise InvalidInputError(f"{where}: {flag!r} is not a valid NEW/OLD value; the column "
                                f"holds NEW or OLD{hint}")
    skycell = values["skycell_id"]
    if not _SKYCELL_NAME.match(skycell):
        raise InvalidInputError(f"{where}: {skycell!r} is not a sky-cell name "
                                "(skycell-pPPPPxXXyYY, e.g. skycell-p1889x07y19)")
    proposal_id, exptime = checked_columns(values, where)
    pathname = values["pathname"]
    source = _find_file(entry, name, (Path(pathname),) if pathname else (), dirs, where)
    return MvmPollerRow(filename=name, proposal_id=proposal_id, program_id=values["program_id"],
                        obset_id=values["obset_id"], exptime=exptime, filters=values["filters"],
                        detector=values["detector"].upper(), skycell=skycell,
                        new=flag.upper() == "NEW", pathname=pathname, source=source, line=number)


def _check_unique(poller: Path, rows) -> None:
    seen: dict[str, int] = {}
    for row in rows:
        key = row.filename.lower()
        if key in seen:
            raise InvalidInputError(f"{poller}, line {row.line}: {row.filename} is already listed "
                                    f"on line {seen[key]}")
        seen[key] = row.line


def _viable_rows(rows, dropped: list, guiding, before_guiding=None) -> list:
    """The rows passing the MVM viability filter, then the bad-guiding check (analyze_wrapper).

    ``guiding``: a :class:`hapgpu.mvm.GuidingCache`, None (a fresh one) or False (no check).
    ``before_guiding``: called with the viable rows before the check (when it runs).
    """
    viable = []
    for row in rows:
        verdict = analyze_exposure(row.source, mode="mvm")
        if verdict.ok:
            viable.append(row)
        else:
            dropped.append((row.filename, verdict.reason))
    if guiding is False:
        return viable
    if guiding is None:
        from ._guiding import GuidingCache

        guiding = GuidingCache()
    if before_guiding is not None and viable:
        before_guiding(viable)
    kept = []
    for row, bad in zip(viable, guiding.check([row.source for row in viable])):  # on threads
        if bad:
            dropped.append((row.filename, "bad guiding"))
        else:
            kept.append(row)
    return kept
