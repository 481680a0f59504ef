"""Synthetic drizzled-like fields for tests and benchmarks (not a simulator of HST visits).

A field is a sky level with Gaussian noise, Gaussian point sources and elliptical
exponential-profile galaxies, optionally inside a rectangular footprint (zero outside), in
electrons per second (float32).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SyntheticField", "make_field"]


@dataclass
class SyntheticField:
    """A synthetic image with its truth.

    Attributes
    ----------
    data : ndarray, float32, shape (ny, nx)
    error : ndarray, float32, shape (ny, nx)
        Per-pixel 1-sigma noise used to make ``data``.
    footprint : ndarray of bool, shape (ny, nx)
        True where the field has coverage.
    stars : ndarray, shape (n, 3)
        x, y, flux of the point sources.
    galaxies : ndarray, shape (m, 6)
        x, y, flux, scale length, axis ratio, angle (rad).
    sky : float
    fwhm : float
    """

    data: np.ndarray
    error: np.ndarray
    footprint: np.ndarray
    stars: np.ndarray
    galaxies: np.ndarray
    sky: float
    fwhm: float


def _add_stamp(image, x0, y0, half, profile):
    ny, nx = image.shape
    ix, iy = int(round(x0)), int(round(y0))
    xa, xb = max(ix - half, 0), min(ix + half + 1, nx)
    ya, yb = max(iy - half, 0), min(iy + half + 1, ny)
    if xa >= xb or ya >= yb:
        return
    yy, xx = np.mgrid[ya:yb, xa:xb]
    image[ya:yb, xa:xb] += profile(xx - x0, yy - y0)


def make_field(shape=(512, 512), n_stars=300, n_galaxies=60, *, fwhm=2.5, sky=0.05,
               noise=0.01, star_flux=(0.5, 200.0), galaxy_flux=(2.0, 400.0),
               galaxy_scale=(1.5, 8.0), border=0, seed=0) -> SyntheticField:
    """Make a synthetic field.

    Parameters
    ----------
    shape : (int, int)
    n_stars, n_galaxies : int
    fwhm : float
        Point-source FWHM in pixels.
    sky, noise : float
        Sky level and sky noise (e-/s).
    star_flux, galaxy_flux : (float, float)
        Log-uniform total-flux ranges.
    galaxy_scale : (float, float)
        Uniform range of the exponential scale lengths (pixels).
    border : int
        Width of a zero-valued margin outside the footprint.
    seed : int

    Returns
    -------
    SyntheticField
    """
    rng = np.random.default_rng(seed)
    ny, nx = shape
    image = np.zeros(shape, dtype=np.float64)
    sigma = fwhm / 2.3548200450309493
    stars = np.column_stack([rng.uniform(0, nx, n_stars), rng.uniform(0, ny, n_stars),
                             np.exp(rng.uniform(*np.log(star_flux), n_stars))])
    half = int(np.ceil(5 * sigma))
    norm = 1.0 / (2 * np.pi * sigma ** 2)
    for x0, y0, flux in stars:
        _add_stamp(image, x0, y0, half, lambda dx, dy, f=flux: f * norm * np.exp(
            -0.5 * (dx * dx + dy * dy) / sigma ** 2))
    galaxies = np.column_stack([
        rng.uniform(0, nx, n_galaxies), rng.uniform(0, ny, n_galaxies),
        np.exp(rng.uniform(*np.log(galaxy_flux), n_galaxies)),
        rng.uniform(*galaxy_scale, n_galaxies), rng.uniform(0.3, 1.0, n_galaxies),
        rng.uniform(0, np.pi, n_galaxies)])
    for x0, y0, flux, h, q, theta in galaxies:
        c, s = np.cos(theta), np.sin(theta)
        gnorm = 1.0 / (2 * np.pi * h * h * q)

        def profile(dx, dy, f=flux, h=h, q=q, c=c, s=s, gnorm=gnorm):
            u = dx * c + dy * s
            v = (-dx * s + dy * c) / q
            return f * gnorm * np.exp(-np.sqrt(u * u + v * v) / h)

        _add_stamp(image, x0, y0, int(np.ceil(7 * h)), profile)
    error = np.sqrt(noise ** 2 + np.maximum(image, 0) * 1e-3)
    data = image + sky + rng.normal(0.0, 1.0, shape) * error
    footprint = np.ones(shape, dtype=bool)
    if border > 0:
        footprint[:border] = footprint[-border:] = False
        footprint[:, :border] = footprint[:, -border:] = False
        data[~footprint] = 0.0
    return SyntheticField(data=data.astype(np.float32), error=error.astype(np.float32),
                          footprint=footprint, stars=stars, galaxies=galaxies, sky=sky,
                          fwhm=fwhm)
