"""The doctor's judgement, from findings recorded on a sandbox server (tests/doctor/recorded/) and
from small hand-made ones: which check fails, with which fix, and what is skipped after it.

Recorded states (written by `stagectl.staging.doctor` against a Debian 13 sandbox):
  before_bootstrap  the `ansible` user does not exist yet: SSH refuses the key
  after_bootstrap   SSH, Python, sudo and group fine; Docker not installed
  sudo_broken       /etc/sudoers.d/ansible removed
  partial_stack     Docker installed; part of the shared stack and of beryl3 up, beryl3's redis
                    restarting, project2 not deployed, host processes on 0.0.0.0:80 and
                    127.0.0.1:8000, Prometheus answering with 8 of 17 targets down
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from stagectl import probes, sshkeys
from stagectl.derived import Derived
from stagectl.doctor import CheckResult, DoctorReport
from stagectl.doctor.checks import judge_dns, judge_host, judge_stack
from stagectl.expectations import Expectations, expectations
from stagectl.probes import parse_compose_ps, parse_docker_ps, parse_ss

RECORDED = Path(__file__).parent / "recorded"
HOST = "sandbox"


def sandbox_model() -> Derived:
    """The derived model of the sandbox environment the findings were recorded on."""
    return Derived.model_validate_json((RECORDED / "sandbox_model.json").read_text())


def recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RECORDED / f"{name}.json").read_text())
    return data


@pytest.fixture(scope="module")
def expect() -> Expectations:
    """The sandbox environment's expectations: grafana, loki, alloy and cadvisor switched off."""
    return expectations(sandbox_model())


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def statuses(results: list[CheckResult]) -> dict[str, str]:
    return {r.name: r.status for r in results}


def ran(result: dict[str, Any], rc: int, stdout: str = "", stderr: str = "") -> dict[str, Any]:
    """A registered result of a task that ran."""
    return {**result, "rc": rc, "stdout": stdout, "stderr": stderr, "skipped": False}


# --- expectations -------------------------------------------------------------------------------


def test_expectations_follow_the_model(expect: Expectations) -> None:
    assert [(p.port, p.public, p.project, p.service) for p in expect.ports] == [
        (80, True, "shared", "nginx"),
        (443, True, "shared", "nginx"),
        (9090, False, "shared", "prometheus"),
        (9093, False, "shared", "alertmanager"),
        (5432, False, "beryl3", "postgres"),
        (8000, False, "beryl3", "django"),
        (6379, False, "beryl3", "redis"),
        (5433, False, "project2", "postgres"),
        (8001, False, "project2", "django"),
        (6380, False, "project2", "redis"),
    ]
    # Switched-off services are not expected; the edge exporter has its own service name.
    assert [s.service for s in expect.stacks["shared"]] == [
        "prometheus",
        "alertmanager",
        "node-exporter",
        "blackbox-exporter",
        "nginx-edge-exporter",
        "nginx",
        "docker-api",
    ]
    assert [s.container for s in expect.stacks["beryl3"]] == [
        "beryl3-postgres",
        "beryl3-redis",
        "beryl3-django",
        "beryl3-nginx",
        "beryl3-postgres-exporter",
        "beryl3-redis-exporter",
        "beryl3-nginx-exporter",
    ]
    assert list(expect.stacks) == ["shared", "beryl3", "project2"]
    assert expect.dns_records == (
        "beryl3.sandbox.test",
        "project2.sandbox.test",
        "monitoring.sandbox.test",
        "grafana.sandbox.test",
        "prometheus.sandbox.test",
    )


# --- SSH ----------------------------------------------------------------------------------------


def test_before_bootstrap_ssh_fails_with_the_exact_error_and_the_key_fix(
    expect: Expectations,
) -> None:
    results = judge_host(HOST, recorded("before_bootstrap"), expect, key_state="ok")
    ssh = results[0]
    assert (ssh.name, ssh.status) == ("ssh", "failed")
    assert "ansible@127.0.0.1: Permission denied (publickey,password)." in ssh.detail
    assert "Task failed" not in ssh.detail
    # The key is fine on this machine: the server does not accept it for this user.
    assert "does not accept /srv/sandbox-state/ansible_ed25519 for user 'ansible'" in ssh.fix
    assert "authorized_keys" in ssh.fix and "stagectl bootstrap --as root@127.0.0.1" in ssh.fix
    assert (
        'ssh -i /srv/sandbox-state/ansible_ed25519 -p 2222 ansible@127.0.0.1 "echo test"' in ssh.fix
    )
    # Everything after SSH is skipped, saying why.
    assert all(r.status == "skipped" and r.detail == "needs SSH" for r in results[1:])
    assert [r.name for r in results[1:]] == [
        "python",
        "sudo",
        "sudo group",
        "ports",
        "docker",
        "docker compose",
        "stack shared",
        "stack beryl3",
        "stack project2",
        "prometheus targets",
    ]


