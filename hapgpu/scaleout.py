"""Run many independent pipeline tasks on a Dask distributed cluster, or here, one by one.

One runner serves every pipeline that fans out: ``hapgpu svm POLLER [POLLER ...]`` submits one
visit per task, ``hapgpu mvm`` one sky cell x layer per task. :func:`run_tasks` takes the tasks
(a picklable callable and its arguments: paths and small parameters travel, never arrays; each
task reads its own inputs on the worker that runs it), and

- ``workers=N`` starts a local cluster of ``N`` single-threaded worker processes on the loopback
  interface for the run (Dask's ``LocalCluster``; with the ``gpu`` backend and ``dask-cuda``
  installed, its ``LocalCUDACluster``, one worker per GPU);
- ``scheduler=ADDRESS`` sends the tasks to an existing cluster (``dask scheduler`` and
  ``dask worker ADDRESS`` started by hand or by a batch system; the workers must see the same
  paths, e.g. a shared file system);
- neither runs the tasks in this process, in order.

Scheduling, retries and recovery from lost workers are Dask's: a task that raises is resubmitted
up to ``retries`` times (``Client.submit(..., retries=)``), and the tasks of a worker that dies
are rescheduled on the others. A task must therefore be safe to run again: the pipelines write
every product under a temporary name and rename it on success, so an attempt cut short leaves
no product behind and the next attempt makes it whole.

Exit statuses come back in the order of the tasks. A task's exception does not end the run: it
becomes exit status 1 and one log line naming the task (the traceback only at DEBUG level).

Worker environment: worker processes of a local cluster are started from this process and
inherit its environment, so ``HAPGPU_BACKEND``, the kernel cache folder (``HAPGPU_CACHE_DIR``,
``NUMBA_CACHE_DIR``) and the pipelines' switches (``SVM_CATALOG_<DET>``, ...) apply to them.
Workers of an existing cluster keep the environment they were started with.
"""

from __future__ import annotations

import logging
import operator
import os
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from .errors import DistributedUnavailableError, HapGpuError, InvalidParameterError

__all__ = ["Task", "run_tasks", "EXIT_TASK_FAILED"]

log = logging.getLogger(__name__)

#: Exit status of a task that raised an exception (drizzlepac's "any error").
EXIT_TASK_FAILED = 1

#: Loopback interface of the local cluster: nothing outside this machine can reach it.
_LOCALHOST = "127.0.0.1"

#: Start of the Dask key of every task :func:`run_tasks` submits.
_KEY_PREFIX = "hapgpu_"

_INSTALL_HINT = "pip install 'hapgpu[distributed]'"


@dataclass(frozen=True)
class Task:
    """One unit of work for :func:`run_tasks`: ``func(*args, **kwargs)`` returns an exit status.

    Parameters
    ----------
    name : str
        What the log and the progress display call the task (a poller, a sky cell and layer).
    func : callable
        Picklable (a module-level function); returns an ``int`` exit status (0 for success)
        or None (taken as 0). It runs in a worker process, which reads the inputs itself.
    args : tuple
        Positional arguments: paths and small values, not arrays.
    kwargs : mapping
        Keyword arguments.
    """

    name: str
    func: Callable[..., int | None]
    args: tuple = ()
    kwargs: Mapping = field(default_factory=dict)

    def __call__(self):
        from ._threads import one_launcher

        # a worker of an existing cluster may run several tasks on threads at once
        with one_launcher():
            return self.func(*self.args, **dict(self.kwargs))


def _as_task(item, index: int) -> Task:
    """A :class:`Task` from a Task or a ``(func, *args)`` tuple."""
    if isinstance(item, Task):
        return item
    if isinstance(item, tuple) and item and callable(item[0]):
        func, args = item[0], tuple(item[1:])
        first = args[0] if args else None
        where = f" {os.fspath(first)}" if isinstance(first, (str, os.PathLike)) else ""
        return Task(f"#{index + 1} {getattr(func, '__name__', 'task')}{where}", func, args)
    raise InvalidParameterError(f"task {index + 1}: expected a hapgpu.scaleout.Task or a "
                                f"(callable, *args) tuple, got {item!r}")


