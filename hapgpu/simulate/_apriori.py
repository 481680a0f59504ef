"""Headers of an exposure whose WCS carries a known a priori error.

The templates hold real files whose active WCS is an a posteriori Gaia fit
(``IDC_xxx-FIT_REL_GAIAeDR3``); moved to a pointing it is the simulation's truth. With a
:class:`~._wcs_error.WCSPerturbation`, the written file instead looks like one straight out of
the a priori stage of the pipeline (hap-pipeline.md section 3.7):

* the active WCS of every extension is the truth moved by the error, named
  ``<base>-GSC240`` where ``<base>`` is the text before the first ``-`` of the true WCSNAME
  (``IDC_2731450pi``); ``WCSTYPE`` says so, and the fit keywords of the a posteriori solution
  (``RMS_RA``, ``RMS_DEC``, ``CRDER1/2``, ``NMATCHES``, ``FITGEOM``, ``REL*``) are removed;
* no stored solution equals the truth, so alignment cannot be faked by restoring one. The
  a priori solutions (``OPUS``, ``<base>``, ``<base>-GSC240*``) are kept, with the same
  reference pixel, ``CRVAL`` and ``CD`` as the active one (their pixel side, SIP and lookup
  tables, is their own); all others (``-FIT_*``, ``-HSC30``...) are removed: alternate WCS
  keys, ``HDRLET`` extensions (the ``OPUS`` headerlet too, whose own distortion model would
  need its own a priori offset) and ``WCSCORR`` rows.

``RA_APER``/``DEC_APER``, ``PA_APER``, ``ORIENTAT``, ``PA_V3`` and ``S_REGION`` follow the
erroneous WCS, as they would in a real file; ``RA_TARG``/``DEC_TARG`` (the proposal's target)
do not.
"""

from __future__ import annotations

import re

import numpy as np
from astropy.io import fits

from ._detector import ChipWindow
from ._hdrlet import make_headerlet_hdu, open_headerlet
from ._headers import WCS_KEYS, ExposureHeaders, read_cd, set_s_regions, write_cd
from ._pointing import orientat_from_cd
from ._wcs_error import ErrorTransform

__all__ = ["A_PRIORI_SUFFIX", "wcs_base_name", "a_priori_wcsname", "is_a_priori_wcsname",
           "keeps_headerlet", "perturb_exposure_headers"]

A_PRIORI_SUFFIX = "GSC240"
_A_PRIORI_WCSTYPE = f"undistorted a priori solution based on {A_PRIORI_SUFFIX}"
# Keywords of the active a posteriori fit, meaningless for an a priori solution.
_FIT_KEYWORDS = ("RMS_RA", "RMS_DEC", "CRDER1", "CRDER2", "NMATCHES", "FITGEOM", "RELGEOM",
                 "RELMATCH", "RELRMS_D", "RELRMS_R", "RELREFIM")
# Keyword families of one alternate WCS, without the trailing key letter.
_ALTERNATE_FAMILY = re.compile(
    r"^(WCSNAME|WCSAXES|WCSTYPE|HDRNAME|CRPIX[12]|CRVAL[12]|CTYPE[12]|CUNIT[12]|CDELT[12]|"
    r"CD[12]_[12]|PC[12]_[12]|CRDER[12]|CSYER[12]|RADESYS|EQUINOX|LONPOLE|LATPOLE|RMS_RA|"
    r"RMS_DEC)([A-Z])$")
_SKY_CARDS = ("CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CD1_1", "CD1_2", "CD2_1", "CD2_2")


def wcs_base_name(wcsname: str) -> str:
    """The distortion part of a WCSNAME: the text before its first ``-`` (``IDC_2731450pi``)."""
    return str(wcsname).strip().split("-", 1)[0]


def a_priori_wcsname(wcsname: str) -> str:
    """The a priori WCSNAME of the same distortion model: ``<base>-GSC240``."""
    return f"{wcs_base_name(wcsname)}-{A_PRIORI_SUFFIX}"


def is_a_priori_wcsname(name: str, base: str) -> bool:
    """True for the solutions an a priori file keeps: OPUS, ``<base>``, ``<base>-GSC240*``."""
    name = str(name).strip()
    active = f"{base}-{A_PRIORI_SUFFIX}"
    return name in ("OPUS", base, active) or name.startswith(f"{active}-")


def keeps_headerlet(header: fits.Header, base: str) -> bool:
    """True for the headerlets an a priori file keeps: ``<base>`` and ``<base>-GSC240*``.

    The OPUS headerlet is dropped: it carries its own (older) distortion model.
    """
    name = str(header.get("WCSNAME", "")).strip()
    return name != "OPUS" and is_a_priori_wcsname(name, base)


def _perturb_primary(sci: fits.Header, transform: ErrorTransform, wcsname: str) -> None:
    crval1, crval2, cd = transform.apply_tan(float(sci["CRVAL1"]), float(sci["CRVAL2"]),
                                             read_cd(sci, ""))
    sci["CRVAL1"], sci["CRVAL2"] = crval1, crval2
    write_cd(sci, "", cd)
    if "LATPOLE" in sci:
        sci["LATPOLE"] = crval2
    if "ORIENTAT" in sci:
        sci["ORIENTAT"] = orientat_from_cd(cd)
    if "RA_APER" in sci and "DEC_APER" in sci:
        ra, dec = transform.apply(float(sci["RA_APER"]), float(sci["DEC_APER"]))
        sci["RA_APER"], sci["DEC_APER"] = float(ra), float(dec)
    if "PA_APER" in sci:
        sci["PA_APER"] = float(sci["PA_APER"]) + transform.error.rotation_deg
    sci["WCSNAME"] = wcsname
    if "WCSTYPE" in sci:
        sci["WCSTYPE"] = _A_PRIORI_WCSTYPE
    for key in _FIT_KEYWORDS:
        sci.remove(key, ignore_missing=True, remove_all=True)


