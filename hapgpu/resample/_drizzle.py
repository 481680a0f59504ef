"""The :class:`Drizzle` accumulator: drizzlepac ``cdriz.tdriz`` semantics on any backend."""

from __future__ import annotations

import logging
import math
import weakref
from dataclasses import dataclass

import numpy as np

from ..backend import resolve_backend
from ..errors import InvalidInputError, InvalidParameterError
from ..kernels import _pixel_math as pm
from ..kernels.drizzle import (
    KERNEL_IDS,
    copy_spans_cpu,
    cuda_drizzle_kernels,
    drizzle_cpu,
    finalize_cpu,
    footprint_boxes,
    lanczos_lut,
    row_spans,
)
from ._launch import launch_2d
from ._pixmap import SQUARE_CORNERS, PixelMap, _normalise_shape
from ._tiles import (
    Tile,
    TileGrid,
    TileSpill,
    accumulator_bytes,
    accumulator_planes,
    choose_tile_shape,
    parse_memory_budget,
    parse_tile_shape,
)

__all__ = ["KERNELS", "Drizzle", "reach_tiles"]

log = logging.getLogger(__name__)

KERNELS = tuple(KERNEL_IDS)
_IN_UNITS = ("cps", "counts")


def _parse_fillval(fillval):
    """Return None for INDEF (no fill) or the float32 fill value."""
    if fillval is None:
        return None
    if isinstance(fillval, str):
        text = fillval.strip()
        if text.upper() in ("", "INDEF", "NONE"):
            return None
        try:
            return np.float32(float(text))
        except ValueError as exc:
            raise InvalidParameterError(f"fillval must be a number, None or 'INDEF', got {fillval!r}") from exc
    try:
        return np.float32(fillval)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"fillval must be a number, None or 'INDEF', got {fillval!r}") from exc


def _positive_finite(value, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"{name} must be a number, got {value!r}") from exc
    if not (math.isfinite(value) and value > 0.0):
        raise InvalidParameterError(f"{name} must be a positive finite number, got {value!r}")
    return value


def _kernel_parameters(kernel: str, pixfrac: float, scale: float) -> np.ndarray:
    """Float64 parameter vector (``_pixel_math.P_*`` slots) of one kernel.

    Footprint sizes are in output pixels: a drop is ``pixfrac`` input pixels wide, i.e.
    ``pixfrac / scale`` output pixels. The gaussian has FWHM ``pixfrac`` input pixels
    (sigma = FWHM / 2.3548, drizzlepac's constant), is normalised to unit integral and is cut
    at 2.5 sigma (at least 1.2 input pixels); the lanczos table is sampled every 0.01 input
    pixels, as in drizzlepac (Fruchter & Hook 2002; drizzlepac's ``cdrizzlebox.c`` documents
    the same constants).
    """
    fp = np.zeros(pm.N_FPARAMS, dtype=np.float64)
    fp[pm.P_PIXFRAC] = pixfrac
    fp[pm.P_SCALE] = scale
    fp[pm.P_HALF] = pixfrac / 2.0
    fp[pm.P_INV_PIXFRAC2] = 1.0 / (pixfrac * pixfrac)
    if kernel in ("turbo", "tophat"):
        fp[pm.P_HALF_WIDTH] = pixfrac / scale / 2.0
    elif kernel == "gaussian":
        fwhm_to_sigma = 2.3548
        # exp(-r**2 / (2 sigma**2)) with sigma = pixfrac / (2.3548 * scale) output pixels
        fp[pm.P_GAUSS_EXP] = fwhm_to_sigma * fwhm_to_sigma * scale * scale * fp[pm.P_INV_PIXFRAC2] / 2.0
        fp[pm.P_GAUSS_NORM] = fp[pm.P_GAUSS_EXP] / math.pi  # 1 / (2 pi sigma**2)
        fp[pm.P_HALF_WIDTH] = max(2.5 * pixfrac / fwhm_to_sigma / scale, 1.2 / scale)
    elif kernel.startswith("lanczos"):
        order = int(kernel[-1])
        fp[pm.P_HALF_WIDTH] = order * pixfrac / scale
        fp[pm.P_LUT_STEP] = scale / float(np.float32(0.01)) / pixfrac
    elif kernel == "square":
        fp[pm.P_HALF_WIDTH] = 0.0  # corners are mapped; the tile margin covers the rest
    return fp


@dataclass
class _Window:
    """The accumulators one input is drizzled into: output pixels ``bounds = (y0, y1, x0,
    x1)`` of the frame (2-D arrays of that shape on the backend's device). ``planes`` are the
    accumulator planes by name (:func:`~hapgpu.resample._tiles.accumulator_planes`).
    ``direct``: the arrays are views of one tile's storage (nothing to copy back); else fresh
    arrays copied from and back to the tiles ``keys``. ``var`` / ``dq`` are None when this
    input does not propagate errors / DQ; ``zidx`` is the CUDA zero-weight index (None on the
    CPU)."""

    bounds: tuple
    keys: list
    planes: dict
    ctx: object
    zidx: object = None
    var: object = None
    dq: object = None
    direct: bool = False


def _host_coordinates(pmap: PixelMap, offsets):
    """``(tx, ty, ex, ey)`` of ``pmap`` as host arrays (what :meth:`PixelMap.kernel_inputs`
    gives the CPU), for the footprint of an input drizzled on the GPU."""
    dummy3 = np.zeros((1, 1, 1))
    if pmap.stepsize > 0:
        return pmap.table_x, pmap.table_y, dummy3, dummy3
    ex, ey = pmap.exact_coordinates(offsets)
    return np.zeros((2, 2)), np.zeros((2, 2)), ex, ey


