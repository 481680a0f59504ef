"""Realistic synthetic HST visits: calibrated exposures with truth, built on real headers.

:func:`simulate_visit` writes a visit of WFC3/UVIS (FLC), WFC3/IR or ACS/HRC (FLT) exposures
whose headers come from real files shipped as templates (SIP, full-size NPOL and D2IM tables,
headerlets, WCSCORR), moved to each dithered and rolled pointing, with pixels rendered through
each chip's full distorted WCS, plus a Gaia-like reference catalogue, cosmic-ray truth masks,
the sky catalogue, an SVM poller file and a list file.
"""

from ._instruments import DQ, INSTRUMENTS, DetectorModel, FilterModel, get_detector
from ._profiles import PsfModel, make_psf
from ._sky import SkyModel, make_sky_model, reference_catalog
from ._templates import InstrumentTemplate, load_template
from ._visit import ExposureRecord, VisitResult, simulate_visit

__all__ = [
    "simulate_visit",
    "VisitResult",
    "ExposureRecord",
    "SkyModel",
    "make_sky_model",
    "reference_catalog",
    "PsfModel",
    "make_psf",
    "InstrumentTemplate",
    "load_template",
    "DetectorModel",
    "FilterModel",
    "INSTRUMENTS",
    "get_detector",
    "DQ",
]
