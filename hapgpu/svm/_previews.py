"""JPEG previews of HAP drizzled products: full size, thumbnail and the colour total.

drizzlepac does not make these; the archive does (hap-pipeline.md §1.6, last row of the product
table; ``svm_processing.rst`` lists the names). For each drizzled product
``<product>_dr[cz].fits`` this module writes ``<product>_dr[cz].jpg`` and
``<product>_dr[cz]_thumb.jpg``, and for each total the colour composite
``<total>_<filters>_dr[cz].jpg`` (with its ``_thumb.jpg``) made from the total's filter products.

How an image becomes a preview
------------------------------
1. **Limits**: IRAF's zscale limits (astropy ``ZScaleInterval``: 1000 samples, contrast 0.25)
   of the product's finite full-resolution SCI pixels, computed once per product so the
   preview and the thumbnail share them. ``interval="zmax"`` (what the SVM pipeline uses)
   keeps the lower limit and takes the 99.9th percentile as the upper one
   (:func:`display_limits`): zscale's upper limit is a few noise sigma above the sky, so under
   the asinh stretch zscale previews show a grey sky and white sources.
2. **Binning**: when the longest side exceeds the size asked for, the image is binned by the
   smallest integer factor ``f = ceil(longest / size)`` that fits; each output pixel is the mean
   of the finite input pixels of its ``f x f`` block (NaN when it has none). The last row and
   column of blocks may be partial. The thumbnail bins the preview's blocks further by the
   smallest integer ``k`` that fits (factor ``f * k``, the same block means computed from the
   preview's block sums), so the full-resolution pixels are read once.
3. **Stretch**: ``t = clip((x - vmin) / (vmax - vmin), 0, 1)``, then astropy's
   ``AsinhStretch(a)``: ``asinh(t / a) / asinh(1 / a)`` (Lupton et al. 1999, AJ 118, 1406;
   ``a = 0.1``), scaled to 0-255 and rounded. NaN / infinite pixels (no data) are black.
4. **Orientation**: FITS row 0 is the bottom of the sky image, a JPEG's row 0 its top, so the
   rows are flipped: an SVM/MVM product, drizzled north up with east to the left (its CD1_1 < 0),
   is displayed north up, east left. Nothing else is resampled or rotated.

Sizes: the Hubble Legacy Archive, whose ``fitscut`` service makes HST's archive previews, shows
whole fields "binned down" to 256 px (512 px on request) and documents ``output_size`` as the
longest side of a binned JPEG (its colour example uses 1024). Here the full-size preview is binned
to at most :data:`DEFAULT_MAX_SIZE` = 2048 px on its longest side (a 5870 x 5774 SVM product is
binned 3 x 3 to 1957 x 1925; pass ``max_size=None`` for full resolution) and the thumbnail to at
most :data:`DEFAULT_THUMBNAIL_SIZE` = 256 px, HLA's default preview size.

Colour composites: the filter products are ordered by their pivot wavelength ``PHOTPLAM`` (blue
to red); each is stretched with its own zscale limits and the stretched images (values 0-1) are
mixed into the red, green and blue channels with the weights of :func:`channel_weights`:

* 2 filters: blue = the shorter, red = the longer, green = the mean of the two;
* 3 filters: blue, green, red in wavelength order;
* n > 3: filter ``i`` sits at ``t = i / (n - 1)`` on a blue (0) to red (1) axis and feeds each
  channel with a triangular weight centred on blue 0, green 0.5, red 1 (half-width 0.5),
  normalised per channel, so neighbouring filters share a channel;
* 1 filter (array functions only): grey.

The ``<filters>`` field of the colour name joins the filter names in that order with ``-``
(``f438w-f606w-f814w``), the way HAP joins the two names of a two-element filter.

Arrays in, arrays out (:func:`preview_image`, :func:`color_preview_image`) are host NumPy
arrays; a pipeline holding device data passes ``backend.to_host(sci)``. Files are written to a
temporary name in the output folder and renamed.
"""

from __future__ import annotations

import logging
import math
import os
import re
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.visualization import AsinhStretch, ZScaleInterval

from ..errors import InvalidInputError, InvalidParameterError, OutputWriteError

__all__ = [
    "DEFAULT_ASINH_A",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_QUALITY",
    "DEFAULT_THUMBNAIL_SIZE",
    "bin_image",
    "channel_weights",
    "color_preview_filenames",
    "color_preview_image",
    "display_limits",
    "filter_name_of_product",
    "preview_filenames",
    "preview_image",
    "save_jpeg",
    "stretch_to_uint8",
    "write_color_preview",
    "write_previews",
    "zscale_limits",
]

log = logging.getLogger(__name__)

#: Longest side of the full-size preview, pixels (None in the functions: full resolution).
DEFAULT_MAX_SIZE = 2048
#: Longest side of the thumbnail, pixels (HLA's default preview size).
DEFAULT_THUMBNAIL_SIZE = 256
#: JPEG quality (Pillow's 1-95 scale).
DEFAULT_QUALITY = 90
#: Softening of the asinh stretch (astropy ``AsinhStretch`` default): linear below ~a, log above.
DEFAULT_ASINH_A = 0.1

