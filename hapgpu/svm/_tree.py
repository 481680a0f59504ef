"""The SVM product tree: which products a visit makes and what every file is called (§1.5, §1.6).

From the viable, sorted poller rows (:mod:`hapgpu.svm._poller`, :mod:`hapgpu.svm._analyze`),
:func:`build_product_tree` builds one :class:`TotalProduct` per detector holding its
:class:`FilterProduct` s, its direct :class:`ExposureProduct` s and its
:class:`GrismExposureProduct` s, exactly as drizzlepac's ``interpret_obset_input`` ->
``build_obset_tree`` -> ``parse_obset_tree`` do:

* rows are grouped by detector, then by normalised filter name, in row order;
* **FLT/FLC choice per filter group**: if any member is ``_flc`` the group's products are
  ``drc`` and only its FLC files are members; otherwise ``drz`` with the FLT files. A
  non-member still gets an exposure object of the opposite type (drizzlepac makes its renamed
  copy) but is never drizzled nor listed;
* a filter name containing ``g`` or ``pr`` marks grism/prism exposures: they only go to
  ``TotalProduct.grism_edp_list``;
* ``crclean`` is set on the first member of each filter product of a CCD detector (anything
  but WFC3/IR), ``is_singleton`` on the members of one-member filter products.

:func:`obs_dict` gives drizzlepac's ``obset_dict`` (``"total detection product 00"``, ...) for
comparison with ``interpret_obset_input``. Every file name is a property of the product
objects; building the tree touches no file. :func:`make_renamed_copy` makes the renamed
input copy (``hst_..._fl[ct].fits``) the pipeline works on.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from ..catalogs._output import catalog_filename
from ..errors import InvalidInputError, OutputWriteError
from ._analyze import determine_filter_name

__all__ = [
    "FP_KEY",
    "SEP_KEY",
    "TDP_KEY",
    "ExposureProduct",
    "FilterProduct",
    "GrismExposureProduct",
    "TotalProduct",
    "build_product_tree",
    "footprint_sregion",
    "make_renamed_copy",
    "manifest_filename",
    "obs_dict",
    "ramp_and_quad_manifest_names",
]

log = logging.getLogger(__name__)

#: Keys of drizzlepac's obs dict, zero-padded to two digits.
TDP_KEY = "total detection product {:02d}"
FP_KEY = "filter product {:02d}"
SEP_KEY = "single exposure product {:02d}"

_HAPLEVEL_COMMENT = "Classification level of this product"


def manifest_filename(instrument: str, program_id: str, obset_id: str) -> str:
    """``<instr>_<ppp>_<ss>_manifest.txt``, e.g. ``wfc3_b46_06_manifest.txt`` (lower case)."""
    return f"{instrument}_{program_id}_{obset_id}_manifest.txt".lower()


@dataclass(eq=False, kw_only=True)
class _Product:
    """What every HAP product shares: the visit's identity and the output type.

    Attributes
    ----------
    proposal_id : str
        Proposal number as text, unpadded (``9029``); used as is in file names.
    obset_id : str
        Visit code, lower case (``06``).
    instrument : str
        Lower case (``wfc3``, ``acs``, ``wfpc2``).
    poller_detector : str
        ``DETECTOR`` as the poller gives it, lower case; product names use :attr:`detector`.
    aperture : str
        ``empty_aperture`` or the WFPC2 poller's aperture, lower case.
    filetype : {"drz", "drc"}
        Drizzled-product suffix: ``drc`` for FLC (CTE-corrected) inputs, ``drz`` for FLT.
    """

    proposal_id: str
    obset_id: str
    instrument: str
    poller_detector: str
    aperture: str
    filetype: str

    @property
    def detector(self) -> str:
        """Detector in product names: ``pc`` for every WFPC2 product, else the poller's."""
        return "pc" if self.instrument == "wfpc2" else self.poller_detector

    @property
    def prop_id(self) -> str:
        """Proposal number zero-padded to 5 characters (drizzlepac's ``prop_id``)."""
        return self.proposal_id.zfill(5)

    @property
    def basename(self) -> str:
        """``hst_<propid>_<obset>_<instr>_<det>_``."""
        return f"hst_{self.proposal_id}_{self.obset_id}_{self.instrument}_{self.detector}_"

    @property
    def trl_logname(self) -> str:
        """Trailer name while AstroDrizzle runs: ``<product_basename>_trl.log``."""
        return self.product_basename + "_trl.log"

    @property
    def trl_filename(self) -> str:
        """Trailer: ``<product_basename>_trl.txt``."""
        return self.product_basename + "_trl.txt"

    @property
    def drizzle_filename(self) -> str:
        """Drizzled product: ``<product_basename>_dr[cz].fits``."""
        return f"{self.product_basename}_{self.filetype}.fits"


