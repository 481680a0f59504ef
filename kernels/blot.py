"""Blot kernels: gather-resample a source image onto the pixel grid of an input chip.

The per-pixel maths is in :mod:`._interp_math`. Blot is a pure gather with no write
conflicts: the CPU driver runs output rows in parallel (``prange``), the CUDA driver uses one
thread per output pixel.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import cuda, prange

from . import _interp_math as im
from .targets import cached_driver, compile_namespace, cuda_module_for, rebind

__all__ = ["INTERP_IDS", "blot_lut", "blot_cpu", "cuda_blot_kernel"]

INTERP_IDS = {
    "nearest": im.I_NEAREST,
    "linear": im.I_LINEAR,
    "poly3": im.I_POLY3,
    "poly5": im.I_POLY5,
    "lanczos3": im.I_LANCZOS3,
    "lanczos5": im.I_LANCZOS5,
}


def blot_lut(order: int, n: int = 2048, space: float = 0.01) -> np.ndarray:
    """Float32 Lanczos table of blot (2048 entries at float32 spacing ``space``)."""
    from .drizzle import lanczos_lut

    return lanczos_lut(order, n=n, space=space)


def _blot_rows(src, out, fp, ip, tx, ty, ex, ey, lut):
    for r in prange(out.shape[0]):
        # a prange index is unsigned inside the parallel loop and signed outside it: one
        # signed type, so that blot_row is compiled once, not twice
        blot_row(np.int64(r), src, out, fp, ip, tx, ty, ex, ey, lut)  # noqa: F821


#: Per-pixel functions inlined into their callers on the CPU: the small ones. Inlining the
#: interpolants and ``blot_pixel`` too doubles the compile time and measured slower.
_CPU_INLINE = ("clamp_index", "row_value", "split_position", "table_row", "table_map_row",
               "table_map", "everett5", "poly5_row_inside")


@functools.lru_cache(maxsize=None)
def _rows_driver(sample_function: str):
    ns = compile_namespace(im.BLOT_FUNCTIONS, "cpu", aliases={"sample": sample_function},
                           inline=_CPU_INLINE)
    return cached_driver(rebind(_blot_rows, {"blot_row": ns.blot_row}),
                         variant=sample_function, parallel=True)


def blot_cpu(src, out, fp, ip, tx, ty, ex, ey, lut):
    """Blot ``src`` onto ``out`` (float32, the chip's shape) with the parallel CPU driver.

    Rows run in parallel; the driver of the interpolant ``ip[J_INTERP]`` is compiled on first
    use (and cached on disk).
    """
    driver = _rows_driver(im.SAMPLE_FUNCTIONS[int(ip[im.J_INTERP])])
    driver(src, out, fp, ip, tx, ty, ex, ey, lut)


def _blot_kernel(src, out, fp, ip, tx, ty, ex, ey, lut):
    k, r = cuda.grid(2)
    if r < out.shape[0] and k < out.shape[1]:
        out[r, k] = blot_pixel(r, k, src, fp, ip, tx, ty, ex, ey, lut)


@functools.lru_cache(maxsize=None)
def cuda_blot_kernel(target: str):
    """Return the blot kernel compiled for ``cuda`` or ``cudasim``."""
    module = cuda_module_for(target)
    ns = compile_namespace(im.BLOT_FUNCTIONS, target, aliases={"sample": "sample_any"})
    return module.jit(rebind(_blot_kernel, vars(ns)))
