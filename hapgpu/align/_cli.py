"""``hapgpu align``: align exposures to an astrometric reference catalogue."""

from __future__ import annotations

import argparse
import logging

from ..backend import BACKEND_NAMES
from ._engine import DEFAULT_CATALOGS, FIT_LABELS

__all__ = ["register"]

log = logging.getLogger(__name__)


def _run(args: argparse.Namespace) -> int:
    from ._engine import align_exposures, write_result_table

    if not logging.getLogger("hapgpu").isEnabledFor(logging.DEBUG):
        # tweakwcs and stwcs report every match, fit and headerlet step at INFO or DEBUG;
        # keep the run's log readable.
        logging.getLogger("tweakwcs").setLevel(logging.WARNING)
        logging.getLogger("stwcs").setLevel(logging.WARNING)
    result = align_exposures(args.files, refcat=args.refcat, catalogs=args.catalogs,
                             fit_label=args.fit_label, update=not args.no_update,
                             headerlet_files=args.headerlets, timeout=args.timeout,
                             backend=args.align_backend)
    for exp in result.exposures:
        log.info("%s: %s %s quality %d rms_ra %.2f rms_dec %.2f mas, %d matches",
                 exp.filename, exp.status, exp.wcsname, exp.fit_quality, exp.rms_ra,
                 exp.rms_dec, exp.n_matches)
    if args.table:
        path = write_result_table(result, args.table)
        log.info("wrote %s", path)
    return 0


def register(subparsers) -> None:
    """Add the ``align`` command to the CLI."""
    parser = subparsers.add_parser(
        "align", help="align FLT/FLC exposures to an astrometric catalogue (Gaia, GSC, 2MASS)",
        description="Find sources in each exposure, fetch a reference catalogue, fit with "
                    "tweakwcs and write the best solution (WCSNAME <base>-FIT_<label>_<cat>, "
                    "fit keywords, headerlets) into the files. Without a usable catalogue or "
                    "fit the files are left unchanged.")
    parser.add_argument("files", nargs="+", metavar="FILES", help="FLT/FLC exposures")
    parser.add_argument("--refcat", default=None, metavar="FILE|URL",
                        help="reference catalogue file (ECSV, FITS, CSV) or catalogue service "
                             "URL (default: $ASTROMETRIC_CATALOG_URL, else STScI's service)")
    parser.add_argument("--catalogs", default=",".join(DEFAULT_CATALOGS), metavar="C1,C2",
                        help="catalogues to try, in order (default: %(default)s)")
    parser.add_argument("--fit-label", default="REL", type=str.upper, choices=FIT_LABELS,
                        help="REL/IMG: runastrodriz procedure; SVM/MVM: single-visit "
                             "procedure (default: %(default)s)")
    parser.add_argument("--no-update", action="store_true",
                        help="fit and report only; leave the files unchanged")
    parser.add_argument("--table", default=None, metavar="OUT.ecsv",
                        help="write the per-exposure results to this ECSV table")
    parser.add_argument("--headerlets", action="store_true",
                        help="also write each new solution as a <root>_flt_hlet.fits file")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="timeout of each catalogue-service request (default: %(default)s)")
    parser.add_argument("--backend", dest="align_backend", choices=BACKEND_NAMES, default=None,
                        help="compute backend of the source finding (overrides the global "
                             "--backend)")
    parser.set_defaults(func=_run)
