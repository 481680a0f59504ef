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

__all__ = ["chip_footprint", "intersect_footprints", "fill_polygon", "overlap_mask", "overlap_groups"]


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

    Edges enter the active table at their lower end and leave at their upper end (except on
    the last scan line); each crossing is rounded up; spans between pairs of crossings are
    filled inclusively and clipped to the image (skypac's ``region.Polygon.scan``).
    """
    ny, nx = shape
    mask = np.zeros(shape, dtype=bool)
    v = np.asarray(vertices, dtype=np.int64)
    shift_x = min(0, int(v[:, 0].min()))
    shift_y = min(0, int(v[:, 1].min()))
    v = v - np.array([shift_x, shift_y])
    x0, y0 = int(v[:, 0].min()), int(v[:, 1].min())
    width = int(v[:, 0].max()) - x0
    last = int(v[:, 1].max())
    edges = []
    for start, stop in zip(v[:-1], v[1:]):
        low = start if start[1] < stop[1] else stop
        edges.append((start, stop, int(low[1]), int(max(start[1], stop[1]))))
    active = []
    for y in range(y0, last + 1):
        if y < last:
            active += [e for e in edges if e[2] == y and e[0][1] != e[1][1]]
            active = [e for e in active if e[3] != y]
        if width <= 0:
            continue
        crossings = []
        for start, stop, _, _ in active:
            ux, uy = int(stop[0] - start[0]), int(stop[1] - start[1])
            t = float(width * (int(start[1]) - y)) / float(-uy * width)
            crossings.append(int(np.ceil(t * ux + int(start[0]))))
        crossings.sort()
        row = y + shift_y
        if not 0 <= row < ny:
            continue
        for i, j in zip(crossings[::2], crossings[1::2]):
            xs = max(i + shift_x, 0)
            stop = (j + shift_x if j + shift_x < nx else nx - 1) + 1
            if stop < 0:  # the reference slices with a negative stop: counted from the row end
                stop += nx
            mask[row, xs:stop] = True
    return mask


def overlap_mask(wcs, shape, ring) -> np.ndarray:
    """Pixels of a chip inside an overlap ring ``(ra, dec)`` (vertices rounded half to even)."""
    ra, dec = ring
    x, y = wcs.all_world2pix(ra, dec, 0)
    vertices = np.stack([np.rint(np.asarray(x)), np.rint(np.asarray(y))], axis=-1).astype(np.int64)
    return fill_polygon(vertices, shape)


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
