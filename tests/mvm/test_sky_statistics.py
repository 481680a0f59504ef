"""The clipped statistics of the MVM sky match (``hapgpu.kernels.imstats``): stopping the
clipping once a pass gives back its own float32 limits, and the radix median, give exactly
what every one of the ``nclip + 1`` passes and ``numpy.median`` give.

The oracle of the clipping is ``stsci.imagestats`` (a drizzlepac dependency), which always
runs every pass.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from hapgpu.kernels.imstats import _F32, _clip_pass, image_statistics


def _sky_like(seed: int, size: int) -> np.ndarray:
    """Sky pixels: Gaussian noise around a level, a few bright sources, float32."""
    rng = np.random.default_rng(seed)
    values = rng.normal(100.0, 5.0, size)
    values[rng.integers(0, size, size // 200)] += rng.uniform(50, 5000, size // 200)
    return values.astype(np.float32)


def _all_passes(values, lower, nclip, lsig, usig):
    """``(npix, mean, stddev, min, max, clip_lo, clip_hi)`` after every pass, never stopping early."""
    upper = float(values.max())
    lo, hi = lower, upper
    for iteration in range(nclip + 1):
        npix, mean, stddev, vmin, vmax = _clip_pass(values, lo, hi, True)
        if iteration < nclip:
            lo, hi = max(lower, mean - lsig * stddev), min(upper, mean + usig * stddev)
    return npix, mean, stddev, vmin, vmax, float(lo), float(hi)


@pytest.mark.parametrize("seed", range(6))
def test_early_stop_equals_every_pass(seed):
    values = _sky_like(seed, 20_000 + 997 * seed)
    for nclip in (1, 3, 5, 12):
        stats = image_statistics(values, lower=-100.0, nclip=nclip, lsig=4.0, usig=4.0, median=True)
        assert (stats.npix, stats.mean, stats.stddev, stats.min, stats.max, stats.clip_lower,
                stats.clip_upper) == _all_passes(values, -100.0, nclip, 4.0, 4.0)
    # the case that stops early: a 12-pass clipping settles long before its last pass
    stats = image_statistics(values, lower=-100.0, nclip=12, lsig=4.0, usig=4.0)
    limits = (_F32(stats.clip_lower), _F32(stats.clip_upper))
    mean, stddev = _clip_pass(values, *limits, True)[1:3]
    assert (_F32(max(-100.0, mean - 4 * stddev)), _F32(min(float(values.max()), mean + 4 * stddev))) == limits


@pytest.mark.parametrize("size", [1, 2, 3, 1000, 1001, 250_000])
def test_median_equals_numpy_median(size):
    values = _sky_like(size, size)
    values[: size // 3] = np.round(values[: size // 3])  # ties
    stats = image_statistics(values, nclip=3, lsig=3.0, usig=3.0, median=True)
    chosen = values[(values >= _F32(stats.clip_lower)) & (values <= _F32(stats.clip_upper))]
    assert stats.median == np.median(chosen) and stats.median.dtype == np.float32
    stats = image_statistics(values, nclip=0, median=True)  # every pixel
    assert stats.median == np.median(values)


@pytest.mark.reference
def test_sky_statistic_equals_imagestats():
    imagestats = pytest.importorskip("stsci.imagestats")
    for seed in range(4):
        values = _sky_like(10 + seed, 50_000)
        for kw in ({"nclip": 5, "lsig": 4.0, "usig": 4.0}, {"nclip": 15, "lsig": 2.0, "usig": 2.0}):
            with contextlib.redirect_stdout(io.StringIO()):
                ref = imagestats.ImageStats(values, fields="npix,median,mean,stddev,min,max", lower=-100.0, **kw)
            ours = image_statistics(values, lower=-100.0, median=True, **kw)
            assert (ours.npix, ours.mean, ours.stddev, ours.min, ours.max, ours.median) == (
                ref.npix, ref.mean, ref.stddev, ref.min, ref.max, ref.median)
