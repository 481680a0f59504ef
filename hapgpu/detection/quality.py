"""runastrodriz alignment-quality metrics (hap-pipeline.md §3.5 and §3.6).

* :func:`focus_index`: the largest absolute Laplacian-of-Gaussian response and where it is
  (drizzlepac ``determine_focus_index``), optionally after zeroing pixels outside a mask.
* :func:`compute_zero_mask`, :func:`build_focus_dict`, :func:`evaluate_focus`: the saturation
  mask shared by the single-exposure drizzles, the focus values of the singles and of the
  product, and the z-score test of the product's focus against the singles'.
* :func:`compute_similarity`: the signed, rebinned difference index (fused float64 sums).
* :func:`detect_point_sources` and :func:`max_overlap_diff`: the point-source masks (clipped
  background, optional median filter, negative LoG, labelling) and the overlap "Hamming"
  distance between each single drizzle and the product.

Inputs are arrays (host or device). Where drizzlepac takes file names, a ``str`` is read with
:func:`astropy.io.fits.getdata` as drizzlepac does; everything else is arithmetic on the
backend (LoG, filters and labels on the device for ``gpu``).
"""

from __future__ import annotations

import copy

import numba
import numpy as np
from scipy import stats as sps

from ..errors import InvalidInputError
from ._common import get_backend, strip_unit
from .filters import binary_erosion, gaussian_laplace, median_filter
from .segmentation import _label_image
from .stats import sigma_clipped_stats

__all__ = [
    "focus_index",
    "compute_zero_mask",
    "build_focus_dict",
    "evaluate_focus",
    "compute_prob",
    "compute_similarity",
    "detect_point_sources",
    "max_overlap_diff",
    "evaluate_overlap_diffs",
    "FOCUS_DICT",
]

FOCUS_DICT = {"exp": [], "prod": [], "stats": {}, "exp_pos": None, "prod_pos": None,
              "alignment_verified": False, "alignment_quality": -1, "expnames": "",
              "prodname": ""}


def _load(image, bk, ext=None):
    """Array of an image given as an array or a FITS file name (drizzlepac semantics)."""
    if isinstance(image, str):
        from astropy.io import fits

        data = fits.getdata(image) if ext is None else fits.getdata(image, ext=ext)
        return bk.asarray(data) if bk.name == "gpu" else np.array(data)
    values = strip_unit(image)[0]
    arr = bk.asarray(values) if bk.name == "gpu" else np.asarray(values)
    if arr.ndim != 2:
        raise InvalidInputError(f"images must be 2-D, got shape {tuple(arr.shape)}")
    return arr


def focus_index(image, sigma=1.5, *, mask=None, backend=None):
    """Focus (sharpness) index: ``max |LoG(image, sigma)|`` and its position.

    Parameters
    ----------
    image : array_like, shape (ny, nx)
        Image (host or device). NaNs are treated as 0.
    sigma : float, optional
        LoG scale in pixels.
    mask : array_like of bool, optional, keyword-only
        Pixels where ``mask`` is False are set to 0 before filtering (§3.5's saturation mask).
    backend : str, Backend or None, keyword-only

    Returns
    -------
    focus_val : float
    focus_pos : tuple of two int arrays
        ``(y, x)`` of every pixel reaching the maximum (``numpy.where`` order).
    """
    bk = get_backend(backend)
    xp = bk.xp
    img = _load(image, bk)
    if mask is not None or bool(xp.isnan(img).any()):
        img = xp.nan_to_num(img, nan=0)
        if mask is not None:
            m = bk.asarray(mask, dtype=bool) if bk.name == "gpu" else np.asarray(mask, bool)
            img = xp.where(m, img, 0).astype(img.dtype)
    log = xp.abs(gaussian_laplace(img, sigma, backend=bk))
    value = log.max()
    ys, xs = xp.nonzero(log == value)
    return float(value), (bk.to_host(ys), bk.to_host(xs))


def compute_zero_mask(imgarr, iterations=8, *, backend=None):
    """Non-zero pixels eroded ``iterations`` times (drizzlepac ``compute_zero_mask``).

    As coded in drizzlepac, positive pixels are set to 1 and the image is eroded as a boolean
    image, so negative and NaN pixels count as valid and only zeros are excluded.
    """
    bk = get_backend(backend)
    img = _load(imgarr, bk)
    return binary_erosion(img != 0, iterations=iterations, backend=bk)


