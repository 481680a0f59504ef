"""Bad visits handled the way users expect: non-finite pixels, unusable exposures, mixed
detectors, far-apart targets, bad paths and names, intermediate headers, no half-written files."""

from __future__ import annotations

import gzip
import logging
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from hapgpu.astrodrizzle import astrodrizzle, resolve_parameters
from hapgpu.astrodrizzle._exposure import read_exposure
from hapgpu.astrodrizzle._sky import SkySettings, compute_sky, sky_masks, static_masks
from hapgpu.backend import resolve_backend
from hapgpu.errors import (
    IncompatibleInputsError,
    InvalidInputError,
    InvalidParameterError,
    NoUsableInputError,
    OutputTooLargeError,
    OutputWriteError,
    UnusableInputError,
    WCSError,
)
from hapgpu.simulate import simulate_visit

from .conftest import copy_visit

QUICK = dict(backend="cpu", pars="wfc3_uvis_n2", skymethod="localmin")
#: Substrings of every file name the chain writes (products, intermediates, staged files).
_OUTPUT_MARKS = ("_drz", "_drc", "_single_", "_med", "_blt", "_crmask", "_crclean", "staticMask", ".part")


def _outputs(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if any(m in p.name for m in _OUTPUT_MARKS))


def _assert_nothing_written(directory: Path, inputs) -> None:
    """Only the inputs (and what the test put there) remain: no product, no temporary file."""
    assert _outputs(directory) == []
    assert all(Path(p).exists() for p in inputs)


def _read(path, ext):
    with fits.open(path) as hdul:
        return hdul[ext].data.copy(), hdul[ext].header.copy()


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def ir_pair(tmp_path_factory) -> Path:
    """Two overlapping 32x32 WFC3/IR exposures."""
    out = tmp_path_factory.mktemp("ir_pair")
    simulate_visit(out, "wfc3-ir", 2, seed=3, shape=32, cosmic_rays=False, target=(150.0, 2.0))
    return out


@pytest.fixture(scope="module")
def ir_far(tmp_path_factory) -> Path:
    """One 32x32 WFC3/IR exposure of another target, 40 degrees away."""
    out = tmp_path_factory.mktemp("ir_far")
    simulate_visit(out, "wfc3-ir", 1, seed=4, shape=32, cosmic_rays=False, target=(190.0, -10.0), visit="02")
    return out


@pytest.fixture(scope="module")
def hrc_one(tmp_path_factory) -> Path:
    """One 32x32 ACS/HRC exposure."""
    out = tmp_path_factory.mktemp("hrc_one")
    simulate_visit(out, "acs-hrc", 1, seed=6, shape=32, cosmic_rays=False)
    return out


def _files(folder: Path, dest: Path) -> list[Path]:
    return copy_visit(folder, dest)


# --------------------------------------------------------------------------- 1. non-finite pixels
def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    out = mask.copy()
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            out |= np.roll(np.roll(mask, dy, axis=0), dx, axis=1)
    return out


