"""The CUDA kernels agree with the CPU kernels: bit for bit (up to the accumulation order) in
Numba's CUDA simulator, and to derived bounds on a real GPU.

Both targets compile the same per-pixel functions; the drivers and accumulators differ (tiled
waves updating drizzlepac's float32 running mean and weight on the CPU, one thread per input
pixel with float64 atomic sums on CUDA). What can differ, and by how much, is derived in the
tolerance constants below.

* Simulator (``cudasim``) vs CPU: the simulator runs the per-pixel functions as plain Python,
  i.e. the same IEEE float64 operations and NumPy float32 roundings as the CPU code compiled
  by LLVM (which does not contract multiply-adds). Every drop weight is therefore identical;
  the CPU's float32 running mean rounds at every drop, the simulator's float64 sums only
  when they are divided.
* GPU vs CPU: NVVM contracts a multiply feeding an add into one fused multiply-add (FMA), CUDA's
  libm (``exp``) differs from the host's in the last float64 bits, and the float64 atomics add
  in any order. Blot does its arithmetic in float32 (as drizzlepac does), where FMA matters
  most.
"""

import numpy as np
import pytest
from scipy import ndimage

from hapgpu.resample import INTERPOLANTS, KERNELS, Drizzle, PixelMap, blot

from ..conftest import REAL_CHIPS, load_chip_wcs, output_frame, synthetic_scene

SHAPE = (11, 13)
EXPTIMES = (100.0, 200.0)
BLOT_EXPTIME = 300.0

#: One float32 ulp of a normal value ``v`` is at most ``EPS32 * |v|`` (and at least half that).
EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)

#: Upper bound of the drops one output pixel receives in these frames: two images and at most
#: the lanczos3 footprint, 2*3 output pixels across at scale 0.9, i.e. about (6/0.9 + 1)**2 = 59
#: input pixels from each image.
N_CONTRIB = 128

#: Relative difference of two float64 sums of the same ``N_CONTRIB`` non-negative terms (the
#: scene's data and weights are positive) added in different orders: each order is within
#: ``(N - 1) * EPS64`` of the exact sum (Higham, Accuracy and Stability of Numerical
#: Algorithms, 2nd ed., eq. 4.4).
SUM_ORDER_RTOL = 2 * N_CONTRIB * EPS64

# --- simulator vs CPU -------------------------------------------------------------------------
#: SCI, WHT and ERR of two runs of the float64 sums whose drop weights are identical (two GPU
#: runs) come from float64 values that differ only by ``SUM_ORDER_RTOL`` (~6e-14); rounded to
#: float32 they are equal or one ulp apart.
ORDER_RTOL = EPS32 + SUM_ORDER_RTOL

#: WHT on the CPU is a float32 running sum of at most ``N_CONTRIB`` positive weights, within
#: ``(N - 1) * EPS32 / 2`` of the exact sum (Higham eq. 4.4 with u = EPS32 / 2); the float64
#: sum is rounded once (one more ulp).
RUNNING_WHT_RTOL = N_CONTRIB * EPS32 / 2 + ORDER_RTOL

#: SCI on the CPU: each drop updates the mean m to ``f32((f32(f32(m w) + f32(dw d))) / f32(w
#: + dw))`` (drizzlepac's ``update_data``). With positive weights |m| <= D, D the largest |d|
#: drizzled, and each of the four roundings (the two products, their sum, the weight, the
#: quotient) adds at most u = EPS32 / 2 relative to a term no larger than D: 4 u D = 2 EPS32 D
#: per drop, while an earlier error is carried on scaled by ``w / (w + dw) <= 1``. After at
#: most ``N_CONTRIB`` drops, ``2 * N_CONTRIB * EPS32 * D``; the float64 sums' own error is
#: ``ORDER_RTOL``.
RUNNING_SCI_ATOL_PER_SCALE = 2 * N_CONTRIB * EPS32

