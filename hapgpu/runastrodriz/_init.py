"""runastrodriz initialisation (hap-pipeline.md §3.1) and pipeline-default WCS (§3.2).

Everything here works on explicit folders: the run's working folder is the input's folder, or
``<newpath>/<rootname>`` when a ``newpath`` is given (the files are copied there and moved back
at the end, drizzlepac's ``_createWorkingDir``/``_copyToNewWorkingDir``/``_restoreResults``);
the current directory is never changed.

Offline replacements (§4): the pipeline-default WCS is the ``IDC_<idctab>`` solution the files
already carry (active, or restored from its headerlet with stwcs) instead of ``updatewcs``
recomputing it from CRDS reference files.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .._fitsupdate import update_in_copy
from ..errors import InvalidInputError, InvalidParameterError, OutputWriteError

__all__ = [
    "ENV_APPLY_APRIORI",
    "ENV_COMPUTE_APOSTERIORI",
    "ENV_QUALITY_TESTING",
    "ENV_RESET_IDCTAB",
    "Association",
    "DrizzleInput",
    "RunInputs",
    "Switches",
    "add_skycell",
    "add_sregion",
    "apply_pipeline_default",
    "env_switch",
    "find_calibrated",
    "pipeline_default_wcsname",
    "prepare_inputs",
    "read_association",
    "read_drizcorr",
    "read_switches",
    "select_good_images",
    "trailer_logging",
    "trailer_root",
    "working_directory",
    "write_pipeline_asn",
]

log = logging.getLogger(__name__)

ENV_COMPUTE_APOSTERIORI = "ASTROMETRY_COMPUTE_APOSTERIORI"
ENV_APPLY_APRIORI = "ASTROMETRY_APPLY_APRIORI"
ENV_RESET_IDCTAB = "PIPELINE_RESET_IDCTAB"
ENV_QUALITY_TESTING = "PIPELINE_QUALITY_TESTING"

_TRUE = ("on", "yes", "true")
_FALSE = ("off", "no", "false")
#: Calibrated-product suffixes in stsci.tools ``buildRootname``'s search order.
CALIBRATED_SUFFIXES = ("_crj.fits", "_flt.fits", "_flc.fits")
#: Trailer line format (runastrodriz's, without debug).
TRAILER_FORMAT = "[%(levelname)-8s] %(message)s"
TRAILER_DEBUG_FORMAT = "[%(levelname)s:%(name)s] %(message)s"
#: Third-party loggers kept at WARNING during a run (unless debugging).
_CHATTY_LOGGERS = ("stwcs", "stwcs.wcsutil.headerlet", "stwcs.wcsutil.altwcs", "stwcs.updatewcs")


# ----------------------------------------------------------------------------- names
def trailer_root(input_name) -> str:
    """The trailer root of an input name (§3.1): the name up to ``_raw`` or ``_asn``, else up to
    its last ``_`` (the whole name when there is none, or only at position 0).

    >>> trailer_root("j8cw04010_asn.fits"), trailer_root("ib4606c5q_flc.fits")
    ('j8cw04010', 'ib4606c5q')
    """
    name = Path(input_name).name
    for marker in ("_raw", "_asn"):
        if marker in name:
            return name[:name.find(marker)]
    index = name.rfind("_")
    return name[:index] if index > 0 else name


def env_switch(name: str, default: bool) -> bool:
    """An environment switch (hap-pipeline.md §0): ``on/yes/true`` -> True, ``off/no/false`` ->
    False, case-insensitive; unset or empty -> ``default``.

    Raises
    ------
    InvalidParameterError
        Any other value (the message names the variable and the value).
    """
    value = os.environ.get(name)
    if value is None or not value.strip():
        return bool(default)
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidParameterError(f"environment variable {name}={value!r} must be one of "
                                f"{', '.join(_TRUE + _FALSE)} (any case)")


@dataclass(frozen=True)
class Switches:
    """The run's switches after the environment (§3.1).

    Attributes
    ----------
    compute_aposteriori : bool
        ``ASTROMETRY_COMPUTE_APOSTERIORI``, default the ``align_to_gaia`` argument (``-g``
        turns it off; the variable always wins).
    apply_apriori : bool
        ``ASTROMETRY_APPLY_APRIORI``, default on.
    reset_idctab : bool
        ``PIPELINE_RESET_IDCTAB``, default off.
    quality_testing : bool
        ``PIPELINE_QUALITY_TESTING``, default off.
    """

    compute_aposteriori: bool
    apply_apriori: bool
    reset_idctab: bool
    quality_testing: bool


def read_switches(align_to_gaia: bool = True) -> Switches:
    """Read the four environment switches (§3.1); see :class:`Switches`."""
    return Switches(compute_aposteriori=env_switch(ENV_COMPUTE_APOSTERIORI, align_to_gaia),
                    apply_apriori=env_switch(ENV_APPLY_APRIORI, True),
                    reset_idctab=env_switch(ENV_RESET_IDCTAB, False),
                    quality_testing=env_switch(ENV_QUALITY_TESTING, False))


@contextmanager
def trailer_logging(trailer: Path, *, debug: bool = False):
    """Send every ``hapgpu`` log record of the run to the trailer ``trailer`` (appended).

    The handler is added for the duration of the block and removed after it; the ``hapgpu``
    logger's level is lowered to INFO (DEBUG with ``debug``) for the run and restored.
    """
    handler = logging.FileHandler(trailer, mode="a", encoding="utf-8")
    level = logging.DEBUG if debug else logging.INFO
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(TRAILER_DEBUG_FORMAT if debug else TRAILER_FORMAT))
    logger = logging.getLogger("hapgpu")
    previous = logger.level
    # stwcs logs every headerlet call at INFO (to the console through the root logger); the
    # run keeps its warnings only
    quiet = {name: logging.getLogger(name).level for name in _CHATTY_LOGGERS}
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    if not debug:
        for name in quiet:
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
        for name, value in quiet.items():
            logging.getLogger(name).setLevel(value)
        handler.close()


# ----------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class DrizzleInput:
    """One drizzle of the run: the exposures of one product.

    Attributes
    ----------
    output : str
        Product root with its folder, lower case (``<dir>/<rootname>``): the product is
        ``<output>_drz.fits`` (``_drc.fits`` from FLC files), as ``astrodrizzle(files, output)``
        writes it.
    files : tuple of pathlib.Path
        The exposures (absolute paths), all FLT or all FLC.
    """

    output: str
    files: tuple

    @property
    def product(self) -> Path:
        """The product's path (``_drc`` when the exposures are FLC files)."""
        cte = all(Path(f).name.endswith("_flc.fits") for f in self.files)
        return Path(f"{self.output}_{'drc' if cte else 'drz'}.fits")


