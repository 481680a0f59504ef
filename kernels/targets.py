"""Compile plain-Python per-pixel functions for the CPU, CUDA and the CUDA simulator.

A per-pixel function is written once, in plain Python, and refers to the other per-pixel
functions it calls by their global names. :func:`compile_namespace` rebinds each function's
globals to the already-compiled versions for the chosen target and compiles it, in dependency
order, so the same source runs as ``numba.njit`` code, as CUDA device code, or in the CUDA
simulator.
"""

from __future__ import annotations

import os
import types

__all__ = ["TARGETS", "compile_namespace", "cuda_module_for", "rebind", "refresh_cache_stamp"]

TARGETS = ("cpu", "cuda", "cudasim")


def rebind(fn, namespace: dict):
    """Return a copy of ``fn`` whose global names resolve in ``namespace`` first."""
    glb = dict(fn.__globals__)
    glb.update(namespace)
    new = types.FunctionType(fn.__code__, glb, fn.__name__, fn.__defaults__, fn.__closure__)
    new.__qualname__ = fn.__qualname__
    new.__doc__ = fn.__doc__
    return new


def cuda_module_for(target: str):
    """Return ``numba.cuda`` for ``cuda`` or the simulator module for ``cudasim``."""
    if target == "cuda":
        from numba import cuda

        return cuda
    if target == "cudasim":
        from numba.cuda import simulator

        return simulator
    raise ValueError(f"no CUDA module for target {target!r}")


def _device_decorator(target: str, inline: bool):
    if target == "cpu":
        import numba

        if inline:
            return numba.njit(error_model="numpy", nogil=True, inline="always")
        # allocates nothing: no Numba runtime, hence no reference counting of array arguments
        return numba.njit(error_model="numpy", nogil=True, _nrt=False)
    return cuda_module_for(target).jit(device=True)


def compile_namespace(functions, target: str, extra: dict | None = None,
                      inline: tuple = ()) -> types.SimpleNamespace:
    """Compile ``functions`` (plain Python, in dependency order) as device functions.

    Parameters
    ----------
    functions : sequence of callables
        Per-pixel functions; a later one may call an earlier one by its ``__name__``.
    target : {"cpu", "cuda", "cudasim"}
        Compilation target.
    extra : dict, optional
        Already-compiled functions or constants made visible to every function by name
        (e.g. the target's own ``deposit`` that uses atomics on CUDA).
    inline : tuple of str
        CPU only: names of functions that Numba inlines into their callers. Functions not listed
        are separate calls, which LLVM does not inline across Numba's per-function modules;
        each such call passes every array argument member by member, so the per-pixel helpers
        belong in this list, while the span function a driver calls once per row of work does
        not (it is also compiled without the Numba runtime: it allocates nothing).

    Returns
    -------
    types.SimpleNamespace
        The compiled functions by name, plus everything in ``extra``.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose one of {TARGETS}")
    namespace: dict = dict(extra or {})
    for fn in functions:
        decorate = _device_decorator(target, fn.__name__ in inline)
        namespace[fn.__name__] = decorate(rebind(fn, namespace))
    return types.SimpleNamespace(**namespace)


def refresh_cache_stamp(driver_file: str, *dependency_files: str) -> None:
    """Make Numba's on-disk cache of ``driver_file`` notice edits to the files it calls into.

    Numba keys a cached function on its own source file's timestamp only, so a driver compiled
    with ``cache=True`` would keep stale machine code after an edit to the per-pixel maths it
    calls. Touching the driver file when a dependency is newer makes Numba recompile it.
    Read-only installations are left alone (their files do not change).
    """
    try:
        stamp = os.stat(driver_file).st_mtime
        newest = max(os.stat(f).st_mtime for f in dependency_files)
        if newest > stamp:
            os.utime(driver_file)
    except OSError:
        pass
