"""The fused CPU pixel passes of the catalog step give their NumPy/SciPy expressions bit for bit.

* ``relative_max_filter`` (one sweep, ring of row maxima) == ``maximum_filter(a, s) / top``;
* ``quadrature_error`` == ``sqrt(rms * rms + maximum(data / gain, 0))`` in the array dtype;
* ``sigma_clip_image`` (compacted survivors) == the direct in-place clip of the valid values;
* the row-parallel passes (``finite_copy``, valid counts, gathers, weight bands, region rms).
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


@pytest.mark.parametrize("size", [1, 11, 64])
def test_relative_max_filter_in_bands_equals_scipy(size):
    """Tall images run in bands of rows (one ring each): the same result."""
    rng = np.random.default_rng(size)
    image = (rng.random((1100, 23)) * rng.integers(0, 3, (1100, 23))).astype(np.float32)
    top = np.float32(image.max())
    expected = ndimage.maximum_filter(image, size=(size, size)) / top
    assert _bits_equal(kmorph.relative_max_filter(image, size, top), expected)


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
    # the chunks run in parallel: one thread gives the same bits
    import numba

    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        serial = kstats.sigma_clip_image(flat, mask.ravel(), True, 3.0, 3.0, iters, cen, std, 0,
                                         as_f32, nchunks)
    finally:
        numba.set_num_threads(threads)
    assert _bits_equal(serial, (mean, median, spread, n))


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


def test_parallel_pixel_passes_equal_numpy():
    """The row-parallel passes: copies, counts, gathers and labels of their NumPy expressions."""
    rng = np.random.default_rng(21)
    image = (rng.normal(size=(83, 61)) * 3).astype(np.float32)
    image[3, :5] = [np.nan, np.inf, -np.inf, 0.0, -0.0]
    big = np.finfo(np.float32).max
    copy, lo, hi = kmorph.finite_copy(image, big)
    expected = np.nan_to_num(image, nan=0.0)
    assert _bits_equal(copy, expected) and lo == expected.min() and hi == expected.max()

    count = np.zeros(image.shape, np.int32)
    kmorph.add_valid_count(count, image)
    if np.little_endian:  # the FITS (big-endian) words, as _flags reads them
        kmorph.add_valid_count_be32(count, image.astype(">f4").view(np.uint32))
    else:
        kmorph.add_valid_count(count, image)
    assert np.array_equal(count, 2 * (np.isfinite(image) & (image != 0)))

    finite = np.nan_to_num(image, nan=0.0, posinf=0.0, neginf=0.0)
    footprint = rng.random(image.shape) > 0.2
    upper = np.float32(2.5)
    p = finite * footprint
    p = p[p > 0]
    assert _bits_equal(kmorph.gather_open_interval(finite, footprint, upper), p[p < upper])

    rel = (rng.random(image.shape) * (rng.random(image.shape) > 0.1)).astype(np.float32)
    limits = np.float32(1 / 1.5) ** np.arange(1, 9, dtype=np.float32)
    band = np.where(rel[..., None] > limits, np.arange(limits.size), limits.size).min(axis=-1)
    inside = footprint & (rel > 0)
    counts = kmorph.band_counts(rel, footprint, limits)
    assert np.array_equal(counts, np.bincount(band[inside], minlength=limits.size + 1))
    band_region = (np.arange(limits.size + 1) // 3).astype(np.int8)
    labels = kmorph.band_labels(rel, footprint, limits, band_region)
    assert np.array_equal(labels, np.where(inside, band_region[band], -1))
    mask, weight = kmorph.region_planes(labels, rel, 1)
    assert _bits_equal(mask, (labels == 1).astype(np.uint16))
    assert _bits_equal(weight, rel * (labels == 1))


@pytest.mark.parametrize("constant", [True, False])
def test_region_rms_equals_numpy(constant):
    from hapgpu.catalogs._prepare import WeightRegion, region_rms

    rng = np.random.default_rng(22)
    shape = (70, 90)
    rms = (np.full(shape, np.float32(0.0123)) if constant
           else rng.random(shape).astype(np.float32))
    mask = (rng.random(shape) > 0.3).astype(np.uint16)
    weight = ((rng.random(shape) * 0.7 + 0.1) * mask).astype(np.float32)
    region = WeightRegion(mask=mask, rel_weight=weight, wht_limit=1.0, scale=1.0)
    expected = rms * np.sqrt(mask / weight.max())
    median = float(np.nanmedian(expected[expected > 0]))
    image, value = region_rms(rms, region, np)
    assert _bits_equal(image, expected) and value == median
    assert region_rms(rms, region, np, image=False) == (None, median)
    # a broadcast (constant) rms view and the generic expression (big-endian rms) agree
    view = np.broadcast_to(np.float32(0.0123), shape)
    assert region_rms(view, region, np)[1] == region_rms(rms.astype(">f4") if constant
                                                         else view.copy(), region, np)[1]
    empty = WeightRegion(mask=np.zeros(shape, np.uint16), rel_weight=weight, wht_limit=1.0,
                         scale=1.0)
    assert math.isnan(region_rms(rms, empty, np)[1])


@pytest.mark.parametrize("iterations", [1, 2, 7, 11, 254])
def test_taxicab_erosion_equals_scipy(iterations):
    """Separable city-block distances (rows, then column blocks in parallel) == SciPy's
    repeated cross erosion with a zero border."""
    rng = np.random.default_rng(iterations)
    image = ndimage.binary_dilation(rng.random((300, 530)) > 0.97, iterations=9)
    image[40:260, 30:500] |= rng.random((220, 470)) > 0.001   # a large footprint with holes
    image[:, 0] = True                                         # set along an edge
    expected = ndimage.binary_erosion(image, iterations=iterations)
    assert np.array_equal(kmorph.taxicab_erosion(image, iterations), expected)
    assert np.array_equal(kmorph.taxicab_erosion(image.astype(np.float32), iterations), expected)


@pytest.mark.parametrize("iterations", [1, 2, 7, 11, 254])
def test_taxicab_dilation_equals_scipy(iterations):
    """Separable city-block distances to the nearest set pixel == SciPy's repeated cross
    dilation (pixels beyond the edges never set); an empty image stays empty."""
    rng = np.random.default_rng(iterations)
    image = rng.random((300, 530)) > 0.999
    image[120:180, 0:40] = True                                # set along an edge
    image[290:, 500:] = True                                   # and in a corner
    expected = ndimage.binary_dilation(image, iterations=iterations)
    assert np.array_equal(kmorph.taxicab_dilation(image, iterations), expected)
    assert np.array_equal(kmorph.taxicab_dilation(image.astype(np.float32), iterations), expected)
    assert not kmorph.taxicab_dilation(np.zeros((5, 7), bool), iterations).any()


def test_box_dilate_erode_equals_scipy():
    """drizzlepac's make_mask_array recipe (pad, 25x25 dilation, 31x31 erosion) with rows and
    blocks of columns in parallel == the SciPy filters."""
    rng = np.random.default_rng(31)
    data = np.zeros((260, 700), np.float32)
    data[30:230, 40:650] = rng.normal(size=(200, 610)).astype(np.float32)
    data[rng.random(data.shape) < 0.01] = 0.0
    data[100:110, 300:302] = np.nan
    valid = (np.isfinite(data) & (data != 0)).astype(np.uint8)
    big = np.pad(valid, 13)
    grown = ndimage.maximum_filter(big, size=25, mode="constant", cval=0)
    shrunk = ndimage.minimum_filter(grown, size=31, mode="constant", cval=0)
    expected = (shrunk[13:-13, 13:-13] != 0).astype(np.int32)
    assert _bits_equal(kmorph.box_dilate_erode(data, 13, 25, 31), expected)


def test_fill_constant_equals_full_like():
    out = np.empty((13, 7), dtype=np.float32)
    kmorph.fill_constant(out, np.float32(0.1))
    assert _bits_equal(out, np.full_like(out, 0.1))


def test_be32_to_native_equals_numpy_conversion():
    rng = np.random.default_rng(11)
    data = (rng.normal(size=(31, 17)) * 1e4).astype(">f4")
    data[0, :4] = [np.nan, np.inf, -np.inf, -0.0]
    data[1, 0] = np.float32(1e-40)  # subnormal
    out = np.empty(data.shape, dtype=np.float32)
    kmorph.be32_to_native(data.view(np.uint32), out.view(np.uint32))
    assert _bits_equal(out, np.asarray(data, dtype=np.float32))


def test_read_float32_of_a_fits_image_equals_astropy(tmp_path):
    from astropy.io import fits

    from hapgpu.catalogs._product import _read_float32

    rng = np.random.default_rng(12)
    image = rng.normal(size=(20, 23)).astype(np.float32)
    path = tmp_path / "image.fits"
    fits.PrimaryHDU(image).writeto(path)
    with fits.open(path) as hdul:
        assert hdul[0].data.dtype == np.dtype(">f4")   # the fast path is the one tested
        got = _read_float32(hdul[0])
        assert _bits_equal(got, np.asarray(hdul[0].data, dtype=np.float32))
    assert _bits_equal(got, image)


@pytest.mark.parametrize("suffix", [".fits", ".fits.gz"])
def test_read_float32_of_unloaded_extensions_equals_astropy(tmp_path, suffix):
    """The direct read (data not yet loaded, plain file) and the fallback (gzip) give
    astropy's values bit for bit, for every extension of the file."""
    from astropy.io import fits

    from hapgpu.catalogs._product import _read_float32

    rng = np.random.default_rng(13)
    sci = (rng.normal(size=(37, 29)) * 1e3).astype(np.float32)
    sci[0, :4] = [np.nan, np.inf, -np.inf, -0.0]
    wht = rng.random((37, 29)).astype(np.float32)
    path = tmp_path / f"product{suffix}"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(sci, name="SCI"),
                  fits.ImageHDU(wht, name="WHT")]).writeto(path)
    with fits.open(path) as hdul:
        got = [_read_float32(hdul[name]) for name in ("SCI", "WHT")]
    with fits.open(path) as hdul:
        want = [np.asarray(hdul[name].data, dtype=np.float32) for name in ("SCI", "WHT")]
    for g, w in zip(got, want):
        assert g.dtype == np.float32 and g.flags.c_contiguous and _bits_equal(g, w)


