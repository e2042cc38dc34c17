"""bootstrap, common and security against a real systemd server (the sandbox container).

One server for the module, prepared in phases that mirror a real first deployment:

1. a fresh Debian 13 host where only root can log in, with its own key, and which has neither
   Python nor sudo (as a fresh Arch host may be): bootstrap must install them with `raw`;
2. `playbooks/bootstrap.yml` previewed with --check, then run as root (`-e ansible_user=root`, as `stagectl bootstrap --as
   root@HOST` does);
3. `common` + `security` applied as the ansible user with become (tests/roles/playbooks);
4. the same again (must change nothing), then `--check --diff` (must change nothing), then
   bootstrap again as the ansible user (must change nothing), then a reboot.

The server is reached only on its SSH port published on 127.0.0.1 and, for the firewall test, on
its address on this machine's Docker bridge.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from stagectl import collection
from stagectl.environment import STAGING_VARS

from .conftest import Timings, Workspace, new_workspace
from .sandbox import (
    PlaybookRun,
    Sandbox,
    bridge_gateway,
    docker,
    http_get,
    run_playbook,
    set_global,
    set_host,
)

pytestmark = pytest.mark.docker

HERE = Path(__file__).resolve().parent
COMMON_SECURITY = HERE / "playbooks" / "common-security.yml"
CERTIFICATES = HERE / "playbooks" / "certificates.yml"
HOST = "staging-server"
PRELOAD_ARCHIVE = "/opt/preload/debian-base.tar"
PROBE_PORT = 8081  # a container published on 0.0.0.0 at a port the firewall does not open

# A minimal Debian ships no Python and, without a desktop task, often no sudo.
MAKE_FRESH = (
    "export DEBIAN_FRONTEND=noninteractive SUDO_FORCE_REMOVE=yes; "
    "apt-get purge -y -q sudo python3 python3-minimal python3.13 python3.13-minimal "
    "libpython3.13-minimal libpython3.13-stdlib libpython3-stdlib >/dev/null"
)

# A one-line HTTP server in Perl: perl-base is Essential in Debian, so the minbase image has it.
PROBE_SERVER = (
    "use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalPort => 8080, Listen => 8, "
    "ReuseAddr => 1) or die $!; while (my $c = $s->accept) { <$c>; "
    'print $c "HTTP/1.0 200 OK\\r\\nContent-Length: 6\\r\\n\\r\\nprobe\\n"; close $c }'
)


@dataclass
class Server:
    sandbox: Sandbox
    ws: Workspace
    timings: Timings
    runs: dict[str, PlaybookRun] = field(default_factory=dict)

    def play(self, label: str, playbook: Path | str, *args: str) -> PlaybookRun:
        run = run_playbook(self.ws.env_root, self.ws.vault_password_file, playbook, *args)
        self.runs[label] = run
        self.timings.add(f"ansible-playbook: {label}", run.seconds)
        return run

    def ssh_ansible(self, command: str):
        return self.sandbox.ssh("ansible", self.ws.ansible_key, command)


def assert_ok(run: PlaybookRun) -> dict[str, int]:
    recap = run.recap.get(HOST)
    assert run.returncode == 0 and recap and recap["failed"] == 0 and recap["unreachable"] == 0, run.explain()
    return recap


@pytest.fixture(scope="module")
def server(sandbox_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory,
           timings: Timings) -> Iterator[Server]:
    ws = new_workspace(tmp_path_factory.mktemp("roles"))
    sandbox = Sandbox(sandbox_images["server"])
    try:
        start = time.monotonic()
        sandbox.start()
        sandbox.authorize_root_key(ws.root_key.with_suffix(".pub"))
        sandbox.wait_for_ssh("root", ws.root_key)
        timings.add("sandbox server: start, boot systemd, root SSH", time.monotonic() - start)
        set_host(ws.env_root, sandbox.port, ws.ansible_key)
        # Every connection of these tests reaches the server from the bridge's gateway: neither
        # ufw's rate limit nor fail2ban may shut them out mid-run. Both are proven by tests of
        # their own (test_fail2ban_bans_..., test_ssh_moves_...).
        set_global(ws.env_root, "security", "ssh_rate_limit", False)
        set_global(ws.env_root, "security", "fail2ban", {"ignore_addresses": [bridge_gateway()]})
        yield Server(sandbox, ws, timings)
    finally:
        sandbox.remove()


@pytest.fixture(scope="module")
def fresh(server: Server) -> Server:
    """No ansible user, no Python, no sudo; only root logs in, with its own key."""
    start = time.monotonic()
    server.sandbox.sh(MAKE_FRESH)
    server.timings.add("sandbox server: remove python3 and sudo", time.monotonic() - start)
    sh = server.sandbox.sh
    assert sh("command -v python3 || command -v sudo", check=False).returncode != 0
    assert sh("id ansible", check=False).returncode != 0
    assert server.ssh_ansible("true").returncode != 0
    return server


@pytest.fixture(scope="module")
def bootstrap_preview(fresh: Server) -> PlaybookRun:
    return fresh.play("bootstrap.yml --check on the fresh host", collection.playbook("bootstrap"),
                      "--check", "--diff", "-e", "ansible_user=root",
                      "-e", f"bootstrap_connect_key_file={fresh.ws.root_key}")


@pytest.fixture(scope="module")
def bootstrapped(fresh: Server, bootstrap_preview: PlaybookRun) -> Server:
    server = fresh
    run = server.play("bootstrap.yml as root", collection.playbook("bootstrap"),
                      "-e", "ansible_user=root",
                      "-e", f"bootstrap_connect_key_file={server.ws.root_key}")
    assert_ok(run)
    return server


@pytest.fixture(scope="module")
def preview_before_install(bootstrapped: Server) -> PlaybookRun:
    """common + security previewed (--check --diff) on the bootstrapped host, before Docker or ufw
    exist there."""
    return bootstrapped.play("common + security --check before Docker and ufw exist", COMMON_SECURITY,
                             "--check", "--diff")


@pytest.fixture(scope="module")
def refused_compose_v1(bootstrapped: Server, preview_before_install: PlaybookRun) -> PlaybookRun:
    """common on a host whose package manager offers Compose v1 (Debian 12's docker-compose
    1.29.2-3), simulated by making the candidate query answer what bookworm's apt-cache does."""
    fake = ["printf", "docker-compose:\\n  Installed: (none)\\n  Candidate: 1.29.2-3\\n%.0s"]
    return bootstrapped.play(
        "common with a Compose v1 candidate (must refuse)", COMMON_SECURITY,
        "-e", json.dumps({"__common_compose_candidate_command": fake}),
    )