@dataclass(eq=False, kw_only=True)
class _Exposure(_Product):
    """One calibrated exposure (FLT/FLC) of the visit.

    Attributes
    ----------
    filename : str
        Input file name, e.g. ``ib4606c5q_flc.fits``.
    filters : str
        Normalised filter name (``f555w``, ``f606w-pol60v``, ``clear``).
    source : pathlib.Path or None
        The input file (``PollerRow.source``).
    exptime : float
        Exposure time, s: the poller's value; :func:`make_renamed_copy` sets the header's.
    mjdutc : float or None
        ``EXPSTART``, MJD; set by :func:`make_renamed_copy` (None before).
    is_member : bool
        Whether the file is of its filter group's type (FLC in a ``drc`` group, FLT in a
        ``drz`` one) and so takes part in products. A non-member keeps the opposite type.
    """

    filename: str
    filters: str
    source: Path | None = None
    exptime: float = math.nan
    mjdutc: float | None = None
    is_member: bool = True

    haplevel = 1

    @property
    def rootname(self) -> str:
        """``ipppssoot``: the file name up to its first ``_``."""
        return self.filename.split("_", 1)[0]

    @property
    def exposure_name(self) -> str:
        """``ipppssoo``: the first 8 characters of the file name."""
        return self.filename[:8]

    @property
    def product_basename(self) -> str:
        """``hst_<propid>_<obset>_<instr>_<det>_<filter>_<ipppssoo>``."""
        return f"{self.basename}{self.filters}_{self.exposure_name}"

    @property
    def full_filename(self) -> str:
        """Renamed input copy: ``<product_basename>_fl[ct].fits`` (the input's suffix)."""
        suffix = self.filename.split("_")[1]
        return f"{self.basename}{self.filters}_{self.filename[:8]}_{suffix}"

    @property
    def headerlet_filename(self) -> str:
        """``<product_basename>_hlet.fits`` (written after a successful SVM alignment)."""
        return self.product_basename + "_hlet.fits"

    @property
    def info(self) -> str:
        """drizzlepac's ``info``: the identifying fields joined with ``_``."""
        return (f"{self.proposal_id}_{self.obset_id}_{self.instrument}_{self.poller_detector}_"
                f"{self.aperture}_{self.filename}_{self.filters}_{self.filetype}")

    @property
    def obs_info(self) -> str:
        """The obs-dict ``info`` string: ``<propid> <obset> <instr> <det> <aperture>
        <ipppssoot> <filter> <dr[cz]>``, lower case."""
        return " ".join([self.proposal_id, self.obset_id, self.instrument,
                         self.poller_detector, self.aperture, _info_rootname(self.filename),
                         self.filters, self.filetype]).lower()

    @property
    def is_ramp_or_quad(self) -> bool:
        """Ramp (``fr*``) or quad (``fq*``) filter: aligned, then dropped from the products."""
        return self.filters.lower().startswith(("fr", "fq"))


@dataclass(eq=False, kw_only=True)
class ExposureProduct(_Exposure):
    """A direct-imaging exposure: its renamed copy and its exposure-level drizzle product.

    HAPLEVEL 1. File names: :attr:`full_filename` (renamed input), :attr:`drizzle_filename`,
    :attr:`headerlet_filename`, :attr:`trl_filename`.

    Attributes
    ----------
    is_singleton : bool
        Its filter product has this one member.
    crclean : bool
        First member of its filter product on a CCD detector (set as drizzlepac codes it; it
        changes nothing downstream).
    configobj_pars : object
        The drizzle parameters chosen for the product (set by the pipeline).
    """

    is_singleton: bool = False
    crclean: bool = False
    configobj_pars: object = field(default=None, repr=False)


