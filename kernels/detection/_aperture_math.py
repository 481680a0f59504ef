"""Per-pixel and per-aperture mathematics of circular apertures, written once for all targets.

Plain Python functions compiled by :func:`hapgpu.kernels.targets.compile_namespace`. A
function refers to another by its global name.

Geometry: the aperture is centred at the origin; a pixel is the rectangle
``[x0, x1] x [y0, y1]`` in the same frame. The exact overlap is obtained by inclusion-exclusion
of :func:`quadrant_area`, the area of the disc below and left of a corner, itself an integral
of chord lengths with the antiderivative :func:`chord_integral`.

Methods (photutils): 0 = exact, 1 = center, 2 = subpixel.
"""

import math

M_EXACT = 0
M_CENTER = 1
M_SUBPIXEL = 2


def chord_integral(t, r):
    """``integral_0^t sqrt(r**2 - s**2) ds`` for ``t`` clamped to ``[-r, r]``."""
    if t > r:
        t = r
    elif t < -r:
        t = -r
    return 0.5 * (t * math.sqrt(max(r * r - t * t, 0.0)) + r * r * math.asin(t / r))


def quadrant_area(x, y, r):
    """Area of the disc of radius ``r`` at the origin with ``X <= x`` and ``Y <= y``."""
    if x <= -r or y <= -r:
        return 0.0
    xc = x if x < r else r
    if y >= r:
        return 2.0 * (chord_integral(xc, r) - chord_integral(-r, r))
    w = math.sqrt(max(r * r - y * y, 0.0))
    total = 0.0
    if y >= 0.0:
        # |t| >= w: the whole chord is below y; |t| < w: the chord is cut at y
        b = xc if xc < -w else -w
        if b > -r:
            total += 2.0 * (chord_integral(b, r) - chord_integral(-r, r))
        if xc > w:
            total += 2.0 * (chord_integral(xc, r) - chord_integral(w, r))
    if xc > -w:
        b = xc if xc < w else w
        total += y * (b + w) + chord_integral(b, r) - chord_integral(-w, r)
    return total


def pixel_overlap_exact(x0, x1, y0, y1, r):
    """Exact area of ``[x0, x1] x [y0, y1]`` inside the disc of radius ``r`` at the origin."""
    if r <= 0.0:
        return 0.0
    # nearest point of the rectangle to the centre
    nx = 0.0 if x0 <= 0.0 <= x1 else (x0 if x0 > 0.0 else x1)
    ny = 0.0 if y0 <= 0.0 <= y1 else (y0 if y0 > 0.0 else y1)
    if nx * nx + ny * ny >= r * r:
        return 0.0
    fx = max(abs(x0), abs(x1))
    fy = max(abs(y0), abs(y1))
    if fx * fx + fy * fy <= r * r:
        return (x1 - x0) * (y1 - y0)
    area = (quadrant_area(x1, y1, r) - quadrant_area(x0, y1, r)
            - quadrant_area(x1, y0, r) + quadrant_area(x0, y0, r))
    full = (x1 - x0) * (y1 - y0)
    if area < 0.0:
        return 0.0
    if area > full:
        return full
    return area


def pixel_weight(method, subpixels, x0, x1, y0, y1, r):
    """Fraction of the pixel ``[x0, x1] x [y0, y1]`` covered by the disc (per method).

    ``center`` and ``subpixel`` follow photutils' arithmetic: pixels whose centre is nearer
    than ``r - half diagonal`` count fully, farther than ``r + half diagonal`` not at all;
    otherwise sub-pixel centres are stepped by accumulation and tested with ``<``.
    """
    if method == M_EXACT:
        return pixel_overlap_exact(x0, x1, y0, y1, r) / ((x1 - x0) * (y1 - y0))
    dx = x1 - x0
    dy = y1 - y0
    half_diag = 0.5 * math.sqrt(dx * dx + dy * dy)
    cx = 0.5 * (x0 + x1)
    cy = 0.5 * (y0 + y1)
    d = math.sqrt(cx * cx + cy * cy)
    if d >= r + half_diag:
        return 0.0
    if d < r - half_diag:
        return 1.0
    nsub = subpixels if method == M_SUBPIXEL else 1
    sdx = dx / nsub
    sdy = dy / nsub
    count = 0
    sx = x0 - 0.5 * sdx
    for si in range(nsub):
        sx += sdx
        sy = y0 - 0.5 * sdy
        for sj in range(nsub):
            sy += sdy
            if sx * sx + sy * sy < r * r:
                count += 1
    return count / (nsub * nsub)


