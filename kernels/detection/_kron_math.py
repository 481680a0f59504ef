"""Per-source Kron radius and Kron photometry, written once for all targets.

Plain Python compiled by :func:`hapgpu.kernels.targets.compile_namespace` (``numba.njit`` on
the CPU, CUDA device functions on ``cuda`` / ``cudasim``). A function refers to another by
its global name.

Exact ellipse/pixel overlap
---------------------------
An ellipse of semi-axes ``a``, ``b`` at angle ``theta`` becomes the unit disc under the map
``u = (x cos t + y sin t) / a``, ``v = (-x sin t + y cos t) / b``, which scales areas by
``1 / (a b)``; a pixel becomes a parallelogram. The area of a convex polygon inside the unit
disc is the sum, over its directed edges ``A -> B``, of the signed area of the triangle
``(O, A, B)`` inside the disc (Green's theorem). Each edge is split where it crosses the circle;
a piece inside the disc contributes its triangle ``(A x B) / 2``, a piece outside the sector
``atan2(A x B, A . B) / 2``. The same code with ``a = b = r`` gives the exact circle overlap.

Kron quantities (photutils ``SourceCatalog``, after SExtractor, Bertin & Arnouts 1996)
---------------------------------------------------------------------------------------
* :func:`kron_radius_one`: the unscaled first-moment radius
  ``sum(r_i I_i) / sum(I_i)`` over the pixel centres inside the elliptical radius 6 of the
  moment ellipse, ``r**2 = cxx x**2 + cxy x y + cyy y**2``.
* :func:`kron_flux_one`: ``sum(w_i I_i)`` and ``sum(w_i e_i**2)`` with ``w_i`` the exact
  overlap fraction of pixel ``i`` with the Kron ellipse (semi-axes scaled by
  ``kron_params[0] * kron_radius``) or, when the Kron radius was set to 0 by the minimum
  circular radius rule, with the circle of radius ``kron_params[2]``.

Neighbouring segments (``method``): 0 (none) counts them; 1 (mask) ignores them; 2 (correct)
replaces each of their pixels by the pixel mirrored about the centre
``2 int(c + 0.5) - i`` of the clipped cut-out, or by 0 when that pixel is outside the cut-out,
in a neighbour segment, masked or not finite (photutils' ``_mask_to_mirrored_value``). Pixels
that are masked or have non-finite data are never used.

Array elements are read through ``float()``: in the CUDA simulator a float32 element times a
Python float stays float32 (NumPy's promotion rules), whereas compiled code promotes to
float64 as photutils' ``data.astype(float)`` does.
"""

import math

APERMASK_NONE = 0
APERMASK_MASK = 1
APERMASK_CORRECT = 2

# kron_flux_one status
KRON_OK = 0
KRON_NO_PIXELS = 1      # every overlapping pixel masked (or no overlap): NaN flux
KRON_TOO_LARGE = 2      # aperture box larger than max_size pixels: NaN flux


def disc_piece_area(ax, ay, bx, by):
    """Signed area of the unit disc in the triangle ``(O, A, B)`` when the segment ``AB`` does
    not cross the unit circle: the triangle if ``AB`` lies inside, else the sector."""
    mx = 0.5 * (ax + bx)
    my = 0.5 * (ay + by)
    cross = ax * by - ay * bx
    if mx * mx + my * my <= 1.0:
        return 0.5 * cross
    return 0.5 * math.atan2(cross, ax * bx + ay * by)


def edge_disc_area(ax, ay, bx, by):
    """Signed area of the unit disc inside the triangle ``(O, A, B)``."""
    dx = bx - ax
    dy = by - ay
    dd = dx * dx + dy * dy
    if dd == 0.0:
        return 0.0
    # |A + t d|**2 = 1  <=>  dd t**2 + 2 pd t + c = 0
    pd = ax * dx + ay * dy
    c = ax * ax + ay * ay - 1.0
    disc = pd * pd - dd * c
    if disc <= 0.0:
        return disc_piece_area(ax, ay, bx, by)
    root = math.sqrt(disc)
    q = -(pd + root) if pd >= 0.0 else -(pd - root)
    t0 = q / dd
    t1 = c / q if q != 0.0 else -t0
    if t0 > t1:
        t0, t1 = t1, t0
    t0 = min(max(t0, 0.0), 1.0)
    t1 = min(max(t1, 0.0), 1.0)
    px = ax + t0 * dx
    py = ay + t0 * dy
    qx = ax + t1 * dx
    qy = ay + t1 * dy
    area = 0.0
    if t0 > 0.0:
        area += disc_piece_area(ax, ay, px, py)
    if t1 > t0:
        area += disc_piece_area(px, py, qx, qy)
    if t1 < 1.0:
        area += disc_piece_area(qx, qy, bx, by)
    return area


