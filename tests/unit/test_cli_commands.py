"""Every CLI command, its output and exit code on the paths that need no server: a user's mistake
is one clear message and exit 2 (no traceback, nothing written), and `--help` works.

The table below must name every command `stagectl --help` lists, sub-commands included: a new
command without a case here fails test_every_command_has_a_case."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from stagectl.cli import app
from stagectl.environment import INVENTORY, VAULT
from tests.conftest import EnvFixture, missing_tool

runner = CliRunner()

# In the arguments: ENV is the example environment, KEY its vault password file, MISSING a
# directory that does not exist.
MISSING_ENV = "inventory/staging.yml: file is missing"
CASES: list[tuple[str, list[str], str]] = [
    ("init", ["init", "ENV", "--vault-password-file", "KEY"], "already holds an environment"),
    ("plan", ["plan", "--env", "MISSING", "--vault-password-file", "KEY"], MISSING_ENV),
    ("bootstrap", ["bootstrap", "--as", "root@x", "--env", "MISSING", "--vault-password-file", "KEY"],
     MISSING_ENV),
    ("bootstrap", ["bootstrap", "--as", "nobody", "--env", "ENV", "--vault-password-file", "KEY"],
     "--as 'nobody' is not USER@HOST"),
    ("bootstrap",
     ["bootstrap", "--as", "root@unknown.invalid", "--env", "ENV", "--vault-password-file", "KEY"],
     "host 'unknown.invalid' is not in inventory/staging.yml"),
    ("deploy", ["deploy", "--env", "MISSING", "--vault-password-file", "KEY"], MISSING_ENV),
    ("deploy", ["deploy", "--env", "ENV", "--project", "nope", "--vault-password-file", "KEY"],
     "project 'nope' is not in inventory/staging.yml"),
    ("doctor", ["doctor", "--env", "MISSING", "--vault-password-file", "KEY"], MISSING_ENV),
    ("status", ["status", "--env", "MISSING", "--vault-password-file", "KEY"], MISSING_ENV),
    ("dns", ["dns", "--env", "MISSING"], MISSING_ENV),
    ("secrets generate", ["secrets", "generate", "--env", "MISSING", "--vault-password-file", "KEY"],
     "inventory/staging.yml: staging.vars.projects: cannot read the project list"),
    ("alert test", ["alert", "test", "--env", "MISSING", "--vault-password-file", "KEY"], MISSING_ENV),
    ("alert test", ["alert", "test", "--env", "ENV", "--project", "nope", "--vault-password-file", "KEY"],
     "no project named 'nope'"),
    ("project add", ["project", "add", "shop", "--repo", "MISSING", "--env", "ENV", "--vault-password-file", "KEY"],
     "no such directory"),
    ("project remove", ["project", "remove", "nope", "--env", "ENV", "--vault-password-file", "KEY"],
     "project 'nope' is not in inventory/staging.yml"),
    ("backup run", ["backup", "run", "--env", "MISSING", "--vault-password-file", "KEY"], MISSING_ENV),
    ("backup run", ["backup", "run", "--env", "ENV", "--project", "nope", "--vault-password-file", "KEY"],
     "project 'nope' is not in inventory/staging.yml"),
    ("backup list", ["backup", "list", "--env", "MISSING", "--vault-password-file", "KEY"], MISSING_ENV),
    ("backup list", ["backup", "list", "--env", "ENV", "--project", "nope", "--vault-password-file", "KEY"],
     "project 'nope' is not in inventory/staging.yml"),
    ("backup verify", ["backup", "verify", "--env", "ENV", "--project", "nope", "--vault-password-file", "KEY"],
     "project 'nope' is not in inventory/staging.yml"),
    ("backup restore", ["backup", "restore", "--project", "nope", "--yes", "--env", "ENV",
                        "--vault-password-file", "KEY"], "project 'nope' is not in inventory/staging.yml"),
    ("backup restore", ["backup", "restore", "--project", "beryl3", "--at", "yesterday", "--yes", "--env", "ENV",
                        "--vault-password-file", "KEY"], "--at 'yesterday' is not a backup id"),
    ("backup restore", ["backup", "restore", "--project", "beryl3", "--from", "tape", "--yes", "--env", "ENV",
                        "--vault-password-file", "KEY"], "--from 'tape' is not a backup source"),
    # No terminal to confirm on (CliRunner's stdin is not one): refused, --yes named.
    ("backup restore", ["backup", "restore", "--project", "beryl3", "--env", "ENV", "--vault-password-file", "KEY"],
     "pass --yes"),

    ("certs status", ["certs", "status", "--env", "MISSING", "--vault-password-file", "KEY"], MISSING_ENV),
    ("certs renew", ["certs", "renew", "--env", "MISSING", "--vault-password-file", "KEY"], MISSING_ENV),
    ("certs renew",
     ["certs", "renew", "--name", "nope.example.org", "--env", "ENV", "--vault-password-file", "KEY"],
     "nope.example.org: not a public name of this server"),
    ("upgrade", ["upgrade", "--env", "MISSING", "--vault-password-file", "KEY"], MISSING_ENV),
    ("sandbox up", ["sandbox", "up", "--demo-app", "MISSING"], "no Django app at"),
    ("sandbox status", ["sandbox", "status", "--name", "bad/name"], "'bad/name' is not a valid sandbox name"),
    ("sandbox down", ["sandbox", "down", "--name", "bad/name"], "'bad/name' is not a valid sandbox name"),
    ("sandbox ssh", ["sandbox", "ssh", "--name", "bad/name"], "'bad/name' is not a valid sandbox name"),
    # A docker binary that is not there: the sandbox commands say so instead of a traceback.
    ("sandbox alerts", ["sandbox", "alerts", "--name", "any"], "'NO-DOCKER' is not installed"),
    ("sandbox status", ["sandbox", "status", "--name", "any"], "'NO-DOCKER' is not installed"),
]


def _commands(group: Any = None, path: tuple[str, ...] = ()) -> list[str]:
    group = group if group is not None else typer.main.get_command(app)
    found = []
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            found += _commands(command, (*path, name))
        else:
            found.append(" ".join((*path, name)))
    return found


def test_every_command_has_a_case() -> None:
    commands = set(_commands())
    assert {"init", "plan", "deploy", "sandbox up", "alert test", "secrets generate"} <= commands
    assert commands - {name for name, _, _ in CASES} == set()


@pytest.mark.parametrize("command", _commands())
def test_help(command: str) -> None:
    result = runner.invoke(app, [*command.split(), "--help"], prog_name="stagectl")
    assert result.exit_code == 0, result.output
    assert f"stagectl {command}" in " ".join(result.output.split())
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [(args, expected) for _, args, expected in CASES],
    ids=[f"{name}-{i}" for i, (name, _, _) in enumerate(CASES)],
)
def test_user_mistake_is_one_message_and_exit_2(
    example_env: EnvFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], expected: str
) -> None:
    monkeypatch.setenv("STAGECTL_DOCKER", "NO-DOCKER")
    monkeypatch.delenv("STAGECTL_ENV", raising=False)
    places = {
        "ENV": str(example_env.root),
        "KEY": str(example_env.vault_password_file),
        "MISSING": str(tmp_path / "missing"),
    }
    before = {p: p.read_bytes() for p in example_env.root.rglob("*") if p.is_file()}
    result = runner.invoke(app, [places.get(arg, arg) for arg in args])
    assert result.exit_code == 2, result.output
    assert "error: " in result.output and expected in result.output, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert {p: p.read_bytes() for p in example_env.root.rglob("*") if p.is_file()} == before
    assert not (tmp_path / "missing").exists()


def test_dns_lists_the_records_without_resolving(example_env: EnvFixture) -> None:
    result = runner.invoke(app, ["dns", "--env", str(example_env.root), "--no-check"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if " A " in line]
    assert len(rows) == 5, result.output
    for name in ("beryl3", "project2", "monitoring", "grafana", "prometheus"):
        assert any(f"{name}." in row and "not checked" in row for row in rows), (name, result.output)


def test_deploy_of_an_unknown_project_names_the_known_ones(example_env: EnvFixture) -> None:
    inventory = (example_env.root / INVENTORY).read_bytes()
    result = runner.invoke(
        app,
        ["deploy", "--env", str(example_env.root), "--project", "nope",
         "--vault-password-file", str(example_env.vault_password_file)],
    )
    assert result.exit_code == 2
    assert "hint: known projects: beryl3, project2" in result.output
    assert (example_env.root / INVENTORY).read_bytes() == inventory
    assert (example_env.root / VAULT).is_file()


def test_deploy_refuses_an_ansible_strategy_that_does_not_exist(
    example_env: EnvFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before anything is rendered or run, not as a render failure blamed on a template."""
    monkeypatch.setenv("ANSIBLE_STRATEGY", "mitogen_linaer")
    result = runner.invoke(
        app,
        ["deploy", "--env", str(example_env.root), "--project", "beryl3",
         "--vault-password-file", str(example_env.vault_password_file)],
    )
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    assert "error: ANSIBLE_STRATEGY=mitogen_linaer (set in your shell) names no strategy" in output, output
    assert "hint: unset it (stagectl runs mitogen_linear) or set it to one of:" in output, output
    assert "Traceback" not in result.output


def _need_docker() -> None:
    from stagectl.sandbox.images.builder import docker_available

    if not docker_available():
        missing_tool("no Docker daemon answers `docker info` (start one: scripts/testbed-setup.sh docker)")


@pytest.mark.docker
def test_sandbox_status_and_down_of_a_sandbox_that_does_not_exist() -> None:
    _need_docker()
    name = f"stagectl-clitest-{uuid.uuid4().hex[:8]}"
    status = runner.invoke(app, ["sandbox", "status", "--name", name])
    assert status.exit_code == 0, status.output
    assert f"sandbox '{name}' does not exist (start it: stagectl sandbox up)" in status.output
    down = runner.invoke(app, ["sandbox", "down", "--name", name])
    assert down.exit_code == 0, down.output
    assert f"sandbox '{name}': container was not there; no volumes" in down.output
    alerts = runner.invoke(app, ["sandbox", "alerts", "--name", name])
    assert alerts.exit_code == 2
    assert f"no sandbox named '{name}' is running" in alerts.output
