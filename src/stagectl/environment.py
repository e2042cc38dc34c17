"""Reading an environment directory into a validated `Environment`, reporting every problem at once.

Used by the CLI and by the collection's vars plugin, so that `stagectl` and a plain
`ansible-playbook` run reject the same inputs with the same words.
"""

from __future__ import annotations

import difflib
import io
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML

from stagectl import ports, yamlfile
from stagectl.errors import EnvironmentInvalid, Problem, VaultError
from stagectl.model import (
    Alerting,
    Certificates,
    Environment,
    GlobalSettings,
    Inventory,
    Project,
    StagingSettings,
    Vault,
    login_user_problem,
    password_advice,
    plain_passwords,
    sftp_target,
    without_ansible_variables,
)
from stagectl.vault import bcrypt_matches, decrypt, read_password_file

INVENTORY = "inventory/staging.yml"
ALL_VARS = "group_vars/all.yml"
STAGING_VARS = "group_vars/staging.yml"
VAULT = "group_vars/vault.yml"
ENVIRONMENT_FILES = (INVENTORY, ALL_VARS, STAGING_VARS, VAULT)
VAULT_PASSWORD_ENV = "STAGECTL_VAULT_PASSWORD_FILE"
# Set by `stagectl plan` for its own Ansible runs: the vars plugin then allocates omitted ports in
# memory exactly as plan did, before plan writes them into the inventory (only once all passed).
ALLOCATE_PORTS_ENV = "STAGECTL_ALLOCATE_PORTS"


def default_vault_password_file(root: Path) -> Path:
    """Outside the environment directory, so committing the environment never commits the key."""
    config = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    return config / "stagectl" / f"{root.resolve().name}.vault-pass"


@dataclass(frozen=True)
class LoadedEnvironment:
    root: Path
    env: Environment
    vault: Vault | None
    # Ports this load allocated (project -> kind -> port); `record_allocations` writes them back.
    allocated: dict[str, dict[str, int]] = field(default_factory=dict)


ModelT = TypeVar("ModelT", bound=BaseModel)


class _Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, file: str, fieldpath: str, message: str, hint: str = "") -> None:
        self.problems.append(Problem(file, fieldpath, message, hint))

    def validate(self, model: type[ModelT], data: Any, file: str, prefix: str = "") -> ModelT | None:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors():
                self.problems.append(_problem(model, file, prefix, error, data))
            return None


def _loc_text(loc: tuple[Any, ...], data: Any) -> str:
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            name = node[item].get("name") if isinstance(node, list) and isinstance(node[item], dict) else None
            parts.append(f"[{item}]" + (f" (name={name})" if name else ""))
        else:
            parts.append(("." if parts else "") + str(item))
        try:
            node = node[item]
        except (KeyError, IndexError, TypeError):
            node = None
    return "".join(parts)


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys a model accepts at a location, for did-you-mean hints on typos."""
    current: Any = model
    for item in loc:
        if isinstance(item, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        info = current.model_fields.get(item)
        if info is None:
            return []
        annotation = info.annotation
        args = getattr(annotation, "__args__", ())
        candidates = [annotation, *args]
        current = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)),
            next((a for c in args for a in getattr(c, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)), None),
        )
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _problem(model: type[BaseModel], file: str, prefix: str, error: Any, data: Any) -> Problem:
    loc = tuple(error["loc"])
    where = prefix + _loc_text(loc, data)
    kind = error["type"]
    if kind == "extra_forbidden":
        known = _fields_at(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else (f"known keys: {', '.join(known)}" if known else "")
        return Problem(file, where, f"unknown key '{loc[-1]}'", hint)
    if kind == "missing":
        return Problem(file, where, "is required but missing", "add this key")
    message = error["msg"].removeprefix("Value error, ")
    hint = _builtin_hint(kind, error.get("ctx") or {}, file, where)
    # The vault's values are secrets: its messages never quote what was found.
    if file != VAULT and kind in ("int_parsing", "bool_parsing", "string_type", "dict_type", "list_type", "model_type"):
        message = f"{message} (got {error.get('input')!r})"
    return Problem(file, where, message, hint)


#: The vault's secrets `stagectl secrets generate` makes; the others are the operator's own
#: (a relay's password, DNS credentials, the off-site repository's), which no tool can make.
GENERATED_SECRETS = ("vault_grafana_", "vault_prometheus_", "vault_projects")


def _builtin_hint(kind: str, ctx: dict[str, Any], file: str, where: str = "") -> str:
    """What to do about pydantic's own checks (ours say it in their message)."""
    bounds = [f"{word} {ctx[key]}" for key, word in
              (("ge", "at least"), ("gt", "above"), ("le", "at most"), ("lt", "below")) if key in ctx]
    hints = {
        "greater_than_equal": f"write a number {' and '.join(bounds)}",
        "greater_than": f"write a number {' and '.join(bounds)}",
        "less_than_equal": f"write a number {' and '.join(bounds)}",
        "less_than": f"write a number {' and '.join(bounds)}",
        "int_parsing": "write a whole number, e.g. 100",
        "int_type": "write a whole number, e.g. 100",
        "bool_parsing": "write true or false",
        "bool_type": "write true or false",
        "string_type": "write it as text (in quotes when it looks like a number)",
        "string_pattern_mismatch": "use only the characters the pattern allows",
        "string_too_short": (
            "run `stagectl secrets generate` after removing it to get a strong one"
            if file == VAULT and where.startswith(GENERATED_SECRETS)
            else f"set it to the value your provider gave you (`ansible-vault edit {VAULT}`)"
            if file == VAULT else "make it longer"
        ),
        "too_short": "add at least one entry",
        "literal_error": "use one of the values listed",
        "dict_type": "write a mapping of `key: value` lines",
        "model_type": "write a mapping of `key: value` lines",
        "list_type": "write a list (`- item` lines or [a, b])",
        "url_parsing": "write a whole URL with https://",
    }
    return hints.get(kind, "")


