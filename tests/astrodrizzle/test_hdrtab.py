"""HDRTAB of AstroDrizzle products: column sets, typing rules, fitsblender and drizzlepac as oracles."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
from astropy.io import fits

import hapgpu
from hapgpu.astrodrizzle._hdrtab import build_hdrtab, hdrtab_columns
from hapgpu.errors import InvalidInputError

QUICK = dict(static=False, driz_separate=False, median=False, blot=False, driz_cr=False)


def _shipped() -> dict:
    return json.loads(resources.files("hapgpu").joinpath("data", "hdrtab_columns.json").read_text("utf-8"))


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
