"""Quality flags of the HAP filter catalogs (hap-pipeline.md §1.13 E).

drizzlepac 3.11 flags every filter catalog (point and segment) with
``hla_flag_filter.run_source_list_flagging``; the bits it sets, combined by bitwise OR, are

===  ===========================================================================================
bit  rule as coded
===  ===========================================================================================
1    extended: CI missing or 0, or ``CI > ci_upper``
4    saturated: a DQ-saturated pixel (bit 256, bit 8 for WFPC2) of any SCI chip of any input
     exposure lies within ``round(aperture_2/pscale + 0.5) * 2`` pixels of the source (not IR)
8    faint: ``FluxAp2 < bthresh * FluxErrAp2`` (also when either is NaN or missing)
16   hot pixel / cosmic ray: CI missing or 0, or ``sqrt(MagErrAp1**2 + MagErrAp2**2)`` not
     finite, or ``CI < ci_lower - that error`` (a magnitude error of 0 counts as missing)
64   low exposure count: the minimum of the exposure-count image over a disk of radius
     ``aperture_2/pscale`` around the source's pixel is below 0.5, 1.5 or 2.5
===  ===========================================================================================

Bits 2, 32 and 128 are never set (the single-pixel-saturation and bleed flags are deprecated
and the swarm filter's call is disabled in drizzlepac).

Two as-coded details are kept on purpose. The saturated pixels are mapped with drizzlepac's
origins: the 0-based DQ indices go through the exposure's full (distorted) WCS with origin 1
and come back in the drizzled frame with origin 1, and are compared with the 0-based catalog
positions. And a masked CI counts as missing while a NaN CI does not (a NaN value is "true" in
drizzlepac's ``if ci_value`` test).

Everything that scales with the image or the catalog runs on the backend: the footprint mask of
the exposure-count image is a dilation and an erosion of the padded finite-data mask (square
maximum/minimum filters), the disk minima are one gather of the disk's pixels for every source,
and the saturation test is an exact radius match of every source against the saturated pixels,
bucketed on a grid of cells one radius wide. Only the WCS transforms of the saturated pixels run
on the host (astropy / stwcs, as drizzlepac).
"""

from __future__ import annotations

import itertools
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from ..backend import Backend, resolve_backend
from ..detection.filters import ndimage_module
from ..kernels.detection import morphology as kmorph
from ..errors import InvalidInputError, InvalidParameterError
from ._parameters import ci_limits

__all__ = [
    "FLAG_EXTENDED", "FLAG_SATURATED", "FLAG_FAINT", "FLAG_HOT_PIXEL", "FLAG_LOW_EXPOSURE",
    "FlagInputs", "flag_inputs", "flag_sources", "ci_flags", "saturation_radius",
    "saturated_pixel_positions", "sources_near_points", "component_products",
    "exposure_count_image", "inside_footprint_mask", "exposure_count_limit",
    "low_exposure_flags", "position_columns",
]

log = logging.getLogger(__name__)

FLAG_EXTENDED = 1
FLAG_SATURATED = 4
FLAG_FAINT = 8
FLAG_HOT_PIXEL = 16
FLAG_LOW_EXPOSURE = 64

#: Saturation DQ bit of the calibrated exposures (WFPC2 uses 8).
DQ_SATURATED = 256
DQ_SATURATED_WFPC2 = 8

#: ``make_mask_array`` recipe: zero padding, dilation box, erosion box (pixels).
MASK_PADDING = 13
MASK_DILATION = 25
MASK_EROSION = 31

#: Upper bound on (source, saturated pixel) candidate pairs held at once by the radius match.
_MAX_PAIRS = 1 << 22
#: Grid cells per match radius in the radius match.
_CELLS_PER_RADIUS = 4
#: Upper bound on (source, disk pixel) pairs gathered at once for the disk minima.
_MAX_GATHER = 1 << 23

_POSITION_COLUMNS = {"aperture": ("X-Center", "Y-Center"), "segment": ("X-Centroid", "Y-Centroid")}


def _catalog_type(cat_type: str) -> str:
    kind = "aperture" if cat_type == "point" else cat_type
    if kind not in _POSITION_COLUMNS:
        raise InvalidParameterError(
            f"catalog type must be 'point' (or 'aperture') or 'segment', not {cat_type!r}")
    return kind


