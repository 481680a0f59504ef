"""``hapgpu demo``: simulate a two-filter visit and run the single-visit pipeline on it.

The demo itself is :func:`hapgpu._demo.run_demo`; this module only wires it to the command line.
"""

from __future__ import annotations

import logging

from .._demo import DEMO_FILTERS, DEMO_SIZE

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    """Add the ``demo`` subcommand."""
    demo = subparsers.add_parser(
        "demo", help="simulate a 2-filter visit and make its single-visit products (built-in demo)",
        description="Simulate an HST visit with hapgpu.simulate (real header templates, two "
                    "filters, two dithered exposures each) into OUTDIR/visit and run 'hapgpu svm' "
                    "on its poller into OUTDIR: renamed inputs, exposure, filter and total "
                    "drizzled products, catalogs, trailers, previews and the manifest. Prints the "
                    "files written (the manifest first); the exit status is the pipeline's (0 success).")
    demo.add_argument("outdir", nargs="?", default=None,
                      help="output folder (default: a new temporary folder)")
    demo.add_argument("--instrument", default="wfc3-uvis", choices=tuple(DEMO_FILTERS),
                      help="instrument and detector (default: wfc3-uvis; filters "
                           + "; ".join(f"{k} {'+'.join(v)}" for k, v in DEMO_FILTERS.items()) + ")")
    demo.add_argument("--n-exposures", type=int, default=2, metavar="N",
                      help="exposures per filter (default: 2)")
    size = demo.add_mutually_exclusive_group()
    size.add_argument("--size", type=int, default=DEMO_SIZE,
                      help=f"side of the chip subarray in pixels (default: {DEMO_SIZE}, a quick "
                           "demo); 0 = full frames")
    size.add_argument("--full-frame", action="store_true",
                      help="simulate full frames (minutes of CPU time)")
    demo.add_argument("--align", action="store_true",
                      help="align the exposures to the simulated reference catalogue "
                           "(OUTDIR/visit/refcat.ecsv, a local file; default: no alignment); "
                           "a small subarray may hold too few catalogue stars for a fit, which is "
                           "then skipped as in HAP")
    demo.add_argument("--no-previews", action="store_true", help="do not write the JPEG previews")
    demo.add_argument("--no-progress", action="store_true", help="no progress display")
    demo.add_argument("--seed", type=int, default=1)
    demo.set_defaults(func=_run_demo)


def _run_demo(args) -> int:
    from .._demo import run_demo

    result = run_demo(args.outdir, instrument=args.instrument,
                      exposures_per_filter=args.n_exposures,
                      size=None if args.full_frame else args.size, seed=args.seed,
                      align=args.align, previews=not args.no_previews,
                      log_level="warning" if getattr(args, "quiet", False) else None,  # hapgpu -q
                      progress=False if args.no_progress else None)
    if result.exit_code != 0:
        log.error("the single-visit pipeline failed (exit status %d); see the log above",
                  result.exit_code)
        return result.exit_code
    log.info("demo: %d files written in %s (manifest %s)", len(result.products) + 1,
             result.outdir, result.manifest.name)
    for path in (result.manifest, *result.products):  # stdout: the files, one per line
        print(path)
    return result.exit_code
