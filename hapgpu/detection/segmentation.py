"""Segmentation images and threshold detection (photutils ``detect_sources``).

:class:`SegmentationImage` mirrors the part of :class:`photutils.segmentation.SegmentationImage`
that the pipeline uses (``data``, ``labels``, ``n_labels``/``nlabels``, ``areas``, ``slices``,
``bbox``, relabelling and label selection). It accepts, and converts to, photutils' class.

:func:`detect_sources` labels the pixels above a threshold with 4- or 8-connectivity and drops
segments smaller than ``n_pixels``. Labels are numbered in raster order of each segment's first
pixel, exactly as photutils (:func:`scipy.ndimage.label` followed by consecutive relabelling).
"""

from __future__ import annotations

import copy as _copy
import warnings
from dataclasses import dataclass

import numpy as np

from ..backend import Backend
from ..errors import InvalidInputError, InvalidParameterError
from ..kernels.detection import deblend as kdeb
from ..kernels.detection import labeling as klab
from ._common import (as_image, as_mask, check_positive_int, get_backend, launch, native_array,
                      strip_unit, to_backend)

__all__ = [
    "BoundingBox",
    "DeblendModeWarning",
    "deblend_sources",
    "NoDetectionsWarning",
    "SegmentationImage",
    "as_segmentation_image",
    "detect_sources",
]


class NoDetectionsWarning(UserWarning):
    """No source was detected (the function returns None, as photutils does)."""


