"""Sky statistics are remembered by pixel content: repeated products give the same skies, faster."""

from __future__ import annotations

import numpy as np
import pytest

from hapgpu.astrodrizzle import _sky, resolve_parameters
from hapgpu.astrodrizzle._exposure import read_exposure
from hapgpu.astrodrizzle._sky import SkySettings, compute_sky, sky_masks
from hapgpu.backend import resolve_backend


@pytest.fixture
def counted(monkeypatch):
    """Sizes of the statistics really computed (the real computation still runs)."""
    calls = []
    real = _sky.image_statistics

    def spy(values, **kwargs):
        calls.append(values.size)
        return real(values, **kwargs)

    monkeypatch.setattr(_sky, "image_statistics", spy)
    return calls


def _skies(paths, **overrides):
    backend = resolve_backend("cpu")
    params = resolve_parameters(skymethod="match", skystat="median", skylower=None, **overrides)
    exposures = [read_exposure(p, backend, params) for p in paths]
    masks = sky_masks(exposures, params.sky_bits, None, False, np)
    return compute_sky(exposures, masks, SkySettings.from_parameters(params), np)


def test_repeated_match_reuses_every_measurement(small_inputs, fresh_memo, counted):
    first = _skies(small_inputs)
    n_measured = len(counted)
    assert n_measured > 0
    hits = fresh_memo.hits
    second = _skies(small_inputs)
    assert second == first                       # same floats, not just close
    assert len(counted) == n_measured            # nothing computed again
    assert fresh_memo.hits == hits + n_measured + hits
    # without the memo: the same values
    fresh_memo.clear()
    counted.clear()
    assert _skies(small_inputs) == first
    assert len(counted) == n_measured
    # other clipping settings are another computation
    _skies(small_inputs, skyclip=3)
    assert len(counted) == 2 * n_measured


def test_static_masks_reuse_their_thresholds(small_inputs, fresh_memo, counted):
    backend = resolve_backend("cpu")
    params = resolve_parameters()
    exposures = [read_exposure(p, backend, params) for p in small_inputs]
    first = _sky.static_masks(exposures, 4.0, np)
    n_chips = len(counted)
    assert n_chips == sum(len(e.chips) for e in exposures)
    second = _sky.static_masks(exposures, 4.0, np)
    assert len(counted) == n_chips
    assert first.keys() == second.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])


def test_memo_key_and_capacity(fresh_memo):
    kwargs = {"lower": None, "upper": None, "nclip": 5, "lsig": 4.0, "usig": 4.0, "binwidth": 0.1,
              "mode": False, "median": True}
    values = np.linspace(0.0, 1.0, 1000, dtype=np.float32)
    key = fresh_memo.key(values, **kwargs)
    assert key == fresh_memo.key(values.copy(), **kwargs)
    changed = values.copy()
    changed[500] = np.nextafter(changed[500], np.float32(2))
    assert fresh_memo.key(changed, **kwargs) != key
    assert fresh_memo.key(values.astype(np.float64), **kwargs) != key
    assert fresh_memo.key(values.reshape(10, 100), **kwargs) != key
    assert fresh_memo.key(values, **{**kwargs, "nclip": 3}) != key
    settings = SkySettings("match", "median", None, None, 5, 4.0, 4.0, 0.1)
    assert _sky._statistic(values, settings)[1] == 1000
    assert fresh_memo.get(key) is not None
    # the sky method itself does not change a statistic: localmin finds the match result
    assert _sky._statistic(values, SkySettings("localmin", "median", None, None, 5, 4.0, 4.0, 0.1)) \
        == _sky._statistic(values, settings)
    assert fresh_memo.hits == 3
    small = _sky._StatisticMemo(max_entries=2)
    for n in range(3):
        small.put(("k", n), (float(n), 1))
    assert small.get(("k", 0)) is None and small.get(("k", 2)) == (2.0, 1)
    assert "n_entries=2" in repr(small)