@dataclass(frozen=True)
class Association:
    """An association table's members (§3.1).

    Attributes
    ----------
    members : list of str
        Rootnames (lower case) of the exposures marked present (``MEMTYPE`` starting with
        ``EXP``, ``MEMPRSNT`` true), in table order.
    product : str
        The product rootname, lower case: the first ``PROD-DTH`` member, else ``PROD-RPT``,
        else ``PROD-CRJ``, else the table name up to its first ``_``.
    """

    members: list
    product: str


@dataclass
class RunInputs:
    """What the run works on (§3.1), every path absolute in the working folder.

    Attributes
    ----------
    input : pathlib.Path
        The input file in the working folder.
    workdir : pathlib.Path
    root : str
        Trailer root (:func:`trailer_root`).
    is_asn : bool
    product_root : str
        Rootname of the products (the association's product, or the exposure's rootname).
    member : str
        Rootname of the first member (whose ``_raw`` file holds DRIZCORR).
    calfiles : list of pathlib.Path
        The calibrated exposures (FLT, or FLC where there is no FLT), in association order.
    calfiles_flc : list of pathlib.Path
        The FLC files of exposures that also have an FLT (empty otherwise).
    inlist : list of DrizzleInput
        The drizzles: one product, or two (``_drz`` from the FLTs, ``_drc`` from the FLCs).
    pipeline_asn : pathlib.Path or None
        The lower-cased association copy ``<asn>_pipeline_asn.fits`` (deleted at the end).
    """

    input: Path
    workdir: Path
    root: str
    is_asn: bool
    product_root: str
    member: str
    calfiles: list = field(default_factory=list)
    calfiles_flc: list = field(default_factory=list)
    inlist: list = field(default_factory=list)
    pipeline_asn: Path | None = None

    @property
    def trailer(self) -> Path:
        return self.workdir / f"{self.root}.tra"

    @property
    def manifest(self) -> Path:
        return self.workdir / f"{self.root}_manifest.txt"

    @property
    def all_files(self) -> list:
        return list(self.calfiles) + list(self.calfiles_flc)

    @property
    def input_product(self) -> Path:
        """The file whose primary header gets ``DRIZCORR = COMPLETE`` (§3.10): the calibrated
        exposure of a singleton, the lower-cased association copy of an association."""
        if self.is_asn and self.pipeline_asn is not None:
            return self.pipeline_asn
        return self.calfiles[0]