@dataclass(eq=False, kw_only=True)
class GrismExposureProduct(_Exposure):
    """A grism/prism exposure: never drizzled; its renamed copy gets the direct images' WCS.

    Same names as :class:`ExposureProduct`; kept in ``TotalProduct.grism_edp_list`` only.
    """


@dataclass(eq=False, kw_only=True)
class _Combined(_Product):
    """A product combining several exposures (filter or total): named after its first member.

    Attributes
    ----------
    rootname : str
        Rootname of the first member exposure, lower case; its first 6 characters name the
        product.
    meta_wcs, mask, configobj_pars : object
        Output WCS, footprint mask and drizzle parameters (set by the pipeline).
    """

    rootname: str
    meta_wcs: object = field(default=None, repr=False)
    mask: object = field(default=None, repr=False)
    configobj_pars: object = field(default=None, repr=False)

    haplevel = 2

    @property
    def exposure_name(self) -> str:
        """``ipppss`` of the first member."""
        return self.rootname[:6]

    @property
    def point_cat_filename(self) -> str:
        """Point-source catalog: ``<product_basename>_point-cat.ecsv``."""
        return catalog_filename(self.drizzle_filename, "point")

    @property
    def segment_cat_filename(self) -> str:
        """Segment catalog: ``<product_basename>_segment-cat.ecsv``."""
        return catalog_filename(self.drizzle_filename, "segment")


@dataclass(eq=False, kw_only=True)
class FilterProduct(_Combined):
    """All member exposures of one filter on one detector.

    HAPLEVEL 2. Names: ``<base><filter>_<ipppss>`` + ``_dr[cz].fits``, ``_trl.txt``,
    ``_point-cat.ecsv``, ``_segment-cat.ecsv``.

    Attributes
    ----------
    filters : str
        Normalised filter name.
    edp_list : list of ExposureProduct
        Members, in row order.
    refname : str
        Reference-catalogue file name (default ``<product_basename>_ref_cat.ecsv``; the
        alignment may reset it).
    """

    filters: str
    edp_list: list = field(default_factory=list, repr=False)
    refname: str = ""

    def __post_init__(self):
        if not self.refname:
            self.refname = self.product_basename + "_ref_cat.ecsv"

    @property
    def product_basename(self) -> str:
        """``hst_<propid>_<obset>_<instr>_<det>_<filter>_<ipppss>``."""
        return f"{self.basename}{self.filters}_{self.exposure_name}"

    @property
    def info(self) -> str:
        """drizzlepac's ``info``: the identifying fields joined with ``_``."""
        return (f"{self.proposal_id}_{self.obset_id}_{self.instrument}_{self.poller_detector}_"
                f"{self.aperture}_{self.rootname}_{self.filters}_{self.filetype}")

    @property
    def is_ramp_or_quad(self) -> bool:
        """Ramp (``fr*``) or quad (``fq*``) filter."""
        return self.filters.lower().startswith(("fr", "fq"))


