"""Circular aperture photometry with exact pixel overlap, and annulus statistics.

:func:`aperture_photometry` follows :func:`photutils.aperture.aperture_photometry` for circular
apertures and annuli (ours or photutils'): weights are the exact overlap of each pixel with the
aperture (``method='exact'``; ``'center'`` and ``'subpixel'`` are available), masked and
zero-weight pixels are skipped, and ``aperture_sum_err = sqrt(sum(w * error**2))``.

:func:`aperture_stats_tbl` is drizzlepac's annulus background statistic
(``haputils.background_median.aperture_stats_tbl``): every finite pixel touching the annulus is
used, values are clipped at 3 sigma about the mean until nothing changes (scipy's
``sigmaclip``), and the table gives the mean, median, mode = 3 median - 2 mean, std and the
surviving pixel count.

Backends: ``cpu`` runs one ``prange`` iteration per aperture; ``gpu``/``cudasim`` run the same
per-aperture code as one CUDA thread per aperture.
"""

from __future__ import annotations

import math

import numpy as np
from astropy.table import QTable, Table

from ..errors import InvalidInputError, InvalidParameterError
from ..kernels.detection import aperture as kap
from ._common import as_image, as_mask, get_backend, launch, native_array, strip_unit

__all__ = ["CircularAperture", "CircularAnnulus", "aperture_photometry", "aperture_stats_tbl"]

_METHODS = {"exact": kap.M_EXACT, "center": kap.M_CENTER, "subpixel": kap.M_SUBPIXEL}


def _as_positions(positions) -> np.ndarray:
    pos = np.atleast_2d(native_array(positions, dtype=np.float64))
    if pos.ndim != 2 or pos.shape[1] != 2:
        raise InvalidInputError(f"positions must be (x, y) pairs, got shape {pos.shape}")
    if not np.all(np.isfinite(pos)):
        raise InvalidInputError("positions must be finite")
    return pos


class CircularAperture:
    """Circular apertures of radius ``r`` at ``positions`` (photutils ``CircularAperture``).

    Parameters
    ----------
    positions : array_like, shape (2,) or (n, 2)
        (x, y) centres in 0-based pixel coordinates.
    r : float
        Radius in pixels (> 0).
    """

    def __init__(self, positions, r):
        if not r > 0:
            raise InvalidParameterError(f"r must be > 0, got {r!r}")
        self.positions = _as_positions(positions)
        self.r = float(r)

    @property
    def area(self) -> float:
        """Geometric area ``pi r**2``."""
        return math.pi * self.r ** 2

    def __len__(self) -> int:
        return self.positions.shape[0]

    def __repr__(self) -> str:
        return f"CircularAperture(n={len(self)}, r={self.r})"

    def to_photutils(self):
        """Equivalent :class:`photutils.aperture.CircularAperture`."""
        from photutils.aperture import CircularAperture as P

        return P(self.positions, r=self.r)


class CircularAnnulus:
    """Circular annuli between ``r_in`` and ``r_out`` (photutils ``CircularAnnulus``)."""

    def __init__(self, positions, r_in, r_out):
        if not (0 <= r_in < r_out):
            raise InvalidParameterError(f"need 0 <= r_in < r_out, got {r_in!r}, {r_out!r}")
        self.positions = _as_positions(positions)
        self.r_in = float(r_in)
        self.r_out = float(r_out)

    @property
    def area(self) -> float:
        """Geometric area ``pi (r_out**2 - r_in**2)``."""
        return math.pi * (self.r_out ** 2 - self.r_in ** 2)

    def __len__(self) -> int:
        return self.positions.shape[0]

    def __repr__(self) -> str:
        return f"CircularAnnulus(n={len(self)}, r_in={self.r_in}, r_out={self.r_out})"

    def to_photutils(self):
        """Equivalent :class:`photutils.aperture.CircularAnnulus`."""
        from photutils.aperture import CircularAnnulus as P

        return P(self.positions, r_in=self.r_in, r_out=self.r_out)


def _geometry(aperture):
    """(positions, r_in, r_out) of one of our or photutils' circular apertures/annuli."""
    pos = getattr(aperture, "positions", None)
    if pos is None:
        raise InvalidInputError(f"unsupported aperture {aperture!r}")
    if hasattr(aperture, "r_in") and hasattr(aperture, "r_out") and not hasattr(aperture, "h_in"):
        return _as_positions(pos), float(aperture.r_in), float(aperture.r_out)
    if hasattr(aperture, "r") and not hasattr(aperture, "a"):
        return _as_positions(pos), 0.0, float(aperture.r)
    raise InvalidInputError(
        f"only circular apertures and annuli are supported, got {type(aperture).__name__}")


def _method(method, subpixels):
    if method not in _METHODS:
        raise InvalidParameterError(f"method must be one of {sorted(_METHODS)}, got {method!r}")
    sub = int(subpixels)
    if sub < 1:
        raise InvalidParameterError("subpixels must be a positive integer")
    return _METHODS[method], sub


def _sums(bk, data, error, mask, pos, r_in, r_out, method, sub):
    flags = (1 if error is not None else 0) | (2 if mask is not None else 0)
    x = np.ascontiguousarray(pos[:, 0])
    y = np.ascontiguousarray(pos[:, 1])
    if bk.name == "cpu":
        err = error if error is not None else np.zeros((1, 1), dtype=np.float32)
        msk = mask if mask is not None else np.zeros((1, 1), dtype=bool)
        return kap.aperture_sums_cpu(data, err, msk, flags, x, y, r_in, r_out, method, sub)
    xp = bk.xp
    err = error if error is not None else xp.zeros((1, 1), dtype=xp.float32)
    msk = mask if mask is not None else xp.zeros((1, 1), dtype=bool)
    sums = xp.empty(x.size)
    errs = xp.empty(x.size)
    kernel, _ = kap.cuda_aperture_kernels("cudasim" if bk.name == "cudasim" else "cuda")
    launch(kernel, bk, x.size, data, err, msk, np.int64(flags), bk.asarray(x), bk.asarray(y),
           np.float64(r_in), np.float64(r_out), np.int64(method), np.int64(sub), sums, errs)
    return bk.to_host(sums), bk.to_host(errs)


