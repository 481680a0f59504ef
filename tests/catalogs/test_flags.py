"""Flags of the HAP filter catalogs (hapgpu.catalogs._flags) against drizzlepac 3.11's
``hla_flag_filter`` functions called on the same inputs.

The inputs are small real FITS files written in ``tmp_path``: exposures made from the real
WFC3/UVIS FLC headers of ``tests/data/sample_svm_flc.fits.gz`` (SIP, NPOL and D2IM distortion)
with saturated DQ blobs, a drizzled filter product on a rotated north-up-ish frame over chip 1,
and single-exposure products with different coverage. drizzlepac reads them by file name
(its functions parse the SVM name and glob the single-exposure products), so those tests run
in ``tmp_path``.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import MaskedColumn, Table
from astropy.wcs import WCS

from hapgpu.backend import resolve_backend
from hapgpu.catalogs._flags import (
    ci_flags,
    component_products,
    exposure_count_image,
    exposure_count_limit,
    flag_inputs,
    flag_sources,
    inside_footprint_mask,
    low_exposure_flags,
    saturated_pixel_positions,
    saturation_radius,
    sources_near_points,
)
from hapgpu.catalogs._parameters import catalog_parameters, ci_limits
from hapgpu.catalogs._prepare import PreparedImage
from hapgpu.catalogs._product import read_catalog_product
from hapgpu.errors import InvalidInputError, InvalidParameterError

from ..conftest import data_file

BASE = "hst_11665_06_wfc3_uvis_f555w"
PRODUCT = f"{BASE}_ib4606_drc.fits"
SHAPE = (150, 170)          # product (ny, nx)
CHIP = (120, 120)           # exposure chip (ny, nx)
PSCALE = 0.04               # arcsec / pixel of the product frame


# --------------------------------------------------------------------------------------------
# builders of the FITS inputs
# --------------------------------------------------------------------------------------------

def _saturated_dq(seed: int) -> np.ndarray:
    """DQ with a few saturated blobs (bit 256) and other bits set elsewhere."""
    rng = np.random.default_rng(seed)
    dq = np.zeros(CHIP, dtype=np.int16)
    dq[rng.integers(0, CHIP[0], 40), rng.integers(0, CHIP[1], 40)] |= 4  # not saturation
    for _ in range(4):
        y, x = rng.integers(5, CHIP[0] - 8), rng.integers(5, CHIP[1] - 8)
        h, w = rng.integers(1, 5, 2)
        dq[y:y + h, x:x + w] |= 256
    dq[rng.integers(0, CHIP[0], 6), rng.integers(0, CHIP[1], 6)] |= 256 | 16
    return dq


def write_exposures(folder: Path, n: int, *, seed: int = 3) -> list[Path]:
    """``n`` dithered copies of the real UVIS FLC (both chips, CHIP-sized arrays)."""
    out = []
    with fits.open(data_file("sample_svm_flc.fits.gz")) as src:
        keep = [h.copy() for h in src if h.name in ("PRIMARY", "SCI", "ERR", "DQ", "WCSDVARR",
                                                      "D2IMARR")]
    for i in range(n):
        rootname = f"ib4606{chr(ord('a') + i)}{i}q"
        hdul = fits.HDUList([h.copy() for h in keep])
        hdul[0].header["ROOTNAME"] = rootname
        for ver in (1, 2):
            hdul["SCI", ver].data = np.zeros(CHIP, dtype=np.float32)
            hdul["ERR", ver].data = np.ones(CHIP, dtype=np.float32)
            hdul["DQ", ver].data = _saturated_dq(seed + 10 * i + ver)
            hdul["SCI", ver].header["CRVAL1"] += 0.3 * i / 3600.0
            hdul["SCI", ver].header["CRVAL2"] -= 0.2 * i / 3600.0
        path = folder / f"{BASE}_{rootname[:8]}_flc.fits"
        hdul.writeto(path)
        out.append(path)
    return out


def product_wcs(exposure: Path) -> WCS:
    """A TAN frame of PSCALE rotated 25 deg, centred on chip 1 of ``exposure``."""
    from stwcs.wcsutil import HSTWCS

    with warnings.catch_warnings(), fits.open(exposure) as hdul:
        warnings.simplefilter("ignore")
        chip = HSTWCS(hdul, ext=("SCI", 1))
    ra, dec = chip.all_pix2world([[CHIP[1] / 2, CHIP[0] / 2]], 0)[0]
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [SHAPE[1] / 2 + 0.5, SHAPE[0] / 2 + 0.5]
    t = np.deg2rad(25.0)
    s = PSCALE / 3600.0
    wcs.wcs.cd = [[-s * np.cos(t), s * np.sin(t)], [s * np.sin(t), s * np.cos(t)]]
    return wcs


def wcs_header(wcs: WCS) -> fits.Header:
    """The frame's header with a CD matrix, as AstroDrizzle writes drizzled products."""
    header = wcs.to_header()
    for key in ("PC1_1", "PC1_2", "PC2_1", "PC2_2", "CDELT1", "CDELT2"):
        header.remove(key, ignore_missing=True)
    for i in range(2):
        for j in range(2):
            header[f"CD{i + 1}_{j + 1}"] = wcs.wcs.cd[i, j]
    return header


