"""The diffraction optics model behind the PSF library (hapgpu.simulate._optics), against
analytic results: the Airy pattern of a clear circular aperture, the obscured annulus, flux
conservation of the pixel and detector kernels, the passband quadrature."""

import math

import numpy as np
import pytest
from scipy.special import j1

from hapgpu.errors import InvalidParameterError
from hapgpu.simulate._optics import (
    DETECTOR_OPTICS,
    DetectorOptics,
    HstPupil,
    bandpass_wavelengths,
    pixel_psf,
)

#: A square detector of 0.01 arcsec pixels with its axes on V2/V3 (fine sampling).
FINE = DetectorOptics((0.01, 0.0, 0.0, 0.01))
CLEAR = HstPupil(obscuration=0.0, spider_width=0.0, pad_radius=0.0)
ARCSEC = math.pi / 180.0 / 3600.0


def _airy_peak(wavelength_a, scale_arcsec, obscuration=0.0):
    """Peak fraction of the light per pixel of side ``scale_arcsec`` (small pixels):
    ``pi D**2 (1 - eps**2) / (4 lambda**2)`` per steradian (Born & Wolf 8.5)."""
    lam = wavelength_a * 1e-10
    return math.pi * 2.4 ** 2 * (1.0 - obscuration ** 2) / (4.0 * lam ** 2) * (
        scale_arcsec * ARCSEC) ** 2


def test_clear_aperture_gives_the_airy_pattern():
    lam = 6000.0
    psf = pixel_psf(FINE, [lam], [1.0], 61, oversample=3, pupil=CLEAR, detector_kernel=False)
    c = 30
    # peak (pixel mean over a 0.01 arcsec pixel, 1/5 of lambda/D: 1.6 % below the point value)
    assert psf[c, c] == pytest.approx(_airy_peak(lam, 0.01), rel=0.03)
    # the profile along a row follows (2 J1(x) / x)**2, x = pi D theta / lambda
    theta = np.arange(1, 12) * 0.01 * ARCSEC
    x = math.pi * 2.4 * theta / (lam * 1e-10)
    expected = psf[c, c] * (2 * j1(x) / x) ** 2
    np.testing.assert_allclose(psf[c, c + 1:c + 12], expected, atol=0.02 * psf[c, c])
    # the first dark ring (1.22 lambda / D = 0.0629 arcsec) holds 83.8 % of the light
    yy, xx = np.indices(psf.shape) - c
    inside = np.hypot(yy, xx) * 0.01 <= 1.22 * lam * 1e-10 / 2.4 / ARCSEC
    assert psf[inside].sum() == pytest.approx(0.838, abs=0.02)


def test_central_obscuration_lowers_the_peak_as_the_annulus_area():
    lam = 6000.0
    annulus = HstPupil(obscuration=0.33, spider_width=0.0, pad_radius=0.0)
    psf = pixel_psf(FINE, [lam], [1.0], 41, oversample=3, pupil=annulus,
                    detector_kernel=False)
    assert psf[20, 20] == pytest.approx(_airy_peak(lam, 0.01, 0.33), rel=0.03)


def test_hst_pupil_clear_area():
    """1 - eps**2 less two vanes and three pads (their overlaps are small)."""
    pupil = HstPupil()
    n = 2001
    v = np.linspace(-1, 1, n)
    v2, v3 = np.meshgrid(v, v)
    area = pupil.transmission(v2, v3).sum() * (v[1] - v[0]) ** 2 / math.pi
    vanes = 2 * 2 * (1 - 0.33) * 0.022 / math.pi
    pads = 3 * 0.065 ** 2
    assert area == pytest.approx(1 - 0.33 ** 2 - vanes - pads, abs=3e-3)


@pytest.mark.parametrize("key", sorted(DETECTOR_OPTICS))
def test_detector_kernels_conserve_flux(key):
    optics = DETECTOR_OPTICS[key]
    assert optics.kernel_array.sum() == pytest.approx(1.0, abs=1e-12)
    wl, w = bandpass_wavelengths(8000.0, 300.0, 3)
    bare = pixel_psf(optics, wl, w, 41, oversample=3, detector_kernel=False)
    kern = pixel_psf(optics, wl, w, 41, oversample=3, detector_kernel=True)
    assert kern[5:-5, 5:-5].sum() == pytest.approx(bare[5:-5, 5:-5].sum(), rel=2e-3)
    assert kern.max() < bare.max() or optics.kernel_array[1, 1] == 1.0
    # most of the light lands in the stamp
    assert 0.93 < bare.sum() <= 1.0


def test_centre_offset_moves_the_light_centroid():
    psf = pixel_psf(DETECTOR_OPTICS["wfc3-ir"], [15000.0], [1.0], 41, centre=(-1 / 3, 0.25),
                    oversample=3, detector_kernel=False)
    yy, xx = np.indices(psf.shape) - 20
    core = np.hypot(yy, xx) <= 6
    cy = (psf * yy)[core].sum() / psf[core].sum()
    cx = (psf * xx)[core].sum() / psf[core].sum()
    assert (cy, cx) == pytest.approx((-1 / 3, 0.25), abs=0.05)


def test_bandpass_wavelengths():
    wl, w = bandpass_wavelengths(5000.0, 500.0, 5)
    assert w.sum() == pytest.approx(1.0) and (w > 0).all()
    # a top hat of RMS width 500 A: sqrt(3) * 500 either side
    assert wl.min() > 5000.0 - math.sqrt(3) * 500 and wl.max() < 5000.0 + math.sqrt(3) * 500
    unweighted = np.polynomial.legendre.leggauss(5)[1] / 2
    rms = math.sqrt(np.sum(unweighted * (wl - 5000.0) ** 2))
    assert rms == pytest.approx(500.0, rel=1e-6)
    with pytest.raises(InvalidParameterError, match="pivot"):
        bandpass_wavelengths(-1.0, 10.0)


def test_too_coarse_a_pupil_grid_is_refused():
    with pytest.raises(InvalidParameterError, match="repeats the PSF"):
        pixel_psf(DETECTOR_OPTICS["wfc3-uvis"], [3000.0], [1.0], 149, n_pupil=64)
