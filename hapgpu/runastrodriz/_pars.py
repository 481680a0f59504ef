"""Drizzle parameters of runastrodriz (hap-pipeline.md §3.3).

The pipeline reads its AstroDrizzle parameters from the ``MDRIZTAB`` reference table named in
the first input's header. hapgpu works offline and ships MDRIZTAB-equivalent rows as its own
JSON, one file per instrument and detector (``hapgpu/data/mdriztab/<inst>_<det>.json``; the
``source`` field of each file says where the values come from). The row is chosen as
drizzlepac's ``mdzhandler.getMdriztabParameters`` does; the verification runs, the no-CR mode
and the final product then change it as runastrodriz does (``runastrodriz.process``,
``reset_mdriztab_nocr``, ``PIPELINE_PARS``, ``focus_pars``).

Parameter dictionaries use AstroDrizzle's names and drizzlepac's values; options that have no
effect in hapgpu (``in_memory``, ``clean``, ``num_cores``, ``mdriztab``, ...) are kept so the
dictionaries read like drizzlepac's, and :func:`hapgpu.astrodrizzle.resolve_parameters`
accepts and ignores them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import InvalidInputError, InvalidParameterError

__all__ = [
    "FOCUS_PARS",
    "PIPELINE_PARS",
    "FocusPars",
    "MdriztabRow",
    "exposure_times",
    "filter_string",
    "final_parameters",
    "focus_parameters",
    "mdriztab_parameters",
    "nocr_parameters",
    "read_mdriztab",
    "select_mdriztab_row",
    "verification_parameters",
]

log = logging.getLogger(__name__)

MDRIZTAB_FORMAT = "hapgpu.mdriztab/1"

#: runastrodriz's pipeline settings merged over the MDRIZTAB row (``PIPELINE_PARS``): the final
#: product uses them as they are (``mdriztab`` True, ``clean`` True after the CLI's ``-i``).
PIPELINE_PARS = {"mdriztab": True, "in_memory": True, "stepsize": 10, "output": "",
                 "preserve": False, "clean": False, "resetbits": 4096}


@dataclass(frozen=True)
class FocusPars:
    """σ of the focus index's Laplacian of Gaussian (pixels) and the DQ bits treated as good
    by the verification drizzles (runastrodriz ``focus_pars``)."""

    sigma: float
    good_bits: int


#: ``"<INSTRUME>/<DETECTOR>"`` -> :class:`FocusPars` (hap-pipeline.md §3.3 table).
FOCUS_PARS = {
    "WFC3/IR": FocusPars(2.0, 512),
    "WFC3/UVIS": FocusPars(1.5, 1360),
    "ACS/WFC": FocusPars(1.5, 1360),
    "ACS/SBC": FocusPars(2.0, 0),
    "ACS/HRC": FocusPars(1.5, 1360),
    "WFPC2/PC": FocusPars(1.5, 1360),
}

#: Filter keywords per instrument (stsci.tools ``getFilterNames``).
_FILTER_KEYWORDS = {"ACS": ("FILTER1", "FILTER2"), "WFPC2": ("FILTNAM1", "FILTNAM2"),
                    "STIS": ("OPT_ELEM", "FILTER"), "NICMOS": ("FILTER", "FILTER2"),
                    "WFC3": ("FILTER", "FILTER2")}


@dataclass(frozen=True)
class MdriztabRow:
    """One row of an MDRIZTAB-equivalent table.

    Attributes
    ----------
    filter : str
        The filter string the row applies to (``"ANY"`` for every filter), compared with
        :func:`filter_string` of the first input.
    numimages : int
        Smallest number of inputs the row is meant for.
    parameters : dict
        AstroDrizzle parameters by name (drizzlepac's values).
    """

    filter: str
    numimages: int
    parameters: dict


def focus_parameters(instrument: str, detector: str) -> FocusPars:
    """The focus σ and verification good bits of an instrument/detector (§3.3).

    Raises
    ------
    InvalidInputError
        For a detector runastrodriz has no entry for.
    """
    key = f"{str(instrument).strip().upper()}/{str(detector).strip().upper()}"
    try:
        return FOCUS_PARS[key]
    except KeyError:
        raise InvalidInputError(f"runastrodriz has no focus parameters for {key} (supported: "
                                f"{', '.join(FOCUS_PARS)})") from None


def filter_string(header) -> str:
    """The filter names of a primary header joined with ``,`` (stsci.tools ``getFilterNames``):
    the non-blank values of the instrument's filter keywords, CLEAR and N/A included.

    Raises
    ------
    InvalidInputError
        When the header has no ``INSTRUME``.
    """
    if "INSTRUME" not in header:
        raise InvalidInputError("header has no INSTRUME keyword, so its filters are unknown")
    keys = _FILTER_KEYWORDS.get(str(header["INSTRUME"]).strip().upper(), ())
    return ",".join(str(header[k]) for k in keys if k in header and str(header[k]).strip())


def read_mdriztab(instrument: str, detector: str) -> list[MdriztabRow]:
    """The shipped MDRIZTAB-equivalent rows of an instrument/detector, in table order.

    Parameters
    ----------
    instrument, detector : str
        e.g. ``"WFC3"``, ``"UVIS"`` (any case).

    Returns
    -------
    list of MdriztabRow

    Raises
    ------
    InvalidInputError
        When hapgpu ships no table for the detector (WFPC2, STIS, ...).
    """
    name = f"{str(instrument).strip().lower()}_{str(detector).strip().lower()}.json"
    entry = resources.files("hapgpu").joinpath("data", "mdriztab", name)
    if not entry.is_file():
        raise InvalidInputError(f"no MDRIZTAB parameter rows for {instrument}/{detector} "
                                "(hapgpu ships WFC3/UVIS, WFC3/IR, ACS/WFC, ACS/HRC, ACS/SBC)")
    data = json.loads(entry.read_text("utf-8"))
    if data.get("format") != MDRIZTAB_FORMAT:
        raise InvalidParameterError(f"{name}: not a {MDRIZTAB_FORMAT} file")
    return [MdriztabRow(str(r["filter"]), int(r["numimages"]), dict(r["parameters"]))
            for r in data["rows"]]


def select_mdriztab_row(rows, filters: str, n_images: int) -> int:
    """Index of the MDRIZTAB row for ``n_images`` inputs with ``filters`` (as coded).

    The candidate rows are those whose filter equals ``filters``, or the ``ANY`` rows when none
    does; the chosen one is the last candidate, in table order, with ``numimages <= n_images``;
    when no candidate qualifies (or there is none), row 0 (drizzlepac
    ``mdzhandler.getMdriztabParameters``).

    Parameters
    ----------
    rows : sequence of MdriztabRow
    filters : str
        :func:`filter_string` of the first input.
    n_images : int
        Number of inputs.

    Returns
    -------
    int
        Row index (0-based).
    """
    candidates = [i for i, row in enumerate(rows) if row.filter == filters]
    if not candidates:
        candidates = [i for i, row in enumerate(rows) if row.filter == "ANY"]
    chosen = 0
    for i in candidates:
        if n_images >= rows[i].numimages:
            chosen = i
    return chosen


def _primary(path):
    from astropy.io import fits

    try:
        return fits.getheader(path, 0)
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path}: cannot read the primary header ({exc})") from None


def mdriztab_parameters(files) -> dict:
    """The MDRIZTAB row's AstroDrizzle parameters for ``files`` (the row is chosen from the
    first file's instrument, detector and filters and the number of files).

    Parameters
    ----------
    files : sequence of path-like
        Calibrated exposures (FLT/FLC), at least one.

    Returns
    -------
    dict
        A new dictionary of AstroDrizzle parameters.

    Raises
    ------
    InvalidInputError
        No files, an unreadable first file, or a detector without shipped rows.
    """
    files = list(files)
    if not files:
        raise InvalidInputError("no calibrated exposures to choose MDRIZTAB parameters for")
    header = _primary(files[0])
    for key in ("INSTRUME", "DETECTOR"):
        if key not in header:
            raise InvalidInputError(f"{files[0]}: primary header has no {key}")
    rows = read_mdriztab(header["INSTRUME"], header["DETECTOR"])
    filters = filter_string(header)
    index = select_mdriztab_row(rows, filters, len(files))
    log.info("MDRIZTAB: AstroDrizzle parameters read from row %d (%s, numimages %d) for %d "
             "image(s) of %s", index + 1, rows[index].filter, rows[index].numimages, len(files),
             filters or "no filter")
    return dict(rows[index].parameters)


def verification_parameters(good_images, calfiles, *, num_cores=None, exptimes=None) -> dict:
    """Parameters of the verification drizzles (§3.3 "Verification runs", steps 1-4).

    Parameters
    ----------
    good_images : sequence of path-like
        Exposures with data (EXPTIME > 0, NGOODPIX > 0): they choose the MDRIZTAB row.
    calfiles : sequence of path-like
        Every calibrated exposure: their exposure-time ratio sets the combination.
    num_cores : int, optional
        Passed on as ``num_cores`` (no effect on hapgpu's drizzles).
    exptimes : sequence of float, optional
        ``EXPTIME`` of ``calfiles`` when already read.

    Returns
    -------
    dict
        The MDRIZTAB row, then ``PIPELINE_PARS``, then ``mdriztab False, final_fillval INDEF,
        driz_sep_kernel turbo, driz_sep_fillval 0, num_cores, resetbits 0``; and
        ``combine_type median, combine_nhigh 0`` when max/min EXPTIME > 2.
    """
    pars = mdriztab_parameters(good_images)
    pars.update(PIPELINE_PARS)
    pars.update({"mdriztab": False, "final_fillval": "INDEF", "driz_sep_kernel": "turbo",
                 "driz_sep_fillval": 0.0, "num_cores": num_cores, "resetbits": 0})
    if exptimes is None:
        exptimes = [float(_primary(f).get("EXPTIME", 0.0)) for f in calfiles]
    exptimes = [float(t) for t in exptimes]
    # numpy's ratio as coded: a zero exposure time with a positive one is an infinite ratio
    if exptimes and max(exptimes) > 0 and (min(exptimes) <= 0 or max(exptimes) / min(exptimes) > 2):
        pars.update({"combine_type": "median", "combine_nhigh": 0})
    return pars


def nocr_parameters(pars: dict, good_bits: int) -> dict:
    """``pars`` switched to no-CR mode (runastrodriz ``reset_mdriztab_nocr``): single drizzles
    with ``good_bits``, no median, blot or driz_cr; ``skysub`` kept.

    Returns
    -------
    dict
        A new dictionary.
    """
    out = dict(pars)
    out.update({"mdriztab": False, "build": True, "resetbits": 0, "static": False,
                "skysub": pars.get("skysub", True), "driz_separate": True,
                "driz_sep_bits": int(good_bits), "driz_sep_fillval": 0.0, "median": False,
                "blot": False, "driz_cr": False, "final_fillval": "INDEF"})
    return out


def final_parameters(files, *, in_memory: bool = True, num_cores=None) -> dict:
    """Parameters of the final product (§3.3 "Final product").

    ``mdriztab`` True: the MDRIZTAB row for ``files`` gives every step parameter (it is merged
    last, as AstroDrizzle does with ``mdriztab=True``); the run settings are
    ``PIPELINE_PARS`` with ``in_memory`` from the CLI's ``-i``, ``clean`` True and
    ``resetbits`` 4096 (cosmic rays found again from scratch), ``crbit`` left at 4096.

    Parameters
    ----------
    files : sequence of path-like
        The exposures of one product.
    in_memory : bool
    num_cores : int, optional

    Returns
    -------
    dict
    """
    pars = dict(PIPELINE_PARS)
    pars.update({"in_memory": bool(in_memory), "clean": True, "num_cores": num_cores})
    pars.update(mdriztab_parameters(files))
    return pars


def exposure_times(files) -> list[float]:
    """``EXPTIME`` of each file's primary header (0 when missing)."""
    return [float(_primary(Path(f)).get("EXPTIME", 0.0)) for f in files]
