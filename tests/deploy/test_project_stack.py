"""The `project` and `backups` roles deploying the example projects on a real sandbox server.

The session's sandbox, bootstrapped and deployed by tests/deploy/conftest.py (beryl3 and
project2 both built from examples/demo-app); health, notes, isolation, byte-for-byte files and
the no-op redeploy are checked in test_end_to_end.py on the same deployment.

The tests then check the stacks from inside the server (`docker exec`, never the example's address):
health through each project nginx, notes written through the app, isolation between the
projects, secrets files, published ports, files byte for byte as `stagectl plan` renders them,
idempotence (a second run and `--check --diff` change nothing), data across `docker compose down
&& up`, and a backup that restores. Releases (backup, gated migration, hand-over through a
candidate, a broken release dropped) are tested under load in test_zero_downtime.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from stagectl import collection
from stagectl.environment import INVENTORY, VAULT
from stagectl.sandbox.server import SandboxInfo
from stagectl.vault import decrypt, read_password_file
from tests.deploy.conftest import Deployed
from tests.roles.sandbox import PlaybookRun, run_playbook

pytestmark = pytest.mark.sandbox

REPO = Path(__file__).resolve().parents[2]
DEMO_APP = REPO / "examples" / "demo-app"
PROJECT_DEPLOY = collection.playbook("project-deploy")
HOST = "sandbox"
PROJECTS = ("beryl3", "project2")
SERVICES = ("postgres", "redis", "django", "nginx", "postgres-exporter", "redis-exporter",
            "nginx-exporter")
# Host ports of the example projects (the defaults), which must listen on 127.0.0.1 only.
LOOPBACK_PORTS = {5432, 5433, 6379, 6380, 8000, 8001}
# On the test bed, PyPI over HTTPS from inside a container needs the machine's CA bundle.
# Test-bed plumbing, handed to the role's build secret `ca`; production has none.
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# A stuck deploy must end the test, not the CI run.
PLAY_TIMEOUT = 1500


@dataclass
class Stack:
    info: SandboxInfo
    root: Path
    vault_password_file: Path
    extra_vars: Path
    runs: dict[str, PlaybookRun] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    good_release: Path | None = None

    def sh(self, script: str, *, check: bool = True, timeout: float = 180) -> str:
        """A shell script on the server as root, through `docker exec` (not SSH)."""
        proc = subprocess.run(
            ["docker", "exec", "-i", self.info.name, "bash", "-euo", "pipefail", "-c", script],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"on the sandbox: {script}\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def read(self, path: str) -> bytes:
        proc = subprocess.run(["docker", "exec", self.info.name, "cat", path],
                              capture_output=True, timeout=60, check=False)
        assert proc.returncode == 0, f"cannot read {path} on the sandbox: {proc.stderr!r}"
        return proc.stdout

    def play(self, label: str, playbook: Path | str, *args: str) -> PlaybookRun:
        run = run_playbook(self.root, self.vault_password_file, playbook, *args, timeout=PLAY_TIMEOUT)
        self.runs[label] = run
        self.timings[label] = run.seconds
        return run

    def deploy(self, label: str, *args: str) -> PlaybookRun:
        return self.play(label, PROJECT_DEPLOY, "-e", f"@{self.extra_vars}", *args)

    def app(self, project: str, method: str, path: str, body: str | None = None) -> tuple[int, str]:
        """An HTTP request to the app through the project nginx, from inside that container, with
        the headers the main nginx would add."""
        domain = f"{project}.sandbox.test"
        data = ["-H", "Content-Type: application/json", "--data-binary", "@-"] if body is not None else []
        proc = subprocess.run(
            ["docker", "exec", "-i", self.info.name, "docker", "exec", "-i", f"{project}-nginx",
             "curl", "-sS", "--max-time", "20", "-X", method, "-H", f"Host: {domain}",
             "-H", "X-Forwarded-Proto: https", *data, "-o", "-", "-w", "\n%{http_code}",
             f"http://127.0.0.1{path}"],
            input=body, capture_output=True, text=True, timeout=60, check=False,
        )
        text, _, code = proc.stdout.rpartition("\n")
        return int(code or 0), text

    def image_id(self, ref: str) -> str:
        return self.sh(f"docker image inspect --format '{{{{.Id}}}}' {ref} 2>/dev/null || true").strip()

    def set_repo(self, project: str, repo: Path) -> None:
        """Point one project of the environment at another source directory."""
        path = self.root / INVENTORY
        data = yaml.safe_load(path.read_text())
        for entry in data["staging"]["vars"]["projects"]:
            if entry["name"] == project:
                entry["repo"] = str(repo)
        path.write_text(yaml.safe_dump(data, sort_keys=False))


def assert_ok(run: PlaybookRun) -> dict[str, int]:
    recap = run.recap.get(HOST)
    assert run.returncode == 0 and recap and recap["failed"] == 0 and recap["unreachable"] == 0, run.explain()
    return recap


def containers(stack: Stack) -> dict[str, str]:
    out = stack.sh("docker ps -a --format '{{.Names}}\t{{.Status}}'")
    return dict(line.split("\t", 1) for line in out.splitlines() if line)


def wait_healthy(stack: Stack, names: list[str], timeout: float = 240) -> dict[str, str]:
    """Names not (yet) healthy after at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        status = containers(stack)
        bad = {n: status.get(n, "missing") for n in names if "(healthy)" not in status.get(n, "")}
        if not bad or time.monotonic() > deadline:
            return bad
        time.sleep(5)


