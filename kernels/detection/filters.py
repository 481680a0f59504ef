"""CPU filters: fused Laplacian of Gaussian and a small-window median (SciPy semantics).

SciPy computes ``LoG = G''_x(G_y(I))`` rounded to the image dtype after each 1-D pass, plus
``G_x(G''_y(I))``, i.e. four separable passes. This kernel does the two vertical passes in one
sweep (sharing the reads) and the two horizontal passes and the sum in a second sweep, rows in
parallel, accumulating in float64 and rounding every pass to the output dtype as SciPy does.

:func:`median_filter_cpu` is SciPy's ``median_filter`` for odd square windows (``reflect``):
each row slides a sorted window, rows in parallel.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

__all__ = ["gaussian_kernels", "reflect_index", "gaussian_laplace_cpu", "median_filter_cpu"]

_JIT = dict(nogil=True, cache=True)


def gaussian_kernels(sigma: float, truncate: float = 4.0, radius=None):
    """SciPy's 1-D Gaussian weights of order 0 and 2 (index ``r + k`` is offset ``k``)."""
    r = int(truncate * float(sigma) + 0.5) if radius is None else int(radius)
    try:  # SciPy's own weights, for bit-identical passes
        from scipy.ndimage._filters import _gaussian_kernel1d

        return (_gaussian_kernel1d(float(sigma), 0, r)[::-1].astype(np.float64),
                _gaussian_kernel1d(float(sigma), 2, r)[::-1].astype(np.float64))
    except (ImportError, TypeError):  # pragma: no cover - private SciPy helper moved
        pass
    x = np.arange(-r, r + 1, dtype=np.float64)
    s2 = float(sigma) ** 2
    phi = np.exp(-0.5 / s2 * x ** 2)
    phi /= phi.sum()
    w2 = phi * (x * x / (s2 * s2) - 1.0 / s2)
    return phi, w2


@numba.njit(**_JIT)
def reflect_index(i, n):
    """SciPy's ``reflect`` (half-sample symmetric) boundary index."""
    if n == 1:
        return 0
    period = 2 * n
    i = i % period
    if i < 0:
        i += period
    if i >= n:
        i = period - 1 - i
    return i


@numba.njit(parallel=True, **_JIT)
def _vertical(img, w0, w2, a, c):
    """``a = G''_y(img)``, ``c = G_y(img)`` (reflect), rounded to the output dtype."""
    ny, nx = img.shape
    r = (w0.shape[0] - 1) // 2
    for j in prange(ny):
        acc0 = np.zeros(nx)
        acc2 = np.zeros(nx)
        for k in range(-r, r + 1):
            jj = reflect_index(j + k, ny)
            f0 = w0[r + k]
            f2 = w2[r + k]
            for i in range(nx):
                v = np.float64(img[jj, i])
                acc0[i] += f0 * v
                acc2[i] += f2 * v
        for i in range(nx):
            c[j, i] = acc0[i]
            a[j, i] = acc2[i]


@numba.njit(parallel=True, **_JIT)
def _horizontal(a, c, w0, w2, out):
    """``out = round(G_x(a)) + round(G''_x(c))`` (reflect), via reflect-padded row copies."""
    ny, nx = a.shape
    r = (w0.shape[0] - 1) // 2
    for j in prange(ny):
        pa = np.empty(nx + 2 * r)
        pc = np.empty(nx + 2 * r)
        for t in range(nx + 2 * r):
            src = reflect_index(t - r, nx)
            pa[t] = a[j, src]
            pc[t] = c[j, src]
        sa = np.zeros(nx)
        sc = np.zeros(nx)
        for k in range(2 * r + 1):
            f0 = w0[k]
            f2 = w2[k]
            for i in range(nx):
                sa[i] += f0 * pa[i + k]
                sc[i] += f2 * pc[i + k]
        for i in range(nx):
            out[j, i] = out.dtype.type(sa[i]) + out.dtype.type(sc[i])


@numba.njit(**_JIT)
def _replace_sorted(win, old, new):
    """Replace one occurrence of ``old`` by ``new`` in the sorted ``win``, keeping it sorted."""
    n = win.shape[0]
    lo = 0
    hi = n - 1
    while lo < hi:  # first index with win[idx] >= old
        mid = (lo + hi) // 2
        if win[mid] < old:
            lo = mid + 1
        else:
            hi = mid
    p = lo
    while p + 1 < n and win[p + 1] < new:
        win[p] = win[p + 1]
        p += 1
    while p > 0 and win[p - 1] > new:
        win[p] = win[p - 1]
        p -= 1
    win[p] = new


@numba.njit(parallel=True, **_JIT)
def median_filter_cpu(img, size, out):
    """``scipy.ndimage.median_filter(img, size)`` for an odd ``size`` and ``mode='reflect'``.

    Each row keeps its window sorted while it slides: a step replaces the ``size`` values of
    the column leaving the window by those of the column entering it. ``img`` must not
    contain NaN.
    """
    ny, nx = img.shape
    h = size // 2
    m = size * size
    for j in prange(ny):
        rows = np.empty(size, dtype=np.int64)
        for t in range(size):
            rows[t] = reflect_index(j - h + t, ny)
        win = np.empty(m, dtype=img.dtype)
        n = 0
        for t in range(size):
            ci = reflect_index(t - h, nx)
            for q in range(size):
                win[n] = img[rows[q], ci]
                n += 1
        win.sort()
        out[j, 0] = win[m // 2]
        for i in range(1, nx):
            c_old = reflect_index(i - h - 1, nx)
            c_new = reflect_index(i + h, nx)
            if c_old != c_new:
                for q in range(size):
                    _replace_sorted(win, img[rows[q], c_old], img[rows[q], c_new])
            out[j, i] = win[m // 2]


def gaussian_laplace_cpu(img, sigma, truncate=4.0, radius=None):
    """LoG of a 2-D float image with ``mode='reflect'``; output has the image's dtype.

    ``sigma`` is a scalar or a (sigma_y, sigma_x) pair.
    """
    sy, sx = (sigma, sigma) if np.ndim(sigma) == 0 else sigma
    w0y, w2y = gaussian_kernels(sy, truncate, radius)
    w0x, w2x = gaussian_kernels(sx, truncate, radius)
    a = np.empty(img.shape, dtype=img.dtype)
    c = np.empty(img.shape, dtype=img.dtype)
    out = np.empty(img.shape, dtype=img.dtype)
    _vertical(img, w0y, w2y, a, c)
    _horizontal(a, c, w0x, w2x, out)
    return out
