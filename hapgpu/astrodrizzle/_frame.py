"""Output frames: AstroDrizzle's default undistorted frame, user overrides, reference images, bands.

The default frame is stwcs' ``output_wcs(chips, undistort=True)`` (reference-chip orientation,
the chips' linear pixel scale, covering every chip). User parameters (``*_rot``, ``*_scale``,
``*_outnx/ny``, ``*_ra/dec``, ``*_crpix1/2``) then modify it the way AstroDrizzle merges them,
or a reference image replaces it. A *band* is the same frame restricted to a range of rows: the
WCS with CRPIX2 shifted and a smaller shape, so pixel maps, drizzle and blot work unchanged.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError, InvalidParameterError, WCSError

__all__ = ["OutputFrame", "default_frame", "custom_frame", "frame_from_reference", "row_bands"]

_WCS_KEYS = ("ra", "dec", "scale", "rot", "outnx", "outny", "crpix1", "crpix2")


@dataclass(frozen=True, eq=False)
class OutputFrame:
    """An undistorted output frame.

    Attributes
    ----------
    wcs : stwcs.wcsutil.HSTWCS
        The frame's WCS (``pscale`` and ``orientat`` attributes set).
    shape : (int, int)
        ``(ny, nx)``.
    row0 : int
        First row of this frame within its parent frame (0 unless it is a band).
    """

    wcs: object
    shape: tuple[int, int]
    row0: int = 0

    @property
    def pscale(self) -> float:
        """Pixel scale (arcsec): the WCS's ``pscale`` (stwcs: the norm of the first CD column)."""
        value = getattr(self.wcs, "pscale", None)
        if value is None:
            cd = self.wcs.wcs.cd
            value = math.hypot(cd[0, 0], cd[1, 0]) * 3600.0
        return float(value)

    def band(self, row0: int, row1: int) -> "OutputFrame":
        """Rows ``row0:row1`` of this frame as a frame of their own."""
        if not 0 <= row0 < row1 <= self.shape[0]:
            raise InvalidParameterError(f"band rows {row0}:{row1} outside the frame of {self.shape[0]} rows")
        wcs = self.wcs.deepcopy()
        wcs.wcs.crpix = np.array([self.wcs.wcs.crpix[0], self.wcs.wcs.crpix[1] - row0], dtype=np.float64)
        wcs.pixel_shape = (self.shape[1], row1 - row0)
        wcs.wcs.set()
        _copy_scale_attributes(self.wcs, wcs)
        return OutputFrame(wcs, (row1 - row0, self.shape[1]), self.row0 + row0)


def _copy_scale_attributes(src, dst) -> None:
    for name in ("pscale", "orientat"):
        if hasattr(src, name):
            setattr(dst, name, getattr(src, name))


def _frame_of(wcs) -> OutputFrame:
    nx, ny = (int(n) for n in wcs.pixel_shape)
    if nx < 1 or ny < 1:
        raise WCSError(f"output frame has an empty shape ({ny}, {nx})")
    return OutputFrame(wcs, (ny, nx))


def default_frame(chip_wcs_list) -> OutputFrame:
    """stwcs' default undistorted frame covering every chip in ``chip_wcs_list``."""
    from stwcs.distortion import utils as dist_utils

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wcs = dist_utils.output_wcs(list(chip_wcs_list), undistort=True)
    return _frame_of(wcs)


def frame_from_reference(path) -> OutputFrame:
    """The frame of a reference image (its first extension with a celestial WCS)."""
    from astropy.io import fits
    from stwcs.wcsutil import HSTWCS

    try:
        with fits.open(path, memmap=False) as hdul:
            for index, hdu in enumerate(hdul):
                if "CTYPE1" in hdu.header and hdu.header.get("NAXIS", 0) == 2:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        wcs = HSTWCS(hdul, ext=index)
                    break
            else:
                raise WCSError(f"{path}: no 2-D extension with a WCS")
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read reference image: {exc}") from exc
    if getattr(wcs, "pscale", None) is None:
        wcs.pscale = float(math.hypot(wcs.wcs.cd[0, 0], wcs.wcs.cd[1, 0]) * 3600.0)
    if getattr(wcs, "orientat", None) is None:
        wcs.orientat = float(math.degrees(math.atan2(wcs.wcs.cd[0, 1], wcs.wcs.cd[1, 1])))
    return _frame_of(wcs)


def _pair(values: dict, a: str, b: str):
    va, vb = values.get(a), values.get(b)
    if (va is None) != (vb is None):
        given, missing = (a, b) if va is not None else (b, a)
        raise InvalidParameterError(f"when '{given}' is given, '{missing}' must be given too")
    return None if va is None else (va, vb)


