"""The environment directory of a sandbox: the example environment, changed only where the test bed
requires it, so that `bootstrap`, `plan` and `deploy` run against the sandbox unchanged.

What differs from `stagectl init`'s example, and why:

* host `sandbox` at 127.0.0.1:<ssh port>, logging in as `ansible` with a key made for the sandbox,
  host keys pinned in the sandbox's own known_hosts (the example's 192.168.1.14 is never contacted);
* `server_domain: sandbox.test` and projects `beryl3.sandbox.test` / `project2.sandbox.test`
  (`.test` is reserved by RFC 6761 and never resolves outside), with the example's ports;
* `repo:` the local path of `examples/demo-app`, which the `project` role ships as is, and its
  `app:` entry (DEMO_APP), what `stagectl project add` would detect in it;
* every image setting points at a local stand-in (no registry is reachable), loaded from the
  archive listed in `docker.preload_archives`; services without a stand-in are disabled;
* certificates from the sandbox's own ACME server when one runs (`stagectl.sandbox.acme`:
  `certificates.acme_directory` and `acme_ca_bundle` point at it, provider `letsencrypt`), else
  `certificates.provider: selfsigned` (Let's Encrypt never reaches a sandbox);
* `monitoring.probe_hosts`: every public name probed at the sandbox itself (`.test` never
  resolves), and `alerting.webhook_urls`: the sandbox's own receiver (`alert_sink`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stagectl.derived import monitoring_domains_of
from stagectl.environment import ALL_VARS, INVENTORY, STAGING_VARS, VAULT, load_environment
from stagectl.example import example_inventory
from stagectl.model import GlobalSettings, ProjectImages, StagingSettings
from stagectl.sandbox import alert_sink, mail_sink
from stagectl.sandbox.acme import AcmeServer
from stagectl.sandbox.archive import SERVER_ARCHIVE_DIR
from stagectl.sandbox.errors import SandboxEnvironmentError
from stagectl.sandbox.images.builder import NO_STANDIN, ImageBuilder, find_standin
from stagectl.sandbox.server import SandboxInfo, ssh_common_args
from stagectl.scaffold import ansible_cfg
from stagectl.vault import (
    decrypt,
    fill_missing,
    new_password_file,
    new_vault,
    random_password,
    read_password_file,
    write_vault,
)

SANDBOX_DOMAIN = "sandbox.test"

#: The `app:` entry of examples/demo-app: a uv project with probes and Prometheus metrics. Its web
#: process is its own gunicorn command: gunicorn.conf.py's hooks keep the multiprocess metrics right.
DEMO_APP: dict[str, Any] = {
    "builder": "uv",
    "settings": "demo.settings",
    "wsgi": "demo.wsgi:application",
    "health_path": "/healthz",
    "ready_path": "/readyz",
    "metrics_path": "/metrics",
    "processes": {"web": "gunicorn --config gunicorn.conf.py demo.wsgi:application"},
}
HOST_NAME = "sandbox"
ANSIBLE_USER = "ansible"


@dataclass(frozen=True)
class DisabledComponent:
    """A shared service turned off in the sandbox, and why (for the CLI to say so)."""

    service: str
    image: str
    reason: str


@dataclass(frozen=True)
class SandboxEnvironment:
    root: Path
    vault_password_file: Path
    files: tuple[Path, ...]
    disabled: tuple[DisabledComponent, ...]
    #: Official image reference -> the stand-in the environment uses instead.
    images: dict[str, str]
    #: True when this call made the vault; False when an existing one was kept (its secrets match
    #: the data already in the sandbox's volume).
    vault_created: bool

    @property
    def python_image(self) -> str:
        """The projects' Python image (a stand-in), which also runs the alert sink."""
        return self.images[ProjectImages().python]


