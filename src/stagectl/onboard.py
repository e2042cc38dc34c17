"""`stagectl project add` and `stagectl project remove`: a project into and out of the environment.

Adding touches no server: it inspects the source, allocates ports, and writes the inventory entry
and the project's secrets. Both files are written only once the whole new environment validates,
each through a temporary file renamed into place, the vault first: a crash between the two renames
leaves secrets for a project the inventory does not list yet, which every command accepts and a
second `project add` reuses.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from stagectl import collection, ports, vault
from stagectl.derived import monitoring_domains_of, python_version_note
from stagectl.environment import (
    ALL_VARS,
    INVENTORY,
    STAGING_VARS,
    VAULT,
    dump_round_trip,
    load_environment,
    round_trip,
)
from stagectl.errors import EnvironmentInvalid, SourceError, StagectlError
from stagectl.model import Domain, Environment, Project, ProjectApp, Slug
from stagectl.runner import ProgressCallback, RunResult, run_playbook
from stagectl.source import Inspection, checkout, host_allowed, inspect_source, is_git_url


@dataclass(frozen=True)
class AddedProject:
    project: Project
    inspection: Inspection
    secrets_added: list[str]
    #: (name, address) of each A record the project needs, one per server.
    dns_records: list[tuple[str, str]]


def _check_value(adapter: Any, value: str, what: str, hint: str) -> str:
    try:
        return str(TypeAdapter(adapter).validate_python(value))
    except ValidationError as exc:
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise StagectlError(f"{what}: {message}", hint=hint) from None


@contextmanager
def _source(repo: str, ref: str | None) -> Iterator[tuple[Path, str, str | None]]:
    """The source directory, the `repo` value to record and the ref (None for a local path)."""
    local = Path(repo).expanduser()
    if local.is_dir():
        yield local, str(local.resolve()), ref
    elif is_git_url(repo):
        with checkout(repo, ref) as (directory, checked_out):
            yield directory, repo, checked_out
    else:
        raise SourceError(
            f"--repo {repo}: no such directory, and not a git URL",
            hint="pass a local directory holding manage.py, or a git URL (https://..., ssh://..., git@host:path)",
        )


def app_mapping(app: ProjectApp) -> dict[str, Any]:
    """The `app:` entry as written to the inventory: every detected value, no empty ones."""
    data = app.model_dump(exclude_none=True)
    data["processes"] = {k: v for k, v in data["processes"].items() if v is not None}
    if app.builder != "pip":
        del data["requirements"]
    if app.directory == ".":
        del data["directory"]
    return {k: v for k, v in data.items() if v not in ({}, [])}


def add_project(
    root: Path,
    vault_password_file: Path,
    name: str,
    repo: str,
    *,
    domain: str | None = None,
    ref: str | None = None,
    settings: str | None = None,
    dockerfile: str | None = None,
) -> AddedProject:
    """Validate everything, then write the inventory entry and the vault; raise before any write."""
    name = _check_value(Slug, name, f"project name '{name}'", "e.g. shop or shop-api")
    loaded = load_environment(root, vault_password_file=vault_password_file)
    env = loaded.env
    wanted = domain or f"{name}.{env.server_domain}"
    domain = _check_value(Domain, wanted, f"domain '{wanted}'", "pass --domain, e.g. shop.staging.example.org")
    for project in env.projects:
        if project.name == name:
            raise StagectlError(f"project '{name}' is already in {INVENTORY}",
                                hint="pick another name, or `stagectl project remove` it first")
        if project.domain == domain:
            raise StagectlError(f"domain {domain} is already used by project '{project.name}' in {INVENTORY}",
                                hint="pass another --domain")
    if domain in monitoring_domains_of(env.server_domain).values():
        raise StagectlError(f"domain {domain} is reserved for the shared monitoring services",
                            hint="pass another --domain")

    with _source(repo, ref) as (directory, recorded_repo, recorded_ref):
        inspection = inspect_source(directory, settings=settings, dockerfile=dockerfile)
    if inspection.allowed_hosts is not None and not host_allowed(domain, inspection.allowed_hosts):
        inspection.warnings.append(
            f"ALLOWED_HOSTS in {inspection.app.settings} is fixed to {inspection.allowed_hosts}, without "
            f"{domain}: Django answers 400 to every request and the deploy's readiness check fails; add '{domain}' "
            "there, or read the list from the environment (stagectl sets DJANGO_ALLOWED_HOSTS and ALLOWED_HOSTS)"
        )

    entry: dict[str, Any] = {"name": name, "domain": domain, "repo": recorded_repo}
    if recorded_ref:
        entry["ref"] = recorded_ref
    try:
        project = Project.model_validate({**entry, "worker": inspection.worker,
                                          "scheduler": inspection.scheduler, "app": inspection.app})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise StagectlError(f"project '{name}' cannot be added: {problems}",
                            hint="fix the option named above (or the source) and run it again") from None
    allocated_projects, _ = ports.allocate([*env.projects, project], env.shared_ports().values())
    project = allocated_projects[-1]
    if note := python_version_note(project, env.settings.project_defaults.images.python):
        inspection.warnings.append(note)

    inventory_text = _inventory_with(root, loaded.allocated, entry, project, inspection)
    password = vault.read_password_file(vault_password_file)
    vault_data = vault.decrypt(root / VAULT, password)
    added = vault.fill_missing(vault_data, [*(p.name for p in env.projects), name], {name: project.app.secrets})
    _validate_new(root, inventory_text, vault_data)

    _write_both(root, inventory_text, vault_data, password)
    records = [(domain, spec.ansible_host if spec else host) for host, spec in env.inventory.staging.hosts.items()]
    return AddedProject(project=project, inspection=inspection, secrets_added=added, dns_records=records)


def _inventory_with(root: Path, earlier: dict[str, dict[str, int]], entry: dict[str, Any], project: Project,
                    inspection: Inspection) -> str:
    rt, data = round_trip((root / INVENTORY).read_text())
    group_vars = data["staging"]["vars"]
    if group_vars.get("projects") is None:
        group_vars["projects"] = CommentedSeq()
    projects = group_vars["projects"]
    # Ports the load allocated to other projects are recorded too, as `plan` would, so the new
    # project's allocation can never collide with them later.
    for existing in projects:
        if earlier.get(existing["name"]):
            current = existing.get("ports") or CommentedMap()
            current.update(earlier[existing["name"]])
            existing["ports"] = current
    item = CommentedMap(entry)
    item["ports"] = CommentedMap(project.ports.model_dump())
    if project.worker:
        item["worker"] = True
    if project.scheduler:
        item["scheduler"] = True
    item["app"] = CommentedMap(app_mapping(inspection.app))
    projects.append(item)
    return dump_round_trip(rt, data)


def _validate_new(root: Path, inventory_text: str, vault_data: dict[str, Any]) -> None:
    """Load the environment as it would be after the write, from a scratch copy."""
    scratch = Path(tempfile.mkdtemp(prefix="stagectl-add-"))
    try:
        for rel in (ALL_VARS, STAGING_VARS):
            (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / rel, scratch / rel)
        (scratch / INVENTORY).parent.mkdir(parents=True, exist_ok=True)
        (scratch / INVENTORY).write_text(inventory_text)
        load_environment(scratch, vault_data=vault_data, allocate=False)
    except EnvironmentInvalid as exc:
        raise StagectlError(
            "the project does not fit the environment; nothing was written:\n"
            + "\n".join(f"  - {problem}" for problem in exc.problems)
        ) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _write_both(root: Path, inventory_text: str, vault_data: dict[str, Any], password: bytes) -> None:
    inventory = root / INVENTORY
    tmp = inventory.with_name(f".{inventory.name}.tmp")
    try:
        tmp.write_text(inventory_text)
        vault.write_vault(root / VAULT, vault_data, password)
        tmp.replace(inventory)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StagectlError(f"cannot write the environment in {root}: {exc.strerror} ({exc.filename})",
                            hint="check the directory's permissions and free space") from None


# --- removal ------------------------------------------------------------------------------------


@dataclass
class RemovedProject:
    name: str
    removed: RunResult
    refreshed: RunResult | None = None
    secrets_removed: bool = False
    notes: list[str] = field(default_factory=list)


def check_removable(root: Path, name: str) -> Environment:
    env = load_environment(root).env
    names = [p.name for p in env.projects]
    if name not in names:
        raise StagectlError(f"project '{name}' is not in {INVENTORY}",
                            hint=f"known projects: {', '.join(names) or 'none'}")
    return env


def remove_entry(root: Path, vault_password_file: Path, name: str, *, remove_secrets: bool) -> None:
    """Take the project out of the inventory (and its secrets out of the vault): vault first."""
    rt, data = round_trip((root / INVENTORY).read_text())
    projects = data["staging"]["vars"]["projects"]
    index = next(i for i, p in enumerate(projects) if p["name"] == name)
    del projects[index]
    inventory = root / INVENTORY
    tmp = inventory.with_name(f".{inventory.name}.tmp")
    tmp.write_text(dump_round_trip(rt, data))
    if remove_secrets:
        password = vault.read_password_file(vault_password_file)
        vault_data = vault.decrypt(root / VAULT, password)
        if name in (vault_data.get("vault_projects") or {}):
            del vault_data["vault_projects"][name]
            vault.write_vault(root / VAULT, vault_data, password)
    tmp.replace(inventory)


def remove_project(
    root: Path,
    vault_password_file: Path,
    name: str,
    *,
    keep_data: bool,
    on_progress: ProgressCallback | None = None,
) -> RemovedProject:
    """Final backup, stack and timers down (and data deleted unless `keep_data`) on the server;
    then the entry out of the environment; then the shared stack's files re-rendered without it."""
    root = root.resolve()  # ansible-runner changes directory
    check_removable(root, name)
    vault.decrypt(root / VAULT, vault.read_password_file(vault_password_file))  # fail early on a bad key
    removed = run_playbook(
        collection.playbook("project-remove"),
        root / INVENTORY,
        extravars={"stagectl_project": name, "project_remove_delete_data": not keep_data},
        vault_password_file=vault_password_file,
        on_progress=on_progress,
        cwd=root,
    )
    result = RemovedProject(name=name, removed=removed)
    if not removed.ok:
        result.notes.append(f"the server's removal failed; {name} stays in {INVENTORY}: fix the cause and run "
                            "the command again")
        return result
    remove_entry(root, vault_password_file, name, remove_secrets=not keep_data)
    result.secrets_removed = not keep_data
    result.refreshed = run_playbook(
        collection.playbook("shared-refresh"),
        root / INVENTORY,
        vault_password_file=vault_password_file,
        on_progress=on_progress,
        cwd=root,
    )
    if not result.refreshed.ok:
        result.notes.append(f"{name} is gone from the server and the inventory, but the shared stack still "
                            "lists it: run `stagectl deploy` to re-render its files")
    return result
