"""Background2D against photutils (meshes and full maps to float32 precision)."""

import warnings

import numpy as np
import pytest

from hapgpu.detection import (Background2D, MADStdBackgroundRMS, MedianBackground,
                              SExtractorBackground, StdBackgroundRMS)
from hapgpu.errors import InvalidInputError, InvalidParameterError

ATTRS = ["background_mesh", "background_rms_mesh", "background", "background_rms",
         "background_median", "background_rms_median"]


@pytest.fixture(scope="module")
def sky_field(field):
    y, x = np.mgrid[:field.data.shape[0], :field.data.shape[1]]
    data = field.data + (0.02 * np.sin(x / 40.0) + y * 1e-4).astype(np.float32)
    data[~field.footprint] = 0.0
    return data, ~field.footprint


def _photutils(data, **kwargs):
    from photutils import background as pb

    ests = {"sextractor": pb.SExtractorBackground(), "median": pb.MedianBackground(),
            "std": pb.StdBackgroundRMS(), "madstd": pb.MADStdBackgroundRMS()}
    kwargs["bkg_estimator"] = ests[kwargs.pop("bkg", "sextractor")]
    kwargs["bkg_rms_estimator"] = ests[kwargs.pop("rms", "std")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pb.Background2D(data, **kwargs)


def _ours(data, backend, **kwargs):
    ests = {"sextractor": SExtractorBackground(), "median": MedianBackground(),
            "std": StdBackgroundRMS(), "madstd": MADStdBackgroundRMS()}
    kwargs["bkg_estimator"] = ests[kwargs.pop("bkg", "sextractor")]
    kwargs["bkg_rms_estimator"] = ests[kwargs.pop("rms", "std")]
    return Background2D(data, backend=backend, **kwargs)


CONFIGS = [
    {"box_size": 27},
    {"box_size": (25, 31), "exclude_percentile": 25.0, "coverage": True},
    {"box_size": 13, "filter_size": 5, "exclude_percentile": 50.0, "coverage": True,
     "mask": True},
    {"box_size": 20, "bkg": "median", "rms": "madstd", "filter_threshold": 0.05},
]


def _compare(ref, ours):
    for attr in ATTRS:
        r = np.asarray(getattr(ref, attr))
        o = np.asarray(getattr(ours, attr))
        assert o.dtype == r.dtype, attr
        scale = max(float(np.nanmax(np.abs(r))), 1e-30)
        np.testing.assert_allclose(o, r, rtol=0, atol=8 * np.finfo(np.float32).eps * scale,
                                   err_msg=attr)


@pytest.mark.reference
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: str(c["box_size"]))
def test_background2d_matches_photutils(sky_field, config):
    data, coverage = sky_field
    kwargs = dict(config)
    if kwargs.pop("coverage", False):
        kwargs["coverage_mask"] = coverage
    if kwargs.pop("mask", False):
        kwargs["mask"] = np.random.default_rng(1).random(data.shape) < 0.05
    ref = _photutils(data, **dict(kwargs))
    ours = _ours(data, "cpu", **dict(kwargs))
    _compare(ref, ours)


@pytest.mark.reference
def test_background2d_cudasim_matches_photutils(sky_field):
    data, coverage = sky_field
    data, coverage = data[:70, :80], coverage[:70, :80]
    kwargs = {"box_size": 16, "coverage_mask": coverage, "exclude_percentile": 25.0}
    _compare(_photutils(data, **dict(kwargs)), _ours(data, "cudasim", **dict(kwargs)))


def test_background2d_constant_image_and_repr():
    bkg = Background2D(np.full((60, 64), 3.0, np.float32), 16, backend="cpu")
    np.testing.assert_array_equal(bkg.background, np.full((60, 64), 3.0, np.float32))
    np.testing.assert_array_equal(bkg.background_rms, 0)
    assert "box_size=(16, 16)" in repr(bkg)


def test_background2d_errors():
    data = np.ones((40, 40), np.float32)
    with pytest.raises(InvalidInputError):
        Background2D(np.full((40, 40), np.nan), 10)
    with pytest.raises(InvalidInputError):
        Background2D(data, 10, mask=np.ones((40, 40), bool))
    with pytest.raises(InvalidParameterError):
        Background2D(data, 10, filter_size=4)
    with pytest.raises(InvalidParameterError):
        Background2D(data, 10, exclude_percentile=120)
    with pytest.raises(InvalidInputError):  # every box rejected
        Background2D(data, 10, mask=np.random.default_rng(0).random((40, 40)) < 0.5,
                     exclude_percentile=0)
