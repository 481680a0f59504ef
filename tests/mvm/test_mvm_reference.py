"""``run_mvm`` against drizzlepac's ``runmultihap`` (issue 13's end-to-end comparison).

Inputs (:mod:`tests.mvm._cell_inputs`): two WFC3/UVIS F555W visits of 2 exposures (64x64
subarrays) and a WFC3/IR F160W visit of 2 exposures (48x48), all in the overlap of
``skycell-p0121x12y16`` and ``skycell-p0121x13y16``, plus one UVIS exposure 12" east listed as
OLD; one poller per cell, both listing every exposure. hapgpu runs both pollers in one call;
drizzlepac runs each on copies of the same files. Per cell: the same exit status and manifest;
per layer product (UVIS fine, IR coarse and fine): the same shape and WCS, SCI within 1e-4
relative + 1e-3 sigma on >= 99.9 % of the pixels, WHT within 1e-4, the footprint keywords within
1e-4, the same SCELLID, HAPLEVEL, PROPOSID, NUMEXP and HDRTAB HAP columns, the same HDRTAB column
names (drizzlepac's MVM header rules: WCSTYPE, no SKYCELL) and the same primary keywords with the
same values (less :data:`NOT_WRITTEN`).

A cheaper check compares the stages alone with drizzlepac's ``SkyFootprint`` on the coarse
cell: bounded WCS and footprint keywords.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from hapgpu.mvm._pipeline import run_mvm
from hapgpu.mvm._products import bounded_cell_frame, layer_footprint
from tests.svm._reference import (
    DRIZZLEPAC_MARKS,
    assert_footprint_keywords_match,
    assert_products_match,
    drizzled_products,
    manifest,
    run_runmultihap,
)

from ._cell_inputs import CELL, NEIGHBOUR, make_exposures, sample_rows, write_mvm_poller

pytestmark = DRIZZLEPAC_MARKS

#: Primary keywords of drizzlepac's layers that hapgpu does not write: fitsblender's record of
#: its rules file (RULESVER, BLENDVER, RULEFILE), drizzlepac's version (PROD_VER) and FILETYPE
#: (hapgpu's products never carry the inputs' FILETYPE).
NOT_WRITTEN = {"RULESVER", "BLENDVER", "RULEFILE", "PROD_VER", "FILETYPE"}
#: Primary keywords whose values differ by design: dates of writing and the footprint and
#: weight statistics (compared within 1e-4 by ``assert_footprint_keywords_match``; drizzlepac
#: writes them as float32).
OWN_VALUES = {"DATE", "IRAF-TLM", "MEANEXPT", "MEDEXPT", "MEANNEXP", "MEDNEXP", "MEANWHT", "MEDWHT",
              "NPIXFRAC"}


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    root = tmp_path_factory.mktemp("mvm_reference")
    inputs = root / "in"
    inputs.mkdir()
    rows = make_exposures(inputs, uvis_shape=64, ir_shape=48, second_uvis=True, ir=True, old=True)
    pollers = {cell: write_mvm_poller(root / f"{cell}_input.out", rows, cell) for cell in (CELL, NEIGHBOUR)}
    ours = root / "ours"
    code = run_mvm(list(pollers.values()), ours, backend="cpu", progress=False)
    refs = {cell: run_runmultihap(poller, root / f"ref_{cell}") for cell, poller in pollers.items()}
    return {"code": code, "ours": ours, "refs": refs}


def test_same_exit_status_and_manifests(comparison):
    assert comparison["code"] == 0
    for cell, (code, ref) in comparison["refs"].items():
        assert code == 0, cell
        name = f"{cell}_manifest.txt"
        theirs = manifest(ref, name)
        assert manifest(comparison["ours"], name) == theirs
        # UVIS fine, IR coarse and fine: a product and a trailer each
        assert len(drizzled_products(theirs)) == 3 and len(theirs) == 6


def test_same_layer_products(comparison):
    ours = comparison["ours"]
    for cell, (_, ref) in comparison["refs"].items():
        names = drizzled_products(manifest(ref, f"{cell}_manifest.txt"))
        assert_products_match(ours, ref, names)
        assert_footprint_keywords_match(ours, ref, names)
        for name in names:
            with fits.open(ours / name) as mine, fits.open(ref / name) as theirs:
                for key in ("SCELLID", "HAPLEVEL", "PROPOSID", "NUMEXP", "ROOTNAME", "DRIZPARS"):
                    assert mine[0].header[key] == theirs[0].header[key], (name, key)
                assert mine["SCI"].data.shape == theirs["SCI"].data.shape
                table_o, table_r = mine["HDRTAB"].data, theirs["HDRTAB"].data
                for column in ("SVMROOTNAME", "GENDATE", "HAPEXPNAME", "ROOTNAME"):
                    assert list(table_o[column]) == list(table_r[column]), (name, column)


def _primary_keywords(header) -> dict:
    """Keyword -> value of a primary header, less the blank, COMMENT, HISTORY and ``Dnnn*`` cards."""
    return {k: v for k, v in header.items()
            if k not in ("", "COMMENT", "HISTORY") and not (k[0] == "D" and k[1:4].isdigit())}


def test_mvm_header_rules_as_drizzlepac(comparison):
    """drizzlepac's ``<instrument>_mvm_header_hap.rules``: the HDRTAB columns (WCSTYPE where the
    default rules have SKYCELL) and the primary keywords (calibration switches and reference
    files, IPPPSSOO, ASN_ID, ... dropped; PA_V3 = 0) of every layer."""
    ours = comparison["ours"]
    for cell, (_, ref) in comparison["refs"].items():
        for name in drizzled_products(manifest(ref, f"{cell}_manifest.txt")):
            with fits.open(ours / name) as mine, fits.open(ref / name) as theirs:
                columns = mine["HDRTAB"].columns.names
                assert columns == theirs["HDRTAB"].columns.names, name
                assert "WCSTYPE" in columns and "SKYCELL" not in columns
                keys_o, keys_r = _primary_keywords(mine[0].header), _primary_keywords(theirs[0].header)
                assert set(keys_o) == set(keys_r) - NOT_WRITTEN, (name, set(keys_o) ^ (set(keys_r) - NOT_WRITTEN))
                assert "DQICORR" not in keys_o and "IPPPSSOO" not in keys_o and keys_o["PA_V3"] == 0
                differ = [k for k in keys_o if k not in OWN_VALUES and keys_o[k] != keys_r[k]]
                assert not differ, (name, {k: (keys_o[k], keys_r[k]) for k in differ})
                ndriz = mine[0].header["NDRIZIM"]
                assert [mine[0].header[f"D{i:03d}DATA"] for i in range(1, ndriz + 1)] == \
                    [theirs[0].header[f"D{i:03d}DATA"] for i in range(1, ndriz + 1)]


def test_layers_of_a_cell_share_the_bounded_frame(comparison):
    ours = comparison["ours"]
    for cell in (CELL, NEIGHBOUR):
        prefix = f"hst_{cell}_wfc3_"
        uvis = fits.getheader(ours / f"{prefix}uvis_f555w_all_drc.fits", "SCI")
        ir = fits.getheader(ours / f"{prefix}ir_f160w_all_drz.fits", "SCI")
        for key in ("NAXIS1", "NAXIS2", "CRPIX1", "CRPIX2"):
            assert uvis[key] == ir[key], (cell, key)


def test_frame_and_footprint_as_drizzlepac_skyfootprint(tmp_path):
    from drizzlepac.haputils import cell_utils

    paths = [row[1] for row in sample_rows(tmp_path)]
    cell = cell_utils.SkyCell.from_name(CELL, scale="coarse")
    footprint = cell_utils.SkyFootprint(cell.wcs)
    footprint.build([str(p) for p in paths], scale=True)
    frame = bounded_cell_frame(CELL, "coarse", paths)
    np.testing.assert_array_equal(frame.wcs.wcs.crpix, footprint.bounded_wcs.wcs.crpix)
    assert frame.wcs.pixel_shape == tuple(footprint.bounded_wcs.pixel_shape)
    np.testing.assert_array_equal(frame.wcs.wcs.cd, footprint.bounded_wcs.wcs.cd)
    np.testing.assert_array_equal(frame.wcs.wcs.crval, footprint.bounded_wcs.wcs.crval)
    good = footprint.total_mask > 0
    expected = {"NPIXFRAC": good.sum() / footprint.total_mask.size,
                "MEANEXPT": np.mean(footprint.scaled_mask[good]),
                "MEDEXPT": np.median(footprint.scaled_mask[good]),
                "MEANNEXP": np.mean(footprint.total_mask[good]),
                "MEDNEXP": np.median(footprint.total_mask[good])}
    mine = layer_footprint(frame, paths)
    for key, value in expected.items():
        assert mine.keywords[key][0] == pytest.approx(value, rel=1e-6), key
