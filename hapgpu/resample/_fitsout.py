"""Stream a :class:`~hapgpu.resample.Drizzle` product to a FITS file, band by band.

The file is written by hand in the FITS layout (FITS Standard 4.0, §3-§4: 2880-byte blocks,
headers of 80-character cards ending with END, big-endian data padded with zeros): a data-less
primary HDU, then SCI (float32), WHT (float32) and CTX (int32; 3-D when there is more than
one context plane) image extensions. Only one band of rows is finished and held at a time,
so a frame far larger than memory can be written. Row bands of tiles no input reached are
skipped with a seek when their bytes are all zero (WHT and CTX always; SCI when the fill value
is 0), which leaves holes in the file on file systems that support sparse files.

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
#: Bytes of one output band: about 32 MB of float32 rows.
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


def _write_product(handle, drz, name: str, header) -> None:
    """Write one extension (header and data) at the handle's position."""
    ny, nx = drz.output_shape
    planes = drz._n_planes if name == "CTX" else 1
    dtype = np.dtype(">i4") if name == "CTX" else np.dtype(">f4")
    shape = (planes, ny, nx) if planes > 1 else (ny, nx)
    handle.write(_extension_header(name, 32 if name == "CTX" else -32, shape, header))
    empty = {"SCI": drz._empty_sci, "WHT": np.float32(0.0), "CTX": np.int32(0)}[name]
    empty_is_zero = not np.asarray(empty, dtype=dtype).tobytes().strip(b"\0")
    tile_rows, tile_cols = drz.grid.tile
    keys = set(drz._tiles) | set(drz._finished)
    occupied = {key[0] for key in keys}
    # per tile row: runs (x0, x1, has_tiles) of columns, so empty columns can be skipped
    runs = {}
    for row in occupied:
        spans = []
        for col in range(drz.grid.n_cols):
            x0, x1 = col * tile_cols, min((col + 1) * tile_cols, nx)
            filled = (row, col) in keys or not empty_is_zero
            if spans and spans[-1][2] == filled:
                spans[-1][1] = x1
            else:
                spans.append([x0, x1, filled])
        runs[row] = spans
    band_rows = max(1, min(tile_rows, _BAND_BYTES // (4 * nx)))
    product = {"SCI": "sci", "WHT": "wht", "CTX": "ctx"}[name]
    for plane in range(planes):
        y0 = 0
        while y0 < ny:
            # bands never straddle a tile row, so a band is either all empty or not
            y1 = min(y0 + band_rows, ny, (y0 // tile_rows + 1) * tile_rows)
            if y0 // tile_rows not in occupied and empty_is_zero:
                handle.seek((y1 - y0) * nx * 4, os.SEEK_CUR)
            else:
                band = drz.band(y0, y1, products=(product,))[product]
                if name == "CTX":
                    band = band[plane]
                band = np.ascontiguousarray(drz.backend.to_host(band), dtype=dtype)
                spans = runs.get(y0 // tile_rows)
                if spans is None or len(spans) == 1:
                    handle.write(band.view(np.uint8).data)
                else:
                    for row in band:
                        for x0, x1, filled in spans:
                            if filled:
                                handle.write(row[x0:x1].view(np.uint8).data)
                            else:
                                handle.seek((x1 - x0) * 4, os.SEEK_CUR)
                del band
            y0 = y1
    data_bytes = planes * ny * nx * 4
    pad = -data_bytes % _BLOCK
    if pad:
        handle.seek(pad, os.SEEK_CUR)  # FITS pads data with zeros


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
        with os.fdopen(fd, "wb") as handle:
            handle.write(_primary_header(3))
            for name in ("SCI", "WHT", "CTX"):
                _write_product(handle, drz, name, header)
            handle.truncate(handle.tell())  # the last seek past a hole sets the length
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
