"""`certs status` and `certs renew`: the certificates of the server's public names."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from stagectl.cli.common import EnvDir, VaultFile, console, run_with_progress, vault_file

app = typer.Typer(help="Certificates of the server's public names: status and renewal.", no_args_is_help=True)


@app.command("status")
def status(env: EnvDir = Path("."), vault_password_file: VaultFile = None) -> None:
    """Per public name: who issued its certificate, when it expires, days left (read from the
    server). Changes nothing; exit 1 when a name has no certificate or fewer than 20 days left."""
    from stagectl import certs

    out = console()
    report = run_with_progress(
        out, "reading the certificates",
        lambda progress: certs.run_certs_status(env, vault_file(env, vault_password_file), progress),
    )
    # One plain line per name: names and issuers are never cropped to the terminal's width.
    for cert in report:
        days = cert.days_left
        left = "-" if days is None else f"{days:.0f} days left"
        expires = cert.not_after.strftime("%Y-%m-%d %H:%M UTC") if cert.not_after else "-"
        out.print(
            f"{cert.host}  {cert.name}  {cert.kind}  issuer: {cert.issuer or '-'}  expires: {expires}  "
            f"({left})  serial: {cert.serial or '-'}" + (f"  certificate: {cert.lineage}" if cert.lineage not in ("", cert.name) else "")
            + (f"  error: {cert.error}" if cert.error else ""),
            style=None if cert.ok else "bold red", markup=False,
        )
    for error in report.errors:
        out.print(f"[bold red]error:[/] {escape(error)}", markup=True)
    verdict = "[bold green]all well[/]" if report.ok else "[bold red]needs attention[/]"
    out.print(f"certificates {verdict} ({len(report)} names, {report.seconds:.1f}s)")
    if not report.ok:
        raise typer.Exit(code=1)


@app.command("renew")
def renew(
    env: EnvDir = Path("."),
    vault_password_file: VaultFile = None,
    name: Annotated[list[str] | None, typer.Option("--name", help="Renew only this name (repeatable).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Renew even when not due (certbot --force-renewal).")] = False,
) -> None:
    """certbot renews the certificates that are due (all with --force); its deploy hook tests the
    main nginx's configuration and reloads it. Exit 1 when a renewal failed."""
    from stagectl import certs

    out = console()
    report = run_with_progress(
        out, "renewing certificates",
        lambda progress: certs.run_certs_renew(
            env, vault_file(env, vault_password_file), name or [], force=force, on_progress=progress
        ),
    )
    words = {"renewed": "renewed, nginx reloaded", "not-due": "not due yet (--force renews anyway)",
             "failed": "FAILED"}
    for outcome in report:
        out.print(f"{outcome.host}: {outcome.name}: {words[outcome.result]}", markup=False)
        if outcome.detail:
            out.print(f"  certbot: {outcome.detail}", markup=False)
    for error in report.errors:
        out.print(f"[bold red]error:[/] {escape(error)}", markup=True)
    if not report.ok:
        out.print("[bold red]renewal failed[/]: the current certificates keep serving", markup=True)
        raise typer.Exit(code=1)
    out.print(f"renewal done ({report.seconds:.1f}s)", markup=False)
