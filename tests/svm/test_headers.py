"""refine_product_headers and S_REGION (hap-pipeline.md §1.12): drizzlepac as the oracle, invariants, errors."""

from __future__ import annotations

import logging
import shutil
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

import hapgpu
from hapgpu.errors import InvalidInputError, InvalidParameterError
from hapgpu.simulate import simulate_visit
from hapgpu.svm._headers import (fill_holes, footprint_from_data, refine_product_headers, simplify_polygon,
                                 sregion_polygons, trace_region_border)
from hapgpu.svm._metawcs import make_mosaic_wcs, mosaic_drizzle_pars

SCALE = 0.04 / 3600.0


def _regions():
    """Test regions (bool, empty border): rectangle, rotated square, L shape, notched blob."""
    yy, xx = np.mgrid[0:60, 0:70]
    rect = (xx >= 10) & (xx < 50) & (yy >= 12) & (yy < 40)
    u, v = (xx - 35) * np.cos(0.5) + (yy - 30) * np.sin(0.5), -(xx - 35) * np.sin(0.5) + (yy - 30) * np.cos(0.5)
    rotated = (np.abs(u) < 18) & (np.abs(v) < 14)
    ell = ((xx >= 8) & (xx < 30) & (yy >= 8) & (yy < 52)) | ((xx >= 8) & (xx < 60) & (yy >= 8) & (yy < 25))
    blob = ((xx - 35) ** 2 / 500.0 + (yy - 30) ** 2 / 300.0 < 1) & ~((xx > 30) & (xx < 40) & (yy > 35))
    return {"rect": rect, "rotated": rotated, "ell": ell, "blob": blob}


# ---------------------------------------------------------------------------------------------
# tracing and simplification

@pytest.mark.reference
@pytest.mark.parametrize("name", list(_regions()))
def test_trace_equals_drizzlepac(name):
    from drizzlepac.haputils import cell_utils

    region = _regions()[name]
    mine = trace_region_border(region)
    ref = cell_utils.trace_polygon(region, (slice(0, region.shape[0]), slice(0, region.shape[1])))
    np.testing.assert_array_equal(mine, ref)
    assert mine.dtype == np.int32 and np.array_equal(mine[0], mine[-1])


@pytest.mark.reference
@pytest.mark.parametrize("seed", range(6))
def test_simplify_equals_simplify_polyline(seed):
    # random star-shaped rings with float vertices: no ties between triangle areas, so the
    # reference's id()-based tie-break never matters and the results must be identical
    from simplify_polyline import simplify

    rng = np.random.default_rng(seed)
    n = 200
    angle = np.sort(rng.uniform(0, 2 * np.pi, n))
    radius = 100 + 30 * rng.standard_normal(n).cumsum() / np.sqrt(n)
    ring = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    ring = np.vstack([ring, ring[:1]])
    for tolerance in (2.0, 10.0):
        np.testing.assert_array_equal(simplify_polygon(ring, tolerance), simplify(ring, min_dist=tolerance))


def test_simplify_pixel_rectangle_gives_its_corners():
    ring = trace_region_border(_regions()["rect"])
    corners = simplify_polygon(ring)
    assert np.array_equal(corners[0], corners[-1])
    # the walk cuts the corner pixels it reaches diagonally: vertices within 1 pixel of them
    truth = np.array([(10.0, 12.0), (49.0, 12.0), (49.0, 39.0), (10.0, 39.0)])
    assert len(corners) == 5
    assert all(np.abs(truth - c).max(axis=1).min() <= 1.0 for c in corners[:-1])
    assert len({int(np.abs(truth - c).max(axis=1).argmin()) for c in corners[:-1]}) == 4
    # every traced border pixel lies within the tolerance of the simplified outline
    assert _max_distance_to_outline(ring, corners) <= 10.0


def test_simplify_errors():
    with pytest.raises(InvalidInputError, match="3 points"):
        simplify_polygon([[0, 0], [1, 1], [0, 0]])
    with pytest.raises(InvalidInputError, match="empty region"):
        trace_region_border(np.zeros((5, 5), bool))


def _scipy_footprint(data):
    """drizzlepac's extract_mask + find_corners smoothing, whole frame, plain scipy calls."""
    from scipy import ndimage

    mask = ~np.isnan(data) if np.isnan(data).any() else data != 0
    filled = ndimage.binary_fill_holes(mask)
    closed = ndimage.binary_erosion(ndimage.binary_dilation(filled, iterations=11), iterations=11)
    opened = ndimage.binary_dilation(ndimage.binary_erosion(filled | closed, iterations=3), iterations=3)
    return ndimage.gaussian_filter(opened.astype(np.float32), sigma=2) > 0.5