def annulus_weight(method, subpixels, x0, x1, y0, y1, r_in, r_out):
    """Weight of a pixel in a disc (``r_in <= 0``) or an annulus (outer minus inner)."""
    w = pixel_weight(method, subpixels, x0, x1, y0, y1, r_out)
    if r_in > 0.0 and w > 0.0:
        w -= pixel_weight(method, subpixels, x0, x1, y0, y1, r_in)
    return w


#: Depth (pixels) by which a pixel must cross a circle for :func:`annulus_touches` to decide
#: the sign of its exact weight without computing the weight: a corner or edge that crosses
#: by ``d`` puts at least a quarter disc of radius ``d`` (area ``pi d**2 / 4``, 7.8e-7 for
#: ``d = 1e-3``) on that side, far above the rounding of the exact overlap (below 1e-9 for
#: radii up to :data:`TOUCH_MAX_RADIUS`).
TOUCH_MARGIN = 1.0e-3
TOUCH_MAX_RADIUS = 1000.0


def annulus_touches(method, subpixels, x0, x1, y0, y1, r_in, r_out):
    """``annulus_weight(...) > 0``, without the exact overlap where its sign is certain.

    For the exact method a pixel entirely outside the outer circle, entirely inside the inner
    circle, or entirely between them is decided by the same distance tests the overlap itself
    starts with. A pixel cut by one circle is decided by its depth across it: cut by the outer
    circle (and clear of the inner one) it has a positive weight when its nearest point lies
    more than :data:`TOUCH_MARGIN` inside; cut by the inner circle (and inside the outer one)
    when its farthest corner lies more than :data:`TOUCH_MARGIN` outside. Anything else --
    other methods, a pixel cut by both circles, a pixel within the margin, radii above
    :data:`TOUCH_MAX_RADIUS` -- computes :func:`annulus_weight`.
    """
    if method != M_EXACT or r_out <= 0.0 or r_out > TOUCH_MAX_RADIUS:
        return annulus_weight(method, subpixels, x0, x1, y0, y1, r_in, r_out) > 0.0
    # the nearest and farthest points, as pixel_overlap_exact computes them
    nx = 0.0 if x0 <= 0.0 <= x1 else (x0 if x0 > 0.0 else x1)
    ny = 0.0 if y0 <= 0.0 <= y1 else (y0 if y0 > 0.0 else y1)
    near2 = nx * nx + ny * ny
    fx = max(abs(x0), abs(x1))
    fy = max(abs(y0), abs(y1))
    far2 = fx * fx + fy * fy
    if near2 >= r_out * r_out:
        return False                           # outer weight 0
    outer_full = far2 <= r_out * r_out         # outer weight exactly 1
    if not outer_full:
        deep = r_out - TOUCH_MARGIN
        if deep <= 0.0 or near2 >= deep * deep:
            return annulus_weight(method, subpixels, x0, x1, y0, y1, r_in, r_out) > 0.0
    # the outer weight is positive
    if r_in <= 0.0 or near2 >= r_in * r_in:
        return True                            # inner weight 0
    if far2 <= r_in * r_in:
        return False                           # inner weight 1: 1 - 1, or less
    if outer_full:
        out = r_in + TOUCH_MARGIN
        if far2 > out * out:
            return True                        # 1 - (inner weight < 1)
    return annulus_weight(method, subpixels, x0, x1, y0, y1, r_in, r_out) > 0.0


def bbox_lo(c, r):
    """photutils ``BoundingBox.from_float`` lower index: ``floor(c - r + 0.5)``."""
    return int(math.floor(c - r + 0.5))


def bbox_hi(c, r):
    """photutils ``BoundingBox.from_float`` upper index (exclusive): ``ceil(c + r + 0.5)``."""
    return int(math.ceil(c + r + 0.5))


