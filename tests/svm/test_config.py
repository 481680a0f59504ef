"""HAP parameter selection (hapgpu.svm._config, hap-pipeline.md §1.7): conditions, merge order,
flattening, CI limits, custom parameter files. Expected values are the spec's tables."""

from __future__ import annotations

import json

import pytest
from astropy.time import Time

from hapgpu.astrodrizzle import AstroDrizzleParameters, resolve_parameters
from hapgpu.catalogs import catalog_parameters
from hapgpu.errors import InvalidParameterError, OutputWriteError
from hapgpu.svm._config import (
    HAP_DETECTORS,
    STEPS,
    UVIS_POST_2012_MJD,
    flatten_astrodrizzle,
    hap_conditions,
    hap_config,
    merge_parameters,
    output_custom_pars,
    read_custom_pars,
)

POST = 58000.0      # 2017
PRE = 55500.0       # 2010

UVIS_F555W = "hst_11665_06_wfc3_uvis_f555w_ib4606"


def test_uvis_epoch_is_2012_11_08_025915_utc():
    assert UVIS_POST_2012_MJD == pytest.approx(Time("2012-11-08T02:59:15", scale="utc").mjd, abs=1e-9)
    assert hap_conditions("total", "wfc3", "uvis", n_exposures=2, expstart_mjd=UVIS_POST_2012_MJD) \
        == ("total_basic_post",)
    assert hap_conditions("total", "wfc3", "uvis", n_exposures=2,
                          expstart_mjd=UVIS_POST_2012_MJD - 1e-6) == ("total_basic_pre",)


# (kind, instrument, detector, n, filters, expstart, pipeline) -> conditions (spec §1.7)
CONDITIONS = [
    (("total", "wfc3", "uvis", 4, None, POST, "svm"), ("total_basic_post",)),
    (("total", "wfc3", "uvis", 1, None, PRE, "svm"), ("total_basic_pre", "any_n1")),
    (("total", "acs", "wfc", 1, None, None, "svm"), ("total_basic", "any_n1")),
    (("total", "wfpc2", "pc", 7, None, None, "svm"), ("total_basic",)),
    (("exposure", "acs", "hrc", 1, "f250w", None, "svm"), ("single_basic", "any_n1")),
    (("exposure", "acs", "hrc", 3, "f250w", None, "svm"), ("single_basic",)),
    (("filter", "wfc3", "ir", 1, "f160w", None, "svm"), ("filter_basic", "any_n1")),
    (("filter", "acs", "wfc", 2, "f606w", None, "svm"), ("filter_basic", "acs_wfc_any_n2")),
    (("filter", "acs", "wfc", 5, "f606w", None, "svm"), ("filter_basic", "acs_wfc_any_n2")),
    (("filter", "acs", "wfc", 6, "f606w", None, "svm"), ("filter_basic", "acs_wfc_any_n6")),
    (("filter", "acs", "hrc", 9, "f330w", None, "svm"), ("filter_basic", "acs_hrc_any_n6")),
    (("filter", "acs", "sbc", 2, "F115LP", None, "svm"), ("filter_basic", "acs_sbc_blue_n2")),
    (("filter", "acs", "sbc", 6, "f122m", None, "svm"), ("filter_basic", "acs_sbc_blue_n6")),
    (("filter", "acs", "sbc", 6, "f150lp", None, "svm"), ("filter_basic", "acs_sbc_any_any")),
    (("filter", "wfc3", "ir", 3, "f160w", None, "svm"), ("filter_basic", "wfc3_ir_any_n2")),
    (("filter", "wfc3", "ir", 4, "f160w", None, "svm"), ("filter_basic", "wfc3_ir_any_n4")),
    (("filter", "wfc3", "ir", 4, "g141", None, "svm"), ("filter_basic", "wfc3_ir_grism_n4")),
    (("filter", "wfc3", "uvis", 5, "f555w", POST, "svm"), ("filter_basic", "wfc3_uvis_any_post_n2")),
    (("filter", "wfc3", "uvis", 6, "f555w", POST, "svm"), ("filter_basic", "wfc3_uvis_any_post_n6")),
    (("filter", "wfc3", "uvis", 2, "f555w", PRE, "svm"), ("filter_basic", "wfc3_uvis_any_pre_n2")),
    (("filter", "wfc3", "uvis", 8, "f555w", PRE, "svm"), ("filter_basic", "wfc3_uvis_any_pre_n6")),
    (("filter", "wfpc2", "pc", 2, "f555w", None, "svm"), ("filter_basic", "wfpc2_pc_any_n2")),
    (("filter", "wfpc2", "wf", 3, "f555w", None, "svm"), ("filter_basic", "wfpc2_pc_any_n3")),
    (("filter", "wfpc2", "pc", 4, "f555w", None, "svm"), ("filter_basic", "wfpc2_pc_any_n4")),
    # MVM: one n2 entry for every n > 1; UVIS always post_n2 (even pre-2012, even n = 0)
    (("filter", "acs", "wfc", 9, "f606w", None, "mvm"), ("filter_basic", "acs_wfc_any_n2")),
    (("filter", "wfc3", "ir", 9, "f160w", None, "mvm"), ("filter_basic", "wfc3_ir_any_n2")),
    (("filter", "wfc3", "uvis", 0, "f555w", PRE, "mvm"), ("filter_basic", "wfc3_uvis_any_post_n2")),
    (("filter", "wfpc2", "pc", 9, "f555w", None, "mvm"), ("filter_basic", "wfpc2_pc_any_n2")),
    (("filter", "acs", "wfc", 0, "f606w", None, "mvm"), ("filter_basic",)),
    (("filter", "acs", "sbc", 7, "f115lp", None, "mvm"), ("filter_basic", "acs_sbc_blue_n6")),
]


