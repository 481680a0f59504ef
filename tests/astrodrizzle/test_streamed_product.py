"""The final drizzle streamed into the product band by band: the same file, bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from astropy.io import fits

from hapgpu.astrodrizzle import astrodrizzle
from hapgpu.errors import InvalidParameterError

from ._fits_bytes import assert_same_fits_bytes

_FINAL_ONLY = {"driz_separate": False, "median": False, "blot": False, "driz_cr": False}


@pytest.mark.parametrize("pars", [{}, {"final_units": "counts", "final_kernel": "turbo"}])
def test_streamed_product_equals_the_whole_frame_product(small_inputs, tmp_path, pars):
    common = {"backend": "cpu", "update_inputs_dq": False, "progress": False, **pars}
    whole = astrodrizzle(small_inputs, tmp_path / "whole" / "out", stream=False, **common).product
    streamed = astrodrizzle(small_inputs, tmp_path / "bands" / "out", stream=True, band_rows=37, **common)
    assert streamed.product.name == whole.name
    assert_same_fits_bytes(whole, streamed.product)
    assert not [p for p in streamed.product.parent.iterdir() if p.name.startswith(".")]


def test_streamed_product_read_from_one_tiled_accumulator(small_inputs, tmp_path, monkeypatch):
    """Without device bands the frame is drizzled once into tiles and read out in bands."""
    from hapgpu.astrodrizzle import _pipeline

    common = {"backend": "cpu", "update_inputs_dq": False, "progress": False, **_FINAL_ONLY}
    whole = astrodrizzle(small_inputs, tmp_path / "whole" / "out", stream=False, **common).product
    monkeypatch.setattr(_pipeline, "_STREAM_BAND_BYTES", 12 * 4000 * 29)  # bands of ~29 rows
    monkeypatch.setattr(_pipeline, "STREAM_TILE", 64)
    seen = []
    real = _pipeline.final_accumulator

    def spy(*args, **kwargs):
        drz = real(*args, **kwargs)
        seen.append(drz.tile_shape)
        return drz

    monkeypatch.setattr(_pipeline, "final_accumulator", spy)
    streamed = astrodrizzle(small_inputs, tmp_path / "bands" / "out", stream=True, **common).product
    assert seen == [(64, 64)]
    assert_same_fits_bytes(whole, streamed)


def test_stream_refuses_callers_that_need_the_arrays(small_inputs, tmp_path):
    for extra in ({"keep_arrays": True}, {"finalize_headers": lambda hdul, path: None}):
        with pytest.raises(InvalidParameterError, match="stream=True"):
            astrodrizzle(small_inputs, tmp_path / "x", stream=True, **extra)


#: Side of the big frame, pixels.
_BIG = 12000

_BIG_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from hapgpu.astrodrizzle import astrodrizzle

    inputs, out, N = sys.argv[1:3], Path(sys.argv[3]), int(sys.argv[4])
    pars = dict(backend="cpu", update_inputs_dq=False, progress=False, driz_separate=False,
                median=False, blot=False, driz_cr=False)
    astrodrizzle(inputs, out / "warm" / "w", **pars)  # compile outside the measurement
    with open("/proc/self/clear_refs", "w") as f:  # reset the high-water mark (Linux)
        f.write("5")
    result = astrodrizzle(inputs, out / "big" / "b", final_wcs=True, final_outnx=N, final_outny=N,
                          **pars)
    with open("/proc/self/status") as f:
        peak = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    print(json.dumps({"peak": peak, "product": str(result.product)}))
""")


@pytest.mark.slow
def test_huge_final_frame_streamed_with_bounded_memory(small_inputs, tmp_path):
    """Two small exposures on a 12000 x 12000 frame: the 1.7 GB of SCI/WHT/CTX never held."""
    if sys.platform != "linux":
        pytest.skip("RSS is read from /proc (Linux only)")
    script = tmp_path / "big.py"
    script.write_text(_BIG_SCRIPT)
    run = subprocess.run([sys.executable, str(script), *map(str, small_inputs[:2]), str(tmp_path),
                          str(_BIG)], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    full_frame = 12 * _BIG * _BIG  # float32 SCI and WHT, int32 CTX
    assert result["peak"] < 0.5 * full_frame, f"peak RSS {result['peak'] / 1e6:.0f} MB"
    with fits.open(result["product"]) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "SCI", "WHT", "CTX", "HDRTAB"]
        for name in ("SCI", "WHT", "CTX"):
            assert hdul[name].shape[-2:] == (_BIG, _BIG)
        centre = slice(_BIG // 2 - 1000, _BIG // 2 + 1000)  # where the inputs land
        wht = hdul["WHT"].section[centre, centre]
        sci = hdul["SCI"].section[centre, centre]
        assert (wht > 0).sum() > 10000 and np.isfinite(sci[wht > 0]).all()
        assert (hdul["WHT"].section[:100, :100] == 0).all()
        assert len(hdul["HDRTAB"].data) == 4


@pytest.mark.parametrize("stream", [False, True])
def test_chip_pixels_released_once_drizzled(small_inputs, tmp_path, monkeypatch, stream):
    """Without a visit cache the final drizzle drops each chip's SCI/ERR once it is drizzled
    (nothing reads them later): the chips hold no pixels by the time the frame is finished,
    the DQ arrays survive for the inputs' update, and the product is the same as with them
    kept."""
    from hapgpu.astrodrizzle import _pipeline, _stages

    common = {"backend": "cpu", "update_inputs_dq": False, "progress": False, "stream": stream,
              **_FINAL_ONLY}
    chips_at_end = []
    real = _pipeline.final_accumulator

    def spy(exposures, *args, **kwargs):
        drz = real(exposures, *args, **kwargs)
        chips_at_end.append([(c.sci, c.err, c.dq) for e in exposures for c in e.chips])
        return drz

    monkeypatch.setattr(_pipeline, "final_accumulator", spy)  # the streamed path
    monkeypatch.setattr(_stages, "final_accumulator", spy)  # through drizzle_final
    released = astrodrizzle(small_inputs, tmp_path / "released" / "out", **common).product
    assert chips_at_end and all(sci is None and err is None and dq is not None
                                for sci, err, dq in chips_at_end[-1])
    monkeypatch.setattr(_pipeline, "_releases_pixels", lambda params, visit: False)
    chips_at_end.clear()
    kept = astrodrizzle(small_inputs, tmp_path / "kept" / "out", **common).product
    assert all(sci is not None for sci, _, _ in chips_at_end[-1])
    assert_same_fits_bytes(kept, released)
