"""Strict skips: with ``SYNCOS_STRICT_SKIPS=1`` (CI sets it) the session fails on any skip whose
reason is not on ``ALLOWED`` below, so a missing browser or a failed ``import diffusers`` cannot
turn a red run green by skipping the tests that would have caught it."""

from __future__ import annotations

import os

import pytest

# reason prefix -> why a skip with that reason is acceptable even in CI
ALLOWED: dict[str, str] = {
    "oracle:": "the Open-Sora Plan oracle (../shared/reference/open-sora-plan) is not beside this checkout",
}


def strict() -> bool:
    return os.environ.get("SYNCOS_STRICT_SKIPS") == "1"


def skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    """The text a skip was given (pytest stores (path, line, "Skipped: reason") for skips)."""
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


def allowed(reason: str) -> bool:
    return any(reason.startswith(prefix) for prefix in ALLOWED)


class StrictSkips:
    """Collects the skips not on the allow-list; one per session (state is not module-global, so a
    nested pytester session does not leak into the outer one)."""

    def __init__(self) -> None:
        self.skipped: list[tuple[str, str]] = []

    def _record(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            reason = skip_reason(report)
            if not allowed(reason):
                self.skipped.append((report.nodeid, reason))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record(report)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.skipped and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.skipped:
            return
        terminalreporter.section("skips not on the allow-list (tests/skips.py ALLOWED)", red=True)
        for nodeid, reason in self.skipped:
            terminalreporter.line(f"{nodeid or '<collection>'}: {reason}", red=True)


def pytest_configure(config: pytest.Config) -> None:
    if strict():
        config.pluginmanager.register(StrictSkips(), "syncos-strict-skips")
