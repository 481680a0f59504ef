"""The AstroDrizzle stages as functions of device arrays (no file I/O).

Each stage turns exposures, masks and frames into kernel inputs and calls the resampling core
(:mod:`hapgpu.resample`) or an array kernel (:mod:`hapgpu.kernels.combine`,
:mod:`hapgpu.kernels.crrej`). Arithmetic that AstroDrizzle does in float32 is done in float32
here too (python scalars are rounded to float32 before they meet a float32 array).
"""

from __future__ import annotations

import logging
import math

import numpy as np

from ..kernels._arrays import array_module
from ..kernels.combine import combine_stack, minmed
from ..kernels.crrej import abs_derivative, cosmic_ray_mask
from ..kernels.imstats import image_statistics
from ..resample import Drizzle, PixelMap, blot
from ._exposure import dq_good
from ._sky import static_mask_of

__all__ = [
    "PixelMapCache",
    "drizzle_separate",
    "weight_means",
    "median_chunk",
    "blot_chip",
    "cr_mask",
    "drizzle_final",
    "final_accumulator",
    "wt_scl_value",
]

log = logging.getLogger(__name__)

_F32 = np.float32


class PixelMapCache:
    """Pixel maps chip -> frame, built once per (chip, frame) on the host."""

    def __init__(self, stepsize: int):
        self.stepsize = stepsize
        self._maps: dict = {}

    def get(self, chip, frame) -> PixelMap:
        """The map of ``chip`` onto ``frame``."""
        key = (id(chip), id(frame))
        if key not in self._maps:
            self._maps[key] = (PixelMap.from_wcs(chip.wcs, frame.wcs, chip.shape, stepsize=self.stepsize),
                               chip, frame)
        return self._maps[key][0]

    def forget(self, frame) -> None:
        """Drop the maps onto ``frame`` (a finished band)."""
        self._maps = {k: v for k, v in self._maps.items() if k[1] != id(frame)}


def wt_scl_value(text: str) -> float:
    """AstroDrizzle's ``wt_scl``: "exptime" and "expsq" mean 1 (the weight map carries exptime)."""
    return 1.0 if text in ("exptime", "expsq") else float(text)


def _sky_subtracted(chip):
    if chip.computed_sky is None:
        return chip.sci
    return chip.sci - _F32(chip.computed_sky)


def _good(chip, bits, statics, xp, crmask=None):
    """Good-pixel mask of ``chip``: DQ good under ``bits``, finite science value, static mask
    and driz_cr mask (each when given)."""
    good = dq_good(chip.dq, bits, xp)
    if chip.finite is not None:
        good = good & chip.finite
    static = static_mask_of(statics, chip)
    if static is not None:
        good = good & static
    if crmask is not None:
        good = good & crmask
    return good


# ----------------------------------------------------------------------------- separate drizzle
def drizzle_separate(exposure, frame, pmaps: PixelMapCache, params, statics, backend):
    """Drizzle the chips of one exposure onto ``frame``: ``(sci, wht)`` float32 on the device.

    SCI starts at 0 (AstroDrizzle's single-drizzle initial value); chips are sky-subtracted on
    the fly and weighted by ``exptime * good``; the output is a count rate.
    """
    xp = backend.xp
    drz = Drizzle(frame.shape, kernel=params.driz_sep_kernel, pixfrac=params.driz_sep_pixfrac,
                  fillval=params.driz_sep_fillval, backend=backend, initial_value=0.0)
    for index, chip in enumerate(exposure.chips, start=1):
        weight = _F32(exposure.exptime) * _good(chip, params.driz_sep_bits, statics, xp).astype(np.float32)
        drz.add_image(_sky_subtracted(chip), pmaps.get(chip, frame), weight=weight,
                      in_units=chip.in_units, exptime=exposure.exptime,
                      scale=frame.pscale / chip.wcslin_pscale,
                      wt_scl=wt_scl_value(params.driz_sep_wt_scl), context_id=index)
    sci, wht, _ = drz.device_arrays()
    return sci, wht


