"""Command-line errors: one line on stderr, a non-zero exit code, no traceback; ``--version``;
the backend checked before anything is simulated; CLI options (not Python keywords) in advice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from astropy.io import fits

import hapgpu
from hapgpu.backend import cuda_available, resolve_backend
from hapgpu.cli import EXIT_BACKEND, EXIT_ERROR, EXIT_USAGE, main
from hapgpu.errors import BackendUnavailableError

no_cuda = pytest.mark.skipif(cuda_available(), reason="checks the error on machines without CUDA")


def _error_line(capsys) -> str:
    """The single error line the CLI printed on stderr (asserts there is exactly one)."""
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error:" in ln]
    assert len(errors) == 1, captured.err
    assert "Traceback" not in captured.err + captured.out
    return errors[0]


@pytest.fixture(scope="module")
def ir_visit(tmp_path_factory) -> list[Path]:
    from hapgpu.simulate import simulate_visit

    out = tmp_path_factory.mktemp("ir")
    visit = simulate_visit(out, "wfc3-ir", 2, seed=8, shape=32, cosmic_rays=False)
    return [e.path for e in visit.exposures]


@pytest.fixture(scope="module")
def uvis_one(tmp_path_factory) -> Path:
    from hapgpu.simulate import simulate_visit

    out = tmp_path_factory.mktemp("uvis")
    return simulate_visit(out, "wfc3-uvis", 1, seed=9, shape=32, cosmic_rays=False).exposures[0].path


# --------------------------------------------------------------------------- --version
def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"hapgpu {hapgpu.__version__}"


# --------------------------------------------------------------------------- backend
@no_cuda
def test_gpu_demo_refused_before_simulating(tmp_path, capsys):
    outdir = tmp_path / "demo"
    assert main(["--backend", "gpu", "demo", str(outdir), "--size", "32", "--n-exposures", "2"]) == EXIT_BACKEND
    line = _error_line(capsys)
    assert "--backend cpu" in line and "backend='cpu'" not in line
    assert not outdir.exists() and list(tmp_path.iterdir()) == []
    assert "HAPGPU_BACKEND" not in os.environ or os.environ["HAPGPU_BACKEND"] != "gpu"  # restored


@no_cuda
def test_gpu_astrodrizzle_option_names_cli_options(ir_visit, tmp_path, capsys):
    files = [str(p) for p in ir_visit]
    rc = main(["astrodrizzle", *files, "--output", str(tmp_path / "x"), "--backend", "gpu", "--no-progress"])
    assert rc == EXIT_BACKEND
    line = _error_line(capsys)
    assert "needs a CUDA device" in line and "--backend cpu" in line and "backend='cpu'" not in line
    assert list(tmp_path.iterdir()) == []


@no_cuda
def test_gpu_from_environment_says_so(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HAPGPU_BACKEND", "gpu")
    assert main(["demo", str(tmp_path / "d"), "--size", "32"]) == EXIT_BACKEND
    line = _error_line(capsys)
    assert "HAPGPU_BACKEND=gpu is set" in line and "--backend cpu" in line
    assert os.environ["HAPGPU_BACKEND"] == "gpu"  # the caller's setting is left as it was


@no_cuda
def test_library_callers_keep_python_wording():
    with pytest.raises(BackendUnavailableError, match=r"needs a CUDA device.*backend='cpu'") as info:
        resolve_backend("gpu")
    assert "--backend" not in str(info.value) and info.value.hint and info.value.problem


# --------------------------------------------------------------------------- bad input, one line each
def test_directory_input(tmp_path, capsys):
    folder = tmp_path / "visit"
    folder.mkdir()
    rc = main(["--backend", "cpu", "astrodrizzle", str(folder), "--output", str(tmp_path / "x"), "--no-progress"])
    assert rc == EXIT_ERROR
    assert f"{folder}: is a directory" in _error_line(capsys)
    assert [p.name for p in tmp_path.iterdir()] == ["visit"]


def test_text_file_named_fits(tmp_path, capsys):
    text = tmp_path / "readme_flt.fits"
    text.write_text("not an image\n")
    rc = main(["--backend", "cpu", "astrodrizzle", str(text), "--output", str(tmp_path / "x"), "--no-progress"])
    assert rc == EXIT_ERROR
    line = _error_line(capsys)
    assert f"{text}: not a FITS file" in line and "ignore_missing_simple" not in line


def test_unknown_set_name_lists_closest(ir_visit, tmp_path, capsys):
    rc = main(["--backend", "cpu", "astrodrizzle", *map(str, ir_visit), "--output", str(tmp_path / "x"),
               "--set", "final_pixfrak=0.8", "--no-progress"])
    assert rc == EXIT_ERROR
    line = _error_line(capsys)
    assert "--set final_pixfrak=0.8" in line and "'final_pixfrak'" in line and "final_pixfrac" in line
    assert list(tmp_path.iterdir()) == []


def test_own_option_given_with_set_points_to_the_option(ir_visit, tmp_path, capsys):
    rc = main(["--backend", "cpu", "astrodrizzle", *map(str, ir_visit), "--output", str(tmp_path / "x"),
               "--set", "band_rows=10", "--no-progress"])
    assert rc == EXIT_ERROR
    assert "unknown AstroDrizzle parameter 'band_rows'" in _error_line(capsys)


def test_mixed_detectors_one_line(ir_visit, uvis_one, tmp_path, capsys):
    rc = main(["--backend", "cpu", "astrodrizzle", str(ir_visit[0]), str(uvis_one), "--output", str(tmp_path / "x"),
               "--no-progress"])
    assert rc == EXIT_ERROR
    line = _error_line(capsys)
    assert f"{ir_visit[0]} (INSTRUME/DETECTOR WFC3/IR)" in line and f"{uvis_one} (INSTRUME/DETECTOR WFC3/UVIS)" in line
    assert list(tmp_path.iterdir()) == []


def test_zero_exposure_time_is_a_warning_not_an_error(ir_visit, tmp_path, capsys):
    files = [tmp_path / p.name for p in ir_visit]
    for src, dst in zip(ir_visit, files):
        dst.write_bytes(src.read_bytes())
    fits.setval(files[0], "EXPTIME", value=0.0)
    rc = main(["--backend", "cpu", "astrodrizzle", *map(str, files), "--output", str(tmp_path / "x"),
               "--no-progress", "--no-update-inputs"])
    assert rc == 0
    assert fits.getval(tmp_path / "x_drz.fits", "NDRIZIM") == 1
    captured = capsys.readouterr()
    assert "dropped" in "".join(captured.err.split()) and "Traceback" not in captured.err


def test_usage_error_is_one_line(capsys):
    assert main(["astrodrizzle", "--no-such-option"]) == EXIT_USAGE
    line = _error_line(capsys)
    assert line.startswith("hapgpu astrodrizzle: error:") and "--help" in line


def test_operating_system_error_is_one_line(ir_visit, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the output folder should be\n")
    rc = main(["--backend", "cpu", "astrodrizzle", *map(str, ir_visit), "--output", str(blocker / "sub" / "x"),
               "--no-progress", "--no-update-inputs"])
    assert rc == EXIT_ERROR
    assert _error_line(capsys).startswith("hapgpu: error:")


# --------------------------------------------------------------------------- a real process
def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HAPGPU_BACKEND"}
    return subprocess.run([sys.executable, "-m", "hapgpu.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


@pytest.mark.slow
def test_real_process_exit_code_and_message(tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    failed = _run("--backend", "cpu", "astrodrizzle", str(folder), "--output", str(tmp_path / "x"), "--no-progress",
                  cwd=tmp_path)
    assert failed.returncode == EXIT_ERROR
    assert "Traceback" not in failed.stderr
    errors = [ln for ln in failed.stderr.splitlines() if "error:" in ln]
    assert errors == [f"hapgpu: error: {folder}: is a directory, not a FITS file (give the exposure files in it, "
                      f"e.g. '{folder / '*_fl?.fits'}')"]
