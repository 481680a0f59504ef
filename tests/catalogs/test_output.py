"""Combination, trimming, cosmic-ray rejection and writing of the HAP catalogs
(hapgpu.catalogs._output): truth tables of the as-coded rules, and drizzlepac 3.11's own
``combine_tables``, ``verify_crthresh``, ``annotate_table`` and ``fill_nans_maskvalues`` called
on the same tables (drizzlepac's catalog objects are stood in for by ``SimpleNamespace``s
carrying the attributes those methods read).
"""

from __future__ import annotations

import logging
import os
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import MaskedColumn, Table

from hapgpu.backend import resolve_backend
from hapgpu.catalogs._output import (
    CR_FACTOR,
    catalog_filename,
    catalog_metadata,
    combine_total,
    count_good_sources,
    cr_rejection,
    exposure_filter_times,
    fill_missing,
    n1_exposure_time,
    subset_with_flags,
    trim_total,
    write_catalog,
    write_ecsv,
)
from hapgpu.catalogs._parameters import catalog_parameters
from hapgpu.catalogs._prepare import PreparedImage
from hapgpu.catalogs._product import read_catalog_product
from hapgpu.errors import InvalidInputError, InvalidParameterError, OutputWriteError

from .test_flags import PRODUCT, write_visit


def _total(n=6):
    t = Table()
    t["ID"] = np.arange(1, n + 1)
    t["X-Centroid"] = np.linspace(1.0, 50.0, n)
    t["Y-Centroid"] = np.linspace(2.0, 40.0, n)
    t["RA"] = np.linspace(10.0, 10.01, n)
    t["DEC"] = np.linspace(-5.0, -5.01, n)
    return t


def _subset(filter_name, ids, flags, seed=0):
    rng = np.random.default_rng(seed)
    t = Table()
    t["ID"] = np.asarray(ids)
    t[f"MagAP2_{filter_name}"] = rng.uniform(18, 25, len(ids))
    t[f"CI_{filter_name}"] = rng.uniform(0.5, 1.5, len(ids))
    t[f"Flags_{filter_name}"] = np.asarray(flags, dtype=np.int64)
    return t


# --------------------------------------------------------------------------------------------
# names, combination, trimming
# --------------------------------------------------------------------------------------------

def test_catalog_filename():
    assert catalog_filename("hst_1_01_wfc3_uvis_total_ib01_drc.fits", "point") == \
        "hst_1_01_wfc3_uvis_total_ib01_point-cat.ecsv"
    assert catalog_filename("/a/b/hst_1_01_acs_wfc_f606w_j01_drz.fits", "segment") == \
        "hst_1_01_acs_wfc_f606w_j01_segment-cat.ecsv"
    assert catalog_filename("x_drc.fits", "aperture") == "x_point-cat.ecsv"
    with pytest.raises(InvalidInputError):
        catalog_filename("x_flc.fits", "point")
    with pytest.raises(InvalidParameterError):
        catalog_filename("x_drc.fits", "blob")


def test_subset_with_flags():
    subset = _subset("f555w", [1, 2, 3], [0, 0, 0])
    flagged = Table({"ID": [1, 2, 3], "Flags": np.array([5, 16, 64])})
    out = subset_with_flags(subset, flagged, "f555w")
    assert list(out["Flags_f555w"]) == [5, 16, 64]
    assert list(subset["Flags_f555w"]) == [0, 0, 0]
    with pytest.raises(InvalidInputError):
        subset_with_flags(subset, flagged[:2], "f555w")
    with pytest.raises(InvalidInputError):
        subset_with_flags(subset, flagged, "f814w")


