"""MVM layers streamed to disk: keywords from the bands equal those from the whole arrays.

:class:`hapgpu.svm._footprint.WeightStatistics` (MEANWHT/MEDWHT) and
:class:`hapgpu.svm._headers.SRegionBands` (S_REGION) see a product's rows band by band;
:func:`hapgpu.astrodrizzle._product.write_product_in_bands` writes the final headers in place
(moving the data when a header changes size). Each must give what the whole-array code gives,
bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from hapgpu.astrodrizzle._product import write_product_in_bands
from hapgpu.svm import _headers
from hapgpu.svm._footprint import WeightStatistics, weight_keywords


def _bands(n_rows, size):
    return [(r, min(n_rows, r + size)) for r in range(0, n_rows, size)]


@pytest.mark.parametrize("seed", range(4))
def test_weight_statistics_equal_the_whole_image(seed):
    rng = np.random.default_rng(seed)
    ny, nx = int(rng.integers(50, 260)), int(rng.integers(50, 260))
    wht = (rng.random((ny, nx)) * [1.0, 900.0, 0.01, 37.0][seed]).astype(np.float32)
    wht[rng.random((ny, nx)) < 0.4] = 0.0
    if seed == 3:
        wht = np.round(wht * 2) / 2  # many equal values around the median
    expected = weight_keywords(wht.astype(">f4"), None)
    stats = WeightStatistics()
    for row0, row1 in _bands(ny, int(rng.integers(1, 70))):
        stats.add(row0, row1, wht[row0:row1].astype(">f4"))
    reads = []

    def read_rows(row0, row1):
        reads.append((row0, row1))
        return wht[row0:row1]

    got = stats.keywords(read_rows)
    for key in ("MEANWHT", "MEDWHT"):
        assert np.float32(got[key][0]).tobytes() == np.float32(expected[key][0]).tobytes(), key
        assert got[key][1] == expected[key][1]
    assert reads  # the median's second pass reads back only some bands
    assert len(reads) <= len(_bands(ny, 1))


def test_weight_statistics_without_data_raise():
    from hapgpu.errors import InvalidInputError

    stats = WeightStatistics()
    stats.add(0, 2, np.zeros((2, 3), np.float32))
    with pytest.raises(InvalidInputError, match="no pixel with data"):
        stats.keywords(lambda a, b: None)


def _footprint_image(rng, ny, nx, zero_filled):
    data = np.full((ny, nx), np.nan, np.float32)
    for _ in range(int(rng.integers(1, 5))):
        y0, x0 = int(rng.integers(-20, ny)), int(rng.integers(-20, nx))
        h, w = int(rng.integers(25, ny)), int(rng.integers(25, nx))
        ys, xs = slice(max(0, y0), max(0, y0 + h)), slice(max(0, x0), max(0, x0 + w))
        data[ys, xs] = rng.random(data[ys, xs].shape) + 0.5
    data[rng.random((ny, nx)) < 0.01] = np.nan  # bad pixels: holes to fill
    data[ny // 3:ny // 3 + 25, nx // 4:nx // 4 + 30] = np.nan  # a large hole
    return np.nan_to_num(data, nan=0.0) if zero_filled else data


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("band_rows", [7, 48, 1024])
def test_sregion_bands_equal_the_whole_image(monkeypatch, seed, band_rows):
    rng = np.random.default_rng(100 + seed)
    ny, nx = int(rng.integers(60, 300)), int(rng.integers(60, 300))
    data = _footprint_image(rng, ny, nx, zero_filled=seed % 3 == 2)
    expected, expected_degenerate = _headers._traced_polygons(data)
    monkeypatch.setattr(_headers, "SREGION_BAND_ROWS", band_rows)
    bands = _headers.SRegionBands(data.shape)
    for row0, row1 in _bands(ny, int(rng.integers(1, 80))):
        bands.add(row0, row1, data[row0:row1].astype(">f4"))
    polygons, degenerate = bands.polygons()
    assert degenerate == expected_degenerate
    assert len(polygons) == len(expected) > 0
    for got, want in zip(polygons, expected):
        np.testing.assert_array_equal(got, want)


def _make_product(sci, wht, text=None):
    """A small PRIMARY/SCI/WHT/CTX/HDRTAB product, S_REGION ``text`` in SCI."""
    primary = fits.PrimaryHDU()
    primary.header["KEY"] = 1
    sci_hdu = fits.ImageHDU(sci, name="SCI")
    if text is not None:
        sci_hdu.header["S_REGION"] = text
    table = fits.BinTableHDU.from_columns([fits.Column(name="ROOTNAME", format="9A", array=["a", "b"])],
                                          name="HDRTAB")
    return fits.HDUList([primary, sci_hdu, fits.ImageHDU(wht, name="WHT"), fits.ImageHDU(name="CTX"), table])


@pytest.mark.parametrize("text_length", [0, 300, 9000])
def test_final_headers_written_in_place_or_data_moved(tmp_path, monkeypatch, text_length):
    """Provisional headers fix the layout; final headers of another size move the data."""
    from hapgpu.astrodrizzle import _product as product_module

    monkeypatch.setattr(product_module, "_MOVE_CHUNK", 5000)  # several chunks per data block
    rng = np.random.default_rng(7)
    sci = rng.random((53, 61)).astype(np.float32)
    wht = rng.random((53, 61)).astype(np.float32)
    text = "POLYGON ICRS " + "1.25 " * (text_length // 5) if text_length else None
    expected = tmp_path / "whole.fits"
    _make_product(sci, wht, text).writeto(expected)
    tiny = np.zeros((1, 1), np.float32)
    provisional = _make_product(tiny, tiny, None)
    provisional[0].header["MEANWHT"] = 0.0  # same card count as the final value
    seen = []

    def finish(read_rows):
        seen.append((read_rows("SCI", 5, 9), read_rows("WHT", 0, 53)))
        final = _make_product(tiny, tiny, text)
        final[0].header["MEANWHT"] = 12.5
        return final

    streamed = tmp_path / "bands.fits"
    bands = [(r0, r1, sci[r0:r1], wht[r0:r1], None) for r0, r1 in _bands(53, 10)]
    write_product_in_bands(provisional, streamed, (53, 61), 1, bands, finish=finish)
    np.testing.assert_array_equal(seen[0][0], sci[5:9])
    np.testing.assert_array_equal(seen[0][1], wht)
    with fits.open(expected, mode="update") as hdul:
        hdul[0].header["MEANWHT"] = 12.5
    assert streamed.read_bytes() == expected.read_bytes()


def _supports_holes(folder) -> bool:
    """Whether files in ``folder`` can be sparse and report their holes (``SEEK_DATA``)."""
    import os

    from hapgpu.astrodrizzle._product import _is_hole

    probe = folder / "sparse-probe"
    with open(probe, "wb") as handle:
        handle.truncate(1 << 22)
        handle.seek((1 << 22) - 4096)
        handle.write(b"x" * 4096)
    with open(probe, "rb") as handle:
        supported = _is_hole(handle.fileno(), 0, 1 << 20) and not _is_hole(
            handle.fileno(), (1 << 22) - 4096, 4096)
    os.unlink(probe)
    return supported


@pytest.mark.parametrize("provisional_length, final_length", [(0, 9000), (9000, 0)])
def test_data_moved_in_a_sparse_product(tmp_path, monkeypatch, provisional_length, final_length):
    """A frame whose uncovered rows were never written (holes of a sparse file): moving its
    data for headers of another size copies only the chunks holding data and leaves the same
    bytes as writing the final product whole."""
    import os

    from hapgpu.astrodrizzle import _product as product_module

    monkeypatch.setattr(product_module, "_MOVE_CHUNK", 1 << 16)
    ny, nx = 700, 512
    rng = np.random.default_rng(3)
    sci = np.zeros((ny, nx), np.float32)
    wht = np.zeros((ny, nx), np.float32)
    sci[40:90] = rng.random((50, nx))          # the covered rows; the rest stay zero
    wht[40:90] = rng.random((50, nx))
    wht[600:610, :7] = 1.0

    def text(length):
        return "POLYGON ICRS " + "1.25 " * (length // 5) if length else None

    expected = tmp_path / "whole.fits"
    _make_product(sci, wht, text(final_length)).writeto(expected)
    tiny = np.zeros((1, 1), np.float32)
    read = []
    real_pread = os.pread

    def counted_pread(fd, n, offset):
        read.append(n)
        return real_pread(fd, n, offset)

    monkeypatch.setattr(os, "pread", counted_pread)
    streamed = tmp_path / "bands.fits"
    bands = [(r0, r1, sci[r0:r1], wht[r0:r1], None) for r0, r1 in _bands(ny, 64)]
    write_product_in_bands(_make_product(tiny, tiny, text(provisional_length)), streamed, (ny, nx), 1,
                           bands, finish=lambda read_rows: _make_product(tiny, tiny, text(final_length)))
    assert streamed.read_bytes() == expected.read_bytes()
    if _supports_holes(tmp_path):  # only the chunks with data were read to be moved
        assert 0 < sum(read) < 2 * ny * nx * 4 / 2


@pytest.mark.slow
def test_streamed_layers_equal_the_whole_frame_layers(tmp_path, monkeypatch):
    """``run_mvm`` with every layer streamed writes the same files as with whole frames in memory
    (the default streams only frames over AstroDrizzle's ``STREAM_BYTES``)."""
    from hapgpu.mvm import _products
    from hapgpu.mvm._pipeline import run_mvm

    from ..astrodrizzle._fits_bytes import assert_same_fits_bytes
    from ._cell_inputs import CELL, sample_rows, write_mvm_poller

    poller = write_mvm_poller(tmp_path / f"{CELL}_input.out", sample_rows(tmp_path / "in"))
    real = _products.drizzle_layer
    calls = []

    def run(folder, stream):
        def drizzle_layer(*args, **kwargs):
            calls.append(kwargs.get("finalize_headers"))
            return real(*args, **{**kwargs, "stream": stream})

        with monkeypatch.context() as patch:
            patch.setattr(_products, "drizzle_layer", drizzle_layer)
            assert run_mvm(poller, tmp_path / folder, backend="cpu", progress=False) == 0

    run("streamed", True)
    run("whole", False)
    assert calls and all(hook.done for hook in calls)
    products = sorted(p.name for p in (tmp_path / "streamed").glob("*_dr?.fits"))
    assert products == sorted(p.name for p in (tmp_path / "whole").glob("*_dr?.fits")) != []
    for name in products:
        assert_same_fits_bytes(tmp_path / "whole" / name, tmp_path / "streamed" / name)
        with fits.open(tmp_path / "streamed" / name) as hdul:
            assert hdul["SCI"].header["S_REGION"].startswith("POLYGON ICRS")
            assert hdul[0].header["MEDWHT"] > 0


@pytest.mark.parametrize("band_rows", [64, 1024])
def test_sregion_bands_of_a_sparse_frame(monkeypatch, band_rows):
    """Small islands on a large empty frame (empty rows and columns collapsed before labelling),
    one of them with a hole and one touching the frame edge."""
    rng = np.random.default_rng(9)
    data = np.full((420, 900), np.nan, np.float32)
    for y0, x0, h, w in ((30, 40, 60, 90), (200, 500, 120, 70), (350, 820, 70, 80), (100, 300, 40, 300)):
        data[y0:y0 + h, x0:x0 + w] = rng.random((min(h, 420 - y0), min(w, 900 - x0))) + 1.0
    data[215:240, 515:530] = np.nan  # a hole
    expected, _ = _headers._traced_polygons(data)
    monkeypatch.setattr(_headers, "SREGION_BAND_ROWS", band_rows)
    bands = _headers.SRegionBands(data.shape)
    for row0, row1 in _bands(420, 100):
        bands.add(row0, row1, data[row0:row1])
    polygons, _ = bands.polygons()
    assert len(polygons) == len(expected) == 4
    for got, want in zip(polygons, expected):
        np.testing.assert_array_equal(got, want)
