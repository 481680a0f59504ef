"""``run_mvm(..., scheduler=...)`` survives a Dask worker killed in the middle of a layer task.

Two small UVIS and two small WFC3/IR exposures are pointed 60 fine pixels inside the south-west
corner of ``skycell-p0121x12y16``, where four sky cells overlap; one poller per cell. Every cell
has a UVIS task (one layer) and an IR task of two layers that share their renamed inputs (the
coarse layer first, then the fine one).

The layers run on a 2-worker ``LocalCluster`` on the loopback interface, started here. While
the IR task of a cell is writing its second (fine) layer, after its coarse layer is done (its
product and trailer written, its DQ and MDRIZSKY updates written into the renamed inputs), the
worker process running it is killed with SIGKILL; its nanny starts a new one and Dask runs the
task again. Every product must still be made and equal the serial run's: no trailer lines of
the killed attempt, no file of it left over, the same pixels and headers.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from hapgpu.mvm import run_mvm
from hapgpu.simulate import simulate_visit
from hapgpu.skycells import get_sky_cells

from ._cell_inputs import assert_same_layer_products, write_mvm_poller
from .test_mvm_dask import _corner_target

pytest.importorskip("distributed")

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="finds the worker running a task by its open files (/proc)")]


@pytest.fixture(scope="module")
def environment():
    # the backend named, so that no process notes in a trailer how it resolved 'auto' (the
    # local cluster's workers inherit the environment)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HAPGPU_BACKEND", "cpu")
        yield


@pytest.fixture(scope="module")
def corner_pollers(tmp_path_factory):
    """One MVM poller per sky cell of two UVIS (F555W) and two IR (F160W) corner exposures."""
    root = tmp_path_factory.mktemp("mvm_lost_worker")
    rows = []
    for visit, instrument, filt, shape in (("01", "wfc3-uvis", "F555W", 48), ("02", "wfc3-ir", "F160W", 32)):
        det = instrument.split("-")[1]
        result = simulate_visit(root / f"raw{visit}", instrument, 2, filters=[filt], shape=shape, seed=30 + int(visit),
                                visit=visit, target=_corner_target(), progress=False)
        for record in result.exposures:
            suffix = record.path.name.split("_")[-1]
            name = f"hst_17001_{visit}_wfc3_{det}_{filt.lower()}_{record.rootname[:8]}_{suffix}"
            shutil.copyfile(record.path, root / name)
            rows.append((name, root / name, visit, det.upper(), filt, record.exptime, True))
    cells = get_sky_cells([str(path) for _, path, *_ in rows])
    return [write_mvm_poller(root / f"{cell}_input.out", rows, skycell=cell) for cell in cells]


@pytest.fixture(scope="module")
def serial_products(corner_pollers, environment, tmp_path_factory):
    out = tmp_path_factory.mktemp("serial") / "products"
    assert run_mvm(corner_pollers, output_dir=out, progress=False) == 0
    return out


@pytest.fixture(scope="module")
def cluster(environment):
    """A running 2-worker cluster (each worker process under a nanny that restarts it)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", scheduler_kwargs={"dashboard": False}) as local:
        yield local


def open_files(pid: int) -> list[Path]:
    """The files process ``pid`` has open (none once it is gone)."""
    fds = Path(f"/proc/{pid}/fd")
    paths = []
    try:
        entries = list(fds.iterdir())
    except OSError:
        return paths
    for entry in entries:
        try:
            paths.append(Path(os.readlink(entry)))
        except OSError:  # closed meanwhile
            pass
    return paths


def fine_ir_trailer(path: Path) -> bool:
    """Whether ``path`` is the trailer log of a fine IR layer being written."""
    return path.name.endswith("_wfc3_ir_f160w_all_trl.log")


def test_layer_task_survives_a_killed_worker(corner_pollers, serial_products, cluster, tmp_path):
    from distributed import Client

    out = tmp_path / "products"
    out.mkdir()
    killed: dict = {}
    with Client(cluster.scheduler_address) as client:
        pids = client.run(os.getpid)  # {worker address: process id}

        def kill_a_worker_mid_task():
            # a worker writing the trailer of a fine IR layer is in the second layer of its task
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                for address, pid in pids.items():
                    trailer = next((p for p in open_files(pid) if fine_ir_trailer(p)), None)
                    if trailer is not None and trailer.exists() and trailer.stat().st_size > 0:
                        os.kill(pid, signal.SIGKILL)
                        killed.update(address=address, pid=pid, trailer=trailer,
                                      staged=sorted(p.name for p in trailer.parent.iterdir()))
                        return
                time.sleep(0.005)

        killer = threading.Thread(target=kill_a_worker_mid_task, daemon=True)
        killer.start()
        code = run_mvm(corner_pollers, output_dir=out, scheduler=cluster.scheduler_address, progress=False)
        killer.join(timeout=5)
        client.wait_for_workers(2, timeout=120)
        pids_after = set(client.run(os.getpid).values())
    assert killed, "no worker was killed"
    assert killed["pid"] not in pids_after  # it is gone; its nanny started a new worker process
    # it was killed after the coarse layer of its task was made: product and trailer written
    coarse = killed["trailer"].name.replace("_all_trl.log", "_coarse-all")
    assert {f"{coarse}_drz.fits", f"{coarse}_trl.txt"} <= set(killed["staged"]), killed["staged"]
    assert code == 0
    assert not killed["trailer"].parent.exists()  # the cell's staging folder is gone
    cells = {p.name.split("_")[0] for p in corner_pollers}
    assert len(cells) == 4
    products = sorted(p.name for p in serial_products.glob("*_dr?.fits"))
    assert {name.split("_")[1] for name in products} == cells
    assert len(products) == 12  # UVIS fine, IR coarse and fine for each cell
    assert_same_layer_products(out, serial_products)
