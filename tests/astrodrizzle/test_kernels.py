"""Array kernels of the chain: ImageStats, num_combine/minmed and driz_cr, against their oracles.

The oracles are the reference implementations themselves (stsci.imagestats, stsci.image,
drizzlepac's minmed and quickDeriv, scipy's convolve2d): equality is exact. The host (Numba)
path is also compared with the array-module path that a GPU runs (here on NumPy arrays).
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from scipy import signal

from hapgpu.kernels import combine as kc
from hapgpu.kernels import crrej as kr
from hapgpu.kernels.imstats import _statistics, image_statistics


def _sample(rng, n, integer=False):
    x = rng.normal(rng.uniform(-5, 50), rng.uniform(0.5, 10), n).astype(np.float32)
    hot = rng.random(n) < 0.05
    x[hot] += rng.uniform(50, 5000, hot.sum()).astype(np.float32)
    return np.round(x) if integer else x


def _stat_cases(n_cases=60, seed=0):
    rng = np.random.default_rng(seed)
    for k in range(n_cases):
        x = _sample(rng, int(rng.integers(50, 20000)), integer=k % 3 == 0)
        kw = dict(nclip=int(rng.integers(0, 6)), lsig=float(rng.choice([3.0, 4.0])),
                  usig=float(rng.choice([3.0, 4.0])), binwidth=float(rng.choice([0.1, 0.10000000149011612, 0.3])))
        yield x, (None if k % 2 else -100.0), kw


@pytest.mark.reference
def test_image_statistics_equal_imagestats():
    from stsci import imagestats

    for x, lower, kw in _stat_cases():
        with contextlib.redirect_stdout(io.StringIO()):
            ref = imagestats.ImageStats(x, fields="npix,mode,median,mean,stddev", lower=lower, **kw)
        ours = image_statistics(x, lower=lower, mode=True, median=True, **kw)
        assert (ours.npix, ours.mean, ours.stddev, ours.min, ours.max) == (ref.npix, ref.mean, ref.stddev,
                                                                            ref.min, ref.max)
        assert ours.mode == ref.mode and ours.median == ref.median
        assert ours.nbins == len(ref.histogram)


def test_image_statistics_host_and_array_paths_agree():
    for x, lower, kw in _stat_cases(40, seed=3):
        host = image_statistics(x, lower=lower, mode=True, median=True, **kw)
        arrays = _statistics(x, lower, None, kw["nclip"], kw["lsig"], kw["usig"], kw["binwidth"], True, True,
                             host=False)
        assert host == arrays


def test_image_statistics_first_pixel_pins_the_extremes():
    """ImageStats seeds its clipped min/max with the first pixel: an outlier there pins them."""
    x = np.array([1000.0, 1.0, 2.0, 3.0, 4.0], dtype=np.float32)
    s = image_statistics(x, lower=0.0, upper=10.0)
    assert (s.npix, s.min, s.max) == (4, 1.0, 10.0)


def test_image_statistics_errors():
    with pytest.raises(ValueError):
        image_statistics(np.zeros(0, np.float32))
    with pytest.raises(ValueError):
        image_statistics(np.ones(10, np.float32), lower=5.0)


# --------------------------------------------------------------------------- combine
def _stacks(seed=1, n_cases=25):
    rng = np.random.default_rng(seed)
    for _ in range(n_cases):
        n = int(rng.integers(1, 7))
        stack = rng.normal(10, 3, (n, 17, 21)).astype(np.float32)
        stack[rng.random(stack.shape) < 0.1] = 0.0
        bad = rng.random(stack.shape) < rng.uniform(0, 0.8)
        weights = rng.uniform(0, 400, stack.shape).astype(np.float32)
        stack[0, 4:7, 4:7] = -60.0  # a significant minimum for minmed
        yield n, stack, bad, weights, rng


@pytest.mark.reference
# the oracle casts its uninitialised (np.empty) output buffer before filling it, which warns
# whenever that memory happens to hold a NaN bit pattern
@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
def test_combine_stack_equals_num_combine():
    from stsci.image import numcombine

    for n, stack, bad, _, _ in _stacks():
        for kind in ("median", "imedian", "mean", "imean"):
            for nlow, nhigh in ((0, 0), (0, 1), (1, 1), (2, 0)):
                if n - nlow - nhigh < 1:
                    continue
                for masks in (None, bad):
                    ref = numcombine.num_combine(stack, masks=None if masks is None else masks.astype(np.uint8),
                                                 combination_type=kind, nlow=nlow, nhigh=nhigh)
                    np.testing.assert_array_equal(kc.combine_stack(stack, masks, kind, nlow, nhigh), ref)


@pytest.mark.reference
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_minmed_equals_drizzlepac():
    from drizzlepac import minmed

    for n, stack, bad, weights, rng in _stacks(seed=2):
        if n < 2:
            continue
        rn, et, sky = list(rng.uniform(2, 4, n)), list(rng.uniform(100, 500, n)), list(rng.uniform(10, 30, n))
        for grow in (0, 1, 2):
            for fill in (False, True):
                for masks in (None, bad):
                    ref = minmed.min_med(stack.copy(), weights, rn, et, sky,
                                         weight_masks=None if masks is None else masks.astype(np.uint8),
                                         combine_grow=grow, combine_nsigma1=4, combine_nsigma2=3, fillval=fill)
                    ours = kc.minmed(stack, weights, masks, rn, et, sky, grow=grow, nsigma1=4.0, nsigma2=3.0, fill=fill)
                    np.testing.assert_array_equal(ours, ref)


def test_combine_host_and_array_paths_agree():
    for n, stack, bad, weights, rng in _stacks(seed=4):
        for masks in (None, bad):
            for kind in ("median", "imedian", "mean", "imean"):
                for nlow, nhigh in ((0, 0), (0, 1), (1, 1)):
                    if n - nlow - nhigh < 1:
                        continue
                    s, good = kc._sorted_good(np, stack, masks)
                    reducer = kc._median_of_sorted if kind.endswith("median") else kc._mean_of_sorted
                    arrays = reducer(np, s, good, nlow, nhigh, n)
                    if kind.startswith("i") and masks is not None:
                        arrays = kc._fill_first_column(np, stack, masks, arrays, reducer, nlow, nhigh)
                    np.testing.assert_array_equal(kc.combine_stack(stack, masks, kind, nlow, nhigh),
                                                  arrays.astype(np.float32))
            if n >= 2:
                args = ([3.0] * n, [400.0] * n, list(rng.uniform(10, 30, n)))
                for grow in (0, 1, 2):
                    np.testing.assert_array_equal(
                        kc.minmed(stack, weights, masks, *args, grow=grow),
                        kc._minmed_arrays(np, stack, weights, masks, *args, grow, 4.0, 3.0, False))


def test_combine_rejects_too_many_dropped_values():
    with pytest.raises(ValueError):
        kc.combine_stack(np.zeros((2, 3, 3), np.float32), None, "median", nlow=1, nhigh=1)


def test_box_any_matches_a_direct_window():
    rng = np.random.default_rng(5)
    flag = rng.random((15, 19)) < 0.05
    for half in (1, 2, 3):
        direct = signal.convolve2d(flag.astype(float), np.ones((2 * half + 1,) * 2), mode="same") > 0
        np.testing.assert_array_equal(kc.box_any(flag, half), direct)


# --------------------------------------------------------------------------- driz_cr
def test_convolve_symmetric_equals_scipy():
    rng = np.random.default_rng(6)
    for shape in ((7, 9), (30, 41), (5, 5)):
        mask = rng.random(shape) < 0.7
        kernels = [np.ones((g, g), np.int64) for g in (1, 2, 3, 4, 5)]
        kernels += [kr.cte_kernel(c, d) for c in (1, 2, 3) for d in (-1, 0, 1)]
        for k in kernels:
            np.testing.assert_array_equal(kr.convolve_symmetric(mask, k),
                                          signal.convolve2d(mask, k, boundary="symm", mode="same"))


def _driz_cr_reference(sci, blot, deriv, backg, gain, rn, snr, scale, grow, ctegrow, cte_dir):
    """AstroDrizzle's driz_cr mask written out with scipy (the reference expressions)."""
    t1 = np.absolute(sci - blot)
    ta = np.sqrt(gain * np.abs(blot + backg) + rn ** 2)
    loose = t1 <= scale[0] * deriv + snr[0] * ta / gain
    n9 = signal.convolve2d(loose, np.ones((3, 3), dtype=np.uint16), boundary="symm", mode="same")
    cr = (t1 <= scale[1] * deriv + snr[1] * ta / gain) | (n9 >= 9)
    grown = signal.convolve2d(cr, np.ones((grow, grow), dtype=np.uint16), boundary="symm", mode="same")
    cte = signal.convolve2d(cr, kr.cte_kernel(ctegrow, cte_dir).astype(float), boundary="symm", mode="same")
    return (grown >= grow ** 2) & (cte >= ctegrow)


