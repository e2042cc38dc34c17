"""The one definition of an environment: pydantic models of each environment file, and every
value derived from them (ports, names, networks, paths) that the templates and the CLI use.

The environment is the seed's Ansible layout:

    inventory/staging.yml    hosts and projects          -> Inventory
    group_vars/all.yml       global settings             -> GlobalSettings
    group_vars/staging.yml   environment-specific        -> StagingSettings
    group_vars/vault.yml     secrets (ansible-vault)     -> Vault
"""

from __future__ import annotations

import ipaddress

import re
import urllib.parse
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

# --- scalar types -------------------------------------------------------------------------------

SLUG_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
DOMAIN_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
DURATION_RE = re.compile(r"^([0-9]+(ms|[smhdwy]))+$")
MEMORY_RE = re.compile(r"^[0-9]+(\.[0-9]+)?[bkmg]$")
IMAGE_RE = re.compile(r"^[a-z0-9]+([._/:@-][a-zA-Z0-9_.-]+)*$")

# PostgreSQL truncates identifiers at 63 bytes; the longest we derive is "<ident>_staging".
MAX_PROJECT_NAME = 40


# Names the shared stack uses for itself in labels, dashboard folders and nginx maps.
# `monitoring` and `projects` are also the shared Docker networks a project network would shadow.
RESERVED_PROJECT_NAMES = frozenset({"shared", "host", "monitoring", "projects"})


def _slug(value: str) -> str:
    if value in RESERVED_PROJECT_NAMES:
        raise ValueError(f"'{value}' is reserved for the shared stack; pick another project name")
    if len(value) > MAX_PROJECT_NAME:
        raise ValueError(f"'{value}' is longer than {MAX_PROJECT_NAME} characters")
    if not SLUG_RE.match(value):
        raise ValueError(
            f"'{value}' is not a valid project name: use lowercase letters, digits and single "
            "'-' between them, starting with a letter (it names a Docker Compose project, a "
            "network and PostgreSQL identifiers)"
        )
    return value