@pytest.mark.parametrize(("args", "expected"), CONDITIONS, ids=lambda v: "-".join(map(str, v)))
def test_conditions(args, expected):
    kind, inst, det, n, filters, mjd, pipeline = args
    assert hap_conditions(kind, inst.upper(), det.upper(), n_exposures=n, filters=filters,
                          expstart_mjd=mjd, pipeline=pipeline) == expected


def _astro(kind, inst, det, n, filters=None, mjd=None, pipeline="svm", **kw):
    config = hap_config(kind, inst, det, n_exposures=n, filters=filters, expstart_mjd=mjd,
                        pipeline=pipeline, **kw)
    return config, config.astrodrizzle_parameters()


def test_effective_values_match_the_spec_table():
    # hap-pipeline.md §1.7 "Effective AstroDrizzle values, SVM"
    _, p = _astro("exposure", "wfc3", "uvis", 3, "f555w")
    assert (p.final_bits, p.driz_separate, p.skysub, p.static, p.resetbits) == (65535, False, False, False, 0)
    _, p = _astro("exposure", "wfc3", "uvis", 1, "f555w")
    assert (p.static, p.resetbits, p.driz_cr) == (True, 4096, False)
    _, p = _astro("filter", "wfc3", "uvis", 3, "f555w", POST)
    assert (p.final_bits, p.combine_type, p.combine_nhigh, p.driz_cr_scale, p.sky_bits, p.skystat) \
        == (336, "minmed", 1, (1.5, 1.2), 80, "median")
    _, p = _astro("filter", "wfc3", "uvis", 6, "f555w", POST)
    assert (p.final_pixfrac, p.combine_type, p.driz_cr_scale) == (0.8, "median", (1.2, 0.7))
    _, p = _astro("filter", "wfc3", "uvis", 2, "f555w", PRE)
    assert (p.final_bits, p.sky_bits) == (352, 96)
    _, p = _astro("total", "wfc3", "uvis", 4, mjd=PRE)
    assert (p.final_bits, p.final_fillval, p.driz_separate, p.sky_bits) == (96, 0.0, False, 16)
    _, p = _astro("filter", "acs", "hrc", 2, "f330w")
    assert (p.final_scale, p.final_bits, p.sky_bits) == (0.025, 64, 64)
    _, p = _astro("total", "acs", "sbc", 2)
    assert (p.final_scale, p.final_bits, p.skysub, p.static, p.final_fillval) == (0.025, 0, False, False, None)
    _, p = _astro("filter", "acs", "sbc", 3, "f150lp")
    assert (p.skysub, p.skystat, p.driz_separate) == (False, "mean", False)
    _, p = _astro("filter", "wfc3", "ir", 2, "f160w")
    assert (p.driz_sep_bits, p.final_bits, p.driz_cr_snr, p.driz_cr_scale) == (65535, 528, (5.0, 4.0), (3.0, 2.4))
    _, p = _astro("filter", "wfc3", "ir", 5, "f160w")
    assert (p.driz_sep_bits, p.combine_type) == (528, "median")
    _, p = _astro("filter", "wfpc2", "pc", 2, "f555w")
    assert (p.final_bits, p.combine_type, p.driz_cr_snr) == (61437, "minmed", (5.5, 3.5))
    _, p = _astro("total", "wfpc2", "pc", 3)
    assert (p.final_bits, p.driz_separate, p.combine_type, p.static, p.resetbits) == (1024, True, "median", True, 4096)
    for inst, det in HAP_DETECTORS:
        for kind in ("total", "filter", "exposure"):
            _, p = _astro(kind, inst, det, 3, "f555w", POST)
            assert p.final_rot == 0.0 or not p.final_wcs
            assert (p.final_kernel, p.final_wht_type, p.final_units, p.crbit) == ("square", "EXP", "cps", 4096)


