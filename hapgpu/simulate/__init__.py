"""Realistic synthetic HST visits: calibrated exposures with truth, built on real headers.

:func:`simulate_visit` writes a visit of WFC3/UVIS or ACS/WFC (FLC), WFC3/IR or ACS/HRC (FLT)
exposures whose headers come from real files shipped as templates (SIP, full-size NPOL and D2IM
tables, headerlets, WCSCORR), moved to each dithered and rolled pointing, with pixels rendered
through each chip's full distorted WCS, plus a Gaia-like reference catalogue (errors, proper
motions, epoch 2016.0), cosmic-ray truth masks, the sky catalogue, an SVM poller file and a list
file. With ``wcs_error=`` (a :class:`WCSPerturbation`) the header WCSs carry a known a priori
error; :func:`true_wcs` gives back the true WCS of any chip. Stars are drawn with
:func:`optics_psf`, the diffraction model of the point-catalog PSF library
(:mod:`hapgpu.simulate._optics`) as a Gaussian mixture.
"""

from ._association import AssociationFiles, write_association
from ._instruments import DQ, INSTRUMENTS, DetectorModel, FilterModel, get_detector
from ._optics_psf import optics_psf
from ._profiles import PsfModel, make_psf
from ._sky import SkyModel, make_sky_model, reference_catalog
from ._templates import InstrumentTemplate, load_template
from ._truth import read_pointings, true_wcs
from ._visit import ExposureRecord, VisitResult, simulate_visit
from ._wcs_error import WCSPerturbation

__all__ = [
    "simulate_visit",
    "VisitResult",
    "ExposureRecord",
    "AssociationFiles",
    "write_association",
    "WCSPerturbation",
    "true_wcs",
    "read_pointings",
    "SkyModel",
    "make_sky_model",
    "reference_catalog",
    "PsfModel",
    "make_psf",
    "optics_psf",
    "InstrumentTemplate",
    "load_template",
    "DetectorModel",
    "FilterModel",
    "INSTRUMENTS",
    "get_detector",
    "DQ",
]
