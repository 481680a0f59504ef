"""DAOStarFinder and find_peaks against photutils (positions within 1e-4 pixel)."""

import numpy as np
import pytest

from hapgpu.detection import DAOStarFinder, NoDetectionsWarning, StarFinderKernel, find_peaks
from hapgpu.errors import InvalidInputError, InvalidParameterError

COLUMNS = ["x_centroid", "y_centroid", "sharpness", "roundness1", "roundness2", "peak", "flux",
           "mag", "daofind_mag", "n_pixels", "id"]


def _compare(ref, ours):
    assert ref is not None and ours is not None
    assert len(ours) == len(ref)
    for name in COLUMNS:
        a = np.asarray(ref[name], dtype=float)
        b = np.asarray(ours[name], dtype=float)
        if name in ("x_centroid", "y_centroid"):
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-4, err_msg=name)
        else:  # photutils sums float32 cut-outs in float32
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.fixture(scope="module")
def star_image(field):
    img = field.data - field.sky
    img[100, 100] = np.nan
    return img


CONFIGS = [
    {"threshold": 0.05, "fwhm": 2.5},
    {"threshold": 0.03, "fwhm": 2.5, "min_separation": 0, "exclude_border": True},
    {"threshold": 0.05, "fwhm": 3.5, "ratio": 0.7, "theta": 30.0, "n_brightest": 40,
     "peak_max": 2.0},
    {"threshold": 0.02, "fwhm": 2.5, "sharpness_range": (0.3, 0.9), "roundness_range": None},
]


@pytest.mark.reference
@pytest.mark.parametrize("config", CONFIGS, ids=range(len(CONFIGS)))
def test_daofind_matches_photutils(star_image, config):
    from photutils.detection import DAOStarFinder as Ref

    ref = Ref(**config).find_stars(star_image)
    ours = DAOStarFinder(**config, backend="cpu").find_stars(star_image)
    _compare(ref, ours)


@pytest.mark.reference
def test_daofind_cudasim_matches_photutils(star_image, field):
    from photutils.detection import DAOStarFinder as Ref

    x, y = field.stars[np.argmax(field.stars[:, 2]), :2].astype(int)
    sub = star_image[max(y - 20, 0):y + 20, max(x - 20, 0):x + 20]
    config = {"threshold": 0.05, "fwhm": 2.5}
    _compare(Ref(**config).find_stars(sub),
             DAOStarFinder(**config, backend="cudasim").find_stars(sub))


@pytest.mark.reference
def test_user_star_finder_positions(star_image):
    """Explicit positions (drizzlepac's UserStarFinder: sharplo/sharphi, tiny threshold)."""
    from photutils.detection import DAOStarFinder as Ref

    found = Ref(threshold=0.05, fwhm=2.5).find_stars(star_image)
    xy = np.column_stack([found["x_centroid"], found["y_centroid"]])[:40] + 0.3
    ref = Ref(threshold=1e-10, fwhm=2.5, xycoords=xy, sharpness_range=(0.4, 0.9)).find_stars(
        star_image)
    ours = DAOStarFinder(threshold=1e-10, fwhm=2.5, xycoords=xy, sharplo=0.4, sharphi=0.9,
                         backend="cpu").find_stars(star_image)
    _compare(ref, ours)


@pytest.mark.reference
@pytest.mark.parametrize("kwargs", [{"box_size": 5}, {"min_separation": 4.3},
                                    {"footprint": np.ones((3, 3), bool)},
                                    {"box_size": 11, "border_width": 7, "n_peaks": 25}])
def test_find_peaks_matches_photutils(star_image, kwargs):
    from photutils.detection import find_peaks as ref_peaks

    ref = ref_peaks(star_image, 0.1, **kwargs)
    ours = find_peaks(star_image, 0.1, backend="cpu", **kwargs)
    for col in ("x_peak", "y_peak", "peak_value"):
        np.testing.assert_array_equal(ours[col], ref[col])


def test_kernel_properties_and_errors():
    kernel = StarFinderKernel(3.0)
    assert kernel.shape == (5, 5) and abs(kernel.data.sum()) < 1e-12
    with pytest.raises(InvalidParameterError):
        StarFinderKernel(-1.0)
    with pytest.raises(InvalidParameterError):
        DAOStarFinder(1.0, 2.0, n_brightest=0)
    with pytest.raises(InvalidInputError):
        DAOStarFinder(1.0, 2.0, xycoords=[1.0, 2.0])
    assert repr(DAOStarFinder(1.0, 2.0)).startswith("DAOStarFinder(threshold=1.0, fwhm=2.0")


def test_no_detection_warns():
    with pytest.warns(NoDetectionsWarning):
        assert DAOStarFinder(10.0, 2.0, backend="cpu").find_stars(np.zeros((30, 30))) is None
    with pytest.warns(NoDetectionsWarning):
        assert find_peaks(np.eye(20), 5.0, backend="cpu") is None
    with pytest.warns(NoDetectionsWarning, match="constant"):
        assert find_peaks(np.ones((20, 20)), 0.5, backend="cpu") is None
