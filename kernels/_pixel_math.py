"""Per-pixel mathematics of drizzle, written once for every target.

These are plain Python functions. :func:`hapgpu.kernels.targets.compile_namespace` compiles
them as ``numba.njit`` functions for the CPU and as CUDA device functions for
the GPU and the CUDA simulator. A function calls another one by its global name; the
compiled namespace supplies the compiled callee. ``deposit`` is not defined here: each target
provides its own (plain read-modify-write on the CPU, atomics on CUDA). On the CPU the tiled
driver calls a span function once per row of a tile.

On the CPU each driver has one span function: ``square_span`` (the square kernel at pixfrac 1
with a coordinate table, sharing corners), ``pixel_span`` over ``square_pixel`` (the other
square cases), or ``centred_span`` with ``kernel_drop`` bound at compile time to one centred
kernel's ``*_drop`` function (it looks up the coordinate table's row once per span), so a
driver holds only the code it runs. CUDA threads call ``drizzle_pixel``, which maps the
pixel's centre with :func:`pixel_centre` and chooses the kernel at run time.

Conventions follow drizzlepac's ``cdriz.tdriz`` (see ``docs/algorithms.md`` §1–§2 of the
project documentation): input positions are 1-based FITS coordinates, mapped output
positions are 0-based, output pixel ``[jj, ii]`` covers ``[ii-0.5, ii+0.5) x [jj-0.5, jj+0.5)``.
Coordinates, overlaps and Jacobians are float64; data and weights are float32.
``float_bits`` (the int32 bits of a float32) also comes from the target.

Every float32 operation is wrapped in ``f32(...)`` so that Numba (where ``float32 * 2.0`` is
float64) and NumPy 2 scalars (where it is float32) give the same result.
"""

import math

import numpy as np

f32 = np.float32
f64 = np.float64

# Kernel identifiers (shared with the host code through hapgpu.kernels.drizzle).
K_SQUARE = 0
K_TURBO = 1
K_POINT = 2
K_GAUSSIAN = 3
K_TOPHAT = 4
K_LANCZOS2 = 5
K_LANCZOS3 = 6

# Slots of the float64 parameter vector handed to the kernels.
P_PIXFRAC = 0
P_SCALE = 1
P_HALF = 2  # pixfrac / 2: square-kernel corner offset in input pixels
P_HALF_WIDTH = 3  # half-size (radius) of a centred kernel's footprint, in output pixels
P_INV_PIXFRAC2 = 4  # 1 / pixfrac**2
P_GAUSS_EXP = 5  # gaussian: factor of the squared distance in the exponent
P_GAUSS_NORM = 6  # gaussian: normalisation of the profile
P_LUT_STEP = 7  # lanczos: table entries per output pixel of offset
P_FACTOR = 8  # coordinate-table step (0: explicit coordinate arrays)
P_INV_EXP = 9  # float32(1/exptime) applied to the data for counts input, else 1
P_SCALE2 = 10  # float32(scale**2) applied to the data
P_WT_SCL = 11  # float32 weight scale
N_FPARAMS = 12

# Slots of the int64 parameter vector.
I_KERNEL = 0
I_ONX = 1
I_ONY = 2
I_NX = 3
I_NY = 4
I_FLAGS = 5
# The output window the accumulators hold: full-frame columns [I_WX0, I_WX1) and rows
# [I_WY0, I_WY1). Coordinates stay full-frame; the accumulator index is (jj - y0, ii - x0).
I_WX0 = 6
I_WX1 = 7
I_WY0 = 8
I_WY1 = 9
N_IPARAMS = 10

# Flags.
F_COUNTS = 1  # divide the data by the exposure time
F_VARIANCE = 2  # propagate an error array (squared weights)
F_DQ = 4  # OR-propagate a DQ array


def nint(v):
    """Round half away from zero (drizzlepac's ``nint``)."""
    if v >= 0.0:
        return int(math.floor(v + 0.5))
    return -int(math.floor(0.5 - v))


def table_row(tx, factor, y):
    """Row part of :func:`table_map` at 1-based input row ``y``: ``(b, fv, gv)``, the table
    row below ``y`` and the two bilinear weights along Y (shared by every pixel of a row)."""
    v = y / factor
    b = int(math.floor(v))
    nb = tx.shape[0] - 2
    if b > nb:
        b = nb
    if b < 0:
        b = 0
    fv = v - b
    return b, fv, 1.0 - fv


