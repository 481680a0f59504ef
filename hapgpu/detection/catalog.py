"""Source measurements per segment (photutils ``SourceCatalog``).

:class:`SourceCatalog` computes, in one fused pass over the labelled pixels, the per-label sums
that photutils' properties derive from (area, fluxes, errors, background, extrema and raw
moments up to third order) and derives every other property from them with vectorised NumPy:
centroids, central moments, covariance and ellipse shape, FWHM, orientation, the SExtractor
``C**`` coefficients, and the Kron radius (a compiled per-source pass over the Kron ellipse).

Property names are photutils 3's (``x_centroid``, ``semimajor_axis``, ...); photutils 2's
names (``xcentroid``, ``semimajor_sigma``, ``covar_sigx2``, ``cxx``, ...) are accepted as
aliases, by attribute and in :meth:`SourceCatalog.to_table`. Units follow photutils
(``pix``, ``pix**2``, ``deg``).

The Kron radius and the Kron flux (exact elliptical or circular overlap, photutils 3's
``kron_flux`` / ``kron_flux_err``) are per-source passes over each aperture box.

Backends: ``cpu`` runs a parallel per-label loop; ``gpu``/``cudasim`` run a one-thread-per-
pixel CUDA kernel with atomics for the sums (order-dependent in the last bits) and
one-thread-per-source CUDA kernels for the Kron radius and flux, on the device arrays.
"""

from __future__ import annotations

from typing import NamedTuple

import astropy.units as u
import numpy as np
from astropy.table import QTable

from ..errors import InvalidInputError, InvalidParameterError
from ..kernels.detection import measure as kmeas
from ._common import as_image, as_mask, get_backend, launch, strip_unit
from .segmentation import BoundingBox, as_segmentation_image

__all__ = ["SourceCatalog", "DEFAULT_COLUMNS"]

DEFAULT_COLUMNS = ["label", "x_centroid", "y_centroid", "sky_centroid", "bbox_xmin",
                   "bbox_xmax", "bbox_ymin", "bbox_ymax", "area", "semimajor_axis",
                   "semiminor_axis", "orientation", "eccentricity", "min_value", "max_value",
                   "segment_flux", "segment_flux_err", "kron_flux", "kron_flux_err"]

# photutils 2.x names -> photutils 3 names
_ALIASES = {
    "xcentroid": "x_centroid",
    "ycentroid": "y_centroid",
    "semimajor_sigma": "semimajor_axis",
    "semiminor_sigma": "semiminor_axis",
    "segment_fluxerr": "segment_flux_err",
    "kron_fluxerr": "kron_flux_err",
    "covar_sigx2": "covariance_xx",
    "covar_sigy2": "covariance_yy",
    "covar_sigxy": "covariance_xy",
    "cxx": "ellipse_cxx",
    "cyy": "ellipse_cyy",
    "cxy": "ellipse_cxy",
    "minval_index": "min_value_index",
    "maxval_index": "max_value_index",
    "minval_xindex": "min_value_xindex",
    "minval_yindex": "min_value_yindex",
    "maxval_xindex": "max_value_xindex",
    "maxval_yindex": "max_value_yindex",
    "cutout_minval_index": "cutout_min_value_index",
    "cutout_maxval_index": "cutout_max_value_index",
    "nlabels": "n_labels",
    "localbkg_width": "local_bkg_width",
    "apermask_method": "aperture_mask_method",
    "get_label": "select_label",
    "get_labels": "select_labels",
}

# properties taken from the detection catalog when one is given (photutils' use_detcat)
_FROM_DETECTION = {
    "moments", "moments_central", "cutout_centroid", "centroid", "x_centroid", "y_centroid",
    "bbox", "bbox_xmin", "bbox_xmax", "bbox_ymin", "bbox_ymax", "sky_centroid",
    "sky_centroid_icrs", "segment_area", "area", "equivalent_radius", "inertia_tensor",
    "covariance", "covariance_eigvals", "semimajor_axis", "semiminor_axis", "fwhm",
    "orientation", "eccentricity", "elongation", "ellipticity", "covariance_xx",
    "covariance_yy", "covariance_xy", "ellipse_cxx", "ellipse_cyy", "ellipse_cxy",
    "kron_radius", "_ellipse", "_measured_kron_radius", "_kron_aperture",
}

_METHODS = {"none": kmeas.APERMASK_NONE, "mask": kmeas.APERMASK_MASK,
            "correct": kmeas.APERMASK_CORRECT}


def _validate_kron_params(kron_params):
    params = tuple(float(v) for v in np.atleast_1d(kron_params))
    if len(params) not in (2, 3):
        raise InvalidParameterError(
            f"kron_params takes (scale, minimum radius[, minimum circular radius]), got "
            f"{len(params)} value(s)")
    if params[0] <= 0 or params[1] <= 0:
        raise InvalidParameterError(
            f"the Kron scale and minimum radius must be positive, got {params[:2]}")
    if len(params) == 3 and params[2] < 0:
        raise InvalidParameterError(
            f"the minimum circular Kron radius must not be negative, got {params[2]}")
    return params


