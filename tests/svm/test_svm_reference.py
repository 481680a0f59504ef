"""``run_svm`` against drizzlepac's ``runsinglehap`` (``hapsequencer.run_hap_processing``).

Both process the same small simulated visit (WFC3/UVIS 2 filters x 2 exposures and WFC3/IR 2
exposures in one poller; see ``_pipeline_visit``) with alignment off: hapgpu with
``align=False``, drizzlepac with ``ASTROMETRIC_CATALOG_URL`` pointing at a closed loopback port,
so that every catalogue request fails at once and it keeps the exposures' WCS, as it does
without a reachable service. Compared: the manifest, every drizzled product's shape, WCS, SCI
(within 1e-4 relative + 1e-3 sigma on >= 99.9 % of the pixels) and WHT (1e-4 relative), the
footprint keywords (1e-4 relative), and the catalogs' layout.

The oracle, its test-only shims and the product comparisons are in ``tests/svm/_reference.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from astropy.table import Table

from hapgpu.svm._pipeline import run_svm

from ._pipeline_visit import expected_manifest, make_visit
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

MANIFEST = "wfc3_sim_01_manifest.txt"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("svm_reference")
    poller = make_visit(root / "sim")
    ours = root / "ours"
    code = run_svm(poller, ours, align=False, previews=False, backend="cpu", progress=False)
    assert code == 0
    ref_code, ref = run_runsinglehap(poller, root / "drizzlepac")
    assert ref_code == 0
    return ours, ref


def _manifest(folder: Path) -> list[str]:
    return manifest(folder, MANIFEST)


def test_same_manifest(runs):
    ours, ref = runs
    assert _manifest(ours) == _manifest(ref) == expected_manifest()


def test_drizzled_products_match(runs):
    ours, ref = runs
    assert_products_match(ours, ref, drizzled_products(_manifest(ref)))


def test_footprint_keywords_match(runs):
    ours, ref = runs
    assert_footprint_keywords_match(ours, ref, drizzled_products(_manifest(ref)))


def _catalogs(folder, kind):
    return [n for n in _manifest(folder) if n.endswith(f"_{kind}-cat.ecsv")]


@pytest.mark.parametrize("kind", ["segment", "point"])
def test_catalogs_match(runs, kind):
    ours, ref = runs
    for name in _catalogs(ref, kind):
        mine, theirs = Table.read(ours / name), Table.read(ref / name)
        assert mine.colnames == theirs.colnames, name
        assert len(mine) == len(theirs), name


def test_renamed_inputs_keywords_match(runs):
    ours, ref = runs
    assert_renamed_inputs_match(ours, ref, _manifest(ref))
