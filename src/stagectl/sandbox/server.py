"""`stagectl sandbox up/down/ssh`: a local rehearsal server on the local Docker engine.

The sandbox is a Debian 13 container booting systemd (image ``stagectl-sandbox/server``, run with
the options of SANDBOX_RUN_OPTIONS), reachable like a real server: SSH on 127.0.0.1:<ssh_port>
(root logs in with a key made for it), HTTP and HTTPS on 127.0.0.1 as well, so that the real
`bootstrap` and `deploy` run against it unchanged. It also gets:

* a named volume on /var/lib/docker: the inner Docker needs a real file system for overlay2,
  and its images, containers and volumes survive `down`/`up` and restarts;
* named volumes on the directories that hold the server's data (DATA_MOUNTS: /opt with the
  projects' PostgreSQL, Redis and media directories, the shared stack's data and the backups, and
  /etc/letsencrypt), so that `down` then `up` gives a fresh operating system with the data kept,
  like a reinstalled server with its data disk: bootstrap and deploy again, and every project
  comes back with its rows. Only `down --remove-data` deletes them;
* the stand-in image archive directory (see `stagectl.sandbox.archive`) mounted read-only at
  /opt/stagectl-images, because no registry is reachable: the `common` role loads the archive
  named in `docker.preload_archives` once Docker is installed.

Nothing here prints: progress goes to an optional callback, results come back as objects, and
failures raise the typed errors of `stagectl.sandbox.errors`.
"""

from __future__ import annotations

import errno
import os
import re
import shlex
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock

from stagectl import process, sshkeys
from stagectl.polling import wait_for
from stagectl.process import Completed
from stagectl.sandbox import docker_cli, mail_sink
from stagectl.sandbox.archive import SERVER_ARCHIVE_DIR, default_archive_dir
from stagectl.sandbox.errors import (
    DockerCommandFailed,
    NotASandbox,
    SandboxBootFailed,
    SandboxError,
    SandboxImageError,
    SandboxNotFound,
    SandboxPortBusy,
)
from stagectl.sandbox.images.builder import SANDBOX_RUN_OPTIONS, BuildError, ImageBuilder

Progress = Callable[[str], None]

DEFAULT_NAME = "stagectl-sandbox"
DEFAULT_SSH_PORT = 2222
DEFAULT_HTTP_PORT = 8080
DEFAULT_HTTPS_PORT = 8443
#: The host name inside the container: the inventory's host name, as on a real server.
HOSTNAME = "sandbox"
LOOPBACK = "127.0.0.1"

LABEL = "org.stagectl.sandbox"
LABEL_STATE_DIR = "org.stagectl.sandbox.state-dir"
LABEL_ARCHIVE_DIR = "org.stagectl.sandbox.archive-dir"

ROOT_KEY = "root_ed25519"
ANSIBLE_KEY = "ansible_ed25519"
KNOWN_HOSTS = "known_hosts"

BOOT_TIMEOUT = 120.0
SSH_TIMEOUT = 60.0
#: systemd on the server stops the inner Docker and its containers cleanly on SIGRTMIN+3;
#: Docker's default 10 s would cut that short and SIGKILL the whole tree.
STOP_TIMEOUT = 60
#: Server directory -> suffix of the named volume kept on it (see the module docstring).
DATA_MOUNTS: tuple[tuple[str, str], ...] = (("/opt", "opt"), ("/etc/letsencrypt", "letsencrypt"))
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")

Action = Literal["created", "started", "running", "restarted"]


