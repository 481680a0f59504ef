"""Run-time policy of the AstroDrizzle chain: memory plan, step timing and progress display."""

from __future__ import annotations

import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

__all__ = ["MemoryPlan", "plan_memory", "frame_bytes", "format_bytes", "StepTimer", "host_map"]

log = logging.getLogger(__name__)

# Device bytes per output pixel: one drizzle accumulator (float64 num/den, int32 zero index,
# float32 last value and context) plus the float32 result and weight it hands back.
_ACCUMULATOR_BYTES = 40
# Device bytes per stack pixel in the median (float32 data and weight, float64 sorted copy and
# temporaries, masks), and a fixed per-pixel overhead for the result.
_MEDIAN_BYTES_PER_IMAGE = 48
_MEDIAN_BYTES_FIXED = 96
_CPU_MEDIAN_BUDGET = 512 * 2**20


def frame_bytes(frame_shape, n_images: int) -> int:
    """Bytes the chain holds for an output frame processed whole (no bands).

    The separately drizzled stack (float32 SCI and WHT per image), one drizzle accumulator
    (:data:`_ACCUMULATOR_BYTES` per pixel) and the final SCI, WHT and one CTX plane (4 bytes
    each). An estimate made before anything is allocated, to refuse absurd frames.

    Parameters
    ----------
    frame_shape : (int, int)
        ``(ny, nx)``.
    n_images : int
        Number of input exposures.

    Returns
    -------
    int
        Bytes (a Python integer: no overflow for any frame).
    """
    ny, nx = (int(n) for n in frame_shape)
    return ny * nx * (8 * max(int(n_images), 1) + _ACCUMULATOR_BYTES + 12)


def format_bytes(n: int) -> str:
    """``n`` bytes in binary units: ``"1.02 TiB"``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024.0 or unit == "PiB":
            return f"{value:.3g} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024.0
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class MemoryPlan:
    """How the output frames are processed.

    Attributes
    ----------
    band_rows : int or None
        Rows per band of the separate and final drizzle (None: the whole frame at once).
    stack_on_device : bool
        Whether the separately drizzled images stay on the device (else they are staged in
        host memory between the drizzle and the median).
    median_rows : int
        Rows per median chunk.
    """

    band_rows: int | None
    stack_on_device: bool
    median_rows: int


def _device_budget(backend) -> int | None:
    if backend.name != "gpu":
        return None
    import cupy

    free, _total = cupy.cuda.runtime.memGetInfo()
    pool = cupy.get_default_memory_pool()
    return int(0.6 * (free + pool.free_bytes()))


def plan_memory(frame_shape, n_images: int, backend, band_rows: int | None = None) -> MemoryPlan:
    """Choose band and chunk sizes so the device working set fits.

    Parameters
    ----------
    frame_shape : (int, int)
        ``(ny, nx)`` of the larger output frame.
    n_images : int
        Number of separately drizzled images.
    backend : hapgpu.Backend
        Backend (its free memory decides on ``gpu``).
    band_rows : int, optional
        Force bands of this many rows (a test or a user can force banding).

    Returns
    -------
    MemoryPlan
    """
    ny, nx = frame_shape
    budget = _device_budget(backend)
    per_stack_pixel = _MEDIAN_BYTES_PER_IMAGE * max(n_images, 1) + _MEDIAN_BYTES_FIXED
    if budget is None:
        median_rows = max(16, _CPU_MEDIAN_BUDGET // (nx * per_stack_pixel))
        banded = band_rows is not None and band_rows < ny
        if banded:  # a forced band size also bounds the median chunks (exercises the halo)
            median_rows = min(median_rows, band_rows)
        return MemoryPlan(band_rows if banded else None, True, median_rows)
    median_rows = max(16, (budget // 2) // (nx * per_stack_pixel))
    whole = ny * nx * (8 * n_images + _ACCUMULATOR_BYTES)
    if band_rows is None and whole <= budget // 2:
        return MemoryPlan(None, True, median_rows)
    if band_rows is None:
        band_rows = max(16, (budget // 2) // (nx * _ACCUMULATOR_BYTES))
        log.info("output frame %dx%d does not fit on the device at once: %d-row bands", nx, ny, band_rows)
    banded = band_rows < ny
    return MemoryPlan(band_rows if banded else None, not banded, median_rows)


@dataclass
class StepTimer:
    """Wall time per step (device-synchronised), with an optional rich progress display."""

    backend: object
    show_progress: bool | None = None
    steps: dict = field(default_factory=dict)
    _progress: object = None
    _task: object = None

    def __post_init__(self):
        if self.show_progress is None:
            self.show_progress = sys.stderr.isatty()

    def start(self, total: int) -> None:
        """Open the progress display for ``total`` steps."""
        if not self.show_progress:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("[bold]astrodrizzle[/] {task.description}"), BarColumn(),
                                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                                  transient=True)
        self._progress.start()
        self._task = self._progress.add_task("", total=total)

    def stop(self) -> None:
        """Close the progress display."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    @contextmanager
    def step(self, name: str):
        """Time the block as step ``name`` (synchronising the device at its end)."""
        if self._progress is not None:
            self._progress.update(self._task, description=name)
        t0 = time.perf_counter()
        try:
            yield
            self.backend.synchronize()
        finally:
            self.steps[name] = self.steps.get(name, 0.0) + time.perf_counter() - t0
            if self._progress is not None:
                self._progress.advance(self._task)

    def skip(self, name: str, reason: str) -> None:
        """Record a step that did not run."""
        log.info("%s skipped: %s", name, reason)
        if self._progress is not None:
            self._progress.advance(self._task)

    def table(self) -> str:
        """One line: ``step 0.12 s | ... | total 1.23 s``."""
        parts = [f"{name} {seconds:.2f} s" for name, seconds in self.steps.items()]
        parts.append(f"total {sum(self.steps.values()):.2f} s")
        return " | ".join(parts)


def host_map(fn, items, xp) -> list:
    """``[fn(x) for x in items]``, on host threads for host arrays (FITS decoding and the
    statistics kernels release the GIL); in order on a device, or where threads may not launch
    kernels at once (:func:`hapgpu._threads.concurrent_kernels`)."""
    from .._threads import concurrent_kernels

    items = list(items)
    if xp is not np or len(items) < 2 or not concurrent_kernels():
        return [fn(item) for item in items]
    import numba

    with ThreadPoolExecutor(max_workers=max(1, numba.get_num_threads())) as pool:
        return list(pool.map(fn, items))
