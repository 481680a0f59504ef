"""Memory planner of a :class:`~hapgpu.resample.Drizzle`: tile layout, input order, finishing.

Given the pixel maps of every input of one product and a memory budget, :func:`plan_drizzle`
chooses the tile layout (the whole frame as one tile when its accumulators fit, else square
tiles), orders the inputs in a sweep of the frame (by the first tile row, then column, each
reaches), and lists after each input the tiles no later input reaches, which the caller
hands to :meth:`Drizzle.finish_tiles <hapgpu.resample.Drizzle.finish_tiles>`. Only the tiles
in flight then hold accumulators: the peak is the largest set of tiles that some input
started and a later input still needs, plus the window one input is drizzled through.

>>> plan = plan_drizzle(pmaps, shape, kernel="square", memory_budget=2 << 30)  # doctest: +SKIP
>>> drz = Drizzle(shape, kernel="square", tile_shape=plan.tile_shape)
>>> for step in plan.steps:
...     drz.add_image(data[step.index], pmaps[step.index], weight=wht[step.index])
...     drz.finish_tiles(tiles=step.finish)
>>> drz.write_fits("out_drz.fits")
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from ..backend import resolve_backend
from ..errors import InvalidInputError, InvalidParameterError, MemoryBudgetError
from ..kernels.drizzle import KERNEL_IDS
from ._drizzle import KERNELS, _positive_finite, reach_tiles
from ._pixmap import PixelMap, _normalise_shape
from ._tiles import (
    DEFAULT_TILE,
    MIN_AUTO_TILE,
    TileGrid,
    accumulator_bytes,
    choose_tile_shape,
    parse_memory_budget,
    parse_tile_shape,
)

__all__ = ["DrizzlePlan", "PlanStep", "plan_drizzle"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlanStep:
    """One input of a :class:`DrizzlePlan`.

    Attributes
    ----------
    index : int
        Position of the input in the sequence of pixel maps given to :func:`plan_drizzle`.
    tiles : tuple of (int, int)
        ``(row, col)`` keys of the tiles it reaches.
    finish : tuple of (int, int)
        Keys of the tiles no later input reaches, to finish after drizzling this one (empty
        after the last input: the product is written from the tiles in memory).
    held_bytes : int
        Accumulator bytes of the tiles still held once this step's tiles are finished, plus
        the reused zero-weight index (an upper bound of what the Drizzle then holds).
    peak_bytes : int
        Accumulator bytes while this input is drizzled: the tiles held, its new tiles, its
        window and the zero-weight index.
    """

    index: int
    tiles: tuple
    finish: tuple
    held_bytes: int = 0
    peak_bytes: int = 0


@dataclass(frozen=True)
class DrizzlePlan:
    """Tile layout, input order and early finishing of one drizzled product.

    Attributes
    ----------
    output_shape : (int, int)
        ``(ny, nx)`` of the frame, output pixels.
    tile_shape : (int, int)
        Tile sides to give :class:`~hapgpu.resample.Drizzle` (``tile_shape=``); equal to
        ``output_shape`` when the frame is one tile.
    steps : tuple of PlanStep
        The inputs in drizzle order (a sweep of the frame), each with the tiles to finish.
    peak_bytes : int
        Accumulator bytes held at the worst point of the sequence: tiles in flight plus the
        window of the input being drizzled.
    memory_budget : int
        The budget the plan was made for, bytes.
    """

    output_shape: tuple
    tile_shape: tuple
    steps: tuple
    peak_bytes: int
    memory_budget: int

    @property
    def order(self) -> tuple:
        """Input indices in drizzle order."""
        return tuple(step.index for step in self.steps)

    @property
    def n_tiles(self) -> int:
        """Tiles of the frame's grid."""
        grid = TileGrid(self.output_shape, self.tile_shape)
        return grid.n_rows * grid.n_cols

    @property
    def single_tile(self) -> bool:
        """Whether the frame is one tile (every input drizzled into it without copies)."""
        return tuple(self.tile_shape) == tuple(self.output_shape)


def _tile_pixels(grid: TileGrid, key) -> int:
    y0, y1, x0, x1 = grid.bounds(key)
    return (y1 - y0) * (x1 - x0)


