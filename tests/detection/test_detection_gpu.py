"""gpu backend against the cpu backend (needs a CUDA device with CuPy; skipped otherwise).

What a real GPU computes differently, and the bounds derived from it:

* CuPy reductions (``sum``, ``mean``, ``std``) add in another order than the CPU kernels, and
  the Numba CUDA kernels accumulate per-label sums with float64 atomics in any order: two sums
  of n terms differ by at most ``2 n EPS64`` relative to the sum of their magnitudes.
* NVVM contracts a multiply feeding an add into one fused multiply-add (FMA), in float64 and in
  float32, so a value computed in a CUDA kernel can differ in its last bit.
* Sorting, selection (medians, order statistics), comparisons with the same operands, integer
  and boolean work are exact on both.
"""

import numpy as np
import pytest

from hapgpu import detection as det

pytestmark = pytest.mark.gpu

EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)

#: sigma_clipped_stats: both backends keep the same values (sorting and the float32 bounds are
#: computed on the host from the same centre and spread), then reduce them in different orders:
#: mean and std differ by <= 2 n EPS64 (n = 65,536 pixels: 3e-11) before the float32 rounding of
#: float32 data, which can then land on the neighbouring float32 (one ulp, <= EPS32 relative).
STATS_RTOL = EPS32 + 2 * 256 * 256 * EPS64

#: Background2D meshes: the CUDA box kernel computes a box's float32 clipping bounds
#: ``cen - std * sigma`` with one FMA (no rounding of the product), which moves a bound by up to
#: half a float32 ulp; a data value lying exactly between the two possible bounds is then kept
#: on one backend and clipped on the other. Adding or removing one value at ~3 sigma of n moves
#: the mean by <= 3.x sigma / n, the median by ~1.25 sigma / n, so SExtractor's
#: 2.5 median - 1.5 mean by < 8 sigma / n; sigma is the box's rms, n its surviving pixel count.
ONE_VALUE_CHANGE_PER_SIGMA_OVER_N = 8.0
#: Otherwise only float64 sums of <= 27**2 values in another order, then float32 rounding.
MESH_RTOL = 2 * EPS32
#: The full-resolution background is a cubic-spline interpolation of the (median-filtered) mesh
#: evaluated in float64 (matrix products on the GPU): it moves by at most the spline's Lebesgue
#: constant (< 2 for cubic splines on a uniform grid) times the largest mesh change, then is
#: rounded to float32.
SPLINE_LEBESGUE = 2.0

#: SourceCatalog: per-label raw moments (up to third order, about the bounding-box origin) are
#: float64 atomic sums of <= a few thousand pixels (2 n EPS64 ~ 1e-12 relative); centroids and
#: second moments subtract squares of the centroid (x up to ~50 px, sigma ~ 2 px: a cancellation
#: of ~1000), leaving ~1e-9 relative at worst.
CATALOG_RTOL = 1e-9

#: aperture_photometry: exact circle/pixel overlaps in float64 (FMA moves each fraction by a few
#: ulp64, ~1e-15) summed over <= 40 pixels: ~1e-14; the error sum's square root halves that.
APERTURE_RTOL = 1e-12
#: aperture_stats_tbl's mode, 3 median - 2 mean of the annulus: the median is exact, the mean a
#: float64 sum of <= 500 values in another order (1e-13), amplified by the 3/2 combination.
ANNULUS_RTOL = 1e-9
#: DAOStarFinder centroids: float64 moment sums over the fitting box (<= 49 pixels) with FMA;
#: positions are < 256 px, so a relative 1e-13 is ~3e-11 px.
CENTROID_ATOL_PX = 1e-9
#: focus_index, compute_similarity, max_overlap_diff: the Laplacian of Gaussian of float32 data
#: (cupyx.scipy.ndimage, separable passes of 2 * 4 sigma + 1 = 17 taps for sigma = 2, each
#: with FMA) is within ~2 * 17 float32 roundings of terms no larger than the peak it is compared
#: with: 34 EPS32 = 4e-6 relative; window sums are float64 (1e-12). Counts of pixels over a
#: threshold change only if a pixel sits within those few ulps of it (~1e-5 chance per test).
QUALITY_RTOL = 1e-5


@pytest.fixture(scope="module")
def cupy():
    import cupy

    return cupy


