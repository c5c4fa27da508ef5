"""In CI (CI=true), a skipped test fails the session: a missing tool or a version check must not hide a test.

tests/conftest.py takes these hooks; ``-p _ci_skips`` (with tests/ on the path) loads them as a plugin.
"""

from __future__ import annotations

import os

import pytest

_skipped: list[str] = []
"""The tests skipped in this session (CI fails the session when there is any: nothing is skipped in CI)."""


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Note each skipped test (an expected failure, ``xfail``, is not a skip)."""
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI (CI=true) a skipped test fails the session: a missing tool or a version check must not hide a test."""
    if os.environ.get("CI") and _skipped and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which tests were skipped, and that this fails CI."""
    if os.environ.get("CI") and _skipped:
        terminalreporter.write_line(
            f"CI=true: {len(_skipped)} test(s) skipped, which fails the run: " + ", ".join(_skipped), red=True
        )
