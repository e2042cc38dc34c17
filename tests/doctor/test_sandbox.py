"""`run_doctor` against a real sandbox server, through the setup steps: before bootstrap the
`ansible` user cannot log in; after `bootstrap.yml` the host checks pass and Docker is missing;
with /etc/sudoers.d/ansible removed, the sudo check fails with its documented fix.

The sandbox gets a unique name and free ports on 127.0.0.1, and is removed with its volume in a
finalizer. DNS is never resolved: the server's address is loopback, and the injected resolver
fails the test if it is called. Skipped, saying why, when no Docker daemon answers.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stagectl.deploy import bootstrap
from stagectl.doctor import DoctorReport, run_doctor
from stagectl.sandbox import server
from stagectl.sandbox.environment import bootstrap_target, write_sandbox_environment
from stagectl.sandbox.images.builder import docker_available
from stagectl.sandbox.server import SandboxInfo
from stagectl.vault import decrypt, read_password_file
from tests.conftest import missing_tool

pytestmark = [pytest.mark.sandbox, pytest.mark.docker]

REPO = Path(__file__).resolve().parents[2]
DEMO_APP = REPO / "examples" / "demo-app"
#: Upper bound of one doctor run here (the run itself takes about 10 s on an idle machine).
DOCTOR_BOUND = 240.0


@dataclass(frozen=True)
class Sandbox:
    info: SandboxInfo
    env: Path
    vault_password_file: Path


def never_resolve(*_args: Any, **_kwargs: Any) -> Any:
    raise AssertionError("doctor must not look up DNS names for a loopback sandbox")


@pytest.fixture(scope="module")
def timings(request: pytest.FixtureRequest) -> Iterator[dict[str, float]]:
    recorded: dict[str, float] = {}
    yield recorded
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if recorded and reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("\ndoctor sandbox timings:")
            for phase, seconds in recorded.items():
                reporter.write_line(f"  {phase:<52} {seconds:>7.1f} s")


@pytest.fixture(scope="module")
def sandbox(
    tmp_path_factory: pytest.TempPathFactory, timings: dict[str, float]
) -> Iterator[Sandbox]:
    if not docker_available():
        missing_tool(
            "no Docker daemon answers `docker info`: start one with "
            "`scripts/testbed-setup.sh docker` (as root)"
        )
    name = f"stagectl-doctortest-{uuid.uuid4().hex[:8]}"
    root = tmp_path_factory.mktemp("doctor-sandbox")
    (root / "archive").mkdir()
    try:
        start = time.monotonic()
        info = server.up(
            name, ssh_port=0, http_port=0, https_port=0,
            state_dir=root / "state", archive_dir=root / "archive",
        )  # fmt: skip
        timings["sandbox up"] = time.monotonic() - start
        # No image archive: nothing here deploys a stack.
        written = write_sandbox_environment(
            root / "env", info, root / "vault-pass", DEMO_APP, preload_archives=[]
        )
        yield Sandbox(info, written.root, written.vault_password_file)
    finally:
        try:
            server.down(name, remove_data=True)
        finally:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
            subprocess.run(
                ["docker", "volume", "rm", "-f", server.volume_name(name)],
                capture_output=True,
                check=False,
            )


def doctor(sandbox: Sandbox, timings: dict[str, float], phase: str) -> DoctorReport:
    start = time.monotonic()
    report = run_doctor(sandbox.env, sandbox.vault_password_file, resolver=never_resolve)
    timings[f"doctor: {phase}"] = time.monotonic() - start
    assert time.monotonic() - start < DOCTOR_BOUND
    return report


def explain(report: DoctorReport) -> str:
    return "\n".join(f"[{c.status}] {c.name}: {c.detail} | fix: {c.fix}" for c in report)


def check(report: DoctorReport, name: str) -> tuple[str, str, str]:
    found = report.get(name)
    assert found is not None, f"no check '{name}':\n{explain(report)}"
    return found.status, found.detail, found.fix


def secrets(sandbox: Sandbox) -> list[str]:
    data = decrypt(
        sandbox.env / "group_vars" / "vault.yml", read_password_file(sandbox.vault_password_file)
    )
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, str) and len(node) >= 16:
            found.append(node)

    walk(data)
    return found


def test_doctor_through_bootstrap_and_broken_sudo(
    sandbox: Sandbox, timings: dict[str, float]
) -> None:
    # 1. Fresh server: the `ansible` user does not exist, SSH refuses its key.
    report = doctor(sandbox, timings, "before bootstrap")
    status, detail, fix = check(report, "ssh")
    assert status == "failed", explain(report)
    assert "ansible@127.0.0.1: Permission denied (publickey" in detail, explain(report)
    assert f"does not accept {sandbox.info.ansible_key} for user 'ansible'" in fix
    assert "stagectl bootstrap --as root@127.0.0.1" in fix
    after_ssh = [c for c in report if c.name != "ssh" and not c.name.startswith("dns ")]
    assert after_ssh and {(c.status, c.detail) for c in after_ssh} == {("skipped", "needs SSH")}
    assert {c.status for c in report if c.name.startswith("dns ")} == {"skipped"}

    # 2. Host preparation, as `stagectl bootstrap --as root@127.0.0.1` runs it.
    target = bootstrap_target(sandbox.info)
    start = time.monotonic()
    run = bootstrap(
        sandbox.env, sandbox.vault_password_file, target.login, connect_key=target.connect_key
    )
    timings["bootstrap.yml"] = time.monotonic() - start
    assert run.ok, (run.failures, run.errors)

    report = doctor(sandbox, timings, "after bootstrap")
    for name in ("ssh", "python", "sudo", "sudo group", "ports"):
        assert check(report, name)[0] == "ok", explain(report)
    assert "Python 3." in check(report, "python")[1]
    assert check(report, "sudo group")[1] == "ansible is in 'sudo'"
    status, detail, fix = check(report, "docker")
    assert status == "failed", explain(report)
    assert "Docker is not installed" in detail
    assert "stagectl deploy" in fix
    for name in ("docker compose", "stack shared", "stack beryl3", "prometheus targets"):
        assert check(report, name)[:2] == ("skipped", "needs Docker"), explain(report)

    # 3. Break passwordless sudo the way the troubleshooting guide describes its absence.
    subprocess.run(
        ["docker", "exec", sandbox.info.name, "rm", "/etc/sudoers.d/ansible"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    report = doctor(sandbox, timings, "sudoers.d/ansible removed")
    status, detail, fix = check(report, "sudo")
    assert status == "failed", explain(report)
    assert "sudo: a password is required" in detail
    assert "echo 'ansible ALL=(ALL) NOPASSWD:ALL' | sudo tee /etc/sudoers.d/ansible" in fix
    assert "chmod 440 /etc/sudoers.d/ansible" in fix
    assert check(report, "ssh")[0] == "ok" and check(report, "sudo group")[0] == "ok"
    assert check(report, "docker")[:2] == ("skipped", "needs passwordless sudo")

    # No secret of the vault ever shows in a report.
    text = explain(report)
    assert not [s for s in secrets(sandbox) if s in text]
