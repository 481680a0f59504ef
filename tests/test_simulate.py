"""hapgpu.simulate: visits on disk, their headers, truth files, determinism, errors and CLI."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from astropy.io import ascii, fits
from astropy.table import Table

from hapgpu.cli import main
from hapgpu.errors import InvalidParameterError
from hapgpu.simulate import DQ, get_detector, simulate_visit
from hapgpu.simulate._io import atomic_path

from ._simulate_helpers import SMALL_SHAPES, n_chips

REFCAT_COLUMNS = ["RA", "DEC", "RA_error", "DEC_error", "pmra", "pmdec", "pmra_error",
                  "pmdec_error", "epoch", "mag", "objID"]


def _small(tmp_path, instrument="wfc3-uvis", name="visit", **kwargs):
    kwargs.setdefault("shape", SMALL_SHAPES[instrument])
    kwargs.setdefault("n_exposures", 2)
    kwargs.setdefault("seed", 4)
    return simulate_visit(tmp_path / name, instrument, **kwargs)


@pytest.fixture(scope="module")
def uvis_visit(tmp_path_factory):
    """Four UVIS exposures in two filters with a roll: shared by the read-only tests below."""
    return simulate_visit(tmp_path_factory.mktemp("uvis") / "out", "wfc3-uvis", 4,
                          ("F555W", "F814W"), seed=12, shape=(160, 200), roll_deg=6.0)


# ----------------------------------------------------------------------------- files and names


def test_visit_writes_every_product(uvis_visit):
    out = uvis_visit.outdir
    names = sorted(p.name for p in out.iterdir() if p.is_file())
    roots = [e.rootname for e in uvis_visit.exposures]
    assert names == sorted([f"{r}_flc.fits" for r in roots]
                           + ["refcat.ecsv", "isim01_input.out", "input.lst"])
    truth = sorted(p.name for p in (out / "truth").iterdir())
    assert truth == sorted([f"{r}_crmask.fits" for r in roots]
                           + ["sky_catalog.ecsv", "pointings.ecsv"])
    assert not list(out.rglob("*.tmp"))
    assert uvis_visit.files == [out / f"{r}_flc.fits" for r in roots]


def test_rootnames_share_the_visit_and_follow_ipppssoot(uvis_visit):
    roots = [e.rootname for e in uvis_visit.exposures]
    assert len(set(roots)) == len(roots)
    for root in roots:
        assert len(root) == 9 and root[0] == "i" and root.endswith("q")
        assert root[:6] == "isim01"


@pytest.mark.parametrize("instrument, suffix, extnames", [
    ("wfc3-uvis", "flc", ["SCI", "ERR", "DQ"] * 2),
    ("wfc3-ir", "flt", ["SCI", "ERR", "DQ", "SAMP", "TIME"]),
    ("acs-hrc", "flt", ["SCI", "ERR", "DQ"]),
    ("acs-wfc", "flc", ["SCI", "ERR", "DQ"] * 2),
])
def test_file_structure_per_instrument(tmp_path, instrument, suffix, extnames):
    result = _small(tmp_path, instrument, n_exposures=1)
    path = result.files[0]
    assert path.name == f"{result.exposures[0].rootname}_{suffix}.fits"
    with fits.open(path) as hdul:
        names = [h.name for h in hdul]
        assert names[0] == "PRIMARY"
        assert names[1:1 + len(extnames)] == extnames
        assert hdul[0].header["NEXTEND"] == len(hdul) - 1
        rest = set(names[1 + len(extnames):])
        if instrument in ("wfc3-uvis", "acs-wfc"):
            assert rest == {"WCSDVARR", "D2IMARR", "HDRLET", "WCSCORR"}
            for hdu in hdul:
                if hdu.name in ("WCSDVARR", "D2IMARR"):
                    assert hdu.data.shape == (32, 64)  # real size, not a placeholder
        elif instrument == "wfc3-ir":
            assert rest == {"HDRLET", "WCSCORR"}
            assert np.all(hdul["SAMP", 1].data == hdul[0].header["NSAMP"])
            assert np.all(hdul["TIME", 1].data == np.float32(hdul[0].header["EXPTIME"]))
        else:
            assert rest == {"WCSCORR"}
        for chip in range(1, n_chips(hdul) + 1):
            assert hdul["SCI", chip].data.dtype == np.dtype(">f4")
            assert hdul["ERR", chip].data.dtype == np.dtype(">f4")
            assert hdul["DQ", chip].data.dtype == np.dtype(">i2")
            assert hdul["SCI", chip].data.shape == SMALL_SHAPES[instrument]


@pytest.mark.parametrize("instrument", ["wfc3-uvis", "wfc3-ir", "acs-hrc", "acs-wfc"])
def test_headers_carry_pipeline_keywords(tmp_path, instrument):
    det = get_detector(instrument)
    result = _small(tmp_path, instrument, n_exposures=2, exptime=[100.0, 250.0])
    previous_end = 0.0
    for exposure in result.exposures:
        with fits.open(exposure.path) as hdul:
            hdr = hdul[0].header
            assert hdr["ROOTNAME"] == exposure.rootname
            assert hdr["FILENAME"] == exposure.path.name
            assert hdr["INSTRUME"] == det.instrument and hdr["DETECTOR"] == det.detector
            assert hdr["EXPTIME"] == exposure.exptime
            assert hdr["EXPEND"] == pytest.approx(hdr["EXPSTART"] + hdr["EXPTIME"] / 86400.0)
            assert hdr["EXPSTART"] > previous_end
            previous_end = hdr["EXPEND"]
            assert hdr["PROPOSID"] == 17001
            # Keywords read by the HAP viability filter (analyze.analyze_data).
            assert hdr["OBSTYPE"] == "IMAGING" and hdr["DRIZCORR"] == "PERFORM"
            assert hdr["MTFLAG"].strip() in ("", "F")
            assert hdr["IMAGETYP"] == "EXT" and "FINE" in hdr["FGSLOCK"]
            assert hdr["TARGNAME"] == "HAPGPU-SIM"
            assert hdr["SUBARRAY"] is True
            assert "DATE-OBS" in hdr and "APERTURE" in hdr
            if det.instrument == "WFC3":
                assert hdr["SCAN_TYP"] == "N" and hdr["FILTER"] == det.default_filter
            else:
                clear = "CLEAR2S" if det.detector == "HRC" else "CLEAR2L"
                assert (hdr["FILTER1"], hdr["FILTER2"]) == ("F606W", clear)
            if det.detector == "UVIS":
                assert hdr["CHINJECT"] == "NONE"
            photometry = hdr if det.detector == "IR" else hdul["SCI", 1].header
            assert photometry["PHOTFLAM"] == pytest.approx(
                det.filter(det.default_filter).photflam)
            for chip in range(1, n_chips(hdul) + 1):
                sci = hdul["SCI", chip].header
                assert sci["BUNIT"] == det.bunit and hdul["ERR", chip].header["BUNIT"] == det.bunit
                assert sci.get("ROOTNAME", sci["EXPNAME"]).strip() == exposure.rootname
                assert sci["LTV1"] == -(det.chip_shape[1] - SMALL_SHAPES[instrument][1]) // 2
                assert sci["S_REGION"].startswith("POLYGON ICRS")
                assert "MDRIZSKY" not in sci


def test_filters_split_into_blocks_with_their_own_photometry(uvis_visit):
    filters = [e.filter for e in uvis_visit.exposures]
    assert filters == ["F555W", "F555W", "F814W", "F814W"]
    flams = set()
    for exposure in uvis_visit.exposures:
        with fits.open(exposure.path) as hdul:
            assert hdul[0].header["FILTER"] == exposure.filter
            flams.add(hdul["SCI", 1].header["PHOTFLAM"])
            assert exposure.filter in hdul["SCI", 1].header["PHOTMODE"]
    assert len(flams) == 2
    catalog = Table.read(uvis_visit.sky_catalog)
    assert {"mag_F555W", "mag_F814W", "rate_F555W", "rate_F814W"} <= set(catalog.colnames)


def test_roll_and_dither_change_orientation_and_pointing(uvis_visit):
    orientat, pa_v3, postarg = [], [], []
    for exposure in uvis_visit.exposures:
        with fits.open(exposure.path) as hdul:
            orientat.append(hdul["SCI", 1].header["ORIENTAT"])
            pa_v3.append(hdul[0].header["PA_V3"])
            postarg.append((hdul[0].header["POSTARG1"], hdul[0].header["POSTARG2"]))
    rolls = [e.roll for e in uvis_visit.exposures]
    assert rolls == pytest.approx([0.0, 2.0, 4.0, 6.0])
    assert np.diff(orientat) == pytest.approx(np.diff(rolls), abs=1e-3)
    assert np.diff(pa_v3) == pytest.approx(np.diff(rolls), abs=1e-3)
    assert len(set(postarg)) == 4 and postarg[0] == (0.0, 0.0)
    pointings = Table.read(uvis_visit.pointings)
    assert list(pointings["rootname"]) == [e.rootname for e in uvis_visit.exposures
                                           for _ in (1, 2)]
    assert list(pointings["chip"]) == [1, 2] * 4
    # Without a WCS error the header is the truth.
    assert np.all(pointings["crval1"] == pointings["hdr_crval1"])
    assert np.all(pointings["wcsname"] == "IDC_2731450pi-FIT_REL_GAIAeDR3")
    assert np.all(pointings["shift_east"] == 0.0) and np.all(pointings["scale"] == 0.0)


def test_target_and_orientation_can_be_chosen(tmp_path):
    result = _small(tmp_path, "wfc3-ir", n_exposures=1, target=(210.5, 54.3), orientat=30.0,
                    dither_pixels=0.0)
    with fits.open(result.files[0]) as hdul:
        hdr = hdul[0].header
        assert (hdr["RA_TARG"], hdr["DEC_TARG"]) == (210.5, 54.3)
        assert hdul["SCI", 1].header["ORIENTAT"] == pytest.approx(30.0, abs=0.05)
        assert hdul["SCI", 1].header["CRVAL1"] == pytest.approx(210.5, abs=0.05)
        assert hdul["SCI", 1].header["CRVAL2"] == pytest.approx(54.3, abs=0.05)


# ----------------------------------------------------------------------------- catalogues, poller


def test_poller_file_has_the_eight_svm_columns(uvis_visit):
    rows = uvis_visit.poller.read_text().splitlines()
    assert uvis_visit.poller.name == "isim01_input.out"
    assert len(rows) == 4
    table = ascii.read(uvis_visit.poller, format="no_header", delimiter=",",
                       converters={"col4": [ascii.convert_numpy(np.str_)]})
    assert len(table.colnames) == 8
    for row, exposure in zip(table, uvis_visit.exposures):
        assert row["col1"] == exposure.path.name
        assert row["col2"] == 17001
        assert row["col3"] == "SIM"
        assert str(row["col4"]) == "01"
        assert float(row["col5"]) == exposure.exptime
        assert row["col6"] == exposure.filter
        assert row["col7"] == "UVIS"
        assert row["col8"] == str(exposure.path.resolve())
    assert uvis_visit.input_list.read_text().split() == [p.name for p in uvis_visit.files]


def test_acs_poller_lists_both_filter_wheels(tmp_path):
    result = _small(tmp_path, "acs-hrc", n_exposures=2, filters="F606W,F814W")
    filters = [line.split(",")[5] for line in result.poller.read_text().splitlines()]
    assert filters == ["F606W;CLEAR2S", "CLEAR1S;F814W"]


def test_reference_catalogue_looks_like_gaia(uvis_visit):
    refcat = Table.read(uvis_visit.refcat)
    sky = Table.read(uvis_visit.sky_catalog)
    assert refcat.colnames == REFCAT_COLUMNS
    assert len(refcat) > 0
    assert np.all(refcat["epoch"] == 2016.0) and np.all(refcat["mag"] < 21.0)
    assert np.all(refcat["RA_error"] > 0) and str(refcat["RA_error"].unit) == "mas"
    truth = sky[np.searchsorted(sky["objID"], refcat["objID"])]
    assert np.all(truth["kind"] == "star")
    # Moving the truth (at the visit epoch) back to 2016 with its proper motion gives the
    # catalogue position within a few quoted errors.
    years = 2016.0 - truth["epoch"]
    ddec = (truth["dec"] + truth["pmdec"] * years / 3.6e6 - refcat["DEC"]) * 3.6e6
    assert np.all(np.abs(ddec) < 6 * refcat["DEC_error"] + 1e-6)


def test_sky_catalogue_holds_stars_and_galaxies(uvis_visit):
    sky = Table.read(uvis_visit.sky_catalog)
    assert set(sky["kind"]) == {"star", "galaxy"}
    galaxies = sky[sky["kind"] == "galaxy"]
    assert np.all(galaxies["r_eff"] > 0) and set(galaxies["sersic_n"]) <= {1.0, 4.0}
    stars = sky[sky["kind"] == "star"]
    # A realistic luminosity function: many more faint stars than bright ones.
    assert np.sum(stars["mag_v"] > 24) > 3 * np.sum(stars["mag_v"] < 20)


def test_crowded_field_adds_a_cluster(tmp_path):
    sparse = _small(tmp_path, "acs-hrc", name="sparse", n_exposures=1, shape=64)
    crowded = _small(tmp_path, "acs-hrc", name="crowded", n_exposures=1, shape=64, crowded=True)
    assert len(Table.read(crowded.sky_catalog)) > 10 * len(Table.read(sparse.sky_catalog))


# ----------------------------------------------------------------------------- pixels


def _digest(path):
    digest = hashlib.sha256()
    with fits.open(path) as hdul:
        for hdu in hdul:
            if hdu.name in ("SCI", "ERR", "DQ"):
                digest.update(hdu.data.tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("instrument", ["wfc3-uvis", "wfc3-ir", "acs-hrc", "acs-wfc"])
def test_same_seed_gives_identical_bytes(tmp_path, instrument):
    first = _small(tmp_path, instrument, name="a", seed=99, shape=96)
    second = _small(tmp_path, instrument, name="b", seed=99, shape=96)
    third = _small(tmp_path, instrument, name="c", seed=100, shape=96)
    for a, b, c in zip(first.files, second.files, third.files):
        assert _digest(a) == _digest(b)
        assert a.read_bytes() == b.read_bytes()  # headers too
        assert _digest(a) != _digest(c)
    for a, b in zip(first.crmasks, second.crmasks):
        assert a.read_bytes() == b.read_bytes()
    assert first.refcat.read_bytes() == second.refcat.read_bytes()
    assert first.sky_catalog.read_bytes() == second.sky_catalog.read_bytes()


def test_sky_depends_only_on_the_seed_and_field(tmp_path):
    """Subarray, number of exposures, roll and exposure times do not change the sky."""
    a = _small(tmp_path, "wfc3-ir", name="a", n_exposures=1, shape=64, seed=5)
    b = _small(tmp_path, "wfc3-ir", name="b", n_exposures=3, shape=(100, 300), seed=5,
               roll_deg=3.0, exptime=np.array([50.0, 60.0, 70.0]))
    assert a.sky_catalog.read_bytes() == b.sky_catalog.read_bytes()
    assert a.refcat.read_bytes() == b.refcat.read_bytes()
    assert [e.exptime for e in b.exposures] == [50.0, 60.0, 70.0]


@pytest.mark.parametrize("instrument", ["wfc3-uvis", "acs-hrc", "acs-wfc"])
def test_cosmic_ray_masks_match_the_pixels(tmp_path, instrument):
    """With and without cosmic rays (same seed), pixels differ exactly where the mask is set."""
    with_cr = _small(tmp_path, instrument, name="cr", n_exposures=1, defects=False)
    without = _small(tmp_path, instrument, name="nocr", n_exposures=1, defects=False,
                     cosmic_rays=False)
    with fits.open(with_cr.files[0]) as a, fits.open(without.files[0]) as b, \
            fits.open(with_cr.crmasks[0]) as masks:
        assert [h.name for h in masks[1:]] == ["CRMASK"] * n_chips(a)
        for chip in range(1, n_chips(a) + 1):
            mask = masks["CRMASK", chip].data.astype(bool)
            assert masks["CRMASK", chip].header["EXTVER"] == chip
            assert mask.any() and mask.mean() < 0.05
            diff = a["SCI", chip].data.astype(np.float64) - b["SCI", chip].data
            saturated = (a["DQ", chip].data & DQ.SATURATED) > 0
            changed = np.abs(diff) > 0
            assert np.array_equal(changed & ~saturated, mask & ~saturated)
            assert np.all(diff[mask & ~saturated] >= 25.0 - 1e-3)  # deposits are >= 25 e-
            assert masks["CRMASK", chip].header["NCRHITS"] > 0


def test_ir_cosmic_rays_are_flagged_not_added(tmp_path):
    with_cr = _small(tmp_path, "wfc3-ir", name="cr", n_exposures=1)
    without = _small(tmp_path, "wfc3-ir", name="nocr", n_exposures=1, cosmic_rays=False)
    with fits.open(with_cr.files[0]) as a, fits.open(without.files[0]) as b, \
            fits.open(with_cr.crmasks[0]) as masks:
        mask = masks["CRMASK", 1].data.astype(bool)
        assert mask.any()
        np.testing.assert_array_equal(a["SCI", 1].data, b["SCI", 1].data)
        np.testing.assert_array_equal((a["DQ", 1].data & DQ.CR_IN_RAMP) > 0, mask)


def test_cosmic_ray_rate_scales_with_exposure_time(tmp_path):
    short = _small(tmp_path, "wfc3-uvis", name="short", n_exposures=1, exptime=100.0)
    long_ = _small(tmp_path, "wfc3-uvis", name="long", n_exposures=1, exptime=800.0)
    hits = []
    for result in (short, long_):
        with fits.open(result.crmasks[0]) as masks:
            hits.append(sum(masks["CRMASK", c].header["NCRHITS"] for c in (1, 2)))
    assert 5.0 < hits[1] / hits[0] < 12.0


@pytest.mark.parametrize("instrument", ["wfc3-uvis", "wfc3-ir", "acs-hrc", "acs-wfc"])
def test_dq_flags_saturation_hot_pixels_and_bad_columns(tmp_path, instrument):
    det = get_detector(instrument)
    # Full-height windows of the two-chip CCDs, so the bad columns (>= 1/4 of the chip) show.
    shape = {"wfc3-uvis": (2051, 1200), "acs-wfc": (2048, 1200)}.get(instrument)
    # Seeds whose randomly placed bad columns cross those windows on both chips.
    seed = 3 if instrument == "acs-wfc" else 8
    result = simulate_visit(tmp_path / "full", instrument, 1, seed=seed, noise=False,
                            cosmic_rays=False, shape=shape, star_density=3 * det.star_density)
    exptime = result.exposures[0].exptime
    allowed = DQ.HOT_PIXEL | det.bad_column_bit | DQ.SATURATED
    sky = det.filter(det.default_filter).sky_rate * exptime
    with fits.open(result.files[0]) as hdul:
        flags = [hdul["DQ", c].data for c in range(1, n_chips(hdul) + 1)]
        data = [hdul["SCI", c].data.astype(np.float64) for c in range(1, n_chips(hdul) + 1)]
    dq = np.concatenate([f.ravel() for f in flags])
    sci = np.concatenate([d.ravel() for d in data])
    if det.in_rate_units:
        sci = sci * exptime
    assert np.all((dq & ~allowed) == 0)
    saturated = (dq & DQ.SATURATED) > 0
    assert saturated.any()
    if det.cr_in_pixels:  # CCD: saturated pixels sit at full well (dark already subtracted)
        full = sci[saturated & ((dq & det.bad_column_bit) == 0)]
        assert np.allclose(full, det.full_well - det.dark_rate * exptime, rtol=1e-5)
    hot = (dq & DQ.HOT_PIXEL) > 0
    assert hot.mean() == pytest.approx(det.hot_fraction, rel=0.3)
    assert np.median(sci[hot & ~saturated]) > sky + 0.01 * exptime  # >= 0.02 e-/s extra dark
    bad = (dq & det.bad_column_bit) > 0
    assert bad.any()
    assert np.median(sci[bad & ~hot]) < 0.2 * sky


def test_error_array_is_consistent_with_the_noise(tmp_path):
    result = _small(tmp_path, "wfc3-uvis", n_exposures=1, shape=(300, 300), cosmic_rays=False,
                    defects=False, star_density=0.0, galaxy_density=0.0)
    with fits.open(result.files[0]) as hdul:
        for chip in (1, 2):
            sci = hdul["SCI", chip].data.astype(np.float64)
            err = hdul["ERR", chip].data.astype(np.float64)
            assert np.std(sci) == pytest.approx(np.median(err), rel=0.03)
            assert np.mean(sci) == pytest.approx(0.05 * 400.0, rel=0.01)


def test_noise_free_option_is_smooth(tmp_path):
    result = _small(tmp_path, "wfc3-ir", n_exposures=1, noise=False, cosmic_rays=False,
                    defects=False, star_density=0.0, galaxy_density=0.0)
    with fits.open(result.files[0]) as hdul:
        sci = hdul["SCI", 1].data
        assert np.ptp(sci) == pytest.approx(0.0, abs=1e-6)
        assert sci[0, 0] == pytest.approx(0.6, rel=1e-6)  # F160W sky, electrons per second


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("kwargs, message", [
    ({"instrument": "nicmos"}, "instrument"),
    ({"filters": "F999W"}, "F999W"),
    ({"filters": ""}, "filters"),
    ({"filters": "F555W,F555W"}, "repeat"),
    ({"n_exposures": 0}, "n_exposures"),
    ({"n_exposures": 1, "filters": "F555W,F814W"}, "number of filters"),
    ({"n_exposures": 2.5}, "n_exposures"),
    ({"seed": -1}, "seed"),
    ({"seed": "abc"}, "seed"),
    ({"exptime": -5.0}, "exptime"),
    ({"exptime": [100.0]}, "exptime"),
    ({"shape": (10, 10)}, "shape"),
    ({"shape": (100, 5000)}, "shape"),
    ({"shape": "big"}, "shape"),
    ({"target": (10.0, 90.0)}, "dec"),
    ({"target": 5.0}, "target"),
    ({"roll_deg": float("nan")}, "roll_deg"),
    ({"program_id": "toolong"}, "program_id"),
    ({"visit": "!!"}, "visit"),
    ({"cr_rate": -1.0}, "cr_rate"),
    ({"proposal_id": 0}, "proposal_id"),
    ({"wcs_error": "big"}, "wcs_error"),
    ({"wcs_error": 100.0}, "shift_arcsec"),
    ({"wcs_error": {"rotation_deg": float("inf")}}, "rotation_deg"),
])
def test_bad_arguments_raise_named_errors(tmp_path, kwargs, message):
    kwargs = {"instrument": "wfc3-uvis", "n_exposures": 2, **kwargs}
    with pytest.raises(InvalidParameterError, match=message):
        simulate_visit(tmp_path / "never", **kwargs)
    assert not (tmp_path / "never").exists()


def test_outdir_that_is_a_file_is_rejected(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(InvalidParameterError, match="not a folder"):
        simulate_visit(target, shape=64)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "product.fits"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_text("complete")
    assert target.read_text() == "complete" and len(list(tmp_path.iterdir())) == 1


# ----------------------------------------------------------------------------- CLI


def test_cli_writes_a_visit(tmp_path):
    out = tmp_path / "cli"
    code = main(["-q", "simulate", "visit", str(out), "--instrument", "acs-hrc",
                 "--n-exposures", "3", "--filters", "F555W,F814W", "--seed", "3", "--crowded",
                 "--shape", "64", "--roll", "2", "--no-progress"])
    assert code == 0
    files = sorted(out.glob("jsim01??q_flt.fits"))
    assert len(files) == 3
    assert (out / "refcat.ecsv").exists() and (out / "jsim01_input.out").exists()
    assert (out / "input.lst").read_text().split() == [f.name for f in files]
    assert len(list((out / "truth").glob("*_crmask.fits"))) == 3
    with fits.open(files[-1]) as hdul:
        assert hdul[0].header["FILTER2"] == "F814W"


def test_cli_defaults_follow_the_instrument(tmp_path):
    out = tmp_path / "ir"
    assert main(["-q", "simulate", "visit", str(out), "--instrument", "wfc3-ir",
                 "--n-exposures", "1", "--shape", "64,80", "--no-progress"]) == 0
    with fits.open(next(out.glob("*_flt.fits"))) as hdul:
        assert hdul[0].header["FILTER"] == "F160W"
        assert hdul["SCI", 1].data.shape == (64, 80)


def test_cli_reports_bad_arguments(tmp_path):
    assert main(["-q", "simulate", "visit", str(tmp_path / "x"), "--filters", "F999W"]) == 1
    assert main(["-q", "simulate", "visit", str(tmp_path / "y"), "--n-exposures", "0"]) == 1
    assert main(["simulate", "visit", str(tmp_path / "z"), "--instrument", "wfpc2"]) == 2
