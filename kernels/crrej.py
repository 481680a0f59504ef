"""Cosmic-ray identification by comparing a chip with its blotted median (AstroDrizzle driz_cr).

Array code for NumPy or CuPy (algorithms §4.6). All inputs are in electrons:

* :func:`abs_derivative` is drizzlepac's ``qderiv``: the largest absolute difference to the
  four neighbours, where the reference treats neighbours as missing (using ``|value|``) on a
  border band three pixels wide at the high edges and one pixel wide at the low edges.
* :func:`cosmic_ray_mask` applies the two significance tests, the 3x3 neighbourhood rule, the
  optional square grow and the CTE-direction grow, with scipy's ``convolve2d(..., "same",
  boundary="symm")`` semantics for every convolution.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ._arrays import array_module

__all__ = ["abs_derivative", "convolve_symmetric", "cosmic_ray_mask", "cte_kernel"]

_F32 = np.float32


def abs_derivative(image):
    """Absolute derivative image of ``image`` (float32), as drizzlepac's ``qderiv``.

    Parameters
    ----------
    image : ndarray, shape (ny, nx)
        Float image (NumPy or CuPy).

    Returns
    -------
    ndarray
        float32 ``(ny, nx)``: ``max |image - neighbour|`` over the four neighbours.
    """
    xp = array_module(image)
    if xp is np:
        out = np.empty(image.shape, dtype=np.float32)
        _derivative_cpu(np.ascontiguousarray(image, dtype=np.float32), out)
        return out
    return _abs_derivative_arrays(xp, image)


def _abs_derivative_arrays(xp, image):
    """Array-module implementation of :func:`abs_derivative` (the device path)."""
    a = image.astype(np.float64)
    ny, nx = a.shape
    out = xp.zeros((ny, nx), dtype=np.float64)
    # (destination rows, destination cols) <- (source rows, source cols); elsewhere 0.
    shifts = (
        ((slice(0, ny - 1), slice(1, nx - 1)), (slice(0, ny - 1), slice(0, nx - 2))),
        ((slice(0, ny - 1), slice(0, nx - 2)), (slice(0, ny - 1), slice(1, nx - 1))),
        ((slice(1, ny - 1), slice(0, nx - 1)), (slice(0, ny - 2), slice(0, nx - 1))),
        ((slice(0, ny - 2), slice(0, nx - 1)), (slice(1, ny - 1), slice(0, nx - 1))),
    )
    for dest, src in shifts:
        neighbour = xp.zeros((ny, nx), dtype=np.float64)
        neighbour[dest] = a[src]
        out = xp.maximum(xp.abs(a - neighbour), out)
    return out.astype(np.float32)


def convolve_symmetric(image, kernel):
    """``scipy.signal.convolve2d(image, kernel, mode="same", boundary="symm")`` for small kernels.

    Parameters
    ----------
    image : ndarray, shape (ny, nx)
        Image (bool or numeric; NumPy or CuPy). Summed in int64 for integer/bool input.
    kernel : numpy.ndarray, shape (kh, kw)
        Host kernel; only its non-zero taps are visited.

    Returns
    -------
    ndarray
        ``(ny, nx)``; int64 for bool/integer images and integer kernels, else float64.
    """
    xp = array_module(image)
    kernel = np.asarray(kernel)
    kh, kw = kernel.shape
    ny, nx = image.shape
    integer = image.dtype.kind in "biu" and kernel.dtype.kind in "biu"
    work = image.astype(np.int64 if integer else np.float64)
    pad_y, pad_x = kh, kw
    padded = xp.pad(work, ((pad_y, pad_y), (pad_x, pad_x)), mode="symmetric")
    out = xp.zeros((ny, nx), dtype=work.dtype)
    oy, ox = (kh - 1) // 2, (kw - 1) // 2
    for p, q in zip(*np.nonzero(kernel)):
        weight = kernel[p, q]
        dy, dx = oy - int(p), ox - int(q)
        tap = padded[pad_y + dy:pad_y + dy + ny, pad_x + dx:pad_x + dx + nx]
        out += tap if weight == 1 else tap * (int(weight) if integer else float(weight))
    return out


def cte_kernel(ctegrow: int, cte_dir: int) -> np.ndarray:
    """AstroDrizzle's CTE-grow kernel: a column of ``ctegrow`` ones before/after the centre."""
    k = np.zeros((2 * ctegrow + 1, 2 * ctegrow + 1), dtype=np.int64)
    if cte_dir == 1:
        k[0:ctegrow, ctegrow] = 1
    elif cte_dir == -1:
        k[ctegrow + 1:2 * ctegrow + 1, ctegrow] = 1
    return k


