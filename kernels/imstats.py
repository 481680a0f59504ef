"""Clipped image statistics with the semantics of ``stsci.imagestats.ImageStats``.

AstroDrizzle's static mask and its sky computation (through skypac) take their numbers from
``ImageStats``: iterative clipping with float32 limits, a float32 mean from a double sum, a
two-pass float32 standard deviation, a histogram mode with the parabolic peak interpolation,
and ``numpy.median`` of the clipped pixels. This module reproduces those numbers (including the
quirk that the clipped minimum/maximum start from the first array element) with array code
that runs on NumPy or CuPy arrays: per clipping pass one compaction and a few reductions.
Clipping stops early once a pass gives back the float32 limits it ran with (every later pass
would repeat it: the same numbers as all ``nclip + 1`` passes).

Arrays in, Python floats out. No logging, no configuration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from ._arrays import array_module, to_scalar

__all__ = ["ImageStatistics", "image_statistics"]

_F32 = np.float32
_MIN_FLOAT = 10.0 * float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class ImageStatistics:
    """Result of :func:`image_statistics` (float values as ImageStats returns them).

    Attributes
    ----------
    npix : int
        Number of pixels inside the final clipping range.
    mean, stddev, min, max : float
        Clipped mean, standard deviation, minimum and maximum (float32 values).
    mode : float or None
        Histogram mode (None unless requested).
    median : numpy.float32 or None
        ``numpy.median`` of the clipped pixels (None unless requested); a float32 scalar as
        ImageStats returns it, so that arithmetic with it stays float32 as in the reference.
    nbins : int
        Number of histogram bins used for the mode (0 when no mode was requested).
    clip_lower, clip_upper : float
        The clipping limits of the last pass.
    """

    npix: int
    mean: float
    stddev: float
    min: float
    max: float
    mode: float | None
    median: np.float32 | None
    nbins: int
    clip_lower: float
    clip_upper: float


# The double sums use four interleaved accumulators (instruction-level parallelism). The result
# can differ from a strictly sequential sum by ~1e-16 relative, far below the float32 rounding
# that follows (a flip needs the exact sum within 1e-16 of a float32 rounding boundary).


@numba.njit(cache=True, nogil=True, inline="always")
def _inside(v, lo, hi):
    return v >= lo and v <= hi


@numba.njit(cache=True, nogil=True)
def _chunk_moments(values, start, stop, lo, hi):
    """Count, sum (four accumulators), min and max of the in-range values of one chunk."""
    s0 = s1 = s2 = s3 = 0.0
    n = 0
    vmin = np.float32(np.inf)
    vmax = np.float32(-np.inf)
    i = start
    while i + 4 <= stop:
        v0, v1, v2, v3 = values[i], values[i + 1], values[i + 2], values[i + 3]
        if _inside(v0, lo, hi):
            s0 += v0
            n += 1
            vmin = min(vmin, v0)
            vmax = max(vmax, v0)
        if _inside(v1, lo, hi):
            s1 += v1
            n += 1
            vmin = min(vmin, v1)
            vmax = max(vmax, v1)
        if _inside(v2, lo, hi):
            s2 += v2
            n += 1
            vmin = min(vmin, v2)
            vmax = max(vmax, v2)
        if _inside(v3, lo, hi):
            s3 += v3
            n += 1
            vmin = min(vmin, v3)
            vmax = max(vmax, v3)
        i += 4
    while i < stop:
        v0 = values[i]
        if _inside(v0, lo, hi):
            s0 += v0
            n += 1
            vmin = min(vmin, v0)
            vmax = max(vmax, v0)
        i += 1
    return n, (s0 + s1) + (s2 + s3), vmin, vmax


@numba.njit(cache=True, nogil=True)
def _moments_cpu(values, lo, hi):
    """Count, double sum and the seeded min/max of ``lo <= v <= hi`` (ImageStats' first loop)."""
    n, total, vmin, vmax = _chunk_moments(values, 0, values.size, lo, hi)
    # ImageStats seeds its running extremes with the clipped first element.
    vmin = min(vmin, lo if lo > values[0] else values[0])
    vmax = max(vmax, hi if hi < values[0] else values[0])
    return n, total, vmin, vmax


@numba.njit(cache=True, nogil=True)
def _chunk_sumdiff(values, start, stop, vmin, vmax, mean):
    s0 = s1 = s2 = s3 = 0.0
    i = start
    while i + 4 <= stop:
        v0, v1, v2, v3 = values[i], values[i + 1], values[i + 2], values[i + 3]
        if _inside(v0, vmin, vmax):
            d = v0 - mean
            s0 += d * d
        if _inside(v1, vmin, vmax):
            d = v1 - mean
            s1 += d * d
        if _inside(v2, vmin, vmax):
            d = v2 - mean
            s2 += d * d
        if _inside(v3, vmin, vmax):
            d = v3 - mean
            s3 += d * d
        i += 4
    while i < stop:
        if _inside(values[i], vmin, vmax):
            d = values[i] - mean
            s0 += d * d
        i += 1
    return (s0 + s1) + (s2 + s3)


@numba.njit(cache=True, nogil=True)
def _sumdiff_cpu(values, vmin, vmax, mean):
    return _chunk_sumdiff(values, 0, values.size, vmin, vmax, mean)


@numba.njit(cache=True, nogil=True, inline="always")
def _bucket(bits):
    """Top 16 bits of an unsigned key ordered like the float32 value with these bits."""
    if bits & np.uint32(0x80000000):
        return (~bits) >> np.uint32(16)
    return (bits | np.uint32(0x80000000)) >> np.uint32(16)


@numba.njit(cache=True, nogil=True)
def _select_bucket_cpu(values, bits, lo, hi, rank, count):
    """The values in ``[lo, hi]`` of the radix buckets holding the ``rank``-th and next
    smallest of them (two passes), and how many in-range values lie below those buckets."""
    buckets = np.zeros(65536, dtype=np.int64)
    for i in range(values.size):
        v = values[i]
        if v >= lo and v <= hi:
            buckets[_bucket(bits[i])] += 1
    below = 0
    first = 0
    while below + buckets[first] <= rank:
        below += buckets[first]
        first += 1
    last = first
    need = rank + 2 if rank + 1 < count else rank + 1
    covered = below + buckets[first]
    while covered < need:
        last += 1
        covered += buckets[last]
    picked = np.empty(covered - below, dtype=np.float32)
    # the bucket range as unsigned, the type of the bucket numbers (a mixed comparison of
    # uint32 and int64 would go through float64, at three times the cost of this pass)
    first_bucket, last_bucket = np.uint32(first), np.uint32(last)
    k = 0
    for i in range(values.size):
        v = values[i]
        if v >= lo and v <= hi:
            b = _bucket(bits[i])
            if b >= first_bucket and b <= last_bucket:
                picked[k] = v
                k += 1
    return picked, below


def _select_cpu(values, bits, lo, hi, rank: int, count: int):
    """The ``rank``-th and next smallest of the values in ``[lo, hi]`` (the ``rank``-th twice
    when it is the last): two radix passes, then ``numpy.partition`` of the few values of the
    buckets holding them (exact order statistics, as a full sort gives)."""
    picked, below = _select_bucket_cpu(values, bits, lo, hi, rank, count)
    first = rank - below
    if rank + 1 < count:
        picked.partition([first, first + 1])
        return picked[first], picked[first + 1]
    picked.partition(first)
    return picked[first], picked[first]


def _median_cpu(values, lo: float, hi: float, count: int):
    """``numpy.median`` of the values in ``[lo, hi]`` (float32, mean of the middle pair)."""
    if count == 0:
        return _F32(np.nan)
    lower, upper = _select_cpu(values, values.view(np.uint32), _F32(lo), _F32(hi), (count - 1) // 2, count)
    if count % 2 == 1:
        return _F32(lower)
    return _F32(_F32(lower) + _F32(upper)) / _F32(2.0)


@numba.njit(cache=True, nogil=True)
def _histogram_cpu(values, start, top, inverse, inclusive, counts):
    for v in values:
        if v >= start and (v <= top if inclusive else v < top):
            counts[int(inverse * (v - start))] += 1


def _clip_pass_cpu(values, lo: float, hi: float):
    lo32, hi32 = _F32(lo), _F32(hi)
    npix, total, vmin, vmax = _moments_cpu(values, lo32, hi32)
    if npix == 0:
        return 0, math.nan, math.nan, math.nan, math.nan
    mean = _F32(total / npix)
    sumdiff = _sumdiff_cpu(values, _F32(vmin), _F32(vmax), mean)
    stddev = _F32(math.sqrt(sumdiff / (npix - 1))) if npix > 1 else _F32(math.nan)
    return npix, float(mean), float(stddev), float(vmin), float(vmax)


def _clip_pass(values, lo: float, hi: float, host: bool):
    """One ``computeMean`` pass: ``(npix, mean, stddev, min, max)`` over ``lo <= v <= hi``."""
    if host:
        return _clip_pass_cpu(values, lo, hi)
    lo32, hi32 = _F32(lo), _F32(hi)
    inside = values[(values >= lo32) & (values <= hi32)]
    npix = int(inside.size)
    if npix == 0:
        return 0, math.nan, math.nan, math.nan, math.nan
    first = _F32(to_scalar(values[0]))
    # ImageStats seeds its running minimum/maximum with the clipped first element, so an
    # out-of-range first pixel pins the extreme to the clipping limit.
    vmin = float(lo32) if first < lo32 else to_scalar(inside.min())
    vmax = float(hi32) if first > hi32 else to_scalar(inside.max())
    mean = _F32(to_scalar(inside.sum(dtype=np.float64)) / npix)
    diff = inside - mean
    sumdiff = to_scalar((diff * diff).sum(dtype=np.float64))
    stddev = _F32(math.sqrt(sumdiff / (npix - 1))) if npix > 1 else _F32(math.nan)
    return npix, float(mean), float(stddev), vmin, vmax


def _histogram(values, nbins: int, bin_width: float, vmin: float, host: bool):
    """``histogram1d``: float32 binning of every value in ``[vmin, vmin + nbins*width)``."""
    xp = array_module(values)
    width = _F32(bin_width)
    start = _F32(vmin)
    inverse = _F32(1.0) / width
    top = start + width * _F32(nbins)
    inclusive = int(inverse * (top - start)) == nbins
    if inclusive:  # the last edge would round onto nbins: shrink it and close the interval
        top = top * _F32(1.0 - np.finfo(np.float32).eps)
    if host:
        counts = np.zeros(nbins, dtype=np.int64)
        _histogram_cpu(values, start, top, inverse, inclusive, counts)
        return counts
    keep = (values >= start) & ((values <= top) if inclusive else (values < top))
    index = (inverse * (values[keep] - start)).astype(np.int32)
    counts = xp.bincount(index, minlength=nbins)[:nbins]
    return np.asarray(counts.get() if hasattr(counts, "get") else counts, dtype=np.int64)


def _mode(values, stddev: float, vmin: float, vmax: float, binwidth: float, host: bool) -> tuple[float, int]:
    hwidth = binwidth * stddev
    drange = vmax - vmin
    if hwidth < _MIN_FLOAT or abs(drange) < _MIN_FLOAT or hwidth > drange or not math.isfinite(hwidth):
        return vmin + 0.5 * hwidth, 1
    nbins = int(drange / hwidth) + 1
    bins = _histogram(values, nbins, drange / float(nbins - 1), vmin, host)
    if nbins == 2:
        if bins[0] > bins[1]:
            return vmin + 0.5 * hwidth, nbins
        if bins[0] < bins[1]:
            return vmin + 1.5 * hwidth, nbins
        return vmin + hwidth, nbins
    peak = int(np.argmax(bins))
    if peak == 0:
        return vmin + 0.5 * hwidth, nbins
    if peak == nbins - 1:
        return vmin + (nbins - 0.5) * hwidth, nbins
    dh1 = int(bins[peak] - bins[peak - 1])
    dh2 = int(bins[peak] - bins[peak + 1])
    if dh1 + dh2 == 0:
        return vmin + (peak + 0.5) * hwidth, nbins
    position = peak + 1 + 0.5 * (dh1 - dh2) / (dh1 + dh2)
    return vmin + (position - 0.5) * hwidth, nbins


def image_statistics(values, *, lower=None, upper=None, nclip: int = 0, lsig: float = 3.0,
                     usig: float = 3.0, binwidth: float = 0.1, mode: bool = False,
                     median: bool = False) -> ImageStatistics:
    """Clipped statistics of ``values`` exactly as ``stsci.imagestats.ImageStats`` computes them.

    Parameters
    ----------
    values : ndarray
        Pixel values (NumPy or CuPy, any shape; flattened in C order, cast to float32).
    lower, upper : float, optional
        Data limits (default: the minimum and maximum of ``values``).
    nclip : int
        Number of clipping iterations (``nclip + 1`` passes).
    lsig, usig : float
        Lower and upper clipping limits in standard deviations.
    binwidth : float
        Histogram bin width in standard deviations (mode only).
    mode, median : bool
        Also compute the histogram mode / the median of the clipped pixels.

    Returns
    -------
    ImageStatistics

    Raises
    ------
    ValueError
        If ``values`` is empty, a limit excludes every pixel, or a clipping pass is left
        without pixels (ImageStats raises the same).
    """
    return _statistics(values, lower, upper, nclip, lsig, usig, binwidth, mode, median,
                       host=array_module(values) is np)


def _statistics(values, lower, upper, nclip, lsig, usig, binwidth, mode, median, *, host: bool):
    """:func:`image_statistics` with the implementation chosen: compiled host loops or array code."""
    xp = array_module(values)
    values = xp.ascontiguousarray(xp.ravel(xp.asarray(values, dtype=np.float32)))
    if values.size == 0:
        raise ValueError("not enough data points to compute statistics")
    data_min = to_scalar(values.min())
    data_max = to_scalar(values.max())
    if lower is None:
        lower = data_min
    elif lower > data_max:
        raise ValueError("lower data cutoff is larger than the maximum pixel value")
    elif upper is not None and lower > upper:
        raise ValueError("lower data cutoff must be smaller than the upper cutoff")
    if upper is None:
        upper = data_max
    elif upper < data_min:
        raise ValueError("upper data cutoff is smaller than the minimum pixel value")
    clip_lo, clip_hi = lower, upper
    for iteration in range(nclip + 1):
        npix, mean, stddev, vmin, vmax = _clip_pass(values, clip_lo, clip_hi, host)
        if npix <= 0:
            raise ValueError("no valid pixels within the clipping range")
        if iteration < nclip:
            previous = (_F32(clip_lo), _F32(clip_hi))
            clip_lo = max(lower, mean - lsig * stddev)
            clip_hi = min(upper, mean + usig * stddev)
            if (_F32(clip_lo), _F32(clip_hi)) == previous:
                # A pass depends on its limits only through their float32 values: the next
                # pass would repeat this one, and give these limits again, to the last one.
                break
    med = None
    if median:
        lo_m, hi_m = (clip_lo, clip_hi) if nclip > 0 else (-np.inf, np.inf)
        if host:
            count = npix if nclip > 0 else values.size
            med = _median_cpu(values, lo_m, hi_m, count)
        else:
            chosen = values[(values <= _F32(hi_m)) & (values >= _F32(lo_m))] if nclip > 0 else values
            med = _F32(to_scalar(xp.median(chosen)))  # numpy.median of float32 data is float32
    mode_value, nbins = (None, 0)
    if mode:
        mode_value, nbins = _mode(values, stddev, vmin, vmax, binwidth, host)
    return ImageStatistics(npix, mean, stddev, vmin, vmax, mode_value, med, nbins,
                           float(clip_lo), float(clip_hi))
