"""Sky values: every method against drizzlepac (through skypac), and sky matching on known offsets."""

from __future__ import annotations

import contextlib
import io
import shutil

import numpy as np
import pytest
from astropy.io import fits

from hapgpu.astrodrizzle import astrodrizzle, resolve_parameters
from hapgpu.astrodrizzle._exposure import read_exposure
from hapgpu.astrodrizzle._sky import SkySettings, compute_sky, sky_masks, static_masks, user_sky_from_file
from hapgpu.backend import resolve_backend

# Only the static mask and the sky step run: both chains then just record MDRIZSKY.
SKY_ONLY = dict(driz_separate=False, median=False, blot=False, driz_cr=False, driz_combine=False)


def _offset_exposures(paths, offsets):
    for path, offset in zip(paths, offsets):
        with fits.open(path, mode="update") as hdul:
            for hdu in hdul:
                if hdu.name == "SCI":
                    hdu.data = hdu.data + np.float32(offset)


def _match(paths, stat):
    backend = resolve_backend("cpu")
    params = resolve_parameters(skymethod="match", skystat=stat, skylower=None)
    exposures = [read_exposure(p, backend, params) for p in paths]
    masks = sky_masks(exposures, params.sky_bits, None, False, np)
    skies = compute_sky(exposures, masks, SkySettings.from_parameters(params), np)
    assert all(s[0] == s[1] for s in skies)  # one level per image
    return np.array([s[0] for s in skies])


@pytest.mark.parametrize("stat, tolerance", [("median", 2e-3), ("mean", 2e-3), ("mode", 0.05)])
def test_match_recovers_known_offsets(small_inputs, stat, tolerance):
    """Adding constants to whole exposures shifts their matched levels by the same constants."""
    base = _match(small_inputs, stat)
    assert base.min() == 0.0  # the lowest image is the reference
    offsets = np.array([3.0, 0.0, 7.5])
    _offset_exposures(small_inputs, offsets)
    shifted = _match(small_inputs, stat)
    assert shifted.min() == 0.0
    np.testing.assert_allclose((shifted - base) - (shifted - base)[1], offsets, atol=tolerance)


def test_localmin_and_globalmin(small_inputs):
    backend = resolve_backend("cpu")
    params = resolve_parameters(skystat="median")
    exposures = [read_exposure(p, backend, params) for p in small_inputs]
    masks = sky_masks(exposures, 0, static_masks(exposures, 4.0, np), True, np)
    local = compute_sky(exposures, masks, SkySettings.from_parameters(params), np)
    glob = compute_sky(exposures, masks, SkySettings.from_parameters(params.replace(skymethod="globalmin")), np)
    lows = [min(s) for s in local]
    assert all(s == [min(lows)] * 2 for s in glob)
    assert all(15.0 < v < 25.0 for s in local for v in s)


def test_single_image_match_keeps_the_header_value(small_inputs):
    fits.setval(small_inputs[0], "MDRIZSKY", value=1.25, ext=("SCI", 1))
    result = astrodrizzle(small_inputs[:1], small_inputs[0].parent / "one", backend="cpu", skymethod="match",
                          **SKY_ONLY)
    assert result.sky[small_inputs[0].name][0] == 1.25


def test_skyuser_and_skyfile(small_inputs, tmp_path):
    for path in small_inputs:
        for chip in (1, 2):
            fits.setval(path, "USERSKY", value=2.0 + chip, ext=("SCI", chip))
    result = astrodrizzle(small_inputs, tmp_path / "u", backend="cpu", skysub=False, skyuser="USERSKY", **SKY_ONLY)
    assert result.sky[small_inputs[0].name] == [3.0, 4.0]
    skyfile = tmp_path / "sky.txt"
    skyfile.write_text(f"# applied = no\n{small_inputs[0].name} 1.5 2.5\n{small_inputs[1].name} 4\n")
    backend = resolve_backend("cpu")
    exposures = [read_exposure(p, backend, resolve_parameters()) for p in small_inputs]
    values, applied = user_sky_from_file(skyfile, exposures)
    assert values == [[1.5, 2.5], [4.0, 4.0], [0.0, 0.0]] and applied is False


# --------------------------------------------------------------------------- drizzlepac
def _drizzlepac_sky(paths, params, monkeypatch):
    from drizzlepac import astrodrizzle as adriz
    from spherical_geometry.polygon import SphericalPolygon

    from .test_reference import _drizzlepac_kwargs

    monkeypatch.setattr(SphericalPolygon, "iter_polygons_flat", lambda self: iter(self), raising=False)
    monkeypatch.chdir(paths[0].parent)
    with contextlib.redirect_stdout(io.StringIO()):
        adriz.AstroDrizzle([p.name for p in paths], output="ref", runfile="", num_cores=1, in_memory=True,
                           clean=True, build=True, updatewcs=False, mdriztab=False, preserve=False,
                           **_drizzlepac_kwargs(params))
    out = {}
    for path in paths:
        with fits.open(path) as hdul:
            out[path.name] = [hdul["SCI", k].header["MDRIZSKY"] for k in (1, 2)]
    return out


@pytest.mark.reference
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("method, stat", [("localmin", "mode"), ("globalmin", "median"), ("match", "median"),
                                          ("match", "mean"), ("globalmin+match", "mode")])
def test_sky_equals_drizzlepac(uvis_small, tmp_path, monkeypatch, method, stat):
    params = resolve_parameters("filter_basic", skymethod=method, skystat=stat, **SKY_ONLY)
    ref_dir, our_dir = tmp_path / "ref", tmp_path / "ours"
    shutil.copytree(uvis_small, ref_dir)
    shutil.copytree(uvis_small, our_dir)
    ref = _drizzlepac_sky(sorted(ref_dir.glob("*_flc.fits")), params, monkeypatch)
    ours = astrodrizzle(sorted(our_dir.glob("*_flc.fits")), our_dir / "o", backend="cpu", pars=params).sky
    for name, values in ref.items():
        np.testing.assert_allclose(ours[name], values, rtol=1e-6, atol=1e-9, err_msg=f"{method}/{stat} {name}")
