"""Grism/prism WCS reconciliation (hap-pipeline.md §1.9): :mod:`hapgpu.svm._grism`.

The files are simulated WFC3/UVIS exposures (real header templates: alternate WCSs OPUS,
``IDC_2731450pi``, ``IDC_2731450pi-HSC30``, the active ``IDC_2731450pi-FIT_REL_GAIAeDR3``, and
headerlets, among them ``IDC_2731450pi-GSC240``); grism copies get ``FILTER = G280``. Each
scenario edits the WCS names of some copies, then runs :func:`update_wcs_in_visit`. The
``reference`` test runs drizzlepac's own ``hapsequencer.update_wcs_in_visit`` on identical copies
and compares every image's active WCS keywords, alternate WCSs and headerlets with ours. The last
test runs ``run_svm`` on a small WFC3/IR visit with a G141 exposure.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from astropy.io import fits

from hapgpu.errors import IncompatibleInputsError, InvalidInputError
from hapgpu.simulate import simulate_visit
from hapgpu.svm._grism import (
    is_apriori_wcsname,
    preferred_wcsname,
    update_wcs_in_visit,
)

GSC = "IDC_2731450pi-GSC240"
IDC = "IDC_2731450pi"
FIT = "IDC_2731450pi-FIT_REL_GAIAeDR3"
#: Active-WCS keywords compared in every SCI header.
WCS_KEYWORDS = ("WCSNAME", "WCSTYPE", "HDRNAME", "CTYPE1", "CTYPE2", "CRPIX1", "CRPIX2", "CRVAL1",
                "CRVAL2", "CD1_1", "CD1_2", "CD2_1", "CD2_2", "A_ORDER", "B_ORDER", "A_2_0",
                "B_0_2", "IDCSCALE", "NMATCHES", "RMS_RA", "RMS_DEC", "FITGEOM", "CRDER1",
                "CRDER2", "ORIENTAT")


# ----------------------------------------------------------------------------- file helpers
@pytest.fixture(scope="module")
def uvis(tmp_path_factory) -> list[Path]:
    """Four small simulated WFC3/UVIS FLC exposures (2 chips each)."""
    root = tmp_path_factory.mktemp("grism_uvis")
    visit = simulate_visit(root, "wfc3-uvis", 4, filters=["F555W"], shape=(48, 48), seed=7,
                           noise=False, cosmic_rays=False)
    return [r.path for r in visit.exposures]


def _sci(hdul):
    return [h for h in hdul if h.header.get("EXTNAME") == "SCI"]


def drop_headerlets(hdul, *wcsnames, every=False):
    for index in reversed(range(len(hdul))):
        hdu = hdul[index]
        if hdu.name == "HDRLET" and (every or hdu.header["WCSNAME"] in wcsnames):
            del hdul[index]


def drop_alternates(hdul, *wcsnames, every=False):
    """Delete alternate WCSs (not the active one) by name from every SCI header."""
    from stwcs.wcsutil import altwcs

    keys = [k for k, n in altwcs.wcsnames(_sci(hdul)[0].header, include_primary=False).items()
            if every or n in wcsnames]
    for key in keys:
        if key == "O":  # stwcs refuses to delete the OPUS WCS: drop its name
            for hdu in _sci(hdul):
                del hdu.header["WCSNAMEO"]
            continue
        altwcs.deleteWCS(hdul, ext=[("SCI", h.ver) for h in _sci(hdul)], wcskey=key)


def drop_names(hdul):
    """No WCS name left: no headerlet, no alternate WCS, no WCSNAME."""
    drop_headerlets(hdul, every=True)
    drop_alternates(hdul, every=True)
    for hdu in _sci(hdul):
        del hdu.header["WCSNAME"]


def rename_active(hdul, name):
    for hdu in _sci(hdul):
        hdu.header["WCSNAME"] = name


def edit_in_place(path: Path, edit) -> None:
    import stwcs.wcsutil.headerlet  # noqa: F401  (HDRLET extensions read as headerlets)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(path, mode="update") as hdul:
            edit(hdul)


def make_copy(src: Path, folder: Path, name: str, *, grism: bool, edit=None) -> Path:
    """Copy ``src`` to ``folder/name`` (FILTER G280 for a grism), then ``edit(hdul)``."""
    import stwcs.wcsutil.headerlet  # noqa: F401  (HDRLET extensions read as headerlets)

    dest = folder / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shutil.copyfile(src, dest)
        with fits.open(dest, mode="update") as hdul:
            hdul[0].header["FILENAME"] = name
            if grism:
                hdul[0].header["FILTER"] = "G280"
                hdul[0].header["OBSTYPE"] = "SPECTROSCOPIC"
            if edit is not None:
                edit(hdul)
    return dest


def _edit_all(*edits):
    def run(hdul):
        for edit in edits:
            edit(hdul)
    return run


def _restore(wcsname):
    def run(hdul):
        from stwcs.wcsutil import headerlet

        names = headerlet.get_headerlet_kw_names(hdul, kw="WCSNAME")
        hdrname = headerlet.get_headerlet_kw_names(hdul, kw="HDRNAME")[names.index(wcsname)]
        headerlet.restore_from_headerlet(hdul, hdrname=hdrname, archive=True)
    return run


def _no_hdrname(hdul):
    for hdu in _sci(hdul):
        del hdu.header["HDRNAME"]


def _alternate_gsc(hdul):
    """Add the GSC240 headerlet's WCS as alternate key C and drop the headerlet."""
    from stwcs.wcsutil import headerlet

    names = headerlet.get_headerlet_kw_names(hdul, kw="WCSNAME")
    hdrname = headerlet.get_headerlet_kw_names(hdul, kw="HDRNAME")[names.index(GSC)]
    headerlet.restore_from_headerlet(hdul, hdrname=hdrname, archive=True)
    # now GSC240 is active and the old active solution a headerlet: archive GSC240 as key C
    from stwcs.wcsutil import altwcs

    altwcs.archive_wcs(hdul, [("SCI", h.ver) for h in _sci(hdul)], wcskey="C", wcsname=GSC)
    # put FIT back as the active WCS and forget the GSC240 headerlet
    names = headerlet.get_headerlet_kw_names(hdul, kw="WCSNAME")
    hdrname = headerlet.get_headerlet_kw_names(hdul, kw="HDRNAME")[names.index(FIT)]
    headerlet.restore_from_headerlet(hdul, hdrname=hdrname, archive=False, force=True)
    drop_headerlets(hdul, GSC)


