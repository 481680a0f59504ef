"""Clipped image statistics with the semantics of ``stsci.imagestats.ImageStats``.

AstroDrizzle's static mask and its sky computation (through skypac) take their numbers from
``ImageStats``: iterative clipping with float32 limits, a float32 mean from a double sum, a
two-pass float32 standard deviation, a histogram mode with the parabolic peak interpolation,
and ``numpy.median`` of the clipped pixels. This module reproduces those numbers (including the
quirk that the clipped minimum/maximum start from the first array element) with array code
that runs on NumPy or CuPy arrays: per clipping pass one compaction and a few reductions.

Arrays in, Python floats out. No logging, no configuration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
    median : float or None
        ``numpy.median`` of the clipped pixels (None unless requested).
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
    median: float | None
    nbins: int
    clip_lower: float
    clip_upper: float


def _clip_pass(values, lo: float, hi: float):
    """One ``computeMean`` pass: ``(npix, mean, stddev, min, max)`` over ``lo <= v <= hi``."""
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


def _histogram(values, nbins: int, bin_width: float, vmin: float):
    """``histogram1d``: float32 binning of every value in ``[vmin, vmin + nbins*width)``."""
    xp = array_module(values)
    width = _F32(bin_width)
    start = _F32(vmin)
    inverse = _F32(1.0) / width
    top = start + width * _F32(nbins)
    inclusive = int(inverse * (top - start)) == nbins
    if inclusive:  # the last edge would round onto nbins: shrink it and close the interval
        top = top * _F32(1.0 - np.finfo(np.float32).eps)
    keep = (values >= start) & ((values <= top) if inclusive else (values < top))
    index = (inverse * (values[keep] - start)).astype(np.int32)
    counts = xp.bincount(index, minlength=nbins)[:nbins]
    return np.asarray(counts.get() if hasattr(counts, "get") else counts, dtype=np.int64)


def _mode(values, stddev: float, vmin: float, vmax: float, binwidth: float) -> tuple[float, int]:
    hwidth = binwidth * stddev
    drange = vmax - vmin
    if hwidth < _MIN_FLOAT or abs(drange) < _MIN_FLOAT or hwidth > drange or not math.isfinite(hwidth):
        return vmin + 0.5 * hwidth, 1
    nbins = int(drange / hwidth) + 1
    bins = _histogram(values, nbins, drange / float(nbins - 1), vmin)
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
    xp = array_module(values)
    values = xp.ravel(xp.asarray(values, dtype=np.float32))
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
        npix, mean, stddev, vmin, vmax = _clip_pass(values, clip_lo, clip_hi)
        if npix <= 0:
            raise ValueError("no valid pixels within the clipping range")
        if iteration < nclip:
            clip_lo = max(lower, mean - lsig * stddev)
            clip_hi = min(upper, mean + usig * stddev)
    med = None
    if median:
        if nclip > 0:
            chosen = values[(values <= _F32(clip_hi)) & (values >= _F32(clip_lo))]
        else:
            chosen = values
        med = to_scalar(xp.median(chosen))
    mode_value, nbins = (None, 0)
    if mode:
        mode_value, nbins = _mode(values, stddev, vmin, vmax, binwidth)
    return ImageStatistics(npix, mean, stddev, vmin, vmax, mode_value, med, nbins,
                           float(clip_lo), float(clip_hi))
