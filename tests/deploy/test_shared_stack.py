"""The `certificates` and `shared_monitoring` roles on the session's deployed sandbox.

The server is the one tests/deploy/conftest.py brings up, bootstraps and deploys with the real
`stagectl deploy` (fixture `deployed`); this module adds no sandbox of its own. What
test_end_to_end.py already checks on that deployment (containers healthy, files byte for byte as
`plan` renders them, a second deploy and `--check` changing nothing) is not repeated here. The
sandbox environment runs the stand-in images; Grafana, Loki, Alloy and cAdvisor have none and are
switched off there, which also shows what a switched-off service leaves out: its container, its
compose service, its scrape jobs and probes, its place in the main nginx. Its configuration files
and directories are still written (and validated by `plan`), ready for when it is switched on.

The tests look at the server from inside (`docker exec`) and through the ports the sandbox
publishes on 127.0.0.1, never anything else: the switched-off services absent from the running
stack and its configuration, Prometheus behind its basic auth, Alertmanager ready, the main nginx answering for
the monitoring domain with the self-signed certificate and refusing unknown hosts, every domain's
certificate, the secret files' owners. Then they run the roles the way site.yml's second play
does (certificates, then the shared stack) and its phase 5, as small playbooks through
tests/roles/sandbox.py's `run_playbook` on the same environment: configuration drift previewed
with `--check --diff` (nothing may change), repaired with reloads instead of restarts, a
certificate renewed before it expires, a run after the repair changing nothing; phase 5 naming
a project exporter that is down, and passing once it runs again; and no secret in any of those
runs' output.

Every change a test makes is undone before the module ends (the drift is repaired by the roles,
the stopped exporter started again), and the last test checks that the server is left healthy:
other modules may use the same deployment after this one.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from stagectl.derived import derive
from stagectl.environment import ALL_VARS, VAULT, load_environment
from stagectl.plan import plan
from stagectl.sandbox.server import SandboxInfo
from stagectl.scaffold import init_environment
from stagectl.vault import decrypt, read_password_file
from tests.deploy.conftest import Deployed
from tests.roles.sandbox import PlaybookRun, run_playbook

SANDBOX = pytest.mark.sandbox

HOST = "sandbox"
SHARED = "/opt/shared"
LIVE = "/etc/letsencrypt/live"
# A stuck run must end the test, not the CI run.
PLAY_TIMEOUT = 1500

# Services of the sandbox's shared stack (stand-ins exist) and those switched off there.
RUNNING = {"prometheus", "alertmanager", "node-exporter", "blackbox-exporter", "nginx",
           "nginx-edge-exporter", "docker-api"}
SWITCHED_OFF = {"grafana", "loki", "alloy", "cadvisor"}
# The project exporter phase 5 must name when it is down (a container of the example's beryl3).
DOWN_PROJECT, DOWN_JOB = "beryl3", "redis-exporter"
DOWN_CONTAINER = f"{DOWN_PROJECT}-{DOWN_JOB}"

# What site.yml's second play does: certificates first, then the shared stack.
SHARED_PLAY = """\
- name: Certificates, then the shared stack
  hosts: staging
  become: true
  roles:
    - role: stagectl.staging.certificates
    - role: stagectl.staging.shared_monitoring
"""
# What site.yml's last play does.
INTEGRATION = """\
- name: Phase 5 (service integration)
  hosts: staging
  become: true
  tasks:
    - name: Check that Prometheus scrapes every target
      ansible.builtin.include_role:
        name: stagectl.staging.shared_monitoring
        tasks_from: integration
