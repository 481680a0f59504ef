"""Segmentation catalogs (hapgpu.catalogs._segment, hap-pipeline.md §1.13 C and D).

The decisions are checked against drizzlepac 3.11's own ``HAPSegmentCatalog`` methods run on
the same arrays: the catalog object is built with drizzlepac's constructor around a minimal
stand-in for its ``CatalogImage`` (:class:`FakeCatalogImage`: the prepared image's data, masks,
background and kernel), so its ``identify_sources`` / ``measure_sources`` run unchanged.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import MaskedColumn
from astropy.wcs import WCS

from hapgpu import detection
from hapgpu.backend import resolve_backend
from hapgpu.catalogs import _segment as seg
from hapgpu.catalogs._parameters import catalog_parameters
from hapgpu.catalogs._prepare import (
    ImageBackground,
    compute_background,
    prepare_image,
    region_threshold,
)
from hapgpu.catalogs._product import CatalogProduct
from hapgpu.detection import SegmentationImage
from hapgpu.detection._synthetic import make_field
from hapgpu.errors import InvalidInputError, InvalidParameterError

from ._oracle import photutils2_catalog_shim

PSCALE = 0.04  # arcsec / pixel


# ------------------------------------------------------------------------------ products
def make_product(data, kind="total", filter_name="f555w", *, radesys="ICRS"):
    """A WFC3/UVIS-like drizzled product around ``data`` (2 exposures, 3-pixel empty rim)."""
    ny, nx = data.shape
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [nx / 2, ny / 2]
    wcs.wcs.cd = np.array([[-PSCALE, 0.0], [0.0, PSCALE]]) / 3600.0
    wcs.wcs.radesys = radesys
    primary = fits.Header()
    primary.update(INSTRUME="WFC3", DETECTOR="UVIS", EXPTIME=400.0, TEXPTIME=400.0, NDRIZIM=2,
                   NUMEXP=2, READNSEA=3.0, READNSEB=3.1, ATODGNA=1.5, ATODGNB=1.6,
                   CCDGAIN=1.5, PHOTFLAM=1.8e-19, PHOTPLAM=5300.0,
                   FILTER="detection" if kind == "total" else filter_name.upper())
    mask = np.zeros((ny, nx), np.int16)
    mask[3:-3, 3:-3] = 2
    token = "total" if kind == "total" else filter_name
    return CatalogProduct(data=np.asarray(data, np.float32),
                          wht=np.where(mask > 0, 800.0, 0.0).astype(np.float32), mask=mask,
                          wcs=wcs, primary_header=primary, sci_header=wcs.to_header(),
                          filename=f"hst_12345_01_wfc3_uvis_{token}_ib1a01_drc.fits", kind=kind)


def prepared(data, kind="total", sourcex=None, backend="cpu", **kwargs):
    overrides = {"catalog generation": {"sourcex": sourcex}} if sourcex else None
    params = catalog_parameters("wfc3", "uvis", overrides=overrides)
    return prepare_image(make_product(data, kind, **kwargs), params, backend=backend)


@pytest.fixture(scope="module")
def field():
    """160 x 160 field: 40 stars, 6 galaxies (Gaussian segmentation is poor, Ricker is fine)."""
    return make_field((160, 160), n_stars=40, n_galaxies=6, border=6, seed=5)


@pytest.fixture(scope="module")
def sparse():
    return make_field((160, 160), n_stars=10, n_galaxies=1, border=6, seed=7)


def with_gradient(f):
    """The field plus a sky ramp that a constant background misses (round 2 forces 2-D)."""
    xx = np.mgrid[:f.data.shape[0], :f.data.shape[1]][1]
    return f.data + 0.06 * (xx / f.data.shape[1])


# ------------------------------------------------------------------------------ drizzlepac
class FakeCatalogImage:
    """The attributes and methods of drizzlepac's ``CatalogImage`` that ``HAPSegmentCatalog`` uses.

    Everything comes from a :class:`~hapgpu.catalogs._prepare.PreparedImage` (host copies);
    ``compute_background`` is the forced Background2D of round 2 (drizzlepac passes
    ``bkg_skew_threshold=0, negative_percent=100``) and ``build_kernel`` is drizzlepac's own.
    """

    def __init__(self, prep):
        from drizzlepac.haputils.catalog_utils import CatalogImage

        product = prep.product
        self._prep = prep
        self._build_kernel = CatalogImage.build_kernel
        self.imgname = product.filename
        self.ghd_product = "tdp" if product.kind == "total" else "fdp"
        self.data = np.array(product.data, dtype=np.float32)
        self.wht_image = np.array(product.wht)
        self.blank = prep.blank
        self.imgwcs = product.wcs.deepcopy()
        self.imgwcs.pscale = product.pscale
        self.keyword_dict = dict(product.keywords)
        self.kernel = None if prep.kernel is None else np.array(prep.kernel)
        self.kernel_fwhm = prep.kernel_fwhm
        self.n_forced = 0
        if not prep.blank:
            self.footprint_mask = np.array(prep.footprint)
            self.inv_footprint_mask = np.array(prep.inv_footprint)
            self._adopt(prep.background)

    def _adopt(self, bkg):
        self.bkg_background_ra = np.array(bkg.background)
        self.bkg_rms_ra = np.array(bkg.rms)
        self.bkg_rms_median = bkg.rms_median
        self.bkg_median = bkg.median
        self.bkg_type = bkg.kind

    def compute_background(self, box_size, win_size, bkg_skew_threshold=0.5,
                           negative_percent=15.0, **other):
        assert (bkg_skew_threshold, negative_percent, other) == (0.0, 100.0, {})
        self.n_forced += 1
        p = self._prep
        self._adopt(compute_background(p.data, p.footprint, p.params, p.keywords, force_2d=True,
                                       backend="cpu"))

    def build_kernel(self, box_size, win_size, fwhmpsf, *args):
        self._build_kernel(self, box_size, win_size, fwhmpsf, *args)


def drizzlepac_total(prep):
    from drizzlepac.haputils.catalog_utils import HAPSegmentCatalog

    params = prep.params
    cat = HAPSegmentCatalog(FakeCatalogImage(prep), copy.deepcopy(params.generation),
                            copy.deepcopy(params.quality_control), False, None)
    with warnings.catch_warnings(), photutils2_catalog_shim():
        warnings.simplefilter("ignore")
        cat.identify_sources()
    return cat


def drizzlepac_filter(prep, total_cat):
    from drizzlepac.haputils.catalog_utils import HAPSegmentCatalog

    tp_sources = {"segment": {"sources": total_cat.sources, "kernel": total_cat.kernel,
                              "source_cat": total_cat.source_cat,
                              "total_source_cat": total_cat.total_source_cat,
                              "final_nsigma": total_cat.final_nsigma}}
    params = prep.params
    cat = HAPSegmentCatalog(FakeCatalogImage(prep), copy.deepcopy(params.generation),
                            copy.deepcopy(params.quality_control), False, tp_sources)
    with warnings.catch_warnings(), photutils2_catalog_shim():
        warnings.simplefilter("ignore")
        cat.identify_sources()
        cat.measure_sources(prep.product.filter_name)
    return cat


def assert_same_layout(ours, ref):
    """Same column names, order, formats, units, descriptions and value kinds."""
    assert ours.colnames == ref.colnames
    for name in ref.colnames:
        a, b = ours[name], ref[name]
        assert a.format == b.format, name
        assert a.unit == b.unit, name
        assert a.description == b.description, name
        assert a.dtype.kind == b.dtype.kind, name
        assert isinstance(a, MaskedColumn) == isinstance(b, MaskedColumn), name


def assert_same_values(ours, ref, rtol=1e-6):
    for name in ref.colnames:
        a = np.ma.filled(np.ma.asarray(ours[name], dtype=float), np.nan)
        b = np.ma.filled(np.ma.asarray(ref[name], dtype=float), np.nan)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-9, equal_nan=True, err_msg=name)
        if isinstance(ref[name], MaskedColumn):
            np.testing.assert_array_equal(np.ma.getmaskarray(ours[name]),
                                          np.ma.getmaskarray(ref[name]), err_msg=name)


# ------------------------------------------------------------------------------ Ricker kernel
@pytest.mark.reference
@pytest.mark.parametrize("fwhm, size", [(1.9, 15), (3.5, 11), (2.6, 23)])
def test_ricker_kernel_matches_drizzlepac(fwhm, size):
    from astropy.stats import gaussian_fwhm_to_sigma
    from drizzlepac.haputils.catalog_utils import HAPSegmentCatalog

    sigma = fwhm * gaussian_fwhm_to_sigma
    theirs = HAPSegmentCatalog.ricker_matched_kernel(None, sigma, x_size=size, y_size=size).array
    ours = seg.ricker_matched_kernel(sigma, size)
    assert ours.shape == (size, size)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-17)


@pytest.mark.parametrize("sigma, size", [(0.0, 15), (1.0, 14), (1.0, 0), (1.0, 7.5)])
def test_ricker_kernel_rejects_bad_parameters(sigma, size):
    with pytest.raises(InvalidParameterError):
        seg.ricker_matched_kernel(sigma, size)


# ------------------------------------------------------------------------------ evaluation
def _label_image(areas, shape=(400, 400)):
    """Consecutive labels 1..n with the given areas, laid out as row runs."""
    data = np.zeros(shape, np.int32)
    flat = data.reshape(-1)
    start = 0
    for label, area in enumerate(areas, start=1):
        flat[start:start + area] = label
        start += area + 1
    return SegmentationImage(data)


AREA_CASES = {
    "chain": [20000, 1500, 140, 130, 125, 30],        # 1500/140 >= 10: dropped too
    "no-chain": [5000, 1200, 300, 200, 9],            # only the largest is dropped
    "two": [3000, 200],
    "none-big": [100, 50, 40],
    "ties": [500, 500, 500, 130, 130, 12],
    "long-chain": [60000, 5000, 450, 40, 130, 121],
}


@pytest.mark.reference
@pytest.mark.parametrize("case", sorted(AREA_CASES))
@pytest.mark.parametrize("big_island_only", [False, True])
def test_evaluation_matches_drizzlepac(case, big_island_only):
    from drizzlepac.haputils.catalog_utils import HAPSegmentCatalog

    segm = _label_image(AREA_CASES[case])
    image = np.ones(segm.shape, np.float32)
    image[:40] = 0.0
    image[40:45] = np.nan
    limits = {"max_biggest_pixels": 4000, "max_biggest_source": 0.02, "max_source_fraction": 0.1}
    theirs = HAPSegmentCatalog.__new__(HAPSegmentCatalog)
    theirs.kernel = np.zeros((11, 11))
    theirs._ratio_bigsource_deblend_limit = 10
    photutils_segm = segm.to_photutils()
    poor, biggest, fraction = theirs._evaluate_segmentation_image(
        photutils_segm, image, big_island_only=big_island_only, **limits)
    ours = seg.evaluate_segmentation(segm, image, kernel_size=121,
                                     ratio_bigsource_deblend_limit=10,
                                     big_island_only=big_island_only, backend="cpu", **limits)
    assert (ours.poor, ours.biggest_source, ours.source_fraction) == (poor, biggest, fraction)
    expected = photutils_segm.big_segments
    if expected is None:
        assert ours.deblend_labels is None
    else:
        np.testing.assert_array_equal(ours.deblend_labels, expected)


def test_evaluation_without_segmentation():
    ev = seg.evaluate_segmentation(None, np.ones((5, 5)), kernel_size=121,
                                   ratio_bigsource_deblend_limit=10, backend="cpu")
    assert ev == seg.SegmentEvaluation(True, 1.0, 1.0, None)


def test_evaluation_limits():
    segm = _label_image([300, 130, 20], shape=(100, 100))
    image = np.ones(segm.shape)
    kwargs = {"kernel_size": 121, "ratio_bigsource_deblend_limit": 10, "backend": "cpu"}
    ok = seg.evaluate_segmentation(segm, image, max_biggest_source=0.031,
                                   max_source_fraction=0.046, **kwargs)
    assert not ok.poor and ok.biggest_source == 0.03 and ok.source_fraction == 0.045
    np.testing.assert_array_equal(ok.deblend_labels, [2])
    assert seg.evaluate_segmentation(segm, image, max_biggest_source=0.029,
                                     max_source_fraction=0.046, **kwargs).poor
    assert seg.evaluate_segmentation(segm, image, max_biggest_pixels=299,
                                     max_biggest_source=0.031, max_source_fraction=0.046,
                                     **kwargs).poor
    assert seg.evaluate_segmentation(segm, image, max_biggest_source=0.031,
                                     max_source_fraction=0.044, **kwargs).poor
    assert not seg.evaluate_segmentation(segm, image, max_biggest_source=0.031,
                                         max_source_fraction=0.044, big_island_only=True,
                                         **kwargs).poor


# ------------------------------------------------------------------------------ identification
SCENARIOS = {
    # name: (image, sourcex overrides, expected stage, drizzlepac forces a Background2D)
    "round1-gaussian-deblended": ("field", {"rw2d_biggest_source": 0.2,
                                            "rw2d_source_fraction": 0.3}, "round1_gaussian", 0),
    "round1-gaussian-sparse": ("sparse", {}, "round1_gaussian", 0),
    "round1-ricker": ("field", {}, "round1_ricker", 0),
    "round2-doubled-nsigma": ("field", {"rw2d_biggest_source": 0.0005}, "round2_ricker", 0),
    "round2-forced-2d": ("gradient", {"rw2d_biggest_source": 0.0005}, "round2_ricker", 1),
    "round2-ratio": ("field", {"rw2d_biggest_source": 0.0005,
                               "biggest_source_deblend_limit": 0.0005,
                               "ratio_bigsource_limit": 1.0}, "round2_ricker", 0),
    "round2-rejected": ("field", {"rw2d_biggest_source": 0.0005,
                                  "biggest_source_deblend_limit": 0.0005,
                                  "ratio_bigsource_limit": 100}, "round2_rejected", 0),
}


def _scenario_data(name, field, sparse):
    return {"field": field.data, "sparse": sparse.data, "gradient": with_gradient(field)}[name]


@pytest.mark.reference
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_identify_matches_drizzlepac(scenario, field, sparse):
    image, sourcex, stage, n_forced = SCENARIOS[scenario]
    total = prepared(_scenario_data(image, field, sparse), sourcex=sourcex)
    kind_before = total.background.kind
    theirs = drizzlepac_total(total)
    ours = seg.identify_segments(total, backend="cpu")

    assert ours.stage == stage
    assert theirs.image.n_forced == n_forced
    assert total.background.kind == theirs.image.bkg_type
    if n_forced:
        assert kind_before == "sigma_clipped_background" != total.background.kind
        np.testing.assert_array_equal(total.to_host(total.background.background),
                                      theirs.image.bkg_background_ra)
    assert ours.final_nsigma == theirs.final_nsigma
    assert ours.poor_quality == (scenario == "round2-ratio")
    if stage == "round2_rejected":
        assert ours.segm is None and ours.source_cat is None
        with warnings.catch_warnings():  # drizzlepac marks its kept segmentation as empty
            warnings.simplefilter("ignore")
            assert theirs.sources.nlabels == 0
        assert_same_layout(ours.total_table, theirs.source_cat)
        assert len(ours.total_table) == len(theirs.source_cat) == 0
        return
    np.testing.assert_allclose(ours.kernel, theirs.kernel, rtol=1e-12, atol=1e-17)
    np.testing.assert_array_equal(ours.segm.data, theirs.segm_img.data)
    if scenario == "round1-gaussian-deblended":  # the candidates really were split
        candidates = ours.evaluations["round1_gaussian"].deblend_labels
        assert candidates is not None
        convolved = detection.convolve(total.data - total.background.background, total.kernel,
                                       normalize_kernel=False, backend="cpu")
        threshold = region_threshold(3.0, total.background.rms, total.regions, backend="cpu")
        detected = detection.detect_sources(convolved, threshold, npixels=6,
                                            mask=total.inv_footprint, backend="cpu")
        assert ours.segm.n_labels > detected.n_labels
    assert_same_layout(ours.total_table, theirs.source_cat)
    assert ours.total_table["ID"].dtype == theirs.source_cat["ID"].dtype
    assert_same_values(ours.total_table, theirs.source_cat, rtol=1e-9)


def _scripted(script, calls):
    """Replace evaluation verdicts in call order: script[i] = (poor, biggest_source or None)."""
    def verdict(i, poor, biggest):
        calls.append(i)
        want_poor, want_biggest = script[i]
        return want_poor, biggest if want_biggest is None else want_biggest
    return verdict


DECISIONS = {
    # verdicts of: round-1 Gaussian, round-1 Ricker, round-2 Gaussian, round-2 Ricker
    "round1_gaussian": [(False, None)],
    "round1_ricker": [(True, None), (False, None)],
    "round2_gaussian": [(True, None), (True, None), (False, None)],
    "round2_ricker": [(True, None), (True, None), (True, None), (False, None)],
    "round2_ricker-ratio": [(True, None), (True, None), (True, 0.5), (True, 0.1)],
    "round2_ricker-zero": [(True, None), (True, None), (True, 0.5), (True, 0.0)],
    "round2_rejected": [(True, None), (True, None), (True, 0.5), (True, 0.4)],
}


# round 1 does not depend on the background kind; round 2 does
DECISION_CASES = [(decision, kind) for decision in sorted(DECISIONS)
                  for kind in ("sigma_clipped_background", "twod_background", "zero_background")
                  if decision.startswith("round2") or kind == "sigma_clipped_background"]


@pytest.mark.reference
@pytest.mark.parametrize("decision, kind", DECISION_CASES)
def test_decision_table_matches_drizzlepac(decision, kind, monkeypatch):
    """Every path of rounds 1 and 2, for every background kind, with scripted verdicts."""
    from drizzlepac.haputils.catalog_utils import HAPSegmentCatalog

    f = make_field((96, 96), n_stars=14, n_galaxies=2, border=6, seed=21)
    total = prepared(with_gradient(f))
    bkg = total.background
    total.background = ImageBackground(bkg.background, bkg.rms, bkg.rms_median, bkg.median, kind)
    script = DECISIONS[decision]
    theirs_calls, ours_calls = [], []
    theirs_verdict = _scripted(script, theirs_calls)
    ours_verdict = _scripted(script, ours_calls)
    original_theirs = HAPSegmentCatalog._evaluate_segmentation_image
    original_ours = seg.evaluate_segmentation

    def theirs_eval(self, segm_img, image_data, **kwargs):
        poor, biggest, fraction = original_theirs(self, segm_img, image_data, **kwargs)
        poor, biggest = theirs_verdict(len(theirs_calls), poor, biggest)
        theirs_limits.append(kwargs)
        return poor, biggest, fraction

    def ours_eval(segm, image_data, **kwargs):
        ev = original_ours(segm, image_data, **kwargs)
        poor, biggest = ours_verdict(len(ours_calls), ev.poor, ev.biggest_source)
        ours_limits.append({k: kwargs[k] for k in ("big_island_only", "max_biggest_pixels",
                                                   "max_biggest_source", "max_source_fraction")})
        return dataclasses.replace(ev, poor=poor, biggest_source=biggest)

    theirs_limits, ours_limits = [], []
    monkeypatch.setattr(HAPSegmentCatalog, "_evaluate_segmentation_image", theirs_eval)
    monkeypatch.setattr(seg, "evaluate_segmentation", ours_eval)
    theirs = drizzlepac_total(total)
    ours = seg.identify_segments(total, backend="cpu")

    assert ours_calls == theirs_calls == list(range(len(script)))
    assert ours_limits == theirs_limits
    assert ours.stage == decision.split("-")[0]
    assert ours.final_nsigma == theirs.final_nsigma
    assert total.background.kind == theirs.image.bkg_type
    assert ours.poor_quality == (decision in ("round2_ricker-ratio", "round2_ricker-zero"))
    if theirs.final_nsigma is None:  # empty: drizzlepac keeps no or an emptied segmentation
        assert ours.segm is None
        return
    np.testing.assert_allclose(ours.kernel, theirs.kernel, rtol=1e-12, atol=1e-17)
    np.testing.assert_array_equal(ours.segm.data, theirs.segm_img.data)


def test_identify_rejects_a_filter_product(field):
    with pytest.raises(InvalidInputError, match="total"):
        seg.identify_segments(prepared(field.data, kind="filter"), backend="cpu")


def test_filter_on_another_frame_is_rejected(sparse):
    det = seg.identify_segments(prepared(sparse.data), backend="cpu")
    other = prepared(sparse.data[:150, :150], kind="filter")
    with pytest.raises(InvalidInputError, match="f555w.*differs from the total"):
        seg.measure_segment_catalog(other, det, backend="cpu")


def test_non_icrs_frame_is_taken_as_icrs(sparse):
    icrs = seg.identify_segments(prepared(sparse.data), backend="cpu")
    other = seg.identify_segments(prepared(sparse.data, radesys="GAPPT"), backend="cpu")
    for name in ("RA", "DEC"):
        np.testing.assert_array_equal(other.total_table[name], icrs.total_table[name])


# ------------------------------------------------------------------------------ filter tables
@pytest.mark.reference
def test_filter_catalog_matches_drizzlepac(field):
    total = prepared(field.data)
    theirs_total = drizzlepac_total(total)
    ours_total = seg.identify_segments(total, backend="cpu")
    image = prepared(field.data * 1.2 + 0.01, kind="filter")
    theirs = drizzlepac_filter(image, theirs_total)
    table, subset = seg.measure_segment_catalog(image, ours_total, backend="cpu")

    assert table.colnames == list(seg.SEGMENT_COLUMNS) and len(table.colnames) == 36
    assert_same_layout(table, theirs.source_cat)
    assert_same_values(table, theirs.source_cat)
    for name in table.colnames:
        if name != "FluxSegmentErr":  # photutils sums float32 errors in float32
            assert table[name].dtype == theirs.source_cat[name].dtype, name
    assert table["Theta"].unit == "radian"
    assert np.all(table["Flags"] == 0)
    ref_subset = theirs.subset_filter_source_cat
    assert subset.colnames == ref_subset.colnames == ["ID", "MagAP2_f555w", "CI_f555w",
                                                      "Flags_f555w"]
    assert_same_layout(subset, ref_subset)
    assert_same_values(subset, ref_subset)
    assert table.meta["kron_params"] == (2.5, 3.5)


@pytest.mark.reference
def test_empty_tables_match_drizzlepac():
    from drizzlepac.haputils.catalog_utils import HAPSegmentCatalog

    theirs = HAPSegmentCatalog.__new__(HAPSegmentCatalog)
    theirs._define_empty_table(None)
    ours = seg.empty_segment_table()
    assert_same_layout(ours, theirs.source_cat)
    for name in ours.colnames:
        assert ours[name].dtype == theirs.source_cat[name].dtype
    assert len(ours) == 0


def test_blank_total_gives_empty_catalogs(field):
    total = prepared(np.zeros((64, 64), np.float32))
    assert total.blank
    det = seg.identify_segments(total, backend="cpu")
    assert det.segm is None and det.stage == "blank" and det.final_nsigma is None
    assert det.total_table.colnames == ["ID", "X-Centroid", "Y-Centroid", "RA", "DEC", "Flags"]
    table, subset = seg.measure_segment_catalog(prepared(field.data[:64, :64], kind="filter"),
                                                det, backend="cpu")
    assert len(table) == 0 and table.colnames == det.total_table.colnames
    assert subset.colnames == ["ID", "MagAP2_f555w", "CI_f555w", "Flags_f555w"]
    assert len(subset) == 0


def test_blank_filter_gives_empty_catalog(sparse):
    det = seg.identify_segments(prepared(sparse.data), backend="cpu")
    assert det.segm is not None
    blank = prepared(np.full((160, 160), np.nan, np.float32), kind="filter")
    table, subset = seg.measure_segment_catalog(blank, det, backend="cpu")
    assert len(table) == 0 and len(subset) == 0


def test_no_sources_gives_empty_catalogs():
    rng = np.random.default_rng(3)
    noise = (0.05 + 0.01 * rng.standard_normal((96, 96))).astype(np.float32)
    total = prepared(noise, sourcex={"segm_nsigma": 50.0, "rw2d_nsigma": 50.0})
    det = seg.identify_segments(total, backend="cpu")
    assert det.segm is None and det.stage == "no_segments" and det.final_nsigma is None
    assert np.array_equal(det.kernel, total.kernel)
    table, subset = seg.measure_segment_catalog(prepared(noise, kind="filter"), det,
                                                backend="cpu")
    assert len(table) == 0 and len(subset) == 0


@pytest.mark.reference
def test_total_error_matches_photutils():
    from photutils.utils import calc_total_error

    rng = np.random.default_rng(1)
    data = rng.normal(0.0, 1.0, (20, 30)).astype(np.float32)
    data[3, 4] = np.nan
    rms = np.abs(rng.normal(0.5, 0.1, (20, 30))).astype(np.float32)
    for gain in (1.0, 2.5):
        with np.errstate(invalid="ignore"):
            expected = calc_total_error(data, rms, gain)
        np.testing.assert_allclose(seg.total_error(data, rms, gain, backend="cpu"), expected,
                                   rtol=1e-6, equal_nan=True)
    with pytest.raises(InvalidParameterError):
        seg.total_error(data, rms, -1.0, backend="cpu")
    with pytest.raises(InvalidInputError):
        seg.total_error(data, rms[:, :5], backend="cpu")


# ------------------------------------------------------------------------------ backends
@pytest.mark.slow
def test_cudasim_matches_cpu():
    """The CUDA code path (convolution, labelling, SourceCatalog sums, apertures) in Numba's
    simulator equals the CPU path; the images are prepared once on the CPU (host arrays)."""
    f = make_field((64, 64), n_stars=12, n_galaxies=2, border=14, seed=11)
    total = prepared(f.data)
    image = prepared(f.data * 0.9, kind="filter")
    results = {}
    for backend in ("cpu", "cudasim"):
        bk = resolve_backend(backend)
        det = seg.identify_segments(dataclasses.replace(total, backend=bk), backend=bk)
        table, _ = seg.measure_segment_catalog(dataclasses.replace(image, backend=bk), det,
                                               backend=bk)
        results[backend] = (det, table)
    (det_cpu, cpu), (det_sim, sim) = results["cpu"], results["cudasim"]
    assert det_cpu.stage == det_sim.stage == "round1_ricker" and len(cpu) == 5
    np.testing.assert_array_equal(det_cpu.segm.data, det_sim.segm.data)
    assert cpu.colnames == sim.colnames
    # atomics on the CUDA path sum in a different order: last-bit differences only
    assert_same_values(sim, cpu, rtol=1e-5)
