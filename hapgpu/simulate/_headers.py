"""Headers of one simulated exposure, derived from an instrument template.

Every WCS in the file is moved by the exposure's :class:`~._pointing.SkyRotation`: the primary
and alternate WCSs of every extension, the WCSs inside the headerlets and the rows of the
``WCSCORR`` table. For a subarray, the reference pixels and the lookup tables' reference values
shift by the window offset so that each subarray pixel keeps its full-frame distortion.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

import numpy as np
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS

from ._detector import ChipWindow
from ._hdrlet import make_headerlet_hdu
from ._instruments import DetectorModel, FilterModel
from ._pointing import SkyRotation, orientat_from_cd
from ._templates import InstrumentTemplate

__all__ = ["VisitFacts", "ExposureSpec", "ExposureHeaders", "build_exposure_headers",
           "reference_cd", "read_cd", "write_cd", "set_s_regions", "WCS_KEYS"]

WCS_KEYS = ("",) + tuple(string.ascii_uppercase)
_LOOKUP_RECORDS = (("WCSDVARR", "DP"), ("D2IMARR", "D2IM"))
# ACS filter wheels hold a clear position each: small apertures for HRC, large ones for WFC.
_ACS_CLEAR = {"HRC": {1: "CLEAR1S", 2: "CLEAR2S"}, "WFC": {1: "CLEAR1L", 2: "CLEAR2L"}}


@dataclass(frozen=True)
class VisitFacts:
    """Header facts shared by every exposure of a visit.

    Attributes
    ----------
    proposal_id : int
        ``PROPOSID``.
    program_id : str
        Three-character program code (``ppp`` of the rootname), lower case.
    visit : str
        Two-character visit (obset) code (``ss``).
    target_name : str
        ``TARGNAME``.
    target : (float, float)
        (ra, dec) of the target, degrees.
    history : tuple of str
        HISTORY lines added to every primary header.
    """

    proposal_id: int
    program_id: str
    visit: str
    target_name: str
    target: tuple[float, float]
    history: tuple[str, ...]


@dataclass(frozen=True)
class ExposureSpec:
    """What distinguishes one exposure of a visit.

    Attributes
    ----------
    index : int
        Position in the visit (0-based).
    rootname : str
        ``ipppssoot`` rootname.
    filter : FilterModel
        Filter.
    exptime : float
        Exposure time, seconds.
    expstart : float
        Start, MJD.
    dither : (float, float)
        Telescope offset from the first pointing, reference-chip pixels.
    roll : float
        Roll relative to the template orientation, degrees.
    rotation : SkyRotation
        Sky rotation from the template to this pointing.
    """

    index: int
    rootname: str
    filter: FilterModel
    exptime: float
    expstart: float
    dither: tuple[float, float]
    roll: float
    rotation: SkyRotation

    @property
    def expend(self) -> float:
        """End of the exposure, MJD."""
        return self.expstart + self.exptime / 86400.0


@dataclass
class ExposureHeaders:
    """All headers and non-pixel extensions of one exposure.

    Attributes
    ----------
    primary : astropy.io.fits.Header
        Primary header.
    chips : list of dict
        Per chip, the extension headers by EXTNAME (``SCI`` first).
    lookup_tables : list of astropy.io.fits.ImageHDU
        ``WCSDVARR``/``D2IMARR`` extensions.
    headerlets : list
        ``HDRLET`` extensions.
    wcscorr : astropy.io.fits.BinTableHDU or None
        The ``WCSCORR`` table.
    """

    primary: fits.Header
    chips: list[dict[str, fits.Header]]
    lookup_tables: list[fits.ImageHDU]
    headerlets: list
    wcscorr: fits.BinTableHDU | None
    _wcs: dict = field(default_factory=dict, repr=False)

    def chip_wcs(self, chip: int, shape: tuple[int, int]) -> WCS:
        """Full distorted WCS (SIP, NPOL, D2IM) of SCI extension ``chip`` (1-based).

        The WCS is built once per (chip, shape) and shared: do not modify it.
        """
        key = (chip, tuple(shape))
        if key not in self._wcs:
            sci = self.chips[chip - 1]["SCI"].copy()
            sci["NAXIS"], sci["NAXIS1"], sci["NAXIS2"] = 2, shape[1], shape[0]
            hdul = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(header=sci),
                                 *self.lookup_tables])
            self._wcs[key] = WCS(sci, hdul)
        return self._wcs[key]


def reference_cd(header: fits.Header) -> np.ndarray:
    """The CD matrix of a header's primary WCS."""
    return read_cd(header, "")


