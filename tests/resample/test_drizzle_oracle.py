"""hapgpu's Drizzle against drizzlepac's compiled engine (cdriz.tdriz) on real HST headers.

Tolerances: SCI rtol 1e-5 where WHT > 1e-6 max(WHT) (float32 running mean vs float64 sums);
WHT rtol 1e-5 with an absolute floor of 1e-6 max(WHT) (sliver overlaps, §6 item 8 of the
algorithms document); CTX equal except where a sliver (< 1e-6 max weight) set a bit.
Lanczos weights are negative in places, so cdriz's float32 running mean loses up to one float32
rounding of the largest partial sum per contribution (49 for lanczos3), amplified where the
weights cancel by the condition number sum|w|/|sum w| (about 1.3 * typical WHT / WHT): the
lanczos SCI floor is ``49 * eps32 * max|SCI| * 1.3 * typical(WHT) / WHT`` per pixel.
"""

import zlib

import numpy as np
import pytest

from hapgpu.resample import Drizzle, PixelMap

from ..conftest import output_frame, synthetic_scene
from .oracle import cdriz_drizzle

pytestmark = pytest.mark.reference

KERNELS = ["square", "turbo", "point", "gaussian", "tophat", "lanczos2", "lanczos3"]
IN_SHAPE = (48, 56)
FRAMES = {
    "rotated": dict(rot_deg=27.0, scale_ratio=1.0),
    "rescaled": dict(rot_deg=-12.0, scale_ratio=1.3),
    "finer": dict(rot_deg=8.0, scale_ratio=0.7),
    "partial": dict(rot_deg=45.0, scale_ratio=1.0, coverage=0.6, shift=(9.0, -7.0)),
}


EPS32 = float(np.finfo(np.float32).eps)


def assert_matches_cdriz(ours_sci, ours_wht, ours_ctx, ref_sci, ref_wht, ref_ctx, kernel="square"):
    wmax = float(ref_wht.max())
    assert wmax > 0
    good = ref_wht > 1e-6 * wmax
    assert good.sum() > 50
    np.testing.assert_allclose(ours_wht, ref_wht, rtol=1e-5, atol=1e-6 * wmax)
    scale = float(np.abs(ref_sci[good]).max())
    if kernel.startswith("lanczos"):
        typical = float(np.median(ref_wht[ref_wht > 0.5 * wmax]))
        atol = 49 * EPS32 * scale * 1.3 * typical / np.abs(ref_wht[good])
    else:
        atol = 1e-7 * scale
    diff = np.abs(ours_sci[good] - ref_sci[good])
    bad = diff > 1e-5 * np.abs(ref_sci[good]) + atol
    assert not bad.any(), (f"{bad.sum()} SCI pixels differ: ours {ours_sci[good][bad][:5]}, "
                           f"cdriz {ref_sci[good][bad][:5]}")
    sliver = np.minimum(ours_wht, ref_wht) < 1e-6 * wmax
    mismatch = (ours_ctx != ref_ctx) & ~sliver
    assert not mismatch.any(), f"{mismatch.sum()} context pixels differ away from slivers"


@pytest.mark.parametrize("frame", sorted(FRAMES))
@pytest.mark.parametrize("pixfrac", [1.0, 0.8])
@pytest.mark.parametrize("kernel", KERNELS)
def test_drizzle_matches_cdriz(real_chip, kernel, pixfrac, frame):
    chip_name, in_wcs = real_chip
    out_wcs, out_shape, ratio = output_frame(in_wcs, IN_SHAPE, **FRAMES[frame])
    data, wht = synthetic_scene(IN_SHAPE, seed=zlib.crc32(f"{chip_name}-{frame}".encode()) % 1000)
    in_units = "counts" if chip_name != "ir" else "cps"
    expin = 350.0 if in_units == "counts" else 1.0

    ref = cdriz_drizzle(data, wht, in_wcs, out_wcs, out_shape, kernel=kernel, pixfrac=pixfrac,
                        scale=ratio, in_units=in_units, expin=expin, uniqid=3)
    pmap = PixelMap.from_wcs(in_wcs, out_wcs, IN_SHAPE, stepsize=10)
    drz = Drizzle(out_shape, kernel=kernel, pixfrac=pixfrac, backend="cpu", initial_value=0.0)
    drz.add_image(data, pmap, weight=wht, in_units=in_units, exptime=expin, scale=ratio, context_id=3)
    assert drz.ctx.shape == (1,) + out_shape
    assert_matches_cdriz(drz.sci, drz.wht, drz.ctx[0], *ref, kernel=kernel)


@pytest.mark.parametrize("kernel", ["square", "turbo", "lanczos3"])
def test_sequence_of_inputs_matches_cdriz(kernel):
    """Several chips drizzled in turn, with wt_scl, fill and zero-weight regions."""
    from ..conftest import REAL_CHIPS, load_chip_wcs

    w1 = load_chip_wcs(*REAL_CHIPS["uvis1"])
    w2 = load_chip_wcs(*REAL_CHIPS["uvis2"])
    out_wcs, out_shape, _ = output_frame(w1, IN_SHAPE, rot_deg=15.0, coverage=1.3)
    ref_sci = np.zeros(out_shape, np.float32)
    ref_wht = np.zeros(out_shape, np.float32)
    ref_ctx = np.zeros(out_shape, np.int32)
    drz = Drizzle(out_shape, kernel=kernel, pixfrac=1.0, fillval=0.0, backend="cpu", initial_value=0.0)
    for k, (wcs, seed, wt_scl) in enumerate([(w1, 1, 1.0), (w2, 2, 0.5), (w1, 3, 2.0)]):
        data, wht = synthetic_scene(IN_SHAPE, seed=seed, mask_fraction=0.05)
        cdriz_drizzle(data, wht, wcs, out_wcs, out_shape, kernel=kernel, wt_scl=wt_scl,
                      fillval="0", uniqid=k + 1, outsci=ref_sci, outwht=ref_wht, outctx=ref_ctx)
        drz.add_image(data, PixelMap.from_wcs(wcs, out_wcs, IN_SHAPE), weight=wht, wt_scl=wt_scl,
                      context_id=k + 1)
    assert_matches_cdriz(drz.sci, drz.wht, drz.ctx[0], ref_sci, ref_wht, ref_ctx, kernel=kernel)
    uncovered = ref_wht == 0
    assert np.all(drz.sci[uncovered] == 0.0)


def test_exact_mode_close_to_table():
    """stepsize=0 evaluates the WCS exactly; it differs from the table by < 1e-3 px effects."""
    from ..conftest import REAL_CHIPS, load_chip_wcs

    w = load_chip_wcs(*REAL_CHIPS["hrc"])
    out_wcs, out_shape, _ = output_frame(w, IN_SHAPE, rot_deg=33.0)
    data, wht = synthetic_scene(IN_SHAPE, seed=5)
    results = []
    for step in (10, 0):
        drz = Drizzle(out_shape, kernel="square", backend="cpu", initial_value=0.0)
        drz.add_image(data, PixelMap.from_wcs(w, out_wcs, IN_SHAPE, stepsize=step), weight=wht)
        results.append(drz)
    good = results[0].wht > 0.5 * results[0].wht.max()
    np.testing.assert_allclose(results[1].sci[good], results[0].sci[good], rtol=2e-3)
    assert not np.array_equal(results[1].sci[good], results[0].sci[good])
