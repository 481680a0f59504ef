"""The point catalog: identification on the total and the per-filter table
(hapgpu.catalogs._point)."""

import logging

import astropy.units as u
import numpy as np
import pytest
from astropy.table import Table

from hapgpu.catalogs import _point, _psf
from hapgpu.errors import InvalidParameterError

from ._point_helpers import make_total, star_field

BLOCK = (256, 256)  # a small FFT block keeps the tests fast
F555W = _psf.PSF_LIBRARY / "wfc3" / "uvis" / "wfc3_uvis_f555w.fits"


def _f555w():
    """The shipped WFC3/UVIS F555W library PSF (149 x 149)."""
    return _psf.load_library_psf(F555W)


def _region(total):
    """The psf path's region of the (single) weight region, as identify builds it."""
    gen = total.params.generation
    image = np.clip(np.nan_to_num(total.data) - total.background.background, 0, None)
    region_def = total.regions[0]
    region = image * region_def.mask
    reg_rms = total.background.rms * np.sqrt(region_def.mask / region_def.rel_weight.max())
    return np.clip(region - reg_rms * gen["nsigma"], 0.0, None)


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    data, xs, ys = star_field()
    total = make_total(tmp_path_factory.mktemp("point"), data=data, block_size=BLOCK)
    return total, xs, ys


@pytest.mark.reference
@pytest.mark.slow
def test_psf_peaks_and_user_star_finder_match_drizzlepac(field):
    """find_point_sources' steps after the PSF and UserStarFinder, drizzlepac vs hapgpu."""
    from drizzlepac.haputils import deconvolve_utils as du
    from photutils.detection import find_peaks
    from scipy import ndimage

    total, _, _ = field
    region = _region(total)
    footprint = np.asarray(total.footprint)
    drizzled = _psf.drizzle_library_psf(
        [_f555w()], total.product.exposures[0],
        total.product.wcs, total.data.shape, backend="cpu").data
    fwhm = _psf.psf_fwhm(drizzled, total.kernel_fwhm)

    # drizzlepac, composed from its own functions as find_point_sources runs them
    ref_region = region.copy()
    dec = du.fft_deconv_img(ref_region, drizzled, block_size=BLOCK)
    dec *= ndimage.binary_erosion(footprint, iterations=11)
    dec_peaks = find_peaks(dec, threshold=0.0, mask=~footprint, box_size=11)
    peak_mask = np.zeros(ref_region.shape, np.uint8)
    for x, y in zip(dec_peaks["x_peak"], dec_peaks["y_peak"]):
        peak_mask[y - 5:y + 6, x - 5:x + 6] = 1
    ref_region *= peak_mask
    ref_peaks = find_peaks(ref_region, threshold=0.0, box_size=5)
    ref = du.UserStarFinder(fwhm=fwhm, coords=ref_peaks, threshold=1e-10, sharphi=0.9,
                            sharplo=0.4).find_stars(ref_region, mask=~footprint)

    peaks = _psf.find_psf_peaks(region, drizzled, footprint, box_size=11, block_size=BLOCK,
                                backend="cpu")
    np.testing.assert_array_equal(peaks.x_peak, ref_peaks["x_peak"])
    np.testing.assert_array_equal(peaks.y_peak, ref_peaks["y_peak"])
    np.testing.assert_array_equal(peaks.masked, ref_region)
    mine = _point.measure_user_peaks(peaks.masked, peaks.x_peak, peaks.y_peak, fwhm,
                                     backend="cpu")
    assert len(mine) == len(ref) > 15
    # The region is float32 (as drizzlepac's): its box sums are float32 there and float64
    # here, hence 1e-6 (roundness1 is a difference of quadrant sums).
    for name in ("xcentroid", "ycentroid", "sharpness", "roundness1", "roundness2", "peak",
                 "flux", "mag", "npix"):
        np.testing.assert_allclose(np.asarray(mine[name], float), np.asarray(ref[name], float),
                                   rtol=1e-6, atol=1e-6, err_msg=name)


