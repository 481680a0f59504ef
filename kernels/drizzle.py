"""Drizzle kernels: scatter input pixels onto output accumulators.

The per-pixel maths is in :mod:`._pixel_math`. This module adds the two drivers and the
accumulator update (``deposit``) of each target:

* CPU (``numba.njit(parallel=True)``): input pixels are processed in tiles; tiles whose output
  footprints (bounding boxes) are disjoint form a *wave* and run in parallel without atomics.
  The result is deterministic and independent of the number of threads. There is one driver
  per kernel, compiled the first time that kernel is used (and cached on disk). The
  accumulators are drizzlepac's own: a float32 running weighted mean and a float32 weight,
  updated in place as ``cdrizzlebox.c``'s ``update_data`` does (a pixel without weight takes
  the drop's value; else ``(mean * w + dw * d) / (w + dw)`` with the products and their sum
  in float32, divided in float64), so no finishing is needed and zero-weight drops leave
  drizzlepac's "last value" behind by themselves.
* CUDA (real device or simulator): one thread per input pixel; a running mean cannot be
  updated under atomics, so the accumulators are float64 sums ``num`` = sum(w*d) and ``den``
  = sum(w), and ``zidx`` (int32): the largest flat input index that reached the pixel with
  zero weight, plus one (0: none), which reproduces drizzlepac's "last zero-weight value"
  rule; a finishing kernel divides.

Accumulators are the shape of the output *window* ``ip[I_WY0]:ip[I_WY1],
ip[I_WX0]:ip[I_WX1]`` of the full ``(ony, onx)`` frame (coordinates and clipping stay
full-frame, only the accumulator index is window-relative); with them ``var`` = sum(w**2 *
err**2) (float64, optional), ``outdq`` (int32 OR, optional) and ``ctx`` (int32 bit plane).
The per-pixel functions pass the accumulators through to ``deposit`` unread, so each target's
``deposit`` names them: ``(mean, weight, var, outdq, init, ctx)`` on the CPU (``mean``
holds the int32 bits of the float32 mean XOR ``init[0]``, the bits of the initial value, so
zeroed storage reads as the initial value), ``(num, den, var, outdq, zidx, ctx)`` on CUDA.
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np
from numba import cuda, prange

from . import _pixel_math as pm
from .targets import (
    cached_driver,
    compile_namespace,
    cuda_module_for,
    device_function,
    rebind,
)

__all__ = [
    "KERNEL_IDS",
    "copy_spans_cpu",
    "cuda_drizzle_kernels",
    "drizzle_cpu",
    "finalize_cpu",
    "footprint_boxes",
    "lanczos_lut",
    "pixmap_cpu",
    "row_spans",
    "tile_waves",
]

KERNEL_IDS = {
    "square": pm.K_SQUARE,
    "turbo": pm.K_TURBO,
    "point": pm.K_POINT,
    "gaussian": pm.K_GAUSSIAN,
    "tophat": pm.K_TOPHAT,
    "lanczos2": pm.K_LANCZOS2,
    "lanczos3": pm.K_LANCZOS3,
}


@functools.lru_cache(maxsize=8)
def lanczos_lut(order: int, n: int = 512, space: float = 0.01) -> np.ndarray:
    """drizzlepac's float32 Lanczos look-up table (``L[k]`` at offset ``k * float32(space)``).

    Cached; the returned array is read-only.
    """
    delta = np.float32(space)
    lut = np.zeros(n, dtype=np.float32)
    lut[0] = 1.0
    for k in range(1, n):
        p = np.float32(np.pi * k * float(delta))
        if p < np.pi * order:
            q = np.float32(p / order)
            lut[k] = np.float32((np.sin(p) / p) * np.sin(q) / q)
    lut.flags.writeable = False
    return lut


# --------------------------------------------------------------------------------------------
# CPU target
# --------------------------------------------------------------------------------------------


def _deposit_cpu(mean, weight, var, outdq, init, ctx, jj, ii, drop_w, d, e2, dqv, scan, ctxbit,
                 flags):
    vc = weight[jj, ii]
    total = np.float32(vc + drop_w)
    if vc == 0.0:
        mean[jj, ii] = np.float32(d).view(np.int32) ^ init[0]
    elif total != 0.0:
        m = np.int32(mean[jj, ii] ^ init[0]).view(np.float32)
        num = np.float32(np.float32(m * vc) + np.float32(drop_w * d))
        mean[jj, ii] = np.float32(np.float64(num) / np.float64(total)).view(np.int32) ^ init[0]
    weight[jj, ii] = total
    if drop_w != 0.0 and flags & 2:
        var[jj, ii] += np.float64(drop_w) * np.float64(drop_w) * e2
    if drop_w > 0.0:
        ctx[jj, ii] |= ctxbit
        if flags & 4:
            outdq[jj, ii] |= dqv


_deposit_cpu_inline = numba.njit(error_model="numpy", nogil=True, inline="always")(_deposit_cpu)


def _float_bits(value):
    """int32 bits of float32 ``value`` (CPU and CUDA simulator)."""
    return np.float32(value).view(np.int32)


def _float_bits_cuda(value):
    return libdevice.float_as_int(value)  # noqa: F821


_float_bits_cpu = numba.njit(nogil=True, inline="always")(_float_bits)
_CPU_EXTRA = {"deposit": _deposit_cpu_inline, "float_bits": _float_bits_cpu}

#: Per-pixel functions inlined into their callers on the CPU (each driver holds one kernel, so
#: one copy of each; inlining ``drop_square`` makes the square kernel 1.4x faster).
_CPU_INLINE = ("nint", "table_row", "table_map_row", "table_map", "map_offset", "edge_slope",
               "edge_area", "boxer", "clamp_range", "input_value", "pixel_inputs", "drop_square",
               "square_pixel", "pixel_centre", "centre_window", "point_drop", "turbo_overlap",
               "turbo_row", "turbo_drop", "gaussian_factor", "gaussian_drop", "tophat_drop",
               "lanczos_drop")

# The helpers shared by every kernel (no kernel code: they compile in well under a second).
_cpu = compile_namespace(pm.DRIZZLE_FUNCTIONS, "cpu", extra=_CPU_EXTRA,
                         inline=_CPU_INLINE)
_map_offset_cpu = _cpu.map_offset
_table_map_cpu = _cpu.table_map


def _drizzle_tiles(tiles, data, weight, err, dq, fp, ip, tx, ty, ex, ey, lut,
                   mean, out_weight, var, outdq, init, ctx, ctxbit):
    for t in prange(tiles.shape[0]):
        for j in range(tiles[t, 0], tiles[t, 1]):
            kernel_span(j, tiles[t, 2], tiles[t, 3], data, weight, err, dq, fp, ip,  # noqa: F821
                        tx, ty, ex, ey, lut, mean, out_weight, var, outdq, init, ctx, ctxbit)


def _drizzle_tiles_cpu(fp, ip):
    """The parallel CPU driver for these kernel parameters, compiled on first use (and cached
    on disk): the shared-corner square span, ``pixel_span`` over ``square_pixel``, or
    ``centred_span`` over one centred kernel's ``*_drop``."""
    kernel = int(ip[pm.I_KERNEL])
    if pm.shares_corners(kernel, fp):
        return _tiles_driver("square_span")
    return _tiles_driver(pm.CENTRED_PIXEL_FUNCTIONS.get(kernel, "square_pixel"))


