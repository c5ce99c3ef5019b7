"""Under CI=true a skipped conformance test fails the run; elsewhere it stays a skip."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = (
    (Path(__file__).resolve().parents[1] / "conftest.py").read_text().replace('pytest_plugins = ["pytester"]', "")
)
SKIPPING = """
import pytest

@pytest.mark.conformance
def test_peer_tool():
    pytest.skip("peer tool not installed")

def test_ordinary_skip():
    pytest.skip("not relevant here")
"""


@pytest.mark.parametrize(("ci", "failed", "skipped"), [("true", 1, 1), ("", 0, 2)])
def test_conformance_skips_fail_only_under_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str, failed: int, skipped: int
) -> None:
    monkeypatch.setenv("CI", ci)
    pytester.makeconftest(CONFTEST)
    pytester.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\nmarkers =\n    conformance: peer tool checks\n"
    )
    pytester.makepyfile(SKIPPING)
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(failed=failed, skipped=skipped)
