"""The command line: ``hapgpu demo`` and ``hapgpu astrodrizzle``; products, clear errors, no
partial files, exit codes."""

import numpy as np
import pytest
from astropy.io import fits

from hapgpu.backend import cuda_available
from hapgpu.cli import main


@pytest.fixture(scope="module")
def small_visit(tmp_path_factory):
    from hapgpu.simulate import simulate_visit

    out = tmp_path_factory.mktemp("visit")
    return simulate_visit(out, instrument="wfc3-ir", n_exposures=2, seed=5, shape=64)


def test_astrodrizzle_command_writes_product(small_visit, tmp_path):
    files = [str(e.path) for e in small_visit.exposures]
    rc = main(["--backend", "cpu", "astrodrizzle", *files, "--output", str(tmp_path / "mosaic"),
               "--no-update-inputs"])
    assert rc == 0
    product = tmp_path / "mosaic_drz.fits"
    assert product.exists() and not list(tmp_path.glob("*.part")) and not list(tmp_path.glob("*.tmp*"))
    with fits.open(product) as hdul:
        assert [h.name for h in hdul][:4] == ["PRIMARY", "SCI", "WHT", "CTX"]
        assert hdul[0].header["NDRIZIM"] == 2
        wht = hdul["WHT"].data
        assert np.isfinite(hdul["SCI"].data[wht > 0]).all()
        assert set(np.unique(hdul["CTX"].data)) <= {0, 1, 2, 3}


def logged(capsys) -> str:
    """Everything the CLI printed, with rich's line wrapping removed."""
    captured = capsys.readouterr()
    return "".join((captured.out + captured.err).split())


def test_missing_input_is_a_clear_error(tmp_path, capsys):
    rc = main(["--backend", "cpu", "astrodrizzle", str(tmp_path / "nope_flt.fits"), "--output", str(tmp_path / "x")])
    assert rc != 0
    assert "nope_flt.fits" in logged(capsys)
    assert not list(tmp_path.iterdir())


def test_corrupt_input_leaves_no_product(tmp_path, capsys):
    bad = tmp_path / "bad_flt.fits"
    bad.write_bytes(b"SIMPLE  = this is not a FITS file" * 10)
    rc = main(["--backend", "cpu", "astrodrizzle", str(bad), "--output", str(tmp_path / "x")])
    assert rc == 1
    assert "bad_flt.fits" in logged(capsys)
    assert not (tmp_path / "x_drz.fits").exists()


@pytest.mark.skipif(cuda_available(), reason="checks the error on machines without CUDA")
def test_gpu_backend_without_cuda_exits_cleanly(small_visit, tmp_path, capsys):
    files = [str(e.path) for e in small_visit.exposures]
    rc = main(["--backend", "gpu", "astrodrizzle", *files, "--output", str(tmp_path / "x")])
    assert rc == 3
    assert "needsaCUDAdevice" in logged(capsys)