def _exit_status(task: Task, value) -> int:
    """A task's return value as an exit status (None -> 0)."""
    if value is None:
        return 0
    try:
        return int(operator.index(value))
    except TypeError:
        log.error("%s: returned %r, not an exit status; counted as failed", task.name, value)
        return EXIT_TASK_FAILED


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _import_distributed():
    """``distributed``, or :class:`DistributedUnavailableError` naming the extra."""
    try:
        import distributed
    except ImportError as exc:
        raise DistributedUnavailableError(
            f"--workers and --scheduler need Dask distributed, the 'distributed' extra of hapgpu "
            f"({_INSTALL_HINT}); it cannot be imported here ({exc})") from exc
    return distributed


def run_tasks(tasks: Sequence, *, workers: int | None = None, scheduler: str | None = None,
              retries: int = 2, progress: bool = True, label: str = "visits",
              backend=None) -> list[int]:
    """Run independent tasks on a Dask cluster (or here, in order); return their exit statuses.

    Parameters
    ----------
    tasks : sequence of Task or of (callable, *args) tuples
        The work, one entry per visit, sky cell x layer, ...: picklable callables returning an
        ``int`` exit status or None. Arguments should be paths and small values (they are
        pickled to the workers); each task reads its inputs where it runs.
    workers : int, optional
        Start a local cluster of this many worker processes (one thread each, loopback
        interface, no dashboard) for the run and close it afterwards. With the ``gpu``
        backend and ``dask_cuda`` importable, a ``LocalCUDACluster`` with one worker per GPU
        (at most ``workers``).
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``) to send the tasks to.
        At most one of ``workers`` and ``scheduler``; with neither, the tasks run in this
        process, one after the other (the same results, no Dask needed).
    retries : int
        How many times a task that raised is run again (Dask's ``retries``; the in-process
        run retries the same way). A task that returns a nonzero status is not retried.
    progress : bool
        Show a progress display of the tasks done on stderr (only when stderr is a terminal).
    label : str
        What the tasks are, for the log and the display (``"visits"``, ``"mvm"``, ...).
    backend : {"cpu", "gpu", "cudasim", "auto"}, optional
        The tasks' compute backend, used only to choose the kind of local cluster for
        ``workers`` (None reads ``HAPGPU_BACKEND``). The tasks choose their own backend.

    Returns
    -------
    list of int
        One exit status per task, in the order of ``tasks``: what the task returned (None is
        0), or :data:`EXIT_TASK_FAILED` (1) when it raised on every attempt or its worker kept
        dying (Dask's ``KilledWorker``); each failure is logged as one line naming the task.

    Raises
    ------
    InvalidParameterError
        Both ``workers`` and ``scheduler``, ``workers`` < 1, ``retries`` < 0, or a task that
        is not a :class:`Task` or ``(callable, *args)`` tuple.
    DistributedUnavailableError
        ``workers`` or ``scheduler`` without the ``distributed`` extra installed, a local
        cluster that cannot start, or no scheduler answering at ``scheduler``.
    hapgpu.errors.BackendUnavailableError
        ``workers`` with ``backend="gpu"`` on a machine without a usable CUDA device.
    """
    if workers is not None and scheduler is not None:
        raise InvalidParameterError("give either workers (start a local cluster) or scheduler (use a "
                                    "running one), not both")
    if workers is not None:
        try:
            if isinstance(workers, bool) or operator.index(workers) < 1:
                raise TypeError
        except TypeError:
            raise InvalidParameterError(f"workers must be a positive integer, got {workers!r}") from None
        workers = operator.index(workers)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InvalidParameterError(f"retries must be an integer >= 0, got {retries!r}")
    jobs = [_as_task(item, i) for i, item in enumerate(tasks)]
    if not jobs:
        return []
    show = bool(progress) and sys.stderr.isatty()
    if workers is None and scheduler is None:
        return _run_here(jobs, retries=retries, label=label, show=show)
    distributed = _import_distributed()
    with ExitStack() as stack:
        stack.enter_context(_quiet_dask_log())
        if workers is not None:
            cluster = stack.enter_context(_start_local_cluster(distributed, workers, backend))
            client = stack.enter_context(distributed.Client(cluster))
            # warnings and errors of the tasks appear in this process's log
            client.forward_logging("hapgpu", level=logging.WARNING)
            # a task's exception is logged here as one line, not as a worker's traceback too
            client.register_plugin(_quiet_task_failures(distributed))
            where = f"a local cluster of {len(cluster.workers)} worker processes"
        else:
            client = stack.enter_context(_connect(distributed, scheduler))
            where = f"the Dask scheduler at {scheduler} ({len(client.nthreads())} workers now)"
        log.info("%s: %d tasks on %s", label, len(jobs), where)
        return _run_on_cluster(distributed, client, jobs, retries=retries, label=label, show=show)


