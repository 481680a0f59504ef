"""Writing AstroDrizzle products: the DRZ/DRC file, intermediates, and the inputs' DQ updates.

Every file is written under a temporary name in its destination folder and renamed when
complete, so a failure never leaves a partial file behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError

__all__ = [
    "product_path",
    "build_product",
    "write_atomic",
    "update_inputs",
    "image_hdulist",
    "crclean_hdulist",
]

log = logging.getLogger(__name__)

_DRIZ_COMMENTS = {
    "VER": "Drizzle, task version",
    "GEOM": "Drizzle, source of geometric information",
    "DATA": "Drizzle, input data image",
    "DEXP": "Drizzle, input image exposure time (s)",
    "OUDA": "Drizzle, output data image",
    "OUWE": "Drizzle, output weighting image",
    "OUCO": "Drizzle, output context image",
    "MASK": "Drizzle, input weighting image",
    "WTSC": "Drizzle, weighting factor for input image",
    "KERN": "Drizzle, form of weight distribution kernel",
    "PIXF": "Drizzle, linear size of drop",
    "COEF": "Drizzle, source of coefficients",
    "OUUN": "Drizzle, units of output image - counts or cps",
    "FVAL": "Drizzle, fill value for zero weight output pix",
    "WKEY": "Input image WCS Version used",
    "SCAL": "Drizzle, pixel size (arcsec) of output image",
    "ISCL": "Drizzle, default IDCTAB pixel size(arcsec)",
}
# SCI-header keywords carried from the first input chip into the product.
_SCI_CARRY = ("PHOTMODE", "PHOTFLAM", "PHOTFNU", "PHOTZPT", "PHOTPLAM", "PHOTBW", "WCSNAME")
# Primary-header keywords of the inputs that do not describe the product.
_PRIMARY_DROP = ("NEXTEND", "FILENAME", "FILETYPE", "MDRIZSKY")


def product_path(output, exposures) -> Path:
    """``<output>_drc.fits`` when any input is an FLC file, else ``<output>_drz.fits``."""
    text = str(output)
    for ending in (".fits", "_drz", "_drc"):
        if text.lower().endswith(ending):
            text = text[: -len(ending)]
    suffix = "drc" if any(e.suffix == "flc" for e in exposures) else "drz"
    return Path(f"{text}_{suffix}.fits")


def _wcs_cards(frame) -> list[tuple]:
    w = frame.wcs.wcs
    return [
        ("WCSAXES", 2, "Number of coordinate axes"),
        ("CTYPE1", w.ctype[0], "the coordinate type for the first axis"),
        ("CTYPE2", w.ctype[1], "the coordinate type for the second axis"),
        ("CRPIX1", float(w.crpix[0]), "x-coordinate of reference pixel"),
        ("CRPIX2", float(w.crpix[1]), "y-coordinate of reference pixel"),
        ("CRVAL1", float(w.crval[0]), "first axis value at reference pixel"),
        ("CRVAL2", float(w.crval[1]), "second axis value at reference pixel"),
        ("CD1_1", float(w.cd[0, 0]), "partial of first axis coordinate w.r.t. x"),
        ("CD1_2", float(w.cd[0, 1]), "partial of first axis coordinate w.r.t. y"),
        ("CD2_1", float(w.cd[1, 0]), "partial of second axis coordinate w.r.t. x"),
        ("CD2_2", float(w.cd[1, 1]), "partial of second axis coordinate w.r.t. y"),
        ("ORIENTAT", float(getattr(frame.wcs, "orientat", 0.0)), "position angle of image y axis (deg. e of n)"),
        ("VAFACTOR", 1.0, "velocity aberration plate scale factor"),
    ]


def _driz_cards(index: int, values: dict) -> list[tuple]:
    prefix = f"D{index:03d}"
    return [(prefix + key, "" if value is None else value, _DRIZ_COMMENTS[key]) for key, value in values.items()]


def _chip_records(exposures, frame, params, product: Path, version: str) -> list[dict]:
    from ._stages import wt_scl_value

    records = []
    for exposure in exposures:
        for chip in exposure.chips:
            pix_ratio = frame.pscale / chip.wcslin_pscale
            wtscl = 1.0 / pix_ratio ** 4 if params.final_wht_type == "ERR" else wt_scl_value(params.final_wt_scl)
            records.append({
                "VER": f"hapgpu {version}",
                "GEOM": "wcs",
                "DATA": f"{exposure.name}[sci,{chip.extver}]",
                "DEXP": exposure.exptime,
                "OUDA": product.name,
                "OUWE": product.name.replace(".fits", "_wht.fits"),
                "OUCO": product.name.replace(".fits", "_ctx.fits") if params.context else "",
                "MASK": f"{exposure.rootname}_sci{chip.extver}_final_mask.fits",
                "WTSC": int(wtscl) if float(wtscl).is_integer() else wtscl,
                "KERN": params.final_kernel,
                "PIXF": params.final_pixfrac,
                "COEF": "SIP",
                "OUUN": params.final_units,
                "FVAL": "INDEF" if params.final_fillval is None else params.final_fillval,
                "WKEY": "",
                "SCAL": frame.pscale,
                "ISCL": chip.idcscale,
            })
    return records


def _output_bunit(exposures, units: str) -> str:
    bunit = exposures[0].chips[0].bunit
    slash = bunit.find("/")
    if units == "cps":
        return bunit if slash > 0 else bunit + "/S"
    return bunit[:slash] if slash > 0 else bunit


def build_product(sci, wht, ctx, frame, exposures, params, product: Path, version: str):
    """The DRZ/DRC HDU list: PRIMARY, SCI, WHT, CTX with AstroDrizzle's keywords.

    Parameters
    ----------
    sci, wht : numpy.ndarray
        Final science (float32) and weight (float32) images.
    ctx : numpy.ndarray or None
        Context planes, int32 ``(planes, ny, nx)`` (written 2-D for one plane).
    frame : OutputFrame
        Output frame.
    exposures : list of Exposure
        Inputs, in drizzle order.
    params : AstroDrizzleParameters
        Parameters used.
    product : pathlib.Path
        Final file name (recorded in the header).
    version : str
        hapgpu version.

    Returns
    -------
    astropy.io.fits.HDUList
    """
    from astropy.io import fits

    primary = fits.PrimaryHDU()
    for card in exposures[0].primary_header.cards:
        if card.keyword in ("SIMPLE", "BITPIX", "NAXIS", "EXTEND", "") or card.keyword in _PRIMARY_DROP:
            continue
        if card.keyword in ("COMMENT", "HISTORY"):
            continue
        primary.header.append(card, end=True)
    texptime = sum({e.path: e.exptime for e in exposures}.values())
    header = primary.header
    header["EXTEND"] = True
    header["DATE"] = (time.strftime("%Y-%m-%d"), "date this file was written (yyyy-mm-dd)")
    header["NEXTEND"] = (3, "Number of standard extensions")
    header["FILENAME"] = (product.name, "name of file")
    header["ROOTNAME"] = (product.name.rsplit("_", 1)[0], "rootname of the observation set")
    header["EXPTIME"] = (texptime, "exposure duration (seconds)--calculated")
    header["TEXPTIME"] = (texptime, "total exposure time (seconds)")
    header["EXPSTART"] = (min(e.expstart for e in exposures), "exposure start time (Modified Julian Date)")
    header["EXPEND"] = (max(e.expend for e in exposures), "exposure end time (Modified Julian Date)")
    header["ASN_MTYP"] = "PROD-DTH"
    if "DRIZCORR" in header:
        header["DRIZCORR"] = "COMPLETE"
    records = _chip_records(exposures, frame, params, product, version)
    header["NDRIZIM"] = (len(records), "Drizzle, No. images drizzled onto output")
    for index, record in enumerate(records, start=1):
        for key, value, comment in _driz_cards(index, record):
            header[key] = (value, comment)
    header.add_history(f"AstroDrizzle processing performed using: hapgpu {version}")

    sci_header = fits.Header()
    first = exposures[0].chips[0].header
    for key in _SCI_CARRY:
        if key in first:
            sci_header[key] = (first[key], first.comments[key])
    sci_header["BUNIT"] = (_output_bunit(exposures, params.final_units), "Units of science product")
    wcs_header = fits.Header()
    for key, value, comment in _wcs_cards(frame):
        wcs_header[key] = (value, comment)
    sci_header.update(wcs_header)
    hdus = [primary, fits.ImageHDU(np.asarray(sci, dtype=np.float32), sci_header, name="SCI"),
            fits.ImageHDU(np.asarray(wht, dtype=np.float32), wcs_header.copy(), name="WHT")]
    ctx_data = None
    if ctx is not None and params.context:
        ctx_data = np.asarray(ctx[0] if ctx.shape[0] == 1 else ctx, dtype=np.int32)
    hdus.append(fits.ImageHDU(ctx_data, wcs_header.copy(), name="CTX"))
    for hdu in hdus[1:]:
        hdu.header["EXTVER"] = 1
    return fits.HDUList(hdus)


def image_hdulist(data, frame=None, header_cards=()):
    """A simple FITS file (data in the primary HDU) with the frame's WCS, for intermediates."""
    from astropy.io import fits

    hdu = fits.PrimaryHDU(np.asarray(data))
    if frame is not None:
        for key, value, comment in _wcs_cards(frame):
            hdu.header[key] = (value, comment)
    for key, value in header_cards:
        hdu.header[key] = value
    return fits.HDUList([hdu])


