"""The example environment deployed on a sandbox server behaves as specified: healthy
stacks, host-based routing through the main nginx, isolated projects, every target scraped, a
closed firewall, files exactly as planned, idempotent redeploys and data that survives a reboot."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from stagectl.environment import ALL_VARS
from stagectl.render import render_environment
from stagectl.runner import RunResult
from tests.deploy.conftest import DEMO_APP, Deployed

pytestmark = pytest.mark.sandbox

PROJECTS = ("beryl3", "project2")
# Every port stagectl uses on the server; from outside only SSH, HTTP and HTTPS may answer.
PUBLIC = {22, 80, 443}
INTERNAL = {2375, 3000, 3100, 5432, 5433, 6379, 6380, 8000, 8001, 8080, 9090, 9093, 9100, 9113, 9115, 9121, 9187}


def https(deployed: Deployed, host: str, path: str, *, method: str = "GET", data: str | None = None) -> tuple[int, str]:
    """A request to the main nginx as a browser on the internet would make it (SNI and Host), over
    the sandbox's 443 published on 127.0.0.1; --resolve keeps the name out of DNS."""
    port = deployed.info.https_port
    args = ["curl", "-sk", "--max-time", "20", "--resolve", f"{host}:{port}:127.0.0.1", "-X", method,
            "-o", "-", "-w", "\n%{http_code}", f"https://{host}:{port}{path}"]
    if data is not None:
        args += ["-H", "Content-Type: application/json", "--data", data]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    body, _, code = proc.stdout.rpartition("\n")
    return int(code or 0), body


def containers(deployed: Deployed) -> dict[str, str]:
    out = deployed.sh("docker ps -a --format '{{.Names}}\t{{.Status}}'")
    return dict(line.split("\t", 1) for line in out.splitlines() if line)


def wait_healthy(deployed: Deployed, timeout: float = 240) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        status = containers(deployed)
        unhealthy = {n: s for n, s in status.items() if not s.startswith("Up") or "starting" in s or "unhealthy" in s}
        if not unhealthy or time.monotonic() > deadline:
            return unhealthy
        time.sleep(5)


def test_every_container_is_up_and_healthy(deployed: Deployed) -> None:
    assert wait_healthy(deployed) == {}
    names = set(containers(deployed))
    for project in PROJECTS:
        for service in ("postgres", "redis", "django", "nginx", "postgres-exporter", "redis-exporter",
                        "nginx-exporter"):
            assert f"{project}-{service}" in names


@pytest.mark.parametrize("project", PROJECTS)
def test_projects_answer_through_the_main_nginx_by_host(deployed: Deployed, project: str) -> None:
    code, body = https(deployed, f"{project}.sandbox.test", "/healthz")
    assert (code, body.strip()) == (200, "ok")
    # Probe and metrics endpoints are for the internal networks only.
    for path in ("/readyz", "/metrics"):
        assert https(deployed, f"{project}.sandbox.test", path)[0] == 404


def test_unknown_host_gets_nothing(deployed: Deployed) -> None:
    code, _ = https(deployed, "unknown.sandbox.test", "/healthz")
    assert code in (0, 444)


@pytest.mark.parametrize("project", PROJECTS)
def test_each_app_uses_its_own_database_and_cache(deployed: Deployed, project: str) -> None:
    text = f"written by the e2e test into {project}"
    code, body = https(deployed, f"{project}.sandbox.test", "/notes/", method="POST", data=json.dumps({"text": text}))
    assert code == 201, body
    code, body = https(deployed, f"{project}.sandbox.test", "/notes/")
    notes = [n["text"] for n in json.loads(body)["notes"]]
    assert text in notes
    other = next(p for p in PROJECTS if p != project)
    assert f"written by the e2e test into {other}" not in notes

    code, _ = https(deployed, f"{project}.sandbox.test", f"/cache/e2e-{project}", method="PUT",
                    data=json.dumps({"value": project}))
    assert code in (200, 201)
    code, body = https(deployed, f"{project}.sandbox.test", f"/cache/e2e-{project}")
    assert code == 200 and json.loads(body)["value"] == project


