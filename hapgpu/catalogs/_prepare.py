"""Preparation of one drizzled image for the HAP catalogs (hap-pipeline.md §1.13 A).

Every image — the total detection image and each filter image — is prepared on its own: blank
test, footprint, background and background rms (zero, sigma-clipped constant, or
``Background2D``), the Gaussian detection kernel, the effective gain, the aperture radii and
the weight regions with their detection thresholds. The choices follow drizzlepac 3.11's
``CatalogImage.compute_background`` and ``HAPCatalogBase`` as coded, including the places where
the code and the documentation differ (the Background2D alternative is tried when the skew is
*above* ``bkg_skew_threshold``).

Arrays stay on the backend; the background and rms images keep the SCI dtype (float32), as
drizzlepac's ``np.full_like(data, value)`` does, so later ``data - background`` is the same
float32 arithmetic.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
from astropy.stats import gaussian_fwhm_to_sigma

from .. import detection
from ..backend import Backend, resolve_backend
from ..kernels.detection import morphology as kmorph
from ..errors import InvalidInputError
from ._parameters import CatalogParameters
from ._product import CatalogProduct

__all__ = ["ImageBackground", "WeightRegion", "PreparedImage", "prepare_image",
           "compute_background", "make_wht_masks", "region_threshold", "region_rms",
           "gaussian_kernel", "effective_gain"]

log = logging.getLogger(__name__)

#: The footprint is the count mask eroded this many times with a 3x3 cross.
FOOTPRINT_EROSION = 10
#: Background2D box rejection percentages tried in turn.
EXCLUDE_PERCENTILES = (10, 25, 50, 75)
#: HAP's MAD-rms constant is applied inside :func:`hapgpu.detection.mad_rms`.
_NEGATIVE_SIGMA = -1.0


@dataclass
class ImageBackground:
    """Background of one image.

    Attributes
    ----------
    background, rms : array
        (ny, nx), SCI dtype, on the backend (constant images for the constant cases).
    rms_median, median : float
        Scalar rms and background (``Background2D.background_rms_median`` / ``background_median``
        for the 2-D case).
    kind : str
        ``"zero_background"``, ``"sigma_clipped_background"`` or ``"twod_background"``.
    """

    background: object
    rms: object
    rms_median: float
    median: float
    kind: str


@dataclass
class WeightRegion:
    """One weight region of :func:`make_wht_masks`.

    Attributes
    ----------
    mask : array
        (ny, nx) uint16, 1 inside the region.
    rel_weight : array
        (ny, nx) float, relative weight times ``mask``.
    wht_limit : float
        Lower limit of the region in WHT units.
    scale : float
        Lower limit in relative-weight units.
    """

    mask: object
    rel_weight: object
    wht_limit: float
    scale: float

    @property
    def max_rel_weight(self) -> float:
        return float(self.rel_weight.max())


@dataclass
class PreparedImage:
    """A drizzled image ready for source identification or measurement.

    Attributes
    ----------
    product : CatalogProduct
    params : CatalogParameters
    backend : Backend
    blank : bool
        SCI (NaN as 0) is entirely 0: the catalogs are empty.
    data : array
        SCI on the backend, (ny, nx) float32, NaN replaced by 0 (as drizzlepac does in place;
        +-inf become the largest finite float32, numpy ``nan_to_num``).
    footprint, inv_footprint : array or None
        Bool (ny, nx): the count mask > 0 eroded 10 times with a 3x3 cross, and its inverse.
    background : ImageBackground or None
        None when blank. The segmentation catalog may replace it (second round), as drizzlepac
        does on the shared image object.
    kernel : numpy.ndarray or None
        11x11 normalised Gaussian of FWHM ``kernel_fwhm``.
    kernel_fwhm : float
        ``TWEAK_FWHMPSF / pscale``, pixels.
    gain : float
        Effective gain, electrons per (electron/s): 1 for IR and SBC, else
        ``EXPTIME * mean(ATODGN* > 0)``.
    aperture_radii : tuple of float
        (aperture_1, aperture_2) / pscale, pixels.
    annulus : tuple of float
        Inner and outer radius of the sky annulus, pixels.
    regions : list of WeightRegion
    """

    product: CatalogProduct
    params: CatalogParameters
    backend: Backend
    blank: bool
    data: object
    footprint: object = None
    inv_footprint: object = None
    background: ImageBackground | None = None
    kernel: np.ndarray | None = None
    kernel_fwhm: float = math.nan
    gain: float = math.nan
    aperture_radii: tuple = ()
    annulus: tuple = ()
    regions: list = field(default_factory=list)

    @property
    def keywords(self) -> dict:
        return self.product.keywords

    @property
    def detector(self) -> str:
        return self.product.detector

    def to_host(self, array) -> np.ndarray:
        return self.backend.to_host(array)


def gaussian_kernel(fwhm: float, npixels: int = 11) -> np.ndarray:
    """Normalised 2-D Gaussian sampled at pixel centres (astropy ``Gaussian2DKernel``).

    Parameters
    ----------
    fwhm : float
        Full width at half maximum, pixels (sigma = fwhm * gaussian_fwhm_to_sigma).
    npixels : int
        Kernel size along each axis (odd).

    Returns
    -------
    numpy.ndarray
        (npixels, npixels) float64, summing to 1.
    """
    sigma = fwhm * gaussian_fwhm_to_sigma
    half = npixels // 2
    x = np.arange(-half, npixels - half, dtype=float)
    kernel = np.exp(-(x[None, :] ** 2 + x[:, None] ** 2) / (2.0 * sigma * sigma))
    kernel *= 1.0 / (2.0 * math.pi * sigma * sigma)
    return kernel / kernel.sum()


def effective_gain(keywords: dict) -> float:
    """HAP's effective gain: 1 for IR and SBC, else ``EXPTIME * mean(ATODGN* > 0)``."""
    if keywords["detector"].upper() in ("IR", "SBC"):
        return 1.0
    gains = [g for g in keywords.get("gain_keys", []) if g > 0.0]
    return float(keywords["exptime"] * np.mean(gains)) if gains else math.nan


