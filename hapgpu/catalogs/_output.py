"""Combination, trimming, cosmic-ray rejection and writing of the HAP catalogs
(hap-pipeline.md §1.13 F), as drizzlepac 3.11's ``hapsequencer.create_catalog_products`` and
``catalog_utils`` (``combine_tables``, ``verify_crthresh``, ``annotate_table``,
``write_catalog``, ``fill_nans_maskvalues``) do it.

Order of the step: each filter catalog is flagged, its ``Flags`` copied into its subset table
(:func:`subset_with_flags`) and the subset left-joined onto the total catalog
(:func:`combine_total`); the total catalog alone is trimmed (:func:`trim_total`); the
cosmic-ray test (:func:`cr_rejection`, with :func:`n1_exposure_time`) may reject every catalog
type; every file is then written (:func:`write_catalog`), filter catalogs first.

As-coded details kept on purpose:

* the trim fills masked values with -9999.9 *in the column's dtype*, so a missing ``Flags_*``
  value of an integer column becomes -9999, which is neither above ``flag_trim_value`` nor
  close to -9999.9: a source with no measurement in a filter is kept by that filter;
* a total catalog with no ``Flags_*`` column at all loses every row;
* ``Number of sources`` is counted before a rejected catalog's rows are removed;
* the cosmic-ray test counts a row as good from the values stored in its ``Flag*`` columns,
  masks ignored (see :func:`count_good_sources`);
* the flag legend prints the CI limits of the parameter file (the total product's limits,
  which drizzlepac hands to every catalog of the visit), not the per-filter table values the
  flags were computed with; :func:`write_catalog` takes ``ci_limits=`` to print others;
* masked values and NaN are written as -9999.0, and +/-inf as the largest finite values
  (``numpy.nan_to_num``).

The header is built afresh (:func:`catalog_metadata`): metadata a table brought with it (for
example photutils' provenance keys) is not written.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Column, Table, join

from ..errors import InvalidInputError, InvalidParameterError, OutputWriteError

__all__ = [
    "FILL_VALUE", "TRIM_FILL_VALUE", "CR_FACTOR", "catalog_filename", "subset_with_flags",
    "combine_total", "trim_total", "exposure_filter_times", "n1_exposure_time",
    "count_good_sources", "cr_rejection", "wcs_header_keywords", "catalog_metadata",
    "segment_provenance",
    "fill_missing", "write_catalog", "write_ecsv",
]

log = logging.getLogger(__name__)

#: Value written for masked and NaN entries (drizzlepac ``constants.FLAG``).
FILL_VALUE = -9999.0
#: Value masked entries get before the total catalog is trimmed.
TRIM_FILL_VALUE = -9999.9

#: Expected cosmic rays per hour per detector area (R. White), per catalog type.
CR_FACTOR = {
    "WFC": {"aperture": 300.0, "segment": 150.0},
    "UVIS": {"aperture": 300.0, "segment": 150.0},
    "HRC": {"aperture": 37.0, "segment": 18.5},
    "PC": {"aperture": 46.0, "segment": 23.0},
}

_SUFFIX = {"aperture": "point", "segment": "segment"}


def _kind(cat_type: str) -> str:
    kind = "aperture" if cat_type == "point" else cat_type
    if kind not in _SUFFIX:
        raise InvalidParameterError(
            f"catalog type must be 'point' (or 'aperture') or 'segment', not {cat_type!r}")
    return kind


def catalog_filename(product_filename: str, cat_type: str) -> str:
    """Catalog file name of a drizzled product: ``_drc.fits``/``_drz.fits`` becomes
    ``_point-cat.ecsv`` or ``_segment-cat.ecsv``.

    Raises
    ------
    InvalidInputError
        The name does not end in ``_drc.fits`` or ``_drz.fits``.
    """
    name = Path(product_filename).name
    for ending in ("_drc.fits", "_drz.fits"):
        if name.endswith(ending):
            return f"{name[:-len(ending)]}_{_SUFFIX[_kind(cat_type)]}-cat.ecsv"
    raise InvalidInputError(f"{product_filename}: a HAP product name ends in _drc.fits or "
                            "_drz.fits")


# --------------------------------------------------------------------------------------------
# combination and trimming
# --------------------------------------------------------------------------------------------

def subset_with_flags(subset: Table, flagged: Table, filter_name: str) -> Table:
    """The filter's subset table with ``Flags_<filter>`` replaced by the flagged ``Flags``.

    Parameters
    ----------
    subset : astropy.table.Table
        ``ID, MagAP2_<f>, CI_<f>, Flags_<f>`` of the filter catalog.
    flagged : astropy.table.Table
        The flagged filter catalog (:func:`hapgpu.catalogs._flags.flag_sources`), same rows.
    filter_name : str
        ``<f>``, as in the column names.

    Returns
    -------
    astropy.table.Table
        A copy.

    Raises
    ------
    InvalidInputError
        The tables have different lengths or the column is missing.
    """
    name = f"Flags_{filter_name}"
    if name not in subset.colnames:
        raise InvalidInputError(f"subset table of {filter_name} has no {name!r} column")
    if len(subset) != len(flagged):
        raise InvalidInputError(f"subset table of {filter_name} has {len(subset)} rows, its "
                                f"flagged catalog {len(flagged)}")
    out = subset.copy()
    out[name] = flagged["Flags"]
    out[name].info.name = name
    return out


def combine_total(total_table: Table, subsets) -> Table:
    """Left-join each filter's subset table onto the total catalog on ``ID``, in order.

    Parameters
    ----------
    total_table : astropy.table.Table
        ``ID, X, Y, RA, DEC`` of the total detection catalog.
    subsets : sequence of astropy.table.Table
        One subset table per filter (``ID, MagAP2_<f>, CI_<f>, Flags_<f>``), in filter order.
        An empty subset adds nothing, and nothing is added to an empty total catalog
        (drizzlepac's ``combine_tables`` returns early).

    Returns
    -------
    astropy.table.Table
        Rows sorted by ``ID`` (the join's order); the filter columns are masked where a
        source has no row in that filter's table.
    """
    out = Table(total_table, copy=True)
    for subset in subsets:
        if len(subset) == 0 or len(out) == 0:
            log.info("combine: empty %s table, nothing joined",
                     "total" if len(out) == 0 else "filter subset")
            continue
        out = join(out, Table(subset), keys="ID", join_type="left",
                   metadata_conflicts="silent")
    return out


def trim_total(total_table: Table, flag_trim_value: float) -> Table:
    """Drop the total-catalog rows that every filter flags above ``flag_trim_value``.

    Masked values are filled with -9999.9 in each column's dtype; a row is dropped when, in
    every ``Flags_*`` column, the value is ``> flag_trim_value`` or ``numpy.isclose`` to
    -9999.9. With no ``Flags_*`` column every row is dropped (as coded).

    Parameters
    ----------
    total_table : astropy.table.Table
        The combined total catalog (:func:`combine_total`).
    flag_trim_value : float
        ``catalog generation → flag_trim_value`` (5).

    Returns
    -------
    astropy.table.Table
        The kept rows, masks preserved (the fill is used for the test only).
    """
    columns = [name for name in total_table.colnames if "Flags_" in name]
    if not columns:
        return total_table[:0].copy()
    filled = total_table[columns].filled(TRIM_FILL_VALUE)
    drop = np.ones(len(total_table), dtype=bool)
    for name in columns:
        values = np.asarray(filled[name])
        drop &= (values > flag_trim_value) | np.isclose(values, TRIM_FILL_VALUE)
    return total_table[~drop]


# --------------------------------------------------------------------------------------------
# cosmic-ray rejection
# --------------------------------------------------------------------------------------------

def _exposure_filter(header: fits.Header) -> str:
    """drizzlepac's per-exposure filter name: the non-clear filters, polarizer last."""
    raw = [str(header.get(key, "")).strip().lower()
           for key in ("FILTER", "FILTER1", "FILTER2", "FILTNAM1", "FILTNAM2")]
    names = [f for f in raw if f and not f.startswith("clear") and f != "n/a"]
    names = sorted(dict.fromkeys(names), key=lambda f: f.startswith("pol"))
    return "-".join(names) if names else "clear"


def exposure_filter_times(exposures) -> list[tuple[str, float]]:
    """(filter, EXPTIME) of each input exposure of a total product.

    Parameters
    ----------
    exposures : list of path-like
        FLT/FLC files.

    Returns
    -------
    list of (str, float)

    Raises
    ------
    InvalidInputError
        A file cannot be read or has no ``EXPTIME``.
    """
    out = []
    for path in exposures:
        try:
            header = fits.getheader(path, 0)
        except OSError as exc:
            raise InvalidInputError(f"{path}: cannot read the exposure header: {exc}") from exc
        if "EXPTIME" not in header:
            raise InvalidInputError(f"{path}: no EXPTIME keyword in the primary header")
        out.append((_exposure_filter(header), float(header["EXPTIME"])))
    return out


def n1_exposure_time(filter_times, *, detector: str, cr_residual: float) -> float:
    """Exposure time of the single-exposure filters of a total product (``n1_exposure_time``).

    Parameters
    ----------
    filter_times : iterable of (str, float)
        (filter, exposure time in s) of every exposure of the total product
        (:func:`exposure_filter_times`).
    detector : str
        IR and SBC give 0 (no cosmic-ray test).
    cr_residual : float
        ``catalog generation → cr_residual``. As coded it never changes the result: it scales
        the single-exposure time only when that is below the total, which cannot happen.

    Returns
    -------
    float
        0 when some filter has more than one exposure, otherwise the summed exposure time.
    """
    if detector.upper() in ("IR", "SBC"):
        return 0.0
    per_filter: dict[str, list[float]] = {}
    for name, exptime in filter_times:
        per_filter.setdefault(name, []).append(float(exptime))
    if not per_filter:
        return 0.0
    if max(len(v) for v in per_filter.values()) > 1:
        total = sum(sum(v) for v in per_filter.values() if len(v) > 1)
        n1, factor = 0.0, 0.0
    else:
        total = n1 = sum(v[0] for v in per_filter.values())
        factor = cr_residual * len(per_filter)
    if n1 < total:
        n1 *= min(factor, 1.0)
    return n1


def count_good_sources(table: Table) -> int:
    """Rows with a flag value below 2 in some ``Flag*`` column (``verify_crthresh``).

    As coded, the test reads the stored values of the columns, masks ignored: drizzlepac ORs
    the masked comparisons and counts them with ``numpy.where``, which looks at the data
    under the mask too (for a left join, a copy of another row's value).

    Parameters
    ----------
    table : astropy.table.Table
        A trimmed total catalog.

    Returns
    -------
    int
        0 when there is no ``Flag*`` column.
    """
    good = None
    for name in table.colnames:
        if name.startswith("Flag"):
            below = np.asarray(np.ma.getdata(table[name]) < 2, dtype=bool)
            good = below if good is None else good | below
    return 0 if good is None else int(np.count_nonzero(good))


def cr_rejection(total_tables: dict, *, detector: str, n1_exposure_time: float,
                 texptime: float, diagnostic: bool = False) -> dict:
    """Whether the catalogs are dominated by cosmic rays (``verify_crthresh``).

    A catalog type is rejected when ``0 < n_good < crfactor * n1**2 / texptime``; when any type
    is rejected, every type is. IR and SBC are never rejected, nor anything in diagnostic
    mode.

    Parameters
    ----------
    total_tables : dict
        ``{"point" or "aperture" or "segment": trimmed total catalog}``.
    detector : str
        ``WFC``, ``UVIS``, ``HRC``, ``PC`` (IR, SBC: no test).
    n1_exposure_time : float
        :func:`n1_exposure_time`, s.
    texptime : float
        ``TEXPTIME`` of the total product, s.
    diagnostic : bool
        Disable the rejection.

    Returns
    -------
    dict
        Same keys as ``total_tables``, bool values (True = write the catalog without rows).

    Raises
    ------
    InvalidParameterError
        A detector without a cosmic-ray factor.
    """
    reject = {key: False for key in total_tables}
    det = detector.upper()
    if diagnostic or det in ("IR", "SBC"):
        return reject
    if det not in CR_FACTOR:
        raise InvalidParameterError(f"no cosmic-ray factor for detector {detector!r}; known: "
                                    f"{', '.join(CR_FACTOR)}, IR, SBC")
    for key, table in total_tables.items():
        kind = _kind(key)
        thresh = CR_FACTOR[det][kind] * n1_exposure_time ** 2 / texptime
        n_good = count_good_sources(table)
        log.info("%s catalog: %d good sources of %d, cosmic-ray threshold %.1f",
                 _SUFFIX[kind], n_good, len(table), thresh)
        if 0 < n_good < thresh:
            reject[key] = True
    if any(reject.values()):
        log.info("catalogs rejected as cosmic-ray dominated: all rows removed")
        reject = {key: True for key in reject}
    return reject


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------

def _plain(value):
    """Python scalars for the YAML header (NumPy scalars become int/float/bool/str)."""
    if isinstance(value, np.generic):
        return value.item()
    return value


_CITATION = (
    " #==================================================================================================",
    " # Publications that use data from the Hubble Advanced Products (HAP) must acknowledge them:         ",
    " #                                                                                                  ",
    " #     This work uses observations of the NASA/ESA Hubble Space Telescope from the                  ",
    " #     Hubble Advanced Products collection produced by the Space Telescope Science                  ",
    " #     Institute (STScI/NASA).                                                                      ",
    " #                                                                                                  ",
    " # Please send STScI a copy of each paper that uses HAP data.                                       ",
    " #==================================================================================================",
)


def wcs_header_keywords(primary_header: fits.Header, sci_header: fits.Header) -> dict:
    """The drizzled product's WCS keywords as drizzlepac puts them in the catalog header.

    drizzlepac adds ``HSTWCS(product, ext=1).wcs2header()``: the WCSLIB keywords with a CD
    matrix (not PC/CDELT), without ``LONPOLE``/``LATPOLE`` and the other keywords stwcs
    excludes, with ``WCSNAME``. The same stwcs call is made here on the product's headers.

    Parameters
    ----------
    primary_header, sci_header : astropy.io.fits.Header

    Returns
    -------
    dict
        Keyword -> value, in header order.

    Raises
    ------
    InvalidInputError
        The SCI header has no usable WCS.
    """
    import warnings

    from stwcs.wcsutil import HSTWCS

    hdul = fits.HDUList([fits.PrimaryHDU(header=primary_header.copy()),
                         fits.ImageHDU(header=sci_header.copy(), name="SCI")])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = HSTWCS(hdul, ext=1).wcs2header()
    except (ValueError, KeyError) as exc:
        raise InvalidInputError(f"{primary_header.get('FILENAME', 'product')}[SCI]: cannot "
                                f"build the catalog WCS keywords: {exc}") from exc
    return {key: _plain(value) for key, value in header.items()}


def catalog_metadata(image, cat_type: str, *, nsigma: float, n_sources: int,
                     poor_quality: bool = False, ci_limits=None) -> OrderedDict:
    """The ECSV header of a HAP catalog, keys in drizzlepac's ``annotate_table`` order.

    Parameters
    ----------
    image : PreparedImage
        The catalog's image (product keywords, parameters, aperture radii in pixels).
    cat_type : {"point", "aperture", "segment"}
    nsigma : float
        ``Threshold (sigma)``: ``nsigma`` for point catalogs, the final ``nsigma`` of the
        segmentation for segment catalogs.
    n_sources : int
        ``Number of sources``.
    poor_quality : bool
        Segment catalogs: add the ``h19`` warning.
    ci_limits : tuple of float, optional
        (lower, upper) printed in the flag legend; default the parameter file's
        ``quality control → ci filter → <type>`` values.

    Returns
    -------
    collections.OrderedDict
        ``h00``-``h08`` (citation), ``WCSNAME`` ... ``Aperture PA``, ``Aper1 (arcsec)``,
        ``Aper2 (arcsec)``, ``Threshold (sigma)``, ``Exposure Start``, ``Total Exposure Time``,
        ``CCD Gain`` (not SBC), ``Filter 1``, ``Filter 2``, the product WCS keywords
        (:func:`wcs_header_keywords`),
        ``Number of sources``, ``h09``-``h18`` (notes and flag legend), ``h19`` (poor
        segmentation).
    """
    kind = _kind(cat_type)
    product = image.product
    kw = product.keywords
    gen = image.params.generation
    if ci_limits is None:
        block = image.params.quality_control["ci filter"][kind]
        ci_limits = (float(block["ci_lower_limit"]), float(block["ci_upper_limit"]))
    ci_lower, ci_upper = (float(v) for v in ci_limits)
    aper_arcsec = (gen["aperture_1"], gen["aperture_2"])
    aper_pixels = tuple(image.aperture_radii) if image.aperture_radii else tuple(
        a / product.pscale for a in aper_arcsec)

    meta = OrderedDict()
    for i, line in enumerate(_CITATION):
        meta[f"h{i:02d}"] = [line]
    for key, name in (("WCSNAME", "wcs_name"), ("WCSTYPE", "wcs_type"),
                      ("Proposal ID", "proposal_id"), ("Image File Name", "image_file_name"),
                      ("Target Name", "target_name"), ("Date Observed", "date_obs"),
                      ("Time Observed", "time_obs"), ("Instrument", "instrument"),
                      ("Detector", "detector"), ("Target RA", "target_ra"),
                      ("Target DEC", "target_dec"), ("Orientation", "orientation"),
                      ("Aperture RA", "aperture_ra"), ("Aperture DEC", "aperture_dec"),
                      ("Aperture PA", "aperture_pa")):
        meta[key] = _plain(kw.get(name))
    meta["Aper1 (arcsec)"] = _plain(aper_arcsec[0])
    meta["Aper2 (arcsec)"] = _plain(aper_arcsec[1])
    meta["Threshold (sigma)"] = _plain(nsigma)
    meta["Exposure Start"] = _plain(kw.get("expo_start"))
    meta["Total Exposure Time"] = _plain(kw.get("texpo_time"))
    if str(kw.get("detector", "")).upper() != "SBC":
        meta["CCD Gain"] = _plain(kw.get("ccd_gain"))
    meta["Filter 1"] = _plain(kw.get("filter1"))
    if product.kind == "total" or str(kw.get("instrument", "")).upper() == "WFC3":
        meta["Filter 2"] = ""
    else:
        meta["Filter 2"] = _plain(kw.get("filter2"))
    meta.update(wcs_header_keywords(product.primary_header, product.sci_header))
    meta["Number of sources"] = int(n_sources)

    rule = "#" + "=" * 97
    notes = [
        ("h09", rule),
        ("h10", "IMPORTANT NOTES"),
        ("h10.1", "Photometry in this catalog is aperture photometry in the ABMAG system, with"),
        ("h10.2", "zeropoints for an infinite aperture. Total magnitudes need aperture"),
        ("h10.3", "corrections for the light outside the chosen aperture"),
        ("h10.4", "(see Whitmore et al., 2016 AJ, 151, 134W)."),
        ("h10.5", " "),
        ("h11", "X and Y are 0-based pixel coordinates: the first pixel's centre is (0,0)."),
        ("h12", "RA and Dec are sky coordinates at the epoch of observation"),
        ("h12.1", f"(WCS type: {kw.get('wcs_type')})."),
        ("h13", "Magnitudes are ABMAG."),
        ("h14", "Columns ending in Ap1 are measured in the inner aperture "),
        ("h14.1", f"(radius = {aper_pixels[0]} pixels, {aper_arcsec[0]} arcsec)."),
        ("h15", "Columns ending in Ap2 are measured in the outer aperture "),
        ("h15.1", f"(radius = {aper_pixels[1]} pixels, {aper_arcsec[1]} arcsec)."),
        ("h16", "Concentration index CI = MagAp1 - MagAp2."),
        ("h17", "Flag values (a source's flag is the sum of those that apply):"),
        ("h17.1", f"    0 - point source ({ci_lower} < CI < {ci_upper})"),
        ("h17.2", f"    1 - extended source (CI > {ci_upper})"),
        ("h17.3", "    2 - questionable photometry: single-pixel saturation (not set)"),
        ("h17.4", "    4 - questionable photometry: saturated pixels"),
        ("h17.5", "    8 - below the detection limit (faint)"),
        ("h17.6", f"   16 - hot pixel or cosmic ray (CI < {ci_lower})"),
        ("h17.7", "   32 - false detection around a saturated source (not set)"),
        ("h17.8", "   64 - false detection near the image edge (few exposures)"),
        ("h17.9", "  128 - bleeding and cosmic rays (not set)"),
        ("h18", rule),
    ]
    for key, text in notes:
        meta[key] = [text]
    if kind == "segment" and poor_quality:
        meta["h19"] = [("WARNING: the segmentation is of poor quality (crowded field or very "
                        "large segments).")]
    return meta


def fill_missing(table: Table) -> Table:
    """Masked values and NaN become -9999.0 (``fill_nans_maskvalues``).

    Integer columns get -9999 (the fill is cast to the column dtype). As with
    ``numpy.nan_to_num``, +/-inf become the largest finite values of the dtype.

    Returns
    -------
    astropy.table.Table
        A new table.
    """
    out = table.filled(FILL_VALUE)
    for name in out.colnames:
        col = out[name]
        if col.dtype.kind == "f":
            col[:] = np.nan_to_num(np.asarray(col), nan=FILL_VALUE)
    return out


def _atomic_write(path: Path, write) -> None:
    directory = path.parent if str(path.parent) else Path(".")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        os.close(fd)
    except OSError as exc:
        raise OutputWriteError(f"{path}: cannot write the catalog: {exc}") from exc
    try:
        write(temp)
        os.replace(temp, path)
    except OSError as exc:
        raise OutputWriteError(f"{path}: cannot write the catalog: {exc}") from exc
    finally:
        if os.path.exists(temp):
            os.remove(temp)


def _column_strings(column) -> list[str]:
    """The ECSV text of every value of a plain numeric column, as astropy writes it.

    astropy's ECSV writer writes ``str(col[i])``, the NumPy scalar's ``str``. For float64 that
    is the shortest repr, which is Python's ``repr`` of the same float; integers print alike;
    other dtypes (float32, bool) go through NumPy's own scalars.
    """
    data = np.asarray(column)
    if data.dtype.kind == "f" and data.dtype.itemsize == 8:
        return list(map(repr, data.tolist()))
    if data.dtype.kind in "iu":
        return list(map(str, data.tolist()))
    return list(map(str, data))


def write_ecsv(table: Table, path) -> None:
    """Write ``table`` as ECSV, the bytes astropy's ``ascii.ecsv`` writer writes.

    A table of plain (unmasked, 1-D) numeric or boolean columns gets astropy's header (the
    table with no rows written by astropy: meta, column types, the column-name line) and its
    rows formatted here a column at a time (:func:`_column_strings`), joined by spaces with
    ``os.linesep`` as astropy does -- no value of such a column contains a space or a quote,
    so the CSV writer would quote nothing. Anything else is written by astropy.

    Parameters
    ----------
    table : astropy.table.Table
    path : path-like
        Output file (overwritten).
    """
    plain = len(table) > 0 and all(
        type(column) is Column and column.ndim == 1 and column.dtype.kind in "biuf"
        for column in table.itercols())
    if not plain:
        table.write(path, format="ascii.ecsv", overwrite=True)
        return
    header = io.StringIO()
    table[:0].write(header, format="ascii.ecsv")
    columns = [_column_strings(column) for column in table.itercols()]
    # as astropy.io.ascii.write: os.linesep between lines and after the last, no translation
    with open(path, "w", newline="") as handle:
        handle.write(header.getvalue())
        handle.write(os.linesep.join(map(" ".join, zip(*columns))))
        handle.write(os.linesep)


def segment_provenance(image) -> OrderedDict:
    """The measurement block a segment catalog starts with, before ``h00``.

    drizzlepac's segment tables come from photutils' ``SourceCatalog.to_table``, whose meta
    (photutils 2, the archive's) is ``date`` (UTC), ``version`` (the packages that made the
    numbers), ``localbkg_width``, ``apermask_method`` and ``kron_params``; the same keys are
    written here with hapgpu's values.
    """
    import datetime
    import platform
    from importlib.metadata import PackageNotFoundError, version

    versions = {"Python": platform.python_version()}
    for package in ("hapgpu", "astropy", "numpy", "scipy", "numba"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    sourcex = image.params.sourcex
    kron_params = (float(sourcex["kron_scaling_radius"]), float(sourcex["kron_minimum_radius"]))
    if image.product.kind == "total":
        # drizzlepac joins two SourceCatalog tables into the total table; astropy's metadata
        # merge concatenates their kron_params tuples
        kron_params = kron_params + kron_params
    return OrderedDict([
        ("date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("version", versions),
        ("localbkg_width", 0),
        ("apermask_method", "correct"),
        ("kron_params", kron_params),
    ])


def write_catalog(table: Table, path, *, image, cat_type: str, nsigma: float,
                  poor_quality: bool = False, diagnostic: bool = False, rejected: bool = False,
                  ci_limits=None) -> Path:
    """Write one HAP catalog as ECSV (temporary name, then rename).

    Parameters
    ----------
    table : astropy.table.Table
        The catalog (filter or total); its own ``meta`` is replaced by :func:`catalog_metadata`.
    path : path-like
        Output file (:func:`catalog_filename`).
    image : PreparedImage
        The catalog's image.
    cat_type : {"point", "aperture", "segment"}
    nsigma : float
        ``Threshold (sigma)`` (see :func:`catalog_metadata`).
    poor_quality : bool
        Segment catalogs: the segmentation was judged poor (``h19``).
    diagnostic : bool
        Also write a ds9-style region file ``<name>.reg`` with 1-based X, Y.
    rejected : bool
        Cosmic-ray rejection (:func:`cr_rejection`): write the header and no rows.
    ci_limits : tuple of float, optional
        CI limits of the flag legend (default: the parameter file's).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    OutputWriteError
        The file cannot be written.
    """
    path = Path(path)
    kind = _kind(cat_type)
    out = Table(table, copy=True)
    meta = catalog_metadata(image, kind, nsigma=nsigma, n_sources=len(out),
                            poor_quality=poor_quality, ci_limits=ci_limits)
    out.meta = segment_provenance(image) | meta if kind == "segment" else meta
    if rejected:
        out.remove_rows(slice(0, None))
    out = fill_missing(out)
    _atomic_write(path, lambda temp: write_ecsv(out, temp))
    log.info("wrote %s (%d sources)", path, len(out))
    if diagnostic:
        _write_regions(out, path.with_suffix(".reg"), kind)
    return path


def _write_regions(table: Table, path: Path, kind: str) -> None:
    """ds9 positions (1-based) of a catalog, drizzlepac's diagnostic ``.reg`` file."""
    names = [n for n in (("X-Center", "Y-Center"), ("X-Centroid", "Y-Centroid"))
             if n[0] in table.colnames]
    if not names:
        log.info("%s: no position columns, no region file", path)
        return
    xname, yname = names[0]
    regions = Table({xname: np.asarray(table[xname], dtype=np.float64) + 1.0,
                     yname: np.asarray(table[yname], dtype=np.float64) + 1.0})
    if kind == "segment":
        regions[xname].info.format = ".10f"
        regions[yname].info.format = ".10f"
        fmt = "ascii.commented_header"
    else:
        fmt = "ascii"
    _atomic_write(path, lambda temp: regions.write(temp, format=fmt, overwrite=True))
