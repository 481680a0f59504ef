"""The drizzle memory planner: tile layout from the budget, sweep order, early finishing.

A planned run (tiles finished as the sweep passes) must equal a one-tile run of the inputs in
the same order bit for bit, hold fewer tiles than the frame has at its peak, and refuse a
budget one input alone exceeds.
"""


import numpy as np
import pytest

from hapgpu.errors import InvalidInputError, InvalidParameterError, MemoryBudgetError
from hapgpu.resample import Drizzle, DrizzlePlan, PixelMap, plan_drizzle
from hapgpu.resample._tiles import DEFAULT_TILE, accumulator_bytes, choose_tile_shape

from ..conftest import (
    REAL_CHIPS,
    load_chip_wcs,
    output_frame,
    shifted_wcs,
    synthetic_scene,
)

SHAPE = (20, 24)
TILE = 16
#: input centres as crpix shifts (input pixels), given out of sweep order: a 3 x 2 grid
#: spread over a frame about five footprints wide, plus one input off the frame
SHIFTS = ((45.0, 40.0), (-45.0, -40.0), (0.0, 40.0), (45.0, -40.0), (-45.0, 40.0), (0.0, -40.0),
          (4000.0, 0.0))


@pytest.fixture(scope="module")
def spread():
    w = load_chip_wcs(*REAL_CHIPS["uvis1"])
    out_wcs, out_shape, ratio = output_frame(w, SHAPE, rot_deg=20.0, coverage=5.0)
    pmaps = [PixelMap.from_wcs(shifted_wcs(w, dx, dy), out_wcs, SHAPE) for dx, dy in SHIFTS]
    return pmaps, out_shape, ratio


def run(pmaps, out_shape, ratio, order, tile_shape, finish=None, kernel="square"):
    drz = Drizzle(out_shape, kernel=kernel, tile_shape=tile_shape)
    n_finished = 0
    for position, k in enumerate(order):
        data, wht = synthetic_scene(SHAPE, seed=k, mask_fraction=0.1)
        drz.add_image(data, pmaps[k], weight=wht, scale=ratio, in_units="counts", exptime=100.0 + k)
        if finish is not None:
            n_finished += drz.finish_tiles(tiles=finish[position])
    return drz, n_finished


@pytest.mark.parametrize("kernel", ["square", "lanczos3"])
def test_planned_run_equals_one_tile_bit_for_bit(kernel, spread):
    pmaps, out_shape, ratio = spread
    budget = 40 * TILE * TILE * accumulator_bytes()  # a few tiles of 16 x 16
    plan = plan_drizzle(pmaps, out_shape, kernel, scale=ratio, memory_budget=budget,
                        tile_shape=TILE)
    assert isinstance(plan, DrizzlePlan) and plan.tile_shape == (TILE, TILE)
    assert sorted(plan.order) == list(range(len(pmaps)))
    rows = [min(step.tiles)[0] for step in plan.steps if step.tiles]
    assert rows == sorted(rows), "the order is not a sweep down the frame"
    assert plan.steps[0].tiles == () and plan.steps[0].index == len(SHIFTS) - 1  # off the frame
    assert plan.steps[-1].finish == ()
    planned, n_finished = run(pmaps, out_shape, ratio, plan.order, plan.tile_shape,
                              [step.finish for step in plan.steps], kernel)
    single, _ = run(pmaps, out_shape, ratio, plan.order, max(out_shape), kernel=kernel)
    assert n_finished == sum(len(step.finish) for step in plan.steps) > 0
    for name in ("sci", "wht", "ctx"):
        np.testing.assert_array_equal(getattr(planned, name), getattr(single, name), err_msg=name)
    # every tile an input reached was allocated once; the peak held fewer than all of them
    reached = {key for step in plan.steps for key in step.tiles}
    assert planned.n_tiles + n_finished == len(reached)
    assert plan.peak_bytes < len(reached) * TILE * TILE * accumulator_bytes(scratch=False)
    assert plan.peak_bytes <= budget


def test_frame_that_fits_is_one_tile(spread):
    pmaps, out_shape, ratio = spread
    plan = plan_drizzle(pmaps, out_shape, scale=ratio, memory_budget=1 << 30)
    assert plan.single_tile and plan.tile_shape == tuple(out_shape) and plan.n_tiles == 1
    assert all(step.finish == () for step in plan.steps)
    # the one-tile input is drizzled straight into the tile (the CPU needs no zero-weight index)
    ny, nx = out_shape
    assert plan.peak_bytes == ny * nx * accumulator_bytes()