@pytest.fixture(scope="module")
def hardened(bootstrapped: Server, refused_compose_v1: PlaybookRun,
             sandbox_images: dict[str, str]) -> Server:
    # No registry: the probe image reaches the server's Docker as an air-gapped server's would,
    # through docker.preload_archives (common loads it once Docker runs).
    start = time.monotonic()
    saved = docker("save", sandbox_images["base"], timeout=300, text=False).stdout
    bootstrapped.sandbox.sh(f"install -d /opt/preload && cat > {PRELOAD_ARCHIVE}", input=saved)
    set_global(bootstrapped.ws.env_root, "docker", "preload_archives", [PRELOAD_ARCHIVE])
    bootstrapped.timings.add("copy a docker save archive into the server", time.monotonic() - start)
    run = bootstrapped.play("common + security, first run", COMMON_SECURITY)
    assert_ok(run)
    return bootstrapped


@pytest.fixture(scope="module")
def second_run(hardened: Server) -> PlaybookRun:
    return hardened.play("common + security, second run", COMMON_SECURITY)


@pytest.fixture(scope="module")
def check_run(second_run: PlaybookRun, hardened: Server) -> PlaybookRun:
    return hardened.play("common + security, --check --diff", COMMON_SECURITY, "--check", "--diff")


# --- bootstrap -------------------------------------------------------------------------------


