"""HAP source catalogs: point (aperture) and segment catalogs of a total detection image and its
filter images, on the ``cpu``, ``gpu`` and ``cudasim`` backends (hap-pipeline.md §1.13).

>>> from hapgpu.catalogs import make_hap_catalogs                 # doctest: +SKIP
>>> cats = make_hap_catalogs("hst_..._total_..._drc.fits",
...                          ["hst_..._f555w_..._drc.fits", "hst_..._f814w_..._drc.fits"])
>>> cats.filters["f555w"]["segment"]                              # astropy Table, 36 columns
>>> cats.write("out/")                                            # the ECSV files, manifest order

The step follows drizzlepac 3.11's ``hapsequencer.create_catalog_products`` as coded: sources
are identified once on the total (segmentation first, then point sources, on the same image
state), measured on each filter image at the total's positions (forced photometry), flagged per
filter, joined onto the total catalog, the total catalog trimmed, and every catalog type
rejected together when the catalogs are dominated by cosmic rays.

Stages, each callable on arrays or prepared images: :func:`prepare_image` (§1.13 A),
:func:`identify_point_sources` / :func:`measure_point_catalog` (B),
:func:`identify_segments` / :func:`measure_segment_catalog` (C, D), :func:`flag_sources` (E),
:func:`combine_total`, :func:`trim_total`, :func:`cr_rejection`, :func:`write_catalog` (F).
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from astropy.table import Table

from .._threads import concurrent_kernels
from ..backend import resolve_backend
from ..errors import InvalidInputError, InvalidParameterError
from ._flags import flag_inputs, flag_sources
from ._output import (
    catalog_filename,
    combine_total,
    cr_rejection,
    exposure_filter_times,
    n1_exposure_time,
    subset_with_flags,
    trim_total,
    write_catalog,
)
from ._parameters import CatalogParameters, catalog_parameters, ci_limits
from ._photometry import measure_apertures
from ._point import (
    drizzled_total_psf,
    identify_point_sources,
    measure_point_catalog,
    total_point_table,
)
from ._prepare import PreparedImage, compute_background, make_wht_masks, prepare_image, region_threshold
from ._product import CatalogProduct, footprint_mask, read_catalog_product
from ._segment import SegmentDetection, identify_segments, measure_segment_catalog

__all__ = [
    "make_hap_catalogs",
    "HapCatalogs",
    "CatalogParameters",
    "CatalogProduct",
    "PreparedImage",
    "SegmentDetection",
    "catalog_parameters",
    "ci_limits",
    "read_catalog_product",
    "footprint_mask",
    "prepare_image",
    "compute_background",
    "make_wht_masks",
    "region_threshold",
    "measure_apertures",
    "identify_point_sources",
    "measure_point_catalog",
    "identify_segments",
    "measure_segment_catalog",
    "flag_sources",
    "combine_total",
    "trim_total",
    "cr_rejection",
    "write_catalog",
    "catalog_filename",
]

log = logging.getLogger(__name__)

#: Catalog types in drizzlepac's order of identification (segment first, then point).
CATALOG_TYPES = ("segment", "point")
_DRIZZLEPAC_TYPE = {"point": "aperture", "segment": "segment"}


@dataclass
class _ImageCatalogs:
    image: PreparedImage
    tables: dict = field(default_factory=dict)


@dataclass
class HapCatalogs:
    """The catalogs of one total product and its filter products.

    Attributes
    ----------
    total : dict
        ``{"point": Table, "segment": Table}``: the total catalogs after the join and the trim.
    filters : dict
        ``{filter name: {"point": Table, "segment": Table}}`` in input order, flagged.
    rejected : dict
        ``{"point": bool, "segment": bool}``: cosmic-ray-dominated catalogs; :meth:`write`
        writes every catalog of a rejected type with its rows removed.
    nsigma : dict
        ``Threshold (sigma)`` of each type: ``nsigma`` (point) and the final segmentation
        ``nsigma`` (None when the segmentation is empty).
    poor_quality : bool
        The segmentation was judged poor and accepted only by the big-source ratio test.
        drizzlepac 3.11 never writes its ``h19`` warning for this (its flag is never set), so
        the files follow the code and carry no ``h19``; the result is logged instead.
    """

    total: dict
    filters: dict
    rejected: dict
    nsigma: dict
    poor_quality: bool
    _images: dict = field(default_factory=dict, repr=False)
    diagnostic: bool = False

    def write(self, outdir=".") -> list[Path]:
        """Write every catalog as ECSV, filter catalogs first, in manifest order.

        Parameters
        ----------
        outdir : path-like
            Output folder (created if needed).

        Returns
        -------
        list of pathlib.Path
            Filter point, filter segment (per filter), then total point, total segment.
        """
        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        written = []
        entries = [(name, self._images[name], tables) for name, tables in self.filters.items()]
        entries.append(("total", self._images["total"], self.total))
        for _, image, tables in entries:
            for cat_type in ("point", "segment"):
                if cat_type not in tables:
                    continue
                path = outdir / catalog_filename(image.product.filename, cat_type)
                written.append(write_catalog(
                    tables[cat_type], path, image=image, cat_type=cat_type,
                    nsigma=self.nsigma[cat_type],
                    poor_quality=False,  # as coded: drizzlepac never writes h19
                    diagnostic=self.diagnostic, rejected=self.rejected.get(cat_type, False)))
        return written


def _as_product(item, kind: str) -> CatalogProduct:
    if isinstance(item, CatalogProduct):
        if item.kind != kind:
            raise InvalidInputError(f"{item.filename}: expected a {kind} product, got a {item.kind} product")
        return item
    return read_catalog_product(item, kind=kind)


def _types(types) -> tuple[str, ...]:
    if types in (None, "both"):
        return CATALOG_TYPES
    names = [types] if isinstance(types, str) else list(types)
    out = []
    for name in names:
        name = {"aperture": "point"}.get(name, name)
        if name not in CATALOG_TYPES:
            raise InvalidParameterError(
                f"catalog type {name!r} is not one of 'point' ('aperture'), 'segment', 'both'")
        out.append(name)
    return tuple(t for t in CATALOG_TYPES if t in out)


def _filter_inputs(product: CatalogProduct, params: CatalogParameters, bk):
    """A filter image prepared, and its flag inputs (None for a blank image)."""
    image = prepare_image(product, params, backend=bk)
    return image, (flag_inputs(image, backend=bk) if not image.blank else None)


def make_hap_catalogs(total, filters, *, config=None, backend=None, diagnostic=False,
                      types="both") -> HapCatalogs:
    """Point and segment catalogs of a total detection product and its filter products.

    Parameters
    ----------
    total : path-like or CatalogProduct
        The total detection product (DRZ/DRC with SCI and WHT).
    filters : sequence of path-like or CatalogProduct
        The filter products of the same visit and detector, in the order their columns are
        added to the total catalogs.
    config : CatalogParameters or dict, optional
        Parameters; a dict is merged over the shipped set of the detector
        (``{"catalog generation": {...}, "quality control": {...}}``).
    backend : str, Backend or None
        ``cpu``, ``gpu``, ``cudasim`` or ``auto``; None resolves through
        :func:`hapgpu.backend.resolve_backend`.
    diagnostic : bool
        drizzlepac's diagnostic mode: no cosmic-ray rejection of the catalogs.
    types : {"both", "point", "segment", "aperture"} or list
        Catalog types to build (drizzlepac's ``phot_mode``).

    Returns
    -------
    HapCatalogs

    Raises
    ------
    InvalidInputError
        Unreadable or inconsistent products (the message names the file).
    InvalidParameterError
        Unknown catalog type or parameter block.
    """
    bk = resolve_backend(backend)
    wanted = _types(types)
    total_product = _as_product(total, "total")
    filter_products = [_as_product(f, "filter") for f in filters]
    if not filter_products:
        raise InvalidInputError(f"{total_product.filename}: no filter products given")
    if isinstance(config, CatalogParameters):
        params = config
    else:
        params = catalog_parameters(total_product.instrument, total_product.detector,
                                    overrides=config)
    gen = params.generation

    # On the host, the work that does not depend on the total's sources -- the total's
    # drizzled library PSF, each filter image's preparation and flag inputs -- runs in a
    # worker thread beside the total's source identification (the compiled passes release the
    # GIL); the results are the same objects the serial order makes. (Not where threads may
    # not launch kernels at once: hapgpu._threads.)
    pool = (ThreadPoolExecutor(max_workers=1, thread_name_prefix="hapgpu-catalogs")
            if bk.name == "cpu" and concurrent_kernels() else None)
    try:
        psf_future = None
        if (pool is not None and "point" in wanted
                and gen.get("starfinder_algorithm", "psf") == "psf"):
            # its own copy of the WCS: the identification uses the product's meanwhile
            psf_future = pool.submit(drizzled_total_psf, total_product,
                                     wcs=total_product.wcs.deepcopy(), backend=bk)
        filter_futures = [pool.submit(_filter_inputs, product, params, bk) if pool else None
                          for product in filter_products]

        total_image = prepare_image(total_product, params, backend=bk)
        detection: SegmentDetection | None = None
        sources: Table | None = None
        nsigma = {"point": float(gen["nsigma"]), "segment": float(params.sourcex["segm_nsigma"])}
        if "segment" in wanted:
            detection = identify_segments(total_image, backend=bk)
            # None when the segmentation found nothing (drizzlepac then writes a null threshold)
            nsigma["segment"] = detection.final_nsigma
        if "point" in wanted:
            sources = identify_point_sources(total_image, backend=bk, library_psf=psf_future)

        totals = {}
        if detection is not None:
            totals["segment"] = detection.total_table
        if sources is not None:
            totals["point"] = total_point_table(sources)

        images = {"total": total_image}
        filter_tables = {}
        for product, future in zip(filter_products, filter_futures):
            name = product.filter_name
            image, inputs = (future.result() if future is not None
                             else _filter_inputs(product, params, bk))
            images[name] = image
            tables = {}
            for cat_type in wanted:
                if cat_type == "point":
                    table, subset = measure_point_catalog(image, sources, backend=bk)
                else:
                    table, subset = measure_segment_catalog(image, detection, backend=bk)
                if inputs is not None and len(table):
                    table = flag_sources(table, cat_type, image, inputs=inputs, backend=bk)
                tables[cat_type] = table
                totals[cat_type] = combine_total(totals[cat_type],
                                                 [subset_with_flags(subset, table, name)])
            filter_tables[name] = tables
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    flag_trim_value = gen["flag_trim_value"]
    for cat_type in wanted:
        totals[cat_type] = trim_total(totals[cat_type], flag_trim_value)

    n1 = n1_exposure_time(exposure_filter_times(total_product.exposures),
                          detector=total_product.detector, cr_residual=gen["cr_residual"])
    texptime = total_product.keywords.get("texpo_time") or math.nan
    rejected = cr_rejection(totals, detector=total_product.detector, n1_exposure_time=n1,
                            texptime=texptime, diagnostic=diagnostic)
    rejected = {cat_type: bool(rejected.get(cat_type, rejected.get(_DRIZZLEPAC_TYPE[cat_type], False)))
                for cat_type in wanted}
    if any(rejected.values()):
        log.warning("%s: the catalogs are dominated by cosmic rays; they are written empty",
                    total_product.filename)
    poor = bool(detection.poor_quality) if detection is not None else False
    if poor:
        log.warning("%s: the segmentation is of poor quality (crowded field or large segments)",
                    total_product.filename)
    return HapCatalogs(total=totals, filters=filter_tables, rejected=rejected, nsigma=nsigma,
                       poor_quality=poor, _images=images, diagnostic=diagnostic)
