"""Rendering: kernels against analytic truth, and stars landing where the full WCS puts them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from hapgpu.kernels.render import (
    add_gaussians,
    add_point_sources,
    bleed_columns,
    deposit_tracks,
    good_pixel_statistics,
    read_out,
)
from hapgpu.simulate import make_psf, simulate_visit
from hapgpu.simulate._profiles import sersic_mixture

from ._simulate_helpers import measure_stars

# ----------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("sigma", [0.45, 0.8, 2.0])
def test_point_source_flux_and_centroid_are_exact(sigma):
    image = np.zeros((64, 64))
    x, y = np.array([30.37]), np.array([25.81])
    add_point_sources(image, x, y, np.array([1000.0]), np.array([sigma]), np.array([1.0]),
                      int(np.ceil(8 * sigma)))
    assert image.sum() == pytest.approx(1000.0, rel=1e-9)
    # The pixel-integrated Gaussian's first moment equals its centre up to aliasing, whose
    # amplitude is bounded by the first Fourier harmonic exp(-2 pi^2 sigma^2) / pi.
    tolerance = np.exp(-2.0 * np.pi**2 * sigma**2) / np.pi + 1e-9
    yy, xx = np.indices(image.shape)
    assert (image * xx).sum() / image.sum() == pytest.approx(30.37, abs=tolerance)
    assert (image * yy).sum() / image.sum() == pytest.approx(25.81, abs=tolerance)


def test_point_sources_clip_at_the_edges_and_skip_far_sources():
    image = np.zeros((20, 20))
    add_point_sources(image, np.array([0.0, -50.0]), np.array([10.0, 10.0]),
                      np.array([100.0, 100.0]), np.array([1.0]), np.array([1.0]), 6)
    # The array starts at x = -0.5: the part of the first source right of it, none of the second.
    assert image.sum() == pytest.approx(100.0 * 0.5 * (1.0 + math.erf(0.5 / math.sqrt(2.0))))


def test_gaussians_integrate_to_their_flux():
    image = np.zeros((120, 120))
    add_gaussians(image, np.array([60.2]), np.array([59.7]), np.array([500.0]),
                  np.array([30.0]), np.array([12.0]), np.array([18.0]), np.array([40]))
    assert image.sum() == pytest.approx(500.0, rel=1e-6)
    yy, xx = np.indices(image.shape)
    dx, dy = xx - 60.2, yy - 59.7
    assert (image * dx * dy).sum() / image.sum() == pytest.approx(12.0, rel=1e-4)


def test_tracks_conserve_charge():
    deposit = np.zeros((50, 50))
    deposit_tracks(deposit, np.array([10.2, 30.0]), np.array([10.7, 5.0]),
                   np.array([25.9, 30.0]), np.array([19.1, 5.0]), np.array([4000.0, 900.0]),
                   0.25)
    assert deposit.sum() == pytest.approx(4900.0)
    assert np.count_nonzero(deposit[:8, 28:33]) <= 4  # a point-like hit touches <= 4 pixels


def test_bleeding_keeps_charge_and_caps_pixels():
    image = np.full((40, 5), 10.0)
    image[20, 2] = 1000.0
    total = image.sum()
    full = bleed_columns(image, 100.0)
    assert image.max() == pytest.approx(100.0)
    assert image.sum() == pytest.approx(total)
    # 900 electrons spill half up, half down, filling 5 neighbours each way.
    assert full[:, 2].sum() == 11 and not full[:, [0, 1, 3, 4]].any()
    assert np.all(image[15:26, 2] == 100.0)
    assert image[14, 2] == image[26, 2] == 10.0


def test_read_out_and_statistics_match_numpy():
    rng = np.random.default_rng(0)
    collected = rng.uniform(0, 100, (30, 40))
    noise = rng.standard_normal((30, 40)).astype(np.float32)
    sci = np.empty((30, 40), np.float32)
    err = np.empty((30, 40), np.float32)
    read_out(collected, noise, 3.0, 2.0, 0.5, sci, err)
    expected = collected - 2.0 + 3.0 * noise
    atol = 4 * np.finfo(np.float32).eps * 100.0  # float32 outputs of values up to ~100
    np.testing.assert_allclose(sci, 0.5 * expected, rtol=0, atol=atol)
    np.testing.assert_allclose(err, 0.5 * np.sqrt(np.maximum(expected, 0) + 2.0 + 9.0), rtol=0,
                               atol=atol)
    dq = np.zeros((30, 40), np.int16)
    dq[3, 4] = 256
    n, lo, hi, mean, *_ = good_pixel_statistics(sci, err, dq, np.int16(256))
    good = dq == 0
    assert n == good.sum()
    assert (lo, hi) == (sci[good].min(), sci[good].max())
    assert mean == pytest.approx(sci[good].mean(), rel=1e-6)


@pytest.mark.parametrize("n", [1.0, 4.0])
def test_sersic_mixtures_are_normalised_profiles(n):
    weights, variances = sersic_mixture(n)
    assert weights.sum() == pytest.approx(1.0)
    assert np.all(weights >= 0) and np.all(variances > 0)


def test_psf_model_encircled_energy():
    psf = make_psf(0.07, 0.04)
    assert psf.weights.sum() == pytest.approx(1.0)
    assert psf.encircled_energy(6 * psf.sigmas.max()) == pytest.approx(1.0, abs=1e-6)


# ----------------------------------------------------------------------------- positions and fluxes


def _noise_free_visit(tmp_path, instrument, **kwargs):
    return simulate_visit(tmp_path / instrument, instrument, kwargs.pop("n_exposures", 2),
                          seed=21, noise=False, cosmic_rays=False, defects=False, **kwargs)


@pytest.mark.parametrize("instrument, kwargs", [
    ("wfc3-uvis", {"shape": (600, 700), "roll_deg": 8.0}),
    ("wfc3-ir", {"filters": "F110W,F160W"}),
    ("acs-hrc", {"roll_deg": -20.0, "filters": ("F435W", "F814W")}),
    ("acs-wfc", {"shape": (500, 600), "roll_deg": 5.0, "filters": "F435W,F814W"}),
])
def test_stars_land_where_the_wcs_puts_them(tmp_path, instrument, kwargs):
    """Noise-free rendering: centroids within 0.01 px of all_world2pix, exact aperture flux."""
    result = _noise_free_visit(tmp_path, instrument, **kwargs)
    catalog = Table.read(result.sky_catalog)
    n_measured = 0
    for exposure in result.exposures:
        with fits.open(exposure.path) as hdul:
            chips = [h.ver for h in hdul if h.name == "SCI"]
        for chip in chips:
            stars = measure_stars(exposure.path, catalog, chip=chip, max_stars=12,
                                  min_rate=5e3 / exposure.exptime)
            for star in stars:
                assert abs(star.x_fit - star.x_true) < 0.01
                assert abs(star.y_fit - star.y_true) < 0.01
                # The aperture sum is the catalogue rate times the exposure time, scaled by
                # the pixel-area map (flat-fielded data), times the PSF's share in the
                # aperture's pixels at the true position.
                assert star.aperture_flux == pytest.approx(star.expected_flux, rel=2e-3)
                # Plain first moments in the aperture: those of the PSF at the true position
                # (the aperture truncates the wide diffraction wings unevenly, so they are
                # not the true position itself).
                assert abs(star.x_moment - star.x_moment_model) < 0.01
                assert abs(star.y_moment - star.y_moment_model) < 0.01
            n_measured += len(stars)
    assert n_measured >= 5


def test_aperture_fluxes_match_the_catalogue_within_noise(tmp_path):
    result = simulate_visit(tmp_path / "noisy", "wfc3-uvis", 1, seed=5, shape=(800, 1200),
                            cosmic_rays=False)
    catalog = Table.read(result.sky_catalog)
    pulls = []
    for chip in (1, 2):
        for star in measure_stars(result.files[0], catalog, chip=chip, max_stars=40,
                                  min_rate=1.0, fit=False):
            pulls.append((star.aperture_flux - star.expected_flux) / star.aperture_error)
    pulls = np.array(pulls)
    assert pulls.size >= 10
    assert abs(np.median(pulls)) < 1.0
    assert np.percentile(np.abs(pulls), 90) < 3.5


def test_full_size_ir_and_hrc_default_visits(tmp_path):
    """The full-frame default path of the single-chip detectors (small, so not slow)."""
    for instrument, shape in (("wfc3-ir", (1014, 1014)), ("acs-hrc", (1024, 1024))):
        result = simulate_visit(tmp_path / instrument, instrument, n_exposures=2, seed=3)
        with fits.open(result.files[0]) as hdul:
            assert hdul["SCI", 1].data.shape == shape
            assert hdul[0].header["SUBARRAY"] is False
            assert not hdul["DQ", 1].data.all()


@pytest.mark.slow
def test_full_size_uvis_default_visit(tmp_path):
    """The default full-frame WFC3/UVIS path: shapes, cosmic-ray rate, stars where expected."""
    result = simulate_visit(tmp_path / "uvis", n_exposures=2, seed=1)
    catalog = Table.read(result.sky_catalog)
    with fits.open(result.files[0]) as hdul:
        assert [hdul["SCI", c].data.shape for c in (1, 2)] == [(2051, 4096)] * 2
        assert hdul[0].header["SUBARRAY"] is False
        assert hdul["WCSDVARR", 1].data.shape == (32, 64)
    with fits.open(result.crmasks[0]) as masks:
        fraction = np.mean([masks["CRMASK", c].data.mean() for c in (1, 2)])
    assert 0.005 < fraction < 0.03  # ~1% of pixels in 400 s
    measured = 0
    for chip in (1, 2):
        for star in measure_stars(result.files[0], catalog, chip=chip, max_stars=15,
                                  min_rate=20.0, fit=True, crmask=result.crmasks[0]):
            assert abs(star.x_fit - star.x_true) < 0.05  # noisy data, bright stars
            assert abs(star.y_fit - star.y_true) < 0.05
            pull = (star.aperture_flux - star.expected_flux) / star.aperture_error
            assert abs(pull) < 5.0
            measured += 1
    assert measured >= 5
