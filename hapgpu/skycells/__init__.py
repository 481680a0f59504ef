"""The HAP sky tessellation and the sky-cell search (hap-pipeline.md §2.1, §2.2).

Projection cells and sky cells as drizzlepac 3.11 ``haputils/cell_utils.py`` defines them, the
search for the sky cells that a set of exposures touches (``get_sky_cells``, shared by the SVM
``SKYCELL`` keyword and the MVM poller) and the ``hapgpu skycells`` command.

>>> from hapgpu.skycells import SkyCell
>>> cell = SkyCell.from_name("skycell-p1889x07y19")
>>> cell.shape, tuple(cell.wcs.wcs.crpix)
((21954, 21954), (96492.0, -160812.0))
"""

from ._cells import (SKYCELL_PREFIX, SUPPORTED_SCALES, GridDefs, ProjectionCell, Ring, SkyCell,
                     default_grid, parse_sky_cell_name, resolve_scale, sky_cell_name)
from ._edges import footprint_edges, trace_border
from ._search import (SKYCELL_COMMENT, add_skycell_keyword, extract_visit, get_sky_cells,
                      interpret_scells, skycell_keyword, update_skycell_keyword)

__all__ = [
    "SUPPORTED_SCALES",
    "SKYCELL_PREFIX",
    "SKYCELL_COMMENT",
    "Ring",
    "GridDefs",
    "ProjectionCell",
    "SkyCell",
    "default_grid",
    "sky_cell_name",
    "parse_sky_cell_name",
    "resolve_scale",
    "footprint_edges",
    "trace_border",
    "get_sky_cells",
    "interpret_scells",
    "skycell_keyword",
    "update_skycell_keyword",
    "add_skycell_keyword",
    "extract_visit",
]