def _footprint_pad(pixfrac: float, scale: float) -> float:
    # the perimeter sampling of footprint_boxes can miss half an input pixel (more for
    # square drops wider than a pixel): boxes are padded by that before choosing tiles
    return (0.5 + max(0.0, pixfrac / 2.0 - 0.5)) / scale + 1.0


def reach_tiles(grid: TileGrid, kernel: str, pixfrac: float, pmap: PixelMap, scale: float) -> list:
    """Tiles of ``grid`` an input with pixel map ``pmap`` can reach, row-major.

    The input's footprint (output bounding boxes of its 96-pixel blocks, from the pixel map,
    widened by the kernel's half-width) padded as :meth:`Drizzle.add_image` pads it; computed
    on the host. ``kernel`` is a name of :data:`KERNELS` (``point`` below pixfrac 0.001 is the
    caller's business), ``scale`` drizzlepac's pixel-scale ratio.

    Returns
    -------
    list of (int, int)
        ``(row, col)`` tile keys.
    """
    fp = _kernel_parameters(kernel, pixfrac, scale)
    offsets = [(ox * fp[pm.P_HALF], oy * fp[pm.P_HALF]) for ox, oy in SQUARE_CORNERS] \
        if kernel == "square" else [(0.0, 0.0)]
    coords = _host_coordinates(pmap, offsets)
    fp[pm.P_FACTOR] = float(pmap.stepsize)
    footprint = footprint_boxes(pmap.input_shape, fp, *coords)
    return grid.touched(footprint[1], pad=_footprint_pad(pixfrac, scale))


