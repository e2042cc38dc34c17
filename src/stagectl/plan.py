"""`stagectl plan`: validate the environment, render every file, run the upstream validators."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from stagectl.derived import python_version_notes
from stagectl.environment import INVENTORY, load_environment, record_allocations
from stagectl.errors import EnvironmentInvalid, Problem
from stagectl.render import RenderedFile, render_environment
from stagectl.runner import ProgressCallback
from stagectl.validate import Check, run_checks


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
        data = yaml.safe_load((root / INVENTORY).read_text()) or {}
        projects = data["staging"]["vars"].get("projects") or []
        return [str(p["name"]) for p in projects]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise EnvironmentInvalid(
            [Problem(INVENTORY, "staging.vars.projects", f"cannot read the project list ({exc})",
                     "fix the inventory first; `stagectl plan` lists every problem")]
        ) from None


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
    loaded = load_environment(root, vault_password_file=vault_password_file)
    # Allocations are recorded only once the whole environment is valid, so a failed plan
    # leaves the user's files exactly as they were.
    record_allocations(root, loaded.allocated)
    started = time.monotonic()
    files = render_environment(root, out, vault_password_file, on_progress=on_progress)
    rendered = time.monotonic()
    checks = run_checks(
        files, root=root, vault_password_file=vault_password_file, lint_collection=lint_collection
    )
    return PlanReport(
        hosts=sorted(loaded.env.inventory.staging.hosts),
        files=files,
        checks=checks,
        allocated=loaded.allocated,
        render_seconds=rendered - started,
        check_seconds=time.monotonic() - rendered,
        notes=python_version_notes(loaded.env),
    )
