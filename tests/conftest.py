"""Shared fixtures: a fresh example environment in a temporary directory; and `missing_tool`,
the one way a test gives up because a validator or tool is not installed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from stagectl.scaffold import init_environment


def show_figure(capsys: pytest.CaptureFixture[str], text: str) -> None:
    """Print a measured figure straight to the terminal, also when the test passes (CI logs)."""
    with capsys.disabled():
        print(f"\n[figure] {text}")


@pytest.fixture(scope="session", autouse=True)
def _validator_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Each session starts from a cold validator cache of its own: the first plan runs every
    check, and tests never read or fill the user's cache (XDG_CACHE_HOME/stagectl)."""
    directory = tmp_path_factory.mktemp("xdg-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(directory))
        yield directory


@pytest.fixture(autouse=True)
def _stdin_stays_blocking() -> Iterator[None]:
    """The session's stdin is shared with every program a test starts that is not given one of
    its own. ssh leaves it non-blocking when it dies (a refused forward), and ansible-playbook
    then refuses to start in every later test: one test's slip must not fail the rest."""
    yield
    try:
        if not os.get_blocking(0):
            os.set_blocking(0, True)
    except OSError:  # no stdin at all
        pass


@dataclass(frozen=True)
class EnvFixture:
    root: Path
    vault_password_file: Path


@pytest.fixture
def example_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EnvFixture:
    """`stagectl init` output with the example, its vault key outside the directory."""
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
