"""runastrodriz verification (hap-pipeline.md §3.4-§3.6): the figures of a verification run
equal drizzlepac's own functions on the same single drizzles and products, and the decision
rules as coded."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from astropy.io import fits

from hapgpu.errors import InvalidInputError, InvalidParameterError
from hapgpu.runastrodriz._pars import focus_parameters, verification_parameters
from hapgpu.runastrodriz._verify import (
    decide,
    detect_point_sources,
    max_overlap_diff,
    verify_alignment,
)

from . import _fixtures
from ._fixtures import copy_files, quiet

truth_pair = _fixtures.truth_pair  # session fixture


def _focus_dict(exp, prod):
    exp = np.asarray(exp, float)
    return {"exp": list(exp), "prod": [float(prod)], "exp_pos": (0, 0), "prod_pos": (0, 0),
            "stats": {"mean": exp.mean(), "std": exp.std(), "min": exp.min(),
                      "max": exp.max()},
            "alignment_verified": False, "alignment_quality": -1, "expnames": [],
            "prodname": "p_drc.fits"}


def _drizzlepac_decision(focus_dict, distances, n_matched, fraction):
    """runastrodriz.verify_alignment's decision, spelled with drizzlepac's own functions."""
    from drizzlepac.haputils import astrometric_utils as au

    diff_ok, _ = au.evaluate_overlap_diffs({f"s{i}": {"distance": d}
                                            for i, d in enumerate(distances)})
    if fraction < 0.1 or -1 < n_matched < 10:
        verified = bool(diff_ok and au.evaluate_focus(focus_dict))
    else:
        verified = bool(diff_ok)
    return verified, 0 if verified else 3


SHARP = _focus_dict([10.0, 11.0, 10.5], 10.6)      # product inside the singles' range
BLURRED = _focus_dict([10.0, 11.0, 10.5], 4.0)     # product far below it


@pytest.mark.reference
@pytest.mark.parametrize("focus_dict", [SHARP, BLURRED], ids=["sharp", "blurred"])
@pytest.mark.parametrize("distances", [[0.1, 0.4], [0.1, 1.0], [0.3, 1.7], [-1, 0.2]],
                         ids=["close", "limit", "far", "no-data"])
@pytest.mark.parametrize("n_matched, fraction", [(-1, 1.0), (50, 0.5), (5, 0.5), (50, 0.05)],
                         ids=["no-fit", "good-fit", "few-matches", "low-fraction"])
def test_decision_is_drizzlepacs(focus_dict, distances, n_matched, fraction):
    ours = decide(copy.deepcopy(focus_dict), distances, n_matched=n_matched,
                  fraction_matched=fraction)
    assert ours == _drizzlepac_decision(copy.deepcopy(focus_dict), distances, n_matched,
                                        fraction)


def test_decision_cases():
    assert decide(SHARP, [0.2, 0.9]) == (True, 0)
    assert decide(SHARP, [0.2, 1.01]) == (False, 3)
    # the focus test only counts in the borderline case of a fit with few matches
    assert decide(BLURRED, [0.2, 0.9]) == (True, 0)
    assert decide(BLURRED, [0.2, 0.9], n_matched=9, fraction_matched=0.5) == (False, 3)
    assert decide(BLURRED, [0.2, 0.9], n_matched=40, fraction_matched=0.09) == (False, 3)
    assert decide(SHARP, [0.2, 0.9], n_matched=9, fraction_matched=0.5) == (True, 0)
    with pytest.raises(InvalidInputError, match="no overlap distance"):
        decide(SHARP, [])


@pytest.fixture(scope="module")
def overlap_case(tmp_path_factory):
    """Two single drizzles (one shifted by 2 px) and a product, as arrays and files."""
    rng = np.random.default_rng(3)
    ny, nx = 120, 110
    y, x = np.mgrid[:ny, :nx]
    stars = [(rng.uniform(5, nx - 5), rng.uniform(5, ny - 5), rng.uniform(300, 3000))
             for _ in range(30)]

    def image(dx, noise):
        img = rng.normal(1.0, noise, (ny, nx))
        for x0, y0, f in stars:
            img += f * np.exp(-0.5 * ((x - x0 - dx) ** 2 + (y - y0) ** 2) / 1.3 ** 2) / 10.6
        return img.astype(np.float32)

    singles = [image(0.0, 0.4), image(2.0, 0.4)]
    singles[1][:, :7] = 0
    product = image(0.0, 0.25)
    total = np.full((ny, nx), 2, np.int16)
    total[:, :7] = 1
    root = tmp_path_factory.mktemp("overlap")
    names = []
    for i, (img, t) in enumerate(zip(singles, (300.0, 120.0))):
        hdu = fits.PrimaryHDU(img)
        hdu.header["EXPTIME"] = t
        names.append(str(root / f"x{i}_single_sci.fits"))
        hdu.writeto(names[-1])
    prodfile = str(root / "x_drc.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(product, name="SCI")]).writeto(prodfile)
    return singles, product, total, [300.0, 120.0], names, prodfile


@pytest.mark.reference
def test_max_overlap_diff_is_drizzlepacs(overlap_case):
    from drizzlepac.haputils import astrometric_utils as au

    singles, product, total, exptimes, names, prodfile = overlap_case
    ref = quiet(au.max_overlap_diff, total, names, prodfile, scale=1)
    distances, records = max_overlap_diff(total, singles, product, exptimes, names=names,
                                          backend="cpu")
    assert distances == pytest.approx([ref[n]["distance"] for n in names], rel=1e-6)
    assert distances[1] > distances[0]            # the shifted single is further away
    for name in names:
        assert records[name]["num_sources"] == ref[name]["num_sources"]
        assert records[name]["product_num_sources"] == ref[name]["product_num_sources"]
        assert records[name]["focus"] == pytest.approx(ref[name]["focus"], rel=1e-5)
    with pytest.raises(InvalidInputError, match="shape"):
        max_overlap_diff(total[:-1], singles, product, exptimes)


@pytest.mark.reference
def test_detect_point_sources_is_drizzlepacs(overlap_case):
    from drizzlepac.haputils import astrometric_utils as au

    singles = overlap_case[0]
    ref_labels, ref_n, _ = quiet(au.detect_point_sources, singles[0].astype(np.float64))
    labels, n, _ = detect_point_sources(singles[0], backend="cpu")
    assert n == ref_n > 10
    np.testing.assert_array_equal(labels > 0, ref_labels > 0)


# ----------------------------------------------------------------------------- end to end
def _verification_pars(files):
    pars = verification_parameters(files, files)
    # The shipped MDRIZTAB-equivalent rows drizzle the product north up (final_wcs, final_rot
    # 0) while the single drizzles keep the default frame; the metrics compare them pixel by
    # pixel, so the verification drizzles here use the default frame for both.
    pars["final_wcs"] = False
    return pars


def _drizzlepac_figures(singles, product, sigma):
    """Focus dictionary and overlap distances from drizzlepac's functions on the files."""
    from drizzlepac.haputils import astrometric_utils as au
    from drizzlepac.haputils.cell_utils import SkyFootprint
    from stwcs.wcsutil import HSTWCS

    names = [str(s) for s in singles]
    focus = quiet(au.build_focus_dict, names, str(product), sigma=sigma)
    footprint = quiet(SkyFootprint, quiet(HSTWCS, str(product), ext=("SCI", 1)))
    quiet(footprint.build, names)
    diffs = quiet(au.max_overlap_diff, footprint.total_mask, names, str(product), scale=1)
    return focus, [diffs[n]["distance"] for n in names], footprint.total_mask