#: name -> (grism edits, direct edits); None: the file unchanged.
SCENARIOS = {
    # every image has the GSC240 solution; one direct image lacks HDRNAME
    "gsc240": ([None], [_no_hdrname, None]),
    # one grism image lacks the GSC240 headerlet: fall back to the pipeline default
    "fallback": ([lambda h: drop_headerlets(h, GSC), None], [None]),
    # a grism image already has the GSC240 solution active
    "already_active": ([_restore(GSC)], [None]),
    # a grism image without any WCS name: skipped and deleted; a direct one: skipped
    "no_names": ([None, drop_names], [None, drop_names]),
    # the GSC240 solution only as an alternate WCS (key C) of a grism image, no headerlet
    "alternate_only": ([_alternate_gsc], [None]),
    # grism and direct images share no name: nothing changes, no grism product
    "disjoint": ([_edit_all(lambda h: drop_headerlets(h, every=True),
                            lambda h: drop_alternates(h, every=True),
                            lambda h: rename_active(h, GSC)),
                  _edit_all(lambda h: drop_headerlets(h, every=True),
                            lambda h: drop_alternates(h, every=True),
                            lambda h: rename_active(h, GSC))],
                 [lambda h: drop_headerlets(h, GSC), lambda h: drop_headerlets(h, GSC)]),
    # no preferred name common to the grism images: they are deleted, the direct ones kept
    "no_preferred": ([_edit_all(lambda h: drop_headerlets(h, GSC, IDC),
                                lambda h: drop_alternates(h, IDC)), None], [None, None]),
}