@dataclass(frozen=True)
class BoundingBox:
    """Pixel bounding box with photutils' attribute names (``ixmax``/``iymax`` exclusive)."""

    ixmin: int
    ixmax: int
    iymin: int
    iymax: int

    @property
    def shape(self) -> tuple[int, int]:
        """``(ny, nx)`` of the box."""
        return (self.iymax - self.iymin, self.ixmax - self.ixmin)

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(y slice, x slice)`` of the box."""
        return (slice(self.iymin, self.iymax), slice(self.ixmin, self.ixmax))


class SegmentationImage:
    """A 2-D segmentation image: 0 is background, positive integers are source labels.

    Parameters
    ----------
    data : array_like of int, shape (ny, nx)
        Label image (host or device; any byte order, stored as a native-order host array).
        Floats holding whole numbers are converted to int32. A photutils
        ``SegmentationImage`` is accepted as well.

    Raises
    ------
    InvalidInputError
        For data that are not 2-D, not whole numbers, or negative.

    Notes
    -----
    Per-label areas and bounding boxes are computed in one compiled pass the first time any
    of ``labels``, ``areas``, ``slices`` or ``bbox`` is needed, and cached until ``data`` is
    reassigned.
    """

    def __init__(self, data):
        if type(data).__name__ == "SegmentationImage":  # ours or photutils'
            data = data.data
        arr = native_array(data)
        if arr.ndim != 2:
            raise InvalidInputError(f"segmentation data must be 2-D, got shape {arr.shape}")
        if arr.dtype.kind not in "iu":
            if arr.dtype.kind == "f" and np.all(np.mod(arr, 1) == 0):
                arr = arr.astype(np.int32)
            else:
                raise InvalidInputError("segmentation data must be an integer array")
        if arr.size and arr.min() < 0:
            raise InvalidInputError("segmentation labels must be >= 0")
        self._data = arr
        self._cache = {}
        self._deblend_label_map = {}
        self.info = {}

    # ---------------------------------------------------------------- construction helpers
    @classmethod
    def _from_labelled(cls, data, stats):
        """Wrap consecutive labels 1..n whose ``stats`` rows (area, bbox) are already known."""
        segm = object.__new__(cls)
        segm._data = data
        segm._cache = {"stats": (np.arange(1, stats.shape[0], dtype=data.dtype), stats[1:])}
        segm._deblend_label_map = {}
        segm.info = {}
        return segm

    def copy(self) -> "SegmentationImage":
        """Deep copy."""
        new = object.__new__(type(self))
        new._data = self._data.copy()
        new._cache = _copy.deepcopy(self._cache)
        new._deblend_label_map = _copy.deepcopy(self._deblend_label_map)
        new.info = _copy.deepcopy(self.info)
        return new

    def to_photutils(self):
        """Return an equivalent :class:`photutils.segmentation.SegmentationImage`."""
        from photutils.segmentation import SegmentationImage as PhotutilsSegm

        segm = PhotutilsSegm(self._data.copy())
        if self._deblend_label_map:
            segm._deblend_label_map = {k: np.array(v) for k, v in
                                       self._deblend_label_map.items()}
        return segm

    # ---------------------------------------------------------------- array protocol
    @property
    def data(self) -> np.ndarray:
        """The label image (host ndarray of int)."""
        return self._data

    @data.setter
    def data(self, value):
        self.__init__(value)

    def __array__(self, dtype=None, copy=None):
        arr = self._data if dtype is None else self._data.astype(dtype)
        return arr.copy() if copy else arr

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of the image."""
        return self._data.shape

    def __repr__(self) -> str:
        return f"SegmentationImage(shape={self.shape}, n_labels={self.n_labels})"

    # ---------------------------------------------------------------- per-label statistics
    def _stats(self):
        if "stats" not in self._cache:
            data = self._data
            max_label = int(data.max()) if data.size else 0
            if max_label == 0:
                labels = np.zeros(0, dtype=data.dtype)
                rows = np.zeros((0, 5), dtype=np.int64)
            else:
                stats = klab.label_statistics(np.ascontiguousarray(data, dtype=np.int32)
                                              if data.dtype != np.int32 else data, max_label)
                present = np.nonzero(stats[:, 0] > 0)[0]
                labels = present.astype(data.dtype)
                rows = stats[present]
            self._cache["stats"] = (labels, rows)
        return self._cache["stats"]

    @property
    def labels(self) -> np.ndarray:
        """Sorted non-zero labels present in the image."""
        return self._stats()[0]

    @property
    def n_labels(self) -> int:
        """Number of labels."""
        return int(self.labels.size)

    nlabels = n_labels

    @property
    def max_label(self) -> int:
        """Largest label (0 if none)."""
        labels = self.labels
        return int(labels[-1]) if labels.size else 0

    @property
    def areas(self) -> np.ndarray:
        """Pixel count of each label, in ``labels`` order."""
        return self._stats()[1][:, 0].copy()

    @property
    def slices(self) -> list[tuple[slice, slice]]:
        """``(y slice, x slice)`` of each label's bounding box, in ``labels`` order."""
        rows = self._stats()[1]
        return [(slice(int(r[1]), int(r[2]) + 1), slice(int(r[3]), int(r[4]) + 1))
                for r in rows]

    @property
    def bbox(self) -> list[BoundingBox]:
        """:class:`BoundingBox` of each label, in ``labels`` order."""
        rows = self._stats()[1]
        return [BoundingBox(int(r[3]), int(r[4]) + 1, int(r[1]), int(r[2]) + 1) for r in rows]

    @property
    def bbox_array(self) -> np.ndarray:
        """Inclusive boxes as an int64 array of rows (ymin, ymax, xmin, xmax)."""
        return self._stats()[1][:, 1:].copy()

    @property
    def is_consecutive(self) -> bool:
        """True when the labels are 1..n."""
        labels = self.labels
        return labels.size == 0 or (labels[0] == 1 and labels[-1] == labels.size)

    @property
    def missing_labels(self) -> np.ndarray:
        """Labels between 1 and ``max_label`` that are absent."""
        return np.setdiff1d(np.arange(1, self.max_label + 1), self.labels)

    @property
    def deblended_labels(self) -> np.ndarray:
        """Labels created by deblending."""
        if not self._deblend_label_map:
            return np.zeros(0, dtype=self._data.dtype)
        return np.sort(np.concatenate(list(self._deblend_label_map.values())))

    def get_index(self, label) -> int:
        """Index of ``label`` in ``labels``."""
        self.check_labels(label)
        return int(np.searchsorted(self.labels, label))

    def get_indices(self, labels) -> np.ndarray:
        """Indices of ``labels`` in ``labels``."""
        labels = np.atleast_1d(labels)
        self.check_labels(labels)
        return np.searchsorted(self.labels, labels)

    def get_area(self, label) -> int:
        """Area of one label."""
        return int(self.areas[self.get_index(label)])

    def get_areas(self, labels) -> np.ndarray:
        """Areas of several labels."""
        return self.areas[self.get_indices(labels)]

    def check_label(self, label) -> None:
        """Raise InvalidParameterError if ``label`` is not present."""
        self.check_labels(label)

    def check_labels(self, labels) -> None:
        """Raise InvalidParameterError if any of ``labels`` is not present."""
        labels = np.atleast_1d(labels)
        bad = np.setdiff1d(labels, self.labels)
        if bad.size:
            raise InvalidParameterError(f"labels {bad.tolist()} are not in the segmentation image")

    # ---------------------------------------------------------------- editing
    def _reset(self):
        self._cache = {}

    def relabel_consecutive(self, start_label=1) -> None:
        """Renumber the labels to ``start_label .. start_label + n - 1`` in increasing order.

        The deblending map (``_deblend_label_map``) is renumbered with the image.
        """
        if start_label < 1:
            raise InvalidParameterError("start_label must be >= 1")
        if self.n_labels == 0 or (start_label == 1 and self.is_consecutive):
            return
        labels = self.labels
        lut = np.zeros(int(labels[-1]) + 1, dtype=self._data.dtype)
        lut[labels] = np.arange(labels.size) + start_label
        self._data = lut[self._data]
        self._deblend_label_map = {k: lut[np.asarray(v)] for k, v in
                                   self._deblend_label_map.items()}
        self._reset()

    def reassign_labels(self, labels, new_label, relabel=False) -> None:
        """Give every label in ``labels`` the value ``new_label``."""
        labels = np.atleast_1d(labels)
        if labels.size == 0:
            return
        lut = np.arange(max(self.max_label, int(np.max(labels))) + 1, dtype=self._data.dtype)
        lut[labels] = new_label
        self._data = lut[self._data]
        self._reset()
        if relabel:
            self.relabel_consecutive()

    def reassign_label(self, label, new_label, relabel=False) -> None:
        """Give ``label`` the value ``new_label``."""
        self.reassign_labels(label, new_label, relabel=relabel)

    def remove_labels(self, labels, relabel=False) -> None:
        """Set the pixels of ``labels`` to background."""
        self.check_labels(labels)
        self.reassign_labels(labels, 0, relabel=relabel)

    def remove_label(self, label, relabel=False) -> None:
        """Set the pixels of ``label`` to background."""
        self.remove_labels(label, relabel=relabel)

    def keep_labels(self, labels, relabel=False) -> None:
        """Keep only ``labels``."""
        labels = np.atleast_1d(labels)
        self.check_labels(labels)
        remove = np.setdiff1d(self.labels, labels)
        self.reassign_labels(remove, 0, relabel=relabel)

    def keep_label(self, label, relabel=False) -> None:
        """Keep only ``label``."""
        self.keep_labels(label, relabel=relabel)


