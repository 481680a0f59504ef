"""Point-source finding: local peaks and the DAOFIND algorithm (photutils ``DAOStarFinder``).

:func:`find_peaks` reproduces :func:`photutils.detection.find_peaks` (box, footprint or circular
``min_separation`` neighbourhoods; pixels outside the image count as 0; NaNs are masked).

:class:`DAOStarFinder` reproduces photutils': the image is correlated with a zero-sum,
masked elliptical Gaussian kernel; peaks of the convolved image above
``threshold * kernel.rel_err`` are measured (sharpness, two roundness statistics, marginal
Gaussian fits giving the centroid), filtered and optionally limited to the brightest.
``xycoords`` skips the peak search and measures given positions (drizzlepac's
``UserStarFinder``).

Backends: ``cpu`` runs compiled ``prange`` loops; ``gpu``/``cudasim`` run the same per-pixel
and per-star code as CUDA threads (convolution through :mod:`cupyx.scipy.ndimage` on ``gpu``).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from astropy.stats import gaussian_fwhm_to_sigma
from astropy.table import QTable

from ..errors import InvalidInputError, InvalidParameterError
from ..kernels.detection import _star_math as sm
from ..kernels.detection import starfind as kstar
from ._common import as_image, as_mask, get_backend, launch, strip_unit
from .filters import ndimage_module
from .segmentation import NoDetectionsWarning, _threshold_operand

__all__ = ["DAOStarFinder", "find_peaks", "StarFinderKernel"]


class StarFinderKernel:
    """photutils' DAOFIND kernel: a masked, zero-sum, normalised elliptical Gaussian.

    Parameters
    ----------
    fwhm : float
        FWHM of the major axis (pixels).
    ratio : float
        Minor/major sigma ratio in (0, 1].
    theta : float
        Position angle of the major axis, degrees counter-clockwise from +x.
    sigma_radius : float
        Truncation radius in units of sigma.
    """

    def __init__(self, fwhm, ratio=1.0, theta=0.0, sigma_radius=1.5):
        if np.ndim(fwhm) != 0:
            raise InvalidParameterError("fwhm must be a scalar")
        if not fwhm > 0:
            raise InvalidParameterError("fwhm must be positive")
        if not 0 < ratio <= 1:
            raise InvalidParameterError("ratio must be > 0 and <= 1")
        if not sigma_radius > 0:
            raise InvalidParameterError("sigma_radius must be positive")
        self.fwhm = fwhm
        self.ratio = ratio
        self.theta = theta % 360.0
        self.sigma_radius = sigma_radius
        self.x_sigma = fwhm * gaussian_fwhm_to_sigma
        self.y_sigma = self.x_sigma * ratio
        t = np.deg2rad(self.theta)
        cost, sint = np.cos(t), np.sin(t)
        xs2, ys2 = self.x_sigma ** 2, self.y_sigma ** 2
        a = cost ** 2 / (2.0 * xs2) + sint ** 2 / (2.0 * ys2)
        b = 0.5 * cost * sint * (1.0 / xs2 - 1.0 / ys2)
        c = sint ** 2 / (2.0 * xs2) + cost ** 2 / (2.0 * ys2)
        f = sigma_radius ** 2 / 2.0
        denom = a * c - b ** 2
        nx = 2 * int(max(2, math.sqrt(c * f / denom))) + 1
        ny = 2 * int(max(2, math.sqrt(a * f / denom))) + 1
        self.x_radius = nx // 2
        self.y_radius = ny // 2
        yy, xx = np.mgrid[0:ny, 0:nx]
        dx = xx - self.x_radius
        dy = yy - self.y_radius
        circular = np.sqrt(dx ** 2 + dy ** 2)
        elliptical = a * dx ** 2 + 2.0 * b * dx * dy + c * dy ** 2
        self.mask = np.where((elliptical <= f) | (circular <= 2.0), 1, 0).astype(int)
        self.n_pixels = int(self.mask.sum())
        self.gaussian_kernel_unmasked = np.exp(-elliptical)
        gk = self.gaussian_kernel_unmasked * self.mask
        denom = (gk ** 2).sum() - gk.sum() ** 2 / self.n_pixels
        self.rel_err = 1.0 / np.sqrt(denom)
        self.data = ((gk - gk.sum() / self.n_pixels) / denom) * self.mask
        self.shape = self.data.shape

    def __repr__(self) -> str:
        return (f"StarFinderKernel(fwhm={self.fwhm}, ratio={self.ratio}, theta={self.theta}, "
                f"sigma_radius={self.sigma_radius})")

    def marginal_constants(self):
        """Per-axis constants of the marginal fits: ``(kconst, kern1d, dkern1d, wt1d, dxx1d)``.

        Row 0 is the x axis, row 1 the y axis; vectors are padded to the larger kernel side.
        """
        ky, kx = self.shape
        ycen, xcen = (ky - 1) // 2, (kx - 1) // 2
        xx = xcen - np.abs(np.arange(kx) - xcen) + 1
        yy = ycen - np.abs(np.arange(ky) - ycen) + 1
        xwt, ywt = np.meshgrid(xx, yy)
        size = max(kx, ky)
        kconst = np.zeros((2, sm.N_KCONST))
        kern1d = np.zeros((2, size))
        dkern1d = np.zeros((2, size))
        wt1d = np.zeros((2, size))
        dxx1d = np.zeros((2, size))
        for row, axis in ((0, 1), (1, 0)):
            if axis == 0:
                wt = np.transpose(ywt)[0]
                wts = xwt
                n, centre, sigma = ky, ycen, self.y_sigma
                dxx = np.arange(n) - centre
            else:
                wt = xwt[0]
                wts = ywt
                n, centre, sigma = kx, xcen, self.x_sigma
                dxx = centre - np.arange(n)
            dx = centre - np.arange(n)
            k1 = np.sum(self.gaussian_kernel_unmasked * wts, axis=1 - axis)
            dk = k1 * dx
            kconst[row, sm.K_WT_SUM] = np.sum(wt)
            kconst[row, sm.K_KERN_SUM] = np.sum(k1 * wt)
            kconst[row, sm.K_KERN2_SUM] = np.sum(k1 ** 2 * wt)
            kconst[row, sm.K_DKERN_SUM] = np.sum(dk * wt)
            kconst[row, sm.K_DKERN2_SUM] = np.sum(dk ** 2 * wt)
            kconst[row, sm.K_KERN_DKERN_SUM] = np.sum(k1 * dk * wt)
            kconst[row, sm.K_SIGMA] = sigma
            kconst[row, sm.K_SIZE] = n
            kern1d[row, :n] = k1
            dkern1d[row, :n] = dk
            wt1d[row, :n] = wt
            dxx1d[row, :n] = dxx
        return kconst, kern1d, dkern1d, wt1d, dxx1d


# --------------------------------------------------------------------------------------------
# Peaks
# --------------------------------------------------------------------------------------------


def _circular_footprint(radius):
    """photutils' circular peak footprint: (bool footprint, offset, inscribed half side)."""
    idx = np.arange(-radius, radius + 1)
    size = len(idx)
    xx, yy = np.meshgrid(idx, idx)
    footprint = (xx ** 2 + yy ** 2) <= radius ** 2
    if size % 2 == 0:
        half_side = int(np.floor(radius / np.sqrt(2) - 0.5))
    else:
        half_side = int(np.floor(radius / np.sqrt(2)))
    side = max(2 * half_side + 1, 3)
    return footprint, -(size // 2), side // 2


def _peak_map(bk, img, thr, scalar_thr, mask, border, footprint, offset, zero_rule, insc_half):
    """Boolean peak map on the backend's device."""
    nan_mask = bk.xp.isnan(img)
    nan_value = float(bk.xp.nanmin(img)) if bool(nan_mask.any()) else 0.0
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
        raise InvalidParameterError("border_width must be >= 0")
    return int(by), int(bx)


def _peaks(bk, img, thr, scalar_thr, mask, border, box_size, footprint, min_separation):
    if min_separation is not None and min_separation > 0:
        fp, off, insc = _circular_footprint(min_separation)
        peaks = _peak_map(bk, img, thr, scalar_thr, mask, border, fp, off, 1, insc)
    else:
        if footprint is None:
            footprint = np.ones((box_size, box_size), dtype=bool)
        fp = np.asarray(footprint, dtype=bool)
        if fp.shape[0] != fp.shape[1]:
            raise InvalidParameterError("footprint must be square")
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
        raise InvalidParameterError("min_separation must be >= 0")
    if bool((img == img.ravel()[0]).all()):
        warnings.warn("Input data is constant. No local peaks can be found.",
                      NoDetectionsWarning, stacklevel=2)
        return None
    thr, scalar_thr = _threshold_operand(threshold, img.dtype, bk, img.shape)
    bmask = as_mask(mask, "mask", bk, img.shape)
    xs, ys = _peaks(bk, img, thr, scalar_thr, bmask, _border_pair(border_width, img.shape),
                    box_size, footprint, min_separation)
    if xs.size == 0:
        warnings.warn("No local peaks were found.", NoDetectionsWarning, stacklevel=2)
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


class DAOStarFinder:
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
        Measure these (x, y) positions instead of searching peaks.
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
            raise InvalidParameterError("fwhm must be a scalar value")
        self.threshold = threshold
        self.fwhm = fwhm
        self.ratio = ratio
        self.theta = theta % 360.0
        self.sigma_radius = sigma_radius
        self.sharpness_range = _range(sharplo, sharphi, sharpness_range, (0.2, 1.0))
        self.roundness_range = _range(roundlo, roundhi, roundness_range, (-1.0, 1.0))
        self.exclude_border = exclude_border
        n_brightest = brightest if n_brightest is None else n_brightest
        if n_brightest is not None and (isinstance(n_brightest, bool) or n_brightest <= 0
                                        or int(n_brightest) != n_brightest):
            raise InvalidParameterError("n_brightest must be a positive integer")
        self.n_brightest = None if n_brightest is None else int(n_brightest)
        self.peak_max = peakmax if peak_max is None else peak_max
        if min_separation is not None and min_separation < 0:
            raise InvalidParameterError("min_separation must be >= 0")
        self.min_separation = 2.5 * fwhm if min_separation is None else min_separation
        if xycoords is not None:
            xycoords = np.asarray(xycoords, dtype=float)
            if xycoords.ndim != 2 or xycoords.shape[1] != 2:
                raise InvalidInputError("xycoords must be shaped as an Nx2 array")
        self.xycoords = xycoords
        self.scale_threshold = scale_threshold
        self.kernel = StarFinderKernel(fwhm, ratio=ratio, theta=self.theta,
                                       sigma_radius=sigma_radius)
        thr = strip_unit(threshold)[0]
        self.threshold_eff = (np.asarray(thr) * self.kernel.rel_err if scale_threshold
                              else np.asarray(thr))
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

    def __call__(self, data, mask=None):
        return self.find_stars(data, mask=mask)

    # ------------------------------------------------------------------------------ steps
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
                raise InvalidInputError("a threshold array must have the data's shape")
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
            warnings.warn("No sources were found.", NoDetectionsWarning, stacklevel=2)
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
            warnings.warn("No sources were found.", NoDetectionsWarning, stacklevel=3)
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
            warnings.warn("Sources were found, but none pass the filtering criteria",
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