def _round_half_away(x: float) -> int:
    return int(math.floor(x + 0.5)) if x >= 0 else int(math.ceil(x - 0.5))


def _rotated_range(corners: np.ndarray, angle: float):
    if angle:
        theta = angle * np.pi / 180.0
        rot = np.array([[math.cos(theta), math.sin(theta)], [-math.sin(theta), math.cos(theta)]])
        corners = np.dot(corners, rot)
    return (corners[:, 0].min(), corners[:, 0].max()), (corners[:, 1].min(), corners[:, 1].max())


def custom_frame(base: OutputFrame, values: dict) -> OutputFrame:
    """Apply AstroDrizzle's custom-WCS parameters to ``base`` (as its ``mergeWCS`` does).

    Parameters
    ----------
    base : OutputFrame
        Default or reference frame.
    values : dict
        ``{"ra", "dec", "scale", "rot", "outnx", "outny", "crpix1", "crpix2"}``, None = unset.

    Returns
    -------
    OutputFrame
    """
    wcs = base.wcs.deepcopy()
    _copy_scale_attributes(base.wcs, wcs)
    if all(values.get(k) is None for k in _WCS_KEYS):
        return _frame_of(wcs)
    crval = _pair(values, "ra", "dec")
    scale = values.get("scale")
    ratio = None
    if scale is not None and not np.isclose(scale, wcs.pscale, atol=100.0 * np.finfo(float).tiny,
                                            rtol=10.0 * np.finfo(float).eps):
        ratio = wcs.pscale / scale
    rot = values.get("rot")
    delta_rot = None if rot is None or wcs.orientat - rot == 0.0 else wcs.orientat - rot
    crpix = _pair(values, "crpix1", "crpix2")
    shape = None
    size = _pair(values, "outnx", "outny")
    if size is not None:
        shape = (_round_half_away(size[0]), _round_half_away(size[1]))
        if min(shape) < 1:
            raise InvalidParameterError("custom output size must be at least 1x1")
        if crpix is None:
            crpix = ((shape[0] + 1.0) / 2.0, (shape[1] + 1.0) / 2.0)
    else:
        naxis1, naxis2 = wcs.pixel_shape
        if delta_rot is None:
            if ratio is not None:
                shape = (max(1, int(math.ceil(ratio * naxis1))), max(1, int(math.ceil(ratio * naxis2))))
                if crpix is None:
                    crpix = tuple(1.0 + ratio * (wcs.wcs.crpix - 1.0))
        else:
            corners = np.array([[0.5, 0.5], [naxis1 + 0.5, 0.5], [0.5, naxis2 + 0.5],
                                [naxis1 + 0.5, naxis2 + 0.5]]) - wcs.wcs.crpix
            if ratio is not None:
                corners *= ratio
            (xmin, xmax), (ymin, ymax) = _rotated_range(corners, delta_rot)
            shape = (max(1, int(math.ceil(xmax - xmin))), max(1, int(math.ceil(ymax - ymin))))
            if crpix is None:
                crpix = (-xmin + 0.5, -ymin + 0.5)
    if ratio is not None:
        wcs.wcs.cd = wcs.wcs.cd / ratio
        wcs.pscale = scale
    if delta_rot is not None:
        theta = np.deg2rad(delta_rot)
        wcs.wcs.cd = np.dot(wcs.wcs.cd, [[math.cos(theta), math.sin(theta)],
                                         [-math.sin(theta), math.cos(theta)]])
        wcs.orientat -= delta_rot
    if shape is not None:
        wcs.pixel_shape = shape
    if crpix is not None:
        wcs.wcs.crpix = np.array(crpix, dtype=np.float64)
    if crval is not None:
        wcs.wcs.crval = np.array(crval, dtype=np.float64)
    wcs.wcs.set()
    return _frame_of(wcs)


def row_bands(n_rows: int, band_rows: int | None, halo: int = 0):
    """Split ``n_rows`` into bands: ``[(core0, core1, ext0, ext1), ...]``.

    ``core`` rows are produced by a band; ``ext`` rows (the core widened by ``halo`` rows,
    clipped to the frame) are computed so that neighbourhood operations near the core edges
    see the same data as in an unbanded run.
    """
    if band_rows is None or band_rows >= n_rows:
        return [(0, n_rows, 0, n_rows)]
    if band_rows < 1:
        raise InvalidParameterError(f"band_rows must be >= 1, got {band_rows}")
    bands = []
    for start in range(0, n_rows, band_rows):
        stop = min(start + band_rows, n_rows)
        bands.append((start, stop, max(0, start - halo), min(n_rows, stop + halo)))
    return bands