@pytest.mark.parametrize("shape", [(1, 1), (9, 14), (60, 45)])
@pytest.mark.parametrize("half", [0, 1, 5])
def test_paint_boxes_equals_maximum_filter(shape, half):
    rng = np.random.default_rng(hash((shape, half)) % 2**32)
    ys = rng.integers(0, shape[0], 12).astype(np.int64)
    xs = rng.integers(0, shape[1], 12).astype(np.int64)
    ys[0], xs[0] = shape[0] - 1, shape[1] - 1   # a seed in the corner, boxes cut at the edge
    seeds = np.zeros(shape, dtype=np.uint8)
    seeds[ys, xs] = 1
    expected = ndimage.maximum_filter(seeds, size=2 * half + 1, mode="constant", cval=0)
    out = np.zeros(shape, dtype=np.uint8)
    kmorph.paint_boxes(out, ys, xs, half)
    assert np.array_equal(out, expected)


def test_add_scaled_mask_equals_numpy():
    rng = np.random.default_rng(13)
    image = rng.normal(size=(40, 29)).astype(np.float32)
    mask = rng.integers(0, 2, image.shape).astype(np.uint16)
    value = np.float32(3.0 * np.float32(0.0123456))
    expected = image.copy()
    expected += value * mask
    kmorph.add_scaled_mask(image, mask, value)
    assert _bits_equal(image, expected)


