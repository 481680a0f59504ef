"""``align_exposures``: the alignment pipeline (sources -> catalogue -> fits -> headers).

Two procedures, as drizzlepac runs them:

* **pipeline** (``fit_label`` ``REL`` or ``IMG``; runastrodriz' ``align.perform_align``,
  §3.8/§3.9): methods outer (relative, 2dhist, default; ``IMG`` skips relative), catalogues
  inner; a quality-1 fit is taken at once, otherwise the lowest quality wins (ties: more
  matches and lower RMS); the search stops after the relative method when it gave quality
  2-4. The WCS is labelled ``FIT_REL`` when the relative method won, ``FIT_IMG`` otherwise.
  An exposure with fewer than 4 sources stops the alignment.
* **SVM/MVM** (``fit_label`` ``SVM`` or ``MVM``; ``HAPProduct.align_to_gaia``, §1.8):
  catalogues outer, methods inner, each method's fit geometry downgraded along
  ``mosaic_fitgeom_list`` while the catalogue is too small for it (fewer than 12 stars for
  ``rscale``: skipped), no consistency check, the first fit of quality 1-4 is taken; labelled
  with ``fit_label``. The methods, geometries and limits come from ``pars``
  (:func:`~hapgpu.align.alignment_pars_from_hap` maps a HAP alignment block onto them).

Alignment never stops a run: an unreachable service, too few reference stars, too few sources
or no acceptable fit leave every WCS unchanged, say so in one log line and are reported per
exposure in the result.
"""

from __future__ import annotations

import enum
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time

from ..backend import resolve_backend
from ..errors import CatalogUnavailableError, HapGpuError, InvalidInputError, InvalidParameterError
from ._fit import (
    FitQuality,
    build_correctors,
    determine_fit_quality,
    perform_fit,
    reference_weights,
)
from ._pars import AlignmentPars, alignment_pars
from ._refcat import CatalogProvider, TableCatalog, field_of, make_provider
from ._sources import find_alignment_sources
from ._update import ChipSolution, default_headerlet_filename, fit_wcsname, write_alignment

__all__ = [
    "DEFAULT_CATALOGS",
    "FIT_LABELS",
    "AlignStatus",
    "AlignmentResult",
    "ExposureAlignment",
    "FitAttempt",
    "align_exposures",
]

log = logging.getLogger(__name__)

FIT_LABELS = ("REL", "IMG", "SVM", "MVM")
#: What tweakwcs raises when a fit cannot be made (``NotEnoughCatalogs`` is a ValueError;
#: singular systems, empty tables).
_FIT_ERRORS = (ValueError, RuntimeError, ArithmeticError, KeyError, IndexError, TypeError,
               np.linalg.LinAlgError)
DEFAULT_CATALOGS = ("GAIAeDR3", "GSC242", "2MASS")


class AlignStatus(str, enum.Enum):
    """Outcome for one exposure (a ``str``, so it compares equal to its value)."""

    ALIGNED = "aligned"
    """A fit was accepted (and written unless ``update=False``)."""
    FAILED = "failed"
    """Fits were tried but none was acceptable; the WCS is unchanged."""
    SKIPPED = "skipped"
    """No fit could be tried (no catalogue, too few reference stars or sources)."""

    def __str__(self) -> str:
        return self.value

    @property
    def code(self) -> int:
        """drizzlepac's status: 0 for aligned, 1 otherwise."""
        return 0 if self is AlignStatus.ALIGNED else 1


@dataclass
class ExposureAlignment:
    """Result for one exposure.

    Attributes
    ----------
    filename : str
    status : AlignStatus
    wcsname : str
        Active WCSNAME after the call (the fitted solution's name when aligned).
    rms_ra, rms_dec : float
        Fit RMS in RA and Dec, mas (NaN when not aligned).
    n_matches : int
        Matches of the fit (``NMATCHES``; 0 when not aligned).
    fit_quality : int
        1-5 of the accepted fit, or of the best attempt (5 when none was possible).
    catalog : str or None
        Reference catalogue of the fit.
    method : str or None
        ``relative``, ``2dhist`` or ``default``.
    fit_rms : float
        RMS of the fit separations, mas.
    n_sources : int
        Sources found in the exposure.
    updated : bool
        True when the file was rewritten.
    message : str
        Why it was not aligned (empty when aligned).
    headerlet_file : str or None
        Headerlet file written.
    """

    filename: str
    status: AlignStatus
    wcsname: str
    rms_ra: float = float("nan")
    rms_dec: float = float("nan")
    n_matches: int = 0
    fit_quality: int = 5
    catalog: str | None = None
    method: str | None = None
    fit_rms: float = float("nan")
    n_sources: int = 0
    updated: bool = False
    message: str = ""
    headerlet_file: str | None = None


