"""Cross-match and fit with tweakwcs; fit RMS, quality codes and consistency (§3.9).

The three fit methods of drizzlepac's ``align_utils`` (``relative``, ``2dhist``, ``default``)
run tweakwcs' ``align_wcs`` with ``XYXYMatch`` and the ``rscale`` geometry on one
:class:`tweakwcs.correctors.FITSWCSCorrector` per chip; :func:`interpret_fit_rms` turns the
matched positions into the RMS figures drizzlepac reports and :func:`determine_fit_quality`
grades a fit 1 (best) to 5 (invalid) with drizzlepac's rules.
"""

from __future__ import annotations

import copy
import logging
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from astropy.table import Table

from ..errors import InvalidParameterError
from ._pars import FIT_METHODS, AlignmentPars

__all__ = [
    "ChipFitStatus",
    "FitQuality",
    "build_correctors",
    "check_relative_consistency",
    "determine_fit_quality",
    "interpret_fit_rms",
    "perform_fit",
    "reference_weights",
]

log = logging.getLogger(__name__)

#: Rotation difference (deg) between neighbouring relative fits that fails the consistency
#: check when some image has at most 4 matches (drizzlepac's ``check_consistency``).
REL_ROT_TOLERANCE = 0.1
#: Correlation of matched magnitudes below which a sparse cross-match is "compromised".
MAG_CORR_THRESHOLD = 0.5
#: One clipping iteration for ``rscale`` fits, none otherwise.
_NCLIP = {"rscale": 1}
#: tweakwcs bounds a group of more than this many chips by the convex hull of their
#: footprints instead of their exact spherical union. drizzlepac leaves tweakwcs' default
#: ('auto': exact up to 50 chips), whose polygon unions take ~90 % of a fit's time; the hull
#: differs from the union only over the gaps between chips, where there are no sources.
GROUP_BB_POLICY = 1
#: Group id drizzlepac gives every chip for the absolute step of the relative fit.
_ONE_GROUP = 1234567