def as_segmentation_image(segm, shape=None) -> SegmentationImage:
    """Return ``segm`` (ours, photutils', or a label array) as a :class:`SegmentationImage`."""
    if isinstance(segm, SegmentationImage):
        result = segm
    else:
        result = SegmentationImage(segm)
        dmap = getattr(segm, "_deblend_label_map", None)
        if dmap:
            result._deblend_label_map = {k: native_array(v) for k, v in dmap.items()}
    if shape is not None and tuple(result.shape) != tuple(shape):
        raise InvalidInputError(
            f"segmentation image shape {result.shape} differs from the data shape {tuple(shape)}")
    return result


# --------------------------------------------------------------------------------------------
# Labelling cores
# --------------------------------------------------------------------------------------------


def _threshold_operand(threshold, data_dtype, bk: Backend, shape):
    """Threshold as an array compared exactly as NumPy compares ``data > threshold``.

    A Python scalar is cast to the data's dtype (NEP 50); NumPy scalars and arrays are
    compared in their promoted dtype.
    """
    thr, _ = strip_unit(threshold)
    if np.isscalar(thr) and not isinstance(thr, np.generic):
        value = np.asarray(thr, dtype=data_dtype if data_dtype.kind == "f" else np.float64)
        return value.reshape(1, 1), True
    if np.ndim(thr) == 0:
        value = native_array(thr)
        return native_array(value, dtype=np.result_type(value.dtype, data_dtype)).reshape(
            1, 1), True
    arr = to_backend(thr, bk)
    if tuple(arr.shape) != tuple(shape):
        raise InvalidInputError(
            f"threshold must be a scalar or have the data shape {tuple(shape)}, "
            f"got {tuple(arr.shape)}")
    return arr, False


