"""Memory of a planned mosaic drizzle: what the Drizzle holds follows the plan.

The planner (:func:`~hapgpu.resample.plan_drizzle`) predicts, per input, the accumulator
bytes held once its finished tiles are released (``held_bytes``) and the bytes in flight
while it is drizzled (``peak_bytes``). NumPy reports every array allocation to
``tracemalloc``, so the memory the run allocates can be compared with the plan exactly on
the host, independent of page residency and of other processes. On ``cudasim`` the
simulator's device arrays are NumPy arrays, so the same run measures the device side of
the plan (the tiles in flight on the device).

The sky: six small inputs on a 3 x 2 grid of pointings, each reaching a rectangle of
several tiles (so each is drizzled through a window), with the frame's tiles finished as
the sweep passes. A finished tile must give its memory back at once: a tile that kept a
view of the window it was made in would keep the whole window allocated.
"""

import gc
import tracemalloc

import numpy as np
import pytest

from hapgpu.backend import resolve_backend
from hapgpu.errors import InvalidParameterError
from hapgpu.resample import Drizzle, PixelMap, plan_drizzle
from hapgpu.resample._tiles import (
    DEVICE_BUDGET_FRACTION,
    HOST_BUDGET_FRACTION,
    _host_available,
    accumulator_bytes,
    default_memory_budget,
    device_memory_free,
)

from ..conftest import (
    REAL_CHIPS,
    load_chip_wcs,
    output_frame,
    shifted_wcs,
    synthetic_scene,
)
from ._accumulators import assert_sums_match_running_mean

SHAPE = (40, 56)
TILE = 16
#: crpix shifts (input pixels): a 3 x 2 grid of pointings that overlap their neighbours a
#: little, given out of sweep order
SHIFTS = ((48.0, 34.0), (-48.0, -34.0), (0.0, 34.0), (48.0, -34.0), (-48.0, 34.0), (0.0, -34.0))
#: Bytes a run may allocate beyond the plan's accumulators: the kernels' parameter vectors,
#: footprint tables and one tile's finished products on their way to the spill file, plus
#: Python's own objects per tile allocated or finished (array headers, the spill's index),
#: which are large next to a 16 x 16 tile's 6 KB.
SLACK = 32 * 1024
SLACK_PER_TILE = 1024


def make_sky(shape, shifts):
    w = load_chip_wcs(*REAL_CHIPS["uvis1"])
    out_wcs, out_shape, ratio = output_frame(w, shape, rot_deg=25.0, coverage=3.2)
    pmaps = [PixelMap.from_wcs(shifted_wcs(w, dx, dy), out_wcs, shape) for dx, dy in shifts]
    images = [synthetic_scene(shape, seed=k, mask_fraction=0.1) for k in range(len(shifts))]
    return pmaps, out_shape, ratio, images


@pytest.fixture(scope="module")
def sky():
    return make_sky(SHAPE, SHIFTS)


@pytest.fixture(scope="module")
def tiny_sky():
    """Three inputs small enough for the simulator (one Python thread per input pixel)."""
    scale = 0.45
    return make_sky((18, 24), [(dx * scale, dy * scale) for dx, dy in SHIFTS[:3]])


def planned_run(sky, backend, budget, *, trace: bool):
    """Drizzle the sky following a plan; per step: (step, bytes held after finishing, peak
    bytes allocated while drizzling, the Drizzle's ``nbytes``); the two measured ones count
    from the allocations before the Drizzle, less the allowed slack."""
    pmaps, out_shape, ratio, images = sky
    plan = plan_drizzle(pmaps, out_shape, "square", scale=ratio, memory_budget=budget,
                        tile_shape=TILE, backend=backend)
    if trace:  # load the kernels and fill Python's caches outside the measurement
        warm = Drizzle(out_shape, kernel="square", backend=backend, tile_shape=plan.tile_shape)
        warm.add_image(images[0][0], pmaps[0], weight=images[0][1], scale=ratio, in_units="counts")
        warm.finish_tiles(tiles=[key for step in plan.steps for key in step.tiles])
        warm.band(0, 1)
        del warm
    gc.collect()
    if trace:
        tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0] if trace else 0
        drz = Drizzle(out_shape, kernel="square", backend=backend, tile_shape=plan.tile_shape)
        record = []
        for step in plan.steps:
            data, wht = images[step.index]
            if trace:
                tracemalloc.reset_peak()
            drz.add_image(data, pmaps[step.index], weight=wht, scale=ratio, in_units="counts",
                          exptime=100.0 + step.index, context_id=step.index + 1)
            n_before = drz.n_tiles + len(drz._finished)  # tiles allocated at the peak
            drz.finish_tiles(tiles=step.finish)
            gc.collect()
            if trace:
                now, peak = tracemalloc.get_traced_memory()
                n_after = drz.n_tiles + len(drz._finished)
                record.append((step, now - base - SLACK - SLACK_PER_TILE * n_after,
                               peak - base - SLACK - SLACK_PER_TILE * n_before, drz.nbytes))
            else:
                record.append((step, None, None, drz.nbytes))
    finally:
        if trace:
            tracemalloc.stop()
    return plan, drz, record


