"""runastrodriz final products and wrap-up (hap-pipeline.md §3.10).

The final drizzle of every product with the best WCS now in the exposures and the final
settings (§3.3), then the keywords (``DRIZCORR``, ``DRIZPARS``, ``S_REGION``, ``WCSTYPE<key>``),
the headerlet files, the manifest and the clean-up, as drizzlepac's ``runastrodriz.process``
does after its alignment stages. Every file is written under a temporary name and renamed
when complete; header updates go through a copy that replaces the file.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import warnings
from pathlib import Path

from .._fitsupdate import update_in_copy
from ..errors import OutputWriteError
from ._init import RunInputs
from ._pars import final_parameters

__all__ = [
    "SUB_DIRS",
    "clean_up",
    "final_drizzle",
    "finish_product",
    "manifest_entries",
    "set_drizcorr",
    "update_wcstype",
    "write_headerlets",
    "write_manifest",
]

log = logging.getLogger(__name__)

#: Subfolders the run may leave behind, removed at the end unless debugging (``<root>_apriori``
#: and ``<root>_aposteriori`` are added per run).
SUB_DIRS = ("OrIg_files", "pipeline-default")


def _quiet_update(path: Path, work):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return update_in_copy(path, work, prefix=".hapgpu-rad-")


def final_drizzle(run: RunInputs, *, in_memory: bool = True, num_cores=None, backend=None,
                  visit=None) -> list:
    """Drizzle every product of the run with the final settings (§3.10 step 1, §3.3).

    Parameters
    ----------
    run : RunInputs
    in_memory : bool
        The CLI's ``-i`` (no effect on hapgpu's drizzle, recorded in the parameters).
    num_cores : int, optional
    backend : str or hapgpu.backend.Backend, optional
    visit : hapgpu.astrodrizzle.VisitCache, optional
        Inputs already read by the verification drizzles (reused while a file is unchanged).

    Returns
    -------
    list of pathlib.Path
        The products (``<product>_drz.fits`` / ``_drc.fits``), lower-case names, keywords set
        (:func:`finish_product`).
    """
    from ..astrodrizzle import astrodrizzle

    products = []
    for item in run.inlist:
        pars = final_parameters(item.files, in_memory=in_memory, num_cores=num_cores)
        log.info("final drizzle of %s into %s", ", ".join(Path(f).name for f in item.files),
                 item.product.name)
        result = astrodrizzle(list(item.files), item.output, pars=pars, backend=backend,
                              visit=visit)
        products.append(finish_product(result.product, run.trailer.name))
    return products


def finish_product(product, trailer_name: str) -> Path:
    """Give a product its pipeline keywords and a lower-case name (§3.10 steps 1-2).

    ``DRIZPARS`` = the trailer's name and ``DRIZCORR = COMPLETE`` in the primary header,
    ``S_REGION`` traced from the data of every SCI extension (hapgpu.svm's
    ``compute_sregion``); the file is renamed to lower case when its name is not.

    Returns
    -------
    pathlib.Path
        The product's (lower-case) path.
    """
    from ..svm._headers import compute_sregion

    product = Path(product)

    def work(hdul):
        hdul[0].header["DRIZPARS"] = (trailer_name, "Drizzle parameter and trailer file")
        hdul[0].header["DRIZCORR"] = ("COMPLETE", "Drizzle processing")
        compute_sregion(hdul, path=product)

    _quiet_update(product, work)
    lower = product.with_name(product.name.lower())
    if lower != product:
        os.replace(product, lower)
    return lower


def set_drizcorr(path, value: str = "COMPLETE") -> None:
    """Set ``DRIZCORR`` in the primary header of ``path`` (the run's input product)."""
    path = Path(path)

    def work(hdul):
        hdul[0].header["DRIZCORR"] = (value, "Drizzle processing")

    _quiet_update(path, work)


def update_wcstype(files) -> None:
    """Set ``WCSTYPE<key>`` for every WCS (primary and alternates) of every SCI extension
    (§3.10 step 4): the type interpreted from ``WCSNAME<key>``; a missing ``WCSNAME<key>`` is
    first set to ``OPUS``."""
    from stwcs.wcsutil import altwcs

    from ..align._update import interpret_wcsname_type

    for path in files:
        path = Path(path)

        def work(hdul):
            for hdu in hdul:
                if hdu.name != "SCI":
                    continue
                header = hdu.header
                for key in altwcs.wcskeys(header):
                    suffix = key.strip()
                    name_kw, type_kw = f"WCSNAME{suffix}", f"WCSTYPE{suffix}"
                    if name_kw not in header:
                        header[name_kw] = "OPUS"
                    header[type_kw] = interpret_wcsname_type(str(header[name_kw]))

        _quiet_update(path, work)


def _rootname(path: Path) -> str:
    """``isim01a0q_flc.fits`` -> ``isim01a0q`` (stsci.tools ``buildNewRootname``)."""
    name = path.name
    return name[:name.find("_")] if "_" in name else name.split(".")[0]


def write_headerlets(calfiles) -> list:
    """Write the primary WCS of each exposure as a headerlet file (§3.10 step 5).

    For each exposure without ``<rootname>_flt_hlet.fits`` (which the alignment may have
    written), that file is written: HDRNAME ``<file name without .fits>_hlet.fits``, author
    ``OPUS``, description the WCSTYPE of the primary WCSNAME (stwcs ``create_headerlet``;
    drizzlepac's ``write_headerlet(output='flt')`` names the file the same way). Written under
    a temporary name and renamed.

    Returns
    -------
    list of pathlib.Path
        The headerlet files written.
    """
    from astropy.io import fits
    from stwcs.wcsutil import headerlet

    from ..align._update import interpret_wcsname_type
    from ..svm._grism import _no_headerlet_log

    written = []
    for path in calfiles:
        path = Path(path)
        target = path.with_name(f"{_rootname(path)}_flt_hlet.fits")
        if target.exists():
            log.debug("%s exists; not replaced", target.name)
            continue
        try:
            wcsname = str(fits.getval(path, "WCSNAME", ext=("SCI", 1)))
        except KeyError:
            log.warning("%s: SCI,1 has no WCSNAME; headerlet not written", path.name)
            continue
        temp = target.with_name(f".{target.name}.tmp.fits")
        try:
            with warnings.catch_warnings(), _no_headerlet_log():
                warnings.simplefilter("ignore")
                hlet = headerlet.create_headerlet(
                    str(path), hdrname=path.name.replace(".fits", "") + "_hlet.fits",
                    wcskey="PRIMARY", author="OPUS", descrip=interpret_wcsname_type(wcsname),
                    logging=False)
                hlet.writeto(temp, overwrite=True)
            os.replace(temp, target)
        except (ValueError, KeyError) as exc:  # stwcs: no valid WCS (drizzlepac skips the file)
            log.warning("%s: headerlet not created (%s)", path.name, exc)
            continue
        except OSError as exc:
            raise OutputWriteError(f"{target}: cannot write the headerlet ({exc})") from None
        finally:
            if temp.exists():
                temp.unlink()
        log.info("wrote headerlet %s (%s)", target.name, wcsname)
        written.append(target)
    return written


def manifest_entries(products, run: RunInputs) -> list:
    """The manifest's file names (§3.10 step 6), in drizzlepac's order: the products, the
    FLT/FLC files, per exposure the ``<fname>_??????_hlet.fits`` files (new solutions written
    by updatewcs; none offline unless present) and the final headerlet, then the trailer."""
    names = [Path(p).name for p in products]
    names += [Path(f).name for f in run.all_files]
    for path in run.calfiles:
        path = Path(path)
        stem = str(path.with_name(path.name.replace(".fits", "")))
        names += [Path(p).name for p in sorted(glob.glob(glob.escape(stem) + "_??????_hlet.fits"))]
        final = path.with_name(f"{_rootname(path)}_flt_hlet.fits")
        if final.exists() and final.name not in names:
            names.append(final.name)
    names.append(run.trailer.name)
    return names


def write_manifest(path, entries) -> Path:
    """Write the manifest (one name per line), under a temporary name then renamed."""
    path = Path(path)
    temp = path.with_name(f".{path.name}.tmp")
    try:
        temp.write_text("".join(f"{e}\n" for e in entries), encoding="utf-8")
        os.replace(temp, path)
    except OSError as exc:
        if temp.exists():
            temp.unlink()
        raise OutputWriteError(f"{path}: cannot write the manifest ({exc})") from None
    log.info("wrote manifest %s (%d files)", path.name, len(entries))
    return path


def clean_up(workdir: Path, root: str, *, debug: bool = False, temporaries=(), run=None) -> None:
    """Remove what the run no longer needs (§3.10 steps 3 and 7).

    Always: the temporary association copies, ``<root>_align.log`` and, for ``run``'s
    exposures and products, the intermediate images a verification drizzle leaves in the
    working folder (``<rootname>_single_sci/_single_wht.fits``, ``<rootname>_sci?_blt.fits``,
    ``<product>_med.fits``, ``<product>_*_staticMask.fits``: what the final AstroDrizzle's
    ``clean=True`` removes). Unless
    ``debug``: the subfolders (:data:`SUB_DIRS`, ``<root>_apriori``, ``<root>_aposteriori``),
    ``<root>_pydriz*`` logs and the ``*mask*.fits`` files of the working folder.
    """
    workdir = Path(workdir)
    for path in temporaries:
        if path is not None and Path(path).exists():
            Path(path).unlink()
    if run is not None:
        patterns = []
        for path in run.all_files:
            stem = glob.escape(_rootname(Path(path)))
            patterns += [f"{stem}_single_sci.fits", f"{stem}_single_wht.fits", f"{stem}_sci?_blt.fits"]
        product = glob.escape(run.product_root)
        patterns += [f"{product}_med.fits", f"{product}_*_staticMask.fits"]
        for pattern in patterns:
            for name in glob.glob(str(workdir / pattern)):
                os.remove(name)
    align_log = workdir / f"{root}_align.log"
    if align_log.exists():
        align_log.unlink()
    if debug:
        return
    for name in SUB_DIRS + (f"{root}_apriori", f"{root}_aposteriori"):
        folder = workdir / name
        if folder.is_dir():
            try:
                shutil.rmtree(folder)
            except OSError as exc:
                log.warning("unable to remove %s (%s); left for the caller", folder, exc)
    for pattern in (f"{glob.escape(root)}_pydriz*", "*mask*.fits"):
        for name in glob.glob(str(workdir / pattern)):
            try:
                os.remove(name)
            except OSError as exc:
                log.warning("unable to remove %s (%s)", name, exc)

