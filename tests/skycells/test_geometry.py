"""Footprint outlines (find_corners edges) and the spherical-polygon overlap test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from hapgpu.errors import InvalidInputError
from hapgpu.skycells import footprint_edges, trace_border
from hapgpu.skycells._edges import (OPEN_AND_SMOOTH_REACH, dilate_cross, erode_cross, open_and_smooth,
                                    label_runs, tiled_local_filter, walk_pixels)
from hapgpu.skycells._sphere import convex_polygons_overlap, image_polygon, radec_to_xyz


def _rectangle(ny=60, nx=80, box=(15, 45, 20, 70)):
    mask = np.zeros((ny, nx), dtype=np.int16)
    y0, y1, x0, x1 = box
    mask[y0:y1, x0:x1] = 1
    return mask


def test_trace_border_walks_a_rectangle_outline():
    region = _rectangle().astype(bool)
    border = region.astype(np.int16) - ndimage.binary_erosion(region).astype(np.int16)
    path = trace_border(border)
    assert path.dtype == np.int32 and path.shape[1] == 2
    assert tuple(path[0]) == tuple(path[-1]) == (20, 15)  # lowest pixel of the leftmost column
    visited = {(int(x), int(y)) for x, y in path}
    border_pixels = {(int(x), int(y)) for y, x in zip(*np.nonzero(border))}
    # the walk cuts the two corners where it turns diagonally; every other pixel is visited once
    assert border_pixels - visited == {(20, 44), (69, 44)}
    assert visited <= border_pixels
    assert len(path) == len(visited) + 1
    steps = np.abs(np.diff(path, axis=0))
    assert steps.max() == 1  # neighbour to neighbour, back to the start
    assert tuple(path[1]) == (21, 15)  # along the bottom row first: counter-clockwise, y up


def test_trace_border_errors():
    with pytest.raises(InvalidInputError, match="no set pixel"):
        trace_border(np.zeros((5, 5)))
    with pytest.raises(InvalidInputError, match="2-D"):
        trace_border(np.ones(5))


def test_footprint_edges_of_a_rectangle_and_two_regions():
    x, y = footprint_edges(_rectangle())
    # opening and smoothing keep a clean rectangle; its outline is its border
    assert (x.min(), x.max(), y.min(), y.max()) == (20, 69, 15, 44)
    two = _rectangle(box=(10, 30, 5, 30)) + _rectangle(box=(35, 55, 40, 75))
    x, y = footprint_edges(two)
    assert set(zip(x[y < 32], y[y < 32])) and set(zip(x[y > 32], y[y > 32]))
    assert np.all((x <= 29) | (x >= 40))
    # closed outlines: each region's first pixel repeated
    assert x.size == len(set(zip(x, y))) + 2


def test_footprint_edges_drop_slivers_and_empty():
    thin = np.zeros((40, 40), dtype=np.int16)
    thin[10:30, 18:22] = 1  # 4 px wide: gone after 3 erosions
    x, y = footprint_edges(thin)
    assert x.size == y.size == 0
    x, y = footprint_edges(np.zeros((10, 10)))
    assert x.size == 0
    with pytest.raises(InvalidInputError, match="2-D"):
        footprint_edges(np.ones(4))


def test_footprint_edges_independent_of_empty_surroundings():
    """A footprint 10 px inside its frame (cropping clipped by the frame) gives the same outline,
    shifted, inside a larger empty frame (cropping with the full margin)."""
    rng = np.random.default_rng(3)
    blob = (ndimage.gaussian_filter(rng.normal(size=(70, 90)), 4) > 0).astype(np.int16)
    blob[:10, :] = blob[-10:, :] = 0
    blob[:, :10] = blob[:, -10:] = 0
    padded = np.zeros((170, 190), dtype=np.int16)
    padded[50:120, 50:140] = blob
    x1, y1 = footprint_edges(blob)
    x2, y2 = footprint_edges(padded)
    np.testing.assert_array_equal(x1 + 50, x2)
    np.testing.assert_array_equal(y1 + 50, y2)


def _edges_region_by_region(footprint):
    """find_corners' step 3 as drizzlepac codes it: each labelled region alone in its bounding
    box padded with 10 empty pixels, minus its erosion, traced (the oracle of the shortcut)."""
    smooth = open_and_smooth(np.clip(footprint, 0, 1).astype(bool))
    labels, _ = ndimage.label(smooth)
    xs, ys = [], []
    for label, box in enumerate(ndimage.find_objects(labels), start=1):
        region = np.pad(labels[box] == label, 10)
        path = trace_border(region & ~ndimage.binary_erosion(region))
        xs.append(path[:, 0] + box[1].start - 10)
        ys.append(path[:, 1] + box[0].start - 10)
    if not xs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(xs), np.concatenate(ys)


def test_footprint_edges_equal_region_by_region_tracing():
    """The border taken once for the whole mask and split by label gives each region's own
    border: regions touching diagonally, regions with holes, several regions, frame edges."""
    rng = np.random.default_rng(3)
    masks = [m for m in _test_masks(rng) if m.any()]
    ring = _rectangle(ny=90, nx=90, box=(10, 80, 10, 80))
    ring[35:55, 35:55] = 0                          # a hole with an island inside it
    ring[42:48, 42:48] = 0
    ring[40:50, 40:50] = 1
    diagonal = np.zeros((80, 80), np.int16)
    diagonal[5:40, 5:40] = 1
    diagonal[40:75, 40:75] = 1                      # touches the first square at one corner
    masks += [ring, diagonal, _rectangle(box=(0, 60, 0, 80)) * 3]
    for mask in masks:
        x, y = footprint_edges(mask)
        ex, ey = _edges_region_by_region(mask)
        np.testing.assert_array_equal(x, ex)
        np.testing.assert_array_equal(y, ey)


def test_label_runs_are_scipy_labels():
    """Regions found on row runs: scipy's 4-connected labels, numbered the same way."""
    rng = np.random.default_rng(8)
    masks = _test_masks(rng)
    for _ in range(40):
        ny, nx = (int(n) for n in rng.integers(1, 60, 2))
        noise = ndimage.gaussian_filter(rng.normal(size=(ny, nx)), rng.uniform(0.3, 3))
        masks.append(noise > rng.uniform(-0.2, 0.3) * noise.std())
    checker = (np.indices((9, 9)).sum(axis=0) % 2).astype(bool)  # diagonal neighbours only
    masks += [checker, ~checker]
    for mask in masks:
        labels, n = ndimage.label(mask)
        rows, starts, regions, n_regions = label_runs(mask)
        assert n_regions == n
        assert rows.size == np.count_nonzero(np.diff(np.pad(mask, ((0, 0), (1, 0))).astype(np.int8), axis=1) == 1)
        np.testing.assert_array_equal(labels[rows, starts], regions + 1)


