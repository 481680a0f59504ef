"""The drizzled product of an MVM sky-cell layer (hap-pipeline.md §2.5).

For each layer (:class:`hapgpu.mvm.SkyCellLayer`), in drizzlepac's order
(``hapmultisequencer.run_mvm_processing`` and ``create_drizzle_products``):

1. :func:`bounded_cell_frame`: the sky cell's WCS at the layer's scale
   (:meth:`hapgpu.skycells.SkyCell.from_name`) trimmed to the rows and columns covered by the
   footprint of **every** exposure of the poller, NEW and OLD (drizzlepac
   ``SkyCellProduct.generate_metawcs``: ``SkyFootprint(cell).build(all_mvm_exposures)`` then
   ``find_bounded_wcs``: ``CRPIX -= (xmin, ymin)``, shape ``(xmax - xmin + 1, ymax - ymin + 1)``).
   Every layer of a cell at one scale therefore gets the same frame;
2. :func:`layer_footprint`: the footprint keywords of the layer's NEW exposures against the
   **full** cell (NPIXFRAC relative to the whole 21954 x 21954 fine or 7318 x 7318 coarse
   cell, MEANEXPT, MEDEXPT, MEANNEXP, MEDNEXP; drizzlepac ``generate_footprint_mask`` on the
   cell WCS); a layer none of whose exposures lands on the cell is invalid and skipped;
3. :func:`layer_config`: the parameters with ``pipeline='mvm'`` and n = ``round(MEANNEXP)``
   (:func:`hapgpu.svm._config.hap_config`: ``filter_basic`` plus ``any_n1`` or the detector's
   n2 block; the ACS/SBC exception, a non-blue filter with n >= 2 getting ``filter_basic``
   alone, comes from the shipped MVM index, which has no ``acs_sbc_any_any`` entry);
4. :func:`drizzle_layer`: AstroDrizzle on the NEW exposures onto the bounded frame, with
   ``context=False`` and ``preserve=False`` and the rest from the parameters (in practice:
   static mask, sky matching — off for n = 1 — and the final drizzle); no single-exposure
   products;
5. :func:`write_layer_keywords`: the footprint keywords, ``SCELLID`` and ``MEANWHT``/``MEDWHT``
   (over ``WHT > 0``: drizzlepac computes the layer's footprint without keeping its mask);
6. :func:`refine_layer_headers`: :func:`hapgpu.svm._headers.refine_product_headers` with
   ``HAPLEVEL = 4``: the list of PROPOSIDs and the HDRTAB columns ``SVMROOTNAME``, ``GENDATE``
   and ``HAPEXPNAME``.

Steps 5 and 6 can also run on the product in memory, before its one write:
:func:`layer_headers` makes the hook that :func:`drizzle_layer` hands to AstroDrizzle
(``finalize_headers``); the file is then the same as after the two updates, written once.

Memory: the footprints are never drawn on the full cell. Each chip's outline (its border
pixels through its distorted WCS into cell pixels, clipped to the cell, as drizzlepac's
``SkyFootprint.build``) is kept, and filled in the chip's own sub-box when needed (as
:func:`hapgpu.svm._footprint.chip_fills` fills it); the bounded frame comes from the filled
rows and columns of each chip; the keywords from the count and exposure-time masks drawn over
the bounded frame in row bands of at most :data:`BAND_BYTES`, their medians from value
histograms (exact). A full cell covered by hundreds of exposures therefore needs the chip
outlines (a few kB each), one chip's sub-box and one band at a time.

A layer product over AstroDrizzle's ``STREAM_BYTES`` is streamed (:func:`drizzle_layer`,
AstroDrizzle's ``stream``): the final drizzle's accumulators are tiles allocated where inputs
land, its rows are written to the file band by band, and :class:`LayerHeaders` takes MEANWHT/MEDWHT and S_REGION from those bands
(two bits per frame pixel kept for S_REGION), so no frame-sized SCI, WHT or CTX is ever held.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._fitsupdate import set_primary_card
from ..errors import HapGpuError, InvalidInputError, OutputWriteError, WCSError

__all__ = [
    "BAND_BYTES",
    "CellFrame",
    "ChipOutline",
    "LayerFootprint",
    "LayerHeaders",
    "bounded_cell_frame",
    "chip_outlines",
    "drizzle_layer",
    "exposure_configs",
    "layer_config",
    "layer_footprint",
    "layer_headers",
    "make_renamed_input",
    "refine_layer_headers",
    "write_layer_keywords",
]

log = logging.getLogger(__name__)

#: Largest footprint band (count int16 + exposure time float32 per pixel) held at once, bytes.
BAND_BYTES = 256 * 2**20

#: The footprint keywords in drizzlepac's order (``product.MASK_KWS``).
_MASK_KEYS = ("NPIXFRAC", "MEANEXPT", "MEDEXPT", "MEANNEXP", "MEDNEXP")


# --------------------------------------------------------------------------- chip outlines
@dataclass(frozen=True)
class ChipOutline:
    """The border of one chip in full sky-cell pixels (drizzlepac ``SkyFootprint.build``).

    Kept instead of the filled chip so that a chip can be filled again for each band of the
    frame it touches without reading its WCS again (a few kB per chip, where the filled sub-box
    of a fine-scale chip is ~10 MB).

    Attributes
    ----------
    x, y : numpy.ndarray
        int32 ``(n,)``: every border pixel of the chip through its distorted WCS into 0-based
        cell pixels, truncated towards zero and clipped to the cell.
    exptime : float
        Primary-header ``EXPTIME`` of the exposure as read, seconds.
    """

    x: np.ndarray
    y: np.ndarray
    exptime: object

    @property
    def box(self) -> tuple[int, int, int, int]:
        """``(y0, y1, x0, x1)``: the chip's sub-box of the cell, upper bounds excluded (the
        reference slices ``[min, max)``)."""
        return int(self.y.min()), int(self.y.max()), int(self.x.min()), int(self.x.max())

    def fill(self) -> np.ndarray:
        """The filled outline over :attr:`box`: bool ``(y1 - y0, x1 - x0)`` (Pillow polygon,
        outline and interior, as the reference and :func:`hapgpu.svm._footprint.chip_fills`)."""
        from ..svm._footprint import _fill

        y0, y1, x0, x1 = self.box
        return _fill(self.x - x0, self.y - y0, x1 - x0, y1 - y0)

    def extent(self) -> tuple[int, int, int, int] | None:
        """``(ymin, ymax, xmin, xmax)``: the first and last cell rows and columns (inclusive,
        0-based) of :meth:`fill`'s True pixels, or None when it has none. Taken from the
        fill's row spans without painting the sub-box (the same pixels)."""
        from ..svm._footprint import _PILLOW_SCAN_RULES, _pillow_version, _polygon_spans

        y0, y1, x0, x1 = self.box
        if _pillow_version() < _PILLOW_SCAN_RULES:
            blank = self.fill()
            rows = np.flatnonzero(blank.any(axis=1))
            cols = np.flatnonzero(blank.any(axis=0))
            if rows.size == 0:
                return None
            return y0 + int(rows[0]), y0 + int(rows[-1]), x0 + int(cols[0]), x0 + int(cols[-1])
        rows, start, stop = _polygon_spans(self.x - x0, self.y - y0, x1 - x0, y1 - y0)
        if rows.size == 0:
            return None
        return (y0 + int(rows.min()), y0 + int(rows.max()),
                x0 + int(start.min()), x0 + int(stop.max()))


