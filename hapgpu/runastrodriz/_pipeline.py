"""``hapgpu runastrodriz``: the calibration pipeline's drizzle step, offline
(hap-pipeline.md §3; drizzlepac ``runastrodriz.process``).

For one association or singleton:

1. initialisation (§3.1): trailer, inputs, DRIZCORR, S_REGION, working folder, switches;
2. pipeline-default WCS (§3.2), SKYCELL, optional guiding check, good-image selection;
3. drizzle parameters (§3.3);
4. verification of the pipeline-default WCS (§3.4), then the a priori stage (§3.7) and the a
   posteriori stage (§3.8), each verified; the WCS of the last verified stage stays in the
   files;
5. final products and wrap-up (§3.10).

Only :func:`process` talks to the user: it returns drizzlepac's exit status and logs errors as
one line naming the file; the stages raise hapgpu's typed exceptions.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ..astrodrizzle import VisitCache
from ..errors import HapGpuError, InvalidInputError
from ._init import (
    RunInputs,
    Switches,
    add_skycell,
    add_sregion,
    apply_pipeline_default,
    prepare_inputs,
    read_drizcorr,
    read_switches,
    select_good_images,
    trailer_logging,
    trailer_root,
    working_directory,
    write_pipeline_asn,
)
from ._pars import exposure_times, focus_parameters, verification_parameters
from ._products import (
    clean_up,
    final_drizzle,
    manifest_entries,
    set_drizcorr,
    update_wcstype,
    write_headerlets,
    write_manifest,
)

__all__ = ["EXIT_ERROR", "EXIT_NO_VIABLE_DATA", "EXIT_OK", "process"]

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_ERROR = 1
#: drizzlepac's ``Ret_code.NO_VIABLE_DATA``.
EXIT_NO_VIABLE_DATA = 65

#: Good bits of the pipeline-default verification: drizzlepac does not pass the detector's
#: value there, so ``verify_alignment``'s default (512) applies (used only in no-CR mode).
DEFAULT_MODE_GOOD_BITS = 512

_MARKER = "*** hapgpu runastrodriz ***"


def process(input, force=False, newpath=None, num_cores=None, inmemory=True, headerlets=True,
            align_to_gaia=True, force_alignment=False, do_verify_guiding=False, debug=False,
            make_manifest=False, refcat=None, backend=None) -> int:
    """Drizzle one association or exposure the way the calibration pipeline does.

    Parameters
    ----------
    input : str or os.PathLike
        ``<asn>_asn.fits``, ``<rootname>_raw.fits`` or a calibrated exposure
        (``_flt.fits``/``_flc.fits``); the related files lie in the same folder.
    force : bool
        Drizzle whatever DRIZCORR says (CLI ``-f``); with ``do_verify_guiding``, keep
        exposures with bad guiding.
    newpath : str or os.PathLike, optional
        Work in ``<newpath>/<rootname>`` (files copied there, everything moved back at the end).
    num_cores : int, optional
        Recorded in the AstroDrizzle parameters (CLI ``-n``); hapgpu's own parallelism is the
        backend's.
    inmemory : bool
        AstroDrizzle's ``in_memory`` for the final product (CLI ``-i``; no effect on hapgpu,
        which always works in memory).
    headerlets : bool
        Write ``<rootname>_flt_hlet.fits`` for each exposure (CLI ``-b`` turns it off).
    align_to_gaia : bool
        Run the a posteriori stage (CLI ``-g`` turns it off);
        ``ASTROMETRY_COMPUTE_APOSTERIORI`` overrides it.
    force_alignment : bool
        Keep aligning when the guiding check finds a bad exposure (CLI ``-a``).
    do_verify_guiding : bool
        Check the exposures for bad guiding first (CLI ``-v``).
    debug : bool
        Keep the stage subfolders and the mask files; DEBUG lines in the trailer (CLI ``-d``).
    make_manifest : bool
        Write ``<root>_manifest.txt`` (CLI ``-m``).
    refcat : str or os.PathLike, optional
        Reference catalogue of the a posteriori fit: a local ECSV/FITS/CSV file or a catalogue
        service URL (default ``$ASTROMETRIC_CATALOG_URL``).
    backend : {"cpu", "gpu", "cudasim", "auto"} or hapgpu.backend.Backend, optional
        Compute backend, resolved once for the run (None reads ``HAPGPU_BACKEND``).

    Returns
    -------
    int
        0 success (also when DRIZCORR says not to drizzle: the trailer says "skipped"), 1 an
        error (logged as one line naming the file and the problem), 65 no calibrated exposure.

    Notes
    -----
    Every ``hapgpu`` log line of the run also goes to the trailer ``<root>.tra`` beside the
    input (appended). Environment switches (case-insensitive ``on/yes/true``,
    ``off/no/false``): ``ASTROMETRY_COMPUTE_APOSTERIORI`` (default ``align_to_gaia``),
    ``ASTROMETRY_APPLY_APRIORI`` (default on), ``PIPELINE_RESET_IDCTAB`` (default off: the
    pipeline-default WCS of the RAW file's IDCTAB), ``PIPELINE_QUALITY_TESTING`` (default
    off; hapgpu has no QA report and says so).
    """
    input_path = Path(input)
    root = trailer_root(input_path.name)
    try:
        with working_directory(input_path, newpath) as workdir, \
                trailer_logging(workdir / f"{root}.tra", debug=debug):
            try:
                return _process(input_path, workdir, root, force=force, num_cores=num_cores,
                                inmemory=inmemory, headerlets=headerlets,
                                align_to_gaia=align_to_gaia, force_alignment=force_alignment,
                                do_verify_guiding=do_verify_guiding, debug=debug,
                                make_manifest=make_manifest, refcat=refcat, backend=backend)
            except (HapGpuError, OSError) as exc:  # logged while the trailer is open
                log.error("%s", exc)
                log.error("cannot run astrodrizzle on %s", input_path.name)
                return EXIT_ERROR
    except (HapGpuError, OSError) as exc:  # the working folder or the trailer itself
        log.error("%s", exc)
        return EXIT_ERROR


def _instrument(path: Path) -> tuple[str, str]:
    from astropy.io import fits

    try:
        header = fits.getheader(path, 0)
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the primary header ({exc})") from None
    inst = str(header.get("INSTRUME", "")).strip().upper()
    det = str(header.get("DETECTOR", "")).strip().upper()
    if not inst or not det:
        raise InvalidInputError(f"{path}: primary header lacks INSTRUME or DETECTOR")
    if inst == "WFPC2":
        raise InvalidInputError(f"{path}: WFPC2 data (c0m/d0m conversion, CRDS bestrefs, photeq) "
                                "are not supported by hapgpu runastrodriz")
    return inst, det


def _raw_idctab(run: RunInputs) -> str | None:
    """IDCTAB of the first member's RAW file (``PIPELINE_RESET_IDCTAB``)."""
    from astropy.io import fits

    raw = run.workdir / f"{run.member}_raw.fits"
    if not raw.is_file():
        raise InvalidInputError(f"{raw}: RAW file not found; PIPELINE_RESET_IDCTAB needs its IDCTAB")
    try:
        return fits.getheader(raw, 0).get("IDCTAB")
    except OSError as exc:
        raise InvalidInputError(f"{raw}: cannot read the primary header ({exc})") from None


