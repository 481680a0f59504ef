"""``hapgpu astrodrizzle``: the AstroDrizzle chain from the command line."""

from __future__ import annotations

import logging

from ..backend import BACKEND_NAMES
from ..errors import InvalidParameterError
from ._parameters import PARAMETER_SETS, accepted_names, unknown_parameter_message

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    """Add the ``astrodrizzle`` subcommand."""
    p = subparsers.add_parser(
        "astrodrizzle", help="combine FLT/FLC exposures with the AstroDrizzle chain (sky, CR rejection, drizzle)",
        description="Static mask, sky, separate drizzle, median, blot, driz_cr and final drizzle, "
                    "writing OUTPUT_drz.fits (OUTPUT_drc.fits from FLC inputs). Parameters merge as "
                    "defaults < --pars < --set.")
    p.add_argument("inputs", nargs="+", help="FLT/FLC files (globs, comma lists and @listfiles accepted)")
    p.add_argument("--output", required=True, help="product root name")
    p.add_argument("--pars", default=None,
                   help=f"parameter set ({', '.join(PARAMETER_SETS)}) or JSON file (hapgpu or drizzlepac hap_pars)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                   help="an AstroDrizzle parameter, e.g. --set final_pixfrac=0.8 (repeatable)")
    p.add_argument("--backend", dest="ad_backend", choices=BACKEND_NAMES, default=None,
                   help="compute backend (overrides the global --backend)")
    p.add_argument("--band-rows", type=int, default=None, help="process output frames in bands of this many rows")
    p.add_argument("--save-intermediates", action="store_true",
                   help="also write static masks, single-drizzle images, median, blotted images, CR masks")
    p.add_argument("--no-update-inputs", action="store_true",
                   help="write CR flags and MDRIZSKY into copies OUTPUT_<input> instead of the inputs")
    p.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    p.set_defaults(func=_run)


def _overrides(items) -> dict:
    """``--set NAME=VALUE`` items as keyword arguments; unknown names list the closest ones."""
    values = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InvalidParameterError(f"--set expects NAME=VALUE, got {item!r}")
        if name not in accepted_names():
            raise InvalidParameterError(unknown_parameter_message(name, f"--set {item}"))
        text = value.strip()
        values[name] = None if text.lower() in ("none", "null") else text
    return values


def _run(args) -> int:
    from ._pipeline import astrodrizzle

    result = astrodrizzle(args.inputs, args.output, backend=args.ad_backend, pars=args.pars,
                          band_rows=args.band_rows, update_inputs_dq=not args.no_update_inputs,
                          save_intermediates=args.save_intermediates,
                          progress=False if args.no_progress else None, **_overrides(args.overrides))
    if result.product is not None:
        log.info("wrote %s", result.product)
    return 0