def _copy_sky(source: fits.Header, target: fits.Header, key: str) -> None:
    """Give WCS ``key`` of ``target`` the reference pixel, CRVAL and CD of ``source``'s primary."""
    for card in _SKY_CARDS:
        if card in source:
            target[f"{card}{key}"] = source[card]


def _replace_alternates(header: fits.Header, active: fits.Header, base: str) -> None:
    """Re-anchor the a priori alternate WCSs on ``active``; delete every other alternate."""
    keys = [key for key in WCS_KEYS[1:] if f"CRVAL1{key}" in header]
    for key in keys:
        if is_a_priori_wcsname(header.get(f"WCSNAME{key}", ""), base):
            _copy_sky(active, header, key)
            continue
        doomed = [card.keyword for card in header.cards
                  if (m := _ALTERNATE_FAMILY.match(card.keyword)) and m.group(2) == key]
        for keyword in doomed:
            header.remove(keyword, ignore_missing=True, remove_all=True)


def _chip_headers(true: dict[str, fits.Header], transform: ErrorTransform,
                  base: str, wcsname: str) -> dict[str, fits.Header]:
    sci = true["SCI"].copy()
    _perturb_primary(sci, transform, wcsname)
    out = {"SCI": sci}
    for extname, header in true.items():
        if extname == "SCI":
            continue
        header = header.copy()
        if "CRVAL1" in header:
            _copy_sky(sci, header, "")
            for card in ("WCSNAME", "ORIENTAT", "RA_APER", "DEC_APER", "PA_APER"):
                if card in header and card in sci:
                    header[card] = sci[card]
            for card in _FIT_KEYWORDS:
                header.remove(card, ignore_missing=True, remove_all=True)
        out[extname] = header
    for header in out.values():
        _replace_alternates(header, sci, base)
    return out


def _headerlet(hdu, chips: list[dict[str, fits.Header]]):
    """A kept headerlet with every SIPWCS re-anchored on its chip's active WCS."""
    hlet = open_headerlet(hdu)
    for ext in hlet:
        if ext.name != "SIPWCS":
            continue
        chip = int(ext.header.get("TG_EVER", ext.ver))
        sci = chips[chip - 1]["SCI"]
        _copy_sky(sci, ext.header, "")
        if "LATPOLE" in ext.header:
            ext.header["LATPOLE"] = sci["CRVAL2"]
        if "ORIENTAT" in ext.header:
            ext.header["ORIENTAT"] = sci["ORIENTAT"]
    return make_headerlet_hdu(hlet, hdu.header)


def _wcscorr(table: fits.BinTableHDU, chips: list[dict[str, fits.Header]], base: str,
             rotation: float) -> fits.BinTableHDU:
    data = table.data.copy()
    keep = np.ones(len(data), dtype=bool)
    for index, row in enumerate(data):
        name = str(row["WCS_ID"]).strip()
        if not name:
            continue
        if not is_a_priori_wcsname(name, base):
            keep[index] = False
            continue
        chip = int(row["EXTVER"])
        if not 1 <= chip <= len(chips):
            continue
        sci = chips[chip - 1]["SCI"]
        for card in _SKY_CARDS:
            row[card] = float(sci[card])
        if row["ORIENTAT"] != 0.0:
            row["ORIENTAT"] = float(sci["ORIENTAT"])
        if row["PA_V3"] != 0.0:
            row["PA_V3"] = (row["PA_V3"] + rotation) % 360.0
    return fits.BinTableHDU(data[keep], table.header.copy())


def perturb_exposure_headers(true: ExposureHeaders, transform: ErrorTransform,
                             windows: list[ChipWindow]) -> ExposureHeaders:
    """Headers to write for an exposure whose header WCS is ``truth + error``.

    Parameters
    ----------
    true : ExposureHeaders
        The exposure's true headers (not modified).
    transform : ErrorTransform
        The exposure's fixed error about its reference point.
    windows : list of ChipWindow
        Read-out window of each chip (for ``S_REGION``).

    Returns
    -------
    ExposureHeaders
        New headers, as described in the module docstring.
    """
    truth_name = str(true.chips[0]["SCI"].get("WCSNAME", "")).strip()
    base = wcs_base_name(truth_name)
    wcsname = a_priori_wcsname(truth_name)
    chips = [_chip_headers(c, transform, base, wcsname) for c in true.chips]
    headerlets = [_headerlet(h, chips) for h in true.headerlets if keeps_headerlet(h.header, base)]
    active = [h.header["HDRNAME"] for h in headerlets
              if str(h.header.get("WCSNAME", "")).strip() == wcsname and "HDRNAME" in h.header]
    for chip in chips:
        if active:
            chip["SCI"]["HDRNAME"] = active[0]
        else:
            chip["SCI"].remove("HDRNAME", ignore_missing=True)
    primary = true.primary.copy()
    if "PA_V3" in primary:
        primary["PA_V3"] = (float(primary["PA_V3"]) + transform.error.rotation_deg) % 360.0
    result = ExposureHeaders(
        primary=primary,
        chips=chips,
        lookup_tables=true.lookup_tables,
        headerlets=headerlets,
        wcscorr=(_wcscorr(true.wcscorr, chips, base, transform.error.rotation_deg)
                 if true.wcscorr is not None else None),
    )
    set_s_regions(result, windows)
    return result
