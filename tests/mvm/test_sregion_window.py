"""S_REGION traced on the window around the data equals the whole frame's (hapgpu/svm/_headers.py
``_traced_polygons``): an MVM layer's data often cover part of its cell's bounded frame."""

from __future__ import annotations

import numpy as np
import pytest

from hapgpu.svm import _headers


def _image(rng, shape, *, nan: bool, n_blobs: int, margin: int):
    """Rectangles of data (with holes) on an empty frame (NaN or 0), ``margin`` pixels or more
    from the frame's edges (negative: cut by them)."""
    ny, nx = shape
    data = np.full(shape, np.nan if nan else 0.0, dtype=np.float32)
    for _ in range(n_blobs):
        h, w = int(rng.integers(6, ny // 2)), int(rng.integers(6, nx // 2))
        y0 = int(rng.integers(margin, max(margin + 1, ny - h - margin)))
        x0 = int(rng.integers(margin, max(margin + 1, nx - w - margin)))
        y0, x0 = max(y0, 0), max(x0, 0)
        data[y0:y0 + h, x0:x0 + w] = rng.uniform(0.5, 2.0, (min(h, ny - y0), min(w, nx - x0)))
        hy, hx = y0 + h // 2, x0 + w // 2                      # a hole inside
        data[hy:hy + 2, hx:hx + 2] = np.nan if nan else 0.0
    return data


@pytest.mark.parametrize("nan", [True, False])
@pytest.mark.parametrize("margin", [-5, 3, 60])
def test_window_polygons_equal_the_whole_frame(nan, margin):
    rng = np.random.default_rng(17 + margin + 100 * nan)
    n_polygons = 0
    for _ in range(4):
        data = _image(rng, (220, 260), nan=nan, n_blobs=int(rng.integers(1, 4)), margin=margin)
        whole, n_whole = _headers._traced_polygons(data, window=False)
        window, n_window = _headers._traced_polygons(data)
        assert n_window == n_whole and len(window) == len(whole)
        for a, b in zip(window, whole):
            assert np.array_equal(a, b)
        n_polygons += len(whole)
    assert n_polygons > 0   # (a blob thinner than the opening leaves no region)


def test_window_is_the_data_box_widened():
    mask = np.zeros((300, 400), dtype=bool)
    mask[100:120, 150:160] = True
    rows, cols = _headers._data_window(mask)
    m = _headers._WINDOW_MARGIN
    assert (rows.start, rows.stop, cols.start, cols.stop) == (100 - m, 120 + m, 150 - m, 160 + m)
    mask[:, :3] = True   # data at the frame's edge: the window stops there
    rows, cols = _headers._data_window(mask)
    assert (rows.start, rows.stop, cols.start) == (0, 300, 0)
    assert _headers._data_window(np.zeros((5, 5), dtype=bool)) is None
    assert _headers._traced_polygons(np.zeros((30, 30), np.float32)) == ([], 0)
