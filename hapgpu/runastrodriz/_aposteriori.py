"""A posteriori astrometry through the alignment engine (hap-pipeline.md §3.8, §3.9).

* :func:`update_wcs_in_list`: before a fit, give every exposure of the association the same
  active WCS, the first of :data:`WCS_PREFERENCE` that all of them carry for their current
  IDCTAB (so that no zero-point difference between solutions is imprinted on the fit).
* :func:`align_aposteriori`: drizzlepac's ``align.perform_align`` with runastrodriz' settings
  (:func:`hapgpu.align.align_exposures` with ``fit_label="REL"``: methods relative, 2dhist,
  default; catalogues GAIAeDR3, GSC242, 2MASS; ``MAX_SOURCES_PER_CHIP`` 250, 500 for ACS/WFC;
  the SVM ``<inst>_<det>_alignment_all`` block), headerlet files ``<root>_flt_hlet.fits``, then
  the FLC solution propagated to the FLT files (fit keywords, the headerlet applied as primary
  with the old WCS archived, ``WCSTYPE``).

The reference catalogue is ``refcat`` (a local file, a Table or a catalogue-service URL) or,
with None, the service at ``$ASTROMETRIC_CATALOG_URL``; without a reachable catalogue the
stage fails (status 1 for every image) and the files are unchanged, as in drizzlepac.
"""

from __future__ import annotations

import fnmatch
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from astropy.io import fits

from .._fitsupdate import update_in_copy
from ..errors import BackendUnavailableError, HapGpuError, InvalidInputError

__all__ = [
    "APOSTERIORI_CATALOGS",
    "WCS_PREFERENCE",
    "AposterioriOutcome",
    "align_aposteriori",
    "propagate_fit",
    "update_wcs_in_list",
]

log = logging.getLogger(__name__)

#: drizzlepac ``wcs_preference``: the WCS to make common to an association, best first.
WCS_PREFERENCE = (
    "IDC_?????????-FIT_REL_GAIA*3", "IDC_?????????-FIT_IMG_GAIA*3",
    "IDC_?????????-FIT_REL_GAIADR2", "IDC_?????????-FIT_IMG_GAIADR2",
    "IDC_?????????-FIT_REL_GAIADR1", "IDC_?????????-FIT_IMG_GAIADR1",
    "IDC_?????????-GSC240", "IDC_?????????",
)
#: runastrodriz' catalogue loop (``run_align.catalog_list`` of the SVM alignment block).
APOSTERIORI_CATALOGS = ("GAIAeDR3", "GSC242", "2MASS")
#: Fit keywords copied from an FLC SCI header to its FLT (name, value when absent).
_FIT_KEYWORDS = (("RMS_RA", -1.0), ("RMS_DEC", -1.0), ("CRDER1", -1.0), ("CRDER2", -1.0),
                 ("NMATCHES", 0), ("FITGEOM", "N/A"), ("HDRNAME", ""))


# ----------------------------------------------------------------------------- common WCS
def _idc_pattern(path: Path) -> str:
    try:
        idctab = str(fits.getval(path, "IDCTAB", ext=0))
    except KeyError:
        raise InvalidInputError(f"{path}: no IDCTAB in the primary header") from None
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the exposure ({exc})") from None
    return "IDC_{}*".format(idctab.split("$")[-1].split("_")[0])