@dataclass(frozen=True)
class SandboxInfo:
    """Everything needed to reach a running sandbox and to write an environment for it."""

    name: str
    container_id: str
    image: str
    ssh_host: str
    ssh_port: int
    http_port: int
    https_port: int
    #: Address on the local Docker bridge: reachable from this machine only. Tests use it to see
    #: which ports answer "from outside" the server, as a real network neighbour would.
    container_ip: str
    state_dir: Path
    root_key: Path
    ansible_key: Path
    known_hosts: Path
    volume: str
    archive_dir: Path
    #: This machine's addresses on the server's Docker networks (their gateways): where the
    #: machine's tools and tests come from, as the server's nginx sees them.
    host_addresses: tuple[str, ...] = ()
    #: The named volumes on the server's data directories (DATA_MOUNTS), in that order.
    data_volumes: tuple[str, ...] = ()
    #: What the call that returned this did.
    action: Action = "running"
    systemd_state: str = ""
    failed_units: tuple[str, ...] = ()
    #: The user whose key login was proven (root before hardening, ansible after it).
    login_user: str = "root"

    @property
    def root_public_key(self) -> Path:
        return _pub(self.root_key)

    @property
    def ansible_public_key(self) -> Path:
        return _pub(self.ansible_key)

    @property
    def server_archive_dir(self) -> str:
        return SERVER_ARCHIVE_DIR


@dataclass(frozen=True)
class SandboxStatus:
    name: str
    exists: bool
    #: Docker's word: running, exited, created, paused, restarting, dead; "absent" when missing.
    state: str
    container_id: str = ""
    image: str = ""
    #: False when the container runs an older sandbox image than this stagectl would build.
    image_current: bool = True
    ports: dict[int, int] = field(default_factory=dict)
    container_ip: str = ""
    systemd_state: str = ""
    volume: str = ""
    volume_exists: bool = False
    #: The data volumes (DATA_MOUNTS) that exist now.
    data_volumes: tuple[str, ...] = ()
    info: SandboxInfo | None = None


@dataclass(frozen=True)
class DownResult:
    name: str
    container_removed: bool
    volume: str
    volume_removed: bool
    #: Every volume of the sandbox (Docker's and the data ones) that was there.
    volumes: tuple[str, ...] = ()


# --- paths and keys -----------------------------------------------------------------------------


def default_state_dir(name: str = DEFAULT_NAME) -> Path:
    """~/.local/state/stagectl/sandbox/<name> (XDG_STATE_HOME honoured)."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "stagectl" / "sandbox" / name


def volume_name(name: str) -> str:
    return f"{name}-docker"


def data_volume_names(name: str) -> tuple[str, ...]:
    return tuple(f"{name}-{suffix}" for _path, suffix in DATA_MOUNTS)


def all_volume_names(name: str) -> tuple[str, ...]:
    return (volume_name(name), *data_volume_names(name))


def _pub(key: Path) -> Path:
    return key.with_name(key.name + ".pub")


def _check_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise SandboxError(
            f"'{name}' is not a valid sandbox name",
            hint="use letters, digits, '_', '.' and '-', starting with a letter or digit "
            "(it names a Docker container and volume)",
        )


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def ensure_key_pair(path: Path, comment: str) -> Path:
    """An ed25519 key pair at PATH and PATH.pub (both 0600), made once and then kept: the
    environment and the server's authorized_keys refer to it."""
    pub = _pub(path)
    if not path.exists():
        pair = sshkeys.new_key_pair(comment)
        sshkeys.write_private_key(path, pair.private)
        pub.write_text(pair.public + "\n")
    elif not pub.exists():
        pub.write_text(sshkeys.public_line(path, comment) + "\n")
    path.chmod(0o600)
    pub.chmod(0o600)
    return path


def _state_lock(state_dir: Path) -> FileLock:
    """Two `up`s of one sandbox at once (two shells, parallel tests) would race on docker run
    and on the key files: the second waits, then finds the first one's sandbox."""
    return FileLock(state_dir / ".lock")


# --- ports --------------------------------------------------------------------------------------


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like a server's bind: a port left in TIME_WAIT is free to listen on.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_port() -> int:
    """A port free on 127.0.0.1 right now, chosen by the kernel."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _resolve_ports(wanted: dict[str, int]) -> dict[str, int]:
    """0 becomes a free port picked now. Explicit, not Docker's `-p 127.0.0.1::22`: Docker picks
    again on every start, and the environment's ansible_port must survive a restart."""
    explicit = [port for port in wanted.values() if port]
    if len(set(explicit)) != len(explicit):
        raise SandboxError(
            f"the sandbox's ports must differ: {wanted}",
            hint="give SSH, HTTP and HTTPS each their own port (0 picks a free one)",
        )
    resolved: dict[str, int] = {}
    for what, port in wanted.items():
        while port == 0:
            candidate = free_port()
            port = candidate if candidate not in resolved.values() else 0
        resolved[what] = port
    busy = {what: port for what, port in resolved.items() if not _port_free(port)}
    if busy:
        raise SandboxPortBusy(busy)
    return resolved


