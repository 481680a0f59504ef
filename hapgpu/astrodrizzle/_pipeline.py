"""``astrodrizzle()``: the AstroDrizzle image-combination chain, data resident on the device.

Reads like AstroDrizzle's step list: read inputs, static mask, sky, separate drizzle, median,
blot, driz_cr, final drizzle, write. Each step is switchable with AstroDrizzle's parameter of
the same name; a step whose input is missing is skipped with a log message (documented below).
"""

from __future__ import annotations

import glob
import itertools
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..backend import resolve_backend
from ..errors import (
    HapGpuError,
    IncompatibleInputsError,
    InvalidInputError,
    InvalidParameterError,
    NoUsableInputError,
    OutputTooLargeError,
    OutputWriteError,
    UnusableInputError,
    WCSError,
)
from ._exposure import VisitCache, inspect_exposure, load_pixels
from ._footprint import chip_footprint, overlap_groups
from ._frame import OutputFrame, custom_frame, default_frame, frame_from_reference, row_bands
from ._parameters import AstroDrizzleParameters, resolve_parameters, unknown_parameter_message
from ._product import (
    StagedOutputs,
    blot_hdulist,
    build_product,
    crclean_hdulist,
    crmask_hdulist,
    image_hdulist,
    median_hdulist,
    product_path,
    single_hdulist,
    update_inputs,
    write_product_in_bands,
)
from ._runtime import MemoryPlan, StepTimer, format_bytes, frame_bytes, host_map, plan_memory
from ._sky import SkySettings, compute_sky, sky_masks, static_masks, user_sky_from_file
from ._stages import (
    PixelMapCache,
    blot_chip,
    cr_mask,
    drizzle_final,
    drizzle_separate,
    final_accumulator,
    median_chunk,
    weight_means,
)

__all__ = ["astrodrizzle", "AstroDrizzleResult"]

log = logging.getLogger(__name__)

_WCS_NAMES = ("ra", "dec", "scale", "rot", "outnx", "outny", "crpix1", "crpix2")


@dataclass
class AstroDrizzleResult:
    """What :func:`astrodrizzle` produced.

    Attributes
    ----------
    product : pathlib.Path or None
        The DRZ/DRC file (None when ``driz_combine`` is off).
    parameters : AstroDrizzleParameters
        The parameters after merging.
    sky : dict
        Input file name -> MDRIZSKY per chip.
    cosmic_rays : dict
        Input file name -> number of pixels flagged per chip.
    timings : dict
        Step name -> seconds.
    files : list of pathlib.Path
        Every file written (product, intermediates, updated inputs or their copies).
    sci, wht : numpy.ndarray or None
        With ``keep_arrays=True``: the product's SCI and WHT arrays as written into it
        (float32 ``(ny, nx)``, host memory); otherwise None.
    """

    product: Path | None
    parameters: AstroDrizzleParameters
    sky: dict = field(default_factory=dict)
    cosmic_rays: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    files: list = field(default_factory=list)
    sci: object = field(default=None, repr=False)
    wht: object = field(default=None, repr=False)

    def __fspath__(self) -> str:
        if self.product is None:
            raise TypeError("no product was written (driz_combine is off)")
        return str(self.product)


# ----------------------------------------------------------------------------- inputs
def expand_inputs(inputs) -> list[Path]:
    """Input files from a path, a comma-separated string, a glob, an ``@list`` file, or a list."""
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    files: list[Path] = []
    for item in inputs:
        text = str(item).strip()
        if text.startswith("@"):
            listing = Path(text[1:])
            try:
                lines = listing.read_text().splitlines()
            except OSError as exc:
                raise InvalidInputError(f"cannot read input list {listing}: {exc}") from exc
            base = listing.parent
            files += expand_inputs([str(base / ln.split()[0]) for ln in lines if ln.strip() and not ln.startswith("#")])
        elif "," in text:
            files += expand_inputs([t for t in text.split(",") if t.strip()])
        elif any(c in text for c in "*?["):
            matches = sorted(glob.glob(text))
            if not matches:
                raise InvalidInputError(f"no input file matches {text!r}")
            files += [Path(m) for m in matches]
        else:
            files.append(Path(text))
    if not files:
        raise InvalidInputError("no input files given")
    return files


def _frame_values(params, prefix: str) -> dict:
    return {name: getattr(params, f"{prefix}{name}") for name in _WCS_NAMES}


def _frames(exposures, params) -> tuple[OutputFrame, OutputFrame]:
    """The separate-drizzle and the final output frames, as AstroDrizzle derives them.

    Only WCSs are computed here; a frame that would be larger than ``max_output_pixels`` is
    refused (:func:`_check_frame_size`) before any array of its size exists.
    """
    try:
        base = default_frame([chip.wcs for e in exposures for chip in e.chips])
    except HapGpuError as exc:
        _refuse_disjoint(exposures, f"no default output frame can be built ({exc})")
        raise
    except Exception as exc:  # stwcs' frame fit fails in many ways on far-apart inputs
        _refuse_disjoint(exposures, f"no default output frame can be built ({exc})")
        raise WCSError(f"no output frame covers the inputs: {exc}") from exc
    single = base
    if params.driz_separate and params.driz_sep_wcs:
        ref = frame_from_reference(params.driz_sep_refimage) if params.driz_sep_refimage else base
        single = custom_frame(ref, _frame_values(params, "driz_sep_"))
    final = base
    if params.driz_combine and params.final_wcs:
        ref = frame_from_reference(params.final_refimage) if params.final_refimage else base
        final = custom_frame(ref, _frame_values(params, "final_"))
    if params.driz_separate:
        _check_frame_size(single, "separate-drizzle", "driz_sep_", exposures, params)
    if params.driz_combine:
        _check_frame_size(final, "final", "final_", exposures, params)
    return single, final


