"""HAP point-source identification, hapgpu vs drizzlepac 3.11, both with hapgpu's PSF library.

drizzlepac's ``find_point_sources`` drizzles the TinyTim library PSF it ships; hapgpu ships
its own library (``hapgpu/data/psfs``), so the end-to-end catalogs differ by the PSF as well
as by the code. Here drizzlepac's own ``find_point_sources`` (its ``find_psf`` pointed at
hapgpu's library, its ``convert_library_psf`` / AstroDrizzle, FWHM fit, FFT deconvolution and
``find_peaks`` untouched) and its ``UserStarFinder`` run on exactly the regions
:func:`hapgpu.catalogs._point.identify_point_sources` builds for the small simulated SVM
product sets (``tests/catalogs/_products.py``), so any difference is the code's.

``identify_point_sources`` runs unchanged: the real ``find_psf_peaks`` and ``psf_fwhm`` are
wrapped (called through, arguments and results recorded) to see the region, PSF FWHM and
peaks of each weight region, and ``measure_user_peaks`` likewise for each region's survivors.
"""

from __future__ import annotations

import logging
import shutil
import warnings

import numpy as np
import pytest

from hapgpu.catalogs import _point
from hapgpu.catalogs._parameters import catalog_parameters
from hapgpu.catalogs._prepare import prepare_image
from hapgpu.catalogs._psf import PSF_LIBRARY

# Columns compared between the survivors (photutils 2 names, as both tables carry them).
STATISTICS = ("xcentroid", "ycentroid", "sharpness", "roundness1", "roundness2", "npix",
              "peak", "flux", "mag")


def _record_identification(monkeypatch, prepared):
    """Run identify_point_sources on ``prepared``, recording per weight region the thresholded
    region, the footprint, the PSF FWHM, the peaks and the UserStarFinder survivors."""
    regions, fwhms, survivors = [], [], []
    real_peaks, real_fwhm, real_measure = (_point.find_psf_peaks, _point.psf_fwhm,
                                           _point.measure_user_peaks)

    def find_psf_peaks(region, psf, footprint, **kwargs):
        entry = {"region": np.array(region, copy=True),
                 "footprint": np.array(footprint, dtype=bool, copy=True), "kwargs": kwargs}
        entry["result"] = real_peaks(region, psf, footprint, **kwargs)
        regions.append(entry)
        return entry["result"]

    def psf_fwhm(*args, **kwargs):
        fwhms.append(real_fwhm(*args, **kwargs))
        return fwhms[-1]

    def measure_user_peaks(*args, **kwargs):
        survivors.append(real_measure(*args, **kwargs))
        return survivors[-1]

    with monkeypatch.context() as patch:
        patch.setattr(_point, "find_psf_peaks", find_psf_peaks)
        patch.setattr(_point, "psf_fwhm", psf_fwhm)
        patch.setattr(_point, "measure_user_peaks", measure_user_peaks)
        sources = _point.identify_point_sources(prepared, backend="cpu")
    return sources, regions, fwhms, survivors


def _drizzlepac_identify(monkeypatch, workdir, product_set, region, footprint, def_fwhm,
                         box_size, block_size, library=PSF_LIBRARY):
    """drizzlepac 3.11's PSF path of ``identify_sources`` on one thresholded region, with
    ``find_psf`` reading ``library`` (hapgpu's by default; None: drizzlepac's own TinyTim
    library): ``(peaks, psf_fwhm, UserStarFinder table)``."""
    from drizzlepac.haputils import deconvolve_utils as du

    real_find_psf = du.find_psf
    library_root = None if library is None else str(library)
    logger = logging.getLogger("drizzlepac")
    level = logger.level
    logger.setLevel(logging.ERROR)
    data = np.array(region, copy=True)   # find_point_sources masks it in place, as in HAP
    try:
        with monkeypatch.context() as patch, warnings.catch_warnings():
            patch.setattr(du, "find_psf", lambda imgname, path_root=None: real_find_psf(
                imgname, path_root=library_root))
            patch.chdir(workdir)   # drizzlepac reads and writes the current directory
            warnings.simplefilter("ignore")
            peaks, fwhm = du.find_point_sources(product_set.total.name, data=data,
                                                mask=footprint, def_fwhm=def_fwhm,
                                                box_size=box_size, block_size=block_size)
            table = None
            if peaks is not None and len(peaks) > 0:
                finder = du.UserStarFinder(fwhm=fwhm, coords=peaks, threshold=1.0e-10,
                                           sharphi=0.9, sharplo=0.4)
                table = finder(data, mask=~footprint)
    finally:
        logger.setLevel(level)
    return peaks, fwhm, table


