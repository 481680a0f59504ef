"""Physical invariants: flux conservation, weight sums, context bits, tiling independence."""

import numpy as np
import pytest
from astropy.wcs import WCS
from hapgpu.kernels.drizzle import drizzle_cpu

from hapgpu.resample import Drizzle, PixelMap

from ..conftest import REAL_CHIPS, load_chip_wcs, output_frame, synthetic_scene


def linear_wcs(shape, rot_deg=0.0, scale_arcsec=0.04, crval=(150.0, 2.0)):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = list(crval)
    th = np.deg2rad(rot_deg)
    s = scale_arcsec / 3600.0
    w.wcs.cd = s * np.array([[-np.cos(th), np.sin(th)], [np.sin(th), np.cos(th)]])
    w.wcs.crpix = [shape[1] / 2.0 + 0.5, shape[0] / 2.0 + 0.5]
    w.pixel_shape = (shape[1], shape[0])
    return w


@pytest.mark.parametrize("kernel", ["square", "turbo"])
@pytest.mark.parametrize("distorted", [False, True])
def test_flux_conservation(kernel, distorted):
    """Square and turbo conserve flux for a source well inside the frame.

    With unit input weights each input pixel spreads a total weight of 1 over the output, so
    sum(WHT) is the number of input pixels and sum(SCI * WHT) is the sum of the drops
    ``d = data * scale**2``.
    """
    in_shape = (60, 70)
    if distorted:
        in_wcs = load_chip_wcs(*REAL_CHIPS["hrc"])
    else:
        in_wcs = linear_wcs(in_shape)
    ratio = 1.37
    out_wcs, out_shape, _ = output_frame(in_wcs, in_shape, rot_deg=23.0, scale_ratio=ratio, coverage=1.4)
    data = np.zeros(in_shape, np.float32)
    yy, xx = np.mgrid[0:60, 0:70]
    data += (500 * np.exp(-((xx - 33.3) ** 2 + (yy - 29.6) ** 2) / 18.0)).astype(np.float32)
    pmap = PixelMap.from_wcs(in_wcs, out_wcs, in_shape)
    drz = Drizzle(out_shape, kernel=kernel, pixfrac=1.0, backend="cpu", initial_value=0.0)
    drz.add_image(data, pmap, scale=ratio)
    out_sum = np.sum(drz.sci.astype(np.float64) * drz.wht)
    in_sum = np.sum(data.astype(np.float64)) * ratio**2
    assert out_sum == pytest.approx(in_sum, rel=1e-4)
    assert np.sum(drz.wht, dtype=np.float64) == pytest.approx(data.size, rel=1e-4)


def test_weight_sum_and_context_bits_many_inputs():
    """40 inputs: weights add up, and context bits go to plane (id-1)//32, bit (id-1)%32."""
    in_shape = (20, 20)
    in_wcs = linear_wcs(in_shape)
    out_wcs = linear_wcs((30, 30), rot_deg=10.0)
    pmap = PixelMap.from_wcs(in_wcs, out_wcs, in_shape)
    drz = Drizzle((30, 30), kernel="square", backend="cpu")
    for k in range(1, 41):
        drz.add_image(np.full(in_shape, float(k), np.float32), pmap, weight=np.full(in_shape, 0.5, np.float32))
    assert drz.ctx.shape == (2, 30, 30)
    centre = (15, 15)
    assert drz.ctx[0][centre] == -1  # all 32 bits of plane 0 (bit 31 makes the int32 negative)
    assert drz.ctx[1][centre] == (1 << 8) - 1
    assert drz.wht[centre] == pytest.approx(40 * 0.5, rel=1e-6)
    assert drz.sci[centre] == pytest.approx(np.mean(np.arange(1, 41)), rel=1e-6)


