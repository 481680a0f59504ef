"""Fixtures of the AstroDrizzle tests: small simulated visits, copied per test (runs update inputs)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hapgpu.simulate import simulate_visit


def copy_visit(visit_dir: Path, dest: Path) -> list[Path]:
    """Copy a simulated visit (exposures and truth) to ``dest``; return the exposure paths."""
    shutil.copytree(visit_dir, dest)
    return sorted(dest.glob("*_fl?.fits"))


@pytest.fixture(scope="session")
def uvis_small(tmp_path_factory) -> Path:
    """A 3-exposure WFC3/UVIS visit of 96x128 subarray chips (two chips per exposure)."""
    out = tmp_path_factory.mktemp("uvis_small")
    simulate_visit(out / "visit", "wfc3-uvis", 3, seed=11, shape=(96, 128))
    return out / "visit"


@pytest.fixture()
def small_inputs(uvis_small, tmp_path) -> list[Path]:
    """Fresh copies of the small UVIS visit's FLC files."""
    return copy_visit(uvis_small, tmp_path / "visit")


@pytest.fixture
def fresh_memo(monkeypatch):
    """An empty sky-statistics memo in place of the process's (hapgpu.astrodrizzle._sky)."""
    from hapgpu.astrodrizzle import _sky

    memo = _sky._StatisticMemo(max_entries=64)
    monkeypatch.setattr(_sky, "_MEMO", memo)
    return memo
