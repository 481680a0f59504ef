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

import numpy as np

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
    v = float(img[j, i])
    if v != v:
        return nan_value
    return v


def is_peak(img, j, i, thr, scalar_thr, mask, use_mask, nan_value, border_y, border_x,
            footprint, off_y, off_x, zero_rule, insc_half):
    """photutils' local-peak test at pixel ``(j, i)`` (see the module docstring)."""
    ny = img.shape[0]
    nx = img.shape[1]
    raw = float(img[j, i])
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
    return float(img[j, i])


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


# Output columns of iraf_measure_one.
I_XC = 0           # centroid x relative to the cut-out origin
I_YC = 1           # centroid y relative to the cut-out origin
I_MU_XX = 2        # central moment sum dx**2 c / sum c
I_MU_YY = 3        # central moment sum dy**2 c / sum c
I_MU_XY = 4        # central moment sum dx dy c / sum c
I_SKY = 5          # mean of the cut-out outside the kernel footprint
I_PEAK = 6         # largest sky-subtracted value c
I_FLUX = 7         # sum c
I_NPIX = 8         # number of c != 0
N_IRAF = 9

# numpy's pairwise summation: blocks of at most this many terms are summed with 8 running
# partial sums, longer runs are halved (at a multiple of 8)
PAIRWISE_BLOCK = 128


def round32(x, f32):
    """``x`` rounded to float32 when ``f32`` (returned as float64), else ``x``.

    A sum, difference or quotient of two float32 numbers formed in float64 and then rounded
    to float32 equals the float32 operation (float64 carries more than twice float32's
    precision), so float32 arithmetic is emulated exactly.
    """
    if f32:
        return float(np.float32(x))
    return x


def sky_term(data, x0, y0, kx, kmask, t):
    """Term ``t`` (raster order) of the sky sum: the cut-out pixel where the kernel footprint
    is 0, else 0 (0 outside the image)."""
    a = t // kx
    b = t - a * kx
    if kmask[a, b] != 0.0:
        return 0.0
    return cut(data, y0 + a, x0 + b)


def pairwise_block(data, x0, y0, kx, kmask, lo, n, f32):
    """numpy's unrolled summation of terms ``lo .. lo + n - 1`` (``n <= PAIRWISE_BLOCK``):
    fewer than 8 terms in order; else 8 interleaved partial sums combined as
    ``((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))``, then the remainder in order."""
    if n < 8:
        res = 0.0
        for t in range(lo, lo + n):
            res = round32(res + sky_term(data, x0, y0, kx, kmask, t), f32)
        return res
    r0 = sky_term(data, x0, y0, kx, kmask, lo)
    r1 = sky_term(data, x0, y0, kx, kmask, lo + 1)
    r2 = sky_term(data, x0, y0, kx, kmask, lo + 2)
    r3 = sky_term(data, x0, y0, kx, kmask, lo + 3)
    r4 = sky_term(data, x0, y0, kx, kmask, lo + 4)
    r5 = sky_term(data, x0, y0, kx, kmask, lo + 5)
    r6 = sky_term(data, x0, y0, kx, kmask, lo + 6)
    r7 = sky_term(data, x0, y0, kx, kmask, lo + 7)
    full = n - n % 8
    i = 8
    while i < full:
        r0 = round32(r0 + sky_term(data, x0, y0, kx, kmask, lo + i), f32)
        r1 = round32(r1 + sky_term(data, x0, y0, kx, kmask, lo + i + 1), f32)
        r2 = round32(r2 + sky_term(data, x0, y0, kx, kmask, lo + i + 2), f32)
        r3 = round32(r3 + sky_term(data, x0, y0, kx, kmask, lo + i + 3), f32)
        r4 = round32(r4 + sky_term(data, x0, y0, kx, kmask, lo + i + 4), f32)
        r5 = round32(r5 + sky_term(data, x0, y0, kx, kmask, lo + i + 5), f32)
        r6 = round32(r6 + sky_term(data, x0, y0, kx, kmask, lo + i + 6), f32)
        r7 = round32(r7 + sky_term(data, x0, y0, kx, kmask, lo + i + 7), f32)
        i += 8
    res = round32(round32(round32(r0 + r1, f32) + round32(r2 + r3, f32), f32)
                  + round32(round32(r4 + r5, f32) + round32(r6 + r7, f32), f32), f32)
    while i < n:
        res = round32(res + sky_term(data, x0, y0, kx, kmask, lo + i), f32)
        i += 1
    return res


def pairwise_split(n):
    """Length of the first half when numpy's pairwise sum splits ``n`` terms."""
    n2 = n // 2
    return n2 - n2 % 8


def pairwise_level1(data, x0, y0, kx, kmask, lo, n, f32):
    """numpy's pairwise sum of ``n`` terms, one halving deep (exact up to 2 blocks)."""
    if n <= PAIRWISE_BLOCK:
        return pairwise_block(data, x0, y0, kx, kmask, lo, n, f32)
    n2 = pairwise_split(n)
    return round32(pairwise_block(data, x0, y0, kx, kmask, lo, n2, f32)
                   + pairwise_block(data, x0, y0, kx, kmask, lo + n2, n - n2, f32), f32)


