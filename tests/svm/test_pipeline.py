"""``run_svm`` end to end on a small simulated visit, and its failure modes (§1.1, §1.12, §1.14).

The full run (WFC3/UVIS 2 filters x 2 exposures + WFC3/IR 2 exposures, 96x96 and 48x48
subarrays, alignment off) happens once per module; the tests read its products. The failure
tests stop before any drizzling and are fast.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pytest
from astropy.io import fits

from hapgpu.errors import InvalidParameterError
from hapgpu.svm._pipeline import catalog_switches, env_switch, run_svm

from ._pipeline_visit import BASE, expected_manifest, file_hashes, make_visit
from ._svm_inputs import write_exposure, write_poller

MANIFEST = "wfc3_sim_01_manifest.txt"


@pytest.fixture(scope="module")
def visit(tmp_path_factory):
    return make_visit(tmp_path_factory.mktemp("svm_visit"))


@pytest.fixture(scope="module")
def svm_run(visit, tmp_path_factory):
    before = file_hashes(visit.parent)
    out = tmp_path_factory.mktemp("svm_out") / "products"
    pars = out.parent / "custom_pars.json"
    code = run_svm(visit, out, align=False, backend="cpu", progress=False, output_custom_pars=pars)
    return {"code": code, "out": out, "before": before, "after": file_hashes(visit.parent),
            "pars": pars}


# ----------------------------------------------------------------------------- the full run
@pytest.mark.slow
def test_run_succeeds_with_drizzlepac_manifest(svm_run):
    assert svm_run["code"] == 0
    lines = (svm_run["out"] / MANIFEST).read_text().splitlines()
    assert lines == expected_manifest()


@pytest.mark.slow
def test_every_product_present_and_nothing_else(svm_run):
    out = svm_run["out"]
    listed = set(expected_manifest())
    present = {p.name for p in out.iterdir()}
    assert listed <= present
    previews = {n for n in present if n.endswith(".jpg")}
    drizzled = [n for n in listed if n.endswith(("_drc.fits", "_drz.fits"))]
    for name in drizzled:
        stem = name[:-5]
        assert {stem + ".jpg", stem + "_thumb.jpg"} <= previews
    assert f"{BASE}uvis_total_isim01_f555w-f814w_drc.jpg" in previews
    assert f"{BASE}uvis_total_isim01_f555w-f814w_drc_thumb.jpg" in previews
    # no staging folder, temporary trailer, run log or other stray file
    assert present == listed | previews | {MANIFEST}


@pytest.mark.slow
def test_inputs_never_modified(svm_run):
    assert svm_run["before"] == svm_run["after"]
    assert len(svm_run["before"]) == 6


@pytest.mark.slow
def test_product_keywords(svm_run):
    out = svm_run["out"]
    mask_keys = ("NPIXFRAC", "MEANEXPT", "MEDEXPT", "MEANNEXP", "MEDNEXP", "MEANWHT", "MEDWHT")
    for name in expected_manifest():
        if not name.endswith(("_drc.fits", "_drz.fits")):
            continue
        with fits.open(out / name) as hdul:
            primary = hdul[0].header
            assert primary["FILENAME"] == name
            assert primary["ROOTNAME"] == name.rsplit("_", 1)[0]
            assert primary["DRIZPARS"] == name.rsplit("_", 1)[0] + "_trl.txt"
            exposure_product = len(name.split("_")[-2]) == 8  # <ipppssoo>, not <ipppss>
            assert primary["HAPLEVEL"] == (1 if exposure_product else 2)
            for key in mask_keys:
                assert (key in primary) != exposure_product, (name, key)
            if "total" in name:
                assert primary["FILTER"] == "detection"
            assert hdul["SCI"].data.shape == hdul["WHT"].data.shape
    with fits.open(out / f"{BASE}uvis_f555w_isim01_drc.fits") as hdul:
        primary = hdul[0].header
        assert primary["NUMEXP"] == 2
        assert 1.0 <= primary["MEANNEXP"] <= 2.0 and primary["MEDNEXP"] == 2.0
        assert 0.0 < primary["NPIXFRAC"] <= 1.0


@pytest.mark.slow
def test_same_frame_for_every_product_of_a_detector(svm_run):
    out = svm_run["out"]
    for det, suffix in (("uvis", "drc"), ("ir", "drz")):
        names = [n for n in expected_manifest() if f"_{det}_" in n and n.endswith(f"_{suffix}.fits")]
        frames = []
        for name in names:
            header = fits.getheader(out / name, "SCI")
            frames.append((header["NAXIS1"], header["NAXIS2"], header["CRVAL1"], header["CRVAL2"],
                           header["CRPIX1"], header["CRPIX2"]))
            cd = np.array([[header["CD1_1"], header["CD1_2"]], [header["CD2_1"], header["CD2_2"]]])
            assert abs(cd[0, 1]) < 1e-12 and abs(cd[1, 0]) < 1e-12 and cd[0, 0] < 0 < cd[1, 1]  # north up
        for frame in frames[1:]:
            np.testing.assert_allclose(frame, frames[0], rtol=0, atol=1e-9)


@pytest.mark.slow
def test_exposures_inherit_the_filter_cosmic_ray_flags(svm_run, visit):
    """The renamed UVIS copies carry the filter run's DQ 4096 flags; the inputs do not."""
    out = svm_run["out"]
    copy = out / f"{BASE}uvis_f555w_isim01a0_flc.fits"
    original = visit.parent / "isim01a0q_flc.fits"
    flagged = sum(int(np.count_nonzero(fits.getdata(copy, ("DQ", v)) & 4096)) for v in (1, 2))
    before = sum(int(np.count_nonzero(fits.getdata(original, ("DQ", v)) & 4096)) for v in (1, 2))
    assert flagged > before


