"""Edge pixels of a footprint mask, as drizzlepac's ``SkyFootprint.find_corners`` traces them.

The sky-cell search (hap-pipeline.md §2.2 step 3) works on the outline of each exposure's
footprint on the visit frame. drizzlepac ``cell_utils.SkyFootprint.find_corners`` builds it as:

1. open the 0/1 footprint: 3 binary erosions, then 3 binary dilations (scipy's default
   cross-shaped element, zero border), removing islands and slivers;
2. smooth: Gaussian filter with sigma = 2 px on the float32 mask, keep pixels > 0.5;
3. label the regions (4-connected) and, for each region, pad its bounding box with 10 empty
   pixels, take the border pixels (the region minus its binary erosion) and walk them in order
   (``_poly_trace``, described in :func:`trace_border`).

The walked pixels of all regions, in the frame's 0-based pixel coordinates, are the "edges"
that are converted to the sky. Host code (scipy.ndimage plus one walk per region); the padded
per-region boxes of step 3 are not built (:func:`footprint_edges` says why the pixels are the
same).
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError

__all__ = ["footprint_edges", "trace_border", "tiled_local_filter", "open_and_smooth",
           "dilate_cross", "erode_cross", "walk_border", "walk_pixels", "label_runs"]

#: Iterations of the erosion and of the dilation that clean the footprint.
OPENING_ITERATIONS = 3
#: Gaussian smoothing of the cleaned footprint, pixels, and its threshold.
SMOOTHING_SIGMA = 2.0
SMOOTHING_THRESHOLD = 0.5
#: Pixels around the footprint's bounding box kept when cropping (opening grows nothing, the
#: Gaussian reaches 4 sigma = 8 px); cropping with this margin changes no result.
_CROP_MARGIN = 16
#: Side of the square tiles of :func:`tiled_local_filter`, pixels.
TILE = 128


def tiled_local_filter(mask: np.ndarray, function, reach: int, tile: int = TILE) -> np.ndarray:
    """Apply a local binary-image operation only where the mask is not uniform.

    Parameters
    ----------
    mask : numpy.ndarray
        bool ``(ny, nx)`` input.
    function : callable
        ``function(window) -> bool array of the window's shape``: an operation whose output at a
        pixel depends only on the input within ``reach`` pixels (Chebyshev distance) and on the
        frame edges, that maps an all-False input to all False, and an all-True input to True
        at every pixel farther than ``reach`` from the frame edges. (scipy's binary
        dilations/erosions with a zero border and ``gaussian_filter(...) > t`` qualify.)
    reach : int
        The operation's reach, pixels (at most ``tile``).
    tile : int
        Tile side, pixels.

    Returns
    -------
    numpy.ndarray
        bool ``(ny, nx)``: equal, pixel for pixel, to ``function(mask)``.

    Notes
    -----
    The frame is cut into ``tile x tile`` tiles. A tile whose 3 x 3 tile neighbourhood is all
    False is False; all True and away from the frame edges, True. The other tiles, joined into
    runs along each tile row, are computed as ``function`` of the run plus ``reach + 4`` pixels
    on every side (clipped to the frame, whose edges are then the window's), of which the run is
    kept: every output pixel of the run sees exactly the input it sees in the whole frame, so the
    result is the same, bit for bit (the arithmetic per pixel is the same). The work scales with
    the length of the mask's edges instead of its area.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise InvalidInputError(f"mask must be 2-D, got shape {mask.shape}")
    if reach > tile:
        raise InvalidInputError(f"reach {reach} exceeds the tile size {tile}")
    ny, nx = mask.shape
    out = np.zeros((ny, nx), dtype=bool)
    if mask.size == 0:
        return out
    nby, nbx = -(-ny // tile), -(-nx // tile)
    padded = np.zeros((nby * tile, nbx * tile), dtype=bool)
    padded[:ny, :nx] = mask
    blocks = padded.reshape(nby, tile, nbx, tile)
    any_set = blocks.any(axis=(1, 3))
    all_set = blocks.all(axis=(1, 3))
    all_set[-1, :] &= ny % tile == 0
    all_set[:, -1] &= nx % tile == 0
    from scipy import ndimage

    near_any = ndimage.maximum_filter(any_set, size=3, mode="constant", cval=False)
    # outside the frame counts as "not all set": tiles on the frame edges are always computed
    near_all = ndimage.minimum_filter(all_set, size=3, mode="constant", cval=False)
    for by, bx in zip(*np.nonzero(near_all)):
        out[by * tile:(by + 1) * tile, bx * tile:(bx + 1) * tile] = True
    compute = near_any & ~near_all
    halo = reach + 4
    for by in range(nby):
        columns = np.flatnonzero(compute[by])
        if columns.size == 0:
            continue
        breaks = np.flatnonzero(np.diff(columns) > 1)
        starts = np.concatenate([[columns[0]], columns[breaks + 1]])
        stops = np.concatenate([columns[breaks], [columns[-1]]]) + 1
        y0, y1 = by * tile, min((by + 1) * tile, ny)
        wy0, wy1 = max(y0 - halo, 0), min(y1 + halo, ny)
        for b0, b1 in zip(starts, stops):
            x0, x1 = int(b0) * tile, min(int(b1) * tile, nx)
            wx0, wx1 = max(x0 - halo, 0), min(x1 + halo, nx)
            result = function(mask[wy0:wy1, wx0:wx1])
            out[y0:y1, x0:x1] = result[y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0]
    return out


#: Neighbourhood offsets ``(dx, dy)`` in row-major order (rows outer): 3 x 3 and 5 x 5.
_NEAR = tuple((dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1))
_FAR = tuple((dx, dy) for dy in range(-2, 3) for dx in range(-2, 3))


def walk_border(border: np.ndarray) -> np.ndarray:
    """The walk of :func:`trace_border` on a validated 2-D array (set pixels: nonzero).

    See :func:`walk_pixels` for how the pixels are looked up.
    """
    ys, xs = np.nonzero(border)
    return walk_pixels(xs, ys)


def walk_pixels(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """The walk of :func:`trace_border` over a set of border pixels given by their coordinates.

    Parameters
    ----------
    xs, ys : numpy.ndarray
        Integer ``(n,)`` 0-based column and row of each set pixel (any order, no repeats).

    Returns
    -------
    numpy.ndarray
        int32 ``(m + 1, 2)`` ``(x, y)``, as :func:`trace_border`. The walk depends only on the
        pixels' relative positions, so a translated set gives the translated path.

    Raises
    ------
    InvalidInputError
        No pixel.

    Notes
    -----
    The set pixels are kept in a Python set of flat indices ``row * width + column`` over their
    bounding box padded by 2 pixels (the farthest look-up), so that a neighbour is an integer
    offset: each step looks up at most 25 neighbours and scores two candidates on 9 each,
    without slicing an array or building a grid as large as the box.
    """
    xs = np.asarray(xs)
    ys = np.asarray(ys)
    if xs.size == 0:
        raise InvalidInputError("border mask has no set pixel to trace")
    x = int(xs.min())
    y = int(ys[xs == x].min())
    x0, y0 = x - 2, int(ys.min()) - 2
    width = int(xs.max()) - x0 + 3
    pixels = set(((ys.astype(np.int64) - y0) * width + (xs.astype(np.int64) - x0)).tolist())
    near = [(dx, dy, dy * width + dx) for dx, dy in _NEAR]
    far = [(dx, dy, dy * width + dx) for dx, dy in _FAR]
    around = [offset for _, _, offset in near]
    here = (y - y0) * width + (x - x0)
    pixels.discard(here)
    path = [(x, y)]
    remaining = len(pixels)
    slope = -1
    first = True
    while first or remaining > 0:
        pixels.discard(here)
        hits = [hit for hit in near if here + hit[2] in pixels]
        if not hits:
            hits = [hit for hit in far if here + hit[2] in pixels]
            if not hits:
                break
        pick = 0
        if len(hits) > 1:
            with_slope = 0 if slope <= 0 else 1
            other = 1 if slope < 0 else 0
            centre = here + hits[with_slope][2]
            score_slope = sum(centre + offset in pixels for offset in around)
            centre = here + hits[other][2]
            score_other = sum(centre + offset in pixels for offset in around)
            pick = other if score_other > score_slope else with_slope
        step_x, step_y, offset = hits[pick]
        x, y = x + step_x, y + step_y
        here += offset
        path.append((x, y))
        remaining -= 1
        first = False
        slope = (step_y > 0) - (step_y < 0)
        if step_x < 0:
            slope = -slope
    path.append(path[0])
    return np.array(path, dtype=np.int32)


def trace_border(border: np.ndarray) -> np.ndarray:
    """Walk the set pixels of a one-pixel-wide border in order (drizzlepac ``_poly_trace``).

    Parameters
    ----------
    border : numpy.ndarray
        2-D array, nonzero on the border pixels (``region - binary_erosion(region)``).

    Returns
    -------
    numpy.ndarray
        int32 ``(n + 1, 2)``: the visited pixels as 0-based ``(x, y)``, the first repeated at the
        end to close the outline.

    Raises
    ------
    InvalidInputError
        ``border`` is not 2-D or has no set pixel.

    Notes
    -----
    The walk starts at the lowest set pixel of the leftmost column holding one. At each step the
    current pixel is cleared and the set pixels of its 3 x 3 neighbourhood (5 x 5 when the 3 x 3
    one is empty; the walk ends when both are) are listed in row-major order. With one candidate
    it is taken. With several, only the first two are weighed: the one matching the sign of the
    last step's slope (``dy`` if ``dx >= 0`` else ``-dy``, -1 at the start) against the other,
    each scored by the sum of its own 3 x 3 neighbourhood; the larger score wins and a tie keeps
    the slope's choice. The walk also ends after as many steps as there were set pixels. Not
    every border pixel need be visited: this reproduces drizzlepac's outline, pixel for pixel.
    """
    border = np.asarray(border)
    if border.ndim != 2:
        raise InvalidInputError(f"border mask must be 2-D, got shape {border.shape}")
    return walk_border(border)


#: Most iterations :func:`dilate_cross` and :func:`erode_cross` make as shifted whole-array
#: ORs/ANDs; beyond, one distance transform is faster (measured on 216 x 1200 windows).
_SHIFT_ITERATIONS = 4


def dilate_cross(mask: np.ndarray, iterations: int) -> np.ndarray:
    """``scipy.ndimage.binary_dilation(mask, iterations=n)`` with its default cross element.

    Parameters
    ----------
    mask : numpy.ndarray
        bool ``(ny, nx)``.
    iterations : int
        Number of dilations (0 returns a copy; scipy's 0 means "until nothing changes").

    Returns
    -------
    numpy.ndarray
        bool ``(ny, nx)``: each iteration sets every pixel whose 4-neighbour or itself is set
        (outside the frame counts as unset), the same pixels as scipy: whole-array shifted
        ORs, or beyond :data:`_SHIFT_ITERATIONS` the city-block distance to the nearest set
        pixel (:func:`hapgpu.kernels.detection.morphology.taxicab_dilation`).
    """
    if iterations > _SHIFT_ITERATIONS:
        from ..kernels.detection.morphology import taxicab_dilation

        return taxicab_dilation(np.ascontiguousarray(mask, dtype=bool), int(iterations))
    out = np.array(mask, dtype=bool)
    for _ in range(iterations):
        src = out.copy()
        out[1:] |= src[:-1]
        out[:-1] |= src[1:]
        out[:, 1:] |= src[:, :-1]
        out[:, :-1] |= src[:, 1:]
    return out


def erode_cross(mask: np.ndarray, iterations: int) -> np.ndarray:
    """``scipy.ndimage.binary_erosion(mask, iterations=n)`` with its default cross element.

    Parameters
    ----------
    mask : numpy.ndarray
        bool ``(ny, nx)``.
    iterations : int
        Number of erosions (0 returns a copy; scipy's 0 means "until nothing changes").

    Returns
    -------
    numpy.ndarray
        bool ``(ny, nx)``: each iteration keeps the pixels whose 4 neighbours and itself are set,
        outside the frame counting as unset (scipy's ``border_value=0``): whole-array shifted
        ANDs, or beyond :data:`_SHIFT_ITERATIONS` the city-block distance to the nearest unset
        pixel (:func:`hapgpu.kernels.detection.morphology.taxicab_erosion`).
    """
    if iterations > _SHIFT_ITERATIONS:
        from ..kernels.detection.morphology import taxicab_erosion

        return taxicab_erosion(np.ascontiguousarray(mask, dtype=bool), int(iterations))
    out = np.array(mask, dtype=bool)
    for _ in range(iterations):
        src = out.copy()
        out[1:] &= src[:-1]
        out[:-1] &= src[1:]
        out[:, 1:] &= src[:, :-1]
        out[:, :-1] &= src[:, 1:]
        out[0] = out[-1] = False
        out[:, 0] = out[:, -1] = False
    return out


#: Reach of :func:`open_and_smooth`, pixels: the opening's erosion and dilation, and the
#: Gaussian's kernel radius (scipy: ``int(4 * sigma + 0.5)``).
OPEN_AND_SMOOTH_REACH = 2 * OPENING_ITERATIONS + int(4.0 * SMOOTHING_SIGMA + 0.5)


def open_and_smooth(mask: np.ndarray) -> np.ndarray:
    """Steps 1-2 of ``find_corners``: opening, then ``gaussian_filter(float32, 2) > 0.5``.

    Parameters
    ----------
    mask : numpy.ndarray
        bool ``(ny, nx)``.

    Returns
    -------
    numpy.ndarray
        bool ``(ny, nx)``.
    """
    from scipy import ndimage

    opened = dilate_cross(erode_cross(mask, OPENING_ITERATIONS), OPENING_ITERATIONS)
    return ndimage.gaussian_filter(opened.astype(np.float32), sigma=SMOOTHING_SIGMA) > SMOOTHING_THRESHOLD


def label_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """4-connected regions of a bool mask, found on its row runs.

    Parameters
    ----------
    mask : numpy.ndarray
        bool ``(ny, nx)``.

    Returns
    -------
    rows, starts : numpy.ndarray
        int64 ``(n_runs,)``: row and first column of every run of set pixels, in raster order
        (a run ends at the next unset pixel or the row's end).
    regions : numpy.ndarray
        int64 ``(n_runs,)``: 0-based region of each run.
    n_regions : int

    Notes
    -----
    Runs of adjacent rows whose column ranges overlap are 4-connected and are merged
    (union-find). Regions are numbered in raster order of their first pixel, as
    ``scipy.ndimage.label`` numbers them (label = region + 1), so the regions are scipy's
    with the work proportional to the number of runs instead of the pixels (a footprint has a
    few runs per row).
    """
    mask = np.asarray(mask, dtype=bool)
    ny, nx = mask.shape
    padded = np.zeros((ny, nx + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    change = np.diff(padded, axis=1)
    change_rows, change_cols = np.nonzero(change)
    rising = change[change_rows, change_cols] > 0
    rows = change_rows[rising].astype(np.int64)
    starts = change_cols[rising].astype(np.int64)
    stops = change_cols[~rising].astype(np.int64)  # starts and stops alternate within a row
    n_runs = rows.size
    parent = list(range(n_runs))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first = np.searchsorted(rows, np.arange(ny + 1)).tolist()
    starts_list, stops_list = starts.tolist(), stops.tolist()
    for y in range(ny - 1):
        a, a_end, b, b_end = first[y], first[y + 1], first[y + 1], first[y + 2]
        while a < a_end and b < b_end:
            if starts_list[a] < stops_list[b] and starts_list[b] < stops_list[a]:
                ra, rb = root(a), root(b)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)  # the root is the region's first run
            if stops_list[a] <= stops_list[b]:
                a += 1
            else:
                b += 1
    roots = np.array([root(i) for i in range(n_runs)], dtype=np.int64)
    firsts, regions = np.unique(roots, return_inverse=True)
    return rows, starts, regions.astype(np.int64).ravel(), int(firsts.size)


def footprint_edges(footprint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outline pixels of a footprint mask, region by region (drizzlepac ``find_corners`` edges).

    Parameters
    ----------
    footprint : numpy.ndarray
        2-D ``(ny, nx)`` mask, covered where ``>= 1`` (what drizzlepac's
        ``clip(mask, 0, 1).astype(int16)`` keeps; e.g. the ``total_mask`` of
        :func:`hapgpu.svm._footprint.footprint_mask`, or a bool mask).

    Returns
    -------
    x, y : numpy.ndarray
        int64, 0-based frame pixel coordinates of the traced outline of every region (each
        closed by repeating its first pixel), regions in label order. Empty when nothing
        survives the cleaning (a footprint thinner than about 7 px).

    Raises
    ------
    InvalidInputError
        ``footprint`` is not 2-D.

    Notes
    -----
    Steps in the module docstring. The work is done on the footprint's bounding box plus a
    16-pixel margin (clipped to the frame), which gives the same pixels as the full frame.
    drizzlepac erodes each labelled region in its own padded box; here the border of the whole
    cleaned mask (set pixels with a 4-neighbour unset or off the frame) is taken once and split
    by label: a 4-neighbour of a region's pixel that is set belongs to the same region (the
    labelling is 4-connected), so each region's border pixels are the same, and the walk
    (:func:`walk_pixels`) depends only on them. Regions come in label order (raster order of
    their first pixel, as scipy numbers them and drizzlepac's loop takes them); they are found
    on the mask's row runs (:func:`label_runs`), not by labelling every pixel.
    """
    footprint = np.asarray(footprint)
    if footprint.ndim != 2:
        raise InvalidInputError(f"footprint must be 2-D, got shape {footprint.shape}")
    covered = footprint >= 1
    rows = np.flatnonzero(covered.any(axis=1))
    if rows.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    cols = np.flatnonzero(covered.any(axis=0))
    y0 = max(int(rows[0]) - _CROP_MARGIN, 0)
    y1 = min(int(rows[-1]) + _CROP_MARGIN + 1, covered.shape[0])
    x0 = max(int(cols[0]) - _CROP_MARGIN, 0)
    x1 = min(int(cols[-1]) + _CROP_MARGIN + 1, covered.shape[1])

    smooth = tiled_local_filter(covered[y0:y1, x0:x1], open_and_smooth, OPEN_AND_SMOOTH_REACH)
    run_rows, run_starts, run_regions, n_regions = label_runs(smooth)
    if n_regions == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    border_y, border_x = np.nonzero(smooth & ~erode_cross(smooth, 1))
    # the run holding each border pixel: the last run starting at or before it in raster order
    width = smooth.shape[1] + 1
    run_keys = run_rows * width + run_starts
    runs = np.searchsorted(run_keys, border_y.astype(np.int64) * width + border_x, side="right") - 1
    region_of = run_regions[runs] + 1
    order = np.argsort(region_of, kind="stable")
    starts = np.searchsorted(region_of[order], np.arange(1, n_regions + 2))
    xs, ys = [], []
    for label in range(n_regions):
        pick = order[starts[label]:starts[label + 1]]
        if pick.size == 0:
            continue
        path = walk_pixels(border_x[pick], border_y[pick])
        xs.append(path[:, 0].astype(np.int64) + x0)
        ys.append(path[:, 1].astype(np.int64) + y0)
    if not xs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(xs), np.concatenate(ys)
