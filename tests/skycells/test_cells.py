"""The sky tessellation: grid file, projection cells, sky cells, names (hap-pipeline.md §2.1)."""

from __future__ import annotations

import numpy as np
import pytest

from hapgpu.errors import InvalidInputError, InvalidParameterError
from hapgpu.skycells import (GridDefs, ProjectionCell, SkyCell, default_grid, parse_sky_cell_name,
                             resolve_scale, sky_cell_name)


def test_grid_keywords_and_rings():
    grid = default_grid()
    assert (grid.sc_overlap, grid.sc_nxy, grid.scale, grid.cell_size) == (256, 21, 0.04, 4.2)
    assert len(grid.rings) == 46 and grid.n_cells == 2644
    assert [r.zone for r in grid.rings] == list(range(46))
    assert [r.projcell for r in grid.rings[:5]] == [0, 1, 10, 25, 46]
    assert grid.rings[-1].projcell == 2643
    assert grid.rings[0].nband == grid.rings[-1].nband == 1
    assert max(r.nband for r in grid.rings) == 90
    # the pole rows hold -89.999999999997 / 90.0 in the file
    np.testing.assert_allclose([r.dec for r in grid.rings],
                               [-90.0] + list(range(-86, 87, 4)) + [90.0], rtol=0, atol=1e-10)
    assert {(r.xcell, r.ycell) for r in grid.rings} == {(450287, 450287)}
    for ring in grid.rings:
        assert ring.dec_min <= ring.dec <= ring.dec_max


def test_ring_of_cell_id():
    grid = default_grid()
    assert grid.ring_of(0).zone == 0
    assert grid.ring_of(1).zone == 1 and grid.ring_of(9).zone == 1
    assert grid.ring_of(10).zone == 2
    assert grid.ring_of(1889).dec == 26.0
    assert grid.ring_of(2643).zone == 45
    for ring in grid.rings:
        assert grid.ring_of(ring.projcell) is ring
        assert grid.ring_of(ring.projcell + ring.nband - 1) is ring
    for bad in (-1, 2644, 1.5, True):
        with pytest.raises(InvalidParameterError):
            grid.ring_of(bad)


def test_rings_covering_declinations():
    grid = default_grid()
    assert [r.zone for r in grid.rings_covering([24.0, 24.2])] == [28, 29]
    assert [r.zone for r in grid.rings_covering([24.0, 24.6])] == [29]
    assert [r.zone for r in grid.rings_covering([87.5])] == [44, 45]
    assert [r.zone for r in grid.rings_covering([89.0])] == [45]
    assert grid.rings_covering([]) == []


def test_verified_numbers_fine_and_coarse():
    """§2.1: p1889x07y19 -> CRVAL (180, 26), CRPIX (96492, -160812), 21954 px; coarse 32164, -53604, 7318."""
    fine = SkyCell.from_name("skycell-p1889x07y19")
    assert tuple(fine.wcs.wcs.crval) == (180.0, 26.0)
    assert tuple(fine.wcs.wcs.crpix) == (96492.0, -160812.0)
    assert fine.shape == (21954, 21954) and tuple(fine.wcs.pixel_shape) == (21954, 21954)
    np.testing.assert_array_equal(fine.wcs.wcs.cd, np.diag([-0.04, 0.04]) / 3600.0)
    coarse = SkyCell.from_name("p1889x07y19", scale="coarse")
    np.testing.assert_allclose(coarse.wcs.wcs.crpix, (32164.0, -53604.0), rtol=0, atol=1e-9)
    assert coarse.shape == (7318, 7318)
    np.testing.assert_allclose(coarse.wcs.wcs.cd, np.diag([-0.12, 0.12]) / 3600.0, rtol=1e-15)
    assert coarse.sky_cell_id == fine.sky_cell_id == "skycell-p1889x07y19"
    assert fine.scellid == "p1889x07y19"


