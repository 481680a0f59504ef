"""Reading calibrated exposures (FLT/FLC) into device-resident chips with their header facts."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import HapGpuError, InvalidInputError, WCSError

__all__ = ["Chip", "Exposure", "read_exposure", "dq_good"]

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Chip:
    """One science chip of an exposure.

    Attributes
    ----------
    extver : int
        SCI extension version (chip number).
    sci : array
        Science data as read (float32, native units), on the backend device.
    dq : array
        Data-quality flags (uint16, ``resetbits`` already cleared), on the device.
    err : array or None
        ERR extension (float32, on the device) when a weighting needs it.
    wcs : stwcs.wcsutil.HSTWCS
        Full (distorted) WCS.
    header : astropy.io.fits.Header
        SCI header.
    bunit : str
        BUNIT of the data.
    in_units : {"counts", "cps"}
        Whether the data are counts (no "/s" in BUNIT) or count rates.
    conversion_factor : float
        Multiplier to electrons (1 for counts, exptime for rates).
    gain, rdnoise : float
        Mean non-zero ATODGN*/READNSE* values (or the user overrides).
    wcslin_pscale : float
        Pixel scale (arcsec) of the chip's undistorted linear frame.
    idcscale : float
        IDCSCALE of the distortion model (arcsec).
    cte_dir : int
        Readout direction for the CTE grow: -1, 0 or +1.
    exptime : float
        Exposure time of the exposure the chip belongs to (s).
    computed_sky : float or None
        Sky subtracted on the fly by drizzle and added back by blot (MDRIZSKY).
    subtracted_sky : float
        Sky value used by the noise models (MDRIZSKY, or 0).
    """

    extver: int
    sci: object
    dq: object
    err: object
    wcs: object
    header: object
    bunit: str
    in_units: str
    conversion_factor: float
    gain: float
    rdnoise: float
    wcslin_pscale: float
    idcscale: float
    cte_dir: int
    exptime: float = 1.0
    computed_sky: float | None = None
    subtracted_sky: float = 0.0
    eff_gain: float = 1.0

    @property
    def shape(self) -> tuple[int, int]:
        """``(ny, nx)`` of the chip."""
        return tuple(int(n) for n in self.sci.shape)


@dataclass(eq=False)
class Exposure:
    """One input file: its chips and the exposure-level header facts."""

    path: Path
    rootname: str
    instrument: str
    detector: str
    exptime: float
    expstart: float
    expend: float
    primary_header: object
    chips: list[Chip] = field(default_factory=list)
    suffix: str = "flt"

    @property
    def name(self) -> str:
        """File name without folder (for messages and header keywords)."""
        return self.path.name


def dq_good(dq, bits, xp):
    """Boolean good-pixel mask: ``(dq & ~bits) == 0``; every pixel when ``bits`` is None."""
    if bits is None:
        return xp.ones(dq.shape, dtype=bool)
    return (dq & np.uint16(~int(bits) & 0xFFFF)) == 0


def _average_keywords(header, keywords: str):
    """Mean of the non-zero values of comma-separated header keywords (None if one is missing)."""
    values = []
    for key in keywords.split(","):
        key = key.strip()
        if not key:
            continue
        if key not in header:
            return None
        values.append(float(header[key]))
    nonzero = [v for v in values if v != 0.0]
    return sum(nonzero) / len(nonzero) if nonzero else 0.0


def _cte_dir(instrument: str, detector: str, extver: int, primary) -> int:
    if (instrument, detector) in (("ACS", "WFC"), ("WFC3", "UVIS")):
        return {1: -1, 2: 1}.get(extver, 0)
    if (instrument, detector) == ("ACS", "HRC"):
        amp = str(primary.get("CCDAMP", "")).strip().upper()
        return 1 if amp in ("A", "B") else -1 if amp in ("C", "D") else 0
    return 0


def _wcslin_pscale(wcs) -> float:
    from stwcs.distortion import utils as dist_utils

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(dist_utils.output_wcs([wcs], undistort=True).pscale)


def _chip_wcs(hdul, extver: int, path: Path):
    from stwcs.wcsutil import HSTWCS

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcs = HSTWCS(hdul, ext=("SCI", extver))
    except Exception as exc:  # stwcs raises many types for broken headers
        raise WCSError(f"{path}[SCI,{extver}]: cannot build the WCS: {exc}") from exc
    if not np.all(np.isfinite(wcs.wcs.crval)) or wcs.wcs.cd is None:
        raise WCSError(f"{path}[SCI,{extver}]: the WCS has no finite CRVAL/CD")
    return wcs


def _read_chip(hdul, extver: int, path: Path, facts: dict, backend, params, want_err: bool) -> Chip:
    sci_hdu = hdul["SCI", extver]
    if sci_hdu.data is None or sci_hdu.data.ndim != 2:
        raise InvalidInputError(f"{path}[SCI,{extver}]: no 2-D image data")
    if ("DQ", extver) not in hdul or hdul["DQ", extver].data is None:
        raise InvalidInputError(f"{path}: missing DQ extension for chip {extver}")
    sci = np.asarray(sci_hdu.data, dtype=np.float32)
    if not np.all(np.isfinite(sci)):
        raise InvalidInputError(f"{path}[SCI,{extver}]: non-finite science values")
    dq = np.asarray(hdul["DQ", extver].data)
    if dq.shape != sci.shape:
        raise InvalidInputError(f"{path}: DQ and SCI of chip {extver} differ in shape")
    dq = dq.astype(np.int64).astype(np.uint16) & np.uint16(~int(params.resetbits) & 0xFFFF)
    err = None
    if want_err:
        if ("ERR", extver) not in hdul:
            raise InvalidInputError(f"{path}: final_wht_type='ERR' needs an ERR extension for chip {extver}")
        err = backend.asarray(np.asarray(hdul["ERR", extver].data, dtype=np.float32))
    header = sci_hdu.header.copy()
    bunit = str(header.get("BUNIT", "ELECTRONS/S"))
    if "ergs" in bunit:  # flux-calibrated units: AstroDrizzle assumes electrons/s
        bunit = "ELECTRONS/S"
    in_units = "cps" if "/s" in bunit.lower() else "counts"
    wcs = _chip_wcs(hdul, extver, path)
    wcslin_pscale = _wcslin_pscale(wcs)
    sky = header.get("MDRIZSKY")
    return Chip(
        extver=extver, sci=backend.asarray(sci), dq=backend.asarray(dq), err=err, wcs=wcs,
        header=header, bunit=bunit, in_units=in_units,
        conversion_factor=facts["exptime"] if in_units == "cps" else 1.0,
        gain=facts["gain"], rdnoise=facts["rdnoise"], wcslin_pscale=wcslin_pscale,
        idcscale=float(wcs.idcscale) if getattr(wcs, "idcscale", None) else wcslin_pscale,
        cte_dir=_cte_dir(facts["instrument"], facts["detector"], extver, hdul[0].header),
        exptime=facts["exptime"],
        computed_sky=None if sky is None else float(sky),
        subtracted_sky=0.0 if sky is None else float(sky),
    )


def _exposure_facts(primary, path: Path, params) -> dict:
    exptime = params.exptime if params.exptime is not None else primary.get(params.expkeyword)
    try:
        exptime = float(exptime)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{path}: no usable {params.expkeyword} keyword") from None
    if not exptime > 0:
        raise InvalidInputError(f"{path}: exposure time must be positive, got {exptime}")
    gain = params.gain if params.gain is not None else _average_keywords(primary, params.gnkeyword)
    rdnoise = params.rdnoise if params.rdnoise is not None else _average_keywords(primary, params.rnkeyword)
    if gain is None or rdnoise is None:
        raise InvalidInputError(
            f"{path}: gain/read-noise keywords ({params.gnkeyword}; {params.rnkeyword}) not found; "
            "give gain= and rdnoise=")
    return {
        "exptime": exptime, "gain": float(gain), "rdnoise": float(rdnoise),
        "instrument": str(primary.get("INSTRUME", "")).strip().upper(),
        "detector": str(primary.get("DETECTOR", "")).strip().upper(),
        "expstart": float(primary.get("EXPSTART", 0.0)),
        "expend": float(primary.get("EXPEND", 0.0)),
    }


def _read_file(path: Path, backend, params, want_err: bool):
    from astropy.io import fits

    try:
        hdul = fits.open(path, memmap=False)
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path}: cannot read FITS file: {exc}") from exc
    with hdul:
        try:
            extvers = sorted({int(h.ver) for h in hdul if h.name == "SCI"})
            if not extvers:
                raise InvalidInputError(f"{path}: no SCI extension")
            primary = hdul[0].header.copy()
            facts = _exposure_facts(primary, path, params)
            chips = [_read_chip(hdul, v, path, facts, backend, params, want_err) for v in extvers]
        except (OSError, TypeError, KeyError, ValueError) as exc:  # truncated or corrupt data
            if isinstance(exc, HapGpuError):
                raise
            raise InvalidInputError(f"{path}: corrupt FITS file: {exc}") from exc
    return primary, facts, chips


def read_exposure(path, backend, params, *, want_err: bool = False) -> Exposure:
    """Read one FLT/FLC file: every SCI chip to the device, with DQ, WCS and header facts.

    Parameters
    ----------
    path : str or pathlib.Path
        Calibrated exposure.
    backend : hapgpu.Backend
        Device for the pixel arrays.
    params : AstroDrizzleParameters
        Supplies ``resetbits`` and the instrument keyword/override parameters.
    want_err : bool
        Also read the ERR arrays (ERR weighting).

    Returns
    -------
    Exposure

    Raises
    ------
    InvalidInputError
        Missing or unreadable file, no SCI or DQ extension, non-positive exposure time.
    WCSError
        A chip's WCS cannot be built.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{path}: input file not found")
    error = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            primary, facts, chips = _read_file(path, backend, params, want_err)
        except HapGpuError as exc:
            error = exc
    if any("truncated" in str(w.message) for w in caught):
        raise InvalidInputError(f"{path}: corrupt FITS file (truncated)") from error
    if error is not None:
        raise error
    stem = path.name.split(".")[0]
    suffix = stem.rsplit("_", 1)[-1].lower() if "_" in stem else "flt"
    rootname = str(primary.get("ROOTNAME", stem.rsplit("_", 1)[0])).strip().lower()
    return Exposure(path=path, rootname=rootname, instrument=facts["instrument"],
                    detector=facts["detector"], exptime=facts["exptime"],
                    expstart=facts["expstart"], expend=facts["expend"],
                    primary_header=primary, chips=chips, suffix=suffix)
