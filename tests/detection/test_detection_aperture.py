"""Aperture photometry against photutils; annulus statistics against drizzlepac."""

import math
import warnings

import numpy as np
import pytest

from hapgpu.detection import (CircularAnnulus, CircularAperture, aperture_photometry,
                              aperture_stats_tbl)
from hapgpu.errors import InvalidInputError, InvalidParameterError
from hapgpu.kernels.detection import aperture as kap


@pytest.fixture(scope="module")
def phot_inputs(field):
    rng = np.random.default_rng(21)
    data = field.data.copy()
    data[50, 60] = np.nan
    mask = rng.random(data.shape) < 0.02
    pos = np.vstack([field.stars[:120, :2], [[20.0, 30.0], [20.5, 30.5], [0.0, 0.0],
                                             [255.4, 255.6], [-3.0, 100.0], [300.0, 5.0]]])
    return data, field.error, mask, pos


@pytest.mark.parametrize("r", [0.3, 1.0, 2.7, 7.5])
def test_exact_overlap_of_a_whole_disc_is_its_area(r):
    for x, y in ((0.0, 0.0), (0.37, -0.21), (0.5, 0.5)):
        n = int(math.ceil(r)) + 2
        grid = kap.overlap_grid_cpu(x, y, 0.0, r, -n, -n, 2 * n + 1, 2 * n + 1, kap.M_EXACT, 5)
        assert grid.sum() == pytest.approx(math.pi * r * r, rel=1e-12)
        assert grid.max() <= 1.0 and grid.min() >= 0.0


def test_exact_overlap_analytic_cases():
    # a pixel centred on the disc centre with r = 0.5: the inscribed disc
    grid = kap.overlap_grid_cpu(0.0, 0.0, 0.0, 0.5, 0, 0, 1, 1, kap.M_EXACT, 5)
    assert grid[0, 0] == pytest.approx(math.pi / 4, rel=1e-14)
    # a quarter disc in the pixel [0, 1] x [0, 1] around a corner
    grid = kap.overlap_grid_cpu(-0.5, -0.5, 0.0, 1.0, 0, 0, 1, 1, kap.M_EXACT, 5)
    assert grid[0, 0] == pytest.approx(math.pi / 4, rel=1e-14)
    # annulus 1 < r < 2 around a pixel centre: the ring's area
    grid = kap.overlap_grid_cpu(0.0, 0.0, 1.0, 2.0, -3, -3, 7, 7, kap.M_EXACT, 5)
    assert grid.sum() == pytest.approx(3 * math.pi, rel=1e-12)


def test_annulus_touches_is_the_sign_of_the_weight():
    """The annulus pixel test decides as ``annulus_weight > 0`` does, pixel for pixel, for
    HAP's sky annulus and random radii, centres on and off half pixels, and near-tangent
    pixels."""
    rng = np.random.default_rng(5)
    n = 600
    x = rng.uniform(0.0, 50.0, n)
    y = rng.uniform(0.0, 50.0, n)
    half = rng.random(n) < 0.3
    x[half] = np.round(x[half] * 2) / 2
    y[half] = np.round(y[half] * 2) / 2
    r_in = np.where(rng.random(n) < 0.5, 0.25 / 0.04, rng.uniform(0.0, 8.0, n))
    r_out = np.where(rng.random(n) < 0.5, 0.5 / 0.04, r_in + rng.uniform(0.01, 8.0, n))
    whole = rng.random(n) < 0.2
    r_in[whole] = np.round(r_in[whole])
    r_out[whole] = np.round(r_out[whole]) + 1.0
    r_in[rng.random(n) < 0.1] = 0.0
    ns = kap._cpu
    checked = 0
    for k in range(n):
        ix0, ix1 = math.floor(x[k] - r_out[k] + 0.5), math.ceil(x[k] + r_out[k] + 0.5)
        iy0, iy1 = math.floor(y[k] - r_out[k] + 0.5), math.ceil(y[k] + r_out[k] + 0.5)
        ex0, ey0 = ix0 - 0.5 - x[k], iy0 - 0.5 - y[k]
        sx = ((ix1 - 0.5 - x[k]) - ex0) / (ix1 - ix0)
        sy = ((iy1 - 0.5 - y[k]) - ey0) / (iy1 - iy0)
        grid = kap.overlap_grid_cpu(x[k], y[k], r_in[k], r_out[k], ix0, iy0, iy1 - iy0,
                                    ix1 - ix0, kap.M_EXACT, 5)
        for j in range(iy1 - iy0):
            py0 = ey0 + j * sy
            for i in range(ix1 - ix0):
                px0 = ex0 + i * sx
                touches = ns.annulus_touches(kap.M_EXACT, 5, px0, px0 + sx, py0, py0 + sy,
                                             r_in[k], r_out[k])
                assert touches == (grid[j, i] > 0.0), (x[k], y[k], r_in[k], r_out[k], j, i)
                checked += 1
    assert checked > 50000


