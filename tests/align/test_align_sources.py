"""Source finding for alignment: DQ mask, kernel, FWHM, cosmic rays, extraction, refinement."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import erf

from hapgpu.align import alignment_pars
from hapgpu.align._sources import (
    build_auto_kernel,
    build_dq_mask,
    classify_sources,
    extract_sources,
    find_fwhm,
    gaussian_kernel,
    position_errors,
    refine_centroids,
)
from hapgpu.detection import SourceCatalog, detect_sources
from hapgpu.errors import InvalidInputError


def _star(shape, x0, y0, flux, sigma):
    """A pixel-integrated circular Gaussian (exact pixel fluxes)."""
    ny, nx = shape
    s = np.sqrt(2.0) * sigma
    xs = np.arange(nx)
    ys = np.arange(ny)
    fx = 0.5 * (erf((xs + 0.5 - x0) / s) - erf((xs - 0.5 - x0) / s))
    fy = 0.5 * (erf((ys + 0.5 - y0) / s) - erf((ys - 0.5 - y0) / s))
    return flux * np.outer(fy, fx)


def _scene(shape=(160, 160), n=25, sigma=1.0, seed=3, sky=20.0, noise=2.0):
    rng = np.random.default_rng(seed)
    img = rng.normal(sky, noise, shape)
    pos = []
    while len(pos) < n:
        x, y = rng.uniform(12, shape[1] - 12), rng.uniform(12, shape[0] - 12)
        if all(np.hypot(x - a, y - b) > 12 for a, b, _ in pos):
            pos.append((x, y, 10 ** rng.uniform(3.0, 4.0)))
    for x, y, f in pos:
        img += _star(shape, x, y, f, sigma)
    return img.astype(np.float32), np.array(pos)


def test_dq_mask_keeps_saturation_rims_and_masks_other_bits():
    dq = np.zeros((20, 20), dtype=np.int16)
    dq[2, 2] = 4                  # hot pixel: masked
    dq[5:15, 5:15] = 256          # saturated block: only its core (>= 4 px inside) masked
    dq[17, 17] = 256              # isolated saturated pixel: kept
    dq[18, 2] = 2048 | 4          # other bit with saturation: masked
    mask = build_dq_mask(dq, backend="cpu")
    assert mask[2, 2] and mask[18, 2]
    assert not mask[17, 17]
    assert not mask[5, 5] and not mask[8, 8]
    assert mask[9, 9] and mask[10, 10]
    assert mask.sum() == 2 + 4


def test_gaussian_kernel_is_normalised_with_the_asked_width():
    k = gaussian_kernel(3.0, 7)
    assert k.shape == (7, 7)
    assert k.sum() == pytest.approx(1.0)
    sigma = 3.0 / 2.3548200450309493
    assert k[3, 4] / k[3, 3] == pytest.approx(np.exp(-0.5 / sigma ** 2))


@pytest.mark.parametrize("fwhm", [1.6, 2.2, 3.0])
def test_find_fwhm_recovers_an_integrated_gaussian(fwhm):
    sigma = fwhm / 2.3548200450309493
    psf = _star((15, 15), 7.2, 6.9, 1.0, sigma)
    measured = find_fwhm(psf / psf.sum(), 2.0)
    assert measured == pytest.approx(fwhm, rel=0.01)


def test_auto_kernel_uses_an_isolated_star_and_falls_back_to_a_gaussian():
    img, _ = _scene(sigma=1.0)
    bkg = np.full(img.shape, 20.0, dtype=np.float32)
    thr = np.full(img.shape, 1.1 * (20.0 + 3 * 2.0), dtype=np.float32)
    weight = np.ones(img.shape, dtype=np.float32)
    kernel, fwhm, is_psf = build_auto_kernel(img - bkg, weight, thr, 3.0, backend="cpu")
    assert is_psf and kernel.shape == (15, 15)
    assert fwhm == pytest.approx(2.3548 * 1.0, rel=0.05)
    assert kernel.sum() == pytest.approx(1.0)
    # Zero weights everywhere: no cut-out qualifies, the Gaussian fallback is used.
    kernel, fwhm, is_psf = build_auto_kernel(img - bkg, np.zeros_like(weight), thr, 3.0,
                                             backend="cpu")
    assert not is_psf and kernel.shape == (7, 7) and fwhm == 3.0


def test_classification_separates_cosmic_rays_from_stars():
    img = np.zeros((60, 60), dtype=np.float32)
    img += _star(img.shape, 20.3, 30.6, 5000.0, 1.5).astype(np.float32)
    img[40, 40:44] = 3000.0      # a short straight CR track
    img[10, 50] = 4000.0         # a single-pixel hit
    img[11, 50] = 1500.0
    segm = detect_sources(img, 50.0, 2, connectivity=4)
    catalog = SourceCatalog(img, segm)
    star = classify_sources(catalog, 2.0 * 1.5 * 1.1774)
    labels = {int(segm.data[30, 20]): True, int(segm.data[40, 41]): False,
              int(segm.data[10, 50]): False}
    for label, is_star in labels.items():
        assert star[list(segm.labels).index(label)] == is_star


def test_extraction_finds_each_star_once_brightest_first():
    img, truth = _scene(sigma=1.2)
    thr = np.full(img.shape, 1.1 * (20.0 + 3 * 2.0), dtype=np.float32)
    kernel = gaussian_kernel(2.8, 7)
    table = extract_sources(img, None, kernel, thr, 2.8, n_largest=None, backend="cpu")
    d = np.hypot(np.asarray(table["x"])[:, None] - truth[None, :, 0],
                 np.asarray(table["y"])[:, None] - truth[None, :, 1])
    assert len(table) == len(truth)
    assert np.all(d.min(axis=1) < 0.3)
    assert len(set(d.argmin(axis=1))) == len(truth)
    assert list(table["cat_id"]) == list(range(1, len(truth) + 1))
    assert np.all(np.diff(np.asarray(table["peak"])) <= 1e-3 * table["peak"].max() + 200)
    fewer = extract_sources(img, None, kernel, thr, 2.8, n_largest=5, backend="cpu")
    assert len(fewer) == 5
    assert np.allclose(fewer["x"], table["x"][:5]) and np.allclose(fewer["y"], table["y"][:5])


def test_extraction_on_a_blank_chip_returns_an_empty_table():
    img = np.zeros((80, 80), dtype=np.float32)
    table = extract_sources(img, None, gaussian_kernel(2.5, 7), np.zeros_like(img), 2.5,
                            n_largest=250, backend="cpu")
    assert len(table) == 0 and "x" in table.colnames


def test_refinement_removes_daofind_bias_on_undersampled_stars():
    rng = np.random.default_rng(5)
    shape = (120, 120)
    img = rng.normal(0.0, 1.0, shape)
    truth = []
    for i in range(16):
        x, y = 15 + 25 * (i % 4) + rng.uniform(-0.5, 0.5), 15 + 25 * (i // 4) + rng.uniform(
            -0.5, 0.5)
        img += _star(shape, x, y, 8000.0, 0.5)
        truth.append((x, y))
    truth = np.array(truth)
    thr = np.full(shape, 10.0, dtype=np.float32)
    img = img.astype(np.float32)
    table = extract_sources(img, None, gaussian_kernel(1.2, 7), thr, 1.2, n_largest=None,
                            backend="cpu")
    table = refine_centroids(table, img, 1.2, backend="cpu")

    def error(xcol, ycol):
        d = np.hypot(np.asarray(table[xcol])[:, None] - truth[None, :, 0],
                     np.asarray(table[ycol])[:, None] - truth[None, :, 1])
        return float(np.sqrt(np.mean(d.min(axis=1) ** 2)))

    assert len(table) == 16
    assert error("x", "y") < 0.5 * error("x_hap", "y_hap")
    assert error("x", "y") < 0.03


def test_position_errors_fall_with_flux_to_the_floor():
    from astropy.table import Table

    table = Table({"flux": [1e2, 1e3, 1e4, 1e7, -5.0]})
    err = position_errors(table, 2.0, 5.0, 0.04)
    assert np.all(np.diff(err[:4]) < 0)
    assert err[3] == pytest.approx(0.02 * 40.0, rel=1e-3)
    assert np.isinf(err[4])


def test_unknown_detector_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="NICMOS"):
        alignment_pars("NICMOS", "NIC1")
    assert alignment_pars("WFPC2", None).detector_key == "wfpc2/pc"
    assert alignment_pars("acs", "wfc").max_sources_per_chip == 500


def test_sbc_path_finds_the_stars_of_a_sparse_mama_image():
    from hapgpu.align._sources import extract_sbc_sources

    rng = np.random.default_rng(8)
    shape = (160, 160)
    truth = np.array([(30.3, 40.6), (100.2, 35.7), (70.8, 120.1), (130.4, 130.9)])
    expected = sum(_star(shape, x, y, 3000.0, 1.3) for x, y in truth)
    img = rng.poisson(expected + 0.02).astype(np.float32)
    table = extract_sbc_sources(img, 3.0, backend="cpu")
    d = np.hypot(np.asarray(table["x"])[:, None] - truth[None, :, 0],
                 np.asarray(table["y"])[:, None] - truth[None, :, 1])
    assert np.all(d.min(axis=0) < 0.3)          # every star found
    assert len(table) == len(truth)


@pytest.mark.gpu
def test_gpu_source_lists_equal_the_cpu_ones(visit_cache):
    visit = visit_cache("wfc3-uvis")
    pars = alignment_pars("WFC3", "UVIS")
    from hapgpu.align import find_alignment_sources

    cpu = find_alignment_sources(visit.files[:1], pars, backend="cpu")[0]
    gpu = find_alignment_sources(visit.files[:1], pars, backend="gpu")[0]
    assert gpu.kernel_fwhm == pytest.approx(cpu.kernel_fwhm, rel=1e-6)
    for chip, table in cpu.chips.items():
        other = gpu.chips[chip]
        assert len(other) == len(table)
        assert np.allclose(other["x"], table["x"], atol=1e-4)
        assert np.allclose(other["y"], table["y"], atol=1e-4)