def write_atomic(hdul, path: Path) -> Path:
    """Write ``hdul`` to ``path`` through a temporary file renamed on success."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.part")
    try:
        hdul.writeto(tmp, overwrite=True)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def crclean_hdulist(exposure, cleaned: list, crdq: list):
    """The ``_crclean`` file: the input with cosmic-ray pixels replaced by the blotted median."""
    from astropy.io import fits

    with fits.open(exposure.path, memmap=False) as hdul:
        out = fits.HDUList([hdu.copy() for hdu in hdul])
    for chip, data, dq in zip(exposure.chips, cleaned, crdq):
        out["SCI", chip.extver].data = np.asarray(data, dtype=np.float32)
        out["DQ", chip.extver].data = np.asarray(dq).astype(np.int16)
    return out


def _write_dq_and_sky(path: Path, exposure, dq_arrays: list, skies: list) -> None:
    from astropy.io import fits

    with fits.open(path, mode="update", memmap=False) as hdul:
        for chip, dq, sky in zip(exposure.chips, dq_arrays, skies):
            hdul["DQ", chip.extver].data = np.asarray(dq).astype(np.uint16).view(np.int16)
            if sky is not None:
                hdul["SCI", chip.extver].header["MDRIZSKY"] = (sky, "Sky value computed by AstroDrizzle")


def update_inputs(exposure, dq_arrays: list, skies: list, target: Path | None = None) -> Path:
    """Write the final DQ arrays (and MDRIZSKY) into the input file, or into a copy ``target``.

    The input is updated in place, as AstroDrizzle does; a copy is written under a temporary
    name and renamed when complete.
    """
    try:
        if target is None:
            _write_dq_and_sky(exposure.path, exposure, dq_arrays, skies)
            return exposure.path
        target = Path(target)
        tmp = target.with_name(f".{target.name}.part")
        try:
            shutil.copyfile(exposure.path, tmp)
            _write_dq_and_sky(tmp, exposure, dq_arrays, skies)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                tmp.unlink()
        return target
    except OSError as exc:
        raise InvalidInputError(f"{exposure.path}: cannot write the updated DQ: {exc}") from exc
