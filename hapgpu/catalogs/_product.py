"""Drizzled products as the catalog step sees them: SCI, WHT, the footprint count mask, the WCS
and the header facts the catalogs are annotated with.

A :class:`CatalogProduct` is either read from a DRZ/DRC file (:func:`read_catalog_product`) or
built in memory by a pipeline that has just drizzled it. The input exposures (for the saturation
flag) default to the ``D###DATA`` keywords AstroDrizzle writes; the single-exposure products (for
the exposure-count flag) default to drizzlepac's rule, the files
``<product name without _drc.fits>*_drc.fits`` (or ``_drz``) beside the product, other than
the product itself.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from ..errors import InvalidInputError, WCSError
from ..kernels.detection import morphology as kmorph

__all__ = ["CatalogProduct", "read_catalog_product", "footprint_mask", "header_keywords"]

_DATA_KEY = re.compile(r"^D(\d{3})DATA$")


def _max_keyword(header: fits.Header, root: str, default: float = 1.0) -> float:
    values = [v for k, v in header.items() if k.startswith(root) and isinstance(v, (int, float))]
    return max(values, default=default)


def _first(headers, key, default=None):
    for header in headers:
        if key in header:
            return header[key]
    return default


def header_keywords(primary: fits.Header, sci: fits.Header, kind: str) -> dict:
    """The header facts the HAP catalogs read (drizzlepac ``CatalogImage._get_header_data``).

    Parameters
    ----------
    primary, sci : astropy.io.fits.Header
        PRIMARY and SCI headers of the drizzled product.
    kind : {"total", "filter"}

    Returns
    -------
    dict
        Keys ``proposal_id, image_file_name, target_name, date_obs, time_obs, instrument,
        detector, target_ra, target_dec, expo_start, texpo_time, exptime, ndrizim, numexp,
        ccd_gain, readnse, atodgn, gain_keys, aperture_pa, filter1, filter2, aperture_ra,
        aperture_dec, wcs_name, wcs_type, orientation, photflam, photplam``; a keyword missing
        from the file gives None (``numexp`` falls back to ``NDRIZIM``, ``texpo_time`` to
        ``EXPTIME``). The catalogs' WCS keywords come from
        :func:`hapgpu.catalogs._output.wcs_header_keywords` (stwcs ``wcs2header``).
    """
    hdrs = (primary, sci)
    instrument = str(primary.get("INSTRUME", "")).upper()
    detector = str(primary.get("DETECTOR", "")).upper()
    kw = {
        "proposal_id": primary.get("PROPOSID"),
        "image_file_name": str(primary.get("FILENAME", "")).upper(),
        "target_name": str(primary.get("TARGNAME", "")).upper(),
        "date_obs": primary.get("DATE-OBS"),
        "time_obs": primary.get("TIME-OBS"),
        "instrument": instrument,
        "detector": detector,
        "target_ra": primary.get("RA_TARG"),
        "target_dec": primary.get("DEC_TARG"),
        "expo_start": primary.get("EXPSTART"),
        "exptime": primary.get("EXPTIME"),
        "ndrizim": primary.get("NDRIZIM"),
        "aperture_pa": primary.get("PA_V3"),
    }
    kw["texpo_time"] = primary.get("TEXPTIME", kw["exptime"])
    kw["numexp"] = primary.get("NUMEXP", kw["ndrizim"])
    if detector != "SBC":
        if instrument == "WFPC2":
            gain = _max_keyword(primary, "ATODGAIN")
            kw.update(ccd_gain=gain, atodgn=gain, readnse=5.0,
                      gain_keys=[v for k, v in primary.items() if k.startswith("ATODGAI")])
        else:
            kw.update(ccd_gain=primary.get("CCDGAIN"), readnse=_max_keyword(primary, "READNSE"),
                      atodgn=_max_keyword(primary, "ATODGN"),
                      gain_keys=[v for k, v in primary.items() if k.startswith("ATODGN")])
    if kind == "total":
        kw["filter1"], kw["filter2"] = primary.get("FILTER"), None
    elif instrument == "ACS":
        kw["filter1"], kw["filter2"] = primary.get("FILTER1"), primary.get("FILTER2")
    elif instrument == "WFPC2":
        kw["filter1"], kw["filter2"] = primary.get("FILTNAM1"), primary.get("FILTNAM2")
    else:
        kw["filter1"], kw["filter2"] = primary.get("FILTER"), ""
    if instrument == "WFPC2":
        kw["aperture_ra"], kw["aperture_dec"] = kw["target_ra"], kw["target_dec"]
    else:
        kw["aperture_ra"], kw["aperture_dec"] = sci.get("RA_APER"), sci.get("DEC_APER")
    kw["wcs_name"] = sci.get("WCSNAME")
    kw["wcs_type"] = sci.get("WCSTYPE")
    kw["orientation"] = sci.get("ORIENTAT")
    kw["photflam"] = _first(hdrs, "PHOTFLAM")
    kw["photplam"] = _first(hdrs, "PHOTPLAM")
    return kw


@dataclass
class CatalogProduct:
    """A drizzled product (total or filter) ready for the catalog step.

    Attributes
    ----------
    data : numpy.ndarray
        SCI, shape (ny, nx), float32, electron/s.
    wht : numpy.ndarray
        WHT, shape (ny, nx), float32.
    mask : numpy.ndarray
        Footprint count mask: number of input chips covering each pixel (drizzlepac's
        ``product.mask``), shape (ny, nx), int16.
    wcs : astropy.wcs.WCS
        Celestial WCS of SCI (pixel origin 0 in every use here).
    primary_header, sci_header : astropy.io.fits.Header
    filename : str
        Product file name (no directory), e.g. ``hst_..._f555w_..._drc.fits``.
    kind : {"total", "filter"}
    path : pathlib.Path or None
        Where the product was read from.
    exposures : list of pathlib.Path
        Input FLT/FLC files (saturation flag).
    single_products : list of pathlib.Path
        Single-exposure drizzled products of this filter (exposure-count flag).
    keywords : dict
        :func:`header_keywords` of the product.
    """

    data: np.ndarray
    wht: np.ndarray
    mask: np.ndarray
    wcs: WCS
    primary_header: fits.Header
    sci_header: fits.Header
    filename: str
    kind: str = "filter"
    path: Path | None = None
    exposures: list = field(default_factory=list)
    single_products: list = field(default_factory=list)
    keywords: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in ("total", "filter"):
            raise InvalidInputError(f"{self.filename}: kind must be 'total' or 'filter', not {self.kind!r}")
        shape = np.shape(self.data)
        if len(shape) != 2:
            raise InvalidInputError(f"{self.filename}: SCI must be 2-D, got shape {shape}")
        for name in ("wht", "mask"):
            if np.shape(getattr(self, name)) != shape:
                raise InvalidInputError(
                    f"{self.filename}: {name.upper()} has shape {np.shape(getattr(self, name))}, "
                    f"SCI has {shape}")
        if not self.keywords:
            self.keywords = header_keywords(self.primary_header, self.sci_header, self.kind)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(np.shape(self.data))

    @property
    def instrument(self) -> str:
        return self.keywords["instrument"]

    @property
    def detector(self) -> str:
        return self.keywords["detector"]

    @property
    def pscale(self) -> float:
        """Pixel scale, arcsec / pixel: sqrt(|det CD|) * 3600."""
        cd = self.wcs.pixel_scale_matrix
        return float(np.sqrt(abs(np.linalg.det(cd))) * 3600.0)

    @property
    def filter_name(self) -> str:
        """The product's filter token, lower case (``f555w``; ``total`` for totals)."""
        tokens = self.filename.split("_")
        if len(tokens) >= 6:
            return tokens[5].lower()
        return str(self.keywords.get("filter1") or "").lower()


