"""Known errors of the header WCS: the a priori pointing error of simulated exposures.

A real exposure's a priori WCS is wrong by the guide-star error: the whole focal plane is
shifted and rolled on the sky, and its plate scale can be slightly off (velocity aberration
or a stale distortion solution). :class:`WCSPerturbation` describes such an error (its
docstring states the convention) and :class:`ErrorTransform` applies it to TAN WCSs and sky
positions. Only the sky side of a WCS changes (``CRVAL``, ``CD``); the pixel side (``CRPIX``,
SIP, NPOL, D2IM) stays the truth's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameterError
from ._pointing import (
    SkyRotation,
    offset_radec,
    rotation_about,
    rotation_between,
    tangent_offsets,
    unit_vector,
)

__all__ = ["WCSPerturbation", "ErrorTransform", "as_perturbation", "draw_perturbations"]

# Bounds that keep a perturbed visit meaningful (guide-star errors are below ~2 arcsec).
_MAX_SHIFT_ARCSEC = 60.0
_MAX_ROTATION_DEG = 5.0
_MAX_SCALE = 0.01


def _number(name: str, value, bound: float) -> float:
    if isinstance(value, bool):
        raise InvalidParameterError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or abs(number) > bound:
        raise InvalidParameterError(f"{name} must be finite and at most {bound} in size, "
                                    f"got {value!r}")
    return number


@dataclass(frozen=True)
class WCSPerturbation:
    """A known error of the header WCS of simulated exposures (``header = truth + error``).

    Convention: let ``c`` be the exposure's reference point, the true sky position of its
    aperture reference pixel (``RA_APER``, ``DEC_APER`` of the true WCS; ``ref_ra``,
    ``ref_dec`` in ``truth/pointings.ecsv``). On the tangent plane at ``c`` (gnomonic; ``xi``
    grows to the east, ``eta`` to the north, arcsec), a pixel whose true sky position projects
    to ``(xi, eta)`` is placed by the header WCS at::

        (xi', eta') = (1 + scale) * R(rotation) @ (xi, eta) + (shift_east, shift_north)
        R(t) = [[cos t, sin t], [-sin t, cos t]]

    ``R`` raises position angles (east of north) by ``rotation``: the header's ``ORIENTAT`` is
    the true one plus ``rotation`` (plus the convergence of meridians over the shift, below
    1e-3 degrees). At ``c`` itself the header is off by exactly the shift: a star at its true
    position is found, through the header WCS, where the header puts ``true - shift``. The
    relation holds to better than 1e-5 arcsec over an HST field: the rotation about ``c`` and
    the move of ``c`` by the shift form one rotation of the sphere, applied exactly to every
    TAN WCS; the scale acts in the tangent plane at the moved ``c``.

    Parameters
    ----------
    shift_arcsec : (float, float) or float
        With ``per_exposure=False``: the exact (east, north) shift in arcsec, the same for every
        exposure of the visit. With ``per_exposure=True``: amplitudes; a pair draws each
        component uniformly in ``[-|east|, |east|]`` and ``[-|north|, |north|]``, a number
        draws the shift uniformly in a disc of that radius. At most 60 arcsec.
    rotation_deg : float
        Rotation, degrees (exact, or the amplitude of a uniform draw). At most 5 degrees.
    scale : float
        Fractional scale error (``1e-4`` = header pixels 0.01 % too large): exact, or the
        amplitude of a uniform draw. At most 0.01.
    per_exposure : bool
        False: one error common to the whole visit. True: an independent random draw per
        exposure, seeded by the visit's seed.

    Raises
    ------
    InvalidParameterError
        For non-finite or out-of-range values, or a single-number shift with
        ``per_exposure=False`` (a fixed shift needs a direction).

    Examples
    --------
    >>> common = WCSPerturbation((0.3, -0.2), rotation_deg=0.01)      # every exposure
    >>> random = WCSPerturbation(0.5, 0.02, 1e-5, per_exposure=True)  # up to 0.5" each
    """

    shift_arcsec: tuple[float, float] | float = (0.0, 0.0)
    rotation_deg: float = 0.0
    scale: float = 0.0
    per_exposure: bool = False

    def __post_init__(self):
        shift = self.shift_arcsec
        if np.ndim(shift) == 0 and not isinstance(shift, (str, bytes)):
            if not self.per_exposure:
                raise InvalidParameterError(
                    f"a fixed WCS error needs shift_arcsec=(east, north), got {shift!r}; "
                    "a single number is an amplitude for per_exposure=True")
            value = _number("shift_arcsec", shift, _MAX_SHIFT_ARCSEC)
        else:
            try:
                east, north = shift
            except (TypeError, ValueError):
                raise InvalidParameterError(
                    f"shift_arcsec must be (east, north) or a number, got {shift!r}") from None
            value = (_number("shift_arcsec east", east, _MAX_SHIFT_ARCSEC),
                     _number("shift_arcsec north", north, _MAX_SHIFT_ARCSEC))
        object.__setattr__(self, "shift_arcsec", value)
        object.__setattr__(self, "rotation_deg",
                           _number("rotation_deg", self.rotation_deg, _MAX_ROTATION_DEG))
        object.__setattr__(self, "scale", _number("scale", self.scale, _MAX_SCALE))
        object.__setattr__(self, "per_exposure", bool(self.per_exposure))

    def draw(self, rng: np.random.Generator) -> WCSPerturbation:
        """Return the fixed error of one exposure (``self`` when not ``per_exposure``).

        Four uniform numbers are drawn per call whatever the amplitudes, so a seed gives the
        same draws for any combination of amplitudes.
        """
        if not self.per_exposure:
            return self
        u = rng.random(4)
        if isinstance(self.shift_arcsec, tuple):
            east = self.shift_arcsec[0] * (2.0 * u[0] - 1.0)
            north = self.shift_arcsec[1] * (2.0 * u[1] - 1.0)
        else:
            radius = self.shift_arcsec * math.sqrt(u[0])
            angle = 2.0 * math.pi * u[1]
            east, north = radius * math.sin(angle), radius * math.cos(angle)
        # "+ 0.0" turns the -0.0 of a zero amplitude into 0.0.
        return WCSPerturbation((float(east) + 0.0, float(north) + 0.0),
                               float(self.rotation_deg * (2.0 * u[2] - 1.0)) + 0.0,
                               float(self.scale * (2.0 * u[3] - 1.0)) + 0.0)

    @property
    def is_zero(self) -> bool:
        """True for a fixed error that changes nothing."""
        return (not self.per_exposure and self.shift_arcsec == (0.0, 0.0)
                and self.rotation_deg == 0.0 and self.scale == 0.0)


def as_perturbation(value) -> WCSPerturbation | None:
    """Interpret the ``wcs_error`` argument of :func:`~hapgpu.simulate.simulate_visit`.

    Parameters
    ----------
    value : None, float, WCSPerturbation or dict
        None: no error. A number ``a``: random shifts per exposure, uniform in a disc of radius
        ``a`` arcsec (``WCSPerturbation(a, per_exposure=True)``). A dict: the keyword
        arguments of :class:`WCSPerturbation`.

    Returns
    -------
    WCSPerturbation or None

    Raises
    ------
    InvalidParameterError
        For anything else, or invalid values.
    """
    if value is None or isinstance(value, WCSPerturbation):
        return value
    if isinstance(value, dict):
        try:
            return WCSPerturbation(**value)
        except TypeError as exc:
            raise InvalidParameterError(f"wcs_error: {exc}") from None
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return WCSPerturbation(float(value), per_exposure=True)
    raise InvalidParameterError(
        f"wcs_error must be None, a number (arcsec), a dict or a WCSPerturbation, "
        f"got {value!r}")


def draw_perturbations(spec: WCSPerturbation, n: int,
                       rng: np.random.Generator) -> list[WCSPerturbation]:
    """The fixed error of each of ``n`` exposures, in order."""
    return [spec.draw(rng) for _ in range(n)]


class ErrorTransform:
    """A fixed :class:`WCSPerturbation` about a reference point, applied to WCSs and positions.

    Parameters
    ----------
    reference : (float, float)
        (ra, dec) of the true reference point ``c``, degrees.
    error : WCSPerturbation
        A fixed (not ``per_exposure``) error.
    """

    def __init__(self, reference: tuple[float, float], error: WCSPerturbation):
        if error.per_exposure:
            raise InvalidParameterError("ErrorTransform needs a fixed error; call draw() first")
        ra0, dec0 = float(reference[0]), float(reference[1])
        self.reference = (ra0, dec0)
        self.error = error
        centre = unit_vector(ra0, dec0)
        # A right-handed turn about the line of sight lowers position angles (see
        # rotation_about): turn by -rotation to raise them by +rotation.
        roll = SkyRotation(rotation_about(centre, -math.radians(error.rotation_deg)))
        moved = offset_radec(ra0, dec0, *error.shift_arcsec)
        self.moved_reference = (float(moved[0]), float(moved[1]))
        self.rigid = roll.then(SkyRotation(rotation_between(centre, unit_vector(*moved))))
        self.factor = 1.0 + error.scale

    def __repr__(self) -> str:
        return f"ErrorTransform(reference={self.reference!r}, error={self.error!r})"

    def apply(self, ra, dec) -> tuple[np.ndarray, np.ndarray]:
        """Header positions (degrees) of pixels whose true positions are ``ra, dec`` (degrees)."""
        ra, dec = self.rigid.apply(ra, dec)
        if self.factor == 1.0:
            return ra, dec
        east, north = tangent_offsets(*self.moved_reference, ra, dec)
        return offset_radec(*self.moved_reference, self.factor * east, self.factor * north)

    def apply_tan(self, crval1: float, crval2: float, cd: np.ndarray):
        """Header ``(crval1, crval2, cd)`` of a true TAN WCS (pixel side unchanged)."""
        ra, dec, cd = self.rigid.transform_tan(crval1, crval2, cd)
        if self.factor == 1.0:
            return ra, dec, cd
        new_ra, new_dec = self.apply(crval1, crval2)
        move = SkyRotation(rotation_between(unit_vector(ra, dec),
                                            unit_vector(float(new_ra), float(new_dec))))
        return (float(new_ra), float(new_dec),
                self.factor * (move.frame_rotation(ra, dec) @ cd))
