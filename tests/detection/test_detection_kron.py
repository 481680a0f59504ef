"""SourceCatalog Kron photometry and default columns against photutils 3.

Tolerances: photutils forms the Kron flux from ``data.astype(float)`` and float64 overlap
weights, as we do, so the two differ only by float64 rounding (different summation order and
an independent exact-overlap formula): rtol 1e-10, atol 1e-12 of the column's largest value.
photutils sums float32 data and errors in float32 for ``segment_flux`` and
``segment_flux_err`` while we accumulate in float64, so those two columns agree to float32
rounding of the sums (rtol 1e-6) when the inputs are float32.
"""

import numpy as np
import pytest
from astropy import units as u
from hapgpu.kernels.detection import _kron_math
from hapgpu.kernels.targets import compile_namespace

from hapgpu.detection import SourceCatalog, detect_sources

FLOAT32_SUMS = {"segment_flux", "segment_flux_err"}

# the photutils properties the HAP segment catalog reads (hap-pipeline.md §1.13), forced
# photometry included
HAP_COLUMNS = ["label", "x_centroid", "y_centroid", "bbox_xmin", "bbox_xmax", "bbox_ymin",
               "bbox_ymax", "area", "semimajor_axis", "semiminor_axis", "orientation",
               "eccentricity", "elongation", "ellipticity", "fwhm", "kron_radius",
               "ellipse_cxx", "ellipse_cyy", "ellipse_cxy", "covariance_xx", "covariance_yy",
               "covariance_xy", "min_value", "max_value", "segment_flux", "segment_flux_err",
               "kron_flux", "kron_flux_err", "background_centroid", "local_background"]


def _values(column):
    return np.asarray(getattr(column, "value", column), dtype=float)


def _compare(ref_cat, ours, columns, float32_sums=True):
    ref = ref_cat.to_table(columns=columns)
    tab = ours.to_table(columns=columns)
    assert tab.colnames == ref.colnames
    for name in columns:
        a, b = _values(ref[name]), _values(tab[name])
        assert np.array_equal(np.isnan(a), np.isnan(b)), name
        scale = np.nanmax(np.abs(a)) if np.any(np.isfinite(a)) else 1.0
        rtol = 1e-6 if (float32_sums and name in FLOAT32_SUMS) else 1e-10
        np.testing.assert_allclose(b, a, rtol=rtol, atol=1e-12 * scale, equal_nan=True,
                                   err_msg=name)
        assert getattr(tab[name], "unit", None) == getattr(ref[name], "unit", None), name


@pytest.fixture(scope="module")
def kron_inputs(field, detection):
    conv, threshold = detection
    segm = detect_sources(conv, threshold, 6, mask=~field.footprint, backend="cpu")
    data = field.data - field.sky
    data[50, 60] = np.nan
    mask = np.zeros(data.shape, bool)
    mask[120:126, 30:200] = True
    _, x = np.mgrid[:data.shape[0], :data.shape[1]]
    background = (field.sky + 1e-4 * x).astype(np.float32)
    return data, segm, conv, field.error, mask, background


@pytest.mark.reference
@pytest.mark.parametrize("method", ["correct", "mask", "none"])
@pytest.mark.parametrize("kron_params", [(2.5, 3.5), (2.5, 1.4, 6.0)])
def test_kron_flux_matches_photutils(kron_inputs, method, kron_params):
    from photutils.segmentation import SourceCatalog as Ref

    data, segm, conv, error, mask, _ = kron_inputs
    kwargs = dict(convolved_data=conv, error=error, mask=mask, kron_params=kron_params,
                  aperture_mask_method=method)
    ref = Ref(data, segm.to_photutils(), **kwargs)
    ours = SourceCatalog(data, segm, backend="cpu", **kwargs)
    _compare(ref, ours, ["kron_radius", "kron_flux", "kron_flux_err"])
    if len(kron_params) == 3:  # the circular-aperture fallback is exercised
        assert np.count_nonzero(ours.kron_radius.value == 0) > 10


@pytest.mark.reference
def test_default_columns_match_photutils(kron_inputs):
    from photutils.segmentation import SourceCatalog as Ref

    data, segm, conv, error, mask, _ = kron_inputs
    kwargs = dict(convolved_data=conv, error=error, mask=mask)
    ref = Ref(data, segm.to_photutils(), **kwargs).to_table()
    ours = SourceCatalog(data, segm, backend="cpu", **kwargs).to_table()
    assert ours.colnames == ref.colnames
    assert ours.colnames[-2:] == ["kron_flux", "kron_flux_err"]
    for name in ref.colnames:
        if name == "sky_centroid":  # no WCS: None in both
            assert list(ours[name]) == list(ref[name])
            continue
        a, b = _values(ref[name]), _values(ours[name])
        scale = np.nanmax(np.abs(a))
        rtol = 1e-5 if name in FLOAT32_SUMS else 1e-10  # float32 sums in photutils
        np.testing.assert_allclose(b, a, rtol=rtol, atol=1e-12 * scale, equal_nan=True,
                                   err_msg=name)