def test_one_input_over_the_budget_is_refused(spread):
    pmaps, out_shape, ratio = spread
    with pytest.raises(MemoryBudgetError, match=r"input \d .*24x20 image.*alone needs \d+ bytes.*"
                       r"over the memory budget of 5000 bytes") as info:
        plan_drizzle(pmaps, out_shape, scale=ratio, memory_budget=5000, tile_shape=TILE)
    assert isinstance(info.value, InvalidParameterError)  # the error class callers catch today
    assert info.value.budget == 5000 and info.value.need > 5000
    assert str(info.value.need) in str(info.value)
    # the input named is the one that needs most, and its need is its tiles, window and index
    plan = plan_drizzle(pmaps, out_shape, scale=ratio, memory_budget=1 << 30, tile_shape=TILE)
    step = next(step for step in plan.steps if step.index == int(str(info.value).split()[1]))
    assert len(step.tiles) == max(len(s.tiles) for s in plan.steps)


def test_default_tiles_shrink_to_fit_one_input(spread):
    """Without tile_shape, a budget one input exceeds with 512-pixel tiles is met with smaller
    tiles (they hug its footprint); below the smallest tried, MemoryBudgetError."""
    from hapgpu.resample._plan import _alone_bytes
    from hapgpu.resample._tiles import MIN_AUTO_TILE, TileGrid

    w = load_chip_wcs(*REAL_CHIPS["uvis1"])
    shape = (300, 600)
    out_wcs, out_shape, ratio = output_frame(w, shape, rot_deg=35.0, coverage=4.0)
    pmaps = [PixelMap.from_wcs(w, out_wcs, shape)]

    def alone(side):
        grid = TileGrid(out_shape, (side, side))
        keys = plan_drizzle(pmaps, out_shape, scale=ratio, memory_budget=1 << 40,
                            tile_shape=side).steps[0].tiles
        return _alone_bytes(grid, keys, accumulator_bytes(), accumulator_bytes(), 0)

    need = {side: alone(side) for side in (DEFAULT_TILE, DEFAULT_TILE // 2, MIN_AUTO_TILE)}
    assert need[MIN_AUTO_TILE] < need[DEFAULT_TILE // 2] < need[DEFAULT_TILE]
    frame = out_shape[0] * out_shape[1] * accumulator_bytes()
    assert need[DEFAULT_TILE] < frame  # the frame is tiled, not one tile
    plan = plan_drizzle(pmaps, out_shape, scale=ratio, memory_budget=need[DEFAULT_TILE // 2])
    assert plan.tile_shape == (DEFAULT_TILE // 2,) * 2 and plan.peak_bytes <= need[DEFAULT_TILE // 2]
    with pytest.raises(MemoryBudgetError, match=f"tile\\(s\\) of {MIN_AUTO_TILE}x{MIN_AUTO_TILE}"):
        plan_drizzle(pmaps, out_shape, scale=ratio, memory_budget=need[MIN_AUTO_TILE] - 1)


def test_plan_validation(spread):
    pmaps, out_shape, _ = spread
    with pytest.raises(InvalidInputError, match=r"pmaps\[1\] must be a PixelMap"):
        plan_drizzle([pmaps[0], "a.fits"], out_shape)
    with pytest.raises(InvalidParameterError, match="unknown kernel"):
        plan_drizzle(pmaps, out_shape, kernel="box")
    for bad in (0, -5, "2GB", True, float("nan")):
        with pytest.raises(InvalidParameterError, match="memory_budget"):
            plan_drizzle(pmaps, out_shape, memory_budget=bad)
        with pytest.raises(InvalidParameterError, match="memory_budget"):
            Drizzle(out_shape, memory_budget=bad)
    drz = Drizzle(out_shape, tile_shape=TILE)
    with pytest.raises(InvalidParameterError, match="tiles must hold"):
        drz.finish_tiles(tiles=[(0, 0, 1)])


def test_drizzle_budget_chooses_the_layout():
    shape = (2000, 1500)
    assert Drizzle(shape, memory_budget=1 << 30).tile_shape == shape
    assert Drizzle(shape, memory_budget=shape[0] * shape[1] * 10).tile_shape == (DEFAULT_TILE, DEFAULT_TILE)
    assert Drizzle(shape, memory_budget=1000, tile_shape=64).tile_shape == (64, 64)  # tiles given
    assert choose_tile_shape(shape, shape[0] * shape[1] * accumulator_bytes()) == shape
    # without a budget the host's memory decides; a 2000 x 1500 frame (84 MB) fits any host
    assert Drizzle(shape).tile_shape == shape
