"""Strict at the door: every bad environment a user could plausibly write is refused by
`stagectl plan` before anything is rendered or touches a server.

Each case is `stagectl init` output with one edit, run through the real CLI. The refusal must:
exit 2; name the file and the field; say what to do; show no traceback and no vault secret; and
leave every file of the environment byte-identical (contents and mtimes), with nothing rendered.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from stagectl.cli import app
from stagectl.environment import ALL_VARS, INVENTORY, STAGING_VARS, VAULT, secret_values
from stagectl.scaffold import init_environment
from stagectl.vault import decrypt, read_password_file, write_vault

runner = CliRunner()

Edit = Callable[[Path, Path], None]  # (environment root, vault password file)

# Words a message uses when it says what to do.
ADVICE = re.compile(
    r"\b(write|use|give|run|remove|add|set|fix|restore|move|did you mean|pick|switch|make|merge|"
    r"flatten|save|known keys|take|encrypt|check)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Template:
    root: Path
    key: Path
    secrets: frozenset[str]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    base = tmp_path_factory.mktemp("template")
    root, key = base / "env", base / "keys" / "vault-pass"
    init_environment(root, key)
    data = decrypt(root / VAULT, read_password_file(key))
    return Template(root, key, frozenset(secret_values(data)))


# --- edits --------------------------------------------------------------------------------------


def replace(rel: str, old: str, new: str) -> Edit:
    def edit(root: Path, _key: Path) -> None:
        path = root / rel
        text = path.read_text()
        assert old in text, f"{old!r} not in {rel}"
        path.write_text(text.replace(old, new, 1))

    return edit


def append(rel: str, text: str) -> Edit:
    def edit(root: Path, _key: Path) -> None:
        with (root / rel).open("a") as handle:
            handle.write(text)

    return edit


def write_bytes(rel: str, make: Callable[[bytes], bytes]) -> Edit:
    def edit(root: Path, _key: Path) -> None:
        path = root / rel
        path.write_bytes(make(path.read_bytes()))

    return edit


def vault(change: Callable[[dict[str, Any]], None]) -> Edit:
    def edit(root: Path, key: Path) -> None:
        password = read_password_file(key)
        data = decrypt(root / VAULT, password)
        change(data)
        write_vault(root / VAULT, data, password)

    return edit


def vault_plaintext(text: str) -> Edit:
    """A vault whose decrypted text is `text` (for YAML the model never sees as a dict)."""

    def edit(root: Path, key: Path) -> None:
        from stagectl.vault import _vault_lib

        (root / VAULT).write_bytes(_vault_lib(read_password_file(key)).encrypt(text.encode()))

    return edit


def both(*edits: Edit) -> Edit:
    def edit(root: Path, key: Path) -> None:
        for one in edits:
            one(root, key)

    return edit


REMOTE = "remote_retention_days: 90\n  remote:\n    repository: "
SFTP_REPO = "sftp:backup@backup.example.org:/srv/restic/staging"


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = data
        for part in parents:
            node = node[part]
        node[last] = value

    return change


def _truncate(raw: bytes) -> bytes:
    lines = raw.splitlines(keepends=True)
    return b"".join(lines[: len(lines) // 2])


def _conflict(raw: bytes) -> bytes:
    lines = raw.splitlines(keepends=True)
    return b"".join([*lines[:4], b"<<<<<<< HEAD\n", *lines[4:8], b"=======\n", *lines[4:8],
                     b">>>>>>> feature\n", *lines[8:]])


BILLION_LAUGHS = """
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""

BERYL_REPO = "repo: https://example.invalid/beryl3.git"
BERYL_PORTS = "      ports:\n        postgres: 5432\n        django: 8000\n        redis: 6379\n"
HOST = "      ansible_host: 192.168.1.14\n"


@dataclass(frozen=True)
class Case:
    id: str
    edit: Edit
    file: str
    field: str  # on the same line as the file
    says: str  # what is wrong and what to do
    hidden: tuple[str, ...] = ()  # values that must not be printed (besides the vault's)


