"""Sigma clipping and robust statistics (CPU drivers, Numba).

Semantics follow astropy's :class:`~astropy.stats.SigmaClip`:

* :func:`sigma_clip_image` gives astropy's ``axis=None`` result for a whole image: the
  survivors after ``t`` iterations are exactly the values inside the intersection of the
  ``t`` clipping intervals, so after one pass compacting the valid values each iteration is
  one histogram pass over the survivors (the median's ranks; it also drops the clipped
  values) plus one pass gathering the median bins and the shifted sums of the mean and
  variance. :func:`sigma_clip_flat` is the direct in-place version for small vectors.
  With ``as_f32`` the centre, spread and bounds are rounded to float32 as NumPy does for
  float32 input.
* :func:`box_statistics` is astropy's fast C path used by photutils ``Background2D`` (bounds
  in float64, one box per mesh cell), followed by the background and rms estimators.

All statistics are accumulated in float64.
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np
from numba import cuda, prange

from . import _select, _stats_math
from ..targets import compile_namespace, cuda_module_for, rebind

__all__ = [
    "compact_finite",
    "sigma_clip_flat",
    "sigma_clip_image",
    "clipped_stats_flat",
    "box_statistics",
    "cuda_box_kernel",
    "mad_rms_diffs",
    "CEN_MEDIAN",
    "CEN_MEAN",
    "STD_STD",
    "STD_MAD",
    "BKG_SEXTRACTOR",
    "BKG_MEDIAN",
    "BKG_MEAN",
    "BKG_MMM",
    "RMS_STD",
    "RMS_MADSTD",
]

CEN_MEDIAN = 0
CEN_MEAN = 1
STD_STD = 0
STD_MAD = 1

BKG_SEXTRACTOR = _stats_math.BKG_SEXTRACTOR
BKG_MEDIAN = _stats_math.BKG_MEDIAN
BKG_MEAN = _stats_math.BKG_MEAN
BKG_MMM = _stats_math.BKG_MMM
RMS_STD = _stats_math.RMS_STD
RMS_MADSTD = _stats_math.RMS_MADSTD

MAD_TO_STD = _stats_math.MAD_TO_STD

_MATH = _select.SELECT_FUNCTIONS + _stats_math.STATS_FUNCTIONS
_sel = compile_namespace(_MATH, "cpu")
_box_stats_one = _sel.box_stats_one
_kth = _sel.kth_smallest
_median_typed = _sel.median_typed
_mean_std = _sel.mean_std
_round_f32 = _sel.round_f32

_JIT = dict(nogil=True, cache=True, error_model="numpy")


@numba.njit(**_JIT)
def compact_finite(data, mask, use_mask):
    """Return the finite, unmasked values of a 2-D array as a float64 vector (raster order)."""
    ny, nx = data.shape
    counts = np.zeros(ny + 1, dtype=np.int64)
    for j in range(ny):
        c = 0
        for i in range(nx):
            v = data[j, i]
            if math.isfinite(v) and not (use_mask and mask[j, i]):
                c += 1
        counts[j + 1] = c
    for j in range(ny):
        counts[j + 1] += counts[j]
    out = np.empty(counts[ny], dtype=np.float64)
    for j in range(ny):
        k = counts[j]
        for i in range(nx):
            v = data[j, i]
            if math.isfinite(v) and not (use_mask and mask[j, i]):
                out[k] = v
                k += 1
    return out


@numba.njit(**_JIT)
def _centre_spread(buf, n, scratch, cen_func, std_func, as_f32):
    """Centre (median or mean) and spread (std or MAD std) of ``buf[0:n]``."""
    for i in range(n):
        scratch[i] = buf[i]
    median = _median_typed(scratch, n, as_f32)
    mean, std = _mean_std(buf, n, 0)
    mean = _round_f32(mean, as_f32)
    median = _round_f32(median, as_f32)
    cen = median if cen_func == CEN_MEDIAN else mean
    if std_func == STD_MAD:
        for i in range(n):
            scratch[i] = _round_f32(abs(buf[i] - median), as_f32)
        std = _round_f32(_median_typed(scratch, n, as_f32), as_f32)
        std = _round_f32(std * (np.float32(MAD_TO_STD) if as_f32 else MAD_TO_STD), as_f32)
    else:
        std = _round_f32(std, as_f32)
    return cen, std


@numba.njit(**_JIT)
def _bounds(cen, std, sigma_lower, sigma_upper, as_f32):
    if as_f32:
        lo = np.float32(np.float32(cen) - np.float32(np.float32(std) * np.float32(sigma_lower)))
        hi = np.float32(np.float32(cen) + np.float32(np.float32(std) * np.float32(sigma_upper)))
        return np.float64(lo), np.float64(hi)
    return cen - std * sigma_lower, cen + std * sigma_upper


@numba.njit(**_JIT)
def sigma_clip_flat(buf, sigma_lower, sigma_upper, maxiters, cen_func, std_func, as_f32):
    """Sigma-clip ``buf`` in place (astropy ``axis=None`` semantics).

    Parameters
    ----------
    buf : ndarray, float64, shape (n,)
        Finite values; on return ``buf[:n_kept]`` holds the survivors (order not preserved).
    sigma_lower, sigma_upper : float
        Clipping limits in units of the spread.
    maxiters : int
        Maximum number of iterations (negative: until convergence).
    cen_func, std_func : int
        ``CEN_MEDIAN``/``CEN_MEAN`` and ``STD_STD``/``STD_MAD``.
    as_f32 : bool
        Round centre, spread and bounds to float32 (NumPy float32 arithmetic).

    Returns
    -------
    n_kept : int
    lower, upper : float
        The last bounds (NaN if no iteration ran).
    n_iter : int
    """
    n = buf.shape[0]
    scratch = np.empty(n, dtype=np.float64)
    lower = math.nan
    upper = math.nan
    iteration = 0
    changed = 1
    while changed != 0 and (maxiters < 0 or iteration < maxiters):
        iteration += 1
        if n == 0:
            break
        cen, std = _centre_spread(buf, n, scratch, cen_func, std_func, as_f32)
        lower, upper = _bounds(cen, std, sigma_lower, sigma_upper, as_f32)
        k = 0
        for i in range(n):
            v = buf[i]
            if v >= lower and v <= upper:
                buf[k] = v
                k += 1
        changed = n - k
        n = k
    return n, lower, upper, iteration



# --------------------------------------------------------------------------------------------
# Histogram-based clipping of a whole image: the survivors after t iterations are exactly the
# values inside the intersection of all bounds so far, [L, U]. The valid values are first
# compacted (raster order, one pass that also finds their range); each iteration is then one
# histogram pass (ranks of the median) that also compacts the survivors in place, and one
# gather pass (values of the median bins and shifted sums for the mean and variance) over the
# survivors only. The sums run over the same values in the same order, chunk by chunk, as a
# pass over the image would (the chunks are fixed ranges of the flattened image).
# --------------------------------------------------------------------------------------------

_NBINS = 16384


@numba.njit(**_JIT)
def _valid(v, k, mask, use_mask):
    return (not math.isnan(v)) and (not math.isinf(v)) and not (use_mask and mask[k])


@numba.njit(parallel=True, **_JIT)
def _compact_valid(flat, mask, use_mask, nchunks):
    """The finite, unmasked values of ``flat`` in order, chunk by chunk, and their range.

    Chunk ``c`` of the image is ``flat[c * size:(c + 1) * size]`` with
    ``size = ceil(n / nchunks)``; its valid values are compacted in place to the start of its
    own slice of ``vec``: ``vec[bounds[c, 0]:bounds[c, 1]]``. Chunks run in parallel.

    Returns
    -------
    vec : ndarray, the dtype of ``flat``, shape (n,)
        Entries outside the chunks' ranges are unused.
    bounds : ndarray, int64, shape (nchunks, 2)
        Start and end of each chunk's valid values.
    lo, hi : float
        Minimum and maximum valid value (+inf and -inf when there is none).
    """
    n = flat.shape[0]
    size = (n + nchunks - 1) // nchunks
    vec = np.empty(n, dtype=flat.dtype)
    bounds = np.zeros((nchunks, 2), dtype=np.int64)
    los = np.full(nchunks, np.inf)
    his = np.full(nchunks, -np.inf)
    for c in prange(nchunks):
        a = min(n, c * size)
        b = min(n, a + size)
        m = a
        lo = np.inf
        hi = -np.inf
        for k in range(a, b):
            v = flat[k]
            if _valid(v, k, mask, use_mask):
                vec[m] = v
                m += 1
                x = np.float64(v)
                if x < lo:
                    lo = x
                if x > hi:
                    hi = x
        bounds[c, 0] = a
        bounds[c, 1] = m
        los[c] = lo
        his[c] = hi
    lo = np.inf
    hi = -np.inf
    for c in range(nchunks):               # the first extreme in order, as one sweep finds
        if los[c] < lo:
            lo = los[c]
        if his[c] > hi:
            hi = his[c]
    return vec, bounds, lo, hi


@numba.njit(**_JIT)
def _bin_of(x, a, scale, nbins):
    b = int((x - a) * scale)
    if b < 0:
        return 0
    if b >= nbins:
        return nbins - 1
    return b


@numba.njit(parallel=True, **_JIT)
def _hist_pass(vec, bounds, lower, upper, centre, absolute, nbins, as_f32):
    """Per-chunk histograms of ``x`` (or ``|x - centre|``) for the values in ``[lower, upper]``,
    which are compacted in place within each chunk (order kept; ``bounds`` updated). Chunks
    run in parallel."""
    nchunks = bounds.shape[0]
    hist = np.zeros((nchunks, nbins), dtype=np.int64)
    if absolute:
        a = 0.0
        top = max(upper - centre, centre - lower)
    else:
        a = lower
        top = upper - lower
    scale = nbins / top if top > 0 else 0.0
    for c in prange(nchunks):
        w = bounds[c, 0]
        for k in range(bounds[c, 0], bounds[c, 1]):
            v = vec[k]
            x = np.float64(v)
            if x >= lower and x <= upper:
                vec[w] = v
                w += 1
                if absolute:
                    x = abs(x - centre)
                    if as_f32:
                        x = np.float64(np.float32(x))
                hist[c, _bin_of(x, a, scale, nbins)] += 1
        bounds[c, 1] = w
    return hist, a, scale


@numba.njit(**_JIT)
def _rank_bins(total, r1, r2):
    """Bins holding the ``r1``-th and ``r2``-th values (0-based) of a cumulative histogram."""
    acc = 0
    b1 = -1
    b2 = -1
    for b in range(total.shape[0]):
        acc += total[b]
        if b1 < 0 and acc > r1:
            b1 = b
        if acc > r2:
            b2 = b
            break
    return b1, b2


@numba.njit(**_JIT)
def _serial_sum(a):
    """``a.sum()`` as a serial compiled function sums: from 0.0, in order."""
    total = 0.0
    for k in range(a.shape[0]):
        total += a[k]
    return total


@numba.njit(parallel=True, **_JIT)
def _gather_pass(vec, bounds, centre, absolute, hist, a, scale, b1, b2, shift, as_f32):
    """Gather the values whose bin is ``b1`` or ``b2`` and accumulate shifted sums of all
    values (the survivors compacted by :func:`_hist_pass`), chunks in parallel: each chunk
    sums its own values in order and writes its gathered values to its own slice (the
    offsets come from the per-chunk histograms), so the result is the serial sweep's."""
    nchunks = bounds.shape[0]
    nbins = hist.shape[1]
    offsets = np.zeros(nchunks + 1, dtype=np.int64)
    below = 0
    for c in range(nchunks):
        m = hist[c, b1]
        if b2 != b1:
            m += hist[c, b2]
        offsets[c + 1] = offsets[c] + m
    for b in range(b1):
        for c in range(nchunks):
            below += hist[c, b]
    out = np.empty(offsets[nchunks], dtype=np.float64)
    s1 = np.zeros(nchunks)
    s2 = np.zeros(nchunks)
    for c in prange(nchunks):
        k_out = offsets[c]
        t1 = 0.0
        t2 = 0.0
        for k in range(bounds[c, 0], bounds[c, 1]):
            x = np.float64(vec[k])
            if absolute:
                x = abs(x - centre)
                if as_f32:
                    x = np.float64(np.float32(x))
            d = x - shift
            t1 += d
            t2 += d * d
            b = _bin_of(x, a, scale, nbins)
            if b == b1 or b == b2:
                out[k_out] = x
                k_out += 1
        s1[c] = t1
        s2[c] = t2
    # the chunk sums added in order: an array ``.sum()`` in a parallel function would become
    # a threaded reduction whose order follows the thread count
    return out, below, _serial_sum(s1), _serial_sum(s2)


