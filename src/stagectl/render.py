"""Rendering every file of every host offline, with the collection's own roles and templates."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stagectl import collection
from stagectl.environment import INVENTORY
from stagectl.errors import RenderFailed
from stagectl.runner import ProgressCallback, RunResult, allow_runs, cancel_runs, run_playbook

MANIFEST_DIR = ".manifest"


@dataclass(frozen=True)
class RenderedFile:
    host: str
    dest: str  # the path on the server
    local: Path  # where plan rendered it
    kind: str
    mode: str
    role: str


# Projects per render process below which another process costs more (its start, the roles'
# loading) than it saves.
PROJECTS_PER_PROCESS = 20


def render_processes(projects: int, cpus: int | None = None) -> int:
    """How many ansible-playbook processes render an environment of `projects` projects."""
    return max(1, min(cpus or os.cpu_count() or 1, projects // PROJECTS_PER_PROCESS))


def render_environment(
    root: Path,
    out: Path,
    vault_password_file: Path,
    on_progress: ProgressCallback | None = None,
    extra_env: dict[str, str] | None = None,
    *,
    processes: int = 1,
) -> list[RenderedFile]:
    """Render into `out/<host>/<path on server>`; return what was rendered, as the roles list it.
    With `processes` > 1, that many ansible-playbook processes each render a share of the projects
    (playbooks/render.yml), side by side; the files are the same."""
    # ansible-runner changes directory: relative paths would silently find no inventory.
    root, out = root.resolve(), out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    def run(index: int) -> RunResult:
        extravars: dict[str, Any] = {"stagectl_render_dir": str(out)}
        if processes > 1:
            extravars |= {"stagectl_render_slice": index, "stagectl_render_slices": processes}
        return run_playbook(
            collection.playbook("render"),
            root / INVENTORY,
            extravars=extravars,
            vault_password_file=vault_password_file,
            on_progress=on_progress,
            cwd=root,
            extra_env=extra_env,
        )

    if processes > 1:
        allow_runs()
        with ThreadPoolExecutor(max_workers=processes, thread_name_prefix="render") as pool:
            try:
                results = list(pool.map(run, range(processes)))
            except BaseException:  # Ctrl-C: no render process outlives the plan
                cancel_runs()
                raise
    else:
        results = [run(0)]
    failed = [result for result in results if not result.ok]
    if failed:
        details = [
            f"{f.host}: {f.task}: {f.message}" for result in failed for f in result.failures
        ] + [error for result in failed for error in result.errors]
        raise RenderFailed(
            "rendering failed:\n" + "\n".join(
                f"  - {d}" for d in details or [f"ansible-playbook exited {failed[0].rc}"]
            ),
            hint="a template or variable error; the message above names the file",
        )
    files = read_manifest(out)
    if not files:
        raise RenderFailed(
            f"nothing was rendered from {root / INVENTORY}",
            hint="the inventory's group `staging` must list at least one host",
        )
    return files


def read_manifest(out: Path) -> list[RenderedFile]:
    files: list[RenderedFile] = []
    for fragment in sorted((out / MANIFEST_DIR).glob("*.json")):
        data = json.loads(fragment.read_text())
        for entry in data["files"]:
            files.append(
                RenderedFile(
                    host=data["host"],
                    dest=entry["dest"],
                    local=out / data["host"] / entry["dest"].lstrip("/"),
                    kind=entry["kind"],
                    mode=str(entry["mode"]),
                    role=data["role"],
                )
            )
    return files
