"""MVM layer products written once: the keyword hook equals the two updates after the write.

:func:`hapgpu.mvm._products.layer_headers` gives AstroDrizzle the layer keywords
(footprint, SCELLID, MEANWHT/MEDWHT) and the HAPLEVEL 4 refinement before the product's only
write; the file must be the one :func:`drizzle_layer` + :func:`write_layer_keywords` +
:func:`refine_layer_headers` make, byte for byte apart from the ``DATE`` cards. ``run_mvm`` uses the hook; the old sequence is patched in.
"""

from __future__ import annotations

import logging

import pytest

from hapgpu.mvm import _products
from hapgpu.mvm._pipeline import run_mvm

from ..astrodrizzle._fits_bytes import assert_same_fits_bytes
from ._cell_inputs import CELL, sample_rows, write_mvm_poller


def _run(poller, out):
    return run_mvm(poller, out, backend="cpu", progress=False)


def _three_step_sequence(monkeypatch, hooks):
    """Make ``run_mvm`` write each layer the old way: :func:`drizzle_layer` without a hook,
    then :func:`write_layer_keywords` and :func:`refine_layer_headers` on the written file."""
    real_drizzle, real_headers = _products.drizzle_layer, _products.layer_headers

    def headers_after_the_write(layer, footprint, folder, runfile=None):
        hook = real_headers(layer, footprint, folder, runfile)
        hooks.append(hook)
        return hook

    def drizzle_then_update(layer, frame, config, folder, *, finalize_headers, **kwargs):
        path = real_drizzle(layer, frame, config, folder, **kwargs)
        hook = finalize_headers
        _products.write_layer_keywords(path, hook.footprint, layer.scellid, hook.runfile)
        _products.refine_layer_headers(path, layer, folder)
        return path

    monkeypatch.setattr(_products, "layer_headers", headers_after_the_write)
    monkeypatch.setattr(_products, "drizzle_layer", drizzle_then_update)


@pytest.mark.slow
def test_layer_hook_writes_the_same_products(tmp_path, monkeypatch):
    rows = sample_rows(tmp_path / "in")
    poller = write_mvm_poller(tmp_path / f"{CELL}_input.out", rows)
    assert _run(poller, tmp_path / "once") == 0
    hooks = []
    with monkeypatch.context() as patch:
        _three_step_sequence(patch, hooks)
        assert _run(poller, tmp_path / "updated") == 0
    assert hooks and all(not h.done and h.error is None for h in hooks)  # never called
    products = sorted(p.name for p in (tmp_path / "updated").glob("*_dr?.fits"))
    assert products and products == sorted(p.name for p in (tmp_path / "once").glob("*_dr?.fits"))
    for name in products:
        assert_same_fits_bytes(tmp_path / "updated" / name, tmp_path / "once" / name)


def test_layer_hook_keeps_a_keyword_problem_for_the_caller(tmp_path, caplog):
    """A layer whose inputs lack DATE: the hook records the error (the run's exit status 15)
    instead of stopping the write."""
    from astropy.io import fits

    class Exposure:
        renamed = "hst_x_flc.fits"
        svm_exposure_name = "hst_1_01_wfc3_uvis_f555w_x"
        source = tmp_path / "hst_x_flc.fits"

    class Layer:
        new_exposures = (Exposure(),)
        drizzle_filename = "layer_drc.fits"
        scellid = "p0001x01y01"

    fits.PrimaryHDU().writeto(tmp_path / Exposure.renamed)
    footprint = type("F", (), {"keywords": {"NPIXFRAC": (0.5, "fraction")}})()
    hook = _products.layer_headers(Layer(), footprint, tmp_path)
    hdul = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(name="SCI"),
                         fits.ImageHDU(data=[[1.0, 2.0]], name="WHT")])
    hdul["WHT"].ver = 1
    with caplog.at_level(logging.WARNING):
        hook(hdul, tmp_path / "layer_drc.fits")
    assert not hook.done and "DATE" in str(hook.error)
    assert hdul[0].header["SCELLID"] == "p0001x01y01"