def _image_stats(vec, bounds, lower, upper, centre, absolute, as_f32):
    """Count, median, mean and (ddof=0) variance of the values in ``[lower, upper]`` (the
    others are dropped from ``vec``).

    With ``absolute`` the statistics are those of ``|x - centre|`` (rounded to float32 when
    ``as_f32``), used for the MAD.
    """
    hist, a, scale = _hist_pass(vec, bounds, lower, upper, centre, absolute, _NBINS, as_f32)
    total = hist.sum(axis=0)
    n = total.sum()
    if n == 0:
        return 0, math.nan, math.nan, math.nan
    r2 = n // 2
    r1 = r2 if n % 2 == 1 else r2 - 1
    b1, b2 = _rank_bins(total, r1, r2)
    shift = a + b1 / scale if scale > 0 else a
    vals, below, s1, s2 = _gather_pass(vec, bounds, centre, absolute, hist, a, scale, b1, b2,
                                       shift, as_f32)
    median = _median_of_ranks(vals, r1 - below, r2 - below, as_f32)
    mean = shift + s1 / n
    var = max(s2 / n - (s1 / n) ** 2, 0.0)
    return n, median, mean, var


@numba.njit(**_JIT)
def _median_of_ranks(vals, k1, k2, as_f32):
    m = vals.shape[0]
    upper_v = _kth(vals, m, k2)
    if k1 == k2:
        return upper_v
    lower_v = _kth(vals, m, k1)
    return 0.5 * _round_f32(lower_v + upper_v, as_f32)


