"""Verification of an astrometric solution by drizzling (hap-pipeline.md §3.4-§3.6).

:func:`verify_alignment` is drizzlepac's ``runastrodriz.verify_alignment`` (with ``run_driz``):
in the working folder of its mode it (re)flags cosmic rays, fits the a posteriori solution
when asked, drizzles every input of ``inlist`` with the WCS now in the files, and judges the
products by

* the focus index of each single-exposure drizzle and of the product
  (:func:`hapgpu.detection.quality.build_focus_dict`, §3.5),
* the overlap "Hamming" distance of each single drizzle from the product
  (:func:`max_overlap_diff`, §3.6), and
* in the a priori and a posteriori modes, the similarity of the product with the
  pipeline-default product in the parent folder (:func:`hapgpu.detection.quality.
  compute_similarity`).

The metrics are hapgpu's own implementations of drizzlepac's (``hapgpu.detection.quality``),
computed on the backend; the single drizzles come from the drizzle run itself
(``save_intermediates``: ``<rootname>_single_sci.fits``), read once each.
"""

from __future__ import annotations

import copy
import logging
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from .._fitsupdate import update_in_copy
from ..detection import quality
from ..detection.quality import detect_point_sources
from ..errors import InvalidInputError, InvalidParameterError
from ._pars import nocr_parameters

__all__ = [
    "MODES",
    "Verification",
    "decide",
    "detect_point_sources",
    "max_overlap_diff",
    "reset_cr_flags",
    "run_driz",
    "verify_alignment",
]

log = logging.getLogger(__name__)

#: drizzlepac ``valid_alignment_modes``.
MODES = ("default-pipeline", "apriori", "aposteriori")
#: DQ bits of cosmic rays reset before they are re-identified (drizzlepac ``"4096,8192"``).
_CR_BITS = 4096 | 8192
#: Largest overlap distance of a verified alignment (``evaluate_overlap_diffs`` limit).
_DIFF_LIMIT = 1.0
#: Similarity index above which an a priori/a posteriori product differs too much from the
#: pipeline-default one.
_SIMILARITY_LIMIT = 1.0


@dataclass
class Verification:
    """Outcome of :func:`verify_alignment` for one mode.

    Attributes
    ----------
    verified : bool
        drizzlepac's ``alignment_verified``.
    quality : int
        drizzlepac's ``alignment_quality``: 0 verified, 3 not verified; 3 more when the
        similarity with the pipeline-default product exceeds 1 (which, as coded, does not
        clear ``verified``).
    focus : list of dict
        drizzlepac focus dictionaries, one per verified drizzle (for a singleton one
        dictionary without measurements), each with ``alignment_verified`` and
        ``alignment_quality`` set.
    similarity : float or None
        Similarity index with the pipeline-default product (a priori/a posteriori only).
    overlap_distances : list of float
        Distance of each single drizzle of the judged product (-1: no data).
    products : list of pathlib.Path
        The drizzle products, in ``inlist`` order (in the mode's working folder).
    alignment : AposterioriOutcome or None
        The a posteriori fit (None in other modes).
    workdir : pathlib.Path or None
        Folder the mode worked in.
    """

    verified: bool
    quality: int
    focus: list = field(default_factory=list)
    similarity: float | None = None
    overlap_distances: list = field(default_factory=list)
    products: list = field(default_factory=list)
    alignment: object = None
    workdir: Path | None = None


# ----------------------------------------------------------------------------- metrics
def max_overlap_diff(total_mask, singles, product, exptimes, *, sigma=2.0, scale=1,
                     lsigma=3.0, names=None, backend=None):
    """Overlap distance of each single drizzle from the product (§3.6).

    A thin interface over :func:`hapgpu.detection.quality.max_overlap_diff` (drizzlepac
    ``astrometric_utils.max_overlap_diff``) returning the distances in order.

    Parameters
    ----------
    total_mask : array_like of int, shape (ny, nx)
        Number of single drizzles covering each product pixel (SkyFootprint ``total_mask``).
    singles : sequence of array_like (ny, nx) or file names
        Single-exposure drizzles on the product grid (host or device arrays).
    product : array_like (ny, nx) or file name
        The product's SCI array.
    exptimes : sequence of float or None
        Exposure time of each single (s); None reads them from file headers.
    sigma, scale, lsigma : float, int, float, keyword-only
        LoG scale of the focus values, binning of the source masks, LoG scale of the source
        masks (drizzlepac's defaults 2.0, 1, 3.0).
    names : sequence of str, optional, keyword-only
        Keys of the records.
    backend : str, Backend or None, keyword-only

    Returns
    -------
    distances : list of float
        ``min(weight * hamming, 2 * similarity)`` per single; -1 for a single without data.
    records : dict
        Per single: ``distance``, the region slices, source counts and the focus values and
        positions of the single and the product over the region.

    Raises
    ------
    InvalidInputError
        ``total_mask`` and the product differ in shape; ``exptimes`` does not match.
    """
    records = quality.max_overlap_diff(total_mask, list(singles), product, sigma=sigma,
                                       scale=scale, lsigma=lsigma, exptimes=exptimes,
                                       names=names, backend=backend)
    return [float(r["distance"]) for r in records.values()], records