def cosmic_ray_mask(data, blotted, derivative, *, background: float, gain: float,
                    readnoise: float, snr: tuple[float, float], scale: tuple[float, float],
                    grow: int = 1, ctegrow: int = 0, cte_dir: int = 0):
    """Good-pixel mask of one chip after the driz_cr tests (True = no cosmic ray).

    Parameters
    ----------
    data : ndarray, shape (ny, nx)
        The chip, not sky-subtracted, in electrons (float32).
    blotted : ndarray, shape (ny, nx)
        The blotted median with the sky added back, in electrons (float32).
    derivative : ndarray, shape (ny, nx)
        :func:`abs_derivative` of ``blotted`` (float32).
    background : float
        Sky level in electrons (counted in the noise on top of ``blotted``, as the reference).
    gain, readnoise : float
        Effective gain and read noise (e-).
    snr, scale : (float, float)
        Significance and derivative multipliers of the loose and the strict test.
    grow : int
        Side of the square that a rejected pixel spreads to (1: no growth).
    ctegrow : int
        Length of the CTE-direction growth (0: none).
    cte_dir : {-1, 0, 1}
        Readout direction of the chip.

    Returns
    -------
    ndarray of bool
        ``(ny, nx)``, True where the pixel is kept.
    """
    xp = array_module(data)
    if xp is np:
        good = np.empty(data.shape, dtype=np.bool_)
        _tests_cpu(np.ascontiguousarray(data, dtype=np.float32), np.ascontiguousarray(blotted, dtype=np.float32),
                   np.ascontiguousarray(derivative, dtype=np.float32), _F32(background), _F32(gain),
                   _F32(readnoise ** 2), _F32(snr[0]), _F32(snr[1]), _F32(scale[0]), _F32(scale[1]), good)
        return _grow(good, grow, ctegrow, cte_dir)
    return _cosmic_ray_mask_arrays(xp, data, blotted, derivative, background, gain, readnoise, snr, scale,
                                   grow, ctegrow, cte_dir)


def _cosmic_ray_mask_arrays(xp, data, blotted, derivative, background, gain, readnoise, snr, scale,
                            grow, ctegrow, cte_dir):
    """Array-module implementation of :func:`cosmic_ray_mask` (the device path)."""
    g = _F32(gain)
    t1 = xp.abs(data - blotted)
    noise = xp.sqrt(g * xp.abs(blotted + _F32(background)) + _F32(readnoise ** 2))
    loose = t1 <= (_F32(scale[0]) * derivative + _F32(snr[0]) * noise / g)
    neighbours = convolve_symmetric(loose, np.ones((3, 3), dtype=np.int64))
    good = (t1 <= (_F32(scale[1]) * derivative + _F32(snr[1]) * noise / g)) | (neighbours >= 9)
    return _grow(good, grow, ctegrow, cte_dir)


def _grow(good, grow: int, ctegrow: int, cte_dir: int):
    """The square grow and the CTE grow (both identities at their defaults 1 and 0)."""
    if grow > 1:
        grown = convolve_symmetric(good, np.ones((grow, grow), dtype=np.int64)) >= grow * grow
    else:
        grown = good
    if ctegrow > 0:
        return grown & (convolve_symmetric(good, cte_kernel(ctegrow, cte_dir)) >= ctegrow)
    return grown


# ============================================================================ CPU (Numba) drivers
@numba.njit(parallel=True, cache=True, nogil=True)
def _derivative_cpu(a, out):
    ny, nx = a.shape
    for y in numba.prange(ny):
        for x in range(nx):
            v = a[y, x]
            best = np.float32(0.0)
            # left, right, below, above; a missing neighbour counts as 0 (gives |v|)
            n = a[y, x - 1] if (y < ny - 1 and 1 <= x < nx - 1) else np.float32(0.0)
            best = max(best, abs(v - n))
            n = a[y, x + 1] if (y < ny - 1 and x < nx - 2) else np.float32(0.0)
            best = max(best, abs(v - n))
            n = a[y - 1, x] if (1 <= y < ny - 1 and x < nx - 1) else np.float32(0.0)
            best = max(best, abs(v - n))
            n = a[y + 1, x] if (y < ny - 2 and x < nx - 1) else np.float32(0.0)
            best = max(best, abs(v - n))
            out[y, x] = best


@numba.njit(cache=True, nogil=True, inline="always")
def _reflect(i, n):
    if i < 0:
        return -i - 1
    if i >= n:
        return 2 * n - i - 1
    return i


@numba.njit(parallel=True, cache=True, nogil=True)
def _tests_cpu(data, model, deriv, backg, gain, rn2, snr1, snr2, mult1, mult2, good):
    ny, nx = data.shape
    loose = np.empty((ny, nx), dtype=np.bool_)
    for y in numba.prange(ny):
        for x in range(nx):
            t1 = abs(data[y, x] - model[y, x])
            noise = np.float32(math.sqrt(gain * abs(model[y, x] + backg) + rn2))
            loose[y, x] = t1 <= mult1 * deriv[y, x] + snr1 * noise / gain
            good[y, x] = t1 <= mult2 * deriv[y, x] + snr2 * noise / gain
    for y in numba.prange(ny):
        for x in range(nx):
            if good[y, x]:
                continue
            count = 0
            for dy in range(-1, 2):
                yy = _reflect(y + dy, ny)
                for dx in range(-1, 2):
                    count += loose[yy, _reflect(x + dx, nx)]
            good[y, x] = count >= 9
