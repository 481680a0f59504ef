"""Astrometric reference catalogues: one provider interface, a local file and the STScI service.

A provider is called as ``provider(ra, dec, radius, epoch, name)`` and returns an
:class:`astropy.table.Table` with the standard columns of drizzlepac's
``create_astrometric_catalog`` (§3.9 of the HAP specification):

=================  =================================================================
``RA, DEC``        position at ``epoch`` (proper motions applied), degrees
``RA_error``       position errors, mas (NaN when the catalogue has none)
``DEC_error``
``pmra, pmdec``    proper motion, mas/yr (``pmra`` includes cos(dec)); NaN when absent
``mag``            magnitude
``objID``          catalogue identifier
``epoch``          decimal year of the catalogue positions before propagation
=================  =================================================================

rows sorted from the faintest to the brightest, ``meta['catalog']`` naming the catalogue,
``meta['epoch']`` the requested epoch and ``meta['converted'] = True``.

:class:`ServiceCatalog` speaks the STScI catalog web service API
(``<url>/vo/CatalogSearch.aspx?RA=&DEC=&SR=&FORMAT=CSV&CAT=&MINDET=5&EPOCH=``); the default URL
is ``$ASTROMETRIC_CATALOG_URL``, else ``http://gsss.stsci.edu/webservices``. Every request has a
timeout; a reply starting with ``Error`` is retried once without ``EPOCH``; a service that
cannot be reached is not asked again in the same run. :class:`FileCatalog` reads ECSV, FITS or
CSV tables and does the cone selection and the proper-motion propagation itself.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
from astropy.io.registry import IORegistryError
from astropy.table import Table
from astropy.time import Time

from ..errors import CatalogUnavailableError, InvalidInputError, InvalidParameterError

__all__ = [
    "CATALOG_URL_ENVVAR",
    "DEFAULT_CATALOG_URL",
    "STANDARD_COLUMNS",
    "SUPPORTED_CATALOGS",
    "CatalogProvider",
    "FileCatalog",
    "ServiceCatalog",
    "TableCatalog",
    "apply_proper_motion",
    "make_provider",
    "standardize_catalog",
]

log = logging.getLogger(__name__)

CATALOG_URL_ENVVAR = "ASTROMETRIC_CATALOG_URL"
DEFAULT_CATALOG_URL = "http://gsss.stsci.edu/webservices"
#: Seconds allowed for each request (connection and each read) to the catalogue service.
DEFAULT_TIMEOUT = 10.0

STANDARD_COLUMNS = ("RA", "DEC", "RA_error", "DEC_error", "pmra", "pmdec", "mag", "objID",
                    "epoch")

#: Column names of the service's replies per catalogue (drizzlepac's ``SUPPORTED_CATALOGS``);
#: ``None`` marks a column the catalogue does not have. 2MASS gives ``jdate`` (JD) and PS1
#: ``epochMean`` (MJD) instead of a decimal-year epoch.
SUPPORTED_CATALOGS = {
    "GAIAEDR3": {"RA": "ra", "DEC": "dec", "RA_error": "ra_error", "DEC_error": "dec_error",
                 "pmra": "pmra", "pmdec": "pmdec", "mag": "mag", "objID": "objID",
                 "epoch": "epoch"},
    "GSC242": {"RA": "ra", "DEC": "dec", "RA_error": "raErr", "DEC_error": "decErr",
               "pmra": "rapm", "pmdec": "decpm", "mag": "mag", "objID": "objID",
               "epoch": "epoch"},
    "2MASS": {"RA": "ra", "DEC": "dec", "RA_error": None, "DEC_error": None, "pmra": None,
              "pmdec": None, "mag": "mag", "objID": "objid", "epoch": "jdate"},
    "PS1DR2": {"RA": "ra", "DEC": "dec", "RA_error": "raMeanErr", "DEC_error": "decMeanErr",
               "pmra": None, "pmdec": None, "mag": "mag", "objID": "objid",
               "epoch": "epochMean"},
}
for _alias, _same in (("GAIADR3", "GAIAEDR3"), ("GAIADR2", "GAIAEDR3"), ("GAIADR1", "GAIAEDR3"),
                      ("GSC241", "GSC242"), ("PS1BEST", "PS1DR2")):
    SUPPORTED_CATALOGS[_alias] = SUPPORTED_CATALOGS[_same]

# Alternative spellings accepted in local files, per standard column (case-insensitive).
_FILE_ALIASES = {
    "RA": ("ra", "raj2000", "ra_icrs", "alpha"),
    "DEC": ("dec", "dej2000", "decj2000", "dec_icrs", "delta"),
    "RA_error": ("ra_error", "raerr", "e_ra", "ra_err", "ramean_err", "rameanerr"),
    "DEC_error": ("dec_error", "decerr", "e_dec", "dec_err", "decmeanerr"),
    "pmra": ("pmra", "rapm", "pm_ra"),
    "pmdec": ("pmdec", "decpm", "pm_dec"),
    "mag": ("mag", "phot_g_mean_mag", "gmag", "g", "magnitude"),
    "objID": ("objid", "source_id", "id", "designation"),
    "epoch": ("epoch", "ref_epoch", "jdate", "epochmean"),
}
_MINDET = 5
#: What astropy's table readers raise on unreadable input.
_READ_ERRORS = (OSError, ValueError, TypeError, KeyError, IndexError, UnicodeDecodeError,
                IORegistryError)
_DETECTION_COLUMNS = ("ndetections", "ndet", "n_det", "nobs")


class CatalogProvider:
    """Base of the reference-catalogue providers.

    Subclasses implement :meth:`query`; calling the provider runs it.
    """

    #: Human-readable description used in log lines.
    description = "reference catalogue"

    def __call__(self, ra: float, dec: float, radius: float, epoch: float | None,
                 name: str) -> Table:
        """Return the standardised catalogue of a cone.

        Parameters
        ----------
        ra, dec : float
            Centre of the cone, degrees.
        radius : float
            Radius of the cone, degrees.
        epoch : float or None
            Decimal year the positions are wanted at; None keeps the catalogue's epoch.
        name : str
            Catalogue name (``GAIAeDR3``, ``GSC242``, ``2MASS``, ...).

        Returns
        -------
        astropy.table.Table
            :data:`STANDARD_COLUMNS`, faintest first.

        Raises
        ------
        CatalogUnavailableError
            When the catalogue cannot be obtained.
        """
        return self.query(float(ra), float(dec), float(radius), epoch, str(name))

    def query(self, ra, dec, radius, epoch, name) -> Table:  # pragma: no cover - abstract
        raise NotImplementedError


# ----------------------------------------------------------------------------- columns


def _to_decimal_year(values: np.ndarray) -> np.ndarray:
    """Epochs as decimal years; JD (> 2400000) and MJD (> 10000) are converted."""
    values = np.asarray(values, dtype=float)
    out = values.copy()
    finite = np.isfinite(values)
    if not finite.any():
        return out
    sample = values[finite][0]
    fmt = "jd" if sample > 2400000 else ("mjd" if sample > 10000 else None)
    if fmt is not None:
        out[finite] = Time(values[finite], format=fmt).decimalyear
    return out


def _float_column(table: Table, name: str | None) -> np.ndarray:
    if name is None or name not in table.colnames:
        return np.full(len(table), np.nan)
    values = np.ma.asarray(table[name]).astype(float)
    return np.asarray(np.ma.filled(values, np.nan), dtype=float)


def standardize_catalog(table: Table, columns: dict, name: str) -> Table:
    """Rename a catalogue's columns to :data:`STANDARD_COLUMNS`.

    Parameters
    ----------
    table : astropy.table.Table
        The catalogue as read.
    columns : dict
        Standard name -> column name in ``table`` (None for a missing column).
    name : str
        Catalogue name, stored in ``meta['catalog']``.

    Returns
    -------
    astropy.table.Table
        A new table; missing columns are NaN, ``epoch`` is converted to decimal years.

    Raises
    ------
    InvalidInputError
        When RA or DEC is missing or not numeric.
    """
    if columns.get("RA") not in table.colnames or columns.get("DEC") not in table.colnames:
        raise InvalidInputError(f"catalogue {name!r} has no RA/DEC columns "
                                f"(columns: {', '.join(table.colnames) or 'none'})")
    out = Table()
    try:
        out["RA"] = _float_column(table, columns["RA"]) % 360.0
        out["DEC"] = _float_column(table, columns["DEC"])
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"catalogue {name!r}: RA/DEC are not numbers ({exc})") from exc
    for key in ("RA_error", "DEC_error", "pmra", "pmdec", "mag"):
        try:
            out[key] = _float_column(table, columns.get(key))
        except (TypeError, ValueError):
            out[key] = np.full(len(table), np.nan)
    ident = columns.get("objID")
    if ident is not None and ident in table.colnames:
        out["objID"] = np.asarray(table[ident]).astype(str)
    else:
        out["objID"] = np.arange(1, len(table) + 1).astype(str)
    try:
        out["epoch"] = _to_decimal_year(_float_column(table, columns.get("epoch")))
    except (TypeError, ValueError):
        out["epoch"] = np.full(len(table), np.nan)
    keep = np.isfinite(out["RA"]) & np.isfinite(out["DEC"])
    out = out[keep]
    out.meta["catalog"] = name
    out.meta["converted"] = True
    return out


def apply_proper_motion(table: Table, epoch: float | None) -> Table:
    """Move positions from each row's ``epoch`` to ``epoch`` with its proper motion.

    ``dRA = pmra * dt / cos(dec)``, ``dDEC = pmdec * dt`` (pm in mas/yr, ``pmra`` including
    cos(dec), converted from mas to degrees), as in §4 of the HAP specification. Rows without
    a finite proper motion or epoch are left as they are.

    Parameters
    ----------
    table : astropy.table.Table
        Standardised catalogue (modified in place).
    epoch : float or None
        Target decimal year; None does nothing.

    Returns
    -------
    astropy.table.Table
        ``table``.
    """
    if epoch is None or len(table) == 0:
        return table
    dt = float(epoch) - np.asarray(table["epoch"], dtype=float)
    pmra = np.asarray(table["pmra"], dtype=float)
    pmdec = np.asarray(table["pmdec"], dtype=float)
    move = np.isfinite(dt) & np.isfinite(pmra) & np.isfinite(pmdec)
    if move.any():
        dec = np.asarray(table["DEC"], dtype=float)
        cosd = np.cos(np.radians(dec[move]))
        table["RA"][move] = (table["RA"][move] + pmra[move] * dt[move] / 3.6e6 / cosd) % 360.0
        table["DEC"][move] = dec[move] + pmdec[move] * dt[move] / 3.6e6
        table["epoch"][move] = float(epoch)
    return table


def _cone(table: Table, ra: float, dec: float, radius: float) -> Table:
    if len(table) == 0:
        return table
    r1, d1 = np.radians(ra), np.radians(dec)
    r2, d2 = np.radians(np.asarray(table["RA"])), np.radians(np.asarray(table["DEC"]))
    cos_sep = np.sin(d1) * np.sin(d2) + np.cos(d1) * np.cos(d2) * np.cos(r2 - r1)
    sep = np.degrees(np.arccos(np.clip(cos_sep, -1.0, 1.0)))
    return table[sep <= radius]


def _finish(table: Table, name: str, epoch: float | None) -> Table:
    """Sort faintest to brightest (NaN magnitudes first) and fill the meta."""
    if len(table):
        mags = np.asarray(table["mag"], dtype=float)
        key = np.where(np.isfinite(mags), mags, np.inf)
        table = table[np.argsort(-key, kind="stable")]
    table.meta["catalog"] = name
    table.meta["epoch"] = epoch
    table.meta["converted"] = True
    return table


# ----------------------------------------------------------------------------- providers


class TableCatalog(CatalogProvider):
    """A catalogue already in memory (an astropy Table with at least RA/DEC columns).

    Parameters
    ----------
    table : astropy.table.Table
    name : str, optional
        Catalogue name when the table's meta does not carry one.
    """

    description = "in-memory table"

    def __init__(self, table: Table, name: str | None = None):
        if not isinstance(table, Table):
            raise InvalidParameterError("TableCatalog needs an astropy Table")
        self._table = table
        self.name = name or table.meta.get("catalog") or table.meta.get("CATALOG")
        lower = {c.lower() for c in table.colnames}
        if not any(a in lower for a in ("ra",) + _FILE_ALIASES["RA"]) or \
                not any(a in lower for a in ("dec",) + _FILE_ALIASES["DEC"]):
            raise InvalidInputError(f"{self._source()}: no RA/DEC columns (columns: "
                                    f"{', '.join(table.colnames) or 'none'})")

    def __repr__(self) -> str:
        return f"TableCatalog(n_rows={len(self._table)}, name={self.name!r})"

    def _source(self) -> str:
        return "reference catalogue table"

    def _standard(self, name: str) -> Table:
        lower = {c.lower(): c for c in self._table.colnames}
        columns = {}
        for key, aliases in _FILE_ALIASES.items():
            columns[key] = next((lower[a] for a in (key.lower(),) + aliases if a in lower),
                                None)
        table = self._table
        ndet = next((lower[a] for a in _DETECTION_COLUMNS if a in lower), None)
        if ndet is not None:
            table = table[_float_column(table, ndet) >= _MINDET]
        return standardize_catalog(table, columns, name)

    def query(self, ra, dec, radius, epoch, name):
        label = self.name or name
        table = apply_proper_motion(self._standard(label), epoch)
        return _finish(_cone(table, ra, dec, radius), label, epoch)


class FileCatalog(TableCatalog):
    """A local catalogue file: ECSV, FITS table or CSV with RA/DEC columns.

    Column names are matched case-insensitively, with common alternatives (``ra_error`` or
    ``raErr``, ``pmra`` or ``rapm``, ``source_id``, ...); only RA and DEC are required.
    Sources with fewer than 5 detections are dropped when a detection-count column exists (the
    service's ``MINDET=5``).

    Parameters
    ----------
    path : str or pathlib.Path
    name : str, optional
        Catalogue name (default: the table's ``meta['catalog']``, else the name asked for).

    Raises
    ------
    InvalidInputError
        When the file is missing or cannot be read as a table.
    """

    description = "catalogue file"

    def __init__(self, path, name: str | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise InvalidInputError(f"reference catalogue {str(self.path)!r} does not exist")
        table = _read_table_file(self.path)
        super().__init__(table, name)

    def __repr__(self) -> str:
        return f"FileCatalog({str(self.path)!r})"

    def _source(self) -> str:
        return f"reference catalogue {str(self.path)!r}"


def _read_table_file(path: Path) -> Table:
    name = path.name.lower()
    if name.endswith(".ecsv"):
        formats = ["ascii.ecsv"]
    elif name.endswith((".fits", ".fit", ".fits.gz", ".fts")):
        formats = ["fits"]
    elif name.endswith(".csv"):
        formats = ["ascii.csv"]
    else:
        formats = [None, "ascii.csv", "ascii"]
    errors = []
    for fmt in formats:
        try:
            table = Table.read(path, format=fmt) if fmt else Table.read(path)
            return table
        except _READ_ERRORS as exc:
            errors.append(f"{fmt or 'auto'}: {exc}")
    raise InvalidInputError(f"cannot read reference catalogue {str(path)!r} as a table "
                            f"({'; '.join(errors)})")


class ServiceCatalog(CatalogProvider):
    """The STScI astrometric catalog web service (or anything speaking its API).

    ``GET <url>/vo/CatalogSearch.aspx?RA=<deg>&DEC=<deg>&SR=<deg>&FORMAT=CSV&CAT=<name>
    &MINDET=5&EPOCH=<yyyy.yyy>``. The reply is CSV after one header line; a reply whose first
    line starts with ``Error`` is retried once without ``EPOCH``. The columns are renamed with
    :data:`SUPPORTED_CATALOGS` (unknown catalogue names are matched like a local file's).

    Parameters
    ----------
    url : str, optional
        Base URL; default ``$ASTROMETRIC_CATALOG_URL`` or :data:`DEFAULT_CATALOG_URL`.
    timeout : float, optional
        Seconds allowed for connecting and for each read of a request.

    Notes
    -----
    After a connection failure or a timeout the provider is marked unreachable and later
    queries fail at once, so a visit with three catalogues waits at most one timeout.
    """

    description = "catalogue service"

    def __init__(self, url: str | None = None, timeout: float = DEFAULT_TIMEOUT):
        url = url or os.environ.get(CATALOG_URL_ENVVAR) or DEFAULT_CATALOG_URL
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InvalidParameterError(f"catalogue service URL must be http(s)://..., "
                                        f"got {url!r}")
        if not timeout > 0:
            raise InvalidParameterError(f"timeout must be positive, got {timeout!r}")
        self.url = url.rstrip("/")
        self.timeout = float(timeout)
        self._unreachable: str | None = None

    def __repr__(self) -> str:
        return f"ServiceCatalog({self.url!r}, timeout={self.timeout})"

    def request_url(self, ra, dec, radius, epoch, name) -> str:
        """The query URL of a cone (``epoch`` None omits ``EPOCH``)."""
        spec = (f"RA={ra}&DEC={dec}&SR={radius}&FORMAT=CSV&CAT={urllib.parse.quote(name)}"
                f"&MINDET={_MINDET}")
        if epoch is not None:
            spec += f"&EPOCH={epoch:.3f}"
        return f"{self.url}/vo/CatalogSearch.aspx?{spec}"

    def _resolve(self) -> None:
        """Resolve the host name within the timeout (``urlopen``'s timeout does not cover
        name resolution, which can hang on a machine without network)."""
        host = urllib.parse.urlparse(self.url).hostname
        outcome: list = []

        def lookup():
            try:
                socket.getaddrinfo(host, None)
                outcome.append(None)
            except OSError as exc:
                outcome.append(exc)

        worker = threading.Thread(target=lookup, daemon=True)
        worker.start()
        worker.join(self.timeout)
        if not outcome or outcome[0] is not None:
            reason = "name lookup timed out" if not outcome else outcome[0]
            self._unreachable = f"catalogue service {self.url} unreachable ({reason})"
            raise CatalogUnavailableError(self._unreachable)

    def _get(self, url: str) -> str:
        if self._unreachable is not None:
            raise CatalogUnavailableError(self._unreachable)
        self._resolve()
        request = urllib.request.Request(url, headers={"Content-Type": "text/csv"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                return reply.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as exc:
            raise CatalogUnavailableError(
                f"catalogue service {self.url} answered HTTP {exc.code} ({exc.reason})") \
                from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            self._unreachable = f"catalogue service {self.url} unreachable ({reason})"
            raise CatalogUnavailableError(self._unreachable) from None

    def query(self, ra, dec, radius, epoch, name):
        text = self._get(self.request_url(ra, dec, radius, epoch, name))
        lines = text.replace("\r\n", "\n").split("\n")
        if lines and lines[0].startswith("Error") and epoch is not None:
            log.warning("catalogue service error for %s with EPOCH (%s); retrying without EPOCH",
                        name, lines[0].strip()[:120])
            text = self._get(self.request_url(ra, dec, radius, None, name))
            lines = text.replace("\r\n", "\n").split("\n")
        if not lines or lines[0].startswith("Error"):
            raise CatalogUnavailableError(
                f"catalogue service {self.url} returned an error for {name}: "
                f"{(lines[0] if lines else '').strip()[:200]}")
        body = [line for line in lines[1:] if line.strip()]
        if not body:
            raise CatalogUnavailableError(f"catalogue service {self.url} sent an empty reply "
                                          f"for {name}")
        if len(body) == 1:
            table = Table(names=[c.strip() for c in body[0].split(",")])
        else:
            try:
                table = Table.read(body, format="ascii.csv")
            except _READ_ERRORS as exc:
                raise CatalogUnavailableError(
                    f"catalogue service {self.url}: unreadable CSV for {name} ({exc})") \
                    from None
        columns = SUPPORTED_CATALOGS.get(name.upper())
        if columns is None:
            standard = TableCatalog(table, name)._standard(name)
        else:
            try:
                standard = standardize_catalog(table, columns, name)
            except InvalidInputError as exc:
                raise CatalogUnavailableError(f"catalogue service {self.url}: {exc}") from None
        standard = apply_proper_motion(standard, epoch)
        return _finish(standard, name, epoch)


def make_provider(refcat=None, *, timeout: float = DEFAULT_TIMEOUT) -> CatalogProvider:
    """Turn the ``refcat`` argument of :func:`hapgpu.align.align_exposures` into a provider.

    Parameters
    ----------
    refcat : None, str, pathlib.Path, astropy.table.Table or CatalogProvider
        None: the service at ``$ASTROMETRIC_CATALOG_URL`` (or STScI's); an ``http(s)://`` URL:
        a service there; another string or a path: a local file; a Table: that table.
    timeout : float, keyword-only
        Service timeout, seconds.

    Returns
    -------
    CatalogProvider

    Raises
    ------
    InvalidInputError
        For a missing or unreadable file.
    InvalidParameterError
        For an unusable argument.
    """
    if refcat is None:
        return ServiceCatalog(timeout=timeout)
    if isinstance(refcat, CatalogProvider):
        return refcat
    if isinstance(refcat, Table):
        return TableCatalog(refcat)
    if isinstance(refcat, (str, os.PathLike)):
        text = str(refcat)
        if text.lower().startswith(("http://", "https://")):
            return ServiceCatalog(text, timeout=timeout)
        return FileCatalog(text)
    if callable(refcat):
        return _CallableCatalog(refcat)
    raise InvalidParameterError(
        f"refcat must be None, a file path, an http(s) URL, a Table or a provider; got "
        f"{type(refcat).__name__}")


class _CallableCatalog(CatalogProvider):
    """Wrap a plain function ``(ra, dec, radius, epoch, name) -> Table``."""

    description = "catalogue function"

    def __init__(self, func):
        self._func = func

    def query(self, ra, dec, radius, epoch, name):
        table = self._func(ra, dec, radius, epoch, name)
        if not isinstance(table, Table):
            raise CatalogUnavailableError(f"catalogue function returned {type(table).__name__}, "
                                          "not an astropy Table")
        provider = TableCatalog(table, table.meta.get("catalog") or name)
        return provider.query(ra, dec, radius, epoch, name)


def field_of(wcs_list) -> tuple[float, float, float]:
    """Centre and radius (degrees) of the cone covering a set of chip footprints.

    Parameters
    ----------
    wcs_list : sequence of astropy.wcs.WCS
        Chip WCSs with ``pixel_shape`` set.

    Returns
    -------
    (ra, dec, radius) : tuple of float
        Centre (mean direction of the corners) and the largest centre-to-corner separation.
    """
    vectors = []
    for wcs in wcs_list:
        nx, ny = wcs.pixel_shape
        xs = np.array([0.5, nx + 0.5, nx + 0.5, 0.5]) - 1.0
        ys = np.array([0.5, 0.5, ny + 0.5, ny + 0.5]) - 1.0
        ra, dec = wcs.all_pix2world(xs, ys, 0)
        r, d = np.radians(ra), np.radians(dec)
        vectors.append(np.column_stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r),
                                        np.sin(d)]))
    v = np.concatenate(vectors)
    centre = v.mean(axis=0)
    centre /= np.linalg.norm(centre)
    radius = float(np.degrees(np.arccos(np.clip(v @ centre, -1.0, 1.0))).max())
    ra = math.degrees(math.atan2(centre[1], centre[0])) % 360.0
    dec = math.degrees(math.asin(centre[2]))
    return ra, dec, radius
