"""Templates and pointing geometry: every WCS in a simulated file moves rigidly and consistently."""

from __future__ import annotations

import warnings
from importlib import resources

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from hapgpu.errors import InvalidParameterError
from hapgpu.simulate import get_detector, load_template, simulate_visit
from hapgpu.simulate._detector import ChipWindow
from hapgpu.simulate._hdrlet import open_headerlet
from hapgpu.simulate._headers import ExposureSpec, VisitFacts, build_exposure_headers
from hapgpu.simulate._pointing import (
    SkyRotation,
    offset_radec,
    orientat_from_cd,
    pointing_rotation,
    unit_vector,
)

from ._simulate_helpers import chip_wcs, n_chips

INSTRUMENTS = ["wfc3-uvis", "wfc3-ir", "acs-hrc", "acs-wfc"]
PIXELS = (np.array([1.0, 37.5, 90.2, 150.0]), np.array([1.0, 120.7, 44.4, 150.0]))


def _quiet_wcs(header, fobj=None, key=" "):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return WCS(header, fobj, key=key)


# ----------------------------------------------------------------------------- templates


def test_shipped_templates_are_small():
    folder = resources.files("hapgpu") / "data" / "templates"
    sizes = [entry.stat().st_size if hasattr(entry, "stat") else len(entry.read_bytes())
             for entry in folder.iterdir()]
    assert len(sizes) == 4 and sum(sizes) < 3_000_000 and max(sizes) < 700_000


@pytest.mark.parametrize("instrument, n_chips_expected, n_tables, n_headerlets", [
    ("wfc3-uvis", 2, 8, 8), ("wfc3-ir", 1, 0, 9), ("acs-hrc", 1, 0, 0), ("acs-wfc", 2, 8, 5),
])
def test_templates_hold_real_headers(instrument, n_chips_expected, n_tables, n_headerlets):
    template = load_template(instrument)
    assert template.n_chips == n_chips_expected
    assert len(template.lookup_tables) == n_tables
    assert len(template.headerlets) == n_headerlets
    assert template.wcscorr is not None
    for chip in template.chips:
        assert {"SCI", "ERR", "DQ"} <= set(chip.headers)
        assert chip.sci["A_ORDER"] >= (5 if instrument == "acs-wfc" else 3)
        assert chip.sci["CTYPE1"] == "RA---TAN-SIP"
        assert "NAXIS1" not in chip.sci
    for table in template.lookup_tables:
        # Full-size NPOL/D2IM tables (64 x 32 nodes, 64-pixel steps), not 10x10 placeholders.
        assert table.data.shape == (32, 64) and table.header["CDELT1"] == 64.0
        assert np.ptp(table.data) > 0.01


def test_unknown_template_is_rejected():
    with pytest.raises(InvalidParameterError, match="instrument"):
        load_template("wfpc2")


def test_headerlets_open_and_hold_distortion():
    template = load_template("wfc3-uvis")
    names = [h.header["HDRNAME"] for h in template.headerlets]
    assert len(set(names)) == len(names)
    full = [h for h in template.headerlets if any(e.name == "WCSDVARR" for e in h.headerlet)]
    assert full and all(e.data.shape == (32, 64) for h in full for e in h.headerlet
                        if e.name in ("WCSDVARR", "D2IMARR"))


# ----------------------------------------------------------------------------- rotations


def test_rotation_moves_tan_wcs_exactly():
    template = load_template("wfc3-ir")
    header = template.chips[0].sci
    cd = np.array([[header["CD1_1"], header["CD1_2"]], [header["CD2_1"], header["CD2_2"]]])
    rotation = pointing_rotation((header["CRVAL1"], header["CRVAL2"]), (33.0, -12.0),
                                 orientat_deg=75.0, offset_pixels=(12.0, -7.5), cd=cd)
    before = _quiet_wcs(header)
    moved = header.copy()
    crval1, crval2, new_cd = rotation.transform_tan(header["CRVAL1"], header["CRVAL2"], cd)
    moved["CRVAL1"], moved["CRVAL2"] = crval1, crval2
    for i in (1, 2):
        for j in (1, 2):
            moved[f"CD{i}_{j}"] = new_cd[i - 1, j - 1]
    after = _quiet_wcs(moved)
    ra, dec = before.all_pix2world(*PIXELS, 1)
    expected_ra, expected_dec = rotation.apply(ra, dec)
    got_ra, got_dec = after.all_pix2world(*PIXELS, 1)
    u, v = unit_vector(got_ra, got_dec), unit_vector(expected_ra, expected_dec)
    separation = np.degrees(np.arctan2(np.linalg.norm(np.cross(u, v), axis=-1),
                                       np.sum(u * v, axis=-1))) * 3600e3
    assert np.all(separation < 1e-5)  # milliarcseconds
    assert orientat_from_cd(new_cd) == pytest.approx(75.0, abs=0.01)