@dataclass
class FitAttempt:
    """One (method, catalogue) fit that was tried.

    Attributes
    ----------
    method, catalog : str
    quality : int
    total_rms : float
        mas.
    n_matches : int
    error : str
        The reason when the fit could not run.
    fitgeom : str
        Fit geometry of the attempt.
    """

    method: str
    catalog: str
    quality: int
    total_rms: float
    n_matches: int
    error: str = ""
    fitgeom: str = "rscale"
    correctors: list = field(default_factory=list, repr=False)
    verdict: FitQuality | None = field(default=None, repr=False)


@dataclass
class AlignmentResult:
    """What :func:`align_exposures` did.

    Attributes
    ----------
    exposures : list of ExposureAlignment
        In input order.
    fit_label : str
        Label asked for.
    mode : str
        ``pipeline`` or ``svm``.
    attempts : list of FitAttempt
        Every fit tried, in order.
    selected : FitAttempt or None
        The accepted fit.
    catalog_sizes : dict
        Catalogue name -> number of stars obtained (-1 when unavailable).
    message : str
        Summary line.
    """

    exposures: list
    fit_label: str
    mode: str
    attempts: list = field(default_factory=list)
    selected: FitAttempt | None = None
    catalog_sizes: dict = field(default_factory=dict)
    message: str = ""

    @property
    def aligned(self) -> bool:
        """True when a fit was accepted."""
        return self.selected is not None

    def to_table(self) -> Table:
        """One row per exposure (ECSV-ready)."""
        rows = self.exposures
        table = Table()
        table["filename"] = [os.path.basename(e.filename) for e in rows]
        table["status"] = [str(e.status) for e in rows]
        table["wcsname"] = [e.wcsname for e in rows]
        table["catalog"] = [e.catalog or "" for e in rows]
        table["method"] = [e.method or "" for e in rows]
        table["fit_quality"] = np.array([e.fit_quality for e in rows], dtype=int)
        table["rms_ra"] = np.array([e.rms_ra for e in rows], dtype=float)
        table["rms_dec"] = np.array([e.rms_dec for e in rows], dtype=float)
        table["fit_rms"] = np.array([e.fit_rms for e in rows], dtype=float)
        table["n_matches"] = np.array([e.n_matches for e in rows], dtype=int)
        table["n_sources"] = np.array([e.n_sources for e in rows], dtype=int)
        table["message"] = [e.message for e in rows]
        for name in ("rms_ra", "rms_dec", "fit_rms"):
            table[name].unit = "mas"
        table.meta["fit_label"] = self.fit_label
        table.meta["mode"] = self.mode
        table.meta["summary"] = self.message
        return table


# ----------------------------------------------------------------------------- inputs


def _as_files(files) -> list[str]:
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    try:
        names = [str(f) for f in files]
    except TypeError:
        raise InvalidParameterError("files must be a file name or a list of file names") \
            from None
    if not names:
        raise InvalidParameterError("files is empty: give at least one FLT/FLC file")
    for name in names:
        if not os.path.isfile(name):
            raise InvalidInputError(f"{name}: no such file")
    if len(set(map(os.path.abspath, names))) != len(names):
        raise InvalidParameterError("files lists the same file twice")
    return names


def _as_catalogs(catalogs) -> list[str]:
    if isinstance(catalogs, str):
        catalogs = [c for c in catalogs.split(",")]
    names = [str(c).strip() for c in (catalogs or ())]
    if not names or any(not n for n in names):
        raise InvalidParameterError(f"catalogs must name at least one catalogue, got {catalogs!r}")
    return names