def build_correctors(exposures, sources, *, exclude_saturated: bool = False,
                     weighted: bool = False) -> list:
    """One tweakwcs corrector per chip, grouped by exposure.

    Parameters
    ----------
    exposures : sequence of (str, dict of int to stwcs.wcsutil.HSTWCS)
        File name and chip WCSs of each exposure.
    sources : sequence of ExposureSources
        Their source lists (same order).
    exclude_saturated : bool, keyword-only
        Leave out the sources flagged ``saturated`` or ``dq_saturated``.
    weighted : bool, keyword-only
        Give each source the weight ``1 / position_error^2`` (1/mas^2), to be combined with
        the reference catalogue's weights.

    Returns
    -------
    list of tweakwcs.correctors.FITSWCSCorrector
        ``meta``: ``chip``, ``group_id`` (exposure index), ``filename``, ``name``,
        ``rootname``, ``catalog`` (``x, y, mag`` columns), ``pscale`` (arcsec).
    """
    from tweakwcs.correctors import FITSWCSCorrector

    correctors = []
    for group_id, ((filename, wcs_by_chip), found) in enumerate(zip(exposures, sources)):
        for chip, wcs in sorted(wcs_by_chip.items()):
            table = found.chips.get(chip)
            if table is not None and exclude_saturated and len(table):
                bad = np.zeros(len(table), dtype=bool)
                for flag in ("saturated", "dq_saturated"):
                    if flag in table.colnames:
                        bad |= np.asarray(table[flag], dtype=bool)
                table = table[~bad]
            if table is None or len(table) == 0:
                catalog = Table(names=["x", "y", "mag"], dtype=[float, float, float])
                if weighted:
                    catalog["weight"] = np.zeros(0)
            else:
                catalog = Table({"x": np.asarray(table["x"], dtype=float),
                                 "y": np.asarray(table["y"], dtype=float),
                                 "mag": np.asarray(table["mag"], dtype=float)})
                if weighted:
                    error = np.asarray(table["position_error"], dtype=float)
                    with np.errstate(divide="ignore"):
                        catalog["weight"] = np.where(np.isfinite(error) & (error > 0),
                                                     1.0 / error ** 2, 0.0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                corrector = FITSWCSCorrector(copy.deepcopy(wcs), meta={
                    "chip": chip, "group_id": group_id, "filename": filename,
                    "name": filename, "rootname": _rootname(filename), "catalog": catalog,
                    "pscale": float(wcs.pscale)})
            correctors.append(corrector)
    return correctors


def _rootname(filename: str) -> str:
    import os

    base = os.path.basename(filename)
    return "_".join(base.split("_")[:-1]) or base.split(".")[0]


def reference_weights(refcat: Table) -> np.ndarray:
    """SVM fit weights ``1 / (RA_error^2 + DEC_error^2)`` (non-finite -> 0), §1.8.

    drizzlepac uses them when the first row's ``RA_error`` is non-zero; a catalogue without
    finite errors (2MASS) gets weight 1 everywhere here (drizzlepac's test lets NaN through and
    zeroes every weight).
    """
    ra_err = np.asarray(refcat["RA_error"], dtype=float)
    dec_err = np.asarray(refcat["DEC_error"], dtype=float)
    if len(refcat) == 0 or not np.isfinite(ra_err[0]) or ra_err[0] == 0:
        return np.ones(len(refcat))
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = 1.0 / (ra_err ** 2 + dec_err ** 2)
    return np.nan_to_num(weight, nan=0.0, posinf=0.0, neginf=0.0)


def _matcher(pars: AlignmentPars, method: str):
    from tweakwcs.matchutils import XYXYMatch

    m = pars.match[method]
    return XYXYMatch(searchrad=m.searchrad, separation=m.separation, tolerance=m.tolerance,
                     use2dhist=m.use2dhist)


def _align(correctors, refcat, match, *, minobj, fitgeom, expand_refcat=False):
    from tweakwcs.imalign import align_wcs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return align_wcs(correctors, refcat, match=match, minobj=minobj,
                         expand_refcat=expand_refcat, fitgeom=fitgeom,
                         nclip=_NCLIP.get(fitgeom, 0), group_bb_policy=GROUP_BB_POLICY)


def check_relative_consistency(correctors, rot_tolerance: float = REL_ROT_TOLERANCE) -> bool:
    """drizzlepac's ``check_consistency`` of a relative fit (marks every chip FAILED if not).

    When some chip has at most 4 matches (the reference image counts 0), the proper rotations
    of consecutive chips (the last compared with 0) must not increase by ``rot_tolerance``
    degrees or more.
    """
    n = len(correctors)
    rots = np.zeros(n + 1)
    nmatches = np.zeros(n, dtype=int)
    consistent = True
    for i, corrector in enumerate(correctors):
        info = corrector.meta.get("fit_info", {})
        if info.get("status", "FAILED").startswith("FAILED"):
            nmatches[i] = -1
            consistent = False
        elif "rot" in info:
            rots[i] = info["proper_rot"]
            nmatches[i] = info["nmatches"]
    if nmatches.min() > 4:
        return consistent
    if np.max(rots[1:] - rots[:-1]) >= rot_tolerance:
        for corrector in correctors:
            corrector.meta["fit_info"]["status"] = "FAILED"
            corrector.meta["fit_info"]["process_msg"] = "relative consistency check failed"
        log.info("relative fit is not consistent (rotation step >= %.2f deg)", rot_tolerance)
        return False
    return consistent


def perform_fit(method: str, correctors, refcat: Table, pars: AlignmentPars, *,
                fitgeom: str | None = None) -> list:
    """Cross-match and fit the chips to a reference catalogue (in place).

    ``relative``: all exposures are first aligned to the first one (``expand_refcat``), the
    consistency check runs, then all chips are fitted to ``refcat`` as one group. ``2dhist``
    and ``default``: each exposure (its chips together) is fitted to ``refcat`` on its own.
    Minimum matches (tweakwcs ``minobj``) are ``pars.fitgeom_min_matches[fitgeom]`` (12 for
    rscale); the image-to-image step of ``relative`` always fits ``rscale`` with
    ``pars.fitgeom_min_matches["rscale"]``, as drizzlepac's ``match_relative_fit`` does
    (``mosaic_relgeom_list`` only sets the matches its fits need to be graded valid).

    Parameters
    ----------
    method : {"relative", "2dhist", "default"}
    correctors : list of FITSWCSCorrector
        From :func:`build_correctors` (a fresh copy per attempt: their WCSs are modified).
    refcat : astropy.table.Table
        ``RA, DEC`` (deg), ``mag`` and optionally ``weight``.
    pars : AlignmentPars
    fitgeom : str, optional
        Fit geometry (default ``pars.fitgeom``).

    Returns
    -------
    list of FITSWCSCorrector
        ``correctors``, each with ``meta['fit_info']`` (tweakwcs' plus ``FIT_RMS``,
        ``TOTAL_RMS``, ``RMS_RA``, ``RMS_DEC`` in mas, ``input_mag``, ``ref_mag``,
        ``catalog``) and ``meta['fit method']``.
    """
    if method not in FIT_METHODS:
        raise InvalidParameterError(f"fit method must be one of {FIT_METHODS}, got {method!r}")
    fitgeom = fitgeom or pars.fitgeom
    match = _matcher(pars, method)
    for corrector in correctors:
        corrector.meta["fit method"] = method
        corrector.meta.pop("fit_info", None)
    if method == "relative":
        _align(correctors, None, match, minobj=pars.fitgeom_min_matches.get("rscale", 12),
               fitgeom="rscale", expand_refcat=True)
        if not check_relative_consistency(correctors):
            return correctors
        for corrector in correctors:
            info = corrector.meta["fit_info"]
            log.debug("relative fit of %s chip %s: shift %s rot %.4f scale %.6f matches %s",
                      corrector.meta["name"], corrector.meta["chip"], info.get("shift"),
                      info.get("<rot>", 0.0), info.get("<scale>", 1.0), info.get("nmatches"))
        for corrector in correctors:
            corrector.meta["group_id"] = _ONE_GROUP
    _align(correctors, refcat, match, minobj=pars.fitgeom_min_matches.get(fitgeom, 12),
           fitgeom=fitgeom)
    interpret_fit_rms(correctors, refcat)
    return correctors


def _spherical_offsets(ra1, dec1, ra2, dec2):
    """Offsets (east, north) of point 2 seen from point 1 and their separation, mas."""
    from astropy.coordinates import SkyCoord

    c1 = SkyCoord(ra1, dec1, unit="deg", frame="icrs")
    c2 = SkyCoord(ra2, dec2, unit="deg", frame="icrs")
    dra, ddec = c1.spherical_offsets_to(c2)
    return dra.to_value("mas"), ddec.to_value("mas"), c1.separation(c2).to_value("mas")


def interpret_fit_rms(correctors, refcat: Table) -> None:
    """Fit residual statistics per group, as drizzlepac's ``interpret_fit_rms`` (in place).

    Per group with a successful fit: ``FIT_RMS`` = std of the angular separations between the
    fitted and reference positions of the sources kept by the fit (mas); ``RMS_RA`` and
    ``RMS_DEC`` = std of the east and north offsets (mas). ``TOTAL_RMS`` = mean of the groups'
    ``FIT_RMS``. A group whose fit has (|scale - 1| > 0.01 or |rot| > 0.1 deg) and skew > 0.01
    is marked FAILED (a potential singularity).
    """
    catalog_name = refcat.meta.get("catalog", "")
    groups = {}
    for corrector in correctors:
        gid = corrector.meta["group_id"]
        info = corrector.meta.get("fit_info", {})
        entry = groups.setdefault(gid, {"mags": [], "stats": None})
        entry["mags"].append(np.asarray(corrector.meta["catalog"]["mag"], dtype=float))
        if info.get("status") != "SUCCESS" or entry["stats"] is not None:
            continue
        if (abs(info["<scale>"] - 1) > 0.01 or abs(info["<rot>"]) > 0.1) and info["skew"] > 0.01:
            info["status"] = "FAILED: potential singularity in fit"
            continue
        ref_idx = np.asarray(info["matched_ref_idx"])
        fitmask = np.asarray(info["fitmask"], dtype=bool)
        ref = refcat[ref_idx][fitmask]
        dra, ddec, sep = _spherical_offsets(np.asarray(info["fit_RA"]),
                                            np.asarray(info["fit_DEC"]),
                                            np.asarray(ref["RA"]), np.asarray(ref["DEC"]))
        entry["stats"] = {
            "FIT_RMS": float(np.std(sep)), "RMS_RA": float(np.std(dra)),
            "RMS_DEC": float(np.std(ddec)), "ref_mag": np.asarray(ref["mag"], dtype=float),
            "input_idx": np.asarray(info["matched_input_idx"]), "fitmask": fitmask,
        }
    fit_rms = [g["stats"]["FIT_RMS"] for g in groups.values() if g["stats"] is not None]
    total = float(np.mean(fit_rms)) if fit_rms else float("nan")
    for corrector in correctors:
        info = corrector.meta.setdefault("fit_info", {"status": "FAILED: no fit"})
        group = groups[corrector.meta["group_id"]]
        stats = group["stats"]
        info["TOTAL_RMS"] = total
        info["NUM_FITS"] = len(groups)
        info["catalog"] = catalog_name
        if stats is None:
            info.update(FIT_RMS=None, RMS_RA=None, RMS_DEC=None, input_mag=None, ref_mag=None)
            continue
        mags = np.concatenate(group["mags"])
        idx = stats["input_idx"]
        input_mag = mags[idx][stats["fitmask"]] if idx.size else np.zeros(0)
        info.update(FIT_RMS=stats["FIT_RMS"], RMS_RA=stats["RMS_RA"], RMS_DEC=stats["RMS_DEC"],
                    input_mag=input_mag, ref_mag=stats["ref_mag"])


def _magnitudes_correlated(input_mag, ref_mag) -> bool:
    """drizzlepac's ``check_mag_corr``: |Pearson r| > 0.5; a single match passes."""
    from scipy.stats import pearsonr

    if input_mag is None:
        return False
    input_mag = np.asarray(input_mag, dtype=float)
    ref_mag = np.asarray(ref_mag, dtype=float)
    if input_mag.size > 1 and not np.any(np.isinf(input_mag)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = pearsonr(input_mag, ref_mag)[0]
        return bool(abs(r) > MAG_CORR_THRESHOLD)
    return input_mag.size == 1


@dataclass
class ChipFitStatus:
    """Verdict on one chip's fit.

    Attributes
    ----------
    valid : bool
    compromised : bool
    reason : str
        Empty when valid and not compromised.
    n_matches : int
    """

    valid: bool = True
    compromised: bool = False
    reason: str = ""
    n_matches: int = 0


@dataclass
class FitQuality:
    """Grade of one fit attempt (drizzlepac's ``determine_fit_quality``).

    Attributes
    ----------
    quality : int
        1 valid, RMS < MAX_FIT_RMS; 2 valid but compromised, RMS < MAX_FIT_RMS; 3 valid,
        MAX_FIT_RMS <= RMS <= 1000 mas; 4 any other valid fit; 5 invalid.
    total_rms : float
        ``TOTAL_RMS`` of the fit, mas (1e9 when no chip had one).
    n_matches : int
        Matches of the last chip evaluated (what drizzlepac compares between fits).
    chips : dict
        ``(filename, chip) -> ChipFitStatus``.
    """

    quality: int
    total_rms: float
    n_matches: int
    chips: dict = field(default_factory=dict)

    @property
    def is_good(self) -> bool:
        """Quality 1 to 4 (``GOOD_FIT_QUALITY_VALUES``)."""
        return self.quality in (1, 2, 3, 4)


def determine_fit_quality(correctors, pars: AlignmentPars, *, catalogs_remaining: bool,
                          consistency_check: bool, n_reference: int) -> FitQuality:
    """Grade a fit, chip by chip, with drizzlepac's rules (§3.9).

    A chip's fit is invalid when: tweakwcs failed; it has fewer than ``MIN_FIT_MATCHES``
    matches; (pipeline mode) the spread of the shifts exceeds ``max(TOTAL_RMS, 20)`` mas;
    ``FIT_RMS`` or ``TOTAL_RMS`` exceeds ``MAX_FIT_LIMIT``; the radial offset fails
    ``(n + 2) * 0.36 > 0.8 + (offset / 10")^8``; or it has neither the geometry's required
    matches (12 for rscale) nor ``n >= 2`` with ``FIT_RMS > 0.5`` mas (also compromised). A valid
    fit is compromised when fewer than ``max(0.1 min(1000, n_reference), 10)`` matches have
    uncorrelated magnitudes. Evaluation of a chip with too few matches stops there when more
    catalogues remain.

    Parameters
    ----------
    correctors : list of FITSWCSCorrector
        After :func:`perform_fit`.
    pars : AlignmentPars
    catalogs_remaining : bool, keyword-only
        More catalogues will be tried after this one.
    consistency_check : bool, keyword-only
        Pipeline mode (True) or SVM mode (False).
    n_reference : int, keyword-only
        Size of the reference catalogue for the magnitude check (drizzlepac's SVM path passes
        the number of catalogues here).

    Returns
    -------
    FitQuality
    """
    total_rms = 1e9
    n_matches = 0
    valid_all, compromised_any = True, False
    xshifts, yshifts = [], []
    for corrector in correctors:
        info = corrector.meta.get("fit_info", {})
        status = info.get("status", "FAILED")
        if status.startswith("REFERENCE"):
            xshifts.append(0.0)
            yshifts.append(0.0)
            continue
        if status.startswith("FAILED"):
            break
        xshifts.append(float(info["shift"][0]))
        yshifts.append(float(info["shift"][1]))
    spread = math.hypot(float(np.std(xshifts)) if xshifts else 0.0,
                        float(np.std(yshifts)) if yshifts else 0.0)
    chips = {}
    for corrector in correctors:
        key = (corrector.meta["filename"], corrector.meta["chip"])
        info = corrector.meta.get("fit_info", {})
        status = info.get("status", "FAILED")
        verdict = ChipFitStatus()
        chips[key] = verdict
        if status.startswith("FAILED"):
            verdict.reason = status
            valid_all = False
            continue
        if status.startswith("REFERENCE") or info.get("FIT_RMS") is None:
            verdict.valid, verdict.compromised, verdict.reason = False, True, "no fit information"
            valid_all, compromised_any = False, True
            continue
        fit_rms = float(info["FIT_RMS"])
        total_rms = float(info["TOTAL_RMS"])
        n_matches = len(info["ref_mag"])
        verdict.n_matches = n_matches
        if n_matches < pars.min_fit_matches:
            valid_all = False
            verdict.valid, verdict.reason = False, "too few cross-matches"
            if catalogs_remaining:
                continue
        ref_limit = min(1000, n_reference)
        if n_matches < max(0.1 * ref_limit, 10):
            mags_ok = _magnitudes_correlated(info["input_mag"], info["ref_mag"])
        else:
            mags_ok = True
        geometry = info.get("fitgeom", pars.fitgeom)
        table = (pars.relgeom_min_matches if corrector.meta.get("fit method") == "relative"
                 else pars.fitgeom_min_matches)
        required = table.get(geometry, table.get("rscale", 12))
        nmatches_ok = n_matches >= required or (n_matches >= 2 and fit_rms > 0.5)
        offset = math.hypot(float(info["shift"][0]), float(info["shift"][1])) \
            * float(corrector.meta["pscale"])
        radial_ok = (n_matches + 2) * 0.36 > 0.8 + (offset / 10.0) ** 8
        rms_ok = not (fit_rms > pars.max_fit_limit or total_rms > pars.max_fit_limit)
        consistent = True
        if consistency_check:
            limit = max(total_rms, pars.max_fit_rms) / 1000.0 / float(corrector.meta["pscale"])
            consistent = spread <= limit
        if not consistent:
            verdict.valid, verdict.compromised, verdict.reason = False, False, \
                "consistency violation"
        elif not rms_ok:
            verdict.valid, verdict.compromised, verdict.reason = False, False, \
                f"RMS too large (> {pars.max_fit_limit:g} mas)"
        elif not radial_ok:
            verdict.valid, verdict.compromised, verdict.reason = False, False, \
                "radial offset too large"
        elif not nmatches_ok:
            verdict.valid, verdict.compromised, verdict.reason = False, True, "too few matches"
        elif not mags_ok:
            verdict.valid, verdict.compromised, verdict.reason = True, True, \
                "cross-match magnitudes not correlated"
        else:
            verdict.valid, verdict.compromised, verdict.reason = True, False, ""
        if n_matches < pars.min_fit_matches:
            # drizzlepac overwrites this chip's verdict but keeps the fit invalid overall.
            verdict.valid = False
            verdict.reason = verdict.reason or "too few cross-matches"
        valid_all &= verdict.valid
        compromised_any |= verdict.compromised
    if not valid_all:
        quality = 5
    elif not compromised_any and total_rms < pars.max_fit_rms:
        quality = 1
    elif compromised_any and total_rms < pars.max_fit_rms:
        quality = 2
    elif not compromised_any and pars.max_fit_rms <= total_rms <= 1000.0:
        quality = 3
    else:
        quality = 4
    return FitQuality(quality, total_rms, n_matches, chips)
