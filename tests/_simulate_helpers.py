"""Helpers shared by the hapgpu.simulate tests: reading exposures back and measuring stars."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from scipy.optimize import least_squares
from scipy.special import erf

from hapgpu.simulate import get_detector, optics_psf

# Small, fast visits: (instrument, subarray shape or None for the full chip).
SMALL_SHAPES = {"wfc3-uvis": (200, 256), "wfc3-ir": (200, 200), "acs-hrc": (200, 200),
                "acs-wfc": (200, 256)}
#: Instrument key of each DETECTOR keyword value.
DETECTOR_KEYS = {"UVIS": "wfc3-uvis", "IR": "wfc3-ir", "HRC": "acs-hrc", "WFC": "acs-wfc"}


def chip_wcs(hdul: fits.HDUList, chip: int) -> WCS:
    """Full WCS (SIP + lookup tables) of SCI extension ``chip`` as astropy reads it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return WCS(hdul["SCI", chip].header, hdul)


def n_chips(hdul: fits.HDUList) -> int:
    return sum(1 for hdu in hdul if hdu.name == "SCI")


def local_area_ratio(wcs: WCS, x: float, y: float) -> float:
    """Nominal over local pixel area at a 0-based pixel position (independent finite difference)."""
    h = 0.25
    ra, dec = wcs.all_pix2world([x + h, x - h, x, x], [y, y, y + h, y - h], 0)
    east = (ra - ra[0]) * np.cos(np.radians(dec[0])) * 3600.0
    north = (dec - dec[0]) * 3600.0
    jac = np.array([[east[0] - east[1], east[2] - east[3]],
                    [north[0] - north[1], north[2] - north[3]]]) / (2 * h)
    return abs(np.linalg.det(wcs.wcs.cd)) * 3600.0**2 / abs(np.linalg.det(jac))


def _psf_image(params, xx, yy, psf):
    x0, y0, flux, sky = params
    model = np.zeros(xx.shape)
    for sigma, weight in zip(psf.sigmas, psf.weights):
        s = np.sqrt(2.0) * sigma
        fx = 0.5 * (erf((xx + 0.5 - x0) / s) - erf((xx - 0.5 - x0) / s))
        fy = 0.5 * (erf((yy + 0.5 - y0) / s) - erf((yy - 0.5 - y0) / s))
        model += weight * fx * fy
    return flux * model + sky


def _residuals(params, xx, yy, psf, stamp):
    return (_psf_image(params, xx, yy, psf) - stamp).ravel()


@dataclass
class StarMeasurement:
    """One star measured by :func:`measure_stars`: true, fitted and first-moment positions;
    aperture sum, its error and the expected aperture sum (the catalogue rate through the PSF
    the star was drawn with, over the same aperture pixels); the first moments of that PSF
    model over the aperture."""

    object_id: int
    x_true: float
    y_true: float
    x_fit: float
    y_fit: float
    x_moment: float
    y_moment: float
    aperture_flux: float
    aperture_error: float
    expected_flux: float
    x_moment_model: float
    y_moment_model: float


def isolated_bright_stars(catalog: Table, filt: str, x, y, shape, radius, psf, *,
                          min_rate=None, pixel_scale=0.04, tolerance=2e-4):
    """Indices (brightest first) of catalogue stars on a chip whose neighbours add less than
    ``tolerance`` of their flux to their aperture.

    A neighbour at distance ``d`` can put at most ``sum_k w_k min(1, R^2 / 2 s_k^2)
    exp(-(d - R)^2 / 2 s_k^2)`` of its light in an aperture of radius ``R`` (the aperture's
    area ``pi R^2`` times the component's largest density in it, at the nearest point; all of
    it when ``d <= R``): ``(w_k, s_k)`` are the PSF components for a star, and ``(1, 2.5
    effective radii)`` for a galaxy (the widest component of its Gaussian mixture).
    """
    rate = np.asarray(catalog[f"rate_{filt}"])
    star = np.asarray(catalog["kind"] == "star")
    galaxy_width = np.maximum(psf.sigmas.max(), 2.5 * np.asarray(catalog["r_eff"]) / pixel_scale)
    ny, nx = shape
    margin = radius + 2
    inside = (star & (x > margin) & (x < nx - 1 - margin) & (y > margin) & (y < ny - 1 - margin))
    if min_rate is not None:
        inside &= rate > min_rate
    chosen = []
    for i in np.flatnonzero(inside)[np.argsort(-rate[inside])]:
        gap = np.maximum(np.hypot(x - x[i], y - y[i]) - radius, 0.0)
        reach = np.where(star, sum(w * min(1.0, radius ** 2 / (2.0 * s * s))
                                   * np.exp(-0.5 * (gap / s) ** 2)
                                   for w, s in zip(psf.weights, psf.sigmas)),
                         np.exp(-0.5 * (gap / galaxy_width) ** 2))
        reach[np.hypot(x - x[i], y - y[i]) <= radius] = 1.0
        light = rate * reach
        light[i] = 0.0
        if light.sum() > tolerance * rate[i]:
            continue
        chosen.append(i)
    return np.array(chosen, dtype=int)


