"""Compare ``hapgpu svm`` with drizzlepac's ``runsinglehap`` on a real full-frame ACS/HRC exposure.

A one-off check beside ``tests/svm/test_svm_reference_acs.py`` (which uses the 256x256 cut-out
of ``j8bt06nyq`` shipped in ``tests/data``): the full 1024x1024 FLT file given on the command line
(plain or gzip-compressed, e.g. ``j8bt06nyq_flt.fits.gz``) is made a one-exposure visit with an
8-column poller and processed by both pipelines with alignment off, exactly as in the test
(hapgpu ``align=False``; drizzlepac with ``ASTROMETRIC_CATALOG_URL`` at a closed loopback port and
the test-only library shims of ``benchmarks/bench_svm.py``). A file without ``MTFLAG`` (ACS data
calibrated before the keyword existed; both pipelines refuse it) gets ``MTFLAG = 'F'`` in the
visit's copy, which the output says.

Usage::

    python benchmarks/compare_svm_real_hrc.py PATH/j8bt06nyq_flt.fits.gz [--workdir DIR]
        [--backend cpu|gpu]

Prints the wall times, whether the manifests agree, and per drizzled product: the shapes, the
largest WCS differences, the fraction of pixels whose SCI agrees within 1e-4 relative + 1e-3
sigma (the test's criterion), the largest relative SCI and WHT differences, and the largest
relative difference of the footprint keywords; then the catalogs' row counts.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FOOTPRINT_KEYWORDS = ("NPIXFRAC", "MEANEXPT", "MEDEXPT", "MEANNEXP", "MEDNEXP", "MEANWHT", "MEDWHT")


def make_visit(source: Path, folder: Path) -> tuple[Path, bool]:
    """The exposure as a one-exposure visit in ``folder``: (poller, whether MTFLAG was added)."""
    from astropy.io import fits

    from hapgpu.simulate._io import poller_line

    folder.mkdir(parents=True)
    name = source.name.removesuffix(".gz")
    dest = folder / name
    if source.suffix == ".gz":
        with gzip.open(source) as packed:
            dest.write_bytes(packed.read())
    else:
        shutil.copyfile(source, dest)
    added = "MTFLAG" not in fits.getheader(dest)
    if added:
        fits.setval(dest, "MTFLAG", value="F", comment="moving target flag (added for the comparison)")
    poller = folder / f"{name[:6]}_input.out"
    poller.write_text(poller_line(dest, fits.getheader(dest)) + "\n")
    return poller, added


def compare_products(ours: Path, ref: Path) -> list[str]:
    """Report lines comparing the two output folders."""
    from astropy.io import fits
    from astropy.stats import sigma_clipped_stats
    from astropy.table import Table

    (manifest,) = [p.name for p in ref.glob("*_manifest.txt")]
    mine, theirs = (ours / manifest).read_text().split(), (ref / manifest).read_text().split()
    lines = [f"manifest {manifest}: {'same' if mine == theirs else 'DIFFERENT'} ({len(theirs)} entries)"]
    if mine != theirs:
        lines.append(f"  only hapgpu: {sorted(set(mine) - set(theirs))}")
        lines.append(f"  only drizzlepac: {sorted(set(theirs) - set(mine))}")
    lines.append(f"{'product':<44} {'shape':>11} {'dCRPIX':>8} {'dCRVAL':>8} {'dCD/CD':>8} "
                 f"{'SCI ok':>8} {'SCI rel':>8} {'WHT rel':>8} {'keys rel':>8}")
    for name in [n for n in theirs if n.endswith(("_drc.fits", "_drz.fits"))]:
        with fits.open(ours / name) as a, fits.open(ref / name) as b:
            so, sr = a["SCI"].data.astype(np.float64), b["SCI"].data.astype(np.float64)
            wo, wr = a["WHT"].data.astype(np.float64), b["WHT"].data.astype(np.float64)
            ho, hr = a["SCI"].header, b["SCI"].header
            shape = "x".join(map(str, sr.shape))
            if so.shape != sr.shape:
                lines.append(f"{name:<44} {shape:>11} shapes differ: hapgpu {so.shape}")
                continue
            dcrpix = max(abs(ho[k] - hr[k]) for k in ("CRPIX1", "CRPIX2"))
            dcrval = max(abs(ho[k] - hr[k]) for k in ("CRVAL1", "CRVAL2"))
            dcd = max(abs(ho[k] - hr[k]) for k in ("CD1_1", "CD1_2", "CD2_1", "CD2_2")) / abs(hr["CD1_1"])
            covered = wr > 0
            _, _, sigma = sigma_clipped_stats(sr[covered])
            x, y = np.nan_to_num(so), np.nan_to_num(sr)
            ok = (np.abs(x - y) <= 1e-4 * np.abs(y) + 1e-3 * sigma).mean()
            sci_rel = (np.abs(x - y)[covered] / np.maximum(np.abs(y[covered]), sigma)).max()
            wht_rel = np.abs(wo - wr).max() / wr.max()
            pa, pb = a[0].header, b[0].header
            keys = [abs(pa[k] - pb[k]) / max(abs(pb[k]), 1e-30)
                    for k in FOOTPRINT_KEYWORDS if k in pa and k in pb]
            missing = [k for k in FOOTPRINT_KEYWORDS if (k in pa) != (k in pb)]
            lines.append(f"{name:<44} {shape:>11} {dcrpix:8.1e} {dcrval:8.1e} {dcd:8.1e} "
                         f"{ok:8.5f} {sci_rel:8.1e} {wht_rel:8.1e} {max(keys, default=0.0):8.1e}"
                         + (f"  keywords in one only: {missing}" if missing else ""))
    for name in [n for n in theirs if n.endswith("-cat.ecsv")]:
        a, b = Table.read(ours / name), Table.read(ref / name)
        same = "same columns" if a.colnames == b.colnames else "DIFFERENT columns"
        lines.append(f"{name}: hapgpu {len(a)} rows, drizzlepac {len(b)} rows, {same}")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="a real ACS/HRC FLT file (plain or .gz)")
    parser.add_argument("--workdir", default=None, help="keep the files here (default: a temp folder)")
    parser.add_argument("--backend", default="cpu", choices=("cpu", "gpu", "cudasim", "auto"))
    args = parser.parse_args(argv)
    if not args.path.is_file():
        parser.error(f"{args.path}: no such file")
    logging.basicConfig(level=logging.WARNING)
    warnings.simplefilter("ignore")
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_svm import copy_visit, run_ours, run_reference

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="hapgpu-real-hrc-"))
    work.mkdir(parents=True, exist_ok=True)
    poller, added = make_visit(args.path, work / "visit")
    print(f"input: {args.path} -> {poller.parent}" + ("  (MTFLAG = 'F' added)" if added else ""))
    t_ours, _ = run_ours(poller, work / "hapgpu", args.backend)
    t_ref, _ = run_reference(copy_visit(poller, work / "drizzlepac"))
    print(f"wall time: hapgpu ({args.backend}) {t_ours:.1f} s, drizzlepac {t_ref:.1f} s, "
          f"ratio {t_ref / t_ours:.1f}")
    for line in compare_products(work / "hapgpu", work / "drizzlepac"):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