def test_bootstrap_preview_on_a_host_without_python(bootstrap_preview: PlaybookRun,
                                                    fresh: Server) -> None:
    recap = assert_ok(bootstrap_preview)
    assert recap["changed"] == 0, bootstrap_preview.explain()
    assert "has no Python yet" in bootstrap_preview.output, bootstrap_preview.explain()
    assert fresh.sandbox.sh("command -v python3", check=False).returncode != 0


def test_bootstrap_installs_python_and_sudo(bootstrapped: Server) -> None:
    run = bootstrapped.runs["bootstrap.yml as root"]
    assert "changed: [staging-server]" in run.output.split("Install Python, which Ansible modules need")[1][:300]
    sh = bootstrapped.sandbox.sh
    assert sh("python3 --version").returncode == 0
    assert sh("command -v sudo").returncode == 0


def test_bootstrap_proves_the_new_login(bootstrapped: Server) -> None:
    run = bootstrapped.runs["bootstrap.yml as root"]
    assert "logs in with its key and sudo -n whoami answers root" in run.output, run.explain()
    # The second play connected as the new user although ansible_user=root was an extra var.
    assert "Ansible logs in as ansible" in run.output, run.explain()


def test_ansible_user_logs_in_with_its_key_and_sudo_gives_root(bootstrapped: Server) -> None:
    result = bootstrapped.ssh_ansible("sudo -n whoami")
    assert (result.returncode, result.stdout.strip()) == (0, "root"), result.stderr


def test_ansible_user_account(bootstrapped: Server) -> None:
    sh = bootstrapped.sandbox.sh
    assert "sudo" in sh("id -nG ansible").stdout.split()
    assert sh("getent passwd ansible").stdout.strip().split(":")[5:] == ["/home/ansible", "/bin/bash"]
    assert sh("stat -c '%a %U' /etc/sudoers.d/ansible").stdout.split() == ["440", "root"]
    assert sh("stat -c '%a %U' /home/ansible/.ssh").stdout.split() == ["700", "ansible"]
    assert sh("stat -c '%a %U' /home/ansible/.ssh/authorized_keys").stdout.split() == ["600", "ansible"]
    assert sh("visudo -c").returncode == 0


# --- common ----------------------------------------------------------------------------------


def test_preview_before_docker_and_ufw_exist(preview_before_install: PlaybookRun,
                                             bootstrapped: Server) -> None:
    run = preview_before_install
    recap = assert_ok(run)
    assert recap["changed"] > 0, run.explain()  # packages, daemon.json, sshd drop-in, ...
    assert "ufw is not installed on staging-server yet" in run.output, run.explain()
    sh = bootstrapped.sandbox.sh
    # A preview changes nothing.
    assert sh("command -v dockerd || command -v ufw || test -e /etc/docker/daemon.json "
              "|| test -e /etc/ssh/sshd_config.d/10-stagectl.conf", check=False).returncode != 0


def test_common_refuses_compose_v1_before_installing(refused_compose_v1: PlaybookRun,
                                                     bootstrapped: Server) -> None:
    run = refused_compose_v1
    assert run.returncode != 0, run.explain()
    assert "docker-compose 1.29.2-3 (Compose v1)" in run.output, run.explain()
    assert "needs the Compose v2 plugin >= 2.18.0" in run.output, run.explain()
    # Refused in the preflight: Docker was not installed.
    assert bootstrapped.sandbox.sh("command -v dockerd", check=False).returncode != 0


def test_docker_and_compose_v2(hardened: Server) -> None:
    sh = hardened.sandbox.sh
    version = sh("docker compose version --short").stdout.strip().lstrip("v")
    assert tuple(int(p) for p in version.split(".")[:2]) >= (2, 18), version
    assert sh("systemctl is-enabled docker.service").stdout.strip() == "enabled"
    assert sh("systemctl is-active docker.service").stdout.strip() == "active"
    daemon = json.loads(sh("cat /etc/docker/daemon.json").stdout)
    assert daemon == {"live-restore": True, "log-driver": "json-file",
                      "log-opts": {"max-file": "5", "max-size": "10m"},
                      "no-new-privileges": True, "icc": False, "userland-proxy": False}
    info = json.loads(sh("docker info --format '{{json .}}'").stdout)
    assert info["LoggingDriver"] == "json-file" and info["LiveRestoreEnabled"] is True
    assert "name=no-new-privileges" in info["SecurityOptions"], info["SecurityOptions"]


