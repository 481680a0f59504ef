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

import contextlib
import gzip
import io
import os
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.stats import sigma_clipped_stats

from hapgpu.simulate import simulate_visit
from hapgpu.simulate._io import poller_line
from hapgpu.svm._pipeline import run_svm

from ..conftest import data_file
from .test_svm_reference import _copy_visit, _drizzlepac_shims

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
    # drizzlepac 3.11 calls photutils 3's detect_sources with the deprecated ``npixels``
    pytest.mark.filterwarnings("ignore::astropy.utils.exceptions.AstropyDeprecationWarning"),
]

FOOTPRINT_KEYWORDS = ("NPIXFRAC", "MEANEXPT", "MEDEXPT", "MEANNEXP", "MEDNEXP", "MEANWHT", "MEDWHT")

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


def run_runsinglehap(poller: Path, dest: Path) -> tuple[int, Path]:
    """drizzlepac's ``runsinglehap`` on a copy of the visit in ``dest`` (alignment unreachable)."""
    from drizzlepac import hapsequencer

    ref_poller = _copy_visit(poller, dest)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ASTROMETRIC_CATALOG_URL", "http://127.0.0.1:9")  # closed port: fails at once
        for name in ("iref", "jref", "CRDS_PATH", "CRDS_SERVER_URL", "SVM_QUALITY_TESTING"):
            mp.delenv(name, raising=False)
        mp.chdir(ref_poller.parent)
        with _drizzlepac_shims(mp), contextlib.redirect_stdout(io.StringIO()):
            code = hapsequencer.run_hap_processing(ref_poller.name)
    return code, ref_poller.parent


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


def _manifest(folder: Path, name: str) -> list[str]:
    return (folder / name).read_text().splitlines()


def _products(folder: Path, name: str) -> list[str]:
    return [n for n in _manifest(folder, name) if n.endswith(("_drc.fits", "_drz.fits"))]


def test_same_manifest(runs):
    ours, ref, name, expected = runs
    assert _manifest(ours, name) == _manifest(ref, name) == expected


def test_drizzled_products_match(runs):
    ours, ref, manifest, _ = runs
    for name in _products(ref, manifest):
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


def test_footprint_keywords_match(runs):
    ours, ref, manifest, _ = runs
    for name in _products(ref, manifest):
        mine, theirs = fits.getheader(ours / name), fits.getheader(ref / name)
        for key in FOOTPRINT_KEYWORDS:
            assert (key in mine) == (key in theirs), (name, key)
            if key in theirs:
                assert mine[key] == pytest.approx(theirs[key], rel=1e-4), (name, key)


def test_renamed_inputs_keywords_match(runs):
    ours, ref, manifest, _ = runs
    for name in [n for n in _manifest(ref, manifest) if n.endswith(("_flc.fits", "_flt.fits"))]:
        mine, theirs = fits.getheader(ours / name), fits.getheader(ref / name)
        for key in ("HAPLEVEL", "IPPPSSOO", "FILENAME"):
            assert mine[key] == theirs[key], (name, key)
        sci_o, sci_r = fits.getheader(ours / name, ("SCI", 1)), fits.getheader(ref / name, ("SCI", 1))
        assert sci_o["SKYCELL"] == sci_r["SKYCELL"], name
        assert os.path.basename(name) == name


def test_real_hrc_without_mtflag_is_refused_by_both(tmp_path, caplog):
    poller = real_hrc_visit(tmp_path / "real", mtflag=False)
    ours = tmp_path / "ours"
    assert run_svm(poller, ours, align=False, previews=False, backend="cpu", progress=False) == 1
    assert f"{HRC_NAME}: primary header has no MTFLAG keyword" in caplog.text
    assert not ours.exists() or not any(ours.iterdir())
    ref_code, _ = run_runsinglehap(poller, tmp_path / "drizzlepac")
    assert ref_code == 1
