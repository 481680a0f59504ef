"""``hapgpu.scaleout.run_tasks`` and ``hapgpu svm POLLER... --workers N | --scheduler ADDRESS``.

Real Dask clusters on the loopback interface: a module-wide 2-worker ``LocalCluster`` started
here (reached through ``scheduler=`` / ``--scheduler``, as a cluster started by ``dask
scheduler`` and ``dask worker`` would be) and the ones ``workers=`` starts. The small tasks
below write real FITS files; the SVM tests run four small simulated visits serially, on
``--workers 2`` and on the module's cluster while one of its workers is killed mid-visit.

The workers import the task functions from this module (they are pickled by reference).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import threading
import time
from pathlib import Path

import dask
import numpy as np
import pytest
from astropy.io import fits
from distributed import Client, LocalCluster

from hapgpu.cli import main
from hapgpu.errors import DistributedUnavailableError, InvalidInputError, InvalidParameterError
from hapgpu.scaleout import EXIT_TASK_FAILED, Task, run_tasks

#: The module's environment, set before any cluster starts: local workers inherit it. The
#: SVM catalogs are switched off to keep the visits fast (and to show the switch reaches the
#: workers: a worker without it would write catalogs the serial run does not).
ENVIRONMENT = {"SVM_CATALOG_UVIS": "off", "HAPGPU_BACKEND": "cpu"}


@pytest.fixture(scope="module", autouse=True)
def environment():
    with pytest.MonkeyPatch.context() as patch:
        for name, value in ENVIRONMENT.items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="module")
def cluster(environment):
    """A running 2-worker cluster, as ``dask scheduler`` + 2 x ``dask worker`` would give."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", scheduler_kwargs={"dashboard": False}) as local:
        yield local


# ----------------------------------------------------------------------------- small tasks
def write_image(path, value: float) -> int:
    """Write a small FITS image (temporary name, then renamed); exit status 0."""
    path = Path(path)
    data = np.arange(12, dtype=np.float32).reshape(3, 4) * np.float32(value)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, name="SCI")]).writeto(temporary)
    os.replace(temporary, path)
    return 0


def fail_first_time(marker, path, value: float) -> int:
    """Raise on the first call (leaves ``marker``), then write the image."""
    marker = Path(marker)
    if not marker.exists():
        marker.write_text("attempt 1\n")
        raise OSError(f"{marker}: first attempt fails on purpose")
    return write_image(path, value)


def broken(path) -> int:
    raise InvalidInputError(f"{path}: not a FITS file (on purpose)")


def exit_status(code: int) -> int:
    return code


def environment_matches(expected: dict, pid_file) -> int:
    """0 when every variable has its expected value in this process; records the process."""
    Path(pid_file).write_text(str(os.getpid()))
    return 0 if all(os.environ.get(k) == v for k, v in expected.items()) else 1


async def exit_worker():
    """Make the worker process exit at once, as a crash or a killed node would."""
    os._exit(1)


def image_tasks(folder: Path) -> list:
    folder.mkdir()
    return [Task(f"image{i}.fits", write_image, (str(folder / f"image{i}.fits"), i + 1.5))
            for i in range(4)] + [(exit_status, 3), Task("image9.fits", write_image, (str(folder / "image9.fits"),),
                                                         {"value": -2.0})]


