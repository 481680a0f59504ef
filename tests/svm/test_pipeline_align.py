"""``run_svm`` with alignment on (hap-pipeline.md §1.8): a WFC3/IR visit with a known a priori
WCS error, aligned to the simulator's Gaia-like reference catalogue; the total product's HAP
alignment block (shipped, or from a custom parameter file ``-c``) sets the fit."""

from __future__ import annotations

import copy
import json
import logging

import pytest
from astropy.io import fits

from hapgpu.align import alignment_pars, alignment_pars_from_hap
from hapgpu.align._engine import _svm_geometries
from hapgpu.errors import InvalidParameterError
from hapgpu.simulate import WCSPerturbation, simulate_visit
from hapgpu.svm._config import HAP_DETECTORS, hap_config
from hapgpu.svm._pipeline import run_svm

from ._pipeline_visit import file_hashes

BASE = "hst_17001_01_wfc3_ir_"
TOTAL = f"{BASE}total_isim01"
EXPOSURES = ("isim01a0", "isim01a1")


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    root = tmp_path_factory.mktemp("svm_align")
    visit = simulate_visit(root / "visit", "wfc3-ir", 2, shape=(256, 256), star_density=3000.0,
                           seed=11, wcs_error=WCSPerturbation((0.35, -0.35), rotation_deg=0.02))
    before = file_hashes(root / "visit")
    out = root / "out"
    pars = root / "custom_pars.json"
    code = run_svm(visit.poller, out, refcat=visit.refcat, previews=False, backend="cpu",
                   progress=False, output_custom_pars=pars)
    return {"code": code, "out": out, "unchanged": before == file_hashes(root / "visit"),
            "visit": visit, "pars": pars, "root": root}


def _run_custom(aligned, name, change) -> dict:
    """run_svm -c with the total's alignment block of the written parameters changed."""
    data = json.loads(aligned["pars"].read_text())
    for block in ("parameters", "default_values"):
        change(data[TOTAL][block]["alignment"])
    custom = aligned["root"] / f"{name}.json"
    custom.write_text(json.dumps(data))
    out = aligned["root"] / name
    code = run_svm(aligned["visit"].poller, out, refcat=aligned["visit"].refcat, previews=False,
                   backend="cpu", progress=False, custom_pars=custom)
    return {"code": code, "out": out}


def _sci_header(folder, exposure):
    return fits.getheader(folder / f"{BASE}f160w_{exposure}_flt.fits", ("SCI", 1))


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
    for exposure in EXPOSURES:
        header = _sci_header(out, exposure)
        assert header["WCSNAME"].endswith("-FIT_SVM_GAIAeDR3"), header["WCSNAME"]
        assert header["NMATCHES"] >= 12
        assert header["FITGEOM"] == "rscale"
        hlet = fits.getheader(out / f"{BASE}f160w_{exposure}_hlet.fits")
        assert hlet["CATALOG"] == "GAIAeDR3"
    assert aligned["unchanged"]


@pytest.mark.slow
def test_custom_fit_geometry_reaches_the_fit(aligned):
    """-c with every method on the ``general`` geometry (and a match count the visit meets)."""
    def general(block):
        block["run_align"]["mosaic_fitgeom_list"] = {"rscale": 12, "general": 12}
        for method in ("relative", "2dhist", "default"):
            block[f"match_{method}_fit"]["fitgeom"] = "general"

    run = _run_custom(aligned, "general", general)
    assert run["code"] == 0
    for exposure in EXPOSURES:
        header = _sci_header(run["out"], exposure)
        assert header["FITGEOM"] == "general"
        assert header["WCSNAME"].endswith("-FIT_SVM_GAIAeDR3")
        default = _sci_header(aligned["out"], exposure)
        assert (header["CD1_1"], header["CD2_1"]) != (default["CD1_1"], default["CD2_1"])


