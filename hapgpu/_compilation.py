"""Kernel compilation as the user sees it: one notice on a cold cache, and ``hapgpu warmup``.

hapgpu's CPU kernels are compiled by Numba the first time each is used and cached on disk (see
:mod:`hapgpu.kernels._cache`: a per-user folder keyed by the kernel source). A first run
therefore spends time compiling; :func:`announce_compilation` says so once, and
:func:`warmup` compiles every kernel of the pipeline ahead of time (the Docker image runs it at
build time, so a container starts warm).
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["announce_compilation", "warmup", "WarmupReport"]

log = logging.getLogger("hapgpu")

_listener = None


def announce_compilation() -> None:
    """Log "compiling kernels (first run only, cached in ...)" when hapgpu first compiles.

    Registers a Numba compile-event listener once per process (idempotent, cheap); the message
    is logged at the first compilation of a hapgpu kernel, i.e. only on a cold cache.
    """
    global _listener
    if _listener is not None:
        return
    from numba.core import event

    from .kernels._cache import cache_dir

    class _FirstCompile(event.Listener):
        said = False

        def on_start(self, ev):
            if self.said:
                return
            func = getattr(ev.data.get("dispatcher"), "py_func", None)
            if getattr(func, "__module__", "").startswith("hapgpu."):
                self.said = True
                log.info("compiling kernels (first run only, cached in %s)", cache_dir())

        def on_end(self, ev):
            pass

    _listener = _FirstCompile()
    event.register("numba:compile", _listener)


@dataclass
class WarmupReport:
    """What :func:`warmup` compiled: seconds per group, and where the cache is."""

    backend: str
    cache_dir: Path
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


def _warm_resampling(backend, workdir: Path) -> None:
    from astropy.wcs import WCS

    from .kernels.blot import INTERP_IDS
    from .kernels.drizzle import KERNEL_IDS
    from .resample import Drizzle, PixelMap, blot

    def tan(n, rot_deg):
        w = WCS(naxis=2)
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        w.wcs.crval = [10.0, 20.0]
        w.wcs.crpix = [n / 2.0, n / 2.0]
        th = np.deg2rad(rot_deg)
        w.wcs.cd = 1e-5 * np.array([[-np.cos(th), np.sin(th)], [np.sin(th), np.cos(th)]])
        return w

    n = 24
    data = np.ones((n, n), np.float32)
    for stepsize in (10, 0):
        pmap = PixelMap.from_wcs(tan(n, 0.0), tan(n, 10.0), (n, n), stepsize=stepsize)
        for kernel in KERNEL_IDS:
            drz = Drizzle((n, n), kernel=kernel, backend=backend)
            drz.add_image(data, pmap, in_units="counts", exptime=2.0,
                          error=data, dq=np.zeros((n, n), np.int32))
            drz.add_image(data, pmap)
            drz.sci  # noqa: B018  (finishing pass)
        for interp in INTERP_IDS:
            blot(data, pmap, interp=interp, backend=backend)


def _warm_astrodrizzle(backend, workdir: Path) -> None:
    from .astrodrizzle import astrodrizzle
    from .simulate import simulate_visit

    visit = simulate_visit(workdir / "visit", n_exposures=3, seed=1, shape=64)
    files = [str(e.path) for e in visit.exposures]
    for combine_type in ("minmed", "median"):
        astrodrizzle(files, workdir / f"warm_{combine_type}", backend=backend, pars="wfc3_uvis_n2",
                     combine_type=combine_type, update_inputs_dq=False, progress=False)


def _warm_detection(backend, workdir: Path) -> None:
    from . import detection as det

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64]
    image = rng.normal(10.0, 1.0, (64, 64))
    for x0, y0 in ((20, 20), (40, 45), (44, 47)):
        image += 200.0 * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / 4.0)
    for data in (image.astype(np.float32), image):
        det.sigma_clipped_stats(data, backend=backend)
        bkg = det.Background2D(data, (16, 16), backend=backend)
        sub = data - bkg.background
        segm = det.detect_sources(sub, 5.0, n_pixels=5, backend=backend)
        if segm is not None:
            segm = det.deblend_sources(sub, segm, n_pixels=5, progress_bar=False, backend=backend)
            det.SourceCatalog(sub, segm, backend=backend).to_table()
        det.DAOStarFinder(5.0, 2.5, backend=backend)(sub)
        det.IRAFStarFinder(5.0, 2.5, backend=backend)(sub)
        det.user_star_finder(sub, [(20, 20), (40, 45)], 2.5, backend=backend)
        det.aperture_photometry(sub, det.CircularAperture([(20.0, 20.0)], 3.0), backend=backend)
        det.aperture_stats_tbl(sub, det.CircularAnnulus([(20.0, 20.0)], 4.0, 8.0),
                               backend=backend)


def warmup(backend=None, *, progress: bool = True) -> WarmupReport:
    """Compile every kernel of the pipeline now, so that later runs start warm.

    Runs the resampling kernels (every drizzle kernel, exact and tabulated pixel maps, every
    blot interpolant), the AstroDrizzle chain (both combine types) on a tiny simulated visit,
    and the detection primitives, on small arrays in a temporary folder.

    Parameters
    ----------
    backend : str or Backend, optional
        ``cpu``, ``gpu``, ``cudasim`` or ``auto`` (None reads ``HAPGPU_BACKEND``). Only CPU
        kernels are cached on disk; on ``gpu`` this compiles the CUDA kernels of this process.
    progress : bool
        Show a progress bar (rich).

    Returns
    -------
    WarmupReport
    """
    from .backend import resolve_backend
    from .kernels._cache import cache_dir

    backend = resolve_backend(backend)
    report = WarmupReport(backend=backend.name, cache_dir=cache_dir())
    groups = (("resampling", _warm_resampling), ("AstroDrizzle chain", _warm_astrodrizzle),
              ("detection", _warm_detection))
    from rich.progress import Progress

    with tempfile.TemporaryDirectory(prefix="hapgpu-warmup-") as tmp, \
            Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("compiling kernels", total=len(groups))
        for name, run in groups:
            bar.update(task, description=f"compiling kernels: {name}")
            start = time.perf_counter()
            run(backend, Path(tmp))
            report.seconds[name] = time.perf_counter() - start
            bar.advance(task)
    return report


def register(subparsers) -> None:
    """Add the ``warmup`` subcommand."""
    p = subparsers.add_parser(
        "warmup", help="compile every kernel now (later runs start warm)",
        description="Compile hapgpu's kernels ahead of time on small inputs: every drizzle kernel "
                    "and blot interpolant, the AstroDrizzle chain and the detection primitives. "
                    "CPU kernels are cached on disk ($HAPGPU_CACHE_DIR, else $NUMBA_CACHE_DIR/hapgpu, "
                    "else the per-user cache folder).")
    p.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    p.set_defaults(func=_run_warmup)


def _run_warmup(args) -> int:
    report = warmup(progress=not args.no_progress)
    timing = ", ".join(f"{name} {sec:.1f} s" for name, sec in report.seconds.items())
    print(f"kernels ready on {report.backend} in {report.total_seconds:.1f} s ({timing}); "
          f"cache: {report.cache_dir}")
    return 0
