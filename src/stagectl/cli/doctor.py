"""`doctor`: the troubleshooting guide as checks, each failing one with its fix."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from stagectl.cli.common import EnvDir, VaultFile, console, run_with_progress, vault_file


def doctor(env: EnvDir = Path("."), vault_password_file: VaultFile = None) -> None:
    """The troubleshooting guide as checks: each failing one with its fix. Changes nothing."""
    from stagectl.doctor import run_doctor

    out = console()
    report = run_with_progress(
        out, "checking",
        lambda progress: run_doctor(env, vault_file(env, vault_password_file), progress),
    )
    table = Table(title="stagectl doctor")
    for column in ("host", "check", "result", "detail"):
        table.add_column(column)
    style = {"ok": "green", "failed": "bold red", "skipped": "yellow"}
    for check in report:
        table.add_row(check.host, check.name, f"[{style[check.status]}]{check.status}[/]", check.detail)
    out.print(table)
    for check in report:
        if check.status == "failed" and check.fix:
            out.print(f"fix for {check.name} on {check.host}: {check.fix}", markup=False)
    failed = sum(1 for c in report if c.status == "failed")
    out.print(f"{len(report)} checks, {failed} failed, in {report.seconds:.1f}s")
    if failed:
        raise typer.Exit(code=1)