def weight_means(weights, maskpt: float) -> list[float]:
    """``combine_maskpt`` times the mean of each weight image over its values >= 1e-8."""
    out = []
    for w in weights:
        try:
            mean = image_statistics(w, lower=1e-8, nclip=0).mean
        except ValueError:
            mean = 0.0
        out.append(mean * maskpt)
    return out


# ----------------------------------------------------------------------------- median
def median_constants(exposures):
    """Per image: exposure time, reference sky (e-) and read noise, as the median step uses them."""
    exptimes, skies, noises = [], [], []
    for exposure in exposures:
        sky = None
        for chip in exposure.chips:
            # The reference compares the converted running value with the raw next value.
            if sky is None or sky > chip.subtracted_sky:
                sky = chip.subtracted_sky * chip.conversion_factor
        exptimes.append(exposure.exptime)
        skies.append(0.0 if sky is None else sky)
        noises.append(math.sqrt(sum(c.rdnoise ** 2 for c in exposure.chips) / len(exposure.chips)))
    return exptimes, skies, noises


def _thresholds(exposures, params):
    low, high = params.combine_lthresh, params.combine_hthresh
    for exposure in exposures:  # accumulates once per image, as the reference does
        units = exposure.chips[0].bunit.lower()
        for factor, applies in ((exposure.chips[0].gain, units.startswith("counts")),
                                (exposure.exptime, units.endswith("/s"))):
            if applies:
                low = None if low is None else low * factor
                high = None if high is None else high * factor
    return low, high


def median_chunk(sci, wht, wmeans, exposures, params):
    """Median image of a stack of single-drizzle rows ``(n, rows, nx)``: float32 ``(rows, nx)``."""
    xp = array_module(sci)
    kind = params.combine_type
    bad = None
    if params.median_newmasks:
        bad = wht < xp.asarray(np.asarray(wmeans, dtype=np.float64))[:, None, None]
    if "minmed" in kind:
        exptimes, skies, noises = median_constants(exposures)
        return minmed(sci, wht, bad, noises, exptimes, skies, grow=params.combine_grow,
                      nsigma1=params.combine_nsigma[0], nsigma2=params.combine_nsigma[1],
                      fill=kind.startswith("i"))
    low, high = _thresholds(exposures, params)
    if low is not None or high is not None:
        outside = xp.zeros(sci.shape, dtype=bool)
        if low is not None:
            outside |= sci < low
        if high is not None:
            outside |= sci >= high
        bad = outside if bad is None else bad | outside
    return combine_stack(sci, bad, kind, params.combine_nlow, params.combine_nhigh)


# ----------------------------------------------------------------------------- blot, driz_cr
def blot_chip(median, chip, frame, pmaps: PixelMapCache, params, backend):
    """Blot the median onto ``chip``: native units, sky added back (float32 on the device)."""
    out = blot(median, pmaps.get(chip, frame), interp=params.blot_interp,
               scale=frame.pscale / chip.wcslin_pscale, exptime=chip.exptime, misval=0.0,
               backend=backend)
    out = backend.asarray(out)
    out = out / _F32(chip.conversion_factor)
    sky = chip.computed_sky if params.blot_addsky else params.blot_skyval
    if sky is not None:
        out = out + _F32(sky)
    return out


def cr_mask(chip, blotted, params):
    """driz_cr good-pixel mask of ``chip`` (bool, True = kept) from its blotted median.

    Pixels whose science value was not finite are bad pixels, not cosmic rays: they are
    compared as equal to the model, so they are never flagged nor grow a flag onto their
    neighbours (the drizzle stages give them weight 0 through ``Chip.finite``).
    """
    xp = array_module(chip.sci)
    factor = _F32(chip.conversion_factor)
    model = blotted * factor
    data = chip.sci * factor
    if chip.finite is not None:
        data = xp.where(chip.finite, data, model)
    return cosmic_ray_mask(data, model, abs_derivative(model),
                           background=chip.subtracted_sky * chip.conversion_factor,
                           gain=chip.eff_gain, readnoise=chip.rdnoise, snr=params.driz_cr_snr,
                           scale=params.driz_cr_scale, grow=params.driz_cr_grow,
                           ctegrow=params.driz_cr_ctegrow, cte_dir=chip.cte_dir)


