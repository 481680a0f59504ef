"""Pixel-stack combination: AstroDrizzle's median image (``num_combine`` and ``minmed``).

Array code for NumPy or CuPy: every function takes the stack of separately drizzled images
``(n_images, ny, nx)`` and returns one ``(ny, nx)`` float32 image. Semantics (algorithms §4.4):

* :func:`combine_stack` is stsci.image's ``num_combine``: per pixel, the good values (mask
  false) are sorted in float64; ``median`` drops ``nlow``/``nhigh`` values (relaxed when too few
  are left) and averages the two middle values of an even count; ``mean`` averages the same
  slice without the relaxation; a pixel without good values gives 0. The ``imedian``/``imean``
  variants fill such pixels from the first non-zero input, but (as in the reference) only in
  column 0 of every row.
* :func:`minmed` is drizzlepac's ``min_med``: the minimum of the good values replaces the
  median (or the mean for two images) where it is significantly lower, judged with a noise
  model in electrons built from the summed weights, the sky and the read noise, and grown by a
  ``(2*grow+1)**2`` box.
"""

from __future__ import annotations

import numba
import numpy as np

from ._arrays import array_module

__all__ = ["COMBINE_TYPES", "combine_stack", "minmed", "box_any"]

COMBINE_TYPES = ("median", "imedian", "mean", "imean", "sum")


def _take(xp, sorted_values, index):
    """``sorted_values[index[y, x], y, x]`` with the index clipped into range."""
    n = sorted_values.shape[0]
    index = xp.clip(index, 0, n - 1)
    return xp.take_along_axis(sorted_values, index[None].astype(np.int64), axis=0)[0]


def _relaxed(xp, n_good, nlow: int, nhigh: int):
    """Per-pixel ``(nlow, nhigh)`` after the reference's relaxation for too few good values."""
    lo = xp.full(n_good.shape, nlow, dtype=np.int32)
    hi = xp.full(n_good.shape, nhigh, dtype=np.int32)
    for _ in range(nlow + nhigh):
        need = (lo + hi >= n_good) & (n_good > 0)
        hi = xp.where(need & (hi > 0), hi - 1, hi)
        lo = xp.where(need & (lo > 0), lo - 1, lo)
    return lo, hi


def _median_of_sorted(xp, s, n_good, nlow: int, nhigh: int, n_total: int):
    lo, hi = _relaxed(xp, n_good, nlow, nhigh)
    count = n_good - lo - hi
    mid = count // 2
    upper = _take(xp, s, lo + mid)
    lower = _take(xp, s, lo + mid - 1)
    value = xp.where(count % 2 == 1, upper, (upper + lower) / 2.0)
    return xp.where(count > 0, value, 0.0)


def _mean_of_sorted(xp, s, n_good, nlow: int, nhigh: int, n_total: int):
    n = s.shape[0]
    count = n_good - nlow - nhigh
    rank = xp.arange(n, dtype=np.int32)[:, None, None]
    inside = (rank >= nlow) & (rank < nlow + count[None])
    total = xp.where(inside, s, 0.0).sum(axis=0)
    value = total / xp.maximum(count, 1)
    # With nothing left the reference returns its last sorted slot: the largest value when
    # every input was good, else a zeroed slot.
    empty = xp.where(n_good == n_total, s[n - 1], 0.0)
    return xp.where(count > 0, value, empty)


def _sorted_good(xp, stack, bad):
    values = stack.astype(np.float64)
    if bad is None:
        n_good = xp.full(stack.shape[1:], stack.shape[0], dtype=np.int32)
    else:
        values = xp.where(bad, np.inf, values)
        n_good = (stack.shape[0] - bad.sum(axis=0, dtype=np.int32)).astype(np.int32)
    return xp.sort(values, axis=0), n_good


def _fill_first_column(xp, stack, bad, result, reducer, nlow: int, nhigh: int):
    """The ``i`` variants: all-masked pixels take the first non-zero input (column 0 only)."""
    cols = slice(None) if stack.shape[0] == 1 else slice(0, 1)
    sub = stack[:, :, cols].astype(np.float64)
    sub_bad = bad[:, :, cols]
    empty = sub_bad.all(axis=0)
    nonzero = sub != 0.0
    first = xp.argmax(nonzero, axis=0)
    has = nonzero.any(axis=0)
    fill = xp.take_along_axis(sub, first[None], axis=0)[0]
    one = xp.ones(fill.shape, dtype=np.int32)
    filled = reducer(xp, fill[None], one, nlow, nhigh, stack.shape[0])
    use = empty & has
    result[:, cols] = xp.where(use, filled, result[:, cols])
    return result


