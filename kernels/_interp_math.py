"""Per-pixel mathematics of blot (drizzlepac ``cdriz.tblot``), written once for every target.

Plain Python functions compiled by :func:`hapgpu.kernels.targets.compile_namespace`. All
interpolation arithmetic is float32, like drizzlepac's, including the sample position; float32
constants are module-level ``np.float32`` values so that Numba and NumPy agree on the types.

Edge rules follow drizzlepac: columns beyond the image are reflected anti-symmetrically about
the edge pixel (``v(-k) = 2 v(0) - v(k)``), rows likewise, except that poly5's sixth block row
beyond the top is source row ``ny - 4``. Where drizzlepac's behaviour is undefined (poly3 in the
last half-pixel band at the top, nearest in the last half pixel, positions exactly on the far
edge) these functions reflect anti-symmetrically by source index and clamp indices instead.
"""

import math

import numpy as np

# resolved by name when compiled
from ._pixel_math import table_map, table_map_row, table_row  # noqa: F401

f32 = np.float32

I_NEAREST = 0
I_LINEAR = 1
I_POLY3 = 2
I_POLY5 = 3
I_LANCZOS3 = 4
I_LANCZOS5 = 5

# Slots of the float64 parameter vector of blot.
B_FACTOR = 0  # coordinate-table step (0: explicit coordinates)
B_EF = 1  # float32 exposure-time factor
B_SCALE2 = 2  # float32(scale**2)
B_MISVAL = 3  # value for points outside the source image
B_SPACE = 4  # lanczos LUT spacing (float32 0.01)
N_BPARAMS = 5

# Slots of the int64 parameter vector of blot.
J_INTERP = 0
J_NBOX = 1
N_JPARAMS = 2

ZERO = f32(0.0)
ONE = f32(1.0)
TWO = f32(2.0)
THREE = f32(3.0)
FOUR = f32(4.0)
SIX = f32(6.0)
HALF = f32(0.5)
SIXTH = f32(1.0 / 6.0)
ONE_120TH = f32(1.0 / 120.0)


def clamp_index(k, n):
    """Clamp an index to ``0..n-1``."""
    if k < 0:
        return 0
    if k > n - 1:
        return n - 1
    return k


def row_value(src, m, c):
    """Value at column ``c`` of valid source row ``m``, reflecting columns beyond the edges."""
    nx = src.shape[1]
    if c < 0:
        return f32(f32(TWO * src[m, 0]) - src[m, clamp_index(-c, nx)])
    if c >= nx:
        return f32(f32(TWO * src[m, nx - 1]) - src[m, clamp_index(2 * nx - 2 - c, nx)])
    return src[m, c]


def reflected_value(src, m, c):
    """Value at (row ``m``, column ``c``) with anti-symmetric reflection in both axes."""
    ny = src.shape[0]
    if m >= 0 and m < ny and c >= 0 and c < src.shape[1]:
        return src[m, c]  # the common, interior case first
    if m < 0:
        return f32(f32(TWO * row_value(src, 0, c)) - row_value(src, clamp_index(-m, ny), c))
    if m >= ny:
        top = ny - 1
        return f32(f32(TWO * row_value(src, top, c))
                   - row_value(src, clamp_index(2 * top - m, ny), c))
    return row_value(src, m, c)


def poly5_block_value(src, m, iy, c):
    """Value at source row ``m`` (one of ``iy-2 .. iy+3``, poly5's 6x6 block around row
    ``iy``) and column ``c``.

    Rows are passed as run-time values, not block numbers: Numba compiles a separate copy of a
    function for every literal integer argument.
    """
    ny = src.shape[0]
    if m >= 0 and m < ny and c >= 0 and c < src.shape[1]:
        return src[m, c]  # the common, interior case first
    if m == iy + 3 and m >= ny:  # the sixth block row beyond the top: drizzlepac's rule
        return row_value(src, clamp_index(ny - 4, ny), c)
    return reflected_value(src, m, c)