@pytest.mark.parametrize(
    ("key_state", "expected"),
    [
        ("missing", "does not exist on this machine"),
        ("passphrase", 'ssh-keygen -p -f /srv/sandbox-state/ansible_ed25519 -N ""'),
        ("unset", "set ansible_ssh_private_key_file"),
        ("unreadable", "cannot be read as an SSH private key"),
    ],
)
def test_refused_key_fix_names_the_keys_problem(
    expect: Expectations, key_state: str, expected: str
) -> None:
    ssh = judge_host(HOST, recorded("before_bootstrap"), expect, key_state=key_state)[0]  # type: ignore[arg-type]
    assert expected in ssh.fix


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            "ssh: connect to host 127.0.0.1 port 2222: Connection refused",
            "nothing accepts SSH on 127.0.0.1:2222",
        ),
        ("ssh: connect to host 127.0.0.1 port 2222: Connection timed out", "the server is down"),
        ("Connection timed out during banner exchange", "the server is down"),
        ("ssh: connect to host 127.0.0.1 port 2222: No route to host", "the server is down"),
        (
            (
                "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@ ... "
                "Host key verification failed."
            ),
            "ssh-keygen -R '[127.0.0.1]:2222'",
        ),
        (
            "ssh: Could not resolve hostname staging.invalid: Name or service not known",
            "does not resolve",
        ),
        (
            "Received disconnect from 127.0.0.1 port 2222:2: Too many authentication failures",
            "IdentitiesOnly=yes",
        ),
    ],
)
def test_ssh_errors_are_told_apart(expect: Expectations, error: str, expected: str) -> None:
    findings = recorded("before_bootstrap")
    findings["ssh"]["msg"] = f"Task failed: Failed to connect to the host via ssh: {error}"
    ssh = judge_host(HOST, findings, expect)[0]
    assert ssh.status == "failed"
    assert error in ssh.detail
    assert expected in ssh.fix


def test_refused_key_decides_whether_the_key_is_inspected() -> None:
    assert probes.refused_key(recorded("before_bootstrap"))
    assert not probes.refused_key(recorded("after_bootstrap"))
    findings = recorded("before_bootstrap")
    findings["ssh"]["msg"] = "ssh: connect to host 127.0.0.1 port 22: Connection refused"
    assert not probes.refused_key(findings)


def test_inspect_key_tells_missing_passphrase_and_good_keys(tmp_path: Path) -> None:
    good = tmp_path / "good"
    locked = tmp_path / "locked"
    for path, passphrase in ((good, ""), (locked, "s3cret-passphrase")):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-f", str(path)],
            check=True,
            capture_output=True,
        )
    assert sshkeys.inspect_key(str(good)) == "ok"
    assert sshkeys.inspect_key(str(locked)) == "passphrase"
    assert sshkeys.inspect_key(str(tmp_path / "absent")) == "missing"
    assert sshkeys.inspect_key("") == "unset"
    (tmp_path / "garbage").write_text("not a key\n")
    assert sshkeys.inspect_key(str(tmp_path / "garbage")) == "unreadable"
    # Older RSA keys in PEM, with and without a passphrase.
    for name, passphrase in (("rsa", ""), ("rsa-locked", "s3cret-passphrase")):
        subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", passphrase,
                        "-f", str(tmp_path / name)], check=True, capture_output=True)
    assert sshkeys.inspect_key(str(tmp_path / "rsa")) == "ok"
    assert sshkeys.inspect_key(str(tmp_path / "rsa-locked")) == "passphrase"