def _skipped(input_name: str, dcorr) -> None:
    log.info("astrodrizzle skipped ")
    log.info(_MARKER)
    log.info("%s: astrodrizzle processing not requested for %s (DRIZCORR = %s).",
             time.strftime("%H:%M:%S (%d-%b-%Y)"), input_name, dcorr)
    log.info("       astrodrizzle will not be run at this time.")


def _check_guiding(run: RunInputs, force: bool, force_alignment: bool,
                   switches: Switches) -> Switches:
    """§3.2 step 3: drop exposures with bad guiding (unless ``force``) and turn off alignment
    (unless ``force_alignment``)."""
    from ..mvm._guiding import verify_guiding

    bad = False
    for flt in list(run.calfiles):
        flc = flt.with_name(flt.name.replace("_flt.fits", "_flc.fits"))
        image = flc if flc.is_file() else flt
        if not verify_guiding(image):
            continue
        log.warning("%s: bad guiding (sources trailed)", image.name)
        bad = True
        if not force:
            run.calfiles.remove(flt)
            if flc in run.calfiles_flc:
                run.calfiles_flc.remove(flc)
            log.warning("%s left out of the products (use -f to keep it)", flt.name)
    if bad and not force:
        from ._init import DrizzleInput

        output = run.inlist[0].output if run.inlist else str(run.workdir / run.product_root)
        run.inlist = [DrizzleInput(output, tuple(run.calfiles))] if run.calfiles else []
        if run.calfiles_flc:
            run.inlist.append(DrizzleInput(output, tuple(run.calfiles_flc)))
    if bad and not force_alignment:
        log.warning("alignment turned off after the bad-guiding result (use -a to align anyway)")
        switches = Switches(False, False, switches.reset_idctab, switches.quality_testing)
    return switches