def test_projects_cannot_reach_each_other(deployed: Deployed) -> None:
    probe = (
        "import socket, sys\n"
        "try:\n"
        "    socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)\n"
        "    print('open')\n"
        "except OSError:\n"
        "    print('closed')\n"
    )

    def reach(target: str, port: int) -> str:
        return deployed.sh(f"docker exec -i beryl3-django python - {target} {port} <<'PY'\n{probe}PY\n").strip()

    assert reach("project2-postgres", 5432) == "closed"
    assert reach("project2-redis", 6379) == "closed"
    # The positive control: its own database answers.
    assert reach("beryl3-postgres", 5432) == "open"


@pytest.mark.parametrize("project", PROJECTS)
def test_the_database_exporter_logs_in_with_a_read_only_role(deployed: Deployed, project: str) -> None:
    def psql(sql: str) -> str:
        return deployed.sh(
            f"docker exec {project}-postgres psql --no-psqlrc -At -U {project}_user -d {project}_staging "
            f"-c \"{sql}\""
        ).strip()

    assert psql(f"SELECT rolsuper, rolcreaterole, pg_has_role(oid, 'pg_monitor', 'MEMBER') FROM pg_roles "
                f"WHERE rolname = '{project}_monitor'") == "f|f|t"
    assert psql(f"SELECT has_table_privilege('{project}_monitor', 'django_migrations', 'SELECT')") == "f"
    # The exporter's connections are the monitoring role's, and it scrapes.
    deadline = time.monotonic() + 60
    while (users := psql("SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name <> 'psql' "
                         f"AND usename <> '{project}_user'")) == "" and time.monotonic() < deadline:
        time.sleep(2)
    assert users == f"{project}_monitor"
    up = deployed.prometheus("/api/v1/query", query=f'pg_up{{project="{project}"}}')["data"]["result"]
    assert [sample["value"][1] for sample in up] == ["1"]


def test_a_projects_app_cannot_reach_the_shared_backends_nor_another_project(deployed: Deployed) -> None:
    """Alertmanager (which can silence alerts), Loki, Alloy, cAdvisor and the host's exporters
    answer without credentials: they are on the shared stack's own network, which no project
    container joins. Another project's exporters and app server are on that project's metrics
    network, shared with Prometheus alone. Probed by address too, not only by name."""
    probe = (
        "import socket, sys\n"
        "for target in sys.argv[1:]:\n"
        "    host, port = target.rsplit(':', 1)\n"
        "    try:\n"
        "        socket.create_connection((host, int(port)), 3).close()\n"
        "        print(target, 'open')\n"
        "    except OSError:\n"
        "        print(target, 'closed')\n"
    )
    backends = {"alertmanager": 9093, "node-exporter": 9100, "blackbox-exporter": 9115,
                "nginx-edge-exporter": 9113}
    targets = []
    for service, port in backends.items():
        address = deployed.sh(
            f"docker inspect --format '{{{{(index .NetworkSettings.Networks \"shared\").IPAddress}}}}' "
            f"shared-{service}-1").strip()
        targets += [f"{address}:{port}", f"{service}:{port}"]
    neighbours = {"project2-django": 8000, "project2-postgres-exporter": 9187,
                  "project2-redis-exporter": 9121, "project2-nginx-exporter": 9113}
    for container, port in neighbours.items():
        address = deployed.sh(
            f"docker inspect --format '{{{{(index .NetworkSettings.Networks \"project2_metrics\").IPAddress}}}}' "
            f"{container}").strip()
        targets += [f"{address}:{port}", f"{container}:{port}"]
    # The positive controls: Prometheus (basic auth on everything) scrapes the app on the
    # project's metrics network, where its own exporters are too.
    targets += ["prometheus:9090", "beryl3-postgres-exporter:9187"]
    out = deployed.sh(f"docker exec -i beryl3-django python - {' '.join(targets)} <<'PY'\n{probe}PY\n")
    answers = dict(line.split() for line in out.splitlines())
    assert answers.pop("prometheus:9090") == "open"
    assert answers.pop("beryl3-postgres-exporter:9187") == "open"
    assert set(answers.values()) == {"closed"}, answers


