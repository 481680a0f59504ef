"""Circular aperture photometry and annulus statistics (CPU and CUDA drivers).

The per-aperture mathematics is in :mod:`._aperture_math` (exact circle/pixel overlap,
photutils' bounding boxes, scipy-style clipped statistics). Both targets run one aperture per
worker: a ``prange`` iteration on the CPU, a thread on CUDA.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from numba import cuda, prange

from . import _aperture_math as am
from . import _select
from ..targets import compile_namespace, cuda_module_for, rebind

__all__ = [
    "M_EXACT",
    "M_CENTER",
    "M_SUBPIXEL",
    "aperture_sums_cpu",
    "annulus_stats_cpu",
    "overlap_grid_cpu",
    "cuda_aperture_kernels",
]

M_EXACT = am.M_EXACT
M_CENTER = am.M_CENTER
M_SUBPIXEL = am.M_SUBPIXEL

_FUNCTIONS = _select.SELECT_FUNCTIONS + am.APERTURE_FUNCTIONS
_cpu = compile_namespace(_FUNCTIONS, "cpu", inline=("annulus_touches",))
_aperture_sum_one = _cpu.aperture_sum_one
_annulus_gather_one = _cpu.annulus_gather_one
_clipped_moments_one = _cpu.clipped_moments_one
_annulus_weight = _cpu.annulus_weight

_JIT = dict(nogil=True, cache=True)


@numba.njit(parallel=True, **_JIT)
def aperture_sums_cpu(data, error, mask, flags, x, y, r_in, r_out, method, subpixels):
    """Sums of every aperture.

    Parameters
    ----------
    data, error : ndarray, shape (ny, nx)
    mask : ndarray of bool, shape (ny, nx) or (1, 1)
    flags : int
        Bit 1: use ``error``; bit 2: use ``mask``.
    x, y : ndarray, float64, shape (n,)
        Aperture centres (0-based pixel coordinates).
    r_in, r_out : float
        Inner (0 for a disc) and outer radius.
    method, subpixels : int

    Returns
    -------
    sums, errs : ndarray, float64, shape (n,)
        NaN where the aperture misses the image; ``errs`` is ``sqrt(sum w err**2)``.
    """
    n = x.shape[0]
    sums = np.empty(n)
    errs = np.empty(n)
    for k in prange(n):
        s, v, c = _aperture_sum_one(data, error, mask, flags, x[k], y[k], r_in, r_out, method,
                                    subpixels)
        if c < 0:
            sums[k] = np.nan
            errs[k] = np.nan
        else:
            sums[k] = s
            errs[k] = np.sqrt(v)
    return sums, errs


@numba.njit(parallel=True, **_JIT)
def annulus_stats_cpu(data, x, y, r_in, r_out, method, subpixels, low, high, max_pix):
    """Clipped statistics of the pixels touching each annulus (drizzlepac semantics).

    Returns
    -------
    stats : ndarray, float64, shape (n, 4)
        mean, median, std and the number of surviving pixels (NaN when the annulus misses
        the image).
    """
    n = x.shape[0]
    out = np.full((n, 4), np.nan)
    for k in prange(n):
        buf = np.empty(max_pix)
        m = _annulus_gather_one(data, x[k], y[k], r_in, r_out, method, subpixels, buf)
        if m < 0:
            continue
        mean, median, std, count = _clipped_moments_one(buf, m, low, high)
        out[k, 0] = mean
        out[k, 1] = median
        out[k, 2] = std
        out[k, 3] = count
    return out


@numba.njit(**_JIT)
def overlap_grid_cpu(x, y, r_in, r_out, ix0, iy0, ny, nx, method, subpixels):
    """Weights of an (ny, nx) pixel grid starting at (ix0, iy0) for one aperture."""
    out = np.zeros((ny, nx))
    ex0 = ix0 - 0.5 - x
    ey0 = iy0 - 0.5 - y
    sx = ((ix0 + nx - 0.5 - x) - ex0) / nx
    sy = ((iy0 + ny - 0.5 - y) - ey0) / ny
    for j in range(ny):
        py0 = ey0 + j * sy
        for i in range(nx):
            px0 = ex0 + i * sx
            out[j, i] = _annulus_weight(method, subpixels, px0, px0 + sx, py0, py0 + sy, r_in,
                                        r_out)
    return out


# --------------------------------------------------------------------------------------------
# CUDA
# --------------------------------------------------------------------------------------------


def _sums_kernel(data, error, mask, flags, x, y, r_in, r_out, method, subpixels, sums, errs):
    k = cuda.grid(1)
    if k < x.shape[0]:
        s, v, c = aperture_sum_one(data, error, mask, flags, x[k], y[k], r_in, r_out, method,
                                   subpixels)
        if c < 0:
            sums[k] = np.nan
            errs[k] = np.nan
        else:
            sums[k] = s
            errs[k] = v ** 0.5


def _annulus_kernel(data, x, y, r_in, r_out, method, subpixels, low, high, work, out):
    k = cuda.grid(1)
    if k < x.shape[0]:
        buf = work[k]
        m = annulus_gather_one(data, x[k], y[k], r_in, r_out, method, subpixels, buf)
        if m < 0:
            for c in range(4):
                out[k, c] = np.nan
            return
        mean, median, std, count = clipped_moments_one(buf, m, low, high)
        out[k, 0] = mean
        out[k, 1] = median
        out[k, 2] = std
        out[k, 3] = count


@functools.lru_cache(maxsize=None)
def cuda_aperture_kernels(target: str):
    """``(sums_kernel, annulus_kernel)`` for ``cuda`` or ``cudasim``; one thread per aperture.

    ``annulus_kernel`` needs a float64 workspace of shape (n, max_pix).
    """
    module = cuda_module_for(target)
    ns = compile_namespace(_FUNCTIONS, target)
    names = dict(vars(ns))
    return module.jit(rebind(_sums_kernel, names)), module.jit(rebind(_annulus_kernel, names))
