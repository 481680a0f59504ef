"""Header templates of real HST exposures, shipped in ``hapgpu/data/templates``.

A template holds everything of a real calibrated exposure except its pixels: the primary
header, the per-chip extension headers (SCI, ERR, DQ, and SAMP, TIME for WFC3/IR) with their real
SIP coefficients, the lookup-table distortion (``WCSDVARR``, ``D2IMARR``) at its real size, every
headerlet (``HDRLET``) and the ``WCSCORR`` table. See :mod:`hapgpu.simulate._build_templates`
for how they were made.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

from astropy.io import fits

from ..errors import InvalidParameterError
from ._hdrlet import open_headerlet

__all__ = ["ChipTemplate", "HeaderletTemplate", "InstrumentTemplate", "load_template"]

_TEMPLATE_FILES = {
    "wfc3-uvis": "wfc3_uvis.fits.gz",
    "wfc3-ir": "wfc3_ir.fits.gz",
    "acs-hrc": "acs_hrc.fits.gz",
    "acs-wfc": "acs_wfc.fits.gz",
}
_STRUCTURAL = ("XTENSION", "SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "PCOUNT",
               "GCOUNT", "EXTEND")


@dataclass(frozen=True)
class ChipTemplate:
    """Headers of one chip, keyed by EXTNAME (``SCI`` first), without structural cards."""

    chip: int
    headers: dict[str, fits.Header]

    @property
    def sci(self) -> fits.Header:
        """The SCI header."""
        return self.headers["SCI"]


@dataclass(frozen=True)
class HeaderletTemplate:
    """One ``HDRLET`` extension: its extension header and the embedded headerlet."""

    header: fits.Header
    headerlet: fits.HDUList


@dataclass(frozen=True)
class InstrumentTemplate:
    """All non-pixel content of a real exposure of one instrument/detector.

    Attributes
    ----------
    key : str
        Instrument key, e.g. ``"wfc3-uvis"``.
    primary : astropy.io.fits.Header
        Primary header.
    chips : tuple of ChipTemplate
        Per-chip headers, in file order (SCI,1 first).
    lookup_tables : tuple of astropy.io.fits.ImageHDU
        ``WCSDVARR`` and ``D2IMARR`` extensions at their real size (empty for SIP-only detectors).
    headerlets : tuple of HeaderletTemplate
        The ``HDRLET`` extensions in file order.
    wcscorr : astropy.io.fits.BinTableHDU or None
        The ``WCSCORR`` table.
    """

    key: str
    primary: fits.Header
    chips: tuple[ChipTemplate, ...]
    lookup_tables: tuple[fits.ImageHDU, ...]
    headerlets: tuple[HeaderletTemplate, ...]
    wcscorr: fits.BinTableHDU | None

    @property
    def n_chips(self) -> int:
        """Number of chips (SCI extensions)."""
        return len(self.chips)


def _strip(header: fits.Header) -> fits.Header:
    out = header.copy()
    for key in _STRUCTURAL:
        out.remove(key, ignore_missing=True, remove_all=True)
    return out


@functools.cache
def _read_template(key: str) -> InstrumentTemplate:
    name = _TEMPLATE_FILES[key]
    with resources.as_file(resources.files("hapgpu") / "data" / "templates" / name) as path:
        with fits.open(path) as hdul:
            hdul.readall()
            primary = _strip(hdul[0].header)
            per_chip: dict[int, dict[str, fits.Header]] = {}
            tables, hlets, wcscorr = [], [], None
            for hdu in hdul[1:]:
                if hdu.name in ("WCSDVARR", "D2IMARR"):
                    tables.append(fits.ImageHDU(hdu.data.copy(), hdu.header.copy()))
                elif hdu.name == "HDRLET":
                    hlets.append(HeaderletTemplate(hdu.header.copy(), open_headerlet(hdu)))
                elif hdu.name == "WCSCORR":
                    wcscorr = fits.BinTableHDU(hdu.data.copy(), hdu.header.copy())
                else:
                    per_chip.setdefault(hdu.ver, {})[hdu.name] = _strip(hdu.header)
    chips = tuple(ChipTemplate(chip, headers) for chip, headers in sorted(per_chip.items()))
    return InstrumentTemplate(key, primary, chips, tuple(tables), tuple(hlets), wcscorr)


def load_template(instrument: str) -> InstrumentTemplate:
    """Return the shipped header template of ``instrument``.

    Parameters
    ----------
    instrument : {"wfc3-uvis", "wfc3-ir", "acs-hrc", "acs-wfc"}
        Instrument/detector key.

    Returns
    -------
    InstrumentTemplate
        A cached, shared object: copy headers before changing them.

    Raises
    ------
    InvalidParameterError
        For an unknown instrument key.
    """
    if instrument not in _TEMPLATE_FILES:
        raise InvalidParameterError(
            f"unknown instrument {instrument!r}; choose one of {', '.join(_TEMPLATE_FILES)}"
        )
    return _read_template(instrument)
