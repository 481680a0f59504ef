"""The bad-guiding check runs once per exposure per run (:class:`hapgpu.mvm._guiding.GuidingCache`)."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from hapgpu.errors import InvalidInputError
from hapgpu.mvm import _guiding, read_mvm_poller, verify_guiding
from hapgpu.mvm._guiding import GuidingCache
from hapgpu.mvm._pipeline import run_mvm

from ._cell_inputs import sample_rows, write_mvm_poller
from ._poller_inputs import mvm_line, svm_copy
from ._poller_inputs import write_mvm_poller as write_poller_lines


@pytest.fixture
def counted(monkeypatch):
    """Paths given to the real :func:`verify_guiding`, in call order (it still runs)."""
    calls = []
    real = _guiding.verify_guiding

    def spy(path, **kwargs):
        calls.append(str(path))
        return real(path, **kwargs)

    monkeypatch.setattr(_guiding, "verify_guiding", spy)
    return calls


def test_cache_checks_each_file_once_with_the_same_verdicts(exposures, tmp_path, counted):
    good = svm_copy(exposures["uvis0"], tmp_path / "in")
    bad = svm_copy(exposures["ir1"], tmp_path / "in", QUALITY="GSFAIL")
    expected = {good: verify_guiding(good), bad: verify_guiding(bad)}
    assert expected == {good: False, bad: True}
    counted.clear()
    cache = GuidingCache()
    for _ in range(3):
        assert {path: cache(path) for path in (good, bad)} == expected
    assert counted == [str(good), str(bad)]
    assert len(cache) == 2 and "n_files=2" in repr(cache)
    # the same file through another spelling of its path: still one check
    assert cache(tmp_path / "in" / ".." / "in" / good.name) is False
    assert len(counted) == 2
    # a rewritten file (new modification time) is checked again
    stat = good.stat()
    os.utime(good, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert cache(good) is False
    assert counted == [str(good), str(bad), str(good)]
    with pytest.raises(InvalidInputError, match="missing_flt.fits: cannot read"):
        cache(tmp_path / "missing_flt.fits")


def test_pollers_sharing_a_cache_check_shared_exposures_once(exposures, tmp_path, counted):
    visit = {key: svm_copy(exposures[key], tmp_path / "in") for key in ("uvis0", "uvis1", "ir0")}
    first = write_poller_lines(tmp_path / "a_input.out", [mvm_line(visit["uvis0"]), mvm_line(visit["uvis1"])])
    second = write_poller_lines(tmp_path / "b_input.out", [mvm_line(visit["uvis1"]), mvm_line(visit["ir0"])])
    cache = GuidingCache()
    rows = [read_mvm_poller(path, guiding=cache).rows for path in (first, second)]
    assert [r.filename for r in rows[0]] == [visit["uvis0"].name, visit["uvis1"].name]
    assert [r.filename for r in rows[1]] == [visit["uvis1"].name, visit["ir0"].name]
    assert sorted(counted) == sorted(str(visit[k].resolve()) for k in ("uvis0", "uvis1", "ir0"))
    # without a shared cache each poller checks its own rows
    counted.clear()
    for path in (first, second):
        read_mvm_poller(path)
    assert len(counted) == 4


@pytest.mark.slow
def test_run_checks_each_exposure_once_over_all_pollers(tmp_path, counted, caplog):
    rows = sample_rows(tmp_path / "in")
    # two cells the samples do not land on: the run reads both pollers, then makes no layer
    cells = ("skycell-p0121x14y16", "skycell-p0121x15y16")
    pollers = [write_mvm_poller(tmp_path / f"{cell}_input.out", rows, cell) for cell in cells]
    with caplog.at_level(logging.INFO, logger="hapgpu"):
        assert run_mvm(pollers, tmp_path / "out", backend="cpu", progress=False) == 0
    assert sorted(counted) == sorted(str(row[1].resolve()) for row in rows)
    assert caplog.text.count("none of the exposures lands on the sky cell") >= 2


# ----------------------------------------------------------------------------- several at once
@pytest.fixture(scope="module")
def checked_files(tmp_path_factory):
    """Trailed (bad) and point-like (good) exposures, and a guide-star failure."""
    import numpy as np

    from .test_poller import _image, _positions, _write

    folder = tmp_path_factory.mktemp("guiding_batch")
    shape = (256, 256)
    files = {}
    for seed in range(3):
        trailed = _image(shape, _positions(30, shape, 40, seed + 1), angle=30.0 + 20 * seed, seed=seed)
        stars = _image(shape, _positions(30, shape, 10, seed + 10), seed=seed)
        files[f"trailed{seed}"] = _write(folder / f"trailed{seed}_flt.fits", trailed)
        files[f"stars{seed}"] = _write(folder / f"stars{seed}_flt.fits", stars)
    files["gsfail"] = _write(folder / "gsfail_flt.fits", np.full(shape, 5.0, np.float32), QUALITY="GSFAIL")
    return files


def test_check_on_threads_equals_one_by_one(checked_files, counted):
    paths = list(checked_files.values())
    alone = [verify_guiding(path) for path in paths]
    assert alone == [key.startswith(("trailed", "gsfail")) for key in checked_files]
    counted.clear()
    cache = GuidingCache(n_workers=3)
    # a repeated path is checked once; the verdicts come back in the order asked
    assert cache.check(paths + paths[:2]) == alone + alone[:2]
    assert sorted(counted) == sorted(str(p.resolve()) for p in paths)
    assert cache.check(paths[::-1]) == alone[::-1]
    assert len(counted) == len(paths) and len(cache) == len(paths)
    assert "n_workers=3" in repr(cache)
    # one thread: the same verdicts
    assert GuidingCache(n_workers=1).check(paths) == alone


def test_check_reports_the_first_bad_file_and_keeps_the_others(checked_files, tmp_path, counted):
    from astropy.io import fits

    good = checked_files["stars0"]
    nosci = tmp_path / "nosci_flt.fits"
    fits.PrimaryHDU().writeto(nosci)
    cache = GuidingCache(n_workers=2)
    with pytest.raises(InvalidInputError, match="nosci_flt.fits: no SCI,1 extension"):
        cache.check([good, nosci, checked_files["trailed0"]])
    with pytest.raises(InvalidInputError, match="missing_flt.fits: cannot read"):
        cache.check([good, tmp_path / "missing_flt.fits"])
    # the files that could be checked keep their verdicts; the failure is not stored
    counted.clear()
    assert cache.check([good, checked_files["trailed0"]]) == [False, True]
    assert counted == []
    assert len(cache) == 2


@pytest.mark.parametrize("n_workers", [0, -1, 1.5, True, "2"])
def test_n_workers_must_be_a_positive_integer(n_workers):
    from hapgpu.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="n_workers must be a positive integer"):
        GuidingCache(n_workers=n_workers)


@pytest.mark.parametrize("dtype", ["int16", "uint16", "int32", "uint32", "int64", "uint8", "float32"])
def test_rejected_dq_in_the_arrays_own_dtype(dtype):
    import numpy as np

    rng = np.random.default_rng(3)
    kind = np.dtype(dtype)
    if kind.kind == "f":
        dq = rng.integers(0, 2**15, 5000).astype(kind)
    else:
        info = np.iinfo(kind)
        dq = rng.integers(info.min, info.max, 5000, dtype=kind, endpoint=True)
        dq[:8] = [0, 256, 512, 1024, 2048, 4096, 7936, 4] if kind.itemsize > 1 else dq[:8]
    accepted = np.bitwise_or.reduce(np.array(_guiding.ACCEPTED_DQ_FLAGS))
    expected = (dq.astype(np.int64) & ~accepted) != 0  # drizzlepac's test, on 64-bit integers
    assert np.array_equal(_guiding._rejected_dq(dq), expected)


def test_canny_edges_equal_scikit_image():
    """The guiding check's Canny edges (the smoothed unit mask kept per image shape) are
    scikit-image's, for every image of a shape and for shapes met again."""
    from skimage.feature import canny

    rng = np.random.default_rng(4)
    for shape in [(70, 90), (64, 64), (70, 90), (33, 120), (70, 90)]:
        image = np.clip(rng.normal(0.0, 20.0, shape), 0, None).astype(np.float32)
        image[shape[0] // 2: shape[0] // 2 + 2, 5:-5] += 400.0  # a trail
        for data in (image, image.astype(np.float64), image[2:-2, 2:-2]):
            expected = canny(data, sigma=2.5, low_threshold=0, high_threshold=25)
            edges = _guiding._canny_edges(data)
            assert edges.dtype == expected.dtype and np.array_equal(edges, expected)
            assert edges.any()
    assert np.array_equal(_guiding._canny_edges(np.zeros((40, 40), np.float32)), np.zeros((40, 40), bool))