@pytest.mark.slow
def test_trailers_hold_the_product_log_and_the_run_log(svm_run):
    out = svm_run["out"]
    exposure_trailer = (out / f"{BASE}uvis_f555w_isim01a0_trl.txt").read_text()
    assert f"AstroDrizzle for {BASE}uvis_f555w_isim01a0_drc.fits" in exposure_trailer
    assert "resetbits = 0" in exposure_trailer
    total_trailer = (out / f"{BASE}uvis_total_isim01_trl.txt").read_text()
    assert "stage timing of the visit" in total_trailer  # the run log, appended
    assert "SVM processing of" in total_trailer


@pytest.mark.slow
def test_renamed_copies_get_skycell_after_s_region(svm_run):
    header = fits.getheader(svm_run["out"] / f"{BASE}uvis_f555w_isim01a0_flc.fits", ("SCI", 1))
    keys = list(header.keys())
    assert keys.index("SKYCELL") == keys.index("S_REGION") + 1
    assert header["SKYCELL"].startswith("p") and "skycell" not in header["SKYCELL"]
    assert fits.getval(svm_run["out"] / f"{BASE}uvis_f555w_isim01a0_flc.fits", "HAPLEVEL") == 1


@pytest.mark.slow
def test_output_custom_pars_lists_every_product(svm_run):
    import json

    data = json.loads(svm_run["pars"].read_text())
    drizzled = {n.rsplit("_", 1)[0] for n in expected_manifest() if n.endswith(("_drc.fits", "_drz.fits"))}
    assert set(data) == drizzled
    entry = data[f"{BASE}uvis_f555w_isim01"]
    assert entry["parameters"]["astrodrizzle"]["driz_cr"] is True
    assert set(entry["default_values"]) == {"alignment", "astrodrizzle", "catalog generation",
                                            "quality control"}


@pytest.mark.slow
def test_custom_pars_without_a_product_exits_1(svm_run, visit, tmp_path, caplog):
    import json

    data = json.loads(svm_run["pars"].read_text())
    del data[f"{BASE}uvis_f814w_isim01"]
    custom = tmp_path / "custom.json"
    custom.write_text(json.dumps(data))
    out = tmp_path / "out"
    with caplog.at_level(logging.ERROR, logger="hapgpu"):
        assert run_svm(visit, out, align=False, custom_pars=custom, backend="cpu") == 1
    assert f"{BASE}uvis_f814w_isim01" in caplog.text and "custom.json" in caplog.text
    assert not out.exists()


# ----------------------------------------------------------------------------- failures
def _listing(folder):
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


def test_empty_poller_writes_nothing(tmp_path):
    poller = tmp_path / "empty.out"
    poller.write_text("\n")
    out = tmp_path / "out"
    assert run_svm(poller, out, backend="cpu") == 0
    assert not out.exists()


def _crafted_visit(tmp_path, **keywords):
    names = ["ib4606c5q_flc.fits", "ib4606c6q_flc.fits"]
    for name in names:
        write_exposure(tmp_path / name, **keywords)
    return write_poller(tmp_path / "ib4606.out",
                        [[n, 11665, "B46", "06", 100.0, "F555W", "UVIS", tmp_path / n] for n in names])


def test_nothing_viable_exits_65(tmp_path, caplog):
    poller = _crafted_visit(tmp_path, OBSTYPE="CAL")
    out = tmp_path / "out"
    with caplog.at_level(logging.ERROR, logger="hapgpu"):
        assert run_svm(poller, out, backend="cpu") == 65
    assert "OBSTYPE=CAL" in caplog.text and "ib4606c5q_flc.fits" in caplog.text
    assert not out.exists()