def build(uvis, folder: Path, scenario: str):
    """The scenario's files in ``folder``: (paths, grism flags)."""
    folder.mkdir(parents=True, exist_ok=True)
    grism_edits, direct_edits = SCENARIOS[scenario]
    paths, flags = [], []
    for k, edit in enumerate(grism_edits):
        paths.append(make_copy(uvis[k], folder, f"hst_17001_01_wfc3_uvis_g280_isim01g{k}_flc.fits",
                               grism=True, edit=edit))
        flags.append(True)
    for k, edit in enumerate(direct_edits):
        paths.append(make_copy(uvis[2 + k], folder, f"hst_17001_01_wfc3_uvis_f555w_isim01a{k}_flc.fits",
                               grism=False, edit=edit))
        flags.append(False)
    return paths, flags


def wcs_state(path: Path):
    """Active WCS keywords of every SCI header, alternate WCS names, headerlet names."""
    from stwcs.wcsutil import altwcs, headerlet

    if not path.exists():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(path) as hdul:
            chips = []
            for hdu in _sci(hdul):
                chips.append({k: hdu.header.get(k) for k in WCS_KEYWORDS})
            return {"chips": chips,
                    "alternates": altwcs.wcsnames(_sci(hdul)[0].header),
                    "hdrlets": list(zip(headerlet.get_headerlet_kw_names(hdul, kw="HDRNAME"),
                                        headerlet.get_headerlet_kw_names(hdul, kw="WCSNAME")))}


def active_wcsname(path: Path) -> list[str]:
    with fits.open(path) as hdul:
        return [h.header.get("WCSNAME") for h in _sci(hdul)]


# ----------------------------------------------------------------------------- unit tests
def test_preferred_wcsname_order_and_patterns():
    assert preferred_wcsname({IDC, GSC, FIT, "OPUS"}) == GSC
    assert preferred_wcsname({IDC, FIT, "IDC_2731450pi-HSC30"}) == IDC
    assert preferred_wcsname({FIT, "OPUS", "IDC_2731450p-GSC240"}) is None  # 8-char rootname
    assert preferred_wcsname({"idc_2731450pi-gsc240"}) is None  # case-sensitive, as fnmatch on POSIX
    assert preferred_wcsname({"IDC_z731450pi-GSC240", GSC}) == GSC  # sorted, not set order


def test_is_apriori_wcsname():
    assert is_apriori_wcsname(GSC) and is_apriori_wcsname("IDC_2731450pi-HSC30")
    assert is_apriori_wcsname("IDC_2731450pi-GAIAeDR3")
    assert not is_apriori_wcsname(IDC) and not is_apriori_wcsname(FIT)
    assert not is_apriori_wcsname("OPUS-GSC240-x")


@pytest.mark.slow
def test_gsc240_made_active_everywhere(uvis, tmp_path, monkeypatch):
    paths, flags = build(uvis, tmp_path, "gsc240")
    # stwcs writes headerlet.log into the current directory unless stopped (hapgpu does);
    # a file handler left on its logger by an earlier call would hide that, so drop any
    stwcs_log = logging.getLogger("stwcs.wcsutil.headerlet")
    monkeypatch.setattr(stwcs_log, "handlers",
                        [h for h in stwcs_log.handlers if not isinstance(h, logging.FileHandler)])
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    result = update_wcs_in_visit(paths, flags)
    assert not list(cwd.iterdir())
    assert result.wcsname == GSC
    assert result.grism_products == (paths[0],)
    assert result.updated == tuple(paths)
    for path in paths:
        state = wcs_state(path)
        for chip in state["chips"]:
            assert chip["WCSNAME"] == GSC
            assert chip["WCSTYPE"] == "undistorted a priori solution based on GSC240"
            for key in ("NMATCHES", "RMS_RA", "RMS_DEC", "FITGEOM", "CRDER1", "CRDER2"):
                assert chip[key] is None, key
            assert chip["IDCSCALE"] == pytest.approx(0.03962000086903572)
        # the replaced FIT solution stays in the file as a headerlet
        assert FIT in [w for _, w in state["hdrlets"]]
    # the direct image without HDRNAME got drizzlepac's name for its FIT solution, under which
    # the restore archived that solution
    stem = paths[1].name.replace(".fits", "")
    assert (f"{stem}_{FIT}_hlet.fits", FIT) in wcs_state(paths[1])["hdrlets"]
    assert not list(tmp_path.glob(".hapgpu-grism-*"))


