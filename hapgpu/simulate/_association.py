"""Association tables and RAW files of a simulated visit, what the calibration pipeline's drizzle
step (``hapgpu runastrodriz``, drizzlepac ``runastrodriz``) reads besides the calibrated files.

* ``<asn_id>_asn.fits``: the association table of the exposures taken with one filter in the
  visit, as the HST ground system writes it: a primary header (``ROOTNAME``, ``ASN_ID``,
  ``ASN_TAB``, instrument keywords) and a binary table ``ASN`` with the columns ``MEMNAME``
  (14A, rootnames in upper case), ``MEMTYPE`` (14A: ``EXP-DTH`` for the exposures, one
  ``PROD-DTH`` row for the combined product) and ``MEMPRSNT`` (logical). The association
  identifier is ``<ipppss><nn>0`` (``nn`` = 01, 02, ... in filter order), the product's
  rootname too.
* ``<rootname>_raw.fits``: the exposure's RAW file. Its primary header is the calibrated
  exposure's, with the calibration switches back to ``PERFORM`` (as before calibration),
  ``DRIZCORR = PERFORM`` and ``FILENAME`` of the RAW file; runastrodriz reads only this header
  (DRIZCORR, IDCTAB). Raw pixels are not simulated: the file has one header-only ``SCI``,
  ``ERR`` and ``DQ`` extension per chip (``NAXIS = 0``), so it cannot be mistaken for data.

The calibrated exposures get the matching ``ASN_ID``, ``ASN_TAB`` and ``ASN_MTYP`` keywords.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from ._io import atomic_path

__all__ = ["AssociationFiles", "association_ids", "association_keywords", "raw_primary_header",
           "write_association", "write_raw"]

#: Primary keywords copied from the first exposure into the association table's header.
_ASN_PRIMARY_KEYS = ("TELESCOP", "INSTRUME", "DETECTOR", "PROPOSID", "LINENUM", "TARGNAME",
                     "RA_TARG", "DEC_TARG", "PR_INV_L", "PR_INV_F", "CAL_VER")


@dataclass(frozen=True)
class AssociationFiles:
    """What :func:`write_association` wrote.

    Attributes
    ----------
    asn : pathlib.Path
        ``<asn_id>_asn.fits``.
    asn_id : str
        Association identifier (lower case), also the product's rootname.
    members : tuple of str
        Rootnames (lower case) of the exposures, in table order.
    raws : tuple of pathlib.Path
        ``<rootname>_raw.fits`` of each member.
    """

    asn: Path
    asn_id: str
    members: tuple
    raws: tuple


def association_ids(rootnames, filters) -> dict:
    """Association identifier of each exposure: one association per filter, numbered in order
    of first appearance, ``<ipppss><nn>0``.

    Parameters
    ----------
    rootnames : sequence of str
        Exposure rootnames (9 characters), in time order.
    filters : sequence of str
        The filter of each exposure.

    Returns
    -------
    dict
        rootname -> association identifier (lower case).
    """
    order = []
    for name in filters:
        if name not in order:
            order.append(name)
    return {root: f"{root[:6]}{order.index(f) + 1:02d}0".lower()
            for root, f in zip(rootnames, filters)}


def association_keywords(primary: fits.Header, asn_id: str) -> None:
    """Set ``ASN_ID``, ``ASN_TAB`` and ``ASN_MTYP`` of an exposure's primary header (in place)."""
    primary["ASN_ID"] = (asn_id.upper(), "unique identifier assigned to association")
    primary["ASN_TAB"] = (f"{asn_id}_asn.fits", "name of the association table")
    primary["ASN_MTYP"] = ("EXP-DTH", "Role of the Member in the Association")