def test_plan_renders_byte_for_byte_what_landed(hardened: Server) -> None:
    """Invariant 2 (docs/architecture.md) for these roles: `stagectl plan`'s render equals the
    server's files."""
    from .test_render_base import render

    out = hardened.ws.root / "rendered"
    run = render(hardened.ws, out, keep_host=True)
    assert run.returncode == 0, run.explain()
    for path in ("/etc/docker/daemon.json", "/etc/ssh/sshd_config.d/10-stagectl.conf",
                 "/etc/fail2ban/jail.d/stagectl.local", "/etc/systemd/journald.conf.d/50-stagectl.conf",
                 "/etc/systemd/system/stagectl-docker-prune.service",
                 "/etc/systemd/system/stagectl-docker-prune.timer"):
        on_server = hardened.sandbox.sh(f"cat {path}").stdout
        assert (out / HOST / path.lstrip("/")).read_text() == on_server, path


def test_maintenance_bounds_the_journal_and_prunes_docker(hardened: Server,
                                                          sandbox_images: dict[str, str]) -> None:
    sh, base = hardened.sandbox.sh, sandbox_images["base"]  # preloaded by common
    assert "SystemMaxUse=1G" in sh("systemd-analyze cat-config systemd/journald.conf").stdout
    assert sh("systemctl is-enabled stagectl-docker-prune.timer").stdout.strip() == "enabled"
    assert sh("systemctl is-active stagectl-docker-prune.timer").stdout.strip() == "active"
    # A dangling image (a tag moved away from it) goes; the tagged one it was built on stays.
    sh(f"printf 'FROM {base}\\nLABEL stagectl.test=dangling\\n' | docker build -q -t prune-probe - "
       f"&& docker tag {base} prune-probe")
    assert sh("docker images -q --filter dangling=true --filter label=stagectl.test=dangling").stdout.strip()
    sh("systemctl start stagectl-docker-prune.service", timeout=300)
    assert not sh("docker images -q --filter dangling=true --filter label=stagectl.test=dangling").stdout.strip()
    assert sh(f"docker images -q {base}").stdout.strip()
    sh("docker rmi prune-probe")


def test_ansible_user_is_not_in_the_docker_group(hardened: Server) -> None:
    assert "docker" not in hardened.sandbox.sh("id -nG ansible").stdout.split()


def test_preload_archive_is_loaded(hardened: Server, sandbox_images: dict[str, str]) -> None:
    run = hardened.runs["common + security, first run"]
    assert "Load the archives whose images are missing" in run.output
    hardened.sandbox.sh(f"docker image inspect {sandbox_images['base']} >/dev/null")


def test_shared_networks_and_directories(hardened: Server) -> None:
    sh = hardened.sandbox.sh
    networks = sh("docker network ls --format '{{.Name}}'").stdout.split()
    assert {"projects", "shared"} <= set(networks) and "monitoring" not in networks
    modes = sh("stat -c '%n %a %U' /opt/shared /opt/projects /opt/backups").stdout.splitlines()
    assert modes == ["/opt/shared 755 root", "/opt/projects 755 root", "/opt/backups 700 root"]


# --- security --------------------------------------------------------------------------------


def test_ufw_active_with_the_public_ports(hardened: Server) -> None:
    sh = hardened.sandbox.sh
    status = sh("ufw status verbose").stdout
    assert "Status: active" in status
    assert "Default: deny (incoming), allow (outgoing), deny (routed)" in status
    for port in (22, 80, 443):
        assert any(line.startswith(f"{port}/tcp") and "ALLOW IN" in line
                   for line in status.splitlines()), status
    assert sh("systemctl is-enabled ufw.service").stdout.strip() == "enabled"


def test_root_login_is_refused(hardened: Server) -> None:
    result = hardened.sandbox.ssh("root", hardened.ws.root_key, "true")
    assert result.returncode == 255 and "Permission denied" in result.stderr, result.stderr


