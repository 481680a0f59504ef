"""``hapgpu runastrodriz``: drizzlepac's runastrodriz command line (hap-pipeline.md §5)."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def _cores(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"num_cores must be a positive integer, got {text!r}")
    return int(text)


def _run(args: argparse.Namespace) -> int:
    from ._pipeline import process

    return process(args.input, force=args.force, newpath=args.newpath, num_cores=args.num_cores,
                   inmemory=args.inmemory, headerlets=not args.no_headerlets,
                   align_to_gaia=not args.no_align, force_alignment=args.force_alignment,
                   do_verify_guiding=args.verify_guiding, debug=args.debug,
                   make_manifest=args.manifest, refcat=args.refcat)


def register(subparsers) -> None:
    """Add the ``runastrodriz`` command to the CLI."""
    parser = subparsers.add_parser(
        "runastrodriz", help="the calibration pipeline's drizzle step for one association or "
                             "exposure (drizzlepac runastrodriz)",
        description="Drizzle an association (<asn>_asn.fits) or a singleton (<rootname>_raw.fits, "
                    "_flt.fits or _flc.fits) as the HST calibration pipeline does: pipeline-"
                    "default WCS, a priori and a posteriori astrometric solutions each verified "
                    "by drizzling, then the final _drz/_drc products, WCSTYPE keywords, "
                    "headerlets and the trailer <root>.tra. Works offline from what the files "
                    "carry. Exit status: 0 success (also when DRIZCORR says skip), 1 error, "
                    "65 no calibrated exposure.")
    parser.add_argument("input", metavar="INPUT",
                        help="<asn>_asn.fits, <rootname>_raw.fits or a calibrated exposure")
    parser.add_argument("newpath", metavar="NEWPATH", nargs="?", default=None,
                        help="work in NEWPATH/<rootname> (files copied there, results moved back)")
    parser.add_argument("-b", dest="no_headerlets", action="store_true",
                        help="do not write the <rootname>_flt_hlet.fits headerlet files")
    parser.add_argument("-d", dest="debug", action="store_true",
                        help="debug: keep the stage subfolders and the mask files, DEBUG "
                             "lines in the trailer")
    parser.add_argument("-a", dest="force_alignment", action="store_true",
                        help="align even when the guiding check (-v) finds bad guiding")
    parser.add_argument("-f", dest="force", action="store_true",
                        help="drizzle whatever DRIZCORR says; keep exposures with bad guiding")
    parser.add_argument("-g", dest="no_align", action="store_true",
                        help="no a posteriori alignment to an astrometric catalogue "
                             "(ASTROMETRY_COMPUTE_APOSTERIORI overrides)")
    parser.add_argument("-i", dest="inmemory", action="store_true",
                        help="AstroDrizzle in_memory for the final product (hapgpu always works "
                             "in memory; recorded only)")
    parser.add_argument("-m", dest="manifest", action="store_true",
                        help="write the manifest <root>_manifest.txt")
    parser.add_argument("-n", dest="num_cores", type=_cores, default=None, metavar="N",
                        help="AstroDrizzle num_cores (recorded; hapgpu's parallelism is the "
                             "backend's)")
    parser.add_argument("-v", dest="verify_guiding", action="store_true",
                        help="check the exposures for bad guiding first")
    parser.add_argument("--refcat", default=None, metavar="FILE|URL",
                        help="reference catalogue of the a posteriori fit: a local ECSV/FITS/CSV "
                             "file or a catalogue service URL (default: $ASTROMETRIC_CATALOG_URL)")
    parser.set_defaults(func=_run)
