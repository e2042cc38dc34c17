"""The troubleshooting guide as data: known failure messages and what fixes them.

Used to explain a failed deploy or bootstrap task in plain words, and by `doctor`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class KnownProblem:
    pattern: re.Pattern[str]
    explanation: str
    fix: str


KNOWN_PROBLEMS: tuple[KnownProblem, ...] = (
    KnownProblem(
        re.compile(r"module interpreter '.*python3?' was not found|/usr/bin/python3?: (not found|No such file)", re.IGNORECASE),
        "the server has no Python, which Ansible's modules need",
        "run `stagectl bootstrap --as root@HOST` (it installs Python with pacman or apt), or on the "
        "server: pacman -Syu --needed python --noconfirm (Arch) / apt-get install -y python3 (Debian)",
    ),
    KnownProblem(
        re.compile(r"Permission denied \(publickey", re.IGNORECASE),
        "the server refused the SSH key",
        "check that the public key of ansible_ssh_private_key_file is in ~ansible/.ssh/authorized_keys "
        "on the server (stagectl bootstrap installs it), and that the key has no passphrase",
    ),
    KnownProblem(
        re.compile(r"(sudo: a password is required|Missing sudo password|sudo: no tty present)", re.IGNORECASE),
        "sudo asks the ansible user for a password",
        "configure passwordless sudo: echo 'ansible ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/ansible "
        "&& chmod 440 /etc/sudoers.d/ansible (stagectl bootstrap does this)",
    ),
    KnownProblem(
        re.compile(r"Could not resolve hostname|Name or service not known", re.IGNORECASE),
        "the server's name does not resolve",
        "check ansible_host in inventory/staging.yml, or use the server's IP address",
    ),
    KnownProblem(
        re.compile(r"Connection refused|Connection timed out|No route to host", re.IGNORECASE),
        "SSH on the server does not answer",
        "check that the server is up, sshd runs, and the firewall allows ansible_port (22)",
    ),
    KnownProblem(
        re.compile(r"Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED", re.IGNORECASE),
        "the server's SSH host key is unknown or changed",
        "verify the server's fingerprint, then update ~/.ssh/known_hosts (ssh-keygen -R HOST)",
    ),
    KnownProblem(
        re.compile(r"Too many authentication failures", re.IGNORECASE),
        "the SSH client offered too many keys (an agent's) before the right one",
        "set IdentitiesOnly=yes in ansible_ssh_common_args so that only "
        "ansible_ssh_private_key_file is offered",
    ),
    KnownProblem(
        re.compile(r"docker: command not found|No such file or directory: b?'docker'", re.IGNORECASE),
        "Docker is not installed on the server",
        "run `stagectl deploy`: phase 1 (role common) installs Docker and the Compose v2 plugin "
        "(Arch: docker, docker-compose; Debian 13: docker.io, docker-compose)",
    ),
    KnownProblem(
        re.compile(r"Cannot connect to the Docker daemon|Is the docker daemon running", re.IGNORECASE),
        "the Docker daemon does not run",
        "start it and enable it at boot: sudo systemctl enable --now docker "
        "(if it does not start: journalctl -u docker -n 50)",
    ),
    KnownProblem(
        # "docker: 'compose' is not a docker command." (Docker's CLI without the plugin)
        re.compile(r"'compose' is not a docker command|unknown command:? \"?compose", re.IGNORECASE),
        "the server has no Docker Compose v2",
        "install the Compose v2 plugin (Arch: docker-compose; Debian 13: docker-compose; "
        "Debian 12: docker-compose-plugin from Docker's repository)",
    ),
    KnownProblem(
        re.compile(r"docker compose.*(unknown|not a docker command)|Compose.*v1|docker-compose.*1\.\d+", re.IGNORECASE),
        "the server has no Docker Compose v2",
        "install the Compose v2 plugin (Arch: docker-compose; Debian 13: docker-compose; "
        "Debian 12: docker-compose-plugin from Docker's repository)",
    ),
)


def explain(message: str) -> KnownProblem | None:
    """The known problem a failure message shows, if any."""
    for problem in KNOWN_PROBLEMS:
        if problem.pattern.search(message):
            return problem
    return None
