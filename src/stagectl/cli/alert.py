"""`alert test`: proof that alerts reach their receivers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from stagectl.cli.common import EnvDir, VaultFile, console, run_with_progress, vault_file

app = typer.Typer(help="Alerting: prove that alerts reach their receivers.", no_args_is_help=True)


@app.command("test")
def test(
    env: EnvDir = Path("."),
    vault_password_file: VaultFile = None,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Label the alert with this project (default: shared).")
    ] = None,
    timeout: Annotated[int, typer.Option(help="Seconds to wait for every receiver.", min=5, max=600)] = 60,
) -> None:
    """Send a test alert through Alertmanager to every configured receiver, then resolve it."""
    from stagectl.alerts import FIXES, TEST_ALERT, run_alert_test

    out = console()
    report = run_with_progress(
        out, "sending a test alert",
        lambda progress: run_alert_test(
            env, vault_file(env, vault_password_file), project, progress, timeout=timeout
        ),
    )
    table = Table(title=f"stagectl alert test ({TEST_ALERT})")
    for column in ("host", "receiver", "integration", "result", "delivered", "failed"):
        table.add_column(column)
    for result in report:
        receivers = ", ".join(result.receivers) or "-"
        if result.error:
            table.add_row(result.host, receivers, "-", "[bold red]not sent[/]", "-", "-")
        elif not result.deliveries:
            accepted = "accepted, no receiver configured" if result.accepted else "not accepted"
            table.add_row(result.host, receivers, "-", f"[yellow]{accepted}[/]", "-", "-")
        for delivery in result.deliveries:
            style = "green" if delivery.ok else "bold red"
            table.add_row(result.host, receivers, delivery.integration, f"[{style}]{delivery.outcome}[/]",
                          f"{delivery.delivered}/{delivery.expected}", str(delivery.failed))
    out.print(table)
    for result in report:
        if result.error:
            out.print(f"{result.host}: {result.error}", markup=False)
        if not result.error and not result.deliveries:
            out.print(
                f"{result.host}: the alert reached Alertmanager, but no receiver is configured: set "
                "alerting.email_to or alerting.webhook_urls in group_vars/staging.yml and deploy",
                markup=False,
            )
        for delivery in result.deliveries:
            if not delivery.ok:
                out.print(f"{result.host}: {delivery.integration} {delivery.outcome}: {FIXES[delivery.integration]}",
                          markup=False)
        if result.accepted:
            out.print(f"{result.host}: test id {result.test_id} (label test_id), resolved after the test",
                      markup=False)
    verdict = "[bold green]delivered[/]" if report.ok else "[bold red]FAILED[/]"
    out.print(f"alert test {verdict} in {report.seconds:.1f}s")
    if not report.ok:
        raise typer.Exit(code=1)
