"""SVM footprint masks and the keywords drawn from them (hap-pipeline.md §1.11).

drizzlepac's ``HAPProduct.generate_footprint_mask`` builds, on the product's metawcs, the count
of input chips covering each pixel (``total_mask``, int16) and the exposure time per pixel
(``scaled_mask``, float32) with ``cell_utils.SkyFootprint.build(files, scale=True)``:

1. every border pixel of a chip (the left column, the right column, the bottom row, the top
   row, in that order, 0-based pixel centres) goes through the chip's full distorted WCS to the
   sky and then into metawcs pixels, truncated towards zero to int32;
2. a chip that lies entirely off the frame (``max <= 0`` or ``min > n - 1`` on either axis) is
   skipped; the others are clipped to the frame;
3. the border points, shifted to the chip's sub-box ``[min, max)`` on each axis (the upper
   bound excluded, as the reference slices it), are filled as a polygon — outline and interior —
   with the rules of Pillow's ``ImageDraw.polygon`` (the rasteriser the reference uses, so every
   pixel, including those of the self-crossing border ring, matches; :func:`_fill`);
4. the filled sub-box adds 1 to ``total_mask`` and the primary-header ``EXPTIME`` to
   ``scaled_mask``.

The keywords (``NPIXFRAC``, ``MEANEXPT``, ``MEDEXPT``, ``MEANNEXP``, ``MEDNEXP``; after drizzling
``MEANWHT``, ``MEDWHT``) are means and medians over the covered pixels, with drizzlepac's
comments. Host code: one WCS transform per chip border and one polygon fill per chip.

Speed: a chip's border on the sky (its WCS built from the headers, every border pixel through
it) does not depend on the frame, so it is computed once per file and process
(:func:`_sky_borders`) and reused for every frame it is projected on (the bounded frames of
several sky cells and scales, the footprints of several products). The polygon fill is a
vectorised scan conversion with Pillow's rules (:func:`_polygon_spans`): the same pixels as
``ImageDraw.polygon`` at a fraction of its cost, which grows with rows x edges where this one
grows with the edges' rows.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._fileid import file_identity
from ..errors import InvalidInputError, InvalidParameterError, WCSError

__all__ = [
    "MASK_KEYWORD_COMMENTS",
    "WEIGHT_KEYWORD_COMMENTS",
    "ChipFill",
    "WeightStatistics",
    "accumulate_footprint",
    "chip_fills",
    "footprint_mask",
    "mask_keywords",
    "weight_keywords",
]

#: Comments of the footprint keywords (drizzlepac ``product.MASK_KWS``).
MASK_KEYWORD_COMMENTS = {
    "NPIXFRAC": "Fraction of pixels with data",
    "MEANEXPT": "Mean exposure time per pixel with data",
    "MEDEXPT": "Median exposure time per pixel with data",
    "MEANNEXP": "Mean number of exposures per pixel with data",
    "MEDNEXP": "Median number of exposures per pixel with data",
}

#: Comments of the weight keywords (drizzlepac ``product.MASK_WHTKWS``).
WEIGHT_KEYWORD_COMMENTS = {
    "MEANWHT": "Mean weight (typically exposure time) over pixels with data",
    "MEDWHT": "Median weight (typically exposure time) over pixels with data",
}


def _border_pixels(nx: int, ny: int) -> tuple[np.ndarray, np.ndarray]:
    """0-based border pixels in the reference's order: left column, right column, bottom, top."""
    rows, cols = np.arange(ny), np.arange(nx)
    x = np.concatenate([np.zeros(ny, dtype=np.int64), np.full(ny, nx - 1), cols, cols])
    y = np.concatenate([rows, rows, np.zeros(nx, dtype=np.int64), np.full(nx, ny - 1)])
    return x, y


#: Pillow releases whose polygon fill (``ImagingDrawPolygon`` with fill, ``polygon_generic``,
#: ``hline8``) :func:`_polygon_spans` reproduces: 11.0 and later (10.x joined corners differently).
_PILLOW_SCAN_RULES = (11, 0)


def _pillow_version() -> tuple[int, int]:
    import PIL

    try:
        return tuple(int(part) for part in PIL.__version__.split(".")[:2])
    except ValueError:  # pragma: no cover - a development build
        return (0, 0)