def chip_outlines(path, cell) -> list[ChipOutline]:
    """Outlines of the chips of one exposure that land on a sky cell, in chip order.

    Parameters
    ----------
    path : path-like
        FLT/FLC exposure (only its headers are read).
    cell : hapgpu.skycells.SkyCell
        The full cell (its WCS through ``world_to_pixel_values``, its shape).

    Returns
    -------
    list of ChipOutline
        Chips lying entirely off the cell, and chips whose sub-box is empty, are left out (as
        :func:`hapgpu.svm._footprint.chip_fills` leaves them out).

    Raises
    ------
    InvalidInputError
        The file cannot be read, has no SCI extension or no primary ``EXPTIME``.
    WCSError
        A chip's WCS cannot be built.

    Notes
    -----
    The bounded frame of every layer of a cell and each layer's footprint need the same
    outlines, so they are remembered for the process (:data:`_OUTLINE_MEMO`, at most
    :data:`_OUTLINE_MEMO_SIZE` entries of a few kB) under the file's identity (resolved path,
    size, modification time: a rewritten file is read again), the cell and its scale.
    """
    from .._fileid import file_identity
    from ..svm._footprint import chip_borders

    key = (file_identity(path), cell.sky_cell_id, float(cell.scale), tuple(cell.shape))
    with _OUTLINE_LOCK:
        outlines = _OUTLINE_MEMO.get(key)
    if outlines is not None:
        return list(outlines)
    exptime, borders = chip_borders(path, cell.wcs, cell.shape)
    outlines = []
    for x, y in borders:
        outline = ChipOutline(x, y, exptime)
        y0, y1, x0, x1 = outline.box
        if y1 > y0 and x1 > x0:
            outlines.append(outline)
    with _OUTLINE_LOCK:
        if len(_OUTLINE_MEMO) >= _OUTLINE_MEMO_SIZE:
            _OUTLINE_MEMO.pop(next(iter(_OUTLINE_MEMO)))  # the oldest entry
        _OUTLINE_MEMO[key] = tuple(outlines)
    return outlines


#: Chip outlines already traced in this process: (file identity, cell, scale, shape) -> outlines.
_OUTLINE_MEMO: dict = {}
_OUTLINE_MEMO_SIZE = 4096
_OUTLINE_LOCK = threading.Lock()



