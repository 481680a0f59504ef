"""runastrodriz initialisation (hap-pipeline.md §3.1) and pipeline-default WCS (§3.2)."""

from __future__ import annotations

import logging
import shutil
import warnings

import numpy as np
import pytest
from astropy.io import fits

from hapgpu.errors import InvalidInputError, InvalidParameterError
from hapgpu.runastrodriz._init import (
    ENV_APPLY_APRIORI,
    ENV_COMPUTE_APOSTERIORI,
    ENV_QUALITY_TESTING,
    ENV_RESET_IDCTAB,
    add_sregion,
    apply_pipeline_default,
    env_switch,
    prepare_inputs,
    read_association,
    read_drizcorr,
    read_switches,
    select_good_images,
    trailer_logging,
    trailer_root,
    working_directory,
    write_pipeline_asn,
)

ASN = "isim01010_asn.fits"
MEMBERS = ["isim01a0q", "isim01a1q"]


def _set(path, key, value, ext=0):
    with fits.open(path, mode="update") as hdul:
        hdul[ext].header[key] = value


def _wcsname(path) -> str:
    return fits.getval(path, "WCSNAME", ext=("SCI", 1))


# ----------------------------------------------------------------------------- names, switches
@pytest.mark.parametrize("name, root", [
    ("j8cw04010_asn.fits", "j8cw04010"),
    ("ib4606c5q_raw.fits", "ib4606c5q"),
    ("ib4606c5q_flc.fits", "ib4606c5q"),
    ("dir/ib4606c5q_flt.fits", "ib4606c5q"),
    ("noseparator.fits", "noseparator.fits"),
    ("_odd.fits", "_odd.fits"),
])
def test_trailer_root(name, root):
    assert trailer_root(name) == root


@pytest.mark.parametrize("value, expected", [("on", True), ("YES", True), ("True", True),
                                             ("off", False), ("No", False), ("FALSE", False)])
def test_env_switch_values(monkeypatch, value, expected):
    monkeypatch.setenv(ENV_APPLY_APRIORI, value)
    assert env_switch(ENV_APPLY_APRIORI, not expected) is expected


def test_env_switch_default_and_bad_value(monkeypatch):
    monkeypatch.delenv(ENV_RESET_IDCTAB, raising=False)
    assert env_switch(ENV_RESET_IDCTAB, False) is False
    monkeypatch.setenv(ENV_RESET_IDCTAB, "maybe")
    with pytest.raises(InvalidParameterError, match="PIPELINE_RESET_IDCTAB='maybe'"):
        env_switch(ENV_RESET_IDCTAB, False)


def test_switches_defaults_and_overrides(monkeypatch):
    for name in (ENV_APPLY_APRIORI, ENV_COMPUTE_APOSTERIORI, ENV_RESET_IDCTAB, ENV_QUALITY_TESTING):
        monkeypatch.delenv(name, raising=False)
    s = read_switches(align_to_gaia=True)
    assert (s.compute_aposteriori, s.apply_apriori, s.reset_idctab, s.quality_testing) == (
        True, True, False, False)
    assert read_switches(align_to_gaia=False).compute_aposteriori is False  # -g
    # the environment always wins over -g
    monkeypatch.setenv(ENV_COMPUTE_APOSTERIORI, "on")
    monkeypatch.setenv(ENV_APPLY_APRIORI, "off")
    monkeypatch.setenv(ENV_QUALITY_TESTING, "yes")
    s = read_switches(align_to_gaia=False)
    assert (s.compute_aposteriori, s.apply_apriori, s.quality_testing) == (True, False, True)


def test_trailer_logging_adds_and_removes_handler(tmp_path):
    logger = logging.getLogger("hapgpu")
    before = list(logger.handlers)
    trailer = tmp_path / "x.tra"
    with trailer_logging(trailer):
        logging.getLogger("hapgpu.runastrodriz.test").info("to the trailer")
        logging.getLogger("hapgpu.runastrodriz.test").debug("not without debug")
    logging.getLogger("hapgpu.runastrodriz.test").info("after the run")
    assert logger.handlers == before
    text = trailer.read_text()
    assert "[INFO    ] to the trailer" in text
    assert "not without debug" not in text and "after the run" not in text
    with trailer_logging(trailer, debug=True):
        logging.getLogger("hapgpu.runastrodriz.test").debug("with debug")
    assert "[DEBUG:hapgpu.runastrodriz.test] with debug" in trailer.read_text()


# ----------------------------------------------------------------------------- associations
def test_association_members_and_lower_case_copy(rad_dir):
    asn = read_association(rad_dir / ASN)
    assert asn.members == MEMBERS and asn.product == "isim01010"
    copy = write_pipeline_asn(rad_dir / ASN)
    assert copy.name == "isim01010_pipeline_asn.fits"
    with fits.open(copy) as hdul:
        names = [str(n).strip() for n in hdul[1].data["MEMNAME"]]
    assert names == MEMBERS + ["isim01010"]
    with fits.open(rad_dir / ASN) as hdul:  # the original is untouched
        assert str(hdul[1].data["MEMNAME"][0]).strip() == "ISIM01A0Q"