def _central_moments(raw, xc, yc):
    """Central moments (p, q <= 3) about (xc, yc) from raw moments, per row."""
    n = raw.shape[0]
    out = np.zeros_like(raw)
    binom = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [1, 2, 1, 0], [1, 3, 3, 1]], dtype=float)
    ypow = np.stack([np.ones(n), -yc, yc * yc, -yc ** 3], axis=1)
    xpow = np.stack([np.ones(n), -xc, xc * xc, -xc ** 3], axis=1)
    for p in range(4):
        for q in range(4):
            total = np.zeros(n)
            for a in range(p + 1):
                for b in range(q + 1):
                    total += (binom[p, a] * binom[q, b] * ypow[:, p - a] * xpow[:, q - b]
                              * raw[:, a, b])
            out[:, p, q] = total
    return out


class _MomentEllipse(NamedTuple):
    """Shape of the moment image of each source (float64 arrays of shape (n,), pixels)."""

    x2: np.ndarray      # variance along x (after widening)
    y2: np.ndarray      # variance along y
    xy: np.ndarray      # x-y covariance
    major2: np.ndarray  # A**2, the larger principal variance
    minor2: np.ndarray  # B**2, the smaller principal variance
    theta: np.ndarray   # position angle of the major axis, radians from +x, counter-clockwise


# SExtractor's smallest variance of a pixel-sized source: a uniform pixel has variance 1/12.
_PIXEL_VARIANCE = 1.0 / 12.0


