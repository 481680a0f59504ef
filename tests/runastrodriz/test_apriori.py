"""runastrodriz a priori stage offline (hap-pipeline.md §3.7, §4): the WCS chosen from the
attached headerlets equals what drizzlepac's own functions choose on copies of the same files."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from hapgpu.errors import InvalidInputError
from hapgpu.runastrodriz._apriori import (
    apply_apriori,
    confirm_aposteriori_hdrlets,
    idctab_date,
    restore_pipeline_default,
    verify_gaia_wcsnames,
)

from . import _fixtures
from ._fixtures import copy_files, quiet

small_headers = _fixtures.small_headers  # session fixture

IDC = "IDC_2731450pi"
NEW_IDC = "IDC_3b01234ai"


def _state(path):
    """What a WCS choice changes: SCI WCS keywords, alternate names, headerlets."""
    from stwcs.wcsutil import altwcs

    with fits.open(path) as hdul:
        chips = [(h.ver, str(h.header.get("WCSNAME")), h.header["CRVAL1"], h.header["CRVAL2"],
                  h.header["CD1_1"], h.header["CD2_2"], h.header.get("IDCSCALE"),
                  h.header.get("HDRNAME"))
                 for h in hdul if h.name == "SCI"]
        alternates = altwcs.wcsnames(hdul["SCI", 1].header, include_primary=True)
        hlets = [(h.ver, h.header.get("WCSNAME"), h.header.get("HDRNAME"))
                 for h in hdul if h.name == "HDRLET"]
    return chips, alternates, hlets


def _twins(visit, tmp_path):
    """Two copies of the visit's exposures: one for drizzlepac, one for hapgpu."""
    ref = copy_files(visit.files, tmp_path / "drizzlepac")
    ours = copy_files(visit.files, tmp_path / "hapgpu")
    return ref, ours


