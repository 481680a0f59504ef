"""The fixed sky of a simulated visit: stars and galaxies, and their catalogues.

Magnitudes are AB. Each source has a V-band (5500 A) magnitude and a colour ``c`` (about V-I);
its magnitude at a pivot wavelength ``lam`` is ``V - c * log10(lam / 5500) / log10(8000 / 5500)``,
so redder sources are brighter in the red and infrared and fainter in the ultraviolet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.table import Table

from ._pointing import offset_radec

__all__ = ["SkyModel", "make_sky_model", "reference_catalog", "gaia_position_error",
           "GAIA_EPOCH", "mjd_to_year"]

GAIA_EPOCH = 2016.0
_V_PIVOT = 5500.0
_I_PIVOT = 8000.0
_G_PIVOT = 6400.0
_GAIA_LIMIT = 21.0
_CATALOG_NAME = "GAIAeDR3"
# Field-star proper motions (mas/yr): thick disc and halo (see _field_proper_motions).
_HALO_FRACTION = 0.3
_DISC_PM_MEAN, _DISC_PM_SIGMA = (-2.0, -4.0), 5.0
_HALO_PM_MEAN, _HALO_PM_SIGMA = (-4.0, -7.0), 12.0
# Gaia eDR3 astrometric precision at G (Lindegren et al. 2021, A&A 649, A2, table 4):
# position at the reference epoch (mas) ~ 0.02 at G <= 15, 0.04 at 17, 0.4 at 20, 1.0 at 21;
# proper motion (mas/yr) about 1.1 times the position error; RA errors a little below Dec's.
_POS_FLOOR, _POS_AT_20, _PM_PER_POS, _RA_OVER_DEC = 0.015, 0.42, 1.1, 0.87
_ERROR_SPREAD = 0.2  # log-normal star-to-star spread of the errors (scan-law coverage)

STAR, GALAXY = "star", "galaxy"


def mjd_to_year(mjd: float) -> float:
    """Decimal (Julian) year of a Modified Julian Date."""
    return 2000.0 + (mjd - 51544.5) / 365.25


@dataclass(frozen=True)
class SkyModel:
    """Sources of a visit, with positions at ``epoch``.

    All arrays have one entry per source (stars first, then galaxies).

    Attributes
    ----------
    center : (float, float)
        (ra, dec) of the field centre, degrees.
    radius : float
        Radius of the populated field, arcsec.
    epoch : float
        Decimal year of the positions (the visit date).
    object_id : numpy.ndarray
        int64 identifiers, 1..n.
    kind : numpy.ndarray
        ``"star"`` or ``"galaxy"``.
    ra, dec : numpy.ndarray
        Positions at ``epoch``, degrees.
    mag_v, color : numpy.ndarray
        AB magnitude at 5500 A and colour (see module docstring).
    pmra, pmdec : numpy.ndarray
        Proper motion, mas/yr (``pmra`` includes cos(dec)); zero for galaxies.
    r_eff, axis_ratio, position_angle, sersic_n : numpy.ndarray
        Galaxy shape: half-light semi-major axis (arcsec), b/a, position angle of the major
        axis (degrees east of north) and Sersic index; 0 for stars.
    """

    center: tuple[float, float]
    radius: float
    epoch: float
    object_id: np.ndarray
    kind: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    mag_v: np.ndarray
    color: np.ndarray
    pmra: np.ndarray
    pmdec: np.ndarray
    r_eff: np.ndarray
    axis_ratio: np.ndarray
    position_angle: np.ndarray
    sersic_n: np.ndarray

    @property
    def n_sources(self) -> int:
        """Number of sources."""
        return int(self.ra.size)

    @property
    def is_star(self) -> np.ndarray:
        """Boolean mask of the stars."""
        return self.kind == STAR

    def magnitude(self, pivot: float) -> np.ndarray:
        """AB magnitudes at a pivot wavelength (Angstrom)."""
        slope = np.log10(pivot / _V_PIVOT) / np.log10(_I_PIVOT / _V_PIVOT)
        return self.mag_v - self.color * slope

    def to_table(self, filters=()) -> Table:
        """Return the truth catalogue; ``filters`` (FilterModel) add magnitude and rate columns."""
        table = Table()
        table["objID"] = self.object_id
        table["kind"] = self.kind
        table["ra"] = self.ra
        table["dec"] = self.dec
        table["ra"].unit = table["dec"].unit = "deg"
        table["epoch"] = np.full(self.n_sources, self.epoch)
        table["pmra"] = self.pmra
        table["pmdec"] = self.pmdec
        table["pmra"].unit = table["pmdec"].unit = "mas / yr"
        table["mag_v"] = self.mag_v
        table["color"] = self.color
        for filt in filters:
            mag = self.magnitude(filt.pivot)
            table[f"mag_{filt.name}"] = mag
            table[f"rate_{filt.name}"] = filt.count_rate(mag)
            table[f"rate_{filt.name}"].unit = "electron / s"
        table["r_eff"] = self.r_eff
        table["r_eff"].unit = "arcsec"
        table["axis_ratio"] = self.axis_ratio
        table["position_angle"] = self.position_angle
        table["position_angle"].unit = "deg"
        table["sersic_n"] = self.sersic_n
        table.meta.update({
            "center_ra": self.center[0], "center_dec": self.center[1],
            "radius_arcsec": self.radius, "epoch": self.epoch,
            "comment": "positions at the visit epoch; magnitudes AB; rates in electrons/s "
                       "summed over the whole source",
        })
        return table


def _power_law_magnitudes(rng, n: int, bright: float, faint: float, slope: float) -> np.ndarray:
    """Draw magnitudes with dN/dm proportional to 10**(slope * m) between two limits."""
    lo, hi = 10.0 ** (slope * bright), 10.0 ** (slope * faint)
    return np.log10(lo + rng.random(n) * (hi - lo)) / slope


def _disc_offsets(rng, n: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Uniform positions in a disc, arcsec offsets (east, north)."""
    r = radius * np.sqrt(rng.random(n))
    theta = 2.0 * np.pi * rng.random(n)
    return r * np.sin(theta), r * np.cos(theta)


