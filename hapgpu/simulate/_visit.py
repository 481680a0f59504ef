"""Simulate a whole HST visit: the pipeline-level entry point of :mod:`hapgpu.simulate`."""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.table import Table

from ..errors import InvalidParameterError
from ._apriori import keeps_headerlet, perturb_exposure_headers, wcs_base_name
from ._association import (AssociationFiles, association_ids, association_keywords,
                           write_association)
from ._detector import ChipWindow, expose_chip, make_cosmic_rays, make_defects
from ._headers import (
    ExposureHeaders,
    ExposureSpec,
    VisitFacts,
    build_exposure_headers,
    reference_cd,
)
from ._instruments import DetectorModel, FilterModel, get_detector
from ._io import poller_line, write_crmask, write_exposure, write_table, write_text
from ._optics_psf import optics_psf
from ._pointing import offset_radec, orientat_from_cd, pointing_rotation, unit_vector
from ._profiles import PsfModel
from ._scene import project_sources, render_scene, source_reach
from ._sky import SkyModel, make_sky_model, mjd_to_year, reference_catalog
from ._templates import InstrumentTemplate, load_template
from ._wcs_error import ErrorTransform, WCSPerturbation, as_perturbation, draw_perturbations

__all__ = ["ExposureRecord", "VisitResult", "simulate_visit"]

log = logging.getLogger(__name__)

_MAX_EXPOSURES = 99
_MIN_SIZE = 32
_FIELD_MARGIN_ARCSEC = 10.0
_ROOT_ALPHABET = "abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class ExposureRecord:
    """One exposure written by :func:`simulate_visit`.

    Attributes
    ----------
    rootname : str
        Pipeline rootname (``ipppssoot``).
    path : pathlib.Path
        The FLT/FLC file.
    crmask_path : pathlib.Path
        Its cosmic-ray truth mask.
    filter : str
        Filter name.
    exptime : float
        Exposure time, seconds.
    expstart : float
        Start time, MJD.
    dither : (float, float)
        Telescope offset from the first pointing, pixels of the first chip.
    roll : float
        Roll relative to the first exposure, degrees.
    wcs_error : WCSPerturbation or None
        The fixed error applied to this exposure's header WCS (None: the header is the truth).
    """

    rootname: str
    path: Path
    crmask_path: Path
    filter: str
    exptime: float
    expstart: float
    dither: tuple[float, float]
    roll: float
    wcs_error: WCSPerturbation | None = None


@dataclass(frozen=True)
class VisitResult:
    """Everything :func:`simulate_visit` wrote.

    Attributes
    ----------
    outdir : pathlib.Path
        Output folder.
    instrument : str
        Instrument key.
    seed : int
        Seed the visit was generated from.
    exposures : tuple of ExposureRecord
        The exposures, in time order.
    refcat : pathlib.Path
        Gaia-like reference catalogue (``refcat.ecsv``).
    sky_catalog : pathlib.Path
        Truth catalogue of every source (``truth/sky_catalog.ecsv``).
    pointings : pathlib.Path
        Truth table of the exposures' pointings, one row per exposure and chip
        (``truth/pointings.ecsv``; see :func:`simulate_visit`).
    poller : pathlib.Path
        SVM poller file (``<ipppss>_input.out``).
    input_list : pathlib.Path
        Plain list of the exposure file names (``input.lst``).
    wcs_error : WCSPerturbation or None
        The ``wcs_error`` the visit was made with.
    psfs : dict of str to PsfModel
        The PSF each filter's stars were drawn with (filter name, e.g. ``"F555W"``; sigmas in
        detector pixels): :func:`~hapgpu.simulate.optics_psf` of the visit's detector.
    associations : tuple of AssociationFiles
        With ``association=True``: one association table (and the members' RAW files) per
        filter, in filter order; empty otherwise.
    """

    outdir: Path
    instrument: str
    seed: int
    exposures: tuple[ExposureRecord, ...]
    refcat: Path
    sky_catalog: Path
    pointings: Path
    poller: Path
    input_list: Path
    wcs_error: WCSPerturbation | None = None
    psfs: dict[str, PsfModel] = field(default_factory=dict)
    associations: tuple[AssociationFiles, ...] = ()

    @property
    def files(self) -> list[Path]:
        """Paths of the exposure files, in time order."""
        return [e.path for e in self.exposures]

    @property
    def crmasks(self) -> list[Path]:
        """Paths of the cosmic-ray truth masks, in exposure order."""
        return [e.crmask_path for e in self.exposures]