#: Lanczos weights are signed: the mean is no longer bounded by D and, where the weights of a
#: pixel nearly cancel, the running mean's roundings are amplified by ``sum|w| / |sum w|``.
#: Its numerator ``SCI * WHT`` stays bounded: every rounding is relative to a term no larger
#: than ``D * sum|w|``, so it is compared within ``(RUNNING_SCI_ATOL_PER_SCALE +
#: RUNNING_WHT_RTOL) * D * A``, A the largest ``sum|w|`` of a pixel: the largest WHT times
#: :func:`lanczos_abs_ratio`.
SIGNED_KERNELS = ("lanczos2", "lanczos3")

#: ERR = f32(sqrt(sum w**2 e**2) / |WHT|): the variance sums are float64 on both (order only);
#: the divisor carries ``RUNNING_WHT_RTOL``.
RUNNING_ERR_RTOL = RUNNING_WHT_RTOL + ORDER_RTOL

# --- GPU vs CPU: drizzle ------------------------------------------------------------------------
#: FMA contraction in the float64 geometry (coordinate-table interpolation, the square kernel's
#: overlap areas and Jacobian, the gaussian exponent) and CUDA's ``exp`` move a drop weight's
#: float64 value by a few ulp64 (an emulation of the contraction, ``math.fma`` on every
#: contractible step of ``boxer`` for 110,000 random drops, moved overlap areas by at most
#: 4.4e-16 pixel**2). The weight is then rounded to float32 (``f32(area / jac * w)``), which can
#: land on the neighbouring float32: each GPU weight is within one float32 ulp,
#: ``EPS32 * w``, of the CPU's.
DROP_WEIGHT_RTOL = EPS32

#: WHT = f32(sum w): within ``DROP_WEIGHT_RTOL`` (every weight) + ``SUM_ORDER_RTOL`` before the
#: final rounding, one more ulp after it; the CPU's running sum adds ``RUNNING_WHT_RTOL``.
GPU_WHT_RTOL = DROP_WEIGHT_RTOL + SUM_ORDER_RTOL + RUNNING_WHT_RTOL

#: SCI = f32(sum w d / sum w): relative weight changes of at most ``DROP_WEIGHT_RTOL`` move a
#: weighted mean by at most ``DROP_WEIGHT_RTOL * max_i |d_i - SCI| <= 2 * DROP_WEIGHT_RTOL * D``,
#: D the largest |d| drizzled (data as scaled onto the output); the sums add
#: ``SUM_ORDER_RTOL * D``; the final rounding one ulp (the relative part); the CPU's running
#: mean adds ``RUNNING_SCI_ATOL_PER_SCALE * D``.
GPU_SCI_ATOL_PER_SCALE = 2 * DROP_WEIGHT_RTOL + SUM_ORDER_RTOL + RUNNING_SCI_ATOL_PER_SCALE
GPU_SCI_RTOL = EPS32

#: ERR = f32(sqrt(sum w**2 e**2) / sum w): w**2 within 2 ulps, so the sum within
#: ``2 * DROP_WEIGHT_RTOL``, its square root within half that; the divisor within
#: ``DROP_WEIGHT_RTOL`` plus the CPU running sum's ``RUNNING_WHT_RTOL``; the final rounding one
#: ulp.
GPU_ERR_RTOL = 2 * DROP_WEIGHT_RTOL + 2 * SUM_ORDER_RTOL + RUNNING_WHT_RTOL + EPS32

# CTX, DQ and which pixels are covered (the NaN pattern) must be equal on every backend: they
# change only where a float64 quantity sits within a few ulp64 of a decision boundary (an
# overlap sliver under ~1e-15 pixel**2, a distance exactly at the tophat radius, a Lanczos table
# index at .5), which these frames do not contain. The zero-weight ("INDEF") value comes from an
# atomicMax of the scan index, which does not depend on the order.

