"""Tiled output storage: tiles allocated on first touch, windowed deposits, streamed products.

The oracle is the same accumulator with one tile covering the whole frame (one full-frame
window per input, as before tiling). A tiled run keeps full-frame coordinates and clipping
and only moves the accumulator index, and every output pixel receives its drops in the same
order, so the results must be equal bit for bit (reproject's ``test_blocked_against_single``).
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from astropy.io import fits

from hapgpu.errors import InvalidParameterError, OutputWriteError
from hapgpu.resample import KERNELS, Drizzle, PixelMap

from ..conftest import (
    REAL_CHIPS,
    load_chip_wcs,
    output_frame,
    shifted_wcs,
    synthetic_scene,
)
from ._accumulators import assert_sums_match_running_mean

SHAPE = (20, 24)
TILE = 16  # the smallest tile: many tiles on these small frames
#: (crpix shift of the input WCS, context id, in_units): overlapping inputs, one partly off
#: the frame, one entirely off it, ids past 32 (a second context plane) and counts input.
INPUTS = (((0.0, 0.0), 1, "counts"), ((7.0, -5.0), 2, "cps"), ((-30.0, 12.0), 33, "counts"),
          ((3.0, 4.0), 40, "cps"), ((5000.0, 0.0), 3, "cps"))


@pytest.fixture(scope="module")
def frame():
    w = load_chip_wcs(*REAL_CHIPS["uvis2"])
    out_wcs, out_shape, ratio = output_frame(w, SHAPE, rot_deg=30.0, scale_ratio=0.9,
                                             coverage=2.2)
    pmaps = [PixelMap.from_wcs(shifted_wcs(w, dx, dy), out_wcs, SHAPE) for (dx, dy), _, _ in INPUTS]
    return pmaps, out_shape, ratio


def drizzle_all(frame, kernel, tile_shape, backend="cpu", pixfrac=1.0, fillval=None,
                n_inputs=len(INPUTS)):
    pmaps, out_shape, ratio = frame
    drz = Drizzle(out_shape, kernel=kernel, pixfrac=pixfrac, fillval=fillval, backend=backend,
                  tile_shape=tile_shape)
    for k, (pmap, (_, ctx_id, units)) in enumerate(zip(pmaps, INPUTS[:n_inputs])):
        data, wht = synthetic_scene(SHAPE, seed=k, mask_fraction=0.15)
        data[2, 3] = np.nan
        err = np.sqrt(np.abs(data)) + 1.0
        dq = ((wht == 0) * 16 + (data > 200) * 4).astype(np.int16)
        drz.add_image(data, pmap, weight=wht, in_units=units, exptime=150.0 + 50 * k, scale=ratio,
                      context_id=ctx_id, error=err, dq=dq)
    return drz


def assert_identical(a, b):
    for name in ("sci", "wht", "ctx", "err", "dq"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.mark.parametrize("pixfrac", [1.0, 0.6])
@pytest.mark.parametrize("kernel", KERNELS)
def test_tiled_equals_one_tile_bit_for_bit(kernel, pixfrac, frame):
    out_shape = frame[1]
    single = drizzle_all(frame, kernel, max(out_shape), pixfrac=pixfrac)
    tiled = drizzle_all(frame, kernel, TILE, pixfrac=pixfrac)
    assert single.n_tiles == 1
    assert tiled.n_tiles > 4
    assert_identical(tiled, single)
    # the zero-weight (INDEF) rule and the context planes were exercised
    assert tiled.ctx.shape[0] == 2 and tiled.ctx[1].any()
    covered = tiled.wht > 0
    assert np.isfinite(tiled.sci[covered]).all()
    assert (~covered & np.isfinite(tiled.sci)).any(), "no pixel took a zero-weight value"


@pytest.mark.parametrize("kernel", ["square", "lanczos3"])
def test_tiled_with_fill_value(kernel, frame):
    out_shape = frame[1]
    single = drizzle_all(frame, kernel, max(out_shape), fillval=-3.5)
    tiled = drizzle_all(frame, kernel, (TILE, 2 * TILE), fillval=-3.5)
    assert_identical(tiled, single)
    assert (tiled.sci[tiled.wht == 0] == np.float32(-3.5)).all()


@pytest.mark.parametrize("kernel", ["point", "gaussian"])
@pytest.mark.parametrize("fillval, initial", [(None, np.nan), (None, 0.0), (-3.5, 0.0), (0.0, 2.0)])
@pytest.mark.parametrize("tile_shape", [None, TILE])
def test_covered_spans_finish_like_the_whole_tile(kernel, fillval, initial, tile_shape, frame):
    """The CPU finishes only each tile row's covered columns (``Tile.span``) and writes or
    leaves the empty values elsewhere: SCI, WHT and CTX equal, bit for bit, what finishing
    every column gives (spans forgotten), whether those values are zeros or not."""
    pmaps, out_shape, ratio = frame
    drz = Drizzle(out_shape, kernel=kernel, fillval=fillval, initial_value=initial,
                  tile_shape=tile_shape)
    for k, (pmap, (_, ctx_id, units)) in enumerate(zip(pmaps, INPUTS[:2])):
        data, wht = synthetic_scene(SHAPE, seed=k, mask_fraction=0.15)
        drz.add_image(data, pmap, weight=wht, in_units=units, scale=ratio, context_id=ctx_id)
    spans = [tile.span for tile in drz._tiles.values()]
    widths = [tile.shape[1] for tile in drz._tiles.values()]
    # the spans leave columns out somewhere, so the restriction is exercised
    assert any(((s[:, 1] - s[:, 0]).clip(0) < w).any() for s, w in zip(spans, widths))
    with_spans = [a.copy() for a in drz.device_arrays()]
    for tile in drz._tiles.values():
        tile.span = None
    every_column = drz.device_arrays()
    for a, b, name in zip(with_spans, every_column, ("sci", "wht", "ctx")):
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a.view(np.int32), b.view(np.int32), err_msg=name)
    assert (with_spans[1] > 0).any() and (with_spans[1] == 0).any()


def test_untouched_tiles_read_as_fill_and_are_not_allocated():
    w = load_chip_wcs(*REAL_CHIPS["uvis1"])
    out_wcs, _, _ = output_frame(w, SHAPE)
    big = (300, 260)  # the input lands near pixel (13, 12): one corner tile of 64
    pmap = PixelMap.from_wcs(w, out_wcs, SHAPE)
    data, wht = synthetic_scene(SHAPE, seed=3)
    for fillval, initial, expected in ((None, np.nan, np.nan), (None, 0.0, 0.0), (7.0, np.nan, 7.0)):
        drz = Drizzle(big, fillval=fillval, initial_value=initial, tile_shape=64)
        drz.add_image(data, pmap, weight=wht)
        assert drz.n_tiles == 1
        assert drz.nbytes == 64 * 64 * (4 + 4 + 4)  # running mean, weight, context
        sci, wht_out, ctx = drz.sci, drz.wht, drz.ctx
        assert sci.shape == big and ctx.shape == (1,) + big
        np.testing.assert_array_equal(sci[64:, :], np.float32(expected))
        np.testing.assert_array_equal(sci[:, 64:], np.float32(expected))
        assert not wht_out[64:].any() and not ctx[:, :, 64:].any()
        assert wht_out[:64, :64].any()


def test_nothing_drizzled_reads_as_initial_value():
    drz = Drizzle((40, 50), initial_value=2.0, tile_shape=16)
    sci, wht, ctx = drz.device_arrays()
    np.testing.assert_array_equal(sci, np.float32(2.0))
    assert not wht.any() and ctx.shape == (1, 40, 50) and not ctx.any()
    assert drz.err is None and drz.dq is None and drz.n_tiles == 0


def test_one_tile_is_drizzled_in_place(frame):
    """A window that is one tile is the tile's own storage: no copy, nothing reallocated."""
    pmaps, out_shape, ratio = frame
    drz = Drizzle(out_shape, kernel="turbo")  # the default budget: the small frame is one tile
    assert drz.tile_shape == tuple(out_shape)
    for k, pmap in enumerate(pmaps[:4]):
        data, wht = synthetic_scene(SHAPE, seed=k, mask_fraction=0.15)
        drz.add_image(data, pmap, weight=wht, scale=ratio, context_id=INPUTS[k][1],
                      error=np.ones(SHAPE, np.float32) if k == 1 else None)
        tile = drz._tiles[(0, 0)]
        if k == 0:
            arrays = tuple(tile.planes.values())
            assert tile.var is None  # no input with errors yet
        assert all(a is b for a, b in zip(tile.planes.values(), arrays))
    assert drz.n_tiles == 1 and tile.ctx.shape[0] == 2 and tile.var is not None
    tiled = Drizzle(out_shape, kernel="turbo", tile_shape=TILE)
    for k, pmap in enumerate(pmaps[:4]):
        data, wht = synthetic_scene(SHAPE, seed=k, mask_fraction=0.15)
        tiled.add_image(data, pmap, weight=wht, scale=ratio, context_id=INPUTS[k][1],
                        error=np.ones(SHAPE, np.float32) if k == 1 else None)
    assert tiled.n_tiles > 4
    assert_identical(drz, tiled)


