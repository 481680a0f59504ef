"""``hapgpu demo``: a simulated two-filter WFC3/UVIS visit through the single-visit pipeline.

The demo at a small subarray: exit status 0, the manifest in drizzlepac's order with every file
present, the printed paths, the drizzled products on one frame with data where they have
weight; and the refusals that must come before anything is simulated.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from hapgpu._demo import run_demo
from hapgpu.cli import EXIT_ERROR, EXIT_USAGE, main
from hapgpu.errors import InvalidParameterError

from .svm._pipeline_visit import expected_manifest

MANIFEST = "wfc3_sim_01_manifest.txt"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """``hapgpu demo OUTDIR --size 64`` on the CPU: (exit code, OUTDIR, stdout lines)."""
    outdir = tmp_path_factory.mktemp("demo") / "demo"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["--backend", "cpu", "-q", "demo", str(outdir), "--size", "64", "--no-progress"])
    return code, outdir, out.getvalue().splitlines()


@pytest.mark.slow
def test_demo_exit_code_and_manifest(demo_run):
    code, outdir, _ = demo_run
    assert code == 0
    names = (outdir / MANIFEST).read_text().splitlines()
    # the simulated visit is the UVIS part of the pipeline tests' visit: same names and order
    assert names == expected_manifest(ir=False)
    missing = [n for n in names if not (outdir / n).is_file()]
    assert not missing, f"listed in the manifest but not written: {missing}"
    inputs = sorted(p.name for p in (outdir / "visit").glob("*_flc.fits"))
    assert inputs == ["isim01a0q_flc.fits", "isim01a1q_flc.fits", "isim01a2q_flc.fits",
                      "isim01a3q_flc.fits"]
    assert (outdir / "visit" / "refcat.ecsv").is_file()  # what --align would use


@pytest.mark.slow
def test_demo_prints_the_files_written(demo_run):
    code, outdir, lines = demo_run
    assert code == 0
    printed = [Path(line) for line in lines]
    assert printed[0] == outdir / MANIFEST
    names = (outdir / MANIFEST).read_text().splitlines()
    assert [p.name for p in printed[1:len(names) + 1]] == names
    jpegs = printed[len(names) + 1:]
    assert jpegs and all(p.suffix == ".jpg" for p in jpegs)
    assert sorted(jpegs) == sorted(outdir.glob("*.jpg"))
    assert all(p.is_file() for p in printed)
    assert not list(outdir.glob(".*"))  # no staging folder or temporary file left


@pytest.mark.slow
def test_demo_products_have_data(demo_run):
    _, outdir, _ = demo_run
    products = sorted(outdir.glob("*_drc.fits"))
    assert len(products) == 7  # 4 exposures, 2 filters, 1 total
    shapes = set()
    for path in products:
        with fits.open(path) as hdul:
            sci, wht = hdul["SCI"].data, hdul["WHT"].data
            shapes.add(sci.shape)
            covered = wht > 0
            assert covered.mean() > 0.3, path.name
            assert np.isfinite(sci[covered]).all(), path.name
            assert hdul[0].header["NDRIZIM"] >= 1, path.name
    assert len(shapes) == 1  # every product on the visit's one north-up frame
    total = fits.getheader(outdir / "hst_17001_01_wfc3_uvis_total_isim01_drc.fits")
    assert total["NDRIZIM"] == 8  # drizzled chips: 4 exposures x 2 UVIS chips


def test_demo_refuses_bad_parameters_before_writing(tmp_path):
    for kwargs in ({"exposures_per_filter": 0}, {"size": -1}, {"instrument": "wfpc2"}):
        with pytest.raises(InvalidParameterError):
            run_demo(tmp_path / "d", backend="cpu", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_demo_command_line_errors(tmp_path, capsys):
    assert main(["demo", str(tmp_path / "d"), "--size", "64", "--full-frame"]) == EXIT_USAGE
    assert main(["--backend", "cpu", "demo", str(tmp_path / "d"), "--n-exposures", "0"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "exposures per filter must be 1-49, got 0" in " ".join(err.split())
    assert list(tmp_path.iterdir()) == []