def test_footprint_from_data_equals_the_whole_frame_scipy_chain():
    """Label-based hole filling, shifted-array morphology and the tiled evaluation give the
    pixels of scipy's chain on the whole frame: images with holes, gaps narrower and wider
    than the closing bridges, data on the frame edges, all data and none."""
    from scipy import ndimage

    rng = np.random.default_rng(5)
    images = []
    for _ in range(8):
        ny, nx = (int(n) for n in rng.integers(20, 420, 2))
        noise = ndimage.gaussian_filter(rng.normal(size=(ny, nx)), rng.uniform(2, 15))
        keep = noise > rng.uniform(-0.3, 0.6) * noise.std()
        keep &= rng.random((ny, nx)) > 0.002  # scattered holes
        images.append(np.where(keep, rng.normal(size=(ny, nx)), np.nan).astype(np.float32))
    yy, xx = np.mgrid[0:500, 0:460]
    u, v = (xx - 230) * np.cos(0.5) + (yy - 250) * np.sin(0.5), -(xx - 230) * np.sin(0.5) + (yy - 250) * np.cos(0.5)
    chips = (np.abs(u) < 190) & (np.abs(v) < 170) & ~((v > -8) & (v < 8)) & ~((v > 60) & (v < 100) & (u > 0))
    images.append(np.where(chips, 1.0, np.nan).astype(np.float32))
    images.append(np.where(chips, 2.0, 0.0).astype(np.float32))  # no NaN: zero means no data
    images += [np.ones((200, 300), np.float32), np.zeros((50, 40), np.float32)]
    for data in images:
        np.testing.assert_array_equal(footprint_from_data(data), _scipy_footprint(data))
        mask = ~np.isnan(data)
        np.testing.assert_array_equal(fill_holes(mask), ndimage.binary_fill_holes(mask))


def test_sregion_polygons_one_per_island():
    # islands 30 pixels apart: more than the 11-iteration closing bridges (22 pixels)
    data = np.full((80, 150), np.nan, np.float32)
    data[10:50, 5:45] = 1.0
    data[20:70, 75:125] = 2.0
    data[30, 20] = np.nan  # a hole inside the first island is filled
    polygons = sregion_polygons(data)
    assert len(polygons) == 2
    # label order: the first island in row-major order comes first
    for polygon, (x0, y0, x1, y1) in zip(polygons, [(5, 10, 44, 49), (75, 20, 124, 69)]):
        assert np.array_equal(polygon[0], polygon[-1])
        # vertices are border pixels (the smoothing moves edges by at most a pixel) ...
        assert polygon[:, 0].min() >= x0 - 1 and polygon[:, 0].max() <= x1 + 1
        assert polygon[:, 1].min() >= y0 - 1 and polygon[:, 1].max() <= y1 + 1
        # ... and the outline stays within the 10-pixel tolerance of the island's border
        border = [(x, y) for x in (x0, x1) for y in range(y0, y1 + 1)] + \
                 [(x, y) for y in (y0, y1) for x in range(x0, x1 + 1)]
        assert _max_distance_to_outline(border, polygon) <= 10.0 + 2.0
    zeros = np.where(np.isnan(data), 0.0, data)
    assert np.array_equal(footprint_from_data(zeros), footprint_from_data(data))


def _segment_distance(points, a, b):
    d = b - a
    t = np.clip(((points - a) @ d) / (d @ d), 0.0, 1.0) if d @ d > 0 else np.zeros(len(points))
    return np.hypot(*(points - (a + t[:, None] * d)).T)


def _max_distance_to_outline(points, ring):
    points = np.asarray(points, float)
    dists = np.min([_segment_distance(points, ring[i], ring[i + 1]) for i in range(len(ring) - 1)], axis=0)
    return float(dists.max())


# ---------------------------------------------------------------------------------------------
# refine_product_headers on small synthetic products