def table_map_row(tx, ty, factor, x, b, fv, gv):
    """:func:`table_map` at 1-based ``x`` on the row whose :func:`table_row` is ``(b, fv, gv)``.

    The bilinear interpolation is evaluated in drizzlepac's exact order, including the odd
    360-degree guard on X. Returns 1-based output ``(X, Y)``.
    """
    u = x / factor
    a = int(math.floor(u))
    na = tx.shape[1] - 2
    if a > na:
        a = na
    if a < 0:
        a = 0
    fu = u - a
    gu = 1.0 - fu
    x00 = tx[b, a]
    x01 = tx[b, a + 1]
    x10 = tx[b + 1, a]
    x11 = tx[b + 1, a + 1]
    if x00 - x01 > 359.0:
        x00 = x00 - 360.0
        x10 = x10 - 360.0
    elif x00 - x01 < -359.0:
        x01 = x01 - 360.0
        x11 = x11 - 360.0
    xo = x00 * gu * gv + x01 * fu * gv + x10 * gu * fv + x11 * fu * fv
    yo = ty[b, a] * gu * gv + ty[b, a + 1] * fu * gv + ty[b + 1, a] * gu * fv + ty[b + 1, a + 1] * fu * fv
    return xo, yo


def table_map(tx, ty, factor, x, y):
    """Interpolate drizzlepac's coordinate table at 1-based input position ``(x, y)``.

    ``tx[b, a]``, ``ty[b, a]`` hold the 1-based output coordinates of the input point
    ``(a*factor, b*factor)``. Returns 1-based output ``(X, Y)`` (see :func:`table_map_row`).
    """
    b, fv, gv = table_row(tx, factor, y)
    return table_map_row(tx, ty, factor, x, b, fv, gv)


def map_offset(k, i, j, ox, oy, factor, tx, ty, ex, ey):
    """0-based output position of input pixel ``[j, i]`` offset by ``(ox, oy)`` input pixels.

    With ``factor > 0`` the coordinate table is interpolated; with ``factor == 0`` the
    pre-computed exact coordinates ``ex[k, j, i]``, ``ey[k, j, i]`` are read (``k`` is the
    corner number for the square kernel, 0 for the centre).
    """
    if factor > 0.0:
        xo, yo = table_map(tx, ty, factor, (i + 1.0) + ox, (j + 1.0) + oy)
        return xo - 1.0, yo - 1.0
    return ex[k, j, i] - 1.0, ey[k, j, i] - 1.0


def edge_slope(px, py, qx, qy):
    """Slope ``m`` of the directed edge P->Q and ``1/m`` (0 where undefined)."""
    dx = qx - px
    if dx == 0.0:
        return 0.0, 0.0
    m = (qy - py) / dx
    if m == 0.0:
        return m, 0.0
    return m, 1.0 / m


def edge_area(px, py, qx, m, invm):
    """Signed area under the directed edge P->Q inside the unit square [0,1]x[0,1].

    The edge has slope ``m`` (precomputed once per input pixel, with ``invm = 1/m``). The area
    is clipped to 0 <= y <= 1 and to the edge's x-extent inside [0, 1]; it is positive for an
    edge running left to right and 0 for a vertical one.
    """
    if qx == px:
        return 0.0
    if qx > px:
        xlo = px
        xhi = qx
        sign = 1.0
    else:
        xlo = qx
        xhi = px
        sign = -1.0
    if xlo >= 1.0 or xhi <= 0.0:
        return 0.0
    c = py - m * px
    if xlo < 0.0:
        xlo = 0.0
    if xhi > 1.0:
        xhi = 1.0
    ylo = m * xlo + c
    yhi = m * xhi + c
    if ylo <= 0.0 and yhi <= 0.0:
        return 0.0
    if ylo < 0.0:
        xlo = -c * invm
        ylo = 0.0
    if yhi < 0.0:
        xhi = -c * invm
        yhi = 0.0
    if ylo >= 1.0 and yhi >= 1.0:
        area = xhi - xlo
    elif ylo <= 1.0 and yhi <= 1.0:
        area = 0.5 * (xhi - xlo) * (ylo + yhi)
    else:
        xt = (1.0 - c) * invm
        if ylo < 1.0:
            area = 0.5 * (xt - xlo) * (1.0 + ylo) + (xhi - xt)
        else:
            area = 0.5 * (xhi - xt) * (1.0 + yhi) + (xt - xlo)
    return sign * area


