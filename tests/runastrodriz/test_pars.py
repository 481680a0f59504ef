"""runastrodriz drizzle parameters (hap-pipeline.md §3.3): MDRIZTAB rows and the pipeline's
changes to them."""

from __future__ import annotations

import contextlib
import io
import re

import numpy as np
import pytest
from astropy.io import fits

from hapgpu.astrodrizzle import resolve_parameters
from hapgpu.errors import InvalidInputError
from hapgpu.runastrodriz._pars import (
    FOCUS_PARS,
    MdriztabRow,
    filter_string,
    final_parameters,
    focus_parameters,
    mdriztab_parameters,
    nocr_parameters,
    read_mdriztab,
    select_mdriztab_row,
    verification_parameters,
)

DETECTORS = [("WFC3", "UVIS"), ("WFC3", "IR"), ("ACS", "WFC"), ("ACS", "HRC"), ("ACS", "SBC")]


def _rows(*spec):
    return [MdriztabRow(f, n, {"i": i}) for i, (f, n) in enumerate(spec)]


@pytest.mark.parametrize("filters, n, expected", [
    ("F555W", 1, 0),       # ANY rows: numimages 1 qualifies
    ("F555W", 2, 1),
    ("F555W", 5, 1),       # last ANY row with numimages <= 5
    ("F555W", 6, 2),
    ("F555W", 40, 2),
    ("G102", 1, 0),        # G102 rows exist but none has numimages <= 1: row 0 (as coded)
    ("G102", 3, 3),
    ("G102", 4, 4),
    ("CLEAR", 0, 0),       # nothing qualifies: row 0
])
def test_row_selection(filters, n, expected):
    rows = _rows(("ANY", 1), ("ANY", 2), ("ANY", 6), ("G102", 2), ("G102", 4))
    assert select_mdriztab_row(rows, filters, n) == expected


def test_row_selection_without_any_rows():
    rows = _rows(("F606W", 3), ("F814W", 1))
    assert select_mdriztab_row(rows, "F555W", 5) == 0
    assert select_mdriztab_row(rows, "F814W", 5) == 1


@pytest.mark.parametrize("inst, det", DETECTORS)
def test_shipped_tables_are_valid_parameters(inst, det):
    rows = read_mdriztab(inst, det)
    assert rows and rows[0].filter == "ANY" and rows[0].numimages == 1
    for row in rows:
        params = resolve_parameters(row.parameters)  # names and values AstroDrizzle accepts
        # pipeline products stay on the default frame (the single drizzles' frame)
        assert params.final_wcs is False and params.final_rot is None and params.final_scale is None
    n1 = resolve_parameters(rows[0].parameters)
    assert not n1.driz_cr and not n1.median  # one image: no cosmic-ray rejection


def test_unsupported_detector():
    with pytest.raises(InvalidInputError, match="no MDRIZTAB parameter rows for WFPC2/PC"):
        read_mdriztab("WFPC2", "PC")
    with pytest.raises(InvalidInputError, match="no focus parameters for STIS/CCD"):
        focus_parameters("stis", "ccd")


def test_focus_table():
    assert focus_parameters("wfc3", "ir") == FOCUS_PARS["WFC3/IR"]
    assert (FOCUS_PARS["WFC3/IR"].sigma, FOCUS_PARS["WFC3/IR"].good_bits) == (2.0, 512)
    for key in ("WFC3/UVIS", "ACS/WFC", "ACS/HRC", "WFPC2/PC"):
        assert (FOCUS_PARS[key].sigma, FOCUS_PARS[key].good_bits) == (1.5, 1360)
    assert (FOCUS_PARS["ACS/SBC"].sigma, FOCUS_PARS["ACS/SBC"].good_bits) == (2.0, 0)


def test_filter_string():
    h = fits.Header({"INSTRUME": "ACS", "FILTER1": "F606W", "FILTER2": "CLEAR2L"})
    assert filter_string(h) == "F606W,CLEAR2L"
    assert filter_string(fits.Header({"INSTRUME": "WFC3", "FILTER": "F555W"})) == "F555W"
    h = fits.Header({"INSTRUME": "ACS", "FILTER1": "F115LP", "FILTER2": "  "})
    assert filter_string(h) == "F115LP"
    with pytest.raises(InvalidInputError, match="no INSTRUME"):
        filter_string(fits.Header())


def test_mdriztab_row_of_files(rad_dir):
    files = sorted(rad_dir.glob("*_flc.fits"))
    assert mdriztab_parameters(files[:1])["driz_cr"] is False  # numimages 1 row
    two = mdriztab_parameters(files)
    assert two == read_mdriztab("WFC3", "UVIS")[1].parameters


