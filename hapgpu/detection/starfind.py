"""Point-source finding: local peaks and the DAOFIND algorithm (photutils ``DAOStarFinder``).

:func:`find_peaks` reproduces :func:`photutils.detection.find_peaks` (box, footprint or circular
``min_separation`` neighbourhoods; pixels outside the image count as 0; NaNs are masked).

:class:`DAOStarFinder` reproduces photutils': the image is correlated with a zero-sum,
masked elliptical Gaussian kernel; peaks of the convolved image above
``threshold * kernel.rel_err`` are measured (sharpness, two roundness statistics, marginal
Gaussian fits giving the centroid), filtered and optionally limited to the brightest.
``xycoords`` skips the peak search and measures given positions (photutils' path).

:func:`user_star_finder` reproduces drizzlepac's ``UserStarFinder`` at given peaks, which
differs from ``xycoords``: it measures the unconvolved data in place of the convolved image
(sharpness, roundness1, flux) and applies exclusive limits.

:class:`IRAFStarFinder` reproduces photutils' IRAF ``starfind``: the same correlation and
peak search (threshold not scaled), then sky-subtracted image moments per star (centroid,
FWHM, sharpness, roundness, orientation).

Backends: ``cpu`` runs compiled ``prange`` loops; ``gpu``/``cudasim`` run the same per-pixel
and per-star code as CUDA threads (convolution through :mod:`cupyx.scipy.ndimage` on ``gpu``).
"""

from __future__ import annotations

import math
import warnings

import astropy.units as u
import numpy as np
from astropy.stats import gaussian_fwhm_to_sigma
from astropy.table import QTable

from ..errors import InvalidInputError, InvalidParameterError
from ..kernels.detection import _star_math as sm
from ..kernels.detection import starfind as kstar
from ._common import as_image, as_mask, get_backend, launch, native_array, strip_unit
from .filters import ndimage_module
from .segmentation import NoDetectionsWarning, _threshold_operand

__all__ = ["DAOStarFinder", "IRAFStarFinder", "find_peaks", "StarFinderKernel",
           "user_star_finder"]


def _rotated_gaussian_form(x_sigma, y_sigma, theta_deg):
    """Coefficients ``(a, b, c)`` of ``q = a dx**2 + 2 b dx dy + c dy**2`` such that
    ``exp(-q)`` is a unit-peak Gaussian with standard deviations ``x_sigma`` along its major
    axis and ``y_sigma`` across it, the major axis at ``theta_deg`` counter-clockwise from +x.

    ``[[a, b], [b, c]]`` is half the inverse covariance ``R diag(x_sigma**2, y_sigma**2) R^T``
    of the rotated Gaussian (the standard elliptical-Gaussian parametrisation).
    """
    angle = np.deg2rad(theta_deg)
    cos_t, sin_t = np.cos(angle), np.sin(angle)
    var_major, var_minor = x_sigma ** 2, y_sigma ** 2
    a = cos_t ** 2 / (2.0 * var_major) + sin_t ** 2 / (2.0 * var_minor)
    c = sin_t ** 2 / (2.0 * var_major) + cos_t ** 2 / (2.0 * var_minor)
    b = 0.5 * cos_t * sin_t * (1.0 / var_major - 1.0 / var_minor)
    return a, b, c


def _triangle_weights(n):
    """DAOFIND's weights along a kernel side of odd length ``n``: 1 at the ends, rising by 1
    per pixel to ``n // 2 + 1`` at the centre."""
    half = (n - 1) // 2
    return half + 1 - np.abs(np.arange(n) - half)


