"""``hapgpu warmup`` compiles every CPU kernel variant into the on-disk cache."""

from __future__ import annotations

import re

import pytest

from hapgpu.kernels import _interp_math as im
from hapgpu.kernels import _pixel_math as pm
from hapgpu.kernels._cache import cache_dir

pytestmark = pytest.mark.slow


def test_warmup_caches_every_driver_variant(capsys):
    from hapgpu.cli import main

    assert main(["--backend", "cpu", "warmup", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "kernels ready on cpu" in out and str(cache_dir()) in out
    for group in ("resampling", "AstroDrizzle chain", "detection"):
        assert group in out

    folder = cache_dir()
    drizzle = " ".join(p.name for p in (folder / "drizzle").glob("*.nbi"))
    for pixel in {"square_span", "square_pixel", *pm.CENTRED_PIXEL_FUNCTIONS.values()}:
        # the driver's name carries its binding tag, the file name its variant too
        assert re.search(rf"\._drizzle_tiles__[0-9a-f]{{8}}-\d+-{pixel}\.", drizzle), pixel
    blot = " ".join(p.name for p in (folder / "blot").glob("*.nbi"))
    for sample in set(im.SAMPLE_FUNCTIONS.values()):
        assert sample in blot, sample