def read_cd(header: fits.Header, key: str) -> np.ndarray | None:
    """The CD matrix, shape (2, 2), of WCS ``key`` (``""`` primary), or None if incomplete."""
    names = [f"CD{i}_{j}{key}" for i in (1, 2) for j in (1, 2)]
    if not all(name in header for name in names):
        return None
    return np.array([float(header[name]) for name in names]).reshape(2, 2)


def write_cd(header: fits.Header, key: str, cd: np.ndarray) -> None:
    """Write a (2, 2) CD matrix as the ``CDi_j<key>`` cards of a header."""
    for i in (1, 2):
        for j in (1, 2):
            header[f"CD{i}_{j}{key}"] = float(cd[i - 1, j - 1])


def _move_wcs(header: fits.Header, rotation: SkyRotation, window: ChipWindow) -> float | None:
    """Rotate every WCS of a header and shift it to a window; return the ORIENTAT change."""
    turn = None
    for key in WCS_KEYS:
        if f"CRVAL1{key}" not in header or f"CRVAL2{key}" not in header:
            continue
        crval1, crval2 = float(header[f"CRVAL1{key}"]), float(header[f"CRVAL2{key}"])
        cd = read_cd(header, key)
        if cd is None:
            new1, new2 = rotation.apply(crval1, crval2)
            new_cd = None
        else:
            new1, new2, new_cd = rotation.transform_tan(crval1, crval2, cd)
            write_cd(header, key, new_cd)
            if key == "":
                turn = orientat_from_cd(new_cd) - orientat_from_cd(cd)
        header[f"CRVAL1{key}"], header[f"CRVAL2{key}"] = float(new1), float(new2)
        latpole = f"LATPOLE{key}"
        if latpole in header and np.isclose(float(header[latpole]), crval2):
            header[latpole] = float(new2)
        for axis, offset in ((1, window.x0), (2, window.y0)):
            if offset and f"CRPIX{axis}{key}" in header:
                header[f"CRPIX{axis}{key}"] = float(header[f"CRPIX{axis}{key}"]) - offset
    if turn is not None and "ORIENTAT" in header:
        header["ORIENTAT"] = orientat_from_cd(read_cd(header, ""))
    return turn


def _rename(header: fits.Header, old_root: str, new_root: str) -> None:
    """Replace the template rootname (and its 8-character prefix) in every string card."""
    pairs = [(old_root.lower(), new_root.lower()), (old_root.upper(), new_root.upper()),
             (old_root[:8].lower(), new_root[:8].lower())]
    for card in header.cards:
        if isinstance(card.value, str) and card.keyword not in ("", "COMMENT", "HISTORY"):
            value = card.value
            for old, new in pairs:
                value = value.replace(old, new)
            if value != card.value:
                header[card.keyword] = value


def _set_if_present(header: fits.Header, values: dict) -> None:
    for key, value in values.items():
        if key in header:
            header[key] = value


def _photometry(det: DetectorModel, filt: FilterModel, mjd: float, ccdchip) -> dict:
    """Photometric keywords of a filter (PHOTFLAM etc.)."""
    if det.instrument == "ACS" and det.detector == "WFC":
        # calacs writes the WFC1 mode in both chips' headers.
        mode = f"ACS WFC1 {filt.name} MJD#{mjd:.4f}"
    elif det.instrument == "ACS":
        mode = f"ACS {det.detector} {filt.name}"
    elif det.detector == "UVIS":
        mode = f"WFC3 UVIS{ccdchip or 1} {filt.name} MJD#{mjd:.4f}"
    else:
        mode = f"WFC3 IR {filt.name}"
    photflam = filt.photflam
    return {"PHOTMODE": mode, "PHOTFLAM": photflam, "PHTFLAM1": photflam,
            "PHTFLAM2": photflam * 1.0105, "PHTRATIO": 1.0105, "PHOTFNU": filt.photfnu,
            "PHOTZPT": -21.10, "PHOTPLAM": filt.pivot, "PHOTBW": filt.bandwidth}