def boxer(ii, jj, x0, y0, x1, y1, x2, y2, x3, y3, m0, i0, m1, i1, m2, i2, m3, i3):
    """Area of the clockwise quadrilateral (x_k, y_k) inside output pixel ``[jj, ii]``.

    ``m_k``, ``i_k`` are the slope and inverse slope of edge k -> k+1 (see :func:`edge_slope`).
    """
    sx = ii - 0.5
    sy = jj - 0.5
    a0x = x0 - sx
    a1x = x1 - sx
    a2x = x2 - sx
    a3x = x3 - sx
    return (
        edge_area(a0x, y0 - sy, a1x, m0, i0)
        + edge_area(a1x, y1 - sy, a2x, m1, i1)
        + edge_area(a2x, y2 - sy, a3x, m2, i2)
        + edge_area(a3x, y3 - sy, a0x, m3, i3)
    )


def clamp_range(lo, hi, start, stop):
    """Clamp the rounded candidate range ``nint(lo)..nint(hi)`` to ``start..stop-1``.

    ``start, stop`` are the accumulator window's bounds on this axis (``0, n`` for a window
    covering the whole output frame). The window always contains every output pixel the
    input can reach inside the frame, so clamping to it gives the same pixels as clamping to
    the frame; it only guarantees that no write leaves the window's arrays.
    """
    a = nint(lo)
    b = nint(hi)
    if a < start:
        a = start
    if b > stop - 1:
        b = stop - 1
    return a, b


def input_value(data, weight, j, i, fp, flags):
    """Return the float32 data value ``d`` and weight ``w32`` of input pixel ``[j, i]``.

    Non-finite data or weights are treated as weight 0 and value 0 (a documented deviation:
    drizzlepac lets a NaN poison every output pixel its footprint touches).
    """
    v = f32(data[j, i])
    w = f32(weight[j, i])
    if not (math.isfinite(v) and math.isfinite(w)):
        return f32(0.0), f32(0.0)
    if flags & F_COUNTS:
        v = f32(v * f32(fp[P_INV_EXP]))
    d = f32(v * f32(fp[P_SCALE2]))
    w32 = f32(w * f32(fp[P_WT_SCL]))
    return d, w32


def input_error(err, j, i, fp, flags):
    """Squared float32 error of input pixel ``[j, i]``, scaled like the data (float64)."""
    e = f32(err[j, i])
    if not math.isfinite(e):
        return 0.0
    if flags & F_COUNTS:
        e = f32(e * f32(fp[P_INV_EXP]))
    e = f32(e * f32(fp[P_SCALE2]))
    return f64(e) * f64(e)


def pixel_inputs(i, j, data, weight, err, dq, fp, ip):
    """``(d, w32, e2, dqv, scan)`` of input pixel ``[j, i]``: value, weight, squared error,
    DQ flags and 1-based scan index (the order drizzlepac processes pixels in)."""
    flags = ip[I_FLAGS]
    d, w32 = input_value(data, weight, j, i, fp, flags)
    e2 = 0.0
    if flags & F_VARIANCE:
        e2 = input_error(err, j, i, fp, flags)
    dqv = 0
    if flags & F_DQ:
        dqv = dq[j, i]
    return d, w32, e2, dqv, j * ip[I_NX] + i + 1


def drop_square(x0, y0, x1, y1, x2, y2, x3, y3, d, w32, e2, dqv, scan, ip,
                num, den, var, outdq, zidx, ctx, ctxbit):
    """Square kernel: spread one drop, the quadrilateral (x_k, y_k), by exact overlap area.

    Each output pixel receives weight ``w32 * overlap / jacobian`` (Fruchter & Hook 2002,
    PASP 114, 144, eq. 3-4), the Jacobian being the drop's area in output pixels.
    """
    if not (math.isfinite(x0) and math.isfinite(x1) and math.isfinite(x2)
            and math.isfinite(x3) and math.isfinite(y0) and math.isfinite(y1)
            and math.isfinite(y2) and math.isfinite(y3)):
        return
    jac = 0.5 * ((x1 - x3) * (y0 - y2) - (x0 - x2) * (y1 - y3))
    if jac < 0.0:  # parity flip: restore clockwise order by swapping vertices 1 and 3
        jac = -jac
        tmpx = x1
        tmpy = y1
        x1 = x3
        y1 = y3
        x3 = tmpx
        y3 = tmpy
    if jac == 0.0:
        return
    flags = ip[I_FLAGS]
    i0, i1 = clamp_range(min(min(x0, x1), min(x2, x3)), max(max(x0, x1), max(x2, x3)),
                         ip[I_WX0], ip[I_WX1])
    j0, j1 = clamp_range(min(min(y0, y1), min(y2, y3)), max(max(y0, y1), max(y2, y3)),
                         ip[I_WY0], ip[I_WY1])
    wx0 = ip[I_WX0]
    wy0 = ip[I_WY0]
    m0, n0 = edge_slope(x0, y0, x1, y1)
    m1, n1 = edge_slope(x1, y1, x2, y2)
    m2, n2 = edge_slope(x2, y2, x3, y3)
    m3, n3 = edge_slope(x3, y3, x0, y0)
    for jj in range(j0, j1 + 1):
        for ii in range(i0, i1 + 1):
            area = boxer(ii, jj, x0, y0, x1, y1, x2, y2, x3, y3, m0, n0, m1, n1, m2, n2, m3, n3)
            if area > 0.0:
                drop_w = f32((area / jac) * w32)
                deposit(num, den, var, outdq, zidx, ctx, jj - wy0, ii - wx0, drop_w, d, e2,
                        dqv, scan, ctxbit, flags)


