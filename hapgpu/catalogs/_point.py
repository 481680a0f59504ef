"""The HAP point (aperture) catalog: sources on the total, photometry on each filter (§1.13 B).

drizzlepac 3.11's ``HAPPointCatalog`` (``identify_sources``, ``measure_sources``,
``_define_empty_table``, ``combine_tables``, ``transform_list_xy_to_ra_dec``) on
:class:`~hapgpu.catalogs._prepare.PreparedImage` objects:

* :func:`identify_point_sources` finds the sources of the total detection image, weight
  region by weight region, with the PSF-deconvolution finder (``starfinder_algorithm``
  ``"psf"``, :mod:`hapgpu.catalogs._psf`) and DAOFIND measurements at the peaks, falling
  over to DAOStarFinder; or with DAOStarFinder (``"dao"``) or IRAFStarFinder (``"iraf"``).
* :func:`measure_point_catalog` measures a filter image at those positions (17 columns).
* :func:`total_point_table` is the total catalog's base (ID, X-Center, Y-Center, RA, DEC).

Finder tables use photutils 2 column names, as drizzlepac's catalogs see them: ``id,
xcentroid, ycentroid, RA, DEC, sharpness, roundness1, roundness2, npix, peak, flux, mag``
(IRAFStarFinder: its own statistics columns).
"""

from __future__ import annotations

import logging
import warnings
from concurrent.futures import Future

import numpy as np
from astropy.table import Column, MaskedColumn, Table, vstack

from .. import detection
from ..backend import resolve_backend
from ..errors import HapGpuError, InvalidInputError, InvalidParameterError
from ._photometry import measure_apertures
from ._prepare import region_rms
from ._psf import (
    drizzle_library_psf,
    exposure_psf_keys,
    find_psf_peaks,
    library_psf_paths,
    load_library_psf,
    psf_fwhm,
)

__all__ = [
    "POINT_COLUMNS",
    "drizzled_total_psf",
    "empty_point_sources",
    "identify_point_sources",
    "measure_point_catalog",
    "measure_user_peaks",
    "total_point_table",
]

log = logging.getLogger(__name__)

#: UserStarFinder settings of ``identify_sources`` (threshold only keeps the flux finite).
USER_THRESHOLD = 1.0e-10
USER_SHARPNESS = (0.4, 0.9)
USER_ROUNDNESS = (-1.0, 1.0)

#: Columns of a filter point catalog, in order, with drizzlepac's formats, units and
#: descriptions (``measure_sources``; the descriptions are kept word for word, as the
#: catalogs carry them).
POINT_COLUMNS = {
    "X-Center": ("10.3f", "pixel", "Pixel Coordinate"),
    "Y-Center": ("10.3f", "pixel", "Pixel Coordinate"),
    "RA": ("13.7f", "degree", "Sky coordinate at epoch of observation"),
    "DEC": ("13.7f", "degree", "Sky coordinate at epoch of observation"),
    "ID": ("7d", "", "Catalog Object Identification Number"),
    "MagAp1": ("7.3f", "mag(AB)", "ABMAG of source based on the inner (smaller) aperture"),
    "MagErrAp1": ("7.3f", "mag(AB)", "Error of MagAp1"),
    "FluxAp1": ("10.4f", "electron/s", "Flux of source based on the outer (smaller) aperture"),
    "FluxErrAp1": ("10.4f", "electron/s",
                   "Flux of source based on the outer (smaller) aperture"),
    "MagAp2": ("7.3f", "mag(AB)", "ABMAG of source based on the outer (larger) aperture"),
    "MagErrAp2": ("7.3f", "mag(AB)", "Error of MagAp2"),
    "MSkyAp2": ("7.3f", "electron/(s pixel)", "Sky estimate from an annulus outside Aperture 2"),
    "StdevAp2": ("7.3f", "electron/(s pixel)",
                 "Standard deviation of sky estimate from annulus outside Aperture 2"),
    "FluxAp2": ("10.4f", "electron/s", "Flux of source based on the outer (larger) aperture"),
    "FluxErrAp2": ("10.4f", "electron/s",
                   "Flux of source based on the outer (larger) aperture"),
    "CI": ("7.3f", "mag(AB)", "Concentration Index"),
    "Flags": ("5d", "", "Numeric encoding for conditions on detected sources"),
}

