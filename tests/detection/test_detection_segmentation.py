"""detect_sources / deblend_sources against photutils, and the SegmentationImage API."""

import warnings

import numpy as np
import pytest

from hapgpu.detection import (NoDetectionsWarning, SegmentationImage, deblend_sources,
                              detect_sources)
from hapgpu.errors import InvalidInputError, InvalidParameterError


def _photutils_detect(data, threshold, n_pixels, **kwargs):
    from photutils.segmentation import detect_sources as ref

    return ref(data, threshold, n_pixels=n_pixels, **kwargs)


@pytest.mark.reference
@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("n_pixels", [1, 6])
def test_detect_sources_is_identical_to_photutils(detection, field, connectivity, n_pixels):
    conv, threshold = detection
    mask = ~field.footprint
    ref = _photutils_detect(conv, threshold, n_pixels, connectivity=connectivity, mask=mask)
    ours = detect_sources(conv, threshold, n_pixels, connectivity=connectivity, mask=mask,
                          backend="cpu")
    np.testing.assert_array_equal(ours.data, ref.data)
    np.testing.assert_array_equal(ours.labels, ref.labels)
    np.testing.assert_array_equal(ours.areas, ref.areas)
    assert ours.slices == ref.slices
    assert ours.n_labels == ours.nlabels == ref.n_labels


@pytest.mark.reference
def test_detect_sources_threshold_image_and_dtype_rules(detection):
    conv, threshold = detection
    thr_image = np.full(conv.shape, threshold) * np.linspace(0.5, 2, conv.shape[1])
    for thr in (thr_image, np.float64(threshold), float(np.float32(threshold))):
        ref = _photutils_detect(conv, thr, 3)
        ours = detect_sources(conv, thr, npixels=3, backend="cpu")
        np.testing.assert_array_equal(ours.data, ref.data)


@pytest.mark.reference
@pytest.mark.parametrize("connectivity", [4, 8])
def test_detect_sources_cudasim(detection, connectivity):
    conv, threshold = detection
    sub = conv[100:140, 60:110]
    ref = _photutils_detect(sub, threshold, 2, connectivity=connectivity)
    ours = detect_sources(sub, threshold, 2, connectivity=connectivity, backend="cudasim")
    np.testing.assert_array_equal(ours.data, ref.data)
    assert ours.slices == ref.slices


def test_detect_sources_nothing_found_warns():
    with pytest.warns(NoDetectionsWarning):
        assert detect_sources(np.zeros((20, 20)), 1.0, 1, backend="cpu") is None


def test_detect_sources_validation():
    data = np.zeros((10, 10))
    with pytest.raises(InvalidParameterError):
        detect_sources(data, 1.0, 0)
    with pytest.raises(InvalidParameterError):
        detect_sources(data, 1.0, 2.5)
    with pytest.raises(InvalidParameterError):
        detect_sources(data, 1.0, 2, connectivity=6)
    with pytest.raises(InvalidInputError):
        detect_sources(data, 1.0, 2, mask=np.ones((10, 10), bool))
    with pytest.raises(InvalidInputError):
        detect_sources(data, np.zeros((5, 5)), 2)


def test_segmentation_image_api():
    data = np.array([[1, 1, 0, 0, 4],
                     [1, 0, 0, 4, 4],
                     [0, 0, 7, 0, 0],
                     [7, 7, 7, 0, 0]], dtype=np.int32)
    segm = SegmentationImage(data)
    np.testing.assert_array_equal(segm.labels, [1, 4, 7])
    np.testing.assert_array_equal(segm.areas, [3, 3, 4])
    assert segm.slices[2] == (slice(2, 4), slice(0, 3))
    assert segm.bbox[1].ixmin == 3 and segm.bbox[1].iymax == 2
    assert segm.max_label == 7 and not segm.is_consecutive
    np.testing.assert_array_equal(segm.missing_labels, [2, 3, 5, 6])
    assert segm.get_index(4) == 1
    copy = segm.copy()
    copy.relabel_consecutive()
    np.testing.assert_array_equal(copy.labels, [1, 2, 3])
    copy.remove_label(2, relabel=True)
    np.testing.assert_array_equal(np.unique(copy.data), [0, 1, 2])
    copy.keep_labels([1])
    np.testing.assert_array_equal(copy.labels, [1])
    with pytest.raises(InvalidParameterError):
        segm.check_labels([2])
    assert repr(segm) == "SegmentationImage(shape=(4, 5), n_labels=3)"
    np.testing.assert_array_equal(np.asarray(segm), data)