@pytest.mark.reference
def test_combine_total_matches_drizzlepac():
    from drizzlepac.haputils.catalog_utils import HAPPointCatalog, HAPSegmentCatalog

    subsets = [_subset("f555w", [2, 4, 5, 1], [0, 16, 1, 64], seed=1),
               _subset("f606w", [], [], seed=2),
               _subset("f814w", [6, 3, 2], [8, 0, 5], seed=3)]
    got = combine_total(_total(), subsets)

    seg = SimpleNamespace(source_cat=_total())
    pnt = SimpleNamespace(sources=_total().copy())
    pnt.sources.rename_column("X-Centroid", "X-Center")
    pnt.sources.rename_column("Y-Centroid", "Y-Center")
    logging.getLogger("drizzlepac").setLevel(logging.CRITICAL)
    for subset in subsets:
        HAPSegmentCatalog.combine_tables(seg, subset)
        HAPPointCatalog.combine_tables(pnt, subset)
    want = seg.source_cat
    assert got.colnames == want.colnames
    assert "MagAP2_f606w" not in got.colnames      # an empty subset adds nothing
    for name in got.colnames:
        np.testing.assert_array_equal(np.ma.getmaskarray(got[name]),
                                      np.ma.getmaskarray(want[name]), err_msg=name)
        np.testing.assert_array_equal(np.ma.filled(got[name], 0), np.ma.filled(want[name], 0))
    assert pnt.sources.colnames[3:] == got.colnames[3:]
    assert len(combine_total(_total()[:0], subsets)) == 0


def test_trim_total_truth_table():
    """Rows dropped only when every Flags_* value is > 5 or the (float) fill value; a masked
    integer flag fills to -9999 and so keeps the row (as coded)."""
    t = _total(7)
    t["Flags_a"] = MaskedColumn([0, 7, 9, 7, 5, 64, 3],
                                mask=[False, False, False, True, False, False, False])
    t["Flags_b"] = MaskedColumn([9, 6, 16, 8, 6, 1.0, 0.0], dtype=float,
                                mask=[False, False, False, False, False, False, True])
    t["CI_a"] = MaskedColumn(np.ones(7), mask=[True] * 7)   # not a flag column
    kept = trim_total(t, 5)
    # row 1: 7, 6 -> dropped; row 2: 9, 16 -> dropped; row 3: masked int (-9999), 8 -> kept;
    # row 4: 5 is not > 5 -> kept; row 5: 1 -> kept; row 6: 3 -> kept
    assert list(kept["ID"]) == [1, 4, 5, 6, 7]
    assert np.ma.getmaskarray(kept["Flags_a"]).tolist() == [False, True, False, False, False]
    t2 = _total(3)
    t2["Flags_f"] = MaskedColumn([9.0, 0.0, 0.0], mask=[False, False, True])
    assert list(trim_total(t2, 5)["ID"]) == [2]    # float column: the fill -9999.9 drops
    assert len(trim_total(_total(4), 5)) == 0       # no Flags_* column at all: every row
    assert list(trim_total(t, 100)["ID"]) == [1, 2, 3, 4, 5, 6, 7]


# --------------------------------------------------------------------------------------------
# cosmic-ray rejection
# --------------------------------------------------------------------------------------------

def test_n1_exposure_time_truth_table():
    assert n1_exposure_time([("f555w", 100.0), ("f814w", 50.0)], detector="UVIS",
                            cr_residual=0.05) == 150.0
    assert n1_exposure_time([("f555w", 100.0), ("f555w", 100.0), ("f814w", 50.0)],
                            detector="WFC", cr_residual=0.05) == 0.0
    assert n1_exposure_time([("f555w", 100.0)], detector="HRC", cr_residual=0.5) == 100.0
    assert n1_exposure_time([("f110w", 100.0), ("f160w", 50.0)], detector="IR",
                            cr_residual=0.05) == 0.0
    assert n1_exposure_time([("f140lp", 100.0)], detector="SBC", cr_residual=0.05) == 0.0
    assert n1_exposure_time([], detector="UVIS", cr_residual=0.05) == 0.0


