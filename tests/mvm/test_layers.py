"""MVM layers (hap-pipeline.md §2.4): fine/coarse, FLT/FLC choice, order, names; drizzlepac's oracle."""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import pytest

from hapgpu.mvm import LayerExposure, MvmPoller, SkyCellLayer, build_layers, read_mvm_poller
from hapgpu.mvm._poller import MvmPollerRow

from ._poller_inputs import CELL, OTHER_CELL, mvm_line, svm_copy, write_mvm_poller


@pytest.fixture
def visit(exposures, tmp_path):
    """SVM-named copies of the simulated exposures in tmp_path/in, plus ``uvis0_flt``: an FLT
    copy of the first UVIS exposure."""
    files = {key: svm_copy(path, tmp_path / "in") for key, path in exposures.items()}
    files["uvis0_flt"] = svm_copy(exposures["uvis0"], tmp_path / "in", suffix="flt.fits")
    return files


def _names(exposures):
    return [e.renamed for e in exposures]


def test_uvis_and_ir_layers(visit, tmp_path):
    lines = [mvm_line(visit["uvis0"]), mvm_line(visit["ir0"]), mvm_line(visit["uvis1"]),
             mvm_line(visit["ir1"]), mvm_line(visit["hrc0"], flag="OLD")]
    poller = read_mvm_poller(write_mvm_poller(tmp_path / "p.out", lines), check_guiding=False)
    layers = build_layers(poller)
    base = f"hst_{CELL}_wfc3"
    assert [layer.drizzle_filename for layer in layers] == [
        f"{base}_uvis_f555w_all_drc.fits", f"{base}_ir_f160w_coarse-all_drz.fits",
        f"{base}_ir_f160w_all_drz.fits"]
    assert [layer.info for layer in layers] == [
        f"{CELL} wfc3 uvis f555w all all 1 drc fine", f"{CELL} wfc3 ir f160w all all 1 drz coarse",
        f"{CELL} wfc3 ir f160w all all 1 drz fine"]
    assert [layer.trailer_filename for layer in layers] == [
        f"{base}_uvis_f555w_all_trl.txt", f"{base}_ir_f160w_coarse-all_trl.txt",
        f"{base}_ir_f160w_all_trl.txt"]
    assert [(layer.scale, layer.layer) for layer in layers] == [
        ("fine", "all"), ("coarse", "coarse-all"), ("fine", "all")]
    uvis, coarse, fine = layers
    # sorted by exposure time: the 300 s exposure first
    assert _names(uvis.exposures) == [f"{base}_uvis_f555w_all-isim01a1_flc.fits",
                                      f"{base}_uvis_f555w_all-isim01a0_flc.fits"]
    assert [e.exptime for e in uvis.exposures] == [300.0, 500.0]
    assert [e.source for e in uvis.exposures] == [visit["uvis1"], visit["uvis0"]]
    assert uvis.exposures[0].svm_exposure_name == "hst_17001_01_wfc3_uvis_f555w_isim01a1"
    assert uvis.exposures[0].ipppssoo == "isim01a1" and uvis.exposures[0].new
    # the fine IR layer shares the coarse layer's exposures, names included
    assert coarse.exposures == fine.exposures
    assert _names(fine.exposures) == [f"{base}_ir_f160w_coarse-all-isim02a0_flt.fits",
                                      f"{base}_ir_f160w_coarse-all-isim02a1_flt.fits"]
    # the OLD HRC row has no NEW exposure of its detector: no layer, but it is in every
    # layer's bounded-frame list
    assert all(layer.all_mvm_exposures == tuple(visit[k] for k in ("uvis0", "ir0", "uvis1", "ir1", "hrc0"))
               for layer in layers)
    assert all(layer.new_exposures == layer.exposures and layer.old_exposures == ()
               for layer in layers)
    assert {layer.manifest_filename for layer in layers} == {f"{CELL}_manifest.txt"}
    assert uvis.scellid == "p1889x10y06" and uvis.product_type == "drc"
    assert uvis.sky_cell().shape == (21954, 21954) and coarse.sky_cell().shape == (7318, 7318)


def test_flt_flc_choice_and_old_rows(visit, tmp_path):
    lines = [mvm_line(visit["uvis0_flt"]), mvm_line(visit["uvis1"]),
             mvm_line(visit["uvis0"], flag="OLD"), mvm_line(visit["ir0"], flag="OLD"),
             mvm_line(visit["ir1"])]
    layers = build_layers(read_mvm_poller(write_mvm_poller(tmp_path / "p.out", lines),
                                          check_guiding=False))
    uvis, _, fine = layers
    base = f"hst_{CELL}_wfc3"
    # an FLC member makes the layer a DRC of the FLC members; the FLT is ignored
    assert uvis.drizzle_filename.endswith("_drc.fits")
    assert _names(uvis.new_exposures) == [f"{base}_uvis_f555w_all-isim01a1_flc.fits"]
    # the OLD rows of the same detector and filter follow, not drizzled
    assert _names(uvis.old_exposures) == [f"{base}_uvis_f555w_all-isim01a0_flc.fits"]
    assert _names(fine.old_exposures) == [f"{base}_ir_f160w_coarse-all-isim02a0_flt.fits"]
    assert [e.new for e in fine.exposures] == [True, False]
    assert fine.info.endswith("all all 1 drz fine")
    # FLT only: a DRZ
    only_flt = build_layers(read_mvm_poller(write_mvm_poller(tmp_path / "flt.out", [lines[0]]),
                                            check_guiding=False))
    assert [layer.drizzle_filename for layer in only_flt] == [f"{base}_uvis_f555w_all_drz.fits"]
    assert _names(only_flt[0].exposures) == [f"{base}_uvis_f555w_all-isim01a0_flt.fits"]


