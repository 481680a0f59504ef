"""Library PSFs and the PSF-deconvolution peak finder of the point catalog (§1.13 B).

This is drizzlepac 3.11's ``deconvolve_utils`` path (``find_psf``, ``get_filter_names``,
``convert_library_psf``, ``fft_deconv_img``, ``find_point_sources``), reorganised around
arrays:

1. :func:`photmode_psf_keys` picks the library PSF of each input exposure from its PHOTMODE.
2. :func:`drizzle_library_psf` scales each library PSF to 1e5, tapers it with a Hamming window,
   places it at the centre of the first exposure's first chip and drizzles it (square kernel,
   pixfrac 1.5, fill 0, DQ-0 pixels only) onto the product frame with :mod:`hapgpu.resample`.
   Only the part of the product frame around the PSF is made (a sub-frame); everything the
   later steps read lies inside it.
3. :func:`measure_psf_fwhm` fits a pixel-integrated circular Gaussian to the PSF core;
   :func:`psf_fwhm` applies drizzlepac's fallback rule.
4. :func:`fft_deconvolve` is the regularised (Wiener-like) FFT deconvolution in blocks.
5. :func:`find_psf_peaks` deconvolves, masks, finds peaks and re-finds integer peaks in the
   image.

The library itself (``hapgpu/data/psfs``) is hapgpu's own, built by
:mod:`hapgpu.catalogs._build_psfs` with the diffraction model of
:mod:`hapgpu.simulate._optics` (not TinyTim).
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.stats import gaussian_fwhm_to_sigma, gaussian_sigma_to_fwhm, sigma_clip
from astropy.wcs import WCS, FITSFixedWarning
from scipy.optimize import least_squares
from scipy.signal import windows
from scipy.special import erf

from ..backend import resolve_backend
from ..errors import InvalidInputError
from ..kernels.detection import morphology as kmorph
from ..resample import Drizzle, PixelMap

__all__ = [
    "PSF_LIBRARY",
    "PSF_PIXFRAC",
    "PSF_TOTAL_FLUX",
    "DrizzledPsf",
    "PsfPeaks",
    "center_psf",
    "drizzle_library_psf",
    "exposure_psf_keys",
    "fft_deconvolve",
    "find_psf_peaks",
    "library_psf_paths",
    "load_library_psf",
    "measure_psf_fwhm",
    "photmode_psf_keys",
    "psf_fwhm",
    "taper_library_psf",
]

log = logging.getLogger(__name__)

PSF_LIBRARY = Path(__file__).resolve().parent.parent / "data" / "psfs"
PSF_TOTAL_FLUX = 1.0e5      # convert_library_psf(total_flux=100000.0)
PSF_PIXFRAC = 1.5           # find_point_sources: convert_library_psf(..., pixfrac=1.5)
_EXCLUDED_PREFIXES = ("CAL", "MJD", "POL", "GR", "PR")
_BANDPASS_SUFFIXES = ("lp", "w", "m", "n")   # widest band first


# ----------------------------------------------------------------------------- library look-up
def photmode_psf_keys(photmode: str, detector: str) -> list[str]:
    """The library keys ``[instrument, detector, filter, ...]`` of one exposure.

    drizzlepac's ``get_filter_names``: the PHOTMODE tokens, duplicates removed in order; the
    instrument is the first token; tokens starting with CAL, MJD, POL, GR or PR are dropped;
    then, for each band suffix ``lp``, ``w``, ``m``, ``n`` in turn, the first remaining token
    after the second one with that suffix is appended. If none is, ``clear`` is. (As coded, a
    mode with two band filters, e.g. ``F350LP`` and ``F555W``, yields two filter keys, whose
    joined name exists in no library.)

    Parameters
    ----------
    photmode : str
        PHOTMODE keyword value, e.g. ``"WFC3 UVIS1 F555W MJD#57000.0 CAL"``.
    detector : str
        DETECTOR keyword value.

    Returns
    -------
    list of str
        Lower-case keys; ``"_".join(keys) + ".fits"`` is the library file name.

    Raises
    ------
    InvalidInputError
        For an empty PHOTMODE.
    """
    tokens = list(dict.fromkeys(str(photmode).split(" ")))
    if not tokens or not tokens[0]:
        raise InvalidInputError(f"PHOTMODE {photmode!r} names no instrument")
    keys = [tokens[0].lower(), str(detector).strip().lower()]
    kept = [t for t in tokens if not t.startswith(_EXCLUDED_PREFIXES)]
    found = False
    for suffix in _BANDPASS_SUFFIXES:
        for token in kept[2:]:
            if token.lower().endswith(suffix):
                keys.append(token.lower())
                found = True
                break
    if not found:
        keys.append("clear")
    return keys


def exposure_psf_keys(path) -> list[str]:
    """:func:`photmode_psf_keys` of an exposure file (PHOTMODE of SCI,1, else the primary).

    Raises
    ------
    InvalidInputError
        When the file cannot be read or has no PHOTMODE or DETECTOR keyword.
    """
    path = Path(path)
    try:
        with fits.open(path) as hdul:
            primary = hdul[0].header
            photmode = None
            if ("SCI", 1) in hdul:
                photmode = hdul["SCI", 1].header.get("PHOTMODE")
            if photmode is None:
                photmode = primary.get("PHOTMODE")
            detector = primary.get("DETECTOR")
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path}: cannot read the exposure header ({exc})") from exc
    if photmode is None or detector is None:
        raise InvalidInputError(f"{path}: no PHOTMODE or DETECTOR keyword to choose a library PSF")
    return photmode_psf_keys(photmode, detector)


def library_psf_paths(keys_per_exposure, *, library=None) -> list[Path]:
    """Library files for the exposures' keys, duplicates removed in order (``find_psf``).

    Parameters
    ----------
    keys_per_exposure : list of list of str
        :func:`photmode_psf_keys` of each input exposure.
    library : str or pathlib.Path, optional
        Library root (default :data:`PSF_LIBRARY`); files are
        ``<root>/<instr>/<det>/<instr>_<det>_<filter>.fits``, the folder taken from the first
        exposure's keys as drizzlepac does.

    Raises
    ------
    InvalidInputError
        If any of the files does not exist (drizzlepac fails on the first missing one when it
        reads it).
    """
    if not keys_per_exposure:
        raise InvalidInputError("no input exposure to choose a library PSF from")
    root = Path(library) if library is not None else PSF_LIBRARY
    folder = root / keys_per_exposure[0][0] / keys_per_exposure[0][1]
    paths = list(dict.fromkeys(folder / ("_".join(keys) + ".fits") for keys in keys_per_exposure))
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise InvalidInputError("no library PSF " + ", ".join(str(p) for p in missing))
    return paths


def load_library_psf(path) -> np.ndarray:
    """The library PSF image of ``path`` (float32, native byte order).

    Raises
    ------
    InvalidInputError
        When the file is unreadable or holds no 2-D square image.
    """
    try:
        data = fits.getdata(path)
    except (OSError, ValueError, IndexError) as exc:
        raise InvalidInputError(f"{path}: cannot read the library PSF ({exc})") from exc
    if data is None or data.ndim != 2 or data.shape[0] != data.shape[1]:
        raise InvalidInputError(f"{path}: a library PSF must be a square 2-D image")
    return np.asarray(data, dtype=np.float32)


def taper_library_psf(psf, total_flux: float = PSF_TOTAL_FLUX) -> np.ndarray:
    """Scale a library PSF to ``total_flux`` and taper it (``_create_input_psf``).

    The taper is ``sqrt(outer(h, h))`` with ``h`` the Hamming window of the PSF's length, to
    avoid edge effects when the PSF is drizzled.

    Parameters
    ----------
    psf : ndarray, shape (n, n)
    total_flux : float

    Returns
    -------
    ndarray, float32, shape (n, n)
    """
    psf = np.asarray(psf, dtype=np.float32) * np.float32(total_flux)
    h = windows.hamming(psf.shape[0])
    return (psf * np.sqrt(np.outer(h, h))).astype(np.float32)


# ----------------------------------------------------------------------------- drizzled PSF
@dataclass
class DrizzledPsf:
    """A library PSF drizzled onto (part of) the product frame.

    Attributes
    ----------
    data : ndarray, float32, shape (ny, nx)
        The drizzled PSF on the sub-frame (count rate; 0 where nothing landed).
    origin : (int, int)
        ``(y0, x0)`` of the sub-frame's first pixel in the product frame.
    """

    data: np.ndarray
    origin: tuple[int, int]


def _chip_wcs(hdul, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            return WCS(hdul["SCI", 1].header, hdul)
        except Exception as exc:  # astropy raises many types for broken headers
            raise InvalidInputError(f"{path}[SCI,1]: cannot build the WCS ({exc})") from exc


def _pixel_scale(wcs) -> float:
    cd = wcs.pixel_scale_matrix
    return math.sqrt(abs(float(np.linalg.det(cd)))) * 3600.0


def drizzle_library_psf(psfs, exposure, output_wcs, output_shape, *, pixfrac: float = PSF_PIXFRAC,
                        margin: int = 24, backend=None) -> DrizzledPsf:
    """Drizzle library PSFs, placed in the first exposure, onto the product frame.

    drizzlepac's ``convert_library_psf``: each tapered PSF (:func:`taper_library_psf`) is
    written at the centre of a zero copy of ``SCI,1`` of ``exposure`` and the copies are
    drizzled together onto the product WCS with the square kernel, ``pixfrac`` 1.5, fill
    value 0 and the exposure's pixels with DQ 0 only (AstroDrizzle's ``final_bits=0``); the
    result is the weighted mean of the PSFs in count rate. The other chips hold zeros and
    land elsewhere, so only ``SCI,1`` is drizzled, onto the part of the product frame that
    the PSF stamp covers plus ``margin`` pixels.

    Parameters
    ----------
    psfs : list of ndarray
        Library PSFs (each square; the same size is not required).
    exposure : str or pathlib.Path
        The first input exposure (drizzlepac's ``D001DATA``).
    output_wcs : astropy.wcs.WCS
        Celestial WCS of the product.
    output_shape : (int, int)
        ``(ny, nx)`` of the product.
    pixfrac : float, optional
    margin : int, optional
        Sub-frame margin around the stamp's footprint, pixels.
    backend : str, Backend or None

    Returns
    -------
    DrizzledPsf

    Raises
    ------
    InvalidInputError
        When the exposure cannot be read, has no ``SCI,1`` image, or the stamp does not fit
        on its chip.
    """
    bk = resolve_backend(backend)
    path = Path(exposure)
    try:
        with fits.open(path) as hdul:
            if ("SCI", 1) not in hdul or hdul["SCI", 1].data is None:
                raise InvalidInputError(f"{path}: no SCI,1 image to place the library PSF in")
            shape = tuple(int(n) for n in hdul["SCI", 1].data.shape)
            bunit = str(hdul["SCI", 1].header.get("BUNIT", "ELECTRONS")).upper()
            exptime = float(hdul[0].header.get("EXPTIME", 1.0)) or 1.0
            dq = (np.asarray(hdul["DQ", 1].data) if ("DQ", 1) in hdul
                  and hdul["DQ", 1].data is not None else None)
            chip_wcs = _chip_wcs(hdul, path)
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the exposure ({exc})") from exc
    centre = (shape[0] // 2, shape[1] // 2)
    stamps = [taper_library_psf(p) for p in psfs]
    half = max(s.shape[0] // 2 + s.shape[0] % 2 for s in stamps)
    if centre[0] - half < 0 or centre[1] - half < 0 or centre[0] + half > shape[0] \
            or centre[1] + half > shape[1]:
        raise InvalidInputError(f"{path}: the library PSF ({2 * half} pixels) does not fit on "
                                f"SCI,1 of shape {shape}")
    # Footprint of the stamp on the product frame.
    ys = np.array([centre[0] - half - 1, centre[0] - half - 1, centre[0] + half + 1,
                   centre[0] + half + 1], dtype=np.float64)
    xs = np.array([centre[1] - half - 1, centre[1] + half + 1, centre[1] - half - 1,
                   centre[1] + half + 1], dtype=np.float64)
    ra, dec = chip_wcs.all_pix2world(xs, ys, 0)
    ox, oy = output_wcs.all_world2pix(ra, dec, 0)
    ny_out, nx_out = int(output_shape[0]), int(output_shape[1])
    x0 = max(0, math.floor(ox.min()) - margin)
    x1 = min(nx_out, math.ceil(ox.max()) + margin + 1)
    y0 = max(0, math.floor(oy.min()) - margin)
    y1 = min(ny_out, math.ceil(oy.max()) + margin + 1)
    if x1 <= x0 or y1 <= y0:
        raise InvalidInputError(f"{path}: the library PSF position falls outside the product")
    sub_wcs = output_wcs.slice((slice(y0, y1), slice(x0, x1)))
    pmap = PixelMap.from_wcs(chip_wcs, sub_wcs, shape, stepsize=10)
    weight = np.ones(shape, dtype=np.float32) if dq is None else (dq == 0).astype(np.float32)
    in_units = "cps" if bunit.endswith("/S") else "counts"
    scale = _pixel_scale(sub_wcs) / _pixel_scale(chip_wcs)
    drz = Drizzle((y1 - y0, x1 - x0), kernel="square", pixfrac=float(pixfrac), fillval=0.0,
                  backend=bk)
    for stamp in stamps:
        n = stamp.shape[0]
        h, edge = n // 2, n % 2
        base = np.zeros(shape, dtype=np.float32)
        base[centre[0] - h: centre[0] + h + edge, centre[1] - h: centre[1] + h + edge] = stamp
        drz.add_image(bk.asarray(base), pmap, weight=bk.asarray(weight), in_units=in_units,
                      exptime=exptime, scale=scale)
    return DrizzledPsf(data=np.ascontiguousarray(drz.sci, dtype=np.float32), origin=(y0, x0))


# ----------------------------------------------------------------------------- FWHM
def _gaussian_prf(params, x, y):
    """Pixel-integrated circular Gaussian (photutils ``CircularGaussianSigmaPRF``)."""
    flux, x0, y0, sigma = params
    s = math.sqrt(2.0) * sigma
    return (flux / 4.0 * (erf((x - x0 + 0.5) / s) - erf((x - x0 - 0.5) / s))
            * (erf((y - y0 + 0.5) / s) - erf((y - y0 - 0.5) / s)))


def _mmm_background(data) -> float:
    """DAOPHOT mode ``3 median - 2 mean`` of the 3-sigma clipped data (photutils
    ``MMMBackground`` with its default ``SigmaClip(sigma=3, maxiters=10)``)."""
    clipped = sigma_clip(np.asarray(data, dtype=np.float64), sigma=3.0, maxiters=10,
                         cenfunc="median", stdfunc="std", masked=False, axis=None)
    values = clipped[np.isfinite(clipped)]
    if values.size == 0:
        return 0.0
    return float(3.0 * np.median(values) - 2.0 * np.mean(values))


def measure_psf_fwhm(psf_core, default_fwhm: float) -> float | None:
    """FWHM (pixels) of a PSF by Gaussian PSF photometry (drizzlepac ``find_fwhm``).

    Sources are found with DAOFIND (``threshold = 2.5 x`` the MMM background of the array,
    ``fwhm = default_fwhm``, photutils 3 defaults); each is fitted, over the ``11 x 11`` box
    around its rounded position, with a pixel-integrated circular Gaussian (flux, x, y and
    sigma free; starting flux from a circular aperture of radius ``1.5 default_fwhm``,
    starting sigma from ``default_fwhm``) by trust-region least squares. The FWHM of the fit
    with the largest flux is returned. (``find_fwhm`` runs a second finding pass on the fit
    residuals; a residual source never has the largest flux of a single PSF, so that pass is
    not made.)

    Parameters
    ----------
    psf_core : ndarray, shape (ny, nx)
        The PSF core (drizzlepac cuts ``2 box_size`` pixels around the maximum).
    default_fwhm : float
        Starting FWHM, pixels.

    Returns
    -------
    float or None
        None when nothing is found or no fit succeeds (drizzlepac then fails over to
        DAOStarFinder).
    """
    from ..detection import (
        CircularAperture,
        DAOStarFinder,
        NoDetectionsWarning,
        aperture_photometry,
    )

    data = np.asarray(psf_core, dtype=np.float64)
    if data.ndim != 2 or data.size == 0 or not np.isfinite(data).all():
        return None
    threshold = 2.5 * _mmm_background(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoDetectionsWarning)
        try:
            found = DAOStarFinder(threshold=threshold, fwhm=default_fwhm,
                                  backend="cpu").find_stars(data)
        except Exception as exc:  # noqa: BLE001 - find_fwhm treats every failure alike
            log.warning("PSF FWHM: source finding failed: %s", exc)
            return None
    if found is None or len(found) == 0:
        return None
    xs = np.asarray(found["x_centroid"], dtype=np.float64)
    ys = np.asarray(found["y_centroid"], dtype=np.float64)
    apertures = CircularAperture(np.column_stack([xs, ys]), r=1.5 * default_fwhm)
    flux0 = np.asarray(aperture_photometry(data, apertures, backend="cpu")["aperture_sum"],
                       dtype=np.float64)
    sigma0 = gaussian_fwhm_to_sigma * default_fwhm
    ny, nx = data.shape
    best = None
    for x, y, f in zip(xs, ys, flux0):
        ix, iy = round(x), round(y)
        ya, yb = max(0, iy - 5), min(ny, iy + 6)
        xa, xb = max(0, ix - 5), min(nx, ix + 6)
        if yb - ya < 11 or xb - xa < 11:
            continue  # photutils flags fits on clipped boxes
        gy, gx = np.mgrid[ya:yb, xa:xb]
        cut = data[ya:yb, xa:xb]

        def residual(p, gx=gx, gy=gy, cut=cut):
            return (_gaussian_prf(p, gx, gy) - cut).ravel()

        try:
            fit = least_squares(residual, [f, x, y, sigma0], method="trf",
                                bounds=([-np.inf, -np.inf, -np.inf, np.finfo(np.float32).tiny],
                                        np.inf))
        except (ValueError, FloatingPointError):
            continue
        if not fit.success or not np.all(np.isfinite(fit.x)):
            continue
        if best is None or fit.x[0] > best[0]:
            best = fit.x
    if best is None:
        return None
    return float(gaussian_sigma_to_fwhm * best[3])


def psf_fwhm(drizzled_psf, default_fwhm: float, box_size: int = 11) -> float | None:
    """The PSF FWHM with drizzlepac's fallback rule (``find_point_sources``).

    The core is ``psf[yc - box: yc + box, xc - box: xc + box]`` around the (first) maximum.
    A fit outside ``[0, 2 default_fwhm]`` is retried from ``default_fwhm + 1``; a second miss
    gives ``default_fwhm``.

    Returns
    -------
    float or None
        None when a fit finds nothing: drizzlepac then raises (comparing None) and the
        caller falls over to DAOStarFinder.
    """
    psf = np.asarray(drizzled_psf)
    yc, xc = np.unravel_index(int(np.argmax(psf)), psf.shape)
    core = psf[max(0, yc - box_size): yc + box_size, max(0, xc - box_size): xc + box_size]
    fwhm = measure_psf_fwhm(core, default_fwhm)
    if fwhm is None:
        return None
    if fwhm < 0 or fwhm > 2.0 * default_fwhm:
        fwhm = measure_psf_fwhm(core, default_fwhm + 1)
        if fwhm is None:
            return None
        if fwhm < 0 or fwhm > 2.0 * default_fwhm:
            log.debug("PSF FWHM fit gave %s; using the default %s", fwhm, default_fwhm)
            fwhm = default_fwhm
    return float(fwhm)


# ----------------------------------------------------------------------------- deconvolution
def center_psf(psf, block_shape) -> np.ndarray:
    """Place a PSF at the centre of a zero array of ``block_shape`` (``_center_psf``).

    The PSF's (first) maximum goes to ``(ny // 2, nx // 2)``; a square of half-size ``L`` is
    copied, ``L`` being the larger of the half-extents of the non-zero region (and half the
    maximum's offset in it). NaNs count as 0.

    Raises
    ------
    InvalidInputError
        When the PSF has no non-zero pixel, or the square does not fit in the PSF array or
        the block.
    """
    psf = np.nan_to_num(np.asarray(psf), nan=0.0)
    if not np.any(psf != 0):
        raise InvalidInputError("the drizzled PSF is empty")
    py, px = np.unravel_index(int(np.argmax(psf)), psf.shape)
    nzy, nzx = np.nonzero(psf)
    yr, xr = (int(nzy.min()), int(nzy.max())), (int(nzx.min()), int(nzx.max()))
    size = ((yr[1] - yr[0]) // 2, (xr[1] - xr[0]) // 2)
    inner = psf[yr[0]:yr[1], xr[0]:xr[1]]
    my, mx = np.nonzero(inner == psf.max())
    if my.size == 0:  # the maximum lies on the last row or column of the non-zero region
        raise InvalidInputError("the drizzled PSF peaks on the edge of its footprint")
    half = max(max(int(my[0]) // 2, size[0]), max(int(mx[0]) // 2, size[1]))
    cy, cx = block_shape[0] // 2, block_shape[1] // 2
    if (py - half < 0 or px - half < 0 or py + half > psf.shape[0] or px + half > psf.shape[1]
            or cy - half < 0 or cx - half < 0 or cy + half > block_shape[0]
            or cx + half > block_shape[1]):
        raise InvalidInputError(f"the drizzled PSF ({2 * half} pixels) does not fit the "
                                f"deconvolution block {tuple(block_shape)}")
    out = np.zeros(tuple(block_shape), dtype=psf.dtype)
    out[cy - half: cy + half, cx - half: cx + half] = psf[py - half: py + half, px - half: px + half]
    return out


def _regularisation(centered, freq_limit: float):
    """drizzlepac's alpha: element ``int(N freq_limit)`` of the |PSF| values sorted in
    descending order (a partial sort gives the same element)."""
    values = np.abs(centered).ravel()
    k = values.size - 1 - int(values.size * freq_limit)
    k = min(max(k, 0), values.size - 1)
    return np.partition(values, k)[k]


def _fft_module(bk):
    """Real-input FFTs of the backend and their keyword arguments.

    ``cupy.fft`` on the GPU; on the host :mod:`scipy.fft` with one worker per Numba thread
    (the same pocketfft as NumPy, multithreaded over the rows of a 2-D transform).
    """
    if bk.name == "gpu":
        return bk.xp.fft, {}
    import numba
    import scipy.fft

    return scipy.fft, {"workers": max(1, int(numba.get_num_threads()))}


def fft_deconvolve(image, psf, *, freq_limit: float = 0.95, block_size=(1024, 1024),
                   backend=None):
    """Regularised FFT deconvolution of an image in blocks (drizzlepac ``fft_deconv_img``).

    The PSF is centred in a block-sized array (:func:`center_psf`); ``alpha`` is the
    ``int(N freq_limit)``-th largest |PSF| value (N pixels per block). The image is cut into
    ``block_size`` blocks (zero-padded at the far edges) and each block ``d`` becomes::

        N * fftshift(ifft2(conj(P) / (|P|**2 + alpha**2) * fft2(d))).real * (d > 0)

    with ``P = fft2(psf)`` computed in the PSF's precision (complex64 for a float32 PSF), as
    NumPy 2 and CuPy do (Vierinen 2017, "deconvolution in frequency domain with
    regularisation").

    ``P`` is NumPy's (CuPy's on the GPU) complex ``fft2``, as in drizzlepac: the regularisation
    is usually 0 (the PSF fills less than 5 % of a block), so the filter is ``1 / P`` and its
    largest values, where ``|P|`` is smallest, depend on how ``P`` rounds. The image blocks go
    through real-input transforms (``rfft2`` / ``irfft2``, half the work of the complex ones,
    on every Numba thread on the host): the blocks are real, so their spectra are Hermitian,
    the left half of each holds all of it, and ``irfft2`` of the filtered half is the real
    part of ``ifft2``. Only the rounding of the block transforms differs from drizzlepac's:
    for float32 blocks the results differ by about 1e-6 of each block's largest value
    (tests/catalogs/test_psf.py), and the peaks found on them are drizzlepac's
    (tests/catalogs/test_point.py). A block without a positive pixel is 0 in the result
    whatever its spectrum (the ``d > 0`` factor), so it is not transformed when the filter is
    finite.

    Parameters
    ----------
    image : array, shape (ny, nx)
        On the backend device or the host; NaN counts as 0.
    psf : ndarray, shape (my, mx)
        PSF (any size; only its non-zero region matters).
    freq_limit : float
    block_size : (int, int)
    backend : str, Backend or None

    Returns
    -------
    array, float64, shape (ny, nx), on the backend device.

    Raises
    ------
    InvalidInputError
        From :func:`center_psf`.
    """
    bk = resolve_backend(backend)
    xp = bk.xp
    fft, options = _fft_module(bk)
    by, bx = int(block_size[0]), int(block_size[1])
    centered = center_psf(psf, (by, bx))
    alpha = _regularisation(centered, freq_limit)
    # The PSF's full complex transform, as drizzlepac computes it (NumPy's on the host): with
    # alpha 0 (the usual case: the PSF fills less than 5 % of a block) the filter is 1 / P and
    # amplifies the rounding of the smallest |P| values, so P itself must round as there.
    # Its left half (columns 0 .. bx // 2) is the half spectrum the real transforms use.
    P = xp.fft.fft2(bk.asarray(centered))[:, :bx // 2 + 1]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        filt = xp.conj(P) / (xp.abs(P) ** 2.0 + alpha ** 2.0)
    finite_filter = bool(xp.isfinite(filt).all())
    img = xp.asarray(image)
    if img.dtype.kind != "f":
        img = img.astype(np.float64)
    img = xp.nan_to_num(img, nan=0.0)
    ny, nx = img.shape
    out = xp.zeros((ny, nx), dtype=np.float64)
    n_pix = by * bx
    for y0 in range(0, ny, by):
        for x0 in range(0, nx, bx):
            hy, hx = min(by, ny - y0), min(bx, nx - x0)
            block = img[y0:y0 + hy, x0:x0 + hx]
            positive = block > 0
            if finite_filter and not bool(positive.any()):
                continue  # the result is 0 there, as ``out`` already holds
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                # s=(by, bx) zero-pads the edge blocks as drizzlepac's block copy does
                spectrum = filt * fft.rfft2(block, s=(by, bx), **options)
                m_map = fft.irfft2(spectrum, s=(by, bx), **options)
                if xp is np and m_map.dtype == np.float64 and m_map.flags.c_contiguous:
                    # fftshift, scale and positive mask in one pass (same float64 steps)
                    kmorph.shifted_block_product(out[y0:y0 + hy, x0:x0 + hx], m_map, block,
                                                 float(n_pix))
                    continue
                m_map = n_pix * xp.fft.fftshift(m_map)[:hy, :hx]
                out[y0:y0 + hy, x0:x0 + hx] = m_map * positive
    return out


# ----------------------------------------------------------------------------- peaks
@dataclass
class PsfPeaks:
    """Result of :func:`find_psf_peaks`.

    Attributes
    ----------
    x_peak, y_peak : ndarray of int64, shape (n,)
        Integer peak positions in the image, raster order; empty when none was found.
    masked : array, shape (ny, nx)
        The image times the peak-box mask (drizzlepac modifies its ``region`` in place, so the
        star measurements and a DAOFIND fallback see this array). None when the deconvolved
        image had no peak (the region is then left unchanged).
    """

    x_peak: np.ndarray
    y_peak: np.ndarray
    masked: object


def find_psf_peaks(region, psf, footprint, *, box_size: int = 11, block_size=(1024, 1024),
                   backend=None) -> PsfPeaks:
    """Point sources most like the PSF (drizzlepac ``find_point_sources`` after the PSF).

    1. Deconvolve ``region`` by ``psf`` (:func:`fft_deconvolve`) and multiply by
       ``footprint`` eroded ``box_size`` times (3x3 cross).
    2. ``find_peaks(threshold=0, box_size=box_size, mask=~footprint)`` on the deconvolved
       image.
    3. Keep the ``box_size`` boxes around those peaks in ``region`` (0 elsewhere) and find
       integer peaks there with ``find_peaks(threshold=0, box_size=box_size // 2)``.

    Parameters
    ----------
    region : array, shape (ny, nx)
        Threshold-subtracted, non-negative image.
    psf : ndarray
        Drizzled PSF (sub-frame is fine).
    footprint : array of bool, shape (ny, nx)
    box_size : int
    block_size : (int, int)
    backend : str, Backend or None

    Returns
    -------
    PsfPeaks
    """
    from ..detection import (
        NoDetectionsWarning,
        binary_erosion,
        find_peaks,
        maximum_filter,
    )

    bk = resolve_backend(backend)
    xp = bk.xp
    region = bk.asarray(region)
    footprint = bk.asarray(footprint, dtype=bool)
    deconvolved = fft_deconvolve(region, psf, block_size=block_size, backend=bk)
    eroded = binary_erosion(footprint, iterations=box_size, backend=bk)
    deconvolved *= xp.asarray(eroded)   # the fresh result, in place
    empty = np.zeros(0, dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoDetectionsWarning)
        peaks = find_peaks(deconvolved, 0.0, box_size=box_size, mask=~footprint, backend=bk)
        if peaks is None or len(peaks) == 0:
            return PsfPeaks(empty, empty, None)
        y_seed = np.asarray(peaks["y_peak"], dtype=np.int64)
        x_seed = np.asarray(peaks["x_peak"], dtype=np.int64)
        sep = box_size // 2
        if bk.name == "cpu" and region.ndim == 2:
            # the filtered seed image is the union of the seeds' boxes: painted directly
            boxes = np.zeros(region.shape, dtype=np.uint8)
            kmorph.paint_boxes(boxes, y_seed, x_seed, sep)
        else:
            seeds = xp.zeros(region.shape, dtype=np.uint8)
            seeds[bk.asarray(y_seed), bk.asarray(x_seed)] = 1
            boxes = maximum_filter(seeds, size=2 * sep + 1, mode="constant", cval=0,
                                   backend=bk)
            boxes = xp.asarray(boxes)
        masked = region * (boxes if region.dtype.kind == "f" else boxes.astype(region.dtype))
        final = find_peaks(masked, 0.0, box_size=box_size // 2, backend=bk)
    if final is None or len(final) == 0:
        return PsfPeaks(empty, empty, masked)
    return PsfPeaks(np.asarray(final["x_peak"], dtype=np.int64),
                    np.asarray(final["y_peak"], dtype=np.int64), masked)