@dataclass(eq=False, kw_only=True)
class TotalProduct(_Combined):
    """Every direct exposure of one detector in the visit ("white light" product).

    HAPLEVEL 2. Names: ``<base>total_<ipppss>`` + ``_dr[cz].fits``, ``_trl.txt``,
    ``_point-cat.ecsv``, ``_segment-cat.ecsv``; the visit's manifest name.

    Attributes
    ----------
    fdp_list : list of FilterProduct
    edp_list : list of ExposureProduct
        Direct member exposures, in tree order.
    grism_edp_list : list of GrismExposureProduct
        Grism/prism member exposures.
    all_exposures : list of ExposureProduct or GrismExposureProduct
        Every exposure object of the detector in tree order, non-members included (drizzlepac
        makes a renamed copy of each). Its :attr:`rootname` is that of the detector's first
        member exposure, grism ones included.
    """

    fdp_list: list = field(default_factory=list, repr=False)
    edp_list: list = field(default_factory=list, repr=False)
    grism_edp_list: list = field(default_factory=list, repr=False)
    all_exposures: list = field(default_factory=list, repr=False)

    @property
    def product_basename(self) -> str:
        """``hst_<propid>_<obset>_<instr>_<det>_total_<ipppss>``."""
        return f"{self.basename}total_{self.exposure_name}"

    @property
    def ref_drizzle_filename(self) -> str:
        """``<product_basename>_ref_dr[cz].fits`` (drizzlepac's ``ref_drizzle_filename``)."""
        return f"{self.product_basename}_ref_{self.filetype}.fits"

    @property
    def manifest_name(self) -> str:
        """``<instr>_<ppp>_<ss>_manifest.txt`` of the visit (``ppp`` from the rootname)."""
        return manifest_filename(self.instrument, self.rootname[1:4], self.obset_id)

    @property
    def info(self) -> str:
        """drizzlepac's ``info``: the identifying fields joined with ``_``."""
        return (f"{self.proposal_id}_{self.obset_id}_{self.instrument}_{self.poller_detector}_"
                f"{self.aperture}_{self.rootname}_{self.filetype}")

    def find_member(self, name: str):
        """The product (this one, a filter or an exposure) whose drizzle file is ``name``."""
        for product in [self, *self.edp_list, *self.fdp_list]:
            if product.drizzle_filename == name:
                return product
        return None


def _info_rootname(filename: str) -> str:
    """The rootname as drizzlepac's row info takes it (up to the first ``_``)."""
    return filename[:filename.find("_")]


def _is_grism(filter_name: str) -> bool:
    """Grism or prism filter: the normalised name contains ``g`` or ``pr``."""
    name = filter_name.lower()
    return "g" in name or "pr" in name


def _group_filetype(rows) -> tuple[list[bool], str]:
    """Members of a filter group and the group's product type (drizzlepac's
    ``select_common_filetype``): FLC files and ``drc`` when any file is FLC, else FLT and
    ``drz``."""
    kinds = [row.filename[:-5].split("_")[-1] for row in rows]
    if "flc" in kinds:
        return [k == "flc" for k in kinds], "drc"
    return [k == "flt" for k in kinds], "drz"


def build_product_tree(rows) -> list[TotalProduct]:
    """The product tree of a visit (hap-pipeline.md §1.5).

    Parameters
    ----------
    rows : sequence of hapgpu.svm._poller.PollerRow
        Viable rows in processing order (after :func:`hapgpu.svm._analyze.sort_rows`).

    Returns
    -------
    list of TotalProduct
        One per detector, in order of the detector's first row.

    Raises
    ------
    InvalidInputError
        ``rows`` is empty.
    """
    rows = list(rows)
    if not rows:
        raise InvalidInputError("no exposures to build a product tree from")
    tree: dict[str, dict[str, list]] = {}
    for row in rows:
        tree.setdefault(row.detector, {}).setdefault(determine_filter_name(row.filters),
                                                     []).append(row)
    totals = []
    for groups in tree.values():
        total = None
        exposures = []
        for filter_name, group in groups.items():
            members, filetype = _group_filetype(group)
            grism = _is_grism(filter_name)
            filter_product = None
            for row, is_member in zip(group, members):
                exp_type = filetype if is_member else ("drz" if filetype == "drc" else "drc")
                kind = GrismExposureProduct if grism else ExposureProduct
                exposure = kind(**_identity(row), filetype=exp_type, filename=row.filename,
                                filters=filter_name, source=row.source,
                                exptime=float(row.exptime), is_member=is_member)
                exposures.append(exposure)
                if not is_member:
                    continue
                if total is None:
                    total = TotalProduct(**_identity(row), filetype=filetype,
                                         rootname=_info_rootname(row.filename).lower())
                if grism:
                    total.grism_edp_list.append(exposure)
                    continue
                if filter_product is None:
                    filter_product = FilterProduct(**_identity(row), filetype=filetype,
                                                   rootname=_info_rootname(row.filename).lower(),
                                                   filters=filter_name)
                filter_product.edp_list.append(exposure)
                total.edp_list.append(exposure)
                is_ccd = not (exposure.instrument == "wfc3" and exposure.detector == "ir")
                if is_ccd and len(filter_product.edp_list) == 1:
                    exposure.crclean = True
            if filter_product is not None:
                total.fdp_list.append(filter_product)
        total.all_exposures = exposures
        totals.append(total)
    for total in totals:
        for filter_product in total.fdp_list:
            singleton = len(filter_product.edp_list) == 1
            for exposure in filter_product.edp_list:
                exposure.is_singleton = singleton
    return totals


