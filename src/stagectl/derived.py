"""Every value the templates use, derived from a validated Environment in one place.

The result is the `stagectl` variable that the collection's vars plugin gives every host, so a
plain `ansible-playbook` run and the CLI see exactly the same values. Secrets are NOT in it:
templates read them from the vault's `vault_*` variables.
"""

from __future__ import annotations

import re
import shlex

from pydantic import BaseModel, ConfigDict

from stagectl.model import (
    LETSENCRYPT_DIRECTORY,
    Alerting,
    Backups,
    Certificates,
    Django,
    Docker,
    Environment,
    Monitoring,
    Paths,
    Project,
    ProjectApp,
    ProjectImages,
    ProjectMemory,
    ProjectPorts,
    Security,
    SharedServices,
    sftp_target,
)

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


def python_version_note(project: Project, image: str) -> str | None:
    """Why a project's `app.python` may not build on the image it is built on, or None."""
    want, have = project.app.python, image_python_version(image)
    if want is None or have is None or want == have:
        return None
    return (
        f"project '{project.name}': app.python is {want} but the app image is built on {image} "
        f"(Python {have}); the build may fail or the app may behave differently. Set "
        f"project_defaults.images.python to a Python {want} image, or app.python to {have} "
        "once the app runs on it"
    )


def python_version_notes(env: Environment) -> list[str]:
    """Projects whose `app.python` differs from the Python of the image they are built on."""
    image = env.settings.project_defaults.images.python
    return [note for project in env.projects if (note := python_version_note(project, image))]


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


#: The shared stack's Compose project name and project label.
SHARED_PROJECT = "shared"
#: The basic-auth user of Prometheus and Alertmanager, and Grafana's admin user.
ADMIN_USER = "admin"
#: The port of a project's web process inside its container.
APP_PORT = 8000
#: The ports a project's exporters listen on in their containers: their upstream defaults.
EXPORTER_PORTS = {"postgres_exporter": 9187, "redis_exporter": 9121, "nginx_exporter": 9113}


def _identifier(name: str) -> str:
    """A project name as a PostgreSQL identifier: '-' is not allowed unquoted there."""
    return name.replace("-", "_")


class View(BaseModel):
    """A derived value: computed, never written by hand, and read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Database(View):
    name: str
    #: The app's role: owns the database.
    user: str
    #: The exporter's role: pg_monitor, no access to the app's tables.
    monitor_user: str
    max_connections: int


class ProjectDirs(View):
    """A project's directories on the server (backups under paths.backups, the rest under its root)."""

    root: str
    app: str
    config: str
    data: str
    postgres_data: str
    redis_data: str
    static: str
    media: str
    ssl: str
    logs: str
    backups: str


class AppImages(ProjectImages):
    #: The image stagectl builds from the app's source.
    app: str


class ProjectView(View):
    name: str
    domain: str
    repo: str
    ref: str | None
    worker: bool
    scheduler: bool
    app: ProjectApp
    #: app.processes as argv lists (None: unset, the roles' defaults apply).
    commands: dict[str, list[str] | None]
    compose_project: str
    #: Where the app's web process listens inside its container (nginx and the probes go there).
    app_port: int
    #: Exporter service -> the port it listens on inside its container (the shared Prometheus
    #: scrapes it there, by container name, on the project's metrics network).
    exporter_ports: dict[str, int]
    #: The project's own network: every container of its stack.
    network: str
    #: Only what Prometheus scrapes (the app server, the exporters) and Prometheus itself: no
    #: project container shares a network with another project's, nor with the shared stack's
    #: back-ends. Underscore: project names have none, so it never names another project's network.
    metrics_network: str
    ports: ProjectPorts
    database: Database
    redis_maxmemory: str
    gunicorn_workers: int
    build_secrets: dict[str, str]
    images: AppImages
    memory: ProjectMemory
    #: Compose services of the stack, in start order.
    services: list[str]
    #: Compose service -> container name. Container names are the DNS names other stacks use on
    #: the shared networks.
    containers: dict[str, str]
    dirs: ProjectDirs


class CertificatesView(Certificates):
    email: str
    #: ACME HTTP-01 webroot of the monitoring domains (projects use their own ssl/ dir).
    shared_webroot: str
    live_dir: str
    #: Only Let's Encrypt production chains verify against public roots (its staging directory
    #: and private ACME servers issue from roots nobody trusts by default).
    publicly_trusted: bool
    #: Where certbot answers each name's HTTP-01 challenge: the webroot served under
    #: /.well-known/acme-challenge/ for it (a project's by its own nginx, behind the main one).
    webroots: dict[str, str]
    #: Per public name, the certificate (certbot's lineage: <live_dir>/<lineage>/) that serves it:
    #: the name's own, or with `wildcard` the one for `*.<server_domain>` when the name is one
    #: label under it.
    lineage_of: dict[str, str]
    #: Per lineage, the names its certificate carries.
    lineages: dict[str, list[str]]


def wildcard_lineage(server_domain: str) -> str:
    """The wildcard's lineage: a name the wildcard itself covers, so it never collides with
    another name's own certificate."""
    return f"wildcard.{server_domain}"


def certificate_lineages(names: list[str], server_domain: str, wildcard: bool) -> dict[str, str]:
    """Name -> lineage: the wildcard's for a name one label under `server_domain`, else its own."""
    suffix = f".{server_domain}"

    def covered(name: str) -> bool:
        return wildcard and name.endswith(suffix) and "." not in name[: -len(suffix)]

    return {name: wildcard_lineage(server_domain) if covered(name) else name for name in names}


class SftpTarget(View):
    user: str
    host: str
    port: int
    path: str