@pytest.mark.parametrize(("name", "case"), [
    ("acs_wfc_n2", ("acs", "wfc", 2, "f606w")), ("acs_wfc_n6", ("acs", "wfc", 6, "f606w")),
    ("wfc3_uvis_n2", ("wfc3", "uvis", 2, "f555w")), ("wfc3_uvis_n6", ("wfc3", "uvis", 6, "f555w")),
    ("wfc3_ir_n2", ("wfc3", "ir", 2, "f160w"))])
def test_named_astrodrizzle_sets_are_the_selected_filter_parameters(name, case):
    inst, det, n, filters = case
    _, params = _astro("filter", inst, det, n, filters, POST)
    assert params == resolve_parameters(name)


def test_astrodrizzle_block_is_flat_and_typed():
    config, _ = _astro("filter", "wfc3", "uvis", 2, "f555w", POST)
    assert not any(isinstance(v, dict) for v in config.astrodrizzle.values())
    assert not any(k.startswith("STEP") for k in config.astrodrizzle)
    assert config.astrodrizzle["final_bits"] == 336 and config.astrodrizzle["combine_nsigma"] == [4.0, 3.0]
    assert config.blocks["astrodrizzle"] == ("filter_basic", "wfc3_uvis_any_post_n2")
    assert config.blocks["alignment"] == ("all",)       # the 'all' fallback
    assert config.alignment["run_align"]["mosaic_fitgeom_list"] == {"rscale": 12, "general": 25}


def test_every_shipped_block_resolves():
    for pipeline in ("svm", "mvm"):
        for inst, det in HAP_DETECTORS:
            for n in (1, 2, 3, 4, 6):
                for kind in ("total", "filter", "exposure"):
                    if pipeline == "mvm" and kind == "total":
                        continue
                    kw = {"mean_n_exposures": float(n)} if (pipeline, kind) == ("mvm", "filter") else {}
                    for filters in ("f555w", "f115lp", "g102"):
                        config = hap_config(kind, inst, det, n_exposures=n, filters=filters,
                                            expstart_mjd=POST, pipeline=pipeline, **kw)
                        assert isinstance(config.astrodrizzle_parameters(), AstroDrizzleParameters)
                        assert set(config.steps) == set(STEPS)


def test_every_index_entry_names_a_block():
    from hapgpu.svm._config import _block, _detector_table

    for pipeline in ("svm", "mvm"):
        for inst, det in HAP_DETECTORS:
            index = _detector_table(pipeline, inst, det)["index"]
            assert set(index) == set(STEPS)
            assert index["catalog generation"] == index["quality control"] == {"all": "catalogs"}
            assert list(index["alignment"]) == ["all"]
            for step in ("alignment", "astrodrizzle"):
                for ref in index[step].values():
                    block = _block(pipeline, inst, det, ref)
                    if step == "astrodrizzle":
                        assert isinstance(resolve_parameters(flatten_astrodrizzle(block)), AstroDrizzleParameters)