def _read_yaml(root: Path, rel: str, collector: _Collector) -> Any:
    path = root / rel
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        collector.add(rel, f"byte {exc.start}", "is not UTF-8 text", "save the file as UTF-8")
        return None
    except FileNotFoundError:
        collector.add(rel, "", "file is missing", f"expected at {path}; `stagectl init` creates the layout")
        return None
    except OSError as exc:
        collector.add(rel, "", f"cannot be read: {exc.strerror}")
        return None
    try:
        return yamlfile.load(text) or {}
    except yaml.YAMLError as exc:
        where, reason = yamlfile.describe(exc)
        collector.add(rel, where, f"is not valid YAML: {reason}", "fix the line named; nothing was changed")
        return None


def _check_projects(
    projects: list[tuple[int, Project]], env_domain_names: set[str], collector: _Collector
) -> None:
    seen_names: dict[str, int] = {}
    seen_domains: dict[str, int] = {}
    for index, project in projects:
        where = f"staging.vars.projects[{index}] (name={project.name})"
        if project.name in seen_names:
            collector.add(
                INVENTORY, f"{where}.name",
                f"project name '{project.name}' is used twice (also projects[{seen_names[project.name]}])",
                "give every project its own name",
            )
        seen_names.setdefault(project.name, index)
        if project.domain in seen_domains:
            collector.add(
                INVENTORY, f"{where}.domain",
                f"domain '{project.domain}' is used twice (also projects[{seen_domains[project.domain]}])",
                "give every project its own domain",
            )
        elif project.domain in env_domain_names:
            collector.add(
                INVENTORY, f"{where}.domain",
                f"domain '{project.domain}' is reserved for the shared monitoring services",
                "give the project another domain",
            )
        seen_domains.setdefault(project.domain, index)


def _valid_projects(inventory_data: Any, inventory: Inventory | None) -> list[tuple[int, Project]]:
    if inventory is not None:
        return list(enumerate(inventory.staging.vars.projects))
    try:
        raw = inventory_data["staging"]["vars"]["projects"]
    except (KeyError, TypeError):
        return []
    result: list[tuple[int, Project]] = []
    for index, entry in enumerate(raw if isinstance(raw, list) else []):
        try:
            result.append((index, Project.model_validate(entry)))
        except ValidationError:
            continue  # already reported by the inventory's own validation
    return result


def _server_domain(inventory_data: Any) -> str:
    try:
        return str(inventory_data["staging"]["vars"]["server_domain"])
    except (KeyError, TypeError):
        return ""


