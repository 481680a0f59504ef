"""Validation and dispatch helpers shared by the detection modules."""

from __future__ import annotations

import numpy as np

from ..backend import Backend, resolve_backend
from ..errors import InvalidInputError, InvalidParameterError

__all__ = [
    "get_backend",
    "as_image",
    "as_optional_image",
    "as_mask",
    "check_positive_int",
    "launch",
    "strip_unit",
]

_BLOCK_1D = 128
_SIM_BLOCK_1D = 16
_BLOCK_2D = (32, 8)
_SIM_BLOCK_2D = (8, 8)


def get_backend(backend) -> Backend:
    """Resolve ``backend`` (None, a name or a :class:`~hapgpu.backend.Backend`)."""
    return resolve_backend(backend)


def strip_unit(array):
    """Return ``(values, unit)`` for an astropy Quantity, ``(array, None)`` otherwise."""
    unit = getattr(array, "unit", None)
    if unit is not None and hasattr(array, "value"):
        return array.value, unit
    return array, None


def _host_or_device(array, backend: Backend):
    if backend.name == "gpu":
        return backend.asarray(array)
    return np.asarray(array)


def as_image(array, name: str, backend: Backend, *, dtype=None, shape=None):
    """Validate a 2-D array and return it on the backend's device.

    Integer and boolean images are converted to float64 unless ``dtype`` is given.
    """
    if array is None:
        raise InvalidInputError(f"{name} must be a 2-D array, got None")
    array, _ = strip_unit(array)
    if hasattr(array, "filled") and hasattr(array, "mask"):  # numpy masked array
        array = np.ma.getdata(array)
    arr = _host_or_device(array, backend)
    if arr.ndim != 2:
        raise InvalidInputError(f"{name} must be a 2-D array, got shape {tuple(arr.shape)}")
    if shape is not None and tuple(arr.shape) != tuple(shape):
        raise InvalidInputError(
            f"{name} must have the shape of the data {tuple(shape)}, got {tuple(arr.shape)}"
        )
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    elif arr.dtype.kind not in "f":
        arr = arr.astype(np.float64)
    return arr


def as_optional_image(array, name: str, backend: Backend, shape, *, dtype=None):
    """Like :func:`as_image` but passes None through."""
    if array is None:
        return None
    return as_image(array, name, backend, dtype=dtype, shape=shape)


def as_mask(mask, name: str, backend: Backend, shape):
    """Validate a boolean mask of ``shape`` (None passes through); returns a bool array."""
    if mask is None or mask is np.ma.nomask:
        return None
    arr = _host_or_device(mask, backend)
    if tuple(arr.shape) != tuple(shape):
        raise InvalidInputError(
            f"{name} must have the shape of the data {tuple(shape)}, got {tuple(arr.shape)}"
        )
    return arr.astype(bool, copy=False)


def check_positive_int(value, name: str) -> int:
    """Return ``value`` as an int, raising InvalidParameterError unless it is a positive integer."""
    try:
        ivalue = int(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name} must be a positive integer, got {value!r}") from None
    if ivalue <= 0 or ivalue != value:
        raise InvalidParameterError(f"{name} must be a positive integer, got {value!r}")
    return ivalue


def _wrap_for_simulator(arg):
    if isinstance(arg, np.ndarray):
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        return FakeCUDAArray(arg)
    return arg


def launch(kernel, backend: Backend, n, *args) -> None:
    """Launch a CUDA ``kernel`` over ``n`` threads (int) or an ``(ny, nx)`` grid (tuple).

    On ``cudasim`` NumPy arrays are wrapped for Numba's simulator; on ``gpu`` CuPy arrays are
    passed through (``__cuda_array_interface__``).
    """
    sim = backend.name == "cudasim"
    if isinstance(n, tuple):
        ny, nx = n
        block = _SIM_BLOCK_2D if sim else _BLOCK_2D
        grid = ((nx + block[0] - 1) // block[0], (ny + block[1] - 1) // block[1])
    else:
        if n <= 0:
            return
        block = _SIM_BLOCK_1D if sim else _BLOCK_1D
        grid = (n + block - 1) // block
    if sim:
        args = tuple(_wrap_for_simulator(a) for a in args)
    kernel[grid, block](*args)