@pytest.mark.reference
def test_segmentation_image_round_trips_photutils():
    from photutils.segmentation import SegmentationImage as Ref

    data = np.array([[0, 2, 2], [3, 0, 0]], dtype=np.int32)
    ours = SegmentationImage(Ref(data))
    np.testing.assert_array_equal(ours.data, data)
    back = ours.to_photutils()
    assert isinstance(back, Ref)
    np.testing.assert_array_equal(back.data, data)


# ------------------------------------------------------------------------------ deblending
def _photutils_deblend(conv, segm, n_pixels, **kwargs):
    from photutils.segmentation import deblend_sources as ref

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ref(conv, segm, n_pixels=n_pixels, progress_bar=False, **kwargs)


def _matched_fraction(ref, ours):
    """Fraction of photutils' deblended segments reproduced exactly (same pixel set)."""
    matched = 0
    for label, slc in zip(ref.labels, ref.slices):
        region = ref.data[slc] == label
        values = np.unique(ours.data[slc][region])
        if values.size == 1 and np.array_equal(ours.data[slc] == values[0], region):
            matched += 1
    return matched / ref.n_labels


@pytest.fixture(scope="module")
def crowded_segm(crowded_detection):
    conv, threshold = crowded_detection
    return _photutils_detect(conv, threshold, 6)


@pytest.mark.reference
@pytest.mark.parametrize("kwargs", [
    {"n_levels": 32, "contrast": 0.001},
    {"n_levels": 64, "contrast": 0.001, "mode": "linear"},
    {"n_levels": 16, "contrast": 0.01, "mode": "sinh"},
], ids=["exponential", "linear", "sinh"])
def test_deblend_matches_photutils_on_crowded_field(crowded_detection, crowded_segm, kwargs):
    conv, _ = crowded_detection
    ref = _photutils_deblend(conv, crowded_segm, 6, **kwargs)
    ours = deblend_sources(conv, crowded_segm, 6, backend="cpu", **kwargs)
    assert ours.n_labels > crowded_segm.n_labels
    assert _matched_fraction(ref, ours) >= 0.99
    np.testing.assert_array_equal(ours.data, ref.data)
    assert ours._deblend_label_map.keys() == ref._deblend_label_map.keys()
    for key, value in ref._deblend_label_map.items():
        np.testing.assert_array_equal(ours._deblend_label_map[key], value)


@pytest.mark.reference
def test_deblend_selected_labels_and_connectivity(crowded_detection):
    conv, threshold = crowded_detection
    segm4 = _photutils_detect(conv, threshold, 6, connectivity=4)
    labels = segm4.labels[segm4.areas > 100][::-1]
    ref = _photutils_deblend(conv, segm4, 5, labels=labels, connectivity=4, n_levels=64)
    ours = deblend_sources(conv, segm4, npixels=5, labels=labels, connectivity=4, nlevels=64,
                           backend="cpu")
    np.testing.assert_array_equal(ours.data, ref.data)


def test_deblend_two_blended_stars():
    y, x = np.mgrid[:30, :40]
    img = (100 * np.exp(-((x - 14) ** 2 + (y - 15) ** 2) / 8.0)
           + 60 * np.exp(-((x - 24) ** 2 + (y - 15) ** 2) / 8.0)).astype(np.float32)
    segm = detect_sources(img, 1.0, 5, backend="cpu")
    assert segm.n_labels == 1
    out = deblend_sources(img, segm, 5, backend="cpu")
    assert out.n_labels == 2
    assert out.data[15, 14] != out.data[15, 24]
    np.testing.assert_array_equal(out._deblend_label_map[1], [1, 2])
    # contrast 1 leaves the image alone; a high contrast removes the faint child
    assert deblend_sources(img, segm, 5, contrast=1.0).n_labels == 1
    assert deblend_sources(img, segm, 5, contrast=0.45).n_labels == 1


