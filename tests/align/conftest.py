"""Fixtures of the alignment tests: small simulated visits with a known a priori WCS error."""

from __future__ import annotations

import pytest

from hapgpu.simulate import simulate_visit

from ._helpers import VISITS, WCS_ERROR


@pytest.fixture(scope="session")
def visit_cache(tmp_path_factory):
    """Simulate each visit once per session; tests copy it before changing files."""
    cache = {}

    def get(instrument: str, *, seed: int = 11, n_exposures: int = 2, wcs_error=WCS_ERROR,
            **overrides):
        key = (instrument, seed, n_exposures, repr(wcs_error), tuple(sorted(overrides.items())))
        if key not in cache:
            outdir = tmp_path_factory.mktemp(f"visit-{instrument}")
            kwargs = dict(VISITS[instrument])
            kwargs.update(overrides)
            cache[key] = simulate_visit(outdir, instrument, n_exposures=n_exposures, seed=seed,
                                        wcs_error=wcs_error, **kwargs)
        return cache[key]

    return get
