"""The shared stack (role shared_monitoring), rendered the real way and checked with the upstream
tools where they are installed (promtool, amtool, nginx, docker compose), statically otherwise.

The environments are built and rendered once per session by tests/render/conftest.py, with
`stagectl.render.render_environment` (what `stagectl plan` renders and `deploy` writes): the
example, a variant exercising the optional paths, and one without projects.
"""

from __future__ import annotations

import configparser
import json
import re
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from stagectl import collection
from stagectl.errors import ToolMissing
from stagectl.validators import compose, nginx, prometheus, static
from stagectl.validators.base import Finding, errors
from tests.conftest import missing_tool
from tests.render.conftest import CONTRACT_KINDS, RenderedEnv

ROLE = collection.collection_root() / "roles" / "shared_monitoring"
SHARED = "/opt/shared"
SERVICES = {  # compose service -> key in stagectl.shared
    "prometheus": "prometheus", "alertmanager": "alertmanager", "grafana": "grafana", "loki": "loki",
    "node-exporter": "node_exporter", "cadvisor": "cadvisor", "alloy": "alloy",
    "blackbox-exporter": "blackbox_exporter", "nginx": "nginx", "docker-api": "docker_api",
}
NO_BINARY = "no package in Debian or PyPI and Go modules are not served on the test bed"
Rendered = RenderedEnv


def manifest(rendered: Rendered) -> list[dict[str, Any]]:
    """The role's manifest as evaluated for the host (what render_files recorded)."""
    return rendered.manifest("shared_monitoring")


@pytest.fixture(params=["example", "variant", "no_projects"])
def rendered(request: pytest.FixtureRequest) -> Rendered:
    return request.getfixturevalue(request.param)


def _require(findings_or_tool: Callable[[], list[Finding]]) -> list[Finding]:
    """Run a validator; skip the test cleanly when its tool is not installed."""
    try:
        return findings_or_tool()
    except ToolMissing as exc:
        missing_tool(f"{exc.tool} is not installed ({exc.hint}); scripts/testbed-setup.sh validators installs it")


def _messages(findings: list[Finding]) -> str:
    return "\n".join(f"{f.severity}: {f.file}: {f.message}" for f in findings)


# --- the manifest and the render itself ---------------------------------------------------------


def test_manifest_follows_the_contract(example: Rendered) -> None:
    entries = manifest(example)
    templates = {str(p.relative_to(ROLE / "templates")) for p in (ROLE / "templates").rglob("*.j2")}
    assert {e["src"] for e in entries} == templates, "every template is in the manifest, and only those"
    dests = [e["dest"] for e in entries]
    assert len(dests) == len(set(dests))
    for entry in entries:
        assert {"src", "dest", "mode", "kind"} <= set(entry), entry
        assert entry["kind"] in CONTRACT_KINDS, entry
        assert entry["dest"].startswith(f"{SHARED}/"), entry
        assert re.fullmatch(r"0[0-7]{3}", entry["mode"]), entry
        if "secrets/" in entry["dest"]:
            assert entry["mode"] == "0600" and entry["kind"] == "text" and "owner" in entry, entry
    # Written in terms of stagectl.paths.shared, never a literal path.
    static_entries = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["shared_monitoring_static_files"]
    for entry in static_entries:
        assert entry["dest"].startswith("{{ stagectl.paths.shared }}/"), entry
    kinds = {e["dest"].removeprefix(f"{SHARED}/"): e["kind"] for e in entries}
    assert kinds["docker-compose.yml"] == "compose"
    assert kinds["prometheus/config/prometheus.yml"] == "prometheus_config"
    assert {k for k, v in kinds.items() if v == "prometheus_rules"} == {
        f"prometheus/config/rules/{g}.yml" for g in ("meta", "database", "application", "system", "ssl", "backups")
    }


def test_every_manifest_file_is_rendered_with_its_mode(example: Rendered) -> None:
    rendered = {"/" + str(p.relative_to(example.root)) for p in example.tree()
                if p.is_relative_to(example.shared(""))}
    assert rendered == {e["dest"] for e in manifest(example)}
    for entry in manifest(example):
        mode = stat.S_IMODE(example.path(entry["dest"]).stat().st_mode)
        assert mode == int(entry["mode"], 8), entry["dest"]


def test_rendering_is_deterministic(example: Rendered, example_again: Rendered) -> None:
    assert manifest(example_again) == manifest(example)
    for path in example.files("shared_monitoring"):
        assert example_again.root.joinpath(path.relative_to(example.root)).read_bytes() == path.read_bytes(), path


