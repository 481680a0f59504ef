"""Noise-free rendering of the sky through one chip's full distorted WCS.

This is the stage between the sky model and the kernels: it projects sources with astropy's
``all_world2pix`` (SIP + NPOL + D2IM), measures the local Jacobian of the pixel-to-sky map at each
source, and turns the sky into kernel inputs: pixel positions, counts and pixel-frame shapes.

Flat-fielded HST exposures have a flat sky, so a source's counts scale as the nominal pixel area
over the local pixel area (the pixel-area-map effect). Drizzling, which weighs pixels by their
true area, gives the catalogue flux back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..kernels.render import add_gaussians, add_point_sources
from ._profiles import PsfModel, sersic_mixture
from ._sky import SkyModel

__all__ = ["ProjectedSources", "project_sources", "render_scene", "source_reach"]

_DISTORTION_MARGIN = 100.0  # pixels: bound on |distorted - linear| positions
_MAX_HALF_WIDTH = 400
_MIN_COMPONENT_WEIGHT = 1e-3
_BOX_VARIANCE = 1.0 / 12.0  # variance of a uniform pixel response


@dataclass(frozen=True)
class ProjectedSources:
    """Sources that fall on (or near) one chip.

    Attributes
    ----------
    index : numpy.ndarray
        Indices into the :class:`SkyModel` arrays.
    x, y : numpy.ndarray
        0-based pixel positions.
    jacobian : numpy.ndarray
        (n, 2, 2) derivatives of (east, north) offsets in arcsec with respect to (x, y).
    area_ratio : numpy.ndarray
        Nominal pixel area over local pixel area (counts scale factor).
    """

    index: np.ndarray
    x: np.ndarray
    y: np.ndarray
    jacobian: np.ndarray
    area_ratio: np.ndarray


def _tangent_offsets(ra, dec, ra0, dec0):
    """Small offsets (arcsec, east and north) of positions from a reference point."""
    d_ra = (ra - ra0 + 180.0) % 360.0 - 180.0
    return d_ra * np.cos(np.radians(dec0)) * 3600.0, (dec - dec0) * 3600.0


def _jacobians(wcs, x, y, step=0.5) -> np.ndarray:
    """Central-difference Jacobian of the pixel-to-sky map, arcsec per pixel, shape (n, 2, 2)."""
    xs = np.concatenate([x + step, x - step, x, x])
    ys = np.concatenate([y, y, y + step, y - step])
    ra, dec = wcs.all_pix2world(xs, ys, 0)
    n = x.size
    east, north = _tangent_offsets(ra, dec, np.tile(ra[:n], 4), np.tile(dec[:n], 4))
    jac = np.empty((n, 2, 2))
    jac[:, 0, 0] = (east[:n] - east[n:2 * n]) / (2 * step)
    jac[:, 1, 0] = (north[:n] - north[n:2 * n]) / (2 * step)
    jac[:, 0, 1] = (east[2 * n:3 * n] - east[3 * n:]) / (2 * step)
    jac[:, 1, 1] = (north[2 * n:3 * n] - north[3 * n:]) / (2 * step)
    return jac


def project_sources(wcs, sky: SkyModel, shape: tuple[int, int], margin: np.ndarray):
    """Project the sky onto a chip through its full WCS.

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        The chip's WCS including its distortion lookup tables.
    sky : SkyModel
        Sources of the visit.
    shape : (int, int)
        Chip array shape (ny, nx).
    margin : numpy.ndarray
        Per-source distance in pixels beyond the edges at which a source still adds light.

    Returns
    -------
    ProjectedSources
    """
    ny, nx = shape
    lin_x, lin_y = wcs.wcs_world2pix(sky.ra, sky.dec, 0)
    reach = margin + _DISTORTION_MARGIN
    near = ((lin_x > -reach) & (lin_x < nx + reach) & (lin_y > -reach) & (lin_y < ny + reach))
    index = np.flatnonzero(near)
    if index.size:
        x, y = wcs.all_world2pix(sky.ra[index], sky.dec[index], 0, tolerance=1e-9,
                                 maxiter=100, quiet=True)
    else:
        x = y = np.zeros(0)
    reach = margin[index]
    inside = (np.isfinite(x) & np.isfinite(y) & (x > -reach - 0.5) & (x < nx - 0.5 + reach)
              & (y > -reach - 0.5) & (y < ny - 0.5 + reach))
    index, x, y = index[inside], x[inside], y[inside]
    jac = _jacobians(wcs, x, y)
    nominal = abs(np.linalg.det(wcs.wcs.cd)) * 3600.0**2 if wcs.wcs.has_cd() else abs(
        np.linalg.det(wcs.pixel_scale_matrix)) * 3600.0**2
    area_ratio = nominal / np.abs(np.linalg.det(jac)) if index.size else np.zeros(0)
    return ProjectedSources(index, x, y, jac, area_ratio)


def source_reach(sky: SkyModel, psf: PsfModel, pixel_scale: float) -> np.ndarray:
    """Distance in pixels from its centre at which each source still adds light."""
    reach = np.full(sky.n_sources, float(psf.half_width))
    for n in np.unique(sky.sersic_n[~sky.is_star]):
        _, variances = sersic_mixture(float(n))
        galaxies = (~sky.is_star) & (sky.sersic_n == n)
        reach[galaxies] += 4.5 * np.sqrt(variances.max()) * sky.r_eff[galaxies] / pixel_scale
    return np.minimum(reach, _MAX_HALF_WIDTH)


def _sky_covariances(sky: SkyModel, index: np.ndarray):
    """Per-component sky covariances (arcsec^2) and flux fractions of galaxies ``index``."""
    rows, covs, fractions = [], [], []
    for g in index:
        weights, variances = sersic_mixture(float(sky.sersic_n[g]))
        keep = weights >= _MIN_COMPONENT_WEIGHT
        weights, variances = weights[keep] / weights[keep].sum(), variances[keep]
        pa = np.radians(sky.position_angle[g])
        major = np.array([np.sin(pa), np.cos(pa)])
        minor = np.array([np.cos(pa), -np.sin(pa)])
        shape = (np.outer(major, major) + sky.axis_ratio[g] ** 2 * np.outer(minor, minor))
        for w, v in zip(weights, variances):
            rows.append(g)
            covs.append(v * sky.r_eff[g] ** 2 * shape)
            fractions.append(w)
    return np.array(rows, dtype=np.int64), np.array(covs).reshape(-1, 2, 2), np.array(fractions)


def _galaxy_gaussians(sources: ProjectedSources, sky: SkyModel, counts: np.ndarray,
                      psf: PsfModel):
    """Pixel-frame Gaussians (x, y, flux, cxx, cxy, cyy, half-width) of the projected galaxies."""
    galaxy = sky.kind[sources.index] != "star"
    local = np.flatnonzero(galaxy)
    rows, sky_cov, fractions = _sky_covariances(sky, sources.index[local])
    if rows.size == 0:
        return None
    lookup = np.searchsorted(sources.index[local], rows)
    which = local[lookup]
    inv_jac = np.linalg.inv(sources.jacobian[which])
    pix_cov = inv_jac @ sky_cov @ np.transpose(inv_jac, (0, 2, 1))
    smallest = np.linalg.eigvalsh(pix_cov)[:, 0]
    resolved = np.sqrt(np.maximum(smallest, 0.0)) > 3.0 * psf.sigmas.max()
    # Small components see each PSF component; wide ones only its second moment.
    psf_var = np.where(resolved[:, None], psf.variance, psf.sigmas[None, :] ** 2)
    psf_w = np.where(resolved[:, None], np.r_[1.0, np.zeros(psf.weights.size - 1)][None, :],
                     psf.weights[None, :])
    n_psf = psf.sigmas.size
    cov = np.repeat(pix_cov, n_psf, axis=0)
    extra = psf_var.reshape(-1) + _BOX_VARIANCE
    flux = np.repeat(counts[which] * fractions, n_psf) * psf_w.reshape(-1)
    keep = flux > 0
    cxx, cxy, cyy = cov[:, 0, 0] + extra, cov[:, 0, 1], cov[:, 1, 1] + extra
    largest = 0.5 * (cxx + cyy) + np.sqrt(0.25 * (cxx - cyy) ** 2 + cxy**2)
    half = np.minimum(np.ceil(4.5 * np.sqrt(largest)), _MAX_HALF_WIDTH).astype(np.int64)
    pick = np.repeat(which, n_psf)
    return (sources.x[pick][keep], sources.y[pick][keep], flux[keep], cxx[keep], cxy[keep],
            cyy[keep], half[keep])


def render_scene(shape: tuple[int, int], sources: ProjectedSources, sky: SkyModel,
                 rates: np.ndarray, exptime: float, psf: PsfModel) -> np.ndarray:
    """Render the noise-free source counts on one chip.

    Parameters
    ----------
    shape : (int, int)
        Chip array shape (ny, nx).
    sources : ProjectedSources
        Output of :func:`project_sources` for this chip.
    sky : SkyModel
        The visit's sky.
    rates : numpy.ndarray
        Count rate (electrons/s) of every source of ``sky`` in this exposure's filter.
    exptime : float
        Exposure time, seconds.
    psf : PsfModel
        PSF in this chip's pixels.

    Returns
    -------
    numpy.ndarray
        float64 (ny, nx) electrons from the sources (no sky background).
    """
    image = np.zeros(shape, dtype=np.float64)
    counts = rates[sources.index] * exptime * sources.area_ratio
    star = sky.kind[sources.index] == "star"
    add_point_sources(image, np.ascontiguousarray(sources.x[star]),
                      np.ascontiguousarray(sources.y[star]), np.ascontiguousarray(counts[star]),
                      psf.sigmas, psf.weights, psf.half_width)
    gaussians = _galaxy_gaussians(sources, sky, counts, psf)
    if gaussians is not None:
        add_gaussians(image, *(np.ascontiguousarray(a) for a in gaussians))
    return image
