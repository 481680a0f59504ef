"""Resampling core: pixel maps, drizzle (every drizzlepac kernel) and blot.

>>> from hapgpu.resample import PixelMap, Drizzle, blot          # doctest: +SKIP
>>> pmap = PixelMap.from_wcs(input_wcs, output_wcs, input_shape, stepsize=10)
>>> drz = Drizzle(output_shape, kernel="square", pixfrac=1.0, backend="cpu")
>>> drz.add_image(data, pmap, weight=wht, in_units="cps")
>>> drz.sci, drz.wht, drz.ctx
"""

from ._blot import INTERPOLANTS, blot
from ._drizzle import KERNELS, Drizzle
from ._pixmap import PixelMap

__all__ = ["PixelMap", "Drizzle", "blot", "KERNELS", "INTERPOLANTS"]
