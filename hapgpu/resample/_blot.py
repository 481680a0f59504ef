"""Blot: resample a drizzled image back onto an input chip (drizzlepac ``cdriz.tblot``)."""

from __future__ import annotations

import numba
import numpy as np

from ..backend import resolve_backend
from ..errors import InvalidInputError, InvalidParameterError
from ..kernels import _interp_math as im
from ..kernels.blot import INTERP_IDS, blot_cpu, blot_lut, cuda_blot_kernel
from ._drizzle import _positive_finite
from ._launch import launch_2d
from ._pixmap import PixelMap

__all__ = ["blot", "INTERPOLANTS"]

INTERPOLANTS = tuple(INTERP_IDS)
_ALIASES = {"lan3": "lanczos3", "lan5": "lanczos5", "bilinear": "linear"}
_REJECTED = {
    "sinc": "drizzlepac's sinc indexes its taper arrays out of bounds: its results are undefined",
    "lsinc": "drizzlepac's lsinc indexes its taper arrays out of bounds: its results are undefined",
    "spline3": "drizzlepac accepts spline3 by name but never implemented it",
}


def _interp_id(interp: str) -> int:
    name = _ALIASES.get(str(interp).lower(), str(interp).lower())
    if name in _REJECTED:
        raise InvalidParameterError(f"blot interpolant {interp!r} is not supported: {_REJECTED[name]}; "
                                    f"use one of {', '.join(INTERPOLANTS)}")
    if name not in INTERP_IDS:
        raise InvalidParameterError(f"unknown blot interpolant {interp!r}; choose one of {', '.join(INTERPOLANTS)}")
    return INTERP_IDS[name]


def blot(image, pmap: PixelMap, interp: str = "poly5", scale: float = 1.0, exptime: float = 1.0,
         misval: float = 0.0, backend=None, *, kscale: float = 1.0):
    """Resample ``image`` onto the pixel grid of ``pmap``'s input frame.

    Parameters
    ----------
    image : array_like, shape (ny_src, nx_src)
        Source image (e.g. the median of the separately drizzled images), in count rate per
        source pixel. NumPy, or CuPy on the ``gpu`` backend.
    pmap : PixelMap
        Map from the *blotted* frame (a chip) to the source frame:
        ``PixelMap.from_wcs(chip_wcs, source_wcs, chip_shape)``.
    interp : {"poly5", "poly3", "linear", "nearest", "lanczos3", "lanczos5"}
        Interpolant (drizzlepac names ``lan3``/``lan5`` are accepted). ``sinc``, ``lsinc`` and
        ``spline3`` are rejected: drizzlepac's are undefined or unimplemented.
    scale : float
        Source pixel scale / chip pixel scale (drizzlepac's pix_ratio); values are divided
        by ``float32(scale**2)``.
    exptime : float
        Values are multiplied by this (drizzlepac's ``ef``), giving counts per chip pixel.
    misval : float
        Value of chip pixels that fall outside the source image.
    backend : str, optional
        ``cpu``, ``gpu``, ``cudasim`` or ``auto`` (None reads ``HAPGPU_BACKEND``).
    kscale : float
        Lanczos window scale (drizzlepac's ``kscale``; the window is ``int(3/kscale)``).

    Returns
    -------
    ndarray
        float32 image of shape ``pmap.input_shape``; a CuPy array when ``image`` is one.
    """
    backend = resolve_backend(backend)
    if not isinstance(pmap, PixelMap):
        raise InvalidInputError(f"pmap must be a PixelMap, got {type(pmap).__name__}")
    interp_id = _interp_id(interp)
    scale = _positive_finite(scale, "scale")
    exptime = _positive_finite(exptime, "exptime")
    kscale = _positive_finite(kscale, "kscale")
    on_device = not isinstance(image, np.ndarray) and hasattr(image, "__cuda_array_interface__")
    if not hasattr(image, "ndim"):
        image = np.asarray(image)
    if image.ndim != 2 or min(image.shape) < 1:
        raise InvalidInputError(f"image must be a non-empty 2-D array, got shape {tuple(image.shape)}")
    if image.dtype.kind not in "fiu":
        raise InvalidInputError(f"image must be a real numeric array, got dtype {image.dtype}")
    if interp_id == im.I_POLY5 and min(image.shape) < 4:
        raise InvalidInputError(f"poly5 blot needs a source image of at least 4x4 pixels, got {tuple(image.shape)}")
    src = backend.asarray(image, np.float32)

    fp = np.zeros(im.N_BPARAMS, dtype=np.float64)
    fp[im.B_EF] = float(np.float32(exptime))
    fp[im.B_SCALE2] = float(np.float32(scale * scale))
    fp[im.B_MISVAL] = float(misval)
    fp[im.B_SPACE] = float(np.float32(0.01))
    ip = np.array([interp_id, int(3.0 / kscale)], dtype=np.int64)
    factor, tx, ty, ex, ey = pmap.kernel_inputs(backend, [(0.0, 0.0)])
    fp[im.B_FACTOR] = factor
    order = 5 if interp_id == im.I_LANCZOS5 else 3
    lut = backend.asarray(blot_lut(order) if interp_id in (im.I_LANCZOS3, im.I_LANCZOS5)
                          else np.zeros(1, np.float32), np.float32)
    out = backend.xp.empty(pmap.input_shape, dtype=np.float32)
    if backend.name == "cpu":
        with numba.parallel_chunksize(8):  # dynamic scheduling of 8-row chunks
            blot_cpu(src, out, fp, ip, tx, ty, ex, ey, lut)
    else:
        kernel = cuda_blot_kernel("cuda" if backend.name == "gpu" else "cudasim")
        launch_2d(kernel, backend, pmap.input_shape, src, out, backend.asarray(fp), backend.asarray(ip),
                  tx, ty, ex, ey, lut)
    return out if on_device else backend.to_host(out)