def _all_finite(image) -> bool:
    """Every value of a 2-D host float image is finite (one compiled sweep)."""
    return bool(kmorph.all_finite(image))


def _constant_like(image, value, xp):
    """``xp.full_like(image, value)``; a 2-D host image is filled by a parallel compiled pass
    (``value`` cast to the image dtype as ``full_like`` casts it)."""
    if xp is np and isinstance(image, np.ndarray) and image.ndim == 2 \
            and image.dtype.kind == "f" and image.dtype.isnative:
        out = np.empty(image.shape, dtype=image.dtype)
        with np.errstate(over="ignore"):   # full_like's cast: out of range becomes inf
            fill = out.dtype.type(value)
        kmorph.fill_constant(out, fill)
        return out
    return xp.full_like(image, value)


def _std_above_zero(values) -> float:
    """Sample standard deviation of the values > 0 (scipy ``tstd(limits=(0, None))``)."""
    vals = values[values > 0]
    if vals.size < 2:
        return math.nan
    return float(vals.astype(np.float64).std(ddof=1))


def _zero_background(data, footprint, params, keywords, xp) -> ImageBackground | None:
    illuminated = int(footprint.sum())
    zeros = int(xp.count_nonzero(data[footprint] == 0))
    if illuminated == 0 or zeros / float(illuminated) * 100.0 <= params.generation["zero_percent"]:
        return None
    rms = _std_above_zero(data[footprint])
    rms_median = rms
    minimum = 1.0 / keywords["texpo_time"]
    if np.nan_to_num(rms) < minimum:
        rms_median = minimum
    return ImageBackground(background=xp.zeros_like(data), rms=_constant_like(data, rms, xp),
                           rms_median=rms_median, median=0.0, kind="zero_background")


def _try_background2d(work, inv_footprint, box, win, bk):
    for percentile in EXCLUDE_PERCENTILES:
        try:
            bkg = detection.Background2D(work, (box, box), filter_size=(win, win),
                                         bkg_estimator=detection.SExtractorBackground(),
                                         bkg_rms_estimator=detection.StdBackgroundRMS(),
                                         exclude_percentile=percentile,
                                         coverage_mask=inv_footprint, backend=bk)
        except (InvalidInputError, ValueError):
            continue
        return bkg
    return None