@pytest.mark.slow
def test_fallback_to_pipeline_default_keeps_nmatches(uvis, tmp_path):
    paths, flags = build(uvis, tmp_path, "fallback")
    result = update_wcs_in_visit(paths, flags)
    assert result.wcsname == IDC
    for path in paths:
        for chip in wcs_state(path)["chips"]:
            assert chip["WCSNAME"] == IDC
            assert chip["NMATCHES"] == 0  # not a priori: NMATCHES from the headerlet (none: 0)


@pytest.mark.slow
def test_nameless_grism_deleted_nameless_direct_skipped(uvis, tmp_path):
    paths, flags = build(uvis, tmp_path, "no_names")
    before = wcs_state(paths[3])
    result = update_wcs_in_visit(paths, flags)
    assert result.wcsname == GSC
    assert not paths[1].exists()
    assert result.deleted == (paths[1],) and result.grism_products == (paths[0],)
    assert set(result.skipped) == {paths[1], paths[3]}
    assert wcs_state(paths[3]) == before
    assert active_wcsname(paths[2]) == [GSC, GSC]


def test_disjoint_sets_change_nothing(uvis, tmp_path):
    paths, flags = build(uvis, tmp_path, "disjoint")
    before = [p.read_bytes() for p in paths]
    result = update_wcs_in_visit(paths, flags)
    assert result.wcsname is None and result.grism_products == () and result.updated == ()
    assert [p.read_bytes() for p in paths] == before


def test_no_preferred_grism_name_deletes_grism_images(uvis, tmp_path):
    paths, flags = build(uvis, tmp_path, "no_preferred")
    before = [p.read_bytes() for p in paths[2:]]
    result = update_wcs_in_visit(paths, flags)
    assert result.wcsname is None and result.deleted == tuple(paths[:2])
    assert not paths[0].exists() and not paths[1].exists()
    assert [p.read_bytes() for p in paths[2:]] == before


@pytest.mark.slow
def test_restore_failure_leaves_the_file_unchanged(uvis, tmp_path, caplog):
    """stwcs restores a headerlet only into its own exposure (DESTIM = ROOTNAME): a grism
    copy under another rootname keeps its WCS, with a warning naming it, and is still listed
    (as drizzlepac lists it)."""
    paths, flags = build(uvis, tmp_path, "gsc240")
    edit_in_place(paths[0], lambda h: h[0].header.update(ROOTNAME="isim01z9q"))
    before = paths[0].read_bytes()
    with caplog.at_level(logging.WARNING, logger="hapgpu"):
        result = update_wcs_in_visit(paths, flags)
    assert result.wcsname == GSC
    assert result.failed == (paths[0],) and result.grism_products == (paths[0],)
    assert result.updated == tuple(paths[1:])
    assert paths[0].read_bytes() == before
    assert f"{paths[0].name}: could not restore the common WCS {GSC}" in caplog.text


def test_no_common_name_is_a_typed_error_naming_the_file(uvis, tmp_path):
    paths, flags = build(uvis, tmp_path, "fallback")  # paths[1]: the second grism image
    edit_in_place(paths[1], _edit_all(lambda h: drop_headerlets(h, every=True),
                                      lambda h: drop_alternates(h, every=True),
                                      lambda h: rename_active(h, "SOMETHING_ELSE")))
    with pytest.raises(IncompatibleInputsError, match=paths[1].name):
        update_wcs_in_visit(paths, flags)


def test_bad_arguments(uvis, tmp_path):
    paths, flags = build(uvis, tmp_path, "gsc240")
    with pytest.raises(InvalidInputError, match="grism flags"):
        update_wcs_in_visit(paths, flags[:-1])
    with pytest.raises(InvalidInputError, match="needs grism/prism and direct"):
        update_wcs_in_visit(paths[2:], flags[2:])
    with pytest.raises(InvalidInputError, match="missing_flc.fits"):
        update_wcs_in_visit([tmp_path / "missing_flc.fits", paths[2]], [True, False])


