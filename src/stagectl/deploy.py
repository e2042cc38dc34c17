"""`stagectl deploy` and `stagectl bootstrap`: the only commands that change a server.

Both validate first: nothing touches a server before the environment and every rendered file
pass their validators (invariant 1 in docs/architecture.md).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from stagectl import collection, plan_cache
from stagectl.environment import INVENTORY, load_environment
from stagectl.errors import StagectlError, ValidationFailed
from stagectl.plan import PlanReport, checked_environment, plan
from stagectl.runner import ProgressCallback, RunResult, run_playbook


@dataclass(frozen=True)
class DeployReport:
    plan: PlanReport
    run: RunResult


def _validated_plan(root: Path, vault_password_file: Path, on_progress: ProgressCallback | None) -> PlanReport:
    cache_directory, plan_key = plan_cache.cache_directory(), plan_cache.key(root)
    kept = plan_cache.get(cache_directory, plan_key)
    if kept is not None:
        # Unchanged since a validation that passed: what can still differ is checked again.
        checked_environment(root, vault_password_file)
        return kept
    out = Path(tempfile.mkdtemp(prefix="stagectl-deploy-"))
    try:
        report = plan(root, out, vault_password_file, on_progress=on_progress, lint_collection=False)
    finally:
        # The rendered files hold secrets; the deploy renders them again on the server.
        shutil.rmtree(out, ignore_errors=True)
    plan_cache.put(cache_directory, plan_key, report)
    if not report.ok:
        failed = [f"{c.tool} {c.target}: {c.message.splitlines()[0] if c.message else ''}"
                  for c in report.checks if c.status == "failed"]
        raise ValidationFailed(
            "the rendered files do not validate; nothing was changed on the server:\n"
            + "\n".join(f"  - {line}" for line in failed),
            hint="run `stagectl plan` for the validators' full messages",
        )
    return report


def deploy(
    root: Path,
    vault_password_file: Path,
    *,
    project: str | None = None,
    check: bool = False,
    on_progress: ProgressCallback | None = None,
) -> DeployReport:
    """Deploy the whole server (site.yml) or one project (project-deploy.yml)."""
    root = root.resolve()  # ansible-runner changes directory
    if project is not None:
        names = [p.name for p in load_environment(root).env.projects]
        if project not in names:
            raise StagectlError(
                f"project '{project}' is not in {INVENTORY}",
                hint=f"known projects: {', '.join(names) or 'none'}",
            )
    report = _validated_plan(root, vault_password_file, on_progress)
    result = run_playbook(
        collection.playbook("project-deploy" if project else "site"),
        root / INVENTORY,
        extravars={"stagectl_project": project} if project else None,
        vault_password_file=vault_password_file,
        check=check,
        diff=check,
        on_progress=on_progress,
        cwd=root,
    )
    return DeployReport(plan=report, run=result)


def parse_login(login: str) -> tuple[str, str]:
    user, sep, host = login.partition("@")
    if not sep or not user or not host:
        raise StagectlError(f"--as '{login}' is not USER@HOST", hint="e.g. --as root@192.0.2.10")
    return user, host


def bootstrap(
    root: Path,
    vault_password_file: Path,
    login: str,
    *,
    connect_key: Path | None = None,
    on_progress: ProgressCallback | None = None,
) -> RunResult:
    """Prepare a fresh server (Python, the Ansible user, its sudo and key) logging in as
    `login`, e.g. root@HOST."""
    user, host = parse_login(login)
    root = root.resolve()  # ansible-runner changes directory
    loaded = load_environment(root, vault_password_file=vault_password_file)
    hosts = loaded.env.inventory.staging.hosts
    matching = [name for name, spec in hosts.items() if name == host or (spec and spec.ansible_host == host)]
    if not matching:
        known = ", ".join(f"{n} ({s.ansible_host if s else n})" for n, s in hosts.items())
        raise StagectlError(
            f"host '{host}' is not in {INVENTORY}",
            hint=f"use one of: {known}",
        )
    extravars: dict[str, str] = {"ansible_user": user}
    if connect_key is not None:
        extravars["bootstrap_connect_key_file"] = str(connect_key.expanduser())
    return run_playbook(
        collection.playbook("bootstrap"),
        root / INVENTORY,
        extravars=extravars,
        vault_password_file=vault_password_file,
        limit=",".join(matching),
        on_progress=on_progress,
        cwd=root,
    )
