"""Telescope pointings as rigid rotations of the celestial sphere.

Moving the telescope (a new target, a dither, a roll) turns the whole sky as seen by the
detector by one rotation ``R``. A gnomonic (TAN) WCS with reference value ``c`` and matrix ``CD``
then becomes exactly a TAN WCS with reference value ``R c`` and matrix ``M CD``, where ``M`` is
the 2x2 rotation between the local (east, north) frames at ``c`` and at ``R c``. The pixel side
(CRPIX, SIP, lookup tables) does not change. Applying the same ``R`` to every WCS in a file
(primary, alternates, headerlets, WCSCORR rows) keeps them all consistent with each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "SkyRotation",
    "unit_vector",
    "radec_from_vector",
    "offset_radec",
    "tangent_offsets",
    "orientat_from_cd",
    "rotation_about",
    "rotation_between",
    "pointing_rotation",
]


def unit_vector(ra_deg, dec_deg) -> np.ndarray:
    """Return unit vectors, shape ``(..., 3)``, for right ascensions and declinations in degrees."""
    ra = np.radians(np.asarray(ra_deg, dtype=np.float64))
    dec = np.radians(np.asarray(dec_deg, dtype=np.float64))
    cos_dec = np.cos(dec)
    return np.stack([cos_dec * np.cos(ra), cos_dec * np.sin(ra), np.sin(dec)], axis=-1)


def radec_from_vector(vec) -> tuple[np.ndarray, np.ndarray]:
    """Return (ra, dec) in degrees, ra in [0, 360), of vectors of shape ``(..., 3)``."""
    vec = np.asarray(vec, dtype=np.float64)
    ra = np.degrees(np.arctan2(vec[..., 1], vec[..., 0])) % 360.0
    dec = np.degrees(np.arctan2(vec[..., 2], np.hypot(vec[..., 0], vec[..., 1])))
    return ra, dec


def _local_frame(ra_deg: float, dec_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors pointing east and north at a sky position."""
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    east = np.array([-np.sin(ra), np.cos(ra), 0.0])
    north = np.array([-np.sin(dec) * np.cos(ra), -np.sin(dec) * np.sin(ra), np.cos(dec)])
    return east, north


def offset_radec(ra_deg: float, dec_deg: float, east_arcsec, north_arcsec):
    """Deproject gnomonic offsets (arcsec, east and north) around a position; return (ra, dec)."""
    east, north = _local_frame(ra_deg, dec_deg)
    centre = unit_vector(ra_deg, dec_deg)
    xi = np.radians(np.asarray(east_arcsec, dtype=np.float64) / 3600.0)
    eta = np.radians(np.asarray(north_arcsec, dtype=np.float64) / 3600.0)
    vec = centre + xi[..., None] * east + eta[..., None] * north
    return radec_from_vector(vec / np.linalg.norm(vec, axis=-1, keepdims=True))


def tangent_offsets(ra0_deg: float, dec0_deg: float, ra_deg, dec_deg):
    """Gnomonic offsets (arcsec, east and north) of positions around ``(ra0, dec0)``.

    The exact inverse of :func:`offset_radec`: a position ``v`` (unit vector) projects to
    ``(v . e, v . n) / (v . c)`` radians, with ``c`` the centre and ``e``, ``n`` the unit
    vectors pointing east and north there (gnomonic projection; Calabretta & Greisen 2002,
    A&A 395, 1077, section 5.1.3).
    """
    east, north = _local_frame(ra0_deg, dec0_deg)
    centre = unit_vector(ra0_deg, dec0_deg)
    vec = unit_vector(ra_deg, dec_deg)
    depth = vec @ centre
    to_arcsec = np.degrees(1.0) * 3600.0
    return (vec @ east) / depth * to_arcsec, (vec @ north) / depth * to_arcsec


def orientat_from_cd(cd: np.ndarray) -> float:
    """Position angle (degrees east of north) of the image +y axis for a CD matrix."""
    return float(np.degrees(np.arctan2(cd[0, 1], cd[1, 1])))