def test_exposure_filter_times(tmp_path):
    names = []
    for i, keys in enumerate([{"FILTER": "F555W"}, {"FILTER1": "CLEAR1L", "FILTER2": "F606W"},
                              {"FILTER1": "F606W", "FILTER2": "POL60V"},
                              {"FILTER1": "F435W", "FILTER2": "CLEAR2L"}]):
        header = fits.Header({"EXPTIME": 10.0 * (i + 1), **keys})
        path = tmp_path / f"e{i}_flt.fits"
        fits.PrimaryHDU(header=header).writeto(path)
        names.append(path)
    assert exposure_filter_times(names) == [("f555w", 10.0), ("f606w", 20.0),
                                            ("f606w-pol60v", 30.0), ("f435w", 40.0)]
    bad = tmp_path / "bad_flt.fits"
    fits.PrimaryHDU().writeto(bad)
    with pytest.raises(InvalidInputError, match="bad_flt.fits"):
        exposure_filter_times([bad])


def _flag_tables():
    """A trimmed point and segment total catalog with masked and unmasked flags."""
    from astropy.table import join

    point = join(_total(8), _subset("f555w", [1, 2, 3, 4, 5, 6], [0, 1, 4, 8, 16, 0], seed=4),
                 keys="ID", join_type="left")
    point = join(point, _subset("f814w", [3, 4, 7, 8], [1, 64, 0, 9], seed=5),
                 keys="ID", join_type="left")
    segment = join(_total(5), _subset("f555w", [1, 2, 3, 4, 5], [4, 8, 1, 0, 64], seed=6),
                   keys="ID", join_type="left")
    return point, segment


@pytest.mark.reference
@pytest.mark.parametrize("detector", ["UVIS", "WFC", "HRC", "PC", "IR", "SBC"])
@pytest.mark.parametrize("n1", [0.0, 5.0, 30.0, 80.0, 400.0])
def test_cr_rejection_matches_drizzlepac(detector, n1):
    from drizzlepac.haputils.catalog_utils import HAPCatalogs

    logging.getLogger("drizzlepac").setLevel(logging.CRITICAL)
    point, segment = _flag_tables()
    texptime = 200.0
    ns = SimpleNamespace(
        catalogs={"aperture": SimpleNamespace(sources=point.copy()),
                  "segment": SimpleNamespace(sources=True, source_cat=segment.copy())},
        image=SimpleNamespace(keyword_dict={"detector": detector, "texpo_time": texptime}),
        crfactor=HAPCatalogs.crfactor, reject_cats={"aperture": False, "segment": False})
    want = HAPCatalogs.verify_crthresh(ns, n1)
    got = cr_rejection({"point": point, "segment": segment}, detector=detector,
                       n1_exposure_time=n1, texptime=texptime)
    assert got == {"point": want["aperture"], "segment": want["segment"]}
    assert count_good_sources(point) == ns.catalogs["aperture"].sources.sources_num_good
    assert count_good_sources(segment) == ns.catalogs["segment"].source_cat.sources_num_good
    assert cr_rejection({"point": point, "segment": segment}, detector=detector,
                        n1_exposure_time=n1, texptime=texptime, diagnostic=True) == \
        {"point": False, "segment": False}


def test_cr_rejection_truth_table():
    point, segment = _flag_tables()
    n_point, n_seg = count_good_sources(point), count_good_sources(segment)
    assert 0 < n_seg < n_point
    # threshold between the two counts: only the segment catalog fails, so both are rejected
    thresh = (n_seg + n_point) / 2
    n1 = float(np.sqrt(thresh * 200.0 / CR_FACTOR["UVIS"]["segment"]))
    out = cr_rejection({"point": point, "segment": segment}, detector="UVIS",
                       n1_exposure_time=n1, texptime=200.0)
    assert out == {"point": True, "segment": True}
    # an empty catalog is never rejected and does not reject the other
    out = cr_rejection({"point": point[:0], "segment": segment[:0]}, detector="UVIS",
                       n1_exposure_time=1e4, texptime=200.0)
    assert out == {"point": False, "segment": False}
    with pytest.raises(InvalidParameterError, match="XYZ"):
        cr_rejection({"point": point}, detector="XYZ", n1_exposure_time=1.0, texptime=1.0)


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------

