"""A file's identity within a process, for memos keyed on input files.

A memo of something read from a file (its headers, its WCS, a guiding verdict) must not serve
a file that was rewritten or replaced since: the key holds the resolved path, the device and
inode, the size and the modification time (nanoseconds) of the file as it is now.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InvalidInputError

__all__ = ["file_identity", "file_identity_or_none"]


def file_identity_or_none(path) -> tuple | None:
    """``(resolved path, st_dev, st_ino, st_size, st_mtime_ns)`` of ``path``, or None when it
    cannot be resolved or stat-ed (the caller's open then reports the problem)."""
    try:
        resolved = Path(path).resolve()
        stat = os.stat(resolved)
    except OSError:
        return None
    return str(resolved), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


def file_identity(path) -> tuple:
    """:func:`file_identity_or_none` of an exposure that must exist.

    Raises
    ------
    InvalidInputError
        The file cannot be resolved or stat-ed (the message names it).
    """
    try:
        resolved = Path(path).resolve()
        stat = os.stat(resolved)
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the exposure ({exc})") from None
    return str(resolved), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns
