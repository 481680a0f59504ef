"""Benchmark hapgpu's AstroDrizzle chain against drizzlepac's AstroDrizzle, in one run.

A simulated visit (``hapgpu.simulate``; default: 4 full-size WFC3/UVIS exposures) is combined by
drizzlepac's ``AstroDrizzle`` (in-memory, ``num_cores=1``) and by ``hapgpu.astrodrizzle`` with
the same HAP parameter set, each on its own copy of the inputs. drizzlepac's step functions are
wrapped to time its steps; hapgpu reports its own (device-synchronised) step times. hapgpu's
Numba kernels are compiled beforehand on a tiny visit (compilation is cached on disk).

The installed stsci.skypac cannot run ``skymethod="match"`` with spherical_geometry >= 1.4
(AstroDrizzle then silently falls back to ``localmin``); the reference run restores the
missing method so both sides do the same work (``--no-shim`` leaves it broken).

Usage::

    python benchmarks/bench_astrodrizzle.py [--size 0|512|...] [--backend cpu|gpu]
        [--pars wfc3_uvis_n2] [--instrument wfc3-uvis] [--n-exposures 4] [--no-reference]

Prints one table: per step, drizzlepac and hapgpu wall times and their ratio.
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

import numpy as np

STEPS = ("read", "static", "sky", "driz_separate", "median", "blot", "driz_cr", "driz_combine+write")
_REFERENCE_STEPS = {
    ("processInput", "setCommonInput"): "read",
    ("staticMask", "createStaticMask"): "static",
    ("sky", "subtractSky"): "sky",
    ("adrizzle", "drizSeparate"): "driz_separate",
    ("createMedian", "createMedian"): "median",
    ("ablot", "runBlot"): "blot",
    ("drizCR", "rundrizCR"): "driz_cr",
    ("adrizzle", "drizFinal"): "driz_combine+write",
}


def _drizzlepac_kwargs(params) -> dict:
    """AstroDrizzle keyword arguments from hapgpu's parameters (hapgpu-only ones left out)."""
    from hapgpu.astrodrizzle._parameters import HAPGPU_ONLY_PARAMETERS

    kw = {k: v for k, v in params.to_dict().items() if k not in HAPGPU_ONLY_PARAMETERS}
    for key, value in kw.items():
        if isinstance(value, list):
            kw[key] = f"{value[0]} {value[1]}"
    for key in ("sky_bits", "driz_sep_bits", "final_bits", "resetbits"):
        kw[key] = None if kw[key] is None else str(kw[key])
    return kw


def run_reference(inputs: list[Path], params, shim: bool) -> tuple[float, dict]:
    """drizzlepac's AstroDrizzle (in memory, one core): wall time and per-step times."""
    from drizzlepac import astrodrizzle as adriz
    from spherical_geometry.polygon import SphericalPolygon

    times: dict = {}
    originals = []
    for (module_name, func_name), step in _REFERENCE_STEPS.items():
        module = getattr(adriz, module_name)
        original = getattr(module, func_name)

        def timed(*args, _original=original, _step=step, **kwargs):
            t0 = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                times[_step] = times.get(_step, 0.0) + time.perf_counter() - t0

        setattr(module, func_name, timed)
        originals.append((module, func_name, original))
    had = hasattr(SphericalPolygon, "iter_polygons_flat")
    if shim and not had:
        SphericalPolygon.iter_polygons_flat = lambda self: iter(self)
    cwd = os.getcwd()
    os.chdir(inputs[0].parent)
    try:
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            adriz.AstroDrizzle([p.name for p in inputs], output="ref", runfile="", num_cores=1, in_memory=True,
                               clean=True, build=True, updatewcs=False, mdriztab=False, preserve=False,
                               **_drizzlepac_kwargs(params))
        wall = time.perf_counter() - t0
    finally:
        os.chdir(cwd)
        for module, func_name, original in originals:
            setattr(module, func_name, original)
        if shim and not had:
            del SphericalPolygon.iter_polygons_flat
    return wall, times


def run_hapgpu(inputs: list[Path], params, backend: str) -> tuple[float, dict, Path]:
    from hapgpu.astrodrizzle import astrodrizzle

    t0 = time.perf_counter()
    result = astrodrizzle(inputs, inputs[0].parent / "ours", backend=backend, pars=params, progress=False)
    wall = time.perf_counter() - t0
    steps = dict(result.timings)
    steps["driz_combine+write"] = steps.pop("driz_combine", 0.0) + steps.pop("write", 0.0)
    return wall, steps, result.product


