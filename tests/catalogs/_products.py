"""SVM-like drizzled products from simulated visits, for the catalog tests and benchmark.

:func:`build_product_set` simulates a visit (:func:`hapgpu.simulate.simulate_visit`) and
drizzles it with :func:`hapgpu.astrodrizzle` the way drizzlepac's SVM pipeline does
(../shared/docs/hap-pipeline.md §1.5-§1.12): every exposure is copied to its SVM name
(``hst_<propid>_<obset>_<instr>_<det>_<filter>_<ipppssoo>_fl[ct].fits``), one common
north-up frame (the "metawcs") covers every chip, and in SVM order

1. each filter product (``..._<filter>_<ipppss>_dr[cz].fits``, the filter's n-exposure
   parameter set, so ``driz_cr`` writes its cosmic-ray flags into the SVM-named inputs),
2. each single-exposure product (``..._<filter>_<ipppssoo>_dr[cz].fits``, SVM's
   ``single_basic`` parameters: no sky, no CR rejection, ``final_bits=65535``),
3. the total product (``..._total_<ipppss>_dr[cz].fits``, ``total_basic``, every exposure of
   the filters with more than one exposure),

all on that frame. The products then get the SVM-only keywords the catalog code reads
(§1.11/§1.12: ``FILENAME``, ``ROOTNAME``, ``NUMEXP``, ``HAPLEVEL``, the footprint keywords
``NPIXFRAC``... ``MEDWHT``, ``FILTER = detection`` on the total; ``WCSTYPE``, ``RA_APER``,
``DEC_APER`` on SCI), and every filter and total product its footprint count mask (what
drizzlepac keeps as ``product.mask``: the number of exposure chips covering each frame pixel).
"""

from __future__ import annotations

import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

__all__ = ["SPECS", "ProductSet", "ProductSpec", "build_product_set", "footprint_count_mask",
           "metawcs_frame"]

#: Post-2012 start (WFC3/UVIS products then use SVM's ``*_post_*`` parameter sets, which are
#: the ones hapgpu ships); 2020-01-01.
POST_2012_MJD = 58849.0


@dataclass(frozen=True)
class ProductSpec:
    """What to simulate: one instrument/detector, its filters, exposures per filter, size.

    Attributes
    ----------
    name : str
        Short label (also the cache key).
    instrument : str
        :func:`hapgpu.simulate.simulate_visit` instrument key (``"wfc3-uvis"``...).
    filters : tuple of str
        Filters, in visit (and so ``fdp_list``) order.
    n_per_filter : int
        Exposures per filter (>= 2: the filter parameter sets shipped are the n>=2 ones).
    shape : (int, int) or None
        Subarray read out of each chip; None for full chips.
    seed : int
        Simulation seed.
    crowded : bool
        Add the simulator's dense star cluster.
    star_density, galaxy_density : float or None
        Sources per square arcminute (None: the simulator's defaults).
    """

    name: str
    instrument: str
    filters: tuple[str, ...]
    n_per_filter: int = 2
    shape: tuple[int, int] | None = None
    seed: int = 1
    crowded: bool = False
    star_density: float | None = None
    galaxy_density: float | None = None


#: The product sets of the end-to-end tests (small subarrays: seconds to build).
SPECS = {
    "uvis": ProductSpec("uvis", "wfc3-uvis", ("F555W", "F814W"), shape=(300, 300), seed=7,
                        star_density=3000.0, galaxy_density=600.0),
    "ir": ProductSpec("ir", "wfc3-ir", ("F110W", "F160W"), shape=(220, 220), seed=8,
                      star_density=2000.0, galaxy_density=600.0),
    # the cpu / cudasim comparison: the CUDA simulator runs every thread in Python
    "tiny": ProductSpec("tiny", "wfc3-ir", ("F160W",), shape=(64, 64), seed=5,
                        star_density=6000.0, galaxy_density=1000.0),
}

