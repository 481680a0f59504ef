"""runastrodriz a posteriori stage (hap-pipeline.md §3.8): the common active WCS of an
association (as drizzlepac chooses it), the pipeline fit against a local catalogue (truth
within 5 mas) and the FLC solution propagated to the FLT files."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from hapgpu.errors import InvalidInputError
from hapgpu.runastrodriz._aposteriori import (
    align_aposteriori,
    update_wcs_in_list,
)

from ..align._helpers import rms, truth_offsets_mas
from . import _fixtures
from ._fixtures import copy_files, make_flt, quiet

aposteriori_visit = _fixtures.aposteriori_visit  # session fixtures
small_headers = _fixtures.small_headers

IDC = "IDC_2731450pi"


def _active(path):
    with fits.open(path) as hdul:
        return [(str(h.header["WCSNAME"]), h.header["CRVAL1"], h.header["CRVAL2"],
                 h.header["CD1_1"], h.header["CD2_1"]) for h in hdul if h.name == "SCI"]


def _make_active(path, wcsname):
    from hapgpu.svm._grism import update_active_wcs

    assert update_active_wcs(path, wcsname)


@pytest.mark.slow
@pytest.mark.reference
def test_update_wcs_in_list_as_drizzlepac(small_headers, tmp_path):
    from drizzlepac import runastrodriz

    ref = copy_files(small_headers.files, tmp_path / "drizzlepac")
    ours = copy_files(small_headers.files, tmp_path / "hapgpu")
    for group in (ref, ours):           # the exposures disagree: one has the HSC a priori WCS
        _make_active(group[0], f"{IDC}-HSC30")
    assert _active(ours[0])[0][0] != _active(ours[1])[0][0]
    quiet(runastrodriz.update_wcs_in_list, [str(f) for f in ref])
    chosen = update_wcs_in_list(ours)
    assert chosen == f"{IDC}-FIT_REL_GAIAeDR3"
    for r, o in zip(ref, ours):
        r_chips, o_chips = _active(r), _active(o)
        assert [c[0] for c in o_chips] == [c[0] for c in r_chips] == [chosen] * len(o_chips)
        np.testing.assert_allclose([c[1:] for c in o_chips], [c[1:] for c in r_chips],
                                   rtol=0, atol=1e-12)


def test_update_wcs_in_list_without_common_preferred_name(small_headers, tmp_path):
    files = copy_files(small_headers.files, tmp_path / "idctab")
    for f in files:     # another IDCTAB: none of the files' solutions belongs to it
        fits.setval(f, "IDCTAB", value="iref$zzzzzzzzz_idc.fits", ext=0)
    before = [_active(f) for f in files]
    assert update_wcs_in_list(files) is None
    assert [_active(f) for f in files] == before


@pytest.mark.slow
def test_aposteriori_fit_and_flt_propagation(aposteriori_visit, tmp_path):
    work = tmp_path / "apost"
    flcs = copy_files(aposteriori_visit.files, work)
    flts = [make_flt(f) for f in flcs]
    refcat = aposteriori_visit.outdir / "refcat.ecsv"
    before = rms(truth_offsets_mas(aposteriori_visit.outdir, flcs))
    assert before > 300                              # the simulated a priori error

    outcome = align_aposteriori(flcs, flts, refcat=refcat, backend="cpu")
    assert outcome.succeeded
    assert outcome.status == {f.name: 0 for f in flcs}
    assert outcome.wcsname == f"{IDC}-FIT_REL_GAIAeDR3"
    assert outcome.n_matched >= 12
    reference_size = len(outcome.table)  # one row per image
    assert reference_size == 2 and 0 < outcome.fraction_matched <= 1
    assert rms(truth_offsets_mas(aposteriori_visit.outdir, flcs)) < 5.0
    assert rms(truth_offsets_mas(aposteriori_visit.outdir, flts)) < 5.0

    for flt, flc in zip(flts, flcs):
        hlet = work / f"{flc.name[:9]}_flt_hlet.fits"
        assert str(hlet) in outcome.headerlet_files and hlet.exists()
        with fits.open(flt) as f_hdul, fits.open(flc) as c_hdul:
            for key in ("UPWCSVER", "PYWCSVER"):
                assert f_hdul[0].header[key] == c_hdul[0].header[key]
            for ver in (1, 2):
                f_sci, c_sci = f_hdul["SCI", ver].header, c_hdul["SCI", ver].header
                for key in ("WCSNAME", "WCSTYPE", "RMS_RA", "RMS_DEC", "CRDER1", "CRDER2",
                            "NMATCHES", "FITGEOM", "HDRNAME", "CRVAL1", "CRVAL2", "CD1_1",
                            "CD1_2", "CD2_1", "CD2_2", "CRPIX1", "CRPIX2"):
                    assert f_sci[key] == pytest.approx(c_sci[key], rel=0, abs=1e-12) \
                        if isinstance(c_sci[key], float) else f_sci[key] == c_sci[key], key
                # the FLT's previous (a priori) WCS is kept as an alternate
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    names = [f_sci.get(f"WCSNAME{k}") for k in "ABCDEFGHIJ"]
                assert f"{IDC}-GSC240" in names
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    f_wcs, c_wcs = WCS(f_sci, f_hdul), WCS(c_sci, c_hdul)
                np.testing.assert_allclose(f_wcs.all_pix2world([[10.0, 20.0]], 0),
                                           c_wcs.all_pix2world([[10.0, 20.0]], 0),
                                           rtol=0, atol=1e-10)
            hlets = [h.header["WCSNAME"] for h in f_hdul if h.name == "HDRLET"]
            assert f"{IDC}-FIT_REL_GAIAeDR3" in hlets


def test_aposteriori_without_catalogue_changes_nothing(small_headers, tmp_path):
    files = copy_files(small_headers.files, tmp_path / "nocat")
    before = [f.read_bytes() for f in files]
    outcome = align_aposteriori(files, refcat=tmp_path / "missing.ecsv", backend="cpu")
    assert not outcome.succeeded
    assert outcome.status == {f.name: 1 for f in files}
    assert "missing.ecsv" in outcome.message
    assert [f.read_bytes() for f in files] == before
    with pytest.raises(InvalidInputError, match="one to one"):
        align_aposteriori(files, files[:1], refcat=None)
    with pytest.raises(InvalidInputError, match="no files"):
        align_aposteriori([], refcat=None)