def test_password_login_is_not_offered(hardened: Server) -> None:
    result = hardened.sandbox.ssh(
        "ansible", None, "true",
        "-o", "PubkeyAuthentication=no",
        "-o", "PreferredAuthentications=password,keyboard-interactive",
    )
    # The server lists what it would accept: public keys only.
    assert result.returncode == 255 and "Permission denied (publickey)" in result.stderr, result.stderr


def test_sshd_effective_configuration(hardened: Server) -> None:
    effective = set(hardened.sandbox.sh("sshd -T").stdout.splitlines())
    assert {"passwordauthentication no", "kbdinteractiveauthentication no",
            "permitrootlogin no", "pubkeyauthentication yes", "maxauthtries 3", "port 22",
            "allowgroups ssh-users"} <= effective
    assert "ssh-users" in hardened.sandbox.sh("id -nG ansible").stdout.split()


def test_fail2ban_bans_an_address_that_keeps_failing(hardened: Server,
                                                     sandbox_images: dict[str, str]) -> None:
    """A neighbour on the bridge (not the ignored gateway) guessing user names is banned."""
    sh = hardened.sandbox.sh
    assert sh("systemctl is-active fail2ban.service").stdout.strip() == "active"
    attempts = (
        "hostname -i; for i in 1 2 3 4 5 6; do timeout 10 ssh -o BatchMode=yes "
        "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=3 "
        f"nosuchuser@{hardened.sandbox.address} true 2>/dev/null; done; true"
    )
    neighbour = docker("run", "--rm", "--entrypoint", "bash", sandbox_images["server"], "-c", attempts,
                       timeout=180).stdout.split()[0]
    try:
        deadline = time.monotonic() + 30
        status = ""
        while time.monotonic() < deadline:
            status = sh("fail2ban-client status sshd").stdout
            if neighbour in status:
                break
            time.sleep(1)
        assert re.search(rf"Banned IP list:.*\b{re.escape(neighbour)}\b", status), status
        # The gateway every test connects from is never banned.
        assert bridge_gateway() not in status
    finally:
        sh(f"fail2ban-client set sshd unbanip {neighbour}", check=False)


def test_ansible_still_logs_in_after_hardening(hardened: Server) -> None:
    result = hardened.ssh_ansible("sudo -n whoami")
    assert (result.returncode, result.stdout.strip()) == (0, "root"), result.stderr


def test_published_container_ports_do_not_bypass_the_firewall(
    hardened: Server, sandbox_images: dict[str, str]
) -> None:
    """A container published on 0.0.0.0:8081 and 0.0.0.0:80 inside the server: from outside the
    server (this machine, through the server's bridge address) 80 answers, 8081 does not, while
    8081 answers on the server itself, so only the firewall stands between."""
    sandbox = hardened.sandbox
    start = time.monotonic()
    image = sandbox_images["base"]  # preloaded by common (docker.preload_archives)
    sandbox.sh("docker rm -f firewall-probe >/dev/null 2>&1 || true")
    sandbox.sh(f"docker run -d --name firewall-probe -p 0.0.0.0:{PROBE_PORT}:8080 -p 0.0.0.0:80:8080 "
               f"--restart unless-stopped {image} perl -e '{PROBE_SERVER}'")
    # Wait (bounded) until the probe answers on the server itself, on both published ports.
    deadline = time.monotonic() + 30
    inside = ""
    while time.monotonic() < deadline:
        inside = sandbox.sh(
            f"curl -s --max-time 2 http://127.0.0.1:{PROBE_PORT}/; curl -s --max-time 2 http://127.0.0.1:80/",
            check=False).stdout
        if inside.count("probe") == 2:
            break
        time.sleep(0.5)
    assert inside.count("probe") == 2, inside
    # The kernel forwards the published ports (daemon.json userland-proxy: false), no proxy process.
    assert sandbox.sh("pgrep -x docker-proxy", check=False).returncode == 1
    hardened.timings.add("firewall probe: start the container", time.monotonic() - start)

    assert "probe" in (http_get(sandbox.address, 80) or ""), "port 80 should be open to the outside"
    assert http_get(sandbox.address, PROBE_PORT) is None, (
        f"{sandbox.address}:{PROBE_PORT} answered from outside the server: Docker bypasses ufw"
    )
    # And the drop is the firewall's doing: the block's counters moved.
    rules = sandbox.sh("iptables -L ufw-docker-deny -v -n -x").stdout
    assert any(line.split()[0] != "0" for line in rules.splitlines()[2:] if "DROP" in line), rules

    # Control: without the DOCKER-USER rules, ufw alone (still active, 8081 not allowed) does not
    # stop Docker's DNAT: the port answers from outside. That is the bypass the rules close.
    sandbox.sh("iptables -F DOCKER-USER && iptables -A DOCKER-USER -j RETURN")
    try:
        assert "Status: active" in sandbox.sh("ufw status").stdout
        assert "probe" in (http_get(sandbox.address, PROBE_PORT) or ""), "control: expected the bypass"
    finally:
        # ufw puts its rules back on every reload (and start): they live in after.rules.
        sandbox.sh("ufw reload")
    assert http_get(sandbox.address, PROBE_PORT) is None, "blocked again after ufw reload"
    assert "probe" in (http_get(sandbox.address, 80) or "")


