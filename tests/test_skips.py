"""The strict-skip plugin (tests/skips.py) that CI runs under: unexpected skips fail the session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TESTS = """
import pytest

def test_runs():
    pass

def test_oracle_absent():
    pytest.skip("oracle: the reference folder is not here")
"""


def _run(pytester: pytest.Pytester, monkeypatch, strict: bool, extra: str = "") -> pytest.RunResult:
    monkeypatch.setenv("SYNCOS_STRICT_SKIPS", "1" if strict else "0")
    pytester.makepyfile(test_cases=TESTS + extra)
    return pytester.runpytest_inprocess("-p", "skips")


def test_an_allowed_skip_passes_under_strict_mode(pytester, monkeypatch):
    """Kills: a plugin that fails on every skip (the allow-list ignored)."""
    result = _run(pytester, monkeypatch, strict=True)
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.OK


def test_an_unlisted_skip_fails_the_session_and_is_named(pytester, monkeypatch):
    """Kills: the hook not installed / exit status left OK, e.g. a failed ``import diffusers``
    (importorskip at module level, a collection skip) or a missing browser passing CI."""
    extra = "\ndef test_browser():\n    pytest.skip('Chromium is not installed')\n"
    result = _run(pytester, monkeypatch, strict=True, extra=extra)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*test_browser: Chromium is not installed*"])
    pytester.makepyfile(test_more="import pytest\npytest.importorskip('no_such_module_syncos')\n")
    result = pytester.runpytest_inprocess("-p", "skips", "test_more.py")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*could not import 'no_such_module_syncos'*"])
    # as tests/diffusers/conftest.py does: the whole folder skipped from its conftest
    folder = pytester.mkpydir("family")
    (folder / "conftest.py").write_text("import pytest\npytest.importorskip('no_such_module_syncos')\n")
    (folder / "test_equal.py").write_text("def test_equal():\n    pass\n")
    tests = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")]))
    result = pytester.runpytest_subprocess("-p", "skips")  # collected, as tests/diffusers is
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["family*: could not import 'no_such_module_syncos'*"])


def test_without_strict_mode_skips_are_only_skips(pytester, monkeypatch):
    """Kills: strict mode always on (a developer without Chromium could not run the suite)."""
    extra = "\ndef test_browser():\n    pytest.skip('Chromium is not installed')\n"
    result = _run(pytester, monkeypatch, strict=False, extra=extra)
    result.assert_outcomes(passed=1, skipped=2)
    assert result.ret == pytest.ExitCode.OK
