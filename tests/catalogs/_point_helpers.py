"""Small synthetic totals for the point-catalog tests: a star field drawn with the library
PSF on a WFC3/UVIS-like frame, its prepared image, and a one-chip exposure file (the PSF's
D001DATA) whose WCS equals the product's."""

from __future__ import annotations

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from hapgpu.catalogs._parameters import catalog_parameters
from hapgpu.catalogs._prepare import prepare_image
from hapgpu.catalogs._product import CatalogProduct
from hapgpu.catalogs._psf import PSF_LIBRARY, load_library_psf

PSCALE = 0.04  # arcsec / pixel (hapgpu's UVIS products)


def product_wcs(shape) -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [shape[1] / 2 + 0.5, shape[0] / 2 + 0.5]
    wcs.wcs.cd = np.array([[-PSCALE, 0.0], [0.0, PSCALE]]) / 3600.0
    wcs.pixel_shape = (shape[1], shape[0])
    return wcs


def star_field(shape=(160, 150), n_stars=25, seed=3, sky=0.5, noise=0.05, flux=(40.0, 400.0)):
    """(data float32, x, y) of stars drawn with the central 27 x 27 pixels of the F814W
    library PSF (the F555W one is too sharp for DAOFIND's sharpness limit) plus sky and
    noise."""
    rng = np.random.default_rng(seed)
    psf = load_library_psf(PSF_LIBRARY / "wfc3" / "uvis" / "wfc3_uvis_f814w.fits")
    c, half = psf.shape[0] // 2, 13
    psf = psf[c - half:c + half + 1, c - half:c + half + 1]
    data = np.full(shape, sky, dtype=np.float64)
    margin = 26 + half
    xs = rng.integers(margin, shape[1] - margin, n_stars)
    ys = rng.integers(margin, shape[0] - margin, n_stars)
    for x, y, f in zip(xs, ys, rng.uniform(*flux, n_stars)):
        data[y - half:y + half + 1, x - half:x + half + 1] += f * psf
    data += rng.normal(0.0, noise, shape)
    return data.astype(np.float32), xs, ys


def write_exposure(path, shape, *, photmode="WFC3 UVIS1 F555W MJD#58000.0000", dq_holes=()):
    """One-chip FLT-like file with the product's WCS (in electrons, EXPTIME 100)."""
    primary = fits.PrimaryHDU()
    primary.header["INSTRUME"] = "WFC3"
    primary.header["DETECTOR"] = "UVIS"
    primary.header["EXPTIME"] = 100.0
    primary.header["PHOTMODE"] = photmode
    sci = fits.ImageHDU(np.zeros(shape, np.float32), header=product_wcs(shape).to_header(),
                        name="SCI", ver=1)
    sci.header["BUNIT"] = "ELECTRONS"
    sci.header["PHOTMODE"] = photmode
    dq = np.zeros(shape, np.int16)
    for y, x in dq_holes:
        dq[y, x] = 4
    hdul = fits.HDUList([primary, sci, fits.ImageHDU(dq, name="DQ", ver=1)])
    hdul.writeto(path)
    return path


def make_total(tmp_path, *, data=None, exposures=True, algorithm="psf", photmode=None,
               backend="cpu", block_size=None):
    """A prepared total detection image of ``star_field`` (or ``data``)."""
    if data is None:
        data, _, _ = star_field()
    shape = data.shape
    wcs = product_wcs(shape)
    primary = fits.Header()
    primary["INSTRUME"] = "WFC3"
    primary["DETECTOR"] = "UVIS"
    primary["EXPTIME"] = 100.0
    primary["NDRIZIM"] = 1
    primary["ATODGNA"] = 1.5
    primary["READNSEA"] = 3.0
    primary["FILTER"] = "F555W"
    sci = wcs.to_header()
    sci["PHOTFLAM"] = 1.9e-19
    sci["PHOTPLAM"] = 5308.0
    files = []
    if exposures:
        kwargs = {} if photmode is None else {"photmode": photmode}
        files = [write_exposure(tmp_path / "i0000001q_flc.fits", shape, **kwargs)]
    product = CatalogProduct(
        data=data, wht=np.ones(shape, np.float32), mask=np.ones(shape, np.int32), wcs=wcs,
        primary_header=primary, sci_header=sci,
        filename="hst_12345_01_wfc3_uvis_total_ib1f01_drc.fits", kind="total",
        exposures=files)
    overrides = {"starfinder_algorithm": algorithm}
    if block_size is not None:
        overrides["block_size"] = list(block_size)
    params = catalog_parameters("WFC3", "UVIS", overrides={"catalog generation": overrides})
    return prepare_image(product, params, backend=backend)