def everett5(r0, r1, r2, r3, r4, r5, s):
    """Six-point Everett (quintic) interpolation between ``r2`` and ``r3`` at fraction ``s``."""
    s2 = f32(s * s)
    t = f32(ONE - s)
    t2 = f32(t * t)
    c20 = f32(SIXTH * f32(f32(r3 - f32(TWO * r2)) + r1))
    c21 = f32(SIXTH * f32(f32(r4 - f32(TWO * r3)) + r2))
    c40 = f32(ONE_120TH * f32(f32(f32(f32(r0 - f32(FOUR * r1)) + f32(SIX * r2))
                                  - f32(FOUR * r3)) + r4))
    c41 = f32(ONE_120TH * f32(f32(f32(f32(r1 - f32(FOUR * r2)) + f32(SIX * r3))
                                  - f32(FOUR * r4)) + r5))
    hi = f32(s * f32(r3 + f32(f32(s2 - ONE) * f32(c21 + f32(f32(s2 - FOUR) * c41)))))
    lo = f32(t * f32(r2 + f32(f32(t2 - ONE) * f32(c20 + f32(f32(t2 - FOUR) * c40)))))
    return f32(hi + lo)


def everett3(r0, r1, r2, r3, s):
    """Four-point Everett (cubic) interpolation between ``r1`` and ``r2`` at fraction ``s``."""
    s2 = f32(s * s)
    t = f32(ONE - s)
    t2 = f32(t * t)
    c20 = f32(SIXTH * f32(f32(r2 - f32(TWO * r1)) + r0))
    c21 = f32(SIXTH * f32(f32(r3 - f32(TWO * r2)) + r1))
    return f32(f32(s * f32(r2 + f32(f32(s2 - ONE) * c21)))
               + f32(t * f32(r1 + f32(f32(t2 - ONE) * c20))))


def split_position(x, offset):
    """Integer base and float32 fraction of ``x`` as drizzlepac's Everett code forms them.

    ``xval = offset + (x - int(x))`` in float32; the fraction is ``xval - int(xval)`` and the
    base is shifted when float32 rounding pushed ``xval`` up to the next integer.
    """
    ix = int(x)
    xval = f32(offset + f32(x - f32(ix)))
    kx = int(xval)
    return ix + kx - int(offset), f32(xval - f32(kx))


def poly5_row(src, m, iy, ix, sx):
    """Quintic interpolation along source row ``m`` of poly5's 6x6 block around row ``iy``,
    at fraction ``sx``."""
    return everett5(poly5_block_value(src, m, iy, ix - 2), poly5_block_value(src, m, iy, ix - 1),
                    poly5_block_value(src, m, iy, ix), poly5_block_value(src, m, iy, ix + 1),
                    poly5_block_value(src, m, iy, ix + 2), poly5_block_value(src, m, iy, ix + 3), sx)


def poly5_row_inside(src, m, ix, sx):
    """:func:`poly5_row` for a block row that lies entirely inside the image (no reflection)."""
    return everett5(src[m, ix - 2], src[m, ix - 1], src[m, ix], src[m, ix + 1], src[m, ix + 2],
                    src[m, ix + 3], sx)


def interp_poly5(src, x, y):
    """drizzlepac poly5: separable six-point quintic interpolation."""
    ix, sx = split_position(x, THREE)
    iy, sy = split_position(y, THREE)
    if ix >= 2 and ix + 3 < src.shape[1] and iy >= 2 and iy + 3 < src.shape[0]:
        return everett5(poly5_row_inside(src, iy - 2, ix, sx), poly5_row_inside(src, iy - 1, ix, sx),
                        poly5_row_inside(src, iy, ix, sx), poly5_row_inside(src, iy + 1, ix, sx),
                        poly5_row_inside(src, iy + 2, ix, sx), poly5_row_inside(src, iy + 3, ix, sx), sy)
    return everett5(poly5_row(src, iy - 2, iy, ix, sx), poly5_row(src, iy - 1, iy, ix, sx),
                    poly5_row(src, iy, iy, ix, sx), poly5_row(src, iy + 1, iy, ix, sx),
                    poly5_row(src, iy + 2, iy, ix, sx), poly5_row(src, iy + 3, iy, ix, sx), sy)