def test_walk_pixels_follows_translation():
    border = _rectangle().astype(bool) & ~erode_cross(_rectangle().astype(bool), 1)
    ys, xs = np.nonzero(border)
    order = np.random.default_rng(0).permutation(xs.size)   # any order of the pixels
    path = walk_pixels(xs[order] + 1000, ys[order] - 7)
    np.testing.assert_array_equal(path, trace_border(border) + [1000, -7])
    with pytest.raises(InvalidInputError, match="no set pixel"):
        walk_pixels(np.zeros(0, int), np.zeros(0, int))


def _test_masks(rng):
    """Masks for the exactness tests: random blobs (some touching the frame edges), a rotated
    rectangle with a gap, all set, none set, a single row and column."""
    masks = []
    for _ in range(12):
        ny, nx = (int(n) for n in rng.integers(1, 300, 2))
        noise = ndimage.gaussian_filter(rng.normal(size=(ny, nx)), rng.uniform(1, 12))
        masks.append(noise > rng.uniform(-0.5, 0.5) * noise.std())
    yy, xx = np.mgrid[0:400, 0:420]
    u, v = (xx - 210) * np.cos(0.4) + (yy - 200) * np.sin(0.4), -(xx - 210) * np.sin(0.4) + (yy - 200) * np.cos(0.4)
    rotated = (np.abs(u) < 150) & (np.abs(v) < 120)
    rotated[190:195] = False
    masks += [rotated, np.ones((100, 90), bool), np.zeros((100, 90), bool), np.ones((1, 50), bool),
              np.ones((50, 1), bool)]
    return masks


def test_cross_morphology_equals_scipy():
    rng = np.random.default_rng(7)
    for mask in _test_masks(rng):
        for n in (1, 2, 3, 4, 5, 11, 40):  # shifted ORs/ANDs up to 4, distance transforms beyond
            np.testing.assert_array_equal(dilate_cross(mask, n), ndimage.binary_dilation(mask, iterations=n))
            np.testing.assert_array_equal(erode_cross(mask, n), ndimage.binary_erosion(mask, iterations=n))


