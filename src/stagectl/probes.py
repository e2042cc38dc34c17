"""What the read-only probes of a server report, parsed: registered task results of the doctor and
status playbooks (`ss`, `docker ps`, `docker compose ps`, versions, /etc/os-release) and the SSH
connection they came through. Pure functions.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stagectl.expectations import ExpectedService

Findings = dict[str, Any]


#: The processes Docker publishes ports with (rootful and rootless).
DOCKER_PROXIES = frozenset({"docker-proxy", "rootlesskit"})


@dataclass(frozen=True)
class Connection:
    host: str
    port: int
    user: str
    key: str

    @classmethod
    def of(cls, findings: Findings) -> Connection:
        raw = findings.get("connection") or {}
        try:
            port = int(raw.get("port") or 22)
        except (TypeError, ValueError):
            port = 22
        return cls(
            str(raw.get("host") or ""), port, str(raw.get("user") or ""), str(raw.get("key") or "")
        )

    @property
    def login(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def ssh(self, command: str = "") -> str:
        """How to run a command on the server by hand: ssh -i KEY USER@HOST "COMMAND"."""
        parts = ["ssh"]
        if self.key:
            parts += ["-i", self.key]
        if self.port != 22:
            parts += ["-p", str(self.port)]
        parts.append(self.login)
        text = shlex.join(parts)
        return f'{text} "{command}"' if command else text


def task_ran(result: Any) -> bool:
    """A registered result of a task that ran (not skipped by its `when`)."""
    return isinstance(result, dict) and bool(result) and not result.get("skipped")


def task_output(result: dict[str, Any]) -> str:
    """stdout and stderr of a task, without raw's pty carriage returns and ssh's own chatter."""
    text = "\n".join(str(result.get(key) or "") for key in ("stdout", "stderr"))
    lines = [line.rstrip("\r") for line in text.replace("\r\n", "\n").splitlines()]
    return "\n".join(
        line
        for line in lines
        if line.strip() and not re.match(r"^Shared connection to .* closed\.$", line)
    )


def task_message(result: dict[str, Any]) -> str:
    """What a failed task said: its output, else Ansible's message."""
    return task_output(result) or str(result.get("msg") or "").strip() or f"exit {result.get('rc')}"


def task_rc(result: Any) -> int | None:
    if not task_ran(result):
        return None
    rc = result.get("rc")
    return int(rc) if isinstance(rc, int) else None


def parse_version(text: str) -> tuple[int, ...] | None:
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not match:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def dotted(version: Sequence[int]) -> str:
    return ".".join(str(part) for part in version)


def os_family(os_release: str) -> str:
    """'Archlinux', 'Debian' or '' from /etc/os-release (ID, then ID_LIKE), as bootstrap decides."""
    ids: list[str] = []
    for key in ("ID", "ID_LIKE"):
        match = re.search(rf'(?m)^{key}="?([^"\r\n]*)"?', os_release)
        if match:
            ids += match.group(1).split()
    for word in ids:
        if word == "arch":
            return "Archlinux"
        if word == "debian":
            return "Debian"
    return ""


def os_name(os_release: str) -> str:
    match = re.search(r'(?m)^PRETTY_NAME="?([^"\r\n]*)"?', os_release)
    return match.group(1) if match else ""


def ssh_error(result: dict[str, Any]) -> str:
    """The SSH client's own words, without Ansible's "Task failed: Failed to connect..." prefix."""
    message = str(result.get("msg") or task_output(result) or "unreachable").strip()
    message = re.sub(r"^Task failed:\s*", "", message)
    return re.sub(r"^Failed to connect to the host via ssh:\s*", "", message)


def refused_key(findings: Findings) -> bool:
    """True when the server refused the key: only then is the key file worth inspecting."""
    ssh = findings.get("ssh") or {}
    return bool(ssh.get("unreachable")) and "Permission denied" in ssh_error(ssh)


