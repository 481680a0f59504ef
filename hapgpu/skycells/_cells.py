"""The HAP sky tessellation: declination rings, projection cells and sky cells (hap-pipeline.md §2.1).

The sky is cut into 46 declination rings of TAN projection cells (2644 in all, ids 0..2643,
south to north), each 450287 px square at 0.04"/px (about 5 deg), and every projection cell into
21 x 21 overlapping sky cells, the unit of the multi-visit mosaics. The definition is drizzlepac's
``pars/allsky_cells.fits`` (BSD data, shipped as ``hapgpu/data/allsky_cells.fits``): primary
keywords ``SC_OLAP`` (sky-cell overlap margin, px), ``SC_NXY`` (sky cells per axis), ``PC_SCALE``
(arcsec/px), ``PC_SIZE`` (nominal cell size, deg) and one table row per ring (``ZONE``,
``PROJCELL`` = first cell id, ``NBAND`` = cells in the ring, ``DEC``, ``DEC_MIN``, ``DEC_MAX``,
``XCELL``, ``YCELL``).

Geometry, as drizzlepac 3.11 ``haputils/cell_utils.py`` computes it (``ProjectionCell._build_wcs``,
``SkyCell._build_wcs``), with ``s`` the grid scale and ratio = s / sky-cell scale:

* projection cell ``k`` of a ring (``k`` = id - ``PROJCELL``): ``CRVAL = (k * 360 / NBAND, DEC)``,
  ``CD = diag(-s, s) / 3600``, ``CRPIX = (XCELL / 2 + 0.5, YCELL / 2 + 0.5)``, shape
  ``(YCELL, XCELL)``;
* sky cell ``(x, y)`` (1-based, 1..``SC_NXY``): step = ``int(XCELL / SC_NXY + 0.5)`` (21442 px),
  size = ``int((step + 2 * SC_OLAP) * ratio)`` (21954 fine, 7318 coarse),
  ``CRPIX = (pc CRPIX - (index - 1) * step) * ratio``, ``CRVAL`` of the projection cell and
  ``CD = pc CD / ratio``;
* names ``skycell-pPPPPxXXyYY`` (``SCELLID`` and ``SKYCELL`` keywords drop the ``skycell-``).
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError, InvalidParameterError

__all__ = [
    "SUPPORTED_SCALES",
    "SKYCELL_PREFIX",
    "Ring",
    "GridDefs",
    "ProjectionCell",
    "SkyCell",
    "default_grid",
    "sky_cell_name",
    "parse_sky_cell_name",
    "resolve_scale",
]

#: Named sky-cell pixel scales, arcsec/pixel (drizzlepac ``cell_utils.SUPPORTED_SCALES``).
SUPPORTED_SCALES = {"fine": 0.04, "coarse": 0.12}

#: Prefix of a full sky-cell name; the ``SKYCELL`` and ``SCELLID`` keywords drop it.
SKYCELL_PREFIX = "skycell-"

_NAME_PATTERN = re.compile(r"(?:skycell-)?p(\d{4})x(\d{2})y(\d{2})")
_PRIMARY_KEYWORDS = ("SC_OLAP", "SC_NXY", "PC_SCALE", "PC_SIZE")
_RING_COLUMNS = ("ZONE", "PROJCELL", "NBAND", "DEC", "DEC_MIN", "DEC_MAX", "XCELL", "YCELL")


def resolve_scale(scale) -> float:
    """Sky-cell pixel scale in arcsec/pixel from ``"fine"``, ``"coarse"`` or a number.

    Parameters
    ----------
    scale : {"fine", "coarse"} or float
        A name from :data:`SUPPORTED_SCALES` (0.04"/px, 0.12"/px) or a positive scale in
        arcsec/pixel.

    Returns
    -------
    float

    Raises
    ------
    InvalidParameterError
        An unknown name, or a number that is not finite and positive.
    """
    if isinstance(scale, str):
        try:
            return SUPPORTED_SCALES[scale.lower()]
        except KeyError:
            raise InvalidParameterError(
                f"unknown sky-cell scale {scale!r}: use one of {sorted(SUPPORTED_SCALES)} "
                "or a pixel scale in arcsec") from None
    try:
        value = float(scale)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"sky-cell scale must be 'fine', 'coarse' or arcsec/pixel, "
                                    f"got {scale!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise InvalidParameterError(f"sky-cell scale must be positive, got {scale!r}")
    return value


def sky_cell_name(cell_id: int, x: int, y: int) -> str:
    """``skycell-pPPPPxXXyYY`` for projection cell ``cell_id`` and sky-cell indices ``x``, ``y``."""
    return f"{SKYCELL_PREFIX}p{int(cell_id):04d}x{int(x):02d}y{int(y):02d}"


def parse_sky_cell_name(name: str) -> tuple[int, int, int]:
    """Projection-cell id and 1-based sky-cell indices of a sky-cell name.

    Parameters
    ----------
    name : str
        ``skycell-pPPPPxXXyYY`` (e.g. ``skycell-p1889x07y19``) or the short form used by the
        ``SKYCELL``/``SCELLID`` keywords (``p1889x07y19``).

    Returns
    -------
    (int, int, int)
        ``(projection cell id, x, y)``. The ranges are checked when a :class:`SkyCell` is built.

    Raises
    ------
    InvalidParameterError
        The name does not have that form.
    """
    match = _NAME_PATTERN.fullmatch(name.strip()) if isinstance(name, str) else None
    if match is None:
        raise InvalidParameterError(
            f"not a sky-cell name: {name!r} (expected skycell-pPPPPxXXyYY, e.g. "
            "skycell-p1889x07y19)")
    return int(match[1]), int(match[2]), int(match[3])


@dataclass(frozen=True)
class Ring:
    """One declination ring of projection cells (one row of the tessellation table).

    Attributes
    ----------
    zone : int
        Ring index, 0 (south pole) .. 45 (north pole).
    projcell : int
        Id of the ring's first projection cell.
    nband : int
        Number of projection cells in the ring (1 at each pole).
    dec : float
        Declination of the cells' centres, deg.
    dec_min, dec_max : float
        Declination range of a cell's tangent plane, deg (used to choose rings).
    xcell, ycell : int
        Projection-cell size, pixels at the grid scale.
    """

    zone: int
    projcell: int
    nband: int
    dec: float
    dec_min: float
    dec_max: float
    xcell: int
    ycell: int

    def __contains__(self, cell_id) -> bool:
        return self.projcell <= cell_id < self.projcell + self.nband


@dataclass(frozen=True, eq=False)
class GridDefs:
    """The sky tessellation: grid keywords and the ring table (drizzlepac ``GridDefs``).

    Attributes
    ----------
    rings : tuple of Ring
        South to north.
    scale : float
        Projection-cell pixel scale, arcsec/pixel (``PC_SCALE`` unless overridden).
    cell_size : float
        Nominal projection-cell size, deg (``PC_SIZE``; informative).
    sc_overlap : int
        Sky-cell overlap margin, pixels (``SC_OLAP``).
    sc_nxy : int
        Sky cells per projection-cell axis (``SC_NXY``).
    path : str
        The file it was read from.
    """

    rings: tuple
    scale: float
    cell_size: float
    sc_overlap: int
    sc_nxy: int
    path: str

    @classmethod
    def read(cls, path=None, *, scale: float | None = None) -> "GridDefs":
        """Read a tessellation file.

        Parameters
        ----------
        path : str or pathlib.Path, optional
            FITS file in the ``allsky_cells.fits`` layout; default: the shipped copy.
        scale : float, optional
            Projection-cell pixel scale, arcsec/pixel, replacing ``PC_SCALE``
            (drizzlepac ``GridDefs(scale=...)``).

        Returns
        -------
        GridDefs

        Raises
        ------
        InvalidInputError
            The file cannot be read, lacks a keyword or column, or its ring table is not a
            consecutive run of cell ids.
        InvalidParameterError
            ``scale`` is not a positive number.
        """
        from astropy.io import fits

        if path is None:
            path = _default_path()
        path = Path(path)
        try:
            with fits.open(path, memmap=False) as hdul:
                header = hdul[0].header
                missing = [key for key in _PRIMARY_KEYWORDS if key not in header]
                if missing:
                    raise InvalidInputError(f"{path}: tessellation keywords missing: {', '.join(missing)}")
                if len(hdul) < 2 or hdul[1].data is None:
                    raise InvalidInputError(f"{path}: no ring table in extension 1")
                table = hdul[1].data
                names = [n.upper() for n in table.columns.names]
                missing = [col for col in _RING_COLUMNS if col not in names]
                if missing:
                    raise InvalidInputError(f"{path}: ring table columns missing: {', '.join(missing)}")
                columns = {col: np.asarray(table.field(col)) for col in _RING_COLUMNS}
                keywords = {key: header[key] for key in _PRIMARY_KEYWORDS}
        except OSError as exc:
            raise InvalidInputError(f"{path}: cannot read the tessellation: {exc}") from exc
        rings = tuple(
            Ring(zone=int(columns["ZONE"][i]), projcell=int(columns["PROJCELL"][i]),
                 nband=int(columns["NBAND"][i]), dec=float(columns["DEC"][i]),
                 dec_min=float(columns["DEC_MIN"][i]), dec_max=float(columns["DEC_MAX"][i]),
                 xcell=int(columns["XCELL"][i]), ycell=int(columns["YCELL"][i]))
            for i in range(len(columns["ZONE"])))
        if not rings:
            raise InvalidInputError(f"{path}: empty ring table")
        for before, after in zip(rings, rings[1:]):
            if after.projcell != before.projcell + before.nband or before.nband < 1:
                raise InvalidInputError(f"{path}: ring {after.zone} starts at cell {after.projcell}, "
                                        f"expected {before.projcell + before.nband}")
        grid_scale = float(keywords["PC_SCALE"]) if scale is None else resolve_scale(scale)
        return cls(rings=rings, scale=grid_scale, cell_size=float(keywords["PC_SIZE"]),
                   sc_overlap=int(keywords["SC_OLAP"]), sc_nxy=int(keywords["SC_NXY"]),
                   path=str(path))

    @property
    def n_cells(self) -> int:
        """Number of projection cells on the sky (2644)."""
        last = self.rings[-1]
        return last.projcell + last.nband

    def ring_of(self, cell_id: int) -> Ring:
        """The ring holding projection cell ``cell_id``: the last one with ``PROJCELL <= id``.

        Raises
        ------
        InvalidParameterError
            ``cell_id`` is not an integer in ``0 .. n_cells - 1``.
        """
        if isinstance(cell_id, (bool, np.bool_)) or not isinstance(cell_id, (int, np.integer)):
            raise InvalidParameterError(f"projection cell id must be an integer, got {cell_id!r}")
        if not 0 <= cell_id < self.n_cells:
            raise InvalidParameterError(
                f"projection cell id {cell_id} outside 0..{self.n_cells - 1}")
        starts = np.array([ring.projcell for ring in self.rings])
        return self.rings[int(np.flatnonzero(starts <= cell_id)[-1])]

    def rings_covering(self, dec) -> list[Ring]:
        """Rings whose ``[DEC_MIN, DEC_MAX]`` holds every declination in ``dec`` (deg), south first.

        drizzlepac ``GridDefs._find_bands``: a footprint is searched in each ring that contains
        all of its edge points.
        """
        dec = np.atleast_1d(np.asarray(dec, dtype=np.float64))
        if dec.size == 0:
            return []
        low, high = dec.min(), dec.max()
        return [ring for ring in self.rings if ring.dec_min <= low and high <= ring.dec_max]

    def __repr__(self) -> str:
        return (f"GridDefs(path={self.path!r}, scale={self.scale}, cell_size={self.cell_size}, "
                f"sc_overlap={self.sc_overlap}, sc_nxy={self.sc_nxy}, n_cells={self.n_cells})")


def _default_path() -> Path:
    from importlib import resources

    return Path(str(resources.files("hapgpu") / "data" / "allsky_cells.fits"))


@functools.lru_cache(maxsize=8)
def default_grid(scale: float | None = None) -> GridDefs:
    """The shipped tessellation (read once per scale and cached).

    Parameters
    ----------
    scale : float, optional
        Projection-cell pixel scale, arcsec/pixel; default ``PC_SCALE`` (0.04).
    """
    return GridDefs.read(scale=scale)


def _tan_wcs(crval, crpix, cd, pixel_shape):
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.crpix = crpix
    wcs.wcs.crval = crval
    wcs.wcs.cd = cd
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.pixel_shape = pixel_shape
    return wcs


class ProjectionCell:
    """One projection cell: a TAN tangent plane, north up, about 5 deg square.

    Parameters
    ----------
    index : int
        Projection-cell id on the whole sky, ``0 .. 2643``.
    scale : float, optional, keyword-only
        Pixel scale, arcsec/pixel; default: the grid's (``PC_SCALE`` = 0.04).
    grid : GridDefs, optional, keyword-only
        Tessellation; default: the shipped one.

    Attributes
    ----------
    cell_id : int
        ``index``.
    ring : Ring
        Its declination ring.
    band_index : int
        Position in the ring, ``cell_id - ring.projcell``.
    scale : float
        Pixel scale, arcsec/pixel.
    sc_overlap, sc_nxy : int
        Sky-cell overlap margin and sky cells per axis (from the grid).
    wcs : astropy.wcs.WCS
        ``CRVAL = (band_index * 360 / NBAND, DEC)``, ``CD = diag(-scale, scale) / 3600``,
        ``CRPIX = (XCELL / 2 + 0.5, YCELL / 2 + 0.5)``, ``pixel_shape = (XCELL, YCELL)``.
    shape : (int, int)
        ``(YCELL, XCELL)``.

    Raises
    ------
    InvalidParameterError
        ``index`` outside the tessellation, or a bad ``scale``.
    """

    def __init__(self, index: int, *, scale: float | None = None, grid: GridDefs | None = None):
        grid = default_grid() if grid is None else grid
        ring = grid.ring_of(index)
        self._init(ring, int(index) - ring.projcell, grid, scale)

    @classmethod
    def in_ring(cls, ring: Ring, band_index: int, *, scale: float | None = None,
                grid: GridDefs | None = None) -> "ProjectionCell":
        """The ``band_index``-th cell (0-based) of ``ring``.

        Raises
        ------
        InvalidParameterError
            ``band_index`` outside ``0 .. ring.nband - 1``.
        """
        if not 0 <= band_index < ring.nband:
            raise InvalidParameterError(
                f"band index {band_index} outside 0..{ring.nband - 1} of ring {ring.zone}")
        cell = cls.__new__(cls)
        cell._init(ring, int(band_index), default_grid() if grid is None else grid, scale)
        return cell

    def _init(self, ring: Ring, band_index: int, grid: GridDefs, scale) -> None:
        self.grid = grid
        self.ring = ring
        self.band_index = band_index
        self.cell_id = ring.projcell + band_index
        self.scale = grid.scale if scale is None else resolve_scale(scale)
        self.sc_overlap = grid.sc_overlap
        self.sc_nxy = grid.sc_nxy
        degrees = self.scale / 3600.0
        self.wcs = _tan_wcs(
            crval=[band_index * 360.0 / ring.nband, ring.dec],
            crpix=[ring.xcell / 2.0 + 0.5, ring.ycell / 2.0 + 0.5],
            cd=np.array([[-degrees, 0.0], [0.0, degrees]], dtype=np.float64),
            pixel_shape=(ring.xcell, ring.ycell))
        self.shape = (ring.ycell, ring.xcell)

    @property
    def pscale(self) -> float:
        """Pixel scale, arcsec/pixel (same as ``scale``)."""
        return self.scale

    def sky_cell_step(self) -> tuple[int, int]:
        """Distance between neighbouring sky cells' origins, in this cell's pixels (21442)."""
        return (int(self.ring.xcell / self.sc_nxy + 0.5), int(self.ring.ycell / self.sc_nxy + 0.5))

    def __repr__(self) -> str:
        return (f"ProjectionCell({self.cell_id}, ring={self.ring.zone}, "
                f"crval=({self.wcs.wcs.crval[0]:.6f}, {self.wcs.wcs.crval[1]:.6f}), "
                f"scale={self.scale})")


class SkyCell:
    """One sky cell: a sub-array of its projection cell's tangent plane.

    Parameters
    ----------
    projection_cell : ProjectionCell
        The projection cell it belongs to.
    x, y : int
        1-based sky-cell indices, ``1 .. SC_NXY`` (21); (1, 1) is the south-east corner.
    scale : {"fine", "coarse"} or float
        Pixel scale: 0.04"/px, 0.12"/px or arcsec/pixel.

    Attributes
    ----------
    sky_cell_id : str
        ``skycell-pPPPPxXXyYY``.
    x_index, y_index : int
        ``x``, ``y``.
    scale : float
        Pixel scale, arcsec/pixel.
    wcs : astropy.wcs.WCS
        TAN, CRVAL of the projection cell, ``CD = pc CD / ratio``,
        ``CRPIX = (pc CRPIX - (index - 1) * step) * ratio`` (ratio = pc scale / ``scale``,
        step = ``int(XCELL / SC_NXY + 0.5)``), ``pixel_shape = (n, n)`` with
        ``n = int((step + 2 * SC_OLAP) * ratio)``.
    shape : (int, int)
        ``(ny, nx)``: 21954 x 21954 fine, 7318 x 7318 coarse.
    members : list of str
        Exposures found in the cell (filled by :func:`get_sky_cells`).

    Raises
    ------
    InvalidParameterError
        ``x`` or ``y`` outside ``1 .. SC_NXY``, or a bad ``scale``.

    Notes
    -----
    Formulas of drizzlepac ``cell_utils.SkyCell._build_wcs`` (hap-pipeline.md §2.1), evaluated in
    the same order so that the WCS values are the same floating-point numbers. drizzlepac also
    accepts index 0 (treated as 1); hapgpu rejects it.
    """

    def __init__(self, projection_cell: ProjectionCell, x: int, y: int, scale="fine"):
        nxy = projection_cell.sc_nxy
        for label, value in (("x", x), ("y", y)):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                raise InvalidParameterError(f"sky-cell {label} index must be an integer, got {value!r}")
            if not 1 <= value <= nxy:
                raise InvalidParameterError(
                    f"sky-cell {label} index {value} outside 1..{nxy} "
                    f"(projection cell {projection_cell.cell_id})")
        self.projection_cell = projection_cell
        self.x_index = int(x)
        self.y_index = int(y)
        self.scale = resolve_scale(scale)
        self.sky_cell_id = sky_cell_name(projection_cell.cell_id, x, y)
        self.overlap = projection_cell.sc_overlap
        self.nxy = nxy
        self.members: list[str] = []

        ratio = projection_cell.scale / self.scale
        step_x, step_y = projection_cell.sky_cell_step()
        naxis1 = int((step_x + self.overlap * 2) * ratio)
        naxis2 = int((step_y + self.overlap * 2) * ratio)
        pc_crpix = projection_cell.wcs.wcs.crpix
        crpix1 = (pc_crpix[0] - (self.x_index - 1) * step_x) * ratio
        crpix2 = (pc_crpix[1] - (self.y_index - 1) * step_y) * ratio
        self.wcs = _tan_wcs(crval=projection_cell.wcs.wcs.crval, crpix=[crpix1, crpix2],
                            cd=projection_cell.wcs.wcs.cd / ratio, pixel_shape=(naxis1, naxis2))
        self.shape = (naxis2, naxis1)

    @classmethod
    def from_name(cls, name: str, scale="fine", *, grid: GridDefs | None = None) -> "SkyCell":
        """The sky cell called ``name`` (``skycell-p1889x07y19`` or ``p1889x07y19``).

        Raises
        ------
        InvalidParameterError
            A malformed name, a projection-cell id outside the tessellation, indices outside
            ``1 .. SC_NXY``, or a bad ``scale``.
        """
        cell_id, x, y = parse_sky_cell_name(name)
        try:
            projection_cell = ProjectionCell(cell_id, grid=grid)
            return cls(projection_cell, x, y, scale=scale)
        except InvalidParameterError as exc:
            raise InvalidParameterError(f"sky cell {name!r}: {exc}") from None

    @property
    def scellid(self) -> str:
        """The name without ``skycell-`` (``p1889x07y19``), as in ``SCELLID``/``SKYCELL``."""
        return self.sky_cell_id[len(SKYCELL_PREFIX):]

    @property
    def pscale(self) -> float:
        """Pixel scale, arcsec/pixel (same as ``scale``)."""
        return self.scale

    def __repr__(self) -> str:
        return (f"SkyCell({self.sky_cell_id}, scale={self.scale}, shape={self.shape}, "
                f"members={len(self.members)})")
