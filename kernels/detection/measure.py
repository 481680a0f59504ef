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

:func:`kron_radius_cpu` computes photutils' unscaled Kron radius per label.
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np
from numba import cuda, prange

from ..targets import cuda_module_for

__all__ = [
    "A_NPIX",
    "A_FLUX",
    "A_ERR2",
    "A_BKG",
    "A_MOM",
    "N_ACC",
    "measure_cpu",
    "kron_radius_cpu",
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

APERMASK_NONE = 0
APERMASK_MASK = 1
APERMASK_CORRECT = 2

_JIT = dict(nogil=True, cache=True)


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


@numba.njit(**_JIT)
def _kron_one(lab, xc, yc, a, b, theta, cxx, cxy, cyy, data, segm, mask, use_mask, method,
              kron_min, min_circ, max_size):
    ny_img, nx_img = data.shape
    use_circular = a == 0.0 and b == 0.0
    if use_circular:
        if min_circ <= 0.0:
            return math.nan
        half_w = min_circ
        half_h = min_circ
    else:
        ct = math.cos(theta)
        st = math.sin(theta)
        half_w = math.sqrt(a * a * ct * ct + b * b * st * st)
        half_h = math.sqrt(a * a * st * st + b * b * ct * ct)
    ixmin = math.floor(xc - half_w + 0.5)
    ixmax = math.floor(xc + half_w + 0.5) + 1
    iymin = math.floor(yc - half_h + 0.5)
    iymax = math.floor(yc + half_h + 0.5) + 1
    if (ixmax - ixmin) * (iymax - iymin) > max_size:
        return math.nan
    lx0 = max(ixmin, 0)
    ly0 = max(iymin, 0)
    lx1 = min(ixmax, nx_img)
    ly1 = min(iymax, ny_img)
    if lx0 >= lx1 or ly0 >= ly1:
        return math.nan
    cw = lx1 - lx0
    ch = ly1 - ly0
    # mirror centre inside the cutout (photutils: int(cutout centre + 0.5))
    mx = 2 * int(xc - max(0, ixmin) + 0.5)
    my = 2 * int(yc - max(0, iymin) + 0.5)
    numer = 0.0
    denom = 0.0
    for cj in range(ch):
        j = ly0 + cj
        yy = j - yc
        for ci in range(cw):
            i = lx0 + ci
            v = np.float64(data[j, i])
            bad = (not math.isfinite(v)) or (use_mask and mask[j, i])
            s = segm[j, i]
            neighbour = s != lab and s != 0
            if method == APERMASK_MASK and neighbour:
                bad = True
            if bad:
                continue
            xx = i - xc
            if use_circular:
                inside = xx * xx + yy * yy <= min_circ * min_circ
                rr = math.sqrt(max(cxx * xx * xx + cxy * xx * yy + cyy * yy * yy, 0.0))
            else:
                rr = math.sqrt(max(cxx * xx * xx + cxy * xx * yy + cyy * yy * yy, 0.0))
                inside = rr <= 6.0
            if not inside:
                continue
            if method == APERMASK_CORRECT and neighbour:
                mi = mx - ci
                mj = my - cj
                if mi < 0 or mj < 0 or mi >= cw or mj >= ch:
                    v = 0.0
                else:
                    sm = segm[ly0 + mj, lx0 + mi]
                    vm = np.float64(data[ly0 + mj, lx0 + mi])
                    if ((sm != lab and sm != 0) or not math.isfinite(vm)
                            or (use_mask and mask[ly0 + mj, lx0 + mi])):
                        v = 0.0
                    else:
                        v = vm
            numer += v * rr
            denom += v
    if numer <= 0.0 or denom <= 0.0:
        return kron_min
    return numer / denom


@numba.njit(parallel=True, **_JIT)
def kron_radius_cpu(label_values, xc, yc, a, b, theta, cxx, cxy, cyy, data, segm, mask,
                    use_mask, method, kron_min, min_circ, max_size):
    """photutils' measured (unscaled, unclipped) Kron radius of each label.

    ``a`` and ``b`` are 6 x the semimajor/semiminor sigmas; the radius is the ``rr``-weighted
    mean of the data inside the elliptical radius 6 (pixel centres), where
    ``rr**2 = cxx x**2 + cxy x y + cyy y**2``. Neighbouring segments are ignored, masked or
    replaced by their mirror pixel about the centroid (``method``). NaN inputs give NaN;
    non-positive sums give ``kron_min``.
    """
    n = label_values.shape[0]
    out = np.full(n, np.nan)
    for k in prange(n):
        if not (math.isfinite(xc[k]) and math.isfinite(yc[k]) and math.isfinite(a[k])
                and math.isfinite(b[k]) and math.isfinite(theta[k])):
            continue
        out[k] = _kron_one(label_values[k], xc[k], yc[k], a[k], b[k], theta[k], cxx[k], cxy[k],
                           cyy[k], data, segm, mask, use_mask, method, kron_min, min_circ,
                           max_size)
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
