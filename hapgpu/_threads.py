"""Whether host threads may run parallel CPU kernels at the same time.

hapgpu overlaps host work on threads: AstroDrizzle reads and measures exposures on a pool,
the catalogs prepare the filter images beside the total's source identification, the products'
S_REGION and weight statistics are measured while their headers are built, MVM checks the
guiding of several exposures at once, and a Dask worker may run several tasks. Each of these
threads calls Numba ``parallel=True`` kernels.

Numba runs parallel kernels on a *threading layer*: TBB, OpenMP or its own workqueue. TBB and
OpenMP take launches from several threads at once; the workqueue does not, and Numba ends the
process ("Terminating: Nested parallel kernel launch detected") when two threads launch at once.
Numba uses the workqueue where neither TBB nor an OpenMP runtime (``libgomp``) is installed
(slim container images, macOS without TBB) or where ``NUMBA_THREADING_LAYER=workqueue`` asks
for it. There, :func:`concurrent_kernels` is False and the overlapping work runs in order
instead: the same products, without the overlap.
"""

from __future__ import annotations

import functools
import threading
from contextlib import contextmanager

__all__ = ["concurrent_kernels", "one_launcher"]

#: Held by a task while it runs where only one thread at a time may launch kernels.
_LAUNCH_LOCK = threading.RLock()


@functools.cache
def concurrent_kernels() -> bool:
    """True when Numba's threading layer takes parallel kernel launches from several host
    threads at once (TBB or OpenMP), False for the workqueue layer.

    Starts Numba's thread pool (``numba.get_num_threads``) so that the layer is the one this
    process will use, then asks ``numba.threading_layer()``.
    """
    import numba

    numba.get_num_threads()
    return numba.threading_layer() != "workqueue"


@contextmanager
def one_launcher():
    """Run the block alone among the threads that enter this context, where only one thread
    at a time may launch parallel kernels (:func:`concurrent_kernels` False); a no-op
    elsewhere. Re-entrant."""
    if concurrent_kernels():
        yield
        return
    with _LAUNCH_LOCK:
        yield
