"""``hapgpu catalogs``: HAP point and segment catalogs of existing drizzled products."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .._jsonfile import read_json_object

__all__ = ["register"]

log = logging.getLogger(__name__)


def _run(args: argparse.Namespace) -> int:
    from . import make_hap_catalogs

    config = None
    if args.config:
        config = read_json_object(args.config, "catalog parameter file")
    cats = make_hap_catalogs(args.total, args.filters, config=config, types=args.types,
                             diagnostic=args.diagnostic)
    outdir = Path(args.output) if args.output else Path(args.total).resolve().parent
    for path in cats.write(outdir):
        print(path)
    for cat_type, table in cats.total.items():
        log.info("total %s catalog: %d sources%s", cat_type, len(table),
                 " (rejected: cosmic-ray dominated)" if cats.rejected.get(cat_type) else "")
    return 0


def register(subparsers) -> None:
    """Add the ``catalogs`` command to the CLI."""
    parser = subparsers.add_parser(
        "catalogs", help="HAP point and segment catalogs of a total product and its filter products",
        description="Identify sources on the total detection product, measure them on each "
                    "filter product (forced photometry), flag, trim and write "
                    "<product>_point-cat.ecsv and <product>_segment-cat.ecsv for every product, "
                    "as runsinglehap's catalog step does.")
    parser.add_argument("total", metavar="TOTAL_PRODUCT", help="total detection DRZ/DRC file")
    parser.add_argument("filters", nargs="+", metavar="FILTER_PRODUCTS",
                        help="filter DRZ/DRC files of the same visit and detector")
    parser.add_argument("-o", "--output", default=None, metavar="DIR",
                        help="output folder (default: beside the total product)")
    parser.add_argument("--types", default="both", choices=("both", "point", "segment"),
                        help="catalog types (default: %(default)s)")
    parser.add_argument("--config", default=None, metavar="PARS.json",
                        help='parameter overrides: {"catalog generation": {...}, '
                             '"quality control": {...}}')
    parser.add_argument("--diagnostic", action="store_true",
                        help="diagnostic mode: never reject cosmic-ray-dominated catalogs")
    parser.set_defaults(func=_run)