def square_pixel(i, j, data, weight, err, dq, fp, ip, tx, ty, ex, ey, lut,
                 num, den, var, outdq, zidx, ctx, ctxbit):
    """Square kernel, input pixel ``[j, i]``: map the drop's four corners and spread it."""
    factor = fp[P_FACTOR]
    h = fp[P_HALF]
    x0, y0 = map_offset(0, i, j, -h, h, factor, tx, ty, ex, ey)
    x1, y1 = map_offset(1, i, j, h, h, factor, tx, ty, ex, ey)
    x2, y2 = map_offset(2, i, j, h, -h, factor, tx, ty, ex, ey)
    x3, y3 = map_offset(3, i, j, -h, -h, factor, tx, ty, ex, ey)
    d, w32, e2, dqv, scan = pixel_inputs(i, j, data, weight, err, dq, fp, ip)
    drop_square(x0, y0, x1, y1, x2, y2, x3, y3, d, w32, e2, dqv, scan, ip,
                num, den, var, outdq, zidx, ctx, ctxbit)


def pixel_centre(i, j, fp, tx, ty, ex, ey):
    """``(ok, xc, yc)``: the 0-based mapped centre of input pixel ``[j, i]``; ``ok`` is False
    when it maps nowhere (non-finite)."""
    xc, yc = map_offset(0, i, j, 0.0, 0.0, fp[P_FACTOR], tx, ty, ex, ey)
    return math.isfinite(xc) and math.isfinite(yc), xc, yc


def centre_window(xc, yc, fp, ip):
    """Output pixels ``(i0, i1, j0, j1)`` (inclusive) a centred kernel of half-width
    ``fp[P_HALF_WIDTH]`` about ``(xc, yc)`` can reach, clamped to the accumulator window."""
    half = fp[P_HALF_WIDTH]
    i0, i1 = clamp_range(xc - half, xc + half, ip[I_WX0], ip[I_WX1])
    j0, j1 = clamp_range(yc - half, yc + half, ip[I_WY0], ip[I_WY1])
    return i0, i1, j0, j1


def point_drop(i, j, xc, yc, data, weight, err, dq, fp, ip, lut,
               num, den, var, outdq, zidx, ctx, ctxbit):
    """Point kernel, input pixel ``[j, i]`` mapped to ``(xc, yc)``: the whole weight goes to
    the output pixel holding the centre."""
    ii = nint(xc)
    jj = nint(yc)
    if ii >= ip[I_WX0] and ii < ip[I_WX1] and jj >= ip[I_WY0] and jj < ip[I_WY1]:
        d, w32, e2, dqv, scan = pixel_inputs(i, j, data, weight, err, dq, fp, ip)
        deposit(num, den, var, outdq, zidx, ctx, jj - ip[I_WY0], ii - ip[I_WX0], w32, d, e2,
                dqv, scan, ctxbit, ip[I_FLAGS])


def turbo_overlap(c, half, n):
    """Overlap of ``[c - half, c + half]`` with output pixel ``n`` (``[n - 0.5, n + 0.5]``)."""
    return min(c + half, n + 0.5) - max(c - half, n - 0.5)