class Drizzle:
    """Drizzle images onto an output frame, as drizzlepac's ``cdriz.tdriz`` does.

    Parameters
    ----------
    output_shape : tuple of int
        ``(ny, nx)`` of the output frame.
    kernel : {"square", "turbo", "point", "gaussian", "tophat", "lanczos2", "lanczos3"}
        Drop kernel (see the algorithms document, §2).
    pixfrac : float
        Drop size in input pixels, ``> 0``. Products use (0, 1]; larger drops are accepted as
        cdriz accepts them (the HAP catalogs drizzle their PSF models with 1.5). Below 0.001
        the kernel becomes ``point``, as in drizzlepac.
    fillval : float, str or None
        Value for output pixels that received no positive weight; None or ``"INDEF"`` keeps
        drizzlepac's INDEF behaviour (the last zero-weight value, else ``initial_value``).
    backend : {"cpu", "gpu", "cudasim", "auto"} or None
        Compute backend; None reads ``HAPGPU_BACKEND``.
    initial_value : float
        Value of output pixels before anything is drizzled (NaN by default; AstroDrizzle's
        separate drizzle starts from 0).
    tile_shape : int or tuple of int, optional
        Side(s) of the output tiles, in output pixels (at least 16). Storage is allocated per
        tile the first time an input reaches it, so memory follows the area covered; a tile at
        least as large as the frame gives one full-frame tile. By default the memory budget
        chooses (:func:`~hapgpu.resample.plan_drizzle` does the same): one full-frame tile
        when the frame's accumulators fit in it, else 512-pixel tiles. Results do not
        depend on it.
    memory_budget : int, optional
        Bytes the accumulators may occupy on the backend's device (host memory for ``cpu``
        and ``cudasim``). Default: half the available host memory, or 60 % of the free device
        memory on ``gpu``. Used only to choose ``tile_shape`` when it is not given.

    Notes
    -----
    On the CPU the accumulators are drizzlepac's: a float32 running weighted mean and weight
    updated in place as ``cdrizzlebox.c`` updates its output arrays (same arithmetic, so the
    results equal ``cdriz.tdriz``'s wherever each output pixel receives its drops in the same
    order; the tile waves keep, for every pixel, the order of the input tiles), 8 bytes per
    pixel. CUDA backends drizzle with atomics, which cannot keep a running mean: they sum
    ``w*d`` and ``w`` in float64 and divide when results are read, and resolve drizzlepac's
    zero-weight (INDEF) rule through an index of the last zero-weight input pixel (20 bytes
    per pixel, and a reused 4-byte index per pixel of the largest window). The two agree to
    float32 rounding of the running mean (a few units in the last place of the largest
    contribution to a pixel). Non-finite input data or weights count as weight 0 and value 0
    (drizzlepac would propagate the NaN).

    Each input is drizzled into a window of the tiles it can reach (its footprint from the
    pixel map, widened by the kernel's reach); so the work per input follows its footprint.
    Each tile remembers the columns of each row any input reached, and the CPU finishes only
    those. When the window is one tile (always, for a one-tile frame), the kernels write into
    the tile's own storage, restricted to the rows the input reaches, with nothing copied.
    Context costs 4 more bytes per pixel per 32 inputs, errors and DQ 12. Every plane starts
    as zeros: on the host they are mapped lazily, so parts of a tile no input reached cost no
    memory.
    """

    def __init__(self, output_shape, kernel: str = "square", pixfrac: float = 1.0,
                 fillval=None, backend=None, *, initial_value: float = np.nan, tile_shape=None,
                 memory_budget=None):
        self.output_shape = _normalise_shape(output_shape, "output")
        if kernel not in KERNEL_IDS:
            raise InvalidParameterError(f"unknown kernel {kernel!r}; choose one of {', '.join(KERNELS)}")
        pixfrac = _positive_finite(pixfrac, "pixfrac")
        if pixfrac <= 0.001 and kernel != "point":
            log.debug("pixfrac %.4g <= 0.001: using the point kernel (as drizzlepac does)", pixfrac)
            kernel = "point"
        self.kernel = kernel
        self.pixfrac = pixfrac
        self.fillval = _parse_fillval(fillval)
        self.initial_value = np.float32(initial_value)
        # the mean (CPU) and zero-weight (CUDA) planes hold value bits XOR these, so that
        # zeroed storage (free until written) reads as the initial value
        self._init_bits = np.array(self.initial_value, dtype=np.float32).view(np.int32)[()]
        self.backend = resolve_backend(backend)
        self._sums = self.backend.is_cuda  # accumulator layout (see accumulator_planes)
        self._planes = accumulator_planes(self._sums)
        tile = parse_tile_shape(tile_shape)
        if tile is None or memory_budget is not None:
            self.memory_budget = parse_memory_budget(memory_budget, self.backend)
        else:
            self.memory_budget = None  # not needed: the caller chose the tiles
        if tile is None:
            tile = choose_tile_shape(self.output_shape, self.memory_budget,
                                     accumulator_bytes(sums=self._sums))
        self.grid = TileGrid(self.output_shape, tile)
        self.tile_shape = self.grid.tile
        self._tiles: dict[tuple[int, int], Tile] = {}
        self._finished: set = set()  # keys of tiles moved to self._spill by finish_tiles
        self._spill = None
        self._reach_cache = weakref.WeakKeyDictionary()  # PixelMap -> {scale: tile keys}
        self._n_planes = 1
        self._has_var = False
        self._has_dq = False
        xp = self.backend.xp
        self._dummy2 = xp.zeros((1, 1), dtype=np.float32)
        self._dummy_var = xp.zeros((1, 1), dtype=np.float64)
        self._dummy_dq = xp.zeros((1, 1), dtype=np.int32)
        self._zidx = None  # CUDA: flat int32 zero-weight index, all zeros between inputs
        self._init = np.array([self._init_bits], dtype=np.int32)  # CPU kernels read init[0]
        self._lut = self.backend.asarray(
            lanczos_lut(int(kernel[-1])) if kernel.startswith("lanczos") else np.zeros(1, np.float32),
            np.float32,
        )
        self.n_inputs = 0
        self._max_context_id = 0

    def __repr__(self) -> str:
        return (f"Drizzle(output_shape={self.output_shape}, kernel={self.kernel!r}, "
                f"pixfrac={self.pixfrac}, fillval={self.fillval}, backend={self.backend.name!r}, "
                f"tile_shape={self.tile_shape})")

    @property
    def n_tiles(self) -> int:
        """Number of output tiles allocated so far."""
        return len(self._tiles)

    @property
    def n_planes(self) -> int:
        """Number of context planes (``ctx`` and ``band(..., products=("ctx",))`` hold this
        many: one per 32 context ids)."""
        return self._n_planes

    @property
    def nbytes(self) -> int:
        """Bytes held by the allocated tiles' accumulators."""
        return sum(int(arr.nbytes) for tile in self._tiles.values() for arr in tile.arrays())

    # ---------------------------------------------------------------------------------------
    def add_image(self, data, pmap: PixelMap, weight=None, in_units: str = "cps",
                  exptime: float = 1.0, scale: float = 1.0, wt_scl: float = 1.0,
                  context_id: int | None = None, *, error=None, dq=None) -> None:
        """Drizzle one image onto the output.

        Parameters
        ----------
        data : array_like, shape ``pmap.input_shape``
            Input image (NumPy or, on ``gpu``, CuPy); it is never modified.
        pmap : PixelMap
            Map from this image's pixels to the output frame.
        weight : array_like, optional
            Per-pixel weights (default 1); 0 masks a pixel.
        in_units : {"cps", "counts"}
            ``counts`` divides the data by ``exptime`` (as float32 ``1/exptime``).
        exptime : float
            Exposure time for ``counts`` input.
        scale : float
            drizzlepac's ``scale`` (pix_ratio = output/input pixel scale): the data are
            multiplied by ``float32(scale**2)`` and kernel sizes are in output pixels.
        wt_scl : float
            Factor applied to every weight.
        context_id : int, optional
            1-based input identifier for the context image (default: next number).
        error : array_like, optional
            Error array to propagate with squared weights (``Drizzle.err``).
        dq : array_like of int, optional
            DQ array OR-combined into ``Drizzle.dq`` wherever a pixel contributes.
        """
        if not isinstance(pmap, PixelMap):
            raise InvalidInputError(f"pmap must be a PixelMap, got {type(pmap).__name__}")
        if in_units not in _IN_UNITS:
            raise InvalidParameterError(f"in_units must be 'cps' or 'counts', got {in_units!r}")
        scale = _positive_finite(scale, "scale")
        wt_scl = float(wt_scl)
        if not math.isfinite(wt_scl):
            raise InvalidParameterError(f"wt_scl must be finite, got {wt_scl!r}")
        if in_units == "counts":
            exptime = _positive_finite(exptime, "exptime")
        if context_id is None:
            context_id = self._max_context_id + 1
        if isinstance(context_id, bool) or int(context_id) != context_id or context_id < 1:
            raise InvalidParameterError(f"context_id must be an integer >= 1, got {context_id!r}")
        context_id = int(context_id)

        backend = self.backend
        data = self._as_image(data, pmap, "data", np.float32)
        weight = (backend.xp.ones(pmap.input_shape, dtype=np.float32) if weight is None
                  else self._as_image(weight, pmap, "weight", np.float32))
        flags = pm.F_COUNTS if in_units == "counts" else 0
        err_arr = self._dummy2
        if error is not None:
            err_arr = self._as_image(error, pmap, "error", np.float32)
            flags |= pm.F_VARIANCE
        dq_arr = self._dummy_dq
        if dq is not None:
            dq_arr = self._as_image(dq, pmap, "dq", None)
            if dq_arr.dtype.kind not in "iu":
                raise InvalidInputError(f"dq must be an integer array, got dtype {dq_arr.dtype}")
            dq_arr = backend.asarray(dq_arr, np.int32)
            flags |= pm.F_DQ

        fp = _kernel_parameters(self.kernel, self.pixfrac, scale)
        fp[pm.P_INV_EXP] = float(np.float32(1.0) / np.float32(exptime)) if in_units == "counts" else 1.0
        fp[pm.P_SCALE2] = float(np.float32(scale * scale))
        fp[pm.P_WT_SCL] = float(np.float32(wt_scl))
        offsets = [(ox * fp[pm.P_HALF], oy * fp[pm.P_HALF]) for ox, oy in SQUARE_CORNERS] \
            if self.kernel == "square" else [(0.0, 0.0)]
        factor, tx, ty, ex, ey = pmap.kernel_inputs(backend, offsets)
        fp[pm.P_FACTOR] = factor
        footprint = footprint_boxes(pmap.input_shape, fp, *(
            (tx, ty, ex, ey) if backend.name != "gpu" else _host_coordinates(pmap, offsets)))
        keys = self.grid.touched(footprint[1], pad=self._pad(scale))
        finished = [key for key in keys if key in self._finished]
        if finished:
            raise InvalidParameterError(
                f"this input reaches output tile(s) {finished[:4]} already finished by "
                "finish_tiles(): pass its pixel map in 'remaining' until it is drizzled")
        plane = (context_id - 1) // 32
        self._n_planes = max(self._n_planes, plane + 1)
        self.n_inputs += 1
        self._max_context_id = max(self._max_context_id, context_id)
        self._has_var = self._has_var or error is not None
        self._has_dq = self._has_dq or dq is not None
        if not keys:
            return  # the input maps entirely outside the frame
        window = self._open_window(keys, plane, footprint[1], self._pad(scale),
                                   error is not None, dq is not None)
        wy0, wy1, wx0, wx1 = window.bounds
        ny, nx = pmap.input_shape
        ip = np.zeros(pm.N_IPARAMS, dtype=np.int64)
        ip[pm.I_KERNEL] = KERNEL_IDS[self.kernel]
        ip[pm.I_ONX], ip[pm.I_ONY] = self.output_shape[1], self.output_shape[0]
        ip[pm.I_NX], ip[pm.I_NY] = nx, ny
        ip[pm.I_FLAGS] = flags
        ip[pm.I_WX0], ip[pm.I_WX1], ip[pm.I_WY0], ip[pm.I_WY1] = wx0, wx1, wy0, wy1

        bit = (context_id - 1) % 32
        ctxbit = np.int32(np.uint32(1 << bit).view(np.int32))
        var = window.var if window.var is not None else self._dummy_var
        outdq = window.dq if window.dq is not None else self._dummy_dq
        inputs = (data, weight, err_arr, dq_arr)
        # the columns of each window row the input can reach (host): the tiles remember their
        # union for the finishing
        span = row_spans(np.ascontiguousarray(footprint[1], dtype=np.float64), self._pad(scale),
                         wy0, wy1 - wy0, wx0, wx1 - wx0)
        if backend.name == "cpu":
            drizzle_cpu(*inputs, fp, ip, tx, ty, ex, ey, self._lut, window.planes["mean"],
                        window.planes["weight"], var, outdq, self._init, window.ctx, ctxbit,
                        footprint=footprint)
        else:
            fp_dev = backend.asarray(fp)
            ip_dev = backend.asarray(ip)
            kernel, resolve, _ = self._cuda_kernels()
            try:
                launch_2d(kernel, backend, (ny, nx), *inputs, fp_dev, ip_dev, tx, ty, ex, ey,
                          self._lut, window.planes["num"], window.planes["den"], var, outdq,
                          window.zidx, window.ctx, ctxbit)
                launch_2d(resolve, backend, (wy1 - wy0, wx1 - wx0), window.zidx,
                          window.planes["last_zero"], self._init_bits, data, fp_dev, ip_dev)
            except BaseException:
                self._zidx = None  # it may hold indices the resolution did not reset
                raise
        if not window.direct:
            self._close_window(window, plane)
        for key in keys:
            self._merge_span(key, span, window.bounds)

    def _merge_span(self, key, span, bounds) -> None:
        """Widen tile ``key``'s covered columns (``Tile.span``) by the window spans ``span``
        of a window with full-frame ``bounds = (y0, y1, x0, x1)``."""
        tile = self._tiles[key]
        ty0, ty1, tx0, tx1 = self.grid.bounds(key)
        wy0, wy1, wx0, _ = bounds
        tw = tx1 - tx0
        if tile.span is None:
            tile.span = np.tile(np.array([tw, 0], dtype=np.int64), (ty1 - ty0, 1))
        a, b = max(ty0, wy0), min(ty1, wy1)
        if a >= b:
            return
        lo = np.clip(span[a - wy0:b - wy0, 0] + (wx0 - tx0), 0, tw)
        hi = np.clip(span[a - wy0:b - wy0, 1] + (wx0 - tx0), 0, tw)
        empty = lo >= hi
        lo[empty] = tw
        hi[empty] = 0
        mine = tile.span[a - ty0:b - ty0]
        np.minimum(mine[:, 0], lo, out=mine[:, 0])
        np.maximum(mine[:, 1], hi, out=mine[:, 1])

    def _scratch_index(self, shape):
        """The CUDA zero-weight index for a window of ``shape``: a C-contiguous view of a
        reused int32 buffer that holds zeros (the resolution step resets every entry it
        reads); None on the CPU, whose running mean needs none."""
        if not self._sums:
            return None
        n = shape[0] * shape[1]
        if self._zidx is None or self._zidx.size < n:
            self._zidx = None  # release the old buffer before allocating the larger one
            self._zidx = self.backend.xp.zeros(n, dtype=np.int32)
        return self._zidx[:n].reshape(shape)

    def _new_tile(self, key, plane: int) -> Tile:
        """Storage of tile ``key`` before any input: zeros (the mean and zero-weight planes'
        zeros read as ``initial_value``; on the host, none of it is resident memory until
        written)."""
        xp = self.backend.xp
        y0, y1, x0, x1 = self.grid.bounds(key)
        shape = (y1 - y0, x1 - x0)
        tile = Tile(planes={name: xp.zeros(shape, dtype=dtype) for name, dtype in self._planes.items()},
                    ctx=xp.zeros((plane + 1,) + shape, dtype=np.int32))
        self._tiles[key] = tile
        return tile

    def _grow_context(self, tile: Tile, plane: int) -> None:
        if plane >= tile.ctx.shape[0]:
            xp = self.backend.xp
            grow = xp.zeros((plane + 1 - tile.ctx.shape[0],) + tile.ctx.shape[1:], dtype=np.int32)
            tile.ctx = xp.concatenate([tile.ctx, grow], axis=0)

    def _rows_reached(self, boxes, pad: float, y0: int, y1: int) -> tuple[int, int]:
        """Rows ``[a, b)`` of ``y0:y1`` the footprint ``boxes`` (widened by ``pad``) reaches,
        with the rounding :meth:`TileGrid.touched` uses to choose tiles."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        boxes = boxes[np.isfinite(boxes).all(axis=1)]
        if not len(boxes):
            return y0, y1
        a = int(max(np.floor(boxes[:, 2].min() - pad), y0))
        b = int(min(np.ceil(boxes[:, 3].max() + pad) + 1, y1))
        return (a, b) if a < b else (y0, y1)

    def _open_window(self, keys, plane: int, boxes, pad: float, error: bool, dq: bool) -> _Window:
        """The accumulators this input is drizzled into (see :class:`_Window`).

        One tile: views of its storage (created when new), rows limited to the footprint.
        Several tiles: a contiguous window holding the current values of the existing ones.
        """
        xp = self.backend.xp
        if len(keys) == 1:
            key = keys[0]
            tile = self._tiles.get(key) or self._new_tile(key, plane)
            if self._direct(tile):
                self._grow_context(tile, plane)
                y0, y1, x0, x1 = self.grid.bounds(key)
                shape = (y1 - y0, x1 - x0)
                if error and tile.var is None:
                    tile.var = xp.zeros(shape, dtype=np.float64)
                if dq and tile.dq is None:
                    tile.dq = xp.zeros(shape, dtype=np.int32)
                a, b = self._rows_reached(boxes, pad, y0, y1)
                rows = slice(a - y0, b - y0)
                return _Window(bounds=(a, b, x0, x1), keys=keys,
                               planes={name: arr[rows] for name, arr in tile.planes.items()},
                               ctx=tile.ctx[plane, rows], zidx=self._scratch_index((b - a, x1 - x0)),
                               var=tile.var[rows] if error else None,
                               dq=tile.dq[rows] if dq else None, direct=True)
        bounds = self.grid.window(keys)
        wy0, wy1, wx0, wx1 = bounds
        shape = (wy1 - wy0, wx1 - wx0)
        window = _Window(
            bounds=bounds, keys=keys,
            # zeros: the initial value (see Drizzle._new_tile); the parts outside the tiles are
            # never read nor written (and, on the host, never become resident memory)
            planes={name: xp.zeros(shape, dtype=dtype) for name, dtype in self._planes.items()},
            ctx=xp.zeros(shape, dtype=np.int32),
            zidx=self._scratch_index(shape),
            var=xp.zeros(shape, dtype=np.float64) if error else None,
            dq=xp.zeros(shape, dtype=np.int32) if dq else None,
        )
        for key in keys:
            sl = self._window_slice(key, bounds)
            tile = self._tiles.get(key)
            if tile is None:
                continue
            for name, arr in tile.planes.items():
                window.planes[name][sl] = arr
            if plane < tile.ctx.shape[0]:
                window.ctx[sl] = tile.ctx[plane]
            if error and tile.var is not None:
                window.var[sl] = tile.var
            if dq and tile.dq is not None:
                window.dq[sl] = tile.dq
        return window

    def _direct(self, tile: Tile) -> bool:
        """Whether the kernels can write into ``tile``'s arrays (C-contiguous, as compiled)."""
        return all(arr.flags.c_contiguous for arr in tile.arrays())

    def _close_window(self, window: _Window, plane: int) -> None:
        """Store the window's values back into its tiles, creating the missing ones."""
        xp = self.backend.xp
        bounds = window.bounds
        for key in window.keys:
            sl = self._window_slice(key, bounds)
            tile = self._tiles.get(key)
            if tile is None:  # a Tile copies views into storage of its own (so no window outlives its use)
                def take(a, sl=sl):
                    return None if a is None else a[sl]

                ctx = xp.zeros((plane + 1,) + window.ctx[sl].shape, dtype=np.int32)
                ctx[plane] = window.ctx[sl]
                self._tiles[key] = Tile(planes={name: arr[sl] for name, arr in window.planes.items()},
                                        ctx=ctx, var=take(window.var), dq=take(window.dq))
                continue
            for name, arr in tile.planes.items():
                arr[...] = window.planes[name][sl]
            self._grow_context(tile, plane)
            tile.ctx[plane] = window.ctx[sl]
            if window.var is not None:
                if tile.var is None:
                    tile.var = window.var[sl]
                else:
                    tile.var[...] = window.var[sl]
            if window.dq is not None:
                if tile.dq is None:
                    tile.dq = window.dq[sl]
                else:
                    tile.dq[...] = window.dq[sl]

    def _window_slice(self, key, bounds):
        y0, y1, x0, x1 = self.grid.bounds(key)
        return (slice(y0 - bounds[0], y1 - bounds[0]), slice(x0 - bounds[2], x1 - bounds[2]))

    def _cuda_kernels(self):
        return cuda_drizzle_kernels("cuda" if self.backend.name == "gpu" else "cudasim")

    def _as_image(self, array, pmap: PixelMap, name: str, dtype):
        xp = self.backend.xp
        if not hasattr(array, "shape"):
            array = np.asarray(array)
        if array.ndim != 2:
            raise InvalidInputError(f"{name} must be a 2-D image, got {array.ndim} dimensions")
        if tuple(array.shape) != pmap.input_shape:
            raise InvalidInputError(
                f"{name} has shape {tuple(array.shape)} but the pixel map was built for {pmap.input_shape}"
            )
        if array.dtype.kind not in "fiub":
            raise InvalidInputError(f"{name} must be a real numeric array, got dtype {array.dtype}")
        if dtype is None:
            return array
        if self.backend.name == "gpu":
            return xp.ascontiguousarray(xp.asarray(array, dtype=dtype))
        return np.ascontiguousarray(array, dtype=dtype)

    # ---------------------------------------------------------------------------------------
    @property
    def _empty_sci(self) -> np.float32:
        """SCI of a pixel no input reached (fill value, else ``initial_value``)."""
        return self.fillval if self.fillval is not None else self.initial_value

    def _finalize(self, tile: Tile, rows: slice, out_sci, out_wht, outside: bool = True) -> None:
        """Write SCI and WHT of ``tile``'s rows ``rows`` into ``out_sci``, ``out_wht``.

        On the CPU only the tile's covered columns (``Tile.span``) are finished; the other
        pixels are written (the fill value, else ``initial_value``, and weight 0) when
        ``outside`` is True, else left as the caller prepared them.
        """
        fill = np.float32(0.0 if self.fillval is None else self.fillval)
        args = (self._init_bits, fill, self.fillval is not None, out_sci, out_sci.view(np.int32),
                out_wht)
        planes = tile.planes
        if self._sums:
            launch_2d(self._cuda_kernels()[2], self.backend, out_sci.shape, planes["num"][rows],
                      planes["den"][rows], planes["last_zero"][rows], *args)
        else:
            finalize_cpu(planes["mean"][rows], planes["weight"][rows], *args,
                         self._span(tile, rows), outside)

    def _span(self, tile: Tile, rows: slice):
        """``tile.span[rows]`` (covered columns per row), every column when unknown."""
        if tile.span is None:
            span = np.zeros((rows.stop - rows.start, 2), dtype=np.int64)
            span[:, 1] = tile.shape[1]
            return span
        return tile.span[rows]

    @property
    def _empty_is_zero(self) -> bool:
        """Whether SCI of an unreached pixel is +0.0 (zeroed memory holds it already)."""
        return bool(np.array(self._empty_sci, dtype=np.float32).view(np.int32) == 0)

    def band(self, y0: int, y1: int, *, products=("sci", "wht", "ctx"), share: bool = False) -> dict:
        """Finished output rows ``y0:y1`` (full width) on the backend's device.

        Parameters
        ----------
        y0, y1 : int
            Row range, ``0 <= y0 < y1 <= ny``.
        products : sequence of str
            Any of ``"sci"`` (float32), ``"wht"`` (float32), ``"ctx"`` (int32, ``(planes,
            rows, nx)``), ``"err"`` (float32, None without errors), ``"dq"`` (int32, None
            without DQ).
        share : bool
            Allow SCI, WHT and CTX to be views of the accumulators instead of copies, as
            drizzlepac leaves its results in its output arrays. Done on the CPU when the rows
            lie in one full-width tile and SCI of an unreached pixel is +0.0 with
            ``initial_value`` 0 (a fill value of 0 is then written into the accumulators);
            such views change when later inputs are added.

        Returns
        -------
        dict
            The requested arrays by name. Pixels of tiles never reached hold the fill value
            (else ``initial_value``) in SCI, 0 in WHT, CTX and DQ, NaN in ERR.
        """
        ny, nx = self.output_shape
        if not (0 <= y0 < y1 <= ny):
            raise InvalidParameterError(f"row range {y0}:{y1} is not inside the frame's {ny} rows")
        if share:
            shared = self._shared_band(y0, y1, products)
            if shared is not None:
                return shared
        xp = self.backend.xp
        shape = (y1 - y0, nx)
        r0 = y0 // self.grid.tile[0]
        r1 = (y1 - 1) // self.grid.tile[0]
        n_held = sum(1 for key in self._tiles if r0 <= key[0] <= r1) + \
            sum(1 for key in self._finished if r0 <= key[0] <= r1)
        covered = n_held == (r1 - r0 + 1) * self.grid.n_cols  # every pixel comes from a tile
        cpu = self.backend.name == "cpu"
        # on the CPU a tile finishes only its covered columns (Tile.span); the rest of the
        # band holds the empty values from the start: zeroed pages (free until written) when
        # those are zeros, else written by the finishing of full-width tiles
        zeroed = cpu and self._empty_is_zero
        out = {}
        if "sci" in products or "wht" in products:
            if covered and not zeroed:
                out["sci"] = xp.empty(shape, dtype=np.float32)
                out["wht"] = xp.empty(shape, dtype=np.float32)
            else:
                out["sci"] = (xp.zeros(shape, dtype=np.float32) if zeroed
                              else xp.full(shape, self._empty_sci, dtype=np.float32))
                out["wht"] = xp.zeros(shape, dtype=np.float32)
        if "ctx" in products:
            out["ctx"] = xp.zeros((self._n_planes,) + shape, dtype=np.int32)
        if "err" in products:
            out["err"] = xp.full(shape, np.nan, dtype=np.float32) if self._has_var else None
        if "dq" in products:
            out["dq"] = xp.zeros(shape, dtype=np.int32) if self._has_dq else None
        for key, tile in self._tiles.items():
            if not r0 <= key[0] <= r1:
                continue
            ty0, ty1, tx0, tx1 = self.grid.bounds(key)
            a, b = max(y0, ty0), min(y1, ty1)
            rows = slice(a - ty0, b - ty0)
            dst = (slice(a - y0, b - y0), slice(tx0, tx1))
            wanted = [name for name in out if out[name] is not None]
            if "sci" in out and tx0 == 0 and tx1 == nx:
                # full-width tile: its rows of the band are contiguous, finished in place
                self._finalize(tile, rows, out["sci"][dst[0]], out["wht"][dst[0]],
                               outside=covered and not zeroed)
                wanted = [name for name in wanted if name not in ("sci", "wht")]
            if cpu and "ctx" in wanted:
                # the band's CTX starts as zeros: only the covered columns are copied
                span = self._span(tile, rows)
                for p in range(tile.ctx.shape[0]):
                    copy_spans_cpu(tile.ctx[p, rows], out["ctx"][(p,) + dst], span)
                wanted.remove("ctx")
            for name, arr in self._tile_products(tile, rows, wanted).items():
                if arr is None or name not in out:
                    continue
                if name == "ctx":
                    out[name][(slice(0, arr.shape[0]),) + dst] = arr
                else:
                    out[name][dst] = arr
        for key in self._finished:
            if not r0 <= key[0] <= r1:
                continue
            ty0, ty1, tx0, tx1 = self.grid.bounds(key)
            a, b = max(y0, ty0), min(y1, ty1)
            rows = slice(a - ty0, b - ty0)
            dst = (slice(a - y0, b - y0), slice(tx0, tx1))
            for name in out:
                if out[name] is None:
                    continue
                stored = self._spill.read(key, name, rows)
                if stored is None:
                    continue
                stored = self.backend.asarray(stored)
                if name == "ctx":
                    out[name][(slice(0, stored.shape[0]),) + dst] = stored
                else:
                    out[name][dst] = stored
        return {name: out[name] for name in products}

    def _shared_band(self, y0: int, y1: int, products) -> dict | None:
        """Rows ``y0:y1`` of SCI, WHT and CTX as views of one full-width tile's running mean
        and weight (see :meth:`band`'s ``share``), or None where that is not possible."""
        if self._sums or self._init_bits != 0 or not self._empty_is_zero \
                or not set(products) <= {"sci", "wht", "ctx"} or self.grid.n_cols != 1:
            return None
        row = y0 // self.grid.tile[0]
        tile = self._tiles.get((row, 0))
        ty0, ty1, _, _ = self.grid.bounds((row, 0))
        if tile is None or y1 > ty1 or tile.ctx.shape[0] != self._n_planes:
            return None
        rows = slice(y0 - ty0, y1 - ty0)
        mean, weight = tile.planes["mean"][rows], tile.planes["weight"][rows]
        if self.fillval is not None:  # 0: written where the weight is 0, in place
            self._finalize(tile, rows, mean.view(np.float32), weight, outside=False)
        out = {"sci": mean.view(np.float32), "wht": weight, "ctx": tile.ctx[:, rows]}
        return {name: out[name] for name in products}

    def finish_tiles(self, remaining=(), *, scale: float = 1.0, tiles=None) -> int:
        """Finish the tiles no remaining input can reach and move them out of memory.

        A finished tile's SCI, WHT and CTX (and ERR, DQ) are computed once and kept in an
        anonymous temporary file; its accumulators are freed. Readers and :meth:`write_fits`
        read finished tiles back, so results are unchanged; an input that reaches a finished
        tile is refused. This bounds memory by the tiles in flight when inputs are added in
        an order that sweeps the frame (e.g. sorted by position).

        Parameters
        ----------
        remaining : sequence of PixelMap
            Pixel maps of every input still to be drizzled.
        scale : float
            The smallest ``scale`` those inputs will be drizzled with (it sets how far a
            kernel reaches, in output pixels).
        tiles : sequence of (int, int), optional
            Finish exactly these tile keys (e.g. a :class:`~hapgpu.resample.DrizzlePlan`
            step's ``finish``) instead of working them out from ``remaining``; keys of tiles
            never allocated or already finished are ignored.

        Returns
        -------
        int
            Number of tiles finished by this call.
        """
        if tiles is not None:
            done = []
            for key in tiles:
                if np.shape(key) != (2,):
                    raise InvalidParameterError(f"tiles must hold (row, col) keys, got {key!r}")
                key = (int(key[0]), int(key[1]))
                if key in self._tiles and key not in done:
                    done.append(key)
        else:
            scale = _positive_finite(scale, "scale")
            reach = set()
            for pmap in remaining:
                if not isinstance(pmap, PixelMap):
                    raise InvalidInputError(f"remaining must hold PixelMaps, got {type(pmap).__name__}")
                reach.update(self._reach(pmap, scale))
            done = [key for key in self._tiles if key not in reach]
        if not done:
            return 0
        if self._spill is None:
            self._spill = TileSpill()
            weakref.finalize(self, self._spill.close)  # the file goes with this Drizzle
        wanted = ("sci", "wht", "ctx", "err", "dq")
        for key in sorted(done):
            ty0, ty1, _, _ = self.grid.bounds(key)
            tile = self._tiles[key]
            products = self._tile_products(tile, slice(0, ty1 - ty0), wanted)
            self._spill.write(key, {name: None if arr is None else self.backend.to_host(arr)
                                    for name, arr in products.items()})
            del self._tiles[key]
            self._finished.add(key)
        return len(done)

    def _tile_products(self, tile: Tile, rows: slice, products) -> dict:
        """Finished products of ``tile``'s rows ``rows`` on the device."""
        xp = self.backend.xp
        shape = (rows.stop - rows.start, tile.shape[1])
        out = {}
        if "sci" in products or "wht" in products:
            out["sci"] = xp.empty(shape, dtype=np.float32)
            out["wht"] = xp.empty(shape, dtype=np.float32)
            self._finalize(tile, rows, out["sci"], out["wht"])
        if "ctx" in products:
            out["ctx"] = tile.ctx[:, rows]
        if "err" in products:
            out["err"] = None
            if self._has_var:  # a tile no input with errors reached has variance 0
                den = tile.planes["den" if self._sums else "weight"][rows]
                covered = den != 0.0
                var = tile.var[rows] if tile.var is not None else xp.zeros_like(den)
                with np.errstate(invalid="ignore", divide="ignore"):
                    err = xp.where(covered, xp.sqrt(var) / xp.abs(xp.where(covered, den, 1.0)), xp.nan)
                out["err"] = err.astype(np.float32)
        if "dq" in products:
            out["dq"] = None if tile.dq is None else tile.dq[rows]
        return out

    def _reach(self, pmap: PixelMap, scale: float) -> list:
        """Tiles an input with this pixel map and ``scale`` can reach (cached per map)."""
        cached = self._reach_cache.setdefault(pmap, {})
        if scale not in cached:
            cached[scale] = self._compute_reach(pmap, scale)
        return cached[scale]

    def _compute_reach(self, pmap: PixelMap, scale: float) -> list:
        return reach_tiles(self.grid, self.kernel, self.pixfrac, pmap, scale)

    def _pad(self, scale: float) -> float:
        return _footprint_pad(self.pixfrac, scale)

    def device_arrays(self):
        """``(sci, wht, ctx)`` of the whole frame on the backend's device (CuPy on ``gpu``).

        They may be views of the accumulators (:meth:`band` with ``share=True``), valid until
        the next :meth:`add_image`; copy them to keep them.
        """
        result = self.band(0, self.output_shape[0], share=True)
        return result["sci"], result["wht"], result["ctx"]

    @property
    def sci(self) -> np.ndarray:
        """Drizzled image, float32 ``(ny, nx)`` on the host (count rate for counts input)."""
        return self.backend.to_host(self.band(0, self.output_shape[0], products=("sci",))["sci"])

    @property
    def wht(self) -> np.ndarray:
        """Output weight image, float32 ``(ny, nx)`` on the host."""
        return self.backend.to_host(self.band(0, self.output_shape[0], products=("wht",))["wht"])

    @property
    def ctx(self) -> np.ndarray:
        """Context image, int32 ``(planes, ny, nx)``; bit ``(id-1) % 32`` of plane ``(id-1)//32``."""
        return self.backend.to_host(self.band(0, self.output_shape[0], products=("ctx",))["ctx"])

    @property
    def err(self) -> np.ndarray | None:
        """Propagated error ``sqrt(sum(w**2 err**2)) / sum(w)`` (None unless errors were given)."""
        err = self.band(0, self.output_shape[0], products=("err",))["err"]
        return None if err is None else self.backend.to_host(err)

    def write_fits(self, path, header=None, *, overwrite: bool = False):
        """Write SCI, WHT and CTX image extensions to a FITS file, one band of rows at a time.

        The full frame is never held in memory: each band of rows is finished from the tiles
        and written; pixels no input reached get the fill value (else ``initial_value``) in
        SCI and 0 in WHT and CTX. The file is written under a temporary name in the same
        directory and renamed on success (the temporary file is removed on failure).

        Parameters
        ----------
        path : str or os.PathLike
            Output file.
        header : astropy.io.fits.Header, optional
            Cards copied into each image extension's header (e.g. the output WCS).
        overwrite : bool
            Replace an existing file.

        Returns
        -------
        pathlib.Path

        Raises
        ------
        OutputWriteError
            If the file exists and ``overwrite`` is False, or it cannot be written.
        """
        from ._fitsout import write_drizzle_fits

        return write_drizzle_fits(self, path, header, overwrite=overwrite)

    @property
    def dq(self) -> np.ndarray | None:
        """OR of the DQ flags of every contributing input pixel (None unless DQ was given)."""
        dq = self.band(0, self.output_shape[0], products=("dq",))["dq"]
        return None if dq is None else self.backend.to_host(dq)
