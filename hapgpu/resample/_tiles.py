"""Tiled output storage of :class:`~hapgpu.resample.Drizzle`: square tiles allocated on first touch.

An output frame is cut into a grid of ``tile x tile`` pixel tiles (edge tiles smaller). A tile
holds the accumulators of its pixels and is created the first time an input reaches it. The
accumulators depend on the backend (:func:`accumulator_planes`): on the CPU drizzlepac's own,
a float32 running mean (as int32 bits) and weight updated in place (8 bytes per pixel); on
CUDA backends float64 sums ``num`` and ``den`` and the int32 ``last_zero`` plane (20 bytes).
Both have int32 context planes, and float64 ``var`` / int32 ``dq`` when errors or DQ are
propagated. Memory therefore follows the area the inputs cover, not the frame; pixels of
tiles never created read back as the fill value (or ``initial_value``), weight 0 and context 0.

For one input the drizzle kernels run on a contiguous *window*: the rectangle of the tiles
the input can reach. When that rectangle is a single tile (always so when the whole frame is
one tile, the layout chosen whenever the frame's accumulators fit the memory budget), the
kernels write into the tile itself, restricted to the rows the input reaches: nothing is
copied. Otherwise the existing tiles are copied into a window, the input is drizzled, and the
tiles are copied back (new ones created). On CUDA backends the zero-weight rule is resolved
on the window, through a scratch index that the resolution leaves zeroed for the next input.
The streaming and memory policy lives here, outside the
kernels (reproject's blocked dispatcher and stcal's chunked median follow the same split).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameterError

__all__ = ["DEFAULT_TILE", "MIN_AUTO_TILE", "Tile", "TileGrid", "TileSpill", "accumulator_bytes",
           "accumulator_planes", "choose_tile_shape", "default_memory_budget", "device_memory_free", "parse_memory_budget",
           "parse_tile_shape"]

log = logging.getLogger(__name__)

#: Default tile side in output pixels when the frame does not fit the memory budget as one
#: tile. 512 measured faster and smaller than 1024 on a full sky cell: less untouched area in
#: each input's window to copy and hold (benchmarks/RESULTS.md, fourth session, bench_mosaic).
DEFAULT_TILE = 512
#: Smallest tile side the planner tries (halving :data:`DEFAULT_TILE`) when one input's
#: tiles and window do not fit the memory budget with the default side.
MIN_AUTO_TILE = 128
#: Fraction of the available host memory (``MemAvailable``) a Drizzle may plan to use.
HOST_BUDGET_FRACTION = 0.5
#: Fraction of the free device memory (CuPy's pool included) a Drizzle may plan to use.
DEVICE_BUDGET_FRACTION = 0.6


#: CPU accumulators: drizzlepac's float32 running mean (stored as its int32 bits XOR those of
#: the initial value, so that zeroed storage reads as the initial value) and float32 weight.
RUNNING_MEAN_PLANES = {"mean": np.int32, "weight": np.float32}
#: CUDA accumulators: float64 sums of ``w*d`` and ``w``, and the int32 zero-weight plane (the
#: bits of the last zero-weight value XOR those of the initial value).
SUM_PLANES = {"num": np.float64, "den": np.float64, "last_zero": np.int32}


def accumulator_planes(sums: bool) -> dict:
    """Name -> dtype of the per-pixel accumulator planes: :data:`SUM_PLANES` on CUDA
    backends (``sums``), else :data:`RUNNING_MEAN_PLANES`."""
    return SUM_PLANES if sums else RUNNING_MEAN_PLANES


def accumulator_bytes(n_planes: int = 1, *, error: bool = False, dq: bool = False,
                      scratch: bool = True, sums: bool = False) -> int:
    """Bytes of accumulator storage per output pixel.

    The accumulator planes of :func:`accumulator_planes` (8 bytes on the CPU; with ``sums``,
    the CUDA layout, 20), int32 context per plane of 32 inputs (4 each), with errors a float64
    variance sum (8), with DQ an int32 OR (4), and with ``sums`` and ``scratch`` the int32
    zero-weight index of the window being drizzled (4).

    Parameters
    ----------
    n_planes : int
        Context planes (``ceil(n_inputs / 32)``).
    error, dq : bool
        Whether errors / DQ are propagated.
    scratch : bool
        Count the zero-weight index (CUDA layout only).
    sums : bool
        The CUDA layout (float64 sums) instead of the CPU's running mean.

    Returns
    -------
    int
    """
    planes = sum(np.dtype(dtype).itemsize for dtype in accumulator_planes(sums).values())
    return (planes + 4 * max(int(n_planes), 1) + 8 * bool(error) + 4 * bool(dq)
            + 4 * bool(scratch and sums))


def _host_available() -> int:
    """Bytes of host memory available to a new allocation (``MemAvailable``; else the
    physical memory)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def default_memory_budget(backend) -> int:
    """The default accumulator budget of a Drizzle on ``backend``, in bytes.

    CUDA backends (``gpu``, ``cudasim``): :data:`DEVICE_BUDGET_FRACTION` of
    :func:`device_memory_free`; ``cpu``: :data:`HOST_BUDGET_FRACTION` of the available host
    memory. Read when the Drizzle or the plan is made.

    Parameters
    ----------
    backend : hapgpu.backend.Backend

    Returns
    -------
    int
    """
    if backend.is_cuda:
        return int(DEVICE_BUDGET_FRACTION * device_memory_free(backend))
    return int(HOST_BUDGET_FRACTION * _host_available())