def _check_vault(vault_data: Any, projects: list[Project], collector: _Collector) -> Vault | None:
    vault = collector.validate(Vault, vault_data, VAULT)
    if vault is None:
        return None
    for project in projects:
        if project.name not in vault.vault_projects:
            collector.add(
                VAULT, f"vault_projects.{project.name}",
                f"no secrets for project '{project.name}'",
                "run `stagectl secrets generate` to add the missing ones (existing secrets are kept)",
            )
            continue
        if vault.vault_projects[project.name].postgres_monitor_password is None:
            collector.add(
                VAULT, f"vault_projects.{project.name}.postgres_monitor_password",
                f"no password for the read-only role the PostgreSQL exporter of project '{project.name}' logs in with",
                "run `stagectl secrets generate` to add the missing ones (existing secrets are kept)",
            )
        have = vault.vault_projects[project.name].app_secrets
        for name in project.app.secrets:
            if name not in have:
                collector.add(
                    VAULT, f"vault_projects.{project.name}.app_secrets.{name}",
                    f"project '{project.name}' lists {name} in app.secrets but the vault has no value",
                    f"add it under vault_projects.{project.name}.app_secrets (`ansible-vault edit {VAULT}`), "
                    f"or remove it from app.secrets in {INVENTORY}",
                )
    if not bcrypt_matches(vault.vault_prometheus_password, vault.vault_prometheus_password_bcrypt):
        collector.add(
            VAULT, "vault_prometheus_password_bcrypt",
            "does not match vault_prometheus_password",
            "run `stagectl secrets generate` to re-hash it",
        )
    return vault


def _check_smtp_password(alerting: Alerting, vault: Vault, collector: _Collector) -> None:
    """An authenticated relay needs its password in the vault."""
    if alerting.smtp_username and vault.vault_alerting_smtp_password is None:
        collector.add(
            VAULT, "vault_alerting_smtp_password",
            f"alerting.smtp_username is set ({STAGING_VARS}) but the vault has no password for it",
            f"add vault_alerting_smtp_password with the relay's password (`ansible-vault edit {VAULT}`), "
            "or remove alerting.smtp_username",
        )


def _check_dns_credentials(certificates: Certificates, vault: Vault, collector: _Collector) -> None:
    """certificates.wildcard's DNS plugin needs its credentials in the vault, in its own keys."""
    if certificates.wildcard is None:
        return
    plugin = certificates.wildcard.dns_plugin
    credentials = vault.vault_certificates_dns_credentials
    prefix = f"dns_{plugin}_"
    if not credentials:
        collector.add(
            VAULT, "vault_certificates_dns_credentials",
            f"certificates.wildcard uses the DNS plugin {plugin} ({STAGING_VARS}) but the vault has "
            "no credentials for it",
            f"add vault_certificates_dns_credentials, a mapping of the plugin's settings "
            f"({prefix}...: value, as in its credentials ini) (`ansible-vault edit {VAULT}`)",
        )
        return
    foreign = sorted(key for key in credentials if not re.fullmatch(rf"{prefix}[a-z0-9_]+", key))
    if foreign:
        collector.add(
            VAULT, "vault_certificates_dns_credentials",
            f"{', '.join(foreign)}: not a setting of certbot's DNS plugin {plugin} (its settings "
            f"start with {prefix})",
            f"name the settings as the plugin's credentials ini does, or set "
            f"certificates.wildcard.dns_plugin to the plugin they belong to ({STAGING_VARS})",
        )


def _check_remote_secrets(settings: GlobalSettings, vault: Vault, collector: _Collector) -> None:
    """backups.remote needs its password (and for sftp its key and host key) in the vault."""
    remote = settings.backups.remote
    if remote is None:
        return
    secrets = vault.vault_backups_remote
    if secrets is None:
        collector.add(
            VAULT, "vault_backups_remote",
            f"{ALL_VARS} sets backups.remote but the vault has no vault_backups_remote",
            "add vault_backups_remote.password (the restic repository password, 16 characters or more) "
            f"and the credentials restic needs under vault_backups_remote.env (`ansible-vault edit {VAULT}`)",
        )
        return
    if sftp_target(remote.repository) is not None:
        for key, what in (("ssh_key", "the private key restic's ssh logs in with"),
                          ("ssh_known_hosts", "the backup server's known_hosts line(s), e.g. from ssh-keyscan")):
            if not getattr(secrets, key):
                collector.add(
                    VAULT, f"vault_backups_remote.{key}",
                    f"the sftp repository {remote.repository} needs {what}",
                    f"add it to the vault (`ansible-vault edit {VAULT}`)",
                )