def test_tile_shape_validation():
    for bad in (8, (16,), (16, 16, 16), 16.5, True, "64"):
        with pytest.raises(InvalidParameterError, match="tile_shape"):
            Drizzle((40, 40), tile_shape=bad)
    assert Drizzle((40, 30), tile_shape=(32, 100)).tile_shape == (32, 30)


@pytest.mark.parametrize("kernel, tile", [("square", TILE), ("turbo", TILE), ("gaussian", TILE),
                                          ("square", None)])
def test_tiled_cudasim_agrees_with_cpu(kernel, tile, frame):
    out_shape = frame[1]
    cpu = drizzle_all(frame, kernel, max(out_shape), n_inputs=3)
    sim = drizzle_all(frame, kernel, tile, backend="cudasim", n_inputs=3)
    assert sim.n_tiles > 4 if tile else sim.n_tiles == 1
    np.testing.assert_array_equal(sim.ctx, cpu.ctx)
    np.testing.assert_array_equal(sim.dq, cpu.dq)
    # float64 sums against the CPU's float32 running mean of the same drops; a 16-pixel tile
    # frame meets at most 3 inputs of (1 / ratio + 2 * 2.5 / ratio)**2 pixels (gaussian reach)
    ratio = frame[2]
    data_scale = max(float(np.nanmax(np.abs(synthetic_scene(SHAPE, seed=k, mask_fraction=0.15)[0])))
                     for k in range(3)) * float(np.float32(ratio * ratio))
    assert_sums_match_running_mean(sim, cpu, data_scale, n_drops=3 * int((6 / ratio) ** 2 + 1))


