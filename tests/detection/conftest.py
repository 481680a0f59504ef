"""Shared fixtures of the detection tests: small synthetic fields (session-scoped)."""

import numpy as np
import pytest
from scipy import ndimage

from hapgpu.detection._synthetic import make_field


@pytest.fixture(scope="session")
def field():
    """256 x 256 field: 150 stars, 30 galaxies, a 6-pixel empty border."""
    return make_field((256, 256), n_stars=150, n_galaxies=30, border=6, seed=11)


@pytest.fixture(scope="session")
def crowded():
    """384 x 384 crowded field (about 900 sources) for deblending."""
    return make_field((384, 384), n_stars=700, n_galaxies=200, star_flux=(1.0, 400.0),
                      seed=12)


def gaussian_kernel(fwhm, size=11):
    """Normalised Gaussian kernel as HAP builds it (astropy Gaussian2DKernel, normalised)."""
    sigma = fwhm / 2.3548200450309493
    y, x = np.mgrid[:size, :size] - size // 2
    k = np.exp(-0.5 * (x * x + y * y) / sigma ** 2)
    return k / k.sum()


@pytest.fixture(scope="session")
def detection(field):
    """(convolved image, threshold) of the field, as the HAP segment catalog prepares them."""
    data = field.data - field.sky
    conv = ndimage.convolve(data.astype(np.float64), gaussian_kernel(2.5), mode="constant")
    return conv.astype(np.float32), 3.0 * 0.01


@pytest.fixture(scope="session")
def crowded_detection(crowded):
    data = crowded.data - crowded.sky
    conv = ndimage.convolve(data.astype(np.float64), gaussian_kernel(2.5), mode="constant")
    return conv.astype(np.float32), 3.0 * 0.01
