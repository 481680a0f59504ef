"""Rendering kernels for synthetic exposures: arrays in, arrays out (CPU, Numba).

Every kernel adds into an image in place, one small stamp per source, so the cost scales with
the number of sources times the stamp area, never with the image size. Sources are processed
serially in input order, which keeps the floating-point sums (and so the output bytes)
independent of the machine. Pixel ``[j, i]`` has its centre at ``x = i``, ``y = j`` (0-based).
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = [
    "add_point_sources",
    "add_gaussians",
    "deposit_tracks",
    "bleed_columns",
    "read_out",
    "good_pixel_statistics",
]

_SQRT_HALF = math.sqrt(0.5)


@numba.njit(cache=True, nogil=True)
def _pixel_fractions(centre, sigma, start, out):
    """Fraction of a 1-D Gaussian falling in each pixel ``start + k`` (exact, via erf)."""
    scale = _SQRT_HALF / sigma
    lower = math.erf((start - 0.5 - centre) * scale)
    for k in range(out.shape[0]):
        upper = math.erf((start + k + 0.5 - centre) * scale)
        out[k] = 0.5 * (upper - lower)
        lower = upper


@numba.njit(cache=True, nogil=True)
def add_point_sources(image, x, y, flux, sigmas, weights, half_width):
    """Add circular Gaussian-mixture point sources, integrated exactly over each pixel.

    Parameters
    ----------
    image : numpy.ndarray
        float64 array (ny, nx), updated in place.
    x, y : numpy.ndarray
        float64 (n,) source centres, 0-based pixel coordinates.
    flux : numpy.ndarray
        float64 (n,) total counts of each source (before truncation of the stamp).
    sigmas, weights : numpy.ndarray
        float64 (k,) standard deviation (pixels) and flux fraction of each PSF component.
    half_width : int
        Stamp half-size in pixels; the stamp is centred on the pixel holding the source.
    """
    ny, nx = image.shape
    size = 2 * half_width + 1
    n_comp = sigmas.shape[0]
    fx = np.empty((n_comp, size))
    fy = np.empty((n_comp, size))
    for s in range(x.shape[0]):
        ix = int(math.floor(x[s] + 0.5)) - half_width
        iy = int(math.floor(y[s] + 0.5)) - half_width
        if ix >= nx or iy >= ny or ix + size <= 0 or iy + size <= 0:
            continue
        for c in range(n_comp):
            _pixel_fractions(x[s], sigmas[c], ix, fx[c])
            _pixel_fractions(y[s], sigmas[c], iy, fy[c])
        for b in range(size):
            j = iy + b
            if j < 0 or j >= ny:
                continue
            for a in range(size):
                i = ix + a
                if i < 0 or i >= nx:
                    continue
                value = 0.0
                for c in range(n_comp):
                    value += weights[c] * fx[c, a] * fy[c, b]
                image[j, i] += flux[s] * value


@numba.njit(cache=True, nogil=True)
def add_gaussians(image, x, y, flux, cxx, cxy, cyy, half_width):
    """Add elliptical Gaussians sampled at pixel centres.

    Parameters
    ----------
    image : numpy.ndarray
        float64 array (ny, nx), updated in place.
    x, y : numpy.ndarray
        float64 (n,) centres, 0-based pixel coordinates.
    flux : numpy.ndarray
        float64 (n,) integral of each Gaussian.
    cxx, cxy, cyy : numpy.ndarray
        float64 (n,) covariance matrix of each Gaussian, pixels squared. Add 1/12 to the
        diagonal beforehand to approximate integration over the pixel.
    half_width : numpy.ndarray
        int64 (n,) stamp half-size of each Gaussian, pixels.
    """
    ny, nx = image.shape
    for s in range(x.shape[0]):
        det = cxx[s] * cyy[s] - cxy[s] * cxy[s]
        if det <= 0.0:
            continue
        ixx = cyy[s] / det
        ixy = -cxy[s] / det
        iyy = cxx[s] / det
        norm = flux[s] / (2.0 * math.pi * math.sqrt(det))
        hw = half_width[s]
        cx = int(math.floor(x[s] + 0.5))
        cy = int(math.floor(y[s] + 0.5))
        j0, j1 = max(cy - hw, 0), min(cy + hw + 1, ny)
        i0, i1 = max(cx - hw, 0), min(cx + hw + 1, nx)
        for j in range(j0, j1):
            dy = j - y[s]
            for i in range(i0, i1):
                dx = i - x[s]
                q = ixx * dx * dx + 2.0 * ixy * dx * dy + iyy * dy * dy
                if q < 60.0:
                    image[j, i] += norm * math.exp(-0.5 * q)


@numba.njit(cache=True, nogil=True)
def deposit_tracks(deposit, x0, y0, x1, y1, charge, step):
    """Deposit charge uniformly along straight tracks, shared bilinearly between pixels.

    Parameters
    ----------
    deposit : numpy.ndarray
        float64 array (ny, nx), updated in place.
    x0, y0, x1, y1 : numpy.ndarray
        float64 (n,) start and end of each track, 0-based pixel coordinates.
    charge : numpy.ndarray
        float64 (n,) total charge of each track.
    step : float
        Sampling step along a track, pixels.
    """
    ny, nx = deposit.shape
    for s in range(x0.shape[0]):
        length = math.hypot(x1[s] - x0[s], y1[s] - y0[s])
        n_step = max(int(math.ceil(length / step)), 1)
        share = charge[s] / n_step
        for k in range(n_step):
            t = (k + 0.5) / n_step
            px = x0[s] + t * (x1[s] - x0[s])
            py = y0[s] + t * (y1[s] - y0[s])
            i = int(math.floor(px))
            j = int(math.floor(py))
            fx = px - i
            fy = py - j
            for b in range(2):
                jj = j + b
                if jj < 0 or jj >= ny:
                    continue
                wy = fy if b == 1 else 1.0 - fy
                for a in range(2):
                    ii = i + a
                    if ii < 0 or ii >= nx:
                        continue
                    wx = fx if a == 1 else 1.0 - fx
                    deposit[jj, ii] += share * wx * wy


@numba.njit(cache=True, nogil=True)
def bleed_columns(image, full_well):
    """Spill charge above full well along columns, half up and half down; mark saturation.

    Charge that reaches the edge of the array is lost, as it is off a real detector.

    Parameters
    ----------
    image : numpy.ndarray
        float64 array (ny, nx) of collected charge, updated in place.
    full_well : float
        Charge a pixel can hold.

    Returns
    -------
    numpy.ndarray
        bool (ny, nx): True where a pixel ended full.
    """
    ny, nx = image.shape
    full = np.zeros((ny, nx), dtype=np.bool_)
    excess = np.empty(ny)
    for i in range(nx):
        any_full = False
        for j in range(ny):
            extra = image[j, i] - full_well
            if extra > 0.0:
                excess[j] = extra
                image[j, i] = full_well
                any_full = True
            else:
                excess[j] = 0.0
        if not any_full:
            continue
        carry = 0.0
        for j in range(ny):  # upward half
            carry += 0.5 * excess[j]
            room = full_well - image[j, i]
            moved = min(room, carry)
            image[j, i] += moved
            carry -= moved
        carry = 0.0
        for j in range(ny - 1, -1, -1):  # downward half
            carry += 0.5 * excess[j]
            room = full_well - image[j, i]
            moved = min(room, carry)
            image[j, i] += moved
            carry -= moved
        for j in range(ny):
            full[j, i] = image[j, i] >= full_well
    return full


@numba.njit(cache=True, nogil=True)
def read_out(collected, noise, read_noise, dark, inv_exptime, sci, err):
    """Read out collected charge: add read noise, subtract the dark, compute the error.

    Parameters
    ----------
    collected : numpy.ndarray
        float64 (ny, nx) electrons collected (after saturation).
    noise : numpy.ndarray
        float32 (ny, nx) standard normal draws, or a (1, 1) array of zero for no read noise.
    read_noise, dark : float
        Read noise (electrons rms) and mean dark charge (electrons) of the exposure.
    inv_exptime : float
        1 for data in electrons, 1/exptime for electrons per second.
    sci, err : numpy.ndarray
        float32 (ny, nx) outputs.
    """
    ny, nx = collected.shape
    noisy = noise.shape[0] == ny
    floor = dark + read_noise * read_noise
    for j in range(ny):
        for i in range(nx):
            value = collected[j, i] - dark
            if noisy:
                value += read_noise * noise[j, i]
            sci[j, i] = value * inv_exptime
            err[j, i] = math.sqrt(max(value, 0.0) + floor) * inv_exptime


@numba.njit(cache=True, nogil=True)
def good_pixel_statistics(sci, err, dq, bad_bits):
    """Count, min, max and mean of good pixels and of their signal-to-noise ratio.

    Returns
    -------
    tuple
        (n_good, min, max, mean, snr_min, snr_max, snr_mean); zeros when no pixel is good.
    """
    n = 0
    lo, hi, total = np.inf, -np.inf, 0.0
    snr_lo, snr_hi, snr_total = np.inf, -np.inf, 0.0
    ny, nx = sci.shape
    for j in range(ny):
        for i in range(nx):
            if dq[j, i] & bad_bits:
                continue
            value = sci[j, i]
            snr = value / err[j, i] if err[j, i] > 0 else 0.0
            n += 1
            total += value
            snr_total += snr
            lo, hi = min(lo, value), max(hi, value)
            snr_lo, snr_hi = min(snr_lo, snr), max(snr_hi, snr)
    if n == 0:
        return 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    return n, lo, hi, total / n, snr_lo, snr_hi, snr_total / n
