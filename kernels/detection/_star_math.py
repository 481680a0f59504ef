"""Per-pixel peak test and per-star DAOFIND measurements, written once for all targets.

Plain Python compiled by :func:`hapgpu.kernels.targets.compile_namespace`.

Peak test (photutils ``find_peaks``): a pixel is a peak when it is above the threshold, not
masked, outside the border and equal to the maximum of its footprint window, where pixels
outside the image count as 0 (``zero_rule`` 0: when a footprint element falls outside;
``zero_rule`` 1: when the window box is clipped, as photutils' circular footprint does). With
an inscribed square (``insc_half >= 0``) the pixel must also equal the maximum of that square
(0 outside).

DAOFIND (Stetson 1987, PASP 99, 191; photutils ``DAOStarFinder``): cut-outs of the kernel's
shape around the integer position (0 outside the image); sharpness, the two roundness
statistics and the marginal Gaussian fits that give the centroid offsets ``dx, dy`` and
amplitudes ``hx, hy``.
"""

import math

# Slots of the per-axis kernel constants (row 0: x axis, row 1: y axis); ``g`` is the
# Gaussian's weighted marginal, ``g' = g * (c - k)`` its offset-weighted form, ``w`` the
# triangular weights along the axis (see StarFinderKernel.marginal_constants).
K_SUM_W = 0        # sum w
K_SUM_G = 1        # sum g w
K_SUM_GG = 2       # sum g**2 w
K_SUM_G1 = 3       # sum g' w
K_SUM_G1G1 = 4     # sum g'**2 w
K_SUM_GG1 = 5      # sum g g' w
K_SIGMA = 6        # Gaussian sigma along the axis (pixels)
K_SIZE = 7         # kernel length along the axis
N_KCONST = 8

# Output columns of dao_measure_one.
S_DX = 0
S_DY = 1
S_HX = 2
S_HY = 3
S_SHARP = 4
S_ROUND1 = 5
S_ROUND2 = 6
S_PEAK = 7
S_FLUX = 8
S_CONV_PEAK = 9
N_STAR = 10


def pixel_value(img, j, i, nan_value):
    """Value of ``img[j, i]`` with NaN replaced by ``nan_value`` (as float64)."""
    v = img[j, i] * 1.0
    if v != v:
        return nan_value
    return v


def is_peak(img, j, i, thr, scalar_thr, mask, use_mask, nan_value, border_y, border_x,
            footprint, off_y, off_x, zero_rule, insc_half):
    """photutils' local-peak test at pixel ``(j, i)`` (see the module docstring)."""
    ny = img.shape[0]
    nx = img.shape[1]
    raw = img[j, i] * 1.0
    if raw != raw:
        return False
    if use_mask and mask[j, i]:
        return False
    if border_y > 0 and (j < border_y or j >= ny - border_y):
        return False
    if border_x > 0 and (i < border_x or i >= nx - border_x):
        return False
    t = thr[0, 0] if scalar_thr else thr[j, i]
    if not (raw > t):
        return False
    fh = footprint.shape[0]
    fw = footprint.shape[1]
    y0 = j + off_y
    x0 = i + off_x
    clipped = y0 < 0 or x0 < 0 or y0 + fh > ny or x0 + fw > nx
    zero_seen = False
    for fy in range(fh):
        yy = y0 + fy
        for fx in range(fw):
            if not footprint[fy, fx]:
                continue
            xx = x0 + fx
            if yy < 0 or xx < 0 or yy >= ny or xx >= nx:
                zero_seen = True
                continue
            if pixel_value(img, yy, xx, nan_value) > raw:
                return False
    if zero_rule == 1 and clipped:
        zero_seen = True
    if zero_seen and 0.0 > raw:
        return False
    if insc_half >= 0:
        for yy in range(j - insc_half, j + insc_half + 1):
            for xx in range(i - insc_half, i + insc_half + 1):
                if yy < 0 or xx < 0 or yy >= ny or xx >= nx:
                    if 0.0 > raw:
                        return False
                elif pixel_value(img, yy, xx, nan_value) > raw:
                    return False
    return True


def cut(img, j, i):
    """``img[j, i]`` as float64, 0 outside the image."""
    if j < 0 or i < 0 or j >= img.shape[0] or i >= img.shape[1]:
        return 0.0
    return img[j, i] * 1.0


