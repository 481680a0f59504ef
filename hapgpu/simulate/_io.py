"""File output of the simulator: exposures, truth masks, catalogues, poller and list files.

Every file is written under a temporary name in its final folder and renamed when complete,
so a crash never leaves a truncated file under a real name.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from ..kernels.render import good_pixel_statistics
from ._detector import ChipArrays
from ._headers import ExposureHeaders

__all__ = ["atomic_path", "write_exposure", "write_crmask", "write_table", "write_text",
           "poller_line"]

# Per-chip extensions beyond SCI/ERR/DQ (WFC3/IR) and how to fill them.
_IR_EXTRA = ("SAMP", "TIME")


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _statistics(sci: np.ndarray, err: np.ndarray, dq: np.ndarray, sdq: int) -> dict:
    """Image statistics keywords of calibrated data (good pixels only)."""
    values = good_pixel_statistics(sci, err, dq, np.int16(sdq & 0x7FFF))
    keys = ("NGOODPIX", "GOODMIN", "GOODMAX", "GOODMEAN", "SNRMIN", "SNRMAX", "SNRMEAN")
    return {key: (int(v) if key == "NGOODPIX" else float(v)) for key, v in zip(keys, values)}


def _chip_hdus(headers: dict[str, fits.Header], arrays: ChipArrays, exptime: float,
               nsamp: int) -> list[fits.ImageHDU]:
    sci_header = headers["SCI"]
    stats = _statistics(arrays.sci, arrays.err, arrays.dq, int(sci_header.get("SDQFLAGS", 31743)))
    data = {"SCI": arrays.sci, "ERR": arrays.err, "DQ": arrays.dq,
            "SAMP": np.full(arrays.sci.shape, nsamp, dtype=np.int16),
            "TIME": np.full(arrays.sci.shape, exptime, dtype=np.float32)}
    hdus = []
    for extname, header in headers.items():
        header = header.copy()
        for key, value in stats.items():
            if key in header:
                header[key] = value
        hdus.append(fits.ImageHDU(data[extname], header, name=extname))
    return hdus


def write_exposure(path: Path, headers: ExposureHeaders, chips: list[ChipArrays],
                   exptime: float) -> None:
    """Write a calibrated multi-extension exposure (FLT/FLC).

    Extensions, in order: PRIMARY; SCI, ERR, DQ (and SAMP, TIME for WFC3/IR) per chip;
    WCSDVARR and D2IMARR lookup tables; HDRLET headerlets; WCSCORR.
    """
    nsamp = int(headers.primary.get("NSAMP", 1))
    hdus: list = [fits.PrimaryHDU(header=headers.primary.copy())]
    for chip_headers, arrays in zip(headers.chips, chips):
        hdus += _chip_hdus(chip_headers, arrays, exptime, nsamp)
    hdus += [fits.ImageHDU(t.data, t.header.copy()) for t in headers.lookup_tables]
    hdus += list(headers.headerlets)
    if headers.wcscorr is not None:
        hdus.append(fits.BinTableHDU(headers.wcscorr.data, headers.wcscorr.header.copy()))
    hdul = fits.HDUList(hdus)
    hdul[0].header["NEXTEND"] = len(hdul) - 1
    with atomic_path(path) as tmp:
        hdul.writeto(tmp, output_verify="silentfix")


def write_crmask(path: Path, primary: fits.Header, chips: list[ChipArrays],
                 n_hits: list[int]) -> None:
    """Write the cosmic-ray truth mask: one uint8 ``CRMASK`` image per chip, EXTVER = chip."""
    head = fits.Header()
    for key in ("ROOTNAME", "INSTRUME", "DETECTOR", "FILTER", "FILTER1", "FILTER2", "EXPTIME"):
        if key in primary:
            head[key] = primary[key]
    head["COMMENT"] = "Cosmic-ray truth mask written by hapgpu.simulate: 1 = charge deposited"
    hdus = [fits.PrimaryHDU(header=head)]
    for chip, (arrays, hits) in enumerate(zip(chips, n_hits), start=1):
        hdu = fits.ImageHDU(arrays.crmask, name="CRMASK", ver=chip)
        hdu.header["NCRHITS"] = (hits, "cosmic rays that crossed the chip")
        hdu.header["CRFRAC"] = (float(arrays.crmask.mean()), "fraction of pixels hit")
        hdus.append(hdu)
    with atomic_path(path) as tmp:
        fits.HDUList(hdus).writeto(tmp)


def write_table(path: Path, table: Table) -> None:
    """Write an astropy table as ECSV."""
    with atomic_path(path) as tmp:
        table.write(tmp, format="ascii.ecsv")


def write_text(path: Path, lines: list[str]) -> None:
    """Write lines of text, each terminated by a newline."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{line}\n" for line in lines))


def poller_line(path: Path, primary: fits.Header) -> str:
    """One row of an 8-column SVM poller file for an exposure.

    Columns: filename, proposal id, program id (``ppp``, upper case), obset id (``ss``),
    exposure time, filters (``;``-separated, as in the headers), detector, full path.
    """
    rootname = primary["ROOTNAME"].strip()
    if primary["INSTRUME"].strip() == "ACS":
        filters = f"{primary['FILTER1'].strip()};{primary['FILTER2'].strip()}"
    else:
        filters = primary["FILTER"].strip()
    return ",".join([
        Path(path).name, str(int(primary["PROPOSID"])), rootname[1:4].upper(),
        rootname[4:6].upper(), f"{float(primary['EXPTIME'])}", filters,
        primary["DETECTOR"].strip().upper(), str(Path(path).resolve()),
    ])
