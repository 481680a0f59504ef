"""What the SVM keeps in memory instead of reading back gives what reading the files gives.

* ``astrodrizzle(..., keep_arrays=True)``: the SCI and WHT arrays returned are those of the
  file, bit for bit;
* the catalog products built from those arrays (``read_catalog_product(..., sci=, wht=)``)
  equal the products read from the files (so do their catalogs);
* the footprint masks of a total continued from its first filter's masks equal a fresh build.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from hapgpu.astrodrizzle import astrodrizzle
from hapgpu.catalogs import read_catalog_product
from hapgpu.errors import InvalidInputError
from hapgpu.simulate import simulate_visit
from hapgpu.svm._footprint import footprint_mask, mask_keywords
from hapgpu.svm._metawcs import make_mosaic_wcs, mosaic_drizzle_pars
from hapgpu.svm._products import _Footprints


@pytest.fixture(scope="module")
def visit(tmp_path_factory) -> list[Path]:
    """2 WFC3/UVIS F555W exposures + 2 F814W, 160 x 160 subarray chips, with stars."""
    out = tmp_path_factory.mktemp("in_memory") / "visit"
    simulate_visit(out, "wfc3-uvis", 4, filters=["F555W", "F814W"], shape=(160, 160), seed=7)
    return sorted(out.glob("*_flc.fits"))


@pytest.fixture(scope="module")
def products(visit, tmp_path_factory):
    """A filter product (kept arrays) and a total product (kept arrays) on one metawcs."""
    out = tmp_path_factory.mktemp("in_memory_products")
    frame = make_mosaic_wcs(visit, rot=0.0)
    common = {"backend": "cpu", "progress": False, "pars": "wfc3_uvis_n2", "final_wcs": True,
              "keep_arrays": True, "update_inputs_dq": False, **mosaic_drizzle_pars(frame)}
    filter_result = astrodrizzle(visit[:2], out / "hst_1_01_wfc3_uvis_f555w_isim01", **common)
    total_result = astrodrizzle(visit[:2], out / "hst_1_01_wfc3_uvis_total_isim01", **common)
    mask = footprint_mask(visit[:2], frame.wcs, frame.shape)[0]
    return {"filter": filter_result, "total": total_result, "mask": mask, "visit": visit}


@pytest.mark.slow
def test_kept_arrays_are_those_of_the_file(products):
    for result in (products["filter"], products["total"]):
        with fits.open(result.product) as hdul:
            for name, array in (("SCI", result.sci), ("WHT", result.wht)):
                assert array.dtype == np.float32 and array.dtype.isnative
                assert np.array_equal(np.asarray(hdul[name].data), array, equal_nan=True), name


@pytest.mark.slow
def test_catalog_products_from_kept_arrays_equal_products_read_from_files(products):
    """The catalog step is a function of its CatalogProducts: equal products, equal catalogs."""
    exposures = products["visit"][:2]
    for kind in ("total", "filter"):
        result = products[kind]
        read = read_catalog_product(result.product, kind=kind, mask=products["mask"], exposures=exposures)
        kept = read_catalog_product(result.product, kind=kind, mask=products["mask"], exposures=exposures,
                                    sci=result.sci, wht=result.wht)
        for name in ("data", "wht", "mask"):
            a, b = getattr(read, name), getattr(kept, name)
            assert a.dtype == b.dtype and a.dtype.isnative and b.dtype.isnative, name
            assert np.array_equal(a, b, equal_nan=True), name
        assert read.primary_header == kept.primary_header and read.sci_header == kept.sci_header
        assert read.wcs.to_header() == kept.wcs.to_header()
        assert read.keywords == kept.keywords
        assert (read.filename, read.kind, read.path) == (kept.filename, kept.kind, kept.path)
        assert read.exposures == kept.exposures and read.single_products == kept.single_products


@pytest.mark.slow
def test_kept_arrays_must_come_in_pairs_and_fit(products):
    path = products["total"].product
    with pytest.raises(InvalidInputError, match="both the SCI and the WHT"):
        read_catalog_product(path, sci=products["total"].sci)
    with pytest.raises(InvalidInputError, match="arrays of shape"):
        read_catalog_product(path, sci=products["total"].sci[1:], wht=products["total"].wht[1:])


def test_total_footprint_continued_from_a_filter_equals_a_fresh_build(visit):
    frame = make_mosaic_wcs(visit, rot=0.0)
    shared = _Footprints(frame)
    for paths in (visit[:2], visit[2:], visit):  # the SVM's order: filters, then the total
        fresh = footprint_mask(paths, frame.wcs, frame.shape)
        masks = shared.masks(paths)
        for a, b in zip(fresh, masks):
            assert a.dtype == b.dtype and np.array_equal(a, b)
        fresh_kw, kw = mask_keywords(*fresh), mask_keywords(*masks)
        assert {k: v[0] for k, v in fresh_kw.items()} == {k: v[0] for k, v in kw.items()}
    # each exposure's chips were filled once
    assert sorted(p.name for p in shared._fills) == sorted(p.name for p in visit)


def test_footprint_count_keywords_match_plain_numpy():
    rng = np.random.default_rng(3)
    for top in (3, 40):  # comparisons per value, and the histogram
        total = rng.integers(0, top, size=(37, 53)).astype(np.int16)
        scaled = (total * np.float32(2.5)).astype(np.float32)
        kw = mask_keywords(total, scaled)
        good = total > 0
        assert kw["NPIXFRAC"][0] == good.sum() / total.size
        assert kw["MEANNEXP"][0] == np.mean(total[good])
        assert kw["MEDNEXP"][0] == np.median(total[good])
        assert kw["MEDEXPT"][0] == np.median(scaled[good])