def _sky_groups(exposures) -> list[list]:
    """Exposures grouped by footprint overlap (:func:`overlap_groups`), largest group first."""
    footprints = [[chip_footprint(c.wcs, c.shape) for c in e.chips] for e in exposures]
    groups = [[exposures[i] for i in g] for g in overlap_groups(footprints)]
    return sorted(groups, key=len, reverse=True)


def _describe_groups(groups) -> str:
    """``"a.fits, b.fits (near RA 150.0000, Dec +2.0000); c.fits (near ...)"``."""
    parts = []
    for group in groups:
        ra, dec = (float(v) for v in group[0].chips[0].wcs.wcs.crval)
        parts.append(f"{', '.join(str(e.path) for e in group)} (near RA {ra:.4f}, Dec {dec:+.4f})")
    return "; ".join(parts)


def _refuse_disjoint(exposures, problem: str) -> None:
    """Raise :class:`OutputTooLargeError` naming the exposures that do not overlap the rest,
    when the inputs fall in more than one group of overlapping footprints."""
    if len(exposures) < 2:
        return
    groups = _sky_groups(exposures)
    if len(groups) < 2:
        return
    outside = [str(e.path) for g in groups[1:] for e in g]
    verb = "does" if len(outside) == 1 else "do"
    raise OutputTooLargeError(
        f"{problem}: {', '.join(outside)} {verb} not overlap the other exposures on the sky. "
        f"The inputs cover {len(groups)} separate areas: {_describe_groups(groups)}. "
        "Combine the exposures of each area separately.")


def _check_frame_size(frame: OutputFrame, role: str, prefix: str, exposures, params) -> None:
    """Refuse a frame larger than ``max_output_pixels``, saying why it is so large."""
    ny, nx = frame.shape
    n_pixels = ny * nx
    if n_pixels <= params.max_output_pixels:
        return
    problem = (f"the {role} output frame would be {nx} x {ny} pixels ({n_pixels:.3g} pixels, about "
               f"{format_bytes(frame_bytes(frame.shape, len(exposures)))} of memory), more than "
               f"max_output_pixels={params.max_output_pixels}")
    _refuse_disjoint(exposures, problem)
    raise OutputTooLargeError(
        f"{problem}. Make the frame smaller ({prefix}scale, {prefix}outnx/{prefix}outny with "
        f"{prefix}wcs=True) or raise max_output_pixels.")


def _check_overlap(exposures, frame: OutputFrame, role: str) -> None:
    """Raise :class:`WCSError` naming every exposure that falls entirely outside ``frame``."""
    ny, nx = frame.shape
    outside = []
    for exposure in exposures:
        hit = False
        for chip in exposure.chips:
            cy, cx = chip.shape
            x = np.concatenate([np.linspace(0.5, cx + 0.5, 64), np.full(64, cx + 0.5),
                                np.linspace(cx + 0.5, 0.5, 64), np.full(64, 0.5)])
            y = np.concatenate([np.full(64, 0.5), np.linspace(0.5, cy + 0.5, 64),
                                np.full(64, cy + 0.5), np.linspace(cy + 0.5, 0.5, 64)])
            ra, dec = chip.wcs.all_pix2world(x, y, 1)
            fx, fy = frame.wcs.wcs_world2pix(ra, dec, 1)
            if fx.max() >= 0.5 and fx.min() <= nx + 0.5 and fy.max() >= 0.5 and fy.min() <= ny + 0.5:
                hit = True
        if not hit:
            outside.append(exposure.name)
    if outside:
        raise WCSError(f"{', '.join(outside)}: no overlap with the {role} output frame")


def _label(exposure) -> str:
    return f"{exposure.instrument or '?'}/{exposure.detector or '?'}"


def _check_compatible(exposures) -> None:
    """Refuse inputs of different instruments or detectors (one product per detector)."""
    kinds = sorted({_label(e) for e in exposures})
    if len(kinds) > 1:
        listing = "; ".join(f"{e.path} (INSTRUME/DETECTOR {_label(e)})" for e in exposures)
        raise IncompatibleInputsError(
            f"inputs mix instruments/detectors ({', '.join(kinds)}), which cannot be combined into one "
            f"product: {listing}. Combine the exposures of each instrument and detector separately.")


def _contribution_bits(params):
    """DQ bits that decide whether an input can contribute: those of the last drizzle that runs."""
    if params.driz_combine:
        return params.final_bits
    if params.driz_separate:
        return params.driz_sep_bits
    return params.sky_bits


def _usable(fn, items, xp, dropped: list) -> list:
    """``fn`` over ``items`` (host threads); inputs raising :class:`UnusableInputError` are
    dropped with a warning (and recorded in ``dropped``); any other error propagates."""
    def attempt(item):
        try:
            return fn(item), None
        except UnusableInputError as exc:
            return None, exc

    kept = []
    for value, exc in host_map(attempt, items, xp):
        if exc is None:
            kept.append(value)
        else:
            log.warning("%s: input dropped, the other inputs are combined without it", exc)
            dropped.append(exc)
    if not kept:
        raise NoUsableInputError("no input can contribute to a product: " + "; ".join(map(str, dropped)))
    return kept


# ----------------------------------------------------------------------------- sky
def _run_sky(exposures, params, statics, xp) -> None:
    """Set ``computed_sky``/``subtracted_sky`` of every chip (AstroDrizzle's sky step)."""
    if not params.skysub:
        for exposure in exposures:
            for chip in exposure.chips:
                if params.skyuser:
                    if params.skyuser not in chip.header:
                        raise InvalidInputError(f"{exposure.name}: no {params.skyuser} keyword for chip {chip.extver}")
                    chip.computed_sky = chip.subtracted_sky = float(chip.header[params.skyuser])
                else:
                    chip.computed_sky = None
        return
    if params.skyfile:
        values, applied = user_sky_from_file(params.skyfile, exposures)
        for exposure, skies in zip(exposures, values):
            for chip, sky in zip(exposure.chips, skies):
                chip.computed_sky = None if applied else sky
                chip.subtracted_sky = sky
        return
    masks = sky_masks(exposures, params.sky_bits, statics, params.use_static, xp)
    values = compute_sky(exposures, masks, SkySettings.from_parameters(params), xp)
    for exposure, skies in zip(exposures, values):
        for chip, sky in zip(exposure.chips, skies):
            if sky is None:  # undetermined: keep the header value (or 0)
                sky = chip.subtracted_sky
            chip.computed_sky = chip.subtracted_sky = float(sky)
        log.info("sky %s: %s", exposure.name, ", ".join(f"{c.computed_sky:.6g}" for c in exposure.chips))