def marginal_fit(data, yc, xc, axis, ky, kx, kconst, kern1d, dkern1d, wt1d, dxx1d):
    """DAOFIND's centroid fit along one axis; returns ``(shift, height)`` (NaN, NaN if the
    fitted height is not positive).

    Following Stetson (1987, PASP 99, 191, section III.c), the cut-out around the star is
    collapsed onto the axis with the triangular weights of the other axis (``axis`` 1: along
    x, rows summed with ``wt1d[1]``; ``axis`` 0: along y, columns summed with ``wt1d[0]``),
    giving a marginal ``m(k)``. With the axis weights ``w``, the kernel marginal ``g`` and
    ``g' = g * (c - k)`` (``kern1d``, ``dkern1d``, constants ``kconst``):

    * height ``h = (sum m g w - sum m w sum g w / sum w) / (sum g**2 w - (sum g w)**2 /
      sum w)``, the linear least-squares amplitude of ``g`` plus a constant;
    * shift ``(sum g g' w - (sum m g' w - sum g' w sum m w)) / (h sum g'**2 w / sigma**2)``,
      one linearised step in the position (photutils' form of it, for parity);
    * a shift larger than half the kernel is replaced by the first moment
      ``sum m dxx w / sum m w`` (0 if ``sum m w`` is 0), and by 0 if still too large.
    """
    size = kx if axis == 1 else ky
    row = 0 if axis == 1 else 1
    y0 = yc - ky // 2
    x0 = xc - kx // 2
    sum_m = 0.0      # sum m w
    sum_mg = 0.0     # sum m g w
    sum_mg1 = 0.0    # sum m g' w
    sum_moff = 0.0   # sum m dxx w
    for k in range(size):
        m = 0.0
        if axis == 1:
            for t in range(ky):
                m += cut(data, y0 + t, x0 + k) * wt1d[1, t]
        else:
            for t in range(kx):
                m += cut(data, y0 + k, x0 + t) * wt1d[0, t]
        w = wt1d[row, k]
        sum_m += m * w
        sum_mg += m * kern1d[row, k] * w
        sum_mg1 += m * dkern1d[row, k] * w
        sum_moff += m * dxx1d[row, k] * w
    sum_w = kconst[row, K_SUM_W]
    sum_g = kconst[row, K_SUM_G]
    sigma = kconst[row, K_SIGMA]
    height_num = sum_mg - (sum_m * sum_g) / sum_w
    height_den = kconst[row, K_SUM_GG] - (sum_g * sum_g / sum_w)
    if height_num <= 0.0 or height_den <= 0.0:
        return math.nan, math.nan
    height = height_num / height_den
    shift = (kconst[row, K_SUM_GG1] - (sum_mg1 - kconst[row, K_SUM_G1] * sum_m)) / (
        height * kconst[row, K_SUM_G1G1] / (sigma * sigma))
    limit = size / 2.0
    if abs(shift) > limit:
        shift = 0.0 if sum_m == 0.0 else sum_moff / sum_m
        if abs(shift) > limit:
            shift = 0.0
    return shift, height


def dao_measure_one(data, conv, xc, yc, kmask, n_kpix, kconst, kern1d, dkern1d, wt1d, dxx1d,
                    out, k):
    """DAOFIND statistics of the star at integer position ``(xc, yc)`` into ``out[k, :]``."""
    ky = kmask.shape[0]
    kx = kmask.shape[1]
    hy = ky // 2
    hx = kx // 2
    cy = (ky - 1) // 2
    cx = (kx - 1) // 2
    peak = cut(data, yc - hy + cy, xc - hx + cx)
    conv_peak = cut(conv, yc - hy + cy, xc - hx + cx)
    masked_sum = 0.0
    flux = 0.0
    sum2 = 0.0
    sum4 = 0.0
    for a in range(ky):
        for b in range(kx):
            v = cut(data, yc - hy + a, xc - hx + b)
            flux += v
            masked_sum += v * kmask[a, b]
            if a == cy and b == cx:
                continue
            c = cut(conv, yc - hy + a, xc - hx + b)
            sum4 += abs(c)
            if a <= cy and b > cx:
                sum2 -= c
            elif a < cy and b <= cx:
                sum2 += c
            elif a >= cy and b < cx:
                sum2 -= c
            elif a > cy and b >= cx:
                sum2 += c
    data_mean = (masked_sum - peak) / (n_kpix - 1)
    out[k, S_SHARP] = (peak - data_mean) / conv_peak if conv_peak != 0.0 else (
        math.nan if peak - data_mean == 0.0 else math.copysign(math.inf, peak - data_mean))
    out[k, S_ROUND1] = 2.0 * sum2 / sum4 if sum4 != 0.0 else math.nan
    dx, hxv = marginal_fit(data, yc, xc, 1, ky, kx, kconst, kern1d, dkern1d, wt1d, dxx1d)
    dy, hyv = marginal_fit(data, yc, xc, 0, ky, kx, kconst, kern1d, dkern1d, wt1d, dxx1d)
    out[k, S_DX] = dx
    out[k, S_DY] = dy
    out[k, S_HX] = hxv
    out[k, S_HY] = hyv
    out[k, S_ROUND2] = 2.0 * (hxv - hyv) / (hxv + hyv) if hxv + hyv != 0.0 else math.nan
    out[k, S_PEAK] = peak
    out[k, S_FLUX] = flux
    out[k, S_CONV_PEAK] = conv_peak


STAR_FUNCTIONS = (pixel_value, is_peak, cut, marginal_fit, dao_measure_one)