@functools.cache
def _tiles_driver(unit: str):
    if unit == "square_span":
        aliases = {"kernel_span": "square_span"}
    elif unit == "square_pixel":
        aliases = {"kernel_pixel": unit, "kernel_span": "pixel_span"}
    else:
        aliases = {"kernel_drop": unit, "kernel_span": "centred_span"}
    ns = compile_namespace(pm.DRIZZLE_FUNCTIONS, "cpu", extra=_CPU_EXTRA,
                           inline=_CPU_INLINE, aliases=aliases)
    return cached_driver(rebind(_drizzle_tiles, {"kernel_span": ns.kernel_span}),
                         variant=unit, parallel=True)


@numba.njit(parallel=True, nogil=True, cache=True)
def finalize_cpu(mean, weight, init_bits, fill, has_fill, out_sci, out_sci_bits, out_wht, span,
                 outside):
    """Write the output SCI and WHT (float32) from the CPU accumulators, in parallel over rows.

    ``mean`` (int32) holds the bits of each pixel's running mean XOR ``init_bits``, the bits
    of the initial value, and ``weight`` (float32) its weight (see the module notes); SCI is
    the mean, or the fill value where the weight is 0 and ``has_fill``. ``out_sci_bits`` is an
    int32 view of ``out_sci``. The outputs may be the accumulators themselves (``out_sci_bits``
    ``mean``, ``out_wht`` ``weight``; with ``init_bits`` 0): the fill value is then written in
    place.
    ``span`` (int64, ``(ny, 2)``) holds each row's covered columns ``[s0, s1)`` (see
    :func:`row_spans`): outside them no input reached, so SCI is the fill value, else the
    initial value, and WHT 0. Those pixels are written only when ``outside`` is True (the
    caller may hand outputs already holding them, e.g. zeroed pages when both values are 0).
    """
    ny, nx = out_sci.shape
    empty = np.float32(0.0)
    for jj in prange(ny):
        s0 = min(max(span[jj, 0], 0), nx)
        s1 = max(min(span[jj, 1], nx), s0)
        for ii in range(s0, s1):
            w = weight[jj, ii]
            if has_fill and w == 0.0:
                out_sci[jj, ii] = fill
            else:
                out_sci_bits[jj, ii] = mean[jj, ii] ^ init_bits
            out_wht[jj, ii] = w
        if outside:
            for ii in range(s0):
                if has_fill:
                    out_sci[jj, ii] = fill
                else:
                    out_sci_bits[jj, ii] = init_bits
                out_wht[jj, ii] = empty
            for ii in range(s1, nx):
                if has_fill:
                    out_sci[jj, ii] = fill
                else:
                    out_sci_bits[jj, ii] = init_bits
                out_wht[jj, ii] = empty


