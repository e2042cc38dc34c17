"""`upgrade`: OS packages and images, with a backup of every project first and the health
checked after."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from stagectl.cli.backup import print_tool_runs
from stagectl.cli.common import EnvDir, VaultFile, console, print_run, vault_file

if TYPE_CHECKING:
    from stagectl.upgrade import HostUpgrade


def upgrade(
    env: EnvDir = Path("."),
    vault_password_file: VaultFile = None,
    reboot: Annotated[bool, typer.Option(
        "--reboot", help="Reboot a server whose upgrade left a newer kernel (or a reboot flag) waiting.",
    )] = False,
) -> None:
    """Back up every project, upgrade the OS packages (Debian: a full upgrade; Arch: pacman -Syu),
    deploy (image tags changed in the environment), then check that every stack and target is
    healthy. Stops at the first step that fails; exit 1 then, or when the health check fails."""
    from stagectl import upgrade as upgrade_mod

    out = console()
    with out.status("upgrading") as status:
        def progress(task: str, host: str, elapsed: float) -> None:
            status.update(f"[{elapsed:6.1f}s] {host}: {task}")

        def step(name: str) -> None:
            out.print(f"upgrade: {name}", markup=False)

        report = upgrade_mod.run_upgrade(env, vault_file(env, vault_password_file), reboot=reboot,
                                         on_progress=progress, on_step=step)
    print_tool_runs(out, report.backups, "backup")
    if not report.backups.ok:
        out.print("[bold red]upgrade stopped[/]: the backup failed, nothing was upgraded", markup=True)
        raise typer.Exit(code=1)
    _print_hosts(out, report.hosts)
    if report.run is not None and not report.run.ok:
        print_run(out, "upgrade", report.run)
    if report.deploy is None:
        out.print("[bold red]upgrade stopped[/]: the OS upgrade failed, nothing was deployed", markup=True)
        raise typer.Exit(code=1)
    print_run(out, "deploy", report.deploy.run)
    if report.status is None:
        raise typer.Exit(code=1)
    for host in report.status:
        for error in host.errors:
            out.print(f"[bold red]{host.host}:[/] {escape(error)}", markup=True)
        for project in host.projects:
            problems = [*project.problems, *([project.stack_error] if project.stack_error else []),
                        *(f"target down: {t.job} {t.instance}" for t in project.targets_down)]
            if problems:
                out.print(f"[bold red]{host.host}: {escape(project.name)}:[/] {escape('; '.join(problems))}",
                          markup=True)
    verdict = "[bold green]healthy[/]" if report.healthy else "[bold red]NOT healthy[/]"
    out.print(f"upgrade done in {report.seconds:.1f}s: every stack and target {verdict}", markup=True)
    if not report.ok:
        raise typer.Exit(code=1)


def _print_hosts(out: Console, hosts: list[HostUpgrade]) -> None:
    for host in hosts:
        if host.error:
            out.print(f"[bold red]{host.host}:[/] the OS upgrade failed: ", end="", markup=True)
            out.print(host.error, markup=False)
            continue
        out.print(f"{host.host}: {len(host.packages)} packages upgraded", markup=False)
        for package in host.packages:
            out.print(f"  {package}", markup=False)
        if host.rebooted:
            out.print(f"{host.host}: rebooted ({'; '.join(host.reboot_reasons)})", markup=False)
        elif host.reboot_due:
            out.print(f"[bold yellow]{host.host}: a reboot is due[/] ({escape('; '.join(host.reboot_reasons))}): "
                      "run `stagectl upgrade --reboot`", markup=True)
        else:
            out.print(f"{host.host}: no reboot needed", markup=False)
        if host.services:
            out.print(f"{host.host}: still running replaced libraries (restart them or reboot): "
                      f"{', '.join(host.services)}", markup=False)