@pytest.mark.slow
def test_custom_minimum_matches_rejects_the_fit(aligned):
    """-c asking for more matches than the visit has: no fit is accepted, the WCS is kept."""
    def strict(block):
        block["determine_fit_quality"]["MIN_FIT_MATCHES"] = 10000

    run = _run_custom(aligned, "strict", strict)
    assert run["code"] == 0
    lines = (run["out"] / "wfc3_sim_01_manifest.txt").read_text().splitlines()
    assert not [name for name in lines if name.endswith("_hlet.fits")]
    for record, exposure in zip(aligned["visit"].exposures, EXPOSURES):
        header = _sci_header(run["out"], exposure)
        assert header["WCSNAME"] == fits.getval(record.path, "WCSNAME", ("SCI", 1))
        assert "FIT_" not in header["WCSNAME"]


@pytest.mark.slow
def test_bad_custom_alignment_parameter_exits_1_naming_it(aligned, caplog):
    def typo(block):
        block["run_align"]["mosaic_fitgeom_lst"] = block["run_align"].pop("mosaic_fitgeom_list")

    with caplog.at_level(logging.ERROR, logger="hapgpu"):
        run = _run_custom(aligned, "typo", typo)
    assert run["code"] == 1
    assert "mosaic_fitgeom_lst" in caplog.text and "mosaic_fitgeom_list" in caplog.text
    assert not run["out"].exists()


def test_missing_reference_catalogue_file_exits_1(tmp_path, caplog):
    poller = tmp_path / "p.out"
    poller.write_text("ib4606c5q_flc.fits\n")
    with caplog.at_level(logging.ERROR, logger="hapgpu"):
        assert run_svm(poller, tmp_path / "out", refcat=tmp_path / "nope.ecsv") == 1
    assert "nope.ecsv" in caplog.text
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- the mapping
def _total_block(inst, det, pipeline="svm"):
    return hap_config("total", inst, det, n_exposures=3, expstart_mjd=58000.0,
                      pipeline=pipeline).alignment


@pytest.mark.parametrize("inst, det", HAP_DETECTORS)
def test_shipped_blocks_map_onto_the_detector_defaults(inst, det):
    """Every number of the shipped block is the engine's default for the detector, except
    ACS/WFC's MAX_SOURCES_PER_CHIP: ``general`` says 500, but drizzlepac's AlignmentTable merges
    ``determine_fit_quality`` (250) over it, and that is what its source finding uses."""
    pars = alignment_pars_from_hap(_total_block(inst, det), inst, det)
    default = alignment_pars(inst, det)
    if (inst, det) == ("acs", "wfc"):
        assert (pars.max_sources_per_chip, default.max_sources_per_chip) == (250, 500)
        pars = pars.with_overrides(max_sources_per_chip=500)
    assert pars.match == {m: type(v)(v.searchrad, v.separation, v.tolerance, v.use2dhist,
                                     "rscale") for m, v in default.match.items()}
    assert pars.with_overrides(match_pars=None) == default
    assert pars.min_observable_threshold == 4      # determine_fit_quality's, not run_align's 10


