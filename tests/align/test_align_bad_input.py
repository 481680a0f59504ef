"""Bad input: a blank frame, two stars, a catalogue off the field, no catalogue service,
and invalid arguments. Alignment is skipped or fails cleanly and leaves every WCS as it was."""

from __future__ import annotations

import logging
import shutil
import time

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from hapgpu.align import align_exposures
from hapgpu.cli import main
from hapgpu.errors import InvalidInputError, InvalidParameterError

from ._catalog_server import CatalogServer, closed_port_url

_WCS_KEYS = ("WCSNAME", "CRVAL1", "CRVAL2", "CD1_1", "CD1_2", "CD2_1", "CD2_2", "CRPIX1",
             "CRPIX2")


@pytest.fixture()
def exposure(visit_cache, tmp_path):
    """One UVIS exposure (a copy) and its reference catalogue."""
    visit = visit_cache("wfc3-uvis")
    target = tmp_path / visit.files[0].name
    shutil.copy(visit.files[0], target)
    refcat = Table.read(visit.refcat, format="ascii.ecsv")
    return target, refcat


def _wcs_state(name):
    with fits.open(name) as hdul:
        return [tuple(hdul["SCI", c].header[k] for k in _WCS_KEYS) for c in (1, 2)]


def _one_warning(caplog):
    lines = [r for r in caplog.records
             if r.levelno >= logging.WARNING and r.name.startswith("hapgpu.align")]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    return lines[0].getMessage()


def test_blank_frame_has_no_sources(exposure, tmp_path, caplog):
    name, refcat = exposure
    with fits.open(name, mode="update") as hdul:
        for chip in (1, 2):
            hdul["SCI", chip].data[:] = 0.0
    state = _wcs_state(name)
    with caplog.at_level(logging.INFO):
        result = align_exposures([name], refcat=refcat, backend="cpu")
    (exp,) = result.exposures
    assert exp.status == "skipped" and exp.n_sources == 0 and exp.fit_quality == 5
    assert "too few sources" in _one_warning(caplog)
    assert _wcs_state(name) == state


def test_catalogue_of_two_stars_is_skipped(exposure, caplog):
    name, refcat = exposure
    with fits.open(name) as hdul:
        ny, nx = hdul["SCI", 1].data.shape
        ra0, dec0 = WCS(hdul["SCI", 1].header, hdul).all_pix2world(nx / 2, ny / 2, 0)
    distance = np.hypot((refcat["RA"] - ra0) * np.cos(np.radians(dec0)), refcat["DEC"] - dec0)
    two = refcat[np.argsort(distance)[:2]]          # two stars on the chip
    state = _wcs_state(name)
    with caplog.at_level(logging.INFO):
        result = align_exposures([name], refcat=two, backend="cpu")
    assert result.exposures[0].status == "skipped"
    assert not result.attempts
    message = _one_warning(caplog)
    assert "no usable reference catalogue" in message and "2 stars" in message
    assert _wcs_state(name) == state


def test_catalogue_30_arcsec_off_the_field_gives_no_false_fit(exposure, caplog):
    name, refcat = exposure
    shifted = refcat.copy()
    shifted["DEC"] = shifted["DEC"] + 30.0 / 3600.0
    state = _wcs_state(name)
    with caplog.at_level(logging.INFO):
        result = align_exposures([name], refcat=shifted, backend="cpu")
    exp = result.exposures[0]
    assert exp.status != "aligned", exp
    assert all(a.quality == 5 for a in result.attempts)
    _one_warning(caplog)
    assert _wcs_state(name) == state


@pytest.mark.slow
def test_unreachable_and_silent_services_return_within_30_s(exposure, caplog):
    name, refcat = exposure
    state = _wcs_state(name)
    for url in (closed_port_url(), None):
        caplog.clear()
        start = time.monotonic()
        if url is None:
            with CatalogServer(refcat, hang=True) as server, caplog.at_level(logging.INFO):
                result = align_exposures([name], refcat=server.url, backend="cpu")
                asked = len(server.queries)
            assert asked == 1                 # the other catalogues were not attempted
        else:
            with caplog.at_level(logging.INFO):
                result = align_exposures([name], refcat=url, backend="cpu")
        elapsed = time.monotonic() - start
        assert elapsed < 30.0
        assert result.exposures[0].status == "skipped"
        assert "unreachable" in _one_warning(caplog)
        assert _wcs_state(name) == state


def test_invalid_arguments_are_clear_errors(exposure, tmp_path):
    name, refcat = exposure
    with pytest.raises(InvalidParameterError, match="fit_label"):
        align_exposures([name], refcat=refcat, fit_label="BEST")
    with pytest.raises(InvalidInputError, match="missing_flc.fits"):
        align_exposures([tmp_path / "missing_flc.fits"], refcat=refcat)
    with pytest.raises(InvalidParameterError, match="catalogs"):
        align_exposures([name], refcat=refcat, catalogs=[])
    with pytest.raises(InvalidParameterError, match="empty"):
        align_exposures([], refcat=refcat)
    with pytest.raises(InvalidInputError, match="nowhere.ecsv"):
        align_exposures([name], refcat=tmp_path / "nowhere.ecsv")
    other = tmp_path / "other_flc.fits"
    shutil.copy(name, other)
    fits.setval(other, "DETECTOR", value="IR")
    with pytest.raises(InvalidInputError, match="mix"):
        align_exposures([name, other], refcat=refcat)


def test_command_line_reports_bad_input_without_traceback(tmp_path, capsys):
    code = main(["align", str(tmp_path / "missing_flc.fits")])
    assert code == 1
    err = capsys.readouterr().err
    assert "missing_flc.fits" in err and "Traceback" not in err