@dataclass(frozen=True)
class _Plan:
    """Validated parameters of a visit."""

    outdir: Path
    det: DetectorModel
    template: InstrumentTemplate
    filters: tuple[FilterModel, ...]
    n_exposures: int
    exptimes: tuple[float, ...]
    seed: int
    crowded: bool
    dither_pixels: float
    roll_deg: float
    target: tuple[float, float]
    orientat: float
    windows: tuple[ChipWindow, ...]
    star_density: float
    galaxy_density: float
    cr_rate: float
    noise: bool
    cosmic_rays: bool
    defects: bool
    facts: VisitFacts
    start_mjd: float
    wcs_error: WCSPerturbation | None


# ----------------------------------------------------------------------------- validation


def _finite(name: str, value, *, minimum=None, maximum=None) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise InvalidParameterError(f"{name} must be finite, got {value!r}")
    if minimum is not None and number < minimum:
        raise InvalidParameterError(f"{name} must be >= {minimum}, got {value!r}")
    if maximum is not None and number > maximum:
        raise InvalidParameterError(f"{name} must be <= {maximum}, got {value!r}")
    return number


def _integer(name: str, value, *, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidParameterError(f"{name} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise InvalidParameterError(f"{name} must be {bound}, got {value}")
    return int(value)


def _parse_filters(det: DetectorModel, filters) -> tuple[FilterModel, ...]:
    if filters is None:
        return (det.filter(det.default_filter),)
    if isinstance(filters, str):
        filters = [f for f in filters.split(",")]
    names = [str(f).strip() for f in (filters or ())]
    if not names or any(not n for n in names):
        raise InvalidParameterError(f"filters must name at least one filter, got {filters!r}")
    models = tuple(det.filter(n) for n in names)
    if len({m.name for m in models}) != len(models):
        raise InvalidParameterError(f"filters must not repeat, got {filters!r}")
    return models


def _parse_exptimes(det: DetectorModel, exptime, n: int) -> tuple[float, ...]:
    if exptime is None:
        return (det.default_exptime,) * n
    if isinstance(exptime, (str, bytes)) or np.ndim(exptime) == 0:
        return (_finite("exptime", exptime, minimum=1e-3),) * n
    exptime = list(np.ravel(exptime))
    if len(exptime) != n:
        raise InvalidParameterError(
            f"exptime must be one number or {n} numbers (one per exposure), got {len(exptime)}")
    return tuple(_finite("exptime", t, minimum=1e-3) for t in exptime)


def _parse_target(template: InstrumentTemplate, target) -> tuple[float, float]:
    if target is None:
        return float(template.primary["RA_TARG"]), float(template.primary["DEC_TARG"])
    try:
        ra, dec = target
    except (TypeError, ValueError):
        raise InvalidParameterError(f"target must be (ra, dec) in degrees, got {target!r}") \
            from None
    return (_finite("target ra", ra, minimum=0.0, maximum=360.0) % 360.0,
            _finite("target dec", dec, minimum=-89.0, maximum=89.0))


def _chip_windows(det: DetectorModel, template: InstrumentTemplate, shape) -> tuple:
    full_ny, full_nx = det.chip_shape
    if shape is None:
        return tuple(ChipWindow(0, 0, full_nx, full_ny, det.chip_shape)
                     for _ in template.chips)
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape, shape)
    try:
        ny, nx = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"shape must be (ny, nx), got {shape!r}") from None
    if not (_MIN_SIZE <= ny <= full_ny and _MIN_SIZE <= nx <= full_nx):
        raise InvalidParameterError(
            f"shape {shape!r} must lie between ({_MIN_SIZE}, {_MIN_SIZE}) and "
            f"{det.chip_shape} for {det.key}")
    x0 = (full_nx - nx) // 2
    if len(template.chips) == 1:
        return (ChipWindow(x0, (full_ny - ny) // 2, nx, ny, det.chip_shape),)
    # Two-chip detectors: take each window on the edge next to the other chip, so the
    # windows stay close on the sky and a drizzled product stays compact.
    centres = [_linear_position(chip.sci, det.chip_shape[1] / 2.0, det.chip_shape[0] / 2.0)
               for chip in template.chips]
    mean = np.mean(centres, axis=0)
    windows = []
    for chip in template.chips:
        y0 = min((0, full_ny - ny), key=lambda start: np.linalg.norm(
            _linear_position(chip.sci, x0 + nx / 2.0, start + ny / 2.0) - mean))
        windows.append(ChipWindow(x0, y0, nx, ny, det.chip_shape))
    return tuple(windows)


def _linear_position(hdr, x: float, y: float) -> np.ndarray:
    """Unit vector of a 0-based pixel position through a header's linear (CD) WCS."""
    pixel = np.array([x + 1.0 - float(hdr["CRPIX1"]), y + 1.0 - float(hdr["CRPIX2"])])
    east, north = (reference_cd(hdr) @ pixel) * 3600.0
    ra, dec = offset_radec(float(hdr["CRVAL1"]), float(hdr["CRVAL2"]), east, north)
    return unit_vector(ra, dec)


def _plan(outdir, instrument, n_exposures, filters, seed, crowded, *, exptime, dither_pixels,
          roll_deg, target, orientat, shape, star_density, galaxy_density, cr_rate, noise,
          cosmic_rays, defects, program_id, visit, proposal_id, target_name,
          start_mjd, wcs_error) -> _Plan:
    det = get_detector(instrument)
    template = load_template(det.key)
    perturbation = as_perturbation(wcs_error)
    n = _integer("n_exposures", n_exposures, minimum=1, maximum=_MAX_EXPOSURES)
    filter_models = _parse_filters(det, filters)
    if n < len(filter_models):
        raise InvalidParameterError(
            f"n_exposures ({n}) must be at least the number of filters ({len(filter_models)})")
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**63))
    seed = _integer("seed", seed, minimum=0)
    program_id, visit = str(program_id).lower(), str(visit).lower()
    if not re.fullmatch(r"[a-z0-9]{3}", program_id):
        raise InvalidParameterError(f"program_id must be 3 letters or digits, got {program_id!r}")
    if not re.fullmatch(r"[a-z0-9]{2}", visit):
        raise InvalidParameterError(f"visit must be 2 letters or digits, got {visit!r}")
    target_radec = _parse_target(template, target)
    sci1 = template.chips[0].sci
    default_orientat = orientat_from_cd(reference_cd(sci1))
    try:
        outdir = Path(outdir)
    except TypeError:
        raise InvalidParameterError(f"outdir must be a path, got {outdir!r}") from None
    if outdir.exists() and not outdir.is_dir():
        raise InvalidParameterError(f"outdir {str(outdir)!r} exists and is not a folder")
    from .. import __version__

    facts = VisitFacts(
        proposal_id=_integer("proposal_id", proposal_id, minimum=1, maximum=99999),
        program_id=program_id,
        visit=visit,
        target_name=str(target_name).strip().upper() or "ANY",
        target=target_radec,
        history=(f"Simulated exposure written by hapgpu.simulate {__version__}",
                 f"seed={seed} instrument={det.key}"),
    )
    return _Plan(
        outdir=outdir, det=det, template=template, filters=filter_models, n_exposures=n,
        exptimes=_parse_exptimes(det, exptime, n), seed=seed, crowded=bool(crowded),
        dither_pixels=(det.dither_pixels if dither_pixels is None
                       else _finite("dither_pixels", dither_pixels, minimum=0.0, maximum=200.0)),
        roll_deg=_finite("roll_deg", roll_deg, minimum=-180.0, maximum=180.0),
        target=target_radec,
        orientat=(default_orientat if orientat is None
                  else _finite("orientat", orientat, minimum=-360.0, maximum=360.0)),
        windows=_chip_windows(det, template, shape),
        star_density=(det.star_density if star_density is None
                      else _finite("star_density", star_density, minimum=0.0, maximum=1e6)),
        galaxy_density=(det.galaxy_density if galaxy_density is None
                        else _finite("galaxy_density", galaxy_density, minimum=0.0,
                                     maximum=1e4)),
        cr_rate=_finite("cr_rate", cr_rate, minimum=0.0, maximum=1e3),
        noise=bool(noise), cosmic_rays=bool(cosmic_rays), defects=bool(defects),
        facts=facts,
        start_mjd=(float(template.primary["EXPSTART"]) if start_mjd is None
                   else _finite("start_mjd", start_mjd, minimum=40000.0, maximum=80000.0)),
        wcs_error=perturbation,
    )