def _identity(row) -> dict:
    return {"proposal_id": str(int(row.proposal_id)), "obset_id": str(row.obset_id).lower(),
            "instrument": row.instrument.lower(), "poller_detector": str(row.detector).lower(),
            "aperture": str(row.aperture).lower()}


def obs_dict(totals) -> dict:
    """drizzlepac's obs dict of a product tree (the first value ``interpret_obset_input`` returns).

    Keys ``"total detection product NN"`` (detector index), ``"filter product NN"`` and
    ``"single exposure product NN"`` (running indices over the visit), zero-padded to two
    digits; values ``{"info": <obs_info>, "files": [input file names]}``. Every exposure
    object, non-members included, gets a single-exposure entry with its own type; filter and
    total entries list the members and take the first member's info. As coded in drizzlepac,
    each grism/prism exposure moves the running filter index back by one (so the grism
    group's empty entry is reused by the next filter, and a group of several grism exposures
    moves it back further); the grism members are not listed in the total's files, although
    the first member, grism or not, gives the total's info.

    Parameters
    ----------
    totals : sequence of TotalProduct
        From :func:`build_product_tree`.

    Returns
    -------
    dict
        In drizzlepac's insertion order.
    """
    out: dict[str, dict] = {}
    filter_index = exposure_index = 0
    for detector_index, total in enumerate(totals):
        total_key = TDP_KEY.format(detector_index)
        out[total_key] = {"info": "", "files": []}
        for group in _filter_groups(total.all_exposures):
            filter_key = FP_KEY.format(filter_index)
            out[filter_key] = {"info": "", "files": []}
            filter_index += 1
            for exposure in group:
                out[SEP_KEY.format(exposure_index)] = {"info": exposure.obs_info,
                                                       "files": [exposure.filename]}
                exposure_index += 1
                grism = isinstance(exposure, GrismExposureProduct)
                if grism:
                    filter_index -= 1
                if not exposure.is_member:
                    continue
                if not grism:
                    if not out[filter_key]["info"]:
                        out[filter_key]["info"] = exposure.obs_info
                    out[filter_key]["files"].append(exposure.filename)
                if not out[total_key]["info"]:
                    out[total_key]["info"] = exposure.obs_info
                if not grism:
                    out[total_key]["files"].append(exposure.filename)
    return out


def _filter_groups(exposures):
    """Consecutive runs of exposures with the same filter name (the tree's filter groups)."""
    groups: list[list] = []
    for exposure in exposures:
        if groups and groups[-1][0].filters == exposure.filters:
            groups[-1].append(exposure)
        else:
            groups.append([exposure])
    return groups


def ramp_and_quad_manifest_names(edp_list) -> list[str]:
    """Manifest entries of the ramp/quad exposures the pipeline drops after alignment.

    For each exposure with an ``fr*`` or ``fq*`` filter, its renamed copy and its trailer name,
    in drizzlepac's order (``delete_ramp_and_quadrant_exposures`` walks the list from its end).
    The pipeline then keeps ``[e for e in edp_list if not e.is_ramp_or_quad]`` and the same for
    the filter products (hap-pipeline.md §1.1 step 5.4).

    Parameters
    ----------
    edp_list : sequence of ExposureProduct

    Returns
    -------
    list of str
    """
    names = []
    for exposure in reversed(list(edp_list)):
        if exposure.is_ramp_or_quad:
            names += [exposure.full_filename, exposure.trl_filename]
    return names


def footprint_sregion(wcs) -> str:
    """``S_REGION`` of a chip: ``POLYGON ICRS`` and its 4 corners, the first repeated.

    Parameters
    ----------
    wcs : stwcs.wcsutil.HSTWCS or astropy.wcs.WCS
        Chip WCS with ``pixel_shape`` set; the corners are the centres of the corner pixels
        through the full distortion (``calc_footprint(center=True)``), in degrees.

    Returns
    -------
    str
        ``"POLYGON ICRS ra1 dec1 ra2 dec2 ra3 dec3 ra4 dec4 ra1 dec1 "`` (values as Python
        prints float64, a trailing blank as drizzlepac's ``compute_sregion`` writes it).
    """
    corners = np.asarray(wcs.calc_footprint(center=True), dtype=np.float64)
    closed = np.vstack([corners, corners[:1]])
    return "POLYGON ICRS " + "".join(f"{ra} {dec} " for ra, dec in closed)


