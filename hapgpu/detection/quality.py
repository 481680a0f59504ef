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

Inputs are arrays (host or device, any byte order). Where drizzlepac takes file names, a
``str`` is read with :func:`astropy.io.fits.getdata` as drizzlepac does (and converted to
native byte order); everything else is arithmetic on the backend (LoG, filters and labels on
the device for ``gpu``).
"""

from __future__ import annotations

import copy

import numba
import numpy as np
from scipy import stats as sps

from ..errors import InvalidInputError
from ._common import get_backend, native_array, strip_unit, to_backend
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
    """An image given as an array or a FITS file name (read as drizzlepac does), on the
    backend in native byte order (FITS data are big-endian)."""
    if isinstance(image, str):
        from astropy.io import fits

        image = fits.getdata(image) if ext is None else fits.getdata(image, ext=ext)
    arr = to_backend(strip_unit(image)[0], bk)
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
            keep = to_backend(mask, bk, dtype=bool)
            if tuple(keep.shape) != tuple(img.shape):
                raise InvalidInputError(
                    f"mask must have the image's shape {tuple(img.shape)}, "
                    f"got {tuple(keep.shape)}")
            img = xp.where(keep, img, 0).astype(img.dtype)
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

    Parameters
    ----------
    image, reference : array_like, shape (ny, nx) and (my, mx), or FITS file names
        Host or device arrays of any byte order.
    backend : str, Backend or None, keyword-only

    Returns
    -------
    float
        NaN or inf when the image window sums to 0.
    """
    bk = get_backend(backend)
    img = _load(image, bk)
    ref = _load(reference, bk)
    minsize = min(img.shape[0], ref.shape[0], img.shape[1], ref.shape[1])
    window = 2 ** (int(minsize).bit_length() - 1)
    if bk.name == "cpu":
        s_img, s_ref = _window_sums(img, ref, window)
    else:
        xp = bk.xp
        s_img = float(xp.nansum(img[:window, :window], dtype=xp.float64))
        s_ref = float(xp.nansum(ref[:window, :window], dtype=xp.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.float64(abs(s_img - s_ref)) / np.float64(s_img))


# --------------------------------------------------------------------------------------------
# Overlap difference (hap-pipeline.md §3.6)
# --------------------------------------------------------------------------------------------


# drizzlepac's EXP_RATIO: singles with a smaller exposure weight are clipped at 3 sigma
_SHORT_EXPOSURE_WEIGHT = 0.2


def _binned(xp, image, factor):
    """``image`` summed over ``factor x factor`` blocks (trailing rows/columns dropped)."""
    if factor <= 1:
        return image.copy()
    ny, nx = image.shape[0] // factor, image.shape[1] // factor
    blocks = image[:ny * factor, :nx * factor].reshape(ny, factor, nx, factor)
    return blocks.sum(-1).sum(1)


def _clipped_sky(image, nsigma, sigma, bk):
    """``(level, faint)``: the source threshold of an image and whether it is nearly empty.

    ``level = mean + nsigma * std`` of the image clipped at ``sigma`` for
    ``int(log10(max / 2) + 0.5)`` iterations; ``faint`` when the clipped median is below both
    the clipped std and 1. An image that is zero everywhere has level 0 and is not faint.
    """
    peak = float(image.max())
    if peak == 0:
        return 0.0, False
    if not peak > 0:
        raise InvalidInputError(
            f"the overlap region has no positive pixel (maximum {peak}); the single drizzle "
            "and the product do not share data there")
    n_iter = int(np.log10(peak / 2) + 0.5)
    mean, median, std = sigma_clipped_stats(image, sigma=sigma, maxiters=n_iter, backend=bk)
    return mean + nsigma * std, bool(median < std and median < 1.0)


def _source_excess(image, bk, *, scale, background, nsigma, sigma):
    """Flux above the source threshold, clipped at 0, of ``image`` binned by ``scale``.

    With ``background=None`` the threshold comes from :func:`_clipped_sky`, and a faint
    (nearly empty) image is median-filtered (5 x 5) first so that noise spikes do not count as
    sources; otherwise ``background`` (scalar or image) is the threshold.
    """
    xp = bk.xp
    work = _binned(xp, image, scale)
    if background is None:
        level, faint = _clipped_sky(work, nsigma, sigma, bk)
        if faint:
            work = median_filter(work, size=5, backend=bk)
    else:
        level = background if np.ndim(background) == 0 else to_backend(background, bk)
    excess = work - xp.asarray(level, dtype=work.dtype)
    return xp.clip(excess, 0, excess.max())


def detect_point_sources(arr, background=None, nsigma=4, log_sigma=3.0, scale=1, sigma=3.0,
                         exp_weight=None, *, backend=None):
    """Point-like sources of an image: connected pixels with a positive ``-LoG`` response.

    The image is binned by ``scale``, its source threshold removed (:func:`_source_excess`),
    filtered with ``-LoG(log_sigma)``, negative responses set to 0, and the rest labelled
    with 4-connectivity (hap-pipeline.md §3.6, step 3; drizzlepac's
    ``astrometric_utils.detect_point_sources``).

    Parameters
    ----------
    arr : array_like, shape (ny, nx), or a FITS file name
        Image (host or device, any byte order).
    background : float or array_like, optional
        Threshold to remove instead of the clipped ``mean + nsigma * std``.
    nsigma, sigma : float, optional
        Threshold in clipped standard deviations, and the clipping limit.
    log_sigma : float, optional
        LoG scale in (binned) pixels.
    scale : int, optional
        Binning factor.
    exp_weight : float, optional
        Exposure-time weight of the image; below 0.2 (a short exposure) the clipping limit
        is 3 sigma whatever ``sigma`` says, as in drizzlepac.
    backend : str, Backend or None, keyword-only

    Returns
    -------
    labels : ndarray of int32 (host)
        Source labels, 1..n.
    n_sources : int
    srclog : ndarray
        The ``-LoG`` image clipped at 0 (backend's device).
    """
    bk = get_backend(backend)
    if exp_weight is not None and exp_weight < _SHORT_EXPOSURE_WEIGHT:
        sigma = 3.0
    excess = _source_excess(_load(arr, bk), bk, scale=scale, background=background,
                            nsigma=nsigma, sigma=sigma)
    response = gaussian_laplace(excess, sigma=log_sigma, backend=bk)
    response *= -1
    response[response < 0] = 0
    labels, n = _label_image(response != 0, 4, bk)
    return labels, n, response


def _comparison_region(single, coverage, xp):
    """Pixels where a single drizzle is compared with the product, or None if it is empty.

    Its data pixels (> 0) where the most exposures overlap; if it does not reach that depth,
    its data pixels covered by at least two exposures.
    """
    has_data = single > 0
    if not bool(has_data.any()):
        return None
    region = has_data & (coverage == coverage.max())
    if bool(region.any()):
        return region
    return has_data & (coverage > 1)


def _bounding_slices(region, xp):
    """drizzlepac's crop of a region: ``slice(first, last)`` per axis, so the last row and
    column holding region pixels are left out (kept for parity)."""
    rows, cols = xp.nonzero(region)
    return (slice(int(rows.min()), int(rows.max()), 1),
            slice(int(cols.min()), int(cols.max()), 1))


def _no_overlap_entry():
    """Result of a single drizzle without data: distance -1, nothing measured."""
    return {"distance": -1, "xslice": None, "yslice": None, "product_num_sources": 0,
            "num_sources": 0, "focus": 0.0, "focus_pos": (None, None), "product_focus": 0.0,
            "product_focus_pos": (None, None)}


def _first_position(pos):
    return int(pos[0][0]), int(pos[1][0])


def _overlap_difference(single, product, coverage, weight, bk, *, sigma, scale, lsigma):
    """Distance of one single drizzle from the product (hap-pipeline.md §3.6).

    Both images are restricted to :func:`_comparison_region` (NaN -> 0). The distance is
    the smaller of

    * ``weight * N(source pixels in exactly one of the two) / N(source pixels in the
      single)``, the normalised Hamming distance between the two
      :func:`detect_point_sources` masks, and
    * ``2 * compute_similarity(single, product)`` over the region's bounding box.
    """
    xp = bk.xp
    region = _comparison_region(single, coverage, xp)
    if region is None:
        return _no_overlap_entry()
    single_part = xp.nan_to_num(single * region, nan=0)
    product_part = xp.nan_to_num(product * region, nan=0)
    focus, focus_pos = focus_index(single_part, sigma, backend=bk)
    product_focus, product_focus_pos = focus_index(product_part, sigma, backend=bk)
    rows, cols = _bounding_slices(region, xp)
    single_cut = single_part[rows, cols]
    product_cut = product_part[rows, cols]
    product_labels, product_n, _ = detect_point_sources(product_cut, scale=scale,
                                                        log_sigma=lsigma, backend=bk)
    single_labels, single_n, _ = detect_point_sources(single_cut, scale=scale,
                                                      exp_weight=weight, log_sigma=lsigma,
                                                      backend=bk)
    in_single = single_labels > 0
    n_disagree = np.count_nonzero(in_single != (product_labels > 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        hamming = np.float64(n_disagree) / np.float64(np.count_nonzero(in_single)) * weight
    similarity = compute_similarity(single_cut, product_cut, backend=bk)
    return {
        "distance": min(hamming, np.float64(similarity) * 2.0),
        "xslice": cols, "yslice": rows,
        "product_num_sources": product_n, "num_sources": single_n,
        "focus": float(focus), "focus_pos": _first_position(focus_pos),
        "product_focus": float(product_focus),
        "product_focus_pos": _first_position(product_focus_pos),
    }


def _exposure_weights(singlefiles, exptimes):
    """``exptime / max(exptime)`` per single (headers for file names, else equal)."""
    if exptimes is None:
        if all(isinstance(s, str) for s in singlefiles):
            from astropy.io import fits

            exptimes = [fits.getval(s, "exptime") for s in singlefiles]
        else:
            exptimes = [1.0] * len(singlefiles)
    times = native_array(exptimes, dtype=np.float64)
    if times.shape != (len(singlefiles),):
        raise InvalidInputError(
            f"exptimes must give one exposure time per single ({len(singlefiles)}), "
            f"got shape {times.shape}")
    return times / times.max()


def max_overlap_diff(total_mask, singlefiles, prodfile, sigma=2.0, scale=1, lsigma=3.0, *,
                     exptimes=None, names=None, backend=None) -> dict:
    """Overlap difference ("Hamming" distance) of each single drizzle from the product (§3.6).

    The metric is drizzlepac's ``astrometric_utils.max_overlap_diff`` as described in
    hap-pipeline.md §3.6; see :func:`_overlap_difference` for the formula.

    Parameters
    ----------
    total_mask : array_like of int, shape (ny, nx)
        Number of exposures covering each product pixel.
    singlefiles : sequence of arrays or file names
        Single-exposure drizzles on the product's grid (any byte order).
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
        Per single: ``distance`` (-1 for a single without data), ``xslice``, ``yslice``,
        ``num_sources``, ``product_num_sources``, ``focus``, ``focus_pos``,
        ``product_focus``, ``product_focus_pos``.

    Raises
    ------
    InvalidInputError
        When ``total_mask`` and the product differ in shape.
    """
    bk = get_backend(backend)
    product = _load(prodfile, bk, ext=("SCI", 1) if isinstance(prodfile, str) else None)
    coverage = _load(total_mask, bk)
    if tuple(product.shape) != tuple(coverage.shape):
        raise InvalidInputError(
            f"total_mask has shape {tuple(coverage.shape)} but the product has "
            f"{tuple(product.shape)}; both must be on the product's grid")
    weights = _exposure_weights(singlefiles, exptimes)
    keys = list(names) if names is not None else [
        s if isinstance(s, str) else f"single_{i}" for i, s in enumerate(singlefiles)]
    return {key: _overlap_difference(_load(single, bk), product, coverage, weight, bk,
                                     sigma=sigma, scale=scale, lsigma=lsigma)
            for key, single, weight in zip(keys, singlefiles, weights)}


def evaluate_overlap_diffs(diff_dict, limit=1.0):
    """``(max distance <= limit, max distance)`` over the singles."""
    max_diff = max(d["distance"] for d in diff_dict.values())
    return bool(max_diff <= limit), max_diff