@dataclass(frozen=True)
class BootstrapTarget:
    """What `stagectl bootstrap --as root@127.0.0.1` needs for a sandbox: log in as root with
    root's key, create `ansible` with the sandbox's ansible public key."""

    user: str
    host: str
    port: int
    #: root's private key: the first connection's key (the bootstrap playbook's
    #: `bootstrap_connect_key_file`).
    connect_key: Path
    #: The new user's key pair; the environment's `ansible_ssh_private_key_file`.
    ansible_key: Path
    ansible_public_key: Path
    known_hosts: Path
    ssh_common_args: str

    @property
    def login(self) -> str:
        """The `--as` argument."""
        return f"{self.user}@{self.host}"

    def extra_vars(self) -> dict[str, str]:
        """Extra variables for `ansible-playbook stagectl.staging.bootstrap` (see its header)."""
        return {"ansible_user": self.user, "bootstrap_connect_key_file": str(self.connect_key)}


def bootstrap_target(info: SandboxInfo) -> BootstrapTarget:
    return BootstrapTarget(
        user="root",
        host=info.ssh_host,
        port=info.ssh_port,
        connect_key=info.root_key,
        ansible_key=info.ansible_key,
        ansible_public_key=info.ansible_public_key,
        known_hosts=info.known_hosts,
        ssh_common_args=ssh_common_args(info),
    )


def default_environment_paths(info: SandboxInfo) -> tuple[Path, Path]:
    """(environment directory, vault password file) in the sandbox's state dir; the password file
    sits beside, not inside, the environment (as `stagectl init` requires)."""
    return info.state_dir / "environment", info.state_dir / "vault-pass"


# --- the three YAML files -----------------------------------------------------------------------


def _header(info: SandboxInfo, what: str) -> str:
    return (
        f"# {what} of sandbox '{info.name}', written by `stagectl sandbox up`.\n"
        "# Rewritten on every `up` (the vault is kept): change the sandbox through stagectl, not here.\n"
    )


def sandbox_inventory(info: SandboxInfo, demo_app: Path) -> dict[str, Any]:
    """The example inventory with the sandbox host, sandbox.test domains and the demo app."""
    example = example_inventory()
    projects = []
    for project in example["staging"]["vars"]["projects"]:
        projects.append(
            {
                **project,
                "domain": f"{project['name']}.{SANDBOX_DOMAIN}",
                "repo": str(demo_app),
                "app": DEMO_APP,
            }
        )
    host = {
        "ansible_host": info.ssh_host,
        "ansible_port": info.ssh_port,
        "ansible_user": ANSIBLE_USER,
        "ansible_ssh_private_key_file": str(info.ansible_key),
        "ansible_ssh_common_args": ssh_common_args(info),
    }
    return {
        "staging": {
            "hosts": {HOST_NAME: host},
            "vars": {"server_domain": SANDBOX_DOMAIN, "projects": projects},
        }
    }


def _standin_ref(builder: ImageBuilder, official: str) -> str | None:
    try:
        return builder.ref(find_standin(official).name)
    except KeyError:
        return None


def _no_standin_reason(official: str) -> str:
    repo = official.rsplit(":", 1)[0]
    for name, reason in NO_STANDIN:
        if name == repo:
            return f"no stand-in image can be built on the test bed: {reason}"
    return "no stand-in image exists for it"


TESTBED_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Docker's default address pools for bridge networks (172.17.0.0/16 and the following /16s).
DOCKER_ADDRESS_POOL = "172.16.0.0/12"


