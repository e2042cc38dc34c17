"""The fixes doctor proposes: commands an operator can run, written for the host at hand."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from stagectl.derived import SHARED_PROJECT
from stagectl.environment import ALL_VARS, INVENTORY
from stagectl.expectations import Expectations
from stagectl.probes import Connection
from stagectl.sshkeys import KeyState
from stagectl.troubleshooting import explain


def key_fix(conn: Connection, key_state: KeyState | None) -> str:
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


def ssh_fix(error: str, conn: Connection, key_state: KeyState | None) -> str:
    where = f"{conn.host}:{conn.port}"
    if "Permission denied" in error:
        return key_fix(conn, key_state)
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


def python_install(family: str, conn: Connection) -> str:
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


def sudoers_fix(conn: Connection) -> str:
    user = conn.user or "ansible"
    return (
        "configure passwordless sudo, on the server as "
        f"root or another sudo user: echo '{user} ALL=(ALL) NOPASSWD:ALL' | "
        f"sudo tee /etc/sudoers.d/{user} && sudo chmod 440 /etc/sudoers.d/{user}; "
        f"then {conn.ssh('sudo whoami')} must print root "
        f"(`stagectl bootstrap --as root@{conn.host}` sets this up)"
    )


def deploy_command(project: str) -> str:
    return (
        "stagectl deploy" if project == SHARED_PROJECT else f"stagectl deploy --project {project}"
    )


def target_logs(target: dict[str, Any], expect: Expectations) -> str:
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


def target_fix(down: Sequence[dict[str, Any]], expect: Expectations) -> str:
    errors = " ".join(str(t.get("lastError") or "") for t in down)
    lines: list[str] = []
    if re.search(r"no such host|connection refused|i/o timeout|deadline exceeded", errors, re.IGNORECASE):
        lines.append(
            "a target is down when its container is not running or not on the network "
            "Prometheus shares with it (its project's `<project>_metrics`): see the stack "
            "checks above, then `stagectl deploy` once they are fixed"
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
    logs = sorted({target_logs(t, expect) for t in down})
    lines.append("logs, on the server: " + "; ".join(logs))
    return "\n".join(lines)