CASES = [
    # --- inventory/staging.yml -----------------------------------------------------------------
    Case("second-projects-key", replace(INVENTORY, "    projects:\n", "    projects: []\n    projects:\n"),
         INVENTORY, "line 11", "duplicate key 'projects' (first on line 10)"),
    Case("duplicate-key-with-ports-to-allocate",
         both(replace(INVENTORY, BERYL_PORTS, ""), replace(INVENTORY, "      ref: main\n", "      ref: main\n      ref: dev\n")),
         INVENTORY, "line", "duplicate key 'ref'"),
    Case("billion-laughs", append(INVENTORY, BILLION_LAUGHS), INVENTORY, "line", "expand to more than"),
    Case("conflict-markers-inventory", replace(INVENTORY, "    projects:\n", "<<<<<<< HEAD\n    projects:\n"),
         INVENTORY, "line", "is not valid YAML"),
    Case("tab-indentation", replace(INVENTORY, "      ref: main\n", "\tref: main\n"), INVENTORY, "line",
         "is not valid YAML"),
    Case("not-utf8", write_bytes(INVENTORY, lambda raw: raw.replace(b"main", b"m\xe4in", 1)), INVENTORY, "byte",
         "not UTF-8"),
    Case("git-url-with-token", replace(INVENTORY, BERYL_REPO, "repo: https://bob:ghp_T0kenT0ken@example.invalid/b.git"),
         INVENTORY, "projects[0] (name=beryl3).repo", "holds credentials", hidden=("ghp_T0kenT0ken",)),
    Case("git-url-with-token-as-user", replace(INVENTORY, BERYL_REPO, "repo: https://glpat-Secret99@example.invalid/b.git"),
         INVENTORY, "projects[0] (name=beryl3).repo", "deploy key", hidden=("glpat-Secret99",)),
    Case("relative-repo-path", replace(INVENTORY, BERYL_REPO, "repo: ../beryl3"), INVENTORY,
         "(name=beryl3).repo", "neither a git URL nor an absolute path"),
    Case("local-repo-missing", replace(INVENTORY, BERYL_REPO, "repo: /nonexistent/stagectl/beryl3"), INVENTORY,
         "(name=beryl3).repo", "no such directory exists on this machine"),
    Case("become-password-on-host", replace(INVENTORY, HOST, HOST + "      ansible_become_password: Hunter2Hunter2\n"),
         INVENTORY, "staging.hosts.staging-server", "ansible_become_password holds a password in plain text",
         hidden=("Hunter2Hunter2",)),
    Case("ssh-pass-on-host", replace(INVENTORY, HOST, HOST + "      ansible_ssh_pass: Hunter2Hunter2\n"),
         INVENTORY, "staging.hosts.staging-server", "move it into the vault", hidden=("Hunter2Hunter2",)),
    Case("become-pass-in-inventory-vars",
         replace(INVENTORY, "    server_domain:", "    ansible_become_pass: Hunter2Hunter2\n    server_domain:"),
         INVENTORY, "staging.vars.ansible_become_pass", "plain text", hidden=("Hunter2Hunter2",)),
    Case("bad-project-name", replace(INVENTORY, "name: project2", "name: Project_2"), INVENTORY,
         "(name=Project_2).name", "not a valid project name"),
    Case("reserved-project-name", replace(INVENTORY, "name: project2", "name: monitoring"), INVENTORY,
         "(name=monitoring).name", "reserved for the shared stack"),
    Case("uppercase-domain", replace(INVENTORY, "domain: beryl3.staging", "domain: Beryl3.staging"), INVENTORY,
         "(name=beryl3).domain", "not a valid domain name"),
    Case("numeric-tld", replace(INVENTORY, "domain: beryl3.staging.mdubiel.org", "domain: beryl3.staging.1a"),
         INVENTORY, "(name=beryl3).domain", "use lowercase dot-separated labels"),
    Case("project-on-server-domain", replace(INVENTORY, "domain: beryl3.staging.mdubiel.org", "domain: staging.mdubiel.org"),
         INVENTORY, "staging.vars", "give the project its own name"),
    Case("project-on-monitoring-domain",
         replace(INVENTORY, "domain: beryl3.staging.mdubiel.org", "domain: grafana.staging.mdubiel.org"),
         INVENTORY, "(name=beryl3).domain", "reserved for the shared monitoring services"),
    Case("duplicate-project-name", replace(INVENTORY, "name: project2", "name: beryl3"), INVENTORY,
         "projects[1] (name=beryl3).name", "give every project its own name"),
    Case("duplicate-domain", replace(INVENTORY, "domain: project2.staging", "domain: beryl3.staging"), INVENTORY,
         "projects[1] (name=project2).domain", "give every project its own domain"),
    Case("port-of-shared-service", replace(INVENTORY, "postgres: 5433", "postgres: 9090"), INVENTORY,
         "(name=project2).ports.postgres", "already used by the shared service 'prometheus'"),
    Case("port-used-twice", replace(INVENTORY, "django: 8001", "django: 8000"), INVENTORY,
         "(name=project2).ports.django", "pick a free port"),
    Case("port-out-of-range", replace(INVENTORY, "redis: 6380", "redis: 70000"), INVENTORY,
         "(name=project2).ports.redis", "less than or equal to 65535"),
    Case("ref-like-an-option", replace(INVENTORY, "ref: main", "ref: --upload-pack=evil"), INVENTORY,
         "(name=beryl3).ref", "not a git branch, tag or commit"),
    Case("project-key-typo", replace(INVENTORY, "      worker: false\n", "      workers: true\n"), INVENTORY,
         "(name=beryl3).workers", "did you mean 'worker'?"),
    Case("no-hosts", replace(INVENTORY, "    staging-server:\n" + HOST, "    {}\n"), INVENTORY, "staging.hosts",
         "at least 1 item"),
    Case("unknown-host-variable", replace(INVENTORY, HOST, HOST + "      ip: 10.0.0.1\n"), INVENTORY,
         "staging.hosts.staging-server", "move settings to group_vars"),
    Case("worker-not-bool", replace(INVENTORY, "      worker: false\n", "      worker: sometimes\n"), INVENTORY,
         "(name=beryl3).worker", "valid boolean"),
    Case("app-env-lowercase", replace(INVENTORY, "      worker: false\n", "      worker: false\n      app:\n        env:\n          debug: '1'\n"),
         INVENTORY, "(name=beryl3).app.env", "should match pattern"),
    Case("app-wsgi-file-path", replace(INVENTORY, "      worker: false\n", "      worker: false\n      app:\n        wsgi: config/wsgi.py\n"),
         INVENTORY, "(name=beryl3).app", "write e.g. config.wsgi:application"),
    Case("app-secret-also-plain", replace(INVENTORY, "      worker: false\n",
                                          "      worker: false\n      app:\n        env: {API_KEY: abc}\n        secrets: [API_KEY]\n"),
         INVENTORY, "(name=beryl3).app", "keep it in secrets and remove it from env"),
    Case("app-dockerfile-outside-repo", replace(INVENTORY, "      worker: false\n",
                                                "      worker: false\n      app:\n        builder: dockerfile\n        dockerfile: ../Dockerfile\n"),
         INVENTORY, "(name=beryl3).app", "must be a path inside the repository"),
    Case("app-builder-unknown", replace(INVENTORY, "      worker: false\n", "      worker: false\n      app:\n        builder: pipenv\n"),
         INVENTORY, "(name=beryl3).app.builder", "use one of the values listed"),
    Case("app-process-only-a-variable", replace(INVENTORY, "      worker: false\n",
                                                "      worker: false\n      app:\n        processes:\n          web: PORT=9000\n"),
         INVENTORY, "(name=beryl3).app.processes.web", "sets variables but runs no command"),
    Case("app-process-open-quote", replace(INVENTORY, "      worker: false\n",
                                           "      worker: false\n      app:\n        processes:\n          release: \"python manage.py migrate '\"\n"),
         INVENTORY, "(name=beryl3).app.processes.release", "with its quotes closed"),
    # --- group_vars/all.yml --------------------------------------------------------------------
    Case("schedule-in-words", replace(ALL_VARS, "schedule: '*-*-* 03:00:00'", "schedule: 03:00 every day"), ALL_VARS,
         "backups.schedule", "not a systemd OnCalendar schedule"),
    Case("schedule-cron-syntax", replace(ALL_VARS, "schedule: '*-*-* 03:00:00'", "schedule: 0 3 * * *"), ALL_VARS,
         "backups.schedule", "'*-*-* 03:00:00'"),
    Case("schedule-hour-25", replace(ALL_VARS, "schedule: '*-*-* 03:00:00'", "schedule: '*-*-* 25:00:00'"), ALL_VARS,
         "backups.schedule", "hour '25' is out of range"),
    Case("verify-schedule-bad-weekday", replace(ALL_VARS, "verify_schedule: Sun", "verify_schedule: Sunday-ish"),
         ALL_VARS, "backups.verify_schedule", "not a systemd OnCalendar schedule"),
    Case("log-size-megabytes", replace(ALL_VARS, "log_max_size: 10m", "log_max_size: 10MB"), ALL_VARS,
         "docker.log_max_size", "write a whole number and k, m or g"),
    Case("log-size-zero", replace(ALL_VARS, "log_max_size: 10m", "log_max_size: 0m"), ALL_VARS,
         "docker.log_max_size", "not a log file size Docker takes"),
    Case("relative-preload-archive", replace(ALL_VARS, "preload_archives: []", "preload_archives: [images.tar]"),
         ALL_VARS, "docker.preload_archives[0]", "not an absolute file path"),
    Case("log-max-file-zero", replace(ALL_VARS, "log_max_file: 5", "log_max_file: 0"), ALL_VARS,
         "docker.log_max_file", "greater than or equal to 1"),
    Case("two-services-one-port", replace(ALL_VARS, "    port: 3000\n", "    port: 9090\n"), ALL_VARS,
         "shared_services", "grafana and prometheus are both published on port 9090"),
    Case("docker-api-published", replace(ALL_VARS, "    port: 2375\n    published: false\n",
                                         "    port: 2375\n    published: true\n"), ALL_VARS,
         "shared_services", "docker_api.published must stay false"),
    Case("docker-api-off-under-alloy", replace(ALL_VARS, "  docker_api:\n    enabled: true\n",
                                               "  docker_api:\n    enabled: false\n"), ALL_VARS,
         "shared_services", "alloy reads the containers and their logs through docker_api"),
    Case("service-on-ssh-port", replace(ALL_VARS, "    port: 3100\n", "    port: 22\n"), ALL_VARS, "",
         "shared_services.loki.port 22 is published on the server, where SSH"),
    Case("memory-zero", replace(ALL_VARS, "    django: 512m\n", "    django: 0m\n"), ALL_VARS,
         "project_defaults.memory.django", "is zero"),
    Case("memory-below-docker-minimum", replace(ALL_VARS, "    memory: 1g\n", "    memory: 4m\n"), ALL_VARS,
         "shared_services.prometheus.memory", "below Docker's minimum memory limit"),
    Case("memory-no-unit", replace(ALL_VARS, "    memory: 512m\n", "    memory: 512\n"), ALL_VARS,
         "shared_services.grafana.memory", "valid string (got 512)"),
    Case("retention-zero", replace(ALL_VARS, "retention: 30d", "retention: 0d"), ALL_VARS,
         "shared_services.prometheus.retention", "keeps no data"),
    Case("retention-in-words", replace(ALL_VARS, "retention: 14d", "retention: 14 days"), ALL_VARS,
         "shared_services.loki.retention", "not a duration"),
    Case("backups-inside-projects", replace(ALL_VARS, "backups: /opt/backups", "backups: /opt/projects/backups"),
         ALL_VARS, "paths", "paths.backups (/opt/projects/backups) is inside paths.projects"),
    Case("projects-inside-shared", replace(ALL_VARS, "projects: /opt/projects", "projects: /opt/shared/projects"),
         ALL_VARS, "paths", "paths.projects (/opt/shared/projects) is inside paths.shared"),
    Case("textfile-same-as-backups", replace(ALL_VARS, "textfile: /var/lib/stagectl/textfile", "textfile: /opt/backups/"),
         ALL_VARS, "paths", "is the same as"),
    Case("relative-path", replace(ALL_VARS, "shared: /opt/shared", "shared: opt/shared"), ALL_VARS, "paths",
         "paths.shared must be an absolute directory"),
    Case("ssh-port-not-public", replace(ALL_VARS, "ssh_port: 22", "ssh_port: 2222"), ALL_VARS, "security",
         "add 2222 to public_ports"),
    Case("no-public-ports", replace(ALL_VARS, "  public_ports:\n  - 22\n  - 80\n  - 443\n", "  public_ports: []\n"),
         ALL_VARS, "security", "would lock everyone out"),
    Case("ssh-group-uppercase", replace(ALL_VARS, "ssh_allow_group: ssh-users", "ssh_allow_group: SSH Users"),
         ALL_VARS, "security.ssh_allow_group", "is not a Unix group name"),
    Case("fail2ban-ignore-hostname", replace(ALL_VARS, "ignore_addresses: []", "ignore_addresses: [office.example.org]"),
         ALL_VARS, "security.fail2ban.ignore_addresses", "write e.g. 203.0.113.7"),
    Case("fail2ban-ban-ms", replace(ALL_VARS, "ban_time: 1h", "ban_time: 500ms"), ALL_VARS,
         "security.fail2ban.ban_time", "too short to ban anyone"),
    Case("fail2ban-retry-zero", replace(ALL_VARS, "max_retry: 5", "max_retry: 0"), ALL_VARS,
         "security.fail2ban.max_retry", "greater than or equal to 1"),
    Case("prometheus-off", replace(ALL_VARS, "  prometheus:\n    enabled: true", "  prometheus:\n    enabled: false"),
         ALL_VARS, "shared_services", "set prometheus.enabled to true"),
    Case("alloy-without-loki", replace(ALL_VARS, "  loki:\n    enabled: true", "  loki:\n    enabled: false"),
         ALL_VARS, "shared_services", "switch loki on or alloy off"),
    Case("exporter-without-nginx", replace(ALL_VARS, "  nginx:\n    enabled: true", "  nginx:\n    enabled: false"),
         ALL_VARS, "shared_services", "switch nginx on or nginx_exporter off"),
    Case("unpinned-image", replace(ALL_VARS, "image: prom/prometheus:v3.5.0", "image: prom/prometheus"), ALL_VARS,
         "shared_services.prometheus.image", "write repository:tag"),
    Case("redis-maxmemory-too-big", replace(ALL_VARS, "redis_maxmemory: 192m", "redis_maxmemory: 512m"), ALL_VARS,
         "project_defaults", "make redis_maxmemory about three quarters"),
    Case("gunicorn-workers-zero", replace(ALL_VARS, "gunicorn_workers: 2", "gunicorn_workers: 0"), ALL_VARS,
         "project_defaults.gunicorn_workers", "greater than or equal to 1"),
    Case("max-connections-words", replace(ALL_VARS, "postgres_max_connections: 100", "postgres_max_connections: lots"),
         ALL_VARS, "project_defaults.postgres_max_connections", "got 'lots'"),
    Case("build-secret-id", replace(ALL_VARS, "build_secrets: {}", "build_secrets: {'CA Bundle': /tmp/ca.pem}"),
         ALL_VARS, "project_defaults.build_secrets", "should match pattern"),
    Case("top-level-typo", replace(ALL_VARS, "backups:\n  schedule", "backup:\n  schedule"), ALL_VARS, "backup",
         "did you mean 'backups'?"),
    Case("retention-days-zero", replace(ALL_VARS, "retention_days: 30", "retention_days: 0"), ALL_VARS,
         "backups.retention_days", "greater than or equal to 1"),
    Case("duplicate-docker-key", append(ALL_VARS, "docker:\n  log_max_size: 20m\n"), ALL_VARS, "line",
         "duplicate key 'docker'"),
    Case("ansible-password-in-all", append(ALL_VARS, "ansible_password: Hunter2Hunter2\n"), ALL_VARS,
         "ansible_password", "holds a password in plain text", hidden=("Hunter2Hunter2",)),
    Case("login-as-root", replace(ALL_VARS, "ansible_user: ansible", "ansible_user: root"), ALL_VARS,
         "ansible_user", "run `stagectl bootstrap --as root@HOST` once"),
    Case("ssh-port-not-a-number", replace(INVENTORY, HOST, HOST + "      ansible_port: ssh\n"), INVENTORY,
         "staging.hosts.staging-server", "write the SSH port as a number"),
    Case("login-user-with-dot", replace(INVENTORY, HOST, HOST + "      ansible_user: john.doe\n"), INVENTORY,
         "staging.hosts.staging-server", "is not a user name"),
    Case("top-level-list", write_bytes(ALL_VARS, lambda _raw: b"- paths\n- docker\n"), ALL_VARS, "",
         "valid dictionary"),
    Case("remote-not-restic", replace(ALL_VARS, "remote_retention_days: 90", REMOTE + "ftp://backup.example.org/x"),
         ALL_VARS, "backups.remote.repository", "is not a restic repository stagectl can use"),
    Case("remote-url-credentials",
         replace(ALL_VARS, "remote_retention_days: 90", REMOTE + "rest:https://u:Hunter2Hunter2@b.example.org/r"),
         ALL_VARS, "backups.remote.repository", "put them in the vault", hidden=("Hunter2Hunter2",)),
    Case("remote-check-percent", replace(ALL_VARS, "remote_retention_days: 90",
                                         REMOTE + "s3:https://s3.example.org/b\n    check_read_data_percent: 150"),
         ALL_VARS, "backups.remote.check_read_data_percent", "less than or equal to 100"),
    Case("remote-without-vault-secrets", replace(ALL_VARS, "remote_retention_days: 90", REMOTE + SFTP_REPO),
         VAULT, "vault_backups_remote", "add vault_backups_remote.password"),
    Case("remote-sftp-without-key",
         both(replace(ALL_VARS, "remote_retention_days: 90", REMOTE + SFTP_REPO),
              vault(_set("vault_backups_remote", {"password": "Restic-Passw0rd-Long-Enough"}))),
         VAULT, "vault_backups_remote.ssh_key", "add it to the vault", hidden=("Restic-Passw0rd-Long-Enough",)),
    Case("remote-password-in-env",
         vault(_set("vault_backups_remote", {"password": "Restic-Passw0rd-Long-Enough",
                                             "env": {"RESTIC_PASSWORD": "Other-Passw0rd-Long"}})),
         VAULT, "vault_backups_remote", "put the repository password in vault_backups_remote.password",
         hidden=("Restic-Passw0rd-Long-Enough", "Other-Passw0rd-Long")),
    # --- group_vars/staging.yml ----------------------------------------------------------------
    Case("smarthost-without-port", replace(STAGING_VARS, "smarthost: localhost:25", "smarthost: smtp.example.org"),
         STAGING_VARS, "alerting.smarthost", "write the SMTP relay with its port"),
    Case("smtp-login-without-recipient",
         replace(STAGING_VARS, "alerting:\n", "alerting:\n  smtp_username: alerts@example.org\n"), STAGING_VARS,
         "alerting", "email_to is empty"),
    Case("smtp-login-without-password",
         replace(STAGING_VARS, "alerting:\n",
                 "alerting:\n  email_to: ops@example.org\n  smtp_username: alerts@example.org\n"), VAULT,
         "vault_alerting_smtp_password", "ansible-vault edit"),
    Case("smtp-ca-file-relative",
         replace(STAGING_VARS, "alerting:\n",
                 "alerting:\n  email_to: ops@example.org\n  smtp_ca_file: relay-ca.pem\n"), STAGING_VARS,
         "alerting.smtp_ca_file", "not an absolute file path"),
    Case("email-to-not-address", replace(STAGING_VARS, "alerting:\n", "alerting:\n  email_to: ops\n"), STAGING_VARS,
         "alerting.email_to", "not an email address"),
    Case("webhook-without-scheme",
         replace(STAGING_VARS, "webhook_urls: []", "webhook_urls: [hooks.example.org/alertmanager]"),
         STAGING_VARS, "alerting.webhook_urls[0]", "with http:// or https://"),
    Case("wildcard-self-signed",
         replace(STAGING_VARS, "  provider: letsencrypt\n",
                 "  provider: selfsigned\n  wildcard:\n    dns_plugin: rfc2136\n"),
         STAGING_VARS, "certificates", "set provider letsencrypt, or remove certificates.wildcard"),
    Case("wildcard-unknown-plugin",
         replace(STAGING_VARS, "  provider: letsencrypt\n", "  provider: letsencrypt\n  wildcard:\n    dns_plugin: bind\n"),
         STAGING_VARS, "certificates.wildcard.dns_plugin", "'rfc2136'"),
    Case("wildcard-without-credentials",
         replace(STAGING_VARS, "  provider: letsencrypt\n", "  provider: letsencrypt\n  wildcard:\n    dns_plugin: cloudflare\n"),
         VAULT, "vault_certificates_dns_credentials", "dns_cloudflare_...: value"),
    Case("wildcard-credentials-of-another-plugin",
         both(replace(STAGING_VARS, "  provider: letsencrypt\n",
                      "  provider: letsencrypt\n  wildcard:\n    dns_plugin: rfc2136\n"),
              vault(_set("vault_certificates_dns_credentials", {"dns_cloudflare_api_token": "Cf-T0ken-T0ken-T0ken"}))),
         VAULT, "vault_certificates_dns_credentials",
         "dns_cloudflare_api_token: not a setting of certbot's DNS plugin rfc2136", hidden=("Cf-T0ken-T0ken-T0ken",)),
    Case("wildcard-credential-empty",
         both(replace(STAGING_VARS, "  provider: letsencrypt\n",
                      "  provider: letsencrypt\n  wildcard:\n    dns_plugin: rfc2136\n"),
              vault(_set("vault_certificates_dns_credentials", {"dns_rfc2136_server": "192.0.2.1",
                                                                 "dns_rfc2136_secret": ""}))),
         VAULT, "vault_certificates_dns_credentials.dns_rfc2136_secret", "set it to the value your provider gave you"),
    Case("unknown-certificate-provider", replace(STAGING_VARS, "provider: letsencrypt", "provider: zerossl"),
         STAGING_VARS, "certificates.provider", "'letsencrypt' or 'selfsigned'"),
    Case("certificate-email", replace(STAGING_VARS, "provider: letsencrypt", "provider: letsencrypt\n  email: admin"),
         STAGING_VARS, "certificates.email", "not an email address"),
    Case("acme-directory-not-url", replace(STAGING_VARS, "acme_directory: https://", "acme_directory: "),
         STAGING_VARS, "certificates.acme_directory", "with http:// or https://"),
    Case("letsencrypt-for-test-domain", replace(INVENTORY, "domain: beryl3.staging.mdubiel.org", "domain: beryl3.staging.test"),
         STAGING_VARS, "certificates.provider", "set certificates.provider: selfsigned"),
    Case("environment-name", replace(STAGING_VARS, "environment_name: staging", "environment_name: Staging Env"),
         STAGING_VARS, "environment_name", "not a valid project name"),
    Case("probe-host-not-ip", replace(STAGING_VARS, "probe_hosts: {}", "probe_hosts: {beryl3.staging.mdubiel.org: myserver}"),
         STAGING_VARS, "monitoring.probe_hosts.beryl3.staging.mdubiel.org", "not an IP address"),
    Case("email-port-zero", replace(STAGING_VARS, "email_port: 1025", "email_port: 0"), STAGING_VARS,
         "django.email_port", "greater than or equal to 1"),
    Case("ssh-pass-in-staging", append(STAGING_VARS, "ansible_ssh_pass: Hunter2Hunter2\n"), STAGING_VARS,
         "ansible_ssh_pass", "move it into the vault", hidden=("Hunter2Hunter2",)),
    Case("staging-alias-bomb", append(STAGING_VARS, "lol: &x [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"l{i}: &x{i} [{', '.join(['*x' if i == 0 else f'*x{i - 1}'] * 10)}]\n" for i in range(8))),
         STAGING_VARS, "line", "expand to more than"),
    # --- group_vars/vault.yml ------------------------------------------------------------------
    Case("vault-conflict-markers", write_bytes(VAULT, _conflict), VAULT, "", "git conflict markers"),
    Case("vault-truncated", write_bytes(VAULT, _truncate), VAULT, "", "truncated"),
    Case("vault-header-only", write_bytes(VAULT, lambda raw: raw.splitlines(keepends=True)[0]), VAULT, "",
         "no encrypted text"),
    Case("vault-not-encrypted", write_bytes(VAULT, lambda _raw: b"vault_grafana_admin_password: x\n"), VAULT, "",
         "ansible-vault encrypt"),
    Case("vault-secret-wrong-type", vault(_set("vault_grafana_admin_password", 12345678901234567890)), VAULT,
         "vault_grafana_admin_password", "valid string", hidden=("12345678901234567890",)),
    Case("vault-password-not-url-safe", vault(_set("vault_projects.beryl3.postgres_password", "p@ss/w0rd:with-symbols")),
         VAULT, "vault_projects.beryl3.postgres_password", "should match pattern", hidden=("p@ss/w0rd:with-symbols",)),
    Case("vault-secret-too-short", vault(_set("vault_grafana_secret_key", "Sh0rtSecret")), VAULT,
         "vault_grafana_secret_key", "at least 16 characters", hidden=("Sh0rtSecret",)),
    Case("vault-missing-project", vault(lambda d: d["vault_projects"].pop("project2")), VAULT,
         "vault_projects.project2", "stagectl secrets generate"),
    Case("vault-missing-monitor-password",
         vault(lambda d: d["vault_projects"]["beryl3"].pop("postgres_monitor_password")), VAULT,
         "vault_projects.beryl3.postgres_monitor_password", "stagectl secrets generate"),
    Case("vault-bcrypt-mismatch", vault(_set("vault_prometheus_password", "AnotherPassw0rdThatIsLong")), VAULT,
         "vault_prometheus_password_bcrypt", "re-hash it", hidden=("AnotherPassw0rdThatIsLong",)),
    Case("vault-key-typo", vault(lambda d: d.update(vault_grafana_admin_pasword=d["vault_grafana_admin_password"])),
         VAULT, "vault_grafana_admin_pasword", "did you mean 'vault_grafana_admin_password'?"),
    Case("vault-duplicate-key", vault_plaintext("vault_grafana_admin_password: aaaaaaaaaaaaaaaaaaaaa\n"
                                                "vault_grafana_admin_password: bbbbbbbbbbbbbbbbbbbbb\n"),
         VAULT, "", "duplicate key 'vault_grafana_admin_password'",
         hidden=("aaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbb")),
]


def _snapshot(root: Path) -> dict[Path, tuple[bytes, int]]:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


def test_there_are_many_distinct_cases() -> None:
    assert len({case.id for case in CASES}) == len(CASES) >= 50


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_plan_refuses_at_the_door(case: Case, template: Template, tmp_path: Path) -> None:
    root = tmp_path / "env"
    shutil.copytree(template.root, root)
    case.edit(root, template.key)
    before = _snapshot(root)
    out = tmp_path / "out"

    result = runner.invoke(
        app, ["plan", "--env", str(root), "--out", str(out), "--vault-password-file", str(template.key)]
    )

    output = result.output
    assert result.exit_code == 2, output
    assert "Traceback" not in output and result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in output.splitlines() if f"{case.file}:" in line and case.field in line]
    assert lines, f"no line names {case.file} and {case.field!r}:\n{output}"
    assert case.says in output, output
    assert any(ADVICE.search(line) for line in lines), f"no advice:\n{output}"
    for secret in (*template.secrets, *case.hidden):
        assert secret not in output, f"a secret was printed:\n{output}"
    assert _snapshot(root) == before
    assert not out.exists() or not any(out.iterdir())