@pytest.mark.slow
def test_non_finite_block_is_a_bad_pixel_block(uvis_small, tmp_path, caplog):
    clean = copy_visit(uvis_small, tmp_path / "clean")
    holed = copy_visit(uvis_small, tmp_path / "holed")
    with fits.open(holed[1], mode="update") as hdul:
        hdul["SCI", 1].data[40:50, 60:70] = np.nan  # DQ stays 0
        hdul["SCI", 2].data[7, 3] = np.inf
        hdul["SCI", 2].data[60, 100] = -np.inf
    # skysub off: the sky statistic itself moves a little when pixels leave it (checked below)
    kw = dict(QUICK, update_inputs_dq=True, save_intermediates=True, skysub=False)
    ref = astrodrizzle(clean, tmp_path / "clean" / "out", **kw)
    with caplog.at_level(logging.WARNING, logger="hapgpu"):
        res = astrodrizzle(holed, tmp_path / "holed" / "out", **kw)

    # logged once for that file, with the count
    notes = [r.getMessage() for r in caplog.records if "non-finite" in r.getMessage()]
    assert len(notes) == 1 and holed[1].name in notes[0] and "102 non-finite" in notes[0]
    # no NaN in covered pixels, nor in any intermediate
    sci, _ = _read(res.product, "SCI")
    wht, _ = _read(res.product, "WHT")
    assert np.isfinite(sci[wht > 0]).all()
    for name in (f"{holed[1].stem.split('_')[0]}_single_sci.fits", "out_med.fits"):
        assert np.isfinite(_read(tmp_path / "holed" / name, 0)[0]).all(), name
    # the bad pixels are bad pixels, not cosmic rays: no CR flag on them or next to them
    dq = _read(holed[1], ("DQ", 1))[0]
    assert not (dq[38:52, 58:72] & 4096).any()
    # every stage ignores only those pixels: the product is unchanged away from them
    ref_sci, _ = _read(ref.product, "SCI")
    ref_wht, _ = _read(ref.product, "WHT")
    lost = ref_wht != wht
    assert 0 < lost.sum() < 400 and (wht[lost] < ref_wht[lost]).all()
    away = ~_dilate(lost, 3)
    np.testing.assert_array_equal(wht[away], ref_wht[away])
    np.testing.assert_array_equal(sci[away], ref_sci[away])
    # the sky statistics skip the bad pixels: 102 of 24576 pixels fewer move the sky by far less
    # than its noise, where one NaN would make it NaN
    params = resolve_parameters(QUICK["pars"], skymethod="localmin")
    skies = []
    for files in (clean, holed):
        exposures = [read_exposure(p, resolve_backend("cpu"), params) for p in files]
        statics = static_masks(exposures, params.static_sig, np)
        masks = sky_masks(exposures, params.sky_bits, statics, params.use_static, np)
        skies.append(np.array(compute_sky(exposures, masks, SkySettings.from_parameters(params), np)))
    assert np.isfinite(skies[1]).all()
    np.testing.assert_allclose(skies[1], skies[0], rtol=1e-4)


def test_non_finite_pixels_with_err_weighting_and_crclean(small_inputs):
    with fits.open(small_inputs[0], mode="update") as hdul:
        hdul["SCI", 2].data[:20, :] = np.nan
    res = astrodrizzle(small_inputs, small_inputs[0].parent / "err", final_wht_type="ERR", driz_cr_corr=True,
                       **QUICK)
    sci, _ = _read(res.product, "SCI")
    wht, _ = _read(res.product, "WHT")
    assert np.isfinite(sci[wht > 0]).all() and (wht > 0).mean() > 0.3
    cleaned = _read(small_inputs[0].parent / f"{small_inputs[0].name.split('_')[0]}_crclean.fits", ("SCI", 2))[0]
    assert np.isfinite(cleaned).all()


# --------------------------------------------------------------------------- 2. unusable exposures
@pytest.mark.parametrize("value", [0.0, -10.0, "INDEF", None])
def test_exposure_without_positive_exptime_is_dropped(small_inputs, caplog, value):
    bad = small_inputs[1]
    if value is None:
        with fits.open(bad, mode="update") as hdul:
            del hdul[0].header["EXPTIME"]
    else:
        fits.setval(bad, "EXPTIME", value=value)
    with caplog.at_level(logging.WARNING, logger="hapgpu"):
        res = astrodrizzle(small_inputs, small_inputs[0].parent / "two", **QUICK)
    assert any(bad.name in r.getMessage() and "dropped" in r.getMessage() and "EXPTIME" in r.getMessage()
               for r in caplog.records)
    header = fits.getheader(res.product)
    assert header["NDRIZIM"] == 4
    assert all(bad.name not in str(header[f"D00{i}DATA"]) for i in range(1, 5))
    kept = [p for p in small_inputs if p != bad]
    assert header["EXPTIME"] == pytest.approx(sum(fits.getval(p, "EXPTIME") for p in kept))
    assert bad.name not in res.sky and (header["D001DATA"].startswith(kept[0].name))