def turbo_row(row, i0, i1, dx0, dx1, dy, norm, w32, d, e2, dqv, scan, ip,
              num, den, var, outdq, zidx, ctx, ctxbit):
    """Turbo drop on accumulator row ``row`` of a window at most two output pixels wide:
    columns ``i0`` and ``i1`` (full-frame; ``i1 == i0`` for one column) with overlaps ``dx0``,
    ``dx1``, the row's overlap ``dy`` and the area normalisation ``norm``."""
    flags = ip[I_FLAGS]
    wx0 = ip[I_WX0]
    if dx0 > 0.0:
        deposit(num, den, var, outdq, zidx, ctx, row, i0 - wx0, f32((dx0 * dy * norm) * w32), d,
                e2, dqv, scan, ctxbit, flags)
    if i1 > i0 and dx1 > 0.0:
        deposit(num, den, var, outdq, zidx, ctx, row, i1 - wx0, f32((dx1 * dy * norm) * w32), d,
                e2, dqv, scan, ctxbit, flags)


def turbo_drop(i, j, xc, yc, data, weight, err, dq, fp, ip, lut,
               num, den, var, outdq, zidx, ctx, ctxbit):
    """Turbo kernel: an axis-aligned square drop of side ``pixfrac / scale`` about the
    mapped centre, weighted by its overlap with each output pixel.

    As in :func:`tophat_drop`, a window of at most 2 x 2 output pixels takes its candidates
    written out one by one.
    """
    i0, i1, j0, j1 = centre_window(xc, yc, fp, ip)
    if i1 < i0 or j1 < j0:
        return
    d, w32, e2, dqv, scan = pixel_inputs(i, j, data, weight, err, dq, fp, ip)
    flags = ip[I_FLAGS]
    wx0 = ip[I_WX0]
    wy0 = ip[I_WY0]
    half = fp[P_HALF_WIDTH]
    norm = fp[P_SCALE] * fp[P_SCALE] * fp[P_INV_PIXFRAC2]
    if i1 - i0 <= 1 and j1 - j0 <= 1:
        dx0 = turbo_overlap(xc, half, i0)
        dx1 = turbo_overlap(xc, half, i1)
        dy0 = turbo_overlap(yc, half, j0)
        dy1 = turbo_overlap(yc, half, j1)
        if dy0 > 0.0:
            turbo_row(j0 - wy0, i0, i1, dx0, dx1, dy0, norm, w32, d, e2, dqv, scan, ip,
                      num, den, var, outdq, zidx, ctx, ctxbit)
        if j1 > j0 and dy1 > 0.0:
            turbo_row(j1 - wy0, i0, i1, dx0, dx1, dy1, norm, w32, d, e2, dqv, scan, ip,
                      num, den, var, outdq, zidx, ctx, ctxbit)
        return
    for jj in range(j0, j1 + 1):
        dy = turbo_overlap(yc, half, jj)
        if dy <= 0.0:
            continue
        for ii in range(i0, i1 + 1):
            dx = turbo_overlap(xc, half, ii)
            if dx > 0.0:
                drop_w = f32((dx * dy * norm) * w32)
                deposit(num, den, var, outdq, zidx, ctx, jj - wy0, ii - wx0, drop_w, d, e2, dqv,
                        scan, ctxbit, flags)


def gaussian_factor(r, k):
    """One axis's factor ``exp(-r**2 * k)`` of the separable gaussian profile."""
    return math.exp(-(r * r) * k)


def gaussian_drop(i, j, xc, yc, data, weight, err, dq, fp, ip, lut,
                  num, den, var, outdq, zidx, ctx, ctxbit):
    """Gaussian kernel: weight ``norm * exp(-r**2 * k)`` at distance ``r`` (output pixels)
    from the mapped centre, with drizzlepac's FWHM = pixfrac input pixels (float32 profile).

    The profile is evaluated as ``(norm * exp(-ry**2 * k)) * exp(-rx**2 * k)``: one ``exp``
    per row and per column instead of one per pixel (the factors of the first four columns
    are kept; wider windows recompute the others per pixel). It differs from the single
    ``exp`` of the summed square by a few float64 ulp, far below the float32 rounding of
    the profile.
    """
    i0, i1, j0, j1 = centre_window(xc, yc, fp, ip)
    d, w32, e2, dqv, scan = pixel_inputs(i, j, data, weight, err, dq, fp, ip)
    flags = ip[I_FLAGS]
    wx0 = ip[I_WX0]
    wy0 = ip[I_WY0]
    k = fp[P_GAUSS_EXP]
    norm = fp[P_GAUSS_NORM]
    gx0 = gaussian_factor(xc - i0, k)
    gx1 = gaussian_factor(xc - (i0 + 1), k) if i1 > i0 else 0.0
    gx2 = gaussian_factor(xc - (i0 + 2), k) if i1 > i0 + 1 else 0.0
    gx3 = gaussian_factor(xc - (i0 + 3), k) if i1 > i0 + 2 else 0.0
    for jj in range(j0, j1 + 1):
        gy = norm * gaussian_factor(yc - jj, k)
        for ii in range(i0, i1 + 1):
            q = ii - i0
            if q == 0:
                gx = gx0
            elif q == 1:
                gx = gx1
            elif q == 2:
                gx = gx2
            elif q == 3:
                gx = gx3
            else:
                gx = gaussian_factor(xc - ii, k)
            profile = f32(gy * gx)
            drop_w = f32(f64(profile) * w32)
            deposit(num, den, var, outdq, zidx, ctx, jj - wy0, ii - wx0, drop_w, d, e2, dqv,
                    scan, ctxbit, flags)


