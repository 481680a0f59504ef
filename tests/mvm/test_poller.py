"""The MVM poller (hap-pipeline.md §2.3): columns, NEW/OLD, switches, viability, guiding."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from hapgpu.errors import InvalidInputError, InvalidParameterError, NoUsableInputError
from hapgpu.mvm import NoViableDataError, mvm_switches, read_mvm_poller, verify_guiding
from hapgpu.mvm._guiding import lines_in_image

from ._poller_inputs import CELL, OTHER_CELL, mvm_line, svm_copy, write_mvm_poller


@pytest.fixture
def visit(exposures, tmp_path):
    """SVM-named copies of the simulated exposures in tmp_path/in."""
    return {key: svm_copy(path, tmp_path / "in") for key, path in exposures.items()}


def _poller(tmp_path, lines, name="cell_input.out"):
    return write_mvm_poller(tmp_path / name, lines)


def test_rows_old_rows_and_all_exposures(visit, tmp_path):
    lines = [mvm_line(visit["uvis0"]), mvm_line(visit["uvis1"]),
             mvm_line(visit["ir0"], flag="OLD"), mvm_line(visit["ir1"], flag="new")]
    poller = read_mvm_poller(_poller(tmp_path, lines), check_guiding=False)
    assert poller.skycell == CELL
    assert [r.filename for r in poller.rows] == [visit[k].name for k in ("uvis0", "uvis1", "ir1")]
    assert [r.filename for r in poller.old_rows] == [visit["ir0"].name]
    assert poller.all_mvm_exposures == tuple(visit[k] for k in ("uvis0", "uvis1", "ir0", "ir1"))
    row = poller.rows[0]
    assert (row.proposal_id, row.program_id, row.obset_id, row.exptime) == (17001, "SIM", "01", 500.0)
    assert (row.detector, row.filters, row.skycell, row.new, row.line) == ("UVIS", "F555W", CELL,
                                                                          True, 1)
    assert (row.ipppssoo, row.instrument, row.filetype) == ("isim01a0", "WFC3", "flc")
    assert row.source == visit["uvis0"] and row.source.is_absolute()
    assert poller.dropped == () and not poller.only_cte and poller.include_small


def test_column_count_is_ten(visit, tmp_path):
    good = mvm_line(visit["uvis0"])
    short = ",".join(mvm_line(visit["uvis1"]).split(",")[:8])
    path = _poller(tmp_path, [good, short])
    with pytest.raises(InvalidInputError, match=r"cell_input\.out, line 2: 8 columns.*10"):
        read_mvm_poller(path, check_guiding=False)
    path = _poller(tmp_path, [good + ",extra"], "eleven.out")
    with pytest.raises(InvalidInputError, match=r"eleven\.out, line 1: 11 columns"):
        read_mvm_poller(path, check_guiding=False)


@pytest.mark.parametrize("flag, hint", [("0", "use NEW instead of 0"), ("1", "use OLD instead of 1"),
                                        ("maybe", "holds NEW or OLD")])
def test_new_old_column_values(visit, tmp_path, flag, hint):
    path = _poller(tmp_path, [mvm_line(visit["uvis0"]), mvm_line(visit["uvis1"], flag=flag)])
    with pytest.raises(InvalidInputError, match=rf"cell_input\.out, line 2: .*{hint}"):
        read_mvm_poller(path, check_guiding=False)


def test_every_row_old_exits_65(visit, tmp_path):
    path = _poller(tmp_path, [mvm_line(visit["uvis0"], flag="OLD"), mvm_line(visit["ir0"], flag="old")])
    with pytest.raises(NoViableDataError, match="every exposure is OLD") as info:
        read_mvm_poller(path, check_guiding=False)
    assert info.value.exit_code == 65 and isinstance(info.value, NoUsableInputError)


def test_only_cte_switch(visit, exposures, tmp_path, monkeypatch):
    flt = svm_copy(exposures["uvis1"], tmp_path / "in", suffix="flt.fits")
    lines = [mvm_line(visit["uvis0"]), mvm_line(flt), mvm_line(visit["ir0"])]
    path = _poller(tmp_path, lines)
    monkeypatch.setenv("MVM_ONLY_CTE", "Yes")
    poller = read_mvm_poller(path, check_guiding=False)
    # UVIS FLT dropped; IR is never CTE-corrected and stays
    assert [r.filename for r in poller.rows] == [visit["uvis0"].name, visit["ir0"].name]
    assert poller.dropped == ((flt.name, "not CTE-corrected and MVM_ONLY_CTE is on"),)
    assert poller.only_cte
    assert len(read_mvm_poller(path, check_guiding=False, only_cte=False).rows) == 3
    with pytest.raises(NoViableDataError, match="no NEW CTE-corrected exposure") as info:
        read_mvm_poller(_poller(tmp_path, [mvm_line(flt)], "flt.out"), check_guiding=False)
    assert info.value.exit_code == 65


def test_include_small_switch(visit, tmp_path, monkeypatch):
    path = _poller(tmp_path, [mvm_line(visit["hrc0"]), mvm_line(visit["uvis0"])])
    assert len(read_mvm_poller(path, check_guiding=False).rows) == 2
    monkeypatch.setenv("MVM_INCLUDE_SMALL", "OFF")
    poller = read_mvm_poller(path, check_guiding=False)
    assert [r.filename for r in poller.rows] == [visit["uvis0"].name]
    assert poller.skycell == CELL and not poller.include_small
    only_hrc = _poller(tmp_path, [mvm_line(visit["hrc0"])], "hrc.out")
    with pytest.raises(NoViableDataError, match="only HRC/SBC") as info:
        read_mvm_poller(only_hrc, check_guiding=False)
    assert info.value.exit_code == 55
    assert len(read_mvm_poller(only_hrc, check_guiding=False, include_small=True).rows) == 1


def test_switch_values(monkeypatch):
    assert mvm_switches({}) == {"MVM_ONLY_CTE": False, "MVM_INCLUDE_SMALL": True}
    assert mvm_switches({"MVM_ONLY_CTE": "TRUE", "MVM_INCLUDE_SMALL": "no"}) == {
        "MVM_ONLY_CTE": True, "MVM_INCLUDE_SMALL": False}
    with pytest.raises(InvalidParameterError, match="MVM_ONLY_CTE='1'"):
        mvm_switches({"MVM_ONLY_CTE": "1"})


def test_mvm_viability_rejects_grism_and_bad_guiding(visit, exposures, tmp_path):
    folder = tmp_path / "bad"
    grism = svm_copy(exposures["uvis1"], folder, FILTER="G280")
    gsfail = svm_copy(exposures["ir1"], folder, QUALITY="GSFAIL")
    lines = [mvm_line(grism), mvm_line(visit["uvis0"]), mvm_line(gsfail)]
    poller = read_mvm_poller(_poller(tmp_path, lines))
    assert [r.filename for r in poller.rows] == [visit["uvis0"].name]
    reasons = dict(poller.dropped)
    assert "Grism/Prism data and MVM processing" in reasons[grism.name]
    assert reasons[gsfail.name] == "bad guiding"
    # nothing viable: exit 65, naming each file and why
    with pytest.raises(NoViableDataError, match=f"{grism.name} .*Grism.*{gsfail.name} \\(bad guiding") as info:
        read_mvm_poller(_poller(tmp_path, [mvm_line(grism), mvm_line(gsfail)], "none.out"))
    assert info.value.exit_code == 65


def test_files_resolved_from_pathname(visit, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    poller_dir = tmp_path / "pollers"
    poller_dir.mkdir()
    path = _poller(poller_dir, [mvm_line(visit["uvis0"])])
    # not in the cwd nor beside the poller: the pathname column is used
    assert read_mvm_poller(path, check_guiding=False).rows[0].source == visit["uvis0"]
    missing = mvm_line(visit["uvis1"], pathname=str(tmp_path / "nowhere" / visit["uvis1"].name))
    path = _poller(poller_dir, [mvm_line(visit["uvis0"]), missing], "missing.out")
    with pytest.raises(InvalidInputError, match=rf"missing\.out, line 2: input file {visit['uvis1'].name} not found"):
        read_mvm_poller(path, check_guiding=False)


def test_sky_cell_of_the_first_usable_row(visit, tmp_path, caplog):
    lines = [mvm_line(visit["ir0"], cell=OTHER_CELL, flag="OLD"), mvm_line(visit["uvis0"]),
             mvm_line(visit["uvis1"], cell=OTHER_CELL)]
    poller = read_mvm_poller(_poller(tmp_path, lines), check_guiding=False)
    # as drizzlepac codes it: every usable row is processed in the first usable row's cell
    assert poller.skycell == CELL
    assert [r.filename for r in poller.rows] == [visit["uvis0"].name, visit["uvis1"].name]
    assert f"names {OTHER_CELL}; processed in {CELL}" in caplog.text


def test_bad_fields(visit, tmp_path):
    line = mvm_line(visit["uvis0"])
    cases = [(line.replace(CELL, "skycell-1889x10y06"), "not a sky-cell name"),
             (line.replace(",17001,", ",17001a,", 1), "proposal_id '17001a' is not an integer"),
             (line.replace(",500.0,", ",long,", 1), "exptime 'long' is not a number"),
             ("isim01a0q.fits" + line[line.index(","):], "not an FLT/FLC exposure name"),
             ("osim01a0q_flt.fits" + line[line.index(","):], "STIS exposure"),
             ]
    for i, (text, message) in enumerate(cases):
        with pytest.raises(InvalidInputError, match=message):
            read_mvm_poller(_poller(tmp_path, [text], f"bad{i}.out"), check_guiding=False)
    with pytest.raises(InvalidInputError, match="already listed on line 1"):
        read_mvm_poller(_poller(tmp_path, [line, line], "twice.out"), check_guiding=False)
    with pytest.raises(InvalidInputError, match="poller file not found"):
        read_mvm_poller(tmp_path / "absent.out")
    with pytest.raises(InvalidParameterError, match="a file name, got list"):
        read_mvm_poller([str(visit["uvis0"])])
    with pytest.raises(NoViableDataError, match="lists no exposures") as info:
        read_mvm_poller(_poller(tmp_path, ["# nothing"], "empty.out"))
    assert info.value.exit_code == 0


# ----------------------------------------------------------------------------- guiding


def _image(shape, sources, *, angle=None, length=60, sigma=2.0, amplitude=300.0, seed=0):
    """Gaussian stars, or trails of ``length`` pixels at ``angle`` degrees, on a noisy sky."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    points = np.zeros(shape)
    steps = [0.0] if angle is None else np.linspace(-length / 2, length / 2, 4 * length)
    for x0, y0 in sources:
        for t in steps:
            x = round(x0 + t * np.cos(np.radians(angle or 0.0)))
            y = round(y0 + t * np.sin(np.radians(angle or 0.0)))
            points[y, x] += amplitude * 2 * np.pi * sigma**2 / (1 if angle is None else 8)
    image = gaussian_filter(points, sigma) + rng.normal(10.0, 1.0, shape)
    return image.astype(np.float32)


