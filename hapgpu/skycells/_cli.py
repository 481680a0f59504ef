"""``hapgpu skycells``: report the sky cells that exposures touch (drizzlepac ``which_skycell``)."""

from __future__ import annotations

import argparse
import logging
import sys

__all__ = ["register", "format_report"]

log = logging.getLogger(__name__)


def format_report(sky_cells: dict, *, by_file: bool = False, which_skycell: bool = False) -> str:
    """Text report of :func:`hapgpu.skycells.get_sky_cells`'s result.

    Parameters
    ----------
    sky_cells : dict of str to SkyCell
        Output of ``get_sky_cells``.
    by_file : bool, keyword-only
        One line per exposure with its ``SKYCELL``-style list (``p0121x12y16; ...``) instead.
    which_skycell : bool, keyword-only
        drizzlepac ``which_skycell``'s layout instead: per cell, ``Skycell <id> contains <n>
        image(s)`` and the members indented, one per line.

    Returns
    -------
    str
        By default one line per sky cell: the cell name (``skycell-pPPPPxXXyYY``) followed by
        its member files, separated by blanks. Ends with a newline unless empty.
    """
    from ._cells import SKYCELL_PREFIX
    from ._search import interpret_scells

    lines = []
    if by_file:
        for member, cells in interpret_scells(sky_cells).items():
            ids = "; ".join(cell_id[len(SKYCELL_PREFIX):] for cell_id in cells if cell_id != "id")
            lines.append(f"{member}: {ids}")
    elif which_skycell:
        for cell_id, cell in sky_cells.items():
            lines.append(f"Skycell {cell_id} contains {len(cell.members)} image(s)")
            lines.extend(f"     {member}" for member in cell.members)
    else:
        lines = [" ".join([cell_id, *map(str, cell.members)]) for cell_id, cell in sky_cells.items()]
    return "".join(line + "\n" for line in lines)


def _run(args: argparse.Namespace) -> int:
    from ._search import get_sky_cells

    exposures = list(args.files)
    if args.input_list:
        from ._search import _exposure_list

        exposures.extend(_exposure_list(args.input_list))
    if not exposures:
        from ..errors import InvalidParameterError

        raise InvalidParameterError("no exposures: give FILES or --input-list LIST")
    sky_cells = get_sky_cells(exposures, scale=args.scale)
    if not sky_cells:
        log.warning("no sky cells found for %d exposure(s)", len(exposures))
        return 0
    sys.stdout.write(format_report(sky_cells, by_file=args.by_file,
                                   which_skycell=args.which_skycell))
    return 0


def register(subparsers) -> None:
    """Add the ``skycells`` command to the CLI."""
    parser = subparsers.add_parser(
        "skycells", help="list the MVM sky cells that FLT/FLC exposures touch",
        description="Find the sky cells (skycell-pPPPPxXXyYY of the HAP all-sky tessellation) "
                    "that each exposure overlaps, as drizzlepac's get_sky_cells does, and print "
                    "one line per sky cell: the cell name followed by its exposures.")
    parser.add_argument("files", nargs="*", metavar="FILES", help="FLT/FLC exposures")
    parser.add_argument("-i", "--input-list", default=None, metavar="LIST",
                        help="text file whose first column names more exposures (e.g. a poller)")
    parser.add_argument("--by-file", action="store_true",
                        help="one line per exposure with its SKYCELL keyword value instead")
    parser.add_argument("--which-skycell", action="store_true",
                        help="drizzlepac which_skycell's layout: a header line per cell, then "
                             "its exposures indented, one per line")
    parser.add_argument("--scale", type=float, default=None, metavar="ARCSEC",
                        help="projection-cell pixel scale (default: the tessellation's, 0.04)")
    parser.set_defaults(func=_run)
