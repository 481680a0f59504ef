"""The shortcuts of a layer product's header work give the bytes of the plain astropy ways.

- HDRTAB from one record array (:func:`hapgpu.astrodrizzle._hdrtab.table_hdu`) and its
  rebuild with the MVM columns (``_rebuild_hdrtab``) equal ``BinTableHDU.from_columns`` of
  ``fits.Column`` objects;
- ``simplify_polygon`` (determinants written into one buffer) equals the step-by-step
  ``np.linalg.det`` of each triangle on pixel rings, whose many equal areas make the order of
  removal depend on the last bit of each determinant;
- the renamed input's ``HAPLEVEL`` set in place equals astropy's update mode;
- the DQ/MDRIZSKY update of an input closed without whole-file verification equals the
  default close.
"""

from __future__ import annotations

import heapq
import io
import shutil

import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage

from hapgpu._fitsupdate import set_primary_card
from hapgpu.astrodrizzle._hdrtab import table_fields, table_hdu
from hapgpu.errors import InvalidInputError
from hapgpu.mvm._products import make_renamed_input
from hapgpu.skycells._edges import erode_cross, walk_border
from hapgpu.svm import _headers
from hapgpu.svm._headers import simplify_polygon


def _bytes(*hdus) -> bytes:
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), *hdus]).writeto(buffer)
    return buffer.getvalue()


def _sample_fields(n: int = 5):
    rng = np.random.default_rng(3)
    return [
        ("ROOTNAME", np.array([f"iaaa0{i}a0q" for i in range(n)]).astype("S9")),
        ("EXTVER", np.arange(1, n + 1, dtype=np.int64)),
        ("MDRIZSKY", np.r_[rng.normal(size=n - 1), np.nan]),
        ("CRMASK", np.arange(n) % 2 == 0),
        ("BLANK", np.array([""] * n).astype("S1")),
        ("PADDED", np.array(["a  ", "bb ", "c", "dddd", ""][:n]).astype("S4")),
        ("CPLX", (rng.normal(size=n) + 1j * rng.normal(size=n)).astype(np.complex128)),
    ]


def _from_columns(fields):
    formats = {"S": lambda a: f"{a.dtype.itemsize}A", "i": lambda a: "K", "f": lambda a: "D",
               "b": lambda a: "L", "c": lambda a: "M"}
    columns = [fits.Column(name=name, format=formats[a.dtype.kind](a), array=a) for name, a in fields]
    return fits.BinTableHDU.from_columns(columns)


def test_table_from_one_record_array_equals_from_columns():
    fields = _sample_fields()
    assert _bytes(table_hdu(fields)) == _bytes(_from_columns(fields))
    # the columns read back from the HDU, and from a written file, make the same table again
    hdu = table_hdu(fields)
    assert _bytes(table_hdu(table_fields(hdu))) == _bytes(hdu)
    with fits.open(io.BytesIO(_bytes(hdu))) as hdul:
        assert _bytes(table_hdu(table_fields(hdul[1]))) == _bytes(hdu)


def test_table_fields_leave_columns_with_more_than_a_format_to_astropy():
    hdu = fits.BinTableHDU.from_columns([fits.Column(name="EXPTIME", format="D", unit="s",
                                                     array=np.array([1.0, 2.0]))])
    assert table_fields(hdu) is None
    with pytest.raises(InvalidInputError, match="no FITS table format"):
        table_hdu([("T", np.array(["2020-01-01"], dtype="datetime64[D]"))])
    with pytest.raises(InvalidInputError, match="expected"):
        table_hdu([("A", np.zeros(2)), ("B", np.zeros(3))])