class BackupsView(Backups):
    #: sftp repositories: where restic's ssh goes (None for other kinds, or no remote).
    remote_sftp: SftpTarget | None


class DnsRecord(View):
    name: str
    type: str


class Derived(View):
    """Every value the templates and commands use, derived from the environment. Its
    `model_dump()` is the `stagectl` variable the roles read."""

    #: The shared stack's Compose project, and the `project` label of its targets and alerts.
    shared_project: str = SHARED_PROJECT
    #: The user of the monitoring services' basic auth and Grafana's admin (passwords: vault).
    admin_user: str = ADMIN_USER
    environment_name: str
    server_domain: str
    hosts: list[str]
    paths: Paths
    networks: dict[str, str]
    shared: SharedServices
    monitoring_domains: dict[str, str]
    django: Django
    alerting: Alerting
    monitoring: Monitoring
    certificates: CertificatesView
    backups: BackupsView
    docker: Docker
    security: Security
    projects: list[ProjectView]
    project_names: list[str]
    #: Each project's position in `projects`, by name. A role finds its project with one lookup,
    #: `stagectl.projects[stagectl.project_index[name]]`: `project_names.index(name)` templates
    #: the whole list on each use, which made rendering quadratic in projects.
    project_index: dict[str, int]
    dns_records: list[DnsRecord]

    def project(self, name: str) -> ProjectView:
        """The project called `name` (KeyError when the environment has none)."""
        for project in self.projects:
            if project.name == name:
                return project
        raise KeyError(name)


def project_view(env: Environment, project: Project) -> ProjectView:
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
    return ProjectView(
        name=project.name,
        domain=project.domain,
        repo=project.repo,
        ref=project.ref,
        worker=project.worker,
        scheduler=project.scheduler,
        app=project.app,
        commands={
            name: process_argv(command)
            for name, command in project.app.processes.model_dump().items()
        },
        compose_project=project.name,
        app_port=APP_PORT,
        exporter_ports=dict(EXPORTER_PORTS),
        network=project.name,
        metrics_network=f"{project.name}_metrics",
        ports=project.ports,
        database=Database(
            name=f"{ident}_{environment_name.replace('-', '_')}",
            user=f"{ident}_user",
            monitor_user=f"{ident}_monitor",
            max_connections=defaults.postgres_max_connections,
        ),
        redis_maxmemory=defaults.redis_maxmemory,
        gunicorn_workers=defaults.gunicorn_workers,
        build_secrets=dict(defaults.build_secrets),
        images=AppImages(**defaults.images.model_dump(), app=f"stagectl/{project.name}-app:latest"),
        memory=defaults.memory,
        services=services,
        containers={service: f"{project.name}-{service.replace('_', '-')}" for service in services},
        dirs=ProjectDirs(
            root=root,
            app=f"{root}/app",
            config=f"{root}/config",
            data=f"{root}/data",
            postgres_data=f"{root}/data/postgresql",
            redis_data=f"{root}/data/redis",
            static=f"{root}/data/static",
            media=f"{root}/data/media",
            ssl=f"{root}/ssl",
            logs=f"{root}/logs",
            backups=f"{paths.backups}/{project.name}",
        ),
    )


def monitoring_domains_of(server_domain: str) -> dict[str, str]:
    """The names the main nginx serves the shared stack under, by service."""
    return {
        "monitoring": f"monitoring.{server_domain}",
        "grafana": f"grafana.{server_domain}",
        "prometheus": f"prometheus.{server_domain}",
    }


def derive(env: Environment) -> Derived:
    """Everything the templates and commands need; `.model_dump()` is the `stagectl` variable."""
    settings = env.settings
    domain = env.server_domain
    monitoring_domains = monitoring_domains_of(domain)
    projects = [project_view(env, p) for p in env.projects]
    certificates = env.staging.certificates
    public_names = [*(p.domain for p in projects), *monitoring_domains.values()]
    lineage_of = certificate_lineages(public_names, domain, certificates.wildcard is not None)
    remote = settings.backups.remote
    sftp = sftp_target(remote.repository) if remote else None
    return Derived(
        environment_name=env.staging.environment_name,
        server_domain=domain,
        hosts=sorted(env.inventory.staging.hosts),
        paths=settings.paths,
        networks={"projects": "projects", "shared": "shared", "docker_api": "docker_api"},
        shared=settings.shared_services,
        monitoring_domains=monitoring_domains,
        django=env.staging.django,
        alerting=env.staging.alerting,
        monitoring=env.staging.monitoring,
        certificates=CertificatesView(
            **certificates.model_dump(exclude={"email"}),
            email=certificates.email or f"admin@{domain}",
            shared_webroot=f"{settings.paths.shared}/nginx/acme",
            live_dir="/etc/letsencrypt/live",
            publicly_trusted=certificates.provider == "letsencrypt"
            and certificates.acme_directory == LETSENCRYPT_DIRECTORY,
            webroots={
                **{p.domain: p.dirs.ssl for p in projects},
                **dict.fromkeys(monitoring_domains.values(), f"{settings.paths.shared}/nginx/acme"),
            },
            lineage_of=lineage_of,
            lineages={
                lineage: [f"*.{domain}"] if certificates.wildcard and lineage == wildcard_lineage(domain) else [lineage]
                for lineage in lineage_of.values()
            },
        ),
        backups=BackupsView(
            **settings.backups.model_dump(exclude={"remote"}),
            remote=remote,
            remote_sftp=SftpTarget.model_validate(sftp) if sftp else None,
        ),
        docker=settings.docker,
        security=settings.security,
        projects=projects,
        project_names=[p.name for p in projects],
        project_index={p.name: position for position, p in enumerate(projects)},
        dns_records=[DnsRecord(name=name, type="A") for name in public_names],
    )
