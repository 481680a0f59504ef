"""Updating a FITS file: all at once on a copy that replaces it (:func:`update_in_copy`), or
one primary-header card in place (:func:`set_primary_card`)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .errors import InvalidInputError

__all__ = ["set_primary_card", "update_in_copy"]


def update_in_copy(path, work, *, prefix: str = ".hapgpu-update-"):
    """Run ``work(hdul)`` on a copy of ``path`` opened for update, then replace ``path`` by it.

    The copy lies beside the file (same folder, so the rename is atomic); a failure at any
    point leaves ``path`` exactly as it was and removes the copy.

    Parameters
    ----------
    path : str or os.PathLike
        The FITS file.
    work : callable
        ``work(hdul) -> result`` on the open copy (``astropy.io.fits.HDUList``, mode
        ``update``). Returning False discards the copy: ``path`` is left untouched.
    prefix : str
        Name prefix of the temporary copy.

    Returns
    -------
    object
        What ``work`` returned.

    Raises
    ------
    InvalidInputError
        The file cannot be copied, opened, updated or replaced (the message names it).
    """
    from astropy.io import fits

    path = Path(path)
    fd, temp = tempfile.mkstemp(prefix=prefix, suffix=".fits", dir=path.absolute().parent)
    os.close(fd)
    try:
        try:
            shutil.copy2(path, temp)
        except OSError as exc:
            raise InvalidInputError(f"{path}: cannot copy the file for its update ({exc})") from None
        try:
            with fits.open(temp, mode="update", memmap=False) as hdul:
                result = work(hdul)
                if result is not False:
                    hdul.flush()
            if result is not False:
                os.replace(temp, path)
        except OSError as exc:
            raise InvalidInputError(f"{path}: cannot update the file ({exc})") from None
        return result
    finally:
        if os.path.exists(temp):
            os.remove(temp)


_BLOCK = 2880  # FITS block, bytes (FITS Standard 4.0 §3.1)
#: How far a primary header is searched for its END card, in blocks.
_MAX_HEADER_BLOCKS = 1000


def set_primary_card(path, keyword: str, value, comment: str) -> bool:
    """Set one primary-header card of a FITS file in place, rewriting only that header.

    The header is read up to its END card, the card set with astropy, and the header written
    back over itself when it still fills the same number of 2880-byte blocks: the bytes
    ``fits.open(path, mode="update")`` writes for the same change (astropy then also rewrites
    only that header), without reading or verifying the other extensions' headers.

    Parameters
    ----------
    path : path-like
        The file (modified).
    keyword, value, comment
        The card.

    Returns
    -------
    bool
        True when done; False (file untouched) when the header would change size, has no
        ``EXTEND`` card (astropy would add one), carries ``CHECKSUM``/``DATASUM``, or its END
        card is not found: the caller then updates the file through astropy.

    Raises
    ------
    OSError
        The file cannot be read or written.
    """
    from astropy.io import fits

    with open(path, "r+b") as handle:
        raw = b""
        while len(raw) < _MAX_HEADER_BLOCKS * _BLOCK:
            block = handle.read(_BLOCK)
            if len(block) < _BLOCK:
                return False
            raw += block
            if any(block[i:i + 8] == b"END     " for i in range(0, _BLOCK, 80)):
                break
        else:
            return False
        try:
            header = fits.Header.fromstring(raw.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return False
        if "EXTEND" not in header or "CHECKSUM" in header or "DATASUM" in header:
            return False
        header[keyword] = (value, comment)
        text = header.tostring().encode("ascii")
        if len(text) != len(raw):
            return False
        handle.seek(0)
        handle.write(text)
    return True