def _domain(value: str) -> str:
    labels = value.split(".")
    if (
        len(value) > 253
        or len(labels) < 2
        or value != value.lower()
        or not all(DOMAIN_LABEL_RE.match(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise ValueError(
            f"'{value}' is not a valid domain name: use lowercase dot-separated labels of "
            "letters, digits and '-', e.g. beryl3.staging.example.org"
        )
    return value


def _duration(value: str) -> str:
    if not DURATION_RE.match(value):
        raise ValueError(
            f"'{value}' is not a duration: write a number and a unit with no space, "
            "e.g. 30d, 14d, 12h (units ms, s, m, h, d, w, y)"
        )
    return value


def _memory(value: str) -> str:
    if not MEMORY_RE.match(value):
        raise ValueError(f"'{value}' is not a memory size: write e.g. 512m or 1g (units b, k, m, g)")
    return value


def _image(value: str) -> str:
    if not IMAGE_RE.match(value) or ":" not in value.rsplit("/", 1)[-1] and "@" not in value:
        raise ValueError(
            f"'{value}' is not a pinned image reference: write repository:tag, "
            "e.g. prom/prometheus:v3.5.0"
        )
    return value


def _probe_address(value: str) -> str:
    if value == "host-gateway":
        return value
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(
            f"'{value}' is not an IP address: write an IPv4 or IPv6 address, or host-gateway "
            "for the server itself"
        ) from None
    return value


def _webhook_url(value: str) -> str:
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"'{value}' is not a webhook URL: write the whole address with http:// or https://, "
            "e.g. https://hooks.example.org/alertmanager"
        )
    return value


Slug = Annotated[str, AfterValidator(_slug)]
Domain = Annotated[str, AfterValidator(_domain)]
Duration = Annotated[str, AfterValidator(_duration)]
Memory = Annotated[str, AfterValidator(_memory)]
Image = Annotated[str, AfterValidator(_image)]
ProbeAddress = Annotated[str, AfterValidator(_probe_address)]
WebhookUrl = Annotated[str, AfterValidator(_webhook_url)]
Port = Annotated[int, Field(ge=1, le=65535)]
Secret = Annotated[str, Field(min_length=16)]


class Strict(BaseModel):
    """Unknown keys are errors: in a hand-written YAML file they are almost always typos."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- inventory/staging.yml ----------------------------------------------------------------------


class ProjectPorts(Strict):
    """Host ports, published on 127.0.0.1 only. Omitted ones are allocated, then written back."""

    postgres: Port | None = None
    django: Port | None = None
    redis: Port | None = None


PORT_KINDS: tuple[str, ...] = ("postgres", "django", "redis")
PORT_BASES: dict[str, int] = {"postgres": 5432, "django": 8000, "redis": 6379}


ENV_NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
EnvName = Annotated[str, Field(pattern=ENV_NAME_RE.pattern)]
UrlPath = Annotated[str, Field(pattern=r"^/[^\s?#]*$")]
ContainerPath = Annotated[str, Field(pattern=r"^/[^\s]*$")]
AptPackage = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9+.-]+$")]


class AppProcesses(Strict):
    """The app's process commands, as a Procfile names them. Unset: `web` is gunicorn on
    `app.wsgi`, `release` is `python manage.py migrate --noinput`, `worker` and `scheduler` are
    `python manage.py worker|scheduler`."""

    web: str | None = None
    release: str | None = None
    worker: str | None = None
    scheduler: str | None = None


class ProjectApp(Strict):
    """How the app is built and run. `stagectl project add` fills it in from the source; every
    key can be overridden by hand."""

    builder: Literal["uv", "pip", "poetry", "dockerfile"] = Field(
        default="uv", description="how dependencies are installed, or the app's own Dockerfile"
    )
    requirements: str = Field(default="requirements.txt", description="pip: the requirements file")
    directory: Annotated[str, Field(pattern=r"^(\.|[A-Za-z0-9_][A-Za-z0-9_.-]*)$")] = Field(
        default=".", description="the directory of manage.py in the repository (the app's working directory)"
    )
    dockerfile: str | None = Field(default=None, description="builder dockerfile: its path in the repo")
    python: Annotated[str, Field(pattern=r"^3\.[0-9]+$")] | None = Field(
        default=None, description="Python major.minor the app asks for"
    )
    settings: str | None = Field(default=None, description="DJANGO_SETTINGS_MODULE")
    wsgi: str | None = Field(default=None, description="WSGI application, `module:attribute`")
    static_root: ContainerPath = "/app/staticfiles"
    media_root: ContainerPath = "/app/media"
    static_url: UrlPath = "/static/"
    media_url: UrlPath = "/media/"
    health_path: UrlPath = Field(default="/", description="HTTP check: 5xx or no answer is unhealthy")
    ready_path: UrlPath | None = Field(default=None, description="readiness check, when the app has one")
    metrics_path: UrlPath | None = Field(default=None, description="Prometheus metrics, when the app has them")
    processes: AppProcesses = AppProcesses()
    apt_packages: list[AptPackage] = Field(default_factory=list)
    env: dict[EnvName, str] = Field(default_factory=dict, description="plain environment variables")
    secrets: list[EnvName] = Field(
        default_factory=list,
        description="environment variables whose values live in the vault "
        "(vault_projects.<name>.app_secrets)",
    )


class Project(Strict):
    name: Slug
    domain: Domain
    repo: str = Field(min_length=1, description="git URL, or a local path (copied as is)")
    ref: str = Field(default="main", min_length=1)
    ports: ProjectPorts = ProjectPorts()
    worker: bool = False
    scheduler: bool = False
    app: ProjectApp = ProjectApp()


class Host(BaseModel):
    """A host entry: only Ansible's own connection variables are allowed."""

    model_config = ConfigDict(extra="allow", frozen=True)

    ansible_host: str = Field(min_length=1)

    @model_validator(mode="after")
    def _only_ansible_vars(self) -> Host:
        unknown = [k for k in (self.model_extra or {}) if not k.startswith("ansible_")]
        if unknown:
            raise ValueError(
                f"unknown host variable(s) {', '.join(sorted(unknown))}: a host takes only "
                "ansible_* connection variables; settings go in group_vars"
            )
        return self


class StagingVars(Strict):
    server_domain: Domain
    projects: list[Project] = Field(default_factory=list)


class StagingGroup(Strict):
    hosts: dict[str, Host | None] = Field(min_length=1)
    vars: StagingVars


class Inventory(Strict):
    staging: StagingGroup


# --- group_vars/all.yml -------------------------------------------------------------------------


class SharedService(Strict):
    enabled: bool = Field(
        default=True,
        description="off leaves the service out of the stack and of everything that refers to it",
    )
    image: Image
    memory: Memory
    port: Port | None = Field(default=None, description="the port the service listens on")
    published: bool = Field(
        default=False, description="also published on the server's 127.0.0.1 at the same port"
    )
    retention: Duration | None = None


def _svc(
    image: str, memory: str, port: int | None = None, retention: str | None = None,
    *, published: bool = False,
) -> Any:
    return Field(
        default_factory=lambda: SharedService(
            image=image, memory=memory, port=port, retention=retention, published=published
        )
    )


class SharedServices(Strict):
    """The monitoring stack. Ports and retention are the seed's; memory from its Resource Allocation."""

    prometheus: SharedService = _svc("prom/prometheus:v3.5.0", "1g", 9090, "30d", published=True)
    grafana: SharedService = _svc("grafana/grafana:12.2.1", "512m", 3000, published=True)
    loki: SharedService = _svc("grafana/loki:3.5.7", "512m", 3100, "14d", published=True)
    alertmanager: SharedService = _svc("prom/alertmanager:v0.28.1", "128m", 9093, published=True)
    node_exporter: SharedService = _svc("prom/node-exporter:v1.9.1", "64m", 9100)
    cadvisor: SharedService = _svc("gcr.io/cadvisor/cadvisor:v0.52.1", "256m", 8080)
    alloy: SharedService = _svc("grafana/alloy:v1.11.3", "256m", 12345)
    blackbox_exporter: SharedService = _svc("prom/blackbox-exporter:v0.27.0", "64m", 9115)
    nginx_exporter: SharedService = _svc("nginx/nginx-prometheus-exporter:1.4.2", "32m", 9113)
    nginx: SharedService = _svc("nginx:1.28.0", "128m", 80)


class ProjectImages(Strict):
    postgres: Image = "postgres:17.6"
    redis: Image = "redis:8.2.2"
    nginx: Image = "nginx:1.28.0"
    python: Image = "python:3.13-slim-bookworm"
    postgres_exporter: Image = "prometheuscommunity/postgres-exporter:v0.18.1"
    redis_exporter: Image = "oliver006/redis_exporter:v1.79.0"
    nginx_exporter: Image = "nginx/nginx-prometheus-exporter:1.4.2"


class ProjectMemory(Strict):
    """Per-container limits; PostgreSQL 1 GB per project is the seed's figure."""

    postgres: Memory = "1g"
    redis: Memory = "256m"
    django: Memory = "512m"
    nginx: Memory = "128m"
    worker: Memory = "512m"
    scheduler: Memory = "256m"
    exporter: Memory = "64m"


class ProjectDefaults(Strict):
    images: ProjectImages = ProjectImages()
    memory: ProjectMemory = ProjectMemory()
    postgres_max_connections: Annotated[int, Field(ge=10, le=10000)] = 100
    redis_maxmemory: Memory = "192m"
    gunicorn_workers: Annotated[int, Field(ge=1, le=64)] = 2
    build_secrets: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")], str] = Field(
        default_factory=dict,
        description="BuildKit secrets for the app image: id -> file on the controller (e.g. a CA "
        "bundle behind a TLS-inspecting proxy). Empty: nothing is copied, no secret is passed.",
    )


class Paths(Strict):
    shared: str = "/opt/shared"
    projects: str = "/opt/projects"
    backups: str = "/opt/backups"
    #: node-exporter's textfile collector directory: backup and container health metrics.
    textfile: str = "/var/lib/stagectl/textfile"

    @model_validator(mode="after")
    def _absolute(self) -> Paths:
        for key, value in self.model_dump().items():
            if not value.startswith("/") or value.rstrip("/") in ("", "/"):
                raise ValueError(f"paths.{key} must be an absolute directory other than /")
        return self


class Backups(Strict):
    schedule: str = Field(default="*-*-* 03:00:00", description="systemd OnCalendar")
    verify_schedule: str = Field(default="Sun *-*-* 04:30:00", description="systemd OnCalendar")
    retention_days: Annotated[int, Field(ge=1, le=3650)] = 30
    remote_retention_days: Annotated[int, Field(ge=1, le=3650)] = 90


class Docker(Strict):
    log_max_size: str = "10m"
    log_max_file: Annotated[int, Field(ge=1, le=100)] = 5
    preload_archives: list[str] = Field(
        default_factory=list,
        description="`docker save` archives on the server, loaded once Docker is installed: for "
        "servers that cannot reach a registry (and the sandbox)",
    )


class Security(Strict):
    ssh_port: Port = 22
    public_ports: list[Port] = Field(default_factory=lambda: [22, 80, 443])


class GlobalSettings(Strict):
    """group_vars/all.yml. Ansible's own `ansible_*` variables may sit beside these: the loader
    sets them aside before validation (see `ansible_variables`)."""

    paths: Paths = Paths()
    shared_services: SharedServices = SharedServices()
    project_defaults: ProjectDefaults = ProjectDefaults()
    backups: Backups = Backups()
    docker: Docker = Docker()
    security: Security = Security()


# --- group_vars/staging.yml ---------------------------------------------------------------------


class Django(Strict):
    debug: bool = False
    email_host: str = "localhost"
    email_port: Port = 1025


class Alerting(Strict):
    email_to: str | None = None
    email_from: str | None = None
    smarthost: str = "localhost:25"
    webhook_urls: list[WebhookUrl] = Field(default_factory=list)


class Monitoring(Strict):
    probe_hosts: dict[Domain, ProbeAddress] = Field(
        default_factory=dict,
        description="addresses the blackbox probes use instead of DNS, domain -> IP address or "
        "host-gateway (the server itself): for split-horizon DNS, or domains that do not resolve "
        "to the server yet. Empty: the probes resolve every domain like a visitor does.",
    )


class Certificates(Strict):
    provider: Literal["letsencrypt", "selfsigned"] = "letsencrypt"
    email: str | None = None
    acme_directory: str = "https://acme-v02.api.letsencrypt.org/directory"


class StagingSettings(Strict):
    """group_vars/staging.yml; `ansible_*` variables are set aside like in GlobalSettings."""

    environment_name: Slug = "staging"
    django: Django = Django()
    alerting: Alerting = Alerting()
    monitoring: Monitoring = Monitoring()
    certificates: Certificates = Certificates()


def without_ansible_variables(data: Any) -> Any:
    """Group vars files may hold Ansible's own connection variables beside stagectl's settings."""
    if not isinstance(data, dict):
        return data
    return {k: v for k, v in data.items() if not str(k).startswith("ansible_")}


# --- group_vars/vault.yml -----------------------------------------------------------------------


# Letters and digits only: these passwords go into URLs, redis.conf and healthcheck commands.
UrlSafeSecret = Annotated[str, Field(min_length=16, pattern=r"^[A-Za-z0-9]+$")]


class ProjectSecrets(Strict):
    postgres_password: UrlSafeSecret
    redis_password: UrlSafeSecret
    django_secret_key: Annotated[str, Field(min_length=50)]
    app_secrets: dict[EnvName, str] = Field(
        default_factory=dict, description="values of the project's `app.secrets`"
    )


class Vault(Strict):
    vault_grafana_admin_password: Secret
    vault_grafana_secret_key: Secret
    vault_prometheus_password: Secret
    vault_prometheus_password_bcrypt: str = Field(pattern=r"^\$2[aby]\$\d\d\$.{53}$")
    vault_projects: dict[str, ProjectSecrets] = Field(default_factory=dict)


# --- the whole environment ----------------------------------------------------------------------


class Environment(BaseModel):
    """A validated environment. Build it with `stagectl.environment.load_environment`."""

    model_config = ConfigDict(frozen=True)

    inventory: Inventory
    settings: GlobalSettings
    staging: StagingSettings

    @property
    def projects(self) -> list[Project]:
        return self.inventory.staging.vars.projects

    @property
    def server_domain(self) -> str:
        return self.inventory.staging.vars.server_domain

    def shared_ports(self) -> dict[str, int]:
        return self.reserved_ports(self.settings)

    @staticmethod
    def reserved_ports(settings: GlobalSettings) -> dict[str, int]:
        """Host ports the shared stack reserves, by service; projects may not take them."""
        services = settings.shared_services.model_dump()
        reserved = {name: svc["port"] for name, svc in services.items() if svc["published"]}
        reserved.update({"http": 80, "https": 443, "ssh": settings.security.ssh_port})
        return reserved