# Filter-product parameter set per (instrument key, exposure count): SVM's filter_basic +
# <det>_any_n2 / n6 (hap-pipeline.md §1.7), as shipped in hapgpu.pars.
_FILTER_PARS = {
    "wfc3-uvis": lambda n: "wfc3_uvis_n2" if n <= 5 else "wfc3_uvis_n6",
    "acs-wfc": lambda n: "acs_wfc_n2" if n <= 5 else "acs_wfc_n6",
    "wfc3-ir": lambda n: "wfc3_ir_n2" if n <= 3 else None,
}
# Total-product overrides of total_basic per detector (total_basic_post for UVIS, §1.7 table).
_TOTAL_OVERRIDES = {"wfc3-uvis": {"final_bits": 336}, "acs-wfc": {"final_bits": 336},
                    "wfc3-ir": {"final_bits": 528}}
# SVM single_basic (non-singleton exposure product, §1.7 table) over hapgpu's defaults.
_SINGLE_PARS = {"static": False, "skysub": False, "driz_separate": False, "median": False,
                "blot": False, "driz_cr": False, "final_bits": 65535, "final_fillval": None,
                "resetbits": 0, "final_kernel": "square", "final_pixfrac": 1.0,
                "final_wht_type": "EXP", "final_units": "cps"}


@dataclass
class ProductSet:
    """An SVM visit's drizzled products on one frame.

    Attributes
    ----------
    spec : ProductSpec
    folder : pathlib.Path
        Where the products and the SVM-named inputs are.
    visit : hapgpu.simulate.VisitResult
        The simulated visit (original inputs, truth catalogue).
    total : pathlib.Path
        The total (detection) product.
    filters : tuple of str
        Lower-case filter names, in ``fdp_list`` order.
    filter_products : dict
        ``{filter: path}`` of the filter products.
    exposures : dict
        ``{filter: (SVM-named FLC/FLT path, ...)}``.
    singles : dict
        ``{filter: (single-exposure product path, ...)}``.
    total_mask : numpy.ndarray
        ``(ny, nx)`` int16 footprint count mask of the total (every exposure).
    filter_masks : dict
        ``{filter: (ny, nx) int16 mask}`` of each filter's exposures.
    frame : stwcs.wcsutil.HSTWCS
        The common frame (metawcs).
    """

    spec: ProductSpec
    folder: Path
    visit: object
    total: Path
    filters: tuple[str, ...]
    filter_products: dict
    exposures: dict
    singles: dict
    total_mask: np.ndarray
    filter_masks: dict
    frame: object

    @property
    def sky_catalog(self) -> Path:
        """The simulator's truth catalogue (every source, visit epoch)."""
        return Path(self.visit.sky_catalog)

    def catalog_inputs(self):
        """``(total, [filter, ...])`` for :func:`hapgpu.catalogs.make_hap_catalogs`: each a
        :class:`hapgpu.catalogs.CatalogProduct` read with this set's masks, inputs and
        single-exposure products."""
        from hapgpu.catalogs import read_catalog_product

        total = read_catalog_product(self.total, kind="total", mask=self.total_mask,
                                     exposures=[p for f in self.filters for p in self.exposures[f]],
                                     single_products=[])
        filters = [read_catalog_product(self.filter_products[f], kind="filter",
                                        mask=self.filter_masks[f],
                                        exposures=list(self.exposures[f]),
                                        single_products=list(self.singles[f]))
                   for f in self.filters]
        return total, filters


def _names(primary: fits.Header, det_key: str) -> dict:
    """SVM name parts from an exposure's primary header (hap-pipeline.md §1.5/§1.6)."""
    rootname = primary["ROOTNAME"].strip().lower()
    instrument, detector = det_key.split("-")
    return {"propid": str(primary["PROPOSID"]), "obset": rootname[4:6],
            "base": f"hst_{primary['PROPOSID']}_{rootname[4:6]}_{instrument}_{detector}_",
            "ipppss": rootname[:6], "ipppssoo": rootname[:8], "rootname": rootname}


def _chip_wcs_list(path: Path) -> list:
    """stwcs HSTWCS of every SCI extension of an exposure."""
    from stwcs.wcsutil import HSTWCS

    out = []
    with fits.open(path) as hdul, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for hdu in hdul:
            if hdu.name == "SCI":
                out.append((HSTWCS(hdul, ext=("SCI", hdu.ver)), hdu.data.shape))
    return out


