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
        assert [h.name for h in hdul] == ["PRIMARY", "SCI", "WHT", "CTX"]
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


def test_save_intermediates_and_step_switches(small_inputs):
    out = small_inputs[0].parent / "inter"
    astrodrizzle(small_inputs, out, save_intermediates=True, **QUICK)
    names = {p.name for p in out.parent.iterdir()}
    root = small_inputs[0].name.split("_")[0]
    for expected in (f"{root}_single_sci.fits", f"{root}_single_wht.fits", "inter_med.fits",
                     f"{root}_sci1_blt.fits", f"{root}_sci2_crmask.fits", "inter_128x96_1_staticMask.fits"):
        assert expected in names


def test_switched_off_steps(small_inputs, caplog):
    out = small_inputs[0].parent / "off"
    before = [_dq(p, 1) for p in small_inputs]
    result = astrodrizzle(small_inputs, out, backend="cpu", static=False, skysub=False, driz_cr=False,
                          resetbits=0, final_fillval=0.0, context=False)
    assert _read(result.product, "CTX")[0] is None
    assert {"driz_cr", "static"}.isdisjoint(k for k, v in result.timings.items() if v > 0.5)
    assert all(sum(v) == 0 for v in result.cosmic_rays.values())
    assert [np.array_equal(_dq(p, 1), b) for p, b in zip(small_inputs, before)] == [True] * 3
    sci = _read(result.product, "SCI")[0]
    assert np.isfinite(sci).all()  # fill value 0 everywhere without weight


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
    with pytest.raises(InvalidInputError, match=f"{small_inputs[2].name}: no SCI"):
        astrodrizzle(small_inputs, small_inputs[0].parent / "bad", **QUICK)


def test_zero_exposure_time_is_named(small_inputs):
    fits.setval(small_inputs[0], "EXPTIME", value=0.0)
    with pytest.raises(InvalidInputError, match=f"{small_inputs[0].name}: exposure time"):
        astrodrizzle(small_inputs, small_inputs[0].parent / "bad", **QUICK)


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