def test_every_exposure_unusable_names_them_all(small_inputs):
    for path in small_inputs:
        fits.setval(path, "EXPTIME", value=0.0)
    with pytest.raises(NoUsableInputError) as info:
        astrodrizzle(small_inputs, small_inputs[0].parent / "none", **QUICK)
    assert all(p.name in str(info.value) for p in small_inputs)
    _assert_nothing_written(small_inputs[0].parent, small_inputs)


def test_nothing_left_after_dropping_names_each_file_and_reason(small_inputs):
    no_sci, all_bad, _ = small_inputs
    with fits.open(no_sci) as hdul:  # a valid FITS file without SCI extensions
        fits.HDUList([hdul[0].copy()]).writeto(no_sci, overwrite=True)
    params = resolve_parameters(QUICK["pars"])
    flag = 2  # a DQ bit that final_bits does not accept
    assert not (params.final_bits & flag)
    with fits.open(all_bad, mode="update") as hdul:
        for k in (1, 2):
            hdul["DQ", k].data[:] = flag
    with pytest.raises(NoUsableInputError) as info:
        astrodrizzle([no_sci, all_bad], no_sci.parent / "x", **QUICK)
    text = str(info.value)
    assert f"{no_sci}: no SCI extension" in text and f"{all_bad}: every pixel is bad" in text
    _assert_nothing_written(no_sci.parent, small_inputs)


def test_dropped_inputs_are_named_and_the_rest_combined(small_inputs, caplog):
    no_sci, all_bad, good = small_inputs
    with fits.open(no_sci) as hdul:
        fits.HDUList([hdul[0].copy()]).writeto(no_sci, overwrite=True)
    with fits.open(all_bad, mode="update") as hdul:
        for k in (1, 2):
            hdul["SCI", k].data[:] = np.nan
    with caplog.at_level(logging.WARNING, logger="hapgpu"):
        res = astrodrizzle(small_inputs, good.parent / "one", **QUICK)
    text = caplog.text
    assert f"{no_sci.name}: no SCI extension" in text and f"{all_bad.name}: every pixel is bad" in text
    assert fits.getval(res.product, "NDRIZIM") == 2 and fits.getval(res.product, "D001DATA").startswith(good.name)
    assert "median skipped" in text  # one exposure left: documented skip


def test_all_pixels_flagged_everywhere_is_an_error_naming_the_files(small_inputs):
    flag = 2
    for path in small_inputs:
        with fits.open(path, mode="update") as hdul:
            for k in (1, 2):
                hdul["DQ", k].data[:] = flag
    with pytest.raises(NoUsableInputError, match="every pixel is bad") as info:
        astrodrizzle(small_inputs, small_inputs[0].parent / "bad", **QUICK)
    assert all(p.name in str(info.value) for p in small_inputs)
    _assert_nothing_written(small_inputs[0].parent, small_inputs)


# --------------------------------------------------------------------------- 3. mixed detectors
def test_mixed_detectors_are_refused(small_inputs, ir_pair, hrc_one, tmp_path):
    ir = _files(ir_pair, tmp_path / "ir")
    with pytest.raises(IncompatibleInputsError) as info:
        astrodrizzle([ir[0], small_inputs[0]], tmp_path / "mix", backend="cpu")
    text = str(info.value)
    assert f"{ir[0]} (INSTRUME/DETECTOR WFC3/IR)" in text and f"{small_inputs[0]} (INSTRUME/DETECTOR WFC3/UVIS)" in text
    hrc = _files(hrc_one, tmp_path / "hrc")
    with pytest.raises(IncompatibleInputsError, match="ACS/HRC.*WFC3/IR"):
        astrodrizzle([ir[0], ir[1], hrc[0]], tmp_path / "mix", backend="cpu")
    _assert_nothing_written(tmp_path, ir + hrc)
    _assert_nothing_written(small_inputs[0].parent, small_inputs)