def combine_stack(stack, bad=None, kind: str = "median", nlow: int = 0, nhigh: int = 0):
    """Combine a stack of images pixel by pixel (``num_combine`` semantics).

    Parameters
    ----------
    stack : ndarray, shape (n, ny, nx)
        Images to combine (any real dtype; combined in float64). NumPy or CuPy.
    bad : ndarray of bool, shape (n, ny, nx), optional
        True where a value must be ignored.
    kind : {"median", "imedian", "mean", "imean", "sum"}
        Combination; ``sum`` ignores the masks.
    nlow, nhigh : int
        Number of lowest/highest good values to drop.

    Returns
    -------
    ndarray
        float32 ``(ny, nx)`` on the device of ``stack``.
    """
    xp = array_module(stack)
    if kind not in COMBINE_TYPES:
        raise ValueError(f"unknown combination {kind!r}")
    if stack.shape[0] - nlow - nhigh < 1:
        raise ValueError("nlow + nhigh reject every image")
    if kind == "sum":
        return stack.sum(axis=0).astype(np.float32)
    if xp is np:
        return combine_stack_cpu(stack, bad, kind, nlow, nhigh)
    s, n_good = _sorted_good(xp, stack, bad)
    reducer = _median_of_sorted if kind.endswith("median") else _mean_of_sorted
    result = reducer(xp, s, n_good, nlow, nhigh, stack.shape[0])
    if kind.startswith("i") and bad is not None:
        result = _fill_first_column(xp, stack, bad, result, reducer, nlow, nhigh)
    return result.astype(np.float32)


def box_any(flag, half: int):
    """True where any ``flag`` pixel lies in the ``(2*half+1)**2`` box (zero padding)."""
    xp = array_module(flag)
    if half <= 0:
        return flag.astype(bool)
    counts = flag.astype(np.int32)
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (half + 1, half)
        c = xp.cumsum(xp.pad(counts, pad), axis=axis)
        size = 2 * half + 1
        n = counts.shape[axis]
        hi = [slice(None), slice(None)]
        lo = [slice(None), slice(None)]
        hi[axis] = slice(size, size + n)
        lo[axis] = slice(0, n)
        counts = c[tuple(hi)] - c[tuple(lo)]
    return counts > 0


def minmed(stack, weights, bad, readnoise, exptime, background, *, grow: int = 1,
           nsigma1: float = 4.0, nsigma2: float = 3.0, fill: bool = False):
    """drizzlepac's ``minmed`` combination.

    Parameters
    ----------
    stack : ndarray, shape (n, ny, nx)
        Separately drizzled images (count rates, float32).
    weights : ndarray, shape (n, ny, nx)
        Their weight images (float32; exposure-time weights).
    bad : ndarray of bool, shape (n, ny, nx), or None
        True where an image must be ignored.
    readnoise, exptime, background : sequence of float
        Per image: read noise (e-), exposure time (s) and reference sky (e-).
    grow : int
        Half size of the box that spreads "use the minimum" decisions (0: none).
    nsigma1, nsigma2 : float
        Significance for accepting the minimum without / with a flagged neighbour.
    fill : bool
        Use the ``imean``/``imedian`` variants for the base image.

    Returns
    -------
    ndarray
        float32 ``(ny, nx)``.
    """
    xp = array_module(stack)
    if xp is np:
        return minmed_cpu(stack, weights, bad, readnoise, exptime, background, grow, nsigma1, nsigma2, fill)
    return _minmed_arrays(xp, stack, weights, bad, readnoise, exptime, background, grow, nsigma1,
                          nsigma2, fill)


