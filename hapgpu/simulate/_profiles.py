"""Point-spread functions and galaxy profiles as sums of Gaussians.

Sums of Gaussians keep every convolution analytic: a galaxy component of covariance ``C``
seen through a PSF component of variance ``s**2`` is a Gaussian of covariance ``C + s**2 I``, and a
linear map ``J`` of the sky onto the detector turns ``C`` into ``J C J^T``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls
from scipy.special import gammaincinv

__all__ = ["PsfModel", "make_psf", "sersic_mixture"]

_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))

# Core + halo split of the PSF: a narrow core with most of the light, a faint wide halo.
_HALO_FRACTION = 0.12
_HALO_WIDTH = 3.0


@dataclass(frozen=True)
class PsfModel:
    """A circular PSF made of Gaussians, in detector pixels.

    Parameters
    ----------
    sigmas : numpy.ndarray
        Standard deviation of each component, pixels, shape (k,).
    weights : numpy.ndarray
        Fraction of the flux in each component, summing to 1, shape (k,).
    """

    sigmas: np.ndarray
    weights: np.ndarray

    @property
    def variance(self) -> float:
        """Second moment per axis of the whole PSF, pixels squared."""
        return float(np.sum(self.weights * self.sigmas**2))

    @property
    def half_width(self) -> int:
        """Half-size, pixels, of a stamp holding all but ~1e-5 of the light."""
        return int(np.ceil(4.5 * self.sigmas.max()))

    def encircled_energy(self, radius) -> np.ndarray:
        """Fraction of the light inside ``radius`` pixels (continuous profile)."""
        radius = np.asarray(radius, dtype=np.float64)[..., None]
        return np.sum(self.weights * (1.0 - np.exp(-0.5 * (radius / self.sigmas) ** 2)), axis=-1)


def make_psf(fwhm_arcsec: float, pixel_scale_arcsec: float) -> PsfModel:
    """Return the core-plus-halo PSF of a given core FWHM.

    For explicit callers; :func:`~hapgpu.simulate.simulate_visit` draws stars with
    :func:`~hapgpu.simulate.optics_psf` (the optics model of the PSF library).

    Parameters
    ----------
    fwhm_arcsec : float
        FWHM of the Gaussian core, arcsec.
    pixel_scale_arcsec : float
        Detector pixel scale, arcsec.

    Returns
    -------
    PsfModel
    """
    core = fwhm_arcsec / pixel_scale_arcsec / _FWHM_PER_SIGMA
    return PsfModel(
        sigmas=np.array([core, _HALO_WIDTH * core]),
        weights=np.array([1.0 - _HALO_FRACTION, _HALO_FRACTION]),
    )


@functools.lru_cache(maxsize=8)
def sersic_mixture(n: float, n_components: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian mixture of a circular Sersic profile of unit effective radius.

    The amplitudes are a non-negative least-squares fit to the light profile per unit radius
    (``r I(r)``) out to 8 effective radii, with fixed variances spaced logarithmically.

    Parameters
    ----------
    n : float
        Sersic index (1: exponential disc, 4: de Vaucouleurs).
    n_components : int, optional
        Number of Gaussians.

    Returns
    -------
    weights : numpy.ndarray
        Flux fraction of each component (summing to 1), shape (n_components,).
    variances : numpy.ndarray
        Variance of each component in units of the effective radius squared.
    """
    b_n = gammaincinv(2.0 * n, 0.5)
    radius = np.linspace(1e-4, 8.0, 4000)
    profile = np.exp(-b_n * (radius ** (1.0 / n) - 1.0))
    smallest, largest = (0.02, 1.5) if n <= 1.5 else (0.003, 2.5)
    sigmas = np.geomspace(smallest, largest, n_components)
    basis = np.exp(-0.5 * (radius[:, None] / sigmas) ** 2) / (2.0 * np.pi * sigmas**2)
    amplitudes, _ = nnls(basis * radius[:, None], profile * radius)
    keep = amplitudes > 0
    weights = amplitudes[keep] / amplitudes[keep].sum()
    return weights, sigmas[keep] ** 2
