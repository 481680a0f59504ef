"""The drizzled products of an SVM visit (hap-pipeline.md §1.10-§1.12).

For each detector with direct exposures, in drizzlepac's order (``create_drizzle_products``):

1. the metawcs: one north-up frame covering every direct exposure
   (:func:`hapgpu.svm._metawcs.make_mosaic_wcs` with the total's ``final_rot``/``final_scale``);
2. for each filter product: its footprint mask and keywords (§1.11), AstroDrizzle with
   ``final_ra/dec``, ``final_crpix1/2``, ``final_outnx/ny`` of the metawcs (``final_rot`` and
   ``final_scale`` from the filter's own parameters) and ``resetbits=0`` when the filter has a
   single exposure; the mask keywords and MEANWHT/MEDWHT into the product;
3. then each exposure of that filter on the metawcs itself, ``resetbits=0``; it runs after its
   filter, so it inherits the cosmic-ray flags (DQ ``crbit``) the filter's ``driz_cr`` wrote
   into the renamed input;
4. the total, on the metawcs, ``resetbits=0``, from the exposures of every filter with more
   than one exposure (all exposures when every filter has one), with its footprint keywords.

Every product's log goes to its trailer (``_trl.log``, renamed ``_trl.txt``). The products are
written into the run's staging folder, each exactly once: AstroDrizzle's ``finalize_headers``
hook (:class:`_FinalHeaders`) puts the footprint keywords and the keywords of
:func:`hapgpu.svm._headers.refine_product_headers` (S_REGION traced from the SCI array in
memory, NUMEXP, PHOT* moved, HAPLEVEL, HDRTAB with HAPEXPNAME ...) into the product before it
is written. :func:`refine_headers` then only reports a refinement that failed (the pipeline's
exit status 15), and refines from the file a product that was made without the hook.

Speed without changing a bit of the products: one
:class:`~hapgpu.astrodrizzle._exposure.VisitCache` per detector, so every input is read (and its
WCS built) once and stays on the device for all its products, the cosmic-ray flags and MDRIZSKY
that a filter writes into it taken over from the values written; each exposure's chip polygons
filled once for all the footprint masks, the total's masks continuing its first filter's; each
product written once with its final headers (no copy for the footprint keywords, no rewrite
for the refinement); and the SCI and WHT arrays of the filter and total products kept in
memory for the catalogs and previews (:attr:`DrizzledProduct.sci`), which then read only the
headers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import HapGpuError, InvalidInputError
from ._manifest import TrailerLog

__all__ = ["DrizzledProduct", "create_drizzle_products", "refine_headers", "total_inputs"]

log = logging.getLogger(__name__)

#: Parameters that place the output frame (drizzlepac ``create_mosaic_pars``).
_FRAME_KEYS = ("final_ra", "final_dec", "final_crpix1", "final_crpix2", "final_outnx", "final_outny")


@dataclass
class DrizzledProduct:
    """One drizzled product made by :func:`create_drizzle_products`.

    Attributes
    ----------
    product : FilterProduct, ExposureProduct or TotalProduct
    path : pathlib.Path
        The DRZ/DRC file in the staging folder.
    hap_level : int
        1 for exposures, 2 for filter and total products.
    inputs : list of pathlib.Path
        Renamed inputs drizzled into it.
    mask : numpy.ndarray or None
        Footprint count mask (int16, frame shape) of filter and total products.
    sci, wht : numpy.ndarray or None
        Filter and total products: the SCI and WHT arrays written into the file (float32
        ``(ny, nx)``, host memory), for the catalogs and previews; None once released.
    refined : bool
        The pipeline keywords went into the product before its write (AstroDrizzle's
        ``finalize_headers``); :func:`refine_headers` leaves it alone.
    refine_error : Exception or None
        Why that refinement failed (raised again by :func:`refine_headers`).
    """

    product: object
    path: Path
    hap_level: int
    inputs: list = field(default_factory=list)
    mask: object = None
    sci: object = field(default=None, repr=False)
    wht: object = field(default=None, repr=False)
    refined: bool = False
    refine_error: object = None


def total_inputs(total) -> list:
    """Exposures drizzled into a total product (hap-pipeline.md §1.12 step 3).

    Those of every filter with more than one exposure; when every filter has a single
    exposure, all of them. Grouped by filter name in exposure order, as drizzlepac's
    ``TotalProduct.wcs_drizzle_product`` builds the list.

    Parameters
    ----------
    total : TotalProduct

    Returns
    -------
    list of ExposureProduct
    """
    groups: dict[str, list] = {}
    for exposure in total.edp_list:
        groups.setdefault(exposure.filters, []).append(exposure)
    chosen = [e for members in groups.values() if len(members) > 1 for e in members]
    for name, members in groups.items():
        if len(members) == 1 and chosen:
            log.info("excluding single exposure filter image %s for %s from %s",
                     members[0].full_filename, name, total.drizzle_filename)
    if not chosen:
        log.info("all filters of %s are single exposures, so all exposures are included",
                 total.drizzle_filename)
        chosen = [e for members in groups.values() for e in members]
    return chosen


def _frame_parameters(frame, config_pars: dict, *, own_rot_scale: bool) -> dict:
    """Output-frame parameters: the metawcs's position and size, with its own rotation and
    scale (``final_refimage=metawcs``) or those of the product's parameters (filters)."""
    from ._metawcs import mosaic_drizzle_pars

    pars = mosaic_drizzle_pars(frame)
    if own_rot_scale:
        return pars
    out = {key: pars[key] for key in _FRAME_KEYS}
    out["final_rot"] = config_pars.get("final_rot")
    out["final_scale"] = config_pars.get("final_scale")
    return out