def test_mvm_layers_use_rounded_meannexp():
    one = hap_config("filter", "acs", "wfc", n_exposures=5, filters="f606w", pipeline="mvm",
                     mean_n_exposures=1.4)
    assert (one.n_exposures, one.conditions) == (1, ("filter_basic", "any_n1"))
    half = hap_config("filter", "acs", "wfc", n_exposures=5, filters="f606w", pipeline="mvm",
                      mean_n_exposures=2.5)          # Python's round: halves to even
    assert (half.n_exposures, half.conditions) == (2, ("filter_basic", "acs_wfc_any_n2"))
    # the MVM SBC index has no acs_sbc_any_any: only filter_basic applies
    sbc = hap_config("filter", "acs", "sbc", n_exposures=3, filters="f150lp", pipeline="mvm",
                     mean_n_exposures=3.0)
    assert sbc.conditions == ("filter_basic", "acs_sbc_any_any")
    assert sbc.blocks["astrodrizzle"] == ("filter_basic",)


def test_catalog_blocks_and_ci_limits():
    config = hap_config("filter", "wfc3", "uvis", n_exposures=3, filters="f555w", expstart_mjd=POST,
                        product_basename=UVIS_F555W)
    shipped = catalog_parameters("wfc3", "uvis")
    assert config.steps["catalog generation"] == shipped.generation
    assert config.catalog.generation == shipped.generation
    ci = config.quality_control["ci filter"]
    # ci_ap_cor_table_ap_20_2016.txt row WFC3_UVIS_F555W: lower 0.72, upper 1.01 (not the file's)
    assert (ci["aperture"]["ci_lower_limit"], ci["aperture"]["ci_upper_limit"]) == (0.72, 1.01)
    assert (ci["segment"]["ci_lower_limit"], ci["segment"]["ci_upper_limit"]) == (0.72, 1.01)
    assert config.catalog.quality_control == config.quality_control
    total = hap_config("total", "wfc3", "uvis", n_exposures=3, expstart_mjd=POST,
                       product_basename="hst_11665_06_wfc3_uvis_total_ib4606")
    assert total.quality_control == shipped.quality_control        # ..._TOTAL: not in the table
    assert hap_config("filter", "wfc3", "uvis", n_exposures=3, filters="f555w",
                      expstart_mjd=POST).quality_control == config.quality_control
    # MVM names shift the tokens: the table is never hit, the file values stay
    mvm = hap_config("filter", "wfc3", "uvis", n_exposures=3, filters="f555w", pipeline="mvm",
                     mean_n_exposures=3.0, product_basename="hst_skycell-p0797x14y06_wfc3_uvis_f555w_all")
    assert mvm.quality_control == catalog_parameters("wfc3", "uvis", mvm=True).quality_control
    assert "TWEAK_FWHMPSF" not in mvm.steps["catalog generation"]     # file layout kept
    assert mvm.catalog.generation["TWEAK_FWHMPSF"] == mvm.steps["catalog generation"]["dao"]["TWEAK_FWHMPSF"]


def test_merge_is_recursive_later_wins_and_copies():
    a = {"x": 1, "s": {"p": 1, "q": {"deep": 1}}, "keep": [1]}
    b = {"x": 2, "s": {"q": {"deep": 2, "new": 3}}, "y": {"z": 1}}
    c = {"s": 5}
    merged = merge_parameters(a, b)
    assert merged == {"x": 2, "s": {"p": 1, "q": {"deep": 2, "new": 3}}, "keep": [1], "y": {"z": 1}}
    merged["s"]["q"]["deep"] = 99
    merged["keep"].append(2)
    assert a == {"x": 1, "s": {"p": 1, "q": {"deep": 1}}, "keep": [1]}
    assert b["s"]["q"]["deep"] == 2
    assert merge_parameters(a, b, c)["s"] == 5
    assert merge_parameters() == {}


