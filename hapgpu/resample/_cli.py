"""``hapgpu demo``: simulate a visit and run the AstroDrizzle chain on it."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

#: HAP filter-product parameter set used by the demo for each instrument.
DEMO_PARS = {"wfc3-uvis": "wfc3_uvis_n2", "wfc3-ir": "wfc3_ir_n2", "acs-hrc": "filter_basic",
             "acs-wfc": "acs_wfc_n2"}


def register(subparsers) -> None:
    """Add the ``demo`` subcommand."""
    demo = subparsers.add_parser(
        "demo", help="simulate a visit and combine it with the AstroDrizzle chain (built-in demo)",
        description="Generate an HST visit with hapgpu.simulate (real header templates, known "
                    "truth) and run hapgpu's AstroDrizzle chain on it with the HAP parameter set "
                    "of the instrument, writing OUTDIR/demo_drc.fits (demo_drz.fits for FLT).")
    demo.add_argument("outdir", nargs="?", default=None, help="output folder (default: a new temporary folder)")
    demo.add_argument("--instrument", default="wfc3-uvis", choices=tuple(DEMO_PARS))
    demo.add_argument("--n-exposures", type=int, default=4)
    demo.add_argument("--size", type=int, default=1024,
                      help="chip size in pixels (a subarray, for a quick demo); 0 = full size")
    demo.add_argument("--seed", type=int, default=1)
    demo.set_defaults(func=_run_demo)


def _run_demo(args) -> int:
    from ..astrodrizzle import astrodrizzle
    from ..backend import resolve_backend
    from ..errors import InvalidParameterError
    from ..simulate import simulate_visit

    # Everything that can be refused is checked before anything is simulated or written.
    backend = resolve_backend(None)  # the run's backend (--backend / HAPGPU_BACKEND)
    if args.n_exposures < 1:
        raise InvalidParameterError(f"--n-exposures must be >= 1, got {args.n_exposures}")
    if args.size < 0:
        raise InvalidParameterError(f"--size must be >= 0 (0 = full size), got {args.size}")
    outdir = Path(args.outdir) if args.outdir else Path(tempfile.mkdtemp(prefix="hapgpu-demo-"))
    outdir.mkdir(parents=True, exist_ok=True)
    shape = None if args.size == 0 else args.size
    log.info("simulating a %d-exposure %s visit in %s", args.n_exposures, args.instrument, outdir)
    visit = simulate_visit(outdir, instrument=args.instrument, n_exposures=args.n_exposures,
                           seed=args.seed, shape=shape, progress=True)
    result = astrodrizzle([str(e.path) for e in visit.exposures], outdir / "demo",
                          pars=DEMO_PARS[args.instrument], backend=backend)
    flagged = sum(sum(v) for v in result.cosmic_rays.values())
    print(f"demo product: {result.product}  ({flagged} cosmic-ray pixels flagged in the inputs' DQ)")
    return 0