def _product(path, *, instrument="ACS", filters=("F606W", "CLEAR2L"), with_hdrtab=True,
             proposids=(17001, 16002)):
    primary = fits.Header()
    primary["INSTRUME"] = instrument
    primary["DETECTOR"] = "WFC" if instrument == "ACS" else "PC"
    primary["ROOTNAME"] = "whatever"
    primary["PR_INV_L"] = "Hubble"
    primary["EXPSTART"] = 58000.25
    primary["EXPEND"] = 58000.5
    primary["APERTURE"] = "WFALL"
    for i, f in enumerate(filters, start=1):
        primary[f"FILTER{i}"] = f
    primary["PHOTFLAM"] = (1.5e-19, "inverse sensitivity")
    primary["PHOTMODE"] = ("ACS WFC1 F606W", "observation con")
    primary["D001DATA"] = "j1_flc.fits[sci,1]"
    primary["D002DATA"] = "j1_flc.fits[sci,2]"
    primary["D003DATA"] = "j2_flc.fits[sci,1]"
    data = np.full((60, 70), np.nan, np.float32)
    data[10:50, 10:60] = 1.0
    sci = fits.ImageHDU(data, name="SCI")
    sci.header.update(WCS(fits.Header({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 150.0,
                                       "CRVAL2": 2.0, "CRPIX1": 35.0, "CRPIX2": 30.0, "CD1_1": -SCALE,
                                       "CD1_2": 0.0, "CD2_1": 0.0, "CD2_2": SCALE})).to_header())
    sci.header["PHOTFLAM"] = (9.9e-19, "old")
    if instrument == "WFPC2":  # stwcs reads the chip from the extension, the binning from MODE
        sci.header["DETECTOR"] = 1
        primary["MODE"] = "FULL"
    hdus = [fits.PrimaryHDU(header=primary), sci, fits.ImageHDU(np.ones((60, 70), np.float32), name="WHT")]
    if with_hdrtab:
        hdus.append(fits.BinTableHDU.from_columns(
            [fits.Column(name="ROOTNAME", format="9A", array=["j1q", "j2q"]),
             fits.Column(name="PROPOSID", format="J", array=list(proposids))], name="HDRTAB"))
    fits.HDUList(hdus).writeto(path)
    return path


def test_refine_keywords_of_a_filter_product(tmp_path):
    path = _product(tmp_path / "hst_17001_01_acs_wfc_f606w_j1_drc.fits")
    names = {"j1_flc.fits": "hst_17001_01_acs_wfc_f606w_j1", "j2_flc.fits": "hst_17001_01_acs_wfc_f606w_j2"}
    assert refine_product_headers(path, hap_level=2, hap_exposure_names=names) == path
    with fits.open(path) as hdul:
        p, s = hdul[0].header, hdul["SCI"].header
        assert p["ROOTNAME"] == "hst_17001_01_acs_wfc_f606w_j1"
        assert p["FILENAME"] == path.name
        assert p["PINAME"] == "Hubble"
        assert p["NUMEXP"] == 2 and "IPPPSSOO" not in p
        assert p["DATE-BEG"] == "2017-09-04T06:00:00.000" and p["DATE-END"] == "2017-09-04T12:00:00.000"
        assert p.comments["DATE-BEG"] == "Starting Date and Time"
        assert p["EQUINOX"] == 2000.0
        assert p["FILTER"] == "F606W"
        assert p["HAPLEVEL"] == 2 and p.comments["HAPLEVEL"] == "Classification level of this product"
        assert "PHOTFLAM" not in p and "PHOTMODE" not in p
        assert s["PHOTFLAM"] == 1.5e-19 and s.comments["PHOTFLAM"] == "inverse sensitivity"
        assert s["PHOTMODE"] == "ACS WFC1 F606W"
        assert s["S_REGION"].startswith("POLYGON ICRS ") and s["S_REGION"].count("POLYGON") == 1
        assert [h.name for h in hdul] == ["PRIMARY", "SCI", "WHT", "HDRTAB"]
        tab = hdul["HDRTAB"]
        assert tab.columns.names == ["ROOTNAME", "PROPOSID", "HAPEXPNAME"]
        assert tab.columns["HAPEXPNAME"].format == "51A"
        assert list(tab.data["HAPEXPNAME"]) == ["hst_17001_01_acs_wfc_f606w_j1", "hst_17001_01_acs_wfc_f606w_j2"]
    assert sorted(x.name for x in tmp_path.iterdir()) == [path.name]  # no temporary file left


def test_refine_sregion_vertices_on_the_data_outline(tmp_path):
    path = _product(tmp_path / "hst_1_01_acs_wfc_f606w_j1_drc.fits")
    refine_product_headers(path, hap_level=2)
    with fits.open(path) as hdul:
        values = np.array(hdul["SCI"].header["S_REGION"].split()[2:], float).reshape(-1, 2)
        x, y = WCS(hdul["SCI"].header).all_world2pix(values[:, 0], values[:, 1], 0)
    np.testing.assert_allclose(x, np.round(x), atol=1e-6)
    assert set(np.round(x)) <= set(range(10, 61)) and set(np.round(y)) <= set(range(10, 51))
    outline = np.stack([x, y], axis=1)
    assert _max_distance_to_outline([(10, 10), (59, 10), (59, 49), (10, 49)], outline) <= 10.0 + 2.0


