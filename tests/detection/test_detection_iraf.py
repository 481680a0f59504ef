"""IRAFStarFinder against photutils 3.

Tolerances: photutils sums the sky in the data's dtype with NumPy's pairwise summation, which
the kernel reproduces term for term (tested exactly below); everything after is float64, where
photutils uses matrix products and we use loops, so the columns agree to float64 rounding:
rtol 1e-10 (atol 1e-12 for values that can be ~0: roundness, orientation, mag).
"""

import warnings

import numpy as np
import pytest
from astropy import units as u

from hapgpu.detection import IRAFStarFinder, NoDetectionsWarning
from hapgpu.errors import InvalidInputError, InvalidParameterError
from hapgpu.kernels.detection import _star_math
from hapgpu.kernels.detection import starfind as kstar

COLUMNS = ["id", "x_centroid", "y_centroid", "fwhm", "sharpness", "roundness", "orientation",
           "n_pixels", "peak", "flux", "mag"]


def _values(column):
    return np.asarray(getattr(column, "value", column), dtype=float)


def _compare(ref, ours):
    assert ref is not None and ours is not None
    assert ours.colnames == ref.colnames == COLUMNS
    assert len(ours) == len(ref)
    assert ours["orientation"].unit == u.deg
    for name in COLUMNS:
        np.testing.assert_allclose(_values(ours[name]), _values(ref[name]), rtol=1e-10,
                                   atol=1e-12, err_msg=name)


@pytest.fixture(scope="module")
def star_image(field):
    img = field.data - field.sky
    img[100, 100] = np.nan
    return img


def _photutils_iraf(config, **deprecated):
    from astropy.utils.exceptions import AstropyDeprecationWarning
    from photutils.detection import IRAFStarFinder as Ref

    with warnings.catch_warnings():  # photutils 3 deprecates the photutils 2 keywords
        warnings.simplefilter("ignore", AstropyDeprecationWarning)
        return Ref(**config, **deprecated)


CONFIGS = [
    {"threshold": 0.05, "fwhm": 2.5},
    {"threshold": 0.03, "fwhm": 3.0, "min_separation": 0, "exclude_border": True,
     "sharpness_range": None, "roundness_range": (0.0, 0.5)},
    {"threshold": 0.05, "fwhm": 4.0, "sigma_radius": 2.5, "n_brightest": 20, "peak_max": 3.0,
     "roundness_range": None},
    # a 25 x 25 kernel: the sky sum is split pairwise three times
    {"threshold": 0.05, "fwhm": 20.0, "sharpness_range": None, "roundness_range": None},
]


@pytest.mark.reference
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("config", CONFIGS, ids=range(len(CONFIGS)))
def test_iraf_matches_photutils(star_image, config, dtype):
    img = star_image.astype(dtype)
    ref = _photutils_iraf(config).find_stars(img)
    ours = IRAFStarFinder(**config, backend="cpu").find_stars(img)
    _compare(ref, ours)


@pytest.mark.reference
def test_iraf_photutils2_keywords_and_user_positions(star_image, field):
    """minsep_fwhm, sharplo/hi, roundlo/hi, brightest, peakmax (photutils 2 names), a
    threshold image, a mask and given positions (no threshold applies to them)."""
    config = {"threshold": np.full(star_image.shape, 0.04), "fwhm": 2.5}
    old = dict(minsep_fwhm=1.5, sharplo=0.4, sharphi=1.9, roundlo=0.0, roundhi=0.3,
               brightest=30, peakmax=4.0)
    mask = np.zeros(star_image.shape, bool)
    mask[:, :60] = True
    ref = _photutils_iraf(config, **old).find_stars(star_image, mask=mask)
    ours = IRAFStarFinder(**config, **old, backend="cpu").find_stars(star_image, mask=mask)
    _compare(ref, ours)
    assert np.all(ours["x_centroid"] > 58) and len(ours) == 30
    xy = field.stars[:40, :2] + 0.3  # non-integer positions: cut-outs at the rounded ones
    config = {"threshold": 1e9, "fwhm": 2.5, "roundness_range": None,
              "sharpness_range": None}
    ref = _photutils_iraf(config, xycoords=xy).find_stars(star_image)
    ours = IRAFStarFinder(**config, xycoords=xy, backend="cpu").find_stars(star_image)
    _compare(ref, ours)


