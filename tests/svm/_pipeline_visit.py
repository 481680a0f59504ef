"""A small simulated SVM visit for the pipeline tests: WFC3/UVIS 2 filters x 2 exposures and
WFC3/IR 2 exposures in one 8-column poller.

The simulator names the exposures of each call ``<i><ppp><ss>a0q`` onwards, so the IR files are
renamed (``...b0q``, ROOTNAME updated) to give one visit with six distinct exposures.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from astropy.io import fits

from hapgpu.simulate import simulate_visit

#: Expected product names of :func:`make_visit`'s poller (drizzlepac's names, written out).
BASE = "hst_17001_01_wfc3_"


def make_visit(root, *, uvis_shape=(96, 96), ir_shape=(48, 48), ir=True, seed=3) -> Path:
    """Simulate the visit under ``root``; return the poller (``root/visit/visit.out``)."""
    root = Path(root)
    folder = root / "visit"
    uvis = simulate_visit(folder, "wfc3-uvis", 4, filters=["F555W", "F814W"], shape=uvis_shape,
                          seed=seed)
    lines = uvis.poller.read_text().splitlines()
    if ir:
        ir_visit = simulate_visit(root / "ir", "wfc3-ir", 2, filters=["F160W"], shape=ir_shape,
                                  seed=seed + 1)
        for record in ir_visit.exposures:
            rootname = record.rootname[:6] + "b" + record.rootname[7:]
            dest = folder / f"{rootname}_flt.fits"
            shutil.copyfile(record.path, dest)
            with fits.open(dest, mode="update") as hdul:
                hdul[0].header["ROOTNAME"] = rootname
                hdul[0].header["FILENAME"] = dest.name
            lines.append(f"{dest.name},17001,SIM,01,{record.exptime},F160W,IR,{dest.resolve()}")
    poller = folder / "visit.out"
    poller.write_text("\n".join(lines) + "\n")
    return poller


def file_hashes(folder) -> dict:
    """SHA-256 of every FITS file in ``folder`` (to show the inputs are never modified)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).glob("*.fits"))}


def expected_manifest(ir: bool = True) -> list[str]:
    """The manifest of the visit of :func:`make_visit`, in drizzlepac's order.

    The IR exposures (352.94 s) sort before the UVIS ones (400 s), so IR is the first detector.
    """
    names = []
    if ir:
        names += [f"{BASE}ir_f160w_isim01_drz.fits", f"{BASE}ir_f160w_isim01_trl.txt"]
        for exp in ("isim01b0", "isim01b1"):
            names += [f"{BASE}ir_f160w_{exp}_drz.fits", f"{BASE}ir_f160w_{exp}_flt.fits",
                      f"{BASE}ir_f160w_{exp}_trl.txt"]
        names += [f"{BASE}ir_total_isim01_drz.fits", f"{BASE}ir_total_isim01_trl.txt"]
    for filt, exps in (("f555w", ("isim01a0", "isim01a1")), ("f814w", ("isim01a2", "isim01a3"))):
        names += [f"{BASE}uvis_{filt}_isim01_drc.fits", f"{BASE}uvis_{filt}_isim01_trl.txt"]
        for exp in exps:
            names += [f"{BASE}uvis_{filt}_{exp}_drc.fits", f"{BASE}uvis_{filt}_{exp}_flc.fits",
                      f"{BASE}uvis_{filt}_{exp}_trl.txt"]
    names += [f"{BASE}uvis_total_isim01_drc.fits", f"{BASE}uvis_total_isim01_trl.txt"]
    detectors = ([("ir", ("f160w",))] if ir else []) + [("uvis", ("f555w", "f814w"))]
    for det, filters in detectors:  # catalogs: filter point, segment; then the total's
        for filt in filters:
            names += [f"{BASE}{det}_{filt}_isim01_point-cat.ecsv",
                      f"{BASE}{det}_{filt}_isim01_segment-cat.ecsv"]
        names += [f"{BASE}{det}_total_isim01_point-cat.ecsv",
                  f"{BASE}{det}_total_isim01_segment-cat.ecsv"]
    return names
