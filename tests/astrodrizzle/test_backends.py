"""Backend parity: the chain gives the same product on cpu, in the CUDA simulator and on a GPU."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage

from hapgpu.astrodrizzle import astrodrizzle
from hapgpu.simulate import simulate_visit


@pytest.fixture(scope="module")
def tiny_ir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_ir")
    simulate_visit(out / "visit", "wfc3-ir", 2, seed=3, shape=32)
    return out / "visit"


def _run(visit, dest, backend):
    shutil.copytree(visit, dest)
    result = astrodrizzle(sorted(dest.glob("*_flt.fits")), dest / "o", backend=backend, pars="wfc3_ir_n2",
                          skymethod="localmin", save_intermediates=True)
    with fits.open(result.product) as hdul:
        images = {ext: hdul[ext].data.copy() for ext in ("SCI", "WHT", "CTX")}
    images["median"] = fits.getdata(dest / "o_med.fits")
    return images, result


def _compare(a, b, rtol):
    for key in a:
        assert np.array_equal(np.isnan(a[key]), np.isnan(b[key])), key
        np.testing.assert_allclose(np.nan_to_num(a[key]), np.nan_to_num(b[key]), rtol=rtol, atol=1e-6, err_msg=key)


def test_cudasim_equals_cpu(tiny_ir, tmp_path):
    cpu, rc = _run(tiny_ir, tmp_path / "cpu", "cpu")
    sim, rs = _run(tiny_ir, tmp_path / "sim", "cudasim")
    _compare(cpu, sim, rtol=1e-6)
    assert rc.cosmic_rays == rs.cosmic_rays and rc.sky == rs.sky


#: The chain on a GPU against the CPU. Every drizzled value is within the drizzle bound derived in
#: tests/resample/test_backend_parity.py: one float32 ulp of the value plus two ulps of the largest
#: |input| that reached it. With pixfrac 1 at scale 1 the output pixel holding an input pixel's
#: centre overlaps it by >= 1/4 and averages it with neighbours that are >= 0 up to the noise, so
#: the largest |output| within 5x5 pixels is >= 1/4 of that input: 2 * 4 = 8 ulps of it.
CHAIN_RTOL = float(np.finfo(np.float32).eps)
CHAIN_LOCAL_ULPS = 8
#: What that bound cannot cover are decisions taken on such values: minmed's "use the minimum"
#: test and driz_cr's cosmic-ray test flip where the tested value sits within a few ulps of its
#: threshold. For 3 exposures of 2 x 256**2 pixels that is ~0.02 expected flips per run (the
#: density of the test statistic at 3.5 sigma times a window of ~1e-5 sigma per pixel); each
#: flipped decision, grown by driz_cr_grow = 1 to 3x3 input pixels, changes <= 16 output pixels.
#: Up to 4 flips are tolerated: 64 of the ~310,000 output pixels (a real defect changes far more).
MAX_DECISION_FLIPS = 4
MAX_DECISION_PIXELS = 16 * MAX_DECISION_FLIPS


def _pixels_off_bound(gpu, cpu):
    """Pixels where ``gpu`` is outside the chain bound around ``cpu`` (NaN on one side only too)."""
    nan_gpu, nan_cpu = np.isnan(gpu), np.isnan(cpu)
    local = ndimage.maximum_filter(np.abs(np.nan_to_num(cpu)), size=5, mode="nearest")
    bound = CHAIN_RTOL * np.abs(cpu) + CHAIN_LOCAL_ULPS * CHAIN_RTOL * local
    diff = np.abs(np.nan_to_num(gpu).astype(np.float64) - np.nan_to_num(cpu))
    return int(((nan_gpu != nan_cpu) | (~nan_cpu & ~nan_gpu & (diff > bound))).sum())


@pytest.mark.gpu
def test_gpu_equals_cpu(tmp_path):
    simulate_visit(tmp_path / "visit", "wfc3-uvis", 3, seed=11, shape=256)
    cpu, rc = _run_uvis(tmp_path / "visit", tmp_path / "cpu", "cpu")
    gpu, rg = _run_uvis(tmp_path / "visit", tmp_path / "gpu", "gpu")
    for key in cpu:
        assert gpu[key].shape == cpu[key].shape, key
        assert _pixels_off_bound(gpu[key], cpu[key]) <= MAX_DECISION_PIXELS, key
    flips = sum(abs(a - b) for name in rc.cosmic_rays
                for a, b in zip(rc.cosmic_rays[name], rg.cosmic_rays[name]))
    assert flips <= 9 * MAX_DECISION_FLIPS  # a flipped seed, grown to 3x3
    assert sum(sum(v) for v in rc.cosmic_rays.values()) > 0
    for name, values in rc.sky.items():
        # skystat "median": the median of the same clipped float32 values on both
        assert rg.sky[name] == pytest.approx(values, rel=CHAIN_RTOL)


def _run_uvis(visit, dest, backend):
    shutil.copytree(visit, dest)
    result = astrodrizzle(sorted(dest.glob("*_flc.fits")), dest / "o", backend=backend, pars="wfc3_uvis_n2",
                          save_intermediates=True)
    with fits.open(result.product) as hdul:
        images = {ext: hdul[ext].data.copy() for ext in ("SCI", "WHT")}
    images["median"] = fits.getdata(dest / "o_med.fits")
    return images, result
