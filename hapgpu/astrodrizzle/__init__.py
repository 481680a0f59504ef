"""AstroDrizzle on the device: static mask, sky, separate drizzle, median, blot, driz_cr, final drizzle.

>>> import hapgpu                                                      # doctest: +SKIP
>>> result = hapgpu.astrodrizzle(["a_flc.fits", "b_flc.fits"], "out", pars="wfc3_uvis_n2")
>>> result.product                                                     # out_drc.fits

The package itself is callable (``hapgpu.astrodrizzle(...)`` is :func:`astrodrizzle`), so the
call works whether ``hapgpu.astrodrizzle`` resolves to the function or to this package.
"""

import sys
import types

from ._parameters import (
    PARAMETER_SETS,
    AstroDrizzleParameters,
    load_parameters,
    parse_bits,
    read_hap_pars,
    resolve_parameters,
    write_parameters,
)
from ._exposure import VisitCache
from ._pipeline import AstroDrizzleResult, astrodrizzle, expand_inputs

__all__ = [
    "astrodrizzle",
    "AstroDrizzleResult",
    "AstroDrizzleParameters",
    "PARAMETER_SETS",
    "resolve_parameters",
    "load_parameters",
    "read_hap_pars",
    "write_parameters",
    "parse_bits",
    "expand_inputs",
    "VisitCache",
]


class _CallableModule(types.ModuleType):
    """Module type whose instances forward calls to :func:`astrodrizzle`."""

    def __call__(self, *args, **kwargs):
        return astrodrizzle(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