# ----------------------------------------------------------------------------- drizzle stages
def _separate(exposures, frame, pmaps, params, statics, backend, plan: MemoryPlan):
    """Single-drizzle images ``[(sci, wht), ...]`` of the whole frame (device or host)."""
    if plan.band_rows is None:
        return [drizzle_separate(e, frame, pmaps, params, statics, backend) for e in exposures]
    store = [(np.zeros(frame.shape, np.float32), np.zeros(frame.shape, np.float32)) for _ in exposures]
    for core0, core1, _, _ in row_bands(frame.shape[0], plan.band_rows):
        band = frame.band(core0, core1)
        for (sci_out, wht_out), exposure in zip(store, exposures):
            sci, wht = drizzle_separate(exposure, band, pmaps, params, statics, backend)
            sci_out[core0:core1] = backend.to_host(sci)
            wht_out[core0:core1] = backend.to_host(wht)
        pmaps.forget(band)
    return store


def _median(store, exposures, frame, params, backend, plan: MemoryPlan):
    """The median image of the single-drizzle stack (float32 on the device)."""
    xp = backend.xp
    wmeans = weight_means([w for _, w in store], params.combine_maskpt)
    halo = params.combine_grow if "minmed" in params.combine_type else 0
    median = xp.empty(frame.shape, dtype=np.float32)
    for core0, core1, ext0, ext1 in row_bands(frame.shape[0], plan.median_rows, halo):
        sci = backend.asarray(_stack([s[ext0:ext1] for s, _ in store]))
        wht = backend.asarray(_stack([w[ext0:ext1] for _, w in store]))
        rows = median_chunk(sci, wht, wmeans, exposures, params)
        median[core0:core1] = rows[core0 - ext0:core1 - ext0]
    return median


def _stack(arrays):
    from ..kernels._arrays import array_module

    return array_module(*arrays).stack(arrays)


#: Tile side of the final drizzle of a streamed product: its accumulators are allocated where
#: the inputs land, so host memory follows the covered part of the frame.
STREAM_TILE = 512


def _final_bands(exposures, frame, pmaps, params, statics, crmasks, backend, band_rows: int | None,
                 stream_rows: int | None = None, release: bool = False):
    """Final ``(row0, row1, sci, wht, ctx)`` host bands (one band: the whole frame); SCI in
    counts when ``final_units`` says so.

    With ``stream_rows`` and no device bands (``band_rows`` None), the whole frame is drizzled
    once into an accumulator of :data:`STREAM_TILE` tiles and read out in bands of
    ``stream_rows`` rows (the same values); otherwise each band of ``band_rows`` rows is
    drizzled on its own. ``release``: drop the chips' pixels once drizzled
    (:func:`~hapgpu.astrodrizzle._stages.final_accumulator`) when the frame is drizzled once."""
    ny = frame.shape[0]
    if stream_rows is not None and _accumulates_whole_frame(ny, band_rows):
        drz = final_accumulator(exposures, frame, pmaps, params, statics, crmasks, backend,
                                tile_shape=STREAM_TILE, release=release)
        yield from _accumulator_bands(drz, exposures, params, backend, stream_rows)
        return
    scale = _counts_scale(exposures)
    for core0, core1, _, _ in row_bands(ny, band_rows):
        band = frame if band_rows is None or band_rows >= ny else frame.band(core0, core1)
        sci, wht, ctx = drizzle_final(exposures, band, pmaps, params, statics, crmasks, backend,
                                      context=params.context, release=release and band is frame)
        sci = backend.to_host(sci)
        if params.final_units == "counts":
            sci *= scale
        yield core0, core1, sci, backend.to_host(wht), None if ctx is None else backend.to_host(ctx)
        if band is not frame:
            pmaps.forget(band)


def _accumulates_whole_frame(ny: int, band_rows: int | None) -> bool:
    """Whether a streamed final drizzle fills one accumulator with the whole frame before its
    bands are read (no device bands), rather than drizzling band by band."""
    return band_rows is None or band_rows >= ny


def _counts_scale(exposures):
    """float32 total exposure time (each input once): SCI times it is in counts."""
    return np.float32(sum({e.path: e.exptime for e in exposures}.values()))


def _accumulator_bands(drz, exposures, params, backend, stream_rows: int, products=None):
    """Host bands ``(row0, row1, sci, wht, ctx)`` of ``stream_rows`` rows at a time read out of
    a finished final-drizzle accumulator (:func:`_accumulator_band`)."""
    scale = _counts_scale(exposures)
    for core0, core1, _, _ in row_bands(drz.output_shape[0], stream_rows):
        yield _accumulator_band(drz, scale, params, backend, core0, core1, products)


def _accumulator_band(drz, scale, params, backend, row0: int, row1: int, products=None):
    """Rows ``row0:row1`` of a finished final-drizzle accumulator on the host, ``(row0, row1,
    sci, wht, ctx)``: SCI times ``scale`` when ``final_units`` is counts, ``ctx`` None without
    context. ``products``: read only these of ``("sci", "wht", "ctx")`` (the others None)."""
    # without context the product has no CTX data: its planes are never assembled (ctx None)
    if products is None:
        products = ("sci", "wht", "ctx") if params.context else ("sci", "wht")
    out = {name: backend.to_host(array) for name, array in drz.band(row0, row1, products=products).items()}
    sci = out.get("sci")
    if sci is not None and params.final_units == "counts":
        sci *= scale
    return row0, row1, sci, out.get("wht"), out.get("ctx")


