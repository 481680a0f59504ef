"""``run_mvm(..., workers=2)``: layer tasks of four sky cells on a local Dask cluster (loopback)
equal the serial run's products.

Two small UVIS exposures are pointed 60 fine pixels inside the south-west corner of
``skycell-p0121x12y16``,
where four sky cells overlap; one poller per cell (the cells ``get_sky_cells`` finds).
"""

from __future__ import annotations

import shutil

import pytest

from hapgpu.mvm import run_mvm
from hapgpu.simulate import simulate_visit
from hapgpu.skycells import SkyCell, get_sky_cells

from ._cell_inputs import CELL, assert_same_layer_products, write_mvm_poller

pytest.importorskip("distributed")


def _corner_target():
    cell = SkyCell.from_name(CELL)
    nx = cell.shape[1]
    ra, dec = cell.wcs.pixel_to_world_values(nx - 60, 60)
    return float(ra), float(dec)


@pytest.fixture(scope="module")
def four_cells(tmp_path_factory):
    """``(pollers, folder)``: one MVM poller per sky cell of the two corner exposures."""
    root = tmp_path_factory.mktemp("mvm_dask")
    result = simulate_visit(root / "raw", "wfc3-uvis", 2, filters=["F555W"], shape=48, seed=11,
                            visit="01", target=_corner_target(), progress=False)
    rows = []
    for record in result.exposures:
        suffix = record.path.name.split("_")[-1]
        name = f"hst_17001_01_wfc3_uvis_f555w_{record.rootname[:8]}_{suffix}"
        shutil.copyfile(record.path, root / name)
        rows.append((name, root / name, "01", "UVIS", "F555W", record.exptime, True))
    cells = get_sky_cells([str(path) for _, path, *_ in rows])
    pollers = [write_mvm_poller(root / f"{cell}_input.out", rows, skycell=cell) for cell in cells]
    return pollers, root


@pytest.mark.slow
def test_four_cells_on_two_workers_equal_the_serial_run(four_cells, tmp_path, monkeypatch):
    # the backend named, so that no process notes in a trailer how it resolved 'auto' (the
    # local cluster's workers inherit the environment)
    monkeypatch.setenv("HAPGPU_BACKEND", "cpu")
    pollers, _ = four_cells
    assert len(pollers) == 4
    serial, dask = tmp_path / "serial", tmp_path / "dask"
    assert run_mvm(pollers, output_dir=serial, progress=False) == 0
    assert run_mvm(pollers, output_dir=dask, workers=2, progress=False) == 0
    cells = {p.name.split("_")[0] for p in pollers}
    assert {p.name.split("_")[1] for p in serial.glob("*_dr?.fits")} == cells  # a layer per cell
    assert_same_layer_products(dask, serial)