def all_containers() -> list[str]:
    return [f"{project}-{service}" for project in PROJECTS for service in SERVICES]


def notes(stack: Stack, project: str) -> list[str]:
    status, body = stack.app(project, "GET", "/notes/")
    assert status == 200, body
    return [note["text"] for note in json.loads(body)["notes"]]


def write_note(stack: Stack, project: str, text: str) -> None:
    status, body = stack.app(project, "POST", "/notes/", json.dumps({"text": text}))
    assert status == 201, body


def release(tmp: Path, name: str, *, broken: bool = False) -> Path:
    """A copy of the demo app as a new release: one file more; `broken` makes the server process
    exit at start (the migration step, which runs other commands, still works)."""
    target = tmp / name
    shutil.copytree(DEMO_APP, target, ignore=shutil.ignore_patterns(".venv", "__pycache__", ".ruff_cache"))
    (target / "RELEASE").write_text(f"{name}\n")
    if broken:
        # The web process (gunicorn with this config) cannot start; manage.py never reads it.
        config = target / "gunicorn.conf.py"
        config.write_text('raise SystemExit("broken release")\n' + config.read_text())
    return target


@pytest.fixture(scope="module")
def stack(deployed: Deployed, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """The session's deployed sandbox (tests/deploy/conftest.py), seen through this module's
    helpers; later deploys here run project-deploy.yml directly."""
    no_extra = tmp_path_factory.mktemp("project-stack") / "extra-vars.json"
    no_extra.write_text("{}")
    return Stack(info=deployed.info, root=deployed.root, vault_password_file=deployed.vault_password_file,
                 extra_vars=no_extra, timings=deployed.timings)


def vault_secrets(stack: Stack) -> list[str]:
    data = decrypt(stack.root / VAULT, read_password_file(stack.vault_password_file))
    values = [v for k, v in data.items() if isinstance(v, str) and k != "vault_prometheus_password_bcrypt"]
    for project in data.get("vault_projects", {}).values():
        values.extend(project.values())
    return values


# --- the first deployment -----------------------------------------------------------------------


@pytest.mark.parametrize("project", PROJECTS)
def test_app_answers_through_its_nginx(stack: Stack, project: str) -> None:
    status, body = stack.app(project, "GET", "/healthz")
    assert (status, body.strip()) == (200, "ok")
    status, body = stack.app(project, "GET", "/readyz")
    assert status == 200, body
    answer = json.loads(body)
    assert answer["status"] == "ok", answer
    assert answer["checks"]["database"]["ok"] is True and answer["checks"]["redis"]["ok"] is True


def test_env_files_are_root_only(stack: Stack) -> None:
    for project in PROJECTS:
        config = f"/opt/projects/{project}/config"
        assert stack.sh(f"stat -c '%a %U %G' {config}/.env").split() == ["600", "root", "root"]
        for name in ("postgres.env", "postgres-exporter.env", "redis-exporter.env"):
            assert stack.sh(f"stat -c '%a %U' {config}/{name}").split() == ["600", "root"]
        # Read by the redis user of the image (uid 999), by nobody else.
        assert stack.sh(f"stat -c '%a %u' {config}/redis.conf").split() == ["600", "999"]


def test_database_cache_and_app_ports_listen_on_loopback_only(stack: Stack) -> None:
    listening: dict[int, set[str]] = {}
    for line in stack.sh("ss -Htln").splitlines():
        local = line.split()[3]
        address, _, port = local.rpartition(":")
        listening.setdefault(int(port), set()).add(address)
    for port in LOOPBACK_PORTS:
        assert listening.get(port) == {"127.0.0.1"}, f"port {port}: {listening.get(port)}"


def test_backup_timers_are_enabled_and_active(stack: Stack) -> None:
    for project in PROJECTS:
        for unit in (f"stagectl-backup@{project}.timer", f"stagectl-backup-verify@{project}.timer"):
            assert stack.sh(f"systemctl is-enabled {unit}").strip() == "enabled", unit
            assert stack.sh(f"systemctl is-active {unit}").strip() == "active", unit


# --- idempotence --------------------------------------------------------------------------------


def test_no_secret_in_any_output(stack: Stack) -> None:
    secrets = vault_secrets(stack)
    assert secrets
    for label, run in stack.runs.items():
        leaked = [s[:4] + "..." for s in secrets if s in run.output]
        assert not leaked, f"secrets in the output of {label}: {leaked}"


def test_notes_survive_compose_down_and_up(stack: Stack) -> None:
    text = f"before down {uuid.uuid4().hex[:6]}"
    write_note(stack, "project2", text)
    stack.sh("cd /opt/projects/project2 && docker compose down && "
             "docker compose up --detach --wait --wait-timeout 240", timeout=420)
    assert wait_healthy(stack, [f"project2-{s}" for s in SERVICES]) == {}
    assert text in notes(stack, "project2")


def test_backup_runs_and_restores(stack: Stack) -> None:
    stack.sh("stagectl-backup run project2", timeout=300)
    newest = stack.sh("stagectl-backup list project2").splitlines()[0].split("\t")
    dump = newest[2]
    assert dump.startswith("/opt/backups/project2/project2-") and dump.endswith(".dump")
    assert int(newest[1]) > 0
    assert stack.sh("stat -c '%a' /opt/backups/project2").strip() == "700"
    proc = subprocess.run(
        ["docker", "exec", stack.info.name, "stagectl-backup", "verify", "project2"],
        capture_output=True, text=True, timeout=400, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "restore test of project project2 passed" in proc.stderr
    # The throwaway container is gone.
    assert "stagectl-verify-" not in stack.sh("docker ps -a --format '{{.Names}}'")


def test_report_timings(stack: Stack) -> None:
    lines = [f"  {label:<44} {seconds:>7.1f} s" for label, seconds in stack.timings.items()]
    print("\nproject stack timings:\n" + "\n".join(lines))
    if os.environ.get("STAGECTL_TIMINGS_FILE"):
        Path(os.environ["STAGECTL_TIMINGS_FILE"]).write_text(json.dumps(stack.timings, indent=2))
