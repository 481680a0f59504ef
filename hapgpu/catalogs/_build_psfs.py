"""Build the library PSFs of the point-source finder (``hapgpu/data/psfs``).

drizzlepac's ``find_point_sources`` deconvolves the total detection image with a library PSF
per instrument, detector and filter (TinyTim models shipped as
``pars/psfs/<instr>/<det>/<instr>_<det>_<filter>.fits``). hapgpu ships its own library instead,
computed from first principles by the simulator's optics module, :mod:`hapgpu.simulate._optics`
(no TinyTim file, code or table is used or copied).

Model (:func:`hapgpu.simulate._optics.pixel_psf`; every source in that module's docstring)
    Fraunhofer diffraction of HST's entrance pupil: the 2.4 m primary, the secondary mirror's
    central obscuration (0.330 of the radius), the two spider vanes along V2 and V3 (0.022 of
    the radius wide) and the three primary-mirror pads (radius 0.065 at 0.892 of the radius,
    120 degrees apart), as published for HST's optical modelling; for WFC3/IR, behind the
    camera's cold mask (opening 0.9755, stop 0.354, vanes 0.061 of the radius: TinyTim's
    public ``wfc3_ir.pup`` values, :data:`hapgpu.simulate._optics.WFC3_IR_PUPIL`); then the
    image-quality
    terms of :data:`hapgpu.simulate._optics.DETECTOR_IMAGE_QUALITY` (every number and its
    source in that module's docstring): for WFC3, the mid-frequency wavefront error (20 nm
    rms, 5 cm correlation length: a scattered halo holding
    ``1 - exp(-(2 pi 20 nm / lambda)**2)`` of the light, 5.5 % at F555W) fitted to the
    WFC3/UVIS encircled-energy table, 5 mas rms pointing jitter and a detector spread
    before pixel integration (0.1 pixel rms for WFC3/UVIS, 0.05 for WFC3/IR) chosen so that
    the library's MTF follows drizzlepac's library
    (tests/simulate/test_optics_encircled_energy.py). Against drizzlepac's TinyTim library
    (measured with both centred on a pixel; TinyTim's re-centred by a cubic spline shift):
    peak pixel and encircled energy at 1, 2, 3, 5, 10 pixels, WFC3/UVIS F555W 0.278; 0.416,
    0.702, 0.824, 0.863, 0.914 (TinyTim 0.259; 0.417, 0.723, 0.821, 0.866, 0.923; the pure
    diffraction model was 0.318; 0.456, 0.743, 0.872, 0.909, 0.951), F814W 0.165; 0.317,
    0.620, 0.743, 0.868, 0.916 (0.165; 0.317, 0.619, 0.743, 0.869, 0.919; 0.176; 0.332,
    0.637, 0.761, 0.886, 0.933); WFC3/IR (without the cold mask, 0.15 pixel spread) F110W
    0.497; 0.614, 0.852, 0.891, 0.927, 0.963 (0.252; 0.459, 0.837, 0.862, 0.912, 0.960),
    F160W 0.391; 0.518, 0.786, 0.882, 0.916, 0.954 (0.273; 0.435, 0.762, 0.851, 0.890,
    0.946). With the cold mask the IR model follows TinyTim's encircled energy within 0.01
    at 1-10 pixels (measured at TinyTim's centroids, ``_optics`` docstring). The ACS/WFC and ACS/HRC
    libraries carry none of these terms (no ``WFERMS``... keywords): they are the pure
    diffraction pattern with the charge-diffusion kernel, byte for byte the files shipped
    before the terms were added.
    Computed by a matrix Fourier transform directly on the detector's sub-pixel grid.
Detector geometry
    The linear part of each detector's geometric distortion at its reference pixel (the CD
    matrix of the shipped exposure template, ``hapgpu/data/templates``) and its orientation to
    the telescope's V2/V3 axes (the template's PA_V3): WFC3/UVIS 0.0398 arcsec pixels with
    sides 86.4 degrees apart, WFC3/IR 0.1354 x 0.1209 arcsec, ACS/WFC and ACS/HRC skewed, with
    the diffraction spikes at 45 degrees to the WFC3 rows and along the ACS ones.
Passband
    :data:`N_WAVELENGTHS` wavelengths (Gauss-Legendre nodes) over a flat throughput of the
    filter's RMS bandwidth around its pivot
    (:attr:`~hapgpu.simulate._instruments.FilterModel.pivot`, ``bandwidth``), weighted for a
    flat-F_lambda source.
Pixels
    Each pixel holds the mean of :data:`OVERSAMPLE` x :data:`OVERSAMPLE` sub-pixel samples of
    the optical PSF. CCD libraries (WFC3/UVIS, ACS) are then convolved with the charge-
    diffusion kernel of :data:`hapgpu.simulate._optics.DETECTOR_OPTICS` (4 % to each side
    neighbour, 0.4 % to each diagonal one); the WFC3/IR library is not convolved with its
    inter-pixel-capacitance kernel (:data:`LIBRARY_DETECTOR_KERNEL`). That choice is measured:
    against drizzlepac's catalogs of the same products (tests/catalogs/
    test_catalogs_reference.py) charge diffusion brings the bright UVIS sources' aperture
    magnitudes within 0.011 mag (0.033 without), while IPC lowers the IR found fraction
    (about 84 % against 87-88 %) (both measured with the pure diffraction model, before the
    image-quality terms).
Centring
    drizzlepac places pixel ``n // 2`` of a library array at the chip centre. Its WFC3/IR
    library arrays are even-sized (92 pixels) with the PSF centroid about a third of a pixel
    below and left of that pixel (``-0.31 .. -0.35`` for F105W, F110W, F140W; ``-0.25`` for
    F160W), which widens the drizzled PSF. The WFC3/IR library PSFs are therefore centred at
    ``(-1/3, -1/3)`` pixel from the centre of their middle pixel (:data:`CENTRE_OFFSET`;
    measured: about 87 % of drizzlepac's IR sources found, 84 % with the PSF centred and
    83 % at -1/4); the others on it.
Size
    An odd square of :data:`STAMP_SIZE` pixels per detector. For WFC3 about the sky extent of
    drizzlepac's arrays (149 UVIS pixels, 6 arcsec; 93 IR pixels, 12 arcsec): the Hamming
    taper drizzlepac applies (``_create_input_psf``) spans the whole array, so the extent
    sets the tapered wings. ACS: 101 pixels (5 arcsec WFC, 2.7 arcsec HRC) to keep the
    library small (about 2.2 MB).
Simulator
    The simulator draws its stars with the same optics model: each library PSF is fitted
    once by a circular Gaussian mixture (:func:`hapgpu.simulate.optics_psf`, shipped as
    ``hapgpu/data/optics_psfs.json``), so the end-to-end catalog tests deconvolve simulated
    stars with the model they were drawn with, as drizzlepac deconvolves them with TinyTim's.
    Measured (tests/catalogs/test_catalogs_reference.py, first try of the image-quality
    terms, 0.25 / 0.4 pixel detector spreads): with the new library and the stars of the
    pure diffraction model, 94.2 % (filters) and 92.1 % (total) of drizzlepac's UVIS point
    sources found, 78.1 % and 80.1 % IR; with the stars drawn from the new model too, 94.8 %
    and 94.5 % UVIS, 79.7 % and 79.9 % IR. The stars therefore follow the library's model
    (and must: the shipped table is the fit of the shipped library, tests/
    test_simulate_optics_psf.py). With the terms at 0.1 / 0.15 pixel (WFC3 only), before
    the IR cold mask: UVIS filter catalogs 95.0 % (114 of 120), total 94.4 % (102 of 108;
    of the 6 missed, 5 are 25.3-26.0 ABmag F814W stars 5-9 pixels from brighter stars,
    whose deconvolved islands are no peak beside the neighbour's, and 1 is no simulated
    source: tests/catalogs/test_catalogs_reference.py, source by source); IR 89.8 %
    (filters) and 91.6 % (total).
    With the IR cold mask and a 0.05 pixel IR spread (shipped): IR 95.8 % (filters, 181 of
    189) and 96.1 % (total, 172 of 179), aperture magnitudes of the S/N > 20 sources within
    0.01 mag except one per filter in MagAp2 (0.077 mag F160W, 0.100 F110W); UVIS
    unchanged. TinyTim's Zernike terms Z4-Z8 as annular Zernike wavefront terms dropped
    the IR catalogs to 77.0 / 78.5 % (78.7 / 79.3 % with the OTA pupil alone), and
    TinyTim's UVIS2 terms took the UVIS total to 94.7 % but the filters to 94.96 %, so
    the libraries carry no wavefront term (``_optics`` docstring).
Normalisation
    The pixel values sum to 1 (float32), as drizzlepac's files do; the pipeline scales them
    to a total of 1e5 before drizzling.

Header keywords: ``INSTRUME``, ``DETECTOR``, ``FILTER``, ``PIXSCALE`` (nominal, arcsec),
``PIXSCLX``, ``PIXSCLY`` (pixel sides on the sky, arcsec), ``FWHM`` (``1.029 lambda_pivot /
D``, arcsec), ``WAVE1``, ``WAVEN``, ``NWAVE`` (passband sampling), ``OVERSAMP``, ``DETKERN``
(detector kernel applied), ``XOFFSET``, ``YOFFSET`` (centre offset, pixels), ``WFERMS``,
``WFECORR`` (mid-frequency wavefront error, nm rms, and its correlation length, m),
``JITTER`` (mas rms), ``DETSIGMA`` (detector spread, pixels rms; these four on the WFC3
libraries only), ``MASKOUT``, ``MASKOBS``, ``MASKSPID`` (cold mask opening, stop and vane
width, primary radii) on the libraries of detectors with their own pupil (WFC3/IR),
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

from ..simulate._instruments import INSTRUMENTS
from ..simulate._optics import (
    DETECTOR_IMAGE_QUALITY,
    DETECTOR_OPTICS,
    bandpass_wavelengths,
    pixel_psf,
)

__all__ = ["CENTRE_OFFSET", "HST_APERTURE_M", "LIBRARY_DETECTOR_KERNEL", "N_WAVELENGTHS",
           "OVERSAMPLE", "PSF_DIR", "STAMP_SIZE", "build_psf_library", "library_filters",
           "optics_fwhm_arcsec", "render_library_psf"]

PSF_DIR = Path(__file__).resolve().parent.parent / "data" / "psfs"
#: HST primary mirror diameter, metres.
HST_APERTURE_M = 2.4
#: FWHM of the Airy pattern in units of lambda / D.
AIRY_FWHM = 1.029
_RAD_TO_ARCSEC = 180.0 / math.pi * 3600.0
#: (y, x) offset, pixels, of the PSF centre from the centre of the middle pixel, per detector.
CENTRE_OFFSET = {"wfc3-ir": (-1.0 / 3.0, -1.0 / 3.0)}
#: Stamp side per detector, pixels (odd; about the sky extent of drizzlepac's library arrays).
STAMP_SIZE = {"wfc3-uvis": 149, "wfc3-ir": 93, "acs-wfc": 101, "acs-hrc": 101}
#: Wavelengths over each passband, sub-pixel points per pixel side.
N_WAVELENGTHS = 5
OVERSAMPLE = 5
#: Whether each detector's library carries its detector kernel (see the module docstring).
LIBRARY_DETECTOR_KERNEL = {"wfc3-uvis": True, "wfc3-ir": False, "acs-wfc": True,
                           "acs-hrc": True}


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


def render_library_psf(instrument_key: str, filter_name: str, *,
                       detector_kernel: bool | None = None,
                       centre=None) -> tuple[np.ndarray, fits.Header]:
    """Render one library PSF with :func:`hapgpu.simulate._optics.pixel_psf`.

    Parameters
    ----------
    instrument_key : str
        Simulator detector key (``"wfc3-uvis"``, ``"wfc3-ir"``, ``"acs-hrc"``, ``"acs-wfc"``).
    filter_name : str
        Filter name, or ``"clear"`` for the detector's default filter.
    detector_kernel : bool, optional
        Apply the detector's charge-diffusion / IPC kernel (default: the detector's
        :data:`LIBRARY_DETECTOR_KERNEL`).
    centre : (float, float), optional
        ``(dy, dx)`` of the PSF centre from the centre of the middle pixel; default
        :data:`CENTRE_OFFSET`.

    Returns
    -------
    data : ndarray, float32, shape (n, n)
        Pixel-integrated PSF, sum 1, ``n`` = :data:`STAMP_SIZE` of the detector.
    header : astropy.io.fits.Header
        The keywords listed in the module docstring.
    """
    det = INSTRUMENTS[instrument_key]
    if detector_kernel is None:
        detector_kernel = LIBRARY_DETECTOR_KERNEL[instrument_key]
    name = det.default_filter if filter_name.lower() == "clear" else filter_name
    filt = det.filter(name)
    optics = DETECTOR_OPTICS[instrument_key]
    wavelengths, weights = bandpass_wavelengths(filt.pivot, filt.bandwidth, N_WAVELENGTHS)
    size = STAMP_SIZE[instrument_key]
    dy, dx = CENTRE_OFFSET.get(instrument_key, (0.0, 0.0)) if centre is None else centre
    quality = DETECTOR_IMAGE_QUALITY.get(instrument_key)
    image = pixel_psf(optics, wavelengths, weights, size, centre=(dy, dx), oversample=OVERSAMPLE,
                      detector_kernel=detector_kernel, quality=quality)
    image /= image.sum()
    sx, sy = optics.pixel_scales
    header = fits.Header()
    header["INSTRUME"] = (det.instrument, "instrument")
    header["DETECTOR"] = (det.detector, "detector")
    header["FILTER"] = (filter_name.lower(), "PSF filter")
    header["PIXSCALE"] = (det.pixel_scale, "nominal pixel scale (arcsec)")
    header["PIXSCLX"] = (round(sx, 6), "x pixel side on the sky (arcsec)")
    header["PIXSCLY"] = (round(sy, 6), "y pixel side on the sky (arcsec)")
    header["FWHM"] = (float(optics_fwhm_arcsec(filt.pivot)), "1.029 lambda_pivot/D (arcsec)")
    header["WAVE1"] = (round(float(wavelengths[0]), 3), "shortest wavelength (Angstrom)")
    header["WAVEN"] = (round(float(wavelengths[-1]), 3), "longest wavelength (Angstrom)")
    header["NWAVE"] = (len(wavelengths), "wavelengths over the passband")
    header["OVERSAMP"] = (OVERSAMPLE, "sub-pixel points per pixel side")
    header["DETKERN"] = (bool(detector_kernel), optics.kernel_source + " kernel applied")
    header["XOFFSET"] = (round(dx, 6), "PSF centre - middle pixel centre, x (pixels)")
    header["YOFFSET"] = (round(dy, 6), "PSF centre - middle pixel centre, y (pixels)")
    if quality is not None:
        header["WFERMS"] = (quality.mid_frequency_rms_nm, "mid-frequency wavefront error (nm rms)")
        header["WFECORR"] = (quality.mid_frequency_scale_m,
                             "its correlation length on the pupil (m)")
        header["JITTER"] = (quality.jitter_mas, "pointing jitter per axis (mas rms)")
        header["DETSIGMA"] = (round(quality.detector_sigma_px, 6), "detector spread (pixels rms)")
    pupil = optics.pupil
    if pupil is not None:
        header["MASKOUT"] = (pupil.mask_outer_radius, "cold mask outer radius (primary radii)")
        header["MASKOBS"] = (pupil.mask_obscuration, "cold mask central stop radius")
        header["MASKSPID"] = (pupil.mask_spider_width, "cold mask vane width")
    header["PSFMODEL"] = ("hapgpu.simulate._optics.pixel_psf", "HST pupil diffraction")
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