# --- idempotence and preview ---------------------------------------------------------------


def test_second_run_changes_nothing(second_run: PlaybookRun) -> None:
    recap = assert_ok(second_run)
    assert recap["changed"] == 0, f"changed: {second_run.changed_tasks()}\n{second_run.explain()}"


def test_check_diff_run_changes_nothing(check_run: PlaybookRun) -> None:
    recap = assert_ok(check_run)
    assert recap["changed"] == 0, f"changed: {check_run.changed_tasks()}\n{check_run.explain()}"


def test_common_puts_back_only_what_was_changed_by_hand(check_run: PlaybookRun, hardened: Server) -> None:
    """The common role compares its files and directories with the server in one round trip,
    reads its units' state and the networks once: a journald drop-in edited by hand, the prune
    timer stopped and the shared networks removed are what the next run writes, starts and
    creates, and all it changes."""
    sh = hardened.sandbox.sh
    dropin = "/etc/systemd/journald.conf.d/50-stagectl.conf"
    kept = sh(f"cat {dropin}").stdout
    networks = set(sh("docker network ls --format '{{.Name}}'").stdout.split()) - {"bridge", "host", "none"}
    assert len(networks) == 2, networks
    sh(f"echo '# edited by hand' >> {dropin}; systemctl disable --now stagectl-docker-prune.timer; "
       f"docker network rm {' '.join(sorted(networks))}")
    run = hardened.play("common + security after hand edits", COMMON_SECURITY)
    assert_ok(run)
    # One line a loop item: both networks.
    assert [name.split(" : ")[-1] for name in run.changed_tasks()] == [
        "Create the shared Docker networks",
        "Create the shared Docker networks",
        "Write the maintenance configuration and units",
        "Restart journald",
        "Enable and start the Docker prune timer",
    ], run.explain()
    assert sh(f"cat {dropin}").stdout == kept
    assert sh("systemctl is-enabled stagectl-docker-prune.timer; systemctl is-active stagectl-docker-prune.timer"
              ).stdout.split() == ["enabled", "active"]
    assert set(sh("docker network ls --format '{{.Name}}'").stdout.split()) >= networks


