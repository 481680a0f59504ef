"""Whole-image binary morphology and pixel passes of the HAP catalog preparation (CPU, Numba).

Every function is one or a few raster sweeps with no large temporaries, and gives exactly the
result of the SciPy / NumPy expression it replaces (named in each docstring):

* :func:`taxicab_erosion`: ``scipy.ndimage.binary_erosion`` with the 3x3 cross, ``iterations``
  times, ``border_value=0`` -- a pixel survives when every pixel within city-block distance
  ``iterations`` is set and inside the image (the composition of the crosses is that diamond),
  found with the exact city-block distance transform (Rosenfeld & Pfaltz 1966), computed
  separably (rows, then columns) so that rows and column blocks run in parallel;
* :func:`taxicab_dilation`: ``scipy.ndimage.binary_dilation`` with the 3x3 cross, ``iterations``
  times -- the mirror of :func:`taxicab_erosion` (distance to the nearest set pixel);
* :func:`box_dilate_erode`: ``minimum_filter(maximum_filter(pad(valid), d), e)`` of a binary
  image (constant 0 borders), as sliding-window counts;
* :func:`sliding_max_reflect`: ``scipy.ndimage.maximum_filter(a, size=(s, s))`` (``reflect``
  borders) of a finite float image, as two separable 1-D sliding maxima;
  :func:`relative_max_filter` is ``maximum_filter(a, size=(s, s)) / top`` in one sweep (row
  maxima by window doubling, kept in a ring of ``s`` rows, no image-sized temporary);
* :func:`quadrature_error`: ``sqrt(rms * rms + maximum(data / gain, 0))`` in the image dtype
  (photutils ``calc_total_error``), one sweep instead of five NumPy passes;
* :func:`finite_copy`: ``numpy.nan_to_num`` copy with the image's minimum and maximum;
* :func:`add_valid_count`: ``+= isfinite(img) & (img != 0)``, also on big-endian float32 FITS
  buffers read as raw 32-bit words (no byte-swapped copy);
* :func:`gather_open_interval`: the footprint pixels with ``0 < v < upper`` in raster order;
* :func:`band_counts` / :func:`band_labels`: counts and labels of weight bands (``rel`` above a
  decreasing list of float32 limits);
* :func:`region_rms_pass`: ``rms * sqrt(mask / max_rel)`` of one weight region (HAP's
  per-region rms) with the count and range of its positive values;
* :func:`fill_constant`: ``numpy.full_like`` of a 2-D image, rows filled in parallel;
* :func:`be32_to_native`: the byte swap of big-endian 32-bit FITS pixels into a native array
  (``numpy.asarray(data, dtype=float32)`` of a ``>f4`` buffer), rows in parallel;
* :func:`add_scaled_mask`: ``image += value * mask`` (float32 image and value, uint16 mask);
* :func:`shifted_block_product`: ``scale * fftshift(m)[:hy, :hx] * (block > 0)`` written into
  an output window (the deconvolution's block result), rows in parallel;
* :func:`paint_boxes`: ``maximum_filter(seeds, size=2 half + 1, mode="constant")`` of a binary
  seed image given as seed positions (the union of the seeds' boxes, clipped to the image).

The element-wise passes run rows in parallel (``prange``); each pixel's arithmetic, and every
reduction (integer counts, first extreme in raster order), is the serial sweep's.

Nothing here imports astropy or logs.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

__all__ = ["taxicab_erosion", "taxicab_dilation", "box_dilate_erode", "sliding_max_reflect",
           "relative_max_filter", "quadrature_error", "finite_copy",
           "add_valid_count", "add_valid_count_be32", "gather_open_interval", "band_counts",
           "band_labels", "region_planes", "all_finite", "region_rms_pass", "fill_constant",
           "be32_to_native", "paint_boxes", "add_scaled_mask",
           "shifted_block_product"]

_JIT = dict(nogil=True, cache=True)


@numba.njit(parallel=True, **_JIT)
def taxicab_erosion(image, iterations):
    """Erosion of ``image != 0`` by the 3x3 cross ``iterations`` times, zero border.

    A pixel survives when its city-block distance to the nearest unset pixel (the pixels
    beyond the edges are unset) exceeds ``iterations`` (:func:`_capped_distance`).

    Parameters
    ----------
    image : ndarray, shape (ny, nx)
        Any numeric or bool dtype; non-zero is set.
    iterations : int
        1 .. 254.

    Returns
    -------
    ndarray of bool, shape (ny, nx)
    """
    dist = _capped_distance(image, iterations + 1, False, 0)
    ny, nx = image.shape
    out = np.empty((ny, nx), dtype=np.bool_)
    for j in prange(ny):
        for i in range(nx):
            out[j, i] = dist[j, i] > iterations
    return out


@numba.njit(parallel=True, **_JIT)
def taxicab_dilation(image, iterations):
    """Dilation of ``image != 0`` by the 3x3 cross ``iterations`` times, zero border.

    A pixel is set when its city-block distance to the nearest set pixel (the pixels beyond
    the edges are unset, so they never count) is at most ``iterations``
    (:func:`_capped_distance`): the mirror of :func:`taxicab_erosion`.

    Parameters
    ----------
    image : ndarray, shape (ny, nx)
        Any numeric or bool dtype; non-zero is set.
    iterations : int
        1 .. 254.

    Returns
    -------
    ndarray of bool, shape (ny, nx)
        ``scipy.ndimage.binary_dilation(image, iterations=iterations)``.
    """
    dist = _capped_distance(image, iterations + 1, True, iterations + 1)
    ny, nx = image.shape
    out = np.empty((ny, nx), dtype=np.bool_)
    for j in prange(ny):
        for i in range(nx):
            out[j, i] = dist[j, i] <= iterations
    return out


@numba.njit(parallel=True, **_JIT)
def _capped_distance(image, cap, to_set, outside):
    """uint8 city-block distance of every pixel to the nearest target pixel (set pixels when
    ``to_set``, else unset ones), capped at ``cap`` (<= 255); ``outside`` is the distance
    of the pixels beyond the edges (0: they are targets; ``cap``: they never count).

    The distance is separable: the distance along the row (two sweeps per row, rows in
    parallel), then ``min_k(row distance at k + |j - k|)`` down each column (two sweeps over
    the rows, blocks of columns in parallel). The cap keeps it in uint8 and leaves every
    comparison with a smaller threshold unchanged.
    """
    ny, nx = image.shape
    cap = np.int64(cap)
    edge = np.int64(outside)
    dist = np.empty((ny, nx), dtype=np.uint8)
    for j in prange(ny):
        d = edge
        for i in range(nx):
            if (image[j, i] != 0) == to_set:
                d = 0
            else:
                d = min(d + 1, cap)
            dist[j, i] = d
        d = edge
        for i in range(nx - 1, -1, -1):
            if (image[j, i] != 0) == to_set:
                d = 0
            else:
                d = min(d + 1, cap)
                if d < dist[j, i]:
                    dist[j, i] = d
    width = 256
    nblocks = (nx + width - 1) // width
    for b in prange(nblocks):
        i0 = b * width
        i1 = min(nx, i0 + width)
        for j in range(ny):                # down: the nearest target at or above
            for i in range(i0, i1):
                above = np.int64(dist[j - 1, i]) if j > 0 else edge
                if above + 1 < dist[j, i]:
                    dist[j, i] = above + 1
        for j in range(ny - 1, -1, -1):    # up: at or below
            for i in range(i0, i1):
                below = np.int64(dist[j + 1, i]) if j < ny - 1 else edge
                if below + 1 < dist[j, i]:
                    dist[j, i] = below + 1
    return dist


@numba.njit(parallel=True, **_JIT)
def _row_counts(src, half, out):
    """``out[j, i]`` = number of set ``src[j, i-half .. i+half]`` (outside counts 0); rows
    in parallel."""
    ny, nx = src.shape
    for j in prange(ny):
        c = 0
        for i in range(min(half, nx)):
            c += src[j, i] != 0
        for i in range(nx):
            k = i + half
            if k < nx:
                c += src[j, k] != 0
            k = i - half - 1
            if k >= 0:
                c -= src[j, k] != 0
            out[j, i] = c


@numba.njit(parallel=True, **_JIT)
def _col_counts_threshold(src, half, minimum, out):
    """``out[j, i]`` = (number of set ``src[j-half .. j+half, i]``) >= ``minimum``; blocks of
    columns in parallel (``out`` must not be ``src``)."""
    ny, nx = src.shape
    width = 256
    nblocks = (nx + width - 1) // width
    for b in prange(nblocks):
        i0 = b * width
        i1 = min(nx, i0 + width)
        count = np.zeros(i1 - i0, dtype=np.int32)
        for j in range(min(half, ny)):
            for i in range(i0, i1):
                count[i - i0] += src[j, i] != 0
        for j in range(ny):
            k = j + half
            if k < ny:
                for i in range(i0, i1):
                    count[i - i0] += src[k, i] != 0
            k = j - half - 1
            if k >= 0:
                for i in range(i0, i1):
                    count[i - i0] -= src[k, i] != 0
            for i in range(i0, i1):
                out[j, i] = count[i - i0] >= minimum


@numba.njit(**_JIT)
def box_dilate_erode(data, pad, dilate, erode):
    """Inside-footprint mask of drizzlepac's ``make_mask_array`` (inverted), as int32 0/1.

    ``v = isfinite(data) & (data != 0)`` padded with ``pad`` zeros, then
    ``maximum_filter(v, dilate)`` and ``minimum_filter(., erode)`` (square windows, constant
    0 outside, odd sizes), and the padding cut off.

    Parameters
    ----------
    data : ndarray, float, shape (ny, nx)
    pad, dilate, erode : int
        Padding and odd window sizes, pixels.

    Returns
    -------
    ndarray of int32, shape (ny, nx)
    """
    ny, nx = data.shape
    py, px = ny + 2 * pad, nx + 2 * pad
    valid = np.zeros((py, px), dtype=np.uint8)
    for j in range(ny):
        for i in range(nx):
            v = data[j, i]
            if v != 0 and math.isfinite(v):
                valid[j + pad, i + pad] = 1
    counts = np.empty((py, px), dtype=np.uint8)
    hd = dilate // 2
    he = erode // 2
    _row_counts(valid, hd, counts)
    _col_counts_threshold(counts, hd, 1, valid)          # dilation: any set in the box
    _row_counts(valid, he, counts)
    full = np.empty((py, px), dtype=np.uint8)
    for j in range(py):
        for i in range(px):
            full[j, i] = counts[j, i] >= erode               # erosion along rows: all set
    _col_counts_threshold(full, he, erode, valid)
    out = np.empty((ny, nx), dtype=np.int32)
    for j in range(ny):
        for i in range(nx):
            out[j, i] = valid[j + pad, i + pad]
    return out


@numba.njit(**_JIT)
def _reflect(k, n):
    # SciPy 'reflect' (d c b a | a b c d | d c b a), repeated for windows wider than n
    while k < 0 or k >= n:
        if k < 0:
            k = -k - 1
        else:
            k = 2 * n - k - 1
    return k


@numba.njit(**_JIT)
def _row_max(src, lo, hi, ext, out):
    """``out[i] = max(src[reflect(i - lo) .. reflect(i + hi)])`` for one row (``ext``: a
    scratch row of ``len(src) + lo + hi``)."""
    n = src.shape[0]
    for k in range(n + lo + hi):
        ext[k] = src[_reflect(k - lo, n)]
    for i in range(n):
        out[i] = ext[i]
    for k in range(1, lo + hi + 1):
        for i in range(n):
            v = ext[i + k]
            if v > out[i]:
                out[i] = v


@numba.njit(**_JIT)
def sliding_max_reflect(image, size):
    """``scipy.ndimage.maximum_filter(image, size=(size, size))`` (``reflect``) of a finite
    float image (max is exact: the order of the separable passes does not matter).

    Parameters
    ----------
    image : ndarray, float, shape (ny, nx)
        Finite values (NaN ordering would follow SciPy's comparisons, which this does not).
    size : int
        Window size (>= 1); window ``[i - size // 2, i + (size - 1) // 2]``.

    Returns
    -------
    ndarray, shape (ny, nx), the dtype of ``image``
    """
    ny, nx = image.shape
    lo = size // 2
    hi = (size - 1) // 2
    rows = np.empty_like(image)
    ext = np.empty(nx + lo + hi, dtype=image.dtype)
    for j in range(ny):
        _row_max(image[j], lo, hi, ext, rows[j])
    out = np.empty_like(image)
    for j in range(ny):
        o = out[j]
        first = rows[_reflect(j - lo, ny)]
        for i in range(nx):
            o[i] = first[i]
        for k in range(j - lo + 1, j + hi + 1):
            r = rows[_reflect(k, ny)]
            for i in range(nx):
                v = r[i]
                w = o[i]
                o[i] = v if v > w else w
    return out


@numba.njit(**_JIT)
def _row_max_doubling(src, lo, hi, ext, tmp, out):
    """:func:`_row_max` by window doubling: ``ceil(log2(size)) + 1`` vector passes instead of
    ``size - 1`` (a maximum is exact, so the grouping does not matter). ``ext`` and ``tmp``
    are scratch rows of ``len(src) + lo + hi``."""
    n = src.shape[0]
    width = lo + hi + 1
    m = n + lo + hi
    for k in range(m):
        ext[k] = src[_reflect(k - lo, n)]
    span = 1
    a = ext
    b = tmp
    while 2 * span <= width:
        # b[k]: the maximum of the 2 * span values from k (valid for k <= m - 2 span)
        for k in range(m - span):
            v = a[k + span]
            w = a[k]
            b[k] = v if v > w else w
        a, b = b, a
        span *= 2
    rest = width - span
    for i in range(n):
        v = a[i + rest]
        w = a[i]
        out[i] = v if v > w else w


@numba.njit(**_JIT)
def _window_rows(j, lo, hi, ny):
    """First and last input row of output row ``j``'s reflected window (a contiguous run)."""
    first = ny
    last = -1
    for k in range(j - lo, j + hi + 1):
        r = _reflect(k, ny)
        if r < first:
            first = r
        if r > last:
            last = r
    return first, last


@numba.njit(parallel=True, **_JIT)
def relative_max_filter(image, size, top):
    """``scipy.ndimage.maximum_filter(image, size=(size, size)) / top`` (``reflect`` borders)
    of a finite float image, in one sweep.

    Each output row is the maximum of the row maxima (:func:`_row_max_doubling`) of the input
    rows its window covers, reflected at the edges; those row maxima live in a ring of
    ``size`` rows. Bands of output rows run in parallel, each with its own ring (a band
    recomputes at most ``size - 1`` row maxima of the band before it). Maxima are exact and
    the division is one rounding in the image dtype, so the result equals the NumPy/SciPy
    expression (``top`` of that dtype) whatever the number of threads.

    Parameters
    ----------
    image : ndarray, float, shape (ny, nx)
        Finite values.
    size : int
        Window size (>= 1); window ``[i - size // 2, i + (size - 1) // 2]``.
    top : scalar of the image dtype
        Divisor (HAP: the maximum of the filtered image, which is the image maximum).

    Returns
    -------
    ndarray, shape (ny, nx), the dtype of ``image``
    """
    ny, nx = image.shape
    lo = size // 2
    hi = (size - 1) // 2
    out = np.empty_like(image)
    nbands = min(16, max(1, ny // 64))
    band = (ny + nbands - 1) // nbands
    for b in prange(nbands):
        j0 = min(ny, b * band)
        j1 = min(ny, j0 + band)
        ring = np.empty((size, nx), dtype=image.dtype)
        ext = np.empty(nx + lo + hi, dtype=image.dtype)
        tmp = np.empty(nx + lo + hi, dtype=image.dtype)
        done = -1                          # input rows first..done have their maxima in ring
        if j0 < j1:
            done = _window_rows(j0, lo, hi, ny)[0] - 1
        for j in range(j0, j1):
            first, last = _window_rows(j, lo, hi, ny)
            # the reflected window is the contiguous run first..last (at most size rows)
            while done < last:
                done += 1
                _row_max_doubling(image[done], lo, hi, ext, tmp, ring[done % size])
            o = out[j]
            src = ring[first % size]
            for i in range(nx):
                o[i] = src[i]
            for r in range(first + 1, last + 1):
                src = ring[r % size]
                for i in range(nx):
                    v = src[i]
                    w = o[i]
                    o[i] = v if v > w else w
            for i in range(nx):
                o[i] = o[i] / top
    return out


@numba.njit(parallel=True, **_JIT)
def quadrature_error(data, rms, gain):
    """``sqrt(rms * rms + maximum(data / gain, 0))`` element by element, in the dtype of
    ``data`` and ``rms`` (both float32 or both float64; ``gain`` of that dtype, non-zero).

    Every operation is rounded to the array dtype as NumPy does, so the result equals the
    NumPy expression bit for bit; a NaN in ``data`` gives NaN (``maximum`` propagates it).
    ``rms`` may be a broadcast (zero-stride) view.

    Returns
    -------
    ndarray, shape of ``data``, its dtype
    """
    ny, nx = data.shape
    out = np.empty((ny, nx), dtype=data.dtype)
    zero = gain - gain                     # +0 in the dtype (gain is finite)
    for j in prange(ny):
        for i in range(nx):
            s = data[j, i] / gain
            if s <= zero:                  # maximum(s, 0): NaN passes, -0.0 becomes +0
                s = zero
            r = rms[j, i]
            out[j, i] = np.sqrt(r * r + s)
    return out


@numba.njit(parallel=True, **_JIT)
def finite_copy(image, big):
    """``numpy.nan_to_num(image, nan=0)`` as a new array, with its minimum and maximum.

    +-inf become +-``big``, the largest finite value of the dtype (``numpy.finfo``), as NumPy
    does.

    Returns
    -------
    out : ndarray, the dtype and shape of ``image``
    minimum, maximum : float
    """
    ny, nx = image.shape
    out = np.empty((ny, nx), dtype=image.dtype)
    row_lo = np.empty(ny)
    row_hi = np.empty(ny)
    for j in prange(ny):                   # rows in parallel, extremes per row
        lo = np.inf
        hi = -np.inf
        for i in range(nx):
            v = image[j, i]
            if math.isnan(v):
                v = 0
            elif math.isinf(v):
                v = big if v > 0 else -big
            out[j, i] = v
            if v < lo:
                lo = v
            if v > hi:
                hi = v
        row_lo[j] = lo
        row_hi[j] = hi
    lo = np.inf
    hi = -np.inf
    for j in range(ny):                    # first extreme in raster order, as one sweep
        if row_lo[j] < lo:
            lo = row_lo[j]
        if row_hi[j] > hi:
            hi = row_hi[j]
    return out, lo, hi


@numba.njit(parallel=True, **_JIT)
def add_valid_count(count, image):
    """``count += isfinite(image) & (image != 0)`` (``image`` native float, same shape)."""
    ny, nx = count.shape
    for j in prange(ny):
        for i in range(nx):
            v = image[j, i]
            if v != 0 and math.isfinite(v):
                count[j, i] += 1


@numba.njit(parallel=True, **_JIT)
def add_valid_count_be32(count, words):
    """As :func:`add_valid_count` for big-endian float32 data read as native uint32 words.

    On a little-endian host the first byte (sign and high exponent bits) is the low byte of
    the word: the value is non-finite when its 8 exponent bits are all set
    (``word & 0x807F == 0x807F``) and zero when every bit but the sign is clear.
    """
    ny, nx = count.shape
    for j in prange(ny):
        for i in range(nx):
            w = words[j, i]
            if (w & 0x807F) != 0x807F and (w & 0xFFFFFF7F) != 0:
                count[j, i] += 1


@numba.njit(parallel=True, **_JIT)
def gather_open_interval(image, footprint, upper):
    """Raster-order values ``v`` of ``image`` with ``footprint`` set and ``0 < v < upper``.

    The NumPy expression ``p = (image * footprint); p = p[p > 0]; p[p < upper]`` for finite
    ``image`` (comparisons in the image dtype; ``upper`` is of that dtype).
    """
    ny, nx = image.shape
    starts = np.zeros(ny + 1, dtype=np.int64)
    for j in prange(ny):
        m = 0
        for i in range(nx):
            v = image[j, i]
            if footprint[j, i] and v > 0 and v < upper:
                m += 1
        starts[j + 1] = m
    for j in range(ny):
        starts[j + 1] += starts[j]
    out = np.empty(starts[ny], dtype=image.dtype)
    for j in prange(ny):                   # each row fills its own raster-order slice
        k = starts[j]
        for i in range(nx):
            v = image[j, i]
            if footprint[j, i] and v > 0 and v < upper:
                out[k] = v
                k += 1
    return out


@numba.njit(**_JIT)
def _band(v, limits):
    # first index b with v > limits[b] (limits decreasing); len(limits) when none
    if v > limits[0]:
        return 0
    lo = 1
    hi = limits.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if v > limits[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


@numba.njit(**_JIT)
def all_finite(image):
    """True when every value of the 2-D float ``image`` is finite."""
    ny, nx = image.shape
    for j in range(ny):
        for i in range(nx):
            if not math.isfinite(image[j, i]):
                return False
    return True


@numba.njit(parallel=True, **_JIT)
def band_counts(rel, footprint, limits):
    """Histogram over footprint pixels with ``rel > 0`` of the first ``b`` with
    ``rel > limits[b]`` (``limits`` float32, decreasing); the last bin counts the rest."""
    nb = limits.shape[0]
    ny, nx = rel.shape
    per_row = np.zeros((ny, nb + 1), dtype=np.int64)
    for j in prange(ny):
        for i in range(nx):
            v = rel[j, i]
            if footprint[j, i] and v > 0:
                per_row[j, _band(v, limits)] += 1
    counts = np.zeros(nb + 1, dtype=np.int64)
    for j in range(ny):
        for b in range(nb + 1):
            counts[b] += per_row[j, b]
    return counts


@numba.njit(parallel=True, **_JIT)
def band_labels(rel, footprint, limits, band_region):
    """Region index (0-based, -1 outside) of every pixel: ``band_region[band]``."""
    ny, nx = rel.shape
    out = np.empty((ny, nx), dtype=np.int8)
    for j in prange(ny):
        for i in range(nx):
            v = rel[j, i]
            if footprint[j, i] and v > 0:
                out[j, i] = band_region[_band(v, limits)]
            else:
                out[j, i] = -1
    return out


@numba.njit(parallel=True, **_JIT)
def region_planes(labels, rel, region):
    """``(labels == region)`` as uint16 and ``rel * (labels == region)`` (``rel``'s dtype)."""
    ny, nx = labels.shape
    mask = np.empty((ny, nx), dtype=np.uint16)
    weight = np.empty((ny, nx), dtype=rel.dtype)
    for j in prange(ny):
        for i in range(nx):
            inside = labels[j, i] == region
            mask[j, i] = 1 if inside else 0
            weight[j, i] = rel[j, i] * (1 if inside else 0)
    return mask, weight


@numba.njit(parallel=True, **_JIT)
def region_rms_pass(rms, mask, max_rel, out, write):
    """``out = rms * sqrt(mask / max_rel)`` in float32 (NumPy's ``float32 * sqrt(uint16 /
    float32)``, every step rounded to float32), and the count, minimum and maximum of the
    values > 0 (NaN is not > 0).

    Parameters
    ----------
    rms : ndarray, float32, shape (ny, nx)
        Background rms (any strides, a broadcast view too).
    mask : ndarray, uint16, shape (ny, nx)
        The region's mask.
    max_rel : float32
        The region's largest relative weight.
    out : ndarray, float32, shape (ny, nx)
        Written only when ``write``.
    write : bool

    Returns
    -------
    n : int
    lo, hi : float
        +inf and -inf when ``n`` is 0.
    """
    ny, nx = rms.shape
    counts = np.zeros(ny, dtype=np.int64)
    row_lo = np.full(ny, np.inf)
    row_hi = np.full(ny, -np.inf)
    for j in prange(ny):
        m = 0
        lo = np.inf
        hi = -np.inf
        for i in range(nx):
            scale = np.float32(np.sqrt(np.float32(np.float32(mask[j, i]) / max_rel)))
            v = np.float32(rms[j, i] * scale)
            if write:
                out[j, i] = v
            if v > 0:
                m += 1
                x = np.float64(v)
                if x < lo:
                    lo = x
                if x > hi:
                    hi = x
        counts[j] = m
        row_lo[j] = lo
        row_hi[j] = hi
    return counts.sum(), row_lo.min(), row_hi.max()


@numba.njit(parallel=True, **_JIT)
def fill_constant(out, value):
    """``out[...] = value`` for a 2-D array (``value`` already of ``out``'s dtype)."""
    ny, nx = out.shape
    for j in prange(ny):
        for i in range(nx):
            out[j, i] = value


@numba.njit(parallel=True, **_JIT)
def be32_to_native(words, out):
    """Byte-swap big-endian 32-bit words into ``out`` (native uint32 view of the result).

    ``words`` are the file's 4-byte pixels read as native uint32 on a little-endian host;
    ``out`` receives the same bits in native order, so a float32 view of it holds exactly
    the values ``numpy.asarray(buffer, dtype=numpy.float32)`` gives.
    """
    ny, nx = words.shape
    for j in prange(ny):
        for i in range(nx):
            w = np.uint32(words[j, i])
            out[j, i] = np.uint32(((w & np.uint32(0xFF)) << np.uint32(24))
                                  | ((w & np.uint32(0xFF00)) << np.uint32(8))
                                  | ((w >> np.uint32(8)) & np.uint32(0xFF00))
                                  | (w >> np.uint32(24)))


@numba.njit(**_JIT)
def paint_boxes(out, ys, xs, half):
    """Set ``out`` to 1 within Chebyshev distance ``half`` of each seed ``(ys[k], xs[k])``.

    The result is ``scipy.ndimage.maximum_filter(seeds, size=2 half + 1, mode="constant",
    cval=0)`` of the binary image that is 1 at the seeds: a pixel is set when a seed lies in
    the box around it, i.e. when it lies in the box around a seed. ``out`` must be zero on
    entry; seeds may repeat.
    """
    ny, nx = out.shape
    for k in range(ys.shape[0]):
        y0 = max(0, ys[k] - half)
        y1 = min(ny, ys[k] + half + 1)
        x0 = max(0, xs[k] - half)
        x1 = min(nx, xs[k] + half + 1)
        for j in range(y0, y1):
            for i in range(x0, x1):
                out[j, i] = 1


@numba.njit(parallel=True, **_JIT)
def add_scaled_mask(image, mask, value):
    """``image += value * mask`` for a float32 image, a float32 ``value`` and a uint16 mask:
    NumPy's float32 product (the mask converted exactly to float32), then the float32 sum."""
    ny, nx = image.shape
    for j in prange(ny):
        for i in range(nx):
            image[j, i] = np.float32(image[j, i] + np.float32(value * np.float32(mask[j, i])))


@numba.njit(parallel=True, **_JIT)
def shifted_block_product(out, m_map, block, scale):
    """``out[...] = scale * numpy.fft.fftshift(m_map)[:hy, :hx] * (block > 0)``.

    ``out`` and ``block`` are (hy, hx) windows, ``m_map`` the full (by, bx) float64 block
    result; ``fftshift`` moves element ``(k - n // 2) mod n`` to ``k`` along each axis. Each
    value is ``(scale * m) * 1.0`` or ``* 0.0`` in float64, as the NumPy expression rounds.
    """
    hy, hx = out.shape
    by, bx = m_map.shape
    sy = by // 2
    sx = bx // 2
    for j in prange(hy):
        src_j = (j - sy) % by
        for i in range(hx):
            v = scale * m_map[src_j, (i - sx) % bx]
            out[j, i] = v * (1.0 if block[j, i] > 0 else 0.0)
