"""gpu backend against the cpu backend (needs a CUDA device with CuPy; skipped otherwise)."""

import numpy as np
import pytest

from hapgpu import detection as det

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cupy():
    return pytest.importorskip("cupy")


def test_sigma_clipped_stats_and_mad_rms(field, cupy):
    dev = cupy.asarray(field.data)
    np.testing.assert_allclose(det.sigma_clipped_stats(dev, mask=~field.footprint, backend="gpu"),
                               det.sigma_clipped_stats(field.data, mask=~field.footprint,
                                                       backend="cpu"), rtol=2e-7)
    assert det.mad_rms(dev, backend="gpu") == pytest.approx(
        det.mad_rms(field.data, backend="cpu"), rel=1e-6)


def test_background2d(field, cupy):
    gpu = det.Background2D(cupy.asarray(field.data), 27, coverage_mask=~field.footprint,
                           backend="gpu")
    cpu = det.Background2D(field.data, 27, coverage_mask=~field.footprint, backend="cpu")
    np.testing.assert_allclose(gpu.background_mesh, cpu.background_mesh, rtol=1e-6)
    np.testing.assert_allclose(cupy.asnumpy(gpu.background), cpu.background, rtol=1e-6,
                               atol=1e-7)


def test_detect_deblend_catalog(detection, field, cupy):
    conv, threshold = detection
    gpu = det.detect_sources(cupy.asarray(conv), threshold, 6, backend="gpu")
    cpu = det.detect_sources(conv, threshold, 6, backend="cpu")
    np.testing.assert_array_equal(gpu.data, cpu.data)
    deb = det.deblend_sources(cupy.asarray(conv), gpu, 6, backend="gpu")
    np.testing.assert_array_equal(deb.data, det.deblend_sources(conv, cpu, 6).data)
    data = field.data - field.sky
    cat_gpu = det.SourceCatalog(cupy.asarray(data), deb, convolved_data=cupy.asarray(conv),
                                error=cupy.asarray(field.error), backend="gpu")
    cat_cpu = det.SourceCatalog(data, deb, convolved_data=conv, error=field.error,
                                backend="cpu")
    for name in ("x_centroid", "y_centroid", "segment_flux", "semimajor_axis", "kron_radius",
                 "max_value_xindex"):
        np.testing.assert_allclose(np.asarray(getattr(cat_gpu, name)),
                                   np.asarray(getattr(cat_cpu, name)), rtol=1e-9)


def test_photometry_and_stars(field, cupy):
    data = field.data - field.sky
    pos = field.stars[:200, :2]
    ap = det.CircularAperture(pos, 3.0)
    np.testing.assert_allclose(
        det.aperture_photometry(cupy.asarray(data), ap, error=cupy.asarray(field.error),
                                backend="gpu")["aperture_sum_err"],
        det.aperture_photometry(data, ap, error=field.error, backend="cpu")["aperture_sum_err"],
        rtol=1e-12)
    ann = det.CircularAnnulus(pos, 6.0, 12.0)
    gpu = det.aperture_stats_tbl(cupy.asarray(field.data), ann, backend="gpu")
    cpu = det.aperture_stats_tbl(field.data, ann, backend="cpu")
    np.testing.assert_allclose(gpu["aperture_mode"], cpu["aperture_mode"], rtol=1e-9)
    gpu = det.DAOStarFinder(0.05, 2.5, backend="gpu").find_stars(cupy.asarray(data))
    cpu = det.DAOStarFinder(0.05, 2.5, backend="cpu").find_stars(data)
    np.testing.assert_allclose(gpu["x_centroid"], cpu["x_centroid"], atol=1e-6)


def test_quality_metrics(field, cupy):
    img = cupy.asarray(field.data)
    assert det.focus_index(img, 2.0, backend="gpu")[0] == pytest.approx(
        det.focus_index(field.data, 2.0, backend="cpu")[0], rel=1e-5)
    assert det.compute_similarity(img, img * 1.01, backend="gpu") == pytest.approx(
        det.compute_similarity(field.data, field.data * 1.01, backend="cpu"), rel=1e-5)