def aperture_photometry(data, apertures, error=None, mask=None, method="exact", subpixels=5,
                        wcs=None, *, backend=None) -> QTable:
    """Sum the data in circular apertures (photutils ``aperture_photometry``).

    Parameters
    ----------
    data : array_like, shape (ny, nx)
        Image (host or device).
    apertures : aperture or list of apertures
        :class:`CircularAperture`/:class:`CircularAnnulus` or their photutils namesakes; a list
        must share the same positions.
    error : array_like, shape (ny, nx), optional
        Per-pixel 1-sigma errors; adds ``aperture_sum_err``.
    mask : array_like of bool, shape (ny, nx), optional
        True where pixels are excluded.
    method : {"exact", "center", "subpixel"}, optional
    subpixels : int, optional
        Subsampling factor for ``subpixel``.
    wcs : optional
        Adds ``sky_center`` (``wcs.pixel_to_world``).
    backend : str, Backend or None, keyword-only

    Returns
    -------
    QTable
        Columns ``id``, ``x_center``, ``y_center``[, ``sky_center``], then ``aperture_sum``
        and ``aperture_sum_err`` (suffixed ``_0``, ``_1``, ... for a list of apertures). Sums
        are NaN where the aperture misses the image.
    """
    bk = get_backend(backend)
    data_v, unit = strip_unit(data)
    arr = as_image(data_v, "data", bk)
    err = as_image(strip_unit(error)[0], "error", bk, shape=arr.shape) if error is not None \
        else None
    msk = as_mask(mask, "mask", bk, arr.shape)
    meth, sub = _method(method, subpixels)
    single = not isinstance(apertures, (list, tuple))
    aper_list = [apertures] if single else list(apertures)
    if not aper_list:
        raise InvalidInputError("apertures must not be empty")
    geoms = [_geometry(a) for a in aper_list]
    pos = geoms[0][0]
    for g in geoms[1:]:
        if not np.array_equal(g[0], pos):
            raise InvalidInputError(
                "every aperture in the list must be centred on the same positions (one "
                "photometry table row per position)")
    table = QTable()
    table["id"] = np.arange(pos.shape[0], dtype=int) + 1
    table["x_center"] = pos[:, 0]
    table["y_center"] = pos[:, 1]
    if wcs is not None:
        table["sky_center"] = wcs.pixel_to_world(pos[:, 0], pos[:, 1])
    for i, (_, r_in, r_out) in enumerate(geoms):
        sums, errs = _sums(bk, arr, err, msk, pos, r_in, r_out, meth, sub)
        suffix = "" if single else f"_{i}"
        table["aperture_sum" + suffix] = sums if unit is None else sums * unit
        if err is not None:
            table["aperture_sum_err" + suffix] = errs if unit is None else errs * unit
    table.meta["aperture_photometry_args"] = f"method='{method}', subpixels={subpixels}"
    return table


def _max_pixels(r_out: float) -> int:
    side = int(math.ceil(2 * r_out + 1)) + 2
    return side * side


def aperture_stats_tbl(data, apertures, method="exact", sigma_clip=True, *, backend=None):
    """Sigma-clipped statistics of the pixels touching each aperture (drizzlepac semantics).

    Parameters
    ----------
    data : array_like, shape (ny, nx)
    apertures : CircularAnnulus or CircularAperture (ours or photutils')
    method : {"exact", "center", "subpixel"}, optional
        Pixels with a positive weight under this method are used, each with full weight.
    sigma_clip : bool, optional
        Clip at 3 sigma about the mean until convergence (scipy ``sigmaclip``).
    backend : str, Backend or None, keyword-only

    Returns
    -------
    astropy.table.Table
        Columns ``X, Y, aperture_mean, aperture_median, aperture_mode, aperture_std,
        aperture_area`` (``aperture_area`` is the number of surviving pixels).
    """
    bk = get_backend(backend)
    arr = as_image(strip_unit(data)[0], "data", bk)
    meth, sub = _method(method, 5)
    pos, r_in, r_out = _geometry(apertures)
    low = 3.0 if sigma_clip else -1.0
    x = np.ascontiguousarray(pos[:, 0])
    y = np.ascontiguousarray(pos[:, 1])
    max_pix = _max_pixels(r_out)
    if bk.name == "cpu":
        stats = kap.annulus_stats_cpu(arr, x, y, r_in, r_out, meth, sub, low, low, max_pix)
    else:
        xp = bk.xp
        work = xp.empty((x.size, max_pix))
        out = xp.empty((x.size, 4))
        _, kernel = kap.cuda_aperture_kernels("cudasim" if bk.name == "cudasim" else "cuda")
        launch(kernel, bk, x.size, arr, bk.asarray(x), bk.asarray(y), np.float64(r_in),
               np.float64(r_out), np.int64(meth), np.int64(sub), np.float64(low),
               np.float64(low), work, out)
        stats = bk.to_host(out)
    mean, median, std, count = stats.T
    mode = 3 * median - 2 * mean
    return Table([pos[:, 0], pos[:, 1], mean, median, mode, std, count],
                 names=["X", "Y", "aperture_mean", "aperture_median", "aperture_mode",
                        "aperture_std", "aperture_area"])
