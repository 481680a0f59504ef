"""Array-module dispatch for the array-level kernels (NumPy on the host, CuPy on a GPU).

Kernels written with NumPy-compatible array code take their arrays from the caller and pick the
module of those arrays; nothing here imports CuPy unless a CuPy array is passed in.
"""

from __future__ import annotations

import numpy as np

__all__ = ["array_module", "to_scalar"]


def array_module(*arrays):
    """Return the array module (``numpy`` or ``cupy``) of ``arrays``.

    Parameters
    ----------
    *arrays : array_like
        Arrays (or scalars) whose module decides; the first CuPy array wins.

    Returns
    -------
    module
        ``cupy`` if any argument is a CuPy array, else ``numpy``.
    """
    for a in arrays:
        if type(a).__module__.split(".")[0] == "cupy":
            import cupy

            return cupy
    return np


def to_scalar(value) -> float:
    """Python float of a 0-d NumPy/CuPy array or scalar (synchronises on a device)."""
    return float(value.item()) if hasattr(value, "item") else float(value)