def _minmed_arrays(xp, stack, weights, bad, readnoise, exptime, background, grow, nsigma1, nsigma2, fill):
    """Array-module implementation of :func:`minmed` (the device path)."""
    n = stack.shape[0]
    if n == 2:
        base = combine_stack(stack, bad, "imean" if fill else "mean")
    else:
        base = combine_stack(stack, bad, "imedian" if fill else "median", nlow=0, nhigh=1)
    if bad is None:
        minimum = stack.min(axis=0)
        all_bad = None
        read2 = xp.full(stack.shape[1:], float(sum(r * r for r in readnoise)), dtype=np.float64)
    else:
        n_bad = bad.sum(axis=0, dtype=np.int32)
        all_bad = n_bad == n
        if n >= 3:
            only = (stack * xp.logical_not(bad)).sum(axis=0)
            base = xp.where(n_bad == n - 1, only, base).astype(np.float32)
        minimum = xp.where(bad, np.float32(np.inf), stack).min(axis=0)
        minimum = xp.where(all_bad, np.float32(0.0), minimum)
        rn2 = xp.asarray(np.asarray(readnoise, dtype=np.float64) ** 2)
        read2 = (xp.logical_not(bad) * rn2[:, None, None]).sum(axis=0)
    sky_rate = xp.asarray(np.asarray([b / t for b, t in zip(background, exptime)], dtype=np.float64))
    sky = (weights * sky_rate[:, None, None]).sum(axis=0)
    total_weight = weights.sum(axis=0)
    low_w = minimum * total_weight
    base_w = base * total_weight
    sigma = xp.sqrt(xp.fmax(base_w + sky + read2, 0.0))
    threshold = base_w - sigma * nsigma1
    if grow != 0:
        near = box_any(low_w < threshold, grow)
        threshold = xp.where(near, base_w - sigma * nsigma2, base_w - sigma * nsigma1)
    result = xp.where(low_w < threshold, minimum, base).astype(np.float32)
    if all_bad is not None:
        result = xp.where(all_bad, np.float32(0.0), result)
    return result


# ============================================================================ CPU (Numba) drivers
# The same semantics as the array code above, one pass per pixel over the stack: the host
# path avoids sorting (n, ny, nx) float64 copies. Summation orders follow the array code
# (sequential over images), so both paths give identical bits.

@numba.njit(cache=True, nogil=True)
def _sort_prefix(buf, n):
    """Insertion sort of ``buf[:n]`` (n is the stack depth: small)."""
    for i in range(1, n):
        v = buf[i]
        j = i - 1
        while j >= 0 and buf[j] > v:
            buf[j + 1] = buf[j]
            j -= 1
        buf[j + 1] = v


@numba.njit(cache=True, nogil=True)
def _median_of(buf, n_good, nlow, nhigh):
    if n_good <= 0:
        return 0.0
    while nlow + nhigh >= n_good:
        if nhigh > 0:
            nhigh -= 1
        if nlow > 0:
            nlow -= 1
    count = n_good - nlow - nhigh
    mid = count // 2
    if count % 2 == 1:
        return buf[nlow + mid]
    return (buf[nlow + mid] + buf[nlow + mid - 1]) / 2.0


@numba.njit(cache=True, nogil=True)
def _mean_of(buf, n_good, nlow, nhigh, n_total):
    count = n_good - nlow - nhigh
    if count <= 0:
        return buf[n_total - 1] if n_good == n_total and n_total > 0 else 0.0
    total = 0.0
    for i in range(nlow, nlow + count):
        total += buf[i]
    return total / count


@numba.njit(cache=True, nogil=True)
def _gather(stack, bad, use_bad, fill, y, x, buf):
    """Good values of pixel (y, x) into ``buf`` (float64); the ``i``-variant fill when asked."""
    n = stack.shape[0]
    k = 0
    for i in range(n):
        if not use_bad or not bad[i, y, x]:
            buf[k] = stack[i, y, x]
            k += 1
    if k == 0 and fill:
        for i in range(n):
            if stack[i, y, x] != 0.0:
                buf[0] = stack[i, y, x]
                k = 1
                break
    _sort_prefix(buf, k)
    return k


@numba.njit(parallel=True, cache=True, nogil=True)
def _combine_cpu(stack, bad, use_bad, median, fill, nlow, nhigh, out):
    n, ny, nx = stack.shape
    for y in numba.prange(ny):
        buf = np.empty(max(n, 1), dtype=np.float64)
        for x in range(nx):
            k = _gather(stack, bad, use_bad, fill and (x == 0 or n == 1), np.int64(y), x, buf)
            if median:
                out[y, x] = np.float32(_median_of(buf, k, nlow, nhigh))
            else:
                out[y, x] = np.float32(_mean_of(buf, k, nlow, nhigh, n))