def _read_exposure(name: str):
    """Instrument facts and chip WCSs of one file."""
    from stwcs.wcsutil import HSTWCS

    try:
        with fits.open(name, memmap=False) as hdul:
            primary = hdul[0].header
            versions = sorted(h.ver for h in hdul if h.name == "SCI")
            if not versions:
                raise InvalidInputError(f"{name}: no SCI extension")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                wcs = {v: HSTWCS(hdul, ext=("SCI", v)) for v in versions}
            wcsname = str(hdul["SCI", versions[0]].header.get("WCSNAME", "")).strip()
            facts = {
                "instrument": str(primary.get("INSTRUME", "")).strip(),
                "detector": primary.get("DETECTOR"),
                "date_obs": primary.get("DATE-OBS"),
                "rootname": str(primary.get("ROOTNAME", "")).strip().lower(),
            }
    except OSError as exc:
        raise InvalidInputError(f"{name}: cannot read the exposure ({exc})") from exc
    for v, w in wcs.items():
        if w.pixel_shape is None:
            with fits.open(name, memmap=False) as hdul:
                ny, nx = hdul["SCI", v].data.shape
            w.pixel_shape = (nx, ny)
    return facts, wcs, wcsname


def _epoch(date_obs, filename: str) -> float | None:
    if not date_obs:
        log.info("%s: no DATE-OBS; catalogue positions stay at their own epoch", filename)
        return None
    try:
        return float(Time(str(date_obs)).decimalyear)
    except ValueError:
        log.info("%s: unreadable DATE-OBS %r; catalogue positions stay at their own epoch",
                 filename, date_obs)
        return None


# ----------------------------------------------------------------------------- catalogues


class _Catalogues:
    """Fetch each reference catalogue once; remember why one is unavailable."""

    def __init__(self, provider: CatalogProvider, field: tuple, epoch: float | None):
        self.provider = provider
        self.field = field
        self.epoch = epoch
        self.tables: dict = {}
        self.errors: dict = {}

    def get(self, name: str) -> Table | None:
        if name in self.tables:
            return self.tables[name]
        ra, dec, radius = self.field
        try:
            table = self.provider(ra, dec, radius, self.epoch, name)
        except (CatalogUnavailableError, InvalidInputError) as exc:
            self.errors[name] = str(exc)
            log.debug("catalogue %s unavailable: %s", name, exc)
            table = None
        self.tables[name] = table
        if table is not None:
            log.info("catalogue %s: %d stars within %.2f arcmin of (%.6f, %.6f)", name,
                     len(table), radius * 60.0, ra, dec)
        return table


def _catalogue_names(provider: CatalogProvider, catalogs: list[str]) -> list[str]:
    """A single local catalogue stands for the first name (or its own name)."""
    if isinstance(provider, TableCatalog):
        return [provider.name or catalogs[0]]
    return catalogs


# ----------------------------------------------------------------------------- fits


def _attempt(method, catalog, refcat, exposures, sources, pars, *, catalogs_remaining,
             pipeline, n_reference, fitgeom) -> FitAttempt:
    correctors = build_correctors(exposures, sources, exclude_saturated=pars.exclude_saturated,
                                  weighted="weight" in refcat.colnames)
    try:
        perform_fit(method, correctors, refcat, pars, fitgeom=fitgeom)
        verdict = determine_fit_quality(correctors, pars, catalogs_remaining=catalogs_remaining,
                                        consistency_check=pipeline, n_reference=n_reference)
    except HapGpuError:
        raise
    except _FIT_ERRORS as exc:
        log.info("fit %s/%s (%s) could not run: %s", method, catalog, fitgeom, exc)
        return FitAttempt(method, catalog, 5, float("nan"), 0, error=str(exc), fitgeom=fitgeom)
    log.info("fit %s/%s (%s): quality %d, RMS %.2f mas, %d matches", method, catalog, fitgeom,
             verdict.quality, verdict.total_rms, verdict.n_matches)
    return FitAttempt(method, catalog, verdict.quality, verdict.total_rms, verdict.n_matches,
                      fitgeom=fitgeom, correctors=correctors, verdict=verdict)