def test_verification_parameters(rad_dir):
    files = sorted(rad_dir.glob("*_flc.fits"))
    pars = verification_parameters(files, files, num_cores=3)
    row = read_mdriztab("WFC3", "UVIS")[1].parameters
    assert pars["mdriztab"] is False and pars["final_fillval"] == "INDEF"
    assert pars["driz_sep_kernel"] == "turbo" and pars["driz_sep_fillval"] == 0.0
    assert pars["resetbits"] == 0 and pars["num_cores"] == 3
    assert pars["stepsize"] == 10 and pars["clean"] is False and pars["in_memory"] is True
    assert pars["combine_type"] == row["combine_type"] and pars["combine_nhigh"] == row["combine_nhigh"]
    params = resolve_parameters(pars)
    assert params.final_fillval is None and params.resetbits == 0
    # exposure times differing by more than a factor 2: median, no high rejection
    pars = verification_parameters(files, files, exptimes=[100.0, 250.0])
    assert (pars["combine_type"], pars["combine_nhigh"]) == ("median", 0)
    pars = verification_parameters(files, files, exptimes=[100.0, 200.0])
    assert pars["combine_type"] == row["combine_type"]


def test_nocr_parameters():
    base = {"skysub": False, "driz_cr": True, "median": True, "static": True, "driz_sep_bits": 0}
    out = nocr_parameters(base, 1360)
    assert out["driz_sep_bits"] == 1360 and out["skysub"] is False
    assert not (out["median"] or out["blot"] or out["driz_cr"] or out["static"])
    assert out["driz_separate"] and out["final_fillval"] == "INDEF" and out["resetbits"] == 0
    assert base["driz_cr"] is True  # not modified in place
    resolve_parameters(out)


def test_final_parameters(rad_dir):
    files = sorted(rad_dir.glob("*_flc.fits"))
    pars = final_parameters(files, in_memory=False, num_cores=2)
    assert pars["clean"] is True and pars["resetbits"] == 4096 and pars["mdriztab"] is True
    assert pars["in_memory"] is False and pars["stepsize"] == 10 and pars["preserve"] is False
    row = read_mdriztab("WFC3", "UVIS")[1].parameters
    assert {k: pars[k] for k in row} == row  # every step parameter is the row's
    assert resolve_parameters(pars).crbit == 4096


# ----------------------------------------------------------------------------- oracle
def _mdriztab_fits(path, rows):
    """An MDRIZTAB-format table of ``rows`` (filter, numimages, combine_type, final_pixfrac)."""
    cols = [fits.Column("filter", "24A", array=np.array([r.filter for r in rows])),
            fits.Column("numimages", "J", array=np.array([r.numimages for r in rows])),
            fits.Column("combine_type", "12A",
                        array=np.array([r.parameters["combine_type"] for r in rows])),
            fits.Column("final_pixfrac", "E",
                        array=np.array([r.parameters["final_pixfrac"] for r in rows]))]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(path)


@pytest.mark.reference
@pytest.mark.slow  # the first call imports drizzlepac (seconds)
@pytest.mark.parametrize("filters, n", [("F105W", 1), ("F105W", 3), ("F105W", 9),
                                        ("G102", 1), ("G102", 2), ("G141", 7)])
def test_row_choice_equals_drizzlepac(tmp_path, filters, n):
    """drizzlepac's getMdriztabParameters on the same rows (as a FITS MDRIZTAB) picks the
    same row."""
    from drizzlepac import mdzhandler

    rows = read_mdriztab("WFC3", "IR")
    table = tmp_path / "test_mdz.fits"
    _mdriztab_fits(table, rows)
    files = []
    for i in range(n):
        path = tmp_path / f"f{i}_flt.fits"
        fits.PrimaryHDU(header=fits.Header({"INSTRUME": "WFC3", "DETECTOR": "IR",
                                            "FILTER": filters, "MDRIZTAB": str(table)})).writeto(path)
        files.append(str(path))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ref = mdzhandler.getMdriztabParameters(files)
    ref_row = int(re.search(r"read from row (\d+)", out.getvalue()).group(1)) - 1
    ours = select_mdriztab_row(rows, filter_string(fits.getheader(files[0])), n)
    assert ours == ref_row
    assert ref["combine_type"] == rows[ours].parameters["combine_type"]
    assert ref["final_pixfrac"] == pytest.approx(rows[ours].parameters["final_pixfrac"])
