"""Benchmark of hapgpu.align against drizzlepac's alignment (source finding + fit).

A 4-exposure WFC3/UVIS visit is simulated with a known a priori WCS error (or an existing
visit folder is used); then, in one run, each side does:

* **sources**: drizzlepac ``AlignmentTable(files)`` + ``find_alignment_sources`` (background,
  automatic kernel, cosmic-ray cleaning, segmentation, DAOFIND per segment), against
  :func:`hapgpu.align.find_alignment_sources` on the chosen backend;
* **fit**: the ``relative`` method (tweakwcs relative then absolute ``rscale`` fits) to the
  same in-memory reference catalogue, with the fit quality, on each side's own source lists.

Both sides run after a warm-up of ours on a small visit (Numba compilation, CUDA context);
device timings are synchronised. The ratio is drizzlepac / hapgpu. drizzlepac 3.11 needs the
photutils 2 column-name shim of the test suite under photutils 3.

Usage::

    python benchmarks/bench_align.py                          # full-frame visit, cpu
    python benchmarks/bench_align.py --shape 1024,2048 --backend gpu
    python benchmarks/bench_align.py --visit /path/to/visit   # an existing simulated visit
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hapgpu.align import alignment_pars, determine_fit_quality, find_alignment_sources
from hapgpu.align._fit import build_correctors, perform_fit
from hapgpu.align._refcat import FileCatalog, field_of
from hapgpu.backend import resolve_backend
from hapgpu.simulate import WCSPerturbation, simulate_visit


def _shape(text):
    parts = [int(p) for p in text.split(",")]
    return (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])


def _visit(args, workdir: Path):
    if args.visit:
        folder = Path(args.visit)
        files = sorted(folder.glob("*_fl[tc].fits"))
        return folder, files
    print(f"simulating a {args.n_exposures}-exposure WFC3/UVIS visit"
          f"{'' if args.shape is None else f' ({args.shape[0]}x{args.shape[1]} subarrays)'}"
          " ...", flush=True)
    result = simulate_visit(workdir / "visit", "wfc3-uvis", n_exposures=args.n_exposures,
                            seed=args.seed, shape=args.shape,
                            star_density=args.star_density,
                            wcs_error=WCSPerturbation((0.3, -0.2), rotation_deg=0.01))
    return Path(result.outdir), list(result.files)


def _reference_catalog(files, refcat_path: Path):
    from stwcs.wcsutil import HSTWCS

    wcs = []
    for name in files:
        with fits.open(name) as hdul, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for hdu in hdul:
                if hdu.name == "SCI":
                    w = HSTWCS(hdul, ext=("SCI", hdu.ver))
                    w.pixel_shape = hdu.data.shape[::-1]
                    wcs.append(w)
    ra, dec, radius = field_of(wcs)
    from astropy.time import Time

    epoch = Time(fits.getval(files[0], "DATE-OBS")).decimalyear
    table = FileCatalog(refcat_path)(ra, dec, radius, epoch, "GAIAeDR3")
    slim = table["RA", "DEC", "mag", "objID"]
    slim.meta.update(table.meta)
    return slim


def _warm_up(backend, workdir: Path):
    visit = simulate_visit(workdir / "warm", "wfc3-uvis", n_exposures=1, seed=3,
                           shape=(128, 128))
    find_alignment_sources(visit.files, alignment_pars("WFC3", "UVIS"), backend=backend)


def _ours(files, refcat, backend):
    bk = resolve_backend(backend)
    pars = alignment_pars("WFC3", "UVIS")
    t0 = time.perf_counter()
    sources = find_alignment_sources(files, pars, backend=bk)
    bk.synchronize()
    t1 = time.perf_counter()
    exposures = []
    from stwcs.wcsutil import HSTWCS

    for name in files:
        with fits.open(name) as hdul, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exposures.append((str(name), {h.ver: HSTWCS(hdul, ext=("SCI", h.ver))
                                          for h in hdul if h.name == "SCI"}))
    correctors = build_correctors(exposures, sources, exclude_saturated=pars.exclude_saturated)
    perform_fit("relative", correctors, refcat, pars)
    quality = determine_fit_quality(correctors, pars, catalogs_remaining=False,
                                    consistency_check=True, n_reference=len(refcat))
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, sum(s.n_sources for s in sources), quality


@contextlib.contextmanager
def _silenced_stdout():
    """drizzlepac logs to handlers bound to the original stdout; silence it at the fd level."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