# --------------------------------------------------------------------------- 4. frame size
def test_far_apart_targets_are_refused_before_allocating(ir_pair, ir_far, tmp_path):
    near = _files(ir_pair, tmp_path / "a")
    far = _files(ir_far, tmp_path / "b")
    with pytest.raises(OutputTooLargeError) as info:
        astrodrizzle(near + far, tmp_path / "mosaic", backend="cpu", pars="wfc3_ir_n2")
    text = str(info.value)
    assert f"{far[0]} does not overlap the other exposures" in text
    assert "max_output_pixels" in text and "TiB" in text
    assert "2 separate areas" in text and str(near[0]) in text
    _assert_nothing_written(tmp_path, near + far)


def test_max_output_pixels_is_a_parameter(ir_pair, tmp_path):
    files = _files(ir_pair, tmp_path / "a")
    with pytest.raises(OutputTooLargeError, match=r"output frame would be \d+ x \d+ pixels.*max_output_pixels=100\b"):
        astrodrizzle(files, tmp_path / "small", backend="cpu", max_output_pixels=100)
    with pytest.raises(OutputTooLargeError, match="final_outnx/final_outny"):
        astrodrizzle(files, tmp_path / "huge", backend="cpu", final_wcs=True, final_outnx=200000,
                     final_outny=200000)
    _assert_nothing_written(tmp_path, files)
    assert resolve_parameters().max_output_pixels == 4 * (18000 + 512) ** 2
    with pytest.raises(InvalidParameterError, match="max_output_pixels"):
        resolve_parameters(max_output_pixels=0)


# --------------------------------------------------------------------------- 5. paths and names
def test_directory_input_says_directory(tmp_path):
    folder = tmp_path / "visit"
    folder.mkdir()
    with pytest.raises(InvalidInputError, match=r"visit: is a directory, not a FITS file"):
        astrodrizzle([folder], tmp_path / "x", backend="cpu")


@pytest.mark.parametrize("content, compress", [(b"hello, I am a text file\n", False), (b"", False),
                                               (b"plain text inside gzip\n", True)])
def test_non_fits_file_says_not_a_fits_file(tmp_path, content, compress):
    path = tmp_path / "notes_flt.fits"
    path.write_bytes(gzip.compress(content) if compress else content)
    with pytest.raises(InvalidInputError) as info:
        astrodrizzle([path], tmp_path / "x", backend="cpu")
    text = str(info.value)
    assert text.startswith(f"{path}: ") and "not a FITS file" in text
    assert "ignore_missing_simple" not in text
    _assert_nothing_written(tmp_path, [path])


def test_only_file_without_sci_is_named(small_inputs):
    with fits.open(small_inputs[0]) as hdul:
        fits.HDUList([hdul[0].copy()]).writeto(small_inputs[0], overwrite=True)
    with pytest.raises(NoUsableInputError, match=f"{small_inputs[0]}: no SCI extension"):
        astrodrizzle(small_inputs[:1], small_inputs[0].parent / "x", **QUICK)


def test_bad_wcs_header_is_named(small_inputs):
    with fits.open(small_inputs[2], mode="update") as hdul:
        hdul["SCI", 2].header["CD1_1"] = 0.0
        hdul["SCI", 2].header["CD1_2"] = 0.0
    with pytest.raises(WCSError, match=rf"{small_inputs[2]}\[SCI,2\]"):
        astrodrizzle(small_inputs, small_inputs[0].parent / "x", **QUICK)
    _assert_nothing_written(small_inputs[0].parent, small_inputs)


