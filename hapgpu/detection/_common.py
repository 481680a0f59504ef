"""Validation and dispatch helpers shared by the detection modules.

Every array that enters :mod:`hapgpu.detection` through a public function or class (data,
masks, errors, backgrounds, thresholds, segmentation images, coordinates, weights) passes
through :func:`native_array` (host) or :func:`to_backend` (host or device) exactly once. They
turn what users hand in (big-endian arrays from :func:`astropy.io.fits.getdata`, strided views,
read-only buffers, masked arrays) into the one layout the compiled kernels are specialised
for: native byte order, C order, writeable. An array already in that layout is passed through
without a copy; anything else is copied once. Results computed from such arrays are in native
byte order too.
"""

from __future__ import annotations

import numpy as np

from ..backend import Backend, resolve_backend
from ..errors import InvalidInputError, InvalidParameterError

__all__ = [
    "get_backend",
    "native_array",
    "dtype_of",
    "to_backend",
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


def _is_device_array(array) -> bool:
    return type(array).__module__.split(".")[0] == "cupy"


def native_array(array, *, dtype=None) -> np.ndarray:
    """Return ``array`` as a host ndarray in native byte order, C order and writeable.

    Parameters
    ----------
    array : array_like
        Any NumPy-convertible value: an ndarray of either byte order (FITS data is
        big-endian), a strided or read-only view, a masked array (its data are taken), a
        Quantity (its values are taken), a list, a scalar, or a CuPy array (copied to the host).
    dtype : dtype, optional
        Convert to this dtype (in native byte order) as part of the same single copy.

    Returns
    -------
    ndarray
        ``array`` itself when it already is a native-order, C-contiguous, writeable ndarray of
        the requested dtype; otherwise one converted copy.
    """
    if _is_device_array(array):
        array = array.get()
    if isinstance(array, np.ma.MaskedArray):
        array = np.ma.getdata(array)
    array, _ = strip_unit(array)
    arr = np.asarray(array)
    target = arr.dtype if dtype is None else np.dtype(dtype)
    if not target.isnative:
        target = target.newbyteorder("=")
    if arr.dtype == target and arr.flags.c_contiguous and arr.flags.writeable:
        return arr
    return np.array(arr, dtype=target, order="C", copy=True)


def to_backend(array, backend: Backend, *, dtype=None):
    """Return ``array`` on the backend's device in the layout of :func:`native_array`.

    On ``cpu`` and ``cudasim`` this is :func:`native_array`. On ``gpu`` a host array is
    converted on the host first (CuPy has no big-endian dtypes) and copied to the device; a
    CuPy array stays on the device (made C-contiguous and cast to ``dtype`` if needed).
    """
    if backend.name == "gpu":
        if _is_device_array(array):
            xp = backend.xp
            return xp.ascontiguousarray(array if dtype is None else array.astype(dtype))
        return backend.asarray(native_array(array, dtype=dtype))
    return native_array(array, dtype=dtype)


def dtype_of(array) -> np.dtype:
    """dtype of an array-like (host or device) without converting it."""
    dtype = getattr(array, "dtype", None)
    return np.dtype(dtype) if dtype is not None else np.asarray(array).dtype


def as_image(array, name: str, backend: Backend, *, dtype=None, shape=None):
    """Validate a 2-D array and return it on the backend's device (see :func:`to_backend`).

    Integer and boolean images are converted to float64 unless ``dtype`` is given; the
    conversion and the byte-order/layout normalisation share one copy.

    Raises
    ------
    InvalidInputError
        When ``array`` is None, not 2-D, or not of ``shape``.
    """
    if array is None:
        raise InvalidInputError(f"{name} must be a 2-D array, got None")
    values, _ = strip_unit(array)
    if dtype is None and dtype_of(values).kind != "f":
        dtype = np.float64
    arr = to_backend(values, backend, dtype=dtype)
    if arr.ndim != 2:
        raise InvalidInputError(f"{name} must be a 2-D array, got shape {tuple(arr.shape)}")
    if shape is not None and tuple(arr.shape) != tuple(shape):
        raise InvalidInputError(
            f"{name} must have the shape of the data {tuple(shape)}, got {tuple(arr.shape)}"
        )
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
    arr = to_backend(mask, backend, dtype=bool)
    if tuple(arr.shape) != tuple(shape):
        raise InvalidInputError(
            f"{name} must have the shape of the data {tuple(shape)}, got {tuple(arr.shape)}"
        )
    return arr


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
