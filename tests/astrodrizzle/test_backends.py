"""Backend parity: the chain gives the same product on cpu, in the CUDA simulator and on a GPU."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from astropy.io import fits

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


@pytest.mark.gpu
def test_gpu_equals_cpu(tmp_path):
    simulate_visit(tmp_path / "visit", "wfc3-uvis", 3, seed=11, shape=256)
    cpu, rc = _run_uvis(tmp_path / "visit", tmp_path / "cpu", "cpu")
    gpu, rg = _run_uvis(tmp_path / "visit", tmp_path / "gpu", "gpu")
    _compare(cpu, gpu, rtol=1e-5)
    for name, values in rc.sky.items():
        assert rg.sky[name] == pytest.approx(values, rel=1e-6)


def _run_uvis(visit, dest, backend):
    shutil.copytree(visit, dest)
    result = astrodrizzle(sorted(dest.glob("*_flc.fits")), dest / "o", backend=backend, pars="wfc3_uvis_n2",
                          save_intermediates=True)
    with fits.open(result.product) as hdul:
        images = {ext: hdul[ext].data.copy() for ext in ("SCI", "WHT")}
    images["median"] = fits.getdata(dest / "o_med.fits")
    return images, result