def measure_stars(path, catalog: Table, *, chip=1, radius=None, max_stars=30, min_rate=None,
                  fit=True, crmask=None, wcs=None):
    """Measure isolated unsaturated catalogue stars on one chip of an exposure.

    The PSF is the one :func:`hapgpu.simulate.simulate_visit` draws the stars with
    (:func:`hapgpu.simulate.optics_psf` of the file's detector and filter). The aperture
    (default radius: where the PSF's encircled energy reaches 95 %, at least 3 pixels) holds a
    known part of each star's light, the PSF integrated over the aperture's pixels at the
    star's true position, which ``expected_flux`` includes.

    Positions come from the catalogue through the file's own WCS (or ``wcs``, e.g. the true WCS
    of a visit whose headers carry an error); the sky level from the
    filter's sky rate (exact for noise-free data, a fine estimate otherwise). Stars with a
    flagged pixel (DQ, or the cosmic-ray truth mask ``crmask`` if given) are skipped.
    """
    with fits.open(path) as hdul:
        primary = hdul[0].header
        det = get_detector(DETECTOR_KEYS[primary["DETECTOR"].strip()])
        filt = det.filter(primary["FILTER"] if "FILTER" in primary else
                          next(f for f in (primary["FILTER1"], primary["FILTER2"])
                               if not f.startswith("CLEAR")))
        wcs = chip_wcs(hdul, chip) if wcs is None else wcs
        sci = hdul["SCI", chip].data.astype(np.float64)
        err = hdul["ERR", chip].data.astype(np.float64)
        dq = hdul["DQ", chip].data.astype(np.int32)
        exptime = float(primary["EXPTIME"])
    if crmask is not None:
        with fits.open(crmask) as masks:
            dq = dq | masks["CRMASK", chip].data
    scale = np.sqrt(abs(np.linalg.det(wcs.wcs.cd))) * 3600.0
    psf = optics_psf(det.key, filt.name)   # the PSF simulate_visit draws stars with
    if radius is None:
        r = np.arange(3, 6 * int(np.ceil(psf.sigmas.max())) + 1)
        radius = int(r[np.argmax(psf.encircled_energy(r) >= 0.95)])
    x, y = wcs.all_world2pix(catalog["ra"], catalog["dec"], 0, tolerance=1e-10, maxiter=200,
                             quiet=True)
    to_data = 1.0 / exptime if det.in_rate_units else 1.0
    sky = (filt.sky_rate * exptime) * to_data
    out = []
    for i in isolated_bright_stars(catalog, filt.name, x, y, sci.shape, radius, psf,
                                   min_rate=min_rate, pixel_scale=scale):
        if len(out) >= max_stars:
            break
        ix, iy = int(round(x[i])), int(round(y[i]))
        window = (slice(iy - radius, iy + radius + 1), slice(ix - radius, ix + radius + 1))
        if np.any(dq[window]):
            continue  # saturated, hot, bad column or cosmic ray flagged
        yy, xx = np.mgrid[window]
        stamp = sci[window] - sky
        inside = (xx - x[i]) ** 2 + (yy - y[i]) ** 2 <= radius**2
        flux = stamp[inside].sum()
        model = _psf_image((x[i], y[i], 1.0, 0.0), xx, yy, psf)[inside]
        x_fit = y_fit = np.nan
        if fit:
            guess = (x[i] + 0.1, y[i] - 0.1, flux, 0.0)
            result = least_squares(_residuals, guess, args=(xx, yy, psf, stamp), xtol=1e-12,
                                   ftol=1e-12)
            x_fit, y_fit = result.x[:2]
        out.append(StarMeasurement(
            object_id=int(catalog["objID"][i]), x_true=float(x[i]), y_true=float(y[i]),
            x_fit=float(x_fit), y_fit=float(y_fit),
            x_moment=float((stamp * xx)[inside].sum() / flux),
            y_moment=float((stamp * yy)[inside].sum() / flux),
            aperture_flux=float(flux), aperture_error=float(np.sqrt((err[window][inside] ** 2)
                                                                     .sum())),
            expected_flux=float(catalog[f"rate_{filt.name}"][i] * exptime * to_data
                                * local_area_ratio(wcs, x[i], y[i]) * model.sum()),
            x_moment_model=float((model * xx[inside]).sum() / model.sum()),
            y_moment_model=float((model * yy[inside]).sum() / model.sum())))
    return out