def _label_cpu(data, thr, scalar_thr, mask, connectivity):
    # Numba compares mixed float dtypes in the promoted dtype, as NumPy does.
    use_mask = mask is not None
    m = mask if use_mask else np.zeros((1, 1), dtype=bool)
    return klab.label_threshold(np.ascontiguousarray(data), np.ascontiguousarray(thr),
                                scalar_thr, np.ascontiguousarray(m), use_mask,
                                connectivity == 8)


def _label_cuda(fg, connectivity, bk: Backend):
    """Label a boolean image with the CUDA union-find; returns (labels int32, n) on device."""
    xp = bk.xp
    ny, nx = fg.shape
    target = "cudasim" if bk.name == "cudasim" else "cuda"
    kern = klab.cuda_label_kernels(target)
    flat = xp.ascontiguousarray(fg).ravel()
    parent = xp.empty(flat.size, dtype=xp.int32)
    launch(kern["init"], bk, flat.size, flat, parent)
    launch(kern["merge"], bk, flat.size, flat, parent, np.int32(ny), np.int32(nx),
           bool(connectivity == 8))
    launch(kern["compress"], bk, flat.size, parent)
    idx = xp.arange(flat.size, dtype=xp.int32)
    is_root = parent == idx
    rank = xp.cumsum(is_root, dtype=xp.int32)
    labels = xp.where(parent >= 0, rank[xp.maximum(parent, 0)], 0).astype(xp.int32)
    n = int(rank[-1]) if rank.size else 0
    return labels.reshape(ny, nx), n


def _label_stats_cuda(labels, n, bk: Backend):
    """(n+1, 5) int64 stats (area, ymin, ymax, xmin, xmax) from device labels, on the host."""
    xp = bk.xp
    ny, nx = labels.shape
    kern = klab.cuda_label_kernels("cudasim" if bk.name == "cudasim" else "cuda")
    flat = labels.ravel()
    counts = xp.zeros(n + 1, dtype=xp.int64)
    ymin = xp.full(n + 1, ny, dtype=xp.int64)
    ymax = xp.full(n + 1, -1, dtype=xp.int64)
    xmin = xp.full(n + 1, nx, dtype=xp.int64)
    xmax = xp.full(n + 1, -1, dtype=xp.int64)
    launch(kern["count"], bk, flat.size, flat, counts)
    launch(kern["bbox"], bk, flat.size, flat, np.int64(nx), ymin, ymax, xmin, xmax)
    stats = xp.stack([counts, ymin, ymax, xmin, xmax], axis=1)
    return bk.to_host(stats)