def test_a_refused_plan_leaves_ports_to_allocate_unwritten(template: Template, tmp_path: Path) -> None:
    root = tmp_path / "env"
    shutil.copytree(template.root, root)
    inventory = root / INVENTORY
    # Ports to allocate, and a problem found only after the model accepted the environment.
    text = inventory.read_text().replace(BERYL_PORTS, "").replace(BERYL_REPO, "repo: /nonexistent/beryl3")
    inventory.write_text(text)
    before = inventory.read_bytes()
    result = runner.invoke(app, ["plan", "--env", str(root), "--vault-password-file", str(template.key)])
    assert result.exit_code == 2, result.output
    assert inventory.read_bytes() == before


def test_a_vault_password_file_path_with_spaces_renders(tmp_path: Path) -> None:
    from stagectl.render import render_environment

    root, key = tmp_path / "my env", tmp_path / "my keys" / "vault pass"
    init_environment(root, key)
    files = render_environment(root, tmp_path / "out", key)
    assert any(f.kind == "compose" for f in files)


def test_ports_are_allocated_in_memory_for_the_render(template: Template, tmp_path: Path) -> None:
    from stagectl.environment import ALLOCATE_PORTS_ENV
    from stagectl.render import render_environment

    root = tmp_path / "env"
    shutil.copytree(template.root, root)
    inventory = root / INVENTORY
    inventory.write_text(inventory.read_text().replace(BERYL_PORTS, ""))
    before = inventory.read_bytes()
    files = render_environment(root, tmp_path / "out", template.key, extra_env={ALLOCATE_PORTS_ENV: "1"})
    compose = next(f for f in files if f.dest.endswith("beryl3/docker-compose.yml"))
    assert "127.0.0.1:8000:" in compose.local.read_text()
    assert inventory.read_bytes() == before


