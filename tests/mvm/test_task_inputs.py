"""Inputs of an MVM layer task (hapgpu/mvm/_pipeline.py, hapgpu/mvm/_products.py): the coarse and
fine layers of WFC3/IR read their renamed inputs once, the last layer leaves inputs that are
about to be deleted alone, and a task's frame reaches a Dask worker with its exact WCS.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import pytest

from hapgpu.astrodrizzle import _exposure
from hapgpu.astrodrizzle import _pipeline as ad_pipeline
from hapgpu.mvm import _pipeline as mvm_pipeline
from hapgpu.mvm import _products

from ..astrodrizzle._fits_bytes import assert_same_fits_bytes
from ._cell_inputs import CELL, make_exposures, sample_rows, write_mvm_poller


def _prepared_cell(tmp_path, name, rows):
    """A cell run through steps 1-3 of run_mvm (poller read, plan, renamed input copies)."""
    poller = write_mvm_poller(tmp_path / f"{name}_input.out", rows)
    run = mvm_pipeline._CellRun(tmp_path / name, poller, logging.INFO)
    with ThreadPoolExecutor(max_workers=2) as copier:
        run.open()
        try:
            assert mvm_pipeline._read_cell(run, guiding=False, copier=copier, photflam={}) == 0
            assert mvm_pipeline._plan_cell(run, custom_pars=None, copier=copier) == 0
        finally:
            run.close_log()
        mvm_pipeline._collect_copies(run)
    assert run.code == 0
    return run


@pytest.fixture(scope="module")
def ir_rows(tmp_path_factory):
    """Two simulated WFC3/IR exposures (32 x 32): their layers match skies, so every layer
    writes MDRIZSKY into its renamed inputs."""
    rows = make_exposures(tmp_path_factory.mktemp("task_inputs"), second_uvis=False, old=False)
    return [row for row in rows if row[3] == "IR"]


def _count_calls(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def _products_of(run, group):
    return [run.staging / job.layer.drizzle_filename for job in group]


def _inputs_of(run, group):
    return sorted({run.staging / e.renamed for job in group for e in job.layer.new_exposures})


def test_shared_inputs_are_read_once_per_task(ir_rows, tmp_path, monkeypatch):
    shared = _prepared_cell(tmp_path, "shared", ir_rows)
    alone = _prepared_cell(tmp_path, "alone", ir_rows)
    (group,) = shared.groups
    assert [job.layer.scale for job in group] == ["coarse", "fine"]
    reads = _count_calls(monkeypatch, _exposure, "_read_pixels")
    assert mvm_pipeline.drizzle_layers(group, shared.staging, logging.INFO, "cpu", True) == 0
    assert sorted(e.path for e in reads) == _inputs_of(shared, group)   # each file once
    reads.clear()
    (group_alone,) = alone.groups
    for job in group_alone:   # each layer a task of its own: no shared reading
        assert mvm_pipeline.drizzle_layers((job,), alone.staging, logging.INFO, "cpu", True) == 0
    assert len(reads) == 2 * len(_inputs_of(alone, group_alone))
    for a, b in zip(_products_of(shared, group), _products_of(alone, group_alone), strict=True):
        assert_same_fits_bytes(a, b)
    # the renamed inputs carry the same updates (MDRIZSKY of the fine layer, DQ)
    for a, b in zip(_inputs_of(shared, group), _inputs_of(alone, group_alone), strict=True):
        assert_same_fits_bytes(a, b)


def test_the_last_layer_leaves_discarded_inputs_alone(ir_rows, tmp_path, monkeypatch):
    kept = _prepared_cell(tmp_path, "kept", ir_rows)
    discarded = _prepared_cell(tmp_path, "discarded", ir_rows)
    updates = _count_calls(monkeypatch, ad_pipeline, "update_inputs")
    (group,) = kept.groups
    assert mvm_pipeline.drizzle_layers(group, kept.staging, logging.INFO, "cpu", True) == 0
    n_inputs = len(_inputs_of(kept, group))
    assert len(updates) == 2 * n_inputs   # both layers write MDRIZSKY/DQ (diagnostic mode)
    updates.clear()
    (group_d,) = discarded.groups
    assert mvm_pipeline.drizzle_layers(group_d, discarded.staging, logging.INFO, "cpu", False) == 0
    assert len(updates) == n_inputs       # the coarse layer only: the fine one reads them last
    for a, b in zip(_products_of(kept, group), _products_of(discarded, group_d), strict=True):
        assert_same_fits_bytes(a, b)


def test_frames_reach_workers_with_the_same_wcs(tmp_path):
    """A layer task sent to a Dask worker is pickled: its frame must keep CRPIX, CRVAL and CD
    to the last bit (astropy's own WCS pickling rounds them through a FITS header)."""
    import pickle

    import numpy as np

    rows = sample_rows(tmp_path / "in")
    for scale in ("fine", "coarse"):
        frame = _products.bounded_cell_frame(CELL, scale, [r[1] for r in rows])
        again = pickle.loads(pickle.dumps(frame))
        assert (again.skycell, again.scale, again.shape, again.origin, again.cell_shape) == \
            (frame.skycell, frame.scale, frame.shape, frame.origin, frame.cell_shape)
        for name in ("crpix", "crval", "cd"):
            assert np.array_equal(getattr(again.wcs.wcs, name), getattr(frame.wcs.wcs, name)), name
        assert again.wcs.pixel_shape == frame.wcs.pixel_shape
    # a frame whose WCS is not the cell's keeps it through astropy's pickling
    moved = frame.wcs.deepcopy()
    moved.wcs.crval = moved.wcs.crval + 0.5
    other = _products.CellFrame(frame.skycell, frame.scale, moved, frame.shape, frame.origin, frame.cell_shape)
    assert np.allclose(pickle.loads(pickle.dumps(other)).wcs.wcs.crval, moved.wcs.crval, rtol=0, atol=1e-9)
