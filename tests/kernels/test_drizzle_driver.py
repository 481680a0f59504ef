"""The CPU drizzle driver's parts: the row-wise coordinate-table lookup and the tile waves."""

from __future__ import annotations

import numpy as np
import pytest

from hapgpu.kernels import _pixel_math as pm
from hapgpu.kernels.drizzle import tile_waves


def bilinear(tx, factor, x, y):
    """Independent bilinear interpolation of ``tx`` at 1-based ``(x, y)``, the cell clamped to
    the table (linear extrapolation beyond its last row or column)."""
    u, v = x / factor, y / factor
    a = min(max(int(np.floor(u)), 0), tx.shape[1] - 2)
    b = min(max(int(np.floor(v)), 0), tx.shape[0] - 2)
    fu, fv = u - a, v - b
    return ((1 - fu) * (1 - fv) * tx[b, a] + fu * (1 - fv) * tx[b, a + 1]
            + (1 - fu) * fv * tx[b + 1, a] + fu * fv * tx[b + 1, a + 1])


def test_table_row_lookup_is_the_table_interpolation():
    rng = np.random.default_rng(5)
    tx = rng.normal(500.0, 50.0, (7, 9))
    ty = rng.normal(300.0, 50.0, (7, 9))
    factor = 10.0
    for y in (1.0, 9.5, 10.0, 33.0, 61.0, 75.0):  # 75: beyond the last table row
        b, fv, gv = pm.table_row(tx, factor, y)
        assert 0 <= b <= tx.shape[0] - 2 and gv == 1.0 - fv
        for x in (1.0, 10.0, 47.5, 80.0, 95.0):
            row = pm.table_map_row(tx, ty, factor, x, b, fv, gv)
            assert row == pm.table_map(tx, ty, factor, x, y)  # one formula, bit for bit
            assert row[0] == pytest.approx(bilinear(tx, factor, x, y), rel=1e-13)
            assert row[1] == pytest.approx(bilinear(ty, factor, x, y), rel=1e-13)


def intersect(p, q):
    return p[0] <= q[1] and q[0] <= p[1] and p[2] <= q[3] and q[2] <= p[3]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tile_waves_are_disjoint_greedy_colours(seed):
    rng = np.random.default_rng(seed)
    n = 60
    corner = rng.random((n, 2)) * 300.0
    size = rng.random((n, 2)) * 80.0 + 1.0
    boxes = np.column_stack([corner[:, 0], corner[:, 0] + size[:, 0],
                             corner[:, 1], corner[:, 1] + size[:, 1]])
    boxes[7, 2] = np.nan  # a tile mapping nowhere
    boxes[9] = boxes[8]  # identical boxes intersect
    boxes[11] = [boxes[10, 1], boxes[10, 1] + 5.0, boxes[10, 2], boxes[10, 3]]  # touching
    # edges intersect (closed intervals)
    waves = tile_waves(boxes)
    order = np.concatenate(waves)
    assert sorted(order.tolist()) == [t for t in range(n) if t != 7]
    wave_of = {int(t): c for c, wave in enumerate(waves) for t in wave}
    assert wave_of[9] != wave_of[8] and wave_of[11] != wave_of[10]
    for c, wave in enumerate(waves):
        assert list(wave) == sorted(wave)
        for k, t in enumerate(wave):
            for u in wave[k + 1:]:
                assert not intersect(boxes[t], boxes[u])
            # greedy: every earlier wave holds an earlier tile that this one intersects
            for lower in range(c):
                assert any(u < t and intersect(boxes[t], boxes[u]) for u in waves[lower])


def test_tile_waves_of_no_valid_box():
    assert tile_waves(np.full((3, 4), np.nan)) == []
    assert tile_waves(np.zeros((0, 4))) == []
