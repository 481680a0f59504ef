"""AstroDrizzle parameters: one typed dataclass, shipped parameter sets, and file readers.

Merge order (later wins): the dataclass defaults (AstroDrizzle's ``astrodrizzle.cfg``) <
a parameter file or named set < keyword arguments. Values are converted once, here, to their
types: numbers come back as numbers, DQ bit masks as integers, ``"4 3"`` pairs as tuples.

Two file formats are read:

* hapgpu's typed JSON (``{"format": "hapgpu.astrodrizzle/1", "parameters": {...}}``), the
  format of the sets shipped in :mod:`hapgpu.pars`;
* drizzlepac's ``hap_pars`` JSON: an astrodrizzle step file (flat keys plus ``"STEP n: ..."``
  sections whose headings are dropped) or a custom parameter file
  (``{product: {"parameters": {...}, "default_values": {...}}}``, astrodrizzle step).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .._jsonfile import read_json_object
from ..errors import InvalidParameterError

__all__ = [
    "PARAMETER_SETS",
    "AstroDrizzleParameters",
    "load_parameters",
    "parse_bits",
    "read_hap_pars",
    "resolve_parameters",
    "write_parameters",
]

log = logging.getLogger(__name__)

FORMAT = "hapgpu.astrodrizzle/1"

#: Named parameter sets shipped in ``hapgpu.pars`` (file ``astrodrizzle_<name>.json``).
PARAMETER_SETS = ("defaults", "filter_basic", "total_basic", "acs_wfc_n2", "acs_wfc_n6",
                  "wfc3_uvis_n2", "wfc3_uvis_n6", "wfc3_ir_n2")

# AstroDrizzle options that have no effect here (file handling, parallelism, GUI state).
_IGNORED = frozenset({
    "_mdriztab_btn_", "_task_name_", "runfile", "num_cores", "in_memory", "restore", "preserve",
    "overwrite", "clean", "driz_sep_compress", "combine_bufsize", "rules_file", "mdriztab",
    "updatewcs", "build", "input", "output", "blot_sinscl",
})
# Options accepted only at their neutral value.
_NEUTRAL = {"wcskey": ("", " ", None), "group": ("", None), "skymask_cat": ("", None)}

_SKY_METHODS = ("localmin", "globalmin", "match", "globalmin+match")
_SKY_STATS = ("median", "mode", "mean")
_COMBINE = ("minmed", "iminmed", "median", "imedian", "mean", "imean", "sum")
_KERNELS = ("square", "turbo", "point", "gaussian", "tophat", "lanczos2", "lanczos3")
_INTERP = ("poly5", "poly3", "linear", "nearest", "lanczos3", "lanczos5", "lan3", "lan5")
_WHT_TYPES = ("EXP", "ERR", "IVM")
_UNITS = ("cps", "counts")

#: Pixels of one HAP sky cell: 0.2 deg at 0.04 arcsec/pixel (18000 pixels) plus 256 pixels of
#: overlap on each side (drizzlepac's sky-cell grid: PC_SIZE 4.2 deg / SC_NXY 21, SC_OLAP 256).
SKY_CELL_PIXELS = (18000 + 2 * 256) ** 2


#: Parameters of hapgpu's own, which AstroDrizzle does not have.
HAPGPU_ONLY_PARAMETERS = ("max_output_pixels", "header_rules")


def _p(default, kind, choices=None, doc=""):
    return field(default=default, metadata={"kind": kind, "choices": choices, "doc": doc})


@dataclass(frozen=True)
class AstroDrizzleParameters:
    """Every AstroDrizzle parameter hapgpu honours, typed, with AstroDrizzle's defaults.

    Names are AstroDrizzle's. Build one with :func:`resolve_parameters` (which merges a file
    and keyword arguments and converts strings), or directly with typed values.
    ``bits`` values are integers of DQ flags treated as good (None: every DQ value is good).
    """

    crbit: int = _p(4096, "int", doc="DQ bit written for cosmic rays")
    stepsize: int = _p(10, "int", doc="coordinate-table step, pixels")
    resetbits: int = _p(4096, "bits0", doc="DQ bits cleared in the inputs before processing")
    context: bool = _p(True, "bool", doc="write a context image")
    coeffs: bool = _p(True, "bool", doc="use the distortion model (must be True)")
    proc_unit: str = _p("native", "str", ("native", "electrons"))
    gain: float | None = _p(None, "optfloat", doc="gain override (e-/DN)")
    gnkeyword: str = _p("ATODGNA,ATODGNB,ATODGNC,ATODGND", "str")
    rdnoise: float | None = _p(None, "optfloat", doc="read-noise override (e-)")
    rnkeyword: str = _p("READNSEA,READNSEB,READNSEC,READNSED", "str")
    exptime: float | None = _p(None, "optfloat", doc="exposure-time override (s)")
    expkeyword: str = _p("EXPTIME", "str")
    # STEP 1: static mask
    static: bool = _p(True, "bool")
    static_sig: float = _p(4.0, "float")
    # STEP 2: sky
    skysub: bool = _p(True, "bool")
    skymethod: str = _p("localmin", "str", _SKY_METHODS)
    skystat: str = _p("median", "str", _SKY_STATS)
    skywidth: float = _p(0.1, "float")
    skylower: float | None = _p(None, "optfloat")
    skyupper: float | None = _p(None, "optfloat")
    skyclip: int = _p(5, "int")
    skylsigma: float = _p(4.0, "float")
    skyusigma: float = _p(4.0, "float")
    use_static: bool = _p(True, "bool")
    sky_bits: int | None = _p(0, "bits")
    skyuser: str = _p("", "str", doc="header keyword with user sky values (skysub off)")
    skyfile: str = _p("", "str", doc="file of user sky values: 'name sky1 [sky2 ...]' per line")
    # STEP 3: separate drizzle
    driz_separate: bool = _p(True, "bool")
    driz_sep_kernel: str = _p("turbo", "str", _KERNELS)
    driz_sep_wt_scl: str = _p("exptime", "wtscl")
    driz_sep_pixfrac: float = _p(1.0, "float")
    driz_sep_fillval: float | None = _p(None, "optfloat")
    driz_sep_bits: int | None = _p(0, "bits")
    # STEP 3a
    driz_sep_wcs: bool = _p(False, "bool")
    driz_sep_refimage: str = _p("", "str")
    driz_sep_rot: float | None = _p(None, "optfloat")
    driz_sep_scale: float | None = _p(None, "optfloat")
    driz_sep_outnx: float | None = _p(None, "optfloat")
    driz_sep_outny: float | None = _p(None, "optfloat")
    driz_sep_ra: float | None = _p(None, "optfloat")
    driz_sep_dec: float | None = _p(None, "optfloat")
    driz_sep_crpix1: float | None = _p(None, "optfloat")
    driz_sep_crpix2: float | None = _p(None, "optfloat")
    # STEP 4: median
    median: bool = _p(True, "bool")
    median_newmasks: bool = _p(True, "bool")
    combine_maskpt: float = _p(0.3, "float")
    combine_type: str = _p("minmed", "str", _COMBINE)
    combine_nsigma: tuple[float, float] = _p((4.0, 3.0), "pair")
    combine_nlow: int = _p(0, "int")
    combine_nhigh: int = _p(0, "int")
    combine_lthresh: float | None = _p(None, "optfloat")
    combine_hthresh: float | None = _p(None, "optfloat")
    combine_grow: int = _p(1, "int")
    # STEP 5: blot
    blot: bool = _p(True, "bool")
    blot_interp: str = _p("poly5", "str", _INTERP)
    blot_addsky: bool = _p(True, "bool")
    blot_skyval: float = _p(0.0, "float")
    # STEP 6: driz_cr
    driz_cr: bool = _p(True, "bool")
    driz_cr_corr: bool = _p(False, "bool")
    driz_cr_snr: tuple[float, float] = _p((3.5, 3.0), "pair")
    driz_cr_grow: int = _p(1, "int")
    driz_cr_ctegrow: int = _p(0, "int")
    driz_cr_scale: tuple[float, float] = _p((1.2, 0.7), "pair")
    # STEP 7: final drizzle
    driz_combine: bool = _p(True, "bool")
    final_wht_type: str = _p("EXP", "upper", _WHT_TYPES)
    final_kernel: str = _p("square", "str", _KERNELS)
    final_wt_scl: str = _p("exptime", "wtscl")
    final_pixfrac: float = _p(1.0, "float")
    final_fillval: float | None = _p(None, "optfloat")
    final_maskval: float | None = _p(None, "optfloat")
    final_bits: int | None = _p(0, "bits")
    final_units: str = _p("cps", "str", _UNITS)
    # STEP 7a
    final_wcs: bool = _p(False, "bool")
    final_refimage: str = _p("", "str")
    final_rot: float | None = _p(None, "optfloat")
    final_scale: float | None = _p(None, "optfloat")
    final_outnx: float | None = _p(None, "optfloat")
    final_outny: float | None = _p(None, "optfloat")
    final_ra: float | None = _p(None, "optfloat")
    final_dec: float | None = _p(None, "optfloat")
    final_crpix1: float | None = _p(None, "optfloat")
    final_crpix2: float | None = _p(None, "optfloat")
    # hapgpu: output size limit (not an AstroDrizzle parameter)
    max_output_pixels: int = _p(
        4 * SKY_CELL_PIXELS, "int",
        doc="largest output frame (pixels) the chain allocates; default four HAP sky cells "
            "(4 x 18512**2 = 1.37e9 pixels), far above any real HST visit. Larger frames are "
            "refused before anything is allocated, naming the inputs that do not overlap")
    # hapgpu: header rules of the product (AstroDrizzle's rules_file, as named sets)
    header_rules: str = _p(
        "default", "str", ("default", "mvm"),
        doc="product header rules: 'default' (fitsblender's instrument rules, AstroDrizzle "
            "without a rules_file) or 'mvm' (drizzlepac's <instrument>_mvm_header_hap.rules of "
            "HAP sky-cell layers: HDRTAB columns, primary keywords dropped)")

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = _coerce(f.name, getattr(self, f.name), f.metadata["kind"])
            choices = f.metadata["choices"]
            if choices is not None and value not in choices:
                raise InvalidParameterError(
                    f"{f.name} must be one of {', '.join(map(str, choices))}, got {value!r}")
            object.__setattr__(self, f.name, value)
        self._check_ranges()

    def _check_ranges(self) -> None:
        for name in ("driz_sep_pixfrac", "final_pixfrac"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise InvalidParameterError(f"{name} must be in (0, 1], got {value}")
        for name in ("stepsize", "skyclip", "combine_nlow", "combine_nhigh", "combine_grow",
                     "driz_cr_ctegrow"):
            if getattr(self, name) < 0:
                raise InvalidParameterError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.driz_cr_grow < 1:
            raise InvalidParameterError(f"driz_cr_grow must be >= 1, got {self.driz_cr_grow}")
        if not 0.0 <= self.combine_maskpt:
            raise InvalidParameterError(f"combine_maskpt must be >= 0, got {self.combine_maskpt}")
        if self.max_output_pixels < 1:
            raise InvalidParameterError(f"max_output_pixels must be >= 1, got {self.max_output_pixels}")
        if self.exptime is not None and not self.exptime > 0:
            raise InvalidParameterError(f"exptime must be positive, got {self.exptime}")
        if not self.coeffs:
            raise InvalidParameterError("coeffs=False (drizzling without the distortion model) is not supported")
        for name in ("static_sig", "skywidth", "skylsigma", "skyusigma"):
            if not getattr(self, name) > 0:
                raise InvalidParameterError(f"{name} must be positive, got {getattr(self, name)}")

    def replace(self, **changes) -> AstroDrizzleParameters:
        """A copy with ``changes`` applied (converted and validated like the constructor)."""
        unknown = sorted(set(changes) - _FIELD_NAMES)
        if unknown:
            raise InvalidParameterError("; ".join(unknown_parameter_message(name) for name in unknown))
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain ``{name: value}`` (pairs as lists), the ``parameters`` block of the JSON format."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

    def __repr__(self) -> str:
        changed = [f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self)
                   if getattr(self, f.name) != f.default]
        return f"AstroDrizzleParameters({', '.join(changed)})"


_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(AstroDrizzleParameters))
_CASE_SENSITIVE = frozenset({"driz_sep_refimage", "final_refimage", "skyuser", "skyfile",
                             "gnkeyword", "rnkeyword", "expkeyword"})


def accepted_names() -> frozenset:
    """Every name :func:`resolve_parameters` accepts: the parameters, plus AstroDrizzle options
    that are ignored here or accepted only at their neutral value."""
    return _FIELD_NAMES | _IGNORED | frozenset(_NEUTRAL)


def unknown_parameter_message(name: str, source: str = "", extra=()) -> str:
    """``"unknown AstroDrizzle parameter 'x'; closest: a, b"`` (difflib's closest names).

    Parameters
    ----------
    name : str
        The unknown name.
    source : str
        Where it came from (a file name, "keyword arguments"), prefixed to the message.
    extra : sequence of str
        Further valid names (e.g. a function's own keywords) to suggest from.

    Returns
    -------
    str
        One line; lists up to three valid names whose spelling is closest to ``name``
        (``difflib.get_close_matches``, ratio >= 0.6), or says where the names are listed.
    """
    prefix = f"{source}: " if source else ""
    close = difflib.get_close_matches(str(name), sorted(_FIELD_NAMES | set(extra)), n=3, cutoff=0.6)
    hint = (f"closest valid name{'s' if len(close) > 1 else ''}: {', '.join(close)}" if close
            else "valid names are the fields of hapgpu.astrodrizzle.AstroDrizzleParameters")
    return f"{prefix}unknown AstroDrizzle parameter {name!r}; {hint}"


# --------------------------------------------------------------------------- conversion
def parse_bits(value, name: str = "bits") -> int | None:
    """DQ bit flags treated as good, as an integer (None: every DQ value is good).

    Accepts integers, ``"528"``, ``"16,512"``, ``"16+512"``, and ``"~4096"`` (all 16 bits
    except those). ``None``, ``""`` and ``"None"``/``"INDEF"`` give None.
    """
    if value is None or isinstance(value, bool):
        if isinstance(value, bool):
            raise InvalidParameterError(f"{name} must be an integer bit mask, got {value!r}")
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value != int(value) or value < 0:
            raise InvalidParameterError(f"{name} must be a non-negative integer, got {value!r}")
        return int(value)
    text = str(value).strip()
    if text.upper() in ("", "NONE", "INDEF"):
        return None
    flip = text.startswith("~")
    text = text.lstrip("~").strip()
    try:
        total = 0
        for part in text.replace("+", ",").replace("|", ",").split(","):
            if part.strip():
                total |= int(part.strip())
    except ValueError as exc:
        raise InvalidParameterError(f"{name} must be a bit mask such as '528' or '16,512', got {value!r}") from exc
    return (~total) & 0xFFFF if flip else total


def _as_float(name, value):
    if isinstance(value, bool):
        raise InvalidParameterError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"{name} must be a number, got {value!r}") from exc
    if not math.isfinite(number):
        raise InvalidParameterError(f"{name} must be finite, got {value!r}")
    return number


def _is_blank(value) -> bool:
    return value is None or (isinstance(value, str) and value.strip().upper() in ("", "NONE", "INDEF"))


def _coerce(name: str, value, kind: str):
    if kind == "bool":
        if isinstance(value, str) and value.strip().lower() in ("true", "yes", "t", "1", "false", "no", "f", "0"):
            return value.strip().lower() in ("true", "yes", "t", "1")
        if not isinstance(value, (bool, int)) or value not in (0, 1):
            raise InvalidParameterError(f"{name} must be true or false, got {value!r}")
        return bool(value)
    if kind == "int":
        number = _as_float(name, value)
        if number != int(number):
            raise InvalidParameterError(f"{name} must be an integer, got {value!r}")
        return int(number)
    if kind == "float":
        return _as_float(name, value)
    if kind == "optfloat":
        return None if _is_blank(value) else _as_float(name, value)
    if kind in ("bits", "bits0"):
        bits = parse_bits(value, name)
        return (0 if bits is None else bits) if kind == "bits0" else bits
    if kind == "pair":
        parts = value.replace(",", " ").replace(";", " ").split() if isinstance(value, str) else list(value)
        if len(parts) != 2:
            raise InvalidParameterError(f"{name} must be two numbers such as '4 3', got {value!r}")
        return (_as_float(name, parts[0]), _as_float(name, parts[1]))
    if kind == "wtscl":
        if isinstance(value, str) and value.strip().lower() in ("exptime", "expsq"):
            return value.strip().lower()
        return str(_as_float(name, value)) if not _is_blank(value) else "exptime"
    if kind == "upper":
        return str(value).strip().upper()
    if kind == "str":
        text = "" if value is None else str(value).strip()
        return text if name in _CASE_SENSITIVE else text.lower()
    raise AssertionError(kind)


# --------------------------------------------------------------------------- readers
def _flatten_hap(block: dict) -> dict:
    flat = {}
    for key, value in block.items():
        if isinstance(value, dict):
            flat.update(_flatten_hap(value))
        else:
            flat[key] = value
    return flat


def _filter_known(values: dict, source: str) -> dict:
    kept = {}
    for key, value in values.items():
        if key in _IGNORED:
            continue
        if key in _NEUTRAL:
            if value not in _NEUTRAL[key]:
                raise InvalidParameterError(f"{source}: {key}={value!r} is not supported")
            continue
        if key not in _FIELD_NAMES:
            raise InvalidParameterError(unknown_parameter_message(key, source))
        kept[key] = value
    return kept


def read_hap_pars(path, product: str | None = None) -> dict:
    """Read a drizzlepac ``hap_pars`` astrodrizzle JSON file into ``{name: value}``.

    Parameters
    ----------
    path : str or pathlib.Path
        An astrodrizzle step file (e.g. ``any_astrodrizzle_filter_hap_basic.json``) or a
        custom parameter file written by ``runsinglehap -c``.
    product : str, optional
        For a custom file with several products: the product basename to use.

    Returns
    -------
    dict
        AstroDrizzle keyword arguments (section headings dropped, ignored options removed),
        not yet converted; pass them to :func:`resolve_parameters`.
    """
    path = Path(path)
    data = read_json_object(path)
    custom = {k: v for k, v in data.items() if isinstance(v, dict) and ("parameters" in v or "default_values" in v)}
    if custom:
        if product is None:
            if len(custom) != 1:
                raise InvalidParameterError(
                    f"{path}: holds several products ({', '.join(custom)}); choose one with product=")
            product = next(iter(custom))
        if product not in custom:
            raise InvalidParameterError(f"{path}: no product {product!r}")
        entry = custom[product]
        block = entry.get("default_values") or entry.get("parameters") or {}
        if "astrodrizzle" not in block:
            raise InvalidParameterError(f"{path}: product {product!r} has no astrodrizzle parameters")
        data = block["astrodrizzle"]
    return _filter_known(_flatten_hap(data), str(path))


def load_parameters(source) -> dict:
    """Read parameter values from a file or a named set (not yet merged with defaults).

    Parameters
    ----------
    source : str or pathlib.Path
        One of :data:`PARAMETER_SETS`, or a path to a hapgpu JSON file or a drizzlepac
        ``hap_pars`` file (detected by content).

    Returns
    -------
    dict
        ``{name: value}`` as found in the file.
    """
    if isinstance(source, str) and source in PARAMETER_SETS:
        text = resources.files("hapgpu.pars").joinpath(f"astrodrizzle_{source}.json").read_text("utf-8")
        data = json.loads(text)
        return dict(data["parameters"])
    path = Path(source)
    if not path.exists():
        close = difflib.get_close_matches(str(source), PARAMETER_SETS, n=3, cutoff=0.6)
        hint = f"; closest named set: {', '.join(close)}" if close else ""
        raise InvalidParameterError(
            f"parameter file {path} not found (named sets: {', '.join(PARAMETER_SETS)}){hint}")
    if path.is_dir():
        raise InvalidParameterError(f"parameter file {path} is a directory, not a JSON file")
    data = read_json_object(path)
    if data.get("format") == FORMAT:
        return _filter_known(dict(data.get("parameters", {})), str(path))
    return read_hap_pars(path)


def resolve_parameters(pars=None, **overrides) -> AstroDrizzleParameters:
    """Merge defaults < ``pars`` < ``overrides`` into :class:`AstroDrizzleParameters`.

    Parameters
    ----------
    pars : None, str, pathlib.Path, dict or AstroDrizzleParameters
        A named set, a parameter file, a ``{name: value}`` mapping, or parameters.
    **overrides
        Individual AstroDrizzle parameters (highest priority).

    Returns
    -------
    AstroDrizzleParameters

    Raises
    ------
    InvalidParameterError
        For unknown names, values of the wrong type or out of range.
    """
    if isinstance(pars, AstroDrizzleParameters):
        base = pars.to_dict()
    elif pars is None:
        base = {}
    elif isinstance(pars, dict):
        base = _filter_known(dict(pars), "parameters")
    else:
        base = load_parameters(pars)
    merged = {**base, **_filter_known(dict(overrides), "keyword arguments")}
    return AstroDrizzleParameters(**merged)


def write_parameters(params: AstroDrizzleParameters, path, *, name: str = "", description: str = "") -> Path:
    """Write ``params`` as hapgpu typed JSON (the format of the shipped sets)."""
    path = Path(path)
    doc = {"format": FORMAT, "name": name, "description": description, "parameters": params.to_dict()}
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return path
