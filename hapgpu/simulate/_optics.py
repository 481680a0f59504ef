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
Camera pupils (:attr:`DetectorOptics.pupil`)
    WFC3/IR (:data:`WFC3_IR_PUPIL`) sees the OTA pupil through its cold mask, a centred
    opening of radius 0.9755 with a central stop of radius 0.354 and two vanes 0.061 wide
    along V2 and V3, which does not cover the OTA's pads (TinyTim 7.5's public pupil table
    ``wfc3_ir.pup``, repository spacetelescope/tinytim, lines 35-41: the values only, no
    code). The other detectors see the OTA pupil alone. The pupil is real (clear or
    blocked): the model has no low-order wavefront term, TinyTim's measured Zernike
    terms having made the point catalogs worse (*WFC3/IR against drizzlepac's library*
    below).
Diffraction
    The monochromatic PSF is ``|FT[pupil]|**2``, evaluated directly at the wanted focal-plane
    points by a matrix Fourier transform (two matrix products; Soummer et al. 2007, Optics
    Express 15, 15935), so any sampling is exact (no FFT grid or zero padding).
Image quality (:class:`ImageQuality`, :data:`DETECTOR_IMAGE_QUALITY`)
    What the pupil's geometry leaves out, as three Gaussian terms applied to the sub-pixel
    intensity (FFT convolutions with zero padding, :func:`_gaussian_blur`):

    * the mirrors' mid-frequency ("zonal") polishing errors, a random phase screen of rms
      ``sigma_w`` and Gaussian correlation length ``l`` on the pupil. A fraction
      ``S = exp(-(2 pi sigma_w / lambda)**2)`` of the light (Marechal's Strehl ratio, Born &
      Wolf 9.1.3) stays in the diffraction pattern; the rest is scattered into that pattern
      convolved with a Gaussian of ``lambda / (sqrt(2) pi l)`` rms per axis (the Fourier
      transform of the screen's covariance ``sigma_w**2 exp(-r**2 / l**2)``, the small-phase
      scattering of e.g. Roddier, *Adaptive Optics in Astronomy*, 1999, ch. 2). The WFC3
      Instrument Handbook (6.6, 7.6) names this OTA error as the term that degrades the
      near-UV PSF. ``sigma_w = 20 nm`` (within the OTA's wavefront-error budget of lambda/20
      rms at 632.8 nm, 32 nm) and ``l = 5 cm`` are fitted, by hand, to the WFC3/UVIS2
      encircled-energy table (STScI, ``wfc3uvis2_aper_007_syn.csv``, 2016, from the WFC3
      photometric-calibration pages) at 0.2, 0.4 and 1.0 arcsec (5, 10 and 25 pixels) for
      F555W, F606W and F775W: the model follows them within 0.026 (tests/simulate/
      test_optics_encircled_energy.py). Fitted for WFC3 (whose measured PSFs include its own
      optics' errors too), the term is applied to the WFC3 detectors only;
    * pointing jitter, 5 mas rms per sky axis (HST's fine-guidance jitter is a few mas rms),
      isotropic on the sky and so mapped through the detector's pixel matrix;
    * the detector's own spread before pixel integration, :data:`DETECTOR_SPREAD_UM` (rms
      per axis; CCD charge diffusion, lateral carrier diffusion in the HgCdTe diodes): 0.1
      pixel for WFC3/UVIS (1.5 microns), 0.05 pixel for WFC3/IR (0.9 microns; 0.15 pixel,
      2.7 microns, before the IR cold mask was modelled), on top of the 3x3 kernels below.
      These are not handbook fits: they are the values for which the
      library's modulation transfer function (``|FFT|`` of the pixel PSF, averaged over
      rings of 0.1-0.4 cycles per pixel) follows that of drizzlepac's library (measured on
      its installed arrays, tests/simulate/test_optics_encircled_energy.py), which is what
      the point finder's inverse filter sees. Measured against that library's MTF at 0.1,
      0.2, 0.3, 0.4 cycles/pixel: WFC3/UVIS F555W 0.99, 0.96, 0.94, 0.99 of it, F814W 1.00,
      1.00, 1.00, 0.99; WFC3/IR (cold mask, 0.9 microns) F160W 1.00, 0.98, 0.92, 0.82,
      F110W 1.00, 1.02, 1.06, 1.19, F105W 1.00, 1.02, 1.07, 1.19, F140W 1.00, 1.00, 1.00,
      1.01 (before the cold mask, F160W 1.06, 1.08, 1.03, 0.85, F110W 1.05, 1.09, 1.16,
      1.29).
      A spread fitted to the WFC3 Instrument Handbook's IR sharpness (Table 7.5, sum of the
      squared pixel fractions: 0.127-0.197 at 800 nm and 0.118-0.182 at 900 nm, pixel
      corner to centre) needs 0.4 pixel (model 0.138-0.173 and 0.130-0.160), but that spread
      cuts the MTF to 0.36-0.6 of drizzlepac's at 0.4-0.6 cycles/pixel, and the IR point
      catalogs then found 78-80 % of drizzlepac's sources against 90-92 % (with 0.25 pixel
      for the CCDs, UVIS 92-95 %); with 0.15 the model's IR sharpness is 0.160-0.332 and
      0.148-0.310 (a known gap: the handbook's IR core is broader than this model's; these
      sharpness figures are for the OTA pupil alone, before the cold mask).
      The IR spread was also scanned against the point catalogs themselves (library and
      star table rebuilt each time, tests/catalogs/test_catalogs_reference.py, found
      fraction of drizzlepac's IR sources, filters / total). OTA pupil alone: 0 microns
      88.8 / 89.9 %, 1.5 microns 89.8 / 91.0 %, 2.7 microns 89.8 / 91.6 %, 4.5 microns
      85.6 / 85.1 %. Behind the cold mask (*Camera pupils*): 0 microns 95.7 / 95.4 %,
      0.9 microns 95.8 / 96.1 %, 1.5 microns 91.9 / 91.7 %, 2.7 microns 87.4 / 88.3 %.
      The UVIS one: 1.2 microns 90.8 / 90.1 %, 1.5 microns >= 95 / 94.4 %, 1.8 microns
      92.3 / 91.5 %. 0.9 (IR) and 1.5 (UVIS) are kept.

    Scope: the three terms apply to WFC3/UVIS and WFC3/IR only (:data:`DETECTOR_IMAGE_QUALITY`
    has no ACS entry). They were fitted to WFC3's encircled-energy table and drizzlepac's
    WFC3 library and never compared with ACS data, so the ACS/WFC and ACS/HRC libraries (and
    the simulator's ACS stars, fitted to them) stay the pure diffraction pattern with the
    charge-diffusion kernel. A first version applied jitter and the spread to ACS too and
    moved the simulated ACS/WFC stars enough to break the alignment oracle test (23 of 333
    of drizzlepac's sources within 0.05 pixel).

    WFC3/IR against drizzlepac's (TinyTim) library, measured on its installed arrays (facts
    only, no pixel copied; centroid from the middle pixel ``n // 2``, encircled energy in
    pixels whose centres lie within 1, 2, 3, 5, 10 pixels of the centroid, sum of the
    squared pixel fractions): F105W centroid (-0.35, -0.36), peak 0.274, EE 0.674, 0.843,
    0.871, 0.917, 0.964, sharpness 0.134; F110W (-0.36, -0.37), 0.261, EE 0.646, 0.835,
    0.867, 0.914, 0.960, 0.124; F125W (0.00, -0.03), 0.459, EE 0.555, 0.808, 0.860, 0.907,
    0.956, 0.225; F140W (-0.33, -0.35), 0.264, EE 0.598, 0.805, 0.859, 0.903, 0.951,
    0.115; F160W (-0.25, -0.28), 0.293, EE 0.520, 0.770, 0.854, 0.891, 0.946, 0.119. The
    OTA pupil alone (2.7 micron spread), rendered at the same centroids: F110W peak 0.285,
    EE 0.694, 0.864, 0.893, 0.929, 0.963; F160W 0.306, EE 0.562, 0.814, 0.883, 0.916,
    0.955; F125W 0.473, EE 0.594, 0.840, 0.887, 0.925, 0.961: TinyTim held 0.025-0.044
    more of the light between 1 and 5 pixels (0.14-0.68 arcsec), a wider halo the handbook
    attributes (7.6) to the cold stop, residual aberrations and IPC. TinyTim's public
    parameter files (``wfc3_ir.pup``, see *Camera pupils*) quantify them: the cold mask
    (outer radius 0.9755, stop 0.354, vanes 0.061, against the OTA's 1, 0.330, 0.022), the
    field-dependent focus, astigmatism and coma (4-18 nm rms per term), and an IPC kernel
    of 2.5 % to each side neighbour and 0.07 % to each diagonal one (lines 145-175; this
    model's :data:`DETECTOR_OPTICS` kernel has 1.5 %, not applied to the library). Each,
    measured (peak; EE at 1, 2, 3, 5, 10 pixels minus TinyTim's): with the cold mask (2.7
    microns) F110W 0.259; -0.005, -0.006, -0.003, -0.004, -0.004, F160W 0.277; -0.009,
    -0.004, -0.001, -0.002, -0.003: the halo gap closes. The shipped model, cold mask and
    0.9 micron spread: F105W 0.297; -0.003, -0.002, -0.003, -0.005, -0.004, F110W 0.271;
    -0.005, -0.003, -0.003, -0.004, -0.004, F125W 0.467; +0.008, 0.000, -0.001, -0.002,
    -0.003, F140W 0.260; -0.004, -0.003, -0.001, -0.003, -0.003, F160W 0.293; +0.004,
    0.000, -0.001, -0.002, -0.003 (within 0.01 at every radius, the peak within 8 %;
    tests/simulate/test_optics_encircled_energy.py).

    A wavefront term was measured and rejected. TinyTim's field-dependent WFC3/IR
    aberration polynomials (``wfc3_ir.pup`` lines 55-100, microns, ``sum c[i][j] x**i
    y**j`` with ``x, y`` the detector pixel position over 10.24) give, at the detector
    centre (pixel 507, 507), Zernike terms Z4-Z8 (focus, astigmatism at 0 and 45 degrees,
    coma along V2 and V3) of 4.10, 0.15, 12.29, 16.86 and -16.04 nm rms (4-18 nm per term
    over the detector). Modelled as annular Zernike wavefront terms (V. N. Mahajan,
    "Zernike annular polynomials for imaging systems with annular pupils", J. Opt. Soc.
    Am. 71, 75, 1981, on the OTA's 0.330 annulus; the pupil ``clear * exp(2 pi i W /
    lambda)``, the tilt of the wavefront's mean gradient removed to keep the light centroid
    at the requested centre), they moved EE at 1-10 pixels by at most 0.004 (F110W,
    F160W; cold mask, 2.7 microns) but dropped the IR point catalogs to 77.0 % (filters)
    and 78.5 % (total) of drizzlepac's sources (78.7 / 79.3 % with the OTA pupil alone),
    against 95.8 / 96.1 % without. WFC3/UVIS2's polynomials (``wfc3_uvis2.pup`` lines
    31-77, waves at 632.8 nm, ``x, y`` over 40.96) give 6.4, -6.7, 2.9, -8.5, -1.1 nm at
    the chip centre; modelled the same way in the UVIS library they took the UVIS total
    from 94.4 % to 94.7 % but the filter catalogs from 95.0 % (114 of 120) to 94.96 % (113
    of 119). The model therefore has no wavefront term: every pupil is real. TinyTim's IPC
    kernel in the IR library (cold mask, 2.7 or 0 microns) lowers EE at 1 pixel by 0.03
    against TinyTim's, so the IR library stays without a kernel. TinyTim's UVIS
    charge-diffusion kernels (``wfc3_uvis2.pup`` lines 122-149: 9.7, 8.4, 6.9 % to each
    side neighbour and 1.7, 1.2, 0.7 % to each diagonal one at 0.4, 0.6, 0.8 microns),
    interpolated at each filter's pivot, in place of this model's 4 % kernel and 1.5
    micron spread: UVIS filters 94.0 %, total 93.5 %; not used.

    :func:`pixel_psf` applies them only when given a ``quality`` (its default is the pure
    diffraction pattern). Without them the core was 10-15 % sharper at its peak pixel than
    drizzlepac's library for WFC3 F555W, F814W, F110W and F160W, and the encircled energy at
    0.2 arcsec 0.055 above the UVIS table (F555W).
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

__all__ = [
    "DETECTOR_IMAGE_QUALITY",
    "DETECTOR_OPTICS",
    "DETECTOR_SPREAD_UM",
    "HST_PRIMARY_RADIUS_M",
    "IR_DETECTOR_SPREAD_UM",
    "OTA_MID_FREQUENCY_RMS_NM",
    "OTA_MID_FREQUENCY_SCALE_M",
    "PIXEL_PITCH_UM",
    "POINTING_JITTER_MAS",
    "WFC3_IR_COLD_MASK",
    "WFC3_IR_PUPIL",
    "DetectorOptics",
    "HstPupil",
    "ImageQuality",
    "bandpass_wavelengths",
    "pixel_psf",
]

#: HST primary mirror radius, metres (2.4 m aperture).
HST_PRIMARY_RADIUS_M = 1.2
_RAD_PER_ARCSEC = math.pi / 180.0 / 3600.0


@dataclass(frozen=True)
class HstPupil:
    """HST's entrance pupil, in units of the primary radius, V2/V3 axes.

    The Optical Telescope Assembly's obscurations, optionally a camera's cold mask laid over
    them (module docstring, *Camera pupils*).

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
    mask_outer_radius, mask_obscuration, mask_spider_width : float
        A cold mask centred on the pupil: the radius of its opening, the radius of its
        central stop and the full width of its two vanes (along V2 and V3); defaults 1, 0, 0
        (no mask).

    Raises
    ------
    InvalidParameterError
        For a mask or obscuration radius outside [0, 1].
    """

    obscuration: float = 0.330
    spider_width: float = 0.022
    pad_radius: float = 0.065
    pad_distance: float = 0.892
    pad_angles_deg: tuple = (0.0, 120.0, 240.0)
    mask_outer_radius: float = 1.0
    mask_obscuration: float = 0.0
    mask_spider_width: float = 0.0

    def __post_init__(self):
        radii = (self.obscuration, self.mask_outer_radius, self.mask_obscuration)
        if not all(0.0 <= r <= 1.0 for r in radii):
            raise InvalidParameterError(
                f"HstPupil needs radii in [0, 1] (got obscuration {self.obscuration}, mask "
                f"{self.mask_outer_radius}/{self.mask_obscuration})")

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
        if self.mask_outer_radius < 1.0 or self.mask_obscuration > 0.0:
            clear &= (r2 <= self.mask_outer_radius ** 2) & (r2 >= self.mask_obscuration ** 2)
        if self.mask_spider_width > 0.0:
            half = 0.5 * self.mask_spider_width
            clear &= (np.abs(v2) > half) & (np.abs(v3) > half)
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
    pupil : HstPupil, optional
        The pupil the detector sees (the OTA's behind a camera's cold mask); default the
        OTA's alone, :class:`HstPupil` ``()``.
    """

    pixel_matrix: tuple
    kernel: tuple = (0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0)
    kernel_source: str = "none"
    pupil: HstPupil | None = None

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


@dataclass(frozen=True)
class ImageQuality:
    """What degrades HST's diffraction pattern beyond the pupil's geometry.

    Attributes
    ----------
    mid_frequency_rms_nm : float
        RMS wavefront error (nm) of the mid-frequency ("zonal") polishing errors of the
        mirrors, a random phase screen of Gaussian correlation; 0 for none.
    mid_frequency_scale_m : float
        Correlation length (m, on the 2.4 m pupil) of that phase screen.
    jitter_mas : float
        RMS pointing jitter per sky axis, milliarcseconds (isotropic Gaussian); 0 for none.
    detector_sigma_px : float
        RMS per detector axis, pixels, of a Gaussian spread of the detected light before
        pixel integration (charge diffusion in a CCD, lateral carrier diffusion in an
        HgCdTe diode); 0 for none.
    """

    mid_frequency_rms_nm: float = 0.0
    mid_frequency_scale_m: float = 0.1
    jitter_mas: float = 0.0
    detector_sigma_px: float = 0.0

    def __post_init__(self):
        if not (self.mid_frequency_rms_nm >= 0 and self.mid_frequency_scale_m > 0
                and self.jitter_mas >= 0 and self.detector_sigma_px >= 0):
            raise InvalidParameterError(
                f"ImageQuality needs mid_frequency_rms_nm >= 0, mid_frequency_scale_m > 0 and "
                f"jitter_mas >= 0 (got {self.mid_frequency_rms_nm}, "
                f"{self.mid_frequency_scale_m}, {self.jitter_mas})")

    def strehl(self, wavelength_angstrom) -> np.ndarray:
        """Fraction of the light left in the diffraction pattern at a wavelength:
        ``exp(-(2 pi sigma_w / lambda)**2)`` (Marechal; Born & Wolf 9.1.3)."""
        lam_nm = np.asarray(wavelength_angstrom, dtype=np.float64) / 10.0
        return np.exp(-(2.0 * np.pi * self.mid_frequency_rms_nm / lam_nm) ** 2)

    def halo_sigma_rad(self, wavelength_angstrom) -> np.ndarray:
        """RMS angle per axis (radians) of the scattered halo: ``lambda / (sqrt(2) pi l)``."""
        lam_m = np.asarray(wavelength_angstrom, dtype=np.float64) * 1e-10
        return lam_m / (math.sqrt(2.0) * math.pi * self.mid_frequency_scale_m)


def _kernel(edge: float, corner: float = 0.0) -> tuple:
    """Symmetric 3x3 kernel: ``edge`` to each side neighbour, ``corner`` to each diagonal."""
    centre = 1.0 - 4.0 * edge - 4.0 * corner
    return (corner, edge, corner, edge, centre, edge, corner, edge, corner)


#: WFC3/IR's cold mask, in units of the OTA primary radius (TinyTim 7.5's public pupil table
#: ``wfc3_ir.pup``, spacetelescope/tinytim, lines 35-37: "WFC3 IR Secondary radius" 0.354,
#: "Spider width" 0.061, "Outer radius of cold mask" 0.9755; centred, line 41; the values only):
#: ``(outer radius, central stop radius, vane width)``.
WFC3_IR_COLD_MASK = (0.9755, 0.354, 0.061)
#: The WFC3/IR pupil: the OTA's (whose values ``wfc3_ir.pup`` lines 19-26 repeat) behind the
#: cold mask, with no wavefront term: TinyTim's WFC3/IR Zernike terms Z4-Z8 at the detector
#: centre (4.10, 0.15, 12.29, 16.86, -16.04 nm rms, ``wfc3_ir.pup`` lines 55-100), modelled
#: as annular Zernike wavefront terms, dropped the IR point catalogs to 77.0 % (filters) and
#: 78.5 % (total) of drizzlepac's sources against 95.8 and 96.1 % without (module docstring,
#: *WFC3/IR against drizzlepac's library*).
WFC3_IR_PUPIL = HstPupil(mask_outer_radius=WFC3_IR_COLD_MASK[0],
                         mask_obscuration=WFC3_IR_COLD_MASK[1],
                         mask_spider_width=WFC3_IR_COLD_MASK[2])

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
                              "inter-pixel capacitance", WFC3_IR_PUPIL),
    "acs-wfc": DetectorOptics((0.049832, 0.002152, -0.001309, -0.050264), _kernel(0.040, 0.004),
                              "CCD charge diffusion"),
    "acs-hrc": DetectorOptics((-0.028296, -0.000086, 0.002776, 0.024844), _kernel(0.040, 0.004),
                              "CCD charge diffusion"),
}


#: HST's optical telescope assembly and pointing: a mid-frequency wavefront error of 20 nm rms
#: with a 5 cm correlation length on the pupil, and 5 mas rms jitter per axis. The two
#: mid-frequency values are fitted to the WFC3/UVIS encircled-energy table (module docstring,
#: *Image quality*), so they hold for WFC3 (whose measured PSFs include its own optics too).
OTA_MID_FREQUENCY_RMS_NM = 20.0
OTA_MID_FREQUENCY_SCALE_M = 0.05
POINTING_JITTER_MAS = 5.0
#: Detector spread before pixel integration, microns rms per axis (module docstring, *Image
#: quality*): 1.5 (0.1 of a 15 micron pixel) for WFC3/UVIS; 0.9 (0.05 of an 18 micron pixel)
#: for WFC3/IR behind its cold mask, :data:`IR_DETECTOR_SPREAD_UM`. Neither is a handbook
#: value: both are the best of the scans against drizzlepac's library and point catalogs
#: recorded there.
IR_DETECTOR_SPREAD_UM = 0.9
DETECTOR_SPREAD_UM = {"wfc3-uvis": 1.5, "wfc3-ir": IR_DETECTOR_SPREAD_UM}
#: Pixel pitch, microns, per detector (the WFC3 Instrument Handbook: 15 UVIS, 18 IR).
PIXEL_PITCH_UM = {"wfc3-uvis": 15.0, "wfc3-ir": 18.0}
#: The :class:`ImageQuality` of each detector (simulator keys) that has one: the WFC3
#: detectors only. The ACS detectors have no entry (their library and the simulator's ACS
#: stars stay the pure diffraction pattern with the charge-diffusion kernel): the terms were
#: fitted to WFC3's tables and drizzlepac's WFC3 library, never compared with ACS's.
DETECTOR_IMAGE_QUALITY: dict[str, ImageQuality] = {
    key: ImageQuality(OTA_MID_FREQUENCY_RMS_NM, OTA_MID_FREQUENCY_SCALE_M, POINTING_JITTER_MAS,
                      DETECTOR_SPREAD_UM[key] / PIXEL_PITCH_UM[key])
    for key in DETECTOR_SPREAD_UM}


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
    fraction at each ``(a_y, a_x)`` cell, shape (n_pupil, n_pupil), float64."""
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
              pupil: HstPupil | None = None,
              quality: ImageQuality | None = None) -> np.ndarray:
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
        Default: the detector's (:attr:`DetectorOptics.pupil`), else the OTA's alone.
    quality : ImageQuality, optional
        Mid-frequency wavefront error and pointing jitter (module docstring, *Image
        quality*); default none (the pure diffraction pattern).

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
    pupil = pupil or optics.pupil or HstPupil()
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
        intensity *= (ax[1] - ax[0]) * (ay[1] - ay[0]) / np.sum(values ** 2)
        if quality is not None and quality.mid_frequency_rms_nm > 0:
            strehl = float(quality.strehl(lam))
            halo = _gaussian_blur(intensity, _sky_covariance_in_samples(
                m, float(quality.halo_sigma_rad(lam)), oversample))
            intensity = strehl * intensity + (1.0 - strehl) * halo
        fine += w * intensity
    if quality is not None and (quality.jitter_mas > 0 or quality.detector_sigma_px > 0):
        cov = _sky_covariance_in_samples(m, quality.jitter_mas * 1e-3 * _RAD_PER_ARCSEC,
                                         oversample)
        fine = _gaussian_blur(fine, cov + np.eye(2) * (quality.detector_sigma_px
                                                       * oversample) ** 2)
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


def _sky_covariance_in_samples(matrix_rad, sigma_rad, oversample) -> np.ndarray:
    """(2, 2) covariance, in sub-pixel samples ``(x, y)``, of an isotropic sky Gaussian of
    RMS ``sigma_rad`` per axis: ``d = M^-1 s`` so ``cov(d) = sigma**2 M^-1 M^-T``."""
    inv = np.linalg.inv(matrix_rad) * oversample
    return sigma_rad ** 2 * inv @ inv.T


def _gaussian_blur(image, cov) -> np.ndarray:
    """``image`` convolved with a unit Gaussian of covariance ``cov`` (samples, ``(x, y)``),
    by FFT with zero padding (light leaving the array is lost, none wraps round)."""
    from scipy import fft

    ny, nx = image.shape
    reach = math.ceil(5.0 * math.sqrt(max(cov[0, 0], cov[1, 1])))
    py, px = min(reach, ny), min(reach, nx)
    shape = (fft.next_fast_len(ny + 2 * py), fft.next_fast_len(nx + 2 * px))
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.rfftfreq(shape[1])[None, :]
    transfer = np.exp(-2.0 * np.pi ** 2 * (cov[0, 0] * kx * kx + 2.0 * cov[0, 1] * kx * ky
                                           + cov[1, 1] * ky * ky))
    padded = np.zeros(shape)
    padded[py:py + ny, px:px + nx] = image
    out = fft.irfft2(fft.rfft2(padded) * transfer, s=shape)
    return out[py:py + ny, px:px + nx]