def metawcs_frame(exposures) -> object:
    """The SVM common frame of a set of exposures: AstroDrizzle's default undistorted frame of
    every chip (stwcs ``output_wcs``), turned north up (``final_rot = 0``, as
    ``make_mosaic_wcs(..., rot=0)`` does in hap-pipeline.md §1.10), native pixel scale.

    Returns
    -------
    stwcs.wcsutil.HSTWCS
        With ``pixel_shape`` ``(nx, ny)``.
    """
    from hapgpu.astrodrizzle._frame import custom_frame, default_frame

    chips = [w for path in exposures for w, _ in _chip_wcs_list(path)]
    return custom_frame(default_frame(chips), {"rot": 0.0}).wcs


def _frame_parameters(frame) -> dict:
    """AstroDrizzle custom-WCS parameters that reproduce ``frame`` (as FilterProduct passes
    the metawcs, hap-pipeline.md §1.12)."""
    nx, ny = frame.pixel_shape
    return {"final_wcs": True, "final_rot": 0.0, "final_scale": float(frame.pscale),
            "final_ra": float(frame.wcs.crval[0]), "final_dec": float(frame.wcs.crval[1]),
            "final_crpix1": float(frame.wcs.crpix[0]), "final_crpix2": float(frame.wcs.crpix[1]),
            "final_outnx": int(nx), "final_outny": int(ny)}


def _fill_polygon(px: np.ndarray, py: np.ndarray, shape) -> np.ndarray:
    """Boolean ``shape`` mask of the pixel centres inside the closed polygon ``(px, py)``
    (0-based pixel coordinates; even-odd rule, one scanline per row)."""
    ny, nx = shape
    out = np.zeros(shape, dtype=bool)
    x0, y0 = px, py
    x1, y1 = np.roll(px, -1), np.roll(py, -1)
    rows = np.arange(max(0, int(np.floor(py.min()))), min(ny, int(np.ceil(py.max())) + 1))
    for j in rows:
        crosses = (y0 <= j) != (y1 <= j)
        if not crosses.any():
            continue
        t = (j - y0[crosses]) / (y1[crosses] - y0[crosses])
        xs = np.sort(x0[crosses] + t * (x1[crosses] - x0[crosses]))
        for a, b in zip(xs[0::2], xs[1::2]):
            lo, hi = max(0, int(np.ceil(a))), min(nx - 1, int(np.floor(b)))
            if hi >= lo:
                out[j, lo:hi + 1] = True
    return out


def footprint_count_mask(exposures, frame, *, step: int = 8):
    """Footprint count mask of ``exposures`` on ``frame`` (HAPProduct.generate_footprint_mask,
    hap-pipeline.md §1.11): for every chip, its border pixels mapped through the full
    distorted chip WCS to the sky and into the frame, the polygon filled, and 1 added per chip.

    Parameters
    ----------
    exposures : sequence of path
        FLT/FLC files.
    frame : stwcs.wcsutil.HSTWCS
        The product frame (``pixel_shape`` set).
    step : int
        Spacing of the border pixels used (the distortion is smooth on that scale).

    Returns
    -------
    count : numpy.ndarray
        ``(ny, nx)`` int16, chips covering each pixel.
    exptime : numpy.ndarray
        ``(ny, nx)`` float32, summed primary ``EXPTIME`` of those chips (seconds).
    """
    nx, ny = frame.pixel_shape
    count = np.zeros((ny, nx), dtype=np.int16)
    exptime = np.zeros((ny, nx), dtype=np.float32)
    for path in exposures:
        seconds = float(fits.getval(path, "EXPTIME"))
        for wcs, (cny, cnx) in _chip_wcs_list(path):
            xs = np.unique(np.r_[np.arange(0, cnx, step), cnx - 1]).astype(float)
            ys = np.unique(np.r_[np.arange(0, cny, step), cny - 1]).astype(float)
            # counter-clockwise outline: bottom row, right column, top row, left column
            bx = np.r_[xs, np.full(ys.size, cnx - 1.0), xs[::-1], np.zeros(ys.size)]
            by = np.r_[np.zeros(xs.size), ys, np.full(xs.size, cny - 1.0), ys[::-1]]
            ra, dec = wcs.all_pix2world(bx, by, 0)
            fx, fy = frame.all_world2pix(ra, dec, 0)
            inside = _fill_polygon(np.asarray(fx), np.asarray(fy), (ny, nx))
            count += inside.astype(np.int16)
            exptime += np.float32(seconds) * inside
    return count, exptime


