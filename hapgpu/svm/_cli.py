"""``hapgpu svm`` and ``hapgpu runsinglehap``: the single-visit pipeline from the command line."""

from __future__ import annotations

import argparse
import glob
import logging
import shutil
from pathlib import Path

__all__ = ["register"]

_LEVELS = ("critical", "error", "warning", "info", "debug")


def _run(args: argparse.Namespace) -> int:
    from ._pipeline import run_svm

    if not args.more_pollers and args.workers is None and args.scheduler is None:
        return run_svm(args.poller, args.output_dir, refcat=args.refcat, align=not args.no_align,
                       custom_pars=args.custom_pars, output_custom_pars=args.output_custom_pars,
                       diagnostic=args.diagnostic, previews=not args.no_previews,
                       log_level=args.log_level)
    return _run_many(args)


def _run_many(args: argparse.Namespace) -> int:
    """Several visits, or any visit on a Dask cluster: one :func:`run_svm` task per poller."""
    from ..errors import InvalidParameterError, OutputWriteError
    from ..scaleout import Task, run_tasks
    from ._pipeline import run_svm

    pollers = [Path(p).absolute() for p in [args.poller, *args.more_pollers]]  # workers may run elsewhere
    repeated = sorted({str(p) for p in pollers if pollers.count(p) > 1})
    if repeated:
        raise InvalidParameterError(f"poller given more than once: {', '.join(repeated)} (two runs "
                                    "of one visit would write the same products)")
    if args.output_custom_pars is not None and len(pollers) > 1:
        raise InvalidParameterError("--output-custom-pars takes one poller (every visit would write "
                                    f"{args.output_custom_pars})")
    output_dir = Path(args.output_dir).absolute()
    created = not output_dir.exists()
    try:
        output_dir.mkdir(parents=True, exist_ok=True)  # once, before visits run side by side
    except OSError as exc:
        raise OutputWriteError(f"{output_dir}: cannot make the output folder: {exc.strerror or exc}") from exc
    before = _staging_folders(output_dir, pollers)
    refcat = args.refcat
    if refcat is not None and "://" not in str(refcat):
        refcat = str(Path(refcat).absolute())
    custom, written = (None if path is None else str(Path(path).absolute())
                       for path in (args.custom_pars, args.output_custom_pars))
    options = {"refcat": refcat, "align": not args.no_align, "custom_pars": custom,
               "output_custom_pars": written, "diagnostic": args.diagnostic,
               "previews": not args.no_previews, "log_level": _log_level(args),
               # --backend reaches workers of an existing cluster too (HAPGPU_BACKEND: local ones)
               "backend": getattr(args, "backend", None), "progress": False}
    tasks = [Task(str(poller), run_svm, (str(poller), str(output_dir)), options) for poller in pollers]
    try:
        codes = run_tasks(tasks, workers=args.workers, scheduler=args.scheduler,
                          progress=not getattr(args, "quiet", False), label="svm")
    finally:
        # a worker lost mid-visit leaves its staging folder; the visit was run again elsewhere
        for folder in _staging_folders(output_dir, pollers) - before:
            shutil.rmtree(folder, ignore_errors=True)
        if created and not any(output_dir.iterdir()):
            output_dir.rmdir()
    return next((code for code in codes if code), 0)


def _log_level(args: argparse.Namespace):
    """``-l LEVEL``, else debug when this run logs debug (``-v``): what an in-process run
    records in the trailers, given to workers whose own logging is not configured."""
    if args.log_level is None and logging.getLogger("hapgpu").isEnabledFor(logging.DEBUG):
        return "debug"
    return args.log_level


def _staging_folders(output_dir: Path, pollers) -> set[Path]:
    """The staging folders of these pollers' visits in ``output_dir`` (``run_svm`` writes each
    visit in ``.hapgpu-svm-<poller stem>-<pid>-<random>`` and moves the products out)."""
    from ._pipeline import staging_prefix

    found = set()
    for poller in pollers:
        found.update(p for p in output_dir.glob(glob.escape(staging_prefix(poller)) + "*") if p.is_dir())
    return found


def _add(subparsers, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(
        name, help=help_text,
        description="Make the HAP single-visit (SVM) products of one visit: renamed inputs, "
                    "aligned WCS, exposure, filter and total drizzled products, catalogs, "
                    "trailers, manifest and previews, with drizzlepac's file names. The exit "
                    "status is drizzlepac's: 0 success, 1 error, 65 no viable data, 15 keyword "
                    "update problem. Several pollers are several visits, one task each, run "
                    "one after the other, on a local Dask cluster (--workers N) or on a running "
                    "one (--scheduler ADDRESS); the exit status is then 0 when every visit "
                    "succeeded, else the first nonzero status in the order of the pollers.")
    parser.add_argument("poller", metavar="POLLER",
                        help="SVM poller file (8 columns), file list (1 column) or WFPC2 form "
                             "(filename, aperture)")
    parser.add_argument("more_pollers", metavar="POLLER", nargs="*", default=[],
                        help="the pollers of more visits (one task each)")
    parser.add_argument("--output-dir", default=".", metavar="DIR",
                        help="folder for the products (default: the current directory)")
    parser.add_argument("--refcat", default=None, metavar="FILE|URL",
                        help="reference catalogue for the alignment: a local ECSV/FITS/CSV file "
                             "or a catalogue service URL (default: $ASTROMETRIC_CATALOG_URL)")
    parser.add_argument("--no-align", action="store_true",
                        help="do not align the exposures; keep their WCS")
    parser.add_argument("-c", "--input-custom-pars", dest="custom_pars", default=None,
                        metavar="CUSTOM_PARS",
                        help="custom parameter file replacing the automatic parameter choice")
    parser.add_argument("--output-custom-pars", default=None, metavar="FILE",
                        help="write the parameters of every product to this file")
    parser.add_argument("-d", "--diagnostic", action="store_true",
                        help="diagnostic mode: keep old manifests, no cosmic-ray rejection of "
                             "the catalogs")
    parser.add_argument("-l", "--log-level", default=None, type=str.lower, choices=_LEVELS,
                        metavar="LEVEL", help=f"log level: {', '.join(_LEVELS)} (default: info)")
    parser.add_argument("--no-previews", action="store_true",
                        help="do not write the JPEG previews")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                       help="run the visits on a local Dask cluster of N worker processes (one "
                            "per GPU with dask-cuda and the gpu backend); needs the "
                            "'distributed' extra: pip install 'hapgpu[distributed]'")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run the visits on the running Dask cluster of this scheduler "
                            "(tcp://HOST:8786; the workers must see the same paths)")
    parser.set_defaults(func=_run)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of workers, got {text!r}")
    return value


def register(subparsers) -> None:
    """Add the ``svm`` and ``runsinglehap`` commands to the CLI."""
    _add(subparsers, "svm", "make the single-visit mosaic products of one visit (runsinglehap)")
    _add(subparsers, "runsinglehap", "the same as 'svm', under drizzlepac's name")