def ellipse_overlap(xmin, ymin, xmax, ymax, a, b, cos_m, sin_m):
    """Exact area of the rectangle ``[xmin, xmax] x [ymin, ymax]`` inside the ellipse of
    semi-axes ``a`` (along the major axis) and ``b`` centred at the origin.

    ``cos_m``, ``sin_m`` are ``cos(-theta)`` and ``sin(-theta)``, ``theta`` the angle of the
    major axis counter-clockwise from +x (radians).
    """
    # corners in counter-clockwise order, mapped to the frame where the ellipse is the unit
    # disc (a rotation by -theta then a scaling keeps the orientation)
    x0 = (xmin * cos_m - ymin * sin_m) / a
    y0 = (xmin * sin_m + ymin * cos_m) / b
    x1 = (xmax * cos_m - ymin * sin_m) / a
    y1 = (xmax * sin_m + ymin * cos_m) / b
    x2 = (xmax * cos_m - ymax * sin_m) / a
    y2 = (xmax * sin_m + ymax * cos_m) / b
    x3 = (xmin * cos_m - ymax * sin_m) / a
    y3 = (xmin * sin_m + ymax * cos_m) / b
    full = (xmax - xmin) * (ymax - ymin)
    if (x0 * x0 + y0 * y0 <= 1.0 and x1 * x1 + y1 * y1 <= 1.0 and x2 * x2 + y2 * y2 <= 1.0
            and x3 * x3 + y3 * y3 <= 1.0):
        return full
    area = (edge_disc_area(x0, y0, x1, y1) + edge_disc_area(x1, y1, x2, y2)
            + edge_disc_area(x2, y2, x3, y3) + edge_disc_area(x3, y3, x0, y0)) * (a * b)
    if area <= 0.0:
        return 0.0
    if area > full:
        return full
    return area


def kron_radius_one(lab, xc, yc, a, b, theta, cxx, cxy, cyy, data, segm, mask, use_mask,
                    method, kron_min, min_circ, max_size):
    """photutils' measured (unscaled, unclipped) Kron radius of one source.

    ``a``, ``b``: 6 x the 1-sigma semi-axes of the moment ellipse (pixels); ``theta`` its
    angle (radians); ``cxx``, ``cxy``, ``cyy`` its SExtractor coefficients. The cut-out is the
    box of the ellipse (photutils' ``BoundingBox.from_float``), pixels are used by their
    centres (``r <= 6``). Returns NaN for a box larger than ``max_size`` or outside the image,
    ``kron_min`` when the weighted sums are not positive.
    """
    ny_img = data.shape[0]
    nx_img = data.shape[1]
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
    # mirror centre inside the cut-out (photutils: int(cut-out centre + 0.5))
    mx = 2 * int(xc - lx0 + 0.5)
    my = 2 * int(yc - ly0 + 0.5)
    numer = 0.0
    denom = 0.0
    for cj in range(ch):
        j = ly0 + cj
        yy = j - yc
        for ci in range(cw):
            i = lx0 + ci
            v = float(data[j, i])
            bad = (not math.isfinite(v)) or (use_mask and mask[j, i])
            s = segm[j, i]
            neighbour = s != lab and s != 0
            if method == APERMASK_MASK and neighbour:
                bad = True
            if bad:
                continue
            xx = i - xc
            rr = math.sqrt(max(cxx * xx * xx + cxy * xx * yy + cyy * yy * yy, 0.0))
            if use_circular:
                inside = xx * xx + yy * yy <= min_circ * min_circ
            else:
                inside = rr <= 6.0
            if not inside:
                continue
            if method == APERMASK_CORRECT and neighbour:
                if mirror_valid(data, segm, mask, use_mask, lab, lx0, ly0, cw, ch, mx - ci,
                                my - cj):
                    v = float(data[ly0 + my - cj, lx0 + mx - ci])
                else:
                    v = 0.0
            numer += v * rr
            denom += v
    if numer <= 0.0 or denom <= 0.0:
        return kron_min
    return numer / denom


def mirror_valid(data, segm, mask, use_mask, lab, lx0, ly0, cw, ch, mi, mj):
    """True when the cut-out pixel ``(mj, mi)`` (relative to ``(ly0, lx0)``, cut-out of shape
    ``(ch, cw)``) can replace a neighbour pixel: inside the cut-out, not in a neighbouring
    segment, not masked and with finite data."""
    if mi < 0 or mj < 0 or mi >= cw or mj >= ch:
        return False
    sm = segm[ly0 + mj, lx0 + mi]
    if sm != lab and sm != 0:
        return False
    if use_mask and mask[ly0 + mj, lx0 + mi]:
        return False
    return math.isfinite(float(data[ly0 + mj, lx0 + mi]))


