"""Per-box background statistics, written once for the CPU and CUDA targets.

Plain Python compiled by :func:`hapgpu.kernels.targets.compile_namespace` together with
:mod:`._select` (whose functions are called by name). One call handles one mesh box of
photutils' ``Background2D``: gather the finite unmasked pixels, clip them as astropy's fast C
path does (float64 bounds, median centre, std spread), then apply the background and rms
estimators, rounding like NumPy does for float32 data.
"""

import math

import numpy as np

BKG_SEXTRACTOR = 0
BKG_MEDIAN = 1
BKG_MEAN = 2
BKG_MMM = 3
RMS_STD = 0
RMS_MADSTD = 1

MAD_TO_STD = 1.482602218505602


def box_clip(buf, n, sigma_lower, sigma_upper, maxiters, scratch):
    """astropy's fast-path clip of ``buf[0:n]`` in float64; returns the survivor count."""
    while n > 0:
        for i in range(n):
            scratch[i] = buf[i]
        median = median_inplace(scratch, n)
        mean, std = mean_std(buf, n, 0)
        lower = median - sigma_lower * std
        upper = median + sigma_upper * std
        k = 0
        for i in range(n):
            v = buf[i]
            if v >= lower and v <= upper:
                buf[k] = v
                k += 1
        if k == n or k == 0:
            return k
        n = k
        maxiters -= 1
        if maxiters == 0:
            return n
    return n


def estimate(buf, n, scratch, bkg_id, rms_id, as_f32):
    """Background and rms estimates of ``buf[0:n]`` (photutils estimators)."""
    if n == 0:
        return math.nan, math.nan
    mean, std = mean_std(buf, n, 0)
    mean = round_f32(mean, as_f32)
    std = round_f32(std, as_f32)
    for i in range(n):
        scratch[i] = buf[i]
    median = round_f32(median_typed(scratch, n, as_f32), as_f32)
    if bkg_id == BKG_MEDIAN:
        bkg = median
    elif bkg_id == BKG_MEAN:
        bkg = mean
    elif bkg_id == BKG_MMM:
        bkg = round_f32(round_f32(3.0 * median, as_f32) - round_f32(2.0 * mean, as_f32), as_f32)
    elif std == 0.0:  # SExtractor
        bkg = mean
    else:
        skew = round_f32(round_f32(abs(round_f32(mean - median, as_f32)), as_f32) / std, as_f32)
        limit = np.float64(np.float32(0.3)) if as_f32 else 0.3
        if skew >= limit:
            bkg = median
        else:
            bkg = round_f32(round_f32(2.5 * median, as_f32) - round_f32(1.5 * mean, as_f32),
                            as_f32)
    if rms_id == RMS_MADSTD:
        for i in range(n):
            scratch[i] = round_f32(abs(buf[i] - median), as_f32)
        mad = round_f32(median_typed(scratch, n, as_f32), as_f32)
        factor = np.float64(np.float32(MAD_TO_STD)) if as_f32 else MAD_TO_STD
        rms = round_f32(mad * factor, as_f32)
    else:
        rms = std
    return bkg, rms


def box_stats_one(data, mask, use_mask, by, bx, box_y, box_x, sigma_lower, sigma_upper,
                  maxiters, do_clip, bkg_id, rms_id, good_npix, as_f32, buf, scratch):
    """(background, rms, n_good) of mesh box ``(by, bx)``; NaNs when ``n_good <= good_npix``."""
    ny = data.shape[0]
    nx = data.shape[1]
    y0 = by * box_y
    x0 = bx * box_x
    y1 = min(y0 + box_y, ny)
    x1 = min(x0 + box_x, nx)
    n = 0
    for j in range(y0, y1):
        for i in range(x0, x1):
            v = data[j, i] * 1.0
            if v == v and v - v == 0.0 and not (use_mask and mask[j, i]):
                buf[n] = v
                n += 1
    if do_clip and n > 0:
        n = box_clip(buf, n, sigma_lower, sigma_upper, maxiters, scratch)
    if n <= good_npix:
        return math.nan, math.nan, n
    bkg, rms = estimate(buf, n, scratch, bkg_id, rms_id, as_f32)
    return bkg, rms, n


STATS_FUNCTIONS = (box_clip, estimate, box_stats_one)
