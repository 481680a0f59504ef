"""``hapgpu poller``: write SVM or MVM poller files (drizzlepac ``make_poller_files``).

``hapgpu poller FILES... --type svm|mvm [--skycell NAME] [-o OUT]``:

* ``svm``, or ``mvm`` with ``--skycell``: one poller, ``OUT`` (default ``poller_file.out``; an
  existing folder gets ``poller_file.out`` inside it);
* ``mvm`` without ``--skycell``: one poller per sky cell the exposures touch
  (:func:`hapgpu.skycells.get_sky_cells`), ``<skycell>_input.out`` in the folder ``OUT``
  (default: the current folder), listing that cell's exposures.

Each poller written is printed on stdout, one path per line.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

__all__ = ["register", "write_pollers"]

log = logging.getLogger(__name__)

_DEFAULT_NAME = "poller_file.out"


def write_pollers(entries, *, poller_type: str = "svm", skycell: str | None = None,
                  output=None) -> list[Path]:
    """The pollers of ``hapgpu poller`` (see the module notes).

    Parameters
    ----------
    entries : sequence of str
        Exposure file names or rootnames.
    poller_type : {"svm", "mvm"}, keyword-only
    skycell : str, optional, keyword-only
        The sky cell of a single MVM poller.
    output : str or os.PathLike, optional, keyword-only
        The poller file (or a folder to hold ``poller_file.out``); for MVM without ``skycell``
        the folder of the per-cell pollers (created if missing). Default: the current folder.

    Returns
    -------
    list of pathlib.Path
        The pollers written, in sky-cell order for the per-cell case.

    Raises
    ------
    InvalidParameterError
        No entries, a bad type or sky-cell name.
    InvalidInputError
        An exposure cannot be found or read (see :func:`hapgpu.mvm.generate_poller_file`).
    OutputWriteError
        A poller or the output folder cannot be written.
    """
    from ..errors import InvalidInputError, InvalidParameterError, OutputWriteError
    from ._make_poller import POLLER_TYPES, generate_poller_file, locate_exposure

    entries = [str(e) for e in entries]
    if not entries:
        raise InvalidParameterError("no exposures: give FILES or --input-list LIST")
    kind = str(poller_type).lower()
    if kind not in POLLER_TYPES:
        raise InvalidParameterError(f"--type must be one of {POLLER_TYPES}, got {poller_type!r}")
    if kind == "svm" or skycell:
        out = Path(output) if output is not None else Path(_DEFAULT_NAME)
        if out.is_dir():
            out = out / _DEFAULT_NAME
        return [generate_poller_file(entries, kind, out, skycell_name=skycell)]
    from ..skycells import get_sky_cells

    folder = Path(output) if output is not None else Path.cwd()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputWriteError(f"{folder}: cannot create the output folder "
                               f"({exc.strerror or exc})") from None
    files = []
    for entry in entries:
        path = locate_exposure(entry)
        if path is None:
            raise InvalidInputError(f"{entry}: exposure not found (looked in {Path.cwd()} and "
                                    "$DATA_PATH)")
        files.append(path)
    cells = get_sky_cells(files)
    if not cells:
        log.warning("the exposures touch no sky cell (no WCSNAME); no poller written")
    return [generate_poller_file(list(cell.members), "mvm", folder / f"{name}_input.out",
                                 skycell_name=name)
            for name, cell in cells.items()]


def _run(args: argparse.Namespace) -> int:
    entries = list(args.files)
    if args.input_list:
        from ..errors import InvalidInputError

        try:
            text = Path(args.input_list).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"{args.input_list}: cannot read the exposure list "
                                    f"({exc})") from None
        entries += [line.strip() for line in text.splitlines() if line.strip()]
    written = write_pollers(entries, poller_type=args.type, skycell=args.skycell,
                            output=args.output)
    sys.stdout.write("".join(f"{path}\n" for path in written))
    return 0


def register(subparsers) -> None:
    """Add the ``poller`` command to the CLI."""
    parser = subparsers.add_parser(
        "poller", help="write SVM or MVM poller files for exposures (make_poller_files)",
        description="Write drizzlepac's poller files: an SVM poller (8 columns), or MVM pollers "
                    "(10 columns). Without --skycell, --type mvm writes one poller per sky cell "
                    "the exposures touch, <skycell>_input.out, in the folder OUT.")
    parser.add_argument("files", nargs="*", metavar="FILES",
                        help="FLT/FLC exposures or rootnames (looked for in the current folder, "
                             "then under $DATA_PATH)")
    parser.add_argument("-i", "--input-list", default=None, metavar="LIST",
                        help="text file with more exposures or rootnames, one per line")
    parser.add_argument("-t", "--type", default="svm", type=str.lower, choices=("svm", "mvm"),
                        help="poller type (default: svm)")
    parser.add_argument("-s", "--skycell", default=None, metavar="NAME",
                        help="sky cell of a single MVM poller (skycell-pPPPPxXXyYY)")
    parser.add_argument("-o", "--output", default=None, metavar="OUT",
                        help="the poller file (default: poller_file.out), or for --type mvm "
                             "without --skycell the folder of the per-cell pollers (default: "
                             "the current folder)")
    parser.set_defaults(func=_run)
