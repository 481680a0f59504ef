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


@pytest.mark.parametrize("pixfrac", [0.0, -0.5, np.inf, np.nan, "wide"])
def test_pixfrac_out_of_range(pixfrac):
    with pytest.raises(InvalidParameterError, match="pixfrac"):
        Drizzle((5, 5), pixfrac=pixfrac, backend="cpu")


def test_pixfrac_above_one_is_accepted():
    """cdriz takes drops wider than a pixel (the HAP catalogs drizzle their PSFs with 1.5)."""
    assert Drizzle((5, 5), pixfrac=1.5, backend="cpu").pixfrac == 1.5


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


# A CPU run in a fresh interpreter whose first import finder traps every attempt to import CuPy:
# the trap records the name and raises, so an attempt is seen even when the code swallows the
# ImportError, and CuPy cannot load even where it is installed.
_CPU_RUN_WITHOUT_CUPY = r"""
import importlib.abc, json, sys, tempfile
from pathlib import Path

TRAPPED = []

class CupyTrap(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("cupy", "cupyx", "cupy_backends"):
            TRAPPED.append(name)
            raise ImportError(f"HAPGPU-CUPY-TRAP: {name} imported by a CPU run")
        return None

sys.meta_path.insert(0, CupyTrap())

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

import hapgpu
from hapgpu import detection as det
from hapgpu.backend import resolve_backend
from hapgpu.resample import Drizzle, PixelMap, blot
from hapgpu.simulate import simulate_visit

cpu = resolve_backend("cpu")
with tempfile.TemporaryDirectory() as tmp:
    visit = simulate_visit(Path(tmp) / "visit", "wfc3-uvis", 2, seed=3, shape=(48, 64))
    result = hapgpu.astrodrizzle([str(e.path) for e in visit.exposures], Path(tmp) / "out",
                                 backend=cpu, pars="wfc3_uvis_n2", save_intermediates=True)
    with fits.open(result.product) as hdul:
        sci = np.nan_to_num(np.asarray(hdul["SCI"].data, dtype=np.float32))
        product_wcs = WCS(hdul["SCI"].header)

pmap = PixelMap.from_wcs(product_wcs, product_wcs, sci.shape)
drz = Drizzle(sci.shape, kernel="square", backend=cpu)
drz.add_image(sci, pmap)
back = blot(drz.sci, pmap, interp="poly5", backend=cpu)
_, median, std = det.sigma_clipped_stats(sci, backend=cpu)
segm = det.detect_sources(sci, median + 3 * std, 4, backend=cpu)
catalog = det.SourceCatalog(sci, segm, backend=cpu)
stars = det.DAOStarFinder(5 * std, 2.0, backend=cpu)(sci - median)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("cupy", "cupyx", "cupy_backends"))
print(json.dumps({"trapped": TRAPPED, "loaded": loaded, "sources": len(catalog),
                  "stars": 0 if stars is None else len(stars), "blot_finite": bool(np.isfinite(back).all())}))
"""


@pytest.mark.slow
def test_cpu_run_never_imports_cupy():
    """Simulate, astrodrizzle, drizzle, blot and detection on the cpu backend import no CuPy."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "HAPGPU_BACKEND"}
    out = subprocess.run([sys.executable, "-c", _CPU_RUN_WITHOUT_CUPY], capture_output=True, text=True,
                         env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "HAPGPU-CUPY-TRAP" not in out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["trapped"] == [] and report["loaded"] == []
    assert report["sources"] > 0 and report["stars"] > 0 and report["blot_finite"]  # it really ran


def test_the_cupy_trap_catches_a_swallowed_import():
    """The trap sees an import attempt whose ImportError the code catches (the test can fail)."""
    import json
    import subprocess
    import sys

    head = _CPU_RUN_WITHOUT_CUPY.split("import numpy as np")[0]
    probe = head + ("try:\n    import cupy\nexcept ImportError:\n    pass\n"
                    "print(json.dumps({'trapped': TRAPPED, 'loaded': 'cupy' in sys.modules}))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {"trapped": ["cupy"], "loaded": False}


def test_pixel_map_defaults_to_wcs_shape():
    w = linear_wcs((7, 9))
    pm = PixelMap.from_wcs(w, linear_wcs((10, 10)))
    assert pm.input_shape == (7, 9)
    assert "table step 10" in repr(pm)
