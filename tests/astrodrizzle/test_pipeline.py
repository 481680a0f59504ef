"""The AstroDrizzle chain end to end on the CPU: products, switches, banding, bad input, CLI."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

import hapgpu
from hapgpu.astrodrizzle import AstroDrizzleResult, astrodrizzle
from hapgpu.errors import InvalidInputError, WCSError

# a quick, complete configuration: minmed with grow, so banding exercises the median halo
QUICK = dict(backend="cpu", pars="wfc3_uvis_n2", skymethod="localmin")


def _read(path, ext):
    with fits.open(path) as hdul:
        data = hdul[ext].data
        return (None if data is None else data.copy()), hdul[ext].header.copy()


def _dq(path, chip):
    with fits.open(path) as hdul:
        return hdul["DQ", chip].data.copy()


def test_top_level_call_writes_a_complete_product(small_inputs, caplog):
    out = small_inputs[0].parent / "prod"
    with caplog.at_level(logging.INFO, logger="hapgpu"):
        result = hapgpu.astrodrizzle(small_inputs, out, **QUICK)
    assert "astrodrizzle timing: read" in caplog.text
    assert isinstance(result, AstroDrizzleResult)
    assert result.product == out.parent / "prod_drc.fits" and Path(result).exists()
    with fits.open(result.product) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "SCI", "WHT", "CTX", "HDRTAB"]
        primary, sci = hdul[0].header, hdul["SCI"].header
        assert primary["NDRIZIM"] == 6 and primary["EXPTIME"] == primary["TEXPTIME"]
        assert primary["EXPTIME"] == pytest.approx(sum(fits.getval(p, "EXPTIME") for p in small_inputs))
        assert primary["D001DATA"] == f"{small_inputs[0].name}[sci,1]"
        assert primary["D006DATA"] == f"{small_inputs[2].name}[sci,2]"
        assert primary["D001KERN"] == "square" and primary["D001PIXF"] == 1.0 and primary["D001FVAL"] == "INDEF"
        assert primary["EXPSTART"] < primary["EXPEND"]
        assert sci["BUNIT"] == "ELECTRONS/S" and sci["CTYPE1"] == "RA---TAN" and sci["ORIENTAT"] == 0.0
        assert hdul["SCI"].data.dtype.kind == "f" and hdul["SCI"].data.itemsize == 4
        assert hdul["CTX"].data.dtype.kind == "i" and hdul["CTX"].data.itemsize == 4
        wht = hdul["WHT"].data
        assert np.isfinite(hdul["SCI"].data[wht > 0]).all() and (wht > 0).mean() > 0.3
    assert not list(out.parent.glob(".*part"))
    # cosmic rays flagged in the inputs, sky recorded
    for path in small_inputs:
        flagged = sum(int(((_dq(path, k) & 4096) > 0).sum()) for k in (1, 2))
        assert flagged == sum(result.cosmic_rays[path.name]) > 0
        assert fits.getval(path, "MDRIZSKY", ("SCI", 1)) == pytest.approx(result.sky[path.name][0])
    assert set(result.timings) >= {"read", "static", "sky", "driz_separate", "median", "blot", "driz_cr",
                                   "driz_combine", "write"}


def test_import_hapgpu_stays_light():
    code = "import sys, hapgpu; print('hapgpu.astrodrizzle' in sys.modules, 'cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_banded_run_equals_unbanded(uvis_small, tmp_path):
    from .conftest import copy_visit

    results = []
    for label, band_rows in (("whole", None), ("banded", 23)):
        inputs = copy_visit(uvis_small, tmp_path / label)
        r = astrodrizzle(inputs, tmp_path / label / "out", band_rows=band_rows, save_intermediates=True, **QUICK)
        results.append((inputs, r))
    (in_a, ra), (in_b, rb) = results
    for ext in ("SCI", "WHT", "CTX"):
        np.testing.assert_array_equal(_read(rb.product, ext)[0], _read(ra.product, ext)[0], err_msg=ext)
    np.testing.assert_array_equal(_read(tmp_path / "banded" / "out_med.fits", 0)[0],
                                  _read(tmp_path / "whole" / "out_med.fits", 0)[0])
    for a, b in zip(in_a, in_b):
        for chip in (1, 2):
            np.testing.assert_array_equal(_dq(a, chip), _dq(b, chip))


def test_no_update_inputs_writes_copies(small_inputs):
    before = [p.read_bytes() for p in small_inputs]
    out = small_inputs[0].parent / "copies"
    result = astrodrizzle(small_inputs, out, update_inputs_dq=False, **QUICK)
    assert [p.read_bytes() for p in small_inputs] == before
    copies = [out.parent / f"copies_{p.name}" for p in small_inputs]
    assert all(c in result.files and c.exists() for c in copies)
    assert sum(int(((_dq(copies[0], k) & 4096) > 0).sum()) for k in (1, 2)) > 0


def _sky_counts_per_s(path) -> list[float]:
    """MDRIZSKY / EXPTIME of each chip of an input (the sky the final drizzle subtracted, per s)."""
    return [fits.getval(path, "MDRIZSKY", ("SCI", k)) / fits.getval(path, "EXPTIME") for k in (1, 2)]


def _cr_flags(paths) -> list[int]:
    """Number of pixels with the CR bit (4096) in the DQ of each chip of ``paths``."""
    return [int(((_dq(p, k) & 4096) > 0).sum()) for p in paths for k in (1, 2)]


def _kinds(result) -> set[str]:
    """Kinds of the files a run wrote: the last ``_`` part of each name (``crmask.fits`` ...)."""
    return {p.name.rsplit("_", 1)[-1] for p in result.files}


@pytest.mark.slow
def test_save_intermediates_and_step_switches(uvis_small, tmp_path):
    """Each intermediate holds what its step made; median off removes the median's products and effects."""
    from .conftest import copy_visit

    inputs = copy_visit(uvis_small, tmp_path / "on")
    on = astrodrizzle(inputs, tmp_path / "on" / "inter", save_intermediates=True, **QUICK)
    here = tmp_path / "on"
    roots = [p.name.split("_")[0] for p in inputs]
    names = {p.name for p in here.iterdir()}
    for expected in (f"{roots[0]}_single_sci.fits", f"{roots[0]}_single_wht.fits", "inter_med.fits",
                     f"{roots[0]}_sci1_blt.fits", f"{roots[0]}_sci2_crmask.fits", "inter_128x96_1_staticMask.fits"):
        assert expected in names
    # the median (minmed: the median or the minimum) lies within the single images where all have weight
    singles = np.stack([_read(here / f"{r}_single_sci.fits", 0)[0] for r in roots])
    weights = np.stack([_read(here / f"{r}_single_wht.fits", 0)[0] for r in roots])
    median = _read(here / "inter_med.fits", 0)[0]
    assert median.shape == singles.shape[1:]
    covered = (weights > 0).all(axis=0)
    assert covered.mean() > 0.3
    assert (median >= singles.min(axis=0))[covered].all() and (median <= singles.max(axis=0))[covered].all()
    # CR masks: 0 exactly where the input DQ got the CR bit; blotted medians look like their chips
    for path, root in zip(inputs, roots):
        for k in (1, 2):
            crmask = _read(here / f"{root}_sci{k}_crmask.fits", 0)[0]
            assert set(np.unique(crmask)) == {0, 1}
            np.testing.assert_array_equal(crmask == 0, (_dq(path, k) & 4096) > 0)
            assert int((crmask == 0).sum()) == on.cosmic_rays[path.name][k - 1]
            blotted, chip = _read(here / f"{root}_sci{k}_blt.fits", 0)[0], _read(path, ("SCI", k))[0]
            assert blotted.shape == chip.shape and np.isfinite(blotted).all()
            clean = (crmask == 1) & (_dq(path, k) == 0)
            assert np.corrcoef(blotted[clean], chip[clean])[0, 1] > 0.3
    static = _read(here / "inter_128x96_1_staticMask.fits", 0)[0]
    assert static.shape == (96, 128) and set(np.unique(static)) <= {0, 1} and static.mean() > 0.9

    # median off: no median, blot or CR products, no CR flags, same sky, more weight where CRs were
    inputs_off = copy_visit(uvis_small, tmp_path / "off")
    off = astrodrizzle(inputs_off, tmp_path / "off" / "inter", save_intermediates=True, median=False, **QUICK)
    names_off = {p.name for p in (tmp_path / "off").iterdir()}
    assert f"{roots[0]}_single_sci.fits" in names_off and "inter_128x96_1_staticMask.fits" in names_off
    assert not [n for n in names_off if n.endswith(("_med.fits", "_blt.fits", "_crmask.fits"))]
    assert _cr_flags(inputs_off) == [0] * 6 and sum(_cr_flags(inputs)) > 0
    assert off.sky == on.sky
    wht_on, wht_off = _read(on.product, "WHT")[0], _read(off.product, "WHT")[0]
    sci_on, sci_off = _read(on.product, "SCI")[0], _read(off.product, "SCI")[0]
    same = wht_on == wht_off
    assert (wht_off >= wht_on).all() and (~same).any()
    np.testing.assert_array_equal(sci_off[same], sci_on[same])
    assert np.median((sci_off - sci_on)[~same]) > 0  # the cosmic rays are back in the product