def test_secrets_appear_only_in_0600_secret_files(rendered: Rendered) -> None:
    secrets = {
        "grafana admin": rendered.vault["vault_grafana_admin_password"],
        "grafana secret key": rendered.vault["vault_grafana_secret_key"],
        "prometheus": rendered.vault["vault_prometheus_password"],
    }
    holders: dict[str, set[str]] = {name: set() for name in secrets}
    for path in rendered.files("shared_monitoring"):
        text = path.read_text()
        for name, value in secrets.items():
            if value in text:
                holders[name].add(str(path.relative_to(rendered.shared(""))))
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
                assert text == value, f"{path}: a secret file holds the secret alone"
    assert holders == {
        "grafana admin": {"grafana/config/secrets/admin_password"},
        "grafana secret key": {"grafana/config/secrets/secret_key"},
        "prometheus": {"prometheus/config/secrets/prometheus_password", "grafana/config/secrets/prometheus_password"},
    }


def test_managed_header_and_no_timestamps(rendered: Rendered) -> None:
    for entry in manifest(rendered):
        path = rendered.path(entry["dest"])
        if "secrets" in path.parts:
            continue
        text = path.read_text()
        assert not re.search(r"20\d\d-\d\d-\d\dT\d\d:", text), path
        if entry["kind"] == "json":
            json.loads(text)  # JSON has no comments: the dashboards carry no header
            continue
        assert "Managed by stagectl" in text.split("\n", 3)[0] + text.split("\n", 3)[1], path


# --- docker-compose.yml ---------------------------------------------------------------------------


def test_compose_services_follow_the_model(rendered: Rendered) -> None:
    data = rendered.shared_yaml("docker-compose.yml")
    shared = rendered.stagectl["shared"]
    docker = rendered.stagectl["docker"]
    expected = set(SERVICES) | ({"nginx-edge-exporter"} if "nginx_exporter" in shared else set())
    assert set(data["services"]) == expected
    metrics_networks = [project["metrics_network"] for project in rendered.stagectl["projects"]]
    assert data["networks"] == {
        "projects": {"name": "projects", "external": True},
        "shared": {"name": "shared", "external": True},
        **{network: {"name": network, "external": True} for network in metrics_networks},
        "docker-api": {"name": "docker_api", "internal": True},
    }
    for name, service in data["services"].items():
        key = SERVICES.get(name, "nginx_exporter")
        assert service["image"] == shared[key]["image"], name
        assert service["mem_limit"] == shared[key]["memory"], name
        assert service["restart"] == "unless-stopped", name
        assert service["logging"] == {
            "driver": "json-file",
            "options": {"max-size": docker["log_max_size"], "max-file": str(docker["log_max_file"])},
        }, name
        assert service["labels"] == {"org.stagectl.project": "shared", "org.stagectl.service": name}
        assert "healthcheck" in service, name
        assert "network_mode" not in service and not service.get("privileged"), name
        ports = service.get("ports", [])
        # Of this stack, only Prometheus is on the projects' metrics networks.
        assert service["networks"] == {"nginx": ["projects", "shared"], "prometheus": ["shared", *metrics_networks],
                                       "blackbox-exporter": ["shared", "projects"],
                                       "alloy": ["shared", "docker-api"], "cadvisor": ["shared", "docker-api"],
                                       "docker-api": ["docker-api"]}.get(name, ["shared"]), name
        if name == "nginx":
            assert ports == ["80:80", "443:443"]
        elif shared[key]["published"]:
            port = shared[key]["port"]
            assert ports == [f"127.0.0.1:{port}:{port}"], name
        else:
            assert ports == [], name
    assert compose.check_policy(rendered.shared("docker-compose.yml")) == []


def test_compose_default_values(example: Rendered) -> None:
    services = example.shared_yaml("docker-compose.yml")["services"]
    published = {name: s["ports"] for name, s in services.items() if name != "nginx" and s.get("ports")}
    assert published == {
        "grafana": ["127.0.0.1:3000:3000"], "prometheus": ["127.0.0.1:9090:9090"],
        "loki": ["127.0.0.1:3100:3100"], "alertmanager": ["127.0.0.1:9093:9093"],
    }
    args = services["prometheus"]["command"]
    assert "--storage.tsdb.retention.time=30d" in args
    assert "--web.config.file=/etc/prometheus/web.yml" in args
    assert "--web.enable-lifecycle" in args
    assert "--web.external-url=https://prometheus.staging.mdubiel.org/" in args
    assert "/opt/shared/prometheus/data:/prometheus" in services["prometheus"]["volumes"]
    assert "/opt/shared/grafana/data:/var/lib/grafana" in services["grafana"]["volumes"]
    assert "/opt/shared/loki/data:/loki" in services["loki"]["volumes"]


