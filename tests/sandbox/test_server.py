"""The sandbox library: `up` gives a booted systemd server reachable by root's key on 127.0.0.1,
with the image archive mounted read-only and HTTP/HTTPS published on 127.0.0.1 only; `up` again
changes nothing; `restart` keeps data; `down` removes the container and keeps (or removes) the
Docker volume; the generated environment validates and names nothing of the example's servers.

Docker tests skip, saying why, when no daemon answers. Every sandbox gets a unique name and free
ports, so parallel runs do not clash, and is removed with its volume afterwards. Tests reach the
sandbox through ports published on 127.0.0.1, and its address on the local Docker bridge.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from stagectl import collection
from stagectl.environment import load_environment
from stagectl.errors import VaultError
from stagectl.sandbox import archive, server
from stagectl.sandbox.environment import (
    bootstrap_target,
    default_environment_paths,
    write_sandbox_environment,
)
from stagectl.sandbox.errors import NotASandbox, SandboxEnvironmentError, SandboxPortBusy
from stagectl.sandbox.images.builder import ImageBuilder, docker_available
from stagectl.sandbox.server import SandboxInfo
from stagectl.vault import decrypt, read_password_file
from tests.conftest import missing_tool

REPO = Path(__file__).resolve().parents[2]
DEMO_APP = REPO / "examples" / "demo-app"
FORBIDDEN = ("mdubiel", "192.168.1.14")
NO_STANDIN_SERVICES = {"grafana", "loki", "alloy", "cadvisor"}
PROBE = "archive-probe.txt"


# --- fixtures -----------------------------------------------------------------------------------


class Timings:
    def __init__(self) -> None:
        self.phases: dict[str, float] = {}

    def add(self, phase: str, seconds: float) -> None:
        self.phases[phase] = round(seconds, 1)


@pytest.fixture(scope="module")
def timings(request: pytest.FixtureRequest) -> Iterator[Timings]:
    recorded = Timings()
    yield recorded
    if recorded.phases:
        lines = [f"  {phase:<52} {seconds:>7.1f} s" for phase, seconds in recorded.phases.items()]
        text = "\nsandbox timings:\n" + "\n".join(lines)
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        if reporter is not None and capture is not None:
            # Teardown output is captured; the timings are the point of printing.
            with capture.global_and_fixture_disabled():
                reporter.write_line(text)


@pytest.fixture(scope="module")
def docker_engine() -> None:
    if not docker_available():
        missing_tool(
            "no Docker daemon answers `docker info`: start one with "
            "`scripts/testbed-setup.sh docker` (as root)"
        )


def _unique(prefix: str) -> str:
    return f"stagectl-sbxtest-{prefix}-{uuid.uuid4().hex[:8]}"


def _cleanup(name: str) -> None:
    """down with data; then force, in case the sandbox is half-made or down itself failed."""
    try:
        server.down(name, remove_data=True)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
        subprocess.run(
            ["docker", "volume", "rm", "-f", server.volume_name(name)],
            capture_output=True,
            check=False,
        )


def _up(name: str, root: Path, **kwargs: object) -> SandboxInfo:
    """up on free ports, with a small archive directory of its own (the real archive is large
    and has its own test)."""
    archive_dir = root / "archive"
    archive_dir.mkdir(parents=True, exist_ok=True)
    (archive_dir / PROBE).write_text("probe\n")
    return server.up(
        name,
        ssh_port=0,
        http_port=0,
        https_port=0,
        state_dir=root / "state",
        archive_dir=archive_dir,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def sandbox(
    docker_engine: None, tmp_path_factory: pytest.TempPathFactory, timings: Timings
) -> Iterator[SandboxInfo]:
    name = _unique("mod")
    root = tmp_path_factory.mktemp("sandbox")
    try:
        # The image itself is built (or found) first, so that `up` below times a new container.
        start = time.monotonic()
        ImageBuilder(out=lambda _line: None).build(["sandbox-server"])
        timings.add("sandbox image (build or cache hit)", time.monotonic() - start)
        start = time.monotonic()
        info = _up(name, root)
        timings.add("up: image cached, new container", time.monotonic() - start)
        yield info
    finally:
        _cleanup(name)


def ssh(info: SandboxInfo, command: str, user: str = "root") -> subprocess.CompletedProcess[str]:
    cmd = server.ssh_command(info, user, ["sh", "-c", command])
    cmd[1:1] = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def docker_exec(name: str, script: str) -> str:
    return subprocess.run(
        ["docker", "exec", name, "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


# --- up -----------------------------------------------------------------------------------------


@pytest.mark.docker
def test_up_boots_systemd_and_root_logs_in_with_its_key(sandbox: SandboxInfo) -> None:
    assert sandbox.action == "created"
    assert sandbox.login_user == "root"
    who = ssh(sandbox, "whoami")
    assert who.returncode == 0, who.stderr
    assert who.stdout.strip() == "root"
    state = ssh(sandbox, "systemctl is-system-running")
    assert state.stdout.strip() == "running", ssh(sandbox, "systemctl --failed").stdout
    assert sandbox.systemd_state == "running"
    assert ssh(sandbox, "hostname").stdout.strip() == server.HOSTNAME


@pytest.mark.docker
def test_keys_are_private_and_host_keys_pinned(sandbox: SandboxInfo) -> None:
    assert stat.S_IMODE(sandbox.state_dir.stat().st_mode) == 0o700
    for path in (
        sandbox.root_key,
        sandbox.root_public_key,
        sandbox.ansible_key,
        sandbox.ansible_public_key,
        sandbox.known_hosts,
    ):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert sandbox.ansible_public_key.read_text().startswith("ssh-ed25519 ")
    pinned = sandbox.known_hosts.read_text()
    server_keys = docker_exec(sandbox.name, "cat /etc/ssh/ssh_host_ed25519_key.pub").split()[1]
    assert f"[127.0.0.1]:{sandbox.ssh_port} ssh-ed25519 {server_keys}" in pinned


@pytest.mark.docker
def test_image_archive_directory_is_mounted_read_only(sandbox: SandboxInfo) -> None:
    mount = ssh(sandbox, f"grep ' {server.SERVER_ARCHIVE_DIR} ' /proc/mounts")
    assert mount.returncode == 0, "no mount on /opt/stagectl-images"
    assert "ro" in mount.stdout.split()[3].split(","), mount.stdout
    assert ssh(sandbox, f"cat {server.SERVER_ARCHIVE_DIR}/{PROBE}").stdout == "probe\n"
    write = ssh(sandbox, f"touch {server.SERVER_ARCHIVE_DIR}/x")
    assert write.returncode != 0
    assert "Read-only file system" in write.stderr


@pytest.mark.docker
def test_ssh_http_https_published_on_loopback_only(sandbox: SandboxInfo) -> None:
    out = subprocess.run(
        ["docker", "port", sandbox.name], capture_output=True, text=True, check=True
    ).stdout
    published: dict[str, str] = {}
    for line in out.splitlines():
        inner, _, outer = line.partition(" -> ")
        published[inner.strip()] = outer.strip()
    assert published == {
        "22/tcp": f"127.0.0.1:{sandbox.ssh_port}",
        "80/tcp": f"127.0.0.1:{sandbox.http_port}",
        "443/tcp": f"127.0.0.1:{sandbox.https_port}",
    }
    assert len({sandbox.ssh_port, sandbox.http_port, sandbox.https_port}) == 3


@pytest.mark.docker
def test_container_ip_is_the_servers_address_on_the_bridge(sandbox: SandboxInfo) -> None:
    """What "from outside the server" tests connect to: sshd answers there on 22."""
    with socket.create_connection((sandbox.container_ip, 22), timeout=5) as conn:
        conn.settimeout(5)
        assert conn.recv(64).startswith(b"SSH-2.0-")


@pytest.mark.docker
def test_up_again_changes_nothing(sandbox: SandboxInfo, timings: Timings) -> None:
    start = time.monotonic()
    again = server.up(sandbox.name, state_dir=sandbox.state_dir)
    timings.add("up again: container running (idempotent)", time.monotonic() - start)
    assert again.action == "running"
    assert again.container_id == sandbox.container_id
    # The ports it was made with, not the defaults passed by this call.
    assert (again.ssh_port, again.http_port, again.https_port) == (
        sandbox.ssh_port,
        sandbox.http_port,
        sandbox.https_port,
    )
    keys = ssh(sandbox, "cat /root/.ssh/authorized_keys").stdout.splitlines()
    assert len(keys) == 1, "root's key was authorized twice"


@pytest.mark.docker
def test_status_reports_the_running_sandbox(sandbox: SandboxInfo) -> None:
    result = server.status(sandbox.name)
    assert result.exists and result.state == "running"
    assert result.container_id == sandbox.container_id
    assert result.ports == {22: sandbox.ssh_port, 80: sandbox.http_port, 443: sandbox.https_port}
    assert result.systemd_state == "running"
    assert result.volume_exists
    assert result.image_current
    assert result.info is not None and result.info.root_key == sandbox.root_key


@pytest.mark.docker
def test_restart_keeps_docker_volume_and_opt(sandbox: SandboxInfo, timings: Timings) -> None:
    token = uuid.uuid4().hex
    docker_exec(
        sandbox.name,
        f"echo {token} > /var/lib/docker/stagectl-probe && mkdir -p /opt/shared "
        f"&& echo {token} > /opt/shared/stagectl-probe",
    )
    start = time.monotonic()
    info = server.restart(sandbox.name)
    timings.add("restart (stop + start + boot + SSH)", time.monotonic() - start)
    assert info.action == "restarted"
    assert info.container_id == sandbox.container_id
    assert info.ssh_port == sandbox.ssh_port, "the SSH port moved: the environment would be stale"
    # The file systems persist; the container's processes (systemd) really started over.
    assert ssh(info, "cat /var/lib/docker/stagectl-probe /opt/shared/stagectl-probe").stdout == (
        f"{token}\n{token}\n"
    )
    assert ssh(info, "systemctl is-system-running").stdout.strip() == "running"
    assert ssh(info, "cat /proc/1/comm").stdout.strip() == "systemd"


@pytest.mark.docker
def test_environment_for_a_real_sandbox_reaches_it_with_ansible(
    sandbox: SandboxInfo, tmp_path: Path
) -> None:
    """The archive saved into the sandbox's directory is visible inside at its server path, and
    Ansible, with the environment's own connection settings (port, pinned host keys), logs in
    (as root here: the ansible user is the bootstrap's to make)."""
    saved = archive.ensure_archive(sandbox.archive_dir, names=["redis-exporter"])
    assert ssh(sandbox, f"test -s {saved.server_path}").returncode == 0
    env_root, password_file = tmp_path / "env", tmp_path / "vault-pass"
    write_sandbox_environment(
        env_root, sandbox, password_file, DEMO_APP, preload_archives=[saved.server_path]
    )
    load_environment(env_root, vault_password_file=password_file)
    ansible = Path(sys.executable).with_name("ansible")
    proc = subprocess.run(
        [
            str(ansible), "sandbox", "-m", "ansible.builtin.ping",
            "-e", "ansible_user=root",
            "-e", f"ansible_ssh_private_key_file={sandbox.root_key}",
        ],
        cwd=env_root,
        env={**os.environ, **collection.ansible_env()},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"ping": "pong"' in proc.stdout


# --- lifecycle on a sandbox of its own ----------------------------------------------------------


@pytest.mark.docker
def test_stopped_sandbox_starts_and_down_keeps_or_removes_the_volume(
    docker_engine: None, tmp_path: Path, timings: Timings
) -> None:
    name = _unique("life")
    try:
        info = _up(name, tmp_path)
        token = uuid.uuid4().hex
        docker_exec(name, f"echo {token} > /var/lib/docker/stagectl-probe")

        subprocess.run(["docker", "stop", name], capture_output=True, check=True, timeout=120)
        assert server.status(name).state == "exited"
        start = time.monotonic()
        started = server.up(name, state_dir=tmp_path / "state")
        timings.add("up: stopped container started", time.monotonic() - start)
        assert started.action == "started"
        assert started.container_id == info.container_id

        result = server.down(name)
        assert result.container_removed and not result.volume_removed
        gone = server.status(name)
        assert not gone.exists and gone.state == "absent"
        assert gone.volume_exists, "down without remove_data must keep the Docker volume"

        # A new container: new host keys (pinned again), same volume.
        again = _up(name, tmp_path)
        assert again.action == "created" and again.container_id != info.container_id
        probe = ssh(again, "cat /var/lib/docker/stagectl-probe")
        assert probe.returncode == 0, probe.stderr
        assert probe.stdout.strip() == token

        removed = server.down(name, remove_data=True)
        assert removed.container_removed and removed.volume_removed
        assert removed.volumes == (f"{name}-docker", f"{name}-opt", f"{name}-letsencrypt")
        assert not server.status(name).volume_exists
        # down of what is no longer there is no error, and names no volume.
        assert server.down(name, remove_data=True) == replace(
            removed, container_removed=False, volume_removed=False, volumes=()
        )
    finally:
        _cleanup(name)


@pytest.mark.docker
def test_foreign_container_is_never_touched(docker_engine: None, tmp_path: Path) -> None:
    name = _unique("foreign")
    image = ImageBuilder(out=lambda _line: None).ref("base:trixie")
    subprocess.run(["docker", "create", "--name", name, image], capture_output=True, check=True)
    try:
        with pytest.raises(NotASandbox):
            server.down(name, remove_data=True)
        with pytest.raises(NotASandbox):
            server.up(name, state_dir=tmp_path / "state", archive_dir=tmp_path / "archive")
        inspect = subprocess.run(["docker", "inspect", name], capture_output=True, check=False)
        assert inspect.returncode == 0
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


@pytest.mark.docker
def test_busy_port_is_a_typed_error_and_leaves_nothing(docker_engine: None, tmp_path: Path) -> None:
    name = _unique("busy")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        try:
            with pytest.raises(SandboxPortBusy) as raised:
                server.up(
                    name,
                    ssh_port=port,
                    http_port=0,
                    https_port=0,
                    state_dir=tmp_path / "state",
                    archive_dir=tmp_path / "archive",
                )
            assert raised.value.ports == {"ssh": port}
            assert raised.value.hint
            assert not server.status(name).exists
        finally:
            _cleanup(name)


# --- the image archive --------------------------------------------------------------------------


@pytest.mark.docker
def test_archive_is_saved_once_and_reused(
    docker_engine: None, tmp_path: Path, timings: Timings
) -> None:
    """Two small stand-ins (FROM scratch) keep this quick; the full set is the same code."""
    names = ["redis-exporter", "nginx-exporter"]
    start = time.monotonic()
    first = archive.ensure_archive(tmp_path, names=names)
    timings.add(
        f"archive of {len(names)} small stand-ins ({first.size_bytes / 1e6:.0f} MB, {first.status})",
        time.monotonic() - start,
    )
    builder = ImageBuilder(out=lambda _line: None)
    assert first.images == tuple(builder.ref(n) for n in names)
    assert first.path.parent == tmp_path and first.path.name.startswith("standins-")
    assert first.server_path == f"/opt/stagectl-images/{first.path.name}"
    with tarfile.open(first.path) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        tags = {tag for entry in json.load(member) for tag in entry["RepoTags"]}
    assert tags == set(first.images)

    second = archive.ensure_archive(tmp_path, names=names)
    assert second.status == "cached" and second.path == first.path
    assert second.path.stat().st_mtime == first.path.stat().st_mtime
    assert not list(tmp_path.glob(".standins-*.tmp"))


# --- the environment (no Docker needed) ---------------------------------------------------------


ARCHIVE_NAME = "standins-0123456789abcdef.tar"
ARCHIVE_IN_SERVER = f"/opt/stagectl-images/{ARCHIVE_NAME}"


def fake_info(root: Path, ssh_port: int = 42222) -> SandboxInfo:
    """A sandbox as `up` describes it, without Docker; its archive directory holds a (fake)
    archive."""
    state = root / "state"
    (root / "archive").mkdir(exist_ok=True)
    (root / "archive" / ARCHIVE_NAME).write_bytes(b"")
    return SandboxInfo(
        name="stagectl-sandbox",
        container_id="0" * 64,
        image="stagectl-sandbox/server:test",
        ssh_host="127.0.0.1",
        ssh_port=ssh_port,
        http_port=48080,
        https_port=48443,
        container_ip="172.17.0.99",
        state_dir=state,
        root_key=state / "root_ed25519",
        ansible_key=state / "ansible_ed25519",
        known_hosts=state / "known_hosts",
        volume="stagectl-sandbox-docker",
        archive_dir=root / "archive",
    )


def test_environment_validates_and_names_none_of_the_example_servers(tmp_path: Path) -> None:
    info = fake_info(tmp_path)
    env_root, password_file = default_environment_paths(info)
    result = write_sandbox_environment(
        env_root, info, password_file, DEMO_APP, preload_archives=[ARCHIVE_IN_SERVER]
    )
    loaded = load_environment(env_root, vault_password_file=password_file)
    env = loaded.env

    ((host_name, host),) = env.inventory.staging.hosts.items()
    assert host_name == "sandbox" and host is not None
    extra = host.model_extra or {}
    assert host.ansible_host == "127.0.0.1"
    assert extra["ansible_port"] == info.ssh_port
    assert extra["ansible_user"] == "ansible"
    assert extra["ansible_ssh_private_key_file"] == str(info.ansible_key)
    assert f"UserKnownHostsFile={info.known_hosts}" in extra["ansible_ssh_common_args"]

    assert env.server_domain == "sandbox.test"
    assert [(p.name, p.domain, p.repo) for p in env.projects] == [
        ("beryl3", "beryl3.sandbox.test", str(DEMO_APP)),
        ("project2", "project2.sandbox.test", str(DEMO_APP)),
    ]
    assert [p.ports.model_dump() for p in env.projects] == [
        {"postgres": 5432, "django": 8000, "redis": 6379},
        {"postgres": 5433, "django": 8001, "redis": 6380},
    ]
    assert not loaded.allocated

    services = env.settings.shared_services.model_dump()
    assert {name for name, svc in services.items() if not svc["enabled"]} == NO_STANDIN_SERVICES
    assert {d.service for d in result.disabled} == NO_STANDIN_SERVICES
    assert all(d.reason for d in result.disabled)
    for name, svc in services.items():
        if svc["enabled"]:
            assert svc["image"].startswith("stagectl-standin/"), name
    assert all(
        image.startswith("stagectl-standin/")
        for image in env.settings.project_defaults.images.model_dump().values()
    )
    assert env.settings.docker.preload_archives == [ARCHIVE_IN_SERVER]
    assert env.staging.certificates.provider == "selfsigned"

    texts = [path.read_text() for path in env_root.rglob("*") if path.is_file()]
    texts.append(
        yaml.safe_dump(
            decrypt(env_root / "group_vars/vault.yml", read_password_file(password_file))
        )
    )
    for text in texts:
        for forbidden in FORBIDDEN:
            assert forbidden not in text


def test_rewriting_the_environment_keeps_the_vault(tmp_path: Path) -> None:
    info = fake_info(tmp_path)
    env_root, password_file = default_environment_paths(info)
    first = write_sandbox_environment(
        env_root, info, password_file, DEMO_APP, preload_archives=[ARCHIVE_IN_SERVER]
    )
    secrets = decrypt(env_root / "group_vars/vault.yml", read_password_file(password_file))
    moved = replace(info, ssh_port=42223)
    second = write_sandbox_environment(
        env_root, moved, password_file, DEMO_APP, preload_archives=[ARCHIVE_IN_SERVER]
    )
    assert first.vault_created and not second.vault_created
    assert decrypt(env_root / "group_vars/vault.yml", read_password_file(password_file)) == secrets
    env = load_environment(env_root, vault_password_file=password_file).env
    (host,) = env.inventory.staging.hosts.values()
    assert host is not None and (host.model_extra or {})["ansible_port"] == 42223

    with pytest.raises(VaultError):
        write_sandbox_environment(
            env_root, info, tmp_path / "other-pass", DEMO_APP, preload_archives=[ARCHIVE_IN_SERVER]
        )


def test_environment_refuses_bad_inputs(tmp_path: Path) -> None:
    info = fake_info(tmp_path)
    env_root = tmp_path / "env"
    with pytest.raises(SandboxEnvironmentError):
        write_sandbox_environment(
            env_root, info, env_root / "vault-pass", DEMO_APP, preload_archives=[]
        )
    with pytest.raises(SandboxEnvironmentError):
        write_sandbox_environment(
            env_root, info, tmp_path / "pass", tmp_path / "nowhere", preload_archives=[]
        )
    # An archive the sandbox cannot see: saved elsewhere, or not under the mount.
    for wrong in ("/opt/stagectl-images/standins-missing.tar", f"/tmp/{ARCHIVE_NAME}"):
        with pytest.raises(SandboxEnvironmentError, match="archive directory"):
            write_sandbox_environment(
                env_root, info, tmp_path / "pass", DEMO_APP, preload_archives=[wrong]
            )


def test_bootstrap_target_logs_in_as_root_and_installs_the_ansible_key(tmp_path: Path) -> None:
    info = fake_info(tmp_path)
    target = bootstrap_target(info)
    assert target.login == "root@127.0.0.1"
    assert target.port == info.ssh_port
    assert target.connect_key == info.root_key
    assert target.ansible_public_key == Path(f"{info.ansible_key}.pub")
    assert target.extra_vars() == {
        "ansible_user": "root",
        "bootstrap_connect_key_file": str(info.root_key),
    }
    assert f"UserKnownHostsFile={info.known_hosts}" in target.ssh_common_args


def test_ssh_command_uses_the_users_key_and_pinned_host_keys(tmp_path: Path) -> None:
    info = fake_info(tmp_path)
    root = server.ssh_command(info)
    assert root[:5] == ["ssh", "-i", str(info.root_key), "-p", str(info.ssh_port)]
    assert root[-1] == "root@127.0.0.1"
    assert "StrictHostKeyChecking=yes" in root and f"UserKnownHostsFile={info.known_hosts}" in root
    ansible = server.ssh_command(info, "ansible", ["sudo", "-n", "true"])
    assert ansible[2] == str(info.ansible_key)
    assert ansible[-2:] == ["ansible@127.0.0.1", "sudo -n true"]
    # The server's shell splits the one string ssh sends: a word with a space stays one word.
    spaced = server.ssh_command(info, "root", ["ls", "a b", "$HOME"])
    assert spaced[-1] == "ls 'a b' '$HOME'"