def _check_plain_passwords(inventory_data: Any, group_data: dict[str, Any], collector: _Collector) -> None:
    """Connection passwords in plain text, in group vars or the inventory's group vars."""
    try:
        inventory_vars = inventory_data["staging"]["vars"]
    except (KeyError, TypeError):
        inventory_vars = None
    places = [(INVENTORY, "staging.vars.", inventory_vars), *((f, "", d) for f, d in group_data.items())]
    for file, prefix, data in places:
        for key in plain_passwords(data):
            collector.add(file, prefix + key, password_advice([key]))
        user = login_user_problem(data)
        if user:
            collector.add(file, prefix + "ansible_user", user)


def secret_values(vault_data: Any) -> set[str]:
    """Every string in the decrypted vault long enough to be recognised in a message."""
    found: set[str] = set()
    stack = [vault_data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, (str, int, float)) and not isinstance(node, bool) and len(str(node)) >= 6:
            found.add(str(node))
    return found


def mask_secrets(problems: list[Problem], secrets: set[str]) -> list[Problem]:
    """The problems with every vault value replaced by '***': a message must never show a secret."""
    if not secrets:
        return problems
    ordered = sorted(secrets, key=len, reverse=True)

    def mask(text: str) -> str:
        for secret in ordered:
            text = text.replace(secret, "***")
        return text

    return [Problem(p.file, mask(p.field), mask(p.message), mask(p.hint)) for p in problems]


# Special-use top-level domains (RFC 2606, RFC 6761, mDNS) no public CA issues certificates for.
SPECIAL_USE_TLDS = frozenset({"test", "example", "invalid", "localhost", "local", "internal"})


#: Let's Encrypt's ACME hosts (production and staging), which refuse special-use names.
LETSENCRYPT_HOSTS = frozenset({"acme-v02.api.letsencrypt.org", "acme-staging-v02.api.letsencrypt.org"})


def certificate_problems(env: Environment) -> list[Problem]:
    """Let's Encrypt refuses special-use names: found here instead of by certbot on the server.
    A private ACME server (another `acme_directory`) may issue for any name it resolves."""
    certificates = env.staging.certificates
    if certificates.provider != "letsencrypt" or urllib.parse.urlsplit(
        certificates.acme_directory
    ).hostname not in LETSENCRYPT_HOSTS:
        return []
    domains = [env.server_domain, *(p.domain for p in env.projects)]
    special = [d for d in domains if d.rsplit(".", 1)[-1] in SPECIAL_USE_TLDS]
    if not special:
        return []
    return [Problem(
        STAGING_VARS, "certificates.provider",
        f"letsencrypt cannot issue certificates for {', '.join(special)} (a special-use domain "
        "no public CA serves)",
        "set certificates.provider: selfsigned, use public domain names, or point "
        "certificates.acme_directory at a private ACME server",
    )]


def local_source_problems(env: Environment) -> list[Problem]:
    """Projects whose `repo:` is a local path that is not a directory here, on the controller:
    the project role ships it from here, and would fail only on the server's turn."""
    problems: list[Problem] = []
    for index, project in enumerate(env.projects):
        if project.repo.startswith("/") and not Path(project.repo).is_dir():
            problems.append(Problem(
                INVENTORY, f"staging.vars.projects[{index}] (name={project.name}).repo",
                f"'{project.repo}' is a local path, but no such directory exists on this machine",
                "give the directory of the app's source checkout, or its git URL",
            ))
    return problems