_BUSY_RE = re.compile(r"(?:Bind for [\d.]+:|listen tcp4? [\d.]+:)(\d+)")


def _busy_from_docker(exc: DockerCommandFailed, ports: dict[str, int]) -> SandboxPortBusy | None:
    """Docker's words for a port taken between our check and its bind, as a typed error."""
    match = _BUSY_RE.search(exc.stderr)
    if not match and "port is already allocated" not in exc.stderr:
        return None
    port = int(match.group(1)) if match else 0
    taken = {what: p for what, p in ports.items() if p == port} or dict(ports)
    return SandboxPortBusy(taken, exc.stderr.strip().splitlines()[-1])


# --- container facts ----------------------------------------------------------------------------


def _container(name: str) -> dict[str, Any] | None:
    data = docker_cli.inspect("container", name)
    if data is not None and LABEL not in (data["Config"].get("Labels") or {}):
        raise NotASandbox(
            f"container '{name}' exists but was not made by `stagectl sandbox up`",
            hint="pick another sandbox name; stagectl never changes or removes containers it "
            "did not create",
        )
    return data


def _published(data: dict[str, Any]) -> dict[int, int]:
    """Container port -> host port on 127.0.0.1, from `docker inspect`."""
    result: dict[int, int] = {}
    for key, bindings in (data["NetworkSettings"].get("Ports") or {}).items():
        for binding in bindings or []:
            if binding.get("HostIp") in (LOOPBACK, "") and binding.get("HostPort"):
                result[int(key.split("/")[0])] = int(binding["HostPort"])
    if not result:
        # A stopped container has no live bindings: its configured ones are what it will get.
        for key, bindings in (data["HostConfig"].get("PortBindings") or {}).items():
            for binding in bindings or []:
                if binding.get("HostPort"):
                    result[int(key.split("/")[0])] = int(binding["HostPort"])
    return result


def _container_ip(data: dict[str, Any]) -> str:
    networks = data["NetworkSettings"].get("Networks") or {}
    for network in networks.values():
        if network.get("IPAddress"):
            return str(network["IPAddress"])
    return str(data["NetworkSettings"].get("IPAddress") or "")


def _gateways(data: dict[str, Any]) -> tuple[str, ...]:
    networks = data["NetworkSettings"].get("Networks") or {}
    return tuple(sorted({str(n["Gateway"]) for n in networks.values() if n.get("Gateway")}))


def _info(data: dict[str, Any], action: Action, **extra: Any) -> SandboxInfo:
    labels = data["Config"].get("Labels") or {}
    name = data["Name"].lstrip("/")
    state_dir = Path(labels.get(LABEL_STATE_DIR) or default_state_dir(name))
    ports = _published(data)
    return SandboxInfo(
        name=name,
        container_id=data["Id"],
        image=data["Config"]["Image"],
        ssh_host=LOOPBACK,
        ssh_port=ports.get(22, 0),
        http_port=ports.get(80, 0),
        https_port=ports.get(443, 0),
        container_ip=_container_ip(data),
        host_addresses=_gateways(data),
        state_dir=state_dir,
        root_key=state_dir / ROOT_KEY,
        ansible_key=state_dir / ANSIBLE_KEY,
        known_hosts=state_dir / KNOWN_HOSTS,
        volume=volume_name(name),
        data_volumes=data_volume_names(name),
        archive_dir=Path(labels.get(LABEL_ARCHIVE_DIR) or ""),
        action=action,
        **extra,
    )


# --- inside the server --------------------------------------------------------------------------


def _exec(name: str, script: str, *, input_text: str | None = None, timeout: float = 60) -> str:
    args = ["exec", *(["-i"] if input_text is not None else []), name, "sh", "-c", script]
    return docker_cli.run(*args, input_text=input_text, timeout=timeout).stdout


