"""Typed AstroDrizzle parameters: defaults, conversion, merge order, shipped sets, hap_pars files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hapgpu.astrodrizzle import (
    PARAMETER_SETS,
    AstroDrizzleParameters,
    load_parameters,
    parse_bits,
    read_hap_pars,
    resolve_parameters,
    write_parameters,
)
from hapgpu.errors import InvalidParameterError


def test_defaults_are_astrodrizzle_cfg():
    p = AstroDrizzleParameters()
    assert (p.skymethod, p.skystat, p.skyclip, p.combine_type, p.combine_nsigma) == (
        "localmin", "median", 5, "minmed", (4.0, 3.0))
    assert (p.driz_sep_kernel, p.final_kernel, p.final_bits, p.crbit, p.resetbits) == (
        "turbo", "square", 0, 4096, 4096)
    assert p.driz_cr_snr == (3.5, 3.0) and p.driz_cr_scale == (1.2, 0.7)
    assert p.final_fillval is None and p.final_wht_type == "EXP"


def test_strings_become_typed_values():
    p = resolve_parameters(skyclip="5", final_pixfrac="0.8", combine_nsigma="4 3", driz_cr_snr="5.0,4.0",
                           final_bits="16,512", sky_bits="~4096", static="false", final_fillval="INDEF",
                           final_wht_type="err", driz_sep_wt_scl="2.5")
    assert p.skyclip == 5 and isinstance(p.skyclip, int)
    assert p.final_pixfrac == 0.8
    assert p.combine_nsigma == (4.0, 3.0) and p.driz_cr_snr == (5.0, 4.0)
    assert p.final_bits == 528 and p.sky_bits == 0xFFFF & ~4096
    assert p.static is False and p.final_fillval is None and p.final_wht_type == "ERR"
    assert p.driz_sep_wt_scl == "2.5"


@pytest.mark.parametrize("value, expected", [(None, None), ("", None), ("None", None), (0, 0), ("528", 528),
                                             ("16+512", 528), ("~0", 65535), (96.0, 96)])
def test_parse_bits(value, expected):
    assert parse_bits(value) == expected


@pytest.mark.parametrize("kwargs", [{"final_pixfrac": 1.5}, {"skymethod": "best"}, {"combine_nsigma": "4"},
                                    {"skyclip": "five"}, {"not_a_parameter": 1}, {"static": "maybe"},
                                    {"final_bits": "sixteen"}, {"driz_cr_grow": 0}, {"coeffs": False}])
def test_bad_values_are_rejected(kwargs):
    with pytest.raises(InvalidParameterError):
        resolve_parameters(**kwargs)


def test_merge_order_defaults_file_keywords(tmp_path):
    path = write_parameters(resolve_parameters(final_pixfrac=0.8, final_kernel="turbo"), tmp_path / "p.json")
    from_file = resolve_parameters(path)
    assert from_file.final_pixfrac == 0.8 and from_file.final_kernel == "turbo"
    assert from_file.skystat == "median"  # untouched default
    merged = resolve_parameters(path, final_pixfrac=0.7)
    assert merged.final_pixfrac == 0.7 and merged.final_kernel == "turbo"


def test_named_sets_load_and_differ_from_defaults():
    for name in PARAMETER_SETS:
        assert isinstance(resolve_parameters(name), AstroDrizzleParameters)
    basic = resolve_parameters("filter_basic")
    assert (basic.skymethod, basic.skystat, basic.final_bits, basic.final_fillval) == ("match", "mode", 528, 0.0)
    n6 = resolve_parameters("wfc3_uvis_n6")
    assert (n6.final_pixfrac, n6.combine_type, n6.driz_cr_scale) == (0.8, "median", (1.2, 0.7))
    assert "final_pixfrac=0.8" in repr(n6)


def test_json_roundtrip_keeps_types(tmp_path):
    p = resolve_parameters("wfc3_ir_n2")
    path = write_parameters(p, tmp_path / "ir.json", name="ir")
    data = json.loads(path.read_text())
    assert data["parameters"]["combine_nsigma"] == [4.0, 3.0] and data["parameters"]["final_bits"] == 528
    assert resolve_parameters(path) == p


def test_missing_or_invalid_files(tmp_path):
    with pytest.raises(InvalidParameterError, match="not found"):
        load_parameters(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidParameterError, match="not valid JSON"):
        load_parameters(bad)


def test_custom_parameter_file_format(tmp_path):
    custom = {"hst_1_01_wfc3_uvis_f555w_isim01": {
        "parameters": {"astrodrizzle": {"STEP 7: DRIZZLE FINAL COMBINED IMAGE": {"final_pixfrac": 0.5}}},
        "default_values": {"astrodrizzle": {"runfile": "x.log", "STEP 7: DRIZZLE FINAL COMBINED IMAGE":
                                            {"final_pixfrac": 0.6, "final_bits": "336"}}},
    }}
    path = tmp_path / "custom.json"
    path.write_text(json.dumps(custom))
    assert read_hap_pars(path) == {"final_pixfrac": 0.6, "final_bits": "336"}
    p = resolve_parameters(path, final_kernel="turbo")
    assert (p.final_pixfrac, p.final_bits, p.final_kernel) == (0.6, 336, "turbo")


# --------------------------------------------------------------------------- drizzlepac parity
def _hap_dir() -> Path:
    import drizzlepac

    path = Path(drizzlepac.__file__).parent / "pars" / "hap_pars" / "svm_parameters"
    assert path.is_dir(), f"drizzlepac {drizzlepac.__version__} has no {path}"
    return path


_SETS = {
    "filter_basic": ["any/any_astrodrizzle_filter_hap_basic.json"],
    "total_basic": ["any/any_astrodrizzle_total_hap_basic.json"],
    "acs_wfc_n2": ["any/any_astrodrizzle_filter_hap_basic.json", "acs/wfc/acs_wfc_astrodrizzle_any_n2.json"],
    "acs_wfc_n6": ["any/any_astrodrizzle_filter_hap_basic.json", "acs/wfc/acs_wfc_astrodrizzle_any_n6.json"],
    "wfc3_uvis_n2": ["any/any_astrodrizzle_filter_hap_basic.json", "wfc3/uvis/wfc3_uvis_astrodrizzle_any_n2.json"],
    "wfc3_uvis_n6": ["any/any_astrodrizzle_filter_hap_basic.json", "wfc3/uvis/wfc3_uvis_astrodrizzle_any_n6.json"],
    "wfc3_ir_n2": ["any/any_astrodrizzle_filter_hap_basic.json", "wfc3/ir/wfc3_ir_astrodrizzle_any_n2.json"],
}


@pytest.mark.reference
@pytest.mark.parametrize("name", sorted(_SETS))
def test_shipped_sets_equal_the_merged_hap_files(name):
    """Each shipped set is HAP's merge (later files win, headings dropped) of drizzlepac's files."""
    base = _hap_dir()
    merged: dict = {}
    for rel in _SETS[name]:
        raw = json.loads((base / rel).read_text())
        for key, value in raw.items():
            if isinstance(value, dict):
                merged.update(value)
            else:
                merged[key] = value
    assert resolve_parameters(name) == resolve_parameters(
        {k: v for k, v in merged.items() if k in AstroDrizzleParameters.__dataclass_fields__})


@pytest.mark.reference
def test_every_hap_astrodrizzle_file_is_readable():
    base = _hap_dir()
    files = sorted(base.glob("*/*/*astrodrizzle*.json")) + sorted(base.glob("any/*astrodrizzle*.json"))
    assert files
    for path in files:
        assert isinstance(resolve_parameters(path), AstroDrizzleParameters), path
