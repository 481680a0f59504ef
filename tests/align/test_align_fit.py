"""Fit grading (drizzlepac's determine_fit_quality rules), WCS names and types."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from hapgpu.align import alignment_pars, determine_fit_quality, fit_wcsname, interpret_wcsname_type
from hapgpu.align._fit import check_relative_consistency, reference_weights

PARS = alignment_pars("WFC3", "UVIS")


def _chip(name="a_flc.fits", chip=1, *, n=30, fit_rms=5.0, total_rms=5.0, shift=(0.5, -0.3),
          status="SUCCESS", correlated=True, method="2dhist"):
    rng = np.random.default_rng(n)
    ref_mag = rng.uniform(16, 21, n)
    input_mag = ref_mag - 25.0 if correlated else rng.uniform(-10, -5, n)
    info = {"status": status, "shift": np.array(shift), "FIT_RMS": fit_rms,
            "TOTAL_RMS": total_rms, "ref_mag": ref_mag, "input_mag": input_mag,
            "fitgeom": "rscale"}
    return SimpleNamespace(meta={"filename": name, "chip": chip, "pscale": 0.04,
                                 "fit method": method, "fit_info": info})


def _grade(chips, *, remaining=False, pipeline=True, n_reference=200):
    return determine_fit_quality(chips, PARS, catalogs_remaining=remaining,
                                 consistency_check=pipeline, n_reference=n_reference)


def test_quality_codes():
    good = _grade([_chip(), _chip("b_flc.fits")])
    assert good.quality == 1 and good.is_good and good.total_rms == 5.0
    # RMS between MAX_FIT_RMS (20 mas) and 1000 mas, shifts consistent: 3.
    mid = _grade([_chip(fit_rms=40.0, total_rms=40.0)])
    assert mid.quality == 3
    # Few matches with uncorrelated magnitudes: valid but compromised.
    comp = _grade([_chip(n=8, correlated=False)])
    assert comp.quality == 2 and comp.chips[("a_flc.fits", 1)].compromised
    comp_big = _grade([_chip(n=8, correlated=False, fit_rms=40.0, total_rms=40.0)])
    assert comp_big.quality == 4


def test_invalid_fits():
    assert _grade([_chip(status="FAILED: not enough matches")]).quality == 5
    assert _grade([_chip(fit_rms=200.0, total_rms=200.0)]).quality == 5
    too_few = _grade([_chip(n=3)])
    assert too_few.quality == 5
    assert "few" in too_few.chips[("a_flc.fits", 1)].reason
    # Shifts of the exposures disagree by far more than max(TOTAL_RMS, 20 mas) / pscale.
    spread = [_chip(shift=(0.0, 0.0)), _chip("b_flc.fits", shift=(3.0, 0.0))]
    assert _grade(spread).quality == 5
    assert _grade(spread, pipeline=False).quality == 1        # SVM: no consistency check
    # Radial offset: a 10-arcsec shift (250 px) fails (n + 2) 0.36 > 0.8 + (10 / 10)^8 for n=1.
    far = _grade([_chip(n=1, shift=(250.0, 0.0))], pipeline=False)
    assert far.quality == 5 and "radial" in far.chips[("a_flc.fits", 1)].reason


def test_relative_consistency_rotation_steps():
    def corrector(rot, n, status="SUCCESS"):
        return SimpleNamespace(meta={"fit_info": {"status": status, "rot": (rot, rot),
                                                  "proper_rot": rot, "nmatches": n}})

    reference = SimpleNamespace(meta={"fit_info": {"status": "REFERENCE"}})
    ok = [reference, corrector(0.01, 30), corrector(0.02, 30)]
    assert check_relative_consistency(ok)
    bad = [reference, corrector(0.0, 30), corrector(0.5, 3)]
    assert not check_relative_consistency(bad)
    assert all(c.meta["fit_info"]["status"] == "FAILED" for c in bad)


def test_reference_weights():
    from astropy.table import Table

    table = Table({"RA_error": [1.0, 0.5, np.nan], "DEC_error": [1.0, 0.5, 1.0]})
    assert np.allclose(reference_weights(table), [0.5, 2.0, 0.0])
    no_errors = Table({"RA_error": [np.nan, np.nan], "DEC_error": [np.nan, np.nan]})
    assert np.allclose(reference_weights(no_errors), 1.0)


@pytest.mark.parametrize("current, label, catalog, expected", [
    ("IDC_2731450pi-GSC240", "REL", "GAIAeDR3", "IDC_2731450pi-FIT_REL_GAIAeDR3"),
    ("IDC_2731450pi-FIT_SVM_GAIADR2", "SVM", "GAIAeDR3", "IDC_2731450pi-FIT_SVM_GAIAeDR3"),
    ("IDC_w3m18525i", "IMG", "GSC242", "IDC_w3m18525i-FIT_IMG_GSC242"),
    ("", "MVM", "2MASS", "FIT_MVM_2MASS"),
])
def test_fit_wcsname(current, label, catalog, expected):
    assert fit_wcsname(current, label, catalog) == expected


def test_wcstype():
    assert interpret_wcsname_type("IDC_2731450pi") == "undistorted not aligned"
    assert interpret_wcsname_type("OPUS") == "pipeline default not aligned"
    assert interpret_wcsname_type("IDC_x-GSC240") == \
        "undistorted a priori solution based on GSC240"
    assert interpret_wcsname_type("IDC_x-FIT_REL_GAIAeDR3") == \
        "undistorted a posteriori solution relatively aligned to GAIAEDR3"
    assert interpret_wcsname_type("IDC_x-FIT_MVM_GAIAeDR3").endswith(
        "aligned by skycell to GAIAEDR3")
    assert interpret_wcsname_type("TWEAK") == "user-defined"
