"""``run_svm`` with alignment on beside drizzlepac's ``runsinglehap``, both served one catalogue.

A small WFC3/UVIS visit (two 400x400 subarray exposures of one filter) is simulated with a known
a priori WCS error (0.49", 0.02 deg, as in ``tests/align``); the simulator's Gaia-like reference
catalogue is served by one loopback catalogue service (``tests/align/_catalog_server.py``,
127.0.0.1 only) to both pipelines: hapgpu with ``refcat=<url>``, drizzlepac with
``ASTROMETRIC_CATALOG_URL=<url>`` (also set on ``astrometric_utils.SERVICELOCATION``, which
drizzlepac reads from the environment once, when it is first imported). drizzlepac runs as in
``test_svm_reference.py``, with its shims, plus the alignment shim of ``tests/align``.

Checked: the same WCSNAME (``...-FIT_SVM_GAIAeDR3``) in every renamed exposure and every
drizzled product of both runs, the same headerlet files in both manifests, and the positions of
isolated simulated stars measured in each run's total product against the simulator's truth:
hapgpu's RMS (arcsec) must be at most drizzlepac's times ``1 + 2 / sqrt(2 N)`` for N stars (two
standard errors of an RMS of N independent offsets: the margin for measurement noise when the
two solutions are equally good).
"""

from __future__ import annotations

import contextlib
import gc
import io
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from hapgpu.simulate import simulate_visit
from hapgpu.svm._pipeline import run_svm
from tests.align._catalog_server import CatalogServer
from tests.align._helpers import WCS_ERROR, photutils2_shim, rms, truth_offsets_mas

from ._reference import DRIZZLEPAC_MARKS, copy_visit, drizzlepac_environment

pytestmark = DRIZZLEPAC_MARKS

