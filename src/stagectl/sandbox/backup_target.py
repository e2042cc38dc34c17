"""An off-site backup target for the sandbox: an SFTP server (openssh) in its own small container
inside the sandbox server, published on the server's 127.0.0.1 only, so that the off-site copy
(`backups.remote`, restic over sftp) runs for real without leaving the machine.

The container runs the project base image of the sandbox (a Debian stand-in) with openssh-server
installed at its start from Debian's archive; it lets one user, `restic`, in with a key made here
for it, and keeps the repository under /srv/restic. `start()` returns what the environment needs:
the repository URL, the private key and the server's known_hosts line.
"""

from __future__ import annotations

from dataclasses import dataclass

from stagectl import sshkeys
from stagectl.polling import wait_for
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


def _logs(sandbox: str) -> str:
    """The container's output and errors (sshd logs to stderr)."""
    proc = docker_cli.run("exec", sandbox, "docker", "logs", NAME, check=False, timeout=30)
    return proc.output


def start(sandbox: str, image: str) -> BackupTarget:
    """Start the target (again, empty) in `sandbox` and wait until sshd answers."""
    key = sshkeys.new_key_pair("stagectl sandbox backups")
    stop(sandbox)
    docker_cli.in_server(
        sandbox, "run", "--detach", "--name", NAME, "--publish", f"127.0.0.1:{PORT}:22",
        "--memory", "256m", "--label", "stagectl.sandbox=backup-target",
        "--env", f"AUTHORIZED_KEY={key.public}", "--user", "root", "--entrypoint", "sh",
        image, "-c", _SETUP,
    )

    def host_key() -> str | None:
        logs = _logs(sandbox)
        if docker_cli.in_server(sandbox, "inspect", "--format", "{{.State.Running}}", NAME, check=False).strip() != "true":
            raise SandboxError(f"the backup target container stopped: {logs[-800:]}")
        line = next((line for line in logs.splitlines() if line.startswith("HOSTKEY ")), None)
        return line.removeprefix("HOSTKEY ").strip() if line and "Server listening" in logs else None

    found = wait_for(host_key, timeout=READY_TIMEOUT, interval=2, on_timeout=lambda: SandboxError(
        f"the backup target did not start within {READY_TIMEOUT:.0f}s"
    ))
    # The key type and key only: ssh-keygen -A writes them with a root@host comment.
    kind, public = found.split()[:2]
    return BackupTarget(REPOSITORY, key.private, f"[127.0.0.1]:{PORT} {kind} {public}")


def stop(sandbox: str) -> None:
    docker_cli.in_server(sandbox, "rm", "--force", NAME, check=False)
