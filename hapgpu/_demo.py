"""The built-in demo: simulate a two-filter visit and run the single-visit pipeline on it.

:func:`run_demo` writes a small HST visit with :func:`hapgpu.simulate.simulate_visit` (real
header templates, two filters, two dithered exposures per filter, a subarray of each chip by
default) into ``<outdir>/visit`` and runs :func:`hapgpu.svm.run_svm` on its poller into
``outdir``: the renamed input copies, the exposure, filter and total drizzled products, the
catalogs, trailers, previews and the manifest, with drizzlepac's ``runsinglehap`` names.

Alignment is off by default, so the demo runs offline. With ``align=True`` the simulator's
Gaia-like reference catalogue (``<outdir>/visit/refcat.ecsv``) is served to the alignment as a
local file; no network is used either way.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InvalidParameterError

if TYPE_CHECKING:
    from .simulate import VisitResult

__all__ = ["DEMO_FILTERS", "DEMO_SIZE", "DemoResult", "run_demo"]

log = logging.getLogger(__name__)

#: The two filters of the demo visit per instrument (common filters of each detector).
DEMO_FILTERS = {
    "wfc3-uvis": ("F555W", "F814W"),
    "wfc3-ir": ("F110W", "F160W"),
    "acs-wfc": ("F606W", "F814W"),
    "acs-hrc": ("F435W", "F606W"),
}

#: Default side of the chip subarray, pixels (about a minute of CPU time on 2 cores).
DEMO_SIZE = 512

#: Simulated program code and visit: the products are ``hst_17001_01_<instr>_<det>_...``.
_PROGRAM_ID = "sim"
_VISIT = "01"


@dataclass(frozen=True)
class DemoResult:
    """What :func:`run_demo` simulated and what the pipeline wrote.

    Attributes
    ----------
    outdir : pathlib.Path
        The output folder (products, manifest, trailers, previews).
    visit : hapgpu.simulate.VisitResult
        The simulated visit (under ``outdir/visit``: exposures, poller, ``refcat.ecsv``, truth).
    exit_code : int
        :func:`hapgpu.svm.run_svm`'s exit status (drizzlepac's: 0 success, 1 error, 65 no
        viable exposure, 15 keyword update problem).
    manifest : pathlib.Path or None
        The manifest file (``<instr>_sim_01_manifest.txt``); None when the run wrote none.
    products : tuple of pathlib.Path
        The files the manifest lists, in its order, then the JPEG previews of the drizzled
        products; empty when the run failed.
    """

    outdir: Path
    visit: VisitResult
    exit_code: int
    manifest: Path | None
    products: tuple[Path, ...]


def run_demo(outdir=None, *, instrument: str = "wfc3-uvis", exposures_per_filter: int = 2,
             size: int | None = DEMO_SIZE, seed: int = 1, align: bool = False, previews: bool = True,
             backend=None, log_level=None, progress: bool | None = None) -> DemoResult:
    """Simulate a two-filter visit and make its single-visit (SVM) products.

    Parameters
    ----------
    outdir : str or os.PathLike, optional
        Output folder, created if missing; default a new temporary folder. The simulated
        exposures go to ``outdir/visit``.
    instrument : {"wfc3-uvis", "wfc3-ir", "acs-wfc", "acs-hrc"}
        Instrument and detector; the filters are :data:`DEMO_FILTERS` of it.
    exposures_per_filter : int
        Dithered exposures per filter (1-49).
    size : int or None
        Side of the centred ``size x size`` subarray read out of each chip, pixels; None (or
        0) simulates full frames (WFC3/UVIS: two 2051x4096 chips per exposure, minutes of
        CPU time).
    seed : int
        Seed of the simulation (same seed, same files).
    align : bool
        Align the exposures to the simulated reference catalogue (``visit/refcat.ecsv``, a
        local file); False (default) keeps the exposures' WCS.
    previews : bool
        Write the JPEG previews.
    backend : {"cpu", "gpu", "cudasim", "auto"} or hapgpu.backend.Backend, optional
        Compute backend (None reads ``HAPGPU_BACKEND``), resolved before anything is written.
    log_level : str or int, optional
        Level of the pipeline's log (:func:`hapgpu.svm.run_svm`'s ``log_level``; None: ``info``,
        as runsinglehap).
    progress : bool, optional
        Show the pipeline's progress display (default: when stderr is a terminal); the
        simulation reports through the log only, so there is one display.

    Returns
    -------
    DemoResult

    Raises
    ------
    InvalidParameterError
        An unknown instrument, ``exposures_per_filter`` outside 1-49 or a negative ``size``.
    BackendUnavailableError
        The requested backend cannot run here (raised before anything is simulated).
    """
    from .backend import resolve_backend
    from .simulate import INSTRUMENTS, simulate_visit
    from .svm import run_svm
    from .svm._tree import manifest_filename

    # Everything that can be refused is checked before anything is simulated or written.
    if instrument not in DEMO_FILTERS:
        raise InvalidParameterError(f"instrument {instrument!r} is not one of "
                                    f"{', '.join(DEMO_FILTERS)}")
    if not 1 <= exposures_per_filter <= 49:  # the simulator writes at most 99 exposures
        raise InvalidParameterError(f"exposures per filter must be 1-49, got {exposures_per_filter}")
    if size is not None and size < 0:
        raise InvalidParameterError(f"size must be >= 0 (0 = full frames), got {size}")
    bk = resolve_backend(backend)
    outdir = Path(outdir) if outdir is not None else Path(tempfile.mkdtemp(prefix="hapgpu-demo-"))
    outdir.mkdir(parents=True, exist_ok=True)

    filters = DEMO_FILTERS[instrument]
    n_exposures = exposures_per_filter * len(filters)
    shape = size if size else None
    log.info("simulating a %d-exposure %s visit (%s, %s) in %s", n_exposures, instrument,
             " and ".join(filters), f"{size}x{size} subarrays" if shape else "full frames",
             outdir / "visit")
    visit = simulate_visit(outdir / "visit", instrument, n_exposures, filters=list(filters),
                           seed=seed, shape=shape, program_id=_PROGRAM_ID, visit=_VISIT,
                           progress=False)
    refcat = visit.refcat if align else None
    code = run_svm(visit.poller, outdir, refcat=refcat, align=align, previews=previews, backend=bk,
                   log_level=log_level, progress=progress)
    manifest = outdir / manifest_filename(INSTRUMENTS[instrument].instrument, _PROGRAM_ID, _VISIT)
    if code != 0 or not manifest.is_file():
        return DemoResult(outdir, visit, int(code), manifest if manifest.is_file() else None, ())
    listed = [outdir / name for name in manifest.read_text().split()]
    jpegs = [jpg for path in listed if path.name.endswith(("_drc.fits", "_drz.fits"))
             for jpg in sorted(outdir.glob(path.name[:-len(".fits")] + "*.jpg"))]
    colour = [jpg for jpg in sorted(outdir.glob("*_total_*-*_dr[cz]*.jpg")) if jpg not in jpegs]
    return DemoResult(outdir, visit, int(code), manifest, tuple(listed + jpegs + colour))