# --- GPU vs CPU: blot ---------------------------------------------------------------------------
#: Blot's interpolants compute in float32, each step rounded. NVVM fuses every float32 multiply
#: that feeds an add, which removes that product's rounding: each fused step moves its result
#: by at most half an ulp of a product no larger than ~2x the local data scale S (the largest
#: |value| in the interpolation window). poly5 evaluates six row polynomials of about ten fusable
#: steps each and combines them with weights whose magnitudes sum to under 1.5, then a column
#: polynomial of ten more: at most (10 * 1.5 + 10) * 0.5 * 2 = 25 ulps of S; lanczos5 sums 121
#: products of weights whose magnitudes sum to ~1.4 per axis, each fused step and the re-rounded
#: running sum within an ulp of S in the worst case but a random walk in practice (an emulation
#: with ``math.fma`` on 20,000 windows with stars up to 3000x the sky measured at most 2.6 ulps
#: of S for every interpolant). 32 ulps of S bounds them all. (The sample position is rounded to
#: float32 from a float64 that FMA can move by ulp64: it changes with a probability of ~1e-8 per
#: pixel, far below the 143 pixels blotted here.)
BLOT_GPU_ULPS_OF_LOCAL_SCALE = 32

#: Half-width of the window that holds every source pixel an interpolant reads: lanczos5 reads
#: int(x) - 5 .. int(x) + 5, poly5 int(x) - 2 .. int(x) + 3.
BLOT_WINDOW_HALF = 6


@pytest.fixture(scope="module")
def frame():
    w = load_chip_wcs(*REAL_CHIPS["uvis2"])
    out_wcs, out_shape, ratio = output_frame(w, SHAPE, rot_deg=30.0, scale_ratio=0.9)
    return w, out_wcs, out_shape, ratio


def _inputs(k, seed):
    data, wht = synthetic_scene(SHAPE, seed=seed, mask_fraction=0.1)
    data[3, 4] = np.nan  # NaN-safe: treated as weight 0, value 0
    return data, wht, np.sqrt(np.abs(data)) + 1, (wht == 0).astype(np.int16) * 16


def drizzle_on(backend, kernel, frame, pixfrac, as_device=None):
    """Drizzle two synthetic images (with errors, DQ and a NaN) on ``backend``.

    ``as_device`` converts each input array first (``cupy.asarray`` for on-device inputs).
    """
    w, out_wcs, out_shape, ratio = frame
    drz = Drizzle(out_shape, kernel=kernel, pixfrac=pixfrac, fillval=None, backend=backend)
    put = as_device or (lambda a: a)
    for k, seed in enumerate((1, 2)):
        data, wht, err, dq = _inputs(k, seed)
        drz.add_image(put(data), PixelMap.from_wcs(w, out_wcs, SHAPE), weight=put(wht),
                      in_units="counts", exptime=EXPTIMES[k], scale=ratio, context_id=k + 1,
                      error=put(err), dq=put(dq))
    return drz


def lanczos_abs_ratio(order):
    """Upper bound of ``sum|w| / sum w`` over the drops of a pixel for a Lanczos kernel of
    ``order``: per axis the largest ``sum_n |L(n + p)| / sum_n L(n + p)`` over sub-pixel
    phases p (input pixels one apart, the sum over the support), squared (the kernel is a
    product of its axes)."""
    phase = np.linspace(0.0, 1.0, 101)[:, None]
    x = np.arange(-order - 1, order + 2)[None, :] + phase
    lz = np.where(np.abs(x) < order, np.sinc(x) * np.sinc(x / order), 0.0)
    return float(np.max(np.abs(lz).sum(axis=1) / lz.sum(axis=1)) ** 2)


def drizzled_data_scale(frame):
    """D of the SCI bound: the largest |data / exptime * float32(scale**2)| drizzled."""
    ratio = frame[3]
    scale2 = float(np.float32(ratio * ratio))
    return max(float(np.nanmax(np.abs(_inputs(k, seed)[0]))) / EXPTIMES[k] * scale2
               for k, seed in enumerate((1, 2)))