def test_roll_turns_about_the_target_and_dither_moves_it():
    cd = np.array([[-1e-5, 0.0], [0.0, 1e-5]])  # north up, east left, 0.036"/px
    reference = (150.0, 2.0)
    still = pointing_rotation(reference, reference, orientat_deg=0.0, offset_pixels=(0, 0), cd=cd)
    np.testing.assert_allclose(still.matrix, np.eye(3), atol=1e-12)
    rolled = pointing_rotation(reference, reference, orientat_deg=30.0, offset_pixels=(0, 0),
                               cd=cd)
    ra, dec = rolled.apply(*reference)
    assert (float(ra), float(dec)) == pytest.approx(reference)
    assert orientat_from_cd(rolled.transform_tan(*reference, cd)[2]) == pytest.approx(30.0)
    shifted = pointing_rotation(reference, reference, orientat_deg=0.0, offset_pixels=(100, 0),
                                cd=cd)
    ra, dec = shifted.apply(*reference)
    # A telescope offset of +100 px along x, with east to the left: the pointing moves 3.6"
    # to the west.
    expected = offset_radec(*reference, -3.6, 0.0)
    assert float(ra) == pytest.approx(float(expected[0]), abs=1e-9)
    assert float(dec) == pytest.approx(float(expected[1]), abs=1e-9)


def test_composition_order():
    a = SkyRotation(np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
    b = SkyRotation(np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]))
    np.testing.assert_allclose(a.then(b).matrix, b.matrix @ a.matrix)


# ----------------------------------------------------------------------------- files


@pytest.fixture(scope="module")
def rolled_visits(tmp_path_factory):
    root = tmp_path_factory.mktemp("geometry")
    return {inst: simulate_visit(root / inst, inst, 2, seed=2, shape=160, roll_deg=15.0,
                                 target=(83.8, -5.4), noise=False, cosmic_rays=False)
            for inst in INSTRUMENTS}


def _template_hdul(template, chip_window_shift=None):
    """HDU list of the template's (unmoved) WCS: SCI headers and lookup tables."""
    hdus = [fits.PrimaryHDU(header=template.primary.copy())]
    for chip in template.chips:
        hdus.append(fits.ImageHDU(header=chip.sci.copy(), name="SCI", ver=chip.chip))
    hdus += [fits.ImageHDU(t.data, t.header.copy()) for t in template.lookup_tables]
    return fits.HDUList(hdus)


def _relative_offsets(primary: WCS, other: WCS, x, y):
    """Where ``other`` puts pixels, expressed in ``primary``'s pixels, minus the pixels."""
    ra, dec = other.all_pix2world(x, y, 1)
    px, py = primary.all_world2pix(ra, dec, 1, tolerance=1e-11, maxiter=200, quiet=True)
    return px - x, py - y


@pytest.mark.parametrize("instrument", INSTRUMENTS)
def test_alternate_wcs_move_with_the_primary(rolled_visits, instrument):
    """A rigid sky rotation keeps every alternate WCS at the same place relative to the primary."""
    template = load_template(instrument)
    reference = _template_hdul(template)
    det = get_detector(instrument)
    for path in rolled_visits[instrument].files:
        with fits.open(path) as hdul:
            for chip in range(1, n_chips(hdul) + 1):
                header = hdul["SCI", chip].header
                shift = (-header["LTV1"], -header["LTV2"])
                keys = [k for k in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if f"CRVAL1{k}" in header]
                assert keys  # real headers carry several solutions
                for key in keys:
                    new = _relative_offsets(_quiet_wcs(header, hdul),
                                            _quiet_wcs(header, hdul, key), *PIXELS)
                    old_header = reference["SCI", chip].header
                    old = _relative_offsets(
                        _quiet_wcs(old_header, reference),
                        _quiet_wcs(old_header, reference, key),
                        PIXELS[0] + shift[0], PIXELS[1] + shift[1])
                    np.testing.assert_allclose(new, old, atol=1e-6, err_msg=f"{det.key} {key}")


