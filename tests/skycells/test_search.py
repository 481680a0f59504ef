"""The sky-cell search on small simulated visits (hap-pipeline.md §2.2) and the SKYCELL keyword."""

from __future__ import annotations

import argparse
import shutil

import numpy as np
import pytest
from astropy.io import fits

from hapgpu.errors import InvalidInputError, InvalidParameterError
from hapgpu.skycells import (ProjectionCell, SkyCell, add_skycell_keyword, extract_visit,
                             get_sky_cells, interpret_scells, skycell_keyword,
                             update_skycell_keyword)

# Projection cell 1889 (CRVAL 180, 26) pixel (214586, 120000): 2 exposures 60 px apart straddle
# the start of sky-cell column x = 11 (pc pixel 214420), so only the first one reaches it.
SPLIT_TARGET = (180.1292228877669, 24.831850764995686)
EQUATOR_TARGET = (2.0, 0.0)    # where four projection cells meet
POLAR_TARGET = (200.0, 87.5)   # in two rings, one of them the north-pole cell
# RA rounds to band index 82 = 0 in the Dec 26 ring (82 cells): cell 0 (1848) and its upper
# neighbour are tried, not the last cell (1929), which holds the target too (as coded)
WRAP_TARGET = (357.9, 26.0)


def _simulate(outdir, target, **kwargs):
    from hapgpu.simulate import simulate_visit

    visit = simulate_visit(outdir, "wfc3-uvis", 2, shape=(64, 64), target=target, noise=False,
                           cosmic_rays=False, defects=False, star_density=1.0,
                           galaxy_density=0.0, **kwargs)
    return [str(exposure.path) for exposure in visit.exposures]


@pytest.fixture(scope="module")
def split_visit(tmp_path_factory):
    return _simulate(tmp_path_factory.mktemp("split"), SPLIT_TARGET, dither_pixels=60)


@pytest.fixture(scope="module")
def second_visit(tmp_path_factory):
    return _simulate(tmp_path_factory.mktemp("second"), SPLIT_TARGET, visit="02", seed=2,
                     dither_pixels=0)


def _s_region_cells(path):
    """Fine sky cells of pc 1889 holding an S_REGION vertex of the exposure (an independent truth)."""
    pc = ProjectionCell(1889)
    cells = set()
    with fits.open(path) as hdul:
        for hdu in hdul:
            if hdu.header.get("EXTNAME") != "SCI":
                continue
            values = np.array(hdu.header["S_REGION"].split()[2:], dtype=float).reshape(-1, 2)
            for x in range(1, 22):
                for y in range(1, 22):
                    cell = SkyCell(pc, x, y)
                    px, py = cell.wcs.world_to_pixel_values(values[:, 0], values[:, 1])
                    if np.any((px >= 0) & (px <= cell.shape[1]) & (py >= 0) & (py <= cell.shape[0])):
                        cells.add(cell.sky_cell_id)
    return cells


def test_split_visit_cells_and_members(split_visit):
    first, second = split_visit
    cells = get_sky_cells(split_visit)
    assert list(cells) == ["skycell-p1889x10y06", "skycell-p1889x11y06"]
    assert cells["skycell-p1889x10y06"].members == [first, second]
    assert cells["skycell-p1889x11y06"].members == [first]
    assert all(isinstance(cell, SkyCell) and cell.scale == 0.04 for cell in cells.values())
    # the same cells as the exposures' own S_REGION corners say
    assert _s_region_cells(first) == {"skycell-p1889x10y06", "skycell-p1889x11y06"}
    assert _s_region_cells(second) == {"skycell-p1889x10y06"}
    by_file = interpret_scells(cells)
    assert by_file[first]["id"] == "skycell-p1889x10y06;skycell-p1889x11y06"
    assert by_file[second]["id"] == "skycell-p1889x10y06"
    assert by_file[second]["skycell-p1889x10y06"] is cells["skycell-p1889x10y06"]


