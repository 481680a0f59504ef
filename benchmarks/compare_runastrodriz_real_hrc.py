"""Compare ``hapgpu runastrodriz`` on a real ACS/HRC exposure with drizzlepac's AstroDrizzle run
with runastrodriz's final settings.

The full 1024x1024 FLT file given on the command line (plain or gzip-compressed, e.g.
``../shared/data/hst/real/j8bt06nyq_flt.fits.gz``) is processed as a singleton, offline:

* hapgpu: ``hapgpu.runastrodriz.process`` on one copy (the CLI's ``hapgpu runastrodriz
  <rootname>_flt.fits``), every stage as configured by default: pipeline-default WCS, the a
  priori stage (the file's headerlets, if any) and the a posteriori stage, which offline finds
  no catalogue (``ASTROMETRIC_CATALOG_URL`` at a closed loopback port, no ``--refcat``) and
  keeps the WCS;
* drizzlepac: ``drizzlepac.runastrodriz.process`` needs CRDS reference files and the network
  (updatewcs, MDRIZTAB, the astrometry database), so the oracle is the drizzle it ends with:
  ``AstroDrizzle`` on another copy with the same pipeline-default WCS made active and
  runastrodriz's final parameters (the MDRIZTAB row for the exposure and ``PIPELINE_PARS``:
  clean, resetbits 4096, stepsize 10; :func:`hapgpu.runastrodriz._pars.final_parameters`).

A singleton is not verified by drizzling (drizzlepac's ``run_driz`` verifies associations
only), so the WCS hapgpu keeps is the pipeline default unless the file carries an a priori
headerlet; the output says which WCS each product has.

Usage::

    python benchmarks/compare_runastrodriz_real_hrc.py PATH/j8bt06nyq_flt.fits.gz
        [--workdir DIR] [--backend cpu|gpu]

Prints the wall times, the WCSNAME of both products, the largest WCS differences, the fraction
of pixels whose SCI agrees within 1e-4 relative + 1e-3 sigma (issue 14's criterion: >= 99.9 %),
whether the NaN (no data) pixels are the same, and the largest relative SCI and WHT differences.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
#: A catalogue service on a closed loopback port: requests fail at once (offline run).
CLOSED_PORT_URL = "http://127.0.0.1:9"


def unpack(source: Path, folder: Path) -> Path:
    """The exposure (gunzipped when ``.gz``) copied into ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / source.name.removesuffix(".gz")
    if source.suffix == ".gz":
        with gzip.open(source) as packed:
            dest.write_bytes(packed.read())
    else:
        shutil.copyfile(source, dest)
    return dest


def drizzlepac_kwargs(pars: dict) -> dict:
    """hapgpu-resolved AstroDrizzle parameters as drizzlepac keyword values."""
    from hapgpu.astrodrizzle import resolve_parameters
    from hapgpu.astrodrizzle._parameters import HAPGPU_ONLY_PARAMETERS

    kw = {k: v for k, v in resolve_parameters(pars).to_dict().items()
          if k not in HAPGPU_ONLY_PARAMETERS}
    for key, value in kw.items():
        if isinstance(value, list):
            kw[key] = f"{value[0]} {value[1]}"
    for key in ("sky_bits", "driz_sep_bits", "final_bits", "resetbits"):
        kw[key] = None if kw[key] is None else str(kw[key])
    return kw


def run_ours(flt: Path, backend: str) -> float:
    """``hapgpu runastrodriz`` on ``flt`` (in its folder); the wall time."""
    from hapgpu.runastrodriz import process

    started = time.perf_counter()
    code = process(flt, backend=backend)
    elapsed = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"hapgpu runastrodriz exited with {code}; see {flt.parent}")
    return elapsed


def run_reference(flt: Path) -> float:
    """AstroDrizzle with runastrodriz's final settings on ``flt`` (pipeline-default WCS made
    active first); the wall time."""
    from drizzlepac import astrodrizzle as adriz

    from hapgpu.runastrodriz._init import apply_pipeline_default
    from hapgpu.runastrodriz._pars import final_parameters

    apply_pipeline_default([flt])
    kwargs = drizzlepac_kwargs(final_parameters([flt], in_memory=True))
    cwd = os.getcwd()
    saved = {k: os.environ.pop(k) for k in ("iref", "jref", "CRDS_PATH", "CRDS_SERVER_URL")
             if k in os.environ}
    started = time.perf_counter()
    try:
        os.chdir(flt.parent)
        with contextlib.redirect_stdout(io.StringIO()):
            adriz.AstroDrizzle([flt.name], output=flt.name[:9], runfile="", num_cores=1,
                               build=True, updatewcs=False, mdriztab=False, in_memory=False,
                               clean=True, preserve=False, **kwargs)
    finally:
        os.chdir(cwd)
        os.environ.update(saved)
    return time.perf_counter() - started