def decide(focus_dict, distances, *, n_matched=-1, fraction_matched=1.0):
    """drizzlepac's verification decision (§3.4 step 6).

    Parameters
    ----------
    focus_dict : dict
        Focus dictionary of the judged product (:func:`~hapgpu.detection.quality.
        build_focus_dict`).
    distances : sequence of float
        Overlap distances of its singles.
    n_matched : int, keyword-only
        Matches of the a posteriori fit of the first image (-1 without a fit).
    fraction_matched : float, keyword-only
        ``n_matched`` over the reference catalogue size (1.0 without a fit).

    Returns
    -------
    verified : bool
        ``max(distances) <= 1``; in the borderline case ``fraction_matched < 0.1`` or
        ``-1 < n_matched < 10`` also :func:`~hapgpu.detection.quality.evaluate_focus`.
    quality : int
        0 verified, else 3.
    """
    if len(distances) == 0:
        raise InvalidInputError("decide: no overlap distance (no single drizzle)")
    diff_ok = bool(max(distances) <= _DIFF_LIMIT)
    if fraction_matched < 0.1 or -1 < n_matched < 10:
        verified = diff_ok and quality.evaluate_focus(focus_dict)
    else:
        verified = diff_ok
    return verified, 0 if verified else 3


# ----------------------------------------------------------------------------- parameters
def reset_cr_flags(files, bits: int = _CR_BITS) -> None:
    """Clear DQ ``bits`` (default 4096 and 8192, cosmic rays) in every DQ extension
    (drizzlepac ``resetbits.reset_dq_bits(f, "4096,8192")``); each file is updated in a
    temporary copy that replaces it."""
    mask = np.uint16(~bits & 0xFFFF)

    def work(hdul):
        changed = False
        for hdu in hdul:
            if hdu.name == "DQ" and hdu.data is not None:
                hdu.data = (hdu.data.astype(np.uint16) & mask).astype(hdu.data.dtype)
                changed = True
        return changed

    for path in files:
        update_in_copy(path, work, prefix=".hapgpu-resetbits-")


# ----------------------------------------------------------------------------- drizzling
def _asn_members(path: Path) -> list[Path]:
    """Calibrated files of an ``_asn.fits`` table: exposure members with an existing
    ``_flc``, else ``_flt`` file beside the table (drizzlepac's ``process_input``)."""
    try:
        table = fits.getdata(path, 1)
    except (OSError, IndexError, KeyError) as exc:
        raise InvalidInputError(f"{path}: cannot read the association table ({exc})") from None
    suffix = "_flc" if "_flc" in path.name else "_flt"
    files = []
    for name, kind in zip(table["MEMNAME"], table["MEMTYPE"]):
        if "EXP" not in str(kind).upper():
            continue
        member = path.parent / f"{str(name).strip().lower()}{suffix}.fits"
        if not member.exists():
            raise InvalidInputError(f"{path}: member {member.name} not found")
        files.append(member)
    if not files:
        raise InvalidInputError(f"{path}: no exposure members")
    return files


def _drizzle_inputs(item, where: Path, root: str) -> tuple[list[Path], Path]:
    """The files one ``inlist`` entry drizzles (names taken in ``where``) and the product
    root (``where/<name>``): a :class:`~hapgpu.runastrodriz._init.DrizzleInput` (``files``,
    ``output``), an ``_asn.fits`` table, one calibrated file or a list of them (output
    ``root``)."""
    if hasattr(item, "files") and hasattr(item, "output"):
        return [where / Path(p).name for p in item.files], where / Path(str(item.output)).name
    if isinstance(item, (str, Path)):
        path = where / Path(item).name
        if path.name.endswith("_asn.fits"):
            return _asn_members(path), where / root
        return [path], where / root
    return [where / Path(p).name for p in item], where / root