def device_memory_free(backend) -> int:
    """Bytes of device memory a new allocation on a CUDA backend can use.

    ``gpu``: the device's free memory plus the free bytes of CuPy's memory pool (memory the
    pool holds but no array uses). ``cudasim``: Numba's simulator keeps device arrays in host
    memory, so its device is the host's available memory.

    Parameters
    ----------
    backend : hapgpu.backend.Backend
        A CUDA backend (``gpu`` or ``cudasim``).

    Returns
    -------
    int

    Raises
    ------
    InvalidParameterError
        If ``backend`` is not a CUDA backend.
    """
    if backend.name == "gpu":
        import cupy

        free, _total = cupy.cuda.runtime.memGetInfo()
        return int(free + cupy.get_default_memory_pool().free_bytes())
    if backend.name == "cudasim":
        return _host_available()
    raise InvalidParameterError(f"backend {backend.name!r} has no device memory")


def parse_memory_budget(memory_budget, backend) -> int:
    """A validated budget in bytes: ``memory_budget`` itself, or the default for ``backend``.

    Raises
    ------
    InvalidParameterError
        If ``memory_budget`` is not a positive integer number of bytes.
    """
    if memory_budget is None:
        return default_memory_budget(backend)
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, (int, np.integer, float)) \
            or not math.isfinite(memory_budget) or memory_budget <= 0:
        raise InvalidParameterError(f"memory_budget must be a positive number of bytes, got {memory_budget!r}")
    return int(memory_budget)


def choose_tile_shape(output_shape, budget: int, per_pixel: int | None = None) -> tuple[int, int]:
    """Tile sides for a frame under a memory budget: the whole frame as one tile when its
    accumulators (``per_pixel`` bytes per pixel, default :func:`accumulator_bytes` ``()``)
    fit in ``budget`` bytes, else :data:`DEFAULT_TILE` squares.

    One frame-sized tile lets every input drizzle straight into the storage (no window
    copies); on the host its zeros are mapped lazily, so untouched parts cost no memory.

    Returns
    -------
    (int, int)
        ``(tile_ny, tile_nx)``.
    """
    ny, nx = (int(n) for n in output_shape)
    per_pixel = accumulator_bytes() if per_pixel is None else int(per_pixel)
    if ny * nx * per_pixel <= budget:
        return ny, nx
    log.debug("frame %dx%d needs %d bytes of accumulators, over the %d-byte budget: %d-pixel tiles",
              nx, ny, ny * nx * per_pixel, budget, DEFAULT_TILE)
    return DEFAULT_TILE, DEFAULT_TILE


