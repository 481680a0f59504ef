"""``run_mvm`` / ``hapgpu mvm``: sky-cell layers end to end (hap-pipeline.md §2.5) and its failures.

Three kinds of tests:

* the footprint and bounded-frame stages on the real 10x10 sample exposures of tests/data,
  against hapgpu's SVM footprint mask drawn on the whole coarse cell (the stage itself never
  allocates the cell);
* runs on those samples (one UVIS and one IR exposure: a fine UVIS layer and the IR coarse and
  fine layers; a few seconds each, marked slow) and the error paths with drizzlepac's exit
  codes;
* a run on a small simulated cell (UVIS visit of 2 exposures, IR visit of 2, one OLD UVIS
  exposure 12" east), once per module, marked slow.
"""

from __future__ import annotations

import logging
import pickle

import numpy as np
import pytest
from astropy.io import fits

from hapgpu.mvm._pipeline import run_mvm
from hapgpu.mvm._products import (
    bounded_cell_frame,
    layer_config,
    layer_footprint,
    make_renamed_input,
)
from hapgpu.skycells import SkyCell

from ._cell_inputs import (
    CELL,
    assert_same_layer_products,
    make_exposures,
    sample_rows,
    write_mvm_poller,
)

PREFIX = f"hst_{CELL}_wfc3_"
MASK_KEYS = ("NPIXFRAC", "MEANEXPT", "MEDEXPT", "MEANNEXP", "MEDNEXP")


def _hashes(folder):
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.fits"))}


# ----------------------------------------------------------------------------- stages
@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    return sample_rows(tmp_path_factory.mktemp("mvm_samples") / "in")