def test_a_new_key_pair_is_one_ssh_keygen_reads_and_agrees_with(tmp_path: Path) -> None:
    pair = sshkeys.new_key_pair("ansible@sandbox")
    key = tmp_path / "id_ed25519"
    sshkeys.write_private_key(key, pair.private)
    assert key.stat().st_mode & 0o777 == 0o600
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], check=True, capture_output=True, text=True)
    assert pair.public == derived.stdout.strip() + " ansible@sandbox"
    assert sshkeys.public_line(key, "ansible@sandbox") == pair.public


# --- after bootstrap ----------------------------------------------------------------------------


def test_after_bootstrap_host_checks_pass_and_docker_fails_with_its_fix(
    expect: Expectations,
) -> None:
    results = by_name(judge_host(HOST, recorded("after_bootstrap"), expect))
    for name in ("ssh", "python", "sudo", "sudo group", "ports"):
        assert results[name].status == "ok", results[name]
    assert "Debian GNU/Linux 13 (trixie)" in results["ssh"].detail
    assert results["python"].detail == "/usr/bin/python3: Python 3.13.5"
    assert results["sudo group"].detail == "ansible is in 'sudo'"
    docker = results["docker"]
    assert docker.status == "failed"
    assert "Docker is not installed" in docker.detail
    assert "stagectl deploy" in docker.fix
    for name in (
        "docker compose",
        "stack shared",
        "stack beryl3",
        "stack project2",
        "prometheus targets",
    ):
        assert (results[name].status, results[name].detail) == ("skipped", "needs Docker")


def test_broken_sudo_fails_with_the_documented_fix(expect: Expectations) -> None:
    results = by_name(judge_host(HOST, recorded("sudo_broken"), expect))
    sudo = results["sudo"]
    assert sudo.status == "failed"
    assert "sudo: a password is required" in sudo.detail
    assert "echo 'ansible ALL=(ALL) NOPASSWD:ALL' | sudo tee /etc/sudoers.d/ansible" in sudo.fix
    assert "chmod 440 /etc/sudoers.d/ansible" in sudo.fix
    assert '"sudo whoami"' in sudo.fix
    # The rest needs root.
    assert results["ports"].detail == "needs passwordless sudo"
    assert results["docker"].status == "skipped"
    # Group membership is read without sudo, and still is.
    assert results["sudo group"].status == "ok"


def test_become_that_does_not_give_root_fails(expect: Expectations) -> None:
    findings = recorded("after_bootstrap")
    findings["whoami"]["stdout"] = "nobody\r\n"
    sudo = by_name(judge_host(HOST, findings, expect))["sudo"]
    assert sudo.status == "failed" and "'nobody', not root" in sudo.detail


def test_missing_sudo_command(expect: Expectations) -> None:
    findings = recorded("after_bootstrap")
    findings["sudo"] = ran(findings["sudo"], 127, "sh: 1: sudo: not found\r\n")
    sudo = by_name(judge_host(HOST, findings, expect))["sudo"]
    assert sudo.detail == "sudo is not installed"
    assert "apt-get install sudo" in sudo.fix


# --- Python and groups per OS -------------------------------------------------------------------

ARCH_OS_RELEASE = 'NAME="Arch Linux"\r\nPRETTY_NAME="Arch Linux"\r\nID=arch\r\nBUILD_ID=rolling\r\n'
UBUNTU_OS_RELEASE = 'PRETTY_NAME="Ubuntu 24.04 LTS"\r\nID=ubuntu\r\nID_LIKE=debian\r\n'


def arch(findings: dict[str, Any]) -> dict[str, Any]:
    findings["ssh"]["stdout"] = ARCH_OS_RELEASE
    return findings


def test_missing_python_on_arch_gets_the_pacman_fix(expect: Expectations) -> None:
    findings = arch(recorded("partial_stack"))
    findings["python"] = ran(findings["python"], 1)
    results = by_name(judge_host(HOST, findings, expect))
    python = results["python"]
    assert python.status == "failed"
    assert "The module interpreter '/usr/bin/python3' was not found" in python.detail
    assert 'ansible@127.0.0.1 "sudo pacman -Syu --needed python --noconfirm"' in python.fix
    assert "apt-get" not in python.fix
    # Only the Prometheus query is a module; every other probe is raw and still judged.
    assert results["prometheus targets"].detail == "needs Python on the server"
    assert results["sudo"].status == "ok"
    assert results["docker"].status == "ok"