def sigma_clip_image(flat, mask, use_mask, sigma_lower, sigma_upper, maxiters, cen_func,
                     std_func, ddof, as_f32, nchunks):
    """Sigma-clipped (mean, median, std, n) of a flattened image.

    Same results as :func:`sigma_clip_flat` followed by :func:`clipped_stats_flat`: after
    ``t`` iterations the survivors are the values inside the intersection of all bounds.
    This driver runs on the host and calls one compiled pass per step; each pass runs the
    ``nchunks`` chunks in parallel, and its sums are combined chunk by chunk in order, so the
    result depends on ``nchunks`` but not on the number of threads.
    """
    vec, bounds, lower, upper = _compact_valid(flat, mask, use_mask, nchunks)
    n, lower, upper = int((bounds[:, 1] - bounds[:, 0]).sum()), float(lower), float(upper)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    iteration = 0
    n_cur, median, mean, var = _image_stats(vec, bounds, lower, upper, 0.0, False, as_f32)
    while maxiters < 0 or iteration < maxiters:
        iteration += 1
        mean_r = _round_f32(mean, as_f32)
        median_r = _round_f32(median, as_f32)
        cen = median_r if cen_func == CEN_MEDIAN else mean_r
        if std_func == STD_MAD:
            _, mad, _, _ = _image_stats(vec, bounds, lower, upper, median_r, True, as_f32)
            std = _round_f32(_round_f32(mad, as_f32)
                             * (np.float32(MAD_TO_STD) if as_f32 else MAD_TO_STD), as_f32)
        else:
            std = _round_f32(math.sqrt(var), as_f32)
        lo, hi = _bounds(cen, std, sigma_lower, sigma_upper, as_f32)
        lower = max(lower, lo)
        upper = min(upper, hi)
        if not (lower <= upper):
            return math.nan, math.nan, math.nan, 0
        n_new, median_n, mean_n, var_n = _image_stats(vec, bounds, lower, upper, 0.0, False,
                                                      as_f32)
        changed = n_cur - n_new
        n_cur, median, mean, var = n_new, median_n, mean_n, var_n
        if n_cur == 0:
            return math.nan, math.nan, math.nan, 0
        if changed == 0:
            break
    if n_cur - ddof <= 0:
        std_out = math.nan
    else:
        std_out = math.sqrt(var * n_cur / (n_cur - ddof))
    return (_round_f32(mean, as_f32), _round_f32(median, as_f32), _round_f32(std_out, as_f32),
            n_cur)


