"""Reading calibrated exposures (FLT/FLC) into device-resident chips with their header facts.

Reading has two phases so that nothing big is allocated before the inputs are known to fit
together: :func:`inspect_exposure` reads only headers (exposure facts, every chip's WCS and
shape), :func:`load_pixels` then reads the pixel arrays onto the device. :func:`read_exposure`
does both.

Input problems fall in two kinds. A file that is missing, not a FITS file, truncated, or has a
header that cannot be used (no DQ for a chip, no WCS, no gain) raises
:class:`~hapgpu.errors.InvalidInputError` or :class:`~hapgpu.errors.WCSError` naming the file:
the user has to fix it. A readable file that cannot contribute to a product (exposure time not
positive, no science data, every pixel bad) raises
:class:`~hapgpu.errors.UnusableInputError`, which the pipeline turns into a warning and drops
the file, as AstroDrizzle drops zero-exposure inputs.

Non-finite science values are bad pixels: they are replaced by 0 on reading and recorded in
``Chip.finite``, which every stage ANDs into its good-pixel mask (weight 0).
"""

from __future__ import annotations

import bz2
import gzip
import logging
import lzma
import math
import re
import threading
import warnings
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .._fileid import file_identity_or_none
from ..errors import HapGpuError, InvalidInputError, UnusableInputError, WCSError

