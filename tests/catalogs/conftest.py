"""Session fixtures of the end-to-end catalog tests: simulated SVM products, drizzlepac's
catalogs of them (the oracle) and ours, each made once per session under a pytest tmp dir."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from ._products import SPECS, build_product_set


@dataclass
class OurCatalogs:
    """hapgpu's catalogs of a product set: the result, the files written, the wall time."""

    result: object
    files: list
    folder: Path
    seconds: float


@pytest.fixture(scope="session")
def product_set(tmp_path_factory):
    """``product_set(name)``: the :data:`SPECS` product set ``name``, built once."""
    cache = {}

    def get(name: str):
        if name not in cache:
            cache[name] = build_product_set(tmp_path_factory.mktemp(f"products-{name}"), SPECS[name])
        return cache[name]

    return get


@pytest.fixture(scope="session")
def oracle_catalogs(product_set, tmp_path_factory):
    """``oracle_catalogs(name)``: drizzlepac's catalogs of product set ``name``."""
    from ._oracle import run_drizzlepac_catalogs

    cache = {}

    def get(name: str):
        if name not in cache:
            cache[name] = run_drizzlepac_catalogs(product_set(name),
                                                  tmp_path_factory.mktemp(f"drizzlepac-{name}"),
                                                  log_level=logging.ERROR)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def our_catalogs(product_set, tmp_path_factory):
    """``our_catalogs(name, backend="cpu")``: make_hap_catalogs of product set ``name``,
    written to a folder of its own."""
    from hapgpu.catalogs import make_hap_catalogs

    cache = {}

    def get(name: str, backend: str = "cpu"):
        key = (name, backend)
        if key not in cache:
            total, filters = product_set(name).catalog_inputs()
            start = time.perf_counter()
            result = make_hap_catalogs(total, filters, backend=backend)
            seconds = time.perf_counter() - start
            folder = tmp_path_factory.mktemp(f"hapgpu-{name}-{backend}")
            cache[key] = OurCatalogs(result, result.write(folder), folder, seconds)
        return cache[key]

    return get
