"""hapgpu: a GPU-accelerated implementation of the Hubble Advanced Products pipeline.

Subpackages
-----------
hapgpu.resample
    Pixel maps, drizzle (every drizzlepac kernel) and blot on cpu, gpu and cudasim backends.
hapgpu.kernels
    Compute kernels only (arrays in, arrays out), shared by the CPU and CUDA targets.
hapgpu.astrodrizzle
    The AstroDrizzle chain (static mask, sky, separate drizzle, median, blot, driz_cr, final
    drizzle); ``hapgpu.astrodrizzle(inputs, output, ...)`` runs it (imported on first use).
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
    "astrodrizzle",
    "Backend",
    "resolve_backend",
    "HapGpuError",
    "BackendUnavailableError",
    "InvalidInputError",
    "InvalidParameterError",
    "WCSError",
    "__version__",
]


def __getattr__(name):
    # Heavy subpackages are imported on first use so that ``import hapgpu`` stays light.
    if name == "astrodrizzle":
        import importlib

        return importlib.import_module(".astrodrizzle", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
