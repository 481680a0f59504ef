"""``run_svm`` against drizzlepac's ``runsinglehap`` (``hapsequencer.run_hap_processing``).

Both process the same small simulated visit (WFC3/UVIS 2 filters x 2 exposures and WFC3/IR 2
exposures in one poller; see ``_pipeline_visit``) with alignment off: hapgpu with
``align=False``, drizzlepac with ``ASTROMETRIC_CATALOG_URL`` pointing at a closed loopback port,
so that every catalogue request fails at once and it keeps the exposures' WCS, as it does
without a reachable service. Compared: the manifest, every drizzled product's shape, WCS, SCI
(within 1e-4 relative + 1e-3 sigma on >= 99.9 % of the pixels) and WHT (1e-4 relative), the
footprint keywords (1e-4 relative), and the catalogs' layout.

Test-only shims let drizzlepac 3.11 run with the installed libraries (values untouched):
photutils 2 names for its catalog code (``tests/catalogs/_oracle.py``), photutils 3's
``bkg_rms_estimator`` keyword for its ``Background2D(bkgrms_estimator=...)`` calls, and
``SphericalPolygon.iter_polygons_flat`` for stsci.skypac's sky matching (as in
``tests/astrodrizzle/test_reference.py``).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.stats import sigma_clipped_stats
from astropy.table import Table

from hapgpu.svm._pipeline import run_svm

from ._pipeline_visit import expected_manifest, make_visit

pytestmark = [
    pytest.mark.reference,
    pytest.mark.slow,
    # drizzlepac and stsci.tools leave files open and warn freely (third-party)
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::astropy.utils.exceptions.AstropyDeprecationWarning"),
]

MANIFEST = "wfc3_sim_01_manifest.txt"
FOOTPRINT_KEYWORDS = ("NPIXFRAC", "MEANEXPT", "MEDEXPT", "MEANNEXP", "MEDNEXP", "MEANWHT", "MEDWHT")


@contextlib.contextmanager
def _drizzlepac_shims(mp):
    """photutils 3 and spherical_geometry 1.4 shims for drizzlepac 3.11 (test only)."""
    import photutils.background as pbkg
    from drizzlepac.haputils import align_utils, astrometric_utils, catalog_utils
    from spherical_geometry.polygon import SphericalPolygon

    from tests.catalogs._oracle import photutils2_catalog_shim

    class Background2D(pbkg.Background2D):
        def __init__(self, *args, bkgrms_estimator=None, **kwargs):
            if bkgrms_estimator is not None:
                kwargs["bkg_rms_estimator"] = bkgrms_estimator
            super().__init__(*args, **kwargs)

    for module in (align_utils, astrometric_utils, catalog_utils):
        mp.setattr(module, "Background2D", Background2D)
    mp.setattr(SphericalPolygon, "iter_polygons_flat", lambda self: iter(self), raising=False)
    with photutils2_catalog_shim():
        yield


def _copy_visit(poller: Path, dest: Path) -> Path:
    """The poller's exposures copied into ``dest`` with a poller pointing at the copies."""
    dest.mkdir(parents=True)
    lines = []
    for line in poller.read_text().splitlines():
        fields = line.split(",")
        shutil.copyfile(fields[-1], dest / fields[0])
        fields[-1] = str(dest / fields[0])
        lines.append(",".join(fields))
    copy = dest / poller.name
    copy.write_text("\n".join(lines) + "\n")
    return copy


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("svm_reference")
    poller = make_visit(root / "sim")
    ours = root / "ours"
    code = run_svm(poller, ours, align=False, previews=False, backend="cpu", progress=False)
    assert code == 0
    ref_poller = _copy_visit(poller, root / "drizzlepac")
    from drizzlepac import hapsequencer

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ASTROMETRIC_CATALOG_URL", "http://127.0.0.1:9")  # closed port: fails at once
        for name in ("iref", "jref", "CRDS_PATH", "CRDS_SERVER_URL", "SVM_QUALITY_TESTING"):
            mp.delenv(name, raising=False)
        mp.chdir(ref_poller.parent)
        with _drizzlepac_shims(mp), contextlib.redirect_stdout(io.StringIO()):
            ref_code = hapsequencer.run_hap_processing(ref_poller.name)
    assert ref_code == 0
    return ours, ref_poller.parent