def plan_drizzle(pmaps, output_shape, kernel: str = "square", pixfrac: float = 1.0, *,
                 scale: float = 1.0, memory_budget=None, tile_shape=None, backend=None,
                 error: bool = False, dq: bool = False) -> DrizzlePlan:
    """Plan drizzling inputs onto one frame within a memory budget.

    Parameters
    ----------
    pmaps : sequence of PixelMap
        Pixel maps of every input, in any order.
    output_shape : (int, int)
        ``(ny, nx)`` of the output frame.
    kernel : str
        Drop kernel (one of :data:`~hapgpu.resample.KERNELS`), as given to the Drizzle.
    pixfrac : float
        Drop size in input pixels, as given to the Drizzle.
    scale : float
        The smallest ``scale`` (output / input pixel scale) the inputs will be drizzled with;
        it sets how far a kernel reaches, in output pixels.
    memory_budget : int, optional
        Bytes the accumulators may occupy (device memory on ``gpu``, host memory otherwise).
        Default: as :class:`~hapgpu.resample.Drizzle` (half the available host memory, 60 %
        of the free device memory).
    tile_shape : int or (int, int), optional
        Force these tile sides; default: the frame as one tile when its accumulators fit the
        budget, else 512-pixel tiles (:data:`~hapgpu.resample._tiles.DEFAULT_TILE`), halved
        (down to :data:`~hapgpu.resample._tiles.MIN_AUTO_TILE`) while some input alone does
        not fit the budget with them.
    backend : str or Backend, optional
        Backend whose memory sets the default budget (None reads ``HAPGPU_BACKEND``).
    error, dq : bool
        Whether the inputs propagate errors / DQ (12 more bytes per pixel).

    Returns
    -------
    DrizzlePlan

    Raises
    ------
    InvalidInputError
        If ``pmaps`` holds something other than PixelMaps.
    InvalidParameterError
        If a parameter is invalid.
    MemoryBudgetError
        (an InvalidParameterError) If one input alone needs more than the budget (its tiles,
        its window and the zero-weight index) even with the smallest tiles tried; the message
        names the input, its need and the budget, in bytes and GB.

    Notes
    -----
    The estimate follows how :class:`~hapgpu.resample.Drizzle` stores and drizzles (bytes per
    pixel from :func:`~hapgpu.resample._tiles.accumulator_bytes`): tiles hold 12 on the CPU
    (float32 running mean and weight, int32 context per 32 inputs) and 24 on CUDA backends
    (float64 sums and weights, the last zero-weight value, context), plus 12 with errors and
    DQ, from the first input that reaches them until they are finished (a tile owns its
    memory, see :class:`~hapgpu.resample._tiles.Tile`); an input that reaches several tiles is
    drizzled through a window, the rectangle of its tiles, of the same bytes per pixel with
    one context plane, alive while its new tiles are copied out of it; on CUDA backends the
    4-byte zero-weight index is one buffer as large as the largest window so far, kept for
    the Drizzle's life. An input that reaches one tile is drizzled straight into it. The
    window counts in full: where transparent huge pages back it, all of it becomes resident.
    On the full sky cell of ``benchmarks/bench_mosaic.py`` (16 UVIS chips, 512-pixel tiles,
    float64 sums) the plan said 1.05 GB and the peak resident memory rose 1.12 GB above the
    process's baseline; the
    difference is the chip being drizzled and the pixel maps, which are the caller's.
    """
    shape = _normalise_shape(output_shape, "output")
    if kernel not in KERNEL_IDS:
        raise InvalidParameterError(f"unknown kernel {kernel!r}; choose one of {', '.join(KERNELS)}")
    pixfrac = _positive_finite(pixfrac, "pixfrac")
    if pixfrac <= 0.001:
        kernel = "point"  # as the Drizzle does
    scale = _positive_finite(scale, "scale")
    pmaps = list(pmaps)
    for k, pmap in enumerate(pmaps):
        if not isinstance(pmap, PixelMap):
            raise InvalidInputError(f"pmaps[{k}] must be a PixelMap, got {type(pmap).__name__}")
    backend = resolve_backend(backend)
    budget = parse_memory_budget(memory_budget, backend)
    sums = backend.is_cuda  # the Drizzle's accumulator layout
    n_planes = max(1, math.ceil(len(pmaps) / 32))
    tile_bytes = accumulator_bytes(n_planes, error=error, dq=dq, scratch=False, sums=sums)
    window_bytes = accumulator_bytes(1, error=error, dq=dq, scratch=False, sums=sums)
    index_bytes = accumulator_bytes(scratch=True, sums=sums) - accumulator_bytes(scratch=False, sums=sums)
    forced = parse_tile_shape(tile_shape)
    if forced is not None:
        candidates = [forced]
    else:
        first = choose_tile_shape(shape, budget,
                                  accumulator_bytes(n_planes, error=error, dq=dq, sums=sums))
        candidates = [first]
        side = DEFAULT_TILE // 2
        while first == (DEFAULT_TILE, DEFAULT_TILE) and side >= MIN_AUTO_TILE:
            candidates.append((side, side))  # smaller tiles hug a footprint more tightly
            side //= 2
    for tile in candidates:
        grid = TileGrid(shape, tile)
        reach = [tuple(reach_tiles(grid, kernel, pixfrac, pmap, scale)) for pmap in pmaps]
        alone = [_alone_bytes(grid, keys, tile_bytes, window_bytes, index_bytes) for keys in reach]
        worst = max(range(len(pmaps)), key=alone.__getitem__, default=None)
        if worst is None or alone[worst] <= budget:
            break
        log.debug("drizzle plan: input %d needs %d bytes with %dx%d tiles, over the %d-byte budget",
                  worst, alone[worst], grid.tile[1], grid.tile[0], budget)
    else:
        keys = reach[worst]
        raise MemoryBudgetError(
            f"input {worst} (pixel map of a {_pmap_shape(pmaps[worst])} image) reaches {len(keys)} "
            f"output tile(s) of {grid.tile[1]}x{grid.tile[0]} pixels and alone needs "
            f"{_size(alone[worst])} of accumulators (its tiles and the window it is drizzled "
            f"through), over the memory budget of {_size(budget)}: raise memory_budget"
            + (" or give smaller tiles" if forced is not None and min(forced) > MIN_AUTO_TILE else ""),
            need=alone[worst], budget=budget)

    # a sweep of the frame: by the first tile row, then column, an input reaches
    order = sorted(range(len(pmaps)), key=lambda k: (min(reach[k]) if reach[k] else (-1, -1), k))
    last = {}
    for position, k in enumerate(order):
        for key in reach[k]:
            last[key] = position
    steps, live, peak, scratch = [], set(), 0, 0
    for position, k in enumerate(order):
        keys = reach[k]
        live.update(keys)
        held = tile_bytes * sum(_tile_pixels(grid, key) for key in live)
        scratch = max(scratch, index_bytes * _window_pixels(grid, keys))  # the reused zero-weight index
        during = held + scratch + (window_bytes * _window_pixels(grid, keys) if len(keys) > 1 else 0)
        peak = max(peak, during)
        finish = () if position == len(order) - 1 else tuple(
            sorted(key for key in keys if last[key] == position))
        live.difference_update(finish)
        after = tile_bytes * sum(_tile_pixels(grid, key) for key in live) + scratch
        steps.append(PlanStep(index=k, tiles=keys, finish=finish, held_bytes=int(after),
                              peak_bytes=int(during)))
    if peak > budget:
        log.warning("drizzle plan: %d bytes of accumulators in flight at the peak, over the "
                    "%d-byte budget (the inputs overlap too much to finish tiles earlier)", peak, budget)
    return DrizzlePlan(output_shape=shape, tile_shape=grid.tile, steps=tuple(steps),
                       peak_bytes=int(peak), memory_budget=budget)