def _headers_with_hdrtab(fields):
    primary = fits.PrimaryHDU()
    primary.header["FILENAME"] = "hst_skycell-p0121x12y16_wfc3_uvis_f555w_all_drc.fits"
    primary.header["D001DATA"] = "hst_skycell-p0121x12y16_wfc3_uvis_f555w_all-iaaa00a0_flc.fits[sci,1]"
    primary.header["D002DATA"] = "hst_skycell-p0121x12y16_wfc3_uvis_f555w_all-iaaa01a0_flc.fits[sci,1]"
    table = table_hdu(fields)
    table.header["EXTNAME"] = "HDRTAB"
    return fits.HDUList([primary, table])


def test_hdrtab_rebuild_equals_the_column_objects_way(monkeypatch):
    fields = _sample_fields(2)
    inputs = ["hst_skycell-p0121x12y16_wfc3_uvis_f555w_all-iaaa00a0_flc.fits",
              "hst_skycell-p0121x12y16_wfc3_uvis_f555w_all-iaaa01a0_flc.fits"]
    names = {f: f.rsplit("_", 1)[0] for f in inputs}
    svm = {f: f"hst_17001_0{i}_wfc3_uvis_f555w_iaaa0{i}a0" for i, f in enumerate(inputs)}
    dates = {f: "2026-11-30" for f in inputs}
    kwargs = {"hap_level": 4, "input_files": inputs, "hap_exposure_names": names, "svm_root_names": svm,
              "svm_gendates": dates, "path": "layer_drc.fits"}
    fast = _headers_with_hdrtab(fields)
    _headers._rebuild_hdrtab(fast, **kwargs)
    monkeypatch.setattr("hapgpu.astrodrizzle._hdrtab.table_fields", lambda hdu: None)
    slow = _headers_with_hdrtab(fields)
    _headers._rebuild_hdrtab(slow, **kwargs)
    assert fast["HDRTAB"].columns.names[:2] == ["SVMROOTNAME", "GENDATE"]
    assert fast["HDRTAB"].columns.names[-1] == "HAPEXPNAME"
    assert _bytes(fast["HDRTAB"]) == _bytes(slow["HDRTAB"])


# --------------------------------------------------------------------------- polygons
def _stepwise_simplify(ring, min_dist=10.0):
    """Visvalingam-Whyatt + Douglas-Peucker as simplify_polygon documents it, each triangle's
    doubled area from its own ``np.linalg.det`` call."""
    verts = np.asarray(ring, dtype=float)
    points = verts[:-1]
    n = len(points)

    def det(a, b, c):
        return abs(float(np.linalg.det(np.array([[*points[a], 1.0], [*points[b], 1.0], [*points[c], 1.0]]))))

    prev = [(i - 1) % n for i in range(n)]
    nxt = [(i + 1) % n for i in range(n)]
    aside = [[] for _ in range(n)]
    area = [det(prev[i], i, nxt[i]) for i in range(n)]
    heap = [(area[i], i) for i in range(n)]
    heapq.heapify(heap)
    alive, head, count = [True] * n, 0, n
    while count > 3:
        value, i = heapq.heappop(heap)
        if not alive[i] or value != area[i]:
            continue
        p, q = prev[i], nxt[i]
        nxt[p], prev[q] = q, p
        aside[p] += [i, *aside[i]]
        alive[i] = False
        count -= 1
        head = q if head == i else head
        for k in (p, q):
            area[k] = det(prev[k], k, nxt[k])
            heapq.heappush(heap, (area[k], k))
    nodes = [(k, aside[k]) for k in (head, nxt[head], nxt[nxt[head]])]
    k = 0
    while k < len(nodes):
        vertex, rest = nodes[k]
        while rest:
            following = nodes[(k + 1) % len(nodes)][0]
            dists = _headers._segment_distances(points[rest], points[vertex], points[following])
            if dists.max() < min_dist:
                break
            far = int(np.argmax(dists))
            nodes.insert(k + 1, (rest[far], rest[far + 1:]))
            rest = rest[:far]
        nodes[k] = (vertex, rest)
        k += 1
    out = [points[v] for v, _ in nodes]
    return np.array(out + [out[0]], dtype=float)