def tophat_drop(i, j, xc, yc, data, weight, err, dq, fp, ip, lut,
                num, den, var, outdq, zidx, ctx, ctxbit):
    """Tophat kernel: the full weight to every output pixel centre within the radius.

    A window of at most 2 x 2 output pixels (a drop at most one output pixel wide) takes
    its candidates written out one by one, which compiles to faster code than the loops
    (the CPU kernel measured 1.4x faster); the pixels reached are the same.
    """
    i0, i1, j0, j1 = centre_window(xc, yc, fp, ip)
    if i1 < i0 or j1 < j0:
        return
    d, w32, e2, dqv, scan = pixel_inputs(i, j, data, weight, err, dq, fp, ip)
    flags = ip[I_FLAGS]
    wx0 = ip[I_WX0]
    wy0 = ip[I_WY0]
    radius2 = fp[P_HALF_WIDTH] * fp[P_HALF_WIDTH]
    if i1 - i0 <= 1 and j1 - j0 <= 1:
        rx0 = xc - i0
        rx1 = xc - i1
        ry0 = yc - j0
        ry1 = yc - j1
        if rx0 * rx0 + ry0 * ry0 <= radius2:
            deposit(num, den, var, outdq, zidx, ctx, j0 - wy0, i0 - wx0, w32, d, e2, dqv,
                    scan, ctxbit, flags)
        if i1 > i0 and rx1 * rx1 + ry0 * ry0 <= radius2:
            deposit(num, den, var, outdq, zidx, ctx, j0 - wy0, i1 - wx0, w32, d, e2, dqv,
                    scan, ctxbit, flags)
        if j1 > j0 and rx0 * rx0 + ry1 * ry1 <= radius2:
            deposit(num, den, var, outdq, zidx, ctx, j1 - wy0, i0 - wx0, w32, d, e2, dqv,
                    scan, ctxbit, flags)
        if i1 > i0 and j1 > j0 and rx1 * rx1 + ry1 * ry1 <= radius2:
            deposit(num, den, var, outdq, zidx, ctx, j1 - wy0, i1 - wx0, w32, d, e2, dqv,
                    scan, ctxbit, flags)
        return
    for jj in range(j0, j1 + 1):
        ry = yc - jj
        ry2 = ry * ry
        for ii in range(i0, i1 + 1):
            rx = xc - ii
            if rx * rx + ry2 <= radius2:
                deposit(num, den, var, outdq, zidx, ctx, jj - wy0, ii - wx0, w32, d, e2, dqv,
                        scan, ctxbit, flags)


def lanczos_drop(i, j, xc, yc, data, weight, err, dq, fp, ip, lut,
                 num, den, var, outdq, zidx, ctx, ctxbit):
    """Lanczos kernels: separable weight ``L(dx) * L(dy)`` read from the float32 table
    ``lut`` at the nearest tabulated offset (entries ``fp[P_LUT_STEP]`` per output pixel)."""
    i0, i1, j0, j1 = centre_window(xc, yc, fp, ip)
    d, w32, e2, dqv, scan = pixel_inputs(i, j, data, weight, err, dq, fp, ip)
    flags = ip[I_FLAGS]
    wx0 = ip[I_WX0]
    wy0 = ip[I_WY0]
    step = fp[P_LUT_STEP]
    n_lut = lut.shape[0]
    for jj in range(j0, j1 + 1):
        ky = nint(abs(yc - jj) * step) + 1
        wy = f32(0.0)
        if ky < n_lut:
            wy = lut[ky]
        for ii in range(i0, i1 + 1):
            kx = nint(abs(xc - ii) * step) + 1
            wx = f32(0.0)
            if kx < n_lut:
                wx = lut[kx]
            drop_w = f32(f64(f32(wx * wy)) * w32)
            deposit(num, den, var, outdq, zidx, ctx, jj - wy0, ii - wx0, drop_w, d, e2, dqv,
                    scan, ctxbit, flags)


