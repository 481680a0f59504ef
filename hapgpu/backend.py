"""Compute backend selection.

A backend is a value passed through the API (``backend="cpu" | "gpu" | "cudasim" | "auto"``).
The environment variable ``HAPGPU_BACKEND`` supplies the default when the caller passes
``None``; the CLI's ``--backend`` flag sets it for a whole run. ``auto`` resolves to ``gpu``
when a CUDA device and CuPy are usable, otherwise to ``cpu``, and says which once in the log.

A CPU-only install never imports CuPy: it is imported only when ``gpu`` is resolved.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass

import numpy as np

from .errors import BackendUnavailableError, InvalidParameterError

__all__ = ["Backend", "resolve_backend", "cuda_available", "BACKEND_NAMES"]

log = logging.getLogger(__name__)

BACKEND_NAMES = ("cpu", "gpu", "cudasim", "auto")
_ENV_VAR = "HAPGPU_BACKEND"


@functools.lru_cache(maxsize=1)
def cuda_available() -> bool:
    """Return True when a CUDA device, the CUDA driver, CuPy and Numba CUDA are all usable."""
    try:
        import cupy  # noqa: F401
        from numba import cuda
    except Exception:  # ImportError, or a broken CUDA installation
        return False
    try:
        return bool(cuda.is_available()) and cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


@dataclass(frozen=True)
class Backend:
    """A resolved compute backend.

    Parameters
    ----------
    name : {"cpu", "gpu", "cudasim"}
        ``cpu`` runs Numba CPU kernels (parallel) on NumPy arrays; ``gpu`` runs Numba CUDA
        kernels on CuPy arrays; ``cudasim`` runs the very same CUDA kernels in Numba's CUDA
        simulator on NumPy arrays (slow; for testing the GPU code without a GPU).
    """

    name: str

    @property
    def is_cuda(self) -> bool:
        """True for the backends that run the CUDA kernels (``gpu`` and ``cudasim``)."""
        return self.name in ("gpu", "cudasim")

    @property
    def xp(self):
        """The array module of this backend: CuPy for ``gpu``, NumPy otherwise."""
        if self.name == "gpu":
            import cupy

            return cupy
        return np

    def asarray(self, array, dtype=None):
        """Return ``array`` on this backend's device (no copy when it is already there)."""
        return self.xp.ascontiguousarray(self.xp.asarray(array, dtype=dtype))

    def to_host(self, array) -> np.ndarray:
        """Return ``array`` as a host NumPy array."""
        if self.name == "gpu" and not isinstance(array, np.ndarray):
            return array.get()
        return np.asarray(array)

    def synchronize(self) -> None:
        """Wait for queued device work (no-op on the host backends)."""
        if self.name == "gpu":
            import cupy

            cupy.cuda.get_current_stream().synchronize()

    def __repr__(self) -> str:
        return f"Backend({self.name!r})"


_auto_reported = False


def resolve_backend(backend: str | Backend | None = None) -> Backend:
    """Turn a backend name (or None) into a :class:`Backend`.

    Parameters
    ----------
    backend : str, Backend or None
        ``"cpu"``, ``"gpu"``, ``"cudasim"`` or ``"auto"``. None reads ``HAPGPU_BACKEND``,
        falling back to ``"auto"``.

    Returns
    -------
    Backend

    Raises
    ------
    InvalidParameterError
        For an unknown name.
    BackendUnavailableError
        When ``gpu`` is asked for on a machine without a usable CUDA device.
    """
    global _auto_reported
    if isinstance(backend, Backend):
        return backend
    name = backend if backend is not None else os.environ.get(_ENV_VAR, "auto")
    name = str(name).strip().lower()
    if name not in BACKEND_NAMES:
        raise InvalidParameterError(
            f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}"
        )
    if name == "gpu" and not cuda_available():
        raise BackendUnavailableError(
            "backend 'gpu' needs a CUDA device with CuPy and Numba CUDA installed "
            "(pip install 'hapgpu[gpu]'); none was found.",
            hint="Use backend='cpu' or backend='auto'.",
        )
    if name == "auto":
        name = "gpu" if cuda_available() else "cpu"
        if not _auto_reported:
            why = "a CUDA device is present" if name == "gpu" else "no CUDA device was found"
            log.info("backend 'auto' resolved to %r: %s", name, why)
            _auto_reported = True
    if name == "cpu":
        from ._compilation import announce_compilation

        announce_compilation()
    return Backend(name)
