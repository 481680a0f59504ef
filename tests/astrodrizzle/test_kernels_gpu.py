"""The CuPy paths of the AstroDrizzle kernels (median/minmed combination, driz_cr, ImageStats)
against their host paths (needs a CUDA device with CuPy; skipped otherwise).

On the host these kernels run compiled loops; given CuPy arrays they run array code, one CuPy
kernel per operation (nothing is fused, so no multiply-add is contracted). The array code is the
same that ``test_kernels.py`` checks with NumPy arrays against the host loops; here it runs on
the device, where only reductions (``sum``) may add in another order.
"""

from __future__ import annotations

import numpy as np
import pytest

from hapgpu.kernels import combine as kc
from hapgpu.kernels import crrej as kr
from hapgpu.kernels.imstats import image_statistics

pytestmark = pytest.mark.gpu

EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)


@pytest.fixture(scope="module")
def cupy():
    import cupy

    return cupy


def _stacks(seed, n_cases=12):
    rng = np.random.default_rng(seed)
    for _ in range(n_cases):
        n = int(rng.integers(1, 8))
        stack = rng.normal(10, 3, (n, 33, 41)).astype(np.float32)
        stack[rng.random(stack.shape) < 0.1] = 0.0
        bad = rng.random(stack.shape) < rng.uniform(0, 0.8)
        weights = rng.uniform(0, 400, stack.shape).astype(np.float32)
        stack[0, 4:7, 4:7] = -60.0  # a significant minimum for minmed
        yield n, stack, bad, weights, rng


def test_combine_stack_on_device(cupy):
    for n, stack, bad, _, _ in _stacks(1):
        for masks in (None, bad):
            dev_masks = None if masks is None else cupy.asarray(masks)
            for kind in ("median", "imedian", "mean", "imean"):
                for nlow, nhigh in ((0, 0), (0, 1), (1, 1)):
                    if n - nlow - nhigh < 1:
                        continue
                    host = kc.combine_stack(stack, masks, kind, nlow, nhigh)
                    dev = kc.combine_stack(cupy.asarray(stack), dev_masks, kind, nlow, nhigh)
                    assert isinstance(dev, cupy.ndarray)
                    if kind.endswith("median"):  # sorting and the middle values: exact
                        np.testing.assert_array_equal(cupy.asnumpy(dev), host)
                    else:  # a float64 sum of <= n values in another order, rounded to float32
                        np.testing.assert_allclose(cupy.asnumpy(dev), host, rtol=EPS32 + 2 * n * EPS64,
                                                   atol=0)
        # "sum" adds float32 values in float32, in another order on the device: each order is
        # within (n - 1) * EPS32 / 2 of the sum of the magnitudes (Higham, eq. 4.4)
        dev_sum = cupy.asnumpy(kc.combine_stack(cupy.asarray(stack), None, "sum")).astype(np.float64)
        host_sum = kc.combine_stack(stack, None, "sum")
        bound = (n - 1) * EPS32 * np.abs(stack.astype(np.float64)).sum(axis=0)
        assert np.all(np.abs(dev_sum - host_sum) <= bound), "sum"


def test_minmed_on_device(cupy):
    # minmed chooses, per pixel, the median or the minimum by comparing float64 values made by
    # the same elementwise IEEE operations on both sides (sums of <= n read-noise terms may add
    # in another order, moving a threshold by an ulp64): the chosen values are identical unless a
    # pixel sits within ~1e-15 of its threshold, which random data does not produce.
    for n, stack, bad, weights, rng in _stacks(2):
        if n < 2:
            continue
        args = (list(rng.uniform(2, 4, n)), list(rng.uniform(100, 500, n)), list(rng.uniform(10, 30, n)))
        for masks in (None, bad):
            dev_masks = None if masks is None else cupy.asarray(masks)
            for grow in (0, 1, 2):
                for fill in (False, True):
                    host = kc.minmed(stack, weights, masks, *args, grow=grow, fill=fill)
                    dev = kc.minmed(cupy.asarray(stack), cupy.asarray(weights), dev_masks, *args,
                                    grow=grow, fill=fill)
                    np.testing.assert_array_equal(cupy.asnumpy(dev), host)


