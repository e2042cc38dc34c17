"""`stagectl backup run|list|verify|restore`: the server's backup tool (`stagectl-backup`, role
backups), driven through the playbook `stagectl.staging.backup`, for one project or all.

The tool does the work on the server (a restore is one locked run there: app stopped, live
database set aside and its safety backup taken meanwhile, restore into a new database in its place,
migrations, app started and health checked, the previous database put back on any failure). This module checks the user's input before anything runs, and
reads what the tool said. Nothing here prints.
"""

from __future__ import annotations

import datetime
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from stagectl.derived import SHARED_PROJECT
from stagectl.environment import INVENTORY, load_environment
from stagectl.errors import StagectlError
from stagectl.runner import ProgressCallback, RunResult, run_reporting_playbook

Action = Literal["run", "list", "verify", "restore"]
Source = Literal["local", "remote"]

#: A backup's id: the UTC time in its file names (`stagectl-backup list` shows it).
BACKUP_ID_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z$")
#: The tool's exit status for a caller's mistake (unknown backup, none yet): nothing was changed.
TOOL_REFUSED = 2
#: What a restore puts back: a project's database (with its migrations), its uploads (media) or
#: its Redis (a project with a worker or scheduler: its queue), or a part of the shared stack's
#: state (backed up as the pseudo-project SHARED_PROJECT, a name no project may take).
DATABASE = "database"
PROJECT_PARTS = (DATABASE, "media", "redis")
SHARED_PARTS = ("certs", "config", "alertmanager", "grafana")
RESTORABLE = (*PROJECT_PARTS, *SHARED_PARTS)


class BackupRefused(StagectlError):
    """The backup tool refused the request (unknown backup id, no backup yet): nothing changed."""


@dataclass(frozen=True)
class ToolRun:
    """What `stagectl-backup ACTION PROJECT` did on one host."""

    host: str
    project: str
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def messages(self) -> list[str]:
        """The tool's log lines, without their time and program prefix."""
        lines = []
        for line in self.stderr.splitlines():
            match = re.match(r"^\S+Z stagectl-backup (\w+): (.*)$", line)
            lines.append(f"{match.group(1)}: {match.group(2)}" if match else line)
        return [line for line in lines if line.strip()]

    def errors(self) -> list[str]:
        return [m.removeprefix("err: ") for m in self.messages() if m.startswith("err: ")]


@dataclass(frozen=True)
class Backup:
    """One complete backup of a project on a host."""

    host: str
    project: str
    id: str
    size: int
    path: str
    #: "verified", "failed" or "untested": the last restore test of this backup.
    verification: str
    #: When the last restore test ran (None: never).
    verified_at: datetime.datetime | None = None
    where: str = "local"

    @property
    def taken_at(self) -> datetime.datetime:
        return datetime.datetime.strptime(self.id, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)


@dataclass
class BackupReport:
    action: Action
    run: RunResult
    tools: list[ToolRun] = field(default_factory=list)
    backups: list[Backup] = field(default_factory=list)
    #: Hosts that did not answer (unreachable, the playbook failing before the tool ran).
    missing: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.run.ok and not self.missing and all(t.ok for t in self.tools)


def parse_list(host: str, project: str, stdout: str) -> list[Backup]:
    """`stagectl-backup list` output: time, size, path and restore-test state, tab-separated."""
    backups = []
    for line in stdout.splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or not BACKUP_ID_RE.match(parts[0]) or not parts[1].isdigit():
            continue
        state, _, stamp = (parts[3] if len(parts) > 3 else "untested").partition(":")
        if state == "remote":
            # An off-site copy: restic's snapshot id instead of a restore-test mark.
            backups.append(Backup(host, project, parts[0], int(parts[1]), parts[2], "-", where="off-site"))
            continue
        when = (
            datetime.datetime.fromtimestamp(int(stamp), tz=datetime.UTC) if stamp.isdigit() else None
        )
        backups.append(Backup(host, project, parts[0], int(parts[1]), parts[2], state or "untested", when))
    return backups


def _tool_runs(findings: dict[str, dict[str, Any]], key: str = "results") -> list[ToolRun]:
    runs = []
    for host, found in findings.items():
        for result in found.get(key) or []:
            if not isinstance(result, dict) or "backups_tool_project" not in result:
                continue
            runs.append(
                ToolRun(
                    host=host,
                    project=str(result["backups_tool_project"]),
                    rc=int(result.get("rc", -1)) if str(result.get("rc", "")).lstrip("-").isdigit() else -1,
                    stdout=str(result.get("stdout") or ""),
                    stderr=str(result.get("stderr") or result.get("msg") or ""),
                )
            )
    return runs


def _projects(root: Path, vault_password_file: Path, project: str | None) -> tuple[list[str], list[str], bool]:
    """(the projects to work on, the hosts, whether there is an off-site repository). Every
    project means every project and the shared stack's state (SHARED_PROJECT). Raises
    StagectlError for an unknown project."""
    # allocate=False: only the server's projects matter, with the ports they were deployed with.
    loaded = load_environment(root, vault_password_file=vault_password_file, allocate=False)
    names = [p.name for p in loaded.env.projects]
    if project is not None and project not in (*names, SHARED_PROJECT):
        raise StagectlError(
            f"project '{project}' is not in {INVENTORY}",
            hint=f"known projects: {', '.join(names) or 'none'}, and {SHARED_PROJECT} (the shared stack's state)",
        )
    remote = loaded.env.settings.backups.remote is not None
    return ([project] if project else [*names, SHARED_PROJECT]), list(loaded.env.inventory.staging.hosts), remote


