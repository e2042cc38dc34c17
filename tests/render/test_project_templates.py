"""The per-project templates (roles `project` and `backups`), rendered the real way and checked.

The environments are built and rendered once per session by tests/render/conftest.py with
`stagectl.render.render_environment` (what `stagectl plan` renders and `deploy` writes): the
example of `stagectl init` (beryl3 and project2, fresh vault), the same again in another process,
and a variant with worker and scheduler. The rendered files are then checked for behaviour (ports,
networks, healthchecks, where secrets land, determinism) and, where the upstream tools are
installed, with them: `docker compose config`, `nginx -t`, shellcheck, systemd-analyze,
redis-server, postgres.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stagectl.sandbox.environment import DEMO_APP as DEMO_APP_ENTRY
from tests.conftest import missing_tool
from tests.render.conftest import CONTRACT_KINDS, RenderedEnv, make_environment, render

Rendered = RenderedEnv
ROLES = ("project", "backups")
# Where the two roles write on the server (the rest of a render belongs to other roles).
ROLE_PREFIXES = ("/opt/projects/", "/etc/stagectl/backups/", "/etc/systemd/system/", "/usr/local/sbin/")
EXAMPLE_PORTS = {
    "beryl3": {"postgres": 5432, "django": 8000, "redis": 6379},
    "project2": {"postgres": 5433, "django": 8001, "redis": 6380},
}
SERVICES = {
    "postgres",
    "redis",
    "django",
    "nginx",
    "postgres-exporter",
    "redis-exporter",
    "nginx-exporter",
}
# A release's candidate: in the compose file, in the `release` profile, never started by `up`.
CANDIDATE = "django-next"


# --- the manifest and where secrets land -----------------------------------------------------


def test_manifest_lists_every_file_with_a_known_kind_and_its_mode(example: Rendered) -> None:
    assert example.manifest(*ROLES)
    for entry in example.manifest(*ROLES):
        assert entry["kind"] in CONTRACT_KINDS, entry
        assert entry["dest"].startswith(ROLE_PREFIXES), entry
        rendered = example.path(entry["dest"])
        assert rendered.is_file(), f"{entry['dest']} was not rendered"
        assert stat.S_IMODE(rendered.stat().st_mode) == int(entry["mode"], 8), entry
    # Other roles install beside them (container_health: /usr/local/sbin, /etc/systemd/system).
    others = {example.path(e["dest"]) for e in example.manifest() if e["role"] not in ROLES}
    rendered_files = {
        p for p in example.tree() if ("/" + str(p.relative_to(example.root))).startswith(ROLE_PREFIXES)
    } - others
    assert rendered_files == {example.path(e["dest"]) for e in example.manifest(*ROLES)}


def test_per_project_and_global_files(example: Rendered) -> None:
    dests = {(e["role"], e["project"], e["dest"]) for e in example.manifest(*ROLES)}
    for name in ("beryl3", "project2"):
        root = f"/opt/projects/{name}"
        for dest in (
            f"{root}/docker-compose.yml",
            f"{root}/config/.env",
            f"{root}/config/nginx.conf",
            f"{root}/config/Dockerfile",
            f"{root}/config/redis.conf",
        ):
            assert ("project", name, dest) in dests
        assert ("backups", name, f"/etc/stagectl/backups/{name}.conf") in dests
    for dest in (
        "/usr/local/sbin/stagectl-backup",
        "/etc/stagectl/backups/shared.conf",
        "/etc/systemd/system/stagectl-backup@.service",
        "/etc/systemd/system/stagectl-backup@.timer",
        "/etc/systemd/system/stagectl-backup-verify@.service",
        "/etc/systemd/system/stagectl-backup-verify@.timer",
    ):
        assert ("backups", None, dest) in dests


RESTIC_DIR = "/etc/stagectl/restic"
REMOTE_FILES = {
    f"{RESTIC_DIR}/restic.conf": "0600", f"{RESTIC_DIR}/restic.env": "0600", f"{RESTIC_DIR}/password": "0600",
    f"{RESTIC_DIR}/ssh_key": "0600", f"{RESTIC_DIR}/known_hosts": "0644", f"{RESTIC_DIR}/ssh_config": "0644",
    "/etc/systemd/system/stagectl-backup-check.service": "0644",
    "/etc/systemd/system/stagectl-backup-check.timer": "0644",
}


def test_the_off_site_copy_is_configured_only_with_a_remote(example: Rendered, variant: Rendered) -> None:
    assert not [e["dest"] for e in example.manifest("backups") if e["dest"] in REMOTE_FILES]
    modes = {e["dest"]: e["mode"] for e in variant.manifest("backups") if e["project"] is None}
    assert {dest: modes.get(dest) for dest in REMOTE_FILES} == REMOTE_FILES
    conf = parse_env(variant.text(f"{RESTIC_DIR}/restic.conf"))
    assert conf == {
        "REPOSITORY": "sftp://restic@backup.example.invalid:2222//srv/restic/staging",
        "RETENTION_DAYS": "120",
        "CHECK_READ_DATA_PERCENT": "5",
        "SFTP_COMMAND": f"ssh -F {RESTIC_DIR}/ssh_config -p 2222 restic@backup.example.invalid -s sftp",
    }
    # The password only in its own file (RESTIC_PASSWORD_FILE), credentials in the env file.
    assert variant.text(f"{RESTIC_DIR}/password") == "restic-Passw0rd-of-the-variant\n"
    assert parse_env(variant.text(f"{RESTIC_DIR}/restic.env")) == {"RESTIC_EXAMPLE_TOKEN": "token-of-the-variant-42"}
    for entry in variant.manifest("backups"):
        if entry["dest"] != f"{RESTIC_DIR}/password":
            assert "restic-Passw0rd-of-the-variant" not in variant.text(entry["dest"]), entry["dest"]
    config = variant.text(f"{RESTIC_DIR}/ssh_config")
    assert f"IdentityFile {RESTIC_DIR}/ssh_key" in config and "StrictHostKeyChecking yes" in config
    assert variant.text(f"{RESTIC_DIR}/known_hosts").startswith("[backup.example.invalid]:2222 ssh-ed25519 ")
    timer = variant.text("/etc/systemd/system/stagectl-backup-check.timer")
    assert "OnCalendar=Sun *-*-* 05:30:00\n" in timer
    assert "ExecStart=/usr/local/sbin/stagectl-backup check\n" in variant.text(
        "/etc/systemd/system/stagectl-backup-check.service")


def test_env_file_is_0600(example: Rendered) -> None:
    modes = {e["dest"]: e["mode"] for e in example.manifest(*ROLES)}
    for name in ("beryl3", "project2"):
        assert modes[f"/opt/projects/{name}/config/.env"] == "0600"


def test_secrets_appear_only_in_0600_files(example: Rendered) -> None:
    secrets = example.secrets()
    assert len(secrets) >= 6
    holders: dict[str, list[str]] = {}
    for entry in example.manifest(*ROLES):
        text = example.text(entry["dest"])
        for key, value in secrets.items():
            if value in text:
                holders.setdefault(key, []).append(entry["dest"])
                assert (
                    entry["mode"] == "0600"
                ), f"{key} appears in {entry['dest']} (mode {entry['mode']})"
    # Each project's secrets land only in that project's files.
    for key, files in holders.items():
        project = key.split(".")[0]
        if "." in key:
            assert all(f.startswith(f"/opt/projects/{project}/") for f in files), (key, files)
    for name in ("beryl3", "project2"):
        assert f"{name}.django_secret_key" in holders
        assert f"{name}.postgres_password" in holders
        assert holders[f"{name}.postgres_monitor_password"] == [
            f"/opt/projects/{name}/config/postgres-exporter.env", f"/opt/projects/{name}/config/postgres-monitor.sql"
        ]
        assert f"{name}.redis_password" in holders


def test_no_secret_in_compose_files(example: Rendered, variant: Rendered) -> None:
    for rendered in (example, variant):
        for name in ("beryl3", "project2"):
            compose = rendered.text(f"/opt/projects/{name}/docker-compose.yml")
            for value in rendered.secrets().values():
                assert value not in compose


# --- docker-compose.yml -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["beryl3", "project2"])
def test_compose_services_are_complete(example: Rendered, name: str) -> None:
    compose = example.compose(name)
    project = example.project(name)
    docker = example.stagectl["docker"]
    assert compose["name"] == project["compose_project"]
    assert set(compose["services"]) == SERVICES | {CANDIDATE}
    for service, spec in compose["services"].items():
        if service == CANDIDATE:
            continue
        key = service.replace("-", "_")
        assert spec["container_name"] == project["containers"][key]
        assert spec["restart"] == "unless-stopped", service
        assert spec["mem_limit"], service
        assert spec["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), service
        assert spec["logging"] == {
            "driver": "json-file",
            "options": {
                "max-size": docker["log_max_size"],
                "max-file": str(docker["log_max_file"]),
                "labels": "org.stagectl.project,org.stagectl.service",
            },
        }
        assert spec["labels"] == {"org.stagectl.project": name, "org.stagectl.service": service}
        image_key = {"django": "app"}.get(service, key)
        assert spec["image"] == project["images"][image_key]
    memory = project["memory"]
    assert compose["services"]["postgres"]["mem_limit"] == memory["postgres"]
    assert compose["services"]["django"]["mem_limit"] == memory["django"]
    assert compose["services"]["redis-exporter"]["mem_limit"] == memory["exporter"]


@pytest.mark.parametrize("name", ["beryl3", "project2"])
def test_compose_release_candidate_is_django_but_for_its_name(example: Rendered, name: str) -> None:
    services = example.compose(name)["services"]
    django, candidate = dict(services["django"]), dict(services[CANDIDATE])
    container = example.project(name)["containers"]["django"]
    assert candidate.pop("profiles") == ["release"]
    assert candidate.pop("pull_policy") == "never"
    assert candidate.pop("container_name") == f"{container}-next"
    assert candidate.pop("labels") == {"org.stagectl.project": name, "org.stagectl.service": CANDIDATE}
    assert "ports" not in candidate
    for key in ("build", "container_name", "labels", "ports"):
        django.pop(key)
    assert candidate == django
    # nginx finds the app per request: it must not wait for (or be restarted with) `django`.
    assert "depends_on" not in services["nginx"]
    assert "./config/nginx-live:/etc/nginx/live:ro" in services["nginx"]["volumes"]


@pytest.mark.parametrize("name", ["beryl3", "project2"])
def test_compose_publishes_only_on_loopback(example: Rendered, name: str) -> None:
    services = example.compose(name)["services"]
    ports = EXAMPLE_PORTS[name]
    assert services["postgres"]["ports"] == [f"127.0.0.1:{ports['postgres']}:5432"]
    assert services["redis"]["ports"] == [f"127.0.0.1:{ports['redis']}:6379"]
    assert services["django"]["ports"] == [f"127.0.0.1:{ports['django']}:8000"]
    for service in SERVICES - {"postgres", "redis", "django"}:
        assert "ports" not in services[service], service


@pytest.mark.parametrize("name", ["beryl3", "project2"])
def test_compose_networks(example: Rendered, name: str) -> None:
    compose = example.compose(name)
    services = compose["services"]
    assert compose["networks"]["project"] == {"name": name, "driver": "bridge"}
    assert compose["networks"]["metrics"] == {"name": f"{name}_metrics", "external": True}
    assert compose["networks"]["projects"] == {"name": "projects", "external": True}
    assert set(compose["networks"]) == {"project", "metrics", "projects"}
    assert services["postgres"]["networks"] == ["project"]
    assert services["redis"]["networks"] == ["project"]
    # Only an app server Prometheus scrapes (its app has a metrics path) joins the metrics network.
    scraped = example.project(name)["app"]["metrics_path"] is not None
    assert services["django"]["networks"] == ["project", "metrics"] if scraped else ["project"]
    assert services["nginx"]["networks"] == ["project", "projects"]
    for exporter in ("postgres-exporter", "redis-exporter", "nginx-exporter"):
        assert services[exporter]["networks"] == ["project", "metrics"]
    for app_process in ("worker", "scheduler"):
        if app_process in services:
            assert services[app_process]["networks"] == ["project"]


@pytest.mark.parametrize("name", ["beryl3", "project2"])
def test_compose_postgres_settings(example: Rendered, name: str) -> None:
    project = example.project(name)
    postgres = example.compose(name)["services"]["postgres"]
    flags = dict(arg.split("=", 1) for arg in postgres["command"][1:] if arg != "-c")
    assert flags["max_connections"] == str(project["database"]["max_connections"]) == "100"
    assert flags["log_min_duration_statement"] == "500"
    assert flags["log_min_error_statement"] == "error"
    assert postgres["volumes"] == ["./data/postgresql:/var/lib/postgresql/data"]
    assert postgres["environment"] == {
        "POSTGRES_DB": project["database"]["name"],
        "POSTGRES_USER": project["database"]["user"],
    }
    assert postgres["env_file"] == ["./config/postgres.env"]


def test_compose_app_build_and_dependencies(example: Rendered) -> None:
    services = example.compose("beryl3")["services"]
    django = services["django"]
    assert django["build"]["context"] == "./app"
    assert django["build"]["dockerfile"] == "../config/Dockerfile"
    assert django["env_file"] == ["./config/.env"]
    assert django["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert services["postgres-exporter"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"}
    }
    assert services["redis-exporter"]["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert services["nginx-exporter"]["command"] == [
        "--nginx.scrape-uri=http://beryl3-nginx:8080/stub_status"
    ]
    redis = services["redis"]
    assert redis["command"] == ["redis-server", "/usr/local/etc/redis/redis.conf"]
    assert "./config/redis.conf:/usr/local/etc/redis/redis.conf:ro" in redis["volumes"]
    assert "REDISCLI_AUTH=" in redis["healthcheck"]["test"][1]


def test_worker_and_scheduler_only_when_enabled(example: Rendered, variant: Rendered) -> None:
    assert not {"worker", "scheduler"} & set(example.compose("beryl3")["services"])
    services = variant.compose("beryl3")["services"]
    assert set(services) == SERVICES | {CANDIDATE, "worker", "scheduler"}
    assert set(variant.compose("project2")["services"]) == SERVICES | {CANDIDATE}
    memory = variant.project("beryl3")["memory"]
    for name, command in (
        ("worker", ["python", "manage.py", "worker"]),
        ("scheduler", ["celery", "-A", "beryl3", "beat", "--loglevel", "info"]),  # app.processes
    ):
        spec = services[name]
        assert spec["image"] == services["django"]["image"]
        assert "build" not in spec and spec["pull_policy"] == "never"
        assert spec["command"] == command
        assert spec["container_name"] == f"beryl3-{name}"
        assert spec["mem_limit"] == memory[name]
        assert spec["env_file"] == ["./config/.env"]
        assert spec["healthcheck"]["test"][0] == "CMD"
        assert "ports" not in spec
        assert spec["networks"] == ["project"]
    # A task queue in Redis must not be evicted.
    assert "maxmemory-policy volatile-lru" in variant.text("/opt/projects/beryl3/config/redis.conf")
    assert "maxmemory-policy allkeys-lru" in variant.text(
        "/opt/projects/project2/config/redis.conf"
    )


# --- the other project files ----------------------------------------------------------------


def parse_env(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            if value[:1] == "'" and value[-1:] == "'":
                value = value[1:-1]
            values[key] = value
    return values


@pytest.mark.parametrize("name", ["beryl3", "project2"])
def test_app_env_has_the_expected_variables(example: Rendered, name: str) -> None:
    env = parse_env(example.text(f"/opt/projects/{name}/config/.env"))
    project = example.project(name)
    secrets = example.vault["vault_projects"][name]
    database = project["database"]
    assert env["POSTGRES_DB"] == database["name"] == f"{name}_staging"
    assert env["POSTGRES_USER"] == database["user"] == f"{name}_user"
    assert env["POSTGRES_PASSWORD"] == secrets["postgres_password"]
    assert env["POSTGRES_PORT"] == "5432"
    assert env["DATABASE_URL"] == (
        f"postgresql://{name}_user:{secrets['postgres_password']}@{name}-postgres:5432/{name}_staging"
    )
    assert env["REDIS_URL"] == f"redis://:{secrets['redis_password']}@{name}-redis:6379/0"
    assert env["DJANGO_SECRET_KEY"] == secrets["django_secret_key"]
    assert env["DJANGO_DEBUG"] == "False"
    assert project["domain"] in env["DJANGO_ALLOWED_HOSTS"].split(",")
    assert env["EMAIL_HOST"] == "localhost" and env["EMAIL_PORT"] == "1025"
    assert env["PROJECT_NAME"] == name
    assert env["GUNICORN_WORKERS"] == str(project["gunicorn_workers"])
    # The example's apps declare no metrics path: no multiprocess directory for prometheus_client.
    assert "PROMETHEUS_MULTIPROC_DIR" not in env
    assert env["DJANGO_MIGRATE_ON_START"] == "0"
    # The names apps commonly read carry the same values.
    assert env["SECRET_KEY"] == env["DJANGO_SECRET_KEY"]
    assert env["ALLOWED_HOSTS"] == env["DJANGO_ALLOWED_HOSTS"]
    assert project["containers"]["django"] in env["ALLOWED_HOSTS"].split(",")
    assert env["DEBUG"] == env["DJANGO_DEBUG"]
    assert env["STATIC_ROOT"] == "/app/staticfiles" and env["MEDIA_ROOT"] == "/app/media"


def test_other_consumers_get_only_their_secret(example: Rendered) -> None:
    secrets = example.vault["vault_projects"]["beryl3"]
    config = "/opt/projects/beryl3/config"
    assert parse_env(example.text(f"{config}/postgres.env")) == {
        "POSTGRES_PASSWORD": secrets["postgres_password"]
    }
    assert parse_env(example.text(f"{config}/postgres-exporter.env")) == {
        "DATA_SOURCE_USER": "beryl3_monitor",
        "DATA_SOURCE_PASS": secrets["postgres_monitor_password"],
    }
    assert parse_env(example.text(f"{config}/redis-exporter.env")) == {
        "REDIS_PASSWORD": secrets["redis_password"]
    }
    redis_conf = example.text(f"{config}/redis.conf")
    assert f"requirepass {secrets['redis_password']}\n" in redis_conf
    assert "maxmemory 201326592\n" in redis_conf  # 192m
    assert "appendonly yes\n" in redis_conf
    entry = next(e for e in example.manifest(*ROLES) if e["dest"] == f"{config}/redis.conf")
    assert (entry["mode"], str(entry["owner"])) == ("0600", "999")


def test_project_nginx_conf(example: Rendered) -> None:
    conf = example.text("/opt/projects/project2/config/nginx.conf")
    assert "resolver 127.0.0.11" in conf
    assert "set $django_upstream http://project2-django:8000;" in conf
    assert "proxy_pass $django_upstream;" in conf
    # The hand-over of a release: a file in the (mounted, normally empty) live directory may
    # override the upstream, and the status port says which one is in force.
    assert conf.count("include /etc/nginx/live/*.conf;") == 2
    assert "location = /django-upstream {" in conf
    assert "alias /srv/static/;" in conf and "alias /srv/media/;" in conf
    # Uploads that can carry script are sandboxed documents (the deploy tests fetch them).
    media = conf.split("alias /srv/media/;", 1)[1].split("}", 1)[0]
    assert "add_header Content-Security-Policy $media_csp always;" in media
    assert '"~*^image/svg\\+xml\\s*(;|$)" "default-src \'none\';' in conf
    assert "stub_status;" in conf
    assert "escape=json" in conf
    assert "client_max_body_size" in conf
    for header in ("Host", "X-Forwarded-For", "X-Forwarded-Proto", "X-Real-IP"):
        assert f"proxy_set_header {header} " in conf


def test_dockerfile(example: Rendered) -> None:
    text = example.text("/opt/projects/beryl3/config/Dockerfile")
    instructions = [
        line.split()[0]
        for line in text.splitlines()
        if line and not line[0].isspace() and not line.startswith("#")
    ]
    assert instructions.count("FROM") == 2
    assert "ARG PYTHON_IMAGE=python:3.13-slim-bookworm" in text
    assert re.search(r'pip install .*\n?\s*"uv==\$\{UV_VERSION\}"', text)
    assert "uv sync --frozen --no-dev" in text
    assert "--mount=type=cache,target=/root/.cache/uv" in text
    assert "--mount=type=secret,id=ca,required=false" in text
    assert "ca-certificates.crt" not in text  # no test-bed plumbing in production templates
    assert "USER app" in text and "HEALTHCHECK" in text
    # stagectl's own entrypoint, carried in the Dockerfile: the app needs no file of stagectl's.
    assert 'ENTRYPOINT ["/usr/local/bin/stagectl-entrypoint"]' in text
    assert "docker-entrypoint.sh" not in text
    entrypoint = example.text("/opt/projects/beryl3/config/stagectl-entrypoint.py")
    encoded = re.search(r"echo '([A-Za-z0-9+/=]+)' \| base64 -d > /usr/local/bin/stagectl-entrypoint", text)
    assert encoded and base64.b64decode(encoded.group(1)).decode() == entrypoint
    # A build stage with a compiler, a runtime stage with only the run-time libraries.
    build, runtime = text.split("\nFROM ${PYTHON_IMAGE} AS runtime\n")
    assert "build-essential" in build and "libpq-dev" in build
    assert "build-essential" not in runtime and "libpq5" in runtime
    healthcheck = json.loads(runtime.split("    CMD ", 1)[1].splitlines()[0])
    assert healthcheck[:2] == ["python", "-c"]
    assert "'Host':\"beryl3.staging.mdubiel.org\"" in healthcheck[2]  # the project's Host header
    assert instructions.index("USER") > instructions.index("COPY", instructions.index("FROM", 1))


def test_backup_settings_and_units(example: Rendered) -> None:
    conf = parse_env(example.text("/etc/stagectl/backups/project2.conf"))
    assert conf == {
        "PROJECT": "project2",
        "PROJECT_ROOT": "/opt/projects/project2",
        "CONFIG_PATHS": "docker-compose.yml:config",
        "MEDIA_PATH": "data/media",
        "BACKUP_DIR": "/opt/backups/project2",
        "RETENTION_DAYS": "30",
        "POSTGRES_CONTAINER": "project2-postgres",
        "POSTGRES_IMAGE": example.project("project2")["images"]["postgres"],
        "POSTGRES_DB": "project2_staging",
        "POSTGRES_USER": "project2_user",
        "POSTGRES_MEMORY": "1g",
        "APP_SERVICES": "django" + (" worker" if example.project("project2")["worker"] else "")
        + (" scheduler" if example.project("project2")["scheduler"] else ""),
        "RELEASE_ARGV": '["python", "manage.py", "migrate", "--noinput"]',
    }
    timer = example.text("/etc/systemd/system/stagectl-backup@.timer")
    assert "OnCalendar=*-*-* 03:00:00\n" in timer and "Persistent=true\n" in timer
    assert "RandomizedDelaySec=" in timer
    verify_timer = example.text("/etc/systemd/system/stagectl-backup-verify@.timer")
    assert "OnCalendar=Sun *-*-* 04:30:00\n" in verify_timer
    assert "ExecStart=/usr/local/sbin/stagectl-backup run %i\n" in example.text(
        "/etc/systemd/system/stagectl-backup@.service"
    )
    assert "ExecStart=/usr/local/sbin/stagectl-backup verify %i\n" in example.text(
        "/etc/systemd/system/stagectl-backup-verify@.service"
    )


def test_a_queue_in_redis_is_backed_up_a_cache_is_not(example: Rendered, variant: Rendered) -> None:
    """Redis holds a worker's or scheduler's queue (variant's beryl3) or only a cache (example)."""
    queue = parse_env(variant.text("/etc/stagectl/backups/beryl3.conf"))
    assert (queue["REDIS_CONTAINER"], queue["REDIS_DATA"]) == ("beryl3-redis", "data/redis")
    assert queue["APP_SERVICES"] == "django worker scheduler"
    cache = parse_env(example.text("/etc/stagectl/backups/beryl3.conf"))
    assert "REDIS_CONTAINER" not in cache and "REDIS_DATA" not in cache


def test_backup_settings_of_the_shared_stacks_state(example: Rendered) -> None:
    conf = parse_env(example.text("/etc/stagectl/backups/shared.conf"))
    assert conf == {
        "PROJECT": "shared",
        "SHARED_ROOT": "/opt/shared",
        "CERTS_DIR": "/etc/letsencrypt",
        "STATE_PARTS": "alertmanager:alertmanager/data grafana:grafana/data",
        "PAUSED_SERVICES": "grafana",
        "SKIP_PATHS": "prometheus/data:loki/data:alloy/data",
        "NGINX_SERVICE": "nginx",
        "NGINX_CONFIG": "/etc/nginx/stagectl/nginx.conf",
        "BACKUP_DIR": "/opt/backups/shared",
        "RETENTION_DAYS": "30",
    }
    # Every data directory of the shared stack is either archived as a part or deliberately skipped.
    compose = example.text("/opt/shared/docker-compose.yml")
    data_dirs = set(re.findall(r"- /opt/shared/([\w-]+/data):", compose))
    assert data_dirs == {"alertmanager/data", "grafana/data", "prometheus/data", "loki/data", "alloy/data"}


def test_rendering_twice_gives_identical_bytes(example: Rendered, example_again: Rendered) -> None:
    """Two renders of one environment, by two ansible-playbook processes running side by side:
    the same manifest and, file by file, the same bytes (the whole render, not only these roles)."""
    assert example_again.manifest(*ROLES) == example.manifest(*ROLES)
    files = [p.relative_to(example.root) for p in example.tree()]
    assert files == [p.relative_to(example_again.root) for p in example_again.tree()]
    for rel in files:
        assert (example.root / rel).read_bytes() == (example_again.root / rel).read_bytes(), rel


# --- upstream validators ----------------------------------------------------------------------


def need(tool: str) -> str:
    path = shutil.which(tool) or next(
        (str(p) for p in (Path("/usr/sbin") / tool, Path("/sbin") / tool) if p.exists()), None
    )
    if path is None:
        missing_tool(f"{tool} is not installed (scripts/testbed-setup.sh validators installs it)")
    return path


def need_compose() -> str:
    docker = need("docker")
    probe = subprocess.run(
        [docker, "compose", "version", "--short"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0 or not probe.stdout.startswith(("2", "v2")):
        missing_tool(
            "Docker Compose v2 is not installed (scripts/testbed-setup.sh validators installs it)"
        )
    return docker


@pytest.mark.validators
@pytest.mark.parametrize("which", ["example", "variant"])
@pytest.mark.parametrize("name", ["beryl3", "project2"])
def test_docker_compose_config_accepts_it(
    example: Rendered, variant: Rendered, which: str, name: str
) -> None:
    docker = need_compose()
    rendered = {"example": example, "variant": variant}[which]
    compose_file = rendered.path(f"/opt/projects/{name}/docker-compose.yml")
    result = subprocess.run(
        [docker, "compose", "-f", str(compose_file), "config", "--format", "json"],
        capture_output=True,
        text=True,
        env={**os.environ, "COMPOSE_PROJECT_NAME": ""},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)
    # Compose read the env files (relative to the compose file) and resolved the bind mounts.
    environment = resolved["services"]["django"]["environment"]
    secret_key = rendered.vault["vault_projects"][name]["django_secret_key"]
    assert environment["DJANGO_SECRET_KEY"].replace("$$", "$") == secret_key
    assert resolved["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] == (
        rendered.vault["vault_projects"][name]["postgres_password"]
    )
    published = {
        service: [
            (p.get("host_ip"), p.get("published"), p.get("target")) for p in spec.get("ports", [])
        ]
        for service, spec in resolved["services"].items()
    }
    ports = EXAMPLE_PORTS[name]
    assert published["postgres"] == [("127.0.0.1", str(ports["postgres"]), 5432)]
    assert published["redis"] == [("127.0.0.1", str(ports["redis"]), 6379)]
    assert published["django"] == [("127.0.0.1", str(ports["django"]), 8000)]
    assert all(not value for service, value in published.items() if service not in ports)


def nginx_scratch(conf: Path, scratch: Path) -> Path:
    """The project nginx.conf, made testable on this machine: the official image's user
    `nginx` becomes the current user; everything else is checked as rendered."""
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "logs").mkdir(exist_ok=True)
    text = conf.read_text().replace("user nginx;", f"user {getpass.getuser()};", 1)
    target = scratch / "nginx.conf"
    target.write_text(text)
    return target


@pytest.mark.validators
@pytest.mark.parametrize("name", ["beryl3", "project2"])
def test_nginx_accepts_the_project_conf(example: Rendered, tmp_path: Path, name: str) -> None:
    nginx = need("nginx")
    target = nginx_scratch(example.path(f"/opt/projects/{name}/config/nginx.conf"), tmp_path / "nginx")
    result = subprocess.run(
        [nginx, "-t", "-q", "-p", str(tmp_path / "nginx"), "-c", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.validators
def test_shellcheck_accepts_the_backup_tool(example: Rendered) -> None:
    shellcheck = need("shellcheck")
    script = example.path("/usr/local/sbin/stagectl-backup")
    result = subprocess.run(
        [shellcheck, "--severity=style", str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout
    assert script.read_text().startswith("#!/usr/bin/env bash\n")


def test_the_backup_tool_saves_output_with_the_checksum_taken_as_it_streams(example: Rendered, tmp_path: Path) -> None:
    """The tool's `save`, cut out of the rendered script and run by bash: a program's and a
    function's output each land with a matching .sha256 beside them, what the function records
    (PAUSED, which on_exit reads) is kept in the tool's shell, and a failing command leaves no file."""
    script = example.text("/usr/local/sbin/stagectl-backup")
    match = re.search(r"^save\(\) \{\n.*?^\}\n", script, re.DOTALL | re.MULTILINE)
    assert match, "no save() in the backup tool"
    harness = "\n".join([
        "set -euo pipefail",
        'CLEANUP_FILES=(); PAUSED=""',
        'die() { echo "died: $*" >&2; exit 1; }',
        "log() { :; }",
        match.group(0),
        "pause_and_print() { PAUSED=paused-by-the-function; printf 'archived\\n'; }",
        'save "$1/program.out" head -c 300000 /dev/urandom',
        'save "$1/function.out" pause_and_print',
        'echo "PAUSED=$PAUSED"',
        'save "$1/failed.out" false',
    ])
    result = subprocess.run(["bash", "-c", harness, "harness", str(tmp_path)], capture_output=True, text=True,
                            timeout=60, check=False)

    assert result.returncode == 1 and "died: could not write" in result.stderr, result
    assert "PAUSED=paused-by-the-function" in result.stdout, result
    for name in ("program.out", "function.out"):
        content = (tmp_path / name).read_bytes()
        assert (tmp_path / f"{name}.sha256").read_text() == f"{hashlib.sha256(content).hexdigest()}  {name}\n"
    assert (tmp_path / "function.out").read_text() == "archived\n"
    assert not (tmp_path / "failed.out").exists()


def _shared_part_harness(script: str, *lines: str) -> str:
    """The tool's archive_part and wait_healthy, cut out of the rendered script, with docker and
    Compose replaced by a function that logs its calls to $CALLS: `inspect` answers the health
    before the pause from $HEALTHY_BEFORE, a 2 s interval and 1 s timeout, then `unhealthy` for the
    first $UNHEALTHY_READS reads of the status and `healthy` after them."""
    functions = [
        re.search(rf"^{name}\(\) \{{\n.*?^\}}\n", script, re.DOTALL | re.MULTILINE) for name in ("archive_part", "wait_healthy")
    ]
    assert all(functions), "no archive_part() or wait_healthy() in the backup tool"
    return "\n".join([
        "set -euo pipefail",
        'PAUSED=""',
        'die() { echo "died: $*" >&2; exit 1; }',
        'log() { echo "log $*" >>"$CALLS"; }',
        "sleep() { :; }",
        "shared_compose() { echo c1; echo c2; }",
        "docker() {",
        '    echo "docker $*" >>"$CALLS"',
        '    case "$1:${3:-}" in',
        '        inspect:*"eq .State.Health.Status"*) printf "%s\\n" $HEALTHY_BEFORE ;;',
        '        inspect:*Config.Healthcheck*) echo "2000000000 1000000000" ;;',
        "        inspect:*)",
        '            reads=$(($(cat "$READS") + 1)); echo "$reads" >"$READS"',
        '            for id in "${@:4}"; do [ "$reads" -gt "$UNHEALTHY_READS" ] && echo healthy || echo unhealthy; done ;;',
        "    esac",
        "}",
        *(match.group(0) for match in functions if match),
        *lines,
    ])


@pytest.mark.parametrize(
    ("service", "healthy_before", "unhealthy_reads", "paused", "status_reads", "warned"),
    [
        pytest.param("alertmanager", "c1 c2", 5, False, 0, False, id="read-while-it-runs"),
        pytest.param("grafana", "c1 c2", 3, True, 4, False, id="paused-then-healthy-again"),
        pytest.param("grafana", "", 3, True, 0, False, id="paused-no-health-check"),
        pytest.param("grafana", "c2", 1000, True, 14, True, id="paused-never-healthy-again"),
    ],
)
def test_the_backup_tool_pauses_only_what_writes_in_place_and_waits_for_its_health(
    example: Rendered, tmp_path: Path, service: str, healthy_before: str, unhealthy_reads: int,
    paused: bool, status_reads: int, warned: bool,
) -> None:
    """Alertmanager replaces its files whole: read while it runs. Grafana writes its database in
    place: paused while it is read, then the tool waits until the containers that were healthy
    before are healthy again (Docker says unhealthy from a pause to the next check), at most the
    slowest check's interval and timeout with a 10 s margin (here 2 + 1 + 10 = 13 polls after the
    first), and only warns past that."""
    data = tmp_path / "shared" / service / "data"
    data.mkdir(parents=True)
    (data / "state").write_text("kept\n")
    calls, reads = tmp_path / "calls", tmp_path / "reads"
    reads.write_text("0\n")
    harness = _shared_part_harness(
        example.text("/usr/local/sbin/stagectl-backup"),
        f'archive_part {service} {service}/data >"$OUT"',
        'echo "PAUSED=[$PAUSED]"',
    )
    env = {**os.environ, "SHARED_ROOT": str(tmp_path / "shared"), "PAUSED_SERVICES": "grafana", "CALLS": str(calls),
           "READS": str(reads), "OUT": str(tmp_path / "part.tar.gz"), "HEALTHY_BEFORE": healthy_before,
           "UNHEALTHY_READS": str(unhealthy_reads)}
    result = subprocess.run(["bash", "-c", harness], capture_output=True, text=True, env=env, timeout=60, check=False)

    assert result.returncode == 0 and "PAUSED=[]" in result.stdout, result
    with tarfile.open(tmp_path / "part.tar.gz") as archive:
        assert archive.extractfile(f"{service}/data/state").read() == b"kept\n"  # type: ignore[union-attr]
    log = calls.read_text() if calls.exists() else ""
    assert ("docker pause c1 c2" in log and "docker unpause c1 c2" in log) is paused, log
    assert int(reads.read_text()) == status_reads, log
    if status_reads:
        assert f"inspect --format {{{{.State.Health.Status}}}} {healthy_before}\n" in log, log
    assert ("log warning grafana is not healthy again" in log) is warned, log


@pytest.mark.validators
def test_systemd_analyze_verifies_the_units(example: Rendered, tmp_path: Path) -> None:
    analyze = need("systemd-analyze")
    system_units = next(
        (
            p
            for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
            if (p / "sysinit.target").exists()
        ),
        None,
    )
    if system_units is None:
        missing_tool("no systemd unit directory with sysinit.target on this machine")
    # A scratch root holding the system's units, ours, and the tool the units run.
    root = tmp_path / "root"
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
    if not (root / "usr/lib/systemd/system/docker.service").exists():
        (root / "usr/lib/systemd/system/docker.service").write_text(
            "[Unit]\nDescription=stand-in\n[Service]\nExecStart=/bin/true\n"
        )
    (root / "etc/systemd/system").mkdir(parents=True)
    for unit in example.path("/etc/systemd/system").iterdir():
        shutil.copy(unit, root / "etc/systemd/system" / unit.name)
    (root / "usr/local/sbin").mkdir(parents=True)
    shutil.copy(
        example.path("/usr/local/sbin/stagectl-backup"), root / "usr/local/sbin/stagectl-backup"
    )
    instances = [
        str(root / "etc/systemd/system" / f"{unit}@beryl3.{kind}")
        for unit in ("stagectl-backup", "stagectl-backup-verify")
        for kind in ("service", "timer")
    ]
    result = subprocess.run(
        [analyze, "verify", "--man=no", f"--root={root}", *instances],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    for schedule in (
        example.stagectl["backups"]["schedule"],
        example.stagectl["backups"]["verify_schedule"],
    ):
        result = subprocess.run([analyze, "calendar", schedule], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr


# --- the rendered configuration in the real servers ---------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def redis_server(example: Rendered, tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """redis-server running the rendered beryl3 redis.conf (data dir and port moved)."""
    server = need("redis-server")
    conf = example.text("/opt/projects/beryl3/config/redis.conf")
    port = free_port()
    (tmp_path / "data").mkdir()
    local = (
        conf.replace("dir /data\n", f"dir {tmp_path / 'data'}\n")
        .replace("port 6379\n", f"port {port}\n")
        .replace("bind 0.0.0.0\n", "bind 127.0.0.1\n")
    )
    conf_path = tmp_path / "redis.conf"
    conf_path.write_text(local)
    process = subprocess.Popen(
        [server, str(conf_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None:
                    pytest.fail(
                        f"redis-server rejected the rendered redis.conf: {process.stdout.read()!r}"
                    )
                time.sleep(0.1)
        yield conf_path, port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.services
def test_redis_runs_the_rendered_conf_and_the_healthcheck_passes(
    example: Rendered, redis_server: tuple[Path, int]
) -> None:
    need("redis-cli")
    conf_path, port = redis_server
    test = example.compose("beryl3")["services"]["redis"]["healthcheck"]["test"]
    # The healthcheck as the container's shell runs it ($$ is Compose's escape for $).
    command = (
        test[1]
        .replace("$$", "$")
        .replace("/usr/local/etc/redis/redis.conf", str(conf_path))
        .replace("redis-cli ping", f"redis-cli -p {port} ping")
    )
    assert subprocess.run(["sh", "-c", command], capture_output=True, check=False).returncode == 0
    # Without the password, Redis refuses.
    denied = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, check=False)
    assert "NOAUTH" in denied.stdout + denied.stderr
    info = subprocess.run(
        ["sh", "-c", command.replace("ping | grep -q PONG", "config get maxmemory")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "201326592" in info.stdout


@pytest.fixture
def scratch_dir() -> Iterator[Path]:
    """A directory an unprivileged user can reach (pytest's tmp_path is under a 0700 root dir)."""
    path = Path(tempfile.mkdtemp(prefix="stagectl-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def as_unprivileged(*paths: Path) -> list[str]:
    """PostgreSQL refuses to run as root: under root, run it as `nobody` owning PATHS."""
    if os.geteuid() != 0:
        return []
    runuser = need("runuser")
    for path in paths:
        shutil.chown(path, "nobody")
    return [runuser, "-u", "nobody", "--"]


@pytest.mark.services
def test_postgres_accepts_the_rendered_flags(example: Rendered, scratch_dir: Path) -> None:
    postgres, initdb = need("postgres"), need("initdb")
    command = example.compose("beryl3")["services"]["postgres"]["command"]
    assert command[0] == "postgres"
    data = scratch_dir / "pgdata"
    data.mkdir(mode=0o700)
    prefix = as_unprivileged(data)
    subprocess.run(
        [*prefix, initdb, "-D", str(data), "-U", "beryl3_user"],
        check=True,
        capture_output=True,
        cwd=scratch_dir,
    )
    # -C prints a setting after parsing every -c flag: an unknown or invalid one fails.
    for setting, expected in (
        ("max_connections", "100"),
        ("log_min_duration_statement", "500"),
        ("log_line_prefix", "%m [%p] %q%u@%d "),
    ):
        result = subprocess.run(
            [*prefix, postgres, "-D", str(data), *command[1:], "-C", setting],
            capture_output=True,
            text=True,
            cwd=scratch_dir,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.rstrip("\n") == expected


# --- the backup tool, end to end, with a stand-in for the docker CLI ----------------------------

DOCKER_SHIM = r'''#!PYTHON
"""Stand-in for the docker CLI, as much as stagectl-backup uses: each "container" is a local
PostgreSQL server (run, exec, inspect, logs, rm; plus stop for the tests)."""
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

STATE = Path(os.environ["SHIM_STATE"])
PG_BIN = Path(os.environ["SHIM_PG_BIN"])
AS_USER = json.loads(os.environ["SHIM_AS_USER"])
REGISTRY = STATE / "containers.json"


def load():
    return json.loads(REGISTRY.read_text()) if REGISTRY.exists() else {}


def store(registry):
    REGISTRY.write_text(json.dumps(registry))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(name, options, image):
    env = dict(item.split("=", 1) for item in options.get("env", []))
    base = STATE / name
    data, sock = base / "data", base / "sock"
    base.mkdir()
    data.mkdir(mode=0o700)
    sock.mkdir()
    if AS_USER:
        for path in (base, data, sock):
            shutil.chown(path, "nobody")
    port = free_port()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "check": True, "cwd": base}
    subprocess.run([*AS_USER, PG_BIN / "initdb", "-D", data, "-U", env["POSTGRES_USER"], "-A", "trust"], **quiet)
    subprocess.run([*AS_USER, PG_BIN / "pg_ctl", "-D", data, "-l", base / "log", "-w", "-o",
                    f"-p {port} -k {sock} -c listen_addresses=127.0.0.1", "start"], **quiet)
    subprocess.run([PG_BIN / "createdb", "-h", sock, "-p", str(port), "-U", env["POSTGRES_USER"],
                    env["POSTGRES_DB"]], **quiet)
    registry = load()
    registry[name] = {"port": port, "socket": str(sock), "data": str(data), "base": str(base),
                      "running": True, "image": image, "labels": options.get("label", [])}
    store(registry)
    print(name)


def stop(container):
    subprocess.run([*AS_USER, PG_BIN / "pg_ctl", "-D", container["data"], "-m", "immediate", "stop"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=container["base"])


def main(argv):
    command, args = argv[0], argv[1:]
    registry = load()
    if command == "run":
        options, i = {}, 0
        while args[i].startswith("--"):
            key = args[i][2:]
            if key == "detach":
                i += 1
                continue
            if key in ("env", "label"):
                options.setdefault(key, []).append(args[i + 1])
            else:
                options[key] = args[i + 1]
            i += 2
        run(options["name"], options, args[i])
        return 0
    name = args[-1] if command != "exec" else [a for a in args if a != "-i"][0]
    container = registry.get(name)
    if container is None:
        print(f"Error: No such container: {name}", file=sys.stderr)
        return 1
    if command == "inspect":
        print("true" if container["running"] else "false")
        return 0
    if command == "exec":
        rest = [a for a in args if a != "-i"][1:]
        if not container["running"]:
            print(f"Error response from daemon: container {name} is not running", file=sys.stderr)
            return 1
        env = {**os.environ, "PGHOST": container["socket"], "PGPORT": str(container["port"])}
        return subprocess.run([PG_BIN / rest[0], *rest[1:]], env=env).returncode
    if command == "logs":
        print(Path(container["base"], "log").read_text())
        return 0
    if command in ("rm", "stop"):
        stop(container)
        if command == "rm":
            shutil.rmtree(container["base"], ignore_errors=True)
            del registry[name]
        else:
            container["running"] = False
        store(registry)
        return 0
    print(f"docker stand-in: unsupported command {command}", file=sys.stderr)
    return 2


sys.exit(main(sys.argv[1:]))
'''


class BackupBed:
    """The rendered stagectl-backup and beryl3's settings, moved under a scratch directory, with a
    stand-in docker on PATH and beryl3's "PostgreSQL container" running."""

    def __init__(self, example: Rendered, root: Path) -> None:
        self.root = root
        self.backups = root / "backups" / "beryl3"
        self.project_root = root / "projects" / "beryl3"
        self.textfile = root / "textfile"
        bin_dir, etc, state = root / "bin", root / "etc", root / "state"
        for path in (
            bin_dir,
            etc,
            state,
            root / "lock",
            self.project_root / "config",
            self.project_root / "data" / "media",
        ):
            path.mkdir(parents=True)
        script = example.text("/usr/local/sbin/stagectl-backup")
        for old, new in (
            ("readonly CONF_DIR=/etc/stagectl/backups", f"readonly CONF_DIR={etc}"),
            (
                "readonly TEXTFILE_DIR=/var/lib/stagectl/textfile",
                f"readonly TEXTFILE_DIR={self.textfile}",
            ),
            ("readonly LOCK_DIR=/run/lock", f"readonly LOCK_DIR={root / 'lock'}"),
        ):
            assert old in script
            script = script.replace(old, new)
        self.script = bin_dir / "stagectl-backup"
        self.script.write_text(script)
        self.script.chmod(0o755)
        conf = example.text("/etc/stagectl/backups/beryl3.conf")
        conf = conf.replace("BACKUP_DIR=/opt/backups/beryl3", f"BACKUP_DIR={self.backups}")
        conf = conf.replace(
            "PROJECT_ROOT=/opt/projects/beryl3", f"PROJECT_ROOT={self.project_root}"
        )
        (etc / "beryl3.conf").write_text(conf)
        # What the configuration archive must hold.
        (self.project_root / "docker-compose.yml").write_text(
            example.text("/opt/projects/beryl3/docker-compose.yml")
        )
        (self.project_root / "config" / ".env").write_text("DJANGO_SECRET_KEY=x\n")
        (self.project_root / "data" / "media" / "upload.txt").write_text("a user's upload\n")
        shim = bin_dir / "docker"
        shim.write_text(DOCKER_SHIM.replace("PYTHON", sys.executable, 1))
        shim.chmod(0o755)
        postgres = Path(need("postgres")).resolve()
        prefix = as_unprivileged()
        self.env = {
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "SHIM_STATE": str(state),
            "SHIM_PG_BIN": str(postgres.parent),
            "SHIM_AS_USER": json.dumps(prefix),
        }
        self.env.pop("JOURNAL_STREAM", None)
        self.docker(
            "run",
            "--detach",
            "--name",
            "beryl3-postgres",
            "--env",
            "POSTGRES_USER=beryl3_user",
            "--env",
            "POSTGRES_DB=beryl3_staging",
            "postgres:17.6",
        )
        self.sql(
            "CREATE TABLE notes_note (id bigserial PRIMARY KEY, body text NOT NULL);"
            "INSERT INTO notes_note (body) SELECT 'note ' || n FROM generate_series(1, 500) AS n;"
            "CREATE TABLE django_migrations (id serial PRIMARY KEY, app text, name text);"
            "INSERT INTO django_migrations (app, name) VALUES ('notes', '0001_initial');"
        )

    def docker(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["docker", *args], env=self.env, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        return result

    def sql(self, statement: str) -> str:
        return self.docker(
            "exec",
            "beryl3-postgres",
            "psql",
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-U",
            "beryl3_user",
            "-d",
            "beryl3_staging",
            "-c",
            statement,
        ).stdout

    def tool(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.script), *args], env=self.env, capture_output=True, text=True, timeout=300, check=False
        )

    def stop_all(self) -> None:
        registry = Path(self.env["SHIM_STATE"]) / "containers.json"
        if registry.exists():
            for name in json.loads(registry.read_text()):
                subprocess.run(["docker", "rm", name], env=self.env, capture_output=True, check=False)


@pytest.fixture
def backup_bed(example: Rendered, scratch_dir: Path) -> Iterator[BackupBed]:
    need("postgres")
    need("initdb")
    bed = BackupBed(example, scratch_dir)
    try:
        yield bed
    finally:
        bed.stop_all()


def metrics(bed: BackupBed, action: str) -> dict[str, float]:
    text = (bed.textfile / f"stagectl-backup-{action}-beryl3.prom").read_text()
    return {
        line.split("{")[0]: float(line.split()[-1])
        for line in text.splitlines()
        if not line.startswith("#")
    }


@pytest.mark.services
def test_backup_tool_dumps_archives_prunes_lists_and_verifies(backup_bed: BackupBed) -> None:
    bed = backup_bed
    bed.backups.mkdir(parents=True)
    # Backups from long ago, and the leftover of a killed run.
    for name in (
        "beryl3-20200101T030000Z.dump",
        "beryl3-20200101T030000Z.dump.sha256",
        "beryl3-20200101T030000Z-config.tar.gz",
        ".beryl3-20200101T030000Z.dump.partial",
    ):
        (bed.backups / name).write_text("old\n")
        os.utime(bed.backups / name, (0, 0))

    run = bed.tool("run", "beryl3")
    assert run.returncode == 0, run.stderr
    assert "backup of project beryl3 done" in run.stderr
    files = sorted(p.name for p in bed.backups.iterdir())
    dumps = [f for f in files if f.endswith(".dump")]
    assert len(dumps) == 1 and re.fullmatch(r"beryl3-\d{8}T\d{6}Z\.dump", dumps[0]), files
    stamp = dumps[0][: -len(".dump")]
    assert files == sorted(
        [
            f"{stamp}.dump",
            f"{stamp}.dump.sha256",
            f"{stamp}-config.tar.gz",
            f"{stamp}-config.tar.gz.sha256",
            f"{stamp}-media.tar.gz",
            f"{stamp}-media.tar.gz.sha256",
        ]
    ), "old backups and leftovers are pruned"
    check = subprocess.run(
        [
            "sha256sum",
            "--check",
            "--strict",
            f"{stamp}.dump.sha256",
            f"{stamp}-config.tar.gz.sha256",
            f"{stamp}-media.tar.gz.sha256",
        ],
        cwd=bed.backups,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert stat.S_IMODE(bed.backups.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in bed.backups.iterdir())
    config = subprocess.run(
        ["tar", "-tzf", str(bed.backups / f"{stamp}-config.tar.gz")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "docker-compose.yml" in config and "config/.env" in config
    media = subprocess.run(
        ["tar", "-tzf", str(bed.backups / f"{stamp}-media.tar.gz")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "data/media/upload.txt" in media
    assert metrics(bed, "run")["stagectl_backup_last_run_success"] == 1
    assert (
        metrics(bed, "run")["stagectl_backup_last_size_bytes"]
        == (bed.backups / f"{stamp}.dump").stat().st_size
    )

    listed = bed.tool("list", "beryl3")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split("\t")[0] == stamp.removeprefix("beryl3-")

    verify = bed.tool("verify", "beryl3")
    assert verify.returncode == 0, verify.stderr
    assert "restore test of project beryl3 passed" in verify.stderr
    assert "2 table(s), 1 applied migration(s)" in verify.stderr
    assert metrics(bed, "verify")["stagectl_backup_verify_last_run_success"] == 1
    registry = json.loads((Path(bed.env["SHIM_STATE"]) / "containers.json").read_text())
    assert list(registry) == ["beryl3-postgres"], "the throwaway container is removed"

    # A damaged dump is caught before anything is restored.
    dump = bed.backups / f"{stamp}.dump"
    dump.write_bytes(dump.read_bytes()[:-10])
    damaged = bed.tool("verify", "beryl3")
    assert damaged.returncode == 1
    assert "does not match its checksum" in damaged.stderr
    assert metrics(bed, "verify")["stagectl_backup_verify_last_run_success"] == 0
    assert metrics(bed, "verify")["stagectl_backup_verify_last_success_timestamp_seconds"] > 0


@pytest.mark.services
def test_backup_tool_fails_loudly_and_leaves_nothing_half_written(backup_bed: BackupBed) -> None:
    bed = backup_bed
    bed.docker("stop", "beryl3-postgres")
    stopped = bed.tool("run", "beryl3")
    assert stopped.returncode == 1
    assert "container beryl3-postgres is not running" in stopped.stderr
    assert "run of project beryl3 FAILED" in stopped.stderr
    assert metrics(bed, "run")["stagectl_backup_last_run_success"] == 0

    # The container answers inspect but the dump itself fails: no file appears, no partial stays.
    registry_file = Path(bed.env["SHIM_STATE"]) / "containers.json"
    registry = json.loads(registry_file.read_text())
    registry["beryl3-postgres"]["running"] = True  # "running", but the server is down
    registry_file.write_text(json.dumps(registry))
    broken = bed.tool("run", "beryl3")
    assert broken.returncode == 1
    assert "pg_dump failed" in broken.stderr or "dump_database failed" in broken.stderr
    assert not [p for p in bed.backups.iterdir()] if bed.backups.exists() else True

    unknown = bed.tool("run", "nosuch")
    assert unknown.returncode == 1 and "no backup settings for project 'nosuch'" in unknown.stderr
    assert bed.tool("frobnicate", "beryl3").returncode == 2


# --- the whole stack, running, with the test bed's stand-in images ----------------------------

DEMO_APP = Path(__file__).resolve().parents[2] / "examples" / "demo-app"
STANDIN_IMAGES = {  # model key -> stand-in name (stagectl.sandbox.images)
    "postgres": "postgres",
    "redis": "redis",
    "nginx": "nginx",
    "python": "python",
    "postgres_exporter": "postgres-exporter",
    "redis_exporter": "redis-exporter",
    "nginx_exporter": "nginx-exporter",
}
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def run(
    *args: str, cwd: Path | None = None, timeout: float = 300, check: bool = True, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


@pytest.fixture
def live_stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """One project rendered from an environment whose images are the stand-ins, its app built
    from examples/demo-app with the rendered Dockerfile, and the stack up and healthy.

    Only test plumbing differs from a server: the project has a random name and free ports, the
    shared networks get names of their own, the build gets the machine's CA bundle through
    the Dockerfile's optional `ca` secret (a Compose override file), and on an engine older than
    25 (the test bed's own) the healthchecks lose `start_interval`, which Compose refuses there
    (a server's engine is checked to be 25 or later by the common role)."""
    from stagectl.sandbox.images import BuildError, ImageBuilder, docker_available

    docker = need_compose()
    if not docker_available():
        missing_tool(
            "no Docker daemon answers `docker info` (start one: scripts/testbed-setup.sh docker)"
        )
    try:
        refs = {
            r.name: r.ref
            for r in ImageBuilder(out=lambda line: None).build(list(STANDIN_IMAGES.values()))
        }
    except BuildError as exc:
        missing_tool(f"the stand-in images cannot be built here: {exc}")

    name = f"t{os.urandom(3).hex()}"

    def one_project(data: dict[str, Any]) -> None:
        data["staging"]["vars"]["projects"] = [
            {
                "name": name,
                "domain": f"{name}.staging.mdubiel.org",
                "repo": str(DEMO_APP),
                "app": DEMO_APP_ENTRY,
                "ports": {"postgres": free_port(), "django": free_port(), "redis": free_port()},
            }
        ]

    def standin_images(data: dict[str, Any]) -> None:
        data["project_defaults"]["images"] = {
            key: refs[standin] for key, standin in STANDIN_IMAGES.items()
        }

    env = make_environment(
        tmp_path / "env", tmp_path / "secret" / "vault-pass",
        inventory=one_project, all_vars=standin_images,
    )
    rendered = render(env, tmp_path / "out")
    project = rendered.project(name)
    project_dir = rendered.path(project["dirs"]["root"])

    # What the deploy does before `docker compose up`: the checkout, the directories and owners.
    shutil.copytree(
        DEMO_APP, project_dir / "app", ignore=shutil.ignore_patterns(".venv", "__pycache__")
    )
    for sub in ("data/postgresql", "data/redis", "data/static", "data/media", "ssl", "logs"):
        (project_dir / sub).mkdir(parents=True, exist_ok=True)
    for sub in ("data/static", "data/media"):
        os.chown(project_dir / sub, 10001, 10001)
    os.chown(project_dir / "config/redis.conf", 999, 999)
    compose_file = project_dir / "docker-compose.yml"
    # The shared `projects` network gets a name of this test's own; the project's metrics
    # network has one already. Both are external: the test makes them, as the deploy does.
    networks = {"projects": f"{name}-projects", project["metrics_network"]: project["metrics_network"]}
    text = compose_file.read_text()
    for network, unique in networks.items():
        text = text.replace(f"    name: {network}\n", f"    name: {unique}\n")
    engine = run(docker, "version", "--format", "{{.Server.Version}}").stdout.strip()
    if int(engine.split(".")[0]) < 25:
        text = re.sub(r"(?m)^ +start_interval: .*\n", "", text)
    compose_file.write_text(text)
    override = project_dir / "test-override.yml"
    files = ["-f", str(compose_file)]
    if CA_BUNDLE.exists():
        override.write_text(
            yaml.safe_dump(
                {
                    "services": {"django": {"build": {"secrets": ["ca"]}}},
                    "secrets": {"ca": {"file": str(CA_BUNDLE)}},
                }
            )
        )
        files += ["-f", str(override)]
    compose = [docker, "compose", *files]
    for unique in networks.values():
        run(docker, "network", "create", unique)
    try:
        run(*compose, "build", cwd=project_dir, timeout=900)
        run(
            *compose,
            "up",
            "--detach",
            "--wait",
            "--wait-timeout",
            "300",
            cwd=project_dir,
            timeout=400,
        )
        # What the deploy does once PostgreSQL runs: the exporter's read-only role, from the
        # rendered script through psql's stdin.
        created = run(
            docker, "exec", "--interactive", project["containers"]["postgres"],
            "psql", "--no-psqlrc", "--quiet", "--tuples-only", "--no-align", "--set=ON_ERROR_STOP=1",
            f"--username={project['database']['user']}", f"--dbname={project['database']['name']}",
            input=(project_dir / "config/postgres-monitor.sql").read_text(),
        )
        assert created.stdout.split() == ["created"]
        yield {
            "name": name,
            "project": project,
            "dir": project_dir,
            "compose": compose,
            "docker": docker,
            "rendered": rendered,
            "secrets": rendered.vault["vault_projects"][name],
            "scratch": tmp_path,
        }
    finally:
        run(*compose, "down", "--volumes", "--remove-orphans", cwd=project_dir, check=False)
        for unique in networks.values():
            run(docker, "network", "rm", unique, check=False)
        run(docker, "image", "rm", project["images"]["app"], check=False)


def http_get(url: str, **headers: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.docker
def test_the_stack_runs_healthy_serves_and_is_backed_up(live_stack: dict[str, Any]) -> None:
    name, project, docker = live_stack["name"], live_stack["project"], live_stack["docker"]
    compose, project_dir = live_stack["compose"], live_stack["dir"]
    ps = run(*compose, "ps", "--format", "json", cwd=project_dir).stdout
    states = [json.loads(line) for line in ps.splitlines() if line.strip()]
    if len(states) == 1 and isinstance(states[0], list):
        states = states[0]
    assert {s["Service"]: s["Health"] for s in states} == {
        service: "healthy" for service in SERVICES
    }

    # Django on its loopback port: alive, and ready (database and Redis answer).
    django = f"http://127.0.0.1:{project['ports']['django']}"
    assert http_get(f"{django}/healthz") == (200, "ok")
    status, body = http_get(f"{django}/readyz")
    assert status == 200 and json.loads(body)["status"] == "ok", body

    # Through the project nginx (from inside it: it is not published): static files from the
    # shared volume, the app behind it, /metrics kept private.
    def in_nginx(*args: str) -> str:
        return run(docker, "exec", project["containers"]["nginx"], "curl", "-sS", *args).stdout

    host = f"Host: {project['domain']}"
    assert (
        in_nginx(
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            host,
            "http://127.0.0.1/static/admin/css/base.css",
        )
        == "200"
    )
    assert (
        in_nginx("-o", "/dev/null", "-w", "%{http_code}", "-H", host, "http://127.0.0.1/metrics")
        == "404"
    )
    assert json.loads(in_nginx("-H", host, "http://127.0.0.1/readyz"))["status"] == "ok"
    # The exporters reach what they export (on the project network, by container name).
    containers = project["containers"]
    assert "nginx_up 1" in in_nginx(f"http://{containers['nginx_exporter']}:9113/metrics")
    assert "redis_up 1" in in_nginx(f"http://{containers['redis_exporter']}:9121/metrics")
    assert "pg_up 1" in in_nginx(f"http://{containers['postgres_exporter']}:9187/metrics")
    assert "django_http_requests" in in_nginx(f"http://{containers['django']}:8000/metrics")

    # Secrets stay out of process lists, and Redis' out of `docker inspect` too.
    processes = run("ps", "-eww", "-o", "args").stdout
    for value in live_stack["secrets"].values():
        assert value not in processes
    assert (
        live_stack["secrets"]["redis_password"]
        not in run(docker, "inspect", containers["redis"]).stdout
    )

    # The gated migration step, then a backup and its restore test with the real tool and Docker.
    run(
        *compose,
        "exec",
        "-T",
        "django",
        "python",
        "manage.py",
        "migrate",
        "--noinput",
        cwd=project_dir,
    )
    # The exporter's role reads the statistics and nothing of the app's, and writes nothing.
    database = project["database"]

    def as_monitor(*sql: str) -> subprocess.CompletedProcess[str]:
        return run(
            docker, "exec", "--env", "PGPASSWORD", containers["postgres"],
            "psql", "--no-psqlrc", "--tuples-only", "--no-align", "--host=127.0.0.1", "--set=ON_ERROR_STOP=1",
            f"--username={database['monitor_user']}", f"--dbname={database['name']}",
            *(f"--command={statement}" for statement in sql),
            check=False, env={**os.environ, "PGPASSWORD": live_stack["secrets"]["postgres_monitor_password"]},
        )

    monitor = as_monitor("SELECT rolsuper, pg_has_role('pg_monitor', 'MEMBER') FROM pg_roles WHERE rolname = current_user")
    assert monitor.stdout.split() == ["f|t"], monitor.stderr
    assert as_monitor("SELECT count(*) > 0 FROM pg_stat_activity WHERE usename IS NOT NULL").stdout.split() == ["t"]
    refused = as_monitor("SELECT count(*) FROM django_migrations")
    assert refused.returncode != 0 and "permission denied" in refused.stderr
    refused = as_monitor("SET default_transaction_read_only = off", "CREATE TABLE intruder (id int)")
    assert refused.returncode != 0 and "permission denied for schema public" in refused.stderr
    postgres_log = run(docker, "logs", containers["postgres"]).stderr
    assert live_stack["secrets"]["postgres_monitor_password"] not in postgres_log

    rendered, scratch = live_stack["rendered"], live_stack["scratch"] / "backup"
    (scratch / "etc").mkdir(parents=True)
    script = rendered.text("/usr/local/sbin/stagectl-backup")
    for old, new in (
        ("readonly CONF_DIR=/etc/stagectl/backups", f"readonly CONF_DIR={scratch / 'etc'}"),
        (
            "readonly TEXTFILE_DIR=/var/lib/stagectl/textfile",
            f"readonly TEXTFILE_DIR={scratch / 'textfile'}",
        ),
        ("readonly LOCK_DIR=/run/lock", f"readonly LOCK_DIR={scratch}"),
    ):
        script = script.replace(old, new)
    tool = scratch / "stagectl-backup"
    tool.write_text(script)
    tool.chmod(0o755)
    conf = rendered.text(f"/etc/stagectl/backups/{name}.conf")
    conf = conf.replace(f"BACKUP_DIR=/opt/backups/{name}", f"BACKUP_DIR={scratch / 'backups'}")
    conf = conf.replace(f"PROJECT_ROOT={project['dirs']['root']}", f"PROJECT_ROOT={project_dir}")
    (scratch / "etc" / f"{name}.conf").write_text(conf)
    backup = run(str(tool), "run", name)
    assert "backup of project" in backup.stderr and "done" in backup.stderr
    verify = run(str(tool), "verify", name, timeout=400)
    assert re.search(
        r"passed in \d+s: .* restored, \d+ table\(s\), \d+ applied migration\(s\)", verify.stderr
    ), verify.stderr
    leftovers = run(
        docker, "ps", "--all", "--quiet", "--filter", f"name=stagectl-verify-{name}"
    ).stdout
    assert leftovers.strip() == ""

    # Data survives the database container's recreation.
    run(*compose, "up", "--detach", "--wait", "--force-recreate", "postgres", cwd=project_dir)
    count = run(
        *compose,
        "exec",
        "-T",
        "postgres",
        "psql",
        "-At",
        "-U",
        project["database"]["user"],
        "-d",
        project["database"]["name"],
        "-c",
        "SELECT count(*) FROM django_migrations",
        cwd=project_dir,
    ).stdout
    assert int(count) > 0


@pytest.mark.validators
def test_hadolint_accepts_the_dockerfile(example: Rendered) -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip(
            "hadolint is not installed (no Debian or PyPI package); the docker-marked "
            "test_the_stack_runs_healthy_serves_and_is_backed_up builds the Dockerfile for real"
        )
    result = subprocess.run(
        [hadolint, str(example.path("/opt/projects/beryl3/config/Dockerfile"))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


# --- the app entry: builders, paths, processes, environment ---------------------------------------


def test_pip_app_described_in_full(variant: Rendered) -> None:
    root = "/opt/projects/project2"
    text = variant.text(f"{root}/config/Dockerfile")
    build, runtime = text.split("\nFROM ${PYTHON_IMAGE} AS runtime\n")
    assert "python -m venv /app/.venv" in build
    assert "/app/.venv/bin/pip install --requirement requirements/prod.txt" in build
    assert "uv sync" not in text and "poetry" not in text
    assert "libpq5 libmagic1" in runtime
    assert "VIRTUAL_ENV=/app/.venv" in runtime  # as an activated venv: uwsgi's virtualenv=$(VIRTUAL_ENV)
    # Build-stage packages are installed there only.
    assert "libssl-dev libmagic-dev" in build and "libmagic-dev" not in runtime
    assert "install -d -o app -g app -m 0755 /srv/app/static /srv/app/uploads" in runtime
    assert "DJANGO_SETTINGS_MODULE=p2.settings.staging" in runtime
    entrypoint = variant.text(f"{root}/config/stagectl-entrypoint.py")
    # The Procfile's web line uses the shell ($GUNICORN_WORKERS): sh runs it.
    assert ('WEB = ["sh", "-c", "exec gunicorn p2.wsgi --bind 0.0.0.0:8000 --workers $GUNICORN_WORKERS"]'
            in entrypoint)

    django = variant.compose("project2")["services"]["django"]
    assert django["volumes"] == ["./data/static:/srv/app/static", "./data/media:/srv/app/uploads"]
    assert "command" not in django  # the entrypoint runs the web process
    assert "c.request('GET',\"/up\"" in django["healthcheck"]["test"][3]

    nginx = variant.text(f"{root}/config/nginx.conf")
    assert "location /assets/ {" in nginx and "location /uploads/ {" in nginx
    assert "location /static/" not in nginx
    assert "location = /prom {" in nginx and "location = /metrics" not in nginx

    env = parse_env(variant.text(f"{root}/config/.env"))
    assert env["FEATURE_X"] == "on"
    # The app's own value wins: stagectl's line for that name is left out, not duplicated.
    assert env["DEBUG"] == "True" and env["DJANGO_DEBUG"] == "False"
    assert variant.text(f"{root}/config/.env").count("\nDEBUG=") == 1
    assert env["STRIPE_KEY"] == "sk_test_$value#1"  # single-quoted: Compose takes it literally
    assert env["STATIC_URL"] == "/assets/" and env["STATIC_ROOT"] == "/srv/app/static"
    assert env["PROMETHEUS_MULTIPROC_DIR"]


def test_own_dockerfile_is_built_as_it_is(variant: Rendered) -> None:
    root = "/opt/projects/my-app"
    written = {e["dest"] for e in variant.manifest("project") if e["project"] == "my-app"}
    assert f"{root}/config/Dockerfile" not in written
    assert f"{root}/config/stagectl-entrypoint.py" not in written
    django = variant.compose("my-app")["services"]["django"]
    assert django["build"] == {"context": "./app", "dockerfile": "docker/Dockerfile"}
    assert django["command"] == ["uwsgi", "--ini", "uwsgi.ini"]
    # Defaults of the app entry: health on /, the app's own static root.
    assert "c.request('GET',\"/\"" in django["healthcheck"]["test"][3]
    assert django["volumes"] == ["./data/static:/app/staticfiles", "./data/media:/app/media"]
    # Whatever USER its Dockerfile names: the owner of those volumes (project_app_uid), which no
    # other uid may write to without capabilities.
    assert django["user"] == "10001:10001"
    assert "user" not in variant.compose("project2")["services"]["django"]  # stagectl's image has it


def test_prometheus_scrapes_only_apps_with_a_metrics_path(variant: Rendered) -> None:
    config = variant.shared_yaml("prometheus/config/prometheus.yml")
    django = next(job for job in config["scrape_configs"] if job["job_name"] == "django")
    groups = {g["labels"]["project"]: g for g in django["static_configs"]}
    # The variant's beryl3 and my-app declare no metrics path; project2 serves them on /prom.
    assert set(groups) == {"project2"}
    assert groups["project2"]["labels"]["__metrics_path__"] == "/prom"
    assert groups["project2"]["targets"] == ["project2-django:8000"]
    # An app server nobody scrapes stays off the network Prometheus shares with the project.
    assert variant.compose("beryl3")["services"]["django"]["networks"] == ["project"]
    assert variant.compose("project2")["services"]["django"]["networks"] == ["project", "metrics"]
    probes = next(job for job in config["scrape_configs"] if job["job_name"] == "blackbox-http")
    targets = [t for g in probes["static_configs"] for t in g["targets"]]
    assert "https://project2.staging.mdubiel.org/up" in targets

