"""Per-pixel peak test and per-star DAOFIND measurements, written once for all targets.

Plain Python compiled by :func:`hapgpu.kernels.targets.compile_namespace`.

Peak test (photutils ``find_peaks``): a pixel is a peak when it is above the threshold, not
masked, outside the border and equal to the maximum of its footprint window, where pixels
outside the image count as 0 (``zero_rule`` 0: when a footprint element falls outside;
``zero_rule`` 1: when the window box is clipped, as photutils' circular footprint does). With
an inscribed square (``insc_half >= 0``) the pixel must also equal the maximum of that square
(0 outside).

DAOFIND (photutils ``DAOStarFinder``): cut-outs of the kernel's shape around the integer
position (0 outside the image); sharpness, the two roundness statistics and the marginal
Gaussian fits that give the centroid offsets ``dx, dy`` and amplitudes ``hx, hy``.
"""

import math

# Slots of the per-axis kernel constants (row 0: x axis, row 1: y axis).
K_WT_SUM = 0
K_KERN_SUM = 1
K_KERN2_SUM = 2
K_DKERN_SUM = 3
K_DKERN2_SUM = 4
K_KERN_DKERN_SUM = 5
K_SIGMA = 6
K_SIZE = 7
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
    """One marginal Gaussian fit of DAOFIND; returns ``(offset, amplitude)`` (NaN if invalid).

    ``axis`` 1 fits along x (columns collapsed with the y weights ``wt1d[1]``), 0 along y
    (rows collapsed with the x weights ``wt1d[0]``).
    """
    size = kx if axis == 1 else ky
    row = 0 if axis == 1 else 1
    hy = ky // 2
    hx = kx // 2
    data_sum = 0.0
    data_kern_sum = 0.0
    data_dkern_sum = 0.0
    data_dx_sum = 0.0
    for a in range(size):
        s1 = 0.0
        if axis == 1:
            for b in range(ky):
                s1 += cut(data, yc - hy + b, xc - hx + a) * wt1d[1, b]
        else:
            for b in range(kx):
                s1 += cut(data, yc - hy + a, xc - hx + b) * wt1d[0, b]
        w = wt1d[row, a]
        data_sum += s1 * w
        data_kern_sum += s1 * kern1d[row, a] * w
        data_dkern_sum += s1 * dkern1d[row, a] * w
        data_dx_sum += s1 * dxx1d[row, a] * w
    wt_sum = kconst[row, K_WT_SUM]
    kern_sum = kconst[row, K_KERN_SUM]
    kern2_sum = kconst[row, K_KERN2_SUM]
    dkern_sum = kconst[row, K_DKERN_SUM]
    dkern2_sum = kconst[row, K_DKERN2_SUM]
    kern_dkern_sum = kconst[row, K_KERN_DKERN_SUM]
    sigma = kconst[row, K_SIGMA]
    numer = data_kern_sum - (data_sum * kern_sum) / wt_sum
    denom = kern2_sum - (kern_sum * kern_sum / wt_sum)
    if numer <= 0.0 or denom <= 0.0:
        return math.nan, math.nan
    h = numer / denom
    d = (kern_dkern_sum - (data_dkern_sum - dkern_sum * data_sum)) / (
        h * dkern2_sum / (sigma * sigma))
    hsize = size / 2.0
    if abs(d) > hsize:
        if data_sum == 0.0:
            d = 0.0
        else:
            d = data_dx_sum / data_sum
        if abs(d) > hsize:
            d = 0.0
    return d, h


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