def _product_hdul(wcs: WCS, data: np.ndarray, exposures, *, filename: str) -> fits.HDUList:
    with fits.open(exposures[0]) as src:
        primary = src[0].header.copy()
        aperture = src["SCI", 1].header
        ra_aper, dec_aper = aperture["RA_APER"], aperture["DEC_APER"]
    primary["FILENAME"] = filename
    primary["ROOTNAME"] = filename.rsplit("_", 1)[0]
    primary["NDRIZIM"] = len(exposures)
    primary["NUMEXP"] = len(exposures)
    primary["TEXPTIME"] = 170.0 * len(exposures)
    primary["EXPTIME"] = 170.0 * len(exposures)
    for i, path in enumerate(exposures):
        primary[f"D{i + 1:03d}DATA"] = f"{Path(path).name}[sci,1]"
    sci = fits.ImageHDU(data.astype(np.float32), header=wcs_header(wcs), name="SCI")
    sci.header["WCSNAME"] = "IDC_2731450pi-FIT_SVM_GAIAeDR3"
    sci.header["WCSTYPE"] = "undistorted a posteriori solution relatively aligned to GAIAeDR3"
    sci.header["RA_APER"] = ra_aper
    sci.header["DEC_APER"] = dec_aper
    sci.header["ORIENTAT"] = 25.0
    sci.header["PHOTFLAM"] = 1.8379346e-19
    sci.header["PHOTPLAM"] = 5307.9121
    wht = fits.ImageHDU(np.where(np.isfinite(data) & (data != 0), 170.0, 0.0).astype(np.float32),
                        header=wcs_header(wcs), name="WHT")
    return fits.HDUList([fits.PrimaryHDU(header=primary), sci, wht])


def coverage(seed: int) -> np.ndarray:
    """Product-shaped data: finite non-zero inside a rotated-ish footprint, 0 and NaN outside."""
    rng = np.random.default_rng(seed)
    ny, nx = SHAPE
    yy, xx = np.mgrid[:ny, :nx]
    inside = (xx + 0.4 * yy > 20) & (xx - 0.3 * yy < 150) & (yy > 8) & (yy < ny - 12)
    data = np.where(inside, rng.uniform(0.5, 2.0, SHAPE), 0.0)
    data[:4, :] = np.nan
    return data


def write_visit(folder: Path, n_exposures: int = 4, *, n_singles: int | None = None,
                seed: int = 5):
    """Exposures, the filter product and its single-exposure products in ``folder``."""
    exposures = write_exposures(folder, n_exposures, seed=seed)
    wcs = product_wcs(exposures[0])
    data = coverage(seed)
    path = folder / PRODUCT
    _product_hdul(wcs, data, exposures, filename=PRODUCT).writeto(path)
    rng = np.random.default_rng(seed + 1)
    singles = []
    n_singles = n_exposures if n_singles is None else n_singles
    for i in range(n_singles):
        single = data.copy()
        y0, x0 = rng.integers(0, 40, 2)
        single[:y0, :] = 0.0
        single[:, SHAPE[1] - x0:] = np.nan
        name = f"{BASE}_ib4606{chr(ord('a') + i)}{i}_drc.fits"
        _product_hdul(wcs, single, exposures[i % n_exposures:][:1], filename=name).writeto(
            folder / name)
        singles.append(folder / name)
    return path, exposures, singles, wcs