class StarFinderKernel:
    """The DAOFIND detection kernel: a truncated, zero-mean elliptical Gaussian.

    DAOFIND (Stetson 1987, PASP 99, 191, section III.a) fits, at every pixel, the height ``H``
    of a Gaussian profile ``G`` plus a constant to the pixels of a footprint, by linear least
    squares::

        H = (sum(G D) - sum(G) sum(D) / n) / (sum(G**2) - sum(G)**2 / n)

    which is a correlation of the image ``D`` with ``(G - mean(G)) / S`` over the footprint,
    ``S = sum(G**2) - sum(G)**2 / n``. :attr:`data` holds that correlation kernel (zero sum,
    so a flat sky gives 0), and ``rel_err = 1 / sqrt(S)`` is the noise of ``H`` in units of the
    per-pixel noise, by which :class:`DAOStarFinder` scales its threshold. The footprint, its
    size and ``G`` follow photutils' ``_StarFinderKernel`` so that the two agree exactly: the
    pixels where ``G >= exp(-sigma_radius**2 / 2)`` or within 2 pixels of the centre, in an
    odd box at least 5 pixels wide that holds that ellipse.

    Parameters
    ----------
    fwhm : float
        FWHM of the Gaussian along its major axis (pixels, > 0).
    ratio : float, optional
        Minor/major standard-deviation ratio, in (0, 1].
    theta : float, optional
        Position angle of the major axis, degrees counter-clockwise from +x.
    sigma_radius : float, optional
        Truncation radius of the footprint in standard deviations (> 0).

    Attributes
    ----------
    data : ndarray, float64, shape (ny, nx)
        The correlation kernel (zero outside the footprint).
    mask : ndarray of int, shape (ny, nx)
        1 inside the footprint, 0 outside.
    n_pixels : int
        Number of footprint pixels ``n``.
    rel_err : float
        ``1 / sqrt(S)`` (see above).
    profile : ndarray, float64, shape (ny, nx)
        The untruncated Gaussian ``G`` (peak 1), also available as
        ``gaussian_kernel_unmasked`` (photutils' name).
    x_sigma, y_sigma : float
        Standard deviations along and across the major axis (pixels).
    x_radius, y_radius : int
        Half-sizes of the box: ``shape == (2 * y_radius + 1, 2 * x_radius + 1)``.

    Raises
    ------
    InvalidParameterError
        For a non-scalar or non-positive ``fwhm``, ``ratio`` outside (0, 1] or a non-positive
        ``sigma_radius``.
    """

    def __init__(self, fwhm, ratio=1.0, theta=0.0, sigma_radius=1.5):
        if np.ndim(fwhm) != 0:
            raise InvalidParameterError(f"fwhm must be a single number, got {fwhm!r}")
        if not fwhm > 0:
            raise InvalidParameterError(f"fwhm must be > 0 pixels, got {fwhm!r}")
        if not 0 < ratio <= 1:
            raise InvalidParameterError(f"ratio must lie in (0, 1], got {ratio!r}")
        if not sigma_radius > 0:
            raise InvalidParameterError(f"sigma_radius must be > 0, got {sigma_radius!r}")
        self.fwhm = fwhm
        self.ratio = ratio
        self.theta = theta % 360.0
        self.sigma_radius = sigma_radius
        self.x_sigma = fwhm * gaussian_fwhm_to_sigma
        self.y_sigma = self.x_sigma * ratio
        a, b, c = _rotated_gaussian_form(self.x_sigma, self.y_sigma, self.theta)
        # The truncation ellipse q = sigma_radius**2 / 2 reaches |dx| = sqrt(level c / det)
        # and |dy| = sqrt(level a / det), det = a c - b**2 (its vertical and horizontal
        # tangents); the box is that, rounded down, but never under 2 pixels each side.
        level = 0.5 * sigma_radius ** 2
        det = a * c - b * b
        self.x_radius = max(2, int(math.sqrt(level * c / det)))
        self.y_radius = max(2, int(math.sqrt(level * a / det)))
        dy, dx = np.mgrid[-self.y_radius:self.y_radius + 1, -self.x_radius:self.x_radius + 1]
        q = a * dx ** 2 + 2.0 * b * dx * dy + c * dy ** 2
        inside = (q <= level) | (np.hypot(dx, dy) <= 2.0)
        self.mask = inside.astype(int)
        self.n_pixels = int(np.count_nonzero(inside))
        self.profile = np.exp(-q)
        footprint_profile = np.where(inside, self.profile, 0.0)
        total = footprint_profile.sum()
        spread = (footprint_profile ** 2).sum() - total ** 2 / self.n_pixels  # S
        self.rel_err = 1.0 / np.sqrt(spread)
        self.data = np.where(inside, (footprint_profile - total / self.n_pixels) / spread, 0.0)
        self.shape = self.data.shape

    @property
    def gaussian_kernel_unmasked(self) -> np.ndarray:
        """The untruncated unit-peak Gaussian (photutils' name for :attr:`profile`)."""
        return self.profile

    def __repr__(self) -> str:
        return (f"StarFinderKernel(fwhm={self.fwhm}, ratio={self.ratio}, theta={self.theta}, "
                f"sigma_radius={self.sigma_radius})")

    def marginal_constants(self):
        """Data-independent sums of DAOFIND's marginal centroid fits, per axis.

        DAOFIND (Stetson 1987, section III.c) finds the centroid along x by fitting the
        Gaussian's 1-D marginal ``g(x) = sum_y G(x, y) w_y`` to the image's marginal, the
        image collapsed over y with the same triangular weights ``w_y``
        (:func:`_triangle_weights`), and the fit is weighted along x by ``w_x``; likewise for
        y. Sums over the kernel alone are computed here once; the data sums are formed per
        star in :func:`hapgpu.kernels.detection._star_math.marginal_fit`.

        Returns
        -------
        kconst : ndarray, float64, shape (2, N_KCONST)
            Per axis (row 0: x, row 1: y): ``sum w``, ``sum g w``, ``sum g**2 w``,
            ``sum g' w``, ``sum g'**2 w``, ``sum g g' w``, the Gaussian's sigma along the axis
            and the kernel length, in the slots ``K_*`` of :mod:`._star_math`, where
            ``g' = g * (c - k)`` at pixel ``k`` of an axis centred on ``c``.
        kern1d, dkern1d, wt1d : ndarray, float64, shape (2, max(ny, nx))
            ``g``, ``g'`` and ``w`` per axis (zero-padded to the longer side).
        dxx1d : ndarray, float64, shape (2, max(ny, nx))
            Pixel offsets used for the first-moment fallback centroid: ``c - k`` along x and
            ``k - c`` along y (photutils' convention).
        """
        ny, nx = self.shape
        w_x, w_y = _triangle_weights(nx), _triangle_weights(ny)
        longest = max(nx, ny)
        kconst = np.zeros((2, sm.N_KCONST))
        kern1d, dkern1d, wt1d, dxx1d = (np.zeros((2, longest)) for _ in range(4))
        axes = (
            # row, marginal Gaussian, weights along the axis, sigma, sign of the offsets
            (0, (self.profile * w_y[:, None]).sum(axis=0), w_x, self.x_sigma, 1.0),
            (1, (self.profile * w_x[None, :]).sum(axis=1), w_y, self.y_sigma, -1.0),
        )
        for row, g, w, sigma, sign in axes:
            n = g.size
            offsets = (n - 1) // 2 - np.arange(n)
            g_slope = g * offsets
            kconst[row, sm.K_SUM_W] = w.sum()
            kconst[row, sm.K_SUM_G] = (g * w).sum()
            kconst[row, sm.K_SUM_GG] = (g * g * w).sum()
            kconst[row, sm.K_SUM_G1] = (g_slope * w).sum()
            kconst[row, sm.K_SUM_G1G1] = (g_slope * g_slope * w).sum()
            kconst[row, sm.K_SUM_GG1] = (g * g_slope * w).sum()
            kconst[row, sm.K_SIGMA] = sigma
            kconst[row, sm.K_SIZE] = n
            kern1d[row, :n] = g
            dkern1d[row, :n] = g_slope
            wt1d[row, :n] = w
            dxx1d[row, :n] = sign * offsets
        return kconst, kern1d, dkern1d, wt1d, dxx1d


# --------------------------------------------------------------------------------------------
# Peaks
# --------------------------------------------------------------------------------------------