def aperture_sum_one(data, error, mask, flags, x, y, r_in, r_out, method, subpixels):
    """Weighted sum, weighted error variance and overlap flag of one aperture.

    ``flags``: bit 1 = use ``error``, bit 2 = use ``mask``. Pixels with zero weight or masked
    are skipped; non-finite data propagate (as in photutils). Returns
    ``(sum, variance, n_overlap_pixels)``; ``n_overlap_pixels < 0`` when the bounding box
    misses the image.
    """
    ny = data.shape[0]
    nx = data.shape[1]
    ix0 = bbox_lo(x, r_out)
    ix1 = bbox_hi(x, r_out)
    iy0 = bbox_lo(y, r_out)
    iy1 = bbox_hi(y, r_out)
    if ix1 <= 0 or iy1 <= 0 or ix0 >= nx or iy0 >= ny:
        return 0.0, 0.0, -1
    # pixel edges relative to the centre, as photutils builds them from the bbox
    ex0 = ix0 - 0.5 - x
    ey0 = iy0 - 0.5 - y
    sx = ((ix1 - 0.5 - x) - ex0) / (ix1 - ix0)
    sy = ((iy1 - 0.5 - y) - ey0) / (iy1 - iy0)
    total = 0.0
    var = 0.0
    count = 0
    for j in range(max(iy0, 0), min(iy1, ny)):
        py0 = ey0 + (j - iy0) * sy
        for i in range(max(ix0, 0), min(ix1, nx)):
            px0 = ex0 + (i - ix0) * sx
            w = annulus_weight(method, subpixels, px0, px0 + sx, py0, py0 + sy, r_in, r_out)
            if w <= 0.0:
                continue
            if (flags & 2) != 0 and mask[j, i]:
                continue
            total += data[j, i] * w
            if (flags & 1) != 0:
                e = error[j, i]
                var += e * e * w
            count += 1
    return total, var, count


def annulus_gather_one(data, x, y, r_in, r_out, method, subpixels, buf):
    """Copy the finite data of every pixel with a positive annulus weight into ``buf``.

    Returns the number of values, or -1 when the bounding box misses the image.
    """
    ny = data.shape[0]
    nx = data.shape[1]
    ix0 = bbox_lo(x, r_out)
    ix1 = bbox_hi(x, r_out)
    iy0 = bbox_lo(y, r_out)
    iy1 = bbox_hi(y, r_out)
    if ix1 <= 0 or iy1 <= 0 or ix0 >= nx or iy0 >= ny:
        return -1
    ex0 = ix0 - 0.5 - x
    ey0 = iy0 - 0.5 - y
    sx = ((ix1 - 0.5 - x) - ex0) / (ix1 - ix0)
    sy = ((iy1 - 0.5 - y) - ey0) / (iy1 - iy0)
    n = 0
    for j in range(max(iy0, 0), min(iy1, ny)):
        py0 = ey0 + (j - iy0) * sy
        for i in range(max(ix0, 0), min(ix1, nx)):
            px0 = ex0 + (i - ix0) * sx
            if not annulus_touches(method, subpixels, px0, px0 + sx, py0, py0 + sy, r_in,
                                   r_out):
                continue
            v = data[j, i] * 1.0
            if v != v:
                continue
            buf[n] = v
            n += 1
    return n


def clipped_moments_one(buf, n, low, high):
    """scipy.stats.sigmaclip of ``buf[0:n]`` in place (mean-centred, until no change).

    A negative ``low`` disables clipping.

    Returns ``(mean, median, std, count)`` of the survivors (NaNs for an empty buffer).
    """
    if n <= 0:
        return math.nan, math.nan, math.nan, 0
    while low >= 0.0:
        mean, std = mean_std(buf, n, 0)
        lo = mean - std * low
        hi = mean + std * high
        k = 0
        for i in range(n):
            v = buf[i]
            if v >= lo and v <= hi:
                buf[k] = v
                k += 1
        if k == n or k == 0:
            n = k
            break
        n = k
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean, std = mean_std(buf, n, 0)
    median = median_inplace(buf, n)
    return mean, median, std, n


APERTURE_FUNCTIONS = (chord_integral, quadrant_area, pixel_overlap_exact, pixel_weight,
                      annulus_weight, annulus_touches, bbox_lo, bbox_hi, aperture_sum_one,
                      annulus_gather_one, clipped_moments_one)
