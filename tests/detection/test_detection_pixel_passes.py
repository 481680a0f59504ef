"""The fused CPU pixel passes of the catalog step give their NumPy/SciPy expressions bit for bit.

* ``relative_max_filter`` (one sweep, ring of row maxima) == ``maximum_filter(a, s) / top``;
* ``quadrature_error`` == ``sqrt(rms * rms + maximum(data / gain, 0))`` in the array dtype;
* ``sigma_clip_image`` (compacted survivors) == the direct in-place clip of the valid values.
"""

import math

import numpy as np
import pytest
from scipy import ndimage

from hapgpu.catalogs._segment import total_error
from hapgpu.kernels.detection import morphology as kmorph
from hapgpu.kernels.detection import stats as kstats


def _bits_equal(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(
        a.view(f"u{a.itemsize}"), b.view(f"u{b.itemsize}"))


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (12, 1), (7, 5), (40, 33), (97, 130)])
@pytest.mark.parametrize("size", [1, 2, 3, 4, 11, 12, 25])
def test_relative_max_filter_equals_scipy(shape, size):
    rng = np.random.default_rng(hash((shape, size)) % 2**32)
    image = (rng.random(shape) * rng.integers(0, 3, shape)).astype(np.float32)
    image[0, 0] = 3.5  # a maximum on the border
    top = np.float32(image.max())
    expected = ndimage.maximum_filter(image, size=(size, size)) / top
    assert _bits_equal(kmorph.relative_max_filter(image, size, top), expected)
    assert _bits_equal(kmorph.sliding_max_reflect(image, size),
                       ndimage.maximum_filter(image, size=(size, size)))


def test_relative_max_filter_float64():
    rng = np.random.default_rng(5)
    image = rng.normal(size=(31, 44))
    top = image.max()
    assert _bits_equal(kmorph.relative_max_filter(image, 11, top),
                       ndimage.maximum_filter(image, size=(11, 11)) / top)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("gain", [1.0, 2.5, 0.3])
def test_quadrature_error_equals_numpy(dtype, gain):
    rng = np.random.default_rng(7)
    data = (rng.normal(size=(50, 60)) * 5).astype(dtype)
    data[0, :6] = [np.nan, -0.0, 0.0, -1e-30, np.inf, -np.inf]
    rms = np.abs(rng.normal(size=(50, 60))).astype(dtype)
    rms[0, 1:3] = 0.0
    with np.errstate(invalid="ignore"):
        expected = np.sqrt(rms * rms + np.maximum(data / gain, 0))
        assert _bits_equal(kmorph.quadrature_error(data, rms, dtype(gain)), expected)
        constant = np.broadcast_to(dtype(0.75), data.shape)
        assert _bits_equal(kmorph.quadrature_error(data, constant, dtype(gain)),
                           np.sqrt(constant * constant + np.maximum(data / gain, 0)))


def test_total_error_fused_path_equals_numpy_path():
    rng = np.random.default_rng(8)
    data = (rng.normal(size=(40, 30)) * 3).astype(np.float32)
    rms = np.abs(rng.normal(size=(40, 30))).astype(np.float32)
    fused = total_error(data, rms, 1.0, backend="cpu")
    numpy_path = total_error(data, rms.astype(">f4"), 1.0, backend="cpu")  # not fused
    assert _bits_equal(fused, np.sqrt(rms * rms + np.maximum(data / 1.0, 0)))
    assert _bits_equal(np.asarray(numpy_path, dtype=np.float32), fused)


def _direct_clip(values, lower, upper, iters, cen, std, ddof, as_f32):
    buf = np.array(values, dtype=np.float64)
    n, _, _, _ = kstats.sigma_clip_flat(buf, lower, upper, iters, cen, std, as_f32)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean, median, spread = kstats.clipped_stats_flat(buf, n, ddof, as_f32)
    return mean, median, spread, n


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cen, std, iters", [(kstats.CEN_MEDIAN, kstats.STD_STD, 3),
                                             (kstats.CEN_MEAN, kstats.STD_STD, 5),
                                             (kstats.CEN_MEDIAN, kstats.STD_MAD, -1)])
@pytest.mark.parametrize("nchunks", [1, 3, 16])
def test_sigma_clip_image_equals_direct_clip(dtype, cen, std, iters, nchunks):
    rng = np.random.default_rng(11)
    image = rng.normal(0.05, 0.01, size=(120, 90)).astype(dtype)
    image[rng.random(image.shape) < 0.02] += 5.0          # sources
    image[3, :4] = [np.nan, np.inf, -np.inf, np.nan]
    mask = rng.random(image.shape) < 0.3
    flat = image.ravel()
    as_f32 = dtype == np.float32
    mean, median, spread, n = kstats.sigma_clip_image(flat, mask.ravel(), True, 3.0, 3.0, iters,
                                                      cen, std, 0, as_f32, nchunks)
    valid = flat[np.isfinite(flat) & ~mask.ravel()]
    expected = _direct_clip(valid, 3.0, 3.0, iters, cen, std, 0, as_f32)
    assert n == expected[3]
    # the image path sums the survivors chunk by chunk, the direct one in one run: the same
    # values to float64 rounding, identical once rounded to float32
    np.testing.assert_allclose([mean, median, spread], expected[:3], rtol=1e-12)
    if as_f32:
        assert (mean, median, spread) == expected[:3]


def test_sigma_clip_image_leaves_its_input_unchanged():
    """The survivors are compacted in a buffer of the kernel's own, never in the image."""
    rng = np.random.default_rng(12)
    flat = rng.normal(size=50_000).astype(np.float32)
    flat[::97] = np.nan
    flat[5] = 40.0
    before = flat.copy()
    no_mask = np.zeros(1, dtype=bool)
    first = kstats.sigma_clip_image(flat, no_mask, False, 3.0, 3.0, 5, kstats.CEN_MEDIAN,
                                    kstats.STD_STD, 1, True, 4)
    assert _bits_equal(flat, before)
    assert first == kstats.sigma_clip_image(flat, no_mask, False, 3.0, 3.0, 5,
                                            kstats.CEN_MEDIAN, kstats.STD_STD, 1, True, 4)
    assert first[3] < np.isfinite(flat).sum()  # the outlier was clipped