"""


@dataclass
class Shared:
    deployed: Deployed
    playbooks: Path
    logs: Path
    vault: dict[str, Any]
    #: Names of the containers running on the server when the module began.
    running_at_start: set[str] = field(default_factory=set)
    runs: dict[str, PlaybookRun] = field(default_factory=dict)
    #: Seconds per run, printed at the end of the module (the report's figures).
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def info(self) -> SandboxInfo:
        return self.deployed.info

    def play(self, label: str, playbook: Path | str, *args: str) -> PlaybookRun:
        run = run_playbook(self.deployed.root, self.deployed.vault_password_file, playbook, *args,
                           timeout=PLAY_TIMEOUT)
        self.runs[label] = run
        self.timings[label] = run.seconds
        # Every run's whole output in the module's temp dir (pytest keeps the last ones).
        (self.logs / f"{len(self.runs):02d} {label.replace('/', '-')}.log").write_text(run.explain())
        return run

    def deploy(self, label: str, *args: str) -> PlaybookRun:
        return self.play(label, self.playbooks / "shared.yml", *args)

    def integration(self, label: str, *args: str) -> PlaybookRun:
        return self.play(label, self.playbooks / "integration.yml", *args)

    def sh(self, script: str, *, check: bool = True, timeout: float = 120, stdin: str | None = None) -> str:
        return self.deployed.sh(script, check=check, timeout=timeout, stdin=stdin)

    def read(self, path: str) -> bytes:
        proc = subprocess.run(["docker", "exec", self.info.name, "cat", path],
                              capture_output=True, timeout=60, check=False)
        assert proc.returncode == 0, f"cannot read {path} on the sandbox: {proc.stderr!r}"
        return proc.stdout

    def containers(self) -> dict[str, dict[str, str]]:
        """Compose service -> {name, state, health, started} of the shared stack."""
        out = self.sh(
            "docker ps -a --filter label=com.docker.compose.project=shared --format "
            "'{{.Label \"com.docker.compose.service\"}}\t{{.Names}}' | while IFS=$'\\t' read -r svc name; do "
            "printf '%s\\t%s\\t%s\\n' \"$svc\" \"$name\" \"$(docker inspect --format "
            "'{{.State.Status}}\t{{if .State.Health}}{{.State.Health.Status}}{{end}}\t{{.State.StartedAt}}' \"$name\")\"; done"
        )
        result = {}
        for line in out.splitlines():
            service, name, state, health, started = line.split("\t")
            result[service] = {"name": name, "state": state, "health": health, "started": started}
        return result

    def local_http(self, port: int, path: str, *, auth: bool = False) -> int:
        """HTTP status of GET 127.0.0.1:<port><path> inside the server; the password goes to curl
        on stdin, never on a command line."""
        config = f'user = "admin:{self.vault["vault_prometheus_password"]}"\n' if auth else ""
        out = self.sh(f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 10 --config - "
                      f"http://127.0.0.1:{port}{path}", stdin=config, check=False)
        return int(out or 0)

    def tree_digest(self) -> str:
        """Every file of the shared tree and of the certificates with its owner, mode and hash."""
        return self.sh(f"find {SHARED} {LIVE} -xdev \\( -path {SHARED}/prometheus/data -o -path "
                       f"{SHARED}/alertmanager/data \\) -prune -o -printf '%p %U:%G %m\\n' | sort; "
                       f"find {SHARED} {LIVE} -xdev -type f -not -path '*/data/*' -print0 | sort -z | xargs -0 md5sum")

    def statuses(self) -> dict[str, str]:
        """Every container on the server (`docker ps -a`): name -> status."""
        out = self.sh("docker ps -a --format '{{.Names}}\t{{.Status}}'")
        return dict(line.split("\t", 1) for line in out.splitlines() if line)

    def target(self, project: str, job: str) -> dict[str, Any] | None:
        """Prometheus' active target of one project's job, or None when it has none."""
        answer = self.deployed.prometheus("/api/v1/targets", state="active")
        for target in answer["data"]["activeTargets"]:
            if target["labels"].get("project") == project and target["labels"].get("job") == job:
                return target
        return None

    def wait_target(self, project: str, job: str, health: str, timeout: float = 120) -> dict[str, Any] | None:
        """The target once Prometheus reports it `health` (bounded: a few scrape intervals)."""
        deadline = time.monotonic() + timeout
        while True:
            target = self.target(project, job)
            if (target and target["health"] == health) or time.monotonic() > deadline:
                return target
            time.sleep(3)


def assert_ok(run: PlaybookRun) -> dict[str, int]:
    recap = run.recap.get(HOST)
    assert run.returncode == 0 and recap and recap["failed"] == 0 and recap["unreachable"] == 0, run.explain()
    return recap


def task_lines(run: PlaybookRun, task: str) -> str:
    """The result lines of one task of a run (up to the next task)."""
    marker = f" : {task}]"
    start = run.output.find(marker)
    assert start >= 0, f"task {task!r} did not run\n{run.explain()}"
    end = run.output.find("\nTASK [", start)
    handler = run.output.find("\nRUNNING HANDLER [", start)
    ends = [e for e in (end, handler) if e >= 0]
    return run.output[start:min(ends) if ends else None]


def https_get(port: int, server_name: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET https://<server_name><path> sent to 127.0.0.1:<port> (the sandbox's published 443), SNI
    and Host = server_name; the certificate is self-signed, so it is returned, not verified."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=server_name) as conn:
        lines = [f"GET {path} HTTP/1.1", f"Host: {server_name}", "Connection: close",
                 *(f"{k}: {v}" for k, v in (headers or {}).items()), "", ""]
        conn.sendall("\r\n".join(lines).encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
        cert = conn.getpeercert(binary_form=True) or b""
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, cert


@pytest.fixture(scope="module")
def shared(deployed: Deployed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    state = tmp_path_factory.mktemp("shared-stack")
    playbooks, logs = state / "playbooks", state / "runs"
    playbooks.mkdir()
    logs.mkdir()
    (playbooks / "shared.yml").write_text(SHARED_PLAY)
    (playbooks / "integration.yml").write_text(INTEGRATION)
    vault = decrypt(deployed.root / VAULT, read_password_file(deployed.vault_password_file))
    stack = Shared(deployed=deployed, playbooks=playbooks, logs=logs, vault=vault)
    stack.running_at_start = {n for n, s in stack.statuses().items() if s.startswith("Up")}
    try:
        yield stack
    finally:
        lines = [f"  {label:<52} {seconds:>7.1f} s" for label, seconds in stack.timings.items()]
        print(f"\nshared stack runs (logs in {logs}):\n" + "\n".join(lines))


# --- the deployed stack ----------------------------------------------------------------------------


@SANDBOX
def test_switched_off_services_are_absent_everywhere(shared: Shared) -> None:
    assert set(shared.containers()) == RUNNING, "no container of a switched-off service, all others"
    compose = yaml.safe_load(shared.read(f"{SHARED}/docker-compose.yml"))
    assert set(compose["services"]) == RUNNING
    prometheus = yaml.safe_load(shared.read(f"{SHARED}/prometheus/config/prometheus.yml"))
    jobs = {job["job_name"] for job in prometheus["scrape_configs"]}
    assert not jobs & SWITCHED_OFF, jobs
    assert "grafana.sandbox.test" not in str(prometheus["scrape_configs"])  # no probe of a Grafana that is not there
    active = shared.deployed.prometheus("/api/v1/targets", state="active")["data"]["activeTargets"]
    assert active and not {t["labels"].get("job") for t in active} & SWITCHED_OFF
    monitoring = shared.read(f"{SHARED}/nginx/config/conf.d/monitoring.conf").decode()
    assert "proxy_pass" in monitoring and "http://grafana:" not in monitoring
    assert "return 301 https://prometheus.sandbox.test$request_uri;" in monitoring


@SANDBOX
def test_prometheus_answers_only_with_its_password(shared: Shared) -> None:
    assert shared.local_http(9090, "/api/v1/status/buildinfo") == 401
    assert shared.local_http(9090, "/api/v1/status/buildinfo", auth=True) == 200


@SANDBOX
def test_alertmanager_is_ready(shared: Shared) -> None:
    assert shared.local_http(9093, "/-/ready") == 200


@SANDBOX
def test_main_nginx_serves_the_monitoring_domain_with_its_certificate(shared: Shared) -> None:
    port = shared.info.https_port
    status, der = https_get(port, "prometheus.sandbox.test", "/-/healthy")
    assert status == 401, "Prometheus' basic auth must reach through nginx"
    token = f"admin:{shared.vault['vault_prometheus_password']}"
    auth = {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}
    status, _ = https_get(port, "prometheus.sandbox.test", "/-/healthy", auth)
    assert status == 200
    status, _ = https_get(port, "prometheus.sandbox.test", "/-/reload", auth)
    assert status == 403, "the lifecycle endpoints are not for the internet"
    cert = x509.load_der_x509_certificate(der)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["prometheus.sandbox.test"]
    # Issued by the sandbox's ACME server (not the placeholder), far from renewal.
    assert cert.issuer != cert.subject
    assert (cert.not_valid_after_utc - datetime.now(UTC)).days > 30
    status, _ = https_get(port, "monitoring.sandbox.test", "/")
    assert status == 301


@SANDBOX
def test_unknown_hosts_get_no_answer(shared: Shared) -> None:
    with pytest.raises(ssl.SSLError):
        https_get(shared.info.https_port, "unknown.sandbox.test", "/")
    with socket.create_connection(("127.0.0.1", shared.info.http_port), timeout=10) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: unknown.sandbox.test\r\nConnection: close\r\n\r\n")
        assert conn.recv(1024) == b"", "nginx must close the connection without an answer (444)"


@SANDBOX
def test_every_domain_has_a_certificate_with_a_private_key(shared: Shared) -> None:
    """Who issued them is test_certificates' business; here: every name has its files, the key
    readable by root only (certbot's live/ names are links into archive/, hence -L)."""
    env = load_environment(shared.deployed.root, vault_password_file=shared.deployed.vault_password_file).env
    domains = [record.name for record in derive(env).dns_records]
    assert len(domains) == 5
    for domain in domains:
        stat = shared.sh(f"stat -L -c '%a %U' {LIVE}/{domain}/privkey.pem {LIVE}/{domain}/fullchain.pem")
        assert stat.split("\n")[:2] == ["600 root", "644 root"], (domain, stat)
        cert = x509.load_pem_x509_certificate(shared.read(f"{LIVE}/{domain}/fullchain.pem"))
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == [domain]


@SANDBOX
def test_secret_files_belong_to_their_container_user(shared: Shared) -> None:
    out = shared.sh(f"stat -c '%U:%G %a' {SHARED}/prometheus/config/secrets/prometheus_password")
    assert out.strip() == "nobody:nogroup 600"


# --- drift, reloads, renewal --------------------------------------------------------------------


@pytest.fixture(scope="module")
def drift(shared: Shared) -> Iterator[dict[str, Any]]:
    """Hand edits and files left behind; a preview of that drift
    with --check --diff (which must change nothing), then the roles' repair, then one more run.
    Should the repair not finish, the roles run once more at teardown: the server is shared."""
    before = shared.containers()
    shared.sh(
        f"echo '# edited by hand' >> {SHARED}/prometheus/config/prometheus.yml; "
        f"echo '# edited by hand' >> {SHARED}/alertmanager/config/alertmanager.yml; "
        f"echo '# edited by hand' >> {SHARED}/nginx/config/conf.d/default.conf; "
        f"echo '# edited by hand' >> {SHARED}/blackbox/config/blackbox.yml; "
        f"echo 'groups: []' > {SHARED}/prometheus/config/rules/left-behind.yml; "
        f"echo '# left behind' > {SHARED}/nginx/config/conf.d/left-behind.conf; "
        f"install -d {SHARED}/grafana/dashboards/removed-project; "
        f"echo '{{}}' > {SHARED}/grafana/dashboards/removed-project/application-performance.json"
    )
    repaired = False
    try:
        digest = shared.tree_digest()
        check = shared.deploy("drift: --check --diff", "--check", "--diff")
        unchanged = shared.tree_digest() == digest
        run = shared.deploy("drift: repair")
        after = shared.containers()
        again = shared.deploy("drift: run after the repair")
        repaired = run.returncode == 0 and again.returncode == 0
        yield {"before": before, "after": after, "check": check, "check_unchanged": unchanged,
               "run": run, "again": again}
    finally:
        if not repaired:
            assert_ok(shared.deploy("drift: repair at teardown"))


@SANDBOX
def test_drift_preview_shows_it_and_changes_nothing(drift: dict[str, Any]) -> None:
    check: PlaybookRun = drift["check"]
    recap = assert_ok(check)
    assert recap["changed"] > 0
    assert "+# edited by hand" not in check.output and "-# edited by hand" in check.output
    assert drift["check_unchanged"], "--check changed files on the server"


@SANDBOX
def test_drift_is_repaired_with_reloads_not_restarts(drift: dict[str, Any], shared: Shared) -> None:
    run: PlaybookRun = drift["run"]
    assert_ok(run)
    for handler in ("Reload Prometheus", "Reload Alertmanager", "Reload the main nginx",
                    "Restart the services that cannot reload their configuration"):
        assert "changed: [sandbox]" in task_lines(run, handler), handler
    before, after = drift["before"], drift["after"]
    for service in ("prometheus", "alertmanager", "nginx"):
        assert after[service]["started"] == before[service]["started"], f"{service} was restarted"
    assert after["blackbox-exporter"]["started"] != before["blackbox-exporter"]["started"]
    assert after["blackbox-exporter"]["health"] == "healthy", "the wait after the restart"
    leftovers = (f"{SHARED}/prometheus/config/rules/left-behind.yml", f"{SHARED}/nginx/config/conf.d/left-behind.conf",
                 f"{SHARED}/grafana/dashboards/removed-project")
    left = shared.sh("".join(f"test ! -e {path} || echo {path}; " for path in leftovers))
    assert not left.strip(), f"left behind: {left}"
    for path in (f"{SHARED}/prometheus/config/prometheus.yml", f"{SHARED}/alertmanager/config/alertmanager.yml",
                 f"{SHARED}/nginx/config/conf.d/default.conf", f"{SHARED}/blackbox/config/blackbox.yml"):
        assert b"edited by hand" not in shared.read(path), path


@SANDBOX
def test_run_after_the_repair_changes_nothing(drift: dict[str, Any]) -> None:
    again: PlaybookRun = drift["again"]
    recap = assert_ok(again)
    assert recap["changed"] == 0, f"changed: {again.changed_tasks()}\n{again.explain()}"


# --- phase 5 -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def outage(shared: Shared) -> Iterator[dict[str, Any]]:
    """One project exporter stopped: phase 5 with it down (a short wait: it cannot come back by
    itself), then started again and phase 5 once more (its own bounded wait). The container is
    started again whatever happens: the server is shared."""
    assert shared.wait_target(DOWN_PROJECT, DOWN_JOB, "up"), f"no {DOWN_PROJECT}/{DOWN_JOB} target up to begin with"
    shared.sh(f"docker stop {DOWN_CONTAINER}", timeout=90)
    try:
        seen_down = shared.wait_target(DOWN_PROJECT, DOWN_JOB, "down")
        failed = shared.integration(f"phase 5 with {DOWN_CONTAINER} stopped",
                                    "-e", "__shared_monitoring_integration_retries=2",
                                    "-e", "__shared_monitoring_integration_delay=5")
        down_after = shared.target(DOWN_PROJECT, DOWN_JOB)
    finally:
        shared.sh(f"docker start {DOWN_CONTAINER}", timeout=90)
    passed = shared.integration(f"phase 5 with {DOWN_CONTAINER} started again")
    yield {"seen_down": seen_down, "failed": failed, "down_after": down_after, "passed": passed}


@SANDBOX
def test_integration_names_the_targets_that_are_down(outage: dict[str, Any]) -> None:
    assert outage["seen_down"] and outage["seen_down"]["health"] == "down", \
        f"Prometheus never saw {DOWN_CONTAINER} down: {outage['seen_down']}"
    run: PlaybookRun = outage["failed"]
    assert run.returncode != 0, run.explain()
    assert re.search(r"\b1 of \d+ targets are not up after 10s", run.output), run.explain()
    assert f"{DOWN_PROJECT}/{DOWN_JOB} http://{DOWN_CONTAINER}:" in run.output, run.explain()
    # Only the target that is down (the message is one JSON string: its new lines are "\\n"), with
    # the error Prometheus gives for it (the same while the container stays stopped).
    named = re.findall(r"- (\S+/\S+) http://", run.output)
    assert set(named) == {f"{DOWN_PROJECT}/{DOWN_JOB}"}, named
    error = (outage["down_after"] or {}).get("lastError")
    assert error and json.dumps(error)[1:-1] in run.output, (error, run.explain())


@SANDBOX
def test_integration_passes_once_the_target_is_back(outage: dict[str, Any], shared: Shared) -> None:
    run: PlaybookRun = outage["passed"]
    assert_ok(run)
    assert "targets, all up" in run.output, run.explain()
    target = shared.target(DOWN_PROJECT, DOWN_JOB)
    assert target and target["health"] == "up", target


# --- secrets -----------------------------------------------------------------------------------


@SANDBOX
def test_no_secret_in_any_output(drift: dict[str, Any], outage: dict[str, Any], shared: Shared) -> None:
    """Every run of the module: the drift's preview with --diff, repairs, phase 5 down and up."""
    secrets = [v for k, v in shared.vault.items() if isinstance(v, str)]
    secrets += [s for p in shared.vault.get("vault_projects", {}).values() for s in p.values()]
    assert len(secrets) >= 4
    assert len(shared.runs) >= 5, list(shared.runs)
    for label, run in shared.runs.items():
        leaked = [s[:4] + "..." for s in secrets if s in run.output]
        assert not leaked, f"{label}: secrets in the output: {leaked}"


# --- the server as the other modules expect it ---------------------------------------------------


@SANDBOX
def test_the_server_is_left_healthy(drift: dict[str, Any], outage: dict[str, Any], shared: Shared) -> None:
    """Last: every container that ran when the module began runs again (healthy, where it has a
    healthcheck), nothing of the drift is left, and every target is scraped."""
    deadline = time.monotonic() + 180
    while True:
        statuses = shared.statuses()
        bad = {n: statuses.get(n, "missing") for n in shared.running_at_start
               if not statuses.get(n, "").startswith("Up") or "(health: starting)" in statuses[n]
               or "(unhealthy)" in statuses[n]}
        down = [t["scrapeUrl"] for t in shared.deployed.prometheus("/api/v1/targets", state="active")
                ["data"]["activeTargets"] if t["health"] != "up"]
        if (not bad and not down) or time.monotonic() > deadline:
            break
        time.sleep(10)
    stack = shared.containers()
    assert set(stack) == RUNNING and {c["name"] for c in stack.values()} <= shared.running_at_start, stack
    assert not bad, bad
    assert not down, down
    left = shared.sh(f"grep -rl 'edited by hand' {SHARED} --exclude-dir=data || true").strip()
    assert not left, left


# --- switched-off services, rendered and validated (no sandbox needed) ---------------------------


def test_services_switched_off_leave_valid_configs(tmp_path: Path) -> None:
    """Every optional service off at once (and Grafana, whose files the others refer to): the
    rendered stack still passes the upstream validators that are installed, and nothing refers
    to what is off."""
    root, password_file = tmp_path / "env", tmp_path / "keys" / "vault-pass"
    init_environment(root, password_file)
    path = root / ALL_VARS
    data = yaml.safe_load(path.read_text())
    off = ["grafana", "loki", "alloy", "cadvisor", "alertmanager", "node_exporter", "blackbox_exporter",
           "nginx_exporter", "docker_api"]
    for service in off:
        data.setdefault("shared_services", {}).setdefault(service, {})["enabled"] = False
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    report = plan(root, tmp_path / "out", password_file, lint_collection=False)
    failed = [f"{c.tool} {c.target}: {c.message}" for c in report.checks
              if c.status == "failed" and c.target.startswith(SHARED)]
    assert not failed, "\n".join(failed)
    files = {f.dest: f.local for f in report.files if f.role == "shared_monitoring"}
    compose = yaml.safe_load(files[f"{SHARED}/docker-compose.yml"].read_text())
    assert set(compose["services"]) == {"prometheus", "nginx"}
    prometheus = yaml.safe_load(files[f"{SHARED}/prometheus/config/prometheus.yml"].read_text())
    assert "alerting" not in prometheus
    jobs = {job["job_name"] for job in prometheus["scrape_configs"]}
    # The example's apps declare no `app.metrics_path`, so Django itself is not scraped.
    assert jobs == {"prometheus", "postgres-exporter", "redis-exporter", "nginx-exporter"}
    assert not any(dest.startswith(f"{SHARED}/grafana/dashboards/") for dest in files)
