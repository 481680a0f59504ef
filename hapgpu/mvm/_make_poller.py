"""Writing SVM and MVM poller files (drizzlepac ``make_poller_files``, hap-pipeline.md §5).

:func:`generate_poller_file` turns a list of exposures (file names or 9-character rootnames)
into the poller that ``hapgpu svm`` (8 columns) or ``hapgpu mvm`` (10 columns) reads. Each
exposure is looked for, in order, as ``<rootname>_flc.fits`` then ``<rootname>_flt.fits`` in the
current folder, then in ``$DATA_PATH/<name[:4]>/<rootname>/``; a name with a folder is used as
given. The fields of each line come from the primary header:

============  ===================================================================================
filename      the file name (no folder)
proposal_id   ``PROPOSID``
program_id    ``filename.split('_')[-2][1:4]``, upper case
obset_id      ``LINENUM`` up to its first ``.`` when ``PRIMESI`` (lower case) equals ``INSTRUME``
              (``wfpc2`` for WFPC2), otherwise ``ROOTNAME[-5:-3]`` upper case (as coded, the
              comparison is with ``INSTRUME`` as written, so upper-case headers give the latter)
exptime       ``EXPTIME`` as Python prints it (``1.0``)
filters       the product filter name (:func:`hapgpu.svm.determine_filter_name` of ACS
              ``FILTER1;FILTER2``, WFPC2 ``FILTNAM1;FILTNAM2``, WFC3 ``FILTER``), upper case
detector      ``DETECTOR``, upper case
(MVM)         the sky cell (``skycell-pPPPPxXXyYY``) and ``NEW``
pathname      the full path of the file found
============  ===================================================================================

Lines are joined with ``\\n`` and the file has no trailing newline. An exposure found nowhere is
left out with a warning, as drizzlepac does.

Deliberate differences: ``$DATA_PATH`` is searched for file names as well as for rootnames
(drizzlepac's lookup of a full file name there tests the wrong path and never succeeds); a
missing ``$DATA_PATH`` only matters when an exposure is not found locally, and then is an
error naming the exposure (drizzlepac exits); a sky-cell name must match the whole pattern.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from astropy.io import fits

from ..errors import InvalidInputError, InvalidParameterError, OutputWriteError

__all__ = ["POLLER_TYPES", "generate_poller_file", "locate_exposure", "poller_line"]

log = logging.getLogger(__name__)

#: Poller kinds: ``svm`` (8 columns) and ``mvm`` (10 columns).
POLLER_TYPES = ("svm", "mvm")
_SKYCELL_NAME = re.compile(r"skycell-p\d{4}x\d{2}y\d{2}")
_SUFFIXES = ("_flt.fits", "_flc.fits")


def locate_exposure(entry: str, *, environ=None) -> str | None:
    """The file of a poller entry (drizzlepac ``make_poller_files.locate_fitsfile``).

    Parameters
    ----------
    entry : str
        A file name ending in ``_flt.fits``/``_flc.fits`` (with or without folders) or a
        rootname (``ib4606c5q``).
    environ : mapping, optional, keyword-only
        Where ``DATA_PATH`` is read; default ``os.environ``.

    Returns
    -------
    str or None
        ``<cwd>/<name>`` for a file found in the current folder, the entry as given (not
        normalised) when it has folders and exists, the ``$DATA_PATH`` copy; None when not
        found.

    Raises
    ------
    InvalidInputError
        The exposure is not in the current folder and ``DATA_PATH`` is not set.
    """
    environ = os.environ if environ is None else environ
    data_path = environ.get("DATA_PATH")
    if entry.endswith(_SUFFIXES):
        given = Path(entry)
        if given.is_file():
            return entry if os.sep in entry else os.getcwd() + os.sep + entry
        name = given.name
        root = name[:-len("_flt.fits")]
        candidates = [name]
    else:
        root = entry
        candidates = [f"{entry}_flc.fits", f"{entry}_flt.fits"]
        for name in candidates:
            if Path(name).is_file():
                return os.getcwd() + os.sep + name
    if not data_path:
        raise InvalidInputError(f"{entry}: not found in {Path.cwd()} and DATA_PATH is not set "
                                "(the online cache root, searched as $DATA_PATH/<name[:4]>/"
                                "<rootname>/)")
    folder = Path(data_path) / root[:4] / root
    for name in candidates:
        if (folder / name).is_file():
            return str(folder / name)
    return None


def _filter_field(header: fits.Header, path: Path) -> str:
    from ..svm._analyze import determine_filter_name

    instrument = str(header.get("INSTRUME", "")).strip().lower()
    keywords = {"acs": ("FILTER1", "FILTER2"), "wfpc2": ("FILTNAM1", "FILTNAM2"),
                "wfc3": ("FILTER",)}.get(instrument)
    if keywords is None:
        raise InvalidInputError(f"{path}: INSTRUME = {header.get('INSTRUME')!r}; pollers are "
                                "made for WFC3, ACS and WFPC2 exposures")
    for key in keywords:
        if key not in header:
            raise InvalidInputError(f"{path}: primary header has no {key} keyword")
    return determine_filter_name(";".join(str(header[k]) for k in keywords)).upper()


def poller_line(path, *, poller_file_type: str = "svm", skycell_name: str | None = None) -> str:
    """One poller line for an exposure file (see the module notes for the fields).

    Parameters
    ----------
    path : str or os.PathLike
        The exposure; written in full in the ``pathname`` field, its last component is the
        ``filename`` field.
    poller_file_type : {"svm", "mvm"}, keyword-only
    skycell_name : str, optional, keyword-only
        Required for ``mvm``.

    Returns
    -------
    str
        Comma-separated fields, no newline.

    Raises
    ------
    InvalidInputError
        The file cannot be read or lacks a keyword.
    InvalidParameterError
        A bad ``poller_file_type``; ``mvm`` without a well-formed ``skycell_name``.
    """
    poller_file_type = _check_type(poller_file_type, skycell_name)
    path_text = str(path)
    name = path_text.split(os.sep)[-1]
    try:
        header = fits.getheader(path_text, 0)
    except OSError as exc:
        raise InvalidInputError(f"{path_text}: cannot read the FITS header ({exc})") from None
    for key in ("PROPOSID", "EXPTIME", "DETECTOR", "INSTRUME", "ROOTNAME"):
        if key not in header:
            raise InvalidInputError(f"{path_text}: primary header has no {key} keyword")
    instrument = header["INSTRUME"]
    primesi = "wfpc2" if str(instrument).lower() == "wfpc2" else header.get("PRIMESI")
    if primesi is not None and str(primesi).lower() == instrument:
        if "LINENUM" not in header:
            raise InvalidInputError(f"{path_text}: primary header has no LINENUM keyword")
        obset = str(header["LINENUM"]).split(".")[0]
    elif primesi is None:
        raise InvalidInputError(f"{path_text}: primary header has no PRIMESI keyword")
    else:
        obset = str(header["ROOTNAME"])[-5:-3].upper()
    fields = [name, f"{header['PROPOSID']}", name.split("_")[-2][1:4].upper(), obset,
              f"{header['EXPTIME']}", _filter_field(header, Path(path_text)),
              str(header["DETECTOR"]).upper()]
    if poller_file_type == "mvm":
        fields += [skycell_name, "NEW"]
    fields.append(path_text)
    return ",".join(fields)


def _check_type(poller_file_type: str, skycell_name) -> str:
    kind = str(poller_file_type).lower()
    if kind not in POLLER_TYPES:
        raise InvalidParameterError(f"poller_file_type must be one of {POLLER_TYPES}, got "
                                    f"{poller_file_type!r}")
    if kind == "mvm":
        if not skycell_name:
            raise InvalidParameterError("an MVM poller needs a sky-cell name (skycell-pPPPPxXXyYY; "
                                        "`hapgpu skycells FILES` lists the cells)")
        if not _SKYCELL_NAME.fullmatch(str(skycell_name)):
            raise InvalidParameterError(f"{skycell_name!r} is not a sky-cell name (expected "
                                        "skycell-pPPPPxXXyYY, e.g. skycell-p1889x07y19)")
    elif skycell_name:
        log.info("a sky-cell name is only used in MVM pollers; ignored for an SVM poller")
    return kind


def generate_poller_file(input_list, poller_file_type: str = "svm",
                         output_poller_filename="poller_file.out",
                         skycell_name: str | None = None) -> Path:
    """Write an SVM or MVM poller for a list of exposures (drizzlepac ``generate_poller_file``).

    Parameters
    ----------
    input_list : str, os.PathLike or sequence of str
        A text file with one file name or rootname per line, or a list of them.
    poller_file_type : {"svm", "mvm"}
    output_poller_filename : str or os.PathLike
        The poller written (replaced if present; written under a temporary name, then renamed).
    skycell_name : str, optional
        The sky cell of every line of an MVM poller (required for ``mvm``).

    Returns
    -------
    pathlib.Path
        ``output_poller_filename``.

    Raises
    ------
    InvalidParameterError
        A bad ``poller_file_type``; ``mvm`` without a well-formed ``skycell_name``; an
        ``input_list`` that is neither a file name nor a list.
    InvalidInputError
        The list file cannot be read; an exposure's header cannot be read or lacks a keyword;
        an exposure not found locally while ``DATA_PATH`` is unset.
    OutputWriteError
        The poller cannot be written.
    """
    kind = _check_type(poller_file_type, skycell_name)
    if isinstance(input_list, (str, os.PathLike)):
        try:
            entries = Path(input_list).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"{input_list}: cannot read the exposure list ({exc})") from None
    elif isinstance(input_list, (list, tuple)):
        entries = [str(e) for e in input_list]
    else:
        raise InvalidParameterError("input_list must be a file name or a list of file names or "
                                    f"rootnames, got {type(input_list).__name__}")
    lines = []
    for entry in (e.strip() for e in entries):
        if not entry:
            continue
        path = locate_exposure(entry)
        if path is None:
            what = "file" if entry.endswith(".fits") else "rootname"
            log.warning("no FITS file found for %s %r; it is left out of the poller", what, entry)
            continue
        lines.append(poller_line(path, poller_file_type=kind, skycell_name=skycell_name))
    out = Path(output_poller_filename)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        tmp.write_text("\n".join(lines), encoding="utf-8")
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputWriteError(f"{out}: cannot write the poller ({exc.strerror or exc})") from None
    log.info("wrote %s poller %s (%d exposure(s))", kind.upper(), out, len(lines))
    return out