@numba.njit(parallel=True, nogil=True, cache=True)
def copy_spans_cpu(src, dst, span):
    """``dst[j, s0:s1] = src[j, s0:s1]`` for each row's span ``span[j] = (s0, s1)`` (clipped
    to the rows' width), in parallel over rows."""
    ny, nx = src.shape
    for j in prange(ny):
        s0 = min(max(span[j, 0], 0), nx)
        s1 = min(span[j, 1], nx)
        for i in range(s0, s1):
            dst[j, i] = src[j, i]


@numba.njit(nogil=True, cache=True)
def row_spans(boxes, pad, y0, ny, x0, nx):
    """Columns each row of an output window can receive drops in, from footprint boxes.

    Parameters
    ----------
    boxes : ndarray of float64, shape (n, 4)
        ``(x0, x1, y0, y1)`` full-frame output boxes (:func:`footprint_boxes`); rows holding
        a non-finite value are skipped.
    pad : float
        Widening of every box on each side, output pixels; a box then covers columns
        ``floor(x0 - pad) .. ceil(x1 + pad)`` and rows ``floor(y0 - pad) .. ceil(y1 + pad)``,
        the rounding ``TileGrid.touched`` uses.
    y0, ny, x0, nx : int
        The window: full-frame rows ``[y0, y0 + ny)``, columns ``[x0, x0 + nx)``.

    Returns
    -------
    ndarray of int64, shape (ny, 2)
        Window-relative ``[s0, s1)`` per row: the union (as one interval) of the boxes that
        cover the row; ``(nx, 0)`` for a row no box covers.
    """
    span = np.empty((ny, 2), dtype=np.int64)
    for r in range(ny):
        span[r, 0] = nx
        span[r, 1] = 0
    for t in range(boxes.shape[0]):
        bx0 = boxes[t, 0]
        bx1 = boxes[t, 1]
        by0 = boxes[t, 2]
        by1 = boxes[t, 3]
        if not (math.isfinite(bx0) and math.isfinite(bx1) and math.isfinite(by0)
                and math.isfinite(by1)):
            continue
        a = max(math.floor(by0 - pad) - y0, 0)
        b = min(math.ceil(by1 + pad) + 1 - y0, ny)
        c0 = max(math.floor(bx0 - pad) - x0, 0)
        c1 = min(math.ceil(bx1 + pad) + 1 - x0, nx)
        if c0 >= c1:
            continue
        for r in range(a, b):
            span[r, 0] = min(span[r, 0], c0)
            span[r, 1] = max(span[r, 1], c1)
    return span