# ----------------------------------------------------------------------------- final drizzle
def final_weight(chip, params, statics, crmask, pix_ratio: float, xp):
    """Final-drizzle input weight (float32) and its ``wt_scl`` for ``final_wht_type``."""
    good = _good(chip, params.final_bits, statics, xp, crmask).astype(np.float32)
    if params.final_wht_type == "ERR":
        weight = (_F32(chip.exptime) / chip.err) ** 2 * good
        return weight.astype(np.float32, copy=False), 1.0 / pix_ratio ** 4
    good *= _F32(chip.exptime)  # float32 * float32 scalar, in place: the same values
    return good, wt_scl_value(params.final_wt_scl)


def context_ids(exposures, context: bool) -> list[list[int]]:
    """Final-drizzle context id of every chip (consecutive; wrapped into one plane without context)."""
    ids, k = [], 0
    for exposure in exposures:
        row = []
        for _ in exposure.chips:
            k += 1
            row.append(k if context else (k - 1) % 32 + 1)
        ids.append(row)
    return ids


def drizzle_final(exposures, frame, pmaps: PixelMapCache, params, statics, crmasks, backend, *,
                  context: bool = True, release: bool = False):
    """Drizzle every chip onto ``frame``: ``(sci, wht, ctx)`` on the device.

    ``crmasks`` is a per-exposure list of per-chip good masks (or None without driz_cr).
    ``context=False`` leaves the context image out (``ctx`` None): the same SCI and WHT
    without assembling the frame's context planes. ``release``: see :func:`final_accumulator`.
    """
    drz = final_accumulator(exposures, frame, pmaps, params, statics, crmasks, backend,
                            release=release)
    if context:
        return drz.device_arrays()
    out = drz.band(0, frame.shape[0], products=("sci", "wht"))
    return out["sci"], out["wht"], None


def final_accumulator(exposures, frame, pmaps: PixelMapCache, params, statics, crmasks, backend, *,
                      tile_shape=None, release: bool = False) -> Drizzle:
    """The final drizzle of every chip onto ``frame``, as the :class:`~hapgpu.resample.Drizzle`
    holding it: its finished rows are read band by band with ``Drizzle.band`` (the same values
    as :func:`drizzle_final`, whatever the tiles).

    Parameters
    ----------
    exposures, frame, pmaps, params, statics, crmasks, backend
        As :func:`drizzle_final`.
    tile_shape : int or (int, int), optional
        The accumulator's tiles (default: chosen from the memory budget); tiles are allocated
        where inputs land, so small tiles make memory follow the covered area of a large frame.
    release : bool
        Drop each chip's ``sci`` and ``err`` arrays (set them to None) once the chip is
        drizzled, for a caller that reads no chip's pixels again (its DQ and finite mask are
        kept): the inputs' pixels are then freed while the accumulators fill, instead of
        being held beside the finished frame (MVM layers: up to ~0.5 GB of a 4-exposure UVIS
        layer).

    Returns
    -------
    hapgpu.resample.Drizzle
    """
    xp = backend.xp
    drz = Drizzle(frame.shape, kernel=params.final_kernel, pixfrac=params.final_pixfrac,
                  fillval=params.final_fillval, backend=backend,
                  initial_value=np.nan if params.final_maskval is None else params.final_maskval,
                  tile_shape=tile_shape)
    ids = context_ids(exposures, params.context)
    for i, exposure in enumerate(exposures):
        for k, chip in enumerate(exposure.chips):
            pix_ratio = frame.pscale / chip.wcslin_pscale
            crmask = None if crmasks is None else crmasks[i][k]
            weight, wt_scl = final_weight(chip, params, statics, crmask, pix_ratio, xp)
            drz.add_image(_sky_subtracted(chip), pmaps.get(chip, frame), weight=weight,
                          in_units=chip.in_units, exptime=exposure.exptime, scale=pix_ratio,
                          wt_scl=wt_scl, context_id=ids[i][k])
            if release:
                chip.sci = chip.err = None
                del weight
    return drz
