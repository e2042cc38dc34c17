"""Shared fixtures: a fresh example environment in a temporary directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