def _pil_fill(points_x: np.ndarray, points_y: np.ndarray, nx: int, ny: int) -> np.ndarray:
    """Pillow polygon fill (outline 1, fill 1) of the points into an ``(ny, nx)`` bool image."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (nx, ny), 0)
    ImageDraw.Draw(image).polygon(list(zip(points_x.tolist(), points_y.tolist())), outline=1, fill=1)
    return np.asarray(image).astype(bool)


def _fill(points_x: np.ndarray, points_y: np.ndarray, nx: int, ny: int) -> np.ndarray:
    """Filled polygon (outline and interior) of integer points in an ``(ny, nx)`` image.

    Parameters
    ----------
    points_x, points_y : numpy.ndarray
        Integer vertex coordinates ``(n,)``, 0-based pixels, in ring order (closed implicitly).
    nx, ny : int
        Image size; what falls outside is clipped.

    Returns
    -------
    numpy.ndarray
        bool ``(ny, nx)``: the pixels Pillow's ``ImageDraw.polygon(points, outline=1, fill=1)``
        sets on an ``L`` image (drizzlepac's rasteriser), from :func:`_polygon_spans` with
        Pillow 11 or later; through Pillow itself with an older release.
    """
    if _pillow_version() < _PILLOW_SCAN_RULES:
        return _pil_fill(points_x, points_y, nx, ny)
    image = np.zeros((int(ny), int(nx)), dtype=bool)
    rows, start, stop = _merge_spans(*_polygon_spans(points_x, points_y, nx, ny), nx)
    for row, first, end in zip(rows.tolist(), start.tolist(), (stop + 1).tolist()):
        image[row, first:end] = True
    return image


_F32 = np.float32


def _roundf(values) -> np.ndarray:
    """C ``roundf`` (half away from zero) of float32 values, exact (float64 result)."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(values >= 0, np.floor(values + 0.5), -np.floor(-values + 0.5))


def _round_up(values) -> np.ndarray:
    """Pillow's ``ROUND_UP`` of float32 values: ``floor(f + 0.5F)`` (the sum in float32) for
    ``f >= 0``, else ``-floor(fabs(f) + 0.5)`` (in double); int64."""
    values = np.asarray(values, dtype=_F32)
    positive = np.floor((values + _F32(0.5)).astype(np.float64))
    negative = -np.floor(np.abs(values.astype(np.float64)) + 0.5)
    return np.where(values >= 0, positive, negative).astype(np.int64)


def _round_down(values) -> np.ndarray:
    """Pillow's ``ROUND_DOWN``: ``ceil(f - 0.5F)`` (float32) for ``f >= 0``, else
    ``-ceil(fabs(f) - 0.5)`` (double); int64."""
    values = np.asarray(values, dtype=_F32)
    positive = np.ceil((values - _F32(0.5)).astype(np.float64))
    negative = -np.ceil(np.abs(values.astype(np.float64)) - 0.5)
    return np.where(values >= 0, positive, negative).astype(np.int64)


def _edge_x(y, y0, dx, x0) -> np.ndarray:
    """An edge's crossing of scan line ``y``: ``(y - y0) * dx + x0``, each step in float32."""
    return (y - y0).astype(_F32) * dx + x0.astype(_F32)


def _polygon_spans(points_x, points_y, nx: int, ny: int):
    """Row spans of Pillow's filled polygon of integer points, clipped to ``(ny, nx)``.

    Parameters
    ----------
    points_x, points_y : array_like
        Integer vertices ``(n,)`` in ring order.
    nx, ny : int
        Image size.

    Returns
    -------
    rows, start, stop : numpy.ndarray
        int64 ``(m,)``: pixels ``start..stop`` (inclusive) of row ``rows`` are set; spans may
        overlap and come in no particular order.

    Notes
    -----
    The rules of Pillow's scan conversion (``ImagingDrawPolygon`` with fill,
    ``polygon_generic``, ``hline8`` in ``libImaging/Draw.c``, releases 11 to 13), applied to
    every scan line at once:

    * the edges join consecutive points and the last point to the first (unless equal);
      a horizontal edge sets its pixels ``min(x)..max(x)`` on its row;
    * the scan lines run from the lowest vertex row (at least 0, at most ``ny - 1``) to the
      highest (at least 0, at most ``ny``); on each, every other edge with ``ymin <= y <=
      ymax`` gives the float32 crossing ``(y - y0) * dx + x0`` (``dx`` the float32 slope,
      ``(x0, y0)`` the edge's first point). An edge ending on ``y`` (``y == ymax``) below the
      last scan line gives its crossing twice;
    * otherwise, at an edge's end point (``y == ymin``, or ``y == ymax`` on the last line) with
      a slope, the first earlier edge (in edge order) with a slope that also ends on ``y``, whose
      crossing rounds (``roundf``) to the same pixel and that spans the next line (the previous
      one on the last line) turns the two into a corner: the crossing moves to one pixel
      beyond the rounded outer of both edges' crossings on that next line when it lies more
      than a pixel beyond both, and stays otherwise;
    * the crossings of a line, sorted, are paired; each pair sets ``ROUND_UP(left)..
      ROUND_DOWN(right)``; an unpaired last crossing sets nothing.

    Every crossing is computed with NumPy in the arithmetic of the C code (float32 products and
    sums, ``roundf`` half away from zero), so the pixels are Pillow's; the tests compare both on
    random polygons and on chip borders.
    """
    xs = np.asarray(points_x, dtype=np.int64).ravel()
    ys = np.asarray(points_y, dtype=np.int64).ravel()
    empty = np.zeros(0, dtype=np.int64)
    nx, ny = int(nx), int(ny)
    if xs.size < 2 or nx < 1 or ny < 1:
        return empty, empty, empty
    sx0, sy0, sx1, sy1 = xs[:-1], ys[:-1], xs[1:], ys[1:]
    if xs[-1] != xs[0] or ys[-1] != ys[0]:  # the closing edge
        sx0, sy0 = np.append(sx0, xs[-1]), np.append(sy0, ys[-1])
        sx1, sy1 = np.append(sx1, xs[0]), np.append(sy1, ys[0])
    flat = sy0 == sy1
    flat_rows = sy0[flat]
    flat_start = np.minimum(sx0, sx1)[flat]
    flat_stop = np.maximum(sx0, sx1)[flat]
    # the scan lines, clipped as Pillow clips them; the last one (possibly ny) is not drawn
    y_last = min(max(int(ys.max()), 0), ny)
    y_first = max(min(int(ys.min()), ny - 1), 0)
    x0, y0, x1, y1 = sx0[~flat], sy0[~flat], sx1[~flat], sy1[~flat]
    e_low, e_high = np.minimum(y0, y1), np.maximum(y0, y1)
    slope = (x1 - x0).astype(_F32) / (y1 - y0).astype(_F32)
    first = np.maximum(e_low, y_first)
    last = np.minimum(e_high, min(y_last, ny - 1))
    counts = np.maximum(last - first + 1, 0)
    # one crossing per (edge, scan line), edges in order
    edge = np.repeat(np.arange(x0.size), counts)
    y = first[edge] + (np.arange(edge.size) - np.repeat(np.cumsum(counts) - counts, counts))
    x = _edge_x(y, y0[edge], slope[edge], x0[edge])
    low, high = e_low[edge], e_high[edge]
    twice = (y == high) & (y < y_last)
    ends = ((y == low) | (y == high)) & (slope[edge] != 0)
    corner = ends & ~twice
    moved = x.copy()
    if corner.any():
        # crossings at an end point of a sloped edge, grouped by scan line and rounded pixel,
        # in edge order within a group: a corner pairs with the group's first earlier member
        # that spans the adjacent line
        member = np.flatnonzero(ends)
        pixel = _roundf(x[member])
        order = np.lexsort((edge[member], pixel, y[member]))
        member, pixel = member[order], pixel[order]
        line = y[member]
        opens = np.r_[True, (line[1:] != line[:-1]) | (pixel[1:] != pixel[:-1])]
        group = np.cumsum(opens) - 1
        group_start = np.flatnonzero(opens)
        position = np.arange(member.size) - group_start[group]
        other_edge = edge[member]
        direction = np.where(line == high[member], -1, 1)
        for offset in (1, -1):
            spans = (e_low[other_edge] <= line + offset) & (line + offset <= e_high[other_edge])
            first_spanning = np.full(group_start.size, member.size)
            np.minimum.at(first_spanning, group[spans], position[spans])
            hit = (corner[member] & (direction == offset)
                   & (first_spanning[group] < position))
            if not hit.any():
                continue
            this = member[hit]
            that = member[group_start[group[hit]] + first_spanning[group[hit]]]
            next_line = y[this] + offset
            mine = _edge_x(next_line, y0[edge[this]], slope[edge[this]], x0[edge[this]])
            theirs = _edge_x(next_line, y0[edge[that]], slope[edge[that]], x0[edge[that]])
            value = x[this]
            one = _F32(1)
            beyond = (value > mine + one) & (value > theirs + one)
            before = ~beyond & (value < mine - one) & (value < theirs - one)
            value = value.copy()
            value[beyond] = (_roundf(np.maximum(mine, theirs)).astype(_F32) + one)[beyond]
            value[before] = (_roundf(np.minimum(mine, theirs)).astype(_F32) - one)[before]
            moved[this] = value
    line = np.concatenate([y, y[twice]])
    cross = np.concatenate([moved, moved[twice]])
    order = np.lexsort((cross, line))
    line, cross = line[order], cross[order]
    starts = np.flatnonzero(np.r_[True, line[1:] != line[:-1]]) if line.size else empty
    rank = np.arange(line.size) - np.repeat(starts, np.diff(np.r_[starts, line.size]))
    left = np.flatnonzero((rank % 2 == 0)[:-1] & (line[1:] == line[:-1]))
    rows = np.concatenate([flat_rows, line[left]])
    start = np.concatenate([flat_start, _round_up(cross[left])])
    stop = np.concatenate([flat_stop, _round_down(cross[left + 1])])
    keep = (rows >= 0) & (rows < ny) & (start < nx) & (stop >= 0)  # hline8's clipping
    rows, start, stop = rows[keep], np.maximum(start[keep], 0), np.minimum(stop[keep], nx - 1)
    keep = start <= stop
    return rows[keep], start[keep], stop[keep]


def _merge_spans(rows, start, stop, nx: int):
    """The union of row spans as disjoint spans (sorted by row, then start); int64 arrays."""
    if rows.size == 0:
        return rows, start, stop
    order = np.lexsort((start, rows))
    rows, start, stop = rows[order], start[order], stop[order]
    width = int(nx) + 2  # row * width + column orders spans across rows
    reach = np.maximum.accumulate(rows * width + stop)
    opens = np.r_[True, rows[1:] * width + start[1:] > reach[:-1] + 1]
    first = np.flatnonzero(opens)
    last = np.r_[first[1:], rows.size] - 1
    return rows[first], start[first], reach[last] - rows[first] * width


def _science_extensions(hdul, path: Path) -> list[int]:
    indices = [i for i, hdu in enumerate(hdul) if hdu.header.get("EXTNAME") == "SCI"]
    if not indices and "_single" in path.name:
        indices = [0]  # a single-drizzled image keeps its data in the primary HDU
    if not indices:
        raise InvalidInputError(f"{path}: no SCI extension")
    return indices


def _project_border(ra, dec, meta_wcs, shape):
    """A chip border on the sky into metawcs pixels (int32, clipped), or None when off the frame."""
    meta_x, meta_y = meta_wcs.world_to_pixel_values(ra, dec)
    meta_x = np.asarray(meta_x).astype(np.int32)
    meta_y = np.asarray(meta_y).astype(np.int32)
    off_x = meta_x.max() <= 0 or meta_x.min() > shape[1] - 1
    off_y = meta_y.max() <= 0 or meta_y.min() > shape[0] - 1
    if off_x or off_y:
        return None
    return np.clip(meta_x, 0, shape[1] - 1), np.clip(meta_y, 0, shape[0] - 1)


@dataclass(frozen=True)
class ChipFill:
    """One chip's filled border polygon on a product frame (:func:`chip_fills`).

    Attributes
    ----------
    exptime : float or int
        The exposure's primary-header ``EXPTIME`` as read (seconds).
    box : tuple of slice
        ``(rows, columns)`` of the frame holding the polygon's sub-box.
    blank : numpy.ndarray
        bool, the sub-box's shape: True where the chip lands.
    """

    exptime: object
    box: tuple
    blank: np.ndarray


def _check_shape(shape) -> tuple[int, int]:
    try:
        ny, nx = (int(n) for n in shape)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"shape must be (ny, nx), got {shape!r}") from exc
    if ny < 1 or nx < 1:
        raise InvalidParameterError(f"shape must be positive, got {shape!r}")
    return ny, nx


