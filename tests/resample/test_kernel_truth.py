"""drizzlepac's kernel truth test (tests/drizzle/test_kernel.py), reproduced against hapgpu.

Setup as in drizzlepac's ``cdriz_setup.Get_Grid(50, 60, 51, 66)``: a pure-shift TAN mapping
(x + 3, y + 0.5, up to ~1e-9 px of wcslib round-trip noise), a stepsize-1 coordinate table and
only input rows 0..49 drizzled (drizzlepac passes ``dny = 50``). The truth values are drizzlepac's
(its CSV files are reproduced here by running the compiled ``cdriz`` on the same setup), plus the
documented analytic patterns.
"""

import numpy as np
import pytest
from astropy.wcs import WCS

from hapgpu.resample import Drizzle, PixelMap

IN_SHAPE = (60, 50)
OUT_SHAPE = (66, 51)


def grid_wcs(shape):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [10.0, 10.0]
    w.wcs.cdelt = [0.04 / 3600.0, 0.04 / 3600.0]
    w.wcs.crpix = [shape[0] / 2.0, shape[1] / 2.0]  # numpy order, as drizzlepac's fixture does
    return w


def run_hapgpu(insci, inwht, kernel, backend="cpu"):
    pmap = PixelMap.from_wcs(grid_wcs(IN_SHAPE), grid_wcs(OUT_SHAPE), (50, 50), stepsize=1)
    drz = Drizzle(OUT_SHAPE, kernel=kernel, pixfrac=1.0, backend=backend, initial_value=0.0)
    drz.add_image(insci[:50, :], pmap, weight=inwht[:50, :], context_id=1)
    return drz


def run_cdriz(insci, inwht, kernel):
    from drizzlepac import cdriz

    outsci = np.zeros(OUT_SHAPE, np.float32)
    outwht = np.zeros(OUT_SHAPE, np.float32)
    outctx = np.zeros(OUT_SHAPE, np.int32)
    mapping = cdriz.DefaultWCSMapping(grid_wcs(IN_SHAPE), grid_wcs(OUT_SHAPE), 60, 50, 1)
    cdriz.tdriz(insci.copy(), inwht.copy(), outsci, outwht, outctx, 1, 0, 1, 1, 50, 1.0, 1.0, 1.0,
                "corner", 1.0, kernel, "cps", 1.0, 1.0, "INDEF", 0, 0, 1, mapping)
    return outsci


SOURCES = {
    "point_pair": lambda a: a.__setitem__((slice(20, 22), 21), 100.0),
    "edge": lambda a: a.__setitem__((0, 21), 100.0),
    "large": lambda a: a.__setitem__((slice(21, 25), slice(22, 26)), 100.0),
    "nonsymmetrical": lambda a: a.__setitem__((slice(21, 25), 22), 100.0),
}
CASES = [("point_pair", k) for k in ("square", "point", "turbo", "gaussian", "lanczos3")] + [
    ("edge", "gaussian"), ("large", "gaussian"), ("nonsymmetrical", "gaussian")]


@pytest.mark.parametrize("source,kernel", CASES)
def test_kernel_truth(source, kernel):
    insci = np.zeros(IN_SHAPE, np.float32)
    SOURCES[source](insci)
    inwht = np.ones(IN_SHAPE, np.float32)
    ours = run_hapgpu(insci, inwht, kernel).sci
    truth = run_cdriz(insci, inwht, kernel)
    np.testing.assert_allclose(ours, truth, atol=1e-4, rtol=1e-5)


def test_documented_patterns():
    insci = np.zeros(IN_SHAPE, np.float32)
    insci[20:22, 21] = 100.0
    inwht = np.ones(IN_SHAPE, np.float32)
    for kernel in ("square", "turbo"):
        sci = run_hapgpu(insci, inwht, kernel).sci
        np.testing.assert_allclose(sci[20:23, 24], [50.0, 100.0, 50.0], rtol=1e-6)
        assert np.count_nonzero(sci > 1e-3) == 3  # plus ~1e-9 px slivers of the WCS noise
    point = run_hapgpu(insci, inwht, "point").sci
    assert point[21, 24] == 100.0 and np.count_nonzero(point) == 1
    gauss = run_hapgpu(insci, inwht, "gaussian").sci
    assert gauss.max() == pytest.approx(88.5425, abs=1e-4)
    assert np.unravel_index(gauss.argmax(), gauss.shape) == (21, 24)
    lanczos = run_hapgpu(insci, inwht, "lanczos3").sci
    assert lanczos.max() == pytest.approx(124.1088, abs=1e-4)
    assert lanczos.min() < 0


@pytest.mark.parametrize("kernel", ["square", "point", "turbo", "gaussian", "lanczos3"])
def test_zero_input_weight_carries_value(kernel):
    """drizzlepac's test_zero_input_weight: masked values survive where nothing else lands."""
    insci = np.zeros(IN_SHAPE, np.float32)
    inwht = np.ones(IN_SHAPE, np.float32)
    insci[0:4, 0:4] = 1e8
    inwht[0:4, 0:4] = 0.0
    insci[6, 7] = 1000.0
    insci[9, 6] = 1000.0
    drz = run_hapgpu(insci, inwht, kernel)
    assert drz.sci.sum() > 1e8
    carried = drz.sci == np.float32(1e8)
    assert carried.any() and np.all(drz.wht[carried] == 0)
    truth = run_cdriz(insci, inwht, kernel)
    np.testing.assert_array_equal(carried, truth == np.float32(1e8))