def _label_image(fg, connectivity, bk: Backend):
    """Label a boolean image on any backend; returns (host int32 labels, n)."""
    if bk.name == "cpu":
        return klab.label_bool(np.ascontiguousarray(fg, dtype=np.bool_), connectivity == 8)
    labels, n = _label_cuda(bk.xp.asarray(fg, dtype=bool), connectivity, bk)
    return bk.to_host(labels), n


def _detect_core(data, thr, scalar_thr, mask, n_pixels, connectivity, bk: Backend):
    """Threshold, label and size-filter; returns a SegmentationImage or None."""
    if bk.name == "cpu":
        labels, n = _label_cpu(data, thr, scalar_thr, mask, connectivity)
        if n == 0:
            return None
        stats = klab.label_statistics(labels, n)
    else:
        xp = bk.xp
        dev_thr = xp.asarray(thr)
        common = np.result_type(dev_thr.dtype, data.dtype)
        fg = data.astype(common, copy=False) > (dev_thr.reshape(()) if scalar_thr
                                                  else dev_thr.astype(common, copy=False))
        if mask is not None:
            fg &= ~mask
        dlabels, n = _label_cuda(fg, connectivity, bk)
        if n == 0:
            return None
        stats = _label_stats_cuda(dlabels, n, bk)
        labels = bk.to_host(dlabels)
    n_kept, kept = klab.filter_small(labels, n, stats, n_pixels)
    if n_kept == 0:
        return None
    return SegmentationImage._from_labelled(labels, kept)


def detect_sources(data, threshold, n_pixels=None, *, connectivity=8, mask=None, npixels=None,
                   backend=None):
    """Detect sources above a threshold (photutils ``detect_sources``).

    A source is a connected group of at least ``n_pixels`` pixels, each with
    ``data > threshold`` and not masked.

    Parameters
    ----------
    data : array_like, shape (ny, nx)
        Image, usually convolved (host or device).
    threshold : float or array_like, shape (ny, nx)
        Detection threshold in data units. A Python float is compared in the data's dtype, a
        NumPy scalar or array in the promoted dtype, as NumPy does.
    n_pixels : int
        Minimum number of connected pixels (``npixels`` is accepted as an alias).
    connectivity : {4, 8}, keyword-only
    mask : array_like of bool, shape (ny, nx), optional, keyword-only
        True where pixels are excluded.
    backend : str, Backend or None, keyword-only

    Returns
    -------
    SegmentationImage or None
        Labels 1..n in raster order of each segment's first pixel (host). None, with a
        :class:`NoDetectionsWarning`, when nothing is detected.

    Raises
    ------
    InvalidParameterError
        For a bad ``n_pixels`` or ``connectivity``.
    InvalidInputError
        For shape mismatches or a mask that covers every pixel.
    """
    if n_pixels is None:
        n_pixels = npixels
    if n_pixels is None:
        raise InvalidParameterError("detect_sources needs n_pixels")
    n_pixels = check_positive_int(n_pixels, "n_pixels")
    if connectivity not in (4, 8):
        raise InvalidParameterError(f"connectivity must be 4 or 8, got {connectivity!r}")
    bk = get_backend(backend)
    arr = as_image(data, "data", bk, dtype=None)
    bmask = as_mask(mask, "mask", bk, arr.shape)
    if bmask is not None and bool(bmask.all()):
        raise InvalidInputError("mask excludes every pixel of data: nothing can be detected")
    thr, scalar_thr = _threshold_operand(threshold, arr.dtype, bk, arr.shape)
    segm = _detect_core(arr, thr, scalar_thr, bmask, n_pixels, connectivity, bk)
    if segm is None:
        warnings.warn(f"detect_sources: no group of >= {n_pixels} connected pixels lies above "
                      "the threshold", NoDetectionsWarning, stacklevel=2)
    return segm


