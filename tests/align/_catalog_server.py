"""A loopback HTTP server speaking the STScI catalog web service API, for the tests.

``GET /vo/CatalogSearch.aspx?RA=&DEC=&SR=&FORMAT=CSV&CAT=&MINDET=5[&EPOCH=]`` answers with one
header line and a CSV table (CRLF line ends, as the real service) of the stars of a reference
table inside the cone, with the column names of the requested catalogue (``GAIAeDR3``:
``ra, dec, ra_error, ...``; ``GSC242``: ``raErr, rapm, ...``; ``2MASS``: ``objid, jdate``);
with ``EPOCH`` the positions are propagated with the proper motions, as the service does.
Options make it answer ``Error`` to queries with ``EPOCH`` or never answer at all.
It listens on 127.0.0.1 only, on an ephemeral port.
"""

from __future__ import annotations

import http.server
import math
import threading
import urllib.parse

import numpy as np
from astropy.table import Table
from astropy.time import Time

_NAMES = {
    "GAIAEDR3": ("ra", "dec", "ra_error", "dec_error", "pmra", "pmdec", "pmra_error",
                 "pmdec_error", "mag", "objID", "epoch"),
    "GSC242": ("ra", "dec", "raErr", "decErr", "rapm", "decpm", "rapmErr", "decpmErr", "mag",
               "objID", "epoch"),
    "2MASS": ("ra", "dec", None, None, None, None, None, None, "mag", "objid", "jdate"),
}
_STANDARD = ("RA", "DEC", "RA_error", "DEC_error", "pmra", "pmdec", "pmra_error", "pmdec_error",
             "mag", "objID", "epoch")


def _cone(table: Table, ra: float, dec: float, sr: float) -> Table:
    r1, d1 = math.radians(ra), math.radians(dec)
    r2 = np.radians(np.asarray(table["RA"], dtype=float))
    d2 = np.radians(np.asarray(table["DEC"], dtype=float))
    cos_sep = np.sin(d1) * np.sin(d2) + np.cos(d1) * np.cos(d2) * np.cos(r2 - r1)
    return table[np.degrees(np.arccos(np.clip(cos_sep, -1, 1))) <= sr]


def catalog_csv(table: Table, catalog: str, ra: float, dec: float, sr: float,
                epoch: float | None) -> str:
    """The service's reply body for one query."""
    names = _NAMES.get(catalog.upper(), _NAMES["GAIAEDR3"])
    rows = _cone(table, ra, dec, sr)
    ra_v = np.asarray(rows["RA"], dtype=float).copy()
    dec_v = np.asarray(rows["DEC"], dtype=float).copy()
    ep = np.asarray(rows["epoch"], dtype=float).copy()
    if epoch is not None and names[4] is not None:
        dt = epoch - ep
        pmra = np.asarray(rows["pmra"], dtype=float)
        pmdec = np.asarray(rows["pmdec"], dtype=float)
        ra_v = ra_v + pmra * dt / 3.6e6 / np.cos(np.radians(dec_v))
        dec_v = dec_v + pmdec * dt / 3.6e6
        ep = np.full(ep.size, epoch)
    columns = {"RA": ra_v, "DEC": dec_v, "epoch": ep}
    header = []
    data = []
    for standard, name in zip(_STANDARD, names):
        if name is None:
            continue
        if standard in columns:
            values = columns[standard]
        elif standard in rows.colnames:
            values = rows[standard]
        else:  # proper-motion errors the simulated catalogue does not carry
            values = np.full(len(rows), np.nan)
        if name == "jdate":
            values = Time(ep, format="decimalyear").jd
        header.append(name)
        data.append(np.asarray(values))
    lines = [f"Total rows: {len(rows)}", ",".join(header)]
    for i in range(len(rows)):
        lines.append(",".join(repr(float(col[i])) if col.dtype.kind == "f" else str(col[i])
                              for col in data))
    return "\r\n".join(lines)


class CatalogServer:
    """Context manager running the loopback catalogue service in a thread.

    Parameters
    ----------
    table : astropy.table.Table
        Reference stars with the standard columns (``RA, DEC, RA_error, DEC_error, pmra,
        pmdec, mag, objID, epoch``), like the simulator's ``refcat.ecsv``.
    error_with_epoch : bool
        Answer ``Error: ...`` to queries that carry ``EPOCH`` (the client must retry without).
    hang : bool
        Accept connections but never answer (until the server stops).

    Attributes
    ----------
    url : str
        ``http://127.0.0.1:<port>``.
    queries : list of dict
        The query parameters received, in order.
    """

    def __init__(self, table: Table, *, error_with_epoch: bool = False, hang: bool = False):
        self.table = table
        self.error_with_epoch = error_with_epoch
        self.hang = hang
        self.queries: list = []
        self._stop = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                parsed = urllib.parse.urlparse(self.path)
                query = {k: v[0] for k, v in urllib.parse.parse_qs(parsed.query).items()}
                server.queries.append(query)
                if server.hang:
                    server._stop.wait(120.0)
                    return
                if parsed.path != "/vo/CatalogSearch.aspx":
                    self.send_error(404)
                    return
                if server.error_with_epoch and "EPOCH" in query:
                    body = "Error: cannot find table 0\r\n"
                else:
                    body = catalog_csv(server.table, query.get("CAT", "GAIAeDR3"),
                                       float(query["RA"]), float(query["DEC"]),
                                       float(query["SR"]),
                                       float(query["EPOCH"]) if "EPOCH" in query else None)
                payload = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):  # keep the test output quiet
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def closed_port_url() -> str:
    """A loopback URL nobody listens on (the port was bound, then released)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
