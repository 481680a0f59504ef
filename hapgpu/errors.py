"""Typed exceptions raised by hapgpu.

Library code raises these; only the command-line interface turns them into exit codes.
"""

__all__ = [
    "HapGpuError",
    "BackendUnavailableError",
    "InvalidParameterError",
    "InvalidInputError",
    "WCSError",
]


class HapGpuError(Exception):
    """Base class of every error hapgpu raises on purpose."""


class BackendUnavailableError(HapGpuError, RuntimeError):
    """The requested compute backend cannot run on this machine (e.g. ``gpu`` without CUDA)."""


class InvalidParameterError(HapGpuError, ValueError):
    """A parameter value is out of range or not one of the accepted choices."""


class InvalidInputError(HapGpuError, ValueError):
    """Input data (an array or a file) has the wrong shape, type or content."""


class WCSError(HapGpuError, ValueError):
    """A WCS cannot be used: non-finite values, missing keywords, or no overlap."""
