"""A minimal mosaic: drizzle every science chip of some FLT/FLC files onto one frame.

This is the resampling core's end-to-end demonstration (no sky subtraction and no cosmic-ray
rejection; the full AstroDrizzle chain builds on the same pieces). The output frame is the one
AstroDrizzle builds by default: stwcs' ``output_wcs(chips, undistort=True)`` (reference chip
orientation, detector pixel scale, covering every chip).
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..backend import resolve_backend
from ..errors import InvalidInputError
from ._drizzle import Drizzle
from ._pixmap import PixelMap

__all__ = ["ChipInput", "read_chips", "mosaic_frame", "drizzle_mosaic"]

log = logging.getLogger(__name__)


@dataclass
class ChipInput:
    """One science chip: data, good-pixel weight, WCS and the facts drizzle needs."""

    path: Path
    extver: int
    data: np.ndarray
    weight: np.ndarray
    wcs: object
    exptime: float
    in_units: str


def read_chips(path, good_bits: int = 0) -> list[ChipInput]:
    """Read every SCI chip of an FLT/FLC file with its DQ-based weight (``exptime * good``).

    Raises
    ------
    InvalidInputError
        If the file cannot be read, has no SCI extension, or has a non-positive EXPTIME.
    """
    from astropy.io import fits
    from stwcs.wcsutil import HSTWCS

    path = Path(path)
    try:
        hdul = fits.open(path, memmap=False)
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path}: cannot read FITS file: {exc}") from exc
    with hdul:
        exptime = float(hdul[0].header.get("EXPTIME", 0.0))
        if not exptime > 0:
            raise InvalidInputError(f"{path}: EXPTIME must be positive, got {exptime}")
        extvers = [h.ver for h in hdul if h.name == "SCI"]
        if not extvers:
            raise InvalidInputError(f"{path}: no SCI extension")
        chips = []
        for ver in extvers:
            sci = hdul["SCI", ver]
            if sci.data is None or sci.data.ndim != 2:
                raise InvalidInputError(f"{path}[SCI,{ver}]: no 2-D image data")
            data = np.asarray(sci.data, dtype=np.float32)
            good = np.ones(data.shape, bool)
            if ("DQ", ver) in hdul:
                dq = np.asarray(hdul["DQ", ver].data).astype(np.uint16)
                good = (dq & ~np.uint16(good_bits)) == 0
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                wcs = HSTWCS(hdul, ext=("SCI", ver))
            bunit = str(sci.header.get("BUNIT", "ELECTRONS")).upper()
            chips.append(ChipInput(path, ver, data, (good * np.float32(exptime)).astype(np.float32), wcs,
                                   exptime, "cps" if "/S" in bunit else "counts"))
    return chips


def mosaic_frame(chips: list[ChipInput]):
    """AstroDrizzle's default output frame for ``chips``: ``(wcs, (ny, nx))``."""
    from stwcs.distortion import utils as dist_utils

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = dist_utils.output_wcs([c.wcs for c in chips], undistort=True)
    nx, ny = (int(v) for v in out.pixel_shape)
    return out, (ny, nx)


def _pscale(wcs) -> float:
    cd = wcs.wcs.cd if wcs.wcs.has_cd() else np.diag(wcs.wcs.cdelt)
    return float(np.hypot(cd[0, 0], cd[1, 0]) * 3600.0)


def drizzle_mosaic(files, output, *, kernel: str = "square", pixfrac: float = 1.0, good_bits: int = 0,
                   backend=None) -> Path:
    """Drizzle the SCI chips of ``files`` into ``<output>_drz.fits`` (SCI, WHT, CTX).

    The product is written to a temporary name and renamed on success, so a failure never
    leaves a partial file.
    """
    from astropy.io import fits

    backend = resolve_backend(backend)
    t0 = time.perf_counter()
    chips = [chip for f in files for chip in read_chips(f, good_bits)]
    out_wcs, out_shape = mosaic_frame(chips)
    log.info("output frame %dx%d at %.4f\"/px from %d chips", out_shape[1], out_shape[0],
             _pscale(out_wcs), len(chips))
    drz = Drizzle(out_shape, kernel=kernel, pixfrac=pixfrac, fillval=None, backend=backend)
    for k, chip in enumerate(chips, start=1):
        pmap = PixelMap.from_wcs(chip.wcs, out_wcs, chip.data.shape, stepsize=10)
        scale = _pscale(out_wcs) / float(chip.wcs.idcscale or _pscale(chip.wcs))
        drz.add_image(chip.data, pmap, weight=chip.weight, in_units=chip.in_units, exptime=chip.exptime,
                      scale=scale, context_id=k)
        log.info("drizzled %s[SCI,%d]", chip.path.name, chip.extver)
    sci, wht, ctx = (drz.sci, drz.wht, drz.ctx)
    header = out_wcs.to_header()
    primary = fits.PrimaryHDU()
    primary.header["NDRIZIM"] = (len(chips), "number of drizzled chips")
    primary.header["EXPTIME"] = (sum({c.path: c.exptime for c in chips}.values()), "total exposure time")
    primary.header["D001KERN"] = (kernel, "drizzle kernel")
    primary.header["D001PIXF"] = (pixfrac, "drizzle pixfrac")
    hdus = fits.HDUList([primary, fits.ImageHDU(sci, header, name="SCI"), fits.ImageHDU(wht, header, name="WHT"),
                         fits.ImageHDU(ctx[0] if ctx.shape[0] == 1 else ctx, header, name="CTX")])
    final = Path(f"{output}_drz.fits")
    tmp = final.with_name(final.name + ".part")
    hdus.writeto(tmp, overwrite=True)
    os.replace(tmp, final)
    log.info("wrote %s in %.2f s", final, time.perf_counter() - t0)
    return final
