"""sigma_clipped_stats against astropy; the HAP MAD rms against its formula."""

import warnings

import numpy as np
import pytest

from hapgpu.detection import mad_rms, sigma_clipped_stats
from hapgpu.errors import InvalidInputError, InvalidParameterError

CASES = [
    {},
    {"maxiters": 10},
    {"cenfunc": "mean"},
    {"stdfunc": "mad_std", "sigma": 2.5},
    {"maxiters": None, "sigma_lower": 2.0, "sigma_upper": 4.0},
    {"maxiters": 0},
    {"std_ddof": 1},
]


def _reference(data, **kwargs):
    from astropy.stats import sigma_clipped_stats as ref

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy warns about the NaNs it clips
        return ref(data, **kwargs)


@pytest.fixture(scope="module")
def noisy():
    rng = np.random.default_rng(0)
    data = rng.normal(10.0, 2.0, (300, 280))
    data[rng.random(data.shape) < 0.03] += rng.exponential(50.0)
    data[::7, ::5] += 30.0
    data[0, 0] = np.nan
    data[5, 9] = np.inf
    mask = rng.random(data.shape) < 0.1
    return data, mask


@pytest.mark.reference
@pytest.mark.parametrize("backend", ["cpu", "cudasim"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kwargs", CASES, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_sigma_clipped_stats_matches_astropy(noisy, backend, dtype, kwargs):
    data, mask = noisy
    data = data.astype(dtype)
    ours = sigma_clipped_stats(data, mask=mask, backend=backend, **kwargs)
    ref = _reference(data, mask=mask, **kwargs)
    assert [type(v) for v in ours] == [type(np.asarray(v)[()]) for v in ref]
    rtol = 2e-7 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(np.array(ours, float), np.array(ref, float), rtol=rtol)


@pytest.mark.reference
def test_sigma_clipped_stats_field_and_mask_value(field):
    ours = sigma_clipped_stats(field.data, mask=~field.footprint, sigma=3.0, maxiters=3,
                               backend="cpu")
    ref = _reference(field.data, mask=~field.footprint, sigma=3.0, maxiters=3)
    np.testing.assert_allclose(ours, ref, rtol=2e-7)
    ours = sigma_clipped_stats(field.data, mask_value=0.0, backend="cpu")
    ref = _reference(field.data, mask_value=0.0)
    np.testing.assert_allclose(ours, ref, rtol=2e-7)


def test_sigma_clipped_stats_of_a_tiny_analytic_case():
    data = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    mean, median, std = sigma_clipped_stats(data, sigma=1.5, backend="cpu")
    assert (mean, median, std) == (2.5, 2.5, np.std([1.0, 2.0, 3.0, 4.0]))


def test_sigma_clipped_stats_errors():
    data = np.ones((4, 4))
    with pytest.raises(InvalidParameterError):
        sigma_clipped_stats(data, axis=0)
    with pytest.raises(InvalidParameterError):
        sigma_clipped_stats(data, cenfunc="mode")
    with pytest.raises(InvalidInputError):
        sigma_clipped_stats(data, mask=np.ones((4, 4), bool))
    with pytest.raises(InvalidInputError):
        sigma_clipped_stats(data, mask=np.ones((3, 4), bool))


def _mad_rms_reference(img):
    masked = np.ma.masked_array(img, mask=(img == 0) | np.isnan(img))
    diffs = 2 * masked[:, 2:-2] - masked[:, :-4] - masked[:, 4:]
    return float(np.ma.median(np.ma.abs(diffs)) * 1.482602 / np.sqrt(6.0))


@pytest.mark.parametrize("backend", ["cpu", "cudasim"])
def test_mad_rms_matches_hap_formula(field, backend):
    img = field.data.copy()
    img[40, 40:45] = np.nan
    assert mad_rms(img, backend=backend) == pytest.approx(_mad_rms_reference(img), rel=1e-6)
