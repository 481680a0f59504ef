"""hapgpu's blot against drizzlepac's cdriz.tblot on real HST chip headers.

Blot arithmetic is float32 throughout (as in cdriz), so values agree to a few float32 ulps of
the local data scale. Excluded from comparison, where cdriz's behaviour is undefined (algorithms
document §3.3, §6 item 12): poly3 positions in the last half-pixel band at the top, nearest in
the last half pixel, linear exactly on the far edge, and lanczos windows touching the edge (cdriz
returns the previous pixel's stale value there).
"""

import numpy as np
import pytest

from hapgpu.resample import PixelMap, blot

from ..conftest import output_frame, synthetic_scene
from .oracle import cdriz_blot

pytestmark = pytest.mark.reference

INTERPS = ["nearest", "linear", "poly3", "poly5", "lanczos3", "lanczos5"]
CHIP_SHAPE = (40, 52)
FRAMES = {
    "rotated": dict(rot_deg=21.0, scale_ratio=1.0, coverage=1.3),
    "rescaled": dict(rot_deg=-40.0, scale_ratio=1.25, coverage=1.2),
    "partial": dict(rot_deg=5.0, scale_ratio=0.8, coverage=0.7, shift=(6.0, 4.0)),
}
EPS32 = float(np.finfo(np.float32).eps)


def defined_region(interp, chip_wcs, src_wcs, src_shape, chip_shape):
    """Chip pixels whose source position lies where cdriz's interpolant is defined."""
    positions = PixelMap.from_wcs(chip_wcs, src_wcs, chip_shape).pixmap()  # 0-based, table
    xo = positions[..., 0].astype(np.float32)
    yo = positions[..., 1].astype(np.float32)
    sny, snx = src_shape
    ok = np.ones(chip_shape, bool)
    if interp in ("poly3", "nearest"):
        ok &= (yo < sny - 1) & (xo < snx - 0.5)
    if interp == "linear":
        ok &= (xo < snx) & (yo < sny)
    if interp.startswith("lanczos"):
        ok &= (xo.astype(int) - 3 >= 0) & (xo.astype(int) + 3 < snx)
        ok &= (yo.astype(int) - 3 >= 0) & (yo.astype(int) + 3 < sny)
    return ok


@pytest.mark.parametrize("frame", sorted(FRAMES))
@pytest.mark.parametrize("interp", INTERPS)
def test_blot_matches_cdriz(real_chip, interp, frame):
    chip_name, chip_wcs = real_chip
    src_wcs, src_shape, ratio = output_frame(chip_wcs, CHIP_SHAPE, **FRAMES[frame])
    source, _ = synthetic_scene(src_shape, seed=len(chip_name) * 7 + len(frame))
    exptime = 412.5
    ref = cdriz_blot(source, chip_wcs, src_wcs, CHIP_SHAPE, interp=interp, scale=ratio, exptime=exptime)
    pmap = PixelMap.from_wcs(chip_wcs, src_wcs, CHIP_SHAPE, stepsize=10)
    ours = blot(source, pmap, interp=interp, scale=ratio, exptime=exptime, backend="cpu")
    assert ours.dtype == np.float32 and ours.shape == CHIP_SHAPE
    ok = defined_region(interp, chip_wcs, src_wcs, src_shape, CHIP_SHAPE)
    assert ok.sum() > 0.3 * ok.size
    scale = float(np.abs(source).max()) * exptime / ratio**2
    np.testing.assert_allclose(ours[ok], ref[ok], rtol=0, atol=64 * EPS32 * scale)


def test_blot_outside_is_misval():
    from ..conftest import REAL_CHIPS, load_chip_wcs

    w = load_chip_wcs(*REAL_CHIPS["uvis1"])
    src_wcs, src_shape, _ = output_frame(w, CHIP_SHAPE, coverage=0.5, shift=(20.0, 0.0))
    source = np.ones(src_shape, np.float32)
    pmap = PixelMap.from_wcs(w, src_wcs, CHIP_SHAPE)
    out = blot(source, pmap, interp="poly5", misval=-7.0, backend="cpu")
    ref = cdriz_blot(source, w, src_wcs, CHIP_SHAPE, interp="poly5", misval=-7.0)
    assert (out == -7.0).sum() > 0
    np.testing.assert_array_equal(out == -7.0, ref == -7.0)


@pytest.mark.parametrize("interp", ["sinc", "lsinc", "spline3", "cubic"])
def test_blot_rejects_undefined_interpolants(interp):
    from hapgpu.errors import InvalidParameterError

    from ..conftest import REAL_CHIPS, load_chip_wcs

    w = load_chip_wcs(*REAL_CHIPS["ir"])
    src_wcs, src_shape, _ = output_frame(w, CHIP_SHAPE)
    pmap = PixelMap.from_wcs(w, src_wcs, CHIP_SHAPE)
    with pytest.raises(InvalidParameterError, match=interp):
        blot(np.zeros(src_shape, np.float32), pmap, interp=interp, backend="cpu")

