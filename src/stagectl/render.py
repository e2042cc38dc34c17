"""Rendering every file of every host offline, with the collection's own roles and templates."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from stagectl import collection
from stagectl.environment import INVENTORY
from stagectl.errors import RenderFailed
from stagectl.runner import ProgressCallback, run_playbook

MANIFEST_DIR = ".manifest"


@dataclass(frozen=True)
class RenderedFile:
    host: str
    dest: str  # the path on the server
    local: Path  # where plan rendered it
    kind: str
    mode: str
    role: str


def render_environment(
    root: Path,
    out: Path,
    vault_password_file: Path,
    on_progress: ProgressCallback | None = None,
    extra_env: dict[str, str] | None = None,
) -> list[RenderedFile]:
    """Render into `out/<host>/<path on server>`; return what was rendered, as the roles list it."""
    # ansible-runner changes directory: relative paths would silently find no inventory.
    root, out = root.resolve(), out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    result = run_playbook(
        collection.playbook("render"),
        root / INVENTORY,
        extravars={"stagectl_render_dir": str(out)},
        vault_password_file=vault_password_file,
        on_progress=on_progress,
        cwd=root,
        extra_env=extra_env,
    )
    if not result.ok:
        details = [f"{f.host}: {f.task}: {f.message}" for f in result.failures] + result.errors
        raise RenderFailed(
            "rendering failed:\n" + "\n".join(f"  - {d}" for d in details or [f"ansible-playbook exited {result.rc}"]),
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
