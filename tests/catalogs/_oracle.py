"""drizzlepac 3.11's own SVM catalog step run on a :class:`~._products.ProductSet` (the oracle).

:func:`run_drizzlepac_catalogs` builds drizzlepac's real product tree the way ``runsinglehap``
does (``poller_utils.interpret_obset_input`` on the visit's poller file, which creates the
``TotalProduct``/``FilterProduct``/``ExposureProduct`` objects and the SVM-named input copies;
``config_utils.HapConfig`` for every product), puts the set's drizzled products and its
DQ-updated inputs in place, gives every product the set's footprint count mask, and calls
``hapsequencer.create_catalog_products([total], ..., phot_mode="both")``: identification,
measurement, flagging, combination, trimming, CR rejection and writing are all drizzlepac's.

drizzlepac 3.11 reads photutils 2 names from photutils 3; :func:`photutils2_catalog_shim`
(test-only) gives it the photutils 2 column names it expects and nothing else.
drizzlepac works in the current directory, so the oracle runs inside its own folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from astropy.table import Table

__all__ = ["OracleResult", "photutils2_catalog_shim", "run_drizzlepac_catalogs"]

# photutils 3 name -> photutils 2 name, for the star-finder columns drizzlepac reads.
_OLD_NAMES = {"x_centroid": "xcentroid", "y_centroid": "ycentroid", "n_pixels": "npix"}
# photutils 2 SourceCatalog column name -> photutils 3 name, for the columns drizzlepac's
# catalog_utils asks SourceCatalog.to_table for (photutils 3.0 renamed them).
_NEW_NAMES = {"xcentroid": "x_centroid", "ycentroid": "y_centroid",
              "segment_fluxerr": "segment_flux_err", "kron_fluxerr": "kron_flux_err",
              "covar_sigx2": "covariance_xx", "covar_sigxy": "covariance_xy",
              "covar_sigy2": "covariance_yy", "cxx": "ellipse_cxx", "cxy": "ellipse_cxy",
              "cyy": "ellipse_cyy"}


# photutils 3 SourceCatalog table-meta key -> photutils 2 key (photutils 3 writes both).
_OLD_META = {"local_bkg_width": "localbkg_width", "aperture_mask_method": "apermask_method"}


def _photutils2_meta(table):
    """The table's meta as photutils 2 wrote it: date, version, localbkg_width,
    apermask_method, kron_params (photutils 3 renamed two keys and appends the old names)."""
    meta = type(table.meta)()
    for key, value in table.meta.items():
        if key in _OLD_META.values():
            continue
        meta[_OLD_META.get(key, key)] = value
    table.meta = meta
    return table


def _rename_to_photutils2(table):
    if table is None:
        return None
    for new, old in _OLD_NAMES.items():
        if new in table.colnames and old not in table.colnames:
            table.rename_column(new, old)
    return table


@contextlib.contextmanager
def photutils2_catalog_shim():
    """Let drizzlepac 3.11's catalog code run under photutils 3 (test-only shim).

    The star finders drizzlepac's ``catalog_utils`` imported (``DAOStarFinder``,
    ``IRAFStarFinder``) return their tables with photutils 2's column names (``xcentroid``,
    ``ycentroid``, ``npix``), and its ``SourceCatalog.to_table`` accepts and returns the
    photutils 2 names (``to_table(columns=['label', 'xcentroid', ...])``) with photutils 2's
    table metadata keys (``localbkg_width``, ``apermask_method``; drizzlepac writes them into
    the segment catalogs). Values are untouched. The classes are restored on exit.
    """
    import photutils.detection as pdet
    import photutils.segmentation as pseg
    from drizzlepac.haputils import catalog_utils

    class DAOStarFinder2(pdet.DAOStarFinder):
        def find_stars(self, data, mask=None):
            return _rename_to_photutils2(super().find_stars(data, mask=mask))

        def __call__(self, data, mask=None):
            return self.find_stars(data, mask=mask)

    class IRAFStarFinder2(pdet.IRAFStarFinder):
        def find_stars(self, data, mask=None):
            return _rename_to_photutils2(super().find_stars(data, mask=mask))

        def __call__(self, data, mask=None):
            return self.find_stars(data, mask=mask)

    class SourceCatalog2(pseg.SourceCatalog):
        def to_table(self, columns=None):
            if columns is None:
                return _photutils2_meta(_rename_to_photutils2(super().to_table()))
            asked = list(columns)
            table = super().to_table([_NEW_NAMES.get(c, c) for c in asked])
            for c in asked:
                if c in _NEW_NAMES and _NEW_NAMES[c] in table.colnames:
                    table.rename_column(_NEW_NAMES[c], c)
            return _photutils2_meta(table)

        def get_labels(self, labels):  # photutils 3 calls it select_labels
            out = self.select_labels(labels)
            out.__class__ = SourceCatalog2
            return out

    saved = (catalog_utils.DAOStarFinder, catalog_utils.IRAFStarFinder, catalog_utils.SourceCatalog)
    catalog_utils.DAOStarFinder = DAOStarFinder2
    catalog_utils.IRAFStarFinder = IRAFStarFinder2
    catalog_utils.SourceCatalog = SourceCatalog2
    try:
        yield
    finally:
        (catalog_utils.DAOStarFinder, catalog_utils.IRAFStarFinder,
         catalog_utils.SourceCatalog) = saved


@dataclass
class OracleResult:
    """What drizzlepac's catalog step wrote.

    Attributes
    ----------
    folder : pathlib.Path
        Its working folder.
    files : list of pathlib.Path
        Catalog files in drizzlepac's manifest order.
    seconds : float
        Wall time of ``create_catalog_products`` alone.
    """

    folder: Path
    files: list
    seconds: float

    def table(self, name: str) -> Table:
        """The written catalog ``name`` (file name), read back."""
        return Table.read(self.folder / name, format="ascii.ecsv")

    def catalog(self, product: str, cat_type: str) -> Table:
        """The catalog of ``product`` (``"total"`` or a lower-case filter), ``cat_type``
        ``"point"`` or ``"segment"``."""
        token = f"_{product}_"
        for path in self.files:
            if token in path.name and path.name.endswith(f"_{cat_type}-cat.ecsv"):
                return self.table(path.name)
        raise KeyError(f"no {cat_type} catalog of {product} in {[p.name for p in self.files]}")


def _build_tree(product_set, folder: Path, log_level: int):
    """drizzlepac's object tree for the set, as ``runsinglehap`` builds it, inside ``folder``."""
    from drizzlepac.haputils import config_utils, poller_utils

    lines = []
    for line in Path(product_set.visit.poller).read_text().splitlines():
        fields = line.split(",")
        original = Path(fields[-1])
        shutil.copy(original, folder / original.name)
        fields[-1] = str(folder / original.name)
        lines.append(",".join(fields))
    poller = folder / Path(product_set.visit.poller).name
    poller.write_text("\n".join(lines) + "\n")
    _, total_list = poller_utils.interpret_obset_input(str(poller.name), log_level)
    if len(total_list) != 1:
        raise AssertionError(f"expected one total product, drizzlepac built {len(total_list)}")
    total = total_list[0]
    total.configobj_pars = config_utils.HapConfig(total, log_level=log_level)
    for product in total.fdp_list:
        product.configobj_pars = config_utils.HapConfig(product, log_level=log_level)
    for exposure in total.edp_list:
        exposure.configobj_pars = config_utils.HapConfig(exposure, log_level=log_level)
    return total