def test_refine_total_mvm_and_wfpc2(tmp_path, caplog):
    total = _product(tmp_path / "hst_1_01_acs_wfc_total_j1_drc.fits", filters=("CLEAR1L", "CLEAR2L"))
    refine_product_headers(total, hap_level=2)
    assert fits.getval(total, "FILTER") == "detection"
    layer = _product(tmp_path / "hst_skycell-p0121x12y16_acs_wfc_f606w_all_drc.fits")
    names = {"j1_flc.fits": "hst_1_01_acs_wfc_f606w_j1", "j2_flc.fits": "hst_2_01_acs_wfc_f606w_j2"}
    svm = {"j1_flc.fits": "hst_1_01_acs_wfc_f606w_j1_drc", "j2_flc.fits": "hst_2_01_acs_wfc_f606w_j2_drc"}
    dates = {"j1_flc.fits": "2020-01-01", "j2_flc.fits": "2021-02-03"}
    with pytest.raises(InvalidParameterError, match="SVMROOTNAME"):
        refine_product_headers(layer, hap_level=4, hap_exposure_names=names)
    refine_product_headers(layer, hap_level=4, hap_exposure_names=names, svm_root_names=svm, svm_gendates=dates)
    with fits.open(layer) as hdul:
        assert hdul[0].header["PROPOSID"] == "16002; 17001"
        assert hdul[0].header["HAPLEVEL"] == 4
        tab = hdul["HDRTAB"]
        assert tab.columns.names == ["SVMROOTNAME", "GENDATE", "ROOTNAME", "PROPOSID", "HAPEXPNAME"]
        assert list(tab.data["GENDATE"]) == ["2020-01-01", "2021-02-03"]
        assert list(tab.data["SVMROOTNAME"]) == list(svm.values())
    wfpc2 = _product(tmp_path / "hst_1_01_wfpc2_pc_f555w_u1_drz.fits", instrument="WFPC2", with_hdrtab=False)
    with caplog.at_level(logging.WARNING, logger="hapgpu.svm._headers"):
        refine_product_headers(wfpc2, hap_level=2, poller_aperture="PC1")
    assert "no HDRTAB" in caplog.text
    with fits.open(wfpc2) as hdul:
        assert hdul[0].header["APERTURE"] == "PC1" and hdul[0].header["FILTER1"] == "F606W"
        assert "FILTER" not in hdul[0].header and "HDRTAB" not in hdul


def test_refine_exposure_product_reads_input_rootname(tmp_path):
    path = _product(tmp_path / "hst_1_01_acs_wfc_f606w_j1_drc.fits")
    for name, root in (("j1_flc.fits", "j1abcdeq"), ("j2_flc.fits", "j2abcdeq")):
        fits.PrimaryHDU(header=fits.Header({"ROOTNAME": root})).writeto(tmp_path / name)
    refine_product_headers(path, hap_level=1)
    assert fits.getval(path, "IPPPSSOO") == "j1abcdeq;j2abcdeq"
    (tmp_path / "j2_flc.fits").unlink()
    with pytest.raises(InvalidInputError, match="j2_flc.fits"):
        refine_product_headers(path, hap_level=1)


def test_refine_errors(tmp_path):
    with pytest.raises(InvalidParameterError, match="hap_level"):
        refine_product_headers(tmp_path / "x_drc.fits", hap_level=5)
    with pytest.raises(InvalidInputError, match="x_drc.fits"):
        refine_product_headers(tmp_path / "x_drc.fits", hap_level=2)
    bare = tmp_path / "bare_drc.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((3, 3)), name="SCI")]).writeto(bare)
    with pytest.raises(InvalidInputError, match="bare_drc.fits: no EXPSTART"):
        refine_product_headers(bare, hap_level=2)


# ---------------------------------------------------------------------------------------------
# drizzlepac's refine_product_headers on a product made by hapgpu's AstroDrizzle

def _polygons(text):
    return [np.array(p.split(), float).reshape(-1, 2) for p in text.split("POLYGON ICRS") if p.strip()]