@pytest.mark.reference
@pytest.mark.slow
@pytest.mark.parametrize("name", ["uvis", "ir"])
def test_point_identification_equals_drizzlepac_with_same_psf(name, product_set, monkeypatch,
                                                              tmp_path):
    ps = product_set(name)
    total, _ = ps.catalog_inputs()
    params = catalog_parameters(total.instrument, total.detector)
    assert params.generation.get("starfinder_algorithm", "psf") == "psf"
    prepared = prepare_image(total, params, backend="cpu")
    gen = params.generation
    box_size = int(gen["region_size"])
    block_size = tuple(int(b) for b in gen["block_size"])

    sources, regions, fwhms, survivors = _record_identification(monkeypatch, prepared)
    # drizzlepac's find_point_sources works in the current directory: the total and its
    # D???DATA inputs go there
    for path in [ps.total, *(p for f in ps.filters for p in ps.exposures[f])]:
        shutil.copy(path, tmp_path / path.name)
    # the PSF path ran on every weight region, and its tables are what was returned
    assert len(regions) == len(survivors) == len(prepared.regions) >= 1
    assert len(fwhms) == 1 and fwhms[0] is not None
    assert len(sources) == sum(len(s) for s in survivors if s is not None)

    for number, entry in enumerate(regions):
        assert entry["kwargs"]["box_size"] == box_size
        assert tuple(entry["kwargs"]["block_size"]) == block_size
        peaks, fwhm, ref = _drizzlepac_identify(
            monkeypatch, tmp_path, ps, entry["region"], entry["footprint"],
            float(prepared.kernel_fwhm), box_size, block_size)
        where = f"{name} region {number}"

        # drizzled PSF FWHM (AstroDrizzle + amutils.find_fwhm vs hapgpu's drizzle + fit):
        # both drizzled PSFs are float32, so the fits agree to float32 precision (eps 1.2e-7;
        # measured 3e-8 on both sets)
        np.testing.assert_allclose(fwhms[0], fwhm, rtol=1.2e-7, err_msg=f"{where}: PSF FWHM")

        # integer peaks: identical positions, in the same (raster) order
        mine = entry["result"]
        assert peaks is not None and len(peaks) > 20, where
        np.testing.assert_array_equal(mine.x_peak, np.asarray(peaks["x_peak"]),
                                      err_msg=f"{where}: x_peak")
        np.testing.assert_array_equal(mine.y_peak, np.asarray(peaks["y_peak"]),
                                      err_msg=f"{where}: y_peak")

        # survivors of UserStarFinder's sharpness/roundness cuts: the same sources. Both
        # measure the same float32 region; drizzlepac sums its boxes in float32, hapgpu in
        # float64, so values agree to float32-sum precision: 1e-6 relative (a few float32
        # eps over an 11x11 box), and 1e-6 absolute for roundness1, a difference of quadrant
        # sums that can be near 0 (measured: 1.5e-7 absolute at most; centroids 2e-8 px).
        own = survivors[number]
        assert ref is not None and own is not None, where
        assert len(own) == len(ref) > 20, f"{where}: {len(own)} vs {len(ref)} survivors"
        for column in STATISTICS:
            np.testing.assert_allclose(np.asarray(own[column], float),
                                       np.asarray(ref[column], float), rtol=1e-6, atol=1e-6,
                                       err_msg=f"{where}: {column}")

    # the returned catalog holds those survivors, in that order
    own_all = np.concatenate([np.asarray(s["xcentroid"], float) for s in survivors
                              if s is not None])
    np.testing.assert_array_equal(np.asarray(sources["xcentroid"], float), own_all)


