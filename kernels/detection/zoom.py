"""Separable cubic-spline zoom of a coarse mesh (``scipy.ndimage.zoom``, ``grid_mode=True``).

A tensor-product spline evaluated on a tensor-product grid factorises: with ``C`` the spline
coefficients of the mesh and ``Wy``, ``Wx`` the per-axis evaluation weights (at most four
non-zeros per output row), ``zoom(M) = Wy C Wx^T``. The coefficients come from
:func:`scipy.ndimage.spline_filter` and the per-axis weights from zooming unit coefficient
vectors with ``prefilter=False`` (so SciPy's own boundary handling is reproduced exactly); the
product is then evaluated in two passes of four taps each instead of sixteen.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange
from scipy import ndimage

__all__ = ["axis_weights", "spline_coefficients", "separable_zoom_cpu"]

_JIT = dict(nogil=True, cache=True)


def axis_weights(n_in: int, factor: float, n_out: int, mode: str = "reflect", order: int = 3):
    """Sparse evaluation weights of a 1-D spline zoom.

    Returns
    -------
    index : ndarray of int64, shape (n_out, k)
    weight : ndarray of float64, shape (n_out, k)
        ``out[i] = sum_k weight[i, k] * coef[index[i, k]]`` for the first ``n_out`` outputs.
    """
    dense = np.empty((n_in, int(round(n_in * factor))))
    for c in range(n_in):
        unit = np.zeros(n_in)
        unit[c] = 1.0
        dense[c] = ndimage.zoom(unit, factor, order=order, mode=mode, grid_mode=True,
                                prefilter=False)
    dense = dense[:, :n_out].T
    k = max(1, int(np.max(np.count_nonzero(dense, axis=1))))
    index = np.zeros((n_out, k), dtype=np.int64)
    weight = np.zeros((n_out, k))
    for i in range(n_out):
        nz = np.nonzero(dense[i])[0]
        index[i, :nz.size] = nz
        weight[i, :nz.size] = dense[i, nz]
    return index, weight


def spline_coefficients(mesh: np.ndarray, mode: str = "reflect", order: int = 3) -> np.ndarray:
    """Cubic B-spline coefficients of ``mesh`` (float64), as SciPy's zoom prefilters them."""
    return ndimage.spline_filter(np.asarray(mesh, dtype=np.float64), order=order,
                                 output=np.float64, mode=mode)


@numba.njit(parallel=True, **_JIT)
def separable_zoom_cpu(coef, iy, wy, ix, wx, lo, hi, out):
    """``out = clip(Wy coef Wx^T, lo, hi)`` with sparse per-axis weights (see module doc)."""
    ny = iy.shape[0]
    nx = ix.shape[0]
    mx = coef.shape[1]
    ky = iy.shape[1]
    kx = ix.shape[1]
    for j in prange(ny):
        row = np.zeros(mx)
        for a in range(ky):
            w = wy[j, a]
            if w != 0.0:
                src = iy[j, a]
                for c in range(mx):
                    row[c] += w * coef[src, c]
        for i in range(nx):
            v = 0.0
            for b in range(kx):
                v += wx[i, b] * row[ix[i, b]]
            if v < lo:
                v = lo
            elif v > hi:
                v = hi
            out[j, i] = v
