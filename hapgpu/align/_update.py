"""Write an alignment into the exposures: WCS, fit keywords and headerlets (§1.8, §3.9).

For each aligned file (drizzlepac's ``update_image_wcs_info``, as coded, with its two
headerlet slips corrected, see :func:`write_alignment`):

* primary header: ``UPWCSVER``, ``PYWCSVER`` (before HISTORY, else after ASN_MTYP);
* each SCI header: the previous primary WCS archived as an alternate WCS (stwcs
  ``altwcs.archive_wcs``, auto-renamed on a name clash), the fitted WCS written as primary with
  ``WCSNAME = <base>-FIT_<label>_<catalog>`` (``<base>`` = the old WCSNAME up to its first
  ``-``), ``WCSTYPE``, ``ORIENTAT``, ``RMS_RA``/``RMS_DEC`` (mas), ``CRDER1``/``CRDER2``
  (deg), ``NMATCHES``, ``FITGEOM``, ``RELGEOM``/``RELMATCH``/``RELRMS_D``/``RELRMS_R``/
  ``RELREFIM`` and ``HDRNAME``;
* the previous solution kept as a ``HDRLET`` extension when no headerlet of that name is
  attached yet, and the new solution attached as a ``HDRLET`` (stwcs headerlets), optionally
  also written as a headerlet file.

Pixel data are never modified. The file is updated in a temporary copy beside it that then
replaces it, so an interrupted run never leaves a half-written exposure.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import astropy
from astropy.io import fits

from .._fitsupdate import update_in_copy
from ..errors import InvalidInputError

__all__ = [
    "ChipSolution",
    "default_headerlet_filename",
    "fit_wcsname",
    "interpret_wcsname_type",
    "write_alignment",
]

log = logging.getLogger(__name__)

_RMS_RA_COMMENT = "RMS in RA of WCS fit(mas)"
_RMS_DEC_COMMENT = "RMS in Dec of WCS fit(mas)"
_REL_DEFAULTS = (
    ("RELGEOM", "N/A", "fitgeom for relative fit"),
    ("RELMATCH", 0, "number of matches for relative fit"),
    ("RELRMS_D", 0.0, "RMS in DEC of relative WCS fit(mas)"),
    ("RELRMS_R", 0.0, "RMS in RA of relative WCS fit(mas)"),
    ("RELREFIM", "N/A", "base reference image rootname for relative fit"),
)
_FIT_TERMS = {"REL": "relatively aligned to {}", "IMG": "aligned image-by-image to {}",
              "EVM": "aligned by visit-exposures to {}", "SVM": "aligned by visit to {}",
              "MVM": "aligned by skycell to {}"}


@dataclass
class ChipSolution:
    """The fitted WCS of one chip and its fit figures.

    Attributes
    ----------
    chip : int
        SCI extension version.
    wcs : stwcs.wcsutil.HSTWCS
        The corrected WCS.
    rms_ra, rms_dec : float
        Fit RMS in RA and Dec, mas.
    fit_rms : float
        RMS of the fit separations, mas.
    n_matches : int
        Matches used by the fit.
    fitgeom : str
        Fit geometry.
    method : str
        ``relative``, ``2dhist`` or ``default``.
    shift : (float, float)
        Fit shift, tangent-plane pixels.
    rotation, scale, skew : float
        Fit rotation (deg, y axis), scale and skew.
    """

    chip: int
    wcs: object
    rms_ra: float
    rms_dec: float
    fit_rms: float
    n_matches: int
    fitgeom: str
    method: str
    shift: tuple = (0.0, 0.0)
    rotation: float = 0.0
    scale: float = 1.0
    skew: float = 0.0


def fit_wcsname(current: str | None, label: str, catalog: str) -> str:
    """``<base>-FIT_<label>_<catalog>``; ``FIT_<label>_<catalog>`` for an empty WCSNAME.

    Parameters
    ----------
    current : str or None
        The WCSNAME being replaced; its text up to the first ``-`` is kept.
    label : str
        ``REL``, ``IMG``, ``SVM`` or ``MVM``.
    catalog : str
        Catalogue name, as given.
    """
    current = (current or "").strip()
    if not current:
        return f"FIT_{label}_{catalog}"
    base = current.split("-", 1)[0]
    return f"{base}-FIT_{label}_{catalog}"


def interpret_wcsname_type(wcsname: str | None) -> str:
    """Human-readable WCSTYPE of a WCSNAME (stwcs/drizzlepac convention, MVM added).

    ``IDC...`` -> "undistorted ", ``OPU...`` -> "pipeline default ", anything else
    "user-defined"; then "not aligned", "a priori solution based on X" or
    "a posteriori solution " + how it was aligned.
    """
    if wcsname is None:
        return "not aligned"
    parts = wcsname.upper().split("-")
    base = {"IDC": "undistorted ", "OPU": "pipeline default "}.get(parts[0][:3])
    if base is None:
        return "user-defined"
    if len(parts) == 1:
        return base + "not aligned"
    term = parts[1]
    if "FIT" not in term:
        return base + f"a priori solution based on {term}"
    pieces = term.split("_")
    kind = pieces[1] if len(pieces) > 1 else ""
    catalog = "_".join(pieces[2:])
    how = _FIT_TERMS.get(kind, "aligned to {}").format(catalog)
    return base + "a posteriori solution " + how


def default_headerlet_filename(filename: str) -> str:
    """drizzlepac's pipeline headerlet name: ``<root>_flt_hlet.fits`` for FLT and FLC."""
    path = Path(filename)
    name = path.name
    if name.endswith("_flc.fits"):
        return str(path.with_name(name[:-len("_flc.fits")] + "_flt_hlet.fits"))
    if name.endswith("_flt.fits"):
        return str(path.with_name(name[:-len("_flt.fits")] + "_flt_hlet.fits"))
    return str(path.with_name(path.stem + "_hlet.fits"))