def chip_fills(exposure_path, meta_wcs, shape) -> list[ChipFill]:
    """Filled border polygons of every chip of one exposure on a product frame.

    Steps 1-3 of the module docstring; :func:`accumulate_footprint` does step 4.

    Parameters
    ----------
    exposure_path : str or pathlib.Path
        FLT/FLC file (headers only are read).
    meta_wcs : astropy.wcs.WCS or stwcs.wcsutil.HSTWCS
        Product frame.
    shape : (int, int)
        Product shape ``(ny, nx)``.

    Returns
    -------
    list of ChipFill
        The chips landing on the frame, in file order.

    Raises
    ------
    InvalidParameterError, InvalidInputError, WCSError
        As :func:`footprint_mask`.
    """
    shape = _check_shape(shape)
    exptime, borders = chip_borders(exposure_path, meta_wcs, shape)
    fills = []
    for meta_x, meta_y in borders:
        x0, y0 = int(meta_x.min()), int(meta_y.min())
        # the upper bounds excluded, as the reference slices the sub-box
        x1, y1 = min(int(meta_x.max()), shape[1]), min(int(meta_y.max()), shape[0])
        if x1 <= x0 or y1 <= y0:
            continue
        blank = _fill(meta_x - x0, meta_y - y0, x1 - x0, y1 - y0)
        fills.append(ChipFill(exptime, (slice(y0, y1), slice(x0, x1)), blank))
    return fills


