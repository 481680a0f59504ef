"""Overlap statistics of sky matching remembered per chip content: a product made again from the
same exposures neither selects nor hashes the overlap pixels, and gets the same skies."""

from __future__ import annotations

import numpy as np
import pytest

from hapgpu.astrodrizzle import _sky, resolve_parameters
from hapgpu.astrodrizzle._exposure import read_exposure
from hapgpu.astrodrizzle._footprint import overlap_mask, overlap_vertices
from hapgpu.astrodrizzle._sky import SkySettings, compute_sky, sky_masks
from hapgpu.backend import resolve_backend


@pytest.fixture
def spies(monkeypatch):
    """Counts of the statistics computed and of the overlap selections filled."""
    counts = {"stats": 0, "fills": 0}
    real_stats, real_fill = _sky.image_statistics, _sky.fill_polygon

    def stats(values, **kwargs):
        counts["stats"] += 1
        return real_stats(values, **kwargs)

    def fill(vertices, shape):
        counts["fills"] += 1
        return real_fill(vertices, shape)

    monkeypatch.setattr(_sky, "image_statistics", stats)
    monkeypatch.setattr(_sky, "fill_polygon", fill)
    return counts


def _exposures(paths):
    params = resolve_parameters(skymethod="match", skystat="median", skylower=None)
    backend = resolve_backend("cpu")
    return params, [read_exposure(p, backend, params) for p in paths]


def _skies(params, exposures, masks=None):
    if masks is None:
        masks = sky_masks(exposures, params.sky_bits, None, False, np)
    return compute_sky(exposures, masks, SkySettings.from_parameters(params), np)


def test_overlaps_remembered_by_chip_content(small_inputs, fresh_memo, spies):
    params, exposures = _exposures(small_inputs)
    first = _skies(params, exposures)
    measured = spies["stats"]
    assert measured > 0 and spies["fills"] == measured
    # the same exposures read again (new arrays, same values): nothing selected or computed
    params, again = _exposures(small_inputs)
    assert _skies(params, again) == first
    assert spies["stats"] == measured and spies["fills"] == measured
    # without the memo: the same skies, every overlap computed again
    fresh_memo.clear()
    assert _skies(params, again) == first
    assert spies["stats"] == 2 * measured
    # another sky mask is another selection: computed, not taken from the memo
    masks = sky_masks(again, params.sky_bits, None, False, np)
    masks[0][0] = masks[0][0].copy()
    masks[0][0][:5] = False
    _skies(params, again, masks)
    assert spies["stats"] > 2 * measured


def test_overlap_vertices_are_what_the_mask_fills(small_inputs):
    from hapgpu.astrodrizzle._footprint import (
        chip_footprint,
        fill_polygon,
        intersect_footprints,
    )

    _, (a, b) = _exposures(small_inputs[:2])
    chip_a, chip_b = a.chips[0], b.chips[0]
    ring = intersect_footprints(chip_footprint(chip_a.wcs, chip_a.shape),
                                chip_footprint(chip_b.wcs, chip_b.shape))
    assert ring is not None
    vertices = overlap_vertices(chip_a.wcs, ring)
    assert vertices.dtype == np.int64 and vertices.shape == (len(ring[0]), 2)
    np.testing.assert_array_equal(fill_polygon(vertices, chip_a.shape),
                                  overlap_mask(chip_a.wcs, chip_a.shape, ring))
