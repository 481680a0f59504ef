"""Catalog parameters per instrument and detector (drizzlepac's ``catalog generation`` and
``quality control`` steps).

The values are those of drizzlepac 3.11's
``pars/hap_pars/{svm,mvm}_parameters/<inst>/<det>/<inst>_<det>_{catalog_generation,quality_control}_all.json``,
shipped as ``hapgpu/pars/catalogs_{svm,mvm}_<inst>_<det>.json`` with the same keys, so a user's
drizzlepac custom parameter block applies unchanged. The concentration-index (CI) limits per
filter are those of drizzlepac's ``ci_ap_cor_table_ap_20_2016.txt`` (Whitmore 2016), shipped as
``hapgpu/pars/catalogs_ci_limits.json``.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import InvalidInputError, InvalidParameterError

__all__ = ["CatalogParameters", "catalog_parameters", "ci_limits", "DETECTORS"]

#: (instrument, detector) pairs with a parameter file, lower case.
DETECTORS = (("acs", "hrc"), ("acs", "sbc"), ("acs", "wfc"), ("wfc3", "ir"), ("wfc3", "uvis"),
             ("wfpc2", "pc"))

CATALOG_TYPES = ("aperture", "segment")


@dataclass(frozen=True)
class CatalogParameters:
    """The two parameter blocks of the HAP catalog step.

    Attributes
    ----------
    generation : dict
        drizzlepac's ``catalog generation`` block (``bkg_box_size``, ``nsigma``, ``aperture_1``,
        ``TWEAK_FWHMPSF``, ``sourcex`` sub-block, ...).
    quality_control : dict
        drizzlepac's ``quality control`` block (``ci filter`` → ``aperture``/``segment`` →
        ``bthresh``, ``ci_lower_limit``, ``ci_upper_limit``, ...).
    instrument, detector : str
        Lower case (``"wfc3"``, ``"uvis"``).
    mvm : bool
        True for the multi-visit parameter set.
    """

    generation: dict
    quality_control: dict
    instrument: str
    detector: str
    mvm: bool = False

    @property
    def sourcex(self) -> dict:
        """The segmentation sub-block of :attr:`generation`."""
        return self.generation["sourcex"]


def _read_json(name: str) -> dict:
    text = resources.files("hapgpu.pars").joinpath(name).read_text()
    return json.loads(text)


@functools.lru_cache(maxsize=None)
def _parameter_file(mode: str, instrument: str, detector: str) -> dict:
    return _read_json(f"catalogs_{mode}_{instrument}_{detector}.json")


@functools.lru_cache(maxsize=1)
def _ci_table() -> dict:
    return _read_json("catalogs_ci_limits.json")


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def catalog_parameters(instrument: str, detector: str, *, mvm: bool = False,
                       overrides: dict | None = None) -> CatalogParameters:
    """The HAP catalog parameters of one detector.

    Parameters
    ----------
    instrument, detector : str
        Case-insensitive (``"WFC3"``, ``"UVIS"``).
    mvm : bool
        Use the multi-visit set (``runmultihap``) instead of the single-visit one.
    overrides : dict, optional
        ``{"catalog generation": {...}, "quality control": {...}}`` (either key optional),
        recursively merged over the shipped values, as drizzlepac merges a custom parameter file.

    Returns
    -------
    CatalogParameters

    Raises
    ------
    InvalidInputError
        No parameter set for this instrument/detector.
    InvalidParameterError
        ``overrides`` has a key other than the two step names.
    """
    inst, det = instrument.lower(), detector.lower()
    if (inst, det) not in DETECTORS:
        raise InvalidInputError(
            f"no HAP catalog parameters for instrument {instrument!r} detector {detector!r}; "
            f"known: {', '.join('/'.join(p) for p in DETECTORS)}")
    shipped = _parameter_file("mvm" if mvm else "svm", inst, det)
    if not mvm or "quality control" not in shipped:
        quality = _parameter_file("svm", inst, det)["quality control"]
    else:
        quality = shipped["quality control"]
    generation = shipped["catalog generation"]
    if overrides:
        unknown = set(overrides) - {"catalog generation", "quality control"}
        if unknown:
            raise InvalidParameterError(
                f"catalog parameter overrides have unknown step(s) {sorted(unknown)}; use "
                "'catalog generation' and/or 'quality control'")
        generation = _merge(generation, overrides.get("catalog generation", {}))
        quality = _merge(quality, overrides.get("quality control", {}))
    generation = copy.deepcopy(generation)
    if "TWEAK_FWHMPSF" not in generation:
        # the MVM files keep TWEAK_FWHMPSF inside the "dao" block
        generation["TWEAK_FWHMPSF"] = generation.get("dao", {}).get("TWEAK_FWHMPSF")
    return CatalogParameters(generation=generation, quality_control=copy.deepcopy(quality),
                             instrument=inst, detector=det, mvm=mvm)


def _ci_key(product_filename: str) -> str | None:
    tokens = Path(product_filename).name.split("_")
    if len(tokens) < 6:
        return None
    inst = tokens[3].upper()
    det = tokens[4].upper()[:2] if inst == "WFPC2" else tokens[4].upper()
    return f"{inst}_{det}_{tokens[5].upper()}"


def ci_limits(params: CatalogParameters, cat_type: str, product_filename: str) -> tuple[float, float]:
    """Concentration-index limits (lower, upper) used to flag one catalog.

    When ``quality control → ci filter → <cat_type> → lookup_ci_limits_from_table`` is true, the
    row ``INSTR_DET_FILTER`` of the CI table (key from the HAP product name: tokens 3, 4 and 5
    of ``hst_<prop>_<visit>_<instr>_<det>_<filter>_...``) replaces the parameter-file values;
    total products (``..._TOTAL``) and unknown filters keep them.

    Parameters
    ----------
    params : CatalogParameters
    cat_type : {"aperture", "segment"}
        ``"point"`` is accepted for ``"aperture"``.
    product_filename : str
        The drizzled product's file name.

    Returns
    -------
    tuple of float
        (ci_lower_limit, ci_upper_limit), magnitudes.
    """
    cat_type = "aperture" if cat_type == "point" else cat_type
    if cat_type not in CATALOG_TYPES:
        raise InvalidParameterError(f"catalog type must be 'aperture' or 'segment', not {cat_type!r}")
    block = params.quality_control["ci filter"][cat_type]
    lower, upper = float(block["ci_lower_limit"]), float(block["ci_upper_limit"])
    if block.get("lookup_ci_limits_from_table", False):
        row = _ci_table().get(_ci_key(product_filename) or "")
        if row is not None:
            lower, upper = row["ci_lower"], row["ci_upper"]
    return lower, upper