def chip_borders(exposure_path, meta_wcs, shape) -> tuple[float, list]:
    """Primary ``EXPTIME`` and each chip's border on a frame (steps 1-2 of the module docstring).

    Parameters
    ----------
    exposure_path : str or pathlib.Path
        FLT/FLC file (headers only are read).
    meta_wcs : astropy.wcs.WCS or stwcs.wcsutil.HSTWCS
        The frame.
    shape : (int, int)
        Frame shape ``(ny, nx)``.

    Returns
    -------
    exptime : float
    borders : list of (ndarray, ndarray)
        ``(x, y)`` frame pixel coordinates of the border of every chip that lands on the
        frame, in file order (int32, clipped to the frame).

    Raises
    ------
    InvalidInputError
        The file cannot be read, has no SCI extension or no primary ``EXPTIME``.
    WCSError
        A chip's WCS cannot be built.

    Notes
    -----
    The border on the sky comes from :func:`_sky_borders` (read once per file and process);
    only its projection onto ``meta_wcs`` is computed here.
    """
    exptime, sky = _sky_borders(exposure_path)
    borders = []
    for ra, dec in sky:
        border = _project_border(ra, dec, meta_wcs, shape)
        if border is not None:
            borders.append(border)
    return exptime, borders




class _SkyBorderMemo:
    """Bounded, thread-safe memo of :func:`_read_sky_borders` results, by file identity.

    An entry is a UVIS exposure's ~0.4 MB (two chips of 12,294 border points, RA and Dec in
    float64); the oldest entries go first once ``max_bytes`` are held.
    """

    def __init__(self, max_bytes: int = 64 * 2**20):
        import threading
        from collections import OrderedDict

        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict = OrderedDict()
        self._sizes: dict = {}
        self._held = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key, entry) -> None:
        size = sum(ra.nbytes + dec.nbytes for ra, dec in entry[1])
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = entry
            self._sizes[key] = size
            self._held += size
            while self._held > self.max_bytes and len(self._entries) > 1:
                old, _ = self._entries.popitem(last=False)
                self._held -= self._sizes.pop(old)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._sizes.clear()
            self._held = 0


