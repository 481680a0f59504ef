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
that are converted to the sky. Host code (scipy.ndimage plus one walk per region).
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError

__all__ = ["footprint_edges", "trace_border"]

#: Empty pixels around each labelled region before tracing (drizzlepac ``label_border``).
LABEL_BORDER = 10
#: Iterations of the erosion and of the dilation that clean the footprint.
OPENING_ITERATIONS = 3
#: Gaussian smoothing of the cleaned footprint, pixels, and its threshold.
SMOOTHING_SIGMA = 2.0
SMOOTHING_THRESHOLD = 0.5
#: Pixels around the footprint's bounding box kept when cropping (opening grows nothing, the
#: Gaussian reaches 4 sigma = 8 px); cropping with this margin changes no result.
_CROP_MARGIN = 16


def _window_hits(mask: np.ndarray, x: int, y: int, half: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-major offsets ``(dy, dx)`` in ``[-half, half]`` of the set pixels around ``(x, y)``."""
    ny, nx = mask.shape
    y0, y1 = max(y - half, 0), min(y + half + 1, ny)
    x0, x1 = max(x - half, 0), min(x + half + 1, nx)
    rows, cols = np.nonzero(mask[y0:y1, x0:x1])
    return rows + (y0 - y), cols + (x0 - x)


def _window_sum(mask: np.ndarray, x: int, y: int) -> int:
    """Sum of the 3 x 3 neighbourhood of ``(x, y)`` (zero outside the array)."""
    ny, nx = mask.shape
    return int(mask[max(y - 1, 0):min(y + 2, ny), max(x - 1, 0):min(x + 2, nx)].sum())


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
    # one empty pixel all round, as the reference's 3 x 3 extraction box has
    mask = np.zeros((border.shape[0] + 2, border.shape[1] + 2), dtype=np.int16)
    mask[1:-1, 1:-1] = border != 0
    columns = np.flatnonzero(mask.any(axis=0))
    if columns.size == 0:
        raise InvalidInputError("border mask has no set pixel to trace")
    x = int(columns[0])
    y = int(np.flatnonzero(mask[:, x])[0])
    path = [(x, y)]
    mask[y, x] = 0
    remaining = int(mask.sum())
    slope = -1
    first = True
    while first or remaining > 0:
        mask[y, x] = 0
        half = 1
        dy, dx = _window_hits(mask, x, y, half)
        if dy.size == 0:
            half = 2
            dy, dx = _window_hits(mask, x, y, half)
            if dy.size == 0:
                break
        pick = 0
        if dy.size > 1:
            with_slope = 0 if slope <= 0 else 1
            other = 1 if slope < 0 else 0
            score_slope = _window_sum(mask, x + int(dx[with_slope]), y + int(dy[with_slope]))
            score_other = _window_sum(mask, x + int(dx[other]), y + int(dy[other]))
            pick = other if score_other > score_slope else with_slope
        step_x, step_y = int(dx[pick]), int(dy[pick])
        x, y = x + step_x, y + step_y
        path.append((x, y))
        remaining -= 1
        first = False
        sign_x, sign_y = np.sign(step_x), np.sign(step_y)
        slope = sign_y if sign_x >= 0 else -sign_y
    path.append(path[0])
    return np.array(path, dtype=np.int32) - 1


def footprint_edges(footprint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outline pixels of a footprint mask, region by region (drizzlepac ``find_corners`` edges).

    Parameters
    ----------
    footprint : numpy.ndarray
        2-D ``(ny, nx)`` mask, nonzero where an exposure covers the frame (e.g. the clipped
        ``total_mask`` of :func:`hapgpu.svm._footprint.footprint_mask`).

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
    """
    from scipy import ndimage

    footprint = np.asarray(footprint)
    if footprint.ndim != 2:
        raise InvalidInputError(f"footprint must be 2-D, got shape {footprint.shape}")
    covered = np.clip(footprint, 0, 1).astype(np.int16)
    rows = np.flatnonzero(covered.any(axis=1))
    if rows.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    cols = np.flatnonzero(covered.any(axis=0))
    y0 = max(int(rows[0]) - _CROP_MARGIN, 0)
    y1 = min(int(rows[-1]) + _CROP_MARGIN + 1, covered.shape[0])
    x0 = max(int(cols[0]) - _CROP_MARGIN, 0)
    x1 = min(int(cols[-1]) + _CROP_MARGIN + 1, covered.shape[1])
    crop = covered[y0:y1, x0:x1]

    opened = ndimage.binary_dilation(ndimage.binary_erosion(crop, iterations=OPENING_ITERATIONS),
                                     iterations=OPENING_ITERATIONS)
    smooth = ndimage.gaussian_filter(opened.astype(np.float32), sigma=SMOOTHING_SIGMA) > SMOOTHING_THRESHOLD
    labels, _ = ndimage.label(smooth)
    xs, ys = [], []
    for label, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        region = np.zeros((box[0].stop - box[0].start + 2 * LABEL_BORDER,
                           box[1].stop - box[1].start + 2 * LABEL_BORDER), dtype=bool)
        region[LABEL_BORDER:-LABEL_BORDER, LABEL_BORDER:-LABEL_BORDER] = labels[box] == label
        border = region.astype(np.int16) - ndimage.binary_erosion(region).astype(np.int16)
        path = trace_border(border)
        xs.append(path[:, 0].astype(np.int64) + (box[1].start - LABEL_BORDER + x0))
        ys.append(path[:, 1].astype(np.int64) + (box[0].start - LABEL_BORDER + y0))
    if not xs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(xs), np.concatenate(ys)
