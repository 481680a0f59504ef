"""Build the header templates shipped in ``hapgpu/data/templates`` from real HST files.

This is a maintenance tool, run once by a developer; the package itself only reads its output.
The sample exposures carry full real headers but 10x10 placeholder (or empty) pixels. Where
their own ``WCSDVARR``/``D2IMARR`` extensions are 10x10 placeholders too (the WFC3 samples), the
full-size lookup tables are taken from the headerlet (``HDRLET`` extension) that carries the
same distortion model; where they are real (the ACS/WFC header sample) they are kept.

Each template is one gzip-compressed FITS file holding, in order:

* the primary header;
* per chip the SCI, ERR and DQ headers (and SAMP, TIME for WFC3/IR), without data;
* the ``WCSDVARR`` and ``D2IMARR`` lookup tables at their real size (where the detector has them);
* every ``HDRLET`` extension and the ``WCSCORR`` table, unchanged.

Run as::

    python -m hapgpu.simulate._build_templates /path/to/shared/data/hst hapgpu/data/templates \
        [--only acs-wfc]
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from ..errors import InvalidInputError
from ._hdrlet import make_headerlet_hdu, open_headerlet

__all__ = ["TemplateSource", "TEMPLATE_SOURCES", "build_template", "build_templates"]

log = logging.getLogger(__name__)

# Cards copied from a SCI header into a derived ERR/DQ header (HRC sample has neither).
_DERIVED_CARDS = (
    "INHERIT", "ROOTNAME", "EXPNAME", "WCSAXES", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2",
    "CTYPE1", "CTYPE2", "CD1_1", "CD1_2", "CD2_1", "CD2_2", "LTV1", "LTV2", "LTM1_1", "LTM2_2",
    "ORIENTAT", "RA_APER", "DEC_APER", "PA_APER", "VAFACTOR", "WCSNAME", "RADESYS",
)


@dataclass(frozen=True)
class TemplateSource:
    """Where one instrument template comes from.

    Parameters
    ----------
    key : str
        Instrument key (``wfc3-uvis``, ``wfc3-ir``, ``acs-hrc``, ``acs-wfc``).
    filename : str
        Sample exposure the headers are taken from.
    output : str
        Template file name written in the output folder.
    per_chip_extnames : tuple of str
        Extensions written per chip, SCI first.
    """

    key: str
    filename: str
    output: str
    per_chip_extnames: tuple[str, ...]


TEMPLATE_SOURCES = (
    TemplateSource("wfc3-uvis", "sample_ipppssoot_flc.fits", "wfc3_uvis.fits.gz",
                   ("SCI", "ERR", "DQ")),
    TemplateSource("wfc3-ir", "sample_ipppssoot_flt.fits", "wfc3_ir.fits.gz",
                   ("SCI", "ERR", "DQ", "SAMP", "TIME")),
    TemplateSource("acs-hrc", "j8bt06nyq_sip_flt.fits", "acs_hrc.fits.gz",
                   ("SCI", "ERR", "DQ")),
    TemplateSource("acs-wfc", "acs_wfc_sample_flc_header.fits", "acs_wfc.fits.gz",
                   ("SCI", "ERR", "DQ")),
)
# Lookup tables at most this many values are placeholders of a cut-out sample file.
_PLACEHOLDER_SIZE = 100


def _headerless(header: fits.Header) -> fits.Header:
    """Return ``header`` without the structural cards of its original data array."""
    out = header.copy()
    for key in ("XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "PCOUNT", "GCOUNT"):
        out.remove(key, ignore_missing=True, remove_all=True)
    return out


def _derived_header(sci: fits.Header, extname: str, bunit: str) -> fits.Header:
    """Build an ERR or DQ header from a SCI header: linear WCS only, as calibration writes it."""
    out = fits.Header()
    out["EXTNAME"] = extname
    out["EXTVER"] = sci.get("EXTVER", 1)
    for key in _DERIVED_CARDS:
        if key in sci:
            out[key] = (sci[key], sci.comments[key])
    out["BUNIT"] = bunit
    for key in ("CTYPE1", "CTYPE2"):
        if key in out:
            out[key] = str(out[key]).replace("-SIP", "")
    return out


def _lookup_refs(sci: fits.Header) -> list[tuple[str, int]]:
    """Return the (EXTNAME, EXTVER) of each lookup table a SCI header's primary WCS refers to."""
    refs = []
    for prefix, extname in (("DP", "WCSDVARR"), ("D2IM", "D2IMARR")):
        for axis in (1, 2):
            key = f"{prefix}{axis}.EXTVER"
            if key in sci:
                refs.append((extname, int(sci[key])))
    return refs