def test_flatten_drops_headings_in_order():
    block = {"crbit": 4096, "STEP 1: STATIC MASK": {"static": True},
             "STEP 7: FINAL": {"final_bits": 1, "nested": {"final_pixfrac": 0.5}}, "final_bits": 2}
    assert flatten_astrodrizzle(block) == {"crbit": 4096, "static": True, "final_bits": 2, "final_pixfrac": 0.5}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"product_kind": "visit"}, "product_kind"),
    ({"detector": "wfc"}, "no HAP parameters"),
    ({"pipeline": "evm"}, "pipeline"),
    ({"expstart_mjd": None}, "expstart_mjd"),
    ({"expstart_mjd": float("nan")}, "expstart_mjd"),
    ({"n_exposures": 0}, "n_exposures"),
    ({"n_exposures": 2.5}, "n_exposures"),
    ({"n_exposures": True}, "n_exposures"),
    ({"filters": None}, "filters"),
    ({"mean_n_exposures": 2.0}, "mean_n_exposures"),
    ({"custom": {}}, "product_basename"),
])
def test_bad_arguments_raise(kwargs, message):
    args = {"product_kind": "filter", "instrument": "wfc3", "detector": "uvis", "n_exposures": 3,
            "filters": "f555w", "expstart_mjd": POST}
    args.update(kwargs)
    with pytest.raises(InvalidParameterError, match=message):
        hap_config(**args)


def test_mvm_filter_needs_meannexp_and_sbc_needs_filter():
    with pytest.raises(InvalidParameterError, match="MEANNEXP"):
        hap_config("filter", "acs", "wfc", n_exposures=3, filters="f606w", pipeline="mvm")
    with pytest.raises(InvalidParameterError, match="mean_n_exposures"):
        hap_config("filter", "acs", "wfc", n_exposures=3, filters="f606w", pipeline="mvm",
                   mean_n_exposures=-1.0)
    with pytest.raises(InvalidParameterError, match="ACS/SBC"):
        hap_conditions("filter", "acs", "sbc", n_exposures=3)
    with pytest.raises(InvalidParameterError, match="no astrodrizzle parameters"):
        # the MVM WFPC2 index has no total_basic (MVM makes no totals) and no 'all' entry
        hap_config("total", "wfpc2", "pc", n_exposures=3, pipeline="mvm")


# --------------------------------------------------------------------------- custom files
def test_custom_round_trip(tmp_path):
    configs = [
        hap_config("filter", "wfc3", "uvis", n_exposures=3, filters="f555w", expstart_mjd=POST,
                   product_basename=UVIS_F555W),
        hap_config("total", "wfc3", "uvis", n_exposures=3, expstart_mjd=POST,
                   product_basename="hst_11665_06_wfc3_uvis_total_ib4606"),
    ]
    path = output_custom_pars(configs, tmp_path / "custom.json")
    data = json.loads(path.read_text())
    assert sorted(data) == sorted(c.product_basename for c in configs)
    assert data[UVIS_F555W]["parameters"] == data[UVIS_F555W]["default_values"] == configs[0].as_dict()
    assert [p.name for p in tmp_path.iterdir()] == ["custom.json"]       # no temporary left
    for config in configs:
        back = hap_config(config.product_kind, "wfc3", "uvis", n_exposures=3, filters="f555w",
                          expstart_mjd=POST, custom=path, product_basename=config.product_basename)
        assert back.steps == config.steps
        assert back.catalog == config.catalog
        assert back.custom_source == str(path)
        assert back.blocks == {step: () for step in STEPS}