@pytest.mark.slow
@pytest.mark.reference
def test_refine_equals_drizzlepac(tmp_path, monkeypatch):
    from drizzlepac.haputils import poller_utils, processing_utils

    result = simulate_visit(tmp_path / "raw", "wfc3-uvis", 2, seed=4, shape=(64, 64), roll_deg=5.0,
                            dither_pixels=10.0, noise=False, cosmic_rays=False, defects=False,
                            star_density=0, galaxy_density=0)
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, totals = poller_utils.interpret_obset_input(str(result.poller), logging.WARNING)
    total = totals[0]
    filt = total.fdp_list[0]
    exposure = filt.edp_list[0]
    files = [e.full_filename for e in total.edp_list]
    pars = mosaic_drizzle_pars(make_mosaic_wcs(files))
    quick = dict(static=False, skysub=False, driz_separate=False, median=False, blot=False, driz_cr=False)
    products = [(filt.drizzle_filename, files, 2), (exposure.drizzle_filename, [exposure.full_filename], 1)]
    names = {e.full_filename: e.product_basename for e in total.edp_list}
    (tmp_path / "mine").mkdir()
    for name, inputs, level in products:
        hapgpu.astrodrizzle(inputs, name.rsplit("_", 1)[0], backend="cpu", pars="defaults", **quick, **pars)
        shutil.copy(name, tmp_path / "mine" / name)
        refine_product_headers(tmp_path / "mine" / name, hap_level=level, hap_exposure_names=names,
                               input_dir=tmp_path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            processing_utils.refine_product_headers(name, totals)
        with fits.open(tmp_path / "mine" / name) as mine, fits.open(name) as ref:
            assert [h.name for h in mine] == [h.name for h in ref]
            for hm, hr in zip(mine, ref):
                assert list(hm.header) == list(hr.header), hm.name
                for key in hm.header:
                    if key == "S_REGION":
                        continue
                    assert hm.header[key] == hr.header[key], (name, hm.name, key)
                    assert hm.header.comments[key] == hr.header.comments[key], (name, hm.name, key)
            assert mine["HDRTAB"].columns.names[-1] == "HAPEXPNAME"
            assert mine["HDRTAB"].columns.names == ref["HDRTAB"].columns.names
            assert mine["HDRTAB"].columns.formats == ref["HDRTAB"].columns.formats
            for column in ref["HDRTAB"].columns.names:
                np.testing.assert_array_equal(mine["HDRTAB"].data[column], ref["HDRTAB"].data[column], column)
            # S_REGION: drizzlepac breaks ties between equal triangle areas by object id()
            # (memory address), so its vertices may move along the outline from run to run.
            # Both are simplifications of the same traced border at a 10-pixel tolerance, so
            # each vertex of one (a border pixel) lies within 10 pixels of the other's outline.
            wcs = WCS(mine["SCI"].header)
            ours, theirs = _polygons(mine["SCI"].header["S_REGION"]), _polygons(ref["SCI"].header["S_REGION"])
            assert len(ours) == len(theirs) >= 1
            for a, b in zip(ours, theirs):
                pa = np.stack(wcs.all_world2pix(a[:, 0], a[:, 1], 0), axis=1)
                pb = np.stack(wcs.all_world2pix(b[:, 0], b[:, 1], 0), axis=1)
                assert _max_distance_to_outline(pa, pb) <= 10.0 + 1e-6
                assert _max_distance_to_outline(pb, pa) <= 10.0 + 1e-6


# ---------------------------------------------------------------------------------------------
# HAPEXPNAME in products of run_svm (the HDRTAB comes from hapgpu's AstroDrizzle)

@pytest.mark.slow
def test_run_svm_products_carry_hapexpname(tmp_path, caplog):
    from hapgpu.svm._pipeline import run_svm

    visit = simulate_visit(tmp_path / "in", "wfc3-ir", 2, seed=5, shape=32, cosmic_rays=False)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="hapgpu.svm._headers"):
        assert run_svm(visit.poller, out, align=False, previews=False, backend="cpu", progress=False) == 0
    assert "no HDRTAB" not in caplog.text
    roots = [r.rootname for r in visit.exposures]
    names = {root: f"hst_17001_01_wfc3_ir_f160w_{root[:8]}" for root in roots}
    products = {p.name: p for p in out.glob("*_drz.fits")}
    expected = {f"hst_17001_01_wfc3_ir_{kind}_{roots[0][:6]}_drz.fits": roots for kind in ("f160w", "total")}
    expected.update({f"{names[root]}_drz.fits": [root] for root in roots})
    assert sorted(products) == sorted(expected)
    for name, rows in expected.items():
        with fits.open(products[name]) as hdul:
            assert [h.name for h in hdul] == ["PRIMARY", "SCI", "WHT", "CTX", "HDRTAB"], name
            table = hdul["HDRTAB"]
            assert table.columns.names[-1] == "HAPEXPNAME" and table.columns["HAPEXPNAME"].format == "51A"
            assert list(table.data["ROOTNAME"]) == rows, name
            assert list(table.data["HAPEXPNAME"]) == [names[root] for root in rows], name