def test_box_any_on_device(cupy):
    rng = np.random.default_rng(5)
    flag = rng.random((35, 39)) < 0.05
    for half in (1, 2, 3):
        np.testing.assert_array_equal(cupy.asnumpy(kc.box_any(cupy.asarray(flag), half)),
                                      kc.box_any(flag, half))


@pytest.mark.parametrize("grow, ctegrow, cte_dir", [(1, 0, 0), (2, 1, -1), (1, 2, 1)])
def test_driz_cr_on_device(cupy, grow, ctegrow, cte_dir):
    # differences, maxima, one square root and comparisons, each its own IEEE operation: exact
    rng = np.random.default_rng(10)
    blot = rng.normal(50, 8, (61, 67)).astype(np.float32)
    sci = (blot + rng.normal(0, 9, blot.shape)).astype(np.float32)
    sci[rng.random(blot.shape) < 0.03] += 300
    deriv = kr.abs_derivative(blot)
    dev_deriv = kr.abs_derivative(cupy.asarray(blot))
    np.testing.assert_array_equal(cupy.asnumpy(dev_deriv), deriv)
    kwargs = dict(background=15.0, gain=1.0, readnoise=4.0, snr=(3.5, 3.0), scale=(1.5, 1.2),
                  grow=grow, ctegrow=ctegrow, cte_dir=cte_dir)
    host = kr.cosmic_ray_mask(sci, blot, deriv, **kwargs)
    dev = kr.cosmic_ray_mask(cupy.asarray(sci), cupy.asarray(blot), dev_deriv, **kwargs)
    assert isinstance(dev, cupy.ndarray)
    np.testing.assert_array_equal(cupy.asnumpy(dev), host)
    assert 0 < int((~host).sum()) < host.size // 2


def test_convolve_symmetric_on_device(cupy):
    rng = np.random.default_rng(6)
    mask = rng.random((40, 45)) < 0.7
    for k in [np.ones((g, g), np.int64) for g in (1, 2, 3, 5)] + [kr.cte_kernel(2, -1)]:
        np.testing.assert_array_equal(cupy.asnumpy(kr.convolve_symmetric(cupy.asarray(mask), k)),
                                      kr.convolve_symmetric(mask, k))


def _samples(seed, n_cases=16):
    rng = np.random.default_rng(seed)
    for k in range(n_cases):
        n = int(rng.integers(50, 20000))
        x = rng.normal(rng.uniform(-5, 50), rng.uniform(0.5, 10), n).astype(np.float32)
        hot = rng.random(n) < 0.05
        x[hot] += rng.uniform(50, 5000, hot.sum()).astype(np.float32)
        if k % 3 == 0:
            x = np.round(x)
        kw = dict(nclip=int(rng.integers(0, 6)), lsig=float(rng.choice([3.0, 4.0])),
                  usig=float(rng.choice([3.0, 4.0])), binwidth=float(rng.choice([0.1, 0.3])))
        yield x, (None if k % 2 else -100.0), kw


def test_image_statistics_on_device(cupy):
    for x, lower, kw in _samples(3):
        host = image_statistics(x, lower=lower, mode=True, median=True, **kw)
        dev = image_statistics(cupy.asarray(x), lower=lower, mode=True, median=True, **kw)
        # mean and stddev: float64 sums in another order (<= 2 n EPS64), rounded to float32: one
        # ulp at most. Pixel counts, extremes and the median come from comparisons and sorting.
        assert dev.mean == pytest.approx(host.mean, rel=EPS32, abs=0)
        assert dev.stddev == pytest.approx(host.stddev, rel=EPS32, abs=0)
        if (dev.mean, dev.stddev) == (host.mean, host.stddev):
            assert (dev.npix, dev.min, dev.max, dev.median, dev.nbins, dev.mode) == (
                host.npix, host.min, host.max, host.median, host.nbins, host.mode)
        else:
            # a one-ulp mean or stddev moves the clipping limits and histogram edges by an ulp:
            # only a value lying exactly on one can change side, which moves the mode by less
            # than a bin (binwidth * stddev)
            assert abs(dev.npix - host.npix) <= 1
            assert dev.mode == pytest.approx(host.mode, abs=kw["binwidth"] * host.stddev)
