"""Viability filter, row order and filter names of SVM inputs (hap-pipeline.md §1.3, §1.4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hapgpu.errors import InvalidInputError, InvalidParameterError, NoUsableInputError
from hapgpu.svm._analyze import (
    ExitCode,
    Viability,
    analyze_exposure,
    determine_filter_name,
    read_photflam,
    select_viable_rows,
    sort_rows,
)
from hapgpu.svm._poller import PollerRow

from ._svm_inputs import write_exposure

#: (case id, instrument, keyword overrides incl. fill, mode, expected ok, expected reason start)
CASES = [
    ("good", "WFC3", {}, "svm", True, ""),
    ("obstype", "WFC3", {"OBSTYPE": "SPECTROSCOPIC"}, "svm", False, "OBSTYPE=SPECTROSCOPIC"),
    ("drizcorr-omit", "WFC3", {"DRIZCORR": "OMIT"}, "svm", False, "DRIZCORR=OMIT"),
    ("drizcorr-skipped", "ACS", {"DRIZCORR": "SKIPPED"}, "svm", False, "DRIZCORR=SKIPPED"),
    ("moving-target", "WFC3", {"MTFLAG": "T"}, "svm", False, "MTFLAG=T"),
    ("scan-c", "WFC3", {"SCAN_TYP": "C"}, "svm", False, "SCAN_TYP=C"),
    ("scan-d", "WFC3", {"SCAN_TYP": "D"}, "svm", False, "SCAN_TYP=D"),
    ("cal-target-substring", "WFC3", {"TARGNAME": "XDARKX"}, "svm", False, "TARGNAME=XDARKX"),
    ("cal-target-tung", "ACS", {"TARGNAME": "TUNGSTEN"}, "svm", False, "TARGNAME=TUNGSTEN"),
    ("earth-cal", "WFC3", {"TARGNAME": "EARTH-CALIB"}, "svm", False, "TARGNAME=EARTH-CALIB"),
    ("zero-exptime", "WFC3", {"EXPTIME": 1e-6}, "svm", False, "EXPTIME=1e-06"),
    ("negative-tiny-exptime", "ACS", {"EXPTIME": -1e-5}, "svm", False, "EXPTIME=-1e-05"),
    ("short-exptime-kept", "WFC3", {"EXPTIME": 2e-5}, "svm", True, ""),
    ("fgs-gyro-warning", "WFC3", {"FGSLOCK": "FINE/GYRO"}, "svm", True, ""),
    ("fgs-coarse-warning", "ACS", {"FGSLOCK": "COARSE"}, "svm", True, ""),
    ("chinject", "WFC3", {"CHINJECT": "CONT"}, "svm", False, "CHINJECT=CONT"),
    ("chinject-ir-ignored", "WFC3", {"DETECTOR": "IR", "CHINJECT": "CONT"}, "svm", True, ""),
    # first match wins: OBSTYPE before DRIZCORR, MTFLAG before TARGNAME, ...
    ("order-obstype-drizcorr", "WFC3", {"OBSTYPE": "CORONAGRAPHIC", "DRIZCORR": "OMIT"}, "svm",
     False, "OBSTYPE=CORONAGRAPHIC"),
    ("order-mtflag-targname", "WFC3", {"MTFLAG": "T", "TARGNAME": "DARK"}, "svm", False,
     "MTFLAG=T"),
    ("order-targname-exptime", "ACS", {"TARGNAME": "BIAS", "EXPTIME": 0.0}, "svm", False,
     "TARGNAME=BIAS"),
    # an FGSLOCK warning stops the chain: CHINJECT and the all-zero check are not reached
    ("fgs-hides-chinject", "WFC3", {"FGSLOCK": "GYROS", "CHINJECT": "LINE10"}, "svm", True, ""),
    ("fgs-hides-zeros", "WFC3", {"FGSLOCK": "FINE/GY", "fill": 0.0}, "svm", True, ""),
    # grism/prism: kept in SVM whatever rule fired before, unless the exposure time is zero
    ("grism-svm", "WFC3", {"OBSTYPE": "SPECTROSCOPIC", "FILTER": "G280"}, "svm", True, ""),
    ("grism-clears-drizcorr", "WFC3", {"OBSTYPE": "SPECTROSCOPIC", "FILTER": "G141",
                                       "DRIZCORR": "OMIT", "DETECTOR": "IR"}, "svm", True, ""),
    ("acs-grism-svm", "ACS", {"OBSTYPE": "SPECTROSCOPIC", "FILTER1": "G800L",
                              "FILTER2": "CLEAR2L"}, "svm", True, ""),
    ("acs-prism-svm", "ACS", {"OBSTYPE": "SPECTROSCOPIC", "DETECTOR": "SBC",
                              "FILTER1": "PR110L", "FILTER2": "N/A"}, "svm", True, ""),
    ("grism-mvm", "WFC3", {"OBSTYPE": "SPECTROSCOPIC", "FILTER": "G102"}, "mvm", False,
     "OBSTYPE=SPECTROSCOPIC, Grism/Prism data and MVM processing"),
    ("grism-zero-exptime", "WFC3", {"OBSTYPE": "SPECTROSCOPIC", "FILTER": "G280",
                                    "EXPTIME": 0.0}, "svm", False,
     "OBSTYPE=SPECTROSCOPIC, Grism/Prism data and EXPTIME = 0.0"),
    ("grism-all-zero", "WFC3", {"OBSTYPE": "SPECTROSCOPIC", "FILTER": "G280", "fill": 0.0},
     "svm", False, "SCI data all zeros"),
    ("block", "ACS", {"DETECTOR": "SBC", "FILTER1": "F165LP", "FILTER2": "BLOCK4"}, "svm",
     False, "FILTER=F165LP_BLOCK4"),
    ("ramp-svm-kept", "ACS", {"FILTER1": "FR647M", "FILTER2": "CLEAR2L"}, "svm", True, ""),
    ("ramp-mvm", "ACS", {"FILTER1": "FR647M", "FILTER2": "CLEAR2L"}, "mvm", False,
     "FILTER=Ramp data and MVM processing"),
    ("acs-blank-filter", "ACS", {"FILTER1": "  ", "FILTER2": "F814W"}, "svm", True, ""),
    ("all-zero", "WFC3", {"fill": 0.0}, "svm", False, "SCI data all zeros"),
    ("one-chip-zero", "WFC3", {"fill": (0.0, 3.0)}, "svm", True, ""),
    ("no-sci", "ACS", {"fill": ()}, "svm", False, "SCI data all zeros"),
    ("wfpc2-good", "WFPC2", {}, "svm", True, ""),
    ("wfpc2-not-ext", "WFPC2", {"IMAGETYP": "FLAT"}, "svm", False, "IMAGETYP=CAL"),
    # WFPC2 calibration targets only count with IMAGETYP != EXT, which rule 1 rejects first
    ("wfpc2-cal-target", "WFPC2", {"IMAGETYP": "DARK", "TARGNAME": "INTFLAT"}, "svm", False,
     "IMAGETYP=CAL"),
    ("wfpc2-dark-target-ext", "WFPC2", {"TARGNAME": "DARK"}, "svm", True, ""),
    ("wfpc2-moving", "WFPC2", {"MTFLAG": True}, "svm", False, "MTFLAG=T"),
]


def _make(tmp_path: Path, case_id: str, instrument: str, overrides: dict) -> Path:
    overrides = dict(overrides)
    fill = overrides.pop("fill", 1.0)
    letter = {"WFC3": "i", "ACS": "j", "WFPC2": "u"}[instrument]
    name = f"{letter}b4606a0q_flt.fits"
    return write_exposure(tmp_path / case_id / name, instrument, fill=fill, **overrides)


@pytest.fixture()
def case_dir(tmp_path):
    def make(case_id, instrument, overrides):
        (tmp_path / case_id).mkdir()
        return _make(tmp_path, case_id, instrument, overrides)
    return make


@pytest.mark.parametrize("case_id, instrument, overrides, mode, ok, reason", CASES,
                         ids=[c[0] for c in CASES])
def test_viability_rules(case_dir, case_id, instrument, overrides, mode, ok, reason):
    verdict = analyze_exposure(case_dir(case_id, instrument, overrides), mode=mode)
    assert verdict.ok is ok
    assert verdict.reason == reason
    assert bool(verdict.warning) is case_id.startswith("fgs-")
    if verdict.warning:
        assert verdict.warning.startswith("FGSLOCK=")


@pytest.mark.reference
def test_viability_matches_drizzlepac_analyze_data(tmp_path):
    """drizzlepac's analyze_data (doProcess, processMsg) on the same crafted files."""
    from drizzlepac.haputils import analyze

    for case_id, instrument, overrides, mode, _, _ in CASES:
        (tmp_path / case_id).mkdir()
        path = _make(tmp_path, case_id, instrument, overrides)
        ours = analyze_exposure(path, mode=mode)
        table, good = analyze.analyze_data([str(path)], type=mode.upper())
        theirs_ok = bool(table["doProcess"][0])
        message = table["processMsg"][0]
        message = message.decode() if isinstance(message, bytes) else str(message)
        assert ours.ok is theirs_ok, case_id
        assert (good == [0]) is ours.ok, case_id
        if not ours.ok:
            # drizzlepac's MTFLAG key has a leading blank
            assert message.strip() == ours.reason, case_id


