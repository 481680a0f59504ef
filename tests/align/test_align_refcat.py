"""Reference catalogues: local files, the catalogue service (loopback), proper motions."""

from __future__ import annotations

import time

import numpy as np
import pytest
from astropy.table import Table

from hapgpu.align import FileCatalog, ServiceCatalog, apply_proper_motion, make_provider
from hapgpu.align._refcat import STANDARD_COLUMNS, TableCatalog, field_of
from hapgpu.errors import CatalogUnavailableError, InvalidInputError, InvalidParameterError

from ._catalog_server import CatalogServer, closed_port_url

RA0, DEC0 = 150.0, -30.0


def _reference(n=40, seed=2, epoch=2016.0):
    """A Gaia-like table around (RA0, DEC0) within 20 arcsec."""
    rng = np.random.default_rng(seed)
    east, north = rng.uniform(-20, 20, (2, n))
    table = Table()
    table["RA"] = RA0 + east / 3600.0 / np.cos(np.radians(DEC0))
    table["DEC"] = DEC0 + north / 3600.0
    table["RA_error"] = rng.uniform(0.05, 1.0, n)
    table["DEC_error"] = rng.uniform(0.05, 1.0, n)
    table["pmra"] = rng.normal(0.0, 20.0, n)
    table["pmdec"] = rng.normal(0.0, 20.0, n)
    table["epoch"] = np.full(n, epoch)
    table["mag"] = rng.uniform(15.0, 21.0, n)
    table["objID"] = np.arange(1000, 1000 + n)
    return table


def _propagated(table, epoch):
    dt = epoch - np.asarray(table["epoch"])
    dec = np.asarray(table["DEC"])
    ra = np.asarray(table["RA"]) + np.asarray(table["pmra"]) * dt / 3.6e6 / np.cos(
        np.radians(dec))
    return ra, dec + np.asarray(table["pmdec"]) * dt / 3.6e6


def _by_id(table):
    order = np.argsort(np.asarray(table["objID"]).astype(int))
    return table[order]


def test_proper_motion_moves_positions_to_the_epoch():
    table = _reference()
    expected_ra, expected_dec = _propagated(table, 2011.5)
    moved = apply_proper_motion(table.copy(), 2011.5)
    # 4.5 yr x ~20 mas/yr: tens of mas, reproduced to 1e-9 arcsec.
    assert np.allclose(moved["RA"], expected_ra, rtol=0, atol=1e-12)
    assert np.allclose(moved["DEC"], expected_dec, rtol=0, atol=1e-12)
    assert np.all(moved["epoch"] == 2011.5)
    shift = np.hypot((moved["RA"] - table["RA"]) * np.cos(np.radians(DEC0)),
                     moved["DEC"] - table["DEC"]) * 3.6e6
    assert shift.max() > 50.0
    unchanged = apply_proper_motion(table.copy(), None)
    assert np.array_equal(unchanged["RA"], table["RA"])


@pytest.mark.parametrize("suffix, fmt", [(".ecsv", "ascii.ecsv"), (".fits", "fits"),
                                         (".csv", "ascii.csv")])
def test_file_catalogue_formats_cone_and_order(tmp_path, suffix, fmt):
    table = _reference()
    path = tmp_path / f"ref{suffix}"
    table.write(path, format=fmt)
    provider = make_provider(str(path))
    assert isinstance(provider, FileCatalog)
    out = provider(RA0, DEC0, 15.0 / 3600.0, 2012.0, "GAIAeDR3")
    assert tuple(out.colnames) == STANDARD_COLUMNS
    assert out.meta["catalog"] == "GAIAeDR3" and out.meta["epoch"] == 2012.0
    # Cone: only the stars within 15 arcsec (after propagation) remain.
    ra, dec = _propagated(table, 2012.0)
    sep = np.hypot((ra - RA0) * np.cos(np.radians(DEC0)), dec - DEC0) * 3600.0
    assert len(out) == int((sep <= 15.0).sum()) > 5
    # Faintest first.
    assert np.all(np.diff(np.asarray(out["mag"])) <= 0)
    inside = _by_id(table[sep <= 15.0])
    got = _by_id(out)
    assert np.allclose(got["RA"], _propagated(inside, 2012.0)[0], atol=1e-12, rtol=0)


def test_file_catalogue_column_aliases_and_minimum_columns(tmp_path):
    table = Table({"raj2000": [RA0, RA0 + 1e-3], "DEJ2000": [DEC0, DEC0 + 1e-3],
                   "phot_g_mean_mag": [18.0, 17.0], "source_id": [5, 6]})
    path = tmp_path / "aliases.csv"
    table.write(path, format="ascii.csv")
    out = FileCatalog(path)(RA0, DEC0, 0.01, 2015.0, "GSC242")
    assert len(out) == 2
    assert list(out["objID"]) == ["5", "6"]
    assert np.all(np.isnan(out["RA_error"])) and np.all(np.isnan(out["pmra"]))
    assert list(out["mag"]) == [18.0, 17.0]


def test_file_catalogue_errors_name_the_file(tmp_path):
    with pytest.raises(InvalidInputError, match="nowhere.ecsv"):
        make_provider(str(tmp_path / "nowhere.ecsv"))
    bad = tmp_path / "garbage.fits"
    bad.write_bytes(b"not a fits file at all")
    with pytest.raises(InvalidInputError, match="garbage.fits"):
        FileCatalog(bad)
    no_radec = tmp_path / "no_radec.ecsv"
    Table({"x": [1.0], "y": [2.0]}).write(no_radec, format="ascii.ecsv")
    with pytest.raises(InvalidInputError, match="no_radec.ecsv.*RA/DEC"):
        FileCatalog(no_radec)
    with pytest.raises(InvalidParameterError):
        make_provider(42)


