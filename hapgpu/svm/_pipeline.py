"""``run_svm``: one HST visit in, the HAP single-visit product set out (drizzlepac ``runsinglehap``).

:func:`run_svm` follows drizzlepac's ``hapsequencer.run_hap_processing`` step by step
(hap-pipeline.md §1.1):

1. set the log level; the run log is kept for the trailers;
2. read the catalog switches ``SVM_CATALOG_{SBC,HRC,WFC,UVIS,IR,PC}``;
3. read the poller, keep the viable exposures, sort them and build the product tree
   (§1.2-§1.6); make the renamed input copies;
4. stop with 65 when no detector has direct exposures;
5. for each detector: merge old manifests, choose the parameters of every product (§1.7),
   align the direct exposures (§1.8), drop the ramp and quad exposures, give the grism/prism
   and direct exposures one active WCS (§1.9), write the ``SKYCELL`` keyword;
6. make the drizzled products (§1.10-§1.12) and refine their headers (a failure: 15);
7. make the catalogs (§1.13) unless switched off;
8. (hapgpu) write the JPEG previews;
9. write the manifest, finish the trailers, move everything into the output folder.

The inputs are never modified: the pipeline works on renamed copies. Everything is written in a
staging folder inside the output folder and moved into place only when the whole visit has
succeeded, so a failed run leaves no partial products (and an empty poller writes nothing).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from .._staging import StagedRun
from .._staging import staging_prefix as _staging_prefix
from ..errors import (
    HapGpuError,
    InvalidInputError,
    InvalidParameterError,
    NoUsableInputError,
)
from ._analyze import ExitCode

__all__ = ["CATALOG_SWITCHES", "catalog_switches", "env_switch", "run_svm"]

log = logging.getLogger(__name__)

#: Detector -> environment variable that turns its catalogs on or off (default on).
CATALOG_SWITCHES = {det: f"SVM_CATALOG_{det}" for det in ("SBC", "HRC", "WFC", "UVIS", "IR", "PC")}

_TRUE = ("on", "yes", "true")
_FALSE = ("off", "no", "false")
_LOG_LEVELS = {"critical": logging.CRITICAL, "error": logging.ERROR, "warning": logging.WARNING,
               "info": logging.INFO, "debug": logging.DEBUG}


def env_switch(name: str, default: bool, environ=None) -> bool:
    """An on/off environment switch (hap-pipeline.md §0).

    Parameters
    ----------
    name : str
        Variable name.
    default : bool
        Value when the variable is unset or empty.
    environ : mapping, optional
        Default ``os.environ``.

    Returns
    -------
    bool
        ``on``/``yes``/``true`` -> True, ``off``/``no``/``false`` -> False (any case).

    Raises
    ------
    InvalidParameterError
        Any other value.
    """
    environ = os.environ if environ is None else environ
    value = str(environ.get(name, "")).strip().lower()
    if not value:
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidParameterError(f"environment variable {name}={environ[name]!r}: use one of "
                                f"{', '.join(_TRUE + _FALSE)} (any case)")


def catalog_switches(environ=None) -> dict:
    """``{detector: bool}`` from ``SVM_CATALOG_<DET>`` (all on by default)."""
    return {det: env_switch(var, True, environ) for det, var in CATALOG_SWITCHES.items()}


def _log_level(level) -> int | None:
    if level is None:
        return None
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    name = str(level).strip().lower()
    if name not in _LOG_LEVELS:
        raise InvalidParameterError(f"log_level must be one of {', '.join(_LOG_LEVELS)}, got {level!r}")
    return _LOG_LEVELS[name]


# --------------------------------------------------------------------------- progress and timing
class VisitTimer:
    """Wall time per pipeline stage and one progress display for the visit.

    Parameters
    ----------
    backend : hapgpu.backend.Backend
        Synchronised at the end of each step, so device work is charged to its stage.
    show_progress : bool, optional
        Show a rich progress bar on stderr (default: when stderr is a terminal).
    """

    def __init__(self, backend, show_progress: bool | None = None):
        self.backend = backend
        self.stages: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.show_progress = sys.stderr.isatty() if show_progress is None else show_progress
        self._progress = None
        self._task = None
        self._t0 = time.perf_counter()

    def start(self, n_steps: int, label: str) -> None:
        """Open the progress display for ``n_steps`` steps."""
        if not self.show_progress or self._progress is not None:
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn(f"[bold]svm {label}[/] " + "{task.description}"), BarColumn(),
                                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                                  console=Console(stderr=True), transient=True)
        self._progress.start()
        self._task = self._progress.add_task("", total=n_steps)

    def stop(self) -> None:
        """Close the progress display."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    @contextmanager
    def step(self, stage: str, detail: str = ""):
        """Time the block as part of ``stage`` (the progress line shows ``detail``)."""
        if self._progress is not None:
            self._progress.update(self._task, description=f"{stage} {detail}".strip())
        t0 = time.perf_counter()
        try:
            yield
            if self.backend is not None:
                self.backend.synchronize()
        finally:
            self.stages[stage] = self.stages.get(stage, 0.0) + time.perf_counter() - t0
            self.counts[stage] = self.counts.get(stage, 0) + 1
            if self._progress is not None:
                self._progress.advance(self._task)

    def table(self) -> str:
        """The per-stage timing table (stage, runs, seconds, share), one line per stage."""
        total = time.perf_counter() - self._t0
        lines = [f"{'stage':<20} {'runs':>5} {'seconds':>9} {'share':>6}"]
        for stage, seconds in self.stages.items():
            share = 100.0 * seconds / total if total > 0 else 0.0
            lines.append(f"{stage:<20} {self.counts[stage]:>5} {seconds:>9.2f} {share:>5.1f}%")
        lines.append(f"{'total (wall)':<20} {'':>5} {total:>9.2f} {100.0:>5.1f}%")
        return "\n".join(lines)


