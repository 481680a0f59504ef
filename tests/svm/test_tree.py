"""The SVM product tree, names and renamed input copies (hap-pipeline.md §1.5, §1.6)."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from hapgpu.errors import InvalidInputError
from hapgpu.svm._poller import PollerRow
from hapgpu.svm._tree import (
    ExposureProduct,
    FilterProduct,
    GrismExposureProduct,
    TotalProduct,
    build_product_tree,
    footprint_sregion,
    make_renamed_copy,
    manifest_filename,
    obs_dict,
    ramp_and_quad_manifest_names,
)

from ..conftest import data_file


def _row(name, filters, detector="UVIS", *, proposal_id=11665, obset_id="06", exptime=100.0,
         aperture="empty_aperture"):
    return PollerRow(filename=name, proposal_id=proposal_id, program_id=name[1:4].upper(),
                     obset_id=obset_id, exptime=exptime, filters=filters, detector=detector,
                     pathname=f"/data/{name}", source=Path(f"/data/{name}"), aperture=aperture)


def test_two_detectors_names_and_flags():
    rows = [_row("ib4606c5q_flc.fits", "F555W"), _row("ib4606c6q_flc.fits", "F555W"),
            _row("ib4606c7q_flc.fits", "F814W"),
            _row("ib4606cpq_flt.fits", "F110W", "IR"), _row("ib4606cqq_flt.fits", "F110W", "IR")]
    uvis, ir = build_product_tree(rows)
    assert isinstance(uvis, TotalProduct) and uvis.detector == "uvis" and ir.detector == "ir"
    assert uvis.drizzle_filename == "hst_11665_06_wfc3_uvis_total_ib4606_drc.fits"
    assert uvis.trl_filename == "hst_11665_06_wfc3_uvis_total_ib4606_trl.txt"
    assert uvis.trl_logname == "hst_11665_06_wfc3_uvis_total_ib4606_trl.log"
    assert uvis.point_cat_filename == "hst_11665_06_wfc3_uvis_total_ib4606_point-cat.ecsv"
    assert uvis.segment_cat_filename == "hst_11665_06_wfc3_uvis_total_ib4606_segment-cat.ecsv"
    assert uvis.ref_drizzle_filename == "hst_11665_06_wfc3_uvis_total_ib4606_ref_drc.fits"
    assert uvis.manifest_name == ir.manifest_name == "wfc3_b46_06_manifest.txt"
    assert uvis.info == "11665_06_wfc3_uvis_empty_aperture_ib4606c5q_drc"
    assert uvis.haplevel == 2 and uvis.prop_id == "11665"
    assert ir.drizzle_filename == "hst_11665_06_wfc3_ir_total_ib4606_drz.fits"

    f555w, f814w = uvis.fdp_list
    assert isinstance(f555w, FilterProduct)
    assert f555w.drizzle_filename == "hst_11665_06_wfc3_uvis_f555w_ib4606_drc.fits"
    assert f555w.point_cat_filename == "hst_11665_06_wfc3_uvis_f555w_ib4606_point-cat.ecsv"
    assert f555w.segment_cat_filename == "hst_11665_06_wfc3_uvis_f555w_ib4606_segment-cat.ecsv"
    assert f555w.refname == "hst_11665_06_wfc3_uvis_f555w_ib4606_ref_cat.ecsv"
    assert f555w.trl_filename == "hst_11665_06_wfc3_uvis_f555w_ib4606_trl.txt"
    assert f814w.drizzle_filename == "hst_11665_06_wfc3_uvis_f814w_ib4606_drc.fits"
    assert f814w.info == "11665_06_wfc3_uvis_empty_aperture_ib4606c7q_f814w_drc"

    c5, c6, c7 = uvis.edp_list
    assert isinstance(c5, ExposureProduct) and c5.haplevel == 1
    assert c5.full_filename == "hst_11665_06_wfc3_uvis_f555w_ib4606c5_flc.fits"
    assert c5.drizzle_filename == "hst_11665_06_wfc3_uvis_f555w_ib4606c5_drc.fits"
    assert c5.headerlet_filename == "hst_11665_06_wfc3_uvis_f555w_ib4606c5_hlet.fits"
    assert c5.trl_filename == "hst_11665_06_wfc3_uvis_f555w_ib4606c5_trl.txt"
    assert c5.trl_logname == "hst_11665_06_wfc3_uvis_f555w_ib4606c5_trl.log"
    assert c5.info == "11665_06_wfc3_uvis_empty_aperture_ib4606c5q_flc.fits_f555w_drc"
    # crclean on the first member of each CCD filter product; is_singleton on lone members
    assert [(e.crclean, e.is_singleton) for e in uvis.edp_list] == \
        [(True, False), (False, False), (True, True)]
    assert f555w.edp_list == [c5, c6] and f814w.edp_list == [c7]
    assert [(e.crclean, e.is_singleton) for e in ir.edp_list] == [(False, False), (False, False)]
    assert ir.edp_list[0].full_filename == "hst_11665_06_wfc3_ir_f110w_ib4606cp_flt.fits"


def test_obs_dict_matches_verified_example():
    rows = [_row("ib4606c5q_flc.fits", "F555W"), _row("ib4606c6q_flc.fits", "F555W"),
            _row("ib4606cpq_flt.fits", "F110W", "IR")]
    d = obs_dict(build_product_tree(rows))
    assert list(d) == ["total detection product 00", "filter product 00",
                       "single exposure product 00", "single exposure product 01",
                       "total detection product 01", "filter product 01",
                       "single exposure product 02"]
    info = "11665 06 wfc3 uvis empty_aperture ib4606c5q f555w drc"
    assert d["total detection product 00"] == {
        "info": info, "files": ["ib4606c5q_flc.fits", "ib4606c6q_flc.fits"]}
    assert d["filter product 00"] == d["total detection product 00"]
    assert d["single exposure product 00"] == {"info": info, "files": ["ib4606c5q_flc.fits"]}
    assert d["single exposure product 01"]["info"] == info.replace("c5q", "c6q")
    assert d["total detection product 01"]["info"] == \
        "11665 06 wfc3 ir empty_aperture ib4606cpq f110w drz"


def test_flt_flc_choice_per_filter_group():
    rows = [_row("ib4606c5q_flt.fits", "F555W"), _row("ib4606c5q_flc.fits", "F555W"),
            _row("ib4606c6q_flt.fits", "F555W"), _row("ib4606c6q_flc.fits", "F555W"),
            _row("ib4606c7q_flt.fits", "F814W")]
    (uvis,) = build_product_tree(rows)
    f555w, f814w = uvis.fdp_list
    assert f555w.filetype == "drc" and f814w.filetype == "drz"
    assert [e.filename for e in f555w.edp_list] == ["ib4606c5q_flc.fits", "ib4606c6q_flc.fits"]
    assert [e.filename for e in uvis.edp_list] == ["ib4606c5q_flc.fits", "ib4606c6q_flc.fits",
                                                   "ib4606c7q_flt.fits"]
    # the FLT non-members keep an exposure object of the opposite type (never drizzled)
    others = [e for e in uvis.all_exposures if not e.is_member]
    assert [(e.filename, e.filetype) for e in others] == [("ib4606c5q_flt.fits", "drz"),
                                                          ("ib4606c6q_flt.fits", "drz")]
    assert others[0].full_filename == "hst_11665_06_wfc3_uvis_f555w_ib4606c5_flt.fits"
    assert uvis.filetype == "drc" and uvis.rootname == "ib4606c5q"
    d = obs_dict([uvis])
    assert d["single exposure product 00"]["info"].endswith("ib4606c5q f555w drz")
    assert d["filter product 00"]["files"] == ["ib4606c5q_flc.fits", "ib4606c6q_flc.fits"]
    assert d["filter product 01"]["info"].endswith("ib4606c7q f814w drz")
    assert d["total detection product 00"]["files"] == [
        "ib4606c5q_flc.fits", "ib4606c6q_flc.fits", "ib4606c7q_flt.fits"]
    # the first member (c5 FLC, not the FLT listed before it) makes the crclean exposure
    assert [e.crclean for e in uvis.edp_list] == [True, False, True]


def test_grism_rows():
    rows = [_row("ib4606c0q_flt.fits", "G141", "IR"), _row("ib4606c1q_flt.fits", "G141", "IR"),
            _row("ib4606c2q_flt.fits", "F140W", "IR"), _row("ib4606c3q_flt.fits", "F105W", "IR")]
    (ir,) = build_product_tree(rows)
    assert [type(e) for e in ir.grism_edp_list] == [GrismExposureProduct] * 2
    assert ir.grism_edp_list[0].full_filename == "hst_11665_06_wfc3_ir_g141_ib4606c0_flt.fits"
    assert [f.filters for f in ir.fdp_list] == ["f140w", "f105w"]
    assert [e.filename for e in ir.edp_list] == ["ib4606c2q_flt.fits", "ib4606c3q_flt.fits"]
    # the first member, a grism exposure, names the total product
    assert ir.rootname == "ib4606c0q"
    assert ir.drizzle_filename == "hst_11665_06_wfc3_ir_total_ib4606_drz.fits"
    d = obs_dict([ir])
    # as coded in drizzlepac: each grism exposure moves the running filter index back by one,
    # so after the G141 group (entry 00, left empty) F140W gets index -1 and F105W
    # overwrites entry 00
    assert d["total detection product 00"]["info"].endswith("ib4606c0q g141 drz")
    assert d["total detection product 00"]["files"] == ["ib4606c2q_flt.fits",
                                                        "ib4606c3q_flt.fits"]
    assert [k for k in d if k.startswith("filter")] == ["filter product 00",
                                                        "filter product -1"]
    assert d["filter product 00"]["files"] == ["ib4606c3q_flt.fits"]
    assert d["filter product -1"]["files"] == ["ib4606c2q_flt.fits"]
    assert [k for k in d if k.startswith("single")] == [
        f"single exposure product {i:02d}" for i in range(4)]
    # prism (ACS/SBC PR110L) and ACS grism names count too
    (sbc,) = build_product_tree([_row("jb4606c0q_flt.fits", "PR110L;N/A", "SBC"),
                                 _row("jb4606c1q_flt.fits", "F122M;N/A", "SBC")])
    assert [e.filters for e in sbc.grism_edp_list] == ["pr110l"]
    assert [f.filters for f in sbc.fdp_list] == ["f122m"]


def test_only_grism_detector_has_no_direct_products():
    (ir,) = build_product_tree([_row("ib4606c0q_flt.fits", "G102", "IR")])
    assert ir.edp_list == [] and ir.fdp_list == [] and len(ir.grism_edp_list) == 1
    assert ir.trl_filename == "hst_11665_06_wfc3_ir_total_ib4606_trl.txt"


def test_detector_order_and_wfpc2_pc():
    rows = [_row("ib4606c5q_flt.fits", "F110W", "IR"), _row("ib4606c6q_flc.fits", "F555W")]
    assert [t.detector for t in build_product_tree(rows)] == ["ir", "uvis"]
    (pc,) = build_product_tree([_row("u5ab0102r_flt.fits", "F555W", "1",
                                     aperture="PC1-FIX;F160BN15")])
    assert pc.detector == "pc" and pc.poller_detector == "1"
    assert pc.drizzle_filename == "hst_11665_06_wfpc2_pc_total_u5ab01_drz.fits"
    assert pc.edp_list[0].full_filename == "hst_11665_06_wfpc2_pc_f555w_u5ab0102_flt.fits"
    assert pc.manifest_name == "wfpc2_5ab_06_manifest.txt"
    assert obs_dict([pc])["single exposure product 00"]["info"] == \
        "11665 06 wfpc2 1 pc1-fix;f160bn15 u5ab0102r f555w drz"


def test_names_with_short_proposal_and_two_wheel_filters():
    rows = [_row("j8cw01a1q_flc.fits", "F606W;POL60V", "WFC", proposal_id=9029, obset_id="01"),
            _row("j8cw01a2q_flc.fits", "CLEAR1L;F814W", "WFC", proposal_id=9029, obset_id="01")]
    (wfc,) = build_product_tree(rows)
    assert wfc.drizzle_filename == "hst_9029_01_acs_wfc_total_j8cw01_drc.fits"
    assert wfc.prop_id == "09029"
    assert [f.drizzle_filename for f in wfc.fdp_list] == [
        "hst_9029_01_acs_wfc_f606w-pol60v_j8cw01_drc.fits",
        "hst_9029_01_acs_wfc_f814w_j8cw01_drc.fits"]
    assert manifest_filename("ACS", "8CW", "01") == "acs_8cw_01_manifest.txt"


def test_ramp_and_quad_exposures():
    rows = [_row("jb4606c0q_flc.fits", "FR647M;CLEAR2L", "WFC"),
            _row("jb4606c1q_flc.fits", "F606W;CLEAR2L", "WFC"),
            _row("jb4606c2q_flc.fits", "FR782N;CLEAR2L", "WFC")]
    (wfc,) = build_product_tree(rows)
    assert [e.is_ramp_or_quad for e in wfc.edp_list] == [True, False, True]
    assert [f.is_ramp_or_quad for f in wfc.fdp_list] == [True, False, True]
    assert ramp_and_quad_manifest_names(wfc.edp_list) == [
        "hst_11665_06_acs_wfc_fr782n_jb4606c2_flc.fits",
        "hst_11665_06_acs_wfc_fr782n_jb4606c2_trl.txt",
        "hst_11665_06_acs_wfc_fr647m_jb4606c0_flc.fits",
        "hst_11665_06_acs_wfc_fr647m_jb4606c0_trl.txt"]
    (uvis,) = build_product_tree([_row("ib4606c0q_flc.fits", "FQ508N")])
    assert uvis.edp_list[0].is_ramp_or_quad


def test_find_member_and_empty_rows():
    (uvis,) = build_product_tree([_row("ib4606c5q_flc.fits", "F555W")])
    assert uvis.find_member(uvis.drizzle_filename) is uvis
    assert uvis.find_member(uvis.fdp_list[0].drizzle_filename) is uvis.fdp_list[0]
    assert uvis.find_member(uvis.edp_list[0].drizzle_filename) is uvis.edp_list[0]
    assert uvis.find_member("nothing.fits") is None
    with pytest.raises(InvalidInputError, match="no exposures"):
        build_product_tree([])


# ----------------------------------------------------------------------------- renamed copies


@pytest.fixture()
def real_flc(tmp_path) -> Path:
    """The real WFC3/UVIS FLC sample (10x10 cut, full headers and distortion) uncompressed."""
    path = tmp_path / "in" / "ib4606c6q_flc.fits"
    path.parent.mkdir()
    with gzip.open(data_file("sample_svm_flc.fits.gz")) as f_in, open(path, "wb") as f_out:
        shutil.copyfileobj(f_in, f_out)
    path.chmod(0o444)  # a read-only input must still give a writable copy
    return path


def test_make_renamed_copy(tmp_path, real_flc):
    before = hashlib.sha256(real_flc.read_bytes()).hexdigest()
    (uvis,) = build_product_tree([_row(real_flc.name, "F555W")])
    exposure = uvis.edp_list[0]
    out = tmp_path / "out"
    out.mkdir()
    copy = make_renamed_copy(real_flc, out, exposure)
    assert copy == out / "hst_11665_06_wfc3_uvis_f555w_ib4606c6_flc.fits"
    assert hashlib.sha256(real_flc.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in out.iterdir()) == [copy.name]  # no temporary left
    with fits.open(copy) as hdul, fits.open(real_flc) as orig:
        primary = hdul[0].header
        assert primary["HAPLEVEL"] == 1
        assert primary.comments["HAPLEVEL"] == "Classification level of this product"
        assert primary["IPPPSSOO"] == orig[0].header["ROOTNAME"]
        assert primary["FILENAME"] == copy.name
        assert exposure.exptime == orig[0].header["EXPTIME"]
        assert exposure.mjdutc == orig[0].header["EXPSTART"]
        n_sci = 0
        for hdu, ohdu in zip(hdul, orig):
            if hdu.name != "SCI":
                if hdu.data is not None and ohdu.data is not None:
                    np.testing.assert_array_equal(hdu.data, ohdu.data)
                continue
            n_sci += 1
            np.testing.assert_array_equal(hdu.data, ohdu.data)
            words = hdu.header["S_REGION"].split()
            assert words[:2] == ["POLYGON", "ICRS"] and len(words) == 12
            corners = np.array(words[2:], dtype=float).reshape(5, 2)
            np.testing.assert_array_equal(corners[0], corners[4])
            # independent check: astropy's full distortion (SIP + lookup tables) at the
            # centres of the corner pixels
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                wcs = WCS(ohdu.header, orig)
            ny, nx = ohdu.data.shape
            expected = wcs.all_pix2world([[1, 1], [1, ny], [nx, ny], [nx, 1]], 1)
            np.testing.assert_allclose(corners[:4], expected, rtol=0, atol=1e-10)
        assert n_sci == 2


def test_make_renamed_copy_errors(tmp_path, real_flc):
    (uvis,) = build_product_tree([_row(real_flc.name, "F555W")])
    with pytest.raises(InvalidInputError, match="input file not found"):
        make_renamed_copy(tmp_path / "absent_flc.fits", tmp_path, uvis.edp_list[0])
    bad = write_without(tmp_path / "ib4606c7q_flc.fits", real_flc, "EXPSTART")
    with pytest.raises(InvalidInputError, match=r"ib4606c7q_flc\.fits: primary header has no "
                                                r"EXPSTART"):
        make_renamed_copy(bad, tmp_path / "in", uvis.edp_list[0])
    assert not any(p.name.startswith(".") for p in (tmp_path / "in").iterdir())


def write_without(path: Path, source: Path, keyword: str) -> Path:
    with fits.open(source) as hdul:
        del hdul[0].header[keyword]
        hdul.writeto(path)
    return path


def test_footprint_sregion_format():
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [10.0, -20.0]
    wcs.wcs.crpix = [2.0, 2.0]
    wcs.wcs.cdelt = [-1e-4, 1e-4]
    wcs.pixel_shape = (3, 3)
    text = footprint_sregion(wcs)
    assert text.startswith("POLYGON ICRS ") and text.endswith(" ")
    values = np.array(text.split()[2:], dtype=float).reshape(5, 2)
    np.testing.assert_allclose(values[0], [10.0 + 1e-4 / np.cos(np.radians(20.0)), -20.0001],
                               atol=1e-9)
    assert text.split()[2:4] == text.split()[10:12]
