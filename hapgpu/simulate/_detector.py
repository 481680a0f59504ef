"""Detector effects: sky, dark, cosmic rays, noise, saturation, defects, DQ and ERR.

Functions here turn a noise-free source image into the SCI, ERR and DQ arrays of a calibrated
exposure (FLT/FLC). They do no I/O. Each kind of randomness has its own generator, so switching
one effect off (``noise=False``, ``cosmic_rays=False``) leaves every other draw unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..kernels.render import bleed_columns, deposit_tracks, read_out
from ._instruments import DQ, DetectorModel

__all__ = [
    "ChipWindow",
    "Defects",
    "CosmicRays",
    "ChipArrays",
    "make_defects",
    "make_cosmic_rays",
    "expose_chip",
]

_CHARGE_PER_UM = 80.0  # electrons per micrometre of silicon for a minimum-ionising particle
_MAX_TRACK = 60.0  # pixels
_CR_MIN_DEPOSIT = 25.0  # electrons: smaller deposits are dropped (and so not in the mask)
_HOT_FRACTION = 1e-3
_N_BAD_COLUMNS = 3


@dataclass(frozen=True)
class ChipWindow:
    """The part of a chip that is read out (the whole chip unless a subarray).

    Attributes
    ----------
    x0, y0 : int
        0-based offsets of the window in the full chip.
    nx, ny : int
        Window size.
    full_shape : (int, int)
        Full chip shape (ny, nx).
    """

    x0: int
    y0: int
    nx: int
    ny: int
    full_shape: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int]:
        """Array shape (ny, nx)."""
        return (self.ny, self.nx)

    @property
    def is_subarray(self) -> bool:
        """True when the window is smaller than the chip."""
        return self.shape != tuple(self.full_shape)


@dataclass(frozen=True)
class Defects:
    """Fixed detector defects of one chip, in window coordinates.

    Attributes
    ----------
    hot_y, hot_x : numpy.ndarray
        Hot pixel positions.
    hot_rate : numpy.ndarray
        Their excess dark current, electrons/s.
    bad_columns : numpy.ndarray
        (n, 3) int rows of (x, y_start, y_stop) of bad column segments.
    """

    hot_y: np.ndarray
    hot_x: np.ndarray
    hot_rate: np.ndarray
    bad_columns: np.ndarray


@dataclass(frozen=True)
class CosmicRays:
    """Charge deposited by cosmic rays on one chip.

    Attributes
    ----------
    deposit : numpy.ndarray
        float64 (ny, nx) electrons (zero outside the mask).
    mask : numpy.ndarray
        bool (ny, nx) pixels hit.
    n_hits : int
        Number of particles that crossed the chip.
    """

    deposit: np.ndarray
    mask: np.ndarray
    n_hits: int


@dataclass(frozen=True)
class ChipArrays:
    """Calibrated arrays of one chip, ready to be written.

    Attributes
    ----------
    sci, err : numpy.ndarray
        float32 (ny, nx) in the detector's BUNIT.
    dq : numpy.ndarray
        int16 (ny, nx) data-quality flags.
    crmask : numpy.ndarray
        uint8 (ny, nx) truth: 1 where a cosmic ray deposited charge.
    """

    sci: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    crmask: np.ndarray


def make_defects(rng: np.random.Generator, window: ChipWindow, *,
                 hot_fraction: float = _HOT_FRACTION) -> Defects:
    """Draw the hot pixels and bad columns of a chip (in full-chip coordinates) for a window.

    The same generator state gives the same defects whatever the window, as on a real detector.
    ``hot_fraction`` is the fraction of the chip's pixels that are hot.
    """
    full_ny, full_nx = window.full_shape
    n_hot = int(hot_fraction * full_nx * full_ny)
    hot_x = rng.integers(0, full_nx, n_hot)
    hot_y = rng.integers(0, full_ny, n_hot)
    hot_rate = rng.exponential(0.2, n_hot) + 0.02
    col_x = rng.integers(0, full_nx, _N_BAD_COLUMNS)
    col_start = rng.integers(0, full_ny // 2, _N_BAD_COLUMNS)
    col_stop = col_start + rng.integers(full_ny // 4, full_ny, _N_BAD_COLUMNS)
    inside = ((hot_x >= window.x0) & (hot_x < window.x0 + window.nx)
              & (hot_y >= window.y0) & (hot_y < window.y0 + window.ny))
    columns = np.stack([col_x - window.x0, np.clip(col_start - window.y0, 0, window.ny),
                        np.clip(col_stop - window.y0, 0, window.ny)], axis=1)
    columns = columns[(columns[:, 0] >= 0) & (columns[:, 0] < window.nx)
                      & (columns[:, 2] > columns[:, 1])]
    return Defects(hot_y[inside] - window.y0, hot_x[inside] - window.x0, hot_rate[inside],
                   columns.astype(np.int64))


def make_cosmic_rays(rng: np.random.Generator, det: DetectorModel, shape: tuple[int, int],
                     exptime: float, rate: float) -> CosmicRays:
    """Draw cosmic-ray tracks for one exposure of one chip and deposit their charge.

    Particles arrive isotropically at ``rate`` per cm^2 per second. A particle crossing the
    depleted layer at incidence ``theta`` leaves a straight track of ``depletion * tan(theta)``
    (capped at 60 pixels) and ``80 e-/um`` of path with a log-normal spread.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random generator for the cosmic rays.
    det : DetectorModel
        Detector (pixel size, depletion depth).
    shape : (int, int)
        Array shape (ny, nx).
    exptime : float
        Exposure time, seconds.
    rate : float
        Cosmic rays per cm^2 per second.

    Returns
    -------
    CosmicRays
    """
    ny, nx = shape
    area_cm2 = nx * ny * (det.pixel_size_um * 1e-4) ** 2
    n_hits = int(rng.poisson(rate * area_cm2 * exptime))
    x0 = rng.uniform(-0.5, nx - 0.5, n_hits)
    y0 = rng.uniform(-0.5, ny - 0.5, n_hits)
    cos2 = np.maximum(rng.random(n_hits), 1e-4)  # isotropic flux through a plane
    tan_theta = np.sqrt(1.0 / cos2 - 1.0)
    length = np.minimum(det.depletion_um / det.pixel_size_um * tan_theta, _MAX_TRACK)
    phi = rng.uniform(0.0, 2.0 * np.pi, n_hits)
    charge = (_CHARGE_PER_UM * det.depletion_um / np.sqrt(cos2)
              * rng.lognormal(0.0, 0.5, n_hits))
    deposit = np.zeros(shape, dtype=np.float64)
    deposit_tracks(deposit, x0, y0, x0 + length * np.cos(phi), y0 + length * np.sin(phi),
                   charge, 0.25)
    mask = deposit >= _CR_MIN_DEPOSIT
    deposit[~mask] = 0.0
    return CosmicRays(deposit, mask, n_hits)


def expose_chip(
    source_counts: np.ndarray,
    *,
    det: DetectorModel,
    exptime: float,
    sky_rate: float,
    defects: Defects | None,
    cosmic_rays: CosmicRays | None,
    noise_rng: np.random.Generator | None,
) -> ChipArrays:
    """Turn noise-free source counts into calibrated SCI, ERR and DQ arrays.

    Sequence: sky + dark + hot pixels; Poisson draw (skipped when ``noise_rng`` is None);
    cosmic-ray charge (CCDs); full-well saturation with charge bleeding along columns (CCDs);
    read noise; dark subtraction; unit conversion (electrons/s for WFC3/IR).

    Parameters
    ----------
    source_counts : numpy.ndarray
        float64 (ny, nx) noise-free electrons from the sources; reused (overwritten) as the
        working array.
    det : DetectorModel
        Detector properties.
    exptime : float
        Exposure time, seconds.
    sky_rate : float
        Sky background, electrons/s/pixel.
    defects : Defects or None
        Hot pixels and bad columns, or None for a perfect detector.
    cosmic_rays : CosmicRays or None
        Cosmic-ray charge, or None.
    noise_rng : numpy.random.Generator or None
        Generator for Poisson and read noise; None renders the expected values.

    Returns
    -------
    ChipArrays
    """
    shape = source_counts.shape
    dq = np.zeros(shape, dtype=np.int16)
    dark = det.dark_rate * exptime
    expected = source_counts
    expected += sky_rate * exptime + dark
    if defects is not None:
        np.add.at(expected, (defects.hot_y, defects.hot_x), defects.hot_rate * exptime)
        dq[defects.hot_y, defects.hot_x] |= DQ.HOT_PIXEL
    if det.cr_in_pixels:
        saturated_expected = None
    else:
        saturated_expected = expected >= det.full_well
    if noise_rng is not None:
        collected = noise_rng.poisson(expected).astype(np.float64)
    else:
        collected = expected
    crmask = np.zeros(shape, dtype=np.uint8)
    if cosmic_rays is not None:
        crmask[cosmic_rays.mask] = 1
        if det.cr_in_pixels:
            collected += cosmic_rays.deposit
        else:
            dq[cosmic_rays.mask] |= DQ.CR_IN_RAMP
    if saturated_expected is None:
        dq[bleed_columns(collected, det.full_well)] |= DQ.SATURATED
    else:
        dq[saturated_expected] |= DQ.SATURATED
    if defects is not None:
        for x, start, stop in defects.bad_columns:
            collected[start:stop, x] *= 0.05
            dq[start:stop, x] |= det.bad_column_bit
    if noise_rng is not None:
        noise = noise_rng.standard_normal(shape, dtype=np.float32)
    else:
        noise = np.zeros((1, 1), dtype=np.float32)
    sci = np.empty(shape, dtype=np.float32)
    err = np.empty(shape, dtype=np.float32)
    read_out(collected, noise, det.read_noise, dark,
             1.0 / exptime if det.in_rate_units else 1.0, sci, err)
    return ChipArrays(sci, err, dq, crmask)
