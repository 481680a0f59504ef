"""Blot kernels: gather-resample a source image onto the pixel grid of an input chip.

The per-pixel maths is in :mod:`._interp_math`. Blot is a pure gather with no write
conflicts: the CPU driver runs output rows in parallel (``prange``), the CUDA driver uses one
thread per output pixel.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from numba import cuda, prange

from . import _interp_math as im
from . import _pixel_math, targets
from .targets import compile_namespace, cuda_module_for, rebind, refresh_cache_stamp

refresh_cache_stamp(__file__, im.__file__, _pixel_math.__file__, targets.__file__)

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


_cpu = compile_namespace(
    im.BLOT_FUNCTIONS,
    "cpu",
    inline=("clamp_index", "everett5", "everett3", "split_position", "blot_pixel", "poly5_row_inside", "interp_poly5", "table_map"),
)
_blot_span_cpu = _cpu.blot_span


@numba.njit(parallel=True, nogil=True, cache=True)
def blot_cpu(src, out, fp, ip, tx, ty, ex, ey, lut):
    """Blot ``src`` onto ``out`` (float32, the chip's shape) with the parallel CPU driver."""
    ny, nx = out.shape
    for r in prange(ny):
        _blot_span_cpu(r, 0, nx, src, out, fp, ip, tx, ty, ex, ey, lut)


def _blot_kernel(src, out, fp, ip, tx, ty, ex, ey, lut):
    k, r = cuda.grid(2)
    if r < out.shape[0] and k < out.shape[1]:
        out[r, k] = blot_pixel(r, k, src, fp, ip, tx, ty, ex, ey, lut)


@functools.lru_cache(maxsize=None)
def cuda_blot_kernel(target: str):
    """Return the blot kernel compiled for ``cuda`` or ``cudasim``."""
    module = cuda_module_for(target)
    ns = compile_namespace(im.BLOT_FUNCTIONS, target)
    return module.jit(rebind(_blot_kernel, vars(ns)))
