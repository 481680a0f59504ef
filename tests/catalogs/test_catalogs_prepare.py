"""Image preparation, parameters and aperture photometry of the HAP catalogs against drizzlepac
3.11's own functions run on the same inputs (hap-pipeline.md §1.13 A and B)."""

from __future__ import annotations

import json
import logging
import types
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from hapgpu.catalogs import (
    catalog_parameters,
    ci_limits,
    compute_background,
    make_wht_masks,
    measure_apertures,
    prepare_image,
    read_catalog_product,
    region_threshold,
)
from hapgpu.catalogs._parameters import DETECTORS
from hapgpu.catalogs._prepare import gaussian_kernel
from hapgpu.errors import InvalidInputError, InvalidParameterError

drizzlepac = pytest.importorskip("drizzlepac")

SHAPE = (300, 280)
PSCALE = 0.04


def _wcs():
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [10.0, -30.0]
    w.wcs.crpix = [SHAPE[1] / 2, SHAPE[0] / 2]
    w.wcs.cd = [[-PSCALE / 3600, 0], [0, PSCALE / 3600]]
    return w


def _field(rng, *, sky=0.05, noise=0.01, gradient=0.0, n_stars=60):
    ny, nx = SHAPE
    yy, xx = np.mgrid[:ny, :nx]
    img = sky + gradient * (xx / nx) ** 2 + rng.normal(0, noise, SHAPE)
    for x, y, f in zip(rng.uniform(20, nx - 20, n_stars), rng.uniform(20, ny - 20, n_stars),
                       rng.lognormal(0, 1, n_stars)):
        img += f * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.0 ** 2)) / (2 * np.pi)
    return img


def _write_product(path: Path, data, *, detector="UVIS", instrument="WFC3", wht=None, texptime=800.0,
                   numexp=2, ndrizim=4, mask=None):
    """A minimal drizzled product carrying every keyword drizzlepac's CatalogImage reads."""
    if mask is None:
        mask = np.zeros(SHAPE, dtype=np.int16)
        mask[15:-15, 12:-12] = 2
        mask[15:-15, 140:-12] = 1
    data = np.where(mask > 0, data, 0.0).astype(np.float32)
    if wht is None:
        wht = (mask * 400.0).astype(np.float32)
    primary = fits.Header()
    primary.update(PROPOSID=17001, FILENAME=path.name, TARGNAME="SIM", DATE_OBS="x")
    primary.update({"DATE-OBS": "2021-01-01", "TIME-OBS": "00:00:00", "INSTRUME": instrument,
                    "DETECTOR": detector, "RA_TARG": 10.0, "DEC_TARG": -30.0, "EXPSTART": 59215.0,
                    "TEXPTIME": texptime, "EXPTIME": texptime, "NDRIZIM": ndrizim,
                    "NUMEXP": numexp, "CCDGAIN": 1.5, "READNSEA": 3.1, "READNSEB": 3.2,
                    "ATODGNA": 1.55, "ATODGNB": 1.56, "PA_V3": 12.0, "FILTER": "F555W",
                    "FILTER1": "F555W", "FILTER2": "CLEAR2L", "PHOTFLAM": 1.8e-19,
                    "PHOTPLAM": 5300.0})
    sci = _wcs().to_header()
    sci.update(WCSNAME="IDC_sim", WCSTYPE="a priori", ORIENTAT=0.0, RA_APER=10.0, DEC_APER=-30.0)
    hdul = fits.HDUList([fits.PrimaryHDU(header=primary),
                         fits.ImageHDU(data, sci, name="SCI"),
                         fits.ImageHDU(wht, sci, name="WHT")])
    hdul.writeto(path)
    return path, mask


