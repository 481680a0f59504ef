"""Our catalogs and drizzlepac's against the simulator's truth, on the same products.

For every filter product of the UVIS and IR sets (tests/catalogs/_products.py), the truth stars
(``truth/sky_catalog.ecsv``: positions at the visit epoch, AB magnitudes, count rates) inside
the footprint and isolated are placed on the product frame, and each gets an expected
aperture-2 magnitude and S/N:

* expected ``MagAp2`` = ``mag_<filter> - 2.5 log10(EE(r2))``, EE the encircled energy of the
  PSF the simulator drew the stars with (:func:`hapgpu.simulate.optics_psf`: the optics model
  of the PSF library as a Gaussian mixture, sigmas in detector pixels, turned into arcsec with
  the detector's nominal pixel scale) widened by the detector and drizzle pixels (twice
  ``pscale**2 / 12`` in quadrature, ``pscale`` the product's pixel scale);
* expected S/N = ``F / sqrt(F / T + sigma_ap**2)`` with ``F = rate EE(r2)`` (electron/s),
  ``T`` the WHT (exposure seconds) at the star and ``sigma_ap`` the sky noise of an r2
  aperture measured on the product itself: the sigma-clipped standard deviation of aperture
  sums on a grid over the footprint (this includes the pixel-to-pixel noise correlation that
  drizzling introduces).

In two S/N bins (about 10: 7-15; about 50: 35-75) the completeness (fraction of the truth stars
with a catalog source within 1 pixel) and the magnitude bias (median of catalog ``MagAp2``
minus expected) of both point and segment catalogs are computed for our catalogs and for
drizzlepac's, and printed. Ours must not be worse, within a stated statistical margin:

* completeness: ``ours >= drizzlepac - (2 sqrt(p (1 - p) / n) + 1 / n)`` (two binomial
  standard errors of drizzlepac's value p, plus one star);
* bias: ``|ours| <= |drizzlepac| + 2 * 1.2533 * (1.0857 / SN_low) / sqrt(n)`` (two standard
  errors of a median of n magnitudes each with the scatter 1.0857/SN of the bin's lower edge).

Both margins treat the two catalogs as independent samples, which overstates the noise of
their difference (they measure the same pixels); they bound chance, not systematics.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from scipy.spatial import cKDTree

from ._oracle import match_positions

SETS = ("uvis", "ir")
#: (label, lower, upper) S/N bins.
SN_BINS = (("S/N~10", 7.0, 15.0), ("S/N~50", 35.0, 75.0))
#: A truth star is found when a catalog source lies within this (pixels).
MATCH_PX = 1.0
#: Truth stars this close to the footprint edge (pixels) are left out (footprint erosion of
#: 10 pixels plus the sky annulus).
EDGE_PX = 16
#: Isolation: no other truth source brighter than this fraction of the star within
#: ISOLATION_ARCSEC.
ISOLATION_FRACTION = 0.1
ISOLATION_ARCSEC = 0.5
#: Fewer truth stars than this in a bin: the bin is reported but not tested.
MIN_STARS = 8

pytestmark = [pytest.mark.slow, pytest.mark.reference]


def _encircled_energy(radius_arcsec: float, detector_key: str, band: str,
                      pscale: float) -> float:
    """Fraction of the simulator's PSF within ``radius_arcsec`` (pixel widening included)."""
    from hapgpu.simulate import get_detector, optics_psf

    pixel = optics_psf(detector_key, band)                 # sigmas in detector pixels
    scale = get_detector(detector_key).pixel_scale         # arcsec per detector pixel
    psf = type(pixel)(sigmas=pixel.sigmas * scale, weights=pixel.weights)
    pixel_var = 2.0 * pscale ** 2 / 12.0
    return float(sum(w * (1.0 - math.exp(-radius_arcsec ** 2 / (2.0 * (s ** 2 + pixel_var))))
                     for s, w in zip(psf.sigmas, psf.weights)))


