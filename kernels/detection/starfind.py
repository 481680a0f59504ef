"""Peak finding and DAOFIND measurements (CPU and CUDA drivers).

The per-pixel peak test and the per-star statistics (DAOFIND fits, IRAF starfind moments)
are in :mod:`._star_math`. The CPU runs
rows (peaks) and stars in ``prange``; CUDA runs one thread per pixel (peaks) and per star.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from numba import cuda, prange

from . import _star_math as sm
from ..targets import compile_namespace, cuda_module_for, rebind

__all__ = ["peak_mask_cpu", "dao_measure_cpu", "iraf_measure_cpu", "cuda_star_kernels",
           "cuda_iraf_kernel", "N_STAR", "N_IRAF", "all_equal_first", "any_nan"]

N_STAR = sm.N_STAR
N_IRAF = sm.N_IRAF
_cpu = compile_namespace(sm.STAR_FUNCTIONS, "cpu")
_is_peak = _cpu.is_peak
_dao_measure_one = _cpu.dao_measure_one
_iraf_measure_one = _cpu.iraf_measure_one

_JIT = dict(nogil=True, cache=True)


@numba.njit(**_JIT)
def all_equal_first(img):
    """``bool((img == img.ravel()[0]).all())`` of a non-empty 2-D image, stopping at the first
    value that differs (a NaN first value differs from everything, itself included)."""
    ny, nx = img.shape
    first = img[0, 0]
    for j in range(ny):
        for i in range(nx):
            if not img[j, i] == first:
                return False
    return True


@numba.njit(**_JIT)
def any_nan(img):
    """``bool(numpy.isnan(img).any())`` of a 2-D float image, stopping at the first NaN."""
    ny, nx = img.shape
    for j in range(ny):
        for i in range(nx):
            if img[j, i] != img[j, i]:
                return True
    return False


@numba.njit(parallel=True, **_JIT)
def peak_mask_cpu(img, thr, scalar_thr, mask, use_mask, nan_value, border_y, border_x,
                  footprint, off_y, off_x, zero_rule, insc_half):
    """Boolean map of local peaks (see :func:`._star_math.is_peak`)."""
    ny, nx = img.shape
    out = np.zeros((ny, nx), dtype=np.bool_)
    for j in prange(ny):
        for i in range(nx):
            # signed row index: the prange index is unsigned inside the parallel loop only,
            # and each index type would compile its own copy of the callee
            out[j, i] = _is_peak(img, np.int64(j), i, thr, scalar_thr, mask, use_mask, nan_value,
                                 border_y, border_x, footprint, off_y, off_x, zero_rule,
                                 insc_half)
    return out


@numba.njit(parallel=True, **_JIT)
def dao_measure_cpu(data, conv, xpos, ypos, kmask, n_kpix, kconst, kern1d, dkern1d, wt1d,
                    dxx1d):
    """DAOFIND statistics of the stars at integer positions ``(xpos, ypos)``.

    Returns
    -------
    ndarray, float64, shape (n, N_STAR)
        Columns ``S_DX .. S_CONV_PEAK`` of :mod:`._star_math`.
    """
    n = xpos.shape[0]
    out = np.empty((n, N_STAR))
    for k in prange(n):
        _dao_measure_one(data, conv, xpos[k], ypos[k], kmask, n_kpix, kconst, kern1d, dkern1d,
                         wt1d, dxx1d, out, np.int64(k))
    return out


@numba.njit(parallel=True, **_JIT)
def iraf_measure_cpu(data, xpos, ypos, kmask, n_sky, f32):
    """IRAF starfind moments of the stars at integer positions ``(xpos, ypos)``.

    Parameters
    ----------
    data : ndarray, shape (ny, nx)
    xpos, ypos : ndarray of int64, shape (n,)
    kmask : ndarray, float64, shape (ky, kx)
        Kernel footprint (1 inside, 0 outside).
    n_sky : int
        Number of zeros of ``kmask``.
    f32 : bool
        Emulate float32 arithmetic for the sky (float32 data).

    Returns
    -------
    ndarray, float64, shape (n, N_IRAF)
        Columns ``I_XC .. I_NPIX`` of :mod:`._star_math`.
    """
    n = xpos.shape[0]
    out = np.empty((n, N_IRAF))
    for k in prange(n):
        _iraf_measure_one(data, xpos[k], ypos[k], kmask, n_sky, f32, out, np.int64(k))
    return out


def _peak_kernel(img, thr, scalar_thr, mask, use_mask, nan_value, border_y, border_x,
                 footprint, off_y, off_x, zero_rule, insc_half, out):
    i, j = cuda.grid(2)
    if j < img.shape[0] and i < img.shape[1]:
        out[j, i] = is_peak(img, j, i, thr, scalar_thr, mask, use_mask, nan_value, border_y,
                            border_x, footprint, off_y, off_x, zero_rule, insc_half)


def _measure_kernel(data, conv, xpos, ypos, kmask, n_kpix, kconst, kern1d, dkern1d, wt1d,
                    dxx1d, out):
    k = cuda.grid(1)
    if k < xpos.shape[0]:
        dao_measure_one(data, conv, xpos[k], ypos[k], kmask, n_kpix, kconst, kern1d, dkern1d,
                        wt1d, dxx1d, out, k)


@functools.lru_cache(maxsize=None)
def cuda_star_kernels(target: str):
    """``(peak_kernel, measure_kernel)`` for ``cuda`` or ``cudasim``.

    ``peak_kernel`` runs over a 2-D grid (x fastest) and writes a bool map; ``measure_kernel``
    runs one thread per star and writes rows of an (n, N_STAR) float64 array.
    """
    module = cuda_module_for(target)
    names = dict(vars(compile_namespace(sm.STAR_FUNCTIONS, target)))
    return module.jit(rebind(_peak_kernel, names)), module.jit(rebind(_measure_kernel, names))


def _iraf_kernel(data, xpos, ypos, kmask, n_sky, f32, out):
    k = cuda.grid(1)
    if k < xpos.shape[0]:
        iraf_measure_one(data, xpos[k], ypos[k], kmask, n_sky, f32, out, k)


@functools.lru_cache(maxsize=None)
def cuda_iraf_kernel(target: str):
    """IRAF starfind measurement kernel for ``cuda`` or ``cudasim``: one thread per star,
    arguments of :func:`iraf_measure_cpu` followed by the (n, N_IRAF) float64 output."""
    module = cuda_module_for(target)
    names = dict(vars(compile_namespace(sm.STAR_FUNCTIONS, target)))
    return module.jit(rebind(_iraf_kernel, names))