@dataclass(frozen=True)
class Listener:
    address: str
    port: int
    #: (process name, pid); empty when ss could not tell (not root).
    processes: tuple[tuple[str, int], ...]

    @property
    def owner(self) -> str:
        if not self.processes:
            return "an unknown process"
        names = sorted({f"{name} (pid {pid})" for name, pid in self.processes})
        return ", ".join(names)

    @property
    def is_docker(self) -> bool:
        return bool(self.processes) and all(name in DOCKER_PROXIES for name, _ in self.processes)


@dataclass(frozen=True)
class Publication:
    """A host port a container publishes (from `docker ps`)."""

    container: str
    project: str
    service: str
    address: str
    port: int


def parse_ss(text: str) -> list[Listener]:
    """`ss -tlnpH` lines:
    State Recv-Q Send-Q Local:Port Peer:Port [users:(("name",pid=N,fd=M),...)]"""
    listeners: list[Listener] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        local = fields[3]
        address, _, port = local.rpartition(":")
        if not port.isdigit():
            continue
        # "[::]" -> "::", "127.0.0.53%lo" -> "127.0.0.53"
        address = address.strip("[]").split("%", 1)[0]
        processes = tuple(
            (name, int(pid)) for name, pid in re.findall(r'\("([^"]+)",pid=(\d+)', line)
        )
        listeners.append(Listener(address, int(port), processes))
    return listeners


def _label(labels: str, key: str) -> str:
    match = re.search(rf"(?:^|,){re.escape(key)}=([^,]*)", labels)
    return match.group(1) if match else ""


def parse_docker_ps(text: str) -> list[Publication]:
    """`docker ps --format '{{json .}}'`: one JSON object per line, Ports as Docker prints them
    ("127.0.0.1:5432->5432/tcp, 0.0.0.0:80-81->80-81/tcp, :::80->80/tcp")."""
    published: list[Publication] = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        labels = str(row.get("Labels") or "")
        project = _label(labels, "com.docker.compose.project")
        service = _label(labels, "com.docker.compose.service")
        for match in re.finditer(
            r"([\d.:a-fA-F]*):(\d+)(?:-(\d+))?->\d+(?:-\d+)?/tcp", str(row.get("Ports") or "")
        ):
            first = int(match.group(2))
            last = int(match.group(3) or first)
            for port in range(first, last + 1):
                published.append(
                    Publication(str(row.get("Names") or ""), project, service, match.group(1), port)
                )
    return published


def parse_compose_ps(text: str) -> list[dict[str, Any]]:
    """`docker compose ps --format json`: a JSON array before Compose 2.21, one object per line
    since."""
    text = text.strip()
    if not text:
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if isinstance(data, list):
        return [row for row in data if isinstance(row, dict)]
    if isinstance(data, dict):
        return [data]
    rows: list[dict[str, Any]] = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def service_problem(row: dict[str, Any] | None) -> str:
    """'' when the container runs and is healthy (or has no health check), else what is wrong."""
    if row is None:
        return "missing"
    state = str(row.get("State") or "").lower()
    health = str(row.get("Health") or "").lower()
    if state != "running":
        code = row.get("ExitCode")
        return f"{state or 'not running'}" + (
            f" (exit {code})" if state == "exited" and code is not None else ""
        )
    if health in ("", "healthy"):
        return ""
    return health  # unhealthy, or starting (still in its start period)


def stack_problems(
    services: Sequence[ExpectedService], rows: Sequence[dict[str, Any]]
) -> list[tuple[ExpectedService, str]]:
    """The expected services that are not running and healthy, with what is wrong, from the rows
    of `docker compose ps`."""
    problems: list[tuple[ExpectedService, str]] = []
    for expected in services:
        row = next(
            (r for r in rows if expected.container and r.get("Name") == expected.container), None
        )
        row = row or next((r for r in rows if r.get("Service") == expected.service), None)
        problem = service_problem(row)
        if problem:
            problems.append((expected, problem))
    return problems
