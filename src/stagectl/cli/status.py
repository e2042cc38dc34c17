"""`status`: stacks, targets, alerts, backups and certificates per project, read from the server."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from stagectl.cli.common import EnvDir, VaultFile, console, run_with_progress, vault_file

if TYPE_CHECKING:
    from stagectl.status import ProjectStatus


def status(env: EnvDir = Path("."), vault_password_file: VaultFile = None) -> None:
    """Stacks, scrape targets, firing alerts, last backup (local and off-site) and certificate expiry, per project.
    Changes nothing; exit 1 when anything needs attention."""
    from stagectl import status as status_mod

    out = console()
    report = run_with_progress(
        out, "reading the status",
        lambda progress: status_mod.run_status(env, vault_file(env, vault_password_file), progress),
    )
    for host in report:
        table = Table(title=f"stagectl status: {host.host}")
        for column in ("project", "stack", "targets", "alerts", "last backup", "off-site", "certificates"):
            table.add_column(column)
        for project in host.projects:
            table.add_row(project.name, *status_cells(project))
        if host.projects:
            out.print(table)
        for error in host.errors:
            out.print(f"[bold red]{host.host}:[/] ", end="", markup=True)
            out.print(error, markup=False)
        for line in status_mod.summary_lines(host.projects):
            out.print(f"  {line}", markup=False)
    verdict = "[bold green]all well[/]" if report.ok else "[bold red]needs attention[/]"
    out.print(f"status {verdict} ({report.seconds:.1f}s)")
    if not report.ok:
        raise typer.Exit(code=1)


def status_cells(project: ProjectStatus) -> list[str]:
    from stagectl.status import CERTIFICATE_MIN_DAYS, age

    def mark(ok: bool, text: str) -> str:
        return f"[green]{text}[/]" if ok else f"[bold red]{text}[/]"

    if project.stack_error:
        stack = mark(False, project.stack_error)
    else:
        up = project.services - len(project.problems)
        stack = mark(project.stack_ok, f"{up}/{project.services} up")
    down = len(project.targets_down)
    targets = mark(not down, f"{len(project.targets) - down}/{len(project.targets)} up") if project.targets else "-"
    alerts = (
        mark(False, ", ".join(sorted({f"{a.name} ({a.severity})" for a in project.alerts})))
        if project.alerts else mark(True, "none")
    )
    backup = "-" if project.backup_age is None else mark(project.backup_ok, f"{age(project.backup_age)} ago")
    offsite = "-" if project.offsite_age is None else mark(project.offsite_ok, f"{age(project.offsite_age)} ago")
    certificates = ", ".join(
        mark(c.days_left >= CERTIFICATE_MIN_DAYS, f"{c.domain} {c.days_left:.0f}d") for c in project.certificates
    ) or "-"
    return [stack, targets, alerts, backup, offsite, certificates]
