"""The judgement: pure functions from one host's findings and the environment's expectations to
`CheckResult`s. A check that cannot run because an earlier one failed is skipped, naming what it
needs.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Any

from stagectl.derived import SHARED_PROJECT
from stagectl.doctor.fixes import (
    deploy_command,
    python_install,
    ssh_fix,
    sudoers_fix,
    target_fix,
)
from stagectl.doctor.report import (
    COMPOSE,
    DNS,
    DOCKER,
    NOT_DEPLOYED,
    PORTS,
    PYTHON,
    SSH,
    STACK,
    SUDO,
    SUDO_GROUP,
    TARGETS,
    CheckResult,
    skipped,
)
from stagectl.environment import ALL_VARS, INVENTORY
from stagectl.expectations import Expectations, ExpectedService, PortNeed
from stagectl.probes import (
    Connection,
    Findings,
    Listener,
    Publication,
    dotted,
    os_family,
    os_name,
    parse_compose_ps,
    parse_docker_ps,
    parse_ss,
    parse_version,
    ssh_error,
    stack_problems,
    task_message,
    task_output,
    task_ran,
    task_rc,
)
from stagectl.sshkeys import KeyState
from stagectl.troubleshooting import explain

#: socket.getaddrinfo's signature: (host, port, family, type) -> [(family, type, proto, name, addr)]
Resolver = Callable[..., Sequence[tuple[Any, ...]]]


#: ansible-core 2.19 runs modules on Python 3.8 and later.
MIN_PYTHON = (3, 8)


#: The compose templates use `extra_hosts: host-gateway`, which Docker 20.10 introduced.
MIN_DOCKER = (20, 10)


#: community.docker.docker_compose_v2, which deploys every stack, needs Compose 2.18.
MIN_COMPOSE = (2, 18)


#: Listening addresses that take a port on 127.0.0.1 too.
LOOPBACK_CLASHES = frozenset(
    {"127.0.0.1", "0.0.0.0", "*", "::", "::ffff:127.0.0.1", "::ffff:0.0.0.0"}
)


def judge_ssh(host: str, findings: Findings, key_state: KeyState | None = None) -> CheckResult:
    conn = Connection.of(findings)
    ssh = findings.get("ssh") or {}
    if ssh.get("unreachable"):
        error = ssh_error(ssh)
        # Without ansible_user, ssh logs in with the local user's name: often the real mistake.
        unset = "" if conn.user else " (ansible_user is not set: ssh used your local user name)"
        return CheckResult(
            SSH,
            host,
            "failed",
            f"cannot log in as {conn.login} on port {conn.port}{unset}: {error}",
            ssh_fix(error, conn, key_state),
        )
    if not task_ran(ssh):
        return CheckResult(
            SSH, host, "failed", "the SSH probe did not run", "run `stagectl doctor` again"
        )
    system = os_name(str(ssh.get("stdout") or "")) or "an OS without /etc/os-release"
    key = f" with {conn.key}" if conn.key else ""
    return CheckResult(
        SSH, host, "ok", f"logged in as {conn.login} on port {conn.port}{key} ({system})"
    )


def judge_python(host: str, findings: Findings) -> CheckResult:
    conn = Connection.of(findings)
    family = os_family(str((findings.get("ssh") or {}).get("stdout") or ""))
    result = findings.get("python") or {}
    text = task_output(result)
    if task_rc(result) != 0:
        return CheckResult(
            PYTHON,
            host,
            "failed",
            "python3 is not installed (Ansible's modules need it: \"The module "
            "interpreter '/usr/bin/python3' was not found\")",
            python_install(family, conn),
        )
    version = parse_version(text.split("Python", 1)[-1]) or ()
    path = text.splitlines()[0] if text else "python3"
    if version and version[:2] < MIN_PYTHON:
        return CheckResult(
            PYTHON,
            host,
            "failed",
            f"{path} is Python {dotted(version)}; Ansible needs {dotted(MIN_PYTHON)} or later",
            python_install(family, conn),
        )
    return CheckResult(
        PYTHON, host, "ok", f"{path}: Python {dotted(version) if version else '(version unknown)'}"
    )


def judge_sudo(host: str, findings: Findings) -> CheckResult:
    conn = Connection.of(findings)
    sudo = findings.get("sudo") or {}
    text = task_message(sudo)
    if task_rc(sudo) == 127 or "sudo: command not found" in text or "sudo: not found" in text:
        return CheckResult(
            SUDO,
            host,
            "failed",
            "sudo is not installed",
            "as root on the server: pacman -S sudo (Arch) or apt-get install sudo "
            f"(Debian); then: {sudoers_fix(conn)}",
        )
    if task_rc(sudo) != 0:
        return CheckResult(
            SUDO,
            host,
            "failed",
            f"sudo -n true as {conn.user or 'the login user'}: {text}",
            sudoers_fix(conn),
        )
    whoami = findings.get("whoami") or {}
    if not task_ran(whoami) or whoami.get("failed") or task_rc(whoami) not in (0, None):
        return CheckResult(
            SUDO, host, "failed", f"Ansible's become failed: {task_message(whoami)}", sudoers_fix(conn)
        )
    who = task_output(whoami).splitlines()[-1:] or [""]
    if who[0].strip() != "root":
        return CheckResult(
            SUDO,
            host,
            "failed",
            f"sudo gives '{who[0].strip()}', not root",
            f"the sudoers rule of {conn.user or 'the user'} must allow running as root: "
            + sudoers_fix(conn),
        )
    return CheckResult(SUDO, host, "ok", "passwordless sudo works; become gives root")


def judge_group(host: str, findings: Findings) -> CheckResult:
    conn = Connection.of(findings)
    family = os_family(str((findings.get("ssh") or {}).get("stdout") or ""))
    group = {"Archlinux": "wheel", "Debian": "sudo"}.get(family)
    if group is None:
        return CheckResult(
            SUDO_GROUP, host, "skipped", "not an Arch Linux or Debian system: no known sudo group"
        )
    result = findings.get("groups") or {}
    if task_rc(result) != 0:
        return CheckResult(
            SUDO_GROUP,
            host,
            "failed",
            f"id -nG failed: {task_message(result)}",
            f"check the account of {conn.user} on the server",
        )
    groups = task_output(result).split()
    user = conn.user or "ansible"
    if group not in groups:
        return CheckResult(
            SUDO_GROUP,
            host,
            "failed",
            f"{user} is in {', '.join(groups) or 'no groups'}, not in '{group}' "
            f"({'Arch Linux' if group == 'wheel' else 'Debian'}'s sudo group)",
            f"as root on the server: usermod -aG {group} {user}; check with "
            f"{conn.ssh(f'groups {user}')} (`stagectl bootstrap` does this)",
        )
    return CheckResult(SUDO_GROUP, host, "ok", f"{user} is in '{group}'")


def _clashes(need: PortNeed, listener: Listener) -> bool:
    if listener.port != need.port:
        return False
    # Docker binds 80/443 on every address: any listener on the port is in its way.
    return need.public or listener.address in LOOPBACK_CLASHES


def _port_conflict(
    need: PortNeed, listeners: list[Listener], published: list[Publication]
) -> tuple[str, str] | None:
    """(what holds the port, the fix) when something other than its own service holds it."""
    for listener in listeners:
        if listener.is_docker:
            holders = [p for p in published if p.port == need.port]
            if any(p.project == need.project and p.service == need.service for p in holders):
                continue
            if not holders:
                return (
                    "docker-proxy holds it, but no running container publishes it",
                    (
                        "a leftover of a removed container: restart Docker "
                        "(sudo systemctl restart docker)"
                    ),
                )
            other = holders[0]
            owner = f"container {other.container}" + (
                f" (Compose project {other.project}, service {other.service})"
                if other.project
                else ""
            )
            remove = (
                f"docker compose -p {other.project} down"
                if other.project
                else f"docker rm -f {other.container}"
            )
            return (
                f"{owner} publishes it",
                (
                    f"remove that container on the server ({remove}) or give {need.project} "
                    f"{need.service} another port ({need.setting}), then `stagectl deploy`"
                ),
            )
        unit = f"systemctl status {listener.processes[0][1]}" if listener.processes else "ss -tlnp"
        move = (
            "the main nginx container must own 80 and 443"
            if need.public
            else f"or give {need.project} {need.service} another port ({need.setting}) "
            "and `stagectl deploy`"
        )
        return (
            f"{listener.owner} listens on {listener.address}:{listener.port}",
            (
                f"stop it for good on the server ({unit} names its unit; then sudo systemctl disable "
                f"--now UNIT); {move}"
            ),
        )
    return None


def judge_ports(host: str, findings: Findings, expect: Expectations) -> CheckResult:
    ss = findings.get("ss") or {}
    if task_rc(ss) != 0:
        text = task_message(ss)
        if "ss: command not found" in text or task_rc(ss) == 127:
            return CheckResult(
                PORTS,
                host,
                "skipped",
                "ss is not installed on the server",
                "install iproute2 (`stagectl deploy` does); then run doctor again",
            )
        return CheckResult(
            PORTS, host, "failed", f"ss -tlnpH failed: {text}", "run it on the server to see why"
        )
    listeners = parse_ss(str(ss.get("stdout") or ""))
    containers = findings.get("containers") or {}
    published = parse_docker_ps(str(containers.get("stdout") or "")) if task_rc(containers) == 0 else []
    problems: list[tuple[PortNeed, str, str]] = []
    for need in expect.ports:
        conflict = _port_conflict(need, [x for x in listeners if _clashes(need, x)], published)
        if conflict is not None:
            problems.append((need, *conflict))
    ports = ", ".join(str(need.port) for need in expect.ports)
    if not problems:
        return CheckResult(PORTS, host, "ok", f"{ports}: free or held by their own containers")
    detail = "; ".join(f"{need.label}: {holder}" for need, holder, _ in problems)
    fix = "\n".join(f"{need.port}: {fix}" for need, _, fix in problems)
    return CheckResult(PORTS, host, "failed", f"port conflict: {detail}", fix)


def judge_docker(host: str, findings: Findings) -> CheckResult:
    result = findings.get("docker") or {}
    text = task_message(result)
    if task_rc(result) != 0:
        known = explain(text)
        if known is not None:
            return CheckResult(DOCKER, host, "failed", f"{known.explanation} ({text})", known.fix)
        return CheckResult(
            DOCKER,
            host,
            "failed",
            f"docker version failed: {text}",
            "run `sudo docker version` on the server to see why",
        )
    version = parse_version(text)
    if version is None:
        return CheckResult(
            DOCKER,
            host,
            "failed",
            f"the Docker engine gave no version ({text!r})",
            "run `sudo docker version` on the server to see why",
        )
    if version[:2] < MIN_DOCKER:
        return CheckResult(
            DOCKER,
            host,
            "failed",
            f"Docker engine {text} is older than {dotted(MIN_DOCKER)}",
            "upgrade Docker (Arch: pacman -Syu docker; Debian: a newer release's docker.io)",
        )
    return CheckResult(DOCKER, host, "ok", f"Docker engine {text}")


def judge_compose(host: str, findings: Findings) -> CheckResult:
    result = findings.get("compose") or {}
    text = task_message(result)
    if task_rc(result) != 0:
        known = explain(text)
        fix = (
            known.fix
            if known is not None
            else "run `sudo docker compose version` on the server to see why"
        )
        return CheckResult(COMPOSE, host, "failed", f"docker compose version failed: {text}", fix)
    version = parse_version(text)
    if version is None or version[:2] < MIN_COMPOSE:
        return CheckResult(
            COMPOSE,
            host,
            "failed",
            f"Docker Compose {text} is not v2 >= {dotted(MIN_COMPOSE)} "
            "(community.docker.docker_compose_v2 needs it)",
            "install the Compose v2 plugin >= 2.18 (Arch: docker-compose; Debian 13: "
            "docker-compose; Debian 12: docker-compose-plugin from Docker's repository)",
        )
    return CheckResult(COMPOSE, host, "ok", f"Docker Compose {text}")


def judge_stack(
    host: str, project: str, services: Sequence[ExpectedService], result: Any
) -> CheckResult:
    name = f"{STACK} {project}"
    where = "/opt/shared" if project == SHARED_PROJECT else f"/opt/projects/{project}"
    if task_rc(result) != 0:
        return CheckResult(
            name,
            host,
            "failed",
            f"docker compose -p {project} ps failed: {task_message(result or {})}",
            "run it on the server to see why",
        )
    rows = parse_compose_ps(str(result.get("stdout") or ""))
    if not rows:
        return CheckResult(
            name,
            host,
            "failed",
            f"{NOT_DEPLOYED}: no containers of Compose project {project} ({where})",
            f"deploy it: {deploy_command(project)}",
        )
    problems = stack_problems(services, rows)
    if not problems:
        return CheckResult(name, host, "ok", f"{len(services)} services running and healthy")
    detail = ", ".join(f"{svc.label}: {problem}" for svc, problem in problems)
    if all(problem == "missing" for _, problem in problems):
        fix = f"create the missing services: {deploy_command(project)}"
    else:
        broken = next(svc for svc, problem in problems if problem != "missing")
        container = broken.container or f"$(docker compose -p {project} ps -q {broken.service})"
        fix = (
            f"see why on the server: docker logs --tail 50 {container}; docker inspect --format "
            f"'{{{{json .State.Health}}}}' {container}; after fixing the cause, "
            f"{deploy_command(project)} recreates the stack (a service still 'starting' may just "
            "need its start period: run doctor again in a minute)"
        )
    return CheckResult(name, host, "failed", detail, fix)


def judge_stacks(host: str, findings: Findings, expect: Expectations) -> list[CheckResult]:
    results = {str(r.get("item")): r for r in findings.get("stacks") or [] if isinstance(r, dict)}
    return [
        judge_stack(host, project, services, results.get(project))
        for project, services in expect.stacks.items()
    ]


def judge_targets(host: str, findings: Findings, expect: Expectations) -> CheckResult:
    if not expect.prometheus_enabled:
        return CheckResult(
            TARGETS,
            host,
            "skipped",
            f"Prometheus is switched off (shared_services.prometheus.enabled in {ALL_VARS})",
        )
    if not expect.prometheus_published:
        return CheckResult(
            TARGETS,
            host,
            "skipped",
            "Prometheus is not published on 127.0.0.1 "
            f"(shared_services.prometheus.published in {ALL_VARS})",
        )
    answer = findings.get("prometheus") or {}
    if str(answer.get("skipped")).lower() == "true":
        return CheckResult(TARGETS, host, "skipped", "Prometheus was not asked (needs Docker)")
    url = f"127.0.0.1:{expect.prometheus_port}"
    try:
        status = int(answer.get("status", -1))
    except (TypeError, ValueError):
        status = -1
    if status == 401:
        return CheckResult(
            TARGETS,
            host,
            "failed",
            f"Prometheus on {url} refused the vault's password (401)",
            "the deployed web.yml does not match vault_prometheus_password: run "
            "`stagectl deploy` (after `stagectl secrets generate` if the bcrypt hash is stale)",
        )
    if status != 200:
        message = str(answer.get("msg") or "").strip() or f"HTTP {status}"
        return CheckResult(
            TARGETS,
            host,
            "failed",
            f"Prometheus does not answer on {url}: {message}",
            f"see the check 'stack {SHARED_PROJECT}' and, on the server, "
            f"docker compose -p {SHARED_PROJECT} logs --tail 50 prometheus",
        )
    targets = [t for t in answer.get("targets") or [] if isinstance(t, dict)]
    if not targets:
        return CheckResult(
            TARGETS,
            host,
            "failed",
            "Prometheus has no scrape targets",
            "its configuration was not deployed: `stagectl deploy`",
        )
    down = [t for t in targets if t.get("health") == "down"]
    # "unknown": not scraped yet (just deployed or reloaded); neither up nor a failure.
    pending = [t for t in targets if t.get("health") not in ("up", "down")]
    if not down:
        extra = f" ({len(pending)} not scraped yet)" if pending else ""
        return CheckResult(
            TARGETS,
            host,
            "ok",
            f"{len(targets) - len(pending)} of {len(targets)} targets up{extra}",
        )

    def describe(target: dict[str, Any]) -> str:
        labels = target.get("labels") or {}
        error = target.get("lastError") or "down"
        return f"{labels.get('job', '?')} {labels.get('instance', '?')}: {error}"

    detail = f"{len(down)} of {len(targets)} targets down: " + "; ".join(describe(t) for t in down)
    return CheckResult(TARGETS, host, "failed", detail, target_fix(down, expect))


def _is_loopback(address: str) -> bool:
    if address.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _resolve(resolver: Resolver, name: str) -> list[str]:
    infos = resolver(name, None, socket.AF_INET, socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def judge_dns(
    host: str, address: str, records: Sequence[str], resolver: Resolver
) -> list[CheckResult]:
    """Every A record resolves to the server's address. Resolution runs on this machine: a
    certificate authority and the users see what public DNS says, not what the server says."""
    names = [f"{DNS} {record}" for record in records]
    if _is_loopback(address):
        return skipped(
            names,
            host,
            f"the server's address {address} is a loopback address (e.g. a "
            "sandbox): public DNS cannot point at it",
        )
    try:
        ipaddress.ip_address(address)
        expected = [address]
    except ValueError:
        try:
            expected = _resolve(resolver, address)
        except OSError as exc:
            return skipped(
                names,
                host,
                f"ansible_host '{address}' does not resolve ({exc})",
                f"fix ansible_host in {INVENTORY}",
            )
    results: list[CheckResult] = []
    target = expected[0]
    for record, name in zip(records, names, strict=True):
        add = f"A {record} → {target}"
        try:
            got = _resolve(resolver, record)
        except OSError as exc:
            results.append(
                CheckResult(
                    name,
                    host,
                    "failed",
                    f"{record} does not resolve ({exc})",
                    f"add the record {add} in the zone of the domain (`stagectl dns` "
                    f"lists every record); check with dig +short {record}",
                )
            )
            continue
        if set(got) & set(expected):
            results.append(CheckResult(name, host, "ok", f"{record} → {', '.join(got)}"))
        else:
            results.append(
                CheckResult(
                    name,
                    host,
                    "failed",
                    f"{record} resolves to {', '.join(got)}, not to the server ({target})",
                    f"change the A record of {record} to {target} "
                    "(then wait for the old record's TTL); "
                    f"check with dig +short {record}",
                )
            )
    return results


def _checks_after_ssh(expect: Expectations) -> list[str]:
    return [PYTHON, SUDO, SUDO_GROUP, *_checks_after_sudo(expect)]


def _checks_after_sudo(expect: Expectations) -> list[str]:
    return [PORTS, DOCKER, *_checks_after_docker(expect)]


def _checks_after_docker(expect: Expectations) -> list[str]:
    return [COMPOSE, *_stack_checks(expect), TARGETS]


def _stack_checks(expect: Expectations) -> list[str]:
    return [f"{STACK} {project}" for project in expect.stacks]


def judge_host(
    host: str, findings: Findings, expect: Expectations, *, key_state: KeyState | None = None
) -> list[CheckResult]:
    """Every check of one host except DNS, from its findings. A check that cannot run because an
    earlier one failed is skipped, naming what it needs."""
    ssh = judge_ssh(host, findings, key_state)
    if ssh.status != "ok":
        return [ssh, *skipped(_checks_after_ssh(expect), host, "needs SSH")]
    python = judge_python(host, findings)
    sudo = judge_sudo(host, findings)
    results = [ssh, python, sudo, judge_group(host, findings)]
    # Everything after runs as root (raw probes: Python is needed by the targets check only).
    if sudo.status != "ok":
        return results + skipped(_checks_after_sudo(expect), host, "needs passwordless sudo")
    results.append(judge_ports(host, findings, expect))
    docker = judge_docker(host, findings)
    results.append(docker)
    if docker.status != "ok":
        return results + skipped(_checks_after_docker(expect), host, "needs Docker")
    compose = judge_compose(host, findings)
    results.append(compose)
    if compose.status != "ok":
        return results + skipped(
            [*_stack_checks(expect), TARGETS], host, "needs Docker Compose v2"
        )
    stacks = judge_stacks(host, findings, expect)
    results += stacks
    if stacks[0].status == "failed" and stacks[0].detail.startswith(NOT_DEPLOYED):
        # Its Prometheus cannot answer: one failure with its fix says it all.
        return results + skipped([TARGETS], host, f"needs the shared stack ({NOT_DEPLOYED})")
    if python.status != "ok":
        # Asked with the uri module: the password must not show in a process list (curl -u).
        return results + skipped([TARGETS], host, "needs Python on the server")
    results.append(judge_targets(host, findings, expect))
    return results