def test_compose_hardening_choices(example: Rendered) -> None:
    services = example.shared_yaml("docker-compose.yml")["services"]
    node = services["node-exporter"]
    assert node["pid"] == "host" and "--path.rootfs=/host" in node["command"]
    assert "/:/host:ro,rslave" in node["volumes"]
    cadvisor = services["cadvisor"]
    assert cadvisor["devices"] == ["/dev/kmsg"] and not cadvisor.get("privileged")
    assert all(v.endswith(":ro") for v in cadvisor["volumes"])
    alloy = services["alloy"]["volumes"]
    assert "/var/log/journal:/var/log/journal:ro" in alloy
    # Only docker-api holds the Docker socket; cAdvisor, which runs as root with the host's root
    # mounted, has the host's /run (every socket of the engine and systemd) hidden by a tmpfs.
    with_socket = {name for name, service in services.items()
                   if any("docker.sock" in v or v.split(":")[0] in ("/run", "/var/run") for v in service.get("volumes", []))}
    assert with_socket == {"docker-api"}
    assert "/:/rootfs:ro" in cadvisor["volumes"] and cadvisor["tmpfs"] == ["/rootfs/run:size=1m,mode=0755"]
    assert "--docker=tcp://docker-api:2375" in cadvisor["command"]
    proxy = services["docker-api"]
    assert proxy["cap_drop"] == ["ALL"] and proxy["cap_add"] == ["SETGID"] and proxy["read_only"] is True
    assert example.shared_text("alloy/config/config.alloy").count('host             = "tcp://docker-api:2375"') == 2
    assert services["grafana"]["environment"] == {
        "GF_SECURITY_ADMIN_PASSWORD__FILE": "/etc/grafana/secrets/admin_password",
        "GF_SECURITY_SECRET_KEY__FILE": "/etc/grafana/secrets/secret_key",
    }
    # Configuration is mounted read-only, as whole directories (a file mount would pin the inode).
    for name, service in services.items():
        for volume in service.get("volumes", []):
            if "/config:" in volume:
                assert volume.endswith(":ro") and volume.split(":")[0].endswith("/config"), (name, volume)


def test_services_that_need_no_privilege_get_none(rendered: Rendered) -> None:
    services = rendered.shared_yaml("docker-compose.yml")["services"]
    for name in ("prometheus", "alertmanager", "node-exporter", "blackbox-exporter", "nginx-edge-exporter"):
        service = services[name]
        assert service["cap_drop"] == ["ALL"] and service["read_only"] is True, name
        assert 0 < service["pids_limit"] <= 1024, name
        assert "no-new-privileges:true" in service["security_opt"], name


def test_compose_nginx_mounts_nothing_of_a_project(rendered: Rendered) -> None:
    """A project added or removed must not change the main nginx's container (Compose would
    recreate it, dropping every project's connections): its challenges go to the project's nginx."""
    volumes = rendered.shared_yaml("docker-compose.yml")["services"]["nginx"]["volumes"]
    assert "/etc/letsencrypt:/etc/letsencrypt:ro" in volumes
    assert f"{SHARED}/nginx/config:/etc/nginx/stagectl:ro" in volumes
    project_roots = [project["dirs"]["root"] for project in rendered.stagectl["projects"]]
    assert not [volume for volume in volumes if volume.startswith(tuple(project_roots))], volumes


def test_every_healthcheck_probes_often_while_its_container_starts(rendered: Rendered) -> None:
    """A deploy waits for started containers to be healthy: with the first probe a whole interval
    (up to 30s) after the start, each new container cost that much."""
    stacks = {"shared": rendered.shared_yaml("docker-compose.yml")}
    stacks |= {p["name"]: rendered.compose(p["name"]) for p in rendered.stagectl["projects"]}
    for stack, compose_file in stacks.items():
        for name, service in compose_file["services"].items():
            healthcheck = service.get("healthcheck")
            assert healthcheck, (stack, name)
            assert healthcheck.get("start_interval") == "2s" and healthcheck.get("start_period"), (stack, name)


def test_compose_images_and_rotation_come_from_the_environment(variant: Rendered) -> None:
    services = variant.shared_yaml("docker-compose.yml")["services"]
    assert services["prometheus"]["image"] == "registry.example.invalid/prometheus:v3.5.0-custom"
    assert "--storage.tsdb.retention.time=45d" in services["prometheus"]["command"]
    assert services["loki"]["logging"]["options"] == {"max-size": "20m", "max-file": "3"}
    # email through a relay on the server itself: reachable from the container as the host
    assert services["alertmanager"]["extra_hosts"] == ["host.docker.internal:host-gateway"]
    # A healthcheck, not a disabled one: `docker compose up --wait` (the deploy) rejects those.
    healthcheck = services["nginx-edge-exporter"].get("healthcheck")
    assert healthcheck and not healthcheck.get("disable"), services["nginx-edge-exporter"]


