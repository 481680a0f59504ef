"""Diffraction model of HST's point-spread function on a detector's pixel grid.

The optics model of the point-catalog PSF library (:mod:`hapgpu.catalogs._build_psfs`), kept
in the simulator package so that the simulator's renderer shares it: stars are drawn with
:func:`hapgpu.simulate.optics_psf`, the library PSF of each detector and filter fitted by a
circular Gaussian mixture (:mod:`hapgpu.simulate._optics_psf`). It is computed from first principles (Fraunhofer
diffraction of the telescope pupil), not taken from any PSF package:

Pupil (:class:`HstPupil`)
    The Optical Telescope Assembly's entrance pupil in the V2/V3 frame, lengths in units of
    the primary radius ``R = 1.2 m``: a clear circle of radius 1, the secondary mirror's
    central obscuration of radius 0.330, two full-length spider vanes along the V2 and V3 axes
    of width 0.022 (2.6 cm), and the three primary-mirror pads, discs of radius 0.065 centred
    at 0.892 of the radius, 120 degrees apart, the first on +V3 (the published HST OTA
    pupil dimensions used in HST optical modelling, e.g. Krist & Hook, *The Tiny Tim User's
    Guide*; the values only). The pupil is sampled on a fine grid and each sample
    holds the clear fraction of its cell (``supersample**2`` sub-points), so the thin vanes
    have their true area.
Diffraction
    The monochromatic PSF is ``|FT[pupil]|**2``, evaluated directly at the wanted focal-plane
    points by a matrix Fourier transform (two matrix products; Soummer et al. 2007, Optics
    Express 15, 15935), so any sampling is exact (no FFT grid or zero padding). No wavefront
    aberration is included (no public per-detector aberration set could be justified here):
    the core is therefore somewhat sharper than HST's measured PSFs (its peak pixel is
    10-15 % above that of drizzlepac's library for WFC3 F555W, F814W, F110W and F160W).
Detector geometry
    A detector offset ``d = (dx, dy)`` (pixels) lies at sky offset ``M d`` (radians in the
    V2/V3 frame), ``M`` the linear part of the detector's geometric distortion (pixel scale,
    skew, rotation) at the reference pixel (:class:`DetectorOptics`). Since
    ``u . (M d) = (M^T u) . d``, sampling the pupil on a regular grid of ``a = M^T u / lambda``
    makes the transform separable in ``dx`` and ``dy``: the PSF is computed directly on the
    (sub-sampled) detector grid, non-square pixels and skew included.
Pixels
    The detector-pixel PSF is the mean over ``oversample**2`` sub-pixel points of each pixel
    (the pixel response as a box), then convolved with the detector's 3x3 kernel
    (:attr:`DetectorOptics.kernel`: CCD charge diffusion or IR inter-pixel capacitance) when
    asked for.
Bandpass
    ``n_wavelengths`` wavelengths (Gauss-Legendre nodes) across a flat throughput of the
    filter's RMS bandwidth around its pivot (a top hat of width ``sqrt(12) PHOTBW``), each
    weighted by its quadrature weight times ``lambda`` (photons of a flat-F_lambda source).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameterError

__all__ = ["DETECTOR_OPTICS", "HST_PRIMARY_RADIUS_M", "DetectorOptics", "HstPupil",
           "bandpass_wavelengths", "pixel_psf"]

#: HST primary mirror radius, metres (2.4 m aperture).
HST_PRIMARY_RADIUS_M = 1.2
_RAD_PER_ARCSEC = math.pi / 180.0 / 3600.0


@dataclass(frozen=True)
class HstPupil:
    """HST's entrance pupil, in units of the primary radius, V2/V3 axes.

    Attributes
    ----------
    obscuration : float
        Radius of the secondary mirror's central obscuration.
    spider_width : float
        Full width of each of the two spider vanes (along V2 and V3).
    pad_radius, pad_distance : float
        Radius and centre distance of the three primary-mirror pads.
    pad_angles_deg : tuple of float
        Position angles of the pads from +V3 towards +V2, degrees.
    """

    obscuration: float = 0.330
    spider_width: float = 0.022
    pad_radius: float = 0.065
    pad_distance: float = 0.892
    pad_angles_deg: tuple = (0.0, 120.0, 240.0)

    def transmission(self, v2, v3) -> np.ndarray:
        """1 where the pupil is clear, 0 where blocked, at pupil points ``(v2, v3)``.

        Parameters
        ----------
        v2, v3 : ndarray
            Pupil coordinates, units of the primary radius (same shape).

        Returns
        -------
        ndarray of float64, the shape of ``v2``.
        """
        r2 = v2 * v2 + v3 * v3
        clear = (r2 <= 1.0) & (r2 >= self.obscuration ** 2)
        half = 0.5 * self.spider_width
        clear &= (np.abs(v2) > half) & (np.abs(v3) > half)
        for angle in self.pad_angles_deg:
            a = math.radians(angle)
            c3, c2 = self.pad_distance * math.cos(a), self.pad_distance * math.sin(a)
            clear &= (v2 - c2) ** 2 + (v3 - c3) ** 2 > self.pad_radius ** 2
        return clear.astype(np.float64)


@dataclass(frozen=True)
class DetectorOptics:
    """How a detector samples the sky: distortion's linear part and its 3x3 pixel kernel.

    Attributes
    ----------
    pixel_matrix : tuple of 4 float
        ``(m00, m01, m10, m11)`` arcsec: the sky offset ``(V2, V3)`` of a detector offset
        ``(dx, dy)`` (pixels) is ``(m00 dx + m01 dy, m10 dx + m11 dy)``.
    kernel : tuple of 9 float
        Row-major 3x3 detector kernel (sums to 1) applied after pixel integration.
    kernel_source : str
        What the kernel models.
    """

    pixel_matrix: tuple
    kernel: tuple = (0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0)
    kernel_source: str = "none"

    @property
    def matrix(self) -> np.ndarray:
        """``pixel_matrix`` as a (2, 2) float64 array, radians per pixel."""
        return np.array(self.pixel_matrix, dtype=np.float64).reshape(2, 2) * _RAD_PER_ARCSEC

    @property
    def kernel_array(self) -> np.ndarray:
        """``kernel`` as a (3, 3) float64 array."""
        return np.array(self.kernel, dtype=np.float64).reshape(3, 3)

    @property
    def pixel_scales(self) -> tuple[float, float]:
        """Sky length (arcsec) of the detector's x and y pixel sides."""
        m = np.array(self.pixel_matrix, dtype=np.float64).reshape(2, 2)
        return float(np.hypot(m[0, 0], m[1, 0])), float(np.hypot(m[0, 1], m[1, 1]))