def load_environment(
    root: Path,
    *,
    vault_password_file: Path | None = None,
    vault_data: Any = None,
    allocate: bool = True,
) -> LoadedEnvironment:
    """Validate every environment file and return the environment; raise with every problem found.

    The vault is read from `vault_data` when the caller already decrypted it (the vars plugin), or
    decrypted with `vault_password_file`. With neither, secrets are not checked.
    With `allocate=False`, a project with a port left out is a problem instead of being given one.
    """
    collector = _Collector()
    inventory_data = _read_yaml(root, INVENTORY, collector)
    all_data = _read_yaml(root, ALL_VARS, collector)
    staging_data = _read_yaml(root, STAGING_VARS, collector)

    if vault_data is None and vault_password_file is not None:
        try:
            vault_data = decrypt(root / VAULT, read_password_file(vault_password_file))
        except VaultError as exc:
            collector.add(VAULT, "", str(exc), exc.hint)

    _check_plain_passwords(inventory_data, {ALL_VARS: all_data, STAGING_VARS: staging_data}, collector)
    inventory = collector.validate(Inventory, inventory_data, INVENTORY) if inventory_data is not None else None
    settings = (
        collector.validate(GlobalSettings, without_ansible_variables(all_data), ALL_VARS)
        if all_data is not None else None
    )
    staging = (
        collector.validate(StagingSettings, without_ansible_variables(staging_data), STAGING_VARS)
        if staging_data is not None else None
    )

    # Cross-project checks run on every project entry that is valid by itself, even when other
    # parts of the inventory are not, so that one run reports every problem.
    indexed = _valid_projects(inventory_data, inventory)
    reserved = Environment.reserved_ports(settings or GlobalSettings())
    domain = _server_domain(inventory_data)
    monitoring = {f"{sub}.{domain}" for sub in ("monitoring", "grafana", "prometheus")}
    _check_projects(indexed, monitoring, collector)
    collector.problems.extend(ports.conflicts(indexed, reserved))

    allocated: dict[str, dict[str, int]] = {}
    env: Environment | None = None
    if inventory is not None and settings is not None and staging is not None:
        env = Environment(inventory=inventory, settings=settings, staging=staging)
        projects = env.projects
        if not allocate:
            for index, project in enumerate(projects):
                for kind, port in project.ports.model_dump().items():
                    if port is None:
                        collector.add(
                            INVENTORY, f"staging.vars.projects[{index}] (name={project.name}).ports.{kind}",
                            "is not set",
                            "run `stagectl plan` once: it allocates free ports and writes them into the inventory",
                        )
        elif not collector.problems:
            projects, allocated = ports.allocate(projects, reserved.values())
            group = inventory.staging.model_copy(
                update={"vars": inventory.staging.vars.model_copy(update={"projects": projects})}
            )
            env = env.model_copy(update={"inventory": inventory.model_copy(update={"staging": group})})

    if env is not None:
        collector.problems.extend(certificate_problems(env))

    vault = None
    if vault_data is not None:
        vault = _check_vault(vault_data, env.projects if env else [], collector)
        if vault is not None and settings is not None:
            _check_remote_secrets(settings, vault, collector)
        if vault is not None and env is not None:
            _check_smtp_password(env.staging.alerting, vault, collector)
            _check_dns_credentials(env.staging.certificates, vault, collector)

    if collector.problems or env is None:
        raise EnvironmentInvalid(mask_secrets(collector.problems, secret_values(vault_data)))
    return LoadedEnvironment(root=root, env=env, vault=vault, allocated=allocated)


def record_allocations(root: Path, allocated: dict[str, dict[str, int]]) -> None:
    """Write allocated ports into the inventory, keeping the user's comments and layout."""
    if not allocated:
        return
    path = root / INVENTORY
    rt, data = round_trip(path.read_text())
    for project in data["staging"]["vars"]["projects"]:
        new_ports = allocated.get(project["name"])
        if new_ports:
            current = project.get("ports") or {}
            current.update(new_ports)
            project["ports"] = current
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(dump_round_trip(rt, data))
    tmp.replace(path)


def round_trip(text: str) -> tuple[YAML, Any]:
    """A YAML document loaded for editing, with a dumper that keeps the file's comments, quotes and
    indentation (sequences flush with their key, as `stagectl init` writes them, or indented)."""
    mapping, sequence, offset = _block_layout(text)
    rt = YAML()
    rt.preserve_quotes = True
    rt.indent(mapping=mapping, sequence=sequence, offset=offset)
    return rt, rt.load(text)


def _block_layout(text: str) -> tuple[int, int, int]:
    """(mapping indent, sequence item indent, dash offset) of a block-style YAML file, read from its
    first nested mapping and its first block sequence (ruamel's own guess misreads flush sequences)."""
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    depth = [len(line) - len(line.lstrip(" ")) for line in lines]
    mapping = next((d for d, line in zip(depth, lines, strict=True) if d and not line.lstrip().startswith("-")), 2)
    for index, line in enumerate(lines[:-1]):
        item = lines[index + 1].lstrip(" ")
        if line.split(" #", 1)[0].rstrip().endswith(":") and item.startswith("- "):
            offset = depth[index + 1] - depth[index]
            return mapping, offset + len(item) - len(item[1:].lstrip(" ")), offset
    return mapping, mapping + 2, 2


def dump_round_trip(rt: YAML, data: Any) -> str:
    buffer = io.StringIO()
    rt.dump(data, buffer)
    return buffer.getvalue()
