"""Shared fixtures: real HST headers from the project's shared data and synthetic frames."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from hapgpu.backend import cuda_available

REPO = Path(__file__).resolve().parents[1]
SHARED_HST = REPO.parent / "shared" / "data" / "hst"


def pytest_collection_modifyitems(config, items):
    if cuda_available():
        return
    skip_gpu = pytest.mark.skip(reason="no CUDA device with CuPy on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


def shared_file(name: str) -> Path:
    path = SHARED_HST / name
    if not path.exists():
        pytest.skip(f"real HST sample {name} not found beside the repository ({SHARED_HST})")
    return path


def load_chip_wcs(name: str, ext=("SCI", 1)):
    """stwcs HSTWCS of one chip of a real HST file (SIP, NPOL and D2IM as present)."""
    from astropy.io import fits
    from stwcs.wcsutil import HSTWCS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(shared_file(name)) as hdul:
            return HSTWCS(hdul, ext=ext)


#: (file, extension) of the real chips used by the oracle tests.
REAL_CHIPS = {
    "uvis1": ("sample_svm_flc.fits", ("SCI", 1)),
    "uvis2": ("sample_svm_flc.fits", ("SCI", 2)),
    "ir": ("sample_svm_flt.fits", ("SCI", 1)),
    "hrc": ("j8bt06nyq_sip_flt.fits", ("SCI", 1)),
}


def output_frame(in_wcs, in_shape, *, rot_deg=0.0, scale_ratio=1.0, coverage=1.0, shift=(0.0, 0.0)):
    """An undistorted TAN frame around the input footprint.

    Parameters
    ----------
    rot_deg : float
        Rotation of the output axes relative to north-up.
    scale_ratio : float
        Output pixel scale / input pixel scale (drizzlepac's pix_ratio).
    coverage : float
        Output size as a fraction of the input footprint (< 1 gives partial overlap).
    shift : tuple
        Offset of the frame centre in output pixels (partial overlap).

    Returns
    -------
    (astropy.wcs.WCS, (ny, nx), pix_ratio)
    """
    from astropy.wcs import WCS

    ny, nx = in_shape
    corners_x = np.array([0.5, nx + 0.5, nx + 0.5, 0.5])
    corners_y = np.array([0.5, 0.5, ny + 0.5, ny + 0.5])
    ra, dec = in_wcs.all_pix2world(corners_x, corners_y, 1)
    cra, cdec = in_wcs.all_pix2world([(nx + 1) / 2.0], [(ny + 1) / 2.0], 1)
    in_scale = np.sqrt(in_wcs.wcs.cd[0, 0] ** 2 + in_wcs.wcs.cd[1, 0] ** 2) if in_wcs.wcs.has_cd() \
        else abs(in_wcs.wcs.cdelt[0])
    out_scale = in_scale * scale_ratio
    th = np.deg2rad(rot_deg)
    cd = out_scale * np.array([[-np.cos(th), np.sin(th)], [np.sin(th), np.cos(th)]])
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [cra[0], cdec[0]]
    w.wcs.cd = cd
    w.wcs.crpix = [0.0, 0.0]
    px, py = w.wcs_world2pix(ra, dec, 1)
    extent = max(px.max() - px.min(), py.max() - py.min()) * coverage
    onx = int(np.ceil(extent)) + 4
    ony = int(np.ceil(extent * 0.9)) + 4
    w.wcs.crpix = [onx / 2.0 + 0.5 + shift[0], ony / 2.0 + 0.5 + shift[1]]
    w.pixel_shape = (onx, ony)
    return w, (ony, onx), scale_ratio


def synthetic_scene(shape, seed=0, n_stars=25, mask_fraction=0.02):
    """Float32 image with sky, noise and Gaussian stars, and a float32 weight map with holes."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    img = rng.normal(20.0, 2.0, size=shape)
    for _ in range(n_stars):
        x0, y0 = rng.uniform(0, nx), rng.uniform(0, ny)
        amp = 10 ** rng.uniform(1.5, 3.5)
        sig = rng.uniform(0.8, 2.0)
        img += amp * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * sig**2))
    wht = rng.uniform(0.5, 1.5, size=shape).astype(np.float32)
    wht[rng.random(shape) < mask_fraction] = 0.0
    return img.astype(np.float32), wht


@pytest.fixture(params=sorted(REAL_CHIPS))
def real_chip(request):
    name, ext = REAL_CHIPS[request.param]
    return request.param, load_chip_wcs(name, ext)