def test_missing_python_on_debian_gets_apt(expect: Expectations) -> None:
    findings = recorded("after_bootstrap")
    findings["python"] = ran(findings["python"], 127)
    python = by_name(judge_host(HOST, findings, expect))["python"]
    assert '"sudo apt-get install -y python3"' in python.fix and "pacman" not in python.fix


def test_too_old_python_fails(expect: Expectations) -> None:
    findings = recorded("after_bootstrap")
    findings["python"]["stdout"] = "/usr/bin/python3\r\nPython 3.6.9\r\n"
    python = by_name(judge_host(HOST, findings, expect))["python"]
    assert python.status == "failed" and "Python 3.6.9" in python.detail


def test_arch_user_outside_wheel_fails_with_usermod(expect: Expectations) -> None:
    findings = arch(recorded("after_bootstrap"))
    findings["groups"]["stdout"] = "ansible\r\n"
    group = by_name(judge_host(HOST, findings, expect))["sudo group"]
    assert group.status == "failed"
    assert "not in 'wheel'" in group.detail
    assert "usermod -aG wheel ansible" in group.fix
    assert '"groups ansible"' in group.fix


def test_debian_derivative_uses_the_sudo_group(expect: Expectations) -> None:
    findings = recorded("after_bootstrap")
    findings["ssh"]["stdout"] = UBUNTU_OS_RELEASE
    findings["groups"]["stdout"] = "ansible wheel\r\n"
    group = by_name(judge_host(HOST, findings, expect))["sudo group"]
    assert group.status == "failed" and "usermod -aG sudo ansible" in group.fix


def test_unknown_os_skips_the_group_check(expect: Expectations) -> None:
    findings = recorded("after_bootstrap")
    findings["ssh"]["stdout"] = "ID=fedora\r\n"
    assert by_name(judge_host(HOST, findings, expect))["sudo group"].status == "skipped"


# --- ports --------------------------------------------------------------------------------------


def test_recorded_port_conflicts_name_the_process_and_the_fix(expect: Expectations) -> None:
    ports = by_name(judge_host(HOST, recorded("partial_stack"), expect))["ports"]
    assert ports.status == "failed"
    assert "*:80 (shared nginx): python3 (pid 4203) listens on 0.0.0.0:80" in ports.detail
    assert (
        "127.0.0.1:8000 (beryl3 django): python3 (pid 4200) listens on 127.0.0.1:8000"
        in ports.detail
    )
    # Ports held by docker-proxy for their own containers are fine.
    for port in ("9090", "9093", "5432"):
        assert f":{port} " not in ports.detail
    fixes = dict(line.split(": ", 1) for line in ports.fix.splitlines())
    assert set(fixes) == {"80", "8000"}
    assert (
        "systemctl status 4203" in fixes["80"]
        and "main nginx container must own 80 and 443" in fixes["80"]
    )
    assert "projects (name=beryl3) ports.django" in fixes["8000"]


def test_port_published_by_a_stranger_container(expect: Expectations) -> None:
    findings = recorded("partial_stack")
    findings["ss"]["stdout"] = (
        'LISTEN 0 4096 127.0.0.1:5432 0.0.0.0:* users:(("docker-proxy",pid=3217,fd=4))\n'
    )
    findings["containers"]["stdout"] = json.dumps(
        {
            "Names": "legacy-db",
            "Ports": "127.0.0.1:5432->5432/tcp",
            "Labels": "com.docker.compose.project=legacy,com.docker.compose.service=db",
        }
    )
    ports = by_name(judge_host(HOST, findings, expect))["ports"]
    assert ports.status == "failed"
    assert "container legacy-db (Compose project legacy, service db) publishes it" in ports.detail
    assert "docker compose -p legacy down" in ports.fix


def test_ipv6_wildcard_and_unknown_process(expect: Expectations) -> None:
    findings = recorded("partial_stack")
    findings["ss"]["stdout"] = (
        "LISTEN 0 511 [::]:443 [::]:*\n"  # no process info
        'LISTEN 0 5 127.0.0.53%lo:6379 0.0.0.0:* users:(("x",pid=9,fd=3))\n'  # another address
        'LISTEN 0 5 [::1]:8001 [::]:* users:(("y",pid=8,fd=3))\n'  # ::1 does not take 127.0.0.1
    )
    ports = by_name(judge_host(HOST, findings, expect))["ports"]
    assert ports.status == "failed"
    assert "*:443 (shared nginx): an unknown process listens on :::443" in ports.detail
    assert "6379" not in ports.detail and "8001" not in ports.detail


