"""Alignment recovers the simulator's true WCS (a priori errors of 0.49 arcsec and 0.02 deg).

Each instrument goes through another route: WFC3/IR through the loopback catalogue service
(``$ASTROMETRIC_CATALOG_URL``), ACS/HRC through a FITS catalogue and the SVM procedure,
ACS/WFC through a CSV catalogue and image-by-image fits (WFC3/UVIS, through the command line
and an ECSV catalogue, is in ``test_align_update.py``).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from astropy.table import Table

from hapgpu.align import align_exposures

from ._catalog_server import CatalogServer
from ._helpers import copy_visit, rms, truth_offsets_mas

pytestmark = pytest.mark.slow


def _check(result, folder, files, limit_mas, label):
    for exp in result.exposures:
        assert exp.status == "aligned", exp.message
        assert re.fullmatch(rf"IDC_\w+-FIT_{label}_GAIAeDR3", exp.wcsname), exp.wcsname
        assert 0 < exp.rms_ra < 50 and 0 < exp.rms_dec < 50
        assert exp.n_matches >= 12
        assert exp.fit_quality in (1, 2, 3, 4)
    after = rms(truth_offsets_mas(folder, files))
    assert after <= limit_mas, f"truth RMS after alignment {after:.2f} mas > {limit_mas} mas"
    return after


def test_wfc3_ir_through_the_catalogue_service(visit_cache, tmp_path, monkeypatch):
    folder, files = copy_visit(visit_cache("wfc3-ir"), tmp_path)
    before = rms(truth_offsets_mas(folder, files))
    assert before > 300.0                      # the a priori error is really there
    refcat = Table.read(folder / "refcat.ecsv", format="ascii.ecsv")
    with CatalogServer(refcat) as server:
        monkeypatch.setenv("ASTROMETRIC_CATALOG_URL", server.url)
        result = align_exposures(files, backend="cpu")
        queries = list(server.queries)
    assert queries and queries[0]["CAT"] == "GAIAeDR3" and "EPOCH" in queries[0]
    assert float(queries[0]["EPOCH"]) == pytest.approx(2011.13, abs=0.01)
    _check(result, folder, files, 10.0, "REL")
    assert result.selected.method == "relative"


def test_acs_hrc_with_a_fits_catalogue_svm_procedure(visit_cache, tmp_path):
    folder, files = copy_visit(visit_cache("acs-hrc"), tmp_path)
    refcat = folder / "refcat.fits"
    Table.read(folder / "refcat.ecsv", format="ascii.ecsv").write(refcat, format="fits")
    result = align_exposures(files, refcat=refcat, fit_label="SVM", backend="cpu")
    assert result.mode == "svm"
    _check(result, folder, files, 5.0, "SVM")


def test_acs_wfc_with_a_csv_catalogue_image_by_image(visit_cache, tmp_path):
    folder, files = copy_visit(visit_cache("acs-wfc"), tmp_path)
    refcat = folder / "refcat.csv"
    Table.read(folder / "refcat.ecsv", format="ascii.ecsv").write(refcat, format="ascii.csv")
    result = align_exposures(files, refcat=refcat, fit_label="IMG", backend="cpu")
    assert all(a.method != "relative" for a in result.attempts)
    _check(result, folder, files, 5.0, "IMG")
    # Each exposure got its own fit (its own RMS).
    assert result.exposures[0].rms_ra != result.exposures[1].rms_ra
    assert np.isfinite([e.fit_rms for e in result.exposures]).all()