def _write(path, image, dq=None, **primary):
    header = fits.Header({"INSTRUME": "WFC3", "EXPTIME": 100.0, **primary})
    sci = fits.ImageHDU(image, name="SCI", ver=1)
    sci.header["BUNIT"] = "ELECTRONS"
    hdus = [fits.PrimaryHDU(header=header), sci]
    if dq is not None:
        hdus.append(fits.ImageHDU(dq, name="DQ", ver=1))
    fits.HDUList(hdus).writeto(path)
    return path


def _positions(n, shape, margin, seed):
    rng = np.random.default_rng(seed)
    return list(zip(rng.uniform(margin, shape[1] - margin, n), rng.uniform(margin, shape[0] - margin, n)))


@pytest.fixture(scope="module")
def guiding_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("guiding")
    shape = (256, 256)
    trailed = _image(shape, _positions(30, shape, 40, 1), angle=30.0)
    stars = _image(shape, _positions(30, shape, 10, 2))
    return {"trailed": _write(folder / "trailed_flt.fits", trailed),
            "stars": _write(folder / "stars_flt.fits", stars),
            "gsfail": _write(folder / "gsfail_flt.fits", stars, QUALITY="GSFAIL  TDF-DOWN"),
            "empty": _write(folder / "empty_flt.fits", np.full(shape, 5.0, np.float32))}