def check_backup_id(backup_id: str) -> str:
    """A backup id as the user may give it: its time, `latest`, or the dump's file name or path
    (as deploy messages print it). Raises StagectlError for anything else."""
    name = backup_id.rsplit("/", 1)[-1].removesuffix(".dump").removesuffix(".parts")
    stamp = name.rsplit("-", 1)[-1]
    if backup_id != "latest" and not BACKUP_ID_RE.match(stamp):
        raise StagectlError(
            f"--at '{backup_id}' is not a backup id",
            hint="give its time as `stagectl backup list` shows it, e.g. 20261205T030712Z, or leave "
            "--at out for the newest backup",
        )
    return backup_id if backup_id == "latest" else stamp


def run_action(
    root: Path,
    vault_password_file: Path,
    action: Action,
    *,
    project: str | None = None,
    backup_id: str = "",
    part: str = "",
    remote: bool = False,
    on_progress: ProgressCallback | None = None,
) -> BackupReport:
    """Run `stagectl-backup ACTION` for `project` (or every project) on every host; `list`
    also lists the off-site copies when the environment has a repository."""
    started = time.monotonic()
    root = root.resolve()  # ansible-runner changes directory
    projects, hosts, _ = _projects(root, vault_password_file, project)
    extravars: dict[str, Any] = {"backups_tool_action": action, "backups_tool_projects": projects}
    if backup_id:
        extravars["backups_tool_id"] = backup_id
    if part:
        extravars["backups_tool_part"] = part
    if remote:
        extravars["backups_tool_remote"] = True
    run, findings = run_reporting_playbook(
        "backup", root, vault_password_file, hosts,
        out_variable="stagectl_backup_out", extravars=extravars, on_progress=on_progress,
    )
    report = BackupReport(action=action, run=run, tools=_tool_runs(findings),
                          missing=[h for h in hosts if h not in findings])
    if action == "list":
        report.tools += _tool_runs(findings, "remote_results")
        for tool in report.tools:
            if tool.ok:
                report.backups += parse_list(tool.host, tool.project, tool.stdout)
    report.seconds = time.monotonic() - started
    return report


@dataclass(frozen=True)
class RestoreRequest:
    """A restore the user asked for, checked on this machine (nothing has run yet)."""

    root: Path
    vault_password_file: Path
    #: A project, or SHARED_PROJECT for a part of the shared stack's state.
    project: str
    #: The backup's time, or `latest`.
    backup_id: str
    source: Source = "local"
    #: What is put back: one of PROJECT_PARTS or SHARED_PARTS.
    what: str = DATABASE


def check_restore(
    root: Path, vault_password_file: Path, project: str | None, *, at: str | None = None,
    source: Source = "local", what: str = DATABASE,
) -> RestoreRequest:
    """Check a restore request before anything runs (and before the user is asked to confirm).
    Raises StagectlError for an unknown project or part, a malformed backup id or an unavailable
    source."""
    if what not in RESTORABLE:
        raise StagectlError(f"--what '{what}' is not something stagectl backs up",
                            hint=f"use one of: {', '.join(RESTORABLE)}")
    if what in PROJECT_PARTS and project in (None, SHARED_PROJECT):
        raise StagectlError(f"--what {what} restores a project's {what}: name the project",
                            hint="add --project NAME, or --what certs|config|alertmanager|grafana for "
                            "the shared stack's state")
    if what in SHARED_PARTS and project not in (None, SHARED_PROJECT):
        raise StagectlError(f"--what {what} restores the shared stack's state, not project {project}'s",
                            hint="leave out --project")
    project = project if what in PROJECT_PARTS and project else SHARED_PROJECT
    backup_id = check_backup_id(at or "latest")
    root = root.resolve()
    _, _, has_remote = _projects(root, vault_password_file, project)
    if source == "remote" and not has_remote:
        raise StagectlError(
            "--from remote: the environment has no off-site repository (backups.remote in "
            "group_vars/all.yml), so there is no off-site copy to restore from",
            hint="restore a local backup (leave out --from remote); `stagectl backup list` shows them",
        )
    return RestoreRequest(root, vault_password_file, project, backup_id, source, what)


def restore(request: RestoreRequest, *, on_progress: ProgressCallback | None = None) -> BackupReport:
    """Put the requested backup back into the project's live database. Raises BackupRefused when
    the server has no such backup (nothing was changed there)."""
    report = run_action(request.root, request.vault_password_file, "restore", project=request.project,
                        backup_id=request.backup_id, remote=request.source == "remote",
                        part="" if request.what == DATABASE else request.what, on_progress=on_progress)
    refused = [t for t in report.tools if t.rc == TOOL_REFUSED]
    if refused:
        reasons = "; ".join(e for t in refused for e in t.errors()) or "the backup tool refused the request"
        raise BackupRefused(
            f"{reasons}. Nothing was changed",
            hint=f"`stagectl backup list --project {request.project}` lists the backups to restore",
        )
    return report
