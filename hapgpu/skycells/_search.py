"""Which sky cells hold which exposures (hap-pipeline.md §2.2, drizzlepac ``cell_utils.get_sky_cells``).

The search, step by step as drizzlepac 3.11 codes it:

1. keep the exposures whose extension 1 has a ``WCSNAME`` and group them by visit (first 6
   characters of the rootname, or of the ``ipppssoo`` token of an ``hst_`` name);
2. for each visit, the frame ``make_mosaic_wcs(visit exposures, rot=0, scale=grid scale)``
   (§1.10);
3. for each exposure, its footprint on that frame (§1.11 polygon fill) and the outline pixels
   of the footprint (:func:`~hapgpu.skycells._edges.footprint_edges`), converted to the sky;
4. the rings whose ``[DEC_MIN, DEC_MAX]`` holds every outline declination;
5. in each ring, the cells ``k = rint(RA * NBAND / 360) mod NBAND`` of the outline points plus
   ``max(min k - 1, 0)`` and ``(max k + 1) mod NBAND`` (as coded: no wrap on the low side),
   kept when the projection cell's rectangle overlaps the visit frame's rectangle on the sky;
6. in each projection cell, the sky cells ``x, y`` in ``[max(1, e_min - 1), min(21, e_max + 2)]``
   where ``e = int(pixel / 21954 + 1.5)`` for the outline points in the projection cell's pixels,
   kept when an outline point lies in ``[0, n]`` on both axes of the sky cell's 0-based pixel
   grid; the exposure becomes a member of each kept cell;
7. cells are merged across exposures and visits in the order found.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError, InvalidParameterError
from ._cells import (SKYCELL_PREFIX, SUPPORTED_SCALES, GridDefs, ProjectionCell, SkyCell, default_grid,
                     resolve_scale)
from ._edges import footprint_edges
from ._sphere import convex_polygons_overlap, image_polygon

__all__ = ["get_sky_cells", "interpret_scells", "skycell_keyword", "update_skycell_keyword",
           "add_skycell_keyword", "extract_visit", "SKYCELL_COMMENT"]

log = logging.getLogger(__name__)

#: Comment of the ``SKYCELL`` keyword (drizzlepac ``processing_utils.add_skycell_to_header``).
SKYCELL_COMMENT = "Skycell(s) that this image occupies"

_FITS_SUFFIXES = (".fits", ".fits.gz", ".fit", ".fts")


def extract_visit(filename) -> str:
    """Visit id of an exposure file name (drizzlepac ``cell_utils.extract_visit``).

    The first 6 characters of the base name (``ipppss`` of ``ipppssoot_flc.fits``), or of the
    ``ipppssoo`` token (last but one ``_`` field) of an ``hst_...`` SVM/MVM name.
    """
    name = os.path.basename(str(filename))
    if name.startswith("hst_"):
        return name.split("_")[-2][:6]
    return name[:6]


def _exposure_list(exposures) -> list[str]:
    """Exposure names from a sequence of paths, one FITS path, or a headerless list file."""
    if isinstance(exposures, (str, os.PathLike)):
        path = Path(exposures)
        if path.name.lower().endswith(_FITS_SUFFIXES):
            return [str(exposures)]
        try:
            text = path.read_text()
        except OSError as exc:
            raise InvalidInputError(f"{path}: cannot read the exposure list: {exc}") from exc
        names = []
        for line in text.splitlines():
            fields = line.replace(",", " ").split()
            if fields and not fields[0].startswith("#"):
                names.append(fields[0])
        if not names:
            raise InvalidInputError(f"{path}: the exposure list is empty")
        return names
    try:
        names = [str(name) if isinstance(name, os.PathLike) else name for name in exposures]
    except TypeError:
        raise InvalidInputError(f"exposures must be file names or a list file, got {exposures!r}") from None
    if not all(isinstance(name, str) for name in names):
        raise InvalidInputError(f"exposures must be file names, got {exposures!r}")
    return names


def _has_wcsname(name: str) -> bool:
    from astropy.io import fits

    try:
        with fits.open(name, memmap=False) as hdul:
            if len(hdul) < 2:
                raise InvalidInputError(f"{name}: no extension 1 (not a calibrated HST exposure)")
            return "WCSNAME" in hdul[1].header
    except FileNotFoundError:
        raise InvalidInputError(f"{name}: no such exposure") from None
    except OSError as exc:
        raise InvalidInputError(f"{name}: cannot read the exposure: {exc}") from exc


def _candidate_band_indices(ra: np.ndarray, nband: int) -> np.ndarray:
    """Cells of a ring near the outline: its own plus one each side (low side not wrapped)."""
    band_index = np.unique(np.rint((ra % 360.0) * nband / 360.0).astype(int) % nband)
    low = max(int(band_index.min()) - 1, 0)
    high = (int(band_index.max()) + 1) % nband
    return np.unique(np.concatenate([[low], band_index, [high]]))


def _projection_cells(grid: GridDefs, ra: np.ndarray, dec: np.ndarray, frame_polygon) -> list:
    """Projection cells of the rings holding the outline that overlap the visit frame (steps 4-5)."""
    cells = []
    for ring in grid.rings_covering(dec):
        for band_index in _candidate_band_indices(ra, ring.nband):
            cell = ProjectionCell.in_ring(ring, int(band_index), grid=grid)
            if convex_polygons_overlap(image_polygon(cell.wcs, cell.shape), frame_polygon):
                cells.append(cell)
    return cells


def _outline_in_cell(sky_cell: SkyCell, ra: np.ndarray, dec: np.ndarray) -> bool:
    """Whether an outline point falls in ``[0, n]`` on both axes of the cell (0-based pixels)."""
    x, y = sky_cell.wcs.world_to_pixel_values(ra, dec)
    nx, ny = sky_cell.wcs.pixel_shape
    inside = (x >= 0) & (x <= nx) & (y >= 0) & (y <= ny)
    return bool(np.any(inside))


def _sky_cells_in(projection_cell: ProjectionCell, ra: np.ndarray, dec: np.ndarray) -> list[SkyCell]:
    """Sky cells of one projection cell that hold an outline point (step 6)."""
    nxy = projection_cell.sc_nxy
    # index estimate uses the fine sky-cell size, whatever the grid scale (as coded)
    step_x, step_y = projection_cell.sky_cell_step()
    ratio = projection_cell.scale / SUPPORTED_SCALES["fine"]
    size_x = int((step_x + 2 * projection_cell.sc_overlap) * ratio)
    size_y = int((step_y + 2 * projection_cell.sc_overlap) * ratio)
    px, py = projection_cell.wcs.world_to_pixel_values(ra, dec)
    good = np.isfinite(px) & np.isfinite(py)
    if not good.any():
        return []
    ix = (px[good] / size_x + 1.5).astype(np.int32)
    iy = (py[good] / size_y + 1.5).astype(np.int32)
    x_range = range(max(1, int(ix.min()) - 1), min(nxy, int(ix.max()) + 2) + 1)
    y_range = range(max(1, int(iy.min()) - 1), min(nxy, int(iy.max()) + 2) + 1)
    found = []
    for x in x_range:
        for y in y_range:
            sky_cell = SkyCell(projection_cell, x, y, scale="fine")
            if _outline_in_cell(sky_cell, ra, dec):
                found.append(sky_cell)
    return found


def _exposure_outline(name: str, frame) -> tuple[np.ndarray, np.ndarray]:
    """Sky positions (deg) of the outline of one exposure's footprint on the visit frame."""
    from ..svm._footprint import chip_fills

    # where the footprint's chip count (hap-pipeline.md §1.11) is >= 1: all the outline needs
    covered = np.zeros(frame.shape, dtype=bool)
    for fill in chip_fills(name, frame.wcs, frame.shape):
        covered[fill.box] |= fill.blank
    x, y = footprint_edges(covered)
    if x.size == 0:
        return x.astype(np.float64), y.astype(np.float64)
    ra, dec = frame.wcs.pixel_to_world_values(x, y)
    return np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64)