def _pipeline_search(methods, names, catalogues, exposures, sources, pars, attempts):
    best = None
    for method in methods:
        for index, name in enumerate(names):
            refcat = catalogues.get(name)
            if refcat is None or len(refcat) < pars.min_catalog_threshold:
                continue
            table = refcat["RA", "DEC", "mag", "objID"]
            table.meta.update(refcat.meta)
            attempt = _attempt(method, name, table, exposures, sources, pars,
                               catalogs_remaining=index < len(names) - 1, pipeline=True,
                               n_reference=len(refcat), fitgeom=pars.method_fitgeom(method))
            attempts.append(attempt)
            if attempt.quality >= 5:
                continue
            if attempt.quality == 1:
                return attempt
            if best is None or attempt.quality < best.quality or (attempt.quality == best.quality and attempt.n_matches > best.n_matches
                  and attempt.total_rms < best.total_rms):
                best = attempt
        if best is not None and method == "relative":
            return best
    return best


def _svm_geometries(pars, method: str, n_reference: int, min_sources: int):
    """Fit geometries an SVM fit tries for one method, in order (``align_to_gaia``, §1.8).

    The method's geometry is looked up in ``mosaic_fitgeom_list``; while the catalogue has
    fewer stars than its match count the previous entry is taken instead. After a failed fit
    the previous entry is tried too, unless every exposure has more sources than that entry's
    match count (drizzlepac then takes the sources to be unmatched, not too few). With the
    shipped ``{"rscale": 12, "general": 25}`` and ``rscale`` methods only ``rscale`` is tried.
    """
    fitgeom = pars.method_fitgeom(method)
    table = list(pars.fitgeom_min_matches.items())
    names = [name for name, _ in table]
    if fitgeom not in names:  # a geometry without a match count: the rscale count, no fallback
        table, names = [(fitgeom, pars.fitgeom_min_matches.get("rscale", 12))], [fitgeom]
    index = names.index(fitgeom)
    while index >= 0 and n_reference < table[index][1]:
        log.info("catalogue has %d stars, fewer than the %d an %s fit needs", n_reference,
                 table[index][1], table[index][0])
        index -= 1
    while index >= 0:
        yield table[index][0]
        index -= 1
        if index >= 0 and min_sources > table[index][1]:
            return


def _svm_search(methods, names, catalogues, exposures, sources, pars, attempts):
    min_sources = min(s.n_sources for s in sources)
    for index, name in enumerate(names):
        refcat = catalogues.get(name)
        if refcat is None:
            continue
        table = refcat.copy()
        table["weight"] = reference_weights(refcat)
        for method in methods:
            for fitgeom in _svm_geometries(pars, method, len(refcat), min_sources):
                attempt = _attempt(method, name, table, exposures, sources, pars,
                                   catalogs_remaining=index < len(names) - 1, pipeline=False,
                                   n_reference=len(names), fitgeom=fitgeom)
                attempts.append(attempt)
                if attempt.quality in (1, 2, 3, 4):
                    return attempt
    return None


def _solutions(attempt: FitAttempt) -> dict:
    """ChipSolutions per file from the correctors of the accepted fit."""
    per_file: dict = {}
    for corrector in attempt.correctors:
        info = corrector.meta["fit_info"]
        rot = info.get("rot", (0.0, 0.0))
        solution = ChipSolution(
            chip=int(corrector.meta["chip"]), wcs=corrector.wcs,
            rms_ra=float(info["RMS_RA"]) if info.get("RMS_RA") is not None else -1.0,
            rms_dec=float(info["RMS_DEC"]) if info.get("RMS_DEC") is not None else -1.0,
            fit_rms=float(info["FIT_RMS"]) if info.get("FIT_RMS") is not None else -1.0,
            n_matches=len(info["ref_mag"]) if info.get("ref_mag") is not None else 0,
            fitgeom=str(info.get("fitgeom", "N/A")), method=attempt.method,
            shift=tuple(float(v) for v in info.get("shift", (0.0, 0.0))),
            rotation=float(rot[1]) if np.ndim(rot) else float(rot),
            scale=float(info.get("<scale>", 1.0)), skew=float(info.get("skew", 0.0)))
        per_file.setdefault(corrector.meta["filename"], []).append(solution)
    return per_file


# ----------------------------------------------------------------------------- entry point