def source_table(n: int, *, seed: int, kind: str = "aperture", extra_xy=None) -> Table:
    """A filter catalog with every flag regime: CI 0/masked/NaN, MagErr 0/masked/NaN, faint."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0, SHAPE[1] + 1.0, n)
    y = rng.uniform(-2.0, SHAPE[0] + 1.0, n)
    if extra_xy is not None:
        x = np.r_[x, extra_xy[:, 0]]
        y = np.r_[y, extra_xy[:, 1]]
    m = x.size
    ci = rng.uniform(0.3, 1.6, m)
    ci[rng.random(m) < 0.05] = 0.0
    ci[rng.random(m) < 0.05] = np.nan
    e1 = rng.uniform(0.0, 0.3, m)
    e2 = rng.uniform(0.0, 0.3, m)
    e1[rng.random(m) < 0.05] = 0.0
    e2[rng.random(m) < 0.05] = np.nan
    flux = rng.uniform(-1.0, 50.0, m)
    ferr = rng.uniform(0.5, 5.0, m)
    flux[rng.random(m) < 0.05] = np.nan
    xname, yname = ("X-Center", "Y-Center") if kind == "aperture" else ("X-Centroid", "Y-Centroid")
    table = Table()
    table[xname] = x
    table[yname] = y
    table["ID"] = np.arange(1, m + 1)
    table["CI"] = MaskedColumn(ci, mask=rng.random(m) < 0.05)
    table["MagErrAp1"] = MaskedColumn(e1, mask=rng.random(m) < 0.05)
    table["MagErrAp2"] = e2
    table["FluxAp2"] = MaskedColumn(flux, mask=rng.random(m) < 0.03)
    table["FluxErrAp2"] = ferr
    table["Flags"] = np.zeros(m, dtype=np.int64)
    return table


def _quiet_drizzlepac():
    for name in ("drizzlepac", "stwcs"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _dp_param_dict(params, kind, filename):
    """drizzlepac's ``as_single_giant_dict`` for the flags, CI limits looked up as
    config_utils does."""
    import copy

    qc = copy.deepcopy(params.quality_control)
    for k in ("aperture", "segment"):
        lower, upper = ci_limits(params, k, filename)
        qc["ci filter"][k]["ci_lower_limit"] = lower
        qc["ci filter"][k]["ci_upper_limit"] = upper
    return {"catalog generation": params.generation, "quality control": qc}


@pytest.fixture(scope="module")
def visit(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flags_visit")
    path, exposures, singles, wcs = write_visit(folder)
    return folder, path, exposures, singles, wcs


def _image(path, exposures, singles, backend="cpu"):
    product = read_catalog_product(path, kind="filter", exposures=exposures,
                                   single_products=singles)
    params = catalog_parameters("wfc3", "uvis")
    bk = resolve_backend(backend)
    return PreparedImage(product=product, params=params, backend=bk, blank=False,
                         data=bk.asarray(product.data))


# --------------------------------------------------------------------------------------------
# unit tests (no reference)
# --------------------------------------------------------------------------------------------

def test_saturation_radius_rounds_half_to_even():
    assert saturation_radius(0.15, 0.04) == 8.0          # round(4.25) = 4
    assert saturation_radius(0.1, 0.1) == 4.0            # round(1.5) = 2
    assert saturation_radius(0.2, 0.1) == 4.0            # round(2.5) = 2 (half to even)
    assert saturation_radius(0.25, 0.1) == 6.0           # round(3.0) = 3


def test_exposure_count_limit():
    assert exposure_count_limit(1, "UVIS") == 0.5
    assert exposure_count_limit(4, "IR") == 0.5
    assert exposure_count_limit(4, "SBC") == 0.5
    assert exposure_count_limit(2, "WFC") == 1.5
    assert exposure_count_limit(5, "UVIS") == 1.5
    assert exposure_count_limit(6, "UVIS") == 2.5


def test_sources_near_points_brute_force():
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, 200, (3000, 2))
    pts = np.r_[pts, [[np.nan, 3.0], [1e9, -1e9]]]
    x = rng.uniform(-10, 210, 2500)
    y = rng.uniform(-10, 210, 2500)
    x[:5] = np.nan
    # exact boundary: a point at distance exactly r
    pts = np.r_[pts, [[500.0, 500.0]]]
    x = np.r_[x, 508.0]
    y = np.r_[y, 500.0]
    r = 8.0
    got = sources_near_points(x, y, pts, r, backend="cpu")
    with np.errstate(invalid="ignore"):
        d2 = (x[:, None] - pts[None, :, 0]) ** 2 + (y[:, None] - pts[None, :, 1]) ** 2
    want = (d2 <= r * r).any(axis=1)
    assert got.dtype == bool and got.sum() > 100 and got[-1]
    np.testing.assert_array_equal(got, want)


def test_sources_near_points_chunked(monkeypatch):
    from hapgpu.catalogs import _flags

    rng = np.random.default_rng(2)
    pts = rng.uniform(0, 50, (4000, 2))
    x, y = rng.uniform(0, 50, (2, 300))
    want = sources_near_points(x, y, pts, 3.0, backend="cpu")
    monkeypatch.setattr(_flags, "_MAX_PAIRS", 64)
    np.testing.assert_array_equal(sources_near_points(x, y, pts, 3.0, backend="cpu"), want)


def test_sources_near_points_empty_and_bad_radius():
    assert sources_near_points([], [], np.zeros((3, 2)), 2.0, backend="cpu").shape == (0,)
    assert not sources_near_points([1.0], [1.0], np.zeros((0, 2)), 2.0, backend="cpu").any()
    with pytest.raises(InvalidParameterError):
        sources_near_points([1.0], [1.0], np.zeros((1, 2)), 0.0, backend="cpu")


def test_low_exposure_flags_brute_force():
    rng = np.random.default_rng(4)
    nexp = rng.integers(0, 5, (60, 70)).astype(np.int32)
    nexp[10:50, 10:60] = 4
    x = np.r_[rng.uniform(-3, 72, 400), np.nan]
    y = np.r_[rng.uniform(-3, 62, 400), 5.0]
    radius = 3.75
    got = low_exposure_flags(x, y, nexp, radius, 1.5, backend="cpu")
    want = []
    for xi, yi in zip(x[:-1], y[:-1]):
        ix, iy = int(xi + 0.5), int(yi + 0.5)
        vals = [nexp[min(max(iy + dy, 0), 59), min(max(ix + dx, 0), 69)]
                for dy in range(-4, 5) for dx in range(-4, 5) if dx * dx + dy * dy <= radius ** 2]
        want.append(min(vals) < 1.5)
    np.testing.assert_array_equal(got[:-1], want)
    assert got[-1]  # a non-finite position is flagged


def test_flag_sources_errors(visit):
    _, path, exposures, singles, _ = visit
    image = _image(path, exposures, singles)
    table = source_table(5, seed=1)
    with pytest.raises(InvalidParameterError):
        flag_sources(table, "blob", image)
    with pytest.raises(InvalidInputError, match="CI"):
        flag_sources(table[[c for c in table.colnames if c != "CI"]], "point", image)
    with pytest.raises(InvalidInputError, match="X-Centroid"):
        flag_sources(table, "segment", image)
    empty = flag_sources(table[:0], "point", image)
    assert len(empty) == 0


def test_exposure_count_rejects_small_single(tmp_path):
    small = tmp_path / "small_drc.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.ones((10, 10), np.float32))]).writeto(small)
    with pytest.raises(InvalidInputError, match="small_drc.fits"):
        exposure_count_image(np.ones((20, 20), np.float32), [small], backend="cpu")


# --------------------------------------------------------------------------------------------
# oracle tests: drizzlepac's hla_flag_filter on the same inputs
# --------------------------------------------------------------------------------------------

@pytest.mark.reference
@pytest.mark.parametrize("kind", ["aperture", "segment"])
def test_ci_flags_match_drizzlepac(kind):
    from drizzlepac.haputils import hla_flag_filter

    _quiet_drizzlepac()
    table = source_table(400, seed=11, kind=kind)
    params = catalog_parameters("wfc3", "uvis")
    pdict = _dp_param_dict(params, kind, PRODUCT)
    xname = "X-Center" if kind == "aperture" else "X-Centroid"
    titles = {"x_coltitle": xname, "y_coltitle": xname.replace("X", "Y")}
    want = hla_flag_filter.ci_filter(PRODUCT, "cat.ecsv", table.copy(), kind, pdict, titles,
                                     logging.WARNING, False)["Flags"]
    lower, upper = ci_limits(params, kind, PRODUCT)
    ci = np.ma.getdata(table["CI"]).astype(float)
    nan_if_masked = {c: np.where(np.ma.getmaskarray(table[c]), np.nan, np.ma.getdata(table[c]))
                     for c in ("MagErrAp1", "MagErrAp2", "FluxAp2", "FluxErrAp2")}
    got = ci_flags(ci, np.ma.getmaskarray(table["CI"]), nan_if_masked["MagErrAp1"],
                   nan_if_masked["MagErrAp2"], nan_if_masked["FluxAp2"],
                   nan_if_masked["FluxErrAp2"], ci_lower=lower, ci_upper=upper,
                   bthresh=pdict["quality control"]["ci filter"][kind]["bthresh"],
                   backend="cpu")
    np.testing.assert_array_equal(got, np.asarray(want))
    assert {1, 8, 16} <= {b for b in (1, 8, 16) if (np.asarray(want) & b).any()}


@pytest.mark.reference
def test_saturated_positions_match_drizzlepac(visit, monkeypatch):
    from drizzlepac.haputils import hla_flag_filter

    folder, path, exposures, _, _ = visit
    monkeypatch.chdir(folder)
    got = saturated_pixel_positions(exposures, read_catalog_product(path).wcs,
                                    instrument="WFC3", detector="UVIS")
    want = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for exp in sorted(exposures):
            for ver in (1, 2):
                dq = fits.getdata(exp, "DQ", ver)
                rows, cols = np.nonzero((dq & 256) == 256)
                xy = np.column_stack([cols, rows])
                rd = hla_flag_filter.xytord(xy, exp.name, f"[sci,{ver}]")
                want.append(hla_flag_filter.rdtoxy(rd, PRODUCT, "[sci,1]"))
    want = np.concatenate(want)
    assert got.shape == want.shape and got.shape[0] > 50
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-7)
    inside = (got[:, 0] > 0) & (got[:, 0] < SHAPE[1]) & (got[:, 1] > 0) & (got[:, 1] < SHAPE[0])
    assert inside.sum() > 20  # chip 1's blobs land on the product


@pytest.mark.reference
def test_inside_footprint_mask_matches_drizzlepac(visit):
    from drizzlepac.haputils import hla_flag_filter

    _, path, *_ = visit
    want = hla_flag_filter.make_mask_array(str(path))
    got = inside_footprint_mask(fits.getdata(path, "SCI"), backend="cpu")
    assert 0 < got.sum() < got.size
    np.testing.assert_array_equal(got, (want == 0).astype(np.int32))


@pytest.mark.reference
@pytest.mark.parametrize("kind", ["aperture", "segment"])
def test_flag_sources_match_drizzlepac(visit, monkeypatch, kind):
    """Every bit at once: run_source_list_flagging vs flag_sources on the same catalog."""
    from drizzlepac.haputils import hla_flag_filter
    from stwcs.wcsutil import HSTWCS

    _quiet_drizzlepac()
    folder, path, exposures, singles, _ = visit
    monkeypatch.chdir(folder)
    image = _image(path, exposures, singles)
    inputs = flag_inputs(image)
    near_sat = inputs.saturated_xy[:40] + np.random.default_rng(9).uniform(-9, 9, (40, 2))
    table = source_table(500, seed=21, kind=kind, extra_xy=near_sat)
    params = image.params
    pdict = _dp_param_dict(params, kind, PRODUCT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pscale = HSTWCS(PRODUCT, ext=("sci", 1)).pscale
        mask = hla_flag_filter.make_mask_array(PRODUCT)
        want = hla_flag_filter.run_source_list_flagging(
            PRODUCT, [p.name for p in exposures], pdict, 680.0, pscale, 0.0,
            "cat.ecsv", table.copy(), kind, str(folder), mask, logging.WARNING, False)["Flags"]
    got = flag_sources(table, kind, image, inputs=inputs)["Flags"]
    want = np.asarray(want)
    for bit in (1, 4, 8, 16, 64):
        assert (want & bit).any(), f"bit {bit} not exercised"
        np.testing.assert_array_equal(np.asarray(got) & bit, want & bit, err_msg=f"bit {bit}")
    np.testing.assert_array_equal(got, want)
    assert not (want & (2 | 32 | 128)).any()


@pytest.mark.reference
@pytest.mark.parametrize("n_exposures, n_singles", [(1, 1), (6, 6), (2, 3)])
def test_exposure_count_flag_matches_drizzlepac(tmp_path, monkeypatch, n_exposures, n_singles):
    """Bit 64 for the three limits (1 exposure: 0.5, 6: 2.5) and the ROOTNAME selection of the
    single-exposure products when there are more of them than exposures."""
    from drizzlepac.haputils import hla_flag_filter

    _quiet_drizzlepac()
    path, exposures, singles, _ = write_visit(tmp_path, n_exposures, n_singles=n_singles, seed=8)
    if n_singles > n_exposures:
        with fits.open(singles[-1], mode="update") as hdul:
            hdul[0].header["ROOTNAME"] = "ib4606zzq"   # not an input: dropped
    monkeypatch.chdir(tmp_path)
    image = _image(path, exposures, singles)
    used = component_products(singles, exposures)
    assert len(used) == min(n_singles, max(n_exposures, 1))
    table = source_table(300, seed=3)
    params = image.params
    pdict = _dp_param_dict(params, "aperture", PRODUCT)
    titles = {"x_coltitle": "X-Center", "y_coltitle": "Y-Center"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mask = hla_flag_filter.make_mask_array(PRODUCT)
        want = hla_flag_filter.hla_nexp_flags(
            PRODUCT, [p.name for p in exposures], pdict, image.product.pscale, "cat.ecsv",
            table.copy(), str(tmp_path), mask, titles, False)["Flags"]
    nexp = exposure_count_image(image.product.data, used, backend="cpu")
    limit = exposure_count_limit(nexp.max(), "UVIS")
    got = low_exposure_flags(table["X-Center"], table["Y-Center"], nexp,
                             params.generation["aperture_2"] / image.product.pscale, limit,
                             backend="cpu")
    assert 0 < np.count_nonzero(want) < len(table)
    np.testing.assert_array_equal(got * 64, np.asarray(want))


# --------------------------------------------------------------------------------------------
# backend parity (the flags are integer/boolean results: identical on every backend)
# --------------------------------------------------------------------------------------------

@pytest.mark.gpu
def test_flags_gpu_equal_cpu(visit, monkeypatch):
    folder, path, exposures, singles, _ = visit
    monkeypatch.chdir(folder)
    gpu = resolve_backend("gpu")
    rng = np.random.default_rng(31)
    pts = rng.uniform(0, 100, (5000, 2))
    x, y = rng.uniform(-5, 105, (2, 3000))
    np.testing.assert_array_equal(
        gpu.to_host(sources_near_points(x, y, pts, 4.0, backend=gpu)),
        sources_near_points(x, y, pts, 4.0, backend="cpu"))
    data = fits.getdata(path, "SCI")
    np.testing.assert_array_equal(gpu.to_host(inside_footprint_mask(data, backend=gpu)),
                                  inside_footprint_mask(data, backend="cpu"))
    for kind in ("aperture", "segment"):
        table = source_table(300, seed=41, kind=kind)
        cpu_flags = flag_sources(table, kind, _image(path, exposures, singles, "cpu"))["Flags"]
        gpu_flags = flag_sources(table, kind, _image(path, exposures, singles, "gpu"))["Flags"]
        np.testing.assert_array_equal(np.asarray(gpu_flags), np.asarray(cpu_flags))


def test_flags_cudasim_equal_cpu(visit, monkeypatch):
    """The cudasim backend (NumPy arrays, the GPU code path's array calls) gives the same flags."""
    folder, path, exposures, singles, _ = visit
    monkeypatch.chdir(folder)
    table = source_table(200, seed=43, kind="segment")
    cpu_flags = flag_sources(table, "segment", _image(path, exposures, singles, "cpu"))["Flags"]
    sim_flags = flag_sources(table, "segment", _image(path, exposures, singles, "cudasim"))["Flags"]
    np.testing.assert_array_equal(np.asarray(sim_flags), np.asarray(cpu_flags))
    assert np.count_nonzero(cpu_flags)
