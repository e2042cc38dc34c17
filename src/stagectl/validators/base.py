"""What every validator shares: the Finding type, locating tools, running them, and the adapter
to `stagectl.validate.Check` that `plan` uses.

A validator function takes paths and returns `list[Finding]` (empty: the file passed). When its
upstream tool is not installed it raises `ToolMissing(tool, debian_package)`: a check that could
not run is never reported as a pass.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from stagectl import process
from stagectl.errors import ToolMissing

if TYPE_CHECKING:
    from stagectl.validate import Check

Severity = Literal["error", "warning", "info"]

# Tools Debian installs outside a non-root user's PATH (nginx is in /usr/sbin).
_EXTRA_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")


@dataclass(frozen=True)
class Finding:
    """One thing a validator has to say about a file, in the upstream tool's own words."""

    tool: str
    file: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.file}: {self.message}" if self.file else self.message


def errors(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


def find_tool(tool: str) -> str | None:
    found = shutil.which(tool)
    if found:
        return found
    for directory in _EXTRA_DIRS:
        candidate = Path(directory) / tool
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def require_tool(tool: str, package: str) -> str:
    """The tool's path, or ToolMissing naming the Debian package that provides it."""
    path = find_tool(tool)
    if path is None:
        raise ToolMissing(tool, package)
    return path


@dataclass(frozen=True)
class Result:
    returncode: int
    output: str  # stdout and stderr, stripped


def run(args: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: int = 120) -> Result:
    """Run a validator; never raises for a non-zero exit (that is the validator's verdict). An
    interrupted plan ends it with everything it started (`stagectl.process.stop_all`)."""
    done = process.run(args, cwd=cwd, env=env, timeout=timeout)
    return Result(done.returncode, done.output)


def as_checks(findings: Sequence[Finding], *, tool: str, target: str) -> list[Check]:
    """One `Check` for plan: failed with every error, else passed (warnings as its message)."""
    from stagectl.validate import Check

    failed = errors(findings)
    if failed:
        return [Check(tool, target, "failed", "\n".join(f.message for f in failed))]
    notes = [f.message for f in findings]
    return [Check(tool, target, "passed", "\n".join(notes))]


def missing_check(exc: ToolMissing, target: str) -> Check:
    from stagectl.validate import Check

    return Check(exc.tool, target, "failed", f"{exc.tool} is not installed: {exc.hint}")