def test_missing_keyword_and_bad_mode(tmp_path):
    path = write_exposure(tmp_path / "ib4606c5q_flc.fits", FGSLOCK=None)
    with pytest.raises(InvalidInputError, match=r"ib4606c5q_flc\.fits: primary header has no "
                                                r"FGSLOCK"):
        analyze_exposure(path)
    with pytest.raises(InvalidParameterError, match="mode"):
        analyze_exposure(path, mode="hap")
    broken = tmp_path / "ib4606c6q_flc.fits"
    broken.write_bytes(b"SIMPLE  =                    T" + b" " * 10)
    with pytest.raises(InvalidInputError, match=r"ib4606c6q_flc\.fits: cannot read"):
        analyze_exposure(broken)


def _row(path: Path, exptime: float) -> PollerRow:
    return PollerRow(filename=path.name, proposal_id=11665, program_id="B46", obset_id="06",
                     exptime=exptime, filters="F555W", detector="UVIS", pathname=str(path),
                     source=path)


def test_select_viable_rows(tmp_path):
    good = write_exposure(tmp_path / "ib4606c5q_flc.fits")
    dark = write_exposure(tmp_path / "ib4606c6q_flc.fits", TARGNAME="DARK")
    grism = write_exposure(tmp_path / "ib4606c7q_flc.fits", OBSTYPE="SPECTROSCOPIC",
                           FILTER="G280")
    rows = [_row(dark, 1.0), _row(good, 2.0), _row(grism, 3.0)]
    assert [r.filename for r in select_viable_rows(rows)] == [good.name, grism.name]
    assert [r.filename for r in select_viable_rows(rows, mode="mvm")] == [good.name]
    assert select_viable_rows([]) == []
    zero = write_exposure(tmp_path / "ib4606c8q_flc.fits", fill=0.0)
    with pytest.raises(NoUsableInputError) as info:
        select_viable_rows([_row(dark, 1.0), _row(zero, 1.0)])
    assert "ib4606c6q_flc.fits (TARGNAME=DARK)" in str(info.value)
    assert "ib4606c8q_flc.fits (SCI data all zeros)" in str(info.value)


