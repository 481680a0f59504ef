"""Filters against scipy.ndimage and astropy.convolution (float32 precision)."""

import numpy as np
import pytest
from scipy import ndimage

from hapgpu.detection import (binary_erosion, convolve, gaussian_filter, gaussian_laplace, label,
                              maximum_filter, median_filter)
from hapgpu.errors import InvalidInputError, InvalidParameterError

from .conftest import gaussian_kernel

F32_RTOL = 4 * np.finfo(np.float32).eps


def _close_f32(a, b, scale):
    np.testing.assert_allclose(a, b, rtol=0, atol=F32_RTOL * scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sigma", [1.5, 2.0, (1.0, 3.0)])
def test_gaussian_laplace_matches_scipy(field, dtype, sigma):
    img = field.data.astype(dtype)
    ours = gaussian_laplace(img, sigma, backend="cpu")
    ref = ndimage.gaussian_laplace(img, sigma)
    assert ours.dtype == ref.dtype
    _close_f32(ours, ref, np.abs(ref).max())


@pytest.mark.parametrize("size", [3, 5, 7])
def test_median_filter_is_identical_to_scipy(field, size):
    img = field.data[:90, :70].copy()
    np.testing.assert_array_equal(median_filter(img, size=size, backend="cpu"),
                                  ndimage.median_filter(img, size=size))
    ints = (img * 1000).astype(np.int32)
    np.testing.assert_array_equal(median_filter(ints, size=size, backend="cpu"),
                                  ndimage.median_filter(ints, size=size))
    img[5, 5] = np.nan  # NaN input goes through SciPy
    np.testing.assert_array_equal(median_filter(img, size=size, backend="cpu"),
                                  ndimage.median_filter(img, size=size))


def test_gaussian_and_rank_filters_match_scipy(field):
    img = field.data
    _close_f32(gaussian_filter(img, 2.0, backend="cpu"), ndimage.gaussian_filter(img, 2.0),
               img.max())
    np.testing.assert_array_equal(median_filter(img, size=5, backend="cpu"),
                                  ndimage.median_filter(img, size=5))
    np.testing.assert_array_equal(maximum_filter(img, size=11, backend="cpu"),
                                  ndimage.maximum_filter(img, size=11))
    foot = field.footprint
    np.testing.assert_array_equal(binary_erosion(foot, iterations=10, backend="cpu"),
                                  ndimage.binary_erosion(foot, iterations=10))


@pytest.mark.reference
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("kernel_kind", ["gaussian", "ricker"])
def test_convolve_matches_astropy(field, normalize, kernel_kind):
    from astropy.convolution import convolve as ref_convolve

    if kernel_kind == "gaussian":
        kernel = gaussian_kernel(2.5)
    else:  # a non-separable, zero-mean-ish kernel, unnormalised as HAP uses it
        y, x = np.mgrid[:15, :15] - 7
        r2 = (x * x + y * y) / 4.0
        kernel = (1 - r2 / 2) * np.exp(-r2 / 2) + 0.01
    img = field.data - field.sky
    ours = convolve(img, kernel, normalize_kernel=normalize, backend="cpu")
    ref = ref_convolve(img, kernel, normalize_kernel=normalize)
    assert ours.dtype == ref.dtype == np.float32
    _close_f32(ours, ref, np.abs(ref).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("kernel_kind", ["gaussian", "asymmetric"])
def test_separable_convolve_is_scipys_two_passes(field, dtype, normalize, kernel_kind):
    """The compiled rank-1 path sums as SciPy's convolve1d passes do: bit-identical."""
    if kernel_kind == "gaussian":
        kernel = gaussian_kernel(2.5)
    else:  # rank 1 but not symmetric: SciPy's general summation order
        kernel = np.outer([0.1, 0.5, 1.0, 0.3, 0.05], [0.2, 0.9, 0.4, 0.1, 0.3, 0.05, 0.7])
    img = (field.data - field.sky).astype(dtype)
    data = img.astype(np.float64)
    u, s, vt = np.linalg.svd(kernel)
    column, row = u[:, 0] * np.sqrt(s[0]), vt[0] * np.sqrt(s[0])
    ref = ndimage.convolve1d(ndimage.convolve1d(data, column, axis=0, mode="constant"), row,
                             axis=1, mode="constant")
    if normalize:
        ref /= float(kernel.sum())
    ours = convolve(img, kernel, normalize_kernel=normalize, backend="cpu")
    assert ours.dtype == dtype
    np.testing.assert_array_equal(ours, ref.astype(dtype))
    # a NaN goes through the interpolating path, which must agree to rounding elsewhere
    nan_img = img.copy()
    nan_img[40, 40] = np.nan
    with_nan = convolve(nan_img, kernel, normalize_kernel=normalize, backend="cpu")
    far = np.ones(img.shape, bool)
    far[30:51, 30:51] = False
    np.testing.assert_allclose(with_nan[far], ours[far], rtol=1e-6,
                               atol=1e-6 * np.abs(ref).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("normalize", [True, False])
def test_nonseparable_convolve_is_scipys_correlate(field, dtype, normalize):
    """The compiled 2-D path (a RickerWavelet-like kernel) sums as SciPy's ``convolve``:
    bit-identical, including the border rows and columns and weights SciPy leaves out."""
    y, x = np.mgrid[:15, :13] - np.array([7, 6])[:, None, None]
    r2 = (x * x + y * y) / 4.0
    kernel = (1 - r2 / 2) * np.exp(-r2 / 2) + 0.01
    kernel[0, 1] = 1e-17            # |w| <= DBL_EPSILON: not a term of SciPy's sums
    kernel[3, 3] = -2e-16
    img = (field.data - field.sky).astype(dtype)
    img[:, 100] = -0.0
    ref = ndimage.convolve(img.astype(np.float64), kernel, mode="constant", cval=0.0)
    if normalize:
        ref /= float(kernel.sum())
    ours = convolve(img, kernel, normalize_kernel=normalize, backend="cpu")
    assert ours.dtype == dtype
    np.testing.assert_array_equal(ours.view(f"u{ours.itemsize}"),
                                  ref.astype(dtype).view(f"u{ours.itemsize}"))
    small = img[:9, :6]              # smaller than the kernel
    ref = ndimage.convolve(small.astype(np.float64), kernel, mode="constant", cval=0.0)
    np.testing.assert_array_equal(convolve(small, kernel, normalize_kernel=False,
                                           backend="cpu"), ref.astype(dtype))


@pytest.mark.reference
def test_convolve_interpolates_nans_like_astropy(field):
    from astropy.convolution import convolve as ref_convolve

    img = (field.data - field.sky).astype(np.float64)
    img[100:103, 50:52] = np.nan
    img[7, 200] = np.nan
    kernel = gaussian_kernel(2.5, size=5)
    for preserve in (False, True):
        ours = convolve(img, kernel, preserve_nan=preserve, backend="cpu")
        ref = ref_convolve(img, kernel, preserve_nan=preserve)
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-15, equal_nan=True)


def test_convolve_rejects_bad_input(field):
    with pytest.raises(InvalidInputError):
        convolve(field.data, np.ones((4, 4)))
    with pytest.raises(InvalidParameterError):
        convolve(field.data, np.ones((3, 3)), boundary="wrap")
    zero_sum = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], dtype=float)
    with pytest.raises(InvalidParameterError):
        convolve(field.data, zero_sum)


@pytest.mark.parametrize("backend", ["cpu", "cudasim"])
@pytest.mark.parametrize("structure", [None, np.ones((3, 3), int)])
def test_label_matches_scipy(backend, structure):
    rng = np.random.default_rng(3)
    size = (24, 30) if backend == "cudasim" else (200, 230)
    image = ndimage.gaussian_filter(rng.normal(size=size), 1.0) > 0.1
    ours, n = label(image, structure, backend=backend)
    ref, n_ref = ndimage.label(image, structure)
    assert n == n_ref
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.gpu
def test_filters_gpu_match_cpu(field):
    import cupy

    img = field.data
    for fn, args in ((gaussian_laplace, (2.0,)), (gaussian_filter, (1.5,))):
        gpu = cupy.asnumpy(fn(cupy.asarray(img), *args, backend="gpu"))
        _close_f32(gpu, fn(img, *args, backend="cpu"), np.abs(img).max())
    gpu = cupy.asnumpy(convolve(img, gaussian_kernel(2.5), backend="gpu"))
    _close_f32(gpu, convolve(img, gaussian_kernel(2.5), backend="cpu"), img.max())
