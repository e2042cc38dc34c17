"""A systemd "server" container for role tests, and running playbooks at it.

Tests reach the server only through its SSH port published on 127.0.0.1, plus, for the firewall
test, its address on the local Docker bridge (on this machine, never beyond it).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from stagectl import collection
from stagectl.environment import ALL_VARS, INVENTORY
from stagectl.sandbox.images.builder import SANDBOX_RUN_OPTIONS

SSH_OPTIONS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
               "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10"]

RECAP_RE = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)\s+ignored=(?P<ignored>\d+)",
    re.MULTILINE,
)


def docker(*args: str, timeout: float = 120, check: bool = True, input: bytes | None = None,
           text: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, timeout=timeout, check=check,
                          input=input, text=text if input is None else False)


@dataclass
class Sandbox:
    image: str
    name: str = field(default_factory=lambda: f"stagectl-roletest-{uuid.uuid4().hex[:8]}")
    port: int = 0
    address: str = ""

    @property
    def volume(self) -> str:
        return f"{self.name}-docker"

    def start(self, boot_timeout: float = 90) -> None:
        docker("volume", "create", self.volume)
        docker("run", "-d", "--name", self.name, "--hostname", "staging-server", *SANDBOX_RUN_OPTIONS,
               "-v", f"{self.volume}:/var/lib/docker", "-p", "127.0.0.1::22", self.image)
        self.refresh()
        self.wait_booted(boot_timeout)

    def refresh(self) -> None:
        """The published SSH port and the bridge address (both change when the container restarts)."""
        self.port = int(docker("port", self.name, "22/tcp").stdout.strip().splitlines()[0].rsplit(":", 1)[1])
        self.address = docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", self.name).stdout.strip()

    def wait_booted(self, boot_timeout: float = 90) -> None:
        # "running", or "degraded" when a unit failed; bounded either way. Until systemd has its
        # bus up, systemctl cannot even ask.
        deadline = time.monotonic() + boot_timeout
        while True:
            left = max(1, int(deadline - time.monotonic()))
            state = self.sh(f"timeout {left} systemctl is-system-running --wait", check=False)
            if state.stdout.strip() in ("running", "degraded"):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"sandbox did not boot within {boot_timeout}s: "
                                   f"{state.stdout.strip()} {state.stderr.strip()}")
            time.sleep(0.5)

    def sh(self, script: str, *, check: bool = True, timeout: float = 300,
           input: bytes | None = None) -> subprocess.CompletedProcess:
        args = ["exec"] + (["-i"] if input is not None else []) + [self.name, "sh", "-c", script]
        result = docker(*args, timeout=timeout, check=False, input=input)
        if input is not None:
            result.stdout = result.stdout.decode(errors="replace")
            result.stderr = result.stderr.decode(errors="replace")
        if check and result.returncode != 0:
            raise RuntimeError(f"sandbox: {script!r} failed ({result.returncode}): "
                               f"{result.stdout}{result.stderr}")
        return result

    def authorize_root_key(self, public_key: Path) -> None:
        self.sh("install -d -m 0700 /root/.ssh && cat > /root/.ssh/authorized_keys "
                "&& chmod 0600 /root/.ssh/authorized_keys", input=public_key.read_bytes())

    def ssh(self, user: str, key: Path | None, command: str, *extra: str,
            timeout: float = 60) -> subprocess.CompletedProcess:
        args = ["ssh", "-p", str(self.port), *SSH_OPTIONS, "-o", "BatchMode=yes", *extra]
        if key is not None:
            args += ["-i", str(key), "-o", "IdentitiesOnly=yes"]
        return subprocess.run([*args, f"{user}@127.0.0.1", command], capture_output=True,
                              text=True, timeout=timeout, check=False)

    def wait_for_ssh(self, user: str, key: Path, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            result = self.ssh(user, key, "true")
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"no SSH to {user}@127.0.0.1:{self.port}: {result.stderr}")
            time.sleep(1)

    def remove(self) -> None:
        docker("rm", "-f", "-v", self.name, check=False, timeout=120)
        docker("volume", "rm", "-f", self.volume, check=False, timeout=120)


def make_key(path: Path, comment: str) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, capture_output=True)
    return path


def set_host(env_root: Path, port: int, private_key: Path) -> None:
    """The environment's one host becomes 127.0.0.1:port (never the example's address), logging in
    as ansible with `private_key`. The host entry takes only ansible_* variables (model.Host)."""
    path = env_root / INVENTORY
    data = yaml.safe_load(path.read_text())
    hosts = data["staging"]["hosts"]
    (name,) = hosts
    hosts[name] = {
        "ansible_host": "127.0.0.1",
        "ansible_port": port,
        "ansible_user": "ansible",
        "ansible_ssh_private_key_file": str(private_key),
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        # Mitogen's connection checks host keys itself, from this setting rather than ssh's options:
        # every role-test server is new, with new keys.
        "ansible_host_key_checking": False,
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def bridge_gateway() -> str:
    """The address this machine's connections to a container on Docker's default bridge come from.
    A daemon that found docker0 already there leaves the gateway out of the network's settings: it
    is then the subnet's first address, as Docker assigns it."""
    config = json.loads(docker("network", "inspect", "bridge", "-f", "{{json (index .IPAM.Config 0)}}").stdout)
    return str(config.get("Gateway") or next(ipaddress.ip_network(config["Subnet"]).hosts()))


