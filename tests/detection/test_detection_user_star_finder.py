"""user_star_finder against drizzlepac 3.11's haputils.deconvolve_utils.UserStarFinder.

drizzlepac's class (called as HAP's point catalog calls it: ``UserStarFinder(fwhm,
coords=peaks, threshold=1e-10, sharplo=0.4, sharphi=0.9)(data, mask=mask)``) reads the
``find_peaks`` table's ``x_peak``/``y_peak`` and writes photutils-1 column names itself, so no
shim is needed. Tolerances: every column is float64 arithmetic on the same values in the same
order (rtol 1e-12), except drizzlepac's ``roundness1``, whose quadrant sums stay in the data's
dtype: for float32 data it carries float32 rounding of sums of <= 49 terms, below
2 * 49 * eps32 ~ 1.2e-5 of ``sum |conv|``, hence atol 2e-5 (|roundness1| <= 2).
"""

import numpy as np
import pytest

from hapgpu.detection import (
    DAOStarFinder,
    NoDetectionsWarning,
    find_peaks,
    user_star_finder,
)
from hapgpu.errors import InvalidInputError

CONFIGS = [
    {"threshold": 1e-10, "sharplo": 0.4, "sharphi": 0.9},  # HAP's call
    {"threshold": 1e-10, "brightest": 15, "peakmax": 2.0, "roundlo": -0.5, "roundhi": 0.5,
     "sky": 0.01},
    {"threshold": 2e-3, "ratio": 0.7, "theta": 25.0, "sigma_radius": 2.0},
]


@pytest.fixture(scope="module")
def peak_image(field):
    img = field.data - field.sky
    img[100, 100] = np.nan
    peaks = find_peaks(img, 0.1, box_size=11, backend="cpu")
    # a peak whose cut-out leaves the image, and one on the NaN pixel's cut-out
    peaks.add_row([len(peaks) + 1, 1, 128, 1.0])
    peaks.add_row([len(peaks) + 1, 101, 101, 1.0])
    return img, peaks


def _compare(ref, ours, float32):
    assert ref is not None and ours is not None
    assert ours.colnames == ref.colnames
    assert len(ours) == len(ref)
    for name in ref.colnames:
        a, b = np.asarray(ref[name], dtype=float), np.asarray(ours[name], dtype=float)
        atol = 2e-5 if (float32 and name == "roundness1") else 0.0
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=atol, err_msg=name)


@pytest.mark.reference
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("config", CONFIGS, ids=range(len(CONFIGS)))
def test_user_star_finder_matches_drizzlepac(peak_image, config, dtype):
    from drizzlepac.haputils.deconvolve_utils import UserStarFinder

    img, peaks = peak_image
    img = img.astype(dtype)
    mask = np.zeros(img.shape, bool)  # drizzlepac ignores it with coords
    mask[:, :128] = True
    ref = UserStarFinder(fwhm=2.5, coords=peaks, **config)(img, mask=mask)
    ours = user_star_finder(img, peaks, 2.5, **config, backend="cpu")
    _compare(ref, ours, dtype == np.float32)
    xy = np.transpose([peaks["x_peak"], peaks["y_peak"]])
    _compare(ref, user_star_finder(img, xy, 2.5, **config, backend="cpu"),
             dtype == np.float32)


@pytest.mark.reference
def test_user_star_finder_differs_from_photutils_xycoords(peak_image):
    """photutils' xycoords path measures the convolved image and keeps other stars: the two
    are not interchangeable, which is why user_star_finder exists."""
    img, peaks = peak_image
    xy = np.transpose([peaks["x_peak"], peaks["y_peak"]]).astype(float)
    ours = user_star_finder(img, peaks, 2.5, sharplo=0.4, sharphi=0.9, backend="cpu")
    dao = DAOStarFinder(1e-10, 2.5, xycoords=xy, sharplo=0.4, sharphi=0.9,
                        backend="cpu").find_stars(img)
    assert len(ours) != len(dao)


@pytest.mark.reference
def test_user_star_finder_cudasim_matches_drizzlepac(peak_image):
    from drizzlepac.haputils.deconvolve_utils import UserStarFinder

    img, peaks = peak_image
    img = img.astype(np.float64)
    few = peaks[:12]
    ref = UserStarFinder(fwhm=2.5, coords=few, threshold=1e-10, sharplo=0.4,
                         sharphi=0.9)(img)
    ours = user_star_finder(img, few, 2.5, sharplo=0.4, sharphi=0.9, backend="cudasim")
    _compare(ref, ours, False)


def test_user_star_finder_symmetric_star_and_errors():
    """A symmetric star on an integer pixel: centroid on the pixel, roundness1 0, flux the
    peak over the effective threshold; bad coords are rejected."""
    yy, xx = np.mgrid[:31, :31]
    img = 50.0 * np.exp(-((xx - 15) ** 2 + (yy - 15) ** 2) / 4.5)
    table = user_star_finder(img, [[15, 15]], 2.5, threshold=1e-3, backend="cpu")
    assert len(table) == 1
    assert table["xcentroid"][0] == pytest.approx(15.0, abs=1e-12)
    assert table["ycentroid"][0] == pytest.approx(15.0, abs=1e-12)
    assert table["roundness1"][0] == pytest.approx(0.0, abs=1e-14)
    from hapgpu.detection import StarFinderKernel

    rel_err = StarFinderKernel(2.5).rel_err
    assert table["flux"][0] == pytest.approx(50.0 / (1e-3 * rel_err), rel=1e-14)
    with pytest.raises(InvalidInputError):
        user_star_finder(img, [[15.5, 15]], 2.5, backend="cpu")
    with pytest.warns(NoDetectionsWarning):
        assert user_star_finder(img, [[0, 0]], 2.5, backend="cpu") is None
