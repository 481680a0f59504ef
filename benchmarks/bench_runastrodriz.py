"""Benchmark ``hapgpu runastrodriz`` through its whole stage sequence on a simulated association.

A WFC3/UVIS association (``hapgpu.simulate``, ``association=True``; default: 4 full-size
F555W exposures) with a known a priori WCS error (0.49 arcsec, 0.02 deg, common to the visit:
the active WCS is the a priori ``<base>-GSC240``, the pipeline default attached as a headerlet)
is processed by ``hapgpu.runastrodriz.process`` with the simulator's Gaia-like catalogue
(``--refcat refcat.ecsv``), every stage on: initialisation (trailer, inputs, DRIZCORR,
S_REGION, pipeline-default WCS, SKYCELL, parameters), the verification of the pipeline-default
WCS, the a priori stage, the a posteriori stage (fit + verification) and the final products
(final drizzle, WCSTYPE, headerlets, clean-up). Stage times come from wrapping
``verify_alignment`` (one call per stage): initialisation is the time before the first call,
the final products the time after the last one. hapgpu's kernels are compiled beforehand on a
tiny association (compilation is cached on disk).

drizzlepac's own ``runastrodriz.process`` cannot run offline: it needs CRDS reference files
(updatewcs, MDRIZTAB, the IDCTAB/NPOL/D2IM files named in the headers) and the network (the
astrometry database for a priori solutions, the catalogue service), so no stage-by-stage
comparison is made. The reference line is drizzlepac's ``AstroDrizzle`` with runastrodriz's
final settings (the MDRIZTAB row and ``PIPELINE_PARS``) on a copy of the same inputs with the
same final WCS: the one drizzle of the sequence drizzlepac can run here, beside hapgpu's final
products stage (``--no-reference`` skips it).

Usage::

    python benchmarks/bench_runastrodriz.py [--size 0|512|...] [--n-exposures 4]
        [--backend cpu|gpu] [--no-reference] [--workdir DIR]

Prints the chosen WCS and one table: per stage the hapgpu wall time, then the whole run and the
reference line.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
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

STAGES = ("initialisation", "pipeline-default verification", "a priori", "a posteriori",
          "final products")
REPO = Path(__file__).resolve().parents[1]


def _simulate(folder: Path, n: int, size: int, seed: int):
    """The association; subarrays get a denser star field (6000 per ``(400 px)**2``-chip
    equivalent, as ``tests/align``), so that the a posteriori fit finds its 12 matches."""
    from hapgpu.simulate import WCSPerturbation, simulate_visit

    shape = None if size == 0 else (size, size)
    density = None if size == 0 or size >= 1024 else 6000.0 * (400.0 / size) ** 2
    return simulate_visit(folder, "wfc3-uvis", n, shape=shape, seed=seed, star_density=density,
                          wcs_error=WCSPerturbation((0.35, -0.35), rotation_deg=0.02),
                          association=True)


def _copy(visit, dest: Path) -> Path:
    """The visit's files (not its truth folder) copied into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in Path(visit.outdir).iterdir():
        if path.is_file():
            shutil.copy2(path, dest / path.name)
    return dest


def run_ours(asn: Path, refcat: Path, backend: str) -> tuple[int, float, dict]:
    """``process(asn, refcat=refcat)`` with every stage timed: (exit code, wall, stage times)."""
    from hapgpu.runastrodriz import _verify, process

    calls = []
    real = _verify.verify_alignment

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            calls.append((kwargs["mode"], t0, time.perf_counter()))

    _verify.verify_alignment = timed
    try:
        t0 = time.perf_counter()
        code = process(asn, refcat=refcat, backend=backend)
        t1 = time.perf_counter()
    finally:
        _verify.verify_alignment = real
    times = {}
    if calls:
        times["initialisation"] = calls[0][1] - t0
        previous = calls[0][1]
        names = {"default-pipeline": "pipeline-default verification", "apriori": "a priori",
                 "aposteriori": "a posteriori"}
        for mode, _, end in calls:  # a stage runs from the end of the one before
            times[names[mode]] = end - previous
            previous = end
        times["final products"] = t1 - previous
    return code, t1 - t0, times