def _filter_cards(det: DetectorModel, filt: FilterModel) -> dict:
    if det.instrument == "ACS":
        clear = dict(_ACS_CLEAR[det.detector])
        clear[filt.wheel] = filt.name
        return {"FILTER1": clear[1], "FILTER2": clear[2]}
    return {"FILTER": filt.name}


def _ir_readout(exptime: float) -> tuple[str, int]:
    """SAMP_SEQ and NSAMP of a WFC3/IR exposure of about ``exptime`` seconds."""
    return "SPARS25", int(np.clip(round(exptime / 25.0) + 1, 2, 16))


def _primary_header(template: InstrumentTemplate, det: DetectorModel, visit: VisitFacts,
                    spec: ExposureSpec, windows: list[ChipWindow], turn: float) -> fits.Header:
    hdr = template.primary.copy()
    start = Time(spec.expstart, format="mjd", scale="utc")
    date_obs, time_obs = start.isot.split("T")
    hdr["DATE"] = date_obs
    hdr["FILENAME"] = f"{spec.rootname}_{det.suffix}.fits"
    hdr["ROOTNAME"] = spec.rootname
    hdr["PRIMESI"] = det.instrument
    hdr["TARGNAME"] = visit.target_name
    hdr["RA_TARG"], hdr["DEC_TARG"] = visit.target
    hdr["PROPOSID"] = visit.proposal_id
    hdr["LINENUM"] = f"{visit.visit.upper()}.{spec.index + 1:03d}"
    hdr["DATE-OBS"], hdr["TIME-OBS"] = date_obs, time_obs[:8]
    hdr["EXPSTART"], hdr["EXPEND"], hdr["EXPTIME"] = spec.expstart, spec.expend, spec.exptime
    _set_if_present(hdr, {"DARKTIME": spec.exptime + 3.0, "TEXPTIME": spec.exptime,
                          "ASN_ID": "NONE", "ASN_TAB": "NONE", "ASN_MTYP": "NONE",
                          "MTFLAG": " ", "FGSLOCK": "FINE", "EXPFLAG": "NORMAL", "CRSPLIT": 1,
                          "NRPTEXP": 1, "PATTSTEP": spec.index + 1})
    hdr.update({"OBSTYPE": "IMAGING", "DRIZCORR": "PERFORM", "IMAGETYP": "EXT"})
    if "MTFLAG" not in hdr:
        hdr["MTFLAG"] = (" ", "moving target flag; T if it is a moving target")
    if det.instrument == "WFC3":
        hdr["SCAN_TYP"] = "N"
    if det.detector == "UVIS":
        hdr["CHINJECT"] = "NONE"
    if det.detector == "IR":
        hdr["SAMP_SEQ"], hdr["NSAMP"] = _ir_readout(spec.exptime)
    hdr.update(_filter_cards(det, spec.filter))
    _set_if_present(hdr, _photometry(det, spec.filter, spec.expstart, None))
    scale = det.pixel_scale
    hdr["POSTARG1"], hdr["POSTARG2"] = spec.dither[0] * scale, spec.dither[1] * scale
    hdr["PA_V3"] = (float(hdr.get("PA_V3", 0.0)) + turn) % 360.0
    hdr["SUBARRAY"] = any(w.is_subarray for w in windows)
    for line in visit.history:
        hdr.add_history(line)
    _rename(hdr, template.primary["ROOTNAME"].strip(), spec.rootname)
    return hdr