def sandbox_global_settings(
    builder: ImageBuilder, preload_archives: Sequence[str], host_addresses: Sequence[str] = ()
) -> tuple[dict[str, Any], tuple[DisabledComponent, ...], dict[str, str]]:
    """group_vars/all.yml: the model's defaults, images swapped for stand-ins, services without one
    disabled; `host_addresses` (this machine, as the server sees it) never rate-limited. Returns
    the data, what was disabled, and official -> stand-in."""
    data = GlobalSettings().model_dump(exclude_none=True)
    disabled: list[DisabledComponent] = []
    images: dict[str, str] = {}
    for service, settings in data["shared_services"].items():
        standin = _standin_ref(builder, settings["image"])
        if standin is None:
            settings["enabled"] = False
            disabled.append(
                DisabledComponent(service, settings["image"], _no_standin_reason(settings["image"]))
            )
        else:
            images[settings["image"]] = standin
            settings["image"] = standin
    for kind, official in list(data["project_defaults"]["images"].items()):
        standin = _standin_ref(builder, official)
        if standin is None:
            # Every project image has a stand-in today; a new one without would break deploys.
            raise SandboxEnvironmentError(
                f"project image {kind} ({official}) has no stand-in",
                hint="add one under src/stagectl/sandbox/images/ (see builder.py STANDINS)",
            )
        images[official] = standin
        data["project_defaults"]["images"][kind] = standin
    data["docker"]["preload_archives"] = list(preload_archives)
    # The machine's tools (and tests) reach the sandbox from Docker's bridges, many connections
    # from one address: neither ufw's rate limit nor fail2ban may shut them out.
    data["security"]["ssh_rate_limit"] = False
    data["security"]["fail2ban"]["ignore_addresses"] = [DOCKER_ADDRESS_POOL]
    # The load the release tests send comes from this machine alone; any other address, a
    # container on the server included, is limited as on a real server.
    data["security"]["http_rate_limit"]["ignore_addresses"] = [f"{address}/32" for address in host_addresses]
    # The test bed reaches PyPI only through the machine's CA bundle: the app build
    # gets it as a build secret, never baked into an image.
    if TESTBED_CA_BUNDLE.is_file():
        data["project_defaults"]["build_secrets"] = {"ca": str(TESTBED_CA_BUNDLE)}
    return (
        {"ansible_python_interpreter": "/usr/bin/python3", **data},
        tuple(disabled),
        images,
    )


def _public_domains(inventory: dict[str, Any]) -> list[str]:
    """Every name the main nginx answers for: the projects' and the shared stack's."""
    projects = [p["domain"] for p in inventory["staging"]["vars"]["projects"]]
    return [*projects, *monitoring_domains_of(SANDBOX_DOMAIN).values()]


def sandbox_staging_settings(domains: Sequence[str] = (), acme: AcmeServer | None = None) -> dict[str, Any]:
    """group_vars/staging.yml: certificates from the sandbox's ACME server (self-signed without
    one); the blackbox probes sent to the sandbox itself (`host-gateway`: where the main nginx
    publishes 443), since `.test` names resolve nowhere; alerts to the sandbox's own webhook
    receiver."""
    data = StagingSettings().model_dump(exclude_none=True)
    if acme is None:
        data["certificates"]["provider"] = "selfsigned"
    else:
        data["certificates"].update(
            provider="letsencrypt", acme_directory=acme.directory, acme_ca_bundle=acme.ca_bundle
        )
    data["monitoring"]["probe_hosts"] = {domain: "host-gateway" for domain in domains}
    # The receivers the sandbox runs itself: a webhook (stagectl.sandbox.alert_sink) and a relay
    # that wants a login over STARTTLS, with a certificate of its own (stagectl.sandbox.mail_sink).
    data["alerting"].update(
        webhook_urls=[alert_sink.URL],
        email_to=f"ops@{SANDBOX_DOMAIN}",
        smarthost=f"{mail_sink.NAME}:{mail_sink.PORT}",
        smtp_username=mail_sink.USERNAME,
        smtp_ca_file=mail_sink.CERTIFICATE,
    )
    return data


def _dump(data: Any) -> str:
    text: str = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100)
    return text


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def _ensure_vault(root: Path, vault_password_file: Path, names: list[str]) -> bool:
    """Keep an existing vault (its database passwords match the data in the sandbox's volume);
    add secrets for projects without. Make one otherwise. Returns True when made."""
    if not vault_password_file.exists():
        new_password_file(vault_password_file)
    password = read_password_file(vault_password_file)
    path = root / VAULT
    if path.exists():
        data = decrypt(path, password)
        if fill_missing(data, names) + _relay_password(data):
            write_vault(path, data, password)
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    data = new_vault(names)
    _relay_password(data)
    write_vault(path, data, password)
    return True