def parse_tile_shape(tile_shape) -> tuple[int, int] | None:
    """``None`` or a validated ``(tile_ny, tile_nx)`` from an int or a pair of ints.

    Raises
    ------
    InvalidParameterError
        If a side is not an integer >= 16.
    """
    if tile_shape is None:
        return None
    sides = (tile_shape, tile_shape) if np.ndim(tile_shape) == 0 else tuple(tile_shape)
    if len(sides) != 2:
        raise InvalidParameterError(f"tile_shape must be an int or (ny, nx), got {tile_shape!r}")
    out = []
    for side in sides:
        if isinstance(side, bool) or not isinstance(side, (int, np.integer)) or side < 16:
            raise InvalidParameterError(f"tile_shape sides must be integers >= 16, got {tile_shape!r}")
        out.append(int(side))
    return out[0], out[1]


def _owned(array):
    """``array`` itself when it owns its memory, else a C-contiguous copy of it (NumPy or
    CuPy; None stays None)."""
    if array is None or getattr(array, "base", None) is None:
        return array
    return array.copy()


@dataclass
class Tile:
    """Accumulators of one output tile (arrays on the backend's device, shape ``(th, tw)``):
    ``planes`` by name (:func:`accumulator_planes`), ``ctx`` ``(planes, th, tw)``, ``var`` and
    ``dq`` None until first used, and ``span`` as described at the attribute.

    A tile owns its storage: an array given to it (when it is made or later) that is a view
    of a larger buffer, such as the window an input was drizzled through, is copied. So the
    buffer is freed as soon as its user drops it, and finishing a tile frees the tile's own
    memory at once. Keeping views instead would keep a whole window (every accumulator byte
    of an input's bounding rectangle, all of it resident where transparent huge pages back
    the array) alive until the last of its tiles is finished: on the 16-chip sky cell of
    ``benchmarks/bench_mosaic.py`` three chips' windows were held at once. On that cell
    cropped to 11000^2 with 256-pixel tiles, owning tiles alone cut the peak resident memory
    above the baseline from 0.55 GB to 0.26 GB; the full cell's benchmark went from 2.60 GB to
    1.33 GB (float64 sums, before the CPU kept drizzlepac's running mean).
    """

    planes: dict
    ctx: object
    var: object = None
    dq: object = None
    #: Host int64 ``(th, 2)``: per row, the columns ``[s0, s1)`` outside which no input
    #: reached (None: unknown, every column); the CPU finishes only those columns.
    span: object = None

    def __setattr__(self, name, value):
        if name == "planes":
            value = {key: _owned(arr) for key, arr in value.items()}
        else:
            value = _owned(value)
        object.__setattr__(self, name, value)

    @property
    def shape(self) -> tuple[int, int]:
        """``(th, tw)``."""
        return tuple(self.ctx.shape[1:])

    def arrays(self):
        """Every array the tile holds (None entries skipped)."""
        return [arr for arr in (*self.planes.values(), self.ctx, self.var, self.dq)
                if arr is not None]