def test_only_the_docker_api_proxy_holds_the_socket_and_it_answers_reads_only(deployed: Deployed) -> None:
    """The deployed proxy, against the sandbox's own Docker engine: what Alloy and cAdvisor call
    answers, anything that could change a container or read its files is refused, and a
    project's app cannot reach the proxy at all."""
    mounts = deployed.sh(
        "docker ps -q | xargs docker inspect --format '{{.Name}} {{range .Mounts}}{{.Source}} {{end}}'")
    holders = {line.split()[0].lstrip("/") for line in mounts.splitlines() if "docker.sock" in line}
    assert holders == {"shared-docker-api-1"}
    probe = (
        "import http.client, sys\n"
        "for call in sys.argv[1:]:\n"
        "    method, path = call.split(' ', 1)\n"
        "    connection = http.client.HTTPConnection('docker-api', 2375, timeout=10)\n"
        "    connection.request(method, path)\n"
        "    print(method, path, connection.getresponse().status)\n"
    )
    calls = {
        "GET /_ping": 200, "GET /v1.41/version": 200, "GET /v1.41/info": 200,
        "GET /v1.41/containers/json": 200, "GET /v1.41/networks": 200,
        "GET /v1.41/containers/beryl3-django/json": 200,
        "GET /v1.41/containers/beryl3-django/logs?stdout=1&tail=1": 200,
        "POST /v1.41/containers/create": 403, "POST /v1.41/containers/beryl3-django/exec": 403,
        "POST /v1.41/containers/beryl3-django/stop": 403, "DELETE /v1.41/containers/beryl3-django": 403,
        "GET /v1.41/containers/beryl3-django/archive?path=/etc": 403,
        "GET /v1.41/containers/beryl3-django/export": 403, "GET /v1.41/images/json": 403,
        "GET /v1.41/containers/x%2F..%2Fjson": 403, "GET /v1.41/containers/beryl3-django/../json": 403,
    }
    python = yaml.safe_load((deployed.root / ALL_VARS).read_text())["project_defaults"]["images"]["python"]
    arguments = " ".join(f"'{call}'" for call in calls)
    out = deployed.sh(
        f"docker run --rm -i --network docker_api {python} python - {arguments} <<'PY'\n{probe}PY\n")
    answers = {line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1]) for line in out.splitlines()}
    assert answers == calls
    # The refusals are logged, for Loki.
    assert "POST /v1.41/containers/create" in deployed.sh("docker logs shared-docker-api-1 2>&1")
    address = deployed.sh(
        "docker inspect --format '{{(index .NetworkSettings.Networks \"docker_api\").IPAddress}}' "
        "shared-docker-api-1").strip()
    reach = deployed.sh(
        "docker exec beryl3-django python -c \"import socket\n"
        f"try:\n    socket.create_connection(('{address}', 2375), 3); print('open')\n"
        "except OSError:\n    print('closed')\"")
    assert reach.strip() == "closed"


def test_every_prometheus_target_is_up(deployed: Deployed) -> None:
    deadline = time.monotonic() + 180
    while True:
        targets = deployed.prometheus("/api/v1/targets")["data"]["activeTargets"]
        down = [(t["labels"].get("job"), t["scrapeUrl"], t["lastError"]) for t in targets if t["health"] != "up"]
        if not down or time.monotonic() > deadline:
            break
        time.sleep(10)
    assert targets and down == []
    jobs = {t["labels"].get("project") for t in targets}
    assert set(PROJECTS) <= jobs


def test_only_ssh_http_https_answer_from_outside(deployed: Deployed) -> None:
    address = deployed.info.container_ip
    answering = set()
    for port in sorted(PUBLIC | INTERNAL):
        with socket.socket() as sock:
            sock.settimeout(2)
            if sock.connect_ex((address, port)) == 0:
                answering.add(port)
    assert answering == PUBLIC
    assert "Status: active" in deployed.sh("ufw status")