def test_list_file_input_and_visit_merging(split_visit, second_visit, tmp_path):
    listing = tmp_path / "visits.out"
    listing.write_text("".join(f"{name},17001,SIM\n" for name in split_visit + second_visit))
    cells = get_sky_cells(listing)
    assert cells["skycell-p1889x10y06"].members[:2] == split_visit
    assert set(cells["skycell-p1889x10y06"].members[2:]) <= set(second_visit)
    assert extract_visit(second_visit[0]) == "isim02"


def test_skycell_keyword_written_after_s_region(split_visit, tmp_path):
    copy = tmp_path / "isim01a0q_flc.fits"
    shutil.copy(split_visit[0], copy)
    assert skycell_keyword(copy) == "p1889x10y06; p1889x11y06"
    assert add_skycell_keyword(copy) == "p1889x10y06; p1889x11y06"
    with fits.open(copy) as hdul:
        for index in (1, 4):
            header = hdul[index].header
            keys = list(header.keys())
            assert keys[keys.index("S_REGION") + 1] == "SKYCELL"
            assert header["SKYCELL"] == "p1889x10y06; p1889x11y06"
            assert header.comments["SKYCELL"] == "Skycell(s) that this image occupies"
    # a second run updates in place
    header = fits.Header([("S_REGION", "x"), ("SKYCELL", "old"), ("BUNIT", "e")])
    update_skycell_keyword(header, "p0001x01y01")
    assert list(header.keys()) == ["S_REGION", "SKYCELL", "BUNIT"] and header["SKYCELL"] == "p0001x01y01"
    bare = fits.Header([("BUNIT", "e")])
    update_skycell_keyword(bare, "p0001x01y01")
    assert list(bare.keys()) == ["BUNIT", "SKYCELL"]


def test_exposures_without_wcsname_are_dropped(split_visit, tmp_path):
    stripped = tmp_path / "isim01a0q_flc.fits"
    shutil.copy(split_visit[0], stripped)
    with fits.open(stripped, mode="update") as hdul:
        del hdul[1].header["WCSNAME"]
    assert get_sky_cells([stripped]) == {}
    cells = get_sky_cells([str(stripped), split_visit[1]])
    assert {cid: cell.members for cid, cell in cells.items()} == {"skycell-p1889x10y06": [split_visit[1]]}


def test_input_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="missing_flc.fits: no such exposure"):
        get_sky_cells([str(tmp_path / "missing_flc.fits")])
    with pytest.raises(InvalidInputError, match="cannot read the exposure list"):
        get_sky_cells(tmp_path / "nothing.lst")
    empty = tmp_path / "empty.lst"
    empty.write_text("\n")
    with pytest.raises(InvalidInputError, match="empty.lst: the exposure list is empty"):
        get_sky_cells(empty)
    with pytest.raises(InvalidInputError, match="file names"):
        get_sky_cells([1, 2])
    with pytest.raises(InvalidParameterError):
        get_sky_cells([], scale=-1.0)
    assert extract_visit("/data/hst_11665_06_wfc3_uvis_f555w_ib4606c5_flc.fits") == "ib4606"
    assert extract_visit("ib4606c5q_flc.fits") == "ib4606"


def test_cli_report(split_visit, capsys):
    from hapgpu.skycells._cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["skycells", "--which-skycell", *split_visit])
    assert args.func(args) == 0
    first, second = split_visit
    assert capsys.readouterr().out == (
        "Skycell skycell-p1889x10y06 contains 2 image(s)\n"
        f"     {first}\n     {second}\n"
        "Skycell skycell-p1889x11y06 contains 1 image(s)\n"
        f"     {first}\n")
    args = parser.parse_args(["skycells", "--by-file", *split_visit])
    assert args.func(args) == 0
    assert capsys.readouterr().out == f"{first}: p1889x10y06; p1889x11y06\n{second}: p1889x10y06\n"
    args = parser.parse_args(["skycells"])
    with pytest.raises(InvalidParameterError, match="no exposures"):
        args.func(args)


# ------------------------------------------------------------------ drizzlepac as the oracle