@pytest.mark.reference
@pytest.mark.parametrize("method", ["correct", "mask"])
def test_forced_photometry_matches_photutils(kron_inputs, method):
    """detection_cat: shapes and Kron apertures from the detection image, fluxes from another
    image with its own error, background and mask (the HAP filter catalogs)."""
    from photutils.segmentation import SourceCatalog as Ref

    data, segm, conv, error, mask, background = kron_inputs
    det_kwargs = dict(convolved_data=conv, kron_params=(2.5, 1.4, 6.0),
                      aperture_mask_method=method)
    ref_det = Ref(data, segm.to_photutils(), **det_kwargs)
    ours_det = SourceCatalog(data, segm, backend="cpu", **det_kwargs)
    other = (0.7 * data + 0.003).astype(np.float64)
    other_error = (1.3 * error).astype(np.float64)
    kwargs = dict(error=other_error, background=background.astype(np.float64), mask=mask)
    ref = Ref(other, segm.to_photutils(), detection_catalog=ref_det, **kwargs)
    ours = SourceCatalog(other, segm, detection_cat=ours_det, backend="cpu", **kwargs)
    assert ours.aperture_mask_method == method and ours.kron_params == (2.5, 1.4, 6.0)
    _compare(ref, ours, HAP_COLUMNS, float32_sums=False)
    # the Kron apertures are the detection catalog's, the fluxes this image's
    np.testing.assert_array_equal(ours.kron_radius, ours_det.kron_radius)
    assert not np.allclose(ours.kron_flux, ours_det.kron_flux, equal_nan=True)


@pytest.mark.reference
def test_kron_cudasim_matches_photutils(kron_inputs):
    from photutils.segmentation import SourceCatalog as Ref

    data, _, conv, error, _, _ = kron_inputs
    sub = (slice(20, 52), slice(150, 190))
    small = detect_sources(conv[sub], 0.03, 4, backend="cpu")
    mask = np.zeros(data.shape, bool)
    mask[40:42, 160:170] = True
    kwargs = dict(convolved_data=conv[sub], error=error[sub], mask=mask[sub],
                  kron_params=(2.5, 1.4, 5.0))
    ref = Ref(data[sub], small.to_photutils(), **kwargs)
    ours = SourceCatalog(data[sub], small, backend="cudasim", **kwargs)
    assert np.count_nonzero(ours.kron_radius.value == 0) >= 1  # a circular aperture
    _compare(ref, ours, ["kron_radius", "kron_flux", "kron_flux_err"])


def test_ellipse_overlap_sums_to_ellipse_area():
    """The exact weights of a grid covering an ellipse add up to pi a b; a pixel wholly
    inside weighs 1, one outside 0; a circle through a pixel's corners covers its area."""
    ns = compile_namespace(_kron_math.KRON_FUNCTIONS, "cpu")
    a, b, theta = 4.3, 1.7, 0.61
    cos_m, sin_m = np.cos(-theta), np.sin(-theta)
    total = 0.0
    for j in range(-6, 6):
        for i in range(-6, 6):
            x0, y0 = i + 0.27, j - 0.41
            w = ns.ellipse_overlap(x0, y0, x0 + 1.0, y0 + 1.0, a, b, cos_m, sin_m)
            assert 0.0 <= w <= 1.0
            total += w
    np.testing.assert_allclose(total, np.pi * a * b, rtol=1e-13)
    assert ns.ellipse_overlap(-0.5, -0.5, 0.5, 0.5, a, b, cos_m, sin_m) == 1.0
    assert ns.ellipse_overlap(8.0, 8.0, 9.0, 9.0, a, b, cos_m, sin_m) == 0.0
    # unit circle and the square [0, 1]**2: a quarter disc
    np.testing.assert_allclose(ns.ellipse_overlap(0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0),
                               np.pi / 4, rtol=1e-14)


def test_kron_flux_of_a_flat_source_is_the_aperture_area():
    """A flat plateau wider than the Kron ellipse: kron_flux = level * pi a b exactly, with
    a b = (kron_params[0] * kron_radius)**2 * semimajor * semiminor."""
    yy, xx = np.mgrid[:61, :61]
    r2 = ((xx - 30.2) / 7.0) ** 2 + ((yy - 29.7) / 4.0) ** 2
    data = np.where(r2 <= 1.0, 5.0, 0.0)
    data += np.where(r2 <= 1.0, 0.0, 2.0)  # everything else is flat sky of 2
    segm = detect_sources(np.where(r2 <= 1.0, 1.0, 0.0), 0.5, 1, backend="cpu")
    cat = SourceCatalog(data, segm, kron_params=(1.0, 1.0), backend="cpu")
    scale = cat.kron_radius.value[0] * 1.0
    a = cat.semimajor_axis.value[0] * scale
    b = cat.semiminor_axis.value[0] * scale
    # same axis ratio as the plateau, reaching over a pixel diagonal beyond it
    assert a > 7.0 + 1.5 and b > 4.0 + 1.5 and a + 1.5 < 30
    # the aperture lies inside the image: sky 2 everywhere plus the plateau excess 3
    expected = 2.0 * np.pi * a * b + 3.0 * np.count_nonzero(r2 <= 1.0)
    np.testing.assert_allclose(cat.kron_flux[0], expected, rtol=1e-12)
    assert np.isnan(cat.kron_flux_err[0])  # no error array


def test_kron_flux_units_and_alias(kron_inputs):
    data, segm, conv, error, _, _ = kron_inputs
    cat = SourceCatalog(data * u.electron / u.s, segm, convolved_data=conv, error=error,
                        backend="cpu")
    assert cat.kron_flux.unit == u.electron / u.s
    np.testing.assert_array_equal(cat.kron_fluxerr, cat.kron_flux_err)
    assert cat.to_table(columns=["kron_fluxerr"]).colnames == ["kron_fluxerr"]
