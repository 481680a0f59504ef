"""Astrometric alignment of HST exposures: HAP's alignment engine on the backends.

:func:`align_exposures` finds sources in every chip (HAP's recipe on ``cpu``, ``gpu`` or
``cudasim``), obtains a reference catalogue (a local file, the STScI catalog web service, or
none), cross-matches and fits with tweakwcs, grades each fit 1-5 and writes the accepted
solution into the exposures with HST's WCSNAME and headerlet conventions::

    from hapgpu.align import align_exposures

    result = align_exposures(["a_flc.fits", "b_flc.fits"], refcat="refcat.ecsv")
    for exp in result.exposures:
        print(exp.filename, exp.status, exp.wcsname, exp.rms_ra, exp.rms_dec,
              exp.n_matches, exp.fit_quality)

Command line: ``hapgpu align FILES... [--refcat FILE|URL] [--catalogs GAIAeDR3,GSC242,2MASS]
[--fit-label REL|IMG|SVM|MVM] [--no-update] [--table OUT.ecsv]``.
"""

from ._engine import (
    DEFAULT_CATALOGS,
    FIT_LABELS,
    AlignmentResult,
    AlignStatus,
    ExposureAlignment,
    FitAttempt,
    align_exposures,
    write_result_table,
)
from ._fit import FitQuality, determine_fit_quality, interpret_fit_rms, perform_fit
from ._pars import AlignmentPars, MatchPars, alignment_pars, alignment_pars_from_hap
from ._refcat import (
    CatalogProvider,
    FileCatalog,
    ServiceCatalog,
    TableCatalog,
    apply_proper_motion,
    make_provider,
)
from ._sources import (
    ExposureSources,
    find_alignment_sources,
    find_exposure_sources,
    refine_centroids,
)
from ._update import fit_wcsname, interpret_wcsname_type, write_alignment

__all__ = [
    "DEFAULT_CATALOGS",
    "FIT_LABELS",
    "AlignStatus",
    "AlignmentPars",
    "AlignmentResult",
    "CatalogProvider",
    "ExposureAlignment",
    "ExposureSources",
    "FileCatalog",
    "FitAttempt",
    "FitQuality",
    "MatchPars",
    "ServiceCatalog",
    "TableCatalog",
    "align_exposures",
    "alignment_pars",
    "alignment_pars_from_hap",
    "apply_proper_motion",
    "determine_fit_quality",
    "find_alignment_sources",
    "find_exposure_sources",
    "fit_wcsname",
    "interpret_fit_rms",
    "interpret_wcsname_type",
    "make_provider",
    "perform_fit",
    "refine_centroids",
    "write_alignment",
    "write_result_table",
]