_ZSCALE_SAMPLES = 1000     # ZScaleInterval's (IRAF zscale's) default sample count
_ZMAX_SAMPLES = 1_000_000  # pixels on the grid the "zmax" upper percentile is taken from
_ZMAX_PERCENTILE = 99.9
_INTERVALS = ("zscale", "zmax")
#: Default limits: IRAF's zscale (the SVM pipeline asks for "zmax", see step 1).
DEFAULT_INTERVAL = "zscale"
_PRODUCT_NAME = re.compile(r"^(?P<stem>.+)_(?P<filetype>dr[cz])\.fits$")
_TOTAL_STEM = re.compile(r"^(?P<prefix>.+_)total_(?P<ipppss>[^_]+)$")


# --------------------------------------------------------------------------------------------
# Names (pure)

def _split_product_name(name: str) -> tuple[str, str]:
    """``(stem, filetype)`` of ``<stem>_dr[cz].fits``; InvalidInputError otherwise."""
    match = _PRODUCT_NAME.match(Path(name).name)
    if match is None:
        raise InvalidInputError(f"{name}: not a drizzled product name (<product>_drc.fits or "
                                "<product>_drz.fits)")
    return match["stem"], match["filetype"]


def preview_filenames(product_name: str | os.PathLike) -> tuple[str, str]:
    """Names of a drizzled product's preview and thumbnail.

    Parameters
    ----------
    product_name : str or os.PathLike
        ``<product>_dr[cz].fits`` (a path is reduced to its file name).

    Returns
    -------
    tuple of str
        ``(<product>_dr[cz].jpg, <product>_dr[cz]_thumb.jpg)``.

    Raises
    ------
    InvalidInputError
        The name does not end in ``_drc.fits`` or ``_drz.fits``.
    """
    stem, filetype = _split_product_name(os.fspath(product_name))
    return f"{stem}_{filetype}.jpg", f"{stem}_{filetype}_thumb.jpg"


def color_preview_filenames(total_name: str | os.PathLike,
                            filters: Sequence[str]) -> tuple[str, str]:
    """Names of a total's colour preview and its thumbnail.

    Parameters
    ----------
    total_name : str or os.PathLike
        The total product, ``hst_<propid>_<obset>_<instr>_<det>_total_<ipppss>_dr[cz].fits``.
    filters : sequence of str
        Filter names in the order used (blue to red), e.g. ``["f438w", "f814w"]``.

    Returns
    -------
    tuple of str
        ``(<total>_<filters>_dr[cz].jpg, <total>_<filters>_dr[cz]_thumb.jpg)`` with the filter
        names lower case and joined by ``-`` (``..._total_ib4606_f438w-f814w_drc.jpg``).

    Raises
    ------
    InvalidInputError
        ``total_name`` is not a drizzled product name, or ``filters`` is empty or holds an
        empty name or one with ``_`` or ``/``.
    """
    stem, filetype = _split_product_name(os.fspath(total_name))
    names = [str(f).lower() for f in filters]
    if not names or any(not n or "_" in n or "/" in n for n in names):
        raise InvalidInputError(f"{Path(total_name).name}: colour preview needs non-empty "
                                f"filter names without '_' or '/', got {list(filters)!r}")
    field = "-".join(names)
    return f"{stem}_{field}_{filetype}.jpg", f"{stem}_{field}_{filetype}_thumb.jpg"


def filter_name_of_product(filter_product: str | os.PathLike,
                           total_product: str | os.PathLike) -> str:
    """The filter field of an SVM filter product's name, checked against its total.

    Parameters
    ----------
    filter_product : str or os.PathLike
        ``hst_<propid>_<obset>_<instr>_<det>_<filter>_<ipppss>_dr[cz].fits``.
    total_product : str or os.PathLike
        ``hst_<propid>_<obset>_<instr>_<det>_total_<ipppss>_dr[cz].fits``.

    Returns
    -------
    str
        ``<filter>`` (e.g. ``f606w``, ``f555w-pol60v``).

    Raises
    ------
    InvalidInputError
        The total is not named ``..._total_<ipppss>_dr[cz].fits``, or the filter product does
        not share the total's ``hst_<propid>_<obset>_<instr>_<det>_`` prefix, ``<ipppss>`` and
        file type.
    """
    total_stem, total_type = _split_product_name(os.fspath(total_product))
    match = _TOTAL_STEM.match(total_stem)
    if match is None:
        raise InvalidInputError(f"{Path(total_product).name}: not a total product name "
                                "(..._total_<ipppss>_dr[cz].fits)")
    prefix, suffix = match["prefix"], "_" + match["ipppss"]
    stem, filetype = _split_product_name(os.fspath(filter_product))
    middle = stem[len(prefix):-len(suffix)] if len(stem) > len(prefix) + len(suffix) else ""
    if (filetype != total_type or not stem.startswith(prefix) or not stem.endswith(suffix)
            or not middle or "_" in middle or middle == "total"):
        raise InvalidInputError(f"{Path(filter_product).name}: not a filter product of "
                                f"{Path(total_product).name} (expected "
                                f"{prefix}<filter>{suffix}_{total_type}.fits)")
    return middle


