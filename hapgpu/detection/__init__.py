"""Detection engine: the image-analysis primitives of the HAP catalogs, alignment and
runastrodriz verification, on the ``cpu``, ``gpu`` and ``cudasim`` backends.

Every function keeps the signature and meaning of its photutils / SciPy / astropy /
drizzlepac counterpart, plus a keyword-only ``backend`` (None resolves through
:func:`hapgpu.backend.resolve_backend`), so the reference is a drop-in oracle:

========================  ===================================================================
filters                   :func:`gaussian_laplace`, :func:`gaussian_filter`, :func:`convolve`
                          (astropy semantics), :func:`median_filter`, :func:`maximum_filter`,
                          :func:`binary_erosion`, :func:`label`
statistics                :func:`sigma_clipped_stats` (astropy), :func:`mad_rms` (HAP)
background                :class:`Background2D` with the SExtractor/Median/Mean/MMM and
                          Std/MADStd estimators
segmentation              :func:`detect_sources`, :func:`deblend_sources`,
                          :class:`SegmentationImage`
measurements              :class:`SourceCatalog`
point sources             :class:`DAOStarFinder` (``xycoords`` for given positions),
                          :class:`IRAFStarFinder`, :func:`find_peaks`,
                          :func:`user_star_finder` (drizzlepac's ``UserStarFinder``)
aperture photometry       :func:`aperture_photometry`, :class:`CircularAperture`,
                          :class:`CircularAnnulus`, :func:`aperture_stats_tbl`
alignment quality         :func:`focus_index`, :func:`build_focus_dict`,
                          :func:`evaluate_focus`, :func:`compute_similarity`,
                          :func:`detect_point_sources`, :func:`max_overlap_diff`
========================  ===================================================================

Arrays are taken as users have them: either byte order (``astropy.io.fits.getdata`` returns
big-endian data), strided or read-only views, masked arrays (their data) and Quantities (their
values), and integer, boolean or float images where the reference accepts them. Each array
argument (data, masks, errors, thresholds, segmentation images, positions, weights) is
converted once at the public boundary (:func:`hapgpu.detection._common.native_array` and
``to_backend``) to a native-order, C-ordered, writeable array, and results are native-order.
"""

from .aperture import CircularAnnulus, CircularAperture, aperture_photometry, aperture_stats_tbl
from .background import (
    Background2D,
    MADStdBackgroundRMS,
    MeanBackground,
    MedianBackground,
    MMMBackground,
    SExtractorBackground,
    StdBackgroundRMS,
)
from .catalog import SourceCatalog
from .filters import (
    binary_erosion,
    convolve,
    correlate,
    gaussian_filter,
    gaussian_laplace,
    label,
    maximum_filter,
    median_filter,
)
from .quality import (
    build_focus_dict,
    compute_similarity,
    compute_zero_mask,
    detect_point_sources,
    evaluate_focus,
    evaluate_overlap_diffs,
    focus_index,
    max_overlap_diff,
)
from .segmentation import (
    DeblendModeWarning,
    NoDetectionsWarning,
    SegmentationImage,
    deblend_sources,
    detect_sources,
)
from .starfind import (
    DAOStarFinder,
    IRAFStarFinder,
    StarFinderKernel,
    find_peaks,
    user_star_finder,
)
from .stats import mad_rms, sigma_clipped_stats

__all__ = [
    "Background2D",
    "CircularAnnulus",
    "CircularAperture",
    "DAOStarFinder",
    "DeblendModeWarning",
    "IRAFStarFinder",
    "MADStdBackgroundRMS",
    "MMMBackground",
    "MeanBackground",
    "MedianBackground",
    "NoDetectionsWarning",
    "SExtractorBackground",
    "SegmentationImage",
    "SourceCatalog",
    "StarFinderKernel",
    "StdBackgroundRMS",
    "aperture_photometry",
    "aperture_stats_tbl",
    "binary_erosion",
    "build_focus_dict",
    "compute_similarity",
    "compute_zero_mask",
    "convolve",
    "correlate",
    "deblend_sources",
    "detect_point_sources",
    "detect_sources",
    "evaluate_focus",
    "evaluate_overlap_diffs",
    "find_peaks",
    "focus_index",
    "gaussian_filter",
    "gaussian_laplace",
    "label",
    "mad_rms",
    "max_overlap_diff",
    "maximum_filter",
    "median_filter",
    "sigma_clipped_stats",
    "user_star_finder",
]
