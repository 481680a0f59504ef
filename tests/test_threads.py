"""Parallel kernels launched from several host threads: only on a thread-safe Numba layer."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

# Two threads each run a Numba parallel kernel 20 times, inside hapgpu's one_launcher; prints
# what concurrent_kernels() says and the layer Numba uses.
_PROBE = """
import threading
import numba
import numpy as np
from hapgpu._threads import concurrent_kernels, one_launcher

@numba.njit(parallel=True, nogil=True)
def total(a):
    s = 0.0
    for i in numba.prange(a.shape[0]):
        s += a[i]
    return s

a = np.ones(1_000_000)
total(a)
results = []

def work():
    for _ in range(20):
        with one_launcher():
            results.append(total(a))

threads = [threading.Thread(target=work) for _ in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert results == [1e6] * 40, results
print(concurrent_kernels(), numba.threading_layer())
"""


def _probe(layer: str) -> list[str]:
    env = {**os.environ, "NUMBA_THREADING_LAYER": layer, "NUMBA_NUM_THREADS": "2"}
    proc = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True,
                          check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.split()


def test_workqueue_layer_runs_one_launch_at_a_time():
    # without one_launcher, Numba's workqueue ends this process ("Nested parallel kernel
    # launch detected") as soon as both threads launch at once
    assert _probe("workqueue") == ["False", "workqueue"]


def _importable(layer: str) -> bool:
    try:
        importlib.import_module(f"numba.np.ufunc.{layer}pool")
    except ImportError:  # its runtime (libtbb, libgomp) is not installed
        return False
    return True


def test_thread_safe_layers_launch_from_several_threads():
    layers = [layer for layer in ("tbb", "omp") if _importable(layer)]
    for layer in layers:
        assert _probe(layer) == ["True", layer]
    # Numba's own choice: the first thread-safe layer it can load, else the workqueue
    assert _probe("default") == (["True", layers[0]] if layers else ["False", "workqueue"])
