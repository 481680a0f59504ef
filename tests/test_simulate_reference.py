"""Simulated visits are valid inputs for drizzlepac: AstroDrizzle, the HAP filter, the poller."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from hapgpu.simulate import simulate_visit

pytestmark = [
    pytest.mark.reference,
    # drizzlepac and stsci.tools leave input files open (third-party; not ours to fix).
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    # stsci.image's median casts uncovered (all-masked) output pixels inside its C code.
    pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning"),
]


@pytest.fixture(autouse=True)
def _no_reference_files(monkeypatch):
    """Make sure nothing can find calibration reference files or CRDS."""
    for name in ("iref", "jref", "CRDS_PATH", "CRDS_SERVER_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("instrument, filters", [
    ("wfc3-uvis", "F606W"), ("wfc3-ir", "F140W"), ("acs-hrc", "F814W"),
])
def test_astrodrizzle_runs_on_a_simulated_visit(tmp_path, monkeypatch, instrument, filters):
    from drizzlepac import astrodrizzle

    result = simulate_visit(tmp_path / "visit", instrument, 3, filters, seed=17, shape=128)
    monkeypatch.chdir(result.outdir)
    astrodrizzle.AstroDrizzle(
        [p.name for p in result.files], output="simulated", build=True, in_memory=True,
        context=False, preserve=False, updatewcs=False, mdriztab=False, clean=True,
        num_cores=1, runfile="",
    )
    products = list(result.outdir.glob("simulated_dr?.fits"))
    assert len(products) == 1
    with fits.open(products[0]) as hdul:
        sci = hdul["SCI"].data
        assert np.isfinite(sci).mean() > 0.5
        assert np.nanmax(sci) > 10 * np.nanmedian(sci)  # stars made it through


def test_astrodrizzle_cleans_cosmic_rays_in_the_truth_mask(tmp_path, monkeypatch):
    """driz_cr flags (DQ 4096) mostly pixels that the truth mask marks as cosmic rays."""
    from drizzlepac import astrodrizzle

    result = simulate_visit(tmp_path / "visit", "wfc3-uvis", 3, seed=3, shape=(160, 192),
                            dither_pixels=0.0)
    monkeypatch.chdir(result.outdir)
    astrodrizzle.AstroDrizzle(
        [p.name for p in result.files], output="crtest", build=True, in_memory=True,
        context=False, preserve=False, updatewcs=False, mdriztab=False, clean=True,
        num_cores=1, runfile="", resetbits=0,
    )
    flagged = hit = truth = 0
    for path, mask_path in zip(result.files, result.crmasks):
        with fits.open(path) as hdul, fits.open(mask_path) as masks:
            for chip in (1, 2):
                found = (hdul["DQ", chip].data & 4096) > 0
                mask = masks["CRMASK", chip].data > 0
                flagged += found.sum()
                hit += (found & mask).sum()
                truth += mask.sum()
    assert truth > 0 and flagged > 0
    assert hit / truth > 0.5  # most deposited pixels are found
    assert hit / flagged > 0.5  # and most flags are real cosmic rays


def test_hap_filter_accepts_every_exposure(tmp_path):
    from drizzlepac.haputils import analyze

    for instrument in ("wfc3-uvis", "wfc3-ir", "acs-hrc"):
        result = simulate_visit(tmp_path / instrument, instrument, 2, seed=1, shape=64)
        table, usable = analyze.analyze_data([str(p) for p in result.files], type="SVM")
        assert list(usable) == [0, 1]
        assert np.all(table["doProcess"] == 1)


def test_svm_poller_is_read_by_drizzlepac(tmp_path, monkeypatch):
    from drizzlepac.haputils import poller_utils

    result = simulate_visit(tmp_path / "visit", "acs-hrc", 2, "F435W,F606W", seed=1, shape=64)
    monkeypatch.chdir(result.outdir)
    table = poller_utils.build_poller_table(result.poller.name, log_level=40)
    assert list(table["filename"]) == [p.name for p in result.files]
    assert set(table["detector"]) == {"HRC"}
    assert list(table["obset_id"]) == ["01", "01"]
    listed = poller_utils.build_poller_table(result.input_list.name, log_level=40)
    assert list(listed["filename"]) == [p.name for p in result.files]


def test_reference_catalogue_reads_as_a_table(tmp_path):
    result = simulate_visit(tmp_path / "visit", "wfc3-ir", 1, seed=1, shape=64)
    table = Table.read(result.refcat, format="ascii.ecsv")
    assert {"RA", "DEC", "mag", "objID"} <= set(table.colnames)
