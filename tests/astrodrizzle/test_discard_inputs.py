"""``astrodrizzle(..., discard_inputs=True)``: the inputs are left as they were, the product and
the reported skies and cosmic rays are those of the run that updates them
(hapgpu/astrodrizzle/_pipeline.py)."""

from __future__ import annotations

from astropy.io import fits

from hapgpu.astrodrizzle import astrodrizzle

from ._fits_bytes import assert_same_fits_bytes
from .conftest import copy_visit

# the whole chain, CR flags included, so that an update would change the inputs' DQ
QUICK = {"backend": "cpu", "pars": "wfc3_uvis_n2", "skymethod": "localmin"}


def test_discarded_inputs_are_not_written(uvis_small, tmp_path):
    updated = copy_visit(uvis_small, tmp_path / "updated")
    kept = copy_visit(uvis_small, tmp_path / "kept")
    before = [p.read_bytes() for p in kept]
    reference = astrodrizzle(updated, tmp_path / "updated" / "prod", **QUICK)
    result = astrodrizzle(kept, tmp_path / "kept" / "prod", discard_inputs=True, **QUICK)
    # the reference run did flag cosmic rays into its inputs; this one wrote nothing into them
    assert [p.read_bytes() for p in updated] != [p.read_bytes() for p in kept]
    assert [p.read_bytes() for p in kept] == before
    assert not set(kept) & set(result.files)
    assert result.product.name == reference.product.name
    assert_same_fits_bytes(result.product, reference.product)
    assert result.sky == reference.sky and result.cosmic_rays == reference.cosmic_rays
    assert sum(sum(v) for v in result.cosmic_rays.values()) > 0
    with fits.open(updated[0]) as hdul:
        assert "MDRIZSKY" in hdul["SCI", 1].header


def test_discarded_inputs_are_not_copied_either(uvis_small, tmp_path):
    inputs = copy_visit(uvis_small, tmp_path / "visit")
    out = tmp_path / "visit" / "prod"
    result = astrodrizzle(inputs, out, update_inputs_dq=False, discard_inputs=True, **QUICK)
    assert sorted(p.name for p in result.files) == [result.product.name]
    assert not any(out.parent.glob("prod_*_fl?.fits"))