def test_custom_block_values_reach_the_parameters():
    block = copy.deepcopy(_total_block("wfc3", "uvis"))
    block["generate_source_catalogs"].update(box_size=13, nsigma=4.5, threshold=-1.5,
                                             bkg_estimator="MedianBackground", classify=False,
                                             rms_estimator="MADStdBackgroundRMS")
    block["determine_fit_quality"].update(MIN_FIT_MATCHES=8, MAX_FIT_RMS=15, MAX_FIT_LIMIT=90,
                                          MAX_SOURCES_PER_CHIP=120)
    block["run_align"]["mosaic_fit_list"] = ["match_2dhist_fit"]
    block["run_align"]["mosaic_fitgeom_list"] = {"shift": 3, "rscale": 20}
    block["match_2dhist_fit"].update(searchrad=80, tolerance=1.5, fitgeom="shift")
    pars = alignment_pars_from_hap(block, "WFC3", "UVIS")
    assert (pars.box_size, pars.nsigma, pars.threshold_scale) == (13, 4.5, 1.5)
    assert (pars.bkg_estimator, pars.rms_estimator, pars.classify) == \
        ("MedianBackground", "MADStdBackgroundRMS", False)
    assert (pars.min_fit_matches, pars.max_fit_rms, pars.max_fit_limit) == (8, 15.0, 90.0)
    assert pars.max_sources_per_chip == 120
    assert pars.fit_methods == ("2dhist",)
    assert pars.fitgeom_min_matches == {"shift": 3, "rscale": 20}
    assert (pars.match["2dhist"].searchrad, pars.match["2dhist"].tolerance) == (80.0, 1.5)
    assert pars.method_fitgeom("2dhist") == "shift"
    assert pars.method_fitgeom("default") == "rscale"
    # a positive threshold keeps the default detection threshold (drizzlepac's else branch)
    block["generate_source_catalogs"]["threshold"] = 2.0
    assert alignment_pars_from_hap(block, "WFC3", "UVIS").threshold_scale == 1.0


def test_missing_sections_keep_the_detector_defaults():
    pars = alignment_pars_from_hap({"general": {"MIN_FIT_MATCHES": 6}}, "WFC3", "IR")
    assert pars.min_fit_matches == 6
    assert pars.with_overrides(min_fit_matches=4, match_pars=None) == alignment_pars("WFC3", "IR")


@pytest.mark.parametrize("change, message", [
    (lambda b: b.update(run_aling={}), r"section 'run_aling' \(did you mean run_align\?\)"),
    (lambda b: b["general"].update(MIN_FIT_MATCH=3),
     r"general\.MIN_FIT_MATCH \(did you mean MIN_FIT_MATCHES\?\)"),
    (lambda b: b["generate_source_catalogs"].update(box_size=0), "box_size: must be an integer"),
    (lambda b: b["generate_source_catalogs"].update(nsigma="3"), "nsigma: must be a finite"),
    (lambda b: b["generate_source_catalogs"].update(bkg_estimator="Mode"), "bkg_estimator"),
    (lambda b: b["generate_source_catalogs"].update(centering_mode="segmentation"),
     "implements only 'starfind'"),
    (lambda b: b["run_align"].update(mosaic_fit_list=["match_best_fit"]), "mosaic_fit_list"),
    (lambda b: b["run_align"].update(mosaic_fitgeom_list={"affine": 3}), "affine"),
    (lambda b: b["match_default_fit"].update(fitgeom="shift"),
     "'shift' is not in mosaic_fitgeom_list"),
    (lambda b: b["match_2dhist_fit"].update(use2dhist="yes"), "use2dhist: must be true or false"),
])
def test_bad_blocks_are_refused_naming_the_source(change, message):
    block = copy.deepcopy(_total_block("wfc3", "ir"))
    change(block)
    with pytest.raises(InvalidParameterError, match=message) as info:
        alignment_pars_from_hap(block, "WFC3", "IR", source="custom parameter file my.json")
    assert "my.json" in str(info.value)


@pytest.mark.parametrize("n_reference, min_sources, expected", [
    (30, 10, ["general", "rscale"]),   # general failed: rscale tried, sources are few
    (30, 20, ["general"]),             # more sources than rscale needs: no downgrade
    (20, 50, ["rscale"]),              # too few stars for general: downgraded at once
    (5, 50, []),                       # too few stars for any geometry
])
def test_svm_fit_geometry_downgrade(n_reference, min_sources, expected):
    block = copy.deepcopy(_total_block("wfc3", "uvis"))
    block["match_2dhist_fit"]["fitgeom"] = "general"
    pars = alignment_pars_from_hap(block, "WFC3", "UVIS")
    assert list(_svm_geometries(pars, "2dhist", n_reference, min_sources)) == expected
    assert list(_svm_geometries(pars, "default", 30, 10)) == ["rscale"]
