"""Shared simulated inputs of the runastrodriz tests (made once per session, copied per test)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hapgpu.simulate import simulate_visit


@pytest.fixture(scope="session")
def uvis_association(tmp_path_factory):
    """A WFC3/UVIS visit of 2 dithered F555W exposures (128x128 subarrays of both chips) with
    an a priori WCS error (active WCS ``IDC_2731450pi-GSC240``, the pipeline default attached as
    a headerlet), written as an association ``isim01010_asn.fits`` with RAW files."""
    outdir = tmp_path_factory.mktemp("rad_uvis") / "visit"
    return simulate_visit(outdir, "wfc3-uvis", 2, shape=128, seed=5, wcs_error=0.3,
                          association=True)


def copy_visit(visit, dest: Path) -> Path:
    """Copy the visit's files (not its truth folder) into ``dest``; returns ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in Path(visit.outdir).iterdir():
        if path.is_file():
            shutil.copy2(path, dest / path.name)
    return dest


@pytest.fixture
def rad_dir(uvis_association, tmp_path) -> Path:
    """A fresh copy of :func:`uvis_association`'s files in the test's folder."""
    return copy_visit(uvis_association, tmp_path / "work")
