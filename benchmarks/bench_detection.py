"""Benchmark of hapgpu.detection against photutils / SciPy / astropy / drizzlepac.

Each primitive runs on a synthetic drizzled-like field (sky, noise, stars and galaxies, an
empty border) with about 1,000 and about 20,000 sources, with the arguments the HAP pipeline
uses. Both sides are timed in the same run, after a warm-up on a small image (Numba
compilation, CUDA context); device timings are synchronised. The ratio is reference / ours.

Usage::

    python benchmarks/bench_detection.py                     # 4096 x 4096, cpu
    python benchmarks/bench_detection.py --size 1024 --sources 300,3000
    python benchmarks/bench_detection.py --backend gpu --only deblend,catalog
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import warnings

import numpy as np

import hapgpu.detection as det
from hapgpu.backend import resolve_backend
from hapgpu.detection._synthetic import make_field

HAP_KERNEL_FWHM = 2.5


def _gaussian_kernel(fwhm, size=11):
    sigma = fwhm / 2.3548200450309493
    y, x = np.mgrid[:size, :size] - size // 2
    k = np.exp(-0.5 * (x * x + y * y) / sigma ** 2)
    return k / k.sum()


def _timed(fn, repeat, sync):
    best = np.inf
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best, result


class Bench:
    """Registry of (name, ours, reference) cases for one field."""

    def __init__(self, backend, repeat):
        self.bk = resolve_backend(backend)
        self.repeat = repeat
        self.rows = []

    def dev(self, array):
        return self.bk.asarray(array) if self.bk.name == "gpu" else array

    def run(self, name, n_sources, ours, reference, ref_name):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t_ours, _ = _timed(ours, self.repeat, self.bk.synchronize)
            t_ref = np.nan
            if reference is not None:
                t_ref, _ = _timed(reference, 1, lambda: None)
        self.rows.append((name, n_sources, t_ours, t_ref, ref_name))
        ratio = t_ref / t_ours if np.isfinite(t_ref) else np.nan
        print(f"  {name:<24s} {n_sources:>7d} {t_ours:10.3f} {t_ref:10.3f} {ratio:8.1f}x  "
              f"{ref_name}", flush=True)


def _field(size, n_sources, seed):
    n_gal = max(n_sources // 5, 1)
    return make_field((size, size), n_stars=n_sources - n_gal, n_galaxies=n_gal,
                      star_flux=(0.3, 300.0), galaxy_flux=(1.0, 600.0), border=size // 64,
                      seed=seed)


def _warm_up(backend):
    """Compile / initialise every primitive on a small field (excluded from timings)."""
    f = _field(192, 60, 99)
    bk = resolve_backend(backend)
    d = bk.asarray(f.data) if bk.name == "gpu" else f.data
    det.gaussian_laplace(d, 2.0, backend=bk)
    det.sigma_clipped_stats(d, backend=bk)
    det.mad_rms(d, backend=bk)
    conv = det.convolve(d - f.sky, _gaussian_kernel(HAP_KERNEL_FWHM), normalize_kernel=False,
                        backend=bk)
    det.Background2D(d, 27, coverage_mask=~f.footprint, backend=bk).background
    segm = det.detect_sources(conv, 0.03, 6, backend=bk)
    deb = det.deblend_sources(conv, segm, 6, n_levels=64, backend=bk)
    cat = det.SourceCatalog(d - f.sky, deb, convolved_data=conv, kron_params=(2.5, 3.5),
                            backend=bk)
    cat.kron_radius
    det.DAOStarFinder(0.05, HAP_KERNEL_FWHM, backend=bk).find_stars(d - f.sky)
    pos = f.stars[:20, :2]
    det.aperture_photometry(d, [det.CircularAperture(pos, 1.25), det.CircularAperture(pos, 3.75)],
                            error=f.error, backend=bk)
    det.aperture_stats_tbl(d, det.CircularAnnulus(pos, 6.25, 12.5), backend=bk)
    det.focus_index(d, 2.0, backend=bk)
    det.max_overlap_diff(np.ones(f.data.shape, int), [d], d, backend=bk)


def bench_field(bench, size, n_sources, seed, only, tmpdir):
    from astropy.convolution import convolve as ap_convolve
    from astropy.io import fits
    from astropy.stats import sigma_clipped_stats as ap_stats
    from drizzlepac.haputils import astrometric_utils as au
    from drizzlepac.haputils.background_median import aperture_stats_tbl as dz_annulus
    from photutils import aperture as pa
    from photutils import background as pb
    from photutils import detection as pd
    from photutils import segmentation as ps
    from scipy import ndimage

    f = _field(size, n_sources, seed)
    data = f.data
    sub = data - f.sky
    sub[~f.footprint] = 0.0
    d_data, d_sub = bench.dev(data), bench.dev(sub)
    bk = bench.bk
    kernel = _gaussian_kernel(HAP_KERNEL_FWHM)
    conv_ref = ap_convolve(sub, kernel, normalize_kernel=False)
    d_conv = det.convolve(d_sub, kernel, normalize_kernel=False, backend=bk)
    rms = float(det.sigma_clipped_stats(data, mask=~f.footprint, backend="cpu")[2])
    threshold = 3.0 * rms
    mask = ~f.footprint

    def want(key):
        return not only or key in only

    n = n_sources
    if want("filters"):
        bench.run("gaussian_laplace", n, lambda: det.gaussian_laplace(d_data, 2.0, backend=bk),
                  lambda: ndimage.gaussian_laplace(data, 2.0), "scipy.ndimage")
        bench.run("convolve 11x11", n, lambda: det.convolve(d_sub, kernel, normalize_kernel=False,
                                                            backend=bk),
                  lambda: ap_convolve(sub, kernel, normalize_kernel=False), "astropy")
        bench.run("maximum_filter 11", n, lambda: det.maximum_filter(d_data, size=11, backend=bk),
                  lambda: ndimage.maximum_filter(data, size=11), "scipy.ndimage")
        bench.run("binary_erosion x10", n, lambda: det.binary_erosion(
            bench.dev(f.footprint), iterations=10, backend=bk),
            lambda: ndimage.binary_erosion(f.footprint, iterations=10), "scipy.ndimage")
    if want("stats"):
        bench.run("sigma_clipped_stats", n, lambda: det.sigma_clipped_stats(
            d_data, mask=mask, sigma=3.0, maxiters=3, backend=bk),
            lambda: ap_stats(data, mask=mask, sigma=3.0, maxiters=3), "astropy")
        bench.run("mad_rms", n, lambda: det.mad_rms(d_data, backend=bk),
                  lambda: _mad_rms_reference(data), "numpy.ma (HAP)")
    if want("background"):
        bench.run("Background2D", n, lambda: _background(
            det.Background2D(d_data, 27, filter_size=3, coverage_mask=bench.dev(mask),
                             backend=bk)),
            lambda: _background(pb.Background2D(data, 27, filter_size=3, coverage_mask=mask,
                                                bkg_estimator=pb.SExtractorBackground(),
                                                bkg_rms_estimator=pb.StdBackgroundRMS())),
            "photutils")
    segm_ref = ps.detect_sources(conv_ref, threshold, n_pixels=6, mask=mask)
    segm = det.detect_sources(d_conv, threshold, 6, mask=bench.dev(mask), backend=bk)
    if want("detect"):
        bench.run("detect_sources", n, lambda: det.detect_sources(
            d_conv, threshold, 6, mask=bench.dev(mask), backend=bk),
            lambda: ps.detect_sources(conv_ref, threshold, n_pixels=6, mask=mask), "photutils")
    if want("deblend"):
        bench.run("deblend_sources", n, lambda: det.deblend_sources(
            d_conv, segm, 6, n_levels=64, contrast=0.001, backend=bk),
            lambda: ps.deblend_sources(conv_ref, segm_ref, n_pixels=6, n_levels=64,
                                       contrast=0.001, progress_bar=False), "photutils")
    if want("catalog"):
        columns = ["label", "x_centroid", "y_centroid", "area", "fwhm", "segment_flux",
                   "segment_flux_err", "background_centroid", "kron_radius", "bbox_xmin",
                   "bbox_ymax", "covariance_xx", "covariance_xy", "ellipse_cxx", "ellipse_cxy",
                   "elongation", "ellipticity", "orientation"]
        bkg = np.full(data.shape, f.sky, np.float32)
        err = f.error
        bench.run("SourceCatalog (HAP cols)", segm.n_labels, lambda: det.SourceCatalog(
            d_sub, segm, convolved_data=d_conv, error=bench.dev(err), background=bench.dev(bkg),
            kron_params=(2.5, 3.5), backend=bk).to_table(columns=columns),
            lambda: ps.SourceCatalog(sub, segm_ref, convolved_data=conv_ref, error=err,
                                     background=bkg, kron_params=(2.5, 3.5)).to_table(
                columns=columns), "photutils")
    if want("stars"):
        bench.run("DAOStarFinder", n, lambda: det.DAOStarFinder(
            threshold, HAP_KERNEL_FWHM, min_separation=0, backend=bk).find_stars(d_sub),
            lambda: pd.DAOStarFinder(threshold, HAP_KERNEL_FWHM, min_separation=0).find_stars(
                sub), "photutils")
    if want("photometry"):
        pos = np.vstack([f.stars[:, :2], f.galaxies[:, :2]])
        apers = [det.CircularAperture(pos, 1.25), det.CircularAperture(pos, 3.75)]
        ref_apers = [pa.CircularAperture(pos, r=1.25), pa.CircularAperture(pos, r=3.75)]
        err = f.error
        bench.run("aperture_photometry x2", len(pos), lambda: det.aperture_photometry(
            d_data, apers, error=bench.dev(err), backend=bk),
            lambda: pa.aperture_photometry(data, ref_apers, error=err), "photutils")
        ann = pa.CircularAnnulus(pos, 6.25, 12.5)
        bench.run("annulus stats", len(pos), lambda: det.aperture_stats_tbl(d_data, ann,
                                                                            backend=bk),
                  lambda: dz_annulus(data, ann), "drizzlepac")
    if want("quality"):
        bench.run("focus_index", n, lambda: det.focus_index(d_data, 2.0, backend=bk),
                  lambda: au.determine_focus_index(data, 2.0), "drizzlepac")
        other = _field(size, n_sources, seed + 1).data
        bench.run("compute_similarity", n, lambda: det.compute_similarity(
            d_data, bench.dev(other), backend=bk),
            lambda: au.compute_similarity(data, other), "drizzlepac")
        names = []
        for i, img in enumerate((data, other)):
            hdu = fits.PrimaryHDU(img)
            hdu.header["EXPTIME"] = 100.0 * (i + 1)
            names.append(os.path.join(tmpdir, f"single{i}_{n}.fits"))
            hdu.writeto(names[-1], overwrite=True)
        prod = os.path.join(tmpdir, f"prod_{n}.fits")
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(0.5 * (data + other), name="SCI")]
                     ).writeto(prod, overwrite=True)
        total = 2 * f.footprint.astype(int)
        bench.run("max_overlap_diff (2)", n, lambda: det.max_overlap_diff(
            total, names, prod, backend=bk),
            lambda: au.max_overlap_diff(total, names, prod), "drizzlepac")


def _background(bkg):
    return bkg.background, bkg.background_rms


def _mad_rms_reference(img):
    masked = np.ma.masked_array(img, mask=(img == 0) | np.isnan(img))
    diffs = 2 * masked[:, 2:-2] - masked[:, :-4] - masked[:, 4:]
    return np.ma.median(np.ma.abs(diffs)) * 1.482602 / np.sqrt(6.0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096, help="image side (pixels)")
    parser.add_argument("--sources", default="1000,20000",
                        help="comma-separated source counts (default 1000,20000)")
    parser.add_argument("--backend", default="cpu", help="cpu, gpu, cudasim or auto")
    parser.add_argument("--repeat", type=int, default=1, help="best of N for ours")
    parser.add_argument("--only", default="",
                        help="comma-separated groups: filters, stats, background, detect, "
                             "deblend, catalog, stars, photometry, quality")
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    import numba
    import photutils
    import scipy

    bk = resolve_backend(args.backend)
    print(f"# hapgpu.detection benchmark: {args.size}x{args.size}, backend={bk.name}, "
          f"numba threads={numba.get_num_threads()}, cpus={os.cpu_count()}, "
          f"{platform.processor() or platform.machine()}")
    print(f"# numpy {np.__version__}, scipy {scipy.__version__}, photutils "
          f"{photutils.__version__}, numba {numba.__version__}")
    print(f"  {'primitive':<24s} {'sources':>7s} {'ours (s)':>10s} {'ref (s)':>10s} "
          f"{'ratio':>9s}  reference")
    _warm_up(bk)
    bench = Bench(bk, args.repeat)
    with tempfile.TemporaryDirectory() as tmpdir:
        for i, n in enumerate(int(s) for s in args.sources.split(",")):
            bench_field(bench, args.size, n, args.seed + 10 * i, only, tmpdir)


if __name__ == "__main__":
    main()