# ----------------------------------------------------------------------------- visit layout


def _dither_offsets(n: int, step: float) -> list[tuple[float, float]]:
    """Box pattern with half-pixel sub-steps, repeated with a larger offset every 4 points."""
    if step == 0.0:
        return [(0.0, 0.0)] * n
    offsets = []
    for k in range(n):
        box_x = (k % 2) * (step + 0.5)
        box_y = ((k // 2) % 2) * (step + 0.5)
        repeat = k // 4
        offsets.append((box_x + repeat * (2.0 * step + 0.25), box_y + repeat * 0.75 * step))
    return offsets


def _rootname(det: DetectorModel, facts: VisitFacts, index: int) -> str:
    exposure = f"{_ROOT_ALPHABET[index // 10]}{index % 10}"
    return f"{det.letter}{facts.program_id}{facts.visit}{exposure}q"


def _exposure_specs(plan: _Plan) -> list[ExposureSpec]:
    n = plan.n_exposures
    per_filter = [n // len(plan.filters) + (1 if i < n % len(plan.filters) else 0)
                  for i in range(len(plan.filters))]
    filters = [f for f, count in zip(plan.filters, per_filter) for _ in range(count)]
    offsets = _dither_offsets(n, plan.dither_pixels)
    sci1 = plan.template.chips[0].sci
    cd = reference_cd(sci1)
    reference = (float(plan.template.primary["RA_TARG"]), float(plan.template.primary["DEC_TARG"]))
    specs, start = [], plan.start_mjd
    for k in range(n):
        roll = plan.roll_deg * k / (n - 1) if n > 1 else 0.0
        rotation = pointing_rotation(reference, plan.target, orientat_deg=plan.orientat + roll,
                                     offset_pixels=offsets[k], cd=cd)
        specs.append(ExposureSpec(k, _rootname(plan.det, plan.facts, k), filters[k],
                                  plan.exptimes[k], start, offsets[k], roll, rotation))
        start += (plan.exptimes[k] + plan.det.overhead) / 86400.0
    return specs


def _nominal_radius(plan: _Plan) -> float:
    """Radius (arcsec) of the full-frame field around the target, dithers included.

    It depends only on the instrument, so a seed gives the same sky whatever the subarray,
    the number of exposures or the roll.
    """
    template = plan.template
    reference = unit_vector(float(template.primary["RA_TARG"]),
                            float(template.primary["DEC_TARG"]))
    ny, nx = plan.det.chip_shape
    largest = 0.0
    for chip in template.chips:
        for x, y in ((0, 0), (nx, 0), (0, ny), (nx, ny)):
            corner = _linear_position(chip.sci, x, y)
            largest = max(largest, float(np.degrees(np.arccos(np.clip(corner @ reference,
                                                                      -1.0, 1.0)))))
    return 1.15 * largest * 3600.0 + _FIELD_MARGIN_ARCSEC


def _field_radius(plan: _Plan, headers: list[ExposureHeaders]) -> float:
    """Radius (arcsec) around the target covering every chip of every exposure."""
    target = unit_vector(*plan.target)
    largest = 0.0
    for exposure in headers:
        for chip, window in enumerate(plan.windows, start=1):
            wcs = exposure.chip_wcs(chip, window.shape)
            ny, nx = window.shape
            xs = np.array([0.0, nx, nx, 0.0, nx / 2.0])
            ys = np.array([0.0, 0.0, ny, ny, ny / 2.0])
            ra, dec = wcs.all_pix2world(xs, ys, 0)
            cosines = np.clip(unit_vector(ra, dec) @ target, -1.0, 1.0)
            largest = max(largest, float(np.degrees(np.arccos(cosines)).max()) * 3600.0)
    return max(largest + _FIELD_MARGIN_ARCSEC, _nominal_radius(plan))


def _reference_point(headers: ExposureHeaders) -> tuple[float, float]:
    """True sky position of an exposure's aperture reference point (error frame centre)."""
    sci = headers.chips[0]["SCI"]
    if "RA_APER" in sci and "DEC_APER" in sci:
        return float(sci["RA_APER"]), float(sci["DEC_APER"])
    return float(sci["CRVAL1"]), float(sci["CRVAL2"])


def _pointings_table(specs: list[ExposureSpec], paths: list[Path],
                     truth: list[ExposureHeaders], written: list[ExposureHeaders],
                     errors: list[WCSPerturbation | None],
                     spec: WCSPerturbation | None) -> Table:
    """One row per exposure and chip: the true WCS, the header WCS and the applied error."""
    rows = []
    for exposure, path, true, header, error in zip(specs, paths, truth, written, errors):
        ref_ra, ref_dec = _reference_point(true)
        error = error or WCSPerturbation()
        for chip, (true_chip, header_chip) in enumerate(zip(true.chips, header.chips), start=1):
            sci, hdr = true_chip["SCI"], header_chip["SCI"]
            cd = reference_cd(sci)
            rows.append({
                "rootname": exposure.rootname, "chip": chip, "filename": path.name,
                "filter": exposure.filter.name, "exptime": exposure.exptime,
                "expstart": exposure.expstart, "dither_x": exposure.dither[0],
                "dither_y": exposure.dither[1], "roll": exposure.roll,
                "orientat": orientat_from_cd(cd),
                "crpix1": float(sci["CRPIX1"]), "crpix2": float(sci["CRPIX2"]),
                "crval1": float(sci["CRVAL1"]), "crval2": float(sci["CRVAL2"]),
                "cd1_1": cd[0, 0], "cd1_2": cd[0, 1], "cd2_1": cd[1, 0], "cd2_2": cd[1, 1],
                "true_wcsname": str(sci.get("WCSNAME", "")).strip(),
                "wcsname": str(hdr.get("WCSNAME", "")).strip(),
                "hdr_crval1": float(hdr["CRVAL1"]), "hdr_crval2": float(hdr["CRVAL2"]),
                "hdr_orientat": orientat_from_cd(reference_cd(hdr)),
                "ref_ra": ref_ra, "ref_dec": ref_dec,
                "shift_east": error.shift_arcsec[0], "shift_north": error.shift_arcsec[1],
                "rotation": error.rotation_deg, "scale": error.scale,
            })
    table = Table(rows=rows)
    for name in ("orientat", "hdr_orientat", "roll", "rotation"):
        table[name].unit = "deg"
    for name in ("crval1", "crval2", "hdr_crval1", "hdr_crval2", "ref_ra", "ref_dec"):
        table[name].unit = "deg"
    for name in ("cd1_1", "cd1_2", "cd2_1", "cd2_2"):
        table[name].unit = "deg / pix"
    table["shift_east"].unit = table["shift_north"].unit = "arcsec"
    table["exptime"].unit = "s"
    table["expstart"].unit = "d"
    table.meta["comment"] = (
        "Truth of each exposure and chip (SCI extension 'chip'). crpix/crval/cd/orientat: the "
        "TRUE WCS the pixels were rendered through (its SIP, NPOL and D2IM are the file's); "
        "hdr_*: the header WCS as written. Header = truth + error about the reference point "
        "(ref_ra, ref_dec): in its tangent plane (east, north, arcsec) a pixel at true (xi, eta) "
        "is placed by the header at (1 + scale) R(rotation) (xi, eta) + (shift_east, "
        "shift_north); R raises position angles (east of north) by rotation (deg).")
    table.meta["wcs_error"] = repr(spec)
    return table


# ----------------------------------------------------------------------------- rendering


def _render_exposure(plan: _Plan, spec: ExposureSpec, headers: ExposureHeaders, sky: SkyModel,
                     defects, rngs, progress) -> tuple[list, list[int]]:
    """Render every chip of one exposure; return the chip arrays and cosmic-ray counts."""
    rates = spec.filter.count_rate(sky.magnitude(spec.filter.pivot))
    chips, hits = [], []
    for chip, window in enumerate(plan.windows, start=1):
        wcs = headers.chip_wcs(chip, window.shape)
        scale = math.sqrt(abs(np.linalg.det(wcs.wcs.cd))) * 3600.0
        psf = optics_psf(plan.det.key, spec.filter.name)
        sources = project_sources(wcs, sky, window.shape, source_reach(sky, psf, scale))
        counts = render_scene(window.shape, sources, sky, rates, spec.exptime, psf)
        cr_rng, noise_rng = rngs[chip - 1]
        crs = (make_cosmic_rays(cr_rng, plan.det, window.shape, spec.exptime, plan.cr_rate)
               if plan.cosmic_rays else None)
        chips.append(expose_chip(
            counts, det=plan.det, exptime=spec.exptime, sky_rate=spec.filter.sky_rate,
            defects=defects[chip - 1] if plan.defects else None, cosmic_rays=crs,
            noise_rng=noise_rng if plan.noise else None))
        hits.append(crs.n_hits if crs is not None else 0)
        log.debug("%s chip %d: %d sources, %d cosmic rays", spec.rootname, chip,
                  sources.index.size, hits[-1])
        if progress is not None:
            progress()
    return chips, hits


class _Progress:
    """A rich progress bar, or nothing."""

    def __init__(self, enabled: bool, total: int, label: str):
        self._bar = None
        if enabled:
            from rich.progress import Progress

            self._bar = Progress(transient=True)
            self._task = self._bar.add_task(label, total=total)

    def __enter__(self):
        if self._bar is not None:
            self._bar.start()
        return self.advance if self._bar is not None else None

    def advance(self) -> None:
        self._bar.advance(self._task)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()


def simulate_visit(
    outdir,
    instrument: str = "wfc3-uvis",
    n_exposures: int = 4,
    filters: Sequence[str] | str | None = None,
    seed: int | None = 1,
    crowded: bool = False,
    *,
    exptime: float | Sequence[float] | None = None,
    dither_pixels: float | None = None,
    roll_deg: float = 0.0,
    target: tuple[float, float] | None = None,
    orientat: float | None = None,
    shape: int | tuple[int, int] | None = None,
    star_density: float | None = None,
    galaxy_density: float | None = None,
    cr_rate: float = 2.0,
    noise: bool = True,
    cosmic_rays: bool = True,
    defects: bool = True,
    program_id: str = "sim",
    visit: str = "01",
    proposal_id: int = 17001,
    target_name: str = "HAPGPU-SIM",
    start_mjd: float | None = None,
    wcs_error: WCSPerturbation | float | dict | None = None,
    association: bool = False,
    progress: bool = False,
) -> VisitResult:
    """Simulate a visit of calibrated HST exposures with truth catalogues.

    Writes to ``outdir``: one ``<rootname>_flc.fits`` (WFC3/UVIS, ACS/WFC) or
    ``<rootname>_flt.fits`` (WFC3/IR, ACS/HRC) per exposure; ``refcat.ecsv`` (Gaia-like
    reference catalogue at epoch 2016.0, with errors and proper motions);
    ``<ipppss>_input.out`` (8-column SVM poller); ``input.lst`` (file names); and in ``truth/``
    the cosmic-ray masks ``<rootname>_crmask.fits``, ``sky_catalog.ecsv`` (every source at the
    observation epoch) and ``pointings.ecsv`` (one row per exposure and chip: the true WCS,
    the header WCS and the applied error; :func:`hapgpu.simulate.true_wcs` rebuilds the true
    WCS of a chip from it).

    Exposures are built from real headers (primary, SCI/ERR/DQ, headerlets, WCSCORR, full-size
    NPOL and D2IM tables) moved to each pointing; pixels are rendered through each chip's full
    distorted WCS. The same arguments and ``seed`` give byte-identical files.

    Parameters
    ----------
    outdir : str or pathlib.Path
        Output folder, created if missing. Existing files of the same names are replaced.
    instrument : {"wfc3-uvis", "wfc3-ir", "acs-hrc", "acs-wfc"}
        Instrument and detector.
    n_exposures : int
        Total number of exposures (1-99), split over ``filters`` in consecutive blocks.
    filters : sequence of str or str, optional
        Filter names, or one comma-separated string (``"F555W,F814W"``); default: F555W
        (WFC3/UVIS), F160W (WFC3/IR), F606W (ACS/HRC, ACS/WFC).
    seed : int or None
        Seed of every random draw; None picks one (reported in the result).
    crowded : bool
        Add a dense star cluster centred on the target.
    exptime : float or sequence of float, optional
        Exposure time(s), seconds; default depends on the instrument.
    dither_pixels : float, optional
        Dither step in pixels (box pattern with half-pixel sub-steps); 0 for no dither.
    roll_deg : float
        Roll of the last exposure relative to the first, degrees; exposures in between roll
        linearly.
    target : (float, float), optional
        (ra, dec) of the target, degrees; default: the template's target.
    orientat : float, optional
        ``ORIENTAT`` of SCI,1 of the first exposure, degrees; default: the template's.
    shape : int or (int, int), optional
        Read out a centred ``(ny, nx)`` subarray of each chip instead of the full chip (a fast,
        small variant; on two-chip detectors each window sits on the inner edge of its chip).
    star_density, galaxy_density : float, optional
        Sources per square arcminute; defaults depend on the instrument.
    cr_rate : float
        Cosmic rays per cm^2 per second.
    noise : bool
        False renders expected values (no Poisson or read noise).
    cosmic_rays : bool
        False renders no cosmic rays (other random draws are unchanged).
    defects : bool
        False renders a detector without hot pixels and bad columns.
    program_id : str
        Three-character program code (``ppp`` of the rootnames).
    visit : str
        Two-character visit code (``ss`` of the rootnames).
    proposal_id : int
        ``PROPOSID``.
    target_name : str
        ``TARGNAME``.
    start_mjd : float, optional
        Start of the first exposure, MJD; default: the template's.
    wcs_error : WCSPerturbation, float, dict or None
        A known error of each exposure's header WCS (``header = truth + error``; frame and
        signs in :class:`~hapgpu.simulate.WCSPerturbation`). A number ``a`` means random shifts
        up to ``a`` arcsec, drawn per exposure from the seed; a dict holds WCSPerturbation's
        arguments.
        Pixels are always rendered through the true WCS; only the headers are wrong. With an
        error, the active WCS is the a priori ``<base>-GSC240`` solution and every stored
        solution (alternate WCSs, headerlets, WCSCORR rows) carries the same error or is
        removed (see :mod:`hapgpu.simulate._apriori`). Without one (None), every file carries
        its template's solutions moved to the pointing, and the active a posteriori one
        (``<base>-FIT_REL_GAIAeDR3`` or ``-FIT_IMG_``) is the truth.
    association : bool
        Also write what the calibration pipeline's drizzle step reads
        (:mod:`hapgpu.simulate._association`): per filter an association table
        ``<ipppss><nn>0_asn.fits`` (members ``EXP-DTH``, product ``PROD-DTH``) and for each
        exposure a ``<rootname>_raw.fits`` whose primary header has ``DRIZCORR = PERFORM``
        (no raw pixels); the exposures get ``ASN_ID``/``ASN_TAB``/``ASN_MTYP``.
    progress : bool
        Show a progress bar (rich).

    Returns
    -------
    VisitResult

    Raises
    ------
    InvalidParameterError
        For any invalid argument; the message names it.
    """
    plan = _plan(outdir, instrument, n_exposures, filters, seed, crowded, exptime=exptime,
                 dither_pixels=dither_pixels, roll_deg=roll_deg, target=target,
                 orientat=orientat, shape=shape, star_density=star_density,
                 galaxy_density=galaxy_density, cr_rate=cr_rate, noise=noise,
                 cosmic_rays=cosmic_rays, defects=defects, program_id=program_id, visit=visit,
                 proposal_id=proposal_id, target_name=target_name, start_mjd=start_mjd,
                 wcs_error=wcs_error)
    truth = plan.outdir / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    sky_seq, refcat_seq, detector_seq, exposure_seq, error_seq = \
        np.random.SeedSequence(plan.seed).spawn(5)

    specs = _exposure_specs(plan)
    asn_ids = (association_ids([s.rootname for s in specs], [s.filter.name for s in specs])
               if association else {})
    keep = None
    if plan.wcs_error is not None:  # only the a priori headerlets survive: build only those
        base = wcs_base_name(plan.template.chips[0].sci.get("WCSNAME", ""))
        keep = functools.partial(keeps_headerlet, base=base)
    headers = [build_exposure_headers(plan.template, plan.det, plan.facts, s, list(plan.windows),
                                      keep_headerlet=keep)
               for s in specs]
    errors: list[WCSPerturbation | None] = [None] * len(specs)
    written = headers
    if plan.wcs_error is not None:
        errors = draw_perturbations(plan.wcs_error, len(specs), np.random.default_rng(error_seq))
        written = [perturb_exposure_headers(h, ErrorTransform(_reference_point(h), e),
                                            list(plan.windows))
                   for h, e in zip(headers, errors)]
    radius = _field_radius(plan, headers)
    sky = make_sky_model(np.random.default_rng(sky_seq), plan.target, radius,
                         epoch=mjd_to_year(plan.start_mjd), star_density=plan.star_density,
                         galaxy_density=plan.galaxy_density, crowded=plan.crowded)
    log.info("%s visit of %d exposures in %s: %d sources within %.0f arcsec", plan.det.key,
             plan.n_exposures, ",".join(f.name for f in plan.filters), sky.n_sources, radius)
    defects = [make_defects(np.random.default_rng(s), w, hot_fraction=plan.det.hot_fraction)
               for s, w in zip(detector_seq.spawn(len(plan.windows)), plan.windows)]
    records = []
    with _Progress(progress, len(specs) * len(plan.windows), "simulating exposures") as bar:
        for spec, true_headers, file_headers, error, seq in zip(
                specs, headers, written, errors, exposure_seq.spawn(len(specs))):
            rngs = [tuple(np.random.default_rng(s) for s in chip_seq.spawn(2))
                    for chip_seq in seq.spawn(len(plan.windows))]
            # Pixels through the true WCS; the (possibly wrong) header WCS is only written.
            chips, hits = _render_exposure(plan, spec, true_headers, sky, defects, rngs, bar)
            path = plan.outdir / f"{spec.rootname}_{plan.det.suffix}.fits"
            crmask = truth / f"{spec.rootname}_crmask.fits"
            if asn_ids:
                association_keywords(file_headers.primary, asn_ids[spec.rootname])
            write_exposure(path, file_headers, chips, spec.exptime)
            write_crmask(crmask, file_headers.primary, chips, hits)
            log.info("wrote %s (%s, %.1f s)", path.name, spec.filter.name, spec.exptime)
            records.append(ExposureRecord(spec.rootname, path, crmask, spec.filter.name,
                                          spec.exptime, spec.expstart, spec.dither, spec.roll,
                                          error))

    refcat = plan.outdir / "refcat.ecsv"
    write_table(refcat, reference_catalog(sky, np.random.default_rng(refcat_seq)))
    sky_catalog = truth / "sky_catalog.ecsv"
    write_table(sky_catalog, sky.to_table(plan.filters))
    pointings = truth / "pointings.ecsv"
    write_table(pointings, _pointings_table(specs, [r.path for r in records], headers, written,
                                            errors, plan.wcs_error))
    ipppss = specs[0].rootname[:6]
    poller = plan.outdir / f"{ipppss}_input.out"
    write_text(poller, [poller_line(r.path, h.primary) for r, h in zip(records, written)])
    input_list = plan.outdir / "input.lst"
    write_text(input_list, [r.path.name for r in records])
    associations = tuple(
        write_association(plan.outdir, asn_id,
                          [r.path for r in records if asn_ids[r.rootname] == asn_id])
        for asn_id in dict.fromkeys(asn_ids.values()))
    return VisitResult(plan.outdir, plan.det.key, plan.seed, tuple(records), refcat, sky_catalog,
                       pointings, poller, input_list, plan.wcs_error,
                       {f.name: optics_psf(plan.det.key, f.name) for f in plan.filters},
                       associations)
