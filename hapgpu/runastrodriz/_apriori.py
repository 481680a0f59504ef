"""A priori astrometry from the headerlets the files carry (hap-pipeline.md §3.7 and §4).

drizzlepac's a priori stage runs stwcs ``updatewcs(use_db=True)``, which asks the MAST
astrometry database for its solutions and attaches them as headerlets, then cleans and picks
among them. hapgpu works offline: FLT/FLC files retrieved from MAST already carry the
database's solutions as ``HDRLET`` extensions (``IDC_*``, ``*-GSC240``, ``*-HSC30``,
``*-FIT_*``), so the stage here starts from what the files hold:

1. :func:`confirm_aposteriori_hdrlets`: delete ``-FIT`` headerlets without a SIP distortion
   (``-SIP`` CTYPE1 and ``A_ORDER`` in their first SIPWCS header), with their alternate WCS.
2. :func:`verify_gaia_wcsnames`: after 2017-10-01 a WCSNAME without ``-`` gets ``-GSC240``;
   an active ``-FIT`` (a posteriori) solution is replaced by the a priori headerlet of highest
   priority, HSC > GSC > any, the newest IDCTAB winning among candidates; ``IDCSCALE`` is put
   back when the restored headerlet lacks it.
3. :func:`apply_apriori` runs :func:`database_choice` (a file left with the plain pipeline
   default gets its best attached a priori solution, as the database would make it primary),
   then both, and warns when ``CRVAL`` is more than 0.05 deg from ``RA_TARG``/``DEC_TARG``.

:func:`restore_pipeline_default` is the offline ``updatewcs(use_db=False)``: it makes the
``IDC_<idctab>`` solution the file already carries active again (§4 (a): the pipeline-default
WCS in the file is trusted; the distortion model cannot be recomputed without CRDS).

**IDCTAB dates offline.** drizzlepac ranks candidate headerlets by the ``DATE`` keyword of the
IDCTAB reference file each names (``fileutil.osfn``, so ``iref$``/``jref$``/``uref$`` must point
to the reference files). hapgpu reads the same keyword when the file can be found: ``$iref``
(etc., a folder), else ``$CRDS_PATH/references/hst/<instrument>/``. Without the reference file
the headerlet's own primary ``DATE`` (when the headerlet was made, so a newer distortion model
has a newer headerlet) stands in; the log says which was used. Both are ISO strings compared as
strings, as drizzlepac compares them.

Every file is updated in a temporary copy that then replaces it (:func:`hapgpu._fitsupdate.
update_in_copy`), so an interrupted run never leaves a half-written exposure.
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import warnings
from pathlib import Path

from astropy.io import fits

from .._fitsupdate import update_in_copy
from ..errors import InvalidInputError

__all__ = [
    "APRIORI_PRIORITY",
    "GSC240_DATE",
    "apply_apriori",
    "confirm_aposteriori_hdrlets",
    "database_choice",
    "idctab_date",
    "restore_pipeline_default",
    "verify_gaia_wcsnames",
]

log = logging.getLogger(__name__)

#: drizzlepac ``apriori_priority``: catalogue tags of a priori WCSNAMEs, best first; the empty
#: tag matches any name (the plain ``IDC_*`` solution).
APRIORI_PRIORITY = ("HSC", "GSC", "")
#: drizzlepac ``gsc240_date``: exposures after it were taken with GSC 2.4.0 guide stars.
GSC240_DATE = "2017-10-01"
#: Largest distance of CRVAL from the target before a warning (deg, drizzlepac's 0.05).
_TARGET_DISTANCE_DEG = 0.05
#: Reference-file folders of the IDCTAB prefixes (the ``iref$``-style environment variables).
_REFERENCE_INSTRUMENTS = {"iref": "wfc3", "jref": "acs", "uref": "wfpc2"}


def _sci_count(hdul, path) -> int:
    versions = [h.ver for h in hdul if h.name == "SCI"]
    if not versions:
        raise InvalidInputError(f"{path}: no SCI extension")
    return max(versions)


def _update(path, work, what: str):
    """``update_in_copy`` with FITS/stwcs warnings silenced (headers being rewritten)."""
    from ..svm._grism import _no_headerlet_log

    with warnings.catch_warnings(), _no_headerlet_log():
        warnings.simplefilter("ignore")
        return update_in_copy(path, work, prefix=f".hapgpu-{what}-")


def _hdrlet_records(hdul):
    """``(index, extver, WCSNAME, HDRNAME)`` of every HDRLET extension, in file order."""
    return [(i, hdu.ver, str(hdu.header.get("WCSNAME", "")), str(hdu.header.get("HDRNAME", "")))
            for i, hdu in enumerate(hdul) if hdu.name == "HDRLET"]


# ----------------------------------------------------------------------------- step 1
def confirm_aposteriori_hdrlets(files) -> list[str]:
    """Delete ``-FIT`` headerlets that carry no SIP distortion (drizzlepac
    ``confirm_aposteriori_hdrlets``).

    A headerlet whose WCSNAME contains ``-FIT`` is invalid when its first ``SIPWCS`` header has
    no ``-SIP`` in ``CTYPE1`` or no ``A_ORDER``. Each invalid headerlet is deleted, and the
    alternate WCS of the same name (on every SCI extension) with it.

    Parameters
    ----------
    files : sequence of str or os.PathLike
        FLT/FLC files, updated in place.

    Returns
    -------
    list of str
        ``"<file>: <WCSNAME>"`` of every headerlet deleted.

    Raises
    ------
    InvalidInputError
        A file cannot be read or written, or has no SCI extension.
    """
    from stwcs.wcsutil import altwcs

    removed = []
    for path in map(Path, files):
        def work(hdul, path=path):
            nsci = _sci_count(hdul, path)
            invalid = []
            for index, _, wcsname, _ in _hdrlet_records(hdul):
                if "-FIT" not in wcsname:
                    continue
                sipwcs = hdul[index].headerlet[1].header
                if "-SIP" not in str(sipwcs.get("CTYPE1", "")) or "A_ORDER" not in sipwcs:
                    key = altwcs.getKeyFromName(hdul["SCI", 1].header, wcsname)
                    invalid.append((index, wcsname, key.rstrip() if key is not None else None))
            if not invalid:
                return False
            for index, wcsname, key in reversed(invalid):
                del hdul[index]
                if key:
                    altwcs.deleteWCS(hdul, [("SCI", v) for v in range(1, nsci + 1)], wcskey=key)
                removed.append(f"{path.name}: {wcsname}")
                log.info("%s: a posteriori headerlet %s has no SIP distortion; deleted%s",
                         path.name, wcsname, f" with alternate WCS {key!r}" if key else "")
            return True

        _update(path, work, "confirm")
    return removed


# ----------------------------------------------------------------------------- step 2
def _reference_file(idctab: str, instrument: str) -> Path | None:
    """The IDCTAB reference file named ``iref$<name>`` when it can be found locally."""
    text = str(idctab).strip()
    if "$" not in text:
        return Path(text) if text and Path(text).is_file() else None
    prefix, name = text.split("$", 1)
    candidates = []
    folder = os.environ.get(prefix)
    if folder:
        candidates.append(Path(folder) / name)
    crds = os.environ.get("CRDS_PATH")
    if crds:
        inst = _REFERENCE_INSTRUMENTS.get(prefix, str(instrument).lower())
        candidates.append(Path(crds) / "references" / "hst" / inst / name)
    return next((c for c in candidates if c.is_file()), None)


def idctab_date(idctab: str, headerlet_primary: fits.Header, instrument: str = "") -> str:
    """The date that ranks a headerlet's distortion model (see the module notes).

    Parameters
    ----------
    idctab : str
        The headerlet's ``IDCTAB`` (``iref$2731450pi_idc.fits``).
    headerlet_primary : astropy.io.fits.Header
        The headerlet's primary header (its ``DATE`` is the fallback).
    instrument : str
        ``INSTRUME``, for the CRDS folder of a prefix hapgpu does not know.

    Returns
    -------
    str
        The reference file's ``DATE`` when the file is found, else the headerlet's ``DATE``
        (empty when it has none).
    """
    ref = _reference_file(idctab, instrument)
    if ref is not None:
        try:
            return str(fits.getval(ref, "DATE"))
        except (OSError, KeyError):
            log.warning("%s: no DATE keyword in the IDCTAB reference file; using the "
                        "headerlet's DATE", ref)
    return str(headerlet_primary.get("DATE", ""))


def _dedupe_headerlets(hdul):
    """Delete all but the last extension of every HDRNAME held by several HDRLET extensions
    (by EXTVER); return the EXTVERs left, in file order."""
    records = _hdrlet_records(hdul)
    hdrnames = [r[3] for r in records]
    extvers = [r[1] for r in records]
    drop = []
    for name in dict.fromkeys(hdrnames):
        vers = sorted(v for v, h in zip(extvers, hdrnames) if h == name)
        if len(vers) > 1:
            drop += vers[:-1]
    for ver in drop:
        del hdul["HDRLET", ver]
        extvers.remove(ver)
    return extvers


def _candidates(hdul, sci_wcsname: str):
    """drizzlepac's candidate lists for the a priori restore, as coded (module notes of
    :func:`verify_gaia_wcsnames`): headerlet WCSNAMEs and HDRNAMEs without OPUS ones; when
    none is a GSC solution, the active name is added and its ``IDC_*`` base removed."""
    records = _hdrlet_records(hdul)
    wcsnames = [r[2] for r in records]
    hdrnames = [r[3] for r in records]
    extvers = _dedupe_headerlets(hdul)
    for i in reversed([i for i, w in enumerate(wcsnames) if "OPUS" in w]):
        del wcsnames[i]
        del hdrnames[i]
    if not any("GSC" in w for w in wcsnames) and sci_wcsname not in wcsnames:
        wcsnames.append(sci_wcsname)
        hdrnames.append(sci_wcsname)
        base = sci_wcsname.split("-")[0]
        if base not in wcsnames:
            raise InvalidInputError(f"no headerlet {base} (the pipeline default of "
                                    f"{sci_wcsname}) among {wcsnames}")
        index = wcsnames.index(base)
        del wcsnames[index]
        del hdrnames[index]
    return wcsnames, hdrnames, extvers


def _restore_idcscale(hdul, nsci: int) -> float:
    """Put ``IDCSCALE`` into every SCI header (drizzlepac ``_update_idcscale``): from a
    headerlet of the current IDCTAB whose SIPWCS header has it (the last SCI extension that
    finds one wins), else ``sqrt(CD1_1**2 + CD2_1**2) * 3600`` of SCI 1."""
    idctab = str(hdul[0].header.get("IDCTAB", ""))
    root = idctab.split("$")[-1].split("_")[0]
    value = None
    hlets = [(i, w) for i, _, w, _ in _hdrlet_records(hdul)]
    for chip in range(1, nsci + 1):
        for index, wcsname in hlets:
            if root and root in wcsname:
                sipwcs = hdul[index].headerlet
                if ("SIPWCS", chip) in sipwcs and "IDCSCALE" in sipwcs["SIPWCS", chip].header:
                    value = sipwcs["SIPWCS", chip].header["IDCSCALE"]
                    break
        if value is None:
            sci = hdul["SCI", chip].header
            value = math.sqrt(sci["CD1_1"] ** 2 + sci["CD2_1"] ** 2) * 3600.0
        for v in range(1, nsci + 1):
            hdul["SCI", v].header["IDCSCALE"] = value
    return float(value)


def verify_gaia_wcsnames(files, catalog_name: str = "GSC240",
                         catalog_date: str = GSC240_DATE) -> str:
    """Name GSC 2.4 a priori solutions and replace active a posteriori solutions by a priori
    ones (drizzlepac ``verify_gaia_wcsnames``, hap-pipeline.md §3.7 step 5).

    For each SCI extension of each file (``_raw`` files and files without ``WCSNAME`` are
    skipped):

    * data taken after ``catalog_date`` whose WCSNAME has no ``-`` get ``-<catalog_name>``
      appended;
    * an active ``-FIT`` solution: duplicate HDRNAME headerlets are deleted (the highest EXTVER
      kept) and the a priori headerlet restored as the active WCS (stwcs
      ``restore_from_headerlet(force=True, archive=False)``): the first tag of
      :data:`APRIORI_PRIORITY` (HSC, GSC, any) found in a candidate name, and among those the
      newest IDCTAB (:func:`idctab_date`, strictly newer replaces). ``IDCSCALE`` is restored
      when missing.

    Parameters
    ----------
    files : sequence of str or os.PathLike
        FLT/FLC files, updated in place.
    catalog_name : str
        Catalogue tag appended after ``catalog_date``.
    catalog_date : str
        ``YYYY-MM-DD``.

    Returns
    -------
    str
        Messages about restored headerlets that lacked ``IDCSCALE`` (drizzlepac's return
        value; empty when none).

    Raises
    ------
    InvalidInputError
        A file cannot be read or written, has no SCI extension or ``DATE-OBS``, or an
        a posteriori file has no headerlet of its pipeline default when drizzlepac needs it.

    Notes
    -----
    As coded in drizzlepac, the candidate names and HDRNAMEs are listed before duplicates are
    deleted and without OPUS headerlets, while the dates come from the remaining headerlets in
    file order; the three lists are paired position by position (``zip``), so with OPUS or
    duplicate headerlets a name may be ranked with another headerlet's date. This is kept:
    the choice is drizzlepac's. The restored headerlet is the one with the winning HDRNAME.
    """
    gyear, gmonth, gday = (int(v) for v in catalog_date.split("-"))
    gdate = datetime.date(gyear, gmonth, gday)
    messages = []
    for path in map(Path, files):
        if "_raw" in path.name:
            continue

        def work(hdul, path=path):
            from stwcs.wcsutil import headerlet

            nsci = _sci_count(hdul, path)
            if "WCSNAME" not in hdul["SCI", 1].header:
                return False
            try:
                year, month, day = (int(v) for v in
                                    str(hdul[0].header["DATE-OBS"]).split("-")[:3])
            except (KeyError, ValueError):
                raise InvalidInputError(f"{path}: no readable DATE-OBS in the primary header") \
                    from None
            fdate = datetime.date(year, month, day)
            instrument = str(hdul[0].header.get("INSTRUME", ""))
            changed = False
            lists = None
            for chip in range(1, nsci + 1):
                wcsname = str(hdul["SCI", chip].header["WCSNAME"])
                if fdate > gdate and "-" not in wcsname:
                    hdul["SCI", chip].header["WCSNAME"] = f"{wcsname}-{catalog_name}"
                    log.info("%s[SCI,%d]: WCSNAME %s-%s (data taken with %s guide stars)",
                             path.name, chip, wcsname, catalog_name, catalog_name)
                    changed = True
                    continue
                if "-FIT" not in wcsname:
                    continue
                if lists is None:
                    lists = _candidates(hdul, wcsname)
                    changed = True
                wcsnames, hdrnames, extvers = lists
                dates = [idctab_date(hdul["HDRLET", v].headerlet[0].header.get("IDCTAB", ""),
                                     hdul["HDRLET", v].headerlet[0].header, instrument)
                         for v in extvers]
                best = None
                for tag in APRIORI_PRIORITY:
                    for wname, hname, wdate in zip(wcsnames, hdrnames, dates):
                        if tag in wname and (best is None or wdate > best[0]):
                            best = (wdate, hname, wname)
                    if best:
                        break
                if best is None:
                    continue
                log.info("%s: a posteriori WCS %s replaced by the a priori headerlet %s",
                         path.name, wcsname, best[1])
                headerlet.restore_from_headerlet(hdul, force=True, hdrname=best[1],
                                                 archive=False)
                if "IDCSCALE" not in hdul["SCI", 1].header:
                    messages.append(f"Headerlet {best[1]} was missing IDCSCALE keyword")
                    value = _restore_idcscale(hdul, nsci)
                    log.info("%s: IDCSCALE %s restored", path.name, value)
            return changed

        _update(path, work, "gaia-wcsnames")
    return "".join(messages)


# ----------------------------------------------------------------------------- the stage
def _target_distance(path: Path) -> float | None:
    """Degrees between CRVAL of SCI 1 and RA_TARG/DEC_TARG (None when a keyword is missing)."""
    from astropy.coordinates import SkyCoord

    with fits.open(path) as hdul:
        primary, sci = hdul[0].header, hdul["SCI", 1].header
        try:
            target = SkyCoord(float(primary["RA_TARG"]), float(primary["DEC_TARG"]), unit="deg")
            crval = SkyCoord(float(sci["CRVAL1"]), float(sci["CRVAL2"]), unit="deg")
        except KeyError:
            return None
    return float(target.separation(crval).deg)


def active_wcsname(path) -> str | None:
    """``WCSNAME`` of SCI 1 (None when absent)."""
    try:
        value = fits.getval(path, "WCSNAME", ext=("SCI", 1))
    except KeyError:
        return None
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the exposure ({exc})") from None
    return str(value)


def database_choice(files) -> list[str | None]:
    """Offline stand-in for the astrometry database's choice of ``updatewcs(use_db=True)``
    (hap-pipeline.md §3.7 step 2, §4).

    The database makes its best solution for the file's current distortion model primary.
    Offline, a file whose active WCS is the plain pipeline default (``IDC_<idctab>``, no
    ``-``) gets the best a priori headerlet it carries for that model: the first tag of
    :data:`APRIORI_PRIORITY` among ``IDC_<idctab>-HSC*`` and ``IDC_<idctab>-GSC*`` names, the
    newest (:func:`idctab_date`, then the later headerlet) among several; restored with stwcs
    ``restore_from_headerlet(force=True, archive=True)``. Files whose active WCS already is an
    a priori or a posteriori solution are left alone (a posteriori ones are then replaced by
    :func:`verify_gaia_wcsnames`, as after the database).

    Parameters
    ----------
    files : sequence of str or os.PathLike
        FLT/FLC files, updated in place.

    Returns
    -------
    list of str or None
        Per file, the WCSNAME restored, or None when nothing changed.

    Raises
    ------
    InvalidInputError
        A file cannot be read or written, or has no SCI extension.
    """
    from stwcs.wcsutil import headerlet

    chosen = []
    for path in map(Path, files):
        def work(hdul, path=path):
            _sci_count(hdul, path)
            active = str(hdul["SCI", 1].header.get("WCSNAME", "")).strip()
            if not active.startswith("IDC_") or "-" in active:
                return False
            instrument = str(hdul[0].header.get("INSTRUME", ""))
            records = _hdrlet_records(hdul)
            for tag in APRIORI_PRIORITY[:-1]:
                candidates = [(idctab_date(hdul[i].headerlet[0].header.get("IDCTAB", ""),
                                           hdul[i].headerlet[0].header, instrument), n, h, w)
                              for n, (i, _, w, h) in enumerate(records)
                              if w.startswith(f"{active}-{tag}")]
                if candidates:
                    _, _, hdrname, wcsname = max(candidates)
                    headerlet.restore_from_headerlet(hdul, hdrname=hdrname, force=True,
                                                     archive=True)
                    log.info("%s: a priori WCS %s made active (offline stand-in for the "
                             "astrometry database)", path.name, wcsname)
                    return wcsname
            return False

        done = _update(path, work, "apriori-db")
        chosen.append(done or None)
    return chosen


def apply_apriori(files) -> str | None:
    """The a priori stage offline (hap-pipeline.md §3.7 steps 2-5; §4).

    The database's solutions are taken to be the headerlets already attached (no network):
    :func:`database_choice` (the database's primary solution),
    :func:`confirm_aposteriori_hdrlets`, a warning for each file whose CRVAL is more than
    0.05 deg from its target, then :func:`verify_gaia_wcsnames`.

    Parameters
    ----------
    files : sequence of str or os.PathLike
        FLT and FLC files of the association, updated in place.

    Returns
    -------
    str or None
        Active WCSNAME of the first file afterwards (None when it has none).

    Raises
    ------
    InvalidInputError
        A file cannot be read or written (named in the message).
    """
    files = [Path(f) for f in files]
    if not files:
        raise InvalidInputError("apply_apriori: no files given")
    database_choice(files)
    confirm_aposteriori_hdrlets(files)
    for path in files:
        distance = _target_distance(path)
        if distance is not None and distance > _TARGET_DISTANCE_DEG:
            log.warning("%s: CRVAL is %.4f deg from RA_TARG/DEC_TARG (more than %.2f deg); "
                        "the a priori WCS may be wrong", path.name, distance,
                        _TARGET_DISTANCE_DEG)
    message = verify_gaia_wcsnames(files)
    if message:
        log.info("%s", message)
    return active_wcsname(files[0])


def restore_pipeline_default(files) -> None:
    """Make the pipeline-default WCS (``IDC_<idctab rootname>``) active again and remove
    ``HDRNAME`` from the SCI headers (drizzlepac ``restore_pipeline_default``, offline).

    drizzlepac recomputes the default with ``updatewcs(use_db=False)`` from the reference
    files. Offline the solution the file already carries is used (§4 (a)): an alternate WCS of
    that name is made active, else the last headerlet of that name is restored
    (``force=True``, the replaced WCS archived).

    Parameters
    ----------
    files : sequence of str or os.PathLike
        FLT/FLC files, updated in place.

    Raises
    ------
    InvalidInputError
        A file cannot be read or written, has no ``IDCTAB``, or carries no solution named
        ``IDC_<idctab rootname>`` (the pipeline default cannot be rebuilt without CRDS).
    """
    from stwcs.wcsutil import altwcs, headerlet

    for path in map(Path, files):
        def work(hdul, path=path):
            nsci = _sci_count(hdul, path)
            idctab = str(hdul[0].header.get("IDCTAB", "")).strip()
            if not idctab:
                raise InvalidInputError(f"{path}: no IDCTAB in the primary header; the "
                                        "pipeline-default WCS cannot be identified")
            default = "IDC_" + idctab.split("$")[-1].split("_")[0]
            sci1 = hdul["SCI", 1].header
            exts = [("SCI", v) for v in range(1, nsci + 1)]
            if str(sci1.get("WCSNAME", "")).strip() != default:
                key = altwcs.getKeyFromName(sci1, default)
                if key is not None and key != " ":
                    altwcs.restoreWCS(hdul, exts, wcskey=key)
                else:
                    names = [r for r in _hdrlet_records(hdul) if r[2] == default]
                    if not names:
                        raise InvalidInputError(
                            f"{path}: no WCS named {default} (alternate or headerlet); the "
                            "pipeline-default WCS cannot be restored offline")
                    headerlet.restore_from_headerlet(hdul, hdrname=names[-1][3], force=True,
                                                     archive=True)
                log.info("%s: pipeline-default WCS %s restored", path.name, default)
            for ext in exts:
                if "HDRNAME" in hdul[ext].header:
                    del hdul[ext].header["HDRNAME"]
            return True

        _update(path, work, "restore-default")
