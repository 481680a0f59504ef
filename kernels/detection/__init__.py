"""Compute kernels of the detection engine (arrays in, arrays out).

Each module holds one family of algorithms, with its CPU (``numba.njit``) driver and, where
the algorithm runs on the device, its CUDA kernels side by side:

* :mod:`.stats`: sigma clipping (astropy semantics), box statistics for 2-D backgrounds,
  scipy-style clipped annulus statistics;
* :mod:`.zoom`: separable cubic-spline zoom of a background mesh;
* :mod:`.labeling`: connected-component labelling in raster order (CPU union-find and a CUDA
  union-find with atomics);
* :mod:`.deblend`: multi-threshold deblending and marker-based watershed, per source;
* :mod:`.measure`: per-label fused reductions (area, bounding box, sums, extrema, moments);
* :mod:`.aperture`: exact circle/pixel overlap, aperture sums and annulus statistics;
* :mod:`.starfind`: DAOFIND marginal fits and shape statistics per star.

Nothing here imports astropy or logs; validation lives in :mod:`hapgpu.detection`.
"""