def _shift_wcs(path, arcsec):
    """Move the active WCS of every chip by ``arcsec`` in declination."""
    with fits.open(path, mode="update") as hdul:
        for hdu in hdul:
            if hdu.name == "SCI":
                hdu.header["CRVAL2"] += arcsec / 3600.0


@pytest.mark.slow
@pytest.mark.reference
def test_verification_figures_match_drizzlepac(truth_pair, tmp_path):
    from drizzlepac.haputils import astrometric_utils as au

    parent = tmp_path / "run"
    files = copy_files(truth_pair.files, parent)
    focus = focus_parameters("WFC3", "UVIS")
    pars = _verification_pars(files)
    common = {"root": "isim01", "good_bits": focus.good_bits, "drizzle_pars": pars,
              "focus_sigma": focus.sigma, "backend": "cpu", "workdir": parent}

    # products north up while the single drizzles keep the detector's orientation: the
    # metrics cannot compare them (drizzlepac's build_focus_dict fails on the shapes too)
    north_up = {**common, "drizzle_pars": {**pars, "final_wcs": True, "final_rot": 0.0,
                                           "driz_sep_wcs": False}}
    with pytest.raises(InvalidInputError, match="separate-drizzle frame differs"):
        verify_alignment([files], files, [], mode="default-pipeline", find_crs=False,
                         **north_up)

    default = verify_alignment([files], files, [], mode="default-pipeline", find_crs=False,
                               **common)
    product = parent / "isim01_drc.fits"
    assert default.products == [product]
    assert fits.getval(product, "DRIZPARS") == "isim01.tra"
    assert (default.verified, default.quality, default.similarity) == (True, 0, None)
    singles = [parent / f"{f.name[:9]}_single_sci.fits" for f in files]
    ref_focus, ref_distances, _ = _drizzlepac_figures(singles, product, focus.sigma)
    ours = default.focus[0]
    assert ours["exp"] == pytest.approx(ref_focus["exp"], rel=1e-5)
    assert ours["prod"] == pytest.approx(ref_focus["prod"], rel=1e-5)
    assert ours["prod_pos"] == ref_focus["prod_pos"]
    assert ours["alignment_verified"] is True and ours["alignment_quality"] == 0
    assert default.overlap_distances == pytest.approx(ref_distances, rel=1e-6)
    assert max(default.overlap_distances) <= 1.0

    # a priori mode in <root>_apriori/, compared with the pipeline-default product above, with
    # one exposure moved by 1.5 arcsec: the product's focus collapses, but as coded only the
    # overlap distance (capped by twice the similarity) decides without an a posteriori fit
    _shift_wcs(files[1], 1.5)
    moved = verify_alignment([files], files, [], mode="apriori", find_crs=False, **common)
    workdir = parent / "isim01_apriori"
    assert moved.workdir == workdir and moved.products == [workdir / "isim01_drc.fits"]
    singles = [workdir / s.name for s in singles]
    ref_focus, ref_distances, _ = _drizzlepac_figures(singles, moved.products[0], focus.sigma)
    assert moved.overlap_distances == pytest.approx(ref_distances, rel=1e-6)
    assert moved.focus[0]["exp"] == pytest.approx(ref_focus["exp"], rel=1e-5)
    assert moved.focus[0]["prod"] == pytest.approx(ref_focus["prod"], rel=1e-5)
    ref_sim = au.compute_similarity(fits.getdata(moved.products[0], 1),
                                    fits.getdata(product, 1))
    assert moved.similarity == pytest.approx(ref_sim, rel=1e-5, abs=1e-7)
    assert au.evaluate_focus(ref_focus) is False          # blurred: two images of each star
    expected = _drizzlepac_decision(ref_focus, ref_distances, -1, 1.0)
    assert (moved.verified, moved.quality) == (expected[0], expected[1] + 3 * (ref_sim > 1))
    # the same figures after a fit with few matches fail the verification
    assert decide(moved.focus[0], moved.overlap_distances, n_matched=8) == (False, 3)
    if moved.verified:                                    # verified: the inputs are copied back
        for f in files:
            assert f.read_bytes() == (workdir / f.name).read_bytes()


def test_verify_alignment_rejects_bad_calls(tmp_path):
    (tmp_path / "a_flc.fits").write_bytes(b"")
    with pytest.raises(InvalidInputError, match="inlist is empty"):
        verify_alignment([], [tmp_path / "a_flc.fits"], [], mode="apriori", root="a",
                         find_crs=False, good_bits=0, drizzle_pars={}, focus_sigma=1.5,
                         workdir=tmp_path)
    with pytest.raises(InvalidParameterError, match="mode"):
        verify_alignment([], [tmp_path / "a_flc.fits"], [], mode="final", root="a",
                         find_crs=False, good_bits=0, drizzle_pars={}, focus_sigma=1.5,
                         workdir=tmp_path)
    with pytest.raises(InvalidInputError, match="no such file"):
        verify_alignment([[tmp_path / "b_flc.fits"]], [tmp_path / "b_flc.fits"], [], mode="apriori", root="b",
                         find_crs=False, good_bits=0, drizzle_pars={}, focus_sigma=1.5,
                         workdir=tmp_path)
