"""SVM products written once: the refinement in memory equals the refinement of the file.

AstroDrizzle's ``finalize_headers`` hook runs :func:`refine_product_hdulist` (and the footprint
keywords) on the product before its only write; the file must be the one that
:func:`refine_product_headers` makes by rewriting the written product, byte for byte apart from
the ``DATE`` cards.
"""

from __future__ import annotations

import logging

import pytest

from hapgpu.astrodrizzle import astrodrizzle
from hapgpu.errors import InvalidParameterError
from hapgpu.simulate import simulate_visit
from hapgpu.svm import _products
from hapgpu.svm._headers import refine_product_hdulist, refine_product_headers

from ..astrodrizzle._fits_bytes import assert_same_fits_bytes


@pytest.fixture(scope="module")
def visit(tmp_path_factory):
    out = tmp_path_factory.mktemp("single_write")
    simulate_visit(out / "visit", "wfc3-uvis", 2, seed=5, shape=(64, 80))
    return sorted((out / "visit").glob("*_fl?.fits"))


@pytest.mark.parametrize("hap_level", [1, 2])
def test_refine_before_the_write_equals_refine_after(visit, tmp_path, hap_level):
    inputs = visit[:1] if hap_level == 1 else visit
    names = {p.name: f"hst_17001_01_wfc3_uvis_f555w_{p.name[:8]}" for p in visit}
    root = "hst_17001_01_wfc3_uvis_f555w_" + ("isim01a0" if hap_level == 1 else "isim01")
    kwargs = {"hap_level": hap_level, "hap_exposure_names": names, "input_dir": visit[0].parent}
    common = {"backend": "cpu", "pars": "wfc3_uvis_n2", "update_inputs_dq": False, "progress": False}

    after = astrodrizzle(inputs, tmp_path / "after" / root, **common).product
    refine_product_headers(after, **kwargs)
    seen = []

    def finalize(hdul, path):
        seen.append(path)
        refine_product_hdulist(hdul, path, **kwargs)

    before = astrodrizzle(inputs, tmp_path / "before" / root, finalize_headers=finalize, **common).product
    assert seen == [before] and before.name == after.name
    assert not [p.name for p in before.parent.iterdir() if p.name.startswith(".")]  # no temporary left
    assert_same_fits_bytes(after, before)


def test_finalize_headers_must_be_callable(visit, tmp_path):
    with pytest.raises(InvalidParameterError, match="finalize_headers"):
        astrodrizzle(visit, tmp_path / "x", finalize_headers="refine")


def test_a_failing_hook_leaves_no_product(visit, tmp_path):
    def fail(hdul, path):
        raise InvalidParameterError(f"{path}: no")

    with pytest.raises(InvalidParameterError, match="no"):
        astrodrizzle(visit, tmp_path / "out" / "x", backend="cpu", update_inputs_dq=False, progress=False,
                     finalize_headers=fail)
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.slow
def test_run_svm_single_write_equals_refinement_of_the_files(tmp_path, monkeypatch):
    """The whole visit: products refined in memory equal those refined from the written files
    (the hook limited to the footprint keywords, then ``refine_headers`` rewriting each)."""
    from hapgpu.svm._pipeline import run_svm

    sim = simulate_visit(tmp_path / "sim", "wfc3-uvis", 4, filters=["F555W", "F814W"], shape=(64, 80), seed=3)
    assert run_svm(sim.poller, tmp_path / "once", align=False, backend="cpu", progress=False,
                   previews=False) == 0

    def footprint_only(self, hdul, path):
        if self.footprint is not None:
            _products._footprint_header(hdul, *self.footprint)

    monkeypatch.setattr(_products._FinalHeaders, "__call__", footprint_only)
    assert run_svm(sim.poller, tmp_path / "rewritten", align=False, backend="cpu", progress=False,
                   previews=False) == 0
    products = sorted(p.name for p in (tmp_path / "once").glob("*_dr?.fits"))
    assert len(products) == 7
    assert products == sorted(p.name for p in (tmp_path / "rewritten").glob("*_dr?.fits"))
    for name in products:
        assert_same_fits_bytes(tmp_path / "rewritten" / name, tmp_path / "once" / name)


def test_refine_headers_raises_the_hook_error(tmp_path, caplog):
    error = InvalidParameterError("x.fits: bad keyword")
    item = _products.DrizzledProduct(object(), tmp_path / "x.fits", 2, refined=False, refine_error=error)
    with caplog.at_level(logging.INFO), pytest.raises(InvalidParameterError, match="bad keyword"):
        _products.refine_headers([item], [], tmp_path)


def test_keyword_problem_before_the_write_exits_15_without_products(tmp_path, monkeypatch):
    """The refinement in AstroDrizzle's hook failing (here: an OSError) gives drizzlepac's
    KEYWORD_UPDATE_PROBLEM and leaves no product, as when the refinement followed the write."""
    import hapgpu.svm._headers as headers
    from hapgpu.svm._pipeline import run_svm

    visit = simulate_visit(tmp_path / "in", "wfc3-ir", 2, seed=5, shape=32, cosmic_rays=False)
    out = tmp_path / "out"

    def refuse(hdul, path, **kwargs):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(headers, "refine_product_hdulist", refuse)
    assert run_svm(visit.poller, out, align=False, previews=False, backend="cpu", progress=False) == 15
    assert not list(out.glob("*.fits"))