def _moment_ellipse(mu) -> _MomentEllipse:
    """Variances, principal axes and angle of each source from its central moments.

    Formulas of SExtractor (Bertin & Arnouts 1996, A&AS 117, 393; SExtractor manual,
    "Basic shape parameters"), as photutils' ``SourceCatalog`` applies them:

    * ``x2 = mu_02 / mu_00``, ``y2 = mu_20 / mu_00``, ``xy = mu_11 / mu_00`` with
      ``mu_pq = sum (y - yc)**p (x - xc)**q I``;
    * a source whose covariance determinant ``x2 y2 - xy**2`` is negative is undefined (NaN);
      one thinner than a pixel (determinant below ``(1/12)**2``) has ``1/12``, a uniform
      pixel's variance, added to ``x2`` and ``y2`` until it is not;
    * ``A**2, B**2 = (x2 + y2) / 2 +- sqrt(((x2 - y2) / 2)**2 + xy**2)``, the eigenvalues of
      the covariance (NaN if either is negative);
    * ``theta = atan2(2 xy, x2 - y2) / 2``.

    Parameters
    ----------
    mu : ndarray, float64, shape (n, 4, 4)
        Central moments ``mu[:, p, q]`` (``p`` the power of y).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        x2 = mu[:, 0, 2] / mu[:, 0, 0]
        y2 = mu[:, 2, 0] / mu[:, 0, 0]
        xy = mu[:, 1, 1] / mu[:, 0, 0]
        determinant = x2 * y2 - xy * xy
        undefined = determinant < 0
        x2[undefined] = y2[undefined] = xy[undefined] = np.nan
        thin = determinant < _PIXEL_VARIANCE ** 2
        while np.any(thin):
            x2[thin] += _PIXEL_VARIANCE
            y2[thin] += _PIXEL_VARIANCE
            thin &= x2 * y2 - xy * xy < _PIXEL_VARIANCE ** 2
        mean = 0.5 * (x2 + y2)
        half_split = np.hypot(0.5 * (x2 - y2), xy)
        major2 = mean + half_split
        minor2 = mean - half_split
        negative = (minor2 < 0) | (major2 < 0)
        major2[negative] = minor2[negative] = np.nan
        theta = 0.5 * np.arctan2(2.0 * xy, x2 - y2)
    return _MomentEllipse(x2, y2, xy, major2, minor2, theta)


def _ellipse_equation(major2, minor2, theta):
    """SExtractor's ``(CXX, CYY, CXY)`` of the 1-sigma ellipse
    ``CXX x**2 + CYY y**2 + CXY x y = 1`` (SExtractor manual, "Ellipse parameters")."""
    cos_t, sin_t = np.cos(theta), np.sin(theta)
    cxx = cos_t ** 2 / major2 + sin_t ** 2 / minor2
    cyy = sin_t ** 2 / major2 + cos_t ** 2 / minor2
    cxy = 2.0 * cos_t * sin_t * (1.0 / major2 - 1.0 / minor2)
    return cxx, cyy, cxy


def _bilinear_nearest(image, x, y):
    """``scipy.ndimage.map_coordinates(image, (y, x), order=1, mode='nearest')``."""
    ny, nx = image.shape
    out = np.full(x.shape, np.nan)
    good = np.isfinite(x) & np.isfinite(y)
    xg = np.clip(x[good], 0, nx - 1)
    yg = np.clip(y[good], 0, ny - 1)
    x0 = np.floor(xg).astype(np.int64)
    y0 = np.floor(yg).astype(np.int64)
    fx = xg - x0
    fy = yg - y0
    x1 = np.minimum(x0 + 1, nx - 1)
    y1 = np.minimum(y0 + 1, ny - 1)

    def at(yy, xx):
        return image[yy, xx].astype(np.float64)

    out[good] = ((1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x1))
                 + fy * ((1 - fx) * at(y1, x0) + fx * at(y1, x1)))
    return out


class SourceCatalog:
    """Properties of the sources of a segmentation image (photutils ``SourceCatalog``).

    Parameters
    ----------
    data : array_like, shape (ny, nx)
        Background-subtracted image (host or device).
    segmentation_image : SegmentationImage, photutils SegmentationImage or int array
    convolved_data : array_like, optional
        Image for the centroid and shape (moment) properties; defaults to ``data``.
    error, background : array_like, optional
        Per-pixel 1-sigma error and background, for ``segment_flux_err`` and the
        ``background_*`` properties.
    mask : array_like of bool, optional
        True where pixels are ignored.
    wcs : WCS, optional
        For ``sky_centroid``.
    local_bkg_width : int
        Only 0 is supported.
    aperture_mask_method : {"correct", "mask", "none"}
        How neighbouring segments are treated in the Kron radius and Kron flux.
    kron_params : tuple of 2 or 3 floats
        (scale, minimum radius[, minimum circular radius]), as photutils.
    detection_catalog : SourceCatalog, optional
        Take centroids, shapes and Kron radii from this catalog (forced photometry);
        ``detection_cat`` is accepted as an alias.
    backend : str, Backend or None, keyword-only

    Notes
    -----
    ``to_table()`` without ``columns`` gives photutils 3's default columns, in its order:
    label, x_centroid, y_centroid, sky_centroid, bbox_xmin, bbox_xmax, bbox_ymin, bbox_ymax,
    area, semimajor_axis, semiminor_axis, orientation, eccentricity, min_value, max_value,
    segment_flux, segment_flux_err, kron_flux, kron_flux_err.

    Kron photometry follows photutils 3: the aperture is the moment ellipse scaled by
    ``kron_params[0] * kron_radius`` (or, where the minimum circular radius rule sets the Kron
    radius to 0, the circle of radius ``kron_params[2]``), pixels weighted by their exact
    overlap, neighbouring segments handled per ``aperture_mask_method``, masked and
    non-finite pixels left out. With ``detection_catalog``, centroids, shapes, Kron radii and
    Kron apertures come from the detection catalog (forced photometry) while fluxes, errors,
    extrema and backgrounds are measured on this catalog's images, as photutils does.

    Sums are accumulated in float64. photutils sums float32 data and errors in float32
    (``segment_flux``, ``segment_flux_err``), so for float32 inputs those two columns agree
    to float32 rounding only; every float64 computation (moments, shapes, Kron radius and
    flux, which photutils forms from ``data.astype(float)``) agrees to float64 rounding.

    Not implemented: ``local_bkg_width > 0`` (``local_background`` is 0), ``gini``,
    ``perimeter``, windowed and quadratic centroids, ``flux_radius``, circular photometry and
    ``kron_photometry`` with other ``kron_params``.
    """

    def __init__(self, data, segmentation_image, *, convolved_data=None, error=None, mask=None,
                 background=None, wcs=None, local_bkg_width=0,
                 aperture_mask_method="correct", kron_params=(2.5, 1.4, 0.0),
                 detection_catalog=None, progress_bar=False, detection_cat=None, backend=None):
        bk = get_backend(backend)
        data_host, unit = strip_unit(data)
        arr = as_image(data_host, "data", bk)
        segm = as_segmentation_image(segmentation_image, arr.shape)
        if segm.n_labels == 0:
            raise InvalidInputError(
                "segmentation_image labels no source (every pixel is 0): nothing to measure")
        if local_bkg_width != 0:
            raise InvalidParameterError("only local_bkg_width=0 is supported")
        if aperture_mask_method not in _METHODS:
            raise InvalidParameterError(
                f"aperture_mask_method must be one of {sorted(_METHODS)}")
        det = detection_catalog if detection_catalog is not None else detection_cat
        if det is not None:
            if not isinstance(det, SourceCatalog):
                raise InvalidInputError("detection_catalog must be a hapgpu SourceCatalog")
            if not np.array_equal(det._segm.data, segm.data):
                raise InvalidInputError(
                    "detection_catalog must have the same segmentation image")
            wcs = det.wcs
            aperture_mask_method = det.aperture_mask_method
            kron_params = det.kron_params
        self._backend = bk
        self._data_unit = unit
        self._segm = segm
        self._detcat = det
        self.wcs = wcs
        self.local_bkg_width = 0
        self.aperture_mask_method = aperture_mask_method
        self.kron_params = _validate_kron_params(kron_params)
        self.progress_bar = progress_bar
        self._labels = segm.labels.copy()
        self._bbox = segm.bbox_array.astype(np.int64)
        self._segment_area = segm.areas.astype(float)
        conv = as_image(strip_unit(convolved_data)[0], "convolved_data", bk,
                        shape=arr.shape) if convolved_data is not None else arr
        err = as_image(strip_unit(error)[0], "error", bk,
                       shape=arr.shape) if error is not None else None
        bkg = as_image(strip_unit(background)[0], "background", bk,
                       shape=arr.shape) if background is not None else None
        bmask = as_mask(mask, "mask", bk, arr.shape)
        self._has_error = err is not None
        self._has_background = bkg is not None
        self._acc, self._extrema, self._ext_index = self._measure(arr, conv, err, bkg, bmask)
        self._kron_inputs = (arr, err, bmask)
        self._background_image = bkg
        self._cache = {}
        self.meta = {"local_bkg_width": 0, "aperture_mask_method": aperture_mask_method,
                     "kron_params": self.kron_params}
        self.default_columns = list(DEFAULT_COLUMNS)

    # ------------------------------------------------------------------------- measurement
    def _measure(self, data, conv, err, bkg, mask):
        bk = self._backend
        flags = (1 if err is not None else 0) | (2 if bkg is not None else 0) | (
            4 if mask is not None else 0)
        labels_img = self._segm.data
        if bk.name == "cpu":
            dummy = np.zeros((1, 1), dtype=np.float32)
            return kmeas.measure_cpu(
                np.ascontiguousarray(labels_img), self._labels, self._bbox,
                np.ascontiguousarray(data), np.ascontiguousarray(conv),
                err if err is not None else dummy, bkg if bkg is not None else dummy,
                mask if mask is not None else np.zeros((1, 1), dtype=bool), flags)
        return self._measure_cuda(labels_img, data, conv, err, bkg, mask, flags)

    def _measure_cuda(self, labels_img, data, conv, err, bkg, mask, flags):
        bk = self._backend
        xp = bk.xp
        n = self._labels.size
        row = np.full(int(self._labels.max()) + 1, -1, dtype=np.int64)
        row[self._labels] = np.arange(n)
        d_labels = bk.asarray(labels_img)
        dummy = xp.zeros((1, 1), dtype=xp.float32)
        acc = xp.zeros((n, kmeas.N_ACC))
        vmin = xp.full(n, np.inf)
        vmax = xp.full(n, -np.inf)
        big = np.iinfo(np.int64).max
        imin = xp.full(n, big, dtype=xp.int64)
        imax = xp.full(n, big, dtype=xp.int64)
        d_row = bk.asarray(row)
        d_bbox = bk.asarray(self._bbox)
        d_mask = mask if mask is not None else xp.zeros((1, 1), dtype=bool)
        target = "cudasim" if bk.name == "cudasim" else "cuda"
        sum_kernel, index_kernel = kmeas.cuda_measure_kernels(target)
        launch(sum_kernel, bk, int(d_labels.size), d_labels, d_row, d_bbox, data, conv,
               err if err is not None else dummy, bkg if bkg is not None else dummy, d_mask,
               np.int64(flags), acc, vmin, vmax)
        launch(index_kernel, bk, int(d_labels.size), d_labels, d_row, data, d_mask,
               np.int64(flags), vmin, vmax, imin, imax)
        acc = bk.to_host(acc)
        extrema = np.stack([bk.to_host(vmin), bk.to_host(vmax)], axis=1)
        index = np.stack([bk.to_host(imin), bk.to_host(imax)], axis=1)
        none = index[:, 0] == big
        extrema[none] = np.nan
        index[none] = -1
        return acc, extrema, index

    # ------------------------------------------------------------------------- plumbing
    def __len__(self) -> int:
        return int(self._labels.size)

    def __repr__(self) -> str:
        return (f"SourceCatalog(n_labels={len(self)}, backend={self._backend.name!r}, "
                f"aperture_mask_method={self.aperture_mask_method!r}, "
                f"kron_params={self.kron_params})")

    def __getattr__(self, name):
        alias = _ALIASES.get(name)
        if alias is not None:
            return getattr(self, alias)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __getitem__(self, index) -> "SourceCatalog":
        """Return a catalog of a subset of rows (integer, slice, boolean or index array)."""
        rows = np.arange(len(self))[index]
        rows = np.atleast_1d(rows)
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new._labels = self._labels[rows]
        new._bbox = self._bbox[rows]
        new._segment_area = self._segment_area[rows]
        new._acc = self._acc[rows]
        new._extrema = self._extrema[rows]
        new._ext_index = self._ext_index[rows]
        new._detcat = None if self._detcat is None else self._detcat[rows]
        new._cache = {}
        return new

    def select_labels(self, labels) -> "SourceCatalog":
        """Catalog of the given labels, in the given order."""
        labels = np.atleast_1d(labels)
        self._segm.check_labels(labels)
        sorter = np.argsort(self._labels)
        rows = sorter[np.searchsorted(self._labels, labels, sorter=sorter)]
        return self[rows]

    def select_label(self, label) -> "SourceCatalog":
        """Catalog of a single label."""
        return self.select_labels(label)

    def _cached(self, name, func):
        if self._detcat is not None and name in _FROM_DETECTION:
            return getattr(self._detcat, name)
        if name not in self._cache:
            self._cache[name] = func()
        return self._cache[name]

    def _with_unit(self, values):
        return values if self._data_unit is None else values * self._data_unit

    @property
    def _npix(self):
        return self._acc[:, kmeas.A_NPIX]

    @property
    def _all_masked(self):
        return self._npix == 0

    def _nan_if_masked(self, values):
        values = np.array(values, dtype=float)
        values[self._all_masked] = np.nan
        return values

    # ------------------------------------------------------------------------- identity
    @property
    def label(self) -> np.ndarray:
        """Source labels."""
        return self._labels

    labels = label

    @property
    def n_labels(self) -> int:
        """Number of sources."""
        return len(self)

    @property
    def isscalar(self) -> bool:
        """Always False: rows are returned as arrays."""
        return False

    @property
    def slices(self):
        """Bounding-box slices ``(y, x)`` of each source."""
        return [(slice(int(b[0]), int(b[1]) + 1), slice(int(b[2]), int(b[3]) + 1))
                for b in self._bbox]

    # ------------------------------------------------------------------------- geometry
    @property
    def bbox(self):
        """:class:`~hapgpu.detection.segmentation.BoundingBox` of each source."""
        return self._cached("bbox", lambda: [BoundingBox(int(b[2]), int(b[3]) + 1, int(b[0]),
                                                         int(b[1]) + 1) for b in self._bbox])

    @property
    def bbox_xmin(self) -> np.ndarray:
        """Minimum x index of the bounding box."""
        return self._cached("bbox_xmin", lambda: self._bbox[:, 2].copy())

    @property
    def bbox_xmax(self) -> np.ndarray:
        """Maximum x index of the bounding box (inclusive)."""
        return self._cached("bbox_xmax", lambda: self._bbox[:, 3].copy())

    @property
    def bbox_ymin(self) -> np.ndarray:
        """Minimum y index of the bounding box."""
        return self._cached("bbox_ymin", lambda: self._bbox[:, 0].copy())

    @property
    def bbox_ymax(self) -> np.ndarray:
        """Maximum y index of the bounding box (inclusive)."""
        return self._cached("bbox_ymax", lambda: self._bbox[:, 1].copy())

    @property
    def moments(self) -> np.ndarray:
        """Raw moments ``M[p, q] = sum y**p x**q w`` (bounding-box coordinates), shape (n, 4, 4)."""
        return self._cached("moments", lambda: self._acc[:, kmeas.A_MOM:].reshape(-1, 4, 4))

    @property
    def cutout_centroid(self) -> np.ndarray:
        """(x, y) centroid relative to the bounding box, shape (n, 2)."""
        def compute():
            m = self.moments
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.transpose((m[:, 0, 1] / m[:, 0, 0], m[:, 1, 0] / m[:, 0, 0]))
        return self._cached("cutout_centroid", compute)

    @property
    def centroid(self) -> np.ndarray:
        """(x, y) centroid of the moment image over the segment, shape (n, 2)."""
        return self._cached("centroid", lambda: self.cutout_centroid + np.transpose(
            (self._bbox[:, 2], self._bbox[:, 0])))

    @property
    def x_centroid(self) -> np.ndarray:
        """x centroid (pixels, 0-based)."""
        return self._cached("x_centroid", lambda: self.centroid[:, 0].copy())

    @property
    def y_centroid(self) -> np.ndarray:
        """y centroid (pixels, 0-based)."""
        return self._cached("y_centroid", lambda: self.centroid[:, 1].copy())

    @property
    def sky_centroid(self):
        """Sky position of the centroid (None values without a WCS)."""
        def compute():
            if self.wcs is None:
                return np.array([None] * len(self))
            return self.wcs.pixel_to_world(self.x_centroid, self.y_centroid)
        return self._cached("sky_centroid", compute)

    @property
    def sky_centroid_icrs(self):
        """Sky position of the centroid in ICRS."""
        def compute():
            sky = self.sky_centroid
            return sky if self.wcs is None else sky.icrs
        return self._cached("sky_centroid_icrs", compute)

    @property
    def moments_central(self) -> np.ndarray:
        """Central moments about the centroid, shape (n, 4, 4)."""
        def compute():
            cc = self.cutout_centroid
            return _central_moments(self.moments, cc[:, 0], cc[:, 1])
        return self._cached("moments_central", compute)

    @property
    def _ellipse(self) -> "_MomentEllipse":
        return self._cached("_ellipse", lambda: _moment_ellipse(self.moments_central))

    @property
    def covariance(self):
        """Covariance matrix ``[[x2, xy], [xy, y2]]`` of the moment image (pix**2), (n, 2, 2).

        Second central moments over ``mu_00``, widened for thin sources as described in
        :func:`_moment_ellipse`.
        """
        def compute():
            e = self._ellipse
            return np.stack([e.x2, e.xy, e.xy, e.y2], axis=1).reshape(-1, 2, 2) * u.pix ** 2
        return self._cached("covariance", compute)

    @property
    def covariance_eigvals(self):
        """Principal variances ``(A**2, B**2)``, largest first (pix**2), shape (n, 2)."""
        return self._cached("covariance_eigvals", lambda: np.stack(
            [self._ellipse.major2, self._ellipse.minor2], axis=1) * u.pix ** 2)

    @property
    def semimajor_axis(self):
        """1-sigma semimajor axis ``A`` of the moment ellipse (pix)."""
        return self._cached("semimajor_axis", lambda: np.sqrt(self._ellipse.major2) * u.pix)

    @property
    def semiminor_axis(self):
        """1-sigma semiminor axis ``B`` of the moment ellipse (pix)."""
        return self._cached("semiminor_axis", lambda: np.sqrt(self._ellipse.minor2) * u.pix)

    @property
    def fwhm(self):
        """Circularised FWHM, ``2 sqrt(ln 2 (A**2 + B**2))`` (pix), photutils' definition."""
        return self._cached("fwhm", lambda: 2.0 * np.sqrt(
            np.log(2.0) * (self._ellipse.major2 + self._ellipse.minor2)) * u.pix)

    @property
    def orientation(self):
        """Angle of the major axis from +x, counter-clockwise, in [0, 360) deg."""
        return self._cached("orientation",
                            lambda: (np.rad2deg(self._ellipse.theta) % 360) * u.deg)

    @property
    def eccentricity(self):
        """``sqrt(1 - B**2 / A**2)``."""
        return self._cached("eccentricity", lambda: np.sqrt(
            1.0 - self._ellipse.minor2 / self._ellipse.major2) * u.dimensionless_unscaled)

    @property
    def elongation(self):
        """``A / B``."""
        return self._cached("elongation", lambda: self.semimajor_axis / self.semiminor_axis)

    @property
    def ellipticity(self):
        """``1 - B / A``."""
        return self._cached("ellipticity",
                            lambda: 1.0 - self.semiminor_axis / self.semimajor_axis)

    @property
    def covariance_xx(self):
        """``x2``, the x variance of the moment image (pix**2)."""
        return self._cached("covariance_xx", lambda: self._ellipse.x2 * u.pix ** 2)

    @property
    def covariance_yy(self):
        """``y2``, the y variance of the moment image (pix**2)."""
        return self._cached("covariance_yy", lambda: self._ellipse.y2 * u.pix ** 2)

    @property
    def covariance_xy(self):
        """``xy``, the x-y covariance of the moment image (pix**2)."""
        return self._cached("covariance_xy", lambda: self._ellipse.xy * u.pix ** 2)

    def _ellipse_coefficients(self):
        return _ellipse_equation(self._ellipse.major2, self._ellipse.minor2,
                                 self._ellipse.theta)

    @property
    def ellipse_cxx(self):
        """SExtractor's CXX of ``CXX x**2 + CYY y**2 + CXY x y = 1`` at 1 sigma (pix**-2)."""
        return self._cached("ellipse_cxx", lambda: self._ellipse_coefficients()[0] / u.pix ** 2)

    @property
    def ellipse_cyy(self):
        """SExtractor's CYY (pix**-2)."""
        return self._cached("ellipse_cyy", lambda: self._ellipse_coefficients()[1] / u.pix ** 2)

    @property
    def ellipse_cxy(self):
        """SExtractor's CXY (pix**-2)."""
        return self._cached("ellipse_cxy", lambda: self._ellipse_coefficients()[2] / u.pix ** 2)

    @property
    def inertia_tensor(self):
        """Inertia tensor (pix**2), shape (n, 2, 2)."""
        def compute():
            mu = self.moments_central
            t = np.stack([mu[:, 0, 2], -mu[:, 1, 1], -mu[:, 1, 1], mu[:, 2, 0]], axis=1)
            return t.reshape(-1, 2, 2) * u.pix ** 2
        return self._cached("inertia_tensor", compute)

    # ------------------------------------------------------------------------- areas, fluxes
    @property
    def area(self):
        """Number of unmasked pixels in the segment (pix**2; NaN if all masked)."""
        return self._cached("area", lambda: self._nan_if_masked(self._npix) * u.pix ** 2)

    @property
    def segment_area(self):
        """Number of pixels in the segment (pix**2)."""
        return self._cached("segment_area", lambda: self._segment_area * u.pix ** 2)

    @property
    def equivalent_radius(self):
        """Radius of the circle with the same area (pix)."""
        return self._cached("equivalent_radius", lambda: np.sqrt(self.area / np.pi))

    @property
    def local_background(self):
        """Local background per pixel (0, NaN for a fully masked source): photutils'
        value for ``local_bkg_width=0``, the only width supported."""
        return self._with_unit(self._nan_if_masked(np.zeros(len(self))))

    @property
    def segment_flux(self):
        """Sum of the unmasked data in the segment."""
        return self._with_unit(self._nan_if_masked(self._acc[:, kmeas.A_FLUX]))

    @property
    def segment_flux_err(self):
        """``sqrt(sum error**2)`` over the unmasked segment pixels."""
        if not self._has_error:
            return self._with_unit(np.full(len(self), np.nan))
        return self._with_unit(self._nan_if_masked(np.sqrt(self._acc[:, kmeas.A_ERR2])))

    @property
    def background_sum(self):
        """Sum of the background over the unmasked segment pixels."""
        if not self._has_background:
            return self._with_unit(np.full(len(self), np.nan))
        return self._with_unit(self._nan_if_masked(self._acc[:, kmeas.A_BKG]))

    @property
    def background_mean(self):
        """Mean of the background over the unmasked segment pixels."""
        if not self._has_background:
            return self._with_unit(np.full(len(self), np.nan))
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._with_unit(self._nan_if_masked(self._acc[:, kmeas.A_BKG] / self._npix))

    @property
    def background_centroid(self):
        """Background at the centroid (bilinear, nearest edge), in the background's dtype."""
        if not self._has_background:
            return self._with_unit(np.full(len(self), np.nan))
        bkg = self._backend.to_host(self._background_image)
        # map_coordinates returns the input's dtype: float32 backgrounds give float32 values
        return self._with_unit(_bilinear_nearest(bkg, np.asarray(self.x_centroid, float),
                                                 np.asarray(self.y_centroid, float)
                                                 ).astype(bkg.dtype, copy=False))

    @property
    def min_value(self):
        """Minimum unmasked data value in the segment."""
        return self._with_unit(self._extrema[:, 0].copy())

    @property
    def max_value(self):
        """Maximum unmasked data value in the segment."""
        return self._with_unit(self._extrema[:, 1].copy())

    def _index_yx(self, col):
        idx = self._ext_index[:, col]
        nx = self._segm.shape[1]
        out = np.full((len(self), 2), np.nan)
        good = idx >= 0
        out[good, 0] = idx[good] // nx
        out[good, 1] = idx[good] % nx
        if np.all(good):
            return out.astype(np.int64)
        return out

    @property
    def min_value_index(self) -> np.ndarray:
        """(y, x) of the first minimum."""
        return self._index_yx(0)

    @property
    def max_value_index(self) -> np.ndarray:
        """(y, x) of the first maximum."""
        return self._index_yx(1)

    @property
    def min_value_xindex(self):
        """x of the first minimum."""
        return self.min_value_index[:, 1]

    @property
    def min_value_yindex(self):
        """y of the first minimum."""
        return self.min_value_index[:, 0]

    @property
    def max_value_xindex(self):
        """x of the first maximum."""
        return self.max_value_index[:, 1]

    @property
    def max_value_yindex(self):
        """y of the first maximum."""
        return self.max_value_index[:, 0]

    @property
    def cutout_min_value_index(self):
        """(y, x) of the first minimum relative to the bounding box."""
        return self.min_value_index - self._bbox[:, [0, 2]]

    @property
    def cutout_max_value_index(self):
        """(y, x) of the first maximum relative to the bounding box."""
        return self.max_value_index - self._bbox[:, [0, 2]]

    # ------------------------------------------------------------------------- Kron radius
    def _device_segmentation(self):
        """The segmentation image on the backend's device (cached)."""
        if "_segm_device" not in self._cache:
            self._cache["_segm_device"] = self._backend.asarray(
                np.ascontiguousarray(self._segm.data))
        return self._cache["_segm_device"]

    @property
    def _measured_kron_radius(self) -> np.ndarray:
        def compute():
            data, _, mask = self._kron_inputs
            bk = self._backend
            scale = 6.0
            min_circ = self.kron_params[2] if len(self.kron_params) == 3 else 0.0
            max_size = max(int(np.prod(self._segm.shape)), 1_000_000)
            per_source = (np.asarray(self.x_centroid, dtype=float),
                          np.asarray(self.y_centroid, dtype=float),
                          self.semimajor_axis.value * scale, self.semiminor_axis.value * scale,
                          self.orientation.to_value(u.radian), self.ellipse_cxx.value,
                          self.ellipse_cxy.value, self.ellipse_cyy.value)
            method = _METHODS[self.aperture_mask_method]
            if bk.name == "cpu":
                return kmeas.kron_radius_cpu(
                    self._labels, *per_source, data, np.ascontiguousarray(self._segm.data),
                    mask if mask is not None else np.zeros((1, 1), dtype=bool),
                    mask is not None, method, self.kron_params[1], min_circ, max_size)
            xp = bk.xp
            out = xp.empty(len(self))
            kernel, _ = kmeas.cuda_kron_kernels("cudasim" if bk.name == "cudasim" else "cuda")
            launch(kernel, bk, len(self), bk.asarray(self._labels),
                   *(bk.asarray(np.ascontiguousarray(v)) for v in per_source), data,
                   self._device_segmentation(),
                   mask if mask is not None else xp.zeros((1, 1), dtype=bool),
                   mask is not None, np.int64(method), np.float64(self.kron_params[1]),
                   np.float64(min_circ), np.int64(max_size), out)
            return bk.to_host(out)
        return self._cached("_measured_kron_radius", compute)

    def _calc_kron_radius(self, kron_params):
        radius = self._measured_kron_radius.copy()
        with np.errstate(invalid="ignore"):
            radius[radius > 6.0] = np.nan
            radius[radius < kron_params[1]] = kron_params[1]
            if len(kron_params) == 3:
                circ = (kron_params[0] * radius
                        * np.sqrt(self.semimajor_axis.value * self.semiminor_axis.value))
                radius[circ <= kron_params[2]] = 0.0
        return radius * u.pix

    @property
    def kron_radius(self):
        """Unscaled Kron radius (pix), photutils' definition."""
        return self._cached("kron_radius", lambda: self._calc_kron_radius(self.kron_params))

    @property
    def _kron_aperture(self):
        """Kron aperture of each source: ``(x, y, a, b, theta, radius, valid)``.

        photutils' ``kron_aperture``: the moment ellipse with semi-axes scaled by
        ``kron_params[0] * kron_radius`` at the centroid (``a``, ``b`` in pixels, ``theta``
        in radians); where the Kron radius is 0 (the minimum circular radius rule) the circle
        of radius ``kron_params[2]`` instead (``radius > 0``, else 0); ``valid`` is False for
        a fully masked source or a non-finite centre or shape (no aperture).
        """
        def compute():
            scale = self.kron_radius.value * self.kron_params[0]
            x = np.asarray(self.x_centroid, dtype=float)
            y = np.asarray(self.y_centroid, dtype=float)
            a = self.semimajor_axis.value * scale
            b = self.semiminor_axis.value * scale
            theta = self.orientation.to_value(u.radian)
            with np.errstate(invalid="ignore"):
                valid = (~self._all_masked & np.isfinite(x) & np.isfinite(y) & np.isfinite(a)
                         & np.isfinite(b) & np.isfinite(theta))
                circular = valid & (a == 0) & (b == 0)
            radius = np.where(circular, self.kron_params[2] if len(self.kron_params) == 3
                              else 0.0, 0.0)
            return x, y, a, b, theta, radius, valid
        return self._cached("_kron_aperture", compute)

    @property
    def _kron_photometry(self) -> np.ndarray:
        """``(sum w I, sum w e**2)`` in the Kron aperture, float64 shape (n, 2)."""
        def compute():
            data, err, mask = self._kron_inputs
            bk = self._backend
            per_source = self._kron_aperture
            flags = (1 if err is not None else 0) | (2 if mask is not None else 0)
            method = _METHODS[self.aperture_mask_method]
            max_size = max(int(np.prod(self._segm.shape)), 1_000_000)
            if bk.name == "cpu":
                return kmeas.kron_flux_cpu(
                    self._labels, *per_source, data,
                    err if err is not None else np.zeros((1, 1), dtype=np.float32),
                    np.ascontiguousarray(self._segm.data),
                    mask if mask is not None else np.zeros((1, 1), dtype=bool), flags,
                    method, max_size)
            xp = bk.xp
            out = xp.empty((len(self), 2))
            _, kernel = kmeas.cuda_kron_kernels("cudasim" if bk.name == "cudasim" else "cuda")
            launch(kernel, bk, len(self), bk.asarray(self._labels),
                   *(bk.asarray(np.ascontiguousarray(v)) for v in per_source), data,
                   err if err is not None else xp.zeros((1, 1), dtype=xp.float32),
                   self._device_segmentation(),
                   mask if mask is not None else xp.zeros((1, 1), dtype=bool), np.int64(flags),
                   np.int64(method), np.int64(max_size), out)
            return bk.to_host(out)
        return self._cached("_kron_photometry", compute)

    @property
    def kron_flux(self):
        """Flux in the Kron aperture (data units), photutils' ``kron_flux``.

        ``sum w_i I_i`` over the pixels of the Kron aperture (:attr:`_kron_aperture`), ``w_i``
        the exact fraction of pixel ``i`` inside it; masked and non-finite pixels are left
        out and neighbouring segments are handled per ``aperture_mask_method``. NaN where the
        source has no aperture, every overlapping pixel is masked, or the aperture box
        exceeds ``max(data.size, 1e6)`` pixels.
        """
        return self._with_unit(self._kron_photometry[:, 0].copy())

    @property
    def kron_flux_err(self):
        """``sqrt(sum w_i e_i**2)`` in the Kron aperture (NaN without ``error``)."""
        if not self._has_error:
            return self._with_unit(np.full(len(self), np.nan))
        return self._with_unit(np.sqrt(self._kron_photometry[:, 1]))

    # ------------------------------------------------------------------------- table
    def to_table(self, columns=None) -> QTable:
        """QTable of the requested properties (photutils 3 or 2 names), one row per source."""
        if columns is None:
            columns = self.default_columns
        elif isinstance(columns, str):
            columns = [columns]
        table = QTable()
        table.meta.update(self.meta)
        for name in columns:
            values = getattr(self, name)
            if isinstance(values, list):
                values = np.array(values, dtype=object)
            table[name] = values
        return table

    @property
    def properties(self) -> list[str]:
        """Names of the available per-source properties."""
        return sorted(name for name in dir(type(self))
                      if isinstance(getattr(type(self), name), property)
                      and not name.startswith("_"))

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(_ALIASES))