def _chip_headers(chip_template, det: DetectorModel, spec: ExposureSpec, window: ChipWindow,
                  old_root: str, date: str) -> tuple[dict[str, fits.Header], float | None]:
    headers, turn = {}, None
    for extname, template_header in chip_template.headers.items():
        hdr = template_header.copy()
        hdr.remove("MDRIZSKY", ignore_missing=True)
        moved = _move_wcs(hdr, spec.rotation, window)
        if extname == "SCI":
            turn = moved
            if "RA_APER" in hdr and "DEC_APER" in hdr:
                ra, dec = spec.rotation.apply(float(hdr["RA_APER"]), float(hdr["DEC_APER"]))
                hdr["RA_APER"], hdr["DEC_APER"] = float(ra), float(dec)
            _set_if_present(hdr, _photometry(det, spec.filter, spec.expstart,
                                             hdr.get("CCDCHIP")))
            _set_if_present(hdr, {"SAMPTIME": spec.exptime, "ROUTTIME": spec.expend,
                                  "SAMPNUM": _ir_readout(spec.exptime)[1] - 1})
        if moved is not None and "PA_APER" in hdr:
            hdr["PA_APER"] = float(hdr["PA_APER"]) + moved
        if extname in ("SCI", "ERR"):
            hdr["BUNIT"] = det.bunit
        hdr["DATE"] = date
        hdr["LTV1"], hdr["LTV2"] = float(-window.x0), float(-window.y0)
        if window.is_subarray:
            _set_if_present(hdr, {
                "SIZAXIS1": window.nx, "SIZAXIS2": window.ny,
                "CENTERA1": int(hdr.get("CENTERA1", 0)) - window.full_shape[1] // 2
                + window.x0 + window.nx // 2,
                "CENTERA2": int(hdr.get("CENTERA2", 0)) - window.full_shape[0] // 2
                + window.y0 + window.ny // 2,
            })
        _rename(hdr, old_root, spec.rootname)
        headers[extname] = hdr
    return headers, turn


def _lookup_owner(headers: list[fits.Header]) -> dict[tuple[str, int], int]:
    """Map each (EXTNAME, EXTVER) lookup table to the index of the header that uses it."""
    owner = {}
    for index, hdr in enumerate(headers):
        for extname, prefix in _LOOKUP_RECORDS:
            for axis in (1, 2):
                record = f"{prefix}{axis}.EXTVER"
                if record in hdr:
                    owner[(extname, int(hdr[record]))] = index
    return owner


def _shift_tables(tables, owner_windows: dict[tuple[str, int], ChipWindow]):
    """Copy lookup-table HDUs, offsetting their reference values to the owner's window."""
    shifted = []
    for hdu in tables:
        hdr = hdu.header.copy()
        window = owner_windows.get((hdu.name, hdu.ver))
        if window is not None and window.is_subarray:
            # astropy reads a table at (pixel - CRVAL) / CDELT + CRPIX: CRVAL carries LTV.
            hdr["CRVAL1"] = float(hdr.get("CRVAL1", 0.0)) - window.x0
            hdr["CRVAL2"] = float(hdr.get("CRVAL2", 0.0)) - window.y0
        shifted.append(fits.ImageHDU(hdu.data, hdr))
    return shifted


def _headerlet(hlet_template, spec: ExposureSpec, windows: list[ChipWindow], old_root: str):
    hlist = fits.HDUList([type(hdu)(data=hdu.data, header=hdu.header.copy())
                          for hdu in hlet_template.headerlet])
    _rename(hlist[0].header, old_root, spec.rootname)
    sipwcs = [hdu for hdu in hlist if hdu.name == "SIPWCS"]
    for hdu in sipwcs:
        window = windows[int(hdu.header.get("TG_EVER", hdu.ver)) - 1]
        _move_wcs(hdu.header, spec.rotation, window)
        _rename(hdu.header, old_root, spec.rootname)
    owner = _lookup_owner([hdu.header for hdu in sipwcs])
    owner_windows = {k: windows[int(sipwcs[i].header.get("TG_EVER", sipwcs[i].ver)) - 1]
                     for k, i in owner.items()}
    tables = [hdu for hdu in hlist if hdu.name in ("WCSDVARR", "D2IMARR")]
    shifted = iter(_shift_tables(tables, owner_windows))
    rebuilt = fits.HDUList([next(shifted) if hdu.name in ("WCSDVARR", "D2IMARR") else hdu
                            for hdu in hlist])
    ext_header = hlet_template.header.copy()
    _rename(ext_header, old_root, spec.rootname)
    return make_headerlet_hdu(rebuilt, ext_header)