def test_root_and_password_ssh_logins_are_refused(deployed: Deployed) -> None:
    info = deployed.info
    base = ["ssh", "-p", str(info.ssh_port), "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
            "-o", f"UserKnownHostsFile={info.known_hosts}", "-o", "StrictHostKeyChecking=yes"]
    root = subprocess.run([*base, "-i", str(info.root_key), "root@127.0.0.1", "true"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert root.returncode != 0 and "Permission denied" in root.stderr
    ansible = subprocess.run([*base, "-i", str(info.ansible_key), "ansible@127.0.0.1", "sudo -n whoami"],
                             capture_output=True, text=True, timeout=30, check=False)
    assert ansible.stdout.strip() == "root"
    config = deployed.sh("sshd -T")
    assert "passwordauthentication no" in config and "permitrootlogin no" in config


def test_ssh_forwards_only_to_the_server_and_the_host_is_hardened(deployed: Deployed) -> None:
    info = deployed.info
    base = ["ssh", "-p", str(info.ssh_port), "-i", str(info.ansible_key), "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=10", "-o", f"UserKnownHostsFile={info.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "ExitOnForwardFailure=yes"]
    # A local forward (how operators reach Grafana and Prometheus) works: sshd's own banner comes
    # back through it.
    local = subprocess.run([*base, "-W", "127.0.0.1:22", "ansible@127.0.0.1"], input="",
                           capture_output=True, text=True, timeout=30, check=False)
    assert local.stdout.startswith("SSH-2.0-"), local.stderr
    # A remote forward, which would publish a port of the operator's machine on the server, is refused.
    # stdin never pytest's own: ssh leaves its stdin non-blocking when it dies of a refused
    # forward, and every later ansible-playbook sharing that stdin would refuse to start.
    remote = subprocess.run([*base, "-R", "127.0.0.1:0:127.0.0.1:9", "ansible@127.0.0.1", "true"],
                            input="", capture_output=True, text=True, timeout=30, check=False)
    assert remote.returncode != 0 and "remote port forwarding failed" in remote.stderr
    config = deployed.sh("sshd -T")
    for line in ("allowagentforwarding no", "x11forwarding no", "maxsessions 4", "loglevel VERBOSE"):
        assert line in config.splitlines()
    # Modules that may not load, and the kernel settings (kept for a boot: the sandbox is a
    # container, whose kernel is the host's).
    assert "install /bin/false" in deployed.sh("modprobe --show-depends sctp 2>&1 || true")
    sysctl = deployed.sh("cat /etc/sysctl.d/60-stagectl-hardening.conf")
    assert "fs.protected_symlinks = 1" in sysctl and "forwarding" not in sysctl
    assert "SHA_CRYPT_MIN_ROUNDS 10000" in deployed.sh("grep -E '^SHA_CRYPT' /etc/login.defs")


def test_files_on_the_server_are_what_plan_renders(deployed: Deployed, tmp_path: Path) -> None:
    files = render_environment(deployed.root, tmp_path / "plan", deployed.vault_password_file)
    assert files
    different = []
    for file in files:
        on_server = subprocess.run(["docker", "exec", deployed.info.name, "cat", file.dest],
                                   capture_output=True, timeout=30, check=False).stdout
        mode = deployed.sh(f"stat -c '%a' {file.dest}", check=False).strip()
        if on_server != file.local.read_bytes() or mode != file.mode.lstrip("0"):
            different.append(f"{file.dest} (mode {mode}, plan {file.mode})")
    assert different == []


def test_check_mode_changes_nothing(deployed: Deployed) -> None:
    result = deployed.redeploy(check=True)
    assert result.ok
    assert {h: s.changed for h, s in result.hosts.items()} == {"sandbox": 0}


def test_second_deploy_changes_nothing_and_rows_survive_it_and_a_reboot(deployed: Deployed) -> None:
    from stagectl.sandbox import server

    marker = f"survivor-{time.time_ns()}"
    code, _ = https(deployed, "beryl3.sandbox.test", "/notes/", method="POST", data=json.dumps({"text": marker}))
    assert code == 201
    # Every file of the projects' source touched, as a fresh checkout or copy does: a source change
    # is a change of content, so nothing is shipped, built or released.
    for path in DEMO_APP.rglob("*"):
        os.utime(path, follow_symlinks=False)
    started = time.monotonic()
    again = deployed.redeploy()
    deployed.timings["no-op redeploy"] = time.monotonic() - started
    print(f"no-op redeploy: {again.seconds:.0f}s, {again.tasks} tasks")
    assert again.ok
    changed = {host: stats.changed for host, stats in again.hosts.items()}
    assert changed == {"sandbox": 0}

    server.restart(deployed.info.name)
    assert wait_healthy(deployed, timeout=300) == {}
    code, body = https(deployed, "beryl3.sandbox.test", "/notes/")
    assert code == 200 and marker in body


def test_backups_changed_by_hand_are_all_a_project_deploy_puts_back(deployed: Deployed) -> None:
    """The backups role reads its files in one round trip and its timers with one `systemctl
    show`: a timer disabled and stopped by hand and an edited settings file are what the next
    `deploy --project` writes and starts, and all it changes; the one after it changes nothing."""
    timer, conf = "stagectl-backup-verify@beryl3.timer", "/etc/stagectl/backups/beryl3.conf"
    kept = deployed.sh(f"cat {conf}")
    deployed.sh(f"systemctl disable --now {timer}; echo '# edited by hand' >> {conf}")
    result = deployed.redeploy(project="beryl3")
    assert result.ok, result.failures
    assert result.changed_tasks() == [
        "Write the backup settings of project beryl3",
        "Enable and start the backup timers of project beryl3",
    ]
    assert deployed.sh(f"systemctl is-enabled {timer}; systemctl is-active {timer}").split() == ["enabled", "active"]
    assert deployed.sh(f"cat {conf}") == kept
    again = deployed.redeploy(project="beryl3")
    assert again.ok, again.failures
    assert again.changed_tasks() == []
    assert not any(t.task == "Write the backup settings of project beryl3" for t in again.timings)


def _full_path(result: RunResult, project: str) -> bool:
    """Whether the project's deploy went on past its settled check (the rollout's decision is a
    task of the full path only)."""
    return any(t.task == f"Note what the rollout has to do for project {project}" for t in result.timings)


def _shared_role_ran(result: RunResult) -> bool:
    """Whether the run included the shared stack's role itself, not only its survey."""
    return any(t.task == "Check the environment and the vault" for t in result.timings)


def test_a_settled_project_is_skipped_until_a_container_is_recreated(deployed: Deployed) -> None:
    """As the last deploy left it, a project's deploy stops after its file comparison; a container
    recreated by hand takes the full path again (which finds nothing to do), and a new record."""
    record = "/opt/projects/beryl3/.stagectl-deployed.json"
    assert deployed.sh(f"stat -c '%a %U' {record}").split() == ["600", "root"]
    settled = deployed.redeploy()
    assert settled.ok, settled.failures
    assert not _full_path(settled, "beryl3") and not _full_path(settled, "project2")
    assert not _shared_role_ran(settled)
    before = json.loads(deployed.sh(f"cat {record}"))["containers"]

    deployed.sh("docker compose --project-directory /opt/projects/beryl3 up --detach --force-recreate --no-deps nginx")
    assert wait_healthy(deployed) == {}
    again = deployed.redeploy()
    assert again.ok, again.failures
    assert {host: stats.changed for host, stats in again.hosts.items()} == {"sandbox": 0}
    assert _full_path(again, "beryl3") and not _full_path(again, "project2")
    after = json.loads(deployed.sh(f"cat {record}"))["containers"]
    assert len(after) == len(before) and len(set(after) - set(before)) == 1


def test_the_shared_stack_is_deployed_only_when_it_differs(deployed: Deployed) -> None:
    """A deploy, of the server or of one project, looks at the shared stack in two round trips
    and includes its role only when something there differs: a file left by hand where a service
    loads files by pattern (listed by no manifest) is what the next deploy removes (and the whole
    deploy an empty network of an older release); otherwise the deploy leaves the stack alone."""
    settled = deployed.redeploy(project="beryl3")
    assert settled.ok, settled.failures
    assert settled.changed_tasks() == [] and not _shared_role_ran(settled)

    stray = "/opt/shared/nginx/config/conf.d/left-by-hand.conf"
    deployed.sh(f"echo '# left by hand' > {stray}")
    pruned = deployed.redeploy(project="beryl3")
    assert pruned.ok, pruned.failures
    assert _shared_role_ran(pruned)
    assert "Remove the files the manifest no longer lists" in pruned.changed_tasks()
    assert deployed.sh(f"ls {stray} 2>/dev/null || echo gone").strip() == "gone"

    rule = "/opt/shared/prometheus/config/rules/left-by-hand.yml"
    deployed.sh(f"echo 'groups: []' > {rule}")
    # And the network older releases scraped every project on, with nothing on it: removed too.
    deployed.sh("docker network create monitoring >/dev/null")
    whole = deployed.redeploy()
    assert whole.ok, whole.failures
    assert _shared_role_ran(whole)
    assert "Remove the files the manifest no longer lists" in whole.changed_tasks()
    assert deployed.sh(f"ls {rule} 2>/dev/null || echo gone").strip() == "gone"
    assert "Remove the networks that stagectl no longer uses and nothing is on" in whole.changed_tasks()
    assert deployed.sh("docker network ls --quiet --filter name=^monitoring$").strip() == ""

    again = deployed.redeploy(project="beryl3")
    assert again.ok, again.failures
    assert again.changed_tasks() == [] and not _shared_role_ran(again)