def position_columns(cat_type: str) -> tuple[str, str]:
    """Names of the pixel-position columns of a filter catalog.

    Parameters
    ----------
    cat_type : {"point", "aperture", "segment"}

    Returns
    -------
    tuple of str
        ``("X-Center", "Y-Center")`` for point catalogs, ``("X-Centroid", "Y-Centroid")`` for
        segment catalogs.
    """
    return _POSITION_COLUMNS[_catalog_type(cat_type)]


def _column(table: Table, name: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    """float64 values and the mask (True = masked) of one catalog column, on the host."""
    if name not in table.colnames:
        raise InvalidInputError(f"{where}: the catalog has no {name!r} column "
                                f"(columns: {', '.join(table.colnames)})")
    col = table[name]
    mask = np.ma.getmaskarray(col)
    values = np.ma.getdata(getattr(col, "value", col))
    return np.asarray(values, dtype=np.float64), np.asarray(mask, dtype=bool)


# --------------------------------------------------------------------------------------------
# bits 1, 8 and 16: concentration index and signal to noise (hla_flag_filter.ci_filter)
# --------------------------------------------------------------------------------------------

def ci_flags(ci, ci_missing, mag_err_1, mag_err_2, flux_2, flux_err_2, *, ci_lower, ci_upper,
             bthresh, backend=None):
    """Bits 1 (extended), 8 (faint) and 16 (hot pixel / CR) of every source.

    Parameters
    ----------
    ci : array_like
        Concentration index ``MagAp1 - MagAp2``, shape (n,), magnitudes. NaN is a value here.
    ci_missing : array_like
        Bool (n,): the CI is masked (missing). A CI of exactly 0 counts as missing too.
    mag_err_1, mag_err_2 : array_like
        ``MagErrAp1``, ``MagErrAp2``, (n,), magnitudes; NaN where masked. 0 counts as missing.
    flux_2, flux_err_2 : array_like
        ``FluxAp2``, ``FluxErrAp2``, (n,), electron/s; NaN where masked.
    ci_lower, ci_upper : float
        CI limits (:func:`hapgpu.catalogs._parameters.ci_limits`).
    bthresh : float
        Signal-to-noise limit of the faint flag (``quality control → ci filter → bthresh``).
    backend : str, Backend or None, keyword-only

    Returns
    -------
    array
        int32 (n,) on the backend: the OR of the bits set.

    Notes
    -----
    drizzlepac ``hla_flag_filter.ci_filter``: faint if ``not FluxAp2 >= bthresh * FluxErrAp2``;
    hot pixel if the CI is missing, the CI error ``sqrt(e1**2 + e2**2)`` is not finite, or
    ``CI < ci_lower - error``; extended if the CI is missing or ``CI > ci_upper``.
    """
    bk = resolve_backend(backend)
    xp = bk.xp
    ci = bk.asarray(ci, dtype=xp.float64)
    missing = bk.asarray(ci_missing, dtype=bool) | (ci == 0)
    e1 = bk.asarray(mag_err_1, dtype=xp.float64)
    e2 = bk.asarray(mag_err_2, dtype=xp.float64)
    e1 = xp.where(e1 == 0, xp.nan, e1)
    e2 = xp.where(e2 == 0, xp.nan, e2)
    flux = bk.asarray(flux_2, dtype=xp.float64)
    flux_err = bk.asarray(flux_err_2, dtype=xp.float64)
    ci_err = xp.sqrt(e1 * e1 + e2 * e2)
    with np.errstate(invalid="ignore"):
        faint = ~(flux >= bthresh * flux_err)
        hot = missing | ~xp.isfinite(ci_err) | (ci < ci_lower - ci_err)
        extended = missing | (ci > ci_upper)
    flags = xp.zeros(ci.shape, dtype=xp.int32)
    flags |= xp.where(faint, FLAG_FAINT, 0).astype(xp.int32)
    flags |= xp.where(hot, FLAG_HOT_PIXEL, 0).astype(xp.int32)
    flags |= xp.where(extended, FLAG_EXTENDED, 0).astype(xp.int32)
    return flags


# --------------------------------------------------------------------------------------------
# bit 4: saturation (hla_flag_filter.hla_saturation_flags)
# --------------------------------------------------------------------------------------------

def saturation_radius(aperture_2: float, pscale: float) -> float:
    """Match radius of the saturation flag, pixels: ``round(aperture_2/pscale + 0.5) * 2``.

    ``round`` is Python's (halves to even), as in drizzlepac.
    """
    return round(aperture_2 / pscale + 0.5) * 2.0


def _saturation_chips(instrument: str, detector: str, exposures) -> tuple[list[int], int]:
    """SCI/DQ extension versions searched and the saturation DQ bit, as drizzlepac chooses them."""
    inst, det = instrument.upper(), detector.upper()
    if inst == "WFPC2":
        first = exposures[0]
        try:
            with fits.open(first) as hdul:
                n_sci = sum(1 for h in hdul if h.name == "SCI")
        except OSError as exc:
            raise InvalidInputError(f"{first}: cannot read the exposure: {exc}") from exc
        return list(range(1, n_sci + 1)), DQ_SATURATED_WFPC2
    if det in ("WFC", "UVIS"):
        return [1, 2], DQ_SATURATED
    if det in ("SBC", "HRC"):
        return [1], DQ_SATURATED
    raise InvalidInputError(f"saturation flag: no chip layout for {inst}/{det} "
                            "(known: ACS/WFC, ACS/HRC, ACS/SBC, WFC3/UVIS, WFPC2)")


def saturated_pixel_positions(exposures, product_wcs, *, instrument: str,
                              detector: str) -> np.ndarray:
    """Positions in the drizzled frame of every DQ-saturated pixel of the input exposures.

    Parameters
    ----------
    exposures : list of path-like
        The calibrated FLT/FLC (c0m for WFPC2) files drizzled into the product.
    product_wcs : astropy.wcs.WCS
        The drizzled product's celestial WCS.
    instrument, detector : str
        Of the product (``"WFC3"``, ``"UVIS"``). WFC3/IR gives an empty result: drizzlepac
        skips the saturation flag there.

    Returns
    -------
    numpy.ndarray
        float64, shape (n, 2): x, y in the drizzled frame, on drizzlepac's scale: the 0-based
        DQ indices go through the chip's full WCS (SIP, lookup-table and detector-to-image
        distortion, via stwcs) with origin 1 and come back through the product's linear WCS
        with origin 1.

    Raises
    ------
    InvalidInputError
        An exposure cannot be read or has no usable WCS; an unknown instrument/detector.
    """
    from stwcs.wcsutil import HSTWCS

    empty = np.empty((0, 2), dtype=np.float64)
    if detector.upper() == "IR" or not exposures:
        return empty
    exposures = sorted(Path(p) for p in exposures)
    extvers, bit = _saturation_chips(instrument, detector, exposures)
    found = []
    for path in exposures:
        try:
            with fits.open(path) as hdul:
                for extver in extvers:
                    if ("DQ", extver) not in hdul:
                        continue
                    dq = np.asarray(hdul["DQ", extver].data)
                    rows, cols = np.nonzero((dq & bit) == bit)
                    if rows.size == 0:
                        continue
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        chip = HSTWCS(hdul, ext=("SCI", extver))
                    xy = np.column_stack([cols, rows]).astype(np.float64)
                    sky = chip.all_pix2world(xy, 1)
                    found.append(product_wcs.wcs_world2pix(sky, 1))
        except OSError as exc:
            raise InvalidInputError(f"{path}: cannot read the exposure's DQ/WCS: {exc}") from exc
        except (KeyError, ValueError) as exc:
            raise InvalidInputError(f"{path}: unusable SCI/DQ extension for the saturation "
                                    f"flag: {exc}") from exc
    if not found:
        return empty
    return np.ascontiguousarray(np.concatenate(found), dtype=np.float64)


def sources_near_points(x, y, points, radius: float, *, backend=None):
    """Which sources have at least one point within ``radius`` (distance <= radius).

    An exact, vectorised equivalent of drizzlepac's ``xymatch(points, sources, radius,
    multiple=True)`` followed by marking every matched source. The points are bucketed on a
    grid of square cells a quarter of ``radius`` wide (sorted cell keys). For every source and
    every cell around it, the nearest and farthest possible distances to the cell decide most
    cases at once: an occupied cell lying entirely within ``radius`` matches the source, a cell
    entirely beyond it is skipped; only the points of the cells the circle crosses are compared
    one by one, with ``dx**2 + dy**2 <= radius**2``, and only for sources not yet matched. The
    work therefore stays proportional to the circle's edge, however dense a saturated core is.

    Parameters
    ----------
    x, y : array_like
        Source positions, (m,), pixels. Non-finite positions never match.
    points : array_like
        (n, 2) x, y of the points (saturated pixels), pixels.
    radius : float
        Match radius, pixels, > 0.
    backend : str, Backend or None, keyword-only

    Returns
    -------
    array
        Bool (m,) on the backend.
    """
    bk = resolve_backend(backend)
    xp = bk.xp
    x = bk.asarray(x, dtype=xp.float64)
    y = bk.asarray(y, dtype=xp.float64)
    m = int(x.shape[0])
    out = xp.zeros(m, dtype=bool)
    pts = bk.asarray(points, dtype=xp.float64).reshape(-1, 2)
    if m == 0 or pts.shape[0] == 0:
        return out
    if not radius > 0:
        raise InvalidParameterError(f"match radius must be > 0, not {radius}")
    good = xp.isfinite(x) & xp.isfinite(y)
    if not bool(good.any()):
        return out
    src = xp.nonzero(good)[0]
    sx, sy = x[src], y[src]
    px, py = pts[:, 0], pts[:, 1]
    # only points that can reach a source: inside the sources' bounding box grown by radius
    near = (xp.isfinite(px) & xp.isfinite(py) & (px >= sx.min() - radius)
            & (px <= sx.max() + radius) & (py >= sy.min() - radius) & (py <= sy.max() + radius))
    px, py = px[near], py[near]
    if px.shape[0] == 0:
        return out
    cell = float(radius) / _CELLS_PER_RADIUS
    reach = _CELLS_PER_RADIUS + 1                      # cells a match can be away, per axis
    x0 = float(xp.floor(sx.min() / cell)) - reach - 1
    y0 = float(xp.floor(sy.min() / cell)) - reach - 1
    width = int(float(xp.floor(sx.max() / cell)) - x0) + reach + 2
    pkey = ((xp.floor(py / cell) - y0) * width + (xp.floor(px / cell) - x0)).astype(xp.int64)
    order = xp.argsort(pkey)
    pkey, px, py = pkey[order], px[order], py[order]
    # occupied cells: sorted keys, first point, number of points
    ukeys, ufirst, ucount = xp.unique(pkey, return_index=True, return_counts=True)
    last = int(ukeys.shape[0]) - 1
    # sources in cell order (memory locality of the look-ups), mapped back at the end
    scx = (xp.floor(sx / cell) - x0).astype(xp.int64)
    scy = (xp.floor(sy / cell) - y0).astype(xp.int64)
    sorder = xp.argsort(scy * width + scx)
    src, sx, sy, scx, scy = src[sorder], sx[sorder], sy[sorder], scx[sorder], scy[sorder]
    # position of each source inside its cell, in cell units' pixels (0 <= f < cell)
    fx = sx - (scx + x0) * cell
    fy = sy - (scy + y0) * cell
    r2 = radius * radius
    k = int(src.shape[0])
    hit = xp.zeros(k, dtype=bool)
    pending = []
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            # nearest and farthest distance from each source to the cell (dx, dy) away
            left, right = dx * cell - fx, (dx + 1) * cell - fx
            low, high = dy * cell - fy, (dy + 1) * cell - fy
            near_x = xp.maximum(xp.maximum(left, -right), 0.0)
            near_y = xp.maximum(xp.maximum(low, -high), 0.0)
            far_x = xp.maximum(xp.abs(left), xp.abs(right))
            far_y = xp.maximum(xp.abs(low), xp.abs(high))
            reachable = near_x * near_x + near_y * near_y <= r2
            if not bool(reachable.any()):
                continue
            keys = (scy + dy) * width + (scx + dx)
            at = xp.minimum(xp.searchsorted(ukeys, keys), last)
            occupied = reachable & (ukeys[at] == keys)
            lo, count = ufirst[at], xp.where(occupied, ucount[at], 0)
            hit |= occupied & (far_x * far_x + far_y * far_y <= r2)
            partial = occupied & (far_x * far_x + far_y * far_y > r2)
            pending.append((partial, lo, count))
    for partial, lo, count in pending:
        todo = xp.nonzero(partial & ~hit)[0]
        if todo.shape[0]:
            _match_pairs(todo, lo[todo], count[todo], sx, sy, px, py, r2, hit, xp)
    out[src] = hit
    return out


def _match_pairs(todo, first, count, sx, sy, px, py, r2, hit, xp):
    """Compare sources ``todo`` with the points ``first[i]:first[i]+count[i]`` of a cell, in
    chunks of at most ``_MAX_PAIRS`` pairs; set ``hit`` where one is within ``sqrt(r2)``."""
    ends = xp.cumsum(count)
    bounds = [0]
    host_ends = ends.get() if hasattr(ends, "get") else ends
    while bounds[-1] < len(host_ends):
        done = int(host_ends[bounds[-1] - 1]) if bounds[-1] else 0
        bounds.append(max(bounds[-1] + 1,
                          int(np.searchsorted(host_ends, done + _MAX_PAIRS, side="right"))))
    for a, b in itertools.pairwise(bounds):
        c, f, e = count[a:b], first[a:b], ends[a:b]
        base = int(host_ends[a - 1]) if a else 0
        total = int(host_ends[b - 1]) - base
        pair = xp.arange(total, dtype=xp.int64)
        owner = xp.searchsorted(e - base, pair, side="right")
        point = f[owner] + pair - (e[owner] - base - c[owner])
        source = todo[a:b][owner]
        dx = px[point] - sx[source]
        dy = py[point] - sy[source]
        close = dx * dx + dy * dy <= r2
        hit[source[close]] = True


# --------------------------------------------------------------------------------------------
# bit 64: exposure count (hla_flag_filter.hla_nexp_flags, make_mask_array)
# --------------------------------------------------------------------------------------------

def component_products(single_products, exposures) -> list[Path]:
    """The single-exposure products that count towards the exposure-count image.

    drizzlepac ``get_component_drz_list``: all of them when there are no more products than
    input exposures; when there are more, only those whose primary ``ROOTNAME`` (before any
    ``_``) is the root (before the first ``_``) of an input exposure's file name. With no
    exposures known at all, every product is used.

    Parameters
    ----------
    single_products : list of path-like
        Candidate single-exposure drizzled products (the product's glob, itself excluded).
    exposures : list of path-like
        The filter product's input exposures.

    Returns
    -------
    list of pathlib.Path
        Sorted.
    """
    products = sorted(Path(p) for p in single_products)
    exposures = list(exposures)
    if not exposures:
        return products
    if len(exposures) >= len(products):
        if len(exposures) > len(products):
            log.warning("exposure-count flag: %d single-exposure products for %d exposures; "
                        "using the products found", len(products), len(exposures))
        return products
    roots = {Path(p).name.split("_")[0].lower() for p in exposures}
    kept = []
    for path in products:
        try:
            rootname = str(fits.getval(path, "ROOTNAME", ext=0))
        except KeyError:
            rootname = ""
        except OSError as exc:
            raise InvalidInputError(f"{path}: cannot read the single-exposure product: {exc}") from exc
        if Path(rootname).name.split("_")[0].lower() in roots:
            kept.append(path)
    if len(kept) != len(exposures):
        log.warning("exposure-count flag: %d single-exposure products match %d exposures",
                    len(kept), len(exposures))
    return kept


def _first_image(path: Path) -> np.ndarray:
    """The first HDU with data (``fits.getdata`` without an extension)."""
    try:
        with fits.open(path) as hdul:
            for hdu in hdul:
                if hdu.is_image and hdu.data is not None:
                    return np.asarray(hdu.data)
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the single-exposure product: {exc}") from exc
    raise InvalidInputError(f"{path}: the single-exposure product has no image data")


def inside_footprint_mask(data, *, backend=None):
    """drizzlepac's ``make_mask_array`` inverted: 1 inside the product's data footprint.

    The finite, non-zero pixels of SCI are padded with 13 zero pixels, dilated with a 25x25
    box, eroded with a 31x31 box (pixels beyond the padded edge count as 0), and the padding is
    cut off again.

    Parameters
    ----------
    data : array_like
        SCI of the drizzled product, (ny, nx).
    backend : str, Backend or None, keyword-only

    Returns
    -------
    array
        int32 (ny, nx) on the backend: 1 inside, 0 outside.
    """
    bk = resolve_backend(backend)
    xp = bk.xp
    ndi = ndimage_module(bk)
    data = bk.asarray(data)
    if bk.name == "cpu" and data.ndim == 2 and data.dtype.kind == "f":
        # the same windows as sliding counts of the binary image (compiled, no float filters)
        native = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("="))
        return kmorph.box_dilate_erode(native, MASK_PADDING, MASK_DILATION, MASK_EROSION)
    valid = (xp.isfinite(data) & (data != 0)).astype(xp.uint8)
    big = xp.pad(valid, MASK_PADDING, mode="constant")
    grown = ndi.maximum_filter(big, size=MASK_DILATION, mode="constant", cval=0)
    shrunk = ndi.minimum_filter(grown, size=MASK_EROSION, mode="constant", cval=0)
    p = MASK_PADDING
    return (shrunk[p:-p, p:-p] != 0).astype(xp.int32)