def folder_bytes(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ----------------------------------------------------------------------------- run_tasks
def test_cluster_run_equals_serial_run(cluster, tmp_path):
    serial = run_tasks(image_tasks(tmp_path / "serial"), progress=False)
    distributed = run_tasks(image_tasks(tmp_path / "cluster"), scheduler=cluster.scheduler_address,
                            progress=False)
    assert serial == distributed == [0, 0, 0, 0, 3, 0]  # input order, not completion order
    made = folder_bytes(tmp_path / "cluster")
    assert sorted(made) == [f"image{i}.fits" for i in (0, 1, 2, 3, 9)]  # no temporary file
    assert made == folder_bytes(tmp_path / "serial")


@pytest.mark.parametrize("where", ["here", "cluster"])
def test_failed_task_is_retried(cluster, tmp_path, where):
    scheduler = cluster.scheduler_address if where == "cluster" else None
    marker, image = tmp_path / "marker", tmp_path / "retried.fits"
    codes = run_tasks([Task("retried.fits", fail_first_time, (str(marker), str(image), 2.0))],
                      scheduler=scheduler, retries=1, progress=False)
    assert codes == [0]
    assert marker.read_text() == "attempt 1\n"  # the first attempt ran and failed
    np.testing.assert_array_equal(fits.getdata(image, "SCI"), np.arange(12).reshape(3, 4) * 2.0)


@pytest.mark.parametrize("where", ["here", "cluster"])
def test_exception_becomes_exit_status(cluster, tmp_path, caplog, where):
    scheduler = cluster.scheduler_address if where == "cluster" else None
    tasks = [Task("a_input.out", exit_status, (0,)), Task("b_input.out", broken, ("b_flc.fits",)),
             Task("c_input.out", fail_first_time, (str(tmp_path / "m"), str(tmp_path / "c.fits"), 1.0))]
    with caplog.at_level(logging.INFO, logger="hapgpu"):
        codes = run_tasks(tasks, scheduler=scheduler, retries=0, progress=False, label="svm")
    assert codes == [0, EXIT_TASK_FAILED, EXIT_TASK_FAILED]
    failures = sorted(r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert failures == ["svm b_input.out failed: InvalidInputError: b_flc.fits: not a FITS file (on purpose)",
                        f"svm c_input.out failed: OSError: {tmp_path / 'm'}: first attempt fails on purpose"]
    assert "Traceback" not in caplog.text
    assert not (tmp_path / "c.fits").exists()  # no retry asked for


def test_local_cluster_workers_inherit_the_environment(tmp_path, monkeypatch):
    from hapgpu.kernels._cache import cache_root

    monkeypatch.setenv("HAPGPU_CACHE_DIR", str(cache_root()))  # the same folder, now explicit
    expected = {**ENVIRONMENT, "HAPGPU_CACHE_DIR": str(cache_root())}
    tasks = [Task(f"env{i}", environment_matches, (expected, str(tmp_path / f"pid{i}"))) for i in range(3)]
    assert run_tasks(tasks, workers=2, progress=False) == [0, 0, 0]
    pids = {int((tmp_path / f"pid{i}").read_text()) for i in range(3)}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2  # the cluster's worker processes
    # and an unexpected value is seen as such (the check can fail)
    wrong = [Task("env", environment_matches, ({"HAPGPU_BACKEND": "gpu"}, str(tmp_path / "pid")))]
    assert run_tasks(wrong, progress=False) == [1]


def test_invalid_arguments(tmp_path):
    task = [Task("t", exit_status, (0,))]
    with pytest.raises(InvalidParameterError, match="not both"):
        run_tasks(task, workers=2, scheduler="tcp://127.0.0.1:8786")
    for workers in (0, -1, 1.5, True):
        with pytest.raises(InvalidParameterError, match="workers must be a positive integer"):
            run_tasks(task, workers=workers)
    with pytest.raises(InvalidParameterError, match="retries"):
        run_tasks(task, retries=-1)
    with pytest.raises(InvalidParameterError, match="task 2: expected"):
        run_tasks([task[0], "a_input.out"])
    assert run_tasks([], workers=2) == []  # nothing to do: no cluster started


def test_unreachable_scheduler_is_a_clear_error():
    with socket.socket() as sock:  # a free port nobody listens on
        sock.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(DistributedUnavailableError, match=f"cannot connect to the Dask scheduler at '{address}'"):
            run_tasks([Task("t", exit_status, (0,))], scheduler=address, progress=False)


def test_missing_distributed_extra_is_named(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # what an install without the extra sees
    with pytest.raises(DistributedUnavailableError, match=re.escape("pip install 'hapgpu[distributed]'")):
        run_tasks([Task("t", exit_status, (0,))], workers=2)
    assert run_tasks([Task("t", exit_status, (0,))]) == [0]  # in-process runs need no Dask
    poller = tmp_path / "a_input.out"
    poller.write_text("")
    assert main(["svm", str(poller), "--workers", "2", "--output-dir", str(tmp_path / "out")]) == 1
    assert "the 'distributed' extra" in capsys.readouterr().err


# ----------------------------------------------------------------------------- hapgpu svm
def test_svm_options_are_exclusive_and_documented(capsys):
    assert main(["svm", "a_input.out", "--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
    assert main(["svm", "a_input.out", "--workers", "0"]) == 2
    assert main(["runsinglehap", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "POLLER [POLLER ...]" in text and "--workers N | --scheduler ADDRESS" in text
    assert "else the first nonzero status in the order of the pollers" in text


def test_svm_several_pollers_exit_status(tmp_path, capsys):
    empty = tmp_path / "empty_input.out"
    empty.write_text("")  # nothing to do: 0, no file written
    missing = tmp_path / "missing_input.out"
    out = tmp_path / "out"
    assert main(["-q", "svm", str(empty), str(missing), "--output-dir", str(out)]) == 1
    assert main(["-q", "svm", str(empty), str(empty), "--output-dir", str(out)]) == 1
    assert "poller given more than once" in capsys.readouterr().err
    assert main(["-q", "svm", str(empty), str(missing), "--output-dir", str(out),
                 "--output-custom-pars", str(tmp_path / "pars.json")]) == 1
    assert "--output-custom-pars takes one poller" in capsys.readouterr().err
    other = tmp_path / "other_input.out"
    other.write_text("")
    assert main(["-q", "svm", str(empty), str(other), "--output-dir", str(out)]) == 0
    assert not out.exists()  # made for the run, removed again: nothing was written


@pytest.fixture(scope="module")
def visits(tmp_path_factory, environment):
    """Four one-exposure WFC3/UVIS visits (48x48 subarrays), each with its poller."""
    from hapgpu.simulate import simulate_visit

    root = tmp_path_factory.mktemp("visits")
    return [str(simulate_visit(root / f"v{k}", "wfc3-uvis", 1, filters=["F555W"], shape=(48, 48),
                               seed=20 + k, visit=f"{k:02d}").poller) for k in range(1, 5)]


def svm_args(pollers, out) -> list:
    return ["-q", "svm", *pollers, "--no-align", "--no-previews", "--output-dir", str(out)]


@pytest.fixture(scope="module")
def serial_products(visits, tmp_path_factory):
    out = tmp_path_factory.mktemp("serial") / "products"
    assert main(svm_args(visits, out)) == 0
    return out


#: Header keywords that may differ between two runs of the same visit: DATE, the date the
#: product was written (FITS standard; differs when the runs straddle midnight). Nothing else
#: in the FITS products depends on when, where or in which process a visit ran.
RUN_DEPENDENT_KEYS = {"DATE"}
_TIMESTAMP = re.compile(r"(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def trailer_text(path: Path, out: Path) -> str:
    """A trailer without what differs between runs: times, timings, folders, and the note of
    a process that had to compile the kernels (the first to run since the cache changed)."""
    lines = [line for line in path.read_text().splitlines(keepends=True) if "compiling kernels" not in line]
    text = _TIMESTAMP.sub("", "".join(lines)).replace(str(out), "OUT")
    text = re.sub(r"\.hapgpu-svm-[\w.-]+", "STAGING", text)
    return re.sub(r" *\d+\.\d+", " #", text)  # seconds, in padded columns


def cards(header: fits.Header) -> list:
    return [(c.keyword, c.value, c.comment) for c in header.cards if c.keyword not in RUN_DEPENDENT_KEYS]


def assert_same_fits(a: Path, b: Path) -> None:
    """Same extensions, headers equal but for RUN_DEPENDENT_KEYS, data identical."""
    with fits.open(a) as ha, fits.open(b) as hb:
        assert [h.name for h in ha] == [h.name for h in hb], a.name
        for x, y in zip(ha, hb):
            assert cards(x.header) == cards(y.header), (a.name, x.name)
            if isinstance(x, fits.BinTableHDU):
                assert x.data.tobytes() == y.data.tobytes(), (a.name, x.name)
            elif x.data is not None or y.data is not None:
                np.testing.assert_array_equal(x.data, y.data, err_msg=f"{a.name}[{x.name}]")


def assert_same_products(made: Path, serial: Path) -> None:
    """Same files; FITS data identical and headers identical but for RUN_DEPENDENT_KEYS;
    manifests identical; trailers identical but for times and folders."""
    names = sorted(p.name for p in serial.iterdir())
    assert sorted(p.name for p in made.iterdir()) == names  # and no staging folder or temp file
    assert len([n for n in names if n.endswith("_manifest.txt")]) == 4
    for name in names:
        a, b = made / name, serial / name
        if name.endswith(".fits"):
            assert_same_fits(a, b)
        elif name.endswith("_trl.txt"):
            assert trailer_text(a, made) == trailer_text(b, serial), name
        else:
            assert a.read_bytes() == b.read_bytes(), name


@pytest.mark.slow
def test_svm_workers_equal_serial(visits, serial_products, tmp_path):
    out = tmp_path / "products"
    assert main(svm_args(visits, out) + ["--workers", "2"]) == 0
    assert_same_products(out, serial_products)


@pytest.mark.slow
def test_svm_scheduler_survives_a_lost_worker(visits, serial_products, cluster, tmp_path):
    """A worker killed in the middle of a visit: Dask runs that visit again on a worker, every
    product is made, and the killed attempt's staging folder is removed."""
    out = tmp_path / "products"
    out.mkdir()
    killed: dict = {}
    with Client(cluster.scheduler_address) as client:
        pids = client.run(os.getpid)  # {worker address: process id}

        def kill_a_worker_mid_visit():
            # run_svm stages a visit in .hapgpu-svm-<poller stem>-<pid>-<random>: kill the
            # worker process whose visit is under way
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                staging = [p for p in out.iterdir() if p.name.startswith(".hapgpu-svm-")]
                for address, pid in pids.items():
                    mine = [p for p in staging if f"-{pid}-" in p.name]
                    if mine:
                        killed.update(address=address, pid=pid, staging=mine)
                        client.run(exit_worker, workers=[address], wait=False)
                        return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_a_worker_mid_visit, daemon=True)
        killer.start()
        code = main(svm_args(visits, out) + ["--scheduler", cluster.scheduler_address])
        killer.join(timeout=5)
        client.wait_for_workers(2, timeout=120)
        pids_after = set(client.run(os.getpid).values())
    assert killed, "no worker was killed"
    assert code == 0
    assert killed["pid"] not in pids_after  # the nanny started a new worker process
    assert not any(p.exists() for p in killed["staging"])
    assert_same_products(out, serial_products)