__all__ = [
    "Chip",
    "Exposure",
    "VisitCache",
    "check_input_path",
    "dq_good",
    "inspect_exposure",
    "load_pixels",
    "read_exposure",
]

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Chip:
    """One science chip of an exposure.

    Attributes
    ----------
    extver : int
        SCI extension version (chip number).
    naxis : (int, int)
        ``(ny, nx)`` from the SCI header.
    sci : array or None
        Science data as read (float32, native units), on the backend device; non-finite values
        replaced by 0. None until :func:`load_pixels`.
    dq : array or None
        Data-quality flags (uint16, ``resetbits`` already cleared), on the device.
    err : array or None
        ERR extension (float32, on the device) when a weighting needs it.
    finite : array or None
        Boolean mask (True = the SCI value was finite), on the device; None when every value
        was finite. Every stage treats the other pixels as bad (weight 0).
    n_nonfinite : int
        Number of non-finite SCI values found on reading.
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
    naxis: tuple
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
    sci: object = None
    dq: object = None
    err: object = None
    finite: object = None
    n_nonfinite: int = 0

    @property
    def shape(self) -> tuple[int, int]:
        """``(ny, nx)`` of the chip."""
        return tuple(int(n) for n in self.naxis)


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


# ----------------------------------------------------------------------------- file checks
_COMPRESSED = (  # (magic bytes, opener of the decompressed stream)
    (b"\x1f\x8b", gzip.open),
    (b"BZh", bz2.open),
    (b"\xfd7zXZ\x00", lzma.open),
)


def _leading_bytes(path: Path, n: int = 80) -> bytes:
    """The first ``n`` bytes of the file, decompressed when it is gzip, bzip2, xz or zip."""
    with open(path, "rb") as fh:
        head = fh.read(max(n, 8))
    for magic, opener in _COMPRESSED:
        if head.startswith(magic):
            with opener(path, "rb") as fh:
                return fh.read(n)
    if head.startswith(b"PK\x03\x04"):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if not names:
                return b""
            with archive.open(names[0]) as fh:
                return fh.read(n)
    return head[:n]


def check_input_path(path: Path) -> None:
    """Raise :class:`InvalidInputError` unless ``path`` is a readable file that starts like FITS.

    Tells a missing path, a directory, an empty file, an unreadable file, a broken compressed
    file and a file of another kind apart (a FITS file starts with the card ``SIMPLE  =``,
    FITS standard 4.0 section 4.4.1.1).
    """
    path = Path(path)
    if path.is_dir():
        raise InvalidInputError(f"{path}: is a directory, not a FITS file (give the exposure files "
                                f"in it, e.g. '{path / '*_fl?.fits'}')")
    if not path.exists():
        raise InvalidInputError(f"{path}: input file not found")
    if not path.is_file():
        raise InvalidInputError(f"{path}: not a regular file")
    try:
        head = _leading_bytes(path)
    except PermissionError as exc:
        raise InvalidInputError(f"{path}: cannot read the file ({exc.strerror})") from None
    except (OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile) as exc:
        raise InvalidInputError(f"{path}: corrupt compressed file ({exc})") from None
    if not head:
        raise InvalidInputError(f"{path}: empty file, not a FITS file")
    if not head.startswith(b"SIMPLE  ="):
        raise InvalidInputError(f"{path}: not a FITS file (it does not start with the FITS "
                                "card 'SIMPLE  =')")


def _first_sentence(exc) -> str:
    """An astropy message without its advice (the ``ignore_missing_simple`` or ``verify('fix')``
    hints), on one line."""
    text = str(exc).strip().splitlines()[0].strip() if str(exc).strip() else type(exc).__name__
    for advice in (". If ", ". Try ", ", fix it first"):
        text = text.split(advice)[0]
    return text.rstrip(".")


def _header_damage(message: str) -> str | None:
    """What an astropy warning says is broken in a header (None for a harmless warning).

    astropy opens a file whose extension header cannot be parsed by warning and dropping that
    extension and everything after it; binary bytes in a header are replaced by "?" with a
    warning. Either means the file is damaged.
    """
    if "Error validating header" in message:
        lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
        hdu = re.search(r"HDU #(\d+)", message)
        reason = _first_sentence(lines[1]) if len(lines) > 1 else "unreadable header"
        return f"extension {hdu.group(1)}: {reason}" if hdu else reason
    if "non-ASCII characters are present" in message:
        return "non-ASCII bytes in a header"
    return None


#: ``warnings.catch_warnings`` is process-wide and inputs are read on several host threads, so
#: opening a file (where astropy parses every header and reports damage as warnings) is serial.
_OPEN_LOCK = threading.Lock()


def _unparsed_damage(hdul, path: Path) -> str | None:
    """What stops astropy from reading the whole file, found from the file's own layout.

    astropy stops at a header it cannot parse (keeping the extensions before it) and reports
    it only by a warning, which cannot be captured reliably while other threads run; the
    layout says it too: the HDUs read end before the file does. Returns None for a complete
    file, and for a compressed one whose size astropy does not know.
    """
    size = getattr(hdul._file, "size", 0) or 0
    if not size:
        return None
    # the last HDU's own file info: HDUList.fileinfo would also re-serialise every header to
    # tell whether it was resized since the read (~0.1 s per exposure, and nothing changed)
    info = hdul[-1].fileinfo() or hdul.fileinfo(len(hdul) - 1)
    end = info["datLoc"] + info["datSpan"]
    if end > size:
        return "corrupt FITS file (truncated)"
    if end == size:
        return None
    from astropy.io import fits

    with open(path, "rb") as stream:
        stream.seek(end)
        text = stream.read(min(size - end, 2880 * 40)).decode("ascii", errors="replace")
    end_card = text.find("END" + " " * 77)
    reason = "unreadable header"
    try:
        for card in fits.Header.fromstring(text if end_card < 0 else text[:end_card + 80]).cards:
            card.value  # noqa: B018
    except (fits.VerifyError, ValueError) as exc:
        reason = _first_sentence(exc)
    return f"corrupt FITS header (extension {len(hdul)}: {reason})"


#: Files whose headers were all parsed without damage in this process, by
#: :func:`~hapgpu._fileid.file_identity_or_none` (most recent last); a file opened again
#: unchanged (the header pass of :func:`inspect_exposure`, then :func:`load_pixels`) skips the
#: card-by-card check.
_CHECKED: dict = {}
_CHECKED_MAX = 4096


@contextmanager
def _reading(path: Path):
    """Open ``path`` with astropy, turning every failure into an error naming the file.

    Every header is parsed on opening (astropy reports a damaged one with a warning, keeping
    only the extensions before it); a file shorter than its headers say is truncated. Both are
    errors here. A file already found sound by this process, and unchanged since (same inode,
    size and modification time), is not checked again.
    """
    from astropy.io import fits

    identity = file_identity_or_none(path)
    with _OPEN_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        checked = identity is not None and identity in _CHECKED
        try:
            hdul = fits.open(path, memmap=False, lazy_load_hdus=False)
        except (OSError, ValueError, EOFError) as exc:
            raise InvalidInputError(f"{path}: cannot read FITS file: {_first_sentence(exc)}") from None
        try:  # parse every card now, so that a damaged one is named whichever code reads it
            for hdu in () if checked else hdul:
                for card in hdu.header.cards:
                    card.value  # noqa: B018
        except fits.VerifyError as exc:
            hdul.close()
            raise InvalidInputError(f"{path}: bad FITS header: {_first_sentence(exc)}") from exc
    if not checked:
        damage = _unparsed_damage(hdul, path)
        warned = [d for d in (_header_damage(str(w.message)) for w in caught) if d]
        if damage is None and warned:  # e.g. binary bytes in a header, or a compressed file
            damage = f"corrupt FITS header ({warned[0]})"
        if damage is not None:
            hdul.close()
            raise InvalidInputError(f"{path}: {damage}")
        if identity is not None and identity == file_identity_or_none(path):
            with _OPEN_LOCK:
                _CHECKED[identity] = True
                while len(_CHECKED) > _CHECKED_MAX:
                    del _CHECKED[next(iter(_CHECKED))]
    try:
        with hdul:
            yield hdul
    except fits.VerifyError as exc:  # a card that cannot be parsed
        raise InvalidInputError(f"{path}: bad FITS header: {_first_sentence(exc)}") from exc
    except (OSError, TypeError, KeyError, ValueError, IndexError, EOFError) as exc:
        if isinstance(exc, HapGpuError):
            raise
        raise InvalidInputError(f"{path}: corrupt FITS file: {_first_sentence(exc)}") from exc


# ----------------------------------------------------------------------------- header facts
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
        raise WCSError(f"{path}[SCI,{extver}]: cannot build the WCS: {_first_sentence(exc)}") from exc
    if wcs.wcs.cd is None or not np.all(np.isfinite(wcs.wcs.crval)) or not np.all(np.isfinite(wcs.wcs.cd)):
        raise WCSError(f"{path}[SCI,{extver}]: the WCS has no finite CRVAL/CD")
    return wcs


def _exposure_time(primary, path: Path, params) -> float:
    """The exposure time (s); :class:`UnusableInputError` when it is missing or not positive."""
    if params.exptime is not None:
        return float(params.exptime)
    key = params.expkeyword
    if key not in primary:
        raise UnusableInputError(f"{path}: no {key} keyword (exposure time unknown)")
    value = primary[key]
    try:
        exptime = float(value)
    except (TypeError, ValueError):
        raise UnusableInputError(f"{path}: {key} = {value!r} is not a number") from None
    if not math.isfinite(exptime) or exptime <= 0.0:
        raise UnusableInputError(f"{path}: exposure time must be positive, got {key} = {value!r}")
    return exptime


def _exposure_facts(primary, path: Path, params) -> dict:
    exptime = _exposure_time(primary, path, params)
    gain = params.gain if params.gain is not None else _average_keywords(primary, params.gnkeyword)
    rdnoise = params.rdnoise if params.rdnoise is not None else _average_keywords(primary, params.rnkeyword)
    if gain is None or rdnoise is None:
        raise InvalidInputError(
            f"{path}: gain/read-noise keywords ({params.gnkeyword}; {params.rnkeyword}) not found; "
            "give gain= and rdnoise=")

    def mjd(key):
        try:
            value = float(primary.get(key, 0.0))
        except (TypeError, ValueError):
            raise InvalidInputError(f"{path}: {key} = {primary.get(key)!r} is not a number") from None
        return value if math.isfinite(value) else 0.0

    return {
        "exptime": exptime, "gain": float(gain), "rdnoise": float(rdnoise),
        "instrument": str(primary.get("INSTRUME", "")).strip().upper(),
        "detector": str(primary.get("DETECTOR", "")).strip().upper(),
        "expstart": mjd("EXPSTART"),
        "expend": mjd("EXPEND"),
    }


def _science_extvers(hdul, path: Path) -> list[int]:
    """EXTVERs of the SCI extensions holding a 2-D image (UnusableInputError if none)."""
    extvers = sorted({int(h.ver) for h in hdul if h.name == "SCI"})
    if not extvers:
        raise UnusableInputError(f"{path}: no SCI extension (not a calibrated FLT/FLC exposure)")
    with_data = []
    for extver in extvers:
        header = hdul["SCI", extver].header
        if header.get("NAXIS", 0) == 2 and header.get("NAXIS1", 0) > 0 and header.get("NAXIS2", 0) > 0:
            with_data.append(extver)
        else:
            log.warning("%s[SCI,%d]: no 2-D image data; chip ignored", path.name, extver)
    if not with_data:
        raise UnusableInputError(f"{path}: no SCI extension holds 2-D image data")
    return with_data


#: Keywords that the pipeline itself writes into an input's SCI headers (MDRIZSKY); a header
#: that differs from an earlier reading only in them still describes the same WCS.
_PIPELINE_KEYWORDS = frozenset({"MDRIZSKY"})


def _cards(header, skip=frozenset()) -> list:
    return [(c.keyword, str(c.value)) for c in header.cards if c.keyword not in skip]


def _same_wcs_source(previous: Chip, header, primary, previous_primary) -> bool:
    """Whether a chip's SCI and primary headers equal an earlier reading's, apart from the
    keywords the pipeline writes (so the WCS built from the earlier reading is this one)."""
    return (_cards(previous.header, _PIPELINE_KEYWORDS) == _cards(header, _PIPELINE_KEYWORDS)
            and _cards(previous_primary) == _cards(primary))


def _chip_from_header(hdul, extver: int, path: Path, facts: dict, previous: Chip | None = None,
                      previous_primary=None) -> Chip:
    header = hdul["SCI", extver].header.copy()
    bunit = str(header.get("BUNIT", "ELECTRONS/S"))
    if "ergs" in bunit:  # flux-calibrated units: AstroDrizzle assumes electrons/s
        bunit = "ELECTRONS/S"
    in_units = "cps" if "/s" in bunit.lower() else "counts"
    if previous is not None and _same_wcs_source(previous, header, hdul[0].header, previous_primary):
        wcs, wcslin_pscale = previous.wcs, previous.wcslin_pscale
    else:
        wcs = _chip_wcs(hdul, extver, path)
        wcslin_pscale = _wcslin_pscale(wcs)
    sky = header.get("MDRIZSKY")
    try:
        sky = None if sky is None else float(sky)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{path}[SCI,{extver}]: MDRIZSKY = {sky!r} is not a number") from None
    if sky is not None and not math.isfinite(sky):
        log.warning("%s[SCI,%d]: MDRIZSKY = %r ignored", path.name, extver, sky)
        sky = None
    return Chip(
        extver=extver, naxis=(int(header["NAXIS2"]), int(header["NAXIS1"])), wcs=wcs,
        header=header, bunit=bunit, in_units=in_units,
        conversion_factor=facts["exptime"] if in_units == "cps" else 1.0,
        gain=facts["gain"], rdnoise=facts["rdnoise"], wcslin_pscale=wcslin_pscale,
        idcscale=float(wcs.idcscale) if getattr(wcs, "idcscale", None) else wcslin_pscale,
        cte_dir=_cte_dir(facts["instrument"], facts["detector"], extver, hdul[0].header),
        exptime=facts["exptime"],
        computed_sky=sky,
        subtracted_sky=0.0 if sky is None else sky,
    )


def inspect_exposure(path, params) -> Exposure:
    """Read one FLT/FLC file's headers: exposure facts and every chip's WCS, no pixel data.

    Parameters
    ----------
    path : str or pathlib.Path
        Calibrated exposure (FITS, optionally gzip/bzip2/xz/zip compressed).
    params : AstroDrizzleParameters
        Supplies the instrument keyword and override parameters (``expkeyword``, ``exptime``,
        ``gnkeyword``, ``gain``, ...).

    Returns
    -------
    Exposure
        Chips with ``naxis``, header, WCS and scales; ``sci``/``dq``/``err`` are None.

    Raises
    ------
    InvalidInputError
        Missing path, a directory, not a FITS file, corrupt or truncated file, unusable header
        values (no gain/read-noise keywords).
    UnusableInputError
        No SCI extension with image data, exposure time missing, not finite or not positive.
    WCSError
        A chip's WCS cannot be built.
    """
    path = Path(path)
    check_input_path(path)
    return _inspect(path, params)


def _inspect(path: Path, params, previous: Exposure | None = None) -> Exposure:
    """:func:`inspect_exposure` of a checked path; chip WCSs are taken from ``previous`` (an
    earlier reading of the same file) where the headers show they are the same."""
    with _reading(path) as hdul:
        primary = hdul[0].header.copy()
        extvers = _science_extvers(hdul, path)
        facts = _exposure_facts(primary, path, params)
        known = {c.extver: c for c in previous.chips} if previous is not None else {}
        chips = [_chip_from_header(hdul, v, path, facts, known.get(v),
                                   None if previous is None else previous.primary_header) for v in extvers]
    stem = path.name.split(".")[0]
    suffix = stem.rsplit("_", 1)[-1].lower() if "_" in stem else "flt"
    rootname = str(primary.get("ROOTNAME", stem.rsplit("_", 1)[0])).strip().lower()
    return Exposure(path=path, rootname=rootname, instrument=facts["instrument"],
                    detector=facts["detector"], exptime=facts["exptime"],
                    expstart=facts["expstart"], expend=facts["expend"],
                    primary_header=primary, chips=chips, suffix=suffix)


# ----------------------------------------------------------------------------- pixel data
@dataclass(eq=False)
class _ChipPixels:
    """The pixel arrays of one chip as read from its file (on the device).

    ``dq`` is the file's DQ (uint16) before ``resetbits`` is applied, so that calls with
    different ``resetbits`` can share it.
    """

    sci: object
    dq: object
    err: object
    finite: object
    n_nonfinite: int

    @property
    def nbytes(self) -> int:
        return sum(int(getattr(a, "nbytes", 0)) for a in (self.sci, self.dq, self.err, self.finite))


def _read_dq(hdul, extver: int, path: Path, shape) -> np.ndarray:
    if ("DQ", extver) not in hdul or hdul["DQ", extver].data is None:
        raise InvalidInputError(f"{path}: missing DQ extension for chip {extver}")
    dq = np.asarray(hdul["DQ", extver].data)
    if dq.shape != tuple(shape):
        raise InvalidInputError(f"{path}: DQ and SCI of chip {extver} differ in shape")
    if dq.dtype.kind in "iu":  # integer flags: C casting wraps modulo 2**16 (-1 -> 65535)
        return dq.astype(np.uint16)
    return dq.astype(np.int64).astype(np.uint16)  # scaled (float) DQ: truncate, then wrap


def _read_chip_pixels(hdul, chip: Chip, path: Path, backend, want_err: bool) -> _ChipPixels:
    extver = chip.extver
    sci = hdul["SCI", extver].data
    if sci is None or sci.ndim != 2:
        raise InvalidInputError(f"{path}[SCI,{extver}]: no 2-D image data")
    if tuple(sci.shape) != chip.shape:
        raise InvalidInputError(f"{path}[SCI,{extver}]: data shape {sci.shape} differs from the header's")
    if ("DQ", extver) not in hdul or hdul["DQ", extver].data is None:
        raise InvalidInputError(f"{path}: missing DQ extension for chip {extver}")
    sci = np.array(sci, dtype=np.float32)  # a native-order copy that this function may change
    finite = np.isfinite(sci)
    n_bad = int(finite.size - np.count_nonzero(finite))
    if n_bad:
        sci[~finite] = 0.0
    dq = _read_dq(hdul, extver, path, sci.shape)
    err = None
    if want_err:
        if ("ERR", extver) not in hdul or hdul["ERR", extver].data is None:
            raise InvalidInputError(f"{path}: final_wht_type='ERR' needs an ERR extension for chip {extver}")
        err = backend.asarray(np.asarray(hdul["ERR", extver].data, dtype=np.float32))
    return _ChipPixels(sci=backend.asarray(sci), dq=backend.asarray(dq), err=err,
                       finite=backend.asarray(finite) if n_bad else None, n_nonfinite=n_bad)


def _assign_pixels(chip: Chip, pixels: _ChipPixels, resetbits: int, want_err: bool) -> None:
    """Point ``chip`` at the (shared, never modified) arrays; its DQ gets ``resetbits`` cleared."""
    chip.sci = pixels.sci
    chip.dq = pixels.dq & np.uint16(~int(resetbits) & 0xFFFF)
    chip.err = pixels.err if want_err else None
    chip.finite = pixels.finite
    chip.n_nonfinite = pixels.n_nonfinite


def _check_loaded(exposure: Exposure, backend, usable_bits, check_usable: bool) -> None:
    """Log the non-finite pixels once per file; refuse an exposure without a usable pixel."""
    counts = [(c.extver, c.n_nonfinite) for c in exposure.chips if c.n_nonfinite]
    if counts:
        log.warning("%s: %d non-finite science pixel(s) (%s) treated as bad pixels (weight 0)",
                    exposure.name, sum(n for _, n in counts),
                    ", ".join(f"SCI,{v}: {n}" for v, n in counts))
    if check_usable and not any(_any_usable(chip, usable_bits, backend.xp) for chip in exposure.chips):
        bits = "any DQ value" if usable_bits is None else f"DQ bits {usable_bits}"
        raise UnusableInputError(f"{exposure.path}: every pixel is bad (non-finite, or DQ flags outside the "
                                 f"good bits; good: {bits})")


def _read_pixels(exposure: Exposure, backend, want_err: bool) -> list[_ChipPixels]:
    with _reading(exposure.path) as hdul:
        return [_read_chip_pixels(hdul, chip, exposure.path, backend, want_err) for chip in exposure.chips]


def load_pixels(exposure: Exposure, backend, params, *, want_err: bool = False,
                usable_bits: int | None = None, check_usable: bool = False) -> Exposure:
    """Read the SCI, DQ (and ERR) arrays of an inspected exposure onto the device.

    Non-finite SCI values become 0 and are recorded in ``Chip.finite`` (logged once per file).

    Parameters
    ----------
    exposure : Exposure
        From :func:`inspect_exposure`; its chips are filled in place.
    backend : hapgpu.Backend
        Device for the pixel arrays.
    params : AstroDrizzleParameters
        Supplies ``resetbits``.
    want_err : bool
        Also read the ERR arrays (ERR weighting).
    usable_bits : int or None
        DQ bits treated as good when judging whether the exposure can contribute.
    check_usable : bool
        Raise :class:`UnusableInputError` when no pixel of any chip is finite and good under
        ``usable_bits``.

    Returns
    -------
    Exposure
        The same object.

    Raises
    ------
    InvalidInputError
        Missing DQ (or ERR) extension, shapes that disagree, corrupt or truncated data.
    UnusableInputError
        With ``check_usable``: every pixel is bad.
    """
    for chip, pixels in zip(exposure.chips, _read_pixels(exposure, backend, want_err)):
        _assign_pixels(chip, pixels, params.resetbits, want_err)
    _check_loaded(exposure, backend, usable_bits, check_usable)
    return exposure


def _any_usable(chip: Chip, bits, xp) -> bool:
    good = dq_good(chip.dq, bits, xp)
    if chip.finite is not None:
        good = good & chip.finite
    return bool(good.any())


# ----------------------------------------------------------------------------- visit cache
def _signature(path: Path) -> tuple:
    """What identifies one state of a file: device, inode, size, modification time (ns)."""
    st = path.stat()
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _facts_key(params) -> tuple:
    """The parameters that :func:`inspect_exposure` reads (exposure time, gain, read noise)."""
    return (params.expkeyword, params.exptime, params.gnkeyword, params.gain, params.rnkeyword,
            params.rdnoise)


def _copy_exposure(template: Exposure, path: Path) -> Exposure:
    """A new Exposure (own headers, own chips) from a cached one; WCS objects are shared."""
    chips = [replace(chip, header=chip.header.copy()) for chip in template.chips]
    return replace(template, path=path, primary_header=template.primary_header.copy(), chips=chips)


@dataclass(eq=False)
class _CachedExposure:
    signature: tuple
    facts_key: tuple
    exposure: Exposure                 # as inspected; copies are handed out
    params: object                     # the parameters it was inspected with
    pixels: list | None = None         # _ChipPixels per chip
    backend: object = None             # where the pixels live
    with_err: bool = False


class VisitCache:
    """Exposures read by one ``astrodrizzle()`` call, kept for the later calls of a visit.

    The SVM drizzles every filter, exposure and total product of a visit from the same input
    files; with a ``VisitCache`` passed as ``astrodrizzle(..., visit=cache)`` each file's
    headers, chip WCSs and pixel arrays (SCI, DQ before ``resetbits``, ERR, the non-finite
    mask) are read once and held on the backend's device. Every call gets its own Exposure and
    Chip objects (its own headers, sky values, DQ with its own ``resetbits`` cleared) pointing
    at the shared arrays, which no stage modifies.

    A cached reading is used only while the file is in the state it was read in (same device,
    inode, size and modification time); any other change reads the file again. When a call
    writes cosmic-ray flags and MDRIZSKY into an input (``update_inputs_dq=True``),
    :meth:`updated` takes the DQ arrays and MDRIZSKY values it wrote (or, when the cache did
    not hold the file as it was just before the write, re-reads that file's headers and DQ
    arrays; SCI and ERR, which the update leaves alone, are kept) so that the next call sees
    the new flags and sky, exactly as a fresh reading would; chip WCSs are rebuilt only when
    the headers changed apart from MDRIZSKY. Counters: ``n_header_reads``, ``n_pixel_reads``
    and ``n_memory_updates`` (updates taken from the values written).

    Parameters
    ----------
    max_bytes : int, optional
        Most bytes of pixel arrays kept (default: no limit); exposures beyond it keep only
        their headers and WCSs and are read again by each call.

    Notes
    -----
    Memory: about 7 bytes per input pixel (float32 SCI, uint16 DQ, bool mask when some SCI
    values are not finite; 4 more with ERR) on the backend's device, for every exposure of the
    visit, until the cache is dropped.
    """

    def __init__(self, max_bytes: int | None = None):
        self.max_bytes = max_bytes
        self._entries: dict[Path, _CachedExposure] = {}
        self._lock = threading.Lock()
        self.n_header_reads = 0
        self.n_pixel_reads = 0
        self.n_memory_updates = 0

    def __repr__(self) -> str:
        return (f"VisitCache({len(self._entries)} files, {self.nbytes} bytes of pixels, "
                f"max_bytes={self.max_bytes})")

    @property
    def nbytes(self) -> int:
        """Bytes of pixel arrays held."""
        return sum(p.nbytes for e in list(self._entries.values()) for p in (e.pixels or ()))

    @staticmethod
    def _key(path: Path) -> Path:
        return Path(path).resolve()

    def clear(self) -> None:
        """Forget every file (frees the pixel arrays)."""
        with self._lock:
            self._entries.clear()

    def inspect(self, path, params) -> Exposure:
        """:func:`inspect_exposure`, from the cache when the file has not changed."""
        path = Path(path)
        check_input_path(path)
        key, signature = self._key(path), _signature(path)
        entry = self._entries.get(key)
        if entry is None or entry.signature != signature or entry.facts_key != _facts_key(params):
            exposure = _inspect(path, params)
            entry = _CachedExposure(signature, _facts_key(params), exposure, params)
            with self._lock:
                self._entries[key] = entry
                self.n_header_reads += 1
        return _copy_exposure(entry.exposure, path)

    def load(self, exposure: Exposure, backend, params, *, want_err: bool = False,
             usable_bits: int | None = None, check_usable: bool = False) -> Exposure:
        """:func:`load_pixels`, from the cache when the file has not changed."""
        entry = self._entries.get(self._key(exposure.path))
        if entry is not None and entry.signature != _signature(exposure.path):
            entry = None
        if (entry is not None and entry.pixels is not None and entry.backend.name == backend.name
                and (entry.with_err or not want_err)):
            pixels = entry.pixels
        else:
            pixels = _read_pixels(exposure, backend, want_err)
            with self._lock:
                self.n_pixel_reads += 1
                size = sum(p.nbytes for p in pixels)
                if entry is not None and (self.max_bytes is None or self.nbytes + size <= self.max_bytes):
                    entry.pixels, entry.backend, entry.with_err = pixels, backend, want_err
        for chip, chip_pixels in zip(exposure.chips, pixels):
            _assign_pixels(chip, chip_pixels, params.resetbits, want_err)
        _check_loaded(exposure, backend, usable_bits, check_usable)
        return exposure

    def current(self, path) -> bool:
        """Whether the cached reading of ``path`` is of the file as it is now (same device,
        inode, size and modification time)."""
        entry = self._entries.get(self._key(path))
        try:
            return entry is not None and entry.signature == _signature(Path(path))
        except OSError:
            return False

    def updated(self, path, dq_arrays=None, skies=None) -> None:
        """Take in an update of ``path``'s DQ arrays and SCI headers written by the pipeline.

        Parameters
        ----------
        path : str or pathlib.Path
            The updated input.
        dq_arrays : list of numpy.ndarray, optional
            The DQ array written into each chip (chip order, any integer dtype whose values
            are stored as 16-bit flags), with ``skies`` the MDRIZSKY written into each SCI
            header (None: not written). Give them only when the cached reading was
            :meth:`current` just before the write and the write changed nothing else: the
            cache then updates itself from them (the MDRIZSKY card goes through FITS text, as
            a reading of the file gives it) instead of reading the file again.

        Notes
        -----
        Without ``dq_arrays``, re-reads the headers and the DQ arrays. Either way SCI, ERR and
        the non-finite masks are kept. A file that cannot be read again is forgotten (the next
        call reads it afresh).
        """
        key = self._key(path)
        entry = self._entries.get(key)
        if entry is None:
            return
        path = Path(path)
        if dq_arrays is not None:
            self._updated_from(key, entry, path, dq_arrays, skies)
            return
        try:
            signature = _signature(path)
            fresh = _inspect(path, entry.params, previous=entry.exposure)
            pixels = entry.pixels
            same_chips = [(c.extver, c.shape) for c in fresh.chips] == \
                [(c.extver, c.shape) for c in entry.exposure.chips]
            if pixels is not None and not same_chips:
                pixels = None
            if pixels is not None:
                with _reading(path) as hdul:
                    pixels = [replace(p, dq=entry.backend.asarray(_read_dq(hdul, c.extver, path, c.shape)))
                              for c, p in zip(fresh.chips, pixels)]
        except (HapGpuError, OSError):
            with self._lock:
                self._entries.pop(key, None)
            return
        with self._lock:
            self.n_header_reads += 1
            self._entries[key] = replace(entry, signature=signature, exposure=fresh, pixels=pixels)

    def _updated_from(self, key, entry: _CachedExposure, path: Path, dq_arrays, skies) -> None:
        """:meth:`updated` from the values written (no reading of the file)."""
        from astropy.io import fits

        chips = entry.exposure.chips
        skies = [None] * len(chips) if skies is None else list(skies)
        if len(dq_arrays) != len(chips) or len(skies) != len(chips):
            with self._lock:
                self._entries.pop(key, None)
            return
        try:
            signature = _signature(path)
        except OSError:
            with self._lock:
                self._entries.pop(key, None)
            return
        new_chips = []
        for chip, sky in zip(chips, skies):
            header = chip.header.copy()
            if sky is not None:
                card = fits.Card("MDRIZSKY", sky, "Sky value computed by AstroDrizzle")
                header["MDRIZSKY"] = (fits.Card.fromstring(card.image).value, card.comment)
                value = float(header["MDRIZSKY"])
                if math.isfinite(value):
                    chip = replace(chip, computed_sky=value, subtracted_sky=value)
                else:
                    chip = replace(chip, computed_sky=None, subtracted_sky=0.0)
            new_chips.append(replace(chip, header=header))
        exposure = replace(entry.exposure, chips=new_chips)
        pixels = entry.pixels
        if pixels is not None:
            # as _read_dq gives the file's int16 DQ back: the same 16 bits, as uint16
            pixels = [replace(p, dq=entry.backend.asarray(np.asarray(dq).astype(np.uint16)))
                      for p, dq in zip(pixels, dq_arrays)]
        with self._lock:
            self.n_memory_updates += 1
            self._entries[key] = replace(entry, signature=signature, exposure=exposure, pixels=pixels)


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
        Missing or unreadable file, not a FITS file, no DQ extension.
    UnusableInputError
        No SCI extension with data, exposure time missing or not positive.
    WCSError
        A chip's WCS cannot be built.
    """
    return load_pixels(inspect_exposure(path, params), backend, params, want_err=want_err)