def exposure_count_image(data, single_products, *, filename: str = "product", backend=None):
    """Number of single-exposure products with data at each pixel, inside the footprint.

    Parameters
    ----------
    data : array_like
        SCI of the filter product, (ny, nx); defines the shape and the footprint
        (:func:`inside_footprint_mask`).
    single_products : list of path-like
        Single-exposure drizzled products (:func:`component_products`); each adds 1 where its
        first image is finite and non-zero (a product larger than SCI is cropped, as drizzlepac
        does).
    filename : str
        The product's name, for error messages.
    backend : str, Backend or None, keyword-only

    Returns
    -------
    array
        int32 (ny, nx) on the backend.

    Raises
    ------
    InvalidInputError
        A single-exposure product is unreadable or smaller than the product.
    """
    bk = resolve_backend(backend)
    xp = bk.xp
    data = bk.asarray(data)
    ny, nx = data.shape
    nexp = xp.zeros((ny, nx), dtype=xp.int32)
    for path in single_products:
        if bk.name == "cpu" and _count_on_host(nexp, Path(path), filename):
            continue
        image = _first_image(Path(path))
        _check_single_shape(image, path, filename, (ny, nx))
        image = bk.asarray(image[:ny, :nx])
        nexp += (xp.isfinite(image) & (image != 0)).astype(xp.int32)
    nexp *= inside_footprint_mask(data, backend=bk)
    return nexp