def _sci_wcs(hdul, path) -> WCS:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(hdul["SCI"].header, hdul)
    except Exception as exc:
        raise WCSError(f"{path}[SCI]: cannot build the WCS: {exc}") from exc
    if not wcs.has_celestial:
        raise WCSError(f"{path}[SCI]: the header has no celestial WCS")
    return wcs.celestial


def footprint_mask(exposures, wcs: WCS, shape) -> np.ndarray:
    """Count of input chips covering each product pixel (HAP footprint mask, spec §1.11).

    The mask drizzlepac keeps as ``product.mask``: see
    :func:`hapgpu.svm._footprint.footprint_mask`, whose first result this is.

    Parameters
    ----------
    exposures : list of path-like
        FLT/FLC files.
    wcs : astropy.wcs.WCS
        Product WCS.
    shape : tuple of int
        Product shape (ny, nx).

    Returns
    -------
    numpy.ndarray
        int16, shape ``shape``.
    """
    from ..svm._footprint import footprint_mask as svm_footprint_mask

    return svm_footprint_mask(exposures, wcs, shape)[0]


def _input_exposures(headers, directory: Path) -> list[Path]:
    names = []
    for header in headers:
        for key in header:
            if _DATA_KEY.match(key):
                name = str(header[key]).split("[")[0].strip()
                if name and name not in names:
                    names.append(name)
    return [directory / n for n in names]


def _single_products(path: Path) -> list[Path]:
    name = path.name
    suffix = "drc" if name.endswith("_drc.fits") else "drz"
    root = name[: -len(f"_{suffix}.fits")]
    return sorted(p for p in path.parent.glob(f"{root}*_{suffix}.fits") if p.name != name)


