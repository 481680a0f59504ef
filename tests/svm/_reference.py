"""drizzlepac's ``runsinglehap`` as the oracle of the SVM tests and ``benchmarks/bench_svm.py``.

Test-only shims let drizzlepac 3.11 run with the installed libraries (values untouched; see
DEVELOPERS.md): photutils 2 names for its catalog code (``tests/catalogs/_oracle.py``),
photutils 3's ``bkg_rms_estimator`` keyword for its ``Background2D(bkgrms_estimator=...)`` calls,
and ``SphericalPolygon.iter_polygons_flat`` for stsci.skypac's sky matching. The comparisons
are those issue 11 asks of every drizzled product: the same shape and WCS, SCI within 1e-4
relative + 1e-3 sigma on >= 99.9 % of the pixels, WHT within 1e-4, footprint keywords within
1e-4, and the renamed inputs' HAP keywords.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.stats import sigma_clipped_stats

__all__ = [
    "CLOSED_PORT_URL",
    "DRIZZLEPAC_MARKS",
    "FOOTPRINT_KEYWORDS",
    "assert_footprint_keywords_match",
    "assert_products_match",
    "assert_renamed_inputs_match",
    "copy_visit",
    "drizzled_products",
    "drizzlepac_environment",
    "manifest",
    "run_runsinglehap",
]

#: Marks of every module that runs drizzlepac: it and stsci.tools leave files open and warn
#: freely (third-party), as do the libraries under it: drizzlepac 3.11 calls photutils 3's
#: ``detect_sources`` with the deprecated ``npixels`` and handles its "no sources" result, so
#: astropy-style warnings (AstropyDeprecationWarning, photutils' NoDetectionsWarning: neither
#: is a DeprecationWarning or a UserWarning) must stay warnings, as outside the tests.
DRIZZLEPAC_MARKS = [
    pytest.mark.reference,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::astropy.utils.exceptions.AstropyWarning"),
]

FOOTPRINT_KEYWORDS = ("NPIXFRAC", "MEANEXPT", "MEDEXPT", "MEANNEXP", "MEDNEXP", "MEANWHT", "MEDWHT")

#: A catalogue service on a closed loopback port: every request fails at once, so drizzlepac
#: keeps the exposures' WCS, as it does without a reachable service.
CLOSED_PORT_URL = "http://127.0.0.1:9"


def copy_visit(poller: Path, dest: Path) -> Path:
    """The poller's exposures copied into ``dest``, with a poller pointing at the copies."""
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