def test_exit_codes():
    assert [int(c) for c in ExitCode] == [0, 1, 15, 55, 65]
    assert ExitCode.NO_VIABLE_DATA == 65 and ExitCode.KEYWORD_UPDATE_PROBLEM == 15


def test_sort_rows_exptime_then_photflam_descending(tmp_path):
    a = write_exposure(tmp_path / "ib4606a0q_flc.fits", photflam=1.0e-19)
    b = write_exposure(tmp_path / "ib4606a1q_flc.fits", photflam=3.0e-19)
    c = write_exposure(tmp_path / "ib4606a2q_flc.fits", photflam=2.0e-19)
    d = write_exposure(tmp_path / "ib4606a3q_flc.fits", photflam=9.0e-19)
    e = write_exposure(tmp_path / "ib4606a4q_flt.fits", photflam=2.0e-19)  # ties c: stable
    rows = [_row(a, 100.0), _row(b, 100.0), _row(c, 50.0), _row(d, 400.0), _row(e, 50.0)]
    assert [r.filename[:9] for r in sort_rows(rows)] == \
        ["ib4606a2q", "ib4606a4q", "ib4606a1q", "ib4606a0q", "ib4606a3q"]
    # photflam given by the caller
    assert [r.filename[:9] for r in sort_rows(rows[:2], photflam=[5.0, 1.0])] == \
        ["ib4606a0q", "ib4606a1q"]
    with pytest.raises(InvalidParameterError, match="photflam has 1 values for 2 rows"):
        sort_rows(rows[:2], photflam=[1.0])


