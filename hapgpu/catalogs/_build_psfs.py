"""Build the library PSFs of the point-source finder (``hapgpu/data/psfs``).

drizzlepac's ``find_point_sources`` deconvolves the total detection image with a library PSF
per instrument, detector and filter (TinyTim models shipped as
``pars/psfs/<instr>/<det>/<instr>_<det>_<filter>.fits``). hapgpu ships its own library instead,
made from the optics model its simulator renders stars with, so that detection on simulated
products uses the PSF the stars were drawn with.

Model
    :func:`hapgpu.simulate.make_psf`: a circular Gaussian core of FWHM
    :attr:`~hapgpu.simulate._instruments.FilterModel.fwhm` (arcsec) plus a halo three times
    wider carrying 12 % of the light, for every filter of every detector in
    :data:`hapgpu.simulate._instruments.INSTRUMENTS`. ``clear`` (drizzlepac's name for an
    observation without a recognisable band filter) uses the detector's default filter.
Sampling
    The detector pixel (:attr:`DetectorModel.pixel_scale`), each pixel holding the exact
    integral of the profile over its area (:func:`hapgpu.kernels.render.add_point_sources`,
    the simulator's renderer), centred on the centre of the middle pixel.
Size
    An odd square of side ``2 * ceil(8 * sigma_halo) + 1`` pixels (25 to 53; WFC3/UVIS F555W
    37, WFC3/IR F160W 25, ACS/WFC F814W 47), holding all but ~1e-14 of the light, so that
    drizzlepac's Hamming taper (``_create_input_psf``) acts on the wings only. The whole
    library is about 0.5 MB.
Normalisation
    The pixel values sum to 1 (float32), as the TinyTim files do; the pipeline scales them to
    a total of 1e5 before drizzling.

Header keywords: ``INSTRUME``, ``DETECTOR``, ``FILTER``, ``PIXSCALE`` (arcsec),
``FWHM`` (core FWHM, arcsec), ``FWHMPIX`` (FWHM of the model profile, core plus halo,
pixels), ``HALOFRAC``, ``HALOWID``, ``PSFMODEL``.

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

__all__ = ["PSF_DIR", "build_psf_library", "model_fwhm_pixels", "render_library_psf"]

PSF_DIR = Path(__file__).resolve().parent.parent / "data" / "psfs"
_SIGMAS_OF_STAMP = 8.0


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
        Pixel-integrated PSF, sum 1, centred on pixel ``(n // 2, n // 2)``.
    header : astropy.io.fits.Header
        The keywords listed in the module docstring.
    """
    det = INSTRUMENTS[instrument_key]
    name = det.default_filter if filter_name.lower() == "clear" else filter_name
    filt = det.filter(name)
    psf = make_psf(filt.fwhm, det.pixel_scale)
    half = math.ceil(_SIGMAS_OF_STAMP * float(psf.sigmas.max()))
    size = 2 * half + 1
    image = np.zeros((size, size), dtype=np.float64)
    centre = np.array([float(half)])
    add_point_sources(image, centre, centre.copy(), np.array([1.0]),
                      np.ascontiguousarray(psf.sigmas, dtype=np.float64),
                      np.ascontiguousarray(psf.weights, dtype=np.float64), half)
    image /= image.sum()
    header = fits.Header()
    header["INSTRUME"] = (det.instrument, "instrument")
    header["DETECTOR"] = (det.detector, "detector")
    header["FILTER"] = (filter_name.lower(), "PSF filter")
    header["PIXSCALE"] = (det.pixel_scale, "pixel scale (arcsec)")
    header["FWHM"] = (filt.fwhm, "core FWHM (arcsec)")
    header["FWHMPIX"] = (round(model_fwhm_pixels(psf.sigmas, psf.weights), 6),
                         "FWHM of the core+halo profile (pixels)")
    header["HALOFRAC"] = (float(psf.weights[-1]), "flux fraction of the halo")
    header["HALOWID"] = (float(psf.sigmas[-1] / psf.sigmas[0]), "halo sigma / core sigma")
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