_EMPTY_COLUMNS = {   # _define_empty_table
    "xcentroid": ("10.3f", "pixel", "Pixel Coordinate"),
    "ycentroid": ("10.3f", "pixel", "Pixel Coordinate"),
    "RA": ("13.7f", "degree", "Sky coordinate at epoch of observation"),
    "DEC": ("13.7f", "degree", "Sky coordinate at epoch of observation"),
    "id": ("7d", "", "Catalog Object Identification Number"),
    "Flags": ("5d", "", "Numeric encoding for conditions on detected sources"),
}

# photutils 3 / hapgpu finder names -> the photutils 2 names drizzlepac's tables carry
_RENAMES = {"x_centroid": "xcentroid", "y_centroid": "ycentroid", "n_pixels": "npix"}
# Exceptions on which drizzlepac's PSF finder falls over to DAOStarFinder (it catches any;
# these are the ones the PSF path raises on bad inputs or exhausted memory).
_PSF_FAILURES = (HapGpuError, MemoryError, OSError, ValueError)


# ----------------------------------------------------------------------------- tables
def empty_point_sources() -> Table:
    """The total's empty source table (drizzlepac ``_define_empty_table``).

    Columns ``xcentroid, ycentroid, RA, DEC, id, Flags`` (float64, no rows) with their formats,
    units and descriptions.
    """
    table = Table(names=list(_EMPTY_COLUMNS),
                  descriptions={k: v[2] for k, v in _EMPTY_COLUMNS.items()},
                  units={k: v[1] for k, v in _EMPTY_COLUMNS.items()})
    for name, (fmt, _, _) in _EMPTY_COLUMNS.items():
        table[name].format = fmt
    return table


def _subset_names(filter_name: str) -> list[str]:
    return ["ID", f"MagAP2_{filter_name}", f"CI_{filter_name}", f"Flags_{filter_name}"]


def _position_columns(sources: Table) -> tuple[str, str, str]:
    for names in (("X-Center", "Y-Center", "ID"), ("xcentroid", "ycentroid", "id"),
                  ("x_centroid", "y_centroid", "id")):
        if names[0] in sources.colnames and names[1] in sources.colnames:
            return names
    raise InvalidInputError("the source table has no xcentroid/ycentroid or X-Center/Y-Center "
                            f"columns (columns: {', '.join(sources.colnames)})")


def total_point_table(sources: Table) -> Table:
    """The total point catalog's own columns: ``ID, X-Center, Y-Center, RA, DEC``.

    drizzlepac's ``combine_tables`` renames ``xcentroid``/``ycentroid``/``id`` and drops the
    finder statistics; the filter columns are joined on afterwards.

    Parameters
    ----------
    sources : astropy.table.Table
        From :func:`identify_point_sources`.

    Returns
    -------
    astropy.table.Table
        A new table (the input is not modified).
    """
    xname, yname, idname = _position_columns(sources)
    out = Table()
    out["ID"] = Column(np.asarray(sources[idname]), name="ID")
    out["X-Center"] = Column(np.asarray(sources[xname], dtype=np.float64), name="X-Center")
    out["Y-Center"] = Column(np.asarray(sources[yname], dtype=np.float64), name="Y-Center")
    for name in ("RA", "DEC"):
        out[name] = Column(np.asarray(sources[name], dtype=np.float64), name=name)
    for name in out.colnames:
        src = {"ID": idname, "X-Center": xname, "Y-Center": yname}.get(name, name)
        col = sources[src]
        out[name].unit = col.unit
        out[name].format = col.format
        out[name].description = col.description
    return out