def compute_background(data, footprint, params: CatalogParameters, keywords: dict, *,
                       force_2d: bool = False, backend=None) -> ImageBackground:
    """Background and background rms of a drizzled image (spec §1.13 A).

    Parameters
    ----------
    data : array_like
        SCI, (ny, nx) float32 (host or device).
    footprint : array_like of bool
        (ny, nx) illuminated pixels (:attr:`PreparedImage.footprint`).
    params : CatalogParameters
    keywords : dict
        :attr:`CatalogProduct.keywords` (``detector``, ``numexp``, ``readnse``, ``texpo_time``).
    force_2d : bool
        The segmentation catalog's second round: Background2D with ``bkg_skew_threshold=0``,
        ``negative_percent=100`` and the default clipping (3 sigma, 3 iterations), so the 2-D
        background is adopted whenever it can be computed.
    backend : str, Backend or None

    Returns
    -------
    ImageBackground

    Notes
    -----
    As coded in drizzlepac: SBC images with more than ``zero_percent`` zero pixels get a zero
    background; otherwise sigma-clipped statistics outside the footprint give mean/median/rms
    (the data are shifted by ``median - rms`` and re-measured when the median is negative), the
    skew is ``|3 (mean - median) / rms|``, the in-footprint pixels in (0, median + 0.1 rms) are
    clipped again for the adopted median, and the rms is the largest of that clipped rms,
    ``sqrt(NUMEXP) max(READNSE) / TEXPTIME`` (SBC: ``sqrt(max(median TEXPTIME, 1)) / TEXPTIME``)
    and :func:`hapgpu.detection.mad_rms`. Background2D (box ``bkg_box_size``, filter
    ``bkg_filter_size``, SExtractor / Std estimators, exclude_percentile 10, 25, 50, 75 in turn)
    replaces it when the skew exceeds ``bkg_skew_threshold`` and ``simple_bkg`` is off, unless more
    than ``negative_percent`` of the footprint falls below ``-rms2d_median`` or (threshold > 0)
    its rms median exceeds the constant rms.
    """
    bk = resolve_backend(backend)
    xp = bk.xp
    gen = params.generation
    data = bk.asarray(data)
    footprint = bk.asarray(footprint).astype(bool)
    inv_footprint = ~footprint
    skew_threshold = 0.0 if force_2d else gen["bkg_skew_threshold"]
    negative_percent = 100.0 if force_2d else gen["negative_percent"]
    nsigma_clip = 3.0 if force_2d else gen["nsigma_clip"]
    maxiters = 3 if force_2d else gen["maxiters"]
    simple_bkg = False if force_2d else gen["simple_bkg"]
    detector = keywords["detector"].upper()

    if detector == "SBC":
        zero = _zero_background(data, footprint, params, keywords, xp)
        if zero is not None:
            return zero

    # drizzlepac works on a copy it shifts in place when the median is negative; the data are
    # only read otherwise, so the copy is made only then (same float arithmetic)
    work = data
    mean_full, median_full, rms_full = detection.sigma_clipped_stats(
        work, mask=inv_footprint, sigma=nsigma_clip, cenfunc="median", maxiters=maxiters, backend=bk)
    if median_full < 0.0:
        work = data - (median_full - rms_full)
        mean_full, median_full, rms_full = detection.sigma_clipped_stats(
            work, mask=inv_footprint, sigma=nsigma_clip, cenfunc="median", maxiters=maxiters,
            backend=bk)
    with np.errstate(divide="ignore", invalid="ignore"):
        skew = np.abs(3.0 * (mean_full - median_full) / rms_full)

    upper = median_full + rms_full * 0.1
    if bk.name == "cpu" and work.ndim == 2 and work.dtype.kind == "f":
        # one sweep, no image-sized temporaries: the same values in the same order (NaN and
        # inf fail both comparisons in either form)
        values = kmorph.gather_open_interval(work, footprint, work.dtype.type(upper))
    else:
        inside = (work * footprint)
        positive = inside[inside > 0.0]
        values = positive[positive < upper]
    mean, median, rms = detection.sigma_clipped_stats(values, sigma=nsigma_clip, cenfunc="median",
                                                      backend=bk)
    if mean < 0.0 or median < 0.0:
        mean, median = max(0, mean), max(0, median)
    texptime = keywords["texpo_time"]
    if detector != "SBC":
        minimum_rms = math.sqrt(keywords["numexp"]) * keywords["readnse"] / texptime
    else:
        minimum_rms = math.sqrt(max(median * texptime, 1.0)) / texptime
    madrms = detection.mad_rms(work, backend=bk)
    rms = max(rms, minimum_rms, madrms)  # Python's max, in drizzlepac's order (NaN rules alike)
    result = ImageBackground(background=_constant_like(work, median, xp),
                             rms=_constant_like(work, rms, xp),
                             rms_median=rms, median=median, kind="sigma_clipped_background")
    log.debug("sigma-clipped background %.6g, rms %.6g (skew %.3g)", median, rms, skew)

    if simple_bkg or not skew > skew_threshold:
        return result
    bkg2d = _try_background2d(work, inv_footprint, gen["bkg_box_size"], gen["bkg_filter_size"], bk)
    if bkg2d is None:
        return result
    background = bk.asarray(bkg2d.background)
    rms2d = bk.asarray(bkg2d.background_rms)
    rms2d_median = float(bkg2d.background_rms_median)
    negative = int(xp.count_nonzero((work - background)[footprint] < _NEGATIVE_SIGMA * rms2d_median))
    illuminated = int(footprint.sum())
    if illuminated and negative / illuminated * 100.0 > negative_percent:
        return result
    if rms2d_median > result.rms_median and skew_threshold > 0.0 and negative_percent < 100.0:
        return result
    return ImageBackground(background=background.astype(work.dtype, copy=False),
                           rms=rms2d.astype(work.dtype, copy=False), rms_median=rms2d_median,
                           median=float(bkg2d.background_median), kind="twod_background")