def test_only_grism_exits_65(tmp_path):
    poller = _crafted_visit(tmp_path, FILTER="G280", OBSTYPE="SPECTROSCOPIC")
    poller.write_text(poller.read_text().replace("F555W", "G280"))
    out = tmp_path / "out"
    assert run_svm(poller, out, backend="cpu") == 65
    assert not out.exists()


def test_missing_file_exits_1_with_its_name(tmp_path, caplog):
    poller = write_poller(tmp_path / "ib4606.out",
                          [["ib4606c5q_flc.fits", 11665, "B46", "06", 100.0, "F555W", "UVIS",
                            tmp_path / "nowhere" / "ib4606c5q_flc.fits"]])
    out = tmp_path / "out"
    out.mkdir()
    with caplog.at_level(logging.ERROR, logger="hapgpu"):
        assert run_svm(poller, out, backend="cpu") == 1
    assert "ib4606c5q_flc.fits" in caplog.text
    assert _listing(out) == []


def test_mixed_visits_exit_1(tmp_path, caplog):
    write_exposure(tmp_path / "ib4606c5q_flc.fits")
    write_exposure(tmp_path / "ib4607c6q_flc.fits")
    poller = write_poller(tmp_path / "mixed.out", ["ib4606c5q_flc.fits", "ib4607c6q_flc.fits"])
    out = tmp_path / "out"
    with caplog.at_level(logging.ERROR, logger="hapgpu"):
        assert run_svm(poller, out, backend="cpu") == 1
    assert "visit" in caplog.text
    assert not out.exists()


def test_bad_column_count_exits_1(tmp_path, caplog):
    write_exposure(tmp_path / "ib4606c5q_flc.fits")
    poller = write_poller(tmp_path / "bad.out", ["ib4606c5q_flc.fits,11665,B46"])
    with caplog.at_level(logging.ERROR, logger="hapgpu"):
        assert run_svm(poller, tmp_path / "out", backend="cpu") == 1
    assert "3 columns" in caplog.text


def test_bad_catalog_switch_exits_1(tmp_path, monkeypatch, caplog):
    poller = _crafted_visit(tmp_path)
    monkeypatch.setenv("SVM_CATALOG_UVIS", "maybe")
    with caplog.at_level(logging.ERROR, logger="hapgpu"):
        assert run_svm(poller, tmp_path / "out", backend="cpu") == 1
    assert "SVM_CATALOG_UVIS" in caplog.text
    assert not (tmp_path / "out").exists()


def test_env_switch_values():
    env = {"A": "On", "B": "no", "C": "TRUE", "D": "off", "E": ""}
    assert [env_switch(k, False, env) for k in "ABCD"] == [True, False, True, False]
    assert env_switch("E", True, env) is True and env_switch("Z", False, env) is False
    with pytest.raises(InvalidParameterError, match="X"):
        env_switch("X", True, {"X": "1"})
    assert catalog_switches({"SVM_CATALOG_IR": "off"}) == {
        "SBC": True, "HRC": True, "WFC": True, "UVIS": True, "IR": False, "PC": True}


@pytest.mark.slow
def test_keyword_update_failure_exits_15_without_partial_products(tmp_path, monkeypatch):
    """A failure after drizzling (here: the disk refusing the header update) leaves no product."""
    import hapgpu.svm._headers as headers
    from hapgpu.simulate import simulate_visit

    visit = simulate_visit(tmp_path / "in", "wfc3-ir", 2, seed=5, shape=32, cosmic_rays=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "unrelated.txt").write_text("kept\n")

    def refuse(hdul, path, **kwargs):
        raise OSError(28, "No space left on device", str(path))

    # the product's final keywords are written in memory, right before its one write
    monkeypatch.setattr(headers, "refine_product_hdulist", refuse)
    code = run_svm(visit.poller, out, align=False, previews=False, backend="cpu", progress=False)
    assert code == 15
    assert _listing(out) == ["unrelated.txt"]


# ----------------------------------------------------------------------------- CLI
def _parser():
    from hapgpu.svm._cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser


@pytest.mark.parametrize("command", ["svm", "runsinglehap"])
def test_cli_options(command):
    args = _parser().parse_args([command, "p.out", "--output-dir", "d", "--refcat", "r.ecsv",
                                 "--no-align", "-c", "c.json", "--output-custom-pars", "o.json",
                                 "-d", "-l", "DEBUG", "--no-previews"])
    assert (args.poller, args.output_dir, args.refcat, args.no_align, args.custom_pars,
            args.output_custom_pars, args.diagnostic, args.log_level, args.no_previews) == \
        ("p.out", "d", "r.ecsv", True, "c.json", "o.json", True, "debug", True)


def test_cli_returns_run_svm_exit_code(tmp_path):
    poller = _crafted_visit(tmp_path, OBSTYPE="CAL")
    args = _parser().parse_args(["runsinglehap", str(poller), "--output-dir", str(tmp_path / "o")])
    assert args.func(args) == 65
