"""Order statistics on small buffers, written once for the CPU and CUDA targets.

These plain-Python functions are compiled by :func:`hapgpu.kernels.targets.compile_namespace`
(``numba.njit`` on the CPU, CUDA device functions on the GPU). They work in place on a 1-D
float64 buffer ``a[0:n]`` and reorder it.
"""

import math

import numpy as np


def kth_smallest(a, n, k):
    """Return the ``k``-th smallest of ``a[0:n]`` (0-based), partially reordering ``a``.

    Wirth's selection (Hoare partitioning around ``a[k]``), the algorithm used by astropy's
    fast sigma clipping; average cost O(n).
    """
    lo = 0
    hi = n - 1
    while lo < hi:
        x = a[k]
        i = lo
        j = hi
        while True:
            while a[i] < x:
                i += 1
            while x < a[j]:
                j -= 1
            if i <= j:
                t = a[i]
                a[i] = a[j]
                a[j] = t
                i += 1
                j -= 1
            if i > j:
                break
        if j < k:
            lo = i
        if k < i:
            hi = j
    return a[k]


def median_inplace(a, n):
    """Median of ``a[0:n]`` (mean of the two central values for even ``n``); NaN if empty."""
    if n <= 0:
        return math.nan
    if n % 2 == 1:
        return kth_smallest(a, n, (n - 1) // 2)
    upper = kth_smallest(a, n, n // 2)
    lower = kth_smallest(a, n, n // 2 - 1)
    return 0.5 * (lower + upper)


def round_f32(x, as_f32):
    """``x`` rounded to float32 (returned as float64) when ``as_f32``, else ``x``."""
    if as_f32:
        return np.float64(np.float32(x))
    return x


def median_typed(a, n, as_f32):
    """Median as NumPy computes it for the input dtype.

    For float32 data NumPy averages the two central values in float32: ``f32(a + b) / 2``.
    """
    if n <= 0:
        return math.nan
    if n % 2 == 1:
        return kth_smallest(a, n, (n - 1) // 2)
    upper = kth_smallest(a, n, n // 2)
    lower = kth_smallest(a, n, n // 2 - 1)
    return 0.5 * round_f32(lower + upper, as_f32)


def mean_std(a, n, ddof):
    """Two-pass float64 mean and standard deviation of ``a[0:n]``; NaNs when ``n - ddof <= 0``."""
    if n <= 0:
        return math.nan, math.nan
    s = 0.0
    for i in range(n):
        s += a[i]
    mean = s / n
    ss = 0.0
    for i in range(n):
        d = a[i] - mean
        ss += d * d
    if n - ddof <= 0:
        return mean, math.nan
    return mean, math.sqrt(ss / (n - ddof))


SELECT_FUNCTIONS = (kth_smallest, median_inplace, round_f32, median_typed, mean_std)
