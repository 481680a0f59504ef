"""The ``hapgpu`` command line.

Each subcommand lives beside the code it drives and registers itself through a
``register(subparsers)`` function; this module only assembles them, configures logging once,
and maps hapgpu's typed exceptions to exit codes.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from .backend import BACKEND_NAMES
from .errors import BackendUnavailableError, HapGpuError

__all__ = ["main", "build_parser"]

# Modules that provide ``register(subparsers)``; order is the order shown in --help.
_SUBCOMMAND_MODULES = (
    "hapgpu.resample._cli",
    "hapgpu.simulate._cli",
    "hapgpu.astrodrizzle._cli",
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_BACKEND = 3


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="hapgpu",
        description="GPU-accelerated Hubble Advanced Products pipeline.",
    )
    parser.add_argument(
        "--backend",
        choices=BACKEND_NAMES,
        default=None,
        help="compute backend (default: $HAPGPU_BACKEND, else auto)",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in _SUBCOMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 0 else logging.INFO)
    try:
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(show_path=False, rich_tracebacks=False)
        fmt = "%(message)s"
    except ImportError:  # rich is a dependency, but keep the CLI usable without it
        handler = logging.StreamHandler()
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=fmt, handlers=[handler], force=True)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    _configure_logging(args.verbose, args.quiet)
    if args.backend is not None:
        os.environ["HAPGPU_BACKEND"] = args.backend
    log = logging.getLogger("hapgpu")
    try:
        result = args.func(args)
    except BackendUnavailableError as exc:
        log.error("%s", exc)
        return EXIT_BACKEND
    except HapGpuError as exc:
        log.error("%s", exc)
        return EXIT_ERROR
    return EXIT_OK if result is None else int(result)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
