"""The :class:`Drizzle` accumulator: drizzlepac ``cdriz.tdriz`` semantics on any backend."""

from __future__ import annotations

import logging
import math

import numpy as np

from ..backend import resolve_backend
from ..errors import InvalidInputError, InvalidParameterError
from ..kernels import _pixel_math as pm
from ..kernels.drizzle import (
    KERNEL_IDS,
    cuda_drizzle_kernels,
    drizzle_cpu,
    finalize_cpu,
    lanczos_lut,
    resolve_zero_weight_cpu,
)
from ._launch import launch_2d
from ._pixmap import SQUARE_CORNERS, PixelMap, _normalise_shape

__all__ = ["Drizzle", "KERNELS"]

log = logging.getLogger(__name__)

KERNELS = tuple(KERNEL_IDS)
_IN_UNITS = ("cps", "counts")


def _parse_fillval(fillval):
    """Return None for INDEF (no fill) or the float32 fill value."""
    if fillval is None:
        return None
    if isinstance(fillval, str):
        text = fillval.strip()
        if text.upper() in ("", "INDEF", "NONE"):
            return None
        try:
            return np.float32(float(text))
        except ValueError as exc:
            raise InvalidParameterError(f"fillval must be a number, None or 'INDEF', got {fillval!r}") from exc
    try:
        return np.float32(fillval)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"fillval must be a number, None or 'INDEF', got {fillval!r}") from exc


def _positive_finite(value, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"{name} must be a number, got {value!r}") from exc
    if not (math.isfinite(value) and value > 0.0):
        raise InvalidParameterError(f"{name} must be a positive finite number, got {value!r}")
    return value


def _kernel_parameters(kernel: str, pixfrac: float, scale: float) -> np.ndarray:
    """Float64 parameter vector (``_pixel_math.P_*`` slots) of one kernel.

    Footprint sizes are in output pixels: a drop is ``pixfrac`` input pixels wide, i.e.
    ``pixfrac / scale`` output pixels. The gaussian has FWHM ``pixfrac`` input pixels
    (sigma = FWHM / 2.3548, drizzlepac's constant), is normalised to unit integral and is cut
    at 2.5 sigma (at least 1.2 input pixels); the lanczos table is sampled every 0.01 input
    pixels, as in drizzlepac (Fruchter & Hook 2002; drizzlepac's ``cdrizzlebox.c`` documents
    the same constants).
    """
    fp = np.zeros(pm.N_FPARAMS, dtype=np.float64)
    fp[pm.P_PIXFRAC] = pixfrac
    fp[pm.P_SCALE] = scale
    fp[pm.P_HALF] = pixfrac / 2.0
    fp[pm.P_INV_PIXFRAC2] = 1.0 / (pixfrac * pixfrac)
    if kernel in ("turbo", "tophat"):
        fp[pm.P_HALF_WIDTH] = pixfrac / scale / 2.0
    elif kernel == "gaussian":
        fwhm_to_sigma = 2.3548
        # exp(-r**2 / (2 sigma**2)) with sigma = pixfrac / (2.3548 * scale) output pixels
        fp[pm.P_GAUSS_EXP] = fwhm_to_sigma * fwhm_to_sigma * scale * scale * fp[pm.P_INV_PIXFRAC2] / 2.0
        fp[pm.P_GAUSS_NORM] = fp[pm.P_GAUSS_EXP] / math.pi  # 1 / (2 pi sigma**2)
        fp[pm.P_HALF_WIDTH] = max(2.5 * pixfrac / fwhm_to_sigma / scale, 1.2 / scale)
    elif kernel.startswith("lanczos"):
        order = int(kernel[-1])
        fp[pm.P_HALF_WIDTH] = order * pixfrac / scale
        fp[pm.P_LUT_STEP] = scale / float(np.float32(0.01)) / pixfrac
    elif kernel == "square":
        fp[pm.P_HALF_WIDTH] = 0.0  # corners are mapped; the tile margin covers the rest
    return fp