def test_projection_cell_wcs():
    pc = ProjectionCell(1889)
    assert (pc.ring.zone, pc.band_index) == (29, 41)
    assert tuple(pc.wcs.wcs.crval) == (41 * 360.0 / 82, 26.0)
    assert tuple(pc.wcs.wcs.crpix) == (225144.0, 225144.0)
    assert pc.shape == (450287, 450287) and pc.sky_cell_step() == (21442, 21442)
    south_pole = ProjectionCell(0)
    np.testing.assert_allclose(south_pole.wcs.wcs.crval, (0.0, -90.0), rtol=0, atol=1e-10)
    # in_ring gives the same cell as the global id
    same = ProjectionCell.in_ring(pc.ring, 41)
    assert same.cell_id == 1889 and tuple(same.wcs.wcs.crval) == tuple(pc.wcs.wcs.crval)
    with pytest.raises(InvalidParameterError, match="band index 82"):
        ProjectionCell.in_ring(pc.ring, 82)


def test_sky_cell_grid_geometry():
    """Cells step 21442 fine pixels across the projection-cell plane and overlap by 512."""
    pc = ProjectionCell(1889)
    first = SkyCell(pc, 1, 1)
    last = SkyCell(pc, 21, 21)
    # (1, 1) starts at the projection cell's origin; (21, 21) runs 507 px past its far edge
    assert tuple(first.wcs.wcs.crpix) == tuple(pc.wcs.wcs.crpix)
    assert 20 * 21442 + 21954 - 450287 == 507
    assert last.wcs.wcs.crpix[0] == 225144.0 - 20 * 21442
    # (1, 1) is the south-east corner: larger RA, smaller Dec than (21, 21)
    ra1, dec1 = first.wcs.pixel_to_world_values(10975.5, 10975.5)
    ra2, dec2 = last.wcs.pixel_to_world_values(10975.5, 10975.5)
    assert ra1 > ra2 and dec1 < dec2
    # neighbours share 512 fine pixels: the same sky point is 21442 px apart in their grids
    right = SkyCell(pc, 2, 1)
    ra, dec = first.wcs.pixel_to_world_values(21700.0, 100.0)
    x, y = right.wcs.world_to_pixel_values(ra, dec)
    assert x == pytest.approx(21700.0 - 21442, abs=1e-6) and y == pytest.approx(100.0, abs=1e-6)


def test_names_and_parsing():
    assert sky_cell_name(121, 12, 16) == "skycell-p0121x12y16"
    assert parse_sky_cell_name("skycell-p0121x12y16") == (121, 12, 16)
    assert parse_sky_cell_name("p2643x01y21") == (2643, 1, 21)
    for bad in ("skycell-p121x12y16", "skycell_p0121x12y16", "p0121x1y16", "", "skycell-p0121x12y16z", 5):
        with pytest.raises(InvalidParameterError, match="not a sky-cell name"):
            parse_sky_cell_name(bad)
    with pytest.raises(InvalidParameterError, match="outside 0..2643"):
        SkyCell.from_name("skycell-p2644x01y01")
    with pytest.raises(InvalidParameterError, match="x index 0 outside 1..21"):
        SkyCell.from_name("skycell-p0121x00y01")
    with pytest.raises(InvalidParameterError, match="y index 22 outside 1..21"):
        SkyCell.from_name("skycell-p0121x01y22")


def test_scales():
    assert resolve_scale("fine") == 0.04 and resolve_scale("COARSE") == 0.12
    assert resolve_scale(0.08) == 0.08
    for bad in ("medium", -0.04, 0.0, float("nan"), None):
        with pytest.raises(InvalidParameterError):
            resolve_scale(bad)
    cell = SkyCell.from_name("skycell-p0121x12y16", scale=0.08)
    assert cell.shape == (10977, 10977)


def test_grid_file_errors(tmp_path):
    from astropy.io import fits

    broken = tmp_path / "grid.fits"
    fits.PrimaryHDU().writeto(broken)
    with pytest.raises(InvalidInputError, match=r"grid\.fits: tessellation keywords missing: SC_OLAP"):
        GridDefs.read(broken)
    with pytest.raises(InvalidInputError, match="cannot read"):
        GridDefs.read(tmp_path / "missing.fits")