def test_identify_psf_path_finds_the_stars(field):
    total, xs, ys = field
    sources = _point.identify_point_sources(total, backend="cpu")
    assert sources.colnames[:5] == ["id", "xcentroid", "ycentroid", "RA", "DEC"]
    np.testing.assert_array_equal(sources["id"], np.arange(1, len(sources) + 1))
    # every found source is a drawn star, to a fraction of a pixel (blends shift a few)
    dist = np.hypot(sources["xcentroid"][:, None] - xs[None], sources["ycentroid"][:, None]
                    - ys[None]).min(axis=1)
    assert len(sources) >= 0.8 * len(xs) and np.all(dist < 0.5) and np.median(dist) < 0.05
    ra, dec = total.product.wcs.all_pix2world(sources["xcentroid"], sources["ycentroid"], 0)
    np.testing.assert_allclose(sources["RA"], ra)
    np.testing.assert_allclose(sources["DEC"], dec)
    assert "daofind_mag" not in sources.colnames
    # the same PSF drizzled beforehand on a copy of the WCS (make_hap_catalogs' worker)
    psf = _point.drizzled_total_psf(total.product, wcs=total.product.wcs.deepcopy(),
                                    backend="cpu")
    given = _point.identify_point_sources(total, backend="cpu", library_psf=psf)
    assert len(given) == len(sources)
    for name in ("xcentroid", "ycentroid", "flux", "sharpness"):
        np.testing.assert_array_equal(given[name], sources[name])


def _dao_reference(total):
    from hapgpu.detection import DAOStarFinder

    region = _region(total)
    rms_median = np.median(total.background.rms[total.regions[0].mask > 0])
    return DAOStarFinder(threshold=total.params.generation["nsigma"] * rms_median,
                         fwhm=total.kernel_fwhm, min_separation=0,
                         backend="cpu").find_stars(region, mask=total.inv_footprint)


@pytest.mark.parametrize("case", ["no exposure", "missing library PSF"])
def test_psf_failure_falls_over_to_daofind(tmp_path, case, caplog):
    data, _, _ = star_field()
    kwargs = {"exposures": False} if case == "no exposure" else {
        "photmode": "WFC3 UVIS1 F999W MJD#58000.0"}
    total = make_total(tmp_path, data=data, block_size=BLOCK, **kwargs)
    with caplog.at_level(logging.INFO, logger="hapgpu.catalogs._point"):
        sources = _point.identify_point_sources(total, backend="cpu")
    assert "PSF source finding failed" in caplog.text
    # the PSF made beforehand in a worker thread (as make_hap_catalogs does): its failure
    # takes the same path, at the same place
    from concurrent.futures import ThreadPoolExecutor

    caplog.clear()
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(_point.drizzled_total_psf, total.product, backend="cpu")
        with caplog.at_level(logging.INFO, logger="hapgpu.catalogs._point"):
            threaded = _point.identify_point_sources(total, backend="cpu", library_psf=future)
    assert "PSF source finding failed" in caplog.text
    assert len(threaded) == len(sources)
    np.testing.assert_array_equal(threaded["xcentroid"], sources["xcentroid"])
    assert "reverting to DAOStarFinder" in caplog.text
    ref = _dao_reference(total)
    assert len(sources) == len(ref) > 10
    np.testing.assert_allclose(sources["xcentroid"], ref["x_centroid"])
    np.testing.assert_allclose(sources["ycentroid"], ref["y_centroid"])
    assert sources.colnames[:5] == ["id", "xcentroid", "ycentroid", "RA", "DEC"]


def test_dao_algorithm_uses_kernel_fwhm(tmp_path):
    data, _, _ = star_field()
    total = make_total(tmp_path, data=data, algorithm="dao", block_size=BLOCK)
    sources = _point.identify_point_sources(total, backend="cpu")
    from hapgpu.detection import DAOStarFinder

    image = np.clip(np.nan_to_num(total.data) - total.background.background, 0, None)
    region = image * total.regions[0].mask
    rms_median = np.median(total.background.rms[total.regions[0].mask > 0])
    ref = DAOStarFinder(threshold=5.0 * rms_median, fwhm=total.kernel_fwhm, min_separation=0,
                        backend="cpu").find_stars(region, mask=total.inv_footprint)
    np.testing.assert_allclose(sources["xcentroid"], ref["x_centroid"])
    assert "npix" in sources.colnames and "n_pixels" not in sources.colnames


def test_unknown_algorithm_is_refused(tmp_path):
    data, _, _ = star_field(n_stars=3)
    total = make_total(tmp_path, data=data, algorithm="sextractor", exposures=False)
    with pytest.raises(InvalidParameterError, match="starfinder_algorithm"):
        _point.identify_point_sources(total, backend="cpu")


def test_blank_and_empty_images_give_the_empty_table(tmp_path):
    blank = make_total(tmp_path, data=np.zeros((80, 80), np.float32), exposures=False)
    sources = _point.identify_point_sources(blank, backend="cpu")
    assert len(sources) == 0
    assert sources.colnames == ["xcentroid", "ycentroid", "RA", "DEC", "id", "Flags"]
    assert sources["RA"].format == "13.7f" and sources["xcentroid"].unit == u.pixel
    assert sources["id"].description == "Catalog Object Identification Number"
    table, subset = _point.measure_point_catalog(blank, sources, backend="cpu")
    assert len(table) == 0 and table.colnames == sources.colnames
    assert subset.colnames == ["ID", "MagAP2_total", "CI_total", "Flags_total"]
    assert len(_point.total_point_table(sources)) == 0


