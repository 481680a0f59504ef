"""Writing AstroDrizzle products: the DRZ/DRC file, intermediates, and the inputs' DQ updates.

Every file is written under a temporary name in its destination folder (:class:`StagedOutputs`)
and all of them are renamed together once every one is complete, so a failure never leaves a
partial file, nor a product without its companions, behind.
"""

from __future__ import annotations

import copy
import errno
import logging
import os
import shutil
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError, OutputWriteError
from ._hdrtab import apply_primary_rules, build_hdrtab

__all__ = [
    "product_path",
    "build_product",
    "fit_comments",
    "hdrtab_hdu",
    "write_atomic",
    "write_product_in_bands",
    "StagedOutputs",
    "update_inputs",
    "image_hdulist",
    "single_hdulist",
    "median_hdulist",
    "blot_hdulist",
    "crmask_hdulist",
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


def fit_comments(header) -> None:
    """Shorten, in place, every comment that would not fit on its 80-character card.

    A card holds ``KEYWORD = value / comment`` in 80 characters, the value field at least 20
    wide (FITS standard §4.2); products carrying long names (``Dnnn*`` cards of MVM layers)
    would leave astropy to cut the comment and warn. Here the comment is cut to the room left,
    or dropped when there is none. Long string values continued on ``CONTINUE`` cards keep
    their comment (astropy places it on the last card).
    """
    from astropy.io import fits

    for index, card in enumerate(header.cards):
        comment = card.comment
        if not comment or card.keyword in ("COMMENT", "HISTORY", "", "CONTINUE"):
            continue
        bare = str(fits.Card(card.keyword, card.value))
        if len(bare) > 80:  # a long string on CONTINUE cards
            continue
        room = 80 - max(len(bare.rstrip()), 30) - 3
        if len(comment) > room:
            header.comments[index] = comment[:room].rstrip() if room > 0 else ""


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


def _chip_records(exposures, frame, params, product: Path, version: str, *, single: bool = False,
                  weight_name: str | None = None) -> list[dict]:
    """One ``Dnnn*`` drizzle-history record per chip drizzled onto ``product``.

    ``single`` selects the separate-drizzle settings (``driz_sep_*``, count-rate output, no
    context image), as AstroDrizzle records them in its ``_single_sci`` files.
    """
    from ._stages import wt_scl_value

    if single:
        kernel, pixfrac, fillval = params.driz_sep_kernel, params.driz_sep_pixfrac, params.driz_sep_fillval
        wt_scl, units, mask = params.driz_sep_wt_scl, "cps", "single_mask"
    else:
        kernel, pixfrac, fillval = params.final_kernel, params.final_pixfrac, params.final_fillval
        wt_scl, units, mask = params.final_wt_scl, params.final_units, "final_mask"
    records = []
    for exposure in exposures:
        for chip in exposure.chips:
            pix_ratio = frame.pscale / chip.wcslin_pscale
            err_weighted = params.final_wht_type == "ERR" and not single
            wtscl = 1.0 / pix_ratio ** 4 if err_weighted else wt_scl_value(wt_scl)
            records.append({
                "VER": f"hapgpu {version}",
                "GEOM": "wcs",
                "DATA": f"{exposure.name}[sci,{chip.extver}]",
                "DEXP": exposure.exptime,
                "OUDA": product.name,
                "OUWE": weight_name or product.name.replace(".fits", "_wht.fits"),
                "OUCO": product.name.replace(".fits", "_ctx.fits") if params.context and not single else "",
                "MASK": f"{exposure.rootname}_sci{chip.extver}_{mask}.fits",
                "WTSC": int(wtscl) if float(wtscl).is_integer() else wtscl,
                "KERN": kernel,
                "PIXF": pixfrac,
                "COEF": "SIP",
                "OUUN": units,
                "FVAL": "INDEF" if fillval is None else fillval,
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


def _primary_cards(header) -> list:
    """Copies of the cards of an input primary header that also describe a product made from it.

    Copies, so that setting a product keyword never changes the input's header (HDRTAB reads it).
    """
    keep = []
    for card in header.cards:
        if card.keyword in ("SIMPLE", "BITPIX", "NAXIS", "EXTEND", "") or card.keyword in _PRIMARY_DROP:
            continue
        if card.keyword in ("COMMENT", "HISTORY") or card.keyword.startswith("NAXIS"):
            continue
        keep.append(copy.copy(card))
    return keep


def _exposure_cards(exposures) -> list[tuple]:
    """EXPTIME, TEXPTIME, EXPSTART, EXPEND of a set of exposures (summed and bracketing)."""
    texptime = sum({e.path: e.exptime for e in exposures}.values())
    return [
        ("EXPTIME", texptime, "exposure duration (seconds)--calculated"),
        ("TEXPTIME", texptime, "total exposure time (seconds)"),
        ("EXPSTART", min(e.expstart for e in exposures), "exposure start time (Modified Julian Date)"),
        ("EXPEND", max(e.expend for e in exposures), "exposure end time (Modified Julian Date)"),
    ]


def _final_mdrizsky(chip, params):
    """MDRIZSKY of a chip's SCI header as AstroDrizzle leaves it in the input before writing.

    The sky step writes the subtracted sky (computed, from ``skyfile`` or from the ``skyuser``
    keyword); without sky subtraction and ``skyuser`` it keeps the input's value, or adds 0
    (drizzlepac ``sky.subtractSky``). Returned as the file holds it: a float rounded to the
    card's text (at most 20 characters).
    """
    from astropy.io import fits

    if params.skysub or params.skyuser:
        value = chip.subtracted_sky
    else:
        value = chip.header.get("MDRIZSKY", 0.0)
    # the value as the input file then holds it: written as FITS card text, read back
    return fits.Card.fromstring(str(fits.Card("MDRIZSKY", value))).value


def hdrtab_hdu(exposures, params):
    """The product's HDRTAB: one row per drizzled chip, from the inputs' PRIMARY and SCI headers.

    The SCI headers carry MDRIZSKY as the sky step leaves them (:func:`_final_mdrizsky`); the
    columns are those of the ``header_rules`` parameter's rule set.
    """
    rows, sources = [], []
    for exposure in exposures:
        for chip in exposure.chips:
            sci = chip.header.copy()
            sci["MDRIZSKY"] = (_final_mdrizsky(chip, params), "Sky value computed by AstroDrizzle")
            rows.append((exposure.primary_header, sci))
            sources.append(f"{exposure.name}[sci,{chip.extver}]")
    return build_hdrtab(rows, sources=sources, rules=params.header_rules)


def build_product(sci, wht, ctx, frame, exposures, params, product: Path, version: str):
    """The DRZ/DRC HDU list: PRIMARY, SCI, WHT, CTX, HDRTAB with AstroDrizzle's keywords.

    The primary header starts from the first input's, under the ``header_rules`` parameter's
    rule set (:func:`hapgpu.astrodrizzle._hdrtab.apply_primary_rules`).

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
    template = apply_primary_rules(exposures[0].primary_header,
                                   [e.primary_header.get("INSTRUME", "") for e in exposures],
                                   params.header_rules)
    for card in _primary_cards(template):
        primary.header.append(card, end=True)
    header = primary.header
    header["EXTEND"] = True
    header["DATE"] = (time.strftime("%Y-%m-%d"), "date this file was written (yyyy-mm-dd)")
    header["NEXTEND"] = (3, "Number of standard extensions")
    header["FILENAME"] = (product.name, "name of file")
    header["ROOTNAME"] = (product.name.rsplit("_", 1)[0], "rootname of the observation set")
    for key, value, comment in _exposure_cards(exposures):
        header[key] = (value, comment)
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
    hdus.append(hdrtab_hdu(exposures, params))
    header["NEXTEND"] = (len(hdus) - 1, "Number of standard extensions")
    for hdu in hdus:
        fit_comments(hdu.header)
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


# ----------------------------------------------------------------------------- intermediates
def _intermediate_hdulist(data, cards: list, file_type: str, name: str):
    """A simple FITS file (data in the primary HDU) with ``cards`` (cards or tuples)."""
    from astropy.io import fits

    hdu = fits.PrimaryHDU(np.asarray(data))
    header = hdu.header
    for card in cards:
        if isinstance(card, tuple):
            header[card[0]] = card[1] if len(card) == 2 or card[2] is None else (card[1], card[2])
        elif card.keyword not in header:
            header.append(card, end=True)
    header["FILENAME"] = (name, "name of file")
    header["FILETYPE"] = (file_type, "type of data in array")
    fit_comments(header)
    return fits.HDUList([hdu])


def _sci_carry_cards(chip) -> list[tuple]:
    return [(key, chip.header[key], chip.header.comments[key]) for key in _SCI_CARRY if key in chip.header]


def single_hdulist(sci, wht, exposure, frame, params, sci_name: str, wht_name: str, version: str):
    """The ``_single_sci`` and ``_single_wht`` files of one exposure (separate drizzle).

    Headers as AstroDrizzle writes these simple FITS files: the input's primary header,
    ROOTNAME, the exposure's EXPTIME/TEXPTIME/EXPSTART/EXPEND, NCOMBINE 1, BUNIT (count rate of
    the input's units; SCI only), the ``Dnnn*`` drizzle-history keywords of each chip with the
    ``driz_sep_*`` settings, and the frame's WCS.

    Returns
    -------
    (astropy.io.fits.HDUList, astropy.io.fits.HDUList)
        SCI and WHT files.
    """
    cards = list(_primary_cards(exposure.primary_header))
    cards.append(("ROOTNAME", exposure.rootname, "rootname of the observation set"))
    cards += _exposure_cards([exposure])
    cards.append(("NCOMBINE", 1, "number of image sets combined"))
    records = _chip_records([exposure], frame, params, Path(sci_name), version, single=True,
                            weight_name=wht_name)
    cards.append(("NDRIZIM", len(records), "Drizzle, No. images drizzled onto output"))
    for index, record in enumerate(records, start=1):
        cards += _driz_cards(index, record)
    cards += _wcs_cards(frame)
    sci_cards = cards + [("BUNIT", _output_bunit([exposure], "cps"), "Units of science product")]
    sci_cards += _sci_carry_cards(exposure.chips[0])
    return (_intermediate_hdulist(np.asarray(sci, np.float32), sci_cards, "SCI", sci_name),
            _intermediate_hdulist(np.asarray(wht, np.float32), cards, "WHT", wht_name))


def median_hdulist(median, exposures, frame, params, name: str):
    """The ``_med`` file: the median image of the single-drizzle stack.

    Header: the first input's primary header, the stack's EXPTIME/TEXPTIME (summed),
    EXPSTART/EXPEND (bracketing), NCOMBINE (images in the stack), the combination
    (``combine_type``), BUNIT (count rate) and the frame's WCS. AstroDrizzle copies the first
    ``_single_sci`` header instead, which labels the median with one exposure's time.
    """
    cards = list(_primary_cards(exposures[0].primary_header))
    cards += _exposure_cards(exposures)
    cards.append(("NCOMBINE", len(exposures), "number of image sets combined"))
    cards.append(("COMBTYPE", params.combine_type, "median step: combination of the stack"))
    cards.append(("BUNIT", _output_bunit(exposures, "cps"), "Units of science product"))
    cards += _sci_carry_cards(exposures[0].chips[0])
    cards += _wcs_cards(frame)
    return _intermediate_hdulist(np.asarray(median, np.float32), cards, "SCI", name)


def _chip_wcs_cards(chip) -> list[tuple]:
    """The chip's own WCS (CD matrix and SIP; lookup-table distortions cannot be written here)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        header = chip.wcs.to_header(relax=True)
    cards = []
    for card in header.cards:
        if card.keyword.startswith(("PC1_", "PC2_", "CDELT")):
            continue
        cards.append((card.keyword, card.value, card.comment))
    cd = chip.wcs.wcs.cd
    cards += [(f"CD{i + 1}_{j + 1}", float(cd[i, j]), None) for i in range(2) for j in range(2)]
    return cards


def blot_hdulist(blotted, exposure, chip, name: str):
    """A ``_blt`` file: the median blotted back onto one chip (native units, sky added).

    Header: the input's primary header, the exposure's EXPTIME/EXPSTART/EXPEND, CCDCHIP (the
    chip's SCI EXTVER), BUNIT (the chip's native units), MDRIZSKY (the sky added back) and the
    chip's WCS, as AstroDrizzle's blot product carries the chip's header and WCS.
    """
    cards = list(_primary_cards(exposure.primary_header))
    cards += _exposure_cards([exposure])
    cards.append(("CCDCHIP", chip.extver, "SCI extension version of the input chip"))
    cards.append(("BUNIT", chip.bunit, "brightness units"))
    if chip.computed_sky is not None:
        cards.append(("MDRIZSKY", chip.computed_sky, "Sky value computed by AstroDrizzle"))
    cards += _chip_wcs_cards(chip)
    return _intermediate_hdulist(np.asarray(blotted, np.float32), cards, "SCI", name)


def crmask_hdulist(mask, exposure, chip, name: str):
    """A ``_crmask`` file: 1 where driz_cr kept the pixel, 0 at a cosmic ray (uint8).

    AstroDrizzle writes the bare array; the header here also says which input chip it
    belongs to (ROOTNAME, CCDCHIP), its EXPTIME and the chip's WCS.
    """
    cards = [("ROOTNAME", exposure.rootname, "rootname of the observation set"),
             ("CCDCHIP", chip.extver, "SCI extension version of the input chip"),
             _exposure_cards([exposure])[0]]
    cards += _chip_wcs_cards(chip)
    return _intermediate_hdulist(np.asarray(mask, np.uint8), cards, "CRMASK", name)


# ----------------------------------------------------------------------------- writing
def _temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.part")


class StagedOutputs:
    """Files written under temporary names in their destination folders, renamed together.

    ``write`` (or ``reserve`` and a write of one's own) puts each file at a temporary name
    beside its final one; :meth:`commit` renames them all once everything is written;
    :meth:`discard` removes whatever was written. Used as a context manager it discards on
    any exception, so a failed run leaves no file named like a product.
    """

    def __init__(self):
        self._pending: list[tuple[Path, Path]] = []

    def reserve(self, path) -> Path:
        """Record ``path`` as an output; return the temporary name to write it under."""
        path = Path(path)
        tmp = _temporary_name(path)
        self._pending.append((tmp, path))
        return tmp

    def write(self, hdul, path, *, verify: bool = True) -> Path:
        """Write ``hdul`` under the temporary name of ``path``; return ``path``.

        ``verify=False`` skips astropy's whole-list verification before the write (for HDU
        lists built here, such as :func:`build_product`'s: it parses and checks every card
        again, and on a valid list changes nothing, so the bytes are the same); the cards are
        still checked as astropy writes them.

        Raises
        ------
        OutputWriteError
            The file cannot be written (the message names ``path`` and the reason).
        """
        tmp = self.reserve(path)
        try:
            hdul.writeto(tmp, overwrite=True, output_verify="exception" if verify else "ignore")
        except OSError as exc:
            raise OutputWriteError(f"{path}: cannot write: {exc}") from exc
        return Path(path)

    def commit(self) -> list[Path]:
        """Rename every temporary file to its final name; return the final names."""
        done = []
        for tmp, path in self._pending:
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise OutputWriteError(f"{path}: cannot write: {exc}") from exc
            done.append(path)
        self._pending = []
        return done

    def discard(self) -> None:
        """Remove every temporary file written so far."""
        for tmp, _ in self._pending:
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass
        self._pending = []

    def __enter__(self) -> "StagedOutputs":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.discard()


def write_atomic(hdul, path: Path) -> Path:
    """Write ``hdul`` to ``path`` through a temporary file renamed on success."""
    with StagedOutputs() as stage:
        stage.write(hdul, path)
        stage.commit()
    return Path(path)


_BLOCK = 2880  # FITS block, bytes (FITS Standard 4.0 §3.1)


def _image_layout(hdu, shape) -> tuple[bytes, int]:
    """Header bytes of image ``hdu`` as written for data of ``shape``, and its data bytes."""
    header = hdu.header.copy()
    if hdu.data is None:
        return header.tostring().encode("ascii"), 0
    for axis, size in enumerate(reversed(shape), start=1):
        header[f"NAXIS{axis}"] = size
    return header.tostring().encode("ascii"), int(np.prod(shape)) * hdu.data.dtype.itemsize


def _product_layout(hdul, shape: tuple[int, int], n_planes: int):
    """Byte layout of a DRZ/DRC product: ``(pieces, offsets, total)``.

    ``pieces``: ``[(start, bytes)]`` of the primary header, the SCI, WHT and CTX headers and
    the HDRTAB HDU (header and table); ``offsets``: ``{name: (start, n_bytes)}`` of each image's
    data (``start`` None without data); ``total``: the file's size.
    """
    import io

    from astropy.io import fits

    ny, nx = shape
    shapes = {"SCI": (ny, nx), "WHT": (ny, nx), "CTX": (n_planes, ny, nx) if n_planes > 1 else (ny, nx)}
    head = hdul[0].header.tostring().encode("ascii")
    pieces, offsets = [(0, head)], {}
    position = len(head)
    for name in ("SCI", "WHT", "CTX"):
        head, n_bytes = _image_layout(hdul[name], shapes[name])
        pieces.append((position, head))
        position += len(head)
        offsets[name] = (position if n_bytes else None, n_bytes)
        position += n_bytes + (-n_bytes % _BLOCK)
    table = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdul["HDRTAB"]]).writeto(table, output_verify="ignore")
    tail = table.getvalue()[len(fits.PrimaryHDU().header.tostring()):]
    pieces.append((position, tail))
    return pieces, offsets, position + len(tail)


#: Bytes moved at a time when a product's data must shift (:func:`_move_data`); also the
#: granularity at which the holes of a sparse product are skipped.
_MOVE_CHUNK = 4 * 2**20


def _move_data(fd: int, moves) -> None:
    """Move byte ranges ``[(old, new, size)]`` of an open file, none overwritten before it moved.

    Ranges moving forward go first, last range first, each copied from its end; then those
    moving backward, first range first, each from its start (the ranges keep their order in
    the file, so neither pass overwrites data still to be moved). A chunk that lies in a hole
    of a sparse file (all zeros, :func:`_is_hole`) is written only where its destination
    holds data, so the unwritten parts of a large frame stay holes and cost no copy.
    """
    def move(src: int, dst: int, n: int) -> None:
        if _is_hole(fd, src, n):
            if not _is_hole(fd, dst, n):
                os.pwrite(fd, bytes(n), dst)
            return
        os.pwrite(fd, os.pread(fd, n, src), dst)

    forward = [m for m in moves if m[1] > m[0]]
    backward = [m for m in moves if m[1] < m[0]]
    for old, new, size in sorted(forward, reverse=True):
        end = size
        while end > 0:
            start = max(0, end - _MOVE_CHUNK)
            move(old + start, new + start, end - start)
            end = start
    for old, new, size in sorted(backward):
        start = 0
        while start < size:
            n = min(_MOVE_CHUNK, size - start)
            move(old + start, new + start, n)
            start += n


def _is_hole(fd: int, start: int, size: int) -> bool:
    """Whether bytes ``start:start + size`` of an open file lie in a hole (read as zeros):
    ``lseek(SEEK_DATA)`` finds no data before their end. False wherever the system cannot
    tell (no ``SEEK_DATA``, or a file system that reports everything as data)."""
    seek_data = getattr(os, "SEEK_DATA", None)
    if seek_data is None:
        return False
    try:
        return os.lseek(fd, start, seek_data) >= start + size
    except OSError as exc:  # ENXIO: no data at or after ``start``
        return exc.errno == errno.ENXIO


def _write_rows(handle, start: int, rows: np.ndarray, dtype: str) -> None:
    """Write the runs of ``rows`` (2-D) holding a non-zero value, as ``dtype``, at byte
    ``start`` of the row block in an open file (all-zero rows are skipped: they stay zeros,
    holes of a sparse file)."""
    busy = rows.any(axis=1)
    if not busy.any():
        return
    edges = np.flatnonzero(np.diff(np.concatenate([[False], busy, [False]]).astype(np.int8)))
    row_bytes = rows.shape[1] * np.dtype(dtype).itemsize
    for a, b in zip(edges[::2], edges[1::2]):
        handle.seek(start + int(a) * row_bytes)
        handle.write(np.ascontiguousarray(rows[a:b], dtype=dtype))  # a buffer: no bytes copy


def write_product_in_bands(hdul, path, shape: tuple[int, int], n_planes: int, bands, finish=None) -> Path:
    """Write a DRZ/DRC product whose SCI, WHT and CTX arrive in row bands, never whole.

    ``hdul`` is the product as :func:`build_product` makes it from placeholder arrays of the
    right dtypes (SCI, WHT ``(1, 1)``, CTX ``(1, 1)`` or ``(n_planes, 1, 1)``, or no CTX data).
    Each header is written as astropy writes it for the full-size array, and each band's rows
    go straight to their place in the file, so the file is the one ``hdul.writeto`` gives with
    the full arrays (FITS Standard 4.0 §3-§4: 2880-byte blocks, big-endian data padded with
    zeros).

    Parameters
    ----------
    hdul : astropy.io.fits.HDUList
        PRIMARY, SCI, WHT, CTX, HDRTAB: the final headers, or (with ``finish``) provisional ones.
    path : path-like
        File to write (normally the temporary name of :meth:`StagedOutputs.reserve`).
    shape : (int, int)
        ``(ny, nx)`` of the frame.
    n_planes : int
        Context planes written (1: a 2-D CTX).
    bands : iterable of (int, int, numpy.ndarray, numpy.ndarray, numpy.ndarray or None)
        ``(row0, row1, sci, wht, ctx)``: float32 ``(row1 - row0, nx)`` SCI and WHT and int32
        ``(planes, row1 - row0, nx)`` CTX rows, covering the frame.
    finish : callable, optional
        ``finish(read_rows) -> HDUList``, called once every band is written: the product with
        its final headers (placeholder arrays as ``hdul``), where ``read_rows(name, row0,
        row1)`` reads rows of the ``SCI`` or ``WHT`` image back from the file (float32,
        native order). The headers are rewritten in place; when a header's size in 2880-byte
        blocks differs from the provisional one, the data after it are moved (the file is
        then the same as if the final headers had been written first).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    OutputWriteError
        The file cannot be written.
    """
    ny, nx = shape
    path = Path(path)
    pieces, offsets, total = _product_layout(hdul, shape, n_planes)
    try:
        with open(path, "w+b") as handle:
            for start, data in pieces:
                handle.seek(start)
                handle.write(data)
            handle.truncate(total)
            plane_bytes = ny * nx * 4
            # the file starts as zeros (a sparse file where the system allows): rows all 0
            # are left as they are, uncovered parts of a big frame cost no write
            for row0, row1, sci, wht, ctx in bands:
                for name, rows in (("SCI", sci), ("WHT", wht)):
                    _write_rows(handle, offsets[name][0] + row0 * nx * 4, rows, ">f4")
                if offsets["CTX"][0] is not None:
                    for plane in range(n_planes):
                        _write_rows(handle, offsets["CTX"][0] + plane * plane_bytes + row0 * nx * 4,
                                    ctx[plane], ">i4")
            if finish is not None:
                handle.flush()
                fd = handle.fileno()

                def read_rows(name, row0, row1):
                    start = offsets[name][0] + row0 * nx * 4
                    raw = os.pread(fd, (row1 - row0) * nx * 4, start)
                    return np.frombuffer(raw, dtype=">f4").reshape(row1 - row0, nx).astype(np.float32)

                final = finish(read_rows)
                new_pieces, new_offsets, new_total = _product_layout(final, shape, n_planes)
                moves = [(offsets[name][0], new_offsets[name][0], offsets[name][1])
                         for name in ("SCI", "WHT", "CTX")
                         if offsets[name][0] is not None and offsets[name][0] != new_offsets[name][0]]
                if moves:
                    log.info("%s: headers grew or shrank; %d data block(s) moved", path.name, len(moves))
                    _move_data(fd, moves)
                    for name in ("SCI", "WHT", "CTX"):  # zero padding after each moved data block
                        start, n_bytes = new_offsets[name]
                        if start is not None and n_bytes % _BLOCK:
                            os.pwrite(fd, bytes(-n_bytes % _BLOCK), start + n_bytes)
                for start, data in new_pieces:
                    os.pwrite(fd, data, start)
                os.ftruncate(fd, new_total)
    except OSError as exc:
        raise OutputWriteError(f"{path}: cannot write: {exc}") from exc
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
    """DQ arrays and MDRIZSKY into ``path`` through astropy's update mode.

    The file is closed without astropy's whole-file verification (``output_verify="ignore"``):
    the input was read and checked when the run began, only DQ data and one card change, and
    the cards written are verified as astropy writes them. Verification never alters what
    a valid file gets, so the bytes are those of the default close; it parses every card of
    every extension, which was most of the cost of this update.
    """
    from astropy.io import fits

    hdul = fits.open(path, mode="update", memmap=False)
    try:
        for chip, dq, sky in zip(exposure.chips, dq_arrays, skies):
            hdul["DQ", chip.extver].data = np.asarray(dq).astype(np.uint16).view(np.int16)
            if sky is not None:
                hdul["SCI", chip.extver].header["MDRIZSKY"] = (sky, "Sky value computed by AstroDrizzle")
    finally:
        hdul.close(output_verify="ignore")


def update_inputs(exposure, dq_arrays: list, skies: list, target: Path | None = None,
                  stage: StagedOutputs | None = None) -> Path:
    """Write the final DQ arrays (and MDRIZSKY) into the input file, or into a copy ``target``.

    The input is updated in place, as AstroDrizzle does; a copy is written under a temporary
    name, renamed by ``stage.commit()`` (or at once without a ``stage``).
    """
    try:
        if target is None:
            _write_dq_and_sky(exposure.path, exposure, dq_arrays, skies)
            return exposure.path
        target = Path(target)
        with StagedOutputs() if stage is None else nullcontext(stage) as staging:
            tmp = staging.reserve(target)
            shutil.copyfile(exposure.path, tmp)
            _write_dq_and_sky(tmp, exposure, dq_arrays, skies)
            if stage is None:
                staging.commit()
        return target
    except OSError as exc:
        raise InvalidInputError(f"{exposure.path}: cannot write the updated DQ: {exc}") from exc
