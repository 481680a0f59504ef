"""hapgpu's alignment beside drizzlepac 3.11 (the oracle), on the same simulated exposures.

* Source lists: drizzlepac's ``AlignmentTable`` source finding on the same chips; at least 98 %
  of its sources must be in ours (HAP positions ``x_hap, y_hap``) within 0.05 px.
* Whole alignment: ``align.perform_align`` on identical copies of a WFC3/UVIS visit, served the
  same catalogue through the loopback service; both WCSs are measured against the truth.

drizzlepac 3.11 expects photutils 2 column names; ``photutils2_shim`` adapts them (test only).
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from hapgpu.align import align_exposures, alignment_pars, find_alignment_sources

from ._catalog_server import CatalogServer
from ._helpers import copy_visit, photutils2_shim, rms, truth_offsets_mas

pytestmark = [pytest.mark.reference, pytest.mark.slow]


@pytest.fixture()
def quiet_drizzlepac():
    """drizzlepac logs and warns a great deal; keep it out of the test's warnings filter."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        previous = logging.getLogger("drizzlepac").level
        logging.getLogger("drizzlepac").setLevel(logging.ERROR)
        try:
            yield
        finally:
            logging.getLogger("drizzlepac").setLevel(previous)


@pytest.mark.parametrize("instrument", ["wfc3-uvis", "wfc3-ir", "acs-hrc", "acs-wfc"])
def test_source_lists_match_drizzlepac(visit_cache, tmp_path, instrument, quiet_drizzlepac):
    from drizzlepac import align
    from drizzlepac.haputils import align_utils

    visit = visit_cache(instrument)
    name = tmp_path / visit.files[0].name
    shutil.copy(visit.files[0], name)
    header = fits.getheader(name)
    pars = alignment_pars(header["INSTRUME"], header.get("DETECTOR"))
    apars = align.get_default_pars(header["INSTRUME"], header.get("DETECTOR"))
    apars["MAX_SOURCES_PER_CHIP"] = pars.max_sources_per_chip
    cwd = os.getcwd()
    os.chdir(tmp_path)                       # drizzlepac writes log files beside it
    try:
        with photutils2_shim():
            table = align_utils.AlignmentTable([name.name], **apars)
            table.find_alignment_sources(output=False)
            reference = table.extracted_sources[name.name]
    finally:
        os.chdir(cwd)
    ours = find_alignment_sources([name], pars, backend="cpu")[0]
    total, matched = 0, 0
    for chip, ref in reference.items():
        assert ref is not None and len(ref) > 20
        mine = ours.chips[chip]
        rx, ry = np.asarray(ref["xcentroid"], float), np.asarray(ref["ycentroid"], float)
        d = np.hypot(rx[:, None] - np.asarray(mine["x_hap"])[None, :],
                     ry[:, None] - np.asarray(mine["y_hap"])[None, :])
        total += len(rx)
        matched += int((d.min(axis=1) <= 0.05).sum())
    assert matched >= 0.98 * total, f"{matched} of drizzlepac's {total} sources matched"


def test_alignment_beside_drizzlepac_perform_align(visit_cache, tmp_path, quiet_drizzlepac,
                                                   record_property, capsys):
    from drizzlepac import align
    from drizzlepac.haputils import astrometric_utils

    visit = visit_cache("wfc3-uvis")
    ours_dir, ours_files = copy_visit(visit, tmp_path / "ours")
    ref_dir, ref_files = copy_visit(visit, tmp_path / "drizzlepac")
    refcat = Table.read(visit.refcat, format="ascii.ecsv")
    with CatalogServer(refcat) as server:
        result = align_exposures(ours_files, refcat=server.url, backend="cpu")
        saved = astrometric_utils.SERVICELOCATION
        astrometric_utils.SERVICELOCATION = server.url
        cwd = os.getcwd()
        os.chdir(ref_dir)
        try:
            with photutils2_shim():
                align.perform_align([f.name for f in ref_files],
                                    catalog_list=["GAIAeDR3", "GSC242", "2MASS"],
                                    num_sources=250, update_hdr_wcs=True,
                                    print_fit_parameters=False)
        finally:
            os.chdir(cwd)
            astrometric_utils.SERVICELOCATION = saved
    ours_rms = rms(truth_offsets_mas(ours_dir, ours_files))
    ref_rms = rms(truth_offsets_mas(ref_dir, ref_files))
    ref_names = [fits.getval(f, "WCSNAME", ("SCI", 1)) for f in ref_files]
    record_property("truth_rms_hapgpu_mas", ours_rms)
    record_property("truth_rms_drizzlepac_mas", ref_rms)
    with capsys.disabled():
        print(f"\ntruth RMS after alignment: hapgpu {ours_rms:.2f} mas, "
              f"drizzlepac perform_align {ref_rms:.2f} mas ({ref_names[0]})")
    assert [e.wcsname for e in result.exposures] == ref_names
    assert ref_rms < 10.0                      # the oracle itself worked
    assert ours_rms <= 5.0
    assert ours_rms <= ref_rms + 0.5
