"""The SVM metawcs: one north-up frame shared by every product of a detector (hap-pipeline.md §1.10).

drizzlepac's ``TotalProduct.generate_metawcs`` calls ``wcs_functions.make_mosaic_wcs(files,
rot=final_rot, scale=final_scale)``, which is, in order:

1. stwcs ``output_wcs(chips, undistort=True)`` on every SCI chip of every exposure (reference =
   first chip; orthogonal CD at IDCSCALE with the V3 roll + IDCTHETA orientation; CRVAL at the
   geographic midpoint of all chip corners; shape = ceiling of the projected corner range) —
   this is :func:`hapgpu.astrodrizzle._frame.default_frame`, reused here;
2. a "perfect" CD: ``s * [[-cos θ, sin θ], [sin θ, cos θ]]`` with ``s = pscale / 3600`` and
   θ the frame orientation (``wcs_functions.make_perfect_cd``);
3. AstroDrizzle's ``mergeWCS`` with ``{"rot": rot}`` (the rotated bounding box of the frame,
   north up for ``rot = 0``), then, when a scale is given, ``mergeWCS`` with ``{"rot": rot,
   "scale": scale}`` — :func:`hapgpu.astrodrizzle._frame.custom_frame`, reused here.

Host code on a few corner coordinates; no pixels are read.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from ..astrodrizzle._frame import OutputFrame, custom_frame, default_frame
from ..errors import InvalidInputError, InvalidParameterError, WCSError

__all__ = ["make_mosaic_wcs", "mosaic_drizzle_pars", "read_chip_wcs"]


def read_chip_wcs(path) -> list:
    """Every SCI chip of one exposure as an ``HSTWCS``, in file order.

    Parameters
    ----------
    path : str or pathlib.Path
        FLT/FLC (or any multi-extension HST) file.

    Returns
    -------
    list of stwcs.wcsutil.HSTWCS
        One per extension whose EXTNAME is ``SCI``, in the order they appear in the file (the
        order drizzlepac's ``wcs_functions.get_extns`` gives).

    Raises
    ------
    InvalidInputError
        The file cannot be read or has no SCI extension.
    WCSError
        A chip's WCS cannot be built or is not finite.
    """
    from astropy.io import fits
    from stwcs.wcsutil import HSTWCS

    path = Path(path)
    chips = []
    try:
        with fits.open(path, memmap=False) as hdul:
            indices = [i for i, hdu in enumerate(hdul) if hdu.header.get("EXTNAME") == "SCI"]
            if not indices:
                raise InvalidInputError(f"{path}: no SCI extension")
            for index in indices:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        wcs = HSTWCS(hdul, ext=index)
                except Exception as exc:  # stwcs raises many types for broken headers
                    raise WCSError(f"{path}[{index}]: cannot build the WCS: {exc}") from exc
                if wcs.wcs.cd is None or not (np.all(np.isfinite(wcs.wcs.crval))
                                              and np.all(np.isfinite(wcs.wcs.cd))):
                    raise WCSError(f"{path}[{index}]: the WCS has no finite CRVAL/CD")
                chips.append(wcs)
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the exposure: {exc}") from exc
    return chips


def _perfect_cd(pscale: float, orientat: float) -> np.ndarray:
    """``s * [[-cos θ, sin θ], [sin θ, cos θ]]``, s = pscale/3600 (drizzlepac ``make_perfect_cd``)."""
    s = pscale / 3600.0
    theta = np.deg2rad(orientat)
    return s * np.array([[-np.cos(theta), np.sin(theta)], [np.sin(theta), np.cos(theta)]])


def make_mosaic_wcs(exposure_paths, *, rot: float | None = 0.0, scale: float | None = None) -> OutputFrame:
    """The SVM metawcs covering every chip of ``exposure_paths`` (drizzlepac ``make_mosaic_wcs``).

    Parameters
    ----------
    exposure_paths : sequence of str or pathlib.Path
        Exposures (FLT/FLC), in the order of the product's exposure list: the first SCI chip of
        the first file is the reference chip (orientation, plate scale, parity).
    rot : float or None, keyword-only
        Orientation of the output frame, degrees east of north (``final_rot``; SVM: 0.0, north
        up). None keeps the reference chip's orientation.
    scale : float or None, keyword-only
        Pixel scale, arcsec (``final_scale``; SVM: None, except 0.025 for ACS/SBC totals). None
        keeps the reference chip's IDCSCALE.

    Returns
    -------
    OutputFrame
        ``.wcs`` (``stwcs.wcsutil.HSTWCS``, TAN, ``pscale`` and ``orientat`` attributes set) and
        ``.shape`` ``(ny, nx)``.

    Raises
    ------
    InvalidParameterError
        No exposures, or a non-finite/non-positive ``scale``, or a non-finite ``rot``.
    InvalidInputError
        An exposure cannot be read or has no SCI extension.
    WCSError
        A chip WCS is unusable, or the frame comes out empty.

    Notes
    -----
    Formulas from drizzlepac ``wcs_functions.make_mosaic_wcs``/``make_perfect_cd``/``mergeWCS``
    and stwcs ``distortion.utils.output_wcs`` (hap-pipeline.md §1.10). The frame size is the
    rotated bounding box of stwcs' intermediate frame, not of the footprint itself.
    """
    if isinstance(exposure_paths, (str, Path)):
        exposure_paths = [exposure_paths]
    paths = list(exposure_paths)
    if not paths:
        raise InvalidParameterError("make_mosaic_wcs needs at least one exposure")
    if rot is not None and not math.isfinite(rot):
        raise InvalidParameterError(f"rot must be finite, got {rot}")
    if scale is not None and not (math.isfinite(scale) and scale > 0):
        raise InvalidParameterError(f"scale must be a positive number of arcsec, got {scale}")
    chips = [chip for path in paths for chip in read_chip_wcs(path)]
    frame = default_frame(chips)
    wcs = frame.wcs
    wcs.wcs.cd = _perfect_cd(wcs.pscale, wcs.orientat)
    if rot is not None:
        frame = custom_frame(frame, {"rot": rot})
    if scale is not None:
        frame = custom_frame(frame, {"rot": rot, "scale": scale})
    return frame


def mosaic_drizzle_pars(frame: OutputFrame) -> dict:
    """AstroDrizzle ``final_*`` parameters that reproduce ``frame`` (drizzlepac ``create_mosaic_pars``).

    Parameters
    ----------
    frame : OutputFrame
        A metawcs from :func:`make_mosaic_wcs`.

    Returns
    -------
    dict
        ``final_ra``, ``final_dec`` (CRVAL, deg), ``final_crpix1/2`` (CRPIX, 1-based),
        ``final_outnx/ny`` (shape), ``final_rot`` (orientation, deg) and ``final_scale``
        (arcsec/pixel), all Python floats/ints.
    """
    wcs = frame.wcs
    return {
        "final_rot": float(wcs.orientat),
        "final_scale": float(frame.pscale),
        "final_outnx": int(frame.shape[1]),
        "final_outny": int(frame.shape[0]),
        "final_ra": float(wcs.wcs.crval[0]),
        "final_dec": float(wcs.wcs.crval[1]),
        "final_crpix1": float(wcs.wcs.crpix[0]),
        "final_crpix2": float(wcs.wcs.crpix[1]),
    }