def test_parse_ss_handles_addresses_and_processes() -> None:
    listeners = parse_ss(
        'LISTEN 0 4096 127.0.0.1:9090 0.0.0.0:* users:(("docker-proxy",pid=2878,fd=4))\n'
        'LISTEN 0 128 [::]:22 [::]:* users:(("sshd",pid=105,fd=7),("sshd",pid=106,fd=7))\n'
        "LISTEN 0 4096 *:80 *:*\n"
        "garbage\n"
    )
    assert [(x.address, x.port) for x in listeners] == [("127.0.0.1", 9090), ("::", 22), ("*", 80)]
    assert listeners[0].is_docker
    assert listeners[1].owner == "sshd (pid 105), sshd (pid 106)"
    assert listeners[2].owner == "an unknown process" and not listeners[2].is_docker


def test_parse_docker_ps_reads_ranges_and_ipv6() -> None:
    line = json.dumps(
        {
            "Names": "web",
            "Ports": "0.0.0.0:80-81->80-81/tcp, :::80->80/tcp, 9000/tcp",
            "Labels": "com.docker.compose.project=shared,com.docker.compose.service=nginx",
        }
    )
    published = parse_docker_ps(line)
    assert sorted({(p.port, p.project, p.service) for p in published}) == [
        (80, "shared", "nginx"),
        (81, "shared", "nginx"),
    ]


def test_missing_ss_skips_the_port_check(expect: Expectations) -> None:
    findings = recorded("after_bootstrap")
    findings["ss"] = ran(findings["ss"], 127, stderr="ss: command not found")
    ports = by_name(judge_host(HOST, findings, expect))["ports"]
    assert ports.status == "skipped" and "iproute2" in ports.fix


# --- Docker and Compose -------------------------------------------------------------------------


def test_docker_daemon_down(expect: Expectations) -> None:
    findings = recorded("partial_stack")
    findings["docker"] = ran(
        findings["docker"],
        1,
        stderr=(
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
            "Is the docker daemon running?"
        ),
    )
    results = by_name(judge_host(HOST, findings, expect))
    assert results["docker"].status == "failed"
    assert "systemctl enable --now docker" in results["docker"].fix
    assert results["stack shared"].detail == "needs Docker"


def test_old_docker_engine(expect: Expectations) -> None:
    findings = recorded("partial_stack")
    findings["docker"]["stdout"] = "19.03.15"
    docker = by_name(judge_host(HOST, findings, expect))["docker"]
    assert docker.status == "failed" and "older than 20.10" in docker.detail


@pytest.mark.parametrize(
    ("rc", "stdout", "stderr", "expected"),
    [
        (
            1,
            "",
            "docker: 'compose' is not a docker command.\nSee 'docker --help'",
            "Compose v2 plugin",
        ),
        (0, "2.17.3", "", "not v2 >= 2.18"),
        (0, "1.29.2", "", "not v2 >= 2.18"),
    ],
)
def test_compose_missing_or_too_old(
    expect: Expectations, rc: int, stdout: str, stderr: str, expected: str
) -> None:
    findings = recorded("partial_stack")
    findings["compose"] = ran(findings["compose"], rc, stdout, stderr)
    results = by_name(judge_host(HOST, findings, expect))
    compose = results["docker compose"]
    assert compose.status == "failed"
    assert expected in compose.detail + compose.fix
    assert "docker-compose" in compose.fix
    assert results["stack beryl3"].detail == "needs Docker Compose v2"
    assert results["prometheus targets"].status == "skipped"


def test_compose_versions_with_prefixes_pass(expect: Expectations) -> None:
    findings = recorded("partial_stack")
    for version in ("2.26.1-4", "v2.29.7", "2.18.0"):
        findings["compose"]["stdout"] = version
        assert by_name(judge_host(HOST, findings, expect))["docker compose"].status == "ok"


# --- stacks -------------------------------------------------------------------------------------