def test_verify_guiding(guiding_files, tmp_path):
    assert verify_guiding(guiding_files["trailed"]) is True
    assert verify_guiding(guiding_files["stars"]) is False
    assert verify_guiding(guiding_files["gsfail"]) is True
    assert verify_guiding(guiding_files["empty"]) is False   # no sources: not checked
    # pixels with DQ bits other than 256..4096 are ignored: flag every trail pixel
    with fits.open(guiding_files["trailed"]) as hdul:
        data = hdul["SCI", 1].data
    flagged = _write(tmp_path / "flagged_flt.fits", data, dq=np.where(data > 12, 4, 256).astype(np.int16))
    assert verify_guiding(flagged) is False
    accepted = _write(tmp_path / "accepted_flt.fits", data,
                      dq=np.where(data > 12, 4096 | 256, 0).astype(np.int16))
    assert verify_guiding(accepted) is True
    with pytest.raises(InvalidInputError, match="no SCI,1 extension"):
        fits.PrimaryHDU().writeto(tmp_path / "nosci_flt.fits")
        verify_guiding(tmp_path / "nosci_flt.fits")


def test_lines_in_image_thresholds():
    # a single straight edge: one or two lines, fewer than MIN_LINES
    image = np.zeros((128, 128))
    image[:, 64:] = 100.0
    assert lines_in_image(image, 1, min_length=33) is False
    # vertical lines (column bleeding) never count
    bars = np.zeros((128, 128))
    for x in range(10, 120, 12):
        bars[10:118, x:x + 4] = 100.0
    assert lines_in_image(bars, 1, min_length=33) is False


pytestmark_reference = [pytest.mark.reference, pytest.mark.slow,
                        pytest.mark.filterwarnings("ignore::ResourceWarning"),
                        pytest.mark.filterwarnings("ignore::astropy.utils.exceptions.AstropyWarning"),
                        pytest.mark.filterwarnings("ignore::UserWarning")]


def _apply(marks):
    def decorate(func):
        for mark in marks:
            func = mark(func)
        return func
    return decorate


@_apply(pytestmark_reference)
def test_verify_guiding_matches_drizzlepac(guiding_files):
    from drizzlepac.haputils import analyze

    for key in ("trailed", "stars", "gsfail", "empty"):
        assert verify_guiding(guiding_files[key]) == bool(analyze.verify_guiding(
            str(guiding_files[key]))), key
