"""A clean install stays clean: wheel, uninstall, editable install, in one environment.

The README's two commands run in order in one environment: ``pip install .`` (and the demo),
then ``pip install -e '.[test,reference]'``. An earlier build let Numba write its cache into
the installed package; pip's uninstall left that folder behind and it shadowed the editable
install (``FileNotFoundError ... hapgpu/data/templates``). This test replays the sequence in a
fresh virtual environment and checks that a run writes nothing inside the installed package.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from hapgpu.kernels._cache import cache_root

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _run(cmd, cwd, env, timeout=900):
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns
            for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory):
    """A new virtual environment that sees this environment's dependencies but not hapgpu."""
    root = tmp_path_factory.mktemp("install")
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     root, os.environ.copy()).stdout.strip())
    # the dependencies (NumPy, Numba, astropy, ...) come from the running environment; a path
    # line in a .pth file does not run that folder's own .pth files, so the editable hapgpu of
    # the running environment stays invisible
    (site / "_hapgpu_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = str(python.parent) + os.pathsep + env["PATH"]
    env["HAPGPU_CACHE_DIR"] = str(cache_root())  # share the test run's (warm) kernel cache
    env["HAPGPU_BACKEND"] = "cpu"
    return root, python, site, env


def _can_build_here() -> bool:
    """True when this environment has the build backend (else pip fetches it into isolation)."""
    try:
        import setuptools
        import wheel  # noqa: F401
    except ImportError:
        return False
    return int(setuptools.__version__.split(".")[0]) >= 77  # pyproject's build requirement


def _run_demo(python, workdir: Path, env) -> Path:
    """The README's demo (a small one): simulate a 2-filter visit and run the SVM on it; this
    also shows that the installed package carries the SVM's data (sky cells, pars, PSFs)."""
    workdir.mkdir()
    _run([python, "-m", "hapgpu.cli", "-q", "demo", "run", "--size", "64", "--no-progress",
          "--no-previews"], workdir, env)
    (manifest,) = (workdir / "run").glob("*_manifest.txt")
    names = manifest.read_text().split()
    assert any("_total_" in n and n.endswith(("_drc.fits", "_drz.fits")) for n in names), names
    for name in names:
        assert (workdir / "run" / name).is_file(), name
    return manifest


def test_wheel_then_editable_install(fresh_env):
    root, python, site, env = fresh_env
    wheels = root / "wheels"
    isolation = ["--no-build-isolation"] if _can_build_here() else []
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", *isolation, "-w", wheels, REPO],
         root, os.environ.copy())
    (wheel,) = wheels.glob("hapgpu-*.whl")

    # 1. the wheel, run from another directory: nothing is written inside the package
    _run([python, "-m", "pip", "install", "--no-deps", "-q", wheel], root, env)
    package = site / "hapgpu"
    assert (package / "kernels" / "drizzle.py").is_file()
    before = _snapshot(package)
    _run_demo(python, root / "run_wheel", env)
    after = _snapshot(package)
    assert after == before, f"files written into the installed package: {sorted(set(after) - set(before))}"
    assert not list(package.rglob("*.nbi")) and not list(package.rglob("*.nbc"))

    # 2. uninstall leaves nothing behind that could shadow a later install
    _run([python, "-m", "pip", "uninstall", "-y", "-q", "hapgpu"], root, env)
    assert not package.exists(), f"pip uninstall left {sorted(_snapshot(package))}"

    # 3. the editable install, run from yet another directory, finds its data files
    _run([python, "-m", "pip", "install", "--no-deps", "-q", *isolation, "-e", REPO],
         root, env)
    where = _run([python, "-c", "import hapgpu, pathlib; print(pathlib.Path(hapgpu.__file__).parent)"],
                 root, env).stdout.strip()
    assert Path(where) == REPO / "hapgpu"
    _run_demo(python, root / "run_editable", env)