def _drizzlepac(files, refcat):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "align"))
    from _helpers import photutils2_shim
    from drizzlepac import align
    from drizzlepac.haputils import align_utils

    apars = align.get_default_pars("WFC3", "UVIS")
    apars["MAX_SOURCES_PER_CHIP"] = 250
    apars["determine_fit_quality"]["min_xmatches"] = 4
    names = [Path(f).name for f in files]
    cwd = os.getcwd()
    os.chdir(Path(files[0]).parent)
    try:
        with photutils2_shim(), _silenced_stdout():
            t0 = time.perf_counter()
            table = align_utils.AlignmentTable(names, **apars)
            table.find_alignment_sources(output=False)
            t1 = time.perf_counter()
            table.configure_fit()
            table.reset_group_id(len(refcat))
            table.imglist = table.perform_fit("relative", "GAIAeDR3", refcat)
            _, _, quality, _, _ = align.determine_fit_quality(
                table.imglist, table.filtered_table, False, apars, print_fit_parameters=False)
            t2 = time.perf_counter()
    finally:
        os.chdir(cwd)
    n = sum(len(t) for chips in table.extracted_sources.values() for t in chips.values()
            if t is not None)
    return t1 - t0, t2 - t1, n, quality


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="cpu", help="hapgpu backend (default: cpu)")
    parser.add_argument("--shape", type=_shape, default=None, metavar="NY,NX",
                        help="subarray of each chip (default: full chips)")
    parser.add_argument("--n-exposures", type=int, default=4)
    parser.add_argument("--star-density", type=float, default=None,
                        help="stars per square arcmin (default: the simulator's)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--visit", default=None, help="use this simulated visit folder")
    parser.add_argument("--skip-reference", action="store_true", help="time hapgpu only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for name in ("tweakwcs", "stwcs", "drizzlepac", "hapgpu"):
        logging.getLogger(name).setLevel(logging.ERROR)
    bk = resolve_backend(args.backend)
    print(f"hapgpu.align benchmark: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, backend {bk.name}", flush=True)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        workdir = Path(tmp)
        folder, files = _visit(args, workdir)
        shape = fits.getdata(files[0], ("SCI", 1)).shape
        print(f"visit: {len(files)} exposures of 2 chips {shape[0]}x{shape[1]} in {folder}",
              flush=True)
        refcat = _reference_catalog(files, folder / "refcat.ecsv")
        _warm_up(bk, workdir)
        ours = _ours(files, refcat, bk)
        ref = None if args.skip_reference else _drizzlepac(files, refcat)
    print()
    print(f"{'stage':<10s} {'hapgpu s':>10s} {'drizzlepac s':>13s} {'ratio':>8s}")
    labels = ("sources", "fit")
    for i, label in enumerate(labels):
        t_ref = np.nan if ref is None else ref[i]
        print(f"{label:<10s} {ours[i]:10.2f} {t_ref:13.2f} {t_ref / ours[i]:7.1f}x")
    total_ours = ours[0] + ours[1]
    total_ref = np.nan if ref is None else ref[0] + ref[1]
    print(f"{'total':<10s} {total_ours:10.2f} {total_ref:13.2f} "
          f"{total_ref / total_ours:7.1f}x")
    print(f"\nsources found: hapgpu {ours[2]}, drizzlepac "
          f"{'-' if ref is None else ref[2]}; fit quality: hapgpu {ours[3].quality}, "
          f"drizzlepac {'-' if ref is None else ref[3]}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
