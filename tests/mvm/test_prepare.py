"""Preparation of MVM cells: the chip polygon fill, the per-file sky borders, the copies started
before the guiding check (hapgpu/svm/_footprint.py, hapgpu/mvm/_poller.py, hapgpu/mvm/_pipeline.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from hapgpu.errors import InvalidInputError
from hapgpu.mvm import read_mvm_poller
from hapgpu.mvm._pipeline import run_mvm
from hapgpu.skycells import SkyCell
from hapgpu.svm import _footprint as fp

from ._cell_inputs import CELL, sample_rows, write_mvm_poller

needs_scan_rules = pytest.mark.skipif(fp._pillow_version() < fp._PILLOW_SCAN_RULES,
                                      reason="the vectorised fill follows Pillow 11+")


# ----------------------------------------------------------------------------- polygon fill
def _scan_fill(x, y, nx, ny):
    image = np.zeros((ny, nx), dtype=bool)
    for row, start, stop in zip(*fp._polygon_spans(x, y, nx, ny)):
        image[row, start:stop + 1] = True
    return image


@needs_scan_rules
def test_fill_equals_pillow_on_random_polygons():
    rng = np.random.default_rng(20261130)
    for trial in range(600):
        n = int(rng.integers(2, 30))
        nx, ny = int(rng.integers(1, 25)), int(rng.integers(1, 25))
        if trial % 3 == 0:   # vertices anywhere, some outside the image
            x, y = rng.integers(-3, nx + 3, n), rng.integers(-3, ny + 3, n)
        elif trial % 3 == 1:  # a walk of unit steps: short edges, many corners and flat runs
            x = np.cumsum(rng.integers(-1, 2, n)) + nx // 2
            y = np.cumsum(rng.integers(-1, 2, n)) + ny // 2
        else:                 # long edges inside the image
            x, y = rng.integers(0, nx, n), rng.integers(0, ny, n)
        expected = fp._pil_fill(x, y, nx, ny)
        assert np.array_equal(fp._fill(x, y, nx, ny), expected), (trial, x.tolist(), y.tolist())
        assert np.array_equal(_scan_fill(x, y, nx, ny), expected)


def _chip_ring(nx, ny, angle, scale, shift):
    """A chip border in the reference's point order (left, right, bottom, top: a self-crossing
    ring), rotated, scaled and truncated to integers like a border through a WCS."""
    x, y = fp._border_pixels(nx, ny)
    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    u = scale * (c * x - s * y) + shift[0]
    v = scale * (s * x + c * y) + shift[1]
    return u.astype(np.int32), v.astype(np.int32)


@needs_scan_rules
@pytest.mark.parametrize("angle", [0.0, 7.3, 33.0, 90.0, 131.7])
def test_fill_equals_pillow_on_chip_borders(angle):
    u, v = _chip_ring(160, 81, angle, 0.97, (120.0, 40.0))
    # the chip's sub-box, upper bounds excluded, as chip_fills and ChipOutline.box cut it
    x0, x1, y0, y1 = int(u.min()), int(u.max()), int(v.min()), int(v.max())
    args = (u - x0, v - y0, x1 - x0, y1 - y0)
    assert np.array_equal(fp._fill(*args), fp._pil_fill(*args))
    # clipped to a frame that cuts the chip (points piled on the frame's edges)
    nx, ny = 150, 90
    cu, cv = np.clip(u, 0, nx - 1), np.clip(v, 0, ny - 1)
    assert np.array_equal(fp._fill(cu, cv, nx, ny), fp._pil_fill(cu, cv, nx, ny))


def test_merge_spans_is_the_union():
    rng = np.random.default_rng(3)
    nx = 40
    rows = rng.integers(0, 6, 200)
    start = rng.integers(0, nx, 200)
    stop = np.minimum(start + rng.integers(0, 8, 200), nx - 1)
    expected = np.zeros((6, nx), dtype=bool)
    for r, a, b in zip(rows, start, stop):
        expected[r, a:b + 1] = True
    m_rows, m_start, m_stop = fp._merge_spans(rows, start, stop, nx)
    merged = np.zeros_like(expected)
    for r, a, b in zip(m_rows, m_start, m_stop):
        assert not merged[r, a:b + 1].any()   # disjoint
        merged[r, a:b + 1] = True
    assert np.array_equal(merged, expected)
    # separated by at least one pixel, in row order
    same_row = m_rows[1:] == m_rows[:-1]
    assert np.all(m_start[1:][same_row] > m_stop[:-1][same_row] + 1)
    assert np.all(np.diff(m_rows) >= 0)
    empty = np.zeros(0, dtype=np.int64)
    assert all(a.size == 0 for a in fp._merge_spans(empty, empty, empty, nx))


# ----------------------------------------------------------------------------- sky borders
def test_sky_borders_read_once_per_file_version(tmp_path, monkeypatch):
    (_, path, *_), = sample_rows(tmp_path / "in", keys=("uvis",))
    cell = SkyCell.from_name(CELL, scale="coarse")
    reads = []
    original = fp._read_sky_borders
    monkeypatch.setattr(fp, "_read_sky_borders", lambda p: reads.append(p) or original(p))
    fp._SKY_BORDERS.clear()
    first = fp.chip_borders(path, cell.wcs, cell.shape)
    fine = SkyCell.from_name(CELL, scale="fine")
    on_fine = fp.chip_borders(path, fine.wcs, fine.shape)   # another frame: no new read
    again = fp.chip_borders(path, cell.wcs, cell.shape)
    assert len(reads) == 1
    assert first[0] == again[0] and len(first[1]) == len(again[1]) == 2
    for (x, y), (x2, y2) in zip(first[1], again[1]):
        assert np.array_equal(x, x2) and np.array_equal(y, y2) and x.dtype == np.int32
    # the fine border is the same sky border on the fine cell: ~3x the coarse coordinates
    assert abs(int(on_fine[1][0][0].max()) - 3 * int(first[1][0][0].max())) <= 3
    # a rewritten file is read again; its new EXPTIME is used
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["EXPTIME"] = 171.0
    assert fp.chip_borders(path, cell.wcs, cell.shape)[0] == 171.0 and len(reads) == 2
    # failures are not remembered
    with pytest.raises(InvalidInputError, match="cannot read the exposure"):
        fp.chip_borders(tmp_path / "absent_flc.fits", cell.wcs, cell.shape)
    fp._SKY_BORDERS.clear()


def test_sky_border_memo_is_bounded():
    memo = fp._SkyBorderMemo(max_bytes=3000)
    border = (np.zeros(100), np.zeros(100))   # 1600 bytes
    memo.put("a", (1.0, (border,)))
    memo.put("b", (2.0, (border,)))           # over the bound: "a" goes
    assert memo.get("a") is None and memo.get("b")[0] == 2.0


# ----------------------------------------------------------------------------- copies
@pytest.fixture
def gsfail_rows(tmp_path):
    """The UVIS and IR samples; the IR one with a guide-star failure in its header."""
    rows = sample_rows(tmp_path / "in")
    with fits.open(rows[1][1], mode="update") as hdul:
        hdul[0].header["QUALITY"] = "GSFAIL"
    return rows


def test_before_guiding_sees_the_viable_rows(gsfail_rows, tmp_path):
    poller = write_mvm_poller(tmp_path / "cell_input.out", gsfail_rows)
    seen = []
    result = read_mvm_poller(poller, before_guiding=seen.append)
    assert [[r.filename for r in p.rows] for p in seen] == [[row[0] for row in gsfail_rows]]
    assert seen[0].skycell == CELL and seen[0].all_mvm_exposures == result.all_mvm_exposures
    assert [r.filename for r in result.rows] == [gsfail_rows[0][0]]
    assert dict(result.dropped)[gsfail_rows[1][0]] == "bad guiding"
    seen.clear()
    read_mvm_poller(poller, check_guiding=False, before_guiding=seen.append)
    assert seen == []


@pytest.mark.slow
def test_copies_started_before_the_guiding_check_are_removed(gsfail_rows, tmp_path):
    poller = write_mvm_poller(tmp_path / "cell_input.out", gsfail_rows)
    out = tmp_path / "out"
    assert run_mvm(poller, out, diagnostic=True, backend="cpu", progress=False) == 0
    prefix = f"hst_{CELL}_wfc3_"
    # the IR exposure (bad guiding) was copied before the check, then removed: diagnostic
    # mode keeps exactly the inputs of the layers made
    assert sorted(p.name for p in out.iterdir()) == sorted([
        f"{CELL}_manifest.txt", f"{prefix}uvis_f555w_all_drc.fits", f"{prefix}uvis_f555w_all_trl.txt",
        f"{prefix}uvis_f555w_all-ib4606c6_flc.fits"])
    trailer = (out / f"{prefix}uvis_f555w_all_trl.txt").read_text()
    assert f"Removing MVM input {prefix}ir_f110w_coarse-all-ib4606cp_flt.fits" in trailer


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), ValueError("bad card")])
def test_a_failed_copy_fails_the_cell_and_leaves_nothing(tmp_path, monkeypatch, caplog, error):
    import logging

    from hapgpu.mvm import _products

    rows = sample_rows(tmp_path / "in", keys=("uvis",))
    poller = write_mvm_poller(tmp_path / "cell_input.out", rows)

    def failing(source, folder, renamed):
        raise error

    monkeypatch.setattr(_products, "make_renamed_input", failing)
    out = tmp_path / "out"
    with caplog.at_level(logging.ERROR, logger="hapgpu"):
        assert run_mvm(poller, out, backend="cpu", progress=False) == 1
    assert str(error) in caplog.text
    assert not out.exists() or list(out.iterdir()) == []
