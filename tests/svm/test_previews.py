"""JPEG previews of drizzled products (hapgpu.svm._previews): names, sizes, stretch, orientation,
colour order. Products are small FITS files written here (PRIMARY, SCI with a north-up TAN WCS)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.io import fits
from astropy.visualization import ZScaleInterval
from astropy.wcs import WCS
from PIL import Image

from hapgpu.errors import InvalidInputError, InvalidParameterError, OutputWriteError
from hapgpu.svm._previews import (
    bin_image,
    channel_weights,
    color_preview_filenames,
    color_preview_image,
    display_limits,
    filter_name_of_product,
    preview_filenames,
    preview_image,
    save_jpeg,
    stretch_to_uint8,
    write_color_preview,
    write_previews,
    zscale_limits,
)

TOTAL = "hst_12345_06_wfc3_uvis_total_ib4606_drc.fits"
SCALE = 0.04 / 3600.0
CRVAL = (150.0, 2.0)


def _filter_name(filt):
    return f"hst_12345_06_wfc3_uvis_{filt}_ib4606_drc.fits"


def _wcs_header(shape):
    """North up, east left: RA grows to -x, Dec to +y (HAP's metawcs orientation)."""
    ny, nx = shape
    return {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": CRVAL[0], "CRVAL2": CRVAL[1],
            "CRPIX1": (nx + 1) / 2, "CRPIX2": (ny + 1) / 2, "CD1_1": -SCALE, "CD1_2": 0.0,
            "CD2_1": 0.0, "CD2_2": SCALE}


def _write_product(path, sci, *, photplam=None, photplam_in_primary=False):
    sci = np.asarray(sci, np.float32)
    primary = fits.PrimaryHDU()
    sci_hdu = fits.ImageHDU(sci, name="SCI")
    sci_hdu.header.update(_wcs_header(sci.shape))
    if photplam is not None:
        (primary if photplam_in_primary else sci_hdu).header["PHOTPLAM"] = photplam
    wht = fits.ImageHDU(np.isfinite(sci).astype(np.float32), name="WHT")
    fits.HDUList([primary, sci_hdu, wht]).writeto(path)
    return path


def _noisy(shape, seed=0, sky=1.0, sigma=0.1):
    return np.random.default_rng(seed).normal(sky, sigma, shape).astype(np.float32)


def _read_jpeg(path):
    with Image.open(path) as im:
        assert im.format == "JPEG"
        return im.mode, im.size, np.asarray(im)


# ----------------------------------------------------------------------------------------------
# names

def test_preview_names_follow_the_product_name():
    assert preview_filenames("hst_12345_06_wfc3_uvis_f606w_ib4606_drc.fits") == (
        "hst_12345_06_wfc3_uvis_f606w_ib4606_drc.jpg",
        "hst_12345_06_wfc3_uvis_f606w_ib4606_drc_thumb.jpg")
    assert preview_filenames("/some/dir/hst_9029_06_acs_hrc_total_j8ba06_drz.fits")[1] == \
        "hst_9029_06_acs_hrc_total_j8ba06_drz_thumb.jpg"
    assert color_preview_filenames(TOTAL, ["F438W", "f814w"]) == (
        "hst_12345_06_wfc3_uvis_total_ib4606_f438w-f814w_drc.jpg",
        "hst_12345_06_wfc3_uvis_total_ib4606_f438w-f814w_drc_thumb.jpg")
    with pytest.raises(InvalidInputError, match="not a drizzled product"):
        preview_filenames("ib4606c5q_flc.fits")
    with pytest.raises(InvalidInputError, match="filter names"):
        color_preview_filenames(TOTAL, [])


def test_filter_name_is_read_from_a_filter_product_of_the_total():
    assert filter_name_of_product(_filter_name("f606w"), TOTAL) == "f606w"
    assert filter_name_of_product("hst_9029_06_acs_wfc_f555w-pol60v_j8ba06_drc.fits",
                                  "hst_9029_06_acs_wfc_total_j8ba06_drc.fits") == "f555w-pol60v"
    for bad in ("hst_12345_06_wfc3_ir_f160w_ib4606_drz.fits",       # another detector, type
                "hst_12345_06_wfc3_uvis_f606w_ib4607_drc.fits",     # another visit
                TOTAL):                                              # the total itself
        with pytest.raises(InvalidInputError, match="not a filter product"):
            filter_name_of_product(bad, TOTAL)
    with pytest.raises(InvalidInputError, match="not a total product"):
        filter_name_of_product(_filter_name("f606w"), _filter_name("f814w"))


# ----------------------------------------------------------------------------------------------
# stretch and binning

def test_zscale_limits_are_astropys_on_the_finite_pixels():
    data = _noisy((64, 80), seed=3)
    data[10:14, 20:24] = 500.0
    expected = ZScaleInterval().get_limits(data)
    data[0, :] = np.nan
    data[1, :5] = np.inf
    finite = data[np.isfinite(data)]
    assert zscale_limits(data) == pytest.approx(ZScaleInterval().get_limits(finite), rel=1e-12)
    assert zscale_limits(data)[1] < 500.0 and expected[0] < 1.0 < expected[1]
    assert zscale_limits(np.full((4, 4), np.nan)) is None


def test_zmax_interval_keeps_the_zscale_floor_and_darkens_the_sky():
    data = _noisy((200, 300), seed=9, sky=0.0, sigma=0.02)
    data[50:53, 60:63] = 50.0
    data[100:102, 100:200] = np.linspace(0.1, 5.0, 100)
    data[0, :] = np.nan
    zscale = display_limits(data)
    assert zscale == zscale_limits(data)
    zmax = display_limits(data, "zmax")
    assert zmax[0] == zscale[0]
    assert zmax[1] == pytest.approx(np.percentile(data[np.isfinite(data)], 99.9))
    assert zmax[1] > 10 * zscale[1]
    sky = np.s_[150:, :]
    assert np.median(preview_image(data, interval="zmax")[::-1][sky]) < 80 < \
        np.median(preview_image(data)[::-1][sky])
    assert display_limits(np.full((3, 3), np.nan), "zmax") is None
    with pytest.raises(InvalidParameterError, match="interval"):
        display_limits(data, "minmax")
    with pytest.raises(InvalidParameterError, match="interval"):
        preview_image(data, interval="linear")


def test_stretch_is_monotone_and_maps_the_limits_to_black_and_white():
    ramp = np.linspace(-5.0, 15.0, 2001).reshape(1, -1)
    out = stretch_to_uint8(ramp, (0.0, 10.0), asinh_a=0.1)
    assert out.dtype == np.uint8 and out.shape == ramp.shape
    assert np.all(np.diff(out[0].astype(int)) >= 0)
    assert np.all(out[ramp <= 0.0] == 0) and np.all(out[ramp >= 10.0] == 255)
    # the asinh curve itself at t = 0.5 and t = 0.01
    mid = stretch_to_uint8(np.array([[5.0, 0.1]]), (0.0, 10.0), asinh_a=0.1)[0]
    assert mid[0] == round(255 * math.asinh(5.0) / math.asinh(10.0))
    assert mid[1] == round(255 * math.asinh(0.1) / math.asinh(10.0))
    # default limits: the image's zscale
    data = _noisy((50, 50), seed=1)
    vmin, vmax = zscale_limits(data)
    out = stretch_to_uint8(data)
    assert np.all(out[data <= vmin] == 0) and np.all(out[data >= vmax] == 255)
    assert 0 < np.count_nonzero((out > 0) & (out < 255))


def test_non_finite_pixels_are_black_and_an_empty_image_is_all_black():
    data = _noisy((40, 30), seed=2, sky=100.0)
    data[5:9, 5:9] = np.nan
    data[20, 20] = np.inf
    out = stretch_to_uint8(data)
    assert np.all(out[5:9, 5:9] == 0) and out[20, 20] == 0
    assert np.all(preview_image(np.full((7, 9), np.nan)) == 0)
    flat = np.ones((6, 6))
    flat[0, 0] = np.nan
    assert np.all(stretch_to_uint8(flat) == 0)    # vmin == vmax == 1: at vmin -> black


def test_bin_image_means_the_finite_pixels_of_each_block():
    data = np.arange(35, dtype=np.float64).reshape(5, 7)
    data[0, 0] = np.nan
    data[3:5, 6] = np.nan                         # the whole last partial block
    out = bin_image(data, 2)
    assert out.dtype == np.float32 and out.shape == (3, 4)
    assert out[0, 0] == pytest.approx((1 + 7 + 8) / 3)
    assert out[1, 2] == pytest.approx(data[2:4, 4:6].mean())
    assert out[2, 0] == pytest.approx(data[4, 0:2].mean())      # partial block row
    assert np.isnan(out[2, 3])
    np.testing.assert_array_equal(bin_image(data, 1), data.astype(np.float32))
    with pytest.raises(InvalidParameterError):
        bin_image(data, 0)


def test_preview_size_is_the_smallest_binning_that_fits():
    data = _noisy((300, 500))
    assert preview_image(data).shape == (300, 500)
    assert preview_image(data, max_size=500).shape == (300, 500)
    assert preview_image(data, max_size=200).shape == (100, 167)    # factor 3
    assert preview_image(data, max_size=64).shape == (38, 63)       # factor 8
    with pytest.raises(InvalidParameterError):
        preview_image(data, max_size=0)
    with pytest.raises(InvalidInputError, match="2-D"):
        preview_image(np.zeros(10))


def test_channel_weights_run_blue_to_red():
    np.testing.assert_array_equal(channel_weights(1), [[1, 1, 1]])
    np.testing.assert_array_equal(channel_weights(2), [[0, 0.5, 1], [1, 0.5, 0]])
    np.testing.assert_array_equal(channel_weights(3), [[0, 0, 1], [0, 1, 0], [1, 0, 0]])
    w4 = channel_weights(4)
    np.testing.assert_allclose(w4, [[0, 0, 0.75], [0, 0.5, 0.25], [0.25, 0.5, 0], [0.75, 0, 0]])
    for n in range(1, 8):
        np.testing.assert_allclose(channel_weights(n).sum(axis=0), 1.0)
        w = channel_weights(n)
        if n > 1:   # red weight rises, blue weight falls with wavelength
            assert np.all(np.diff(w[:, 0]) >= 0) and np.all(np.diff(w[:, 2]) <= 0)
    with pytest.raises(InvalidParameterError):
        channel_weights(0)


# ----------------------------------------------------------------------------------------------
# files

def test_write_previews_writes_the_preview_and_thumbnail(tmp_path):
    data = _noisy((300, 500), seed=4)
    data[100:110, 200:210] += 50.0
    data[:, :20] = np.nan
    product = _write_product(tmp_path / _filter_name("f606w"), data)
    written = write_previews(product, max_size=200, thumbnail_size=64)
    assert [p.name for p in written] == list(preview_filenames(product.name))
    assert all(p.parent == tmp_path for p in written)
    mode, size, full = _read_jpeg(written[0])
    assert (mode, size) == ("L", (167, 100))
    mode, size, thumb = _read_jpeg(written[1])
    assert (mode, size) == ("L", (56, 34))      # the preview's 3x3 blocks binned 3x3 again
    expected_thumb = preview_image(data, max_size=56, limits=zscale_limits(data))
    assert expected_thumb.shape == (34, 56)
    assert np.abs(thumb.astype(int) - expected_thumb).mean() < 3
    # the JPEG holds preview_image's pixels (up to compression), no-data columns black
    expected = preview_image(data, max_size=200)
    assert np.abs(full.astype(int) - expected).mean() < 3
    assert full[:, :5].max() < 10
    # nothing but the products and the two JPEGs in the folder (temporary files renamed)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [product.name] + [p.name for p in written])


def test_full_resolution_preview_from_a_host_array_and_another_folder(tmp_path):
    out = tmp_path / "previews"
    out.mkdir()
    data = _noisy((40, 60), seed=5)
    written = write_previews(tmp_path / _filter_name("f814w"), sci=data, output_dir=out,
                             max_size=None, thumbnail_size=None)
    assert [p.name for p in written] == [preview_filenames(_filter_name("f814w"))[0]]
    assert _read_jpeg(written[0])[1] == (60, 40)
    with pytest.raises(OutputWriteError, match="does not exist"):
        write_previews(tmp_path / _filter_name("f814w"), sci=data, output_dir=tmp_path / "none")
    with pytest.raises(InvalidInputError, match="not found"):
        write_previews(tmp_path / _filter_name("f438w"))


def test_north_is_up_and_east_left(tmp_path):
    shape = (120, 160)
    data = _noisy(shape, seed=6)
    wcs = WCS(_wcs_header(shape))
    # a star 1.2" north and 0.8" east of the frame centre
    ra = CRVAL[0] + 0.8 / 3600 / math.cos(math.radians(CRVAL[1]))
    dec = CRVAL[1] + 1.2 / 3600
    x, y = (round(float(v)) for v in wcs.world_to_pixel_values(ra, dec))
    assert x < shape[1] / 2 and y > shape[0] / 2        # east is -x, north +y in the product
    data[y - 1:y + 2, x - 1:x + 2] = 1000.0
    product = _write_product(tmp_path / _filter_name("f606w"), data)
    full, thumb = write_previews(product, max_size=None, thumbnail_size=40)
    image = _read_jpeg(full)[2]
    row, col = _bright_centre(image)
    assert abs(row - (shape[0] - 1 - y)) < 0.5 and abs(col - x) < 0.5
    assert row < shape[0] / 2 and col < shape[1] / 2    # upper left: north up, east left
    small = _read_jpeg(thumb)[2]                        # binned by 4
    row, col = _bright_centre(small)
    assert abs(row - (shape[0] - 1 - y) / 4) < 1 and abs(col - x / 4) < 1


def _bright_centre(image):
    """(row, col) of the brightest 3x3 mean (the zscale stretch saturates noise peaks too)."""
    from scipy.ndimage import uniform_filter

    smooth = uniform_filter(image.astype(float), 3, mode="constant")
    return np.unravel_index(np.argmax(smooth), smooth.shape)


def _with_source(shape, spot, seed):
    """Noise with a 5x5 source of 400 centred on ``spot`` = (row, col)."""
    data = _noisy(shape, seed=seed)
    data[spot[0] - 2:spot[0] + 3, spot[1] - 2:spot[1] + 3] = 400.0
    return data


def test_colour_preview_orders_filters_by_photplam(tmp_path):
    shape = (90, 120)
    a, b = (30, 30), (60, 90)          # (row, col) in the product
    blue = _with_source(shape, a, seed=7)     # source A only in the blue filter
    red = _with_source(shape, b, seed=8)      # source B only in the red filter
    red_path = _write_product(tmp_path / _filter_name("f814w"), red, photplam=8045.0)
    blue_path = _write_product(tmp_path / _filter_name("f438w"), blue, photplam=4326.0,
                               photplam_in_primary=True)
    written = write_color_preview(tmp_path / TOTAL, [red_path, blue_path], max_size=None,
                                  thumbnail_size=32, quality=95)
    assert [p.name for p in written] == list(color_preview_filenames(TOTAL, ["f438w", "f814w"]))
    mode, size, rgb = _read_jpeg(written[0])
    assert (mode, size) == ("RGB", (120, 90))
    mode, size, _ = _read_jpeg(written[1])
    assert (mode, size) == ("RGB", (30, 23))                # binned by 4
    # the file is color_preview_image of the blue-to-red arrays (up to JPEG compression) ...
    expected = color_preview_image([blue, red])
    assert np.abs(rgb.astype(int) - expected).mean() < 4
    # ... whose blue channel is the blue filter, red the red one, green their mean
    blue_grey, red_grey = stretch_to_uint8(blue)[::-1], stretch_to_uint8(red)[::-1]
    np.testing.assert_array_equal(expected[..., 2], blue_grey)
    np.testing.assert_array_equal(expected[..., 0], red_grey)
    assert np.abs(expected[..., 1] - (blue_grey.astype(float) + red_grey) / 2).max() <= 1
    source_a = expected[shape[0] - 1 - a[0], a[1]]
    source_b = expected[shape[0] - 1 - b[0], b[1]]
    assert source_a[2] == 255 and source_b[0] == 255
    # and the file keeps the colour of the 5x5 sources
    in_file_a = rgb[shape[0] - 1 - a[0], a[1]].astype(int)
    in_file_b = rgb[shape[0] - 1 - b[0], b[1]].astype(int)
    assert in_file_a[2] > 240 and abs(in_file_a[0] - int(source_a[0])) < 20
    assert in_file_b[0] > 240 and abs(in_file_b[2] - int(source_b[2])) < 20


def test_three_filters_give_blue_green_red(tmp_path):
    shape = (60, 60)
    spots = {"f438w": (15, 15), "f606w": (30, 30), "f814w": (45, 45)}
    arrays = [_with_source(shape, spot, seed=i) for i, spot in enumerate(spots.values())]
    rgb = color_preview_image(arrays)
    for channel, array, spot in zip((2, 1, 0), arrays, spots.values()):
        np.testing.assert_array_equal(rgb[..., channel], stretch_to_uint8(array)[::-1])
        assert rgb[shape[0] - 1 - spot[0], spot[1], channel] == 255
    paths = [_write_product(tmp_path / _filter_name(f), arr, photplam=plam)
             for (f, arr), plam in zip(zip(spots, arrays), (4326.0, 5887.0, 8045.0))]
    written = write_color_preview(tmp_path / TOTAL, paths[::-1], thumbnail_size=None)
    assert [p.name for p in written] == [
        "hst_12345_06_wfc3_uvis_total_ib4606_f438w-f606w-f814w_drc.jpg"]


def test_colour_preview_rejects_bad_inputs(tmp_path):
    good = _write_product(tmp_path / _filter_name("f438w"), _noisy((20, 20)), photplam=4326.0)
    nophot = _write_product(tmp_path / _filter_name("f606w"), _noisy((20, 20)))
    other_shape = _write_product(tmp_path / _filter_name("f814w"), _noisy((20, 24)),
                                 photplam=8045.0)
    with pytest.raises(InvalidInputError, match="at least two"):
        write_color_preview(tmp_path / TOTAL, [good])
    with pytest.raises(InvalidInputError, match="PHOTPLAM"):
        write_color_preview(tmp_path / TOTAL, [good, nophot])
    with pytest.raises(InvalidInputError, match="different shapes"):
        write_color_preview(tmp_path / TOTAL, [good, other_shape])
    with pytest.raises(InvalidInputError, match="twice"):
        write_color_preview(tmp_path / TOTAL, [good, good])
    with pytest.raises(InvalidInputError, match="not found"):
        write_color_preview(tmp_path / TOTAL, [good, tmp_path / _filter_name("f275w")])
    with pytest.raises(InvalidInputError, match="SCI arrays for"):
        write_color_preview(tmp_path / TOTAL, [good, other_shape], scis=[_noisy((20, 20))])
    assert not list(tmp_path.glob("*.jpg"))


def test_save_jpeg_checks_the_image_and_reports_write_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="uint8"):
        save_jpeg(np.zeros((4, 4), np.float32), tmp_path / "x.jpg")
    with pytest.raises(InvalidInputError, match="uint8"):
        save_jpeg(np.zeros((4, 4, 4), np.uint8), tmp_path / "x.jpg")
    with pytest.raises(InvalidParameterError, match="quality"):
        save_jpeg(np.zeros((4, 4), np.uint8), tmp_path / "x.jpg", quality=0)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputWriteError, match="cannot write"):
        save_jpeg(np.zeros((4, 4), np.uint8), blocker / "x.jpg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]