def assert_same_coverage(a, b):
    """CTX, DQ and the covered (non-NaN) pixels are identical."""
    np.testing.assert_array_equal(a.ctx, b.ctx)
    np.testing.assert_array_equal(a.dq, b.dq)
    np.testing.assert_array_equal(np.isnan(a.sci), np.isnan(b.sci))


@pytest.mark.parametrize("pixfrac", [1.0, 0.7])
@pytest.mark.parametrize("kernel", KERNELS)
def test_drizzle_cpu_equals_cudasim(kernel, pixfrac, frame):
    cpu = drizzle_on("cpu", kernel, frame, pixfrac)
    sim = drizzle_on("cudasim", kernel, frame, pixfrac)
    assert_same_coverage(sim, cpu)
    scale = drizzled_data_scale(frame)
    if kernel in SIGNED_KERNELS:
        bound = np.abs(cpu.wht).max() * lanczos_abs_ratio(int(kernel[-1]))
        np.testing.assert_allclose(sim.sci * sim.wht, cpu.sci * cpu.wht, rtol=0, equal_nan=True,
                                   atol=(RUNNING_SCI_ATOL_PER_SCALE + RUNNING_WHT_RTOL) * scale * bound)
        np.testing.assert_allclose(sim.wht, cpu.wht, rtol=0, atol=RUNNING_WHT_RTOL * bound)
        # ERR * |WHT| is sqrt(sum w**2 e**2), float64 on both: rounded to float32 twice
        np.testing.assert_allclose(sim.err * np.abs(sim.wht), cpu.err * np.abs(cpu.wht),
                                   rtol=3 * ORDER_RTOL, atol=0, equal_nan=True)
    else:
        np.testing.assert_allclose(sim.sci, cpu.sci, rtol=ORDER_RTOL,
                                   atol=RUNNING_SCI_ATOL_PER_SCALE * scale, equal_nan=True)
        np.testing.assert_allclose(sim.wht, cpu.wht, rtol=RUNNING_WHT_RTOL, atol=0)
        np.testing.assert_allclose(sim.err, cpu.err, rtol=RUNNING_ERR_RTOL, atol=0, equal_nan=True)
    assert np.isfinite(cpu.sci[cpu.wht > 0]).all()


def blot_inputs(frame, seed=4):
    w, out_wcs, out_shape, ratio = frame
    source, _ = synthetic_scene(out_shape, seed=seed)
    return source, PixelMap.from_wcs(w, out_wcs, SHAPE)


@pytest.mark.parametrize("interp", INTERPOLANTS)
def test_blot_cpu_equals_cudasim(interp, frame):
    # a pure gather with the same float32 operations on both: identical
    source, pmap = blot_inputs(frame)
    ratio = frame[3]
    cpu = blot(source, pmap, interp=interp, scale=ratio, exptime=BLOT_EXPTIME, backend="cpu")
    sim = blot(source, pmap, interp=interp, scale=ratio, exptime=BLOT_EXPTIME, backend="cudasim")
    np.testing.assert_array_equal(sim, cpu)


def local_blot_scale(source, pmap, ratio, exptime):
    """Per chip pixel: the largest |source| within the interpolation window of its sample
    position, in output units (times ``exptime / float32(scale**2)``)."""
    window_max = ndimage.maximum_filter(np.abs(source), size=2 * BLOT_WINDOW_HALF + 1,
                                        mode="nearest")
    pos = pmap.pixmap()
    ny, nx = source.shape
    ix = np.clip(np.rint(np.nan_to_num(pos[..., 0])), 0, nx - 1).astype(int)
    iy = np.clip(np.rint(np.nan_to_num(pos[..., 1])), 0, ny - 1).astype(int)
    return window_max[iy, ix] * (np.float32(exptime) / np.float32(ratio * ratio))