@pytest.mark.parametrize("instrument", ["wfc3-uvis", "wfc3-ir", "acs-wfc"])
def test_headerlets_move_with_the_primary(rolled_visits, instrument):
    template = load_template(instrument)
    reference = _template_hdul(template)
    for path in rolled_visits[instrument].files:
        rootname = path.name.split("_")[0]
        with fits.open(path) as hdul:
            headerlets = [h for h in hdul if h.name == "HDRLET"]
            assert len(headerlets) == len(template.headerlets)
            for hdu, original in zip(headerlets, template.headerlets):
                old_root = template.primary["ROOTNAME"].strip()
                assert old_root[:8] not in hdu.header["HDRNAME"]
                assert hdu.header["HDRNAME"] == original.header["HDRNAME"].replace(
                    old_root, rootname).replace(old_root[:8], rootname[:8])
                hlet = open_headerlet(hdu)
                assert hlet[0].header.get("DESTIM", rootname) == rootname
                for sipwcs, old_sipwcs in zip(
                        [h for h in hlet if h.name == "SIPWCS"],
                        [h for h in original.headerlet if h.name == "SIPWCS"]):
                    chip = sipwcs.header.get("TG_EVER", sipwcs.ver)
                    sci = hdul["SCI", chip].header
                    shift = (-sci["LTV1"], -sci["LTV2"])
                    new = _relative_offsets(_quiet_wcs(sci, hdul),
                                            _quiet_wcs(sipwcs.header, hlet), *PIXELS)
                    old = _relative_offsets(
                        _quiet_wcs(reference["SCI", chip].header, reference),
                        _quiet_wcs(old_sipwcs.header, original.headerlet),
                        PIXELS[0] + shift[0], PIXELS[1] + shift[1])
                    np.testing.assert_allclose(new, old, atol=1e-6)


@pytest.mark.parametrize("instrument", INSTRUMENTS)
def test_wcscorr_rows_follow_the_headers(rolled_visits, instrument):
    template = load_template(instrument)
    for path in rolled_visits[instrument].files:
        with fits.open(path) as hdul:
            table = hdul["WCSCORR"].data
            checked = 0
            for row, old_row in zip(table, template.wcscorr.data):
                chip = int(row["EXTVER"])
                if not str(row["WCS_ID"]).strip() or not 1 <= chip <= n_chips(hdul):
                    continue
                header = hdul["SCI", chip].header
                old_header = template.chips[chip - 1].sci
                for key in ["", *"ABCDEFGHIJKLMNOPQRSTUVWXYZ"]:
                    name = f"WCSNAME{key}"
                    if old_header.get(name) != old_row["WCS_ID"] or \
                            not np.isclose(old_header[f"CRVAL1{key}"], old_row["CRVAL1"],
                                           rtol=0, atol=1e-9):
                        continue
                    assert row["CRVAL1"] == pytest.approx(header[f"CRVAL1{key}"], abs=1e-9)
                    assert row["CRVAL2"] == pytest.approx(header[f"CRVAL2{key}"], abs=1e-9)
                    assert row["CD1_1"] == pytest.approx(header[f"CD1_1{key}"], rel=1e-8)
                    checked += 1
            if instrument != "acs-hrc":
                assert checked > 0


@pytest.mark.parametrize("instrument", ["wfc3-uvis", "wfc3-ir", "acs-wfc"])
def test_subarray_pixels_keep_their_full_frame_sky_positions(instrument):
    """NPOL/D2IM tables and CRPIX follow the window: sub pixel p == full pixel p + offset."""
    template = load_template(instrument)
    det = get_detector(instrument)
    facts = VisitFacts(1, "abc", "01", "T", (float(template.primary["RA_TARG"]),
                                               float(template.primary["DEC_TARG"])), ())
    spec = ExposureSpec(0, "iabc01a0q", det.filter(det.default_filter), 100.0, 55000.0,
                        (0.0, 0.0), 0.0, SkyRotation(np.eye(3)))
    full = [ChipWindow(0, 0, det.chip_shape[1], det.chip_shape[0], det.chip_shape)
            for _ in template.chips]
    sub = [ChipWindow(700, 300, 150, 120, det.chip_shape) for _ in template.chips]
    full_headers = build_exposure_headers(template, det, facts, spec, full)
    sub_headers = build_exposure_headers(template, det, facts, spec, sub)
    x, y = np.array([0.0, 50.3, 149.0]), np.array([0.0, 77.7, 119.0])
    for chip in range(1, template.n_chips + 1):
        a = sub_headers.chip_wcs(chip, (120, 150)).all_pix2world(x, y, 0)
        b = full_headers.chip_wcs(chip, det.chip_shape).all_pix2world(x + 700, y + 300, 0)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-11)
        if instrument != "wfc3-ir":  # the lookup tables matter: without them it differs
            bare = sub_headers.chip_wcs(chip, (120, 150)).deepcopy()
            bare.cpdis1 = bare.cpdis2 = bare.det2im1 = bare.det2im2 = None
            assert np.abs(bare.all_pix2world(x, y, 0)[0] - b[0]).max() * 3600e3 > 0.05


def test_lookup_tables_are_used_by_the_file_wcs(rolled_visits):
    with fits.open(rolled_visits["wfc3-uvis"].files[0]) as hdul:
        wcs = chip_wcs(hdul, 1)
        assert wcs.cpdis1 is not None and wcs.det2im1 is not None
        assert wcs.cpdis1.data.shape == (32, 64)