def poly3_row(src, m, ix, sx):
    """Cubic interpolation along source row ``m`` (reflected beyond the edges)."""
    return everett3(reflected_value(src, m, ix - 1), reflected_value(src, m, ix),
                    reflected_value(src, m, ix + 1), reflected_value(src, m, ix + 2), sx)


def interp_poly3(src, x, y):
    """drizzlepac poly3: separable four-point cubic interpolation."""
    ix, sx = split_position(x, TWO)
    iy, sy = split_position(y, TWO)
    return everett3(poly3_row(src, iy - 1, ix, sx), poly3_row(src, iy, ix, sx),
                    poly3_row(src, iy + 1, ix, sx), poly3_row(src, iy + 2, ix, sx), sy)


def interp_linear(src, x, y):
    """drizzlepac bilinear interpolation (1-D on the last row/column)."""
    ny = src.shape[0]
    nx = src.shape[1]
    ix = clamp_index(int(x), nx)
    iy = clamp_index(int(y), ny)
    f00 = src[iy, ix]
    if ix == nx - 1:
        if iy == ny - 1:
            return f00
        sy = f32(y - f32(iy))
        return f32(f32(f32(ONE - sy) * f00) + f32(sy * src[iy + 1, ix]))
    if iy == ny - 1:
        sx = f32(x - f32(ix))
        return f32(f32(f32(ONE - sx) * f00) + f32(sx * src[iy, ix + 1]))
    sx = f32(x - f32(ix))
    tx = f32(ONE - sx)
    sy = f32(y - f32(iy))
    ty = f32(ONE - sy)
    return f32(f32(f32(f32(f32(tx * ty) * f00) + f32(f32(sx * ty) * src[iy, ix + 1]))
                   + f32(f32(sy * tx) * src[iy + 1, ix])) + f32(f32(sx * sy) * src[iy + 1, ix + 1]))


def interp_nearest(src, x, y):
    """Nearest neighbour (indices clamped in the last half pixel)."""
    ny = src.shape[0]
    nx = src.shape[1]
    return src[clamp_index(int(y + HALF), ny), clamp_index(int(x + HALF), nx)]


def lanczos_window_inside(src, x, y, nbox):
    """True when the (2*nbox+1)^2 lanczos window around ``(x, y)`` lies inside ``src``."""
    return (int(x) - nbox >= 0 and int(x) + nbox < src.shape[1]
            and int(y) - nbox >= 0 and int(y) + nbox < src.shape[0])


def interp_lanczos(src, x, y, lut, space, nbox):
    """drizzlepac lanczos: unnormalised (2*nbox+1)^2 window with truncated LUT indexing.

    The window must lie inside the image (see :func:`lanczos_window_inside`).
    """
    ixs = int(x) - nbox
    ixe = int(x) + nbox
    iys = int(y) - nbox
    iye = int(y) + nbox
    nlut = lut.shape[0]
    total = ZERO
    for j in range(iys, iye + 1):
        yoff = clamp_index(int(abs(f32(f32(y - f32(j)) / space))), nlut)
        luty = lut[yoff]
        for i in range(ixs, ixe + 1):
            xoff = clamp_index(int(abs(f32(f32(x - f32(i)) / space))), nlut)
            total = f32(total + f32(f32(src[j, i] * lut[xoff]) * luty))
    return total


def sample_lanczos(src, x, y, lut, fp, ip):
    return interp_lanczos(src, x, y, lut, f32(fp[B_SPACE]), ip[J_NBOX])