def test_finished_tiles_read_back_unchanged(frame, tmp_path):
    pmaps, out_shape, ratio = frame
    single = drizzle_all(frame, "square", max(out_shape))
    drz = Drizzle(out_shape, kernel="square", fillval=None, tile_shape=TILE)
    n_finished = 0
    for k, (pmap, (_, ctx_id, units)) in enumerate(zip(pmaps, INPUTS)):
        data, wht = synthetic_scene(SHAPE, seed=k, mask_fraction=0.15)
        data[2, 3] = np.nan
        err = np.sqrt(np.abs(data)) + 1.0
        dq = ((wht == 0) * 16 + (data > 200) * 4).astype(np.int16)
        drz.add_image(data, pmap, weight=wht, in_units=units, exptime=150.0 + 50 * k, scale=ratio,
                      context_id=ctx_id, error=err, dq=dq)
        n_finished += drz.finish_tiles(pmaps[k + 1:], scale=ratio)
    assert 0 < n_finished and drz.n_tiles == 0
    assert_identical(drz, single)
    with fits.open(drz.write_fits(tmp_path / "finished.fits")) as hdul:
        np.testing.assert_array_equal(hdul["SCI"].data, single.sci)
        np.testing.assert_array_equal(hdul["CTX"].data, single.ctx)


