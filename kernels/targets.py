"""Compile plain-Python per-pixel functions for the CPU, CUDA and the CUDA simulator.

A per-pixel function is written once, in plain Python, and refers to the other per-pixel
functions it calls by their global names. :func:`compile_namespace` rebinds each function's
globals to the already-compiled versions for the chosen target and compiles it, in dependency
order, so the same source runs as ``numba.njit`` code, as CUDA device code, or in the CUDA
simulator.
"""

from __future__ import annotations

import hashlib
import types

__all__ = ["TARGETS", "binding_tag", "cached_driver", "compile_namespace", "cuda_module_for",
           "device_function", "rebind"]

TARGETS = ("cpu", "cuda", "cudasim")


def rebind(fn, namespace: dict):
    """Return a copy of ``fn`` whose global names resolve in ``namespace`` first.

    The copy's ``__qualname__`` carries a tag of what those names are bound to
    (:func:`binding_tag`), so that two bindings of one source never share a symbol name.
    Numba names a compiled function after its module, qualified name, argument types and a
    per-process counter; a process that loads from the on-disk cache two bindings compiled in
    two processes after the same steps would otherwise link both callers to one body.
    """
    glb = dict(fn.__globals__)
    glb.update(namespace)
    new = types.FunctionType(fn.__code__, glb, fn.__name__, fn.__defaults__, fn.__closure__)
    tag = binding_tag(fn.__code__, namespace)
    new.__qualname__ = fn.__qualname__ if tag is None else f"{fn.__qualname__}__{tag}"
    new.__doc__ = fn.__doc__
    return new


def _global_names(code) -> set:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def _bound_name(value) -> str:
    """What a rebound global refers to, the same in every process: a compiled function by its
    module and qualified name (which carries its own binding tag), a number or string by its
    value, an array by its contents, anything else by its type."""
    func = getattr(value, "py_func", value)
    if callable(func) and hasattr(func, "__qualname__"):
        return f"{getattr(func, '__module__', '')}.{func.__qualname__}"
    if isinstance(value, (bool, int, float, str, bytes)):
        return repr(value)
    if hasattr(value, "dtype") and hasattr(value, "tobytes"):  # an array frozen into the code
        digest = hashlib.sha256(value.tobytes()).hexdigest()[:16]
        return f"{value.dtype}{getattr(value, 'shape', ())}:{digest}"
    return type(value).__qualname__


def binding_tag(code, namespace: dict) -> str | None:
    """Eight hex digits naming the binding of the globals ``code`` uses from ``namespace``
    (``None`` when it uses none): equal tags, equal code."""
    used = sorted(_global_names(code) & namespace.keys())
    if not used:
        return None
    text = ";".join(f"{name}={_bound_name(namespace[name])}" for name in used)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def cuda_module_for(target: str):
    """Return ``numba.cuda`` for ``cuda`` or the simulator module for ``cudasim``."""
    if target == "cuda":
        from numba import cuda

        return cuda
    if target == "cudasim":
        from numba.cuda import simulator

        return simulator
    raise ValueError(f"no CUDA module for target {target!r}")


def _simulator_intrinsics():
    """A stand-in for ``numba.cuda`` inside device functions run by the CUDA simulator.

    The simulator swaps a device function's ``cuda`` global for its fake module around every
    call, from every simulated thread at once; a thread that returns restores the real module
    while others still run, and their ``cuda.atomic.add`` then fails. Bound to this object
    instead (whose atomics lock like the simulator's), ``cuda`` is never swapped.
    """
    from numba.cuda.simulator.kernelapi import FakeCUDAAtomic

    return types.SimpleNamespace(atomic=FakeCUDAAtomic())


def device_function(fn, target: str, namespace: dict | None = None):
    """Compile ``fn`` as a CUDA device function for ``cuda`` or ``cudasim``.

    ``namespace`` adds or replaces global names (see :func:`rebind`). On ``cudasim`` the name
    ``cuda`` is bound to a thread-safe stand-in (see :func:`_simulator_intrinsics`).
    """
    names = dict(namespace or {})
    if target == "cudasim":
        names.setdefault("cuda", _simulator_intrinsics())
    return cuda_module_for(target).jit(device=True)(rebind(fn, names))


def _cpu_decorator(inline: bool):
    import numba

    if inline:
        return numba.njit(error_model="numpy", nogil=True, inline="always")
    # allocates nothing: no Numba runtime, hence no reference counting of array arguments
    return numba.njit(error_model="numpy", nogil=True, _nrt=False)


def compile_namespace(functions, target: str, extra: dict | None = None,
                      inline: tuple = (), aliases: dict | None = None) -> types.SimpleNamespace:
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
    aliases : dict, optional
        ``{name: function name}``: once the named function is compiled, later functions that
        call ``name`` get it. This binds a generic call (``kernel_pixel``) to one choice
        (``turbo_pixel``) at compile time, so a driver compiles only the code it runs.

    Returns
    -------
    types.SimpleNamespace
        The compiled functions by name, plus everything in ``extra``.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose one of {TARGETS}")
    namespace: dict = dict(extra or {})
    aliases = dict(aliases or {})
    for fn in functions:
        if target == "cpu":
            decorate = _cpu_decorator(fn.__name__ in inline)
            namespace[fn.__name__] = decorate(rebind(fn, namespace))
        else:
            namespace[fn.__name__] = device_function(fn, target, namespace)
        for alias, name in aliases.items():
            if name == fn.__name__:
                namespace[alias] = namespace[name]
    return types.SimpleNamespace(**namespace)


def cached_driver(fn, variant: str | None = None, **options):
    """Compile ``fn`` as a CPU driver (``numba.njit(nogil=True, cache=True, **options)``).

    ``variant`` names one binding of a function compiled several times from the same source
    (e.g. ``"square"`` for the drizzle driver whose span function is the square kernel's); it
    becomes part of the cache file name (see :mod:`hapgpu.kernels._cache`), so the variants
    never read each other's index. Their symbols are told apart by the binding tag that
    :func:`rebind` puts in each rebound function's name.
    """
    import numba

    if variant is not None:
        fn.__hapgpu_variant__ = variant
    return numba.njit(nogil=True, cache=True, **options)(fn)