@pytest.mark.slow
def test_switched_off_steps(uvis_small, tmp_path):
    """static, skysub, driz_cr and context off: nothing those steps make or change is there."""
    from .conftest import copy_visit

    common = dict(backend="cpu", resetbits=0, final_fillval=0.0, save_intermediates=True)
    inputs_on = copy_visit(uvis_small, tmp_path / "on")
    on = astrodrizzle(inputs_on, tmp_path / "on" / "out", **common)
    inputs = copy_visit(uvis_small, tmp_path / "off")
    before = [p.read_bytes() for p in inputs]
    off = astrodrizzle(inputs, tmp_path / "off" / "out", static=False, skysub=False, driz_cr=False,
                       context=False, **common)
    # the inputs are untouched (no CR flags, no MDRIZSKY), where the run with the steps on changed them
    assert [p.read_bytes() for p in inputs] == before
    assert not set(off.files) & set(inputs)
    assert sum(_cr_flags(inputs_on)) > 0 and all("MDRIZSKY" in fits.getheader(p, ("SCI", 1)) for p in inputs_on)
    assert all(sum(v) == 0 for v in off.cosmic_rays.values())
    assert all(s is None for v in off.sky.values() for s in v)
    # no static or CR masks; the steps left on (separate drizzle, median, blot) still wrote theirs
    assert {"staticMask.fits", "crmask.fits"} <= _kinds(on)
    assert not {"staticMask.fits", "crmask.fits"} & _kinds(off)
    assert {"med.fits", "blt.fits", "sci.fits", "wht.fits"} <= _kinds(off)
    # no context image
    assert _read(off.product, "CTX")[0] is None and _read(on.product, "CTX")[0] is not None
    # the sky stays in: where both runs drizzled the same weights, the product is higher by the
    # sky per second (MDRIZSKY / EXPTIME) of the contributing chips
    sci_on, wht_on = _read(on.product, "SCI")[0], _read(on.product, "WHT")[0]
    sci_off, wht_off = _read(off.product, "SCI")[0], _read(off.product, "WHT")[0]
    same = (wht_on == wht_off) & (wht_on > 0)
    assert same.mean() > 0.2 and (wht_off >= wht_on).all()
    skies = [s for p in inputs_on for s in _sky_counts_per_s(p)]
    lift = (sci_off - sci_on)[same]
    tolerance = 1e-3 * min(skies)  # float32 rounding of the products (values up to ~1e3 x sky)
    assert min(skies) > 0
    assert lift.min() >= min(skies) - tolerance and lift.max() <= max(skies) + tolerance
    # final_fillval=0: uncovered pixels are 0, not NaN
    assert (wht_off == 0).any() and (sci_off[wht_off == 0] == 0).all() and np.isfinite(sci_off).all()