@pytest.mark.reference
def test_abs_derivative_equals_qderiv():
    from drizzlepac import quickDeriv as quick

    rng = np.random.default_rng(7)
    for shape in ((7, 9), (30, 41), (5, 5), (3, 3)):
        a = rng.normal(0, 10, shape).astype(np.float32)
        np.testing.assert_array_equal(kr.abs_derivative(a), quick.qderiv(a))


@pytest.mark.parametrize("grow, ctegrow, cte_dir", [(1, 0, 0), (2, 0, 1), (3, 2, -1), (1, 2, 1)])
def test_cosmic_ray_mask_equals_the_reference_expressions(grow, ctegrow, cte_dir):
    rng = np.random.default_rng(8)
    blot = rng.normal(100, 10, (40, 50)).astype(np.float32)
    sci = (blot + rng.normal(0, 12, blot.shape)).astype(np.float32)
    sci[rng.random(blot.shape) < 0.02] += 500
    deriv = kr.abs_derivative(blot)
    kw = dict(background=20.0, gain=1.0, readnoise=3.1, snr=(3.5, 3.0), scale=(1.2, 0.7))
    ref = _driz_cr_reference(sci, blot, deriv, 20.0, 1.0, 3.1, (3.5, 3.0), (1.2, 0.7), grow, ctegrow, cte_dir)
    ours = kr.cosmic_ray_mask(sci, blot, deriv, grow=grow, ctegrow=ctegrow, cte_dir=cte_dir, **kw)
    np.testing.assert_array_equal(ours, ref)
    assert (~ours).sum() > 0