def _hdrname(filename: str, wcsname: str) -> str:
    stem = Path(filename).name
    if stem.lower().endswith(".fits"):
        stem = stem[:-5]
    return f"{stem}_{wcsname}-hlet.fits"


def _set_versions(primary: fits.Header) -> None:
    import stwcs

    before = after = None
    if "HISTORY" in primary:
        before = "HISTORY"
    elif "ASN_MTYP" in primary:
        after = "ASN_MTYP"
    primary.set("UPWCSVER", stwcs.__version__, "Version of STWCS used to update the WCS",
                before=before, after=after)
    primary.set("PYWCSVER", astropy.__version__, "Version of Astropy used to update the WCS",
                after="UPWCSVER")


def _attached_names(hdul) -> tuple[set, set]:
    hdrnames, wcsnames = set(), set()
    for hdu in hdul:
        if hdu.name == "HDRLET":
            hdrnames.add(str(hdu.header.get("HDRNAME", "")).strip())
            wcsnames.add(str(hdu.header.get("WCSNAME", "")).strip())
    return hdrnames, wcsnames


def _make_headerlet(hdul, hdrname: str, wcsname: str, description: str):
    from stwcs.wcsutil import headerlet

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return headerlet.create_headerlet(hdul, hdrname=hdrname, wcsname=wcsname,
                                          author="hapgpu", descrip=description, logging=False)


def _fill_headerlet_primary(hlet, solution: ChipSolution, catalog: str) -> None:
    header = hlet[0].header
    header["RMS_RA"] = (solution.rms_ra, _RMS_RA_COMMENT)
    header["RMS_DEC"] = (solution.rms_dec, _RMS_DEC_COMMENT)
    header["NMATCH"] = solution.n_matches
    header["CATALOG"] = catalog
    header["FITMETH"] = solution.method
    header["FIT_RMS"] = (solution.fit_rms, "RMS (mas) of the 2D fit of the headerlet solution")
    header["HISTORY"] = "~~~~~ FIT PARAMETERS ~~~~~"
    header["HISTORY"] = '{:>15} : {:9.4f} "/pixels'.format("platescale", solution.wcs.pscale)
    header["HISTORY"] = "{:>15} : {:9.4f} pixels".format("x_shift", solution.shift[0])
    header["HISTORY"] = "{:>15} : {:9.4f} pixels".format("y_shift", solution.shift[1])
    header["HISTORY"] = "{:>15} : {:9.4f} degrees".format("rotation", solution.rotation)
    header["HISTORY"] = "{:>15} : {:9.4f}".format("scale", solution.scale)
    header["HISTORY"] = "{:>15} : {:9.4f}".format("skew", solution.skew)


def _write_wcs(hdr: fits.Header, hdul, ext: int, solution: ChipSolution, wcsname: str) -> None:
    from stwcs.wcsutil import altwcs

    current = str(hdr.get("WCSNAME", "")).strip()
    if current.upper() != wcsname.upper():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            altwcs.archive_wcs(hdul, [ext], wcsname=current or "OPUS",
                               mode=altwcs.ArchiveMode.AUTO_RENAME)
    wcs = solution.wcs
    wcs.setOrient()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        new = wcs.wcs2header(idc2hdr=wcs.idcscale is not None, relax=True)
    new.set("WCSNAME", wcsname, before=0)
    new.set("WCSTYPE", interpret_wcsname_type(wcsname), after=0)
    new.set("ORIENTAT", wcs.orientat, after=len(new))
    hdr.update(new)


