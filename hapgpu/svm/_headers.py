"""Final keywords of HAP drizzled products (hap-pipeline.md §1.12, drizzlepac ``refine_product_headers``).

After AstroDrizzle, every ``*_dr?.fits`` product gets the keywords only the pipeline knows:
ROOTNAME/FILENAME from its name, PINAME, an ``S_REGION`` traced from the drizzled pixels,
NUMEXP (and IPPPSSOO for exposure products), ISO DATE-BEG/DATE-END, EQUINOX, the ACS filter
list, the WFPC2 poller aperture, the PHOT* keywords moved to ``SCI,1``, HAPLEVEL, FILTER =
``detection`` for totals and an HDRTAB with the HAP exposure names (plus the SVM names and
dates for MVM layers).

``S_REGION`` of a drizzled image (drizzlepac ``cell_utils.SkyFootprint.extract_mask`` and
``find_corners``): pixels with data (not NaN, or non-zero when there is no NaN), holes filled,
OR-ed with their 11-iteration closing; opened with 3 iterations; Gaussian σ = 2 thresholded at
0.5; each 4-connected region's border traced counter-clockwise pixel by pixel, simplified to the
vertices that lie at least 10 pixels off the simplified outline (Visvalingam-Whyatt down to three
vertices, then Douglas-Peucker refinement), converted to ICRS with the product WCS and written
as one ``POLYGON ICRS ra dec ...`` per region.
"""

from __future__ import annotations

import heapq
import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..errors import InvalidInputError, InvalidParameterError, OutputWriteError

__all__ = ["refine_product_headers", "refine_product_hdulist", "compute_sregion", "sregion_values", "SRegionValues",
           "trace_sregion", "TracedRegions", "measure_in_background", "measured_results",
           "footprint_from_data", "trace_region_border", "simplify_polygon", "sregion_polygons",
           "PHOT_KEYWORDS", "HAPEXPNAME_MIN_WIDTH", "SRegionBands", "SREGION_BAND_ROWS"]

log = logging.getLogger(__name__)

#: Photometry keywords that belong in ``SCI,1`` (drizzlepac ``processing_utils.PHOT_KEYWORDS``).
PHOT_KEYWORDS = ("PHOTMODE", "PHOTFLAM", "PHOTFNU", "PHOTZPT", "PHOTPLAM", "PHOTBW")

#: Minimum width of the HDRTAB ``HAPEXPNAME`` column (fits the longest ACS product name).
HAPEXPNAME_MIN_WIDTH = 51

_DATA_KEY = re.compile(r"^D\d+DATA$")

_LABEL_BORDER = 10   # empty pixels around each region before tracing (drizzlepac label_border)
_MIN_DIST = 10.0     # polygon simplification tolerance, pixels (drizzlepac: about 1 arcsec)


# --------------------------------------------------------------------------------------------
# S_REGION: pixels -> regions -> polygons (pure array code)

def footprint_from_data(data: np.ndarray) -> np.ndarray:
    """Smoothed footprint of a drizzled image: the mask whose regions become S_REGION polygons.

    Parameters
    ----------
    data : numpy.ndarray
        ``(ny, nx)`` drizzled science array (NaN where no input landed, or 0 without NaNs).

    Returns
    -------
    numpy.ndarray
        bool ``(ny, nx)``.

    Notes
    -----
    drizzlepac ``SkyFootprint.extract_mask`` + ``find_corners`` (hap-pipeline.md §1.12): data
    pixels, holes filled, OR-ed with dilation(11) then erosion(11); erosion(3) then dilation(3);
    ``gaussian_filter(σ=2) > 0.5`` in float32. scipy's default cross-shaped structuring element.
    """
    data = np.asarray(data)
    if data.ndim != 2:
        raise InvalidInputError(f"S_REGION needs a 2-D image, got shape {data.shape}")
    return _footprint_of_mask(_data_mask(data))


def _data_mask(data: np.ndarray) -> np.ndarray:
    """The pixels with data (bool): not NaN when there is a NaN, else non-zero."""
    if data.size and np.isnan(data.min()):
        return ~np.isnan(data)
    return data != 0


def _footprint_of_mask(mask: np.ndarray) -> np.ndarray:
    """:func:`footprint_from_data` from the data pixels: holes filled, closed, opened, smoothed."""
    from ..skycells._edges import tiled_local_filter

    return tiled_local_filter(fill_holes(mask), _close_open_smooth, _SMOOTH_REACH)


#: Iterations of the closing and of the opening of :func:`footprint_from_data`.
_CLOSING_ITERATIONS = 11
_OPENING_ITERATIONS = 3
_SIGMA = 2.0
#: How far (pixels) the output of :func:`_close_open_smooth` looks: closing, opening and the
#: Gaussian's kernel radius (scipy: ``int(4 * sigma + 0.5)``).
_SMOOTH_REACH = 2 * _CLOSING_ITERATIONS + 2 * _OPENING_ITERATIONS + int(4.0 * _SIGMA + 0.5)
#: Empty pixels kept around the data when the footprint is worked out on the part of the frame
#: that holds data (:func:`_data_window`): more than the reach of every step.
_WINDOW_MARGIN = _SMOOTH_REACH + 2