@pytest.mark.parametrize(("signum", "phase"), [(signal.SIGTERM, "render"), (signal.SIGINT, "render"),
                                               (signal.SIGTERM, "checks")])
def test_a_signal_stops_plan_cleanly(template: Template, tmp_path: Path, signum: int, phase: str) -> None:
    root = tmp_path / "env"
    shutil.copytree(template.root, root)
    out = tmp_path / "out"
    before = _snapshot(root)
    stagectl = Path(sys.executable).parent / "stagectl"
    proc = subprocess.Popen(
        [str(stagectl), "plan", "--env", str(root), "--out", str(out), "--vault-password-file", str(template.key)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        # An earlier plan in this run may have cached ansible-lint's verdict on the collection;
        # without the cache the checks always run ansible-lint, the process this test waits for.
        env={**os.environ, "STAGECTL_NO_CACHE": "1", "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )
    try:
        # Rendering has started once ansible-playbook runs for this environment; the checks once
        # ansible-lint runs for this plan.
        started = (lambda: _playbooks_for(root)) if phase == "render" else (lambda: _linters_of(proc.pid))
        for _ in range(1200):
            if started() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert started(), f"the {phase} never started"
        children = started()
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signum, output
    assert "interrupted" in output and "Traceback" not in output
    for _ in range(50):
        if not _playbooks_for(root):
            break
        time.sleep(0.1)
    assert not _playbooks_for(root), "ansible-playbook outlived stagectl"
    for _ in range(50):
        if not any(_alive(pid) for pid in children):
            break
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in children), "a child outlived stagectl"
    assert not out.exists()
    assert _snapshot(root) == before


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for a reaper."""
    try:
        return (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _linters_of(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"ansible-lint" in argv:
            found.append(int(entry.name))
    return found


def _playbooks_for(root: Path) -> list[int]:
    """Processes of ansible-playbook working on this environment (its inventory on the command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"ansible-playbook" in a for a in argv[:3]) and any(str(root).encode() in a for a in argv):
            found.append(int(entry.name))
    return found


def test_plain_yaml_loader_refuses_what_stagectl_refuses() -> None:
    from stagectl import yamlfile

    with pytest.raises(yaml.YAMLError, match="duplicate key 'a'"):
        yamlfile.load("a: 1\nb: 2\na: 3\n")
    with pytest.raises(yaml.YAMLError, match="expand to more than"):
        yamlfile.load(BILLION_LAUGHS)
    with pytest.raises(yaml.YAMLError, match="nested too deeply"):
        yamlfile.load("[" * 5000 + "]" * 5000)
    # Merge keys and a few aliases are fine.
    assert yamlfile.load("base: &b {x: 1}\nuse:\n  <<: *b\n  y: 2\n") == {"base": {"x": 1}, "use": {"x": 1, "y": 2}}


@pytest.mark.parametrize(
    "schedule", ["*-*-* 03:00:00", "Sun *-*-* 04:30:00", "daily", "Mon..Fri 09:00", "*-*-01 00:00",
                 "Sat,Sun 10:00", "2026-12-24 18:00 UTC", "*:0/15", "*-*~01 12:00", "weekly Europe/Berlin"],
)
def test_schedules_systemd_takes_are_accepted(schedule: str) -> None:
    from stagectl import oncalendar

    oncalendar.check(schedule)
    analyze = shutil.which("systemd-analyze")
    if analyze:  # the reference, where it is installed
        assert subprocess.run([analyze, "calendar", schedule], capture_output=True, check=False).returncode == 0


@pytest.mark.parametrize(
    "schedule", ["03:00 every day", "0 3 * * *", "*-13-* 00:00", "*-*-* 24:00", "Funday", "daily 03:00", ""],
)
def test_schedules_systemd_refuses_are_refused(schedule: str) -> None:
    from stagectl import oncalendar

    with pytest.raises(ValueError):
        oncalendar.check(schedule)
    analyze = shutil.which("systemd-analyze")
    if analyze and schedule:
        assert subprocess.run([analyze, "calendar", schedule], capture_output=True, check=False).returncode != 0


def test_recorded_ports_change_only_the_port_lines(template: Template, tmp_path: Path) -> None:
    from stagectl.environment import load_environment, record_allocations

    root = tmp_path / "env"
    shutil.copytree(template.root, root)
    inventory = root / INVENTORY
    original = inventory.read_text()
    inventory.write_text(original.replace(BERYL_PORTS, ""))
    loaded = load_environment(root)
    assert loaded.allocated == {"beryl3": {"postgres": 5432, "django": 8000, "redis": 6379}}
    record_allocations(root, loaded.allocated)
    # Same layout as `stagectl init` wrote (no re-indented file); the ports come back at the end.
    written = inventory.read_text()
    assert written.replace(BERYL_PORTS, "") == original.replace(BERYL_PORTS, "")
    assert BERYL_PORTS.replace("      ports:\n", "") in written


def test_messages_after_the_model_mask_vault_values(template: Template) -> None:
    from stagectl.environment import load_environment
    from stagectl.plan import _mask

    loaded = load_environment(template.root, vault_password_file=template.key)
    assert loaded.vault is not None
    secret = loaded.vault.vault_grafana_admin_password
    masked = _mask(f"template error near 'password = {secret}'", loaded.vault)
    assert secret not in masked and "password = ***" in masked
