"""The doctor playbook only reads, and `run_doctor` runs it end to end against a host that does not
answer (127.0.0.1, a closed port: nothing outside this machine is ever contacted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from stagectl import collection
from stagectl.derived import derive
from stagectl.doctor import run_doctor
from stagectl.environment import INVENTORY, load_environment
from stagectl.errors import StagectlError
from stagectl.expectations import expectations

from ..conftest import EnvFixture

PLAYBOOK = collection.playbook("doctor")
CLOSED_PORT = 9  # discard: nothing listens here on the test machines
# Modules that only read, or run on the controller (set_fact, debug), or whose result is judged.
READ_ONLY = {
    "ansible.builtin.raw",
    "ansible.builtin.command",
    "ansible.builtin.shell",
    "ansible.builtin.uri",
    "ansible.builtin.set_fact",
    "ansible.builtin.debug",
    "ansible.builtin.copy",
}


def tasks() -> list[dict[str, Any]]:
    (play,) = yaml.safe_load(PLAYBOOK.read_text())
    return list(play["tasks"])


def module(task: dict[str, Any]) -> str:
    return next(key for key in task if key.startswith("ansible."))


def test_play_gathers_no_facts_and_does_not_become_by_default() -> None:
    (play,) = yaml.safe_load(PLAYBOOK.read_text())
    assert play["gather_facts"] is False
    assert play["become"] is False
    assert play["hosts"] == "staging"


def test_every_task_only_reads() -> None:
    for task in tasks():
        name = task["name"]
        assert module(task) in READ_ONLY, name
        if module(task) not in ("ansible.builtin.set_fact", "ansible.builtin.debug"):
            assert task.get("changed_when") is False, f"{name}: must report no change"
        if module(task) == "ansible.builtin.copy":
            # The findings go to this machine, never to the server.
            assert task["delegate_to"] == "localhost" and task["become"] is False, name


def test_every_probe_records_failure_instead_of_ending_the_run() -> None:
    for task in tasks():
        if module(task) in (
            "ansible.builtin.set_fact",
            "ansible.builtin.debug",
            "ansible.builtin.copy",
        ):
            continue
        assert task.get("failed_when") is False or task.get("ignore_errors") is True, task["name"]
    first = tasks()[0]
    assert module(first) == "ansible.builtin.raw" and first["ignore_unreachable"] is True


def test_only_raw_runs_on_the_host_until_python_is_known() -> None:
    """No facts, no modules on the host but `uri`, and that one only once Python was found: a
    host without Python still gets every other check."""
    on_host = [
        t
        for t in tasks()
        if module(t) not in ("ansible.builtin.set_fact", "ansible.builtin.debug")
        and t.get("delegate_to") != "localhost"
    ]
    modules = [t for t in on_host if module(t) != "ansible.builtin.raw"]
    assert [module(t) for t in modules] == ["ansible.builtin.uri"]
    assert "doctor_python.rc" in str(modules[0]["when"])
    python = next(t for t in on_host if "doctor_python" == t.get("register"))
    assert "python3 --version" in python["ansible.builtin.raw"]


def test_the_vault_is_only_read_under_no_log() -> None:
    for task in tasks():
        if "vault_" in yaml.safe_dump(task):
            assert task.get("no_log") is True, task["name"]


def test_syntax_check(example_env: EnvFixture) -> None:
    env = {
        **os.environ,
        **collection.ansible_env(),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    proc = subprocess.run(
        [
            "ansible-playbook",
            "--syntax-check",
            "-i",
            str(example_env.root / INVENTORY),
            "--vault-password-file",
            str(example_env.vault_password_file),
            str(PLAYBOOK),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=example_env.root,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- run_doctor end to end, against a closed port -----------------------------------------------


def point_at_closed_port(root: Path, key: Path) -> None:
    path = root / INVENTORY
    data = yaml.safe_load(path.read_text())
    (name,) = data["staging"]["hosts"]
    data["staging"]["hosts"][name] = {
        "ansible_host": "127.0.0.1",
        "ansible_port": CLOSED_PORT,
        "ansible_user": "ansible",
        "ansible_ssh_private_key_file": str(key),
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_unreachable_host_fails_ssh_and_skips_the_rest(
    example_env: EnvFixture, tmp_path: Path
) -> None:
    point_at_closed_port(example_env.root, tmp_path / "no-such-key")
    progress: list[tuple[str, str]] = []

    def never(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("no DNS lookup may happen for a loopback server")

    start = time.monotonic()
    report = run_doctor(
        example_env.root,
        example_env.vault_password_file,
        lambda task, host, _elapsed: progress.append((task, host)),
        resolver=never,
    )
    assert time.monotonic() - start < 120
    ssh = report.get("ssh")
    assert ssh is not None and ssh.status == "failed", report
    assert "Connection refused" in ssh.detail
    assert f"nothing accepts SSH on 127.0.0.1:{CLOSED_PORT}" in ssh.fix
    after = [c for c in report if c.name not in ("ssh",) and not c.name.startswith("dns ")]
    assert after and all((c.status, c.detail) == ("skipped", "needs SSH") for c in after)
    dns = [c for c in report if c.name.startswith("dns ")]
    assert len(dns) == 5 and all(c.status == "skipped" for c in dns)
    assert not report.ok and report.seconds > 0
    assert ("Log in over SSH and read /etc/os-release", ssh.host) in progress


def test_wrong_vault_password_is_refused_before_any_connection(
    example_env: EnvFixture, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong-pass"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    with pytest.raises(StagectlError):
        run_doctor(example_env.root, wrong)


def test_expected_shared_services_are_the_compose_templates(example_env: EnvFixture) -> None:
    """doctor names the shared stack's services itself (SHARED_SERVICE_NAMES): with every service
    switched on, it expects exactly the services of the shared compose template."""
    template = (
        collection.collection_root() / "roles/shared_monitoring/templates/docker-compose.yml.j2"
    ).read_text()
    body = template.split("\nservices:\n", 1)[1]
    body = re.split(r"\n(?=[a-z])", body, maxsplit=1)[0]  # up to the next top-level key
    in_template = set(re.findall(r"(?m)^  ([a-z][a-z0-9-]*):$", body))
    model = derive(load_environment(example_env.root, allocate=False).env)
    assert all(svc.enabled for _, svc in model.shared)
    assert {s.service for s in expectations(model).stacks["shared"]} == in_template