def test_reaching_a_finished_tile_is_refused(frame):
    pmaps, out_shape, ratio = frame
    drz = Drizzle(out_shape, tile_shape=TILE)
    data, wht = synthetic_scene(SHAPE, seed=1)
    drz.add_image(data, pmaps[0], scale=ratio)
    assert drz.finish_tiles([], scale=ratio) > 0
    with pytest.raises(InvalidParameterError, match="finished by finish_tiles"):
        drz.add_image(data, pmaps[1], scale=ratio)


def test_errors_enabled_by_a_later_input(frame):
    """Pixels reached only by inputs without errors have ERR 0 once errors exist (as untiled)."""
    pmaps, out_shape, ratio = frame
    results = []
    for tile in (max(out_shape), TILE):
        drz = Drizzle(out_shape, tile_shape=tile)
        for k, pmap in enumerate((pmaps[2], pmaps[0])):
            data, wht = synthetic_scene(SHAPE, seed=k)
            drz.add_image(data, pmap, weight=wht, scale=ratio,
                          error=None if k == 0 else np.ones(SHAPE, np.float32))
        results.append(drz)
    assert_identical(results[1], results[0])
    assert (results[1].err == 0).any()


# --- write_fits ---------------------------------------------------------------------------------
def test_write_fits_round_trip(frame, tmp_path):
    drz = drizzle_all(frame, "square", TILE)
    header = fits.Header()
    header["CRPIX1"] = 12.5
    header["BITPIX"] = 16  # layout keywords are the writer's own
    header["HISTORY"] = "tiled drizzle"
    path = drz.write_fits(tmp_path / "out_drz.fits", header)
    assert sorted(os.listdir(tmp_path)) == ["out_drz.fits"]
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "SCI", "WHT", "CTX"]
        np.testing.assert_array_equal(hdul["SCI"].data, drz.sci)
        np.testing.assert_array_equal(hdul["WHT"].data, drz.wht)
        np.testing.assert_array_equal(hdul["CTX"].data, drz.ctx)  # two planes: 3-D
        assert hdul["SCI"].header["CRPIX1"] == 12.5 and hdul["SCI"].header["BITPIX"] == -32
        assert "tiled drizzle" in str(hdul["WHT"].header["HISTORY"])
    with pytest.raises(OutputWriteError, match="exists"):
        drz.write_fits(path)
    drz.write_fits(path, overwrite=True)


def test_write_fits_uncovered_areas_and_zero_fill(tmp_path):
    w = load_chip_wcs(*REAL_CHIPS["uvis1"])
    out_wcs, _, _ = output_frame(w, SHAPE)
    data, wht = synthetic_scene(SHAPE, seed=5)
    for fillval in (0.0, None):
        drz = Drizzle((100, 90), fillval=fillval, tile_shape=32)
        drz.add_image(data, PixelMap.from_wcs(w, out_wcs, SHAPE), weight=wht)
        path = drz.write_fits(tmp_path / f"fill_{fillval}.fits")
        with fits.open(path) as hdul:
            np.testing.assert_array_equal(hdul["SCI"].data, drz.sci)
            np.testing.assert_array_equal(hdul[2].data, drz.wht)
            np.testing.assert_array_equal(hdul[3].data, drz.ctx[0])
            assert hdul[3].data.ndim == 2