def _text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).split("\0", 1)[0].strip()


def read_association(path) -> Association:
    """Read an association table (``<asn>_asn.fits``; binary table in extension 1 with
    ``MEMNAME``, ``MEMTYPE`` and ``MEMPRSNT``).

    Raises
    ------
    InvalidInputError
        The file cannot be read, lacks a column, or lists no present exposure.
    """
    from astropy.io import fits

    path = Path(path)
    try:
        with fits.open(path, memmap=False) as hdul:
            if len(hdul) < 2 or not hasattr(hdul[1], "columns"):
                raise InvalidInputError(f"{path}: not an association table (no table in extension 1)")
            names = [c.upper() for c in hdul[1].columns.names]
            for column in ("MEMNAME", "MEMTYPE", "MEMPRSNT"):
                if column not in names:
                    raise InvalidInputError(f"{path}: association table has no {column} column")
            data = hdul[1].data
            rows = [(_text(r["MEMNAME"]), _text(r["MEMTYPE"]).upper(), bool(r["MEMPRSNT"]))
                    for r in data]
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the association table ({exc})") from None
    members = [name.lower() for name, kind, present in rows
               if kind.startswith("EXP") and present and not name.endswith("*")]
    if not members:
        raise InvalidInputError(f"{path}: the association lists no exposure that is present "
                                "(MEMTYPE EXP-*, MEMPRSNT true)")
    product = None
    for wanted in ("PROD-DTH", "PROD-RPT", "PROD-CRJ"):
        product = next((name for name, kind, _ in rows if kind.startswith(wanted)), None)
        if product:
            break
    return Association(members, (product or path.name.split("_")[0]).lower())


def write_pipeline_asn(asn: Path) -> Path:
    """Write ``<asn>_pipeline_asn.fits``: a copy of the association with lower-case
    ``MEMNAME`` values (runastrodriz ``_lowerAsn``); written under a temporary name, renamed.

    Returns
    -------
    pathlib.Path
    """
    from astropy.io import fits

    asn = Path(asn)
    target = asn.with_name(asn.name.replace("_asn.fits", "_pipeline_asn.fits"))
    temp = target.with_name(f".{target.name}.tmp")
    try:
        with fits.open(asn, memmap=False) as hdul:
            data = hdul[1].data
            for i in range(len(data)):
                data[i]["MEMNAME"] = _text(data[i]["MEMNAME"]).lower()
            hdul.writeto(temp, overwrite=True)
        os.replace(temp, target)
    except OSError as exc:
        if temp.exists():
            temp.unlink()
        raise OutputWriteError(f"{target}: cannot write the lower-case association copy ({exc})") from None
    return target


