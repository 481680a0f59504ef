"""Build the library PSFs of the point-source finder (``hapgpu/data/psfs``).

drizzlepac's ``find_point_sources`` deconvolves the total detection image with a library PSF
per instrument, detector and filter (TinyTim models shipped as
``pars/psfs/<instr>/<det>/<instr>_<det>_<filter>.fits``). hapgpu ships its own library instead,
made with the functional form of the optics model its simulator renders stars with (no
TinyTim file is used or copied).

Model
    The simulator's optics model, :func:`hapgpu.simulate.make_psf` (a circular Gaussian core
    plus a halo three times wider carrying 12 % of the light), with the core FWHM of the
    telescope optics alone: ``1.029 lambda / D`` (the FWHM of the Airy pattern; Born & Wolf,
    *Principles of Optics*, §8.5.2), ``lambda`` the filter's pivot wavelength
    (:attr:`~hapgpu.simulate._instruments.FilterModel.pivot`) and ``D = 2.4 m`` (HST primary
    mirror). Like the TinyTim library that drizzlepac ships (its headers: "the charge
    diffusion kernel was NOT applied"), the library PSF holds no detector broadening (charge
    diffusion, IPC), so it is sharper than the stars the simulator draws (whose FWHM are the
    measured WFC3/ACS Instrument Handbook values, detector included). The resulting core FWHM
    agrees with Gaussian fits to drizzlepac's library files (WFC3/UVIS F555W 1.185 pixels
    here, 1.184 there; F814W 1.795 and 1.754), which sets the drizzled PSF FWHM the
    UserStarFinder kernel uses. For every filter of every detector in
    :data:`hapgpu.simulate._instruments.INSTRUMENTS`; ``clear`` (drizzlepac's name for an
    observation without a recognisable band filter) uses the detector's default filter.
Centring
    drizzlepac places pixel ``n // 2`` of a library array at the chip centre. Its WFC3/IR
    library arrays are even-sized (92 pixels) with the PSF centroid about a third of a pixel
    below and left of that pixel (``-0.31 .. -0.35`` for F105W, F110W, F140W; ``-0.25`` for
    F160W), which widens the drizzled PSF (its fitted FWHM 2.02 pixels on a two-filter IR
    total, against 1.50 for a centred optics PSF). The WFC3/IR library PSFs are therefore
    centred at ``(-1/3, -1/3)`` pixel from the centre of their middle pixel
    (:data:`CENTRE_OFFSET`); the others on it.
Sampling
    The detector pixel (:attr:`DetectorModel.pixel_scale`), each pixel holding the exact
    integral of the profile over its area (:func:`hapgpu.kernels.render.add_point_sources`,
    the simulator's renderer), centred on the centre of the middle pixel.
Size
    An odd square of side ``2 * ceil(8 * sigma_halo) + 1`` pixels, holding all but ~1e-14 of
    the light, so that drizzlepac's Hamming taper (``_create_input_psf``) acts on the wings
    only. The whole library is well under 1 MB.
Normalisation
    The pixel values sum to 1 (float32), as the TinyTim files do; the pipeline scales them to
    a total of 1e5 before drizzling.

Header keywords: ``INSTRUME``, ``DETECTOR``, ``FILTER``, ``PIXSCALE`` (arcsec),
``FWHM`` (core FWHM, arcsec), ``FWHMPIX`` (FWHM of the model profile, core plus halo,
pixels), ``HALOFRAC``, ``HALOWID``, ``XOFFSET``, ``YOFFSET`` (centre offset, pixels),
``PSFMODEL``.

Run ``python -m hapgpu.catalogs._build_psfs [OUTDIR]`` (default: the package's
``data/psfs``). Files are written under a temporary name and renamed.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy.optimize import brentq

from ..kernels.render import add_point_sources
from ..simulate._instruments import INSTRUMENTS
from ..simulate._profiles import make_psf

__all__ = ["CENTRE_OFFSET", "HST_APERTURE_M", "PSF_DIR", "build_psf_library",
           "model_fwhm_pixels", "optics_fwhm_arcsec", "render_library_psf"]

PSF_DIR = Path(__file__).resolve().parent.parent / "data" / "psfs"
_SIGMAS_OF_STAMP = 8.0
#: HST primary mirror diameter, metres.
HST_APERTURE_M = 2.4
#: FWHM of the Airy pattern in units of lambda / D.
AIRY_FWHM = 1.029
_RAD_TO_ARCSEC = 180.0 / math.pi * 3600.0
#: (y, x) offset, pixels, of the PSF centre from the centre of the middle pixel, per detector.
CENTRE_OFFSET = {"wfc3-ir": (-1.0 / 3.0, -1.0 / 3.0)}


def optics_fwhm_arcsec(pivot_angstrom: float) -> float:
    """Diffraction-limited core FWHM (arcsec) of HST at a wavelength: ``1.029 lambda / D``.

    Parameters
    ----------
    pivot_angstrom : float
        Wavelength (the filter's pivot), Angstrom.

    Returns
    -------
    float
    """
    return AIRY_FWHM * pivot_angstrom * 1e-10 / HST_APERTURE_M * _RAD_TO_ARCSEC


def model_fwhm_pixels(sigmas, weights) -> float:
    """Full width at half maximum (pixels) of a circular sum of Gaussians.

    Parameters
    ----------
    sigmas, weights : array_like, shape (k,)
        Standard deviations (pixels) and flux fractions of the components.

    Returns
    -------
    float
        ``2 r`` where the continuous profile ``sum w_i exp(-r**2 / 2 s_i**2) / s_i**2`` falls
        to half its central value (root found by Brent's method).
    """
    sigmas = np.asarray(sigmas, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    amplitude = weights / sigmas**2

    def excess(r):
        return float(np.sum(amplitude * np.exp(-0.5 * (r / sigmas) ** 2)) - 0.5 * amplitude.sum())

    return 2.0 * brentq(excess, 0.0, 10.0 * float(sigmas.max()))


def render_library_psf(instrument_key: str, filter_name: str) -> tuple[np.ndarray, fits.Header]:
    """Render one library PSF.

    Parameters
    ----------
    instrument_key : str
        Simulator detector key (``"wfc3-uvis"``, ``"wfc3-ir"``, ``"acs-hrc"``, ``"acs-wfc"``).
    filter_name : str
        Filter name, or ``"clear"`` for the detector's default filter.

    Returns
    -------
    data : ndarray, float32, shape (n, n)
        Pixel-integrated PSF, sum 1, centred on pixel ``(n // 2, n // 2)`` plus
        :data:`CENTRE_OFFSET`.
    header : astropy.io.fits.Header
        The keywords listed in the module docstring.
    """
    det = INSTRUMENTS[instrument_key]
    name = det.default_filter if filter_name.lower() == "clear" else filter_name
    filt = det.filter(name)
    fwhm = optics_fwhm_arcsec(filt.pivot)
    psf = make_psf(fwhm, det.pixel_scale)
    half = math.ceil(_SIGMAS_OF_STAMP * float(psf.sigmas.max()))
    size = 2 * half + 1
    image = np.zeros((size, size), dtype=np.float64)
    dy, dx = CENTRE_OFFSET.get(instrument_key, (0.0, 0.0))
    add_point_sources(image, np.array([half + dx]), np.array([half + dy]), np.array([1.0]),
                      np.ascontiguousarray(psf.sigmas, dtype=np.float64),
                      np.ascontiguousarray(psf.weights, dtype=np.float64), half)
    image /= image.sum()
    header = fits.Header()
    header["INSTRUME"] = (det.instrument, "instrument")
    header["DETECTOR"] = (det.detector, "detector")
    header["FILTER"] = (filter_name.lower(), "PSF filter")
    header["PIXSCALE"] = (det.pixel_scale, "pixel scale (arcsec)")
    header["FWHM"] = (float(fwhm), "core FWHM, 1.029 lambda/D (arcsec)")
    header["FWHMPIX"] = (round(model_fwhm_pixels(psf.sigmas, psf.weights), 6),
                         "FWHM of the core+halo profile (pixels)")
    header["HALOFRAC"] = (float(psf.weights[-1]), "flux fraction of the halo")
    header["HALOWID"] = (float(psf.sigmas[-1] / psf.sigmas[0]), "halo sigma / core sigma")
    header["XOFFSET"] = (round(dx, 6), "PSF centre - middle pixel centre, x (pixels)")
    header["YOFFSET"] = (round(dy, 6), "PSF centre - middle pixel centre, y (pixels)")
    header["PSFMODEL"] = ("hapgpu.simulate.make_psf", "pixel-integrated Gaussian core+halo")
    return image.astype(np.float32), header


def library_filters(instrument_key: str) -> list[str]:
    """Lower-case filter names of the library of one detector (the simulator's plus clear)."""
    return [name.lower() for name in INSTRUMENTS[instrument_key].filters] + ["clear"]


def build_psf_library(outdir=None) -> list[Path]:
    """Write every library PSF under ``outdir/<instr>/<det>/<instr>_<det>_<filter>.fits``.

    Parameters
    ----------
    outdir : str or pathlib.Path, optional
        Library root; defaults to the package's ``data/psfs``.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    root = Path(outdir) if outdir is not None else PSF_DIR
    written = []
    for key, det in INSTRUMENTS.items():
        instr, detector = det.instrument.lower(), det.detector.lower()
        folder = root / instr / detector
        folder.mkdir(parents=True, exist_ok=True)
        for filt in library_filters(key):
            data, header = render_library_psf(key, filt)
            path = folder / f"{instr}_{detector}_{filt}.fits"
            tmp = path.with_name(path.name + ".tmp")
            fits.PrimaryHDU(data=data, header=header).writeto(tmp, overwrite=True)
            os.replace(tmp, path)
            written.append(path)
    return written


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    paths = build_psf_library(argv[0] if argv else None)
    total = sum(p.stat().st_size for p in paths)
    print(f"wrote {len(paths)} library PSFs ({total / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
