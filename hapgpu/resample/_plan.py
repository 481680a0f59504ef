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
from ..errors import InvalidInputError, InvalidParameterError
from ..kernels.drizzle import KERNEL_IDS
from ._drizzle import KERNELS, _positive_finite, reach_tiles
from ._pixmap import PixelMap, _normalise_shape
from ._tiles import (
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
    """

    index: int
    tiles: tuple
    finish: tuple


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
        budget, else 512-pixel tiles (:data:`DEFAULT_TILE`).
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
        If a parameter is invalid, or one input alone needs more than the budget (its tiles
        and its window); the message names the input, its need and the budget.

    Notes
    -----
    Bytes per pixel (see :func:`~hapgpu.resample._tiles.accumulator_bytes`): tiles hold 24
    (float64 sums and weights, float32 last zero-weight value, int32 context per 32 inputs),
    plus 12 with errors and DQ; an input drizzled through a window of several tiles needs the
    same again per window pixel plus a 4-byte zero-weight index; one drizzled straight into a
    single tile needs the index only.
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
    budget = parse_memory_budget(memory_budget, resolve_backend(backend) if memory_budget is None else None)
    n_planes = max(1, math.ceil(len(pmaps) / 32))
    tile_bytes = accumulator_bytes(n_planes, error=error, dq=dq, scratch=False)
    window_bytes = accumulator_bytes(1, error=error, dq=dq, scratch=True)
    tile = parse_tile_shape(tile_shape)
    if tile is None:
        tile = choose_tile_shape(shape, budget, accumulator_bytes(n_planes, error=error, dq=dq))
    grid = TileGrid(shape, tile)

    reach = [tuple(reach_tiles(grid, kernel, pixfrac, pmap, scale)) for pmap in pmaps]

    def need(keys) -> int:
        """Bytes of the window an input with these tiles is drizzled through."""
        if len(keys) <= 1:
            return 4 * sum(_tile_pixels(grid, key) for key in keys)
        y0, y1, x0, x1 = grid.window(keys)
        return (y1 - y0) * (x1 - x0) * window_bytes

    for k, keys in enumerate(reach):
        alone = tile_bytes * sum(_tile_pixels(grid, key) for key in keys) + need(keys)
        if alone > budget:
            raise InvalidParameterError(
                f"input {k} (pixel map of a {_pmap_shape(pmaps[k])} image) reaches {len(keys)} output "
                f"tile(s) of {grid.tile[1]}x{grid.tile[0]} pixels and needs {alone} bytes of "
                f"accumulators, over the memory budget of {budget} bytes: raise memory_budget "
                "or give smaller tiles")

    # a sweep of the frame: by the first tile row, then column, an input reaches
    order = sorted(range(len(pmaps)), key=lambda k: (min(reach[k]) if reach[k] else (-1, -1), k))
    last = {}
    for position, k in enumerate(order):
        for key in reach[k]:
            last[key] = position
    steps, live, peak = [], set(), 0
    for position, k in enumerate(order):
        live.update(reach[k])
        held = tile_bytes * sum(_tile_pixels(grid, key) for key in live)
        peak = max(peak, held + need(reach[k]))
        finish = () if position == len(order) - 1 else tuple(
            sorted(key for key in reach[k] if last[key] == position))
        live.difference_update(finish)
        steps.append(PlanStep(index=k, tiles=reach[k], finish=finish))
    if peak > budget:
        log.warning("drizzle plan: %d bytes of accumulators in flight at the peak, over the "
                    "%d-byte budget (the inputs overlap too much to finish tiles earlier)", peak, budget)
    return DrizzlePlan(output_shape=shape, tile_shape=grid.tile, steps=tuple(steps),
                       peak_bytes=int(peak), memory_budget=budget)


def _pmap_shape(pmap: PixelMap) -> str:
    ny, nx = pmap.input_shape
    return f"{nx}x{ny}"