def make_wht_masks(wht, inv_footprint, *, scale=1.5, sensitivity=0.95, size=11,
                   backend=None) -> list[WeightRegion]:
    """Split the footprint into regions of similar weight (drizzlepac ``make_wht_masks``).

    ``rel = maximum_filter(WHT, size) / max(...)``; starting at ``limit = 1/scale``, the pixels
    with ``rel > limit`` among those not yet assigned form a region when they are everything
    left, or when both they and the rest exceed ``(1 - sensitivity)`` of the footprint; when the
    rest is that small the limit drops to 0; the limit is divided by ``scale`` each step.

    Parameters
    ----------
    wht : array_like
        (ny, nx) float32 drizzle weight.
    inv_footprint : array_like of bool
        (ny, nx), True outside the footprint.
    scale : float
        ``max(parameter scale, (NDRIZIM - 1) / 2)``.
    sensitivity : float
    size : int
        ``region_size``: the maximum-filter window.
    backend : str, Backend or None

    Returns
    -------
    list of WeightRegion
        Highest weights first.
    """
    bk = resolve_backend(backend)
    xp = bk.xp
    wht = bk.asarray(wht)
    if bk.name == "cpu" and wht.ndim == 2 and scale > 1.0:
        native = np.ascontiguousarray(wht, dtype=wht.dtype.newbyteorder("="))
        if native.dtype.kind == "f" and _all_finite(native):
            return _wht_masks_cpu(native, np.ascontiguousarray(inv_footprint, dtype=bool),
                                  scale=scale, sensitivity=sensitivity, size=size)
    maxwht = detection.maximum_filter(wht, size=(size, size), backend=bk)
    top = maxwht.max()
    rel = maxwht / top
    remaining = (~bk.asarray(inv_footprint).astype(bool)) & (rel > 0)
    limit = 1.0 / scale
    pthresh = (1.0 - sensitivity) * int(remaining.sum())
    regions = []
    while bool(remaining.any()):
        mask = (rel > limit) & remaining
        n_mask = int(mask.sum())
        if n_mask:
            n_left = int(remaining.sum())
            if n_mask == n_left or (n_mask > pthresh and (n_left - n_mask) > pthresh):
                regions.append(WeightRegion(mask=mask.astype(xp.uint16), rel_weight=rel * mask,
                                            wht_limit=float(limit * top), scale=limit))
                remaining &= ~mask
            elif (n_left - n_mask) <= pthresh:
                limit = 0.0
        limit /= scale
    return regions