def _drizzle(product, inputs, config, overrides: dict, folder: Path, *, backend, level: int, visit=None,
             keep_arrays: bool = False, finalize_headers=None):
    """Run AstroDrizzle for one product with its trailer; return its result (the product
    path is ``result.product``; with ``keep_arrays`` its SCI and WHT arrays come along).

    ``visit`` (:class:`hapgpu.astrodrizzle._exposure.VisitCache`) holds the inputs read by the
    earlier products of the detector; ``finalize_headers`` is AstroDrizzle's hook run on the
    product before its write (:class:`_FinalHeaders`).
    """
    from ..astrodrizzle import astrodrizzle

    pars = dict(config.astrodrizzle)
    pars.update(overrides)
    pars["runfile"] = product.trl_logname
    pars["preserve"] = False
    with TrailerLog(folder, product.trl_logname, product.trl_filename, level):
        log.info("AstroDrizzle for %s from %s", product.drizzle_filename,
                 ", ".join(Path(p).name for p in inputs))
        for key in sorted(pars):
            log.info("    %s = %r", key, pars[key])
        result = astrodrizzle([str(p) for p in inputs], folder / product.product_basename,
                              backend=backend, pars=pars, progress=False, visit=visit,
                              keep_arrays=keep_arrays, finalize_headers=finalize_headers)
    if result.product is None or result.product.name != product.drizzle_filename:
        raise InvalidInputError(
            f"{product.drizzle_filename}: AstroDrizzle wrote {result.product}; the inputs' "
            "FLT/FLC type does not match the product type")
    return result


def _footprint_header(hdul, mask_kws: dict, mask, weights: dict | None = None) -> None:
    """NPIXFRAC ... MEDNEXP and MEANWHT/MEDWHT into the product's primary header (in memory).

    The weight statistics are :func:`~hapgpu.svm._footprint.written_weight_keywords` of the
    WHT array over ``mask`` (as when they were read back from the written product), unless
    ``weights`` gives them (measured earlier from the same arrays).
    """
    from ._footprint import written_weight_keywords

    header = hdul[0].header
    for key, (value, comment) in mask_kws.items():
        header[key] = (float(value), comment)
    if weights is None:
        weights = written_weight_keywords(hdul["WHT", 1].data, mask)
    for key, (value, comment) in weights.items():
        header[key] = (float(value), comment)


class _FinalHeaders:
    """AstroDrizzle's ``finalize_headers`` hook of one SVM product: the footprint keywords
    (filter and total products) and the keywords of
    :func:`~hapgpu.svm._headers.refine_product_headers`, on the HDU list before its one write.

    :meth:`begin` starts measuring the product's arrays (S_REGION polygons, MEANWHT/MEDWHT)
    on a worker thread while AstroDrizzle builds the headers; the call takes the results.
    A refinement that fails (a keyword-update problem: drizzlepac's exit status 15) does not
    stop the product from being written; the error is kept in :attr:`error` for
    :func:`refine_headers` to raise, as when the refinement followed the write.
    """

    def __init__(self, product, hap_level: int, names: dict, folder: Path, footprint=None):
        self.product = product
        self.hap_level = hap_level
        self.names = names
        self.folder = folder
        self.footprint = footprint  # (mask keywords, total mask) or None
        self.done = False
        self.error = None
        self._measured = None

    def begin(self, sci, wht) -> None:
        """Start :func:`~hapgpu.svm._headers.measure_in_background` of the final arrays."""
        from ._headers import measure_in_background

        mask = None if self.footprint is None else self.footprint[1]
        self._measured = measure_in_background(sci, wht, mask, weights=self.footprint is not None)

    def __call__(self, hdul, path) -> None:
        from ._headers import measured_results, refine_product_hdulist, sregion_values

        weights, traced = measured_results(self._measured)
        self._measured = None
        if self.footprint is not None:
            keywords, mask = self.footprint
            _footprint_header(hdul, keywords, mask, weights)
        log.info("refining the header of %s", Path(path).name)
        try:
            s_region = None if traced is None else sregion_values(hdul, path=path, traced={1: traced})
            refine_product_hdulist(hdul, path, hap_level=self.hap_level, hap_exposure_names=self.names,
                                   poller_aperture=getattr(self.product, "aperture", None),
                                   input_dir=self.folder, s_region=s_region)
        except (HapGpuError, OSError) as exc:
            self.error = exc
            return
        self.done = True


