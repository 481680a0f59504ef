"""2-D background and rms maps (photutils ``Background2D``) and their estimators.

The image is tiled by boxes from the origin (the last row and column may be partial). In each
box the finite, unmasked pixels are sigma-clipped (astropy's fast path: median centre, std
spread, float64 bounds), and a background and an rms estimator give one mesh value; boxes with
too few surviving pixels (``exclude_percentile``) are filled by inverse-distance interpolation
from their 10 nearest good boxes. The meshes are median-filtered (``filter_size``) and
expanded to full resolution with a cubic spline (``scipy.ndimage.zoom``, ``grid_mode=True``,
``mode='reflect'``), clipped to the mesh range; ``coverage_mask`` pixels get ``fill_value``.

Backends: ``cpu`` computes the boxes in parallel (one ``prange`` iteration per box) and the
spline as two sparse 4-tap passes; ``gpu``/``cudasim`` compute one box per CUDA thread (the
same code) and the spline as two dense matrix products on the device. The small mesh steps
(interpolation of bad boxes, median filter) run on the host.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from scipy.spatial import cKDTree

from ..errors import InvalidInputError, InvalidParameterError
from ..kernels.detection import stats as kstats
from ..kernels.detection import zoom as kzoom
from ._common import as_image, as_mask, dtype_of, get_backend, launch, strip_unit

__all__ = [
    "Background2D",
    "SExtractorBackground",
    "MedianBackground",
    "MeanBackground",
    "MMMBackground",
    "StdBackgroundRMS",
    "MADStdBackgroundRMS",
]


class _Estimator:
    """Base of the estimator strategies (configuration only; the work is in the kernels)."""

    _id = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SExtractorBackground(_Estimator):
    """``2.5 median - 1.5 mean``, or the median when ``|mean - median| / std >= 0.3``."""

    _id = kstats.BKG_SEXTRACTOR


class MedianBackground(_Estimator):
    """Median of the clipped box."""

    _id = kstats.BKG_MEDIAN


class MeanBackground(_Estimator):
    """Mean of the clipped box."""

    _id = kstats.BKG_MEAN


class MMMBackground(_Estimator):
    """DAOPHOT mode estimate ``3 median - 2 mean``."""

    _id = kstats.BKG_MMM


class StdBackgroundRMS(_Estimator):
    """Standard deviation of the clipped box."""

    _id = kstats.RMS_STD


class MADStdBackgroundRMS(_Estimator):
    """``1.4826 * MAD`` of the clipped box."""

    _id = kstats.RMS_MADSTD


_BKG_BY_NAME = {cls.__name__: cls._id for cls in (SExtractorBackground, MedianBackground,
                                                  MeanBackground, MMMBackground)}
_RMS_BY_NAME = {cls.__name__: cls._id for cls in (StdBackgroundRMS, MADStdBackgroundRMS)}


def _estimator_id(estimator, table, default, kind):
    if estimator is None:
        return default
    name = type(estimator).__name__
    if name not in table:
        raise InvalidParameterError(
            f"unsupported {kind} estimator {name}; choose one of {sorted(table)}")
    return table[name]


def _as_pair(name, value, shape=None):
    pair = np.atleast_1d(value).astype(int)
    if pair.size == 1:
        pair = np.array([pair[0], pair[0]])
    if pair.size != 2 or np.any(pair <= 0):
        raise InvalidParameterError(f"{name} must be one or two positive integers")
    if shape is not None and np.any(pair > np.asarray(shape)):
        raise InvalidParameterError(f"{name} {tuple(pair)} is larger than the data {shape}")
    return int(pair[0]), int(pair[1])


def _clip_params(sigma_clip):
    """(do_clip, sigma_lower, sigma_upper, maxiters) from an astropy SigmaClip or None."""
    if sigma_clip is None:
        return False, 3.0, 3.0, 1
    cenfunc = getattr(sigma_clip, "cenfunc", "median")
    stdfunc = getattr(sigma_clip, "stdfunc", "std")
    if cenfunc != "median" or stdfunc != "std":
        raise InvalidParameterError("Background2D supports sigma clipping with median/std only")
    maxiters = sigma_clip.maxiters
    iters = -1 if maxiters is None or (isinstance(maxiters, float) and math.isinf(maxiters)) \
        else int(maxiters)
    return True, float(sigma_clip.sigma_lower), float(sigma_clip.sigma_upper), iters


class _DefaultSigmaClip:
    """Default clipping of Background2D: 3 sigma, 10 iterations (astropy ``SigmaClip``)."""

    cenfunc = "median"
    stdfunc = "std"
    sigma_lower = 3.0
    sigma_upper = 3.0
    maxiters = 10

    def __repr__(self) -> str:
        return "SigmaClip(sigma=3.0, maxiters=10)"


_SIGMA_CLIP = _DefaultSigmaClip()


@numba.njit(cache=True, nogil=True)
def _nanmedian_filter(mesh, fy, fx):
    """``generic_filter(mesh, nanmedian, size=(fy, fx), mode='constant', cval=nan)``."""
    ny, nx = mesh.shape
    out = np.empty((ny, nx))
    buf = np.empty(fy * fx)
    hy = fy // 2
    hx = fx // 2
    for j in range(ny):
        for i in range(nx):
            n = 0
            for jj in range(j - hy, j - hy + fy):
                for ii in range(i - hx, i - hx + fx):
                    if 0 <= jj < ny and 0 <= ii < nx:
                        v = mesh[jj, ii]
                        if not math.isnan(v):
                            buf[n] = v
                            n += 1
            if n == 0:
                out[j, i] = np.nan
            else:
                out[j, i] = np.median(buf[:n])
    return out


def _interpolate_bad_boxes(mesh):
    """Fill NaN boxes by photutils' Shepard IDW (10 neighbours, power 1) on box indices."""
    bad = np.isnan(mesh)
    if not bad.any():
        return mesh
    good_yx = np.column_stack(np.nonzero(~bad))
    values = mesh[~bad]
    tree = cKDTree(good_yx, leafsize=10)
    bad_yx = np.column_stack(np.nonzero(bad))
    k = min(10, good_yx.shape[0])
    dist, idx = tree.query(bad_yx, k=k)
    if k == 1:
        filled = values[idx]
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            weights = 1.0 / dist
            interp = np.sum(weights * values[idx], axis=1) / np.sum(weights, axis=1)
        confused = dist[:, 0] <= 1.0e-12
        interp[confused] = values[idx[confused, 0]]
        filled = interp
    out = mesh.copy()
    out[bad] = filled
    return out


