"""The honest-skips hook of tests/conftest.py, run on small test files with pytest's ``pytester``.

With ``CI`` set, a skip for any reason outside :data:`ALLOWED_SKIP_REASONS` (the missing CUDA
device) fails the run and is listed in the summary; without ``CI`` skips stay skips.
"""

from __future__ import annotations

import pytest

from .conftest import ALLOWED_SKIP_REASONS, NO_CUDA_REASON, HonestSkips, ci_is_set

MIXED = f"""
import pytest

def test_passes():
    pass

@pytest.mark.skip(reason={NO_CUDA_REASON!r})
def test_needs_a_gpu():
    pass

def test_missing_package():
    pytest.importorskip("hapgpu_no_such_module_anywhere")

@pytest.mark.xfail(reason="a known limitation", strict=True)
def test_expected_failure():
    assert False
"""

ONLY_ALLOWED = f"""
import pytest

def test_passes():
    pass

@pytest.mark.skip(reason={NO_CUDA_REASON!r})
def test_needs_a_gpu():
    pass

@pytest.mark.xfail(reason="a known limitation", strict=True)
def test_expected_failure():
    assert False
"""

MODULE_SKIPPED = """
import pytest

pytest.skip("the data folder beside the repository is missing", allow_module_level=True)

def test_never_collected():
    pass
"""


def _run(pytester, monkeypatch, source: str, ci: str | None):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    pytester.makepyfile(test_sample=source)
    return pytester.runpytest("-p", "no:cacheprovider", plugins=[HonestSkips.from_environment()])


def test_without_ci_skips_are_only_reported(pytester, monkeypatch):
    result = _run(pytester, monkeypatch, MIXED, ci=None)
    result.assert_outcomes(passed=1, skipped=2, xfailed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.no_fnmatch_line("*SKIP NOT ALLOWED*")


def test_with_ci_a_disallowed_skip_fails_the_run(pytester, monkeypatch):
    result = _run(pytester, monkeypatch, MIXED, ci="true")
    result.assert_outcomes(passed=1, skipped=2, xfailed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*skips not allowed when CI is set*",
        "SKIP NOT ALLOWED test_sample.py::test_missing_package: could not import "
        "'hapgpu_no_such_module_anywhere'*",
        "1 test(s) skipped for a reason other than:*",
    ])
    # the GPU skip is allowed and the expected failure is not a skip
    result.stdout.no_fnmatch_line("SKIP NOT ALLOWED*test_needs_a_gpu*")
    result.stdout.no_fnmatch_line("SKIP NOT ALLOWED*test_expected_failure*")


def test_with_ci_allowed_skips_and_xfail_pass(pytester, monkeypatch):
    result = _run(pytester, monkeypatch, ONLY_ALLOWED, ci="1")
    result.assert_outcomes(passed=1, skipped=1, xfailed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.no_fnmatch_line("*SKIP NOT ALLOWED*")


def test_with_ci_a_module_skipped_at_collection_fails_the_run(pytester, monkeypatch):
    result = _run(pytester, monkeypatch, MODULE_SKIPPED, ci="true")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["SKIP NOT ALLOWED test_sample.py: the data folder beside the repository is missing"])


def test_a_failing_run_keeps_its_exit_status(pytester, monkeypatch):
    source = MIXED + "\ndef test_fails():\n    assert 1 == 2\n"
    result = _run(pytester, monkeypatch, source, ci="true")
    result.assert_outcomes(passed=1, failed=1, skipped=2, xfailed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["SKIP NOT ALLOWED test_sample.py::test_missing_package:*"])


@pytest.mark.parametrize(("value", "expected"), [
    (None, False), ("", False), ("0", False), ("false", False), ("No", False),
    ("true", True), ("1", True), ("yes", True), ("github-actions", True),
])
def test_ci_variable(value, expected):
    environ = {} if value is None else {"CI": value}
    assert ci_is_set(environ) is expected
    assert HonestSkips.from_environment(environ).enforce is expected


def test_the_allow_list_holds_only_device_reasons():
    assert NO_CUDA_REASON in ALLOWED_SKIP_REASONS
    assert all("CUDA" in reason for reason in ALLOWED_SKIP_REASONS)