@pytest.mark.reference
@pytest.mark.parametrize("method", ["exact", "center", "subpixel"])
def test_aperture_photometry_matches_photutils(phot_inputs, method):
    from photutils import aperture as pa

    data, error, mask, pos = phot_inputs
    radii = (0.7, 2.3, 5.0)
    ref_apers = [pa.CircularAperture(pos, r=r) for r in radii]
    ref_apers.append(pa.CircularAnnulus(pos, 6.0, 9.5))
    ours_apers = [CircularAperture(pos, r) for r in radii] + [CircularAnnulus(pos, 6.0, 9.5)]
    ref = pa.aperture_photometry(data, ref_apers, error=error, mask=mask, method=method)
    ours = aperture_photometry(data, ours_apers, error=error, mask=mask, method=method,
                               backend="cpu")
    for i in range(4):
        for col in (f"aperture_sum_{i}", f"aperture_sum_err_{i}"):
            np.testing.assert_allclose(ours[col], ref[col], rtol=1e-10, atol=1e-12,
                                       equal_nan=True, err_msg=col)
    np.testing.assert_array_equal(ours["id"], ref["id"])
    # photutils apertures are accepted as well
    ours2 = aperture_photometry(data, ref_apers[1], mask=mask, method=method, backend="cpu")
    np.testing.assert_allclose(ours2["aperture_sum"], ours["aperture_sum_1"], rtol=1e-12,
                               equal_nan=True)


@pytest.mark.reference
def test_aperture_photometry_cudasim(phot_inputs):
    from photutils import aperture as pa

    data, error, mask, pos = phot_inputs
    pos = pos[-12:]
    ref = pa.aperture_photometry(data, pa.CircularAnnulus(pos, 2.0, 4.5), error=error,
                                 mask=mask)
    ours = aperture_photometry(data, CircularAnnulus(pos, 2.0, 4.5), error=error, mask=mask,
                               backend="cudasim")
    for col in ("aperture_sum", "aperture_sum_err"):
        np.testing.assert_allclose(ours[col], ref[col], rtol=1e-10, equal_nan=True)


@pytest.mark.reference
@pytest.mark.parametrize("backend", ["cpu", "cudasim"])
def test_annulus_statistics_match_drizzlepac(phot_inputs, backend):
    from drizzlepac.haputils.background_median import aperture_stats_tbl as ref_stats
    from photutils import aperture as pa

    data, _, _, pos = phot_inputs
    pos = pos[:8] if backend == "cudasim" else pos[:-2]
    annulus = pa.CircularAnnulus(pos, 6.25, 12.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # drizzlepac divides mask by mask
        ref = ref_stats(data, annulus)
    ours = aperture_stats_tbl(data, annulus, backend=backend)
    assert ours.colnames == ref.colnames
    for col in ref.colnames:
        np.testing.assert_allclose(ours[col], ref[col], rtol=1e-10, atol=1e-12, err_msg=col)


def test_annulus_statistics_without_clipping():
    data = np.arange(100, dtype=np.float64).reshape(10, 10)
    table = aperture_stats_tbl(data, CircularAnnulus([[4.5, 4.5]], 0.1, 1.0), sigma_clip=False,
                               backend="cpu")
    assert table["aperture_area"][0] == 4
    assert table["aperture_mean"][0] == pytest.approx(np.mean([44, 45, 54, 55]))
    assert table["aperture_mode"][0] == pytest.approx(3 * 49.5 - 2 * 49.5)


def test_aperture_validation(phot_inputs):
    data, _, _, pos = phot_inputs
    with pytest.raises(InvalidParameterError):
        CircularAperture(pos, 0.0)
    with pytest.raises(InvalidParameterError):
        CircularAnnulus(pos, 3.0, 2.0)
    with pytest.raises(InvalidInputError):
        aperture_photometry(data, [CircularAperture(pos, 1), CircularAperture(pos[:3], 1)])
    with pytest.raises(InvalidParameterError):
        aperture_photometry(data, CircularAperture(pos, 1), method="fast")
    assert repr(CircularAperture(pos[:2], 3.0)) == "CircularAperture(n=2, r=3.0)"
