"""Reading SVM pollers: the 8-, 1- and 2-column forms and their errors (hap-pipeline.md §1.2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hapgpu.errors import IncompatibleInputsError, InvalidInputError
from hapgpu.svm._poller import EMPTY_APERTURE, PollerRow, read_poller

from ._svm_inputs import write_exposure, write_poller


def _full_line(name, path, *, obset="06", proposal="11665", exptime="400.0", filters="F555W",
               detector="UVIS"):
    return [name, proposal, "B46", obset, exptime, filters, detector, str(path)]


def test_full_poller_fields_and_source_from_pathname(tmp_path, monkeypatch):
    data = tmp_path / "archive"
    data.mkdir()
    a = write_exposure(data / "ib4606c5q_flc.fits")
    b = write_exposure(data / "ib4606c6q_flc.fits")
    work = tmp_path / "work"
    work.mkdir()
    local_b = write_exposure(work / "ib4606c6q_flc.fits")
    poller = write_poller(tmp_path / "ib4606.out",
                          [_full_line(a.name, a, filters="F850LP;CLEAR2L"),
                           _full_line(b.name, b, exptime="35")])
    monkeypatch.chdir(work)
    rows = read_poller(poller)
    assert [r.filename for r in rows] == ["ib4606c5q_flc.fits", "ib4606c6q_flc.fits"]
    first = rows[0]
    assert first == PollerRow(filename="ib4606c5q_flc.fits", proposal_id=11665, program_id="B46",
                              obset_id="06", exptime=400.0, filters="F850LP;CLEAR2L",
                              detector="UVIS", pathname=str(a), source=a.resolve())
    assert isinstance(first.obset_id, str) and first.aperture == EMPTY_APERTURE
    assert first.instrument == "WFC3" and first.rootname == "ib4606c5q" and first.visit == "ib4606"
    # a file in the working directory is read there, before the poller's pathname
    assert rows[1].source == local_b.resolve() and rows[1].exptime == 35.0


def test_obset_kept_as_text(tmp_path):
    a = write_exposure(tmp_path / "ib460rc5q_flc.fits")
    poller = write_poller(tmp_path / "p.out", [_full_line(a.name, a, obset="0R")])
    assert read_poller(poller, search_dirs=[tmp_path])[0].obset_id == "0R"
    b = write_exposure(tmp_path / "ib4606c5q_flc.fits")
    poller = write_poller(tmp_path / "q.out", [_full_line(b.name, b, obset="06")])
    assert read_poller(poller, search_dirs=[tmp_path])[0].obset_id == "06"


def test_default_search_dirs_cwd_then_poller_folder(tmp_path, monkeypatch):
    visit = tmp_path / "visit"
    visit.mkdir()
    write_exposure(visit / "ib4606c5q_flc.fits")
    poller = write_poller(visit / "input.lst", ["ib4606c5q_flc.fits"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert read_poller(poller)[0].source == (visit / "ib4606c5q_flc.fits").resolve()
    # the current directory comes first
    write_exposure(elsewhere / "ib4606c5q_flc.fits")
    assert read_poller(poller)[0].source == (elsewhere / "ib4606c5q_flc.fits").resolve()


def test_one_column_list_fields_from_headers(tmp_path):
    write_exposure(tmp_path / "ib4606c5q_flc.fits", PROPOSID=11665, EXPTIME=350.5,
                   FILTER="F606W")
    write_exposure(tmp_path / "j8bt06nyq_flt.fits", "ACS", DETECTOR="HRC", PROPOSID=9019,
                   FILTER1="CLEAR1S", FILTER2="F814W")
    write_exposure(tmp_path / "u5ab0102r_flt.fits", "WFPC2", DETECTOR=1, PROPOSID=8000,
                   FILTNAM1="F555W", FILTNAM2="")
    poller = write_poller(tmp_path / "input.lst", ["ib4606c5q_flc.fits"])
    (row,) = read_poller(poller, search_dirs=[tmp_path])
    assert (row.proposal_id, row.program_id, row.obset_id, row.exptime, row.filters,
            row.detector) == (11665, "B46", "06", 350.5, "F606W", "UVIS")
    assert row.pathname == str(row.source) and Path(row.pathname).is_absolute()
    (acs,) = read_poller(write_poller(tmp_path / "acs.lst", ["j8bt06nyq_flt.fits"]),
                         search_dirs=[tmp_path])
    # ACS: both filter wheels, clear included (drizzlepac's get_acs_filters(all=True))
    assert (acs.filters, acs.detector, acs.program_id, acs.proposal_id) == \
        ("CLEAR1S;F814W", "HRC", "8BT", 9019)
    (wfpc2,) = read_poller(write_poller(tmp_path / "u.lst", ["u5ab0102r_flt.fits"]),
                           search_dirs=[tmp_path])
    # WFPC2: FILTNAM1;FILTNAM2 with the trailing ';' of an empty second wheel removed
    assert wfpc2.filters == "F555W" and wfpc2.detector == "1"


def test_two_column_wfpc2_form_carries_aperture(tmp_path):
    write_exposure(tmp_path / "u5ab0102r_flt.fits", "WFPC2", DETECTOR=1,
                   FILTNAM1="F160BN15", FILTNAM2="F555W")
    poller = write_poller(tmp_path / "u.out", ["u5ab0102r_flt.fits, PC1-FIX;F160BN15"])
    (row,) = read_poller(poller, search_dirs=[tmp_path])
    assert row.aperture == "PC1-FIX;F160BN15" and row.filters == "F160BN15;F555W"
    bad = write_poller(tmp_path / "bad.out", ["u5ab0102r_flt.fits, PC1 FIX"])
    with pytest.raises(InvalidInputError, match=r"bad\.out, line 1: the aperture 'PC1 FIX'"):
        read_poller(bad, search_dirs=[tmp_path])


@pytest.mark.parametrize("n_columns", [3, 7, 9])
def test_other_column_counts_are_rejected(tmp_path, n_columns):
    poller = write_poller(tmp_path / "odd.out", [["ib4606c5q_flc.fits"] + ["x"] * (n_columns - 1)])
    with pytest.raises(InvalidInputError, match=rf"odd\.out: {n_columns} columns"):
        read_poller(poller, search_dirs=[tmp_path])


def test_inconsistent_column_counts(tmp_path):
    a = write_exposure(tmp_path / "ib4606c5q_flc.fits")
    poller = write_poller(tmp_path / "mixed.out", [_full_line(a.name, a), "ib4606c6q_flc.fits"])
    with pytest.raises(InvalidInputError, match=r"mixed\.out: line 2 has 1 columns, the first "
                                                r"line 8"):
        read_poller(poller, search_dirs=[tmp_path])


@pytest.mark.parametrize("content", ["", "\n\n", "# nothing\n   \n"])
def test_empty_poller_gives_no_rows(tmp_path, content):
    poller = tmp_path / "empty.out"
    poller.write_text(content)
    assert read_poller(poller) == []


def test_association_name_is_a_clear_error(tmp_path):
    poller = write_poller(tmp_path / "asn.lst", ["ib4606060_asn.fits"])
    with pytest.raises(InvalidInputError, match=r"ib4606060_asn\.fits is an association table.*"
                                                r"offline"):
        read_poller(poller, search_dirs=[tmp_path])


def test_missing_file_names_file_and_places(tmp_path):
    poller = write_poller(tmp_path / "p.out",
                          [_full_line("ib4606c5q_flc.fits", tmp_path / "nowhere" / "x.fits")])
    with pytest.raises(InvalidInputError) as info:
        read_poller(poller, search_dirs=[tmp_path])
    message = str(info.value)
    assert "input file ib4606c5q_flc.fits not found" in message
    assert str(tmp_path / "nowhere" / "x.fits") in message and "MAST" in message
    listed = write_poller(tmp_path / "l.lst", ["ib4606c5q_flc.fits"])
    with pytest.raises(InvalidInputError, match=r"l\.lst, line 1: input file ib4606c5q_flc"):
        read_poller(listed, search_dirs=[tmp_path])


@pytest.mark.parametrize("name, problem", [
    ("hst_11665_06_wfc3_uvis_f555w_ib4606c5_flc.fits", "not a pipeline exposure name"),
    ("ib4606c5q_raw.fits", "not a pipeline exposure name"),
    ("IB4606C5Q_FLC.FITS", "not a pipeline exposure name"),
    ("o4606c5qq_flt.fits", "STIS exposure"),
])
def test_names_that_cannot_be_svm_inputs(tmp_path, name, problem):
    poller = write_poller(tmp_path / "n.lst", [name])
    with pytest.raises(InvalidInputError, match=problem):
        read_poller(poller, search_dirs=[tmp_path])


def test_mixed_visits_are_rejected(tmp_path):
    a = write_exposure(tmp_path / "ib4606c5q_flc.fits")
    b = write_exposure(tmp_path / "ib4607c5q_flc.fits")
    poller = write_poller(tmp_path / "two.out", [_full_line(a.name, a), _full_line(b.name, b)])
    with pytest.raises(IncompatibleInputsError, match=r"two\.out: exposures from more than one "
                                                      r"visit.*ib4606.*ib4607"):
        read_poller(poller, search_dirs=[tmp_path])
    c = write_exposure(tmp_path / "ib4606c6q_flc.fits")
    poller = write_poller(tmp_path / "obs.out", [_full_line(a.name, a),
                                                 _full_line(c.name, c, proposal="11666")])
    with pytest.raises(IncompatibleInputsError, match="proposal 11666"):
        read_poller(poller, search_dirs=[tmp_path])


def test_file_listed_twice(tmp_path):
    write_exposure(tmp_path / "ib4606c5q_flc.fits")
    poller = write_poller(tmp_path / "dup.lst", ["ib4606c5q_flc.fits", "ib4606c5q_flc.fits"])
    with pytest.raises(InvalidInputError, match="listed twice"):
        read_poller(poller, search_dirs=[tmp_path])


@pytest.mark.parametrize("field, value, problem", [
    ("proposal", "11x65", "proposal_id '11x65' is not an integer"),
    ("exptime", "long", "exptime 'long' is not a number"),
])
def test_unreadable_fields(tmp_path, field, value, problem):
    a = write_exposure(tmp_path / "ib4606c5q_flc.fits")
    poller = write_poller(tmp_path / "f.out", [_full_line(a.name, a, **{field: value})])
    with pytest.raises(InvalidInputError, match=rf"f\.out, line 1: {problem}"):
        read_poller(poller, search_dirs=[tmp_path])


def test_list_form_header_problems_name_the_file(tmp_path):
    write_exposure(tmp_path / "ib4606c5q_flc.fits", PROPOSID=None)
    poller = write_poller(tmp_path / "h.lst", ["ib4606c5q_flc.fits"])
    with pytest.raises(InvalidInputError, match=r"ib4606c5q_flc\.fits: primary header has no "
                                                r"PROPOSID"):
        read_poller(poller, search_dirs=[tmp_path])
    (tmp_path / "ib4606c6q_flc.fits").write_text("not fits")
    poller = write_poller(tmp_path / "t.lst", ["ib4606c6q_flc.fits"])
    with pytest.raises(InvalidInputError, match=r"ib4606c6q_flc\.fits: cannot read the FITS "
                                                r"header"):
        read_poller(poller, search_dirs=[tmp_path])


def test_missing_or_binary_poller(tmp_path):
    with pytest.raises(InvalidInputError, match="poller file not found"):
        read_poller(tmp_path / "absent.out")
    binary = tmp_path / "b.out"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(InvalidInputError, match="not a text file"):
        read_poller(binary)
    with pytest.raises(InvalidInputError, match="is a directory"):
        read_poller(tmp_path)
