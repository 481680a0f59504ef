"""The staging folder of a pipeline run (one SVM visit, one MVM sky cell).

A run writes everything into a hidden folder inside the output folder,
``.hapgpu-<pipeline>-<poller stem>-<pid>-<random>``, with its run log (drizzlepac's
``<poller stem>.log``), and moves the files into the output folder only when the whole run has
succeeded; a failed run removes the folder, so no half-written product is ever left behind.
Runs side by side (Dask workers) each have their own folder.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path

from .errors import OutputWriteError

__all__ = ["StagedRun", "staging_prefix"]


def staging_prefix(pipeline: str, poller) -> str:
    """Start of the name of a run's staging folder: ``.hapgpu-<pipeline>-<poller stem>-``
    (then ``<pid>-<random>``)."""
    return f".hapgpu-{pipeline}-{Path(poller).stem}-"


class StagedRun:
    """Staging folder, run log and final move of one pipeline run.

    Parameters
    ----------
    output_dir : pathlib.Path
        Folder receiving the products (created when missing).
    poller : pathlib.Path
        The run's poller file; its stem names the staging folder and the run log.
    level : int
        Logging level of the run log (records of the ``hapgpu`` logger).
    pipeline : str
        ``"svm"`` or ``"mvm"``: part of the staging folder's name.
    """

    def __init__(self, output_dir: Path, poller: Path, level: int, *, pipeline: str):
        self.output_dir = output_dir
        self.poller = poller
        self.staging = output_dir / f"{staging_prefix(pipeline, poller)}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.master_log = self.staging / (poller.stem + ".log")  # drizzlepac's build_logname
        self.level = level
        self.handler: logging.Handler | None = None
        self.created_output_dir = False

    def open(self) -> None:
        """Create the output and staging folders and start the run log.

        Raises
        ------
        OutputWriteError
            If either folder or the log cannot be written.
        """
        try:
            if not self.output_dir.exists():
                try:  # runs side by side may create the same folder
                    self.output_dir.mkdir(parents=True)
                    self.created_output_dir = True
                except FileExistsError:
                    pass
            self.staging.mkdir()
        except OSError as exc:
            raise OutputWriteError(f"{self.output_dir}: cannot write in the output folder: "
                                   f"{exc.strerror or exc}") from exc
        self.attach_log()

    def attach_log(self) -> None:
        """(Re)start the run log: the ``hapgpu`` logger's records go to it, appended."""
        from .svm._manifest import _DATE_FORMAT, LOG_FORMAT

        try:
            self.handler = logging.FileHandler(self.master_log, mode="a", encoding="utf-8")
        except OSError as exc:
            raise OutputWriteError(f"{self.master_log}: cannot write the run log: "
                                   f"{exc.strerror or exc}") from exc
        self.handler.setLevel(self.level)
        self.handler.setFormatter(logging.Formatter(LOG_FORMAT, _DATE_FORMAT))
        logging.getLogger("hapgpu").addHandler(self.handler)

    def close_log(self) -> None:
        """Stop the run log (idempotent)."""
        if self.handler is not None:
            logging.getLogger("hapgpu").removeHandler(self.handler)
            self.handler.close()
            self.handler = None

    def discard(self) -> None:
        """Remove the staging folder and everything in it (a failed or empty run), and the
        output folder when this run created it and it is still empty."""
        self.close_log()
        shutil.rmtree(self.staging, ignore_errors=True)
        if self.created_output_dir:
            try:
                self.output_dir.rmdir()  # only when still empty
            except OSError:
                pass

    def commit(self) -> list[Path]:
        """Move every staged file into the output folder; return their final paths.

        Raises
        ------
        OutputWriteError
            If a file cannot be moved.
        """
        moved = []
        try:
            for path in sorted(self.staging.iterdir()):
                if path.is_file() and not path.name.startswith("."):
                    target = self.output_dir / path.name
                    os.replace(path, target)
                    moved.append(target)
        except OSError as exc:
            raise OutputWriteError(f"{self.output_dir}: cannot move the products into place: "
                                   f"{exc.strerror or exc}") from exc
        shutil.rmtree(self.staging, ignore_errors=True)
        return moved