class _Footprints:
    """Footprint masks of a detector's products on its metawcs (§1.11), sharing the work.

    Each exposure's chip polygons are filled once (:func:`~hapgpu.svm._footprint.chip_fills`);
    a product whose exposure list starts with an earlier product's (the total after its first
    filter) continues that product's masks (:func:`~hapgpu.svm._footprint.accumulate_footprint`
    adds the chips in the same order, so the masks are those of a fresh build).
    """

    def __init__(self, frame):
        self.frame = frame
        self._fills: dict = {}
        self._done: list = []  # (exposure paths, (total_mask, scaled_mask))

    def masks(self, paths) -> tuple:
        from ._footprint import accumulate_footprint, chip_fills

        paths = tuple(Path(p) for p in paths)
        start, n_done = None, 0
        for done, masks in self._done:
            if len(done) > n_done and paths[:len(done)] == done:
                start, n_done = masks, len(done)
        fills = []
        for path in paths[n_done:]:
            if path not in self._fills:
                self._fills[path] = chip_fills(path, self.frame.wcs, self.frame.shape)
            fills += self._fills[path]
        masks = accumulate_footprint(fills, self.frame.shape, start=start)
        self._done.append((paths, masks))
        return masks


def _footprint(product, paths, footprints: _Footprints):
    """Footprint count mask and keywords of a filter or total product (§1.11)."""
    from ._footprint import mask_keywords

    total_mask, scaled_mask = footprints.masks(paths)
    keywords = mask_keywords(total_mask, scaled_mask)
    log.info("%s footprint: NPIXFRAC %.4g, MEANNEXP %.4g, MEDNEXP %.4g", product.drizzle_filename,
             keywords["NPIXFRAC"][0], keywords["MEANNEXP"][0], keywords["MEDNEXP"][0])
    return total_mask, keywords


def create_drizzle_products(total, configs: dict, folder, *, backend=None, timer=None,
                            level: int = logging.INFO) -> tuple[list[str], list[DrizzledProduct]]:
    """Drizzle the filter, exposure and total products of one detector (§1.12).

    Parameters
    ----------
    total : TotalProduct
        With ``edp_list``/``fdp_list`` already cleared of ramp and quad exposures.
    configs : dict
        ``{product: HapConfig}`` for the total, each filter and each exposure.
    folder : path-like
        Staging folder holding the renamed inputs; products and trailers are written there.
    backend : hapgpu.backend.Backend, optional
    timer : object, optional
        Anything with a context method ``step(name, detail)`` (the visit's progress and timing).
    level : int
        Lowest log level written to the trailers.

    Returns
    -------
    names : list of str
        Manifest entries in drizzlepac's order: per filter its product and trailer, then per
        exposure its product, renamed input and trailer; then the total and its trailer.
    products : list of DrizzledProduct
        The products made, in the same order.

    Raises
    ------
    hapgpu.errors.HapGpuError
        From the metawcs, the footprint or AstroDrizzle (the message names the file).
    """
    folder = Path(folder)
    names, made = [], []
    if not total.edp_list:
        return names, made
    _drizzle_products(total, configs, folder, backend, timer, level, names, made)
    return names, made


def _made(product, path: Path, hap_level: int, inputs, final: _FinalHeaders, mask=None, result=None):
    """The :class:`DrizzledProduct` record of a product written with ``final`` as its hook."""
    return DrizzledProduct(product, path, hap_level, inputs, mask,
                           sci=getattr(result, "sci", None), wht=getattr(result, "wht", None),
                           refined=final.done, refine_error=final.error)