# --- real GPU -----------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("pixfrac", [1.0, 0.7])
@pytest.mark.parametrize("kernel", KERNELS)
def test_drizzle_cpu_equals_gpu(kernel, pixfrac, frame):
    cpu = drizzle_on("cpu", kernel, frame, pixfrac)
    gpu = drizzle_on("gpu", kernel, frame, pixfrac)
    assert_same_coverage(gpu, cpu)
    scale = drizzled_data_scale(frame)
    np.testing.assert_allclose(gpu.sci, cpu.sci, rtol=GPU_SCI_RTOL,
                               atol=GPU_SCI_ATOL_PER_SCALE * scale, equal_nan=True)
    np.testing.assert_allclose(gpu.wht, cpu.wht, rtol=GPU_WHT_RTOL, atol=0)
    np.testing.assert_allclose(gpu.err, cpu.err, rtol=GPU_ERR_RTOL, atol=0, equal_nan=True)


@pytest.mark.gpu
def test_drizzle_gpu_keeps_device_arrays_and_many_contexts(frame):
    """CuPy inputs stay on the device; more than 32 inputs grow the context planes there."""
    import cupy

    w, out_wcs, out_shape, ratio = frame
    pmap = PixelMap.from_wcs(w, out_wcs, SHAPE)
    on_device = drizzle_on("gpu", "square", frame, 1.0, as_device=cupy.asarray)
    from_host = drizzle_on("gpu", "square", frame, 1.0)
    sci, wht, ctx = on_device.device_arrays()
    assert all(isinstance(a, cupy.ndarray) for a in (sci, wht, ctx))
    # same kernels, same inputs: identical up to the atomics' order
    np.testing.assert_allclose(cupy.asnumpy(sci), from_host.sci, rtol=ORDER_RTOL, atol=0, equal_nan=True)
    np.testing.assert_array_equal(cupy.asnumpy(ctx), from_host.ctx)

    data, wht_in = synthetic_scene(SHAPE, seed=9, mask_fraction=0.0)
    results = {}
    for backend in ("cpu", "gpu"):
        drz = Drizzle(out_shape, kernel="point", backend=backend)
        for context_id in (1, 33, 34, 70):
            drz.add_image(data, pmap, weight=wht_in, scale=ratio, context_id=context_id)
        results[backend] = drz
    assert results["gpu"].ctx.shape == (3,) + tuple(out_shape)
    np.testing.assert_array_equal(results["gpu"].ctx, results["cpu"].ctx)
    np.testing.assert_allclose(results["gpu"].wht, results["cpu"].wht, rtol=GPU_WHT_RTOL, atol=0)


@pytest.mark.gpu
@pytest.mark.parametrize("interp", INTERPOLANTS)
def test_blot_cpu_equals_gpu(interp, frame):
    source, pmap = blot_inputs(frame)
    ratio = frame[3]
    cpu = blot(source, pmap, interp=interp, scale=ratio, exptime=BLOT_EXPTIME, backend="cpu")
    gpu = blot(source, pmap, interp=interp, scale=ratio, exptime=BLOT_EXPTIME, backend="gpu")
    local = local_blot_scale(source, pmap, ratio, BLOT_EXPTIME)
    np.testing.assert_array_less(np.abs(gpu.astype(np.float64) - cpu),
                                 BLOT_GPU_ULPS_OF_LOCAL_SCALE * EPS32 * local + np.finfo(np.float32).tiny)


@pytest.mark.gpu
def test_blot_gpu_keeps_device_arrays(frame):
    """An on-device source gives an on-device result, equal to the one from a host source."""
    import cupy

    source, pmap = blot_inputs(frame)
    out = blot(cupy.asarray(source), pmap, interp="poly5", backend="gpu")
    assert isinstance(out, cupy.ndarray) and out.dtype == np.float32 and out.shape == SHAPE
    np.testing.assert_array_equal(cupy.asnumpy(out), blot(source, pmap, interp="poly5", backend="gpu"))
