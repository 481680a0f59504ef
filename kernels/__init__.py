"""Compute kernels of hapgpu: arrays in, arrays out.

No astropy, no FITS, no logging, no configuration dictionaries. Per-pixel mathematics is
written once as plain Python functions (see ``_pixel_math``, ``_interp_math``) and compiled
for each target by :func:`hapgpu.kernels.targets.compile_namespace`:

* ``cpu``: ``numba.njit`` functions, inlined into one span function per row of work, driven
  by parallel ``prange`` loops; one driver per drizzle kernel and blot interpolant, compiled
  on first use and cached on disk (:mod:`hapgpu.kernels._cache`: a per-user folder, never the
  installed package, keyed by the source so that a stale kernel never runs);
* ``cuda``: ``numba.cuda.jit(device=True)`` device functions driven by CUDA kernels;
* ``cudasim``: the same CUDA kernels run by Numba's CUDA simulator on NumPy arrays.

This package is installed as ``hapgpu.kernels``.
"""

from . import _cache

_cache.install()
