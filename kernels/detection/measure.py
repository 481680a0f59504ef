"""Per-label fused reductions for source catalogs (photutils ``SourceCatalog`` semantics).

One pass accumulates, for every label, the sums that the catalog's properties derive from:

========  =====================================================================================
column    meaning
========  =====================================================================================
A_NPIX    number of valid pixels (in the segment, finite data, not masked)
A_FLUX    sum of data over valid pixels
A_ERR2    sum of error**2 over valid pixels
A_BKG     sum of background over valid pixels
A_M00..   raw moments ``M[p, q] = sum y**p x**q w`` (p, q = 0..3; 16 columns, row-major) of the
          moment image ``w``: the convolved data where finite, >= 0 and not masked; ``x`` and
          ``y`` are relative to the bounding box origin
========  =====================================================================================

plus the minimum and maximum data value over valid pixels with the flat index of their first
occurrence in raster order.

CPU: labels in parallel (``prange``), each looping over its bounding box in raster order.
CUDA: one thread per pixel with atomics, then a second pass for the first extremum index.

:func:`kron_radius_cpu` / :func:`kron_flux_cpu` and the CUDA kernels of
:func:`cuda_kron_kernels` compute photutils' unscaled Kron radius and the Kron flux per label
(one source per ``prange`` iteration or CUDA thread; the mathematics is in :mod:`._kron_math`).
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np
from numba import cuda, prange

from ..targets import compile_namespace, cuda_module_for, rebind
from . import _kron_math as km

__all__ = [
    "A_NPIX",
    "A_FLUX",
    "A_ERR2",
    "A_BKG",
    "A_MOM",
    "N_ACC",
    "measure_cpu",
    "kron_radius_cpu",
    "kron_flux_cpu",
    "cuda_kron_kernels",
    "cuda_measure_kernels",
    "APERMASK_NONE",
    "APERMASK_MASK",
    "APERMASK_CORRECT",
]

A_NPIX = 0
A_FLUX = 1
A_ERR2 = 2
A_BKG = 3
A_MOM = 4
N_ACC = A_MOM + 16

APERMASK_NONE = km.APERMASK_NONE
APERMASK_MASK = km.APERMASK_MASK
APERMASK_CORRECT = km.APERMASK_CORRECT

KRON_OK = km.KRON_OK

_JIT = dict(nogil=True, cache=True)
_cpu = compile_namespace(km.KRON_FUNCTIONS, "cpu")
_kron_radius_one = _cpu.kron_radius_one
_kron_flux_one = _cpu.kron_flux_one


@numba.njit(parallel=True, **_JIT)
def measure_cpu(labels, label_values, bbox, data, conv, error, bkg, mask, flags):
    """Fused per-label sums.

    Parameters
    ----------
    labels : ndarray of int, shape (ny, nx)
    label_values : ndarray of int, shape (n,)
        The label of each catalog row.
    bbox : ndarray of int64, shape (n, 4)
        Inclusive (ymin, ymax, xmin, xmax) of each label.
    data, conv, error, bkg : ndarray, shape (ny, nx)
        ``conv`` is the moment image (may be ``data`` itself); ``error`` and ``bkg`` are read
        only when bit 1 and bit 2 of ``flags`` are set.
    mask : ndarray of bool, shape (ny, nx)
        Read only when bit 4 of ``flags`` is set.
    flags : int

    Returns
    -------
    acc : ndarray, float64, shape (n, N_ACC)
    extrema : ndarray, float64, shape (n, 2)
        Minimum and maximum data value (NaN when no valid pixel).
    ext_index : ndarray, int64, shape (n, 2)
        Flat index of the first minimum and maximum (-1 when none).
    """
    n = label_values.shape[0]
    nx = labels.shape[1]
    use_err = (flags & 1) != 0
    use_bkg = (flags & 2) != 0
    use_mask = (flags & 4) != 0
    acc = np.zeros((n, N_ACC))
    extrema = np.full((n, 2), np.nan)
    ext_index = np.full((n, 2), -1, dtype=np.int64)
    for k in prange(n):
        lab = label_values[k]
        y0 = bbox[k, 0]
        x0 = bbox[k, 2]
        vmin = np.inf
        vmax = -np.inf
        imin = -1
        imax = -1
        a = acc[k]
        for j in range(y0, bbox[k, 1] + 1):
            yy = np.float64(j - y0)
            for i in range(x0, bbox[k, 3] + 1):
                if labels[j, i] != lab:
                    continue
                masked = use_mask and mask[j, i]
                v = data[j, i]
                if not masked and math.isfinite(v):
                    a[A_NPIX] += 1.0
                    a[A_FLUX] += v
                    if use_err:
                        e = np.float64(error[j, i])
                        a[A_ERR2] += e * e
                    if use_bkg:
                        a[A_BKG] += bkg[j, i]
                    if imin < 0 or v < vmin:
                        vmin = v
                        imin = j * nx + i
                    if imax < 0 or v > vmax:
                        vmax = v
                        imax = j * nx + i
                w = np.float64(conv[j, i])
                if not masked and math.isfinite(w) and w >= 0.0:
                    xx = np.float64(i - x0)
                    ypow = w
                    for p in range(4):
                        xpow = ypow
                        for q in range(4):
                            a[A_MOM + 4 * p + q] += xpow
                            xpow *= xx
                        ypow *= yy
        if imin >= 0:
            extrema[k, 0] = vmin
            extrema[k, 1] = vmax
            ext_index[k, 0] = imin
            ext_index[k, 1] = imax
    return acc, extrema, ext_index


@numba.njit(parallel=True, **_JIT)
def kron_radius_cpu(label_values, xc, yc, a, b, theta, cxx, cxy, cyy, data, segm, mask,
                    use_mask, method, kron_min, min_circ, max_size):
    """photutils' measured (unscaled, unclipped) Kron radius of each label.

    ``a`` and ``b`` are 6 x the semimajor/semiminor sigmas; see
    :func:`._kron_math.kron_radius_one`. Rows with a non-finite centre or shape give NaN.

    Returns
    -------
    ndarray, float64, shape (n,)
    """
    n = label_values.shape[0]
    out = np.full(n, np.nan)
    for k in prange(n):
        if not (math.isfinite(xc[k]) and math.isfinite(yc[k]) and math.isfinite(a[k])
                and math.isfinite(b[k]) and math.isfinite(theta[k])):
            continue
        out[k] = _kron_radius_one(label_values[k], xc[k], yc[k], a[k], b[k], theta[k], cxx[k],
                                  cxy[k], cyy[k], data, segm, mask, use_mask, method, kron_min,
                                  min_circ, max_size)
    return out


@numba.njit(parallel=True, **_JIT)
def kron_flux_cpu(label_values, xc, yc, a, b, theta, radius, valid, data, error, segm, mask,
                  flags, method, max_size):
    """Kron flux and variance of each label (see :func:`._kron_math.kron_flux_one`).

    Parameters
    ----------
    label_values : ndarray of int, shape (n,)
    xc, yc, a, b, theta, radius : ndarray, float64, shape (n,)
        Aperture centre, elliptical semi-axes and angle (radians), or circular radius (> 0
        selects the circle).
    valid : ndarray of bool, shape (n,)
        False where the source has no aperture (NaN results).
    data, error : ndarray, shape (ny, nx)
        ``error`` is read when bit 1 of ``flags`` is set (else any (1, 1) array).
    segm : ndarray of int, shape (ny, nx)
    mask : ndarray of bool, shape (ny, nx) or (1, 1)
        Read when bit 2 of ``flags`` is set.
    flags, method, max_size : int

    Returns
    -------
    ndarray, float64, shape (n, 2)
        ``sum w I`` and ``sum w e**2`` (NaN where undefined).
    """
    n = label_values.shape[0]
    out = np.full((n, 2), np.nan)
    for k in prange(n):
        if not valid[k]:
            continue
        f, v, status = _kron_flux_one(label_values[k], xc[k], yc[k], a[k], b[k], theta[k],
                                      radius[k], data, error, segm, mask, flags, method,
                                      max_size)
        if status == KRON_OK:
            out[k, 0] = f
            out[k, 1] = v
    return out


# --------------------------------------------------------------------------------------------
# CUDA: one thread per pixel, atomics into per-row accumulators
# --------------------------------------------------------------------------------------------


def _sum_kernel(labels, row_of_label, bbox, data, conv, error, bkg, mask, flags, acc, vmin,
                vmax):
    k = cuda.grid(1)
    ny = labels.shape[0]
    nx = labels.shape[1]
    if k >= ny * nx:
        return
    j = k // nx
    i = k - j * nx
    lab = labels[j, i]
    if lab <= 0 or lab >= row_of_label.shape[0]:
        return
    r = row_of_label[lab]
    if r < 0:
        return
    masked = (flags & 4) != 0 and mask[j, i]
    v = data[j, i]
    if not masked and math.isfinite(v):
        cuda.atomic.add(acc, (r, 0), 1.0)
        cuda.atomic.add(acc, (r, 1), np.float64(v))
        if (flags & 1) != 0:
            e = np.float64(error[j, i])
            cuda.atomic.add(acc, (r, 2), e * e)
        if (flags & 2) != 0:
            cuda.atomic.add(acc, (r, 3), np.float64(bkg[j, i]))
        cuda.atomic.min(vmin, r, np.float64(v))
        cuda.atomic.max(vmax, r, np.float64(v))
    w = np.float64(conv[j, i])
    if not masked and math.isfinite(w) and w >= 0.0:
        yy = np.float64(j - bbox[r, 0])
        xx = np.float64(i - bbox[r, 2])
        ypow = w
        for p in range(4):
            xpow = ypow
            for q in range(4):
                cuda.atomic.add(acc, (r, 4 + 4 * p + q), xpow)
                xpow *= xx
            ypow *= yy


def _extrema_index_kernel(labels, row_of_label, data, mask, flags, vmin, vmax, imin, imax):
    k = cuda.grid(1)
    ny = labels.shape[0]
    nx = labels.shape[1]
    if k >= ny * nx:
        return
    j = k // nx
    i = k - j * nx
    lab = labels[j, i]
    if lab <= 0 or lab >= row_of_label.shape[0]:
        return
    r = row_of_label[lab]
    if r < 0:
        return
    if (flags & 4) != 0 and mask[j, i]:
        return
    v = np.float64(data[j, i])
    if not math.isfinite(v):
        return
    if v == vmin[r]:
        cuda.atomic.min(imin, r, k)
    if v == vmax[r]:
        cuda.atomic.min(imax, r, k)


@functools.lru_cache(maxsize=None)
def cuda_measure_kernels(target: str):
    """``(sum_kernel, extrema_index_kernel)`` compiled for ``cuda`` or ``cudasim``.

    ``sum_kernel(labels, row_of_label, bbox, data, conv, error, bkg, mask, flags, acc, vmin,
    vmax)`` runs one thread per pixel; ``acc`` must start at 0, ``vmin`` at +inf and ``vmax``
    at -inf. ``extrema_index_kernel(labels, row_of_label, data, mask, flags, vmin, vmax, imin,
    imax)`` then finds the first flat index of each extremum (``imin``/``imax`` start at a
    large value).
    """
    module = cuda_module_for(target)
    return module.jit(_sum_kernel), module.jit(_extrema_index_kernel)


def _kron_radius_kernel(label_values, xc, yc, a, b, theta, cxx, cxy, cyy, data, segm, mask,
                        use_mask, method, kron_min, min_circ, max_size, out):
    k = cuda.grid(1)
    if k >= label_values.shape[0]:
        return
    if not (math.isfinite(xc[k]) and math.isfinite(yc[k]) and math.isfinite(a[k])
            and math.isfinite(b[k]) and math.isfinite(theta[k])):
        out[k] = math.nan
        return
    out[k] = kron_radius_one(label_values[k], xc[k], yc[k], a[k], b[k], theta[k], cxx[k],
                             cxy[k], cyy[k], data, segm, mask, use_mask, method, kron_min,
                             min_circ, max_size)


def _kron_flux_kernel(label_values, xc, yc, a, b, theta, radius, valid, data, error, segm,
                      mask, flags, method, max_size, out):
    k = cuda.grid(1)
    if k >= label_values.shape[0]:
        return
    out[k, 0] = math.nan
    out[k, 1] = math.nan
    if not valid[k]:
        return
    f, v, status = kron_flux_one(label_values[k], xc[k], yc[k], a[k], b[k], theta[k],
                                 radius[k], data, error, segm, mask, flags, method, max_size)
    if status == KRON_OK:
        out[k, 0] = f
        out[k, 1] = v


@functools.lru_cache(maxsize=None)
def cuda_kron_kernels(target: str):
    """``(kron_radius_kernel, kron_flux_kernel)`` for ``cuda`` or ``cudasim``, one thread per
    source, with the arguments of :func:`kron_radius_cpu` / :func:`kron_flux_cpu` followed by
    the output array ((n,) float64, resp. (n, 2) float64)."""
    module = cuda_module_for(target)
    names = dict(vars(compile_namespace(km.KRON_FUNCTIONS, target)))
    return (module.jit(rebind(_kron_radius_kernel, names)),
            module.jit(rebind(_kron_flux_kernel, names)))