def _wht_masks_cpu(wht, inv_footprint, *, scale, sensitivity, size) -> list[WeightRegion]:
    """:func:`make_wht_masks` of a finite host image in a few compiled sweeps.

    The remaining pixels after each accepted region are those with ``0 < rel <= limit`` of
    that region, so every count the loop asks for is a sum of the counts of the bands between
    consecutive float32 limits (``rel > limit`` compares in float32, as NumPy does for a
    float32 array and a Python float): one sweep counts the bands, the loop runs on the
    counts, and one more sweep labels the regions.
    """
    # the filtered maximum is the image maximum (every pixel lies in its own window), so
    # ``rel = maxwht / maxwht.max()`` is one fused sweep
    top = wht.max()
    if top > 0:
        rel = kmorph.relative_max_filter(wht, size, top)
    else:  # NumPy's 0/0 (NaN everywhere, with its warning), as the expression gives
        maxwht = kmorph.sliding_max_reflect(wht, size)
        rel = maxwht / maxwht.max()
        del maxwht
    footprint = ~inv_footprint
    # the limits the loop can reach: 1/scale, divided by scale until float32 underflows to 0
    limits = [1.0 / scale]
    while np.float32(limits[-1]) != 0.0:
        limits.append(limits[-1] / scale)
    limits32 = np.asarray(limits, dtype=rel.dtype)
    counts = kmorph.band_counts(rel, footprint, limits32)
    cum = np.concatenate([[0], np.cumsum(counts)])     # cum[b]: pixels in bands < b
    nbands = len(limits) + 1

    def between(first, last):                           # pixels in bands first..last
        return int(cum[last + 1] - cum[first])

    n_total = between(0, nbands - 1)
    pthresh = (1.0 - sensitivity) * n_total
    accepted = []                                       # (last band, limit)
    band_region = np.full(nbands, -1, dtype=np.int8)
    done = -1                                           # last band already assigned
    step = 0
    to_zero = False
    while between(done + 1, nbands - 1) > 0:
        # the last float32 limit is 0, which takes everything left: step stays in range
        limit = 0.0 if to_zero else limits[step]
        last = nbands - 1 if to_zero else step
        n_mask = between(done + 1, last) if last > done else 0
        if n_mask:
            n_left = between(done + 1, nbands - 1)
            if n_mask == n_left or (n_mask > pthresh and (n_left - n_mask) > pthresh):
                accepted.append((last, limit))
                band_region[done + 1:last + 1] = len(accepted) - 1
                done = last
            elif (n_left - n_mask) <= pthresh:
                to_zero = True
        step += 1
    if len(accepted) > 127:
        raise InvalidInputError(f"make_wht_masks: {len(accepted)} weight regions (at most 127)")
    labels = kmorph.band_labels(rel, footprint, limits32, band_region)
    regions = []
    for index, (_, limit) in enumerate(accepted):
        mask, weight = kmorph.region_planes(labels, rel, index)
        regions.append(WeightRegion(mask=mask, rel_weight=weight, wht_limit=float(limit * top),
                                    scale=limit))
    return regions


def region_rms(rms, region: WeightRegion, xp, *, image: bool = True):
    """``rms * sqrt(mask / max rel_weight)`` of one region and its median over positive pixels.

    Parameters
    ----------
    rms : array, (ny, nx)
        Background rms.
    region : WeightRegion
    xp : module
        The array module of ``rms`` (NumPy or CuPy).
    image : bool, keyword-only
        False: only the median is wanted (the first result is then None).

    Returns
    -------
    reg_rms : array or None
        (ny, nx), the promoted dtype of the operands (float32 for HAP's float32 rms).
    median : float
        NaN when no value is positive.

    Notes
    -----
    On the host, float32 rms with the uint16 mask and float32 weights of
    :func:`make_wht_masks` go through one compiled pass
    (:func:`hapgpu.kernels.detection.morphology.region_rms_pass`, the same float32 roundings
    as the NumPy expression); when the positive values are all equal (a constant rms: the
    sigma-clipped and zero backgrounds) their median is that value, with no sort.
    """
    fast = _region_rms_host(rms, region, xp, image)
    if fast is not None:
        return fast
    reg_rms = rms * xp.sqrt(region.mask / region.rel_weight.max())
    positive = reg_rms[reg_rms > 0]
    median = float(xp.nanmedian(positive)) if positive.size else math.nan
    return (reg_rms if image else None), median


def _region_rms_host(rms, region: WeightRegion, xp, image: bool):
    """:func:`region_rms` in compiled passes, or None when the operands are not the usual
    host float32 / uint16 / float32 arrays of one shape."""
    mask, weight = region.mask, region.rel_weight
    if not (xp is np and isinstance(rms, np.ndarray) and isinstance(mask, np.ndarray)
            and isinstance(weight, np.ndarray) and rms.ndim == 2
            and rms.dtype == np.float32 and mask.dtype == np.uint16
            and weight.dtype == np.float32 and rms.shape == mask.shape == weight.shape
            and rms.dtype.isnative and weight.dtype.isnative and mask.dtype.isnative):
        return None
    max_rel = weight.max()
    out = np.empty(rms.shape if image else (1, 1), dtype=np.float32)
    n, lo, hi = kmorph.region_rms_pass(rms, mask, max_rel, out, image)
    reg_rms = out if image else None
    if n == 0:
        return reg_rms, math.nan
    if lo == hi and 2.0 * hi <= float(np.finfo(np.float32).max):
        return reg_rms, float(hi)   # NumPy's median of equal values: (v + v) / 2 == v
    if not image:
        out = np.empty(rms.shape, dtype=np.float32)
        kmorph.region_rms_pass(rms, mask, max_rel, out, True)
    positive = out[out > 0]
    return reg_rms, float(np.nanmedian(positive))