def _final(exposures, frame, pmaps, params, statics, crmasks, backend, plan: MemoryPlan,
           release: bool = False):
    """Final ``(sci, wht, ctx)`` on the host, drizzled band by band when the plan says so
    (``ctx`` None without ``context``). A frame drizzled in one band is returned as the
    drizzle gave it (no copy into a second frame-sized array)."""
    ny, nx = frame.shape
    sci_out = wht_out = ctx_out = None
    for core0, core1, sci, wht, ctx in _final_bands(exposures, frame, pmaps, params, statics, crmasks, backend,
                                                     plan.band_rows, release=release):
        if core0 == 0 and core1 == ny:
            return (np.ascontiguousarray(sci, dtype=np.float32), np.ascontiguousarray(wht, dtype=np.float32),
                    None if ctx is None else np.ascontiguousarray(ctx, dtype=np.int32))
        if sci_out is None:
            sci_out = np.empty((ny, nx), np.float32)
            wht_out = np.empty((ny, nx), np.float32)
            if ctx is not None:
                ctx_out = np.zeros((ctx.shape[0], ny, nx), np.int32)
        sci_out[core0:core1] = sci
        wht_out[core0:core1] = wht
        if ctx_out is not None:
            ctx_out[:, core0:core1] = ctx
    return sci_out, wht_out, ctx_out


#: Final frames whose SCI, WHT and CTX would take more host memory than this (bytes) are
#: streamed into the product band by band (:func:`_stream_rows`), never held whole.
STREAM_BYTES = 1 << 30
#: Host bytes of the SCI+WHT+CTX rows of one streamed band.
_STREAM_BAND_BYTES = 1 << 27


def banded_hook(hook) -> bool:
    """Whether a ``finalize_headers`` hook works from the product's bands (so the product can
    be streamed): it has ``start(shape)``, ``add_band(row0, row1, sci, wht, ctx)``,
    ``provisional(hdul, path)`` and ``finish(hdul, path, read_rows)`` (see :func:`astrodrizzle`)."""
    return hook is not None and all(callable(getattr(hook, name, None))
                                    for name in ("start", "add_band", "provisional", "finish"))