def _is_not_our_task_failure(record: logging.LogRecord) -> bool:
    """Log filter: False for a worker's "Compute Failed" report of one of our tasks."""
    args = record.args if isinstance(record.args, tuple) else ()
    return not (str(record.msg).startswith("Compute Failed") and bool(args)
                and str(args[0]).startswith(_KEY_PREFIX))


def _quiet_task_failures(distributed):
    """A worker plugin (for the workers of the local cluster, restarted ones included) that
    drops Dask's traceback report of a failed task: :func:`run_tasks` reports it as one line."""

    class QuietTaskFailures(distributed.WorkerPlugin):
        name = "hapgpu-quiet-task-failures"

        def setup(self, worker):
            logging.getLogger("distributed.worker").addFilter(_is_not_our_task_failure)

        def teardown(self, worker):
            logging.getLogger("distributed.worker").removeFilter(_is_not_our_task_failure)

    return QuietTaskFailures()


@contextmanager
def _quiet_dask_log():
    """Dask's own INFO messages (workers starting and stopping, ...) only at DEBUG level."""
    dask_log = logging.getLogger("distributed")
    previous = dask_log.level
    if not logging.getLogger("hapgpu").isEnabledFor(logging.DEBUG):
        dask_log.setLevel(max(logging.WARNING, previous))
    try:
        yield
    finally:
        dask_log.setLevel(previous)


def _start_local_cluster(distributed, n_workers: int, backend):
    """:func:`_local_cluster`, its start-up failures as :class:`DistributedUnavailableError`."""
    try:
        return _local_cluster(distributed, n_workers, backend)
    except (OSError, RuntimeError, TimeoutError) as exc:
        if isinstance(exc, HapGpuError):  # e.g. BackendUnavailableError: as it is
            raise
        raise DistributedUnavailableError(f"cannot start a local Dask cluster of {n_workers} workers: "
                                          f"{_one_line(exc)}") from exc


def _local_cluster(distributed, n_workers: int, backend):
    """The cluster ``workers=N`` starts: CUDA workers (one per GPU) or CPU worker processes."""
    from .backend import resolve_backend

    # no dashboard; the scheduler's plain HTTP endpoints (health, metrics) on a free loopback
    # port, never Dask's default 8787 that another cluster may hold
    common = {"threads_per_worker": 1, "host": _LOCALHOST, "dashboard_address": f"{_LOCALHOST}:0",
              "scheduler_kwargs": {"dashboard": False}}
    if resolve_backend(backend).name == "gpu":
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError:
            log.warning("dask-cuda is not installed: the %d workers share the GPU (pip install "
                        "dask-cuda for one worker per GPU)", n_workers)
        else:
            import cupy

            n_gpus = cupy.cuda.runtime.getDeviceCount()
            if n_workers > n_gpus:
                log.info("%d workers asked for, %d GPUs: one worker per GPU", n_workers, n_gpus)
            return LocalCUDACluster(n_workers=min(n_workers, n_gpus), **common)
    return distributed.LocalCluster(n_workers=n_workers, processes=True, **common)