def test_write_fits_leaves_no_temporary_file_on_error(frame, tmp_path, monkeypatch):
    drz = drizzle_all(frame, "point", TILE, n_inputs=2)
    target = tmp_path / "out.fits"
    calls = []

    def failing_band(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        return Drizzle.band(drz, *args, **kwargs)

    monkeypatch.setattr(drz, "band", failing_band)
    with pytest.raises(OutputWriteError, match="out.fits.*No space left"):
        drz.write_fits(target)
    assert os.listdir(tmp_path) == []
    with pytest.raises(OutputWriteError, match="cannot create"):
        drz.write_fits(tmp_path / "missing" / "out.fits")


#: Peak RSS measured in a subprocess around drizzling two small inputs onto a 60000 x 60000
#: frame (14.4 GB as one float32 plane) and writing the product.
_BIG_FRAME_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    from astropy.wcs import WCS
    from hapgpu.resample import Drizzle, PixelMap

    def tan(crpix, shape):
        w = WCS(naxis=2)
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        w.wcs.crval = [150.0, 2.0]
        w.wcs.cd = np.array([[-1e-5, 0.0], [0.0, 1e-5]])
        w.wcs.crpix = crpix
        w.pixel_shape = shape[::-1]
        return w

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()

    out = tan([30000.0, 30000.0], (60000, 60000))
    data = np.random.default_rng(0).normal(10.0, 1.0, (64, 80)).astype(np.float32)
    warm = Drizzle((64, 64), fillval=0.0, tile_shape=256)  # compile outside the measurement
    warm.add_image(data[:8, :8], PixelMap.from_wcs(tan([4.0, 4.0], (8, 8)), tan([30.0, 30.0], (64, 64))))
    warm.write_fits(sys.argv[1] + ".warm.fits")
    # the peak RSS so far includes compiling the kernels (hundreds of MB with a cold cache):
    # reset the high-water mark (Linux clear_refs 5) so that the peak is this frame's alone
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = rss()
    drz = Drizzle((60000, 60000), fillval=0.0, tile_shape=64)
    for cx, cy in ((10.0, 20.0), (-24900.0, 28900.0)):
        drz.add_image(data, PixelMap.from_wcs(tan([cx, cy], data.shape), out))
    drz.write_fits(sys.argv[1])
    with open("/proc/self/status") as f:
        peak = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    print(json.dumps({"before": before, "peak": peak, "tiles": drz.n_tiles}))
""")


@pytest.mark.slow
def test_huge_frame_written_with_bounded_memory(tmp_path):
    if sys.platform != "linux":
        pytest.skip("RSS is read from /proc (Linux only)")
    script = tmp_path / "big.py"
    script.write_text(_BIG_FRAME_SCRIPT)
    product = tmp_path / "big_drz.fits"
    run = subprocess.run([sys.executable, str(script), str(product)], capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["tiles"] <= 12
    growth = result["peak"] - result["before"]
    # 3 x 60000**2 x 4 bytes = 43 GB untiled; streaming holds a few 32 MB bands at a time
    assert growth < 400e6, f"RSS grew by {growth / 1e6:.0f} MB"
    with fits.open(product, memmap=False) as hdul:  # sections read only what they need
        for name in ("SCI", "WHT", "CTX"):
            assert (hdul[name].header["NAXIS1"], hdul[name].header["NAXIS2"]) == (60000, 60000)
        sci = hdul["SCI"].section
        # input 1 has its centre (40.5, 32.5) at crpix (10, 20): it lands around x=30000+30
        rows, cols = slice(30000 - 20, 30000 + 80), slice(30000 - 60, 30000 + 120)
        flux = np.asarray(sci[rows, cols], np.float64) * hdul["WHT"].section[rows, cols]
        assert np.isclose(flux.sum(), data_sum(), rtol=1e-5)  # unit weights: sum(w * d)
        assert np.asarray(sci[0:5, 0:5]).sum() == 0.0


def data_sum():
    return float(np.random.default_rng(0).normal(10.0, 1.0, (64, 80)).astype(np.float32).sum())