@functools.lru_cache(maxsize=4)
def _truth_table(path: str) -> Table:
    return Table.read(path, format="ascii.ecsv")


def _aperture_sky_sigma(sci: np.ndarray, good: np.ndarray, radius: float) -> float:
    """Standard deviation (3-sigma clipped) of the sums of ``sci`` in circles of ``radius``
    pixels centred on a grid of points of ``good`` (spaced by a diameter)."""
    from astropy.stats import sigma_clipped_stats
    from scipy import ndimage

    r = math.ceil(radius)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    disk = (xx ** 2 + yy ** 2 <= radius ** 2).astype(float)
    sums = ndimage.convolve(np.nan_to_num(sci), disk, mode="constant")
    inside = ndimage.binary_erosion(good, structure=disk.astype(bool))
    step = 2 * r + 1
    grid = np.zeros_like(inside)
    grid[::step, ::step] = True
    return float(sigma_clipped_stats(sums[inside & grid], sigma=3.0, maxiters=10)[2])


def truth_stars(product_set, filt: str) -> Table:
    """Isolated truth stars inside the filter product's footprint, with their frame pixel
    position, expected MagAp2 and expected S/N."""
    from astropy.wcs import WCS
    from scipy import ndimage

    from hapgpu.catalogs import catalog_parameters

    path = product_set.filter_products[filt]
    with fits.open(path) as hdul:
        sci = hdul["SCI"].data.astype(float)
        wht = hdul["WHT"].data.astype(float)
        wcs = WCS(hdul["SCI"].header)
        detector = hdul[0].header["DETECTOR"].strip().upper()
        instrument = hdul[0].header["INSTRUME"].strip().upper()
    pscale = math.sqrt(abs(np.linalg.det(wcs.wcs.cd))) * 3600.0
    r2_arcsec = catalog_parameters(instrument, detector).generation["aperture_2"]
    truth = _truth_table(str(product_set.sky_catalog))
    band = filt.upper()
    rate = np.asarray(truth[f"rate_{band}"], float)
    x, y = wcs.all_world2pix(truth["ra"], truth["dec"], 0, quiet=True)
    inside_frame = (x > 0) & (y > 0) & (x < sci.shape[1] - 1) & (y < sci.shape[0] - 1)
    mask = product_set.filter_masks[filt] > 0
    depth = ndimage.distance_transform_edt(mask)
    ix = np.clip(np.round(x).astype(int), 0, sci.shape[1] - 1)
    iy = np.clip(np.round(y).astype(int), 0, sci.shape[0] - 1)
    inside = inside_frame & (depth[iy, ix] > EDGE_PX) & (truth["kind"] == "star")
    # isolation, against every truth source (stars and galaxies)
    cosd = math.cos(math.radians(float(np.mean(truth["dec"]))))
    sky = np.column_stack([np.asarray(truth["ra"]) * cosd, np.asarray(truth["dec"])]) * 3600.0
    tree = cKDTree(sky)
    isolated = np.ones(len(truth), bool)
    for i in np.flatnonzero(inside):
        near = [j for j in tree.query_ball_point(sky[i], ISOLATION_ARCSEC) if j != i]
        isolated[i] = not np.any(rate[near] > ISOLATION_FRACTION * rate[i])
    keep = inside & isolated
    ee = _encircled_energy(r2_arcsec, f"{instrument}-{detector}".lower(), band, pscale)
    good_sky = mask & (depth > EDGE_PX) & (wht > 0)
    sigma_ap = _aperture_sky_sigma(sci, good_sky, r2_arcsec / pscale)
    flux = rate[keep] * ee
    seconds = np.maximum(wht[iy[keep], ix[keep]], 1e-3)
    out = Table()
    out["x"], out["y"] = x[keep], y[keep]
    out["mag_ap2"] = np.asarray(truth[f"mag_{band}"])[keep] - 2.5 * math.log10(ee)
    out["sn"] = flux / np.sqrt(flux / seconds + sigma_ap ** 2)
    return out


