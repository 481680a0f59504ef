"""Per-chip source finding for alignment: HAP's recipe (§3.9) on the backends.

For each exposure (drizzlepac's ``AlignmentTable`` / ``HAPImage``, as coded in 3.11):

1. **Background** per chip: :class:`~hapgpu.detection.Background2D` (box 27, or 13 for IR,
   HRC, SBC and WFPC2; 3x3 mesh filter; SExtractor or Median estimator, Std rms) with
   ``exclude_percentile`` 10, 25, 50, 75 tried in turn. Threshold
   ``= 1.1 * (bkg + 3 * rms)`` (``threshold = -1.1`` scales the default threshold).
2. **Kernel** (:func:`build_auto_kernel`): the brightest isolated peak whose 15x15 cut-out has
   a Gaussian FWHM in (1, 4) px becomes the detection kernel; otherwise a 7x7 Gaussian of the
   default FWHM (0.13 arcsec). A failed search is retried once with box 13 and the plain
   ``bkg + 5 rms`` threshold, which then stays (as coded). The first exposure's FWHM becomes the
   default of the next ones.
3. **Cosmic rays** (``classify``): segments whose central-moment peak, width or elongation say
   "not a star" are replaced by the background; background and kernel are recomputed.
4. **DQ mask** (:func:`build_dq_mask`) and **extraction** (:func:`extract_sources`):
   segmentation of the kernel-convolved image, then one DAOFIND star per segment, the
   brightest segments first, up to ``MAX_SOURCES_PER_CHIP``.
5. **SBC**: Gaussian smoothing, a 3-sigma limit, LoG(5) point-source labels as the search mask
   of a DAOFIND run (:func:`extract_sbc_sources`).

Large arrays stay on the backend's device; per-segment bookkeeping runs on the host.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from astropy.io import fits
from astropy.stats import gaussian_fwhm_to_sigma, gaussian_sigma_to_fwhm
from astropy.table import Table
from scipy.optimize import least_squares
from scipy.special import erf

from .. import detection as det
from ..backend import Backend, resolve_backend
from ..detection.filters import ndimage_module
from ..errors import HapGpuError, InvalidInputError
from ._pars import AlignmentPars

__all__ = [
    "ExposureSources",
    "build_auto_kernel",
    "build_dq_mask",
    "classify_sources",
    "clean_cosmic_rays",
    "compute_background",
    "extract_sbc_sources",
    "extract_sources",
    "find_alignment_sources",
    "find_exposure_sources",
    "find_fwhm",
    "gaussian_kernel",
    "refine_centroids",
]

log = logging.getLogger(__name__)

#: Minimum size of a source, pixels (drizzlepac's ``source_box``).
SOURCE_BOX = 7
#: Largest mean area of the 10 largest segments before the kernel is shrunk (25 px radius).
MAX_AREA_LIMIT = 1964
#: Percentages of rejected pixels tried in turn by Background2D.
EXCLUDE_PERCENTILES = (10, 25, 50, 75)
#: DQ bits of saturation (full well and A-to-D), kept unless deep inside a saturated area.
SATURATION_BITS = 256 | 2048
#: Systematic floor of the centroid errors, pixels (fit weights).
POSITION_ERROR_FLOOR = 0.02
#: Kernels above this many taps are applied by FFT (same result as direct convolution).
_FFT_MIN_TAPS = 50

_COLUMNS = ("x", "y", "flux", "peak", "mag", "sharpness", "roundness1", "roundness2", "npix")


@dataclass
class ExposureSources:
    """Sources found in one exposure.

    Attributes
    ----------
    filename : str
        The FLT/FLC file.
    chips : dict of int to astropy.table.Table
        Per SCI extension version (1-based), rows from the brightest segment down:
        ``x, y`` (0-based pixel position used for fitting: the refined centroid, see
        :func:`refine_centroids`), ``x_hap, y_hap`` (HAP's DAOFIND position), ``flux`` and
        ``peak`` (data units), ``mag`` (-2.5 log10 flux), ``sharpness, roundness1,
        roundness2``, ``npix``, ``saturated`` (HAP's saturated-segment fallback was used),
        ``cat_id`` (1-based), ``dq_saturated`` (a DQ-saturated pixel next to the peak) and
        ``position_error`` (expected centroid error, mas).
    kernel_fwhm : float
        FWHM of the detection kernel, pixels.
    kernel_is_psf : bool
        True when the kernel was cut from a star, False for the Gaussian fallback.
    pscale : float
        Pixel scale of the first chip, arcsec.
    """

    filename: str
    chips: dict = field(default_factory=dict)
    kernel_fwhm: float = float("nan")
    kernel_is_psf: bool = False
    pscale: float = float("nan")

    @property
    def n_sources(self) -> int:
        """Total number of sources over the chips."""
        return int(sum(len(t) for t in self.chips.values()))


# ----------------------------------------------------------------------------- small helpers


class _Quiet:
    """Silence the detection module's "nothing found" warnings (they are expected here)."""

    def __enter__(self):
        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", det.NoDetectionsWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        return self

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)
        return False


def _native(array, dtype=np.float32) -> np.ndarray:
    """Host array in native byte order and the given dtype.

    FITS arrays are big-endian; they are converted here once per chip so that every
    ``hapgpu.detection`` call (and the device copy) gets native arrays.
    """
    return np.ascontiguousarray(np.asarray(array), dtype=np.dtype(dtype).newbyteorder("="))


def gaussian_kernel(fwhm: float, size: int) -> np.ndarray:
    """A normalised, centre-sampled circular Gaussian.

    Parameters
    ----------
    fwhm : float
        FWHM, pixels.
    size : int
        Odd side, pixels.

    Returns
    -------
    ndarray, shape (size, size), float64
        Sums to 1. Values are ``exp(-r^2 / (2 sigma^2))`` at the pixel centres, as astropy's
        ``Gaussian2DKernel(mode='center')`` that drizzlepac's ``build_gaussian_kernel`` uses.
    """
    sigma = fwhm * gaussian_fwhm_to_sigma
    half = (size - 1) / 2.0
    offsets = np.arange(size) - half
    rr = offsets[None, :] ** 2 + offsets[:, None] ** 2
    kernel = np.exp(-rr / (2.0 * sigma * sigma))
    return kernel / kernel.sum()


def _convolve(image, kernel: np.ndarray, bk: Backend):
    """Convolve with zero fill outside the image and a normalised kernel (astropy semantics).

    Small kernels go through :func:`hapgpu.detection.convolve`; kernels with more than
    ``_FFT_MIN_TAPS`` taps (the 15x15 PSF cut-outs) are applied by FFT, which is the same
    linear operation (zero padding, 'same' output) at a fraction of the cost. The image must be
    finite.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.size < _FFT_MIN_TAPS:
        return det.convolve(image, kernel, backend=bk)
    ksum = float(kernel.sum())
    if bk.name == "gpu":
        from cupyx.scipy.signal import fftconvolve
    else:
        from scipy.signal import fftconvolve
    arr = bk.xp.asarray(image, dtype=np.float64)
    out = fftconvolve(arr, bk.xp.asarray(kernel / ksum), mode="same")
    return out.astype(image.dtype if image.dtype.kind == "f" else np.float64, copy=False)


# ----------------------------------------------------------------------------- DQ mask


def build_dq_mask(dq, *, backend=None):
    """Pixels to ignore in source finding, from a DQ array (drizzlepac's ``build_dqmask``).

    The net effect of drizzlepac 3.11's code with stsci.tools >= 4: a pixel is masked when it
    carries any DQ bit other than 256 and 2048 (saturation), or when it lies deep inside a
    saturated area. The second part takes the not-saturated map, erodes it once and dilates it
    five times (3x3 cross structure, outside counts as not set), so saturated areas lose a
    4-pixel rim and thin saturated streaks are not masked at all.

    Parameters
    ----------
    dq : array_like of int, shape (ny, nx)
        Data-quality flags.
    backend : str, Backend or None, keyword-only

    Returns
    -------
    ndarray of bool, shape (ny, nx)
        True where the pixel is masked (on the backend's device).
    """
    bk = resolve_backend(backend)
    xp = bk.xp
    ndi = ndimage_module(bk)
    flags = xp.asarray(_native(dq, np.int32))
    other_bits = (flags & ~SATURATION_BITS) != 0
    not_saturated = (flags & SATURATION_BITS) == 0
    eroded = ndi.binary_erosion(not_saturated, iterations=1)
    grown = ndi.binary_dilation(eroded, iterations=5)
    return other_bits | ~grown


# ----------------------------------------------------------------------------- background


@dataclass
class _ChipBackground:
    background: object   # (ny, nx) on device
    threshold: object    # (ny, nx) on device
    rms_median: float


def compute_background(sci, pars: AlignmentPars, *, box_size: int | None = None,
                       nsigma: float | None = None, threshold_scale: float | None = None,
                       bkg_estimator: str | None = None, backend=None) -> _ChipBackground:
    """Background and detection threshold of one chip (drizzlepac's ``compute_background``).

    Background2D (``box_size``, ``pars.win_size`` filter, ``pars``' estimators) is tried with
    ``exclude_percentile`` 10, 25, 50 and 75 until one succeeds. The threshold is
    ``threshold_scale * (bkg + nsigma * rms)``. When every attempt fails, the background is 0
    and the threshold ``(nsigma + 1) * max(0.01, min(sci))`` (drizzlepac's fallback values;
    drizzlepac itself then stops on a missing background).

    Parameters
    ----------
    sci : array_like, shape (ny, nx)
        Science array, finite (host or device).
    pars : AlignmentPars
        Default box size, estimator, ``nsigma`` and threshold scale.
    box_size, nsigma, threshold_scale, bkg_estimator : optional, keyword-only
        Overrides of the ``pars`` values (the retry with box 13 uses them).
    backend : str, Backend or None, keyword-only

    Returns
    -------
    _ChipBackground
        ``background`` and ``threshold`` maps (data units, on the device) and the median rms.
    """
    bk = resolve_backend(backend)
    box = pars.box_size if box_size is None else box_size
    nsig = pars.nsigma if nsigma is None else nsigma
    scale = pars.threshold_scale if threshold_scale is None else threshold_scale
    estimator = getattr(det, pars.bkg_estimator if bkg_estimator is None else bkg_estimator)
    for percentile in EXCLUDE_PERCENTILES:
        try:
            with _Quiet():
                bkg = det.Background2D(sci, box, filter_size=pars.win_size,
                                       bkg_estimator=estimator(),
                                       bkg_rms_estimator=getattr(det, pars.rms_estimator)(),
                                       exclude_percentile=percentile, backend=bk)
                background = bkg.background
                rms = bkg.background_rms
                rms_median = float(bkg.background_rms_median)
        except HapGpuError as exc:
            log.debug("Background2D with exclude_percentile=%s failed: %s", percentile, exc)
            continue
        background = bk.xp.asarray(background)
        threshold = scale * (background + nsig * bk.xp.asarray(rms))
        return _ChipBackground(background, threshold, max(rms_median, 0.0))
    xp = bk.xp
    floor = max(0.01, float(xp.min(xp.asarray(sci))))
    log.info("Background2D failed for every exclude_percentile; using a flat threshold of %.4g",
             (nsig + 1) * floor)
    shape = tuple(sci.shape)
    return _ChipBackground(xp.zeros(shape, dtype=np.float32),
                           xp.full(shape, (nsig + 1) * floor, dtype=np.float32), floor)


# ----------------------------------------------------------------------------- kernel


def _mmm_background(values: np.ndarray) -> float:
    """DAOPHOT MMM mode ``3 median - 2 mean`` of 3-sigma-clipped values (photutils default)."""
    mean, median, _ = det.sigma_clipped_stats(values, sigma=3.0, maxiters=10, backend="cpu")
    return 3.0 * float(median) - 2.0 * float(mean)


def _integrated_gaussian(params, xx, yy):
    """Pixel-integrated circular Gaussian (photutils ``CircularGaussianSigmaPRF``)."""
    flux, x0, y0, sigma = params
    s = math.sqrt(2.0) * abs(sigma)
    fx = erf((xx + 0.5 - x0) / s) - erf((xx - 0.5 - x0) / s)
    fy = erf((yy + 0.5 - y0) / s) - erf((yy - 0.5 - y0) / s)
    return flux * 0.25 * fx * fy


def _gaussian_residuals(params, xx, yy, stamp):
    return (_integrated_gaussian(params, xx, yy) - stamp).ravel()


def find_fwhm(psf: np.ndarray, default_fwhm: float) -> float | None:
    """FWHM of the star in a PSF cut-out (drizzlepac's ``find_fwhm``).

    DAOFIND (threshold 2.5 x the MMM background of the cut-out, FWHM ``default_fwhm``) gives
    the stars; each is fitted over an 11x11 box with a pixel-integrated circular Gaussian whose
    flux, centre and sigma are free (trust-region least squares, unweighted, as photutils'
    ``IterativePSFPhotometry`` with a ``CircularGaussianSigmaPRF`` and ``TRFLSQFitter``). As in
    drizzlepac, no FWHM is returned unless some fit is clean (photutils' flags 0: its box not
    cut by the cut-out's edge, a positive flux, a centre inside); the fit with the largest flux
    gives ``FWHM = 2.3548 sigma``.

    Parameters
    ----------
    psf : ndarray, shape (ny, nx)
        Background-subtracted, normalised cut-out (host).
    default_fwhm : float
        Starting FWHM, pixels.

    Returns
    -------
    float or None
        FWHM in pixels; None when no star is found or no fit is usable.
    """
    psf = np.asarray(psf, dtype=np.float64)
    threshold = 2.5 * _mmm_background(psf)
    with _Quiet():
        try:
            stars = det.DAOStarFinder(threshold=threshold, fwhm=default_fwhm,
                                      backend="cpu")(psf)
        except HapGpuError:
            return None
    if stars is None or len(stars) == 0:
        return None
    ny, nx = psf.shape
    half = 5
    best_flux, best_sigma, n_clean = -np.inf, None, 0
    for xc, yc in zip(np.asarray(stars["x_centroid"]), np.asarray(stars["y_centroid"])):
        if not (np.isfinite(xc) and np.isfinite(yc)):
            continue
        ix, iy = round(xc), round(yc)
        x0, x1 = max(ix - half, 0), min(ix + half + 1, nx)
        y0, y1 = max(iy - half, 0), min(iy + half + 1, ny)
        # photutils flags a fit whose 11x11 box is cut by the image edge (flag 1).
        trimmed = (x0, x1, y0, y1) != (ix - half, ix + half + 1, iy - half, iy + half + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        stamp = psf[y0:y1, x0:x1]
        r = 1.5 * default_fwhm
        inside = (xx - xc) ** 2 + (yy - yc) ** 2 <= r * r
        start = (float(stamp[inside].sum()) if inside.any() else float(stamp.sum()),
                 float(xc), float(yc), default_fwhm * gaussian_fwhm_to_sigma)
        try:
            fit = least_squares(_gaussian_residuals, start, args=(xx, yy, stamp), method="trf")
        except (ValueError, np.linalg.LinAlgError):
            continue
        flux, fx, fy, sigma = fit.x
        if not np.all(np.isfinite(fit.x)):
            continue
        clean = (fit.success and not trimmed and flux > 0
                 and 0 <= fx < nx and 0 <= fy < ny)
        n_clean += int(clean)
        if flux > best_flux:
            best_flux, best_sigma = flux, abs(sigma)
    # As drizzlepac: no usable (unflagged) fit -> no FWHM; otherwise the largest flux wins,
    # flagged or not.
    if best_sigma is None or n_clean == 0:
        return None
    return float(gaussian_sigma_to_fwhm * best_sigma)


def build_auto_kernel(image, weight, threshold, default_fwhm: float, *, backend=None,
                      source_box: int = SOURCE_BOX, good_fwhm=(1.0, 4.0), num_fwhm: int = 30,
                      isolation_size: int = 11):
    """Detection kernel from the image's own PSF (drizzlepac's ``build_auto_kernel``).

    A 14-pixel border is zeroed; peaks above 5x ``threshold`` (11x11 boxes), or above the
    clipped std when there are none and the threshold exceeds the image mean, are visited from
    the brightest down. A peak qualifies when its 15x15 cut-out fits in the image and the 5x5
    weights around it are all non-zero; the cut-out, clipped at 0 and normalised, is measured
    with :func:`find_fwhm`. The first FWHM in ``good_fwhm`` (exclusive) wins; at most
    ``num_fwhm`` fits are tried. drizzlepac zeroes the peak values above its 70000 saturation
    limit after sorting but still visits those peaks first; so does this function.

    Parameters
    ----------
    image : array_like, shape (ny, nx)
        Background-subtracted image (host or device).
    weight : array_like, shape (ny, nx)
        Weight map; 0 marks unusable pixels.
    threshold : array_like, shape (ny, nx)
        Detection threshold map, data units.
    default_fwhm : float
        FWHM of the fallback Gaussian and the fit's starting value, pixels.
    backend : str, Backend or None, keyword-only

    Returns
    -------
    kernel : ndarray, float64 (host)
        15x15 PSF kernel, or a 7x7 Gaussian; sums to 1.
    fwhm : float
        Its FWHM, pixels.
    is_psf : bool
        True for a PSF kernel.
    """
    bk = resolve_backend(backend)
    xp = bk.xp
    img = xp.asarray(image)
    thr = xp.asarray(threshold)
    kern_img = img.copy()
    edge = source_box * 2
    kern_img[:edge, :] = 0.0
    kern_img[-edge:, :] = 0.0
    kern_img[:, :edge] = 0.0
    kern_img[:, -edge:] = 0.0
    with _Quiet():
        peaks = det.find_peaks(kern_img, thr * 5, box_size=isolation_size, backend=bk)
        if peaks is None or len(peaks) == 0:
            tmean = float(xp.mean(thr))
            scalar = thr
            if tmean > float(xp.mean(kern_img)):
                scalar = float(det.sigma_clipped_stats(kern_img, backend=bk)[2])
            peaks = det.find_peaks(kern_img, scalar, box_size=isolation_size, backend=bk)
    kernel, fwhm, is_psf = None, default_fwhm, False
    if peaks is not None and len(peaks) > 0:
        host_img = bk.to_host(img)
        host_wht = bk.to_host(xp.asarray(weight))
        order = np.argsort(-np.asarray(peaks["peak_value"], dtype=float), kind="stable")
        ys = np.asarray(peaks["y_peak"])[order]
        xs = np.asarray(peaks["x_peak"])[order]
        attempts = 0
        for y, x in zip(ys, xs):
            cut = host_img[max(y - source_box, 0):y + source_box + 1,
                           max(x - source_box, 0):x + source_box + 1]
            wht = host_wht[max(y - 2, 0):y + 3, max(x - 2, 0):x + 3]
            if np.any(wht == 0.0) or min(cut.shape) <= 11:
                continue
            cut = np.clip(np.asarray(cut, dtype=np.float64), 0.0, None)
            total = cut.sum()
            if total <= 0.0:
                continue
            cut = cut / total
            measured = find_fwhm(cut, default_fwhm)
            attempts += 1
            if measured is not None and good_fwhm[0] < measured < good_fwhm[1]:
                kernel, fwhm, is_psf = cut, measured, True
                break
            if attempts == num_fwhm:
                break
    if kernel is None:
        log.info("no suitable PSF among %d peaks; using a Gaussian kernel of FWHM %.2f px",
                 0 if peaks is None else len(peaks), default_fwhm)
        kernel = gaussian_kernel(default_fwhm, source_box)
        fwhm = float(default_fwhm)
    return kernel, float(fwhm), is_psf


# ----------------------------------------------------------------------------- cosmic rays


def classify_sources(catalog, fwhm: float) -> np.ndarray:
    """Star (True) or cosmic ray/artefact (False) per source (drizzlepac's ``classify_sources``).

    A source is kept when the largest entry of its 4x4 central-moment matrix sits at indices
    > 1 on both axes, it is not a streak (semi-minor sigma < 0.75 ``fwhm`` with elongation
    > 2) and its centroid is finite. Undefined (NaN) moments count as 0.

    Parameters
    ----------
    catalog : hapgpu.detection.SourceCatalog
    fwhm : float
        Kernel FWHM, pixels.

    Returns
    -------
    ndarray of bool, shape (n_sources,)
    """
    moments = np.nan_to_num(np.asarray(catalog.moments_central, dtype=np.float64), nan=0.0)
    n = moments.shape[0]
    flat = moments.reshape(n, -1)
    peak = np.argmax(flat, axis=1)
    my, mx = np.unravel_index(peak, moments.shape[1:])
    semiminor = np.asarray(getattr(catalog.semiminor_axis, "value", catalog.semiminor_axis),
                           dtype=float)
    elongation = np.asarray(getattr(catalog.elongation, "value", catalog.elongation),
                            dtype=float)
    xc = np.asarray(getattr(catalog.x_centroid, "value", catalog.x_centroid), dtype=float)
    yc = np.asarray(getattr(catalog.y_centroid, "value", catalog.y_centroid), dtype=float)
    with np.errstate(invalid="ignore"):
        streak = (semiminor < 0.75 * fwhm) & (elongation > 2)
    return (my > 1) & (mx > 1) & ~streak & np.isfinite(xc) & np.isfinite(yc)


def clean_cosmic_rays(sci, threshold, kernel, fwhm: float, background, *, backend=None):
    """Replace cosmic-ray segments by the background (drizzlepac's ``crclean_image``).

    Segments of the kernel-convolved image (``npix`` 7, 4-connectivity) that
    :func:`classify_sources` rejects get the background value.

    Parameters
    ----------
    sci : array_like, shape (ny, nx)
        Science array, finite (host or device); not modified.
    threshold, background : array_like, shape (ny, nx)
        Detection threshold and background maps.
    kernel : ndarray
        Detection kernel.
    fwhm : float
        Kernel FWHM, pixels.
    backend : str, Backend or None, keyword-only

    Returns
    -------
    array, shape (ny, nx)
        The cleaned copy (device) and the number of segments replaced.
    """
    bk = resolve_backend(backend)
    xp = bk.xp
    img = xp.asarray(sci).copy()
    with _Quiet():
        segm = det.detect_sources(_convolve(img, kernel, bk), threshold, SOURCE_BOX,
                                  connectivity=4, backend=bk)
    if segm is None or segm.n_labels == 0:
        return img, 0
    catalog = det.SourceCatalog(img, segm, backend=bk)
    good = classify_sources(catalog, fwhm)
    bad_labels = np.asarray(segm.labels)[~good]
    if bad_labels.size == 0:
        return img, 0
    lut = np.zeros(int(segm.max_label) + 1, dtype=bool)
    lut[bad_labels] = True
    cr = xp.asarray(lut)[xp.asarray(segm.data)]
    img[cr] = xp.asarray(background)[cr]
    return img, int(bad_labels.size)


# ----------------------------------------------------------------------------- extraction


def _empty_table() -> Table:
    table = Table(names=_COLUMNS, dtype=[float] * len(_COLUMNS))
    table["saturated"] = np.zeros(0, dtype=bool)
    table["cat_id"] = np.zeros(0, dtype=int)
    return table


def _peak_footprint(radius: float) -> np.ndarray:
    """Circular neighbourhood of a DAOFIND peak, as photutils builds it from
    ``arange(-radius, radius + 1)`` (offsets not centred for a non-integer radius)."""
    idx = np.arange(-radius, radius + 1)
    xx, yy = np.meshgrid(idx, idx)
    return (xx ** 2 + yy ** 2) <= radius ** 2


@dataclass
class _Mosaic:
    """Segment cut-outs packed into one image, separated by zero gutters."""

    image: np.ndarray        # (my, mx) float64
    threshold: np.ndarray    # (my, mx) per-tile DAOFIND threshold, +inf in the gutters
    tile_of: np.ndarray      # (my, mx) int32 tile index over each tile grown by half a gutter
    origins: list            # (y0, x0) of each tile in the mosaic


def _pack_tiles(tiles: list, thresholds: list, gutter: int) -> _Mosaic:
    """Shelf-pack the tiles (2-D host arrays) with ``gutter`` zero pixels around each."""
    widths = [t.shape[1] + gutter for t in tiles]
    total = sum(w * (t.shape[0] + gutter) for w, t in zip(widths, tiles))
    row_width = max(max(widths), int(math.sqrt(total) * 1.2)) + gutter
    origins, x, y, shelf = [], gutter, gutter, 0
    for t in tiles:
        h, w = t.shape
        if x + w + gutter > row_width:
            x, y, shelf = gutter, y + shelf + gutter, 0
        origins.append((y, x))
        x += w + gutter
        shelf = max(shelf, h)
    height = y + shelf + gutter
    image = np.zeros((height, row_width), dtype=np.float64)
    thr = np.full((height, row_width), np.inf)
    tile_of = np.full((height, row_width), -1, dtype=np.int32)
    grow = gutter // 2
    for k, (t, (y0, x0)) in enumerate(zip(tiles, origins)):
        h, w = t.shape
        image[y0:y0 + h, x0:x0 + w] = t
        thr[y0:y0 + h, x0:x0 + w] = thresholds[k]
        tile_of[y0 - grow:y0 + h + grow, x0 - grow:x0 + w + grow] = k
    return _Mosaic(image, thr, tile_of, origins)


def _segment_stars(tiles: list, thresholds: list, fwhm: float, bk: Backend):
    """DAOFIND on every segment cut-out at once; the highest-peak star of each.

    Each cut-out is searched exactly as photutils' ``DAOStarFinder`` searches it alone: the
    cut-outs are packed with zero gutters wider than the kernel and the peak neighbourhood, the
    kernel-convolved mosaic has its gutters zeroed before the local-maximum test (photutils
    treats pixels beyond an image as 0), peaks must exceed the tile's threshold times the
    kernel's ``rel_err``, and the stars are measured by :class:`hapgpu.detection.DAOStarFinder`
    at those peaks.

    Returns
    -------
    list of (dict or None)
        Per tile: ``x, y`` (tile coordinates), ``flux, peak, sharpness, roundness1,
        roundness2, npix`` of the star with the highest ``peak``, or None.
    """
    finder = det.DAOStarFinder(threshold=1.0, fwhm=fwhm, backend=bk)
    kern = finder.kernel
    radius = finder.min_separation
    footprint = _peak_footprint(radius) if radius > 0 else kern.mask.astype(bool)
    reach = max(kern.x_radius, kern.y_radius, footprint.shape[0] // 2 + 1)
    gutter = 2 * reach + 2
    mosaic = _pack_tiles(tiles, thresholds, gutter)
    ndi = ndimage_module(bk)
    xp = bk.xp
    image = xp.asarray(mosaic.image)
    conv = ndi.convolve(image, xp.asarray(kern.data), mode="constant", cval=0.0)
    inside = xp.asarray(np.isfinite(mosaic.threshold))
    conv = xp.where(inside, conv, 0.0)
    local_max = conv == ndi.maximum_filter(conv, footprint=xp.asarray(footprint),
                                           mode="constant", cval=0.0)
    thr_eff = xp.asarray(mosaic.threshold * kern.rel_err)
    peaks = bk.to_host(local_max & inside & (conv > thr_eff))
    ys, xs = np.nonzero(peaks)
    result = [None] * len(tiles)
    if xs.size == 0:
        return result
    # Measure at those peaks with the gutters' convolved values at 0, as photutils' cut-outs
    # of the convolved image are zero beyond the image (roundness1 and the peak height read
    # them).
    with _Quiet():
        stats = finder._measure(image, conv, xs.astype(float), ys.astype(float))
        stars = finder._catalog(stats, xs.astype(float), ys.astype(float))
    if stars is None or len(stars) == 0:
        return result
    sx = np.asarray(stars["x_centroid"], dtype=float)
    sy = np.asarray(stars["y_centroid"], dtype=float)
    peak = np.asarray(stars["peak"], dtype=float)
    ix = np.clip(np.round(sx).astype(int), 0, mosaic.image.shape[1] - 1)
    iy = np.clip(np.round(sy).astype(int), 0, mosaic.image.shape[0] - 1)
    owner = mosaic.tile_of[iy, ix]
    # Highest peak first; ties keep the raster order of the peaks (photutils' table order).
    for row in np.argsort(-peak, kind="stable"):
        k = int(owner[row])
        if k < 0 or result[k] is not None:
            continue
        y0, x0 = mosaic.origins[k]
        result[k] = {
            "x": sx[row] - x0, "y": sy[row] - y0, "flux": float(stars["flux"][row]),
            "peak": peak[row], "sharpness": float(stars["sharpness"][row]),
            "roundness1": float(stars["roundness1"][row]),
            "roundness2": float(stars["roundness2"][row]),
            "npix": float(stars["n_pixels"][row]),
        }
    return result


def extract_sources(sci, dq_mask, kernel, threshold, fwhm: float, *, n_largest: int | None,
                    backend=None) -> Table:
    """Point sources of one chip, one per segment (drizzlepac's ``extract_sources``, starfind).

    1. Masked pixels are zeroed; the image is convolved with ``kernel`` and segmented
       (``threshold``, ``npix`` 7, 4-connectivity).
    2. When the mean area of the 10 largest segments exceeds 1964 px and the mean area exceeds
       half the kernel's disc, the kernel is cut to its central part and the segmentation redone
       (8-connectivity, as coded).
    3. Each segment's bounding box of the science array (unmasked, background pixels zeroed) is
       searched with DAOFIND (FWHM ``fwhm``, threshold = mean threshold over the box); the star
       with the highest peak is kept. All boxes are searched in one batched pass
       (:func:`_segment_stars`) with the same result as one search per box.
    4. When more than 3 pixels of the box exceed 90 % of its maximum (saturation), the
       segment's centroid, flux, peak and area replace the star's.
    5. Segments are taken from the brightest box maximum (of the masked image) down until
       ``n_largest`` sources are found.

    Parameters
    ----------
    sci : array_like, shape (ny, nx)
        Science array (not background-subtracted), finite; host or device.
    dq_mask : array_like of bool, shape (ny, nx) or None
        True where pixels are ignored by the segmentation.
    kernel : ndarray
        Detection kernel (normalised).
    threshold : array_like, shape (ny, nx)
        Detection threshold map, data units.
    fwhm : float
        Kernel FWHM, pixels (DAOFIND's FWHM).
    n_largest : int or None, keyword-only
        ``MAX_SOURCES_PER_CHIP``; None keeps every segment.
    backend : str, Backend or None, keyword-only

    Returns
    -------
    astropy.table.Table
        Columns ``x, y, flux, peak, mag, sharpness, roundness1, roundness2, npix, cat_id``
        (positions 0-based, chip pixels); empty when nothing is found.
    """
    bk = resolve_backend(backend)
    xp = bk.xp
    raw = xp.asarray(sci)
    img = raw.copy()
    if dq_mask is not None:
        img[xp.asarray(dq_mask)] = 0
    thr = xp.asarray(threshold)
    with _Quiet():
        segm = det.detect_sources(_convolve(img, kernel, bk), thr, SOURCE_BOX, connectivity=4,
                                  backend=bk)
        if segm is None or segm.n_labels == 0:
            return _empty_table()
        kernel_area = (kernel.shape[0] // 2) ** 2 * math.pi
        areas = np.asarray(segm.areas, dtype=float)
        n_top = min(10, areas.size)
        if np.sort(areas)[-n_top:].mean() > MAX_AREA_LIMIT and areas.mean() > kernel_area / 2:
            centre = (kernel.shape[0] - 1) // 2
            half = (centre - 1) // 2
            kernel = kernel[centre - half:centre + half + 1, centre - half:centre + half + 1]
            kernel = kernel / kernel.sum()
            log.info("crowded segments: redoing the segmentation with a %dx%d kernel",
                     *kernel.shape)
            segm = det.detect_sources(_convolve(img, kernel, bk), thr, SOURCE_BOX, backend=bk)
            if segm is None or segm.n_labels == 0:
                return _empty_table()
    labels_img = np.asarray(segm.data)
    labels = np.asarray(segm.labels)
    slices = list(segm.slices)
    host_img = bk.to_host(img)
    host_raw = bk.to_host(raw)
    host_thr = bk.to_host(thr)
    seg_max = np.array([float(host_img[s].max()) for s in slices])
    order = np.flip(np.argsort(seg_max))
    limit = len(labels) if n_largest is None else min(int(n_largest), len(labels))
    rows = []
    # Search the brightest segments first, in batches, until enough stars are found.
    start = 0
    batch = max(2 * limit, 64)
    while start < order.size and len(rows) < limit:
        chosen = order[start:start + batch]
        start += batch
        tiles, thresholds = [], []
        for i in chosen:
            tile = np.array(host_raw[slices[i]], dtype=np.float64)
            tile[labels_img[slices[i]] == 0] = 0.0
            tiles.append(tile)
            thresholds.append(float(host_thr[slices[i]].mean()))
        stars = _segment_stars(tiles, thresholds, fwhm, bk)
        for i, tile, star in zip(chosen, tiles, stars):
            if star is None:
                continue
            y0, x0 = slices[i][0].start, slices[i][1].start
            star = dict(star, x=star["x"] + x0, y=star["y"] + y0, saturated=False)
            if int((tile > tile.max() * 0.9).sum()) > 3:
                # Saturated: the segment's own centroid, flux, peak and area.
                values = np.where(labels_img[slices[i]] == labels[i], tile, 0.0)
                yy, xx = np.indices(values.shape)
                total = values.sum()
                star.update(x=float((values * xx).sum() / total) + x0,
                            y=float((values * yy).sum() / total) + y0, flux=float(total),
                            peak=float(values[labels_img[slices[i]] == labels[i]].max()),
                            npix=float((labels_img[slices[i]] == labels[i]).sum()),
                            saturated=True)
            rows.append(star)
            if len(rows) == limit:
                break
    if not rows:
        return _empty_table()
    table = Table({name: np.array([r[name] for r in rows], dtype=float)
                   for name in _COLUMNS if name != "mag"})
    with np.errstate(divide="ignore", invalid="ignore"):
        table["mag"] = -2.5 * np.log10(np.asarray(table["flux"]))
    table = table[list(_COLUMNS)]
    table["saturated"] = np.array([r["saturated"] for r in rows], dtype=bool)
    table["cat_id"] = np.arange(1, len(rows) + 1)
    return table


def extract_sbc_sources(sci, fwhm: float, *, backend=None) -> Table:
    """Point sources of an ACS/SBC image (drizzlepac's ``SBCHAPImage.find_alignment_sources``).

    The image is smoothed with a sigma-3 Gaussian; pixels of the smoothed image at or below its
    ``median + 3 std`` (one clipping iteration) are zeroed in a copy whose LoG(sigma 5)
    point-source labels (:func:`hapgpu.detection.detect_point_sources`) mark where DAOFIND
    (threshold 1e-10, FWHM ``fwhm``) may find peaks in the original image.

    Parameters
    ----------
    sci : array_like, shape (ny, nx)
        Science array, finite.
    fwhm : float
        Kernel FWHM, pixels.
    backend : str, Backend or None, keyword-only

    Returns
    -------
    astropy.table.Table
        Same columns as :func:`extract_sources`.
    """
    bk = resolve_backend(backend)
    xp = bk.xp
    img = xp.asarray(sci)
    smooth = det.gaussian_filter(img, 3.0, backend=bk)
    _, median, std = det.sigma_clipped_stats(smooth, maxiters=1, backend=bk)
    limit = float(median) + 3.0 * float(std)
    bkgsub = xp.where(smooth <= limit, 0, img).astype(img.dtype)
    labels, _, _ = det.detect_point_sources(bkgsub, background=0, log_sigma=5.0, backend=bk)
    search_mask = xp.asarray(np.asarray(labels) == 0)
    with _Quiet():
        stars = det.DAOStarFinder(threshold=1.0e-10, fwhm=fwhm, backend=bk)(img,
                                                                             mask=search_mask)
    if stars is None or len(stars) == 0:
        return _empty_table()
    flux = np.asarray(stars["flux"], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = -2.5 * np.log10(flux)
    table = Table({
        "x": np.asarray(stars["x_centroid"], dtype=float),
        "y": np.asarray(stars["y_centroid"], dtype=float),
        "flux": flux,
        "peak": np.asarray(stars["peak"], dtype=float),
        "mag": mag,
        "sharpness": np.asarray(stars["sharpness"], dtype=float),
        "roundness1": np.asarray(stars["roundness1"], dtype=float),
        "roundness2": np.asarray(stars["roundness2"], dtype=float),
        "npix": np.asarray(stars["n_pixels"], dtype=float),
    })
    table["saturated"] = np.zeros(len(table), dtype=bool)
    table["cat_id"] = np.arange(1, len(table) + 1)
    return table


def refine_centroids(table: Table, data, fwhm: float, *, min_sigma: float = 1.5,
                     n_iter: int = 30, max_shift: float = 1.0, backend=None) -> Table:
    """Re-measure source centroids with an iterated Gaussian-windowed first moment.

    DAOFIND's marginal-fit centroids are biased by up to ~0.1-0.2 px (pixel-phase errors)
    when its kernel is as narrow as HAP's automatic kernel often is (undersampled WFC3/IR and
    UVIS PSFs measure 1.1-1.4 px FWHM). The first moment of pixel-integrated flux is unbiased
    for a symmetric PSF whatever the sampling; weighting it with a Gaussian window
    ``exp(-r^2 / (2 s^2))`` centred on the current estimate, with
    ``s = max(min_sigma, fwhm / 2.3548)`` pixels, keeps the noise and the neighbours down.
    The window is re-centred until it stops moving (the fixed point ``x = sum(w I x) /
    sum(w I)``, an unweighted-step variant of SExtractor's ``XWIN``), over an 11x11 or larger
    stamp. Sources whose refined position is not finite, whose windowed flux is not positive
    or that move more than ``max_shift`` px keep HAP's position, as do saturated sources.

    This is a deliberate improvement over drizzlepac (on simulated WFC3/IR visits the truth
    error of the fitted WCS drops from ~10-15 mas to ~3 mas); HAP's positions stay in
    ``x_hap, y_hap``.

    Parameters
    ----------
    table : astropy.table.Table
        From :func:`extract_sources` (``x, y`` 0-based).
    data : array_like, shape (ny, nx)
        Background-subtracted science array (host or device).
    fwhm : float
        FWHM of the detection kernel, pixels.
    min_sigma, n_iter, max_shift : optional, keyword-only
        Smallest window sigma (px), iterations, largest accepted move (px).
    backend : str, Backend or None, keyword-only

    Returns
    -------
    astropy.table.Table
        ``table`` with ``x, y`` refined and ``x_hap, y_hap`` added.
    """
    bk = resolve_backend(backend)
    xp = bk.xp
    table["x_hap"] = np.asarray(table["x"], dtype=float)
    table["y_hap"] = np.asarray(table["y"], dtype=float)
    if len(table) == 0:
        return table
    image = xp.asarray(data, dtype=np.float64)
    ny, nx = image.shape
    sigma = max(float(min_sigma), float(fwhm) / gaussian_sigma_to_fwhm)
    half = max(5, math.ceil(3.0 * sigma))
    offsets = xp.arange(-half, half + 1)
    x0 = xp.asarray(np.asarray(table["x_hap"], dtype=float))
    y0 = xp.asarray(np.asarray(table["y_hap"], dtype=float))
    x, y = x0.copy(), y0.copy()
    good = xp.ones(x.shape, dtype=bool)
    for _ in range(n_iter):
        xx = xp.round(x).astype(np.int64)[:, None, None] + offsets[None, None, :]
        yy = xp.round(y).astype(np.int64)[:, None, None] + offsets[None, :, None]
        inside = (xx >= 0) & (xx < nx) & (yy >= 0) & (yy < ny)
        values = image[xp.clip(yy, 0, ny - 1), xp.clip(xx, 0, nx - 1)] * inside
        dx = xx - x[:, None, None]
        dy = yy - y[:, None, None]
        weighted = values * xp.exp(-(dx * dx + dy * dy) / (2.0 * sigma * sigma))
        total = weighted.sum(axis=(1, 2))
        good = total > 0
        safe = xp.where(good, total, 1.0)
        step_x = (weighted * dx).sum(axis=(1, 2)) / safe
        step_y = (weighted * dy).sum(axis=(1, 2)) / safe
        x = xp.where(good, x + step_x, x)
        y = xp.where(good, y + step_y, y)
        if float(xp.max(xp.abs(step_x) + xp.abs(step_y))) < 1e-5:
            break
    x, y = bk.to_host(x), bk.to_host(y)
    x0, y0 = bk.to_host(x0), bk.to_host(y0)
    keep = bk.to_host(good) & np.isfinite(x) & np.isfinite(y) & (np.hypot(x - x0, y - y0)
                                                                   <= max_shift)
    if "saturated" in table.colnames:
        keep &= ~np.asarray(table["saturated"], dtype=bool)
    table["x"] = np.where(keep, x, x0)
    table["y"] = np.where(keep, y, y0)
    return table


# ----------------------------------------------------------------------------- exposures


@dataclass
class _Chip:
    version: int
    sci: object          # finite science array on the device
    err: np.ndarray
    dq_mask: object      # bool on the device
    saturated: np.ndarray  # bool (host): DQ saturation bits set
    bkg: _ChipBackground | None = None


def _read_chips(hdul: fits.HDUList, filename: str, bk: Backend) -> list[_Chip]:
    chips = []
    versions = sorted(h.ver for h in hdul if h.name == "SCI")
    if not versions:
        raise InvalidInputError(f"{filename}: no SCI extension")
    for ver in versions:
        data = hdul["SCI", ver].data
        if data is None or np.ndim(data) != 2:
            raise InvalidInputError(f"{filename}: SCI,{ver} is not a 2-D image")
        sci = _native(data)
        bad = ~np.isfinite(sci)
        if bad.any():
            sci[bad] = 0.0
        try:
            err = np.asarray(hdul["ERR", ver].data)     # only read on the host
        except KeyError:
            err = np.ones_like(sci)
        try:
            dq = _native(hdul["DQ", ver].data, np.int32)
        except KeyError:
            dq = np.zeros(sci.shape, dtype=np.int32)
        if err.shape != sci.shape or dq.shape != sci.shape:
            raise InvalidInputError(f"{filename}: ERR/DQ of chip {ver} do not match SCI")
        mask = build_dq_mask(dq, backend=bk)
        if bad.any():
            mask = mask | bk.xp.asarray(bad)
        chips.append(_Chip(ver, bk.asarray(sci), err, mask, (dq & SATURATION_BITS) != 0))
    return chips


def _stack(arrays, xp):
    """Stack chips vertically as drizzlepac's concatenation does (narrower ones zero-padded)."""
    width = max(int(a.shape[1]) for a in arrays)
    padded = []
    for a in arrays:
        if a.shape[1] < width:
            pad = xp.zeros((a.shape[0], width - a.shape[1]), dtype=a.dtype)
            a = xp.concatenate([a, pad], axis=1)
        padded.append(a)
    return xp.concatenate(padded, axis=0)


def _weight_image(chips: list[_Chip], xp):
    """``max(ERR) / ERR`` with masked and non-finite pixels set to 0 (drizzlepac's WHT)."""
    tops = [float(np.nanmax(c.err)) for c in chips if np.isfinite(c.err).any()]
    top = np.float32(max(tops) if tops else 1.0)
    parts = []
    for c in chips:
        with np.errstate(divide="ignore", invalid="ignore"):
            w = top / c.err.astype(np.float32)
        w = np.nan_to_num(w, nan=0.0, posinf=0.0, neginf=0.0)
        w = xp.asarray(w)
        w[xp.asarray(c.dq_mask)] = 0
        parts.append(w)
    return _stack(parts, xp)


def _backgrounds(chips: list[_Chip], pars: AlignmentPars, bk: Backend, **overrides) -> None:
    for chip in chips:
        chip.bkg = compute_background(chip.sci, pars, backend=bk, **overrides)


def _kernel(chips: list[_Chip], raw_stack, weight, pars: AlignmentPars, default_fwhm: float,
            bk: Backend):
    """Build the kernel from the stacked chips, retrying once as drizzlepac does."""
    xp = bk.xp
    bkg = _stack([c.bkg.background for c in chips], xp)
    thr = _stack([c.bkg.threshold for c in chips], xp)
    kernel, fwhm, is_psf = build_auto_kernel(raw_stack - bkg, weight, thr, default_fwhm,
                                             backend=bk)
    if not is_psf:
        # drizzlepac retries with half the default box and its default threshold
        # (bkg + 5 rms, no scaling), and keeps that background for the extraction.
        _backgrounds(chips, pars, bk, box_size=27 // 2, nsigma=5.0, threshold_scale=1.0,
                     bkg_estimator="SExtractorBackground")
        bkg = _stack([c.bkg.background for c in chips], xp)
        thr = _stack([c.bkg.threshold for c in chips], xp)
        kernel, fwhm, is_psf = build_auto_kernel(raw_stack - bkg, weight, thr, default_fwhm,
                                                 backend=bk)
    return kernel, fwhm, is_psf


def position_errors(table: Table, fwhm: float, rms: float, pscale: float,
                    floor: float = POSITION_ERROR_FLOOR) -> np.ndarray:
    """Expected centroid error of each source, mas.

    ``sigma = hypot(fwhm / (2.3548 SNR), floor)`` pixels, with the background-limited
    ``SNR = flux / (rms sqrt(pi fwhm^2))`` (the standard centroiding precision of a Gaussian
    star, e.g. King 1983, PASP 95, 163) and a floor for the systematic errors of the
    centroiding; times the pixel scale. Used to weight the fits when the reference catalogue
    carries weights (SVM), as tweakwcs combines ``1/w = 1/w_image + 1/w_ref``.

    Parameters
    ----------
    table : astropy.table.Table
        Sources with a ``flux`` column (data units).
    fwhm : float
        PSF FWHM, pixels.
    rms : float
        Background rms per pixel, data units.
    pscale : float
        Pixel scale, arcsec.
    floor : float, optional
        Systematic floor, pixels.

    Returns
    -------
    ndarray of float64, shape (n_sources,)
    """
    flux = np.asarray(table["flux"], dtype=float)
    noise = max(float(rms), 1e-12) * math.sqrt(math.pi) * max(float(fwhm), 0.5)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(flux > 0, flux / noise, 0.0)
        sigma = np.where(snr > 0, fwhm / (gaussian_sigma_to_fwhm * snr), np.inf)
    return np.hypot(sigma, floor) * pscale * 1000.0


def _near_flags(table: Table, flags: np.ndarray, half: int = 1) -> np.ndarray:
    """True for sources with a flagged pixel in the (2 half + 1)^2 box around their peak."""
    if len(table) == 0:
        return np.zeros(0, dtype=bool)
    ny, nx = flags.shape
    xs = np.clip(np.round(np.asarray(table["x_hap"], dtype=float)).astype(int), 0, nx - 1)
    ys = np.clip(np.round(np.asarray(table["y_hap"], dtype=float)).astype(int), 0, ny - 1)
    out = np.zeros(len(table), dtype=bool)
    for dy in range(-half, half + 1):
        for dx in range(-half, half + 1):
            out |= flags[np.clip(ys + dy, 0, ny - 1), np.clip(xs + dx, 0, nx - 1)]
    return out


def find_exposure_sources(filename, pars: AlignmentPars, *, default_fwhm: float | None = None,
                          backend=None) -> ExposureSources:
    """Find the alignment sources of every chip of one exposure (HAP's ``HAPImage`` recipe).

    Parameters
    ----------
    filename : str or pathlib.Path
        FLT/FLC file (SCI, ERR, DQ extensions).
    pars : AlignmentPars
        Parameters of the detector.
    default_fwhm : float, optional
        Default PSF FWHM, arcsec (``pars.fwhmpsf`` when None; the FWHM of the visit's first
        exposure for the following ones).
    backend : str, Backend or None, keyword-only

    Returns
    -------
    ExposureSources

    Raises
    ------
    InvalidInputError
        When the file cannot be read or lacks SCI data.
    """
    bk = resolve_backend(backend)
    xp = bk.xp
    name = str(filename)
    try:
        with fits.open(name, memmap=False) as hdul:
            chips = _read_chips(hdul, name, bk)
            from stwcs.wcsutil import HSTWCS

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pscale = float(HSTWCS(hdul, ext=("SCI", chips[0].version)).pscale)
    except (OSError, ValueError, TypeError) as exc:
        if isinstance(exc, HapGpuError):
            raise
        raise InvalidInputError(f"{name}: cannot read the exposure ({exc})") from exc
    fwhm_arcsec = pars.fwhmpsf if default_fwhm is None else float(default_fwhm)
    fwhm_px = fwhm_arcsec / pscale
    raw_stack = _stack([c.sci for c in chips], xp)
    weight = _weight_image(chips, xp)
    _backgrounds(chips, pars, bk)
    kernel, kfwhm, is_psf = _kernel(chips, raw_stack, weight, pars, fwhm_px, bk)
    if pars.classify:
        n_cr = 0
        for chip in chips:
            chip.sci, n = clean_cosmic_rays(chip.sci, chip.bkg.threshold, kernel, kfwhm,
                                            chip.bkg.background, backend=bk)
            n_cr += n
        log.debug("%s: replaced %d cosmic-ray segments by the background", name, n_cr)
        _backgrounds(chips, pars, bk)
        # drizzlepac rebuilds the kernel from the original (uncleaned) pixels.
        kernel, kfwhm, is_psf = _kernel(chips, raw_stack, weight, pars, fwhm_px, bk)
    result = ExposureSources(name, kernel_fwhm=kfwhm, kernel_is_psf=is_psf, pscale=pscale)
    for chip in chips:
        if pars.is_sbc:
            table = extract_sbc_sources(chip.sci, kfwhm, backend=bk)
        else:
            table = extract_sources(chip.sci, chip.dq_mask, kernel, chip.bkg.threshold, kfwhm,
                                    n_largest=pars.max_sources_per_chip, backend=bk)
        if pars.refine_centroids:
            table = refine_centroids(table, chip.sci - chip.bkg.background, kfwhm,
                                     min_sigma=pars.refine_min_sigma, backend=bk)
        else:
            table["x_hap"] = np.asarray(table["x"], dtype=float)
            table["y_hap"] = np.asarray(table["y"], dtype=float)
        table["dq_saturated"] = _near_flags(table, chip.saturated)
        table["position_error"] = position_errors(table, kfwhm, chip.bkg.rms_median, pscale)
        result.chips[chip.version] = table
    log.info("%s: %d sources (kernel FWHM %.2f px, %s)", name, result.n_sources, kfwhm,
             "PSF" if is_psf else "Gaussian")
    return result


def find_alignment_sources(files, pars: AlignmentPars, *, backend=None) -> list[ExposureSources]:
    """Find the alignment sources of a list of exposures.

    The FWHM (arcsec) of the first exposure's kernel becomes the default FWHM of the others,
    as in drizzlepac's ``AlignmentTable``.

    Parameters
    ----------
    files : sequence of str or pathlib.Path
    pars : AlignmentPars
    backend : str, Backend or None, keyword-only

    Returns
    -------
    list of ExposureSources
        In the order of ``files``.
    """
    bk = resolve_backend(backend)
    results, fwhm = [], None
    for name in files:
        found = find_exposure_sources(name, pars, default_fwhm=fwhm, backend=bk)
        if fwhm is None:
            fwhm = found.kernel_fwhm * found.pscale
        results.append(found)
    return results