@pytest.fixture(scope="module")
def gapped_segm():
    """Four sources, one of them a blended pair, with label 2 removed: labels {1, 3, 4}."""
    y, x = np.mgrid[:40, :60]

    def star(x0, y0, flux):
        return flux * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / 8.0)

    img = (star(8, 8, 80) + star(30, 8, 50) + star(50, 10, 70) + star(14, 28, 100)
           + star(23, 28, 60)).astype(np.float32)
    segm = detect_sources(img, 1.0, 5, backend="cpu")
    assert segm.n_labels == 4
    segm.remove_label(2)
    np.testing.assert_array_equal(segm.labels, [1, 3, 4])
    return img, segm


@pytest.mark.reference
def test_deblend_relabel_on_every_path_matches_photutils(gapped_segm):
    img, segm = gapped_segm
    # a real deblending: photutils relabels, and so do we, label for label
    ref = _photutils_deblend(img, segm.to_photutils(), 5, contrast=0.001)
    ours = deblend_sources(img, segm, 5, contrast=0.001, backend="cpu")
    np.testing.assert_array_equal(ours.data, ref.data)
    np.testing.assert_array_equal(ours.labels, np.arange(1, ours.n_labels + 1))
    assert ours.n_labels == segm.n_labels + 1
    assert ours._deblend_label_map.keys() == ref._deblend_label_map.keys()
    for key, value in ref._deblend_label_map.items():
        np.testing.assert_array_equal(ours._deblend_label_map[key], value)
    # contrast=1 deblends nothing; photutils then returns its input labels {1, 3, 4} as they
    # are, while relabel=True promises 1..n: equal to photutils' result renumbered
    ref = _photutils_deblend(img, segm.to_photutils(), 5, contrast=1.0)
    np.testing.assert_array_equal(ref.labels, [1, 3, 4])
    ours = deblend_sources(img, segm, 5, contrast=1.0, relabel=True, backend="cpu")
    np.testing.assert_array_equal(ours.labels, [1, 2, 3])
    ref.relabel_consecutive()
    np.testing.assert_array_equal(ours.data, ref.data)
    kept = deblend_sources(img, segm, 5, contrast=1.0, relabel=False, backend="cpu")
    np.testing.assert_array_equal(kept.data, segm.data)
    np.testing.assert_array_equal(segm.labels, [1, 3, 4])  # the input is left alone


def test_deblend_relabel_when_nothing_is_large_enough(gapped_segm):
    """No source has 2 * n_pixels pixels: nothing is deblended, labels still become 1..n."""
    img, segm = gapped_segm
    out = deblend_sources(img, segm, 10_000, backend="cpu")
    np.testing.assert_array_equal(out.labels, [1, 2, 3])
    np.testing.assert_array_equal(out.data > 0, segm.data > 0)
    np.testing.assert_array_equal(deblend_sources(img, segm, 10_000, relabel=False).data,
                                  segm.data)


def test_deblend_validation():
    segm = SegmentationImage(np.ones((5, 5), np.int32))
    data = np.ones((5, 5))
    with pytest.raises(InvalidParameterError):
        deblend_sources(data, segm, 2, n_levels=0)
    with pytest.raises(InvalidParameterError):
        deblend_sources(data, segm, 2, contrast=2.0)
    with pytest.raises(InvalidParameterError):
        deblend_sources(data, segm, 2, mode="log")
    with pytest.raises(InvalidInputError):
        deblend_sources(np.ones((4, 4)), segm, 2)


@pytest.mark.slow
@pytest.mark.reference
def test_deblend_large_crowded_field_matches_photutils():
    """1024 x 1024 field with 6000 sources, HAP's deblending parameters."""
    from scipy import ndimage

    from hapgpu.detection._synthetic import make_field

    from .conftest import gaussian_kernel

    field = make_field((1024, 1024), n_stars=4800, n_galaxies=1200, star_flux=(1.0, 400.0),
                       seed=31)
    conv = ndimage.convolve((field.data - field.sky).astype(np.float64), gaussian_kernel(2.5),
                            mode="constant").astype(np.float32)
    segm = detect_sources(conv, 0.03, 6, backend="cpu")
    ref = _photutils_deblend(conv, segm.to_photutils(), 6, n_levels=64, contrast=0.001)
    ours = deblend_sources(conv, segm, 6, n_levels=64, contrast=0.001, backend="cpu")
    assert _matched_fraction(ref, ours) >= 0.99