MANIFEST = "wfc3_sim_01_manifest.txt"
TOTAL = "hst_17001_01_wfc3_uvis_total_isim01_drc.fits"
FIT_SUFFIX = "-FIT_SVM_GAIAeDR3"
#: Half-size of the centroid box, product pixels (0.04"): 11x11 holds the UVIS PSF core.
HALF_BOX = 5
#: A measured star farther than this from its true position is a bad measurement (a cosmic
#: ray or an unlisted neighbour in the box), not an alignment error: 2.5 UVIS pixels, five
#: times the larger of the two pipelines' fit errors seen on this visit (30-40 mas).
GATE_ARCSEC = 0.1
#: Peak signal-to-noise range of the measured stars: bright enough for a ~mas centroid,
#: faint enough to stay unsaturated.
SNR_RANGE = (20.0, 800.0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("svm_align_reference")
    start = time.perf_counter()
    visit = simulate_visit(root / "sim" / "visit", "wfc3-uvis", 2, shape=(400, 400),
                           star_density=6000.0, seed=11, wcs_error=WCS_ERROR)
    seconds = {"simulate": time.perf_counter() - start}
    refcat = Table.read(visit.refcat, format="ascii.ecsv")
    ref_poller = copy_visit(visit.poller, root / "drizzlepac")
    ours = root / "ours"
    with CatalogServer(refcat) as server:
        start = time.perf_counter()
        code = run_svm(visit.poller, ours, refcat=server.url, previews=False, backend="cpu",
                       progress=False)
        seconds["hapgpu"] = time.perf_counter() - start
        assert code == 0
        served = len(server.queries)
        assert served >= 1                          # hapgpu asked the loopback service
        from drizzlepac import hapsequencer

        start = time.perf_counter()
        # drizzlepac 3.11 calls photutils 3 with deprecated names (AstropyDeprecationWarning,
        # which is not a DeprecationWarning): keep third-party warnings from becoming errors
        with drizzlepac_environment(ref_poller.parent, server.url), photutils2_shim(), \
                warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            ref_code = hapsequencer.run_hap_processing(ref_poller.name)
            gc.collect()                             # the files drizzlepac left open, closed here
        seconds["drizzlepac"] = time.perf_counter() - start
        assert ref_code == 0
        assert len(server.queries) > served          # so did drizzlepac
    return {"ours": ours, "ref": ref_poller.parent, "visit": Path(visit.outdir),
            "seconds": seconds}


def _manifest(folder: Path) -> list[str]:
    return (folder / MANIFEST).read_text().splitlines()


def _sci_wcsnames(path: Path) -> list[str]:
    with fits.open(path) as hdul:
        return [str(h.header.get("WCSNAME", "")).strip() for h in hdul if h.name == "SCI"]


def test_same_wcsname_in_every_exposure_and_product(runs):
    ours, ref = runs["ours"], runs["ref"]
    names = [n for n in _manifest(ref) if n.endswith(("_flc.fits", "_drc.fits"))]
    assert sorted(names) == sorted(n for n in _manifest(ours)
                                   if n.endswith(("_flc.fits", "_drc.fits")))
    assert any(n.endswith("_flc.fits") for n in names) and TOTAL in names
    for name in names:
        theirs = _sci_wcsnames(ref / name)
        assert theirs and all(w.endswith(FIT_SUFFIX) for w in theirs), (name, theirs)
        assert _sci_wcsnames(ours / name) == theirs, name


def test_headerlets_in_both_manifests(runs):
    ours, ref = runs["ours"], runs["ref"]
    theirs = [n for n in _manifest(ref) if n.endswith("_hlet.fits")]
    mine = [n for n in _manifest(ours) if n.endswith("_hlet.fits")]
    assert len(theirs) == 2 and mine == theirs
    for name in mine:
        assert (ours / name).is_file() and (ref / name).is_file()
        assert fits.getval(ours / name, "CATALOG") == fits.getval(ref / name, "CATALOG")


def _box(image, x, y):
    xi, yi = round(float(x)), round(float(y))
    return xi, yi, image[yi - HALF_BOX:yi + HALF_BOX + 1, xi - HALF_BOX:xi + HALF_BOX + 1]


def _edge(box):
    return np.concatenate([box[0], box[-1], box[1:-1, 0], box[1:-1, -1]])


def _product(path):
    with fits.open(path) as hdul:
        sci = hdul["SCI"].data.astype(np.float64)
        wht = hdul["WHT"].data.astype(np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcs = WCS(hdul["SCI"].header)
    return sci, wht, wcs


def _candidates(path, stars) -> np.ndarray:
    """Isolated stars fully covered in the product, with a peak S/N inside ``SNR_RANGE``."""
    sci, wht, wcs = _product(path)
    ny, nx = sci.shape
    x, y = wcs.all_world2pix(stars["ra"], stars["dec"], 0)
    keep = np.zeros(len(stars), dtype=bool)
    for i in np.flatnonzero((x > HALF_BOX + 2) & (x < nx - HALF_BOX - 3) & (y > HALF_BOX + 2)
                            & (y < ny - HALF_BOX - 3)):
        box = _box(sci, x[i], y[i])[2]
        weights = _box(wht, x[i], y[i])[2]
        if not (np.all(np.isfinite(box)) and np.all(weights > 0)):
            continue
        edge = _edge(box)
        noise = 1.4826 * np.median(np.abs(edge - np.median(edge)))
        snr = (box.max() - np.median(edge)) / noise if noise > 0 else 0.0
        keep[i] = SNR_RANGE[0] < snr < SNR_RANGE[1]
    return keep


def _offsets_arcsec(path, stars) -> np.ndarray:
    """Distance (arcsec) between each star's measured position, through the product's WCS,
    and its true position (Gaussian centroid of the background-subtracted box)."""
    from photutils.centroids import centroid_2dg

    sci, _, wcs = _product(path)
    x, y = wcs.all_world2pix(stars["ra"], stars["dec"], 0)
    out = np.empty(len(stars))
    for i in range(len(stars)):
        xi, yi, box = _box(sci, x[i], y[i])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cx, cy = centroid_2dg(box - np.median(_edge(box)))
        ra, dec = wcs.all_pix2world(xi - HALF_BOX + cx, yi - HALF_BOX + cy, 0)
        dra = (ra - stars["ra"][i]) * np.cos(np.radians(stars["dec"][i]))
        out[i] = np.hypot(dra, dec - stars["dec"][i]) * 3600.0
    return out


def _isolated_stars(visit: Path, product: Path) -> Table:
    """Simulated stars on the product frame with no other source within 12 product pixels
    brighter than 1 % of them."""
    from scipy.spatial import cKDTree

    sky = Table.read(visit / "truth" / "sky_catalog.ecsv", format="ascii.ecsv")
    sci, _, wcs = _product(product)
    ny, nx = sci.shape
    x, y = wcs.wcs_world2pix(sky["ra"], sky["dec"], 0)
    near = (x > -12) & (x < nx + 12) & (y > -12) & (y < ny + 12)
    sky, x, y = sky[near], x[near], y[near]
    rate = np.asarray(sky[next(c for c in sky.colnames if c.startswith("rate_"))], dtype=float)
    crowded = np.zeros(len(sky), dtype=bool)
    for i, j in cKDTree(np.column_stack([x, y])).query_pairs(12.0, output_type="ndarray"):
        crowded[i] |= rate[j] > 0.01 * rate[i]
        crowded[j] |= rate[i] > 0.01 * rate[j]
    return sky[(sky["kind"] == "star") & ~crowded]


def test_total_product_positions_against_the_truth(runs, record_property, capsys):
    ours, ref = runs["ours"] / TOTAL, runs["ref"] / TOTAL
    stars = _isolated_stars(runs["visit"], ref)
    selected = _candidates(ours, stars) & _candidates(ref, stars)
    stars = stars[selected]
    assert len(stars) >= 40, f"only {len(stars)} measurable stars"
    mine, theirs = _offsets_arcsec(ours, stars), _offsets_arcsec(ref, stars)
    good_mine, good_theirs = mine < GATE_ARCSEC, theirs < GATE_ARCSEC
    # an alignment error above the gate would push most stars out: that fails here
    assert good_mine.mean() >= 0.8 and good_theirs.mean() >= 0.8, \
        (good_mine.mean(), good_theirs.mean())
    both = good_mine & good_theirs
    n = int(both.sum())
    rms_mine, rms_theirs = rms(mine[both]), rms(theirs[both])
    margin = 2.0 / float(np.sqrt(2.0 * n))
    # the renamed exposures' WCSs against the true ones (exact, no measurement noise): reported
    exposures_mine, exposures_theirs = (
        rms(truth_offsets_mas(runs["visit"], sorted(p.parent.glob("hst_*_flc.fits"))))
        for p in (ours, ref))
    values = {"n_stars": n, "measured_fraction_hapgpu": float(good_mine.mean()),
              "measured_fraction_drizzlepac": float(good_theirs.mean()),
              "product_rms_hapgpu_arcsec": rms_mine,
              "product_rms_drizzlepac_arcsec": rms_theirs, "margin": margin,
              "exposure_rms_hapgpu_mas": exposures_mine,
              "exposure_rms_drizzlepac_mas": exposures_theirs,
              **{f"seconds_{k}": v for k, v in runs["seconds"].items()}}
    for name, value in values.items():
        record_property(name, value)
    with capsys.disabled():
        print("\nSVM alignment vs truth: " + ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items()))
    assert rms_mine <= rms_theirs * (1.0 + margin)
