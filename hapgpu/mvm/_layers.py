"""MVM sky-cell layers: which exposures make which product, under which names (hap-pipeline.md §2.4).

A poller (:func:`hapgpu.mvm.read_mvm_poller`) names one sky cell and the exposures that touch
it. :func:`build_layers` groups the usable rows by detector and filter, as drizzlepac's
``poller_utils.build_mvm_tree`` and ``parse_mvm_tree`` do, into :class:`SkyCellLayer` objects,
one per product:

* every detector gets a **fine** layer (0.04"/pixel, layer name ``all``);
* WFC3/IR and WFPC2 (detectors ``ir`` and ``pc``) get a **coarse** layer (0.12"/pixel,
  ``coarse-all``) and then a duplicate fine layer. As in drizzlepac, both share the same
  exposure objects, so the fine layer's inputs carry the coarse renamed input names;
* per layer, the FLT/FLC choice of §1.5: with any FLC member the product is a ``drc`` made
  from the FLC members only, otherwise a ``drz`` from the FLT members; the others are ignored.

Names (all lower case):

==========================  ========================================================
layer product               ``hst_<skycell>_<instr>_<det>_<filter>_<layer>_dr[cz].fits``
layer trailer               ``hst_<skycell>_<instr>_<det>_<filter>_<layer>_trl.txt``
renamed input               ``hst_<skycell>_<instr>_<det>_<filter>_<layer>-<ipppssoo>_fl[ct].fits``
manifest                    ``<skycell>_manifest.txt``
==========================  ========================================================

with ``<layer>`` = ``all`` (fine) or ``coarse-all``. Source: drizzlepac ``haputils/product.py``
(``SkyCellProduct``, ``SkyCellExposure``) and ``poller_utils.parse_mvm_tree``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "COARSE_LAYER",
    "FINE_LAYER",
    "MULTI_SCALE_DETECTORS",
    "LayerExposure",
    "SkyCellLayer",
    "build_layers",
    "layer_basename",
    "manifest_filename",
]

log = logging.getLogger(__name__)

#: Layer name of a fine (0.04"/pixel) layer in file names.
FINE_LAYER = "all"
#: Layer name of a coarse (0.12"/pixel) layer in file names.
COARSE_LAYER = "coarse-all"
#: Detectors (lower case) that get a coarse layer besides the fine one: WFC3/IR and WFPC2.
MULTI_SCALE_DETECTORS = ("ir", "pc")


def layer_basename(skycell: str, instrument: str, detector: str, filters: str, layer: str) -> str:
    """``hst_<skycell>_<instr>_<det>_<filter>_<layer>``: the stem of a layer's file names.

    Parameters
    ----------
    skycell : str
        Sky-cell name, ``skycell-pPPPPxXXyYY``.
    instrument, detector, filters, layer : str
        As in :class:`SkyCellLayer`; lower-cased here.

    Returns
    -------
    str
    """
    return f"hst_{skycell}_{instrument}_{detector}_{filters}_{layer}".lower()


def manifest_filename(skycell: str | None) -> str:
    """``<skycell>_manifest.txt``; ``skycell-p0000x00y00_manifest.txt`` without a sky cell.

    Parameters
    ----------
    skycell : str or None

    Returns
    -------
    str
    """
    return f"{(skycell or 'skycell-p0000x00y00').lower()}_manifest.txt"


@dataclass(frozen=True)
class LayerExposure:
    """One exposure of a sky-cell layer (drizzlepac's ``SkyCellExposure``).

    Attributes
    ----------
    source : pathlib.Path
        Absolute path of the poller's file (normally an SVM-renamed FLT/FLC), the file that is
        read (and copied to :attr:`renamed`); never modified.
    renamed : str
        The renamed input's file name (no folder):
        ``hst_<skycell>_<instr>_<det>_<filter>_<layer>-<ipppssoo>_fl[ct].fits``. For the fine
        layer of IR/PC the coarse layer's name (``..._coarse-all-<ipppssoo>_flt.fits``), as
        drizzlepac shares the exposure objects between both layers.
    ipppssoo : str
        The exposure's 8-character ``ipppssoo`` (the token before the suffix of an ``hst_``
        name, else the first 8 characters of the pipeline name), lower case.
    new : bool
        True for a ``NEW`` poller row (drizzled into the layer); False for an ``OLD`` one,
        which is not drizzled and only widens the cell's bounded frame (§2.5 step 1).
    exptime : float
        The poller's exposure time, seconds.
    svm_exposure_name : str
        The source file name without its last ``_`` token (the suffix), e.g.
        ``hst_11665_06_wfc3_uvis_f555w_ib4606c5`` (drizzlepac's ``svm_exposure_name``, used
        for the ``HAPEXPNAME``/``SVMROOTNAME`` bookkeeping of HDRTAB).
    """

    source: Path
    renamed: str
    ipppssoo: str
    new: bool
    exptime: float
    svm_exposure_name: str

    @property
    def filetype(self) -> str:
        """``flt`` or ``flc``: the suffix of :attr:`renamed` without ``.fits``."""
        return self.renamed[:-len(".fits")].rsplit("_", 1)[-1]


@dataclass(frozen=True)
class SkyCellLayer:
    """One MVM product: a sky cell, detector, filter and scale (drizzlepac's ``SkyCellProduct``).

    Attributes
    ----------
    skycell : str
        Sky-cell name, e.g. ``skycell-p1889x07y19``.
    instrument : str
        ``wfc3``, ``acs`` or ``wfpc2``.
    detector : str
        ``uvis``, ``ir``, ``wfc``, ``hrc``, ``sbc`` or ``pc`` (always ``pc`` for WFPC2).
    filters : str
        Filter name as in file names (:func:`hapgpu.svm.determine_filter_name`), e.g.
        ``f555w``, ``f606w-pol60v``.
    scale : str
        ``fine`` (0.04"/pixel) or ``coarse`` (0.12"/pixel).
    layer : str
        ``all`` (fine) or ``coarse-all`` (coarse).
    exposures : tuple of LayerExposure
        The layer's NEW exposures (the members of its FLT/FLC type, in drizzlepac's sorted
        order: exposure time ascending, ties by PHOTFLAM descending), followed by the cell's
        OLD rows of the same detector and filter (informational: they are not drizzled).
    all_mvm_exposures : tuple of pathlib.Path
        Every exposure the poller lists, NEW and OLD, of any filter or detector, in poller
        order (drizzlepac's ``all_mvm_exposures``): the exposures whose footprint on the sky
        cell gives the bounded frame shared by every layer of the cell (§2.5 step 1).

    Notes
    -----
    ``info`` reproduces drizzlepac's layer ``info`` string (``obs_info_dict`` values), e.g.
    ``'skycell-p0121x12y16 wfc3 uvis f555w all all 1 drc fine'``.
    """

    skycell: str
    instrument: str
    detector: str
    filters: str
    scale: str
    layer: str
    exposures: tuple[LayerExposure, ...]
    all_mvm_exposures: tuple[Path, ...] = ()

    @property
    def new_exposures(self) -> tuple[LayerExposure, ...]:
        """The NEW exposures: those drizzled into the layer, in order."""
        return tuple(e for e in self.exposures if e.new)

    @property
    def old_exposures(self) -> tuple[LayerExposure, ...]:
        """The OLD exposures of the layer's detector and filter (not drizzled)."""
        return tuple(e for e in self.exposures if not e.new)

    @property
    def product_type(self) -> str:
        """``drc`` when the drizzled inputs are FLC, else ``drz``."""
        members = self.new_exposures or self.exposures
        return "drc" if any(e.filetype == "flc" for e in members) else "drz"

    @property
    def basename(self) -> str:
        """``hst_<skycell>_<instr>_<det>_<filter>_<layer>``."""
        return layer_basename(self.skycell, self.instrument, self.detector, self.filters,
                              self.layer)

    @property
    def drizzle_filename(self) -> str:
        """``hst_<skycell>_<instr>_<det>_<filter>_<layer>_dr[cz].fits``."""
        return f"{self.basename}_{self.product_type}.fits"

    @property
    def trailer_filename(self) -> str:
        """``hst_<skycell>_<instr>_<det>_<filter>_<layer>_trl.txt``."""
        return f"{self.basename}_trl.txt"

    @property
    def manifest_filename(self) -> str:
        """``<skycell>_manifest.txt`` (one manifest per sky cell)."""
        return manifest_filename(self.skycell)

    @property
    def scellid(self) -> str:
        """``pPPPPxXXyYY``: the ``SCELLID`` keyword value."""
        return self.skycell.lower().split("-", 1)[1]

    @property
    def info(self) -> str:
        """``"<skycell> <instr> <det> <filter> all all 1 <drz|drc> <fine|coarse>"``."""
        new = 1 if self.new_exposures else 0
        return (f"{self.skycell} {self.instrument} {self.detector} {self.filters} all all {new} "
                f"{self.product_type} {self.scale}").lower()

    def sky_cell(self):
        """The :class:`hapgpu.skycells.SkyCell` of this layer at its scale (full-cell WCS).

        Returns
        -------
        hapgpu.skycells.SkyCell
        """
        from ..skycells import SkyCell

        return SkyCell.from_name(self.skycell, scale=self.scale)


def _suffix(filename: str) -> str:
    """The renamed input's suffix (``flc.fits``): last ``_`` token of an ``hst_`` name, else the
    text after the first ``_`` (drizzlepac's ``SkyCellExposure.copy_exposure``)."""
    return filename.split("_")[-1] if filename.startswith("hst") else filename.split("_")[1]


def _layer_exposure(row, prefix: str, layer: str) -> LayerExposure:
    return LayerExposure(source=row.source,
                         renamed=f"{prefix}_{layer}-{row.ipppssoo}_{_suffix(row.filename)}",
                         ipppssoo=row.ipppssoo, new=bool(row.new), exptime=float(row.exptime),
                         svm_exposure_name="_".join(row.filename.split("_")[:-1]))


def _common_filetype(rows) -> tuple[list, str]:
    """The members of the product type and that type: FLC members if any (``drc``), else FLT."""
    kind = "flc" if any(r.filetype == "flc" for r in rows) else "flt"
    return [r for r in rows if r.filetype == kind], kind


def _group(rows) -> dict:
    """``{detector: {filter name: [rows]}}`` in row order (drizzlepac's ``build_mvm_tree``)."""
    from ..svm._analyze import determine_filter_name

    tree: dict = {}
    for row in rows:
        tree.setdefault(row.detector, {}).setdefault(determine_filter_name(row.filters),
                                                     []).append(row)
    return tree


def build_layers(poller, *, photflam=None) -> list[SkyCellLayer]:
    """The sky-cell layers of an MVM poller (hap-pipeline.md §2.4).

    The poller's usable rows are sorted as in SVM (exposure time ascending, ties by PHOTFLAM
    descending), grouped by detector and filter in order of first appearance, and each group
    becomes a fine layer, preceded by a coarse layer for IR and PC (see the module notes).
    In each group, the FLC rows are the members when there is one, else the FLT rows; the
    other rows are ignored. OLD rows of the same detector and filter are appended to a
    layer's exposures with ``new=False`` (they are never drizzled).

    Parameters
    ----------
    poller : hapgpu.mvm.MvmPoller
        From :func:`hapgpu.mvm.read_mvm_poller`.
    photflam : mapping of str to float, optional, keyword-only
        ``PHOTFLAM`` per file name, for the sort; read from each file
        (:func:`hapgpu.svm._analyze.read_photflam`) when not given.

    Returns
    -------
    list of SkyCellLayer
        In drizzlepac's order (its ``SkyCellProduct`` list): per detector, per filter, the
        coarse layer (IR, PC) then the fine one.

    Raises
    ------
    InvalidInputError
        A file cannot be read or lacks ``PHOTFLAM``.

    Notes
    -----
    Source: drizzlepac ``poller_utils.interpret_mvm_input`` (``layer_method='all'``),
    ``sort_poller_table``, ``build_mvm_tree``, ``select_common_filetype``, ``parse_mvm_tree``.
    """
    from ..svm._analyze import sort_rows

    def ordered(rows):
        values = None if photflam is None else [photflam[r.filename] for r in rows]
        return sort_rows(rows, values)

    skycell = poller.skycell.lower()
    new_tree = _group(ordered(list(poller.rows)))
    old_tree = _group(ordered(list(poller.old_rows)))
    layers = []
    for detector, filters in new_tree.items():
        for filter_name, rows in filters.items():
            members, kind = _common_filetype(rows)
            first = members[0]
            instrument = first.instrument.lower()
            det = "pc" if instrument == "wfpc2" else detector.lower()
            scales = (("coarse", COARSE_LAYER), ("fine", FINE_LAYER))
            if det not in MULTI_SCALE_DETECTORS:
                scales = scales[1:]
            # drizzlepac shares one exposure object between the coarse and the fine layer:
            # both layers' inputs carry the first layer's names
            prefix = layer_basename(skycell, instrument, det, filter_name, "")[:-1]
            naming_layer = scales[0][1]
            exposures = [_layer_exposure(r, prefix, naming_layer) for r in members]
            old = old_tree.get(detector, {}).get(filter_name, [])
            exposures += [_layer_exposure(r, prefix, naming_layer) for r in old]
            for scale, layer in scales:
                layers.append(SkyCellLayer(skycell=skycell, instrument=instrument, detector=det,
                                           filters=filter_name, scale=scale, layer=layer,
                                           exposures=tuple(exposures),
                                           all_mvm_exposures=tuple(poller.all_mvm_exposures)))
            ignored = [r.filename for r in rows if r.filetype != kind]
            if ignored:
                log.info("%s %s %s: %s ignored (the layer is made from the %s files)", skycell,
                         det, filter_name, ", ".join(ignored), kind.upper())
    return layers
