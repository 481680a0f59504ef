"""The simulator's stars drawn with the optics model of the PSF library, as Gaussian mixtures.

The point-catalog PSF library (:mod:`hapgpu.catalogs._build_psfs`) renders each (detector,
filter) PSF with :func:`hapgpu.simulate._optics.pixel_psf`: Fraunhofer diffraction of HST's
pupil on the detector's distorted pixel grid, over the filter's passband, with the detector's
3x3 kernel where the library applies it. The renderer (``kernels/render.py``
``add_point_sources``) draws a star as a circular Gaussian mixture integrated exactly over each
pixel, which keeps rendering cheap. This module joins the two: for each (detector, filter) the
simulator supports, the library's own PSF image (:func:`~hapgpu.catalogs._build_psfs.
render_library_psf`: its passband sampling, sub-pixel sampling, stamp size and detector-kernel
choice, so WFC3/IR without its inter-pixel capacitance as in the library; centred on its
middle pixel, not at the library's WFC3/IR offset, which only matches drizzlepac's files) is
represented by a :class:`PsfModel`.

Fit (:func:`fit_optics_psf`)
    Fixed standard deviations spaced logarithmically from :data:`SIGMA_RANGE` ``[0]`` to
    ``[1]`` pixels (:data:`N_COMPONENTS` of them, as :func:`~hapgpu.simulate._profiles.
    sersic_mixture` fixes its variances), non-negative amplitudes by least squares
    (``scipy.optimize.nnls``) on the azimuthally averaged light, the library image against
    each Gaussian integrated over the same pixels (the renderer's integral): the encircled
    energy in exact circular apertures of radii 0.5, 1.0, ... pixels up to the stamp's
    half-size (one row each), together with the image's pixel values weighted by
    :data:`PIXEL_WEIGHT` (one row each; being circular, the components can only match the
    pixels' azimuthal average, and these rows hold the core's peak, which the encircled energy
    alone leaves up to 20 % too high for the ring-resolving long-wavelength ACS/HRC PSFs).
    The encircled energy of a pixel image in an exact circle is computed on
    :data:`APERTURE_SUBSAMPLE` squared sub-points per pixel. Components with zero amplitude
    are dropped and the weights normalised to sum 1 (the library image also sums to 1 over
    its stamp).
Scope and limits
    The mixture is circular in detector pixels, so it keeps the PSF's radial profile but not
    its non-circular parts: diffraction spikes, the pads' pattern, the ellipticity of
    non-square pixels (WFC3/IR 0.1354 x 0.1209 arcsec) and the cross shape of the discrete
    3x3 detector kernel. The largest standard deviation (:data:`SIGMA_RANGE` ``[1]``) bounds the
    renderer's stamp (half-size 4.5 sigma, 27 pixels, against 10 for the core + halo of
    :func:`~hapgpu.simulate.make_psf` at WFC3/UVIS F555W: a star costs about 5 times more,
    still a small part of a visit's simulation time) and so the rendering time; the
    light of the diffraction wings beyond it is put back inside by the normalisation.
    Measured on the shipped table (the mixture drawn by the renderer, exact apertures about
    the star): the encircled energy follows the library image's within 0.013-0.030 for most
    filters and 0.034-0.051 at the longer wavelengths on the finer pixels (WFC3/UVIS
    F775W-F850LP, ACS/HRC F555W-F850LP, whose Airy rings the pixels resolve); the peak pixel
    is 0.4-2.7 % high, 6-8 % for ACS/HRC F606W-F814W and WFC3/UVIS F850LP, 16 % for ACS/HRC
    F850LP.
Table
    The fits are computed once by :func:`build_optics_psf_table` and shipped as
    :data:`OPTICS_PSF_TABLE` (``hapgpu/data/optics_psfs.json``); :func:`optics_psf` reads it.
    Run ``python -m hapgpu.simulate._optics_psf [PATH]`` after changing the optics model, the
    library's rendering or the filter set. The file is written under a temporary name and
    renamed.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
from importlib import resources
from pathlib import Path

import numpy as np
from scipy.optimize import nnls
from scipy.special import erf

from ..errors import InvalidParameterError
from ._instruments import INSTRUMENTS, get_detector
from ._profiles import PsfModel

__all__ = ["APERTURE_SUBSAMPLE", "N_COMPONENTS", "OPTICS_PSF_TABLE", "PIXEL_WEIGHT",
           "SIGMA_RANGE", "build_optics_psf_table", "encircled_energy_curve", "fit_optics_psf",
           "optics_psf", "optics_psf_table"]

#: The shipped table, relative to the ``hapgpu`` package.
OPTICS_PSF_TABLE = ("data", "optics_psfs.json")
#: Smallest and largest standard deviation of the fixed components, detector pixels.
SIGMA_RANGE = (0.1, 6.0)
#: Number of fixed components before zero-amplitude ones are dropped.
N_COMPONENTS = 12
#: Weight of the pixel-value rows against the encircled-energy rows of the fit.
PIXEL_WEIGHT = 3.0
#: Sub-points per pixel side for the exact-aperture encircled energy.
APERTURE_SUBSAMPLE = 8
_RADIUS_STEP = 0.5
_TABLE_VERSION = 1


def _pixel_gaussian(size: int, sigma: float) -> np.ndarray:
    """A unit circular Gaussian centred on the middle pixel, integrated over each pixel.

    The same integral as the renderer's ``add_point_sources`` (erf differences per axis).
    Returns float64 (size, size).
    """
    edges = np.arange(size + 1, dtype=np.float64) - 0.5 - size // 2
    fractions = 0.5 * np.diff(erf(edges / (math.sqrt(2.0) * sigma)))
    return np.outer(fractions, fractions)


def encircled_energy_curve(image, radii, *, subsample: int = APERTURE_SUBSAMPLE) -> np.ndarray:
    """Light of a pixel image inside exact circles about the centre of its middle pixel.

    Each pixel's value is spread uniformly over ``subsample**2`` sub-points, and a circle holds
    the sub-points within its radius (the overlap area of circle and pixel, to
    ``1 / subsample**2`` of a pixel per boundary pixel).

    Parameters
    ----------
    image : array_like, shape (..., n, n)
        Pixel images (the middle pixel ``(n // 2, n // 2)`` holds the centre).
    radii : array_like, shape (m,)
        Increasing aperture radii, pixels.
    subsample : int
        Sub-points per pixel side.

    Returns
    -------
    ndarray, float64, shape (..., m)
        Sum of the image inside each radius.
    """
    image = np.asarray(image, dtype=np.float64)
    radii = np.asarray(radii, dtype=np.float64)
    n = image.shape[-1]
    offs = (np.arange(subsample) + 0.5) / subsample - 0.5
    centres = np.arange(n, dtype=np.float64) - n // 2
    fine = (centres[:, None] + offs[None, :]).ravel()
    r = np.hypot(fine[None, :], fine[:, None])                  # (n*sub, n*sub)
    bins = np.searchsorted(radii, r, side="left")               # first radius >= r
    flat = image.reshape(-1, n, n)
    out = np.empty((flat.shape[0], radii.size))
    for k, plane in enumerate(flat):
        spread = np.repeat(np.repeat(plane, subsample, 0), subsample, 1) / subsample ** 2
        out[k] = np.cumsum(np.bincount(bins.ravel(), spread.ravel(),
                                       minlength=radii.size + 1)[:radii.size])
    return out.reshape(image.shape[:-2] + (radii.size,))


def _library_image(detector_key: str, filter_name: str) -> np.ndarray:
    """The library's PSF of one filter, centred on its middle pixel, float64, sum 1."""
    from ..catalogs._build_psfs import render_library_psf  # build time only

    image, _ = render_library_psf(detector_key, filter_name, centre=(0.0, 0.0))
    image = image.astype(np.float64)
    return image / image.sum()


def fit_optics_psf(detector_key: str, filter_name: str) -> PsfModel:
    """Fit a circular Gaussian mixture to the library PSF of one detector and filter.

    Parameters
    ----------
    detector_key : str
        Simulator detector key (``"wfc3-uvis"``, ``"wfc3-ir"``, ``"acs-hrc"``, ``"acs-wfc"``).
    filter_name : str
        Filter name of that detector, e.g. ``"F555W"``.

    Returns
    -------
    PsfModel
        Standard deviations (detector pixels, increasing) and weights (sum 1) of the
        components kept (see the module docstring for the fit).

    Raises
    ------
    InvalidParameterError
        For an unknown detector or filter.
    """
    det = get_detector(detector_key)
    filt = det.filter(filter_name)
    image = _library_image(det.key, filt.name)
    size = image.shape[0]
    radii = np.arange(_RADIUS_STEP, size // 2 + 0.5 * _RADIUS_STEP, _RADIUS_STEP)
    sigmas = np.geomspace(SIGMA_RANGE[0], SIGMA_RANGE[1], N_COMPONENTS)
    basis = np.stack([_pixel_gaussian(size, s) for s in sigmas])
    design = np.vstack([encircled_energy_curve(basis, radii).T,       # (m, k)
                        PIXEL_WEIGHT * basis.reshape(sigmas.size, -1).T])
    target = np.concatenate([encircled_energy_curve(image, radii), PIXEL_WEIGHT * image.ravel()])
    amplitudes, _ = nnls(design, target)
    keep = amplitudes > 0
    return PsfModel(sigmas=sigmas[keep], weights=amplitudes[keep] / amplitudes[keep].sum())


def build_optics_psf_table(path=None) -> Path:
    """Fit every (detector, filter) of the simulator and write the JSON table.

    Parameters
    ----------
    path : str or pathlib.Path, optional
        Output file; defaults to the package's ``data/optics_psfs.json``.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    path = Path(path) if path is not None else Path(
        str(resources.files("hapgpu").joinpath(*OPTICS_PSF_TABLE)))
    table = {"version": _TABLE_VERSION,
             "model": "hapgpu.catalogs._build_psfs.render_library_psf (centred), "
                      "fitted by hapgpu.simulate._optics_psf.fit_optics_psf",
             "sigma_range": list(SIGMA_RANGE), "n_components": N_COMPONENTS,
             "pixel_weight": PIXEL_WEIGHT,
             "units": "sigmas in detector pixels; weights are flux fractions",
             "psfs": {}}
    for key, det in INSTRUMENTS.items():
        table["psfs"][key] = {}
        for name in det.filters:
            psf = fit_optics_psf(key, name)
            table["psfs"][key][name] = {"sigmas": [round(float(s), 6) for s in psf.sigmas],
                                        "weights": [float(w) for w in psf.weights]}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    optics_psf_table.cache_clear()
    return path


@functools.lru_cache(maxsize=1)
def optics_psf_table() -> dict:
    """The shipped table (``hapgpu/data/optics_psfs.json``) as a dict.

    Raises
    ------
    InvalidParameterError
        If the file is missing or not a version-1 table.
    """
    resource = resources.files("hapgpu").joinpath(*OPTICS_PSF_TABLE)
    try:
        table = json.loads(resource.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidParameterError(f"optics PSF table {resource}: unreadable ({exc}); "
                                    f"rebuild it with python -m hapgpu.simulate._optics_psf"
                                    ) from exc
    if table.get("version") != _TABLE_VERSION or "psfs" not in table:
        raise InvalidParameterError(f"optics PSF table {resource}: not a version "
                                    f"{_TABLE_VERSION} table")
    return table


def optics_psf(detector_key: str, filter_name: str) -> PsfModel:
    """The simulator's PSF of a detector and filter: the optics model as a Gaussian mixture.

    Parameters
    ----------
    detector_key : str
        Simulator detector key, e.g. ``"wfc3-uvis"``.
    filter_name : str
        Filter name of that detector, e.g. ``"F555W"`` (case-insensitive).

    Returns
    -------
    PsfModel
        Read from the shipped table (:func:`build_optics_psf_table`); sigmas in the detector's
        pixels.

    Raises
    ------
    InvalidParameterError
        For an unknown detector or filter, or a table lacking it.
    """
    det = get_detector(detector_key)
    filt = det.filter(filter_name)
    entry = optics_psf_table()["psfs"].get(det.key, {}).get(filt.name)
    if entry is None:
        raise InvalidParameterError(f"optics PSF table has no {det.key} {filt.name}; rebuild "
                                    f"it with python -m hapgpu.simulate._optics_psf")
    return PsfModel(sigmas=np.array(entry["sigmas"], dtype=np.float64),
                    weights=np.array(entry["weights"], dtype=np.float64))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = build_optics_psf_table(argv[0] if argv else None)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