@pytest.mark.parametrize("block", [(16, 16), (15, 17)])
@pytest.mark.parametrize("window", [(16, 16), (9, 13)])
def test_shifted_block_product_equals_numpy(block, window):
    rng = np.random.default_rng(14)
    hy, hx = min(window[0], block[0]), min(window[1], block[1])
    m_map = rng.normal(size=block)
    data = rng.normal(size=(hy, hx)).astype(np.float32)
    n_pix = block[0] * block[1]
    expected = n_pix * np.fft.fftshift(m_map)[:hy, :hx] * (data > 0)
    out = np.full((hy + 2, hx + 3), 7.0)
    kmorph.shifted_block_product(out[1:1 + hy, 2:2 + hx], m_map, data, float(n_pix))
    assert _bits_equal(out[1:1 + hy, 2:2 + hx], expected)
    assert (out[0] == 7.0).all() and (out[:, :2] == 7.0).all()


@pytest.mark.parametrize("shape", [(1, 3), (3, 9), (40, 101), (301, 57)])
def test_mad_rms_median_equals_median_of_differences(shape):
    rng = np.random.default_rng(hash(shape) % 2**32)
    image = rng.normal(size=shape).astype(np.float32)
    image[image < -1.2] = 0.0
    image.flat[::17] = np.nan
    n, median, ok = kstats.mad_rms_median_f32(image)
    diffs = kstats.mad_rms_diffs(image)
    assert ok and n == diffs.size
    if diffs.size:
        assert median == float(np.median(diffs.astype(np.float32)))
    else:
        assert math.isnan(median)
    if shape[1] >= 5:
        image[0, :5] = [np.inf, 1.0, np.inf, 1.0, 1.0]   # (inf + inf) - inf: a NaN difference
        assert not kstats.mad_rms_median_f32(image)[2]