def test_security_puts_back_only_what_differs_and_refuses_an_override_it_cannot_win(
        check_run: PlaybookRun, hardened: Server) -> None:
    """The security role compares its files with the server in one round trip and reads its
    services once: a jail and a login banner edited by hand and fail2ban stopped are what the next
    run writes, checks and starts. A drop-in read before the role's that turns password logins back
    on fails the run, and the role's drop-in (unchanged) stays as it is, not rolled back."""
    sh = hardened.sandbox.sh
    jail, banner = "/etc/fail2ban/jail.d/stagectl.local", "/etc/issue.net"
    dropin = "/etc/ssh/sshd_config.d/10-stagectl.conf"
    kept = {path: sh(f"cat {path}").stdout for path in (jail, banner, dropin)}
    sh(f"echo '# edited by hand' >> {jail}; echo 'edited by hand' >> {banner}; systemctl disable --now fail2ban")
    run = hardened.play("common + security after hand edits of the security role's files", COMMON_SECURITY)
    assert_ok(run)
    assert [name.split(" : ")[-1] for name in run.changed_tasks()] == [
        "Write the sshd jail",
        "Start fail2ban now and at boot",
        "Write the host's hardening files",
        "Reload fail2ban",
    ], run.explain()
    assert {path: sh(f"cat {path}").stdout for path in kept} == kept
    assert sh("systemctl is-enabled fail2ban; systemctl is-active fail2ban").stdout.split() == ["enabled", "active"]

    foreign = "/etc/ssh/sshd_config.d/00-foreign.conf"
    try:
        sh(f"echo 'PasswordAuthentication yes' > {foreign}")
        refused = hardened.play("common + security with a drop-in that overrides the hardening", COMMON_SECURITY)
        assert refused.returncode != 0, refused.explain()
        assert "sshd would not apply ['passwordauthentication no']" in " ".join(refused.output.split()), refused.explain()
        assert sh(f"cat {dropin}").stdout == kept[dropin]
    finally:
        sh(f"rm -f {foreign}")
    again = hardened.play("common + security once the foreign drop-in is gone", COMMON_SECURITY)
    assert assert_ok(again)["changed"] == 0, again.explain()


@dataclass
class SelfSigned:
    runs: dict[str, PlaybookRun]
    key: str
    key_mode: str
    record: str


@pytest.fixture(scope="module")
def self_signed(check_run: PlaybookRun, hardened: Server) -> SelfSigned:
    """The certificates role with provider selfsigned: a first run, a second, one after a key's
    mode was changed by hand, and a preview after that."""
    set_global(hardened.ws.env_root, "certificates", "provider", "selfsigned", STAGING_VARS)
    runs = {"first": hardened.play("certificates (selfsigned), first run", CERTIFICATES)}
    assert_ok(runs["first"])
    runs["second"] = hardened.play("certificates (selfsigned), second run", CERTIFICATES)
    sh = hardened.sandbox.sh
    key = sh("find /etc/letsencrypt/live -name privkey.pem | sort | head -n 1").stdout.strip()
    sh(f"chmod 0644 {key}")
    runs["key changed by hand"] = hardened.play("certificates (selfsigned), a key's mode changed", CERTIFICATES)
    runs["preview"] = hardened.play("certificates (selfsigned), --check", CERTIFICATES, "--check", "--diff")
    record = "/etc/letsencrypt/stagectl-selfsigned.json"
    return SelfSigned(runs, key, sh(f"stat -c %a {key}").stdout.strip(), sh(f"stat -c '%a %U' {record}").stdout.strip())


def _signs(run: PlaybookRun) -> bool:
    """Whether the run went through the self-signed certificates' tasks (not only their record)."""
    return "certificates : Sign each certificate]" in run.output


def test_self_signed_certificates_left_as_they_are_cost_no_round_trip_per_certificate(self_signed: SelfSigned) -> None:
    first, second = self_signed.runs["first"], self_signed.runs["second"]
    assert assert_ok(first)["changed"] > 0 and _signs(first), first.explain()
    assert self_signed.record == "600 root"
    # As the first run left them: its record matches, so none of the per-certificate tasks runs.
    assert assert_ok(second)["changed"] == 0, f"changed: {second.changed_tasks()}\n{second.explain()}"
    assert not _signs(second), second.explain()


def test_a_self_signed_key_changed_by_hand_is_put_back_and_then_left_alone(self_signed: SelfSigned) -> None:
    fixed, preview = self_signed.runs["key changed by hand"], self_signed.runs["preview"]
    assert_ok(fixed)
    assert _signs(fixed) and [name.split(" : ")[-1] for name in fixed.changed_tasks()] == [
        "Create the private key of each certificate"], fixed.explain()
    assert self_signed.key_mode == "600"
    assert assert_ok(preview)["changed"] == 0, f"changed: {preview.changed_tasks()}\n{preview.explain()}"
    assert not _signs(preview), preview.explain()