def _check_single_shape(image, path, filename, shape):
    ny, nx = shape
    if image.ndim != 2 or image.shape[0] < ny or image.shape[1] < nx:
        raise InvalidInputError(
            f"{path}: single-exposure product of shape {image.shape} cannot be counted on "
            f"{filename} of shape {(ny, nx)}")


def _count_on_host(nexp, path: Path, filename: str) -> bool:
    """``nexp += isfinite(img) & (img != 0)`` for the first image of ``path``, read through a
    memory map without a converted copy; False (nothing done) for an unscaled layout it does
    not handle (the caller then reads the file normally)."""
    try:
        with fits.open(path, memmap=True, do_not_scale_image_data=True) as hdul:
            for hdu in hdul:
                if not hdu.is_image or hdu.data is None:
                    continue
                if any(k in hdu.header for k in ("BSCALE", "BZERO", "BLANK")):
                    return False
                image = np.asarray(hdu.data)
                _check_single_shape(image, path, filename, nexp.shape)
                ny, nx = nexp.shape
                window = image[:ny, :nx]
                if window.dtype == np.dtype(">f4") and np.little_endian:
                    kmorph.add_valid_count_be32(nexp, window.view(np.uint32))
                elif window.dtype.kind == "f" and window.dtype.isnative:
                    kmorph.add_valid_count(nexp, window)
                else:
                    return False
                del image, window
                return True
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the single-exposure product: {exc}") from exc
    raise InvalidInputError(f"{path}: the single-exposure product has no image data")