# --------------------------------------------------------------------------- the run
def staging_prefix(poller) -> str:
    """Start of the name of a visit's staging folder in the output folder:
    ``.hapgpu-svm-<poller stem>-`` (then ``<pid>-<random>``)."""
    return _staging_prefix("svm", poller)


class _Run(StagedRun):
    """State of one visit: the staging folder, the manifest and what goes into the trailers."""

    def __init__(self, output_dir: Path, poller: Path, level: int):
        super().__init__(output_dir, poller, level, pipeline="svm")
        self.manifest = None
        self.copy_trailers: list[str] = []
        self.old_manifests: list[Path] = []
        self.products: list = []


def run_svm(poller, output_dir=".", *, refcat=None, align: bool = True, custom_pars=None,
            output_custom_pars=None, diagnostic: bool = False, previews: bool = True,
            backend=None, log_level=None, progress: bool | None = None) -> int:
    """Make the HAP single-visit products of one visit (drizzlepac ``runsinglehap``).

    Parameters
    ----------
    poller : str or os.PathLike
        SVM poller file (8 columns), a file list (1 column) or the WFPC2 form (2 columns);
        the listed exposures are read from the current directory, the poller's folder or the
        poller's ``pathname`` column (:func:`hapgpu.svm._poller.read_poller`).
    output_dir : str or os.PathLike
        Folder for every product (created if missing); default the current directory.
    refcat : str or os.PathLike, optional
        Reference catalogue for the alignment: a local ECSV/FITS/CSV file or a catalogue
        service URL; default ``$ASTROMETRIC_CATALOG_URL`` (hap-pipeline.md §4).
    align : bool
        Align the exposures (§1.8); False keeps their WCS.
    custom_pars : str or os.PathLike, optional
        Custom parameter file (``runsinglehap -c``): replaces the automatic parameter choice.
    output_custom_pars : str or os.PathLike, optional
        Write the parameters of every product to this file (must differ from ``custom_pars``).
    diagnostic : bool
        drizzlepac's diagnostic mode: old manifests kept, no cosmic-ray rejection of catalogs.
    previews : bool
        Write the JPEG previews (``_dr[cz].jpg``, ``_thumb.jpg``, the colour total).
    backend : {"cpu", "gpu", "cudasim", "auto"} or hapgpu.backend.Backend, optional
        Compute backend (None reads ``HAPGPU_BACKEND``), resolved once for the whole visit.
    log_level : str or int, optional
        Level of the ``hapgpu`` loggers during the run (``critical``, ``error``, ``warning``,
        ``info``, ``debug``), also what the trailers record; None: ``info`` (as runsinglehap) or
        the configured level when that is lower.
    progress : bool, optional
        Show the progress display (default: when stderr is a terminal).

    Returns
    -------
    int
        drizzlepac's exit status (:class:`hapgpu.svm._analyze.ExitCode`): 0 success (also an
        empty poller, which writes nothing), 1 any error, 65 no viable direct exposure, 15 a
        product keyword could not be updated. Errors are logged with a message naming the
        file and the problem; after any failure the output folder holds no new file.
    """
    try:
        level = _log_level(log_level)
    except InvalidParameterError as exc:
        log.error("%s", exc)
        return int(ExitCode.ERROR)
    # drizzlepac's runsinglehap logs at INFO unless told otherwise; the trailers and the run
    # log record what the hapgpu loggers pass at this level. Restored after the run.
    hapgpu_log = logging.getLogger("hapgpu")
    previous_level = hapgpu_log.level
    if level is None:
        level = min(hapgpu_log.getEffectiveLevel(), logging.INFO)
    hapgpu_log.setLevel(level)
    try:
        return _run_logged(poller, output_dir, refcat=refcat, align=align, custom_pars=custom_pars,
                           output_custom_pars=output_custom_pars, diagnostic=diagnostic,
                           previews=previews, backend=backend, progress=progress)
    finally:
        hapgpu_log.setLevel(previous_level)


