"""HAP parameter selection for SVM and MVM products (hap-pipeline.md §1.7).

Every product of a visit (total, filter, exposure) or of a sky-cell layer gets its own
parameters for four steps: ``alignment``, ``astrodrizzle``, ``catalog generation`` and
``quality control``. They are chosen in three moves, as drizzlepac's
``config_utils.HapConfig`` does:

1. :func:`hap_conditions` lists the observing conditions of the product (its kind, the number
   of exposures, the date for WFC3/UVIS, the filter for ACS/SBC and WFC3/IR).
2. The index of the instrument/detector maps each step's conditions to parameter blocks; every
   condition found in the index contributes its block, in list order, each recursively merged
   over the previous ones (:func:`merge_parameters`, later wins). When no condition is found the
   step's ``all`` block is used.
3. The astrodrizzle result is flattened (:func:`flatten_astrodrizzle`: the ``"STEP n: ..."``
   section headings are dropped) into AstroDrizzle keyword arguments; the concentration-index
   limits of the quality-control block are looked up per filter when asked for
   (:func:`hapgpu.catalogs.ci_limits`).

A custom parameter file (``runsinglehap -c``) replaces the automatic selection; see
:func:`read_custom_pars` and :func:`output_custom_pars`.

The values are drizzlepac 3.11's ``pars/hap_pars/{svm,mvm}_parameters``, shipped as
``hapgpu/pars/hap/{svm,mvm}_<instrument>_<detector>.json`` (the index and that detector's
blocks) and ``hapgpu/pars/hap/{svm,mvm}_any.json`` (blocks shared by every detector), with the
values typed: DQ bit masks are integers, ``"4 3"`` pairs are two-number lists and blank numbers
are null. The catalog steps have a single ``all`` block each, read through
:func:`hapgpu.catalogs.catalog_parameters`.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from .._jsonfile import read_json_object
from ..astrodrizzle import AstroDrizzleParameters, resolve_parameters
from ..catalogs import CatalogParameters, catalog_parameters, ci_limits
from ..errors import InvalidParameterError, OutputWriteError

__all__ = [
    "HAP_DETECTORS",
    "IR_GRISMS",
    "PIPELINES",
    "PRODUCT_KINDS",
    "SBC_BLUE_FILTERS",
    "STEPS",
    "UVIS_POST_2012_MJD",
    "HapConfig",
    "flatten_astrodrizzle",
    "hap_conditions",
    "hap_config",
    "merge_parameters",
    "output_custom_pars",
    "read_custom_pars",
]

log = logging.getLogger(__name__)

FORMAT = "hapgpu.hap_config/1"

#: Product kinds: a detector's total, a filter product, a single exposure (or an MVM layer
#: and its exposures, which are "filter" and "exposure" products).
PRODUCT_KINDS = ("total", "filter", "exposure")
PIPELINES = ("svm", "mvm")
#: The four steps, with drizzlepac's names (also the keys of a custom parameter file).
STEPS = ("alignment", "astrodrizzle", "catalog generation", "quality control")
#: (instrument, detector) pairs with a parameter index, lower case.
HAP_DETECTORS = (("acs", "hrc"), ("acs", "sbc"), ("acs", "wfc"), ("wfc3", "ir"), ("wfc3", "uvis"),
                 ("wfpc2", "pc"))

#: 2012-11-08T02:59:15 UTC as an MJD (56239 d + 10755 s): WFC3/UVIS products whose first
#: exposure starts on or after it use the "post" parameter blocks, earlier ones the "pre"
#: (pre2012) blocks (drizzlepac ``config_utils``).
UVIS_POST_2012_MJD = 56239.0 + 10755.0 / 86400.0
#: ACS/SBC filters that get the "blue" blocks.
SBC_BLUE_FILTERS = ("f115lp", "f122m")
#: WFC3/IR grisms (their blocks are never used in practice: grism exposures are not drizzled).
IR_GRISMS = ("g102", "g141")

_CATALOG_STEPS = ("catalog generation", "quality control")
_CI_TYPES = ("aperture", "segment")


# --------------------------------------------------------------------------- the result
@dataclass(frozen=True)
class HapConfig:
    """The parameters of every HAP step for one product.

    Build it with :func:`hap_config`.

    Attributes
    ----------
    product_kind : {"total", "filter", "exposure"}
    pipeline : {"svm", "mvm"}
    instrument, detector : str
        Lower case; WFPC2's detector is always ``"pc"``.
    n_exposures : int
        The exposure count the conditions were chosen with (for an MVM layer ``round(MEANNEXP)``).
    conditions : tuple of str
        The observing conditions of the product (drizzlepac's ``HapConfig.conditions``), in
        merge order, including those the index has no block for.
    blocks : dict
        ``{step: (condition, ...)}``: the index entries actually merged per step, in order
        (``("all",)`` for the fallback); every tuple is empty when a custom file was used.
    steps : dict
        ``{step: parameters}`` for the four :data:`STEPS`, as drizzlepac's
        ``HapConfig.as_single_giant_dict()`` returns them: the astrodrizzle block flattened,
        the quality-control CI limits already looked up.
    catalog : hapgpu.catalogs.CatalogParameters
        The catalog-generation and quality-control blocks as the catalog stage takes them.
    product_basename : str or None
        The product's HAP base name, the key of a custom parameter file.
    custom_source : str or None
        The custom parameter file the values came from (None: automatic selection).
    use_defaults : bool
        Which block of the custom file was read (``default_values`` when True).
    """

    product_kind: str
    pipeline: str
    instrument: str
    detector: str
    n_exposures: int
    conditions: tuple
    blocks: dict
    steps: dict = field(repr=False)
    catalog: CatalogParameters = field(repr=False)
    product_basename: str | None = None
    custom_source: str | None = None
    use_defaults: bool = True

    @property
    def astrodrizzle(self) -> dict:
        """AstroDrizzle keyword arguments (``{name: value}``, section headings dropped)."""
        return self.steps["astrodrizzle"]

    @property
    def alignment(self) -> dict:
        """The alignment block (``run_align``, ``generate_source_catalogs``, fit methods, ...)."""
        return self.steps["alignment"]

    @property
    def quality_control(self) -> dict:
        """The quality-control block, CI limits looked up (same as ``catalog.quality_control``)."""
        return self.steps["quality control"]

    def astrodrizzle_parameters(self, **overrides) -> AstroDrizzleParameters:
        """The astrodrizzle block as typed :class:`hapgpu.astrodrizzle.AstroDrizzleParameters`.

        Parameters
        ----------
        **overrides
            Individual AstroDrizzle parameters applied on top (e.g. the SVM per-product
            overrides of hap-pipeline.md §1.12).

        Raises
        ------
        InvalidParameterError
            An unknown name or a value of the wrong type (possible only with a custom file).
        """
        return resolve_parameters(self.astrodrizzle, **overrides)

    def as_dict(self) -> dict:
        """A deep copy of :attr:`steps` (drizzlepac's ``as_single_giant_dict()``)."""
        return copy.deepcopy(self.steps)


# --------------------------------------------------------------------------- shipped tables
def _read_table(name: str) -> dict:
    resource = resources.files("hapgpu.pars").joinpath("hap", name)
    try:
        data = json.loads(resource.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidParameterError(f"cannot read shipped HAP parameter table hap/{name}: {exc}") from exc
    if data.get("format") != FORMAT:
        raise InvalidParameterError(f"hap/{name}: format is {data.get('format')!r}, expected {FORMAT!r}")
    return data


@functools.cache
def _detector_table(pipeline: str, instrument: str, detector: str) -> dict:
    return _read_table(f"{pipeline}_{instrument}_{detector}.json")


@functools.cache
def _any_table(pipeline: str) -> dict:
    return _read_table(f"{pipeline}_any.json")


def _block(pipeline: str, instrument: str, detector: str, ref: str) -> dict:
    if ref.startswith("any/"):
        blocks, where = _any_table(pipeline)["blocks"], f"hap/{pipeline}_any.json"
        name = ref[len("any/"):]
    else:
        blocks, where = _detector_table(pipeline, instrument, detector)["blocks"], \
            f"hap/{pipeline}_{instrument}_{detector}.json"
        name = ref
    if name not in blocks:
        raise InvalidParameterError(f"{where}: the index names block {ref!r}, which is not there")
    return blocks[name]      # shared with the cache: merge_parameters copies what it takes


# --------------------------------------------------------------------------- pure functions
def merge_parameters(*blocks: Mapping) -> dict:
    """Recursively merge parameter blocks, later blocks winning.

    A key whose value is a mapping in both the result so far and the next block is merged
    key by key; any other value of the next block replaces (or adds) the key. This is the merge
    drizzlepac's ``config_utils.Par._dict_merge`` applies to the condition blocks in list order.

    Parameters
    ----------
    *blocks : mapping
        Nested ``{key: value}`` blocks, lowest priority first.

    Returns
    -------
    dict
        A new dictionary; the inputs are not modified and share no nested objects with it.
    """
    merged: dict = {}
    for block in blocks:
        merged = _merge_two(merged, block)
    return merged


def _merge_two(base: dict, override: Mapping) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(out.get(key), dict) and isinstance(value, Mapping):
            out[key] = _merge_two(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def flatten_astrodrizzle(block: Mapping) -> dict:
    """AstroDrizzle keyword arguments from a sectioned astrodrizzle block.

    The ``hap_pars`` astrodrizzle files group parameters under headings such as
    ``"STEP 7: DRIZZLE FINAL COMBINED IMAGE"``; the headings are dropped and their contents
    lifted to the top level, at any depth, in order (a later duplicate name wins). An already
    flat block is returned as a copy.

    Parameters
    ----------
    block : mapping

    Returns
    -------
    dict
        ``{parameter name: value}``.
    """
    flat: dict = {}
    for key, value in block.items():
        if isinstance(value, Mapping):
            flat.update(flatten_astrodrizzle(value))
        else:
            flat[key] = copy.deepcopy(value)
    return flat


def _normalise_target(instrument, detector, pipeline) -> tuple[str, str, str]:
    inst = str(instrument).strip().lower()
    det = str(detector).strip().lower()
    if inst == "wfpc2":
        det = "pc"      # HAP names every WFPC2 product (all four chips) after the PC
    pipe = str(pipeline).strip().lower()
    if pipe not in PIPELINES:
        raise InvalidParameterError(f"pipeline must be 'svm' or 'mvm', got {pipeline!r}")
    if (inst, det) not in HAP_DETECTORS:
        raise InvalidParameterError(
            f"no HAP parameters for instrument {instrument!r} detector {detector!r}; "
            f"known: {', '.join('/'.join(p) for p in HAP_DETECTORS)}")
    return inst, det, pipe


def _check_count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise InvalidParameterError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise InvalidParameterError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def _uvis_era(expstart_mjd, what: str) -> str:
    if expstart_mjd is None:
        raise InvalidParameterError(
            f"expstart_mjd (EXPSTART of the first exposure) is needed to choose the WFC3/UVIS "
            f"{what} parameters (before or after MJD {UVIS_POST_2012_MJD:.5f})")
    if isinstance(expstart_mjd, bool) or not isinstance(expstart_mjd, (int, float)) \
            or not math.isfinite(expstart_mjd):
        raise InvalidParameterError(f"expstart_mjd must be a finite number (MJD), got {expstart_mjd!r}")
    return "post" if expstart_mjd >= UVIS_POST_2012_MJD else "pre"


def _range_condition(n: int, steps: tuple, name: str) -> list[str]:
    """``name.format(suffix)`` for the first ``(minimum, maximum or None, suffix)`` range holding n."""
    for low, high, suffix in steps:
        if n >= low and (high is None or n <= high):
            return [name.format(suffix)]
    return []


def hap_conditions(product_kind: str, instrument: str, detector: str, *, n_exposures: int,
                   filters: str | None = None, expstart_mjd: float | None = None,
                   pipeline: str = "svm") -> tuple[str, ...]:
    """The observing conditions of one product, in merge order (hap-pipeline.md §1.7).

    Parameters
    ----------
    product_kind : {"total", "filter", "exposure"}
    instrument, detector : str
        Case-insensitive; any WFPC2 detector is ``"pc"``.
    n_exposures : int
        Total and filter products: the number of exposures they combine (for an MVM layer,
        ``round(MEANNEXP)``, which may be 0). Exposure products: the number of exposures of
        their filter product (1 makes the exposure a singleton).
    filters : str, optional
        The filter name of a filter product's exposures (needed for ACS/SBC and WFC3/IR filter
        products of more than one exposure).
    expstart_mjd : float, optional
        EXPSTART (MJD) of the product's first exposure; needed for WFC3/UVIS totals and SVM
        WFC3/UVIS filter products of more than one exposure.
    pipeline : {"svm", "mvm"}

    Returns
    -------
    tuple of str
        Condition names. Totals: ``total_basic`` (WFC3/UVIS: ``total_basic_post`` when
        ``expstart_mjd >= UVIS_POST_2012_MJD``, else ``total_basic_pre``) then ``any_n1`` when
        n = 1. Filters: ``filter_basic`` then ``any_n1`` when n = 1, else the detector's
        n-range condition (e.g. ``wfc3_uvis_any_post_n2`` for 2-5 exposures, ``_n6`` from 6;
        MVM uses the ``_n2`` condition for every n > 1, and always for WFC3/UVIS).
        Exposures: ``single_basic`` then ``any_n1`` for a singleton.

    Raises
    ------
    InvalidParameterError
        Unknown kind, pipeline or detector; a count that is not an integer >= 0 (>= 1 for
        SVM); a missing ``filters`` or ``expstart_mjd`` that the rules need.
    """
    inst, det, pipe = _normalise_target(instrument, detector, pipeline)
    kind = str(product_kind).strip().lower()
    if kind not in PRODUCT_KINDS:
        raise InvalidParameterError(
            f"product_kind must be one of {', '.join(PRODUCT_KINDS)}, got {product_kind!r}")
    n = _check_count("n_exposures", n_exposures, 0 if pipe == "mvm" else 1)

    if kind == "exposure":
        return ("single_basic", "any_n1") if n == 1 else ("single_basic",)

    if kind == "total":
        if (inst, det) == ("wfc3", "uvis"):
            conditions = [f"total_basic_{_uvis_era(expstart_mjd, 'total')}"]
        else:
            conditions = ["total_basic"]
        if n == 1:
            conditions.append("any_n1")
        return tuple(conditions)

    conditions = ["filter_basic"]
    if n == 1:
        return ("filter_basic", "any_n1")
    svm = pipe == "svm"
    two_to_five = ((2, 5, "n2"), (6, None, "n6"))
    if (inst, det) in (("acs", "hrc"), ("acs", "wfc")):
        ranges = two_to_five if svm else ((2, None, "n2"),)
        conditions += _range_condition(n, ranges, f"{inst}_{det}_any_{{}}")
    elif (inst, det) == ("acs", "sbc"):
        if _filter_name(filters, inst, det) in SBC_BLUE_FILTERS:
            conditions += _range_condition(n, two_to_five, "acs_sbc_blue_{}")
        else:
            conditions.append("acs_sbc_any_any")
    elif (inst, det) == ("wfc3", "ir"):
        if _filter_name(filters, inst, det) in IR_GRISMS:
            conditions += _range_condition(n, ((2, 3, "n2"), (4, None, "n4")), "wfc3_ir_grism_{}")
        else:
            ranges = ((2, 3, "n2"), (4, None, "n4")) if svm else ((2, None, "n2"),)
            conditions += _range_condition(n, ranges, "wfc3_ir_any_{}")
    elif (inst, det) == ("wfc3", "uvis"):
        if svm:
            era = _uvis_era(expstart_mjd, "filter")
            conditions += _range_condition(n, two_to_five, f"wfc3_uvis_any_{era}_{{}}")
        else:
            conditions.append("wfc3_uvis_any_post_n2")
    else:  # wfpc2/pc
        ranges = ((2, 2, "n2"), (3, 3, "n3"), (4, None, "n4")) if svm else ((2, None, "n2"),)
        conditions += _range_condition(n, ranges, "wfpc2_pc_any_{}")
    return tuple(conditions)


def _filter_name(filters, inst, det) -> str:
    if not filters or not isinstance(filters, str):
        raise InvalidParameterError(
            f"filters (the exposures' filter name) is needed to choose {inst.upper()}/{det.upper()} "
            f"filter-product parameters, got {filters!r}")
    return filters.strip().lower()


# --------------------------------------------------------------------------- custom files
def read_custom_pars(source, product_basename: str, *, use_defaults: bool = True) -> dict:
    """The four step blocks of one product from a custom parameter file (``runsinglehap -c``).

    Parameters
    ----------
    source : str, pathlib.Path or mapping
        A JSON file ``{product_basename: {"parameters": {step: pars}, "default_values":
        {step: pars}}}`` (as :func:`output_custom_pars` and drizzlepac write), or its content.
    product_basename : str
        The product's HAP base name (``hst_11665_06_wfc3_uvis_f555w_ib4606``).
    use_defaults : bool
        Read ``default_values`` (True, drizzlepac's default) or ``parameters``.

    Returns
    -------
    dict
        ``{step: block}`` for the four :data:`STEPS`, as written (astrodrizzle not yet flattened).

    Raises
    ------
    InvalidParameterError
        The file cannot be read, is not JSON, or lacks the product, the block or a step; the
        message names the file and what is missing.
    """
    where = "custom parameters" if isinstance(source, Mapping) else f"custom parameter file {source}"
    data = source if isinstance(source, Mapping) else read_json_object(source, "custom parameter file")
    if product_basename not in data:
        known = ", ".join(sorted(map(str, data))) or "none"
        raise InvalidParameterError(f"{where}: no entry for product {product_basename!r} (products: {known})")
    entry = data[product_basename]
    set_name = "default_values" if use_defaults else "parameters"
    if not isinstance(entry, Mapping) or not isinstance(entry.get(set_name), Mapping):
        raise InvalidParameterError(
            f"{where}: product {product_basename!r} has no {set_name!r} block "
            f"(use_defaults={use_defaults} reads {set_name!r})")
    block = entry[set_name]
    missing = [step for step in STEPS if not isinstance(block.get(step), Mapping)]
    if missing:
        raise InvalidParameterError(
            f"{where}: product {product_basename!r} {set_name!r} lacks the step(s) {', '.join(missing)}")
    return {step: copy.deepcopy(dict(block[step])) for step in STEPS}


def _same_file(a, b) -> bool:
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.abspath(a) == os.path.abspath(b)


def output_custom_pars(configs, path) -> Path:
    """Write the parameters of products to a custom parameter file (``output_custom_pars_file``).

    Each product becomes ``{product_basename: {"parameters": steps, "default_values": steps}}``
    with the four :data:`STEPS` as :meth:`HapConfig.as_dict` gives them, the layout
    drizzlepac's ``HapConfig.write_pars`` writes and :func:`hap_config` reads back with
    ``custom=``. An existing file is read and its products updated (others kept); the file is
    written under a temporary name and then renamed.

    Parameters
    ----------
    configs : HapConfig or iterable of HapConfig
        Each must have a ``product_basename``.
    path : str or pathlib.Path

    Returns
    -------
    pathlib.Path

    Raises
    ------
    InvalidParameterError
        A configuration without ``product_basename``; ``path`` is the custom file a
        configuration was read from (input and output must differ); an existing ``path``
        that is not a custom parameter file.
    OutputWriteError
        The file cannot be written.
    """
    path = Path(path)
    configs = [configs] if isinstance(configs, HapConfig) else list(configs)
    entries = {}
    for config in configs:
        if not isinstance(config, HapConfig):
            raise InvalidParameterError(
                f"output_custom_pars takes HapConfig objects, got {type(config).__name__}")
        if not config.product_basename:
            raise InvalidParameterError(
                f"a {config.product_kind} configuration without product_basename cannot be written to {path}")
        if config.custom_source is not None and _same_file(config.custom_source, path):
            raise InvalidParameterError(
                f"input and output custom parameter files must have different names: {path}")
        steps = config.as_dict()
        entries[config.product_basename] = {"parameters": steps, "default_values": copy.deepcopy(steps)}
    data = read_json_object(path, "custom parameter file") if path.exists() else {}
    data.update(entries)
    text = json.dumps(data, indent=4) + "\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise OutputWriteError(f"cannot write custom parameter file {path}: {exc.strerror or exc}") from exc
    log.info("wrote custom parameters of %d product(s) to %s", len(entries), path)
    return path


# --------------------------------------------------------------------------- the entry point
def _ci_product_name(kind, pipeline, inst, det, filters, product_basename) -> str:
    """The name the CI table key is parsed from (tokens 3, 4 and 5 split on ``_``).

    The product's base name when given; otherwise a name with HAP's layout, so that the lookup
    behaves as for a real product: ``hst_<prop>_<visit>_<inst>_<det>_<filter|total>_...`` (SVM)
    or ``hst_skycell-<id>_<inst>_<det>_<filter>_all`` (MVM, whose tokens shift by one, so that
    MVM products keep the parameter-file CI limits, as drizzlepac does).
    """
    if product_basename:
        return str(product_basename)
    if pipeline == "mvm":
        return f"hst_skycell-p0000x00y00_{inst}_{det}_{filters}_all"
    token = "total" if kind == "total" else filters
    return f"hst_00000_00_{inst}_{det}_{token}_product"


def _with_ci_limits(catalog: CatalogParameters, name: str) -> CatalogParameters:
    quality = copy.deepcopy(catalog.quality_control)
    for cat_type in _CI_TYPES:
        block = quality.get("ci filter", {}).get(cat_type)
        if isinstance(block, dict) and block.get("lookup_ci_limits_from_table") is True:
            block["ci_lower_limit"], block["ci_upper_limit"] = ci_limits(catalog, cat_type, name)
    return replace(catalog, quality_control=quality)


def hap_config(product_kind: str, instrument: str, detector: str, *, n_exposures: int,
               filters: str | None = None, expstart_mjd: float | None = None,
               pipeline: str = "svm", mean_n_exposures: float | None = None,
               custom=None, product_basename: str | None = None,
               use_defaults: bool = True) -> HapConfig:
    """Choose the parameters of every HAP step for one product (drizzlepac ``HapConfig``).

    Parameters
    ----------
    product_kind : {"total", "filter", "exposure"}
        MVM sky-cell layers are ``"filter"`` products, their inputs ``"exposure"`` products.
    instrument, detector : str
        Case-insensitive (``"WFC3"``, ``"UVIS"``); any WFPC2 detector is ``"pc"``.
    n_exposures : int
        Number of exposures of the product (for an exposure: of its filter product or layer).
    filters : str, optional
        Filter name of the product's exposures (``"f555w"``); needed for filter products of
        ACS/SBC and WFC3/IR, and for the CI-table lookup when ``product_basename`` is not given.
    expstart_mjd : float, optional
        EXPSTART (MJD) of the first exposure; needed for WFC3/UVIS totals and SVM filter
        products.
    pipeline : {"svm", "mvm"}
    mean_n_exposures : float, optional
        MVM filter products (layers): the layer's MEANNEXP (mean number of exposures per
        pixel with data). Required there: the conditions use ``round(MEANNEXP)`` (Python's
        round, halves to even) instead of ``n_exposures``. Not allowed elsewhere.
    custom : str, pathlib.Path or mapping, optional
        A custom parameter file (see :func:`read_custom_pars`); it replaces the automatic
        selection. Its catalog blocks are merged over the shipped ones (identical for a complete
        file; drizzlepac would stop at a missing key).
    product_basename : str, optional
        The product's HAP base name: the key in a custom file (required with ``custom``) and the
        source of the CI-table key (tokens 3, 4, 5: instrument, detector, filter).
    use_defaults : bool
        With ``custom``: read its ``default_values`` (True) or ``parameters`` block.

    Returns
    -------
    HapConfig

    Raises
    ------
    InvalidParameterError
        Bad kind, pipeline, detector or count; a missing ``filters``, ``expstart_mjd`` or
        ``mean_n_exposures`` that the rules need; no index entry for any condition and no
        ``all`` entry; a custom file that cannot be read, lacks the product or a step, or
        whose astrodrizzle block has unknown names or bad values.

    Notes
    -----
    Conditions and merge: hap-pipeline.md §1.7 (drizzlepac 3.11 ``config_utils``). Only the
    CI limits are looked up after the selection (also for custom files, as drizzlepac does);
    SVM's later per-product overrides (§1.12) are the pipeline's, not made here.
    """
    inst, det, pipe = _normalise_target(instrument, detector, pipeline)
    kind = str(product_kind).strip().lower()
    if kind not in PRODUCT_KINDS:
        raise InvalidParameterError(
            f"product_kind must be one of {', '.join(PRODUCT_KINDS)}, got {product_kind!r}")
    count = _check_count("n_exposures", n_exposures, 1)
    if pipe == "mvm" and kind == "filter":
        if mean_n_exposures is None:
            raise InvalidParameterError(
                "mean_n_exposures (the layer's MEANNEXP) is needed to choose MVM filter-product parameters")
        if isinstance(mean_n_exposures, bool) or not isinstance(mean_n_exposures, (int, float)) \
                or not math.isfinite(mean_n_exposures) or mean_n_exposures < 0:
            raise InvalidParameterError(
                f"mean_n_exposures must be a finite number >= 0, got {mean_n_exposures!r}")
        n = round(mean_n_exposures)
    elif mean_n_exposures is not None:
        raise InvalidParameterError("mean_n_exposures applies only to MVM filter products (sky-cell layers)")
    else:
        n = count
    if kind in ("filter", "exposure") and not product_basename and not filters:
        raise InvalidParameterError(
            f"a {kind} product needs filters= or product_basename= (the CI-table key uses the filter)")
    conditions = hap_conditions(kind, inst, det, n_exposures=n, filters=filters,
                                expstart_mjd=expstart_mjd, pipeline=pipe)
    ci_name = _ci_product_name(kind, pipe, inst, det, filters, product_basename)

    if custom is not None:
        if not product_basename:
            raise InvalidParameterError("product_basename is needed to read a custom parameter file")
        steps, catalog = _custom_steps(custom, product_basename, use_defaults, inst, det, pipe)
        blocks = {step: () for step in STEPS}
        source = None if isinstance(custom, Mapping) else str(custom)
    else:
        steps, catalog, blocks = _automatic_steps(conditions, inst, det, pipe)
        source = None
        log.debug("%s %s %s/%s: conditions %s, astrodrizzle blocks %s", pipe, kind, inst, det,
                  conditions, blocks["astrodrizzle"])

    catalog = _with_ci_limits(catalog, ci_name)
    steps["quality control"] = copy.deepcopy(catalog.quality_control)
    steps = {step: steps[step] for step in STEPS}
    return HapConfig(product_kind=kind, pipeline=pipe, instrument=inst, detector=det,
                     n_exposures=n, conditions=conditions, blocks=blocks, steps=steps,
                     catalog=catalog, product_basename=product_basename, custom_source=source,
                     use_defaults=bool(use_defaults))


def _automatic_steps(conditions, inst, det, pipe):
    """Steps merged from the shipped blocks of ``conditions`` (``all`` when none is indexed)."""
    index = _detector_table(pipe, inst, det)["index"]
    steps, blocks = {}, {}
    for step in ("alignment", "astrodrizzle"):
        entries = index[step]
        used = tuple(c for c in conditions if c in entries)
        if not used:
            if "all" not in entries:
                raise InvalidParameterError(
                    f"hap/{pipe}_{inst}_{det}.json: no {step} parameters for conditions "
                    f"{', '.join(conditions)} and no 'all' entry")
            used = ("all",)
        merged = merge_parameters(*(_block(pipe, inst, det, entries[c]) for c in used))
        steps[step] = flatten_astrodrizzle(merged) if step == "astrodrizzle" else merged
        blocks[step] = used
    for step in _CATALOG_STEPS:
        blocks[step] = ("all",)
    catalog = catalog_parameters(inst, det, mvm=pipe == "mvm")
    # the step dictionary keeps the file's layout (drizzlepac's 'all' block); the catalog
    # stage's CatalogParameters may add derived keys (the MVM dao TWEAK_FWHMPSF)
    steps["catalog generation"] = copy.deepcopy(
        _shipped_catalog_file(pipe, inst, det)["catalog generation"])
    return steps, catalog, blocks


def _custom_steps(custom, product_basename, use_defaults, inst, det, pipe):
    """Steps from a custom parameter file; astrodrizzle flattened and checked."""
    where = "custom parameters" if isinstance(custom, Mapping) else f"custom parameter file {custom}"
    raw = read_custom_pars(custom, product_basename, use_defaults=use_defaults)
    astrodrizzle = flatten_astrodrizzle(raw["astrodrizzle"])
    try:
        resolve_parameters(astrodrizzle)
    except InvalidParameterError as exc:
        raise InvalidParameterError(
            f"{where}, product {product_basename!r}: astrodrizzle parameters: {exc}") from exc
    catalog = catalog_parameters(inst, det, mvm=pipe == "mvm",
                                 overrides={step: raw[step] for step in _CATALOG_STEPS})
    steps = {"alignment": raw["alignment"], "astrodrizzle": astrodrizzle,
             "catalog generation": raw["catalog generation"]}
    log.debug("%s: parameters from %s", product_basename, where)
    return steps, catalog


@functools.cache
def _shipped_catalog_file(pipe: str, inst: str, det: str) -> dict:
    text = resources.files("hapgpu.pars").joinpath(f"catalogs_{pipe}_{inst}_{det}.json").read_text("utf-8")
    return json.loads(text)
