"""``hapgpu svm`` and ``hapgpu runsinglehap``: the single-visit pipeline from the command line."""

from __future__ import annotations

import argparse

__all__ = ["register"]

_LEVELS = ("critical", "error", "warning", "info", "debug")


def _run(args: argparse.Namespace) -> int:
    from ._pipeline import run_svm

    return run_svm(args.poller, args.output_dir, refcat=args.refcat, align=not args.no_align,
                   custom_pars=args.custom_pars, output_custom_pars=args.output_custom_pars,
                   diagnostic=args.diagnostic, previews=not args.no_previews,
                   log_level=args.log_level)


def _add(subparsers, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(
        name, help=help_text,
        description="Make the HAP single-visit (SVM) products of one visit: renamed inputs, "
                    "aligned WCS, exposure, filter and total drizzled products, catalogs, "
                    "trailers, manifest and previews, with drizzlepac's file names. The exit "
                    "status is drizzlepac's: 0 success, 1 error, 65 no viable data, 15 keyword "
                    "update problem.")
    parser.add_argument("poller", metavar="POLLER",
                        help="SVM poller file (8 columns), file list (1 column) or WFPC2 form "
                             "(filename, aperture)")
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
    parser.set_defaults(func=_run)


def register(subparsers) -> None:
    """Add the ``svm`` and ``runsinglehap`` commands to the CLI."""
    _add(subparsers, "svm", "make the single-visit mosaic products of one visit (runsinglehap)")
    _add(subparsers, "runsinglehap", "the same as 'svm', under drizzlepac's name")
