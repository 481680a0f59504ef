"""SVM footprint masks and keywords (hap-pipeline.md §1.11): drizzlepac's HAPProduct/SkyFootprint as oracle."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from hapgpu.errors import InvalidInputError, InvalidParameterError, WCSError
from hapgpu.simulate import simulate_visit
from hapgpu.svm._footprint import (MASK_KEYWORD_COMMENTS, WEIGHT_KEYWORD_COMMENTS, footprint_mask,
                                   mask_keywords, weight_keywords)
from hapgpu.svm._metawcs import make_mosaic_wcs


def _tan_header(crval, crpix, cdelt_deg, rot_deg=0.0):
    theta = np.deg2rad(rot_deg)
    cd = cdelt_deg * np.array([[-np.cos(theta), np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": crval[0], "CRVAL2": crval[1],
            "CRPIX1": crpix[0], "CRPIX2": crpix[1], "CD1_1": cd[0, 0], "CD1_2": cd[0, 1],
            "CD2_1": cd[1, 0], "CD2_2": cd[1, 1]}


def _write_exposure(path, chips, exptime):
    """Minimal exposure: primary EXPTIME, one SCI per ``(shape, header dict)``."""
    hdus = [fits.PrimaryHDU(header=fits.Header({"EXPTIME": exptime}))]
    for extver, (shape, keys) in enumerate(chips, start=1):
        hdu = fits.ImageHDU(np.ones(shape, np.float32), name="SCI", ver=extver)
        hdu.header.update(keys)
        hdus.append(hdu)
    fits.HDUList(hdus).writeto(path)
    return path


SCALE = 0.04 / 3600.0


def test_chip_inside_frame_is_its_box_less_the_upper_edge(tmp_path):
    # product frame 60x50 at 0.04"; chip 20x12 pixels, same scale and axes, its pixel (0, 0) at
    # (7.3, 9.3) (a fraction off the grid, so truncation is not at the mercy of rounding)
    meta = WCS(_tan_header((150.0, 2.0), (30.5, 25.5), SCALE))
    chip = _tan_header((150.0, 2.0), (30.5 - 7.3, 25.5 - 9.3), SCALE)
    path = _write_exposure(tmp_path / "a_flt.fits", [((12, 20), chip)], 250.0)
    total, scaled = footprint_mask([path], meta, (50, 60))
    assert total.dtype == np.int16 and scaled.dtype == np.float32
    expected = np.zeros((50, 60), np.int16)
    # border pixels land on x 7..26, y 9..20; the reference fills the box [min, max) per axis
    expected[9:20, 7:26] = 1
    np.testing.assert_array_equal(total, expected)
    np.testing.assert_array_equal(scaled, expected * np.float32(250.0))


def test_two_exposures_add_and_off_frame_chip_is_skipped(tmp_path):
    meta = WCS(_tan_header((150.0, 2.0), (30.5, 25.5), SCALE))
    inside = _tan_header((150.0, 2.0), (30.5 - 7.3, 25.5 - 9.3), SCALE)
    far = _tan_header((150.0, 2.0), (30.5 - 500, 25.5), SCALE)
    a = _write_exposure(tmp_path / "a_flt.fits", [((12, 20), inside), ((12, 20), far)], 100.0)
    b = _write_exposure(tmp_path / "b_flt.fits", [((12, 20), inside)], 30.0)
    total, scaled = footprint_mask([a, b], meta, (50, 60))
    assert total.max() == 2 and set(np.unique(total)) == {0, 2}
    assert set(np.unique(scaled)) == {0.0, 130.0}
    only_far = _write_exposure(tmp_path / "c_flt.fits", [((12, 20), far)], 10.0)
    total, scaled = footprint_mask([only_far], meta, (50, 60))
    assert not total.any() and not scaled.any()
    with pytest.raises(WCSError, match="no pixel"):
        mask_keywords(total, scaled)


def test_mask_keywords_analytic():
    total = np.array([[0, 1], [2, 2]], np.int16)
    scaled = np.array([[0, 100], [300, 300]], np.float32)
    kws = mask_keywords(total, scaled)
    assert list(kws) == list(MASK_KEYWORD_COMMENTS)
    assert kws["NPIXFRAC"] == (0.75, "Fraction of pixels with data")
    assert kws["MEANEXPT"][0] == pytest.approx(700.0 / 3.0, rel=1e-6)
    assert kws["MEDEXPT"][0] == 300.0
    assert kws["MEANNEXP"][0] == pytest.approx(5.0 / 3.0, rel=1e-15)
    assert kws["MEDNEXP"][0] == 2.0
    assert kws["MEANNEXP"][1] == "Mean number of exposures per pixel with data"


def test_weight_keywords_with_and_without_mask():
    wht = np.array([[0.0, 1.0], [4.0, 10.0]], np.float32)
    kws = weight_keywords(wht)
    assert list(kws) == list(WEIGHT_KEYWORD_COMMENTS)
    assert kws["MEANWHT"][0] == pytest.approx(5.0) and kws["MEDWHT"][0] == 4.0
    mask = np.array([[1, 0], [0, 2]], np.int16)
    kws = weight_keywords(wht, mask)
    assert kws["MEANWHT"][0] == pytest.approx(5.0) and kws["MEDWHT"][0] == pytest.approx(5.0)
    assert kws["MEDWHT"][1] == "Median weight (typically exposure time) over pixels with data"


def test_errors(tmp_path):
    meta = WCS(_tan_header((150.0, 2.0), (30.5, 25.5), SCALE))
    with pytest.raises(InvalidParameterError, match="shape"):
        footprint_mask([], meta, (0, 5))
    with pytest.raises(InvalidParameterError, match="shape"):
        footprint_mask([], meta, "big")
    with pytest.raises(InvalidInputError, match="nothere_flt.fits"):
        footprint_mask([tmp_path / "nothere_flt.fits"], meta, (5, 5))
    bad = tmp_path / "noexp_flt.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((3, 3)), name="SCI")]).writeto(bad)
    with pytest.raises(InvalidInputError, match="noexp_flt.fits: no EXPTIME"):
        footprint_mask([bad], meta, (5, 5))
    nosci = tmp_path / "nosci_flt.fits"
    fits.HDUList([fits.PrimaryHDU(header=fits.Header({"EXPTIME": 1.0}))]).writeto(nosci)
    with pytest.raises(InvalidInputError, match="nosci_flt.fits: no SCI extension"):
        footprint_mask([nosci], meta, (5, 5))
    with pytest.raises(InvalidInputError, match="one shape"):
        mask_keywords(np.ones((2, 2)), np.ones((3, 2)))
    with pytest.raises(InvalidInputError, match="differs"):
        weight_keywords(np.ones((2, 2)), np.ones((3, 2)))
    with pytest.raises(InvalidInputError, match="no pixel"):
        weight_keywords(np.zeros((2, 2)))


# ---------------------------------------------------------------------------------------------
# drizzlepac as the oracle

@pytest.fixture(scope="module")
def svm_visit(tmp_path_factory):
    """A 3-exposure WFC3/UVIS visit (two chips each, rolled and dithered), renamed by drizzlepac's
    poller interpretation into HAP exposure names; returns (folder, total product object)."""
    from drizzlepac.haputils import poller_utils

    folder = tmp_path_factory.mktemp("svm")
    result = simulate_visit(folder / "raw", "wfc3-uvis", 3, seed=5, shape=(64, 48), roll_deg=8.0,
                            dither_pixels=12.0, noise=False, cosmic_rays=False, defects=False,
                            star_density=0, galaxy_density=0)
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mp.chdir(folder)
        _, totals = poller_utils.interpret_obset_input(str(result.poller), logging.WARNING)
    return folder, totals[0]


@pytest.mark.slow
@pytest.mark.reference
@pytest.mark.parametrize("frame_from", ["all", "first"])
def test_equals_drizzlepac(svm_visit, monkeypatch, frame_from):
    from drizzlepac import wcs_functions
    from drizzlepac.haputils import cell_utils

    folder, total = svm_visit
    monkeypatch.chdir(folder)
    files = [e.full_filename for e in total.edp_list]
    # "first": a frame around the first exposure only, so the others are clipped at its edges
    frame_files = files if frame_from == "all" else files[:1]
    frame = make_mosaic_wcs(frame_files)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_wcs = wcs_functions.make_mosaic_wcs(frame_files, rot=0.0)
        total.meta_wcs = ref_wcs
        total.generate_footprint_mask()
        sky = cell_utils.SkyFootprint(ref_wcs)
        sky.build(files, scale=True)
    total_mask, scaled_mask = footprint_mask(files, frame.wcs, frame.shape)
    assert total.valid_product
    np.testing.assert_array_equal(total_mask, total.mask)
    np.testing.assert_array_equal(scaled_mask, sky.scaled_mask)
    assert (total_mask == 0).any()
    if frame_from == "all":
        assert total_mask.max() >= 2  # exposures overlap
    else:  # the other exposures land partly on the frame: clipped, not skipped
        first_only = footprint_mask(files[:1], frame.wcs, frame.shape)[0]
        assert np.count_nonzero(total_mask) > np.count_nonzero(first_only)
    kws = mask_keywords(total_mask, scaled_mask)
    assert {k: v[0] for k, v in kws.items()} == {k: v[0] for k, v in total.mask_kws.items()}
    assert {k: v[1] for k, v in kws.items()} == {k: v[1] for k, v in total.mask_kws.items()}
    for k, (value, _) in kws.items():
        assert type(value) is type(total.mask_kws[k][0]), k
