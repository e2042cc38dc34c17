"""The one definition of an environment: pydantic models of each environment file, and every
value derived from them (ports, names, networks, paths) that the templates and the CLI use.

The environment is an Ansible layout:

    inventory/staging.yml    hosts and projects          -> Inventory
    group_vars/all.yml       global settings             -> GlobalSettings
    group_vars/staging.yml   environment-specific        -> StagingSettings
    group_vars/vault.yml     secrets (ansible-vault)     -> Vault
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
import shlex
import urllib.parse
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from stagectl import oncalendar

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
        or not labels[-1][:1].isalpha()
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
    if not any(int(n) for n in re.findall(r"[0-9]+", value)):
        raise ValueError(f"'{value}' is zero: a retention of nothing keeps no data; write e.g. 14d")
    return value


MEMORY_UNITS = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
# Docker refuses a container memory limit below 6 MiB.
MIN_CONTAINER_MEMORY = 6 * 1024**2


def memory_bytes(value: str) -> float:
    return float(value[:-1]) * MEMORY_UNITS[value[-1]]


def _memory(value: str) -> str:
    if not MEMORY_RE.match(value):
        raise ValueError(f"'{value}' is not a memory size: write e.g. 512m or 1g (units b, k, m, g)")
    if memory_bytes(value) == 0:
        raise ValueError(f"'{value}' is zero: write a size such as 512m or 1g")
    return value


def _container_memory(value: str) -> str:
    if memory_bytes(value) < MIN_CONTAINER_MEMORY:
        raise ValueError(f"'{value}' is below Docker's minimum memory limit of 6m: write e.g. 64m")
    return value


def _log_size(value: str) -> str:
    # The common role's preflight and Docker's log-opts both need a whole number and k, m or g.
    if not re.fullmatch(r"[0-9]+[kmg]", value) or not int(value[:-1]):
        raise ValueError(
            f"'{value}' is not a log file size Docker takes: write a whole number and k, m or g, "
            "e.g. 10m"
        )
    return value


def _calendar(value: str) -> str:
    try:
        oncalendar.check(value)
    except ValueError as exc:
        raise ValueError(
            f"'{value}' is not a systemd OnCalendar schedule ({exc}): write e.g. "
            "'*-*-* 03:00:00' (daily at 03:00) or 'Sun *-*-* 04:30:00'; `systemd-analyze "
            "calendar '<schedule>'` tests one"
        ) from None
    return value


def _smarthost(value: str) -> str:
    host, colon, port = value.rpartition(":")
    if not colon or not host or not port.isdigit() or not 1 <= int(port) <= 65535 or " " in value:
        raise ValueError(
            f"'{value}' is not host:port: write the SMTP relay with its port, e.g. "
            "smtp.example.org:587 (or localhost:25 for a relay on the server)"
        )
    return value


def _email_addresses(value: str) -> str:
    for address in value.split(","):
        if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", address.strip()):
            raise ValueError(
                f"'{address.strip()}' is not an email address: write e.g. ops@example.org "
                "(several separated by commas)"
            )
    return value


def _absolute_file(value: str) -> str:
    if not value.startswith("/") or value.endswith("/"):
        raise ValueError(f"'{value}' is not an absolute file path: write the path on the server, e.g. /srv/images.tar")
    return value


SCP_LIKE_RE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:")


def _repo(value: str) -> str:
    if value.startswith("/"):
        return value
    parts = urllib.parse.urlsplit(value)
    remote = parts.scheme in ("http", "https", "ssh", "git") and parts.netloc
    # file:///srv/git/app.git: a repository on the server's own disk.
    on_server = parts.scheme == "file" and parts.path.startswith("/")
    if remote or on_server or SCP_LIKE_RE.match(value):
        if parts.password is not None or parts.scheme in ("http", "https") and parts.username:
            raise ValueError(
                "the git URL holds credentials (user:token@): they would be stored in the "
                "inventory, the server's checkout and its logs. Remove them and give the server "
                "read access with a deploy key, or use a public URL"
            )
        return value
    raise ValueError(
        f"'{value}' is neither a git URL nor an absolute path: write e.g. "
        "https://github.com/me/app.git, git@github.com:me/app.git, or /home/me/src/app for a "
        "local checkout"
    )


def _git_ref(value: str) -> str:
    if value.startswith("-") or any(c.isspace() for c in value) or ".." in value or value.endswith((".lock", "/")):
        raise ValueError(f"'{value}' is not a git branch, tag or commit: write e.g. main or v1.2.0")
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


def _http_url(kind: str, example: str) -> Callable[[str], str]:
    """A validator of an http(s) address; its error names what the address is for."""

    def check(value: str) -> str:
        parts = urllib.parse.urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"'{value}' is not {kind}: write the whole address with http:// or https://, e.g. {example}"
            )
        return value

    return check


#: restic repository kinds stagectl can configure (credentials through the vault's env).
RESTIC_BACKENDS = ("sftp", "s3", "rest", "b2", "azure", "gs", "swift", "rclone")
SFTP_SCP_RE = re.compile(r"^sftp:(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<host>[A-Za-z0-9.-]+):(?P<path>/?[^\s]*)$")
SFTP_URL_RE = re.compile(
    r"^sftp://(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<host>[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?/(?P<path>[^\s]*)$"
)


def sftp_target(repository: str) -> dict[str, str | int] | None:
    """user, host, port and path of an sftp repository (None for other kinds): restic runs ssh
    with stagectl's own key and known_hosts for it."""
    match = SFTP_URL_RE.match(repository) or SFTP_SCP_RE.match(repository)
    if match is None:
        return None
    found = match.groupdict()
    return {"user": found.get("user") or "root", "host": found["host"],
            "port": int(found.get("port") or 22), "path": found["path"]}