@pytest.mark.reference
@pytest.mark.parametrize("fwhm", [2.5, 12.0])
def test_iraf_cudasim_matches_photutils(star_image, field, fwhm):
    x, y = field.stars[np.argmax(field.stars[:, 2]), :2].astype(int)
    sub = star_image[max(y - 20, 0):y + 20, max(x - 20, 0):x + 20]
    config = {"threshold": 0.02, "fwhm": fwhm, "roundness_range": None,
              "sharpness_range": None}
    _compare(_photutils_iraf(config).find_stars(sub),
             IRAFStarFinder(**config, backend="cudasim").find_stars(sub))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pairwise_sky_sum_is_numpys_sum(dtype):
    """The kernel's sky equals photutils' ``np.sum(masked cut-out) / n_sky`` bit for bit, for
    cut-outs below, at and several halvings above NumPy's 128-term pairwise block."""
    rng = np.random.default_rng(7)
    for side in (3, 5, 11, 13, 17, 25, 31, 43):
        kmask = (rng.random((side, side)) < 0.4).astype(np.float64)
        n_sky = int(np.count_nonzero(kmask == 0))
        data = (rng.normal(size=(side + 4, side + 6)) * 1e3).astype(dtype)
        x0, y0 = 3, 2
        stats = kstar.iraf_measure_cpu(data, np.array([x0 + side // 2]),
                                       np.array([y0 + side // 2]), kmask, n_sky,
                                       dtype == np.float32)
        cutout = data[y0:y0 + side, x0:x0 + side]
        expected = np.sum(cutout * ~kmask.astype(bool)) / np.count_nonzero(kmask == 0)
        assert stats[0, _star_math.I_SKY] == expected, (side, dtype)


def test_iraf_analytic_gaussian_star():
    """A noiseless circular Gaussian on a flat sky, measured from the definitions: sky = mean
    of the kernel box outside the footprint, c = max(pixel - sky, 0) on the footprint, and
    the moments of c."""
    yy, xx = np.mgrid[:41, :41]
    sigma = 2.0
    img = 10.0 + 100.0 * np.exp(-((xx - 20.0) ** 2 + (yy - 20.0) ** 2) / (2 * sigma ** 2))
    finder = IRAFStarFinder(threshold=1.0, fwhm=2.3548 * sigma, sigma_radius=2.5,
                            sharpness_range=None, exclude_border=True, backend="cpu")
    table = finder.find_stars(img)
    assert len(table) == 1
    footprint = finder.kernel.mask.astype(bool)
    half = footprint.shape[0] // 2
    box = img[20 - half:21 + half, 20 - half:21 + half]
    sky = box[~footprint].mean()
    c = np.where(footprint, np.maximum(box - sky, 0.0), 0.0)
    offsets = np.arange(-half, half + 1.0)
    mu_xx = (c * offsets[None, :] ** 2).sum() / c.sum()
    assert table["x_centroid"][0] == pytest.approx(20.0, abs=1e-12)
    assert table["y_centroid"][0] == pytest.approx(20.0, abs=1e-12)
    assert table["roundness"][0] == pytest.approx(0.0, abs=1e-12)
    assert table["flux"][0] == pytest.approx(c.sum(), rel=1e-12)
    assert table["peak"][0] == pytest.approx(100.0 + 10.0 - sky, rel=1e-12)
    assert table["fwhm"][0] == pytest.approx(2.0 * np.sqrt(np.log(2.0) * 2 * mu_xx), rel=1e-12)
    assert table["n_pixels"][0] == np.count_nonzero(c)


def test_iraf_validation_and_no_detection(star_image):
    with pytest.raises(InvalidParameterError):
        IRAFStarFinder(0.05, fwhm=(2.0, 3.0))
    with pytest.raises(InvalidParameterError):
        IRAFStarFinder(0.05, 2.5, minsep_fwhm=-1)
    with pytest.raises(InvalidParameterError):
        IRAFStarFinder(0.05, 2.5, n_brightest=0)
    with pytest.raises(InvalidInputError):
        IRAFStarFinder(0.05, 2.5, xycoords=[1.0, 2.0])
    with pytest.warns(NoDetectionsWarning):
        assert IRAFStarFinder(1e6, 2.5, backend="cpu").find_stars(star_image) is None
    text = repr(IRAFStarFinder(0.05, 2.5, minsep_fwhm=1.5, backend="cpu"))
    assert text.startswith("IRAFStarFinder(") and "min_separation=4" in text