def build_focus_dict(singlefiles, prodfile, sigma=2.0, *, names=None, backend=None) -> dict:
    """Focus values of the single-exposure drizzles and of the product (§3.5).

    The mask is the AND over the singles of :func:`compute_zero_mask`; every image has its
    pixels outside the mask and its NaNs set to 0 before :func:`focus_index`.

    Parameters
    ----------
    singlefiles : sequence of arrays or file names
    prodfile : array or file name
    sigma : float, optional
    names : sequence of str, optional, keyword-only
        Labels of the singles and product for the returned dictionary.
    backend : str, Backend or None, keyword-only

    Returns
    -------
    dict
        drizzlepac's focus dictionary: ``exp``, ``prod``, ``exp_pos``, ``prod_pos``,
        ``stats`` (mean, std, min, max of ``exp``), ``expnames``, ``prodname``.
    """
    bk = get_backend(backend)
    singles = [_load(s, bk) for s in singlefiles]
    if not singles:
        raise InvalidInputError("build_focus_dict needs at least one single image")
    full = None
    for s in singles:
        zm = compute_zero_mask(s, backend=bk)
        full = zm if full is None else (full & zm)
    result = copy.deepcopy(FOCUS_DICT)
    result["expnames"] = list(names[:-1]) if names else [
        s if isinstance(s, str) else f"single_{i}" for i, s in enumerate(singlefiles)]
    result["prodname"] = names[-1] if names else (
        prodfile if isinstance(prodfile, str) else "product")
    for s in singles:
        val, pos = focus_index(s, sigma, mask=full, backend=bk)
        result["exp"].append(val)
        result["exp_pos"] = (int(pos[0][0]), int(pos[1][0]))
    val, pos = focus_index(_load(prodfile, bk), sigma, mask=full, backend=bk)
    result["prod"].append(val)
    result["prod_pos"] = (int(pos[0][0]), int(pos[1][0]))
    exp = np.array(result["exp"])
    result["stats"] = {"mean": exp.mean(), "std": exp.std(), "min": exp.min(),
                       "max": exp.max()}
    return result


def compute_prob(val, mean, sigma):
    """z-score of ``val``: ``Phi^-1(Phi((val - mean) / sigma))`` (saturates in the far tails)."""
    p = sps.norm.cdf(x=val, loc=mean, scale=sigma)
    return sps.norm.ppf(p)


def evaluate_focus(focus_dict, tolerance=0.8) -> bool:
    """drizzlepac's focus test: False when the product's focus is outside the singles' range.

    Range: ``[min(mean - 3 std, tolerance * mean), mean + 3 std]`` in z-score; also False
    when the singles' std exceeds their minimum. None passes.
    """
    if focus_dict is None:
        return True
    s = focus_dict["stats"]
    lo = min(s["mean"] - 3.0 * s["std"], tolerance * s["mean"])
    hi = s["mean"] + 3.0 * s["std"]
    with np.errstate(invalid="ignore", divide="ignore"):
        z_lo = compute_prob(lo, s["mean"], s["std"])
        z_hi = compute_prob(hi, s["mean"], s["std"])
        z = np.array([compute_prob(d, s["mean"], s["std"]) for d in focus_dict["prod"]])
    return not bool((z < z_lo).any() or (z > z_hi).any() or s["std"] > s["min"])


def _rebin_sum(arr, size):
    n = arr.shape[0] // size
    return arr.reshape(size, n, size, n).sum(-1).sum(1)


@numba.njit(cache=True, nogil=True)
def _window_sums(img, ref, window):
    """Float64 sums of ``img`` and ``ref`` over ``[:window, :window]``, NaN as 0."""
    s_img = 0.0
    s_ref = 0.0
    for j in range(window):
        for i in range(window):
            a = img[j, i]
            b = ref[j, i]
            if a == a:
                s_img += a
            if b == b:
                s_ref += b
    return s_img, s_ref