class Drizzle:
    """Drizzle images onto an output frame, as drizzlepac's ``cdriz.tdriz`` does.

    Parameters
    ----------
    output_shape : tuple of int
        ``(ny, nx)`` of the output frame.
    kernel : {"square", "turbo", "point", "gaussian", "tophat", "lanczos2", "lanczos3"}
        Drop kernel (see the algorithms document, §2).
    pixfrac : float
        Drop size in input pixels, ``> 0``. Products use (0, 1]; larger drops are accepted as
        cdriz accepts them (the HAP catalogs drizzle their PSF models with 1.5). Below 0.001
        the kernel becomes ``point``, as in drizzlepac.
    fillval : float, str or None
        Value for output pixels that received no positive weight; None or ``"INDEF"`` keeps
        drizzlepac's INDEF behaviour (the last zero-weight value, else ``initial_value``).
    backend : {"cpu", "gpu", "cudasim", "auto"} or None
        Compute backend; None reads ``HAPGPU_BACKEND``.
    initial_value : float
        Value of output pixels before anything is drizzled (NaN by default; AstroDrizzle's
        separate drizzle starts from 0).

    Notes
    -----
    Sums of ``w*d`` and ``w`` are kept in float64 and divided when results are read, which
    agrees with drizzlepac's float32 running mean to ~1e-7 relative. Non-finite input data or
    weights count as weight 0 and value 0 (drizzlepac would propagate the NaN).
    """

    def __init__(self, output_shape, kernel: str = "square", pixfrac: float = 1.0,
                 fillval=None, backend=None, *, initial_value: float = np.nan):
        self.output_shape = _normalise_shape(output_shape, "output")
        if kernel not in KERNEL_IDS:
            raise InvalidParameterError(f"unknown kernel {kernel!r}; choose one of {', '.join(KERNELS)}")
        pixfrac = _positive_finite(pixfrac, "pixfrac")
        if pixfrac <= 0.001 and kernel != "point":
            log.debug("pixfrac %.4g <= 0.001: using the point kernel (as drizzlepac does)", pixfrac)
            kernel = "point"
        self.kernel = kernel
        self.pixfrac = pixfrac
        self.fillval = _parse_fillval(fillval)
        self.initial_value = np.float32(initial_value)
        self.backend = resolve_backend(backend)
        xp = self.backend.xp
        ny, nx = self.output_shape
        self._num = xp.zeros((ny, nx), dtype=np.float64)
        self._den = xp.zeros((ny, nx), dtype=np.float64)
        self._zidx = xp.zeros((ny, nx), dtype=np.int32)
        self._last_zero = xp.full((ny, nx), self.initial_value, dtype=np.float32)
        self._ctx = xp.zeros((1, ny, nx), dtype=np.int32)
        self._var = None
        self._dq = None
        self._dummy2 = xp.zeros((1, 1), dtype=np.float32)
        self._dummy_dq = xp.zeros((1, 1), dtype=np.int32)
        self._lut = self.backend.asarray(
            lanczos_lut(int(kernel[-1])) if kernel.startswith("lanczos") else np.zeros(1, np.float32),
            np.float32,
        )
        self.n_inputs = 0
        self._max_context_id = 0

    def __repr__(self) -> str:
        return (f"Drizzle(output_shape={self.output_shape}, kernel={self.kernel!r}, "
                f"pixfrac={self.pixfrac}, fillval={self.fillval}, backend={self.backend.name!r})")

    # ---------------------------------------------------------------------------------------
    def add_image(self, data, pmap: PixelMap, weight=None, in_units: str = "cps",
                  exptime: float = 1.0, scale: float = 1.0, wt_scl: float = 1.0,
                  context_id: int | None = None, *, error=None, dq=None) -> None:
        """Drizzle one image onto the output.

        Parameters
        ----------
        data : array_like, shape ``pmap.input_shape``
            Input image (NumPy or, on ``gpu``, CuPy); it is never modified.
        pmap : PixelMap
            Map from this image's pixels to the output frame.
        weight : array_like, optional
            Per-pixel weights (default 1); 0 masks a pixel.
        in_units : {"cps", "counts"}
            ``counts`` divides the data by ``exptime`` (as float32 ``1/exptime``).
        exptime : float
            Exposure time for ``counts`` input.
        scale : float
            drizzlepac's ``scale`` (pix_ratio = output/input pixel scale): the data are
            multiplied by ``float32(scale**2)`` and kernel sizes are in output pixels.
        wt_scl : float
            Factor applied to every weight.
        context_id : int, optional
            1-based input identifier for the context image (default: next number).
        error : array_like, optional
            Error array to propagate with squared weights (``Drizzle.err``).
        dq : array_like of int, optional
            DQ array OR-combined into ``Drizzle.dq`` wherever a pixel contributes.
        """
        if not isinstance(pmap, PixelMap):
            raise InvalidInputError(f"pmap must be a PixelMap, got {type(pmap).__name__}")
        if in_units not in _IN_UNITS:
            raise InvalidParameterError(f"in_units must be 'cps' or 'counts', got {in_units!r}")
        scale = _positive_finite(scale, "scale")
        wt_scl = float(wt_scl)
        if not math.isfinite(wt_scl):
            raise InvalidParameterError(f"wt_scl must be finite, got {wt_scl!r}")
        if in_units == "counts":
            exptime = _positive_finite(exptime, "exptime")
        if context_id is None:
            context_id = self._max_context_id + 1
        if isinstance(context_id, bool) or int(context_id) != context_id or context_id < 1:
            raise InvalidParameterError(f"context_id must be an integer >= 1, got {context_id!r}")
        context_id = int(context_id)

        backend = self.backend
        data = self._as_image(data, pmap, "data", np.float32)
        weight = (backend.xp.ones(pmap.input_shape, dtype=np.float32) if weight is None
                  else self._as_image(weight, pmap, "weight", np.float32))
        flags = pm.F_COUNTS if in_units == "counts" else 0
        err_arr = self._dummy2
        if error is not None:
            err_arr = self._as_image(error, pmap, "error", np.float32)
            flags |= pm.F_VARIANCE
            if self._var is None:
                self._var = backend.xp.zeros(self.output_shape, dtype=np.float64)
        dq_arr = self._dummy_dq
        if dq is not None:
            dq_arr = self._as_image(dq, pmap, "dq", None)
            if dq_arr.dtype.kind not in "iu":
                raise InvalidInputError(f"dq must be an integer array, got dtype {dq_arr.dtype}")
            dq_arr = backend.asarray(dq_arr, np.int32)
            flags |= pm.F_DQ
            if self._dq is None:
                self._dq = backend.xp.zeros(self.output_shape, dtype=np.int32)

        fp = _kernel_parameters(self.kernel, self.pixfrac, scale)
        fp[pm.P_INV_EXP] = float(np.float32(1.0) / np.float32(exptime)) if in_units == "counts" else 1.0
        fp[pm.P_SCALE2] = float(np.float32(scale * scale))
        fp[pm.P_WT_SCL] = float(np.float32(wt_scl))
        ny, nx = pmap.input_shape
        ip = np.array([KERNEL_IDS[self.kernel], self.output_shape[1], self.output_shape[0], nx, ny, flags],
                      dtype=np.int64)
        offsets = [(ox * fp[pm.P_HALF], oy * fp[pm.P_HALF]) for ox, oy in SQUARE_CORNERS] \
            if self.kernel == "square" else [(0.0, 0.0)]
        factor, tx, ty, ex, ey = pmap.kernel_inputs(backend, offsets)
        fp[pm.P_FACTOR] = factor

        ctx_plane = self._context_plane(context_id)
        bit = (context_id - 1) % 32
        ctxbit = np.int32(np.uint32(1 << bit).view(np.int32))
        var = self._var if self._var is not None else self._dummy2.astype(np.float64)
        outdq = self._dq if self._dq is not None else self._dummy_dq
        fp_dev = backend.asarray(fp)
        ip_dev = backend.asarray(ip)
        args = (data, weight, err_arr, dq_arr, fp_dev, ip_dev, tx, ty, ex, ey, self._lut,
                self._num, self._den, var, outdq, self._zidx, ctx_plane, ctxbit)
        if backend.name == "cpu":
            drizzle_cpu(*args)
            resolve_zero_weight_cpu(self._zidx, self._last_zero, data, fp, ip)
        else:
            kernel, resolve, _ = self._cuda_kernels()
            launch_2d(kernel, backend, (ny, nx), *args)
            launch_2d(resolve, backend, self.output_shape, self._zidx, self._last_zero, data, fp_dev, ip_dev)
        self.n_inputs += 1
        self._max_context_id = max(self._max_context_id, context_id)

    def _cuda_kernels(self):
        return cuda_drizzle_kernels("cuda" if self.backend.name == "gpu" else "cudasim")

    def _as_image(self, array, pmap: PixelMap, name: str, dtype):
        xp = self.backend.xp
        if not hasattr(array, "shape"):
            array = np.asarray(array)
        if array.ndim != 2:
            raise InvalidInputError(f"{name} must be a 2-D image, got {array.ndim} dimensions")
        if tuple(array.shape) != pmap.input_shape:
            raise InvalidInputError(
                f"{name} has shape {tuple(array.shape)} but the pixel map was built for {pmap.input_shape}"
            )
        if array.dtype.kind not in "fiub":
            raise InvalidInputError(f"{name} must be a real numeric array, got dtype {array.dtype}")
        if dtype is None:
            return array
        if self.backend.name == "gpu":
            return xp.ascontiguousarray(xp.asarray(array, dtype=dtype))
        return np.ascontiguousarray(array, dtype=dtype)

    def _context_plane(self, context_id: int):
        plane = (context_id - 1) // 32
        if plane >= self._ctx.shape[0]:
            xp = self.backend.xp
            grow = xp.zeros((plane + 1 - self._ctx.shape[0],) + self.output_shape, dtype=np.int32)
            self._ctx = xp.concatenate([self._ctx, grow], axis=0)
        return self._ctx[plane]

    # ---------------------------------------------------------------------------------------
    def device_arrays(self):
        """``(sci, wht, ctx)`` on the backend's device (CuPy on ``gpu``), without a copy to host."""
        xp = self.backend.xp
        sci = xp.empty(self.output_shape, dtype=np.float32)
        wht = xp.empty(self.output_shape, dtype=np.float32)
        fill = np.float32(0.0 if self.fillval is None else self.fillval)
        args = (self._num, self._den, self._last_zero, fill, self.fillval is not None, sci, wht)
        if self.backend.name == "cpu":
            finalize_cpu(*args)
        else:
            launch_2d(self._cuda_kernels()[2], self.backend, self.output_shape, *args)
        return sci, wht, self._ctx

    @property
    def sci(self) -> np.ndarray:
        """Drizzled image, float32 ``(ny, nx)`` on the host (count rate for counts input)."""
        return self.backend.to_host(self.device_arrays()[0])

    @property
    def wht(self) -> np.ndarray:
        """Output weight image, float32 ``(ny, nx)`` on the host."""
        return self.backend.to_host(self._den.astype(np.float32))

    @property
    def ctx(self) -> np.ndarray:
        """Context image, int32 ``(planes, ny, nx)``; bit ``(id-1) % 32`` of plane ``(id-1)//32``."""
        return self.backend.to_host(self._ctx)

    @property
    def err(self) -> np.ndarray | None:
        """Propagated error ``sqrt(sum(w**2 err**2)) / sum(w)`` (None unless errors were given)."""
        if self._var is None:
            return None
        xp = self.backend.xp
        covered = self._den != 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            err = xp.where(covered, xp.sqrt(self._var) / xp.abs(xp.where(covered, self._den, 1.0)), xp.nan)
        return self.backend.to_host(err.astype(np.float32))

    @property
    def dq(self) -> np.ndarray | None:
        """OR of the DQ flags of every contributing input pixel (None unless DQ was given)."""
        return None if self._dq is None else self.backend.to_host(self._dq)