def test_recorded_stacks(expect: Expectations) -> None:
    results = by_name(judge_host(HOST, recorded("partial_stack"), expect))
    shared = results["stack shared"]
    assert shared.status == "failed"
    assert shared.detail == "nginx-edge-exporter: missing, nginx: missing, docker-api: missing"
    assert shared.fix == "create the missing services: stagectl deploy"
    beryl3 = results["stack beryl3"]
    assert "beryl3-redis: restarting" in beryl3.detail
    assert "beryl3-redis-exporter: created" in beryl3.detail
    assert (
        "beryl3-postgres:" not in beryl3.detail and "beryl3-postgres-exporter:" not in beryl3.detail
    )
    assert "docker logs --tail 50 beryl3-redis" in beryl3.fix
    assert "stagectl deploy --project beryl3" in beryl3.fix
    project2 = results["stack project2"]
    assert project2.detail.startswith("not deployed")
    assert project2.fix == "deploy it: stagectl deploy --project project2"


def _rows(stdout: str) -> list[dict[str, Any]]:
    return parse_compose_ps(stdout)


def test_parse_compose_ps_reads_lines_and_arrays() -> None:
    rows = [
        {"Name": "a", "Service": "a", "State": "running", "Health": ""},
        {"Name": "b", "Service": "b", "State": "exited", "ExitCode": 1},
    ]
    assert _rows("\n".join(json.dumps(r) for r in rows)) == rows  # Compose >= 2.21
    assert _rows(json.dumps(rows)) == rows  # Compose 2.18 - 2.20
    assert _rows("") == []


def test_healthy_stack_and_unhealthy_service(expect: Expectations) -> None:
    services = expect.stacks["beryl3"]
    rows: list[dict[str, Any]] = [
        {
            "Name": s.container,
            "Service": s.service,
            "State": "running",
            "Health": "" if "exporter" in s.service else "healthy",
        }
        for s in services
    ]
    result = {"rc": 0, "stdout": json.dumps(rows), "item": "beryl3"}
    check = judge_stack(HOST, "beryl3", services, result)
    assert (check.status, check.detail) == ("ok", "7 services running and healthy")
    rows[2] = {**rows[2], "Health": "unhealthy"}
    rows[0] = {**rows[0], "State": "exited", "ExitCode": 137}
    check = judge_stack(HOST, "beryl3", services, {"rc": 0, "stdout": json.dumps(rows)})
    assert check.status == "failed"
    assert check.detail == "beryl3-postgres: exited (exit 137), beryl3-django: unhealthy"


# --- Prometheus targets -------------------------------------------------------------------------


def test_recorded_targets_report_down_ones_with_last_error(expect: Expectations) -> None:
    targets = by_name(judge_host(HOST, recorded("partial_stack"), expect))["prometheus targets"]
    assert targets.status == "failed"
    assert targets.detail.startswith("8 of 17 targets down: ")
    assert (
        'django beryl3-django:8000: Get "http://beryl3-django:8000/metrics": dial tcp: '
        "lookup beryl3-django on 127.0.0.11:53: no such host"
    ) in targets.detail
    assert "not running or not on the network Prometheus shares with it" in targets.fix
    assert "docker logs --tail 50 project2-postgres-exporter" in targets.fix
    assert "docker compose -p shared logs --tail 50 nginx-edge-exporter" in targets.fix


def test_all_targets_up(expect: Expectations) -> None:
    findings = recorded("partial_stack")
    for target in findings["prometheus"]["targets"]:
        target.update(health="up", lastError="")
    findings["prometheus"]["targets"][0]["health"] = "unknown"
    targets = by_name(judge_host(HOST, findings, expect))["prometheus targets"]
    assert (targets.status, targets.detail) == ("ok", "16 of 17 targets up (1 not scraped yet)")


@pytest.mark.parametrize(
    ("status", "msg", "expected"),
    [
        (401, "HTTP Error 401: Unauthorized", "refused the vault's password"),
        (-1, "Request failed: <urlopen error [Errno 111] Connection refused>", "does not answer"),
    ],
)
def test_prometheus_query_failures(
    expect: Expectations, status: int, msg: str, expected: str
) -> None:
    findings = recorded("partial_stack")
    findings["prometheus"] = {"skipped": False, "status": status, "msg": msg, "targets": []}
    targets = by_name(judge_host(HOST, findings, expect))["prometheus targets"]
    assert targets.status == "failed" and expected in targets.detail
    assert targets.fix


