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
   with Pillow's ``ImageDraw.polygon`` (the rasteriser the reference uses, so every pixel,
   including those of the self-crossing border ring, matches);
4. the filled sub-box adds 1 to ``total_mask`` and the primary-header ``EXPTIME`` to
   ``scaled_mask``.

The keywords (``NPIXFRAC``, ``MEANEXPT``, ``MEDEXPT``, ``MEANNEXP``, ``MEDNEXP``; after drizzling
``MEANWHT``, ``MEDWHT``) are means and medians over the covered pixels, with drizzlepac's
comments. Host code: one WCS transform per chip border and one polygon fill per chip.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError, InvalidParameterError, WCSError

__all__ = ["footprint_mask", "chip_fills", "accumulate_footprint", "ChipFill", "mask_keywords", "weight_keywords",
           "WeightStatistics", "MASK_KEYWORD_COMMENTS",
           "WEIGHT_KEYWORD_COMMENTS"]

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


def _fill(points_x: np.ndarray, points_y: np.ndarray, nx: int, ny: int) -> np.ndarray:
    """Pillow polygon fill (outline 1, fill 1) of the points into an ``(ny, nx)`` bool image."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (nx, ny), 0)
    ImageDraw.Draw(image).polygon(list(zip(points_x.tolist(), points_y.tolist())), outline=1, fill=1)
    return np.asarray(image).astype(bool)


def _science_extensions(hdul, path: Path) -> list[int]:
    indices = [i for i, hdu in enumerate(hdul) if hdu.header.get("EXTNAME") == "SCI"]
    if not indices and "_single" in path.name:
        indices = [0]  # a single-drizzled image keeps its data in the primary HDU
    if not indices:
        raise InvalidInputError(f"{path}: no SCI extension")
    return indices


def _chip_box(chip_wcs, meta_wcs, shape):
    """Border of one chip in metawcs pixels, or None when it lies off the frame."""
    nx, ny = (int(n) for n in chip_wcs.pixel_shape)
    x, y = _border_pixels(nx, ny)
    ra, dec = chip_wcs.pixel_to_world_values(x, y)
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
        frame, in file order (:func:`_chip_box`).

    Raises
    ------
    InvalidInputError
        The file cannot be read, has no SCI extension or no primary ``EXPTIME``.
    WCSError
        A chip's WCS cannot be built.
    """
    from astropy.io import fits
    from stwcs.wcsutil import HSTWCS

    path = Path(exposure_path)
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
                border = _chip_box(chip_wcs, meta_wcs, shape)
                if border is not None:
                    borders.append(border)
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the exposure: {exc}") from exc
    return exptime, borders


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
