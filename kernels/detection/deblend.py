"""Multi-threshold deblending with a marker-based watershed (photutils ``deblend_sources``).

Every source is deblended independently inside its bounding box, so the sources run in
parallel (``prange``); each one follows photutils step by step:

1. thresholds: ``n_levels`` levels strictly between the source minimum and maximum, spaced
   linearly, exponentially (linear when the minimum is not positive) or as a sinh, computed in
   the data's dtype as NumPy does;
2. markers: at each level, the segment pixels above the level are labelled (4/8
   connectivity), components smaller than ``n_pixels`` dropped; a marker image is replaced by
   the upper level's components wherever one of its components holds two or more of them;
   with more than 200 markers a non-linear mode restarts in linear mode;
3. watershed of ``-data`` from the markers inside the segment (scikit-image's priority flood:
   priority by value then by insertion age, neighbours in scikit-image's order, labels set
   on insertion);
4. contrast: while some marker holds less than ``contrast`` of the source flux, the faintest
   is removed and its pixels are re-flooded from the neighbouring regions (photutils reruns
   the whole watershed; the result is the same);
5. the surviving regions are numbered 1..m in the order of their marker labels.

Results go to a flat buffer (one slice per source); :func:`paint_cpu` writes them back into
the segmentation image with new global labels.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

__all__ = ["MODE_EXPONENTIAL", "MODE_LINEAR", "MODE_SINH", "MAX_MARKERS", "deblend_cpu",
           "paint_cpu", "W_NONPOSMIN", "W_NMARKERS", "E_WATERSHED"]

MODE_EXPONENTIAL = 0
MODE_LINEAR = 1
MODE_SINH = 2

W_NONPOSMIN = 1
W_NMARKERS = 2
E_WATERSHED = 4

MAX_MARKERS = 200
_JIT = dict(nogil=True, cache=True)


# ------------------------------------------------------------------------------ thresholds
@numba.njit(**_JIT)
def _thresholds(smin, smax, n_levels, mode, as_f32):
    """photutils' thresholds (levels 1..n_levels of n_levels + 2), as NumPy computes them."""
    num = n_levels + 2
    out = np.empty(n_levels)
    if as_f32:
        f = np.float32
        lo = f(smin)
        hi = f(smax)
        delta = f(hi - lo)
        step = f(delta / f(num - 1))
        rng = f(hi - lo)
        ratio = f(hi / lo) if mode == MODE_EXPONENTIAL else f(1.0)
        for k in range(1, num - 1):
            if step == 0:
                lin = f(f(f(k) / f(num - 1)) * delta) + lo
            else:
                lin = f(f(f(k) * step) + lo)
            if mode == MODE_LINEAR:
                out[k - 1] = lin
                continue
            norm = f(f(lin - lo) / rng)
            if mode == MODE_EXPONENTIAL:
                out[k - 1] = f(lo * f(ratio ** norm))
            else:
                s = np.float64(f(np.sinh(f(norm / f(0.25))))) / np.sinh(4.0)
                out[k - 1] = s * np.float64(rng) + np.float64(lo)
        return out
    lo = np.float64(smin)
    hi = np.float64(smax)
    delta = hi - lo
    step = delta / (num - 1)
    for k in range(1, num - 1):
        lin = (k / (num - 1)) * delta + lo if step == 0 else k * step + lo
        if mode == MODE_LINEAR:
            out[k - 1] = lin
            continue
        norm = (lin - lo) / (hi - lo)
        if mode == MODE_EXPONENTIAL:
            out[k - 1] = lo * (hi / lo) ** norm
        else:
            out[k - 1] = np.sinh(norm / 0.25) / np.sinh(4.0) * (hi - lo) + lo
    return out


# ------------------------------------------------------------------------------ labelling
@numba.njit(**_JIT)
def _find(parent, a):
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


@numba.njit(**_JIT)
def _ccl(fg, h, w, conn8, labels, parent):
    """Raster-order labels of ``fg`` (flat, h*w) into ``labels``; returns the count."""
    n = 0
    for j in range(h):
        for i in range(w):
            p = j * w + i
            labels[p] = 0
            if not fg[p]:
                continue
            lab = 0
            if i > 0 and labels[p - 1] > 0:
                lab = labels[p - 1]
            if j > 0:
                lo = i - 1 if (conn8 and i > 0) else i
                hi = i + 1 if (conn8 and i < w - 1) else i
                for ii in range(lo, hi + 1):
                    nl = labels[p - w - i + ii]
                    if nl > 0:
                        if lab == 0:
                            lab = nl
                        elif nl != lab:
                            ra = _find(parent, lab)
                            rb = _find(parent, nl)
                            if ra < rb:
                                parent[rb] = ra
                                lab = ra
                            elif rb < ra:
                                parent[ra] = rb
                                lab = rb
            if lab == 0:
                n += 1
                parent[n] = n
                lab = n
            labels[p] = lab
    count = 0
    final = np.zeros(n + 1, dtype=np.int32)
    for k in range(1, n + 1):
        r = _find(parent, k)
        if r == k:
            count += 1
            final[k] = count
        else:
            final[k] = final[r]
    for p in range(h * w):
        if labels[p] > 0:
            labels[p] = final[labels[p]]
    return count


