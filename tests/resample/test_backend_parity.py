"""The CUDA kernels (run by Numba's CUDA simulator) agree with the CPU kernels.

Both targets compile the same per-pixel functions; only the drivers differ (tiled waves on the
CPU, one thread per pixel with atomics on CUDA). float64 accumulation order differs between
them, so SCI may differ by a few float32 ulps; WHT, CTX and DQ agree exactly in practice.
"""

import numpy as np
import pytest

from hapgpu.resample import INTERPOLANTS, KERNELS, Drizzle, PixelMap, blot

from ..conftest import REAL_CHIPS, load_chip_wcs, output_frame, synthetic_scene

SHAPE = (11, 13)


@pytest.fixture(scope="module")
def frame():
    w = load_chip_wcs(*REAL_CHIPS["uvis2"])
    out_wcs, out_shape, ratio = output_frame(w, SHAPE, rot_deg=30.0, scale_ratio=0.9)
    return w, out_wcs, out_shape, ratio


def drizzle_on(backend, kernel, frame, pixfrac):
    w, out_wcs, out_shape, ratio = frame
    drz = Drizzle(out_shape, kernel=kernel, pixfrac=pixfrac, fillval=None, backend=backend)
    for k, seed in enumerate((1, 2)):
        data, wht = synthetic_scene(SHAPE, seed=seed, mask_fraction=0.1)
        data[3, 4] = np.nan  # NaN-safe: treated as weight 0, value 0
        drz.add_image(data, PixelMap.from_wcs(w, out_wcs, SHAPE), weight=wht, in_units="counts",
                      exptime=100.0 * (k + 1), scale=ratio, context_id=k + 1,
                      error=np.sqrt(np.abs(data)) + 1, dq=(wht == 0).astype(np.int16) * 16)
    return drz


@pytest.mark.parametrize("pixfrac", [1.0, 0.7])
@pytest.mark.parametrize("kernel", KERNELS)
def test_drizzle_cpu_equals_cudasim(kernel, pixfrac, frame):
    cpu = drizzle_on("cpu", kernel, frame, pixfrac)
    sim = drizzle_on("cudasim", kernel, frame, pixfrac)
    eps = np.finfo(np.float32).eps
    scale = np.nanmax(np.abs(cpu.sci))
    np.testing.assert_allclose(sim.sci, cpu.sci, rtol=4 * eps, atol=4 * eps * scale, equal_nan=True)
    np.testing.assert_allclose(sim.wht, cpu.wht, rtol=4 * eps, atol=0)
    np.testing.assert_array_equal(sim.ctx, cpu.ctx)
    np.testing.assert_array_equal(sim.dq, cpu.dq)
    np.testing.assert_allclose(sim.err, cpu.err, rtol=8 * eps, equal_nan=True)
    assert np.isfinite(cpu.sci[cpu.wht > 0]).all()


@pytest.mark.parametrize("interp", INTERPOLANTS)
def test_blot_cpu_equals_cudasim(interp, frame):
    w, out_wcs, out_shape, ratio = frame
    source, _ = synthetic_scene(out_shape, seed=4)
    pmap = PixelMap.from_wcs(w, out_wcs, SHAPE)
    cpu = blot(source, pmap, interp=interp, scale=ratio, exptime=300.0, backend="cpu")
    sim = blot(source, pmap, interp=interp, scale=ratio, exptime=300.0, backend="cudasim")
    np.testing.assert_array_equal(sim, cpu)


@pytest.mark.gpu
@pytest.mark.parametrize("kernel", KERNELS)
def test_drizzle_cpu_equals_gpu(kernel, frame):
    cpu = drizzle_on("cpu", kernel, frame, 1.0)
    gpu = drizzle_on("gpu", kernel, frame, 1.0)
    eps = np.finfo(np.float32).eps
    np.testing.assert_allclose(gpu.sci, cpu.sci, rtol=4 * eps, atol=4 * eps * np.nanmax(np.abs(cpu.sci)),
                               equal_nan=True)
    np.testing.assert_allclose(gpu.wht, cpu.wht, rtol=4 * eps)
    np.testing.assert_array_equal(gpu.ctx, cpu.ctx)


@pytest.mark.gpu
@pytest.mark.parametrize("interp", INTERPOLANTS)
def test_blot_cpu_equals_gpu(interp, frame):
    w, out_wcs, out_shape, ratio = frame
    source, _ = synthetic_scene(out_shape, seed=4)
    pmap = PixelMap.from_wcs(w, out_wcs, SHAPE)
    cpu = blot(source, pmap, interp=interp, backend="cpu")
    gpu = blot(source, pmap, interp=interp, backend="gpu")
    # CUDA may contract multiply-adds into FMAs: allow a few float32 ulps.
    np.testing.assert_allclose(gpu, cpu, rtol=0, atol=16 * np.finfo(np.float32).eps * np.abs(source).max())
