"""Alignment of one detector's exposures inside an SVM run (hap-pipeline.md §1.8).

drizzlepac's ``run_align_to_gaia`` gathers every direct exposure of the detector (ramp and
quad filters included) into one "metawcs" pseudo-product and aligns them together with the
total product's alignment parameters: catalogues in the order of ``mosaic_catalog_list``
(GAIAeDR3, GSC242, 2MASS), fit methods relative (dropped for one exposure), 2dhist, default,
``rscale`` geometry, consistency check off, the first fit of quality 1-4 wins. The accepted fit
is written into the renamed inputs with ``WCSNAME = <base>-FIT_SVM_<catalogue>`` and a headerlet
file ``<exposure product>_hlet.fits`` per exposure. Any failure (no catalogue, too few stars or
sources, no acceptable fit, an error while fitting) is logged and every WCS is kept.

The engine is :func:`hapgpu.align.align_exposures` with ``fit_label="SVM"``; this module
chooses its inputs, turns the total's alignment block (shipped or from a custom parameter
file) into its :class:`~hapgpu.align.AlignmentPars`
(:func:`hapgpu.align.alignment_pars_from_hap`) and reports the headerlet files for the manifest.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import HapGpuError

__all__ = ["align_visit", "mosaic_catalog_list"]

log = logging.getLogger(__name__)

#: drizzlepac's default catalogue order, used when the alignment block names none.
_DEFAULT_CATALOGS = ("GAIAeDR3", "GSC242", "2MASS")


def mosaic_catalog_list(alignment: dict) -> list[str]:
    """Catalogues to try, from a HAP alignment block (``run_align.mosaic_catalog_list``).

    Parameters
    ----------
    alignment : dict
        The total product's alignment parameters (:attr:`hapgpu.svm._config.HapConfig.alignment`).

    Returns
    -------
    list of str
        Catalogue names, as written in the block (they appear so in WCSNAME).
    """
    run_align = alignment.get("run_align", {}) if isinstance(alignment, dict) else {}
    names = run_align.get("mosaic_catalog_list") or list(_DEFAULT_CATALOGS)
    return [str(n) for n in names]


def align_visit(exposures, paths, alignment: dict, *, refcat=None, backend=None,
                timeout: float = 10.0, source: str | None = None) -> list[str]:
    """Align the direct exposures of one detector and write the fit into their renamed copies.

    Parameters
    ----------
    exposures : sequence of hapgpu.svm._tree.ExposureProduct
        Every direct exposure of the detector, in tree order (ramp and quad included).
    paths : sequence of pathlib.Path
        Their renamed copies (updated in place when a fit is accepted).
    alignment : dict
        The total product's alignment parameters (sections ``run_align``, ``general``,
        ``generate_source_catalogs``, ``determine_fit_quality``, ``match_*_fit``; see
        :func:`hapgpu.align.alignment_pars_from_hap`): they set the source finding, the fit
        methods, geometries and match counts, and the fit-quality limits.
    refcat : None, str or path-like
        Reference catalogue: a local file, a catalogue-service URL, or None for
        ``$ASTROMETRIC_CATALOG_URL`` (see :func:`hapgpu.align.align_exposures`).
    backend : hapgpu.backend.Backend or str, optional
        Backend of the source finding.
    timeout : float
        Seconds allowed per catalogue-service request.
    source : str, optional
        Where ``alignment`` came from (a custom parameter file), for error messages.

    Returns
    -------
    list of str
        Headerlet file names written (empty when no fit was accepted), in exposure order.

    Raises
    ------
    InvalidParameterError
        An alignment block with an unknown name or a bad value (checked before anything is
        aligned; the message names ``source`` and the parameter).

    Notes
    -----
    As drizzlepac, an error inside the alignment is logged and leaves every WCS unchanged;
    only a backend that cannot run propagates (hapgpu's
    :class:`~hapgpu.errors.BackendUnavailableError`), and a bad parameter block, which
    drizzlepac would also stop on.
    """
    from ..align import AlignStatus, align_exposures, alignment_pars_from_hap
    from ..errors import BackendUnavailableError

    exposures = list(exposures)
    paths = [str(p) for p in paths]
    if not exposures:
        return []
    first = exposures[0]
    where = source or f"alignment parameters of {first.instrument}/{first.detector}"
    pars = alignment_pars_from_hap(alignment, first.instrument, first.detector, source=where)
    catalogs = mosaic_catalog_list(alignment)
    # headerlet files beside the renamed copies (the staging folder), never in the cwd
    headerlets = {path: str(Path(path).with_name(exposure.headerlet_filename))
                  for exposure, path in zip(exposures, paths)}
    log.info("aligning %d exposure(s) of %s/%s to %s (fit label SVM)", len(exposures),
             exposures[0].instrument, exposures[0].detector, ", ".join(catalogs))
    try:
        result = align_exposures(paths, refcat=refcat, catalogs=catalogs, fit_label="SVM",
                                 update=True, backend=backend, headerlet_files=headerlets,
                                 timeout=timeout, pars=pars)
    except BackendUnavailableError:
        raise
    except (HapGpuError, OSError, ValueError, RuntimeError) as exc:
        log.warning("alignment failed (%s: %s); the exposures keep their WCS", type(exc).__name__, exc)
        return []
    written = []
    for item in result.exposures:
        if item.status is AlignStatus.ALIGNED:
            log.info("%s: %s (quality %d, %d matches)", item.filename, item.wcsname,
                     item.fit_quality, item.n_matches)
            if item.headerlet_file:
                written.append(str(item.headerlet_file))
    return [Path(name).name for name in written]