def _drizzle_products(total, configs, folder: Path, backend, timer, level, names, made) -> None:
    """The body of :func:`create_drizzle_products` (``names`` and ``made`` filled in place)."""
    from ..astrodrizzle._exposure import VisitCache
    from ._metawcs import make_mosaic_wcs

    step = timer.step if timer is not None else _no_step
    total_pars = configs[total].astrodrizzle
    with step("metawcs", total.drizzle_filename):
        frame = make_mosaic_wcs([folder / e.full_filename for e in total.edp_list],
                                rot=total_pars.get("final_rot"), scale=total_pars.get("final_scale"))
    total.meta_wcs = frame
    visit = VisitCache()  # every input is read once for all the products of the detector
    footprints = _Footprints(frame)
    # HDRTAB's HAPEXPNAME: the HAP names of the detector's exposures (a product's inputs are
    # all of its detector, so the names of the visit's other detectors never match its rows)
    hap_names = {e.full_filename: e.product_basename for e in total.edp_list}
    ny, nx = frame.shape
    log.info("metawcs of %s: %d x %d pixels, %.5f arcsec/pixel, CRVAL (%.7f, %.7f)",
             total.drizzle_filename, nx, ny, frame.pscale, *frame.wcs.wcs.crval)

    for filter_product in total.fdp_list:
        paths = [folder / e.full_filename for e in filter_product.edp_list]
        config = configs[filter_product]
        with step("footprint", filter_product.drizzle_filename):
            mask, keywords = _footprint(filter_product, paths, footprints)
        filter_product.meta_wcs, filter_product.mask = frame, mask
        overrides = _frame_parameters(frame, config.astrodrizzle, own_rot_scale=False)
        if len(paths) == 1:
            overrides["resetbits"] = 0  # use the pixels already flagged as cosmic rays
        final = _FinalHeaders(filter_product, 2, hap_names, folder, footprint=(keywords, mask))
        with step("drizzle filter", filter_product.drizzle_filename):
            result = _drizzle(filter_product, paths, config, overrides, folder, backend=backend, level=level,
                              visit=visit, keep_arrays=True, finalize_headers=final)
        made.append(_made(filter_product, result.product, 2, paths, final, mask, result))
        names += [filter_product.drizzle_filename, filter_product.trl_filename]
        for exposure in filter_product.edp_list:
            config = configs[exposure]
            overrides = _frame_parameters(frame, config.astrodrizzle, own_rot_scale=True)
            overrides["resetbits"] = 0
            final = _FinalHeaders(exposure, 1, hap_names, folder)
            with step("drizzle exposure", exposure.drizzle_filename):
                path = _drizzle(exposure, [folder / exposure.full_filename], config, overrides,
                                folder, backend=backend, level=level, visit=visit,
                                finalize_headers=final).product
            made.append(_made(exposure, path, 1, [folder / exposure.full_filename], final))
            names += [exposure.drizzle_filename, exposure.full_filename, exposure.trl_filename]

    config = configs[total]
    with step("footprint", total.drizzle_filename):
        mask, keywords = _footprint(total, [folder / e.full_filename for e in total.edp_list], footprints)
    del footprints  # the masks of the filters are kept by their products
    total.mask = mask
    inputs = [folder / e.full_filename for e in total_inputs(total)]
    overrides = _frame_parameters(frame, config.astrodrizzle, own_rot_scale=True)
    overrides["resetbits"] = 0
    final = _FinalHeaders(total, 2, hap_names, folder, footprint=(keywords, mask))
    with step("drizzle total", total.drizzle_filename):
        result = _drizzle(total, inputs, config, overrides, folder, backend=backend, level=level, visit=visit,
                          keep_arrays=True, finalize_headers=final)
    made.append(_made(total, result.product, 2, inputs, final, mask, result))
    names += [total.drizzle_filename, total.trl_filename]


def refine_headers(products, totals, folder) -> None:
    """:func:`hapgpu.svm._headers.refine_product_headers` on every drizzled product not yet refined.

    Products of :func:`create_drizzle_products` got their keywords before their write; for
    them this raises the error their refinement met, if any, and does nothing else.

    Parameters
    ----------
    products : iterable of DrizzledProduct
    totals : sequence of TotalProduct
        Every detector of the visit: the HAP exposure names of HDRTAB come from all of them.
    folder : path-like
        Staging folder (products and renamed inputs).

    Raises
    ------
    hapgpu.errors.HapGpuError, OSError
        A product cannot be read or updated (the pipeline's exit status 15).
    """
    from ._headers import refine_product_headers

    names = {e.full_filename: e.product_basename for t in totals for e in t.edp_list}
    for item in products:
        if item.refine_error is not None:
            raise item.refine_error
        if item.refined:
            continue
        aperture = getattr(item.product, "aperture", None)
        log.info("refining the header of %s", item.path.name)
        refine_product_headers(item.path, hap_level=item.hap_level, hap_exposure_names=names,
                               poller_aperture=aperture, input_dir=Path(folder))


class _NoStep:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _no_step(name, detail=""):
    return _NoStep()