@numba.njit(**_JIT)
def clipped_stats_flat(buf, n, ddof, as_f32):
    """Mean, median and standard deviation of ``buf[0:n]`` (median reorders ``buf``).

    Values are rounded to float32 when ``as_f32``; NaNs for an empty buffer.
    """
    if n == 0:
        return math.nan, math.nan, math.nan
    mean, std = _mean_std(buf, n, ddof)
    median = _median_typed(buf, n, as_f32)
    return _round_f32(mean, as_f32), _round_f32(median, as_f32), _round_f32(std, as_f32)


@numba.njit(parallel=True, **_JIT)
def box_statistics(data, mask, use_mask, box_y, box_x, sigma_lower, sigma_upper, maxiters,
                   do_clip, bkg_id, rms_id, good_npix, as_f32):
    """Per-box clipped background and rms of a 2-D image (photutils ``Background2D`` mesh).

    Boxes tile the image from the origin; the last row and column of boxes may be partial.
    A box whose number of surviving pixels is ``<= good_npix`` gets NaN. See
    :func:`._stats_math.box_stats_one` for the statistics of one box.

    Returns
    -------
    bkg, rms : ndarray, float64, shape (n_box_y, n_box_x)
    n_good : ndarray, int64, shape (n_box_y, n_box_x)
    """
    ny, nx = data.shape
    nby = (ny + box_y - 1) // box_y
    nbx = (nx + box_x - 1) // box_x
    bkg = np.full((nby, nbx), np.nan)
    rms = np.full((nby, nbx), np.nan)
    ngood = np.zeros((nby, nbx), dtype=np.int64)
    for b in prange(nby * nbx):
        by = b // nbx
        bx = b % nbx
        buf = np.empty(box_y * box_x, dtype=np.float64)
        scratch = np.empty_like(buf)
        bkg[by, bx], rms[by, bx], ngood[by, bx] = _box_stats_one(
            data, mask, use_mask, by, bx, box_y, box_x, sigma_lower, sigma_upper, maxiters,
            do_clip, bkg_id, rms_id, good_npix, as_f32, buf, scratch)
    return bkg, rms, ngood