def _run_logged(poller, output_dir, *, refcat, align, custom_pars, output_custom_pars, diagnostic,
                previews, backend, progress) -> int:
    """:func:`run_svm` once the log level is set: the staging folder and the exit status."""
    poller = Path(poller)
    run = _Run(Path(output_dir).absolute(), poller, logging.getLogger("hapgpu").getEffectiveLevel())
    timer = None
    try:
        from ..backend import resolve_backend

        bk = resolve_backend(backend)
        timer = VisitTimer(bk, progress)
        run.open()
        code = _run_visit(run, poller, timer, bk, refcat=refcat, align=align,
                          custom_pars=custom_pars, output_custom_pars=output_custom_pars,
                          diagnostic=diagnostic, previews=previews)
    except (HapGpuError, OSError) as exc:
        log.error("%s", exc)
        code = int(ExitCode.ERROR)
    except Exception as exc:
        log.exception("internal error (%s); please report it", type(exc).__name__)
        code = int(ExitCode.ERROR)
    finally:
        if timer is not None:
            timer.stop()
    if run.staging.exists():  # a failure, or nothing to do: no file is left behind
        run.discard()
    return int(code)


def _run_visit(run: _Run, poller: Path, timer: VisitTimer, backend, *, refcat, align, custom_pars,
               output_custom_pars, diagnostic, previews) -> int:
    """Steps 2-9 of §1.1; returns the exit status (staging discarded by the caller on failure)."""
    from ._analyze import select_viable_rows, sort_rows
    from ._manifest import Manifest
    from ._poller import read_poller
    from ._tree import build_product_tree

    started = time.perf_counter()
    log.info("SVM processing of %s into %s", poller, run.output_dir)
    # 2. catalog switches (and a local reference catalogue that is not there: a typo, not a
    # catalogue outage, so the run stops before any work)
    switches = catalog_switches()
    if refcat is not None and align and "://" not in str(refcat) and not Path(refcat).is_file():
        raise InvalidInputError(f"{refcat}: reference catalogue file not found (give a local "
                                "ECSV/FITS/CSV file or a catalogue service URL)")
    # 3. poller -> viable, sorted rows -> product tree -> renamed copies
    with timer.step("read poller", poller.name):
        rows = read_poller(poller)
        if not rows:
            log.warning("%s: no exposures; nothing to do", poller)
            return int(ExitCode.OK)
        try:
            rows = select_viable_rows(rows)
        except NoUsableInputError as exc:  # no exposure passes the viability filter (§1.3)
            log.error("%s", exc)
            return int(ExitCode.NO_VIABLE_DATA)
        totals = build_product_tree(sort_rows(rows))
    run.manifest = Manifest(totals[0].manifest_name)
    # 4. direct exposures somewhere?
    if not any(t.edp_list for t in totals):
        log.warning("no viable direct images in any total product of this visit (only grism/prism "
                    "data); no SVM products are made")
        return int(ExitCode.NO_VIABLE_DATA)
    timer.start(_planned_steps(totals, align, previews), run.manifest.name.replace("_manifest.txt", ""))
    sources = {row.filename: row.source for row in rows}
    _make_renamed_copies(totals, sources, run, timer)

    # 5. per detector
    configs = {}
    for total in totals:
        _prepare_detector(total, run, timer, backend, configs, refcat=refcat, align=align,
                          custom_pars=custom_pars)
    if output_custom_pars is not None:
        from ._config import output_custom_pars as write_custom

        write_custom(list(configs.values()), output_custom_pars)

    # 6. drizzled products, then their headers
    from ._products import create_drizzle_products, refine_headers

    for total in totals:
        if total.edp_list:
            names, made = create_drizzle_products(total, configs, run.staging, backend=backend,
                                                  timer=timer, level=run.level)
            run.manifest.add(*names)
            run.products += made
    try:
        with timer.step("refine headers"):
            refine_headers(run.products, totals, run.staging)
    except (HapGpuError, OSError) as exc:
        log.critical("trouble updating the drizzled products' keywords: %s", exc)
        return int(ExitCode.KEYWORD_UPDATE_PROBLEM)

    # 7. catalogs
    for total in totals:
        if total.edp_list and total.fdp_list:
            _make_catalogs(total, run, timer, backend, configs, switches, diagnostic)

    # 8. previews (made by the archive for drizzlepac; not in the manifest)
    if previews:
        _make_previews(totals, run, timer)
    for item in run.products:  # the product arrays kept for the catalogs and previews
        item.sci = item.wht = None

    # 9. manifest, trailers, move into place
    _finish(run, totals, timer, diagnostic, started)
    return int(ExitCode.OK)


