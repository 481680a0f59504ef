"""Library PSFs and the PSF-deconvolution pieces of the point catalog (hapgpu.catalogs._psf)."""

import numpy as np
import pytest
from astropy.io import fits

from hapgpu.catalogs import _psf
from hapgpu.catalogs._build_psfs import (
    CENTRE_OFFSET,
    LIBRARY_DETECTOR_KERNEL,
    PSF_DIR,
    STAMP_SIZE,
    library_filters,
    optics_fwhm_arcsec,
    render_library_psf,
)
from hapgpu.errors import InvalidInputError
from hapgpu.simulate._instruments import INSTRUMENTS

from ._point_helpers import product_wcs, write_exposure


def _library_path(key="wfc3-uvis", name="f555w"):
    instr, det = key.split("-")
    return PSF_DIR / instr / det / f"{instr}_{det}_{name}.fits"


def _library_psf(key="wfc3-uvis", name="f555w"):
    """The shipped library PSF."""
    return _psf.load_library_psf(_library_path(key, name))


def _core_psf(half=13, name="f814w"):
    """The central ``2 half + 1`` pixels of a shipped WFC3/UVIS PSF (small test arrays; F814W
    by default: the F555W core is too sharp for DAOFIND's sharpness limit undrizzled)."""
    psf = _library_psf(name=name)
    c = psf.shape[0] // 2
    return np.ascontiguousarray(psf[c - half:c + half + 1, c - half:c + half + 1])