_SKY_BORDERS = _SkyBorderMemo()


def _sky_borders(exposure_path) -> tuple[object, tuple]:
    """Primary ``EXPTIME`` and every chip's border pixels on the sky, memoised per file.

    Returns
    -------
    exptime : float
        As read from the primary header.
    borders : tuple of (ndarray, ndarray)
        Per SCI extension, in file order: float64 RA and Dec (degrees) of the chip's border
        pixels (:func:`_border_pixels` through the chip's full distorted WCS).

    Raises
    ------
    InvalidInputError, WCSError
        As :func:`chip_borders` (failures are not remembered).

    Notes
    -----
    The values do not depend on the frame they are projected on, so the bounded frames and
    footprints of several sky cells, scales and products read each file's headers and build
    each chip's WCS once. The memo (:data:`_SKY_BORDERS`) is keyed by the file's resolved
    path, size and modification time: a rewritten file is read again. The arrays are shared:
    callers must not modify them.
    """
    path = Path(exposure_path)
    key = file_identity(path)
    entry = _SKY_BORDERS.get(key)
    if entry is None:
        entry = _read_sky_borders(path)
        _SKY_BORDERS.put(key, entry)
    return entry


def _read_sky_borders(path: Path) -> tuple[object, tuple]:
    from astropy.io import fits
    from stwcs.wcsutil import HSTWCS

    borders = []
    try:
        with fits.open(path) as hdul:  # headers only: the pixels are never read
            if "EXPTIME" not in hdul[0].header:
                raise InvalidInputError(f"{path}: no EXPTIME in the primary header")
            exptime = hdul[0].header["EXPTIME"]
            for index in _science_extensions(hdul, path):
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        chip_wcs = HSTWCS(hdul, ext=index)
                except Exception as exc:  # stwcs raises many types for broken headers
                    raise WCSError(f"{path}[{index}]: cannot build the WCS: {exc}") from exc
                nx, ny = (int(n) for n in chip_wcs.pixel_shape)
                x, y = _border_pixels(nx, ny)
                ra, dec = chip_wcs.pixel_to_world_values(x, y)
                ra, dec = np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64)
                ra.flags.writeable = False
                dec.flags.writeable = False
                borders.append((ra, dec))
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the exposure: {exc}") from exc
    return exptime, tuple(borders)


