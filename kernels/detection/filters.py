"""CPU filters: fused Laplacian of Gaussian and a small-window median (SciPy semantics).

SciPy computes ``LoG = G''_x(G_y(I))`` rounded to the image dtype after each 1-D pass, plus
``G_x(G''_y(I))``, i.e. four separable passes. This kernel does the two vertical passes in one
sweep (sharing the reads) and the two horizontal passes and the sum in a second sweep, rows in
parallel, accumulating in float64 and rounding every pass to the output dtype as SciPy does.

:func:`median_filter_cpu` is SciPy's ``median_filter`` for odd square windows (``reflect``):
each row slides a sorted window, rows in parallel.

:func:`separable_convolve_zero_cpu` is ``convolve1d(convolve1d(a, column, axis=0), row,
axis=1)`` with a zero (``constant``, ``cval=0``) border in float64, as
:func:`hapgpu.detection.convolve` runs a rank-1 kernel through SciPy, in two parallel sweeps
(columns pass, then rows pass writing the output dtype). Each output value is summed in
SciPy's order (``NI_Correlate1D``): a correlation with the reversed weights; for weights
symmetric to ``DBL_EPSILON`` the centre term first, then ``(left + right) * weight`` pairs from
the outermost inwards; otherwise the last term first, then the others from the first on. The
results are bit-identical to SciPy's.

:func:`convolve_zero_cpu` is ``scipy.ndimage.convolve`` of a 2-D image with a 2-D kernel that
is not separable (a RickerWavelet), zero border, in float64: SciPy's ``NI_Correlate`` sums,
for each output pixel, the products of the reversed kernel's weights larger than
``DBL_EPSILON`` in magnitude with the pixels under them, in the raster order of the weights,
starting from 0. Here each row keeps one accumulator per output pixel and adds the weights in
that same order, so every pixel's sum has SciPy's terms in SciPy's order (terms outside the
image are SciPy's ``0 * weight``, which leave a sum started at +0 unchanged), while the
additions of one weight run along the row (vectorised), rows in parallel.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

__all__ = ["gaussian_kernels", "reflect_index", "gaussian_laplace_cpu", "median_filter_cpu",
           "is_symmetric_weights", "separable_convolve_zero_cpu", "convolve_zero_cpu"]

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


def is_symmetric_weights(weights) -> bool:
    """SciPy's symmetry test of 1-D correlation weights (odd length, ``|w[c+i] - w[c-i]| <=
    DBL_EPSILON``), which selects the order of its sums."""
    w = np.asarray(weights, dtype=np.float64)
    if w.shape[0] % 2 == 0:
        return False
    c = w.shape[0] // 2
    eps = np.finfo(np.float64).eps
    return all(abs(w[c + i] - w[c - i]) <= eps for i in range(1, c + 1))


@numba.njit(parallel=True, **_JIT)
def _columns_zero(img, w, symmetric, tmp):
    """``tmp = correlate1d(img, w, axis=0)`` (float64, zero border), SciPy's sum order."""
    ny, nx = img.shape
    r = (w.shape[0] - 1) // 2
    for j in prange(ny):
        jj0 = np.int64(j)
        acc = np.empty(nx)
        if symmetric:
            for i in range(nx):
                acc[i] = np.float64(img[jj0, i]) * w[r]
            for k in range(-r, 0):
                a = jj0 + k
                b = jj0 - k
                f = w[r + k]
                for i in range(nx):
                    va = np.float64(img[a, i]) if a >= 0 else 0.0
                    vb = np.float64(img[b, i]) if b < ny else 0.0
                    acc[i] += (va + vb) * f
        else:
            b = jj0 + r
            for i in range(nx):
                acc[i] = (np.float64(img[b, i]) if b < ny else 0.0) * w[2 * r]
            for k in range(-r, r):
                a = jj0 + k
                f = w[r + k]
                for i in range(nx):
                    va = np.float64(img[a, i]) if (a >= 0 and a < ny) else 0.0
                    acc[i] += va * f
        for i in range(nx):
            tmp[jj0, i] = acc[i]