def test_compose_paths_the_configs_name_exist_in_the_containers(rendered: Rendered) -> None:
    """Container paths written in one file (healthchecks, secrets, rule files) resolve through
    the compose mounts to files of the render."""
    services = rendered.shared_yaml("docker-compose.yml")["services"]

    def resolve(service: str, container_path: str) -> Path:
        mounts = [volume.split(":")[:2] for volume in services[service]["volumes"]]
        matching = [(source, target) for source, target in mounts
                    if container_path == target or container_path.startswith(target + "/")]
        assert matching, f"{container_path} is not mounted into {service}"
        source, target = max(matching, key=lambda mount: len(mount[1]))  # the innermost mount wins
        return rendered.path(source + container_path[len(target):])

    for arg in services["prometheus"]["command"]:
        if arg.startswith(("--config.file=", "--web.config.file=")):
            assert resolve("prometheus", arg.split("=", 1)[1]).is_file(), arg
    health = [a for a in services["prometheus"]["healthcheck"]["test"] if a.startswith("--http.config.file=")]
    http_config = resolve("prometheus", health[0].split("=", 1)[1])
    assert resolve("prometheus", yaml.safe_load(http_config.read_text())["basic_auth"]["password_file"]).is_file()
    for variable, container_path in services["grafana"]["environment"].items():
        if variable.endswith("__FILE"):
            assert resolve("grafana", container_path).is_file(), variable
    assert resolve("grafana", "/etc/grafana/grafana.ini").is_file()
    providers = rendered.shared_yaml("grafana/config/provisioning/dashboards/stagectl.yml")["providers"]
    for provider in providers:
        assert list(resolve("grafana", provider["options"]["path"]).glob("*.json")), provider["name"]
    datasources = rendered.shared_text("grafana/config/provisioning/datasources/stagectl.yml")
    for match in re.findall(r"\$__file\{([^}]+)\}", datasources):
        assert resolve("grafana", match).is_file(), match
    assert resolve("loki", "/etc/loki/loki.yml").is_file()
    assert resolve("alloy", "/etc/alloy/config.alloy").is_file()
    assert resolve("alertmanager", "/etc/alertmanager/alertmanager.yml").is_file()
    assert resolve("blackbox-exporter", "/etc/blackbox_exporter/blackbox.yml").is_file()
    assert resolve("nginx", "/etc/nginx/stagectl/nginx.conf").is_file()


@pytest.mark.validators
def test_compose_config_accepts_the_stack(rendered: Rendered) -> None:
    findings = _require(lambda: compose.check(rendered.shared("docker-compose.yml")))
    assert errors(findings) == [], _messages(findings)


def test_compose_policy_rejects_a_port_past_the_firewall(example: Rendered, tmp_path: Path) -> None:
    data = example.shared_yaml("docker-compose.yml")
    data["services"]["grafana"]["ports"] = ["3000:3000"]
    del data["services"]["loki"]["healthcheck"]
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(data))
    messages = [f.message for f in compose.check_policy(broken)]
    assert any("grafana: publishes port 3000 on every address" in m for m in messages), messages
    assert any("loki: no healthcheck" in m for m in messages), messages


# --- Prometheus ----------------------------------------------------------------------------------


def _targets(config: dict[str, Any], job: str) -> list[tuple[str, dict[str, str]]]:
    [scrape] = [s for s in config["scrape_configs"] if s["job_name"] == job]
    return [(t, group.get("labels", {})) for group in scrape["static_configs"] for t in group["targets"]]


def test_prometheus_scrapes_every_project_exporter_with_labels(rendered: Rendered) -> None:
    config = rendered.shared_yaml("prometheus/config/prometheus.yml")
    assert config["global"]["external_labels"] == {"environment": rendered.stagectl["environment_name"]}
    assert config["rule_files"] == ["rules/*.yml"]
    jobs = [s["job_name"] for s in config["scrape_configs"]]
    assert len(jobs) == len(set(jobs))
    for job in ("prometheus", "alertmanager", "node-exporter", "cadvisor", "grafana", "loki", "alloy",
                "blackbox-exporter", "blackbox-http", "blackbox-tls"):
        assert job in jobs
    for scrape in config["scrape_configs"]:
        for group in scrape["static_configs"]:
            assert {"project", "service"} <= set(group.get("labels", {})), scrape["job_name"]
    projects = rendered.stagectl["projects"]
    for job, suffix, service in (("postgres-exporter", "postgres-exporter:9187", "postgres"),
                                 ("redis-exporter", "redis-exporter:9121", "redis"),
                                 ("nginx-exporter", "nginx-exporter:9113", "nginx"),
                                 ("django", "django:8000", "django")):
        # Django's own metrics only for the apps that have them (app.metrics_path).
        scraped = [p for p in projects if job != "django" or p["app"]["metrics_path"]]
        if not scraped:
            assert job not in jobs
            continue
        assert _targets(config, job) == [
            (f"{p['name']}-{suffix}",
             {"project": p["name"], "service": service,
              **({"__metrics_path__": p["app"]["metrics_path"]}
                 if job == "django" and p["app"]["metrics_path"] != "/metrics" else {})})
            for p in scraped
        ]
    probes = [t for t, _ in _targets(config, "blackbox-http")]
    assert probes == [f"https://{p['domain']}{p['app']['health_path']}" for p in projects] + [
        f"https://{rendered.stagectl['monitoring_domains']['grafana']}/api/health"
    ]
    [self_scrape] = [s for s in config["scrape_configs"] if s["job_name"] == "prometheus"]
    assert self_scrape["basic_auth"] == {"username": "admin", "password_file": "secrets/prometheus_password"}


