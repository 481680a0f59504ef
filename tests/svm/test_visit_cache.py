"""The visit cache: an SVM visit's products drizzled with inputs read once equal those of
independent ``astrodrizzle()`` runs, bit for bit (data, headers, updated inputs)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from hapgpu.astrodrizzle import astrodrizzle
from hapgpu.astrodrizzle._exposure import VisitCache
from hapgpu.simulate import simulate_visit
from hapgpu.svm._metawcs import make_mosaic_wcs, mosaic_drizzle_pars

#: Keywords that record when a file was written, not what it holds.
_TIME_KEYWORDS = {"DATE", "IRAF-TLM", "FITSDATE", "DRIZTIME"}


@pytest.fixture(scope="module")
def visit_dir(tmp_path_factory) -> Path:
    """2 WFC3/UVIS exposures of one filter, 64 x 96 subarray chips, with cosmic rays."""
    out = tmp_path_factory.mktemp("visit_cache") / "visit"
    simulate_visit(out, "wfc3-uvis", 2, filters=["F555W"], shape=(64, 96), seed=5)
    return out


def _copy(visit_dir: Path, dest: Path) -> list[Path]:
    dest.mkdir(parents=True)
    paths = []
    for path in sorted(visit_dir.glob("*_flc.fits")):
        shutil.copyfile(path, dest / path.name)
        paths.append(dest / path.name)
    return paths


def _svm_sequence(paths: list[Path], out: Path, visit) -> list[Path]:
    """The SVM's order and parameters: the filter product (driz_cr flags and MDRIZSKY into the
    inputs), an exposure product (resetbits=0, every DQ bit good, no sky), then the total
    (its own sky, other good bits), all on one metawcs."""
    frame = make_mosaic_wcs(paths, rot=0.0, scale=0.04)
    common = {"backend": "cpu", "progress": False, "visit": visit, "pars": "wfc3_uvis_n2", "final_wcs": True,
              **mosaic_drizzle_pars(frame)}
    no_cr = {"resetbits": 0, "driz_separate": False, "median": False, "blot": False, "driz_cr": False,
             "static": False}
    return [astrodrizzle(paths, out / "filter", **common).product,
            astrodrizzle(paths[:1], out / "exposure", skysub=False, final_bits=65535, **no_cr,
                         **common).product,
            astrodrizzle(paths, out / "total", final_bits=96, final_fillval=0.0, sky_bits=16, **no_cr,
                         **common).product]


def _assert_same_file(a: Path, b: Path) -> None:
    with fits.open(a) as ha, fits.open(b) as hb:
        assert [(h.name, h.ver) for h in ha] == [(h.name, h.ver) for h in hb], a.name
        for x, y in zip(ha, hb):
            cards_x = [(c.keyword, str(c.value)) for c in x.header.cards if c.keyword not in _TIME_KEYWORDS]
            cards_y = [(c.keyword, str(c.value)) for c in y.header.cards if c.keyword not in _TIME_KEYWORDS]
            assert cards_x == cards_y, f"{a.name}[{x.name},{x.ver}] header"
            if x.data is not None and not isinstance(x, fits.BinTableHDU):
                assert x.data.dtype == y.data.dtype
                assert np.array_equal(x.data, y.data, equal_nan=x.data.dtype.kind == "f"), \
                    f"{a.name}[{x.name},{x.ver}] data"


@pytest.mark.slow
def test_cached_visit_equals_independent_runs(visit_dir, tmp_path):
    alone = _copy(visit_dir, tmp_path / "alone")
    shared = _copy(visit_dir, tmp_path / "shared")
    cache = VisitCache()
    made_alone = _svm_sequence(alone, tmp_path / "alone" / "out", None)
    made_shared = _svm_sequence(shared, tmp_path / "shared" / "out", cache)
    assert len(made_alone) == len(made_shared) == 3
    for a, b in zip(made_alone, made_shared):
        assert a.name == b.name
        _assert_same_file(a, b)
    for a, b in zip(alone, shared):  # CR flags and MDRIZSKY written into the inputs
        _assert_same_file(a, b)
    # every input's pixels and headers were read once; the cache took each update (filter,
    # then total) from the values written
    assert cache.n_pixel_reads == 2
    assert cache.n_header_reads == 2
    assert cache.n_memory_updates == 2 + 2
    with fits.open(shared[0]) as hdul:
        assert np.any(np.asarray(hdul["DQ", 1].data).astype(np.uint16) & 4096), "no CR flag was inherited"


def test_file_changed_outside_the_pipeline_is_read_again(visit_dir, tmp_path):
    alone = _copy(visit_dir, tmp_path / "alone")
    shared = _copy(visit_dir, tmp_path / "shared")
    cache = VisitCache()
    kwargs = {"pars": "wfc3_uvis_n2", "backend": "cpu", "progress": False, "resetbits": 0, "skysub": False,
              "driz_separate": False, "median": False, "blot": False, "driz_cr": False, "static": False}
    astrodrizzle([shared[0]], tmp_path / "shared" / "first", visit=cache, **kwargs)
    for path in (alone[0], shared[0]):  # someone else flags a block of pixels
        with fits.open(path, mode="update") as hdul:
            dq = np.asarray(hdul["DQ", 1].data).copy()
            dq[10:30, 20:50] |= 4
            hdul["DQ", 1].data = dq
    a = astrodrizzle([alone[0]], tmp_path / "alone" / "second", **kwargs).product
    b = astrodrizzle([shared[0]], tmp_path / "shared" / "second", visit=cache, **kwargs).product
    assert cache.n_pixel_reads == 2
    _assert_same_file(a, b)
    with fits.open(b) as hdul, fits.open(tmp_path / "shared" / "first_drc.fits") as first:
        assert not np.array_equal(hdul["WHT"].data, first["WHT"].data)  # the flagged block is out


def test_memory_limit_keeps_no_pixels_and_changes_nothing(visit_dir, tmp_path):
    alone = _copy(visit_dir, tmp_path / "alone")
    shared = _copy(visit_dir, tmp_path / "shared")
    cache = VisitCache(max_bytes=0)
    kwargs = {"pars": "wfc3_uvis_n2", "backend": "cpu", "progress": False, "resetbits": 0,
              "driz_separate": False, "median": False, "blot": False, "driz_cr": False, "static": False}
    a = astrodrizzle(alone[:1], tmp_path / "alone" / "e", **kwargs).product
    astrodrizzle(shared[:1], tmp_path / "shared" / "first", visit=cache, **kwargs)
    b = astrodrizzle(shared[:1], tmp_path / "shared" / "e", visit=cache, **kwargs).product
    assert cache.nbytes == 0 and cache.n_pixel_reads == 2
    assert cache.n_header_reads == 1  # the reading; each call's MDRIZSKY update from memory
    assert cache.n_memory_updates == 2
    _assert_same_file(a, b)
    assert "VisitCache(1 files" in repr(cache)


def _tiny_product(path: Path) -> Path:
    """A drizzled-product-like file: two islands of data in NaN, a TAN WCS, and REFFRAME in the
    primary header (from which stwcs adds RADESYS to the SCI header it reads)."""
    primary = fits.Header({"INSTRUME": "WFC3", "DETECTOR": "UVIS", "REFFRAME": "ICRS",
                           "EXPSTART": 58000.25, "EXPEND": 58000.5, "D001DATA": "a_flc.fits[sci,1]"})
    data = np.full((80, 90), np.nan, np.float32)
    data[10:40, 10:50] = 1.0
    data[55:75, 60:85] = 2.0
    sci = fits.ImageHDU(data, name="SCI")
    for key, value in {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 150.0, "CRVAL2": 2.0,
                       "CRPIX1": 45.0, "CRPIX2": 40.0, "CD1_1": -1.1e-5, "CD1_2": 0.0, "CD2_1": 0.0,
                       "CD2_2": 1.1e-5}.items():
        sci.header[key] = value
    fits.HDUList([fits.PrimaryHDU(header=primary), sci]).writeto(path)
    return path


def test_s_region_traced_beforehand_gives_the_same_product(tmp_path):
    from hapgpu.svm._headers import refine_product_headers, sregion_values

    here = _tiny_product(tmp_path / "hst_1_01_wfc3_uvis_f555w_a_drc.fits")
    ahead = tmp_path / "early" / here.name
    ahead.parent.mkdir()
    shutil.copyfile(here, ahead)
    with fits.open(ahead) as hdul:  # as the SVM's worker thread does, on its own reading
        values = sregion_values(hdul, path=ahead)
    assert "RADESYS" not in fits.getheader(ahead, "SCI")
    refine_product_headers(here, hap_level=2)
    refine_product_headers(ahead, hap_level=2, s_region=values)
    _assert_same_file(here, ahead)
    header = fits.getheader(ahead, "SCI")
    assert header["S_REGION"].count("POLYGON ICRS") == 2 and header["RADESYS"] == "ICRS"


def test_visit_must_be_a_cache(tmp_path):
    from hapgpu.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="visit must be a VisitCache"):
        astrodrizzle(tmp_path / "a_flc.fits", tmp_path / "out", visit={"a": 1})