class TileGrid:
    """Geometry of a frame's tile grid.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the output frame.
    tile : tuple of int
        ``(tile_ny, tile_nx)``; sides larger than the frame give a single tile.
    """

    def __init__(self, shape, tile):
        self.shape = (int(shape[0]), int(shape[1]))
        self.tile = (min(int(tile[0]), self.shape[0]), min(int(tile[1]), self.shape[1]))
        self.n_rows = math.ceil(self.shape[0] / self.tile[0])
        self.n_cols = math.ceil(self.shape[1] / self.tile[1])

    def bounds(self, key) -> tuple[int, int, int, int]:
        """``(y0, y1, x0, x1)`` output pixels of tile ``key = (row, col)`` (ends exclusive)."""
        r, c = key
        ty, tx = self.tile
        return (r * ty, min((r + 1) * ty, self.shape[0]), c * tx, min((c + 1) * tx, self.shape[1]))

    def touched(self, boxes: np.ndarray, pad: float = 0.0) -> list[tuple[int, int]]:
        """Tiles that intersect any of ``boxes``, in row-major order.

        Parameters
        ----------
        boxes : ndarray, shape (n, 4)
            ``(x0, x1, y0, y1)`` 0-based output pixel coordinates (float); rows with a
            non-finite value are ignored.
        pad : float
            Extra width (output pixels) added on every side of every box.
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        boxes = boxes[np.isfinite(boxes).all(axis=1)]
        ny, nx = self.shape
        x0 = np.maximum(np.floor(boxes[:, 0] - pad), 0.0)
        x1 = np.minimum(np.ceil(boxes[:, 1] + pad), nx - 1.0)
        y0 = np.maximum(np.floor(boxes[:, 2] - pad), 0.0)
        y1 = np.minimum(np.ceil(boxes[:, 3] + pad), ny - 1.0)
        keep = (x0 <= x1) & (y0 <= y1)
        ty, tx = self.tile
        c0 = x0[keep].astype(np.int64) // tx
        c1 = x1[keep].astype(np.int64) // tx
        r0 = y0[keep].astype(np.int64) // ty
        r1 = y1[keep].astype(np.int64) // ty
        mask = np.zeros((self.n_rows, self.n_cols), dtype=bool)
        for a, b, c, d in zip(r0.tolist(), r1.tolist(), c0.tolist(), c1.tolist()):
            mask[a:b + 1, c:d + 1] = True
        return [(int(r), int(c)) for r, c in zip(*np.nonzero(mask))]

    def window(self, keys) -> tuple[int, int, int, int]:
        """``(y0, y1, x0, x1)`` of the smallest tile-aligned rectangle holding ``keys``."""
        rows = [k[0] for k in keys]
        cols = [k[1] for k in keys]
        y0, _, x0, _ = self.bounds((min(rows), min(cols)))
        _, y1, _, x1 = self.bounds((max(rows), max(cols)))
        return y0, y1, x0, x1


class TileSpill:
    """Finished tiles' products (SCI, WHT, CTX, and ERR / DQ when present) in an anonymous
    temporary file, read back row by row with ``os.pread`` (no memory map, so they never
    count towards the process's resident memory).

    Parameters
    ----------
    directory : str or None
        Where the (already unlinked) temporary file lives; None is the system's default.
    """

    def __init__(self, directory=None):
        import tempfile

        self._file = tempfile.TemporaryFile(dir=directory)
        self._size = 0
        #: key -> {product: (offset, dtype, shape)}
        self.index: dict = {}

    def write(self, key, products: dict) -> None:
        """Append ``products`` (host NumPy arrays by name; None entries are skipped)."""
        entry = {}
        for name, array in products.items():
            if array is None:
                continue
            array = np.ascontiguousarray(array)
            self._file.seek(self._size)
            self._file.write(array.tobytes())
            entry[name] = (self._size, array.dtype, array.shape)
            self._size += array.nbytes
        self._file.flush()
        self.index[key] = entry

    def read(self, key, name: str, rows: slice):
        """Rows ``rows`` of product ``name`` of tile ``key`` (for CTX: of every plane), or
        None when the tile has no such product."""
        item = self.index[key].get(name)
        if item is None:
            return None
        offset, dtype, shape = item
        fd = self._file.fileno()
        r0, r1 = rows.start, rows.stop
        if len(shape) == 2:
            row_bytes = shape[1] * dtype.itemsize
            raw = os.pread(fd, (r1 - r0) * row_bytes, offset + r0 * row_bytes)
            return np.frombuffer(raw, dtype=dtype).reshape(r1 - r0, shape[1])
        planes = []
        plane_bytes = shape[1] * shape[2] * dtype.itemsize
        row_bytes = shape[2] * dtype.itemsize
        for p in range(shape[0]):
            raw = os.pread(fd, (r1 - r0) * row_bytes, offset + p * plane_bytes + r0 * row_bytes)
            planes.append(np.frombuffer(raw, dtype=dtype).reshape(r1 - r0, shape[2]))
        return np.stack(planes)

    def close(self) -> None:
        self._file.close()