# --------------------------------------------------------------------------------------------
# Deblending
# --------------------------------------------------------------------------------------------


class DeblendModeWarning(UserWarning):
    """The deblending mode of some sources fell back to ``linear`` (see ``segm.info``)."""


_MODES = {"exponential": kdeb.MODE_EXPONENTIAL, "linear": kdeb.MODE_LINEAR,
          "sinh": kdeb.MODE_SINH}


def deblend_sources(data, segmentation_image=None, n_pixels=None, *, labels=None, n_levels=32,
                    contrast=0.001, mode="exponential", connectivity=8, relabel=True,
                    n_processes=1, progress_bar=False, npixels=None, nlevels=None,
                    segment_img=None, nproc=None, backend=None):
    """Deblend overlapping sources (photutils ``deblend_sources``).

    Multi-thresholding plus watershed, per source and in parallel over sources (see
    :mod:`hapgpu.kernels.detection.deblend`). The result equals photutils' label for label.

    Parameters
    ----------
    data : array_like, shape (ny, nx)
        The image used for detection (usually convolved); host or device, any byte order.
    segmentation_image : SegmentationImage (ours or photutils') or array_like of int
        ``segment_img`` is accepted as an alias.
    n_pixels : int
        Minimum size of a deblended component (``npixels`` is an alias). Only sources with at
        least ``2 * n_pixels`` pixels are deblended.
    labels : int or array_like of int, optional, keyword-only
        Labels to deblend, in processing order (default: all).
    n_levels : int, keyword-only
        Number of thresholds (``nlevels`` is an alias).
    contrast : float in [0, 1], keyword-only
        Minimum flux fraction of a deblended component.
    mode : {"exponential", "linear", "sinh"}, keyword-only
    connectivity : {8, 4}, keyword-only
        Must match the detection.
    relabel : bool, keyword-only
        Renumber the labels of the result 1..n in increasing order (the deblending map with
        them), whatever path was taken: also when nothing is deblended, e.g. ``contrast=1``,
        where photutils returns its input labels unchanged.
    n_processes, nproc, progress_bar
        Accepted for compatibility; the CPU kernel is multithreaded (Numba) instead.
    backend : str, Backend or None, keyword-only
        The deblending itself runs on the host for every backend.

    Returns
    -------
    SegmentationImage
        With ``_deblend_label_map`` (parent label -> new labels) and, when a mode fell back to
        linear, ``info['warnings']`` and a :class:`DeblendModeWarning`.

    Raises
    ------
    InvalidParameterError
        For bad parameters, or when the watershed leaves pixels unlabelled (connectivity
        differing from the detection's).
    """
    segm_in = segmentation_image if segmentation_image is not None else segment_img
    if segm_in is None:
        raise InvalidParameterError("deblend_sources needs a segmentation image")
    n_pixels = n_pixels if n_pixels is not None else npixels
    if n_pixels is None:
        raise InvalidParameterError("deblend_sources needs n_pixels")
    n_pixels = check_positive_int(n_pixels, "n_pixels")
    n_levels = nlevels if nlevels is not None else n_levels
    if n_levels < 1:
        raise InvalidParameterError("n_levels must be >= 1")
    if not 0 <= contrast <= 1:
        raise InvalidParameterError(f"contrast must lie in [0, 1], got {contrast!r}")
    if mode not in _MODES:
        raise InvalidParameterError("mode must be 'exponential', 'linear' or 'sinh'")
    if connectivity not in (4, 8):
        raise InvalidParameterError(f"connectivity must be 4 or 8, got {connectivity!r}")
    bk = get_backend(backend)
    arr = bk.to_host(as_image(data, "data", bk))
    segm = as_segmentation_image(segm_in, arr.shape)
    if contrast == 1:  # no component can hold more than the whole flux: nothing to split
        result = segm.copy()
    else:
        result = _deblend_selected(arr, segm, labels, n_pixels, connectivity, n_levels,
                                   contrast, mode)
    if relabel:
        result.relabel_consecutive()
    return result