def _box_kernel(data, mask, use_mask, box_y, box_x, sigma_lower, sigma_upper, maxiters,
                do_clip, bkg_id, rms_id, good_npix, as_f32, work, scratch, bkg, rms, ngood):
    b = cuda.grid(1)
    nby = bkg.shape[0]
    nbx = bkg.shape[1]
    if b < nby * nbx:
        by = b // nbx
        bx = b - by * nbx
        v0, v1, v2 = box_stats_one(data, mask, use_mask, by, bx, box_y, box_x, sigma_lower,
                                   sigma_upper, maxiters, do_clip, bkg_id, rms_id, good_npix,
                                   as_f32, work[b], scratch[b])
        bkg[by, bx] = v0
        rms[by, bx] = v1
        ngood[by, bx] = v2


@functools.lru_cache(maxsize=None)
def cuda_box_kernel(target: str):
    """Box-statistics kernel (one thread per box) for ``cuda`` or ``cudasim``.

    Arguments as :func:`box_statistics` plus float64 workspaces ``work`` and ``scratch`` of
    shape (n_boxes, box_y * box_x) and the outputs ``bkg``, ``rms`` (float64) and ``ngood``
    (int64) of shape (n_box_y, n_box_x).
    """
    module = cuda_module_for(target)
    names = dict(vars(compile_namespace(_MATH, target)))
    return module.jit(rebind(_box_kernel, names))


@numba.njit(**_JIT)
def mad_rms_diffs(data):
    """``|2 I[:, 2:-2] - I[:, :-4] - I[:, 4:]|`` where all three pixels are finite and non-zero.

    Returns the valid absolute differences as a float64 vector (raster order). The
    differences are formed in the data's dtype (``a + a`` is exact), as NumPy does.
    """
    ny, nx = data.shape
    m = max(nx - 4, 0)
    counts = np.zeros(ny + 1, dtype=np.int64)
    for j in range(ny):
        c = 0
        for i in range(m):
            a = data[j, i + 2]
            b = data[j, i]
            d = data[j, i + 4]
            if (a != 0 and b != 0 and d != 0 and not math.isnan(a) and not math.isnan(b)
                    and not math.isnan(d)):
                c += 1
        counts[j + 1] = c
    for j in range(ny):
        counts[j + 1] += counts[j]
    out = np.empty(counts[ny], dtype=np.float64)
    for j in range(ny):
        k = counts[j]
        for i in range(m):
            a = data[j, i + 2]
            b = data[j, i]
            d = data[j, i + 4]
            if (a != 0 and b != 0 and d != 0 and not math.isnan(a) and not math.isnan(b)
                    and not math.isnan(d)):
                out[k] = abs((a + a) - b - d)
                k += 1
    return out