def _pixel_ring(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(60, 160))
    smooth = ndimage.gaussian_filter(rng.random((n, n)), rng.uniform(3, 12))
    labels, _ = ndimage.label(smooth > np.median(smooth))
    region = labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1
    padded = np.zeros((n + 20, n + 20), bool)
    padded[10:-10, 10:-10] = region
    offset = np.array([rng.integers(0, 20000), rng.integers(0, 20000)], np.int32)
    return walk_border(padded & ~erode_cross(padded, 1)) + offset


@pytest.mark.parametrize("seed", range(8))
def test_simplify_equals_stepwise_determinants_on_pixel_rings(seed):
    ring = _pixel_ring(seed)
    for tolerance in (2.0, 10.0):
        np.testing.assert_array_equal(simplify_polygon(ring, tolerance), _stepwise_simplify(ring, tolerance))


# --------------------------------------------------------------------------- input files
def _exposure(path, extra_cards=0, checksum=False):
    primary = fits.PrimaryHDU()
    for i in range(extra_cards):
        primary.header[f"KEY{i:05d}"] = (i, "filler")
    sci = fits.ImageHDU(np.arange(12, dtype=np.float32).reshape(3, 4), name="SCI")
    dq = fits.ImageHDU(np.zeros((3, 4), np.int16), name="DQ")
    fits.HDUList([primary, sci, dq]).writeto(path, checksum=checksum)
    return path


@pytest.mark.parametrize("extra_cards", [0, 30, 31, 32])  # 36 cards a block: header may grow
def test_haplevel_in_place_equals_update_mode(tmp_path, extra_cards):
    source = _exposure(tmp_path / "x_flc.fits", extra_cards=extra_cards)
    reference = tmp_path / "reference_flc.fits"
    shutil.copyfile(source, reference)
    with fits.open(reference, mode="update") as hdul:
        hdul[0].header["HAPLEVEL"] = (1, "Classification level of this product")
    copy = make_renamed_input(source, tmp_path, "renamed_flc.fits")
    assert copy.read_bytes() == reference.read_bytes()


def test_primary_card_left_to_astropy_with_a_checksum(tmp_path):
    path = _exposure(tmp_path / "x_flc.fits", checksum=True)
    before = path.read_bytes()
    assert set_primary_card(path, "HAPLEVEL", 1, "level") is False
    assert path.read_bytes() == before
    # make_renamed_input then goes through astropy: the same file as its update mode
    reference = tmp_path / "reference_flc.fits"
    shutil.copyfile(path, reference)
    with fits.open(reference, mode="update") as hdul:
        hdul[0].header["HAPLEVEL"] = (1, "Classification level of this product")
    assert make_renamed_input(path, tmp_path, "renamed_flc.fits").read_bytes() == reference.read_bytes()
    assert set_primary_card(_exposure(tmp_path / "y_flc.fits"), "HAPLEVEL", 1, "level") is True
    assert fits.getval(tmp_path / "y_flc.fits", "HAPLEVEL") == 1


def test_dq_update_without_verification_equals_the_default_close(tmp_path):
    from hapgpu.astrodrizzle._product import _write_dq_and_sky

    class Chip:
        extver = 1

    class Exposure:
        chips = (Chip(),)

    ours = _exposure(tmp_path / "ours_flc.fits", extra_cards=35)
    reference = tmp_path / "reference_flc.fits"
    shutil.copyfile(ours, reference)
    dq = np.full((3, 4), 4096, np.uint16)
    _write_dq_and_sky(ours, Exposure(), [dq], [12.5])
    with fits.open(reference, mode="update", memmap=False) as hdul:
        hdul["DQ", 1].data = dq.view(np.int16)
        hdul["SCI", 1].header["MDRIZSKY"] = (12.5, "Sky value computed by AstroDrizzle")
    assert ours.read_bytes() == reference.read_bytes()