def align_exposures(files, refcat=None, catalogs=DEFAULT_CATALOGS, fit_label: str = "REL",
                    update: bool = True, backend=None, *, headerlet_files=False,
                    timeout: float = 10.0, pars: AlignmentPars | None = None) -> AlignmentResult:
    """Align HST exposures to an astrometric reference catalogue.

    Finds sources in every chip (:mod:`hapgpu.align._sources`, on ``backend``), obtains the
    reference catalogue of the field at the observation epoch, cross-matches and fits with
    tweakwcs (``rscale``), grades each fit 1-5 and writes the best acceptable one into the
    files (§1.8, §3.8 and §3.9 of the HAP specification).

    Parameters
    ----------
    files : str, path or sequence of them
        FLT/FLC exposures of one instrument/detector (one visit).
    refcat : None, str, path, astropy.table.Table or CatalogProvider, optional
        Reference catalogue: None uses the catalogue service at ``$ASTROMETRIC_CATALOG_URL``
        (default ``http://gsss.stsci.edu/webservices``); an ``http(s)://`` URL another
        service; a file (ECSV, FITS or CSV with RA/DEC columns) or a Table is used as the
        first catalogue of ``catalogs`` unless its ``meta['catalog']`` names one.
    catalogs : sequence of str or str
        Catalogue names to try, in order (``GAIAeDR3``, ``GSC242``, ``2MASS``); they appear in
        the WCSNAME exactly as given.
    fit_label : {"REL", "IMG", "SVM", "MVM"}
        ``REL``: runastrodriz' procedure (the label follows the winning method: ``REL`` for the
        relative fit, ``IMG`` otherwise); ``IMG``: the same without the relative method;
        ``SVM``/``MVM``: the single-visit procedure, labelled so.
    update : bool
        Write the accepted fit into the files (False: compute and report only).
    backend : str, Backend or None
        Compute backend of the source finding (``cpu``, ``gpu``, ``cudasim``, ``auto``).
    headerlet_files : bool or dict, keyword-only
        Also write each new solution as a headerlet file: True for drizzlepac's pipeline
        names (``<root>_flt_hlet.fits``), or a dict ``filename -> headerlet filename``.
    timeout : float, keyword-only
        Seconds allowed per request to a catalogue service.
    pars : AlignmentPars, optional, keyword-only
        Parameters to use instead of the detector's defaults.

    Returns
    -------
    AlignmentResult
        ``result.exposures[i]``: ``status`` (:class:`AlignStatus`), ``wcsname``,
        ``rms_ra``/``rms_dec`` (mas), ``n_matches``, ``fit_quality`` (1-5), ...

    Raises
    ------
    InvalidParameterError
        For a bad ``fit_label``, ``catalogs``, ``refcat`` or ``files`` argument.
    InvalidInputError
        For a missing or unreadable file, mixed instruments/detectors, an unsupported
        detector, or an unreadable local catalogue.
    BackendUnavailableError
        For ``backend='gpu'`` without a CUDA device.
    """
    names = _as_files(files)
    label = str(fit_label).strip().upper()
    if label not in FIT_LABELS:
        raise InvalidParameterError(f"fit_label must be one of {', '.join(FIT_LABELS)}, "
                                    f"got {fit_label!r}")
    catalog_list = _as_catalogs(catalogs)
    bk = resolve_backend(backend)
    provider = make_provider(refcat, timeout=timeout)
    facts, wcs, wcsnames = [], [], []
    for name in names:
        f, w, n = _read_exposure(name)
        facts.append(f)
        wcs.append(w)
        wcsnames.append(n)
    kinds = {(f["instrument"].upper(), str(f["detector"] or "").upper()) for f in facts}
    if len(kinds) > 1:
        raise InvalidInputError("files mix instruments/detectors: " + ", ".join(
            f"{n} ({f['instrument']}/{f['detector']})" for n, f in zip(names, facts)))
    if pars is None:
        pars = alignment_pars(facts[0]["instrument"], facts[0]["detector"])
    pipeline = label in ("REL", "IMG")
    mode = "pipeline" if pipeline else "svm"
    exposures = list(zip(names, wcs))

    def unchanged(status, message, sources=None, quality=5):
        return [ExposureAlignment(n, status, w, fit_quality=quality, message=message,
                                  n_sources=0 if sources is None else s.n_sources)
                for n, w, s in zip(names, wcsnames, sources or [None] * len(names))]

    sources = find_alignment_sources(names, pars, backend=bk)
    few = [s for s in sources if s.n_sources < pars.min_observable_threshold]
    if few:
        message = ("alignment skipped: too few sources in " + ", ".join(
            f"{os.path.basename(s.filename)} ({s.n_sources})" for s in few)
            + f" (need {pars.min_observable_threshold}); WCS unchanged")
        log.warning("%s", message)
        return AlignmentResult(unchanged(AlignStatus.SKIPPED, message, sources), label, mode,
                               message=message)

    field_ = field_of([w for per in wcs for w in per.values()])
    catalogues = _Catalogues(provider, field_, _epoch(facts[0]["date_obs"], names[0]))
    catalogue_names = _catalogue_names(provider, catalog_list)
    methods = [m for m in pars.fit_methods if not (m == "relative" and (len(names) == 1
                                                                           or label == "IMG"))]
    attempts: list = []
    if pipeline:
        best = _pipeline_search(methods, catalogue_names, catalogues, exposures, sources, pars,
                                attempts)
    else:
        best = _svm_search(methods, catalogue_names, catalogues, exposures, sources, pars,
                           attempts)
    sizes = {n: (-1 if catalogues.tables.get(n) is None else len(catalogues.tables[n]))
             for n in catalogue_names if n in catalogues.tables}

    if best is None:
        if not attempts:
            reasons = []
            for n in catalogue_names:
                if n in catalogues.errors:
                    reasons.append(f"{n}: {catalogues.errors[n]}")
                elif n in sizes:
                    reasons.append(f"{n}: {sizes[n]} stars")
            message = ("alignment skipped: no usable reference catalogue ("
                       + "; ".join(reasons) + "); WCS unchanged")
            status = AlignStatus.SKIPPED
        else:
            tried = min(attempts, key=lambda a: a.quality)
            message = (f"alignment failed: no acceptable fit in {len(attempts)} attempts "
                       f"(best quality {tried.quality}); WCS unchanged")
            status = AlignStatus.FAILED
        log.warning("%s", message)
        result = AlignmentResult(unchanged(status, message, sources), label, mode, attempts,
                                 None, sizes, message)
        return result

    fit_name = ("REL" if best.method == "relative" else "IMG") if pipeline else label
    per_file = _solutions(best)
    relref = facts[0]["rootname"] or Path(names[0]).name.split("_")[0]
    out = []
    for name, wcsname, found in zip(names, wcsnames, sources):
        solutions = per_file.get(name, [])
        first = solutions[0]
        hlet = None
        if isinstance(headerlet_files, dict):
            hlet = headerlet_files.get(name)
        elif headerlet_files:
            hlet = default_headerlet_filename(name)
        new_name = fit_wcsname(wcsname, fit_name, best.catalog)
        written = None
        if update:
            info = write_alignment(name, solutions, label=fit_name, catalog=best.catalog,
                                   relref=relref, headerlet_file=hlet)
            new_name, written = info["wcsname"], info["headerlet_file"]
        out.append(ExposureAlignment(
            name, AlignStatus.ALIGNED, new_name, rms_ra=first.rms_ra, rms_dec=first.rms_dec,
            n_matches=first.n_matches, fit_quality=best.quality, catalog=best.catalog,
            method=best.method, fit_rms=first.fit_rms, n_sources=found.n_sources,
            updated=bool(update), headerlet_file=written))
    message = (f"aligned {len(out)} exposures to {best.catalog} with the {best.method} fit: "
               f"quality {best.quality}, RMS {best.total_rms:.2f} mas"
               + ("" if update else " (files not updated)"))
    log.info("%s", message)
    return AlignmentResult(out, label, mode, attempts, best, sizes, message)


def write_result_table(result: AlignmentResult, path) -> Path:
    """Write :meth:`AlignmentResult.to_table` as ECSV (temporary file, then rename)."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".hapgpu-align-", suffix=".ecsv", dir=directory)
    os.close(fd)
    try:
        result.to_table().write(temp, format="ascii.ecsv", overwrite=True)
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)
    return path