@numba.njit(parallel=True, nogil=True, cache=True)
def pixmap_cpu(tx, ty, factor, ny, nx):
    """0-based output position of every input pixel centre from the table, ``(ny, nx, 2)``."""
    out = np.empty((ny, nx, 2), dtype=np.float64)
    for j in prange(ny):
        for i in range(nx):
            xo, yo = _table_map_cpu(tx, ty, factor, i + 1.0, j + 1.0)
            out[j, i, 0] = xo - 1.0
            out[j, i, 1] = yo - 1.0
    return out


@numba.njit(parallel=True, nogil=True, cache=True)
def _tile_bboxes_cpu(tiles, fp, ip, tx, ty, ex, ey, margin):
    """Output bounding box ``(x0, x1, y0, y1)`` of every tile, from its mapped perimeter."""
    n = tiles.shape[0]
    out = np.empty((n, 4), dtype=np.float64)
    factor = fp[pm.P_FACTOR]
    ncorner = ex.shape[0] if factor == 0.0 else 1
    h = 0.5
    for t in prange(n):
        xmin = np.inf
        xmax = -np.inf
        ymin = np.inf
        ymax = -np.inf
        j0 = tiles[t, 0]
        j1 = tiles[t, 1] - 1
        i0 = tiles[t, 2]
        i1 = tiles[t, 3] - 1
        npts = 2 * (j1 - j0 + 1) + 2 * (i1 - i0 + 1)
        for p in range(npts):
            if p < j1 - j0 + 1:
                j = j0 + p
                i = i0
                ox = -h
                oy = 0.0
            elif p < 2 * (j1 - j0 + 1):
                j = j0 + p - (j1 - j0 + 1)
                i = i1
                ox = h
                oy = 0.0
            elif p < 2 * (j1 - j0 + 1) + (i1 - i0 + 1):
                j = j0
                i = i0 + p - 2 * (j1 - j0 + 1)
                ox = 0.0
                oy = -h
            else:
                j = j1
                i = i0 + p - 2 * (j1 - j0 + 1) - (i1 - i0 + 1)
                ox = 0.0
                oy = h
            for k in range(ncorner):
                xo, yo = _map_offset_cpu(k, i, j, ox, oy, factor, tx, ty, ex, ey)
                if math.isfinite(xo) and math.isfinite(yo):
                    xmin = min(xmin, xo)
                    xmax = max(xmax, xo)
                    ymin = min(ymin, yo)
                    ymax = max(ymax, yo)
        out[t, 0] = xmin - margin
        out[t, 1] = xmax + margin
        out[t, 2] = ymin - margin
        out[t, 3] = ymax + margin
    return out


def _tiles(ny: int, nx: int, tile: int) -> np.ndarray:
    rows = [(y, min(y + tile, ny)) for y in range(0, ny, tile)]
    cols = [(x, min(x + tile, nx)) for x in range(0, nx, tile)]
    return np.array([(r0, r1, c0, c1) for r0, r1 in rows for c0, c1 in cols], dtype=np.int64)


@numba.njit(nogil=True, cache=True)
def _greedy_colours(b):
    """Colour of each box: the smallest colour no earlier intersecting box has (boxes are
    ``(x0, x1, y0, y1)``, closed intervals)."""
    n = b.shape[0]
    colour = np.full(n, -1, dtype=np.int64)
    taken = np.zeros(n + 1, dtype=np.bool_)
    for t in range(n):
        for u in range(t):
            if (b[u, 0] <= b[t, 1] and b[t, 0] <= b[u, 1]
                    and b[u, 2] <= b[t, 3] and b[t, 2] <= b[u, 3]):
                taken[colour[u]] = True
        c = 0
        while taken[c]:
            c += 1
        colour[t] = c
        for u in range(t):
            taken[colour[u]] = False
    return colour