def test_sigma_clipped_stats_and_mad_rms(field, cupy):
    dev = cupy.asarray(field.data)
    np.testing.assert_allclose(det.sigma_clipped_stats(dev, mask=~field.footprint, backend="gpu"),
                               det.sigma_clipped_stats(field.data, mask=~field.footprint,
                                                       backend="cpu"), rtol=STATS_RTOL)
    # the same float32 differences (no multiply, so no FMA) and an exact median
    assert det.mad_rms(dev, backend="gpu") == det.mad_rms(field.data, backend="cpu")


def test_background2d(field, cupy):
    gpu = det.Background2D(cupy.asarray(field.data), 27, coverage_mask=~field.footprint,
                           backend="gpu")
    cpu = det.Background2D(field.data, 27, coverage_mask=~field.footprint, backend="cpu")
    np.testing.assert_array_equal(np.isnan(gpu.background_mesh), np.isnan(cpu.background_mesh))
    counted = cpu.n_pixels_mesh > 0
    one_value = ONE_VALUE_CHANGE_PER_SIGMA_OVER_N * float(
        np.max(cpu.background_rms_mesh[counted] / cpu.n_pixels_mesh[counted]))
    np.testing.assert_allclose(gpu.background_mesh, cpu.background_mesh, rtol=MESH_RTOL,
                               atol=one_value)
    np.testing.assert_allclose(cupy.asnumpy(gpu.background), cpu.background,
                               rtol=MESH_RTOL + EPS32, atol=SPLINE_LEBESGUE * one_value)


def test_detect_deblend_catalog(detection, field, cupy):
    conv, threshold = detection
    gpu = det.detect_sources(cupy.asarray(conv), threshold, 6, backend="gpu")
    cpu = det.detect_sources(conv, threshold, 6, backend="cpu")
    # thresholding the same float32 image and labelling are exact
    np.testing.assert_array_equal(gpu.data, cpu.data)
    deb = det.deblend_sources(cupy.asarray(conv), gpu, 6, backend="gpu")
    np.testing.assert_array_equal(deb.data, det.deblend_sources(conv, cpu, 6).data)
    data = field.data - field.sky
    cat_gpu = det.SourceCatalog(cupy.asarray(data), deb, convolved_data=cupy.asarray(conv),
                                error=cupy.asarray(field.error), backend="gpu")
    cat_cpu = det.SourceCatalog(data, deb, convolved_data=conv, error=field.error,
                                backend="cpu")
    # the Kron flux is a smooth function of the centroid and shape (exact overlaps), so it
    # inherits their relative error
    for name in ("x_centroid", "y_centroid", "segment_flux", "semimajor_axis", "kron_radius",
                 "max_value_xindex", "kron_flux", "kron_flux_err"):
        np.testing.assert_allclose(np.asarray(getattr(cat_gpu, name)),
                                   np.asarray(getattr(cat_cpu, name)), rtol=CATALOG_RTOL)


def test_photometry_and_stars(field, cupy):
    data = field.data - field.sky
    pos = field.stars[:200, :2]
    ap = det.CircularAperture(pos, 3.0)
    np.testing.assert_allclose(
        det.aperture_photometry(cupy.asarray(data), ap, error=cupy.asarray(field.error),
                                backend="gpu")["aperture_sum_err"],
        det.aperture_photometry(data, ap, error=field.error, backend="cpu")["aperture_sum_err"],
        rtol=APERTURE_RTOL)
    ann = det.CircularAnnulus(pos, 6.0, 12.0)
    gpu = det.aperture_stats_tbl(cupy.asarray(field.data), ann, backend="gpu")
    cpu = det.aperture_stats_tbl(field.data, ann, backend="cpu")
    np.testing.assert_allclose(gpu["aperture_mode"], cpu["aperture_mode"], rtol=ANNULUS_RTOL)
    gpu = det.DAOStarFinder(0.05, 2.5, backend="gpu").find_stars(cupy.asarray(data))
    cpu = det.DAOStarFinder(0.05, 2.5, backend="cpu").find_stars(data)
    assert len(gpu) == len(cpu) > 10
    np.testing.assert_allclose(gpu["x_centroid"], cpu["x_centroid"], rtol=0, atol=CENTROID_ATOL_PX)
    np.testing.assert_allclose(gpu["y_centroid"], cpu["y_centroid"], rtol=0, atol=CENTROID_ATOL_PX)