@numba.njit(**_JIT)
def _detect_level(img, seg, h, w, thr, n_pixels, conn8, labels, parent, counts):
    """photutils' ``_detect_sources`` at one level; returns the number of kept components.

    Kept components are renumbered 1..n in raster order (only the order matters later).
    """
    npx = h * w
    fg = np.empty(npx, dtype=np.bool_)
    for p in range(npx):
        fg[p] = seg[p] and img[p] > thr
    n = _ccl(fg, h, w, conn8, labels, parent)
    if n == 0:
        return 0
    for k in range(n + 1):
        counts[k] = 0
    for p in range(npx):
        if labels[p] > 0:
            counts[labels[p]] += 1
    kept = 0
    remap = np.zeros(n + 1, dtype=np.int32)
    for k in range(1, n + 1):
        if counts[k] >= n_pixels:
            kept += 1
            remap[k] = kept
    for p in range(npx):
        if labels[p] > 0:
            labels[p] = remap[labels[p]]
    return kept


@numba.njit(**_JIT)
def _merge_markers(lower, n_lower, upper, h, w, conn8, out, parent):
    """photutils' ``make_marker_segment``; returns the new marker count (labels in ``out``).

    Returns -1 when no component of ``lower`` splits (``lower`` stays the markers).
    """
    npx = h * w
    first = np.zeros(n_lower + 1, dtype=np.int32)
    split = np.zeros(n_lower + 1, dtype=np.bool_)
    any_split = False
    for p in range(npx):
        lab = lower[p]
        up = upper[p]
        if lab > 0 and up > 0:
            if first[lab] == 0:
                first[lab] = up
            elif first[lab] != up and not split[lab]:
                split[lab] = True
                any_split = True
    if not any_split:
        return -1
    fg = np.empty(npx, dtype=np.bool_)
    for p in range(npx):
        lab = lower[p]
        if lab == 0:
            fg[p] = False
        elif split[lab]:
            fg[p] = upper[p] > 0
        else:
            fg[p] = True
    return _ccl(fg, h, w, conn8, out, parent)


