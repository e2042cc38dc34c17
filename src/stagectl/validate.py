"""Running the upstream validators over rendered files and over the collection itself.

Each rendered file is checked according to its manifest `kind`; the collection is checked with
`ansible-playbook --syntax-check` and ansible-lint's production profile. A validator that is not
installed is a failed check naming the package that provides it: a plan that skipped promtool is
not a plan that passed.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from stagectl import collection
from stagectl.environment import INVENTORY
from stagectl.render import RenderedFile

Status = Literal["passed", "failed", "skipped"]


@dataclass(frozen=True)
class Check:
    tool: str
    target: str
    status: Status
    message: str = ""


def tool_path(tool: str) -> str | None:
    """Find a tool on PATH or beside the running Python (a venv that is not activated)."""
    beside = Path(sys.executable).parent / tool
    if beside.exists():
        return str(beside)
    return shutil.which(tool)


def missing(tool: str, package: str, target: str) -> Check:
    return Check(tool, target, "failed", f"{tool} is not installed: install it with `{package}`")


def run_tool(tool: str, args: list[str], target: str, package: str, *, cwd: Path | None = None,
             env: dict[str, str] | None = None, timeout: int = 300) -> Check:
    """Run one validator; its own output is the message when it fails."""
    from stagectl.validators import base

    path = tool_path(tool)
    if path is None:
        return missing(tool, package, target)
    result = base.run([path, *args], cwd=cwd, env=env, timeout=timeout)
    if result.returncode == 0:
        return Check(tool, target, "passed")
    return Check(tool, target, "failed", result.output or f"exit {result.returncode}")


# --- collection-level checks --------------------------------------------------------------------


def syntax_checks(root: Path, vault_password_file: Path) -> list[Check]:
    env = {**collection.ansible_env(), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return [
        run_tool(
            "ansible-playbook",
            ["--syntax-check", "-i", str(root / INVENTORY), "--vault-password-file", str(vault_password_file), str(pb)],
            target=f"playbooks/{pb.name}",
            package="pip install stagectl (ansible-core comes with it)",
            env=env,
        )
        for pb in sorted((collection.collection_root() / "playbooks").glob("*.yml"))
    ]


def ansible_lint() -> Check:
    return run_tool(
        "ansible-lint",
        ["--offline", "--profile", "production", "--nocolor", "-q", "."],
        target="collection stagectl.staging",
        package="pip install ansible-lint",
        cwd=collection.collection_root(),
        env={**collection.ansible_env(), "ANSIBLE_LINT_NODEPS": "0"},
        timeout=600,
    )


# --- per-file checks ----------------------------------------------------------------------------

FileChecker = Callable[[RenderedFile], list[Check]]

YAML_KINDS = {
    "compose", "prometheus_config", "prometheus_rules", "prometheus_web", "alertmanager", "blackbox",
    "loki", "grafana_provisioning", "yaml",
}


def _yamllint(file: RenderedFile) -> list[Check]:
    config = "{extends: relaxed, rules: {line-length: disable, document-start: disable}}"
    return [run_tool("yamllint", ["-s", "-d", config, str(file.local)], file.dest, "pip install yamllint")]


def _shellcheck(file: RenderedFile) -> list[Check]:
    return [run_tool("shellcheck", ["-x", str(file.local)], file.dest, "apt-get install shellcheck")]


def _checkers() -> dict[str, list[FileChecker]]:
    from stagectl.validators import compose, nginx, prometheus, static

    return {
        "compose": [_yamllint, compose.check_file],
        "prometheus_config": [_yamllint, prometheus.check_config_file],
        "prometheus_rules": [_yamllint, prometheus.check_rules_file],
        "prometheus_web": [_yamllint, prometheus.check_web_config_file],
        "alertmanager": [_yamllint, prometheus.check_alertmanager_file],
        "blackbox": [_yamllint, static.check_file],
        "loki": [_yamllint, static.check_file],
        "alloy": [static.check_file],
        "grafana_ini": [static.check_file],
        "grafana_provisioning": [_yamllint, static.check_file],
        "nginx_main": [nginx.check_file],
        "nginx_project": [nginx.check_file],
        "shell": [_shellcheck],
        "systemd": [static.check_file],
        "dockerfile": [static.check_file],
        "env": [static.check_file],
        "yaml": [_yamllint],
        "json": [static.check_file],
        "text": [],
    }


def _check_file(file: RenderedFile, checkers: dict[str, list[FileChecker]]) -> list[Check]:
    if file.kind not in checkers:
        return [Check("manifest", file.dest, "failed", f"unknown kind '{file.kind}' in role {file.role}")]
    return [check for checker in checkers[file.kind] for check in checker(file)]


def run_checks(
    files: Iterable[RenderedFile], *, root: Path, vault_password_file: Path, lint_collection: bool = True
) -> list[Check]:
    checkers = _checkers()
    files = list(files)
    from stagectl.validators import base

    base.STOPPING.clear()
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        try:
            lint = pool.submit(ansible_lint) if lint_collection else None
            syntax = pool.submit(syntax_checks, root, vault_password_file) if lint_collection else None
            per_file = list(pool.map(lambda f: _check_file(f, checkers), files))
            results = [check for checks in per_file for check in checks]
            if syntax is not None and lint is not None:
                results += syntax.result()
                results.append(lint.result())
        except BaseException:
            # A signal: end the validators, so that the pool's threads finish now.
            pool.shutdown(wait=False, cancel_futures=True)
            base.kill_running()
            raise
    return results