@contextlib.contextmanager
def drizzlepac_environment(folder: Path, catalog_url: str = CLOSED_PORT_URL):
    """drizzlepac's working folder, environment and library shims; all restored on exit."""
    import photutils.background as pbkg
    from drizzlepac.haputils import align_utils, astrometric_utils, catalog_utils
    from spherical_geometry.polygon import SphericalPolygon

    from tests.catalogs._oracle import photutils2_catalog_shim

    class Background2D(pbkg.Background2D):
        def __init__(self, *args, bkgrms_estimator=None, **kwargs):
            if bkgrms_estimator is not None:
                kwargs["bkg_rms_estimator"] = bkgrms_estimator
            super().__init__(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        for module in (align_utils, astrometric_utils, catalog_utils):
            mp.setattr(module, "Background2D", Background2D)
        mp.setattr(SphericalPolygon, "iter_polygons_flat", lambda self: iter(self), raising=False)
        mp.setenv("ASTROMETRIC_CATALOG_URL", catalog_url)
        # drizzlepac reads the variable once, when astrometric_utils is first imported
        mp.setattr(astrometric_utils, "SERVICELOCATION", catalog_url, raising=False)
        for name in ("iref", "jref", "CRDS_PATH", "CRDS_SERVER_URL", "SVM_QUALITY_TESTING"):
            mp.delenv(name, raising=False)
        mp.chdir(folder)
        with photutils2_catalog_shim():
            yield


def run_runsinglehap(poller: Path, dest: Path, catalog_url: str = CLOSED_PORT_URL) -> tuple[int, Path]:
    """drizzlepac's ``runsinglehap`` on a copy of the visit in ``dest``: (exit code, folder)."""
    from drizzlepac import hapsequencer

    ref_poller = copy_visit(poller, dest)
    with drizzlepac_environment(ref_poller.parent, catalog_url), \
            contextlib.redirect_stdout(io.StringIO()):
        code = hapsequencer.run_hap_processing(ref_poller.name)
    return code, ref_poller.parent


def manifest(folder: Path, name: str) -> list[str]:
    """The manifest ``name`` in ``folder``, one file name per entry."""
    return (folder / name).read_text().splitlines()


def drizzled_products(names) -> list[str]:
    """The DRC/DRZ products among manifest entries."""
    return [n for n in names if n.endswith(("_drc.fits", "_drz.fits"))]


def assert_products_match(ours: Path, ref: Path, names) -> None:
    """Each product: shape, WCS, SCI (1e-4 rel + 1e-3 sigma on >= 99.9 %), WHT (1e-4)."""
    for name in names:
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
            assert covered.any(), name
            _, _, sigma = sigma_clipped_stats(sci_r[covered])
            a, b = np.nan_to_num(sci_o), np.nan_to_num(sci_r)
            good = np.abs(a - b) <= 1e-4 * np.abs(b) + 1e-3 * sigma
            assert good.mean() >= 0.999, (name, good.mean())
            np.testing.assert_allclose(wht_o, wht_r, rtol=1e-4, atol=1e-4 * wht_r.max(), err_msg=name)


def assert_footprint_keywords_match(ours: Path, ref: Path, names) -> None:
    """NPIXFRAC ... MEDWHT present in the same products, equal within 1e-4 relative."""
    for name in names:
        mine, theirs = fits.getheader(ours / name), fits.getheader(ref / name)
        for key in FOOTPRINT_KEYWORDS:
            assert (key in mine) == (key in theirs), (name, key)
            if key in theirs:
                assert mine[key] == pytest.approx(theirs[key], rel=1e-4), (name, key)


def assert_renamed_inputs_match(ours: Path, ref: Path, names) -> None:
    """The renamed inputs' HAPLEVEL, IPPPSSOO, FILENAME and SKYCELL as drizzlepac's."""
    for name in [n for n in names if n.endswith(("_flc.fits", "_flt.fits"))]:
        mine, theirs = fits.getheader(ours / name), fits.getheader(ref / name)
        for key in ("HAPLEVEL", "IPPPSSOO", "FILENAME"):
            assert mine[key] == theirs[key], (name, key)
        sci_o, sci_r = fits.getheader(ours / name, ("SCI", 1)), fits.getheader(ref / name, ("SCI", 1))
        assert sci_o["SKYCELL"] == sci_r["SKYCELL"], name
        assert os.path.basename(name) == name


def run_runmultihap(poller: Path, dest: Path) -> tuple[int, Path]:
    """drizzlepac's ``runmultihap`` (``hapmultisequencer.run_mvm_processing``, alignment skipped
    as its CLI always does) on a copy of an MVM poller's files (NEW and OLD) in ``dest``:
    (exit code, folder)."""
    from drizzlepac import hapmultisequencer

    ref_poller = copy_visit(poller, dest)
    root = logging.getLogger()
    with drizzlepac_environment(ref_poller.parent), contextlib.redirect_stdout(io.StringIO()), \
            pytest.MonkeyPatch.context() as mp:
        # AstroDrizzle names DRIZPARS after the first root-logger handler with a level: start
        # from the root logger of a fresh runmultihap process, not whatever earlier tests of
        # this pytest process left there
        mp.setattr(root, "handlers", [])
        code = hapmultisequencer.run_mvm_processing(ref_poller.name, skip_gaia_alignment=True)
    return code, ref_poller.parent