def update_wcs_in_list(files) -> str | None:
    """Make one WCS solution active in every exposure (drizzlepac ``update_wcs_in_list``).

    1. Every SCI header gets a ``HDRNAME`` (``<file>_<WCSNAME>_hlet.fits``) when missing.
    2. The names common to all exposures (alternate WCSs and headerlets, :func:`hapgpu.svm.
       _grism.collect_wcs_names`) are restricted to ``IDC_<current IDCTAB rootname>*``.
    3. The first pattern of :data:`WCS_PREFERENCE` that one of them matches is chosen (among
       several matches of one pattern, the first in sorted order; drizzlepac takes the first in
       set order, which is arbitrary) and made active in every exposure that has names
       (:func:`hapgpu.svm._grism.update_active_wcs`).

    Parameters
    ----------
    files : sequence of str or os.PathLike
        The FLC (else FLT) files of the association, updated in place.

    Returns
    -------
    str or None
        The WCSNAME now active in every exposure, or None when no preferred name is common to
        them (nothing changes).

    Raises
    ------
    IncompatibleInputsError
        Two exposures share no WCS name (drizzlepac exits with 1).
    InvalidInputError
        A file cannot be read or written, or has no IDCTAB.

    Notes
    -----
    ``DRIZCORR = OMIT`` exposures would be updated from the astrometry database by drizzlepac
    (``updatewcs(use_db=True)``); offline the solutions they carry are used (logged).
    drizzlepac's runastrodriz copy of ``update_active_wcs`` deletes alternate WCSs already kept
    as headerlets and restores with ``force=True``; the shared helper archives them instead
    and resets a priori fit keywords, which leaves the same active WCS.
    """
    from ..svm._grism import _verify_sci_hdrname, collect_wcs_names, update_active_wcs

    paths = [Path(f) for f in files]
    patterns = []
    for path in paths:
        patterns.append(_idc_pattern(path))
        if str(fits.getval(path, "DRIZCORR", ext=0, default="")).strip().upper() == "OMIT":
            log.warning("%s: DRIZCORR = OMIT; the astrometry database is not consulted "
                        "(offline), the WCS solutions already in the file are used", path.name)
        _verify_sci_hdrname(path)
    common, skipped = collect_wcs_names(paths, "direct")
    log.info("WCS solutions common to all exposures: %s", sorted(common))
    current = sorted({n for p in set(patterns) for n in fnmatch.filter(common, p)})
    if not current:
        log.info("no common WCS solution for the current IDCTAB (%s)", ", ".join(sorted(set(patterns))))
    chosen = None
    for pattern in WCS_PREFERENCE:
        matches = [n for n in current if fnmatch.fnmatchcase(n, pattern)]
        if matches:
            chosen = matches[0]
            break
    if chosen is None:
        return None
    log.info("WCS made active in every exposure: %s", chosen)
    for path in paths:
        if path not in skipped:
            update_active_wcs(path, chosen)
    return chosen


# ----------------------------------------------------------------------------- the fit
@dataclass
class AposterioriOutcome:
    """What :func:`align_aposteriori` did.

    Attributes
    ----------
    status : dict of str to int
        Image file name -> drizzlepac's status (0 aligned, 1 not).
    succeeded : bool
        Every image has status 0 (the stage goes on to verification).
    table : astropy.table.Table or None
        One row per image (:meth:`hapgpu.align.AlignmentResult.to_table`).
    result : hapgpu.align.AlignmentResult or None
        The engine's full result (None when it raised).
    n_matched : int
        Matches of the first image's fit (drizzlepac's ``matchSources`` of row 0; -1 when
        there was no fit).
    fraction_matched : float
        ``n_matched`` over the size of the reference catalogue of the fit (1.0 without one).
    headerlet_files : list of str
        Headerlet files written (``<root>_flt_hlet.fits``).
    wcsname : str or None
        WCSNAME of the fit in the first image.
    message : str
    """

    status: dict
    succeeded: bool
    table: object = None
    result: object = None
    n_matched: int = -1
    fraction_matched: float = 1.0
    headerlet_files: list = field(default_factory=list)
    wcsname: str | None = None
    message: str = ""