def run_reference(files, output: str) -> float:
    """drizzlepac AstroDrizzle with runastrodriz's final settings on ``files`` (in their folder,
    with the WCS they carry); the wall time."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from compare_runastrodriz_real_hrc import drizzlepac_kwargs
    from drizzlepac import astrodrizzle as adriz

    from hapgpu.runastrodriz._pars import final_parameters

    kwargs = drizzlepac_kwargs(final_parameters(files, in_memory=True))
    folder = Path(files[0]).parent
    cwd = os.getcwd()
    saved = {k: os.environ.pop(k) for k in ("iref", "jref", "CRDS_PATH", "CRDS_SERVER_URL")
             if k in os.environ}
    t0 = time.perf_counter()
    logging.disable(logging.WARNING)  # drizzlepac's warnings about the files it leaves open
    try:
        os.chdir(folder)
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            adriz.AstroDrizzle([Path(f).name for f in files], output=output, runfile="",
                               num_cores=1, build=True, updatewcs=False, mdriztab=False,
                               in_memory=False, clean=True, preserve=False, **kwargs)
            elapsed = time.perf_counter() - t0
            gc.collect()  # the files drizzlepac left open, closed while its warnings are off
    finally:
        os.chdir(cwd)
        os.environ.update(saved)
        logging.disable(logging.NOTSET)
    return elapsed


def _warm_up(folder: Path, backend: str) -> None:
    """Compile the kernels on a tiny association (cached on disk for the timed run)."""
    from hapgpu.runastrodriz import process

    visit = _simulate(folder / "sim", 2, 96, 2)
    (asn,) = visit.associations
    process(asn.asn, refcat=Path(visit.outdir) / "refcat.ecsv", backend=backend)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=0, help="subarray size (0: full chips)")
    parser.add_argument("--n-exposures", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--backend", default="cpu", choices=("cpu", "gpu", "cudasim", "auto"))
    parser.add_argument("--no-reference", action="store_true",
                        help="skip drizzlepac's AstroDrizzle reference line")
    parser.add_argument("--workdir", default=None, help="keep the files here (default: a temp folder)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for handler in logging.getLogger().handlers:  # the pipeline logs at INFO into its trailer
        handler.setLevel(logging.WARNING)
    warnings.simplefilter("ignore")
    for name in ("ASTROMETRY_APPLY_APRIORI", "ASTROMETRY_COMPUTE_APOSTERIORI",
                 "PIPELINE_RESET_IDCTAB", "PIPELINE_QUALITY_TESTING"):
        os.environ.pop(name, None)

    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench_rad_"))
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    visit = _simulate(root / "sim", args.n_exposures, args.size, args.seed)
    print(f"simulated {args.n_exposures} exposures in {time.perf_counter() - t0:.1f} s")
    _warm_up(root / "warmup", args.backend)
    work = _copy(visit, root / "hapgpu")
    (asn,) = visit.associations
    code, wall, times = run_ours(work / asn.asn.name, work / "refcat.ecsv", args.backend)
    if code != 0:
        print(f"hapgpu runastrodriz exited with {code}; see {work / (asn.asn_id + '.tra')}")
        return 1
    files = [work / f.name for f in visit.files]

    from astropy.io import fits

    from hapgpu.backend import resolve_backend

    wcsname = fits.getval(files[0], "WCSNAME", ext=("SCI", 1))
    ref_wall = None
    if not args.no_reference:
        ref_dir = root / "drizzlepac"
        ref_dir.mkdir(exist_ok=True)
        ref_files = [Path(shutil.copy2(f, ref_dir / f.name)) for f in files]
        ref_wall = run_reference(ref_files, asn.asn_id)

    backend = resolve_backend(args.backend)
    print(f"# runastrodriz: WFC3/UVIS association of {args.n_exposures} exposures, size "
          f"{'full' if args.size == 0 else args.size}, a priori error 0.49\"/0.02 deg, local "
          f"catalogue; backend {backend.name}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"# final WCS: {wcsname}")
    print(f"{'stage':<32} {'hapgpu s':>9}")
    for stage in STAGES:
        value = times.get(stage)
        print(f"{stage:<32} {'-' if value is None else f'{value:.2f}':>9}")
    print(f"{'whole run':<32} {wall:>9.2f}")
    if ref_wall is not None:
        print(f"{'drizzlepac AstroDrizzle, final':<32} {ref_wall:>9.2f}   (reference: the final "
              "drizzle alone, same inputs and settings; compare with 'final products')")
    if not args.workdir:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
