"""Overlap of two convex spherical polygons with great-circle edges.

drizzlepac keeps a candidate projection cell when ``SphericalPolygon.from_wcs(pc.wcs)
.overlap(SphericalPolygon.from_wcs(meta_wcs)) > 0`` (spherical_geometry), i.e. when the two
image rectangles, each the great-circle quadrilateral through the sky positions of its four
outer pixel corners, share a region of positive area. Both are convex (a TAN image's straight
edges are great circles) and far smaller than a hemisphere, so a direct test replaces
spherical_geometry (not a hapgpu dependency): one polygon is clipped by the other's edge planes
and the area left is compared with zero. Touching along an edge or at a vertex is not an overlap (zero
area), as in the reference.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError

__all__ = ["radec_to_xyz", "image_polygon", "convex_polygons_overlap"]


def radec_to_xyz(ra, dec) -> np.ndarray:
    """Unit vectors ``(n, 3)`` float64 of (ra, dec) in degrees."""
    ra = np.deg2rad(np.asarray(ra, dtype=np.float64))
    dec = np.deg2rad(np.asarray(dec, dtype=np.float64))
    cos_dec = np.cos(dec)
    return np.stack([cos_dec * np.cos(ra), cos_dec * np.sin(ra), np.sin(dec)], axis=-1)


def image_polygon(wcs, shape) -> np.ndarray:
    """Counter-clockwise unit-vector vertices ``(4, 3)`` of an image's outer pixel corners.

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        Celestial WCS without distortion (a TAN frame).
    shape : (int, int)
        ``(ny, nx)``.

    Notes
    -----
    The corners are the 0-based pixel positions ``(-0.5, -0.5)``, ``(nx - 0.5, -0.5)``,
    ``(nx - 0.5, ny - 0.5)``, ``(-0.5, ny - 0.5)``, as spherical_geometry's ``from_wcs`` uses
    them; the order is made counter-clockwise seen from outside the sphere (the image centre
    on the left of every edge).
    """
    ny, nx = shape
    x = np.array([-0.5, nx - 0.5, nx - 0.5, -0.5])
    y = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5])
    ra, dec = wcs.pixel_to_world_values(x, y)
    vertices = radec_to_xyz(ra, dec)
    if not np.all(np.isfinite(vertices)):
        raise InvalidInputError("image corners have no finite sky position")
    centre = radec_to_xyz(*wcs.pixel_to_world_values((nx - 1) / 2.0, (ny - 1) / 2.0))
    if np.dot(np.cross(vertices[0], vertices[1]), centre) < 0:
        vertices = vertices[::-1].copy()
    return vertices


def _clip(polygon: list, normal: np.ndarray) -> list:
    """Part of a convex polygon on the non-negative side of the great circle with ``normal``."""
    clipped = []
    for i, current in enumerate(polygon):
        following = polygon[(i + 1) % len(polygon)]
        d_current, d_following = float(current @ normal), float(following @ normal)
        if d_current >= 0:
            clipped.append(current)
        if (d_current >= 0) != (d_following >= 0):
            point = current + (d_current / (d_current - d_following)) * (following - current)
            clipped.append(point / np.linalg.norm(point))
    return clipped


def _fan_area(vertices) -> float:
    """Area of the flat polygon through the vertices (fan of triangles), steradian-like units."""
    if len(vertices) < 3:
        return 0.0
    origin = vertices[0]
    return float(sum(0.5 * np.linalg.norm(np.cross(a - origin, b - origin))
                     for a, b in zip(vertices[1:-1], vertices[2:])))


def convex_polygons_overlap(first: np.ndarray, second: np.ndarray, *,
                            rtol: float = 1e-9) -> bool:
    """Whether two convex spherical polygons share a region of positive area.

    Parameters
    ----------
    first, second : numpy.ndarray
        ``(m, 3)`` and ``(n, 3)`` unit-vector vertices, counter-clockwise, each polygon smaller
        than a hemisphere, edges along great circles (shorter arcs).
    rtol : float, keyword-only
        Intersections smaller than ``rtol`` times the smaller polygon count as touching
        (rounding noise of polygons that share only an edge or a vertex).

    Returns
    -------
    bool

    Notes
    -----
    ``first`` is clipped by the hemisphere on the inner side of each edge of ``second``
    (Sutherland-Hodgman on the sphere: every edge plane passes through the centre, so an arc
    is cut where it crosses the plane) and the area of what is left is compared with the
    polygons' own areas, each measured as its flat chord polygon (exact enough to decide > 0).
    """
    normals = np.cross(second, np.roll(second, -1, axis=0))
    clipped = list(first)
    for normal in normals:
        clipped = _clip(clipped, normal)
        if len(clipped) < 3:
            return False
    scale = min(_fan_area(list(first)), _fan_area(list(second)))
    return _fan_area(clipped) > rtol * scale