def test_tiled_local_filter_equals_the_whole_frame():
    """Bit for bit the function of the whole frame, for any tile size (uniform tiles skipped,
    windows clipped at the frame edges), here with the opening + Gaussian of find_corners."""
    rng = np.random.default_rng(11)
    for mask in _test_masks(rng):
        expected = open_and_smooth(mask)
        for tile in (OPEN_AND_SMOOTH_REACH, 23, 64, 128):
            np.testing.assert_array_equal(tiled_local_filter(mask, open_and_smooth, OPEN_AND_SMOOTH_REACH,
                                                             tile=tile), expected)
    with pytest.raises(InvalidInputError, match="reach"):
        tiled_local_filter(np.ones((5, 5), bool), open_and_smooth, 40, tile=32)
    with pytest.raises(InvalidInputError, match="2-D"):
        tiled_local_filter(np.ones(5, bool), open_and_smooth, 4)


@pytest.mark.reference
def test_footprint_edges_match_drizzlepac_find_corners():
    """Same outline pixels, in the same order, as SkyFootprint.find_corners on random masks."""
    from astropy.wcs import WCS
    from drizzlepac.haputils import cell_utils

    rng = np.random.default_rng(0)
    large = _rectangle(ny=420, nx=530, box=(30, 400, 25, 500))  # several tiles: some skipped
    large[200:206] = 0
    masks = [_rectangle(), _rectangle(box=(0, 60, 0, 80)),
             _rectangle(box=(10, 30, 5, 30)) + _rectangle(box=(35, 55, 40, 75)), large]
    for _ in range(15):
        ny, nx = (int(n) for n in rng.integers(40, 120, 2))
        noise = ndimage.gaussian_filter(rng.normal(size=(ny, nx)), rng.uniform(2, 8))
        masks.append((noise > rng.uniform(0, 0.5) * noise.std()).astype(np.int16))
    for mask in masks:
        ny, nx = mask.shape
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs.wcs.cdelt = [-1e-5, 1e-5]
        wcs.pixel_shape = (nx, ny)
        reference = cell_utils.SkyFootprint(wcs)
        reference.total_mask = mask
        reference.members = ["mask"]
        reference.find_corners()
        x, y = footprint_edges(mask)
        expected = np.vstack(reference.edge_pixels) if reference.edge_pixels else np.zeros((0, 2))
        np.testing.assert_array_equal(np.stack([x, y], axis=1), expected)


# ------------------------------------------------------------------ spherical overlap

def _ccw(corners_ra, corners_dec):
    """Unit-vector quadrilateral through the corners, ordered counter-clockwise."""
    vertices = radec_to_xyz(corners_ra, corners_dec)
    centre = vertices.sum(axis=0)
    if np.dot(np.cross(vertices[0], vertices[1]), centre) < 0:
        vertices = vertices[::-1].copy()
    return vertices


def _square(ra, dec, half):
    """Square of half-size ``half`` deg centred on (ra, dec) (small, near the equator)."""
    return _ccw([ra + half, ra - half, ra - half, ra + half],
                [dec - half, dec - half, dec + half, dec + half])


def test_convex_overlap_cases():
    a = _square(10.0, 5.0, 1.0)
    assert convex_polygons_overlap(a, a)
    assert convex_polygons_overlap(a, _square(10.5, 5.5, 1.0))         # corner overlap
    assert convex_polygons_overlap(a, _square(10.0, 5.0, 0.1))         # contained
    assert convex_polygons_overlap(_square(10.0, 5.0, 0.1), a)         # contains
    assert not convex_polygons_overlap(a, _square(13.0, 5.0, 1.0))     # apart
    assert not convex_polygons_overlap(a, _square(190.0, -5.0, 1.0))   # antipode side
    # a cross: two thin rectangles crossing with no vertex inside the other
    horizontal = _ccw([12.0, 8.0, 8.0, 12.0], [4.9, 4.9, 5.1, 5.1])
    vertical = _ccw([10.1, 9.9, 9.9, 10.1], [3.0, 3.0, 7.0, 7.0])
    assert convex_polygons_overlap(horizontal, vertical)
    assert convex_polygons_overlap(vertical, horizontal)
    # sharing an edge, or a corner, is not an overlap
    assert not convex_polygons_overlap(_ccw([11, 9, 9, 11], [4, 4, 6, 6]), _ccw([9, 7, 7, 9], [4, 4, 6, 6]))
    assert not convex_polygons_overlap(_ccw([11, 9, 9, 11], [4, 4, 6, 6]), _ccw([9, 7, 7, 9], [6, 6, 8, 8]))
    # half-overlapping squares with collinear edges (no vertex strictly inside, no proper crossing)
    assert convex_polygons_overlap(_ccw([12, 10, 10, 12], [4, 4, 6, 6]), _ccw([11, 9, 9, 11], [4, 4, 6, 6]))