def _planned_steps(totals, align: bool, previews: bool) -> int:
    n = 2  # read poller, refine headers
    for total in totals:
        n += len(total.all_exposures) + 1  # renamed copies, skycell
        if not total.edp_list:
            continue
        n += 2 + int(align) + 1  # metawcs, total footprint + drizzle, alignment, catalogs
        n += int(bool(total.grism_edp_list))  # grism/prism WCS reconciliation
        n += sum(2 + len(f.edp_list) for f in total.fdp_list)
        n += int(previews)
    return n


def _make_renamed_copies(totals, sources: dict, run: _Run, timer: VisitTimer) -> None:
    """Renamed copies of every exposure (grism-only detectors: none kept, as drizzlepac)."""
    from ._tree import make_renamed_copy

    for total in totals:
        keep = bool(total.edp_list)
        for exposure in total.all_exposures:
            if not keep:
                continue
            with timer.step("renamed copies", exposure.full_filename):
                make_renamed_copy(sources[exposure.filename], run.staging, exposure)


def _configs_of(total, custom_pars) -> dict:
    """HapConfig of the total, each filter and each direct exposure (§1.7)."""
    from ._config import hap_config

    inst, det = total.instrument, total.detector
    common = {"custom": custom_pars}
    configs = {}
    first = total.edp_list[0] if total.edp_list else None
    expstart = first.mjdutc if first is not None else None
    configs[total] = hap_config("total", inst, det, n_exposures=max(1, len(total.edp_list)),
                                expstart_mjd=expstart,
                                product_basename=total.product_basename, **common)
    for filter_product in total.fdp_list:
        configs[filter_product] = hap_config(
            "filter", inst, det, n_exposures=len(filter_product.edp_list),
            filters=filter_product.filters, expstart_mjd=filter_product.edp_list[0].mjdutc,
            product_basename=filter_product.product_basename, **common)
        for exposure in filter_product.edp_list:
            configs[exposure] = hap_config(
                "exposure", inst, det, n_exposures=len(filter_product.edp_list),
                filters=exposure.filters, product_basename=exposure.product_basename, **common)
    return configs