# ----------------------------------------------------------------------------- drizzlepac
def _drizzlepac_update(paths, flags, workdir: Path, monkeypatch):
    """drizzlepac's ``update_wcs_in_visit`` on the files of ``workdir`` (run in that folder)."""
    from drizzlepac import hapsequencer

    def product(path):
        return SimpleNamespace(full_filename=path.name,
                               trl_filename=path.name.rsplit("_", 1)[0] + "_trl.txt")

    tdp = SimpleNamespace(grism_edp_list=[product(p) for p, g in zip(paths, flags) if g],
                          edp_list=[product(p) for p, g in zip(paths, flags) if not g])
    monkeypatch.chdir(workdir)
    logger = logging.getLogger("drizzlepac")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return hapsequencer.update_wcs_in_visit(tdp)
    finally:
        logger.setLevel(level)


def _same(ours, theirs, where):
    assert (ours is None) == (theirs is None), where
    if ours is None:
        return
    assert ours["alternates"] == theirs["alternates"], where
    assert ours["hdrlets"] == theirs["hdrlets"], where
    for k, (a, b) in enumerate(zip(ours["chips"], theirs["chips"], strict=True)):
        for key in WCS_KEYWORDS:
            va, vb = a[key], b[key]
            if isinstance(va, float) and isinstance(vb, float):
                np.testing.assert_allclose(va, vb, rtol=1e-15, atol=0, err_msg=f"{where} chip {k} {key}")
            else:
                assert va == vb, f"{where} chip {k} {key}: {va!r} != {vb!r}"


@pytest.mark.reference
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_same_as_drizzlepac_update_wcs_in_visit(uvis, tmp_path, monkeypatch):
    pytest.importorskip("drizzlepac")
    for scenario in SCENARIOS:
        ours_paths, flags = build(uvis, tmp_path / scenario / "ours", scenario)
        their_paths, _ = build(uvis, tmp_path / scenario / "drizzlepac", scenario)
        result = update_wcs_in_visit(ours_paths, flags)
        listed = _drizzlepac_update(their_paths, flags, their_paths[0].parent, monkeypatch)
        expected = []
        for path in result.grism_products:
            expected += [path.name, path.name.rsplit("_", 1)[0] + "_trl.txt"]
        assert listed == expected, scenario
        for ours, theirs in zip(ours_paths, their_paths):
            _same(wcs_state(ours), wcs_state(theirs), f"{scenario}: {ours.name}")


@pytest.mark.reference
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_no_common_name_exits_1_in_drizzlepac_too(uvis, tmp_path, monkeypatch):
    pytest.importorskip("drizzlepac")
    paths, flags = build(uvis, tmp_path, "fallback")  # paths[1]: the second grism image
    edit_in_place(paths[1], _edit_all(lambda h: drop_headerlets(h, every=True),
                                      lambda h: drop_alternates(h, every=True),
                                      lambda h: rename_active(h, "SOMETHING_ELSE")))
    theirs = tmp_path / "drizzlepac"
    theirs.mkdir()
    for path in paths:
        shutil.copy(path, theirs / path.name)
    with pytest.raises(IncompatibleInputsError):
        update_wcs_in_visit(paths, flags)
    with pytest.raises(SystemExit) as exc:
        _drizzlepac_update([theirs / p.name for p in paths], flags, theirs, monkeypatch)
    assert exc.value.code == 1


# ----------------------------------------------------------------------------- run_svm
IR_BASE = "hst_17001_01_wfc3_ir_"
IR_GSC = "IDC_w3m18525i-GSC240"


@pytest.fixture(scope="module")
def ir(tmp_path_factory) -> list[Path]:
    """Three small simulated WFC3/IR FLT exposures."""
    visit = simulate_visit(tmp_path_factory.mktemp("grism_ir"), "wfc3-ir", 3, filters=["F160W"],
                           shape=(32, 32), seed=11, noise=False, cosmic_rays=False)
    return [r.path for r in visit.exposures]


def ir_visit(ir, folder: Path, *, grism_edit=None) -> Path:
    """Poller of a visit: ``ir[0]``, ``ir[1]`` in F160W, ``ir[2]`` as a G141 exposure (then
    ``grism_edit(hdul)``). Rootnames are kept: stwcs restores a headerlet only into the
    exposure it was made for (``DESTIM`` = ``ROOTNAME``)."""
    folder.mkdir()
    lines = []
    for k, src in enumerate(ir):
        grism = k == 2
        name = src.name
        dest = folder / name
        shutil.copyfile(src, dest)

        def edit(hdul, grism=grism):
            if grism:
                hdul[0].header.update(FILTER="G141", OBSTYPE="SPECTROSCOPIC")
                if grism_edit is not None:
                    grism_edit(hdul)

        edit_in_place(dest, edit)
        exptime = fits.getval(dest, "EXPTIME")
        lines.append(f"{name},17001,SIM,01,{exptime},{'G141' if grism else 'F160W'},IR,{dest}")
    poller = folder / "visit.out"
    poller.write_text("\n".join(lines) + "\n")
    return poller