def _kernel(edge: float, corner: float = 0.0) -> tuple:
    """Symmetric 3x3 kernel: ``edge`` to each side neighbour, ``corner`` to each diagonal."""
    centre = 1.0 - 4.0 * edge - 4.0 * corner
    return (corner, edge, corner, edge, centre, edge, corner, edge, corner)


#: Per detector (simulator keys). ``pixel_matrix``: the CD matrix of the shipped exposure
#: template (``hapgpu/data/templates``: the linear part of the distortion solution at the
#: reference pixel, so pixel scale, skew and non-square pixels are included) turned from
#: (east, north) into (V2, V3) with the template's PA_V3 (V3 at position angle PA_V3, V2 at
#: PA_V3 + 90 degrees). WFC3/UVIS: 0.0398 arcsec sides 86.4 degrees apart, +y 44.7 degrees
#: from V3; WFC3/IR: 0.1354 x 0.1209 arcsec (the tilted detector); ACS/WFC 0.0499 x 0.0503,
#: 86.0 degrees; ACS/HRC 0.0284 x 0.0248, 84.2 degrees. Kernels are representative values,
#: not calibrations: CCD charge diffusion, 4 % of the charge to each side neighbour and
#: 0.4 % to each diagonal one (the few-per-cent visible-light diffusion the WFC3 and ACS
#: Instrument Handbooks describe); WFC3/IR inter-pixel capacitance, 1.5 % to each side
#: neighbour (the 1-2 % coupling typical of HgCdTe hybrid arrays).
DETECTOR_OPTICS: dict[str, DetectorOptics] = {
    "wfc3-uvis": DetectorOptics((-0.026483, 0.028035, 0.029768, 0.028303), _kernel(0.040, 0.004),
                                "CCD charge diffusion"),
    "wfc3-ir": DetectorOptics((-0.096018, 0.084988, 0.095460, 0.086043), _kernel(0.015),
                              "inter-pixel capacitance"),
    "acs-wfc": DetectorOptics((0.049832, 0.002152, -0.001309, -0.050264), _kernel(0.040, 0.004),
                              "CCD charge diffusion"),
    "acs-hrc": DetectorOptics((-0.028296, -0.000086, 0.002776, 0.024844), _kernel(0.040, 0.004),
                              "CCD charge diffusion"),
}


