"""Benchmark the resampling core against drizzlepac's compiled engine, in one run.

One full-size WFC3/UVIS chip (4096 x 2051, real SIP/NPOL/D2IM header) is drizzled onto a frame
rotated by 17 degrees, with every kernel, and a drizzled image is blotted back with poly5.
Each hapgpu timing includes building the pixel map and finishing SCI/WHT/CTX on the device;
each cdriz timing includes building its ``DefaultWCSMapping``. The pixel-map row compares the full per-pixel map (table + device
interpolation) with astropy's exact per-pixel evaluation.

Usage::

    python benchmarks/bench_resample.py [--backend cpu|gpu] [--repeat 3] [--kernels square,turbo]

Prints a table of best-of-``repeat`` wall times and the speed-up ratio (reference / hapgpu).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from hapgpu.backend import resolve_backend
from hapgpu.resample import KERNELS, Drizzle, PixelMap, blot

CHIP_SHAPE = (2051, 4096)
SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "hst" / "sample_svm_flc.fits"


def chip_wcs():
    """Full-size UVIS chip 1 WCS from the real header (the sample file's data are 10x10)."""
    from astropy.io import fits
    from stwcs.wcsutil import HSTWCS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(SAMPLE) as hdul:
            wcs = HSTWCS(hdul, ext=("SCI", 1))
    wcs.pixel_shape = (CHIP_SHAPE[1], CHIP_SHAPE[0])
    return wcs


def rotated_frame(in_wcs, rot_deg=17.0):
    from astropy.wcs import WCS

    ny, nx = CHIP_SHAPE
    cx, cy = in_wcs.all_pix2world([nx / 2.0], [ny / 2.0], 1)
    scale = in_wcs.idcscale / 3600.0
    th = np.deg2rad(rot_deg)
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [cx[0], cy[0]]
    w.wcs.cd = scale * np.array([[-np.cos(th), np.sin(th)], [np.sin(th), np.cos(th)]])
    w.wcs.crpix = [0.0, 0.0]
    xs = np.array([0.5, nx + 0.5, nx + 0.5, 0.5])
    ys = np.array([0.5, 0.5, ny + 0.5, ny + 0.5])
    px, py = w.wcs_world2pix(*in_wcs.all_pix2world(xs, ys, 1), 1)
    onx = int(np.ceil(px.max() - px.min())) + 10
    ony = int(np.ceil(py.max() - py.min())) + 10
    w.wcs.crpix = [onx / 2.0 - (px.max() + px.min()) / 2.0, ony / 2.0 - (py.max() + py.min()) / 2.0]
    w.pixel_shape = (onx, ony)
    return w, (ony, onx)


def best_of(fn, repeat, sync=lambda: None):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return min(times)


def scene(rng):
    data = rng.normal(50.0, 5.0, size=CHIP_SHAPE).astype(np.float32)
    weight = np.ones(CHIP_SHAPE, np.float32)
    weight[rng.random(CHIP_SHAPE) < 0.01] = 0.0
    return data, weight


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kernels", default=",".join(KERNELS))
    parser.add_argument("--no-reference", action="store_true", help="skip drizzlepac timings")
    args = parser.parse_args(argv)

    backend = resolve_backend(args.backend)
    in_wcs = chip_wcs()
    out_wcs, out_shape = rotated_frame(in_wcs)
    rng = np.random.default_rng(1)
    data, weight = scene(rng)
    npix = data.size
    cdriz = None
    if not args.no_reference:
        from drizzlepac import cdriz

    xp = backend.xp
    d_data = backend.asarray(data)
    d_weight = backend.asarray(weight)
    sync = backend.synchronize

    print(f"# hapgpu bench_resample  {time.strftime('%Y-%m-%d %H:%M')}  backend={backend.name}  "
          f"python {platform.python_version()}  cpus={os.cpu_count()}  numba threads="
          f"{__import__('numba').get_num_threads()}")
    if backend.name == "gpu":
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        print(f"# device: {props['name'].decode()}")
    print(f"# input chip {CHIP_SHAPE[1]}x{CHIP_SHAPE[0]} (real UVIS SIP/NPOL/D2IM header) -> "
          f"output {out_shape[1]}x{out_shape[0]} rotated 17 deg; best of {args.repeat}")
    rows = []

    # pixel map: full per-pixel map, ours (table + interpolation) vs astropy exact
    def ours_pixmap():
        PixelMap.from_wcs(in_wcs, out_wcs, CHIP_SHAPE, stepsize=10).pixmap()

    def astropy_pixmap():
        yy, xx = np.mgrid[1:CHIP_SHAPE[0] + 1, 1:CHIP_SHAPE[1] + 1].astype(np.float64)
        out_wcs.wcs_world2pix(*in_wcs.all_pix2world(xx.ravel(), yy.ravel(), 1), 1)

    t_ours = best_of(ours_pixmap, args.repeat)
    t_ref = best_of(astropy_pixmap, 1)
    rows.append(("pixel map (per-pixel)", t_ours, "astropy exact", t_ref))

    for kernel in args.kernels.split(","):
        pixfrac = 1.0

        def ours():
            pmap = PixelMap.from_wcs(in_wcs, out_wcs, CHIP_SHAPE, stepsize=10)
            drz = Drizzle(out_shape, kernel=kernel, pixfrac=pixfrac, backend=backend, initial_value=0.0)
            drz.add_image(d_data, pmap, weight=d_weight, in_units="counts", exptime=500.0)
            drz.device_arrays()  # the finished SCI/WHT/CTX, as cdriz leaves them
            return drz

        warm = Drizzle((8, 8), kernel=kernel, backend=backend)  # compile outside the timing
        warm.add_image(np.ones((6, 6), np.float32),
                       PixelMap.from_wcs(in_wcs, out_wcs, (6, 6), stepsize=10))
        t_ours = best_of(ours, args.repeat, sync)
        t_ref = float("nan")
        if cdriz is not None:
            def ref():
                outs = np.zeros(out_shape, np.float32)
                outw = np.zeros(out_shape, np.float32)
                outc = np.zeros(out_shape, np.int32)
                mapping = cdriz.DefaultWCSMapping(in_wcs, out_wcs, CHIP_SHAPE[1], CHIP_SHAPE[0], 10)
                cdriz.tdriz(data.copy(), weight, outs, outw, outc, 1, 0, 1, 1, CHIP_SHAPE[0], 1.0, 1.0,
                            1.0, "center", pixfrac, kernel, "counts", 500.0, 1.0, "INDEF", 0, 0, 1, mapping)

            t_ref = best_of(ref, max(1, args.repeat - 1))
        rows.append((f"drizzle {kernel}", t_ours, "cdriz.tdriz", t_ref))

    # blot poly5: a drizzled-like source image back onto the chip
    source = rng.normal(0.1, 0.01, size=out_shape).astype(np.float32)
    d_source = backend.asarray(source)

    def ours_blot():
        pmap = PixelMap.from_wcs(in_wcs, out_wcs, CHIP_SHAPE, stepsize=10)
        blot(d_source, pmap, interp="poly5", exptime=500.0, backend=backend)

    blot(np.ones((8, 8), np.float32), PixelMap.from_wcs(in_wcs, out_wcs, (6, 6)), backend=backend)
    t_ours = best_of(ours_blot, args.repeat, sync)
    t_ref = float("nan")
    if cdriz is not None:
        def ref_blot():
            out = np.zeros(CHIP_SHAPE, np.float32)
            mapping = cdriz.DefaultWCSMapping(in_wcs, out_wcs, CHIP_SHAPE[1], CHIP_SHAPE[0], 10)
            cdriz.tblot(source, out, 1, out_shape[1], 1, out_shape[0], 1.0, 1.0, 1.0, 1.0, "center",
                        "poly5", 500.0, 0.0, 1.0, 1, mapping)

        t_ref = best_of(ref_blot, max(1, args.repeat - 1))
    rows.append(("blot poly5", t_ours, "cdriz.tblot", t_ref))

    print(f"{'operation':<24}{'hapgpu [s]':>12}{'Mpix/s':>10}  {'reference':<16}{'ref [s]':>10}{'speed-up':>10}")
    for name, t_o, ref_name, t_r in rows:
        print(f"{name:<24}{t_o:>12.4f}{npix / t_o / 1e6:>10.1f}  {ref_name:<16}{t_r:>10.4f}{t_r / t_o:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