@pytest.mark.parametrize("card, garbage, expected", [
    (b"EXPTIME =", b"  'unterminated     ", "bad FITS header: Unparsable card (EXPTIME)"),
    (b"NAXIS1  =", b"             abc.5e ", "corrupt FITS header (extension 1: Unparsable card (NAXIS1))"),
])
def test_damaged_header_is_named(small_inputs, card, garbage, expected):
    data = bytearray(small_inputs[1].read_bytes())
    at = data.find(card, data.find(b"XTENSION") if card.startswith(b"NAXIS") else 0)
    data[at + 10:at + 10 + len(garbage)] = garbage
    small_inputs[1].write_bytes(bytes(data))
    with pytest.raises(InvalidInputError) as info:
        astrodrizzle(small_inputs, small_inputs[0].parent / "x", **QUICK)
    assert str(info.value) == f"{small_inputs[1]}: {expected}"
    assert not isinstance(info.value, UnusableInputError)  # an error to fix, not an input to drop
    _assert_nothing_written(small_inputs[0].parent, small_inputs)


def test_unusable_input_error_is_an_invalid_input_error():
    assert issubclass(UnusableInputError, InvalidInputError) and issubclass(NoUsableInputError, InvalidInputError)
    assert issubclass(OutputTooLargeError, WCSError) and issubclass(IncompatibleInputsError, InvalidInputError)


@pytest.mark.parametrize("keyword, closest", [("final_pixfrak", "final_pixfrac"), ("skymetod", "skymethod"),
                                              ("band_row", "band_rows"), ("combine_typ", "combine_type")])
def test_unknown_keyword_lists_closest_names(keyword, closest, tmp_path):
    with pytest.raises(InvalidParameterError, match=rf"unknown AstroDrizzle parameter '{keyword}'.*{closest}"):
        astrodrizzle([tmp_path / "a_flt.fits"], tmp_path / "x", backend="cpu", **{keyword: 1})


def test_unknown_named_set_lists_closest(tmp_path):
    with pytest.raises(InvalidParameterError, match="closest named set: wfc3_uvis_n2"):
        astrodrizzle([tmp_path / "a_flt.fits"], tmp_path / "x", backend="cpu", pars="wfc3_uvis_n22")


# --------------------------------------------------------------------------- 7. intermediate headers
def test_intermediates_carry_drizzlepac_keywords(small_inputs):
    out = small_inputs[0].parent / "inter"
    res = astrodrizzle(small_inputs, out, save_intermediates=True, **QUICK)
    first = small_inputs[0]
    root = first.name.split("_")[0]
    exptime = fits.getval(first, "EXPTIME")
    params = res.parameters

    sci, h = _read(out.parent / f"{root}_single_sci.fits", 0)
    assert h["EXPTIME"] == h["TEXPTIME"] == exptime and h["BUNIT"] == "ELECTRONS/S"
    assert h["EXPSTART"] == fits.getval(first, "EXPSTART") and h["EXPEND"] == fits.getval(first, "EXPEND")
    assert h["NCOMBINE"] == 1 and h["NDRIZIM"] == 2 and h["ROOTNAME"] == root and h["FILETYPE"] == "SCI"
    assert h["D001DATA"] == f"{first.name}[sci,1]" and h["D002DATA"] == f"{first.name}[sci,2]"
    assert h["D001KERN"] == params.driz_sep_kernel and h["D001PIXF"] == params.driz_sep_pixfrac
    assert h["D001OUDA"] == f"{root}_single_sci.fits" and h["D001OUWE"] == f"{root}_single_wht.fits"
    assert h["D001OUUN"] == "cps" and h["D001DEXP"] == exptime
    assert h["INSTRUME"] == "WFC3" and h["FILENAME"] == f"{root}_single_sci.fits"
    single_wcs = WCS(h)
    assert single_wcs.pixel_shape == sci.shape[::-1]

    _, hw = _read(out.parent / f"{root}_single_wht.fits", 0)
    assert hw["EXPTIME"] == exptime and hw["FILETYPE"] == "WHT" and "BUNIT" not in hw and hw["NDRIZIM"] == 2

    _, hm = _read(out.parent / "inter_med.fits", 0)
    total = sum(fits.getval(p, "EXPTIME") for p in small_inputs)
    assert hm["NCOMBINE"] == 3 and hm["EXPTIME"] == pytest.approx(total) and hm["BUNIT"] == "ELECTRONS/S"
    median_wcs = WCS(hm)
    assert hm["COMBTYPE"] == params.combine_type and median_wcs.pixel_shape == single_wcs.pixel_shape
    np.testing.assert_array_equal(median_wcs.wcs.cd, single_wcs.wcs.cd)
    np.testing.assert_array_equal(median_wcs.wcs.crval, single_wcs.wcs.crval)

    blt, hb = _read(out.parent / f"{root}_sci2_blt.fits", 0)
    with fits.open(first) as hdul:
        chip_header = hdul["SCI", 2].header
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            chip_wcs = WCS(chip_header, hdul)
    assert hb["EXPTIME"] == exptime and hb["BUNIT"] == chip_header["BUNIT"] and hb["CCDCHIP"] == 2
    assert hb["MDRIZSKY"] == pytest.approx(res.sky[first.name][1])
    # the blotted image's WCS is the chip's (SIP kept): the same sky position for a corner pixel
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        blt_wcs = WCS(hb)
    np.testing.assert_allclose(blt_wcs.all_pix2world([[3.0, 90.0]], 0), chip_wcs.all_pix2world([[3.0, 90.0]], 0),
                               atol=2e-6)  # lookup-table distortion is not carried: < 0.01 arcsec
    assert blt.shape == (chip_header["NAXIS2"], chip_header["NAXIS1"])

    mask, hc = _read(out.parent / f"{root}_sci1_crmask.fits", 0)
    assert mask.dtype == np.uint8 and hc["CCDCHIP"] == 1 and hc["EXPTIME"] == exptime and hc["ROOTNAME"] == root
    assert int((mask == 0).sum()) == res.cosmic_rays[first.name][0]