def _full_size_tables(source: fits.HDUList) -> dict[tuple[str, int], fits.ImageHDU]:
    """Return the real-size lookup tables found in the headerlet of the active distortion model."""
    tables: dict[tuple[str, int], fits.ImageHDU] = {}
    for hdu in source:
        if hdu.name != "HDRLET":
            continue
        hlet = open_headerlet(hdu)
        found = {(h.name, h.ver): h for h in hlet if h.name in ("WCSDVARR", "D2IMARR")}
        if found and (not tables or max(h.data.size for h in found.values())
                      > max(h.data.size for h in tables.values())):
            tables = {k: fits.ImageHDU(h.data.astype(np.float32), h.header.copy())
                      for k, h in found.items()}
    return tables


def build_template(source_dir: Path, spec: TemplateSource) -> fits.HDUList:
    """Assemble the template HDU list of one instrument from its sample file."""
    path = Path(source_dir) / spec.filename
    with fits.open(path) as src:
        src.readall()
        out = fits.HDUList([fits.PrimaryHDU(header=_headerless(src[0].header))])
        n_chips = sum(1 for h in src if h.name == "SCI")
        refs: list[tuple[str, int]] = []
        for chip in range(1, n_chips + 1):
            sci = src["SCI", chip].header
            refs += _lookup_refs(sci)
            for extname in spec.per_chip_extnames:
                if (extname, chip) in src:
                    header = _headerless(src[extname, chip].header)
                else:
                    bunit = "UNITLESS" if extname == "DQ" else str(sci.get("BUNIT", ""))
                    header = _derived_header(sci, extname, bunit)
                out.append(fits.ImageHDU(header=header))
        if refs:
            own = {(h.name, h.ver): fits.ImageHDU(h.data.astype(np.float32), h.header.copy())
                   for h in src if h.name in ("WCSDVARR", "D2IMARR")
                   and h.data is not None and h.data.size > _PLACEHOLDER_SIZE}
            tables = own if all(ref in own for ref in refs) else _full_size_tables(src)
            for ref in refs:
                if ref not in tables:
                    raise InvalidInputError(f"{path.name}: no full-size {ref[0]},{ref[1]} table")
                out.append(tables[ref])
        for hdu in src:
            if hdu.name == "HDRLET":
                out.append(make_headerlet_hdu(open_headerlet(hdu), hdu.header))
            elif hdu.name == "WCSCORR":
                out.append(fits.BinTableHDU(hdu.data.copy(), hdu.header.copy()))
    return out


def build_templates(source_dir: Path, out_dir: Path, keys=None) -> list[Path]:
    """Build the templates of :data:`TEMPLATE_SOURCES` (those of ``keys``); return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in TEMPLATE_SOURCES:
        if keys is not None and spec.key not in keys:
            continue
        target = out_dir / spec.output
        build_template(source_dir, spec).writeto(target, overwrite=True, output_verify="fix")
        log.info("wrote %s (%d bytes)", target, target.stat().st_size)
        written.append(target)
    return written


def _main(argv: list[str] | None = None) -> None:  # pragma: no cover - maintenance tool
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--only", nargs="+", metavar="KEY",
                        choices=[spec.key for spec in TEMPLATE_SOURCES],
                        help="build only these instruments' templates")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    build_templates(args.source_dir, args.out_dir, args.only)


if __name__ == "__main__":  # pragma: no cover
    _main()