def _write_fit_keywords(hdr: fits.Header, solution: ChipSolution, relref: str) -> None:
    hdr["RMS_RA"] = (float(solution.rms_ra), _RMS_RA_COMMENT)
    hdr["RMS_DEC"] = (float(solution.rms_dec), _RMS_DEC_COMMENT)
    hdr["CRDER1"] = (float(solution.rms_ra) / 3.6e6, _RMS_RA_COMMENT.replace("mas", "deg"))
    hdr["CRDER2"] = (float(solution.rms_dec) / 3.6e6, _RMS_DEC_COMMENT.replace("mas", "deg"))
    hdr["NMATCHES"] = int(solution.n_matches)
    hdr["FITGEOM"] = solution.fitgeom or "N/A"
    for key, value, comment in reversed(_REL_DEFAULTS):
        if key not in hdr:
            hdr.insert("FITGEOM", (key, value, comment), after=True)
    if solution.method == "relative":
        hdr["RELGEOM"] = solution.fitgeom
        hdr["RELMATCH"] = int(solution.n_matches)
        hdr["RELRMS_D"] = float(solution.rms_dec)
        hdr["RELRMS_R"] = float(solution.rms_ra)
        hdr["RELREFIM"] = relref


def _sci_extension(hdul, chip: int, filename: str) -> int:
    for index, hdu in enumerate(hdul):
        if hdu.name == "SCI" and hdu.ver == chip:
            return index
    raise InvalidInputError(f"{filename}: no SCI,{chip} extension to update")


def write_alignment(filename, solutions: list[ChipSolution], *, label: str, catalog: str,
                    relref: str = "N/A", headerlet_file: str | None = None) -> dict:
    """Write a fitted solution into one exposure and attach it as a headerlet.

    drizzlepac creates the headerlet after each chip, so a two-chip file gets a headerlet
    whose second chip still has the old WCS; here the headerlet is made once, after every chip
    is updated.

    Parameters
    ----------
    filename : str or pathlib.Path
        The FLT/FLC file, updated in place (through a temporary copy).
    solutions : list of ChipSolution
        One per SCI extension to update.
    label : str
        ``REL``, ``IMG``, ``SVM`` or ``MVM``.
    catalog : str
        Reference catalogue name.
    relref : str, keyword-only
        Rootname of the relative fit's reference image (``RELREFIM``).
    headerlet_file : str, optional, keyword-only
        Also write the new solution's headerlet to this file.

    Returns
    -------
    dict
        ``wcsname``, ``hdrname``, ``archived`` (HDRNAME of the previous solution attached now,
        or None) and ``headerlet_file``.

    Raises
    ------
    InvalidInputError
        When the file cannot be opened or lacks a SCI extension.
    """
    filename = str(filename)
    return update_in_copy(
        filename, lambda hdul: _update_hdulist(hdul, filename, solutions, label=label, catalog=catalog,
                                               relref=relref, headerlet_file=headerlet_file),
        prefix=".hapgpu-align-")


def _update_hdulist(hdul, filename, solutions, *, label, catalog, relref, headerlet_file):
    hdrnames, wcsnames = _attached_names(hdul)
    first = _sci_extension(hdul, solutions[0].chip, filename)
    old_wcsname = str(hdul[first].header.get("WCSNAME", "")).strip()
    wcsname = fit_wcsname(old_wcsname, label, catalog)
    hdrname = _hdrname(filename, wcsname)
    archived = None
    previous = None
    if old_wcsname and old_wcsname not in wcsnames and old_wcsname.upper() != wcsname.upper():
        old_hdrname = str(hdul[first].header.get("HDRNAME", "")).strip() or \
            _hdrname(filename, old_wcsname)
        if old_hdrname not in hdrnames:
            previous = _make_headerlet(hdul, old_hdrname, old_wcsname,
                                       interpret_wcsname_type(old_wcsname))
            archived = old_hdrname
    _set_versions(hdul[0].header)
    for solution in solutions:
        ext = _sci_extension(hdul, solution.chip, filename)
        hdr = hdul[ext].header
        _write_wcs(hdr, hdul, ext, solution, wcsname)
        _write_fit_keywords(hdr, solution, relref)
        if "HDRNAME" in hdr:
            del hdr["HDRNAME"]
        hdr["HDRNAME"] = hdrname
    if previous is not None:
        previous.attach_to_file(hdul, archive=False)
    new = _make_headerlet(hdul, hdrname, wcsname, interpret_wcsname_type(wcsname))
    _fill_headerlet_primary(new, solutions[0], catalog)
    if hdrname not in hdrnames and hdrname != archived:
        new.attach_to_file(hdul, archive=False)
    written = None
    if headerlet_file:
        written = str(headerlet_file)
        directory = os.path.dirname(os.path.abspath(written))
        fd, temp = tempfile.mkstemp(prefix=".hapgpu-hlet-", suffix=".fits", dir=directory)
        os.close(fd)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                new.writeto(temp, overwrite=True)
            os.replace(temp, written)
        finally:
            if os.path.exists(temp):
                os.remove(temp)
    log.info("%s: WCSNAME %s (%d chips), headerlet %s%s", filename, wcsname, len(solutions),
             hdrname, f"; previous solution archived as {archived}" if archived else "")
    return {"wcsname": wcsname, "hdrname": hdrname, "archived": archived,
            "headerlet_file": written}

