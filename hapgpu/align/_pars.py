"""Alignment parameters per instrument and detector.

The values are those of drizzlepac's SVM parameter files
``pars/hap_pars/svm_parameters/<inst>/<det>/<inst>_<det>_alignment_all.json`` (drizzlepac 3.11),
which ``align.perform_align`` (runastrodriz, §3.8 of the HAP specification) and
``HAPProduct.align_to_gaia`` (SVM, §1.8) both read. Where the ``general``, ``run_align`` and
``determine_fit_quality`` blocks disagree, the value drizzlepac's code actually uses is kept
(noted per field).

:func:`alignment_pars_from_hap` maps a whole HAP alignment block (the shipped one or the
``alignment`` step of a custom parameter file, ``runsinglehap -c``) onto :class:`AlignmentPars`.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from ..errors import InvalidInputError, InvalidParameterError

__all__ = ["FIT_GEOMETRIES", "FIT_METHODS", "AlignmentPars", "MatchPars", "alignment_pars",
           "alignment_pars_from_hap"]

#: Cross-match/fit methods in the order drizzlepac tries them.
FIT_METHODS = ("relative", "2dhist", "default")
#: tweakwcs fit geometries, simplest first.
FIT_GEOMETRIES = ("shift", "rshift", "rscale", "general")
#: Background and background-rms estimators the source finding offers (hapgpu.detection's
#: namesakes of photutils' classes, which drizzlepac looks up by these names).
BKG_ESTIMATORS = ("SExtractorBackground", "MedianBackground", "MeanBackground", "MMMBackground")
RMS_ESTIMATORS = ("StdBackgroundRMS", "MADStdBackgroundRMS")


@dataclass(frozen=True)
class MatchPars:
    """tweakwcs ``XYXYMatch`` settings of one fit method.

    Attributes
    ----------
    searchrad : float
        Search radius, in units of the tangent plane (pixels of the image's own scale).
    separation : float
        Minimum separation between sources of one list, same units.
    tolerance : float
        Matching tolerance after the initial offset, same units.
    use2dhist : bool
        Find the initial offset with a 2-D histogram of all pairwise offsets.
    fitgeom : str or None
        Fit geometry of this method (the ``fitgeom`` of its HAP block); None uses
        :attr:`AlignmentPars.fitgeom`.
    """

    searchrad: float
    separation: float
    tolerance: float
    use2dhist: bool
    fitgeom: str | None = None


@dataclass(frozen=True)
class AlignmentPars:
    """Every number the alignment engine uses for one detector.

    Attributes
    ----------
    detector_key : str
        ``<instrument>/<detector>``, lower case (``wfc3/uvis``).
    box_size : int
        Background2D box, pixels (27; 13 for IR, HRC, SBC and WFPC2).
    win_size : int
        Background2D median-filter window of the box mesh.
    nsigma : float
        Detection threshold in background rms above the background.
    threshold_scale : float
        The ``threshold: -1.1`` parameter: a negative value multiplies the default
        threshold ``bkg + nsigma * rms`` by its absolute value.
    bkg_estimator : str
        Background estimator of Background2D (:data:`BKG_ESTIMATORS`):
        ``SExtractorBackground`` or ``MedianBackground`` in the shipped files.
    rms_estimator : str
        Background-rms estimator (:data:`RMS_ESTIMATORS`), ``StdBackgroundRMS`` everywhere.
    searchrad_2dhist : float
        Search radius of the shipped ``2dhist`` method (400 for UVIS and ACS/WFC, else 250).
    fwhmpsf : float
        Default PSF FWHM, arcsec (0.13).
    classify : bool
        Single-image cosmic-ray classification and removal before source finding.
    max_sources_per_chip : int
        ``MAX_SOURCES_PER_CHIP`` (250; 500 for ACS/WFC).
    match_pars : dict of str to MatchPars or None
        Per fit method (``relative``, ``2dhist``, ``default``); None gives the shipped values
        (read them through :attr:`match`).
    fit_methods : tuple of str
        Methods to try, in order (``mosaic_fit_list`` of SVM; ``relative`` is dropped for a
        single exposure and for ``IMG`` fits).
    fitgeom : str
        Fit geometry of a method whose :class:`MatchPars` names none, ``rscale`` in every
        shipped file.
    min_fit_matches : int
        ``MIN_FIT_MATCHES`` (4).
    min_catalog_threshold : int
        ``MIN_CATALOG_THRESHOLD``: fewer reference stars than this skip the catalogue (3).
    min_observable_threshold : int
        Fewer sources than this in an exposure stop the alignment (4: drizzlepac reads
        ``determine_fit_quality``'s value, not ``run_align``'s 10).
    max_fit_rms : float
        ``MAX_FIT_RMS``, mas: the "auto-good" RMS limit of quality 1 and 2 (20).
    max_fit_limit : float
        ``MAX_FIT_LIMIT``, mas: larger fit RMS is invalid (150).
    fitgeom_min_matches : dict of str to int
        ``mosaic_fitgeom_list``: matches a fit needs (rscale 12, general 25); also tweakwcs'
        ``minobj`` and, in SVM mode, the minimum size of the reference catalogue. Its order is
        the SVM downgrade order (a geometry that fails falls back to the entries before it).
    relgeom_min_matches : dict of str to int
        ``mosaic_relgeom_list``: matches a fit of the relative method needs to be graded
        valid (rscale 12).
    refine_centroids : bool
        Re-measure the sources with a Gaussian-windowed centroid before fitting (hapgpu's
        improvement, see :func:`hapgpu.align.refine_centroids`); False fits HAP's positions
        exactly as drizzlepac does.
    refine_min_sigma : float
        Smallest sigma of the centroid window, pixels (1.5).
    exclude_saturated : bool
        Leave sources with DQ-saturated pixels (256, 2048) next to their peak, or with HAP's
        saturated-segment signature, out of the fits (hapgpu's improvement: their centroids
        are off by up to pixels and, weighted by their small catalogue errors, they dominate
        SVM fits). True for the CCDs; False for WFC3/IR (up-the-ramp rates of saturated pixels
        are valid) and SBC.
    """

    detector_key: str
    box_size: int
    bkg_estimator: str
    classify: bool
    max_sources_per_chip: int
    searchrad_2dhist: float
    win_size: int = 3
    nsigma: float = 3.0
    threshold_scale: float = 1.1
    rms_estimator: str = "StdBackgroundRMS"
    fwhmpsf: float = 0.13
    match_pars: dict | None = None
    fit_methods: tuple = FIT_METHODS
    fitgeom: str = "rscale"
    min_fit_matches: int = 4
    min_catalog_threshold: int = 3
    min_observable_threshold: int = 4
    max_fit_rms: float = 20.0
    max_fit_limit: float = 150.0
    fitgeom_min_matches: dict = field(default_factory=lambda: {"rscale": 12, "general": 25})
    relgeom_min_matches: dict = field(default_factory=lambda: {"rscale": 12})
    refine_centroids: bool = True
    refine_min_sigma: float = 1.5
    exclude_saturated: bool = True

    @property
    def is_sbc(self) -> bool:
        """True for ACS/SBC, which has its own source-finding path."""
        return self.detector_key == "acs/sbc"

    @property
    def match(self) -> dict:
        """:class:`MatchPars` per fit method (``match_pars``, else the shipped values)."""
        if self.match_pars is not None:
            return dict(self.match_pars)
        return {
            "relative": MatchPars(125.0, 4.0, 2.0, True),
            "2dhist": MatchPars(self.searchrad_2dhist, 4.0, 2.0, True),
            "default": MatchPars(250.0, 0.1, 10.0, False),
        }

    def method_fitgeom(self, method: str) -> str:
        """Fit geometry of a fit method (its own, else :attr:`fitgeom`)."""
        return self.match[method].fitgeom or self.fitgeom

    def with_overrides(self, **values) -> AlignmentPars:
        """Return a copy with some fields replaced."""
        return replace(self, **values)


_TABLE = {
    # key: (box_size, bkg_estimator, classify, MAX_SOURCES_PER_CHIP, 2dhist searchrad)
    "wfc3/uvis": (27, "SExtractorBackground", True, 250, 400.0),
    "wfc3/ir": (13, "MedianBackground", False, 250, 250.0),
    "acs/wfc": (27, "SExtractorBackground", True, 500, 400.0),
    "acs/hrc": (13, "MedianBackground", True, 250, 250.0),
    "acs/sbc": (13, "MedianBackground", False, 250, 250.0),
    "wfpc2/pc": (13, "MedianBackground", True, 250, 250.0),
}


def alignment_pars(instrument: str, detector: str | None) -> AlignmentPars:
    """Return the alignment parameters of an instrument/detector.

    Parameters
    ----------
    instrument : str
        ``INSTRUME`` (``WFC3``, ``ACS``, ``WFPC2``), any case.
    detector : str or None
        ``DETECTOR`` (``UVIS``, ``IR``, ``WFC``, ``HRC``, ``SBC``); None for WFPC2, which is
        always treated as ``PC`` (as drizzlepac does).

    Returns
    -------
    AlignmentPars

    Raises
    ------
    InvalidInputError
        For an instrument/detector without HAP alignment parameters.
    """
    inst = str(instrument or "").strip().lower()
    det = "pc" if inst == "wfpc2" else str(detector or "").strip().lower()
    key = f"{inst}/{det}"
    if key not in _TABLE:
        raise InvalidInputError(
            f"no alignment parameters for instrument {instrument!r} detector {detector!r}; "
            f"supported: {', '.join(sorted(_TABLE))}")
    box, bkg, classify, max_src, searchrad = _TABLE[key]
    return AlignmentPars(detector_key=key, box_size=box, bkg_estimator=bkg, classify=classify,
                         max_sources_per_chip=max_src, searchrad_2dhist=searchrad,
                         exclude_saturated=key not in ("wfc3/ir", "acs/sbc"))


# ----------------------------------------------------------------------------- HAP blocks
#: The sections of a HAP alignment block and the keys each may hold (drizzlepac 3.11's
#: ``<inst>_<det>_alignment_all.json``, SVM and MVM).
_HAP_SECTIONS = {
    "general": ("MIN_FIT_MATCHES", "MAX_FIT_RMS", "MAX_SOURCES_PER_CHIP"),
    "run_align": ("update_hdr_wcs", "catalog_list", "fit_algorithm_list_ngt1",
                  "fit_algorithm_list_n1", "MIN_CATALOG_THRESHOLD", "MIN_OBSERVABLE_THRESHOLD",
                  "MAX_FIT_LIMIT", "mosaic_catalog_list", "mosaic_fit_list",
                  "mosaic_fitgeom_list", "mosaic_relgeom_list"),
    "generate_source_catalogs": ("box_size", "win_size", "nsigma", "centering_mode",
                                 "bkg_estimator", "rms_estimator", "num_sources", "deblend",
                                 "fwhmpsf", "classify", "threshold"),
    "generate_astrometric_catalog": ("gaia_only", "existing_wcs"),
    "determine_fit_quality": ("MIN_CATALOG_THRESHOLD", "MIN_OBSERVABLE_THRESHOLD",
                              "MIN_CROSS_MATCHES", "MIN_FIT_MATCHES", "MAX_FIT_RMS",
                              "MAX_FIT_LIMIT", "MAX_SOURCES_PER_CHIP", "MAS_TO_ARCSEC",
                              "GOOD_FIT_QUALITY_VALUES"),
    "match_relative_fit": ("fitgeom", "searchrad", "separation", "tolerance", "use2dhist"),
    "match_2dhist_fit": ("fitgeom", "searchrad", "separation", "tolerance", "use2dhist"),
    "match_default_fit": ("fitgeom", "searchrad", "separation", "tolerance", "use2dhist"),
}
#: drizzlepac's ``AlignmentTable`` merges these sections into one dictionary, later wins.
_MERGE_ORDER = ("run_align", "general", "generate_source_catalogs", "determine_fit_quality")


class _Reader:
    """Typed access to the merged block, with errors naming the source and the key."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, key: str, problem: str):
        raise InvalidParameterError(f"{self.where}: alignment parameter {key}: {problem}")

    def integer(self, key, value, minimum):
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not float(value).is_integer() or value < minimum:
            self.fail(key, f"must be an integer >= {minimum}, got {value!r}")
        return int(value)

    def number(self, key, value, *, positive=True):
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or (value <= 0 if positive else value < 0):
            bound = "> 0" if positive else ">= 0"
            self.fail(key, f"must be a finite number {bound}, got {value!r}")
        return float(value)

    def boolean(self, key, value):
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, got {value!r}")
        return value

    def choice(self, key, value, choices):
        if value not in choices:
            self.fail(key, f"must be one of {', '.join(map(str, choices))}, got {value!r}")
        return value

    def geometries(self, key, value):
        if not isinstance(value, Mapping) or not value:
            self.fail(key, f"must map fit geometries to match counts, got {value!r}")
        out = {}
        for geom, count in value.items():
            self.choice(f"{key}[{geom!r}]", geom, FIT_GEOMETRIES)
            out[str(geom)] = self.integer(f"{key}[{geom!r}]", count, 1)
        return out


def _check_names(where: str, block: Mapping) -> None:
    for section, values in block.items():
        if section not in _HAP_SECTIONS:
            close = difflib.get_close_matches(str(section), _HAP_SECTIONS, n=3, cutoff=0.6)
            hint = f" (did you mean {', '.join(close)}?)" if close else \
                f" (sections: {', '.join(_HAP_SECTIONS)})"
            raise InvalidParameterError(f"{where}: unknown alignment section {section!r}{hint}")
        if not isinstance(values, Mapping):
            raise InvalidParameterError(
                f"{where}: alignment section {section!r} must be a JSON object, got {values!r}")
        for key in values:
            if key not in _HAP_SECTIONS[section]:
                close = difflib.get_close_matches(str(key), _HAP_SECTIONS[section], n=3,
                                                  cutoff=0.6)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise InvalidParameterError(
                    f"{where}: unknown alignment parameter {section}.{key}{hint}")


def alignment_pars_from_hap(block: Mapping, instrument: str, detector: str | None, *,
                            source: str = "alignment parameters") -> AlignmentPars:
    """Map a HAP alignment parameter block onto :class:`AlignmentPars`.

    The block is the ``alignment`` step of drizzlepac's HAP configuration
    (:attr:`hapgpu.svm._config.HapConfig.alignment`: the shipped
    ``<inst>_<det>_alignment_all.json`` or the block of a custom parameter file). Its
    ``run_align``, ``general``, ``generate_source_catalogs`` and ``determine_fit_quality``
    sections are merged in that order, later wins, as drizzlepac's ``AlignmentTable`` does (so
    ``determine_fit_quality``'s ``MIN_OBSERVABLE_THRESHOLD`` 4 and ``MAX_SOURCES_PER_CHIP`` win
    over ``run_align``'s 10 and ``general``'s value). The ``match_<method>_fit`` sections give
    each method's tweakwcs ``XYXYMatch`` settings and fit geometry; ``mosaic_fit_list``,
    ``mosaic_fitgeom_list`` and ``mosaic_relgeom_list`` the SVM methods, geometry match counts
    and their downgrade order. Keys or sections the block leaves out keep the detector's
    defaults (:func:`alignment_pars`); drizzlepac would stop on a missing key.

    Parameters
    ----------
    block : mapping
        The alignment block (sections of key/value pairs, JSON types).
    instrument : str
        ``INSTRUME`` (any case).
    detector : str or None
        ``DETECTOR`` (None for WFPC2).
    source : str, keyword-only
        What the block came from, for error messages (a file name).

    Returns
    -------
    AlignmentPars

    Raises
    ------
    InvalidParameterError
        An unknown section or key (the message lists the closest names), a value of the wrong
        type or out of range, a fit method or geometry tweakwcs/drizzlepac do not have, a
        method geometry missing from ``mosaic_fitgeom_list``, or a setting hapgpu does not
        implement (``centering_mode`` other than ``starfind``, ``deblend`` true, quality
        values other than 1-4, ``MAS_TO_ARCSEC`` other than 1000); each names ``source``.
    InvalidInputError
        For an instrument/detector without HAP alignment parameters.

    Notes
    -----
    Read but not used by the SVM alignment: ``catalog_list``, ``fit_algorithm_list_*`` and
    ``update_hdr_wcs`` (runastrodriz), ``mosaic_catalog_list`` (the caller's catalogue list),
    ``num_sources`` and ``MIN_CROSS_MATCHES`` (unused by drizzlepac too), ``gaia_only`` and
    ``existing_wcs`` (the reference catalogue is the caller's). A positive ``threshold`` keeps
    the default detection threshold, as in drizzlepac (which then only changes the background
    rms it logs); a negative one scales it by its absolute value.
    """
    base = alignment_pars(instrument, detector)
    if not isinstance(block, Mapping):
        raise InvalidParameterError(f"{source}: the alignment block must be a JSON object, "
                                    f"got {type(block).__name__}")
    _check_names(source, block)
    read = _Reader(source)
    merged: dict = {}
    for section in _MERGE_ORDER:
        merged.update(block.get(section, {}))
    values: dict = {}

    def take(key, field_name, convert):
        if key in merged:
            values[field_name] = convert(key, merged[key])

    take("box_size", "box_size", lambda k, v: read.integer(k, v, 1))
    take("win_size", "win_size", lambda k, v: read.integer(k, v, 1))
    take("nsigma", "nsigma", read.number)
    take("fwhmpsf", "fwhmpsf", read.number)
    take("classify", "classify", read.boolean)
    take("bkg_estimator", "bkg_estimator", lambda k, v: read.choice(k, v, BKG_ESTIMATORS))
    take("rms_estimator", "rms_estimator", lambda k, v: read.choice(k, v, RMS_ESTIMATORS))
    if "threshold" in merged:
        threshold = merged["threshold"]
        if threshold is not None and (isinstance(threshold, bool)
                                      or not isinstance(threshold, (int, float))
                                      or not math.isfinite(threshold)):
            read.fail("threshold", f"must be null or a finite number, got {threshold!r}")
        values["threshold_scale"] = \
            -float(threshold) if threshold is not None and threshold < 0 else 1.0
    take("MAX_SOURCES_PER_CHIP", "max_sources_per_chip", lambda k, v: read.integer(k, v, 1))
    take("MIN_FIT_MATCHES", "min_fit_matches", lambda k, v: read.integer(k, v, 1))
    take("MIN_CATALOG_THRESHOLD", "min_catalog_threshold", lambda k, v: read.integer(k, v, 0))
    take("MIN_OBSERVABLE_THRESHOLD", "min_observable_threshold",
         lambda k, v: read.integer(k, v, 0))
    take("MAX_FIT_RMS", "max_fit_rms", read.number)
    take("MAX_FIT_LIMIT", "max_fit_limit", read.number)
    take("mosaic_fitgeom_list", "fitgeom_min_matches", read.geometries)
    take("mosaic_relgeom_list", "relgeom_min_matches", read.geometries)
    for key, allowed in (("centering_mode", ("starfind",)), ("deblend", (False,)),
                         ("MAS_TO_ARCSEC", (1000,))):
        if key in merged and (isinstance(merged[key], bool) != isinstance(allowed[0], bool)
                              or merged[key] not in allowed):
            read.fail(key, f"hapgpu implements only {allowed[0]!r}, got {merged[key]!r}")
    if "GOOD_FIT_QUALITY_VALUES" in merged and \
            sorted(merged["GOOD_FIT_QUALITY_VALUES"] or ()) != [1, 2, 3, 4]:
        read.fail("GOOD_FIT_QUALITY_VALUES", "hapgpu implements only [1, 2, 3, 4], got "
                  f"{merged['GOOD_FIT_QUALITY_VALUES']!r}")

    if "mosaic_fit_list" in merged:
        names = merged["mosaic_fit_list"]
        known = {f"match_{m}_fit": m for m in FIT_METHODS}
        if not isinstance(names, (list, tuple)) or not names:
            read.fail("mosaic_fit_list", f"must list fit methods, got {names!r}")
        for name in names:
            read.choice("mosaic_fit_list", name, tuple(known))
        values["fit_methods"] = tuple(known[n] for n in names)

    geometries = values.get("fitgeom_min_matches", base.fitgeom_min_matches)
    defaults = base.match
    match = {}
    for method in FIT_METHODS:
        section = f"match_{method}_fit"
        given = block.get(section, {})
        default = defaults[method]

        def get(key, convert, fallback, section=section, given=given):
            return convert(f"{section}.{key}", given[key]) if key in given else fallback

        fitgeom = get("fitgeom", lambda k, v: read.choice(k, v, FIT_GEOMETRIES),
                      default.fitgeom or base.fitgeom)
        if fitgeom not in geometries:
            read.fail(f"{section}.fitgeom", f"{fitgeom!r} is not in mosaic_fitgeom_list "
                      f"({', '.join(geometries)})")
        match[method] = MatchPars(
            searchrad=get("searchrad", read.number, default.searchrad),
            separation=get("separation", lambda k, v: read.number(k, v, positive=False),
                           default.separation),
            tolerance=get("tolerance", read.number, default.tolerance),
            use2dhist=get("use2dhist", read.boolean, default.use2dhist),
            fitgeom=fitgeom)
    values["match_pars"] = match
    return base.with_overrides(**values)