def test_photflam_from_primary_for_wfc3_ir_only(tmp_path):
    ir = write_exposure(tmp_path / "ib4606b0q_flt.fits", DETECTOR="IR", n_chips=1,
                        photflam=7.0e-20, primary_photflam=2.0e-20)
    uvis = write_exposure(tmp_path / "ib4606b1q_flc.fits", photflam=7.0e-20,
                          primary_photflam=2.0e-20)
    assert read_photflam(ir) == 2.0e-20
    assert read_photflam(uvis) == 7.0e-20
    missing = write_exposure(tmp_path / "ib4606b2q_flt.fits", DETECTOR="IR", n_chips=1)
    with pytest.raises(InvalidInputError, match=r"ib4606b2q_flt\.fits: primary header has no "
                                                r"PHOTFLAM"):
        read_photflam(missing)


@pytest.mark.reference
def test_sort_matches_drizzlepac(tmp_path):
    from astropy.table import Table
    from drizzlepac.haputils.poller_utils import sort_poller_table

    specs = [("ib4606a0q_flc.fits", 100.0, 1.0e-19), ("ib4606a1q_flc.fits", 100.0, 3.0e-19),
             ("ib4606a2q_flc.fits", 50.0, 2.0e-19), ("ib4606a3q_flc.fits", 400.0, 9.0e-19),
             ("ib4606a4q_flt.fits", 50.0, 2.0e-19), ("ib4606a5q_flt.fits", 100.0, 3.0e-19)]
    paths = [write_exposure(tmp_path / n, photflam=p) for n, _, p in specs]
    rows = [_row(path, t) for path, (_, t, _) in zip(paths, specs)]
    table = Table({"filename": [str(p) for p in paths], "exptime": [t for _, t, _ in specs]})
    theirs = [Path(f).name for f in sort_poller_table(table)["filename"]]
    assert [r.filename for r in sort_rows(rows)] == theirs


@pytest.mark.parametrize("raw, expected", [
    # the verified examples of hap-pipeline.md §1.4
    ("F606W;POL60V", "f606w-pol60v"),
    ("POL0UV;F330W", "f330w-pol0uv"),
    ("CLEAR1L;F814W", "f814w"),
    ("F140LP;N/A;F140LP", "f140lp"),
    ("CLEAR1L;CLEAR2L", "clear"),
    # more
    ("F555W", "f555w"),
    ("F850LP;CLEAR2L", "f850lp"),
    ("G800L;CLEAR2L", "g800l"),
    ("F435W;F814W", "f435w-f814w"),
    ("POL60V;F606W;F814W", "f606w-pol60v"),
])
def test_determine_filter_name(raw, expected):
    assert determine_filter_name(raw) == expected


@pytest.mark.reference
def test_filter_names_match_drizzlepac():
    from drizzlepac.haputils.poller_utils import determine_filter_name as theirs

    for raw in ["F606W;POL60V", "POL0UV;F330W", "CLEAR1L;F814W", "F140LP;N/A;F140LP",
                "CLEAR1L;CLEAR2L", "F555W", "G800L;CLEAR2L", "F435W;F814W", ";F814W",
                "POL120UV;POL60V", "FR647M;CLEAR2L", "N/A"]:
        assert determine_filter_name(raw) == theirs(raw), raw


def test_viability_dataclass_defaults():
    assert Viability(True) == Viability(ok=True, reason="", warning="")