def _log_quality(stage: str, result) -> None:
    if result is None:
        log.info("%s alignment: no solution", stage)
        return
    quality = {0: "SUCCESSFUL", 1: "potentially COMPROMISED with bad focus",
               2: "potentially COMPROMISED"}.get(result.quality, "FAILED")
    log.info("%s alignment %s (verified %s, quality %d)", stage, quality, result.verified,
             result.quality)


def _active_wcsname(path) -> str:
    from astropy.io import fits

    return str(fits.getval(path, "WCSNAME", ext=("SCI", 1)))


def _align_stages(run: RunInputs, switches: Switches, pars: dict, focus, *, force_alignment: bool,
                  refcat, backend, visit):
    """§3.4-§3.8: the verified stages; returns the verification whose WCS the files keep."""
    from ._apriori import apply_apriori, restore_pipeline_default
    from ._verify import verify_alignment

    common = {"root": run.root, "workdir": run.workdir, "drizzle_pars": pars,
              "focus_sigma": focus.sigma, "backend": backend, "visit": visit}
    best = None
    if switches.apply_apriori or force_alignment or switches.compute_aposteriori:
        log.info("Starting alignment with bad-pixel identification")
        log.info(_MARKER)
        best = verify_alignment(run.inlist, run.calfiles, run.calfiles_flc,
                                mode="default-pipeline", find_crs=True,
                                good_bits=DEFAULT_MODE_GOOD_BITS, **common)
        _log_quality("pipeline-default", best)
    if switches.apply_apriori:
        log.info("Starting alignment with a priori solutions")
        log.info(_MARKER)
        find_crs = not best.verified if best is not None else False
        for files in (run.calfiles, run.calfiles_flc):
            if files:
                name = apply_apriori(files)
                log.info("a priori WCS of %s: %s", ", ".join(Path(f).name for f in files),
                         name or "none (pipeline default kept)")
        try:
            apriori = verify_alignment(run.inlist, run.calfiles, run.calfiles_flc, mode="apriori",
                                       find_crs=find_crs, good_bits=focus.good_bits, **common)
        except HapGpuError as exc:
            log.warning("a priori verification failed: %s", exc)
            apriori = None
        if apriori is None or not apriori.verified:
            log.info("resetting the WCS to the pipeline-default solutions")
            for files in (run.calfiles, run.calfiles_flc):
                if files:
                    restore_pipeline_default(files)
        else:
            best = apriori
        _log_quality("a priori", apriori)
    if switches.compute_aposteriori:
        log.info("Starting a posteriori alignment")
        log.info(_MARKER)
        find_crs = not best.verified if best is not None else False
        aposteriori = verify_alignment(run.inlist, run.calfiles, run.calfiles_flc,
                                       mode="aposteriori", find_crs=find_crs,
                                       good_bits=focus.good_bits, refcat=refcat, **common)
        if aposteriori is not None:
            best = aposteriori
        _log_quality("a posteriori", aposteriori)
    return best