def make_renamed_copy(src, dest_dir, exposure) -> Path:
    """Copy an input exposure to its HAP name in the output folder and mark it (§1.6).

    The copy ``dest_dir / exposure.full_filename`` gets, as drizzlepac's ``copy_exposure``:
    primary ``HAPLEVEL = 1``, ``IPPPSSOO = ROOTNAME``, ``FILENAME = <new name>``, and
    ``S_REGION`` (:func:`footprint_sregion` with stwcs' ``HSTWCS``) on every SCI extension.
    The input is never modified; the copy is written under a temporary name, then renamed.
    ``exposure.exptime`` and ``exposure.mjdutc`` are set from the primary ``EXPTIME`` and
    ``EXPSTART`` (drizzlepac reads them when it creates the exposure object).

    Parameters
    ----------
    src : str or os.PathLike
        The input FLT/FLC.
    dest_dir : str or os.PathLike
        Output folder (must exist).
    exposure : ExposureProduct or GrismExposureProduct

    Returns
    -------
    pathlib.Path
        The renamed copy.

    Raises
    ------
    InvalidInputError
        The input cannot be read, lacks ``ROOTNAME``, ``EXPTIME`` or ``EXPSTART``, or has no
        usable SCI WCS; the input itself is ``dest_dir / full_filename``.
    OutputWriteError
        The copy cannot be written.
    """
    from stwcs.wcsutil import HSTWCS

    src = Path(src)
    dest_dir = Path(dest_dir)
    dest = dest_dir / exposure.full_filename
    if not src.is_file():
        raise InvalidInputError(f"{src}: input file not found")
    if dest.exists() and dest.resolve() == src.resolve():
        raise InvalidInputError(f"{src}: the input already has its HAP name in {dest_dir}; "
                                "it would be overwritten by its renamed copy")
    temp = dest_dir / f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        try:
            shutil.copyfile(src, temp)
        except OSError as exc:
            if not os.access(src, os.R_OK):
                raise InvalidInputError(f"{src}: cannot read the file ({exc})") from None
            raise OutputWriteError(f"{dest}: cannot write the renamed copy ({exc})") from None
        try:
            # headers only: the pixels stay memory-mapped and are never read into memory
            with fits.open(temp, mode="update") as hdul:
                primary = hdul[0].header
                for keyword in ("ROOTNAME", "EXPTIME", "EXPSTART"):
                    if keyword not in primary:
                        raise InvalidInputError(f"{src}: primary header has no {keyword} "
                                                "keyword")
                primary["HAPLEVEL"] = (1, _HAPLEVEL_COMMENT)
                primary["IPPPSSOO"] = primary["ROOTNAME"]
                primary["FILENAME"] = exposure.full_filename
                for hdu in hdul:
                    if hdu.header.get("EXTNAME") != "SCI":
                        continue
                    version = hdu.header.get("EXTVER", 1)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        wcs = HSTWCS(hdul, ext=("SCI", version))
                    if wcs.pixel_shape is None:
                        raise InvalidInputError(f"{src}: (SCI, {version}) has no NAXIS1/NAXIS2")
                    hdu.header["S_REGION"] = footprint_sregion(wcs)
                exptime, mjdutc = float(primary["EXPTIME"]), float(primary["EXPSTART"])
        except OSError as exc:
            raise InvalidInputError(f"{src}: cannot read the exposure ({exc})") from None
        try:
            os.replace(temp, dest)
        except OSError as exc:
            raise OutputWriteError(f"{dest}: cannot write the renamed copy ({exc})") from None
    finally:
        if temp.exists():
            temp.unlink()
    exposure.exptime, exposure.mjdutc = exptime, mjdutc
    log.info("copied %s to %s", src.name, dest)
    return dest
