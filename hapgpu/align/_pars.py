"""Alignment parameters per instrument and detector.

The values are those of drizzlepac's SVM parameter files
``pars/hap_pars/svm_parameters/<inst>/<det>/<inst>_<det>_alignment_all.json`` (drizzlepac 3.11),
which ``align.perform_align`` (runastrodriz, §3.8 of the HAP specification) and
``HAPProduct.align_to_gaia`` (SVM, §1.8) both read. Where the ``general``, ``run_align`` and
``determine_fit_quality`` blocks disagree, the value drizzlepac's code actually uses is kept
(noted per field).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..errors import InvalidInputError

__all__ = ["FIT_METHODS", "AlignmentPars", "MatchPars", "alignment_pars"]

#: Cross-match/fit methods in the order drizzlepac tries them.
FIT_METHODS = ("relative", "2dhist", "default")


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
    """

    searchrad: float
    separation: float
    tolerance: float
    use2dhist: bool


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
        ``SExtractorBackground`` or ``MedianBackground``.
    fwhmpsf : float
        Default PSF FWHM, arcsec (0.13).
    classify : bool
        Single-image cosmic-ray classification and removal before source finding.
    max_sources_per_chip : int
        ``MAX_SOURCES_PER_CHIP`` (250; 500 for ACS/WFC).
    match : dict of str to MatchPars
        Per fit method (``relative``, ``2dhist``, ``default``).
    fitgeom : str
        Fit geometry, ``rscale`` in every shipped file.
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
        ``minobj`` and, in SVM mode, the minimum size of the reference catalogue.
    relgeom_min_matches : dict of str to int
        ``mosaic_relgeom_list``: the same for the relative fit (rscale 12).
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
        """:class:`MatchPars` per fit method."""
        return {
            "relative": MatchPars(125.0, 4.0, 2.0, True),
            "2dhist": MatchPars(self.searchrad_2dhist, 4.0, 2.0, True),
            "default": MatchPars(250.0, 0.1, 10.0, False),
        }

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