def _xy(table):
    x = "X-Center" if "X-Center" in table.colnames else "X-Centroid"
    return np.asarray(table[x], float), np.asarray(table[x.replace("X-", "Y-")], float)


def _mag(table, index):
    values = np.asarray(table["MagAp2"], float)[index]
    return np.where(values <= -9999.0, np.nan, values)


def score(stars: Table, catalog: Table, lo: float, hi: float):
    """(n stars, completeness, median magnitude bias, n with a magnitude) in one S/N bin."""
    sel = (stars["sn"] >= lo) & (stars["sn"] < hi)
    n = int(sel.sum())
    if n == 0:
        return 0, math.nan, math.nan, 0
    index, _ = match_positions(stars["x"][sel], stars["y"][sel], *_xy(catalog), MATCH_PX)
    found = index >= 0
    delta = _mag(catalog, index[found]) - np.asarray(stars["mag_ap2"][sel])[found]
    delta = delta[np.isfinite(delta)]
    bias = float(np.median(delta)) if delta.size else math.nan
    return n, float(found.mean()), bias, int(delta.size)


@pytest.mark.parametrize("name", SETS)
def test_not_worse_than_drizzlepac_against_truth(name, product_set, oracle_catalogs,
                                                 our_catalogs):
    """Completeness and magnitude bias at S/N ~10 and ~50, point and segment catalogs:
    ours are not worse than drizzlepac's on the same products (margins in the module doc)."""
    products = product_set(name)
    oracle, ours = oracle_catalogs(name), our_catalogs(name)
    ours_files = {p.name: p for p in ours.files}
    lines = [f"{name}: truth stars vs catalogs (n, completeness, median MagAp2 bias)"]
    problems = []
    tested = 0
    for filt in products.filters:
        stars = truth_stars(products, filt)
        for cat_type in ("point", "segment"):
            theirs = oracle.catalog(filt, cat_type)
            fname = next(p.name for p in oracle.files if f"_{filt}_" in p.name
                         and p.name.endswith(f"_{cat_type}-cat.ecsv"))
            mine = Table.read(ours_files[fname], format="ascii.ecsv")
            for label, lo, hi in SN_BINS:
                n, c_dp, b_dp, nb_dp = score(stars, theirs, lo, hi)
                _, c_us, b_us, nb_us = score(stars, mine, lo, hi)
                lines.append(f"  {filt:6s} {cat_type:7s} {label:7s} n={n:3d}  completeness "
                             f"ours {c_us:6.3f} drizzlepac {c_dp:6.3f}   bias ours "
                             f"{b_us:+7.4f} drizzlepac {b_dp:+7.4f}")
                if n < MIN_STARS:
                    continue
                tested += 1
                c_margin = 2.0 * math.sqrt(c_dp * (1.0 - c_dp) / n) + 1.0 / n
                # in stars, with room for float rounding only (18/19 vs 1 - 1/19)
                if c_us * n < (c_dp - c_margin) * n - 1e-9:
                    problems.append(f"{filt} {cat_type} {label}: completeness {c_us:.3f} < "
                                    f"drizzlepac's {c_dp:.3f} - {c_margin:.3f}")
                if nb_dp and nb_us:
                    b_margin = 2.0 * 1.2533 * (1.0857 / lo) / math.sqrt(min(nb_dp, nb_us))
                    if abs(b_us) > abs(b_dp) + b_margin:
                        problems.append(f"{filt} {cat_type} {label}: |bias| {abs(b_us):.4f} > "
                                        f"drizzlepac's {abs(b_dp):.4f} + {b_margin:.4f}")
    print("\n".join(lines))
    assert tested >= 4, f"only {tested} (filter, type, S/N) bins had {MIN_STARS}+ truth stars"
    assert not problems, "\n".join(problems + lines)
