"""The files of common and security render offline (docs/templates-contract.md), deterministically,
and match what the tests on a real server found there."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import Workspace
from .sandbox import run_playbook, set_global, set_host

PLAYBOOK = Path(__file__).resolve().parent / "playbooks" / "render-base.yml"


def render(ws: Workspace, out: Path, *, keep_host: bool = False):
    if not keep_host:
        set_host(ws.env_root, 9, ws.ansible_key)  # never contacted: the play runs on localhost
    return run_playbook(ws.env_root, ws.vault_password_file, PLAYBOOK,
                        "-e", f"stagectl_render_dir={out}", timeout=120)


def test_render_daemon_json_and_sshd_dropin(workspace: Workspace) -> None:
    set_global(workspace.env_root, "docker", "log_max_size", "20m")
    first, second = workspace.root / "out1", workspace.root / "out2"
    run = render(workspace, first)
    assert run.returncode == 0, run.explain()
    assert render(workspace, second).returncode == 0

    host = first / "staging-server"
    daemon = json.loads((host / "etc/docker/daemon.json").read_text())
    assert daemon == {"live-restore": True, "log-driver": "json-file",
                      "log-opts": {"max-file": "5", "max-size": "20m"},
                      "no-new-privileges": True, "icc": False, "userland-proxy": False}
    dropin = (host / "etc/ssh/sshd_config.d/10-stagectl.conf").read_text()
    settings = [line for line in dropin.splitlines() if line and not line.startswith("#")]
    assert settings == ["Port 22", "AllowGroups ssh-users", "PasswordAuthentication no",
                        "KbdInteractiveAuthentication no", "PermitRootLogin no",
                        "PubkeyAuthentication yes", "MaxAuthTries 3", "AllowTcpForwarding local",
                        "AllowAgentForwarding no", "X11Forwarding no", "MaxSessions 4", "TCPKeepAlive no",
                        "ClientAliveInterval 300", "ClientAliveCountMax 2", "LogLevel VERBOSE"]
    sysctl = (host / "etc/sysctl.d/60-stagectl-hardening.conf").read_text()
    assert "kernel.kptr_restrict = 2\n" in sysctl and "net.ipv4.conf.all.rp_filter = 1\n" in sysctl
    # Docker's containers need IP forwarding: the profile leaves it alone.
    assert "forwarding" not in sysctl
    blacklist = (host / "etc/modprobe.d/stagectl-blacklist.conf").read_text()
    assert "install usb-storage /bin/false\n" in blacklist
    assert (host / "etc/issue").read_text() == (host / "etc/issue.net").read_text() != ""
    jail = (host / "etc/fail2ban/jail.d/stagectl.local").read_text()
    assert "[sshd]\nenabled = true\nbackend = systemd\n" in jail
    assert {"port = 22", "maxretry = 5", "findtime = 10m", "bantime = 1h",
            "ignoreip = 127.0.0.1/8 ::1"} <= set(jail.splitlines())
    assert (first / ".manifest" / "staging-server-common.json").is_file()
    assert (first / ".manifest" / "staging-server-security.json").is_file()
    # Deterministic: a second render gives the same bytes.
    for path in first.rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (second / path.relative_to(first)).read_bytes()
