"""Benchmark ``hapgpu mvm`` against drizzlepac's ``runmultihap``: wall time and peak memory.

Two cases, each run by both sides on copies of the same simulated exposures:

``comparison``
    The set of the end-to-end reference test (``tests/mvm/test_mvm_reference.py``,
    ``tests/mvm/_cell_inputs.py``) at full chip size: two WFC3/UVIS F555W visits of two
    exposures straddling the boundary of ``skycell-p0121x12y16`` and ``skycell-p0121x13y16``,
    a WFC3/IR F160W visit of two exposures (coarse and fine layers) and one UVIS exposure
    listed as OLD; one poller per cell. hapgpu runs both pollers in one call, drizzlepac one
    after the other.
``full``
    ``--n-visits`` WFC3/UVIS F555W visits of two exposures each, pointed on a grid spanning
    one fine sky cell (``skycell-p0121x12y16``), so that the bounded frame is nearly the whole
    21954 x 21954 cell; one poller.

Each side runs in a subprocess of its own (``os.wait4`` gives that process tree's peak
resident memory, ``ru_maxrss``); the wall time is measured inside it around the processing
call only (the input copies are made beforehand). hapgpu's kernels are compiled before the
timed runs on a tiny cell (the compilation is cached on disk). drizzlepac runs with the
test-only shims of ``tests/svm/_reference.py`` (drizzlepac 3.11 with photutils 3; values
untouched) and, like ``runmultihap``, without alignment.

Usage::

    python benchmarks/bench_mvm.py [--case comparison|full|all] [--size N] [--n-visits 8]
        [--backend cpu|gpu] [--no-reference] [--profile FILE] [--workdir DIR]

``--size N`` reads out N x N subarrays of each chip (IR: ``N // 2``, at least 32) instead of full chips: a
quick run. In the ``full`` case the pointings still span the cell, so the output frame stays
nearly the full cell while the inputs shrink.

``--profile FILE`` writes a cProfile of hapgpu's timed call to ``FILE.<case>`` (read it with
``python -m pstats``); ``--no-reference`` skips drizzlepac.

Prints one table: per case, hapgpu and drizzlepac wall seconds, their ratio, and the peak
resident memory of each side; each side's line also gives the 1-minute load average before and
after it ran (on a shared machine the ratio is only as good as the load was steady).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FULL_CELL = "skycell-p0121x12y16"


def _repo_on_path() -> None:
    """The repository root on ``sys.path`` (the tests' input makers and drizzlepac shims)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


# --------------------------------------------------------------------------- inputs
def make_comparison(folder: Path, size: int | None) -> list[Path]:
    """The reference test's exposures (full chips unless ``size``) and one poller per cell."""
    _repo_on_path()
    from tests.mvm._cell_inputs import CELL, NEIGHBOUR, make_exposures, write_mvm_poller

    inputs = folder / "in"
    inputs.mkdir(parents=True)
    rows = make_exposures(inputs, uvis_shape=size, ir_shape=None if size is None else max(32, size // 2),
                          second_uvis=True, ir=True, old=True)
    return [write_mvm_poller(folder / f"{cell}_input.out", rows, cell) for cell in (CELL, NEIGHBOUR)]


def full_cell_pointings(n_visits: int, cell_name: str = FULL_CELL, margin: float = 0.1) -> list:
    """(ra, dec) of ``n_visits`` pointings on a grid over a fine sky cell.

    The grid has ``ceil(sqrt(n))`` columns; its outer pointings lie ``margin`` of the cell's
    side inside its edges (0.1 of 21954 pixels = 88", about half a UVIS chip), so the
    exposures together reach close to every edge.
    """
    import numpy as np

    from hapgpu.skycells import SkyCell

    cell = SkyCell.from_name(cell_name, scale="fine")
    ny, nx = cell.shape
    n_cols = math.ceil(math.sqrt(n_visits))
    n_rows = math.ceil(n_visits / n_cols)
    xs = np.linspace(margin, 1 - margin, n_cols) if n_cols > 1 else np.array([0.5])
    ys = np.linspace(margin, 1 - margin, n_rows) if n_rows > 1 else np.array([0.5])
    grid = [(x, y) for y in ys for x in xs][:n_visits]
    return [tuple(float(v) for v in cell.wcs.pixel_to_world_values(x * (nx - 1), y * (ny - 1)))
            for x, y in grid]


def make_full_cell(folder: Path, n_visits: int, size: int | None) -> list[Path]:
    """``n_visits`` UVIS visits of two F555W exposures over :data:`FULL_CELL`; its poller."""
    _repo_on_path()
    from hapgpu.simulate import simulate_visit
    from tests.mvm._cell_inputs import write_mvm_poller

    inputs = folder / "in"
    inputs.mkdir(parents=True)
    rows = []
    for index, target in enumerate(full_cell_pointings(n_visits), start=1):
        visit = f"{index:02d}"
        result = simulate_visit(inputs / f"raw{visit}", "wfc3-uvis", 2, filters=["F555W"], shape=size,
                                seed=index, visit=visit, target=target, progress=False)
        for record in result.exposures:
            suffix = record.path.name.split("_")[-1]
            name = f"hst_17001_{visit}_wfc3_uvis_f555w_{record.rootname[:8]}_{suffix}"
            shutil.copyfile(record.path, inputs / name)
            (record.path).unlink()
            rows.append((name, inputs / name, visit, "UVIS", "F555W", record.exptime, True))
    return [write_mvm_poller(folder / f"{FULL_CELL}_input.out", rows, FULL_CELL)]


def copy_inputs(pollers: list[Path], dest: Path) -> list[Path]:
    """Each poller's exposures copied into ``dest`` (shared by the pollers), pollers pointing there."""
    dest.mkdir(parents=True)
    copies = []
    for poller in pollers:
        lines = []
        for line in poller.read_text().splitlines():
            fields = line.split(",")
            if not (dest / fields[0]).exists():
                shutil.copyfile(fields[-1], dest / fields[0])
            fields[-1] = str(dest / fields[0])
            lines.append(",".join(fields))
        copy = dest / poller.name
        copy.write_text("\n".join(lines) + "\n")
        copies.append(copy)
    return copies


# --------------------------------------------------------------------------- one side (subprocess)
def _side_ours(pollers: list[Path], out: Path, backend: str, profile: str | None = None) -> dict:
    from hapgpu.mvm import run_mvm

    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    t0 = time.perf_counter()
    code = run_mvm(pollers, out, backend=backend, progress=False)
    wall = time.perf_counter() - t0
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    return {"wall": wall, "code": int(code)}


def _side_reference(pollers: list[Path]) -> dict:
    import contextlib
    import io

    _repo_on_path()
    from drizzlepac import hapmultisequencer

    from tests.svm._reference import drizzlepac_environment

    wall, codes = 0.0, []
    for poller in pollers:  # runmultihap takes one poller, in the folder of its files
        with drizzlepac_environment(poller.parent), contextlib.redirect_stdout(io.StringIO()):
            t0 = time.perf_counter()
            codes.append(int(hapmultisequencer.run_mvm_processing(poller.name, skip_gaia_alignment=True)))
            wall += time.perf_counter() - t0
    return {"wall": wall, "code": max(codes, key=abs)}


def _run_side(argv) -> int:
    """Entry point of the subprocess: ``--side ours|drizzlepac --result FILE POLLER...``."""
    import logging

    parser = argparse.ArgumentParser()
    parser.add_argument("--side", choices=("ours", "drizzlepac"), required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--out")
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--profile")
    parser.add_argument("pollers", nargs="+")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for handler in logging.getLogger().handlers:  # the pipelines log at INFO into their trailers
        handler.setLevel(logging.WARNING)
    warnings.simplefilter("ignore")
    pollers = [Path(p) for p in args.pollers]
    if args.side == "ours":
        result = _side_ours(pollers, Path(args.out), args.backend, args.profile)
    else:
        result = _side_reference(pollers)
    Path(args.result).write_text(json.dumps(result))
    return 0


def measure(side: str, pollers: list[Path], folder: Path, backend: str, profile: Path | None = None) -> dict:
    """Run one side in a subprocess; its wall time, exit status and peak RSS (bytes).

    ``profile``: write a cProfile of the timed call there (hapgpu side only).
    """
    result = folder / f"{side}_result.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--side", side, "--result", str(result),
               "--backend", backend, "--out", str(folder / f"{side}_out")]
    if profile is not None:
        command += ["--profile", str(Path(profile).resolve())]
    command += [str(p) for p in pollers]
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    with open(folder / f"{side}.log", "w") as log:  # drizzlepac prints its whole log
        process = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0 or not result.exists():
        raise RuntimeError(f"{side}: the benchmark subprocess failed (exit status {process.returncode}); "
                           f"see {folder / f'{side}.log'}")
    values = json.loads(result.read_text())
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    values["peak_rss"] = usage.ru_maxrss * scale
    values["load"] = (load_before, load_after)  # 1-minute load averages: the machine may be shared
    return values


def _warm_up(folder: Path, backend: str) -> None:
    """Compile hapgpu's kernels on the reference test's tiny cell (cached on disk)."""
    pollers = make_comparison(folder / "sim", 48)
    measure("ours", pollers[:1], folder, backend)
    shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- main
def _gib(n_bytes) -> str:
    return "-" if n_bytes is None else f"{n_bytes / 2 ** 30:.2f}"


def _load(values) -> str:
    """``before -> after``: the 1-minute load averages around a side's run."""
    before, after = values.get("load", (None, None))
    return "-" if before is None else f"{before:.1f} -> {after:.1f}"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--side"]:
        return _run_side(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="comparison", choices=("comparison", "full", "all"))
    parser.add_argument("--size", type=int, default=0, help="subarray size (0: full chips)")
    parser.add_argument("--n-visits", type=int, default=8, help="visits of the full-cell case")
    parser.add_argument("--backend", default="cpu", choices=("cpu", "gpu", "cudasim", "auto"))
    parser.add_argument("--no-reference", action="store_true", help="time hapgpu only")
    parser.add_argument("--profile", default=None, metavar="FILE",
                        help="cProfile the hapgpu side into FILE (per case: FILE.<case>); the "
                             "profiler slows it, so the ratio is not representative")
    parser.add_argument("--workdir", default=None, help="keep the files here (default: a temp folder)")
    args = parser.parse_args(argv)
    if args.n_visits < 1:
        parser.error("--n-visits must be at least 1")
    warnings.simplefilter("ignore")
    size = None if args.size == 0 else args.size
    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench_mvm_"))
    root.mkdir(parents=True, exist_ok=True)

    cases = ("comparison", "full") if args.case == "all" else (args.case,)
    rows = []
    for case in cases:
        folder = root / case
        t0 = time.perf_counter()
        if case == "comparison":
            pollers = make_comparison(folder, size)
            label = "comparison (2 UVIS + 1 IR visits, 2 cells)"
        else:
            pollers = make_full_cell(folder, args.n_visits, size)
            label = f"full cell ({args.n_visits} UVIS visits x 2)"
        n_files = len({line.split(",")[0] for p in pollers for line in p.read_text().splitlines()})
        print(f"{case}: simulated {n_files} exposures in {time.perf_counter() - t0:.1f} s", flush=True)
        _warm_up(folder / "warmup", args.backend)  # just before: the cache key follows the kernel sources
        profile = None if args.profile is None else Path(f"{args.profile}.{case}")
        ours = measure("ours", copy_inputs(pollers, folder / "ours_in"), folder, args.backend, profile)
        if ours["code"] != 0:
            raise RuntimeError(f"{case}: run_mvm returned {ours['code']}")
        print(f"{case}: hapgpu {ours['wall']:.1f} s, peak RSS {_gib(ours['peak_rss'])} GiB, "
              f"load {_load(ours)}", flush=True)
        shutil.rmtree(folder / "ours_in", ignore_errors=True)
        theirs = None
        if not args.no_reference:
            theirs = measure("drizzlepac", copy_inputs(pollers, folder / "drizzlepac_in"), folder, "cpu")
            if theirs["code"] != 0:
                raise RuntimeError(f"{case}: runmultihap returned {theirs['code']}")
            print(f"{case}: drizzlepac {theirs['wall']:.1f} s, peak RSS {_gib(theirs['peak_rss'])} GiB, "
                  f"load {_load(theirs)}", flush=True)
            shutil.rmtree(folder / "drizzlepac_in", ignore_errors=True)
        rows.append((label, ours, theirs))

    from hapgpu.backend import resolve_backend

    backend = resolve_backend(args.backend)
    print(f"# MVM: size {'full chips' if size is None else size}; backend {backend.name}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}")
    print(f"{'case':<44} {'hapgpu s':>9} {'drizzlepac s':>13} {'ratio':>7} "
          f"{'hapgpu GiB':>11} {'drizzlepac GiB':>15}")
    for label, ours, theirs in rows:
        ref_wall = None if theirs is None else theirs["wall"]
        ratio = f"{ref_wall / ours['wall']:6.1f}x" if ref_wall else "      -"
        print(f"{label:<44} {ours['wall']:>9.1f} {'-' if ref_wall is None else f'{ref_wall:.1f}':>13} "
              f"{ratio:>7} {_gib(ours['peak_rss']):>11} "
              f"{_gib(None if theirs is None else theirs['peak_rss']):>15}")
    if not args.workdir:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
