"""``run_svm`` against drizzlepac's ``runsinglehap`` on ACS: a simulated ACS/WFC visit and a real
ACS/HRC exposure.

* ``acs-wfc``: a simulated ACS/WFC visit, F606W and F814W x 2 exposures, 64x64 subarrays of both
  chips (FLC inputs, ``_drc`` products).
* ``acs-hrc``: the real ACS/HRC exposure ``j8bt06nyq`` (47 Tuc, F606W, 60 s) as the 256x256
  cut-out of ``tests/data`` (see its README), one exposure in an 8-column poller (FLT inputs,
  ``_drz`` products). The file was calibrated in 2002, before ``MTFLAG`` was written into ACS
  headers; both pipelines need the keyword (drizzlepac's ``analyze_data`` raises KeyError, hapgpu
  names the file and the keyword, both exit 1: :func:`test_real_hrc_without_mtflag_is_refused_by_both`),
  so the visit's copy gets ``MTFLAG = 'F'`` (not a moving target), as reprocessed files carry.

Both pipelines run with alignment off, as in ``test_svm_reference`` (hapgpu ``align=False``,
drizzlepac with ``ASTROMETRIC_CATALOG_URL`` on a closed loopback port, with the same test-only
shims). Compared per visit: the manifest (also against the names written out here), every drizzled
product's shape and WCS, SCI (within 1e-4 relative + 1e-3 sigma on >= 99.9 % of the pixels), WHT
(1e-4 relative), the footprint keywords (1e-4 relative) and the renamed inputs' HAP keywords.
CPU time on the development machine: about 15 s (hapgpu) + 37 s (drizzlepac) for ACS/WFC and
5 s + 11 s for ACS/HRC, most of drizzlepac's in reading headers.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from astropy.io import fits

from hapgpu.simulate import simulate_visit
from hapgpu.simulate._io import poller_line
from hapgpu.svm._pipeline import run_svm

from ..conftest import data_file
from ._reference import (
    DRIZZLEPAC_MARKS,
    assert_footprint_keywords_match,
    assert_products_match,
    assert_renamed_inputs_match,
    drizzled_products,
    manifest,
    run_runsinglehap,
)

pytestmark = DRIZZLEPAC_MARKS

#: The real ACS/HRC exposure (tests/data/README.md) and the name the poller gives its copy.
HRC_CUTOUT = "j8bt06nyq_cutout_flt.fits.gz"
HRC_NAME = "j8bt06nyq_flt.fits"


def expected_manifest(base: str, visit_id: str, filetype: str, input_suffix: str,
                      exposures: dict[str, tuple[str, ...]]) -> list[str]:
    """A one-detector visit's manifest in drizzlepac's order.

    ``base`` is ``hst_<proposal>_<obset>_<instr>_<det>_``, ``visit_id`` the product's
    ``<i><ppp><ss>``, ``exposures`` maps each filter (lower case) to its exposures'
    ``<i><ppp><ss><oo>`` in the order of the poller.
    """
    names = []
    for filt, exps in exposures.items():
        names += [f"{base}{filt}_{visit_id}_{filetype}.fits", f"{base}{filt}_{visit_id}_trl.txt"]
        for exp in exps:
            names += [f"{base}{filt}_{exp}_{filetype}.fits", f"{base}{filt}_{exp}_{input_suffix}.fits",
                      f"{base}{filt}_{exp}_trl.txt"]
    names += [f"{base}total_{visit_id}_{filetype}.fits", f"{base}total_{visit_id}_trl.txt"]
    for filt in (*exposures, "total"):
        names += [f"{base}{filt}_{visit_id}_point-cat.ecsv", f"{base}{filt}_{visit_id}_segment-cat.ecsv"]
    return names


#: Per visit: the manifest file name and its expected content.
VISITS = {
    "acs-wfc": ("acs_sim_01_manifest.txt",
                expected_manifest("hst_17001_01_acs_wfc_", "jsim01", "drc", "flc",
                                  {"f606w": ("jsim01a0", "jsim01a1"),
                                   "f814w": ("jsim01a2", "jsim01a3")})),
    "acs-hrc": ("acs_8bt_06_manifest.txt",
                expected_manifest("hst_9019_06_acs_hrc_", "j8bt06", "drz", "flt",
                                  {"f606w": ("j8bt06ny",)})),
}


def make_wfc_visit(root: Path) -> Path:
    """The simulated ACS/WFC visit under ``root``; returns its poller."""
    visit = simulate_visit(root, "acs-wfc", 4, filters=["F606W", "F814W"], shape=64, seed=3)
    return visit.poller


def real_hrc_visit(root: Path, *, mtflag: bool = True, source=None) -> Path:
    """The real ACS/HRC exposure (the cut-out, or ``source``) as a one-exposure visit under
    ``root``; returns its 8-column poller. ``mtflag`` adds ``MTFLAG = 'F'`` to the copy."""
    root.mkdir(parents=True, exist_ok=True)
    dest = root / HRC_NAME
    with gzip.open(source or data_file(HRC_CUTOUT)) as packed:
        dest.write_bytes(packed.read())
    if mtflag:
        fits.setval(dest, "MTFLAG", value="F", comment="moving target flag (added by the test)")
    poller = root / "j8bt06_input.out"
    poller.write_text(poller_line(dest, fits.getheader(dest)) + "\n")
    return poller


@pytest.fixture(scope="module", params=tuple(VISITS))
def runs(request, tmp_path_factory):
    """(our folder, drizzlepac's folder, manifest name, expected manifest) of one visit."""
    root = tmp_path_factory.mktemp(f"svm_reference_{request.param}")
    poller = make_wfc_visit(root / "sim") if request.param == "acs-wfc" else real_hrc_visit(root / "real")
    ours = root / "ours"
    assert run_svm(poller, ours, align=False, previews=False, backend="cpu", progress=False) == 0
    ref_code, ref = run_runsinglehap(poller, root / "drizzlepac")
    assert ref_code == 0
    return (ours, ref, *VISITS[request.param])


def test_same_manifest(runs):
    ours, ref, name, expected = runs
    assert manifest(ours, name) == manifest(ref, name) == expected


def test_drizzled_products_match(runs):
    ours, ref, name, _ = runs
    assert_products_match(ours, ref, drizzled_products(manifest(ref, name)))


def test_footprint_keywords_match(runs):
    ours, ref, name, _ = runs
    assert_footprint_keywords_match(ours, ref, drizzled_products(manifest(ref, name)))


def test_renamed_inputs_keywords_match(runs):
    ours, ref, name, _ = runs
    assert_renamed_inputs_match(ours, ref, manifest(ref, name))


def test_real_hrc_without_mtflag_is_refused_by_both(tmp_path, caplog):
    poller = real_hrc_visit(tmp_path / "real", mtflag=False)
    ours = tmp_path / "ours"
    assert run_svm(poller, ours, align=False, previews=False, backend="cpu", progress=False) == 1
    assert f"{HRC_NAME}: primary header has no MTFLAG keyword" in caplog.text
    assert not ours.exists() or not any(ours.iterdir())
    ref_code, _ = run_runsinglehap(poller, tmp_path / "drizzlepac")
    assert ref_code == 1
