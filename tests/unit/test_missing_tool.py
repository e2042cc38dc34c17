"""A missing validator skips on a developer's machine and fails under CI."""

from __future__ import annotations

import pytest

from tests.conftest import missing_tool


@pytest.mark.parametrize("ci", [None, "", "false", "1"])
def test_a_missing_tool_skips_outside_ci(monkeypatch: pytest.MonkeyPatch, ci: str | None) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="^promtool is not installed$"):
        missing_tool("promtool is not installed")


@pytest.mark.parametrize("ci", ["true", "True"])
def test_a_missing_tool_fails_under_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="^promtool is not installed") as failure:
        missing_tool("promtool is not installed")
    assert "CI=true" in str(failure.value)