class Background2D:
    """2-D background and background rms (photutils ``Background2D``).

    Parameters
    ----------
    data : array_like, shape (ny, nx)
        Image (host or device). Integer images are converted to float32, as photutils does.
    box_size : int or (int, int)
        Box size (ny, nx).
    mask, coverage_mask : array_like of bool, optional, keyword-only
        Pixels excluded from the statistics; ``coverage_mask`` pixels also get ``fill_value``
        in the output maps.
    fill_value : float, keyword-only
    exclude_percentile : float in [0, 100], keyword-only
        Boxes with more than this percentage of rejected pixels are replaced by interpolation.
    filter_size : int or (int, int), keyword-only
        Median-filter window of the mesh (odd sizes).
    filter_threshold : float, optional, keyword-only
        Filter only boxes whose background exceeds this value.
    sigma_clip : astropy SigmaClip or None, keyword-only
        Median/std clipping only; default 3 sigma, 10 iterations.
    bkg_estimator, bkg_rms_estimator : estimator, keyword-only
        Ours or photutils' (by class name): SExtractor (default), Median, Mean, MMM; Std
        (default), MADStd. ``bkgrms_estimator`` is an alias.
    interpolator : None, keyword-only
        Only the default cubic zoom interpolator is supported.
    backend : str, Backend or None, keyword-only

    Raises
    ------
    InvalidInputError
        No finite data, every pixel masked, or every box rejected.
    """

    def __init__(self, data, box_size, *, mask=None, coverage_mask=None, fill_value=0.0,
                 exclude_percentile=10.0, filter_size=(3, 3), filter_threshold=None,
                 sigma_clip=_SIGMA_CLIP, bkg_estimator=None, bkg_rms_estimator=None,
                 interpolator=None, bkgrms_estimator=None, backend=None):
        bk = get_backend(backend)
        self._backend = bk
        values, self._unit = strip_unit(data)
        # integer and boolean images become float32, as photutils does
        arr = as_image(values, "data", bk,
                       dtype=None if dtype_of(values).kind == "f" else np.float32)
        if interpolator is not None and type(interpolator).__name__ not in (
                "BkgZoomInterpolator", "_BkgZoomInterpolator"):
            raise InvalidParameterError("only the default zoom interpolator is supported")
        if not 0 <= exclude_percentile <= 100:
            raise InvalidParameterError(
                f"exclude_percentile is a percentage in [0, 100], got {exclude_percentile!r}")
        self.box_size = _as_pair("box_size", box_size, arr.shape)
        self.filter_size = _as_pair("filter_size", filter_size)
        if any(s % 2 == 0 for s in self.filter_size):
            raise InvalidParameterError("filter_size must be odd")
        self.fill_value = fill_value
        self.exclude_percentile = exclude_percentile
        self.filter_threshold = filter_threshold
        self.sigma_clip = sigma_clip
        if bkg_rms_estimator is None:
            bkg_rms_estimator = bkgrms_estimator
        self.bkg_estimator = bkg_estimator if bkg_estimator is not None else \
            SExtractorBackground()
        self.bkg_rms_estimator = bkg_rms_estimator if bkg_rms_estimator is not None else \
            StdBackgroundRMS()
        self._bkg_id = _estimator_id(bkg_estimator, _BKG_BY_NAME, kstats.BKG_SEXTRACTOR,
                                     "background")
        self._rms_id = _estimator_id(bkg_rms_estimator, _RMS_BY_NAME, kstats.RMS_STD, "rms")
        self._shape = tuple(arr.shape)
        self._dtype = arr.dtype
        m = as_mask(mask, "mask", bk, arr.shape)
        cov = as_mask(coverage_mask, "coverage_mask", bk, arr.shape)
        self.coverage_mask = cov
        self._bkg_stats, self._rms_stats, self._ngood = self._box_stats(arr, m, cov)
        self._cache = {}

    def __repr__(self) -> str:
        return (f"Background2D(shape={self._shape}, box_size={self.box_size}, "
                f"filter_size={self.filter_size}, exclude_percentile={self.exclude_percentile}, "
                f"filter_threshold={self.filter_threshold}, sigma_clip={self.sigma_clip!r}, "
                f"bkg_estimator={self.bkg_estimator!r}, "
                f"bkg_rms_estimator={self.bkg_rms_estimator!r}, "
                f"backend={self._backend.name!r})")

    # ------------------------------------------------------------------------- meshes
    def _box_stats(self, arr, mask, cov):
        bk = self._backend
        xp = bk.xp
        total = None
        if mask is not None and cov is not None:
            total = mask | cov
        elif mask is not None or cov is not None:
            total = mask if mask is not None else cov
        finite = xp.isfinite(arr)
        if not bool(finite.any()):
            raise InvalidInputError("Background2D: data has no finite pixel")
        if total is not None and not bool((finite & ~total).any()):
            raise InvalidInputError(
                "Background2D: mask and coverage_mask leave no finite pixel to estimate from")
        do_clip, lo, hi, iters = _clip_params(self.sigma_clip)
        by, bx = self.box_size
        good = (1 - self.exclude_percentile / 100.0) * by * bx
        as_f32 = arr.dtype == np.float32
        use_mask = total is not None
        if bk.name == "cpu":
            m = total if use_mask else np.zeros((1, 1), dtype=bool)
            bkg, rms, ngood = kstats.box_statistics(arr, m, use_mask, by, bx, lo, hi, iters,
                                                    do_clip, self._bkg_id, self._rms_id, good,
                                                    as_f32)
        else:
            bkg, rms, ngood = self._box_stats_cuda(arr, total, use_mask, lo, hi, iters,
                                                   do_clip, good, as_f32)
        if np.all(np.isnan(bkg)):
            raise InvalidInputError(
                f"Background2D: no box of {self.box_size} keeps more than {good:g} usable "
                f"pixels (exclude_percentile={self.exclude_percentile}); use larger boxes or "
                "a larger exclude_percentile")
        return bkg.astype(self._dtype), rms.astype(self._dtype), ngood

    def _box_stats_cuda(self, arr, mask, use_mask, lo, hi, iters, do_clip, good, as_f32):
        bk = self._backend
        xp = bk.xp
        ny, nx = arr.shape
        by, bx = self.box_size
        nby, nbx = -(-ny // by), -(-nx // bx)
        work = xp.empty((nby * nbx, by * bx))
        scratch = xp.empty((nby * nbx, by * bx))
        bkg = xp.empty((nby, nbx))
        rms = xp.empty((nby, nbx))
        ngood = xp.empty((nby, nbx), dtype=xp.int64)
        kernel = kstats.cuda_box_kernel("cudasim" if bk.name == "cudasim" else "cuda")
        m = mask if use_mask else xp.zeros((1, 1), dtype=bool)
        launch(kernel, bk, nby * nbx, arr, m, bool(use_mask), np.int64(by), np.int64(bx),
               np.float64(lo), np.float64(hi), np.int64(iters), bool(do_clip),
               np.int64(self._bkg_id), np.int64(self._rms_id), np.float64(good), bool(as_f32),
               work, scratch, bkg, rms, ngood)
        return bk.to_host(bkg), bk.to_host(rms), bk.to_host(ngood)

    def _filter(self, mesh):
        if self.filter_size == (1, 1):
            return mesh
        filtered = _nanmedian_filter(mesh.astype(np.float64), *self.filter_size)
        filtered = filtered.astype(mesh.dtype)
        if self.filter_threshold is None:
            return filtered
        bkg_interp = _interpolate_bad_boxes(self._bkg_stats)
        if self.filter_threshold < np.nanmin(self._bkg_stats):
            return filtered
        above = bkg_interp > self.filter_threshold
        if not above.any():
            return mesh
        return np.where(above, filtered, mesh)

    def _mesh(self, name, stats):
        if name not in self._cache:
            self._cache[name] = self._filter(_interpolate_bad_boxes(stats))
        return self._cache[name]

    @property
    def background_mesh(self) -> np.ndarray:
        """Low-resolution background (one value per box), host array."""
        return self._with_unit(self._mesh("bkg", self._bkg_stats))

    @property
    def background_rms_mesh(self) -> np.ndarray:
        """Low-resolution background rms, host array."""
        return self._with_unit(self._mesh("rms", self._rms_stats))

    @property
    def n_pixels_mesh(self) -> np.ndarray:
        """Surviving pixel count of each box."""
        return self._ngood

    npixels_mesh = n_pixels_mesh

    @property
    def n_pixels_map(self) -> np.ndarray:
        """``n_pixels_mesh`` replicated over each box, full resolution."""
        by, bx = self.box_size
        full = np.repeat(np.repeat(self._ngood, by, axis=0), bx, axis=1)
        return full[:self._shape[0], :self._shape[1]]

    npixels_map = n_pixels_map

    @property
    def background_median(self):
        """Median of the background mesh."""
        return self._with_unit(np.median(self._mesh("bkg", self._bkg_stats)))

    @property
    def background_rms_median(self):
        """Median of the background rms mesh."""
        return self._with_unit(np.median(self._mesh("rms", self._rms_stats)))

    # ------------------------------------------------------------------------- full maps
    def _weights(self):
        if "weights" not in self._cache:
            by, bx = self.box_size
            my, mx = self._bkg_stats.shape
            iy, wy = kzoom.axis_weights(my, by, self._shape[0])
            ix, wx = kzoom.axis_weights(mx, bx, self._shape[1])
            self._cache["weights"] = (iy, wy, ix, wx)
        return self._cache["weights"]

    def _expand(self, mesh):
        bk = self._backend
        xp = bk.xp
        lo, hi = float(np.min(mesh)), float(np.max(mesh))
        if hi - lo == 0:
            image = xp.full(self._shape, lo, dtype=self._dtype)
        else:
            coef = kzoom.spline_coefficients(mesh)
            iy, wy, ix, wx = self._weights()
            if bk.name == "cpu":
                image = np.empty(self._shape, dtype=self._dtype)
                kzoom.separable_zoom_cpu(coef, iy, wy, ix, wx, lo, hi, image)
            else:
                dense_y = np.zeros((self._shape[0], coef.shape[0]))
                np.add.at(dense_y, (np.arange(iy.shape[0])[:, None], iy), wy)
                dense_x = np.zeros((self._shape[1], coef.shape[1]))
                np.add.at(dense_x, (np.arange(ix.shape[0])[:, None], ix), wx)
                a = bk.asarray
                image = a(dense_y) @ (a(coef) @ a(dense_x).T)
                image = xp.clip(image, lo, hi).astype(self._dtype)
        if self.coverage_mask is not None:
            image[self.coverage_mask] = self.fill_value
        return image

    @property
    def background(self):
        """Full-resolution background (on the backend's device)."""
        return self._with_unit(self._expand(self._mesh("bkg", self._bkg_stats)))

    @property
    def background_rms(self):
        """Full-resolution background rms (on the backend's device)."""
        return self._with_unit(self._expand(self._mesh("rms", self._rms_stats)))

    def _with_unit(self, values):
        return values if self._unit is None else values * self._unit
