"""Reading an SVM poller file into typed rows (hap-pipeline.md §1.2).

drizzlepac's ``poller_utils.build_poller_table`` accepts three headerless comma- (or blank-)
separated forms, told apart by their column count:

=====  ==============================================================================
cols   meaning
=====  ==============================================================================
8      full SVM poller: ``filename, proposal_id, program_id, obset_id, exptime, filters,
       detector, pathname`` (``filters`` ``;``-separated, e.g. ``F850LP;CLEAR2L``)
1      plain list of exposure file names; the other fields come from each file's primary
       header
2      ``filename, aperture`` (the WFPC2 form; the aperture, which must have no blanks,
       later replaces ``APERTURE`` in the WFPC2 product headers)
=====  ==============================================================================

The obset column is kept as text so that ``06`` and ``0R`` survive. Each listed file is looked
for in the search folders (by default the current directory, then the poller's own folder)
and then, for the 8-column form, at the poller's ``pathname``. hapgpu never modifies its inputs:
where drizzlepac copies a missing file into the working directory, :func:`read_poller` only
resolves the file it will read (``PollerRow.source``); the renamed copies the pipeline works on
are made in the output folder (:func:`hapgpu.svm._tree.make_renamed_copy`).

Deliberate differences from drizzlepac, all of them clear errors where drizzlepac goes to the
network or fails later with a bare exception: association tables (``*_asn*``) and files
not found locally are not fetched from MAST (hapgpu works offline, hap-pipeline.md §4); names
that are not pipeline names (``<ipppssoot>_fl[tc].fits``), instruments without HAP parameters,
a file listed twice and rows from more than one visit are rejected.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from astropy.io import fits

from ..errors import IncompatibleInputsError, InvalidInputError

__all__ = [
    "EMPTY_APERTURE",
    "INSTRUMENT_LETTERS",
    "POLLER_COLUMNS",
    "PollerRow",
    "read_poller",
]

log = logging.getLogger(__name__)

#: Instrument of each rootname's first letter (hap-pipeline.md §0).
INSTRUMENT_LETTERS = {"i": "WFC3", "j": "ACS", "o": "STIS", "u": "WFPC2", "x": "FOC",
                      "w": "WFPC"}

#: Instruments with HAP parameter sets, hence with SVM products.
_SVM_INSTRUMENTS = ("WFC3", "ACS", "WFPC2")

#: Columns of the 8-column SVM poller, in order (drizzlepac's ``POLLER_COLNAMES``).
POLLER_COLUMNS = ("filename", "proposal_id", "program_id", "obset_id", "exptime", "filters",
                  "detector", "pathname")

#: Aperture of every row that does not come from the 2-column (WFPC2) form.
EMPTY_APERTURE = "empty_aperture"

#: A pipeline exposure name: 9-character rootname, FLT or FLC suffix.
_PIPELINE_NAME = re.compile(r"^[a-z][a-z0-9]{8}_fl[tc]\.fits$")


@dataclass(frozen=True)
class PollerRow:
    """One exposure listed in an SVM poller (a row of drizzlepac's poller table).

    Attributes
    ----------
    filename : str
        Exposure file name without folders, e.g. ``ib4606c5q_flc.fits``.
    proposal_id : int
        HST proposal number (``PROPOSID``); used unpadded in product names.
    program_id : str
        Three-character program code (``ppp`` of the rootname), as the poller gives it (the
        list forms take ``filename[1:4]`` in upper case).
    obset_id : str
        Two-character visit code (``ss``), kept as text (``06``, ``0R``).
    exptime : float
        Exposure time, seconds (the poller's column, else the header's ``EXPTIME``).
    filters : str
        Filter names as recorded, ``;``-separated for two-wheel instruments (``F606W``,
        ``CLEAR1L;F814W``); :func:`hapgpu.svm._analyze.determine_filter_name` normalises them.
    detector : str
        ``DETECTOR`` as recorded (``UVIS``, ``IR``, ``WFC``, ``HRC``, ``SBC``, ...).
    pathname : str
        The poller's ``pathname`` column; for the list forms, the absolute path of the file.
    source : pathlib.Path
        Absolute path of the file hapgpu reads for this row.
    aperture : str
        ``empty_aperture`` unless the 2-column form gave one.
    """

    filename: str
    proposal_id: int
    program_id: str
    obset_id: str
    exptime: float
    filters: str
    detector: str
    pathname: str
    source: Path
    aperture: str = EMPTY_APERTURE

    @property
    def rootname(self) -> str:
        """``ipppssoot``: the file name up to its first ``_``."""
        return self.filename.split("_", 1)[0]

    @property
    def instrument(self) -> str:
        """Instrument from the first letter of the rootname (``WFC3``, ``ACS``, ``WFPC2``)."""
        return INSTRUMENT_LETTERS[self.filename[0].lower()]

    @property
    def visit(self) -> str:
        """``ipppss``: instrument letter, program and visit of the rootname, lower case."""
        return self.filename[:6].lower()


def read_poller(path, *, search_dirs=None) -> list[PollerRow]:
    """Read an SVM poller file (8 columns), a file list (1 column) or the WFPC2 form (2 columns).

    Parameters
    ----------
    path : str or os.PathLike
        The poller file: headerless text, one exposure per line, fields separated by commas
        (or, when a line has no comma, by blanks). Blank lines and lines starting with ``#``
        are ignored.
    search_dirs : sequence of str or os.PathLike, optional
        Folders where the listed files are looked for, in order; default: the current
        directory, then the poller's folder. For the 8-column form the ``pathname`` column is
        tried last (a relative pathname is taken relative to each search folder).

    Returns
    -------
    list of PollerRow
        One row per line, in file order; empty when the file holds no rows (drizzlepac then
        exits with status 0 and writes nothing). The rows are not yet screened for viability
        (:func:`hapgpu.svm._analyze.select_viable_rows`) nor sorted
        (:func:`hapgpu.svm._analyze.sort_rows`).

    Raises
    ------
    InvalidInputError
        The poller is missing or unreadable; a line has another column count than the first,
        or the count is not 1, 2 or 8; a field cannot be read (proposal id not an integer,
        exposure time not a number, aperture with blanks); a name is an association table
        (``_asn``) or not a pipeline exposure name; the instrument has no HAP products; a
        file is listed twice or is found nowhere (no MAST download: hapgpu works offline);
        a header lacks a keyword the list forms need. Each message names the poller or file.
    IncompatibleInputsError
        The rows belong to more than one visit (different ``ipppss``, proposal or obset).
    """
    poller = Path(path)
    lines = _read_lines(poller)
    if not lines:
        log.warning("%s: the poller lists no exposures; nothing to do", poller)
        return []
    dirs = _search_dirs(poller, search_dirs)
    n_columns = len(lines[0][1])
    for number, fields in lines:
        if len(fields) != n_columns:
            raise InvalidInputError(f"{poller}: line {number} has {len(fields)} columns, the first "
                                    f"line {n_columns}")
    if n_columns not in (1, 2, len(POLLER_COLUMNS)):
        raise InvalidInputError(
            f"{poller}: {n_columns} columns; a poller has 8 (filename, proposal_id, program_id, "
            "obset_id, exptime, filters, detector, pathname), a file list 1, the WFPC2 form 2 "
            "(filename, aperture)")
    rows = []
    for number, fields in lines:
        where = f"{poller}, line {number}"
        name = _check_name(fields[0], where)
        if n_columns == len(POLLER_COLUMNS):
            rows.append(_full_row(fields, name, where, dirs))
        else:
            aperture = EMPTY_APERTURE
            if n_columns == 2:
                aperture = fields[1]
                if not aperture or re.search(r"\s", aperture):
                    raise InvalidInputError(f"{where}: the aperture {aperture!r} must be one word "
                                            "without blanks (e.g. PC1-FIX;F160BN15)")
            source = _find_file(fields[0], name, (), dirs, where)
            rows.append(_header_row(name, source, aperture))
    _check_one_visit(poller, rows)
    return rows


# ----------------------------------------------------------------------------- parsing


def _read_lines(poller: Path) -> list[tuple[int, list[str]]]:
    """Non-blank, non-comment lines of the poller as (line number, fields)."""
    if poller.is_dir():
        raise InvalidInputError(f"{poller}: is a directory, not a poller file")
    try:
        text = poller.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"{poller}: poller file not found") from None
    except UnicodeDecodeError:
        raise InvalidInputError(f"{poller}: not a text file (a poller is comma-separated "
                                "text)") from None
    except OSError as exc:
        raise InvalidInputError(f"{poller}: cannot read the poller ({exc.strerror or exc})") from None
    lines = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(",") if "," in line else line.split()
        lines.append((number, [_unquote(p.strip()) for p in parts]))
    return lines


def _unquote(field: str) -> str:
    if len(field) >= 2 and field[0] == field[-1] and field[0] in "\"'":
        return field[1:-1].strip()
    return field


def _search_dirs(poller: Path, search_dirs) -> tuple[Path, ...]:
    if search_dirs is None:
        candidates = [Path.cwd(), poller.resolve().parent]
    else:
        candidates = [Path(d) for d in search_dirs]
    unique = []
    for d in candidates:
        d = d.resolve()
        if d not in unique:
            unique.append(d)
    return tuple(unique)


def _check_name(entry: str, where: str) -> str:
    """The file name (no folders) of a poller entry, checked to be a pipeline exposure name."""
    name = Path(entry).name
    if not name:
        raise InvalidInputError(f"{where}: empty file name")
    if "_asn" in name.lower():
        raise InvalidInputError(
            f"{where}: {entry} is an association table; hapgpu works offline and does not fetch "
            "its members from MAST: list the member FLT/FLC files instead")
    if not _PIPELINE_NAME.match(name):
        raise InvalidInputError(
            f"{where}: {entry} is not a pipeline exposure name; SVM inputs are named "
            "<ipppssoot>_flt.fits or <ipppssoot>_flc.fits in lower case (e.g. "
            "ib4606c5q_flc.fits)")
    instrument = INSTRUMENT_LETTERS.get(name[0].lower())
    if instrument not in _SVM_INSTRUMENTS:
        raise InvalidInputError(
            f"{where}: {name} is a {instrument or 'unknown instrument'} exposure (first letter "
            f"{name[0]!r}); SVM products exist for {', '.join(_SVM_INSTRUMENTS)} only")
    return name


def checked_columns(values: dict, where: str) -> tuple[int, float]:
    """``(proposal_id, exptime)`` of a poller row's columns (SVM and MVM), after checking that
    they are numbers and that program, obset, filters and detector are not empty.

    Raises
    ------
    InvalidInputError
        Naming ``where`` (file and line) and the column.
    """
    try:
        proposal_id = int(values["proposal_id"])
    except ValueError:
        raise InvalidInputError(f"{where}: proposal_id {values['proposal_id']!r} is not an "
                                "integer") from None
    try:
        exptime = float(values["exptime"])
    except ValueError:
        raise InvalidInputError(f"{where}: exptime {values['exptime']!r} is not a number") from None
    for column in ("program_id", "obset_id", "filters", "detector"):
        if not values[column]:
            raise InvalidInputError(f"{where}: the {column} column is empty")
    return proposal_id, exptime


def _full_row(fields: list[str], name: str, where: str, dirs) -> PollerRow:
    values = dict(zip(POLLER_COLUMNS, fields))
    proposal_id, exptime = checked_columns(values, where)
    pathname = values["pathname"]
    extra = (Path(pathname),) if pathname else ()
    source = _find_file(values["filename"], name, extra, dirs, where)
    return PollerRow(filename=name, proposal_id=proposal_id, program_id=values["program_id"],
                     obset_id=values["obset_id"], exptime=exptime, filters=values["filters"],
                     detector=values["detector"], pathname=pathname, source=source)


def _find_file(entry: str, name: str, extra: tuple[Path, ...], dirs, where: str) -> Path:
    """The first existing file among the search folders, then ``extra`` (the pathname)."""
    entry_path = Path(entry)
    candidates: list[Path] = []
    if entry_path.is_absolute():
        candidates.append(entry_path)
    else:
        candidates += [d / entry_path for d in dirs]
        if entry_path.name != entry:
            candidates += [d / name for d in dirs]
    for path in extra:
        candidates += [path] if path.is_absolute() else [d / path for d in dirs]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    looked = ", ".join(dict.fromkeys(str(c) for c in candidates))
    raise InvalidInputError(f"{where}: input file {entry} not found (looked for {looked}); "
                            "hapgpu works offline and does not fetch files from MAST")


def _header_row(name: str, source: Path, aperture: str) -> PollerRow:
    """A row of the list forms: every field but the name from the primary header."""
    try:
        header = fits.getheader(source, 0)
    except OSError as exc:
        raise InvalidInputError(f"{source}: cannot read the FITS header ({exc})") from None
    proposal_id = _number(header, "PROPOSID", int, source)
    exptime = _number(header, "EXPTIME", float, source)
    detector = str(_keyword(header, "DETECTOR", source))
    filters = _header_filters(name, header, source)
    return PollerRow(filename=name, proposal_id=proposal_id, program_id=name[1:4].upper(),
                     obset_id=name[4:6], exptime=exptime, filters=filters, detector=detector,
                     pathname=str(source), source=source, aperture=aperture)


def _keyword(header: fits.Header, keyword: str, source: Path):
    if keyword not in header:
        raise InvalidInputError(f"{source}: primary header has no {keyword} keyword")
    return header[keyword]


def _number(header: fits.Header, keyword: str, kind, source: Path):
    value = _keyword(header, keyword, source)
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{source}: {keyword} = {value!r} is not a number") from None


def _header_filters(name: str, header: fits.Header, source: Path) -> str:
    """The poller's filters field from a primary header, per instrument.

    ACS: every ``FILTER<n>`` value (clear filters included) joined with ``;``; WFC3:
    ``FILTER``; WFPC2: every ``FILTNAM<n>`` value joined with ``;``, trailing ``;`` removed
    (drizzlepac's ``processing_utils.get_acs_filters`` / ``get_wfpc2_filters`` with
    ``all=True``).
    """
    instrument = INSTRUMENT_LETTERS[name[0].lower()]
    if instrument == "WFC3":
        return str(_keyword(header, "FILTER", source))
    pattern = re.compile(r"^FILTER.$" if instrument == "ACS" else r"^FILTNAM.$")
    values = [str(header[k]) for k in header if pattern.match(k)]
    if not values:
        wanted = "FILTER1/FILTER2" if instrument == "ACS" else "FILTNAM1/FILTNAM2"
        raise InvalidInputError(f"{source}: primary header has no {wanted} keywords")
    joined = ";".join(values)
    return joined if instrument == "ACS" else joined.rstrip(";")


def _check_one_visit(poller: Path, rows: list[PollerRow]) -> None:
    """One visit per poller: the same ``ipppss``, proposal and obset in every row."""
    seen: dict[str, PollerRow] = {}
    for row in rows:
        if row.filename.lower() in seen:
            raise InvalidInputError(f"{poller}: {row.filename} is listed twice")
        seen[row.filename.lower()] = row
    first = rows[0]
    for row in rows[1:]:
        if row.visit != first.visit:
            raise IncompatibleInputsError(
                f"{poller}: exposures from more than one visit ({first.filename} is visit "
                f"{first.visit}, {row.filename} is {row.visit}); an SVM poller lists one visit")
        if (row.proposal_id, row.obset_id) != (first.proposal_id, first.obset_id):
            raise IncompatibleInputsError(
                f"{poller}: {first.filename} has proposal {first.proposal_id} obset "
                f"{first.obset_id}, {row.filename} has proposal {row.proposal_id} obset "
                f"{row.obset_id}; an SVM poller lists one visit")