def _wcstype(wcsname: str) -> str:
    """The ``WCSTYPE`` description of a WCSNAME, in the words of AstroDrizzle's products."""
    name = wcsname.strip()
    if "-FIT_" in name:
        catalog = name.rsplit("_", 1)[-1].upper()
        how = "aligned image-by-image to" if "-FIT_IMG_" in name else "relatively aligned to"
        return f"undistorted a posteriori solution {how} {catalog}"
    if "-" in name:
        return f"undistorted a priori solution based on {name.rsplit('-', 1)[-1]}"
    return "undistorted not aligned"


def _finish_product(path: Path, first_input: Path, mask: np.ndarray | None,
                    scaled: np.ndarray | None, *, haplevel: int, total: bool) -> None:
    """Add the SVM-only keywords (hap-pipeline.md §1.11, §1.12) to a drizzled product; the
    aperture pointing (``RA_APER``, ``DEC_APER``) comes from the first input's SCI,1."""
    aperture = fits.getheader(first_input, ("SCI", 1))
    with fits.open(path, mode="update") as hdul:
        primary, sci = hdul[0].header, hdul["SCI", 1].header
        primary["FILENAME"] = path.name
        primary["ROOTNAME"] = path.name.rsplit("_", 1)[0]
        inputs = {primary[k].split("[")[0] for k in primary if k.startswith("D") and
                  k.endswith("DATA") and len(k) == 8}
        primary["NUMEXP"] = (len(inputs), "Number of exposures")
        primary["HAPLEVEL"] = (haplevel, "Classification level of this product")
        if total:
            primary["FILTER"] = "detection"
        if mask is not None:
            good = mask > 0
            primary["NPIXFRAC"] = (float(good.sum() / mask.size), "Fraction of pixels with data")
            primary["MEANEXPT"] = (float(np.mean(scaled[good])), "Mean exposure time of pixels with data")
            primary["MEDEXPT"] = (float(np.median(scaled[good])), "Median exposure time of pixels with data")
            primary["MEANNEXP"] = (float(np.mean(mask[good])), "Mean exposures per pixel with data")
            primary["MEDNEXP"] = (float(np.median(mask[good])), "Median exposures per pixel with data")
            wht = hdul["WHT", 1].data
            primary["MEANWHT"] = (float(np.mean(wht[good])), "Mean WHT of pixels with data")
            primary["MEDWHT"] = (float(np.median(wht[good])), "Median WHT of pixels with data")
        sci["WCSTYPE"] = (_wcstype(sci.get("WCSNAME", "")), "Type of WCS solution")
        for key in ("RA_APER", "DEC_APER"):
            if key not in sci:
                sci[key] = (aperture[key], aperture.comments[key])


def _svm_order(records) -> list:
    """Exposures in SVM's poller order (hap-pipeline.md §1.4): ascending EXPTIME, ties by
    descending PHOTFLAM (primary header for WFC3/IR, SCI,1 otherwise). Filters, and so the
    ``fdp_list`` and the total catalog's columns, follow their first exposure."""
    def photflam(path):
        primary = fits.getheader(path)
        if primary.get("DETECTOR", "").strip().upper() == "IR":
            return float(primary["PHOTFLAM"])
        return float(fits.getval(path, "PHOTFLAM", ("SCI", 1)))

    return sorted(records, key=lambda r: (float(r.exptime), -photflam(r.path)))


def _copy_input(record, folder: Path, det_key: str) -> tuple[str, Path]:
    """Copy a simulated exposure to its SVM name with HAPLEVEL/IPPPSSOO/FILENAME (§1.6)."""
    primary = fits.getheader(record.path)
    names = _names(primary, det_key)
    suffix = record.path.name.split("_", 1)[1]
    target = folder / f"{names['base']}{record.filter.lower()}_{names['ipppssoo']}_{suffix}"
    shutil.copy(record.path, target)
    with fits.open(target, mode="update") as hdul:
        hdul[0].header["HAPLEVEL"] = (1, "Classification level of this product")
        hdul[0].header["IPPPSSOO"] = hdul[0].header["ROOTNAME"]
        hdul[0].header["FILENAME"] = target.name
    return record.filter.lower(), target