def _stream_rows(frame, plan: MemoryPlan, stream: bool | None, keep_arrays: bool, finalize_headers) -> int | None:
    """Rows per band when the final product is streamed, else None.

    Streamed when asked (``stream=True``) or, by default, when the frame's SCI, WHT and one
    CTX plane (12 bytes a pixel) exceed :data:`STREAM_BYTES` and no caller needs the arrays
    (``keep_arrays``, or a ``finalize_headers`` hook that is not :func:`banded_hook`). The
    band is the device plan's, no larger than :data:`_STREAM_BAND_BYTES` of host rows.
    """
    ny, nx = frame.shape
    if stream is None:
        stream = (12 * ny * nx > STREAM_BYTES and not keep_arrays
                  and (finalize_headers is None or banded_hook(finalize_headers)))
    if not stream:
        return None
    rows = max(1, _STREAM_BAND_BYTES // (12 * nx))
    return min(rows, plan.band_rows) if plan.band_rows is not None else rows


# ----------------------------------------------------------------------------- outputs
def _write_intermediates(stage: StagedOutputs, outdir, output_root, chain, backend) -> list[Path]:
    """Stage the static masks, single-drizzle images, median, blotted images and CR masks."""
    from .. import __version__

    exposures, params, single_frame = chain.exposures, chain.params, chain.single_frame
    written = []
    if chain.statics is not None:
        for (extver, shape), mask in chain.statics.items():
            name = outdir / f"{output_root}_{shape[1]}x{shape[0]}_{extver}_staticMask.fits"
            written.append(stage.write(image_hdulist(backend.to_host(mask).astype(np.int16)), name))
    if chain.store is not None:
        for exposure, (sci, wht) in zip(exposures, chain.store):
            sci_name = outdir / f"{exposure.rootname}_single_sci.fits"
            wht_name = outdir / f"{exposure.rootname}_single_wht.fits"
            sci_hdul, wht_hdul = single_hdulist(backend.to_host(sci), backend.to_host(wht), exposure,
                                                single_frame, params, sci_name.name, wht_name.name,
                                                __version__)
            written += [stage.write(sci_hdul, sci_name), stage.write(wht_hdul, wht_name)]
    if chain.median is not None:
        name = outdir / f"{output_root}_med.fits"
        written.append(stage.write(median_hdulist(backend.to_host(chain.median), exposures, single_frame,
                                                  params, name.name), name))
    for i, exposure in enumerate(exposures):
        for k, chip in enumerate(exposure.chips):
            if chain.blots is not None:
                name = outdir / f"{exposure.rootname}_sci{chip.extver}_blt.fits"
                written.append(stage.write(blot_hdulist(backend.to_host(chain.blots[i][k]), exposure, chip,
                                                        name.name), name))
            if chain.crmasks is not None:
                name = outdir / f"{exposure.rootname}_sci{chip.extver}_crmask.fits"
                written.append(stage.write(crmask_hdulist(backend.to_host(chain.crmasks[i][k]), exposure,
                                                          chip, name.name), name))
    return written


def _final_dq(chip, crmask, crbit: int, xp):
    if crmask is None:
        return chip.dq
    return chip.dq | xp.where(crmask, np.uint16(0), np.uint16(crbit & 0xFFFF))


def _crclean(exposure, blots_i, crmasks_i, params, xp):
    from ._exposure import dq_good

    cleaned, dqs = [], []
    for chip, blotted, crmask in zip(exposure.chips, blots_i, crmasks_i):
        keep = dq_good(chip.dq, params.crbit, xp) & crmask
        # non-finite pixels (stored as 0) take the blotted median too, without a CR flag
        use = keep if chip.finite is None else keep & chip.finite
        cleaned.append(xp.where(use, chip.sci, blotted))
        dqs.append(xp.where(keep, np.uint16(0), np.uint16(params.crbit)))
    return cleaned, dqs


# ----------------------------------------------------------------------------- the chain
def _check_steps(params, n_images: int) -> AstroDrizzleParameters:
    """Turn off steps that cannot run, saying why (documented skips)."""
    median_ok = params.median and params.driz_separate and n_images >= 2
    if params.median and not median_ok:
        why = "driz_separate is off" if not params.driz_separate else f"only {n_images} exposure(s)"
        log.warning("median skipped (%s): it needs separately drizzled images of >= 2 exposures", why)
    blot_ok = params.blot and median_ok
    if params.blot and not blot_ok:
        log.warning("blot skipped: it needs the median image")
    cr_ok = params.driz_cr and blot_ok
    if params.driz_cr and not cr_ok:
        log.warning("driz_cr skipped: it needs the blotted median")
    changes = {k: v for k, v in (("median", median_ok), ("blot", blot_ok), ("driz_cr", cr_ok))
               if getattr(params, k) != v}
    return params.replace(**changes) if changes else params


def astrodrizzle(inputs, output, *, backend=None, pars=None, band_rows: int | None = None,
                 update_inputs_dq: bool = True, save_intermediates: bool = False,
                 progress: bool | None = None, visit: VisitCache | None = None,
                 keep_arrays: bool = False, finalize_headers=None, stream: bool | None = None,
                 discard_inputs: bool = False, **parameters) -> AstroDrizzleResult:
    """Combine HST exposures with AstroDrizzle's chain, on the GPU when there is one.

    Parameters
    ----------
    inputs : str, pathlib.Path or sequence
        FLT/FLC files: paths, a comma-separated string, a glob, or ``@listfile``.
    output : str or pathlib.Path
        Product root: writes ``<output>_drz.fits`` (``_drc`` from FLC inputs).
    backend : {"cpu", "gpu", "cudasim", "auto"}, optional
        Compute backend (None reads ``HAPGPU_BACKEND``).
    pars : str, pathlib.Path, dict or AstroDrizzleParameters, optional
        Parameter set name (see :data:`PARAMETER_SETS`), hapgpu or drizzlepac ``hap_pars`` JSON
        file, or values. Merge order: defaults < ``pars`` < ``**parameters``.
    band_rows : int, optional
        Process the output frames in bands of this many rows (default: decided from device
        memory; a band gives the same result as the whole frame).
    update_inputs_dq : bool
        Write the cosmic-ray flags (``crbit``) and MDRIZSKY into the input files, as AstroDrizzle
        does; False writes updated copies ``<output>_<input name>`` beside the product.
    discard_inputs : bool
        The inputs are temporary copies that the caller deletes after this call without
        reading them again (an MVM layer's renamed inputs): their cosmic-ray flags and MDRIZSKY
        are not written anywhere (neither in place nor as copies). The product, the
        ``_crclean`` files and ``result.sky``/``result.cosmic_rays`` are the same as without.
    save_intermediates : bool
        Also write the static masks, single-drizzle images, median, blotted images and CR masks.
    progress : bool, optional
        Show a progress bar (default: when stderr is a terminal).
    visit : VisitCache, optional
        Inputs already read by earlier calls of the same visit (headers, WCSs and pixel arrays
        on the device), reused while the files are unchanged and updated with the DQ flags and
        MDRIZSKY this call writes; the products are the same as without it.
    keep_arrays : bool
        Return the product's SCI and WHT arrays in the result (``result.sci``/``result.wht``,
        host memory) for a caller that uses them next, instead of reading the file again.
    finalize_headers : callable, optional
        ``finalize_headers(hdul, path)``, run on the product's HDU list (PRIMARY, SCI, WHT,
        CTX, HDRTAB; host arrays) right before its one write, ``path`` being the product's
        final name: the pipeline's own keywords (footprint, S_REGION, HAPLEVEL ...) go in
        without rewriting the file. It may change headers and replace HDRTAB, not the image
        arrays; an exception it raises stops the run with nothing written, as any failure.
        A hook that also has ``start(shape)``, ``add_band(row0, row1, sci, wht, ctx)``,
        ``provisional(hdul, path)`` and ``finish(hdul, path, read_rows)`` (:func:`banded_hook`)
        lets the product be streamed: ``start`` gets the frame's ``(ny, nx)``, ``add_band``
        sees every band of host rows, in row order, and ``finish`` sets the final headers on a
        fresh placeholder product once every band was seen (``read_rows(name, row0, row1)``
        reads ``SCI`` or ``WHT`` rows again, float32). When the whole frame is drizzled before
        it is read (no device bands), the bands are seen before anything is written (``ctx``
        None) and the file is written once under the final headers. Otherwise ``provisional``
        first sets the headers on the placeholder product (every card the final headers will
        hold, with any values: they fix the file's layout), each band is seen as it is
        written, and the final headers replace them at the end. Unstreamed, such a hook is
        called as any other. A hook with a ``begin(sci, wht)`` method gets the final host SCI
        and WHT arrays of an unstreamed product before its headers are built (it may start
        reading them on a worker thread, never change them), then is called as above.
    stream : bool, optional
        Drizzle the final frame band by band straight into the product file, never holding
        the whole SCI/WHT/CTX (same file as without). None (default): when those arrays would
        exceed :data:`STREAM_BYTES` of host memory and neither ``keep_arrays`` nor a
        ``finalize_headers`` hook that is not banded asks for them. Not with ``keep_arrays``
        or such a hook.
    **parameters
        AstroDrizzle parameters by name (e.g. ``final_kernel="square"``, ``skymethod="match"``).

    Returns
    -------
    AstroDrizzleResult

    Raises
    ------
    InvalidParameterError
        Bad parameter values; unknown parameter names (the message lists the closest valid
        names); ``visit`` that is not a :class:`VisitCache`.
    InvalidInputError
        A path that is missing, a directory, not a FITS file, truncated or corrupt; a file
        without DQ for a chip or without gain/read-noise keywords (the message names the file).
    NoUsableInputError
        Every input was dropped as unusable (each file named with its reason).
    IncompatibleInputsError
        Inputs of different instruments or detectors (each file named with its INSTRUME and
        DETECTOR).
    OutputTooLargeError
        An output frame would exceed ``max_output_pixels`` (default four HAP sky cells,
        1.37e9 pixels); when the inputs cover separate areas of sky the message names the
        exposures that do not overlap the others. Raised before any pixel array is read.
    WCSError
        A chip's WCS cannot be built; an exposure entirely outside an output frame.

    Notes
    -----
    Unusable inputs are dropped with a warning naming the file, and the others are combined
    (AstroDrizzle drops zero-exposure inputs the same way): exposure time missing, not finite
    or not positive; no SCI extension with image data; every pixel non-finite or flagged in DQ
    outside the good bits of the last drizzle step (``final_bits``). Non-finite science values
    are bad pixels in every step (weight 0, left out of the static mask and sky statistics,
    never flagged as cosmic rays); their number is logged once per file.

    Documented skips (logged as warnings, the rest of the chain runs): the median, blot and
    driz_cr steps need separately drizzled images of at least two exposures; blot needs the
    median and driz_cr the blotted median. Sky matching with a single image leaves MDRIZSKY as
    found in the header (AstroDrizzle does the same).

    Differences from AstroDrizzle: products are always multi-extension (``build=True``); the
    product headers carry the first input's primary header and a curated SCI header instead of
    fitsblender's blended headers; ``final_wht_type="IVM"`` (which needs reference files) is
    rejected; non-finite input pixels are bad pixels (AstroDrizzle propagates them). Nothing is
    written before every step has succeeded: every new file is written under a temporary name
    and all are renamed together at the end, so a failure leaves no file named like a product.
    """
    _check_keywords(parameters)
    if visit is not None and not isinstance(visit, VisitCache):
        raise InvalidParameterError(f"visit must be a VisitCache or None, got {type(visit).__name__}")
    if stream and (keep_arrays or (finalize_headers is not None and not banded_hook(finalize_headers))):
        raise InvalidParameterError("stream=True writes the product without ever holding its arrays; "
                                    "it cannot go with keep_arrays or a finalize_headers hook that "
                                    "needs them (one without start/add_band/provisional/finish)")
    if finalize_headers is not None and not callable(finalize_headers):
        raise InvalidParameterError(f"finalize_headers must be callable or None, got "
                                    f"{type(finalize_headers).__name__}")
    params = resolve_parameters(pars, **parameters)
    if params.final_wht_type == "IVM":
        raise InvalidParameterError("final_wht_type='IVM' needs flat and dark reference files, "
                                    "which hapgpu does not read; use 'EXP' or 'ERR'")
    backend = resolve_backend(backend)
    files = expand_inputs(inputs)
    timer = StepTimer(backend, progress)
    timer.start(9)
    try:
        return _run(files, Path(output), params, backend, band_rows, update_inputs_dq, save_intermediates,
                    timer, visit, keep_arrays, finalize_headers, stream, bool(discard_inputs))
    finally:
        timer.stop()


_CALL_KEYWORDS = ("backend", "pars", "band_rows", "update_inputs_dq", "save_intermediates", "progress",
                  "visit", "keep_arrays", "finalize_headers", "stream", "discard_inputs")


def _check_keywords(parameters: dict) -> None:
    """Refuse keywords that are neither AstroDrizzle parameters nor this function's own,
    naming the closest valid names."""
    from ._parameters import accepted_names

    unknown = sorted(k for k in parameters if k not in accepted_names())
    if unknown:
        raise InvalidParameterError("; ".join(
            unknown_parameter_message(k, "astrodrizzle()", extra=_CALL_KEYWORDS) for k in unknown))


@dataclass(eq=False)
class _Chain:
    """Everything the steps hand to each other (device arrays, frames, the memory plan)."""

    exposures: list
    params: AstroDrizzleParameters
    single_frame: OutputFrame
    final_frame: OutputFrame
    plan: MemoryPlan
    statics: dict | None = None
    store: list | None = None
    median: object = None
    blots: list | None = None
    crmasks: list | None = None
    final: tuple | None = None
    pmaps: object = None
    stream_rows: int | None = None
    #: Drop the chips' SCI/ERR once the final drizzle has them: nothing reads them afterwards
    #: (no visit cache shares the chips, no ``_crclean`` files to write).
    release_pixels: bool = False
    #: The caller deletes the inputs after this call: their DQ/MDRIZSKY updates are not written.
    discard_inputs: bool = False


def _prepare(files, params, backend, band_rows, timer: StepTimer, visit: VisitCache | None = None) -> _Chain:
    """Read the inputs (or take them from ``visit``) and derive the frames and the memory plan
    (step "read")."""
    inspect = inspect_exposure if visit is None else visit.inspect
    load = load_pixels if visit is None else visit.load
    with timer.step("read"):
        want_err = params.final_wht_type == "ERR"
        dropped: list = []
        # Headers first: refuse inputs that cannot go together before any pixel is read.
        exposures = _usable(lambda f: inspect(f, params), files, backend.xp, dropped)
        _check_compatible(exposures)
        n_inspected = len(exposures)
        single_frame, final_frame = _frames(exposures, params)
        bits = _contribution_bits(params)
        exposures = _usable(lambda e: load(e, backend, params, want_err=want_err, usable_bits=bits,
                                           check_usable=True), exposures, backend.xp, dropped)
        if len(exposures) != n_inspected:  # frames of the inputs actually combined
            single_frame, final_frame = _frames(exposures, params)
        params = _check_steps(params, len(exposures))
        if params.driz_separate:
            _check_overlap(exposures, single_frame, "separate-drizzle")
        if params.driz_combine:
            _check_overlap(exposures, final_frame, "final")
        sizes = {single_frame.shape[0] * single_frame.shape[1]: single_frame.shape,
                 final_frame.shape[0] * final_frame.shape[1]: final_frame.shape}
        plan = plan_memory(sizes[max(sizes)], len(exposures), backend, band_rows)
    return _Chain(exposures, params, single_frame, final_frame, plan)


def _combine(chain: _Chain, backend, timer: StepTimer, keep: bool, stream_rows: int | None = None) -> None:
    """The image steps, from the static mask to the final drizzle (device arrays only)."""
    params, exposures, xp = chain.params, chain.exposures, backend.xp
    with timer.step("static"):
        chain.statics = static_masks(exposures, params.static_sig, xp) if params.static else None
    with timer.step("sky"):
        _run_sky(exposures, params, chain.statics, xp)
    pmaps = PixelMapCache(params.stepsize)
    single = chain.single_frame
    if params.driz_separate:
        with timer.step("driz_separate"):
            chain.store = _separate(exposures, single, pmaps, params, chain.statics, backend, chain.plan)
    if params.median:
        with timer.step("median"):
            chain.median = _median(chain.store, exposures, single, params, backend, chain.plan)
        if not keep:
            chain.store = None  # free memory as soon as a product is no longer needed
    if params.blot:
        with timer.step("blot"):
            chain.blots = [[blot_chip(chain.median, c, single, pmaps, params, backend) for c in e.chips]
                           for e in exposures]
    if not keep:
        chain.median = None
    if params.driz_cr:
        with timer.step("driz_cr"):
            chain.crmasks = [[cr_mask(c, b, params) for c, b in zip(e.chips, bl)]
                             for e, bl in zip(exposures, chain.blots)]
    if not (keep or params.driz_cr_corr):
        chain.blots = None
    if params.driz_combine and stream_rows is not None:
        chain.pmaps = pmaps  # drizzled band by band while the product is written
    elif params.driz_combine:
        with timer.step("driz_combine"):
            sci, wht, ctx = _final(exposures, chain.final_frame, pmaps, params, chain.statics, chain.crmasks,
                                   backend, chain.plan, release=chain.release_pixels)
            chain.final = (sci, wht, ctx)


def _write_inputs(chain: _Chain, stage: StagedOutputs, outdir: Path, output_name: str, backend,
                  update_inputs_dq: bool, result: AstroDrizzleResult, visit: VisitCache | None) -> None:
    """DQ (CR flags) and MDRIZSKY into the inputs or their (staged) copies; ``_crclean`` files."""
    params, xp = chain.params, backend.xp
    flag_crs = chain.crmasks is not None and params.driz_combine  # AstroDrizzle flags CRs while drizzling
    in_place = []
    for i, exposure in enumerate(chain.exposures):
        masks = chain.crmasks[i] if chain.crmasks is not None else [None] * len(exposure.chips)
        if (flag_crs or params.skysub or params.resetbits) and not chain.discard_inputs:
            dqs = [backend.to_host(_final_dq(c, m if flag_crs else None, params.crbit, xp))
                   for c, m in zip(exposure.chips, masks)]
            skies = [c.computed_sky if params.skysub else None for c in exposure.chips]
            if update_inputs_dq:
                in_place.append((exposure, dqs, skies))
            else:
                target = outdir / f"{output_name}_{exposure.name}"
                result.files.append(update_inputs(exposure, dqs, skies, target, stage))
        if params.driz_cr and params.driz_cr_corr:
            cleaned, crdq = _crclean(exposure, chain.blots[i], chain.crmasks[i], params, xp)
            hdul = crclean_hdulist(exposure, [backend.to_host(c) for c in cleaned], [backend.to_host(d) for d in crdq])
            for chip in exposure.chips if params.skysub else ():  # as the updated input will have
                hdul["SCI", chip.extver].header["MDRIZSKY"] = (chip.computed_sky, "Sky value computed by AstroDrizzle")
            result.files.append(stage.write(hdul, outdir / f"{exposure.rootname}_crclean.fits"))
        result.sky[exposure.name] = [c.computed_sky for c in exposure.chips]
        result.cosmic_rays[exposure.name] = [0 if m is None else int((~m).sum()) for m in masks]
    for exposure, dqs, skies in in_place:  # last: everything else is staged by now
        # the cache takes the update from memory when it held the file as it was just before
        current = visit is not None and visit.current(exposure.path)
        result.files.append(update_inputs(exposure, dqs, skies))
        if visit is not None:
            if current:
                visit.updated(exposure.path, dqs, skies)
            else:
                visit.updated(exposure.path)


def _write(chain: _Chain, output: Path, backend, update_inputs_dq: bool, save_intermediates: bool,
           timer: StepTimer, visit: VisitCache | None = None, finalize_headers=None) -> AstroDrizzleResult:
    """Write the product, intermediates and input updates.

    ``finalize_headers(hdul, path)`` completes the product's headers before its one write.

    Every new file goes to a temporary name; the inputs are updated in place last; then all
    new files are renamed together. Any failure removes the temporary files, so no file named
    like a product is left (inputs updated before the failure stay updated).
    """
    from .. import __version__

    result = AstroDrizzleResult(None, chain.params)
    with timer.step("write"):
        outdir = output.parent
        try:
            outdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputWriteError(f"{outdir}: cannot create the output folder: {exc}") from exc
        with StagedOutputs() as stage:
            if chain.stream_rows is not None:
                result.product = product_path(output, chain.exposures)
                result.files.append(_write_streamed(chain, stage, result.product, backend, __version__,
                                                    finalize_headers))
            elif chain.final is not None:
                result.product = product_path(output, chain.exposures)
                begin = getattr(finalize_headers, "begin", None)
                if callable(begin):
                    begin(chain.final[0], chain.final[1])
                hdul = build_product(*chain.final, chain.final_frame, chain.exposures, chain.params,
                                     result.product, __version__)
                if finalize_headers is not None:
                    finalize_headers(hdul, result.product)
                result.files.append(stage.write(hdul, result.product, verify=False))
            if save_intermediates:
                result.files += _write_intermediates(stage, outdir, output.name, chain, backend)
            _write_inputs(chain, stage, outdir, output.name, backend, update_inputs_dq, result, visit)
            stage.commit()
    return result


def _write_streamed(chain: _Chain, stage: StagedOutputs, product: Path, backend, version: str,
                    finalize_headers=None) -> Path:
    """Drizzle the final frame band by band straight into the product (its temporary name).

    A :func:`banded_hook` ``finalize_headers`` sees every band. When the whole frame is
    drizzled into one accumulator before its bands are read (no device bands), the hook sees
    them in a first read-out and sets the final headers before anything is written, so the
    file is written once, every header at its place (:func:`_write_accumulated`). Otherwise
    its provisional headers set the file's layout and its final ones are written in place at
    the end (:func:`write_product_in_bands`, which moves the data when a header changed size).
    """
    hook = finalize_headers if banded_hook(finalize_headers) else None
    if hook is not None and _accumulates_whole_frame(chain.final_frame.shape[0], chain.plan.band_rows):
        return _write_accumulated(chain, stage, product, backend, version, hook)
    bands = _final_bands(chain.exposures, chain.final_frame, chain.pmaps, chain.params, chain.statics,
                         chain.crmasks, backend, chain.plan.band_rows, chain.stream_rows,
                         release=chain.release_pixels)
    first = next(bands)
    n_planes = 1 if first[4] is None else first[4].shape[0]  # no CTX data without context
    hdul = _placeholder_product(chain, product, version, n_planes)
    pristine = None
    if hook is not None:
        # The product as built, for the final headers: copies of the image HDUs (the hook
        # changes hdul's headers) and the HDRTAB HDU itself (a hook replaces it, never edits
        # it), instead of building the placeholder product a second time.
        from astropy.io import fits

        pristine = fits.HDUList([hdu if hdu.name == "HDRTAB" else hdu.copy() for hdu in hdul])
        hook.start(chain.final_frame.shape)
        hook.provisional(hdul, product)

    def all_bands():
        for band in itertools.chain([first], bands):
            if hook is not None:
                hook.add_band(*band)
            yield band

    def finish(read_rows):
        hook.finish(pristine, product, read_rows)
        return pristine

    log.info("final drizzle streamed into %s in bands of %d rows", product.name, chain.stream_rows)
    write_product_in_bands(hdul, stage.reserve(product), chain.final_frame.shape, n_planes, all_bands(),
                           finish=None if hook is None else finish)
    return product


def _placeholder_product(chain: _Chain, product: Path, version: str, n_planes: int):
    """:func:`build_product` of 1 x 1 placeholder arrays (the headers of a streamed product)."""
    tiny = np.zeros((1, 1), np.float32)
    return build_product(tiny, tiny, np.zeros((n_planes, 1, 1), np.int32), chain.final_frame,
                         chain.exposures, chain.params, product, version)


def _write_accumulated(chain: _Chain, stage: StagedOutputs, product: Path, backend, version: str,
                       hook) -> Path:
    """The streamed product of a frame drizzled whole into one accumulator, written once.

    The banded ``hook`` sees the SCI and WHT bands (``ctx`` None) of a first read-out of the
    accumulator and sets the final headers (its ``read_rows`` reads the accumulator again);
    the bands are then read out a second time and written under those headers: the same file
    as :func:`write_product_in_bands` with provisional headers, without data moved when the
    final headers (S_REGION) take more or fewer 2880-byte blocks.
    """
    params = chain.params
    frame = chain.final_frame
    drz = final_accumulator(chain.exposures, frame, chain.pmaps, params, chain.statics, chain.crmasks,
                            backend, tile_shape=STREAM_TILE, release=chain.release_pixels)
    n_planes = drz.n_planes if params.context else 1  # no CTX data without context
    hdul = _placeholder_product(chain, product, version, n_planes)
    hook.start(frame.shape)
    for band in _accumulator_bands(drz, chain.exposures, params, backend, chain.stream_rows,
                                   products=("sci", "wht")):
        hook.add_band(*band)

    scale = _counts_scale(chain.exposures)

    def read_rows(name, row0, row1):
        _, _, sci, wht, _ = _accumulator_band(drz, scale, params, backend, row0, row1, (name.lower(),))
        return sci if sci is not None else wht

    hook.finish(hdul, product, read_rows)
    log.info("final drizzle streamed into %s in bands of %d rows", product.name, chain.stream_rows)
    write_product_in_bands(hdul, stage.reserve(product), frame.shape, n_planes,
                           _accumulator_bands(drz, chain.exposures, params, backend, chain.stream_rows))
    return product


def _releases_pixels(params, visit: VisitCache | None) -> bool:
    """Whether the final drizzle may drop the chips' SCI/ERR once drizzled: no visit cache
    shares the chips with later products and no ``_crclean`` file needs the pixels."""
    return visit is None and not (params.driz_cr and params.driz_cr_corr)


def _run(files, output: Path, params, backend, band_rows, update_inputs_dq, save_intermediates,
         timer: StepTimer, visit: VisitCache | None = None, keep_arrays: bool = False,
         finalize_headers=None, stream: bool | None = None, discard_inputs: bool = False) -> AstroDrizzleResult:
    chain = _prepare(files, params, backend, band_rows, timer, visit)
    chain.release_pixels = _releases_pixels(params, visit)
    chain.discard_inputs = discard_inputs
    chain.stream_rows = _stream_rows(chain.final_frame, chain.plan, stream, keep_arrays, finalize_headers)
    _combine(chain, backend, timer, keep=save_intermediates, stream_rows=chain.stream_rows)
    result = _write(chain, output, backend, update_inputs_dq, save_intermediates, timer, visit, finalize_headers)
    if keep_arrays and chain.final is not None:
        result.sci, result.wht = chain.final[0], chain.final[1]
    result.timings = dict(timer.steps)
    log.info("astrodrizzle timing: %s", timer.table())
    return result