def test_bounded_frame_and_footprint_against_full_cell_mask(samples):
    from hapgpu.svm._footprint import footprint_mask, mask_keywords

    paths = [row[1] for row in samples]
    cell = SkyCell.from_name(CELL, scale="coarse")
    total, scaled = footprint_mask(paths, cell.wcs, cell.shape)   # the full 7318^2 cell
    rows, cols = np.flatnonzero(total.any(axis=1)), np.flatnonzero(total.any(axis=0))
    frame = bounded_cell_frame(CELL, "coarse", paths)
    assert frame.origin == (rows[0], cols[0])
    assert frame.shape == (rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
    assert frame.cell_shape == (7318, 7318)
    np.testing.assert_array_equal(frame.wcs.wcs.crpix, cell.wcs.wcs.crpix - [cols[0], rows[0]])
    assert frame.wcs.pixel_shape == (frame.shape[1], frame.shape[0])
    expected = mask_keywords(total, scaled)
    for band_bytes in (None, 6 * frame.shape[1]):   # whole frame, then one row per band
        kwargs = {} if band_bytes is None else {"band_bytes": band_bytes}
        footprint = layer_footprint(frame, paths, **kwargs)
        assert list(footprint.keywords) == list(MASK_KEYS)
        assert footprint.n_pixels == int((total > 0).sum())
        for key in MASK_KEYS:
            assert footprint.keywords[key][0] == pytest.approx(expected[key][0], rel=1e-6), key
            assert footprint.keywords[key][1] == expected[key][1]
    # one exposure alone: fewer pixels, one exposure per pixel, and its own exposure time
    alone = layer_footprint(frame, paths[:1])
    assert alone.keywords["MEDNEXP"][0] == 1.0 and alone.keywords["MEANNEXP"][0] == 1.0
    assert alone.keywords["MEDEXPT"][0] == pytest.approx(170.0)
    assert 0 < alone.n_pixels < footprint.n_pixels


def test_outline_extent_is_the_extent_of_its_fill(samples):
    """The bounded frame takes each chip's extent from the fill's row spans: the same rows and
    columns as the painted fill."""
    from hapgpu.mvm._products import chip_outlines

    for scale in ("fine", "coarse"):
        cell = SkyCell.from_name(CELL, scale=scale)
        outlines = [o for row in samples for o in chip_outlines(row[1], cell)]
        assert outlines
        for outline in outlines:
            blank = outline.fill()
            rows, cols = np.flatnonzero(blank.any(axis=1)), np.flatnonzero(blank.any(axis=0))
            y0, _, x0, _ = outline.box
            assert outline.extent() == (y0 + rows[0], y0 + rows[-1], x0 + cols[0], x0 + cols[-1])


def test_fine_and_coarse_frames_cover_the_same_sky(samples):
    paths = [row[1] for row in samples]
    fine, coarse = bounded_cell_frame(CELL, "fine", paths), bounded_cell_frame(CELL, "coarse", paths)
    corners = [(-0.5, -0.5), (fine.shape[1] - 0.5, fine.shape[0] - 0.5)]
    sky = fine.wcs.pixel_to_world_values(*np.array(corners).T)
    in_coarse = np.array(coarse.wcs.world_to_pixel_values(*sky)).T
    # the same area of sky to within the truncation of each outline to whole pixels
    np.testing.assert_allclose(in_coarse, [(-0.5, -0.5), (coarse.shape[1] - 0.5, coarse.shape[0] - 0.5)],
                               atol=1.0)


def test_footprint_off_the_cell_and_parameters(samples, tmp_path):
    from hapgpu.errors import WCSError
    from hapgpu.mvm import SkyCellLayer

    paths = [row[1] for row in samples]
    with pytest.raises(WCSError, match="skycell-p0121x14y16: none of the exposures lands"):
        bounded_cell_frame("skycell-p0121x14y16", "fine", paths)
    frame = bounded_cell_frame(CELL, "fine", paths)
    footprint = layer_footprint(frame, paths[:1])
    layer = SkyCellLayer(skycell=CELL, instrument="wfc3", detector="uvis", filters="f555w",
                         scale="fine", layer="all", exposures=())
    config = layer_config(layer, footprint)   # MEANNEXP 1 -> any_n1: no sky subtraction
    assert config.pipeline == "mvm" and config.conditions == ("filter_basic", "any_n1")
    assert config.astrodrizzle["skysub"] is False and config.astrodrizzle["final_bits"] == 65535
    source = tmp_path / "src" / "x_flc.fits"
    source.parent.mkdir()
    source.write_bytes(paths[0].read_bytes())
    with fits.open(source, mode="update") as hdul:
        del hdul[0].header["HAPLEVEL"]
    before = _hashes(source.parent)
    copy = make_renamed_input(source, tmp_path, "renamed_flc.fits")
    assert fits.getval(copy, "HAPLEVEL") == 1 and _hashes(source.parent) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# ----------------------------------------------------------------------------- fast run
@pytest.fixture(scope="module")
def sample_run(samples, tmp_path_factory):
    folder = samples[0][1].parent
    poller = write_mvm_poller(folder.parent / f"{CELL}_input.out", samples)
    before = _hashes(folder)
    out = tmp_path_factory.mktemp("mvm_sample_out") / "products"
    pars = out.parent / "custom_pars.json"
    code = _run_quiet(poller, out, output_custom_pars=pars)
    return {"code": code, "out": out, "poller": poller, "before": before,
            "after": _hashes(folder), "pars": pars}


def _run_quiet(poller, out, **kwargs):
    return run_mvm(poller, out, backend="cpu", progress=False, **kwargs)


SAMPLE_LAYERS = [f"{PREFIX}ir_f110w_all_drz.fits", f"{PREFIX}ir_f110w_all_trl.txt",
                 f"{PREFIX}ir_f110w_coarse-all_drz.fits", f"{PREFIX}ir_f110w_coarse-all_trl.txt",
                 f"{PREFIX}uvis_f555w_all_drc.fits", f"{PREFIX}uvis_f555w_all_trl.txt"]


@pytest.mark.slow
def test_sample_run_products_and_manifest(sample_run):
    assert sample_run["code"] == 0
    out = sample_run["out"]
    manifest = (out / f"{CELL}_manifest.txt").read_text().splitlines()
    assert manifest == SAMPLE_LAYERS   # unique and sorted, as drizzlepac's numpy.unique
    # renamed inputs deleted (never modified: alignment skipped), no run log, no staging folder
    assert sorted(p.name for p in out.iterdir()) == sorted(SAMPLE_LAYERS + [f"{CELL}_manifest.txt"])
    assert sample_run["before"] == sample_run["after"]


@pytest.mark.slow
def test_sample_run_keywords(sample_run):
    out = sample_run["out"]
    for name in SAMPLE_LAYERS[::2]:
        with fits.open(out / name) as hdul:
            primary = hdul[0].header
            assert primary["SCELLID"] == "p0121x12y16"
            assert primary["HAPLEVEL"] == 4 and primary["NUMEXP"] == 1
            assert primary["PROPOSID"] == "11665"
            assert primary["ROOTNAME"] == name[:-len("_drz.fits")]
            assert primary["DRIZPARS"] == name[:-len("_drz.fits")] + "_trl.log"
            assert 0 < primary["NPIXFRAC"] < 1e-4 and primary["MEANNEXP"] == 1.0
            wht = hdul["WHT"].data
            assert primary["MEANWHT"] == pytest.approx(float(np.mean(wht[wht > 0])), rel=1e-6)
            assert primary["MEDWHT"] == pytest.approx(float(np.median(wht[wht > 0])), rel=1e-6)
            table = hdul["HDRTAB"].data
            assert table.columns.names[:2] == ["SVMROOTNAME", "GENDATE"]
            assert set(table["GENDATE"]) == {"2023-12-15"}
            svm = "hst_11665_07_wfc3_ir_f110w_ib4606cp" if "_ir_" in name else \
                "hst_11665_06_wfc3_uvis_f555w_ib4606c6"
            assert set(table["SVMROOTNAME"]) == {svm}
            # the fine IR layer's input carries the coarse layer's name (drizzlepac shares them)
            layer = "coarse-all" if "_ir_" in name else "all"
            det, filt, ipppssoo = svm.split("_")[4:]
            assert set(table["HAPEXPNAME"]) == {f"{PREFIX}{det}_{filt}_{layer}-{ipppssoo}"}
            assert "S_REGION" in hdul["SCI"].header


@pytest.mark.slow
def test_sample_run_shared_frames(sample_run):
    out = sample_run["out"]
    fine = [fits.getheader(out / n, "SCI") for n in (SAMPLE_LAYERS[0], SAMPLE_LAYERS[4])]
    for key in ("CRPIX1", "CRPIX2", "NAXIS1", "NAXIS2", "CRVAL1", "CRVAL2", "CD1_1", "CD2_2"):
        assert fine[0][key] == fine[1][key], key   # every fine layer of the cell: one frame
    coarse = fits.getheader(out / SAMPLE_LAYERS[2], "SCI")
    assert coarse["CD2_2"] == pytest.approx(3 * fine[0]["CD2_2"])
    assert abs(coarse["NAXIS1"] * 3 - fine[0]["NAXIS1"]) <= 3


@pytest.mark.slow
def test_sample_run_trailers_and_custom_pars(sample_run):
    import json

    out = sample_run["out"]
    text = (out / SAMPLE_LAYERS[1]).read_text()
    assert "AstroDrizzle for hst_skycell-p0121x12y16_wfc3_ir_f110w_all_drz.fits" in text
    assert "MVM processing of" in text            # the run log appended at the end
    assert text.index("AstroDrizzle for") < text.index("Creating manifest file")
    pars = json.loads(sample_run["pars"].read_text())
    assert f"{PREFIX}uvis_f555w_all" in pars and f"{PREFIX}ir_f110w_coarse-all" in pars
    assert f"{PREFIX}uvis_f555w_all-ib4606c6" in pars
    assert pars[f"{PREFIX}uvis_f555w_all"]["parameters"]["astrodrizzle"]["final_bits"] == 65535


@pytest.mark.slow
def test_custom_pars_round_trip_and_diagnostic(sample_run, samples, tmp_path):
    import json

    custom = json.loads(sample_run["pars"].read_text())
    custom[f"{PREFIX}uvis_f555w_all"]["default_values"]["astrodrizzle"]["final_pixfrac"] = 0.5
    path = tmp_path / "custom.json"
    path.write_text(json.dumps(custom))
    poller = write_mvm_poller(tmp_path / "uvis_input.out", samples[:1])
    out = tmp_path / "out"
    assert run_mvm(poller, out, custom_pars=path, diagnostic=True, backend="cpu", progress=False) == 0
    with fits.open(out / SAMPLE_LAYERS[4]) as hdul:
        assert hdul[0].header["D001PIXF"] == 0.5
    # diagnostic mode keeps the renamed input (not in the manifest, as drizzlepac)
    renamed = out / f"{PREFIX}uvis_f555w_all-ib4606c6_flc.fits"
    assert renamed.is_file() and fits.getval(renamed, "HAPLEVEL") == 1
    assert renamed.name not in (out / f"{CELL}_manifest.txt").read_text()


def test_layer_job_is_picklable(samples):
    from hapgpu.mvm import SkyCellLayer
    from hapgpu.mvm._pipeline import LayerJob

    paths = [row[1] for row in samples]
    frame = bounded_cell_frame(CELL, "fine", paths)
    footprint = layer_footprint(frame, paths[:1])
    layer = SkyCellLayer(skycell=CELL, instrument="wfc3", detector="uvis", filters="f555w",
                         scale="fine", layer="all", exposures=())
    job = LayerJob(layer, frame, footprint, layer_config(layer, footprint))
    again = pickle.loads(pickle.dumps(job))
    assert again.frame.shape == frame.shape and again.footprint == footprint
    np.testing.assert_array_equal(again.frame.wcs.wcs.crpix, frame.wcs.wcs.crpix)


# ----------------------------------------------------------------------------- failures
def test_every_row_old_exits_65_and_writes_nothing(samples, tmp_path, caplog):
    rows = [row[:-1] + (False,) for row in samples]
    poller = write_mvm_poller(tmp_path / "old_input.out", rows)
    out = tmp_path / "out"
    with caplog.at_level(logging.ERROR, logger="hapgpu"):
        assert run_mvm(poller, out, backend="cpu", progress=False) == 65
    assert "OLD" in caplog.text
    assert not out.exists()


def test_errors_exit_1_naming_the_problem(samples, tmp_path, caplog):
    missing = tmp_path / "absent_input.out"
    with caplog.at_level(logging.ERROR, logger="hapgpu"):
        assert run_mvm(missing, tmp_path / "out") == 1
    assert "absent_input.out" in caplog.text
    bad = tmp_path / "bad_input.out"
    bad.write_text("a_flc.fits,1,2,3\n")
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="hapgpu"):
        assert run_mvm(bad, tmp_path / "out") == 1
    assert "bad_input.out, line 1: 4 columns" in caplog.text
    assert not (tmp_path / "out").exists()
    # a file where the output folder should be
    (tmp_path / "blocked").write_text("")
    poller = write_mvm_poller(tmp_path / "ok_input.out", samples[:1])
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="hapgpu"):
        assert run_mvm(poller, tmp_path / "blocked") == 1
    assert "blocked" in caplog.text
    for kwargs, message in (({"log_level": "loud"}, "log_level"),
                            ({"workers": 2, "scheduler": "tcp://x:1"}, "not both"),
                            ({"workers": 0}, "positive integer")):
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="hapgpu"):
            assert run_mvm(poller, tmp_path / "out2", **kwargs) == 1
        assert message in caplog.text
    assert run_mvm([], tmp_path / "out2") == 1