def _authorize_root_key(name: str, public_key: Path) -> None:
    """Append root's key once (through docker exec, not SSH: there is no other way in yet).
    Appending keeps keys a user added by hand."""
    key = public_key.read_text().strip()
    _exec(
        name,
        'k=$(cat); install -d -m 0700 /root/.ssh; f=/root/.ssh/authorized_keys; touch "$f"; '
        'chmod 0600 "$f"; grep -qxF "$k" "$f" || printf "%s\\n" "$k" >> "$f"',
        input_text=key + "\n",
    )


def _pin_host_keys(name: str, ssh_port: int, known_hosts: Path) -> None:
    """Write the server's host keys into our own known_hosts, read through docker exec (a channel
    we trust) rather than accepted on first use: a new container gets new keys (made at first
    boot), and a stale line would otherwise make every SSH login fail."""
    keys = _exec(name, "cat /etc/ssh/ssh_host_*_key.pub 2>/dev/null || true")
    host = LOOPBACK if ssh_port == 22 else f"[{LOOPBACK}]:{ssh_port}"
    lines = [f"{host} {' '.join(line.split()[:2])}" for line in keys.splitlines() if line.strip()]
    if not lines:
        raise SandboxBootFailed(
            f"sandbox '{name}' has no SSH host keys (ssh.service did not start)",
            hint=f"look at: docker exec {name} systemctl status ssh",
        )
    tmp = known_hosts.with_name(f".{known_hosts.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.chmod(0o600)
    tmp.replace(known_hosts)


def _wait_for_boot(name: str, timeout: float) -> tuple[str, tuple[str, ...]]:
    """Wait until systemd reports running (or degraded: a unit failed, the server is up)."""
    deadline = time.monotonic() + timeout
    state = ""

    def booted() -> str | None:
        nonlocal state
        left = max(1, int(deadline - time.monotonic()))
        wait = ["timeout", str(left), "systemctl", "is-system-running", "--wait"]
        proc = docker_cli.run("exec", name, *wait, check=False, timeout=left + 15)
        state = proc.stdout.strip() or proc.stderr.strip()
        if state in ("running", "degraded"):
            return state
        data = docker_cli.inspect("container", name)
        if data is None or not data["State"].get("Running"):
            logs = docker_cli.run("logs", "--tail", "20", name, check=False).stdout
            raise SandboxBootFailed(
                f"sandbox '{name}' stopped while booting:\n{logs.strip()}",
                hint=f"see `docker logs {name}`",
            )
        return None

    state = wait_for(booted, timeout=timeout, interval=0.5, on_timeout=lambda: SandboxBootFailed(
        f"sandbox '{name}' did not finish booting within {timeout:.0f}s (systemd says: {state or 'nothing'})",
        hint=f"see `docker exec {name} systemctl list-jobs` and `docker logs {name}`",
    ))
    failed: tuple[str, ...] = ()
    if state == "degraded":
        out = docker_cli.run(
            "exec", name, "systemctl", "--failed", "--plain", "--no-legend", check=False
        ).stdout
        failed = tuple(line.split()[0] for line in out.splitlines() if line.strip())
    return state, failed


def ssh_options(known_hosts: Path) -> list[str]:
    """Host keys are pinned (see `_pin_host_keys`): strict checking against our own file only, so
    neither ~/.ssh/known_hosts nor the user's agent keys get involved."""
    return [
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "IdentitiesOnly=yes",
    ]  # fmt: skip


def ssh_command(
    info: SandboxInfo, user: str = "root", command: list[str] | None = None
) -> list[str]:
    """The ssh command line for `stagectl sandbox ssh` (interactive when no command is given).
    root uses root's key; any other user the ansible key (the bootstrap authorizes it).
    `command` is an argv: ssh hands the server's shell one string, so its words are quoted into
    one (`ls 'a b'` stays two words there, not three)."""
    key = info.root_key if user == "root" else info.ansible_key
    return [
        "ssh", "-i", str(key), "-p", str(info.ssh_port), *ssh_options(info.known_hosts),
        f"{user}@{info.ssh_host}", *([shlex.join(command)] if command else []),
    ]  # fmt: skip


def _try_login(info: SandboxInfo, user: str) -> Completed:
    cmd = ssh_command(info, user, ["true"])
    cmd[1:1] = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"]
    return process.run(cmd, timeout=20, package="openssh-client")


def _wait_for_login(info: SandboxInfo, timeout: float) -> str:
    """Prove key login works; returns who got in. root first; once the `security` role has run,
    root may not log in (PermitRootLogin no), and the bootstrapped `ansible` user is the proof."""
    errors: list[str] = []

    def logged_in() -> str | None:
        errors.clear()
        for user in ("root", "ansible"):
            proc = _try_login(info, user)
            if proc.returncode == 0:
                return user
            errors.append(f"{user}: {proc.stderr.strip() or f'exit {proc.returncode}'}")
        return None

    return wait_for(logged_in, timeout=timeout, interval=1, on_timeout=lambda: SandboxBootFailed(
        f"no SSH key login to sandbox '{info.name}' on {info.ssh_host}:{info.ssh_port} "
        f"within {timeout:.0f}s ({'; '.join(errors)})",
        hint=f"see `docker exec {info.name} systemctl status ssh`",
    ))


# --- lifecycle ----------------------------------------------------------------------------------


def _build_image(builder: ImageBuilder | None, on_progress: Progress) -> str:
    builder = builder or ImageBuilder(out=on_progress)
    try:
        builder.build(["sandbox-server"])
    except BuildError as exc:
        raise SandboxImageError(
            f"cannot build the sandbox server image: {exc}",
            hint="run `scripts/testbed-setup.sh validators docker` (debootstrap, Docker) first",
        ) from None
    return builder.ref("sandbox-server")


def _ensure_volume(name: str, volume: str) -> str:
    data = docker_cli.inspect("volume", volume)
    if data is None:
        docker_cli.run("volume", "create", "--label", f"{LABEL}={name}", volume)
    elif LABEL not in (data.get("Labels") or {}):
        raise NotASandbox(
            f"volume '{volume}' exists but was not made by `stagectl sandbox up`",
            hint="pick another sandbox name; stagectl never uses volumes it did not create",
        )
    return volume


def _run_container(
    name: str, image: str, ports: dict[str, int], state_dir: Path, archive_dir: Path
) -> None:
    volume = _ensure_volume(name, volume_name(name))
    data_mounts = [
        option
        for (path, _suffix), data_volume in zip(DATA_MOUNTS, data_volume_names(name), strict=True)
        for option in ("-v", f"{_ensure_volume(name, data_volume)}:{path}")
    ]
    args = [
        "run", "-d", "--name", name, "--hostname", HOSTNAME,
        "--label", f"{LABEL}={name}",
        "--label", f"{LABEL_STATE_DIR}={state_dir}",
        "--label", f"{LABEL_ARCHIVE_DIR}={archive_dir}",
        *SANDBOX_RUN_OPTIONS,
        # A reboot from inside (`systemctl reboot`, `stagectl upgrade --reboot`) ends the
        # container: Docker starts it again, as a machine's firmware would boot it.
        "--restart", "unless-stopped",
        "-v", f"{volume}:/var/lib/docker",
        *data_mounts,
        "-v", f"{archive_dir}:{SERVER_ARCHIVE_DIR}:ro",
        "-p", f"{LOOPBACK}:{ports['ssh']}:22",
        "-p", f"{LOOPBACK}:{ports['http']}:80",
        "-p", f"{LOOPBACK}:{ports['https']}:443",
        image,
    ]  # fmt: skip
    try:
        docker_cli.run(*args, timeout=180)
    except DockerCommandFailed as exc:
        # `docker run` leaves a created-but-not-started container behind when start fails.
        docker_cli.run("rm", "-f", name, check=False)
        busy = _busy_from_docker(exc, ports)
        raise (busy or exc) from None


def _start(name: str, ports: dict[int, int]) -> None:
    try:
        docker_cli.run("start", name, timeout=180)
    except DockerCommandFailed as exc:
        named = {"ssh": ports.get(22, 0), "http": ports.get(80, 0), "https": ports.get(443, 0)}
        busy = _busy_from_docker(exc, named)
        raise (busy or exc) from None


def _make_ready(
    name: str, state_dir: Path, action: Action, boot_timeout: float, on_progress: Progress
) -> SandboxInfo:
    """Keys authorized, systemd booted, host keys pinned, key login proven."""
    ensure_key_pair(state_dir / ROOT_KEY, f"root@{name}")
    ensure_key_pair(state_dir / ANSIBLE_KEY, f"ansible@{name}")
    _authorize_root_key(name, _pub(state_dir / ROOT_KEY))
    on_progress(f"waiting for systemd in '{name}' to boot")
    state, failed = _wait_for_boot(name, boot_timeout)
    data = docker_cli.inspect("container", name)
    if data is None:
        raise SandboxNotFound(name)
    ports = _published(data)
    _pin_host_keys(name, ports.get(22, 0), state_dir / KNOWN_HOSTS)
    # Before any deploy: the environment's alerting.smtp_ca_file points at it.
    mail_sink.write_certificate(name)
    info = _info(data, action, systemd_state=state, failed_units=failed)
    if info.state_dir != state_dir:
        # A container made with another state dir: this call's keys are the ones authorized.
        info = _with_state_dir(info, state_dir)
    on_progress(f"waiting for SSH key login on {info.ssh_host}:{info.ssh_port}")
    user = _wait_for_login(info, SSH_TIMEOUT)
    return replace(info, login_user=user)


def _with_state_dir(info: SandboxInfo, state_dir: Path) -> SandboxInfo:
    return replace(
        info,
        state_dir=state_dir,
        root_key=state_dir / ROOT_KEY,
        ansible_key=state_dir / ANSIBLE_KEY,
        known_hosts=state_dir / KNOWN_HOSTS,
    )


def up(
    name: str = DEFAULT_NAME,
    ssh_port: int = DEFAULT_SSH_PORT,
    state_dir: Path | None = None,
    on_progress: Progress | None = None,
    *,
    http_port: int = DEFAULT_HTTP_PORT,
    https_port: int = DEFAULT_HTTPS_PORT,
    archive_dir: Path | None = None,
    boot_timeout: float = BOOT_TIMEOUT,
    builder: ImageBuilder | None = None,
) -> SandboxInfo:
    """Create (or start, or find running) the sandbox and return how to reach it.

    Ports are host ports on 127.0.0.1; 0 picks a free one (kept across restarts). An existing
    container keeps the ports, image and mounts it was created with: `down` first to change them.
    `info.action` says what happened: created, started (was stopped) or running (nothing to do
    but re-check keys, boot state and login).
    """
    progress: Progress = on_progress or (lambda _line: None)
    _check_name(name)
    docker_cli.require_daemon()
    state = _private_dir((state_dir or default_state_dir(name)).expanduser().resolve())
    archive = (archive_dir or default_archive_dir()).expanduser().resolve()
    with _state_lock(state):
        data = _container(name)
        if data is not None and data["State"].get("Running"):
            return _make_ready(name, state, "running", boot_timeout, progress)
        if data is not None:
            progress(f"starting stopped sandbox '{name}'")
            _start(name, _published(data))
            return _make_ready(name, state, "started", boot_timeout, progress)
        image = _build_image(builder, progress)
        ports = _resolve_ports({"ssh": ssh_port, "http": http_port, "https": https_port})
        archive.mkdir(parents=True, exist_ok=True)
        # New host keys come with a new container: drop the old pins before anything connects.
        (state / KNOWN_HOSTS).unlink(missing_ok=True)
        progress(
            f"creating sandbox '{name}' from {image} (ssh {ports['ssh']}, http {ports['http']}, "
            f"https {ports['https']} on {LOOPBACK})"
        )
        _run_container(name, image, ports, state, archive)
        return _make_ready(name, state, "created", boot_timeout, progress)


def restart(
    name: str = DEFAULT_NAME,
    on_progress: Progress | None = None,
    *,
    boot_timeout: float = BOOT_TIMEOUT,
) -> SandboxInfo:
    """Stop and start the server, like a reboot: the container's file system and the Docker
    volume persist, /run is a fresh tmpfs, and every service must come back by itself."""
    progress: Progress = on_progress or (lambda _line: None)
    _check_name(name)
    docker_cli.require_daemon()
    data = _container(name)
    if data is None:
        raise SandboxNotFound(name)
    state = _info(data, "restarted").state_dir
    _private_dir(state)
    with _state_lock(state):
        progress(f"stopping sandbox '{name}' (systemd shuts down, up to {STOP_TIMEOUT}s)")
        docker_cli.run("stop", "-t", str(STOP_TIMEOUT), name, timeout=STOP_TIMEOUT + 60)
        progress(f"starting sandbox '{name}'")
        _start(name, _published(data))
        return _make_ready(name, state, "restarted", boot_timeout, progress)


def down(
    name: str = DEFAULT_NAME, remove_data: bool = False, on_progress: Progress | None = None
) -> DownResult:
    """Stop and remove the container. Its volumes (the inner Docker's images, containers and
    volumes; the server's data directories, DATA_MOUNTS) are kept unless `remove_data`, and the
    next `up` mounts them again; the keys in the state dir are kept either way, so an environment
    written for this sandbox stays valid. Missing pieces are no error."""
    progress: Progress = on_progress or (lambda _line: None)
    _check_name(name)
    docker_cli.require_daemon()
    data = _container(name)
    removed = False
    if data is not None:
        if data["State"].get("Running"):
            progress(f"stopping sandbox '{name}' (systemd shuts down, up to {STOP_TIMEOUT}s)")
            docker_cli.run("stop", "-t", str(STOP_TIMEOUT), name, timeout=STOP_TIMEOUT + 60)
        progress(f"removing container '{name}'")
        docker_cli.run("rm", "-f", name)
        removed = True
    present = []
    for volume in all_volume_names(name):
        vol = docker_cli.inspect("volume", volume)
        if vol is None:
            continue
        if remove_data and LABEL not in (vol.get("Labels") or {}):
            raise NotASandbox(
                f"volume '{volume}' was not made by `stagectl sandbox up`; not removing it",
                hint="remove it yourself if it is yours to remove, or leave it",
            )
        present.append(volume)
    if remove_data:
        for volume in present:
            progress(f"removing volume '{volume}'")
            docker_cli.run("volume", "rm", volume)
    return DownResult(name, removed, volume_name(name), remove_data and bool(present), tuple(present))


def status(name: str = DEFAULT_NAME) -> SandboxStatus:
    """What exists of the sandbox, without changing anything."""
    _check_name(name)
    docker_cli.require_daemon()
    volume = volume_name(name)
    volume_exists = docker_cli.inspect("volume", volume) is not None
    data_volumes = tuple(v for v in data_volume_names(name) if docker_cli.inspect("volume", v))
    data = _container(name)
    if data is None:
        return SandboxStatus(
            name, False, "absent", volume=volume, volume_exists=volume_exists,
            data_volumes=data_volumes,
        )
    running = bool(data["State"].get("Running"))
    systemd_state = ""
    if running:
        proc = docker_cli.run(
            "exec", name, "systemctl", "is-system-running", check=False, timeout=30
        )
        systemd_state = proc.stdout.strip()
    image = data["Config"]["Image"]
    # The key is computed from the image recipe's files, without building anything.
    current = ImageBuilder(out=lambda _line: None).ref("sandbox-server")
    return SandboxStatus(
        name=name,
        exists=True,
        state=str(data["State"].get("Status", "")),
        container_id=data["Id"],
        image=image,
        image_current=docker_cli.image_id(current) == data["Image"],
        ports=_published(data),
        container_ip=_container_ip(data) if running else "",
        systemd_state=systemd_state,
        volume=volume,
        volume_exists=volume_exists,
        data_volumes=data_volumes,
        info=_info(data, "running", systemd_state=systemd_state) if running else None,
    )


def ssh_common_args(info: SandboxInfo) -> str:
    """`ansible_ssh_common_args` for the environment: the same pinned host keys as `ssh_command`.
    Ansible splits it with shlex, so the path is quoted."""
    return shlex.join(ssh_options(info.known_hosts))