@pytest.mark.slow
def test_run_svm_mixed_grism_visit(ir, tmp_path, monkeypatch):
    """WFC3/IR F160W x 2 + one G141 exposure: the grism image and its trailer lead the
    manifest (per detector: headerlets, ramps, grism, then the drizzled products, §1.14), and
    every renamed copy has the a priori GSC240 solution active."""
    from hapgpu.svm._pipeline import run_svm

    poller = ir_visit(ir, tmp_path / "in")
    monkeypatch.setenv("SVM_CATALOG_IR", "off")
    out = tmp_path / "out"
    assert run_svm(poller, out, align=False, previews=False, backend="cpu", progress=False) == 0

    base = IR_BASE
    expected = [f"{base}g141_isim01a2_flt.fits", f"{base}g141_isim01a2_trl.txt",
                f"{base}f160w_isim01_drz.fits", f"{base}f160w_isim01_trl.txt"]
    for exp in ("isim01a0", "isim01a1"):
        expected += [f"{base}f160w_{exp}_drz.fits", f"{base}f160w_{exp}_flt.fits",
                     f"{base}f160w_{exp}_trl.txt"]
    expected += [f"{base}total_isim01_drz.fits", f"{base}total_isim01_trl.txt"]
    assert (out / "wfc3_sim_01_manifest.txt").read_text().splitlines() == expected
    for name in expected:
        assert (out / name).is_file(), name
    for name in expected:
        if name.endswith("_flt.fits"):
            header = fits.getheader(out / name, ("SCI", 1))
            assert header["WCSNAME"] == IR_GSC and "NMATCHES" not in header, name
    # the grism trailer is a copy of the run log, which records the reconciliation
    trailer = (out / f"{base}g141_isim01a2_trl.txt").read_text()
    assert f"WCS made active in every grism/prism and direct image: {IR_GSC}" in trailer
    # the drizzled products are made from the reconciled WCS (it was FIT_REL_GAIAeDR3)
    assert fits.getheader(out / f"{base}f160w_isim01a0_drz.fits", "SCI")["WCSNAME"] == IR_GSC


def test_run_svm_exits_1_when_no_wcs_name_is_common(ir, tmp_path, caplog):
    """A grism image sharing no WCS name with the others: exit 1 naming it, nothing written
    (the run stops before any drizzling)."""
    from hapgpu.svm._pipeline import run_svm

    def foreign(hdul):
        drop_headerlets(hdul, every=True)
        drop_alternates(hdul, every=True)
        rename_active(hdul, "SOMETHING_ELSE")

    poller = ir_visit(ir, tmp_path / "in", grism_edit=foreign)
    # a second grism exposure with the usual names, so that two grism images are compared
    # (another rootname: its headerlets could not be restored, but it fails before that)
    extra = tmp_path / "in" / "isim01g1q_flt.fits"
    shutil.copyfile(tmp_path / "in" / ir[0].name, extra)
    edit_in_place(extra, lambda h: h[0].header.update(ROOTNAME="isim01g1q", FILENAME=extra.name,
                                                      FILTER="G141", OBSTYPE="SPECTROSCOPIC"))
    exptime = fits.getval(extra, "EXPTIME")
    lines = poller.read_text().splitlines()
    lines.insert(2, f"{extra.name},17001,SIM,01,{exptime},G141,IR,{extra}")
    poller.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    with caplog.at_level(logging.ERROR, logger="hapgpu"):
        code = run_svm(poller, out, align=False, previews=False, backend="cpu", progress=False)
    assert code == 1
    assert "no WCS solution name in common" in caplog.text
    assert f"{IR_BASE}g141_isim01a2_flt.fits: no WCS solution name in common" in caplog.text
    assert not out.exists() or not any(out.iterdir())
