"""``hapgpu mvm`` and ``hapgpu runmultihap``: the multi-visit pipeline from the command line."""

from __future__ import annotations

import argparse

__all__ = ["register"]

_LEVELS = ("critical", "error", "warning", "info", "debug")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _run(args: argparse.Namespace) -> int:
    from ._pipeline import run_mvm

    return run_mvm(args.pollers, args.output_dir, custom_pars=args.custom_pars,
                   output_custom_pars=args.output_custom_pars, diagnostic=args.diagnostic,
                   log_level=args.log_level, workers=args.workers, scheduler=args.scheduler)


def _add(subparsers, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(
        name, help=help_text,
        description="Make the HAP multi-visit (MVM) sky-cell layer products of one or more "
                    "sky cells, one MVM poller each: drizzled layers on the cell's bounded "
                    "frame with drizzlepac's names, keywords, trailers and manifest. The exit "
                    "status is drizzlepac's: 0 success, 1 error, 15 keyword update problem, "
                    "55 only HRC/SBC data, 65 no viable data (with several pollers: the first "
                    "non-zero one).")
    parser.add_argument("pollers", nargs="+", metavar="POLLER",
                        help="MVM poller file (10 columns: filename, proposal_id, program_id, "
                             "obset_id, exptime, filters, detector, skycell, NEW|OLD, pathname)")
    parser.add_argument("--output-dir", default=".", metavar="DIR",
                        help="folder for the products (default: the current directory)")
    parser.add_argument("-c", "--input-custom-pars", dest="custom_pars", default=None,
                        metavar="CUSTOM_PARS",
                        help="custom parameter file replacing the automatic parameter choice")
    parser.add_argument("--output-custom-pars", default=None, metavar="FILE",
                        help="write the parameters of every layer to this file")
    parser.add_argument("-d", "--diagnostic", action="store_true",
                        help="diagnostic mode: keep the renamed input copies")
    parser.add_argument("-l", "--log-level", default=None, type=str.lower, choices=_LEVELS,
                        metavar="LEVEL", help=f"log level: {', '.join(_LEVELS)} (default: info)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive, default=None, metavar="N",
                       help="run the layers on a local Dask cluster of N workers")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run the layers on the Dask scheduler at ADDRESS (tcp://host:port)")
    parser.set_defaults(func=_run)


def register(subparsers) -> None:
    """Add the ``mvm`` and ``runmultihap`` commands to the CLI."""
    _add(subparsers, "mvm", "make the multi-visit sky-cell mosaics of MVM pollers (runmultihap)")
    _add(subparsers, "runmultihap", "the same as 'mvm', under drizzlepac's name")
