"""Where compiled kernels are cached on disk, and when a cached kernel is stale.

Numba's default places its cache beside the source (``__pycache__`` inside the installed
package) and judges freshness by the function's own file only. Neither suits a kernel library:
nothing may be written into an installed package, and a driver compiled with ``cache=True``
must not outlive an edit to the per-pixel maths it inlines from another file.

:class:`KernelCacheLocator` is put first in Numba's list of cache locators for functions defined
in this package. It stores every cached kernel under one folder,

``<cache root>/numba/<source key>/<module>/``

where the cache root is, in order of precedence, ``$HAPGPU_CACHE_DIR``, ``$NUMBA_CACHE_DIR``
(under ``hapgpu/``) or the per-user cache folder (``$XDG_CACHE_HOME/hapgpu`` or
``~/.cache/hapgpu``; ``%LOCALAPPDATA%\\hapgpu`` on Windows, ``~/Library/Caches/hapgpu`` on
macOS), and the source key is a hash of every Python source file of this package. Any edit to
any kernel file therefore starts a new, empty cache: a stale kernel can never run.

Functions compiled from the same source under different bindings (one driver per drizzle
kernel, say) carry a ``__hapgpu_variant__`` attribute, which becomes part of the cache file name.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import tempfile
from pathlib import Path

from numba.core import caching

__all__ = ["KernelCacheLocator", "cache_dir", "cache_root", "hash_sources", "install", "source_key"]

# Numba 0.68 made the locator list public (``CacheImpl``); older releases call it ``_CacheImpl``.
_CACHE_IMPL = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")

#: The folder of this package: functions defined below it are cached by this module's rules.
PACKAGE_DIR = Path(__file__).resolve().parent


def _user_cache_root() -> Path:
    if sys.platform.startswith("win"):
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "hapgpu"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "hapgpu"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hapgpu"


def cache_root() -> Path:
    """Root folder of hapgpu's on-disk caches (see the module docstring for the precedence)."""
    if os.environ.get("HAPGPU_CACHE_DIR"):
        return Path(os.environ["HAPGPU_CACHE_DIR"]).expanduser()
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"]).expanduser() / "hapgpu"
    return _user_cache_root()


def hash_sources(folder: Path) -> str:
    """Hash (16 hex digits) of the relative names and contents of every ``.py`` file below
    ``folder``."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def source_key() -> str:
    """:func:`hash_sources` of this package (computed once per process)."""
    return hash_sources(PACKAGE_DIR)


def cache_dir(root: Path | None = None) -> Path:
    """Folder holding the compiled kernels of this exact source (created on first use)."""
    return (cache_root() if root is None else root) / "numba" / source_key()


def _fallback_root() -> Path:
    """A private folder in the system's temporary directory, for an unwritable cache root."""
    user = getattr(os, "getuid", lambda: "user")()
    return Path(tempfile.gettempdir()) / f"hapgpu-cache-{user}"


class KernelCacheLocator(caching._CacheLocator):
    """Numba cache locator for the functions of this package (see the module docstring)."""

    def __init__(self, py_func, py_file, root: Path | None = None):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._variant = getattr(py_func, "__hapgpu_variant__", None)
        module = Path(py_file).resolve().relative_to(PACKAGE_DIR).with_suffix("")
        self._cache_path = str(cache_dir(root) / "_".join(module.parts))

    def get_cache_path(self):
        return self._cache_path

    def get_source_stamp(self):
        return source_key()

    def get_disambiguator(self):
        if self._variant is None:
            return str(self._lineno)
        return f"{self._lineno}-{self._variant}"

    @classmethod
    def from_function(cls, py_func, py_file):
        try:
            Path(py_file).resolve().relative_to(PACKAGE_DIR)
        except (ValueError, OSError):
            return None  # not one of ours: Numba's own locators decide
        # Never let Numba fall back to its in-tree locator (a write into the installed
        # package): an unwritable cache root falls back to a private temporary folder.
        for root in (None, _fallback_root()):
            self = cls(py_func, py_file, root)
            try:
                self.ensure_cache_path()
            except OSError:
                continue
            return self
        return None


def install() -> None:
    """Put :class:`KernelCacheLocator` first in Numba's locator list (idempotent).

    The source key is computed here, when ``hapgpu.kernels`` is imported and before any kernel
    module is: a key computed later (at the first compilation) could describe files edited or
    upgraded after this process loaded the old ones, and file that old machine code under the
    new sources' key.
    """
    source_key()
    locators = _CACHE_IMPL._locator_classes
    if KernelCacheLocator not in locators:
        locators.insert(0, KernelCacheLocator)