def find_calibrated(folder: Path, rootname: str, suffixes=CALIBRATED_SUFFIXES) -> Path | None:
    """The first existing ``<rootname><suffix>`` in ``folder`` (stsci.tools ``buildRootname``
    order: ``_crj``, ``_flt``, ``_flc``), or None."""
    for suffix in suffixes:
        candidate = Path(folder) / f"{rootname}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def read_drizcorr(raw: Path, calibrated: Path | None = None) -> str | None:
    """``DRIZCORR`` of the ``_raw`` file's primary header (§3.1).

    When the raw file is missing, the calibrated exposure's primary header is read instead
    (it carries the same switch) and a warning names the missing file.

    Returns
    -------
    str or None
        The value upper-cased, None when the keyword is absent.

    Raises
    ------
    InvalidInputError
        Neither file can be read.
    """
    from astropy.io import fits

    source = Path(raw)
    if not source.is_file():
        if calibrated is None:
            raise InvalidInputError(f"{raw}: RAW file not found; DRIZCORR cannot be read "
                                    "(use -f to drizzle regardless)")
        log.warning("%s not found; DRIZCORR read from %s", source.name, Path(calibrated).name)
        source = Path(calibrated)
    try:
        header = fits.getheader(source, 0)
    except OSError as exc:
        raise InvalidInputError(f"{source}: cannot read the primary header ({exc})") from None
    value = header.get("DRIZCORR")
    return None if value is None else str(value).strip().upper()


def prepare_inputs(input_path, workdir: Path | None = None) -> RunInputs:
    """Find what an input names (§3.1): an association or a singleton.

    Parameters
    ----------
    input_path : path-like
        ``<asn>_asn.fits``, ``<rootname>_raw.fits`` or a calibrated exposure
        (``_flt``/``_flc``/``_crj``).
    workdir : pathlib.Path, optional
        Folder holding the files (default: the input's folder).

    Returns
    -------
    RunInputs
        Without ``pipeline_asn`` (see :func:`write_pipeline_asn`).

    Raises
    ------
    InvalidInputError
        The input does not exist, is not a FITS file of a known kind, or (singleton) has no
        calibrated exposure.
    """
    given = Path(input_path)
    workdir = Path(workdir if workdir is not None else given.absolute().parent).absolute()
    path = workdir / given.name
    name = path.name
    if not path.is_file():
        raise InvalidInputError(f"{path}: input file not found" if not path.exists()
                                else f"{path}: input is not a file")
    root = trailer_root(name)
    if "_asn" in name:
        asn = read_association(path)
        calfiles, calfiles_flc, missing = [], [], []
        for member in asn.members:
            cal = find_calibrated(workdir, member)
            if cal is None:
                missing.append(member)
                continue
            calfiles.append(cal)
            flc = workdir / f"{member}_flc.fits"
            if flc.is_file() and flc != cal:
                calfiles_flc.append(flc)
        if missing:
            log.warning("%s: no calibrated file (%s) for member(s) %s", name,
                        "/".join(s.split(".")[0] for s in CALIBRATED_SUFFIXES), ", ".join(missing))
        run = RunInputs(path, workdir, root, True, asn.product, asn.members[0], calfiles,
                        calfiles_flc)
        # the FLC list of an ASN is every member's existing _flc (drizzlepac): duplicated
        # members get an FLT product and an FLC product
        if calfiles_flc and len(calfiles_flc) != len(calfiles):
            log.warning("%s: only %d of %d exposures have an FLC file; the FLC product combines "
                        "those", name, len(calfiles_flc), len(calfiles))
    else:
        stem = name.removesuffix(".fits")
        if stem.endswith("_raw"):
            rootname = stem[:-len("_raw")]
            cal = find_calibrated(workdir, rootname)
            if cal is None:
                raise InvalidInputError(f"{path}: no calibrated exposure ({rootname}_flt.fits or "
                                        f"{rootname}_flc.fits) beside the RAW file")
        elif any(name.endswith(s) for s in CALIBRATED_SUFFIXES):
            rootname = name[:name.rfind("_")]
            cal = path
        else:
            raise InvalidInputError(f"{path}: not an association (_asn.fits), RAW (_raw.fits) or "
                                    "calibrated (_flt/_flc/_crj.fits) file")
        flc = workdir / f"{rootname}_flc.fits"
        calfiles_flc = [flc] if flc.is_file() and flc != cal else []
        run = RunInputs(path, workdir, root, False, rootname.lower(), rootname, [cal], calfiles_flc)
    output = str(workdir / run.product_root.lower())
    if run.calfiles:
        run.inlist = [DrizzleInput(output, tuple(run.calfiles))]
        if run.calfiles_flc:
            run.inlist.append(DrizzleInput(output, tuple(run.calfiles_flc)))
    return run


# ----------------------------------------------------------------------------- newpath
def _related_files(folder: Path, input_name: str) -> list:
    """Files of ``folder`` named ``<rootname>*`` for the input and (association) every member
    and the product (runastrodriz ``_copyToNewWorkingDir``)."""
    roots = [input_name[:input_name.find("_")] if "_" in input_name else input_name]
    if "_asn" in input_name:
        asn = read_association(folder / input_name)
        roots += asn.members + [asn.product]
    found = []
    for root in roots:
        for candidate in sorted(glob.glob(str(folder / glob.escape(root)) + "*")):
            path = Path(candidate)
            if path.is_file() and path not in found:
                found.append(path)
        for candidate in sorted(glob.glob(str(folder / glob.escape(root.upper())) + "*")):
            path = Path(candidate)
            if path.is_file() and path not in found:
                found.append(path)
    return found


@contextmanager
def working_directory(input_path, newpath=None):
    """The run's working folder (§3.1 ``newpath``).

    Without ``newpath`` it is the input's folder. With it, ``<newpath>/<rootname>`` is made
    (rootname: the input name up to its first ``_``), the related files (:func:`_related_files`)
    are copied there, and at the end every file of it is moved back to the input's folder and
    the folder removed (also after an error, so nothing is lost).

    Yields
    ------
    pathlib.Path
        The working folder (absolute).
    """
    origin = Path(input_path).absolute().parent
    if newpath is None:
        yield origin
        return
    name = Path(input_path).name
    if not (origin / name).is_file():
        raise InvalidInputError(f"{origin / name}: input file not found")
    rootname = name[:name.find("_")] if "_" in name else name
    work = Path(newpath).absolute() / rootname
    try:
        work.mkdir(parents=True, exist_ok=True)
        for path in _related_files(origin, name):
            shutil.copy2(path, work / path.name)
    except OSError as exc:
        raise OutputWriteError(f"{work}: cannot prepare the working folder ({exc})") from None
    try:
        yield work
    finally:
        for item in sorted(work.iterdir()):
            target = origin / item.name
            if item.is_dir() and target.is_dir():
                shutil.rmtree(target)
            shutil.move(str(item), str(target))
        work.rmdir()


# ----------------------------------------------------------------------------- headers
def _quiet_update(path: Path, work):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return update_in_copy(path, work, prefix=".hapgpu-rad-")


def add_sregion(files) -> None:
    """Compute ``S_REGION`` in every SCI header of each exposure (§3.1: the four corner pixel
    centres through the chip's WCS; hapgpu.svm's ``compute_sregion``)."""
    from ..svm._headers import compute_sregion

    for path in files:
        path = Path(path)
        _quiet_update(path, lambda hdul, p=path: compute_sregion(hdul, path=p))


def _idc_rootname(idctab: str) -> str:
    """``iref$2731450pi_idc.fits`` -> ``2731450pi`` (stwcs ``extract_rootname``)."""
    text = str(idctab).strip()
    text = text.split("$")[-1].split("/")[-1]
    return text.split("_idc")[0].split(".fits")[0]


def pipeline_default_wcsname(path, idctab: str | None = None) -> str:
    """The pipeline-default WCSNAME of an exposure: ``IDC_<rootname of IDCTAB>`` (§0).

    Parameters
    ----------
    path : path-like
    idctab : str, optional
        IDCTAB to use instead of the file's own (``PIPELINE_RESET_IDCTAB``: the RAW one).

    Raises
    ------
    InvalidInputError
        No IDCTAB in the primary header (and none given).
    """
    from astropy.io import fits

    if idctab is None:
        try:
            idctab = fits.getheader(path, 0).get("IDCTAB")
        except OSError as exc:
            raise InvalidInputError(f"{path}: cannot read the primary header ({exc})") from None
    if not idctab or str(idctab).strip().upper() in ("N/A", "NONE", ""):
        raise InvalidInputError(f"{path}: primary header has no IDCTAB, so the pipeline-default "
                                "WCS (IDC_<idctab>) is unknown")
    return f"IDC_{_idc_rootname(idctab)}"


