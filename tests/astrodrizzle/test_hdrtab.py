"""HDRTAB of AstroDrizzle products: column sets, typing rules, fitsblender and drizzlepac as oracles."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
from astropy.io import fits

import hapgpu
from hapgpu.astrodrizzle._hdrtab import apply_primary_rules, build_hdrtab, hdrtab_columns
from hapgpu.astrodrizzle._parameters import resolve_parameters
from hapgpu.errors import InvalidInputError, InvalidParameterError

QUICK = dict(static=False, driz_separate=False, median=False, blot=False, driz_cr=False)


def _shipped() -> dict:
    return json.loads(resources.files("hapgpu").joinpath("data", "hdrtab_columns.json").read_text("utf-8"))


def _shipped_mvm() -> dict:
    return json.loads(resources.files("hapgpu").joinpath("data", "header_rules_mvm.json").read_text("utf-8"))


def _headers(instrument="WFC3", rootname="iaaa01a0q", extver=1, **sci_values):
    primary = fits.Header({"SIMPLE": True, "TELESCOP": "HST", "INSTRUME": instrument, "ROOTNAME": rootname,
                           "FILENAME": f"{rootname}_flc.fits", "EXPTIME": 400.0, "PROPOSID": 17001,
                           "DATE": "2011-02-19"})
    sci = fits.Header({"XTENSION": "IMAGE", "EXTNAME": "SCI", "EXTVER": extver, "CCDCHIP": 3 - extver,
                       "INHERIT": True, "BUNIT": "ELECTRONS", "DATE": "2026-01-01"})
    for key, value in sci_values.items():
        sci[key] = value
    return primary, sci


# ----------------------------------------------------------------------------- column sets
def test_shipped_sets_cover_the_hap_instruments():
    sets = _shipped()["instruments"]
    assert {"WFC3", "ACS", "WFPC2", "HST"} <= set(sets)
    for name, entry in sets.items():
        columns = entry["columns"]
        assert columns[:3] == ["ROOTNAME", "EXTNAME", "EXTVER"], name
        assert len(set(columns)) == len(columns), name
        assert all(c == c.strip().upper() and 0 < len(c) <= 8 for c in columns), name
    assert (len(sets["WFC3"]["columns"]), len(sets["ACS"]["columns"]), len(sets["WFPC2"]["columns"])) == (276, 293, 274)


def test_columns_merge_in_input_order_and_fall_back_to_hst():
    sets = {k: v["columns"] for k, v in _shipped()["instruments"].items()}
    assert hdrtab_columns(["wfc3 "]) == sets["WFC3"]
    assert hdrtab_columns(["COS"]) == sets["HST"]
    merged = hdrtab_columns(["WFC3", "ACS", "WFC3"])
    assert merged[: len(sets["WFC3"])] == sets["WFC3"]
    assert merged[len(sets["WFC3"]):] == [c for c in sets["ACS"] if c not in sets["WFC3"]]
    with pytest.raises(InvalidInputError, match="no input instrument"):
        hdrtab_columns([])


# ----------------------------------------------------------------------------- table rules
def test_rows_columns_and_types():
    rows = [_headers(rootname="iaaa01a0q", extver=1, MDRIZSKY=1.5, CRMASK=True, CRSIGMAS="6.5,5.0,4.0"),
            _headers(rootname="iaaa01a0q", extver=2, MDRIZSKY=2, CRMASK=False),
            _headers(rootname="iaaa01a1q", extver=1, MDRIZSKY=0, CRSIGMAS=""),
            _headers(rootname="iaaa01a1q", extver=2, CRMASK=True)]
    table = build_hdrtab(rows)
    assert table.name == "HDRTAB" and "EXTVER" not in table.header
    assert table.columns.names == hdrtab_columns(["WFC3"])
    data, formats = table.data, dict(zip(table.columns.names, table.columns.formats))
    assert list(data["ROOTNAME"]) == ["iaaa01a0q", "iaaa01a0q", "iaaa01a1q", "iaaa01a1q"]
    assert list(data["EXTVER"]) == [1, 2, 1, 2] and formats["EXTVER"] == "K"
    assert list(data["CCDCHIP"]) == [2, 1, 2, 1]
    assert formats["SIMPLE"] == "L" and data["SIMPLE"].all()
    assert formats["PROPOSID"] == "K" and formats["EXPTIME"] == "D"
    # the PRIMARY value wins over the SCI one
    assert list(data["DATE"]) == ["2011-02-19"] * 4
    # integers and reals -> real; a missing value -> NaN
    assert formats["MDRIZSKY"] == "D"
    np.testing.assert_array_equal(data["MDRIZSKY"], [1.5, 2.0, 0.0, np.nan])
    # logical with a missing value -> real
    assert formats["CRMASK"] == "D"
    np.testing.assert_array_equal(data["CRMASK"], [1.0, 0.0, np.nan, 1.0])
    # text with a missing value -> 'nan', 32 characters wide (a real written as text)
    assert formats["CRSIGMAS"] == "32A"
    assert list(data["CRSIGMAS"]) == ["6.5,5.0,4.0", "nan", "", "nan"]
    # text everywhere: as wide as the longest; a keyword nowhere: NaN reals
    assert formats["ROOTNAME"] == "9A" and formats["BUNIT"] == "9A"
    assert formats["A_ORDER"] == "D" and np.isnan(data["A_ORDER"]).all()


def test_undefined_value_counts_as_missing():
    primary, sci = _headers()
    sci["EXPNAME"] = None  # a card with no value
    table = build_hdrtab([(primary, sci), _headers(EXPNAME="iaaa01a0q")])
    assert table.columns["EXPNAME"].format == "32A"
    assert list(table.data["EXPNAME"]) == ["nan", "iaaa01a0q"]


def test_bad_input_names_the_chip():
    primary, sci = _headers()
    del primary["INSTRUME"]
    with pytest.raises(InvalidInputError, match=r"x_flc.fits\[sci,1\]: primary header has no INSTRUME"):
        build_hdrtab([(primary, sci)], sources=["x_flc.fits[sci,1]"])
    with pytest.raises(InvalidInputError, match="no input headers"):
        build_hdrtab([])
    with pytest.raises(InvalidInputError, match="2 source labels for 1 rows"):
        build_hdrtab([_headers()], sources=["a", "b"])
    with pytest.raises(InvalidInputError, match=r"a\.fits: EXPNAME values .* no common FITS table type"):
        build_hdrtab([_headers(EXPNAME=2**70), _headers(EXPNAME=1)], sources=["a.fits", "b.fits"])


@pytest.mark.reference
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.parametrize("instrument", ["WFC3", "ACS", "WFPC2"])
def test_table_equals_fitsblender(tmp_path, instrument):
    """fitsblender's table (what drizzlepac's product carries) from files with mixed-type values."""
    blendheaders = pytest.importorskip("fitsblender.blendheaders")
    chips = {("a", 1): dict(MDRIZSKY=1.25, CRMASK=True, CRSIGMAS="6.5", PHOTFLAM=1e-19, NCOMBINE=1),
             ("a", 2): dict(MDRIZSKY=3, CRMASK=False, PHOTFLAM=2e-19, NCOMBINE=1),
             ("b", 1): dict(CRMASK=True, CRSIGMAS="", PHOTFLAM=1, NCOMBINE=2.5),
             ("b", 2): dict(MDRIZSKY=0.1 + 0.2, CRMASK=True, CRSIGMAS="x" * 40, NCOMBINE=1)}
    names = []
    for root in ("a", "b"):
        hdus = [fits.PrimaryHDU()]
        for extver in (1, 2):
            primary, sci = _headers(instrument, rootname=f"{root}000000q", extver=extver, **chips[root, extver])
            hdus[0].header.update(primary)
            hdus.append(fits.ImageHDU(np.zeros((2, 2), np.float32), sci, name="SCI"))
            names.append(f"{tmp_path / root}_flc.fits[sci,{extver}]")
        fits.HDUList(hdus).writeto(tmp_path / f"{root}_flc.fits")
    with fits.open(tmp_path / "a_flc.fits") as hdul:  # the headers as a file gives them back
        file_rows = [(hdul[0].header.copy(), hdul[i].header.copy()) for i in (1, 2)]
    with fits.open(tmp_path / "b_flc.fits") as hdul:
        file_rows += [(hdul[0].header.copy(), hdul[i].header.copy()) for i in (1, 2)]
    _, ref = blendheaders.get_blended_headers(names)
    ours = build_hdrtab(file_rows)
    assert ours.columns.names == ref.columns.names
    assert ours.columns.formats == ref.columns.formats
    for name in ref.columns.names:
        np.testing.assert_array_equal(ours.data[name], ref.data[name], err_msg=name)
    assert repr(ours.header) == repr(ref.header)


# ----------------------------------------------------------------------------- in the product
def test_product_carries_hdrtab_of_every_chip(small_inputs):
    rootnames = [fits.getval(p, "ROOTNAME") for p in small_inputs]
    result = hapgpu.astrodrizzle(small_inputs, small_inputs[0].parent / "prod", backend="cpu", **QUICK)
    with fits.open(result.product) as hdul:
        assert [h.name for h in hdul][-1] == "HDRTAB" and hdul[0].header["NEXTEND"] == len(hdul) - 1 == 4
        table = hdul["HDRTAB"].data
        assert list(table["ROOTNAME"]) == [r for r in rootnames for _ in (1, 2)]
        assert list(table["EXTVER"]) == [1, 2] * 3
        assert list(table["FILENAME"]) == [p.name for p in small_inputs for _ in (1, 2)]
        # MDRIZSKY as the sky step left it in the inputs
        sky = [fits.getval(p, "MDRIZSKY", ("SCI", k)) for p in small_inputs for k in (1, 2)]
        np.testing.assert_array_equal(table["MDRIZSKY"], sky)
        # the first input's primary values, not the product's
        assert table["EXPTIME"][0] == fits.getval(small_inputs[0], "EXPTIME") < hdul[0].header["EXPTIME"]


def test_product_without_sky_subtraction_records_the_input_sky_or_zero(small_inputs):
    # AstroDrizzle keeps an input's MDRIZSKY and adds 0 where there is none
    with fits.open(small_inputs[0], mode="update") as hdul:
        hdul["SCI", 1].header.remove("MDRIZSKY", ignore_missing=True)
        hdul["SCI", 2].header["MDRIZSKY"] = 7.5
    result = hapgpu.astrodrizzle(small_inputs[:1], small_inputs[0].parent / "one", backend="cpu",
                                 skysub=False, **QUICK)
    with fits.open(result.product) as hdul:
        np.testing.assert_array_equal(hdul["HDRTAB"].data["MDRIZSKY"], [0.0, 7.5])


# The product's HDRTAB against drizzlepac's AstroDrizzle: tests/astrodrizzle/test_reference.py
# (test_hdrtab_equals_drizzlepac, on the chain comparison's products).


# ----------------------------------------------------------------------------- MVM header rules
def test_mvm_rule_sets_record_wcstype_and_keep_the_default():
    mvm = _shipped_mvm()["instruments"]
    assert set(mvm) == {"WFC3", "ACS", "WFPC2"}
    for name, entry in mvm.items():
        assert entry["columns"][:3] == ["ROOTNAME", "EXTNAME", "EXTVER"], name
        assert len(set(entry["columns"])) == len(entry["columns"]), name
        assert len(set(entry["primary_delete"])) == len(entry["primary_delete"]), name
    assert {"IPPPSSOO", "ASN_ID", "QUALCOM1"} <= set(mvm["WFC3"]["primary_delete"])
    assert "CALIBRATION REFERENCE FILES" in mvm["WFC3"]["primary_delete_sections"]
    wfc3 = hdrtab_columns(["WFC3"], "mvm")
    assert "WCSTYPE" in wfc3 and "SKYCELL" not in wfc3
    assert "SKYCELL" in hdrtab_columns(["WFC3"]) and "WCSTYPE" not in hdrtab_columns(["WFC3"])
    assert hdrtab_columns(["WFC3"], "default") == _shipped()["instruments"]["WFC3"]["columns"]
    assert hdrtab_columns(["COS"], "mvm") == _shipped()["instruments"]["HST"]["columns"]  # no MVM set
    assert build_hdrtab([_headers()], rules="mvm").columns.names == wfc3
    with pytest.raises(InvalidInputError, match="header rules 'svm2'"):
        hdrtab_columns(["WFC3"], "svm2")
    with pytest.raises(InvalidParameterError, match="header_rules"):
        resolve_parameters(header_rules="svm2")
    assert resolve_parameters().header_rules == "default"


def _sectioned_primary():
    """A primary header with HST-style section titles (blank-keyword cards)."""
    header = fits.Header()
    header["INSTRUME"] = "WFC3"
    header["ROOTNAME"] = "iaaa01a0q"
    header["PA_V3"] = (123.4, "position angle of V3-axis of HST (deg)")
    header["IPPPSSOO"] = "iaaa01a0"
    header.append(fits.Card("", "", ""), end=True)
    header.append(fits.Card("", "/ CALIBRATION SWITCHES: PERFORM, OMIT, COMPLETE, SKIPPED"), end=True)
    header.append(fits.Card("", "", ""), end=True)
    header["DQICORR"] = "COMPLETE"
    header["FLATCORR"] = "COMPLETE"
    header.append(fits.Card("", "", ""), end=True)
    header.append(fits.Card("", "/ PATTERN KEYWORDS"), end=True)
    header["PATTERN1"] = "NONE"
    header.append(fits.Card("", "", ""), end=True)
    header.append(fits.Card("", "/ ENGINEERING PARAMETERS"), end=True)
    header["CCDAMP"] = "ABCD"
    header.add_history("calibrated")
    return header


def test_mvm_primary_rules_drop_sections_deleted_and_table_keywords():
    header = _sectioned_primary()
    before = header.tostring()
    out = apply_primary_rules(header, ["WFC3"], "mvm")
    assert header.tostring() == before  # the input header is untouched
    assert "DQICORR" not in out and "FLATCORR" not in out and "IPPPSSOO" not in out
    assert not any("CALIBRATION SWITCHES" in str(card.value) for card in out.cards)
    assert out["PA_V3"] == 0 and out["INSTRUME"] == "WFC3" and out["ROOTNAME"] == "iaaa01a0q"
    assert out["PATTERN1"] == "NONE" and "HISTORY" in out  # not an MVM section of WFC3
    acs = apply_primary_rules(header, ["ACS"], "mvm")  # ACS also drops its pattern section
    assert "PATTERN1" not in acs and "DQICORR" not in acs
    assert apply_primary_rules(header, ["WFC3"]).tostring() == before  # default: as it is


def test_product_comments_are_cut_to_fit_without_warning():
    from hapgpu.astrodrizzle._product import fit_comments

    header = fits.Header()
    name = "hst_skycell-p0121x12y16_wfc3_uvis_f555w_all-isim01a0_flc.fits[sci,1]"
    header["D001DATA"] = (name, "Drizzle, input data image")  # no room left for a comment
    header["D001OUWE"] = ("hst_skycell-p0121x12y16_wfc3_uvis_f555w_all_drc_wht.fits",
                          "Drizzle, output weighting image")
    header["D001PIXF"] = (1.0, "Drizzle, linear size of drop")
    header["LONGTEXT"] = ("x" * 100, "continued")
    fit_comments(header)
    text = header.tostring()  # filterwarnings=error: a truncation warning fails here
    assert header.comments["D001DATA"] == "" and header["D001DATA"] == name
    cut = header.comments["D001OUWE"]
    assert "Drizzle, output weighting image".startswith(cut) and 0 < len(cut) < 31
    assert len(str(header.cards["D001OUWE"]).rstrip()) >= 79
    assert header.comments["D001PIXF"] == "Drizzle, linear size of drop"
    assert header.comments["LONGTEXT"] == "continued" and "continued" in text


@pytest.mark.reference
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.parametrize("instrument", ["WFC3", "ACS"])
def test_mvm_rules_equal_fitsblender_with_drizzlepac_mvm_rules(tmp_path, monkeypatch, instrument):
    """fitsblender with drizzlepac's <instrument>_mvm_header_hap.rules (runmultihap's layers):
    the same HDRTAB columns, and the primary header keeps the same keywords of the input."""
    blendheaders = pytest.importorskip("fitsblender.blendheaders")
    drizzlepac = pytest.importorskip("drizzlepac")
    from pathlib import Path

    rules = Path(drizzlepac.__file__).parent / "pars" / f"{instrument.lower()}_mvm_header_hap.rules"
    monkeypatch.chdir(tmp_path)  # fitsblender prefers *.rules files of the working folder
    names, rows = [], []
    for root in ("a", "b"):
        primary = _sectioned_primary()
        primary["INSTRUME"] = instrument
        primary["TELESCOP"] = "HST"
        primary["ROOTNAME"] = f"{root}000000q"
        primary["PR_INV_L"] = "Hubble"
        primary["ASN_ID"] = "NONE"
        hdus = [fits.PrimaryHDU(header=primary)]
        for extver in (1, 2):
            _, sci = _headers(instrument, rootname=f"{root}000000q", extver=extver, WCSTYPE="a priori",
                              MDRIZSKY=1.5)
            hdus.append(fits.ImageHDU(np.zeros((2, 2), np.float32), sci, name="SCI"))
            names.append(f"{tmp_path / root}_flc.fits[sci,{extver}]")
        fits.HDUList(hdus).writeto(tmp_path / f"{root}_flc.fits")
        with fits.open(tmp_path / f"{root}_flc.fits") as hdul:
            rows += [(hdul[0].header.copy(), hdul[i].header.copy()) for i in (1, 2)]
    blended, table = blendheaders.get_blended_headers(names, rules_file=str(rules))
    ours = build_hdrtab(rows, rules="mvm")
    assert ours.columns.names == table.columns.names
    for name in ("ROOTNAME", "WCSTYPE", "MDRIZSKY"):
        np.testing.assert_array_equal(ours.data[name], table.data[name], err_msg=name)
    template = apply_primary_rules(rows[0][0], [instrument] * 2, "mvm")
    theirs = {k for k in blended[0] if k not in ("", "COMMENT", "HISTORY")}
    mine = {k for k in template if k not in ("", "COMMENT", "HISTORY")}
    assert mine <= theirs
    added = theirs - mine  # keywords fitsblender writes from combining rules over the inputs
    assert {"DQICORR", "FLATCORR", "IPPPSSOO", "ASN_ID"}.isdisjoint(theirs)
    assert "PR_INV_L" in mine and "PA_V3" in mine
    assert all(blended[0][k] == template[k] for k in mine if k not in ("DATE",)), \
        [k for k in mine if blended[0][k] != template[k]]
    assert not added & {"DQICORR", "FLATCORR"}
