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