@pytest.mark.slow
def test_host_memory_follows_the_plan(sky):
    pmaps, out_shape, ratio, _ = sky
    frame_bytes = out_shape[0] * out_shape[1] * accumulator_bytes(scratch=False)
    plan, drz, record = planned_run(sky, "cpu", frame_bytes, trace=True)
    assert not plan.single_tile and plan.peak_bytes < 0.6 * frame_bytes
    assert all(len(step.tiles) > 4 for step in plan.steps)  # every input goes through a window
    assert sum(len(step.finish) for step in plan.steps) > 0
    for step, held, peak, nbytes in record:
        assert nbytes <= step.held_bytes
        # what stays allocated after finishing is the live tiles (a finished tile's memory is
        # released at once, its window's too), and the peak is the plan's for this input
        # (within 5 %: the window's slices and the kernels' temporaries are Python objects)
        assert held <= step.held_bytes, (step.index, held, step.held_bytes)
        assert peak <= 1.05 * step.peak_bytes, (step.index, peak, step.peak_bytes)
    # the plan is not loose either: the worst step allocates most of what it predicted
    worst = max(record, key=lambda r: r[0].peak_bytes)
    assert worst[2] >= 0.5 * worst[0].peak_bytes
    # and the result equals one full-frame tile in the same order, bit for bit
    single = Drizzle(out_shape, kernel="square", tile_shape=max(out_shape))
    for step in plan.steps:
        data, wht = sky[3][step.index]
        single.add_image(data, pmaps[step.index], weight=wht, scale=ratio, in_units="counts",
                         exptime=100.0 + step.index, context_id=step.index + 1)
    for name in ("sci", "wht", "ctx"):
        np.testing.assert_array_equal(getattr(drz, name), getattr(single, name), err_msg=name)


def test_tiles_own_their_memory(sky):
    """Tiles made from a window are copies: no tile array is a view of a larger buffer."""
    pmaps, out_shape, ratio, images = sky
    drz = Drizzle(out_shape, kernel="square", tile_shape=TILE)
    data, wht = images[0]
    drz.add_image(data, pmaps[0], weight=wht, scale=ratio)
    assert drz.n_tiles > 4
    for tile in drz._tiles.values():
        for arr in tile.arrays():
            assert arr.base is None and arr.flags.c_contiguous


@pytest.mark.slow
def test_device_budget_path_on_cudasim(tiny_sky):
    """The planner's device path: on a CUDA backend the default budget is the device's
    (the simulator's device is host memory), and a cudasim Drizzle following a plan made
    for a device budget holds no more device bytes than planned after any step, with the
    CPU's results."""
    pmaps, out_shape, ratio, images = tiny_sky
    sim = resolve_backend("cudasim")
    free = device_memory_free(sim)
    budget = default_memory_budget(sim)
    assert 0 < budget <= DEVICE_BUDGET_FRACTION * max(free, _host_available()) + 1
    assert default_memory_budget(resolve_backend("cpu")) <= HOST_BUDGET_FRACTION * _host_available() * 1.5
    with pytest.raises(InvalidParameterError, match="no device memory"):
        device_memory_free(resolve_backend("cpu"))
    plan = plan_drizzle(pmaps, out_shape, "square", scale=ratio, backend="cudasim")
    assert plan.memory_budget <= DEVICE_BUDGET_FRACTION * max(free, _host_available()) + 1
    assert plan.single_tile  # a small frame fits any device as one tile

    frame_bytes = out_shape[0] * out_shape[1] * accumulator_bytes(scratch=False, sums=True)
    device_plan, sim_drz, record = planned_run(tiny_sky, "cudasim", frame_bytes, trace=False)
    assert not device_plan.single_tile and device_plan.peak_bytes < frame_bytes
    assert sum(len(step.finish) for step in device_plan.steps) > 0
    for step, _, _, nbytes in record:
        assert nbytes <= step.held_bytes, (step.index, nbytes, step.held_bytes)
    cpu = Drizzle(out_shape, kernel="square", tile_shape=max(out_shape))
    for step in device_plan.steps:
        data, wht = images[step.index]
        cpu.add_image(data, pmaps[step.index], weight=wht, scale=ratio, in_units="counts",
                      exptime=100.0 + step.index, context_id=step.index + 1)
    np.testing.assert_array_equal(sim_drz.ctx, cpu.ctx)
    # float64 sums against the CPU's float32 running mean of the same drops: three inputs of
    # at most (1 / ratio + 2)**2 pixels each per output pixel (square kernel, counts / 100 s)
    data_scale = max(float(np.nanmax(np.abs(data))) for data, _ in images) / 100.0 \
        * float(np.float32(ratio * ratio))
    assert_sums_match_running_mean(sim_drz, cpu, data_scale, n_drops=3 * int((1 / ratio + 2) ** 2))
