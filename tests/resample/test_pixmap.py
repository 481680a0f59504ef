"""Pixel maps: drizzlepac's coordinate table, exact mode, and the drizzle-library layout."""

import numpy as np
import pytest

from hapgpu.resample import PixelMap

from ..conftest import REAL_CHIPS, load_chip_wcs, output_frame


@pytest.mark.parametrize("chip", sorted(REAL_CHIPS))
def test_table_close_to_exact(chip):
    """The stepsize-10 table differs from the exact WCS by < 1e-3 px (algorithms §1.3)."""
    w = load_chip_wcs(*REAL_CHIPS[chip])
    shape = (45, 61)
    out_wcs, _, _ = output_frame(w, shape, rot_deg=17.0)
    table = PixelMap.from_wcs(w, out_wcs, shape, stepsize=10).pixmap()
    exact = PixelMap.from_wcs(w, out_wcs, shape, stepsize=0).pixmap()
    diff = np.abs(table - exact)
    assert diff.max() < 1e-3
    # at the table nodes (multiples of 10 in 1-based coordinates) the two agree exactly
    np.testing.assert_allclose(table[9::10, 9::10], exact[9::10, 9::10], atol=1e-9)


@pytest.mark.reference
def test_exact_pixmap_matches_drizzle_library():
    from drizzle.utils import calc_pixmap

    w = load_chip_wcs(*REAL_CHIPS["hrc"])
    shape = (30, 40)
    out_wcs, _, _ = output_frame(w, shape, rot_deg=-25.0, scale_ratio=1.2)
    ours = PixelMap.from_wcs(w, out_wcs, shape, stepsize=0).pixmap()
    ref = calc_pixmap(w, out_wcs, shape=shape)
    np.testing.assert_allclose(ours, ref, atol=1e-7)


def test_table_layout_follows_drizzlepac():
    w = load_chip_wcs(*REAL_CHIPS["ir"])
    pmap = PixelMap.from_wcs(w, w, (33, 47), stepsize=10)
    assert pmap.table_x.shape == (33 // 10 + 2, 47 // 10 + 2)
    # node (a, b) is the input point (10a, 10b); identity map returns it
    np.testing.assert_allclose(pmap.table_x[2, 3], 30.0, atol=1e-6)
    np.testing.assert_allclose(pmap.table_y[2, 3], 20.0, atol=1e-6)