@pytest.fixture()
def drizzlepac_image(monkeypatch):
    """drizzlepac's CatalogImage with its background computed; its file closed at teardown.

    Oracle shim (test only): drizzlepac 3.11 calls ``Background2D(..., bkgrms_estimator=...)``,
    a keyword photutils 3 renamed ``bkg_rms_estimator``; without the shim every Background2D
    attempt raises TypeError and drizzlepac then fails on an unbound variable.
    """
    from drizzlepac.haputils import catalog_utils
    from drizzlepac.haputils.catalog_utils import CatalogImage

    photutils_background2d = catalog_utils.Background2D

    def background2d(*args, bkgrms_estimator=None, **kwargs):
        return photutils_background2d(*args, bkg_rms_estimator=bkgrms_estimator, **kwargs)

    monkeypatch.setattr(catalog_utils, "Background2D", background2d)
    opened = []

    def make(path, mask, params):
        image = CatalogImage(str(path), mask, logging.WARNING)
        opened.append(image.imghdu)
        g = params.generation
        image.compute_background(g["bkg_box_size"], g["bkg_filter_size"],
                                 simple_bkg=g["simple_bkg"],
                                 bkg_skew_threshold=g["bkg_skew_threshold"],
                                 zero_percent=g["zero_percent"],
                                 negative_percent=g["negative_percent"],
                                 nsigma_clip=g["nsigma_clip"], maxiters=g["maxiters"])
        return image

    yield make
    for hdul in opened:
        hdul.close()


def _assert_background_equal(ours, ref):
    assert ours.kind == ref.bkg_type
    assert ours.rms.dtype == ref.bkg_rms_ra.dtype.newbyteorder("=")
    # constant cases are the same float32 numbers; Background2D sums boxes in another order
    # (float32 mesh statistics: a few float32 eps of the values)
    exact = ours.kind != "twod_background"
    tol = {"rtol": 0, "atol": 0} if exact else {"rtol": 1e-5, "atol": 0}
    np.testing.assert_allclose(ours.background, ref.bkg_background_ra, **tol)
    np.testing.assert_allclose(ours.rms, ref.bkg_rms_ra, **tol)
    np.testing.assert_allclose(ours.median, ref.bkg_median, rtol=1e-6)
    np.testing.assert_allclose(ours.rms_median, ref.bkg_rms_median, rtol=1e-6)


@pytest.mark.reference
@pytest.mark.parametrize("case", ["flat", "gradient", "negative"])
def test_background_equals_drizzlepac(tmp_path, drizzlepac_image, case):
    rng = np.random.default_rng({"flat": 1, "gradient": 2, "negative": 3}[case])
    data = _field(rng, gradient=0.5 if case == "gradient" else 0.0,
                  sky=-0.2 if case == "negative" else 0.05)
    path, mask = _write_product(tmp_path / "hst_17001_01_wfc3_uvis_f555w_isim01_drc.fits", data)
    params = catalog_parameters("wfc3", "uvis")
    ours = prepare_image(read_catalog_product(path, mask=mask), params, backend="cpu")
    ref = drizzlepac_image(path, mask, params)
    np.testing.assert_array_equal(ours.footprint, ref.footprint_mask)
    _assert_background_equal(ours.background, ref)
    if case == "gradient":
        assert ours.background.kind == "twod_background"


@pytest.mark.reference
def test_forced_background2d_equals_drizzlepac(tmp_path, drizzlepac_image):
    path, mask = _write_product(tmp_path / "hst_17001_01_wfc3_uvis_f555w_isim01_drc.fits",
                                _field(np.random.default_rng(4)))
    params = catalog_parameters("wfc3", "uvis")
    product = read_catalog_product(path, mask=mask)
    image = prepare_image(product, params, backend="cpu")
    assert image.background.kind == "sigma_clipped_background"
    forced = compute_background(image.data, image.footprint, params, product.keywords,
                                force_2d=True, backend="cpu")
    ref = drizzlepac_image(path, mask, params)
    ref.compute_background(params.generation["bkg_box_size"], params.generation["bkg_filter_size"],
                           bkg_skew_threshold=0.0, negative_percent=100.0)
    _assert_background_equal(forced, ref)


@pytest.mark.reference
def test_sbc_zero_background_equals_drizzlepac(tmp_path, drizzlepac_image):
    rng = np.random.default_rng(5)
    data = np.where(rng.uniform(size=SHAPE) < 0.5, 0.0, rng.poisson(1.0, SHAPE) / 1000.0)
    path, mask = _write_product(tmp_path / "hst_17001_01_acs_sbc_f150lp_jsim01_drz.fits", data,
                                detector="SBC", instrument="ACS", texptime=1000.0)
    params = catalog_parameters("acs", "sbc")
    ours = prepare_image(read_catalog_product(path, mask=mask), params, backend="cpu")
    ref = drizzlepac_image(path, mask, params)
    assert ours.background.kind == "zero_background"
    _assert_background_equal(ours.background, ref)
    assert ours.gain == 1.0


