"""Detection parity on a *drizzled* image made by hapgpu itself from a simulated visit.

The other detection tests use synthetic arrays; this one runs the primitives on what the HAP
catalogs really see: a drizzled WFC3/UVIS product (hapgpu.simulate -> hapgpu.astrodrizzle), with
its correlated noise, chip edges and uncovered regions.
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
    detect_sources,
    sigma_clipped_stats,
)

pytestmark = pytest.mark.reference

COLUMNS = ["label", "x_centroid", "y_centroid", "area", "segment_flux", "semimajor_axis",
           "semiminor_axis", "orientation", "fwhm", "max_value", "kron_radius"]


@pytest.fixture(scope="module")
def drizzled(tmp_path_factory):
    from hapgpu.astrodrizzle import astrodrizzle
    from hapgpu.simulate import simulate_visit

    out = tmp_path_factory.mktemp("drz")
    visit = simulate_visit(out, instrument="wfc3-uvis", n_exposures=2, seed=21, shape=256,
                           crowded=True, cosmic_rays=False)
    product = astrodrizzle([str(e.path) for e in visit.exposures], out / "det", backend="cpu",
                           pars="wfc3_uvis_n2").product
    with fits.open(product) as hdul:
        sci = np.array(hdul["SCI"].data, dtype=np.float32)
        wht = np.array(hdul["WHT"].data, dtype=np.float32)
    covered = (wht > 0) & np.isfinite(sci)
    sci[~covered] = 0.0
    return sci, covered


@pytest.fixture(scope="module")
def segmentation(drizzled):
    sci, covered = drizzled
    _, median, std = sigma_clipped_stats(sci, mask=~covered, sigma=3.0, backend="cpu")
    threshold = median + 3.0 * std
    return detect_sources(sci, threshold, 5, mask=~covered, backend="cpu"), threshold


def test_stats_and_background_match(drizzled):
    from astropy.stats import sigma_clipped_stats as ref_stats
    from photutils.background import Background2D as RefBackground

    sci, covered = drizzled
    ours = sigma_clipped_stats(sci, mask=~covered, sigma=3.0, backend="cpu")
    ref = ref_stats(sci, mask=~covered, sigma=3.0)
    np.testing.assert_allclose(ours, ref, rtol=1e-5)
    # a crowded field: sigma clipping removes > 10% of most boxes, so allow up to 50%
    kwargs = dict(filter_size=(3, 3), coverage_mask=~covered, exclude_percentile=50.0)
    bkg = Background2D(sci, (32, 32), backend="cpu", **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rbkg = RefBackground(sci, (32, 32), **kwargs)
    np.testing.assert_allclose(bkg.background, rbkg.background, rtol=1e-5,
                               atol=1e-6 * np.abs(rbkg.background).max())


def test_segmentation_and_catalog_match(drizzled, segmentation):
    from photutils.segmentation import SourceCatalog as RefCatalog
    from photutils.segmentation import detect_sources as ref_detect

    sci, covered = drizzled
    segm, threshold = segmentation
    ref_segm = ref_detect(sci, threshold, 5, mask=~covered)
    assert segm.nlabels == ref_segm.n_labels > 10
    np.testing.assert_array_equal(segm.data, ref_segm.data)
    ours = SourceCatalog(sci, segm, mask=~covered, backend="cpu").to_table(columns=COLUMNS)
    ref = RefCatalog(sci, ref_segm, mask=~covered).to_table(columns=COLUMNS)
    for name in COLUMNS:
        a = np.asarray(getattr(ref[name], "value", ref[name]), float)
        b = np.asarray(getattr(ours[name], "value", ours[name]), float)
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-9 * np.nanmax(np.abs(a)), equal_nan=True,
                                   err_msg=name)


def test_star_finder_and_photometry_match(drizzled):
    from photutils.aperture import CircularAperture as RefAperture
    from photutils.aperture import aperture_photometry as ref_phot
    from photutils.detection import DAOStarFinder as RefFinder

    sci, covered = drizzled
    _, median, std = sigma_clipped_stats(sci, mask=~covered, backend="cpu")
    finder = DAOStarFinder(fwhm=2.0, threshold=5.0 * std, backend="cpu")
    ref_finder = RefFinder(fwhm=2.0, threshold=5.0 * std)
    image = sci - median
    ours = finder(image, mask=~covered)
    ref = ref_finder(image, mask=~covered)
    assert len(ours) == len(ref) > 5
    np.testing.assert_allclose(ours["x_centroid"], ref["x_centroid"], atol=1e-4)
    np.testing.assert_allclose(ours["y_centroid"], ref["y_centroid"], atol=1e-4)
    positions = np.transpose([ref["x_centroid"], ref["y_centroid"]])
    phot = aperture_photometry(image, CircularAperture(positions, r=3.0), backend="cpu")
    ref_tab = ref_phot(image, RefAperture(positions, r=3.0))
    np.testing.assert_allclose(phot["aperture_sum"], ref_tab["aperture_sum"], rtol=1e-5)