def test_tiling_does_not_change_the_result():
    """The CPU driver's tile size (and hence its waves) changes only the order in which a
    pixel receives drops from different input tiles: the float32 running mean and weight agree
    to its rounding (at most ~10 drops per pixel here, 2 EPS32 of the data scale per drop for
    the mean, EPS32 / 2 per drop for the weight); the context is identical."""
    w = load_chip_wcs(*REAL_CHIPS["uvis1"])
    in_shape = (64, 80)
    out_wcs, out_shape, _ = output_frame(w, in_shape, rot_deg=37.0, scale_ratio=0.6)
    data, wht = synthetic_scene(in_shape, seed=11)
    pmap = PixelMap.from_wcs(w, out_wcs, in_shape)
    eps32 = float(np.finfo(np.float32).eps)
    n_drops = 10  # a 0.6-scale output pixel meets at most (1/0.6 + 2)**2 input pixels
    results = []
    for tile in (8, 17, 96, 200):
        drz = Drizzle(out_shape, kernel="square", backend="cpu")
        drz.add_image(data, pmap, weight=wht)  # the public path, for reference
        mean = np.zeros(out_shape, np.int32)
        weight = np.zeros(out_shape, np.float32)
        ctx = np.zeros(out_shape, np.int32)
        from hapgpu.kernels import _pixel_math as pm

        from hapgpu.resample._drizzle import _kernel_parameters

        fp = _kernel_parameters("square", 1.0, 1.0)
        fp[pm.P_INV_EXP] = 1.0
        fp[pm.P_SCALE2] = 1.0
        fp[pm.P_WT_SCL] = 1.0
        fp[pm.P_FACTOR] = 10.0
        # the accumulators cover the whole frame: window columns 0..onx, rows 0..ony
        ip = np.array([pm.K_SQUARE, out_shape[1], out_shape[0], in_shape[1], in_shape[0], 0,
                       0, out_shape[1], 0, out_shape[0]], np.int64)
        d3 = np.zeros((1, 1, 1))
        init = np.zeros(1, np.int32)  # initial value 0.0
        drizzle_cpu(data, wht, np.zeros((1, 1), np.float32), np.zeros((1, 1), np.int32), fp, ip,
                    pmap.table_x, pmap.table_y, d3, d3, np.zeros(1, np.float32), mean, weight,
                    np.zeros((1, 1)), np.zeros((1, 1), np.int32), init, ctx, np.int32(1), tile=tile)
        sci = mean.view(np.float32)
        results.append((sci, weight, ctx))
        if tile == 96:  # the Drizzle's own tiles: the same order, the same bits
            np.testing.assert_array_equal(weight, drz.wht)
    scale = float(np.abs(data).max())
    for sci, weight, ctx in results[1:]:
        np.testing.assert_allclose(sci, results[0][0], rtol=0, atol=2 * n_drops * eps32 * scale)
        np.testing.assert_allclose(weight, results[0][1], rtol=n_drops * eps32, atol=0)
        np.testing.assert_array_equal(ctx, results[0][2])
    assert (results[0][1] > 0).sum() > 100


@pytest.mark.parametrize("kernel", ["square", "turbo", "lanczos3"])
def test_tiles_off_the_frame_are_skipped_without_changing_a_bit(kernel, monkeypatch):
    """An input reaching only part of the frame (an exposure across a sky-cell edge): the CPU
    driver leaves out the input tiles whose reach misses the accumulator window, and the
    output is bit for bit what drizzling every tile gives (the remaining tiles keep their
    waves, so each output pixel receives its drops in the same order)."""
    import hapgpu.kernels.drizzle as kd

    w = load_chip_wcs(*REAL_CHIPS["uvis1"])
    in_shape = (300, 420)
    # a small rotation keeps the tiles' output boxes tight: tiles whose drops reach only the
    # frame's first pixels are kept, and leaving one out would show
    out_wcs, out_shape, _ = output_frame(w, in_shape, rot_deg=2.0, scale_ratio=1.1,
                                         coverage=0.55, shift=(-60.0, 25.0))
    data, wht = synthetic_scene(in_shape, seed=5)
    pmap = PixelMap.from_wcs(w, out_wcs, in_shape)
    reached = []
    real = kd._reaches_window

    def recorded(boxes, ip):
        reaches = real(boxes, ip)
        reached.append((int(reaches.sum()), len(reaches)))
        return reaches

    def products(reaches_window):
        monkeypatch.setattr(kd, "_reaches_window", reaches_window)
        drz = Drizzle(out_shape, kernel=kernel, backend="cpu", initial_value=np.nan)
        drz.add_image(data, pmap, weight=wht, scale=1.1)
        return drz.sci, drz.wht, drz.ctx

    skipped = products(recorded)
    every = products(lambda boxes, ip: np.ones(len(boxes), dtype=bool))
    n_kept, n_tiles = reached[0]
    assert 0 < n_kept < n_tiles, reached  # some tiles were left out, some drizzled
    for a, b in zip(skipped, every):
        np.testing.assert_array_equal(a, b)
    assert (skipped[1] > 0).sum() > 1000


def test_fill_value_and_initial_value():
    in_shape = (10, 10)
    in_wcs = linear_wcs(in_shape)
    out_wcs = linear_wcs((30, 30))
    pmap = PixelMap.from_wcs(in_wcs, out_wcs, in_shape)
    data = np.ones(in_shape, np.float32)
    for fillval, expected in ((None, np.nan), ("INDEF", np.nan), ("-5", -5.0), (3.5, 3.5)):
        drz = Drizzle((30, 30), kernel="turbo", fillval=fillval, backend="cpu")
        drz.add_image(data, pmap)
        np.testing.assert_array_equal(drz.sci[0, 0], np.float32(expected))
        assert drz.sci[15, 15] == pytest.approx(1.0)
    drz = Drizzle((30, 30), kernel="turbo", backend="cpu", initial_value=0.0)
    drz.add_image(data, pmap)
    assert drz.sci[0, 0] == 0.0