def test_final_units_counts_scales_by_total_exposure(uvis_small, tmp_path):
    from .conftest import copy_visit

    products = []
    for units in ("cps", "counts"):
        inputs = copy_visit(uvis_small, tmp_path / units)
        products.append(astrodrizzle(inputs, tmp_path / units / "u", final_units=units, **QUICK).product)
    cps, counts = (_read(p, "SCI")[0] for p in products)
    texp = fits.getval(products[0], "EXPTIME")
    good = np.isfinite(cps)
    np.testing.assert_allclose(counts[good], cps[good] * np.float32(texp), rtol=1e-6)
    assert _read(products[1], "SCI")[1]["BUNIT"] == "ELECTRONS"


def test_err_weighting_runs(small_inputs):
    result = astrodrizzle(small_inputs, small_inputs[0].parent / "err", final_wht_type="ERR", **QUICK)
    wht, _ = _read(result.product, "WHT")
    # (exptime / err)**2 per input pixel is far above the exposure-time weights
    assert wht.max() > 2 * fits.getval(result.product, "EXPTIME")


def test_single_exposure_skips_the_median(small_inputs, caplog):
    with caplog.at_level(logging.WARNING, logger="hapgpu"):
        result = astrodrizzle(small_inputs[:1], small_inputs[0].parent / "one", **QUICK)
    assert "median skipped" in caplog.text and "median" not in result.timings
    assert result.product.exists()