def test_association_skips_absent_members(rad_dir):
    with fits.open(rad_dir / ASN, mode="update") as hdul:
        hdul[1].data["MEMPRSNT"][1] = False
    assert read_association(rad_dir / ASN).members == MEMBERS[:1]
    with fits.open(rad_dir / ASN, mode="update") as hdul:
        hdul[1].data["MEMPRSNT"][0] = False
    with pytest.raises(InvalidInputError, match="isim01010_asn.fits: the association lists no exposure"):
        read_association(rad_dir / ASN)


def test_not_an_association(tmp_path):
    bad = tmp_path / "bad_asn.fits"
    fits.PrimaryHDU().writeto(bad)
    with pytest.raises(InvalidInputError, match="bad_asn.fits: not an association table"):
        read_association(bad)


def test_prepare_association_flc_only(rad_dir):
    run = prepare_inputs(rad_dir / ASN)
    assert run.is_asn and run.root == "isim01010" and run.product_root == "isim01010"
    assert [p.name for p in run.calfiles] == [f"{m}_flc.fits" for m in MEMBERS]
    assert run.calfiles_flc == []
    assert len(run.inlist) == 1 and run.inlist[0].product == rad_dir / "isim01010_drc.fits"
    assert run.trailer == rad_dir / "isim01010.tra"
    assert run.manifest == rad_dir / "isim01010_manifest.txt"


def test_prepare_association_with_flt_and_flc(rad_dir):
    for m in MEMBERS:  # an FLT beside each FLC: drizzlepac's duplicated-member case
        shutil.copy2(rad_dir / f"{m}_flc.fits", rad_dir / f"{m}_flt.fits")
    run = prepare_inputs(rad_dir / ASN)
    assert [p.name for p in run.calfiles] == [f"{m}_flt.fits" for m in MEMBERS]
    assert [p.name for p in run.calfiles_flc] == [f"{m}_flc.fits" for m in MEMBERS]
    assert [i.product.name for i in run.inlist] == ["isim01010_drz.fits", "isim01010_drc.fits"]
    assert [len(i.files) for i in run.inlist] == [2, 2]


@pytest.mark.parametrize("given", ["isim01a0q_raw.fits", "isim01a0q_flc.fits"])
def test_prepare_singleton(rad_dir, given):
    run = prepare_inputs(rad_dir / given)
    assert not run.is_asn and run.root == "isim01a0q" and run.member == "isim01a0q"
    assert run.calfiles == [rad_dir / "isim01a0q_flc.fits"] and run.calfiles_flc == []
    assert run.input_product == rad_dir / "isim01a0q_flc.fits"
    assert run.inlist[0].product == rad_dir / "isim01a0q_drc.fits"


def test_prepare_singleton_flt_with_flc(rad_dir):
    shutil.copy2(rad_dir / "isim01a0q_flc.fits", rad_dir / "isim01a0q_flt.fits")
    run = prepare_inputs(rad_dir / "isim01a0q_raw.fits")
    assert run.calfiles == [rad_dir / "isim01a0q_flt.fits"]
    assert run.calfiles_flc == [rad_dir / "isim01a0q_flc.fits"]
    assert [i.product.name for i in run.inlist] == ["isim01a0q_drz.fits", "isim01a0q_drc.fits"]
    # a calibrated input names only itself (drizzlepac: the FLC is not added to an FLC input)
    run = prepare_inputs(rad_dir / "isim01a0q_flc.fits")
    assert run.calfiles == [rad_dir / "isim01a0q_flc.fits"] and run.calfiles_flc == []


def test_prepare_bad_inputs(rad_dir):
    with pytest.raises(InvalidInputError, match="nothere_asn.fits: input file not found"):
        prepare_inputs(rad_dir / "nothere_asn.fits")
    (rad_dir / "isim01a0q_flc.fits").unlink()
    with pytest.raises(InvalidInputError, match="isim01a0q_raw.fits: no calibrated exposure"):
        prepare_inputs(rad_dir / "isim01a0q_raw.fits")
    shutil.copy2(rad_dir / "refcat.ecsv", rad_dir / "odd.txt")
    with pytest.raises(InvalidInputError, match="odd.txt: not an association"):
        prepare_inputs(rad_dir / "odd.txt")


def test_association_member_without_calibrated_file(rad_dir, caplog):
    (rad_dir / "isim01a1q_flc.fits").unlink()
    with caplog.at_level(logging.WARNING, logger="hapgpu"):
        run = prepare_inputs(rad_dir / ASN)
    assert [p.name for p in run.calfiles] == ["isim01a0q_flc.fits"]
    assert "isim01a1q" in caplog.text


