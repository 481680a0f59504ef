"""``hapgpu runastrodriz`` end to end on a simulated WFC3/UVIS association, and every option of
its command line (hap-pipeline.md §3.1, §3.2, §3.10, §5).

The a priori stage is switched off (``ASTROMETRY_APPLY_APRIORI=off``) and ``-g`` skips the a
posteriori stage: the runs here drizzle the pipeline-default WCS, so they exercise the
initialisation, the final products and the wrap-up.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from hapgpu.cli import main
from hapgpu.runastrodriz import process
from hapgpu.runastrodriz._init import Switches, prepare_inputs
from hapgpu.runastrodriz._pipeline import EXIT_NO_VIABLE_DATA, _check_guiding

from .conftest import copy_visit

ASN = "isim01010_asn.fits"
MEMBERS = ("isim01a0q", "isim01a1q")


@pytest.fixture(autouse=True)
def _offline_stages(monkeypatch, tmp_path):
    # a current directory apart from the inputs: nothing may be written there
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("ASTROMETRY_APPLY_APRIORI", "off")
    for name in ("ASTROMETRY_COMPUTE_APOSTERIORI", "PIPELINE_RESET_IDCTAB", "PIPELINE_QUALITY_TESTING"):
        monkeypatch.delenv(name, raising=False)


def _cli(*args) -> int:
    return main(["--backend", "cpu", "runastrodriz", *map(str, args)])


def _set(path, key, value, ext=0):
    with fits.open(path, mode="update") as hdul:
        hdul[ext].header[key] = value


def _headerlet_files(folder: Path) -> list:
    return sorted(p.name for p in folder.glob("*_hlet.fits"))


def _inputs_of(product: Path) -> list:
    with fits.open(product) as hdul:
        return sorted({str(hdul[0].header[k]).split("[")[0] for k in hdul[0].header
                       if k.startswith("D0") and k.endswith("DATA")})


# ----------------------------------------------------------------------------- the full run
@pytest.fixture(scope="module")
def asn_run(uvis_association, tmp_path_factory):
    """``hapgpu runastrodriz isim01010_asn.fits -g -m`` (QA switch on) on a copy of the visit."""
    work = copy_visit(uvis_association, tmp_path_factory.mktemp("rad_asn") / "work")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ASTROMETRY_APPLY_APRIORI", "off")
        mp.setenv("PIPELINE_QUALITY_TESTING", "on")
        mp.chdir(work)  # the trailer and products go beside the input, not into the cwd
        rc = _cli(work / ASN, "-g", "-m")
    return rc, work


@pytest.mark.slow
def test_association_product(asn_run):
    rc, work = asn_run
    assert rc == 0
    product = work / "isim01010_drc.fits"
    with fits.open(product) as hdul:
        primary, sci = hdul[0].header, hdul["SCI", 1].header
        data, wht = hdul["SCI", 1].data, hdul["WHT", 1].data
    assert primary["DRIZCORR"] == "COMPLETE"
    assert primary["DRIZPARS"] == "isim01010.tra"
    assert sci["S_REGION"].startswith("POLYGON ICRS ")
    # the default output frame: the native scale (IDCSCALE), as the single drizzles have
    idcscale = fits.getval(work / "isim01a0q_flc.fits", "IDCSCALE", ext=("SCI", 1))
    scale = 3600 * np.sqrt(abs(sci["CD1_1"] * sci["CD2_2"] - sci["CD1_2"] * sci["CD2_1"]))
    assert scale == pytest.approx(idcscale, rel=1e-6)
    assert np.isfinite(data).mean() > 0.3  # two 128x128 chip windows with a gap
    assert np.array_equal(np.isfinite(data), wht > 0)  # final_fillval INDEF off the inputs
    assert _inputs_of(product) == [f"{m}_flc.fits" for m in MEMBERS]
    # the lower-case association copy is a temporary: deleted, and nothing half-written left
    assert not (work / "isim01010_pipeline_asn.fits").exists()
    assert not list(work.glob(".*"))


@pytest.mark.slow
def test_association_inputs_updated(asn_run):
    _, work = asn_run
    for m in MEMBERS:
        path = work / f"{m}_flc.fits"
        for chip in (1, 2):
            sci = fits.getheader(path, ("SCI", chip))
            assert sci["WCSNAME"] == "IDC_2731450pi"   # pipeline default, restored offline
            assert sci["WCSTYPE"] == "undistorted not aligned"
            assert sci["WCSNAMEO"] == "OPUS" and sci["WCSTYPEO"] == "pipeline default not aligned"
            keys = [k[len("WCSNAME"):] for k in sci if k.startswith("WCSNAME")]
            assert all(f"WCSTYPE{k}" in sci for k in keys)
            assert sci["SKYCELL"].startswith("p") and sci["S_REGION"].startswith("POLYGON ICRS")


@pytest.mark.slow
def test_association_headerlets_manifest_trailer(asn_run):
    _, work = asn_run
    assert _headerlet_files(work) == [f"{m}_flt_hlet.fits" for m in MEMBERS]
    with fits.open(work / "isim01a0q_flt_hlet.fits") as hdul:
        assert hdul[0].header["WCSNAME"] == "IDC_2731450pi"
        assert hdul[0].header["AUTHOR"] == "OPUS"
        assert hdul[0].header["HDRNAME"] == "isim01a0q_flc_hlet.fits"
        assert hdul[0].header["DESCRIP"] == "undistorted not aligned"
    manifest = (work / "isim01010_manifest.txt").read_text().splitlines()
    assert manifest == ["isim01010_drc.fits", "isim01a0q_flc.fits", "isim01a1q_flc.fits",
                        "isim01a0q_flt_hlet.fits", "isim01a1q_flt_hlet.fits", "isim01010.tra"]
    trailer = (work / "isim01010.tra").read_text()
    assert "runastrodriz of isim01010_asn.fits" in trailer
    assert "MDRIZTAB: AstroDrizzle parameters read from row 2" in trailer
    assert "final drizzle of isim01a0q_flc.fits, isim01a1q_flc.fits into isim01010_drc.fits" in trailer
    assert "PIPELINE_QUALITY_TESTING is set" in trailer
    assert "a posteriori off" in trailer and "Starting a posteriori" not in trailer  # -g
    assert not (work / "headerlet.log").exists()


# ----------------------------------------------------------------------------- options
@pytest.mark.slow
def test_singleton_newpath_force_no_headerlets(rad_dir, tmp_path):
    """``-f`` drizzles although DRIZCORR = OMIT; ``-b`` writes no headerlet; NEWPATH is a
    scratch folder whose files come back; ``-i`` and ``-n`` are accepted."""
    _set(rad_dir / "isim01a0q_raw.fits", "DRIZCORR", "OMIT")
    scratch = tmp_path / "scratch"
    rc = _cli(rad_dir / "isim01a0q_raw.fits", scratch, "-g", "-f", "-b", "-i", "-n", "2")
    assert rc == 0
    product = rad_dir / "isim01a0q_drc.fits"
    assert fits.getval(product, "DRIZCORR") == "COMPLETE"
    assert _inputs_of(product) == ["isim01a0q_flc.fits"]
    # a singleton's input product is its calibrated file
    assert fits.getval(rad_dir / "isim01a0q_flc.fits", "DRIZCORR") == "COMPLETE"
    assert _headerlet_files(rad_dir) == []
    assert (rad_dir / "isim01a0q.tra").exists()
    assert list(scratch.iterdir()) == []  # <newpath>/<rootname> removed after the move back
    assert not (rad_dir / "isim01a0q_manifest.txt").exists()  # no -m


@pytest.mark.slow
def test_verify_guiding_drops_bad_exposure(rad_dir):
    """``-v``: an exposure whose header reports a guide-star failure is left out."""
    _set(rad_dir / "isim01a1q_flc.fits", "QUALITY", "GSFAIL")
    assert _cli(rad_dir / ASN, "-g", "-v") == 0
    assert _inputs_of(rad_dir / "isim01010_drc.fits") == ["isim01a0q_flc.fits"]
    trailer = (rad_dir / "isim01010.tra").read_text()
    assert "isim01a1q_flc.fits: bad guiding" in trailer
    assert "alignment turned off after the bad-guiding result" in trailer  # no -a


def test_guiding_switches(rad_dir):
    """``-a`` keeps the alignment stages after bad guiding; ``-f`` keeps the exposure."""
    _set(rad_dir / "isim01a1q_flc.fits", "QUALITY", "GSFAIL")
    on = Switches(True, True, False, False)
    run = prepare_inputs(rad_dir / ASN)
    assert _check_guiding(run, False, False, on) == Switches(False, False, False, False)
    assert [p.name for p in run.calfiles] == ["isim01a0q_flc.fits"]
    assert [len(i.files) for i in run.inlist] == [1]
    run = prepare_inputs(rad_dir / ASN)
    assert _check_guiding(run, True, True, on) == on
    assert len(run.calfiles) == 2


def test_drizcorr_omit_is_skipped(rad_dir):
    """DRIZCORR = OMIT without ``-f``: "skipped" trailer lines, no product, exit 0; the input
    keywords and headerlets are still written, the stage folders removed."""
    _set(rad_dir / "isim01a0q_raw.fits", "DRIZCORR", "OMIT")
    (rad_dir / "pipeline-default").mkdir()
    (rad_dir / "isim01010_apriori").mkdir()
    (rad_dir / "old_mask.fits").write_bytes(b"")
    for name in ("isim01a0q_single_sci.fits", "isim01a1q_sci2_blt.fits", "isim01010_med.fits",
                 "isim01010_128x128_1_staticMask.fits"):
        (rad_dir / name).write_bytes(b"")  # a verification drizzle's intermediates
    assert _cli(rad_dir / ASN, "-g") == 0
    assert not list(rad_dir.glob("*_dr?.fits"))
    trailer = (rad_dir / "isim01010.tra").read_text()
    assert "astrodrizzle skipped" in trailer and "astrodrizzle will not be run" in trailer
    assert _headerlet_files(rad_dir) == [f"{m}_flt_hlet.fits" for m in MEMBERS]
    sci = fits.getheader(rad_dir / "isim01a0q_flc.fits", ("SCI", 1))
    assert sci["WCSNAME"] == "IDC_2731450pi-GSC240"  # no pipeline-default update when skipped
    assert sci["WCSTYPE"] == "undistorted a priori solution based on GSC240"
    assert not (rad_dir / "pipeline-default").exists() and not (rad_dir / "isim01010_apriori").exists()
    assert not (rad_dir / "old_mask.fits").exists()
    assert not list(rad_dir.glob("*_single_sci.fits")) and not list(rad_dir.glob("*_blt.fits"))
    assert not (rad_dir / "isim01010_med.fits").exists()
    assert not list(rad_dir.glob("*staticMask.fits"))


def test_debug_keeps_subfolders(rad_dir):
    _set(rad_dir / "isim01a0q_raw.fits", "DRIZCORR", "OMIT")
    (rad_dir / "isim01010_aposteriori").mkdir()
    (rad_dir / "old_mask.fits").write_bytes(b"")
    assert _cli(rad_dir / ASN, "-g", "-d", "-b", "-a") == 0
    assert (rad_dir / "isim01010_aposteriori").is_dir() and (rad_dir / "old_mask.fits").exists()
    assert _headerlet_files(rad_dir) == []


@pytest.mark.slow
def test_reset_idctab_switch(rad_dir, monkeypatch):
    """PIPELINE_RESET_IDCTAB: the pipeline-default WCS of the RAW file's IDCTAB is made active
    (also when DRIZCORR says skip, as drizzlepac does before its DRIZCORR test)."""
    _set(rad_dir / "isim01a0q_raw.fits", "DRIZCORR", "OMIT")
    monkeypatch.setenv("PIPELINE_RESET_IDCTAB", "on")
    assert _cli(rad_dir / ASN, "-g", "-b") == 0
    for m in MEMBERS:
        assert fits.getval(rad_dir / f"{m}_flc.fits", "WCSNAME", ext=("SCI", 1)) == "IDC_2731450pi"


def test_no_calibrated_files_exit_65(rad_dir):
    for m in MEMBERS:
        (rad_dir / f"{m}_flc.fits").unlink()
    assert _cli(rad_dir / ASN, "-g") == EXIT_NO_VIABLE_DATA
    assert "no calibrated exposure" in (rad_dir / "isim01010.tra").read_text()


def test_errors_are_one_line_exit_1(rad_dir, tmp_path, monkeypatch, caplog):
    with caplog.at_level(logging.ERROR, logger="hapgpu"):
        assert process(tmp_path / "missing_asn.fits", align_to_gaia=False) == 1
    assert "missing_asn.fits: input file not found" in caplog.text
    monkeypatch.setenv("ASTROMETRY_APPLY_APRIORI", "sometimes")
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="hapgpu"):
        assert process(rad_dir / ASN) == 1
    assert "ASTROMETRY_APPLY_APRIORI='sometimes'" in caplog.text
    assert "ASTROMETRY_APPLY_APRIORI='sometimes'" in (rad_dir / "isim01010.tra").read_text()


def test_cli_usage_errors(rad_dir):
    assert _cli(rad_dir / ASN, "-n", "two") == 2
    assert main(["runastrodriz"]) == 2


@pytest.mark.slow
def test_verified_stages_then_final_product(rad_dir, monkeypatch):
    """With the a priori stage on (the pipeline's default), the pipeline-default WCS is verified
    first, then the a priori one in ``<root>_apriori/`` (removed at the end), and the final
    product is drizzled from the WCS the verified stage left in the files."""
    monkeypatch.setenv("ASTROMETRY_APPLY_APRIORI", "on")
    assert _cli(rad_dir / ASN, "-g") == 0
    trailer = (rad_dir / "isim01010.tra").read_text()
    stages = ["Starting alignment with bad-pixel identification",
              "pipeline-default alignment", "Starting alignment with a priori solutions",
              "a priori alignment", "Creating final combined, corrected product"]
    positions = [trailer.find(s) for s in stages]
    assert -1 not in positions and positions == sorted(positions), positions
    assert "Starting a posteriori" not in trailer
    assert not (rad_dir / "isim01010_apriori").exists()
    final_wcs = fits.getval(rad_dir / "isim01a0q_flc.fits", "WCSNAME", ext=("SCI", 1))
    assert f"best alignment ({final_wcs})" in trailer
    assert fits.getval(rad_dir / "isim01010_drc.fits", "WCSNAME", ext=("SCI", 1)) == final_wcs
    assert not list(rad_dir.glob("*_single_sci.fits")) and not list(rad_dir.glob("*Mask.fits"))


def test_nothing_written_to_the_current_directory(rad_dir):
    _set(rad_dir / "isim01a0q_raw.fits", "DRIZCORR", "OMIT")  # the header work only
    assert _cli(rad_dir / ASN, "-g", "-m") == 0
    assert list(Path.cwd().iterdir()) == []
    assert (rad_dir / "isim01010_manifest.txt").read_text().splitlines() == [
        "isim01a0q_flc.fits", "isim01a1q_flc.fits", "isim01a0q_flt_hlet.fits",
        "isim01a1q_flt_hlet.fits", "isim01010.tra"]