def test_prometheus_config_has_no_prometheus3_only_keys(rendered: Rendered) -> None:
    text = rendered.shared_text("prometheus/config/prometheus.yml")
    for key in ("scrape_protocols", "fallback_scrape_protocol", "metric_name_validation_scheme",
                "always_scrape_classic_histograms", "convert_classic_histograms_to_nhcb",
                "scrape_config_files", "otlp", "runtime"):
        assert f"{key}:" not in text


def test_blackbox_modules_used_by_prometheus_exist(rendered: Rendered) -> None:
    modules = rendered.shared_yaml("blackbox/config/blackbox.yml")["modules"]
    config = rendered.shared_yaml("prometheus/config/prometheus.yml")
    used = {m for s in config["scrape_configs"] for m in (s.get("params") or {}).get("module", [])}
    assert used and used <= set(modules)
    skip = rendered.stagectl["certificates"]["provider"] == "selfsigned"
    assert {m["prober"]: m[m["prober"]]["tls_config"]["insecure_skip_verify"] for m in modules.values()} == {
        "http": skip, "tcp": skip,
    }
    assert static.check_blackbox(rendered.shared("blackbox/config/blackbox.yml")) == []


def _rules(rendered: Rendered) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(rendered.shared("prometheus/config/rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            groups[group["name"]] = group["rules"]
    return groups


def test_rule_catalogue_covers_every_group(example: Rendered) -> None:
    groups = _rules(example)
    assert set(groups) == {"meta", "database", "application", "system", "ssl", "backups"}
    names = {group: {r["alert"] for r in rules} for group, rules in groups.items()}
    assert {"Watchdog"} <= names["meta"]
    assert {"PostgresDown", "PostgresTooManyConnections", "PostgresLongRunningQuery",
            "PostgresDatabaseDiskUsageHigh", "RedisDown"} <= names["database"]
    assert {"DjangoDown", "DjangoHighErrorRate", "DjangoHighLatency", "QueueBacklogHigh"} <= names["application"]
    assert {"HostHighCpuUsage", "HostMemoryLow", "HostDiskSpaceLow", "EndpointDown"} <= names["system"]
    assert {"SslCertificateExpiringSoon"} <= names["ssl"]
    for rules in groups.values():
        for rule in rules:
            assert {"alert", "expr", "for", "labels", "annotations"} <= set(rule), rule
            assert rule["labels"]["severity"] in {"critical", "warning", "none"}, rule
            summary = rule["annotations"]["summary"]
            if rule["alert"] == "Watchdog":
                assert summary.startswith("[shared]")
            else:
                assert summary.startswith("[{{ $labels.project }}]"), rule["alert"]


@pytest.mark.validators
def test_promtool_accepts_config_and_rules(rendered: Rendered) -> None:
    config = rendered.shared("prometheus/config/prometheus.yml")
    findings = _require(lambda: prometheus.check_config(config))
    assert findings == [], _messages(findings)
    for rules in sorted(rendered.shared("prometheus/config/rules").glob("*.yml")):
        assert prometheus.check_rules(rules) == [], rules
    web = rendered.shared("prometheus/config/web.yml")
    assert prometheus.check_web_config(web) == []
    assert yaml.safe_load(web.read_text()) == {
        "basic_auth_users": {"admin": rendered.vault["vault_prometheus_password_bcrypt"]},
    }


@pytest.mark.validators
def test_promtool_rejects_a_broken_rule_with_its_own_message(example: Rendered, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    text = example.shared_text("prometheus/config/rules/database.yml")
    broken.write_text(text.replace("expr: pg_up == 0", "expr: sum(rate(pg_up[5m])", 1))
    findings = _require(lambda: prometheus.check_rules(broken))
    assert len(findings) == 1 and findings[0].tool == "promtool"
    assert "FAILED" in findings[0].message and "parse error" in findings[0].message, findings[0].message


# --- Alertmanager --------------------------------------------------------------------------------


def test_alertmanager_routes_and_inhibitions(rendered: Rendered) -> None:
    config = rendered.shared_yaml("alertmanager/config/alertmanager.yml")
    route = config["route"]
    assert route["receiver"] == "default" and "project" in route["group_by"]
    assert route["routes"][0] == {"receiver": "null", "matchers": ['alertname = "Watchdog"']}
    assert {tuple(r["matchers"]) for r in route["routes"][1:]} == {
        ('alertname = "StagectlTestAlert"',), ('severity = "critical"',), ('severity = "warning"',),
    }
    # `stagectl alert test` waits for the notification: its route has no group wait.
    test_route = next(r for r in route["routes"] if r["matchers"] == ['alertname = "StagectlTestAlert"'])
    assert test_route["group_wait"] == "0s" and test_route["receiver"] == "default"
    sources = {m for rule in config["inhibit_rules"] for m in rule["source_matchers"]}
    assert 'alertname = "DjangoDown"' in sources and 'severity = "critical"' in sources
    receivers = {r["name"]: r for r in config["receivers"]}
    assert set(receivers) == {"null", "default"}
    alerting = rendered.stagectl["alerting"]
    password_file = rendered.shared("alertmanager/config/secrets/smtp_password")
    if alerting["email_to"]:
        # The variant: a relay on the server itself (port 587), with a login and a private CA.
        assert receivers["default"]["email_configs"] == [{
            "to": alerting["email_to"], "send_resolved": True,
            "tls_config": {"ca_file": "/etc/ssl/stagectl/smtp-ca.pem"},
        }]
        assert config["global"]["smtp_smarthost"] == "host.docker.internal:587"
        assert config["global"]["smtp_require_tls"] is True
        assert config["global"]["smtp_from"] == f"alertmanager@{rendered.stagectl['server_domain']}"
        assert config["global"]["smtp_auth_username"] == alerting["smtp_username"]
        # The password only in its own file, readable by Alertmanager's user alone.
        assert config["global"]["smtp_auth_password_file"] == "/etc/alertmanager/secrets/smtp_password"
        assert password_file.read_text() == rendered.vault["vault_alerting_smtp_password"]
        assert rendered.vault["vault_alerting_smtp_password"] not in rendered.shared(
            "alertmanager/config/alertmanager.yml").read_text()
        compose = rendered.shared_yaml("docker-compose.yml")
        assert f"{alerting['smtp_ca_file']}:/etc/ssl/stagectl/smtp-ca.pem:ro" in compose["services"]["alertmanager"]["volumes"]
    else:
        assert password_file.read_text() == ""
        assert "email_configs" not in receivers["default"] and "global" not in config
    assert [w["url"] for w in receivers["default"].get("webhook_configs", [])] == alerting["webhook_urls"]


@pytest.mark.validators
def test_amtool_accepts_the_configuration(rendered: Rendered) -> None:
    findings = _require(lambda: prometheus.check_alertmanager(rendered.shared("alertmanager/config/alertmanager.yml")))
    assert findings == [], _messages(findings)


# --- Grafana, Loki, Alloy (no binary here: static checks) ---------------------------------------


def test_grafana_ini(rendered: Rendered) -> None:
    path = rendered.shared("grafana/config/grafana.ini")
    domain = rendered.stagectl["monitoring_domains"]["grafana"]
    assert static.check_grafana_ini(path, domain=domain) == []
    ini = configparser.RawConfigParser(comment_prefixes=("#", ";"), interpolation=None)
    ini.read_string(path.read_text())
    assert ini.get("server", "root_url") == f"https://{domain}/"
    assert ini.get("paths", "data") == "/var/lib/grafana"
    assert ini.get("auth.anonymous", "enabled") == "false"
    assert rendered.vault["vault_grafana_admin_password"] not in path.read_text()


def test_grafana_provisioning(rendered: Rendered) -> None:
    datasources_path = rendered.shared("grafana/config/provisioning/datasources/stagectl.yml")
    providers_path = rendered.shared("grafana/config/provisioning/dashboards/stagectl.yml")
    for path in (datasources_path, providers_path):
        assert static.check_grafana_provisioning(path) == [], path
    sources = {d["uid"]: d for d in yaml.safe_load(datasources_path.read_text())["datasources"]}
    assert set(sources) == {"prometheus", "loki", "alertmanager"}
    assert sources["prometheus"]["basicAuth"] is True and sources["prometheus"]["basicAuthUser"] == "admin"
    assert sources["prometheus"]["secureJsonData"]["basicAuthPassword"].startswith("$__file{")
    assert sources["loki"]["url"] == "http://loki:3100"
    providers = yaml.safe_load(providers_path.read_text())["providers"]
    folders = ["Shared", *rendered.stagectl["project_names"]]
    assert [p["name"] for p in providers] == folders
    assert [p["options"]["path"] for p in providers] == [f"/var/lib/grafana/dashboards/{f}" for f in folders]
    assert providers[0]["folder"] == "Shared"
    # One directory of rendered dashboards per provider, and no dashboard outside them.
    dashboards = [e["dest"] for e in manifest(rendered) if e["src"] == "grafana/dashboard.json.j2"]
    assert {Path(d).parent.name for d in dashboards} == set(folders)
    assert {str(Path(d).parent.parent) for d in dashboards} == {f"{SHARED}/grafana/dashboards"}


def test_loki_static(rendered: Rendered) -> None:
    path = rendered.shared("loki/config/loki.yml")
    retention = rendered.stagectl["shared"]["loki"]["retention"]
    assert static.check_loki(path, retention=retention) == []
    config = yaml.safe_load(path.read_text())
    assert config["limits_config"]["retention_period"] == retention
    assert config["compactor"]["delete_request_store"] == "filesystem"
    assert config["ingester"]["chunk_encoding"] == "snappy"
    assert config["server"]["http_listen_port"] == rendered.stagectl["shared"]["loki"]["port"]


def test_loki_default_retention(example: Rendered) -> None:
    assert example.shared_yaml("loki/config/loki.yml")["limits_config"]["retention_period"] == "14d"


def test_loki_static_check_catches_a_wrong_retention(example: Rendered) -> None:
    findings = static.check_loki(example.shared("loki/config/loki.yml"), retention="30d")
    assert [f.message for f in findings] == ["limits_config.retention_period is 14d, the environment says 30d"]


@pytest.mark.validators
def test_loki_verify_config_with_the_real_binary(example: Rendered) -> None:
    loki = shutil.which("loki")
    if loki is None:
        pytest.skip(f"the loki binary is not obtainable here ({NO_BINARY}); the file is checked by "
                    "test_loki_static instead")
    proc = subprocess.run([loki, f"-config.file={example.shared('loki/config/loki.yml')}", "-verify-config"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_alloy_static(rendered: Rendered) -> None:
    path = rendered.shared("alloy/config/config.alloy")
    assert static.check_alloy(path) == []
    text = path.read_text()
    for needed in ('discovery.docker "containers"', 'loki.source.docker "containers"',
                   'loki.source.journal "host"', "stage.json", 'level   = "level"', 'logger  = "logger"',
                   'message = "message"', '"__meta_docker_container_label_org_stagectl_project"',
                   '"__meta_docker_container_label_com_docker_compose_project"',
                   'url = "http://loki:3100/loki/api/v1/push"'):
        assert needed in text, needed


def test_alloy_static_check_catches_broken_configs(example: Rendered, tmp_path: Path) -> None:
    text = example.shared_text("alloy/config/config.alloy")
    cases = {
        "undefined": (text.replace("loki.write.default.receiver]", "loki.write.missing.receiver]", 1),
                      "loki.write.missing.receiver refers to a component that is not defined"),
        "brace": (text.replace('loki.write "default" {', 'loki.write "default" {{', 1), "is never closed"),
        "string": (text + '\nlogging { level = "info }\n', "unterminated string"),
    }
    for name, (broken, expected) in cases.items():
        path = tmp_path / f"{name}.alloy"
        path.write_text(broken)
        messages = [f.message for f in static.check_alloy(path)]
        assert any(expected in m for m in messages), (name, messages)


@pytest.mark.validators
def test_alloy_fmt_with_the_real_binary(example: Rendered) -> None:
    alloy = shutil.which("alloy")
    if alloy is None:
        pytest.skip(f"the alloy binary is not obtainable here ({NO_BINARY}); the file is checked by "
                    "test_alloy_static instead")
    proc = subprocess.run([alloy, "fmt", str(example.shared("alloy/config/config.alloy"))],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.validators
def test_grafana_with_the_real_binary() -> None:
    if shutil.which("grafana") is None:
        pytest.skip(f"grafana is not obtainable here ({NO_BINARY}); grafana.ini and provisioning are "
                    "checked by test_grafana_ini and test_grafana_provisioning instead")


# --- the main nginx --------------------------------------------------------------------------------


def test_nginx_routes_every_project_and_monitoring_domain(rendered: Rendered) -> None:
    projects_conf = rendered.shared_text("nginx/config/conf.d/projects.conf")
    for project in rendered.stagectl["projects"]:
        domain = project["domain"]
        assert projects_conf.count(f"server_name {domain};") == 2
        assert (f"location ^~ /.well-known/acme-challenge/ {{\n"
                f"        set $stagectl_upstream http://{project['containers']['nginx']}:80;") in projects_conf
        assert f"ssl_certificate /etc/letsencrypt/live/{domain}/fullchain.pem;" in projects_conf
        assert f"ssl_certificate_key /etc/letsencrypt/live/{domain}/privkey.pem;" in projects_conf
        assert f"set $stagectl_upstream http://{project['containers']['nginx']}:80;" in projects_conf
    assert "proxy_pass http://" not in projects_conf, "upstreams are variables (resolved at request time)"
    domains = rendered.stagectl["monitoring_domains"]
    monitoring_conf = rendered.shared_text("nginx/config/conf.d/monitoring.conf")
    assert "set $stagectl_upstream http://grafana:3000;" in monitoring_conf
    assert "set $stagectl_upstream http://prometheus:9090;" in monitoring_conf
    assert f"return 301 https://{domains['grafana']}$request_uri;" in monitoring_conf
    assert "location ~ ^/-/(reload|quit)$ {\n        return 403;" in monitoring_conf
    lineage_of = rendered.stagectl["certificates"]["lineage_of"]
    for domain in domains.values():
        assert f"ssl_certificate /etc/letsencrypt/live/{lineage_of[domain]}/fullchain.pem;" in monitoring_conf
    main = rendered.shared_text("nginx/config/nginx.conf")
    assert "server_tokens off;" in main and "resolver 127.0.0.11 valid=10s" in main
    assert "include /etc/nginx/stagectl/conf.d/*.conf;" in main
    default_conf = rendered.shared_text("nginx/config/conf.d/default.conf")
    assert "return 444;" in default_conf and "stub_status;" in default_conf


def test_every_answer_of_the_main_nginx_gets_the_security_headers(rendered: Rendered) -> None:
    """The headers are set once, in the http block, and inherited by every server and location:
    one add_header anywhere below would silently drop all of them there."""
    main = rendered.shared_text("nginx/config/nginx.conf")
    for header, value in (("Strict-Transport-Security", "$stagectl_hsts"),
                          ("X-Content-Type-Options", "$stagectl_content_type_options"),
                          ("X-Frame-Options", "$stagectl_frame_options"),
                          ("Referrer-Policy", "$stagectl_referrer_policy")):
        assert f"    add_header {header} {value} always;" in main, header
    assert '"on:"   "max-age=31536000";' in main, "HSTS on HTTPS answers only"
    for conf in ("default.conf", "monitoring.conf", "projects.conf"):
        assert "add_header" not in rendered.shared_text(f"nginx/config/conf.d/{conf}"), conf


def test_every_https_server_limits_requests_per_address(rendered: Rendered) -> None:
    main = rendered.shared_text("nginx/config/nginx.conf")
    limit = rendered.stagectl["security"]["http_rate_limit"]
    assert (f"limit_req_zone $stagectl_rate_limit_key zone=stagectl_per_address:10m rate={limit['rate']}r/s;"
            in main)
    assert "limit_req_status 429;" in main
    for conf in ("monitoring.conf", "projects.conf"):
        text = rendered.shared_text(f"nginx/config/conf.d/{conf}")
        assert text.count(f"limit_req zone=stagectl_per_address burst={limit['burst']} nodelay;") == (
            text.count("listen 443 ssl;")), conf
        # Port 80 serves ACME challenges and redirects: never limited (Let's Encrypt validates
        # from several addresses at once).
        for server in text.split("server {")[1:]:
            if "listen 80;" in server:
                assert "limit_req" not in server


@pytest.mark.validators
def test_nginx_t_accepts_the_configuration(rendered: Rendered) -> None:
    found = nginx.tree_for(rendered.root, f"{SHARED}/nginx/config/nginx.conf")
    assert found is not None
    tree, container_path = found
    assert tree.main == container_path == "/etc/nginx/stagectl/nginx.conf"
    findings = _require(lambda: nginx.check_tree(tree))
    assert errors(findings) == [], _messages(findings)
    assert [f for f in findings if f.severity == "warning"] == [], _messages(findings)


@pytest.mark.validators
def test_nginx_check_file_adapter_passes_each_file(example: Rendered) -> None:
    entries = {e["dest"]: e for e in manifest(example)}
    files = [f for f in example.rendered("shared_monitoring") if f.kind == "nginx_main"]
    assert len(files) == 5  # the main nginx's four and docker-api's nginx.conf
    for file in files:
        assert nginx.tree_for(example.root, file.dest)[1] == entries[file.dest]["container_path"]  # type: ignore[index]
        checks = nginx.check_file(file)
        if checks and "not installed" in checks[0].message:
            missing_tool(checks[0].message)
        assert [c.status for c in checks] == ["passed"], checks


@pytest.mark.validators
def test_nginx_t_rejects_a_broken_directive(example: Rendered, tmp_path: Path) -> None:
    copy = tmp_path / "root"
    shutil.copytree(example.root, copy)
    conf = copy / "opt/shared/nginx/config/conf.d/projects.conf"
    conf.write_text(conf.read_text().replace("listen 80;", "listen 80;\n    proxy_buffering maybe;", 1))
    tree, _ = nginx.tree_for(copy, f"{SHARED}/nginx/config/conf.d/projects.conf")  # type: ignore[misc]
    findings = errors(_require(lambda: nginx.check_tree(tree)))
    assert len(findings) == 1, _messages(findings)
    assert findings[0].file == "/etc/nginx/stagectl/conf.d/projects.conf"
    assert 'invalid value "maybe"' in findings[0].message and "test failed" in findings[0].message


def test_one_wildcard_certificate_serves_the_names_under_the_servers_domain(no_projects: RenderedEnv) -> None:
    """certificates.wildcard: every monitoring name is one label under server_domain, so nginx
    reads the wildcard's lineage for all of them, and the certificate carries only the wildcard."""
    certificates = no_projects.stagectl["certificates"]
    domain = no_projects.stagectl["server_domain"]
    lineage = f"wildcard.{domain}"
    assert certificates["lineages"] == {lineage: [f"*.{domain}"]}
    monitoring_conf = no_projects.shared_text("nginx/config/conf.d/monitoring.conf")
    assert monitoring_conf.count(f"ssl_certificate /etc/letsencrypt/live/{lineage}/fullchain.pem;") == 3
    assert monitoring_conf.count("ssl_certificate /etc/letsencrypt/live/") == 3
