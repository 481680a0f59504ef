"""Poller -> viable rows -> sorted rows -> product tree, names and renamed copies, against
drizzlepac's ``poller_utils.interpret_obset_input`` on the same simulated visits.

(a) an 8-column poller of one WFC3 visit: UVIS F555W and F814W x 2 exposures (FLC, plus FLT
twins of the F555W pair), IR F160W x 2, two IR G141 grism exposures and one calibration
("DARK") exposure the viability filter drops; (b) a 1-column list of an ACS/HRC visit. drizzlepac
runs in its own working directory, where it copies and renames the inputs.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from hapgpu.simulate import simulate_visit
from hapgpu.svm._analyze import select_viable_rows, sort_rows
from hapgpu.svm._poller import read_poller
from hapgpu.svm._tree import build_product_tree, make_renamed_copy, obs_dict

pytestmark = [pytest.mark.reference, pytest.mark.slow]

_SMALL = (64, 64)
_COMMON = ("basename", "prop_id", "obset_id", "instrument", "detector", "filetype", "haplevel",
           "info", "exposure_name", "product_basename", "drizzle_filename", "trl_filename",
           "trl_logname")
_TOTAL = _COMMON + ("point_cat_filename", "segment_cat_filename", "ref_drizzle_filename",
                    "manifest_name")
_FILTER = _COMMON + ("filters", "point_cat_filename", "segment_cat_filename", "refname")
_EXPOSURE = _COMMON + ("filters", "full_filename", "headerlet_filename", "exptime", "mjdutc")


def _renamed(src: Path, dest: Path, **keywords) -> Path:
    """Copy a simulated exposure under another rootname, with primary keywords changed."""
    with fits.open(src) as hdul:
        hdul[0].header["ROOTNAME"] = dest.name.split("_")[0]
        hdul[0].header["FILENAME"] = dest.name
        for key, value in keywords.items():
            hdul[0].header[key] = value
        hdul.writeto(dest, overwrite=True)
    return dest


def _poller_line(path: Path) -> str:
    h = fits.getheader(path)
    filters = h["FILTER"] if h["INSTRUME"] == "WFC3" else f"{h['FILTER1']};{h['FILTER2']}"
    name = path.name
    return ",".join([name, str(h["PROPOSID"]), name[1:4].upper(), name[4:6], str(h["EXPTIME"]),
                     filters, h["DETECTOR"], str(path)])


@pytest.fixture(scope="module")
def visit_a(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("svm_visit_a")
    ident = {"program_id": "b46", "visit": "06", "proposal_id": 11665, "seed": 3, "noise": False}
    uvis = simulate_visit(root, "wfc3-uvis", 4, filters=["F555W", "F814W"], shape=_SMALL,
                          exptime=[400.0, 350.0, 400.0, 400.0], **ident)
    ir = simulate_visit(root / "ir", "wfc3-ir", 2, shape=_SMALL, exptime=[300.0, 250.0],
                        **ident)
    files = [r.path for r in uvis.exposures]
    ir_a0, ir_a1 = (r.path for r in ir.exposures)
    files += [_renamed(ir_a0, root / "ib4606b0q_flt.fits"),
              _renamed(ir_a1, root / "ib4606b1q_flt.fits")]
    for k, src in enumerate((ir_a0, ir_a1)):
        files.append(_renamed(src, root / f"ib4606g{k}q_flt.fits", FILTER="G141",
                              OBSTYPE="SPECTROSCOPIC"))
    for src in files[:2]:  # FLT twins of the F555W FLCs: non-members of their group
        files.append(_renamed(src, root / src.name.replace("_flc", "_flt")))
    files.append(_renamed(files[2], root / "ib4606a9q_flc.fits", TARGNAME="DARK"))
    order = [7, 0, 10, 4, 1, 2, 8, 5, 6, 3, 9]  # a mixed-up poller order
    poller = root / "ib4606_input.out"
    poller.write_text("\n".join(_poller_line(files[i]) for i in order) + "\n")
    return poller


@pytest.fixture(scope="module")
def visit_b(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("svm_visit_b")
    hrc = simulate_visit(root, "acs-hrc", 3, shape=_SMALL, program_id="8bt", visit="06",
                         proposal_id=9019, seed=5, exptime=[300.0, 120.0, 300.0], noise=False)
    return hrc.input_list


@pytest.fixture()
def quiet_drizzlepac():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logger = logging.getLogger("drizzlepac")
        previous = logger.level
        logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            logger.setLevel(previous)


def _drizzlepac_tree(poller: Path, workdir: Path, monkeypatch):
    from drizzlepac.haputils import poller_utils

    monkeypatch.chdir(workdir)
    table = poller_utils.build_poller_table(str(poller), logging.ERROR)
    obs, totals = poller_utils.interpret_obset_input(str(poller), logging.ERROR)
    return table, obs, totals


def _ours(poller: Path, search_dir: Path, outdir: Path):
    rows = select_viable_rows(read_poller(poller, search_dirs=[search_dir]))
    totals = build_product_tree(sort_rows(rows))
    outdir.mkdir()
    for total in totals:
        for exposure in total.all_exposures:
            make_renamed_copy(exposure.source, outdir, exposure)
    return rows, obs_dict(totals), totals


def _same_attributes(ours, theirs, names, where):
    for name in names:
        assert getattr(ours, name) == getattr(theirs, name), f"{where}.{name}"


def _compare(ours_totals, theirs_totals):
    assert len(ours_totals) == len(theirs_totals)
    for ours, theirs in zip(ours_totals, theirs_totals):
        _same_attributes(ours, theirs, _TOTAL, theirs.drizzle_filename)
        assert len(ours.fdp_list) == len(theirs.fdp_list)
        for fo, ft in zip(ours.fdp_list, theirs.fdp_list):
            _same_attributes(fo, ft, _FILTER, ft.drizzle_filename)
            assert [e.full_filename for e in fo.edp_list] == [e.full_filename for e in ft.edp_list]
        assert len(ours.edp_list) == len(theirs.edp_list)
        for eo, et in zip(ours.edp_list, theirs.edp_list):
            _same_attributes(eo, et, _EXPOSURE + ("is_singleton", "crclean"), et.full_filename)
        assert len(ours.grism_edp_list) == len(theirs.grism_edp_list)
        for go, gt in zip(ours.grism_edp_list, theirs.grism_edp_list):
            _same_attributes(go, gt, _EXPOSURE, gt.full_filename)


def _compare_copies(ours_dir: Path, theirs_dir: Path):
    ours = sorted(p.name for p in ours_dir.glob("hst_*"))
    assert ours == sorted(p.name for p in theirs_dir.glob("hst_*"))
    for name in ours:
        with fits.open(ours_dir / name) as mine, fits.open(theirs_dir / name) as ref:
            assert len(mine) == len(ref)
            for key in ("HAPLEVEL", "IPPPSSOO", "FILENAME"):
                assert mine[0].header[key] == ref[0].header[key], (name, key)
            for hm, hr in zip(mine, ref):
                assert hm.name == hr.name
                if hm.name == "SCI":
                    assert hm.header["S_REGION"] == hr.header["S_REGION"], name
                    np.testing.assert_array_equal(hm.data, hr.data)


def test_poller_visit_matches_drizzlepac(visit_a, tmp_path, monkeypatch, quiet_drizzlepac):
    theirs_dir = tmp_path / "drizzlepac"
    theirs_dir.mkdir()
    table, theirs_obs, theirs_totals = _drizzlepac_tree(visit_a, theirs_dir, monkeypatch)
    rows, ours_obs, ours_totals = _ours(visit_a, visit_a.parent, tmp_path / "hapgpu")

    # the viable rows, in poller order, with the poller's fields
    assert [r.filename for r in rows] == list(table["filename"])
    assert "ib4606a9q_flc.fits" not in [r.filename for r in rows]
    for row, ref in zip(rows, table):
        assert (row.proposal_id, row.program_id, row.obset_id, row.exptime, row.filters,
                row.detector, row.aperture) == \
            (ref["proposal_id"], ref["program_id"], ref["obset_id"], ref["exptime"],
             ref["filters"], ref["detector"], ref["aperture"])

    assert list(ours_obs) == list(theirs_obs)
    assert ours_obs == theirs_obs
    _compare(ours_totals, theirs_totals)
    # what the case exercises
    totals = {t.detector: t for t in ours_totals}
    assert list(totals) == ["ir", "uvis"]  # the IR exposures are the shortest
    uvis, ir = totals["uvis"], totals["ir"]
    assert len(uvis.fdp_list) == 2 and len(ir.grism_edp_list) == 2
    assert any(not e.is_member for e in uvis.all_exposures)
    _compare_copies(tmp_path / "hapgpu", theirs_dir)


def test_file_list_matches_drizzlepac(visit_b, tmp_path, monkeypatch, quiet_drizzlepac):
    theirs_dir = tmp_path / "drizzlepac"
    theirs_dir.mkdir()
    names = visit_b.read_text().split()
    for name in names:  # drizzlepac reads a file list from its working directory only
        shutil.copy(visit_b.parent / name, theirs_dir / name)
    table, theirs_obs, theirs_totals = _drizzlepac_tree(visit_b, theirs_dir, monkeypatch)
    rows, ours_obs, ours_totals = _ours(visit_b, visit_b.parent, tmp_path / "hapgpu")

    assert [r.filename for r in rows] == list(table["filename"]) == names
    for row, ref in zip(rows, table):
        assert (row.proposal_id, row.program_id, row.obset_id, row.exptime, row.filters,
                row.detector, row.aperture) == \
            (ref["proposal_id"], ref["program_id"], ref["obset_id"], ref["exptime"],
             ref["filters"], ref["detector"], ref["aperture"])
    assert list(ours_obs) == list(theirs_obs)
    assert ours_obs == theirs_obs
    _compare(ours_totals, theirs_totals)
    assert ours_totals[0].edp_list[0].filename == names[1]  # the shortest exposure comes first
    _compare_copies(tmp_path / "hapgpu", theirs_dir)