def test_targets_skipped_when_the_shared_stack_is_not_deployed(expect: Expectations) -> None:
    findings = recorded("partial_stack")
    findings["stacks"][0]["stdout"] = ""
    results = by_name(judge_host(HOST, findings, expect))
    assert results["stack shared"].detail.startswith("not deployed")
    assert results["prometheus targets"].status == "skipped"


def test_targets_skipped_when_prometheus_is_off() -> None:
    model = sandbox_model()
    # model_copy, not validation: the model itself refuses Prometheus off (doctor must still cope).
    prometheus = model.shared.prometheus.model_copy(update={"enabled": False})
    expect = expectations(model.model_copy(update={"shared": model.shared.model_copy(update={"prometheus": prometheus})}))
    targets = by_name(judge_host(HOST, recorded("partial_stack"), expect))["prometheus targets"]
    assert targets.status == "skipped" and "switched off" in targets.detail
    assert 9090 not in [p.port for p in expect.ports]


# --- DNS ----------------------------------------------------------------------------------------

RECORDS = ("beryl3.staging.example.org", "monitoring.staging.example.org")
SERVER = "192.0.2.14"  # TEST-NET-1: never routed


class FakeResolver:
    """socket.getaddrinfo over a table: the tests never look a name up for real."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[str] = []

    def __call__(
        self, name: str, port: Any, family: int = 0, type: int = 0
    ) -> list[tuple[Any, ...]]:
        self.calls.append(name)
        if name not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0)) for a in self.table[name]]


def test_dns_records_resolving_to_the_server_pass() -> None:
    resolver = FakeResolver({name: [SERVER] for name in RECORDS})
    results = judge_dns(HOST, SERVER, RECORDS, resolver)
    assert statuses(results) == {f"dns {name}": "ok" for name in RECORDS}
    assert resolver.calls == list(RECORDS)


def test_dns_missing_and_wrong_records_fail_with_the_record_to_add() -> None:
    resolver = FakeResolver({RECORDS[1]: ["198.51.100.7"]})
    missing, wrong = judge_dns(HOST, SERVER, RECORDS, resolver)
    assert missing.status == "failed" and "does not resolve" in missing.detail
    assert f"A {RECORDS[0]} → {SERVER}" in missing.fix and f"dig +short {RECORDS[0]}" in missing.fix
    assert wrong.status == "failed"
    assert wrong.detail == f"{RECORDS[1]} resolves to 198.51.100.7, not to the server ({SERVER})"
    assert f"change the A record of {RECORDS[1]} to {SERVER}" in wrong.fix


def test_dns_is_skipped_for_a_loopback_server_without_any_lookup() -> None:
    def never(*_args: Any, **_kwargs: Any) -> list[tuple[Any, ...]]:
        raise AssertionError("no lookup may happen for a loopback server")

    for address in ("127.0.0.1", "::1", "localhost"):
        results = judge_dns(HOST, address, RECORDS, never)
        assert {r.status for r in results} == {"skipped"}
        assert "loopback" in results[0].detail


def test_dns_with_a_host_name_as_ansible_host() -> None:
    resolver = FakeResolver(
        {"server.example.org": [SERVER], **{name: [SERVER] for name in RECORDS}}
    )
    results = judge_dns(HOST, "server.example.org", RECORDS, resolver)
    assert {r.status for r in results} == {"ok"}


# --- the report ---------------------------------------------------------------------------------


def test_report_is_a_list_with_helpers() -> None:
    report = DoctorReport(
        [CheckResult("ssh", "a", "ok", ""), CheckResult("sudo", "a", "failed", "x", "y")]
    )
    assert isinstance(report, list) and len(report) == 2
    assert not report.ok
    assert [c.name for c in report.failed] == ["sudo"]
    assert report.get("sudo", "a") is report[1] and report.get("sudo", "b") is None
    assert DoctorReport().ok


def test_every_failed_check_has_a_fix(expect: Expectations) -> None:
    for name in ("before_bootstrap", "after_bootstrap", "sudo_broken", "partial_stack"):
        for check in judge_host(HOST, recorded(name), expect):
            if check.status == "failed":
                assert check.fix.strip(), (name, check)


def test_unset_ansible_user_is_pointed_out(expect: Expectations) -> None:
    findings = recorded("before_bootstrap")
    findings["connection"]["user"] = ""
    ssh = judge_host(HOST, findings, expect, key_state="ok")[0]
    assert "ansible_user is not set" in ssh.detail
