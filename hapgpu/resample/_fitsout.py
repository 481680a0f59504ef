"""Stream a :class:`~hapgpu.resample.Drizzle` product to a FITS file, band by band.

The file is written by hand in the FITS layout (FITS Standard 4.0, §3-§4: 2880-byte blocks,
headers of 80-character cards ending with END, big-endian data padded with zeros): a data-less
primary HDU, then SCI (float32), WHT (float32) and CTX (int32; 3-D when there is more than
one context plane) image extensions. The layout is computed first (every header and the
offset of every extension's data); then one pass over bands of rows finishes each band from
the tiles once and writes it, with ``os.pwrite``, at its place in all three extensions. Only
one band (about 32 MB of products in all) is held at a time, so a frame far larger than
memory can be written. Parts of the frame no tile covers are not written when their bytes
are all zero (WHT and CTX always; SCI when the fill value is 0): they stay holes in the file,
read back as zeros, on file systems that support sparse files.

The product is written to a temporary name in the target's directory and renamed on success.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

import numpy as np
from astropy.io import fits

from ..errors import InvalidInputError, OutputWriteError

__all__ = ["write_drizzle_fits"]

_BLOCK = 2880
#: Keywords that describe the HDU layout: set by the writer, never copied from the caller.
_STRUCTURAL = {"SIMPLE", "XTENSION", "BITPIX", "NAXIS", "EXTEND", "PCOUNT", "GCOUNT",
               "EXTNAME", "EXTVER", "BSCALE", "BZERO", "BLANK", "NEXTEND", "END", "GROUPS"}
#: Bytes of the products of one output band (SCI, WHT and every CTX plane): about 32 MB.
_BAND_BYTES = 1 << 25


def _is_structural(keyword: str) -> bool:
    return keyword in _STRUCTURAL or (keyword.startswith("NAXIS") and keyword[5:].isdigit())


def _extension_header(name: str, bitpix: int, shape, header) -> bytes:
    """The padded header block of an image extension ``name`` of ``shape`` (numpy order)."""
    hdr = fits.Header()
    hdr["XTENSION"] = ("IMAGE", "image extension")
    hdr["BITPIX"] = bitpix
    hdr["NAXIS"] = len(shape)
    for axis, size in enumerate(reversed(shape), start=1):
        hdr[f"NAXIS{axis}"] = size
    hdr["PCOUNT"] = 0
    hdr["GCOUNT"] = 1
    hdr["EXTNAME"] = name
    hdr["EXTVER"] = 1
    if header is not None:
        for card in header.cards:
            if not _is_structural(card.keyword):
                hdr.append(card, end=True)
    return hdr.tostring().encode("ascii")


def _primary_header(n_extensions: int) -> bytes:
    hdr = fits.Header()
    hdr["SIMPLE"] = True
    hdr["BITPIX"] = 8
    hdr["NAXIS"] = 0
    hdr["EXTEND"] = True
    hdr["NEXTEND"] = (n_extensions, "number of extensions")
    return hdr.tostring().encode("ascii")


#: extension name -> (Drizzle.band product, BITPIX, big-endian dtype)
_PRODUCTS = {"SCI": ("sci", -32, np.dtype(">f4")), "WHT": ("wht", -32, np.dtype(">f4")),
             "CTX": ("ctx", 32, np.dtype(">i4"))}


class _Layout:
    """Where each extension's header and data go in the file, and which parts of the frame
    hold data (the rest is left as holes, read back as zeros)."""

    def __init__(self, drz, header):
        ny, nx = drz.output_shape
        self.ny, self.nx = ny, nx
        self.planes = drz.n_planes
        self.tile_rows, tile_cols = drz.grid.tile
        keys = set(drz._tiles) | set(drz._finished)
        self.occupied = {key[0] for key in keys}
        self.headers, self.offsets = {}, {}
        position = len(_primary_header(len(_PRODUCTS)))
        for name, (_, bitpix, _) in _PRODUCTS.items():
            shape = (self.planes, ny, nx) if name == "CTX" and self.planes > 1 else (ny, nx)
            self.headers[name] = _extension_header(name, bitpix, shape, header)
            self.offsets[name] = position + len(self.headers[name])
            data_bytes = (self.planes if name == "CTX" else 1) * ny * nx * 4
            position = self.offsets[name] + data_bytes + (-data_bytes % _BLOCK)
        self.size = position
        # per tile row: column runs (x0, x1) holding tiles, so empty columns stay holes
        self.runs = {}
        for row in self.occupied:
            spans = []
            for col in range(drz.grid.n_cols):
                if (row, col) not in keys:
                    continue
                x0, x1 = col * tile_cols, min((col + 1) * tile_cols, nx)
                if spans and spans[-1][1] == x0:
                    spans[-1][1] = x1
                else:
                    spans.append([x0, x1])
            self.runs[row] = spans


def _write_rows(fd, offset: int, rows, nx: int, spans) -> None:
    """``os.pwrite`` big-endian ``rows`` (2-D) whose first row starts at ``offset``; with
    ``spans`` only those column runs of each row (the rest stays a hole)."""
    row_bytes = nx * rows.dtype.itemsize
    if spans is None:
        _pwrite_all(fd, rows.view(np.uint8).data, offset)
        return
    for r, row in enumerate(rows):
        for x0, x1 in spans:
            _pwrite_all(fd, row[x0:x1].view(np.uint8).data, offset + r * row_bytes + x0 * rows.dtype.itemsize)


def _pwrite_all(fd, buffer, offset: int) -> None:
    view = memoryview(buffer).cast("B")
    while len(view):
        done = os.pwrite(fd, view, offset)
        view = view[done:]
        offset += done


def _write_data(fd, drz, layout: _Layout) -> None:
    """Write the data of SCI, WHT and CTX in one pass over bands of rows: each band is
    finished from the tiles once (SCI and WHT come from the same finishing pass) and
    written at its place in all three extensions. Bands never straddle a tile row, so a band
    is either all empty (skipped) or not."""
    ny, nx, planes, tile_rows = layout.ny, layout.nx, layout.planes, layout.tile_rows
    empty_sci = np.asarray(drz._empty_sci, dtype=">f4")
    sci_is_zero = not empty_sci.tobytes().strip(b"\0")
    band_rows = max(1, min(tile_rows, _BAND_BYTES // (4 * nx * (2 + planes))))
    y0 = 0
    while y0 < ny:
        y1 = min(y0 + band_rows, ny, (y0 // tile_rows + 1) * tile_rows)
        tile_row = y0 // tile_rows
        if tile_row not in layout.occupied:
            if not sci_is_zero:
                fill = np.full((y1 - y0, nx), empty_sci, dtype=">f4")
                _write_rows(fd, layout.offsets["SCI"] + y0 * nx * 4, fill, nx, None)
            y0 = y1
            continue
        spans = layout.runs[tile_row]
        full = len(spans) == 1 and spans[0] == [0, nx]
        band = drz.band(y0, y1, products=("sci", "wht", "ctx"))
        for name, (product, _, dtype) in _PRODUCTS.items():
            arr = band.pop(product)
            stack = arr if name == "CTX" else arr[None]
            for plane in range(stack.shape[0]):
                rows = np.ascontiguousarray(drz.backend.to_host(stack[plane]), dtype=dtype)
                offset = layout.offsets[name] + (plane * ny + y0) * nx * 4
                # SCI outside the tiles holds the fill value: written unless it is 0
                _write_rows(fd, offset, rows, nx, None if full or (name == "SCI" and not sci_is_zero)
                            else spans)
                del rows
            del arr, stack
        y0 = y1


def write_drizzle_fits(drz, path, header=None, *, overwrite: bool = False) -> Path:
    """Write ``drz``'s SCI, WHT and CTX to ``path``, streaming band by band.

    Parameters
    ----------
    drz : Drizzle
        The accumulator to write; it is not modified.
    path : str or os.PathLike
        Output file.
    header : astropy.io.fits.Header, optional
        Cards copied into each image extension's header (e.g. the output WCS); layout
        keywords (``BITPIX``, ``NAXISn``, ``EXTNAME``, ...) are the writer's own.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    OutputWriteError
        If ``path`` exists and ``overwrite`` is False, or the file cannot be written (the
        temporary file is removed).
    InvalidInputError
        If ``header`` is not an astropy Header.
    """
    path = Path(path)
    if header is not None and not isinstance(header, fits.Header):
        raise InvalidInputError(f"{path}: header must be an astropy.io.fits.Header, got {type(header).__name__}")
    if path.exists() and not overwrite:
        raise OutputWriteError(f"{path}: the file exists (pass overwrite=True to replace it)")
    directory = path.parent if str(path.parent) else Path(".")
    tmp = directory / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        # os.open applies the umask to 0o666, as a plain open() would (mkstemp makes 0o600)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise OutputWriteError(f"{path}: cannot create a file in {directory} ({exc})") from exc
    try:
        try:
            layout = _Layout(drz, header)
            _pwrite_all(fd, _primary_header(len(_PRODUCTS)), 0)
            for name in _PRODUCTS:
                _pwrite_all(fd, layout.headers[name], layout.offsets[name] - len(layout.headers[name]))
            _write_data(fd, drz, layout)
            os.ftruncate(fd, layout.size)  # holes and the FITS padding read as zeros
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OutputWriteError(f"{path}: cannot write the drizzled product ({exc})") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path