def region_threshold(nsigma, rms, regions, *, backend=None):
    """Detection threshold image: ``nsigma * median(rms / sqrt(max rel_weight))`` per region.

    Parameters
    ----------
    nsigma : float
    rms : array_like
        (ny, nx) background rms.
    regions : list of WeightRegion
        Empty: ``nsigma * rms``.
    backend : str, Backend or None

    Returns
    -------
    array
        (ny, nx), the dtype of ``rms``; 0 outside every region.
    """
    bk = resolve_backend(backend)
    xp = bk.xp
    rms = bk.asarray(rms)
    if not regions:
        return nsigma * rms
    threshold = xp.zeros_like(regions[0].rel_weight)
    for region in regions:
        _, median = region_rms(rms, region, xp, image=False)
        item = threshold.dtype.type(nsigma * threshold.dtype.type(median))
        mask = region.mask
        if (xp is np and threshold.dtype == np.float32 and isinstance(mask, np.ndarray)
                and mask.dtype == np.uint16 and mask.shape == threshold.shape
                and mask.dtype.isnative):
            kmorph.add_scaled_mask(threshold, mask, item)   # the same float32 steps, fused
        else:
            threshold += item * mask
    return threshold


def prepare_image(product: CatalogProduct, params: CatalogParameters, *,
                  backend=None) -> PreparedImage:
    """Prepare one drizzled product for the catalogs (spec §1.13 A).

    Parameters
    ----------
    product : CatalogProduct
    params : CatalogParameters
    backend : str, Backend or None

    Returns
    -------
    PreparedImage
        ``blank`` true (and nothing else computed) when SCI is entirely 0 or NaN.
    """
    bk = resolve_backend(backend)
    xp = bk.xp
    gen = params.generation
    # drizzlepac's CatalogImage replaces NaN by 0 in place when it tests for a blank image
    # (``np.nan_to_num(data, 0)``: the 0 is ``copy=False``), so every later step sees 0 there
    # (the product's own array is left as it is)
    if bk.name == "cpu" and np.ndim(product.data) == 2:
        sci = np.asarray(product.data)
        if sci.dtype != np.float32 or not sci.dtype.isnative:
            sci = sci.astype(np.float32)
        data, low, high = kmorph.finite_copy(sci, np.finfo(np.float32).max)
        blank = bool(low == 0 and high == 0)
    else:
        data = xp.nan_to_num(bk.asarray(np.ascontiguousarray(product.data, dtype=np.float32)),
                             copy=True, nan=0.0)
        blank = bool(data.min() == 0 and data.max() == 0)
    image = PreparedImage(product=product, params=params, backend=bk, blank=blank, data=data)
    pscale = product.pscale
    image.aperture_radii = (gen["aperture_1"] / pscale, gen["aperture_2"] / pscale)
    inner = gen["skyannulus_arcsec"] / pscale
    image.annulus = (inner, inner + gen["dskyannulus_arcsec"] / pscale)
    image.gain = effective_gain(product.keywords)
    image.kernel_fwhm = gen["TWEAK_FWHMPSF"] / pscale
    if blank:
        return image
    count = bk.asarray(product.mask) > 0
    image.footprint = detection.binary_erosion(count, iterations=FOOTPRINT_EROSION, backend=bk)
    image.inv_footprint = ~image.footprint
    image.background = compute_background(data, image.footprint, params, product.keywords,
                                          backend=bk)
    image.kernel = gaussian_kernel(image.kernel_fwhm, 11)
    ndrizim = product.keywords.get("ndrizim") or 1
    scale = max(gen["scale"], (ndrizim - 1) / 2)
    image.regions = make_wht_masks(product.wht, image.inv_footprint, scale=scale,
                                   sensitivity=gen["sensitivity"], size=gen["region_size"],
                                   backend=bk)
    return image
