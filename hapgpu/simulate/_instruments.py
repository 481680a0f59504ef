"""Detector and filter properties used by the simulator.

Numbers are representative, not calibrations: zero points and pivot wavelengths follow the
published WFC3, ACS/HRC and ACS/WFC photometric keywords to a few hundredths of a magnitude, sky
rates are typical zodiacal levels, and PSF widths are the core FWHM measured on each detector.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import InvalidParameterError

__all__ = ["FilterModel", "DetectorModel", "INSTRUMENTS", "get_detector", "DQ"]


class DQ:
    """Data-quality bits written by the simulator (WFC3 and ACS conventions)."""

    BAD_DETECTOR_PIXEL = 4
    HOT_PIXEL = 16
    BAD_COLUMN = 128
    SATURATED = 256
    CR_IN_RAMP = 8192


@dataclass(frozen=True)
class FilterModel:
    """Photometric properties of one filter on one detector.

    Parameters
    ----------
    name : str
        Filter name as written in the FILTER/FILTER1/FILTER2 keyword, e.g. ``"F555W"``.
    pivot : float
        Pivot wavelength, Angstrom (``PHOTPLAM``).
    zp_ab : float
        AB magnitude of a source giving 1 electron per second.
    bandwidth : float
        RMS bandwidth, Angstrom (``PHOTBW``).
    sky_rate : float
        Sky background, electrons per second per pixel.
    fwhm : float
        PSF core FWHM, arcsec (the Instrument Handbooks' measured values; the input of
        :func:`~hapgpu.simulate.make_psf`. :func:`~hapgpu.simulate.simulate_visit` draws
        stars with :func:`~hapgpu.simulate.optics_psf` instead).
    wheel : int
        ACS filter wheel (1 or 2) holding the filter; 0 for WFC3.
    """

    name: str
    pivot: float
    zp_ab: float
    bandwidth: float
    sky_rate: float
    fwhm: float
    wheel: int = 0

    @property
    def photflam(self) -> float:
        """Inverse sensitivity, erg/cm^2/s/Angstrom per electron/s (``PHOTFLAM``)."""
        return 10.0 ** (-0.4 * (self.zp_ab + 2.408)) / self.pivot**2

    @property
    def photfnu(self) -> float:
        """Inverse sensitivity, Jy s per electron (``PHOTFNU``)."""
        return 10.0 ** (-0.4 * (self.zp_ab - 8.90))

    def count_rate(self, mag_ab):
        """Electrons per second of a source of AB magnitude ``mag_ab``."""
        return 10.0 ** (-0.4 * (mag_ab - self.zp_ab))


@dataclass(frozen=True)
class DetectorModel:
    """One HST instrument/detector as the simulator knows it.

    Parameters
    ----------
    key : str
        Instrument key used by the API and the CLI, e.g. ``"wfc3-uvis"``.
    instrument, detector : str
        ``INSTRUME`` and ``DETECTOR`` keyword values.
    letter : str
        First character of the rootname (``i`` WFC3, ``j`` ACS).
    suffix : str
        File suffix: ``flc`` (CTE-corrected) or ``flt``.
    chip_shape : (int, int)
        Full-frame shape (ny, nx) of each chip.
    pixel_scale : float
        Nominal pixel scale, arcsec.
    pixel_size_um : float
        Physical pixel size, micrometres (for the cosmic-ray rate per area).
    depletion_um : float
        Thickness crossed by a cosmic ray, micrometres (sets track length and charge).
    gain, read_noise, dark_rate, full_well : float
        Electrons per DN, electrons rms, electrons per second per pixel, electrons.
    bunit : str
        ``BUNIT`` of the SCI and ERR arrays: ``ELECTRONS`` or ``ELECTRONS/S``.
    cr_in_pixels : bool
        True when cosmic rays stay in the calibrated pixels (CCDs); False for WFC3/IR, whose
        up-the-ramp fit removes them and flags ``DQ.CR_IN_RAMP`` instead.
    bad_column_bit : int
        DQ bit for bad columns.
    default_exptime : float
        Exposure time used when none is given, seconds.
    overhead : float
        Seconds between the end of one exposure and the start of the next.
    star_density : float
        Default stars per square arcminute (magnitudes 16 to 28 in V).
    galaxy_density : float
        Default galaxies per square arcminute.
    dither_pixels : float
        Default dither step, pixels.
    default_filter : str
        Filter used when none is given.
    filters : dict of FilterModel
        Filters offered, by name.
    hot_fraction : float
        Fraction of hot pixels (dark current above ~0.02 electrons/s).
    """

    key: str
    instrument: str
    detector: str
    letter: str
    suffix: str
    chip_shape: tuple[int, int]
    pixel_scale: float
    pixel_size_um: float
    depletion_um: float
    gain: float
    read_noise: float
    dark_rate: float
    full_well: float
    bunit: str
    cr_in_pixels: bool
    bad_column_bit: int
    default_exptime: float
    overhead: float
    star_density: float
    galaxy_density: float
    dither_pixels: float
    default_filter: str
    filters: dict[str, FilterModel] = field(repr=False)
    hot_fraction: float = 1e-3

    @property
    def in_rate_units(self) -> bool:
        """True when SCI is in electrons per second."""
        return self.bunit.endswith("/S")

    def filter(self, name: str) -> FilterModel:
        """Return a filter by (case-insensitive) name, or raise InvalidParameterError."""
        key = str(name).strip().upper()
        if key not in self.filters:
            raise InvalidParameterError(
                f"filter {name!r} is not available on {self.key}; "
                f"choose from {', '.join(self.filters)}"
            )
        return self.filters[key]


def _filters(rows, wheel_of=None) -> dict[str, FilterModel]:
    wheel_of = wheel_of or {}
    return {
        name: FilterModel(name, pivot, zp, bw, sky, fwhm, wheel_of.get(name, 0))
        for name, pivot, zp, bw, sky, fwhm in rows
    }


# name, pivot (A), AB zero point, RMS bandwidth (A), sky (e-/s/pix), PSF FWHM (arcsec)
_UVIS_FILTERS = _filters([
    ("F225W", 2372.0, 24.04, 177.0, 0.0006, 0.080),
    ("F275W", 2710.0, 24.13, 165.0, 0.0008, 0.078),
    ("F336W", 3355.0, 24.67, 158.0, 0.0020, 0.072),
    ("F438W", 4326.0, 24.83, 199.0, 0.0150, 0.070),
    ("F475W", 4773.0, 25.69, 421.0, 0.0400, 0.069),
    ("F555W", 5308.0, 25.81, 517.0, 0.0500, 0.069),
    ("F606W", 5889.0, 26.08, 660.0, 0.0900, 0.070),
    ("F625W", 6242.0, 25.52, 466.0, 0.0600, 0.072),
    ("F775W", 7651.0, 24.85, 437.0, 0.0500, 0.075),
    ("F814W", 8039.0, 25.09, 666.0, 0.0700, 0.077),
    ("F850LP", 9176.0, 23.82, 467.0, 0.0250, 0.085),
])
_IR_FILTERS = _filters([
    ("F105W", 10552.0, 26.27, 865.0, 0.60, 0.127),
    ("F110W", 11534.0, 26.82, 1428.0, 1.10, 0.130),
    ("F125W", 12486.0, 26.23, 866.0, 0.65, 0.136),
    ("F140W", 13923.0, 26.45, 1132.0, 0.85, 0.142),
    ("F160W", 15369.0, 25.95, 826.0, 0.60, 0.151),
])
_HRC_WHEEL1 = ("F475W", "F555W", "F606W", "F625W", "F775W", "F850LP")
_HRC_FILTERS = _filters([
    ("F220W", 2255.0, 23.55, 187.0, 0.0002, 0.045),
    ("F250W", 2716.0, 23.72, 239.0, 0.0003, 0.046),
    ("F330W", 3363.0, 24.08, 174.0, 0.0006, 0.047),
    ("F435W", 4311.0, 25.19, 310.0, 0.0050, 0.048),
    ("F475W", 4776.0, 25.62, 420.0, 0.0100, 0.050),
    ("F555W", 5356.0, 25.26, 358.0, 0.0120, 0.052),
    ("F606W", 5888.0, 25.98, 665.0, 0.0200, 0.055),
    ("F625W", 6296.0, 25.21, 416.0, 0.0150, 0.058),
    ("F775W", 7665.0, 24.53, 437.0, 0.0100, 0.068),
    ("F814W", 8115.0, 24.86, 703.0, 0.0120, 0.072),
    ("F850LP", 9145.0, 24.32, 467.0, 0.0050, 0.080),
], wheel_of={**{name: 1 for name in _HRC_WHEEL1},
             **{name: 2 for name in ("F220W", "F250W", "F330W", "F435W", "F814W")}})

# ACS/WFC: pivots and RMS bandwidths from the ACS photometric keywords (PHOTPLAM, PHOTBW);
# AB zero points in electrons/s at the 2012 sensitivity (F814W gives the template's PHOTFLAM
# 7.0769e-20 at PHOTPLAM 8045.53); PSF core FWHM about 2 pixels (ACS Instrument Handbook 5.6).
_WFC_WHEEL1 = ("F475W", "F555W", "F606W", "F625W", "F775W", "F850LP")
_WFC_FILTERS = _filters([
    ("F435W", 4329.9, 25.66, 293.0, 0.022, 0.095),
    ("F475W", 4747.0, 26.06, 420.0, 0.045, 0.096),
    ("F555W", 5361.0, 25.72, 360.0, 0.045, 0.097),
    ("F606W", 5921.9, 26.50, 672.0, 0.085, 0.098),
    ("F625W", 6311.9, 25.91, 415.0, 0.065, 0.100),
    ("F775W", 7693.5, 25.67, 434.0, 0.065, 0.105),
    ("F814W", 8045.5, 25.94, 653.1, 0.090, 0.108),
    ("F850LP", 9031.5, 24.86, 539.0, 0.040, 0.120),
], wheel_of={**{name: 1 for name in _WFC_WHEEL1}, **{name: 2 for name in ("F435W", "F814W")}})

INSTRUMENTS: dict[str, DetectorModel] = {
    "wfc3-uvis": DetectorModel(
        key="wfc3-uvis", instrument="WFC3", detector="UVIS", letter="i", suffix="flc",
        chip_shape=(2051, 4096), pixel_scale=0.0396, pixel_size_um=15.0, depletion_um=12.0,
        gain=1.55, read_noise=3.1, dark_rate=0.002, full_well=63000.0, bunit="ELECTRONS",
        cr_in_pixels=True, bad_column_bit=DQ.BAD_COLUMN, default_exptime=400.0, overhead=150.0,
        star_density=300.0, galaxy_density=15.0, dither_pixels=4.0, default_filter="F555W",
        filters=_UVIS_FILTERS,
    ),
    "wfc3-ir": DetectorModel(
        key="wfc3-ir", instrument="WFC3", detector="IR", letter="i", suffix="flt",
        chip_shape=(1014, 1014), pixel_scale=0.1283, pixel_size_um=18.0, depletion_um=10.0,
        gain=2.35, read_noise=15.0, dark_rate=0.05, full_well=78000.0, bunit="ELECTRONS/S",
        cr_in_pixels=False, bad_column_bit=DQ.BAD_DETECTOR_PIXEL, default_exptime=352.94,
        overhead=60.0, star_density=300.0, galaxy_density=15.0, dither_pixels=3.0,
        default_filter="F160W", filters=_IR_FILTERS,
    ),
    "acs-hrc": DetectorModel(
        key="acs-hrc", instrument="ACS", detector="HRC", letter="j", suffix="flt",
        chip_shape=(1024, 1024), pixel_scale=0.0265, pixel_size_um=21.0, depletion_um=14.0,
        gain=2.2, read_noise=4.7, dark_rate=0.006, full_well=155000.0, bunit="ELECTRONS",
        cr_in_pixels=True, bad_column_bit=DQ.BAD_COLUMN, default_exptime=300.0, overhead=120.0,
        star_density=1500.0, galaxy_density=30.0, dither_pixels=4.0, default_filter="F606W",
        filters=_HRC_FILTERS,
    ),
    # ACS/WFC after SM4: gain 2 e-/DN, read noise ~4.2 e- (mean of the template's READNSEA-D),
    # full well ~84700 e-, dark ~0.012 e-/s with many radiation-induced hot pixels.
    "acs-wfc": DetectorModel(
        key="acs-wfc", instrument="ACS", detector="WFC", letter="j", suffix="flc",
        chip_shape=(2048, 4096), pixel_scale=0.05, pixel_size_um=15.0, depletion_um=13.0,
        gain=2.0, read_noise=4.2, dark_rate=0.012, full_well=84700.0, bunit="ELECTRONS",
        cr_in_pixels=True, bad_column_bit=DQ.BAD_COLUMN, default_exptime=450.0, overhead=150.0,
        star_density=300.0, galaxy_density=15.0, dither_pixels=5.0, default_filter="F606W",
        filters=_WFC_FILTERS, hot_fraction=5e-3,
    ),
}


def get_detector(instrument: str) -> DetectorModel:
    """Return the :class:`DetectorModel` of an instrument key, or raise InvalidParameterError."""
    key = str(instrument).strip().lower()
    if key not in INSTRUMENTS:
        raise InvalidParameterError(
            f"unknown instrument {instrument!r}; choose one of {', '.join(INSTRUMENTS)}"
        )
    return INSTRUMENTS[key]
