"""The validators' own logic: parsing, policy and static checks, and their behaviour when a tool
is missing. The upstream tools on real rendered files are exercised in tests/render/."""

from __future__ import annotations

from pathlib import Path

import pytest

from stagectl.errors import ToolMissing
from stagectl.render import RenderedFile
from stagectl.validators import base, compose, nginx, prometheus, static
from tests.conftest import missing_tool


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _file(path: Path, kind: str) -> RenderedFile:
    return RenderedFile("h", f"/srv/{path.name}", path, kind, "0644", "test")


# --- tools ---------------------------------------------------------------------------------------


def test_missing_tool_raises_with_the_debian_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(base, "find_tool", lambda tool: None)
    with pytest.raises(ToolMissing) as info:
        prometheus.check_rules(_write(tmp_path, "r.yml", "groups: []\n"))
    assert (info.value.tool, info.value.package) == ("promtool", "prometheus")


def test_missing_tool_is_a_failed_check_for_plan(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(base, "find_tool", lambda tool: None)
    [check] = prometheus.check_alertmanager_file(_file(_write(tmp_path, "am.yml", "route: {}\n"), "alertmanager"))
    assert check.status == "failed"
    assert check.message == "amtool is not installed: install it with: apt-get install prometheus-alertmanager"
    checks = compose.check_file(_file(_write(tmp_path, "docker-compose.yml", "services: {}\n"), "compose"))
    assert [c.status for c in checks] == ["passed", "failed"]  # policy ran; docker compose could not


def test_find_tool_looks_in_sbin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tool = tmp_path / "faketool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    monkeypatch.setattr(base, "_EXTRA_DIRS", (str(tmp_path),))
    monkeypatch.setenv("PATH", "/nonexistent")
    assert base.find_tool("faketool") == str(tool)


# --- compose policy ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("127.0.0.1:9090:9090", [("127.0.0.1", "9090")]),
        ("80:80", [("", "80")]),
        ("8080", [("", "random")]),
        ("[::1]:3000:3000/tcp", [("::1", "3000")]),
        ({"target": 80, "published": 8080, "host_ip": "0.0.0.0"}, [("0.0.0.0", "8080")]),
        ({"target": 80}, []),
    ],
)
def test_published_ports(spec: object, expected: list[tuple[str, str]]) -> None:
    assert compose._published_ports(spec) == expected


def test_policy_names_every_problem(tmp_path: Path) -> None:
    path = _write(tmp_path, "docker-compose.yml", """
services:
  ok:
    image: a:1
    restart: unless-stopped
    mem_limit: 64m
    logging: {driver: json-file, options: {max-size: 10m}}
    healthcheck: {test: ["CMD", "true"]}
    ports: ["127.0.0.1:5432:5432", "[::1]:6379:6379", "443:443"]
  bad:
    image: b:1
    network_mode: host
    privileged: true
    ports: ["5432:5432", "0.0.0.0:8000:8000"]
""")
    findings = compose.check_policy(path)
    messages = [f.message for f in findings]
    assert all(m.startswith("service bad: ") for m in messages), messages
    for fragment in ("no `restart", "no memory limit", "no log rotation", "no healthcheck",
                     "network_mode: host", "privileged", "port 5432", "port 8000"):
        assert any(fragment in m for m in messages), fragment
    assert [f.severity for f in findings if "privileged" in f.message] == ["warning"]


# --- nginx tokenizer and tree discovery ----------------------------------------------------------


def test_nginx_statements_handle_quotes_comments_and_variables() -> None:
    text = """
    # include /not/this.conf;
    log_format j escape=json '{"a":"$host"}';   # a { brace } in quotes
    location = /x { return 200 "ok;\\n"; }
    set $u "${scheme}://a";
    include /etc/nginx/conf.d/*.conf;
    """
    statements = [(s.name, [a.text for a in s.args]) for s in nginx._statements(text)]
    assert statements == [
        ("log_format", ["j", "escape=json", '{"a":"$host"}']),
        ("location", ["=", "/x"]),
        ("return", ["200", "ok;\\n"]),
        ("set", ["$u", "${scheme}://a"]),
        ("include", ["/etc/nginx/conf.d/*.conf"]),
    ]


def test_nginx_tree_from_compose_prefers_the_most_specific_mount(tmp_path: Path) -> None:
    root = tmp_path / "host"
    (root / "opt/web/conf").mkdir(parents=True)
    (root / "opt/web/conf/site.conf").write_text("server { listen 80; }\n")
    (root / "opt/web/docker-compose.yml").write_text("""
services:
  node:
    volumes: ["/:/host:ro"]
  web:
    command: nginx -g 'daemon off;'
    volumes: ["./conf:/etc/nginx/conf.d:ro", "/etc/letsencrypt:/etc/letsencrypt:ro"]
""")
    tree, container_path = nginx.tree_for(root, "/opt/web/conf/site.conf")  # type: ignore[misc]
    assert container_path == "/etc/nginx/conf.d/site.conf"
    assert tree.main == nginx.DEFAULT_MAIN
    assert tree.mounts == {"/etc/nginx/conf.d": root / "opt/web/conf"}  # /etc/letsencrypt is not rendered


