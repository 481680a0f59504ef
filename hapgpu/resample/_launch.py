"""Launch Numba CUDA kernels on the ``gpu`` (CuPy arrays) or ``cudasim`` (NumPy) backend."""

from __future__ import annotations

import numpy as np

__all__ = ["launch_2d"]

_BLOCK = (32, 8)
_SIM_BLOCK = (8, 8)  # the simulator runs one Python thread per CUDA thread


def _wrap_for_simulator(arg):
    if isinstance(arg, np.ndarray):
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        return FakeCUDAArray(arg)
    return arg


def launch_2d(kernel, backend, shape, *args) -> None:
    """Run ``kernel`` over a ``(ny, nx)`` grid (x is the fast CUDA grid axis)."""
    ny, nx = shape
    block = _SIM_BLOCK if backend.name == "cudasim" else _BLOCK
    grid = ((nx + block[0] - 1) // block[0], (ny + block[1] - 1) // block[1])
    if backend.name == "cudasim":
        args = tuple(_wrap_for_simulator(a) for a in args)
    kernel[grid, block](*args)