def _wcscorr(table_hdu: fits.BinTableHDU, spec: ExposureSpec, windows: list[ChipWindow],
             old_root: str, turn: float) -> fits.BinTableHDU:
    data = table_hdu.data.copy()
    for row in data:
        if not str(row["WCS_ID"]).strip():
            continue
        cd = np.array([[row["CD1_1"], row["CD1_2"]], [row["CD2_1"], row["CD2_2"]]])
        if np.any(cd):
            ra, dec, new_cd = spec.rotation.transform_tan(row["CRVAL1"], row["CRVAL2"], cd)
            row["CRVAL1"], row["CRVAL2"] = ra, dec
            row["CD1_1"], row["CD1_2"], row["CD2_1"], row["CD2_2"] = new_cd.ravel()
            if row["ORIENTAT"] != 0.0:
                row["ORIENTAT"] = orientat_from_cd(new_cd)
        if row["PA_V3"] != 0.0:
            row["PA_V3"] = (row["PA_V3"] + turn) % 360.0
        chip = int(row["EXTVER"])
        if 1 <= chip <= len(windows):
            row["CRPIX1"] -= windows[chip - 1].x0
            row["CRPIX2"] -= windows[chip - 1].y0
        for name in ("WCS_ID", "HDRNAME", "SIPNAME", "NPOLNAME", "D2IMNAME"):
            row[name] = str(row[name]).replace(old_root, spec.rootname)
    return fits.BinTableHDU(data, table_hdu.header.copy())


def _s_region(wcs: WCS, shape: tuple[int, int]) -> str:
    ny, nx = shape
    corners_x = np.array([0.5, nx + 0.5, nx + 0.5, 0.5, 0.5])
    corners_y = np.array([0.5, 0.5, ny + 0.5, ny + 0.5, 0.5])
    ra, dec = wcs.all_pix2world(corners_x, corners_y, 1)
    return "POLYGON ICRS " + " ".join(f"{a:.10f} {d:.10f}" for a, d in zip(ra, dec))


def build_exposure_headers(template: InstrumentTemplate, det: DetectorModel, visit: VisitFacts,
                           spec: ExposureSpec, windows: list[ChipWindow], *,
                           keep_headerlet=None) -> ExposureHeaders:
    """Derive every header and non-pixel extension of one exposure from the template.

    Parameters
    ----------
    template : InstrumentTemplate
        The instrument's shipped template.
    det : DetectorModel
        Detector properties.
    visit : VisitFacts
        Visit-wide header facts.
    spec : ExposureSpec
        This exposure.
    windows : list of ChipWindow
        Read-out window of each chip, in SCI extension order.
    keep_headerlet : callable, optional
        ``keep_headerlet(extension_header) -> bool``: build only the template headerlets it
        accepts (default: all).

    Returns
    -------
    ExposureHeaders
    """
    old_root = template.primary["ROOTNAME"].strip()
    date = Time(spec.expstart, format="mjd", scale="utc").isot.split("T")[0]
    chips, turn = [], 0.0
    for chip_template, window in zip(template.chips, windows):
        headers, chip_turn = _chip_headers(chip_template, det, spec, window, old_root, date)
        chips.append(headers)
        if chip_turn is not None and chip_template.chip == 1:
            turn = chip_turn
    owner = _lookup_owner([c["SCI"] for c in chips])
    tables = _shift_tables(template.lookup_tables, {k: windows[i] for k, i in owner.items()})
    result = ExposureHeaders(
        primary=_primary_header(template, det, visit, spec, windows, turn),
        chips=chips,
        lookup_tables=tables,
        headerlets=[_headerlet(h, spec, windows, old_root) for h in template.headerlets
                    if keep_headerlet is None or keep_headerlet(h.header)],
        wcscorr=(_wcscorr(template.wcscorr, spec, windows, old_root, turn)
                 if template.wcscorr is not None else None),
    )
    set_s_regions(result, windows)
    return result


def set_s_regions(headers: ExposureHeaders, windows: list[ChipWindow]) -> None:
    """Write ``S_REGION`` (the chip outline through its full WCS) into every SCI header."""
    for index, window in enumerate(windows):
        headers.chips[index]["SCI"]["S_REGION"] = (
            _s_region(headers.chip_wcs(index + 1, window.shape), window.shape),
            "spatial extent of the chip on the sky")
