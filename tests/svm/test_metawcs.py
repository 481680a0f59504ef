"""SVM metawcs (hap-pipeline.md §1.10): drizzlepac's make_mosaic_wcs as the oracle, invariants, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.io import fits

from hapgpu.errors import InvalidInputError, InvalidParameterError
from hapgpu.simulate import simulate_visit
from hapgpu.svm._metawcs import make_mosaic_wcs, mosaic_drizzle_pars, read_chip_wcs
from ..conftest import data_file

INSTRUMENTS = ("wfc3-uvis", "wfc3-ir", "acs-wfc", "acs-hrc")


@pytest.fixture(scope="module")
def visits(tmp_path_factory):
    """Two rolled, dithered exposures per detector (headers from real files, tiny arrays)."""
    out = {}
    for seed, instrument in enumerate(INSTRUMENTS, start=11):
        result = simulate_visit(tmp_path_factory.mktemp(instrument), instrument, 2, seed=seed, shape=(48, 48),
                                roll_deg=25.0, dither_pixels=30.0, noise=False, cosmic_rays=False,
                                defects=False, star_density=0, galaxy_density=0)
        out[instrument] = [str(e.path) for e in result.exposures]
    return out


def _reference(files, rot, scale):
    from drizzlepac import wcs_functions

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return wcs_functions.make_mosaic_wcs(list(files), rot=rot, scale=scale)


@pytest.mark.slow
@pytest.mark.reference
@pytest.mark.parametrize("instrument", INSTRUMENTS)
@pytest.mark.parametrize(("rot", "scale"), [(0.0, None), (0.0, 0.025), (None, None), (33.0, 0.07)])
def test_equals_drizzlepac(visits, instrument, rot, scale):
    files = visits[instrument]
    frame = make_mosaic_wcs(files, rot=rot, scale=scale)
    ref = _reference(files, rot, scale)
    assert frame.shape == tuple(ref.array_shape)
    eps = np.finfo(float).eps
    np.testing.assert_allclose(frame.wcs.wcs.crpix, ref.wcs.crpix, rtol=4 * eps, atol=0)
    np.testing.assert_allclose(frame.wcs.wcs.crval, ref.wcs.crval, rtol=4 * eps, atol=0)
    np.testing.assert_allclose(frame.wcs.wcs.cd, ref.wcs.cd, rtol=4 * eps, atol=1e-30)
    assert frame.wcs.orientat == pytest.approx(ref.orientat, abs=1e-12)
    assert frame.pscale == pytest.approx(ref.pscale, rel=4 * eps)


@pytest.mark.slow
def test_north_up_frame_covers_every_chip(visits):
    files = visits["wfc3-uvis"] + visits["wfc3-uvis"][:1]
    frame = make_mosaic_wcs(files)
    cd = frame.wcs.wcs.cd
    assert frame.wcs.orientat == 0.0
    assert cd[0, 1] == pytest.approx(0.0, abs=1e-18) and cd[1, 0] == pytest.approx(0.0, abs=1e-18)
    assert cd[0, 0] < 0 < cd[1, 1]
    # the plate scale is the reference chip's IDCSCALE
    assert frame.pscale == pytest.approx(fits.getval(files[0], "IDCSCALE", ext=("SCI", 1)), rel=1e-12)
    ny, nx = frame.shape
    for path in files:
        for chip in read_chip_wcs(path):
            ra, dec = chip.calc_footprint().T
            x, y = frame.wcs.all_world2pix(ra, dec, 0)
            assert np.all((x > -0.5 - 1e-6) & (x < nx - 0.5 + 1e-6))
            assert np.all((y > -0.5 - 1e-6) & (y < ny - 0.5 + 1e-6))
    # a duplicated exposure adds no sky: the frame equals the one without it
    assert make_mosaic_wcs(visits["wfc3-uvis"]).shape == frame.shape


@pytest.mark.slow
def test_drizzle_pars_round_trip(visits):
    frame = make_mosaic_wcs(visits["acs-wfc"], scale=0.05)
    pars = mosaic_drizzle_pars(frame)
    assert (pars["final_outny"], pars["final_outnx"]) == frame.shape
    assert pars["final_scale"] == pytest.approx(0.05, rel=1e-15)
    assert pars["final_rot"] == 0.0
    assert (pars["final_ra"], pars["final_dec"]) == tuple(frame.wcs.wcs.crval)
    assert (pars["final_crpix1"], pars["final_crpix2"]) == tuple(frame.wcs.wcs.crpix)
    assert all(type(v) in (int, float) for v in pars.values())


def test_read_chip_wcs_file_order():
    chips = read_chip_wcs(data_file("sample_svm_flc.fits.gz"))
    assert [c.extname for c in chips] == [("SCI", 1), ("SCI", 2)]
    assert all(c.idcscale == pytest.approx(0.03962, abs=1e-5) for c in chips)


def test_errors(tmp_path):
    with pytest.raises(InvalidParameterError, match="at least one exposure"):
        make_mosaic_wcs([])
    with pytest.raises(InvalidParameterError, match="scale"):
        make_mosaic_wcs(["x_flc.fits"], scale=0.0)
    with pytest.raises(InvalidParameterError, match="rot"):
        make_mosaic_wcs(["x_flc.fits"], rot=float("nan"))
    missing = tmp_path / "missing_flc.fits"
    with pytest.raises(InvalidInputError, match="missing_flc.fits"):
        make_mosaic_wcs([missing])
    no_sci = tmp_path / "nosci_flc.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((4, 4)), name="ERR")]).writeto(no_sci)
    with pytest.raises(InvalidInputError, match="nosci_flc.fits: no SCI extension"):
        make_mosaic_wcs([no_sci])
    text = tmp_path / "notfits_flc.fits"
    text.write_text("not a FITS file\n" * 200)
    with pytest.raises(InvalidInputError, match="notfits_flc.fits"):
        make_mosaic_wcs([text])
