"""Validator results kept by content, so an unchanged file is not validated twice.

A result is keyed by the validator's own version and the bytes of every file the check reads
(with their paths on the server), so a new tool version or any changed byte runs the check again.
Only passes are kept: a failure always runs again, so its message is the tool's own and names
today's files. One small JSON file per key under `$XDG_CACHE_HOME/stagectl/checks` (default
`~/.cache`); a cache that cannot be read or written is simply not used, never an error.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stagectl.validators.base import run

NO_CACHE_ENV = "STAGECTL_NO_CACHE"
CACHE_FORMAT = "1"  # bumped when what a key covers changes


def default_directory() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stagectl" / "checks"


@dataclass(frozen=True)
class Cached:
    """One check's result as kept: its tool, status and message (the target is in the key).
    nginx keeps its findings in the same shape: (file, severity, message)."""

    tool: str
    status: str
    message: str


class ResultCache:
    """Passed results by key; `directory=None` is a cache that keeps nothing."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    @classmethod
    def default(cls) -> ResultCache:
        if os.environ.get(NO_CACHE_ENV):
            return cls(None)
        return cls(default_directory())

    @property
    def enabled(self) -> bool:
        return self.directory is not None

    def _path(self, key: str) -> Path | None:
        return None if self.directory is None else self.directory / key[:2] / f"{key}.json"

    def get(self, key: str | None) -> list[Cached] | None:
        path = self._path(key) if key else None
        if path is None:
            return None
        try:
            data: Any = json.loads(path.read_text())
            return [Cached(str(d["tool"]), str(d["status"]), str(d["message"])) for d in data]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str | None, results: Sequence[Cached]) -> None:
        """Keep `results` (callers keep passes only)."""
        path = self._path(key) if key else None
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            scratch = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            scratch.write_text(json.dumps([r.__dict__ for r in results]))
            scratch.replace(path)  # atomic: concurrent plans never read half a file
        except OSError:
            return


def digest(*parts: str | bytes) -> str:
    """sha256 of the parts, each length-prefixed so that no two sequences collide."""
    h = hashlib.sha256(CACHE_FORMAT.encode())
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def files_digest(files: Iterable[Path], relative_to: Path) -> str:
    """Paths (relative to `relative_to`) and bytes of the files, in path order."""
    parts: list[str | bytes] = []
    for path in sorted(files):
        try:
            parts += [str(path.relative_to(relative_to)), path.read_bytes()]
        except ValueError:
            parts += [str(path), path.read_bytes()]
    return digest(*parts)


def tree_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


# Written by the tools themselves inside a source tree (Python, ansible-lint, the linters); not
# part of what a digest of the source covers.
_TOOL_WRITTEN = {"__pycache__", ".ansible", ".cache", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


def source_digest(root: Path) -> str:
    """Paths and bytes of the files under `root`, without what tools wrote there."""
    files = [p for p in tree_files(root) if not _TOOL_WRITTEN & set(p.relative_to(root).parts)]
    return files_digest(files, root)


_versions: dict[str, str | None] = {}
_versions_lock = threading.Lock()


def tool_version(tool: str, path: str | None, args: Sequence[str] = ("--version",)) -> str | None:
    """What identifies a tool's behaviour: its own version output plus the binary's size and
    modification time. None when unknown: then nothing of this tool is cached."""
    memo = f"{tool}\0{path}\0{' '.join(args)}"
    with _versions_lock:
        if memo in _versions:
            return _versions[memo]
    version: str | None = None
    if path is not None:
        try:
            stat = Path(path).stat()
            result = run([path, *args], timeout=60)
            if result.returncode == 0 and result.output:
                version = f"{tool} {result.output} {stat.st_size} {stat.st_mtime_ns}"
        except OSError:
            version = None
    with _versions_lock:
        _versions[memo] = version
    return version


def python_tool_version(tool: str, path: str | None, distributions: Sequence[str]) -> str | None:
    """Version of a tool installed beside the running Python, from its distributions' metadata
    (asking the tool itself costs seconds of imports, and ansible-lint would look for updates
    online); a tool found elsewhere is asked."""
    if path is None or Path(path).parent != Path(sys.executable).parent:
        return tool_version(tool, path)
    try:
        versions = [f"{d} {importlib.metadata.version(d)}" for d in distributions]
    except importlib.metadata.PackageNotFoundError:
        return tool_version(tool, path)
    return f"{tool} " + " ".join(versions)


def forget_versions() -> None:
    """Ask every tool for its version again (tests that swap a tool)."""
    with _versions_lock:
        _versions.clear()