def _relay_password(vault: dict[str, Any]) -> list[str]:
    """The sandbox relay's password (alerting.smtp_username), made once."""
    if "vault_alerting_smtp_password" in vault:
        return []
    vault["vault_alerting_smtp_password"] = random_password()
    return ["vault_alerting_smtp_password"]


def _checked_demo_app(demo_app: Path) -> Path:
    path = Path(demo_app).expanduser().resolve()
    if not (path / "pyproject.toml").is_file():
        raise SandboxEnvironmentError(
            f"{demo_app} is not a Django project managed by uv (no pyproject.toml)",
            hint="pass the repository's examples/demo-app",
        )
    return path


def _check_archives(info: SandboxInfo, preload_archives: Sequence[str]) -> None:
    """Each archive must be a file of the directory this sandbox mounts: one saved into another
    directory would only fail later, in the middle of a deploy, as a missing file."""
    for path in preload_archives:
        name = path.removeprefix(f"{SERVER_ARCHIVE_DIR}/")
        if name == path or "/" in name or not (info.archive_dir / name).is_file():
            raise SandboxEnvironmentError(
                f"preload archive {path} is not a file of sandbox '{info.name}''s archive "
                f"directory {info.archive_dir} (mounted at {SERVER_ARCHIVE_DIR})",
                hint="save it with stagectl.sandbox.archive.ensure_archive(info.archive_dir) and "
                "pass its server_path",
            )


def write_sandbox_environment(
    root: Path,
    info: SandboxInfo,
    vault_password_file: Path,
    demo_app: Path,
    *,
    preload_archives: Sequence[str],
    builder: ImageBuilder | None = None,
    acme: AcmeServer | None = None,
) -> SandboxEnvironment:
    """Write (or rewrite) the sandbox's environment directory and validate it with the model.

    `preload_archives` are paths inside the server (`ImageArchive.server_path`) of archives in
    `info.archive_dir`, the directory the sandbox mounts. `acme`: the sandbox's ACME server
    (`stagectl.sandbox.acme.up`), which then issues the certificates. Raises
    EnvironmentInvalid if the result does not validate (a bug here, not a user mistake)."""
    root = Path(root).expanduser().resolve()
    vault_password_file = Path(vault_password_file).expanduser().resolve()
    if vault_password_file.is_relative_to(root):
        raise SandboxEnvironmentError(
            f"the vault password file {vault_password_file} is inside the environment {root}",
            hint="keep it outside, so that committing the environment never commits the key",
        )
    app = _checked_demo_app(demo_app)
    _check_archives(info, preload_archives)
    # Keys come from ImageBuilder without Docker: they hash the recipes, not the built images.
    builder = builder or ImageBuilder(out=lambda _line: None)

    inventory = sandbox_inventory(info, app)
    all_vars, disabled, images = sandbox_global_settings(builder, preload_archives, info.host_addresses)
    names = [p["name"] for p in inventory["staging"]["vars"]["projects"]]
    vault_created = _ensure_vault(root, vault_password_file, names)

    disabled_note = "".join(f"#   {d.service} ({d.image}): {d.reason}\n" for d in disabled)
    files = (
        _write(root / INVENTORY, _header(info, "Inventory") + _dump(inventory)),
        _write(
            root / ALL_VARS,
            _header(info, "Global settings")
            + "# Images are local stand-ins built from Debian (no registry here), loaded from\n"
            "# docker.preload_archives; production environments keep the official images.\n"
            + (f"# Disabled here:\n{disabled_note}" if disabled else "")
            + _dump(all_vars),
        ),
        _write(
            root / STAGING_VARS,
            _header(info, "Settings") + _dump(sandbox_staging_settings(_public_domains(inventory), acme)),
        ),
        root / VAULT,
        _write(root / "ansible.cfg", ansible_cfg(vault_password_file)),
    )
    load_environment(root, vault_password_file=vault_password_file)
    return SandboxEnvironment(
        root=root,
        vault_password_file=vault_password_file,
        files=files,
        disabled=disabled,
        images=images,
        vault_created=vault_created,
    )
