"""Every value the templates use, derived from a validated Environment in one place.

The result is the `stagectl` variable that the collection's vars plugin gives every host, so a
plain `ansible-playbook` run and the CLI see exactly the same values. Secrets are NOT in it:
templates read them from the vault's `vault_*` variables.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from stagectl.model import LETSENCRYPT_DIRECTORY, Environment, Project, sftp_target

# A Procfile line is a shell command line: one that uses the shell (variables, operators,
# redirections, globs) is run by `sh -c`; a plain one is exec'd as its words, so the process gets
# the container's signals directly.
_SHELL_SYNTAX = re.compile(r"[$`;&|<>(){}*?~\\]|\n")
# `NAME=value command ...`: a variable set for one command, which only a shell understands.
_ASSIGNMENT = re.compile(r"^\s*[A-Za-z_][A-Za-z0-9_]*=")
_CONTROL = re.compile(r"[;&|()`\n]")


def process_argv(command: str | None) -> list[str] | None:
    """The argv that runs a Procfile-style command, or None when the command is unset."""
    if command is None or not command.strip():
        return None
    if _SHELL_SYNTAX.search(command) or _ASSIGNMENT.match(command):
        # One simple command (variables, redirections, globs, but no list or pipeline): the shell
        # replaces itself with it, so it gets the container's signals instead of the shell.
        simple = not _CONTROL.search(command)
        # `exec NAME=value cmd` would look for a program called NAME=value: env sets it instead.
        exec_ = "exec env" if _ASSIGNMENT.match(command) else "exec"
        return ["sh", "-c", f"{exec_} {command.strip()}" if simple else command]
    return shlex.split(command)


def image_python_version(image: str) -> str | None:
    """The Python major.minor an image reference names in its tag (`python:3.13-slim` -> 3.13)."""
    tag = image.split("@")[0].rsplit("/", 1)[-1].partition(":")[2]
    match = re.match(r"^(3\.[0-9]+)(?![0-9])", tag)
    return match.group(1) if match else None


def python_version_notes(env: Environment) -> list[str]:
    """Projects whose `app.python` differs from the Python of the image they are built on."""
    image = env.settings.project_defaults.images.python
    have = image_python_version(image)
    notes = []
    for project in env.projects:
        want = project.app.python
        if want is None or have is None or want == have:
            continue
        notes.append(
            f"project '{project.name}': app.python is {want} but the app image is built on {image} "
            f"(Python {have}); the build may fail or the app may behave differently. Set "
            f"project_defaults.images.python to a Python {want} image, or app.python to {have} "
            "once the app runs on it"
        )
    return notes


def alerting_notes(env: Environment) -> list[str]:
    """Alerting that reaches nobody: Alertmanager runs, but no e-mail address or webhook is set."""
    alerting = env.staging.alerting
    if alerting.email_to or alerting.webhook_urls:
        return []
    note = (
        "alerting: no receiver is configured (alerting.email_to and alerting.webhook_urls in "
        "group_vars/staging.yml are empty): alerts fire but reach nobody. Set alerting.email_to "
        "(with alerting.smarthost) or add a webhook URL"
    )
    return [note]


#: The port of a project's web process inside its container.
APP_PORT = 8000


def _identifier(name: str) -> str:
    """A project name as a PostgreSQL identifier: '-' is not allowed unquoted there."""
    return name.replace("-", "_")


def project_view(env: Environment, project: Project) -> dict[str, Any]:
    defaults = env.settings.project_defaults
    paths = env.settings.paths
    root = f"{paths.projects}/{project.name}"
    ident = _identifier(project.name)
    environment_name = env.staging.environment_name
    services = ["postgres", "redis", "django", "nginx", "postgres_exporter", "redis_exporter",
                "nginx_exporter"]
    if project.worker:
        services.append("worker")
    if project.scheduler:
        services.append("scheduler")
    return {
        "name": project.name,
        "domain": project.domain,
        "repo": project.repo,
        "ref": project.ref,
        "worker": project.worker,
        "scheduler": project.scheduler,
        "app": project.app.model_dump(),
        # app.processes as argv lists (None: unset, the roles' defaults apply).
        "commands": {
            name: process_argv(command)
            for name, command in project.app.processes.model_dump().items()
        },
        "compose_project": project.name,
        # Where the app's web process listens inside its container (nginx and the probes go there).
        "app_port": APP_PORT,
        "network": project.name,
        "ports": project.ports.model_dump(),
        "database": {
            "name": f"{ident}_{environment_name.replace('-', '_')}",
            "user": f"{ident}_user",
            "max_connections": defaults.postgres_max_connections,
        },
        "redis_maxmemory": defaults.redis_maxmemory,
        "gunicorn_workers": defaults.gunicorn_workers,
        "build_secrets": dict(defaults.build_secrets),
        "images": {**defaults.images.model_dump(), "app": f"stagectl/{project.name}-app:latest"},
        "memory": defaults.memory.model_dump(),
        "services": services,
        # Container names are the DNS names other stacks use on the shared networks.
        "containers": {service: f"{project.name}-{service.replace('_', '-')}" for service in services},
        "dirs": {
            "root": root,
            "app": f"{root}/app",
            "config": f"{root}/config",
            "data": f"{root}/data",
            "postgres_data": f"{root}/data/postgresql",
            "redis_data": f"{root}/data/redis",
            "static": f"{root}/data/static",
            "media": f"{root}/data/media",
            "ssl": f"{root}/ssl",
            "logs": f"{root}/logs",
            "backups": f"{paths.backups}/{project.name}",
        },
    }


def monitoring_domains_of(server_domain: str) -> dict[str, str]:
    """The names the main nginx serves the shared stack under, by service."""
    return {
        "monitoring": f"monitoring.{server_domain}",
        "grafana": f"grafana.{server_domain}",
        "prometheus": f"prometheus.{server_domain}",
    }


def derive(env: Environment) -> dict[str, Any]:
    """The `stagectl` variable: a plain, JSON-able dict."""
    settings = env.settings
    domain = env.server_domain
    monitoring_domains = monitoring_domains_of(domain)
    projects = [project_view(env, p) for p in env.projects]
    return {
        "environment_name": env.staging.environment_name,
        "server_domain": domain,
        "hosts": sorted(env.inventory.staging.hosts),
        "paths": settings.paths.model_dump(),
        "networks": {"monitoring": "monitoring", "projects": "projects"},
        "shared": settings.shared_services.model_dump(),
        "monitoring_domains": monitoring_domains,
        "django": env.staging.django.model_dump(),
        "alerting": env.staging.alerting.model_dump(),
        "monitoring": env.staging.monitoring.model_dump(),
        "certificates": {
            **env.staging.certificates.model_dump(),
            "email": env.staging.certificates.email or f"admin@{domain}",
            # ACME HTTP-01 webroot of the monitoring domains (projects use their own ssl/ dir).
            "shared_webroot": f"{settings.paths.shared}/nginx/acme",
            "live_dir": "/etc/letsencrypt/live",
            # Only Let's Encrypt production chains verify against public roots (its staging
            # directory and private ACME servers issue from roots nobody trusts by default).
            "publicly_trusted": env.staging.certificates.provider == "letsencrypt"
            and env.staging.certificates.acme_directory == LETSENCRYPT_DIRECTORY,
            # Where certbot answers each name's HTTP-01 challenge: the webroot the main nginx
            # serves under /.well-known/acme-challenge/ for it.
            "webroots": {
                **{p["domain"]: p["dirs"]["ssl"] for p in projects},
                **dict.fromkeys(monitoring_domains.values(), f"{settings.paths.shared}/nginx/acme"),
            },
        },
        "backups": {
            **settings.backups.model_dump(),
            # sftp repositories: where restic's ssh goes (None for other kinds, or no remote).
            "remote_sftp": sftp_target(settings.backups.remote.repository) if settings.backups.remote else None,
        },
        "docker": settings.docker.model_dump(),
        "security": settings.security.model_dump(),
        "projects": projects,
        "project_names": [p["name"] for p in projects],
        "dns_records": [
            {"name": name, "type": "A"}
            for name in [*(p["domain"] for p in projects), *monitoring_domains.values()]
        ],
    }