@pytest.mark.parametrize("initial_value", [-7.25, np.nan, 0.0])
@pytest.mark.parametrize("tile_shape", [None, 16])
def test_indef_value_encoding(initial_value, tile_shape):
    """drizzlepac's INDEF rule through the zero-weight plane, which starts as zeros and holds
    value bits XOR the initial value's: untouched pixels read ``initial_value``; a pixel only
    zero-weight drops reached reads the last such value (0.0 and the initial value included,
    later inputs' replacing earlier ones'); positive weight wins. The same with one tile and
    with 16-pixel tiles (windows copied across tiles)."""
    in_shape = (10, 10)
    in_wcs = linear_wcs(in_shape)
    out_wcs = linear_wcs((40, 40))
    pmap = PixelMap.from_wcs(in_wcs, out_wcs, in_shape)
    data = np.arange(100, dtype=np.float32).reshape(in_shape) - 40.0
    data[2, 3] = 0.0
    data[4, 4] = np.float32(initial_value)
    weight = np.zeros(in_shape, np.float32)
    weight[7:, :] = 1.0
    drz = Drizzle((40, 40), kernel="point", backend="cpu", initial_value=initial_value,
                  tile_shape=tile_shape)
    drz.add_image(data, pmap, weight=weight)
    sci = drz.sci
    # input pixel [j, i] lands on output pixel [j + 15, i + 15] (same scale, centred frames)
    expected = np.full((40, 40), np.float32(initial_value), np.float32)
    expected[15:25, 15:25] = data
    if np.isnan(initial_value):
        expected[19, 19] = 0.0  # a non-finite value counts as 0 (documented deviation)
    np.testing.assert_array_equal(sci, expected)
    assert sci[17, 18] == 0.0 and not np.signbit(sci[17, 18])
    later_weight = np.zeros(in_shape, np.float32)
    later_weight[0, 0] = 1.0
    drz.add_image(np.full(in_shape, 5.0, np.float32), pmap, weight=later_weight)
    expected[15:22, 15:25] = 5.0  # the later zero-weight values replace the earlier ones
    np.testing.assert_array_equal(drz.sci, expected)


def test_counts_units_and_scale():
    in_shape = (10, 10)
    in_wcs = linear_wcs(in_shape)
    out_wcs = linear_wcs((30, 30))
    pmap = PixelMap.from_wcs(in_wcs, out_wcs, in_shape)
    data = np.full(in_shape, 300.0, np.float32)
    drz = Drizzle((30, 30), kernel="point", backend="cpu")
    drz.add_image(data, pmap, in_units="counts", exptime=150.0, scale=1.0)
    assert drz.sci[15, 15] == pytest.approx(2.0, rel=1e-6)
    drz = Drizzle((30, 30), kernel="point", backend="cpu")
    drz.add_image(data, pmap, scale=2.0)
    assert drz.sci[15, 15] == pytest.approx(1200.0, rel=1e-6)
    np.testing.assert_array_equal(data, 300.0)  # the input is never modified


def test_error_and_dq_propagation():
    """Squared-weight variance: two equal-weight inputs halve the variance; DQ is OR-ed."""
    in_shape = (12, 12)
    in_wcs = linear_wcs(in_shape)
    out_wcs = linear_wcs(in_shape)
    pmap = PixelMap.from_wcs(in_wcs, out_wcs, in_shape)
    drz = Drizzle(in_shape, kernel="point", backend="cpu")
    dq1 = np.zeros(in_shape, np.int16)
    dq1[3, 4] = 64
    dq2 = np.zeros(in_shape, np.int16)
    dq2[3, 4] = 2
    drz.add_image(np.full(in_shape, 10.0, np.float32), pmap, error=np.full(in_shape, 3.0), dq=dq1)
    drz.add_image(np.full(in_shape, 20.0, np.float32), pmap, error=np.full(in_shape, 4.0), dq=dq2)
    np.testing.assert_allclose(drz.sci[1:-1, 1:-1], 15.0, rtol=1e-6)
    np.testing.assert_allclose(drz.err[1:-1, 1:-1], np.hypot(3.0, 4.0) / 2.0, rtol=1e-6)
    assert drz.dq[3, 4] == 66 and drz.dq[5, 5] == 0
    assert Drizzle(in_shape, backend="cpu").err is None
