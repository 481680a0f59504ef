"""Grism/prism WCS reconciliation of one detector of an SVM visit (hap-pipeline.md §1.9).

Grism and prism exposures are never drizzled, but the archive wants them to share one active
WCS with the direct images of their detector, so that a spectrum can be located on the direct
image. When a detector has both kinds of exposure, :func:`update_wcs_in_visit` does what
drizzlepac's ``hapsequencer.update_wcs_in_visit`` does to the renamed copies, in this order:

1. :func:`collect_wcs_names` of the grism images: per image the names of its alternate WCSs
   (the active one included) and of its headerlets (``HDRLET`` extensions); the set common to
   all of them. An image without any name is skipped, and a grism image without any name is
   deleted; two images with no name in common stop the visit
   (:class:`~hapgpu.errors.IncompatibleInputsError`, drizzlepac's exit status 1).
2. Pick the preferred name of that set (:data:`WCS_PREFERENCE`: ``IDC_?????????-GSC240``, the
   a priori solution on the Guide Star Catalog 2.4, else ``IDC_?????????``, the pipeline
   default). With neither, every grism image is deleted and nothing else changes.
3. For each direct image: note a ``DRIZCORR = OMIT`` (see Notes), make sure every SCI header
   carries ``HDRNAME``; then :func:`collect_wcs_names` of the direct images.
4. When the grism and the direct sets share names, pick the preferred name of their
   intersection and make it active (:func:`update_active_wcs`) in every grism image and every
   direct image that was not skipped. The grism images so updated, and their trailers, go to
   the manifest. When the sets are disjoint, or their intersection holds no preferred name,
   no file changes and no grism image is listed.

As coded in drizzlepac, this replaces a successful ``FIT_SVM`` solution of the direct images by
the a priori one (the fit stays in the file as a headerlet). The alternate-WCS and headerlet work
is stwcs' (``altwcs.wcsnames``/``getKeyFromName``, ``headerlet.archive_as_headerlet`` and
``restore_from_headerlet``); every file is updated in a temporary copy beside it that then
replaces it, so an interrupted run never leaves a half-written exposure.

Notes
-----
**Offline astrometry (``DRIZCORR = OMIT``).** drizzlepac first runs stwcs
``updatewcs(use_db=True)`` on a direct image whose ``DRIZCORR`` is ``OMIT``: it recomputes the
distortion model from the CRDS reference files and asks the MAST astrometry database for its a
priori and a posteriori solutions. hapgpu works offline and never reaches for the network or
the reference files; it uses the solutions the exposure already carries. FLT/FLC files
retrieved from MAST carry the database's solutions as ``HDRLET`` extensions, so the names
compared here are normally those the database would have added; a file processed without the
database may lack some, and then falls back to the pipeline default or is left as it is, by
the rules above. The image is named in a warning. In an SVM run this case does not arise: the viability filter (§1.3, rule 2) rejects
direct images with ``DRIZCORR = OMIT`` before the product tree is built.

Deliberate differences from drizzlepac, each where its behaviour is an accident of the code:

* when several names of a set match a preferred pattern (two IDCTABs), drizzlepac takes the
  first in Python's set order, which changes from run to run; here the first in sorted order;
* drizzlepac exits with 1 when it deletes the grism images for want of a preferred name and one
  of them was already deleted for having no name (``os.remove`` fails); here a file already
  gone counts as deleted;
* when stwcs cannot restore the chosen headerlet, drizzlepac logs a warning and keeps the
  headerlets it had just archived; here the file is left exactly as it was (the warning is the
  same);
* drizzlepac reads ``IDCSCALE`` and ``DRIZCORR`` unguarded (a missing keyword stops the visit);
  here a missing ``IDCSCALE`` is simply not restored and a missing ``DRIZCORR`` reads as not
  ``OMIT``.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from astropy.io import fits

from .._fitsupdate import update_in_copy
from ..errors import IncompatibleInputsError, InvalidInputError, InvalidParameterError

__all__ = [
    "APRIORI_KEYWORDS",
    "WCS_PREFERENCE",
    "WCSReconciliation",
    "archive_alternate_wcs",
    "collect_wcs_names",
    "is_apriori_wcsname",
    "preferred_wcsname",
    "reset_keywords_apriori",
    "update_active_wcs",
    "update_wcs_in_visit",
]

log = logging.getLogger(__name__)

#: Patterns of the WCS to make active, best first (drizzlepac ``wcs_preference``): the a priori
#: solution on GSC 2.4, then the pipeline default (``IDC_`` + the 9-character IDCTAB rootname).
WCS_PREFERENCE = ("IDC_?????????-GSC240", "IDC_?????????")

#: Fit keywords left over from an a posteriori solution, deleted from SCI headers whose active
#: WCS is a priori (drizzlepac ``reset_keywords_apriori``).
APRIORI_KEYWORDS = ("NMATCHES", "RMS_RA", "RMS_DEC", "FITGEOM", "CRDER1", "CRDER2")

#: Catalogue prefixes of an a priori WCSNAME's second token.
_APRIORI_CATALOGS = ("GSC", "HSC", "GAIA")


@dataclass(frozen=True)
class WCSReconciliation:
    """What :func:`update_wcs_in_visit` did to one detector's exposures.

    Attributes
    ----------
    wcsname : str or None
        The WCS made active in every updated image; None when none was chosen (the grism and
        direct sets are disjoint, or no preferred name is common to them, or the grism set has
        none).
    grism_wcsnames, direct_wcsnames : frozenset of str
        WCS names common to all grism images, and to all direct images, that have any.
    grism_products : tuple of pathlib.Path
        The grism/prism images whose active WCS is now ``wcsname``, in input order: they and
        their trailers go to the manifest.
    updated : tuple of pathlib.Path
        Every image (grism, then direct) given ``wcsname`` as its active WCS.
    skipped : tuple of pathlib.Path
        Images without any WCS name, left unchanged (direct) or deleted (grism).
    deleted : tuple of pathlib.Path
        Grism/prism images deleted.
    failed : tuple of pathlib.Path
        Images where stwcs could not restore ``wcsname`` (left unchanged, with a warning).
    """

    wcsname: str | None
    grism_wcsnames: frozenset
    direct_wcsnames: frozenset
    grism_products: tuple
    updated: tuple
    skipped: tuple
    deleted: tuple
    failed: tuple


# ----------------------------------------------------------------------------- names
def _sci_extensions(hdul, path) -> list:
    """Indices of the SCI extensions, in file order."""
    found = [i for i, hdu in enumerate(hdul) if hdu.header.get("EXTNAME", "").strip().upper() == "SCI"]
    if not found:
        raise InvalidInputError(f"{path}: no SCI extension")
    return found


def _headerlet_names(hdul, path, keyword: str) -> list[str]:
    """``keyword`` of every headerlet extension, in file order (stwcs ``get_headerlet_kw_names``)."""
    from stwcs.wcsutil import headerlet

    try:
        return [str(v) for v in headerlet.get_headerlet_kw_names(hdul, kw=keyword)]
    except KeyError:
        raise InvalidInputError(f"{path}: a headerlet (HDRLET) extension has no {keyword} "
                                "keyword") from None


def _wcs_names(path: Path) -> tuple[list[str], list[str]]:
    """(alternate-WCS names of SCI 1, active included; headerlet names) of one image."""
    from stwcs.wcsutil import altwcs, headerlet  # noqa: F401  (registers the HDRLET HDU class)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path) as hdul:
                sci1 = hdul[_sci_extensions(hdul, path)[0]].header
                keyed = [str(v) for v in altwcs.wcsnames(sci1, include_primary=True).values()]
                return keyed, _headerlet_names(hdul, path, "WCSNAME")
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the exposure ({exc})") from None


def collect_wcs_names(paths, kind: str) -> tuple[frozenset, list[Path]]:
    """WCS names common to every image that has any (drizzlepac ``collect_wcs_names``).

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        The images (renamed FLT/FLC copies), in tree order.
    kind : {"grism", "direct"}
        Grism/prism images without any WCS name are deleted; direct ones only skipped.

    Returns
    -------
    common : frozenset of str
        Names of alternate WCSs (on the first SCI extension, the active WCS included) and of
        headerlets present in every image that has at least one name; empty when none has.
    skipped : list of pathlib.Path
        Images without any name, in input order.

    Raises
    ------
    IncompatibleInputsError
        An image shares no WCS name with the images before it (drizzlepac exits with 1); the
        message names the image and its names.
    InvalidInputError
        An image cannot be read, has no SCI extension or a headerlet without ``WCSNAME``.
    """
    if kind not in ("grism", "direct"):
        raise InvalidParameterError(f"kind must be 'grism' or 'direct', got {kind!r}")
    common: set | None = None
    skipped: list[Path] = []
    earlier: list[str] = []
    for path in map(Path, paths):
        keyed, hdrlets = _wcs_names(path)
        names = keyed + hdrlets
        if not names:
            skipped.append(path)
            if kind == "grism":
                path.unlink(missing_ok=True)
                log.warning("%s: no WCS solution in the image; grism/prism image skipped and "
                            "deleted", path.name)
            else:
                log.warning("%s: no WCS solution in the image; direct image skipped", path.name)
            continue
        log.debug("%s: WCS solutions %s", path.name, names)
        common = set(names) if common is None else common & set(names)
        if not common:
            raise IncompatibleInputsError(
                f"{path}: no WCS solution name in common with the {kind} image(s) "
                f"{', '.join(earlier)} (its names: {', '.join(sorted(set(names)))}); the "
                "visit's WCSs cannot be reconciled (are these *_raw.fits files?)")
        earlier.append(path.name)
    return frozenset(common or ()), skipped


def preferred_wcsname(names) -> str | None:
    """The first name matching :data:`WCS_PREFERENCE`, pattern by pattern, or None.

    Parameters
    ----------
    names : iterable of str
        Candidate WCS names.

    Returns
    -------
    str or None
        Among several names matching the same pattern, the first in sorted order (drizzlepac
        takes the first in set order, which is arbitrary). Patterns are case-sensitive
        (``fnmatchcase``), ``?`` standing for any one character.
    """
    names = sorted(set(names))
    for pattern in WCS_PREFERENCE:
        matches = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if matches:
            return matches[0]
    return None


def is_apriori_wcsname(wcsname: str) -> bool:
    """Whether ``wcsname`` is an a priori solution: ``<base>-<catalogue>``, the catalogue
    starting with GSC, HSC or GAIA (any case), e.g. ``IDC_2731450pi-GSC240``."""
    tokens = str(wcsname).split("-")
    return len(tokens) == 2 and tokens[1].upper().startswith(_APRIORI_CATALOGS)


# ----------------------------------------------------------------------------- file updates
@contextmanager
def _no_headerlet_log():
    """Keep stwcs from writing ``headerlet.log`` into the current directory.

    stwcs' headerlet functions open that file unless the last handler of their logger is a
    file handler, and ``restore_from_headerlet`` calls ``create_headerlet`` without passing
    its ``logging=False`` on. A file handler on the null device that never opens (delayed,
    level above CRITICAL) is added for the duration.
    """
    stwcs_log = logging.getLogger("stwcs.wcsutil.headerlet")
    handler = logging.FileHandler(os.devnull, delay=True)
    handler.setLevel(logging.CRITICAL + 1)
    stwcs_log.addHandler(handler)
    try:
        yield
    finally:
        stwcs_log.removeHandler(handler)
        handler.close()


def _update_copy(path: Path, work) -> object:
    """:func:`hapgpu._fitsupdate.update_in_copy` with the FITS and stwcs warnings of the
    update silenced (they are about headers the pipeline is rewriting)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return update_in_copy(path, work, prefix=".hapgpu-grism-")


