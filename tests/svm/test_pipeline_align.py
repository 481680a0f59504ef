"""``run_svm`` with alignment on (hap-pipeline.md §1.8): a WFC3/IR visit with a known a priori
WCS error, aligned to the simulator's Gaia-like reference catalogue."""

from __future__ import annotations

import logging

import pytest
from astropy.io import fits

from hapgpu.simulate import WCSPerturbation, simulate_visit
from hapgpu.svm._pipeline import run_svm

from ._pipeline_visit import file_hashes

BASE = "hst_17001_01_wfc3_ir_"


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    root = tmp_path_factory.mktemp("svm_align")
    visit = simulate_visit(root / "visit", "wfc3-ir", 2, shape=(256, 256), star_density=3000.0,
                           seed=11, wcs_error=WCSPerturbation((0.35, -0.35), rotation_deg=0.02))
    before = file_hashes(root / "visit")
    out = root / "out"
    code = run_svm(visit.poller, out, refcat=visit.refcat, previews=False, backend="cpu",
                   progress=False)
    return {"code": code, "out": out, "unchanged": before == file_hashes(root / "visit")}


@pytest.mark.slow
def test_headerlets_lead_the_manifest(aligned):
    assert aligned["code"] == 0
    lines = (aligned["out"] / "wfc3_sim_01_manifest.txt").read_text().splitlines()
    assert lines[:2] == [f"{BASE}f160w_isim01a0_hlet.fits", f"{BASE}f160w_isim01a1_hlet.fits"]
    assert lines[2:4] == [f"{BASE}f160w_isim01_drz.fits", f"{BASE}f160w_isim01_trl.txt"]
    for name in lines:
        assert (aligned["out"] / name).is_file(), name


@pytest.mark.slow
def test_renamed_copies_and_products_carry_the_svm_solution(aligned):
    out = aligned["out"]
    for exposure in ("isim01a0", "isim01a1"):
        header = fits.getheader(out / f"{BASE}f160w_{exposure}_flt.fits", ("SCI", 1))
        assert header["WCSNAME"].endswith("-FIT_SVM_GAIAeDR3"), header["WCSNAME"]
        assert header["NMATCHES"] >= 12
        hlet = fits.getheader(out / f"{BASE}f160w_{exposure}_hlet.fits")
        assert hlet["CATALOG"] == "GAIAeDR3"
    assert aligned["unchanged"]


def test_missing_reference_catalogue_file_exits_1(tmp_path, caplog):
    poller = tmp_path / "p.out"
    poller.write_text("ib4606c5q_flc.fits\n")
    with caplog.at_level(logging.ERROR, logger="hapgpu"):
        assert run_svm(poller, tmp_path / "out", refcat=tmp_path / "nope.ecsv") == 1
    assert "nope.ecsv" in caplog.text
    assert not (tmp_path / "out").exists()
