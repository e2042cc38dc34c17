"""`backup run/verify/list/restore`: the projects' backups, taken, tested, listed and put back."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from stagectl.cli.common import EnvDir, VaultFile, console, run_with_progress, vault_file
from stagectl.errors import StagectlError

if TYPE_CHECKING:
    from stagectl.backup import BackupReport

app = typer.Typer(
    help="Backups: take, list, test and restore the projects' database backups.", no_args_is_help=True
)
BackupProject = Annotated[
    str | None, typer.Option("--project", "-p", help="Only this project (default: every project).")
]


def print_tool_runs(out: Console, report: BackupReport, verb: str) -> None:
    for tool in report.tools:
        mark = "[green]OK[/]" if tool.ok else "[bold red]FAILED[/]"
        out.print(f"{tool.host}: {verb} of {escape(tool.project)} {mark}", markup=True)
        for message in tool.messages():
            out.print(f"  {message}", markup=False)
    for host in report.missing:
        out.print(f"[bold red]{host}:[/] no answer: ", end="", markup=True)
        out.print(report.run.failure_detail(host), markup=False)


def _action(action: Literal["run", "verify"], verb: str, env: Path, project: str | None,
            vault_password_file: Path | None) -> None:
    from stagectl import backup as backup_mod

    out = console()
    report = run_with_progress(
        out, f"{verb} running",
        lambda progress: backup_mod.run_action(env, vault_file(env, vault_password_file), action,
                                               project=project, on_progress=progress),
    )
    print_tool_runs(out, report, verb)
    failed = sum(1 for t in report.tools if not t.ok) + len(report.missing)
    verdict = "[bold green]OK[/]" if report.ok else f"[bold red]FAILED[/] ({failed} failed)"
    out.print(f"backup {action} {verdict} in {report.seconds:.1f}s ({len(report.tools)} projects)")
    if not report.ok:
        raise typer.Exit(code=1)


@app.command("run")
def run(env: EnvDir = Path("."), project: BackupProject = None, vault_password_file: VaultFile = None) -> None:
    """Take a backup now: database dump, configuration and media, checksummed (what the daily timer does)."""
    _action("run", "backup", env, project, vault_password_file)


@app.command("verify")
def verify(env: EnvDir = Path("."), project: BackupProject = None, vault_password_file: VaultFile = None) -> None:
    """Restore test now: the newest backup restored into a throwaway database and checked (what the
    weekly timer does). The live database is not touched."""
    _action("verify", "restore test", env, project, vault_password_file)


@app.command("list")
def list_backups(env: EnvDir = Path("."), project: BackupProject = None, vault_password_file: VaultFile = None) -> None:
    """The backups on the server, newest first: id (time), size, age and restore-test state."""
    from stagectl import backup as backup_mod
    from stagectl.status import age

    out = console()
    report = run_with_progress(
        out, "listing backups",
        lambda progress: backup_mod.run_action(env, vault_file(env, vault_password_file), "list",
                                               project=project, on_progress=progress),
    )
    now = datetime.datetime.now(tz=datetime.UTC)
    table = Table(title="stagectl backup list")
    for column in ("project", "id (UTC time)", "size", "age", "restore test", "where"):
        # The id is what `backup restore --at` takes: never cut.
        table.add_column(column, justify="right" if column == "size" else "left",
                         no_wrap=column == "id (UTC time)", min_width=16 if column == "id (UTC time)" else None)
    several_hosts = len({item.host for item in report.backups}) > 1
    for item in report.backups:
        tested = item.verification
        if item.verified_at is not None:
            tested += f" {age((now - item.verified_at).total_seconds())} ago"
        style = {"verified": "green", "failed": "bold red"}.get(item.verification, "yellow")
        # restic's snapshot list does not give a dump's size cheaply: off-site copies show none.
        size = "-" if item.where == "off-site" else (
            f"{item.size / 1e6:.1f} MB" if item.size >= 100_000 else f"{item.size} B")
        table.add_row(item.project, item.id, size,
                      age((now - item.taken_at).total_seconds()), f"[{style}]{tested}[/]",
                      f"{item.where} {item.host}" if several_hosts else item.where)
    out.print(table)
    for tool in report.tools:
        if not tool.ok:
            out.print(f"[bold red]{tool.host}: list of {escape(tool.project)} failed:[/] ", end="", markup=True)
            out.print("; ".join(tool.errors() or tool.messages()), markup=False)
    for host in report.missing:
        out.print(f"[bold red]{host}:[/] no answer: ", end="", markup=True)
        out.print(report.run.failure_detail(host), markup=False)
    counted = {t.project: sum(1 for b in report.backups if b.project == t.project) for t in report.tools}
    none = sorted(name for name, count in counted.items() if count == 0)
    out.print(f"{len(report.backups)} backups of {len(counted)} projects"
              + (f"; none yet of: {', '.join(none)} (stagectl backup run)" if none else ""), markup=False)
    if not report.ok:
        raise typer.Exit(code=1)


def can_ask() -> bool:
    """Whether a confirmation can be asked: a person at a terminal, not a script's empty stdin."""
    return sys.stdin.isatty()