@pytest.mark.reference
def test_fill_missing_matches_drizzlepac():
    from drizzlepac.haputils.catalog_utils import fill_nans_maskvalues

    t = Table()
    t["ID"] = MaskedColumn([1, 2, 3, 4], mask=[False, True, False, False])
    t["Flags"] = np.array([0, 4, 8, 16], dtype=np.int32)
    t["Mag"] = MaskedColumn([1.5, np.nan, 2.0, np.inf], mask=[True, False, False, False])
    t["F32"] = np.array([np.nan, 1.0, -np.inf, 2.0], dtype=np.float32)
    got = fill_missing(t)
    want = fill_nans_maskvalues(t.copy())
    for name in t.colnames:
        assert got[name].dtype == want[name].dtype
        np.testing.assert_array_equal(np.asarray(got[name]), np.asarray(want[name]))
    assert got["ID"][1] == -9999 and got["Mag"][0] == -9999.0 and got["Mag"][1] == -9999.0


def _retarget(path, name, *, instrument=None, detector=None, **keys):
    """A copy of a product under another name, instrument and filter keywords."""
    out = path.parent / name
    with fits.open(path) as hdul:
        primary = hdul[0].header
        primary["FILENAME"] = name
        if instrument:
            primary["INSTRUME"] = instrument
            primary["DETECTOR"] = detector
        for key, value in keys.items():
            primary[key] = value
        hdul.writeto(out)
    return out


@pytest.fixture(scope="module")
def products(tmp_path_factory):
    """{instrument_detector: (filter product, total product)}."""
    folder = tmp_path_factory.mktemp("output_visit")
    path, *_ = write_visit(folder, 2)
    out = {"wfc3_uvis": (path, _retarget(path, PRODUCT.replace("_f555w_", "_total_"),
                                         FILTER="detection"))}
    for det in ("wfc", "sbc"):
        stem = f"hst_11665_06_acs_{det}"
        filt = "f606w" if det == "wfc" else "f125lp"
        keys = ({"FILTER1": "CLEAR1L", "FILTER2": "F606W"} if det == "wfc"
                else {"FILTER1": "F125LP", "FILTER2": "N/A"})
        out[f"acs_{det}"] = (
            _retarget(path, f"{stem}_{filt}_j01_drc.fits", instrument="ACS",
                      detector=det.upper(), **keys),
            _retarget(path, f"{stem}_total_j01_drc.fits", instrument="ACS",
                      detector=det.upper(), FILTER="detection", **keys))
    return out


def _prepared(path, kind):
    product = read_catalog_product(path, kind=kind, mask=np.ones((150, 170), np.int16))
    bk = resolve_backend("cpu")
    params = catalog_parameters(product.instrument, product.detector)
    gen = params.generation
    return PreparedImage(product=product, params=params, backend=bk, blank=False,
                         data=product.data,
                         aperture_radii=(gen["aperture_1"] / product.pscale,
                                         gen["aperture_2"] / product.pscale))


def _numbers(text):
    """The numbers in a note line (radii, CI limits), in order."""
    import re

    return [float(v) for v in re.findall(r"\d+\.\d+(?:e[-+]?\d+)?|\d+", text)]