# --------------------------------------------------------------------------- bounded frame
@dataclass(frozen=True)
class CellFrame:
    """A sky cell's WCS trimmed to the footprint of a cell's exposures (the bounded WCS).

    Attributes
    ----------
    skycell : str
        ``skycell-pPPPPxXXyYY``.
    scale : str
        ``fine`` or ``coarse``.
    wcs : astropy.wcs.WCS
        The bounded WCS: the cell's, ``CRPIX`` less ``(x0, y0)``, ``pixel_shape = (nx, ny)``.
    shape : (int, int)
        ``(ny, nx)`` of the bounded frame.
    origin : (int, int)
        ``(y0, x0)``: the frame's first pixel in 0-based full-cell pixels.
    cell_shape : (int, int)
        ``(ny, nx)`` of the full cell (21954 x 21954 fine, 7318 x 7318 coarse).
    """

    skycell: str
    scale: str
    wcs: object
    shape: tuple
    origin: tuple
    cell_shape: tuple

    @property
    def cell_size(self) -> int:
        """Pixels of the full cell (the NPIXFRAC denominator)."""
        return int(self.cell_shape[0]) * int(self.cell_shape[1])

    def __reduce__(self):
        """Pickled as the sky cell, scale, shape and origin it is made from, when its WCS is the
        one :func:`bounded_cell_frame` makes from them (a layer task sent to a Dask worker then
        gets the very same WCS: astropy pickles a WCS through a FITS header, which rounds
        CRPIX, CRVAL and CD in their last digits and moves every product pixel a little).
        Any other frame is pickled with its WCS."""
        try:
            exact = _bounded_wcs(self.skycell, self.scale, self.origin, self.shape)
        except HapGpuError:
            exact = None
        if exact is not None and _same_wcs(exact, self.wcs):
            return _cell_frame, (self.skycell, self.scale, tuple(self.shape), tuple(self.origin),
                                 tuple(self.cell_shape))
        return CellFrame, (self.skycell, self.scale, self.wcs, self.shape, self.origin, self.cell_shape)


def _bounded_wcs(skycell: str, scale: str, origin, shape):
    """The sky cell's WCS at ``scale`` moved to the frame of ``shape`` ``(ny, nx)`` whose first
    pixel is the cell's ``origin`` ``(y0, x0)`` (drizzlepac ``find_bounded_wcs``)."""
    from ..skycells import SkyCell

    wcs = SkyCell.from_name(skycell, scale=scale).wcs.deepcopy()
    ymin, xmin = origin
    wcs.wcs.crpix = wcs.wcs.crpix - np.array([xmin, ymin], dtype=np.float64)
    wcs.pixel_shape = (shape[1], shape[0])
    wcs.wcs.set()
    return wcs


def _same_wcs(a, b) -> bool:
    """Whether two celestial WCSs hold the same numbers (reference point and pixel, linear
    transformation, projection, poles, shape)."""
    wa, wb = a.wcs, b.wcs
    if wa.has_cd() != wb.has_cd() or list(wa.ctype) != list(wb.ctype) or a.pixel_shape != b.pixel_shape:
        return False
    arrays = [(wa.crpix, wb.crpix), (wa.crval, wb.crval), ([wa.lonpole, wa.latpole], [wb.lonpole, wb.latpole])]
    # CD when there is one (CDELT is then ignored, and reading it warns), else PC and CDELT
    arrays += [(wa.cd, wb.cd)] if wa.has_cd() else [(wa.get_pc(), wb.get_pc()), (wa.cdelt, wb.cdelt)]
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in arrays)


def _cell_frame(skycell: str, scale: str, shape, origin, cell_shape) -> CellFrame:
    """A :class:`CellFrame` made again from what it is made of (its pickled form)."""
    return CellFrame(skycell=skycell, scale=scale, wcs=_bounded_wcs(skycell, scale, origin, shape),
                     shape=tuple(shape), origin=tuple(origin), cell_shape=tuple(cell_shape))


def bounded_cell_frame(skycell: str, scale: str, paths) -> CellFrame:
    """The cell's frame at ``scale`` bounded by the footprint of ``paths`` (§2.5 step 1).

    Parameters
    ----------
    skycell : str
        Sky-cell name (``skycell-p1889x07y19``).
    scale : {"fine", "coarse"}
    paths : sequence of path-like
        Every exposure of the poller, NEW and OLD (``SkyCellLayer.all_mvm_exposures``).

    Returns
    -------
    CellFrame

    Raises
    ------
    InvalidParameterError
        A bad sky-cell name or scale.
    InvalidInputError, WCSError
        An exposure cannot be read or a chip's WCS cannot be built.
    WCSError
        No exposure lands on the cell.

    Notes
    -----
    drizzlepac ``SkyFootprint.build`` + ``find_bounded_wcs`` / ``calc_bounding_box``: the rows
    and columns where the summed chip mask is non-zero. Here each chip's filled extent
    (:meth:`ChipOutline.extent`) is merged, which gives the same box without a cell-sized array.
    """
    from ..skycells import SkyCell

    cell = SkyCell.from_name(skycell, scale=scale)
    ymin = xmin = math.inf
    ymax = xmax = -math.inf
    for path in paths:
        for outline in chip_outlines(path, cell):
            extent = outline.extent()
            if extent is None:
                continue
            ymin, ymax = min(ymin, extent[0]), max(ymax, extent[1])
            xmin, xmax = min(xmin, extent[2]), max(xmax, extent[3])
    if ymin is math.inf:
        names = ", ".join(Path(p).name for p in paths)
        raise WCSError(f"{cell.sky_cell_id}: none of the exposures lands on the sky cell ({names})")
    nx, ny = xmax - xmin + 1, ymax - ymin + 1
    wcs = _bounded_wcs(cell.sky_cell_id, scale, (ymin, xmin), (ny, nx))
    return CellFrame(skycell=cell.sky_cell_id, scale=str(scale), wcs=wcs, shape=(ny, nx),
                     origin=(ymin, xmin), cell_shape=tuple(cell.shape))