def _idctab_files(folder, dates):
    """Stand-ins for the IDCTAB reference files (only their DATE is read)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, date in dates.items():
        hdu = fits.PrimaryHDU()
        hdu.header["DATE"] = date
        hdu.writeto(folder / f"{name}_idc.fits", overwrite=True)
    return str(folder) + "/"


def _add_newer_hsc(path, crval_shift_deg=1e-4, date="2024-06-01T00:00:00"):
    """Attach a second HSC a priori headerlet, ``IDC_3b01234ai-HSC30``, made from the file's
    HSC30 headerlet with another IDCTAB, another DATE and CRVAL moved (so it can be told
    apart when restored)."""
    from stwcs.wcsutil import headerlet

    with fits.open(path, mode="update") as hdul:
        source = next(h for h in hdul if h.name == "HDRLET"
                      and h.header["WCSNAME"] == f"{IDC}-HSC30")
        hlet = source.headerlet
        hlet[0].header["IDCTAB"] = "iref$3b01234ai_idc.fits"
        hlet[0].header["WCSNAME"] = f"{NEW_IDC}-HSC30"
        hlet[0].header["HDRNAME"] = "newer_hsc_hlet"
        hlet[0].header["DATE"] = date
        for hdu in hlet:
            if hdu.name == "SIPWCS":
                hdu.header["WCSNAME"] = f"{NEW_IDC}-HSC30"
                hdu.header["CRVAL2"] += crval_shift_deg
        new = headerlet.HeaderletHDU.fromheaderlet(hlet)
        new.header["EXTVER"] = max(h.ver for h in hdul if h.name == "HDRLET") + 1
        new.header["WCSNAME"] = f"{NEW_IDC}-HSC30"
        new.header["HDRNAME"] = "newer_hsc_hlet"
        hdul.append(new)


def _drizzlepac_verify(files):
    from drizzlepac import runastrodriz

    return quiet(runastrodriz.verify_gaia_wcsnames, [str(f) for f in files])


def _assert_same(ref_files, our_files):
    for ref, ours in zip(ref_files, our_files):
        r_chips, r_alt, r_hlets = _state(ref)
        o_chips, o_alt, o_hlets = _state(ours)
        assert [c[:2] + c[6:] for c in o_chips] == [c[:2] + c[6:] for c in r_chips]
        np.testing.assert_allclose([c[2:6] for c in o_chips], [c[2:6] for c in r_chips],
                                   rtol=0, atol=1e-12)
        assert o_alt == r_alt
        assert o_hlets == r_hlets


@pytest.mark.slow
@pytest.mark.reference
def test_gaia_wcsnames_restore_as_drizzlepac(small_headers, tmp_path, monkeypatch):
    """Active a posteriori solution -> the HSC a priori headerlet (priority HSC > GSC)."""
    monkeypatch.setenv("iref", _idctab_files(tmp_path / "iref", {"2731450pi": "2017-09-07"}))
    ref, ours = _twins(small_headers, tmp_path)
    assert _state(ours[0])[0][0][1] == f"{IDC}-FIT_REL_GAIAeDR3"
    ref_message = _drizzlepac_verify(ref)
    message = verify_gaia_wcsnames(ours)
    assert message == ref_message
    _assert_same(ref, ours)
    assert _state(ours[0])[0][0][1] == f"{IDC}-HSC30"


@pytest.mark.slow
@pytest.mark.reference
@pytest.mark.parametrize("newer", ["3b01234ai", "2731450pi"])
def test_newest_idctab_wins_as_drizzlepac(small_headers, tmp_path, monkeypatch, newer):
    dates = {"2731450pi": "2017-09-07", "3b01234ai": "2017-09-07"}
    dates[newer] = "2021-02-03"
    monkeypatch.setenv("iref", _idctab_files(tmp_path / "iref", dates))
    ref, ours = _twins(small_headers, tmp_path)
    for f in ref + ours:
        # without the OPUS headerlet, which drizzlepac leaves out of the names but not of the
        # dates (the lists are paired by position, module notes of verify_gaia_wcsnames)
        with fits.open(f, mode="update") as hdul:
            del hdul[next(i for i, h in enumerate(hdul)
                          if h.name == "HDRLET" and h.header["WCSNAME"] == "OPUS")]
        _add_newer_hsc(f)
    _drizzlepac_verify(ref)
    verify_gaia_wcsnames(ours)
    _assert_same(ref, ours)
    expected = f"{NEW_IDC}-HSC30" if newer == "3b01234ai" else f"{IDC}-HSC30"
    assert all(_state(f)[0][0][1] == expected for f in ours)


def test_idctab_date_offline_falls_back_to_headerlet_date(small_headers, tmp_path,
                                                          monkeypatch):
    monkeypatch.delenv("iref", raising=False)
    monkeypatch.delenv("CRDS_PATH", raising=False)
    header = fits.Header({"DATE": "2020-01-02T03:04:05"})
    assert idctab_date("iref$2731450pi_idc.fits", header) == "2020-01-02T03:04:05"
    crds = tmp_path / "crds"
    _idctab_files(crds / "references" / "hst" / "wfc3", {"2731450pi": "2016-05-06"})
    monkeypatch.setenv("CRDS_PATH", str(crds))
    assert idctab_date("iref$2731450pi_idc.fits", header, "WFC3") == "2016-05-06"
    # without reference files the newer headerlet (made for the newer model) wins
    monkeypatch.delenv("CRDS_PATH")
    files = copy_files(small_headers.files[:1], tmp_path / "offline")
    with fits.open(files[0], mode="update") as hdul:
        del hdul[next(i for i, h in enumerate(hdul)
                      if h.name == "HDRLET" and h.header["WCSNAME"] == "OPUS")]
    _add_newer_hsc(files[0], date="2030-01-01T00:00:00")
    verify_gaia_wcsnames(files)
    assert _state(files[0])[0][0][1] == f"{NEW_IDC}-HSC30"


@pytest.mark.reference
def test_gsc240_suffix_after_2017_as_drizzlepac(small_headers, tmp_path, monkeypatch):
    monkeypatch.setenv("iref", _idctab_files(tmp_path / "iref", {"2731450pi": "2017-09-07"}))
    ref, ours = _twins(small_headers, tmp_path)
    restore_pipeline_default(ref + ours)
    for f in ref + ours:
        fits.setval(f, "DATE-OBS", value="2019-03-01", ext=0)
    _drizzlepac_verify(ref)
    verify_gaia_wcsnames(ours)
    _assert_same(ref, ours)
    assert {c[1] for f in ours for c in _state(f)[0]} == {f"{IDC}-GSC240"}


@pytest.mark.reference
def test_confirm_aposteriori_hdrlets_as_drizzlepac(small_headers, tmp_path):
    from drizzlepac import runastrodriz
    from stwcs.wcsutil import headerlet

    ref, ours = _twins(small_headers, tmp_path)
    for f in ref + ours:       # strip the SIP terms of one a posteriori headerlet
        with fits.open(f, mode="update") as hdul:
            index = next(i for i, h in enumerate(hdul) if h.name == "HDRLET"
                         and h.header["WCSNAME"] == f"{IDC}-FIT_REL_GAIADR2")
            hlet = hdul[index].headerlet
            for hdu in hlet:
                if hdu.name == "SIPWCS":
                    for key in [k for k in hdu.header if k.startswith(("A_", "B_"))]:
                        del hdu.header[key]
            replacement = headerlet.HeaderletHDU.fromheaderlet(hlet)
            replacement.header["EXTVER"] = hdul[index].ver
            for key in ("WCSNAME", "HDRNAME"):
                replacement.header[key] = hdul[index].header[key]
            del hdul[index]
            hdul.append(replacement)
    for f in ref:
        quiet(runastrodriz.confirm_aposteriori_hdrlets, str(f))
    removed = confirm_aposteriori_hdrlets(ours)
    assert removed == [f"{f.name}: {IDC}-FIT_REL_GAIADR2" for f in ours]
    _assert_same(ref, ours)
    assert all(f"{IDC}-FIT_REL_GAIADR2" not in [h[1] for h in _state(f)[2]] for f in ours)
    assert confirm_aposteriori_hdrlets(ours) == []          # nothing left to remove


def test_restore_pipeline_default(small_headers, tmp_path):
    files = copy_files(small_headers.files, tmp_path / "default")
    with fits.open(files[0]) as hdul:
        expected = [(h.header["CRVAL1A"], h.header["CRVAL2A"], h.header["CD1_1A"])
                    for h in hdul if h.name == "SCI" and h.header.get("WCSNAMEA") == IDC]
    assert expected
    restore_pipeline_default(files)
    chips = _state(files[0])[0]
    assert {c[1] for c in chips} == {IDC}
    assert all(c[7] is None for c in chips)                 # HDRNAME removed
    np.testing.assert_allclose([c[2:5] for c in chips], expected, rtol=0, atol=1e-12)
    restore_pipeline_default(files)                         # already active: unchanged
    assert _state(files[0])[0] == chips
    fits.setval(files[1], "IDCTAB", value="iref$zzzzzzzzz_idc.fits", ext=0)
    before = files[1].read_bytes()
    with pytest.raises(InvalidInputError, match="IDC_zzzzzzzzz"):
        restore_pipeline_default(files[1:])
    assert files[1].read_bytes() == before                  # left as it was


@pytest.mark.slow
@pytest.mark.reference
def test_apply_apriori_chooses_drizzlepacs_wcs(small_headers, tmp_path, monkeypatch):
    from drizzlepac import runastrodriz

    monkeypatch.setenv("iref", _idctab_files(tmp_path / "iref", {"2731450pi": "2017-09-07"}))
    ref, ours = _twins(small_headers, tmp_path)
    for f in ref:
        quiet(runastrodriz.confirm_aposteriori_hdrlets, str(f))
    _drizzlepac_verify(ref)
    chosen = apply_apriori(ours)
    assert chosen == _state(ref[0])[0][0][1] == f"{IDC}-HSC30"
    _assert_same(ref, ours)
    with pytest.raises(InvalidInputError, match="no files"):
        apply_apriori([])


def test_apply_apriori_from_pipeline_default(small_headers, tmp_path, monkeypatch):
    """A file left with the plain pipeline default gets its best attached a priori solution
    (HSC over GSC), as the astrometry database would make it primary."""
    from stwcs.wcsutil import altwcs

    monkeypatch.setenv("iref", _idctab_files(tmp_path / "iref", {"2731450pi": "2017-09-07"}))
    files = copy_files(small_headers.files, tmp_path / "default")
    restore_pipeline_default(files)
    with fits.open(files[0]) as hdul:
        hsc = hdul["SCI", 1].header
        key = altwcs.getKeyFromName(hsc, f"{IDC}-HSC30")
        expected = (hsc[f"CRVAL1{key}"], hsc[f"CRVAL2{key}"])
    assert apply_apriori(files) == f"{IDC}-HSC30"
    chips = _state(files[0])[0]
    assert {c[1] for c in chips} == {f"{IDC}-HSC30"}
    np.testing.assert_allclose(chips[0][2:4], expected, rtol=0, atol=1e-12)
    # without an HSC solution, the GSC one
    files = copy_files(small_headers.files[:1], tmp_path / "gsc")
    restore_pipeline_default(files)
    with fits.open(files[0], mode="update") as hdul:
        del hdul[next(i for i, h in enumerate(hdul)
                      if h.name == "HDRLET" and h.header["WCSNAME"] == f"{IDC}-HSC30")]
    assert apply_apriori(files) == f"{IDC}-GSC240"