def _process(input_path: Path, workdir: Path, root: str, *, force, num_cores, inmemory, headerlets,
             align_to_gaia, force_alignment, do_verify_guiding, debug, make_manifest, refcat,
             backend) -> int:
    from ..backend import resolve_backend

    started = time.perf_counter()
    switches = read_switches(align_to_gaia)
    log.info("runastrodriz of %s in %s (a priori %s, a posteriori %s)", input_path.name, workdir,
             "on" if switches.apply_apriori else "off",
             "on" if switches.compute_aposteriori else "off")
    run = prepare_inputs(input_path, workdir)
    if not run.calfiles:
        log.error("%s: no calibrated exposure (FLT/FLC) found; no valid data", input_path.name)
        return EXIT_NO_VIABLE_DATA
    inst, det = _instrument(run.calfiles[0])
    temporaries = []
    if run.is_asn:
        run.pipeline_asn = write_pipeline_asn(run.input)
        temporaries.append(run.pipeline_asn)
    try:
        if force:
            dcorr = "PERFORM"
        else:
            dcorr = read_drizcorr(workdir / f"{run.member}_raw.fits", run.calfiles[0])
        idctab = _raw_idctab(run) if switches.reset_idctab else None
        add_sregion(run.all_files)
        products = []
        if dcorr == "PERFORM":
            backend = resolve_backend(backend)
            products = _drizzle(run, inst, det, switches, idctab=idctab, force=force,
                                num_cores=num_cores, inmemory=inmemory,
                                force_alignment=force_alignment,
                                do_verify_guiding=do_verify_guiding, refcat=refcat, backend=backend)
            if products is None:
                return EXIT_NO_VIABLE_DATA
        else:
            if switches.reset_idctab:
                apply_pipeline_default(run.all_files, idctab)
            _skipped(input_path.name, dcorr)
    finally:
        for path in temporaries:  # §3.10 step 3, also after an error
            if path.exists():
                path.unlink()
    update_wcstype(run.all_files)
    if headerlets:
        write_headerlets(run.calfiles)
    if make_manifest:
        write_manifest(run.manifest, manifest_entries(products, run))
    clean_up(workdir, root, debug=debug, run=run)
    if switches.quality_testing and dcorr == "PERFORM":
        log.warning("PIPELINE_QUALITY_TESTING is set, but hapgpu has no quality-analysis report "
                    "(drizzlepac quality_analysis.run_all); none written")
    log.info("%s: finished processing %s in %.2f seconds", time.strftime("%H:%M:%S (%d-%b-%Y)"),
             input_path.name, time.perf_counter() - started)
    log.info("astrodrizzle completed")
    return EXIT_OK


def _drizzle(run: RunInputs, inst: str, det: str, switches: Switches, *, idctab, force, num_cores,
             inmemory, force_alignment, do_verify_guiding, refcat, backend):
    """§3.2-§3.10 step 2 for DRIZCORR = PERFORM; the products, or None when nothing can be
    drizzled (exit 65)."""
    apply_pipeline_default(run.all_files, idctab)
    add_skycell(run.all_files)
    if do_verify_guiding:
        switches = _check_guiding(run, force, force_alignment, switches)
    good = select_good_images(run.calfiles)
    if not good:
        if not run.calfiles:
            log.error("no valid data found in the input exposures")
            return None
        log.warning("no exposure has data (EXPTIME > 0 and NGOODPIX > 0); all are drizzled and "
                    "a posteriori alignment is turned off")
        good = list(run.calfiles)
        switches = Switches(False, switches.apply_apriori, switches.reset_idctab,
                            switches.quality_testing)
    focus = focus_parameters(inst, det)
    pars = verification_parameters(good, run.calfiles, num_cores=num_cores,
                                   exptimes=exposure_times(run.calfiles))
    # every drizzle of the run reads its inputs through one cache: a file drizzled again
    # unchanged (the CR-flagging and verification drizzles of a stage, the final drizzle) is
    # not read again, and the DQ flags and sky each drizzle writes update the cached copy
    visit = VisitCache()
    best = _align_stages(run, switches, pars, focus, force_alignment=force_alignment,
                         refcat=refcat, backend=backend, visit=visit)
    log.info("Creating final combined, corrected product based on best alignment (%s)",
             _active_wcsname(run.calfiles[0]))
    log.info(_MARKER)
    if best is not None:
        log.info("best verified alignment: quality %d", best.quality)
    products = final_drizzle(run, in_memory=inmemory, num_cores=num_cores, backend=backend,
                             visit=visit)
    set_drizcorr(run.input_product)
    return products
