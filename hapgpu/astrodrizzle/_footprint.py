"""Chip footprints on the sky, their overlaps, and the chip pixels inside an overlap.

Sky matching needs, for every pair of chips, the pixels of each chip that see the common sky.
A footprint is the chip outline (pixel edges, four corners) mapped through the full distorted
WCS; its edges are great-circle arcs. Intersecting two such convex spherical polygons is done
in a gnomonic (tangent-plane) projection, where great circles are straight lines, so clipping
one convex polygon by the other there gives the exact spherical intersection. The overlap's
vertices are mapped back to each chip's pixels, rounded, and scan-filled with the rules skypac
uses (edges entering at their lower end, crossings rounded up, spans inclusive).

All host code on a handful of vertices; the fill returns one boolean mask per chip.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "chip_footprint",
    "fill_polygon",
    "intersect_footprints",
    "overlap_groups",
    "overlap_mask",
    "overlap_vertices",
]


def _unit(ra, dec):
    ra, dec = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def _radec(xyz):
    xyz = xyz / np.linalg.norm(xyz, axis=-1, keepdims=True)
    ra = np.degrees(np.arctan2(xyz[..., 1], xyz[..., 0])) % 360.0
    dec = np.degrees(np.arcsin(np.clip(xyz[..., 2], -1.0, 1.0)))
    return ra, dec


def chip_footprint(wcs, shape) -> np.ndarray:
    """Unit vectors ``(4, 3)`` of a chip's corners (pixel edges), counter-clockwise in pixels."""
    ny, nx = shape
    x = np.array([-0.5, nx - 0.5, nx - 0.5, -0.5])
    y = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5])
    ra, dec = wcs.all_pix2world(x, y, 0)
    return _unit(np.asarray(ra), np.asarray(dec))


def _plane_basis(centre):
    centre = centre / np.linalg.norm(centre)
    helper = np.array([0.0, 0.0, 1.0]) if abs(centre[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(helper, centre)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(centre, e1)
    return centre, e1, e2


def _project(xyz, basis):
    c, e1, e2 = basis
    t = xyz @ c
    return np.stack([(xyz @ e1) / t, (xyz @ e2) / t], axis=-1)


def _unproject(uv, basis):
    c, e1, e2 = basis
    return c[None, :] + uv[:, :1] * e1[None, :] + uv[:, 1:] * e2[None, :]


def _ccw(poly):
    x, y = poly[:, 0], poly[:, 1]
    area = 0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)
    return poly if area > 0 else poly[::-1]


def _clip(subject, clipper):
    """Sutherland-Hodgman: ``subject`` clipped by the convex counter-clockwise ``clipper``."""
    output = list(subject)
    n = len(clipper)
    for i in range(n):
        a, b = clipper[i], clipper[(i + 1) % n]
        edge = b - a
        inputs, output = output, []
        if not inputs:
            break

        def side(p):
            return edge[0] * (p[1] - a[1]) - edge[1] * (p[0] - a[0])

        prev = inputs[-1]
        for cur in inputs:
            s_cur, s_prev = side(cur), side(prev)
            if s_cur >= 0:
                if s_prev < 0:
                    output.append(prev + (cur - prev) * (s_prev / (s_prev - s_cur)))
                output.append(cur)
            elif s_prev >= 0:
                output.append(prev + (cur - prev) * (s_prev / (s_prev - s_cur)))
            prev = cur
    return np.array(output)


def intersect_footprints(fp1: np.ndarray, fp2: np.ndarray):
    """Overlap of two footprints as ``(ra, dec)`` of a closed vertex ring, or None.

    Identical footprints (corner sets equal to 1e-8) return the first one, as skypac does.
    """
    if np.allclose(np.sort(fp1, axis=0), np.sort(fp2, axis=0), rtol=0, atol=1e-8):
        ring = fp1
    else:
        basis = _plane_basis(fp1.sum(axis=0) + fp2.sum(axis=0))
        if np.any(fp1 @ basis[0] <= 0) or np.any(fp2 @ basis[0] <= 0):
            return None  # more than a hemisphere apart
        p1 = _ccw(_project(fp1, basis))
        p2 = _ccw(_project(fp2, basis))
        clipped = _clip(p1, p2)
        if len(clipped) < 3:
            return None
        x, y = clipped[:, 0], clipped[:, 1]
        if 0.5 * abs(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)) <= 0.0:
            return None
        ring = _unproject(clipped, basis)
    ra, dec = _radec(np.vstack([ring, ring[:1]]))
    return ra, dec


