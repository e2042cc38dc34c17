"""Shared fixtures: a fresh example environment in a temporary directory; and `missing_tool`,
the one way a test gives up because a validator or tool is not installed."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from stagectl.scaffold import init_environment


@dataclass(frozen=True)
class EnvFixture:
    root: Path
    vault_password_file: Path


@pytest.fixture
def example_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EnvFixture:
    """`stagectl init` output with the seed's example, its vault key outside the directory."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    root = tmp_path / "env"
    password_file = tmp_path / "keys" / "vault-pass"
    init_environment(root, password_file)
    return EnvFixture(root=root, vault_password_file=password_file)


def missing_tool(reason: str) -> NoReturn:
    """A validator, tool or service this machine could have but does not: a skip on a developer's
    machine, a failure under CI (CI=true), where scripts/test.sh installs everything and a silent
    skip would let a check go missing. Components that cannot run on the test bed at all (no
    package, no registry) skip with pytest.skip everywhere instead."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} [CI=true: a missing tool fails]", pytrace=False)
    pytest.skip(reason)