def test_find_peaks(field, cupy):
    data = field.data - field.sky
    gpu = det.find_peaks(cupy.asarray(data), 0.05, box_size=5, border_width=3, backend="gpu")
    cpu = det.find_peaks(data, 0.05, box_size=5, border_width=3, backend="cpu")
    assert len(cpu) > 10
    for col in ("x_peak", "y_peak", "peak_value"):  # comparisons of the same values: exact
        np.testing.assert_array_equal(np.asarray(gpu[col]), np.asarray(cpu[col]))


def test_ndimage_filters_and_label(field, cupy):
    """Order statistics, morphology and labelling through cupyx.scipy.ndimage: exact."""
    img = field.data
    dev = cupy.asarray(img)
    for fn, kwargs in ((det.maximum_filter, {"size": 11}), (det.median_filter, {"size": 5})):
        np.testing.assert_array_equal(cupy.asnumpy(fn(dev, backend="gpu", **kwargs)),
                                      fn(img, backend="cpu", **kwargs))
    footprint = field.footprint
    np.testing.assert_array_equal(
        cupy.asnumpy(det.binary_erosion(cupy.asarray(footprint), iterations=10, backend="gpu")),
        det.binary_erosion(footprint, iterations=10, backend="cpu"))
    above = img > field.sky + 0.03
    for structure in (None, np.ones((3, 3), int)):
        labels, n = det.label(cupy.asarray(above), structure, backend="gpu")
        ref, n_ref = det.label(above, structure, backend="cpu")
        assert n == n_ref > 10
        np.testing.assert_array_equal(cupy.asnumpy(labels), ref)


def test_convolve_interpolates_nans(field, cupy):
    """astropy-style NaN interpolation: two float64 convolutions and a division on the GPU."""
    img = field.data.astype(np.float64)
    img[100:104, 50:60] = np.nan
    mask = np.zeros(img.shape, bool)
    mask[10:12, 200:230] = True
    kernel = np.outer(np.hanning(9)[1:-1], np.hanning(9)[1:-1])  # 7x7, rank 1: two 1-D passes
    gpu = cupy.asnumpy(det.convolve(cupy.asarray(img), kernel, mask=cupy.asarray(mask),
                                    backend="gpu"))
    cpu = det.convolve(img, kernel, mask=mask, backend="cpu")
    np.testing.assert_array_equal(np.isnan(gpu), np.isnan(cpu))
    # each output is a ratio of two float64 sums of 49 products (7 per pass), evaluated with
    # FMA and in another order: <= 2 * 2 * 49 EPS64 relative to the sum of |terms|, i.e. to
    # max|data| for this positive kernel (the denominator is >= the smallest kernel weight).
    scale = float(np.nanmax(np.abs(img)))
    np.testing.assert_allclose(gpu, cpu, rtol=0, atol=4 * 49 * EPS64 * scale / kernel.min() * kernel.sum(),
                               equal_nan=True)


def test_quality_metrics(field, cupy):
    img = cupy.asarray(field.data)
    assert det.focus_index(img, 2.0, backend="gpu")[0] == pytest.approx(
        det.focus_index(field.data, 2.0, backend="cpu")[0], rel=QUALITY_RTOL)
    assert det.compute_similarity(img, img * 1.01, backend="gpu") == pytest.approx(
        det.compute_similarity(field.data, field.data * 1.01, backend="cpu"), rel=QUALITY_RTOL)


def test_max_overlap_diff(field, cupy):
    a = field.data
    b = np.roll(field.data, 1, axis=1)
    total = 2 * field.footprint.astype(int)
    gpu = det.max_overlap_diff(total, [cupy.asarray(a), cupy.asarray(b)],
                               cupy.asarray(0.5 * (a + b)), backend="gpu")
    cpu = det.max_overlap_diff(total, [a, b], 0.5 * (a + b), backend="cpu")
    assert gpu.keys() == cpu.keys()
    for name, ref in cpu.items():
        assert ref["num_sources"] > 10
        for key, value in ref.items():
            if isinstance(value, (float, np.floating)):
                assert gpu[name][key] == pytest.approx(value, rel=QUALITY_RTOL), key
            else:  # source counts, positions and slices: from exact comparisons
                assert gpu[name][key] == value, key