@pytest.mark.reference
def test_weight_regions_and_thresholds_equal_drizzlepac(tmp_path):
    from drizzlepac.haputils import catalog_utils

    rng = np.random.default_rng(6)
    mask = np.zeros(SHAPE, dtype=np.int16)
    mask[10:-10, 10:-10] = 1
    mask[10:-10, 60:200] = 3
    mask[100:200, 90:150] = 6
    wht = (mask * 300.0 * rng.uniform(0.97, 1.0, SHAPE)).astype(np.float32)
    inv = ~(mask > 0)
    for scale in (1.5, 2.5):
        ours = make_wht_masks(wht, inv, scale=scale, sensitivity=0.95, size=11, backend="cpu")
        ref = catalog_utils.make_wht_masks(wht, inv, scale=scale, sensitivity=0.95, kernel=(11, 11))
        assert len(ours) == len(ref) > 1
        for a, b in zip(ours, ref):
            np.testing.assert_array_equal(a.mask, b["mask"])
            np.testing.assert_array_equal(a.rel_weight, b["rel_weight"])
            assert a.wht_limit == pytest.approx(float(b["wht_limit"]), rel=1e-6)
    rms = np.full(SHAPE, 0.012, dtype=np.float32) + rng.uniform(0, 1e-3, SHAPE).astype(np.float32)
    state = types.SimpleNamespace(tp_masks=ref)
    expected = catalog_utils.HAPSegmentCatalog.compute_threshold(state, 3.0, rms)
    np.testing.assert_array_equal(region_threshold(3.0, rms, ours, backend="cpu"), expected)


def test_gaussian_kernel_equals_astropy():
    from drizzlepac.haputils.astrometric_utils import build_gaussian_kernel

    for fwhm in (1.9, 3.5):
        np.testing.assert_allclose(gaussian_kernel(fwhm, 11), build_gaussian_kernel(fwhm, 11),
                                   rtol=1e-12, atol=1e-17)


@pytest.mark.reference
def test_aperture_photometry_equals_drizzlepac():
    from drizzlepac.haputils.photometry_tools import iraf_style_photometry
    from photutils.aperture import CircularAnnulus, CircularAperture

    rng = np.random.default_rng(7)
    data = _field(rng).astype(np.float32)
    error = np.full(SHAPE, 0.011, dtype=np.float32)
    xy = np.column_stack([rng.uniform(25, SHAPE[1] - 25, 40), rng.uniform(25, SHAPE[0] - 25, 40)])
    radii, annulus = (1.25, 3.75), (6.25, 12.5)
    ours = measure_apertures(data, xy[:, 0], xy[:, 1], error=error, radii=radii, annulus=annulus,
                             gain=1248.0, photflam=1.8e-19, photplam=5300.0, backend="cpu")
    with np.errstate(invalid="ignore", divide="ignore"):  # the oracle divides 0/0 off-annulus
        ref = iraf_style_photometry([CircularAperture(xy, r=r) for r in radii],
                                    CircularAnnulus(xy, r_in=annulus[0], r_out=annulus[1]),
                                    data=data, photflam=1.8e-19, photplam=5300.0,
                                    error_array=error, bg_method="mode", epadu=1248.0)
    for name in ("FluxAp1", "FluxErrAp1", "MagAp1", "MagErrAp1", "FluxAp2", "FluxErrAp2",
                 "MagAp2", "MagErrAp2", "MSkyAp2", "StdevAp2"):
        # exact-overlap sums of float32 pixels in another order: float64 rounding only
        np.testing.assert_allclose(ours[name], ref[name], rtol=1e-9, atol=1e-12, err_msg=name)
    ci = np.asarray(ref["MagAp1"]) - np.asarray(ref["MagAp2"])
    np.testing.assert_allclose(ours["CI"], ci, rtol=1e-9, atol=1e-12)


def test_aperture_photometry_flat_photflam_gives_fill_magnitudes():
    data = np.ones((50, 50), dtype=np.float32)
    data[24:27, 24:27] += 5.0
    out = measure_apertures(data, [25.0], [25.0], error=data, radii=(2, 4), annulus=(6, 9),
                            gain=1.0, photflam=0.0, photplam=5000.0, backend="cpu")
    assert out["MagAp1"][0] == -9999.0 and out["MagErrAp2"][0] == -9999.0
    assert out["CI"].mask[0]