# --------------------------------------------------------------------------- bad input
def _assert_no_product(directory: Path, name: str):
    assert not list(directory.glob(f"{name}_dr?.fits")) and not list(directory.glob(".*.part"))


def test_missing_file_is_named(small_inputs):
    missing = small_inputs[0].parent / "nope_flc.fits"
    with pytest.raises(InvalidInputError, match="nope_flc.fits"):
        astrodrizzle(small_inputs + [missing], small_inputs[0].parent / "bad", **QUICK)
    _assert_no_product(small_inputs[0].parent, "bad")


def test_missing_dq_is_named(small_inputs):
    with fits.open(small_inputs[1], mode="update") as hdul:
        del hdul["DQ", 2]
    with pytest.raises(InvalidInputError, match=f"{small_inputs[1].name}.*DQ"):
        astrodrizzle(small_inputs, small_inputs[0].parent / "bad", **QUICK)


def test_missing_sci_is_named(small_inputs):
    with fits.open(small_inputs[2]) as hdul:
        fits.HDUList([hdul[0].copy()]).writeto(small_inputs[2], overwrite=True)
    # alone it cannot contribute, so nothing is left (with others it is dropped: test_bad_input)
    with pytest.raises(InvalidInputError, match=f"{small_inputs[2].name}: no SCI"):
        astrodrizzle(small_inputs[2:], small_inputs[0].parent / "bad", **QUICK)


def test_zero_exposure_time_is_named(small_inputs):
    fits.setval(small_inputs[0], "EXPTIME", value=0.0)
    with pytest.raises(InvalidInputError, match=f"{small_inputs[0].name}: exposure time"):
        astrodrizzle(small_inputs[:1], small_inputs[0].parent / "bad", **QUICK)


def test_corrupt_file_is_named(small_inputs):
    data = small_inputs[1].read_bytes()
    small_inputs[1].write_bytes(data[: len(data) // 3])
    with pytest.raises(InvalidInputError, match=small_inputs[1].name):
        astrodrizzle(small_inputs, small_inputs[0].parent / "bad", **QUICK)
    _assert_no_product(small_inputs[0].parent, "bad")


def test_exposure_outside_the_frame_is_named(small_inputs):
    ra, dec = fits.getval(small_inputs[0], "RA_TARG"), fits.getval(small_inputs[0], "DEC_TARG")
    with pytest.raises(WCSError, match=small_inputs[0].name):
        astrodrizzle(small_inputs, small_inputs[0].parent / "bad", final_wcs=True, final_ra=ra + 1.0,
                     final_dec=dec, final_outnx=100, final_outny=100, **QUICK)


def test_failure_while_writing_leaves_no_product(small_inputs, monkeypatch):
    def half_written(self, path, *args, **kwargs):
        Path(path).write_bytes(b"SIMPLE  =  T" * 100)  # a partial file, then the disk fills up
        raise OSError("disk full")

    monkeypatch.setattr(fits.HDUList, "writeto", half_written)
    with pytest.raises(OSError, match="disk full"):
        astrodrizzle(small_inputs, small_inputs[0].parent / "bad", **QUICK)
    _assert_no_product(small_inputs[0].parent, "bad")


# --------------------------------------------------------------------------- command line
def test_cli_runs_the_chain(small_inputs, tmp_path):
    from hapgpu.cli import main

    pars = tmp_path / "pars.json"
    hapgpu.astrodrizzle.write_parameters(hapgpu.astrodrizzle.resolve_parameters("wfc3_uvis_n2"), pars)
    out = small_inputs[0].parent / "cli"
    code = main(["astrodrizzle", *map(str, small_inputs), "--output", str(out), "--pars", str(pars),
                 "--backend", "cpu", "--set", "skymethod=localmin", "--set", "final_pixfrac=0.9", "--no-progress"])
    assert code == 0
    assert fits.getval(out.parent / "cli_drc.fits", "D001PIXF") == 0.9


def test_cli_reports_bad_input(tmp_path, caplog):
    from hapgpu.cli import main

    assert main(["astrodrizzle", str(tmp_path / "x_flc.fits"), "--output", str(tmp_path / "o"),
                 "--backend", "cpu", "--no-progress"]) == 1
    assert main(["astrodrizzle", str(tmp_path / "x_flc.fits"), "--output", str(tmp_path / "o"),
                 "--set", "final_pixfrac"]) == 1