@pytest.mark.validators
def test_nginx_check_of_a_snippet_with_certificates_and_a_bad_value(tmp_path: Path) -> None:
    snippet = _write(tmp_path, "site.conf", """
server {
    listen 443 ssl;
    server_name example.invalid;
    ssl_certificate /etc/letsencrypt/live/example.invalid/fullchain.pem;
    ssl_certificate_key /etc/letsencrypt/live/example.invalid/privkey.pem;
    root /srv/www;
    location / { set $up http://app:8000; proxy_pass $up; }
}
""")
    try:
        assert base.errors(nginx.check(snippet)) == []
    except ToolMissing as exc:
        missing_tool(str(exc))
    snippet.write_text(snippet.read_text().replace("root /srv/www;", "root /srv/www;\n    gzip perhaps;"))
    [finding] = base.errors(nginx.check(snippet))
    assert finding.file == "/etc/nginx/conf.d/site.conf"
    assert 'invalid value "perhaps"' in finding.message


# --- static checks -------------------------------------------------------------------------------


def test_yaml_and_json_errors_name_the_place(tmp_path: Path) -> None:
    [finding] = static.check_yaml(_write(tmp_path, "a.yml", "a: [1, 2\nb: 3\n"))
    assert finding.message.startswith("not valid YAML: line ")
    [finding] = static.check_json(_write(tmp_path, "a.json", '{"a": 1,}'))
    assert finding.message.startswith("not valid JSON: line 1, column 9")


def test_loki_requires_retention_and_the_tsdb_schema(tmp_path: Path) -> None:
    path = _write(tmp_path, "loki.yml", """
server: {http_listen_port: 3100}
common: {path_prefix: /loki, storage: {filesystem: {chunks_directory: /loki/chunks}}}
schema_config: {configs: [{from: "2024-01-01", store: boltdb-shipper, object_store: filesystem, schema: v12}]}
compactor: {working_directory: /loki/compactor}
limits_config: {retention_period: 14d}
""")
    messages = [f.message for f in static.check_loki(path, retention="14d")]
    assert any("tsdb" in m for m in messages)
    assert any("retention_enabled must be true" in m for m in messages)


def test_grafana_ini_refuses_a_written_password_and_anonymous_access(tmp_path: Path) -> None:
    path = _write(tmp_path, "grafana.ini", """
[server]
domain = grafana.example.invalid
root_url = https://other.example.invalid/
[security]
admin_user = admin
admin_password = hunter2hunter2hunter2
[users]
allow_sign_up = false
[auth.anonymous]
enabled = true
""")
    messages = [f.message for f in static.check_grafana_ini(path, domain="grafana.example.invalid")]
    assert len(messages) == 3, messages
    assert any("admin_password must not be written here" in m for m in messages)
    assert any("[auth.anonymous]" in m for m in messages)
    assert any("root_url" in m for m in messages)


def test_grafana_provisioning_needs_uids_and_unique_names(tmp_path: Path) -> None:
    sources = _write(tmp_path, "ds.yml", "apiVersion: 1\ndatasources:\n  - {name: A, type: prometheus}\n")
    assert [f.message for f in static.check_grafana_provisioning(sources)] == ["datasources[0] has no uid"]
    providers = _write(tmp_path, "p.yml", "apiVersion: 1\nproviders:\n"
                       "  - {name: a, options: {path: /x}}\n  - {name: a, options: {path: /y}}\n")
    assert [f.message for f in static.check_grafana_provisioning(providers)] == [
        "dashboard provider names must be unique"
    ]


def test_alloy_minimal_config(tmp_path: Path) -> None:
    good = _write(tmp_path, "ok.alloy", """
// comment with "quote and { brace
loki.write "default" {
  endpoint { url = "http://loki:3100/loki/api/v1/push" }
}
loki.source.file "f" {
  targets    = [{"__path__" = "/var/log/*.log"}]
  forward_to = [loki.write.default.receiver]
}
""")
    assert static.check_alloy(good) == []
    unlabelled = _write(tmp_path, "bad.alloy", "loki.write {\n}\n")
    assert [f.message for f in static.check_alloy(unlabelled)] == ["line 1: component loki.write needs a label"]


def test_small_formats(tmp_path: Path) -> None:
    unit = _write(tmp_path, "backup.service", "[Unit]\nDescription=x\n[Service]\nExecStart=/bin/true\nnot a setting\n")
    assert [f.message for f in static.check_systemd(unit)] == ["line 5: expected Key=Value"]
    timer = _write(tmp_path, "backup.timer", "[Unit]\nDescription=x\n")
    assert [f.message for f in static.check_systemd(timer)] == ["a .timer unit needs a [Timer] section"]
    dockerfile = _write(tmp_path, "Dockerfile", "ARG V=1\nFROM python:3.13\nRUN <<EOF\nnot an instruction\nEOF\nRUNN x\n")
    assert [f.message for f in static.check_dockerfile(dockerfile)] == ["line 6: unknown instruction RUNN"]
    env = _write(tmp_path, ".env", "# c\nA=1\nexport B=two words\n1X=3\nA=4\n")
    assert [f.message for f in static.check_env(env)] == [
        "line 4: expected NAME=value", "line 5: A is already set on line 2",
    ]


def test_static_check_file_dispatches_on_kind(tmp_path: Path) -> None:
    [check] = static.check_file(_file(_write(tmp_path, "x.json", "[]"), "json"))
    assert (check.tool, check.status) == ("static (json)", "passed")
    [check] = static.check_file(_file(_write(tmp_path, "x.txt", ""), "nonsense"))
    assert check.status == "failed"
