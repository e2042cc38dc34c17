"""`stagectl doctor`: the troubleshooting guide and health checks as automated checks.

Two halves, so the judgement is testable without a server:

* gathering: the read-only playbook `stagectl.staging.doctor` probes every host (SSH, Python,
  sudo, groups, `ss`, Docker, Compose, the stacks, Prometheus' targets) and writes what it saw,
  as registered task results, to one JSON file per host on this machine; DNS is resolved here,
  on the controller, through an injectable resolver;
* judging: pure functions turn those findings and the environment's derived model into
  `CheckResult`s, each failing one carrying its fix (its own where it has one, else the
  known problems of `stagectl.troubleshooting`).

Nothing here prints and nothing changes a server (only the collection changes one, and doctor
only reads).
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from stagectl.derived import derive
from stagectl.environment import ALL_VARS, INVENTORY, load_environment
from stagectl.runner import ProgressCallback, RunResult, run_reporting_playbook
from stagectl.troubleshooting import explain

Status = Literal["ok", "failed", "skipped"]
KeyState = Literal["ok", "missing", "passphrase", "unreadable", "unset"]
#: socket.getaddrinfo's signature: (host, port, family, type) -> [(family, type, proto, name, addr)]
Resolver = Callable[..., Sequence[tuple[Any, ...]]]
Findings = dict[str, Any]

# Check names, in report order. Per-subject checks append the subject: "stack beryl3", "dns NAME".
SSH = "ssh"
PYTHON = "python"
SUDO = "sudo"
SUDO_GROUP = "sudo group"
PORTS = "ports"
DOCKER = "docker"
COMPOSE = "docker compose"
STACK = "stack"
TARGETS = "prometheus targets"
DNS = "dns"
RUN = "doctor run"
NOT_DEPLOYED = "not deployed"

#: The shared stack's Compose project (`name:` of the shared_monitoring compose template).
SHARED_PROJECT = "shared"
#: Compose service names of the shared stack where they are not the setting's key with '-'.
#: nginx_exporter is "nginx-edge-exporter" so that it does not share a DNS alias with the
#: projects' own nginx-exporter services on the monitoring network.
SHARED_SERVICE_NAMES = {"nginx_exporter": "nginx-edge-exporter"}
PUBLIC_PORTS = (80, 443)

#: ansible-core 2.19 runs modules on Python 3.8 and later.
MIN_PYTHON = (3, 8)
#: The compose templates use `extra_hosts: host-gateway`, which Docker 20.10 introduced.
MIN_DOCKER = (20, 10)
#: community.docker.docker_compose_v2, which deploys every stack, needs Compose 2.18.
MIN_COMPOSE = (2, 18)

#: The processes Docker publishes ports with (rootful and rootless).
DOCKER_PROXIES = frozenset({"docker-proxy", "rootlesskit"})
#: Listening addresses that take a port on 127.0.0.1 too.
LOOPBACK_CLASHES = frozenset(
    {"127.0.0.1", "0.0.0.0", "*", "::", "::ffff:127.0.0.1", "::ffff:0.0.0.0"}
)


# --- the report ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    name: str
    host: str
    status: Status
    detail: str
    fix: str = ""


class DoctorReport(list[CheckResult]):
    """The checks of every host, in order. A list, so the CLI can iterate and filter it."""

    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def failed(self) -> list[CheckResult]:
        return [check for check in self if check.status == "failed"]

    def get(self, name: str, host: str | None = None) -> CheckResult | None:
        """The check called `name` (of `host`, when given), if the report has one."""
        return next((c for c in self if c.name == name and host in (None, c.host)), None)


# --- what the environment expects ---------------------------------------------------------------


@dataclass(frozen=True)
class PortNeed:
    """A host port stagectl needs on the server, and which Compose service should publish it."""

    port: int
    #: 80/443 are published on every address; every other port on 127.0.0.1 only.
    public: bool
    project: str
    service: str
    #: Where to change it: the file and the field.
    setting: str

    @property
    def label(self) -> str:
        address = "*" if self.public else "127.0.0.1"
        return f"{address}:{self.port} ({self.project} {self.service})"


@dataclass(frozen=True)
class ExpectedService:
    service: str
    #: The container name the compose template sets; "" where Compose names it (shared stack).
    container: str = ""

    @property
    def label(self) -> str:
        return self.container or self.service


@dataclass(frozen=True)
class Expectations:
    ports: tuple[PortNeed, ...]
    #: Compose project -> its services, the shared stack first.
    stacks: dict[str, tuple[ExpectedService, ...]]
    prometheus_enabled: bool
    prometheus_published: bool
    prometheus_port: int
    dns_records: tuple[str, ...]
    #: Project name -> compose service -> container, for fixes that name a container.
    containers: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def stack_names(self) -> tuple[str, ...]:
        return tuple(self.stacks)


def _shared_service_name(key: str) -> str:
    return SHARED_SERVICE_NAMES.get(key, key.replace("_", "-"))


def expectations(model: dict[str, Any]) -> Expectations:
    """What a healthy server runs and listens on, from the derived `stagectl` variable."""
    shared = model["shared"]
    enabled = {key: svc for key, svc in shared.items() if svc.get("enabled", True)}
    ports: list[PortNeed] = []
    if "nginx" in enabled:
        ports += [
            PortNeed(port, True, SHARED_PROJECT, "nginx", "the public web ports (fixed)")
            for port in PUBLIC_PORTS
        ]
    for key, svc in enabled.items():
        if svc.get("published") and svc.get("port"):
            ports.append(
                PortNeed(
                    svc["port"],
                    False,
                    SHARED_PROJECT,
                    _shared_service_name(key),
                    f"{ALL_VARS}: shared_services.{key}.port",
                )
            )
    stacks: dict[str, tuple[ExpectedService, ...]] = {
        SHARED_PROJECT: tuple(ExpectedService(_shared_service_name(key)) for key in enabled)
    }
    containers: dict[str, dict[str, str]] = {}
    for project in model["projects"]:
        name = project["name"]
        for kind, port in project["ports"].items():
            if port:
                ports.append(
                    PortNeed(
                        port, False, name, kind, f"{INVENTORY}: projects (name={name}) ports.{kind}"
                    )
                )
        by_service = {
            service.replace("_", "-"): container
            for service, container in project["containers"].items()
        }
        containers[name] = by_service
        stacks[project["compose_project"]] = tuple(
            ExpectedService(service, container) for service, container in by_service.items()
        )
    prometheus = shared["prometheus"]
    return Expectations(
        ports=tuple(ports),
        stacks=stacks,
        prometheus_enabled=bool(prometheus.get("enabled", True)),
        prometheus_published=bool(prometheus.get("published")),
        prometheus_port=int(prometheus.get("port") or 9090),
        dns_records=tuple(record["name"] for record in model["dns_records"]),
        containers=containers,
    )


# --- reading the findings -----------------------------------------------------------------------


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
        text = " ".join(shlex.quote(p) for p in parts)
        return f'{text} "{command}"' if command else text


def _ran(result: Any) -> bool:
    """A registered result of a task that ran (not skipped by its `when`)."""
    return isinstance(result, dict) and bool(result) and not result.get("skipped")


def _output(result: dict[str, Any]) -> str:
    """stdout and stderr of a task, without raw's pty carriage returns and ssh's own chatter."""
    text = "\n".join(str(result.get(key) or "") for key in ("stdout", "stderr"))
    lines = [line.rstrip("\r") for line in text.replace("\r\n", "\n").splitlines()]
    return "\n".join(
        line
        for line in lines
        if line.strip() and not re.match(r"^Shared connection to .* closed\.$", line)
    )


def _message(result: dict[str, Any]) -> str:
    """What a failed task said: its output, else Ansible's message."""
    return _output(result) or str(result.get("msg") or "").strip() or f"exit {result.get('rc')}"