def rotation_about(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    """Right-handed rotation matrix, shape (3, 3), about ``axis`` (Rodrigues' formula).

    Seen from outside the sphere looking along ``-axis`` (i.e. on the sky, looking out along
    ``axis``), a positive angle turns position angles (east of north) *down*.
    """
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    return np.eye(3) + np.sin(angle_rad) * k + (1.0 - np.cos(angle_rad)) * (k @ k)


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation along the great circle that takes unit vector ``a`` to unit vector ``b``."""
    axis = np.cross(a, b)
    sin_angle = np.linalg.norm(axis)
    cos_angle = float(np.dot(a, b))
    if sin_angle < 1e-15:
        return np.eye(3)
    return rotation_about(axis / sin_angle, float(np.arctan2(sin_angle, cos_angle)))


@dataclass(frozen=True)
class SkyRotation:
    """A rigid rotation of the celestial sphere, applied to positions and TAN WCSs.

    Parameters
    ----------
    matrix : numpy.ndarray
        Orthonormal 3x3 matrix acting on unit vectors (ICRS Cartesian).
    """

    matrix: np.ndarray

    def apply(self, ra_deg, dec_deg) -> tuple[np.ndarray, np.ndarray]:
        """Rotate sky positions (degrees); return (ra, dec) in degrees."""
        return radec_from_vector(unit_vector(ra_deg, dec_deg) @ self.matrix.T)

    def frame_rotation(self, ra_deg: float, dec_deg: float) -> np.ndarray:
        """2x2 matrix taking (east, north) offsets at a position to those at its image."""
        east, north = _local_frame(ra_deg, dec_deg)
        new_ra, new_dec = self.apply(ra_deg, dec_deg)
        new_east, new_north = _local_frame(float(new_ra), float(new_dec))
        r_east, r_north = self.matrix @ east, self.matrix @ north
        return np.array([[r_east @ new_east, r_north @ new_east],
                         [r_east @ new_north, r_north @ new_north]])

    def transform_tan(self, crval1: float, crval2: float, cd: np.ndarray):
        """Return the rotated (crval1, crval2, cd) of a TAN WCS (exact; pixel side unchanged)."""
        new_ra, new_dec = self.apply(crval1, crval2)
        return float(new_ra), float(new_dec), self.frame_rotation(crval1, crval2) @ cd

    def then(self, other: SkyRotation) -> SkyRotation:
        """The rotation ``other`` applied after this one."""
        return SkyRotation(other.matrix @ self.matrix)


def pointing_rotation(
    reference: tuple[float, float],
    target: tuple[float, float],
    *,
    orientat_deg: float,
    offset_pixels: tuple[float, float],
    cd: np.ndarray,
) -> SkyRotation:
    """Rotation that moves a template pointing to a new one.

    Parameters
    ----------
    reference : (float, float)
        (ra, dec) in degrees of the template's aperture reference point.
    target : (float, float)
        (ra, dec) in degrees where that reference point lands before dithering.
    orientat_deg : float
        Wanted position angle (degrees east of north) of the reference chip's +y axis at the
        target, i.e. its ``ORIENTAT`` keyword.
    offset_pixels : (float, float)
        Telescope offset (dither, POSTARG) in detector pixels of ``cd``'s chip: the sky moves the
        opposite way on the detector.
    cd : numpy.ndarray
        CD matrix (degrees per pixel) of the reference chip in the template.

    Returns
    -------
    SkyRotation
    """
    tgt_vec = unit_vector(*target)
    to_target = SkyRotation(rotation_between(unit_vector(*reference), tgt_vec))
    _, _, moved_cd = to_target.transform_tan(reference[0], reference[1], cd)
    turn = orientat_deg - orientat_from_cd(moved_cd)
    # A right-handed turn about the line of sight decreases the position angle.
    base = to_target.then(SkyRotation(rotation_about(tgt_vec, -np.radians(turn))))
    _, _, rolled_cd = base.transform_tan(reference[0], reference[1], cd)
    # Intermediate world coordinates: x grows to the east (RA), y to the north.
    east_deg, north_deg = rolled_cd @ np.asarray(offset_pixels, dtype=np.float64)
    new_ra, new_dec = offset_radec(target[0], target[1], east_deg * 3600.0, north_deg * 3600.0)
    dither = SkyRotation(rotation_between(tgt_vec, unit_vector(float(new_ra), float(new_dec))))
    return base.then(dither)
