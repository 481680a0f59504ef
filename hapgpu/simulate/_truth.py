"""Read back the truth of a simulated visit: the pointings table and each chip's true WCS."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from ..errors import InvalidInputError, InvalidParameterError

__all__ = ["read_pointings", "true_wcs"]

_TRUE_CARDS = ("CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CD1_1", "CD1_2", "CD2_1", "CD2_2")


def _outdir(visit) -> Path:
    outdir = getattr(visit, "outdir", visit)
    try:
        return Path(outdir)
    except TypeError:
        raise InvalidParameterError(
            f"visit must be a VisitResult or the visit's folder, got {visit!r}") from None


def read_pointings(visit) -> Table:
    """Return ``truth/pointings.ecsv`` of a simulated visit.

    Parameters
    ----------
    visit : VisitResult, str or pathlib.Path
        The result of :func:`~hapgpu.simulate.simulate_visit`, or its output folder.

    Returns
    -------
    astropy.table.Table
        One row per exposure and chip; columns described in the table's ``comment`` meta.

    Raises
    ------
    InvalidInputError
        If the folder has no pointings table.
    """
    path = _outdir(visit) / "truth" / "pointings.ecsv"
    if not path.is_file():
        raise InvalidInputError(f"{path}: no pointings table (not a simulated visit folder?)")
    return Table.read(path, format="ascii.ecsv")


def true_wcs(visit, rootname: str, chip: int = 1, *, hstwcs: bool = False):
    """The true WCS of one chip of a simulated exposure, the one its pixels were rendered with.

    The header WCS may carry a known error (``simulate_visit(wcs_error=...)``); the error only
    changes the reference value and CD matrix, so the true WCS is the file's SCI header with
    ``CRPIX``, ``CRVAL`` and ``CD`` taken from ``truth/pointings.ecsv``, keeping the file's
    SIP coefficients and NPOL/D2IM lookup tables.

    Parameters
    ----------
    visit : VisitResult, str or pathlib.Path
        The result of :func:`~hapgpu.simulate.simulate_visit`, or its output folder.
    rootname : str
        Rootname of the exposure (``ipppssoot``).
    chip : int
        SCI extension version (1-based).
    hstwcs : bool
        Return an ``stwcs.wcsutil.HSTWCS`` instead of an ``astropy.wcs.WCS``.

    Returns
    -------
    astropy.wcs.WCS or stwcs.wcsutil.HSTWCS
        The full distorted WCS (SIP, NPOL, D2IM); ``pixel_shape`` is the chip's (nx, ny).

    Raises
    ------
    InvalidParameterError
        If the table has no row for (rootname, chip).
    InvalidInputError
        If the exposure file or the pointings table is missing.
    """
    outdir = _outdir(visit)
    table = read_pointings(outdir)
    rows = table[(table["rootname"] == str(rootname).strip().lower()) & (table["chip"] == chip)]
    if len(rows) != 1:
        raise InvalidParameterError(
            f"{outdir / 'truth' / 'pointings.ecsv'}: no row for rootname {rootname!r}, "
            f"chip {chip!r}")
    row = rows[0]
    path = outdir / str(row["filename"])
    if not path.is_file():
        raise InvalidInputError(f"{path}: exposure file not found")
    with fits.open(path) as hdul:
        sci = hdul["SCI", chip].header.copy()
        hdus = [fits.PrimaryHDU(header=hdul[0].header.copy())]
        hdus += [fits.ImageHDU(np.array(h.data), h.header.copy())
                 for h in hdul if h.name in ("WCSDVARR", "D2IMARR")]
    shape = (int(sci["NAXIS1"]), int(sci["NAXIS2"]))
    for card in _TRUE_CARDS:
        sci[card] = float(row[card.lower()])
    if "LATPOLE" in sci:
        sci["LATPOLE"] = float(row["crval2"])
    sci["WCSNAME"] = str(row["true_wcsname"])
    true = fits.HDUList([hdus[0], fits.ImageHDU(header=sci, name="SCI", ver=chip), *hdus[1:]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy's FITSFixedWarning on HST headers
        if hstwcs:
            from stwcs.wcsutil import HSTWCS

            wcs = HSTWCS(true, ext=("SCI", chip))
        else:
            wcs = WCS(sci, true)
    wcs.pixel_shape = shape
    return wcs
