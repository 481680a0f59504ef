"""Connected-component labelling with labels in raster order of each component's first pixel.

That numbering is :func:`scipy.ndimage.label`'s, so segment maps compare label for label.

CPU (:func:`label_threshold`): one raster pass with a union-find whose roots are always the
smallest provisional label (the component's first pixel), a second pass resolving roots to
consecutive labels, and an optional minimum-size filter with renumbering. Thresholding and the
mask are fused into the first pass.

CUDA (:func:`cuda_label_kernels`): Playne-Hawick union-find over flat pixel indices with
``atomic.min`` (a root is the smallest flat index of its component, i.e. its first pixel in
raster order), followed by path compression; the host side ranks the roots with a cumulative
sum to obtain the same numbering.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from numba import cuda

from ..targets import cuda_module_for, device_function, rebind

__all__ = [
    "label_threshold",
    "label_bool",
    "filter_small",
    "label_statistics",
    "relabel_consecutive",
    "cuda_label_kernels",
]

_JIT = dict(nogil=True, cache=True)


@numba.njit(**_JIT)
def _find(parent, a):
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


@numba.njit(**_JIT)
def _union(parent, a, b):
    ra = _find(parent, a)
    rb = _find(parent, b)
    if ra < rb:
        parent[rb] = ra
        return ra
    if rb < ra:
        parent[ra] = rb
        return rb
    return ra


@numba.njit(**_JIT)
def _is_fg(data, thresh, scalar_thr, mask, use_mask, j, i):
    v = data[j, i]
    t = thresh[0, 0] if scalar_thr else thresh[j, i]
    if not (v > t):
        return False
    if use_mask and mask[j, i]:
        return False
    return True


@numba.njit(**_JIT)
def _merge_neighbours(labels, parent, j, i, nx, conn8):
    lab = 0
    if i > 0 and labels[j, i - 1] > 0:
        lab = labels[j, i - 1]
    if j > 0:
        if conn8:
            lo = i - 1 if i > 0 else i
            hi = i + 1 if i < nx - 1 else i
        else:
            lo = i
            hi = i
        for ii in range(lo, hi + 1):
            nl = labels[j - 1, ii]
            if nl > 0:
                if lab == 0:
                    lab = nl
                elif nl != lab:
                    lab = _union(parent, lab, nl)
    return lab


@numba.njit(**_JIT)
def _resolve(labels, parent, n_prov):
    """Map provisional labels to consecutive final labels in order of their roots."""
    final = np.zeros(n_prov + 1, dtype=np.int32)
    count = 0
    for k in range(1, n_prov + 1):
        r = _find(parent, k)
        if r == k:
            count += 1
            final[k] = count
        else:
            final[k] = final[r]
    ny, nx = labels.shape
    for j in range(ny):
        for i in range(nx):
            v = labels[j, i]
            if v > 0:
                labels[j, i] = final[v]
    return count


@numba.njit(**_JIT)
def _assign(labels, parent, n, j, i, nx, conn8):
    """Label foreground pixel ``[j, i]`` from its labelled neighbours, or start label ``n + 1``;
    returns the number of provisional labels."""
    lab = _merge_neighbours(labels, parent, j, i, nx, conn8)
    if lab == 0:
        n += 1
        parent[n] = n
        lab = n
    labels[j, i] = lab
    return n


@numba.njit(**_JIT)
def label_threshold(data, thresh, scalar_thr, mask, use_mask, conn8):
    """Label the pixels with ``data > thresh`` (and not masked).

    Parameters
    ----------
    data : ndarray, shape (ny, nx)
    thresh : ndarray, shape (ny, nx) or (1, 1)
        Pixel-wise threshold, or a scalar in a (1, 1) array when ``scalar_thr``.
    scalar_thr : bool
    mask : ndarray of bool, shape (ny, nx) or (1, 1)
        True where a pixel is excluded; read only when ``use_mask``.
    use_mask : bool
    conn8 : bool
        8-connectivity (else 4).

    Returns
    -------
    labels : ndarray of int32, shape (ny, nx)
    n_labels : int
    """
    ny, nx = data.shape
    labels = np.zeros((ny, nx), dtype=np.int32)
    parent = np.empty(ny * nx // 2 + 2, dtype=np.int32)
    n = 0
    for j in range(ny):
        for i in range(nx):
            if not _is_fg(data, thresh, scalar_thr, mask, use_mask, j, i):
                continue
            n = _assign(labels, parent, n, j, i, nx, conn8)
    return labels, _resolve(labels, parent, n)


@numba.njit(**_JIT)
def label_bool(image, conn8):
    """Label the True pixels of a boolean image (see :func:`label_threshold`)."""
    ny, nx = image.shape
    labels = np.zeros((ny, nx), dtype=np.int32)
    parent = np.empty(ny * nx // 2 + 2, dtype=np.int32)
    n = 0
    for j in range(ny):
        for i in range(nx):
            if not image[j, i]:
                continue
            n = _assign(labels, parent, n, j, i, nx, conn8)
    return labels, _resolve(labels, parent, n)


@numba.njit(**_JIT)
def label_statistics(labels, n_labels):
    """Area and inclusive bounding box of every label 1..n_labels (one serial pass).

    Returns
    -------
    stats : ndarray of int64, shape (n_labels + 1, 5)
        Columns: area, ymin, ymax, xmin, xmax (row 0 unused).
    """
    ny, nx = labels.shape
    out = np.zeros((n_labels + 1, 5), dtype=np.int64)
    for k in range(n_labels + 1):
        out[k, 1] = ny
        out[k, 2] = -1
        out[k, 3] = nx
        out[k, 4] = -1
    for j in range(ny):
        for i in range(nx):
            v = labels[j, i]
            if v > 0:
                out[v, 0] += 1
                if j < out[v, 1]:
                    out[v, 1] = j
                out[v, 2] = j
                if i < out[v, 3]:
                    out[v, 3] = i
                if i > out[v, 4]:
                    out[v, 4] = i
    return out


@numba.njit(**_JIT)
def _apply_map(labels, lut):
    ny, nx = labels.shape
    for j in range(ny):
        for i in range(nx):
            v = labels[j, i]
            if v > 0:
                labels[j, i] = lut[v]


@numba.njit(**_JIT)
def filter_small(labels, n_labels, stats, n_pixels):
    """Remove labels with fewer than ``n_pixels`` pixels and renumber the rest in order.

    ``labels`` is modified in place. Returns ``(n_kept, kept_stats)`` where ``kept_stats``
    holds the rows of ``stats`` for the kept labels (row 0 unused).
    """
    lut = np.zeros(n_labels + 1, dtype=np.int32)
    count = 0
    for k in range(1, n_labels + 1):
        if stats[k, 0] >= n_pixels:
            count += 1
            lut[k] = count
    kept = np.zeros((count + 1, 5), dtype=np.int64)
    for k in range(1, n_labels + 1):
        if lut[k] > 0:
            kept[lut[k]] = stats[k]
    if count != n_labels:
        _apply_map(labels, lut)
    return count, kept


@numba.njit(**_JIT)
def relabel_consecutive(labels, max_label):
    """Renumber the labels present in ``labels`` to 1..n in increasing order (in place).

    Returns ``(n, lut)`` where ``lut[old] = new``.
    """
    present = np.zeros(max_label + 1, dtype=np.bool_)
    ny, nx = labels.shape
    for j in range(ny):
        for i in range(nx):
            v = labels[j, i]
            if v > 0:
                present[v] = True
    lut = np.zeros(max_label + 1, dtype=np.int32)
    n = 0
    for k in range(1, max_label + 1):
        if present[k]:
            n += 1
            lut[k] = n
    _apply_map(labels, lut)
    return n, lut


# --------------------------------------------------------------------------------------------
# CUDA (device and simulator)
# --------------------------------------------------------------------------------------------


def _cuda_find(parent, a):
    while parent[a] != a:
        a = parent[a]
    return a


def _cuda_union(parent, a, b):
    done = False
    while not done:
        a = find(parent, a)
        b = find(parent, b)
        if a < b:
            old = cuda.atomic.min(parent, b, a)
            done = old == b
            b = old
        elif b < a:
            old = cuda.atomic.min(parent, a, b)
            done = old == a
            a = old
        else:
            done = True


def _init_kernel(fg, parent):
    k = cuda.grid(1)
    if k < parent.shape[0]:
        parent[k] = k if fg[k] else -1


def _merge_kernel(fg, parent, ny, nx, conn8):
    k = cuda.grid(1)
    if k >= parent.shape[0] or not fg[k]:
        return
    j = k // nx
    i = k - j * nx
    if i > 0 and fg[k - 1]:
        union(parent, k, k - 1)
    if j > 0:
        up = k - nx
        if fg[up]:
            union(parent, k, up)
        if conn8:
            if i > 0 and fg[up - 1]:
                union(parent, k, up - 1)
            if i < nx - 1 and fg[up + 1]:
                union(parent, k, up + 1)


def _compress_kernel(parent):
    k = cuda.grid(1)
    if k < parent.shape[0] and parent[k] >= 0:
        parent[k] = find(parent, k)


def _count_kernel(labels, counts):
    k = cuda.grid(1)
    if k < labels.shape[0] and labels[k] > 0:
        cuda.atomic.add(counts, labels[k], 1)


def _bbox_kernel(labels, nx, ymin, ymax, xmin, xmax):
    k = cuda.grid(1)
    if k < labels.shape[0]:
        v = labels[k]
        if v > 0:
            j = k // nx
            i = k - j * nx
            cuda.atomic.min(ymin, v, j)
            cuda.atomic.max(ymax, v, j)
            cuda.atomic.min(xmin, v, i)
            cuda.atomic.max(xmax, v, i)


@functools.lru_cache(maxsize=None)
def cuda_label_kernels(target: str):
    """CUDA kernels for labelling, compiled for ``cuda`` or ``cudasim``.

    Returns a namespace-like dict with ``init(fg, parent)``, ``merge(fg, parent, ny, nx,
    conn8)``, ``compress(parent)``, ``count(labels, counts)`` and ``bbox(labels, nx, ymin,
    ymax, xmin, xmax)``; all arrays are flat (raster order), ``parent`` and labels int32.
    """
    module = cuda_module_for(target)
    find = device_function(_cuda_find, target)
    union = device_function(_cuda_union, target, {"find": find})
    names = {"find": find, "union": union}
    return {
        "init": module.jit(rebind(_init_kernel, names)),
        "merge": module.jit(rebind(_merge_kernel, names)),
        "compress": module.jit(rebind(_compress_kernel, names)),
        "count": module.jit(_count_kernel),
        "bbox": module.jit(_bbox_kernel),
    }