def accumulate_footprint(fills, shape, *, start=None) -> tuple[np.ndarray, np.ndarray]:
    """Step 4 of the module docstring: add chip polygons into the two masks, in order.

    Parameters
    ----------
    fills : iterable of ChipFill
        Chips in the product's exposure order (file order within an exposure).
    shape : (int, int)
        Product shape ``(ny, nx)``.
    start : (numpy.ndarray, numpy.ndarray), optional
        Masks of the chips that come before ``fills`` (from an earlier call with the same
        shape); copied, never changed. Default: zeros.

    Returns
    -------
    total_mask : numpy.ndarray
        int16 ``shape``.
    scaled_mask : numpy.ndarray
        float32 ``shape``.

    Notes
    -----
    The reference adds ``blank * exptime`` (blank int16 0/1) chip after chip: EXPTIME in the
    dtype of that product (float64 for a float EXPTIME, rounded to float32 on adding) where
    the chip lands, nothing elsewhere, so the masks of a prefix of the chips continue exactly.
    """
    shape = _check_shape(shape)
    if start is None:
        total_mask = np.zeros(shape, dtype=np.int16)
        scaled_mask = np.zeros(shape, dtype=np.float32)
    else:
        total_mask = np.array(start[0], dtype=np.int16)
        scaled_mask = np.array(start[1], dtype=np.float32)
        if total_mask.shape != shape or scaled_mask.shape != shape:
            raise InvalidInputError(f"footprint masks of shape {total_mask.shape} to continue on a "
                                    f"frame of shape {shape}")
    for fill in fills:
        box, blank = fill.box, fill.blank
        np.add(scaled_mask[box], np.ones(1, np.int16) * fill.exptime, out=scaled_mask[box],
               where=blank, casting="same_kind")
        total_mask[box] += blank  # +1 where the chip lands (int16 + bool: int16)
    return total_mask, scaled_mask


def footprint_mask(exposure_paths, meta_wcs, shape) -> tuple[np.ndarray, np.ndarray]:
    """Chips per pixel and exposure time per pixel of ``exposure_paths`` on the metawcs.

    Parameters
    ----------
    exposure_paths : sequence of str or pathlib.Path
        Exposures (FLT/FLC) of the product (for a total: every direct exposure of the
        detector, single-exposure filters included).
    meta_wcs : astropy.wcs.WCS or stwcs.wcsutil.HSTWCS
        Product frame (e.g. ``make_mosaic_wcs(...).wcs``); used through
        ``world_to_pixel_values`` (0-based pixels).
    shape : (int, int)
        Product shape ``(ny, nx)``.

    Returns
    -------
    total_mask : numpy.ndarray
        int16, ``shape``: number of chips covering each pixel.
    scaled_mask : numpy.ndarray
        float32, ``shape``: sum of the covering exposures' ``EXPTIME`` (seconds).
        Both are all zero when no chip lands on the frame (drizzlepac then marks the product
        invalid).

    Raises
    ------
    InvalidParameterError
        ``shape`` is not two positive integers.
    InvalidInputError
        An exposure cannot be read, has no SCI extension or no primary ``EXPTIME``.
    WCSError
        A chip WCS cannot be built.

    Notes
    -----
    drizzlepac ``cell_utils.SkyFootprint.build(scale=True)`` (hap-pipeline.md §1.11); Pillow's
    ``ImageDraw.polygon`` does the fill, as in the reference. :func:`chip_fills` of each
    exposure, then :func:`accumulate_footprint`.
    """
    shape = _check_shape(shape)
    if isinstance(exposure_paths, (str, Path)):
        exposure_paths = [exposure_paths]
    fills = [fill for path in exposure_paths for fill in chip_fills(path, meta_wcs, shape)]
    return accumulate_footprint(fills, shape)


def mask_keywords(total_mask: np.ndarray, scaled_mask: np.ndarray) -> dict:
    """``NPIXFRAC``, ``MEANEXPT``, ``MEDEXPT``, ``MEANNEXP``, ``MEDNEXP`` of a footprint.

    Parameters
    ----------
    total_mask : numpy.ndarray
        int16 ``(ny, nx)``: chips per pixel (:func:`footprint_mask`).
    scaled_mask : numpy.ndarray
        float32 ``(ny, nx)``: exposure time per pixel, seconds.

    Returns
    -------
    dict
        ``{keyword: (value, comment)}`` in drizzlepac's order, ready for a FITS header. With
        ``good = total_mask > 0``: NPIXFRAC = ``count(good) / size`` (float64), MEANEXPT and
        MEDEXPT = mean and median of ``scaled_mask[good]`` (float32 arithmetic, as the
        reference), MEANNEXP and MEDNEXP = mean and median of ``total_mask[good]`` (float64).

    Raises
    ------
    InvalidInputError
        The masks differ in shape or are not 2-D.
    WCSError
        No pixel is covered (the exposures miss the frame; the product is invalid).
    """
    total_mask = np.asarray(total_mask)
    scaled_mask = np.asarray(scaled_mask)
    if total_mask.ndim != 2 or total_mask.shape != scaled_mask.shape:
        raise InvalidInputError(f"footprint masks must be 2-D and of one shape, got {total_mask.shape} "
                                f"and {scaled_mask.shape}")
    good = total_mask > 0
    if not good.any():
        raise WCSError("no pixel of the product frame is covered by its exposures")
    exposure_times = scaled_mask[good]
    n_good, mean_count, median_count = _count_statistics(total_mask)
    values = {
        "NPIXFRAC": n_good / total_mask.size,
        "MEANEXPT": np.mean(exposure_times),
        "MEDEXPT": _few_valued_median(exposure_times),
        "MEANNEXP": mean_count,
        "MEDNEXP": median_count,
    }
    return {key: (value, MASK_KEYWORD_COMMENTS[key]) for key, value in values.items()}