def build_product_set(workdir, spec: ProductSpec, *, backend="cpu") -> ProductSet:
    """Simulate ``spec`` and drizzle its SVM filter, single-exposure and total products.

    Parameters
    ----------
    workdir : path
        Empty folder; the visit goes to ``workdir/visit``, the products to
        ``workdir/products``.
    spec : ProductSpec
    backend : str
        hapgpu backend of the drizzling.

    Returns
    -------
    ProductSet

    Raises
    ------
    InvalidParameterError
        A filter with fewer exposures (or more) than the shipped filter parameter sets cover.
    """
    import hapgpu
    from hapgpu.errors import InvalidParameterError
    from hapgpu.simulate import simulate_visit

    workdir = Path(workdir)
    folder = workdir / "products"
    folder.mkdir(parents=True, exist_ok=True)
    start = POST_2012_MJD if spec.instrument == "wfc3-uvis" else None
    visit = simulate_visit(workdir / "visit", spec.instrument,
                           n_exposures=spec.n_per_filter * len(spec.filters),
                           filters=list(spec.filters), seed=spec.seed, crowded=spec.crowded,
                           shape=spec.shape, star_density=spec.star_density,
                           galaxy_density=spec.galaxy_density, start_mjd=start)
    exposures: dict[str, list[Path]] = {}
    for record in _svm_order(visit.exposures):
        filt, path = _copy_input(record, folder, spec.instrument)
        exposures.setdefault(filt, []).append(path)
    filters = tuple(exposures)
    all_inputs = [p for f in filters for p in exposures[f]]
    frame = metawcs_frame(all_inputs)
    frame_pars = _frame_parameters(frame)
    names = _names(fits.getheader(all_inputs[0]), spec.instrument)
    suffix = "drc" if all_inputs[0].name.endswith("_flc.fits") else "drz"
    quiet = {"backend": backend, "progress": False}

    filter_products, singles, filter_masks = {}, {}, {}
    for filt in filters:
        files = exposures[filt]
        pars = _FILTER_PARS[spec.instrument](len(files)) if len(files) >= 2 else None
        if pars is None:
            raise InvalidParameterError(f"no shipped filter parameter set for "
                                        f"{spec.instrument} with {len(files)} exposures")
        root = folder / f"{names['base']}{filt}_{names['ipppss']}"
        result = hapgpu.astrodrizzle([str(p) for p in files], str(root), pars=pars,
                                     **frame_pars, **quiet)
        mask, scaled = footprint_count_mask(files, frame)
        _finish_product(Path(result.product), files[0], mask, scaled, haplevel=2, total=False)
        filter_products[filt] = Path(result.product)
        filter_masks[filt] = mask
        singles[filt] = []
        for path in files:
            single_root = folder / path.name.rsplit("_", 1)[0]
            single = hapgpu.astrodrizzle([str(path)], str(single_root), pars="defaults",
                                         **_SINGLE_PARS, **frame_pars, **quiet)
            _finish_product(Path(single.product), path, None, None, haplevel=1, total=False)
            singles[filt].append(Path(single.product))
    # Total: the exposures of every filter with more than one (all of them if none has).
    multi = [p for f in filters if len(exposures[f]) > 1 for p in exposures[f]] or all_inputs
    root = folder / f"{names['base']}total_{names['ipppss']}"
    result = hapgpu.astrodrizzle([str(p) for p in multi], str(root), pars="total_basic",
                                 **_TOTAL_OVERRIDES.get(spec.instrument, {}), **frame_pars,
                                 **quiet)
    total_mask, scaled = footprint_count_mask(all_inputs, frame)
    _finish_product(Path(result.product), multi[0], total_mask, scaled, haplevel=2,
                    total=True)
    total_path = Path(result.product)
    assert total_path.name == f"{names['base']}total_{names['ipppss']}_{suffix}.fits"
    return ProductSet(spec, folder, visit, total_path, filters, filter_products,
                      {f: tuple(v) for f, v in exposures.items()},
                      {f: tuple(v) for f, v in singles.items()}, total_mask, filter_masks,
                      frame)
