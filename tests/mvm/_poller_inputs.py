"""Simulated exposures and MVM pollers for the MVM poller, layer and poller-file tests.

:func:`make_exposures` simulates (``hapgpu.simulate``, 64x64 subarrays, no noise) a WFC3/UVIS
visit (two F555W FLC exposures of 500 s and 300 s, 60 pixels apart, so that the first one
straddles the sky cells x10 and x11 of projection cell 1889), a WFC3/IR visit (two F160W FLT
exposures) and an ACS/HRC exposure; :func:`svm_copy` makes an SVM-named copy
(``hst_<propid>_<obset>_<instr>_<det>_<filter>_<ipppssoo>_fl[tc].fits``), as MVM pollers list;
:func:`mvm_line` gives one poller line. The session fixture :func:`exposures` simulates them
once per session (``conftest.exposures``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from astropy.io import fits

#: Projection cell 1889 pixel (214586, 120000): the UVIS exposures straddle the start of
#: sky-cell column x = 11 (as in tests/skycells/test_search.py).
TARGET = (180.1292228877669, 24.831850764995686)
CELL = "skycell-p1889x10y06"
OTHER_CELL = "skycell-p1889x11y06"
_DETECTOR = {"UVIS": "uvis", "IR": "ir", "HRC": "hrc", "WFC": "wfc"}


def make_exposures(folder: Path) -> dict[str, Path]:
    """Simulate the visits; keys ``uvis0``, ``uvis1`` (FLC, 500 s and 300 s), ``ir0``, ``ir1`` (FLT),
    ``hrc0`` (ACS/HRC)."""
    from hapgpu.simulate import simulate_visit

    common = {"shape": (64, 64), "target": TARGET, "noise": False, "cosmic_rays": False,
              "defects": False, "star_density": 1.0, "galaxy_density": 0.0}
    uvis = simulate_visit(folder / "uvis", "wfc3-uvis", 2, filters=["F555W"],
                          exptime=[500.0, 300.0], dither_pixels=60, **common)
    ir = simulate_visit(folder / "ir", "wfc3-ir", 2, filters=["F160W"], visit="02", **common)
    hrc = simulate_visit(folder / "hrc", "acs-hrc", 1, visit="03", **common)
    out = {}
    for prefix, visit in (("uvis", uvis), ("ir", ir), ("hrc", hrc)):
        for i, exposure in enumerate(visit.exposures):
            out[f"{prefix}{i}"] = Path(exposure.path)
    return out


def filter_name(header) -> str:
    """The poller's filters field (upper case, clear filters dropped) of a primary header."""
    from hapgpu.svm import determine_filter_name

    if "FILTER" in header:
        return header["FILTER"]
    return determine_filter_name(f"{header['FILTER1']};{header['FILTER2']}").upper()


def svm_name(path: Path, suffix: str | None = None) -> str:
    """The SVM name of a pipeline-named exposure (``hst_17001_01_wfc3_uvis_f555w_isim01a0_flc.fits``)."""
    header = fits.getheader(path)
    filt = filter_name(header).lower()
    root = path.name.split("_")[0]
    suffix = suffix or path.name.split("_")[1]
    return (f"hst_{header['PROPOSID']}_{root[4:6]}_{header['INSTRUME'].lower()}_"
            f"{_DETECTOR[header['DETECTOR']]}_{filt}_{root[:8]}_{suffix}")


def svm_copy(path: Path, folder: Path, *, suffix: str | None = None, **keywords) -> Path:
    """An SVM-named copy of ``path`` in ``folder`` (``suffix`` ``flt.fits`` renames an FLC as an
    FLT); keyword arguments set primary keywords of the copy."""
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / svm_name(path, suffix)
    shutil.copyfile(path, copy)
    if keywords:
        with fits.open(copy, mode="update") as hdul:
            for key, value in keywords.items():
                hdul[0].header[key] = value
    return copy


def mvm_line(path: Path, *, cell: str = CELL, flag: str = "NEW", pathname: str | None = None) -> str:
    """The MVM poller line of an SVM-named exposure."""
    header = fits.getheader(path)
    root = path.name.split("_")[-2]
    return ",".join([path.name, str(header["PROPOSID"]), root[1:4].upper(), root[4:6],
                     str(header["EXPTIME"]), filter_name(header), header["DETECTOR"], cell, flag,
                     pathname if pathname is not None else str(path)])


def write_mvm_poller(path: Path, lines) -> Path:
    """Write poller ``lines`` (strings), newline-terminated."""
    path.write_text("\n".join(lines) + "\n")
    return path