@pytest.mark.parametrize("catalog", ["GAIAeDR3", "GSC242", "2MASS"])
def test_service_query_and_column_standardisation(catalog):
    table = _reference()
    with CatalogServer(table) as server:
        provider = make_provider(server.url)
        assert isinstance(provider, ServiceCatalog)
        out = provider(RA0, DEC0, 40.0 / 3600.0, 2012.0, catalog)
        query = server.queries[-1]
    assert query["CAT"] == catalog and query["MINDET"] == "5" and query["FORMAT"] == "CSV"
    assert float(query["EPOCH"]) == pytest.approx(2012.0)
    assert float(query["SR"]) == pytest.approx(40.0 / 3600.0)
    assert tuple(out.colnames) == STANDARD_COLUMNS
    assert out.meta["catalog"] == catalog
    assert np.all(np.diff(np.asarray(out["mag"])) <= 0)
    got = _by_id(out)
    expected = _by_id(table)
    assert len(got) == len(expected)
    assert list(got["objID"].astype(int)) == list(expected["objID"])
    if catalog == "2MASS":
        # No proper motions nor errors; JD epochs become decimal years.
        assert np.all(np.isnan(got["pmra"])) and np.all(np.isnan(got["RA_error"]))
        assert np.allclose(got["epoch"], 2016.0, atol=1e-6)
        assert np.allclose(got["RA"], expected["RA"], atol=1e-10, rtol=0)
    else:
        assert np.allclose(got["RA"], _propagated(expected, 2012.0)[0], atol=1e-10, rtol=0)
        assert np.allclose(got["DEC"], _propagated(expected, 2012.0)[1], atol=1e-10, rtol=0)
        assert np.allclose(got["RA_error"], expected["RA_error"])
        assert np.allclose(got["pmdec"], expected["pmdec"])


def test_service_error_reply_is_retried_without_epoch_and_motions_applied_locally():
    table = _reference()
    with CatalogServer(table, error_with_epoch=True) as server:
        out = ServiceCatalog(server.url)(RA0, DEC0, 30.0 / 3600.0, 2011.0, "GAIAeDR3")
        queries = list(server.queries)
    assert len(queries) == 2
    assert "EPOCH" in queries[0] and "EPOCH" not in queries[1]
    got = _by_id(out)
    expected = _by_id(table)
    assert len(got) == len(expected)
    assert np.allclose(got["RA"], _propagated(expected, 2011.0)[0], atol=1e-10, rtol=0)
    assert np.allclose(got["DEC"], _propagated(expected, 2011.0)[1], atol=1e-10, rtol=0)


def test_service_default_url_comes_from_the_environment(monkeypatch):
    table = _reference()
    with CatalogServer(table) as server:
        monkeypatch.setenv("ASTROMETRIC_CATALOG_URL", server.url)
        provider = make_provider(None)
        assert provider.url == server.url
        assert len(provider(RA0, DEC0, 0.01, None, "GAIAeDR3")) == len(table)


def test_unreachable_service_fails_fast_and_is_not_asked_again():
    provider = ServiceCatalog(closed_port_url(), timeout=5.0)
    start = time.monotonic()
    with pytest.raises(CatalogUnavailableError, match="unreachable"):
        provider(RA0, DEC0, 0.01, 2012.0, "GAIAeDR3")
    with pytest.raises(CatalogUnavailableError, match="unreachable"):
        provider(RA0, DEC0, 0.01, 2012.0, "GSC242")
    assert time.monotonic() - start < 5.0


def test_silent_service_times_out():
    with CatalogServer(_reference(), hang=True) as server:
        provider = ServiceCatalog(server.url, timeout=1.0)
        start = time.monotonic()
        with pytest.raises(CatalogUnavailableError):
            provider(RA0, DEC0, 0.01, 2012.0, "GAIAeDR3")
        with pytest.raises(CatalogUnavailableError):
            provider(RA0, DEC0, 0.01, 2012.0, "GSC242")
        elapsed = time.monotonic() - start
    assert 0.9 < elapsed < 5.0


def test_service_url_and_timeout_are_validated():
    with pytest.raises(InvalidParameterError, match="URL"):
        ServiceCatalog("ftp://example.org")
    with pytest.raises(InvalidParameterError, match="timeout"):
        ServiceCatalog("http://127.0.0.1:1", timeout=0)


def test_in_memory_table_and_field_of_chips():
    from astropy.wcs import WCS

    provider = make_provider(_reference())
    assert isinstance(provider, TableCatalog)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [RA0, DEC0]
    wcs.wcs.crpix = [50.5, 50.5]
    wcs.wcs.cd = np.array([[-1.0, 0.0], [0.0, 1.0]]) / 3600.0 * 0.1
    wcs.pixel_shape = (100, 100)
    ra, dec, radius = field_of([wcs])
    assert ra == pytest.approx(RA0) and dec == pytest.approx(DEC0)
    assert radius * 3600.0 == pytest.approx(np.hypot(5.0, 5.0), rel=1e-3)


def test_unresolvable_host_is_unreachable_without_a_long_wait():
    provider = ServiceCatalog("http://catalogue.invalid/webservices", timeout=3.0)
    start = time.monotonic()
    with pytest.raises(CatalogUnavailableError, match="unreachable"):
        provider(RA0, DEC0, 0.01, 2012.0, "GAIAeDR3")
    assert time.monotonic() - start < 4.0