def _row(name, exptime, detector, filters, line):
    return MvmPollerRow(filename=name, proposal_id=8090, program_id=name.split("_")[-2][1:4].upper(),
                        obset_id="01", exptime=exptime, filters=filters, detector=detector,
                        skycell=CELL, new=True, pathname=f"/archive/{name}",
                        source=Path(f"/archive/{name}"), line=line)


def test_wfpc2_pipeline_names_and_photflam_ties():
    """WFPC2 (detector pc) gets coarse + fine layers; equal exposure times sort by PHOTFLAM."""
    rows = (_row("u8jv0101r_flt.fits", 100.0, "PC", "F555W", 1),
            _row("u8jv0102r_flt.fits", 100.0, "PC", "F555W", 2),
            _row("u8jv0103r_flt.fits", 40.0, "PC", "F814W;POL0V", 3))
    poller = MvmPoller(path=Path("p.out"), skycell=CELL, rows=rows)
    photflam = {"u8jv0101r_flt.fits": 1e-18, "u8jv0102r_flt.fits": 2e-18, "u8jv0103r_flt.fits": 1e-18}
    layers = build_layers(poller, photflam=photflam)
    base = f"hst_{CELL}_wfpc2_pc"
    # groups in order of first appearance after the sort: the 40 s exposure comes first
    assert [layer.drizzle_filename for layer in layers] == [
        f"{base}_f814w-pol0v_coarse-all_drz.fits", f"{base}_f814w-pol0v_all_drz.fits",
        f"{base}_f555w_coarse-all_drz.fits", f"{base}_f555w_all_drz.fits"]
    # pipeline names: ipppssoo = first 8 characters, suffix after the first '_'
    assert _names(layers[3].exposures) == [f"{base}_f555w_coarse-all-u8jv0102_flt.fits",
                                           f"{base}_f555w_coarse-all-u8jv0101_flt.fits"]
    assert layers[3].exposures[0].svm_exposure_name == "u8jv0102r"
    assert layers[1].info == f"{CELL} wfpc2 pc f814w-pol0v all all 1 drz fine"


def test_layer_dataclasses_are_frozen():
    exposure = LayerExposure(Path("/a/x_flc.fits"), "hst_c_wfc3_uvis_f555w_all-ib4606c5_flc.fits",
                             "ib4606c5", True, 1.0, "x")
    layer = SkyCellLayer("skycell-p0121x12y16", "wfc3", "uvis", "f555w", "fine", "all", (exposure,))
    with pytest.raises(AttributeError):
        layer.skycell = "other"
    assert layer.info == "skycell-p0121x12y16 wfc3 uvis f555w all all 1 drc fine"
    assert exposure.filetype == "flc"


# ------------------------------------------------------------------ drizzlepac as the oracle

oracle = [pytest.mark.reference, pytest.mark.slow,
          pytest.mark.filterwarnings("ignore::ResourceWarning"),
          pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
          pytest.mark.filterwarnings("ignore::astropy.utils.exceptions.AstropyWarning"),
          pytest.mark.filterwarnings("ignore::UserWarning"),
          pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _apply(marks):
    def decorate(func):
        for mark in marks:
            func = mark(func)
        return func
    return decorate


def _reference_layers(poller: Path, folder: Path, only_cte: bool):
    """drizzlepac's ``interpret_mvm_input`` run in ``folder`` (it copies the inputs there)."""
    from drizzlepac.haputils import poller_utils

    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(io.StringIO()):
        mp.chdir(folder)
        obs, products = poller_utils.interpret_mvm_input(str(poller), logging.WARNING,
                                                         only_cte=only_cte)
    return list(obs.values()), products


@_apply(oracle)
@pytest.mark.parametrize("only_cte", [False, True])
def test_layers_match_drizzlepac(visit, tmp_path, only_cte):
    lines = [mvm_line(visit["uvis0"]), mvm_line(visit["ir0"], flag="OLD"),
             mvm_line(visit["uvis0_flt"]), mvm_line(visit["ir1"], cell=OTHER_CELL),
             mvm_line(visit["uvis1"]), mvm_line(visit["hrc0"])]
    ref_dir, our_dir = tmp_path / "ref", tmp_path / "ours"
    ref_dir.mkdir()
    our_dir.mkdir()
    poller = write_mvm_poller(tmp_path / "cell_input.out", lines)
    infos, products = _reference_layers(poller, ref_dir, only_cte)
    layers = build_layers(read_mvm_poller(poller, only_cte=only_cte, search_dirs=[our_dir]))
    assert [layer.info for layer in layers] == [info["info"] for info in infos]
    assert len(layers) == len(products)
    for layer, product in zip(layers, products):
        assert layer.drizzle_filename == product.drizzle_filename
        assert layer.trailer_filename == product.trl_filename
        assert layer.manifest_filename == product.manifest_name
        assert layer.basename == product.product_basename
        assert [e.renamed for e in layer.new_exposures] == [e.full_filename for e in product.edp_list]
        assert [e.svm_exposure_name for e in layer.new_exposures] == [
            e.svm_exposure_name for e in product.edp_list]
        assert [e.exptime for e in layer.new_exposures] == [e.exptime for e in product.edp_list]
        assert all(e.new_process == 1 for e in product.edp_list)
        assert [p.name for p in layer.all_mvm_exposures] == [str(n) for n in product.all_mvm_exposures]
        assert layer.sky_cell().wcs.wcs.crpix.tolist() == product.skycell.wcs.wcs.crpix.tolist()
        assert layer.sky_cell().shape == tuple(product.skycell.wcs.array_shape)