@pytest.mark.parametrize("key", sorted(INSTRUMENTS))
def test_library_has_every_simulator_filter_and_clear(key):
    det = INSTRUMENTS[key]
    names = library_filters(key)
    assert "clear" in names and len(names) == len(det.filters) + 1
    for name in names:
        path = _library_path(key, name)
        assert path.is_file(), path
        with fits.open(path) as hdul:
            data, header = hdul[0].data, hdul[0].header
        assert data.dtype.kind == "f" and data.shape == (STAMP_SIZE[key],) * 2
        assert np.unravel_index(np.argmax(data), data.shape) == (data.shape[0] // 2,) * 2
        assert data.sum() == pytest.approx(1.0, abs=1e-5) and (data >= 0).all()
        filt = det.filter(det.default_filter if name == "clear" else name)
        assert header["FWHM"] == pytest.approx(optics_fwhm_arcsec(filt.pivot), abs=1e-6)
        assert header["PIXSCALE"] == pytest.approx(det.pixel_scale)
        assert header["WAVE1"] < filt.pivot < header["WAVEN"]
        assert header["DETKERN"] == LIBRARY_DETECTOR_KERNEL[key]
        dy, dx = CENTRE_OFFSET.get(key, (0.0, 0.0))
        assert (header["YOFFSET"], header["XOFFSET"]) == pytest.approx((dy, dx), abs=1e-6)
        # the light centroid of the core is where the header says
        c = data.shape[0] // 2
        core = data[c - 3:c + 4, c - 3:c + 4].astype(np.float64)
        yy, xx = np.mgrid[-3:4, -3:4]
        cy, cx = (core * yy).sum() / core.sum(), (core * xx).sum() / core.sum()
        assert (cy, cx) == pytest.approx((dy, dx), abs=0.12)


@pytest.mark.slow
@pytest.mark.parametrize("key, name", [("wfc3-uvis", "f814w"), ("wfc3-ir", "f160w"),
                                       ("acs-wfc", "clear"), ("acs-hrc", "f435w")])
def test_shipped_library_is_what_the_builder_makes(key, name):
    """No stale library: the file equals a fresh render (one filter per detector)."""
    data, header = render_library_psf(key, name)
    np.testing.assert_array_equal(_library_psf(key, name), data)
    assert fits.getheader(_library_path(key, name)) ["PSFMODEL"] == header["PSFMODEL"]


def test_library_is_small():
    total = sum(p.stat().st_size for p in PSF_DIR.rglob("*.fits"))
    assert total < 2.5 * 1024 * 1024


def test_optics_fwhm_is_the_diffraction_limit():
    """1.029 lambda / D for D = 2.4 m: 0.0470 arcsec at 5308 A (WFC3/UVIS F555W's pivot)."""
    assert optics_fwhm_arcsec(5308.0) == pytest.approx(1.029 * 5308e-10 / 2.4 * 206264.806,
                                                       rel=1e-7)
    assert optics_fwhm_arcsec(5308.0) == pytest.approx(0.0470, abs=1e-4)


def test_library_diffraction_spikes_follow_the_detector_orientation():
    """WFC3's detector axes lie 45 degrees from V2/V3, so the spider spikes run along the
    diagonals; ACS/WFC's lie along them, so its spikes run along rows and columns."""
    for key, name, diagonal in [("wfc3-uvis", "f814w", True), ("wfc3-ir", "f160w", True),
                                ("acs-wfc", "f814w", False)]:
        psf = _library_psf(key, name).astype(np.float64)
        c = psf.shape[0] // 2
        yy, xx = np.indices(psf.shape) - c
        ring = (np.hypot(yy, xx) > 10) & (np.hypot(yy, xx) < 40)
        angle = np.degrees(np.arctan2(yy, xx)) % 90.0      # 0: rows/columns, 45: diagonals
        on_diag = psf[ring & (np.abs(angle - 45.0) < 5.0)].mean()
        on_axes = psf[ring & ((angle < 5.0) | (angle > 85.0))].mean()
        ratio = on_diag / on_axes
        assert (ratio > 1.0) == diagonal, (key, ratio)


@pytest.mark.parametrize("photmode, detector, expected", [
    ("WFC3 UVIS1 F555W MJD#57000.0000 CAL", "UVIS", ["wfc3", "uvis", "f555w"]),
    ("WFC3 IR F160W", "IR", ["wfc3", "ir", "f160w"]),
    ("ACS WFC1 F606W CLEAR2L MJD#58000.0", "WFC", ["acs", "wfc", "f606w"]),
    ("ACS WFC1 CLEAR1L F660N MJD#58000.0", "WFC", ["acs", "wfc", "f660n"]),
    ("ACS WFC1 CLEAR1L CLEAR2L", "WFC", ["acs", "wfc", "clear"]),
    ("ACS HRC F850LP POL0V", "HRC", ["acs", "hrc", "f850lp"]),
    ("ACS WFC1 G800L", "WFC", ["acs", "wfc", "clear"]),
    ("ACS SBC PR110L", "SBC", ["acs", "sbc", "clear"]),
    # as coded: one filter per band suffix, so two band filters make two keys
    ("WFC3 UVIS2 F555W F350LP", "UVIS", ["wfc3", "uvis", "f350lp", "f555w"]),
    ("WFC3 UVIS1 F555W F555W", "UVIS", ["wfc3", "uvis", "f555w"]),
])
def test_photmode_psf_keys(photmode, detector, expected):
    assert _psf.photmode_psf_keys(photmode, detector) == expected


def test_library_paths_and_missing_psf(tmp_path):
    keys = [["wfc3", "uvis", "f555w"], ["wfc3", "uvis", "f814w"], ["wfc3", "uvis", "f555w"]]
    paths = _psf.library_psf_paths(keys)
    assert [p.name for p in paths] == ["wfc3_uvis_f555w.fits", "wfc3_uvis_f814w.fits"]
    with pytest.raises(InvalidInputError, match="wfc3_uvis_f999w"):
        _psf.library_psf_paths([["wfc3", "uvis", "f555w"], ["wfc3", "uvis", "f999w"]])
    with pytest.raises(InvalidInputError, match="no library PSF"):
        _psf.library_psf_paths([["wfc3", "uvis", "f555w"]], library=tmp_path)
    path = write_exposure(tmp_path / "x_flc.fits", (40, 40), photmode="WFC3 UVIS2 F814W MJD#1 CAL")
    assert _psf.exposure_psf_keys(path) == ["wfc3", "uvis", "f814w"]
    with pytest.raises(InvalidInputError, match="nothere"):
        _psf.exposure_psf_keys(tmp_path / "nothere_flc.fits")


def test_taper_is_scaled_hamming():
    psf = _library_psf()
    tapered = _psf.taper_library_psf(psf)
    n = psf.shape[0]
    c = n // 2
    assert tapered.sum() < 1e5 and tapered[c, c] == pytest.approx(psf[c, c] * 1e5, rel=1e-6)
    # corners carry sqrt(0.08 * 0.08) of the scaled value
    assert tapered[0, 0] == pytest.approx(psf[0, 0] * 1e5 * 0.08, rel=1e-4)


@pytest.mark.reference
def test_drizzled_psf_matches_drizzle_package(tmp_path):
    """pixfrac 1.5 square-kernel drizzle of the placed PSF equals the drizzle package's."""
    from drizzle.resample import Drizzle as RefDrizzle

    shape = (120, 110)
    holes = [(60, 55), (62, 50)]
    exposure = write_exposure(tmp_path / "i1_flc.fits", shape, dq_holes=holes)
    psf = _core_psf()
    out = _psf.drizzle_library_psf([psf], exposure, product_wcs(shape), shape, backend="cpu")
    y0, x0 = out.origin
    ny, nx = out.data.shape
    base = np.zeros(shape, np.float32)
    h = psf.shape[0] // 2
    base[60 - h:60 + h + 1, 55 - h:55 + h + 1] = _psf.taper_library_psf(psf)
    weight = np.ones(shape, np.float32)
    for y, x in holes:
        weight[y, x] = 0.0
    yy, xx = np.indices(shape, dtype=np.float64)
    pixmap = np.dstack([xx - x0, yy - y0])
    ref = RefDrizzle(kernel="square", fillval=0.0, out_shape=(ny, nx))
    ref.add_image(base, exptime=100.0, pixmap=pixmap, weight_map=weight, pixfrac=1.5,
                  in_units="counts")
    np.testing.assert_allclose(out.data, ref.out_img, rtol=2e-5, atol=1e-6 * out.data.max())
    assert out.data.max() > 0 and (y0, x0) != (0, 0)


@pytest.mark.reference
def test_fft_deconvolve_matches_drizzlepac():
    from drizzlepac.haputils.deconvolve_utils import fft_deconv_img

    rng = np.random.default_rng(5)
    psf = _core_psf()
    big = np.zeros((70, 80), np.float32)
    n = psf.shape[0]
    big[15:15 + n, 30:30 + n] = _psf.taper_library_psf(psf)
    img = np.clip(rng.normal(0, 1, (300, 260)) - 1.0, 0, None)
    for _ in range(20):
        y, x = rng.integers(20, 280), rng.integers(20, 240)
        h = psf.shape[0] // 2
        img[y - h:y + h + 1, x - h:x + h + 1] += psf * rng.uniform(100, 2000)
    ref = fft_deconv_img(img.copy(), big, block_size=(128, 128))
    mine = _psf.fft_deconvolve(img, big, block_size=(128, 128), backend="cpu")
    np.testing.assert_allclose(mine, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())
    # float32 blocks (HAP's regions): the filter is 1 / P here (alpha is 0), which amplifies
    # the float32 rounding of the block transforms (real-input here, complex in drizzlepac)
    # to about 3e-6 of the largest value; the result is also float32, as drizzlepac's
    img32 = img.astype(np.float32)
    ref32 = fft_deconv_img(img32.copy(), big, block_size=(128, 128))
    mine32 = _psf.fft_deconvolve(img32, big, block_size=(128, 128), backend="cpu")
    assert _psf._regularisation(_psf.center_psf(big, (128, 128)), 0.95) == 0
    np.testing.assert_allclose(mine32, ref32, rtol=0, atol=1e-5 * np.abs(ref32).max())
    np.testing.assert_array_equal(mine32 != 0, ref32 != 0)
    # blocks without a positive pixel are skipped: a zero image deconvolves to zeros
    np.testing.assert_array_equal(
        _psf.fft_deconvolve(np.zeros((300, 260), np.float32), big, block_size=(128, 128),
                            backend="cpu"), 0.0)
    # a PSF larger than the block is refused, as drizzlepac's slicing fails
    with pytest.raises(InvalidInputError, match="does not fit"):
        _psf.fft_deconvolve(img, big, block_size=(16, 16), backend="cpu")


@pytest.mark.reference
@pytest.mark.parametrize("default", [1.9, 2.9])
def test_measure_psf_fwhm_matches_find_fwhm(default):
    from drizzlepac.haputils.astrometric_utils import find_fwhm

    big = np.zeros((60, 60), np.float32)
    n = _core_psf().shape[0]
    big[11:11 + n, 12:12 + n] = _psf.taper_library_psf(_core_psf())
    core = big[29 - 11:29 + 11, 30 - 11:30 + 11]
    assert _psf.measure_psf_fwhm(core, default) == pytest.approx(find_fwhm(core, default),
                                                                rel=1e-5)


def test_psf_fwhm_fallback_rule():
    big = np.zeros((60, 60), np.float32)
    n = _core_psf().shape[0]
    big[11:11 + n, 12:12 + n] = _psf.taper_library_psf(_core_psf())
    fwhm = _psf.psf_fwhm(big, 1.9)
    assert 1.55 < fwhm < 1.85  # the F814W core (drizzlepac's TinyTim F814W file: 1.75)
    # a fit above 2 x default (also from default + 1) reverts to the default
    assert _psf.psf_fwhm(big, 0.5) == 0.5
    # nothing to fit: None (drizzlepac then fails over to DAOStarFinder)
    assert _psf.psf_fwhm(np.zeros((40, 40), np.float32), 1.9) is None


def test_center_psf_places_the_maximum_at_the_block_centre():
    psf = np.zeros((30, 40), np.float32)
    psf[10:17, 20:27] = 1.0
    psf[13, 23] = 5.0
    out = _psf.center_psf(psf, (32, 32))
    assert out.shape == (32, 32) and out[16, 16] == 5.0
    # as coded, a square of half-size L = 3 is copied as [c - L, c + L): the last row and
    # column of the PSF's footprint are left out
    np.testing.assert_array_equal(out[13:19, 13:19], psf[10:16, 20:26])
    assert out.sum() == psf[10:16, 20:26].sum()
    with pytest.raises(InvalidInputError, match="empty"):
        _psf.center_psf(np.zeros((5, 5)), (8, 8))
