"""hap_config against drizzlepac's ``config_utils.HapConfig`` on the same products.

drizzlepac's product objects (TotalProduct, FilterProduct, ExposureProduct, SkyCellProduct,
SkyCellExposure) are built as its poller does, from small FITS files the test writes (the
exposures read ROOTNAME, EXPSTART, EXPTIME and DATE and copy themselves to their HAP name).
"""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np
import pytest
from astropy.io import fits
from drizzlepac.haputils import config_utils, product

from hapgpu.astrodrizzle import AstroDrizzleParameters, resolve_parameters
from hapgpu.svm._config import STEPS, hap_config, output_custom_pars

pytestmark = [
    pytest.mark.reference,
    pytest.mark.filterwarnings("ignore::ResourceWarning"),   # drizzlepac leaves its CI table open
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

POST, PRE = 58000.0, 55500.0
PROP, OBSET = "11665", "06"
FIELDS = {f.name for f in dataclasses.fields(AstroDrizzleParameters)}
ROOT = {"wfc3": "ib46", "acs": "j8cw", "wfpc2": "u9z8"}


def _write_exposure(name: str, expstart: float) -> None:
    # no INSTRUME: the product objects take the instrument from the poller; HSTWCS then reads
    # the plain TAN WCS without looking for distortion reference files
    primary = fits.Header({"ROOTNAME": name[:9], "EXPSTART": expstart, "EXPTIME": 100.0,
                           "DATE": "2020-01-01", "DRIZCORR": "COMPLETE"})
    sci = fits.Header({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 10.0, "CRVAL2": 20.0,
                       "CRPIX1": 4.0, "CRPIX2": 4.0, "CD1_1": -1e-5, "CD1_2": 0.0, "CD2_1": 0.0,
                       "CD2_2": 1e-5, "EXTVER": 1})
    fits.HDUList([fits.PrimaryHDU(header=primary),
                  fits.ImageHDU(np.zeros((8, 8), np.float32), sci, name="SCI")]).writeto(name)


def _rootname_file(inst: str, group: int, i: int, suffix: str = "flc") -> str:
    """A file name whose first 8 characters (HAP's exposure name) are unique per exposure."""
    return f"{ROOT[inst]}{OBSET}{chr(97 + group)}{i}q_{suffix}.fits"


def _svm_exposures(inst, det, filters, expstart, counter, n=6):
    """drizzlepac ExposureProducts of one filter (files written in the cwd)."""
    suffix = "flt" if inst == "wfpc2" else "flc"
    exposures = []
    for i in range(n):
        name = _rootname_file(inst, counter, i, suffix)
        _write_exposure(name, expstart + i * 0.01)
        exposures.append(product.ExposureProduct(PROP, OBSET, inst, det, "aper", name, filters, "drc",
                                                 logging.NOTSET))
    return exposures


def _svm_products(inst, det, filters, exposures):
    """drizzlepac's total and filter products of ``exposures``, as its poller links them."""
    first = exposures[0].exposure_name      # TotalProduct/FilterProduct use its first 6 characters
    total = product.TotalProduct(PROP, OBSET, inst, det, "aper", first, "drc", logging.NOTSET)
    filt = product.FilterProduct(PROP, OBSET, inst, det, "aper", first, filters, "drc", logging.NOTSET)
    for exp in exposures:
        exp.is_singleton = len(exposures) == 1
        filt.add_member(exp)
        total.add_member(exp)
    total.add_product(filt)
    return total, filt


def _compare(mine: dict, theirs: dict) -> None:
    assert set(mine) == set(STEPS) == set(theirs)
    for step in ("alignment", "catalog generation", "quality control"):
        assert mine[step] == theirs[step], step
    ours, ref = mine["astrodrizzle"], theirs["astrodrizzle"]
    assert set(ours) == set(ref)
    assert resolve_parameters(ours) == resolve_parameters(ref)
    assert {k: v for k, v in ours.items() if k not in FIELDS} == {k: v for k, v in ref.items() if k not in FIELDS}


SVM_GROUPS = [(inst, det, filters, mjd)
              for inst, det, filters in (("wfc3", "uvis", "f555w"), ("wfc3", "ir", "f160w"),
                                         ("acs", "wfc", "f606w"), ("acs", "hrc", "f330w"),
                                         ("acs", "sbc", "f150lp"), ("acs", "sbc", "f115lp"),
                                         ("acs", "sbc", "f122m"), ("wfpc2", "pc", "f814w"),
                                         ("wfc3", "ir", "g102"))
              for mjd in ((PRE, POST) if det == "uvis" else (POST,))]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # drizzlepac copies each exposure to its HAP name in the cwd
    return tmp_path


@pytest.mark.slow
def test_svm_grid_matches_drizzlepac(in_tmp):
    for counter, (inst, det, filters, mjd) in enumerate(SVM_GROUPS):
        all_exposures = _svm_exposures(inst, det, filters, mjd, counter)
        for n in (1, 2, 3, 4, 6):
            total, filt = _svm_products(inst, det, filters, all_exposures[:n])
            for kind, obj in (("total", total), ("filter", filt), ("exposure", all_exposures[0])):
                ref = config_utils.HapConfig(obj)
                mine = hap_config(kind, inst, det, n_exposures=n, filters=filters, expstart_mjd=mjd,
                                  product_basename=obj.product_basename)
                label = f"{kind} {inst}/{det} {filters} n={n} mjd={mjd}"
                assert mine.conditions == tuple(ref.conditions), label
                _compare(mine.as_dict(), ref.as_single_giant_dict())
                assert mine.astrodrizzle_parameters() == resolve_parameters(ref.get_pars("astrodrizzle"))
                if kind != "total":      # the CI key built from the filter when no base name is given
                    bare = hap_config(kind, inst, det, n_exposures=n, filters=filters, expstart_mjd=mjd)
                    assert bare.quality_control == ref.get_pars("quality control"), label


MVM_GROUPS = [("wfc3", "uvis", "f555w"), ("wfc3", "ir", "f160w"), ("acs", "wfc", "f606w"),
              ("acs", "hrc", "f330w"), ("acs", "sbc", "f150lp"), ("acs", "sbc", "f115lp"),
              ("wfpc2", "pc", "f814w")]


def test_mvm_grid_matches_drizzlepac(in_tmp):
    for counter, (inst, det, filters) in enumerate(MVM_GROUPS):
        layer = [filters, "fine", "all", "all"]
        exposures = []
        for i in range(3):
            name = _rootname_file(inst, counter, i)
            _write_exposure(name, PRE)
            exposures.append(product.SkyCellExposure("0797", "x14y06", inst, det, "aper", name, layer,
                                                     "drc", logging.NOTSET))
        for meannexp in (0.4, 1.0, 1.6, 2.5, 4.2, 7.0):
            n_inputs = 1 if meannexp == 1.0 else 3
            cell = product.SkyCellProduct("0797", "x14y06", inst, det, "aper", "skycell-p0797x14y06",
                                          layer, "drc", logging.NOTSET)
            cell.mask_kws["MEANNEXP"][0] = meannexp
            for exp in exposures[:n_inputs]:
                exp.is_singleton = n_inputs == 1
                cell.add_member(exp)
            for kind, obj in (("filter", cell), ("exposure", exposures[0])):
                ref = config_utils.HapConfig(obj, hap_pipeline_name="mvm")
                extra = {"mean_n_exposures": meannexp} if kind == "filter" else {}
                mine = hap_config(kind, inst, det, n_exposures=n_inputs, filters=filters,
                                  expstart_mjd=PRE, pipeline="mvm", product_basename=obj.product_basename,
                                  **extra)
                label = f"mvm {kind} {inst}/{det} {filters} meannexp={meannexp}"
                assert mine.conditions == tuple(ref.conditions), label
                _compare(mine.as_dict(), ref.as_single_giant_dict())
                bare = hap_config(kind, inst, det, n_exposures=n_inputs, filters=filters,
                                  expstart_mjd=PRE, pipeline="mvm", **extra)
                assert bare.quality_control == ref.get_pars("quality control"), label


def test_custom_pars_round_trip_with_drizzlepac(in_tmp):
    exposures = _svm_exposures("wfc3", "uvis", "f555w", POST, 0, n=3)
    total, filt = _svm_products("wfc3", "uvis", "f555w", exposures)
    objs = [("total", total), ("filter", filt), ("exposure", exposures[0])]
    theirs_file, ours_file = in_tmp / "drizzlepac_custom.json", in_tmp / "hapgpu_custom.json"
    configs, refs = [], []
    for kind, obj in objs:
        refs.append(config_utils.HapConfig(obj, output_custom_pars_file=str(theirs_file)))
        configs.append(hap_config(kind, "wfc3", "uvis", n_exposures=3, filters="f555w", expstart_mjd=POST,
                                  product_basename=obj.product_basename))
    output_custom_pars(configs, ours_file)
    theirs, ours = json.loads(theirs_file.read_text()), json.loads(ours_file.read_text())
    assert set(theirs) == set(ours) == {obj.product_basename for _, obj in objs}
    for name in theirs:
        assert set(theirs[name]) == set(ours[name]) == {"parameters", "default_values"}
        for block in ("parameters", "default_values"):
            _compare(ours[name][block], theirs[name][block])
    for (kind, obj), config, ref in zip(objs, configs, refs):
        # hapgpu reads drizzlepac's file ...
        from_theirs = hap_config(kind, "wfc3", "uvis", n_exposures=3, filters="f555w", expstart_mjd=POST,
                                 custom=theirs_file, product_basename=obj.product_basename)
        _compare(from_theirs.as_dict(), config.as_dict())
        assert from_theirs.astrodrizzle_parameters() == config.astrodrizzle_parameters()
        # ... and drizzlepac reads hapgpu's
        back = config_utils.HapConfig(obj, input_custom_pars_file=str(ours_file))
        _compare(back.as_single_giant_dict(), ref.as_single_giant_dict())
