"""The SVM manifest and trailer files (hap-pipeline.md §1.1 step 9, §1.14).

* :class:`Manifest`: the ordered list of product file names of a visit, written one per line
  to ``<instr>_<ppp>_<ss>_manifest.txt`` (:func:`hapgpu.svm._tree.manifest_filename`) in
  drizzlepac's order: merged old manifests; per detector the headerlet files, the ramp/quad
  renamed inputs and trailers, the grism renamed inputs and trailers; per filter the filter
  product and its trailer, then per exposure its product, renamed input and trailer; then the
  total product and its trailer; then the catalogs.
* :class:`TrailerLog`: while a product is made, every record of the ``hapgpu`` loggers goes
  to its ``<product>_trl.log`` (drizzlepac's AstroDrizzle ``runfile``), which
  :meth:`TrailerLog.finish` renames to ``<product>_trl.txt``.
* :func:`finish_trailers`: the end of the run: the master run log appended to every total
  trailer, copied to every ramp and grism trailer, and ``DRIZPARS`` of every drizzled product
  set to its own trailer name.

Every file is written in the run's staging folder; the pipeline moves the finished set into
the output folder (so a failed run leaves no partial products).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..errors import OutputWriteError

__all__ = ["LOG_FORMAT", "Manifest", "TrailerLog", "finish_trailers", "read_old_manifests",
           "write_text_atomic"]

log = logging.getLogger(__name__)

#: Layout of every line of the run log and the trailers.
LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def write_text_atomic(path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary name in the same folder.

    Raises
    ------
    OutputWriteError
        The file cannot be written.
    """
    path = Path(path)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise OutputWriteError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    return path


class Manifest:
    """The product names of one visit, in the order they are produced.

    Parameters
    ----------
    name : str
        The manifest file name (``wfc3_b46_06_manifest.txt``).

    Attributes
    ----------
    names : list of str
        File names (no folders), one manifest line each, in insertion order.
    """

    def __init__(self, name: str):
        self.name = name
        self.names: list[str] = []

    def __repr__(self) -> str:
        return f"Manifest({self.name!r}, {len(self.names)} entries)"

    def add(self, *names: str) -> None:
        """Append file names (folders stripped)."""
        self.names.extend(Path(str(n)).name for n in names)

    def write(self, folder) -> Path:
        """Write ``folder / name``: one file name per line (temporary name, then renamed).

        Returns
        -------
        pathlib.Path

        Raises
        ------
        OutputWriteError
            The file cannot be written.
        """
        return write_text_atomic(Path(folder) / self.name, "".join(f"{n}\n" for n in self.names))


def read_old_manifests(folder, exposure_names) -> tuple[list[str], list[Path]]:
    """Manifests ``<ipppssoo>*_manifest.txt`` that earlier runs left in ``folder``.

    Parameters
    ----------
    folder : path-like
        Where earlier runs wrote their products (the output folder).
    exposure_names : iterable of str
        ``ipppssoo`` of the visit's direct exposures.

    Returns
    -------
    names : list of str
        Their lines, in file order (drizzlepac merges them first into the new manifest).
    files : list of pathlib.Path
        The manifest files (drizzlepac deletes them after the run unless in diagnostic mode).
    """
    names, files = [], []
    folder = Path(folder)
    for exposure in exposure_names:
        for path in sorted(folder.glob(f"{exposure}*_manifest.txt")):
            if path in files:
                continue
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                log.warning("%s: cannot read the old manifest (%s); not merged", path, exc)
                continue
            names += [line.strip() for line in lines if line.strip()]
            files.append(path)
    return names, files


class TrailerLog:
    """Send the ``hapgpu`` log to a product's trailer while the product is made.

    Used as a context manager around the product's step; the records go to
    ``folder / product.trl_logname`` (appended), then :meth:`finish` renames it to
    ``product.trl_filename`` (drizzlepac moves the AstroDrizzle runfile the same way).

    Parameters
    ----------
    folder : pathlib.Path
        The staging folder.
    logname : str
        ``<product>_trl.log``.
    filename : str
        ``<product>_trl.txt``.
    level : int
        Lowest level written (the run's log level).
    """

    def __init__(self, folder: Path, logname: str, filename: str, level: int = logging.INFO):
        self.path = Path(folder) / logname
        self.final = Path(folder) / filename
        self.level = level
        self._handler: logging.Handler | None = None

    def __enter__(self):
        try:
            handler = logging.FileHandler(self.path, mode="a", encoding="utf-8")
        except OSError as exc:
            raise OutputWriteError(f"{self.path}: cannot write the trailer: {exc.strerror or exc}") from exc
        handler.setLevel(self.level)
        handler.setFormatter(logging.Formatter(LOG_FORMAT, _DATE_FORMAT))
        logging.getLogger("hapgpu").addHandler(handler)
        self._handler = handler
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._handler is not None:
            logging.getLogger("hapgpu").removeHandler(self._handler)
            self._handler.close()
            self._handler = None
        if exc_type is None:
            self.finish()

    def finish(self) -> Path:
        """Rename ``_trl.log`` to ``_trl.txt`` (appending to an existing ``_trl.txt``)."""
        try:
            if self.final.exists():
                with open(self.final, "a", encoding="utf-8") as out:
                    out.write(self.path.read_text(encoding="utf-8"))
                self.path.unlink()
            else:
                os.replace(self.path, self.final)
        except OSError as exc:
            raise OutputWriteError(f"{self.final}: cannot write the trailer: {exc.strerror or exc}") from exc
        return self.final


def finish_trailers(folder, master_log, *, total_trailers, copy_trailers, drizzle_products) -> None:
    """The trailer work of drizzlepac's ``finally`` block (hap-pipeline.md §1.1 step 9).

    Parameters
    ----------
    folder : path-like
        The staging folder holding every product.
    master_log : path-like
        The run log.
    total_trailers : iterable of str
        Trailers of the total products: the run log is appended to each.
    copy_trailers : iterable of str
        Trailers of ramp/quad and grism exposures: each becomes a copy of the run log.
    drizzle_products : iterable of str
        Drizzled products: ``DRIZPARS`` (primary header) is set to the product's own
        ``_trl.txt`` name.

    Raises
    ------
    OutputWriteError
        A trailer or product cannot be written.
    """
    from astropy.io import fits

    folder = Path(folder)
    master_log = Path(master_log)
    try:
        text = master_log.read_text(encoding="utf-8") if master_log.exists() else ""
        for name in copy_trailers:
            (folder / name).write_text(text, encoding="utf-8")
        for name in total_trailers:
            with open(folder / name, "a", encoding="utf-8") as out:
                out.write(text)
        for name in drizzle_products:
            path = folder / name
            if not path.exists():
                continue
            trailer = name.rsplit("_", 1)[0] + "_trl.txt"
            with fits.open(path, mode="update", memmap=False) as hdul:
                hdul[0].header["DRIZPARS"] = (trailer, "Drizzle parameter (trailer) file")
    except OSError as exc:
        raise OutputWriteError(f"{folder}: cannot finish the trailers: {exc.strerror or exc}") from exc