def fill_polygon(vertices, shape) -> np.ndarray:
    """Scan-fill a closed ring of integer vertices into a boolean ``shape`` mask.

    Parameters
    ----------
    vertices : array_like
        int ``(n, 2)`` ``(x, y)`` 0-based pixel vertices, the last equal to the first.
    shape : (int, int)
        ``(ny, nx)`` of the mask.

    Returns
    -------
    numpy.ndarray
        bool ``shape``.

    Notes
    -----
    skypac's ``region.Polygon.scan``: the ring is shifted so that its bounding box starts at
    non-negative coordinates; on each scan line ``y`` of the box the active edges are the
    non-horizontal ones with ``ymin <= y < ymax``, plus, on the box's last line, those ending
    there; each edge's crossing, ``x = ceil(t * dx + x_start)`` with ``t = width * (y_start - y) /
    (-dy * width)`` (skypac's ``Edge.intersection`` with the scan line, in float64), is rounded
    up; the sorted crossings are paired and each span ``[i, j]`` is set inclusively, clipped to
    the image (a stop before the row start counts from its end, as skypac's slice does). The
    crossings of every scan line are computed at once with NumPy; only the spans are set one
    by one.
    """
    ny, nx = shape
    mask = np.zeros(shape, dtype=bool)
    v = np.asarray(vertices, dtype=np.int64)
    shift_x = min(0, int(v[:, 0].min()))
    shift_y = min(0, int(v[:, 1].min()))
    v = v - np.array([shift_x, shift_y])
    width = int(v[:, 0].max()) - int(v[:, 0].min())
    last = int(v[:, 1].max())
    if width <= 0:
        return mask
    start, stop = v[:-1], v[1:]
    sloped = start[:, 1] != stop[:, 1]
    start, stop = start[sloped], stop[sloped]
    if start.shape[0] == 0:
        return mask
    y_low = np.minimum(start[:, 1], stop[:, 1])
    y_high = np.maximum(start[:, 1], stop[:, 1])
    # scan lines of each edge: ymin <= y < ymax, and the last line for the edges ending on it
    counts = y_high - y_low + (y_high == last)
    edge = np.repeat(np.arange(start.shape[0]), counts)
    first = np.cumsum(counts) - counts
    y = y_low[edge] + (np.arange(edge.size) - first[edge])
    ux = (stop[:, 0] - start[:, 0])[edge]
    uy = (stop[:, 1] - start[:, 1])[edge]
    t = (width * (start[edge, 1] - y)).astype(np.float64) / (-uy * width).astype(np.float64)
    x = np.ceil(t * ux + start[edge, 0]).astype(np.int64)
    order = np.lexsort((x, y))
    x, y = x[order], y[order]
    # pair the sorted crossings of each scan line: (0, 1), (2, 3), ...; an odd last one is left
    line_start = np.flatnonzero(np.r_[True, y[1:] != y[:-1]])
    rank = np.arange(y.size) - np.repeat(line_start, np.diff(np.r_[line_start, y.size]))
    left = np.flatnonzero((rank % 2 == 0)[:-1] & (y[1:] == y[:-1]))
    rows = y[left] + shift_y
    keep = (rows >= 0) & (rows < ny)
    rows, i, j = rows[keep], x[left][keep] + shift_x, x[left + 1][keep] + shift_x
    begin = np.minimum(np.maximum(i, 0), nx)
    end = np.where(j < nx, j, nx - 1) + 1
    end = np.where(end < 0, end + nx, end)        # Python slice rules, applied once
    end = np.minimum(np.maximum(end, 0), nx)
    for row, b, e in zip(rows.tolist(), begin.tolist(), end.tolist()):
        if e > b:
            mask[row, b:e] = True
    return mask


def overlap_vertices(wcs, ring) -> np.ndarray:
    """An overlap ring ``(ra, dec)`` in a chip's pixels: int64 ``(n, 2)`` ``(x, y)``, 0-based,
    rounded half to even (what :func:`overlap_mask` fills)."""
    ra, dec = ring
    x, y = wcs.all_world2pix(ra, dec, 0)
    return np.stack([np.rint(np.asarray(x)), np.rint(np.asarray(y))], axis=-1).astype(np.int64)


def overlap_mask(wcs, shape, ring) -> np.ndarray:
    """Pixels of a chip inside an overlap ring ``(ra, dec)`` (vertices rounded half to even)."""
    return fill_polygon(overlap_vertices(wcs, ring), shape)


def overlap_groups(footprints: list) -> list[list[int]]:
    """Group images whose footprints overlap, directly or through other images.

    Parameters
    ----------
    footprints : list of list of ndarray
        Per image, the :func:`chip_footprint` of each of its chips.

    Returns
    -------
    list of list of int
        Image indices per group (connected components of the "some chip of one overlaps some
        chip of the other" relation), each sorted, groups ordered by their first index.
    """
    n = len(footprints)
    parent = list(range(n))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if root(i) == root(j):
                continue
            if any(intersect_footprints(a, b) is not None for a in footprints[i] for b in footprints[j]):
                parent[root(j)] = root(i)
    groups: dict = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])
