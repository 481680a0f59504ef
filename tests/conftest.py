"""Shared test configuration: the HST sample files in ``tests/data``, honest skips, synthetic frames.

Every file a test reads is shipped in ``tests/data`` (see its README) or made by the test; a
missing data file is an error, never a skip. When the ``CI`` environment variable is set, a
test skipped for any reason other than the missing CUDA device fails the run
(:class:`HonestSkips`, allow-list :data:`ALLOWED_SKIP_REASONS`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from hapgpu.backend import cuda_available

pytest_plugins = ["pytester"]  # the fixture that tests the hooks below

DATA = Path(__file__).resolve().parent / "data"

#: Skip reason of the tests marked ``gpu`` on a machine without a CUDA device.
NO_CUDA_REASON = "no CUDA device with CuPy on this machine"

#: The only skip reasons a CI run accepts: both depend on whether the machine has a CUDA
#: device, nothing else. A missing package or data file is never a reason to skip.
ALLOWED_SKIP_REASONS = frozenset({
    NO_CUDA_REASON,
    # tests/resample/test_cli.py: the "no CUDA device" error can only be checked without one
    "checks the error on machines without CUDA",
})


def pytest_configure(config):
    config.pluginmanager.register(HonestSkips.from_environment(), "hapgpu-honest-skips")


def pytest_collection_modifyitems(config, items):
    if cuda_available():
        return
    skip_gpu = pytest.mark.skip(reason=NO_CUDA_REASON)
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


def ci_is_set(environ=os.environ) -> bool:
    """Whether the ``CI`` environment variable is set (empty, ``0``, ``false`` and ``no`` are unset)."""
    return environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def skip_reason(report) -> str:
    """The reason text of a skipped test or collector report (without pytest's ``Skipped:``)."""
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text.removeprefix("Skipped: ")


class HonestSkips:
    """pytest plugin: with ``enforce``, a skip whose reason is not allowed fails the run.

    Skips are gathered from test reports (setup, call, teardown) and from collection reports
    (a module skipped as a whole); an expected failure (``xfail``) is not a skip. At the end of
    the session the exit status becomes ``TESTS_FAILED`` and the terminal summary lists each
    offending test with its reason.

    Parameters
    ----------
    enforce : bool
        Fail the run on a disallowed skip (the ``CI`` environment variable is set).
    allowed : iterable of str
        Skip reasons that are accepted (exact text).
    """

    def __init__(self, enforce: bool, allowed=ALLOWED_SKIP_REASONS):
        self.enforce = enforce
        self.allowed = frozenset(allowed)
        self.offenders: list[tuple[str, str]] = []

    @classmethod
    def from_environment(cls, environ=os.environ) -> HonestSkips:
        return cls(enforce=ci_is_set(environ))

    def _record(self, report) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            reason = skip_reason(report)
            if reason not in self.allowed:
                self.offenders.append((report.nodeid, reason))

    def pytest_runtest_logreport(self, report):
        self._record(report)

    def pytest_collectreport(self, report):
        self._record(report)

    def pytest_sessionfinish(self, session, exitstatus):
        if self.enforce and self.offenders and exitstatus in (pytest.ExitCode.OK,
                                                               pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter):
        if not (self.enforce and self.offenders):
            return
        terminalreporter.section("skips not allowed when CI is set", sep="=", red=True, bold=True)
        for nodeid, reason in self.offenders:
            terminalreporter.line(f"SKIP NOT ALLOWED {nodeid}: {reason}")
        allowed = "; ".join(sorted(self.allowed))
        terminalreporter.line(f"{len(self.offenders)} test(s) skipped for a reason other than: {allowed}")


def data_file(name: str) -> Path:
    """Path of a file shipped in ``tests/data``.

    Raises
    ------
    FileNotFoundError
        The file is not there: the checkout is incomplete (an error, not a skip).
    """
    path = DATA / name
    if not path.is_file():
        raise FileNotFoundError(f"test data file {name!r} is missing from {DATA} (see tests/data/README.md)")
    return path


def shifted_wcs(wcs, dx: float, dy: float):
    """A copy of ``wcs`` with its reference pixel moved by ``(dx, dy)`` pixels."""
    import copy

    out = copy.deepcopy(wcs)
    out.wcs.crpix = out.wcs.crpix + np.array([dx, dy])
    out.wcs.set()
    return out


def load_chip_wcs(name: str, ext=("SCI", 1)):
    """stwcs HSTWCS of one chip of a real HST file in ``tests/data`` (SIP, NPOL and D2IM as present)."""
    from astropy.io import fits
    from stwcs.wcsutil import HSTWCS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(data_file(name)) as hdul:
            return HSTWCS(hdul, ext=ext)


#: (file, extension) of the real chips used by the oracle tests.
REAL_CHIPS = {
    "uvis1": ("sample_svm_flc.fits.gz", ("SCI", 1)),
    "uvis2": ("sample_svm_flc.fits.gz", ("SCI", 2)),
    "ir": ("sample_svm_flt.fits.gz", ("SCI", 1)),
    "hrc": ("j8bt06nyq_sip_flt.fits.gz", ("SCI", 1)),
}


def output_frame(in_wcs, in_shape, *, rot_deg=0.0, scale_ratio=1.0, coverage=1.0, shift=(0.0, 0.0)):
    """An undistorted TAN frame around the input footprint.

    Parameters
    ----------
    rot_deg : float
        Rotation of the output axes relative to north-up.
    scale_ratio : float
        Output pixel scale / input pixel scale (drizzlepac's pix_ratio).
    coverage : float
        Output size as a fraction of the input footprint (< 1 gives partial overlap).
    shift : tuple
        Offset of the frame centre in output pixels (partial overlap).

    Returns
    -------
    (astropy.wcs.WCS, (ny, nx), pix_ratio)
    """
    from astropy.wcs import WCS

    ny, nx = in_shape
    corners_x = np.array([0.5, nx + 0.5, nx + 0.5, 0.5])
    corners_y = np.array([0.5, 0.5, ny + 0.5, ny + 0.5])
    ra, dec = in_wcs.all_pix2world(corners_x, corners_y, 1)
    cra, cdec = in_wcs.all_pix2world([(nx + 1) / 2.0], [(ny + 1) / 2.0], 1)
    in_scale = np.sqrt(in_wcs.wcs.cd[0, 0] ** 2 + in_wcs.wcs.cd[1, 0] ** 2) if in_wcs.wcs.has_cd() \
        else abs(in_wcs.wcs.cdelt[0])
    out_scale = in_scale * scale_ratio
    th = np.deg2rad(rot_deg)
    cd = out_scale * np.array([[-np.cos(th), np.sin(th)], [np.sin(th), np.cos(th)]])
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [cra[0], cdec[0]]
    w.wcs.cd = cd
    w.wcs.crpix = [0.0, 0.0]
    px, py = w.wcs_world2pix(ra, dec, 1)
    extent = max(px.max() - px.min(), py.max() - py.min()) * coverage
    onx = int(np.ceil(extent)) + 4
    ony = int(np.ceil(extent * 0.9)) + 4
    w.wcs.crpix = [onx / 2.0 + 0.5 + shift[0], ony / 2.0 + 0.5 + shift[1]]
    w.pixel_shape = (onx, ony)
    return w, (ony, onx), scale_ratio


def synthetic_scene(shape, seed=0, n_stars=25, mask_fraction=0.02):
    """Float32 image with sky, noise and Gaussian stars, and a float32 weight map with holes."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    img = rng.normal(20.0, 2.0, size=shape)
    for _ in range(n_stars):
        x0, y0 = rng.uniform(0, nx), rng.uniform(0, ny)
        amp = 10 ** rng.uniform(1.5, 3.5)
        sig = rng.uniform(0.8, 2.0)
        img += amp * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * sig**2))
    wht = rng.uniform(0.5, 1.5, size=shape).astype(np.float32)
    wht[rng.random(shape) < mask_fraction] = 0.0
    return img.astype(np.float32), wht


@pytest.fixture(params=sorted(REAL_CHIPS))
def real_chip(request):
    name, ext = REAL_CHIPS[request.param]
    return request.param, load_chip_wcs(name, ext)
