"""Every public detection function and class takes arrays as users hand them in.

FITS data are big-endian (``astropy.io.fits.getdata`` returns ``>f4``, ``>i4``, ...); views
may be strided or read-only; images may be integers. Each public name of
:mod:`hapgpu.detection` has a case here that runs it on such inputs and on the same values as
native, C-ordered, writeable arrays, and the two results must be identical, with every array
in the result in native byte order. A public name without a case fails
:func:`test_every_public_name_has_a_case`.
"""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.table import Table

import hapgpu.detection as det
from hapgpu.detection._synthetic import make_field

# Public names that take no array at all (nothing to convert), with the reason.
NO_ARRAY_INPUT = {
    "DeblendModeWarning": "a warning category",
    "NoDetectionsWarning": "a warning category",
    "StarFinderKernel": "built from scalars only (fwhm, ratio, theta, sigma_radius)",
}

_COLUMNS = ["label", "x_centroid", "y_centroid", "bbox_xmin", "bbox_xmax", "bbox_ymin",
            "bbox_ymax", "area", "segment_flux", "segment_flux_err", "min_value", "max_value",
            "semimajor_axis", "semiminor_axis", "orientation", "eccentricity", "ellipticity",
            "covariance_xy", "ellipse_cxy", "fwhm", "kron_radius", "background_mean",
            "background_centroid", "max_value_xindex", "kron_flux", "kron_flux_err"]