def _plummer_offsets(rng, n: int, scale: float, radius: float):
    """Positions of a Plummer sphere projected on the sky, truncated at ``radius`` (arcsec)."""
    u_max = (1.0 + (scale / radius) ** 2) ** -1.0 if radius > 0 else 1.0
    u = rng.random(n) * u_max
    r = scale / np.sqrt(u ** (-1.0) - 1.0 + 1e-300) if n else np.zeros(0)
    r = np.minimum(r, radius)
    theta = 2.0 * np.pi * rng.random(n)
    return r * np.sin(theta), r * np.cos(theta)


@dataclass(frozen=True)
class _Population:
    east: np.ndarray
    north: np.ndarray
    mag_v: np.ndarray
    color: np.ndarray
    pmra: np.ndarray
    pmdec: np.ndarray


def _field_proper_motions(rng, n: int) -> np.ndarray:
    """Proper motions (mas/yr, shape (2, n)) of high-latitude field stars at V = 16..28.

    A thick-disc population (mean (-2, -4), dispersion 5 mas/yr per axis) and a halo population
    (30 %, mean (-4, -7), dispersion 12 mas/yr): the spread of Gaia DR3 proper motions of
    G = 17..21 stars away from the Galactic plane.
    """
    halo = rng.random(n) < _HALO_FRACTION
    pm = rng.standard_normal((2, n))
    pm *= np.where(halo, _HALO_PM_SIGMA, _DISC_PM_SIGMA)
    pm += np.where(halo, np.array(_HALO_PM_MEAN)[:, None], np.array(_DISC_PM_MEAN)[:, None])
    return pm


def _field_stars(rng, n: int, radius: float) -> _Population:
    east, north = _disc_offsets(rng, n, radius)
    mag = _power_law_magnitudes(rng, n, 16.0, 28.0, 0.2)
    color = np.clip(rng.normal(0.9, 0.45, n), -0.3, 3.0)
    pm = _field_proper_motions(rng, n)
    return _Population(east, north, mag, color, pm[0], pm[1])


def _cluster_stars(rng, n: int, radius: float) -> _Population:
    east, north = _plummer_offsets(rng, n, 0.25 * radius, radius)
    mag = _power_law_magnitudes(rng, n, 15.5, 28.0, 0.25)
    color = np.clip(rng.normal(0.8, 0.25, n), -0.3, 2.5)
    bulk = rng.normal(0.0, 5.0, 2)
    pm = bulk[:, None] + rng.normal(0.0, 0.3, (2, n))
    return _Population(east, north, mag, color, pm[0], pm[1])