def _connect(distributed, address: str):
    """A client of the scheduler at ``address``, or a clear error."""
    try:
        return distributed.Client(address)
    except (OSError, TimeoutError, ValueError) as exc:
        raise DistributedUnavailableError(
            f"cannot connect to the Dask scheduler at {address!r}: {_one_line(exc)} (start one "
            "with 'dask scheduler' and its workers with 'dask worker ADDRESS')") from exc


class _Display:
    """The rich progress display of tasks done (nothing when not shown)."""

    def __init__(self, label: str, total: int, show: bool):
        self._progress = None
        if not show:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn(f"[bold]{label}[/]"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("done {task.description}"), TimeElapsedColumn(),
                                  console=Console(stderr=True), transient=True)
        self._task = self._progress.add_task("", total=total)
        self._failed = 0

    def __enter__(self):
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc_info):
        if self._progress is not None:
            self._progress.stop()

    def done(self, code: int) -> None:
        if self._progress is None:
            return
        self._failed += int(code != 0)
        self._progress.update(self._task, advance=1,
                              description=f"({self._failed} failed)" if self._failed else "")


def _summary(label: str, jobs: list[Task], codes: list[int]) -> None:
    failed = [(job.name, code) for job, code in zip(jobs, codes) if code]
    if failed:
        log.warning("%s: %d of %d tasks failed: %s", label, len(failed), len(jobs),
                    ", ".join(f"{name} (exit status {code})" for name, code in failed))
    else:
        log.info("%s: all %d tasks succeeded", label, len(jobs))


def _run_here(jobs: list[Task], *, retries: int, label: str, show: bool) -> list[int]:
    """The in-process run: each task in order, retried like Dask retries it."""
    codes = []
    with _Display(label, len(jobs), show) as display:
        for job in jobs:
            for attempt in range(retries + 1):
                try:
                    value = job()
                except Exception as exc:  # the task's failure, not the runner's
                    if attempt < retries:
                        log.warning("%s %s: %s; running it again", label, job.name, _one_line(exc))
                        continue
                    log.error("%s %s failed: %s", label, job.name, _one_line(exc))
                    log.debug("traceback of %s", job.name, exc_info=True)
                    code = EXIT_TASK_FAILED
                else:
                    code = _exit_status(job, value)
                    if code:
                        log.warning("%s %s: exit status %d", label, job.name, code)
                break
            codes.append(code)
            display.done(code)
    _summary(label, jobs, codes)
    return codes


def _task_key(label: str, index: int) -> str:
    """A unique Dask key (a shared scheduler must never merge two runs' tasks)."""
    prefix = "".join(c if c.isalnum() else "_" for c in label) or "task"
    return f"{_KEY_PREFIX}{prefix}-{index:06d}-{uuid.uuid4().hex}"


def _run_on_cluster(distributed, client, jobs: list[Task], *, retries: int, label: str,
                    show: bool) -> list[int]:
    """Submit every task, collect the statuses as they finish (Dask retries and reschedules)."""
    futures = [client.submit(job, key=_task_key(label, i), pure=False, retries=retries)
               for i, job in enumerate(jobs)]
    index = {future.key: i for i, future in enumerate(futures)}
    codes: list[int | None] = [None] * len(jobs)
    try:
        with _Display(label, len(jobs), show) as display:
            for future in distributed.as_completed(futures):
                i = index[future.key]
                job = jobs[i]
                if future.status == "finished":
                    code = _exit_status(job, future.result())
                    if code:
                        log.warning("%s %s: exit status %d", label, job.name, code)
                else:  # "error" (raised on every attempt, or KilledWorker) or "cancelled"
                    exc = future.exception() if future.status == "error" else None
                    reason = _one_line(exc) if exc is not None else future.status
                    log.error("%s %s failed: %s", label, job.name, reason)
                    if exc is not None:
                        log.debug("traceback of %s", job.name, exc_info=(type(exc), exc, future.traceback()))
                    code = EXIT_TASK_FAILED
                codes[i] = code
                display.done(code)
    except BaseException:  # Ctrl-C or a lost scheduler: leave nothing running for this run
        client.cancel(futures)
        raise
    _summary(label, jobs, codes)
    return [int(c) for c in codes]