def pairwise_level2(data, x0, y0, kx, kmask, lo, n, f32):
    """numpy's pairwise sum of ``n`` terms, two halvings deep."""
    if n <= PAIRWISE_BLOCK:
        return pairwise_block(data, x0, y0, kx, kmask, lo, n, f32)
    n2 = pairwise_split(n)
    return round32(pairwise_level1(data, x0, y0, kx, kmask, lo, n2, f32)
                   + pairwise_level1(data, x0, y0, kx, kmask, lo + n2, n - n2, f32), f32)


def pairwise_level3(data, x0, y0, kx, kmask, lo, n, f32):
    """numpy's pairwise sum of ``n`` terms, three halvings deep."""
    if n <= PAIRWISE_BLOCK:
        return pairwise_block(data, x0, y0, kx, kmask, lo, n, f32)
    n2 = pairwise_split(n)
    return round32(pairwise_level2(data, x0, y0, kx, kmask, lo, n2, f32)
                   + pairwise_level2(data, x0, y0, kx, kmask, lo + n2, n - n2, f32), f32)


def pairwise_sky_sum(data, x0, y0, kmask, f32):
    """Sum of the cut-out outside the kernel footprint in numpy's order and precision
    (``np.sum`` of the masked cut-out: pairwise, in the data's dtype). Four halvings deep
    (device code cannot recurse): exact for cut-outs of up to about 1900 pixels (kernels up
    to 43 x 43); beyond that the deepest blocks are summed unrolled without halving."""
    n = kmask.shape[0] * kmask.shape[1]
    kx = kmask.shape[1]
    if n <= PAIRWISE_BLOCK:
        return pairwise_block(data, x0, y0, kx, kmask, 0, n, f32)
    n2 = pairwise_split(n)
    return round32(pairwise_level3(data, x0, y0, kx, kmask, 0, n2, f32)
                   + pairwise_level3(data, x0, y0, kx, kmask, n2, n - n2, f32), f32)


def iraf_measure_one(data, xc, yc, kmask, n_sky, f32, out, k):
    """IRAF ``starfind`` moments of the star at integer position ``(xc, yc)`` into
    ``out[k, :]`` (columns ``I_*``; photutils ``IRAFStarFinder``).

    The cut-out has the kernel's shape, centred on the position (0 outside the image). The
    sky is the mean of its pixels outside the kernel footprint (``n_sky`` of them), summed
    as numpy sums them (pairwise, in the data's precision: ``f32`` for float32 data) and
    divided in float64; any non-finite pixel makes it NaN. Inside the footprint
    ``c = max(pixel - sky, 0)`` (float64), 0 outside; the centroid, central second moments,
    peak, flux and number of non-zero ``c`` follow.
    """
    ky = kmask.shape[0]
    kx = kmask.shape[1]
    x0 = xc - kx // 2
    y0 = yc - ky // 2
    finite = True
    for a in range(ky):
        for b in range(kx):
            v = cut(data, y0 + a, x0 + b)
            if not math.isfinite(v):
                finite = False
    if not finite:
        for c in range(N_IRAF):
            out[k, c] = math.nan
        return
    # the sum is in the data's precision; dividing by NumPy's integer count gives float64
    sky = pairwise_sky_sum(data, x0, y0, kmask, f32) / n_sky
    m00 = 0.0
    m10 = 0.0
    m01 = 0.0
    peak = -math.inf
    npix = 0
    for a in range(ky):
        for b in range(kx):
            c = 0.0
            if kmask[a, b] != 0.0:
                c = (cut(data, y0 + a, x0 + b) - sky) * kmask[a, b]
                if c < 0.0:
                    c = 0.0
            m00 += c
            m10 += a * c
            m01 += b * c
            if c > peak:
                peak = c
            if c != 0.0:
                npix += 1
    xcen = m01 / m00 if m00 != 0.0 else math.nan
    ycen = m10 / m00 if m00 != 0.0 else math.nan
    mxx = 0.0
    myy = 0.0
    mxy = 0.0
    for a in range(ky):
        for b in range(kx):
            if kmask[a, b] == 0.0:
                continue
            c = (cut(data, y0 + a, x0 + b) - sky) * kmask[a, b]
            if c <= 0.0:
                continue
            dx = b - xcen
            dy = a - ycen
            mxx += dx * dx * c
            myy += dy * dy * c
            mxy += dx * dy * c
    out[k, I_XC] = xcen
    out[k, I_YC] = ycen
    out[k, I_MU_XX] = mxx / m00 if m00 != 0.0 else math.nan
    out[k, I_MU_YY] = myy / m00 if m00 != 0.0 else math.nan
    out[k, I_MU_XY] = mxy / m00 if m00 != 0.0 else math.nan
    out[k, I_SKY] = sky
    out[k, I_PEAK] = peak
    out[k, I_FLUX] = m00
    out[k, I_NPIX] = npix


STAR_FUNCTIONS = (pixel_value, is_peak, cut, marginal_fit, dao_measure_one, round32, sky_term,
                  pairwise_block, pairwise_split, pairwise_level1, pairwise_level2,
                  pairwise_level3, pairwise_sky_sum, iraf_measure_one)
