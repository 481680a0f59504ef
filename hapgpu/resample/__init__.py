"""Resampling core: pixel maps, drizzle (every drizzlepac kernel) and blot.

>>> from hapgpu.resample import PixelMap, Drizzle, blot          # doctest: +SKIP
>>> pmap = PixelMap.from_wcs(input_wcs, output_wcs, input_shape, stepsize=10)
>>> drz = Drizzle(output_shape, kernel="square", pixfrac=1.0, backend="cpu")
>>> drz.add_image(data, pmap, weight=wht, in_units="cps")
>>> drz.sci, drz.wht, drz.ctx

Many inputs onto a large frame within a memory budget (tiles finished as the sweep passes):

>>> plan = plan_drizzle(pmaps, output_shape, kernel="square", memory_budget=2 << 30)  # doctest: +SKIP
>>> drz = Drizzle(output_shape, kernel="square", tile_shape=plan.tile_shape)
>>> for step in plan.steps:
...     drz.add_image(images[step.index], pmaps[step.index])
...     drz.finish_tiles(tiles=step.finish)

Each step says what the Drizzle then holds (``step.held_bytes``, ``step.peak_bytes``); a
budget that even one input alone exceeds raises :class:`~hapgpu.errors.MemoryBudgetError`
naming the input, its need and the budget.
"""

from ._blot import INTERPOLANTS, blot
from ._drizzle import KERNELS, Drizzle
from ._pixmap import PixelMap
from ._plan import DrizzlePlan, PlanStep, plan_drizzle

__all__ = ["PixelMap", "Drizzle", "blot", "plan_drizzle", "DrizzlePlan", "PlanStep", "KERNELS",
           "INTERPOLANTS"]