def drizzle_pixel(i, j, data, weight, err, dq, fp, ip, tx, ty, ex, ey, lut,
                  num, den, var, outdq, zidx, ctx, ctxbit):
    """Drizzle input pixel ``[j, i]`` with the kernel named by ``ip[I_KERNEL]`` (CUDA path)."""
    kernel = ip[I_KERNEL]
    if kernel == K_SQUARE:
        square_pixel(i, j, data, weight, err, dq, fp, ip, tx, ty, ex, ey, lut,
                     num, den, var, outdq, zidx, ctx, ctxbit)
        return
    ok, xc, yc = pixel_centre(i, j, fp, tx, ty, ex, ey)
    if not ok:
        return
    if kernel == K_TURBO:
        turbo_drop(i, j, xc, yc, data, weight, err, dq, fp, ip, lut,
                   num, den, var, outdq, zidx, ctx, ctxbit)
    elif kernel == K_POINT:
        point_drop(i, j, xc, yc, data, weight, err, dq, fp, ip, lut,
                   num, den, var, outdq, zidx, ctx, ctxbit)
    elif kernel == K_GAUSSIAN:
        gaussian_drop(i, j, xc, yc, data, weight, err, dq, fp, ip, lut,
                      num, den, var, outdq, zidx, ctx, ctxbit)
    elif kernel == K_TOPHAT:
        tophat_drop(i, j, xc, yc, data, weight, err, dq, fp, ip, lut,
                    num, den, var, outdq, zidx, ctx, ctxbit)
    else:
        lanczos_drop(i, j, xc, yc, data, weight, err, dq, fp, ip, lut,
                     num, den, var, outdq, zidx, ctx, ctxbit)


def square_span(j, i0, i1, data, weight, err, dq, fp, ip, tx, ty, ex, ey, lut,
                num, den, var, outdq, zidx, ctx, ctxbit):
    """Square kernel with pixfrac 1 and a coordinate table, input pixels ``[j, i0:i1]`` (the
    CPU driver's unit of work; see :func:`shares_corners`).

    Neighbouring drops share their corners, so each corner is mapped once: the right corners
    of pixel i are bit for bit the left corners of pixel i+1 (``(i+1) + 0.5 == (i+2) - 0.5``).
    """
    factor = fp[P_FACTOR]
    xa, ya = map_offset(0, i0, j, -0.5, 0.5, factor, tx, ty, ex, ey)
    xb, yb = map_offset(3, i0, j, -0.5, -0.5, factor, tx, ty, ex, ey)
    for i in range(i0, i1):
        xc, yc = map_offset(1, i, j, 0.5, 0.5, factor, tx, ty, ex, ey)
        xd, yd = map_offset(2, i, j, 0.5, -0.5, factor, tx, ty, ex, ey)
        d, w32, e2, dqv, scan = pixel_inputs(i, j, data, weight, err, dq, fp, ip)
        drop_square(xa, ya, xc, yc, xd, yd, xb, yb, d, w32, e2, dqv, scan, ip,
                    num, den, var, outdq, zidx, ctx, ctxbit)
        xa = xc
        ya = yc
        xb = xd
        yb = yd


def shares_corners(kernel, fp):
    """True when :func:`square_span` applies: the square kernel, pixfrac 1, a coordinate table."""
    return kernel == K_SQUARE and fp[P_HALF] == 0.5 and fp[P_FACTOR] > 0.0


def pixel_span(j, i0, i1, data, weight, err, dq, fp, ip, tx, ty, ex, ey, lut,
               num, den, var, outdq, zidx, ctx, ctxbit):
    """Input pixels ``[j, i0:i1]`` with ``kernel_pixel``, bound at compile time to one of the
    centred kernels' ``*_pixel`` functions (the CPU driver's unit of work)."""
    for i in range(i0, i1):
        kernel_pixel(i, j, data, weight, err, dq, fp, ip, tx, ty, ex, ey, lut,  # noqa: F821
                     num, den, var, outdq, zidx, ctx, ctxbit)