def _data_window(mask: np.ndarray):
    """``(row slice, column slice)``: the bounding box of ``mask``'s True pixels widened by
    :data:`_WINDOW_MARGIN` on each side and clipped to the frame; None when there is none.

    The footprint of :func:`footprint_from_data` on this window is the whole frame's there,
    and empty outside it: beyond the box every pixel is empty, so an empty pixel at the
    window's edge reaches the frame's edge through empty pixels (hole filling), and every
    later step looks at most :data:`_SMOOTH_REACH` pixels away, where the window holds the
    frame's values (empty) or ends where the frame ends.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    ny, nx = mask.shape
    margin = _WINDOW_MARGIN
    return (slice(max(0, int(rows[0]) - margin), min(ny, int(rows[-1]) + 1 + margin)),
            slice(max(0, int(cols[0]) - margin), min(nx, int(cols[-1]) + 1 + margin)))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.binary_fill_holes`` with its default (cross) element, through a labelling.

    Parameters
    ----------
    mask : numpy.ndarray
        bool ``(ny, nx)``.

    Returns
    -------
    numpy.ndarray
        bool ``(ny, nx)``: ``mask`` plus every empty pixel not 4-connected through empty pixels
        to the frame edge (the same pixels binary_fill_holes fills, found with one
        ``ndimage.label`` of the empty pixels instead of an iterated dilation).
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.size == 0:
        return mask.copy()
    labels, n = ndimage.label(~mask)
    outside = np.zeros(n + 1, dtype=bool)
    outside[labels[0]] = outside[labels[-1]] = True
    outside[labels[:, 0]] = outside[labels[:, -1]] = True
    outside[0] = False
    return ~outside[labels]


def _close_open_smooth(filled: np.ndarray) -> np.ndarray:
    """The local steps of :func:`footprint_from_data` after the hole filling."""
    from ..skycells._edges import dilate_cross, erode_cross

    closed = erode_cross(dilate_cross(filled, _CLOSING_ITERATIONS), _CLOSING_ITERATIONS)
    footprint = filled | closed
    opened = dilate_cross(erode_cross(footprint, _OPENING_ITERATIONS), _OPENING_ITERATIONS)
    return ndimage.gaussian_filter(opened.astype(np.float32), sigma=_SIGMA) > 0.5


def trace_region_border(region: np.ndarray) -> np.ndarray:
    """Border pixels of one region in tracing order, as a closed ring.

    Parameters
    ----------
    region : numpy.ndarray
        bool ``(ny, nx)``: one region, with at least one empty pixel on every side.

    Returns
    -------
    numpy.ndarray
        int32 ``(n + 1, 2)`` ``(x, y)`` pixel positions, last = first.

    Raises
    ------
    InvalidInputError
        The region is empty.

    Notes
    -----
    drizzlepac ``cell_utils.trace_polygon``/``_poly_trace``: the border (region minus its
    erosion) is walked from its lowest pixel in the first occupied column; each step takes a
    remaining border pixel of the 3x3 neighbourhood (5x5 to jump a gap; none ends the walk).
    Between two candidates (the first two in row-major order) the one whose own 3x3
    neighbourhood holds more remaining border pixels wins; on a tie, the one that continues the
    current direction (sign of the slope) wins.
    """
    from ..skycells._edges import erode_cross, walk_border

    region = np.asarray(region, dtype=bool)
    if region.ndim != 2 or not region.any():
        raise InvalidInputError("cannot trace the border of an empty region")
    return walk_border(region & ~erode_cross(region, 1))


def _doubled_areas(points: np.ndarray, before, middle, after) -> list[float]:
    """|det [[a, 1], [b, 1], [c, 1]]| of each triangle: twice its area, as simplify_polyline
    computes it (LAPACK through ``numpy.linalg.det``, one call for the whole stack; each matrix
    gets the same arithmetic as alone).

    Parameters
    ----------
    points : numpy.ndarray
        float64 ``(n, 2)``.
    before, middle, after : sequence of int
        Vertex indices of the triangles.

    Returns
    -------
    list of float
    """
    stack = np.ones((len(middle), 3, 3))
    stack[:, 0, :2] = points[np.asarray(before, dtype=np.intp)]
    stack[:, 1, :2] = points[np.asarray(middle, dtype=np.intp)]
    stack[:, 2, :2] = points[np.asarray(after, dtype=np.intp)]
    return np.abs(np.linalg.det(stack)).tolist()


def _segment_distances(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance of each point to the segment a-b."""
    if np.all(a == b):
        return np.linalg.norm(points - a, axis=1)
    d = (b - a) / np.linalg.norm(b - a)
    along_before = np.dot(a - points, d)
    along_after = np.dot(points - b, d)
    along = np.maximum.reduce([along_before, along_after, np.zeros(len(points))])
    rel = points - a
    across = rel[:, 0] * d[1] - rel[:, 1] * d[0]
    return np.hypot(along, across)


def simplify_polygon(ring, min_dist: float = _MIN_DIST) -> np.ndarray:
    """Vertices of a closed pixel ring that lie at least ``min_dist`` off the simplified outline.

    Parameters
    ----------
    ring : array_like
        ``(n, 2)`` vertices; closed when the last equals the first (kept closed on output).
    min_dist : float
        Tolerance, pixels.

    Returns
    -------
    numpy.ndarray
        float64 ``(m, 2)``.

    Raises
    ------
    InvalidInputError
        Fewer than 3 distinct vertices.

    Notes
    -----
    The method of the ``simplify_polyline.simplify`` function drizzlepac uses: Visvalingam-
    Whyatt removes the vertex with the smallest triangle (ties: the earlier vertex) until three
    remain, each keeping the removed vertices that followed it; then, walking the ring, while
    the farthest kept-aside vertex of a segment lies at least ``min_dist`` from it, that vertex
    is restored (Douglas-Peucker).
    """
    verts = np.asarray(ring, dtype=float)
    closed = len(verts) > 1 and np.array_equal(verts[0], verts[-1])
    points = verts[:-1] if closed else verts
    n = len(points)
    if n < 3:
        raise InvalidInputError("At least 3 points are required to form a polygon")
    prev = [(i - 1) % n for i in range(n)]
    nxt = [(i + 1) % n for i in range(n)]
    bypassed: list[list[int]] = [[] for _ in range(n)]
    area = _doubled_areas(points, prev, range(n), nxt)
    xs, ys = points[:, 0].tolist(), points[:, 1].tolist()
    # The two triangles of each update go through np.linalg.det like the batch above, on a
    # float64 (2, 3, 3) stack written in place: no arrays are built per step.
    stack = np.ones((2, 3, 3))
    flat = memoryview(stack).cast("B").cast("d")  # the 18 values in C order
    heap = [(area[i], i) for i in range(n)]
    heapq.heapify(heap)
    alive = [True] * n
    head, count = 0, n
    pop, push = heapq.heappop, heapq.heappush
    while count > 3:
        value, i = pop(heap)
        if not alive[i] or value != area[i]:
            continue  # stale entry
        p, q = prev[i], nxt[i]
        nxt[p], prev[q] = q, p
        bypassed[p] += [i, *bypassed[i]]
        alive[i] = False
        count -= 1
        if head == i:
            head = q
        for offset, k in ((0, prev[p]), (3, p), (6, nxt[p]), (9, prev[q]), (12, q), (15, nxt[q])):
            flat[offset] = xs[k]
            flat[offset + 1] = ys[k]
        area_p, area_q = np.linalg.det(stack).tolist()
        area[p], area[q] = abs(area_p), abs(area_q)
        push(heap, (area[p], p))
        push(heap, (area[q], q))
    kept = [head, nxt[head], nxt[nxt[head]]]
    nodes = [(k, bypassed[k]) for k in kept]
    k = 0
    while k < len(nodes):
        vertex, aside = nodes[k]
        while aside:
            following = nodes[(k + 1) % len(nodes)][0]
            dists = _segment_distances(points[aside], points[vertex], points[following])
            if dists.max() < min_dist:
                break
            far = int(np.argmax(dists))
            nodes.insert(k + 1, (aside[far], aside[far + 1:]))
            aside = aside[:far]
        nodes[k] = (vertex, aside)
        k += 1
    out = [points[v] for v, _ in nodes]
    if closed:
        out.append(out[0])
    return np.array(out, dtype=float)


