"""``hapgpu align`` on a WFC3/UVIS visit: truth, header keywords, headerlets, untouched pixels."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from hapgpu.cli import main

from ._helpers import copy_visit, pixel_arrays, rms, truth_offsets_mas

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def aligned(visit_cache, tmp_path_factory):
    """The UVIS visit aligned once through the command line, with a result table."""
    visit = visit_cache("wfc3-uvis")
    folder, files = copy_visit(visit, tmp_path_factory.mktemp("aligned-uvis"))
    before = {f.name: fits.getheader(f, ("SCI", 1)) for f in files}
    table = folder / "align.ecsv"
    code = main(["align", *map(str, files), "--refcat", str(folder / "refcat.ecsv"),
                 "--table", str(table), "--headerlets", "--backend", "cpu"])
    return {"visit": visit, "folder": folder, "files": files, "code": code, "table": table,
            "before": before}


def test_command_succeeds_and_writes_the_table(aligned):
    assert aligned["code"] == 0
    table = Table.read(aligned["table"], format="ascii.ecsv")
    assert list(table["filename"]) == [f.name for f in aligned["files"]]
    assert list(table["status"]) == ["aligned"] * len(aligned["files"])
    assert np.all((table["fit_quality"] >= 1) & (table["fit_quality"] <= 4))
    assert np.all(table["n_matches"] >= 12)
    assert str(table["rms_ra"].unit) == "mas"


def test_truth_is_recovered_to_5_mas(aligned):
    offsets = truth_offsets_mas(aligned["folder"], aligned["files"])
    assert offsets.size > 500
    assert rms(offsets) <= 5.0


def test_fit_keywords_in_every_chip(aligned):
    table = Table.read(aligned["table"], format="ascii.ecsv")
    for row, name in zip(table, aligned["files"]):
        with fits.open(name) as hdul:
            primary = hdul[0].header
            assert primary["UPWCSVER"] and primary["PYWCSVER"]
            for chip in (1, 2):
                hdr = hdul["SCI", chip].header
                old = aligned["before"][name.name]["WCSNAME"]
                assert old.endswith("-GSC240")
                assert hdr["WCSNAME"] == old.split("-")[0] + "-FIT_REL_GAIAeDR3"
                assert hdr["WCSNAME"] == row["wcsname"]
                assert "a posteriori solution relatively aligned to GAIAEDR3" in hdr["WCSTYPE"]
                assert hdr["RMS_RA"] == pytest.approx(row["rms_ra"])
                assert hdr["RMS_DEC"] == pytest.approx(row["rms_dec"])
                assert hdr["CRDER1"] == pytest.approx(hdr["RMS_RA"] / 3.6e6)
                assert hdr["CRDER2"] == pytest.approx(hdr["RMS_DEC"] / 3.6e6)
                assert hdr["NMATCHES"] == row["n_matches"]
                assert hdr["FITGEOM"] == "rscale" and hdr["RELGEOM"] == "rscale"
                assert hdr["RELMATCH"] == row["n_matches"]
                assert hdr["RELREFIM"] == aligned["files"][0].name.split("_")[0]
                assert hdr["HDRNAME"] == f"{name.stem}_{hdr['WCSNAME']}-hlet.fits"
                # The previous solution is kept as an alternate WCS.
                alternates = [hdr[k] for k in hdr if re.fullmatch(r"WCSNAME[A-Z]", k)]
                assert old in alternates


def test_headerlets_attached_and_written(aligned):
    from stwcs.wcsutil import HSTWCS

    for name in aligned["files"]:
        with fits.open(name) as hdul:
            hdr = hdul["SCI", 1].header
            hlets = {h.header["HDRNAME"]: h for h in hdul if h.name == "HDRLET"}
            assert hdr["HDRNAME"] in hlets
            old = aligned["before"][name.name]["WCSNAME"]
            assert old in {h.header.get("WCSNAME") for h in hlets.values()}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                stored = hlets[hdr["HDRNAME"]].headerlet
                for chip in (1, 2):
                    hwcs = HSTWCS(stored, ext=("SIPWCS", chip))
                    assert np.allclose(hwcs.wcs.crval, [hdul["SCI", chip].header["CRVAL1"],
                                                        hdul["SCI", chip].header["CRVAL2"]],
                                       rtol=0, atol=1e-10)
                    assert np.allclose(hwcs.wcs.cd, HSTWCS(hdul, ext=("SCI", chip)).wcs.cd,
                                       rtol=1e-12, atol=0)
        written = name.with_name(name.name.replace("_flc.fits", "_flt_hlet.fits"))
        assert written.is_file()
        with fits.open(written) as hlet:
            assert hlet[0].header["HDRNAME"] == hdr["HDRNAME"]
            assert hlet[0].header["WCSNAME"] == hdr["WCSNAME"]
            assert hlet[0].header["CATALOG"] == "GAIAeDR3"
            assert hlet[0].header["NMATCH"] == hdr["NMATCHES"]
            assert [h.name for h in hlet].count("SIPWCS") == 2


def test_pixels_untouched_and_no_temporary_files(aligned):
    for name in aligned["files"]:
        original = pixel_arrays(aligned["visit"].outdir / name.name)
        updated = pixel_arrays(name)
        assert original.keys() <= updated.keys()
        for key, data in original.items():
            assert np.array_equal(data, updated[key]), key
    assert not list(aligned["folder"].glob(".hapgpu-*"))


def test_no_update_leaves_files_unchanged(visit_cache, tmp_path):
    folder, files = copy_visit(visit_cache("wfc3-uvis"), tmp_path)
    before = [f.read_bytes() for f in files]
    table = tmp_path / "out" / "report.ecsv"
    code = main(["align", *map(str, files), "--refcat", str(folder / "refcat.ecsv"),
                 "--no-update", "--fit-label", "img", "--table", str(table),
                 "--backend", "cpu"])
    assert code == 0
    assert [f.read_bytes() for f in files] == before
    report = Table.read(table, format="ascii.ecsv")
    assert all(w.endswith("-FIT_IMG_GAIAeDR3") for w in report["wcsname"])
