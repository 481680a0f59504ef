"""The MVM bad-guiding check (hap-pipeline.md §1.3, "MVM only"; drizzlepac ``analyze.verify_guiding``).

An exposure taken while the telescope drifted shows every source trailed along one direction:
the science array is then dominated by parallel straight edges. :func:`verify_guiding` looks
for them as drizzlepac does:

1. the primary ``QUALITY`` keyword contains ``gsfail`` or ``tdf-down``: bad guiding;
2. otherwise SCI,1 (times ``EXPTIME`` when ``BUNIT`` ends in ``/S``; NaN -> 0) minus
   (median + standard deviation) of 2-iteration sigma-clipped statistics, clipped at 0; pixels
   with DQ bits other than 256, 512, 1024, 2048, 4096 set to 0;
3. segments above 0 with at least 17 pixels; fewer than 2: good guiding. Segments classified as
   cosmic rays (:func:`hapgpu.align._sources.classify_sources`, FWHM 1.5) are removed; none
   left: good guiding;
4. on the float32 image trimmed by 2 pixels on each side, Canny edges (sigma 2.5, thresholds 0
   and 25; computed in float32 as drizzlepac's FITS data are) and probabilistic Hough lines
   (threshold 0, no gap, at least 33 pixels long);
5. bad guiding when there are at least max(4, n_sources / 10) lines and, leaving out lines
   within 2 degrees of +-90 (CTE trails and bleeding along columns), the most populated 4-degree
   bin of the angle histogram over [-180, 180] holds more than max(n_lines / 10,
   n_column_lines) lines.

The edge detector and the line transform are scikit-image's ``feature.canny`` and
``transform.probabilistic_hough_line``, the implementations drizzlepac calls. The Hough
transform samples edge pixels at random; hapgpu seeds it (``rng=0``) so that a run is
repeatable (drizzlepac leaves it unseeded).

Speed: :meth:`GuidingCache.check` runs the checks of several exposures on host threads (the
file reading, the statistics kernels and most of the Canny filtering release the GIL); each
check is the same computation as alone, so the verdicts do not depend on the threads. The
Canny step (:func:`_canny_edges`) computes the smoothing of the image's all-ones mask, which
depends only on the image shape, once per shape instead of once per exposure (the same edges
as ``skimage.feature.canny``).
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from astropy.io import fits

from .._fileid import file_identity
from .._threads import concurrent_kernels
from ..backend import Backend, resolve_backend
from ..errors import InvalidInputError

__all__ = ["ACCEPTED_DQ_FLAGS", "MIN_LINES", "GuidingCache", "lines_in_image", "verify_guiding"]

log = logging.getLogger(__name__)

#: DQ bits that do not exclude a pixel from the check: full-well and A-to-D saturation, bad
#: pixel from the reference file, weak charge trap, cosmic ray (drizzlepac's ``BAD_DQ_FLAGS``,
#: passed as ``ignore_flags``).
ACCEPTED_DQ_FLAGS = (256, 512, 1024, 2048, 4096)
#: Fewest lines that can mean bad guiding (drizzlepac's ``MIN_LINES``).
MIN_LINES = 4
_MIN_LENGTH = 33
_N_PIXELS = 17
_CR_FWHM = 1.5
_TRIM = 2
#: ``warnings.catch_warnings`` changes process-wide state: checks running on several threads
#: take this lock around the one block that silences a warning (source detection).
_WARNINGS_LOCK = threading.Lock()


def verify_guiding(path, *, min_length: int = _MIN_LENGTH, backend=None) -> bool:
    """Whether an exposure was affected by bad guiding (True = bad; see the module notes).

    Parameters
    ----------
    path : str or os.PathLike
        Calibrated exposure (FLT/FLC) with a ``SCI,1`` extension.
    min_length : int, keyword-only
        Shortest line, pixels (33 as drizzlepac calls it).
    backend : {"cpu", "gpu", "cudasim", "auto"} or Backend, optional, keyword-only
        Where the statistics, source detection and measurement run (default: ``auto``).

    Returns
    -------
    bool
        True when the header reports a guide-star failure or the image is dominated by
        parallel lines.

    Raises
    ------
    InvalidInputError
        The file cannot be read, has no ``SCI,1`` extension, or lacks ``BUNIT``/``EXPTIME``
        where needed; the message names the file.

    Notes
    -----
    Source: drizzlepac ``haputils/analyze.py`` ``verify_guiding``, ``detect_lines`` and
    ``lines_in_image``.
    """
    from ..align._sources import classify_sources
    from ..detection import SourceCatalog, detect_sources, sigma_clipped_stats
    from ..detection.segmentation import NoDetectionsWarning

    path = Path(path)
    try:
        with fits.open(path, memmap=False) as hdul:
            primary = hdul[0].header
            quality = str(primary.get("QUALITY", "")).lower()
            if "gsfail" in quality or "tdf-down" in quality:
                log.warning("%s: QUALITY = %r reports a guiding failure", path, quality)
                return True
            try:
                sci = hdul["SCI", 1]
            except KeyError:
                raise InvalidInputError(f"{path}: no SCI,1 extension (needed by the guiding "
                                        "check)") from None
            data = np.nan_to_num(np.array(sci.data, dtype=np.float32), nan=0.0, copy=False)
            bunit = str(sci.header.get("BUNIT", ""))
            if bunit.endswith("/S"):
                scale_header = primary if "EXPTIME" in primary else sci.header
                if "EXPTIME" not in scale_header:
                    raise InvalidInputError(f"{path}: no EXPTIME keyword to scale the {bunit} "
                                            "data of SCI,1")
                data *= np.float32(scale_header["EXPTIME"])
            dq = next((np.array(h.data) for h in hdul
                       if h.header.get("EXTNAME") == "DQ" and h.data is not None), None)
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the exposure ({exc})") from None
    _, median, std = sigma_clipped_stats(data, maxiters=2, backend=backend)
    # data - (median + std), clipped at 0, in place (the same float32 values as new arrays)
    image = data
    image -= np.float32(median + std)
    np.clip(image, 0, None, out=image)
    del data
    if dq is not None:
        image[_rejected_dq(dq)] = 0
        del dq
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", NoDetectionsWarning)
        segm = detect_sources(image, 0.0, _N_PIXELS, backend=backend)
    if segm is None or segm.n_labels < 2:
        log.debug("%s: too few sources for the guiding check", path)
        return False
    stars = classify_sources(SourceCatalog(image, segm, backend=backend), _CR_FWHM)
    segm.remove_labels(segm.labels[~stars])
    if segm.n_labels == 0:
        log.warning("%s: no sources left after removing likely cosmic rays; guiding not "
                    "checked", path)
        return False
    n_sources = segm.n_labels
    bad = lines_in_image(image[_TRIM:-_TRIM, _TRIM:-_TRIM], n_sources, min_length=min_length)
    if bad:
        log.warning("%s: bad guiding detected (the image is dominated by parallel lines)", path)
    else:
        log.info("%s: guiding good", path)
    return bad


def _rejected_dq(dq: np.ndarray) -> np.ndarray:
    """Pixels with a DQ bit set outside :data:`ACCEPTED_DQ_FLAGS` (bool, the shape of ``dq``).

    Integer DQ arrays are tested in their own dtype (the complement of the accepted bits
    wrapped into it: the same bits, without a 64-bit copy); any other dtype as int64.
    """
    accepted = int(np.bitwise_or.reduce(np.array(ACCEPTED_DQ_FLAGS)))
    if dq.dtype.kind not in "iu":
        dq = dq.astype(np.int64)
    others = np.array(~accepted & (2 ** (8 * dq.dtype.itemsize) - 1), dtype=np.uint64)
    return (dq & others.astype(dq.dtype)) != 0


class GuidingCache:
    """Bad-guiding verdicts of one run, computed once per exposure file.

    The pollers of a run (one per sky cell) often list the same exposures: an exposure
    touching four cells would otherwise be checked four times. Calling the cache with a path
    runs :func:`verify_guiding` the first time that file is seen and returns the stored
    verdict afterwards; :meth:`check` does the same for several paths, running the new checks
    on up to ``n_workers`` host threads. A file is identified by its resolved path, size and
    modification time (ns), so a file replaced or rewritten during the run is checked again.

    Parameters
    ----------
    min_length : int, keyword-only
        Shortest line, pixels, passed to :func:`verify_guiding`.
    n_workers : int, optional, keyword-only
        Most checks run at once by :meth:`check` (each holds ~10 float32 copies of a chip,
        ~0.4 GB for a UVIS chip). Default: the number of CPUs, at most 4. One where Numba's
        threading layer takes kernel launches from one thread at a time
        (:func:`hapgpu._threads.concurrent_kernels`).
    backend : {"cpu", "gpu", "cudasim", "auto"} or Backend, optional, keyword-only
        Passed to :func:`verify_guiding` (default: ``auto``, resolved once).

    Raises
    ------
    InvalidParameterError
        ``n_workers`` is not a positive integer.

    Examples
    --------
    >>> guiding = GuidingCache()                                    # doctest: +SKIP
    >>> guiding.check([row.source for row in rows])                 # doctest: +SKIP
    [False, False, True]
    """

    def __init__(self, *, min_length: int = _MIN_LENGTH, n_workers: int | None = None,
                 backend=None):
        from ..errors import InvalidParameterError

        if n_workers is None:
            n_workers = min(4, os.cpu_count() or 1)
        if isinstance(n_workers, bool) or not isinstance(n_workers, (int, np.integer)) or n_workers < 1:
            raise InvalidParameterError(f"n_workers must be a positive integer, got {n_workers!r}")
        self.min_length = int(min_length)
        self.n_workers = int(n_workers)
        self.backend = backend
        self._verdicts: dict = {}

    def __repr__(self) -> str:
        return (f"GuidingCache(min_length={self.min_length}, n_workers={self.n_workers}, "
                f"n_files={len(self._verdicts)})")

    def __len__(self) -> int:
        return len(self._verdicts)

    def __call__(self, path) -> bool:
        """Whether the exposure at ``path`` was affected by bad guiding (see :func:`verify_guiding`).

        Raises
        ------
        InvalidInputError
            The file cannot be found or read (errors are not stored: the next call retries).
        """
        return self.check([path])[0]

    def check(self, paths) -> list[bool]:
        """The verdicts of several exposures, in order; files not seen yet are checked on
        host threads.

        Parameters
        ----------
        paths : sequence of str or os.PathLike

        Returns
        -------
        list of bool
            True = bad guiding, one per path.

        Raises
        ------
        InvalidInputError
            A file cannot be found or read: the first such file in ``paths`` order (the
            verdicts of the files checked meanwhile are kept; errors are not stored).
        """
        paths = list(paths)
        keys = [file_identity(path) for path in paths]
        new: dict = {}
        for key, path in zip(keys, paths):
            if key in self._verdicts:
                log.debug("%s: guiding already checked in this run (%s)", path,
                          "bad" if self._verdicts[key] else "good")
            elif key not in new:
                new[key] = path

        def run(item):
            key, path = item
            try:
                self._verdicts[key] = verify_guiding(path, min_length=self.min_length,
                                                     backend=backend)
            except InvalidInputError as exc:
                return exc
            return None

        if new and not isinstance(self.backend, Backend):
            self.backend = resolve_backend(self.backend)  # once, not on every thread
        backend = self.backend
        n_threads = min(self.n_workers, len(new)) if concurrent_kernels() else 1
        if n_threads > 1:
            with ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="guiding") as pool:
                errors = list(pool.map(run, new.items()))  # every file checked, in path order
        else:
            errors = [run(item) for item in new.items()]
        for exc in errors:
            if exc is not None:
                raise exc
        return [self._verdicts[key] for key in keys]




#: Canny smoothing of the guiding check (drizzlepac ``detect_lines``: sigma 2.5, thresholds 0, 25).
_CANNY_SIGMA = 2.5
_CANNY_LOW = 0.0
_CANNY_HIGH = 25.0
#: Most image shapes whose smoothed unit mask :func:`_unit_mask_smoothing` keeps.
_MASK_CACHE_SHAPES = 4
_mask_cache: dict = {}
_mask_cache_lock = threading.Lock()


def _unit_mask_smoothing(shape, dtype):
    """``(bleed_over, interior)`` of an unmasked image of ``shape`` and ``dtype``, computed once.

    scikit-image's ``canny`` without a mask, in its default ``constant`` mode, divides the
    smoothed image by the Gaussian smoothing of an all-ones mask (plus the float epsilon), the
    share of each pixel's smoothing that falls inside the image, and suppresses edges on the
    image border. Both depend only on the shape and dtype: every exposure of a detector gives
    the same arrays, computed here with the same calls as in ``canny`` and then reused.
    """
    from skimage._shared.filters import gaussian

    key = (tuple(shape), np.dtype(dtype).str)
    with _mask_cache_lock:
        cached = _mask_cache.get(key)
    if cached is not None:
        return cached
    ones = np.ones(shape, dtype=dtype)
    bleed_over = gaussian(ones, sigma=_CANNY_SIGMA, mode="constant", cval=0.0, preserve_range=False)
    bleed_over += np.finfo(bleed_over.dtype).eps
    interior = np.zeros(shape, dtype=bool)
    interior[1:-1, 1:-1] = True
    bleed_over.flags.writeable = False  # shared: only read (the interior mask too, but
    # scikit-image's non-maximum suppression takes it as a writable buffer)
    with _mask_cache_lock:
        if len(_mask_cache) >= _MASK_CACHE_SHAPES:
            _mask_cache.pop(next(iter(_mask_cache)))
        _mask_cache[key] = (bleed_over, interior)
    return bleed_over, interior


def _canny_edges(image: np.ndarray) -> np.ndarray:
    """``skimage.feature.canny(image, sigma=2.5, low_threshold=0, high_threshold=25)`` of a
    float32 or float64 image (bool, the shape of ``image``).

    The same steps and calls as scikit-image's ``canny`` (no mask, ``constant`` mode: Gaussian
    smoothing divided by the smoothed unit mask, Sobel gradients, non-maximum suppression with
    bilinear interpolation, hysteresis by 8-connected labels), with the smoothed unit mask and
    the border mask of :func:`_unit_mask_smoothing` reused between images of one shape. Falls
    back on ``canny`` itself when scikit-image's internals are not where 0.19-0.26 keep them.
    """
    import scipy.ndimage as ndi

    try:
        from skimage._shared.filters import gaussian
        from skimage.feature._canny_cy import _nonmaximum_suppression_bilinear
    except ImportError:  # another scikit-image layout: its canny, the same edges
        from skimage.feature import canny

        return canny(image, sigma=_CANNY_SIGMA, low_threshold=_CANNY_LOW, high_threshold=_CANNY_HIGH)
    bleed_over, interior = _unit_mask_smoothing(image.shape, image.dtype)
    smoothed = gaussian(image, sigma=_CANNY_SIGMA, mode="constant", cval=0.0, preserve_range=False)
    smoothed /= bleed_over
    rows = ndi.sobel(smoothed, axis=0)
    columns = ndi.sobel(smoothed, axis=1)
    magnitude = rows * rows
    magnitude += columns * columns
    np.sqrt(magnitude, out=magnitude)
    kept = _nonmaximum_suppression_bilinear(rows, columns, magnitude, interior, _CANNY_LOW)
    candidates = kept > 0
    labels, count = ndi.label(candidates, np.ones((3, 3), bool))
    if count == 0:
        return candidates
    strong = np.zeros(count + 1, dtype=bool)
    strong[np.unique(labels[candidates & (kept >= _CANNY_HIGH)])] = True
    return strong[labels]


def _detect_lines(image: np.ndarray, min_length: int) -> np.ndarray:
    """Angles (degrees, ``arctan2(rise, run)``) of the Hough lines on Canny edges of ``image``."""
    try:
        from skimage.transform import probabilistic_hough_line
    except ImportError:  # pragma: no cover - scikit-image is a drizzlepac dependency
        raise InvalidInputError("the MVM guiding check needs scikit-image (pip install "
                                "scikit-image)") from None
    edges = _canny_edges(image)
    lines = probabilistic_hough_line(edges, threshold=0, line_gap=0, line_length=min_length,
                                     rng=0)
    if not lines:
        return np.zeros(0)
    ends = np.asarray(lines, dtype=float)
    rise = ends[:, 1, 1] - ends[:, 0, 1]
    run = ends[:, 1, 0] - ends[:, 0, 0]
    return np.rad2deg(np.arctan2(rise, run))


def lines_in_image(image, n_sources: int, *, min_length: int = 17,
                   min_lines: int = MIN_LINES) -> bool:
    """Whether an image is dominated by parallel straight features (drizzlepac ``lines_in_image``).

    Parameters
    ----------
    image : array_like, shape (ny, nx)
        Background-subtracted image, counts. float32 and float64 images are processed in their
        own precision (as scikit-image does for drizzlepac's float32 FITS data); any other
        dtype as float64.
    n_sources : int
        Number of real (not cosmic-ray) sources in it.
    min_length : int, keyword-only
        Shortest line, pixels.
    min_lines : int, keyword-only
        Fewest lines that can mean bad guiding.

    Returns
    -------
    bool
        True when at least ``max(min_lines, n_sources / 10)`` lines are found and the most
        populated 4-degree angle bin, leaving out lines within 2 degrees of +-90, holds more
        than ``max(n_kept / 10, n_column_lines)``.
    """
    image = np.asarray(image)
    if image.dtype not in (np.float32, np.float64):
        image = image.astype(np.float64)
    # float32 images are filtered in float32, as drizzlepac's FITS data are (and faster)
    angles = _detect_lines(image, min_length)
    if angles.size == 0 or angles.size < max(min_lines, n_sources / 10):
        return False
    columns = np.isclose(np.abs(angles), 90, atol=2.0)
    kept = angles[~columns]
    counts, _ = np.histogram(kept, bins=np.linspace(-180.0, 180.0, 91))
    return bool(counts.max() > max(kept.size / 10.0, columns.sum()))