def get_sky_cells(exposures, *, scale: float | None = None,
                  grid: GridDefs | None = None) -> dict[str, SkyCell]:
    """Every sky cell that the exposures touch, with the exposures as members.

    Parameters
    ----------
    exposures : sequence of str or pathlib.Path, or str or pathlib.Path
        FLT/FLC files (relative paths are read from the current directory); one FITS path; or
        a headerless text file whose first column (space- or comma-separated) holds the names,
        such as an SVM poller.
    scale : float, optional, keyword-only
        Grid pixel scale, arcsec/pixel, replacing ``PC_SCALE`` (0.04) for the projection cells
        and the visit frames (drizzlepac's ``scale``; the sky cells stay at the fine scale).
    grid : GridDefs, optional, keyword-only
        Tessellation; default: the shipped ``allsky_cells.fits``.

    Returns
    -------
    dict of str to SkyCell
        ``{sky_cell_id: SkyCell}`` in the order found (visits in input order, then exposures,
        rings south to north, projection cells, x, y). Each ``SkyCell`` is at the fine scale
        and its ``members`` lists the names (as given) of the exposures touching it. Empty
        when no exposure has a ``WCSNAME`` (drizzlepac returns None).

    Raises
    ------
    InvalidInputError
        An exposure is missing or unreadable, has no SCI extension or no ``EXPTIME``, or the
        list file cannot be read.
    WCSError
        A chip WCS cannot be built.

    Notes
    -----
    hap-pipeline.md §2.2 (steps in the module docstring). Differences from drizzlepac: files
    are read where they are (no copying into the working directory); every exposure without
    ``WCSNAME`` is dropped (drizzlepac's loop skips the file after each one it drops); an
    exposure whose footprint vanishes in the cleaning is skipped with a warning (drizzlepac
    fails). Membership: drizzlepac tests each member's outline again, but every footprint holds
    one exposure, so the member test is the cell test and the exposure is a member of every
    cell found for it.
    """
    from ..svm._metawcs import make_mosaic_wcs

    if grid is None:
        grid = default_grid(None if scale is None else resolve_scale(scale))
    elif scale is not None:
        raise InvalidParameterError("give either scale or grid, not both")
    names = _exposure_list(exposures)
    if not names:
        raise InvalidInputError("no exposures given")
    valid = []
    for name in names:
        if _has_wcsname(name):
            valid.append(name)
        else:
            log.info("%s: no WCSNAME in extension 1; not used for the sky-cell search", name)
    if not valid:
        log.warning("no exposure with a WCSNAME: no sky cells")
        return {}

    visits: dict[str, list[str]] = {}
    for name in valid:
        visits.setdefault(extract_visit(name), []).append(name)

    sky_cells: dict[str, SkyCell] = {}
    for visit_id, visit_names in visits.items():
        frame = make_mosaic_wcs(visit_names, rot=0.0, scale=grid.scale)
        frame_polygon = image_polygon(frame.wcs, frame.shape)
        log.debug("visit %s: frame %s x %s", visit_id, frame.shape[1], frame.shape[0])
        for name in visit_names:
            ra, dec = _exposure_outline(name, frame)
            if ra.size == 0:
                log.warning("%s: footprint too small to outline on the visit frame; no sky cells",
                            name)
                continue
            for projection_cell in _projection_cells(grid, ra, dec, frame_polygon):
                for sky_cell in _sky_cells_in(projection_cell, ra, dec):
                    known = sky_cells.get(sky_cell.sky_cell_id)
                    if known is None:
                        sky_cell.members.append(name)
                        sky_cells[sky_cell.sky_cell_id] = sky_cell
                    else:
                        known.members.append(name)
            log.debug("%s: sky cells %s", name,
                      [cid for cid, cell in sky_cells.items() if name in cell.members])
    return sky_cells