# ----------------------------------------------------------------------------- finders
def measure_user_peaks(data, x_peak, y_peak, fwhm: float, *, threshold: float = USER_THRESHOLD,
                       sharpness=USER_SHARPNESS, roundness=USER_ROUNDNESS,
                       backend=None) -> Table | None:
    """DAOFIND statistics at given integer peaks (drizzlepac's ``UserStarFinder``).

    :func:`hapgpu.detection.user_star_finder` with HAP's limits: kernel-sized boxes are cut
    around the peaks from the image itself (no convolution), boxes that leave the image or hold
    a NaN are skipped, sharpness and both roundness statistics must lie in the open intervals
    ``sharpness`` and ``roundness``, and ``flux = peak / (threshold * rel_err)``.

    Parameters
    ----------
    data : array, shape (ny, nx)
        Image (host or device).
    x_peak, y_peak : array_like of int, shape (n,)
    fwhm : float
        Kernel FWHM, pixels.
    threshold : float
    sharpness, roundness : (float, float)
    backend : str, Backend or None

    Returns
    -------
    astropy.table.Table or None
        ``id, xcentroid, ycentroid, sharpness, roundness1, roundness2, npix, peak, flux, mag``;
        None when no source passes.
    """
    coords = np.column_stack([np.asarray(x_peak, dtype=np.int64),
                              np.asarray(y_peak, dtype=np.int64)])
    if coords.shape[0] == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", detection.NoDetectionsWarning)
        table = detection.user_star_finder(
            data, coords, fwhm, threshold=threshold, sharplo=sharpness[0], sharphi=sharpness[1],
            roundlo=roundness[0], roundhi=roundness[1], backend=backend)
    if table is None or len(table) == 0:
        return None
    if "sky" in table.colnames:
        table.remove_column("sky")
    return table


def _finder_table(table) -> Table | None:
    """A finder's QTable as a plain Table with photutils 2 names, no ``daofind_mag``."""
    if table is None or len(table) == 0:
        return None
    table = Table(table)
    if "daofind_mag" in table.colnames:
        table.remove_column("daofind_mag")
    for old, new in _RENAMES.items():
        if old in table.colnames:
            table.rename_column(old, new)
    return table


def _dao_sources(region, fwhm, threshold, inv_footprint, bk) -> Table | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", detection.NoDetectionsWarning)
        finder = detection.DAOStarFinder(threshold=threshold, fwhm=fwhm, min_separation=0,
                                         backend=bk)
        return _finder_table(finder.find_stars(region, mask=inv_footprint))


def _iraf_sources(region, fwhm, threshold, inv_footprint, bk) -> Table | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", detection.NoDetectionsWarning)
        finder = detection.IRAFStarFinder(threshold=threshold, fwhm=fwhm, backend=bk)
        return _finder_table(finder.find_stars(region, mask=inv_footprint))


def drizzled_total_psf(product, *, wcs=None, backend=None):
    """The library PSF drizzled onto a total product's frame (drizzlepac's PSF for
    ``find_point_sources``).

    The PSFs of every input exposure's detector and filter (:func:`~hapgpu.catalogs._psf.
    exposure_psf_keys`, :func:`~hapgpu.catalogs._psf.load_library_psf`) are placed in the first
    exposure (``D001DATA``) and drizzled onto the product WCS
    (:func:`~hapgpu.catalogs._psf.drizzle_library_psf`).

    Parameters
    ----------
    product : CatalogProduct
        The total detection product (its ``exposures``, ``wcs`` and ``data.shape``).
    wcs : astropy.wcs.WCS, optional
        Used instead of ``product.wcs`` (a copy, for a worker thread: astropy's WCS objects
        are not thread-safe).
    backend : str, Backend or None

    Returns
    -------
    DrizzledPsf

    Raises
    ------
    InvalidInputError
        The product lists no input exposure, or a PSF or the exposure cannot be read.
    """
    exposures = list(dict.fromkeys(str(p) for p in (product.exposures or [])))
    if not exposures:  # drizzlepac needs D001DATA to place the PSF
        raise InvalidInputError(f"{product.filename}: no input exposure (D001DATA) to "
                                "place the library PSF in")
    keys = [exposure_psf_keys(p) for p in exposures]
    psfs = [load_library_psf(p) for p in library_psf_paths(keys)]
    return drizzle_library_psf(psfs, exposures[0], product.wcs if wcs is None else wcs,
                               product.data.shape, backend=backend)


