"""SourceCatalog against photutils (per-source measurements within rtol 1e-5)."""

import numpy as np
import pytest
from astropy import units as u

from hapgpu.detection import SourceCatalog, detect_sources
from hapgpu.errors import InvalidInputError, InvalidParameterError

# The HAP segment catalog's photutils properties (hap-pipeline.md §1.13) plus the core set.
COLUMNS = ["label", "x_centroid", "y_centroid", "bbox_xmin", "bbox_xmax", "bbox_ymin",
           "bbox_ymax", "area", "segment_area", "semimajor_axis", "semiminor_axis",
           "orientation", "eccentricity", "min_value", "max_value", "segment_flux",
           "segment_flux_err", "background_centroid", "background_mean", "background_sum",
           "fwhm", "covariance_xx", "covariance_yy", "covariance_xy", "ellipse_cxx",
           "ellipse_cyy", "ellipse_cxy", "elongation", "ellipticity", "kron_radius",
           "equivalent_radius", "min_value_xindex", "min_value_yindex", "max_value_xindex",
           "max_value_yindex"]


def _values(column):
    return np.asarray(getattr(column, "value", column), dtype=float)


def _compare(ref_cat, ours, columns=COLUMNS):
    ref = ref_cat.to_table(columns=columns)
    tab = ours.to_table(columns=columns)
    for name in columns:
        a, b = _values(ref[name]), _values(tab[name])
        scale = np.nanmax(np.abs(a)) if np.any(np.isfinite(a)) else 1.0
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-9 * scale, equal_nan=True,
                                   err_msg=name)
        if hasattr(ref[name], "unit"):
            assert getattr(tab[name], "unit", None) == ref[name].unit, name
    np.testing.assert_allclose(ours.moments_central, ref_cat.moments_central, rtol=1e-6,
                               atol=1e-8)


@pytest.fixture(scope="module")
def catalog_inputs(field, detection):
    conv, threshold = detection
    segm = detect_sources(conv, threshold, 6, mask=~field.footprint, backend="cpu")
    data = field.data - field.sky
    data[50, 60] = np.nan
    y, x = np.mgrid[:data.shape[0], :data.shape[1]]
    background = (field.sky + 1e-4 * x).astype(np.float32)
    mask = np.zeros(data.shape, bool)
    mask[120:126, 30:200] = True
    return data, segm, conv, field.error, background, mask


@pytest.mark.reference
@pytest.mark.parametrize("method", ["correct", "mask", "none"])
def test_source_catalog_matches_photutils(catalog_inputs, method):
    from photutils.segmentation import SourceCatalog as Ref

    data, segm, conv, error, background, mask = catalog_inputs
    kwargs = dict(convolved_data=conv, error=error, background=background, mask=mask,
                  kron_params=(2.5, 3.5), aperture_mask_method=method)
    ref = Ref(data, segm.to_photutils(), **kwargs)
    ours = SourceCatalog(data, segm, backend="cpu", **kwargs)
    assert len(ours) == len(ref) > 50
    _compare(ref, ours)


@pytest.mark.reference
def test_source_catalog_minimal_inputs_and_detection_catalog(catalog_inputs):
    from photutils.segmentation import SourceCatalog as Ref

    data, segm, conv, error, background, _ = catalog_inputs
    ref_det = Ref(data, segm.to_photutils(), convolved_data=conv, kron_params=(2.5, 3.5, 1.0))
    ours_det = SourceCatalog(data, segm, convolved_data=conv, kron_params=(2.5, 3.5, 1.0),
                             backend="cpu")
    _compare(ref_det, ours_det, [c for c in COLUMNS if "background" not in c
                                 and c != "segment_flux_err"])
    other = data * 0.5 + 0.01
    ref = Ref(other, segm.to_photutils(), background=background, detection_catalog=ref_det)
    ours = SourceCatalog(other, segm, background=background, detection_cat=ours_det,
                         backend="cpu")
    _compare(ref, ours, ["x_centroid", "y_centroid", "segment_flux", "kron_radius", "area",
                         "background_centroid", "max_value"])


@pytest.mark.reference
def test_source_catalog_cudasim_matches_photutils(catalog_inputs):
    from photutils.segmentation import SourceCatalog as Ref

    data, segm, conv, error, background, mask = catalog_inputs
    sub = (slice(20, 52), slice(150, 190))
    small = detect_sources(conv[sub], 0.03, 4, backend="cpu")
    kwargs = dict(convolved_data=conv[sub], error=error[sub], background=background[sub],
                  mask=mask[sub], kron_params=(2.5, 3.5))
    ref = Ref(data[sub], small.to_photutils(), **kwargs)
    ours = SourceCatalog(data[sub], small, backend="cudasim", **kwargs)
    _compare(ref, ours)


def test_source_catalog_aliases_selection_and_units(catalog_inputs):
    data, segm, conv, *_ = catalog_inputs
    cat = SourceCatalog(data, segm, convolved_data=conv, backend="cpu")
    np.testing.assert_array_equal(cat.xcentroid, cat.x_centroid)
    np.testing.assert_array_equal(cat.semimajor_sigma, cat.semimajor_axis)
    assert cat.area.unit == u.pix ** 2 and cat.orientation.unit == u.deg
    table = cat.to_table(columns=["label", "xcentroid", "cxx"])
    assert table.colnames == ["label", "xcentroid", "cxx"]
    sub = cat.get_labels([5, 2])
    np.testing.assert_array_equal(sub.label, [5, 2])
    np.testing.assert_allclose(sub.x_centroid, cat.x_centroid[[4, 1]])
    assert len(cat[cat.label > 10]) == len(cat) - 10
    text = repr(cat)
    assert text.startswith("SourceCatalog(")
    for shown in (f"n_labels={len(cat)}", "backend='cpu'", "aperture_mask_method='correct'",
                  "kron_params=(2.5, 1.4, 0.0)"):
        assert shown in text, (shown, text)
    # the parameters shown are the catalog's own, not fixed text
    other = repr(SourceCatalog(data, segm, backend="cpu", aperture_mask_method="mask",
                               kron_params=(2.0, 3.5, 1.0))[:7])
    for shown in ("n_labels=7", "aperture_mask_method='mask'", "kron_params=(2.0, 3.5, 1.0)"):
        assert shown in other, (shown, other)


def test_source_catalog_analytic_moments():
    data = np.zeros((9, 11), np.float32)
    data[3:6, 4:7] = [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
    segm = detect_sources(data, 0.5, 1, backend="cpu")
    cat = SourceCatalog(data, segm, backend="cpu")
    assert cat.x_centroid[0] == 5.0 and cat.y_centroid[0] == 4.0
    assert cat.segment_flux[0] == 16.0 and cat.area[0].value == 9
    np.testing.assert_allclose(cat.covariance_xx.value, 0.5)
    np.testing.assert_allclose(cat.orientation.value % 180, 0.0, atol=1e-12)


def test_source_catalog_validation(catalog_inputs):
    data, segm, *_ = catalog_inputs
    with pytest.raises(InvalidInputError):
        SourceCatalog(data[:10], segm)
    with pytest.raises(InvalidParameterError):
        SourceCatalog(data, segm, local_bkg_width=5)
    with pytest.raises(InvalidParameterError):
        SourceCatalog(data, segm, kron_params=(2.5,))
    with pytest.raises(InvalidInputError):
        SourceCatalog(data, np.zeros(data.shape, int))