# --------------------------------------------------------------------------- 8. no half-written files
def test_failure_after_the_product_is_staged_leaves_nothing(small_inputs, monkeypatch):
    real_writeto = fits.HDUList.writeto
    calls = []

    def third_write_fails(self, path, *args, **kwargs):
        calls.append(Path(path).name)
        if len(calls) == 3:  # the product and one intermediate are written, then the disk fills up
            Path(path).write_bytes(b"SIMPLE  =                    T" * 10)
            raise OSError("disk full")
        return real_writeto(self, path, *args, **kwargs)

    monkeypatch.setattr(fits.HDUList, "writeto", third_write_fails)
    with pytest.raises(OutputWriteError, match="disk full"):
        astrodrizzle(small_inputs, small_inputs[0].parent / "bad", save_intermediates=True, update_inputs_dq=False,
                     **QUICK)
    assert calls[0].startswith(".bad_drc.fits.") and calls[0].endswith(".part")
    _assert_nothing_written(small_inputs[0].parent, small_inputs)


def test_unwritable_output_is_a_typed_error(ir_pair, tmp_path):
    files = _files(ir_pair, tmp_path / "a")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the output folder should be\n")
    with pytest.raises(OutputWriteError, match=f"{blocker / 'sub'}: cannot create the output folder"):
        astrodrizzle(files, blocker / "sub" / "out", backend="cpu", pars="wfc3_ir_n2", update_inputs_dq=False)
    _assert_nothing_written(tmp_path / "a", files)


def test_refused_run_leaves_an_existing_product_alone(ir_pair, ir_far, tmp_path):
    folder = tmp_path / "v"
    files = _files(ir_pair, folder)
    first = astrodrizzle(files, folder / "out", backend="cpu", pars="wfc3_ir_n2")
    before = first.product.read_bytes()
    far = shutil.copy(next(ir_far.glob("*_flt.fits")), folder / "far_flt.fits")
    with pytest.raises(OutputTooLargeError):
        astrodrizzle(files + [Path(far)], folder / "out", backend="cpu", pars="wfc3_ir_n2")
    assert first.product.read_bytes() == before
    assert not list(folder.glob(".*.part"))
