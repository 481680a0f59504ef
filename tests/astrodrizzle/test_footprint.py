"""``fill_polygon`` (sky-matching overlaps) against skypac's ``region.Polygon.scan``, pixel for pixel."""

from __future__ import annotations

import numpy as np
import pytest

from hapgpu.astrodrizzle._footprint import fill_polygon


def _rings(n, seed):
    """Closed integer rings: convex polygons and random (often self-crossing) ones, many
    partly or wholly off a small image, on every side."""
    rng = np.random.default_rng(seed)
    for k in range(n):
        count = int(rng.integers(3, 9))
        if k % 3 == 0:
            points = rng.integers(-150, 150, (count, 2))
        else:
            centre = rng.uniform(-40, 110, 2)
            angles = np.sort(rng.uniform(0, 2 * np.pi, count))
            points = np.round(centre + rng.uniform(0.5, 80) * np.c_[np.cos(angles), np.sin(angles)])
        points = points.astype(np.int64)
        shape = (int(rng.integers(1, 70)), int(rng.integers(1, 70)))
        yield np.vstack([points, points[:1]]), shape


@pytest.mark.reference
def test_fill_polygon_equals_skypac_on_and_off_the_image():
    from stsci.skypac import region

    for ring, shape in _rings(600, seed=5):
        expected = region.Polygon(True, [tuple(map(int, p)) for p in ring]).scan(np.zeros(shape, bool))
        np.testing.assert_array_equal(fill_polygon(ring, shape), expected, err_msg=f"{ring.tolist()} {shape}")


def test_fill_polygon_rules():
    # a 4 x 3 box: spans inclusive; edges enter at their lower end, the top line keeps them
    box = np.array([[1, 1], [4, 1], [4, 3], [1, 3], [1, 1]])
    expected = np.zeros((6, 7), bool)
    expected[1:4, 1:5] = True
    np.testing.assert_array_equal(fill_polygon(box, (6, 7)), expected)
    # clockwise or counter-clockwise, shifted left of the image: clipped at column 0
    np.testing.assert_array_equal(fill_polygon(box[::-1] - [3, 0], (6, 7)),
                                  np.pad(expected[:, 3:], ((0, 0), (0, 3))))
    # zero width or height, or no sloped edge: nothing
    assert not fill_polygon(np.array([[2, 0], [2, 5], [2, 0]]), (6, 7)).any()
    assert not fill_polygon(np.array([[0, 2], [5, 2], [0, 2]]), (6, 7)).any()
    # wholly outside: nothing
    assert not fill_polygon(box + [0, 40], (6, 7)).any()
    # a triangle: crossings rounded up on every line
    tri = np.array([[0, 0], [6, 0], [0, 6], [0, 0]])
    got = fill_polygon(tri, (7, 7))
    assert [int(row.sum()) for row in got] == [7, 6, 5, 4, 3, 2, 1]