#: Most chips per pixel counted by comparisons rather than a histogram of the selection.
_FEW_COUNTS = 32


def _count_statistics(total_mask: np.ndarray):
    """Number, mean and median of the positive values of an integer mask, from its histogram.

    The same numbers as ``n = count_nonzero(m > 0)``, ``np.mean(m[m > 0])`` and
    ``np.median(m[m > 0])``: the mean of integers is their exact sum (float64 holds it)
    divided by their number, and the median is ``np.median`` of the one or two middle values
    of the sorted selection, read off the cumulative histogram.
    """
    top = int(total_mask.max())
    if top <= _FEW_COUNTS:  # a few chips per pixel: one comparison pass per value
        counts = np.array([0] + [np.count_nonzero(total_mask == k) for k in range(1, top + 1)],
                          dtype=np.int64)
    else:
        positive = total_mask[total_mask > 0]
        counts = np.bincount(np.asarray(positive, dtype=np.int64).ravel(), minlength=top + 1)
        counts[0] = 0
    n = int(counts.sum())
    values = np.arange(counts.size, dtype=np.int64)
    mean = np.float64(float(np.dot(values, counts))) / n
    cumulative = np.cumsum(counts)
    middle = [n // 2] if n % 2 else [n // 2 - 1, n // 2]
    # rank r (0-based) of the positive values lies in the first bin whose cumulative count
    # exceeds r (the zeros are not counted)
    middle_values = np.searchsorted(cumulative, np.asarray(middle) + 1).astype(total_mask.dtype)
    return np.int64(n), mean, np.median(middle_values)


#: Most distinct values for which :func:`_few_valued_median` counts instead of partitioning.
_FEW_VALUES = 12
#: Stride of the sample that proposes the distinct values.
_VALUE_SAMPLE_STRIDE = 97


def _few_valued_median(values: np.ndarray):
    """``np.median(values)`` of a 1-D array that holds few distinct values, by counting.

    A footprint's exposure-time map holds one value per combination of covering chips. The
    distinct values of a strided sample are proposed; when their counts in the whole array add
    up to its size they are all the values, the sorted counts locate the one or two middle
    values, and ``np.median`` of those is the median of the whole (same dtype, same
    arithmetic). Otherwise (more values, or one the sample missed) ``np.median`` of the whole.
    """
    values = np.asarray(values)
    candidates = np.unique(values[::_VALUE_SAMPLE_STRIDE])
    if values.size == 0 or candidates.size > _FEW_VALUES or not np.all(np.isfinite(candidates)):
        return np.median(values)
    counts = np.array([np.count_nonzero(values == v) for v in candidates], dtype=np.int64)
    n = values.size
    if int(counts.sum()) != n:
        return np.median(values)
    cumulative = np.cumsum(counts)
    middle = [n // 2] if n % 2 else [n // 2 - 1, n // 2]
    return np.median(candidates[np.searchsorted(cumulative, np.asarray(middle) + 1)])


def written_weight_keywords(wht: np.ndarray, mask: np.ndarray | None = None) -> dict:
    """:func:`weight_keywords` of ``wht`` in the file's byte order (big-endian), as when read
    back from the written product (numpy sums a non-native array in buffered chunks, so the
    float32 mean can differ in its last bit from the native array's)."""
    wht = np.asarray(wht)
    return weight_keywords(wht.astype(wht.dtype.newbyteorder(">")), mask)


def weight_keywords(wht: np.ndarray, mask: np.ndarray | None = None) -> dict:
    """``MEANWHT`` and ``MEDWHT`` of a drizzled weight image over the pixels with data.

    Parameters
    ----------
    wht : numpy.ndarray
        ``(ny, nx)`` drizzled weight (the product's WHT, float32).
    mask : numpy.ndarray, optional
        ``(ny, nx)`` footprint count mask (``total_mask``); pixels with ``mask > 0`` are used.
        None uses ``wht > 0`` (drizzlepac's fallback when no mask was saved).

    Returns
    -------
    dict
        ``{"MEANWHT": (mean, comment), "MEDWHT": (median, comment)}``, in the weight's dtype.

    Raises
    ------
    InvalidInputError
        Shapes differ, or no pixel is selected.
    """
    wht = np.asarray(wht)
    if wht.ndim != 2:
        raise InvalidInputError(f"the weight image must be 2-D, got shape {wht.shape}")
    if mask is None:
        selected = wht > 0.0
    else:
        mask = np.asarray(mask)
        if mask.shape != wht.shape:
            raise InvalidInputError(f"mask shape {mask.shape} differs from the weight shape {wht.shape}")
        selected = mask > 0
    if not selected.any():
        raise InvalidInputError("no pixel with data to compute MEANWHT/MEDWHT from")
    values = {"MEANWHT": np.mean(wht[selected]), "MEDWHT": np.median(wht[selected])}
    return {key: (value, WEIGHT_KEYWORD_COMMENTS[key]) for key, value in values.items()}


class WeightStatistics:
    """``MEANWHT`` and ``MEDWHT`` of a weight image given in row bands (:func:`weight_keywords`).

    The same values as :func:`weight_keywords` of the whole image in the file's byte order
    (big-endian, ``mask=None``: pixels with ``WHT > 0``), without holding the image: the bands
    are seen once, in row order, while a product is written (:meth:`add`), and the median's
    second pass reads back only the rows that hold it (:meth:`keywords`).

    Notes
    -----
    Mean: ``np.mean`` of a float32 array is its float32 sum divided by the count in float64
    and rounded to float32. numpy sums a non-native (big-endian) array through its buffered
    iterator: blocks of ``np.getbufsize()`` elements (8192), each summed pairwise
    (``np.add.reduce`` of the block), added in turn to a float32 total starting at 0. The
    selected values are fed through the same blocks here, a partial block carried from one
    band to the next, so the float32 total is bit for bit numpy's.

    Median: exact selection in two passes (the values are positive float32, whose bit patterns
    sort as the values do). Pass 1 counts the selected values per band in 2**16 bins of their
    upper 16 bits; the cumulative counts locate the bin(s) of the one or two middle ranks
    (``np.median``: the middle value, or the float32 mean of the two middle values). Pass 2
    gathers the values of those bins from the bands that hold them (read back through the
    caller's ``read_rows``) and selects the ranks among them.
    """

    _BINS = 1 << 16

    def __init__(self):
        self._buffer = np.getbufsize()
        self._carry = np.zeros(0, dtype=np.float32)
        self._total = np.float32(0.0)
        self._count = 0
        self._bands: list = []  # (row0, row1, bin counts int64 (2**16,) or None)

    def add(self, row0: int, row1: int, wht) -> None:
        """Take rows ``row0:row1`` of the weight image (float32 ``(rows, nx)``, any byte order).

        Bands must come in row order and cover the image (what is skipped counts as no data).
        """
        wht = np.asarray(wht)
        values = wht[wht > 0.0].astype(np.float32)  # native order, row-major as wht[selected]
        if values.size == 0:
            self._bands.append((int(row0), int(row1), None))
            return
        self._count += values.size
        stream = np.concatenate([self._carry, values]) if self._carry.size else values
        n_full = stream.size - stream.size % self._buffer
        total = self._total
        for start in range(0, n_full, self._buffer):
            total = np.float32(total + np.add.reduce(stream[start:start + self._buffer]))
        self._total = total
        self._carry = stream[n_full:].copy()
        counts = np.bincount(values.view(np.uint32) >> 16, minlength=self._BINS).astype(np.int64)
        self._bands.append((int(row0), int(row1), counts))

    def keywords(self, read_rows) -> dict:
        """``{"MEANWHT": (mean, comment), "MEDWHT": (median, comment)}`` (float32 values).

        Parameters
        ----------
        read_rows : callable
            ``read_rows(row0, row1)`` -> the weight image's rows ``row0:row1`` as given to
            :meth:`add` (e.g. read back from the written product); called only for bands
            holding a middle value.

        Raises
        ------
        InvalidInputError
            No band held a pixel with weight.
        """
        if self._count == 0:
            raise InvalidInputError("no pixel with data to compute MEANWHT/MEDWHT from")
        total = self._total
        if self._carry.size:
            total = np.float32(total + np.add.reduce(self._carry))
        mean = np.float32(total / np.intp(self._count))
        n = self._count
        ranks = [n // 2] if n % 2 else [n // 2 - 1, n // 2]
        counts = np.zeros(self._BINS, dtype=np.int64)
        for _, _, band_counts in self._bands:
            if band_counts is not None:
                counts += band_counts
        cumulative = np.cumsum(counts)
        bins = sorted({int(np.searchsorted(cumulative, r, side="right")) for r in ranks})
        gathered = []
        for row0, row1, band_counts in self._bands:
            if band_counts is None or not any(band_counts[b] for b in bins):
                continue
            rows = np.asarray(read_rows(row0, row1))
            values = rows[rows > 0.0].astype(np.float32)
            upper = values.view(np.uint32) >> 16
            gathered.append(values[np.isin(upper, bins)])
        pool = np.sort(np.concatenate(gathered))
        below = int(cumulative[bins[0] - 1]) if bins[0] > 0 else 0
        middle = pool[np.asarray(ranks) - below]
        values = {"MEANWHT": mean, "MEDWHT": np.median(middle.astype(np.float32))}
        return {key: (value, WEIGHT_KEYWORD_COMMENTS[key]) for key, value in values.items()}