def test_grid_scale_override():
    grid = GridDefs.read(scale=0.08)
    pc = ProjectionCell(1889, grid=grid)
    np.testing.assert_array_equal(pc.wcs.wcs.cd, np.diag([-0.08, 0.08]) / 3600.0)
    assert "scale=0.08" in repr(grid)


# ------------------------------------------------------------------ drizzlepac as the oracle

# drizzlepac's GridDefs leaves the tessellation file open
oracle = [pytest.mark.reference,
          pytest.mark.filterwarnings("ignore::ResourceWarning"),
          pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


def _apply(marks):
    def decorate(func):
        for mark in marks:
            func = mark(func)
        return func
    return decorate

NAMES = [
    "skycell-p1889x07y19",  # §2.1 example
    "skycell-p0000x01y01",  # south pole cell, corners
    "skycell-p0000x21y21",
    "skycell-p2643x11y11",  # north pole cell
    "skycell-p2643x21y01",
    "skycell-p0001x01y05",  # first cell of the first ring off the pole (CRVAL1 = 0)
    "skycell-p0009x21y03",  # last cell of that ring
    "skycell-p1848x01y11",  # RA = 0 at Dec 26
    "skycell-p1929x21y11",  # last cell of the Dec 26 ring (RA just below 360)
    "skycell-p1232x03y19",  # equator
    "skycell-p0121x12y16",
]


@_apply(oracle)
@pytest.mark.parametrize("scale", ["fine", "coarse", 0.08])
def test_sky_cell_wcs_matches_drizzlepac(scale):
    from drizzlepac.haputils import cell_utils

    for name in NAMES:
        ours = SkyCell.from_name(name, scale=scale)
        ref = cell_utils.SkyCell.from_name(name, scale=scale)
        assert ours.sky_cell_id == ref.sky_cell_id
        np.testing.assert_array_equal(ours.wcs.wcs.crpix, ref.wcs.wcs.crpix, err_msg=name)
        np.testing.assert_array_equal(ours.wcs.wcs.crval, ref.wcs.wcs.crval, err_msg=name)
        np.testing.assert_array_equal(ours.wcs.wcs.cd, ref.wcs.wcs.cd, err_msg=name)
        assert tuple(ours.wcs.pixel_shape) == tuple(ref.wcs.pixel_shape), name
        assert list(ours.wcs.wcs.ctype) == list(ref.wcs.wcs.ctype)
        np.testing.assert_array_equal(ours.wcs.calc_footprint(), ref.wcs.calc_footprint())


@_apply(oracle)
def test_projection_cells_and_grid_match_drizzlepac():
    from drizzlepac.haputils import cell_utils

    ref_grid = cell_utils.GridDefs()
    grid = default_grid()
    assert (grid.scale, grid.cell_size, grid.sc_overlap, grid.sc_nxy) == (
        ref_grid.scale, ref_grid.cell_size, ref_grid.sc_overlap, ref_grid.sc_nxy)
    for column in ("ZONE", "PROJCELL", "NBAND", "DEC", "DEC_MIN", "DEC_MAX", "XCELL", "YCELL"):
        np.testing.assert_array_equal([getattr(r, column.lower()) for r in grid.rings],
                                      ref_grid.rings[column], err_msg=column)
    for cell_id in (0, 1, 9, 10, 500, 1232, 1848, 1889, 1929, 2642, 2643):
        ours, ref = ProjectionCell(cell_id), cell_utils.ProjectionCell(index=cell_id)
        assert ours.band_index == ref.band_index
        np.testing.assert_array_equal(ours.wcs.wcs.crval, ref.wcs.wcs.crval)
        np.testing.assert_array_equal(ours.wcs.wcs.crpix, ref.wcs.wcs.crpix)
        np.testing.assert_array_equal(ours.wcs.wcs.cd, ref.wcs.wcs.cd)
        assert tuple(ours.wcs.pixel_shape) == tuple(ref.wcs.pixel_shape)
