"""HAP segmentation catalogs (hap-pipeline.md §1.13 C and D).

Sources are found once, on the total ("white light") detection image, as segments of the
background-subtracted image convolved with a kernel; each filter image is then measured inside
those same segments (forced photometry). The decisions follow drizzlepac 3.11's
``catalog_utils.HAPSegmentCatalog`` as coded (``identify_sources``, ``detect_and_eval_segments``,
``_evaluate_segmentation_image``, ``ricker_matched_kernel``, ``deblend_segments``,
``measure_sources``, ``do_aperture_photometry``, ``_define_filter_table``, ...):

* **Round 1.** Gaussian kernel, threshold ``segm_nsigma`` times the per-region rms
  (:func:`~hapgpu.catalogs._prepare.region_threshold`), ``detect_sources(convolve(data - bkg,
  kernel, normalize_kernel=False), threshold, source_box, mask=inv_footprint)`` with
  8-connectivity; then the evaluation (:func:`evaluate_segmentation`). A poor result is redone
  with the RickerWavelet kernel (:func:`ricker_matched_kernel`, ``rw2d_nsigma``, big-island-only
  evaluation).
* **Round 2**, when the Ricker result is poor too: a sigma-clipped background is replaced by a
  forced Background2D (the kernels are rebuilt), a 2-D background gets doubled nsigmas, a zero
  background is left alone; the Gaussian is run again and, if still poor, the Ricker kernel with
  the larger ``biggest_source_deblend_limit`` / ``source_fraction_deblend_limit``. Ricker is
  accepted when its evaluation passes or when the Gaussian-to-Ricker biggest-source ratio exceeds
  ``ratio_bigsource_limit`` (3 when the Ricker value is 0); otherwise the catalogs are empty.
* **Deblending** of the candidate segments (``nlevels``, ``contrast``); a failure keeps the
  segments. **SourceCatalog** on the total (data, convolved data, background, Kron parameters);
  sources with a non-finite centroid are dropped and the rest relabelled.
* **Filters.** ``SourceCatalog(data - bkg, segm, background=bkg, detection_cat=total catalog,
  error=calc_total_error(data - bkg, rms, 1))`` plus the HAP aperture photometry
  (:func:`~hapgpu.catalogs._photometry.measure_apertures`) at the detection centroids, written as
  the 36 columns of ``<filter>_segment-cat.ecsv``.

Image arrays stay on the backend (convolution, detection, thresholds, the error image and the
per-segment sums); the per-source results are short host vectors handled without Python loops.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from astropy.stats import gaussian_fwhm_to_sigma
from astropy.table import Column, MaskedColumn, Table

from .. import detection
from ..backend import resolve_backend
from ..errors import HapGpuError, InvalidInputError, InvalidParameterError
from ..kernels.detection import morphology as kmorph
from ._photometry import abmag, measure_apertures
from ._prepare import (
    PreparedImage,
    compute_background,
    gaussian_kernel,
    region_threshold,
)

__all__ = [
    "SEGMENT_COLUMNS",
    "SegmentDetection",
    "SegmentEvaluation",
    "empty_segment_table",
    "empty_subset_table",
    "evaluate_segmentation",
    "identify_segments",
    "measure_segment_catalog",
    "ricker_matched_kernel",
    "segment_subset_table",
    "total_error",
]

log = logging.getLogger(__name__)

#: Size of the Gaussian detection kernel (drizzlepac hard-codes 11 x 11 in ``build_kernel``).
GAUSSIAN_KERNEL_SIZE = 11
#: RADESYS values the sky centroids are computed in; any other is taken to be ICRS
#: (drizzlepac ``RADESYS_OPTIONS`` / ``enforce_icrs_compatibility``).
RADESYS_OPTIONS = ("FK4", "FK5", "ICRS")
#: Gaussian-to-Ricker biggest-source ratio used when the Ricker biggest source is 0.
RATIO_WHEN_RICKER_ZERO = 3.0

#: The columns of ``<filter>_segment-cat.ecsv``, in order.
SEGMENT_COLUMNS = (
    "X-Centroid", "Y-Centroid", "RA", "DEC", "ID", "CI", "Flags", "MagAp1", "MagErrAp1",
    "FluxAp1", "FluxErrAp1", "MagAp2", "MagErrAp2", "FluxAp2", "FluxErrAp2", "MSkyAp2", "Bck",
    "Area", "FWHM", "MagSegment", "FluxSegment", "FluxSegmentErr", "KronRadius", "Xmin", "Ymin",
    "Xmax", "Ymax", "X2", "Y2", "XY", "CXX", "CYY", "CXY", "Elongation", "Ellipticity", "Theta",
)

_SKY_DESCRIPTION = "Sky coordinate at epoch of observation"

_FORMATS = {
    "X-Centroid": "10.3f", "Y-Centroid": "10.3f", "RA": "13.7f", "DEC": "13.7f", "ID": "7d",
    "CI": "7.3f", "Flags": "5d", "MagAp1": "7.3f", "MagErrAp1": "7.3f", "FluxAp1": "10.4f",
    "FluxErrAp1": "10.4f", "MagAp2": "7.3f", "MagErrAp2": "7.3f", "FluxAp2": "10.4f",
    "FluxErrAp2": "10.4f", "MSkyAp2": "7.3f", "Bck": "10.4f", "MagSegment": "7.3f",
    "FluxSegment": "10.4f", "FluxSegmentErr": "10.4f", "KronRadius": "8.4f", "Xmin": "8.0f",
    "Ymin": "8.0f", "Xmax": "8.0f", "Ymax": "8.0f", "X2": "8.4f", "Y2": "8.4f", "XY": "8.4f",
    "CXX": "9.5f", "CYY": "9.5f", "CXY": "9.5f", "Elongation": "7.2f", "Ellipticity": "7.2f",
    "Theta": "8.3f", "Area": "8.3f", "FWHM": "8.3f",
}

_DESCRIPTIONS = {
    "ID": "Catalog Object Identification Number",
    "X-Centroid": "Pixel Coordinate",
    "Y-Centroid": "Pixel Coordinate",
    "RA": _SKY_DESCRIPTION,
    "DEC": _SKY_DESCRIPTION,
    "Bck": "Background at the position of the source centroid",
    "Area": "Total unmasked area of the source segment",
    "FWHM": "Circularized FWHM of 2D Gaussian function having the same second-order central "
            "moments as the source",
    "MagAp1": "ABMAG of source based on the inner (smaller) aperture",
    "MagErrAp1": "Error of MagAp1",
    "FluxAp1": "Flux of source based on the inner (smaller) aperture",
    "FluxErrAp1": "Error of FluxAp1",
    "MagAp2": "ABMAG of source based on the outer (larger) aperture",
    "MagErrAp2": "Error of MagAp2",
    "FluxAp2": "Flux of source based on the outer (larger) aperture",
    "FluxErrAp2": "Error of FluxAp2",
    "MSkyAp2": "Sky estimate from an annulus outside Aperture 2",
    "FluxSegment": "Sum of unmasked data values in the source segment",
    "FluxSegmentErr": "Uncertainty of FluxSegment, propagated from the input error array",
    "KronRadius": "The unscaled first-moment Kron radius",
    "MagSegment": "Magnitude corresponding to FluxSegment",
    "X2": "Variance along X",
    "Y2": "Variance along Y",
    "XY": "Covariance of position between X and Y",
    "CXX": "SExtractor's ellipse parameter",
    "CYY": "SExtractor's ellipse parameter",
    "CXY": "SExtractor's ellipse parameter",
    "Xmin": "Minimum X pixel within the minimal bounding box containing the source segment",
    "Xmax": "Maximum X pixel within the minimal bounding box containing the source segment",
    "Ymin": "Minimum Y pixel within the minimal bounding box containing the source segment",
    "Ymax": "Maximum Y pixel within the minimal bounding box containing the source segment",
    "Elongation": "Ratio of the lengths of the semi-major and semi-minor axes of the ellipse",
    "Ellipticity": "Computed as 1 minus the inverse of the elongation",
    "Theta": "Angle between the X axis and the major axis of the 2D Gaussian function that has "
             "the same second-order moments as the source.",
    "CI": "Concentration Index",
    "Flags": "Numeric encoding for conditions on detected sources",
}

# Units as drizzlepac assigns them (strings parsed by astropy on assignment). Theta holds
# photutils' orientation in degrees but is declared in radian, as coded.
_UNITS = {
    "X-Centroid": "pixel", "Y-Centroid": "pixel", "RA": "degree", "DEC": "degree",
    "Bck": "electron/s", "Area": "pixel**2", "FWHM": "pixel", "MagAp1": "mag(AB)",
    "MagErrAp1": "mag(AB)", "FluxAp1": "electron/s", "FluxErrAp1": "electron/s",
    "MagAp2": "mag(AB)", "MagErrAp2": "mag(AB)", "FluxAp2": "electron/s",
    "FluxErrAp2": "electron/s", "MSkyAp2": "electron/(s pixel)", "MagSegment": "mag(AB)",
    "FluxSegment": "electron/s", "FluxSegmentErr": "electron/s", "KronRadius": "pixel",
    "X2": "pixel**2", "Y2": "pixel**2", "XY": "pixel**2", "CXX": "pixel**(-2)",
    "CYY": "pixel**(-2)", "CXY": "pixel**(-2)", "Xmin": "pixel", "Ymin": "pixel",
    "Xmax": "pixel", "Ymax": "pixel", "Theta": "radian", "CI": "mag(AB)", "Flags": "",
    "ID": "", "Elongation": "", "Ellipticity": "",
}

# SourceCatalog property (photutils 3 name) behind each measured column.
_PROPERTIES = {
    "Bck": "background_centroid", "Area": "area", "FWHM": "fwhm",
    "FluxSegment": "segment_flux", "FluxSegmentErr": "segment_flux_err",
    "KronRadius": "kron_radius", "Xmin": "bbox_xmin", "Ymin": "bbox_ymin",
    "Xmax": "bbox_xmax", "Ymax": "bbox_ymax", "X2": "covariance_xx", "Y2": "covariance_yy",
    "XY": "covariance_xy", "CXX": "ellipse_cxx", "CYY": "ellipse_cyy", "CXY": "ellipse_cxy",
    "Elongation": "elongation", "Ellipticity": "ellipticity", "Theta": "orientation",
}

_PHOTOMETRY_COLUMNS = ("FluxAp1", "FluxErrAp1", "MagAp1", "MagErrAp1", "FluxAp2", "FluxErrAp2",
                       "MagAp2", "MagErrAp2", "MSkyAp2")

_EMPTY_COLUMNS = ("ID", "X-Centroid", "Y-Centroid", "RA", "DEC", "Flags")
_EMPTY_UNITS = {"X-Centroid": "pixel", "Y-Centroid": "pixel", "RA": "degree", "DEC": "degree",
                "Flags": ""}


# --------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class SegmentEvaluation:
    """Verdict on one segmentation image (drizzlepac ``_evaluate_segmentation_image``).

    Attributes
    ----------
    poor : bool
        The segmentation has "big islands" or is crowded (drizzlepac's ``is_poor_quality``);
        True when there is no segmentation at all.
    biggest_source : float
        Area of the largest segment over the number of real (finite, non-zero) image pixels;
        1.0 without a segmentation.
    source_fraction : float
        Total segment area over the number of real pixels; 1.0 without a segmentation.
    deblend_labels : numpy.ndarray or None
        Labels (int64) to deblend: segments of at least the Gaussian kernel's size, minus the
        largest one and the chain of next-largest ones that are each at least
        ``ratio_bigsource_deblend_limit`` times the next (drizzlepac's ``big_segments``).
        None when there is none.
    """

    poor: bool
    biggest_source: float
    source_fraction: float
    deblend_labels: np.ndarray | None = None


@dataclass
class SegmentDetection:
    """The segmentation of the total detection image and its catalog.

    Attributes
    ----------
    segm : SegmentationImage or None
        Final (deblended, relabelled) segmentation on the host; None means empty segment
        catalogs for the total and every filter.
    source_cat : hapgpu.detection.SourceCatalog or None
        Catalog of ``segm`` on the total image, the detection catalog of every filter.
    kernel : numpy.ndarray or None
        Kernel of the adopted segmentation (Gaussian or RickerWavelet), float64; the Gaussian
        when empty (None for a blank image).
    final_nsigma : float or None
        Threshold multiplier of the adopted segmentation (``Threshold (sigma)`` metadata);
        None when empty, as drizzlepac leaves it.
    poor_quality : bool
        The adopted segmentation failed its evaluation and was kept only through the
        Gaussian-to-Ricker biggest-source ratio test. drizzlepac 3.11 initialises the matching
        ``is_big_island`` attribute (which writes the ``h19`` note) to False and never sets
        it, so its catalogs never carry ``h19``; whether to write it is the writer's choice.
    total_table : astropy.table.Table
        ``ID, X-Centroid, Y-Centroid, RA, DEC`` (formats, units, descriptions as drizzlepac's
        ``_define_total_table``), or :func:`empty_segment_table` when empty.
    stage : str
        Which segmentation was adopted: ``"round1_gaussian"``, ``"round1_ricker"``,
        ``"round2_gaussian"``, ``"round2_ricker"``, or ``"blank"``, ``"no_segments"``,
        ``"round2_rejected"``, ``"no_finite_centroids"`` when empty.
    evaluations : dict
        :class:`SegmentEvaluation` of each attempt, keyed like ``stage``.
    """

    segm: object
    source_cat: object
    kernel: np.ndarray | None
    final_nsigma: float | None
    poor_quality: bool
    total_table: Table
    stage: str = ""
    evaluations: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------- kernels
def ricker_matched_kernel(sigma: float, size: int, *, sigma_factor: float = 1.5) -> np.ndarray:
    """RickerWavelet ("Mexican hat") kernel matched to a Gaussian of width ``sigma``.

    The wavelet width is ``w = sigma_factor * sigma`` and its peak is scaled to the Gaussian's
    by ``0.5 * sigma_factor**4 * sigma**2`` (R. L. White's ``ricker_matched_kernel`` in
    drizzlepac). The wavelet is astropy's ``RickerWavelet2DKernel(w)`` sampled at pixel
    centres: ``(1 - r**2 / (2 w**2)) exp(-r**2 / (2 w**2)) / (pi w**4)``. It is meant for
    ``convolve(..., normalize_kernel=False)``: it sums to about zero.

    Parameters
    ----------
    sigma : float
        Gaussian sigma, pixels (``kernel_fwhm * gaussian_fwhm_to_sigma``).
    size : int
        Odd side of the square kernel, pixels (``rw2d_size``).
    sigma_factor : float
        Ratio of the wavelet width to ``sigma``.

    Returns
    -------
    numpy.ndarray
        (size, size) float64.

    Raises
    ------
    InvalidParameterError
        For a non-positive ``sigma`` or ``sigma_factor``, or a size that is not a positive odd
        integer.
    """
    if not (sigma > 0 and sigma_factor > 0):
        raise InvalidParameterError(
            f"the Ricker kernel needs positive sigma and sigma_factor, got {sigma}, {sigma_factor}")
    if int(size) != size or size < 1 or int(size) % 2 == 0:
        raise InvalidParameterError(f"the Ricker kernel size (rw2d_size) must be a positive odd "
                                    f"integer, got {size!r}")
    size = int(size)
    width = sigma_factor * sigma
    half = size // 2
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    rr = (offsets[None, :] ** 2 + offsets[:, None] ** 2) / (2.0 * width * width)
    wavelet = (1.0 - rr) * np.exp(-rr) / (math.pi * width ** 4)
    return 0.5 * sigma_factor ** 4 * sigma ** 2 * wavelet


def total_error(data, bkg_error, effective_gain=1.0, *, backend=None):
    """Total 1-sigma error of background-subtracted data (photutils ``calc_total_error``).

    ``sqrt(bkg_error**2 + max(data / effective_gain, 0))``: background noise plus the Poisson
    noise of the (non-negative) source signal in units of the data; pixels with zero gain get no
    source term (SExtractor's error model, as photutils codes it).

    Parameters
    ----------
    data, bkg_error : array_like
        (ny, nx) background-subtracted data and background rms (host or device).
    effective_gain : float
        Electrons per data unit; >= 0.
    backend : str, Backend or None

    Returns
    -------
    array
        (ny, nx) on the backend, the promoted dtype of the inputs; NaN where ``data`` is NaN.

    Raises
    ------
    InvalidParameterError
        Negative gain. InvalidInputError: shapes differ.
    """
    bk = resolve_backend(backend)
    xp = bk.xp
    data = bk.asarray(data)
    bkg_error = bk.asarray(bkg_error)
    if tuple(data.shape) != tuple(bkg_error.shape):
        raise InvalidInputError(f"data {tuple(data.shape)} and bkg_error "
                                f"{tuple(bkg_error.shape)} must have the same shape")
    if effective_gain < 0:
        raise InvalidParameterError(f"effective_gain must be >= 0, got {effective_gain}")
    if (bk.name == "cpu" and effective_gain != 0 and data.ndim == 2
            and data.dtype == bkg_error.dtype and data.dtype in (np.float32, np.float64)
            and data.dtype.isnative and bkg_error.dtype.isnative
            and type(effective_gain) in (int, float) and math.isfinite(effective_gain)):
        # one compiled sweep, the same roundings as the NumPy expression below
        return kmorph.quadrature_error(data, bkg_error, data.dtype.type(effective_gain))
    source = data / effective_gain if effective_gain != 0 else xp.zeros_like(data)
    return xp.sqrt(bkg_error * bkg_error + xp.maximum(source, 0))


# --------------------------------------------------------------------------------- evaluation
def _real_pixels(image_data, bk) -> int:
    """Finite non-zero pixels, at least 1 (the denominator of the evaluation fractions)."""
    xp = bk.xp
    data = bk.asarray(image_data)
    return max(int(xp.count_nonzero(xp.isfinite(data) & (data != 0))), 1)


def _deblend_candidates(areas: np.ndarray, kernel_size: int, ratio_limit: float):
    """Labels to deblend: areas >= kernel_size, minus the largest and its big-ratio chain."""
    big = np.flatnonzero(areas >= kernel_size) + 1
    if big.size == 0:
        return None
    order = np.argsort(areas)  # the default (quicksort) order, ties as drizzlepac gets them
    descending = areas[order][::-1]
    labels_desc = order[::-1] + 1
    n_skip = 1
    if areas.size > 2:
        # ratio of the i-th largest to the (i+1)-th, i = 2 .. n-1 (1-based)
        ratios = descending[1:-1] / descending[2:]
        failing = np.flatnonzero(~(ratios >= ratio_limit))
        n_skip += int(failing[0]) if failing.size else ratios.size
    keep = big[~np.isin(big, labels_desc[:n_skip])]
    return keep.astype(np.int64) if keep.size else None


def evaluate_segmentation(segm, image_data, *, kernel_size: int,
                          ratio_bigsource_deblend_limit: float, big_island_only: bool = False,
                          max_biggest_pixels: float = 25000, max_biggest_source: float = 0.015,
                          max_source_fraction: float = 0.075, backend=None) -> SegmentEvaluation:
    """Judge a segmentation image (drizzlepac ``_evaluate_segmentation_image``, after R. L. White).

    ``real`` = number of finite non-zero pixels of ``image_data`` (at least 1). The
    segmentation is poor when ``max(area) / real > max_biggest_source``, when
    ``max(area) > max_biggest_pixels``, or (unless ``big_island_only``) when
    ``sum(area) / real > max_source_fraction``.

    Parameters
    ----------
    segm : SegmentationImage or None
        Consecutive labels 1..n (as :func:`hapgpu.detection.detect_sources` returns).
    image_data : array_like
        (ny, nx) total detection SCI, not background-subtracted (host or device).
    kernel_size : int
        Number of pixels of the Gaussian detection kernel: the smallest area to deblend.
    ratio_bigsource_deblend_limit : float
        Area ratio above which the next-largest segments are left out of deblending too.
    big_island_only : bool
        Skip the source-fraction test (RickerWavelet evaluations).
    max_biggest_pixels, max_biggest_source, max_source_fraction : float
        ``rw2d_biggest_pixels``, ``rw2d_biggest_source`` (or ``biggest_source_deblend_limit``),
        ``rw2d_source_fraction`` (or ``source_fraction_deblend_limit``).
    backend : str, Backend or None

    Returns
    -------
    SegmentEvaluation
        ``poor=True, biggest_source=source_fraction=1.0`` for ``segm=None``.
    """
    if segm is None:
        return SegmentEvaluation(True, 1.0, 1.0, None)
    bk = resolve_backend(backend)
    areas = np.asarray(segm.areas)
    real = _real_pixels(image_data, bk)
    biggest_pixels = int(areas.max())
    biggest_source = biggest_pixels / real
    source_fraction = float(areas.sum()) / real
    poor = biggest_source > max_biggest_source or biggest_pixels > max_biggest_pixels
    if not big_island_only and source_fraction > max_source_fraction:
        poor = True
    candidates = _deblend_candidates(areas, kernel_size, ratio_bigsource_deblend_limit)
    log.info("segmentation: %d segments, biggest %d pixels (%.4f %% of %d real pixels), "
             "source fraction %.4f %%%s, %d to deblend: %s", areas.size, biggest_pixels,
             100.0 * biggest_source, real, 100.0 * source_fraction,
             " (informational)" if big_island_only else "",
             0 if candidates is None else candidates.size, "poor" if poor else "acceptable")
    return SegmentEvaluation(bool(poor), float(biggest_source), float(source_fraction),
                             candidates)


# --------------------------------------------------------------------------------- detection
@dataclass
class _Attempt:
    segm: object
    convolved: object
    evaluation: SegmentEvaluation
    nsigma: float
    kernel: np.ndarray


def _detect(data, background, rms, regions, inv_footprint, kernel, nsigma, source_box, bk,
            filename):
    """One ``detect_segments``: (segm or None, convolved image)."""
    threshold = region_threshold(nsigma, rms, regions, backend=bk)
    try:
        convolved = detection.convolve(data - background, kernel, normalize_kernel=False,
                                       backend=bk)
    except InvalidParameterError as exc:
        # astropy's convolve (drizzlepac) fails alike: NaN pixels are interpolated, which a
        # zero-sum (RickerWavelet) kernel cannot do
        raise InvalidInputError(f"{filename}: the segmentation cannot convolve this image with "
                                f"its {kernel.shape[0]}x{kernel.shape[1]} kernel: {exc}") from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", detection.NoDetectionsWarning)
        segm = detection.detect_sources(convolved, threshold, npixels=source_box,
                                        connectivity=8, mask=inv_footprint, backend=bk)
    if segm is None:
        log.warning("no segment of >= %d pixels above %g sigma", source_box, nsigma)
    return segm, convolved


class _SegmentFinder:
    """The state drizzlepac keeps on ``HAPSegmentCatalog`` while identifying sources."""

    def __init__(self, total: PreparedImage, bk):
        self.total = total
        self.bk = bk
        self.sx = total.params.generation["sourcex"]
        self.data = total.data
        # drizzlepac's deblending limit: the size of the Gaussian kernel it started with
        self.deblend_limit = int(np.asarray(total.kernel).size)

    def attempt(self, kernel, nsigma, *, big_island_only, biggest_source, source_fraction):
        sx = self.sx
        bkg = self.total.background
        segm, convolved = _detect(self.data, bkg.background, bkg.rms, self.total.regions,
                                  self.total.inv_footprint, kernel, nsigma, sx["source_box"],
                                  self.bk, self.total.product.filename)
        evaluation = evaluate_segmentation(
            segm, self.data, kernel_size=self.deblend_limit,
            ratio_bigsource_deblend_limit=sx["ratio_bigsource_deblend_limit"],
            big_island_only=big_island_only, max_biggest_pixels=sx["rw2d_biggest_pixels"],
            max_biggest_source=biggest_source, max_source_fraction=source_fraction,
            backend=self.bk)
        return _Attempt(segm, convolved, evaluation, nsigma, kernel)

    def ricker(self) -> np.ndarray:
        sigma = self.total.kernel_fwhm * gaussian_fwhm_to_sigma
        return ricker_matched_kernel(sigma, self.sx["rw2d_size"])

    def choose(self):
        """Rounds 1 and 2: (adopted attempt or None, stage, evaluations)."""
        sx = self.sx
        standard = {"biggest_source": sx["rw2d_biggest_source"],
                    "source_fraction": sx["rw2d_source_fraction"]}
        evaluations = {}
        gauss = self.attempt(self.total.kernel, sx["segm_nsigma"], big_island_only=False,
                             **standard)
        evaluations["round1_gaussian"] = gauss.evaluation
        if gauss.segm is None:
            return None, "no_segments", evaluations
        if not gauss.evaluation.poor:
            return gauss, "round1_gaussian", evaluations

        log.info("big sources/islands or a large source fraction: trying the RickerWavelet kernel")
        rw = self.attempt(self.ricker(), sx["rw2d_nsigma"], big_island_only=True, **standard)
        evaluations["round1_ricker"] = rw.evaluation
        if rw.segm is None:
            return None, "no_segments", evaluations
        if not rw.evaluation.poor:
            return rw, "round1_ricker", evaluations

        gauss_kernel, rw_kernel, nsigma, rw_nsigma = self._round2_setup()
        log.info("round 2: Gaussian kernel at %g sigma", nsigma)
        gauss = self.attempt(gauss_kernel, nsigma, big_island_only=False, **standard)
        evaluations["round2_gaussian"] = gauss.evaluation
        if not gauss.evaluation.poor:
            return gauss, "round2_gaussian", evaluations

        log.info("round 2: RickerWavelet kernel at %g sigma with the deblend limits", rw_nsigma)
        rw = self.attempt(rw_kernel, rw_nsigma, big_island_only=True,
                          biggest_source=sx["biggest_source_deblend_limit"],
                          source_fraction=sx["source_fraction_deblend_limit"])
        evaluations["round2_ricker"] = rw.evaluation
        ratio = RATIO_WHEN_RICKER_ZERO
        if rw.evaluation.biggest_source > 0.0:
            ratio = gauss.evaluation.biggest_source / rw.evaluation.biggest_source
        log.info("Gaussian / RickerWavelet biggest source: %.4g / %.4g = %.4g",
                 gauss.evaluation.biggest_source, rw.evaluation.biggest_source, ratio)
        accepted = not rw.evaluation.poor or ratio > sx["ratio_bigsource_limit"]
        if accepted and rw.segm is not None:
            return rw, "round2_ricker", evaluations
        log.warning("round 2 segmentations still hold big sources/islands or a large source "
                    "fraction: no segmentation catalog is produced")
        return None, "round2_rejected", evaluations

    def _round2_setup(self):
        """Background / thresholds of round 2; replaces ``total.background`` when forced 2-D."""
        sx = self.sx
        total = self.total
        kind = total.background.kind.lower()
        nsigma, rw_nsigma = sx["segm_nsigma"], sx["rw2d_nsigma"]
        if kind.startswith("sigma"):
            log.info("round 2: replacing the sigma-clipped background by a Background2D")
            total.background = compute_background(total.data, total.footprint, total.params,
                                                  total.keywords, force_2d=True,
                                                  backend=self.bk)
            total.kernel = gaussian_kernel(total.kernel_fwhm, GAUSSIAN_KERNEL_SIZE)
        elif kind.startswith("twod"):
            log.info("round 2: doubling the detection thresholds")
            nsigma, rw_nsigma = 2.0 * nsigma, 2.0 * rw_nsigma
        return total.kernel, self.ricker(), nsigma, rw_nsigma


def _deblend(attempt: _Attempt, sx, bk):
    """Deblend the candidate segments; on failure keep the segmentation as it is."""
    labels = attempt.evaluation.deblend_labels
    if labels is None:
        return attempt.segm
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", detection.DeblendModeWarning)
            segm = detection.deblend_sources(attempt.convolved, attempt.segm,
                                             npixels=sx["source_box"], labels=labels,
                                             nlevels=sx["nlevels"], contrast=sx["contrast"],
                                             backend=bk)
    except HapGpuError as exc:
        log.warning("deblending the segments failed (%s); going on with the segments as "
                    "detected", exc)
        return attempt.segm
    for reason in segm.info.get("warnings", {}).values():
        log.warning("deblending: %s (%d source(s))", reason["message"],
                    len(reason["input_labels"]))
    log.info("deblended %d of %d segments into %d", labels.size, attempt.segm.n_labels,
             segm.n_labels)
    return segm


def _icrs_compatible_wcs(wcs):
    """A copy of ``wcs`` whose RADESYS is FK4, FK5 or ICRS (anything else becomes ICRS)."""
    if wcs is None:
        return None
    wcs = wcs.deepcopy()
    radesys = str(wcs.wcs.radesys).upper()
    if radesys not in RADESYS_OPTIONS:
        log.warning("RADESYS %r is not one of %s: assuming ICRS; sky coordinates of the "
                    "sources may not be accurate", wcs.wcs.radesys, ", ".join(RADESYS_OPTIONS))
        wcs.wcs.radesys = "ICRS"
    return wcs


def _sky_columns(catalog):
    """(RA, DEC) in degrees, ICRS, of the catalog's centroids."""
    sky = catalog.sky_centroid_icrs
    return np.asarray(sky.ra.degree, dtype=np.float64), np.asarray(sky.dec.degree,
                                                                   dtype=np.float64)


def _total_table(labels, x, y, ra, dec) -> Table:
    """drizzlepac ``_define_total_table``: ID, X-Centroid, Y-Centroid, RA, DEC."""
    table = Table()
    table["ID"] = Column(labels, format="7d", description=_DESCRIPTIONS["ID"])
    for name, values in (("X-Centroid", x), ("Y-Centroid", y), ("RA", ra), ("DEC", dec)):
        column = Column(np.asarray(values, dtype=np.float64), name=name,
                        format=_FORMATS[name], description=_DESCRIPTIONS[name])
        column.unit = _UNITS[name]
        table[name] = column
    return table


def empty_segment_table() -> Table:
    """The table of an empty segment catalog (drizzlepac ``_define_empty_table``).

    Returns
    -------
    astropy.table.Table
        No rows; float64 columns ``ID, X-Centroid, Y-Centroid, RA, DEC, Flags`` with their
        formats, units and descriptions. Used for the total and every filter catalog when no
        segment was found or the image is blank.
    """
    table = Table(names=list(_EMPTY_COLUMNS),
                  descriptions={name: _DESCRIPTIONS[name] for name in _EMPTY_COLUMNS},
                  units=_EMPTY_UNITS)
    for name in _EMPTY_COLUMNS:
        table[name].format = _FORMATS[name]
    return table


def empty_subset_table(filter_name: str) -> Table:
    """Subset of an empty filter catalog: float64 ``ID, MagAP2_<f>, CI_<f>, Flags_<f>``, no rows."""
    return Table(names=["ID", f"MagAP2_{filter_name}", f"CI_{filter_name}",
                        f"Flags_{filter_name}"])


def segment_subset_table(table: Table, filter_name: str) -> Table:
    """Columns of a filter catalog joined onto the total catalog.

    Parameters
    ----------
    table : astropy.table.Table
        The 36-column filter catalog.
    filter_name : str
        Lower-case filter (``f555w``).

    Returns
    -------
    astropy.table.Table
        ``ID, MagAP2_<f>, CI_<f>, Flags_<f>`` (copies, formats kept; note the capital P).
    """
    subset = table["ID", "MagAp2", "CI", "Flags"]
    subset.rename_column("MagAp2", f"MagAP2_{filter_name}")
    subset.rename_column("CI", f"CI_{filter_name}")
    subset.rename_column("Flags", f"Flags_{filter_name}")
    return subset


def _empty_detection(kernel, stage, evaluations) -> SegmentDetection:
    return SegmentDetection(segm=None, source_cat=None,
                            kernel=None if kernel is None else np.array(kernel, copy=True),
                            final_nsigma=None, poor_quality=False,
                            total_table=empty_segment_table(), stage=stage,
                            evaluations=evaluations)


def identify_segments(total: PreparedImage, *, backend=None) -> SegmentDetection:
    """Find the segments of the total detection image (spec §1.13 C).

    Parameters
    ----------
    total : PreparedImage
        The prepared total detection product. When round 2 replaces a sigma-clipped background
        by a forced Background2D, ``total.background`` (and ``total.kernel``, rebuilt alike) are
        replaced on this object, as drizzlepac does on its shared image: the point catalog of
        the total, identified afterwards, sees that background too.
    backend : str, Backend or None
        Defaults to the backend ``total`` was prepared on.

    Returns
    -------
    SegmentDetection
        Empty (``segm=None``) for a blank image, when nothing is detected, or when round 2
        rejects the field.

    Raises
    ------
    InvalidInputError
        ``total`` was prepared from a filter product.

    Notes
    -----
    Differences from drizzlepac 3.11, all in cases where drizzlepac stops with an exception:
    a round-2 Ricker result accepted by the ratio test with no segment at all, and a catalog
    where every centroid is non-finite, give empty catalogs.

    When some centroids are not finite, drizzlepac keeps the *old* labels as the total
    catalog's IDs while relabelling the segmentation the filters are measured on (their IDs
    are then 1..n); that is reproduced. The total catalog passed to the filters is the same
    measurement on the relabelled segmentation.
    """
    if total.product.kind != "total":
        raise InvalidInputError(f"{total.product.filename}: segment sources are identified on "
                                "the total detection product, not a filter product")
    bk = resolve_backend(backend if backend is not None else total.backend)
    if total.blank:
        log.info("%s: blank image, empty segmentation catalog", total.product.filename)
        return _empty_detection(total.kernel, "blank", {})
    sx = total.params.generation["sourcex"]
    finder = _SegmentFinder(total, bk)
    attempt, stage, evaluations = finder.choose()
    if attempt is None:
        log.info("%s: empty segmentation catalog (%s)", total.product.filename, stage)
        return _empty_detection(total.kernel, stage, evaluations)
    log.info("%s: %s segmentation, final nsigma %g", total.product.filename, stage,
             attempt.nsigma)
    poor_quality = bool(attempt.evaluation.poor)

    segm = _deblend(attempt, sx, bk)
    wcs = _icrs_compatible_wcs(total.product.wcs)
    background = total.background.background
    kron_params = (sx["kron_scaling_radius"], sx["kron_minimum_radius"])
    catalog = detection.SourceCatalog(total.data, segm, background=background,
                                      convolved_data=attempt.convolved, wcs=wcs,
                                      kron_params=kron_params, backend=bk)
    x = np.asarray(catalog.x_centroid, dtype=np.float64)
    y = np.asarray(catalog.y_centroid, dtype=np.float64)
    good = np.isfinite(x)
    labels = np.asarray(catalog.label)
    if not good.any():
        log.warning("%s: no segment has a finite centroid: empty segmentation catalog",
                    total.product.filename)
        return _empty_detection(attempt.kernel, "no_finite_centroids", evaluations)
    ra, dec = _sky_columns(catalog)
    table = _total_table(labels[good], x[good], y[good], ra[good], dec[good])
    if not good.all():
        log.warning("%s: dropping %d segment(s) with a non-finite centroid",
                    total.product.filename, int((~good).sum()))
        segm = segm.copy()
        segm.keep_labels(labels[good], relabel=True)
        catalog = detection.SourceCatalog(total.data, segm, background=background,
                                          convolved_data=attempt.convolved, wcs=wcs,
                                          kron_params=kron_params, backend=bk)
    return SegmentDetection(segm=segm, source_cat=catalog, kernel=np.asarray(attempt.kernel),
                            final_nsigma=float(attempt.nsigma), poor_quality=poor_quality,
                            total_table=table, stage=stage, evaluations=evaluations)


# --------------------------------------------------------------------------------- filters
def _values(quantity) -> np.ndarray:
    return np.asarray(getattr(quantity, "value", quantity))


def _filter_table(catalog, photometry: Table, good: np.ndarray, detection_table: Table,
                  mag_segment: np.ndarray) -> Table:
    """The 36 columns of ``<filter>_segment-cat.ecsv`` (drizzlepac ``_define_filter_table``)."""
    n = len(catalog)
    x = np.asarray(catalog.x_centroid, dtype=np.float64).copy()
    y = np.asarray(catalog.y_centroid, dtype=np.float64).copy()
    ra, dec = _sky_columns(catalog)
    bad = ~good
    if bad.any():  # the total catalog's position, row for row
        x[bad] = np.asarray(detection_table["X-Centroid"])[bad]
        y[bad] = np.asarray(detection_table["Y-Centroid"])[bad]
        ra[bad] = np.asarray(detection_table["RA"])[bad]
        dec[bad] = np.asarray(detection_table["DEC"])[bad]
    labels = np.asarray(catalog.label)
    values = {"X-Centroid": x, "Y-Centroid": y, "RA": ra, "DEC": dec, "ID": labels,
              "Flags": np.zeros_like(labels), "MagSegment": mag_segment}
    for name in _PHOTOMETRY_COLUMNS:
        column = np.full(n, np.nan)
        column[good] = np.asarray(photometry[name], dtype=np.float64)
        values[name] = column
    ci = np.full(n, np.nan)
    ci_mask = np.zeros(n, dtype=bool)
    ci[good] = np.asarray(photometry["CI"], dtype=np.float64)
    ci_mask[good] = np.ma.getmaskarray(photometry["CI"])
    for name, prop in _PROPERTIES.items():
        values[name] = _values(getattr(catalog, prop))

    table = Table(meta=dict(catalog.meta))
    for name in SEGMENT_COLUMNS:
        if name == "CI":
            column = MaskedColumn(ci, name=name, dtype=np.float64, mask=ci_mask)
        else:
            column = Column(values[name], name=name)
        column.format = _FORMATS[name]
        column.description = _DESCRIPTIONS[name]
        column.unit = _UNITS[name]
        table.add_column(column)
    return table


def measure_segment_catalog(image: PreparedImage, detection_result: SegmentDetection, *,
                            backend=None) -> tuple[Table, Table]:
    """Measure one filter image in the total's segments (spec §1.13 D).

    Parameters
    ----------
    image : PreparedImage
        A prepared filter product (its own background and rms).
    detection_result : SegmentDetection
        :func:`identify_segments` of the total.
    backend : str, Backend or None
        Defaults to the backend ``image`` was prepared on.

    Returns
    -------
    (Table, Table)
        The filter catalog, ``SEGMENT_COLUMNS`` with formats, units and descriptions (``Flags``
        0; the filter SourceCatalog's metadata in ``meta``), and the subset
        ``ID, MagAP2_<f>, CI_<f>, Flags_<f>``. Both are the empty forms
        (:func:`empty_segment_table`, :func:`empty_subset_table`) when the total has no
        segments or this image is blank.

    Raises
    ------
    InvalidInputError
        The filter image is not on the total detection image's pixel grid (shapes differ).

    Notes
    -----
    Columns: the forced SourceCatalog of ``data - bkg`` (centroids, shapes and Kron radius from
    the detection catalog; ``Bck`` is the filter background at the centroid; fluxes with
    ``error = sqrt(rms**2 + max(data - bkg, 0))``), ``MagSegment`` = ABMAG of ``FluxSegment``,
    and :func:`~hapgpu.catalogs._photometry.measure_apertures` on the non-subtracted data at the
    finite centroids. Rows with a non-finite centroid get the total catalog's X, Y, RA and DEC
    and NaN photometry. ``Theta`` holds degrees under a ``radian`` unit, as drizzlepac writes.
    """
    filter_name = image.product.filter_name
    if image.blank or detection_result.segm is None:
        log.info("%s: empty segmentation catalog", image.product.filename)
        return empty_segment_table(), empty_subset_table(filter_name)
    bk = resolve_backend(backend if backend is not None else image.backend)
    if tuple(image.data.shape) != tuple(detection_result.segm.shape):
        raise InvalidInputError(
            f"{image.product.filename}: image shape {tuple(image.data.shape)} differs from the "
            f"total detection image's {tuple(detection_result.segm.shape)}; the filter products "
            "must share the total's frame")
    background = image.background
    data = image.data
    subtracted = data - background.background
    error = total_error(subtracted, background.rms, 1.0, backend=bk)
    catalog = detection.SourceCatalog(subtracted, detection_result.segm,
                                      background=background.background,
                                      detection_cat=detection_result.source_cat, error=error,
                                      backend=bk)
    keywords = image.keywords
    mag_segment = abmag(_values(catalog.segment_flux), keywords["photflam"],
                        keywords["photplam"])
    x = np.asarray(catalog.x_centroid, dtype=np.float64)
    y = np.asarray(catalog.y_centroid, dtype=np.float64)
    good = np.isfinite(x)
    if not good.any():
        log.info("%s: no measurable segment centroid", image.product.filename)
    photometry = measure_apertures(data, x[good], y[good], error=background.rms,
                                   radii=image.aperture_radii, annulus=image.annulus,
                                   gain=image.gain, photflam=keywords["photflam"],
                                   photplam=keywords["photplam"],
                                   salgorithm=image.params.generation["salgorithm"], backend=bk)
    table = _filter_table(catalog, photometry, good, detection_result.total_table, mag_segment)
    log.info("%s: measured %d segment sources", image.product.filename, len(table))
    return table, segment_subset_table(table, filter_name)