def sregion_polygons(data: np.ndarray) -> list[np.ndarray]:
    """S_REGION polygons of a drizzled image, in pixels.

    Parameters
    ----------
    data : numpy.ndarray
        ``(ny, nx)`` drizzled science array.

    Returns
    -------
    list of numpy.ndarray
        One float64 ``(m, 2)`` closed ``(x, y)`` ring (0-based pixels) per region, in label
        order (scipy ``ndimage.label``: first pixel in row-major order).
    """
    polygons, n_degenerate = _traced_polygons(data)
    for _ in range(n_degenerate):
        log.warning(_DEGENERATE)
    return polygons


_DEGENERATE = "S_REGION: a region of the footprint simplified to fewer than 3 corners"


def _traced_polygons(data: np.ndarray, *, window: bool = True) -> tuple[list[np.ndarray], int]:
    """:func:`sregion_polygons` without logging: the polygons and the number of regions that
    simplified to fewer than 3 corners (safe to run on a worker thread).

    ``window``: work on the part of the frame around the data (:func:`_data_window`; the same
    polygons as on the whole frame, for less work where the data cover part of it).
    """
    data = np.asarray(data)
    if data.ndim != 2:
        raise InvalidInputError(f"S_REGION needs a 2-D image, got shape {data.shape}")
    n_degenerate = 0
    mask = _data_mask(data)
    box = _data_window(mask) if window else (slice(0, data.shape[0]), slice(0, data.shape[1]))
    if box is None:  # no data pixel: no region
        return [], 0
    y_offset, x_offset = box[0].start, box[1].start
    footprint = _footprint_of_mask(mask[box])
    del mask
    labels, _ = ndimage.label(footprint)
    polygons = []
    pad = _LABEL_BORDER
    for label, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        region = np.zeros((box[0].stop - box[0].start + 2 * pad, box[1].stop - box[1].start + 2 * pad),
                          dtype=bool)
        region[pad:-pad, pad:-pad] = labels[box] == label
        border = trace_region_border(region) + np.array([box[1].start - pad + x_offset,
                                                         box[0].start - pad + y_offset], np.int32)
        corners = simplify_polygon(border)
        n_degenerate += corners.shape[0] <= 3
        polygons.append(corners.astype(np.float64))
    return polygons, n_degenerate


# --------------------------------------------------------------------------------------------
# header I/O

def _chip_wcs(hdul, ext, path):
    from stwcs.wcsutil import HSTWCS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return HSTWCS(hdul, ext=ext)
        except Exception as exc:  # stwcs raises many types for broken headers
            raise InvalidInputError(f"{path}[{ext}]: cannot build the WCS: {exc}") from exc


def compute_sregion(hdul, *, path=None, extname: str = "SCI", values=None) -> None:
    """Set ``S_REGION`` in every ``extname`` extension of an open product (in place).

    Parameters
    ----------
    hdul : astropy.io.fits.HDUList
        A drizzled product (primary ``D001DATA`` present: polygons traced from the data, see
        :func:`sregion_polygons`; an all-zero extension is left without S_REGION) or a
        calibrated exposure (the chip's four corner pixel centres through its WCS, closed).
    path : path-like, optional
        File name for messages.
    extname : str
        Extension name to update.
    values : SRegionValues, optional
        :func:`sregion_values` of this file as it is (traced earlier, e.g. on a worker
        thread); None traces them now.
    """
    if values is None:
        values = sregion_values(hdul, path=path, extname=extname)
    else:
        # Building the WCS adds what stwcs fills in (RADESYS) to the header, as tracing here
        # does: the product's header is the same whichever way its S_REGION was traced.
        name = path if path is not None else (hdul.filename() or "product")
        for extver in values.texts:
            _chip_wcs(hdul, (extname, extver), name)
    for _ in range(values.n_degenerate):
        log.warning(_DEGENERATE)
    for extver, text in values.texts.items():
        if text is not None:
            hdul[extname, extver].header["S_REGION"] = text


@dataclass(frozen=True)
class SRegionValues:
    """``S_REGION`` of each ``extname`` extension of a file (:func:`sregion_values`).

    Attributes
    ----------
    texts : dict of int to str or None
        EXTVER -> the ``POLYGON ICRS ...`` text (None: all-zero data, no keyword).
    n_degenerate : int
        Regions that simplified to fewer than 3 corners (each is logged as a warning).
    """

    texts: dict
    n_degenerate: int = 0


