"""Pixel maps: the boundary between WCS geometry (host) and resampling arithmetic (device).

A :class:`PixelMap` maps 1-based FITS pixel positions of an *input* frame (a distorted HST
chip) to 1-based positions of an *output* frame (an undistorted drizzle frame) through
``output.wcs_world2pix(input.all_pix2world(x, y, 1), 1)``.

With ``stepsize > 0`` it is drizzlepac's coarse coordinate table (``cdriz.DefaultWCSMapping``):
nodes every ``stepsize`` input pixels evaluated exactly on the host in float64, interpolated
bilinearly on the device. HAP products are made with ``stepsize=10``; reproducing them to 1e-5
needs this very table because it differs from the exact WCS by up to ~4e-4 px. With
``stepsize=0`` every query point is evaluated exactly with the WCS on the host.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidInputError, InvalidParameterError, WCSError

__all__ = ["PixelMap"]

log = logging.getLogger(__name__)

# (x, y) offsets of the square kernel's corners in units of pixfrac/2: drizzlepac's order.
SQUARE_CORNERS = ((-1.0, 1.0), (1.0, 1.0), (1.0, -1.0), (-1.0, -1.0))


def _has_distortion(wcs) -> bool:
    return any(
        getattr(wcs, name, None) is not None
        for name in ("sip", "cpdis1", "cpdis2", "det2im1", "det2im2")
    )


def _check_celestial(wcs, role: str) -> None:
    if not hasattr(wcs, "all_pix2world") or not hasattr(wcs, "wcs_world2pix"):
        raise WCSError(f"{role} WCS must be an astropy.wcs.WCS (or stwcs HSTWCS), got {type(wcs)!r}")
    if wcs.naxis != 2:
        raise WCSError(f"{role} WCS must have 2 axes, it has {wcs.naxis}")
    if not (np.all(np.isfinite(wcs.wcs.crval)) and np.all(np.isfinite(wcs.wcs.crpix))):
        raise WCSError(f"{role} WCS has non-finite CRVAL or CRPIX")
    try:
        matrix = wcs.pixel_scale_matrix
    except Exception as exc:  # astropy raises several types for broken headers
        raise WCSError(f"{role} WCS has no usable CD/PC matrix: {exc}") from exc
    if not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix)) == 0.0:
        raise WCSError(f"{role} WCS has a singular or non-finite CD/PC matrix")


def _normalise_shape(shape, role: str) -> tuple[int, int]:
    try:
        ny, nx = (int(v) for v in shape)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{role} shape must be two integers (ny, nx), got {shape!r}") from exc
    if ny < 1 or nx < 1:
        raise InvalidInputError(f"{role} shape must be positive, got {(ny, nx)}")
    return ny, nx


@dataclass(eq=False)
class PixelMap:
    """Mapping from input-frame pixels to output-frame pixels.

    Build it with :meth:`from_wcs`. Attributes are read-only in practice.

    Attributes
    ----------
    input_shape : tuple of int
        ``(ny, nx)`` of the input frame (the array shape of the image to drizzle, or of the
        chip a blot produces).
    stepsize : int
        Table step in input pixels; 0 means exact evaluation.
    table_x, table_y : ndarray or None
        float64 ``(sny, snx)`` 1-based output coordinates of the input points
        ``(a * stepsize, b * stepsize)``; None when ``stepsize == 0``.
    input_wcs, output_wcs : astropy.wcs.WCS
        The two frames.
    """

    input_shape: tuple[int, int]
    stepsize: int
    input_wcs: object
    output_wcs: object
    table_x: np.ndarray | None = None
    table_y: np.ndarray | None = None
    _exact_cache: dict = field(default_factory=dict, repr=False)
    _device_cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_wcs(cls, input_wcs, output_wcs, input_shape=None, stepsize: int = 10) -> "PixelMap":
        """Build the pixel map of ``input_wcs`` onto ``output_wcs``.

        Parameters
        ----------
        input_wcs : astropy.wcs.WCS or stwcs.wcsutil.HSTWCS
            Input frame, with its SIP, lookup-table (NPOL) and D2IM distortion.
        output_wcs : astropy.wcs.WCS
            Output frame; normally undistorted (then ``wcs_world2pix`` is used, as drizzlepac
            does); a distorted one is inverted with ``all_world2pix``.
        input_shape : tuple of int, optional
            ``(ny, nx)``; defaults to ``input_wcs.array_shape``.
        stepsize : int, optional
            Coordinate-table step (drizzlepac's ``stepsize``, default 10). 0 evaluates the
            exact WCS at every query point (on the host; slower).

        Returns
        -------
        PixelMap

        Raises
        ------
        WCSError
            If either WCS is not a finite 2-D celestial WCS, or the table is not finite.
        InvalidParameterError
            If ``stepsize`` is negative or not an integer.
        """
        _check_celestial(input_wcs, "input")
        _check_celestial(output_wcs, "output")
        if input_shape is None:
            if input_wcs.array_shape is None:
                raise InvalidInputError("input_shape not given and the input WCS has no NAXIS")
            input_shape = input_wcs.array_shape
        shape = _normalise_shape(input_shape, "input")
        if isinstance(stepsize, bool) or int(stepsize) != stepsize or stepsize < 0:
            raise InvalidParameterError(f"stepsize must be a non-negative integer, got {stepsize!r}")
        pmap = cls(shape, int(stepsize), input_wcs, output_wcs)
        if pmap.stepsize > 0:
            pmap.table_x, pmap.table_y = pmap._build_table()
        return pmap

    # ---------------------------------------------------------------------------------------
    def map_points(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Exact 1-based output coordinates of 1-based input points (float64, on the host)."""
        x = np.asarray(x, dtype=np.float64)
        shape = x.shape
        x = x.ravel()  # stwcs' all_world2pix only handles 1-D arrays
        y = np.asarray(y, dtype=np.float64).ravel()
        ra, dec = self.input_wcs.all_pix2world(x, y, 1)
        if _has_distortion(self.output_wcs):
            xo, yo = self.output_wcs.all_world2pix(ra, dec, 1, quiet=True)
        else:
            xo, yo = self.output_wcs.wcs_world2pix(ra, dec, 1)
        return (np.asarray(xo, dtype=np.float64).reshape(shape),
                np.asarray(yo, dtype=np.float64).reshape(shape))

    def _build_table(self) -> tuple[np.ndarray, np.ndarray]:
        ny, nx = self.input_shape
        f = self.stepsize
        snx = nx // f + 2
        sny = ny // f + 2
        gx, gy = np.meshgrid(np.arange(snx, dtype=np.float64) * f, np.arange(sny, dtype=np.float64) * f)
        tx, ty = self.map_points(gx, gy)
        if not (np.all(np.isfinite(tx)) and np.all(np.isfinite(ty))):
            raise WCSError("the pixel map has non-finite values: the WCS cannot map this frame")
        return np.ascontiguousarray(tx), np.ascontiguousarray(ty)

    def exact_coordinates(self, offsets) -> tuple[np.ndarray, np.ndarray]:
        """Exact 1-based output coordinates of every pixel shifted by each ``(ox, oy)``.

        Returns two float64 arrays of shape ``(len(offsets), ny, nx)``; non-finite results
        (points the WCS cannot map) stay NaN and are skipped by the kernels.
        """
        key = tuple((float(ox), float(oy)) for ox, oy in offsets)
        if key not in self._exact_cache:
            ny, nx = self.input_shape
            gx, gy = np.meshgrid(np.arange(1, nx + 1, dtype=np.float64), np.arange(1, ny + 1, dtype=np.float64))
            ex = np.empty((len(key), ny, nx))
            ey = np.empty((len(key), ny, nx))
            for k, (ox, oy) in enumerate(key):
                ex[k], ey[k] = self.map_points(gx + ox, gy + oy)
            self._exact_cache.clear()  # keep at most one set: these arrays are large
            self._exact_cache[key] = (ex, ey)
        return self._exact_cache[key]

    def pixmap(self) -> np.ndarray:
        """0-based output position of every input pixel centre, shape ``(ny, nx, 2)``.

        This is the ``drizzle`` library's pixel-map layout (``[..., 0]`` is x). With a table it
        is the table interpolation, otherwise the exact WCS.
        """
        ny, nx = self.input_shape
        if self.stepsize == 0:
            ex, ey = self.exact_coordinates([(0.0, 0.0)])
            return np.stack([ex[0] - 1.0, ey[0] - 1.0], axis=-1)
        from ..kernels.drizzle import pixmap_cpu

        return pixmap_cpu(self.table_x, self.table_y, float(self.stepsize), ny, nx)

    def kernel_inputs(self, backend, offsets):
        """Coordinate arrays for the kernels on ``backend``: ``(factor, tx, ty, ex, ey)``.

        The unused pair is a tiny dummy so that every kernel has one signature.
        """
        key = (backend.name, self.stepsize, tuple(offsets) if self.stepsize == 0 else None)
        cached = self._device_cache.get(key)
        if cached is not None:
            return cached
        dummy3 = np.zeros((1, 1, 1))
        if self.stepsize > 0:
            arrays = (self.table_x, self.table_y, dummy3, dummy3)
        else:
            ex, ey = self.exact_coordinates(offsets)
            arrays = (np.zeros((2, 2)), np.zeros((2, 2)), ex, ey)
        result = (float(self.stepsize),) + tuple(backend.asarray(a, np.float64) for a in arrays)
        if self.stepsize == 0:
            self._device_cache.clear()
        self._device_cache[key] = result
        return result

    def __repr__(self) -> str:
        mode = f"table step {self.stepsize}" if self.stepsize else "exact"
        return f"PixelMap(input_shape={self.input_shape}, {mode})"