def bandpass_wavelengths(pivot: float, rms_bandwidth: float, n: int = 5):
    """Wavelengths and weights of a flat throughput of a given RMS width.

    Parameters
    ----------
    pivot : float
        Band centre (the filter's pivot), Angstrom.
    rms_bandwidth : float
        RMS bandwidth (``PHOTBW``), Angstrom: the top hat is ``sqrt(12) rms_bandwidth`` wide.
    n : int
        Number of wavelengths (Gauss-Legendre nodes).

    Returns
    -------
    wavelengths : ndarray, float64, shape (n,)
        Angstrom.
    weights : ndarray, float64, shape (n,)
        Sum 1; quadrature weight times wavelength (photon counts of a flat F_lambda source).

    Raises
    ------
    InvalidParameterError
        For a non-positive pivot, a negative bandwidth or ``n < 1``.
    """
    if not pivot > 0 or rms_bandwidth < 0 or n < 1:
        raise InvalidParameterError(f"bandpass needs pivot > 0, bandwidth >= 0 and n >= 1 "
                                    f"(got {pivot}, {rms_bandwidth}, {n})")
    half = math.sqrt(3.0) * rms_bandwidth
    half = min(half, 0.5 * pivot)
    nodes, quad = np.polynomial.legendre.leggauss(n)
    wavelengths = pivot + half * nodes
    weights = quad * wavelengths
    return wavelengths, weights / weights.sum()


def _pupil_grid(matrix_rad, wavelength_m, n_pupil, supersample, pupil):
    """Pupil samples on the regular grid of the conjugate detector frequencies.

    Returns ``(a_x, a_y, values)``: cycles per pixel along x and y, and the pupil's clear
    fraction at each ``(a_y, a_x)`` cell, shape (n_pupil, n_pupil)."""
    # u (pupil, metres / lambda = cycles per radian) = M^{-T} a; the pupil disc |u| <= R/lambda
    # maps to an ellipse in a; bound it by the rows of M^T.
    mt = matrix_rad.T
    r_cyc = HST_PRIMARY_RADIUS_M / wavelength_m
    ext = r_cyc * np.hypot(mt[:, 0], mt[:, 1])          # max |a_x|, |a_y| over the disc
    step = 2.0 * ext / n_pupil
    idx = (np.arange(n_pupil) - (n_pupil - 1) / 2.0)
    sub = (np.arange(supersample) - (supersample - 1) / 2.0) / supersample
    fine_x = (idx[:, None] + sub[None, :]).ravel() * step[0]
    fine_y = (idx[:, None] + sub[None, :]).ravel() * step[1]
    ax, ay = np.meshgrid(fine_x, fine_y)
    inv = np.linalg.inv(mt)
    ux = inv[0, 0] * ax + inv[0, 1] * ay
    uy = inv[1, 0] * ax + inv[1, 1] * ay
    clear = pupil.transmission(ux / r_cyc, uy / r_cyc)
    values = clear.reshape(n_pupil, supersample, n_pupil, supersample).mean(axis=(1, 3))
    return idx * step[0], idx * step[1], values