def test_bootstrap_again_as_ansible_changes_nothing(check_run: PlaybookRun, hardened: Server) -> None:
    # Root can no longer log in; a re-run goes through the ansible user with sudo.
    run = hardened.play("bootstrap.yml again, as ansible", collection.playbook("bootstrap"))
    recap = assert_ok(run)
    assert recap["changed"] == 0, f"changed: {run.changed_tasks()}\n{run.explain()}"


def test_firewall_docker_and_hardening_survive_a_reboot(check_run: PlaybookRun,
                                                        hardened: Server) -> None:
    """Enabled at boot: after a restart of the server, ufw is active with the DOCKER-USER rules
    in place before the probe container comes back, and root still cannot log in."""
    sandbox = hardened.sandbox
    start = time.monotonic()
    docker("restart", "-t", "30", sandbox.name, timeout=120)
    sandbox.refresh()
    sandbox.wait_booted()
    sandbox.wait_for_ssh("ansible", hardened.ws.ansible_key)
    hardened.timings.add("reboot of the server (docker restart), until SSH answers", time.monotonic() - start)
    sh = sandbox.sh
    assert "Status: active" in sh("ufw status").stdout
    assert sh("systemctl is-active docker.service").stdout.strip() == "active"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "probe" not in (http_get(sandbox.address, 80) or ""):
        time.sleep(1)
    assert "probe" in (http_get(sandbox.address, 80) or ""), "the probe container did not come back"
    assert http_get(sandbox.address, PROBE_PORT) is None
    result = sandbox.ssh("root", hardened.ws.root_key, "true")
    assert result.returncode == 255 and "Permission denied" in result.stderr, result.stderr


def test_ssh_moves_to_another_port_without_lockout(check_run: PlaybookRun, hardened: Server) -> None:
    """security.ssh_port 22 -> 2200 over a connection that came in on 22: sshd and the firewall
    keep 22 until a run comes in over the new port. Moving back closes 2200 again. Last in this
    module: it leaves ufw's rate limit on."""
    env, sh = hardened.ws.env_root, hardened.sandbox.sh
    set_host(env, hardened.sandbox.port, hardened.ws.ansible_key)  # the reboot may have moved it
    set_global(env, "security", "ssh_rate_limit", True)
    set_global(env, "security", "ssh_port", 2200)
    set_global(env, "security", "public_ports", [2200, 80, 443])
    run = hardened.play("common + security, SSH moved to 2200", COMMON_SECURITY)
    assert_ok(run)
    assert "this run reached sshd on port 22, but security.ssh_port is 2200" in run.output
    listening = sh("ss -Hltnp | grep sshd").stdout
    assert re.search(r":2200\b", listening) and re.search(r":22\b", listening), listening
    banner = sh("timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/2200; head -c 8 <&3'").stdout
    assert banner == "SSH-2.0-", banner
    rules = sh("ufw status").stdout
    assert re.search(r"^2200/tcp +LIMIT +Anywhere", rules, re.MULTILINE), rules
    assert re.search(r"^22/tcp +LIMIT +Anywhere", rules, re.MULTILINE), rules
    assert hardened.ssh_ansible("true").returncode == 0

    set_global(env, "security", "ssh_port", 22)
    set_global(env, "security", "public_ports", [22, 80, 443])
    run = hardened.play("common + security, SSH back on 22", COMMON_SECURITY)
    assert_ok(run)
    assert not re.search(r":2200\b", sh("ss -Hltnp | grep sshd").stdout)
    rules = sh("ufw status").stdout
    assert "2200/tcp" not in rules, rules
    assert re.search(r"^22/tcp +LIMIT +Anywhere", rules, re.MULTILINE), rules
    assert sh("test -e /etc/ssh/sshd_config.d/09-stagectl-previous-port.conf", check=False).returncode != 0
    assert hardened.ssh_ansible("true").returncode == 0
