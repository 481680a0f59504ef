"""HAP aperture photometry: two circular apertures and a sky annulus per position, with the
IRAF/DAOPHOT-style flux, error and ABMAG formulae of drizzlepac 3.11
(``photometry_tools.iraf_style_photometry``; hap-pipeline.md §1.13 B):

* ``Flux_i = sum_i - MSky * A_i`` with ``A_i = pi r_i**2`` and MSky the clipped annulus statistic
  (``mode = 3 median - 2 mean`` by default);
* ``FluxErr_i = sqrt(sum_err_i**2 / gain + A_i std**2 (1 + A_i / nsky))``;
* ``Mag = -2.5 log10(Flux PHOTFLAM) - 21.10 - 5 log10(PHOTPLAM) + 18.6921`` (ABMAG; NaN where
  Flux <= 0; the fill value -9999 for every source when |PHOTFLAM| < 1e-22);
* ``MagErr = 1.0857 FluxErr / Flux``; ``CI = MagAp1 - MagAp2``, masked where
  ``0 < |CI| < 1e-30`` or ``|CI| > 1e20``.

The sums and annulus statistics run as one fused per-source kernel on the backend
(:func:`hapgpu.detection.aperture_photometry` and :func:`hapgpu.detection.aperture_stats_tbl`).
"""

from __future__ import annotations

import math

import numpy as np
from astropy.table import MaskedColumn, Table

from .. import detection
from ..backend import resolve_backend
from ..errors import InvalidParameterError

__all__ = ["measure_apertures", "abmag", "FLAG", "PHOTFLAM_TOLERANCE"]

#: The catalogs' fill value for undefined numbers.
FLAG = -9999.0
#: |PHOTFLAM| below this means no photometric calibration: every magnitude is FLAG.
PHOTFLAM_TOLERANCE = 1.0e-22
_STATISTICS = {"mean": "aperture_mean", "median": "aperture_median", "mode": "aperture_mode"}


def abmag(flux, photflam, photplam):
    """ABMAG of a flux in electron/s (NaN where the flux is not positive).

    ``-2.5 log10(flux PHOTFLAM) - 21.10 - 5 log10(PHOTPLAM) + 18.6921`` (STMAG zero point
    21.10, then the STMAG → ABMAG pivot-wavelength term).

    Parameters
    ----------
    flux : array_like
        electron/s.
    photflam : float
        Inverse sensitivity, erg cm**-2 s**-1 Angstrom**-1 per electron/s.
    photplam : float
        Pivot wavelength, Angstrom.

    Returns
    -------
    numpy.ndarray
        float64 magnitudes; all FLAG when |PHOTFLAM| < 1e-22.
    """
    flux = np.asarray(flux, dtype=np.float64)
    if math.isclose(photflam, 0.0, abs_tol=PHOTFLAM_TOLERANCE):
        return FLAG + flux * 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return -2.5 * np.log10(flux * photflam) - 21.10 - 5.0 * np.log10(photplam) + 18.6921


def _concentration_index(mag1, mag2, photflam):
    if math.isclose(photflam, 0.0, abs_tol=PHOTFLAM_TOLERANCE):
        ci = np.asarray(mag1, dtype=np.float64)
        return MaskedColumn(ci, name="CI", mask=~(ci > FLAG + 1.0))
    ci = np.asarray(mag1, dtype=np.float64) - np.asarray(mag2, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        mask = ((np.abs(ci) > 0.0) & (np.abs(ci) < 1.0e-30)) | (np.abs(ci) > 1.0e20)
    return MaskedColumn(ci, name="CI", mask=mask)


def measure_apertures(data, x, y, *, error, radii, annulus, gain, photflam, photplam,
                      salgorithm="mode", backend=None) -> Table:
    """Aperture photometry of HAP point and segment catalogs at given positions.

    Parameters
    ----------
    data : array_like
        (ny, nx) filter SCI, NOT background-subtracted, electron/s (host or device).
    x, y : array_like
        (n,) 0-based pixel positions.
    error : array_like
        (ny, nx) per-pixel error (the background rms image), electron/s.
    radii : tuple of 2 float
        Aperture radii, pixels.
    annulus : tuple of 2 float
        Inner and outer sky-annulus radii, pixels.
    gain : float
        Effective gain (electrons per electron/s) dividing the summed error variance.
    photflam, photplam : float
        Photometric keywords of the filter product.
    salgorithm : {"mode", "median", "mean"}
        Sky statistic of the 3-sigma-clipped annulus pixels.
    backend : str, Backend or None

    Returns
    -------
    astropy.table.Table
        n rows; float64 columns ``FluxAp1, FluxErrAp1, MagAp1, MagErrAp1, FluxAp2, FluxErrAp2,
        MagAp2, MagErrAp2, MSkyAp2, StdevAp2`` and the masked ``CI``. Magnitudes are NaN where
        the flux is not positive.

    Raises
    ------
    InvalidParameterError
        Unknown ``salgorithm``.
    """
    if salgorithm not in _STATISTICS:
        raise InvalidParameterError(
            f"salgorithm must be one of {sorted(_STATISTICS)}, not {salgorithm!r}")
    bk = resolve_backend(backend)
    positions = np.column_stack([np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)])
    out = Table()
    if positions.shape[0] == 0:
        for name in ("FluxAp1", "FluxErrAp1", "MagAp1", "MagErrAp1", "FluxAp2", "FluxErrAp2",
                     "MagAp2", "MagErrAp2", "MSkyAp2", "StdevAp2"):
            out[name] = np.zeros(0)
        out.add_column(MaskedColumn(np.zeros(0), name="CI"))
        return out
    apertures = [detection.CircularAperture(positions, r=r) for r in radii]
    sums = detection.aperture_photometry(data, apertures, error=error, backend=bk)
    sky = detection.aperture_stats_tbl(
        data, detection.CircularAnnulus(positions, r_in=annulus[0], r_out=annulus[1]),
        sigma_clip=True, backend=bk)
    msky = np.asarray(sky[_STATISTICS[salgorithm]], dtype=np.float64)
    std = np.asarray(sky["aperture_std"], dtype=np.float64)
    nsky = np.asarray(sky["aperture_area"], dtype=np.float64)
    flat = math.isclose(photflam, 0.0, abs_tol=PHOTFLAM_TOLERANCE)
    mags = []
    for i, aperture in enumerate(apertures):
        area = aperture.area
        total = np.asarray(sums[f"aperture_sum_{i}"], dtype=np.float64)
        err = np.asarray(sums[f"aperture_sum_err_{i}"], dtype=np.float64)
        flux = total - msky * area
        with np.errstate(divide="ignore", invalid="ignore"):
            flux_err = (err ** 2.0 / gain + (area * std ** 2.0) * (1.0 + area / nsky)) ** 0.5
            positive = np.where(flux > 0, flux, np.nan)
            mag = abmag(positive, photflam, photplam)
            mag_err = mag if flat else 1.0857 * flux_err / positive
        suffix = f"Ap{i + 1}"
        out[f"Flux{suffix}"] = flux
        out[f"FluxErr{suffix}"] = flux_err
        out[f"Mag{suffix}"] = mag
        out[f"MagErr{suffix}"] = mag_err
        mags.append(mag)
    out["MSkyAp2"] = msky
    out["StdevAp2"] = std
    out.add_column(_concentration_index(mags[0], mags[1], photflam))
    return out
