"""``hapgpu simulate``: write synthetic HST visits."""

from __future__ import annotations

import argparse
import logging

from ._instruments import INSTRUMENTS
from ._visit import simulate_visit

__all__ = ["register"]

log = logging.getLogger(__name__)


def _shape(text: str) -> tuple[int, int]:
    """Parse ``N`` or ``NY,NX``."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or NY,NX, got {text!r}") from None
    if len(values) == 1:
        return values[0], values[0]
    if len(values) == 2:
        return values[0], values[1]
    raise argparse.ArgumentTypeError(f"expected N or NY,NX, got {text!r}")


def _run_visit(args: argparse.Namespace) -> int:
    result = simulate_visit(
        args.outdir,
        instrument=args.instrument,
        n_exposures=args.n_exposures,
        filters=args.filters,
        seed=args.seed,
        crowded=args.crowded,
        roll_deg=args.roll,
        exptime=args.exptime,
        shape=args.shape,
        progress=not args.no_progress,
    )
    log.info("wrote %d exposures, %s, %s and truth/ in %s", len(result.exposures),
             result.poller.name, result.refcat.name, result.outdir)
    return 0


def register(subparsers) -> None:
    """Add the ``simulate`` command (with its ``visit`` subcommand) to the CLI."""
    parser = subparsers.add_parser(
        "simulate", help="write synthetic HST exposures with truth catalogues",
        description="Write synthetic, realistic HST data for tests and demos.")
    commands = parser.add_subparsers(dest="simulate_command", metavar="WHAT", required=True)
    visit = commands.add_parser(
        "visit", help="a visit of FLT/FLC exposures, poller, reference catalogue and truth",
        description="Write a visit: <rootname>_flc.fits (WFC3/UVIS) or _flt.fits (WFC3/IR, "
                    "ACS/HRC), refcat.ecsv, <ipppss>_input.out, input.lst and truth/.")
    visit.add_argument("outdir", metavar="OUTDIR", help="output folder (created if missing)")
    visit.add_argument("--instrument", choices=tuple(INSTRUMENTS), default="wfc3-uvis",
                       help="instrument/detector (default: %(default)s)")
    visit.add_argument("--n-exposures", type=int, default=4, metavar="N",
                       help="total number of exposures, split over the filters "
                            "(default: %(default)s)")
    visit.add_argument("--filters", default=None, metavar="F1,F2",
                       help="comma-separated filters (default: F555W for UVIS and HRC, "
                            "F160W for IR)")
    visit.add_argument("--seed", type=int, default=1, metavar="S",
                       help="random seed (default: %(default)s)")
    visit.add_argument("--crowded", action="store_true", help="add a dense star cluster")
    visit.add_argument("--roll", type=float, default=0.0, metavar="DEG",
                       help="roll of the last exposure relative to the first (default: 0)")
    visit.add_argument("--exptime", type=float, default=None, metavar="SECONDS",
                       help="exposure time of every exposure (default: per instrument)")
    visit.add_argument("--shape", type=_shape, default=None, metavar="NY,NX",
                       help="read out a subarray of each chip (fast, small files)")
    visit.add_argument("--no-progress", action="store_true", help="no progress bar")
    visit.set_defaults(func=_run_visit)