def raw_primary_header(primary: fits.Header, rootname: str, *, drizcorr: str = "PERFORM") -> fits.Header:
    """The RAW file's primary header made from the calibrated exposure's.

    Calibration switches (``*CORR`` keywords) that say ``COMPLETE`` go back to ``PERFORM``;
    ``DRIZCORR`` is ``drizcorr``; ``FILENAME`` is ``<rootname>_raw.fits``.
    """
    header = primary.copy()
    for key in list(header.keys()):
        if key.endswith("CORR") and str(header[key]).strip().upper() == "COMPLETE":
            header[key] = "PERFORM"
    header["DRIZCORR"] = (drizcorr, "Drizzle processing")
    header["FILENAME"] = f"{rootname}_raw.fits"
    header["NEXTEND"] = 0
    return header


def write_raw(path: Path, primary: fits.Header, n_chips: int) -> None:
    """Write a RAW file: ``primary`` and header-only SCI/ERR/DQ extensions per chip."""
    hdus: list = [fits.PrimaryHDU(header=primary.copy())]
    for chip in range(1, n_chips + 1):
        for extname in ("SCI", "ERR", "DQ"):
            hdu = fits.ImageHDU(name=extname, ver=chip)
            hdu.header["CCDCHIP"] = (chip if n_chips > 1 else 1, "CCD chip")
            hdu.header["COMMENT"] = "raw pixels are not simulated (hapgpu.simulate)"
            hdus.append(hdu)
    hdul = fits.HDUList(hdus)
    hdul[0].header["NEXTEND"] = len(hdul) - 1
    with atomic_path(path) as tmp:
        hdul.writeto(tmp, output_verify="silentfix")


def write_association(outdir, asn_id: str, exposures, *, drizcorr: str = "PERFORM") -> AssociationFiles:
    """Write the association table of ``exposures`` and a RAW file per exposure.

    Parameters
    ----------
    outdir : path-like
        Folder of the exposures.
    asn_id : str
        Association identifier (see :func:`association_ids`).
    exposures : sequence of path-like
        The calibrated exposures (``<rootname>_flc.fits`` / ``_flt.fits``), in time order.
    drizcorr : str
        ``DRIZCORR`` of the RAW files (``PERFORM``; ``OMIT`` makes runastrodriz skip).

    Returns
    -------
    AssociationFiles
    """
    outdir = Path(outdir)
    asn_id = asn_id.lower()
    members, raws, first = [], [], None
    for path in exposures:
        path = Path(path)
        rootname = path.name.split("_")[0].lower()
        with fits.open(path, memmap=False) as hdul:
            primary = hdul[0].header.copy()
            n_chips = sum(1 for hdu in hdul if hdu.name == "SCI")
        first = primary if first is None else first
        raw = outdir / f"{rootname}_raw.fits"
        write_raw(raw, raw_primary_header(primary, rootname, drizcorr=drizcorr), n_chips)
        members.append(rootname)
        raws.append(raw)
    names = [m.upper() for m in members] + [asn_id.upper()]
    types = ["EXP-DTH"] * len(members) + ["PROD-DTH"]
    table = fits.BinTableHDU.from_columns([
        fits.Column(name="MEMNAME", format="14A", array=np.array(names)),
        fits.Column(name="MEMTYPE", format="14A", array=np.array(types)),
        fits.Column(name="MEMPRSNT", format="L", array=np.ones(len(names), dtype=bool)),
    ], name="ASN")
    head = fits.Header()
    head["ROOTNAME"] = (asn_id, "rootname of the association")
    head["FILENAME"] = (f"{asn_id}_asn.fits", "name of file")
    for key in _ASN_PRIMARY_KEYS:
        if first is not None and key in first:
            head[key] = first[key]
    head["ASN_ID"] = (asn_id.upper(), "unique identifier assigned to association")
    head["ASN_TAB"] = (f"{asn_id}_asn.fits", "name of the association table")
    head["COMMENT"] = "association table written by hapgpu.simulate"
    asn = outdir / f"{asn_id}_asn.fits"
    with atomic_path(asn) as tmp:
        fits.HDUList([fits.PrimaryHDU(header=head), table]).writeto(tmp)
    return AssociationFiles(asn, asn_id, tuple(members), tuple(raws))