def _pipeline_pars(path: Path):
    """Alignment parameters of the SVM ``<inst>_<det>_alignment_all`` block (drizzlepac's
    ``align.get_default_pars``), for the first exposure's instrument and detector."""
    from ..align import alignment_pars_from_hap
    from ..svm._config import hap_config

    header = fits.getheader(path, 0)
    inst = str(header.get("INSTRUME", "")).strip()
    det = header.get("DETECTOR")
    filt = str(header.get("FILTER", header.get("FILTER1", "")) or "").strip().lower() or None
    config = hap_config("filter", inst, str(det or "pc"), n_exposures=1, filters=filt,
                        expstart_mjd=header.get("EXPSTART"))
    pars = alignment_pars_from_hap(config.alignment, inst, det,
                                   source=f"SVM alignment parameters of {inst}/{det}")
    catalogs = config.alignment.get("run_align", {}).get("catalog_list") or APOSTERIORI_CATALOGS
    return pars, [str(c) for c in catalogs]


def propagate_fit(flt, flc, headerlet_file) -> None:
    """Give an FLT file the a posteriori solution of its FLC (drizzlepac
    ``_update_wcs_fit_keywords`` and ``apply_headerlet``).

    ``UPWCSVER``/``PYWCSVER`` and, per SCI extension, ``RMS_RA``, ``RMS_DEC``, ``CRDER1``,
    ``CRDER2``, ``NMATCHES``, ``FITGEOM``, ``HDRNAME`` are copied from the FLC (defaults -1,
    0, ``N/A``, empty when the FLC lacks them); the headerlet is applied as the primary WCS
    (stwcs ``apply_headerlet_as_primary(attach=True, archive=True)``: the previous WCS kept as
    an alternate and a headerlet); then ``WCSTYPE`` is copied.

    Parameters
    ----------
    flt, flc : str or os.PathLike
        The FLT (updated in place, through a temporary copy) and its FLC.
    headerlet_file : str or os.PathLike
        The FLC's new headerlet file.

    Raises
    ------
    InvalidInputError
        A file cannot be read or written, or the headerlet does not apply.
    """
    from stwcs.wcsutil import headerlet

    flt, flc = Path(flt), Path(flc)
    with fits.open(flc) as src:
        primary = src[0].header
        versions = {k: primary.get(k) for k in ("UPWCSVER", "PYWCSVER")}
        chips = {h.ver: h.header.copy() for h in src if h.name == "SCI"}

    def work(hdul):
        header = hdul[0].header
        before = after = None
        if "HISTORY" in header:
            before = "HISTORY"
        elif "ASN_MTYP" in header:
            after = "ASN_MTYP"
        header.set("UPWCSVER", versions["UPWCSVER"], "Version of STWCS used to update the WCS",
                   before=before, after=after)
        header.set("PYWCSVER", versions["PYWCSVER"],
                   "Version of Astropy used to update the WCS", after="UPWCSVER")
        for hdu in hdul:
            if hdu.name != "SCI":
                continue
            source = chips.get(hdu.ver, fits.Header())
            for key, default in _FIT_KEYWORDS:
                hdu.header.set(key, source.get(key, default), after="WCSNAME")
        try:
            # apply_headerlet_as_primary(flt, hlet, attach=True, archive=True) on the open copy
            # (that function iterates over an HDUList as if it were a list of file names)
            hlet = headerlet.Headerlet.fromfile(str(headerlet_file), logging=False)
            hlet.apply_as_primary(hdul, attach=True, archive=True)
        except (ValueError, KeyError, OSError, TypeError) as exc:
            raise InvalidInputError(f"{flt}: cannot apply the headerlet {headerlet_file} of "
                                    f"{flc.name} ({type(exc).__name__}: {exc})") from None
        for hdu in hdul:
            if hdu.name == "SCI" and "WCSTYPE" in chips.get(hdu.ver, {}):
                hdu.header["WCSTYPE"] = chips[hdu.ver]["WCSTYPE"]
        return True

    from ..svm._grism import _no_headerlet_log

    with warnings.catch_warnings(), _no_headerlet_log():
        warnings.simplefilter("ignore")
        update_in_copy(flt, work, prefix=".hapgpu-aposteriori-")
    log.info("%s: a posteriori solution of %s applied (%s)", flt.name, flc.name,
             Path(headerlet_file).name)


