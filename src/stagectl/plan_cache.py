"""A deploy's validation kept by what it read, so that an unchanged environment is not rendered and
checked again before every deploy.

`stagectl deploy` validates before it touches a server: it renders every file offline and runs the
upstream validators on them (`stagectl.plan`), which takes several seconds. The outcome is a
function of the environment's files (ansible.cfg, inventory, group_vars, host_vars), of stagectl
itself (its code, collection and templates) and of ansible-core: a passed validation is kept under
the digest of those, and a deploy with the same digest reuses it. The environment is still loaded
and checked, and its vault decrypted, on every deploy. Only passes are kept. One small JSON file per
key under `$XDG_CACHE_HOME/stagectl/plans` (default `~/.cache`); `STAGECTL_NO_CACHE=1` turns it
off, and a cache that cannot be read or written is simply not used.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import Any

from stagectl.plan import PlanReport
from stagectl.render import RenderedFile
from stagectl.validate import Check
from stagectl.validators.cache import (
    NO_CACHE_ENV,
    default_directory,
    digest,
    files_digest,
    source_digest,
)

#: What of an environment directory the render reads.
ENVIRONMENT_PARTS = ("ansible.cfg", "inventory", "group_vars", "host_vars")
FORMAT = "1"  # bumped when what a kept plan holds changes
#: Kept plans beyond this many (the least recently written first) are deleted.
KEEP = 50


def cache_directory() -> Path | None:
    if os.environ.get(NO_CACHE_ENV):
        return None
    return default_directory().parent / "plans"


def _visible_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return [p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in
                                                                      p.relative_to(path).parts)]


@cache
def _stagectl_digest() -> str:
    """stagectl's own files (code, collection, templates) and ansible-core's version: fixed for
    the life of a process."""
    return digest(source_digest(Path(__file__).resolve().parent), importlib.metadata.version("ansible-core"))


def key(root: Path) -> str:
    files = [f for part in ENVIRONMENT_PARTS for f in _visible_files(root / part)]
    return digest("plan", FORMAT, _stagectl_digest(), files_digest(files, root))


def get(directory: Path | None, plan_key: str) -> PlanReport | None:
    if directory is None:
        return None
    try:
        data: Any = json.loads((directory / f"{plan_key}.json").read_text())
        return PlanReport(
            hosts=[str(h) for h in data["hosts"]],
            files=[RenderedFile(**{**f, "local": Path(f["local"])}) for f in data["files"]],
            checks=[Check(**c) for c in data["checks"]],
            notes=[str(n) for n in data["notes"]],
            cached=True,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def put(directory: Path | None, plan_key: str, report: PlanReport) -> None:
    """Keep a passed plan that allocated nothing (an allocation changes the environment's files:
    the next deploy has another key anyway)."""
    if directory is None or not report.ok or report.allocated:
        return
    data = {
        "hosts": report.hosts,
        "files": [{**asdict(f), "local": str(f.local)} for f in report.files],
        "checks": [asdict(c) for c in report.checks],
        "notes": report.notes,
    }
    try:
        directory.mkdir(parents=True, exist_ok=True)
        scratch = directory / f".{plan_key}.{os.getpid()}.tmp"
        scratch.write_text(json.dumps(data))
        scratch.replace(directory / f"{plan_key}.json")  # atomic: a concurrent deploy never reads half
        kept = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in kept[KEEP:]:
            old.unlink(missing_ok=True)
    except OSError:
        return