@numba.njit(**_JIT)
def _make_markers(img, seg, h, w, thresholds, n_pixels, conn8, markers):
    """Markers over all levels into ``markers``; returns their count (0 or 1: no deblending)."""
    npx = h * w
    parent = np.empty(npx // 2 + 2, dtype=np.int32)
    counts = np.empty(npx + 1, dtype=np.int64)
    upper = np.empty(npx, dtype=np.int32)
    merged = np.empty(npx, dtype=np.int32)
    n_lower = _detect_level(img, seg, h, w, thresholds[0], n_pixels, conn8, markers, parent,
                            counts)
    if n_lower <= 1:
        n_lower = 0
    for k in range(1, thresholds.shape[0]):
        n_up = _detect_level(img, seg, h, w, thresholds[k], n_pixels, conn8, upper, parent,
                             counts)
        if n_up <= 1:
            continue
        if n_lower == 0:
            for p in range(npx):
                markers[p] = upper[p]
            n_lower = n_up
            continue
        n_new = _merge_markers(markers, n_lower, upper, h, w, conn8, merged, parent)
        if n_new >= 0:
            for p in range(npx):
                markers[p] = merged[p]
            n_lower = n_new
    return n_lower


# ------------------------------------------------------------------------------ watershed
@numba.njit(**_JIT)
def _smaller(hv, ha, a, b):
    if hv[a] != hv[b]:
        return hv[a] < hv[b]
    return ha[a] < ha[b]


@numba.njit(**_JIT)
def _swap(hv, ha, hi, a, b):
    hv[a], hv[b] = hv[b], hv[a]
    ha[a], ha[b] = ha[b], ha[a]
    hi[a], hi[b] = hi[b], hi[a]


@numba.njit(**_JIT)
def _push(hv, ha, hi, size, value, age, index):
    hv[size] = value
    ha[size] = age
    hi[size] = index
    child = size
    while child > 0:
        parent = (child + 1) // 2 - 1
        if _smaller(hv, ha, child, parent):
            _swap(hv, ha, hi, child, parent)
            child = parent
        else:
            break
    return size + 1


@numba.njit(**_JIT)
def _pop(hv, ha, hi, size):
    index = hi[0]
    size -= 1
    if size > 0:
        hv[0] = hv[size]
        ha[0] = ha[size]
        hi[0] = hi[size]
        i = 0
        while True:
            smallest = i
            left = 2 * i + 1
            if left < size and _smaller(hv, ha, left, smallest):
                smallest = left
            if left + 1 < size and _smaller(hv, ha, left + 1, smallest):
                smallest = left + 1
            if smallest == i:
                break
            _swap(hv, ha, hi, i, smallest)
            i = smallest
    return index, size


@numba.njit(**_JIT)
def _flood(img, seg, h, w, conn8, labels, seeds, flux):
    """scikit-image's priority flood of ``-img`` inside ``seg`` from the pixels ``seeds``.

    ``seeds`` marks the labelled pixels pushed first (age 0, raster order); every unlabelled
    ``seg`` pixel reached gets the label of the pixel that reached it, and its value is added
    to ``flux[label]``.
    """
    npx = h * w
    hv = np.empty(npx)
    ha = np.empty(npx, dtype=np.int64)
    hi = np.empty(npx, dtype=np.int64)
    size = 0
    for p in range(npx):
        if seeds[p]:
            size = _push(hv, ha, hi, size, -img[p], 0, p)
    # scikit-image's neighbour order: N, W, E, S, then NW, NE, SW, SE
    dy = np.array([-1, 0, 0, 1, -1, -1, 1, 1])
    dx = np.array([0, -1, 1, 0, -1, 1, -1, 1])
    nnb = 8 if conn8 else 4
    age = 1
    while size > 0:
        p, size = _pop(hv, ha, hi, size)
        j = p // w
        i = p - j * w
        for k in range(nnb):
            jj = j + dy[k]
            ii = i + dx[k]
            if jj < 0 or ii < 0 or jj >= h or ii >= w:
                continue
            q = jj * w + ii
            if not seg[q] or labels[q] > 0:
                continue
            age += 1
            labels[q] = labels[p]
            flux[labels[q]] += img[q]
            size = _push(hv, ha, hi, size, -img[q], age, q)


@numba.njit(**_JIT)
def _hole_border(seg, h, w, conn8, labels, hole):
    """Labelled pixels with an unlabelled ``seg`` neighbour (the seeds of a re-flood)."""
    npx = h * w
    seeds = np.zeros(npx, dtype=np.bool_)
    dy = np.array([-1, 0, 0, 1, -1, -1, 1, 1])
    dx = np.array([0, -1, 1, 0, -1, 1, -1, 1])
    nnb = 8 if conn8 else 4
    for q in range(npx):
        if not hole[q]:
            continue
        j = q // w
        i = q - j * w
        for k in range(nnb):
            jj = j + dy[k]
            ii = i + dx[k]
            if jj < 0 or ii < 0 or jj >= h or ii >= w:
                continue
            p = jj * w + ii
            if seg[p] and labels[p] > 0:
                seeds[p] = True
    return seeds


@numba.njit(**_JIT)
def _apply_contrast(img, seg, h, w, conn8, labels, n_markers, source_sum, contrast):
    """Watershed, then drop the faintest region while any is below ``contrast``.

    photutils reruns the whole watershed from the remaining regions after each removal; the
    regions that remain are seeds and never change, so only the removed region is re-flooded
    here, from the labelled pixels that border it (same pushes and pops in the same order).
    """
    npx = h * w
    flux = np.zeros(n_markers + 1)
    for p in range(npx):
        if labels[p] > 0:
            flux[labels[p]] += img[p]
    seeds = np.empty(npx, dtype=np.bool_)
    for p in range(npx):
        seeds[p] = labels[p] > 0
    _flood(img, seg, h, w, conn8, labels, seeds, flux)
    present = np.zeros(n_markers + 1, dtype=np.bool_)
    for p in range(npx):
        if labels[p] > 0:
            present[labels[p]] = True
    hole = np.empty(npx, dtype=np.bool_)
    while True:
        n_present = 0
        worst = -1
        worst_frac = np.inf
        for k in range(1, n_markers + 1):
            if present[k]:
                n_present += 1
                frac = flux[k] / source_sum
                if frac < worst_frac:
                    worst_frac = frac
                    worst = k
        if n_present <= 1 or not (worst_frac < contrast):
            return n_present
        for p in range(npx):
            hole[p] = labels[p] == worst
            if hole[p]:
                labels[p] = 0
        present[worst] = False
        flux[worst] = 0.0
        _flood(img, seg, h, w, conn8, labels, _hole_border(seg, h, w, conn8, labels, hole),
               flux)


@numba.njit(**_JIT)
def _deblend_one(data, segm, lab, y0, y1, x0, x1, n_pixels, conn8, n_levels, contrast, mode,
                 as_f32, out):
    """Deblend one source; writes local labels 1..m into ``out`` (flat bbox) and returns
    ``(m, flags)`` with ``m = 0`` when the source is not deblended."""
    h = y1 - y0
    w = x1 - x0
    npx = h * w
    img = np.empty(npx)
    seg = np.empty(npx, dtype=np.bool_)
    smin = np.inf
    smax = -np.inf
    ssum = 0.0
    for j in range(h):
        for i in range(w):
            p = j * w + i
            v = np.float64(data[y0 + j, x0 + i])
            img[p] = v
            inside = segm[y0 + j, x0 + i] == lab
            seg[p] = inside
            out[p] = 0
            if inside and not math.isnan(v):
                smin = min(smin, v)
                smax = max(smax, v)
                ssum += v
    flags = 0
    if as_f32:
        ssum = np.float64(np.float32(ssum))
    if not (smin < smax):
        return 0, flags
    if mode == MODE_EXPONENTIAL and smin <= 0:
        flags |= W_NONPOSMIN
        mode = MODE_LINEAR
    markers = np.empty(npx, dtype=np.int32)
    n = _make_markers(img, seg, h, w, _thresholds(smin, smax, n_levels, mode, as_f32),
                      n_pixels, conn8, markers)
    if mode != MODE_LINEAR and n > MAX_MARKERS:
        flags |= W_NMARKERS
        n = _make_markers(img, seg, h, w,
                          _thresholds(smin, smax, n_levels, MODE_LINEAR, as_f32), n_pixels,
                          conn8, markers)
    if n <= 1:
        return 0, flags
    m = _apply_contrast(img, seg, h, w, conn8, markers, n, ssum, contrast)
    for p in range(npx):
        if seg[p] and markers[p] == 0:
            return 0, flags | E_WATERSHED
    if m <= 1:
        return 0, flags
    remap = np.zeros(n + 1, dtype=np.int32)
    count = 0
    for p in range(npx):
        lab_p = markers[p]
        if lab_p > 0 and remap[lab_p] == 0:
            remap[lab_p] = -1
    for k in range(1, n + 1):
        if remap[k] == -1:
            count += 1
            remap[k] = count
    for p in range(npx):
        if markers[p] > 0:
            out[p] = remap[markers[p]]
    return count, flags


@numba.njit(parallel=True, **_JIT)
def deblend_cpu(data, segm, labels, bbox, offsets, n_pixels, conn8, n_levels, contrast, mode,
                as_f32):
    """Deblend the sources ``labels`` (inclusive boxes ``bbox`` rows ymin, ymax, xmin, xmax).

    Parameters
    ----------
    data : ndarray, shape (ny, nx)
        The (convolved) detection image.
    segm : ndarray of int, shape (ny, nx)
    labels : ndarray of int, shape (n,)
    bbox : ndarray of int64, shape (n, 4)
    offsets : ndarray of int64, shape (n + 1,)
        Start of each source's slice in the output buffer (bbox areas, cumulated).

    Returns
    -------
    local : ndarray of int32, shape (offsets[-1],)
        Local labels (1..m) of each source's box, raster order; 0 outside its children.
    n_children : ndarray of int64, shape (n,)
        ``m`` per source (0: not deblended).
    flags : ndarray of int64, shape (n,)
        ``W_NONPOSMIN | W_NMARKERS | E_WATERSHED`` bits.
    """
    n = labels.shape[0]
    local = np.zeros(offsets[n], dtype=np.int32)
    n_children = np.zeros(n, dtype=np.int64)
    flags = np.zeros(n, dtype=np.int64)
    for k in prange(n):
        m, f = _deblend_one(data, segm, labels[k], bbox[k, 0], bbox[k, 1] + 1, bbox[k, 2],
                            bbox[k, 3] + 1, n_pixels, conn8, n_levels, contrast, mode, as_f32,
                            local[offsets[k]:offsets[k + 1]])
        n_children[k] = m
        flags[k] = f
    return local, n_children, flags


@numba.njit(parallel=True, **_JIT)
def paint_cpu(segm, bbox, offsets, local, base):
    """Write ``base[k] + local label`` over the children of each deblended source (in place)."""
    n = bbox.shape[0]
    for k in prange(n):
        if base[k] < 0:
            continue
        y0 = bbox[k, 0]
        x0 = bbox[k, 2]
        w = bbox[k, 3] + 1 - x0
        h = bbox[k, 1] + 1 - y0
        start = offsets[k]
        for j in range(h):
            for i in range(w):
                v = local[start + j * w + i]
                if v > 0:
                    segm[y0 + j, x0 + i] = base[k] + v
