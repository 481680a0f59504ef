"""Simulated inputs of the verification, a priori and a posteriori tests (issue 14, part B).

Import the fixtures into a test module (``from ._fixtures import ...``); each visit is
simulated once per session and copied by the tests that change files.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
from astropy.io import fits

from hapgpu.simulate import WCSPerturbation, simulate_visit

#: A priori error of the a posteriori visit: 0.49 arcsec and 0.02 deg, common to the visit.
WCS_ERROR = WCSPerturbation((0.35, -0.35), rotation_deg=0.02)


def quiet(fn, *args, **kwargs):
    """Call ``fn`` with warnings silenced (drizzlepac/stwcs warn about the headers they fix)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def copy_files(paths, dest: Path) -> list[Path]:
    """Copy files into ``dest`` (created); return the copies in order."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for path in map(Path, paths):
        shutil.copy2(path, dest / path.name)
        out.append(dest / path.name)
    return out


def make_flt(flc: Path) -> Path:
    """An FLT twin of an FLC file: the same file under the ``_flt`` name (FILENAME updated).

    The simulator writes UVIS visits as FLC files only; the pixels do not matter for the
    propagation of the FLC's solution to its FLT."""
    flt = flc.with_name(flc.name.replace("_flc.fits", "_flt.fits"))
    shutil.copy2(flc, flt)
    with fits.open(flt, mode="update") as hdul:
        hdul[0].header["FILENAME"] = flt.name
    return flt


@pytest.fixture(scope="session")
def truth_pair(tmp_path_factory):
    """WFC3/UVIS, 2 dithered exposures, 160x160 subarrays of both chips, no WCS error: the
    active WCS is the (true) ``IDC_2731450pi-FIT_REL_GAIAeDR3`` solution and the files carry
    the real templates' headerlets (OPUS, IDC, GSC240, HSC30, FIT_*)."""
    outdir = tmp_path_factory.mktemp("rad_truth") / "visit"
    return simulate_visit(outdir, "wfc3-uvis", 2, shape=160, seed=7, star_density=6000.0,
                          galaxy_density=0.0)


@pytest.fixture(scope="session")
def small_headers(tmp_path_factory):
    """WFC3/UVIS, 2 exposures of 64x64 pixels without a WCS error: for header-only tests."""
    outdir = tmp_path_factory.mktemp("rad_headers") / "visit"
    return simulate_visit(outdir, "wfc3-uvis", 2, shape=64, seed=3, star_density=20.0,
                          galaxy_density=0.0, cosmic_rays=False)


@pytest.fixture(scope="session")
def aposteriori_visit(tmp_path_factory):
    """WFC3/UVIS, 2 exposures of 400x400 pixels per chip with the a priori error
    :data:`WCS_ERROR` (active ``IDC_2731450pi-GSC240``) and a Gaia-like ``refcat.ecsv``."""
    outdir = tmp_path_factory.mktemp("rad_apost") / "visit"
    return simulate_visit(outdir, "wfc3-uvis", 2, shape=(400, 400), seed=11,
                          star_density=6000.0, wcs_error=WCS_ERROR)