def test_image_polygon_is_counter_clockwise_and_covers_the_pixels():
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [359.9, 30.0]
    wcs.wcs.crpix = [50.5, 50.5]
    wcs.wcs.cd = np.diag([-1e-3, 1e-3])
    polygon = image_polygon(wcs, (100, 100))
    inside = radec_to_xyz(*wcs.pixel_to_world_values([0.0, 99.0, 50.0], [0.0, 99.0, 50.0]))
    outside = radec_to_xyz(*wcs.pixel_to_world_values([-1.0, 100.0], [50.0, 50.0]))
    normals = np.cross(polygon, np.roll(polygon, -1, axis=0))
    assert np.all(inside @ normals.T > 0)
    assert np.all(np.any(outside @ normals.T < 0, axis=1))


@pytest.mark.reference
def test_overlap_matches_spherical_geometry():
    """Random small quadrilaterals: our verdict equals spherical_geometry's overlap > 0."""
    from spherical_geometry.polygon import SphericalPolygon

    rng = np.random.default_rng(11)
    n_true = 0
    for _ in range(150):
        ra0, dec0 = rng.uniform(0, 360), rng.uniform(-80, 80)
        shapes = []
        for _ in range(2):
            ra = ra0 + rng.uniform(-1.5, 1.5)
            dec = dec0 + rng.uniform(-1.5, 1.5)
            half_ra, half_dec = rng.uniform(0.1, 1.0, 2)
            corners_ra = np.array([ra + half_ra, ra - half_ra, ra - half_ra, ra + half_ra])
            corners_dec = np.array([dec - half_dec, dec - half_dec, dec + half_dec, dec + half_dec])
            vertices = radec_to_xyz(corners_ra, corners_dec)
            if np.dot(np.cross(vertices[0], vertices[1]), radec_to_xyz(ra, dec)) < 0:
                vertices = vertices[::-1].copy()
            shapes.append((vertices, corners_ra, corners_dec, (ra, dec)))
        (a, a_ra, a_dec, a_in), (b, b_ra, b_dec, b_in) = shapes
        poly_a = SphericalPolygon.from_radec(np.append(a_ra, a_ra[0]), np.append(a_dec, a_dec[0]), a_in)
        poly_b = SphericalPolygon.from_radec(np.append(b_ra, b_ra[0]), np.append(b_dec, b_dec[0]), b_in)
        expected = poly_a.overlap(poly_b) > 0
        n_true += expected
        assert convex_polygons_overlap(a, b) == expected
    assert 20 < n_true < 130  # both outcomes are exercised


def test_walk_pixels_equals_drizzlepac_poly_trace_on_ragged_sets():
    """Gaps (5 x 5 jumps), forks (two candidates scored) and early ends: the same pixels in the
    same order as drizzlepac's ``_poly_trace`` (sets kept 3 pixels inside the array, where its
    boxes are whole)."""
    from drizzlepac.haputils import cell_utils

    rng = np.random.default_rng(11)
    checked = 0
    for k in range(60):
        ny, nx = (int(n) for n in rng.integers(4, 60, 2))
        if k % 2:
            inner = rng.random((ny, nx)) > rng.uniform(0.3, 0.9)
        else:
            blob = ndimage.gaussian_filter(rng.normal(size=(ny, nx)), rng.uniform(1, 4)) > 0
            inner = blob & ~erode_cross(blob, 1)
        if not inner.any():
            continue
        mask = np.zeros((ny + 6, nx + 6), dtype=np.int16)
        mask[3:-3, 3:-3] = inner
        expected = np.asarray(cell_utils._poly_trace(mask), dtype=np.int64)
        ys, xs = np.nonzero(mask)
        np.testing.assert_array_equal(walk_pixels(xs, ys), expected)
        checked += 1
    assert checked > 40