def _drizzlepac_meta(path, image, cat_type, nsigma, poor):
    """drizzlepac's annotate_table on an empty table for the same product."""
    from drizzlepac.haputils.catalog_utils import CatalogImage, HAPCatalogBase
    from stwcs.wcsutil import HSTWCS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cimg = CatalogImage(str(path), None, logging.CRITICAL)
        pscale = HSTWCS(str(path), ext=1).pscale
    gen = image.params.generation
    arcsec = [gen["aperture_1"], gen["aperture_2"]]
    ns = SimpleNamespace(image=cimg, aper_radius_arcsec=arcsec,
                         aper_radius_list_pixels=[a / pscale for a in arcsec],
                         param_dict=gen, final_nsigma=nsigma, is_big_island=poor)
    kind = "aperture" if cat_type == "point" else cat_type
    out = HAPCatalogBase.annotate_table(ns, Table(), image.params.quality_control,
                                        proc_type=kind, product=cimg.ghd_product)
    cimg.close()
    return out.meta


@pytest.mark.reference
@pytest.mark.parametrize("inst", ["wfc3_uvis", "acs_wfc", "acs_sbc"])
@pytest.mark.parametrize("which", ["filter", "total"])
@pytest.mark.parametrize("cat_type, poor", [("point", False), ("segment", False),
                                            ("segment", True)])
def test_written_metadata_matches_annotate_table(products, tmp_path, inst, which, cat_type,
                                                 poor):
    filt, total = products[inst]
    path = filt if which == "filter" else total
    image = _prepared(path, which)
    # point catalogs: the parameter nsigma; segment catalogs: the segmentation's final nsigma
    nsigma = image.params.generation["nsigma"] if cat_type == "point" else 2.5
    table = Table({"ID": np.arange(1, 4), "X-Center": [1.0, np.nan, 3.0],
                   "Flags": MaskedColumn([0, 1, 4], mask=[False, True, False])})
    out = write_catalog(table, tmp_path / catalog_filename(path.name, cat_type), image=image,
                        cat_type=cat_type, nsigma=nsigma, poor_quality=poor)
    written = Table.read(out, format="ascii.ecsv")
    want = _drizzlepac_meta(path, image, cat_type, nsigma, poor)
    # drizzlepac's segment tables keep photutils' SourceCatalog meta ahead of annotate_table's
    provenance = (["date", "version", "localbkg_width", "apermask_method", "kron_params"]
                  if cat_type == "segment" else [])
    assert list(written.meta) == provenance + list(want)
    if cat_type == "segment":
        assert written.meta["kron_params"] == ((2.5, 3.5, 2.5, 3.5) if which == "total"
                                               else (2.5, 3.5))
    assert ("h19" in written.meta) == (poor and cat_type == "segment")
    assert ("CCD Gain" in written.meta) == (inst != "acs_sbc")
    plain = [k for k in want if not k.startswith("h")]
    for key in plain:
        if key == "Number of sources":
            assert written.meta[key] == 3
        elif isinstance(want[key], float):
            assert written.meta[key] == pytest.approx(want[key], rel=1e-12, abs=1e-15), key
        else:
            assert written.meta[key] == want[key], key
    assert want["h12.1"][0].count(str(want["WCSTYPE"])) == 1
    assert str(want["WCSTYPE"]) in written.meta["h12.1"][0]
    for key in ("h14.1", "h15.1", "h17.1", "h17.2", "h17.6"):
        assert _numbers(written.meta[key][0]) == pytest.approx(_numbers(want[key][0]),
                                                                rel=1e-12), key
    assert written["X-Center"][1] == -9999.0 and written["Flags"][1] == -9999


def test_write_catalog_rejected_and_errors(products, tmp_path):
    filt, _ = products["wfc3_uvis"]
    image = _prepared(filt, "filter")
    table = Table({"ID": np.arange(1, 6), "X-Center": np.arange(5.0), "Y-Center": np.arange(5.0)})
    out = write_catalog(table, tmp_path / "sub" / "a_point-cat.ecsv", image=image,
                        cat_type="point", nsigma=5.0, rejected=True, diagnostic=True)
    written = Table.read(out, format="ascii.ecsv")
    assert len(written) == 0 and written.colnames == table.colnames
    assert written.meta["Number of sources"] == 5          # counted before the rows go
    assert written.meta["Threshold (sigma)"] == 5.0
    assert sorted(os.listdir(tmp_path / "sub")) == ["a_point-cat.ecsv", "a_point-cat.reg"]
    empty = write_catalog(table[:0], tmp_path / "e_segment-cat.ecsv", image=image,
                          cat_type="segment", nsigma=3.0)
    assert len(Table.read(empty, format="ascii.ecsv")) == 0
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputWriteError, match="file"):
        write_catalog(table, tmp_path / "file" / "b_point-cat.ecsv", image=image,
                      cat_type="point", nsigma=5.0)