def test_derivative_equals_its_definition():
    a = np.random.default_rng(9).normal(0, 10, (33, 47)).astype(np.float32)
    host = kr.abs_derivative(a)
    assert host.dtype == np.float32
    ny, nx = a.shape
    ref = np.zeros((ny, nx))
    for y in range(ny):
        for x in range(nx):
            # the reference treats these neighbours as missing (0): a 3-pixel band at the high edges
            neighbours = [a[y, x - 1] if (y < ny - 1 and 1 <= x < nx - 1) else 0.0,
                          a[y, x + 1] if (y < ny - 1 and x < nx - 2) else 0.0,
                          a[y - 1, x] if (1 <= y < ny - 1 and x < nx - 1) else 0.0,
                          a[y + 1, x] if (y < ny - 2 and x < nx - 1) else 0.0]
            ref[y, x] = max(abs(float(a[y, x]) - float(n)) for n in neighbours)
    np.testing.assert_array_equal(host, ref.astype(np.float32))
    np.testing.assert_array_equal(kr._abs_derivative_arrays(np, a), host)


@pytest.mark.parametrize("grow, ctegrow, cte_dir", [(1, 0, 0), (2, 1, -1)])
def test_cosmic_ray_mask_host_and_array_paths_agree(grow, ctegrow, cte_dir):
    rng = np.random.default_rng(10)
    blot = rng.normal(50, 8, (31, 37)).astype(np.float32)
    sci = (blot + rng.normal(0, 9, blot.shape)).astype(np.float32)
    sci[rng.random(blot.shape) < 0.03] += 300
    deriv = kr.abs_derivative(blot)
    args = (15.0, 1.0, 4.0, (3.5, 3.0), (1.5, 1.2), grow, ctegrow, cte_dir)
    host = kr.cosmic_ray_mask(sci, blot, deriv, background=15.0, gain=1.0, readnoise=4.0, snr=(3.5, 3.0),
                              scale=(1.5, 1.2), grow=grow, ctegrow=ctegrow, cte_dir=cte_dir)
    np.testing.assert_array_equal(kr._cosmic_ray_mask_arrays(np, sci, blot, deriv, *args), host)
