"""Host geometry: chip footprints and overlaps (sky matching), output frames and bands."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.io import fits

from hapgpu.astrodrizzle._footprint import chip_footprint, fill_polygon, intersect_footprints, overlap_mask
from hapgpu.astrodrizzle._frame import custom_frame, default_frame, frame_from_reference, row_bands
from hapgpu.errors import InvalidParameterError


def _chip_wcs(path, extver=1):
    from stwcs.wcsutil import HSTWCS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(path) as hdul:
            return HSTWCS(hdul, ext=("SCI", extver))


def _random_polygons(n=40, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        centre = rng.uniform(-10, 60, 2)
        angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 8))))
        radius = rng.uniform(3, 40)
        pts = np.round(centre + radius * np.c_[np.cos(angles), np.sin(angles)]).astype(int)
        yield np.vstack([pts, pts[:1]])


@pytest.mark.reference
def test_fill_polygon_equals_skypac_scan():
    from stsci.skypac import region

    for ring in _random_polygons():
        ref = region.Polygon(True, [tuple(map(int, p)) for p in ring]).scan(np.zeros((50, 60), dtype=bool))
        np.testing.assert_array_equal(fill_polygon(ring, (50, 60)), ref)


@pytest.mark.reference
def test_overlaps_equal_spherical_geometry(small_inputs):
    """The chip pixels inside each overlap equal those skypac finds with spherical_geometry."""
    from spherical_geometry import polygon
    from stsci.skypac import region

    wcs = [_chip_wcs(p, k) for p in small_inputs for k in (1, 2)]
    checked = 0
    for i in range(len(wcs)):
        for j in range(i + 1, len(wcs)):
            a, b = wcs[i], wcs[j]
            ring = intersect_footprints(chip_footprint(a, a.array_shape), chip_footprint(b, b.array_shape))
            ref_poly = polygon.SphericalPolygon.from_wcs(a, steps=1).intersection(
                polygon.SphericalPolygon.from_wcs(b, steps=1))
            parts = [p for p in ref_poly if p.points.shape[0] > 3]
            assert (ring is None) == (not parts)
            if ring is None:
                continue
            for w in (a, b):
                ref = np.zeros(w.array_shape, dtype=bool)
                for part in parts:
                    x, y = w.all_world2pix(*part.to_lonlat(), 0)
                    ref = region.Polygon(True, list(zip(map(round, x), map(round, y)))).scan(ref)
                np.testing.assert_array_equal(overlap_mask(w, w.array_shape, ring), ref)
                checked += 1
    assert checked > 0


def test_identical_and_disjoint_footprints(small_inputs):
    w = _chip_wcs(small_inputs[0])
    fp = chip_footprint(w, w.array_shape)
    ra, dec = intersect_footprints(fp, fp)
    assert len(ra) == 5  # the footprint itself, closed
    assert overlap_mask(w, w.array_shape, (ra, dec)).all()
    far = fp.copy()
    far[:, 2] *= -1  # mirrored through the equator: no overlap
    assert intersect_footprints(fp, far) is None


def test_row_bands_cover_the_frame():
    assert row_bands(100, None) == [(0, 100, 0, 100)]
    bands = row_bands(100, 30, halo=2)
    assert [b[:2] for b in bands] == [(0, 30), (30, 60), (60, 90), (90, 100)]
    assert bands[1][2:] == (28, 62) and bands[-1][2:] == (88, 100)
    with pytest.raises(InvalidParameterError):
        row_bands(10, 0)


def test_band_is_the_frame_shifted(small_inputs):
    frame = default_frame([_chip_wcs(p, k) for p in small_inputs for k in (1, 2)])
    band = frame.band(10, 30)
    assert band.shape == (20, frame.shape[1]) and band.pscale == frame.pscale
    ra, dec = frame.wcs.wcs_pix2world([5.0, 50.0], [15.0, 25.0], 1)
    x, y = band.wcs.wcs_world2pix(ra, dec, 1)
    np.testing.assert_allclose(x, [5.0, 50.0], atol=1e-9)
    np.testing.assert_allclose(y, [5.0, 15.0], atol=1e-9)
    with pytest.raises(InvalidParameterError):
        frame.band(5, frame.shape[0] + 1)


_CUSTOM = [
    {"rot": 0.0},
    {"rot": 33.0, "scale": 0.05},
    {"scale": 0.08},
    {"outnx": 300, "outny": 200},
    {"outnx": 300, "outny": 200, "crpix1": 10.0, "crpix2": 20.0, "ra": 137.84, "dec": -64.91},
    {"rot": 10.0, "crpix1": 100.0, "crpix2": 50.0},
]


@pytest.mark.reference
@pytest.mark.parametrize("values", _CUSTOM)
def test_custom_frame_equals_merge_wcs(small_inputs, values):
    from drizzlepac import wcs_functions

    base = default_frame([_chip_wcs(p, k) for p in small_inputs for k in (1, 2)])
    pars = dict.fromkeys(("ra", "dec", "scale", "rot", "outnx", "outny", "crpix1", "crpix2"))
    pars.update(values)
    ref = wcs_functions.mergeWCS(base.wcs.deepcopy(), pars)
    ours = custom_frame(base, pars)
    np.testing.assert_array_equal(ours.wcs.wcs.cd, ref.wcs.cd)
    np.testing.assert_array_equal(ours.wcs.wcs.crpix, ref.wcs.crpix)
    np.testing.assert_array_equal(ours.wcs.wcs.crval, ref.wcs.crval)
    assert tuple(ours.wcs.pixel_shape) == tuple(ref.pixel_shape)
    assert ours.pscale == ref.pscale


def test_custom_frame_needs_pairs(small_inputs):
    base = default_frame([_chip_wcs(p) for p in small_inputs])
    with pytest.raises(InvalidParameterError, match="crpix2"):
        custom_frame(base, {"crpix1": 3.0})


def test_frame_from_reference_image(tmp_path, small_inputs):
    base = default_frame([_chip_wcs(p) for p in small_inputs])
    header = base.wcs.to_header()
    path = tmp_path / "ref.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros(base.shape, np.float32), header, name="SCI")]).writeto(path)
    frame = frame_from_reference(path)
    assert frame.shape == base.shape
    np.testing.assert_allclose(frame.wcs.wcs.crval, base.wcs.wcs.crval)
    assert frame.pscale == pytest.approx(base.pscale, rel=1e-12)
