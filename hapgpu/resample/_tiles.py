"""Tiled output storage of :class:`~hapgpu.resample.Drizzle`: square tiles allocated on first touch.

An output frame is cut into a grid of ``tile x tile`` pixel tiles (edge tiles smaller). A tile
holds the accumulators of its pixels (float64 ``num`` and ``den``, float32 ``last_zero``,
int32 context planes, and float64 ``var`` / int32 ``dq`` when errors or DQ are propagated)
and is created the first time an input reaches it. Memory therefore follows the area the
inputs cover, not the frame; pixels of tiles never created read back as the fill value
(or ``initial_value``), weight 0 and context 0.

For one input the drizzle kernels run on a contiguous *window*: the rectangle of the tiles
the input can reach. Existing tiles are copied into it, the input is drizzled, the
zero-weight rule is resolved on the window, and the tiles are copied back (new ones created).
The streaming and memory policy lives here, outside the
kernels (reproject's blocked dispatcher and stcal's chunked median follow the same split).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameterError

__all__ = ["DEFAULT_TILE", "Tile", "TileGrid", "TileSpill", "parse_tile_shape"]

#: Default tile side in output pixels (see benchmarks/RESULTS.md, "mosaic").
DEFAULT_TILE = 1024


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


@dataclass
class Tile:
    """Accumulators of one output tile (arrays on the backend's device, shape ``(th, tw)``;
    ``ctx`` is ``(planes, th, tw)``; ``var`` and ``dq`` are None until first used)."""

    num: object
    den: object
    last_zero: object
    ctx: object
    var: object = None
    dq: object = None


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