def _agreement(ours: Path, ref_dir: Path) -> str:
    from astropy.io import fits

    ref = ref_dir / ours.name.replace("ours_", "ref_")
    if not ref.exists():
        return "no reference product"
    with fits.open(ours) as a, fits.open(ref) as b:
        sci, wht, rsci, rwht = (h["SCI"].data.astype(float) if k == 0 else h["WHT"].data.astype(float)
                                for h in (a, b) for k in (0, 1))
    good = (wht > 0) & (rwht > 0)
    noise = 1.4826 * np.median(np.abs(rsci[good] - np.median(rsci[good])))
    ok = np.abs(sci - rsci)[good] <= 1e-4 * np.abs(rsci[good]) + 1e-3 * noise
    return f"final SCI agrees (1e-4 rel + 1e-3 noise) on {ok.mean():.5f} of the pixels with weight"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=0, help="subarray size of every chip (0 = full size)")
    parser.add_argument("--instrument", default="wfc3-uvis", choices=("wfc3-uvis", "wfc3-ir", "acs-hrc"))
    parser.add_argument("--n-exposures", type=int, default=4)
    parser.add_argument("--pars", default="wfc3_uvis_n2", help="hapgpu parameter set or file")
    parser.add_argument("--backend", default="cpu", choices=("cpu", "gpu", "auto"))
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--no-reference", action="store_true", help="time hapgpu only")
    parser.add_argument("--no-shim", action="store_true", help="leave skypac's match broken in drizzlepac")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    import numba

    import hapgpu
    from hapgpu.astrodrizzle import resolve_parameters
    from hapgpu.simulate import simulate_visit

    params = resolve_parameters(args.pars)
    work = Path(tempfile.mkdtemp(prefix="hapgpu-bench-ad-"))
    try:
        warm = simulate_visit(work / "warm", args.instrument, 2, seed=1, shape=64)
        run_hapgpu(warm.files, params, args.backend)  # compile the kernels (cached on disk)
        t0 = time.perf_counter()
        visit = simulate_visit(work / "visit", args.instrument, args.n_exposures, seed=args.seed,
                               shape=None if args.size == 0 else args.size)
        t_sim = time.perf_counter() - t0
        shutil.copytree(visit.outdir, work / "ours")
        ours_inputs = sorted((work / "ours").glob("*_fl?.fits"))
        ours_wall, ours_steps, product = run_hapgpu(ours_inputs, params, args.backend)
        ref_wall, ref_steps = None, {}
        if not args.no_reference:
            shutil.copytree(visit.outdir, work / "ref")
            ref_wall, ref_steps = run_reference(sorted((work / "ref").glob("*_fl?.fits")), params,
                                                shim=not args.no_shim)
        from astropy.io import fits

        with fits.open(ours_inputs[0]) as hdul:
            shape = hdul["SCI", 1].data.shape
        print(f"# AstroDrizzle benchmark: {args.n_exposures} x {args.instrument} exposures, "
              f"chips {shape[1]}x{shape[0]}, parameter set {args.pars!r} (simulated in {t_sim:.1f} s)")
        print(f"# host {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"numba threads {numba.get_num_threads()}, python {sys.version.split()[0]}, hapgpu {hapgpu.__version__}, "
              f"backend {args.backend}; drizzlepac in-memory, num_cores=1")
        print(f"{'step':<20}{'drizzlepac s':>14}{'hapgpu s':>12}{'ratio':>9}")
        for step in STEPS:
            ref = ref_steps.get(step)
            ours = ours_steps.get(step, 0.0)
            ratio = f"{ref / ours:8.1f}x" if ref and ours > 0 else "       -"
            print(f"{step:<20}{(f'{ref:.2f}' if ref is not None else '-'):>14}{ours:>12.2f}{ratio:>9}")
        ratio = f"{ref_wall / ours_wall:8.1f}x" if ref_wall else "       -"
        print(f"{'end to end':<20}{(f'{ref_wall:.2f}' if ref_wall else '-'):>14}{ours_wall:>12.2f}{ratio:>9}")
        if ref_wall:
            print(f"# {_agreement(product, work / 'ref')}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