def pixel_psf(optics: DetectorOptics, wavelengths, weights, size: int, *,
              centre=(0.0, 0.0), oversample: int = 5, n_pupil: int | None = None,
              supersample: int = 4, detector_kernel: bool = True,
              pupil: HstPupil | None = None) -> np.ndarray:
    """The PSF integrated over the pixels of a ``size x size`` detector stamp.

    Parameters
    ----------
    optics : DetectorOptics
    wavelengths, weights : array_like, shape (k,)
        Angstrom, and the weight of each (see :func:`bandpass_wavelengths`).
    size : int
        Stamp side, pixels; pixel ``(size // 2, size // 2)`` is the reference pixel.
    centre : (float, float)
        ``(dy, dx)`` pixels of the point source from the centre of the reference pixel.
    oversample : int
        Sub-pixel points per pixel side (odd keeps a point on the pixel centre).
    n_pupil : int, optional
        Pupil samples per side. The computed field repeats every ``n_pupil`` resolution
        elements, which must exceed the stamp (checked); default: the smallest even number
        (at least 128) making the period 1.1 stamps at each wavelength.
    supersample : int
        Sub-points per pupil sample side for its clear fraction.
    detector_kernel : bool
        Convolve with :attr:`DetectorOptics.kernel`.
    pupil : HstPupil, optional

    Returns
    -------
    ndarray, float64, shape (size, size)
        Sums to 1 over an infinite stamp (the light outside the stamp is lost, not
        renormalised).

    Raises
    ------
    InvalidParameterError
        For a bad size, oversampling, or a pupil grid too coarse for the stamp.
    """
    if size < 3 or oversample < 1 or (n_pupil is not None and n_pupil < 16) or supersample < 1:
        raise InvalidParameterError(f"pixel_psf: size {size}, oversample {oversample}, "
                                    f"n_pupil {n_pupil}, supersample {supersample} out of range")
    pupil = pupil or HstPupil()
    wavelengths = np.atleast_1d(np.asarray(wavelengths, dtype=np.float64))
    weights = np.atleast_1d(np.asarray(weights, dtype=np.float64))
    m = optics.matrix
    n_fine = size * oversample
    # sub-pixel centres, pixels from the source (reference pixel centre + centre offset)
    offs = (np.arange(n_fine) - (n_fine - 1) / 2.0) / oversample
    dy0, dx0 = float(centre[0]), float(centre[1])
    fine = np.zeros((n_fine, n_fine))
    for lam, w in zip(wavelengths, weights):
        lam_m = lam * 1e-10
        n_p = n_pupil
        if n_p is None:   # pupil extent in cycles per pixel, times 1.1 stamps
            ext = HST_PRIMARY_RADIUS_M / lam_m * np.hypot(m.T[:, 0], m.T[:, 1]).max()
            n_p = max(128, 2 * math.ceil(1.1 * ext * size))
        ax, ay, values = _pupil_grid(m, lam_m, n_p, supersample, pupil)
        period = 1.0 / (ax[1] - ax[0]), 1.0 / (ay[1] - ay[0])   # pixels
        if min(period) < size:
            raise InvalidParameterError(f"pixel_psf: a {n_p}-sample pupil repeats the PSF "
                                        f"every {min(period):.0f} pixels, under the {size}-pixel "
                                        f"stamp at {lam:.0f} A")
        ex = np.exp(-2j * np.pi * np.outer(ax, offs - dx0))      # (n_pupil, n_fine)
        ey = np.exp(-2j * np.pi * np.outer(offs - dy0, ay))      # (n_fine, n_pupil)
        field_ = ey @ values @ ex
        intensity = field_.real ** 2 + field_.imag ** 2
        # Parseval: over one period (1/da_x by 1/da_y pixels) the integral of |E|**2 is
        # sum(values**2) / (da_x da_y); dividing by it gives a PSF of unit integral, per pixel
        # area, so the mean over a pixel's sub-points is that pixel's share of the light.
        fine += w * intensity * ((ax[1] - ax[0]) * (ay[1] - ay[0]) / np.sum(values ** 2))
    image = fine.reshape(size, oversample, size, oversample).mean(axis=(1, 3))
    if detector_kernel:
        image = _convolve3(image, optics.kernel_array)
    return image


def _convolve3(image, kernel) -> np.ndarray:
    """``image`` convolved with a 3x3 kernel, zero outside (same shape)."""
    padded = np.pad(image, 1)
    out = np.zeros_like(image)
    ny, nx = image.shape
    for j in range(3):
        for i in range(3):
            out += kernel[j, i] * padded[2 - j: 2 - j + ny, 2 - i: 2 - i + nx]
    return out