class _TotalPsf:
    """The total's drizzled library PSF, made on first use (or taken from a result made
    beforehand: a value or a :class:`concurrent.futures.Future`, whose exception is raised
    here, on first use, as making it here would raise it), and its FWHM per starting guess."""

    def __init__(self, total, bk, given=None):
        self.total = total
        self.bk = bk
        self._given = given
        self._drizzled = None
        self._fwhm = {}

    def drizzled(self):
        if self._drizzled is None:
            given = self._given
            if given is None:
                self._drizzled = drizzled_total_psf(self.total.product, backend=self.bk)
            elif isinstance(given, Future):
                self._drizzled = given.result()
            else:
                self._drizzled = given
        return self._drizzled

    def fwhm(self, default_fwhm, box_size):
        key = (float(default_fwhm), int(box_size))
        if key not in self._fwhm:
            self._fwhm[key] = psf_fwhm(self.drizzled().data, default_fwhm, box_size)
        return self._fwhm[key]


# ----------------------------------------------------------------------------- identify
def identify_point_sources(total, *, backend=None, library_psf=None) -> Table:
    """Point sources of the total detection image (drizzlepac ``identify_sources``).

    The image is ``(SCI with NaN as 0) - background``, clipped at 0. For each weight region
    (``total.regions``): ``region = image * mask``, ``reg_rms = rms * sqrt(mask / max
    rel_weight)`` and ``reg_rms_median`` its median over positive pixels; then, by
    ``starfinder_algorithm``:

    * ``"psf"``: ``region - nsigma reg_rms`` clipped at 0, PSF-deconvolution peaks
      (:func:`~hapgpu.catalogs._psf.find_psf_peaks` with the library PSF drizzled onto the
      product, FWHM by Gaussian fit), measured by :func:`measure_user_peaks` (fwhm = the PSF
      FWHM, threshold 1e-10, sharpness (0.4, 0.9)). If the PSF path fails or finds no peak:
      ``DAOStarFinder(fwhm, threshold = nsigma reg_rms_median, min_separation=0)`` on the
      region (as drizzlepac, once the PSF FWHM was measured it is the fwhm used from then on,
      with or without peaks);
    * ``"dao"``: that DAOStarFinder directly, with ``kernel_fwhm``;
    * ``"iraf"``: ``IRAFStarFinder`` likewise.

    Finders use ``inv_footprint`` as mask. The regions' tables are stacked with ``id``
    renumbered 1..n, and RA/DEC (the product WCS at 0-based positions) are inserted as
    columns 3 and 4.

    Parameters
    ----------
    total : PreparedImage
        The prepared total detection image.
    backend : str, Backend or None
    library_psf : DrizzledPsf or concurrent.futures.Future, optional
        :func:`drizzled_total_psf` of ``total.product`` made beforehand (or being made); by
        default it is made here when the ``"psf"`` finder first needs it. A future's
        exception is raised where making the PSF here would raise it.

    Returns
    -------
    astropy.table.Table
        ``id, xcentroid, ycentroid, RA, DEC, ...`` finder statistics; the empty table of
        :func:`empty_point_sources` when the image is blank or nothing is found.

    Raises
    ------
    InvalidParameterError
        For an unknown ``starfinder_algorithm``.
    """
    if total.blank:
        return empty_point_sources()
    bk = resolve_backend(backend if backend is not None else getattr(total, "backend", None))
    xp = bk.xp
    gen = total.params.generation
    algorithm = gen.get("starfinder_algorithm", "psf")
    if algorithm not in ("psf", "dao", "iraf"):
        raise InvalidParameterError(
            f"'{algorithm}' is not a valid 'starfinder_algorithm'; choose 'psf' "
            "(PSF deconvolution), 'dao' (DAOStarFinder) or 'iraf' (IRAFStarFinder)")
    nsigma = float(gen["nsigma"])
    box_size = int(gen.get("region_size", 11))
    block_size = tuple(int(b) for b in gen.get("block_size", (1024, 1024)))
    source_fwhm = float(total.kernel_fwhm)
    data = bk.asarray(total.data)
    # drizzlepac's nan_to_num(data) here is a no-op: prepare_image already made NaN 0
    image = data - bk.asarray(total.background.background)
    image = xp.clip(image, 0, None, out=image)
    rms = bk.asarray(total.background.rms)
    footprint = bk.asarray(total.footprint, dtype=bool)
    inv_footprint = bk.asarray(total.inv_footprint, dtype=bool)
    psf = _TotalPsf(total, bk, library_psf)
    tables = []
    for number, region_def in enumerate(total.regions):
        mask = bk.asarray(region_def.mask)
        region = image * mask
        reg_rms, reg_rms_median = region_rms(rms, region_def, xp)
        reg_rms = bk.asarray(reg_rms)
        if algorithm == "dao":
            found = _dao_sources(region, source_fwhm, nsigma * reg_rms_median, inv_footprint, bk)
        elif algorithm == "iraf":
            found = _iraf_sources(region, source_fwhm, nsigma * reg_rms_median, inv_footprint, bk)
        else:
            region = xp.clip(region - reg_rms * nsigma, 0.0, None)
            peaks, fwhm = None, None
            try:
                fwhm = psf.fwhm(source_fwhm, box_size)
                if fwhm is None:
                    log.warning("region %d: the library PSF FWHM could not be measured",
                                number)
                else:
                    result = find_psf_peaks(region, psf.drizzled().data, footprint,
                                            box_size=box_size, block_size=block_size,
                                            backend=bk)
                    if result.masked is not None:
                        region = result.masked
                    # as coded, find_point_sources returns the PSF FWHM with or without
                    # peaks, and identify_sources keeps it for what follows
                    source_fwhm = float(fwhm)
                    if result.x_peak.size:
                        peaks = result
            except _PSF_FAILURES as exc:
                log.warning("region %d: PSF source finding failed (%s)", number, exc)
                peaks = None
            if peaks is not None:
                log.info("region %d: %d PSF peaks; UserStarFinder(fwhm=%.4f)", number,
                         peaks.x_peak.size, source_fwhm)
                found = measure_user_peaks(region, peaks.x_peak, peaks.y_peak, source_fwhm,
                                           backend=bk)
            else:
                log.info("region %d: reverting to DAOStarFinder(fwhm=%.4f, threshold=%g*%g)",
                         number, source_fwhm, nsigma, reg_rms_median)
                found = _dao_sources(region, source_fwhm, nsigma * reg_rms_median,
                                     inv_footprint, bk)
        if found is not None and len(found):
            tables.append(found)
    if not tables:
        log.warning("no point sources found in %s", total.product.filename)
        return empty_point_sources()
    sources = tables[0] if len(tables) == 1 else vstack(tables, join_type="outer")
    sources["id"] = Column(np.arange(1, len(sources) + 1, dtype=np.int64), name="id")
    x = np.asarray(sources["xcentroid"], dtype=np.float64)
    y = np.asarray(sources["ycentroid"], dtype=np.float64)
    sources["xcentroid"] = Column(x, name="xcentroid")
    sources["ycentroid"] = Column(y, name="ycentroid")
    ra, dec = total.product.wcs.all_pix2world(x, y, 0)
    sources.add_column(Column(np.asarray(ra, dtype=np.float64), name="RA"), index=3)
    sources.add_column(Column(np.asarray(dec, dtype=np.float64), name="DEC"), index=4)
    # as drizzlepac annotates the raw total list: '.8g' everywhere, then the five columns the
    # total catalog keeps get their catalog formats, units and descriptions
    for name in sources.colnames:
        if name != "id":
            sources[name].info.format = ".8g"
    for name, (fmt, unit, description) in _EMPTY_COLUMNS.items():
        if name in sources.colnames:
            sources[name].format = fmt
            sources[name].unit = unit
            sources[name].description = description
    log.info("identified %d point sources in %s", len(sources), total.product.filename)
    return sources