def _manifest(folder: Path) -> list[str]:
    return (folder / MANIFEST).read_text().splitlines()


def test_same_manifest(runs):
    ours, ref = runs
    assert _manifest(ours) == _manifest(ref) == expected_manifest()


def _products(folder):
    return [n for n in _manifest(folder) if n.endswith(("_drc.fits", "_drz.fits"))]


def test_drizzled_products_match(runs):
    ours, ref = runs
    for name in _products(ref):
        with fits.open(ours / name) as mine, fits.open(ref / name) as theirs:
            sci_o, sci_r = mine["SCI"].data.astype(np.float64), theirs["SCI"].data.astype(np.float64)
            wht_o, wht_r = mine["WHT"].data.astype(np.float64), theirs["WHT"].data.astype(np.float64)
            assert sci_o.shape == sci_r.shape, name
            ho, hr = mine["SCI"].header, theirs["SCI"].header
            for key in ("CRPIX1", "CRPIX2"):
                assert ho[key] == pytest.approx(hr[key], abs=1e-6), (name, key)
            for key in ("CRVAL1", "CRVAL2"):
                assert ho[key] == pytest.approx(hr[key], abs=1e-9), (name, key)
            scale = abs(hr["CD1_1"])
            for key in ("CD1_1", "CD1_2", "CD2_1", "CD2_2"):
                assert abs(ho[key] - hr[key]) <= 1e-9 * scale, (name, key)
            np.testing.assert_array_equal(np.isnan(sci_o), np.isnan(sci_r), err_msg=name)
            covered = wht_r > 0
            _, _, sigma = sigma_clipped_stats(sci_r[covered])
            a, b = np.nan_to_num(sci_o), np.nan_to_num(sci_r)
            good = np.abs(a - b) <= 1e-4 * np.abs(b) + 1e-3 * sigma
            assert good.mean() >= 0.999, (name, good.mean())
            np.testing.assert_allclose(wht_o, wht_r, rtol=1e-4, atol=1e-4 * wht_r.max(), err_msg=name)


def test_footprint_keywords_match(runs):
    ours, ref = runs
    for name in _products(ref):
        mine, theirs = fits.getheader(ours / name), fits.getheader(ref / name)
        for key in FOOTPRINT_KEYWORDS:
            assert (key in mine) == (key in theirs), (name, key)
            if key in theirs:
                assert mine[key] == pytest.approx(theirs[key], rel=1e-4), (name, key)


def _catalogs(folder, kind):
    return [n for n in _manifest(folder) if n.endswith(f"_{kind}-cat.ecsv")]


def test_segment_catalogs_match(runs):
    ours, ref = runs
    for name in _catalogs(ref, "segment"):
        mine, theirs = Table.read(ours / name), Table.read(ref / name)
        assert mine.colnames == theirs.colnames, name
        assert len(mine) == len(theirs), name


def test_point_catalogs_match(runs):
    ours, ref = runs
    for name in _catalogs(ref, "point"):
        mine, theirs = Table.read(ours / name), Table.read(ref / name)
        assert mine.colnames == theirs.colnames, name
        assert len(mine) == len(theirs), name


def test_renamed_inputs_keywords_match(runs):
    ours, ref = runs
    for name in [n for n in _manifest(ref) if n.endswith(("_flc.fits", "_flt.fits"))]:
        mine, theirs = fits.getheader(ours / name), fits.getheader(ref / name)
        for key in ("HAPLEVEL", "IPPPSSOO", "FILENAME"):
            assert mine[key] == theirs[key], (name, key)
        sci_o, sci_r = fits.getheader(ours / name, ("SCI", 1)), fits.getheader(ref / name, ("SCI", 1))
        assert sci_o["SKYCELL"] == sci_r["SKYCELL"], name
        assert os.path.basename(name) == name