@app.command("restore")
def restore(
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="The project whose database, media or Redis is replaced.")
    ] = None,
    what: Annotated[
        str, typer.Option("--what", help="database, media or redis (a project's), or a part of the shared stack's "
                          "state: certs, config, alertmanager, grafana (default: database).")
    ] = "database",
    at: Annotated[
        str | None, typer.Option("--at", help="The backup's id (its time, see `stagectl backup list`); default the newest.")
    ] = None,
    source: Annotated[
        str, typer.Option("--from", help="local (the server's backups) or remote (the off-site copy).")
    ] = "local",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    env: EnvDir = Path("."),
    vault_password_file: VaultFile = None,
) -> None:
    """Put a backup back. A project's LIVE database: the app is stopped, its database set aside (a
    safety backup of it taken meanwhile), the backup restored and migrated in its place, the app
    started and health checked. Its Redis (a project with a worker or scheduler) or its uploads
    (media): the app stopped, a safety backup taken, the backup's files in place of the current
    ones, the app started and health checked. A part of the shared stack (certificates, configuration, Alertmanager's silences,
    Grafana's data): a safety backup, the files replaced, the service restarted (nginx tested and
    reloaded). On any failure what was there goes back."""
    from stagectl import backup as backup_mod

    out = console()
    if source not in ("local", "remote"):
        raise StagectlError(f"--from '{source}' is not a backup source", hint="use --from local or --from remote")
    request = backup_mod.check_restore(env, vault_file(env, vault_password_file), project, at=at,
                                       source="remote" if source == "remote" else "local", what=what)
    # What is replaced, as the messages name it: (subject, target, what stops, what is true after).
    subject, target, stops, done = {
        "database": (request.project, f"the live database of {request.project}",
                     "The app stops meanwhile", "migrations applied, app healthy"),
        "media": (f"{request.project}'s media", f"the uploaded files (media) of {request.project}",
                  "The app stops meanwhile", "app healthy"),
        "redis": (f"{request.project}'s Redis", f"the Redis data of {request.project}",
                  "The app and Redis stop meanwhile", "Redis and the app healthy"),
    }.get(request.what, (f"the shared stack's {request.what}", f"the shared stack's {request.what}",
                         "Its service restarts", "its service runs on it"))
    if not yes and not can_ask():
        raise StagectlError(
            f"restoring replaces {target} and needs a confirmation, but there is no terminal to ask on",
            hint="pass --yes to restore without asking",
        )
    which = "the newest backup" if request.backup_id == "latest" else f"backup {request.backup_id}"
    if not yes:
        typer.confirm(f"Replace {target} with {which}? {stops}; a safety backup of the current data is kept",
                      abort=True)
    report = run_with_progress(
        out, f"restoring {subject}", lambda progress: backup_mod.restore(request, on_progress=progress)
    )
    print_tool_runs(out, report, "restore")
    if report.ok:
        out.print(f"backup restore of {escape(subject)} [bold green]OK[/] in {report.seconds:.1f}s: {which} is "
                  f"in place, {done}", markup=True)
        return
    out.print(f"backup restore of {escape(subject)} [bold red]FAILED[/] in {report.seconds:.1f}s: see the "
              "messages above (what was there is put back on failure)", markup=True)
    raise typer.Exit(code=1)