def sample_poly5(src, x, y, lut, fp, ip):
    return interp_poly5(src, x, y)


def sample_poly3(src, x, y, lut, fp, ip):
    return interp_poly3(src, x, y)


def sample_linear(src, x, y, lut, fp, ip):
    return interp_linear(src, x, y)


def sample_nearest(src, x, y, lut, fp, ip):
    return interp_nearest(src, x, y)


def sample_any(src, x, y, lut, fp, ip):
    """The interpolant named by ``ip[J_INTERP]``, chosen at run time (CUDA path)."""
    interp = ip[J_INTERP]
    if interp == I_POLY5:
        return sample_poly5(src, x, y, lut, fp, ip)
    if interp == I_POLY3:
        return sample_poly3(src, x, y, lut, fp, ip)
    if interp == I_LINEAR:
        return sample_linear(src, x, y, lut, fp, ip)
    if interp == I_NEAREST:
        return sample_nearest(src, x, y, lut, fp, ip)
    return sample_lanczos(src, x, y, lut, fp, ip)


def blot_pixel(r, k, src, fp, ip, tx, ty, ex, ey, lut):
    """Blotted value of output (chip) pixel ``[r, k]`` sampled from the source image.

    ``sample`` is bound at compile time: to one ``sample_*`` function in a CPU driver (which
    then holds only that interpolant's code), to :func:`sample_any` on CUDA.
    """
    factor = fp[B_FACTOR]
    if factor > 0.0:
        xm, ym = table_map(tx, ty, factor, k + 1.0, r + 1.0)
    else:
        xm = ex[0, r, k]
        ym = ey[0, r, k]
    misval = f32(fp[B_MISVAL])
    if not (math.isfinite(xm) and math.isfinite(ym)):
        return misval
    xo = f32(xm - 1.0)
    yo = f32(ym - 1.0)
    ny = src.shape[0]
    nx = src.shape[1]
    if not (xo >= ZERO and xo <= f32(nx) and yo >= ZERO and yo <= f32(ny)):
        return misval
    if ip[J_INTERP] >= I_LANCZOS3 and not lanczos_window_inside(src, xo, yo, ip[J_NBOX]):
        return misval  # drizzlepac leaves the previous pixel's value here (undefined)
    v = sample(src, xo, yo, lut, fp, ip)  # noqa: F821  (bound at compile time)
    return f32(f32(v * f32(fp[B_EF])) / f32(fp[B_SCALE2]))


def blot_row(r, src, out, fp, ip, tx, ty, ex, ey, lut):
    """Blot output row ``r`` (the CPU driver's unit of work)."""
    for k in range(out.shape[1]):
        out[r, k] = blot_pixel(r, k, src, fp, ip, tx, ty, ex, ey, lut)


#: The ``sample_*`` function of each interpolant (``sample`` of :func:`blot_pixel`).
SAMPLE_FUNCTIONS = {
    I_NEAREST: "sample_nearest",
    I_LINEAR: "sample_linear",
    I_POLY3: "sample_poly3",
    I_POLY5: "sample_poly5",
    I_LANCZOS3: "sample_lanczos",
    I_LANCZOS5: "sample_lanczos",
}


#: Per-pixel blot functions in dependency order.
BLOT_FUNCTIONS = (
    table_row,
    table_map_row,
    table_map,
    clamp_index,
    row_value,
    reflected_value,
    poly5_block_value,
    everett5,
    everett3,
    split_position,
    poly5_row,
    poly5_row_inside,
    interp_poly5,
    poly3_row,
    interp_poly3,
    interp_linear,
    interp_nearest,
    lanczos_window_inside,
    interp_lanczos,
    sample_lanczos,
    sample_poly5,
    sample_poly3,
    sample_linear,
    sample_nearest,
    sample_any,
    blot_pixel,
    blot_row,
)