def make_sky_model(
    rng: np.random.Generator,
    center: tuple[float, float],
    radius: float,
    *,
    epoch: float,
    star_density: float,
    galaxy_density: float,
    crowded: bool = False,
) -> SkyModel:
    """Draw the stars and galaxies of a field.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random generator (the only source of randomness).
    center : (float, float)
        (ra, dec) of the field centre, degrees.
    radius : float
        Radius of the field, arcsec.
    epoch : float
        Decimal year of the positions.
    star_density, galaxy_density : float
        Sources per square arcminute: stars of V = 16..28 (dN/dm ~ 10**(0.2 m)), galaxies of
        V = 19..26 (exponential discs and de Vaucouleurs spheroids).
    crowded : bool, optional
        Add a globular-cluster-like Plummer concentration of 30 times the field stars,
        centred on the field centre.

    Returns
    -------
    SkyModel
    """
    area = np.pi * (radius / 60.0) ** 2
    n_field = int(rng.poisson(star_density * area))
    populations = [_field_stars(rng, n_field, radius)]
    if crowded:
        populations.append(_cluster_stars(rng, 30 * max(n_field, 100), radius))
    stars = _Population(*(np.concatenate([getattr(p, f) for p in populations])
                          for f in _Population.__dataclass_fields__))
    n_stars = stars.east.size
    n_gal = int(rng.poisson(galaxy_density * area))
    g_east, g_north = _disc_offsets(rng, n_gal, radius)
    g_mag = _power_law_magnitudes(rng, n_gal, 19.0, 26.0, 0.3)
    g_color = rng.uniform(0.4, 1.6, n_gal)
    r_eff = np.minimum(10.0 ** rng.uniform(np.log10(0.12), np.log10(0.8), n_gal)
                       * 10.0 ** (-0.1 * (g_mag - 22.0)), 1.0)
    axis_ratio = rng.uniform(0.3, 1.0, n_gal)
    position_angle = rng.uniform(0.0, 180.0, n_gal)
    sersic_n = np.where(rng.random(n_gal) < 0.7, 1.0, 4.0)

    ra, dec = offset_radec(center[0], center[1], np.concatenate([stars.east, g_east]),
                           np.concatenate([stars.north, g_north]))
    zeros = np.zeros(n_stars)
    return SkyModel(
        center=(float(center[0]), float(center[1])),
        radius=float(radius),
        epoch=float(epoch),
        object_id=np.arange(1, n_stars + n_gal + 1, dtype=np.int64),
        kind=np.array([STAR] * n_stars + [GALAXY] * n_gal, dtype="U6"),
        ra=np.atleast_1d(ra),
        dec=np.atleast_1d(dec),
        mag_v=np.concatenate([stars.mag_v, g_mag]),
        color=np.concatenate([stars.color, g_color]),
        pmra=np.concatenate([stars.pmra, np.zeros(n_gal)]),
        pmdec=np.concatenate([stars.pmdec, np.zeros(n_gal)]),
        r_eff=np.concatenate([zeros, r_eff]),
        axis_ratio=np.concatenate([zeros, axis_ratio]),
        position_angle=np.concatenate([zeros, position_angle]),
        sersic_n=np.concatenate([zeros, sersic_n]),
    )


def gaia_position_error(g_mag) -> np.ndarray:
    """Typical Gaia eDR3 position error (mas, geometric mean of RA and Dec) at G magnitude.

    ``sqrt(0.015**2 + (0.42 * 10**(0.4 (G - 20)))**2)``: a floor of 0.015 mas for bright stars
    and photon-limited growth (x 10**0.4 per magnitude) for faint ones, which follows the
    median errors of Lindegren et al. (2021, A&A 649, A2, table 4) to a few tens of per cent
    for G = 13-21.
    """
    g_mag = np.asarray(g_mag, dtype=np.float64)
    return np.hypot(_POS_FLOOR, _POS_AT_20 * 10.0 ** (0.4 * (g_mag - 20.0)))


