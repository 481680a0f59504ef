"""Helpers of the alignment tests: visit settings, truth offsets, the photutils 2 shim."""

from __future__ import annotations

import contextlib
import shutil
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import QTable, Table
from astropy.wcs import WCS

from hapgpu.simulate import WCSPerturbation, true_wcs

#: A priori error of the test visits: 0.49 arcsec and 0.02 deg, common to the visit.
WCS_ERROR = WCSPerturbation((0.35, -0.35), rotation_deg=0.02)

#: Small visits (subarrays) with enough Gaia-like stars for 12+ matches per exposure.
VISITS = {
    "wfc3-uvis": {"shape": (400, 400), "star_density": 6000.0},
    "wfc3-ir": {"shape": (256, 256), "star_density": 3000.0},
    "acs-hrc": {"shape": (512, 512), "star_density": 20000.0},
    "acs-wfc": {"shape": (400, 400), "star_density": 4000.0},
}


def copy_visit(visit, dest: Path) -> tuple[Path, list[Path]]:
    """Copy a simulated visit's folder; return the copy and its exposure paths."""
    target = Path(dest) / Path(visit.outdir).name
    shutil.copytree(visit.outdir, target)
    return target, [target / p.name for p in visit.files]


def truth_offsets_mas(visit_dir: Path, files) -> np.ndarray:
    """Distances (mas) between the true pixels of the simulated stars and their pixels through
    the files' current WCSs, over every chip (stars inside the chip only)."""
    sky = Table.read(Path(visit_dir) / "truth" / "sky_catalog.ecsv", format="ascii.ecsv")
    stars = sky[sky["kind"] == "star"]
    offsets = []
    for name in files:
        with fits.open(name) as hdul:
            root = hdul[0].header["ROOTNAME"].lower()
            for hdu in hdul:
                if hdu.name != "SCI":
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    current = WCS(hdu.header, hdul)
                    truth = true_wcs(visit_dir, root, hdu.ver)
                ny, nx = hdu.data.shape
                # Linear WCS first, to leave out the stars far off the chip (where the SIP
                # inversion does not converge), then the full WCS.
                xl, yl = truth.wcs_world2pix(stars["ra"], stars["dec"], 0)
                near = (xl > -0.2 * nx) & (xl < 1.2 * nx) & (yl > -0.2 * ny) & (yl < 1.2 * ny)
                ra, dec = stars["ra"][near], stars["dec"][near]
                xt, yt = truth.all_world2pix(ra, dec, 0)
                inside = (xt >= 0) & (xt < nx) & (yt >= 0) & (yt < ny)
                xc, yc = current.all_world2pix(ra[inside], dec[inside], 0)
                scale = np.sqrt(abs(np.linalg.det(truth.wcs.cd))) * 3.6e6
                offsets.append(np.hypot(xc - xt[inside], yc - yt[inside]) * scale)
    return np.concatenate(offsets)


def rms(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.sqrt(np.mean(values ** 2)))


def pixel_arrays(name) -> dict:
    """Every image extension's data, for showing that pixels are untouched."""
    with fits.open(name, memmap=False) as hdul:
        return {(h.name, h.ver): np.array(h.data) for h in hdul
                if isinstance(h, (fits.ImageHDU, fits.PrimaryHDU)) and h.data is not None}


_PHOTUTILS2_NAMES = {"x_centroid": "xcentroid", "y_centroid": "ycentroid", "n_pixels": "npix"}


def _with_photutils2_names(table):
    if table is None:
        return None
    out = QTable()
    for name in table.colnames:
        out[name] = table[name]
    for new, old in _PHOTUTILS2_NAMES.items():
        if new in out.colnames and old not in out.colnames:
            out[old] = out[new].copy()
    return out


@contextlib.contextmanager
def photutils2_shim():
    """Let drizzlepac 3.11's alignment code run under photutils 3 (test-only shim).

    drizzlepac reads photutils 2 column names from the star finders' tables (``xcentroid``,
    ``ycentroid``, ``npix``) and ``local_background`` from ``SourceCatalog.to_table``; photutils
    3 renamed or dropped them and drizzlepac stops with ``KeyError: 'local_background'``. The
    shim wraps the classes drizzlepac imported so that their tables also carry the old names
    (``local_background`` = 0, photutils 2's value with the default ``localbkg_width=0``).
    """
    import photutils.detection as pdet
    import photutils.segmentation as pseg
    from drizzlepac.haputils import align_utils, astrometric_utils

    class DAOStarFinder2(pdet.DAOStarFinder):
        def find_stars(self, data, mask=None):
            return _with_photutils2_names(super().find_stars(data, mask=mask))

        def __call__(self, data, mask=None):
            return self.find_stars(data, mask=mask)

    class SourceCatalog2(pseg.SourceCatalog):
        def to_table(self, columns=None):
            table = _with_photutils2_names(super().to_table(columns))
            if "local_background" not in table.colnames:
                table["local_background"] = np.zeros(len(table))
            return table

    saved = (astrometric_utils.DAOStarFinder, align_utils.DAOStarFinder,
             astrometric_utils.SourceCatalog)
    astrometric_utils.DAOStarFinder = DAOStarFinder2
    align_utils.DAOStarFinder = DAOStarFinder2
    astrometric_utils.SourceCatalog = SourceCatalog2
    try:
        yield
    finally:
        (astrometric_utils.DAOStarFinder, align_utils.DAOStarFinder,
         astrometric_utils.SourceCatalog) = saved