def kron_flux_one(lab, xc, yc, a, b, theta, radius, data, error, segm, mask, flags, method,
                  max_size):
    """Kron flux of one source in the exact-overlap aperture (photutils' Kron photometry).

    Parameters
    ----------
    lab : int
        The source's label in ``segm``.
    xc, yc : float
        Aperture centre (pixels, 0-based).
    a, b, theta : float
        Semi-axes (pixels) and angle (radians) of the elliptical aperture; ignored when
        ``radius > 0``.
    radius : float
        Radius of the circular aperture used instead (photutils' minimum circular radius),
        or 0.
    data, error : 2-D arrays
        ``error`` is read when bit 1 of ``flags`` is set; its square is formed in its own
        dtype, as NumPy does for photutils.
    segm : 2-D int array
    mask : 2-D bool array
        Read when bit 2 of ``flags`` is set.
    method : int
        0 none, 1 mask, 2 correct (see the module docstring).
    max_size : int
        Largest aperture box (pixels) measured.

    Returns
    -------
    flux, variance : float
        ``sum w I`` and ``sum w e**2`` over the good pixels with ``w > 0``.
    status : int
        ``KRON_OK``, ``KRON_NO_PIXELS`` or ``KRON_TOO_LARGE``.
    """
    ny_img = data.shape[0]
    nx_img = data.shape[1]
    use_err = (flags & 1) != 0
    use_mask = (flags & 2) != 0
    if radius > 0.0:
        a = radius
        b = radius
        cos_m = 1.0
        sin_m = 0.0
        x_ext = radius
        y_ext = radius
    else:
        ct = math.cos(theta)
        st = math.sin(theta)
        x_ext = math.sqrt((a * ct) ** 2 + (b * st) ** 2)
        y_ext = math.sqrt((a * st) ** 2 + (b * ct) ** 2)
        cos_m = math.cos(-theta)
        sin_m = math.sin(-theta)
    # photutils' aperture box: floor(c - extent + 0.5) .. floor(c + extent + 1.5) (exclusive)
    ixmin = math.floor(xc - x_ext + 0.5)
    ixmax = math.floor(xc + x_ext + 1.5)
    iymin = math.floor(yc - y_ext + 0.5)
    iymax = math.floor(yc + y_ext + 1.5)
    nx = ixmax - ixmin
    ny = iymax - iymin
    if nx * ny > max_size:
        return math.nan, math.nan, KRON_TOO_LARGE
    lx0 = max(ixmin, 0)
    ly0 = max(iymin, 0)
    lx1 = min(ixmax, nx_img)
    ly1 = min(iymax, ny_img)
    if lx0 >= lx1 or ly0 >= ly1:
        return math.nan, math.nan, KRON_NO_PIXELS
    cw = lx1 - lx0
    ch = ly1 - ly0
    mx = 2 * int(xc - lx0 + 0.5)
    my = 2 * int(yc - ly0 + 0.5)
    # pixel edges relative to the centre, stepped as photutils' overlap grid steps them
    ex0 = ixmin - 0.5 - xc
    ey0 = iymin - 0.5 - yc
    dx = ((ixmax - 0.5 - xc) - ex0) / nx
    dy = ((iymax - 0.5 - yc) - ey0) / ny
    norm = 1.0 / (dx * dy)
    r_bound = max(a, b)
    bx0 = -r_bound - 0.5 * dx
    bx1 = r_bound + 0.5 * dx
    by0 = -r_bound - 0.5 * dy
    by1 = r_bound + 0.5 * dy
    total = 0.0
    var = 0.0
    count = 0
    for cj in range(ch):
        j = ly0 + cj
        py0 = ey0 + (j - iymin) * dy
        py1 = py0 + dy
        if not (py1 > by0 and py0 < by1):
            continue
        for ci in range(cw):
            i = lx0 + ci
            px0 = ex0 + (i - ixmin) * dx
            px1 = px0 + dx
            if not (px1 > bx0 and px0 < bx1):
                continue
            w = ellipse_overlap(px0, py0, px1, py1, a, b, cos_m, sin_m) * norm
            if w <= 0.0:
                continue
            v = float(data[j, i])
            if not math.isfinite(v) or (use_mask and mask[j, i]):
                continue
            s = segm[j, i]
            neighbour = s != lab and s != 0
            if neighbour and method == APERMASK_MASK:
                continue
            if neighbour and method == APERMASK_CORRECT:
                mi = mx - ci
                mj = my - cj
                if mirror_valid(data, segm, mask, use_mask, lab, lx0, ly0, cw, ch, mi, mj):
                    v = float(data[ly0 + mj, lx0 + mi])
                    if use_err:
                        e = error[ly0 + mj, lx0 + mi]
                        var += w * float(e * e)
                else:
                    v = 0.0
            elif use_err:
                e = error[j, i]
                # e * e in the error's own dtype, as NumPy squares photutils' error cut-out
                var += w * float(e * e)
            total += w * v
            count += 1
    if count == 0:
        return math.nan, math.nan, KRON_NO_PIXELS
    return total, var, KRON_OK


KRON_FUNCTIONS = (disc_piece_area, edge_disc_area, ellipse_overlap, mirror_valid,
                  kron_radius_one, kron_flux_one)