def test_custom_replaces_the_selection(tmp_path):
    path = tmp_path / "custom.json"
    base = hap_config("filter", "wfc3", "uvis", n_exposures=3, filters="f555w", expstart_mjd=POST,
                      product_basename=UVIS_F555W).as_dict()
    tuned = json.loads(json.dumps(base))
    tuned["astrodrizzle"] = {"STEP 7: DRIZZLE FINAL COMBINED IMAGE": {"final_pixfrac": "0.6"}}
    tuned["quality control"]["ci filter"]["aperture"]["lookup_ci_limits_from_table"] = False
    tuned["quality control"]["ci filter"]["aperture"]["ci_lower_limit"] = 0.5
    tuned["catalog generation"]["nsigma"] = 9.0
    path.write_text(json.dumps({UVIS_F555W: {"parameters": base, "default_values": tuned}}))
    config = hap_config("filter", "wfc3", "uvis", n_exposures=3, filters="f555w", expstart_mjd=POST,
                        custom=path, product_basename=UVIS_F555W)
    assert config.astrodrizzle == {"final_pixfrac": "0.6"}     # not merged over the selection
    params = config.astrodrizzle_parameters()
    assert params.final_pixfrac == 0.6 and params.final_bits == AstroDrizzleParameters().final_bits
    assert config.quality_control["ci filter"]["aperture"]["ci_lower_limit"] == 0.5
    assert config.quality_control["ci filter"]["segment"]["ci_lower_limit"] == 0.72     # looked up
    assert config.catalog.generation["nsigma"] == 9.0
    plain = hap_config("filter", "wfc3", "uvis", n_exposures=3, filters="f555w", expstart_mjd=POST,
                       custom=path, product_basename=UVIS_F555W, use_defaults=False)
    assert plain.steps == hap_config("filter", "wfc3", "uvis", n_exposures=3, filters="f555w",
                                     expstart_mjd=POST, product_basename=UVIS_F555W).steps


def test_custom_file_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(InvalidParameterError, match="nope.json"):
        read_custom_pars(missing, UVIS_F555W)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidParameterError, match="bad.json: not valid JSON"):
        read_custom_pars(bad, UVIS_F555W)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hst_other": {"default_values": {}}}))
    with pytest.raises(InvalidParameterError, match="no entry for product"):
        read_custom_pars(other, UVIS_F555W)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({UVIS_F555W: {"default_values": {"astrodrizzle": {}}}}))
    with pytest.raises(InvalidParameterError, match="lacks the step"):
        read_custom_pars(partial, UVIS_F555W)
    with pytest.raises(InvalidParameterError, match="'parameters'"):
        read_custom_pars(partial, UVIS_F555W, use_defaults=False)
    steps = hap_config("filter", "wfc3", "uvis", n_exposures=3, filters="f555w", expstart_mjd=POST,
                       product_basename=UVIS_F555W).as_dict()
    steps["astrodrizzle"]["final_pixfrack"] = 0.5
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({UVIS_F555W: {"default_values": steps}}))
    with pytest.raises(InvalidParameterError, match=r"typo.json.*final_pixfrack.*final_pixfrac"):
        hap_config("filter", "wfc3", "uvis", n_exposures=3, filters="f555w", expstart_mjd=POST,
                   custom=typo, product_basename=UVIS_F555W)


def test_output_custom_pars_updates_and_refuses_its_input(tmp_path):
    path = tmp_path / "pars.json"
    path.write_text(json.dumps({"hst_keep": {"parameters": {}, "default_values": {}}}))
    first = hap_config("filter", "wfc3", "uvis", n_exposures=3, filters="f555w", expstart_mjd=POST,
                       product_basename=UVIS_F555W)
    output_custom_pars(first, path)
    assert sorted(json.loads(path.read_text())) == sorted(["hst_keep", UVIS_F555W])
    reread = hap_config("filter", "wfc3", "uvis", n_exposures=3, filters="f555w", expstart_mjd=POST,
                        custom=path, product_basename=UVIS_F555W)
    with pytest.raises(InvalidParameterError, match="must have different names"):
        output_custom_pars(reread, tmp_path / "." / "pars.json")
    output_custom_pars(reread, tmp_path / "copy.json")
    with pytest.raises(InvalidParameterError, match="without product_basename"):
        output_custom_pars(hap_config("total", "acs", "wfc", n_exposures=2), tmp_path / "x.json")
    with pytest.raises(OutputWriteError, match="no_such_dir"):
        output_custom_pars(first, tmp_path / "no_such_dir" / "x.json")
