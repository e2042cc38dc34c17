"""An off-site backup target for the sandbox: an SFTP server (openssh) in its own small container
inside the sandbox server, published on the server's 127.0.0.1 only, so that the off-site copy
(`backups.remote`, restic over sftp) runs for real without leaving the machine.

The container runs the project base image of the sandbox (a Debian stand-in) with openssh-server
installed at its start from Debian's archive; it lets one user, `restic`, in with a key made here
for it, and keeps the repository under /srv/restic. `start()` returns what the environment needs:
the repository URL, the private key and the server's known_hosts line.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from stagectl.errors import ToolMissing
from stagectl.sandbox import docker_cli
from stagectl.sandbox.errors import SandboxError

NAME = "stagectl-backup-target"
#: On the sandbox server's loopback: only the server itself reaches the target.
PORT = 2022
USER = "restic"
REPOSITORY = f"sftp://{USER}@127.0.0.1:{PORT}//srv/restic/sandbox"
READY_TIMEOUT = 300.0

# Installs sshd, lets USER in with the key in $AUTHORIZED_KEY only, prints the host key, runs sshd.
_SETUP = f"""set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends openssh-server >/dev/null
useradd --create-home --shell /bin/sh {USER} 2>/dev/null || true
install -d -o {USER} -g {USER} -m 0700 /home/{USER}/.ssh /srv/restic
printf '%s\\n' "$AUTHORIZED_KEY" > /home/{USER}/.ssh/authorized_keys
chown {USER}:{USER} /home/{USER}/.ssh/authorized_keys
chmod 0600 /home/{USER}/.ssh/authorized_keys
mkdir -p /run/sshd
ssh-keygen -A >/dev/null
echo "HOSTKEY $(cat /etc/ssh/ssh_host_ed25519_key.pub)"
exec /usr/sbin/sshd -D -e -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no \\
    -o PermitRootLogin=no -o AllowUsers={USER}
"""


@dataclass(frozen=True)
class BackupTarget:
    repository: str
    ssh_key: str
    known_hosts: str


def _docker(sandbox: str, *args: str, check: bool = True, timeout: float = 60) -> str:
    proc = docker_cli.run("exec", sandbox, "docker", *args, check=False, timeout=timeout)
    if check and proc.returncode != 0:
        raise SandboxError(f"docker {' '.join(args[:2])} in sandbox {sandbox} failed: {proc.stderr.strip()}")
    return proc.stdout


def _logs(sandbox: str) -> str:
    """The container's output and errors (sshd logs to stderr)."""
    proc = docker_cli.run("exec", sandbox, "docker", "logs", NAME, check=False, timeout=30)
    return proc.stdout + proc.stderr


def _key_pair() -> tuple[str, str]:
    with tempfile.TemporaryDirectory(prefix="stagectl-backup-target-") as tmp:
        key = Path(tmp) / "id_ed25519"
        try:
            proc = subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "stagectl sandbox backups", "-f", str(key)],
                capture_output=True, text=True, timeout=30, check=False,
            )
        except FileNotFoundError:
            raise ToolMissing("ssh-keygen", "openssh-client") from None
        if proc.returncode != 0:
            raise SandboxError(f"ssh-keygen failed: {proc.stderr.strip()}")
        return key.read_text(), key.with_suffix(".pub").read_text().strip()


def start(sandbox: str, image: str) -> BackupTarget:
    """Start the target (again, empty) in `sandbox` and wait until sshd answers."""
    private, public = _key_pair()
    stop(sandbox)
    _docker(
        sandbox, "run", "--detach", "--name", NAME, "--publish", f"127.0.0.1:{PORT}:22",
        "--memory", "256m", "--label", "stagectl.sandbox=backup-target",
        "--env", f"AUTHORIZED_KEY={public}", "--user", "root", "--entrypoint", "sh",
        image, "-c", _SETUP,
    )
    deadline = time.monotonic() + READY_TIMEOUT
    host_key = ""
    while time.monotonic() < deadline:
        logs = _logs(sandbox)
        host_key = next((line.removeprefix("HOSTKEY ").strip() for line in logs.splitlines()
                         if line.startswith("HOSTKEY ")), "")
        running = _docker(sandbox, "inspect", "--format", "{{.State.Running}}", NAME, check=False).strip()
        if running != "true":
            raise SandboxError(f"the backup target container stopped: {logs[-800:]}")
        if host_key and "Server listening" in logs:
            break
        time.sleep(2)
    else:
        raise SandboxError(f"the backup target did not start within {READY_TIMEOUT:.0f}s")
    # The key type and key only: ssh-keygen -A writes them with a root@host comment.
    kind, key = host_key.split()[:2]
    return BackupTarget(REPOSITORY, private, f"[127.0.0.1]:{PORT} {kind} {key}")


def stop(sandbox: str) -> None:
    _docker(sandbox, "rm", "--force", NAME, check=False)