def test_measure_point_catalog_table(field):
    total, _, _ = field
    sources = _point.identify_point_sources(total, backend="cpu")
    table, subset = _point.measure_point_catalog(total, sources, backend="cpu")
    assert table.colnames == list(_point.POINT_COLUMNS)
    for name, (fmt, unit, description) in _point.POINT_COLUMNS.items():
        assert table[name].format == fmt
        assert table[name].unit == (u.Unit(unit) if unit else None) or (
            not unit and table[name].unit == u.dimensionless_unscaled)
        assert table[name].description == description
    np.testing.assert_array_equal(table["X-Center"], sources["xcentroid"])
    np.testing.assert_array_equal(table["ID"], sources["id"])
    assert np.all(table["Flags"] == 0)
    # the sums come from measure_apertures on the SCI (not background subtracted)
    from hapgpu.catalogs._photometry import measure_apertures

    gen = total.params.generation
    phot = measure_apertures(total.data, sources["xcentroid"], sources["ycentroid"],
                             error=total.background.rms, radii=total.aperture_radii,
                             annulus=total.annulus, gain=total.gain,
                             photflam=total.product.keywords["photflam"],
                             photplam=total.product.keywords["photplam"],
                             salgorithm=gen["salgorithm"], backend="cpu")
    for name in ("FluxAp1", "MagAp2", "MSkyAp2", "FluxErrAp2"):
        np.testing.assert_array_equal(table[name], phot[name])
    assert subset.colnames == ["ID", "MagAP2_total", "CI_total", "Flags_total"]
    np.testing.assert_array_equal(subset["MagAP2_total"], table["MagAp2"])
    base = _point.total_point_table(sources)
    assert base.colnames == ["ID", "X-Center", "Y-Center", "RA", "DEC"]
    assert "xcentroid" in sources.colnames  # the input is left alone


def test_user_star_finder_skips_edges_and_applies_open_limits():
    psf = _f555w().astype(np.float64)
    c, h = psf.shape[0] // 2, 13
    psf = psf[c - h:c + h + 1, c - h:c + h + 1]
    data = np.zeros((60, 60))
    data[30 - h:30 + h + 1, 30 - h:30 + h + 1] += 100 * psf
    data[1, 40] = 50.0                              # box leaves the image: skipped
    data[45, 10] = 80.0                             # a lone hot pixel: sharpness 1, dropped
    table = _point.measure_user_peaks(data, [30, 40, 10], [30, 1, 45], 2.25, backend="cpu")
    assert len(table) == 1 and abs(table["xcentroid"][0] - 30) < 0.05
    assert table["flux"][0] == pytest.approx(data[30, 30] / (1e-10 * _rel_err(2.25)))
    assert _point.measure_user_peaks(data, [10], [45], 2.25, backend="cpu") is None


def _rel_err(fwhm):
    from hapgpu.detection import StarFinderKernel

    return StarFinderKernel(fwhm).rel_err


@pytest.mark.slow
def test_cudasim_matches_cpu(field):
    total, _, _ = field
    region = _region(total)[40:120, 40:120]
    footprint = np.ones(region.shape, bool)
    footprint[:3] = False
    drizzled = _psf.drizzle_library_psf(
        [_f555w()], total.product.exposures[0],
        total.product.wcs, total.data.shape, backend="cpu").data
    cpu = _psf.find_psf_peaks(region, drizzled, footprint, block_size=BLOCK, backend="cpu")
    sim = _psf.find_psf_peaks(region, drizzled, footprint, block_size=BLOCK, backend="cudasim")
    np.testing.assert_array_equal(cpu.x_peak, sim.x_peak)
    np.testing.assert_array_equal(cpu.y_peak, sim.y_peak)
    assert cpu.x_peak.size > 3
    a = _point.measure_user_peaks(cpu.masked, cpu.x_peak, cpu.y_peak, 2.2, backend="cpu")
    b = _point.measure_user_peaks(sim.masked, sim.x_peak, sim.y_peak, 2.2, backend="cudasim")
    assert Table(a).colnames == Table(b).colnames and len(a) == len(b) > 0
    for name in a.colnames:
        np.testing.assert_allclose(np.asarray(a[name], float), np.asarray(b[name], float),
                                   rtol=1e-12, atol=1e-12)