@numba.njit(parallel=True, cache=True, nogil=True)
def _minmed_pass_cpu(stack, weights, bad, use_bad, fill, rn2, sky_rate, nsigma1, nsigma2,
                     base_out, min_out, low_w_out, thr1_out, thr2_out, all_bad_out):
    n, ny, nx = stack.shape
    for y in numba.prange(ny):
        buf = np.empty(n, dtype=np.float64)
        for x in range(nx):
            k = _gather(stack, bad, use_bad, fill and (x == 0 or n == 1), np.int64(y), x, buf)
            if n == 2:
                base = np.float32(_mean_of(buf, k, 0, 0, n))
            else:
                base = np.float32(_median_of(buf, k, 0, 1))
            n_bad = 0
            only = np.float32(0.0)
            lowest = np.float32(np.inf)
            total_w = np.float32(0.0)
            sky = 0.0
            read2 = 0.0
            for i in range(n):
                v = stack[i, y, x]
                w = weights[i, y, x]
                total_w += w
                sky += np.float64(w) * sky_rate[i]
                if use_bad and bad[i, y, x]:
                    n_bad += 1
                else:
                    read2 += rn2[i]
                    only += v
                    if v < lowest:
                        lowest = v
            if use_bad and n >= 3 and n_bad == n - 1:
                base = only
            all_bad = use_bad and n_bad == n
            if all_bad:
                lowest = np.float32(0.0)
            low_w = lowest * total_w
            base_w = base * total_w
            s = np.float64(base_w) + sky + read2
            sigma = np.sqrt(s if s > 0.0 else 0.0)
            base_out[y, x] = base
            min_out[y, x] = lowest
            low_w_out[y, x] = low_w
            thr1_out[y, x] = base_w - sigma * nsigma1
            thr2_out[y, x] = base_w - sigma * nsigma2
            all_bad_out[y, x] = all_bad


@numba.njit(parallel=True, cache=True, nogil=True)
def _minmed_select_cpu(base, minimum, low_w, thr1, thr2, all_bad, grow, out):
    ny, nx = base.shape
    for y in numba.prange(ny):
        for x in range(nx):
            threshold = thr1[y, x]
            if grow != 0:
                near = False
                for yy in range(max(0, y - grow), min(ny, y + grow + 1)):
                    for xx in range(max(0, x - grow), min(nx, x + grow + 1)):
                        if low_w[yy, xx] < thr1[yy, xx]:
                            near = True
                if near:
                    threshold = thr2[y, x]
            value = minimum[y, x] if low_w[y, x] < threshold else base[y, x]
            out[y, x] = np.float32(0.0) if all_bad[y, x] else value


def _cpu_inputs(stack, bad):
    stack = np.ascontiguousarray(stack, dtype=np.float32)
    if bad is None:
        return stack, np.zeros((1, 1, 1), dtype=np.bool_), False
    return stack, np.ascontiguousarray(bad, dtype=np.bool_), True


def combine_stack_cpu(stack, bad, kind, nlow, nhigh):
    """Host driver of :func:`combine_stack` (median/mean family)."""
    stack, bad, use_bad = _cpu_inputs(stack, bad)
    out = np.empty(stack.shape[1:], dtype=np.float32)
    _combine_cpu(stack, bad, use_bad, kind.endswith("median"), kind.startswith("i") and use_bad,
                 int(nlow), int(nhigh), out)
    return out


def minmed_cpu(stack, weights, bad, readnoise, exptime, background, grow, nsigma1, nsigma2, fill):
    """Host driver of :func:`minmed`."""
    stack, bad, use_bad = _cpu_inputs(stack, bad)
    weights = np.ascontiguousarray(weights, dtype=np.float32)
    shape = stack.shape[1:]
    rn2 = np.asarray(readnoise, dtype=np.float64) ** 2
    sky_rate = np.asarray([b / t for b, t in zip(background, exptime)], dtype=np.float64)
    base = np.empty(shape, np.float32)
    minimum = np.empty(shape, np.float32)
    low_w = np.empty(shape, np.float32)
    thr1 = np.empty(shape, np.float64)
    thr2 = np.empty(shape, np.float64)
    all_bad = np.empty(shape, np.bool_)
    _minmed_pass_cpu(stack, weights, bad, use_bad, bool(fill) and use_bad, rn2, sky_rate,
                     float(nsigma1), float(nsigma2), base, minimum, low_w, thr1, thr2, all_bad)
    out = np.empty(shape, np.float32)
    _minmed_select_cpu(base, minimum, low_w, thr1, thr2, all_bad, int(grow), out)
    return out