def _read_float32(hdu) -> np.ndarray:
    """The image of ``hdu`` as native float32 (``numpy.asarray(hdu.data, dtype=float32)``).

    An unscaled big-endian float32 image (what drizzled products hold) on a little-endian
    host is byte-swapped by a parallel compiled pass
    (:func:`hapgpu.kernels.detection.morphology.be32_to_native`): the same bits, rows in
    parallel. When its data are still on disk in an uncompressed file, they are read with one
    ``readinto`` into the result and swapped in place: faulting in a memory map page by page
    took ~0.27 s for a 5774 x 5869 image, the read ~0.04 s (same bits; tests compare with
    astropy). Anything else goes through NumPy.
    """
    header = hdu.header
    simple = (np.little_endian and header.get("NAXIS") == 2 and header.get("BITPIX") == -32
              and header.get("BSCALE", 1) == 1 and header.get("BZERO", 0) == 0)
    if simple and not hdu._data_loaded:
        out = _read_unloaded(hdu, (int(header["NAXIS2"]), int(header["NAXIS1"])))
        if out is not None:
            words = out.view(np.uint32)
            kmorph.be32_to_native(words, words)
            return out
    data = hdu.data
    if (simple and data is not None and data.dtype == np.dtype(">f4") and data.flags.c_contiguous):
        out = np.empty(data.shape, dtype=np.float32)
        kmorph.be32_to_native(data.view(np.uint32), out.view(np.uint32))
        return out
    return np.asarray(data, dtype=np.float32)


def _read_unloaded(hdu, shape) -> np.ndarray | None:
    """The raw (file-order) bytes of ``hdu``'s data read into a float32 array of ``shape``, or
    None when they cannot be read directly (not from a plain file, or short)."""
    info = hdu.fileinfo()
    handle = None if info is None else info.get("file")
    name = getattr(handle, "name", None)
    if name is None or getattr(handle, "compression", None) is not None or not Path(name).is_file():
        return None
    out = np.empty(shape, dtype=np.float32)
    try:
        with open(name, "rb", buffering=0) as f:
            f.seek(info["datLoc"])
            n = f.readinto(memoryview(out).cast("B"))
    except OSError:
        return None
    return out if n == out.nbytes else None


def read_catalog_product(path, *, kind=None, mask=None, exposures=None,
                         single_products=None, sci=None, wht=None) -> CatalogProduct:
    """Read a drizzled product for the catalog step.

    Parameters
    ----------
    path : path-like
        DRZ/DRC file with SCI and WHT extensions.
    kind : {"total", "filter"}, optional
        Default: ``"total"`` if the file name contains ``total``, else ``"filter"``.
    mask : array_like, optional
        Footprint count mask; default: :func:`footprint_mask` of the input exposures, or
        ``WHT > 0`` when none of them can be found.
    exposures : list of path-like, optional
        Default: the ``D###DATA`` keywords (PRIMARY, else SCI), looked up beside the product.
    single_products : list of path-like, optional
        Default: drizzlepac's glob rule (see the module docstring).
    sci, wht : numpy.ndarray, optional
        The product's SCI and WHT arrays as written into the file, ``(ny, nx)`` float32 (a
        pipeline that has just drizzled the product holds them): both or neither. Given, the
        file's pixels are not read (its headers are), and the product is the same as read.

    Returns
    -------
    CatalogProduct

    Raises
    ------
    InvalidInputError
        Missing file, unreadable FITS, missing SCI/WHT, or shapes that disagree.
    WCSError
        No usable celestial WCS in SCI.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such product file")
    if (sci is None) != (wht is None):
        raise InvalidInputError(f"{path}: give both the SCI and the WHT array, or neither")
    in_memory = sci is not None
    try:
        with fits.open(path) as hdul:
            names = {h.name for h in hdul}
            missing = [n for n in ("SCI", "WHT") if n not in names]
            if missing:
                raise InvalidInputError(f"{path}: not a drizzled product: no {' or '.join(missing)} extension")
            primary = hdul[0].header.copy()
            sci_header = hdul["SCI"].header.copy()
            if in_memory:
                shape = tuple(sci_header.get(f"NAXIS{k}", 0) for k in (2, 1))
                data = np.asarray(sci, dtype=np.float32)
                wht = np.asarray(wht, dtype=np.float32)
                if data.shape != shape or wht.shape != shape:
                    raise InvalidInputError(f"{path}: SCI/WHT arrays of shape {data.shape}/{wht.shape} "
                                            f"given for a product of shape {shape}")
            else:
                data = _read_float32(hdul["SCI"])
                wht = _read_float32(hdul["WHT"])
            wcs = _sci_wcs(hdul, path)
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the product: {exc}") from exc
    if data.ndim != 2:
        raise InvalidInputError(f"{path}: SCI is not a 2-D image")
    kind = kind or ("total" if "total" in path.name.lower() else "filter")
    if exposures is None:
        exposures = [p for p in _input_exposures((primary, sci_header), path.parent) if p.is_file()]
    exposures = [Path(p) for p in exposures]
    if single_products is None:
        single_products = _single_products(path) if kind == "filter" else []
    if mask is None:
        mask = footprint_mask(exposures, wcs, data.shape) if exposures else (wht > 0).astype(np.int16)
    return CatalogProduct(data=data, wht=wht, mask=np.asarray(mask), wcs=wcs,
                          primary_header=primary, sci_header=sci_header, filename=path.name,
                          kind=kind, path=path, exposures=exposures,
                          single_products=[Path(p) for p in single_products])