def _deblend_selected(arr, segm, labels, n_pixels, connectivity, n_levels, contrast, mode):
    """Deblend ``labels`` (all when None) of ``segm``; new labels follow ``segm.max_label``.

    Returns a new :class:`SegmentationImage` with ``_deblend_label_map`` set and, when a mode
    fell back to linear, ``info['warnings']`` (a :class:`DeblendModeWarning` is issued).
    """
    sel = segm.labels if labels is None else native_array(np.atleast_1d(labels))
    if labels is not None:
        segm.check_labels(sel)
    idx = segm.get_indices(sel) if sel.size else np.zeros(0, dtype=np.int64)
    keep = segm.areas[idx] >= 2 * n_pixels
    sel = sel[keep]
    idx = idx[keep]
    bbox = segm._stats()[1][idx][:, 1:].astype(np.int64)
    areas = (bbox[:, 1] - bbox[:, 0] + 1) * (bbox[:, 3] - bbox[:, 2] + 1)
    offsets = np.zeros(sel.size + 1, dtype=np.int64)
    np.cumsum(areas, out=offsets[1:])
    seg_data = np.ascontiguousarray(segm.data)
    local, n_children, flags = kdeb.deblend_cpu(
        np.ascontiguousarray(arr), seg_data, sel.astype(seg_data.dtype), bbox, offsets,
        n_pixels, connectivity == 8, int(n_levels), float(contrast), _MODES[mode],
        arr.dtype == np.float32)
    if np.any(flags & kdeb.E_WATERSHED):
        bad = sel[(flags & kdeb.E_WATERSHED) != 0][0]
        raise InvalidParameterError(
            f"deblend_sources: the watershed left pixels of source {int(bad)} without a "
            f"component; the segmentation image was probably made with a connectivity other "
            f"than connectivity={connectivity}")
    out = seg_data.astype(np.int32, copy=True)
    base = np.full(sel.size, -1, dtype=np.int64)
    start = segm.max_label
    label_map = {}
    for k in np.nonzero(n_children)[0]:
        base[k] = start
        label_map[int(sel[k])] = np.arange(start + 1, start + 1 + n_children[k])
        start += int(n_children[k])
    kdeb.paint_cpu(out, bbox, offsets, local, base)
    result = SegmentationImage(out)
    result._deblend_label_map = label_map
    _record_mode_warnings(result, sel, flags, mode)
    return result


def _record_mode_warnings(result, sel, flags, mode):
    """Store the sources whose ``mode`` fell back to linear thresholds, and warn once.

    ``result.info['warnings']`` keeps photutils' keys (``nonposmin``, ``nmarkers``, each with
    ``message`` and ``input_labels``) so code written for photutils can read it.
    """
    reasons = {
        "nonposmin": (kdeb.W_NONPOSMIN,
                      f"{mode!r} thresholds need a positive source minimum; these sources "
                      "have a minimum <= 0 and were split with linear thresholds"),
        "nmarkers": (kdeb.W_NMARKERS,
                     f"{mode!r} thresholds produced more than {kdeb.MAX_MARKERS} candidate "
                     "components; these sources were split with linear thresholds"),
    }
    info = {}
    for key, (bit, text) in reasons.items():
        affected = sel[(flags & bit) != 0]
        if affected.size:
            info[key] = {"message": text, "input_labels": affected}
    if not info:
        return
    result.info = {"warnings": info}
    n_affected = int(np.count_nonzero(flags & (kdeb.W_NONPOSMIN | kdeb.W_NMARKERS)))
    warnings.warn(f"deblend_sources: {n_affected} source(s) were split with linear thresholds "
                  f"instead of mode={mode!r}; result.info['warnings'] lists them by reason",
                  DeblendModeWarning, stacklevel=4)
