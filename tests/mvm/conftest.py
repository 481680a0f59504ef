"""Small simulated exposures shared by the MVM input tests (made once per session)."""

from __future__ import annotations

import pytest

from ._poller_inputs import make_exposures


@pytest.fixture(scope="session")
def exposures(tmp_path_factory):
    """``{key: Path}`` of the exposures of the poller, layer and poller-file tests
    (``_poller_inputs.make_exposures``: UVIS FLCs straddling two sky cells, IR FLTs, HRC)."""
    return make_exposures(tmp_path_factory.mktemp("mvm_poller_sim"))
