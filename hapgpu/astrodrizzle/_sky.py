"""Static mask and sky: the statistics AstroDrizzle (through skypac) takes from every chip.

The pixel statistics run on the backend's arrays (:mod:`hapgpu.kernels.imstats`); only scalars
and, for ``match``, the overlap polygons (small host geometry) leave the device.

Sky values are compared in "brightness": data / pscale**2 (/ exptime for counts), with pscale
the chip's IDCSCALE. The methods (algorithms §4.2.2):

* ``localmin``: per image, the minimum over its chips of the chip statistic;
* ``globalmin``: the minimum of those over all images;
* ``match``: relative levels from the pairwise overlaps, solved by least squares, the lowest
  image at 0;
* ``globalmin+match``: ``match`` plus the global minimum of the matched statistics.

Speed: the statistics of a set of host pixels are remembered, keyed by a digest of the pixel
values and the statistics settings (:class:`_StatisticMemo`); a chip overlap's statistic also
by a digest of the chip's values and sky mask (one per chip), the overlap's pixel vertices and
the settings, so that a remembered overlap costs neither its selection nor its digest. Products
made from the same exposures (the coarse and fine layers of an MVM cell, the sky cells that
share exposures, the filter and total products of a visit) then compute each static-mask
threshold and each chip overlap statistic once per process; a remembered result is the one the
computation gives, so a run gives the same static masks and skies with and without the memo. Device arrays are not
memoised (the statistics cost less there than the transfer a digest needs).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError
from ..kernels.imstats import image_statistics
from ._exposure import dq_good
from ._footprint import (
    chip_footprint,
    fill_polygon,
    intersect_footprints,
    overlap_vertices,
)
from ._runtime import host_map

__all__ = ["SkySettings", "compute_sky", "sky_masks", "static_masks", "user_sky_from_file"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SkySettings:
    """Statistic and clipping settings of the sky step."""

    method: str
    stat: str
    lower: float | None
    upper: float | None
    nclip: int
    lsigma: float
    usigma: float
    binwidth: float

    @classmethod
    def from_parameters(cls, params) -> SkySettings:
        """Settings from :class:`AstroDrizzleParameters`."""
        return cls(params.skymethod, params.skystat, params.skylower, params.skyupper,
                   params.skyclip, params.skylsigma, params.skyusigma, params.skywidth)


# ----------------------------------------------------------------------------- static mask
def static_masks(exposures, sigma: float, xp) -> dict:
    """AstroDrizzle's static masks, one per (chip number, shape), True = good.

    A chip pixel is bad when it lies more than ``sigma`` standard deviations below the chip's
    histogram mode (3-pass clipped statistics on the raw data); masks of the chips that share
    a signature are combined with AND. Pixels whose science value was not finite take no part
    in the statistics and are never flagged here (they are bad in every stage through
    ``Chip.finite``, so flagging them would only mask the other exposures' pixels).
    """
    chips = [(exposure, chip) for exposure in exposures for chip in exposure.chips]

    def threshold(item):
        exposure, chip = item
        values = chip.sci if chip.finite is None else chip.sci[chip.finite]
        if values.size == 0:
            return None
        # the data limits are the values' minimum and maximum: the statistics' own default
        # (no separate passes over the chip for them; the same limits, the same result)
        stats = _image_statistics(values, nclip=3, mode=True)
        log.debug("static mask %s[SCI,%d]: mode %.6g, rms %.6g", exposure.name, chip.extver,
                  stats.mode, stats.stddev)
        return stats.mode - sigma * stats.stddev if stats.nbins >= 2 else None

    masks: dict = {}
    for (_, chip), limit in zip(chips, host_map(threshold, chips, xp)):
        mask = masks.setdefault((chip.extver, chip.shape), xp.ones(chip.shape, dtype=bool))
        if limit is not None:
            low = chip.sci < np.float32(limit)
            mask &= ~(low if chip.finite is None else low & chip.finite)
    return masks


def static_mask_of(masks: dict | None, chip):
    """The static mask that applies to ``chip`` (None when the static step did not run)."""
    return None if masks is None else masks.get((chip.extver, chip.shape))


def sky_masks(exposures, bits, statics: dict | None, use_static: bool, xp) -> list[list]:
    """Per chip: DQ good (``bits``) AND finite AND the static mask (when ``use_static``)."""
    out = []
    for exposure in exposures:
        row = []
        for chip in exposure.chips:
            mask = dq_good(chip.dq, bits, xp)
            if chip.finite is not None:
                mask = mask & chip.finite
            static = static_mask_of(statics, chip) if use_static else None
            if static is not None:
                mask = mask & static
            if not bool(mask.any()):
                log.warning("%s[SCI,%d]: all pixels masked for the sky", exposure.name, chip.extver)
            row.append(mask)
        out.append(row)
    return out


# ----------------------------------------------------------------------------- statistics
class _StatisticMemo:
    """Bounded, thread-safe memo of :func:`hapgpu.kernels.imstats.image_statistics` results.

    Keys are ``(SHA-256 digest of the values' bytes, dtype, shape, keyword arguments)``: equal
    keys mean equal inputs (SHA-256: collision resistant, and hardware-accelerated on current
    x86 and ARM CPUs, ~2.5x faster than BLAKE2b there), so a remembered result (a frozen
    :class:`~hapgpu.kernels.imstats.ImageStatistics`) is the one the computation gives. At most
    ``max_entries`` results are kept, least recently used dropped first.

    Parameters
    ----------
    max_entries : int
        Capacity.
    """

    def __init__(self, max_entries: int = 4096):
        self.max_entries = int(max_entries)
        self._results: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0

    def __repr__(self) -> str:
        return f"_StatisticMemo(max_entries={self.max_entries}, n_entries={len(self._results)})"

    @staticmethod
    def key(values: np.ndarray, **kwargs):
        """The memo key of ``values`` (a host array) and the ``image_statistics`` keywords."""
        data = np.ascontiguousarray(values)
        digest = hashlib.sha256(memoryview(data).cast("B")).digest()
        return (digest, data.dtype.str, data.shape) + tuple(sorted(kwargs.items()))

    def get(self, key):
        with self._lock:
            if key not in self._results:
                return None
            self._results.move_to_end(key)
            self.hits += 1
            return self._results[key]

    def put(self, key, result) -> None:
        with self._lock:
            self._results[key] = result
            self._results.move_to_end(key)
            while len(self._results) > self.max_entries:
                self._results.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._results.clear()
            self.hits = 0


_MEMO = _StatisticMemo()


def _image_statistics(values, **kwargs):
    """:func:`~hapgpu.kernels.imstats.image_statistics`, through :data:`_MEMO` for host arrays.

    Raises ValueError as ``image_statistics`` does (failures are not remembered)."""
    if not isinstance(values, np.ndarray) or values.size == 0:
        return image_statistics(values, **kwargs)
    key = _MEMO.key(values, **kwargs)
    stats = _MEMO.get(key)
    if stats is None:
        stats = image_statistics(values, **kwargs)
        _MEMO.put(key, stats)
    return stats


def _statistic_kwargs(settings: SkySettings) -> dict:
    """The ``image_statistics`` keywords of the configured statistic (the method aside)."""
    return {"lower": settings.lower, "upper": settings.upper, "nclip": settings.nclip,
            "lsig": settings.lsigma, "usig": settings.usigma, "binwidth": settings.binwidth,
            "mode": settings.stat == "mode", "median": settings.stat == "median"}


def _statistic_value(stats, settings: SkySettings):
    """``(value, npix)`` of the configured statistic from an ``ImageStatistics``."""
    value = {"mode": stats.mode, "median": stats.median, "mean": stats.mean}[settings.stat]
    return value, stats.npix


def _statistic(values, settings: SkySettings):
    """``(value, npix)`` of the configured statistic, or ``(None, 0)`` without valid data."""
    if values.size < 1:
        return None, 0
    try:
        stats = _image_statistics(values, **_statistic_kwargs(settings))
    except ValueError:
        return None, 0
    return _statistic_value(stats, settings)


def _to_brightness(exposure, chip) -> float:
    factor = 1.0 / (chip.idcscale ** 2)
    if chip.in_units == "counts":
        factor /= exposure.exptime
    return factor


def _image_minimum(exposure, masks, settings: SkySettings):
    """Lowest chip statistic of one image, in brightness (None without valid chips)."""
    lowest = None
    for chip, mask in zip(exposure.chips, masks):
        sky, npix = _statistic(chip.sci[mask], settings)
        if sky is None or npix < 1:
            continue
        brightness = _to_brightness(exposure, chip) * sky
        if lowest is None or lowest > brightness:
            lowest = brightness
    return lowest


def _overlaps(exposures, masks):
    """Every overlapping chip pair of different images: ``(i, j, [(exposure, chip, mask, ring)] * 2)``."""
    footprints = [[chip_footprint(c.wcs, c.shape) for c in e.chips] for e in exposures]
    found = []
    for i in range(len(exposures)):
        for j in range(i + 1, len(exposures)):
            for a, chip_a in enumerate(exposures[i].chips):
                for b, chip_b in enumerate(exposures[j].chips):
                    ring = intersect_footprints(footprints[i][a], footprints[j][b])
                    if ring is None or len(ring[0]) <= 3:
                        continue
                    found.append((i, j, [(exposures[i], chip_a, masks[i][a], ring),
                                         (exposures[j], chip_b, masks[j][b], ring)]))
    return found


def _chip_digests(tasks, xp) -> dict:
    """``{(id(sci), id(mask)): digest}`` of the host chips of overlap tasks (SHA-256 of the
    science values and of the sky mask, with their dtypes and shapes); empty on a device."""
    if xp is not np:
        return {}
    pairs = {}
    for _, chip, mask, _ in tasks:
        if isinstance(chip.sci, np.ndarray) and isinstance(mask, np.ndarray):
            pairs.setdefault((id(chip.sci), id(mask)), (chip.sci, mask))

    def digest(item):
        sci, mask = item
        h = hashlib.sha256()
        for array in (sci, mask):
            data = np.ascontiguousarray(array)
            h.update(f"{data.dtype.str}{data.shape}".encode())
            h.update(memoryview(data).cast("B"))
        return h.digest()

    return dict(zip(pairs, host_map(digest, list(pairs.values()), xp)))


def _overlap_statistic(chip, mask, ring, settings: SkySettings, digest, xp):
    """``(value, npix)`` of a chip's sky pixels inside an overlap ring (``(None, 0)`` without
    valid data).

    With ``digest`` (of the chip's values and sky mask, :func:`_chip_digests`) the result is
    remembered in :data:`_MEMO` under that digest, the ring's pixel vertices and the statistic's
    settings, which fix the selected values: a product made again from the same exposures (the
    coarse and fine layers of a cell, neighbouring sky cells) finds every overlap statistic
    without filling, selecting or hashing its pixels.
    """
    vertices = overlap_vertices(chip.wcs, ring)
    kwargs = _statistic_kwargs(settings)
    key = None
    if digest is not None:
        key = ("overlap", digest, vertices.tobytes(), vertices.shape, tuple(chip.shape),
               tuple(sorted(kwargs.items())))
        stats = _MEMO.get(key)
        if stats is not None:
            return _statistic_value(stats, settings)
    inside = xp.asarray(fill_polygon(vertices, chip.shape)) & mask
    values = chip.sci[inside]
    if values.size < 1:
        return None, 0
    # with an overlap key the result is remembered under it: no digest of the values as well
    statistics = image_statistics if key is not None else _image_statistics
    try:
        stats = statistics(values, **kwargs)
    except ValueError:
        return None, 0
    if key is not None:
        _MEMO.put(key, stats)
    return _statistic_value(stats, settings)


def _pair_levels(exposures, masks, settings: SkySettings, xp) -> dict:
    """``{(i, j): (sky_i, w_i, sky_j, w_j)}``: weighted skies (brightness) in common areas."""
    overlaps = _overlaps(exposures, masks)
    tasks = [t for _, _, sides in overlaps for t in sides]
    digests = _chip_digests(tasks, xp)

    def measure(task):
        exposure, chip, mask, ring = task
        sky, npix = _overlap_statistic(chip, mask, ring, settings,
                                       digests.get((id(chip.sci), id(mask))), xp)
        return None if sky is None or npix <= 0 else (_to_brightness(exposure, chip) * sky * npix, npix)

    measured = iter(host_map(measure, tasks, xp))
    totals: dict = {}
    for i, j, _ in overlaps:
        # sum(w*sky_i), sum(w_i), sum(w*sky_j), sum(w_j), accumulated in the reference's order
        acc = totals.setdefault((i, j), [0.0, 0.0, 0.0, 0.0])
        for slot in (0, 1):
            value = next(measured)
            if value is not None:
                acc[2 * slot] += value[0]
                acc[2 * slot + 1] += value[1]
    return {key: (acc[0] / acc[1], acc[1], acc[2] / acc[3], acc[3])
            for key, acc in totals.items() if acc[1] != 0.0 and acc[3] != 0.0}


def _match_deltas(exposures, masks, settings: SkySettings, xp) -> np.ndarray:
    """Least-squares sky offsets (brightness) of every image; NaN where undetermined."""
    n = len(exposures)
    levels = np.zeros((n, n))
    weights = np.zeros((n, n))
    for (i, j), pair in _pair_levels(exposures, masks, settings, xp).items():
        levels[j, i], weights[j, i], levels[i, j], weights[i, j] = pair
    valid = (weights > 0) & (weights.T > 0)
    mean_w = 0.5 * (weights + weights.T)
    rows, rhs = [], []
    used = np.zeros(n, dtype=bool)
    for i in range(n):
        for j in range(i + 1, n):
            if valid[i, j]:
                row = np.zeros(n)
                row[i], row[j] = mean_w[i, j], -mean_w[i, j]
                rows.append(row)
                rhs.append(mean_w[i, j] * (levels[j, i] - levels[i, j]))
                used[i] = used[j] = True
    if not rows:
        return np.full(n, np.nan)
    deltas = np.linalg.pinv(np.array(rows), rcond=1e-12) @ np.array(rhs)
    deltas[~used] = np.nan
    return deltas


def compute_sky(exposures, masks, settings: SkySettings, xp) -> list[list[float | None]]:
    """MDRIZSKY of every chip (data units), or None where the value stays as it was.

    Parameters
    ----------
    exposures : list of Exposure
        Input images.
    masks : list of list of array
        Per chip, the pixels usable for the sky (:func:`sky_masks`).
    settings : SkySettings
        Method and statistic.
    xp : module
        Array module of the chips.

    Returns
    -------
    list of list
        Per exposure, per chip: the new MDRIZSKY, or None (match without a valid overlap, or
        fewer than two images for a matching method).
    """
    method = settings.method
    if "match" in method and len(exposures) < 2:
        log.warning("sky matching needs at least two images; MDRIZSKY left unchanged")
        return [[None] * len(e.chips) for e in exposures]
    if method == "localmin":
        levels = [_image_minimum(e, m, settings) for e, m in zip(exposures, masks)]
        levels = [0.0 if v is None else v for v in levels]
    elif method == "globalmin":
        lows = [v for v in (_image_minimum(e, m, settings) for e, m in zip(exposures, masks)) if v is not None]
        levels = [min(lows) if lows else 0.0] * len(exposures)
    else:
        deltas = _match_deltas(exposures, masks, settings, xp)
        good = np.isfinite(deltas)
        deltas[good] -= np.amin(deltas[good], initial=0.0)
        levels = [float(d) if g else None for d, g in zip(deltas, good)]
        if method == "globalmin+match":
            levels = _add_global_minimum(exposures, masks, settings, levels)
    return [[None if level is None else level / _to_brightness(e, chip) for chip in e.chips]
            for e, level in zip(exposures, levels)]


def _add_global_minimum(exposures, masks, settings: SkySettings, levels):
    """``globalmin+match``: add the lowest (statistic - matched level) to every level."""
    lows = []
    for exposure, chip_masks, level in zip(exposures, masks, levels):
        offset = 0.0 if level is None else level
        for chip, mask in zip(exposure.chips, chip_masks):
            sky, npix = _statistic(chip.sci[mask], settings)
            if sky is None or npix < 1:
                continue
            factor = _to_brightness(exposure, chip)
            lows.append(factor * (sky - offset / factor))
    floor = min(lows) if lows else 0.0
    return [(0.0 if level is None else level) + floor for level in levels]


def user_sky_from_file(path, exposures) -> tuple[list[list[float | None]], bool]:
    """Sky values from a ``skyfile``: lines ``<file name> <sky> [<sky chip 2> ...]``.

    A comment line ``# applied = yes`` says the values were already subtracted from the data.

    Returns
    -------
    (values, applied)
        Per exposure and chip the MDRIZSKY value (0 where the file has no entry) and the flag.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise InvalidInputError(f"cannot read skyfile {path}: {exc}") from exc
    applied = False
    values = {}
    for line in lines:
        text = line.strip()
        if text.startswith("#"):
            if "applied" in text and ("=" in text or ":" in text):
                flag = text.replace(":", "=").split("=", 1)[1].strip().lower()
                applied = flag in ("yes", "true", "y", "t")
            continue
        if text:
            name, *numbers = text.split()
            try:
                values[name] = [float(v) for v in numbers]
            except ValueError as exc:
                raise InvalidInputError(f"{path}: bad sky value in line {line!r}") from exc
    out = []
    for exposure in exposures:
        found = values.get(exposure.name) or values.get(str(exposure.path))
        if not found:
            log.warning("skyfile %s has no value for %s: using 0", path, exposure.name)
            out.append([0.0] * len(exposure.chips))
        else:
            out.append([found[0] if len(found) == 1 else found[k] for k in range(len(exposure.chips))])
    return out, applied
