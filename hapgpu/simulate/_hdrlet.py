"""Read and write ``HDRLET`` extensions: headerlet FITS files embedded in an exposure."""

from __future__ import annotations

import io

import numpy as np
from astropy.io import fits

__all__ = ["open_headerlet", "make_headerlet_hdu"]

# Cards of an HDRLET extension header that describe its byte layout; they are recomputed.
_LAYOUT_CARDS = ("XTENSION", "BITPIX", "NAXIS", "NAXIS1", "PCOUNT", "GCOUNT", "COMPRESS")


def open_headerlet(hdu) -> fits.HDUList:
    """Return the headerlet embedded in an ``HDRLET`` extension as an in-memory HDU list.

    Parameters
    ----------
    hdu : astropy.io.fits HDU
        An ``HDRLET`` extension, read either as astropy's ``NonstandardExtHDU`` or as stwcs'
        ``HeaderletHDU`` (which one depends on whether stwcs was imported).

    Returns
    -------
    astropy.io.fits.HDUList
        The headerlet, fully read into memory.
    """
    raw = np.asarray(hdu.data).tobytes()
    if hdu.header.get("COMPRESS", False):
        import gzip

        raw = gzip.decompress(raw)
    hlet = fits.open(io.BytesIO(raw))
    hlet.readall()
    return hlet


def make_headerlet_hdu(headerlet: fits.HDUList, header: fits.Header):
    """Embed ``headerlet`` as an uncompressed ``HDRLET`` extension.

    Parameters
    ----------
    headerlet : astropy.io.fits.HDUList
        The headerlet to embed.
    header : astropy.io.fits.Header
        The original extension header; its descriptive cards (``HDRNAME``, ``WCSNAME``,
        ``EXTVER``...) are carried over, its layout cards are recomputed.

    Returns
    -------
    stwcs.wcsutil.headerlet.HeaderletHDU
    """
    from stwcs.wcsutil.headerlet import HeaderletHDU

    hdu = HeaderletHDU.fromhdulist(headerlet)
    for card in header.cards:
        if card.keyword in _LAYOUT_CARDS or card.keyword.startswith("XIND"):
            continue
        hdu.header[card.keyword] = (card.value, card.comment)
    return hdu