def tile_waves(boxes: np.ndarray) -> list[np.ndarray]:
    """Group tiles into waves whose output bounding boxes do not intersect (greedy colouring).

    Parameters
    ----------
    boxes : ndarray, shape (n, 4)
        ``(x0, x1, y0, y1)`` per tile; NaN/inf boxes (tiles mapping nowhere) are dropped.

    Returns
    -------
    list of ndarray
        Tile indices of each wave, in order. Tile ``t`` takes the smallest wave that no
        earlier tile intersecting it is in (the waves, hence the order in which an output
        pixel receives its contributions, depend only on the boxes).
    """
    valid = np.isfinite(boxes).all(axis=1)
    idx = np.flatnonzero(valid)
    if not len(idx):
        return []
    colour = _greedy_colours(np.ascontiguousarray(boxes[idx], dtype=np.float64))
    return [idx[colour == c] for c in range(colour.max() + 1)]


def footprint_boxes(shape, fp, tx, ty, ex, ey, *, tile: int = 96):
    """Input tiles and the output bounding box each can reach (host, CPU).

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the input image.
    fp : ndarray of float64
        Kernel parameters (``_pixel_math.P_*``); ``P_FACTOR`` and ``P_HALF_WIDTH`` are used.
    tx, ty, ex, ey : ndarray of float64
        Coordinate table or exact coordinates, as the drizzle kernels take them (host arrays).
    tile : int
        Input tile side in pixels.

    Returns
    -------
    tiles : ndarray of int64, shape (n, 4)
        ``(j0, j1, i0, i1)`` input rows and columns of each tile (end exclusive).
    boxes : ndarray of float64, shape (n, 4)
        ``(x0, x1, y0, y1)`` 0-based output bounding box of each tile's mapped perimeter,
        widened by the kernel half-width plus 2 pixels (so that it holds every output pixel a
        drop of the tile can reach, rounding included); non-finite where the tile maps nowhere.
    """
    ny, nx = shape
    tile = max(8, min(tile, max(ny, nx)))
    tiles = _tiles(ny, nx, tile)
    margin = fp[pm.P_HALF_WIDTH] + 2.0
    ip = np.zeros(pm.N_IPARAMS, dtype=np.int64)
    return tiles, _tile_bboxes_cpu(tiles, fp, ip, tx, ty, ex, ey, margin)


def drizzle_cpu(data, weight, err, dq, fp, ip, tx, ty, ex, ey, lut,
                mean, out_weight, var, outdq, init, ctx, ctxbit, *, tile: int = 96,
                footprint=None) -> None:
    """Drizzle one input image onto the CPU accumulators with the parallel CPU driver.

    ``mean`` (int32, the running mean's bits XOR ``init[0]``) and ``out_weight`` (float32) are
    updated in place as drizzlepac updates its output SCI and weight (see the module notes);
    ``init`` is a one-element int32 array holding the bits of the initial value.
    ``footprint`` is :func:`footprint_boxes`' result when the caller already has it.
    """
    tiles, boxes = (footprint if footprint is not None
                    else footprint_boxes(data.shape, fp, tx, ty, ex, ey, tile=tile))
    # one tile at a time per thread (dynamic scheduling): a wave ends when its slowest thread
    # does, so static blocks would stall whenever a core is shared with other work
    driver = _drizzle_tiles_cpu(fp, ip)
    # tiles whose reach misses the accumulator window (the part of a chip off a sky cell) add
    # nothing: they are left out after the waves are formed, so the others keep their waves
    # and every output pixel receives its drops in the same order
    reaches = _reaches_window(boxes, ip)
    with numba.parallel_chunksize(1):
        for wave in tile_waves(boxes):
            wave = wave[reaches[wave]]
            if wave.size:
                driver(tiles[wave], data, weight, err, dq, fp, ip, tx, ty, ex, ey, lut,
                       mean, out_weight, var, outdq, init, ctx, ctxbit)