def compute_similarity(image, reference, *, backend=None):
    """Similarity index ``|sum(img_r - ref_r)| / sum(img_r)`` of rebinned images (§3.6).

    NaNs become 0; the largest ``2**b`` square window of the common shape is used (drizzlepac
    rebins it by summing to ``2**(b-2)`` pixels a side first, which does not change the two
    sums). The sum of differences is signed. The sums are accumulated in float64, so the
    result differs from drizzlepac's float32 sums by their rounding only.

    Returns
    -------
    float
    """
    bk = get_backend(backend)
    img = _load(image, bk)
    ref = _load(reference, bk)
    minsize = min(img.shape[0], ref.shape[0], img.shape[1], ref.shape[1])
    window = 2 ** (int(minsize).bit_length() - 1)
    if bk.name == "cpu":
        s_img, s_ref = _window_sums(np.ascontiguousarray(img), np.ascontiguousarray(ref), window)
    else:
        xp = bk.xp
        s_img = float(xp.nansum(img[:window, :window], dtype=xp.float64))
        s_ref = float(xp.nansum(ref[:window, :window], dtype=xp.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.float64(abs(s_img - s_ref)) / np.float64(s_img))


def _reduce_diff_region(xp, arr, bk, scale=1, background=None, nsigma=4, sigma=3.0):
    """Background-removed, clipped-at-0 image (drizzlepac ``reduce_diff_region``)."""
    if scale > 1:
        ny, nx = arr.shape[0] // scale, arr.shape[1] // scale
        work = arr[:ny * scale, :nx * scale].reshape(ny, scale, nx, scale).sum(-1).sum(1)
    else:
        work = arr.copy()
    blank = False
    if background is None:
        top = float(work.max())
        if top == 0:
            bkg_total, bkg = 0.0, (0.0, 0.0, 0.0)
        else:
            if not top > 0:
                raise InvalidInputError("overlap region has no positive pixel")
            maxiters = int(np.log10(top / 2) + 0.5)
            bkg = sigma_clipped_stats(work, sigma=sigma, maxiters=maxiters, backend=bk)
            bkg_total = bkg[0] + nsigma * bkg[2]
        blank = bool(bkg[1] < bkg[2] and bkg[1] < 1.0)
    else:
        bkg_total = background
    if blank:
        work = median_filter(work, size=5, backend=bk)
    work = work - xp.asarray(bkg_total, dtype=work.dtype)
    return xp.clip(work, 0, work.max())


def detect_point_sources(arr, background=None, nsigma=4, log_sigma=3.0, scale=1, sigma=3.0,
                         exp_weight=None, *, backend=None):
    """Label point-like sources by their negative LoG response (drizzlepac semantics).

    Returns
    -------
    labels : ndarray of int32 (host)
        4-connected labels of the pixels where ``-LoG > 0``.
    n_sources : int
    srclog : ndarray
        The clipped negative LoG image (backend's device).
    """
    bk = get_backend(backend)
    xp = bk.xp
    src = _reduce_diff_region(xp, _load(arr, bk), bk, scale=scale, background=background,
                              nsigma=nsigma, sigma=sigma)
    srclog = -1 * gaussian_laplace(src, sigma=log_sigma, backend=bk)
    srclog[srclog < 0] = 0
    labels, n = _label_image(srclog != 0, 4, bk)
    return labels, n, srclog


def _empty_diff():
    return {"distance": -1, "xslice": None, "yslice": None, "product_num_sources": 0,
            "num_sources": 0, "focus": 0.0, "focus_pos": (None, None), "product_focus": 0.0,
            "product_focus_pos": (None, None)}


def max_overlap_diff(total_mask, singlefiles, prodfile, sigma=2.0, scale=1, lsigma=3.0, *,
                     exptimes=None, names=None, backend=None) -> dict:
    """Overlap difference ("Hamming" distance) of each single drizzle from the product (§3.6).

    Parameters
    ----------
    total_mask : array_like of int, shape (ny, nx)
        Number of exposures covering each product pixel.
    singlefiles : sequence of arrays or file names
        Single-exposure drizzles on the product's grid.
    prodfile : array or file name
        The product (a file name reads ``('SCI', 1)``).
    sigma : float, optional
        LoG scale of the focus indices.
    scale : int, optional
        Rebinning factor before the source masks.
    lsigma : float, optional
        LoG scale of the source masks.
    exptimes : sequence of float, optional, keyword-only
        Exposure times (read from the headers for file names; equal weights otherwise).
    names : sequence of str, optional, keyword-only
        Keys of the result (default: the file names, else ``single_<i>``).
    backend : str, Backend or None, keyword-only

    Returns
    -------
    dict
        Per single: ``distance`` (``min(hamming, 2 * similarity)``, -1 for a blank single),
        ``xslice``, ``yslice``, ``num_sources``, ``product_num_sources``, ``focus``,
        ``focus_pos``, ``product_focus``, ``product_focus_pos``.
    """
    bk = get_backend(backend)
    xp = bk.xp
    drz = _load(prodfile, bk, ext=("SCI", 1) if isinstance(prodfile, str) else None)
    tmask = _load(total_mask, bk)
    if tuple(drz.shape) != tuple(tmask.shape):
        raise InvalidInputError(
            f"total mask shape {tuple(tmask.shape)} differs from the product's {drz.shape}")
    min_overlap = tmask > 1
    max_overlap = tmask == tmask.max()
    if exptimes is None:
        if all(isinstance(s, str) for s in singlefiles):
            from astropy.io import fits

            exptimes = [fits.getval(s, "exptime") for s in singlefiles]
        else:
            exptimes = [1.0] * len(singlefiles)
    exptimes = np.asarray(exptimes, dtype=float)
    weights = exptimes / exptimes.max()
    keys = list(names) if names is not None else [
        s if isinstance(s, str) else f"single_{i}" for i, s in enumerate(singlefiles)]
    result = {}
    for key, sfile, weight in zip(keys, singlefiles, weights):
        sdata = _load(sfile, bk)
        smask = sdata > 0
        if not bool(smask.any()):
            result[key] = _empty_diff()
            continue
        soverlap = smask & max_overlap
        if not bool(soverlap.any()):
            soverlap = smask & min_overlap
        drz_region = xp.nan_to_num(drz * soverlap, nan=0)
        s_region = xp.nan_to_num(sdata * soverlap, nan=0)
        focus_val, focus_pos = focus_index(s_region, sigma, backend=bk)
        pfocus_val, pfocus_pos = focus_index(drz_region, sigma, backend=bk)
        yr, xr = xp.nonzero(soverlap)
        yslice = slice(int(yr.min()), int(yr.max()), 1)
        xslice = slice(int(xr.min()), int(xr.max()), 1)
        drz_arr = drz_region[yslice, xslice]
        s_arr = s_region[yslice, xslice]
        drz_labels, drz_num, _ = detect_point_sources(drz_arr, scale=scale, log_sigma=lsigma,
                                                      backend=bk)
        s_labels, s_num, _ = detect_point_sources(s_arr, scale=scale, exp_weight=weight,
                                                  log_sigma=lsigma, backend=bk)
        drz_src = np.clip(drz_labels, 0, 1).astype(np.int16)
        s_src = np.clip(s_labels, 0, 1).astype(np.int16)
        s_count = int(np.count_nonzero(s_src))
        with np.errstate(divide="ignore", invalid="ignore"):
            dist = np.float64(np.abs(drz_src - s_src).sum()) / np.float64(s_count) * weight
        sim = compute_similarity(s_arr, drz_arr, backend=bk)
        dist = min(dist, np.float64(sim) * 2.0)
        result[key] = {
            "distance": dist, "xslice": xslice, "yslice": yslice,
            "product_num_sources": drz_num, "num_sources": s_num, "focus": float(focus_val),
            "focus_pos": (int(focus_pos[0][0]), int(focus_pos[1][0])),
            "product_focus": float(pfocus_val),
            "product_focus_pos": (int(pfocus_pos[0][0]), int(pfocus_pos[1][0])),
        }
    return result


def evaluate_overlap_diffs(diff_dict, limit=1.0):
    """``(max distance <= limit, max distance)`` over the singles."""
    max_diff = max(d["distance"] for d in diff_dict.values())
    return bool(max_diff <= limit), max_diff