def _restic_repository(value: str) -> str:
    example = (
        "write e.g. sftp:backup@backup.example.org:/srv/restic/staging, "
        "s3:https://s3.example.org/bucket/staging or rest:https://backup.example.org:8000/staging"
    )
    kind, sep, rest = value.partition(":")
    if not sep or kind not in RESTIC_BACKENDS or not rest or any(c.isspace() for c in value):
        raise ValueError(
            f"'{value}' is not a restic repository stagectl can use ({', '.join(RESTIC_BACKENDS)}): {example}"
        )
    if kind == "sftp" and sftp_target(value) is None:
        raise ValueError(f"'{value}' is not an sftp repository: {example}")
    if kind in ("rest", "s3") and "://" in rest:
        parts = urllib.parse.urlsplit(rest)
        if parts.password is not None or parts.username:
            raise ValueError(
                "the repository URL holds credentials (user:password@): they would land in the "
                "inventory, the server's settings and process lists. Remove them and put them in the "
                "vault under vault_backups_remote.env (e.g. RESTIC_REST_USERNAME, RESTIC_REST_PASSWORD)"
            )
    return value


Slug = Annotated[str, AfterValidator(_slug)]
Domain = Annotated[str, AfterValidator(_domain)]
Duration = Annotated[str, AfterValidator(_duration)]
Memory = Annotated[str, AfterValidator(_memory)]
Image = Annotated[str, AfterValidator(_image)]
ContainerMemory = Annotated[str, AfterValidator(_memory), AfterValidator(_container_memory)]
LogSize = Annotated[str, AfterValidator(_log_size)]
Calendar = Annotated[str, AfterValidator(_calendar)]
ProbeAddress = Annotated[str, AfterValidator(_probe_address)]
WebhookUrl = Annotated[
    str, AfterValidator(_http_url("a webhook URL", "https://hooks.example.org/alertmanager"))
]
AcmeDirectoryUrl = Annotated[
    str, AfterValidator(_http_url("an ACME directory URL", "https://acme-v02.api.letsencrypt.org/directory"))
]
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
def _url_path(value: str) -> str:
    if not re.fullmatch(r"/[^\s?#]*", value):
        raise ValueError(f"'{value}' is not a URL path: write it from the root, e.g. /healthz or /static/")
    return value