def _rc(result: Any) -> int | None:
    if not _ran(result):
        return None
    rc = result.get("rc")
    return int(rc) if isinstance(rc, int) else None


def _version(text: str) -> tuple[int, ...] | None:
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not match:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def _dotted(version: Sequence[int]) -> str:
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


def _skipped(names: Iterable[str], host: str, reason: str, fix: str = "") -> list[CheckResult]:
    return [CheckResult(name, host, "skipped", reason, fix) for name in names]


# --- SSH ----------------------------------------------------------------------------------------


def _ssh_error(result: dict[str, Any]) -> str:
    """The SSH client's own words, without Ansible's "Task failed: Failed to connect..." prefix."""
    message = str(result.get("msg") or _output(result) or "unreachable").strip()
    message = re.sub(r"^Task failed:\s*", "", message)
    return re.sub(r"^Failed to connect to the host via ssh:\s*", "", message)


def refused_key(findings: Findings) -> bool:
    """True when the server refused the key: only then is the key file worth inspecting."""
    ssh = findings.get("ssh") or {}
    return bool(ssh.get("unreachable")) and "Permission denied" in _ssh_error(ssh)


def inspect_key(path: str) -> KeyState:
    """What is wrong with the private key on this machine, if anything. Reads it with ssh-keygen
    and an empty passphrase: a key that needs one cannot be used by unattended Ansible runs."""
    if not path:
        return "unset"
    key = Path(path).expanduser()
    if not key.is_file():
        return "missing"
    try:
        proc = subprocess.run(
            ["ssh-keygen", "-y", "-P", "", "-f", str(key)],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unreadable"
    if proc.returncode == 0:
        return "ok"
    return "passphrase" if "passphrase" in proc.stderr.lower() else "unreadable"


def _key_fix(conn: Connection, key_state: KeyState | None) -> str:
    key = conn.key or "~/.ssh/ansible_staging"
    user = conn.user or "ansible"
    new_key = f'ssh-keygen -t rsa -b 4096 -f {key} -N "" -C "{user}@staging"'
    bootstrap = (
        f"`stagectl bootstrap --as root@{conn.host}` creates {user} and authorizes {key}.pub"
    )
    if key_state == "unset":
        return (
            f"set ansible_ssh_private_key_file (e.g. in {ALL_VARS}) to the key of {user}; "
            f"make one without passphrase with: {new_key}; then {bootstrap}"
        )
    if key_state == "missing":
        return (
            f"the private key {key} does not exist on this machine: make it without passphrase "
            f"({new_key}), then authorize it: {bootstrap}"
        )
    if key_state == "passphrase":
        return (
            f"{key} has a passphrase, which unattended runs cannot type: remove it with "
            f'ssh-keygen -p -f {key} -N "" (keeps the key), or make a new key without one '
            f"({new_key}) and authorize it: {bootstrap}"
        )
    if key_state == "unreadable":
        return (
            f"{key} cannot be read as an SSH private key: check the file, "
            f"or make a new one ({new_key})"
        )
    # The key is fine here: the server does not accept it for this user (the usual causes).
    return (
        f"the server does not accept {key} for user '{user}'. Check that ansible_user is the "
        f"user bootstrap created ('ansible' by default); test with {conn.ssh('echo test')}; "
        f"authorize the key: cat {key}.pub, then on the server: "
        f'echo "PASTE_KEY_HERE" | sudo tee -a /home/{user}/.ssh/authorized_keys; '
        f"or {bootstrap}"
    )


def _ssh_fix(error: str, conn: Connection, key_state: KeyState | None) -> str:
    where = f"{conn.host}:{conn.port}"
    if "Permission denied" in error:
        return _key_fix(conn, key_state)
    if re.search(
        r"Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED", error, re.IGNORECASE
    ):
        host = conn.host if conn.port == 22 else f"[{conn.host}]:{conn.port}"
        return (
            f"the server's host key is not the one known_hosts holds: if the server was "
            f"reinstalled, check its fingerprint on its console (ssh-keygen -lf "
            f"/etc/ssh/ssh_host_ed25519_key.pub), then ssh-keygen -R '{host}' and connect once "
            f"to accept the new key; otherwise do not connect (the connection may be intercepted)"
        )
    if re.search(r"Connection refused", error, re.IGNORECASE):
        return (
            f"nothing accepts SSH on {where}: check that sshd runs on the server "
            f"(systemctl status sshd on its console) and that ansible_port ({conn.port}) is "
            f"its port"
        )
    if re.search(r"timed out|No route to host|Network is unreachable", error, re.IGNORECASE):
        return (
            f"{where} does not answer: the server is down, ansible_host ({conn.host}) is wrong, "
            f"or a firewall drops SSH on the way"
        )
    if re.search(r"Could not resolve hostname|Name or service not known", error, re.IGNORECASE):
        return (
            f"ansible_host '{conn.host}' does not resolve: fix the name in {INVENTORY} "
            "or use the server's IP"
        )
    known = explain(error)
    if known is not None:
        return known.fix
    return f"run {conn.ssh('echo test')} to see the SSH client's full answer (add -v for details)"


def judge_ssh(host: str, findings: Findings, key_state: KeyState | None = None) -> CheckResult:
    conn = Connection.of(findings)
    ssh = findings.get("ssh") or {}
    if ssh.get("unreachable"):
        error = _ssh_error(ssh)
        # Without ansible_user, ssh logs in with the local user's name: often the real mistake.
        unset = "" if conn.user else " (ansible_user is not set: ssh used your local user name)"
        return CheckResult(
            SSH,
            host,
            "failed",
            f"cannot log in as {conn.login} on port {conn.port}{unset}: {error}",
            _ssh_fix(error, conn, key_state),
        )
    if not _ran(ssh):
        return CheckResult(
            SSH, host, "failed", "the SSH probe did not run", "run `stagectl doctor` again"
        )
    system = os_name(str(ssh.get("stdout") or "")) or "an OS without /etc/os-release"
    key = f" with {conn.key}" if conn.key else ""
    return CheckResult(
        SSH, host, "ok", f"logged in as {conn.login} on port {conn.port}{key} ({system})"
    )


# --- Python, sudo, groups -----------------------------------------------------------------------


def _python_install(family: str, conn: Connection) -> str:
    installs = {
        "Archlinux": conn.ssh("sudo pacman -Syu --needed python --noconfirm"),
        "Debian": conn.ssh("sudo apt-get install -y python3"),
    }
    if family in installs:
        commands = installs[family]
    else:
        commands = f"{installs['Archlinux']} (Arch) or {installs['Debian']} (Debian)"
    bootstrap = f"`stagectl bootstrap --as root@{conn.host}`"
    return f"install Python: {commands}; or run {bootstrap}, which does it"


def judge_python(host: str, findings: Findings) -> CheckResult:
    conn = Connection.of(findings)
    family = os_family(str((findings.get("ssh") or {}).get("stdout") or ""))
    result = findings.get("python") or {}
    text = _output(result)
    if _rc(result) != 0:
        return CheckResult(
            PYTHON,
            host,
            "failed",
            "python3 is not installed (Ansible's modules need it: \"The module "
            "interpreter '/usr/bin/python3' was not found\")",
            _python_install(family, conn),
        )
    version = _version(text.split("Python", 1)[-1]) or ()
    path = text.splitlines()[0] if text else "python3"
    if version and version[:2] < MIN_PYTHON:
        return CheckResult(
            PYTHON,
            host,
            "failed",
            f"{path} is Python {_dotted(version)}; Ansible needs {_dotted(MIN_PYTHON)} or later",
            _python_install(family, conn),
        )
    return CheckResult(
        PYTHON, host, "ok", f"{path}: Python {_dotted(version) if version else '(version unknown)'}"
    )


def _sudoers_fix(conn: Connection) -> str:
    user = conn.user or "ansible"
    return (
        "configure passwordless sudo, on the server as "
        f"root or another sudo user: echo '{user} ALL=(ALL) NOPASSWD:ALL' | "
        f"sudo tee /etc/sudoers.d/{user} && sudo chmod 440 /etc/sudoers.d/{user}; "
        f"then {conn.ssh('sudo whoami')} must print root "
        f"(`stagectl bootstrap --as root@{conn.host}` sets this up)"
    )


def judge_sudo(host: str, findings: Findings) -> CheckResult:
    conn = Connection.of(findings)
    sudo = findings.get("sudo") or {}
    text = _message(sudo)
    if _rc(sudo) == 127 or "sudo: command not found" in text or "sudo: not found" in text:
        return CheckResult(
            SUDO,
            host,
            "failed",
            "sudo is not installed",
            "as root on the server: pacman -S sudo (Arch) or apt-get install sudo "
            f"(Debian); then: {_sudoers_fix(conn)}",
        )
    if _rc(sudo) != 0:
        return CheckResult(
            SUDO,
            host,
            "failed",
            f"sudo -n true as {conn.user or 'the login user'}: {text}",
            _sudoers_fix(conn),
        )
    whoami = findings.get("whoami") or {}
    if not _ran(whoami) or whoami.get("failed") or _rc(whoami) not in (0, None):
        return CheckResult(
            SUDO, host, "failed", f"Ansible's become failed: {_message(whoami)}", _sudoers_fix(conn)
        )
    who = _output(whoami).splitlines()[-1:] or [""]
    if who[0].strip() != "root":
        return CheckResult(
            SUDO,
            host,
            "failed",
            f"sudo gives '{who[0].strip()}', not root",
            f"the sudoers rule of {conn.user or 'the user'} must allow running as root: "
            + _sudoers_fix(conn),
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
    if _rc(result) != 0:
        return CheckResult(
            SUDO_GROUP,
            host,
            "failed",
            f"id -nG failed: {_message(result)}",
            f"check the account of {conn.user} on the server",
        )
    groups = _output(result).split()
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


# --- ports --------------------------------------------------------------------------------------


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
    if _rc(ss) != 0:
        text = _message(ss)
        if "ss: command not found" in text or _rc(ss) == 127:
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
    published = parse_docker_ps(str(containers.get("stdout") or "")) if _rc(containers) == 0 else []
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


# --- Docker and Compose -------------------------------------------------------------------------


def judge_docker(host: str, findings: Findings) -> CheckResult:
    result = findings.get("docker") or {}
    text = _message(result)
    if _rc(result) != 0:
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
    version = _version(text)
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
            f"Docker engine {text} is older than {_dotted(MIN_DOCKER)}",
            "upgrade Docker (Arch: pacman -Syu docker; Debian: a newer release's docker.io)",
        )
    return CheckResult(DOCKER, host, "ok", f"Docker engine {text}")


def judge_compose(host: str, findings: Findings) -> CheckResult:
    result = findings.get("compose") or {}
    text = _message(result)
    if _rc(result) != 0:
        known = explain(text)
        fix = (
            known.fix
            if known is not None
            else "run `sudo docker compose version` on the server to see why"
        )
        return CheckResult(COMPOSE, host, "failed", f"docker compose version failed: {text}", fix)
    version = _version(text)
    if version is None or version[:2] < MIN_COMPOSE:
        return CheckResult(
            COMPOSE,
            host,
            "failed",
            f"Docker Compose {text} is not v2 >= {_dotted(MIN_COMPOSE)} "
            "(community.docker.docker_compose_v2 needs it)",
            "install the Compose v2 plugin >= 2.18 (Arch: docker-compose; Debian 13: "
            "docker-compose; Debian 12: docker-compose-plugin from Docker's repository)",
        )
    return CheckResult(COMPOSE, host, "ok", f"Docker Compose {text}")


# --- stacks -------------------------------------------------------------------------------------


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


def _deploy_command(project: str) -> str:
    return (
        "stagectl deploy" if project == SHARED_PROJECT else f"stagectl deploy --project {project}"
    )


def judge_stack(
    host: str, project: str, services: Sequence[ExpectedService], result: Any
) -> CheckResult:
    name = f"{STACK} {project}"
    where = "/opt/shared" if project == SHARED_PROJECT else f"/opt/projects/{project}"
    if _rc(result) != 0:
        return CheckResult(
            name,
            host,
            "failed",
            f"docker compose -p {project} ps failed: {_message(result or {})}",
            "run it on the server to see why",
        )
    rows = parse_compose_ps(str(result.get("stdout") or ""))
    if not rows:
        return CheckResult(
            name,
            host,
            "failed",
            f"{NOT_DEPLOYED}: no containers of Compose project {project} ({where})",
            f"deploy it: {_deploy_command(project)}",
        )
    problems = stack_problems(services, rows)
    if not problems:
        return CheckResult(name, host, "ok", f"{len(services)} services running and healthy")
    detail = ", ".join(f"{svc.label}: {problem}" for svc, problem in problems)
    if all(problem == "missing" for _, problem in problems):
        fix = f"create the missing services: {_deploy_command(project)}"
    else:
        broken = next(svc for svc, problem in problems if problem != "missing")
        container = broken.container or f"$(docker compose -p {project} ps -q {broken.service})"
        fix = (
            f"see why on the server: docker logs --tail 50 {container}; docker inspect --format "
            f"'{{{{json .State.Health}}}}' {container}; after fixing the cause, "
            f"{_deploy_command(project)} recreates the stack (a service still 'starting' may just "
            "need its start period: run doctor again in a minute)"
        )
    return CheckResult(name, host, "failed", detail, fix)


def judge_stacks(host: str, findings: Findings, expect: Expectations) -> list[CheckResult]:
    results = {str(r.get("item")): r for r in findings.get("stacks") or [] if isinstance(r, dict)}
    return [
        judge_stack(host, project, services, results.get(project))
        for project, services in expect.stacks.items()
    ]


# --- Prometheus targets -------------------------------------------------------------------------


def _target_logs(target: dict[str, Any], expect: Expectations) -> str:
    """The command that shows the logs of a target's container."""
    labels = target.get("labels") or {}
    project = str(labels.get("project") or SHARED_PROJECT)
    # The job names the container kind (postgres-exporter); `service` the thing it describes.
    names = [str(labels.get(key) or "").replace("_", "-") for key in ("job", "service")]
    containers = expect.containers.get(project, {})
    container = next((containers[n] for n in names if n in containers), "")
    if container:
        return f"docker logs --tail 50 {container}"
    service = next((n for n in names if n), "SERVICE")
    return f"docker compose -p {project} logs --tail 50 {service}"


def _target_fix(down: Sequence[dict[str, Any]], expect: Expectations) -> str:
    errors = " ".join(str(t.get("lastError") or "") for t in down)
    lines: list[str] = []
    if re.search(r"no such host|connection refused|i/o timeout|deadline exceeded", errors, re.IGNORECASE):
        lines.append(
            "a target is down when its container is not running or not on the monitoring "
            "network: see the stack checks above, then `stagectl deploy` once they are fixed"
        )
    if re.search(r"\b40[13]\b|unauthorized|forbidden", errors, re.IGNORECASE):
        lines.append(
            "a target refused Prometheus' credentials: `stagectl deploy` writes matching ones"
        )
    if any("blackbox" in str((t.get("labels") or {}).get("job") or "") for t in down):
        lines.append(
            "a probe through the public 443 failed: check DNS and certificates "
            "(`stagectl dns`, `stagectl certs status`) and the main nginx"
        )
    lines.append(
        "the target list comes from the environment (`stagectl plan` shows prometheus.yml)"
    )
    logs = sorted({_target_logs(t, expect) for t in down})
    lines.append("logs, on the server: " + "; ".join(logs))
    return "\n".join(lines)


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
    return CheckResult(TARGETS, host, "failed", detail, _target_fix(down, expect))


# --- DNS ----------------------------------------------------------------------------------------


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
        return _skipped(
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
            return _skipped(
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


# --- one host -----------------------------------------------------------------------------------


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
        return [ssh, *_skipped(_checks_after_ssh(expect), host, "needs SSH")]
    python = judge_python(host, findings)
    sudo = judge_sudo(host, findings)
    results = [ssh, python, sudo, judge_group(host, findings)]
    # Everything after runs as root (raw probes: Python is needed by the targets check only).
    if sudo.status != "ok":
        return results + _skipped(_checks_after_sudo(expect), host, "needs passwordless sudo")
    results.append(judge_ports(host, findings, expect))
    docker = judge_docker(host, findings)
    results.append(docker)
    if docker.status != "ok":
        return results + _skipped(_checks_after_docker(expect), host, "needs Docker")
    compose = judge_compose(host, findings)
    results.append(compose)
    if compose.status != "ok":
        return results + _skipped(
            [*_stack_checks(expect), TARGETS], host, "needs Docker Compose v2"
        )
    stacks = judge_stacks(host, findings, expect)
    results += stacks
    if stacks[0].status == "failed" and stacks[0].detail.startswith(NOT_DEPLOYED):
        # Its Prometheus cannot answer: one failure with its fix says it all.
        return results + _skipped([TARGETS], host, f"needs the shared stack ({NOT_DEPLOYED})")
    if python.status != "ok":
        # Asked with the uri module: the password must not show in a process list (curl -u).
        return results + _skipped([TARGETS], host, "needs Python on the server")
    results.append(judge_targets(host, findings, expect))
    return results


# --- running it ---------------------------------------------------------------------------------


def _no_findings(host: str, run: RunResult) -> CheckResult:
    detail = run.failure_detail(host)
    known = explain(detail)
    return CheckResult(
        RUN,
        host,
        "failed",
        f"the doctor playbook did not finish for {host}: {detail}",
        known.fix
        if known
        else "run `ansible-playbook stagectl.staging.doctor` in the "
        "environment directory to see Ansible's full output",
    )


def run_doctor(
    root: Path,
    vault_password_file: Path,
    on_progress: ProgressCallback | None = None,
    *,
    resolver: Resolver | None = None,
) -> DoctorReport:
    """Run every check against every host of the environment at `root`. Raises
    EnvironmentInvalid/VaultError (StagectlError) when the environment itself is wrong."""
    started = time.monotonic()
    # allocate=False: doctor only reads, and must see the ports the server was deployed with.
    root = root.resolve()  # ansible-runner changes directory
    loaded = load_environment(root, vault_password_file=vault_password_file, allocate=False)
    expect = expectations(derive(loaded.env))
    hosts = list(loaded.env.inventory.staging.hosts)
    run, findings = run_reporting_playbook(
        "doctor", root, vault_password_file, hosts,
        out_variable="stagectl_doctor_out", on_progress=on_progress,
    )
    report = DoctorReport()
    for host in hosts:
        spec = loaded.env.inventory.staging.hosts[host]
        host_findings = findings.get(host)
        if host_findings is None:
            report.append(_no_findings(host, run))
            address = spec.ansible_host if spec else host
        else:
            key_state = (
                inspect_key(Connection.of(host_findings).key)
                if refused_key(host_findings)
                else None
            )
            report.extend(judge_host(host, host_findings, expect, key_state=key_state))
            address = Connection.of(host_findings).host or (spec.ansible_host if spec else host)
        report.extend(judge_dns(host, address, expect.dns_records, resolver or socket.getaddrinfo))
    report.seconds = time.monotonic() - started
    return report
