"""MVM pipeline inputs: small simulated SVM-named exposures around a sky-cell boundary, and
MVM pollers for them (the pipeline tests and the drizzlepac comparison).

Visits (WFC3, proposal 17001), all pointed within a few arcseconds of a point 60 fine pixels
inside the west edge (high x) of ``skycell-p0121x12y16``, i.e. in the overlap of that cell and
``skycell-p0121x13y16``, so both cells list every exposure:

* ``01``: UVIS F555W, 2 exposures; ``02``: UVIS F555W, 2 exposures 2" further north;
* ``03``: IR F160W, 2 exposures (coarse and fine layers);
* ``04``: UVIS F555W, 1 exposure 12" further east (into the cell): listed as OLD, it widens the cells'
  bounded frames but is never drizzled.

Each file is copied to its SVM name (``hst_17001_<visit>_wfc3_<det>_<filter>_<ipppssoo>_fl?.fits``),
the names the MVM pollers list.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np

from hapgpu.simulate import simulate_visit
from hapgpu.skycells import SkyCell

CELL = "skycell-p0121x12y16"
NEIGHBOUR = "skycell-p0121x13y16"


def _target(offset_east_arcsec: float = 0.0, offset_north_arcsec: float = 0.0):
    cell = SkyCell.from_name(CELL)
    ny, nx = cell.shape
    ra, dec = cell.wcs.pixel_to_world_values(nx - 60, ny / 2)
    dec = float(dec) + offset_north_arcsec / 3600.0
    ra = float(ra) + offset_east_arcsec / 3600.0 / np.cos(np.deg2rad(dec))
    return ra, dec


def make_exposures(root, *, uvis_shape=48, ir_shape=32, ir=True, second_uvis=True, old=True):
    """Simulate the visits under ``root``; return ``[(svm name, path, visit, det, filter, exptime, new)]``."""
    root = Path(root)
    plan = [("01", "wfc3-uvis", "F555W", 2, (0.0, 0.0), True)]
    if second_uvis:
        plan.append(("02", "wfc3-uvis", "F555W", 2, (0.0, 2.0), True))
    if ir:
        plan.append(("03", "wfc3-ir", "F160W", 2, (0.0, 0.0), True))
    if old:
        plan.append(("04", "wfc3-uvis", "F555W", 1, (12.0, 0.0), False))
    rows = []
    for visit, instrument, filt, n, offset, new in plan:
        shape = ir_shape if instrument == "wfc3-ir" else uvis_shape
        det = "ir" if instrument == "wfc3-ir" else "uvis"
        result = simulate_visit(root / f"raw{visit}", instrument, n, filters=[filt], shape=shape,
                                seed=int(visit), visit=visit, target=_target(*offset), progress=False)
        for record in result.exposures:
            suffix = record.path.name.split("_")[-1]
            name = f"hst_17001_{visit}_wfc3_{det}_{filt.lower()}_{record.rootname[:8]}_{suffix}"
            shutil.copyfile(record.path, root / name)
            rows.append((name, root / name, visit, det.upper(), filt, record.exptime, new))
    return rows


def write_mvm_poller(path, rows, skycell: str = CELL) -> Path:
    """An MVM poller (10 columns) listing ``rows`` for ``skycell``."""
    path = Path(path)
    lines = [f"{name},{name.split('_')[1]},{name.split('_')[-2][1:4].upper()},{visit},{exptime},{filt},"
             f"{det},{skycell},{'NEW' if new else 'OLD'},"
             f"{Path(source).resolve()}"
             for name, source, visit, det, filt, exptime, new in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


#: The real 10x10 sample exposures of tests/data under SVM names, with their poller fields.
SAMPLES = {
    "uvis": ("sample_svm_flc.fits.gz", "hst_11665_06_wfc3_uvis_f555w_ib4606c6_flc.fits", "06", "UVIS",
             "F555W", 170.0),
    "ir": ("sample_svm_flt.fits.gz", "hst_11665_07_wfc3_ir_f110w_ib4606cp_flt.fits", "07", "IR",
           "F110W", 699.232483),
}


def sample_rows(folder, keys=("uvis", "ir"), *, new=True):
    """The tests/data samples (real headers, 10x10 pixels; sky cell :data:`CELL`) decompressed
    under their SVM names into ``folder``; rows for :func:`write_mvm_poller`."""
    import gzip

    from tests.conftest import data_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for key in keys:
        source, name, visit, det, filt, exptime = SAMPLES[key]
        with gzip.open(data_file(source)) as packed, open(folder / name, "wb") as out:
            shutil.copyfileobj(packed, out)
        rows.append((name, folder / name, visit, det, filt, exptime, new))
    return rows


#: A layer task's staging folder, ``...-<process id>-<random>/``, named in its trailer.
_STAGING = re.compile(r"-\d+-[0-9a-f]{8}/")


def assert_same_layer_products(made: Path, serial: Path) -> None:
    """Same files; FITS headers equal but for DATE and data identical; manifests identical;
    trailers identical but for times, folders and staging-folder names."""
    from tests.test_scaleout import assert_same_fits, trailer_text

    names = sorted(p.name for p in serial.iterdir())
    assert sorted(p.name for p in made.iterdir()) == names  # and no staging folder left
    for name in names:
        a, b = made / name, serial / name
        if name.endswith(".fits"):
            assert_same_fits(a, b)
        elif name.endswith("_trl.txt"):
            assert (_STAGING.sub("-/", trailer_text(a, made))
                    == _STAGING.sub("-/", trailer_text(b, serial))), name
        else:
            assert a.read_bytes() == b.read_bytes(), name