@pytest.mark.slow
def test_several_pollers_first_failure_and_good_cells_kept(samples, tmp_path):
    good = write_mvm_poller(tmp_path / "good_input.out", samples[:1])
    old = write_mvm_poller(tmp_path / "old_input.out", [samples[1][:-1] + (False,)])
    out = tmp_path / "out"
    assert run_mvm([good, old], out, backend="cpu", progress=False) == 65
    assert (out / f"{CELL}_manifest.txt").is_file()
    assert (out / SAMPLE_LAYERS[4]).is_file()


def test_cli_mvm_and_runmultihap(samples, tmp_path, capsys):
    from hapgpu.cli import main

    missing = tmp_path / "absent_input.out"
    for command in ("mvm", "runmultihap"):
        assert main([command, str(missing), "--output-dir", str(tmp_path / "out")]) == 1
    capsys.readouterr()
    assert main(["mvm", str(missing), "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "not allowed with argument --workers" in capsys.readouterr().err
    assert main(["runmultihap", str(missing), "--workers", "0"]) == 2
    assert "positive integer" in capsys.readouterr().err


# ----------------------------------------------------------------------------- simulated cell
@pytest.fixture(scope="module")
def cell_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("mvm_cell") / "in"
    root.mkdir()
    rows = make_exposures(root, uvis_shape=48, ir_shape=32, second_uvis=False, old=True)
    poller = write_mvm_poller(root.parent / f"{CELL}_input.out", rows)
    before = _hashes(root)
    out = root.parent / "out"
    code = run_mvm(poller, out, backend="cpu", progress=False)
    return {"code": code, "out": out, "rows": rows, "before": before, "after": _hashes(root)}


CELL_LAYERS = [f"{PREFIX}ir_f160w_all_drz.fits", f"{PREFIX}ir_f160w_all_trl.txt",
               f"{PREFIX}ir_f160w_coarse-all_drz.fits", f"{PREFIX}ir_f160w_coarse-all_trl.txt",
               f"{PREFIX}uvis_f555w_all_drc.fits", f"{PREFIX}uvis_f555w_all_trl.txt"]


@pytest.mark.slow
def test_cell_run_layers(cell_run):
    assert cell_run["code"] == 0
    out = cell_run["out"]
    assert (out / f"{CELL}_manifest.txt").read_text().splitlines() == CELL_LAYERS
    assert sorted(p.name for p in out.iterdir()) == sorted(CELL_LAYERS + [f"{CELL}_manifest.txt"])
    assert cell_run["before"] == cell_run["after"]


@pytest.mark.slow
def test_cell_run_without_a_thread_safe_numba_layer(cell_run, tmp_path):
    """Where Numba has only its workqueue threading layer (no TBB, no OpenMP runtime), two
    threads launching parallel kernels at once end the process; the overlapping work then runs
    in order, and the products are the threaded run's."""
    import os
    import subprocess
    import sys

    out = tmp_path / "out"
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue", "HAPGPU_BACKEND": "cpu"}
    poller = cell_run["out"].parent / f"{CELL}_input.out"
    proc = subprocess.run([sys.executable, "-m", "hapgpu.cli", "mvm", str(poller),
                           "--output-dir", str(out)], env=env, capture_output=True, text=True,
                          check=False, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_layer_products(out, cell_run["out"])


@pytest.mark.slow
def test_cell_run_old_rows_widen_the_frame_but_are_not_drizzled(cell_run):
    out = cell_run["out"]
    rows = cell_run["rows"]
    new = [r[1] for r in rows if r[-1]]
    old = [r[1] for r in rows if not r[-1]]
    assert len(old) == 1
    with_old = bounded_cell_frame(CELL, "fine", [r[1] for r in rows])
    without = bounded_cell_frame(CELL, "fine", new)
    assert with_old.shape[1] > without.shape[1] + 100    # 12" east: 300 fine pixels wider
    with fits.open(out / f"{PREFIX}uvis_f555w_all_drc.fits") as hdul:
        assert hdul["SCI"].data.shape == with_old.shape
        assert hdul["SCI"].header["CRPIX1"] == with_old.wcs.wcs.crpix[0]
        assert hdul[0].header["NUMEXP"] == 2
        names = " ".join(str(v) for k, v in hdul[0].header.items() if k.endswith("DATA"))
        assert "isim04" not in names and "isim01a0" in names
        # no data outside the NEW exposures' columns: the OLD exposure's area stays empty
        wht = hdul["WHT"].data
        x0 = without.origin[1] - with_old.origin[1]
        assert wht[:, x0:x0 + without.shape[1]].any()
        assert not wht[:, :max(0, x0 - 2)].any() and not wht[:, x0 + without.shape[1] + 2:].any()


@pytest.mark.slow
def test_cell_run_keywords_and_scales(cell_run):
    out = cell_run["out"]
    headers = {n: (fits.getheader(out / n), fits.getheader(out / n, "SCI")) for n in CELL_LAYERS[::2]}
    uvis, ir_fine, ir_coarse = (headers[CELL_LAYERS[i]] for i in (4, 0, 2))
    for key in ("CRPIX1", "CRPIX2", "NAXIS1", "NAXIS2"):
        assert uvis[1][key] == ir_fine[1][key], key
    assert ir_coarse[1]["NAXIS1"] == pytest.approx(ir_fine[1]["NAXIS1"] / 3, abs=1)
    for primary, _ in headers.values():
        assert primary["SCELLID"] == "p0121x12y16" and primary["HAPLEVEL"] == 4
        assert primary["PROPOSID"] == "17001"
        assert primary["MEDNEXP"] in (1.0, 2.0) and 1.0 <= primary["MEANNEXP"] <= 2.0
    # two 400 s UVIS exposures overlapping over most of their area: n = round(MEANNEXP) = 2
    assert uvis[0]["MEDNEXP"] == 2.0 and uvis[0]["MEDEXPT"] == pytest.approx(800.0)


@pytest.mark.slow
def test_keyword_update_failure_exits_15_and_writes_nothing(samples, tmp_path, monkeypatch, caplog):
    import hapgpu.svm._headers as headers
    from hapgpu.errors import OutputWriteError

    def full_disk(hdul, path, **kwargs):
        raise OutputWriteError(f"{path}: cannot write: No space left on device")

    # a layer's HAPLEVEL 4 keywords go in right before its one write
    monkeypatch.setattr(headers, "refine_product_hdulist", full_disk)
    poller = write_mvm_poller(tmp_path / "uvis_input.out", samples[:1])
    out = tmp_path / "out"
    with caplog.at_level(logging.CRITICAL, logger="hapgpu"):
        assert run_mvm(poller, out, backend="cpu", progress=False) == 15
    assert "No space left on device" in caplog.text and "uvis_f555w_all_drc.fits" in caplog.text
    assert not out.exists()


@pytest.mark.slow
def test_exposures_off_the_cell_give_an_empty_manifest(samples, tmp_path, caplog):
    other = "skycell-p0121x14y16"   # the samples lie in x12y16 (and its overlap), not here
    poller = write_mvm_poller(tmp_path / f"{other}_input.out", samples[:1], other)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="hapgpu"):
        assert run_mvm(poller, out, backend="cpu", progress=False) == 0
    assert "none of the exposures lands on the sky cell" in caplog.text
    assert sorted(p.name for p in out.iterdir()) == [f"{other}_manifest.txt"]
    assert (out / f"{other}_manifest.txt").read_text() == ""