# ----------------------------------------------------------------------------- measure
def measure_point_catalog(image, sources: Table, *, backend=None) -> tuple[Table, Table]:
    """Aperture photometry of one filter image at the total's sources (``measure_sources``).

    Photometry (:func:`~hapgpu.catalogs._photometry.measure_apertures`) is on the filter's SCI
    *without* background subtraction, with the background rms image as the error, at the
    total's ``xcentroid``/``ycentroid``; RA/DEC come from the filter's WCS; ``Flags`` is 0.

    Parameters
    ----------
    image : PreparedImage
        The prepared filter image.
    sources : astropy.table.Table
        From :func:`identify_point_sources` (or a table with X-Center/Y-Center and ID).
    backend : str, Backend or None

    Returns
    -------
    table : astropy.table.Table
        The 17 columns of :data:`POINT_COLUMNS` in order, with drizzlepac's formats, units and
        descriptions (CI masked where undefined). For no sources, the total's empty table.
    subset : astropy.table.Table
        ``ID, MagAP2_<filter>, CI_<filter>, Flags_<filter>`` for the total catalog.
    """
    filter_name = image.product.filter_name
    if len(sources) == 0 or image.blank:
        # drizzlepac writes the total's (empty) source table for the filter, too.
        subset = Table(names=_subset_names(filter_name))
        return (sources.copy() if len(sources) == 0 else empty_point_sources()), subset
    bk = resolve_backend(backend if backend is not None else getattr(image, "backend", None))
    xname, yname, _ = _position_columns(sources)
    x = np.asarray(sources[xname], dtype=np.float64)
    y = np.asarray(sources[yname], dtype=np.float64)
    keywords = image.product.keywords
    gen = image.params.generation
    phot = measure_apertures(image.data, x, y, error=image.background.rms,
                             radii=tuple(image.aperture_radii), annulus=tuple(image.annulus),
                             gain=image.gain, photflam=float(keywords["photflam"]),
                             photplam=float(keywords["photplam"]),
                             salgorithm=gen.get("salgorithm", "mode"), backend=bk)
    ra, dec = image.product.wcs.all_pix2world(x, y, 0)
    table = Table()
    table["X-Center"] = x
    table["Y-Center"] = y
    table["RA"] = np.asarray(ra, dtype=np.float64)
    table["DEC"] = np.asarray(dec, dtype=np.float64)
    # aperture_photometry numbers the rows 1..n (drizzlepac takes ID from it).
    table["ID"] = np.arange(1, len(x) + 1, dtype=np.int64)
    for name in ("MagAp1", "MagErrAp1", "FluxAp1", "FluxErrAp1", "MagAp2", "MagErrAp2",
                 "MSkyAp2", "StdevAp2", "FluxAp2", "FluxErrAp2"):
        table[name] = np.asarray(phot[name], dtype=np.float64)
    ci = phot["CI"]
    table["CI"] = MaskedColumn(np.asarray(ci, dtype=np.float64),
                               mask=np.asarray(getattr(ci, "mask", np.zeros(len(x), bool))))
    table["Flags"] = np.zeros(len(x), dtype=np.int64)
    for name, (fmt, unit, description) in POINT_COLUMNS.items():
        table[name].format = fmt
        table[name].unit = unit
        table[name].description = description
    subset = table["ID", "MagAp2", "CI", "Flags"]
    subset.rename_column("MagAp2", f"MagAP2_{filter_name}")
    subset.rename_column("CI", f"CI_{filter_name}")
    subset.rename_column("Flags", f"Flags_{filter_name}")
    return table, subset

