"""runastrodriz quality metrics against drizzlepac (hap-pipeline.md §3.5-3.6)."""

import warnings

import numpy as np
import pytest

from hapgpu.detection import (build_focus_dict, compute_similarity, detect_point_sources,
                              evaluate_focus, focus_index, max_overlap_diff)


@pytest.fixture(scope="module")
def visit(tmp_path_factory):
    """Three single drizzles, a product and the exposure-count mask, as arrays and files."""
    from astropy.io import fits

    rng = np.random.default_rng(5)
    ny, nx = 160, 150
    y, x = np.mgrid[:ny, :nx]
    stars = [(rng.uniform(0, nx), rng.uniform(0, ny), rng.uniform(50, 2000)) for _ in range(40)]

    def make(shift, s, noise, cover):
        img = rng.normal(2.0, noise, (ny, nx))
        for x0, y0, f in stars:
            img += f * np.exp(-0.5 * ((x - x0 - shift) ** 2 + (y - y0) ** 2) / s ** 2) / (
                2 * np.pi * s * s)
        img = img.astype(np.float32)
        img[~cover] = 0
        return img

    cov1 = np.ones((ny, nx), bool)
    cov1[:, :12] = False
    cov2 = np.ones((ny, nx), bool)
    cov2[:9, :] = False
    singles = [make(0, 1.2, 0.5, cov1), make(0.4, 1.3, 0.5, cov2), make(0, 1.2, 0.6, cov1 & cov2)]
    product = make(0.1, 1.25, 0.3, cov1 | cov2)
    product[5, 5] = np.nan
    total = cov1.astype(int) + cov2.astype(int) + (cov1 & cov2).astype(int)
    exptimes = [100.0, 80.0, 50.0]
    root = tmp_path_factory.mktemp("visit")
    names = []
    for i, (img, t) in enumerate(zip(singles, exptimes)):
        hdu = fits.PrimaryHDU(img)
        hdu.header["EXPTIME"] = t
        names.append(str(root / f"single{i}.fits"))
        hdu.writeto(names[-1])
    prod_single = str(root / "prod0.fits")
    fits.PrimaryHDU(product).writeto(prod_single)
    prod_sci = str(root / "prod.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(product, name="SCI")]).writeto(prod_sci)
    return singles, product, total, exptimes, names, prod_single, prod_sci


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@pytest.mark.reference
@pytest.mark.parametrize("backend", ["cpu", "cudasim"])
def test_focus_index_matches_drizzlepac(visit, backend):
    from drizzlepac.haputils.astrometric_utils import determine_focus_index

    singles, product, *_ = visit
    value, pos = focus_index(singles[1], 1.5, backend=backend)
    ref_value, ref_pos = determine_focus_index(singles[1], 1.5)
    assert value == pytest.approx(float(ref_value), rel=1e-6)
    np.testing.assert_array_equal(pos[0], ref_pos[0])
    np.testing.assert_array_equal(pos[1], ref_pos[1])


@pytest.mark.reference
def test_focus_dict_and_evaluation_match_drizzlepac(visit):
    from drizzlepac.haputils import astrometric_utils as au

    singles, product, _, _, names, prod_single, _ = visit
    ref = _quiet(au.build_focus_dict, names, prod_single, sigma=2.0)
    ours = build_focus_dict(singles, product, sigma=2.0, backend="cpu")
    np.testing.assert_allclose(ours["exp"], ref["exp"], rtol=1e-6)
    np.testing.assert_allclose(ours["prod"], ref["prod"], rtol=1e-6)
    assert ours["exp_pos"] == ref["exp_pos"] and ours["prod_pos"] == ref["prod_pos"]
    for key in ("mean", "std", "min", "max"):
        assert ours["stats"][key] == pytest.approx(ref["stats"][key], rel=1e-6)
    assert evaluate_focus(ours) == _quiet(au.evaluate_focus, ref)
    # files are read like drizzlepac does
    from_files = build_focus_dict(names, prod_single, sigma=2.0, backend="cpu")
    assert from_files["exp"] == ours["exp"]
    bad = dict(ours, stats=dict(ours["stats"], std=ours["stats"]["min"] * 2))
    assert evaluate_focus(bad) is False and evaluate_focus(None) is True


@pytest.mark.reference
@pytest.mark.parametrize("backend", ["cpu", "cudasim"])
def test_compute_similarity_matches_drizzlepac(visit, backend):
    """Equal to drizzlepac's formula in float64; to its float32 sums within their rounding."""
    from drizzlepac.haputils.astrometric_utils import compute_similarity as ref

    singles, product, *_ = visit
    big = np.random.default_rng(1).normal(5, 1, (600, 520)).astype(np.float32)
    for img, other in [(s, product) for s in singles] + [(big, big * 1.1)]:
        ours = compute_similarity(img, other, backend=backend)
        exact = float(ref(img.astype(np.float64), other.astype(np.float64)))
        assert ours == pytest.approx(exact, rel=1e-10)
        f32_sum_error = 4 * np.finfo(np.float32).eps * np.nansum(np.abs(img)) / abs(
            np.nansum(img) - np.nansum(other))
        assert ours == pytest.approx(float(ref(img, other)), rel=max(float(f32_sum_error), 1e-6))


@pytest.mark.reference
def test_max_overlap_diff_matches_drizzlepac(visit):
    from drizzlepac.haputils import astrometric_utils as au

    singles, product, total, exptimes, names, _, prod_sci = visit
    ref = _quiet(au.max_overlap_diff, total, names, prod_sci, sigma=2.0)
    ours = max_overlap_diff(total, singles, product, sigma=2.0, exptimes=exptimes, names=names,
                            backend="cpu")
    assert ours.keys() == ref.keys()
    for name in names:
        for key, value in ref[name].items():
            assert ours[name][key] == pytest.approx(value, rel=1e-6) if isinstance(
                value, float) else ours[name][key] == value, key
    from_files = max_overlap_diff(total, names, prod_sci, sigma=2.0, backend="cpu")
    assert from_files[names[0]]["distance"] == ours[names[0]]["distance"]


@pytest.mark.reference
def test_detect_point_sources_matches_drizzlepac(visit):
    from drizzlepac.haputils.astrometric_utils import detect_point_sources as ref

    singles, *_ = visit
    for img in (singles[0], np.abs(singles[2]) * 0.01):  # the second one is "blank"
        ref_labels, ref_n, ref_log = _quiet(ref, img)
        labels, n, srclog = detect_point_sources(img, backend="cpu")
        assert n == ref_n
        np.testing.assert_array_equal(labels, ref_labels)
        np.testing.assert_allclose(srclog, ref_log, rtol=1e-6, atol=1e-7 * ref_log.max())


def test_blank_single_gives_minus_one():
    total = np.ones((40, 40), int)
    result = max_overlap_diff(total, [np.zeros((40, 40), np.float32)],
                              np.ones((40, 40), np.float32), backend="cpu")
    assert result["single_0"]["distance"] == -1