def centred_span(j, i0, i1, data, weight, err, dq, fp, ip, tx, ty, ex, ey, lut,
                 num, den, var, outdq, zidx, ctx, ctxbit):
    """Input pixels ``[j, i0:i1]`` of a centred kernel (the CPU driver's unit of work):
    ``kernel_drop`` is bound at compile time to one of the ``*_drop`` functions.

    The table row of input row ``j`` (:func:`table_row`) is looked up once for the span; each
    centre is then what :func:`pixel_centre` gives, bit for bit.
    """
    factor = fp[P_FACTOR]
    b = 0
    fv = 0.0
    gv = 0.0
    if factor > 0.0:
        b, fv, gv = table_row(tx, factor, j + 1.0)
    for i in range(i0, i1):
        if factor > 0.0:
            xo, yo = table_map_row(tx, ty, factor, i + 1.0, b, fv, gv)
            xc = xo - 1.0
            yc = yo - 1.0
        else:
            xc = ex[0, j, i] - 1.0
            yc = ey[0, j, i] - 1.0
        if math.isfinite(xc) and math.isfinite(yc):
            kernel_drop(i, j, xc, yc, data, weight, err, dq, fp, ip, lut,  # noqa: F821
                        num, den, var, outdq, zidx, ctx, ctxbit)


def finish_pixel(jj, ii, num, den, last_zero, init_bits, fill, has_fill, out_sci, out_sci_bits,
                 out_wht):
    """Write output SCI and WHT of pixel ``[jj, ii]`` from its sums: the weighted mean, else the
    fill value, else drizzlepac's INDEF value (the last zero-weight value, else the initial
    value).

    ``last_zero`` (int32) holds the bits of the last zero-weight value XOR ``init_bits``, the
    bits of the float32 initial value, so that zeroed storage means "none" (and costs nothing
    until written); ``out_sci_bits`` is an int32 view of ``out_sci``. Only the planes a pixel
    needs are read.
    """
    d = den[jj, ii]
    if d != 0.0:
        out_sci[jj, ii] = f32(num[jj, ii] / d)
    elif has_fill:
        out_sci[jj, ii] = fill
    else:
        out_sci_bits[jj, ii] = last_zero[jj, ii] ^ init_bits
    out_wht[jj, ii] = f32(d)


def store_zero_weight(jj, ii, value, init_bits, last_zero):
    """Record ``value`` as pixel ``[jj, ii]``'s last zero-weight value in the encoding of
    :func:`finish_pixel`: its float32 bits XOR ``init_bits``, written as one int32 (the
    target's ``float_bits`` gives the bits; a store through a float32 view followed by an
    XOR through the int32 view may be reordered by a compiler that takes the two views as
    distinct arrays)."""
    last_zero[jj, ii] = float_bits(value) ^ init_bits  # noqa: F821


def zero_weight_value(data, idx, nx, fp, flags):
    """Float32 data value ``d`` of the input pixel with flat index ``idx`` (0 if non-finite)."""
    j = idx // nx
    i = idx - j * nx
    v = f32(data[j, i])
    if not math.isfinite(v):
        return f32(0.0)
    if flags & F_COUNTS:
        v = f32(v * f32(fp[P_INV_EXP]))
    return f32(v * f32(fp[P_SCALE2]))


#: The ``*_drop`` function of each centred kernel (``kernel_drop`` of :func:`centred_span`;
#: also the name of that kernel's CPU driver variant in the cache).
CENTRED_PIXEL_FUNCTIONS = {
    K_POINT: "point_drop",
    K_TURBO: "turbo_drop",
    K_GAUSSIAN: "gaussian_drop",
    K_TOPHAT: "tophat_drop",
    K_LANCZOS2: "lanczos_drop",
    K_LANCZOS3: "lanczos_drop",
}

#: Per-pixel drizzle functions in dependency order (``deposit`` comes from the target).
DRIZZLE_FUNCTIONS = (
    nint,
    table_row,
    table_map_row,
    table_map,
    map_offset,
    edge_slope,
    edge_area,
    boxer,
    clamp_range,
    input_value,
    input_error,
    pixel_inputs,
    drop_square,
    square_pixel,
    pixel_centre,
    centre_window,
    point_drop,
    turbo_overlap,
    turbo_row,
    turbo_drop,
    gaussian_factor,
    gaussian_drop,
    tophat_drop,
    lanczos_drop,
    drizzle_pixel,
    square_span,
    pixel_span,
    centred_span,
    zero_weight_value,
    finish_pixel,
    store_zero_weight,
)
