"""Bad input gets clear, typed errors; backends resolve as documented."""

import logging

import numpy as np
import pytest

import hapgpu.backend as backend_mod
from hapgpu.errors import BackendUnavailableError, InvalidInputError, InvalidParameterError, WCSError
from hapgpu.resample import Drizzle, PixelMap, blot

from .test_invariants import linear_wcs


@pytest.fixture
def pmap():
    return PixelMap.from_wcs(linear_wcs((10, 12)), linear_wcs((20, 20)), (10, 12))


def test_unknown_kernel():
    with pytest.raises(InvalidParameterError, match="unknown kernel 'boxcar'"):
        Drizzle((5, 5), kernel="boxcar", backend="cpu")


@pytest.mark.parametrize("pixfrac", [0.0, -0.5, 1.5, np.nan, "wide"])
def test_pixfrac_out_of_range(pixfrac):
    with pytest.raises(InvalidParameterError, match="pixfrac"):
        Drizzle((5, 5), pixfrac=pixfrac, backend="cpu")


def test_tiny_pixfrac_becomes_point():
    assert Drizzle((5, 5), kernel="square", pixfrac=0.0005, backend="cpu").kernel == "point"


@pytest.mark.parametrize("shape", [(5,), (0, 4), ("a", 3)])
def test_bad_output_shape(shape):
    with pytest.raises(InvalidInputError, match="shape"):
        Drizzle(shape, backend="cpu")


def test_data_shape_must_match_pixel_map(pmap):
    drz = Drizzle((20, 20), backend="cpu")
    with pytest.raises(InvalidInputError, match=r"data has shape \(12, 10\) but the pixel map was built for \(10, 12\)"):
        drz.add_image(np.zeros((12, 10), np.float32), pmap)
    with pytest.raises(InvalidInputError, match="weight has shape"):
        drz.add_image(np.zeros((10, 12), np.float32), pmap, weight=np.ones((3, 3)))
    with pytest.raises(InvalidInputError, match="2-D"):
        drz.add_image(np.zeros((10, 12, 2), np.float32), pmap)


def test_bad_dtypes(pmap):
    drz = Drizzle((20, 20), backend="cpu")
    with pytest.raises(InvalidInputError, match="dtype"):
        drz.add_image(np.zeros((10, 12), complex), pmap)
    with pytest.raises(InvalidInputError, match="dq must be an integer"):
        drz.add_image(np.zeros((10, 12), np.float32), pmap, dq=np.zeros((10, 12), np.float32))


@pytest.mark.parametrize("kwargs,match", [
    (dict(in_units="electrons"), "in_units"),
    (dict(in_units="counts", exptime=0.0), "exptime"),
    (dict(scale=-1.0), "scale"),
    (dict(wt_scl=np.inf), "wt_scl"),
    (dict(context_id=0), "context_id"),
])
def test_bad_add_image_parameters(pmap, kwargs, match):
    drz = Drizzle((20, 20), backend="cpu")
    with pytest.raises(InvalidParameterError, match=match):
        drz.add_image(np.zeros((10, 12), np.float32), pmap, **kwargs)


def test_bad_fill_value():
    with pytest.raises(InvalidParameterError, match="fillval"):
        Drizzle((5, 5), fillval="lots", backend="cpu")


def test_non_finite_wcs():
    w = linear_wcs((10, 10))
    w.wcs.crval = [np.nan, 2.0]
    with pytest.raises(WCSError, match="non-finite"):
        PixelMap.from_wcs(w, linear_wcs((10, 10)), (10, 10))


def test_singular_wcs():
    w = linear_wcs((10, 10))
    w.wcs.cd = np.zeros((2, 2))
    with pytest.raises(WCSError, match="singular"):
        PixelMap.from_wcs(w, linear_wcs((10, 10)), (10, 10))


def test_not_a_wcs():
    with pytest.raises(WCSError, match="astropy.wcs.WCS"):
        PixelMap.from_wcs("header.fits", linear_wcs((10, 10)), (10, 10))


def test_bad_stepsize():
    with pytest.raises(InvalidParameterError, match="stepsize"):
        PixelMap.from_wcs(linear_wcs((10, 10)), linear_wcs((10, 10)), (10, 10), stepsize=2.5)


def test_blot_bad_input(pmap):
    with pytest.raises(InvalidInputError, match="2-D"):
        blot(np.zeros(5), pmap, backend="cpu")
    with pytest.raises(InvalidParameterError, match="exptime"):
        blot(np.zeros((20, 20)), pmap, exptime=0, backend="cpu")
    with pytest.raises(InvalidInputError, match="PixelMap"):
        blot(np.zeros((20, 20)), "pmap", backend="cpu")


def test_unknown_backend():
    with pytest.raises(InvalidParameterError, match="unknown backend 'tpu'"):
        Drizzle((5, 5), backend="tpu")


def test_gpu_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(backend_mod, "cuda_available", lambda: False)
    with pytest.raises(BackendUnavailableError, match="needs a CUDA device"):
        backend_mod.resolve_backend("gpu")


def test_auto_falls_back_to_cpu_and_says_so_once(monkeypatch, caplog):
    monkeypatch.setattr(backend_mod, "cuda_available", lambda: False)
    monkeypatch.setattr(backend_mod, "_auto_reported", False)
    with caplog.at_level(logging.INFO, logger="hapgpu.backend"):
        assert backend_mod.resolve_backend("auto").name == "cpu"
        assert backend_mod.resolve_backend("auto").name == "cpu"
    assert sum("resolved to 'cpu'" in r.message for r in caplog.records) == 1


def test_environment_variable_default(monkeypatch):
    monkeypatch.setenv("HAPGPU_BACKEND", "cudasim")
    assert backend_mod.resolve_backend(None).name == "cudasim"


def test_cpu_only_install_never_imports_cupy():
    import subprocess
    import sys

    code = ("import sys, numpy as np; from hapgpu.resample import Drizzle, PixelMap, blot; "
            "from hapgpu.backend import resolve_backend; resolve_backend('cpu'); "
            "print('cupy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_pixel_map_defaults_to_wcs_shape():
    w = linear_wcs((7, 9))
    pm = PixelMap.from_wcs(w, linear_wcs((10, 10)))
    assert pm.input_shape == (7, 9)
    assert "table step 10" in repr(pm)