def _reaches_window(boxes: np.ndarray, ip: np.ndarray) -> np.ndarray:
    """bool ``(n,)``: tiles whose output box (:func:`footprint_boxes`) meets the accumulator
    window ``[I_WX0, I_WX1) x [I_WY0, I_WY1)``, with a pixel to spare on every side (NaN
    boxes: False)."""
    x0, x1, y0, y1 = (boxes[:, k] for k in range(4))
    with np.errstate(invalid="ignore"):
        return ((x1 >= ip[pm.I_WX0] - 1) & (x0 <= ip[pm.I_WX1])
                & (y1 >= ip[pm.I_WY0] - 1) & (y0 <= ip[pm.I_WY1]))


# --------------------------------------------------------------------------------------------
# CUDA target (real device or simulator)
# --------------------------------------------------------------------------------------------


def _deposit_cuda(num, den, var, outdq, zidx, ctx, jj, ii, drop_w, d, e2, dqv, scan, ctxbit, flags):
    if drop_w != 0.0:
        cuda.atomic.add(num, (jj, ii), np.float64(drop_w) * np.float64(d))
        cuda.atomic.add(den, (jj, ii), np.float64(drop_w))
        if flags & 2:
            cuda.atomic.add(var, (jj, ii), np.float64(drop_w) * np.float64(drop_w) * e2)
    else:
        cuda.atomic.max(zidx, (jj, ii), scan)
    if drop_w > 0.0:
        cuda.atomic.or_(ctx, (jj, ii), ctxbit)
        if flags & 4:
            cuda.atomic.or_(outdq, (jj, ii), dqv)


def _drizzle_kernel(data, weight, err, dq, fp, ip, tx, ty, ex, ey, lut,
                    num, den, var, outdq, zidx, ctx, ctxbit):
    i, j = cuda.grid(2)
    if j < data.shape[0] and i < data.shape[1]:
        drizzle_pixel(i, j, data, weight, err, dq, fp, ip, tx, ty, ex, ey, lut,
                      num, den, var, outdq, zidx, ctx, ctxbit)


def _resolve_kernel(zidx, last_zero, init_bits, data, fp, ip):
    ii, jj = cuda.grid(2)
    if jj < zidx.shape[0] and ii < zidx.shape[1]:
        k = zidx[jj, ii]
        if k > 0:
            value = zero_weight_value(data, k - 1, data.shape[1], fp, ip[I_FLAGS])
            store_zero_weight(jj, ii, value, init_bits, last_zero)
            zidx[jj, ii] = 0


def _finalize_kernel(num, den, last_zero, init_bits, fill, has_fill, out_sci, out_sci_bits, out_wht):
    ii, jj = cuda.grid(2)
    if jj < out_sci.shape[0] and ii < out_sci.shape[1]:
        finish_pixel(jj, ii, num, den, last_zero, init_bits, fill, has_fill, out_sci, out_sci_bits,
                     out_wht)


@functools.cache
def cuda_drizzle_kernels(target: str):
    """Return ``(drizzle, resolve, finalize)`` kernels compiled for ``cuda`` or ``cudasim``."""
    module = cuda_module_for(target)
    deposit = device_function(_deposit_cuda, target)
    if target == "cuda":
        from numba.cuda import libdevice

        float_bits = device_function(_float_bits_cuda, target, {"libdevice": libdevice})
    else:
        float_bits = device_function(_float_bits, target)
    ns = compile_namespace(pm.DRIZZLE_FUNCTIONS, target,
                           extra={"deposit": deposit, "float_bits": float_bits})
    names = dict(vars(ns), I_FLAGS=pm.I_FLAGS)
    drizzle_kernel = module.jit(rebind(_drizzle_kernel, names))
    resolve_kernel = module.jit(rebind(_resolve_kernel, names))
    finalize_kernel = module.jit(rebind(_finalize_kernel, names))
    return drizzle_kernel, resolve_kernel, finalize_kernel