oracle = [pytest.mark.reference,
          pytest.mark.filterwarnings("ignore::ResourceWarning"),
          pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


def _apply(marks):
    def decorate(func):
        for mark in marks:
            func = mark(func)
        return func
    return decorate


def _reference_cells(files):
    from drizzlepac.haputils import cell_utils

    cells = cell_utils.get_sky_cells(list(files))
    return {cell_id: list(cell.members) for cell_id, cell in cells.items()}


def _our_cells(files):
    return {cell_id: list(cell.members) for cell_id, cell in get_sky_cells(files).items()}


@_apply(oracle)
def test_split_and_merged_visits_match_drizzlepac(split_visit, second_visit):
    for files in (split_visit, split_visit + second_visit, second_visit[::-1] + split_visit):
        expected = _reference_cells(files)
        ours = _our_cells(files)
        assert ours == expected
        assert list(ours) == list(expected)


@_apply(oracle)
@pytest.mark.parametrize("target, n_projection_cells",
                         [(EQUATOR_TARGET, 4), (POLAR_TARGET, 4), (WRAP_TARGET, 1)],
                         ids=["pc-corner", "polar", "ra-wrap"])
def test_projection_cell_boundaries_match_drizzlepac(target, n_projection_cells, tmp_path):
    files = _simulate(tmp_path, target)
    expected = _reference_cells(files)
    ours = _our_cells(files)
    assert list(ours) == list(expected)
    assert ours == expected
    assert len({cell_id[:13] for cell_id in ours}) == n_projection_cells
    if target == WRAP_TARGET:
        x, y = ProjectionCell(1929).wcs.world_to_pixel_values(*target)
        assert 0 < x < 450287 and 0 < y < 450287  # inside cell 1929, yet not reported
        assert list(ours) == ["skycell-p1848x19y11"]


@_apply(oracle)
def test_skycell_keyword_matches_drizzlepac(split_visit, tmp_path):
    from drizzlepac.haputils import processing_utils

    for source in split_visit:
        ours, theirs = tmp_path / "ours_flc.fits", tmp_path / "theirs_flc.fits"
        shutil.copy(source, ours)
        shutil.copy(source, theirs)
        add_skycell_keyword(ours)
        processing_utils.add_skycell_to_header(str(theirs))
        with fits.open(ours) as a, fits.open(theirs) as b:
            for index in (1, 4):
                assert list(a[index].header.keys()) == list(b[index].header.keys())
                assert a[index].header["SKYCELL"] == b[index].header["SKYCELL"]


@pytest.mark.parametrize("name", ["sample_svm_flc", "sample_svm_flt"])
def test_real_exposure_sky_cell(name, tmp_path):
    """The HST sample (ib4606, §2.4's verified layer 'skycell-p0121x12y16 wfc3 uvis f555w ...')."""
    import gzip
    from pathlib import Path

    data = Path(__file__).resolve().parents[1] / "data" / f"{name}.fits.gz"
    path = tmp_path / f"{name}.fits"
    with gzip.open(data) as source, open(path, "wb") as target:
        shutil.copyfileobj(source, target)
    assert skycell_keyword(path) == "p0121x12y16"


def test_candidate_projection_cells_in_a_ring():
    """k = rint(RA * NBAND / 360) mod NBAND, plus neighbours; the low side does not wrap (as coded)."""
    from hapgpu.skycells._search import _candidate_band_indices

    assert list(_candidate_band_indices(np.array([180.0, 181.0]), 82)) == [40, 41, 42]
    assert list(_candidate_band_indices(np.array([359.9, 0.1]), 82)) == [0, 1]        # no 81
    assert list(_candidate_band_indices(np.array([352.0]), 82)) == [79, 80, 81]
    assert list(_candidate_band_indices(np.array([356.0]), 82)) == [0, 80, 81]        # high side wraps
    assert list(_candidate_band_indices(np.array([357.9]), 82)) == [0, 1]             # rounds to 82 = 0
    assert list(_candidate_band_indices(np.array([10.0, 350.0]), 1)) == [0]           # pole cell