def _window_pixels(grid: TileGrid, keys) -> int:
    """Pixels of the window an input reaching tiles ``keys`` is drizzled through (the rows
    it reaches of its one tile, at most the tile, or the rectangle of its tiles)."""
    if not keys:
        return 0
    if len(keys) == 1:
        return _tile_pixels(grid, keys[0])
    y0, y1, x0, x1 = grid.window(keys)
    return (y1 - y0) * (x1 - x0)


def _alone_bytes(grid: TileGrid, keys, tile_bytes: int, window_bytes: int, index_bytes: int) -> int:
    """Accumulator bytes one input needs with nothing else held: its tiles, the copy of them
    it is drizzled through when it reaches several, and the zero-weight index
    (``index_bytes`` per window pixel: 4 on CUDA backends, 0 on the CPU)."""
    tiles = tile_bytes * sum(_tile_pixels(grid, key) for key in keys)
    window = _window_pixels(grid, keys)
    return tiles + index_bytes * window + (window_bytes * window if len(keys) > 1 else 0)


def _size(n: int) -> str:
    """``n`` bytes, with GB or MB alongside when large."""
    if n >= 100_000_000:
        return f"{n} bytes ({n / 1e9:.2f} GB)"
    if n >= 100_000:
        return f"{n} bytes ({n / 1e6:.1f} MB)"
    return f"{n} bytes"


def _pmap_shape(pmap: PixelMap) -> str:
    ny, nx = pmap.input_shape
    return f"{nx}x{ny}"