def interpret_scells(sky_cells: dict[str, SkyCell]) -> dict[str, dict]:
    """Per-exposure view of :func:`get_sky_cells` (drizzlepac ``cell_utils.interpret_scells``).

    Parameters
    ----------
    sky_cells : dict of str to SkyCell
        Output of :func:`get_sky_cells`.

    Returns
    -------
    dict
        ``{member: {sky_cell_id: SkyCell, ..., "id": "idA;idB"}}``: for each exposure, the
        cells it touches (in ``sky_cells`` order) and their ids joined with ``;``.
    """
    by_member: dict[str, dict] = {}
    for cell in sky_cells.values():
        for member in cell.members:
            by_member.setdefault(member, {})[cell.sky_cell_id] = cell
    for cells in by_member.values():
        cells["id"] = ";".join(list(cells))
    return by_member


def skycell_keyword(exposure, *, grid: GridDefs | None = None) -> str:
    """Value of the SVM ``SKYCELL`` keyword of one exposure, e.g. ``"p0121x12y16; p0121x13y16"``.

    Parameters
    ----------
    exposure : str or pathlib.Path
        FLT/FLC file.
    grid : GridDefs, optional, keyword-only
        Tessellation; default: the shipped one.

    Returns
    -------
    str
        The ids of the sky cells of ``get_sky_cells([exposure])`` (the exposure alone defines
        the frame), without the ``skycell-`` prefix, joined with ``"; "``. Empty when there is
        none (drizzlepac then logs an error and leaves the header alone).

    Raises
    ------
    InvalidInputError, WCSError
        As :func:`get_sky_cells`.

    Notes
    -----
    drizzlepac ``processing_utils.add_skycell_to_header`` (hap-pipeline.md §1.1 step 5.7,
    §1.12).
    """
    cells = get_sky_cells([exposure], grid=grid)
    return "; ".join(cell_id[len(SKYCELL_PREFIX):] for cell_id in cells)


