"""Sigma-clipped statistics and robust rms estimates.

:func:`sigma_clipped_stats` is a drop-in replacement for
:func:`astropy.stats.sigma_clipped_stats` (``axis=None``): same arguments, same clipping
rules, same (mean, median, std) result. :func:`mad_rms` is the HAP catalog's
"DER_SNR"-style MAD noise estimate (hap-pipeline.md §1.13 A, step 6).

Backends: ``cpu`` runs a compiled in-place clip (one compaction per iteration, median by
selection); ``gpu`` and ``cudasim`` sort the values once on the device (CuPy or NumPy) and
clip by moving two indices in the sorted vector, which gives the same survivors.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InvalidInputError, InvalidParameterError
from ..kernels.detection import stats as kstats
from ._common import as_image, get_backend, native_array, strip_unit, to_backend

__all__ = ["sigma_clipped_stats", "mad_rms", "clip_values"]

_CENFUNCS = {"median": kstats.CEN_MEDIAN, "mean": kstats.CEN_MEAN}
_STDFUNCS = {"std": kstats.STD_STD, "mad_std": kstats.STD_MAD}
_MAD_RMS_FACTOR = 1.482602 / math.sqrt(6.0)


def _parse_clip_params(sigma, sigma_lower, sigma_upper, maxiters, cenfunc, stdfunc):
    if cenfunc not in _CENFUNCS:
        raise InvalidParameterError(f"cenfunc must be one of {sorted(_CENFUNCS)}, got {cenfunc!r}")
    if stdfunc not in _STDFUNCS:
        raise InvalidParameterError(f"stdfunc must be one of {sorted(_STDFUNCS)}, got {stdfunc!r}")
    lower = sigma if sigma_lower is None else sigma_lower
    upper = sigma if sigma_upper is None else sigma_upper
    # astropy stores ``maxiters or inf``: None and 0 iterate until convergence
    if not maxiters or (isinstance(maxiters, float) and math.isinf(maxiters)):
        iters = -1
    else:
        iters = max(int(maxiters), 0)
    return float(lower), float(upper), iters, _CENFUNCS[cenfunc], _STDFUNCS[stdfunc]


def _values_dtype(data) -> np.dtype:
    return np.dtype(np.float32) if data.dtype == np.float32 else np.dtype(np.float64)


def _n_chunks(size: int) -> int:
    return max(1, min(16, size // (1 << 20) + 1))


def _flat_host(data, mask, mask_value):
    """Flattened data (float dtype) and flattened bool mask for the CPU kernels.

    ``data`` and ``mask`` come from :func:`~._common.to_backend` (native, C order).
    """
    flat = data.ravel() if data.dtype.kind == "f" else data.astype(np.float64).ravel()
    use_mask = mask is not None or mask_value is not None
    if not use_mask:
        return flat, np.zeros(1, dtype=bool), False
    if mask_value is None:
        # the kernels only read the mask: the caller's array itself, no copy
        return flat, np.ascontiguousarray(mask, dtype=bool).ravel(), True
    fmask = flat == mask_value
    if mask is not None:
        fmask |= mask.ravel()
    return flat, fmask, True


def _gather_device(xp, data, mask, mask_value):
    arr = xp.asarray(data).ravel()
    keep = xp.isfinite(arr) if arr.dtype.kind == "f" else xp.ones(arr.shape, dtype=bool)
    if mask is not None:
        keep &= ~xp.asarray(mask, dtype=bool).ravel()
    if mask_value is not None:
        keep &= arr != mask_value
    return arr[keep].astype(xp.float64)


def _round(value, as_f32):
    return float(np.float32(value)) if as_f32 else float(value)


def _sorted_median(seg, as_f32):
    m = seg.shape[0]
    if m == 0:
        return math.nan
    upper = float(seg[m // 2])
    if m % 2 == 1:
        return upper
    lower = float(seg[(m - 1) // 2])
    return 0.5 * _round(lower + upper, as_f32)


def _centre_spread_sorted(xp, seg, cen_func, std_func, as_f32):
    median = _round(_sorted_median(seg, as_f32), as_f32)
    mean = _round(float(seg.mean()), as_f32)
    cen = median if cen_func == kstats.CEN_MEDIAN else mean
    if std_func == kstats.STD_MAD:
        dev = xp.abs(seg - median)
        if as_f32:
            dev = dev.astype(xp.float32).astype(xp.float64)
        dev = xp.sort(dev)
        spread = _round(_sorted_median(dev, as_f32), as_f32)
        spread = _round(spread * (float(np.float32(kstats.MAD_TO_STD)) if as_f32
                                  else kstats.MAD_TO_STD), as_f32)
    else:
        spread = _round(float(seg.std()), as_f32)
    return cen, spread


def _bounds(cen, std, lower, upper, as_f32):
    if as_f32:
        f = np.float32
        lo = f(f(cen) - f(f(std) * f(lower)))
        hi = f(f(cen) + f(f(std) * f(upper)))
        return float(lo), float(hi)
    return cen - std * lower, cen + std * upper


def _clip_sorted(xp, values, lower, upper, maxiters, cen_func, std_func, as_f32):
    """Clip a value vector by sorting once; returns the sorted survivors."""
    s = xp.sort(values)
    lo, hi = 0, int(s.shape[0])
    iteration = 0
    changed = 1
    while changed != 0 and (maxiters < 0 or iteration < maxiters):
        iteration += 1
        if hi == lo:
            break
        seg = s[lo:hi]
        cen, spread = _centre_spread_sorted(xp, seg, cen_func, std_func, as_f32)
        lo_b, hi_b = _bounds(cen, spread, lower, upper, as_f32)
        bounds = xp.asarray([lo_b, hi_b], dtype=seg.dtype)
        new_lo = lo + int(xp.searchsorted(seg, bounds[:1], side="left")[0])
        new_hi = lo + int(xp.searchsorted(seg, bounds[1:], side="right")[0])
        if math.isnan(lo_b) or math.isnan(hi_b) or new_hi < new_lo:
            new_lo = new_hi = lo
        changed = (hi - lo) - (new_hi - new_lo)
        lo, hi = new_lo, new_hi
    return s[lo:hi]


def clip_values(values, *, sigma=3.0, sigma_lower=None, sigma_upper=None, maxiters=5,
                cenfunc="median", stdfunc="std", as_f32=False, backend=None):
    """Sigma-clip a 1-D vector of finite values and return the survivors.

    Parameters
    ----------
    values : array_like, shape (n,)
        Finite values (host or device array).
    sigma, sigma_lower, sigma_upper, maxiters, cenfunc, stdfunc
        As in :func:`astropy.stats.sigma_clip`.
    as_f32 : bool
        Round centre, spread and bounds to float32 (the values came from float32 data).
    backend : str, Backend or None

    Returns
    -------
    ndarray, float64, shape (m,)
        The surviving values (sorted on ``gpu``/``cudasim``, unordered on ``cpu``), on the
        backend's device.
    """
    bk = get_backend(backend)
    lower, upper, iters, cen_func, std_func = _parse_clip_params(
        sigma, sigma_lower, sigma_upper, maxiters, cenfunc, stdfunc)
    if bk.name == "cpu":
        buf = np.array(values, dtype=np.float64).ravel()  # a native copy the clip may reorder
        n, _, _, _ = kstats.sigma_clip_flat(buf, lower, upper, iters, cen_func, std_func, as_f32)
        return buf[:n]
    xp = bk.xp
    return _clip_sorted(xp, to_backend(values, bk, dtype=np.float64).ravel(), lower, upper, iters,
                        cen_func, std_func, as_f32)


def sigma_clipped_stats(data, mask=None, mask_value=None, sigma=3.0, sigma_lower=None,
                        sigma_upper=None, maxiters=5, cenfunc="median", stdfunc="std",
                        std_ddof=0, axis=None, grow=False, *, backend=None):
    """Mean, median and standard deviation of sigma-clipped data.

    A drop-in replacement for :func:`astropy.stats.sigma_clipped_stats` with ``axis=None``:
    non-finite values and masked values are ignored; values outside
    ``[centre - sigma_lower * std, centre + sigma_upper * std]`` are rejected iteratively,
    the centre and spread being recomputed from the survivors, until nothing changes or
    ``maxiters`` iterations have run.

    Parameters
    ----------
    data : array_like
        Image or vector (host or device array). Float32 data keep astropy's float32 rounding
        of the centre, spread and bounds.
    mask : array_like of bool, optional
        True where a value is ignored. Same shape as ``data``.
    mask_value : float, optional
        A data value to ignore.
    sigma : float, optional
        Clipping limit in units of the spread (both sides unless overridden).
    sigma_lower, sigma_upper : float, optional
        Lower and upper clipping limits.
    maxiters : int or None, optional
        Maximum number of iterations; None or 0 iterate until convergence (astropy stores
        ``maxiters or inf``), a negative value clips nothing.
    cenfunc : {"median", "mean"}, optional
        Centre of the clipping interval.
    stdfunc : {"std", "mad_std"}, optional
        Spread of the clipping interval.
    std_ddof : int, optional
        Delta degrees of freedom of the returned standard deviation.
    axis : None
        Only None (the flattened data) is supported.
    grow : False
        Not supported (must be False).
    backend : str, Backend or None, keyword-only
        ``cpu``, ``gpu``, ``cudasim`` or ``auto``.

    Returns
    -------
    mean, median, std : float
        Statistics of the surviving values (NaN if none survive). Like astropy, the values are
        float32 for float32 input and float64 otherwise (as NumPy scalars).

    Raises
    ------
    InvalidParameterError
        For ``axis`` other than None, ``grow``, or unknown ``cenfunc``/``stdfunc``.
    InvalidInputError
        When every value is masked or ``mask`` does not match ``data``.
    """
    if axis is not None:
        raise InvalidParameterError("sigma_clipped_stats supports only axis=None")
    if grow:
        raise InvalidParameterError("sigma_clipped_stats does not support grow")
    bk = get_backend(backend)
    lower, upper, iters, cen_func, std_func = _parse_clip_params(
        sigma, sigma_lower, sigma_upper, maxiters, cenfunc, stdfunc)
    data, _ = strip_unit(data)
    if isinstance(data, np.ma.MaskedArray):
        extra = np.ma.getmaskarray(data)
        mask = extra if mask is None else (native_array(mask, dtype=bool) | extra)
    arr = to_backend(data, bk)
    if mask is not None:
        mask = to_backend(mask, bk, dtype=bool)
        if tuple(mask.shape) != tuple(arr.shape):
            raise InvalidInputError(
                f"mask must have the shape of data {tuple(arr.shape)}, got {tuple(mask.shape)}")
    out_dtype = _values_dtype(arr)
    as_f32 = out_dtype == np.float32
    if bk.name == "cpu":
        flat, fmask, use_mask = _flat_host(arr, mask, mask_value)
        mean, median, std, n = kstats.sigma_clip_image(
            flat, fmask, use_mask, lower, upper, iters, cen_func, std_func, int(std_ddof),
            as_f32, _n_chunks(flat.size))
        if n == 0 and use_mask and not np.any(~fmask):
            raise InvalidInputError("sigma_clipped_stats: every value is masked")
    else:
        xp = bk.xp
        values = _gather_device(xp, arr, mask, mask_value)
        if values.size == 0 and (mask is not None or mask_value is not None):
            raise InvalidInputError("sigma_clipped_stats: every value is masked")
        kept = _clip_sorted(xp, values, lower, upper, iters, cen_func, std_func, as_f32)
        n = int(kept.shape[0])
        if n == 0:
            mean = median = std = math.nan
        else:
            mean = _round(float(kept.mean()), as_f32)
            median = _round(_sorted_median(kept, as_f32), as_f32)
            std = (math.nan if n - std_ddof <= 0
                   else _round(float(kept.std(ddof=int(std_ddof))), as_f32))
    return out_dtype.type(mean), out_dtype.type(median), out_dtype.type(std)


def mad_rms(data, *, backend=None) -> float:
    """HAP's MAD noise estimate of an image (hap-pipeline.md §1.13 A, step 6).

    ``median(|2 I[:, 2:-2] - I[:, :-4] - I[:, 4:]|) * 1.482602 / sqrt(6)``, where pixels that
    are zero or NaN are masked (a difference is used only when its three pixels are valid).

    Parameters
    ----------
    data : array_like, shape (ny, nx)
        Image (host or device array).
    backend : str, Backend or None, keyword-only

    Returns
    -------
    float
        The rms estimate (NaN if no valid difference exists).
    """
    bk = get_backend(backend)
    arr = as_image(data, "data", bk)
    as_f32 = arr.dtype == np.float32
    if bk.name == "cpu":
        if as_f32:
            # the median straight from the image (two histogram sweeps, no difference vector)
            n, median, ok = kstats.mad_rms_median_f32(arr)
            if ok:
                return math.nan if n == 0 else float(median * _MAD_RMS_FACTOR)
        diffs = kstats.mad_rms_diffs(arr)
        if diffs.size == 0:
            return math.nan
        median = kstats.clipped_stats_flat(diffs, diffs.size, 0, as_f32)[1]
    else:
        xp = bk.xp
        a, b, c = arr[:, 2:-2], arr[:, :-4], arr[:, 4:]
        valid = (a != 0) & (b != 0) & (c != 0) & ~xp.isnan(a) & ~xp.isnan(b) & ~xp.isnan(c)
        diffs = xp.abs((a + a) - b - c)[valid].astype(xp.float64)
        if diffs.size == 0:
            return math.nan
        median = _round(_sorted_median(xp.sort(diffs), as_f32), as_f32)
    return float(median * _MAD_RMS_FACTOR)