def _prepare_detector(total, run: _Run, timer: VisitTimer, backend, configs: dict, *, refcat, align,
                      custom_pars) -> None:
    """Step 5 of §1.1 for one detector."""
    from ._align import align_visit
    from ._manifest import read_old_manifests
    from ._tree import ramp_and_quad_manifest_names

    # 5.1 manifests of earlier runs
    names, files = read_old_manifests(run.output_dir, [e.exposure_name for e in total.edp_list])
    if files:
        log.info("merging old manifests %s", ", ".join(p.name for p in files))
    run.manifest.add(*names)
    run.old_manifests += files
    # 5.2 parameters
    if total.edp_list:
        configs.update(_configs_of(total, custom_pars))
    # 5.3 alignment
    if total.edp_list:
        if align:
            with timer.step("align", total.drizzle_filename):
                custom = configs[total].custom_source
                headerlets = align_visit(total.edp_list, [run.staging / e.full_filename for e in total.edp_list],
                                         configs[total].alignment, refcat=refcat, backend=backend,
                                         source=f"custom parameter file {custom}" if custom else None)
            run.manifest.add(*headerlets)
        else:
            log.info("%s: alignment switched off; the exposures keep their WCS", total.drizzle_filename)
    # 5.4 ramp and quad exposures: aligned, then dropped
    ramps = ramp_and_quad_manifest_names(total.edp_list)
    if ramps:
        log.info("ramp/quad exposures kept out of the products: %s", ", ".join(ramps[::2]))
        run.manifest.add(*ramps)
        run.copy_trailers += [n for n in ramps if n.endswith("_trl.txt")]
        total.edp_list = [e for e in total.edp_list if not e.is_ramp_or_quad]
        total.fdp_list = [f for f in total.fdp_list if not f.is_ramp_or_quad]
    # 5.5 / 5.6 grism and prism exposures: one active WCS with the direct images (§1.9); the
    # grism images given it go to the manifest with their trailers (copies of the run log)
    if total.grism_edp_list and total.edp_list:
        from ._grism import update_wcs_in_visit

        exposures = total.grism_edp_list + total.edp_list
        with timer.step("grism wcs", total.drizzle_filename):
            result = update_wcs_in_visit([run.staging / e.full_filename for e in exposures],
                                         [e in total.grism_edp_list for e in exposures])
        listed = {path.name for path in result.grism_products}
        for grism in total.grism_edp_list:
            if grism.full_filename in listed:
                run.manifest.add(grism.full_filename, grism.trl_filename)
                run.copy_trailers.append(grism.trl_filename)
    elif total.grism_edp_list:
        log.warning("%s has only grism/prism data and no direct images; no SVM products for it",
                    total.drizzle_filename)
        run.manifest.add(total.trl_filename)
    # 5.7 SKYCELL keyword (after S_REGION in every SCI header of the renamed copies)
    from ..skycells import add_skycell_keyword

    for exposure in total.edp_list:
        with timer.step("skycell", exposure.full_filename):
            add_skycell_keyword(run.staging / exposure.full_filename)


