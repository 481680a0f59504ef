"""Compiled kernels are cached per user, keyed by the kernel sources, never in the package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from hapgpu.kernels import _cache

KERNELS = Path(_cache.__file__).resolve().parent

# Drizzle two kernels and blot once, in a fresh process; save the results.
_SCRIPT = """
import sys, numpy as np
from astropy.wcs import WCS
from hapgpu.resample import Drizzle, PixelMap, blot

def tan(n, rot):
    w = WCS(naxis=2); w.wcs.ctype = ["RA---TAN", "DEC--TAN"]; w.wcs.crval = [10.0, 20.0]
    w.wcs.crpix = [n / 2, n / 2]; t = np.deg2rad(rot)
    w.wcs.cd = 1e-5 * np.array([[-np.cos(t), np.sin(t)], [np.sin(t), np.cos(t)]]); return w

n = 20
data = np.arange(n * n, dtype=np.float32).reshape(n, n)
pmap = PixelMap.from_wcs(tan(n, 0), tan(n, 13), (n, n))
out = {}
for kernel in ("square", "turbo"):
    d = Drizzle((n, n), kernel=kernel, pixfrac=0.8, backend="cpu")
    d.add_image(data, pmap)
    out[kernel] = d.sci
out["blot"] = blot(data, pmap, interp="poly3", backend="cpu")
np.savez(sys.argv[1], **out)
"""


# The smallest probe: one blot kernel (enough to show where the cache goes).
_BLOT_ONLY = _SCRIPT.split("out = {}")[0] + """out = {"blot": blot(data, pmap, interp="poly3", backend="cpu")}
np.savez(sys.argv[1], **out)
"""


# Only the kernels named in $PROBE ("point,turbo,blot:poly5"): a process that compiles one
# driver and nothing before it.
_ONLY = _SCRIPT.split("out = {}")[0] + """import os
out = {}
for name in os.environ["PROBE"].split(","):
    if name.startswith("blot:"):
        out[name] = blot(data, pmap, interp=name[5:], backend="cpu")
    else:
        d = Drizzle((n, n), kernel=name, pixfrac=0.8, backend="cpu")
        d.add_image(data, pmap)
        out[name] = d.sci
np.savez(sys.argv[1], **out)
"""


def _run(tmp_path, env_extra, name, script=None):
    env = {k: v for k, v in os.environ.items()
           if k not in ("HAPGPU_CACHE_DIR", "NUMBA_CACHE_DIR")}
    env.update(env_extra)
    source = _SCRIPT if script is None else script
    script = tmp_path / "cache_probe.py"
    script.write_text(source)
    result = tmp_path / f"{name}.npz"
    proc = subprocess.run([sys.executable, "-c",
                           "import logging, sys; logging.basicConfig(level=logging.INFO); "
                           f"sys.argv = ['probe', {str(result)!r}]; "
                           f"exec(open({str(script)!r}).read())"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return np.load(result), proc.stderr


def test_cache_root_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("HAPGPU_CACHE_DIR", raising=False)
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert _cache.cache_root() == tmp_path / "xdg" / "hapgpu"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    assert _cache.cache_root() == tmp_path / "numba" / "hapgpu"
    monkeypatch.setenv("HAPGPU_CACHE_DIR", str(tmp_path / "mine"))
    assert _cache.cache_root() == tmp_path / "mine"
    assert _cache.cache_dir() == tmp_path / "mine" / "numba" / _cache.source_key()


def test_source_key_follows_every_kernel_file(tmp_path):
    copy = tmp_path / "kernels"
    shutil.copytree(KERNELS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert _cache.hash_sources(copy) == _cache.source_key()
    math_file = copy / "_pixel_math.py"  # a file no driver is defined in
    math_file.write_text(math_file.read_text() + "\n# an edit\n")
    assert _cache.hash_sources(copy) != _cache.source_key()


def test_kernels_are_cached_outside_the_package(tmp_path):
    def package_cache_files():
        return sorted(p for p in KERNELS.rglob("*") if p.suffix in (".nbi", ".nbc"))

    before = package_cache_files()
    cache = tmp_path / "cache"
    cold, log_cold = _run(tmp_path, {"HAPGPU_CACHE_DIR": str(cache)}, "cold")
    assert log_cold.count("compiling kernels (first run only, cached in") == 1
    folder = cache / "numba" / _cache.source_key()
    index = {p.name for p in (folder / "drizzle").glob("*.nbi")}
    # one driver per kernel, told apart in the file names
    assert any("square_pixel" in name for name in index)
    assert any("turbo_drop" in name for name in index)
    assert any("sample_poly3" in p.name for p in (folder / "blot").glob("*.nbi"))
    assert package_cache_files() == before

    # a second process loads every driver from the cache (no compilation, no notice) and
    # gets the same numbers: the variants never read each other's code
    warm, log_warm = _run(tmp_path, {"HAPGPU_CACHE_DIR": str(cache)}, "warm")
    assert "compiling kernels" not in log_warm
    for key in ("square", "turbo", "blot"):
        np.testing.assert_array_equal(warm[key], cold[key])
    assert not np.array_equal(cold["square"], cold["turbo"])


def test_variants_compiled_in_separate_processes_keep_their_own_code(tmp_path):
    """Two drivers from one source, each compiled in its own process after the same cached
    helpers, get the same per-process symbol numbers from Numba; a process that loads both
    from the cache must still run each one's own code (the rebound functions' names carry
    their binding)."""
    cache = {"HAPGPU_CACHE_DIR": str(tmp_path / "cache")}
    _run(tmp_path, {**cache, "PROBE": "square,blot:nearest"}, "helpers", script=_ONLY)
    alone = {}
    for probe in ("point", "turbo", "blot:poly5", "blot:lanczos3"):
        alone.update(_run(tmp_path, {**cache, "PROBE": probe}, probe[-5:], script=_ONLY)[0])
    both, log = _run(tmp_path, {**cache, "PROBE": ",".join(alone)}, "all", script=_ONLY)
    assert "compiling kernels" not in log
    for key, value in alone.items():
        np.testing.assert_array_equal(both[key], value, err_msg=key)
    assert not np.array_equal(alone["point"], alone["turbo"])
    assert not np.array_equal(alone["blot:poly5"], alone["blot:lanczos3"])


def test_numba_cache_dir_is_respected(tmp_path):
    _run(tmp_path, {"NUMBA_CACHE_DIR": str(tmp_path / "nc")}, "numba", script=_BLOT_ONLY)
    assert list((tmp_path / "nc" / "hapgpu" / "numba" / _cache.source_key()).rglob("*.nbi"))


def test_unusable_cache_root_falls_back_to_a_private_temporary_folder(tmp_path):
    not_a_folder = tmp_path / "a_file"
    not_a_folder.write_text("a cache root that cannot be created")
    _run(tmp_path, {"HAPGPU_CACHE_DIR": str(not_a_folder / "cache")}, "fallback")
    assert list(_cache._fallback_root().rglob("*.nbi"))