# ----------------------------------------------------------------------------- DRIZCORR
def test_drizcorr_from_raw(rad_dir, caplog):
    raw = rad_dir / "isim01a0q_raw.fits"
    assert read_drizcorr(raw) == "PERFORM"
    _set(raw, "DRIZCORR", "omit")
    assert read_drizcorr(raw) == "OMIT"
    raw.unlink()  # no RAW: the calibrated file's switch, with a warning naming the RAW file
    with caplog.at_level(logging.WARNING, logger="hapgpu"):
        assert read_drizcorr(raw, rad_dir / "isim01a0q_flc.fits") == "PERFORM"
    assert "isim01a0q_raw.fits not found" in caplog.text
    with pytest.raises(InvalidInputError, match="isim01a0q_raw.fits: RAW file not found"):
        read_drizcorr(raw)


# ----------------------------------------------------------------------------- newpath
def test_working_directory_copies_and_moves_back(rad_dir, tmp_path):
    scratch = tmp_path / "scratch"
    unrelated = rad_dir / "zzz_other.fits"
    unrelated.write_bytes(b"x")
    with working_directory(rad_dir / ASN, scratch) as work:
        assert work == scratch / "isim01010"
        names = sorted(p.name for p in work.iterdir())
        assert names == sorted([ASN, "isim01a0q_flc.fits", "isim01a0q_raw.fits",
                                "isim01a1q_flc.fits", "isim01a1q_raw.fits"])
        (work / "isim01010_drc.fits").write_bytes(b"product")
        (work / "isim01a0q_flc.fits").write_bytes(b"updated")
    assert not (scratch / "isim01010").exists()
    assert (rad_dir / "isim01010_drc.fits").read_bytes() == b"product"
    assert (rad_dir / "isim01a0q_flc.fits").read_bytes() == b"updated"


def test_working_directory_without_newpath(rad_dir):
    with working_directory(rad_dir / ASN) as work:
        assert work == rad_dir


# ----------------------------------------------------------------------------- headers
def test_sregion_on_inputs(rad_dir):
    files = [rad_dir / f"{m}_flc.fits" for m in MEMBERS]
    for f in files:
        with fits.open(f, mode="update") as hdul:
            for hdu in hdul:
                hdu.header.pop("S_REGION", None)
    add_sregion(files)
    from stwcs.wcsutil import HSTWCS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in files:
            for chip in (1, 2):
                text = fits.getval(f, "S_REGION", ext=("SCI", chip))
                values = np.array(text.split()[2:], float).reshape(-1, 2)
                corners = HSTWCS(str(f), ext=("SCI", chip)).calc_footprint(center=True)
                assert values.shape == (5, 2)
                np.testing.assert_allclose(values[:4], corners, atol=1e-9)
                np.testing.assert_array_equal(values[4], values[0])


def test_pipeline_default_restored_from_headerlet(rad_dir):
    path = rad_dir / "isim01a0q_flc.fits"
    assert _wcsname(path) == "IDC_2731450pi-GSC240"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(path) as hdul:
            hlet = next(h for h in hdul if h.name == "HDRLET"
                        and h.header["WCSNAME"] == "IDC_2731450pi")
            crval = hlet.headerlet[("SIPWCS", 1)].header["CRVAL1"]
    assert apply_pipeline_default([path]) == {path: "IDC_2731450pi"}
    assert _wcsname(path) == "IDC_2731450pi"
    assert fits.getval(path, "CRVAL1", ext=("SCI", 1)) == pytest.approx(crval, rel=1e-13)
    assert "HDRNAME" not in fits.getheader(path, ("SCI", 1))
    # the replaced a priori solution is still in the file, and a second call changes nothing
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(path) as hdul:
            assert "IDC_2731450pi-GSC240" in [h.header.get("WCSNAME") for h in hdul if h.name == "HDRLET"]
    before = path.read_bytes()
    apply_pipeline_default([path])
    assert path.read_bytes() == before


def test_pipeline_default_missing_headerlet_keeps_wcs(rad_dir, caplog):
    path = rad_dir / "isim01a0q_flc.fits"
    with caplog.at_level(logging.WARNING, logger="hapgpu"):
        result = apply_pipeline_default([path], idctab="iref$zzzzzzzzz_idc.fits")
    assert result == {path: "IDC_2731450pi-GSC240"}
    assert "no IDC_zzzzzzzzz headerlet" in caplog.text
    _set(path, "IDCTAB", "N/A")
    with pytest.raises(InvalidInputError, match="isim01a0q_flc.fits: primary header has no IDCTAB"):
        apply_pipeline_default([path])


def test_good_images(rad_dir):
    a, b = (rad_dir / f"{m}_flc.fits" for m in MEMBERS)
    assert select_good_images([a, b]) == [a, b]
    _set(a, "EXPTIME", 0.0)
    _set(b, "NGOODPIX", 0, ext=("SCI", 1))
    assert select_good_images([a, b]) == []
    with pytest.raises(InvalidInputError, match="refcat.ecsv"):
        select_good_images([rad_dir / "refcat.ecsv"])
