"""hapgpu.simulate for alignment work: known WCS errors, a priori files, truth, the reference
catalogue's errors and proper motions, and ACS/WFC."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time
from astropy.wcs import WCS

from hapgpu.cli import main
from hapgpu.errors import InvalidInputError, InvalidParameterError
from hapgpu.simulate import (
    WCSPerturbation,
    get_detector,
    load_template,
    read_pointings,
    simulate_visit,
    true_wcs,
)
from hapgpu.simulate._hdrlet import open_headerlet
from hapgpu.simulate._pointing import offset_radec, tangent_offsets, unit_vector
from hapgpu.simulate._sky import gaia_position_error
from hapgpu.simulate._wcs_error import ErrorTransform, as_perturbation

from ._simulate_helpers import SMALL_SHAPES, measure_stars, n_chips

INSTRUMENTS = ["wfc3-uvis", "wfc3-ir", "acs-hrc", "acs-wfc"]
FIXED = WCSPerturbation((0.35, -0.2), rotation_deg=0.015, scale=2e-5)
# The convention holds to second-order terms of order |shift| * (field radius)^2 in radians
# (and |scale| times that), ~1e-7 arcsec for these errors and HST fields; see WCSPerturbation.
EXACT_ARCSEC = 1e-5


def _quiet_wcs(header, fobj=None, key=" "):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return WCS(header, fobj, key=key)


def _grid(shape, n=4):
    ny, nx = shape
    x, y = np.meshgrid(np.linspace(0.0, nx - 1.0, n), np.linspace(0.0, ny - 1.0, n))
    return x.ravel(), y.ravel()


def _separation_arcsec(ra1, dec1, ra2, dec2):
    u, v = unit_vector(ra1, dec1), unit_vector(ra2, dec2)
    return np.degrees(np.arctan2(np.linalg.norm(np.cross(u, v), axis=-1),
                                 np.sum(u * v, axis=-1))) * 3600.0


def _quick(path, instrument, **kwargs):
    """A small visit with few sources and no cosmic rays (geometry tests need no pixels)."""
    kwargs.setdefault("shape", 96)
    kwargs.setdefault("n_exposures", 2)
    kwargs.setdefault("seed", 5)
    return simulate_visit(path, instrument, star_density=20.0, galaxy_density=0.0,
                          cosmic_rays=False, **kwargs)


@pytest.fixture(scope="module")
def fixed_error_visits(tmp_path_factory):
    root = tmp_path_factory.mktemp("fixed")
    return {inst: _quick(root / inst, inst, roll_deg=10.0, wcs_error=FIXED)
            for inst in INSTRUMENTS}


@pytest.fixture(scope="module")
def shifted_visits(tmp_path_factory):
    """A pure 0.3" shift: every stored solution must be 0.3" from the truth everywhere."""
    root = tmp_path_factory.mktemp("shifted")
    return {inst: _quick(root / inst, inst, wcs_error=WCSPerturbation((0.0, 0.3)))
            for inst in INSTRUMENTS}


# ----------------------------------------------------------------------------- the error value


def test_perturbation_forms_and_validation():
    assert as_perturbation(None) is None
    assert as_perturbation(0.5) == WCSPerturbation(0.5, per_exposure=True)
    assert as_perturbation({"shift_arcsec": (1, 2)}) == WCSPerturbation((1.0, 2.0))
    assert FIXED.draw(np.random.default_rng(0)) is FIXED
    assert WCSPerturbation().is_zero and not FIXED.is_zero
    for bad, message in [
        (lambda: WCSPerturbation(0.5), "per_exposure"),
        (lambda: WCSPerturbation((0.1,)), "east, north"),
        (lambda: WCSPerturbation((0.1, float("nan"))), "north"),
        (lambda: WCSPerturbation((100.0, 0.0)), "east"),
        (lambda: WCSPerturbation(rotation_deg=10.0), "rotation_deg"),
        (lambda: WCSPerturbation(scale=0.5), "scale"),
        (lambda: as_perturbation("big"), "wcs_error"),
        (lambda: as_perturbation({"shift": 1.0}), "wcs_error"),
        (lambda: ErrorTransform((10.0, 10.0), WCSPerturbation(1.0, per_exposure=True)), "fixed"),
    ]:
        with pytest.raises(InvalidParameterError, match=message):
            bad()


def test_random_draws_stay_within_their_amplitudes():
    rng = np.random.default_rng(3)
    disc = [WCSPerturbation(0.5, 0.02, 1e-4, per_exposure=True).draw(rng) for _ in range(400)]
    shifts = np.array([d.shift_arcsec for d in disc])
    radius = np.hypot(*shifts.T)
    assert radius.max() <= 0.5 and radius.max() > 0.45
    assert abs(np.mean(radius**2) - 0.5**2 / 2) < 0.02  # uniform in the disc: <r^2> = a^2/2
    assert max(abs(d.rotation_deg) for d in disc) <= 0.02
    assert max(abs(d.scale) for d in disc) <= 1e-4
    box = [WCSPerturbation((0.1, 0.4), per_exposure=True).draw(rng) for _ in range(400)]
    east, north = np.array([d.shift_arcsec for d in box]).T
    assert np.abs(east).max() <= 0.1 < np.abs(north).max() <= 0.4
    assert all(not d.per_exposure and d.rotation_deg == 0.0 for d in box)


def test_error_transform_follows_the_convention():
    """(xi', eta') = (1 + s) R(t) (xi, eta) + shift in the tangent plane at the reference."""
    reference = (150.06, 63.18)
    error = WCSPerturbation((0.4, -0.3), rotation_deg=0.02, scale=5e-3)
    transform = ErrorTransform(reference, error)
    rng = np.random.default_rng(1)
    east, north = rng.uniform(-200.0, 200.0, (2, 50))
    ra, dec = offset_radec(*reference, east, north)
    got = np.vstack(tangent_offsets(*reference, *transform.apply(ra, dec)))
    t = np.radians(error.rotation_deg)
    rotation = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    expected = (1 + error.scale) * rotation @ np.vstack([east, north]) + np.array([[0.4], [-0.3]])
    np.testing.assert_allclose(got, expected, rtol=0, atol=EXACT_ARCSEC)
    # North-up east-left CD at the reference point: ORIENTAT rises by the rotation, plus the
    # convergence of the meridians between the old and the shifted reference value.
    cd = np.array([[-1.0e-5, 0.0], [0.0, 1.0e-5]])
    new_ra, _, new_cd = transform.apply_tan(*reference, cd)
    convergence = (new_ra - reference[0]) * np.sin(np.radians(reference[1]))
    assert np.degrees(np.arctan2(new_cd[0, 1], new_cd[1, 1])) == pytest.approx(
        0.02 + convergence, abs=1e-6)
    assert np.sqrt(abs(np.linalg.det(new_cd))) == pytest.approx(1.005e-5, rel=1e-9)


# ----------------------------------------------------------------------------- headers vs truth


@pytest.mark.parametrize("instrument", INSTRUMENTS)
def test_header_wcs_is_truth_plus_the_stated_error(fixed_error_visits, instrument):
    """Every chip of every exposure: header = (1 + s) R(t) truth + shift about the reference."""
    result = fixed_error_visits[instrument]
    table = read_pointings(result)
    t = np.radians(FIXED.rotation_deg)
    rotation = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    for exposure in result.exposures:
        assert exposure.wcs_error == FIXED
        with fits.open(exposure.path) as hdul:
            for chip in range(1, n_chips(hdul) + 1):
                row = table[(table["rootname"] == exposure.rootname) & (table["chip"] == chip)]
                row = row[0]
                assert (row["shift_east"], row["shift_north"]) == FIXED.shift_arcsec
                assert (row["rotation"], row["scale"]) == (FIXED.rotation_deg, FIXED.scale)
                header_wcs = _quiet_wcs(hdul["SCI", chip].header, hdul)
                truth = true_wcs(result, exposure.rootname, chip)
                x, y = _grid(hdul["SCI", chip].data.shape)
                reference = (row["ref_ra"], row["ref_dec"])
                true_xy = np.vstack(tangent_offsets(*reference, *truth.all_pix2world(x, y, 0)))
                header_xy = np.vstack(tangent_offsets(*reference,
                                                      *header_wcs.all_pix2world(x, y, 0)))
                expected = ((1 + FIXED.scale) * rotation @ true_xy
                            + np.array(FIXED.shift_arcsec)[:, None])
                np.testing.assert_allclose(header_xy, expected, rtol=0, atol=EXACT_ARCSEC)
                # At the reference point itself the header is off by exactly the shift.
                px, py = truth.all_world2pix([reference[0]], [reference[1]], 0, tolerance=1e-12)
                at_ref = tangent_offsets(*reference, *header_wcs.all_pix2world(px, py, 0))
                np.testing.assert_allclose(np.ravel(at_ref), FIXED.shift_arcsec, rtol=0,
                                           atol=EXACT_ARCSEC)
                # Only the sky side moved: SIP and CRPIX are the truth's.
                assert header_wcs.wcs.crpix == pytest.approx(truth.wcs.crpix, abs=0)
                np.testing.assert_array_equal(header_wcs.sip.a, truth.sip.a)
                orientat = hdul["SCI", chip].header["ORIENTAT"]
                assert orientat == pytest.approx(row["hdr_orientat"], abs=1e-9)
                assert orientat - row["orientat"] == pytest.approx(FIXED.rotation_deg, abs=1e-3)
                sci = hdul["SCI", chip].header
                assert _separation_arcsec(
                    sci["RA_APER"], sci["DEC_APER"], *ErrorTransform(
                        reference, FIXED).apply(*reference)) < EXACT_ARCSEC


def test_random_errors_are_per_exposure_and_seeded(tmp_path):
    spec = WCSPerturbation(0.5, rotation_deg=0.02, scale=1e-5, per_exposure=True)
    a = _quick(tmp_path / "a", "acs-hrc", n_exposures=3, shape=64, wcs_error=spec)
    b = _quick(tmp_path / "b", "acs-hrc", n_exposures=3, shape=64, wcs_error=spec)
    c = _quick(tmp_path / "c", "acs-hrc", n_exposures=3, shape=64, seed=6, wcs_error=spec)
    errors = [e.wcs_error for e in a.exposures]
    assert len({e.shift_arcsec for e in errors}) == 3
    assert all(np.hypot(*e.shift_arcsec) <= 0.5 and abs(e.rotation_deg) <= 0.02
               and abs(e.scale) <= 1e-5 for e in errors)
    assert errors == [e.wcs_error for e in b.exposures]
    assert errors != [e.wcs_error for e in c.exposures]
    table = read_pointings(a)
    assert list(zip(table["shift_east"], table["shift_north"])) == [e.shift_arcsec
                                                                   for e in errors]
    assert a.wcs_error == spec
    for x, y in zip(a.files, b.files):
        assert x.read_bytes() == y.read_bytes()
    assert a.pointings.read_bytes() == b.pointings.read_bytes()


@pytest.mark.parametrize("instrument", ["wfc3-uvis", "acs-hrc"])
def test_pixels_are_rendered_through_the_true_wcs(tmp_path, instrument):
    """The error changes the headers only: same seed, same pixels, same truth catalogues."""
    plain = _small_visit(tmp_path / "plain", instrument)
    wrong = _small_visit(tmp_path / "wrong", instrument, wcs_error=WCSPerturbation(
        (1.5, 0.8), rotation_deg=0.05, scale=1e-4))
    for a, b in zip(plain.files, wrong.files):
        with fits.open(a) as x, fits.open(b) as y:
            for extname in ("SCI", "ERR", "DQ"):
                for chip in range(1, n_chips(x) + 1):
                    np.testing.assert_array_equal(x[extname, chip].data, y[extname, chip].data)
            assert x["SCI", 1].header["CRVAL1"] != y["SCI", 1].header["CRVAL1"]
    assert plain.sky_catalog.read_bytes() == wrong.sky_catalog.read_bytes()
    assert plain.refcat.read_bytes() == wrong.refcat.read_bytes()
    truth_plain, truth_wrong = read_pointings(plain), read_pointings(wrong)
    for name in ("crval1", "crval2", "cd1_1", "cd2_2", "crpix1"):
        np.testing.assert_array_equal(truth_plain[name], truth_wrong[name])


def _small_visit(path, instrument, **kwargs):
    return simulate_visit(path, instrument, 1, seed=9, shape=SMALL_SHAPES[instrument], **kwargs)


def test_stars_sit_at_their_true_pixels_not_the_header_ones(tmp_path):
    """ACS/WFC with an error: centroids match the true WCS to 0.01 px; through the header WCS a
    star is expected where the header maps its position moved back by the shift."""
    error = WCSPerturbation((0.25, -0.1))
    result = simulate_visit(tmp_path / "wfc", "acs-wfc", 1, "F814W", seed=21, noise=False,
                            cosmic_rays=False, defects=False, shape=(400, 500),
                            wcs_error=error)
    catalog = Table.read(result.sky_catalog)
    exposure = result.exposures[0]
    row = read_pointings(result)[0]
    measured = 0
    for chip in (1, 2):
        truth = true_wcs(result, exposure.rootname, chip)
        stars = measure_stars(exposure.path, catalog, chip=chip, max_stars=10, wcs=truth)
        header = {s.object_id: s for s in measure_stars(exposure.path, catalog, chip=chip,
                                                        max_stars=10, fit=False)}
        for star in stars:
            assert abs(star.x_fit - star.x_true) < 0.01
            assert abs(star.y_fit - star.y_true) < 0.01
            if star.object_id not in header:
                continue
            # The header pixel of a true position p is where the truth puts p - shift.
            ra, dec = truth.all_pix2world([star.x_true], [star.y_true], 0)
            east, north = tangent_offsets(row["ref_ra"], row["ref_dec"], ra, dec)
            back = offset_radec(row["ref_ra"], row["ref_dec"], east - 0.25, north + 0.1)
            x, y = truth.all_world2pix(*back, 0, tolerance=1e-12)
            assert header[star.object_id].x_true == pytest.approx(float(x[0]), abs=1e-4)
            assert header[star.object_id].y_true == pytest.approx(float(y[0]), abs=1e-4)
            # ~0.27" is ~5.4 ACS/WFC pixels (their size varies by several per cent).
            assert 5.0 < np.hypot(star.x_true - x[0], star.y_true - y[0]) < 6.0
            measured += 1
    assert measured >= 5


# ----------------------------------------------------------------------------- a priori files


def _stored_wcs(hdul, chip):
    """Every stored full WCS of a chip: (label, astropy WCS), the active one excluded."""
    sci = hdul["SCI", chip].header
    stored = [(f"alternate {key} {sci[f'WCSNAME{key}']}", _quiet_wcs(sci, hdul, key))
              for key in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if f"CRVAL1{key}" in sci]
    for hdu in hdul:
        if hdu.name != "HDRLET":
            continue
        hlet = open_headerlet(hdu)
        for ext in hlet:
            if ext.name == "SIPWCS" and int(ext.header.get("TG_EVER", ext.ver)) == chip:
                stored.append((f"headerlet {hdu.header['WCSNAME']}",
                               _quiet_wcs(ext.header, hlet)))
    return stored


@pytest.mark.parametrize("instrument", INSTRUMENTS)
def test_no_stored_solution_equals_the_truth(shifted_visits, instrument):
    result = shifted_visits[instrument]
    template_name = load_template(instrument).chips[0].sci["WCSNAME"]
    base = template_name.split("-")[0]
    table = read_pointings(result)
    for exposure in result.exposures:
        with fits.open(exposure.path) as hdul:
            names = [h.header["WCSNAME"] for h in hdul if h.name == "HDRLET"]
            assert not any("FIT" in n or "HSC" in n or n == "OPUS" for n in names)
            for chip in range(1, n_chips(hdul) + 1):
                sci = hdul["SCI", chip].header
                assert sci["WCSNAME"] == f"{base}-GSC240"
                assert "NMATCHES" not in sci and "RMS_RA" not in sci and "FITGEOM" not in sci
                if "HDRNAME" in sci:
                    assert sci["HDRNAME"] in [h.header["HDRNAME"] for h in hdul
                                              if h.name == "HDRLET"]
                truth = true_wcs(result, exposure.rootname, chip)
                x, y = _grid(hdul["SCI", chip].data.shape)
                true_radec = truth.all_pix2world(x, y, 0)
                stored = _stored_wcs(hdul, chip)
                assert len(stored) >= 1  # the OPUS alternate at least
                for label, wcs in stored:
                    name = label.split()[-1]
                    assert "FIT" not in name and "HSC" not in name, label
                    gap = _separation_arcsec(*wcs.all_pix2world(x, y, 0), *true_radec)
                    assert gap.min() > 0.3 - 1e-4, f"{exposure.rootname} {chip} {label}"
                row = table[(table["rootname"] == exposure.rootname) & (table["chip"] == chip)][0]
                for corr in hdul["WCSCORR"].data:
                    if str(corr["WCS_ID"]).strip() and int(corr["EXTVER"]) == chip:
                        assert "FIT" not in corr["WCS_ID"] and "HSC" not in corr["WCS_ID"]
                        assert (corr["CRPIX1"], corr["CRPIX2"]) == (row["crpix1"], row["crpix2"])
                        gap = _separation_arcsec(corr["CRVAL1"], corr["CRVAL2"], row["crval1"],
                                                 row["crval2"])
                        assert gap > 0.3 - 1e-4
                # ERR and DQ carry the linear part of the active (erroneous) WCS.
                for extname in [e for e in ("ERR", "DQ", "SAMP", "TIME") if (e, chip) in hdul]:
                    header = hdul[extname, chip].header
                    assert header["WCSNAME"] == sci["WCSNAME"]
                    for card in ("CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CD1_1", "CD2_2"):
                        assert header[card] == sci[card]


def test_visits_without_an_error_keep_the_template_solutions(tmp_path):
    result = _quick(tmp_path / "plain", "acs-wfc", n_exposures=1)
    with fits.open(result.files[0]) as hdul:
        names = {h.header["WCSNAME"] for h in hdul if h.name == "HDRLET"}
        assert names == {h.header["WCSNAME"] for h in load_template("acs-wfc").headerlets}
        assert hdul["SCI", 1].header["WCSNAME"] == "IDC_4bb1536cj-FIT_IMG_GAIAeDR3"
        truth = true_wcs(result, result.exposures[0].rootname, 1)
        x, y = _grid(hdul["SCI", 1].data.shape)
        gap = _separation_arcsec(*_quiet_wcs(hdul["SCI", 1].header, hdul).all_pix2world(x, y, 0),
                                 *truth.all_pix2world(x, y, 0))
        assert gap.max() < 1e-9


def test_true_wcs_helper(fixed_error_visits):
    result = fixed_error_visits["acs-wfc"]
    root = result.exposures[1].rootname
    astropy_wcs = true_wcs(result.outdir, root, 2)
    hst = true_wcs(str(result.outdir), root.upper(), 2, hstwcs=True)
    assert type(hst).__name__ == "HSTWCS"
    assert astropy_wcs.pixel_shape == hst.pixel_shape == (96, 96)
    x, y = _grid((96, 96))
    np.testing.assert_allclose(np.array(hst.all_pix2world(x, y, 0)),
                               np.array(astropy_wcs.all_pix2world(x, y, 0)), rtol=0, atol=1e-12)
    assert astropy_wcs.cpdis1 is not None and astropy_wcs.det2im1 is not None
    with pytest.raises(InvalidParameterError, match="chip 3"):
        true_wcs(result, root, 3)
    with pytest.raises(InvalidParameterError, match="rootname"):
        true_wcs(result, "jnope01a0q", 1)
    with pytest.raises(InvalidInputError, match="pointings"):
        true_wcs(result.outdir / "truth", root, 1)


# ----------------------------------------------------------------------------- reference catalogue


@pytest.fixture(scope="module")
def catalogue_visit(tmp_path_factory):
    return simulate_visit(tmp_path_factory.mktemp("refcat") / "visit", "wfc3-ir", 1, seed=31,
                          shape=64, star_density=1500.0, galaxy_density=0.0)


def test_reference_catalogue_has_gaia_errors_and_proper_motions(catalogue_visit):
    refcat = Table.read(catalogue_visit.refcat)
    assert len(refcat) > 200
    assert refcat.meta["epoch"] == 2016.0 and refcat.meta["catalog"] == "GAIAeDR3"
    assert np.all(refcat["epoch"] == 2016.0)
    for name, unit in (("RA_error", "mas"), ("DEC_error", "mas"), ("pmra", "mas / yr"),
                       ("pmra_error", "mas / yr"), ("pmdec_error", "mas / yr")):
        assert str(refcat[name].unit) == unit
    errors = np.sqrt(refcat["RA_error"] * refcat["DEC_error"])
    assert errors.min() > 0.005 and errors.max() < 3.0
    # Errors grow with magnitude: medians per magnitude bin rise.
    bins = np.digitize(refcat["mag"], [17.0, 18.5, 19.5, 20.3])
    medians = [np.median(errors[bins == b]) for b in range(5) if np.sum(bins == b) >= 5]
    assert len(medians) >= 4 and np.all(np.diff(medians) > 0)
    assert np.median(errors / gaia_position_error(refcat["mag"])) == pytest.approx(1.0, abs=0.1)
    assert np.median(refcat["pmra_error"] / refcat["RA_error"]) == pytest.approx(1.1, rel=0.15)
    assert np.median(refcat["RA_error"] / refcat["DEC_error"]) < 1.0
    # Field-star proper motions: a dispersion of several mas/yr, not zero and not absurd.
    for name in ("pmra", "pmdec"):
        assert 4.0 < np.std(refcat[name]) < 15.0


def test_truth_is_catalogue_moved_by_proper_motion_plus_noise(catalogue_visit):
    """truth(t_obs) = catalogue + pm * (t_obs - 2016) + noise of the quoted errors."""
    refcat = Table.read(catalogue_visit.refcat)
    sky = Table.read(catalogue_visit.sky_catalog)
    with fits.open(catalogue_visit.files[0]) as hdul:
        t_obs = Time(hdul[0].header["EXPSTART"], format="mjd").jyear
        assert Time(hdul[0].header["DATE-OBS"]).jyear == pytest.approx(t_obs, abs=1 / 365.0)
    assert sky.meta["epoch"] == pytest.approx(t_obs, abs=1e-6)
    truth = sky[np.searchsorted(sky["objID"], refcat["objID"])]
    assert np.all(truth["kind"] == "star")
    years = t_obs - refcat["epoch"]
    cos_dec = np.cos(np.radians(refcat["DEC"]))
    d_ra = ((truth["ra"] - refcat["RA"]) * cos_dec * 3.6e6 - refcat["pmra"] * years)
    d_dec = (truth["dec"] - refcat["DEC"]) * 3.6e6 - refcat["pmdec"] * years
    pull_ra = d_ra / np.hypot(refcat["RA_error"], refcat["pmra_error"] * years)
    pull_dec = d_dec / np.hypot(refcat["DEC_error"], refcat["pmdec_error"] * years)
    for pull in (pull_ra, pull_dec):
        assert np.abs(pull).max() < 6.0
        assert np.std(pull) == pytest.approx(1.0, abs=0.12)
    # Without the proper motion the truth is far off: the epochs really differ.
    assert np.median(np.abs(truth["dec"] - refcat["DEC"]) * 3.6e6) > 10.0


# ----------------------------------------------------------------------------- ACS/WFC


def test_acs_wfc_photometry_and_detector_follow_the_template(tmp_path):
    det = get_detector("acs-wfc")
    template = load_template("acs-wfc")
    sci = template.chips[0].sci
    f814w = det.filter("F814W")
    assert f814w.photflam == pytest.approx(sci["PHOTFLAM"], rel=2e-3)
    assert f814w.pivot == pytest.approx(sci["PHOTPLAM"], rel=1e-4)
    assert f814w.bandwidth == pytest.approx(sci["PHOTBW"], rel=1e-3)
    readnoise = np.mean([template.primary[f"READNSE{amp}"] for amp in "ABCD"])
    assert det.read_noise == pytest.approx(readnoise, abs=0.05)
    assert det.gain == template.primary["CCDGAIN"]
    assert det.pixel_scale == template.chips[0].sci["IDCSCALE"]
    result = _quick(tmp_path / "wfc", "acs-wfc", n_exposures=3, filters="F435W,F606W,F814W")
    expected = [("CLEAR1L", "F435W"), ("F606W", "CLEAR2L"), ("CLEAR1L", "F814W")]
    for exposure, filters in zip(result.exposures, expected):
        with fits.open(exposure.path) as hdul:
            assert exposure.path.name == f"{exposure.rootname}_flc.fits"
            assert exposure.rootname.startswith("jsim01")
            assert (hdul[0].header["FILTER1"], hdul[0].header["FILTER2"]) == filters
            for chip in (1, 2):
                header = hdul["SCI", chip].header
                assert header["PHOTMODE"].startswith(f"ACS WFC1 {exposure.filter} MJD#")
                assert header["PHOTFLAM"] == pytest.approx(det.filter(exposure.filter).photflam)
                assert header["CCDCHIP"] == (2 if chip == 1 else 1)
                # The CD matrices hold the linear distortion at each chip's reference pixel:
                # 0.0500" (WFC2) and 0.0488" (WFC1) in the real header.
                scale = np.sqrt(abs(np.linalg.det(_quiet_wcs(header, hdul).wcs.cd))) * 3600
                assert scale == pytest.approx(0.05, rel=0.03)
                assert _quiet_wcs(header, hdul).sip.a_order == 5


def test_acs_wfc_windows_sit_by_the_chip_gap(tmp_path):
    """Two subarray windows on the inner edges: their sky footprints nearly touch."""
    result = _quick(tmp_path / "wfc", "acs-wfc", n_exposures=1, shape=(64, 128))
    with fits.open(result.files[0]) as hdul:
        centres = [_quiet_wcs(hdul["SCI", c].header, hdul).all_pix2world([63.5], [31.5], 0)
                   for c in (1, 2)]
    gap = float(_separation_arcsec(*centres[0], *centres[1])[0])
    # 64 rows of 0.05" plus the ~2.5" inter-chip gap: far less than a chip height (~100").
    assert 3.0 < gap < 10.0


# ----------------------------------------------------------------------------- CLI


def test_cli_writes_a_fixed_error(tmp_path):
    out = tmp_path / "fixed"
    assert main(["-q", "simulate", "visit", str(out), "--instrument", "acs-wfc",
                 "--n-exposures", "2", "--shape", "64", "--wcs-error", "0.3,-0.2",
                 "--wcs-rotation", "0.01", "--no-progress"]) == 0
    table = read_pointings(out)
    assert set(zip(table["shift_east"], table["shift_north"])) == {(0.3, -0.2)}
    assert set(table["rotation"]) == {0.01} and set(table["wcsname"]) == {"IDC_4bb1536cj-GSC240"}


def test_cli_draws_random_errors(tmp_path):
    out = tmp_path / "random"
    assert main(["-q", "simulate", "visit", str(out), "--instrument", "wfc3-ir",
                 "--n-exposures", "3", "--shape", "64", "--wcs-error", "0.5",
                 "--wcs-scale", "1e-5", "--no-progress"]) == 0
    table = read_pointings(out)
    assert len(set(table["shift_east"])) == 3
    assert np.all(np.hypot(table["shift_east"], table["shift_north"]) <= 0.5)
    assert np.all(np.abs(table["scale"]) <= 1e-5) and np.all(table["rotation"] == 0.0)


def test_cli_rejects_bad_wcs_errors(tmp_path):
    assert main(["-q", "simulate", "visit", str(tmp_path / "a"), "--wcs-error", "500"]) == 1
    assert main(["-q", "simulate", "visit", str(tmp_path / "b"), "--wcs-rotation", "9"]) == 1
    assert main(["-q", "simulate", "visit", str(tmp_path / "c"), "--wcs-error", "east"]) == 2


# ----------------------------------------------------------------------------- reference packages


@pytest.mark.reference
@pytest.mark.slow  # importing drizzlepac alone takes seconds
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_stwcs_and_drizzlepac_read_acs_wfc_files(fixed_error_visits):
    """stwcs builds each chip's HSTWCS with the file's distortion, sees the a priori solutions
    and the headerlets; drizzlepac's WCS utilities and HAP filter accept the files."""
    from drizzlepac import wcs_functions
    from drizzlepac.haputils import analyze
    from stwcs.wcsutil import HSTWCS, altwcs, headerlet

    result = fixed_error_visits["acs-wfc"]
    for exposure in result.exposures:
        path = str(exposure.path)
        with fits.open(path) as hdul:
            for chip in (1, 2):
                hst = HSTWCS(hdul, ext=("SCI", chip))
                assert hst.idcscale == 0.05 and hst.wcs.name == "IDC_4bb1536cj-GSC240"
                assert hst.cpdis1 is not None and hst.det2im1 is not None
                ours = _quiet_wcs(hdul["SCI", chip].header, hdul)
                x, y = _grid(hdul["SCI", chip].data.shape)
                np.testing.assert_allclose(np.array(hst.all_pix2world(x, y, 0)),
                                           np.array(ours.all_pix2world(x, y, 0)), rtol=0,
                                           atol=1e-12)
                names = altwcs.wcsnames(hdul, ext=("SCI", chip))
                assert names[" "] == "IDC_4bb1536cj-GSC240" and names["O"] == "OPUS"
        hdrnames = headerlet.get_headerlet_kw_names(path, kw="WCSNAME")
        assert sorted(hdrnames) == ["IDC_4bb1536cj", "IDC_4bb1536cj-GSC240"]
    chips = [HSTWCS(str(p), ext=("SCI", c)) for p in result.files for c in (1, 2)]
    mosaic = wcs_functions.make_mosaic_wcs([str(p) for p in result.files])
    ra, dec = chips[0].all_pix2world([48.0], [48.0], 0)
    x, y = mosaic.all_world2pix(ra, dec, 0)
    assert 0 <= x[0] < mosaic.pixel_shape[0] and 0 <= y[0] < mosaic.pixel_shape[1]
    table, usable = analyze.analyze_data([str(p) for p in result.files], type="SVM")
    assert list(usable) == [0, 1]
