"""Fixtures of the role tests: the Docker engine, the sandbox server image, throwaway keys and
environments. Tests that need Docker skip, saying why, when no daemon answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from stagectl.scaffold import init_environment
from tests.conftest import missing_tool

from .sandbox import make_key


@dataclass
class Timings:
    """Seconds per phase, printed at the end of the session (the report's timings)."""

    phases: dict[str, float] = field(default_factory=dict)

    def add(self, phase: str, seconds: float) -> None:
        self.phases[phase] = round(seconds, 1)


_TIMINGS = Timings()


@pytest.fixture(scope="session")
def timings() -> Timings:
    return _TIMINGS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _TIMINGS.phases:
        terminalreporter.section("role test timings")
        for phase, seconds in _TIMINGS.phases.items():
            terminalreporter.write_line(f"{phase:<66} {seconds:>7.1f} s")


@pytest.fixture(scope="session")
def docker_engine() -> None:
    from stagectl.sandbox.images.builder import docker_available

    if not docker_available():
        missing_tool("no Docker daemon answers `docker info`: start one with "
                     "`scripts/testbed-setup.sh docker` (as root)")


@pytest.fixture(scope="session")
def sandbox_images(docker_engine: None, timings: Timings) -> dict[str, str]:
    """The sandbox server image (Debian 13 + systemd + sshd + sudo + python3) and the Debian base
    it is built from, built by the project's image builder (cached by content key)."""
    import time

    from stagectl.sandbox.images.builder import BuildError, ImageBuilder

    builder = ImageBuilder(out=lambda line: None)
    start = time.monotonic()
    try:
        builder.build(["sandbox-server"])
    except BuildError as exc:
        missing_tool(f"cannot build the sandbox server image: {exc}")
    timings.add("sandbox image (build or cache hit)", time.monotonic() - start)
    return {"server": builder.ref("sandbox-server"), "base": builder.ref("base:trixie")}


@dataclass(frozen=True)
class Workspace:
    root: Path
    env_root: Path
    vault_password_file: Path
    root_key: Path
    ansible_key: Path


def new_workspace(root: Path) -> Workspace:
    """A fresh `stagectl init` environment and two key pairs: root's and the ansible user's."""
    keys = root / "keys"
    keys.mkdir(parents=True)
    env_root = root / "env"
    password_file = keys / "vault-pass"
    init_environment(env_root, password_file)
    return Workspace(
        root=root,
        env_root=env_root,
        vault_password_file=password_file,
        root_key=make_key(keys / "root", "root@roletest"),
        ansible_key=make_key(keys / "ansible_staging", "ansible@roletest"),
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return new_workspace(tmp_path)