def _circular_footprint(radius):
    """Neighbourhood of ``find_peaks(min_separation=radius)``, as photutils defines it.

    Returns ``(inside, offset, square_half)``: ``inside[j, i]`` is True where the grid point
    ``(g[j], g[i])``, ``g = arange(-radius, radius + 1)``, lies within ``radius`` of the origin
    (for a non-integer radius the grid is not centred on a pixel and has an even length);
    ``offset`` places the window's first row and column relative to the tested pixel; and
    ``square_half`` is the half side of the largest odd square inside that circle (at least
    3 pixels wide), whose maximum the peak must also equal.
    """
    grid = np.arange(-radius, radius + 1)
    inside = grid[None, :] ** 2 + grid[:, None] ** 2 <= radius ** 2
    # an even grid puts the circle's centre half a pixel off the square's centre pixel
    off_centre = 0.5 if grid.size % 2 == 0 else 0.0
    square_half = max(int(np.floor(radius / np.sqrt(2) - off_centre)), 1)
    return inside, -(grid.size // 2), square_half


def _peak_map(bk, img, thr, scalar_thr, mask, border, footprint, offset, zero_rule, insc_half):
    """Boolean peak map on the backend's device."""
    if bk.name == "cpu" and img.ndim == 2 and img.dtype.kind == "f" and img.size:
        has_nan = bool(kstar.any_nan(img))        # one early-exit sweep, no temporary
    else:
        has_nan = bool(bk.xp.isnan(img).any())
    nan_value = float(bk.xp.nanmin(img)) if has_nan else 0.0
    use_mask = mask is not None
    by, bx = border
    fp = np.ascontiguousarray(footprint, dtype=np.bool_)
    if bk.name == "cpu":
        m = mask if use_mask else np.zeros((1, 1), dtype=bool)
        return kstar.peak_mask_cpu(img, np.ascontiguousarray(thr), scalar_thr, m, use_mask,
                                   nan_value, by, bx, fp, offset, offset, zero_rule, insc_half)
    xp = bk.xp
    m = mask if use_mask else xp.zeros((1, 1), dtype=bool)
    out = xp.zeros(img.shape, dtype=bool)
    kernel, _ = kstar.cuda_star_kernels("cudasim" if bk.name == "cudasim" else "cuda")
    launch(kernel, bk, tuple(img.shape), img, bk.asarray(thr), bool(scalar_thr), m, use_mask,
           np.float64(nan_value), np.int64(by), np.int64(bx), bk.asarray(fp), np.int64(offset),
           np.int64(offset), np.int64(zero_rule), np.int64(insc_half), out)
    return out


def _border_pair(border_width, shape):
    if border_width is None:
        return (0, 0)
    by, bx = (border_width, border_width) if np.ndim(border_width) == 0 else border_width
    if by < 0 or bx < 0:
        raise InvalidParameterError(f"border_width must not be negative, got {border_width!r}")
    return int(by), int(bx)


def _peaks(bk, img, thr, scalar_thr, mask, border, box_size, footprint, min_separation):
    if min_separation is not None and min_separation > 0:
        fp, off, insc = _circular_footprint(min_separation)
        peaks = _peak_map(bk, img, thr, scalar_thr, mask, border, fp, off, 1, insc)
    else:
        if footprint is None:
            footprint = np.ones((box_size, box_size), dtype=bool)
        fp = native_array(footprint, dtype=bool)
        if fp.ndim != 2 or fp.shape[0] != fp.shape[1]:
            raise InvalidParameterError(
                f"footprint must be a square 2-D array, got shape {fp.shape}")
        peaks = _peak_map(bk, img, thr, scalar_thr, mask, border, fp, -(fp.shape[0] // 2), 0,
                          -1)
    ys, xs = bk.xp.nonzero(peaks)
    return bk.to_host(xs).astype(np.int64), bk.to_host(ys).astype(np.int64)


def find_peaks(data, threshold, *, box_size=3, footprint=None, mask=None, border_width=None,
               n_peaks=np.inf, min_separation=None, npeaks=None, backend=None):
    """Local maxima above a threshold (photutils ``find_peaks``, without centroiding).

    Parameters
    ----------
    data : array_like, shape (ny, nx)
    threshold : float or array_like, shape (ny, nx)
    box_size : int, optional
        Side of the square neighbourhood (ignored with ``footprint`` or ``min_separation``).
    footprint : array_like of bool, optional
    mask : array_like of bool, optional
    border_width : int or (int, int), optional
        Peaks within this many pixels of the edges are dropped.
    n_peaks : int, optional
        Keep the brightest ``n_peaks`` (``npeaks`` is an alias).
    min_separation : float, optional
        Circular neighbourhood of this radius.
    backend : str, Backend or None, keyword-only

    Returns
    -------
    QTable or None
        ``id, x_peak, y_peak, peak_value`` in raster order; None (with a
        :class:`NoDetectionsWarning`) if no peak is found.
    """
    bk = get_backend(backend)
    img = as_image(strip_unit(data)[0], "data", bk)
    if npeaks is not None:
        n_peaks = npeaks
    if min_separation is not None and min_separation < 0:
        raise InvalidParameterError(
            f"min_separation must not be negative, got {min_separation!r}")
    if bk.name == "cpu" and img.ndim == 2 and img.size and img.dtype.kind in "fiub":
        constant = bool(kstar.all_equal_first(img))   # stops at the first differing value
    else:
        constant = bool((img == img.ravel()[0]).all())
    if constant:
        warnings.warn("find_peaks: data is constant, so it has no local maximum",
                      NoDetectionsWarning, stacklevel=2)
        return None
    thr, scalar_thr = _threshold_operand(threshold, img.dtype, bk, img.shape)
    bmask = as_mask(mask, "mask", bk, img.shape)
    xs, ys = _peaks(bk, img, thr, scalar_thr, bmask, _border_pair(border_width, img.shape),
                    box_size, footprint, min_separation)
    if xs.size == 0:
        warnings.warn("find_peaks: no local maximum lies above the threshold",
                      NoDetectionsWarning, stacklevel=2)
        return None
    values = bk.to_host(img)[ys, xs]
    if xs.size > n_peaks:
        idx = np.argsort(values)[::-1][:int(n_peaks)]
        xs, ys, values = xs[idx], ys[idx], values[idx]
    table = QTable()
    table["id"] = np.arange(xs.size) + 1
    table["x_peak"] = xs
    table["y_peak"] = ys
    table["peak_value"] = values
    return table


# --------------------------------------------------------------------------------------------
# DAOStarFinder
# --------------------------------------------------------------------------------------------

_DAO_COLUMNS = ("id", "x_centroid", "y_centroid", "sharpness", "roundness1", "roundness2",
                "n_pixels", "peak", "flux", "mag", "daofind_mag")


def _range(lo, hi, pair, default):
    if lo is None and hi is None:
        return pair if pair is not None else None
    base = pair if pair is not None else default
    return (base[0] if lo is None else lo, base[1] if hi is None else hi)


class _StarFinderBase:
    """Steps shared by the star finders: the correlation with the zero-sum Gaussian kernel
    (pixels beyond the edges are 0) and the peak search above ``threshold_eff`` (or the given
    ``xycoords``). Subclasses set ``kernel``, ``threshold_eff``, ``exclude_border``,
    ``min_separation``, ``xycoords`` and ``backend``."""

    def __call__(self, data, mask=None):
        return self.find_stars(data, mask=mask)

    def _convolve(self, img):
        ndi = ndimage_module(self.backend)
        kern = self.kernel.data if self.backend.name != "gpu" else self.backend.asarray(
            self.kernel.data)
        return ndi.convolve(img, kern, mode="constant", cval=0.0)

    def _positions(self, conv, mask):
        bk = self.backend
        if self.xycoords is not None:
            return self.xycoords[:, 0], self.xycoords[:, 1]
        thr = np.asarray(self.threshold_eff, dtype=np.float64)
        if thr.ndim == 0:
            thr_arr, scalar = thr.reshape(1, 1), True
        else:
            if thr.shape != tuple(conv.shape):
                raise InvalidInputError(
                    f"threshold array shape {thr.shape} differs from the data's {conv.shape}")
            thr_arr, scalar = thr, False
        if bool((conv == conv.ravel()[0]).all()):
            return None
        border = ((self.kernel.y_radius, self.kernel.x_radius) if self.exclude_border
                  else (0, 0))
        if self.min_separation == 0:
            xs, ys = _peaks(bk, conv, thr_arr, scalar, mask, border, 3,
                            self.kernel.mask.astype(bool), None)
        else:
            xs, ys = _peaks(bk, conv, thr_arr, scalar, mask, border, 3, None,
                            self.min_separation)
        if xs.size == 0:
            return None
        return xs.astype(float), ys.astype(float)



def _validate_n_brightest(n_brightest):
    if n_brightest is not None and (isinstance(n_brightest, bool) or n_brightest <= 0
                                    or int(n_brightest) != n_brightest):
        raise InvalidParameterError("n_brightest must be a positive integer")
    return None if n_brightest is None else int(n_brightest)


def _validate_xycoords(xycoords):
    if xycoords is None:
        return None
    xycoords = native_array(xycoords, dtype=np.float64)
    if xycoords.ndim != 2 or xycoords.shape[1] != 2:
        raise InvalidInputError(
            f"xycoords must hold (x, y) rows, shape (n, 2); got shape {xycoords.shape}")
    return xycoords


class DAOStarFinder(_StarFinderBase):
    """DAOFIND point-source finder (photutils ``DAOStarFinder``).

    Parameters
    ----------
    threshold : float or array_like
        Detection threshold in data units (per pixel for an array), scaled by the kernel's
        ``rel_err`` when ``scale_threshold``.
    fwhm : float
        Gaussian FWHM of the kernel major axis (pixels).
    ratio, theta, sigma_radius : float, optional
        Kernel axis ratio, angle (degrees) and truncation (sigmas).
    sharplo, sharphi, roundlo, roundhi : float, optional
        photutils 2 bounds; override ``sharpness_range``/``roundness_range``.
    exclude_border : bool, optional
        Drop peaks closer to the edge than the kernel radius.
    n_brightest : int, optional
        Keep the brightest sources by ``flux`` (``brightest`` is an alias).
    peak_max : float, optional
        Drop sources whose ``peak`` exceeds this value (``peakmax`` is an alias).
    xycoords : array_like, shape (n, 2), optional
        Measure these (x, y) positions instead of searching peaks (photutils' semantics;
        drizzlepac's ``UserStarFinder`` is :func:`user_star_finder`).
    min_separation : float, optional
        Minimum peak separation (default ``2.5 * fwhm``; 0 uses the kernel footprint).
    scale_threshold : bool, optional
    sharpness_range, roundness_range : (float, float) or None, keyword-only
        Defaults (0.2, 1.0) and (-1.0, 1.0).
    backend : str, Backend or None, keyword-only
    """

    def __init__(self, threshold, fwhm, ratio=1.0, theta=0.0, sigma_radius=1.5, sharplo=None,
                 sharphi=None, roundlo=None, roundhi=None, exclude_border=False,
                 n_brightest=None, peak_max=None, xycoords=None, min_separation=None,
                 scale_threshold=True, *, sharpness_range=(0.2, 1.0),
                 roundness_range=(-1.0, 1.0), brightest=None, peakmax=None, backend=None):
        if np.ndim(fwhm) != 0:
            raise InvalidParameterError(f"fwhm must be a single number, got {fwhm!r}")
        self.threshold = threshold
        self.fwhm = fwhm
        self.ratio = ratio
        self.theta = theta % 360.0
        self.sigma_radius = sigma_radius
        self.sharpness_range = _range(sharplo, sharphi, sharpness_range, (0.2, 1.0))
        self.roundness_range = _range(roundlo, roundhi, roundness_range, (-1.0, 1.0))
        self.exclude_border = exclude_border
        self.n_brightest = _validate_n_brightest(
            brightest if n_brightest is None else n_brightest)
        self.peak_max = peakmax if peak_max is None else peak_max
        if min_separation is not None and min_separation < 0:
            raise InvalidParameterError(
                f"min_separation must not be negative, got {min_separation!r}")
        self.min_separation = 2.5 * fwhm if min_separation is None else min_separation
        self.xycoords = _validate_xycoords(xycoords)
        self.scale_threshold = scale_threshold
        self.kernel = StarFinderKernel(fwhm, ratio=ratio, theta=self.theta,
                                       sigma_radius=sigma_radius)
        thr = native_array(strip_unit(threshold)[0], dtype=np.float64)
        self.threshold_eff = thr * self.kernel.rel_err if scale_threshold else thr
        self.backend = get_backend(backend)

    def __repr__(self) -> str:
        thr = (self.threshold if np.ndim(self.threshold) == 0
               else f"<array; shape={np.shape(self.threshold)}>")
        return (f"DAOStarFinder(threshold={thr}, fwhm={self.fwhm}, ratio={self.ratio}, "
                f"theta={self.theta}, sigma_radius={self.sigma_radius}, "
                f"sharpness_range={self.sharpness_range}, "
                f"roundness_range={self.roundness_range}, "
                f"exclude_border={self.exclude_border}, n_brightest={self.n_brightest}, "
                f"peak_max={self.peak_max}, min_separation={self.min_separation}, "
                f"scale_threshold={self.scale_threshold}, backend={self.backend.name!r})")

    def _measure(self, img, conv, xpos, ypos):
        bk = self.backend
        xi = np.round(xpos).astype(np.int64)
        yi = np.round(ypos).astype(np.int64)
        kconst, kern1d, dkern1d, wt1d, dxx1d = self.kernel.marginal_constants()
        kmask = self.kernel.mask.astype(np.float64)
        npix = float(self.kernel.n_pixels)
        if bk.name == "cpu":
            return kstar.dao_measure_cpu(img, conv, xi, yi, kmask, npix, kconst, kern1d,
                                         dkern1d, wt1d, dxx1d)
        out = bk.xp.empty((xi.size, kstar.N_STAR))
        _, kernel = kstar.cuda_star_kernels("cudasim" if bk.name == "cudasim" else "cuda")
        a = bk.asarray
        launch(kernel, bk, xi.size, img, conv, a(xi), a(yi), a(kmask), np.float64(npix),
               a(kconst), a(kern1d), a(dkern1d), a(wt1d), a(dxx1d), out)
        return bk.to_host(out)

    def _threshold_per_source(self, xpos, ypos):
        thr = np.asarray(self.threshold_eff, dtype=float)
        if thr.ndim < 2:
            return np.full(xpos.size, float(thr))
        return thr[np.round(ypos).astype(int), np.round(xpos).astype(int)]

    # ------------------------------------------------------------------------------ public
    def find_stars(self, data, mask=None):
        """Find and measure stars.

        Parameters
        ----------
        data : array_like, shape (ny, nx)
            Background-subtracted image (host or device).
        mask : array_like of bool, optional
            True where pixels are ignored by the peak search.

        Returns
        -------
        QTable or None
            Columns ``id, x_centroid, y_centroid, sharpness, roundness1, roundness2,
            n_pixels, peak, flux, mag, daofind_mag``; None (with a
            :class:`NoDetectionsWarning`) when no source is found or none passes the filters.
        """
        bk = self.backend
        img = as_image(strip_unit(data)[0], "data", bk)
        bmask = as_mask(mask, "mask", bk, img.shape)
        conv = self._convolve(img)
        pos = self._positions(conv, bmask)
        if pos is None:
            warnings.warn("DAOStarFinder: no peak of the convolved data lies above the "
                          "threshold", NoDetectionsWarning, stacklevel=2)
            return None
        xpos, ypos = np.asarray(pos[0], dtype=float), np.asarray(pos[1], dtype=float)
        stats = self._measure(img, conv, xpos, ypos)
        return self._catalog(stats, xpos, ypos)

    def _catalog(self, stats, xpos, ypos):
        cols = {
            "x_centroid": xpos + stats[:, sm.S_DX],
            "y_centroid": ypos + stats[:, sm.S_DY],
            "hx": stats[:, sm.S_HX],
            "hy": stats[:, sm.S_HY],
            "sharpness": stats[:, sm.S_SHARP],
            "roundness1": stats[:, sm.S_ROUND1],
            "roundness2": stats[:, sm.S_ROUND2],
            "peak": stats[:, sm.S_PEAK],
            "flux": stats[:, sm.S_FLUX],
        }
        thr = self._threshold_per_source(xpos, ypos)
        keep = np.ones(xpos.size, dtype=bool)
        skip_flux = bool(np.all(thr == 0))
        for name, values in cols.items():
            if name == "flux" and skip_flux:
                continue
            keep &= np.isfinite(values)
        if not keep.any():
            warnings.warn("DAOStarFinder: no peak could be measured (every fit gave a "
                          "non-finite value)", NoDetectionsWarning, stacklevel=3)
            return None
        for name, bounds in (("sharpness", self.sharpness_range),
                             ("roundness1", self.roundness_range),
                             ("roundness2", self.roundness_range)):
            if bounds is not None:
                with np.errstate(invalid="ignore"):
                    keep &= (cols[name] >= bounds[0]) & (cols[name] <= bounds[1])
        if self.peak_max is not None:
            keep &= cols["peak"] <= self.peak_max
        if not keep.any():
            warnings.warn(f"DAOStarFinder: {xpos.size} peak(s) found, but none passes the "
                          "sharpness, roundness and peak_max limits",
                          NoDetectionsWarning, stacklevel=3)
            return None
        rows = np.nonzero(keep)[0]
        if self.n_brightest is not None:
            order = np.argsort(cols["flux"][rows])[::-1][:self.n_brightest]
            rows = rows[order]
        conv_peak = stats[rows, sm.S_CONV_PEAK]
        with np.errstate(divide="ignore", invalid="ignore"):
            mag = -2.5 * np.log10(cols["flux"][rows])
            daofind_mag = -2.5 * np.log10(conv_peak / thr[rows])
        table = QTable()
        table["id"] = np.arange(rows.size) + 1
        for name in ("x_centroid", "y_centroid", "sharpness", "roundness1", "roundness2"):
            table[name] = cols[name][rows]
        table["n_pixels"] = np.full(rows.size, self.kernel.data.size)
        table["peak"] = cols["peak"][rows]
        table["flux"] = cols["flux"][rows]
        table["mag"] = mag
        table["daofind_mag"] = daofind_mag
        return table


# --------------------------------------------------------------------------------------------
# IRAFStarFinder
# --------------------------------------------------------------------------------------------

_IRAF_COLUMNS = ("id", "x_centroid", "y_centroid", "fwhm", "sharpness", "roundness",
                 "orientation", "n_pixels", "peak", "flux", "mag")


class IRAFStarFinder(_StarFinderBase):
    """IRAF ``starfind`` point-source finder (photutils ``IRAFStarFinder``).

    Peaks are searched, as by :class:`DAOStarFinder`, in the image correlated with the
    zero-sum circular Gaussian kernel (:class:`StarFinderKernel`, ratio 1), but above
    ``threshold`` itself (not scaled by the kernel's ``rel_err``). Each star is then measured
    with image moments (IRAF ``starfind``; photutils' formulas):

    * cut-out of the kernel's shape centred on the rounded position (0 outside the image);
      ``sky`` = mean of the cut-out outside the kernel footprint;
    * ``c = max(pixel - sky, 0)`` inside the footprint, 0 outside;
    * centroid = first moments of ``c``; ``mu_xx``, ``mu_yy``, ``mu_xy`` its central second
      moments over ``sum c``;
    * ``fwhm = 2 sqrt(ln 2 (mu_xx + mu_yy))``, ``sharpness = fwhm / kernel fwhm``,
      ``roundness = sqrt((mu_xx - mu_yy)**2 + 4 mu_xy**2) / (mu_xx + mu_yy)``,
      ``orientation = atan2(2 mu_xy, mu_xx - mu_yy) / 2`` (degrees in [0, 360)),
      ``peak = max c``, ``flux = sum c``, ``mag = -2.5 log10(flux)``,
      ``n_pixels`` = number of non-zero ``c``.

    Stars with at most one non-zero ``c`` or a non-finite measurement are dropped, then
    those outside ``sharpness_range``/``roundness_range`` (inclusive) or above ``peak_max``;
    ``n_brightest`` keeps the largest fluxes.

    Parameters
    ----------
    threshold : float or array_like, shape (ny, nx)
        Detection threshold on the correlated image (data units).
    fwhm : float
        Gaussian FWHM of the kernel (pixels, > 0).
    sigma_radius : float, optional
        Kernel truncation radius in standard deviations.
    minsep_fwhm : float, optional
        photutils 2's separation in FWHM: ``min_separation = max(2, int(fwhm * minsep_fwhm
        + 0.5))`` when ``min_separation`` is not given.
    sharplo, sharphi, roundlo, roundhi : float, optional
        photutils 2 bounds; override the ends of ``sharpness_range``/``roundness_range``.
    exclude_border : bool, optional
        Drop peaks closer to the edge than the kernel radius.
    n_brightest : int, optional
        Keep the brightest sources by ``flux`` (``brightest`` is an alias).
    peak_max : float, optional
        Drop sources whose ``peak`` exceeds this value (``peakmax`` is an alias).
    xycoords : array_like, shape (n, 2), optional
        Measure these (x, y) positions instead of searching peaks (no threshold applies).
    min_separation : float, optional
        Minimum peak separation (default ``2.5 * fwhm``; 0 uses the kernel footprint).
    sharpness_range, roundness_range : (float, float) or None, keyword-only
        Defaults (0.5, 2.0) and (0.0, 0.2); None disables the cut.
    backend : str, Backend or None, keyword-only

    Raises
    ------
    InvalidParameterError
        For a bad ``fwhm``, ``sigma_radius``, ``minsep_fwhm``, ``min_separation`` or
        ``n_brightest``.
    InvalidInputError
        For ``xycoords`` not of shape (n, 2).

    Notes
    -----
    The sky is summed as NumPy sums it for photutils (pairwise, in float32 for float32 data)
    and everything after it is float64, so results equal photutils' to float64 rounding of
    the moment sums (photutils forms them with matrix products).
    """

    def __init__(self, threshold, fwhm, sigma_radius=1.5, minsep_fwhm=None, sharplo=None,
                 sharphi=None, roundlo=None, roundhi=None, exclude_border=False,
                 n_brightest=None, peak_max=None, xycoords=None, min_separation=None, *,
                 sharpness_range=(0.5, 2.0), roundness_range=(0.0, 0.2), brightest=None,
                 peakmax=None, backend=None):
        if np.ndim(fwhm) != 0:
            raise InvalidParameterError(f"fwhm must be a single number, got {fwhm!r}")
        self.threshold = threshold
        self.fwhm = fwhm
        self.sigma_radius = sigma_radius
        self.sharpness_range = _range(sharplo, sharphi, sharpness_range, (0.5, 2.0))
        self.roundness_range = _range(roundlo, roundhi, roundness_range, (0.0, 0.2))
        self.exclude_border = exclude_border
        self.n_brightest = _validate_n_brightest(
            brightest if n_brightest is None else n_brightest)
        self.peak_max = peakmax if peak_max is None else peak_max
        if minsep_fwhm is not None:
            if minsep_fwhm < 0:
                raise InvalidParameterError(f"minsep_fwhm must be >= 0, got {minsep_fwhm!r}")
            if min_separation is None:
                min_separation = max(2, int(fwhm * minsep_fwhm + 0.5))
        if min_separation is not None and min_separation < 0:
            raise InvalidParameterError(
                f"min_separation must not be negative, got {min_separation!r}")
        self.min_separation = 2.5 * fwhm if min_separation is None else min_separation
        self.xycoords = _validate_xycoords(xycoords)
        self.kernel = StarFinderKernel(fwhm, ratio=1.0, theta=0.0, sigma_radius=sigma_radius)
        self.threshold_eff = native_array(strip_unit(threshold)[0], dtype=np.float64)
        self.backend = get_backend(backend)

    def __repr__(self) -> str:
        thr = (self.threshold if np.ndim(self.threshold) == 0
               else f"<array; shape={np.shape(self.threshold)}>")
        return (f"IRAFStarFinder(threshold={thr}, fwhm={self.fwhm}, "
                f"sigma_radius={self.sigma_radius}, sharpness_range={self.sharpness_range}, "
                f"roundness_range={self.roundness_range}, "
                f"exclude_border={self.exclude_border}, n_brightest={self.n_brightest}, "
                f"peak_max={self.peak_max}, min_separation={self.min_separation}, "
                f"backend={self.backend.name!r})")

    def _measure(self, img, xpos, ypos):
        bk = self.backend
        xi = np.round(xpos).astype(np.int64)
        yi = np.round(ypos).astype(np.int64)
        kmask = self.kernel.mask.astype(np.float64)
        n_sky = int(np.count_nonzero(kmask == 0))
        f32 = img.dtype == np.float32
        if bk.name == "cpu":
            return kstar.iraf_measure_cpu(img, xi, yi, kmask, n_sky, f32)
        out = bk.xp.empty((xi.size, kstar.N_IRAF))
        kernel = kstar.cuda_iraf_kernel("cudasim" if bk.name == "cudasim" else "cuda")
        a = bk.asarray
        launch(kernel, bk, xi.size, img, a(xi), a(yi), a(kmask), np.float64(n_sky),
               bool(f32), out)
        return bk.to_host(out)

    def find_stars(self, data, mask=None):
        """Find and measure stars.

        Parameters
        ----------
        data : array_like, shape (ny, nx)
            Background-subtracted image (host or device).
        mask : array_like of bool, optional
            True where pixels are ignored by the peak search.

        Returns
        -------
        QTable or None
            Columns ``id, x_centroid, y_centroid, fwhm, sharpness, roundness, orientation
            (deg), n_pixels, peak, flux, mag``; None (with a :class:`NoDetectionsWarning`)
            when no source is found or none passes the filters.
        """
        bk = self.backend
        img = as_image(strip_unit(data)[0], "data", bk)
        bmask = as_mask(mask, "mask", bk, img.shape)
        conv = self._convolve(img)
        pos = self._positions(conv, bmask)
        if pos is None:
            warnings.warn("IRAFStarFinder: no peak of the convolved data lies above the "
                          "threshold", NoDetectionsWarning, stacklevel=2)
            return None
        xpos, ypos = np.asarray(pos[0], dtype=float), np.asarray(pos[1], dtype=float)
        stats = self._measure(img, xpos, ypos)
        return self._catalog(stats, xpos, ypos)

    def _catalog(self, stats, xpos, ypos):
        mu_xx, mu_yy, mu_xy = (stats[:, sm.I_MU_XX], stats[:, sm.I_MU_YY],
                               stats[:, sm.I_MU_XY])
        mu_sum = mu_xx + mu_yy
        mu_diff = mu_xx - mu_yy
        with np.errstate(invalid="ignore", divide="ignore"):
            fwhm = 2.0 * np.sqrt(np.log(2.0) * mu_sum)
            cols = {
                "x_centroid": stats[:, sm.I_XC] + (xpos - self.kernel.x_radius),
                "y_centroid": stats[:, sm.I_YC] + (ypos - self.kernel.y_radius),
                "sharpness": fwhm / self.kernel.fwhm,
                "roundness": np.sqrt(mu_diff ** 2 + 4.0 * mu_xy ** 2) / mu_sum,
                "orientation": np.rad2deg(0.5 * np.arctan2(2.0 * mu_xy, mu_diff)) % 360,
                "sky": stats[:, sm.I_SKY],
                "peak": stats[:, sm.I_PEAK],
                "flux": stats[:, sm.I_FLUX],
            }
            keep = stats[:, sm.I_NPIX] > 1
        for values in cols.values():
            keep &= np.isfinite(values)
        if not keep.any():
            warnings.warn("IRAFStarFinder: no peak could be measured (fewer than two positive "
                          "pixels or a non-finite value)", NoDetectionsWarning, stacklevel=3)
            return None
        for name, bounds in (("sharpness", self.sharpness_range),
                             ("roundness", self.roundness_range)):
            if bounds is not None:
                keep &= (cols[name] >= bounds[0]) & (cols[name] <= bounds[1])
        if self.peak_max is not None:
            keep &= cols["peak"] <= self.peak_max
        if not keep.any():
            warnings.warn(f"IRAFStarFinder: {xpos.size} peak(s) found, but none passes the "
                          "sharpness, roundness and peak_max limits",
                          NoDetectionsWarning, stacklevel=3)
            return None
        rows = np.nonzero(keep)[0]
        if self.n_brightest is not None:
            order = np.argsort(cols["flux"][rows])[::-1][:self.n_brightest]
            rows = rows[order]
        table = QTable()
        table["id"] = np.arange(rows.size) + 1
        table["x_centroid"] = cols["x_centroid"][rows]
        table["y_centroid"] = cols["y_centroid"][rows]
        table["fwhm"] = fwhm[rows]
        table["sharpness"] = cols["sharpness"][rows]
        table["roundness"] = cols["roundness"][rows]
        table["orientation"] = cols["orientation"][rows] * u.deg
        table["n_pixels"] = stats[rows, sm.I_NPIX].astype(np.int64)
        table["peak"] = cols["peak"][rows]
        table["flux"] = cols["flux"][rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            table["mag"] = -2.5 * np.log10(cols["flux"][rows])
        return table


# --------------------------------------------------------------------------------------------
# drizzlepac's UserStarFinder
# --------------------------------------------------------------------------------------------

_USER_COLUMNS = ("id", "xcentroid", "ycentroid", "sharpness", "roundness1", "roundness2",
                 "npix", "sky", "peak", "flux", "mag")


def _coords_xy(coords):
    """Integer (x, y) peak positions from a ``find_peaks`` table or an (n, 2) array."""
    names = getattr(coords, "colnames", None)
    if names is not None:
        if "x_peak" not in names or "y_peak" not in names:
            raise InvalidInputError(
                f"coords must be a find_peaks table with x_peak and y_peak columns, got "
                f"columns {names}")
        x, y = np.asarray(coords["x_peak"]), np.asarray(coords["y_peak"])
    else:
        xy = native_array(coords)
        if xy.ndim != 2 or xy.shape[1] != 2:
            raise InvalidInputError(
                f"coords must hold (x, y) rows, shape (n, 2); got shape {xy.shape}")
        x, y = xy[:, 0], xy[:, 1]
    if not (np.all(np.mod(x, 1) == 0) and np.all(np.mod(y, 1) == 0)):
        raise InvalidInputError("coords must be integer peak pixels (x_peak, y_peak)")
    return x.astype(np.int64), y.astype(np.int64)


def user_star_finder(data, coords, fwhm, *, threshold=1e-10, ratio=1.0, theta=0.0,
                     sigma_radius=1.5, sharplo=0.2, sharphi=1.0, roundlo=-1.0, roundhi=1.0,
                     sky=0.0, exclude_border=False, brightest=None, peakmax=None,
                     backend=None):
    """DAOFIND statistics at given peaks, as drizzlepac's ``UserStarFinder`` computes them.

    drizzlepac 3.11's ``haputils.deconvolve_utils.UserStarFinder(fwhm, coords=peaks,
    threshold=..., ...)(data, mask=mask)``, the measurement the HAP point catalog's ``psf``
    algorithm runs on the peaks of its PSF deconvolution. It is not photutils'
    ``DAOStarFinder(xycoords=...)`` (:class:`DAOStarFinder` reproduces that): drizzlepac
    measures the *unconvolved* data in place of the convolved image, so

    * ``sharpness = (peak - mean) / peak`` with ``mean`` the mean of the other footprint
      pixels (Stetson 1987 with the data for the convolved image);
    * ``roundness1`` (SROUND) is formed from the data's quadrants;
    * ``flux = peak / (threshold * rel_err) - sky * npix`` (DAOFIND's old flux, the data
      peak over the effective threshold), ``mag = -2.5 log10(flux)`` (NaN for
      ``flux <= 0``), ``peak`` = data peak - ``sky``;
    * the centroid and ``roundness2`` come from the marginal Gaussian fits of DAOFIND, as
      in :class:`DAOStarFinder`.

    A peak is skipped when its kernel-sized cut-out leaves the image or a marginal fit fails
    (NaN, e.g. a NaN pixel in the cut-out); the limits are exclusive: a star is kept when
    ``sharplo < sharpness < sharphi``, ``roundlo < roundness1, roundness2 < roundhi`` (a NaN
    statistic passes, as in drizzlepac) and ``peak < peakmax``. ``brightest`` keeps the
    largest fluxes in their original order. No threshold is applied to the peaks, and
    drizzlepac ignores the finder's ``mask`` on this path, so there is none here.

    Parameters
    ----------
    data : array_like, shape (ny, nx)
        Image (host or device), e.g. HAP's threshold-subtracted, clipped region.
    coords : Table or array_like
        ``find_peaks`` table (``x_peak``, ``y_peak`` columns) or integer (x, y) rows.
    fwhm : float
        Gaussian FWHM of the kernel (pixels).
    threshold : float, keyword-only
        Only scales ``flux`` (HAP passes 1e-10).
    ratio, theta, sigma_radius : float, keyword-only
        Kernel shape (:class:`StarFinderKernel`).
    sharplo, sharphi, roundlo, roundhi, sky, peakmax : float, keyword-only
        drizzlepac's limits and sky (defaults as drizzlepac's class).
    exclude_border : bool, keyword-only
        As drizzlepac, this moves the reported centroids by minus the kernel radius (its
        padding correction, which the user-position path does not need).
    brightest : int, keyword-only
    backend : str, Backend or None, keyword-only

    Returns
    -------
    astropy.table.Table or None
        Columns ``id, xcentroid, ycentroid, sharpness, roundness1, roundness2, npix, sky,
        peak, flux, mag`` (drizzlepac's names, float64 and int64); None with a
        :class:`NoDetectionsWarning` when no peak is measured or none passes the limits.

    Raises
    ------
    InvalidInputError
        For coords without integer (x, y) peaks.
    InvalidParameterError
        For a bad kernel shape or ``brightest``.

    Notes
    -----
    drizzlepac sums the quadrants of ``roundness1`` in the data's dtype; with float32 data
    its ``roundness1`` carries float32 rounding (we sum in float64). ``peak - sky`` is formed
    in the data's dtype, as drizzlepac's NumPy scalars do; every other column is float64 in
    both.
    """
    from astropy.table import Table

    bk = get_backend(backend)
    if np.ndim(threshold) != 0:
        raise InvalidParameterError("threshold must be a single number")
    brightest = _validate_n_brightest(brightest)
    img = as_image(strip_unit(data)[0], "data", bk)
    kernel = StarFinderKernel(fwhm, ratio=ratio, theta=theta, sigma_radius=sigma_radius)
    xs, ys = _coords_xy(coords)
    ny, nx = img.shape
    inside = ((xs - kernel.x_radius >= 0) & (xs + kernel.x_radius + 1 <= nx)
              & (ys - kernel.y_radius >= 0) & (ys + kernel.y_radius + 1 <= ny))
    xs, ys = xs[inside], ys[inside]
    if xs.size == 0:
        warnings.warn("user_star_finder: no peak has a cut-out inside the image",
                      NoDetectionsWarning, stacklevel=2)
        return None
    finder = DAOStarFinder(threshold, fwhm, ratio=ratio, theta=theta,
                           sigma_radius=sigma_radius, backend=bk)
    stats = finder._measure(img, img, xs.astype(float), ys.astype(float))
    dx, dy = stats[:, sm.S_DX], stats[:, sm.S_DY]
    sharp, round1, round2 = stats[:, sm.S_SHARP], stats[:, sm.S_ROUND1], stats[:, sm.S_ROUND2]
    # drizzlepac subtracts the sky from the data's own scalar: in its dtype (NumPy 2 rules)
    dtype = np.dtype(img.dtype)
    peak = (stats[:, sm.S_PEAK].astype(dtype) - dtype.type(sky)).astype(np.float64)
    npix = kernel.data.size
    flux = stats[:, sm.S_CONV_PEAK] / (threshold * kernel.rel_err) - sky * npix
    with np.errstate(invalid="ignore"):
        keep = ~(np.isnan(dx) | np.isnan(stats[:, sm.S_HX]) | np.isnan(dy)
                 | np.isnan(stats[:, sm.S_HY]))
        keep &= ~((sharp <= sharplo) | (sharp >= sharphi))
        keep &= ~((round1 <= roundlo) | (round1 >= roundhi))
        keep &= ~((round2 <= roundlo) | (round2 >= roundhi))
        if peakmax is not None:
            keep &= ~(peak >= peakmax)
    rows = np.nonzero(keep)[0]
    if rows.size == 0:
        warnings.warn("user_star_finder: peaks were measured, but none passes the sharpness "
                      "and roundness limits", NoDetectionsWarning, stacklevel=2)
        return None
    if brightest is not None:
        rows = rows[np.sort(np.argsort(flux[rows])[-brightest:])]
    shift_x = kernel.x_radius if exclude_border else 0
    shift_y = kernel.y_radius if exclude_border else 0
    table = Table()
    table["id"] = np.arange(rows.size) + 1
    table["xcentroid"] = (xs[rows] - shift_x) + dx[rows]
    table["ycentroid"] = (ys[rows] - shift_y) + dy[rows]
    table["sharpness"] = sharp[rows]
    table["roundness1"] = round1[rows]
    table["roundness2"] = round2[rows]
    table["npix"] = np.full(rows.size, npix, dtype=np.int64)
    table["sky"] = np.full(rows.size, float(sky))
    table["peak"] = peak[rows]
    table["flux"] = flux[rows]
    with np.errstate(divide="ignore", invalid="ignore"):
        table["mag"] = np.where(flux[rows] > 0, -2.5 * np.log10(flux[rows]), np.nan)
    return table
