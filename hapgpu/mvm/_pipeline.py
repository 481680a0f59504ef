"""``run_mvm``: sky-cell pollers in, the HAP multi-visit layer products out (drizzlepac ``runmultihap``).

:func:`run_mvm` follows drizzlepac's ``hapmultisequencer.run_mvm_processing`` (hap-pipeline.md
§2.3-§2.5) for each poller (one sky cell each):

1. read the poller (:func:`hapgpu.mvm.read_mvm_poller`: NEW/OLD rows, ``MVM_ONLY_CTE``,
   ``MVM_INCLUDE_SMALL``, the viability and guiding checks; nothing to process: 65 or 55) and
   build the layers (:func:`hapgpu.mvm.build_layers`). The guiding verdicts are kept for the
   whole run (:class:`hapgpu.mvm.GuidingCache`): an exposure listed by several pollers is
   checked once;
2. per layer: the cell's bounded frame at the layer's scale from every poller exposure (shared
   by every layer of that scale), the footprint keywords against the full cell (a layer whose
   exposures miss the cell is skipped with a warning), the parameters with n =
   ``round(MEANNEXP)``; alignment is skipped, as ``runmultihap`` always does;
3. the renamed input copies (``HAPLEVEL = 1``) of the layers' NEW exposures;
4. the drizzles: one task per group of layers that share renamed inputs (the coarse and fine
   layers of WFC3/IR and WFPC2 share theirs, and run in drizzlepac's order, coarse first; every
   other layer is a task of its own), the tasks of every poller together.
   Each task drizzles its layers, writes their keywords and refines their headers (a failure
   there: 15). :func:`hapgpu.scaleout.run_tasks` runs them: ``workers`` starts a local Dask
   cluster, ``scheduler`` uses a running one, neither runs them in this process, in order. A
   task reads its inputs where it runs (the staging folder must be visible to the workers);
5. per cell, once all of its tasks succeeded: the renamed inputs, unmodified, are deleted
   (kept in diagnostic mode; never in the manifest), the manifest ``<skycell>_manifest.txt`` is
   written (duplicates dropped and sorted, as drizzlepac's ``numpy.unique``), the run log is
   appended to every layer trailer, and everything is moved into the output folder.

Every file of a cell is written in a staging folder inside the output folder and moved into
place only when the whole cell has succeeded; a failed cell leaves nothing behind. The inputs
are never modified.

Speed: step 1 runs for every poller before step 2 of any. The renamed input copies (step 3,
hundreds of MB per cell) are made on host threads while the rest of the preparation goes on:
they start as soon as a poller's viable rows are known, before its guiding check (which
rarely rejects an exposure), from the layers those rows would give; once the layers to make
are known, a copy nobody needs is removed and a missing one started. The drizzle tasks start
when every copy is in place. A task of two layers (coarse and fine) reads its inputs once (one
:class:`hapgpu.astrodrizzle.VisitCache`), and unless the renamed inputs are kept (diagnostic
mode) the last layer of a task does not write its MDRIZSKY and DQ updates into them. The
products are the same as with the steps in sequence.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .._staging import StagedRun
from ..errors import HapGpuError, InvalidParameterError, WCSError
from ..svm._analyze import ExitCode

__all__ = ["LayerJob", "run_mvm"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- one cell's state
class _CellRun(StagedRun):
    """Staging folder, run log and layer bookkeeping of one sky cell."""

    def __init__(self, output_dir: Path, poller: Path, level: int):
        super().__init__(output_dir, poller, level, pipeline="mvm")
        self.manifest_name = None
        self.layers: list = []
        self.copies: dict = {}  # renamed input name -> Future of its copy
        self.jobs: list[LayerJob] = []
        self.groups: list[tuple] = []
        self.configs: list = []
        self.code = int(ExitCode.OK)


@dataclass(frozen=True)
class LayerJob:
    """Everything a worker needs to make one layer product (picklable; paths, not arrays).

    Attributes
    ----------
    layer : hapgpu.mvm.SkyCellLayer
    frame : hapgpu.mvm._products.CellFrame
        The bounded frame of the layer's cell and scale.
    footprint : hapgpu.mvm._products.LayerFootprint
        Its footprint keywords against the full cell.
    config : hapgpu.svm._config.HapConfig
        Its parameters (n = ``round(MEANNEXP)``).
    """

    layer: object
    frame: object
    footprint: object
    config: object = field(repr=False)


def drizzle_layers(jobs, folder, level: int = logging.INFO, backend=None, keep_inputs: bool = True) -> int:
    """Make the products of layers that share their renamed inputs, in order (one task).

    Parameters
    ----------
    jobs : sequence of LayerJob
    folder : str or pathlib.Path
        The cell's staging folder with the renamed inputs; products and trailers go there.
    level : int
        Lowest log level of the trailers.
    backend : str, optional
        Compute backend name (None: ``HAPGPU_BACKEND``, else automatic), resolved here, in the
        process that runs the task.
    keep_inputs : bool
        Whether the renamed inputs are kept after the task (diagnostic mode). When not, the
        last layer does not write its MDRIZSKY and DQ updates into them (AstroDrizzle's
        ``discard_inputs``): nothing reads them again before they are deleted.

    Notes
    -----
    Layers that share their inputs (the coarse and fine layers of WFC3/IR and WFPC2) share one
    :class:`hapgpu.astrodrizzle.VisitCache`: each input is read once per task, and the later
    layer sees the MDRIZSKY and DQ the earlier one wrote, as when it reads the files again
    (the products are the same).

    A task may run again after its worker died in the middle of it (Dask reschedules it): the
    files of its layers that an earlier attempt left in ``folder`` (products, trailers, the
    trailer log being written) are removed first, so that the trailers hold this attempt's
    records only. The renamed inputs an earlier attempt updated need no reset: every layer
    reads them as the later layer of a task does (AstroDrizzle resets the CR bits, ``resetbits``,
    and measures the sky again).

    Returns
    -------
    int
        0; 1 when a drizzle failed; 15 when a product's keywords could not be written
        (drizzlepac's ``KEYWORD_UPDATE_PROBLEM``). The error is logged, naming the file.
    """
    from ..astrodrizzle import VisitCache
    from ._products import drizzle_layer, layer_headers

    folder = Path(folder)
    _remove_earlier_attempt(jobs, folder)
    visit = VisitCache() if len(jobs) > 1 else None
    hapgpu_log = logging.getLogger("hapgpu")
    previous = hapgpu_log.level
    hapgpu_log.setLevel(level)
    try:
        from ..backend import resolve_backend

        bk = resolve_backend(backend)
        for index, job in enumerate(jobs):
            layer = job.layer
            log.info("CREATE DRIZZLE-COMBINED LAYER IMAGE: %s", layer.drizzle_filename)
            # the layer keywords and the HAPLEVEL 4 refinement go in before the product's one write
            final = layer_headers(layer, job.footprint, folder, f"{layer.basename}_trl.log")
            drizzle_layer(layer, job.frame, job.config, folder, backend=bk, level=level,
                          finalize_headers=final, visit=visit,
                          discard_inputs=not keep_inputs and index == len(jobs) - 1)
            if final.error is not None:
                log.critical("trouble updating the keywords of %s: %s", layer.drizzle_filename,
                             final.error)
                return int(ExitCode.KEYWORD_UPDATE_PROBLEM)
        return int(ExitCode.OK)
    except (HapGpuError, OSError) as exc:
        log.error("%s", exc)
        return int(ExitCode.ERROR)
    except Exception as exc:
        log.exception("internal error (%s); please report it", type(exc).__name__)
        return int(ExitCode.ERROR)
    finally:
        hapgpu_log.setLevel(previous)


def _remove_earlier_attempt(jobs, folder: Path) -> None:
    """Remove the files an earlier attempt of a layer task left in the staging folder.

    A task's files are only ever written by the task (the run log is appended to the trailers
    once every task of the cell has succeeded), so whatever exists of them at its start comes
    from an attempt whose worker died: a trailer log being written, or a finished layer's
    product and trailer. Temporary files (``.<name>.<pid>.part``) are hidden; they go with the
    staging folder.
    """
    for job in jobs:
        layer = job.layer
        for name in (f"{layer.basename}_trl.log", layer.trailer_filename, layer.drizzle_filename):
            path = folder / name
            if path.exists():
                log.warning("%s: left by an earlier attempt of this task; removed", name)
                path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- preparation
#: Host threads making the renamed input copies of a run (file copies: the kernel does the work).
COPY_THREADS = 2


def _start_copies(run: _CellRun, layers, copier) -> None:
    """Start the renamed input copy of every NEW exposure of ``layers`` not started yet."""
    from ._products import make_renamed_input

    for layer in layers:
        for exposure in layer.new_exposures:
            if exposure.renamed not in run.copies:
                log.info("Copying %s to MVM input %s", exposure.source.name, exposure.renamed)
                run.copies[exposure.renamed] = copier.submit(make_renamed_input, exposure.source,
                                                             run.staging, exposure.renamed)


def _layers(poller, photflam: dict) -> list:
    """:func:`hapgpu.mvm.build_layers` with each file's ``PHOTFLAM`` read once per run
    (``photflam``: file path -> value, shared by the pollers of the run)."""
    from ..svm._analyze import read_photflam
    from ._layers import build_layers

    values = {}
    for row in (*poller.rows, *poller.old_rows):  # build_layers' order: the first failure
        key = str(row.source)
        if key not in photflam:
            photflam[key] = read_photflam(row.source)
        values[row.filename] = photflam[key]
    return build_layers(poller, photflam=values)


def _read_cell(run: _CellRun, *, guiding, copier, photflam: dict) -> int:
    """Step 1 of the module notes; fills ``run.layers`` and starts the copies; returns a status.

    ``guiding``: the run's :class:`hapgpu.mvm.GuidingCache` (shared by every poller);
    ``copier``: the executor making the renamed input copies; ``photflam``: the run's
    ``PHOTFLAM`` values by file (see :func:`_layers`)."""
    from ._layers import manifest_filename
    from ._poller import NoViableDataError, read_mvm_poller

    def speculate(provisional):
        try:
            layers = _layers(provisional, photflam)
        except HapGpuError:  # raised again, in its place, by the layers of the checked rows
            return
        _start_copies(run, layers, copier)

    log.info("MVM processing of %s into %s", run.poller, run.output_dir)
    try:
        poller = read_mvm_poller(run.poller, guiding=guiding, before_guiding=speculate)
    except NoViableDataError as exc:
        log.error("%s", exc)
        return int(getattr(exc, "exit_code", ExitCode.NO_VIABLE_DATA))
    run.manifest_name = manifest_filename(poller.skycell)
    run.layers = _layers(poller, photflam)
    log.info("%s: %d layer(s): %s", poller.skycell, len(run.layers),
             "; ".join(la.info for la in run.layers))
    return int(ExitCode.OK)


def _plan_cell(run: _CellRun, *, custom_pars, copier) -> int:
    """Steps 2-3 of the module notes; fills ``run.jobs`` and ``run.groups``; returns a status."""
    from . import _products as products

    frames: dict = {}
    for layer in run.layers:
        if not layer.new_exposures:
            log.warning("Ignoring %s: no NEW exposure", layer.info)
            continue
        if layer.scale not in frames:
            try:
                frame = products.bounded_cell_frame(layer.skycell, layer.scale, layer.all_mvm_exposures)
                log.info("%s %s bounded frame: %d x %d pixels at (x %d, y %d) of the %d x %d cell",
                         layer.skycell, layer.scale, frame.shape[1], frame.shape[0], frame.origin[1],
                         frame.origin[0], frame.cell_shape[1], frame.cell_shape[0])
            except WCSError as exc:  # drizzlepac: no bounded WCS, every layer invalid
                log.warning("%s", exc)
                frame = None
            frames[layer.scale] = frame
        frame = frames[layer.scale]
        if frame is None:
            log.warning("Ignoring %s as no input exposures overlap that layer", layer.info)
            continue
        try:
            footprint = products.layer_footprint(frame, [e.source for e in layer.new_exposures])
        except WCSError as exc:
            log.warning("Ignoring %s as no input exposures overlap that layer (%s)", layer.info, exc)
            continue
        keywords = footprint.keywords
        log.info("%s footprint: NPIXFRAC %.4g, MEANEXPT %.4g, MEANNEXP %.4g, MEDNEXP %.4g",
                 layer.drizzle_filename, keywords["NPIXFRAC"][0], keywords["MEANEXPT"][0],
                 keywords["MEANNEXP"][0], keywords["MEDNEXP"][0])
        config = products.layer_config(layer, footprint, custom_pars=custom_pars)
        log.info("%s: parameters %s (n = round(MEANNEXP) = %d)", layer.drizzle_filename,
                 " + ".join(config.blocks["astrodrizzle"]) or "custom", config.n_exposures)
        run.configs.append(config)
        run.jobs.append(LayerJob(layer, frame, footprint, config))
    log.info("Gaia alignment step skipped; the exposures keep their WCS")
    # renamed inputs, each once (the coarse and fine layers of IR/PC share theirs); the copies
    # started before the guiding check that no layer uses are removed
    _start_copies(run, [job.layer for job in run.jobs], copier)
    needed = {e.renamed for job in run.jobs for e in job.layer.new_exposures}
    for name in [n for n in run.copies if n not in needed]:
        log.info("Removing MVM input %s: no layer to make uses it", name)
        _wait_copy(run.copies.pop(name))
        (run.staging / name).unlink(missing_ok=True)
    # tasks: layers sharing a renamed input run together, in order
    groups: list[list[LayerJob]] = []
    owner: dict = {}
    for job in run.jobs:
        names = {e.renamed for e in job.layer.new_exposures}
        shared = next((owner[n] for n in names if n in owner), None)
        if shared is None:
            shared = len(groups)
            groups.append([])
        groups[shared].append(job)
        for name in names:
            owner[name] = shared
    run.groups = [tuple(g) for g in groups]
    return int(ExitCode.OK)


def _wait_copy(future) -> Exception | None:
    """Wait for one copy; the exception it raised, or None."""
    try:
        future.result()
    except Exception as exc:  # noqa: BLE001 - reported by _collect_copies, in the run log
        return exc
    return None


def _collect_copies(run: _CellRun) -> None:
    """Wait for every copy of a cell; the first failure fails the cell (logged in its run log)."""
    errors = [exc for exc in (_wait_copy(f) for f in run.copies.values()) if exc is not None]
    if errors and not run.code:
        run.attach_log()
        try:
            if isinstance(errors[0], (HapGpuError, OSError)):
                log.error("%s", errors[0])
            else:
                log.error("internal error (%s) making a renamed input: %s; please report it",
                          type(errors[0]).__name__, errors[0])
        finally:
            run.close_log()
        run.code = int(ExitCode.ERROR)


def _finish_cell(run: _CellRun, *, diagnostic: bool, started: float) -> None:
    """Step 5 of the module notes: inputs, manifest, trailers, move into place."""
    from ..svm._manifest import Manifest, finish_trailers

    run.attach_log()
    names = []
    for job in run.jobs:
        names += [job.layer.drizzle_filename, job.layer.trailer_filename]
    inputs = sorted({e.renamed for job in run.jobs for e in job.layer.new_exposures})
    if diagnostic:
        log.info("diagnostic mode: the renamed inputs are kept: %s", ", ".join(inputs))
    else:
        for name in inputs:
            (run.staging / name).unlink(missing_ok=True)
    manifest = Manifest(run.manifest_name)
    manifest.add(*sorted(set(names)))
    log.info("Creating manifest file %s (%d entries)", manifest.name, len(manifest.names))
    manifest.write(run.staging)
    log.info("Total processing time: %.2f s", time.perf_counter() - started)
    run.close_log()
    finish_trailers(run.staging, run.master_log,
                    total_trailers=[job.layer.trailer_filename for job in run.jobs],
                    copy_trailers=[], drizzle_products=[])  # DRIZPARS stays AstroDrizzle's runfile
    run.master_log.unlink(missing_ok=True)
    run.commit()


# --------------------------------------------------------------------------- the runner
def _run_tasks(tasks, *, workers, scheduler, progress, backend):
    """Run the layer tasks with :func:`hapgpu.scaleout.run_tasks` (in this process, in order,
    without ``workers`` or ``scheduler``); return their exit statuses in order."""
    from ..scaleout import run_tasks

    return list(run_tasks(tasks, workers=workers, scheduler=scheduler, progress=progress,
                          label="mvm layers", backend=backend))


def _pollers(pollers) -> list[Path]:
    if isinstance(pollers, (str, os.PathLike)):
        pollers = [pollers]
    try:
        paths = [Path(p) for p in pollers]
    except TypeError as exc:
        raise InvalidParameterError(f"pollers must be a path or a list of paths, got {pollers!r}") from exc
    if not paths:
        raise InvalidParameterError("no MVM poller given")
    return paths


def run_mvm(pollers, output_dir=".", *, custom_pars=None, output_custom_pars=None,
            diagnostic: bool = False, log_level=None, workers: int | None = None,
            scheduler: str | None = None, backend: str | None = None,
            progress: bool | None = None) -> int:
    """Make the HAP multi-visit layer products of sky cells (drizzlepac ``runmultihap``).

    Parameters
    ----------
    pollers : str, os.PathLike or sequence of them
        MVM poller files (10 columns, hap-pipeline.md §2.3), one sky cell each. The listed
        files are read from the current folder, the poller's folder or the ``pathname`` column.
    output_dir : str or os.PathLike
        Folder for every product (created if missing); default the current folder.
    custom_pars : str or os.PathLike, optional
        Custom parameter file (``runmultihap -c``), keyed by layer base name
        (``hst_skycell-p1889x07y19_wfc3_uvis_f555w_all``): replaces the automatic choice.
    output_custom_pars : str or os.PathLike, optional
        Write the parameters of every layer and its exposures to this file.
    diagnostic : bool
        drizzlepac's diagnostic mode: the renamed inputs are kept in the output folder.
    log_level : str or int, optional
        ``critical``, ``error``, ``warning``, ``info`` or ``debug`` (default: ``info``): the
        level of the ``hapgpu`` loggers during the run and of the trailers.
    workers : int, optional
        Run the layer tasks on a local Dask cluster of this many workers
        (:func:`hapgpu.scaleout.run_tasks`).
    scheduler : str, optional
        Address of a running Dask scheduler to run the layer tasks on (exclusive with
        ``workers``).
    backend : str, optional
        Compute backend name (``cpu``, ``gpu``, ``cudasim``, ``auto``), resolved by each task;
        None reads ``HAPGPU_BACKEND``.
    progress : bool, optional
        Show the progress of the tasks (default: when stderr is a terminal).

    Returns
    -------
    int
        drizzlepac's exit status: 0 success (also when no layer overlaps its cell); 1 any
        error; 15 a product's keywords could not be updated; 65 nothing viable to process
        (e.g. every poller row OLD); 55 only HRC/SBC rows viable with ``MVM_INCLUDE_SMALL`` off.
        With several pollers, the first non-zero status in poller order (the cells that
        succeeded keep their products). Errors are logged naming the file and the problem.
    """
    from ..svm._pipeline import _log_level

    try:
        level = _log_level(log_level)
        paths = _pollers(pollers)
        if workers is not None and scheduler is not None:
            raise InvalidParameterError("give workers or scheduler, not both")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise InvalidParameterError(f"workers must be a positive integer, got {workers!r}")
    except InvalidParameterError as exc:
        log.error("%s", exc)
        return int(ExitCode.ERROR)
    hapgpu_log = logging.getLogger("hapgpu")
    previous_level = hapgpu_log.level
    if level is None:
        level = min(hapgpu_log.getEffectiveLevel(), logging.INFO)
    hapgpu_log.setLevel(level)
    try:
        return _run_cells(paths, Path(output_dir).absolute(), level, custom_pars=custom_pars,
                          output_custom_pars=output_custom_pars, diagnostic=diagnostic,
                          workers=workers, scheduler=scheduler, backend=backend,
                          progress=sys.stderr.isatty() if progress is None else bool(progress))
    finally:
        hapgpu_log.setLevel(previous_level)


def _run_cells(paths, output_dir: Path, level: int, *, custom_pars, output_custom_pars, diagnostic,
               workers, scheduler, backend, progress) -> int:
    from ..scaleout import Task
    from ._guiding import GuidingCache

    started = time.perf_counter()
    # each exposure's guiding is checked once, whatever lists it
    guiding = GuidingCache(backend=backend)
    runs: list[_CellRun] = [_CellRun(output_dir, path, level) for path in paths]
    codes: dict = {}
    photflam: dict = {}  # PHOTFLAM by file, for the layer order: each file read once
    with ThreadPoolExecutor(max_workers=COPY_THREADS, thread_name_prefix="mvm-copy") as copier:
        for run in runs:  # step 1 of every poller, then the rest of the preparation
            _prepare_step(run, run.open, _read_cell, run, guiding=guiding, copier=copier,
                          photflam=photflam)
        for run in runs:
            if not run.code:
                _prepare_step(run, run.attach_log, _plan_cell, run, custom_pars=custom_pars,
                              copier=copier)
        for run in runs:
            _collect_copies(run)
    if output_custom_pars is not None:
        try:
            _write_custom_pars(runs, output_custom_pars)
        except HapGpuError as exc:
            log.error("%s", exc)
            for run in runs:
                run.code = run.code or int(ExitCode.ERROR)
    tasks, owners = [], []
    for index, run in enumerate(runs):
        if run.code:
            continue
        for group in run.groups:
            name = " + ".join(job.layer.drizzle_filename for job in group)
            tasks.append(Task(name, drizzle_layers, (group, str(run.staging), level, backend, diagnostic)))
            owners.append(index)
    if tasks:
        try:
            results = _run_tasks(tasks, workers=workers, scheduler=scheduler, progress=progress,
                                 backend=backend)
        except (HapGpuError, OSError) as exc:
            log.error("%s", exc)
            results = [int(ExitCode.ERROR)] * len(tasks)
        for index, code in zip(owners, results):
            if code and not runs[index].code:
                runs[index].code = int(code)
    for run in runs:
        if not run.code:
            try:
                _finish_cell(run, diagnostic=diagnostic, started=started)
            except (HapGpuError, OSError) as exc:
                log.error("%s", exc)
                run.code = int(ExitCode.ERROR)
        if run.staging.exists():
            run.discard()
        codes[run.poller] = run.code
        log.info("%s: return condition %d", run.poller, run.code)
    return next((code for code in codes.values() if code), int(ExitCode.OK))


def _prepare_step(run: _CellRun, start, step, *args, **kwargs) -> None:
    """``start()`` (open or reattach the run log), then ``run.code = step(*args, **kwargs)``;
    errors are logged and give status 1; the run log is closed afterwards."""
    try:
        start()
        run.code = step(*args, **kwargs)
    except (HapGpuError, OSError) as exc:
        log.error("%s", exc)
        run.code = int(ExitCode.ERROR)
    except Exception as exc:
        log.exception("internal error (%s); please report it", type(exc).__name__)
        run.code = int(ExitCode.ERROR)
    finally:
        run.close_log()


def _write_custom_pars(runs, path) -> None:
    from ..svm._config import output_custom_pars
    from ._products import exposure_configs

    configs = []
    for run in runs:
        if run.code:
            continue
        for job in run.jobs:
            configs.append(job.config)
            configs += exposure_configs(job.layer)
    if configs:
        output_custom_pars(configs, path)
