"""`stagectl plan`: validate the environment, render every file, run the upstream validators."""

from __future__ import annotations

import shutil
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from stagectl import yamlfile
from stagectl.derived import alerting_notes, python_version_notes
from stagectl.environment import (
    ALLOCATE_PORTS_ENV,
    INVENTORY,
    LoadedEnvironment,
    load_environment,
    local_source_problems,
    record_allocations,
    secret_values,
)
from stagectl.errors import EnvironmentInvalid, Interrupted, Problem, RenderFailed
from stagectl.model import Vault
from stagectl.render import RenderedFile, render_environment, render_processes
from stagectl.runner import ProgressCallback
from stagectl.validate import Check, collection_checks, run_checks


@dataclass
class PlanReport:
    hosts: list[str]
    files: list[RenderedFile]
    checks: list[Check]
    allocated: dict[str, dict[str, int]] = field(default_factory=dict)
    render_seconds: float = 0.0
    check_seconds: float = 0.0
    #: Warnings that do not fail the plan (e.g. an app asking for another Python than its image's).
    notes: list[str] = field(default_factory=list)
    #: A deploy's validation kept from an earlier one with the same inputs (stagectl.plan_cache).
    cached: bool = False

    @property
    def ok(self) -> bool:
        return all(c.status != "failed" for c in self.checks)

    def summary(self) -> dict[str, dict[str, int]]:
        counts: dict[str, Counter[str]] = {}
        for check in self.checks:
            counts.setdefault(check.tool, Counter())[check.status] += 1
        return {
            tool: {s: c[s] for s in ("passed", "failed", "skipped")} for tool, c in sorted(counts.items())
        }


def project_names(root: Path) -> list[str]:
    """Project names from the inventory alone, for commands that must work on a partial vault."""
    try:
        data = yamlfile.load((root / INVENTORY).read_text()) or {}
        projects = data["staging"]["vars"].get("projects") or []
        return [str(p["name"]) for p in projects]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise EnvironmentInvalid(
            [Problem(INVENTORY, "staging.vars.projects", f"cannot read the project list ({exc})",
                     "fix the inventory first; `stagectl plan` lists every problem")]
        ) from None


def _mask(text: str, vault: Vault | None) -> str:
    """Ansible's and the validators' messages may quote a rendered secret: never show one."""
    if vault is None:
        return text
    for secret in sorted(secret_values(vault.model_dump()), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def project_app_secrets(root: Path) -> dict[str, list[str]]:
    """Per project, the names its `app.secrets` lists, from the inventory alone (like
    `project_names`: the vault may still lack them)."""
    data = yaml.safe_load((root / INVENTORY).read_text()) or {}
    result: dict[str, list[str]] = {}
    for project in data["staging"]["vars"].get("projects") or []:
        app = project.get("app") if isinstance(project, dict) else None
        names = app.get("secrets") if isinstance(app, dict) else None
        if isinstance(names, list):
            result[str(project["name"])] = [str(n) for n in names]
    return result


def checked_environment(root: Path, vault_password_file: Path) -> LoadedEnvironment:
    """The environment with its vault, every file validated, and every local source present here."""
    loaded = load_environment(root, vault_password_file=vault_password_file)
    local = local_source_problems(loaded.env)
    if local:
        raise EnvironmentInvalid(local)
    return loaded


def plan(
    root: Path,
    out: Path,
    vault_password_file: Path,
    on_progress: ProgressCallback | None = None,
    *,
    lint_collection: bool = True,
) -> PlanReport:
    """`lint_collection=False` leaves out the checks of the collection itself (ansible-lint,
    syntax checks): they do not depend on the environment, and `deploy` need not repeat them."""
    root = root.resolve()
    loaded = checked_environment(root, vault_password_file)
    started = time.monotonic()
    # Allocated ports stay in memory (the vars plugin allocates the same ones) until the whole
    # plan passed: a failed or interrupted plan leaves the user's files exactly as they were.
    allocating = {ALLOCATE_PORTS_ENV: "1"} if loaded.allocated else {}
    fresh_out = not out.exists()
    try:
        # --syntax-check does not consult the vars plugin: it needs no allocation.
        with collection_checks(root, vault_password_file, enabled=lint_collection) as collection:
            files = render_environment(
                root, out, vault_password_file, on_progress=on_progress, extra_env=allocating,
                processes=render_processes(len(loaded.env.projects)),
            )
            rendered = time.monotonic()
            checks = run_checks(files) + collection()
    except Interrupted:
        # A plan that did not finish leaves nothing behind, not even its complete renders.
        if fresh_out:
            shutil.rmtree(out, ignore_errors=True)
        raise
    except RenderFailed as exc:
        raise RenderFailed(_mask(str(exc), loaded.vault), exc.hint) from None
    checks = [replace(c, message=_mask(c.message, loaded.vault)) for c in checks]
    if all(c.status != "failed" for c in checks):
        record_allocations(root, loaded.allocated)
    return PlanReport(
        hosts=sorted(loaded.env.inventory.staging.hosts),
        files=files,
        checks=checks,
        allocated=loaded.allocated,
        render_seconds=rendered - started,
        check_seconds=time.monotonic() - rendered,
        notes=python_version_notes(loaded.env) + alerting_notes(loaded.env),
    )