# ---------------------------------------------------------------------------------- inputs
def _scene(shape, seed):
    """Arrays of every kind the public API takes, native order; images hold whole numbers
    (so that an integer copy has the same values)."""
    ny, nx = shape
    field = make_field(shape, n_stars=max(6, nx * ny // 200), n_galaxies=2, fwhm=2.5,
                       star_flux=(20.0, 200.0), seed=seed)
    image = np.round((field.data - field.sky) * 1000.0).astype(np.float32)
    y, x = np.mgrid[:ny, :nx]
    mask = np.zeros(shape, bool)
    mask[ny // 3:ny // 3 + 3, nx // 4:nx // 2] = True
    stars = field.stars[:5, :2]
    single_a = image + 60.0
    single_a[:, :3] = 0.0
    single_b = np.roll(image, 1, axis=1) + 55.0
    single_b[:2, :] = 0.0
    coverage = (single_a > 0).astype(np.int32) + (single_b > 0).astype(np.int32)
    return {
        "image": image,
        "error": (field.error * 1000.0).astype(np.float32),
        "background": (50.0 + 0.5 * x + 0.25 * y).astype(np.float32),
        "mask": mask,
        "threshold": (30.0 + 0.2 * x).astype(np.float32),
        "segm": det.detect_sources(image, 40.0, 3, backend="cpu").data,
        "positions": np.ascontiguousarray(stars, dtype=np.float64),
        "kernel": np.array([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]),
        "footprint": np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool),
        "singles": [single_a, single_b],
        "product": np.round(0.5 * (single_a + single_b)),
        "coverage": coverage,
        "exptimes": np.array([100.0, 50.0]),
    }


_IMAGE_KEYS = ("image", "singles", "product")


def _convert(arrays, transform, *, image_dtype=None):
    """Apply ``transform`` to every array (lists element-wise); images first get
    ``image_dtype`` in native order."""
    out = {}
    for key, value in arrays.items():
        def one(a, key=key):
            if image_dtype is not None and key in _IMAGE_KEYS:
                a = a.astype(np.dtype(image_dtype).newbyteorder("="))
            return a, transform(a)
        if isinstance(value, list):
            pairs = [one(v) for v in value]
            out[key] = ([p[0] for p in pairs], [p[1] for p in pairs])
        else:
            out[key] = one(value)
    native = SimpleNamespace(**{k: v[0] for k, v in out.items()})
    converted = SimpleNamespace(**{k: v[1] for k, v in out.items()})
    return native, converted


def _big_endian(a):
    return a if a.dtype == bool else a.astype(a.dtype.newbyteorder(">"))


def _strided(a):
    return np.stack([a, a], axis=-1)[..., 0]  # same values, not contiguous


def _read_only(a):
    b = a.copy()
    b.setflags(write=False)
    return b


class _FitsRoundTrip:
    """Write each array to a real FITS file and read it back with ``fits.getdata``."""

    def __init__(self, folder):
        self.folder = folder
        self.count = 0

    def __call__(self, a):
        self.count += 1
        path = self.folder / f"array{self.count}.fits"
        fits.PrimaryHDU(a.astype(np.int16) if a.dtype == bool else a).writeto(path)
        back = fits.getdata(path)
        assert not back.dtype.isnative or back.dtype.itemsize == 1
        return back


# variant -> (transform, image dtype)
VARIANTS = {
    "big-endian-f4": (_big_endian, None),
    "big-endian-f8": (_big_endian, "f8"),
    "big-endian-i4": (_big_endian, "i4"),
    "strided": (_strided, None),
    "read-only": (_read_only, None),
}


@pytest.fixture(scope="module")
def scene():
    return _scene((40, 48), seed=3)


@pytest.fixture(scope="module")
def inputs(scene, tmp_path_factory):
    cache = {}

    def get(variant):
        if variant not in cache:
            if variant == "fits":
                transform, dtype = _FitsRoundTrip(tmp_path_factory.mktemp("fits")), None
            else:
                transform, dtype = VARIANTS[variant]
            cache[variant] = _convert(scene, transform, image_dtype=dtype)
        return cache[variant]

    return get


# ---------------------------------------------------------------------------------- cases
def _background(cls_name):
    estimator = getattr(det, cls_name)()
    key = "bkg_rms_estimator" if "RMS" in cls_name else "bkg_estimator"

    def case(a, bk):
        bkg = det.Background2D(a.image, (10, 12), mask=a.mask, filter_size=1,
                               exclude_percentile=50.0, backend=bk,
                               **{key: estimator})
        return bkg.background, bkg.background_rms, bkg.background_mesh, bkg.n_pixels_mesh
    return case


def _daofind(a, bk):
    found = det.DAOStarFinder(60.0, 2.5, backend=bk).find_stars(a.image, mask=a.mask)
    measured = det.DAOStarFinder(1e-6, 2.5, xycoords=a.positions, roundness_range=None,
                                 sharpness_range=None, backend=bk).find_stars(a.image)
    per_pixel = det.DAOStarFinder(a.threshold, 2.5, backend=bk).find_stars(a.image)
    return found, measured, per_pixel


def _iraf(a, bk):
    found = det.IRAFStarFinder(60.0, 2.5, roundness_range=None, backend=bk).find_stars(
        a.image, mask=a.mask)
    measured = det.IRAFStarFinder(1e-6, 2.5, xycoords=a.positions, roundness_range=None,
                                  sharpness_range=None, backend=bk).find_stars(a.image)
    per_pixel = det.IRAFStarFinder(a.threshold, 2.5, roundness_range=None,
                                   backend=bk).find_stars(a.image)
    return found, measured, per_pixel


def _user_star_finder(a, bk):
    return det.user_star_finder(a.image, np.round(a.positions), 2.5, sharplo=-10.0,
                                sharphi=10.0, roundlo=-10.0, roundhi=10.0, backend=bk)


def _catalog(a, bk):
    cat = det.SourceCatalog(a.image, a.segm, convolved_data=a.image, error=a.error,
                            background=a.background, mask=a.mask, backend=bk)
    return cat.to_table(_COLUMNS), cat.moments_central, cat.covariance


def _segmentation_image(a, bk):
    segm = det.SegmentationImage(a.segm)
    copy = segm.copy()
    copy.relabel_consecutive()
    return segm.data, segm.labels, segm.areas, segm.slices, segm.bbox_array, copy.data


def _apertures(a, bk):
    circles = det.CircularAperture(a.positions, 3.0)
    rings = det.CircularAnnulus(a.positions, 4.0, 6.5)
    table = det.aperture_photometry(a.image, [circles, rings], error=a.error, mask=a.mask,
                                    backend=bk)
    return circles.positions, rings.positions, table


def _deblend(a, bk):
    plain = det.deblend_sources(a.image, a.segm, 3, backend=bk)
    wrapped = det.deblend_sources(a.image, det.SegmentationImage(a.segm), 3, labels=[1],
                                  contrast=0.05, relabel=False, backend=bk)
    return plain, wrapped, det.deblend_sources(a.image, a.segm, 3, contrast=1, backend=bk)


def _detect(a, bk):
    return (det.detect_sources(a.image, a.threshold, 3, mask=a.mask, backend=bk),
            det.detect_sources(a.image, 40.0, 2, connectivity=4, backend=bk))


def _find_peaks(a, bk):
    return (det.find_peaks(a.image, a.threshold, mask=a.mask, footprint=a.footprint,
                           backend=bk),
            det.find_peaks(a.image, 40.0, box_size=5, border_width=2, backend=bk),
            det.find_peaks(a.image, 40.0, min_separation=3.5, n_peaks=4, backend=bk))


CASES = {
    "Background2D": _background("SExtractorBackground"),
    "SExtractorBackground": _background("SExtractorBackground"),
    "MedianBackground": _background("MedianBackground"),
    "MeanBackground": _background("MeanBackground"),
    "MMMBackground": _background("MMMBackground"),
    "StdBackgroundRMS": _background("StdBackgroundRMS"),
    "MADStdBackgroundRMS": _background("MADStdBackgroundRMS"),
    "DAOStarFinder": _daofind,
    "IRAFStarFinder": _iraf,
    "user_star_finder": _user_star_finder,
    "SourceCatalog": _catalog,
    "SegmentationImage": _segmentation_image,
    "CircularAperture": _apertures,
    "CircularAnnulus": _apertures,
    "aperture_photometry": _apertures,
    "aperture_stats_tbl": lambda a, bk: det.aperture_stats_tbl(
        a.image, det.CircularAnnulus(a.positions, 3.0, 6.0), backend=bk),
    "binary_erosion": lambda a, bk: (
        det.binary_erosion(a.image, structure=a.footprint, mask=a.mask, backend=bk),
        det.binary_erosion(a.segm, iterations=2, backend=bk)),
    "build_focus_dict": lambda a, bk: det.build_focus_dict(a.singles, a.product, sigma=2.0,
                                                           backend=bk),
    "compute_similarity": lambda a, bk: det.compute_similarity(a.singles[1], a.product,
                                                               backend=bk),
    "compute_zero_mask": lambda a, bk: det.compute_zero_mask(a.singles[0], iterations=2,
                                                             backend=bk),
    "convolve": lambda a, bk: (det.convolve(a.image, a.kernel, mask=a.mask, backend=bk),
                               det.convolve(a.image, a.kernel, normalize_kernel=False,
                                            nan_treatment="fill", backend=bk)),
    "correlate": lambda a, bk: det.correlate(a.image, a.kernel, backend=bk),
    "deblend_sources": _deblend,
    "detect_point_sources": lambda a, bk: det.detect_point_sources(a.singles[0], backend=bk),
    "detect_sources": _detect,
    "evaluate_focus": lambda a, bk: det.evaluate_focus(
        det.build_focus_dict(a.singles, a.product, backend=bk)),
    "evaluate_overlap_diffs": lambda a, bk: det.evaluate_overlap_diffs(det.max_overlap_diff(
        a.coverage, a.singles, a.product, exptimes=a.exptimes, backend=bk)),
    "find_peaks": _find_peaks,
    "focus_index": lambda a, bk: det.focus_index(a.image, 1.5, mask=a.mask, backend=bk),
    "gaussian_filter": lambda a, bk: det.gaussian_filter(a.image, 1.5, backend=bk),
    "gaussian_laplace": lambda a, bk: det.gaussian_laplace(a.image, 2.0, backend=bk),
    "label": lambda a, bk: (det.label(a.segm, backend=bk),
                            det.label(a.mask, structure=np.ones((3, 3)), backend=bk)),
    "mad_rms": lambda a, bk: det.mad_rms(a.image, backend=bk),
    "max_overlap_diff": lambda a, bk: det.max_overlap_diff(
        a.coverage, a.singles, a.product, exptimes=a.exptimes, backend=bk),
    "maximum_filter": lambda a, bk: det.maximum_filter(a.image, footprint=a.footprint,
                                                       backend=bk),
    "median_filter": lambda a, bk: (det.median_filter(a.image, size=3, backend=bk),
                                    det.median_filter(a.image, footprint=a.footprint,
                                                      backend=bk)),
    "sigma_clipped_stats": lambda a, bk: (
        det.sigma_clipped_stats(a.image, mask=a.mask, backend=bk),
        det.sigma_clipped_stats(a.image, stdfunc="mad_std", maxiters=None, backend=bk)),
}

# A representative subset for the CUDA kernels in Numba's simulator (slow: tiny arrays).
CUDASIM_CASES = ["Background2D", "DAOStarFinder", "SourceCatalog", "aperture_photometry",
                 "aperture_stats_tbl", "detect_sources", "find_peaks", "sigma_clipped_stats",
                 "mad_rms", "label"]


# ---------------------------------------------------------------------------------- checks
def _assert_same(ours, ref, where="result"):
    """``ours`` equals ``ref`` exactly (NaN == NaN); every array in ``ours`` is native."""
    if isinstance(ref, (det.SegmentationImage,)):
        _assert_same(ours.data, ref.data, where + ".data")
        _assert_same(ours._deblend_label_map, ref._deblend_label_map, where + ".label_map")
        _assert_same(ours.info, ref.info, where + ".info")
    elif isinstance(ref, Table):
        assert type(ours) is type(ref) and ours.colnames == ref.colnames, where
        for name in ref.colnames:
            _assert_same(ours[name], ref[name], f"{where}[{name!r}]")
    elif isinstance(ref, u.Quantity):
        assert isinstance(ours, u.Quantity) and ours.unit == ref.unit, where
        _assert_same(ours.value, ref.value, where)
    elif isinstance(ref, np.ndarray):
        assert isinstance(ours, np.ndarray), where
        assert ours.dtype.isnative, f"{where}: dtype {ours.dtype} is not native"
        assert ours.dtype == ref.dtype and ours.shape == ref.shape, where
        if ref.dtype.kind == "O":
            assert all(x == y for x, y in zip(ours.ravel(), ref.ravel())), where
        else:
            np.testing.assert_array_equal(ours, ref, err_msg=where, strict=True)
    elif isinstance(ref, dict):
        assert ours.keys() == ref.keys(), where
        for key in ref:
            _assert_same(ours[key], ref[key], f"{where}[{key!r}]")
    elif isinstance(ref, (list, tuple)):
        assert len(ours) == len(ref), where
        for i, (x, y) in enumerate(zip(ours, ref)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(ref, (float, np.floating)) and math.isnan(ref):
        assert isinstance(ours, (float, np.floating)) and math.isnan(ours), where
    else:
        assert type(ours) is type(ref) and ours == ref, f"{where}: {ours!r} != {ref!r}"
    if isinstance(ref, np.generic):
        assert ours.dtype.isnative, where


def _run(case, a, backend):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", det.NoDetectionsWarning)
        warnings.simplefilter("ignore", det.DeblendModeWarning)
        return CASES[case](a, backend)


def _nontrivial(result):
    """No part of the result is None (the photutils-style "nothing found")."""
    if isinstance(result, (tuple, list)):
        return all(_nontrivial(r) for r in result)
    return result is not None


# ---------------------------------------------------------------------------------- tests
def test_every_public_name_has_a_case():
    public = set(det.__all__)
    assert not set(CASES) & set(NO_ARRAY_INPUT)
    missing = public - set(CASES) - set(NO_ARRAY_INPUT)
    assert not missing, f"public names without a byte-order case: {sorted(missing)}"
    assert set(CASES) | set(NO_ARRAY_INPUT) <= public
    assert set(CUDASIM_CASES) <= set(CASES)


@pytest.mark.parametrize("variant", [*VARIANTS, "fits"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_public_api_takes_any_byte_order_and_layout(inputs, case, variant):
    native, converted = inputs(variant)
    ref = _run(case, native, "cpu")
    assert _nontrivial(ref), f"{case} found nothing to compare on this scene"
    _assert_same(_run(case, converted, "cpu"), ref)


def test_inputs_really_are_what_the_variants_claim(inputs):
    _, fits_inputs = inputs("fits")
    assert fits_inputs.image.dtype == np.dtype(">f4")
    assert fits_inputs.segm.dtype == np.dtype(">i4")
    assert fits_inputs.mask.dtype == np.dtype(">i2")
    assert fits_inputs.positions.dtype == np.dtype(">f8")
    _, big = inputs("big-endian-i4")
    assert big.image.dtype == np.dtype(">i4") and big.singles[0].dtype == np.dtype(">i4")
    _, strided = inputs("strided")
    assert not strided.image.flags.c_contiguous and not strided.mask.flags.c_contiguous
    _, frozen = inputs("read-only")
    assert not frozen.image.flags.writeable


def test_file_names_read_like_arrays(scene, tmp_path):
    """Quality metrics given FITS file names (big-endian on disk) equal the array results."""
    names = []
    for i, (single, t) in enumerate(zip(scene["singles"], scene["exptimes"])):
        hdu = fits.PrimaryHDU(single)
        hdu.header["EXPTIME"] = float(t)
        names.append(str(tmp_path / f"single{i}.fits"))
        hdu.writeto(names[-1])
    prod_primary = str(tmp_path / "prod0.fits")
    fits.PrimaryHDU(scene["product"]).writeto(prod_primary)
    prod_sci = str(tmp_path / "prod.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(scene["product"], name="SCI")]).writeto(
        prod_sci)
    from_files = det.build_focus_dict(names, prod_primary, backend="cpu")
    from_arrays = det.build_focus_dict(scene["singles"], scene["product"], backend="cpu")
    assert from_files["exp"] == from_arrays["exp"] and from_files["prod"] == from_arrays["prod"]
    diffs = det.max_overlap_diff(scene["coverage"], names, prod_sci, backend="cpu")
    ref = det.max_overlap_diff(scene["coverage"], scene["singles"], scene["product"],
                               exptimes=scene["exptimes"], names=names, backend="cpu")
    _assert_same(diffs, ref)
    _assert_same(det.focus_index(names[0], backend="cpu"),
                 det.focus_index(scene["singles"][0], backend="cpu"))


@pytest.fixture(scope="module")
def tiny():
    return _convert(_scene((16, 20), seed=4), _big_endian)


@pytest.mark.parametrize("case", CUDASIM_CASES)
def test_cudasim_takes_big_endian_input(tiny, case):
    native, big = tiny
    ref = _run(case, native, "cudasim")
    assert _nontrivial(ref)
    _assert_same(_run(case, big, "cudasim"), ref)


def test_masked_arrays_and_quantities_are_unwrapped(scene):
    image = scene["image"].astype(">f4")
    masked = np.ma.MaskedArray(image, mask=scene["mask"])
    ref = det.sigma_clipped_stats(scene["image"], mask=scene["mask"], backend="cpu")
    _assert_same(det.sigma_clipped_stats(masked, backend="cpu"), ref)
    quantity = det.gaussian_filter(image * u.electron, 1.0, backend="cpu")
    _assert_same(quantity, det.gaussian_filter(scene["image"], 1.0, backend="cpu"))


def test_helper_copies_only_when_needed():
    from hapgpu.detection._common import native_array

    good = np.arange(6.0).reshape(2, 3)
    assert native_array(good) is good
    for bad in (good.astype(">f8"), good[:, ::2], _read_only(good)):
        out = native_array(bad)
        assert out is not bad and out.dtype.isnative and out.flags.c_contiguous
        assert out.flags.writeable
        np.testing.assert_array_equal(out, bad)
    assert native_array(good.astype(">i4"), dtype=">f4").dtype == np.dtype("=f4")