def _single_names(files) -> list[Path]:
    """``<rootname>_single_sci.fits`` of each calibrated file (the name drizzlepac derives
    by replacing ``_flt``/``_flc``)."""
    out = []
    for f in files:
        f = Path(f)
        stem = f.name
        for suffix in ("_flt.fits", "_flc.fits"):
            if stem.endswith(suffix):
                stem = stem[:-len(suffix)]
                break
        else:
            stem = f.stem
        out.append(f.with_name(f"{stem}_single_sci.fits"))
    return out


def _astrodrizzle(files, output: Path, pars: dict, backend, *, singles: bool, visit=None):
    from ..astrodrizzle import astrodrizzle

    result = astrodrizzle([str(f) for f in files], output, backend=backend, pars=dict(pars),
                          save_intermediates=singles, progress=False, visit=visit)
    return result


def _set_drizpars(product: Path, trailer: str) -> None:
    def work(hdul):
        hdul[0].header["DRIZPARS"] = trailer
        return True

    update_in_copy(product, work, prefix=".hapgpu-drizpars-")


def _read(path: Path, ext=None) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = fits.getdata(path) if ext is None else fits.getdata(path, ext=ext)
    except (OSError, KeyError) as exc:
        raise InvalidInputError(f"{path}: cannot read the image ({exc})") from None
    return np.asarray(data, dtype=data.dtype.newbyteorder("="))


def _product_grid(product: Path):
    from stwcs.wcsutil import HSTWCS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(product) as hdul:
            wcs = HSTWCS(hdul, ext=("SCI", 1))
            shape = hdul["SCI", 1].data.shape
    return wcs, shape


def _measure(files, product: Path, focus_sigma: float, backend):
    """Focus dictionary and overlap records of one verified drizzle."""
    from ..svm._footprint import footprint_mask

    names = _single_names(files)
    missing = [n.name for n in names if not n.exists()]
    if missing:
        raise InvalidInputError(f"single-exposure drizzles missing after the drizzle of "
                                f"{product.name}: {', '.join(missing)}")
    singles = [_read(n) for n in names]
    exptimes = [float(fits.getval(n, "EXPTIME")) for n in names]
    prod = _read(product, ("SCI", 1))
    off_grid = [n.name for n, s in zip(names, singles) if s.shape != prod.shape]
    if off_grid:
        raise InvalidInputError(
            f"{product.name} has shape {prod.shape} but the single-exposure drizzles "
            f"{', '.join(off_grid)} do not: the separate-drizzle frame differs from the final "
            "frame (e.g. final_wcs with final_rot while driz_sep_wcs is off), so focus and "
            "overlap metrics cannot compare them; give both steps the same output frame")
    labels = [n.name for n in names] + [product.name]
    focus = quality.build_focus_dict(singles, prod, sigma=focus_sigma, names=labels,
                                     backend=backend)
    wcs, shape = _product_grid(product)
    total_mask, _ = footprint_mask(names, wcs, shape)
    distances, records = max_overlap_diff(total_mask, singles, prod, exptimes,
                                          names=labels[:-1], backend=backend)
    return focus, distances, records


def run_driz(inlist, calfiles, workdir, root: str, drizzle_pars: dict, *, verify: bool,
             good_bits: int, focus_sigma: float, backend=None, visit=None):
    """Drizzle every ``inlist`` entry and measure the products (drizzlepac ``run_driz``).

    Parameters
    ----------
    inlist : sequence
        One entry per drizzle: a :class:`~hapgpu.runastrodriz._init.DrizzleInput`, an
        ``_asn.fits`` table, one calibrated file, or a list of calibrated files (names taken
        in ``workdir``).
    calfiles : sequence of str or os.PathLike
        The calibrated files; with only one, nothing is verified (a singleton).
    workdir : pathlib.Path
        Folder holding the inputs; products ``<root>_drz.fits``/``_drc.fits`` go there.
    root : str
        Trailer root (``DRIZPARS`` is set to ``<root>.tra``) and the product root of entries
        that do not name one.
    drizzle_pars : dict
        AstroDrizzle parameters.
    verify : bool, keyword-only
        Measure focus and overlap distances.
    good_bits : int, keyword-only
        ``driz_sep_bits`` of the no-CR rerun that makes missing single drizzles.
    focus_sigma : float, keyword-only
        LoG scale of the focus index.
    backend : keyword-only
    visit : hapgpu.astrodrizzle.VisitCache, optional
        Inputs already read by earlier drizzles of the run (reused while a file is unchanged).

    Returns
    -------
    products : list of pathlib.Path
    focus_dicts : list of dict or None
        None when nothing was verified.
    diffs : list of (list of float, dict)
        Overlap distances and records per verified product.
    """
    products, focus_dicts, diffs = [], [], []
    verify = verify and len(list(calfiles)) > 1
    for item in inlist:
        files, output = _drizzle_inputs(item, workdir, root)
        pars = dict(drizzle_pars)
        result = _astrodrizzle(files, output, pars, backend, singles=verify, visit=visit)
        product = Path(result.product)
        _set_drizpars(product, f"{root}.tra")
        products.append(product)
        if not verify:
            continue
        if not all(n.exists() for n in _single_names(files)):
            # CR rejection off (e.g. ACS/SBC): rerun without it to make the single drizzles
            log.info("no single-exposure drizzles for %s; rerunning without CR "
                     "identification to make them", product.name)
            result = _astrodrizzle(files, output, nocr_parameters(pars, good_bits),
                                   backend, singles=True, visit=visit)
        focus, distances, records = _measure(files, product, focus_sigma, backend)
        focus_dicts.append(focus)
        diffs.append((distances, records))
    for mask in workdir.glob("*mask*.fits"):  # drizzlepac removes them unless debugging
        mask.unlink(missing_ok=True)
    return products, (focus_dicts if verify else None), diffs


