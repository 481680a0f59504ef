"""Benchmark of hapgpu.catalogs.make_hap_catalogs against drizzlepac's SVM catalog step.

For each field (sparse: the simulator's default star and galaxy densities; crowded: plus its
dense star cluster) a WFC3/UVIS visit of 2 filters x 2 exposures is simulated at full chip size
and drizzled into SVM products (a total and 2 filter products, plus the single-exposure
products the flags read) by tests/catalogs/_products.py. Then, in the same run and on the same
files and footprint masks:

* drizzlepac 3.11: ``hapsequencer.create_catalog_products`` with its real product objects
  (tests/catalogs/_oracle.py; photutils 2 column-name shim), point and segment catalogs,
  flags, trimming, CR rejection, ECSV writing;
* hapgpu: reading the products, :func:`hapgpu.catalogs.make_hap_catalogs` and ``write``.

hapgpu is warmed up first on a small product set (kernel compilation, CUDA context), outside
the timings; device work is synchronised by the step itself (results come back to the host).
The ratio is drizzlepac / hapgpu (wall clock). ``hapgpu cpu s`` is the process CPU time of
the hapgpu side (all threads): on a machine shared with other jobs the wall clock of either
side stretches with the load, the CPU time much less.

Usage::

    python benchmarks/bench_catalogs.py                          # full UVIS, sparse + crowded
    python benchmarks/bench_catalogs.py --shape 1024 --fields sparse
    python benchmarks/bench_catalogs.py --backend gpu --workdir /tmp/bench   # keeps products
    python benchmarks/bench_catalogs.py --workdir /tmp/bench --reuse-products  # ... reuses them
    python benchmarks/bench_catalogs.py --no-drizzlepac --profile /tmp/cat  # hapgpu only, cProfile

``--profile PREFIX`` runs the hapgpu side under cProfile, writes ``PREFIX-<field>.prof`` and
prints its 25 most expensive calls (cumulative); the timings then include the profiler's
overhead.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import logging
import os
import pickle
import platform
import pstats
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.catalogs._oracle import run_drizzlepac_catalogs
from tests.catalogs._products import SPECS, ProductSpec, build_product_set

FIELDS = {
    "sparse": ProductSpec("bench-sparse", "wfc3-uvis", ("F555W", "F814W"), seed=21),
    "crowded": ProductSpec("bench-crowded", "wfc3-uvis", ("F555W", "F814W"), seed=22,
                           crowded=True),
}


def _ours(product_set, backend, outdir, profile=None):
    from hapgpu.catalogs import make_hap_catalogs

    profiler = cProfile.Profile() if profile else None
    start, cpu_start = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    total, filters = product_set.catalog_inputs()
    result = make_hap_catalogs(total, filters, backend=backend)
    files = result.write(outdir)
    if profiler is not None:
        profiler.disable()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    if profiler is not None:
        profiler.dump_stats(profile)
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(25)
    return elapsed, cpu, result, files


def _warm_up(backend, workdir):
    """Compile and initialise everything on the small UVIS test set (not timed)."""
    small = build_product_set(workdir / "warmup", SPECS["uvis"], backend=backend)
    _ours(small, backend, workdir / "warmup-out")


def _products(field, shape, backend, workdir, reuse=False):
    spec = FIELDS[field] if shape is None else replace(FIELDS[field], shape=(shape, shape))
    folder = workdir / f"{field}-{'full' if shape is None else shape}"
    saved = folder / "product_set.pkl"
    start = time.perf_counter()
    if reuse and saved.is_file():
        with open(saved, "rb") as handle:
            products = pickle.load(handle)
        if products.spec == spec and products.total.is_file():
            return products, float("nan")
    if folder.exists():
        shutil.rmtree(folder)
    products = build_product_set(folder, spec, backend=backend)
    with open(saved, "wb") as handle:
        pickle.dump(products, handle)
    return products, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="cpu", help="hapgpu backend (cpu, gpu, auto)")
    parser.add_argument("--fields", default="sparse,crowded", help="comma list of fields")
    parser.add_argument("--shape", type=int, default=None,
                        help="square subarray per chip instead of the full chips")
    parser.add_argument("--workdir", default=None, help="folder kept for the products")
    parser.add_argument("--no-drizzlepac", action="store_true", help="time hapgpu only")
    parser.add_argument("--profile", default=None, metavar="PREFIX",
                        help="cProfile the hapgpu side into PREFIX-<field>.prof")
    parser.add_argument("--reuse-products", action="store_true",
                        help="with --workdir: reuse the product sets a previous run built there "
                             "(build s is then nan)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for name in ("stwcs", "drizzlepac"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.simplefilter("ignore")

    from hapgpu.backend import resolve_backend

    bk = resolve_backend(args.backend)
    keep = args.workdir is not None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_catalogs_"))
    workdir.mkdir(parents=True, exist_ok=True)
    import drizzlepac
    import photutils

    print(f"# hapgpu catalogs vs drizzlepac {drizzlepac.__version__} (photutils "
          f"{photutils.__version__}); backend {bk.name}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs; Python {platform.python_version()}", flush=True)
    try:
        _warm_up(bk.name, workdir)
        header = (f"{'field':<8s} {'frame':>11s} {'build s':>8s} {'seg':>6s} {'point':>6s} "
                  f"{'drizzlepac s':>13s} {'hapgpu s':>9s} {'ratio':>7s} {'hapgpu cpu s':>13s}")
        print(header)
        print("-" * len(header), flush=True)
        for field in [f.strip() for f in args.fields.split(",") if f.strip()]:
            products, build_s = _products(field, args.shape, bk.name, workdir,
                                          reuse=args.reuse_products and keep)
            ny, nx = products.total_mask.shape
            profile = f"{args.profile}-{field}.prof" if args.profile else None
            t_ours, cpu_ours, result, _ = _ours(products, bk.name, workdir / f"{field}-hapgpu",
                                                profile)
            t_ref = float("nan")
            if not args.no_drizzlepac:
                with contextlib.redirect_stdout(io.StringIO()):  # stwcs prints every WCS
                    oracle = run_drizzlepac_catalogs(products, workdir / f"{field}-drizzlepac",
                                                     log_level=logging.ERROR)
                t_ref = oracle.seconds
            n_seg = len(result.total.get("segment", []))
            n_pt = len(result.total.get("point", []))
            print(f"{field:<8s} {f'{ny}x{nx}':>11s} {build_s:8.1f} {n_seg:6d} {n_pt:6d} "
                  f"{t_ref:13.2f} {t_ours:9.2f} {t_ref / t_ours:6.1f}x {cpu_ours:13.2f}",
                  flush=True)
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