def sregion_values(hdul, *, path=None, extname: str = "SCI", traced=None) -> SRegionValues:
    """The ``S_REGION`` values :func:`compute_sregion` writes, without writing or logging.

    Parameters
    ----------
    hdul : astropy.io.fits.HDUList
        Product or exposure, as in :func:`compute_sregion`; only read.
    path : path-like, optional
        File name for messages.
    extname : str
        Extension name.
    traced : dict of int to TracedRegions, optional
        A drizzled product's :func:`trace_sregion` of extensions' data, traced earlier (on a
        worker thread, while the product's headers were being built), by EXTVER; those
        extensions' data are not read again.

    Returns
    -------
    SRegionValues

    Raises
    ------
    InvalidInputError
        A drizzled extension without data, or a WCS that cannot be built.
    """
    name = path if path is not None else (hdul.filename() or "product")
    drizzled = "D001DATA" in hdul[0].header
    extvers = [hdu.ver for hdu in hdul if hdu.name == extname.upper()]
    traced = traced or {}
    texts, n_degenerate = {}, 0
    for extver in extvers:
        ext = (extname, extver)
        wcs = _chip_wcs(hdul, ext, name)
        if not drizzled:
            corners = wcs.calc_footprint(center=True)
            text = "POLYGON ICRS " + "".join(f"{ra} {dec} " for ra, dec in corners)
            text += f"{corners[0][0]} {corners[0][1]} "
            texts[extver] = text
            continue
        regions = traced.get(extver)
        if regions is None:
            data = hdul[ext].data
            if data is None:
                raise InvalidInputError(f"{name}[{extname},{extver}]: no data to trace S_REGION from")
            regions = trace_sregion(data)
        texts[extver] = regions.text(wcs)
        n_degenerate += regions.n_degenerate
    return SRegionValues(texts, n_degenerate)


@dataclass(frozen=True)
class TracedRegions:
    """The S_REGION polygons of a drizzled image in pixels (:func:`trace_sregion`).

    Attributes
    ----------
    polygons : list of numpy.ndarray or None
        float64 ``(m, 2)`` closed ``(x, y)`` rings (0-based pixels); None when every pixel is
        0 (no S_REGION is written).
    n_degenerate : int
        Regions that simplified to fewer than 3 corners.
    """

    polygons: list | None
    n_degenerate: int = 0

    def text(self, wcs) -> str | None:
        """The ``POLYGON ICRS ...`` text through ``wcs`` (``all_pix2world``), or None."""
        if self.polygons is None:
            return None
        text = ""
        for polygon in self.polygons:
            sky = wcs.all_pix2world(polygon, 0)
            text += "POLYGON ICRS " + "".join(f"{ra} {dec} " for ra, dec in sky)
        return text


def trace_sregion(data) -> TracedRegions:
    """The S_REGION polygons of a drizzled image, without a WCS or logging (safe to run on a
    worker thread; :func:`sregion_values` turns them into the keyword).

    Parameters
    ----------
    data : numpy.ndarray
        ``(ny, nx)`` drizzled science array, any byte order; only read.

    Returns
    -------
    TracedRegions
        :func:`sregion_polygons` of ``data``, or no polygons when every pixel is 0.
    """
    # native order (one read of a file; the arrays of a product still in memory are native
    # already and are used as they are)
    data = np.asarray(data, dtype=data.dtype.newbyteorder("="))
    if data.min() == 0 and data.max() == 0:
        return TracedRegions(None)
    polygons, n_degenerate = _traced_polygons(data)
    return TracedRegions(polygons, n_degenerate)


def measure_in_background(sci, wht, mask=None, *, weights: bool = True):
    """Start measuring a drizzled product's final arrays on a worker thread, while its headers
    are built: ``Future`` of ``(weights, traced)``.

    ``weights``: MEANWHT/MEDWHT (:func:`hapgpu.svm._footprint.written_weight_keywords` of
    ``wht`` over ``mask``, or over ``wht > 0`` without one), None when not asked for;
    ``traced``: :func:`trace_sregion` of ``sci``. The arrays are only read; the array work
    releases the GIL. The future raises what the measurement raised. None where threads may
    not launch kernels at once (:func:`hapgpu._threads.concurrent_kernels`): the caller then
    measures in order.
    """
    from concurrent.futures import ThreadPoolExecutor

    from .._threads import concurrent_kernels

    if not concurrent_kernels():
        return None

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="product-headers")
    future = pool.submit(_measure_product, sci, wht, mask, weights)
    pool.shutdown(wait=False)  # the thread ends with the task
    return future


def measured_results(future) -> tuple:
    """``(weights, traced)`` of a :func:`measure_in_background` future; ``(None, None)`` when
    there is none or the measurement raised a :class:`~hapgpu.errors.HapGpuError` (the caller
    then measures again where it would without the background measurement, and meets the
    error there)."""
    from ..errors import HapGpuError

    if future is None:
        return None, None
    try:
        return future.result()
    except HapGpuError:
        return None, None


def _measure_product(sci, wht, mask, weights: bool):
    from ._footprint import written_weight_keywords

    return (written_weight_keywords(wht, mask) if weights else None), trace_sregion(sci)


def _input_files(primary) -> list[str]:
    """Distinct input file names of the ``D???DATA`` keywords, in order of first appearance."""
    names = []
    for key in primary:
        if _DATA_KEY.match(key):
            name = str(primary[key]).split("[")[0]
            if name not in names:
                names.append(name)
    return names


def _acs_filters(primary) -> str:
    """Non-clear ``FILTER1/2`` values joined by ``;`` (``clear`` when all are clear)."""
    values = [str(primary[key]) for key in primary if re.fullmatch(r"FILTER\d", key)]
    kept = [value for value in values if "clear" not in value.lower()]
    return ";".join(kept or ["clear"])


def _match_exposure(rootname8: str, names) -> list:
    return [value for key, value in names.items() if rootname8 in key]