def test_unknown_sky_statistic_is_refused():
    with pytest.raises(InvalidParameterError, match="salgorithm"):
        measure_apertures(np.ones((9, 9)), [4.0], [4.0], error=np.ones((9, 9)), radii=(1, 2),
                          annulus=(3, 4), gain=1.0, photflam=1e-19, photplam=5000.0,
                          salgorithm="max", backend="cpu")


@pytest.mark.reference
@pytest.mark.parametrize("mode", ["svm", "mvm"])
def test_parameter_sets_equal_drizzlepac_files(mode):
    root = Path(drizzlepac.__file__).parent / "pars" / "hap_pars" / f"{mode}_parameters"
    for inst, det in DETECTORS:
        ours = catalog_parameters(inst, det, mvm=mode == "mvm")
        ref = json.loads((root / inst / det / f"{inst}_{det}_catalog_generation_all.json").read_text())
        for key, value in ref.items():
            assert ours.generation[key] == value, (inst, det, key)
        assert ours.generation["TWEAK_FWHMPSF"] is not None


@pytest.mark.reference
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the oracle
@pytest.mark.filterwarnings("ignore::ResourceWarning")  # leaves its CI table file open
def test_ci_limits_equal_drizzlepac_table():
    from drizzlepac.haputils import ci_table

    params = catalog_parameters("wfc3", "uvis")
    qc = params.quality_control["ci filter"]["segment"]
    for name in ("hst_17001_01_wfc3_uvis_f555w_isim01_drc.fits",
                 "hst_17001_01_wfc3_uvis_f814w_isim01_drc.fits",
                 "hst_17001_01_wfc3_uvis_total_isim01_drc.fits",
                 "hst_17001_01_wfc3_uvis_f999w_isim01_drc.fits"):
        ref = ci_table.get_ci_from_file(name, "svm_parameters/any", logging.WARNING,
                                        ci_lower=qc["ci_lower_limit"], ci_upper=qc["ci_upper_limit"])
        assert ci_limits(params, "segment", name) == (ref["ci_lower_limit"], ref["ci_upper_limit"])


def test_unknown_detector_and_bad_overrides_are_refused():
    with pytest.raises(InvalidInputError, match="STIS"):
        catalog_parameters("STIS", "CCD")
    with pytest.raises(InvalidParameterError, match="unknown step"):
        catalog_parameters("wfc3", "uvis", overrides={"astrodrizzle": {}})
    p = catalog_parameters("wfc3", "uvis", overrides={"catalog generation": {"sourcex": {"segm_nsigma": 4.0}}})
    assert p.sourcex["segm_nsigma"] == 4.0 and p.sourcex["source_box"] == 6


def test_blank_product_is_flagged_blank(tmp_path):
    path, mask = _write_product(tmp_path / "hst_17001_01_wfc3_uvis_f555w_isim01_drc.fits",
                                np.zeros(SHAPE))
    image = prepare_image(read_catalog_product(path, mask=mask), catalog_parameters("wfc3", "uvis"),
                          backend="cpu")
    assert image.blank and image.background is None


def test_missing_product_and_missing_wht_are_named(tmp_path):
    with pytest.raises(InvalidInputError, match="no such product"):
        read_catalog_product(tmp_path / "nothing_drc.fits")
    bad = tmp_path / "hst_17001_01_wfc3_uvis_f555w_isim01_drc.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((4, 4)), name="SCI")]).writeto(bad)
    with pytest.raises(InvalidInputError, match=r"isim01_drc.fits: not a drizzled product: no WHT"):
        read_catalog_product(bad)


def test_prepare_cpu_and_cudasim_agree(tmp_path):
    path, mask = _write_product(tmp_path / "hst_17001_01_wfc3_uvis_f555w_isim01_drc.fits",
                                _field(np.random.default_rng(8), gradient=0.5))
    product = read_catalog_product(path, mask=mask)
    params = catalog_parameters("wfc3", "uvis")
    cpu = prepare_image(product, params, backend="cpu")
    sim = prepare_image(product, params, backend="cudasim")
    assert cpu.background.kind == sim.background.kind
    np.testing.assert_array_equal(cpu.footprint, sim.footprint)
    np.testing.assert_allclose(cpu.background.background, sim.background.background, rtol=1e-6)
    np.testing.assert_allclose(cpu.background.rms, sim.background.rms, rtol=1e-6)
    assert len(cpu.regions) == len(sim.regions)
