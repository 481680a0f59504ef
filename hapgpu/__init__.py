"""hapgpu: a GPU-accelerated implementation of the Hubble Advanced Products pipeline.

Subpackages
-----------
hapgpu.resample
    Pixel maps, drizzle (every drizzlepac kernel) and blot on cpu, gpu and cudasim backends.
hapgpu.kernels
    Compute kernels only (arrays in, arrays out), shared by the CPU and CUDA targets.
"""

from importlib.metadata import PackageNotFoundError, version

from .backend import Backend, resolve_backend
from .errors import (
    BackendUnavailableError,
    HapGpuError,
    InvalidInputError,
    InvalidParameterError,
    WCSError,
)

try:
    __version__ = version("hapgpu")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "Backend",
    "resolve_backend",
    "HapGpuError",
    "BackendUnavailableError",
    "InvalidInputError",
    "InvalidParameterError",
    "WCSError",
    "__version__",
]
