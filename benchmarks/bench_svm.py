"""Benchmark ``hapgpu svm`` against drizzlepac's ``runsinglehap``, end to end, in one run.

A simulated visit (``hapgpu.simulate``; default: 4 full-size WFC3/UVIS exposures in 2 filters)
is processed by drizzlepac's ``hapsequencer.run_hap_processing`` and by
``hapgpu.svm.run_svm``, each in its own folder with alignment off (drizzlepac:
``ASTROMETRIC_CATALOG_URL`` at a closed loopback port, so the catalogue requests fail at once;
hapgpu: ``align=False``). drizzlepac's stages are timed by wrapping its sequencer functions;
hapgpu's come from the per-stage timing table it writes into every total trailer. hapgpu's
kernels are compiled beforehand on a tiny visit (compilation is cached on disk).

Test-only shims let drizzlepac 3.11 run with photutils 3 and spherical_geometry 1.4 (values
untouched): see ``tests/svm/test_svm_reference.py``.

Usage::

    python benchmarks/bench_svm.py [--size 0|512|...] [--backend cpu|gpu] [--no-reference]
        [--n-exposures 4] [--filters F555W,F814W] [--workdir DIR]

Prints one table: per stage, drizzlepac and hapgpu wall times and their ratio, then the whole
visit.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

#: Stages of the comparison: hapgpu stage names -> common stage.
_OUR_STAGES = {
    "read poller": "inputs", "renamed copies": "inputs", "skycell": "inputs",
    "align": "align",
    "metawcs": "drizzle products", "footprint": "drizzle products",
    "drizzle filter": "drizzle products", "drizzle exposure": "drizzle products",
    "drizzle total": "drizzle products", "refine headers": "drizzle products",
    "catalogs": "catalogs", "previews": "previews",
}
#: drizzlepac sequencer functions -> common stage.
_REFERENCE_STAGES = {
    "interpret_obset_input": ("poller_utils", "inputs"),
    "run_align_to_gaia": (None, "align"),
    "create_drizzle_products": (None, "drizzle products"),
    "create_catalog_products": (None, "catalogs"),
}
STAGES = ("inputs", "align", "drizzle products", "catalogs", "previews")


def _simulate(folder: Path, args) -> Path:
    from hapgpu.simulate import simulate_visit

    shape = None if args.size == 0 else (args.size, args.size)
    visit = simulate_visit(folder, "wfc3-uvis", args.n_exposures, filters=args.filters.split(","),
                           shape=shape, seed=args.seed)
    return visit.poller


def _oracle():
    """tests/svm/_reference.py (drizzlepac's environment and shims, visit copies)."""
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    from tests.svm import _reference

    return _reference


def copy_visit(poller: Path, dest: Path) -> Path:
    """The poller's exposures copied into ``dest``, with a poller pointing at the copies."""
    return _oracle().copy_visit(poller, dest)


def run_reference(poller: Path) -> tuple[float, dict]:
    """drizzlepac's runsinglehap on ``poller`` (in its folder): wall time, per-stage times."""
    from drizzlepac import hapsequencer

    times: dict = {}
    saved = []
    for name, (module_name, stage) in _REFERENCE_STAGES.items():
        module = getattr(hapsequencer, module_name) if module_name else hapsequencer
        original = getattr(module, name)

        def timed(*a, _original=original, _stage=stage, **kw):
            t0 = time.perf_counter()
            try:
                return _original(*a, **kw)
            finally:
                times[_stage] = times.get(_stage, 0.0) + time.perf_counter() - t0

        setattr(module, name, timed)
        saved.append((module, name, original))
    try:
        with _oracle().drizzlepac_environment(poller.parent), contextlib.redirect_stdout(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            code = hapsequencer.run_hap_processing(poller.name)
            wall = time.perf_counter() - t0
    finally:
        for module, name, original in saved:
            setattr(module, name, original)
    if code != 0:
        raise RuntimeError(f"runsinglehap returned {code}")
    return wall, times


def _stage_table(trailer: Path) -> dict:
    """hapgpu's per-stage seconds from the timing table in a total trailer."""
    lines = trailer.read_text().splitlines()
    start = max(i for i, line in enumerate(lines) if "stage timing of the visit" in line)
    times = {}
    for line in lines[start + 2:]:
        if line.startswith("total (wall)"):
            break
        name, seconds = line[:20].strip(), float(line[27:36])
        stage = _OUR_STAGES.get(name, name)
        times[stage] = times.get(stage, 0.0) + seconds
    return times


def run_ours(poller: Path, out: Path, backend: str) -> tuple[float, dict]:
    from hapgpu.svm._pipeline import run_svm

    t0 = time.perf_counter()
    code = run_svm(poller, out, align=False, backend=backend, progress=False)
    wall = time.perf_counter() - t0
    if code != 0:
        raise RuntimeError(f"run_svm returned {code}")
    trailer = next(out.glob("*_total_*_trl.txt"))
    return wall, _stage_table(trailer)


def _warm_up(folder: Path, backend: str) -> None:
    """Compile the kernels on a tiny visit (cached on disk for the timed run)."""
    from hapgpu.simulate import simulate_visit
    from hapgpu.svm._pipeline import run_svm

    visit = simulate_visit(folder / "sim", "wfc3-uvis", 4, filters=["F555W", "F814W"],
                           shape=(96, 96), seed=2)
    run_svm(visit.poller, folder / "out", align=False, backend=backend, progress=False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=0, help="subarray size (0: full frame)")
    parser.add_argument("--n-exposures", type=int, default=4)
    parser.add_argument("--filters", default="F555W,F814W")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--backend", default="cpu", choices=("cpu", "gpu", "cudasim", "auto"))
    parser.add_argument("--no-reference", action="store_true", help="time hapgpu only")
    parser.add_argument("--workdir", default=None, help="keep the files here (default: a temp folder)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for handler in logging.getLogger().handlers:  # the pipelines log at INFO into their trailers
        handler.setLevel(logging.WARNING)
    warnings.simplefilter("ignore")

    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench_svm_"))
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    poller = _simulate(root / "sim", args)
    print(f"simulated {args.n_exposures} exposures ({args.filters}) in {time.perf_counter() - t0:.1f} s")
    _warm_up(root / "warmup", args.backend)
    ours_wall, ours = run_ours(copy_visit(poller, root / "ours_in"), root / "ours_out", args.backend)
    ref_wall, ref = (None, {})
    if not args.no_reference:
        ref_wall, ref = run_reference(copy_visit(poller, root / "drizzlepac"))

    from hapgpu.backend import resolve_backend

    backend = resolve_backend(args.backend)
    print(f"# SVM visit: WFC3/UVIS {args.n_exposures} exposures, filters {args.filters}, "
          f"size {'full' if args.size == 0 else args.size}; backend {backend.name}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}")
    print(f"{'stage':<18} {'drizzlepac s':>13} {'hapgpu s':>9} {'ratio':>7}")
    for stage in STAGES:
        mine, theirs = ours.get(stage), ref.get(stage)
        ratio = f"{theirs / mine:6.1f}x" if mine and theirs else "      -"
        print(f"{stage:<18} {'-' if theirs is None else f'{theirs:.2f}':>13} "
              f"{'-' if mine is None else f'{mine:.2f}':>9} {ratio:>7}")
    ratio = f"{ref_wall / ours_wall:6.1f}x" if ref_wall else "      -"
    print(f"{'whole visit':<18} {'-' if ref_wall is None else f'{ref_wall:.2f}':>13} "
          f"{ours_wall:>9.2f} {ratio:>7}")
    if not args.workdir:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