def apply_pipeline_default(files, idctab: str | None = None) -> dict:
    """Make the pipeline-default WCS ``IDC_<idctab>`` active in each exposure (§3.2 offline).

    drizzlepac runs ``updatewcs(use_db=False)``, which recomputes that WCS from the IDCTAB,
    NPOLFILE and D2IMFILE reference files. Offline the files already carry it (§4): when the
    active WCSNAME is the ``IDC_*`` name the file is left as it is; otherwise the headerlet of
    that name (the first one, in file order) is restored as the primary WCS with stwcs
    ``restore_from_headerlet(archive=True, force=True)`` (the replaced WCS stays in the file),
    and ``HDRNAME`` is removed from the SCI headers, as ``restore_pipeline_default`` does.
    When no such headerlet exists the active WCS is kept and a warning names the file.

    Parameters
    ----------
    files : sequence of path-like
    idctab : str, optional
        IDCTAB whose solution to apply (default each file's own).

    Returns
    -------
    dict
        File path -> the WCSNAME active afterwards.
    """
    from astropy.io import fits
    from stwcs.wcsutil import (
        headerlet,  # imported before the log guard: its import adds a handler
    )

    from ..svm._grism import _no_headerlet_log

    result = {}
    for path in files:
        path = Path(path)
        wanted = pipeline_default_wcsname(path, idctab)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path, memmap=False) as hdul:
                active = str(hdul["SCI", 1].header.get("WCSNAME", "")).strip()
                hlets = [(str(h.header.get("HDRNAME", "")), str(h.header.get("WCSNAME", "")).strip())
                         for h in hdul if h.name == "HDRLET"]
        if active == wanted:
            result[path] = active
            continue
        hdrname = next((h for h, w in hlets if w == wanted), None)
        if hdrname is None:
            log.warning("%s: active WCS is %s and no %s headerlet is attached; the pipeline-default "
                        "WCS cannot be made offline, the active WCS is kept", path.name,
                        active or "unnamed", wanted)
            result[path] = active
            continue

        def work(hdul, hdrname=hdrname):
            headerlet.restore_from_headerlet(hdul, hdrname=hdrname, archive=True, force=True,
                                             logging=False)
            for hdu in hdul:
                if hdu.name == "SCI" and "HDRNAME" in hdu.header:
                    del hdu.header["HDRNAME"]

        try:
            with _no_headerlet_log():
                _quiet_update(path, work)
        except (ValueError, KeyError) as exc:  # stwcs refuses (duplicate names, broken headerlet)
            raise InvalidInputError(f"{path}: cannot restore the {wanted} headerlet ({exc})") from None
        log.info("%s: pipeline-default WCS %s restored from its headerlet (was %s)", path.name,
                 wanted, active or "unnamed")
        result[path] = wanted
    return result


def add_skycell(files) -> None:
    """Write ``SKYCELL`` into the SCI headers of each exposure (§3.2 step 2)."""
    from ..skycells import add_skycell_keyword

    for path in files:
        add_skycell_keyword(path)


def select_good_images(calfiles) -> list:
    """The exposures with data (§3.2 step 4): ``EXPTIME`` > 0 and ``NGOODPIX`` of SCI,1 > 0.

    Raises
    ------
    InvalidInputError
        A file that cannot be read or has no SCI,1 extension.
    """
    from astropy.io import fits

    good = []
    for path in calfiles:
        try:
            with fits.open(path, memmap=False) as hdul:
                exptime = float(hdul[0].header.get("EXPTIME", 0.0) or 0.0)
                ngood = float(hdul["SCI", 1].header.get("NGOODPIX", 0) or 0)
        except KeyError:
            raise InvalidInputError(f"{path}: no SCI,1 extension") from None
        except (OSError, ValueError, TypeError) as exc:
            raise InvalidInputError(f"{path}: cannot read EXPTIME/NGOODPIX ({exc})") from None
        if exptime > 0 and ngood > 0:
            good.append(Path(path))
        else:
            log.info("%s: no usable data (EXPTIME %g, NGOODPIX %g)", Path(path).name, exptime, ngood)
    return good
