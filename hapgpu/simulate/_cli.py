"""``hapgpu simulate``: write synthetic HST visits."""

from __future__ import annotations

import argparse
import logging

from ._instruments import INSTRUMENTS
from ._visit import simulate_visit
from ._wcs_error import WCSPerturbation

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


def _shift(text: str) -> float | tuple[float, float]:
    """Parse ``A`` (an amplitude, arcsec) or ``EAST,NORTH`` (a shift, arcsec)."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected A or EAST,NORTH, got {text!r}") from None
    if len(values) == 1:
        return values[0]
    if len(values) == 2:
        return values[0], values[1]
    raise argparse.ArgumentTypeError(f"expected A or EAST,NORTH, got {text!r}")


def _wcs_error(args: argparse.Namespace) -> WCSPerturbation | None:
    """The WCS error the options describe (None when none is asked for).

    ``--wcs-error A`` draws shifts up to A arcsec per exposure; ``--wcs-error EAST,NORTH`` is a
    fixed shift common to the visit unless ``--wcs-per-exposure`` makes it box amplitudes.
    ``--wcs-rotation`` and ``--wcs-scale`` are exact values of a fixed error and amplitudes of
    a random one.
    """
    if args.wcs_error is None and not args.wcs_rotation and not args.wcs_scale:
        return None
    shift = args.wcs_error if args.wcs_error is not None else (0.0, 0.0)
    per_exposure = args.wcs_per_exposure or not isinstance(shift, tuple)
    return WCSPerturbation(shift, args.wcs_rotation, args.wcs_scale, per_exposure=per_exposure)


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
        wcs_error=_wcs_error(args),
        association=args.association,
        progress=not args.no_progress,
    )
    log.info("wrote %d exposures, %s, %s and truth/ in %s", len(result.exposures),
             result.poller.name, result.refcat.name, result.outdir)
    for asn in result.associations:
        log.info("wrote association %s (%s) and %d RAW files", asn.asn.name,
                 ", ".join(asn.members), len(asn.raws))
    return 0


def register(subparsers) -> None:
    """Add the ``simulate`` command (with its ``visit`` subcommand) to the CLI."""
    parser = subparsers.add_parser(
        "simulate", help="write synthetic HST exposures with truth catalogues",
        description="Write synthetic, realistic HST data for tests and demos.")
    commands = parser.add_subparsers(dest="simulate_command", metavar="WHAT", required=True)
    visit = commands.add_parser(
        "visit", help="a visit of FLT/FLC exposures, poller, reference catalogue and truth",
        description="Write a visit: <rootname>_flc.fits (WFC3/UVIS, ACS/WFC) or _flt.fits "
                    "(WFC3/IR, ACS/HRC), refcat.ecsv, <ipppss>_input.out, input.lst and truth/. "
                    "With --wcs-error the headers carry a known a priori WCS error "
                    "(header = truth + error; the truth is in truth/pointings.ecsv).")
    visit.add_argument("outdir", metavar="OUTDIR", help="output folder (created if missing)")
    visit.add_argument("--instrument", choices=tuple(INSTRUMENTS), default="wfc3-uvis",
                       help="instrument/detector (default: %(default)s)")
    visit.add_argument("--n-exposures", type=int, default=4, metavar="N",
                       help="total number of exposures, split over the filters "
                            "(default: %(default)s)")
    visit.add_argument("--filters", default=None, metavar="F1,F2",
                       help="comma-separated filters (default: F555W for UVIS, F606W for "
                            "ACS, F160W for IR)")
    visit.add_argument("--seed", type=int, default=1, metavar="S",
                       help="random seed (default: %(default)s)")
    visit.add_argument("--crowded", action="store_true", help="add a dense star cluster")
    visit.add_argument("--roll", type=float, default=0.0, metavar="DEG",
                       help="roll of the last exposure relative to the first (default: 0)")
    visit.add_argument("--exptime", type=float, default=None, metavar="SECONDS",
                       help="exposure time of every exposure (default: per instrument)")
    visit.add_argument("--shape", type=_shape, default=None, metavar="NY,NX",
                       help="read out a subarray of each chip (fast, small files)")
    visit.add_argument("--wcs-error", type=_shift, default=None, metavar="A|EAST,NORTH",
                       help="header WCS error: A = random shifts up to A arcsec per exposure; "
                            "EAST,NORTH = the same shift (arcsec, tangent plane at the "
                            "aperture) for every exposure")
    visit.add_argument("--wcs-rotation", type=float, default=0.0, metavar="DEG",
                       help="rotation error (position angle, degrees): exact for a fixed "
                            "error, amplitude for a random one")
    visit.add_argument("--wcs-scale", type=float, default=0.0, metavar="S",
                       help="fractional scale error: exact or amplitude, as --wcs-rotation")
    visit.add_argument("--wcs-per-exposure", action="store_true",
                       help="draw the error per exposure, EAST,NORTH/DEG/S being amplitudes")
    visit.add_argument("--association", action="store_true",
                       help="also write what the calibration pipeline's drizzle step "
                            "(hapgpu runastrodriz) reads: per filter an association table "
                            "<ipppss><nn>0_asn.fits and each member's <rootname>_raw.fits "
                            "primary header (DRIZCORR = PERFORM)")
    visit.add_argument("--no-progress", action="store_true", help="no progress bar")
    visit.set_defaults(func=_run_visit)