def compare(ours: Path, ref: Path) -> list[str]:
    """Report lines comparing the two products."""
    from astropy.io import fits

    with fits.open(ours) as a, fits.open(ref) as b:
        so, sr = a["SCI"].data.astype(np.float64), b["SCI"].data.astype(np.float64)
        wo, wr = a["WHT"].data.astype(np.float64), b["WHT"].data.astype(np.float64)
        ho, hr = a["SCI"].header, b["SCI"].header
        lines = [(f"WCSNAME: hapgpu {ho.get('WCSNAME')!r}, drizzlepac {hr.get('WCSNAME')!r}; "
                  f"hapgpu DRIZCORR {a[0].header.get('DRIZCORR')!r}")]
        if so.shape != sr.shape:
            return lines + [f"shapes differ: hapgpu {so.shape}, drizzlepac {sr.shape}"]
    dcrpix = max(abs(ho[k] - hr[k]) for k in ("CRPIX1", "CRPIX2"))
    dcrval = max(abs(ho[k] - hr[k]) for k in ("CRVAL1", "CRVAL2"))
    dcd = max(abs(ho[k] - hr[k]) for k in ("CD1_1", "CD1_2", "CD2_1", "CD2_2")) / abs(hr["CD1_1"])
    same_nan = bool(np.array_equal(np.isnan(so), np.isnan(sr)))
    good = np.isfinite(sr) & np.isfinite(so)
    values = sr[good]
    median = np.median(values)
    sigma = 1.4826 * np.median(np.abs(values - median))  # the image's noise (MAD)
    diff = np.abs(so[good] - values)
    ok = (diff <= 1e-4 * np.abs(values) + 1e-3 * sigma).mean()
    sci_rel = (diff / np.maximum(np.abs(values), sigma)).max()
    wht_rel = np.abs(wo - wr).max() / wr.max()
    lines.append(f"shape {sr.shape[0]}x{sr.shape[1]}  dCRPIX {dcrpix:.1e}  dCRVAL {dcrval:.1e} deg  "
                 f"dCD/CD {dcd:.1e}  same NaN pixels: {same_nan}")
    lines.append(f"SCI within 1e-4 rel + 1e-3 sigma: {ok:.5f} of {good.sum()} pixels "
                 f"({'PASS' if ok >= 0.999 and same_nan else 'FAIL'} at >= 0.999); "
                 f"largest SCI difference {sci_rel:.1e} (relative, floor sigma {sigma:.3g}); "
                 f"largest WHT difference {wht_rel:.1e} of the maximum")
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
    for handler in logging.getLogger().handlers:  # the pipeline logs at INFO into its trailer
        handler.setLevel(logging.WARNING)
    warnings.simplefilter("ignore")
    os.environ["ASTROMETRIC_CATALOG_URL"] = CLOSED_PORT_URL
    for name in ("ASTROMETRY_APPLY_APRIORI", "ASTROMETRY_COMPUTE_APOSTERIORI",
                 "PIPELINE_RESET_IDCTAB", "PIPELINE_QUALITY_TESTING"):
        os.environ.pop(name, None)

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="hapgpu-rad-hrc-"))
    work.mkdir(parents=True, exist_ok=True)
    ours = unpack(args.path, work / "hapgpu")
    ref = unpack(args.path, work / "drizzlepac")
    print(f"input: {args.path} -> {work}")
    t_ours = run_ours(ours, args.backend)
    t_ref = run_reference(ref)
    root = ours.name[:9]
    print(f"wall time: hapgpu runastrodriz ({args.backend}, every stage) {t_ours:.1f} s; "
          f"drizzlepac AstroDrizzle (final drizzle only) {t_ref:.1f} s")
    suffix = "_drc.fits" if ours.name.endswith("_flc.fits") else "_drz.fits"
    for line in compare(ours.parent / f"{root}{suffix}", ref.parent / f"{root}{suffix}"):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