def _filled(column) -> np.ndarray:
    """A catalog column as float, masked entries and drizzlepac's -9999 fills as NaN."""
    values = np.asarray(column.filled(np.nan) if hasattr(column, "filled") else column,
                        dtype=float)
    return np.where(values <= -9999.0, np.nan, values)


@pytest.mark.reference
@pytest.mark.slow
@pytest.mark.parametrize("name", ["uvis", "ir"])
def test_point_catalog_gap_is_the_library_psf_alone(name, product_set, oracle_catalogs,
                                                    monkeypatch, tmp_path):
    """The other half of the chain: drizzlepac's PSF finder with *its own* (TinyTim) library,
    run on the regions hapgpu builds, gives drizzlepac's point catalog source for source, and
    hapgpu's photometry at those positions gives its magnitudes. With the test above (same
    library: same peaks and survivors), every difference between the two point catalogs
    (test_catalogs_reference.py::test_point_catalogs_match) comes from the library PSF: which
    integer pixels of the deconvolved image are peaks, hence which sources are found and which
    pixels each source's DAOFIND box keeps (its centroid, then its aperture photometry)."""
    from hapgpu.catalogs._point import measure_point_catalog

    ps = product_set(name)
    oracle = oracle_catalogs(name)
    total, filters = ps.catalog_inputs()
    params = catalog_parameters(total.instrument, total.detector)
    prepared = prepare_image(total, params, backend="cpu")
    gen = params.generation
    _, regions, _, _ = _record_identification(monkeypatch, prepared)
    for path in [ps.total, *(p for f in ps.filters for p in ps.exposures[f])]:
        shutil.copy(path, tmp_path / path.name)
    found = []
    for entry in regions:
        _, _, table = _drizzlepac_identify(
            monkeypatch, tmp_path, ps, entry["region"], entry["footprint"],
            float(prepared.kernel_fwhm), int(gen["region_size"]),
            tuple(int(b) for b in gen["block_size"]), library=None)
        if table is not None:
            found.append(table)
    x = np.concatenate([np.asarray(t["xcentroid"], float) for t in found])
    y = np.concatenate([np.asarray(t["ycentroid"], float) for t in found])

    for filter_name, product in zip(ps.filters, filters):
        theirs = oracle.catalog(filter_name, "point")
        # drizzlepac's catalog lists the total's sources in finding order: the same rows, at
        # the same positions up to the float32 sums of the finder's boxes (measured 1.1e-7 px)
        assert len(theirs) == len(x) > 20, f"{name} {filter_name}: {len(theirs)} vs {len(x)}"
        np.testing.assert_allclose(_filled(theirs["X-Center"]), x, rtol=0, atol=1e-6)
        np.testing.assert_allclose(_filled(theirs["Y-Center"]), y, rtol=0, atol=1e-6)
        # photometry at drizzlepac's positions: float64 on both sides, only the order of the
        # sums differs (measured 2.3e-13 mag, 2e-11 electron/s at most)
        image = prepare_image(product, params, backend="cpu")
        sources = theirs["X-Center", "Y-Center", "ID"]
        mine, _ = measure_point_catalog(image, sources, backend="cpu")
        for column in ("RA", "DEC", "MagAp1", "MagErrAp1", "FluxAp1", "FluxErrAp1", "MagAp2",
                       "MagErrAp2", "MSkyAp2", "StdevAp2", "FluxAp2", "FluxErrAp2", "CI"):
            np.testing.assert_allclose(_filled(mine[column]), _filled(theirs[column]),
                                       rtol=1e-9, atol=1e-9, equal_nan=True,
                                       err_msg=f"{name} {filter_name}: {column}")