def _rebuild_hdrtab(hdul, *, hap_level: int, input_files: list[str], hap_exposure_names,
                    svm_root_names, svm_gendates, path) -> None:
    from astropy.io import fits

    from ..astrodrizzle._hdrtab import table_fields, table_hdu

    if "HDRTAB" not in hdul:
        log.warning("%s: no HDRTAB extension; HAPEXPNAME column not added", path)
        return
    table = hdul["HDRTAB"].data
    if table is None or "ROOTNAME" not in [n.upper() for n in table.columns.names]:
        raise InvalidInputError(f"{path}: HDRTAB has no ROOTNAME column")
    filename = hdul[0].header["FILENAME"]
    mvm = hap_level == 4 or "skycell" in filename
    names = dict(hap_exposure_names or {})
    hap_names, svm_names, gendates = [], [], []
    for row in table:
        rootname8 = str(row["ROOTNAME"])[:-1]
        if not rootname8:
            continue
        for _ in (f for f in input_files if rootname8 in f):
            for key, hap_name in names.items():
                if rootname8 in key:
                    hap_names.append(hap_name)
                    if mvm:
                        svm_names.append(_lookup(svm_root_names, key, "SVMROOTNAME", path))
                        gendates.append(_lookup(svm_gendates, key, "GENDATE", path))
                    break
    before, after = [], []  # the new columns: SVMROOTNAME and GENDATE first, HAPEXPNAME last
    if svm_names:
        width = max(len(str(n)) for n in svm_names)
        before.append(("SVMROOTNAME", _text_column(svm_names, width, "SVMROOTNAME", path)))
    if gendates:
        before.append(("GENDATE", _text_column(gendates, 10, "GENDATE", path)))
    if hap_names:
        width = max(max(len(n) for n in hap_names), HAPEXPNAME_MIN_WIDTH)
        after.append(("HAPEXPNAME", _text_column(hap_names, width, "HAPEXPNAME", path)))
    fields = table_fields(hdul["HDRTAB"])
    if fields is None:  # a table with more than names and formats: astropy's columns
        def text(field):
            name, values = field
            return fits.Column(name=name, format=f"{values.dtype.itemsize}A", array=values)

        new = fits.BinTableHDU.from_columns(fits.ColDefs([text(f) for f in before]) + table.columns
                                            + fits.ColDefs([text(f) for f in after]))
    else:  # the same table from one record array (no astropy Column copies)
        new = table_hdu(before + fields + after)
    new.header["EXTNAME"] = "HDRTAB"
    new.header["EXTVER"] = 1
    del hdul["HDRTAB"]
    hdul.append(new)


def _text_column(values, width: int, name: str, path) -> np.ndarray:
    """Text values as the ``<width>A`` column astropy stores them in: ASCII bytes, cut to
    ``width`` characters (as ``fits.Column`` with that format cuts them)."""
    try:
        return np.array([str(v) for v in values], dtype=np.str_).astype(f"S{max(int(width), 1)}")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"{path}: HDRTAB {name} values are not ASCII text: {exc}") from exc


def _lookup(mapping, key, what, path):
    if not mapping or key not in mapping:
        raise InvalidParameterError(f"{path}: no {what} given for input {key!r} of an MVM product")
    return mapping[key]