def update_skycell_keyword(header, value: str) -> None:
    """Set ``SKYCELL`` in a header: updated in place if present, else inserted after ``S_REGION``.

    Parameters
    ----------
    header : astropy.io.fits.Header
        A SCI extension header; modified.
    value : str
        From :func:`skycell_keyword`.

    Notes
    -----
    A header without ``S_REGION`` gets the keyword at its end (drizzlepac would fail).
    """
    if "SKYCELL" in header:
        header["SKYCELL"] = (value, SKYCELL_COMMENT)
    elif "S_REGION" in header:
        header.insert("S_REGION", ("SKYCELL", value, SKYCELL_COMMENT), after=True)
    else:
        header["SKYCELL"] = (value, SKYCELL_COMMENT)


def add_skycell_keyword(exposure, *, grid: GridDefs | None = None) -> str:
    """Write ``SKYCELL`` into every SCI extension of an exposure (in place).

    Parameters
    ----------
    exposure : str or pathlib.Path
        FLT/FLC file (SVM: the renamed exposure); updated in place.
    grid : GridDefs, optional, keyword-only
        Tessellation; default: the shipped one.

    Returns
    -------
    str
        The value written; empty (and the file unchanged, one error logged) when the exposure
        touches no sky cell.

    Raises
    ------
    InvalidInputError, WCSError
        As :func:`get_sky_cells`; also when the file cannot be updated.
    """
    from astropy.io import fits

    value = skycell_keyword(exposure, grid=grid)
    if not value:
        log.error("%s: no sky cells found; SKYCELL not written", exposure)
        return value
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            with fits.open(exposure, mode="update", memmap=False) as hdul:
                for hdu in hdul:
                    if hdu.header.get("EXTNAME") == "SCI":
                        update_skycell_keyword(hdu.header, value)
    except OSError as exc:
        raise InvalidInputError(f"{exposure}: cannot update the header: {exc}") from exc
    return value
