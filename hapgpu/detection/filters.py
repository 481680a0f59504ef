"""Image filters with SciPy's signatures: LoG, Gaussian, convolution, median, maximum, erosion.

Each function has the signature of its :mod:`scipy.ndimage` namesake (or of
:func:`astropy.convolution.convolve` for :func:`convolve`) plus a keyword-only ``backend``.
``cpu`` and ``cudasim`` run :mod:`scipy.ndimage`, except on ``cpu`` the LoG of a 2-D float
image and the odd square median filter in the default ``reflect`` mode, which run compiled,
multithreaded kernels with bit-identical results; ``gpu`` runs the :mod:`cupyx.scipy.ndimage`
namesake on the device (CuPy is imported only there). Results agree with SciPy to float32
precision; on the GPU the last bit may differ because sums are ordered differently.

:func:`convolve` reproduces astropy's convolution (float64 arithmetic, ``fill`` boundary,
NaN interpolation, optional kernel normalisation, result cast back to the input float dtype)
and runs a rank-1 (separable) kernel, such as a Gaussian, as two 1-D passes (on ``cpu``, for
finite images with a zero border, as one compiled, multithreaded kernel with SciPy's sums).
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError, InvalidParameterError
from ..kernels.detection import filters as kfilt
from ..kernels.detection import morphology as kmorph
from ._common import get_backend, native_array, to_backend

__all__ = [
    "gaussian_laplace",
    "gaussian_filter",
    "median_filter",
    "maximum_filter",
    "binary_erosion",
    "label",
    "convolve",
    "correlate",
    "ndimage_module",
]

_SEPARABLE_RTOL = 1e-12


def ndimage_module(backend):
    """Return the ndimage module of a backend: :mod:`cupyx.scipy.ndimage` on ``gpu``."""
    bk = get_backend(backend)
    if bk.name == "gpu":
        import cupyx.scipy.ndimage as ndi

        return ndi
    import scipy.ndimage as ndi

    return ndi


def _prepare(input, bk):
    """The input image on the backend, native byte order and C order (dtype kept)."""
    return to_backend(input, bk)


def _optional(array, bk):
    """An optional array argument (footprint, structure, mask) as :func:`_prepare` does."""
    return None if array is None else to_backend(array, bk)


def gaussian_laplace(input, sigma, output=None, mode="reflect", cval=0.0, *, backend=None,
                     **kwargs):
    """Laplacian of Gaussian, as :func:`scipy.ndimage.gaussian_laplace`.

    Parameters
    ----------
    input : array_like
        Image (host or device). The output has the input's dtype (float32 stays float32).
    sigma : float or sequence of float
        Gaussian standard deviation in pixels, per axis.
    output, mode, cval, **kwargs
        As in SciPy (``truncate``, ``radius``, ...).
    backend : str, Backend or None, keyword-only

    Returns
    -------
    ndarray
        On the backend's device.
    """
    bk = get_backend(backend)
    arr = _prepare(input, bk)
    if (bk.name == "cpu" and output is None and mode == "reflect" and arr.ndim == 2
            and arr.dtype in (np.float32, np.float64) and set(kwargs) <= {"truncate", "radius"}
            and np.size(sigma) in (1, 2) and min(arr.shape) > 0):
        return kfilt.gaussian_laplace_cpu(arr, sigma, kwargs.get("truncate", 4.0),
                                          kwargs.get("radius"))
    return ndimage_module(bk).gaussian_laplace(arr, sigma, output=output, mode=mode, cval=cval,
                                               **kwargs)


def gaussian_filter(input, sigma, order=0, output=None, mode="reflect", cval=0.0,
                    truncate=4.0, *, backend=None, **kwargs):
    """Gaussian filter, as :func:`scipy.ndimage.gaussian_filter`."""
    bk = get_backend(backend)
    return ndimage_module(bk).gaussian_filter(_prepare(input, bk), sigma, order=order,
                                              output=output, mode=mode, cval=cval,
                                              truncate=truncate, **kwargs)


def median_filter(input, size=None, footprint=None, output=None, mode="reflect", cval=0.0,
                  origin=0, *, backend=None, **kwargs):
    """Median filter, as :func:`scipy.ndimage.median_filter`."""
    bk = get_backend(backend)
    arr = _prepare(input, bk)
    if (bk.name == "cpu" and footprint is None and output is None and mode == "reflect"
            and origin == 0 and not kwargs and arr.ndim == 2 and np.ndim(size) == 0
            and size is not None and int(size) % 2 == 1 and arr.dtype.kind in "fiu"
            and min(arr.shape) > 0 and not (arr.dtype.kind == "f" and np.isnan(arr).any())):
        out = np.empty_like(arr)
        kfilt.median_filter_cpu(arr, int(size), out)
        return out
    return ndimage_module(bk).median_filter(arr, size=size, footprint=_optional(footprint, bk),
                                            output=output, mode=mode, cval=cval, origin=origin,
                                            **kwargs)


def maximum_filter(input, size=None, footprint=None, output=None, mode="reflect", cval=0.0,
                   origin=0, *, backend=None, **kwargs):
    """Maximum filter, as :func:`scipy.ndimage.maximum_filter`."""
    bk = get_backend(backend)
    return ndimage_module(bk).maximum_filter(_prepare(input, bk), size=size,
                                             footprint=_optional(footprint, bk), output=output,
                                             mode=mode, cval=cval, origin=origin, **kwargs)


_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)


def _is_cross(structure) -> bool:
    if structure is None:
        return True
    s = np.asarray(structure)
    return s.shape == (3, 3) and bool(np.array_equal(s != 0, _CROSS))


def binary_erosion(input, structure=None, iterations=1, mask=None, output=None, border_value=0,
                   origin=0, brute_force=False, *, backend=None):
    """Binary erosion, as :func:`scipy.ndimage.binary_erosion`.

    On ``cpu``, a 2-D image eroded by the 3x3 cross (the default structure) 1 to 254 times
    with a zero border, no mask and no output array runs as one city-block distance transform
    (:func:`hapgpu.kernels.detection.morphology.taxicab_erosion`): the same pixels, in two
    sweeps whatever the number of iterations.
    """
    bk = get_backend(backend)
    if (bk.name == "cpu" and mask is None and output is None and not border_value
            and np.ndim(input) == 2 and isinstance(iterations, (int, np.integer))
            and 1 <= int(iterations) <= 254 and np.all(np.asarray(origin) == 0)
            and _is_cross(structure)):
        image = _prepare(input, bk)
        if image.dtype.kind in "biuf":
            return kmorph.taxicab_erosion(image, int(iterations))
    ndi = ndimage_module(bk)
    return ndi.binary_erosion(_prepare(input, bk), structure=_optional(structure, bk),
                              iterations=iterations, mask=_optional(mask, bk), output=output,
                              border_value=border_value, origin=origin,
                              brute_force=brute_force)


def label(input, structure=None, *, backend=None):
    """Connected-component labelling, as :func:`scipy.ndimage.label`.

    Labels are numbered in raster order of each component's first pixel on every backend.

    Returns
    -------
    labels : ndarray of int32
    n_labels : int
    """
    from .segmentation import _label_image

    bk = get_backend(backend)
    arr = _prepare(input, bk)
    connectivity = 8
    if structure is not None:
        st = native_array(structure, dtype=bool)
        if st.shape != (3, 3):
            raise InvalidParameterError("label supports 3x3 structures only")
        if np.array_equal(st, np.ones((3, 3), bool)):
            connectivity = 8
        elif np.array_equal(st, np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)):
            connectivity = 4
        else:
            raise InvalidParameterError("label supports the 4- and 8-connected structures only")
    else:
        connectivity = 4
    return _label_image(arr != 0, connectivity, bk)


def _kernel_array(kernel) -> np.ndarray:
    arr = native_array(getattr(kernel, "array", kernel), dtype=np.float64)
    if arr.ndim != 2:
        raise InvalidInputError(f"kernel must be 2-D, got shape {arr.shape}")
    if any(s % 2 == 0 for s in arr.shape):
        raise InvalidInputError(f"kernel size must be odd in both axes, got {arr.shape}")
    return arr


def _separable_factors(kernel: np.ndarray):
    """Return (column, row) vectors with ``outer(column, row) == kernel``, or None."""
    u, s, vt = np.linalg.svd(kernel)
    if s[0] == 0 or (s.size > 1 and s[1] > _SEPARABLE_RTOL * s[0]):
        return None
    scale = np.sqrt(s[0])
    return u[:, 0] * scale, vt[0] * scale


def _convolve_filled(ndi, xp, data, kernel, cval):
    """True convolution with a constant border (float64), separable when possible."""
    if cval != 0:
        # a constant border is a zero border plus a constant; this keeps the two 1-D passes
        # of a separable kernel exact
        return _convolve_filled(ndi, xp, data - cval, kernel, 0.0) + cval * float(kernel.sum())
    factors = _separable_factors(kernel)
    if factors is None:
        return ndi.convolve(data, xp.asarray(kernel), mode="constant", cval=cval)
    column, row = factors
    # convolve1d flips the weights, as convolve does in 2-D.
    tmp = ndi.convolve1d(data, xp.asarray(column), axis=0, mode="constant", cval=cval)
    return ndi.convolve1d(tmp, xp.asarray(row), axis=1, mode="constant", cval=cval)


def convolve(array, kernel, boundary="fill", fill_value=0.0, nan_treatment="interpolate",
             normalize_kernel=True, mask=None, preserve_nan=False, *, backend=None):
    """Convolve an image with a kernel, as :func:`astropy.convolution.convolve`.

    Parameters
    ----------
    array : array_like, shape (ny, nx)
        Image (host or device).
    kernel : array_like or astropy ``Kernel2D``
        Kernel with odd sizes. A rank-1 kernel (a Gaussian) runs as two 1-D passes.
    boundary : {"fill"}, optional
        Only ``fill`` (pixels outside the image take ``fill_value``) is supported.
    fill_value : float, optional
    nan_treatment : {"interpolate", "fill"}, optional
        ``interpolate`` replaces NaNs by the kernel-weighted mean of their valid neighbours;
        ``fill`` replaces them by ``fill_value``.
    normalize_kernel : bool, optional
        Divide the result by the kernel sum.
    mask : array_like of bool, optional
        Pixels treated as NaN.
    preserve_nan : bool, optional
        Put NaN back where the input was NaN.
    backend : str, Backend or None, keyword-only

    Returns
    -------
    ndarray, shape (ny, nx)
        Float64, or the input's float dtype; on the backend's device.
    """
    if boundary != "fill":
        raise InvalidParameterError("convolve supports boundary='fill' only")
    if nan_treatment not in ("interpolate", "fill"):
        raise InvalidParameterError("nan_treatment must be 'interpolate' or 'fill'")
    bk = get_backend(backend)
    ndi = ndimage_module(bk)
    xp = bk.xp
    arr = _prepare(array, bk)
    if arr.ndim != 2:
        raise InvalidInputError(f"array must be 2-D, got shape {tuple(arr.shape)}")
    out_dtype = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)
    kern = _kernel_array(kernel)
    kernel_sum = float(kern.sum())
    if (bk.name == "cpu" and mask is None and fill_value == 0
            and arr.dtype in (np.float32, np.float64) and min(arr.shape) > 0):
        if kmorph.all_finite(arr):
            # nothing to interpolate or fill: _convolve_filled's SciPy passes in SciPy's
            # order (bit-identical), compiled, rows in parallel, no float64 copy of the
            # input and the division and cast fused into the last pass -- two 1-D passes for
            # a rank-1 kernel, one 2-D pass otherwise
            if normalize_kernel and np.isclose(kernel_sum, 0.0, atol=1e-8):
                raise InvalidParameterError(
                    "the kernel sums to zero: it cannot be normalised nor used to interpolate "
                    "NaNs; use normalize_kernel=False and nan_treatment='fill'")
            divisor = kernel_sum if normalize_kernel else 1.0
            factors = _separable_factors(kern)
            if factors is not None:
                return kfilt.separable_convolve_zero_cpu(arr, factors[0], factors[1], divisor,
                                                         out_dtype)
            return kfilt.convolve_zero_cpu(arr, kern, divisor, out_dtype)
    data = arr.astype(xp.float64, copy=True)
    if mask is not None:
        mask = to_backend(mask, bk, dtype=bool)
        if tuple(mask.shape) != tuple(arr.shape):
            raise InvalidInputError(
                f"mask must have the shape of the array {tuple(arr.shape)}, "
                f"got {tuple(mask.shape)}")
        data[mask] = xp.nan
    nan_mask = xp.isnan(data)
    has_nan = bool(nan_mask.any())
    interpolate = nan_treatment == "interpolate" and (has_nan or np.isnan(fill_value))
    if (normalize_kernel or interpolate) and np.isclose(kernel_sum, 0.0, atol=1e-8):
        raise InvalidParameterError(
            "the kernel sums to zero: it cannot be normalised nor used to interpolate NaNs; "
            "use normalize_kernel=False and nan_treatment='fill'")
    if interpolate:
        valid = (~nan_mask).astype(xp.float64)
        data[nan_mask] = 0.0
        fill_valid = 0.0 if np.isnan(fill_value) else 1.0
        fill_data = 0.0 if np.isnan(fill_value) else fill_value
        num = _convolve_filled(ndi, xp, data, kern, fill_data)
        den = _convolve_filled(ndi, xp, valid, kern, fill_valid)
        with np.errstate(invalid="ignore", divide="ignore"):
            result = xp.where(den != 0, num / xp.where(den != 0, den, 1.0), xp.nan)
        if not normalize_kernel:
            result *= kernel_sum
    else:
        if has_nan:
            data[nan_mask] = fill_value
        result = _convolve_filled(ndi, xp, data, kern, fill_value)
        if normalize_kernel:
            result /= kernel_sum
    if preserve_nan:
        result[nan_mask] = xp.nan
    return result.astype(out_dtype, copy=False)


def correlate(input, weights, output=None, mode="reflect", cval=0.0, origin=0, *, backend=None):
    """Correlation, as :func:`scipy.ndimage.correlate`."""
    bk = get_backend(backend)
    w = to_backend(weights, bk)
    return ndimage_module(bk).correlate(_prepare(input, bk), w, output=output, mode=mode,
                                        cval=cval, origin=origin)