@numba.njit(parallel=True, **_JIT)
def _rows_zero(tmp, w, symmetric, divisor, out):
    """``out = cast(correlate1d(tmp, w, axis=1) / divisor)`` (zero border), SciPy's order."""
    ny, nx = tmp.shape
    r = (w.shape[0] - 1) // 2
    for j in prange(ny):
        line = np.zeros(nx + 2 * r)
        for i in range(nx):
            line[i + r] = tmp[j, i]
        for i in range(nx):
            c = i + r
            if symmetric:
                acc = line[c] * w[r]
                for k in range(-r, 0):
                    acc += (line[c + k] + line[c - k]) * w[r + k]
            else:
                acc = line[c + r] * w[2 * r]
                for k in range(-r, r):
                    acc += line[c + k] * w[r + k]
            out[j, i] = acc / divisor


def separable_convolve_zero_cpu(img, column, row, divisor=1.0, out_dtype=np.float64):
    """``scipy.ndimage.convolve1d`` along axis 0 with ``column``, then along axis 1 with
    ``row``, zero border, in float64; divided by ``divisor`` and cast to ``out_dtype``.

    Parameters
    ----------
    img : ndarray, shape (ny, nx)
        Float image, native byte order (read as float64).
    column, row : ndarray, float64, odd length
        The 1-D convolution weights (flipped here into correlation weights, as SciPy does).
    divisor : float
        1.0 leaves the sums unchanged.
    out_dtype : dtype
        float32 or float64.

    Returns
    -------
    ndarray, shape (ny, nx), ``out_dtype``
    """
    wc = np.ascontiguousarray(np.asarray(column, dtype=np.float64)[::-1])
    wr = np.ascontiguousarray(np.asarray(row, dtype=np.float64)[::-1])
    tmp = np.empty(img.shape, dtype=np.float64)
    _columns_zero(img, wc, is_symmetric_weights(wc), tmp)
    out = np.empty(img.shape, dtype=out_dtype)
    _rows_zero(tmp, wr, is_symmetric_weights(wr), float(divisor), out)
    return out


@numba.njit(**_JIT)
def _add_scaled(acc, x, f):
    """``acc += f * x`` element by element (one vectorised sweep)."""
    for i in range(acc.shape[0]):
        acc[i] += f * x[i]


@numba.njit(parallel=True, **_JIT)
def _correlate_zero(img, w, use, divisor, out):
    """``out = cast(correlate(img, w, mode='constant', cval=0) / divisor)``, SciPy's order.

    Each image row under the window is copied once into a zero-padded float64 line; the
    zeros beyond the edges add SciPy's ``0 * weight`` terms, which leave a sum started at +0
    unchanged.
    """
    ny, nx = img.shape
    ky, kx = w.shape
    hy = ky // 2
    hx = kx // 2
    for j in prange(ny):
        acc = np.zeros(nx)
        line = np.zeros(nx + 2 * hx)
        for a in range(ky):
            y = j + a - hy
            if y < 0 or y >= ny:
                continue
            for i in range(nx):
                line[i + hx] = img[y, i]
            for b in range(kx):
                if use[a, b]:
                    _add_scaled(acc, line[b:b + nx], w[a, b])
        for i in range(nx):
            out[j, i] = acc[i] / divisor


def convolve_zero_cpu(img, kernel, divisor=1.0, out_dtype=np.float64):
    """``scipy.ndimage.convolve(img.astype(float64), kernel, mode='constant', cval=0)``,
    divided by ``divisor`` and cast to ``out_dtype``, bit-identical to SciPy.

    Parameters
    ----------
    img : ndarray, shape (ny, nx)
        Float image, native byte order, finite (read as float64).
    kernel : ndarray, shape (ky, kx)
        Convolution kernel, odd sizes (flipped here into correlation weights, as SciPy does;
        weights with ``|w| <= DBL_EPSILON`` are left out, as SciPy leaves them out).
    divisor : float
        1.0 leaves the sums unchanged.
    out_dtype : dtype
        float32 or float64.

    Returns
    -------
    ndarray, shape (ny, nx), ``out_dtype``
    """
    w = np.ascontiguousarray(np.asarray(kernel, dtype=np.float64)[::-1, ::-1])
    use = np.abs(w) > np.finfo(np.float64).eps
    out = np.empty(img.shape, dtype=out_dtype)
    _correlate_zero(img, w, use, float(divisor), out)
    return out
