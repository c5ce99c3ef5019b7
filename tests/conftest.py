"""Shared fixtures. Under CI=true a skipped `conformance` test fails the run instead of hiding."""

from __future__ import annotations

import os

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI") == "true" and item.get_closest_marker("conformance"):
        report.outcome = "failed"
        report.longrepr = f"conformance test skipped under CI=true: {report.longrepr}"


pytest_plugins = ["pytester"]