def _make_catalogs(total, run: _Run, timer: VisitTimer, backend, configs, switches, diagnostic) -> None:
    """Step 7 of §1.1 for one detector: point and segment catalogs of the total and filters."""
    from ..catalogs import make_hap_catalogs, read_catalog_product
    from ._products import total_inputs

    detector = total.detector.upper()
    if not switches.get(detector, True):
        log.info("catalogs of %s switched off (%s)", total.drizzle_filename, CATALOG_SWITCHES[detector])
        return
    folder = run.staging
    drizzled = {item.product: item for item in run.products}

    def arrays(product) -> dict:
        """The SCI and WHT arrays the drizzle step kept (the files' headers are still read)."""
        item = drizzled.get(product)
        if item is None or item.sci is None or item.wht is None:
            return {}
        return {"sci": item.sci, "wht": item.wht}

    with timer.step("catalogs", total.drizzle_filename):
        total_product = read_catalog_product(
            folder / total.drizzle_filename, kind="total", mask=total.mask,
            exposures=[folder / e.full_filename for e in total_inputs(total)], **arrays(total))
        filters = [read_catalog_product(folder / f.drizzle_filename, kind="filter", mask=f.mask,
                                        exposures=[folder / e.full_filename for e in f.edp_list],
                                        **arrays(f))
                   for f in total.fdp_list]
        catalogs = make_hap_catalogs(total_product, filters, config=configs[total].catalog,
                                     backend=backend, diagnostic=diagnostic)
        written = catalogs.write(folder)
    run.manifest.add(*written)


#: Display limits of the previews: zscale's lower limit and the 99.9th percentile (plain
#: zscale under the asinh stretch gives a grey sky and white sources; see _previews).
PREVIEW_INTERVAL = "zmax"


def _make_previews(totals, run: _Run, timer: VisitTimer) -> None:
    """JPEG previews of every drizzled product and the colour preview of each total."""
    from ._previews import write_color_preview, write_previews

    for total in totals:
        if not total.edp_list:
            continue
        with timer.step("previews", total.drizzle_filename):
            items = [item for item in run.products
                     if item.product is total or item.product in total.fdp_list or item.product in total.edp_list]
            planes: dict = {}  # the filters' limits and binned images, for the colour preview
            for item in items:  # the SCI arrays kept by the drizzle step, else the files
                try:
                    write_previews(item.path, sci=item.sci, interval=PREVIEW_INTERVAL, planes=planes)
                except HapGpuError as exc:
                    log.warning("%s: no preview (%s)", item.path.name, exc)
            if len(total.fdp_list) >= 2:
                kept = {item.product: item.sci for item in items}
                scis = [kept.get(f) for f in total.fdp_list]
                try:
                    write_color_preview(run.staging / total.drizzle_filename,
                                        [run.staging / f.drizzle_filename for f in total.fdp_list],
                                        scis=None if any(a is None for a in scis) else scis,
                                        interval=PREVIEW_INTERVAL, planes=planes)
                except HapGpuError as exc:
                    log.warning("%s: no colour preview (%s)", total.drizzle_filename, exc)
            for item in items:  # release the product arrays
                item.sci = item.wht = None


def _finish(run: _Run, totals, timer: VisitTimer, diagnostic: bool, started: float) -> None:
    """Step 9 of §1.1: manifest, old manifests, trailers, DRIZPARS, then the move into place."""
    from ._manifest import finish_trailers

    timer.stop()
    log.info("creating manifest %s (%d entries)", run.manifest.name, len(run.manifest.names))
    run.manifest.write(run.staging)
    log.info("stage timing of the visit:\n%s", timer.table())
    log.info("total processing time: %.2f s", time.perf_counter() - started)
    run.close_log()
    finish_trailers(run.staging, run.master_log,
                    total_trailers=[t.trl_filename for t in totals],
                    copy_trailers=run.copy_trailers,
                    drizzle_products=[p.path.name for p in run.products])
    run.master_log.unlink(missing_ok=True)
    if not diagnostic:
        for path in run.old_manifests:
            if path.name != run.manifest.name:
                path.unlink(missing_ok=True)
    run.commit()