def set_global(env_root: Path, section: str, key: str, value: object, vars_file: str = ALL_VARS) -> None:
    """One setting of group_vars/all.yml, or of `vars_file` (validated by the vars plugin on the
    next run)."""
    path = env_root / vars_file
    data = yaml.safe_load(path.read_text()) or {}
    data.setdefault(section, {})[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@dataclass
class PlaybookRun:
    args: list[str]
    returncode: int
    output: str
    seconds: float

    @property
    def recap(self) -> dict[str, dict[str, int]]:
        return {m["host"]: {k: int(v) for k, v in m.groupdict().items() if k != "host"}
                for m in RECAP_RE.finditer(self.output)}

    def changed_tasks(self) -> list[str]:
        """Names of the tasks that reported 'changed' (for assertion messages)."""
        names, current = [], ""
        for line in self.output.splitlines():
            if line.startswith(("TASK [", "RUNNING HANDLER [")):
                current = line.split("[", 1)[1].rsplit("]", 1)[0]
            elif line.startswith("changed:"):
                names.append(current)
        return names

    def explain(self) -> str:
        return f"$ {shlex.join(self.args)}\n(exit {self.returncode}, {self.seconds:.1f}s)\n{self.output[-12000:]}"


def ansible_playbook() -> str:
    """The ansible-playbook beside the running Python (the project's venv), else on PATH."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    return str(beside) if beside.exists() else (shutil.which("ansible-playbook") or "ansible-playbook")


def run_playbook(env_root: Path, vault_password_file: Path, playbook: Path | str, *args: str,
                 timeout: float = 1200) -> PlaybookRun:
    env = {**os.environ, **collection.ansible_env(),
           # ssh ControlPersist sockets of this run only: no reuse across sandboxes.
           "ANSIBLE_SSH_CONTROL_PATH_DIR": str(env_root.parent / "cp")}
    cmd = [ansible_playbook(), "-i", str(env_root / INVENTORY), "--vault-password-file", str(vault_password_file),
           str(playbook), *args]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=env_root, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    return PlaybookRun(cmd, proc.returncode, proc.stdout + proc.stderr, time.monotonic() - start)


def http_get(address: str, port: int, timeout: float = 4.0) -> str | None:
    """The first bytes a plain HTTP GET gets back, or None when the connection fails or stalls."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return conn.recv(256).decode(errors="replace")
    except OSError:
        return None