def align_aposteriori(alignfiles, flt_files=None, *, refcat=None, backend=None,
                      catalogs=None, timeout: float = 10.0) -> AposterioriOutcome:
    """Fit the association to an astrometric catalogue and write the solution (§3.8 steps 3-5).

    Parameters
    ----------
    alignfiles : sequence of str or os.PathLike
        The FLC files (else the FLT files), fitted and updated in place.
    flt_files : sequence of str or os.PathLike, optional
        The FLT files matching ``alignfiles`` one to one, when ``alignfiles`` are FLCs: they
        get the FLC solution (:func:`propagate_fit`) when every image is aligned.
    refcat : None, str, os.PathLike, astropy.table.Table or CatalogProvider, keyword-only
        Reference catalogue (see :func:`hapgpu.align.align_exposures`); it stands for the
        first catalogue of the loop unless its metadata names one.
    backend : str, Backend or None, keyword-only
        Backend of the source finding.
    catalogs : sequence of str, optional, keyword-only
        Catalogue loop (default: the alignment block's ``catalog_list``, GAIAeDR3, GSC242,
        2MASS).
    timeout : float, keyword-only
        Seconds allowed per catalogue-service request.

    Returns
    -------
    AposterioriOutcome
        ``succeeded`` False (and the files unchanged) when an image is not aligned or the
        engine raised; the reason is in ``message`` and the log, as drizzlepac logs it.

    Raises
    ------
    BackendUnavailableError
        ``backend`` cannot run here.
    InvalidInputError
        ``flt_files`` and ``alignfiles`` differ in length, or an FLT cannot be updated.
    """
    from ..align import align_exposures

    paths = [Path(f) for f in alignfiles]
    flts = [Path(f) for f in flt_files] if flt_files else []
    if flts and len(flts) != len(paths):
        raise InvalidInputError(f"align_aposteriori: {len(paths)} align files but {len(flts)} "
                                "FLT files; they must match one to one")
    if not paths:
        raise InvalidInputError("align_aposteriori: no files to align")
    try:
        pars, default_catalogs = _pipeline_pars(paths[0])
        result = align_exposures([str(p) for p in paths], refcat=refcat,
                                 catalogs=list(catalogs or default_catalogs), fit_label="REL",
                                 update=True, backend=backend, headerlet_files=True,
                                 timeout=timeout, pars=pars)
    except BackendUnavailableError:
        raise
    except (HapGpuError, OSError, ValueError, RuntimeError) as exc:
        message = f"no a posteriori fit ({type(exc).__name__}: {exc})"
        log.warning("EXCEPTION encountered in align: %s; no correction to the absolute "
                    "astrometric frame applied", message)
        return AposterioriOutcome({p.name: 1 for p in paths}, False, message=message)
    status = {Path(e.filename).name: e.status.code for e in result.exposures}
    table = result.to_table()
    outcome = AposterioriOutcome(status, all(v == 0 for v in status.values()), table, result,
                                 message=result.message)
    for exp in result.exposures:
        if exp.status.code == 0:
            log.info("Successfully aligned %s to %s astrometric frame", Path(exp.filename).name,
                     exp.catalog)
        else:
            log.info("Could not align %s to absolute astrometric frame",
                     Path(exp.filename).name)
    if not outcome.succeeded:
        return outcome
    first = result.exposures[0]
    outcome.n_matched = int(first.n_matches)
    n_reference = result.catalog_sizes.get(first.catalog, -1)
    outcome.fraction_matched = (first.n_matches / n_reference) if n_reference > 0 else 1.0
    outcome.wcsname = first.wcsname
    outcome.headerlet_files = [e.headerlet_file for e in result.exposures if e.headerlet_file]
    for flt, exp in zip(flts, result.exposures):
        if exp.headerlet_file:
            propagate_fit(flt, exp.filename, exp.headerlet_file)
        else:
            log.info("%s: no absolute astrometric headerlet applied", flt.name)
    return outcome
