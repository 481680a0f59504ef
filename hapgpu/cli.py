"""The ``hapgpu`` command line.

Each subcommand lives beside the code it drives and registers itself through a
``register(subparsers)`` function; this module only assembles them, configures logging once,
and maps hapgpu's typed exceptions to exit codes.

Every error ends the run with one line on stderr, ``hapgpu: error: <message>``, and a non-zero
exit code (no traceback; ``-v`` adds the traceback to the log for unexpected errors):

====  ==================================================================================
code  meaning
====  ==================================================================================
0     success
1     bad input or parameters (hapgpu's typed errors), or an operating-system error
2     command-line usage error
3     the requested backend cannot run here
4     an unexpected internal error
130   interrupted (Ctrl-C)
====  ==================================================================================
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from . import __version__
from .backend import BACKEND_NAMES
from .errors import BackendUnavailableError, HapGpuError

__all__ = ["main", "build_parser"]

# Modules that provide ``register(subparsers)``; order is the order shown in --help.
_SUBCOMMAND_MODULES = (
    "hapgpu.resample._cli",
    "hapgpu.simulate._cli",
    "hapgpu.astrodrizzle._cli",
    "hapgpu.align._cli",
    "hapgpu.catalogs._cli",
    "hapgpu.skycells._cli",
    "hapgpu.mvm._poller_cli",
    "hapgpu.mvm._cli",
    "hapgpu.svm._cli",
    "hapgpu.runastrodriz._cli",
    "hapgpu._compilation",
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_BACKEND = 3
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130

_BACKEND_ENV = "HAPGPU_BACKEND"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (subcommand parsers inherit the class)."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level argument parser with every subcommand registered."""
    parser = _Parser(
        prog="hapgpu",
        description="GPU-accelerated Hubble Advanced Products pipeline.",
    )
    parser.add_argument("--version", action="version", version=f"hapgpu {__version__}")
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
        from rich.console import Console
        from rich.logging import RichHandler

        # the log goes to stderr, stdout keeps the results (``hapgpu demo`` prints its product)
        handler: logging.Handler = RichHandler(console=Console(stderr=True), show_path=False,
                                               rich_tracebacks=False)
        fmt = "%(message)s"
    except ImportError:  # rich is a dependency, but keep the CLI usable without it
        handler = logging.StreamHandler()
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    # the handler's own level keeps -q quiet when a pipeline lowers the hapgpu logger's level
    # for its trailers (run_svm records INFO in them, as drizzlepac does)
    handler.setLevel(level)
    logging.basicConfig(level=level, format=fmt, handlers=[handler], force=True)


def _report(message: str) -> None:
    """The one-line error report on stderr."""
    text = " ".join(str(message).split())
    print(f"hapgpu: error: {text}", file=sys.stderr, flush=True)


def _backend_message(exc: BackendUnavailableError, from_option: bool) -> str:
    """The backend error in command-line terms (options, not Python keywords)."""
    source = ""
    if not from_option and os.environ.get(_BACKEND_ENV):
        source = f" ({_BACKEND_ENV}={os.environ[_BACKEND_ENV]} is set)"
    return f"{exc.problem}{source} Use --backend cpu, or --backend auto to use a GPU only when there is one."


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the process exit code.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit code (see the module docstring); errors are reported as one line on stderr.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: argparse has printed them
        return EXIT_OK if exc.code is None else exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    _configure_logging(args.verbose, args.quiet)
    previous = os.environ.get(_BACKEND_ENV)
    if args.backend is not None:  # the run's default backend; restored afterwards
        os.environ[_BACKEND_ENV] = args.backend
    from_option = args.backend is not None or getattr(args, "ad_backend", None) is not None
    try:
        return _dispatch(args, from_option)
    finally:
        if previous is None:
            os.environ.pop(_BACKEND_ENV, None)
        else:
            os.environ[_BACKEND_ENV] = previous


def _dispatch(args, from_option: bool) -> int:
    """Run the subcommand; map exceptions to exit codes with a one-line report."""
    log = logging.getLogger("hapgpu")
    try:
        result = args.func(args)
    except BackendUnavailableError as exc:
        _report(_backend_message(exc, from_option))
        return EXIT_BACKEND
    except HapGpuError as exc:
        _report(exc)
        return EXIT_ERROR
    except OSError as exc:  # disk full, permission denied, ... while writing
        _report(exc)
        return EXIT_ERROR
    except MemoryError:
        _report("out of memory; process the output in bands (--band-rows) or use fewer inputs")
        return EXIT_ERROR
    except KeyboardInterrupt:
        _report("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: one line, the traceback only with -v
        log.debug("traceback of the internal error", exc_info=True)
        _report(f"internal error ({type(exc).__name__}: {exc}); run 'hapgpu -v ...' for the traceback "
                "and please report it")
        return EXIT_INTERNAL
    return EXIT_OK if result is None else int(result)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
