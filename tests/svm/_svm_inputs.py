"""Small crafted exposures for the SVM input tests (poller, viability filter, sorting).

The files carry just the primary keywords drizzlepac's poller reading and ``analyze_data``
read, per instrument, and tiny SCI/ERR/DQ arrays; :func:`write_exposure` makes one with any
keyword changed (``None`` removes it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

#: Primary keywords common to every instrument.
_COMMON = {
    "PROPOSID": 11665, "TARGNAME": "NGC-104", "EXPTIME": 100.0, "EXPSTART": 55611.02,
    "DATE-OBS": "2011-02-19", "DRIZCORR": "PERFORM", "FGSLOCK": "FINE", "IMAGETYP": "EXT",
}
_PER_INSTRUMENT = {
    "WFC3": {"DETECTOR": "UVIS", "OBSTYPE": "IMAGING", "MTFLAG": "", "SCAN_TYP": "N",
             "FILTER": "F555W", "CHINJECT": "NONE", "SUBARRAY": False, "APERTURE": "UVIS"},
    "ACS": {"DETECTOR": "WFC", "OBSTYPE": "IMAGING", "MTFLAG": "", "FILTER1": "F606W",
            "FILTER2": "CLEAR2L", "SUBARRAY": False, "APERTURE": "WFC"},
    "WFPC2": {"MTFLAG": False, "FILTNAM1": "F555W", "FILTNAM2": ""},
}


def write_exposure(path, instrument: str = "WFC3", *, n_chips: int = 2, fill=1.0,
                   photflam: float = 1.5e-19, primary_photflam: float | None = None,
                   **keywords) -> Path:
    """Write a crafted exposure and return its path.

    ``fill`` is the value of every SCI pixel (a sequence gives one per chip); keyword
    arguments override primary keywords (``SCAN_TYP`` is spelled ``SCAN_TYP``; a keyword with
    a dash, like ``DATE-OBS``, goes through ``extra={...}``); None removes a keyword.
    """
    path = Path(path)
    primary = fits.Header()
    primary["INSTRUME"] = instrument
    values = {**_COMMON, **_PER_INSTRUMENT[instrument], "ROOTNAME": path.name.split("_")[0]}
    if primary_photflam is not None:
        values["PHOTFLAM"] = primary_photflam
    values.update(keywords.pop("extra", {}))
    values.update(keywords)
    for key, value in values.items():
        if value is not None:
            primary[key] = value
    fills = list(fill) if isinstance(fill, (list, tuple)) else [fill] * n_chips
    hdus = [fits.PrimaryHDU(header=primary)]
    for chip, value in enumerate(fills, start=1):
        sci = fits.ImageHDU(np.full((6, 5), value, dtype=np.float32), name="SCI", ver=chip)
        sci.header["PHOTFLAM"] = photflam
        hdus += [sci, fits.ImageHDU(np.ones((6, 5), np.float32), name="ERR", ver=chip),
                 fits.ImageHDU(np.zeros((6, 5), np.int16), name="DQ", ver=chip)]
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def write_poller(path, lines) -> Path:
    """Write poller lines (sequences of fields joined with commas, or strings)."""
    path = Path(path)
    text = [line if isinstance(line, str) else ",".join(str(f) for f in line) for line in lines]
    path.write_text("\n".join(text) + "\n")
    return path