# --------------------------------------------------------------------------- footprint keywords
@dataclass(frozen=True)
class LayerFootprint:
    """The footprint of a layer's NEW exposures against the full sky cell (§2.5 step 2).

    Attributes
    ----------
    keywords : dict
        ``{keyword: (value, comment)}`` for NPIXFRAC, MEANEXPT, MEDEXPT, MEANNEXP, MEDNEXP, in
        drizzlepac's order (comments of :data:`hapgpu.svm._footprint.MASK_KEYWORD_COMMENTS`).
    n_pixels : int
        Cell pixels covered by at least one chip.
    """

    keywords: dict
    n_pixels: int

    @property
    def mean_n_exposures(self) -> float:
        """MEANNEXP: the mean number of exposures per covered pixel."""
        return float(self.keywords["MEANNEXP"][0])


def _median_from_counts(values: np.ndarray, counts: np.ndarray, dtype):
    """``np.median`` of the multiset ``values`` (sorted, unique) with multiplicities ``counts``."""
    n = int(counts.sum())
    cumulative = np.cumsum(counts)
    upper = values[np.searchsorted(cumulative, n // 2, side="right")]
    if n % 2:
        return dtype.type(upper)
    lower = values[np.searchsorted(cumulative, n // 2 - 1, side="right")]
    return np.mean(np.array([lower, upper], dtype=dtype))


def layer_footprint(frame: CellFrame, paths, *, band_bytes: int = BAND_BYTES) -> LayerFootprint:
    """Footprint keywords of ``paths`` against the full sky cell, drawn over ``frame`` only.

    Parameters
    ----------
    frame : CellFrame
        The cell's bounded frame at the layer's scale (it covers every chip of the cell's
        exposures, so every chip of ``paths``).
    paths : sequence of path-like
        The layer's NEW exposures.
    band_bytes : int
        Largest band of the count and exposure-time masks held at once, bytes.

    Returns
    -------
    LayerFootprint
        With ``good = count > 0`` over the cell: NPIXFRAC = ``count(good) / cell size``
        (float64), MEANEXPT and MEDEXPT = mean and median of the exposure time per good pixel
        (float32, as the reference's float32 mask), MEANNEXP and MEDNEXP = mean and median of
        the count per good pixel (float64).

    Raises
    ------
    WCSError
        No chip lands on the cell (drizzlepac marks the layer invalid).
    InvalidInputError
        An exposure cannot be read.

    Notes
    -----
    drizzlepac ``HAPProduct.generate_footprint_mask`` on the cell WCS (hap-pipeline.md §1.11,
    §2.5): each chip adds 1 to an int16 count and its ``EXPTIME`` to a float32 exposure-time
    mask, in file and chip order (so each pixel's float32 sum is the reference's). Pixels
    outside the bounded frame are uncovered by construction. The means are computed from
    value histograms in float64 (the reference's float32 pairwise sums agree to ~1e-7).
    """
    from ..skycells import SkyCell
    from ..svm._footprint import MASK_KEYWORD_COMMENTS

    cell = SkyCell.from_name(frame.skycell, scale=frame.scale)
    ny, nx = frame.shape
    fy0, fx0 = frame.origin
    band_rows = max(1, min(ny, int(band_bytes) // (6 * nx)))
    outlines = [o for path in paths for o in chip_outlines(path, cell)]  # file and chip order
    n_counts = np.zeros(0, dtype=np.int64)   # histogram of the count over good pixels
    exposure_values: dict = {}               # float32 exposure time -> pixels
    for b0 in range(0, ny, band_rows):
        b1 = min(ny, b0 + band_rows)
        total = np.zeros((b1 - b0, nx), dtype=np.int16)
        scaled = np.zeros((b1 - b0, nx), dtype=np.float32)
        for outline in outlines:
            y0, y1, x0, x1 = outline.box
            # the chip's sub-box intersected with the band and the frame (which holds every
            # filled pixel of the cell's exposures)
            ry0, ry1 = max(y0, fy0 + b0), min(y1, fy0 + b1)
            cx0, cx1 = max(x0, fx0), min(x1, fx0 + nx)
            if ry0 >= ry1 or cx0 >= cx1:
                continue
            blank = outline.fill()  # once per band it touches (once when the frame is one band)
            rows = blank[ry0 - y0:ry1 - y0, cx0 - x0:cx1 - x0]
            target_scaled = scaled[ry0 - fy0 - b0:ry1 - fy0 - b0, cx0 - fx0:cx1 - fx0]
            target_total = total[ry0 - fy0 - b0:ry1 - fy0 - b0, cx0 - fx0:cx1 - fx0]
            # the reference adds ``blank * exptime`` (int16 0/1 times EXPTIME) to float32
            np.add(target_scaled, np.ones(1, np.int16) * outline.exptime, out=target_scaled,
                   where=rows, casting="same_kind")
            np.add(target_total, np.int16(1), out=target_total, where=rows)
        good = total > 0
        if not good.any():
            continue
        counts = np.bincount(total[good].astype(np.int64))
        if counts.size > n_counts.size:
            counts[:n_counts.size] += n_counts
            n_counts = counts
        else:
            n_counts[:counts.size] += counts
        values, multiplicity = np.unique(scaled[good], return_counts=True)
        for value, count in zip(values.tolist(), multiplicity.tolist()):
            exposure_values[value] = exposure_values.get(value, 0) + count
    n_good = int(n_counts.sum())
    if n_good == 0:
        raise WCSError(f"{frame.skycell}: no pixel of the sky cell is covered by "
                       f"{', '.join(Path(p).name for p in paths)}")
    levels = np.arange(n_counts.size, dtype=np.float64)
    times = np.array(sorted(exposure_values), dtype=np.float32)
    time_counts = np.array([exposure_values[v] for v in times.tolist()], dtype=np.int64)
    float32 = np.dtype(np.float32)
    values = {
        "NPIXFRAC": n_good / frame.cell_size,
        "MEANEXPT": np.float32(np.dot(times.astype(np.float64), time_counts) / n_good),
        "MEDEXPT": _median_from_counts(times, time_counts, float32),
        "MEANNEXP": float(np.dot(levels, n_counts) / n_good),
        "MEDNEXP": float(_median_from_counts(levels[n_counts > 0], n_counts[n_counts > 0],
                                             np.dtype(np.float64))),
    }
    keywords = {key: (values[key], MASK_KEYWORD_COMMENTS[key]) for key in _MASK_KEYS}
    return LayerFootprint(keywords=keywords, n_pixels=n_good)


# --------------------------------------------------------------------------- parameters
def layer_config(layer, footprint: LayerFootprint, *, custom_pars=None):
    """HAP parameters of a layer: ``pipeline='mvm'``, n = ``round(MEANNEXP)`` (§2.5 step 4).

    Parameters
    ----------
    layer : hapgpu.mvm.SkyCellLayer
    footprint : LayerFootprint
    custom_pars : path-like or mapping, optional
        A custom parameter file keyed by the layer's base name (replaces the selection).

    Returns
    -------
    hapgpu.svm._config.HapConfig

    Raises
    ------
    InvalidParameterError
        No parameters for the detector; a custom file without the layer.
    """
    from ..svm._config import hap_config

    return hap_config("filter", layer.instrument, layer.detector,
                      n_exposures=max(1, len(layer.new_exposures)), filters=layer.filters,
                      pipeline="mvm", mean_n_exposures=footprint.mean_n_exposures,
                      custom=custom_pars, product_basename=layer.basename)


def exposure_configs(layer, *, custom_pars=None) -> list:
    """HAP parameters of each NEW exposure of a layer (only written to ``output_custom_pars``).

    Returns
    -------
    list of hapgpu.svm._config.HapConfig
        Keyed by the renamed input's base name (drizzlepac's ``SkyCellExposure.product_basename``).
    """
    from ..svm._config import hap_config

    n = len(layer.new_exposures)
    return [hap_config("exposure", layer.instrument, layer.detector, n_exposures=max(1, n),
                       filters=layer.filters, pipeline="mvm", custom=custom_pars,
                       product_basename=_basename(e.renamed))
            for e in layer.new_exposures]


def _basename(filename: str) -> str:
    """A file name without its last ``_`` token (``..._all-isim01a0_flc.fits`` -> ``..._all-isim01a0``)."""
    return filename.rsplit("_", 1)[0]


# --------------------------------------------------------------------------- renamed inputs
def make_renamed_input(source, folder, renamed: str) -> Path:
    """Copy an exposure to its MVM name with ``HAPLEVEL = 1`` (drizzlepac ``SkyCellExposure.copy_exposure``).

    Parameters
    ----------
    source : path-like
        The poller's file (never modified).
    folder : path-like
        Where the copy goes (the run's staging folder).
    renamed : str
        ``hst_<skycell>_<instr>_<det>_<filter>_<layer>-<ipppssoo>_fl[ct].fits``.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    InvalidInputError
        The source cannot be read.
    OutputWriteError
        The copy cannot be written.
    """
    import shutil

    from astropy.io import fits

    source, target = Path(source), Path(folder) / renamed
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        try:
            shutil.copyfile(source, tmp)
        except FileNotFoundError as exc:
            raise InvalidInputError(f"{source}: file not found") from exc
        except OSError as exc:
            if not source.is_file():
                raise InvalidInputError(f"{source}: cannot read the exposure: {exc}") from exc
            raise OutputWriteError(f"{target}: cannot write the renamed input: {exc.strerror or exc}") from exc
        try:
            if not set_primary_card(tmp, "HAPLEVEL", 1, "Classification level of this product"):
                with fits.open(tmp, mode="update") as hdul:
                    hdul[0].header["HAPLEVEL"] = (1, "Classification level of this product")
        except OSError as exc:
            raise InvalidInputError(f"{source}: not a readable FITS exposure: {exc}") from exc
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


# --------------------------------------------------------------------------- the drizzle
def _write_reference_wcs(frame: CellFrame, path: Path) -> Path:
    """A 1 x 1 image carrying the bounded WCS (CRVAL, CD, projection): AstroDrizzle's
    ``final_refimage``; the frame's CRPIX and size are passed as ``final_crpix1/2`` and
    ``final_outnx/ny``."""
    from astropy.io import fits

    header = frame.wcs.to_header()
    for key in list(header):
        if key.startswith(("PC", "CDELT")):
            del header[key]
    cd = frame.wcs.wcs.cd if frame.wcs.wcs.has_cd() else frame.wcs.wcs.get_pc() * frame.wcs.wcs.cdelt[:, None]
    for i in range(2):
        for j in range(2):
            header[f"CD{i + 1}_{j + 1}"] = float(cd[i, j])
    hdu = fits.PrimaryHDU(data=np.zeros((1, 1), dtype=np.float32), header=header)
    try:
        hdu.writeto(path, overwrite=True)
    except OSError as exc:
        raise OutputWriteError(f"{path}: cannot write the reference WCS: {exc.strerror or exc}") from exc
    return path


#: Frame parameters a parameter set may hold; the bounded frame replaces them.
_FRAME_KEYS = ("final_ra", "final_dec", "final_crpix1", "final_crpix2", "final_outnx", "final_outny")


def drizzle_layer(layer, frame: CellFrame, config, folder, *, backend=None,
                  level: int = logging.INFO, finalize_headers=None, stream: bool | None = None,
                  visit=None, discard_inputs: bool = False) -> Path:
    """AstroDrizzle of a layer's NEW exposures onto the cell's bounded frame (§2.5 step 6).

    Parameters
    ----------
    layer : hapgpu.mvm.SkyCellLayer
    frame : CellFrame
        The bounded frame of the layer's cell and scale.
    config : hapgpu.svm._config.HapConfig
        :func:`layer_config` of the layer.
    folder : path-like
        Staging folder holding the renamed inputs; the product and its trailer
        (``<layer>_trl.log`` renamed ``_trl.txt``) are written there.
    backend : hapgpu.backend.Backend or str, optional
    level : int
        Lowest log level written to the trailer.
    finalize_headers : callable, optional
        AstroDrizzle's hook run on the product before its write, normally the
        :class:`LayerHeaders` of :func:`layer_headers` (steps 5 and 6 without rewriting the file).
    stream : bool or None
        AstroDrizzle's ``stream``: True drizzles the layer band by band straight into its
        file, never holding the frame's SCI, WHT or CTX (the hook takes its keywords from the
        bands); None (default) streams only frames whose SCI, WHT and CTX exceed AstroDrizzle's
        ``STREAM_BYTES`` (measured on the comparison set of bench_mvm: the whole-frame path is
        faster for frames that fit, 72 s against 80 s); False never streams.
    visit : hapgpu.astrodrizzle.VisitCache, optional
        AstroDrizzle's ``visit``: the inputs as an earlier layer of the same task read them
        (the coarse and fine layers of WFC3/IR and WFPC2 share their renamed inputs).
    discard_inputs : bool
        AstroDrizzle's ``discard_inputs``: the renamed inputs are deleted after this layer
        without being read again, so their MDRIZSKY and DQ updates are not written.

    Returns
    -------
    pathlib.Path
        The layer's ``_dr[cz].fits``.

    Raises
    ------
    hapgpu.errors.HapGpuError
        From AstroDrizzle (the message names the file).

    Notes
    -----
    drizzlepac ``SkyCellProduct.wcs_drizzle_product``: ``final_refimage`` = the bounded WCS,
    ``context=False``, ``preserve=False``, ``runfile`` = the trailer; every other value from the
    parameters. The frame goes to hapgpu's AstroDrizzle as a 1 x 1 reference image with the
    bounded WCS plus ``final_crpix1/2`` and ``final_outnx/ny`` (its ``final_refimage`` takes a
    file), and ``header_rules='mvm'`` stands for drizzlepac's ``rules_file``
    (``<instrument>_mvm_header_hap.rules``: HDRTAB columns, primary keywords dropped); a parameter set's own ``final_scale``/``final_rot`` still apply on top, as in
    drizzlepac (the shipped MVM sets leave the cell's scale and north-up orientation).
    """
    from ..astrodrizzle import astrodrizzle
    from ..svm._manifest import TrailerLog

    folder = Path(folder)
    inputs = [folder / e.renamed for e in layer.new_exposures]
    pars = dict(config.astrodrizzle)
    for key in _FRAME_KEYS:
        if pars.get(key) is not None:
            log.warning("%s: %s = %r of the parameters replaced by the sky cell's bounded frame",
                        layer.drizzle_filename, key, pars[key])
    reference = folder / f".{layer.basename}_refwcs.fits"
    ny, nx = frame.shape
    pars.update({
        "final_wcs": True,
        "final_refimage": str(reference),
        "final_ra": None, "final_dec": None,
        "final_crpix1": float(frame.wcs.wcs.crpix[0]), "final_crpix2": float(frame.wcs.wcs.crpix[1]),
        "final_outnx": int(nx), "final_outny": int(ny),
        "context": False,
        "preserve": False,
        "runfile": f"{layer.basename}_trl.log",
        "header_rules": "mvm",
    })
    try:
        _write_reference_wcs(frame, reference)
        with TrailerLog(folder, f"{layer.basename}_trl.log", layer.trailer_filename, level):
            log.info("AstroDrizzle for %s from %s", layer.drizzle_filename,
                     ", ".join(p.name for p in inputs))
            log.info("    bounded frame of %s (%s): %d x %d pixels, CRPIX (%.1f, %.1f)",
                     frame.skycell, frame.scale, nx, ny, *frame.wcs.wcs.crpix)
            for key in sorted(pars):
                log.info("    %s = %r", key, pars[key])
            result = astrodrizzle([str(p) for p in inputs], folder / layer.basename, backend=backend,
                                  pars=pars, progress=False, finalize_headers=finalize_headers,
                                  stream=stream, visit=visit, discard_inputs=discard_inputs)
    finally:
        reference.unlink(missing_ok=True)
    if result.product is None or result.product.name != layer.drizzle_filename:
        raise InvalidInputError(
            f"{layer.drizzle_filename}: AstroDrizzle wrote {result.product}; the inputs' FLT/FLC "
            "type does not match the layer's product type")
    return result.product


def write_layer_keywords(path, footprint: LayerFootprint, scellid: str, runfile: str | None = None) -> None:
    """Footprint keywords, ``SCELLID``, ``MEANWHT`` and ``MEDWHT`` into a layer product (§2.5 step 7).

    Parameters
    ----------
    path : path-like
        The layer's ``_dr[cz].fits`` (updated through a temporary copy, then renamed).
    footprint : LayerFootprint
    scellid : str
        ``pPPPPxXXyYY``.
    runfile : str, optional
        AstroDrizzle's log file name (``<layer>_trl.log``), recorded as ``DRIZPARS`` (drizzlepac's
        MVM products keep AstroDrizzle's value; the SVM renames it to the ``_trl.txt``).

    Raises
    ------
    InvalidInputError
        The product cannot be read or has no pixel with weight.
    OutputWriteError
        It cannot be written.

    Notes
    -----
    drizzlepac ``SkyCellProduct.wcs_drizzle_product``: the layer keeps no footprint mask, so
    MEANWHT and MEDWHT are the mean and median of ``WHT`` over ``WHT > 0``.
    """
    from .._fitsupdate import update_in_copy

    update_in_copy(Path(path), lambda hdul: _layer_keywords(hdul, footprint, scellid, runfile))


def _layer_keywords(hdul, footprint: LayerFootprint, scellid: str, runfile: str | None,
                    weights: dict | None = None) -> None:
    """The header work of :func:`write_layer_keywords` on an open (or in-memory) product.

    MEANWHT/MEDWHT are :func:`hapgpu.svm._footprint.written_weight_keywords` of WHT over
    ``WHT > 0``; ``weights`` gives them instead
    (measured earlier, or a streamed product's :class:`hapgpu.svm._footprint.WeightStatistics`).
    """
    from ..astrodrizzle._product import fit_comments
    from ..svm._footprint import written_weight_keywords

    header = hdul[0].header
    for key, (value, comment) in footprint.keywords.items():
        header[key] = (float(value), comment)
    if runfile is not None:
        header["DRIZPARS"] = (runfile, "Logfile for processing")
    header["SCELLID"] = scellid
    if weights is None:
        weights = written_weight_keywords(hdul["WHT", 1].data)
    for key, (value, comment) in weights.items():
        header[key] = (float(value), comment)
    fit_comments(header)  # DRIZPARS with a long layer name


def refine_layer_headers(path, layer, folder) -> None:
    """:func:`hapgpu.svm._headers.refine_product_headers` of a layer (HAPLEVEL 4).

    Parameters
    ----------
    path : path-like
        The layer product.
    layer : hapgpu.mvm.SkyCellLayer
    folder : path-like
        Staging folder with the renamed inputs (their ``DATE`` is the SVM product's
        generation date, HDRTAB ``GENDATE``).

    Raises
    ------
    hapgpu.errors.HapGpuError, OSError
        The product or an input cannot be read or written (the run's exit status 15).
    """
    from ..svm._headers import refine_product_headers

    refine_product_headers(path, hap_level=4, input_dir=Path(folder), **_layer_names(layer, folder))


def _layer_names(layer, folder) -> dict:
    """HDRTAB names of a layer's inputs: HAP exposure names, SVM names and generation dates."""
    from astropy.io import fits

    names, svm_names, gendates = {}, {}, {}
    for exposure in layer.new_exposures:
        key = exposure.renamed
        names[key] = _basename(key)
        svm_names[key] = exposure.svm_exposure_name
        try:
            gendates[key] = str(fits.getval(Path(folder) / key, "DATE"))
        except (OSError, KeyError) as exc:
            raise InvalidInputError(f"{exposure.source}: no DATE (the SVM product's generation "
                                    f"date) in the primary header: {exc}") from exc
    return {"hap_exposure_names": names, "svm_root_names": svm_names, "svm_gendates": gendates}


class LayerHeaders:
    """AstroDrizzle's ``finalize_headers`` hook of a layer: :func:`write_layer_keywords` and
    :func:`refine_layer_headers` on the product in memory, before its one write.

    Made by :func:`layer_headers`. A keyword problem does not stop the write (as when the
    updates followed it); it is kept in :attr:`error` for the caller to report (drizzlepac's
    exit status 15), and :attr:`done` says whether every keyword went in.

    The hook is banded (:func:`hapgpu.astrodrizzle._pipeline.banded_hook`), so the layer can
    be streamed to disk: MEANWHT/MEDWHT come from the WHT bands
    (:class:`hapgpu.svm._footprint.WeightStatistics`) and S_REGION from the SCI bands
    (:class:`hapgpu.svm._headers.SRegionBands`), the same values as from the whole arrays;
    the layer never holds a frame-sized SCI, WHT or CTX.
    """

    def __init__(self, layer, footprint: LayerFootprint, folder, runfile: str | None = None):
        self.layer = layer
        self.footprint = footprint
        self.folder = Path(folder)
        self.runfile = runfile
        self.done = False
        self.error = None
        self._weights = None
        self._sregion = None
        self._measured = None

    def __repr__(self) -> str:
        return f"LayerHeaders({self.layer.drizzle_filename!r}, runfile={self.runfile!r})"

    def begin(self, sci, wht) -> None:
        """Start measuring the product's final arrays on a worker thread while AstroDrizzle
        builds its headers (:func:`hapgpu.svm._headers.measure_in_background`: S_REGION
        polygons and MEANWHT/MEDWHT); the call that follows (:meth:`__call__`) takes the
        results, the same keywords as measured there."""
        from ..svm._headers import measure_in_background

        self._measured = measure_in_background(sci, wht)

    def __call__(self, hdul, path) -> None:
        from ..svm._headers import measured_results

        weights, traced = measured_results(self._measured)
        self._measured = None
        self._finalize(hdul, path, weights, traced=traced)

    def _finalize(self, hdul, path, weights=None, s_region=None, traced=None) -> None:
        from ..svm._headers import refine_product_hdulist, sregion_values

        try:
            _layer_keywords(hdul, self.footprint, self.layer.scellid, self.runfile, weights)
            if traced is not None:
                s_region = sregion_values(hdul, path=path, traced={1: traced})
            refine_product_hdulist(hdul, path, hap_level=4, input_dir=self.folder, s_region=s_region,
                                   **_layer_names(self.layer, self.folder))
        except (HapGpuError, OSError) as exc:
            self.error = exc
            return
        self.done = True

    # ------------------------------------------------------------------ streamed product
    def start(self, shape) -> None:
        """A streamed product of ``shape`` ``(ny, nx)`` begins: statistics reset."""
        from ..svm._footprint import WeightStatistics
        from ..svm._headers import SRegionBands

        self._weights = WeightStatistics()
        self._sregion = SRegionBands(shape)
        self.done, self.error = False, None

    def add_band(self, row0: int, row1: int, sci, wht, ctx) -> None:
        """Rows ``row0:row1`` of the product (host float32 SCI and WHT; ``ctx`` is not used)."""
        self._weights.add(row0, row1, wht)
        self._sregion.add(row0, row1, sci)

    def provisional(self, hdul, path) -> None:
        """Every keyword, with placeholder MEANWHT/MEDWHT and no S_REGION (the file's layout)."""
        from ..svm._footprint import WEIGHT_KEYWORD_COMMENTS
        from ..svm._headers import SRegionValues

        weights = {key: (0.0, comment) for key, comment in WEIGHT_KEYWORD_COMMENTS.items()}
        self._finalize(hdul, path, weights, SRegionValues({1: None}))
        self.done, self.error = False, None

    def finish(self, hdul, path, read_rows) -> None:
        """The final keywords from the bands seen (WHT rows read again for MEDWHT)."""
        try:
            weights = self._weights.keywords(lambda row0, row1: read_rows("WHT", row0, row1))
            s_region = self._sregion.values(hdul, path=path)
        except (HapGpuError, OSError) as exc:
            self.error = exc
            return
        finally:
            self._sregion = None  # its packed masks are no longer needed
        self._finalize(hdul, path, weights, s_region)


def layer_headers(layer, footprint: LayerFootprint, folder, runfile: str | None = None) -> LayerHeaders:
    """The hook that gives a layer product its final headers before its write.

    ``drizzle_layer(..., finalize_headers=layer_headers(layer, footprint, folder, runfile))``
    writes the same file as :func:`drizzle_layer`, then :func:`write_layer_keywords` and
    :func:`refine_layer_headers`, without the two rewrites.

    Parameters
    ----------
    layer : hapgpu.mvm.SkyCellLayer
    footprint : LayerFootprint
    folder : path-like
        Staging folder with the renamed inputs.
    runfile : str, optional
        ``DRIZPARS`` (see :func:`write_layer_keywords`).

    Returns
    -------
    LayerHeaders
        Check ``.error`` after the drizzle: a keyword problem met while finishing the headers.
    """
    return LayerHeaders(layer, footprint, folder, runfile)