def _container_path(value: str) -> str:
    if not re.fullmatch(r"/\S*", value):
        raise ValueError(
            f"'{value}' is not an absolute path inside the image: the app lives in /app, so write "
            "e.g. /app/staticfiles"
        )
    return value


UrlPath = Annotated[str, AfterValidator(_url_path)]
ContainerPath = Annotated[str, AfterValidator(_container_path)]
AptPackage = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9+.-]+$")]


def _process_command(value: str) -> str:
    try:
        words = shlex.split(value)
    except ValueError as exc:
        raise ValueError(f"'{value}' is not a shell command line ({exc}): write it with its quotes closed") from None
    if words and all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", word) for word in words):
        raise ValueError(
            f"'{value}' sets variables but runs no command: write the command after them "
            "(NAME=value gunicorn ...), or put the variables in app.env"
        )
    return value


ProcessCommand = Annotated[str, AfterValidator(_process_command)]


class AppProcesses(Strict):
    """The app's process commands, as a Procfile names them. Unset: `web` is gunicorn on
    `app.wsgi`, `release` is `python manage.py migrate --noinput`, `worker` and `scheduler` are
    `python manage.py worker|scheduler`."""

    web: ProcessCommand | None = None
    release: ProcessCommand | None = None
    worker: ProcessCommand | None = None
    scheduler: ProcessCommand | None = None


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
    apt_packages: list[AptPackage] = Field(default_factory=list, description="Debian packages of the running image")
    build_packages: list[AptPackage] = Field(
        default_factory=list,
        description="Debian packages of the build stage only: headers that source-only dependencies "
        "compile against (lxml: libxml2-dev libxslt1-dev); their run-time libraries go in apt_packages",
    )
    env: dict[EnvName, str] = Field(default_factory=dict, description="plain environment variables")
    secrets: list[EnvName] = Field(
        default_factory=list,
        description="environment variables whose values live in the vault "
        "(vault_projects.<name>.app_secrets)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ProjectApp:
        python_name = r"[A-Za-z_][A-Za-z0-9_]*"
        module = rf"{python_name}(\.{python_name})*"
        if self.wsgi is not None and not re.fullmatch(rf"{module}(:{python_name})?", self.wsgi):
            raise ValueError(
                f"wsgi '{self.wsgi}' is not module:attribute: write e.g. config.wsgi:application"
            )
        if self.settings is not None and not re.fullmatch(module, self.settings):
            raise ValueError(
                f"settings '{self.settings}' is not a Python module path: write e.g. "
                "config.settings.staging"
            )
        for key, example in (("requirements", "requirements.txt"), ("dockerfile", "Dockerfile")):
            value = getattr(self, key)
            if value is not None and (value.startswith("/") or ".." in value.split("/") or not value.strip()):
                raise ValueError(
                    f"{key} '{value}' must be a path inside the repository: write e.g. {example}"
                )
        both = sorted(set(self.env) & set(self.secrets))
        if both:
            raise ValueError(
                f"{', '.join(both)} is both in env (plain) and in secrets (vault): keep it in secrets "
                "and remove it from env"
            )
        if len(set(self.secrets)) != len(self.secrets):
            raise ValueError("secrets lists a name twice: remove the repeated one")
        return self


class Project(Strict):
    name: Slug
    domain: Domain
    repo: Annotated[str, AfterValidator(_repo)] = Field(
        min_length=1, description="git URL, or a local path (copied as is)"
    )
    ref: Annotated[str, AfterValidator(_git_ref)] = Field(default="main", min_length=1)
    ports: ProjectPorts = ProjectPorts()
    worker: bool = False
    scheduler: bool = False
    app: ProjectApp = ProjectApp()


class Host(BaseModel):
    """A host entry: only Ansible's own connection variables are allowed."""

    model_config = ConfigDict(extra="allow", frozen=True)

    ansible_host: str = Field(min_length=1)

    @model_validator(mode="after")
    def _no_plain_passwords(self) -> Host:
        found = plain_passwords(self.model_extra or {})
        if found:
            raise ValueError(password_advice(found))
        user = login_user_problem(self.model_extra or {})
        if user:
            raise ValueError(user)
        port = (self.model_extra or {}).get("ansible_port")
        if port is not None and not (isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535):
            raise ValueError(f"ansible_port '{port}' is not a TCP port: write the SSH port as a number, e.g. 22")
        if any(c.isspace() for c in self.ansible_host):
            raise ValueError(
                f"ansible_host '{self.ansible_host}' has a space: write the server's address or name alone"
            )
        return self

    @model_validator(mode="after")
    def _only_ansible_vars(self) -> Host:
        unknown = [k for k in (self.model_extra or {}) if not k.startswith("ansible_")]
        if unknown:
            raise ValueError(
                f"unknown host variable(s) {', '.join(sorted(unknown))}: a host takes only "
                "ansible_* connection variables; move settings to group_vars/all.yml"
            )
        return self


class StagingVars(Strict):
    server_domain: Domain
    projects: list[Project] = Field(default_factory=list)

    @model_validator(mode="after")
    def _projects_not_on_the_server_domain(self) -> StagingVars:
        for project in self.projects:
            if project.domain == self.server_domain:
                raise ValueError(
                    f"project '{project.name}' has the domain '{project.domain}', which is "
                    "server_domain (the shared monitoring services are served under it): give the "
                    f"project its own name, e.g. {project.name}.{self.server_domain}"
                )
        return self


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
    memory: ContainerMemory
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
    """The monitoring stack. Defaults: the standard ports, retention, memory budgets."""

    @model_validator(mode="after")
    def _consistent(self) -> SharedServices:
        # The shared_monitoring role's preflight refuses the same on the server, after the files.
        needs = (
            ("prometheus", None, ("Prometheus is the core of the stack (scraping, alerting, the "
                                  "deploy's own checks): set prometheus.enabled to true")),
            ("alloy", "loki", "alloy ships logs to Loki, which is switched off: switch loki on or alloy off"),
            ("nginx_exporter", "nginx", ("nginx_exporter reads the main nginx's status, which is "
                                         "switched off: switch nginx on or nginx_exporter off")),
            ("alloy", "docker_api", ("alloy reads the containers and their logs through docker_api, "
                                     "which is switched off: switch docker_api on or alloy off")),
            ("cadvisor", "docker_api", ("cadvisor reads the containers through docker_api, which is "
                                        "switched off: switch docker_api on or cadvisor off")),
        )
        for service, needed, advice in needs:
            if needed is None and not getattr(self, service).enabled:
                raise ValueError(f"prometheus.enabled is false: {advice}")
            if needed and getattr(self, service).enabled and not getattr(self, needed).enabled:
                raise ValueError(advice)
        if self.docker_api.published:
            raise ValueError(
                "docker_api.published must stay false: the proxy hands out every container's "
                "environment, secrets included, so only Alloy and cAdvisor may reach it; "
                "set docker_api.published to false"
            )
        published: dict[int, str] = {}
        for name, service in self:
            if service.enabled and service.published:
                if service.port is None:
                    raise ValueError(f"{name}.published is true but {name}.port is not set: give the port")
                if service.port in published:
                    raise ValueError(
                        f"{name} and {published[service.port]} are both published on port "
                        f"{service.port}: give one of them another port"
                    )
                published[service.port] = name
        return self

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
    #: The Docker API, read-only and cut down to what Alloy and cAdvisor call: only this
    #: service mounts the Docker socket (an nginx of the main nginx's image).
    docker_api: SharedService = _svc("nginx:1.28.0", "32m", 2375)


class ProjectImages(Strict):
    postgres: Image = "postgres:17.6"
    redis: Image = "redis:8.2.2"
    nginx: Image = "nginx:1.28.0"
    python: Image = "python:3.13-slim-bookworm"
    postgres_exporter: Image = "prometheuscommunity/postgres-exporter:v0.18.1"
    redis_exporter: Image = "oliver006/redis_exporter:v1.79.0"
    nginx_exporter: Image = "nginx/nginx-prometheus-exporter:1.4.2"


class ProjectMemory(Strict):
    """Per-container limits; PostgreSQL gets 1 GB per project by default."""

    postgres: ContainerMemory = "1g"
    redis: ContainerMemory = "256m"
    django: ContainerMemory = "512m"
    nginx: ContainerMemory = "128m"
    worker: ContainerMemory = "512m"
    scheduler: ContainerMemory = "256m"
    exporter: ContainerMemory = "64m"


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

    @model_validator(mode="after")
    def _redis_fits(self) -> ProjectDefaults:
        if memory_bytes(self.redis_maxmemory) >= memory_bytes(self.memory.redis):
            raise ValueError(
                f"redis_maxmemory ({self.redis_maxmemory}) is not below memory.redis "
                f"({self.memory.redis}): Redis would be killed before it evicts anything; make "
                "redis_maxmemory about three quarters of memory.redis"
            )
        return self


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
                raise ValueError(
                    f"paths.{key} must be an absolute directory other than /: write e.g. /opt/{key}"
                )
        return self

    @model_validator(mode="after")
    def _apart(self) -> Paths:
        # Backups inside the projects tree would be backed up, copied and deleted with a project.
        normal = {key: posixpath.normpath(value) for key, value in self.model_dump().items()}
        for key, value in normal.items():
            if any(c.isspace() for c in value) or "/../" in value + "/":
                raise ValueError(f"paths.{key} ('{value}') must be a plain absolute path without spaces or '..'")
            for other, other_value in normal.items():
                if other != key and (value == other_value or value.startswith(other_value + "/")):
                    raise ValueError(
                        f"paths.{key} ({value}) is {'the same as' if value == other_value else 'inside'} "
                        f"paths.{other} ({other_value}): give each its own directory, none inside "
                        "another, e.g. /opt/shared, /opt/projects, /opt/backups"
                    )
        return self


class RemoteBackups(Strict):
    """The off-site copy: a restic repository every backup is sent to. Its password and
    credentials are in the vault (vault_backups_remote)."""

    repository: Annotated[str, AfterValidator(_restic_repository)]
    check_schedule: Calendar = Field(default="Sun *-*-* 05:30:00", description="systemd OnCalendar of restic check")
    #: Share of the repository's data `restic check` reads back (0: only its structure).
    check_read_data_percent: Annotated[int, Field(ge=0, le=100)] = 5


class Backups(Strict):
    schedule: Calendar = Field(default="*-*-* 03:00:00", description="systemd OnCalendar")
    verify_schedule: Calendar = Field(default="Sun *-*-* 04:30:00", description="systemd OnCalendar")
    retention_days: Annotated[int, Field(ge=1, le=3650)] = 30
    remote_retention_days: Annotated[int, Field(ge=1, le=3650)] = 90
    #: None: backups stay on the server only.
    remote: RemoteBackups | None = None


class Docker(Strict):
    log_max_size: LogSize = "10m"
    log_max_file: Annotated[int, Field(ge=1, le=100)] = 5
    preload_archives: list[Annotated[str, AfterValidator(_absolute_file)]] = Field(
        default_factory=list,
        description="`docker save` archives on the server, loaded once Docker is installed: for "
        "servers that cannot reach a registry (and the sandbox)",
    )


def _ban_duration(value: str) -> str:
    if value.endswith("ms"):
        raise ValueError(f"'{value}' is too short to ban anyone: write seconds or more, e.g. 10m, 1h")
    return value


def _network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(
            f"'{value}' is not an IP address or network: write e.g. 203.0.113.7 or 198.51.100.0/24"
        ) from None
    return value


def _group_name(value: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", value):
        raise ValueError(
            f"'{value}' is not a Unix group name: write lowercase letters, digits, '_' and '-', "
            "starting with a letter or '_', at most 32 characters, e.g. ssh-users"
        )
    return value


BanDuration = Annotated[Duration, AfterValidator(_ban_duration)]
Network = Annotated[str, AfterValidator(_network)]


class Fail2ban(Strict):
    """Bans addresses that keep failing SSH logins (fail2ban's sshd jail)."""

    enabled: bool = True
    max_retry: Annotated[int, Field(ge=1, le=1000)] = 5
    find_time: BanDuration = "10m"
    ban_time: BanDuration = "1h"
    ignore_addresses: list[Network] = Field(
        default_factory=list,
        description="addresses never banned besides the server's own (e.g. the office's)",
    )


class HttpRateLimit(Strict):
    """Requests per client address to the public names (the main nginx's limit_req): an address
    over `rate` a second, after a `burst`, is answered 429 until it slows down."""

    enabled: bool = True
    rate: Annotated[int, Field(ge=1, le=100000)] = 25
    burst: Annotated[int, Field(ge=0, le=100000)] = 100
    ignore_addresses: list[Network] = Field(
        default_factory=list,
        description="addresses never limited: an office or a CI behind one NAT address, a load test",
    )


class Security(Strict):
    ssh_port: Port = 22
    public_ports: list[Port] = Field(default_factory=lambda: [22, 80, 443])
    ssh_rate_limit: bool = Field(
        default=True,
        description="ufw limit on the SSH port: an address opening 6 connections in 30 s is refused",
    )
    ssh_allow_group: Annotated[str, AfterValidator(_group_name)] = Field(
        default="ssh-users",
        description="only members log in over SSH; the key login user is made a member",
    )
    fail2ban: Fail2ban = Field(default_factory=Fail2ban)
    http_rate_limit: HttpRateLimit = Field(default_factory=HttpRateLimit)

    @model_validator(mode="after")
    def _ssh_stays_open(self) -> Security:
        # The firewall is enabled with exactly these ports: without SSH, nobody gets back in.
        if self.ssh_port not in self.public_ports:
            raise ValueError(
                f"ssh_port {self.ssh_port} is not in public_ports {self.public_ports}: the firewall "
                f"would lock everyone out; add {self.ssh_port} to public_ports"
            )
        return self


class GlobalSettings(Strict):
    """group_vars/all.yml. Ansible's own `ansible_*` variables may sit beside these: the loader
    sets them aside before validation (see `ansible_variables`)."""

    paths: Paths = Paths()
    shared_services: SharedServices = SharedServices()
    project_defaults: ProjectDefaults = ProjectDefaults()
    backups: Backups = Backups()
    docker: Docker = Docker()
    security: Security = Security()

    @model_validator(mode="after")
    def _published_ports_free(self) -> GlobalSettings:
        fixed = {80: "HTTP", 443: "HTTPS", self.security.ssh_port: "SSH (security.ssh_port)"}
        for name, service in self.shared_services:
            if service.enabled and service.published and service.port in fixed and name != "nginx":
                raise ValueError(
                    f"shared_services.{name}.port {service.port} is published on the server, where "
                    f"{fixed[service.port]} has it: give {name} another port"
                )
        return self


# --- group_vars/staging.yml ---------------------------------------------------------------------


class Django(Strict):
    debug: bool = False
    email_host: str = "localhost"
    email_port: Port = 1025


class Alerting(Strict):
    email_to: Annotated[str, AfterValidator(_email_addresses)] | None = None
    email_from: Annotated[str, AfterValidator(_email_addresses)] | None = None
    smarthost: Annotated[str, AfterValidator(_smarthost)] = "localhost:25"
    smtp_username: Annotated[str, Field(pattern=r"^\S+$")] | None = Field(
        default=None,
        description="the login at an authenticated relay (its password: vault_alerting_smtp_password "
        "in group_vars/vault.yml); the connection is then always encrypted (STARTTLS, or TLS on 465)",
    )
    smtp_ca_file: Annotated[str, AfterValidator(_absolute_file)] | None = Field(
        default=None,
        description="CA certificate on the server that the relay's TLS certificate is checked "
        "against (a relay with a private CA); empty: the system's CAs",
    )
    webhook_urls: list[WebhookUrl] = Field(default_factory=list)

    @model_validator(mode="after")
    def _smtp_needs_a_recipient(self) -> Alerting:
        if (self.smtp_username or self.smtp_ca_file) and not self.email_to:
            raise ValueError(
                "smtp_username and smtp_ca_file configure e-mail alerting, but email_to is empty: "
                "set alerting.email_to, or remove them"
            )
        return self


class Monitoring(Strict):
    probe_hosts: dict[Domain, ProbeAddress] = Field(
        default_factory=dict,
        description="addresses the blackbox probes use instead of DNS, domain -> IP address or "
        "host-gateway (the server itself): for split-horizon DNS, or domains that do not resolve "
        "to the server yet. Empty: the probes resolve every domain like a visitor does.",
    )


#: Let's Encrypt's production ACME directory: the only one whose certificates browsers (and the
#: blackbox probes) trust.
LETSENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory"


#: certbot's own DNS plugins that read their credentials from an ini file (`--dns-<plugin>-
#: credentials`), packaged by Debian (python3-certbot-dns-<plugin>) and Arch (certbot-dns-<plugin>).
DnsPlugin = Literal[
    "rfc2136", "cloudflare", "digitalocean", "dnsimple", "gehirn", "linode", "luadns", "nsone",
    "ovh", "sakuracloud",
]


class Wildcard(Strict):
    """One certificate for `*.<server_domain>`, by DNS-01: it serves every public name one label
    under the server's domain (the monitoring names, and projects named so), so that adding a
    project there needs no issuance."""

    dns_plugin: DnsPlugin = Field(
        description="certbot's DNS plugin for the zone of server_domain; its credentials (the "
        "plugin's ini settings, dns_<plugin>_...) are vault_certificates_dns_credentials",
    )
    propagation_seconds: Annotated[int, Field(ge=1, le=3600)] | None = Field(
        default=None,
        description="how long certbot waits for the TXT record to reach every name server; "
        "empty: the plugin's own default",
    )


class Certificates(Strict):
    provider: Literal["letsencrypt", "selfsigned"] = "letsencrypt"
    email: Annotated[str, AfterValidator(_email_addresses)] | None = None
    acme_directory: AcmeDirectoryUrl = LETSENCRYPT_DIRECTORY
    acme_ca_bundle: Annotated[str, AfterValidator(_absolute_file)] | None = Field(
        default=None,
        description="CA bundle on the server that certbot trusts for the ACME directory's HTTPS "
        "(a private ACME server); empty: the system's CAs, as for Let's Encrypt",
    )
    wildcard: Wildcard | None = None

    @model_validator(mode="after")
    def _wildcard_needs_acme(self) -> Certificates:
        if self.wildcard is not None and self.provider != "letsencrypt":
            raise ValueError(
                "certificates.wildcard is issued by an ACME server (DNS-01), but "
                f"certificates.provider is {self.provider}: set provider letsencrypt, or remove "
                "certificates.wildcard"
            )
        return self


class StagingSettings(Strict):
    """group_vars/staging.yml; `ansible_*` variables are set aside like in GlobalSettings."""

    environment_name: Slug = "staging"
    django: Django = Django()
    alerting: Alerting = Alerting()
    monitoring: Monitoring = Monitoring()
    certificates: Certificates = Certificates()


# Ansible's connection passwords: in plain text they would sit in git; they belong in the vault.
PASSWORD_VARIABLES = frozenset({
    "ansible_password", "ansible_ssh_pass", "ansible_ssh_password", "ansible_become_password",
    "ansible_become_pass", "ansible_sudo_pass", "ansible_sudo_password", "ansible_su_pass",
    "ansible_su_password", "ansible_ssh_private_key_passphrase",
})


def plain_passwords(data: Any) -> list[str]:
    """The password variables in `data` with a literal value (a `{{ vault_... }}` reference is fine)."""
    if not isinstance(data, dict):
        return []
    return sorted(
        str(key) for key, value in data.items()
        if str(key) in PASSWORD_VARIABLES and value not in (None, "")
        and not (isinstance(value, str) and value.strip().startswith("{{"))
    )


LOGIN_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def login_user_problem(data: Any) -> str:
    """What is wrong with `ansible_user` in `data` ("" when nothing): the security role turns
    root logins off, so the deploy must log in as the user `stagectl bootstrap` made."""
    if not isinstance(data, dict) or data.get("ansible_user") is None:
        return ""
    user = str(data["ansible_user"])
    if user == "root":
        return (
            "ansible_user is root, but the deploy turns root logins off: run `stagectl bootstrap "
            "--as root@HOST` once and set ansible_user: ansible"
        )
    if not LOGIN_USER_RE.match(user):
        return (
            f"ansible_user '{user}' is not a user name: write lowercase letters, digits, '_' and "
            "'-', e.g. ansible"
        )
    return ""


def password_advice(found: list[str]) -> str:
    return (
        f"{', '.join(found)} holds a password in plain text: move it into the vault "
        "(`ansible-vault edit group_vars/vault.yml`, e.g. vault_become_password: ...) and write "
        "here `{{ vault_become_password }}`; better still, use the SSH key and passwordless sudo "
        "that `stagectl bootstrap` sets up"
    )


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
    #: The password of the read-only role the PostgreSQL exporter logs in with. Vaults written
    #: before it existed lack it: `stagectl secrets generate` adds it.
    postgres_monitor_password: UrlSafeSecret | None = None
    redis_password: UrlSafeSecret
    django_secret_key: Annotated[str, Field(min_length=50)]
    app_secrets: dict[EnvName, str] = Field(
        default_factory=dict, description="values of the project's `app.secrets`"
    )


class RemoteSecrets(Strict):
    """vault_backups_remote: what restic needs to reach and open the off-site repository."""

    #: The repository's encryption password (lost password: the copies cannot be read).
    password: Secret
    #: Credentials restic reads from its environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    #: RESTIC_REST_USERNAME, RESTIC_REST_PASSWORD, B2_ACCOUNT_ID, ...
    env: dict[EnvName, str] = Field(default_factory=dict)
    #: sftp repositories: the private key restic's ssh logs in with, and the server's known_hosts line(s).
    ssh_key: str | None = None
    ssh_known_hosts: str | None = None

    @model_validator(mode="after")
    def _no_password_in_env(self) -> RemoteSecrets:
        for name in ("RESTIC_PASSWORD", "RESTIC_PASSWORD_FILE", "RESTIC_PASSWORD_COMMAND", "RESTIC_REPOSITORY"):
            if name in self.env:
                raise ValueError(
                    f"env.{name} is set by stagectl itself: put the repository password in "
                    "vault_backups_remote.password and the repository in backups.remote.repository"
                )
        return self


class Vault(Strict):
    vault_grafana_admin_password: Secret
    vault_grafana_secret_key: Secret
    vault_prometheus_password: Secret
    vault_prometheus_password_bcrypt: str = Field(pattern=r"^\$2[aby]\$\d\d\$.{53}$")
    vault_projects: dict[str, ProjectSecrets] = Field(default_factory=dict)
    vault_backups_remote: RemoteSecrets | None = None
    #: The password of alerting.smtp_username at the relay (the relay's, whatever its length).
    vault_alerting_smtp_password: Annotated[str, Field(min_length=1)] | None = None
    #: certificates.wildcard's DNS plugin settings: its credentials ini, key -> value.
    vault_certificates_dns_credentials: dict[str, Annotated[str, Field(min_length=1)]] | None = None


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
