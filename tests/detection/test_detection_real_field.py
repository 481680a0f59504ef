"""Detection parity with photutils on real HST pixels: a 256x256 cut-out of an ACS/HRC F606W
exposure of 47 Tuc (``tests/data/j8bt06nyq_cutout_flt.fits.gz``, see its README).

A crowded field of real stars with real noise, saturated cores and DQ-flagged pixels: the
statistics, background, segmentation, deblending, catalog, star finder and aperture photometry
must equal photutils (and astropy) on it, as on the synthetic fields of the other tests.
"""

import warnings

import numpy as np
import pytest
from astropy.io import fits

from hapgpu.detection import (
    Background2D,
    CircularAperture,
    DAOStarFinder,
    SourceCatalog,
    aperture_photometry,
    deblend_sources,
    detect_sources,
    sigma_clipped_stats,
)

from ..conftest import data_file

pytestmark = pytest.mark.reference

COLUMNS = ["label", "x_centroid", "y_centroid", "area", "segment_flux", "segment_flux_err",
           "semimajor_axis", "semiminor_axis", "orientation", "fwhm", "max_value", "kron_radius"]


@pytest.fixture(scope="module")
def exposure():
    """(SCI, ERR, bad-pixel mask) of the cut-out, native-endian float32 (electrons)."""
    with fits.open(data_file("j8bt06nyq_cutout_flt.fits.gz")) as hdul:
        assert hdul[0].header["INSTRUME"].strip() == "ACS" and hdul[0].header["DETECTOR"].strip() == "HRC"
        sci = hdul["SCI"].data.astype(np.float32)
        err = hdul["ERR"].data.astype(np.float32)
        bad = hdul["DQ"].data != 0
    assert sci.shape == (256, 256) and bad.any()
    return sci, err, bad


@pytest.fixture(scope="module")
def background(exposure):
    sci, _, bad = exposure
    # a crowded field: sigma clipping removes > 10% of most boxes, so allow up to 50%
    return Background2D(sci, (32, 32), mask=bad, exclude_percentile=50.0, backend="cpu")


def test_statistics_and_background_match(exposure, background):
    from astropy.stats import sigma_clipped_stats as ref_stats
    from photutils.background import Background2D as RefBackground

    sci, _, bad = exposure
    ours = sigma_clipped_stats(sci, mask=bad, sigma=3.0, backend="cpu")
    np.testing.assert_allclose(ours, ref_stats(sci, mask=bad, sigma=3.0), rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = RefBackground(sci, (32, 32), mask=bad, exclude_percentile=50.0)
    scale = np.abs(ref.background).max()
    np.testing.assert_allclose(background.background, ref.background, rtol=1e-5, atol=1e-6 * scale)
    np.testing.assert_allclose(background.background_rms, ref.background_rms, rtol=1e-5,
                               atol=1e-6 * scale)


def test_segmentation_deblending_and_catalog_match(exposure, background):
    from photutils.segmentation import SourceCatalog as RefCatalog
    from photutils.segmentation import deblend_sources as ref_deblend
    from photutils.segmentation import detect_sources as ref_detect

    sci, err, bad = exposure
    data = sci - background.background
    threshold = 3.0 * background.background_rms
    segm = detect_sources(data, threshold, 5, mask=bad, backend="cpu")
    ref_segm = ref_detect(data, threshold, 5, mask=bad)
    assert segm.nlabels == ref_segm.n_labels > 100
    np.testing.assert_array_equal(segm.data, ref_segm.data)

    deblended = deblend_sources(data, segm, 5, backend="cpu")
    ref_deblended = ref_deblend(data, ref_segm, 5, progress_bar=False)
    assert deblended.nlabels == ref_deblended.n_labels > segm.nlabels  # blends were split
    np.testing.assert_array_equal(deblended.data, ref_deblended.data)

    ours = SourceCatalog(data, deblended, error=err, mask=bad, backend="cpu").to_table(columns=COLUMNS)
    ref = RefCatalog(data, ref_deblended, error=err, mask=bad).to_table(columns=COLUMNS)
    for name in COLUMNS:
        a = np.asarray(getattr(ref[name], "value", ref[name]), float)
        b = np.asarray(getattr(ours[name], "value", ours[name]), float)
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-9 * np.nanmax(np.abs(a)), equal_nan=True,
                                   err_msg=name)


def test_star_finder_and_photometry_match(exposure):
    from photutils.aperture import CircularAperture as RefAperture
    from photutils.aperture import aperture_photometry as ref_photometry
    from photutils.detection import DAOStarFinder as RefFinder

    sci, err, bad = exposure
    _, median, std = sigma_clipped_stats(sci, mask=bad, backend="cpu")
    image = sci - median
    ours = DAOStarFinder(threshold=5.0 * std, fwhm=2.5, backend="cpu")(image, mask=bad)
    ref = RefFinder(threshold=5.0 * std, fwhm=2.5)(image, mask=bad)
    assert len(ours) == len(ref) > 100
    for name in ("x_centroid", "y_centroid", "sharpness", "roundness1", "roundness2", "peak"):
        np.testing.assert_allclose(ours[name], ref[name], rtol=1e-5, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(ours["flux"], ref["flux"], rtol=1e-5)

    positions = np.transpose([ref["x_centroid"], ref["y_centroid"]])
    phot = aperture_photometry(image, CircularAperture(positions, r=3.0), error=err, mask=bad,
                               backend="cpu")
    ref_phot = ref_photometry(image, RefAperture(positions, r=3.0), error=err, mask=bad)
    np.testing.assert_allclose(phot["aperture_sum"], ref_phot["aperture_sum"], rtol=1e-6)
    np.testing.assert_allclose(phot["aperture_sum_err"], ref_phot["aperture_sum_err"], rtol=1e-6)