def exposure_count_limit(max_count: float, detector: str) -> float:
    """Exposure-count limit of flag 64: 0.5 when at most 1 exposure or IR/SBC, 2.5 above 5,
    else 1.5 (``max_count`` is rounded as drizzlepac does, halves to even)."""
    n = round(float(max_count))
    if n <= 1 or detector.upper() in ("IR", "SBC"):
        return 0.5
    if n > 5:
        return 2.5
    return 1.5


def low_exposure_flags(x, y, nexp, radius: float, limit: float, *, backend=None):
    """Sources whose exposure count has a minimum below ``limit`` within ``radius``.

    The disk is centred on the integer pixel ``int(x + 0.5), int(y + 0.5)`` (truncation towards
    zero) and holds the integer offsets with ``dx**2 + dy**2 <= radius**2``; pixel indices are
    clipped to the image (so an edge pixel stands for the pixels beyond it).

    Parameters
    ----------
    x, y : array_like
        0-based positions, (m,), pixels. A non-finite position is flagged.
    nexp : array_like
        Exposure-count image (:func:`exposure_count_image`), (ny, nx).
    radius : float
        Disk radius, pixels (``aperture_2 / pscale``).
    limit : float
        :func:`exposure_count_limit`.
    backend : str, Backend or None, keyword-only

    Returns
    -------
    array
        Bool (m,) on the backend.
    """
    bk = resolve_backend(backend)
    xp = bk.xp
    nexp = bk.asarray(nexp)
    x = bk.asarray(x, dtype=xp.float64)
    y = bk.asarray(y, dtype=xp.float64)
    m = int(x.shape[0])
    finite = xp.isfinite(x) & xp.isfinite(y)
    ix = xp.where(finite, x + 0.5, 0.0).astype(xp.int64)
    iy = xp.where(finite, y + 0.5, 0.0).astype(xp.int64)
    irad = int(radius + 1)
    g = np.arange(-irad, irad + 1)
    gy, gx = np.meshgrid(g, g, indexing="ij")
    inside = gx ** 2 + gy ** 2 <= radius ** 2
    dy = bk.asarray(gy[inside].astype(np.int64))
    dx = bk.asarray(gx[inside].astype(np.int64))
    ny, nx = nexp.shape
    low = xp.zeros(m, dtype=bool)
    step = max(1, _MAX_GATHER // max(1, int(dx.shape[0])))
    for start in range(0, m, step):
        rows = xp.clip(iy[None, start:start + step] + dy[:, None], 0, ny - 1)
        cols = xp.clip(ix[None, start:start + step] + dx[:, None], 0, nx - 1)
        low[start:start + step] = nexp[rows, cols].min(axis=0) < limit
    return low | ~finite


# --------------------------------------------------------------------------------------------
# all bits
# --------------------------------------------------------------------------------------------

@dataclass
class FlagInputs:
    """Per-filter-product inputs of the flags, shared by its point and segment catalogs.

    Attributes
    ----------
    saturated_xy : numpy.ndarray
        (n, 2) float64 host array of :func:`saturated_pixel_positions` (empty for IR).
    nexp : array
        int32 (ny, nx) exposure-count image on the backend (:func:`exposure_count_image`).
    """

    saturated_xy: np.ndarray
    nexp: object


def flag_inputs(image, *, backend=None) -> FlagInputs:
    """Read what the flags need from a filter product's exposures and single-exposure products.

    Parameters
    ----------
    image : PreparedImage
        The filter image (its ``product.exposures`` and ``product.single_products`` are read).
    backend : str, Backend or None, keyword-only
        Default: the image's backend.

    Returns
    -------
    FlagInputs
    """
    bk = _image_backend(image, backend)
    product = image.product
    saturated = saturated_pixel_positions(product.exposures, product.wcs,
                                          instrument=product.instrument,
                                          detector=product.detector)
    components = component_products(product.single_products, product.exposures)
    if not components:
        log.warning("%s: no single-exposure products found; every source gets flag 64",
                    product.filename)
    nexp = exposure_count_image(product.data, components, filename=product.filename, backend=bk)
    return FlagInputs(saturated_xy=saturated, nexp=nexp)


def _image_backend(image, backend) -> Backend:
    if backend is not None:
        return resolve_backend(backend)
    own = getattr(image, "backend", None)
    return own if isinstance(own, Backend) else resolve_backend(None)


def flag_sources(table: Table, cat_type: str, image, *, inputs: FlagInputs | None = None,
                 backend=None) -> Table:
    """Set the quality flags (bits 1, 4, 8, 16, 64) of one filter catalog.

    Parameters
    ----------
    table : astropy.table.Table
        The filter catalog: position columns (``X-Center``/``Y-Center`` for point catalogs,
        ``X-Centroid``/``Y-Centroid`` for segment catalogs), ``CI``, ``MagErrAp1``,
        ``MagErrAp2``, ``FluxAp2``, ``FluxErrAp2`` and ``Flags`` (masked values allowed).
    cat_type : {"point", "aperture", "segment"}
    image : PreparedImage
        The filter image: ``product`` (file name, WCS, pscale, exposures, single-exposure
        products, SCI) and ``params``.
    inputs : FlagInputs, optional
        :func:`flag_inputs` of this image, to share between the point and segment catalogs.
    backend : str, Backend or None, keyword-only
        Default: the image's backend.

    Returns
    -------
    astropy.table.Table
        A copy of ``table`` whose ``Flags`` are the old flags (masked as 0) OR the new bits.
        An empty table is returned unchanged (drizzlepac does not flag empty catalogs).

    Raises
    ------
    InvalidInputError
        A column is missing, or an exposure / single-exposure product cannot be read.
    InvalidParameterError
        Unknown ``cat_type``.
    """
    kind = _catalog_type(cat_type)
    out = table.copy()
    if len(out) == 0:
        return out
    bk = _image_backend(image, backend)
    xp = bk.xp
    product = image.product
    where = f"{product.filename} ({'point' if kind == 'aperture' else 'segment'} catalog)"
    params = image.params
    xcol, ycol = _POSITION_COLUMNS[kind]
    x, _ = _column(out, xcol, where)
    y, _ = _column(out, ycol, where)
    ci, ci_mask = _column(out, "CI", where)
    columns = {}
    for name in ("MagErrAp1", "MagErrAp2", "FluxAp2", "FluxErrAp2"):
        values, mask = _column(out, name, where)
        columns[name] = np.where(mask, np.nan, values)
    old, old_mask = _column(out, "Flags", where)
    old = np.where(old_mask | ~np.isfinite(old), 0, old).astype(np.int64)

    lower, upper = ci_limits(params, kind, product.filename)
    bthresh = float(params.quality_control["ci filter"][kind]["bthresh"])
    flags = ci_flags(ci, ci_mask, columns["MagErrAp1"], columns["MagErrAp2"],
                     columns["FluxAp2"], columns["FluxErrAp2"], ci_lower=lower, ci_upper=upper,
                     bthresh=bthresh, backend=bk)

    if inputs is None:
        inputs = flag_inputs(image, backend=bk)
    ap2 = float(params.generation["aperture_2"])
    pscale = product.pscale
    if inputs.saturated_xy.shape[0]:
        near = sources_near_points(x, y, inputs.saturated_xy, saturation_radius(ap2, pscale),
                                   backend=bk)
        flags |= xp.where(near, FLAG_SATURATED, 0).astype(xp.int32)

    nexp = bk.asarray(inputs.nexp)
    limit = exposure_count_limit(float(nexp.max()) if nexp.size else 0.0, product.detector)
    low = low_exposure_flags(x, y, nexp, ap2 / pscale, limit, backend=bk)
    flags |= xp.where(low, FLAG_LOW_EXPOSURE, 0).astype(xp.int32)

    new = old | bk.to_host(flags).astype(np.int64)
    dtype = out["Flags"].dtype if out["Flags"].dtype.kind in "iu" else np.int64
    out["Flags"] = _replace(out["Flags"], new.astype(dtype))
    log.info("%s: flagged %d of %d sources (bits %s)", where, int(np.count_nonzero(new)),
             len(new), ", ".join(f"{b}: {int(np.count_nonzero(new & b))}"
                                 for b in (1, 4, 8, 16, 64)))
    return out


def _replace(column, values):
    """A copy of ``column`` (format, unit, description kept) holding ``values``, unmasked."""
    from astropy.table import Column

    return Column(values, name=column.info.name, format=column.info.format,
                  unit=column.info.unit, description=column.info.description)