def test_metadata_ci_limits_and_filters(products):
    filt, _ = products["wfc3_uvis"]
    image = _prepared(filt, "filter")
    meta = catalog_metadata(image, "point", nsigma=5.0, n_sources=2, ci_limits=(0.7, 1.2))
    assert "0.7 < CI < 1.2" in meta["h17.1"][0] and "CI < 0.7" in meta["h17.6"][0]
    assert meta["Filter 1"] == "F555W" and meta["Filter 2"] == ""
    assert meta["CCD Gain"] == 1.5 and list(meta)[:9] == [f"h{i:02d}" for i in range(9)]
    default = catalog_metadata(image, "segment", nsigma=5.0, n_sources=2)
    block = image.params.quality_control["ci filter"]["segment"]
    assert f"({block['ci_lower_limit']} < CI < {block['ci_upper_limit']})" in default["h17.1"][0]


def _astropy_ecsv(table, path):
    table.write(path, format="ascii.ecsv", overwrite=True)
    return path.read_bytes()


def test_write_ecsv_writes_astropy_bytes(tmp_path):
    """The column-at-a-time writer gives astropy's ECSV file byte for byte: catalog-like
    columns and metadata, the values whose text is delicate (exponents, -0.0, extremes)."""
    rng = np.random.default_rng(3)
    n = 500
    special = [0.0, -0.0, 1e-5, 9.999e-5, 1e-4, 1e15, 1e16, 123456789012345678.0, -9999.0,
               np.finfo(np.float64).max, np.finfo(np.float64).tiny, 5e-324, 0.1, 1 / 3, np.nan,
               np.inf, -np.inf, 2.5]
    x = rng.normal(size=n) * 10.0 ** rng.integers(-8, 18, n)
    x[:len(special)] = special
    table = Table()
    table["ID"] = np.arange(1, n + 1, dtype=np.int64)
    table["X-Center"] = x
    table["Flags"] = rng.integers(-9999, 300, n).astype(np.int32)
    table["MagAp1"] = rng.normal(25, 2, n).astype(np.float32)
    table["Ok"] = rng.random(n) > 0.5
    table["big"] = np.array([2**62, -2**63] + [7] * (n - 2), dtype=np.int64)
    table["u"] = np.arange(n, dtype=np.uint16)
    table["X-Center"].format = "10.3f"
    table["X-Center"].unit = "pixel"
    table["X-Center"].description = "Pixel Coordinate"
    table.meta["h00"] = [" #=== a comment line"]
    table.meta["Number of sources"] = n
    table.meta["version"] = {"numpy": np.__version__}
    write_ecsv(table, tmp_path / "fast.ecsv")
    assert (tmp_path / "fast.ecsv").read_bytes() == _astropy_ecsv(table, tmp_path / "ref.ecsv")


def test_write_ecsv_leaves_other_tables_to_astropy(tmp_path):
    masked = Table({"a": MaskedColumn([1.5, 2.0], mask=[False, True]), "s": ["x y", "z"]})
    empty = Table({"a": np.zeros(0)})
    for name, table in (("masked", masked), ("empty", empty)):
        write_ecsv(table, tmp_path / f"{name}.ecsv")
        assert (tmp_path / f"{name}.ecsv").read_bytes() == _astropy_ecsv(
            table, tmp_path / f"{name}-ref.ecsv")