# --------------------------------------------------------------------------------------------
# Arrays (pure)

def _host_2d(data, what: str = "image") -> np.ndarray:
    """A 2-D host float array view of ``data`` (a CuPy array is copied with its ``get``)."""
    if not isinstance(data, np.ndarray) and hasattr(data, "get"):
        data = data.get()
    array = np.asarray(data)
    if array.ndim != 2 or array.size == 0:
        raise InvalidInputError(f"{what} must be a non-empty 2-D array, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise InvalidInputError(f"{what} must be real numbers, got dtype {array.dtype}")
    return array


def zscale_limits(data: np.ndarray) -> tuple[float, float] | None:
    """IRAF zscale display limits of the finite pixels of an image.

    Parameters
    ----------
    data : numpy.ndarray
        ``(ny, nx)`` real image, any dtype and byte order; NaN / inf are ignored.

    Returns
    -------
    tuple of float or None
        ``(vmin, vmax)``, ``vmin <= vmax``, in the data's units; None when no pixel is finite.

    Raises
    ------
    InvalidInputError
        ``data`` is not a non-empty real 2-D array.

    Notes
    -----
    astropy ``ZScaleInterval`` with its defaults (IRAF ``zscale``: 1000 evenly strided samples,
    contrast 0.25, at most 5 rejection iterations at 2.5 sigma).
    """
    array = _host_2d(data)
    samples = _zscale_samples(array, _ZSCALE_SAMPLES)
    if samples is None:
        return None
    vmin, vmax = ZScaleInterval(n_samples=_ZSCALE_SAMPLES).get_limits(samples)
    return float(vmin), float(vmax)


def _zscale_samples(array: np.ndarray, n_samples: int) -> np.ndarray | None:
    """The pixels ``ZScaleInterval`` samples: every ``stride``-th finite value in row-major
    order, ``stride = int(max(1, n_finite / n_samples))``, at most ``n_samples`` of them.

    Picked by rank through per-row counts instead of copying every finite pixel, so a
    34-Mpixel product costs one ``isfinite`` pass; ``ZScaleInterval`` given these samples
    strides by 1 and returns exactly what it returns for all the finite pixels.
    """
    finite = np.isfinite(array)
    per_row = finite.sum(axis=1, dtype=np.int64)
    cumulative = np.cumsum(per_row)
    n_finite = int(cumulative[-1])
    if n_finite == 0:
        return None
    stride = int(max(1.0, n_finite / n_samples))
    ranks = np.arange(0, n_finite, stride)[:n_samples]
    rows = np.searchsorted(cumulative, ranks, side="right")
    within = ranks - (cumulative[rows] - per_row[rows])
    samples = np.empty(ranks.size, dtype=np.float64)
    for row in np.unique(rows):
        pick = rows == row
        samples[pick] = array[row, np.flatnonzero(finite[row])[within[pick]]]
    return samples


def display_limits(data: np.ndarray, interval: str = DEFAULT_INTERVAL) -> tuple[float, float] | None:
    """Display limits of an image for the previews.

    Parameters
    ----------
    data : numpy.ndarray
        ``(ny, nx)`` real image; NaN / inf are ignored.
    interval : {"zscale", "zmax"}
        ``zscale``: :func:`zscale_limits` (the default of every preview function).
        ``zmax``: the zscale lower limit with the 99.9th percentile of the finite pixels as the
        upper one (ds9's "zmax" idea, with a percentile instead of the maximum so that a few hot
        pixels do not set it), taken on a regular grid of about 10^6 pixels. zscale's upper
        limit lies a few noise sigma above the sky, so a zscale preview shows the sky grey
        and every source white; ``zmax`` keeps the sky dark and grades the sources.

    Returns
    -------
    tuple of float or None
        ``(vmin, vmax)`` with ``vmin <= vmax``; None when no pixel is finite.

    Raises
    ------
    InvalidInputError
        ``data`` is not a non-empty real 2-D array.
    InvalidParameterError
        Unknown ``interval``.
    """
    _check_interval(interval)
    array = _host_2d(data)
    limits = zscale_limits(array)
    if limits is None or interval == "zscale":
        return limits
    step = max(1, int(math.sqrt(array.size / _ZMAX_SAMPLES)))
    grid = array[::step, ::step]
    top = float(np.percentile(grid[np.isfinite(grid)], _ZMAX_PERCENTILE)) \
        if np.isfinite(grid).any() else limits[1]
    return limits[0], max(limits[0], top)


def bin_image(data: np.ndarray, factor: int) -> np.ndarray:
    """Mean of the finite pixels in each ``factor x factor`` block.

    Parameters
    ----------
    data : numpy.ndarray
        ``(ny, nx)`` real image; NaN / inf mark pixels without data.
    factor : int
        Block size, >= 1.

    Returns
    -------
    numpy.ndarray
        float32 ``(ceil(ny / factor), ceil(nx / factor))``; NaN where a block has no finite
        pixel. The last block row / column covers the remaining (fewer) pixels. ``factor`` 1
        returns a float32 copy with non-finite values set to NaN.

    Raises
    ------
    InvalidInputError
        ``data`` is not a non-empty real 2-D array.
    InvalidParameterError
        ``factor`` is not an integer >= 1.
    """
    array = _host_2d(data)
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise InvalidParameterError(f"binning factor must be an integer >= 1, got {factor!r}")
    return _mean(*_finite_block_sums(array, int(factor)))


def _sum_blocks(array: np.ndarray, factor: int, dtype) -> np.ndarray:
    """Sums over ``factor x factor`` blocks, the last row / column of blocks partial.

    Strided slices are added (x first, in ``array``'s precision, then y in ``dtype``): far
    faster in NumPy than reducing a reshaped copy along a short axis, and no padded copy.
    """
    if factor == 1:
        return array.astype(dtype)
    ny, nx = array.shape
    my, mx = -(-ny // factor), -(-nx // factor)
    by_x = np.zeros((ny, mx), dtype=np.result_type(array.dtype, np.int32)
                    if array.dtype == bool else array.dtype)
    for j in range(min(factor, nx)):
        part = array[:, j::factor]
        by_x[:, :part.shape[1]] += part
    out = np.zeros((my, mx), dtype=dtype)
    for i in range(min(factor, ny)):
        part = by_x[i::factor]
        out[:part.shape[0]] += part
    return out


def _finite_block_sums(array: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """float64 sums and int32 counts of the finite pixels of each block."""
    finite = np.isfinite(array)
    values = array.astype(np.float32)          # native byte order; precision ample for 8 bits
    values[~finite] = 0.0
    return _sum_blocks(values, factor, np.float64), _sum_blocks(finite, factor, np.int32)


def _mean(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """float32 ``sums / counts``, NaN where ``counts`` is 0."""
    out = np.full(sums.shape, np.nan, dtype=np.float64)
    np.divide(sums, counts, out=out, where=counts > 0)
    return out.astype(np.float32)


def _binned_pair(array: np.ndarray, factor: int, thumb_step: int | None):
    """Means binned by ``factor`` and, if ``thumb_step``, by ``factor * thumb_step`` (the
    second from the first's sums: one pass over the full-resolution pixels)."""
    sums, counts = _finite_block_sums(array, factor)
    first = _mean(sums, counts)
    if thumb_step is None:
        return first, None
    return first, _mean(_sum_blocks(sums, thumb_step, np.float64),
                        _sum_blocks(counts, thumb_step, np.int32))


def _stretch_unit(data: np.ndarray, limits: tuple[float, float] | None,
                  asinh_a: float) -> np.ndarray:
    """Stretched image in [0, 1] (float32), 0 where not finite or when ``limits`` is None."""
    out = np.zeros(data.shape, dtype=np.float32)
    if limits is None:
        return out
    vmin, vmax = limits
    finite = np.isfinite(data)
    if not vmax > vmin:
        # flat image: everything at or below vmin is black, anything above it white
        out[finite & (data > vmin)] = 1.0
        return out
    scaled = np.zeros(data.shape, dtype=np.float64)
    np.subtract(data, vmin, out=scaled, where=finite)
    scaled /= vmax - vmin
    np.clip(scaled, 0.0, 1.0, out=scaled)
    out[...] = AsinhStretch(a=asinh_a)(scaled, clip=True)
    out[~finite] = 0.0
    return out


def _check_interval(interval) -> None:
    if interval not in _INTERVALS:
        raise InvalidParameterError(f"interval must be one of {_INTERVALS}, got {interval!r}")


def _check_asinh_a(asinh_a) -> float:
    if isinstance(asinh_a, bool) or not isinstance(asinh_a, (int, float, np.floating)) \
            or not 0.0 < float(asinh_a) <= 1.0:
        raise InvalidParameterError(f"asinh_a must be a number in (0, 1], got {asinh_a!r}")
    return float(asinh_a)


def _to_uint8(unit: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8)


def stretch_to_uint8(data: np.ndarray, limits: tuple[float, float] | None = None, *,
                     asinh_a: float = DEFAULT_ASINH_A) -> np.ndarray:
    """Asinh-stretch an image between display limits into 8-bit grey levels.

    Parameters
    ----------
    data : numpy.ndarray
        ``(ny, nx)`` real image (data units, e.g. electrons/s).
    limits : tuple of float, optional
        ``(vmin, vmax)`` in data units; default the image's own :func:`zscale_limits`.
    asinh_a : float
        Softening parameter of the asinh stretch, in (0, 1].

    Returns
    -------
    numpy.ndarray
        uint8 ``(ny, nx)``, in the input's row order: ``x <= vmin`` -> 0, ``x >= vmax`` -> 255,
        ``round(255 * asinh(t / a) / asinh(1 / a))`` with ``t = (x - vmin) / (vmax - vmin)``
        in between (monotone non-decreasing in ``x``); NaN / inf -> 0. When ``vmax == vmin``
        pixels above ``vmin`` are 255, the others 0; an image with no finite pixel is all 0.

    Raises
    ------
    InvalidInputError
        ``data`` is not a non-empty real 2-D array.
    InvalidParameterError
        ``asinh_a`` is out of range, or ``limits`` is not two finite numbers with
        ``vmin <= vmax``.

    Notes
    -----
    astropy ``AsinhStretch`` after a linear interval (Lupton, Gunn & Szalay 1999, AJ 118, 1406).
    """
    array = _host_2d(data)
    asinh_a = _check_asinh_a(asinh_a)
    limits = zscale_limits(array) if limits is None else _check_limits(limits)
    return _to_uint8(_stretch_unit(array, limits, asinh_a))


def _check_limits(limits) -> tuple[float, float]:
    try:
        vmin, vmax = (float(v) for v in limits)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"limits must be (vmin, vmax), got {limits!r}") from None
    if not (math.isfinite(vmin) and math.isfinite(vmax) and vmin <= vmax):
        raise InvalidParameterError(f"limits must be finite with vmin <= vmax, got {limits!r}")
    return vmin, vmax


def _binning_factor(shape: tuple[int, int], max_size: int | None) -> int:
    """Smallest integer factor that bins ``shape`` to at most ``max_size`` (None: 1)."""
    if max_size is None:
        return 1
    if isinstance(max_size, bool) or not isinstance(max_size, (int, np.integer)) or max_size < 1:
        raise InvalidParameterError(f"preview size must be an integer >= 1 or None, got "
                                    f"{max_size!r}")
    return max(1, -(-max(shape) // int(max_size)))


def _thumbnail_step(shape: tuple[int, int], factor: int, thumbnail_size: int | None):
    """Extra binning of the preview's blocks that fits the thumbnail (None: no thumbnail)."""
    if thumbnail_size is None:
        return None
    binned = (-(-shape[0] // factor), -(-shape[1] // factor))
    return _binning_factor(binned, thumbnail_size)


def preview_image(sci: np.ndarray, *, max_size: int | None = None,
                  limits: tuple[float, float] | None = None,
                  asinh_a: float = DEFAULT_ASINH_A,
                  interval: str = DEFAULT_INTERVAL) -> np.ndarray:
    """Grey-level preview of a drizzled SCI array, in display orientation.

    Parameters
    ----------
    sci : numpy.ndarray
        ``(ny, nx)`` SCI array of a drizzled product (host memory; NaN where no data).
    max_size : int or None
        Longest side of the result, pixels; the image is binned by the smallest integer factor
        that fits (:func:`bin_image`). None keeps full resolution.
    limits : tuple of float, optional
        Display limits in data units; default :func:`display_limits` of ``sci`` at full
        resolution.
    asinh_a : float
        Asinh softening, in (0, 1].
    interval : {"zscale", "zmax"}
        How display limits are chosen (:func:`display_limits`); default zscale.

    Returns
    -------
    numpy.ndarray
        uint8 ``(ceil(ny / f), ceil(nx / f))``, rows flipped (row 0 = top = the product's last
        row, i.e. north for a north-up product); no data is black.

    Raises
    ------
    InvalidInputError
        ``sci`` is not a non-empty real 2-D array.
    InvalidParameterError
        A size, limit or ``asinh_a`` is out of range.
    """
    array = _host_2d(sci, "SCI")
    asinh_a = _check_asinh_a(asinh_a)
    _check_interval(interval)
    factor = _binning_factor(array.shape, max_size)
    limits = display_limits(array, interval) if limits is None else _check_limits(limits)
    return _grey(bin_image(array, factor), limits, asinh_a)


def _grey(binned: np.ndarray, limits, asinh_a: float) -> np.ndarray:
    """Stretched uint8 image with its rows flipped (display orientation)."""
    return _to_uint8(_stretch_unit(binned, limits, asinh_a))[::-1].copy()


def channel_weights(n_filters: int) -> np.ndarray:
    """How much each filter (blue to red) feeds the red, green and blue channels.

    Parameters
    ----------
    n_filters : int
        Number of filters, >= 1, ordered by increasing wavelength.

    Returns
    -------
    numpy.ndarray
        float64 ``(n_filters, 3)``; column 0 red, 1 green, 2 blue; each column sums to 1.
        1 filter: ``[[1, 1, 1]]`` (grey). 2 filters: blue = filter 0, red = filter 1, green =
        half of each. n >= 3: filter ``i`` at ``t = i / (n - 1)`` has the triangular weights
        ``red = max(0, 2t - 1)``, ``green = max(0, 1 - |2t - 1|)``, ``blue = max(0, 1 - 2t)``,
        each column then normalised (3 filters: exactly blue, green, red).

    Raises
    ------
    InvalidParameterError
        ``n_filters`` < 1.
    """
    if isinstance(n_filters, bool) or not isinstance(n_filters, (int, np.integer)) \
            or n_filters < 1:
        raise InvalidParameterError(f"n_filters must be an integer >= 1, got {n_filters!r}")
    if n_filters == 1:
        return np.ones((1, 3))
    if n_filters == 2:
        return np.array([[0.0, 0.5, 1.0], [1.0, 0.5, 0.0]])
    t = np.arange(n_filters) / (n_filters - 1)
    weights = np.stack([np.maximum(0.0, 2 * t - 1), np.maximum(0.0, 1 - np.abs(2 * t - 1)),
                        np.maximum(0.0, 1 - 2 * t)], axis=1)
    return weights / weights.sum(axis=0)


def color_preview_image(scis: Sequence[np.ndarray], *, max_size: int | None = None,
                        asinh_a: float = DEFAULT_ASINH_A,
                        interval: str = DEFAULT_INTERVAL) -> np.ndarray:
    """RGB preview from drizzled SCI arrays of one grid, ordered blue to red.

    Parameters
    ----------
    scis : sequence of numpy.ndarray
        ``(ny, nx)`` SCI arrays of the filter products (host memory, all the same shape),
        sorted by increasing pivot wavelength (``PHOTPLAM``).
    max_size : int or None
        Longest side of the result, pixels (binning as :func:`preview_image`); None: full size.
    asinh_a : float
        Asinh softening, in (0, 1].
    interval : {"zscale", "zmax"}
        How display limits are chosen (:func:`display_limits`); default zscale.

    Returns
    -------
    numpy.ndarray
        uint8 ``(ceil(ny / f), ceil(nx / f), 3)`` RGB, rows flipped as :func:`preview_image`.
        Each filter is stretched to [0, 1] with its own full-resolution limits, then the
        channels are the :func:`channel_weights` mixtures, scaled to 0-255. A filter without
        data at a pixel contributes 0 there; no data in any filter is black.

    Raises
    ------
    InvalidInputError
        No array, or arrays that are not real 2-D or differ in shape.
    InvalidParameterError
        ``max_size`` or ``asinh_a`` out of range.
    """
    arrays = [_host_2d(s, f"SCI array {i}") for i, s in enumerate(scis)]
    if not arrays:
        raise InvalidInputError("colour preview needs at least one SCI array")
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise InvalidInputError(f"colour preview needs SCI arrays of one shape, got "
                                f"{[a.shape for a in arrays]}")
    asinh_a = _check_asinh_a(asinh_a)
    _check_interval(interval)
    factor = _binning_factor(arrays[0].shape, max_size)
    binned = [bin_image(a, factor) for a in arrays]
    return _rgb(binned, [display_limits(a, interval) for a in arrays], asinh_a)


def _rgb(binned: list[np.ndarray], limits: list, asinh_a: float) -> np.ndarray:
    """RGB uint8 image, rows flipped, from binned filter images ordered blue to red."""
    weights = channel_weights(len(binned))
    rgb = np.zeros(binned[0].shape + (3,), dtype=np.float32)
    for image, lim, weight in zip(binned, limits, weights):
        unit = _stretch_unit(image, lim, asinh_a)
        for channel in range(3):
            if weight[channel]:
                rgb[..., channel] += np.float32(weight[channel]) * unit
    return _to_uint8(rgb)[::-1].copy()


# --------------------------------------------------------------------------------------------
# Files (the edges)

def save_jpeg(image: np.ndarray, path: str | os.PathLike, *,
              quality: int = DEFAULT_QUALITY) -> Path:
    """Write an 8-bit grey or RGB image as a JPEG, via a temporary name and a rename.

    Parameters
    ----------
    image : numpy.ndarray
        uint8 ``(ny, nx)`` grey or ``(ny, nx, 3)`` RGB, row 0 at the top.
    path : str or os.PathLike
        Destination; its folder must exist. An existing file is replaced.
    quality : int
        JPEG quality, 1-95 (Pillow's scale). Colour is not subsampled (4:4:4), so the colour
        of a source a few pixels across is kept.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    InvalidInputError
        ``image`` is not uint8 ``(ny, nx)`` or ``(ny, nx, 3)``.
    InvalidParameterError
        ``quality`` out of range.
    OutputWriteError
        The file cannot be written (the message keeps the system's reason).
    """
    from PIL import Image

    image = np.asarray(image)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3
                                                           and image.shape[2] == 3)) \
            or image.size == 0:
        raise InvalidInputError(f"JPEG image must be uint8 (ny, nx) or (ny, nx, 3), got "
                                f"{image.dtype} {image.shape}")
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) \
            or not 1 <= quality <= 95:
        raise InvalidParameterError(f"JPEG quality must be an integer in 1..95, got {quality!r}")
    path = Path(path)
    temp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        picture = Image.fromarray(np.ascontiguousarray(image), "L" if image.ndim == 2 else "RGB")
        try:
            # 4:4:4 (no chroma subsampling): the colour of point sources survives
            picture.save(temp, format="JPEG", quality=int(quality), subsampling=0)
            os.replace(temp, path)
        except OSError as exc:
            raise OutputWriteError(f"{path}: cannot write the JPEG preview ({exc})") from None
    finally:
        if temp.exists():
            temp.unlink()
    log.debug("wrote %s (%d x %d)", path, image.shape[1], image.shape[0])
    return path


def _read_sci(path: Path) -> np.ndarray:
    """The SCI (else primary) image of a drizzled product, as a host array."""
    if not path.is_file():
        raise InvalidInputError(f"{path}: drizzled product not found")
    try:
        with fits.open(path, memmap=False) as hdul:
            hdu = hdul["SCI"] if "SCI" in hdul else hdul[0]
            data = hdu.data
    except (OSError, ValueError, TypeError) as exc:
        raise InvalidInputError(f"{path}: cannot read the drizzled product ({exc})") from None
    if data is None or data.ndim != 2 or data.size == 0:
        shape = None if data is None else data.shape
        raise InvalidInputError(f"{path}: no 2-D SCI image to preview (shape {shape})")
    return data


def _photplam(path: Path) -> float:
    """``PHOTPLAM`` (Angstrom) of a product: SCI header first (HAP moves PHOT* there), then
    the primary."""
    if not path.is_file():
        raise InvalidInputError(f"{path}: filter product not found")
    try:
        with fits.open(path, memmap=False) as hdul:
            headers = ([hdul["SCI"].header] if "SCI" in hdul else []) + [hdul[0].header]
            value = next((h["PHOTPLAM"] for h in headers if "PHOTPLAM" in h), None)
    except (OSError, ValueError, TypeError) as exc:
        raise InvalidInputError(f"{path}: cannot read the filter product ({exc})") from None
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise InvalidInputError(f"{path}: no positive PHOTPLAM keyword in SCI or primary "
                                "header; the colour preview orders filters by it")
    return value


def _output_folder(product: Path, output_dir) -> Path:
    folder = product.parent if output_dir is None else Path(output_dir)
    if not folder.is_dir():
        raise OutputWriteError(f"{folder}: output folder does not exist")
    return folder


def write_previews(product_path: str | os.PathLike, *, sci: np.ndarray | None = None,
                   output_dir: str | os.PathLike | None = None,
                   max_size: int | None = DEFAULT_MAX_SIZE,
                   thumbnail_size: int | None = DEFAULT_THUMBNAIL_SIZE,
                   quality: int = DEFAULT_QUALITY,
                   asinh_a: float = DEFAULT_ASINH_A,
                   interval: str = DEFAULT_INTERVAL,
                   planes: dict | None = None) -> list[Path]:
    """Write ``<product>_dr[cz].jpg`` and ``<product>_dr[cz]_thumb.jpg`` for a drizzled product.

    Parameters
    ----------
    product_path : str or os.PathLike
        ``<product>_dr[cz].fits``.
    sci : numpy.ndarray, optional
        Its ``(ny, nx)`` SCI array in host memory (e.g. ``backend.to_host`` of the device
        result); when given the file is not read and need not exist yet.
    output_dir : str or os.PathLike, optional
        Folder for the JPEGs (must exist); default the product's folder.
    max_size : int or None
        Longest side of the preview, pixels (None: full resolution).
    thumbnail_size : int or None
        Longest side of the thumbnail, pixels (None: no thumbnail).
    quality : int
        JPEG quality, 1-95.
    asinh_a : float
        Asinh softening, in (0, 1].
    interval : {"zscale", "zmax"}
        How display limits are chosen (:func:`display_limits`); default zscale.
    planes : dict, optional
        A dict to record the display limits and binned images in, for a
        :func:`write_color_preview` of the same products (which then does not compute them
        again); changed in place.

    Returns
    -------
    list of pathlib.Path
        The preview, then the thumbnail when made.

    Raises
    ------
    InvalidInputError
        The name is not ``*_dr[cz].fits``, or the product cannot be read or has no 2-D SCI.
    InvalidParameterError
        A size, ``quality`` or ``asinh_a`` is out of range.
    OutputWriteError
        The output folder is missing or a JPEG cannot be written.

    Notes
    -----
    Both images share the display limits of the full-resolution SCI; the thumbnail's binning
    factor is a multiple of the preview's (module docstring), so its longest side can be a
    little under ``thumbnail_size`` (256 -> 245 px for a 5870 px product binned 3 then 8).
    """
    product_path = Path(product_path)
    names = preview_filenames(product_path.name)
    folder = _output_folder(product_path, output_dir)
    data = _host_2d(_read_sci(product_path) if sci is None else sci, f"{product_path.name} SCI")
    asinh_a = _check_asinh_a(asinh_a)
    _check_interval(interval)
    factor = _binning_factor(data.shape, max_size)
    step = _thumbnail_step(data.shape, factor, thumbnail_size)
    limits = display_limits(data, interval)
    binned, thumb = _binned_pair(data, factor, step)
    if planes is not None:
        planes[_planes_key(product_path, data.shape, max_size, thumbnail_size, interval)] = \
            (limits, (binned, thumb))
    written = [save_jpeg(_grey(binned, limits, asinh_a), folder / names[0], quality=quality)]
    if thumb is not None:
        written.append(save_jpeg(_grey(thumb, limits, asinh_a), folder / names[1],
                                 quality=quality))
    log.info("previews of %s: %s", product_path.name, ", ".join(p.name for p in written))
    return written


def _planes_key(path: Path, shape, max_size, thumbnail_size, interval) -> tuple:
    """What the display limits and binned images of a product depend on."""
    return (Path(path).name, tuple(shape), max_size, thumbnail_size, interval)


def write_color_preview(total_path: str | os.PathLike,
                        filter_paths: Sequence[str | os.PathLike], *,
                        scis: Sequence[np.ndarray] | None = None,
                        output_dir: str | os.PathLike | None = None,
                        max_size: int | None = DEFAULT_MAX_SIZE,
                        thumbnail_size: int | None = DEFAULT_THUMBNAIL_SIZE,
                        quality: int = DEFAULT_QUALITY,
                        asinh_a: float = DEFAULT_ASINH_A,
                        interval: str = DEFAULT_INTERVAL,
                        planes: dict | None = None) -> list[Path]:
    """Write a total's colour preview ``<total>_<filters>_dr[cz].jpg`` (and its thumbnail).

    Parameters
    ----------
    total_path : str or os.PathLike
        The total product ``..._total_<ipppss>_dr[cz].fits`` (only its name and folder are
        used; it is not read).
    filter_paths : sequence of str or os.PathLike
        Its filter products ``..._<filter>_<ipppss>_dr[cz].fits``, at least two, in any order;
        they are sorted by ``PHOTPLAM`` (read from each file's SCI, else primary header).
    scis : sequence of numpy.ndarray, optional
        Their SCI arrays in host memory, in the order of ``filter_paths``; when given the
        pixels are not read from the files (the headers still are).
    output_dir : str or os.PathLike, optional
        Folder for the JPEGs (must exist); default the total's folder.
    max_size, thumbnail_size : int or None
        Longest sides of the preview and the thumbnail (None: full size / no thumbnail).
    quality : int
        JPEG quality, 1-95.
    asinh_a : float
        Asinh softening, in (0, 1].
    interval : {"zscale", "zmax"}
        How display limits are chosen (:func:`display_limits`); default zscale.
    planes : dict, optional
        Filled by :func:`write_previews` of the filter products (same sizes and interval):
        their display limits and binned images are taken from it instead of computed again.

    Returns
    -------
    list of pathlib.Path
        The colour preview, then its thumbnail when made.

    Raises
    ------
    InvalidInputError
        Fewer than two filter products, a name that is not a filter product of this total, the
        same filter twice, a missing or unreadable file, no positive PHOTPLAM, SCI arrays of
        different shapes, or ``scis`` not matching ``filter_paths`` in number.
    InvalidParameterError
        A size, ``quality`` or ``asinh_a`` is out of range.
    OutputWriteError
        The output folder is missing or a JPEG cannot be written.

    Notes
    -----
    Channel mapping: :func:`channel_weights` (2 filters: blue, mean, red). Equal PHOTPLAM
    values keep the order of ``filter_paths``.
    """
    total_path = Path(total_path)
    paths = [Path(p) for p in filter_paths]
    if len(paths) < 2:
        raise InvalidInputError(f"{total_path.name}: a colour preview needs at least two filter "
                                f"products, got {len(paths)}")
    if scis is not None and len(scis) != len(paths):
        raise InvalidInputError(f"{total_path.name}: {len(scis)} SCI arrays for "
                                f"{len(paths)} filter products")
    filters = [filter_name_of_product(p.name, total_path.name) for p in paths]
    if len(set(filters)) != len(filters):
        raise InvalidInputError(f"{total_path.name}: a filter appears twice in {filters}")
    folder = _output_folder(total_path, output_dir)
    asinh_a = _check_asinh_a(asinh_a)
    _check_interval(interval)
    order = sorted(range(len(paths)), key=lambda i: _photplam(paths[i]))
    arrays = [_read_sci(paths[i]) if scis is None else scis[i] for i in order]
    names = color_preview_filenames(total_path.name, [filters[i] for i in order])
    arrays = [_host_2d(a, f"{paths[i].name} SCI") for a, i in zip(arrays, order)]
    if len({a.shape for a in arrays}) != 1:
        raise InvalidInputError(f"{total_path.name}: filter products of different shapes "
                                f"{[(paths[i].name, a.shape) for a, i in zip(arrays, order)]}")
    factor = _binning_factor(arrays[0].shape, max_size)
    step = _thumbnail_step(arrays[0].shape, factor, thumbnail_size)
    known = [(planes or {}).get(_planes_key(paths[i], a.shape, max_size, thumbnail_size, interval))
             for a, i in zip(arrays, order)]
    limits = [display_limits(a, interval) if k is None else k[0] for a, k in zip(arrays, known)]
    pairs = [_binned_pair(a, factor, step) if k is None else k[1] for a, k in zip(arrays, known)]
    written = [save_jpeg(_rgb([p[0] for p in pairs], limits, asinh_a), folder / names[0],
                         quality=quality)]
    if step is not None:
        written.append(save_jpeg(_rgb([p[1] for p in pairs], limits, asinh_a),
                                 folder / names[1], quality=quality))
    log.info("colour preview of %s from %s: %s", total_path.name,
             " < ".join(filters[i] for i in order), ", ".join(p.name for p in written))
    return written