def _verify_sci_hdrname(path: Path) -> None:
    """Give every SCI header without a (non-blank) ``HDRNAME`` the name
    ``<file name without .fits>_<WCSNAME>_hlet.fits``, after ``WCSNAME`` (drizzlepac
    ``_verify_sci_hdrname``); a SCI header without ``WCSNAME`` is left alone."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(path) as hdul:
            missing = [i for i in _sci_extensions(hdul, path)
                       if not str(hdul[i].header.get("HDRNAME", "")).strip()
                       and "WCSNAME" in hdul[i].header]
    if not missing:
        return
    stem = path.name.replace(".fits", "")

    def work(hdul):
        for index in missing:
            header = hdul[index].header
            header.set("HDRNAME", f"{stem}_{header['WCSNAME']}_hlet.fits", "Name of headerlet file",
                       after="WCSNAME")

    _update_copy(path, work)
    log.info("%s: HDRNAME set in %d SCI header(s)", path.name, len(missing))


def archive_alternate_wcs(hdul, path) -> list[str]:
    """Attach every alternate WCS (active included, OPUS key ``O`` excluded) that is not
    already a headerlet as a headerlet (drizzlepac ``archive_alternate_wcs``).

    Parameters
    ----------
    hdul : astropy.io.fits.HDUList
        The image, opened for update; changed in place.
    path : str or os.PathLike
        Its name, for messages.

    Returns
    -------
    list of str
        HDRNAMEs of the headerlets attached.

    Notes
    -----
    A WCS is "already a headerlet" when a headerlet has its name; a name ``<headerlet
    name>-<digit>...`` (stwcs' renaming of a duplicate) counts as that headerlet's name. The
    new headerlet's HDRNAME is the primary ``HDRNAME<key>`` when present, else
    ``<FILENAME without .fits>_<WCSNAME>-hlet.fits``. stwcs ``archive_as_headerlet`` makes it
    (and attaches nothing when that HDRNAME is already attached).
    """
    from stwcs.wcsutil import altwcs, headerlet

    sci1 = hdul[_sci_extensions(hdul, path)[0]].header
    keyed = altwcs.wcsnames(sci1, include_primary=True)
    primary = hdul[0].header
    hlet_wcsnames = _headerlet_names(hdul, path, "WCSNAME")
    renamed = [(name, re.compile(re.escape(name) + r"-\d")) for name in hlet_wcsnames]
    filename = str(primary.get("FILENAME", "")).strip() or Path(path).name
    attached = []
    for key, wcsname in keyed.items():
        if key.upper().startswith("O"):
            continue
        wcsname = str(wcsname)
        for original, pattern in renamed:
            if pattern.match(wcsname):
                wcsname = original
                break
        if wcsname in hlet_wcsnames:
            continue
        hdrname = primary.get("HDRNAME" + key.strip().upper())
        if not hdrname:
            hdrname = f"{filename[:-5]}_{wcsname}-hlet.fits"
        try:
            headerlet.archive_as_headerlet(hdul, str(hdrname), wcsname=wcsname, wcskey=key,
                                           logging=False)
        except (ValueError, KeyError) as exc:
            raise InvalidInputError(f"{path}: cannot archive the alternate WCS {key!r} "
                                    f"({wcsname}) as a headerlet ({exc})") from None
        attached.append(str(hdrname))
    return attached


def reset_keywords_apriori(hdul) -> None:
    """In each SCI header whose active WCS is a priori (:func:`is_apriori_wcsname`): set
    ``WCSTYPE`` from ``WCSNAME`` and delete :data:`APRIORI_KEYWORDS` (drizzlepac
    ``reset_keywords_apriori``). ``hdul`` is changed in place."""
    from ..align._update import interpret_wcsname_type

    for hdu in hdul:
        header = hdu.header
        if header.get("EXTNAME", "").strip().upper() != "SCI":
            continue
        wcsname = str(header.get("WCSNAME", ""))
        if not is_apriori_wcsname(wcsname):
            continue
        header["WCSTYPE"] = interpret_wcsname_type(wcsname)
        for keyword in APRIORI_KEYWORDS:
            if keyword in header:
                del header[keyword]


def update_active_wcs(path, wcsname: str) -> bool:
    """Make the WCS named ``wcsname`` the active WCS of one image (drizzlepac
    ``update_active_wcs``).

    First every alternate WCS becomes a headerlet (:func:`archive_alternate_wcs`). Unless
    ``wcsname`` is already the active WCS and no alternate WCS has that name, the first
    headerlet of that name is restored as the active WCS with stwcs
    ``restore_from_headerlet(archive=True)`` (the WCS it replaces is kept as a headerlet), then
    in every SCI header ``NMATCHES`` is set from that headerlet extension's ``NMATCH`` (0 when
    absent), ``IDCSCALE`` is put back when the restore removed it, and
    :func:`reset_keywords_apriori` runs.

    Parameters
    ----------
    path : str or os.PathLike
        The renamed FLT/FLC copy, updated through a temporary copy.
    wcsname : str
        Name of an alternate WCS or headerlet of the image.

    Returns
    -------
    bool
        True when the image's active WCS is now ``wcsname``; False when stwcs could not restore
        it (a warning names the file; the file is left unchanged).

    Raises
    ------
    InvalidInputError
        The file cannot be read or written, has no SCI extension, or carries no headerlet named
        ``wcsname`` after the archiving.
    """
    from stwcs.wcsutil import altwcs, headerlet

    path = Path(path)

    def work(hdul):
        scis = _sci_extensions(hdul, path)
        idcscale = hdul[scis[0]].header.get("IDCSCALE")
        key = altwcs.getKeyFromName(hdul[scis[0]].header, wcsname)
        archived = archive_alternate_wcs(hdul, path)
        if archived:
            log.info("%s: alternate WCS archived as headerlet(s) %s", path.name, ", ".join(archived))
        if key == " ":
            log.info("%s: %s is already the active WCS", path.name, wcsname)
            return True
        hdrnames = _headerlet_names(hdul, path, "HDRNAME")
        wcsnames = _headerlet_names(hdul, path, "WCSNAME")
        if wcsname not in wcsnames:
            raise InvalidInputError(f"{path}: no headerlet named {wcsname} to restore")
        hdrname = hdrnames[wcsnames.index(wcsname)]
        try:
            hlet_index = headerlet.find_headerlet_HDUs(hdul, hdrname=hdrname, logging=False)[0]
            nmatch = hdul[hlet_index].header.get("NMATCH", 0)
            headerlet.restore_from_headerlet(hdul, hdrname=hdrname, archive=True, logging=False)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            log.warning("%s: could not restore the common WCS %s as the active WCS (%s: %s); "
                        "the file is unchanged", path.name, wcsname, type(exc).__name__, exc)
            return False
        for index in scis:
            header = hdul[index].header
            header["NMATCHES"] = nmatch
            if "IDCSCALE" not in header and idcscale is not None:
                header["IDCSCALE"] = idcscale
        reset_keywords_apriori(hdul)
        return True

    with warnings.catch_warnings(), _no_headerlet_log():
        warnings.simplefilter("ignore")
        done = _update_copy(path, work)
    if done:
        log.info("%s: active WCS is now %s", path.name, wcsname)
    return bool(done)


# ----------------------------------------------------------------------------- the visit
def update_wcs_in_visit(paths, is_grism) -> WCSReconciliation:
    """Give one detector's grism/prism and direct images one active WCS (hap-pipeline.md §1.9).

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        The renamed FLT/FLC copies of the detector's grism/prism and direct exposures, in tree
        order; updated in place (each through a temporary copy), grism images without a usable
        WCS deleted.
    is_grism : sequence of bool
        Per path: a grism/prism exposure (True) or a direct one (False).

    Returns
    -------
    WCSReconciliation
        The chosen WCS, the images updated, skipped, deleted, and the grism images for the
        manifest.

    Raises
    ------
    IncompatibleInputsError
        Two grism images, or two direct images, share no WCS name (drizzlepac's exit 1).
    InvalidInputError
        An image cannot be read or written, or ``paths`` and ``is_grism`` differ in length, or
        a kind of exposure is missing.

    Notes
    -----
    Source: drizzlepac ``hapsequencer.update_wcs_in_visit``, ``collect_wcs_names``,
    ``update_active_wcs``, ``archive_alternate_wcs``, ``reset_keywords_apriori`` and
    ``_verify_sci_hdrname`` (behaviour and names as coded, with the differences listed in the
    module notes). Direct images with ``DRIZCORR = OMIT`` keep the solutions they carry (no
    astrometry database offline; module notes).
    """
    paths = [Path(p) for p in paths]
    flags = [bool(g) for g in is_grism]
    if len(flags) != len(paths):
        raise InvalidInputError(f"update_wcs_in_visit: {len(paths)} paths but {len(flags)} "
                                "grism flags")
    grisms = [p for p, g in zip(paths, flags) if g]
    directs = [p for p, g in zip(paths, flags) if not g]
    if not grisms or not directs:
        raise InvalidInputError("update_wcs_in_visit needs grism/prism and direct images of one "
                                f"detector; got {len(grisms)} grism and {len(directs)} direct")

    log.info("grism/prism WCS reconciliation: %s", ", ".join(p.name for p in grisms))
    grism_set, grism_skipped = collect_wcs_names(grisms, "grism")
    log.info("WCS solutions common to all viable grism/prism images: %s", sorted(grism_set))
    proposed = preferred_wcsname(grism_set)
    if proposed is None:
        log.error("none of the preferred WCSs (%s) is common to the grism/prism images; "
                  "deleting every grism/prism image of the detector", ", ".join(WCS_PREFERENCE))
        for path in grisms:
            path.unlink(missing_ok=True)
            log.warning("deleted grism/prism image %s", path.name)
        return WCSReconciliation(None, grism_set, frozenset(), (), (), tuple(grism_skipped),
                                 tuple(grisms), ())
    log.info("proposed WCS after the grism/prism images: %s", proposed)

    for path in directs:
        try:
            drizcorr = str(fits.getval(path, "DRIZCORR", ext=0)).strip().upper()
        except KeyError:
            drizcorr = ""
        except OSError as exc:
            raise InvalidInputError(f"{path}: cannot read the exposure ({exc})") from None
        if drizcorr == "OMIT":
            log.warning("%s: DRIZCORR = OMIT; the astrometry database is not consulted "
                        "(offline), the WCS solutions already in the file are used", path.name)
        _verify_sci_hdrname(path)
    direct_set, direct_skipped = collect_wcs_names(directs, "direct")
    log.info("WCS solutions common to all viable direct images: %s", sorted(direct_set))
    skipped = tuple(grism_skipped + direct_skipped)

    common = grism_set & direct_set
    if not common:
        log.info("the grism/prism and direct images share no WCS solution; every active WCS "
                 "is kept")
        return WCSReconciliation(None, grism_set, direct_set, (), (), skipped, tuple(grism_skipped), ())
    log.info("WCS solutions common to the grism/prism and direct images: %s", sorted(common))
    final = preferred_wcsname(common)
    if final is None:
        log.info("no preferred WCS among them; every active WCS is kept")
        return WCSReconciliation(None, grism_set, direct_set, (), (), skipped, tuple(grism_skipped), ())
    log.info("WCS made active in every grism/prism and direct image: %s", final)

    updated, products, failed = [], [], []
    for path in grisms + directs:
        if path in grism_skipped or path in direct_skipped:
            continue
        if update_active_wcs(path, final):
            updated.append(path)
        else:
            failed.append(path)
        if path in grisms:  # listed even when the restore failed, as drizzlepac
            products.append(path)
    return WCSReconciliation(final, grism_set, direct_set, tuple(products), tuple(updated),
                             skipped, tuple(grism_skipped), tuple(failed))
