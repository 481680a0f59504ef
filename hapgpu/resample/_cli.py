"""``hapgpu demo`` and ``hapgpu drizzle``: the resampling core from the command line."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from ..errors import InvalidInputError
from ._drizzle import KERNELS

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    """Add the ``demo`` and ``drizzle`` subcommands."""
    demo = subparsers.add_parser(
        "demo", help="simulate a small visit and drizzle it (the built-in demonstration)",
        description="Generate a WFC3/UVIS visit with hapgpu.simulate and drizzle its chips "
                    "onto one frame, writing OUTDIR/demo_drz.fits.")
    demo.add_argument("outdir", nargs="?", default=None, help="output folder (default: a new temporary folder)")
    demo.add_argument("--instrument", default="wfc3-uvis", choices=("wfc3-uvis", "wfc3-ir", "acs-hrc"))
    demo.add_argument("--n-exposures", type=int, default=2)
    demo.add_argument("--size", type=int, default=512, help="chip size in pixels (subarray) for a quick demo; 0 = full")
    demo.add_argument("--seed", type=int, default=1)
    demo.set_defaults(func=_run_demo)

    drizzle = subparsers.add_parser(
        "drizzle", help="drizzle the science chips of FLT/FLC files onto one frame (no CR rejection)")
    drizzle.add_argument("inputs", nargs="+", help="FLT/FLC files")
    drizzle.add_argument("--output", required=True, help="product root name (writes OUTPUT_drz.fits)")
    drizzle.add_argument("--kernel", default="square", choices=KERNELS)
    drizzle.add_argument("--pixfrac", type=float, default=1.0)
    drizzle.add_argument("--good-bits", type=int, default=0, help="DQ bits to treat as good")
    drizzle.set_defaults(func=_run_drizzle)


def _run_drizzle(args) -> int:
    from ._mosaic import drizzle_mosaic

    missing = [f for f in args.inputs if not Path(f).exists()]
    if missing:
        raise InvalidInputError(f"input file(s) not found: {', '.join(missing)}")
    drizzle_mosaic(args.inputs, args.output, kernel=args.kernel, pixfrac=args.pixfrac,
                   good_bits=args.good_bits)
    return 0


def _run_demo(args) -> int:
    from ..simulate import simulate_visit
    from ._mosaic import drizzle_mosaic

    outdir = Path(args.outdir) if args.outdir else Path(tempfile.mkdtemp(prefix="hapgpu-demo-"))
    outdir.mkdir(parents=True, exist_ok=True)
    shape = None if args.size == 0 else args.size
    log.info("simulating a %d-exposure %s visit in %s", args.n_exposures, args.instrument, outdir)
    visit = simulate_visit(outdir, instrument=args.instrument, n_exposures=args.n_exposures,
                           seed=args.seed, shape=shape, progress=True)
    product = drizzle_mosaic([e.path for e in visit.exposures], outdir / "demo", kernel="square",
                             good_bits=0)
    print(f"demo product: {product}")
    return 0
