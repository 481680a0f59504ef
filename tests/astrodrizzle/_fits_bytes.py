"""Byte comparison of two FITS files apart from the cards that record when they were written."""

from __future__ import annotations

from pathlib import Path

#: Header cards whose value is the time of writing (a product's, or an input's ``DATE``
#: copied into HDRTAB's GENDATE column by MVM layers is the same in both runs).
TIME_KEYWORDS = (b"DATE    ", b"IRAF-TLM")


def differing_cards(a, b) -> list[tuple[int, bytes, bytes]]:
    """``(offset, card of a, card of b)`` of each 80-byte record that differs, other than the
    time-of-writing cards. Equal-length files only (a length mismatch is one entry at -1)."""
    ra, rb = Path(a).read_bytes(), Path(b).read_bytes()
    if len(ra) != len(rb):
        return [(-1, str(len(ra)).encode(), str(len(rb)).encode())]
    out = []
    for offset in range(0, len(ra), 80):
        x, y = ra[offset:offset + 80], rb[offset:offset + 80]
        if x != y and not (x[:8] == y[:8] and x[:8] in TIME_KEYWORDS):
            out.append((offset, x, y))
    return out


def assert_same_fits_bytes(a, b) -> None:
    """Two files equal byte for byte except the ``DATE``/``IRAF-TLM`` card values."""
    diff = differing_cards(a, b)
    assert not diff, f"{Path(a).name}: {len(diff)} records differ, first at {diff[0][0]}: {diff[0][1]!r} vs {diff[0][2]!r}"