def _install_products(product_set, total, folder: Path) -> None:
    """Put the set's products and DQ-updated inputs under drizzlepac's names; give every
    product its footprint count mask. The names must agree: that checks the set's naming."""
    ours = {product_set.total.name: product_set.total}
    ours.update({p.name: p for p in product_set.filter_products.values()})
    ours.update({p.name: p for f in product_set.filters for p in product_set.singles[f]})
    ours.update({p.name: p for f in product_set.filters for p in product_set.exposures[f]})
    theirs = ([total.drizzle_filename] + [f.drizzle_filename for f in total.fdp_list]
              + [e.drizzle_filename for e in total.edp_list]
              + [e.full_filename for e in total.edp_list])
    if sorted(ours) != sorted(theirs):
        raise AssertionError(f"product names differ from drizzlepac's: ours {sorted(ours)}, "
                             f"drizzlepac's {sorted(theirs)}")
    for name, path in ours.items():
        shutil.copy(path, folder / name)
    total.mask = product_set.total_mask.copy()
    for product in total.fdp_list:
        product.mask = product_set.filter_masks[product.filters].copy()


def run_drizzlepac_catalogs(product_set, folder, *, phot_mode: str = "both",
                            log_level: int = logging.WARNING) -> OracleResult:
    """Run drizzlepac's ``create_catalog_products`` on ``product_set`` inside ``folder``.

    Parameters
    ----------
    product_set : ProductSet
    folder : path
        Empty working folder (drizzlepac writes into the current directory).
    phot_mode : {"both", "aperture", "segment"}
    log_level : int
        drizzlepac's log level.

    Returns
    -------
    OracleResult
    """
    from drizzlepac import hapsequencer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    switches = {f"SVM_CATALOG_{d}": True for d in ("HRC", "SBC", "WFC", "UVIS", "IR", "PC")}
    here = os.getcwd()
    logging.getLogger("drizzlepac").setLevel(log_level)
    try:
        os.chdir(folder)  # test harness only: drizzlepac reads and writes the current directory
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            total = _build_tree(product_set, folder, log_level)
            _install_products(product_set, total, folder)
            with photutils2_catalog_shim():
                start = time.perf_counter()
                names = hapsequencer.create_catalog_products([total], log_level,
                                                             phot_mode=phot_mode,
                                                             catalog_switches=switches)
                seconds = time.perf_counter() - start
    finally:
        os.chdir(here)
    return OracleResult(folder, [folder / n for n in names], seconds)


def match_positions(xa, ya, xb, yb, radius: float):
    """Nearest-neighbour match of points ``a`` to points ``b`` within ``radius``.

    Parameters
    ----------
    xa, ya, xb, yb : array_like
        Coordinates (same units as ``radius``).
    radius : float

    Returns
    -------
    index : numpy.ndarray
        ``(len(a),)`` int: index into ``b`` of each point's nearest neighbour, -1 when that is
        farther than ``radius`` (or ``b`` is empty).
    distance : numpy.ndarray
        ``(len(a),)`` float: the distance to it (inf when unmatched).
    """
    import numpy as np
    from scipy.spatial import cKDTree

    a = np.column_stack([np.asarray(xa, float), np.asarray(ya, float)])
    b = np.column_stack([np.asarray(xb, float), np.asarray(yb, float)])
    if len(a) == 0 or len(b) == 0:
        return np.full(len(a), -1), np.full(len(a), np.inf)
    distance, index = cKDTree(b).query(a)
    far = distance > radius
    index = np.where(far, -1, index)
    distance = np.where(far, np.inf, distance)
    return index, distance