def reference_catalog(sky: SkyModel, rng: np.random.Generator) -> Table:
    """Gaia-like astrometric catalogue (eDR3, epoch 2016.0) of the stars brighter than G = 21.

    For each star the catalogue quotes errors that grow with magnitude as Gaia's do
    (:func:`gaia_position_error`, RA a little better than Dec, a log-normal spread from star
    to star; proper-motion errors 1.1 times the position errors, per year) and lists:

    * the true position at the reference epoch, ``truth(t_obs) - pm * (t_obs - 2016.0)``,
      plus Gaussian noise of the quoted position errors;
    * the true proper motion plus Gaussian noise of the quoted proper-motion errors.

    So the truth at the observation epoch (``sky.epoch``, the sky catalogue) is
    ``catalogue + pm_catalogue * (t_obs - 2016.0)`` plus noise of variance
    ``error**2 + (pm_error * (t_obs - 2016.0))**2`` per axis; offsets are ``d(RA) cos(Dec)``
    and ``d(Dec)``, converted from mas to degrees.

    Parameters
    ----------
    sky : SkyModel
        The visit's sky (positions at the observation epoch).
    rng : numpy.random.Generator
        Random generator for the errors and the noise.

    Returns
    -------
    astropy.table.Table
        Columns ``RA, DEC`` (deg, at ``epoch``), ``RA_error, DEC_error`` (mas), ``pmra, pmdec``
        (mas/yr, ``pmra`` includes cos(Dec)), ``pmra_error, pmdec_error`` (mas/yr), ``epoch``
        (yr), ``mag`` (G, AB-like) and ``objID``; meta ``epoch`` (2016.0), ``catalog``
        (``GAIAeDR3``) and ``observation_epoch`` (the visit's decimal year).
    """
    g_mag = sky.magnitude(_G_PIVOT)
    keep = sky.is_star & (g_mag < _GAIA_LIMIT)
    n = int(keep.sum())
    typical = gaia_position_error(g_mag[keep])
    spread = np.exp(_ERROR_SPREAD * rng.standard_normal((4, n)))
    ra_error = typical * np.sqrt(_RA_OVER_DEC) * spread[0]
    dec_error = typical / np.sqrt(_RA_OVER_DEC) * spread[1]
    pmra_error = _PM_PER_POS * typical * np.sqrt(_RA_OVER_DEC) * spread[2]
    pmdec_error = _PM_PER_POS * typical / np.sqrt(_RA_OVER_DEC) * spread[3]
    noise = rng.standard_normal((4, n))
    years = GAIA_EPOCH - sky.epoch
    cos_dec = np.cos(np.radians(sky.dec[keep]))
    dec = sky.dec[keep] + (sky.pmdec[keep] * years + noise[1] * dec_error) / 3.6e6
    ra = sky.ra[keep] + (sky.pmra[keep] * years + noise[0] * ra_error) / 3.6e6 / cos_dec
    table = Table()
    table["RA"] = ra % 360.0
    table["DEC"] = dec
    table["RA_error"] = ra_error
    table["DEC_error"] = dec_error
    table["pmra"] = sky.pmra[keep] + noise[2] * pmra_error
    table["pmdec"] = sky.pmdec[keep] + noise[3] * pmdec_error
    table["pmra_error"] = pmra_error
    table["pmdec_error"] = pmdec_error
    table["epoch"] = np.full(n, GAIA_EPOCH)
    table["mag"] = g_mag[keep]
    table["objID"] = sky.object_id[keep]
    table["RA"].unit = table["DEC"].unit = "deg"
    table["RA_error"].unit = table["DEC_error"].unit = "mas"
    table["pmra"].unit = table["pmdec"].unit = "mas / yr"
    table["pmra_error"].unit = table["pmdec_error"].unit = "mas / yr"
    table["epoch"].unit = "yr"
    table["mag"].unit = "mag"
    table.meta.update({
        "catalog": _CATALOG_NAME,
        "epoch": GAIA_EPOCH,
        "observation_epoch": sky.epoch,
        "comment": "simulated Gaia-like reference catalogue (hapgpu.simulate): positions at "
                   "epoch 2016.0 with noise of the quoted errors; apply the proper motions to "
                   "reach the observation epoch",
    })
    return table
