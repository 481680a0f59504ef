"""Poller files (hap-pipeline.md §5 ``generate_poller_file``), ``hapgpu poller`` and ``hapgpu skycells``."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from pathlib import Path

import pytest
from astropy.io import fits

from hapgpu.cli import main
from hapgpu.errors import InvalidInputError, InvalidParameterError
from hapgpu.mvm import generate_poller_file, locate_exposure, read_mvm_poller
from hapgpu.svm import read_poller

from ._poller_inputs import CELL, OTHER_CELL


@pytest.fixture
def work(exposures, tmp_path, monkeypatch):
    """A working folder (the cwd) holding the UVIS FLCs, an FLT twin of the first, and a
    ``$DATA_PATH`` cache holding the IR FLTs; returns ``{key: Path}``."""
    cwd = tmp_path / "work"
    cwd.mkdir()
    files = {}
    for key in ("uvis0", "uvis1"):
        files[key] = Path(shutil.copyfile(exposures[key], cwd / exposures[key].name))
    files["uvis0_flt"] = Path(shutil.copyfile(exposures["uvis0"],
                                              cwd / exposures["uvis0"].name.replace("_flc", "_flt")))
    cache = tmp_path / "cache"
    for key in ("ir0", "ir1", "hrc0"):
        root = exposures[key].name[:9]
        folder = cache / root[:4] / root
        folder.mkdir(parents=True)
        files[key] = Path(shutil.copyfile(exposures[key], folder / exposures[key].name))
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("DATA_PATH", str(cache))
    return files


def _entries(files):
    """Names, a rootname found twice (FLC wins), a path with folders, cached rootnames, a miss."""
    return [files["uvis1"].name, files["uvis0"].name[:9], str(files["uvis1"]),
            files["ir0"].name[:9], files["hrc0"].name[:9], "isim09zzq", "isim09zzq_flc.fits",
            "", files["uvis0_flt"].name]


def test_svm_poller_fields(work, caplog):
    out = generate_poller_file(_entries(work), "svm", "visit.out")
    text = out.read_text()
    assert not text.endswith("\n")
    lines = text.split("\n")
    cwd = os.getcwd()
    assert lines[0] == f"isim01a1q_flc.fits,17001,SIM,01,300.0,F555W,UVIS,{cwd}/isim01a1q_flc.fits"
    # a rootname: the FLC in the cwd before the FLT
    assert lines[1] == f"isim01a0q_flc.fits,17001,SIM,01,500.0,F555W,UVIS,{cwd}/isim01a0q_flc.fits"
    assert lines[2].endswith(f",{work['uvis1']}")
    ir = fits.getheader(work["ir0"])
    assert lines[3] == (f"isim02a0q_flt.fits,17001,SIM,02,{ir['EXPTIME']},F160W,IR,{work['ir0']}")
    # ACS: FILTER1;FILTER2 normalised (clear dropped), upper case
    hrc = fits.getheader(work["hrc0"])
    assert lines[4].split(",")[5] == next(f for f in (hrc["FILTER1"], hrc["FILTER2"])
                                          if not f.startswith("CLEAR"))
    assert lines[5] == f"isim01a0q_flt.fits,17001,SIM,01,500.0,F555W,UVIS,{cwd}/isim01a0q_flt.fits"
    assert len(lines) == 6
    assert "isim09zzq" in caplog.text and "left out of the poller" in caplog.text
    # hapgpu's SVM reader takes a one-visit poller back
    rows = read_poller(generate_poller_file([work["uvis1"].name, "isim01a0q"], "svm", "one.out"))
    assert [(r.filename, r.exptime) for r in rows] == [("isim01a1q_flc.fits", 300.0),
                                                      ("isim01a0q_flc.fits", 500.0)]


def test_mvm_poller_and_list_file(work):
    listing = Path("list.txt")
    listing.write_text("\n".join([work["uvis0"].name, work["uvis1"].name[:9]]) + "\n")
    out = generate_poller_file(str(listing), poller_file_type="mvm",
                               output_poller_filename="cell.out", skycell_name=CELL)
    lines = out.read_text().split("\n")
    cwd = os.getcwd()
    assert lines == [
        f"isim01a0q_flc.fits,17001,SIM,01,500.0,F555W,UVIS,{CELL},NEW,{cwd}/isim01a0q_flc.fits",
        f"isim01a1q_flc.fits,17001,SIM,01,300.0,F555W,UVIS,{CELL},NEW,{cwd}/isim01a1q_flc.fits"]
    poller = read_mvm_poller(out, check_guiding=False)
    assert poller.skycell == CELL and len(poller.rows) == 2
    assert not list(Path(cwd).glob(".*tmp*"))


def test_errors(work, monkeypatch, tmp_path):
    with pytest.raises(InvalidParameterError, match="needs a sky-cell name"):
        generate_poller_file([work["uvis0"].name], "mvm")
    with pytest.raises(InvalidParameterError, match="not a sky-cell name"):
        generate_poller_file([work["uvis0"].name], "mvm", skycell_name="skycell-p1889x10y6")
    with pytest.raises(InvalidParameterError, match="poller_file_type"):
        generate_poller_file([work["uvis0"].name], "xvm")
    with pytest.raises(InvalidParameterError, match="input_list"):
        generate_poller_file(42)
    with pytest.raises(InvalidInputError, match="cannot read the exposure list"):
        generate_poller_file(str(tmp_path / "absent.txt"))
    monkeypatch.delenv("DATA_PATH")
    with pytest.raises(InvalidInputError, match="isim09zzq: not found .* DATA_PATH is not set"):
        generate_poller_file(["isim09zzq"])
    # found locally: DATA_PATH is not needed
    assert locate_exposure(work["uvis0"].name) == f"{os.getcwd()}/{work['uvis0'].name}"
    header_less = Path("jsim99aaq_flt.fits")
    fits.PrimaryHDU().writeto(header_less)
    with pytest.raises(InvalidInputError, match="jsim99aaq_flt.fits: primary header has no PROPOSID"):
        generate_poller_file([header_less.name])


def test_data_path_file_names(work):
    """A file name (not only a rootname) is found in the $DATA_PATH cache (drizzlepac never finds it)."""
    assert locate_exposure(work["ir1"].name) == str(work["ir1"])
    assert locate_exposure("isim02zzq_flt.fits") is None


def test_poller_command_per_cell(work, exposures, capsys):
    """``hapgpu poller FILES --type mvm -o DIR``: one <skycell>_input.out per cell touched."""
    code = main(["poller", work["uvis0"].name, work["uvis1"].name, "--type", "mvm", "-o", "pollers"])
    assert code == 0
    first = Path("pollers") / f"{CELL}_input.out"
    second = Path("pollers") / f"{OTHER_CELL}_input.out"
    assert capsys.readouterr().out == f"{first}\n{second}\n"
    cwd = os.getcwd()
    assert [line.split(",")[0] for line in first.read_text().split("\n")] == [
        "isim01a0q_flc.fits", "isim01a1q_flc.fits"]
    # the first exposure alone reaches the neighbouring cell (tests/skycells/test_search.py)
    assert second.read_text() == (f"isim01a0q_flc.fits,17001,SIM,01,500.0,F555W,UVIS,{OTHER_CELL},"
                                  f"NEW,{cwd}/isim01a0q_flc.fits")
    # one poller for a named cell, and the SVM poller
    assert main(["poller", work["uvis0"].name, "-t", "mvm", "-s", CELL, "-o", "one.out"]) == 0
    assert Path("one.out").read_text().split(",")[7:9] == [CELL, "NEW"]
    assert main(["poller", work["uvis0"].name, work["uvis1"].name]) == 0
    assert capsys.readouterr().out.endswith("poller_file.out\n")
    assert len(Path("poller_file.out").read_text().split("\n")) == 2
    capsys.readouterr()
    assert main(["poller", work["uvis0"].name, "-t", "mvm", "-s", "p1889x10y06"]) == 1
    assert "not a sky-cell name" in capsys.readouterr().err
    assert main(["poller"]) == 1
    assert "no exposures" in capsys.readouterr().err


def test_skycells_command_one_line_per_cell(work, capsys):
    """``hapgpu skycells FILES``: one line per cell, the name followed by its member files."""
    assert main(["skycells", work["uvis0"].name, work["uvis1"].name]) == 0
    assert capsys.readouterr().out == (
        f"{CELL} {work['uvis0'].name} {work['uvis1'].name}\n{OTHER_CELL} {work['uvis0'].name}\n")


# ------------------------------------------------------------------ drizzlepac as the oracle

oracle = [pytest.mark.reference, pytest.mark.slow,
          pytest.mark.filterwarnings("ignore::ResourceWarning"),
          pytest.mark.filterwarnings("ignore::DeprecationWarning"),
          pytest.mark.filterwarnings("ignore::astropy.utils.exceptions.AstropyWarning")]


def _apply(marks):
    def decorate(func):
        for mark in marks:
            func = mark(func)
        return func
    return decorate


@_apply(oracle)
@pytest.mark.parametrize("kind, cell", [("svm", None), ("mvm", CELL)])
def test_poller_files_byte_equal_drizzlepac(work, kind, cell):
    from drizzlepac.haputils import make_poller_files

    # drizzlepac cannot find a file *name* in $DATA_PATH (see test_data_path_file_names)
    entries = [e for e in _entries(work) if e != "isim09zzq_flc.fits"]
    listing = Path("list.txt")
    listing.write_text("\n".join(entries))
    with contextlib.redirect_stdout(io.StringIO()):
        make_poller_files.generate_poller_file(str(listing), poller_file_type=kind,
                                               output_poller_filename="ref.out",
                                               skycell_name=cell)
    generate_poller_file(str(listing), kind, "ours.out", skycell_name=cell)
    assert Path("ours.out").read_bytes() == Path("ref.out").read_bytes()
    # a Python list gives the same
    generate_poller_file(entries, kind, "ours_list.out", skycell_name=cell)
    assert Path("ours_list.out").read_bytes() == Path("ref.out").read_bytes()
