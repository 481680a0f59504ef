"""Multi-visit sky-cell mosaics (MVM): drizzlepac's ``runmultihap`` on the hapgpu engines (hap-pipeline.md §2).

:func:`run_mvm` runs the pipeline on MVM pollers (``hapgpu mvm``, ``hapgpu runmultihap``).

Inputs: :func:`read_mvm_poller` reads a 10-column MVM poller (§2.3: NEW/OLD rows,
``MVM_ONLY_CTE``, ``MVM_INCLUDE_SMALL``, the MVM viability filter and the bad-guiding check
:func:`verify_guiding`) into an :class:`MvmPoller`; :func:`build_layers` turns it into the
:class:`SkyCellLayer` products of the sky cell (§2.4: fine layers, coarse + fine for IR and PC,
names, renamed inputs); :func:`generate_poller_file` writes SVM or MVM pollers (§5,
``hapgpu poller``).

>>> from hapgpu.mvm import read_mvm_poller, build_layers          # doctest: +SKIP
>>> [layer.drizzle_filename for layer in build_layers(read_mvm_poller("cell_input.out"))]
"""

from ._guiding import GuidingCache, verify_guiding
from ._layers import LayerExposure, SkyCellLayer, build_layers
from ._make_poller import generate_poller_file, locate_exposure
from ._pipeline import run_mvm
from ._poller import MvmPoller, MvmPollerRow, NoViableDataError, mvm_switches, read_mvm_poller

__all__ = [
    "GuidingCache",
    "LayerExposure",
    "MvmPoller",
    "MvmPollerRow",
    "NoViableDataError",
    "SkyCellLayer",
    "build_layers",
    "generate_poller_file",
    "locate_exposure",
    "mvm_switches",
    "read_mvm_poller",
    "run_mvm",
    "verify_guiding",
]