@numba.njit(**_JIT)
def _mad_diff(data, j, i):
    """``|2 I[j, i+2] - I[j, i] - I[j, i+4]|`` in the data dtype; -1 when a pixel is 0 or NaN."""
    a = data[j, i + 2]
    b = data[j, i]
    d = data[j, i + 4]
    if a == 0 or b == 0 or d == 0 or math.isnan(a) or math.isnan(b) or math.isnan(d):
        return -1.0
    return abs((a + a) - b - d)


_MAD_CHUNKS = 8


@numba.njit(parallel=True, **_JIT)
def mad_rms_median_f32(data):
    """Median of :func:`mad_rms_diffs` of a float32 image without forming the differences.

    The differences are non-negative float32 values, whose bit patterns sort like the values:
    one sweep histograms the upper 16 bits, a second sweep the lower 16 bits of the values in
    the one or two bins holding the central ranks, which gives the central values exactly.
    The median is NumPy's for float32 (``f32(lower + upper) / 2`` for an even count). Both
    sweeps run blocks of rows in parallel, each into its own integer histogram, summed
    afterwards (exact, whatever the number of threads).

    Returns
    -------
    n : int
        Number of valid differences.
    median : float
        NaN when ``n`` is 0.
    ok : bool
        False when a difference is NaN (infinite pixels); the median is then not computed
        (``n`` is then meaningless).
    """
    ny, nx = data.shape
    m = max(nx - 4, 0)
    nchunks = max(1, min(ny, _MAD_CHUNKS))
    rows = (ny + nchunks - 1) // nchunks
    highs = np.zeros((nchunks, 65536), dtype=np.int64)
    bad = np.zeros(nchunks, dtype=np.int64)
    for c in prange(nchunks):
        for j in range(c * rows, min(ny, (c + 1) * rows)):
            for i in range(m):
                v = _mad_diff(data, j, i)
                if v >= 0:
                    bits = np.uint32(np.float32(v).view(np.uint32))
                    highs[c, bits >> 16] += 1
                elif v != -1.0:
                    bad[c] += 1
    if bad.sum() > 0:
        return 0, math.nan, False
    high = np.zeros(65536, dtype=np.int64)
    for c in range(nchunks):
        for b in range(65536):
            high[b] += highs[c, b]
    n = high.sum()
    if n == 0:
        return 0, math.nan, True
    r2 = n // 2
    r1 = r2 if n % 2 == 1 else r2 - 1
    acc = 0
    b1 = -1
    b2 = -1
    below1 = 0
    below2 = 0
    for b in range(65536):
        c = high[b]
        if b1 < 0 and acc + c > r1:
            b1 = b
            below1 = acc
        if acc + c > r2:
            b2 = b
            below2 = acc
            break
        acc += c
    lows1 = np.zeros((nchunks, 65536), dtype=np.int64)
    lows2 = np.zeros((nchunks, 65536), dtype=np.int64)
    for c in prange(nchunks):
        for j in range(c * rows, min(ny, (c + 1) * rows)):
            for i in range(m):
                v = _mad_diff(data, j, i)
                if v >= 0:
                    bits = np.uint32(np.float32(v).view(np.uint32))
                    h = bits >> 16
                    if h == b1:
                        lows1[c, bits & 0xFFFF] += 1
                    if h == b2:
                        lows2[c, bits & 0xFFFF] += 1
    low1 = np.zeros(65536, dtype=np.int64)
    low2 = np.zeros(65536, dtype=np.int64)
    for c in range(nchunks):
        for b in range(65536):
            low1[b] += lows1[c, b]
            low2[b] += lows2[c, b]
    v1 = _value_of_rank(low1, r1 - below1, b1)
    v2 = _value_of_rank(low2, r2 - below2, b2)
    if r1 == r2:
        return n, v2, True
    return n, _round_f32(0.5 * _round_f32(v1 + v2, True), True), True


@numba.njit(**_JIT)
def _value_of_rank(low, rank, high_bits):
    acc = 0
    for b in range(65536):
        acc += low[b]
        if acc > rank:
            bits = np.uint32((np.uint32(high_bits) << 16) | np.uint32(b))
            return np.float64(np.array([bits], dtype=np.uint32).view(np.float32)[0])
    return math.nan