def refine_product_headers(path, *, hap_level: int, hap_exposure_names=None, poller_aperture=None,
                           input_dir=None, svm_root_names=None, svm_gendates=None,
                           s_region: SRegionValues | None = None) -> Path:
    """Write the pipeline keywords into a HAP drizzled product (drizzlepac ``refine_product_headers``).

    Parameters
    ----------
    path : str or pathlib.Path
        ``<product root>_dr?.fits``; updated in place (written to a temporary name, then
        renamed over the original).
    hap_level : {1, 2, 3, 4}, keyword-only
        HAPLEVEL: 1 exposure, 2 filter or total (3 is accepted), 4 MVM layer.
    hap_exposure_names : mapping of str to str, optional
        Input exposure file name (or rootname) -> HAP exposure product basename, in exposure
        order. Each HDRTAB row whose ROOTNAME (less its last character) occurs in an input file
        named by ``D???DATA`` gets, in a new ``HAPEXPNAME`` column (at least 51 characters
        wide), the first entry whose key contains it.
    poller_aperture : str, optional
        WFPC2 only: the poller's aperture, written to ``APERTURE`` (None or
        ``"empty_aperture"`` leaves it alone).
    input_dir : path-like, optional
        Folder of the input exposures (level 1 reads their ROOTNAME); default: the product's.
    svm_root_names, svm_gendates : mapping of str to str, optional
        MVM layers only (level 4 or ``skycell`` in the name): per input key of
        ``hap_exposure_names``, the SVM exposure product name and its ``DATE``; prepended to
        HDRTAB as ``SVMROOTNAME`` and ``GENDATE``.
    s_region : SRegionValues, optional
        :func:`sregion_values` of the product as it is now (e.g. from polygons traced on a
        worker thread, :func:`trace_sregion`); None traces them here.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    InvalidParameterError
        ``hap_level`` outside 1-4; MVM names/dates missing for an input.
    InvalidInputError
        The product cannot be read, lacks EXPSTART/EXPEND/INSTRUME or SCI,1; a level-1 input
        cannot be read.
    OutputWriteError
        The updated product cannot be written.

    Notes
    -----
    Keywords and their order as drizzlepac ``processing_utils.refine_product_headers``,
    ``compute_sregion`` and ``update_hdrtab`` (hap-pipeline.md §1.12). A product without an
    HDRTAB extension (hapgpu's AstroDrizzle writes one, as drizzlepac's) keeps none; a warning
    says so.
    Deliberate difference: IPPPSSOO lists the inputs in ``D???DATA`` order (drizzlepac: set
    order; level-1 products have a single input, so the value is the same).
    """
    from astropy.io import fits

    _check_hap_level(hap_level)
    path = Path(path)
    input_dir = Path(input_dir) if input_dir is not None else path.parent
    # Pixel arrays stay memory-mapped: only the SCI data is read (for S_REGION); the others are
    # copied from the file by writeto.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        hdul = fits.open(path)
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the product: {exc}") from exc
    try:
        with hdul:
            try:
                _refine_keywords(hdul, path, hap_level=hap_level, hap_exposure_names=hap_exposure_names,
                                 poller_aperture=poller_aperture, input_dir=input_dir,
                                 svm_root_names=svm_root_names, svm_gendates=svm_gendates,
                                 s_region=s_region)
            except OSError as exc:
                raise InvalidInputError(f"{path}: cannot read the product: {exc}") from exc
            try:
                hdul.writeto(tmp, overwrite=True)
            except OSError as exc:
                raise OutputWriteError(f"{path}: cannot write: {exc}") from exc
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise OutputWriteError(f"{path}: cannot write: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _check_hap_level(hap_level) -> None:
    if hap_level not in (1, 2, 3, 4):
        raise InvalidParameterError(f"hap_level must be 1, 2, 3 or 4, got {hap_level!r}")


def refine_product_hdulist(hdul, path, *, hap_level: int, hap_exposure_names=None, poller_aperture=None,
                           input_dir=None, svm_root_names=None, svm_gendates=None,
                           s_region: SRegionValues | None = None) -> None:
    """:func:`refine_product_headers` on a product still in memory, before its one write.

    The same keywords, values and card order as :func:`refine_product_headers` gives the file
    written from ``hdul``; the SVM and MVM pipelines call it from AstroDrizzle's
    ``finalize_headers`` hook so that each product is written once.

    Parameters
    ----------
    hdul : astropy.io.fits.HDUList
        The product as AstroDrizzle built it (PRIMARY, SCI, WHT, CTX, HDRTAB; arrays in host
        memory, any byte order); updated in place (headers, and HDRTAB replaced).
    path : str or pathlib.Path
        The name the product will be written under (ROOTNAME, FILENAME and messages).
    hap_level, hap_exposure_names, poller_aperture, input_dir, svm_root_names, svm_gendates, s_region
        As :func:`refine_product_headers`.

    Raises
    ------
    InvalidParameterError, InvalidInputError
        As :func:`refine_product_headers`.
    """
    _check_hap_level(hap_level)
    path = Path(path)
    input_dir = Path(input_dir) if input_dir is not None else path.parent
    try:
        _refine_keywords(hdul, path, hap_level=hap_level, hap_exposure_names=hap_exposure_names,
                         poller_aperture=poller_aperture, input_dir=input_dir,
                         svm_root_names=svm_root_names, svm_gendates=svm_gendates, s_region=s_region)
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the product: {exc}") from exc


def _refine_keywords(hdul, path: Path, *, hap_level, hap_exposure_names, poller_aperture, input_dir,
                     svm_root_names, svm_gendates, s_region=None) -> None:
    """The keyword updates of :func:`refine_product_headers` on the open product (in place)."""
    from astropy.io import fits
    from astropy.time import Time

    primary = hdul[0].header
    for key in ("EXPSTART", "EXPEND", "INSTRUME"):
        if key not in primary:
            raise InvalidInputError(f"{path}: no {key} in the primary header")
    if ("SCI", 1) not in hdul:
        raise InvalidInputError(f"{path}: no SCI,1 extension")

    primary["ROOTNAME"] = "_".join(path.name.split("_")[:-1])
    primary["FILENAME"] = path.name
    primary["PINAME"] = primary.get("PR_INV_L", "")
    compute_sregion(hdul, path=path, values=s_region)

    inputs = _input_files(primary)
    if hap_level == 1:
        rootnames = []
        for name in inputs:
            try:
                rootnames.append(fits.getval(input_dir / name, "ROOTNAME"))
            except (OSError, KeyError) as exc:
                raise InvalidInputError(f"{input_dir / name}: cannot read ROOTNAME of the input: {exc}") from exc
        primary["IPPPSSOO"] = ";".join(rootnames)
    primary["NUMEXP"] = len(inputs)
    primary["DATE-BEG"] = (Time(primary["EXPSTART"], format="mjd").isot, "Starting Date and Time")
    primary["DATE-END"] = (Time(primary["EXPEND"], format="mjd").isot, "Ending Date and Time")
    sci = hdul["SCI", 1].header
    primary["EQUINOX"] = sci["EQUINOX"] if "EQUINOX" in sci else 2000.0
    instrument = str(primary["INSTRUME"]).strip()
    if instrument == "ACS":
        primary["FILTER"] = _acs_filters(primary)
    if instrument == "WFPC2" and poller_aperture not in (None, "empty_aperture"):
        log.info("%s: APERTURE %s -> %s (poller)", path.name, primary.get("APERTURE"), poller_aperture)
        primary["APERTURE"] = poller_aperture
    for key in PHOT_KEYWORDS:
        if key in primary:
            sci[key] = (primary[key], primary.comments[key])
            del primary[key]
    primary["HAPLEVEL"] = (hap_level, "Classification level of this product")
    if "total" in primary["ROOTNAME"]:
        primary["FILTER"] = "detection"
    _rebuild_hdrtab(hdul, hap_level=hap_level, input_files=inputs, hap_exposure_names=hap_exposure_names,
                    svm_root_names=svm_root_names, svm_gendates=svm_gendates, path=path)
    if hap_level == 4:
        if "HDRTAB" in hdul and "PROPOSID" in hdul["HDRTAB"].data.names:
            ids = np.unique(hdul["HDRTAB"].data["PROPOSID"])
            ids.sort()
            primary["PROPOSID"] = "; ".join(str(i) for i in ids)
        else:
            log.warning("%s: no PROPOSID column in HDRTAB; PROPOSID not updated", path.name)



# --------------------------------------------------------------------------------------------
# S_REGION of an image given in row bands (a product streamed to disk)

def _collapsed_index(uniform: np.ndarray):
    """Indices kept when each run of ``uniform`` lines (rows or columns) is collapsed to its
    first line, or None when that would keep most lines.

    Collapsing a run of lines that hold no foreground pixel into one such line leaves the
    4-connected regions, their borders and what touches the frame edges unchanged.
    """
    uniform = np.asarray(uniform, dtype=bool)
    previous = np.concatenate([[False], uniform[:-1]])
    kept = np.flatnonzero(~(uniform & previous))
    return None if kept.size > 0.75 * uniform.size else kept


def _label_collapsed(foreground: np.ndarray):
    """``ndimage.label`` of ``foreground`` with runs of all-foreground rows and columns collapsed.

    Returns
    -------
    labels : numpy.ndarray
        int32 labels of the collapsed image (the same regions, numbered in the same order, as
        labelling the whole: collapsing identical all-set lines keeps every 4-connection).
    n : int
    rows, cols : numpy.ndarray
        For each row and column of ``foreground``, its row and column in ``labels``.
    """
    ny, nx = foreground.shape
    keep_rows = _collapsed_index(foreground.all(axis=1))
    keep_cols = _collapsed_index(foreground.all(axis=0))
    small = foreground
    if keep_rows is not None:
        small = small[keep_rows]
    if keep_cols is not None:
        small = small[:, keep_cols]
    labels, n = ndimage.label(small)

    def mapping(keep, size):
        if keep is None:
            return np.arange(size)
        flags = np.zeros(size, dtype=bool)
        flags[keep] = True
        return np.cumsum(flags) - 1

    return labels, n, mapping(keep_rows, ny), mapping(keep_cols, nx)


#: Rows of the bands in which :class:`SRegionBands` works out the polygons.
SREGION_BAND_ROWS = 1024


class SRegionBands:
    """``S_REGION`` of a drizzled extension whose data arrive in row bands, never whole.

    :meth:`add` keeps, per pixel, one bit of "has data" under each of the two rules of
    :func:`footprint_from_data` (not NaN; non-zero), packed, plus whether any NaN was seen and
    whether every value was 0. :meth:`values` then gives the :class:`SRegionValues` that
    :func:`sregion_values` gives for the whole image: the same polygons, vertex for vertex.

    Memory: two bits per frame pixel, plus the bands of :data:`SREGION_BAND_ROWS` rows the
    polygons are worked out in (no frame-sized label or filter array).

    Parameters
    ----------
    shape : (int, int)
        ``(ny, nx)`` of the image.

    Notes
    -----
    The steps of :func:`footprint_from_data` and :func:`_traced_polygons`, band by band:

    1. hole filling: the empty pixels are labelled (4-connected, ``ndimage.label``) in each
       band; labels meeting across a band boundary are joined (connected components of the
       graph of those pairs); a joined label touching the frame edge is outside, every other
       empty pixel is a hole and filled (what :func:`fill_holes` does on the whole frame);
    2. closing, opening and smoothing (:func:`_close_open_smooth`, reach ``_SMOOTH_REACH``):
       :func:`hapgpu.skycells._edges.tiled_local_filter` on each band widened by the reach on
       both sides, of which the band is kept (every kept pixel sees all the input it sees in
       the whole frame);
    3. regions (4-connected) labelled in each band and joined across boundaries as in step 1,
       ordered by their first pixel in raster order (``ndimage.label``'s numbering); each
       region's border pixels (the region less its erosion, the frame edge counting as empty:
       a region's 4-neighbours with data belong to it, so this is the footprint's border within
       the region) are gathered as coordinates and walked
       (:func:`hapgpu.skycells._edges.walk_pixels`, which depends only on the pixels' relative
       positions), then simplified (:func:`simplify_polygon`).
    """

    def __init__(self, shape):
        ny, nx = (int(n) for n in shape)
        if ny < 1 or nx < 1:
            raise InvalidInputError(f"S_REGION needs a non-empty image, got shape {shape}")
        self.shape = (ny, nx)
        width = -(-nx // 8)
        self._finite = np.zeros((ny, width), dtype=np.uint8)
        self._nonzero = np.zeros((ny, width), dtype=np.uint8)
        self._seen = np.zeros(ny, dtype=bool)
        self.any_nan = False
        self.all_zero = True

    def add(self, row0: int, row1: int, data) -> None:
        """Take rows ``row0:row1`` of the image (``(rows, nx)``, any float dtype and byte order)."""
        data = np.asarray(data)
        if data.shape != (row1 - row0, self.shape[1]) or not 0 <= row0 < row1 <= self.shape[0]:
            raise InvalidInputError(f"S_REGION band rows {row0}:{row1} of shape {data.shape} do not fit "
                                    f"an image of shape {self.shape}")
        nan = np.isnan(data)
        self.any_nan |= bool(nan.any())
        self._finite[row0:row1] = np.packbits(~nan, axis=1)
        nonzero = data != 0
        self._nonzero[row0:row1] = np.packbits(nonzero, axis=1)
        self.all_zero &= not nonzero.any()
        self._seen[row0:row1] = True

    # ------------------------------------------------------------------ helpers
    def _rows(self, packed, row0: int, row1: int) -> np.ndarray:
        return np.unpackbits(packed[row0:row1], axis=1, count=self.shape[1]).view(bool)

    def _bands(self):
        ny = self.shape[0]
        return [(r, min(ny, r + SREGION_BAND_ROWS)) for r in range(0, ny, SREGION_BAND_ROWS)]

    @staticmethod
    def _joined(n_labels: list, pairs: list, seeds: list):
        """Components of the band labels: ``(component of each global label, seeded flags)``.

        Global label of band ``k``'s label ``l`` (1-based) is ``offset[k] + l - 1``.
        """
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        total = int(sum(n_labels))
        if total == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
        if pairs:
            a = np.concatenate([p[0] for p in pairs])
            b = np.concatenate([p[1] for p in pairs])
        else:
            a = b = np.zeros(0, dtype=np.int64)
        graph = coo_matrix((np.ones(a.size, dtype=np.int8), (a, b)), shape=(total, total))
        _, component = connected_components(graph, directed=False)
        seeded = np.zeros(component.max() + 1 if total else 0, dtype=bool)
        if seeds:
            seeded[component[np.concatenate(seeds)]] = True
        return component, seeded

    def _filled(self, packed):
        """Step 1: generator of ``(row0, row1, filled band)`` over :meth:`_bands`."""
        ny, nx = self.shape
        bands = self._bands()
        n_labels, pairs, seeds, offsets = [], [], [], []
        previous_last = None
        offset = 0
        for row0, row1 in bands:
            empty = ~self._rows(packed, row0, row1)
            labels, n, rows, cols = _label_collapsed(empty)
            offsets.append(offset)
            n_labels.append(n)
            edge = [labels[:, cols[0]], labels[:, cols[-1]]]
            if row0 == 0:
                edge.append(labels[rows[0]])
            if row1 == ny:
                edge.append(labels[rows[-1]])
            edge = np.concatenate(edge)
            edge = np.unique(edge[edge > 0])
            seeds.append(edge.astype(np.int64) + offset - 1)
            first = labels[rows[0], cols]
            if previous_last is not None:
                above, above_offset = previous_last
                both = (above > 0) & (first > 0)
                pairs.append((above[both].astype(np.int64) + above_offset - 1,
                              first[both].astype(np.int64) + offset - 1))
            previous_last = (labels[rows[-1], cols], offset)
            offset += n
        component, seeded = self._joined(n_labels, pairs, seeds)
        for (row0, row1), offset, n in zip(bands, offsets, n_labels):
            filled = self._rows(packed, row0, row1)
            if n:
                labels, _, rows, cols = _label_collapsed(~filled)
                outside = np.zeros(n + 1, dtype=bool)
                outside[1:] = seeded[component[offset:offset + n]]
                filled = ~outside[labels]
                filled = filled[rows][:, cols] if filled.shape != (row1 - row0, nx) else filled
            yield row0, row1, filled

    def _smoothed(self, packed):
        """Step 2: generator of ``(row0, row1, footprint band)`` in row order."""
        from ..skycells._edges import tiled_local_filter

        ny, nx = self.shape
        reach = _SMOOTH_REACH
        held = np.zeros((0, nx), dtype=bool)  # filled rows held0:held0 + len(held)
        held0 = 0
        done = 0
        for row0, row1, filled in self._filled(packed):
            held = np.concatenate([held, filled]) if held.size else filled
            ready = ny if row1 == ny else row1 - reach  # rows whose reach is all held
            if ready <= done:
                continue
            w0, w1 = max(0, done - reach), min(ny, ready + reach)
            window = held[w0 - held0:w1 - held0]
            footprint = tiled_local_filter(window, _close_open_smooth, reach)
            yield done, ready, footprint[done - w0:ready - w0]
            done = ready
            keep = max(0, done - reach)
            held = held[keep - held0:]
            held0 = keep

    def _regions(self, packed):
        """Step 3: border pixels ``(xs, ys)`` of every region, in ``ndimage.label`` order."""
        nx = self.shape[1]
        state = {"offset": 0, "last": None}
        n_labels, pairs, pieces = [], [], []

        def take(row0, footprint, above, below):
            # columns without footprint collapsed to one (labels, borders and edges unchanged)
            kept = _collapsed_index(~footprint.any(axis=0))
            if kept is not None:
                footprint = footprint[:, kept]
                above = None if above is None else above[:, kept]
                below = None if below is None else below[:, kept]
            width = footprint.shape[1]
            labels, n = ndimage.label(footprint)
            offset = state["offset"]
            n_labels.append(n)
            first, last_row = labels[0], labels[-1]
            if kept is not None:  # full-width rows for the joins across bands
                expand = np.cumsum(np.isin(np.arange(nx), kept)) - 1
                first, last_row = first[expand], last_row[expand]
            if state["last"] is not None:
                last, last_offset = state["last"]
                both = (last > 0) & (first > 0)
                pairs.append((last[both].astype(np.int64) + last_offset - 1,
                              first[both].astype(np.int64) + offset - 1))
            state["last"] = (last_row.copy(), offset)
            if n:
                # erosion by the cross, the frame edges counting as empty
                padded = np.concatenate([np.zeros((1, width), bool) if above is None else above, footprint,
                                         np.zeros((1, width), bool) if below is None else below])
                eroded = footprint & padded[:-2] & padded[2:]
                eroded[:, 1:] &= footprint[:, :-1]
                eroded[:, :-1] &= footprint[:, 1:]
                eroded[:, 0] = eroded[:, -1] = False
                ys, xs = np.nonzero(footprint & ~eroded)
                labelled = labels[ys, xs].astype(np.int64) + offset - 1
                pieces.append((labelled, xs if kept is None else kept[xs], ys + row0))
            state["offset"] = offset + n

        pending = None  # (row0, footprint, last row of the band before)
        for row0, _, footprint in self._smoothed(packed):
            if pending is not None:
                take(pending[0], pending[1], pending[2], footprint[:1])
                above = pending[1][-1:]
            else:
                above = None
            pending = (row0, footprint, above)
        if pending is not None:
            take(pending[0], pending[1], pending[2], None)
        if not pieces:
            return []
        component, _ = self._joined(n_labels, pairs, [])
        glabels = np.concatenate([p[0] for p in pieces])
        xs = np.concatenate([p[1] for p in pieces])
        ys = np.concatenate([p[2] for p in pieces])
        regions = component[glabels]
        # a region's rank: its smallest global label (bands in row order, labels in raster
        # order within a band), i.e. the position of its first pixel, as ndimage.label numbers
        first = np.full(int(component.max()) + 1, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, component, np.arange(component.size, dtype=np.int64))
        ordered = np.unique(regions)
        ordered = ordered[np.argsort(first[ordered], kind="stable")]
        order = np.argsort(regions, kind="stable")
        bounds = np.searchsorted(regions[order], ordered)
        ends = np.searchsorted(regions[order], ordered, side="right")
        return [(xs[order[a:b]], ys[order[a:b]]) for a, b in zip(bounds, ends)]

    def polygons(self) -> tuple[list, int]:
        """The polygons (pixels) and the number of degenerate regions, as :func:`_traced_polygons`."""
        from ..skycells._edges import walk_pixels

        if not self._seen.all():
            raise InvalidInputError(f"S_REGION: rows {np.flatnonzero(~self._seen)[:5].tolist()}... "
                                    "of the image were never given")
        packed = self._finite if self.any_nan else self._nonzero
        polygons, n_degenerate = [], 0
        for xs, ys in self._regions(packed):
            border = walk_pixels(xs, ys)
            corners = simplify_polygon(border)
            n_degenerate += corners.shape[0] <= 3
            polygons.append(corners.astype(np.float64))
        return polygons, n_degenerate

    def values(self, hdul, *, path=None, extname: str = "SCI", extver: int = 1) -> SRegionValues:
        """:func:`sregion_values` of the image given so far, as extension ``(extname, extver)``
        of ``hdul`` (whose header gives the WCS; its data are not read)."""
        name = path if path is not None else (hdul.filename() or "product")
        wcs = _chip_wcs(hdul, (extname, extver), name)
        if self.all_zero and not self.any_nan:
            return SRegionValues({extver: None}, 0)
        regions = TracedRegions(*self.polygons())
        return SRegionValues({extver: regions.text(wcs)}, regions.n_degenerate)