# ----------------------------------------------------------------------------- the stage
def _copy_into(files, folder: Path) -> list[Path]:
    out = []
    for f in files:
        f = Path(f)
        target = folder / f.name
        if f.resolve() != target.resolve():
            shutil.copy2(f, target)
        out.append(target)
    return out


def verify_alignment(inlist, calfiles, calfiles_flc, *, mode, root, find_crs, good_bits,
                     drizzle_pars: dict, focus_sigma: float, refcat=None, backend=None,
                     workdir=None, visit=None) -> Verification | None:
    """Drizzle with the WCS now in the files and verify it (drizzlepac ``verify_alignment``,
    hap-pipeline.md §3.4).

    Parameters
    ----------
    inlist : sequence
        One entry per drizzle product (:class:`~hapgpu.runastrodriz._init.DrizzleInput`,
        ``_asn.fits`` table, calibrated file, or list of calibrated files), FLT first, FLC
        last when both exist.
    calfiles, calfiles_flc : sequence of str or os.PathLike
        FLT files, and FLC files (empty when none).
    mode : {"default-pipeline", "apriori", "aposteriori"}, keyword-only
        ``default-pipeline`` works in ``workdir``; the others copy ``inlist`` (files),
        FLT and FLC into ``<workdir>/<root>_<mode>/`` and work there.
    root : str, keyword-only
        Association or exposure rootname (products ``<root>_drz.fits``/``_drc.fits``).
    find_crs : bool, keyword-only
        Re-identify cosmic rays (reset DQ 4096/8192 in the align files, drizzle once without
        verification); False drizzles in no-CR mode (:func:`hapgpu.runastrodriz._pars.nocr_parameters`).
    good_bits : int, keyword-only
        DQ bits counted good in the no-CR separate drizzle.
    drizzle_pars : dict, keyword-only
        AstroDrizzle parameters of the verification drizzles.
    focus_sigma : float, keyword-only
        LoG scale of the focus index (1.5 UVIS/WFC/HRC/PC, 2.0 IR/SBC).
    refcat : keyword-only
        Reference catalogue of the a posteriori fit (see :func:`.align_aposteriori`).
    backend : keyword-only
        Compute backend.
    workdir : str or os.PathLike, optional, keyword-only
        The parent folder (default: the current directory).
    visit : hapgpu.astrodrizzle.VisitCache, optional, keyword-only
        Inputs already read by earlier drizzles of the run, reused while a file is unchanged
        (the stage folders hold copies: those are read once per stage).

    Returns
    -------
    Verification or None
        None when the a posteriori fit failed (drizzlepac's ``(None, None)``): the files in
        the parent folder are unchanged.

    Raises
    ------
    InvalidParameterError
        Unknown ``mode``.
    InvalidInputError
        An empty ``inlist``, a missing input, an unreadable product, single drizzles on
        another grid than the product, or (a priori/a posteriori) no pipeline-default product
        in the parent folder to compare with.

    Notes
    -----
    When the verification passes in a subfolder, the FLT and FLC files and the new
    headerlet files are copied back to the parent folder (the products stay in the
    subfolder). The a posteriori engine has no ``sat_flags`` argument: its DQ mask treats
    256 and 2048 as saturation whatever the CR mode (§3.9).
    """
    from ._aposteriori import align_aposteriori, update_wcs_in_list

    if mode not in MODES:
        raise InvalidParameterError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    inlist = list(inlist)
    if not inlist:
        raise InvalidInputError("verify_alignment: inlist is empty (nothing to drizzle)")
    parent = Path(workdir) if workdir is not None else Path.cwd()
    calfiles = [parent / Path(f).name if not Path(f).is_absolute() else Path(f) for f in calfiles]
    flcs = [parent / Path(f).name if not Path(f).is_absolute() else Path(f)
            for f in (calfiles_flc or [])]
    for f in calfiles + flcs:
        if not f.exists():
            raise InvalidInputError(f"{f}: no such file")
    if mode == "default-pipeline":
        where = parent
    else:
        where = parent / f"{root}_{mode}"
        where.mkdir(parents=True, exist_ok=True)
        table_files = [parent / Path(i).name for i in inlist if isinstance(i, (str, Path))]
        _copy_into([f for f in table_files if f.exists()], where)
        calfiles = _copy_into(calfiles, where)
        flcs = _copy_into(flcs, where)
    pars = dict(drizzle_pars)
    alignfiles = flcs if flcs else calfiles
    if find_crs:
        log.debug("resetting cosmic-ray DQ bits in %s", ", ".join(f.name for f in alignfiles))
        reset_cr_flags(alignfiles)
    else:
        pars = nocr_parameters(pars, good_bits)

    outcome = None
    headerlets: list = []
    n_matched, fraction = -1, 1.0
    if mode == "aposteriori":
        if len(alignfiles) > 1:
            update_wcs_in_list(alignfiles)
        outcome = align_aposteriori(alignfiles, calfiles if flcs else None, refcat=refcat,
                                    backend=backend)
        if not outcome.succeeded:
            log.warning("a posteriori alignment failed (%s); no correction to the absolute "
                        "astrometric frame applied", outcome.message)
            return None
        headerlets = [Path(h) for h in outcome.headerlet_files]
        n_matched, fraction = outcome.n_matched, outcome.fraction_matched

    common = {"good_bits": good_bits, "focus_sigma": focus_sigma, "backend": backend,
              "visit": visit}
    if find_crs:
        run_driz(inlist, calfiles, where, root, pars, verify=False, **common)
    products, focus_dicts, diffs = run_driz(inlist, calfiles, where, root, pars, verify=True,
                                            **common)
    log.info("verification of %s alignment started", mode)
    distances: list = []
    if focus_dicts:
        align_focus = focus_dicts[-1] if "drc" in focus_dicts[-1]["prodname"] else focus_dicts[0]
        distances = diffs[-1][0]
        verified, quality_flag = decide(align_focus, distances, n_matched=n_matched,
                                        fraction_matched=fraction)
        log.info("overlap distances %s; %s alignment %s", [round(d, 4) for d in distances],
                 mode, "SUCCEEDED" if verified else "FAILED")
        prodname = align_focus["prodname"]
    else:
        fd = copy.deepcopy(quality.FOCUS_DICT)
        fd["expnames"] = [f.name for f in calfiles]
        fd["prodname"] = products[0].name
        focus_dicts = [fd]
        verified, quality_flag = True, 0
        prodname = products[0].name

    similarity = None
    if mode != "default-pipeline":
        reference = parent / prodname
        if not reference.exists():
            raise InvalidInputError(f"{reference}: no pipeline-default product to compare the "
                                    f"{mode} product with")
        similarity = quality.compute_similarity(_read(where / prodname, ("SCI", 1)),
                                                _read(reference, ("SCI", 1)), backend=backend)
        if similarity > _SIMILARITY_LIMIT or not verified:
            log.info("alignment appeared to FAIL based on similarity index of %.4f", similarity)
        else:
            log.info("alignment appeared to SUCCEED based on similarity index of %.4f",
                     similarity)
        if similarity > _SIMILARITY_LIMIT:
            quality_flag += 3
    for fd in focus_dicts:
        fd["alignment_verified"] = verified
        fd["alignment_quality"] = quality_flag
    if mode != "default-pipeline" and verified:
        log.info("saving the input files with the new %s alignment", mode)
        _copy_into(calfiles + flcs + [h for h in headerlets if h.exists()], parent)
    return Verification(verified, quality_flag, focus_dicts, similarity, list(distances),
                        products, outcome, where)
