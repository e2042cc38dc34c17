"""`bootstrap` and `deploy`: the commands that change a server, through the collection."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from stagectl.cli.common import EnvDir, VaultFile, console, print_run, run_with_progress, vault_file

if TYPE_CHECKING:
    from stagectl.deploy import DeployReport


def bootstrap(
    login: Annotated[str, typer.Option("--as", help="Who to log in as the first time, e.g. root@HOST.")],
    env: EnvDir = Path("."),
    key: Annotated[
        Path | None,
        typer.Option("--key", help="Private key for that first login (default: the inventory's)."),
    ] = None,
    vault_password_file: VaultFile = None,
) -> None:
    """Prepare a fresh server: Python, the `ansible` user, passwordless sudo, its SSH key."""
    from stagectl.deploy import bootstrap as run_bootstrap

    out = console()
    result = run_with_progress(
        out, "bootstrapping",
        lambda progress: run_bootstrap(env, vault_file(env, vault_password_file), login,
                                       connect_key=key, on_progress=progress),
    )
    print_run(out, "bootstrap", result)
    if not result.ok:
        raise typer.Exit(code=1)


def deploy(
    env: EnvDir = Path("."),
    project: Annotated[str | None, typer.Option("--project", "-p", help="Deploy only this project.")] = None,
    check: Annotated[bool, typer.Option("--check", help="Show what would change (with diffs); change nothing.")] = False,
    vault_password_file: VaultFile = None,
    profile: Annotated[
        bool, typer.Option("--profile", help="After the summary, list the slowest tasks and where the time went.")
    ] = False,
) -> None:
    """Validate, then run the deployment phases (or one project's stack)."""
    from stagectl.deploy import deploy as run_deploy

    out = console()
    report = run_with_progress(
        out, "validating and rendering",
        lambda progress: run_deploy(env, vault_file(env, vault_password_file), project=project,
                                    check=check, on_progress=progress),
    )
    unchanged = "; unchanged since a validation that passed, not rendered again" if report.plan.cached else ""
    out.print(f"validated {len(report.plan.files)} files ({len(report.plan.checks)} checks passed{unchanged})",
              markup=False)
    print_run(out, f"deploy{' ' + project if project else ''}", report.run, check=check)
    if profile:
        print_profile(out, report)
    if not report.run.ok:
        raise typer.Exit(code=1)


def print_profile(out: Console, report: DeployReport, count: int = 15) -> None:
    run = report.run
    table = Table(title=f"slowest tasks ({len(run.timings)} task runs)")
    for column in ("seconds", "share", "host", "role", "task"):
        table.add_column(column, justify="right" if column in ("seconds", "share") else "left")
    for timing in run.slowest(count):
        share = timing.seconds / run.seconds if run.seconds else 0.0
        table.add_row(f"{timing.seconds:.2f}", f"{share:.0%}", timing.host, timing.role or "-", timing.task)
    out.print(table)
    by_role: dict[str, list[float]] = {}
    for timing in run.timings:
        by_role.setdefault(timing.role or "-", []).append(timing.seconds)
    out.print(
        "by role: " + ", ".join(
            f"{role} {sum(seconds):.1f}s/{len(seconds)}"
            for role, seconds in sorted(by_role.items(), key=lambda item: -sum(item[1]))
        ),
        markup=False,
    )
    in_tasks = sum(t.seconds for t in run.timings)
    out.print(
        f"validation and rendering {report.plan.render_seconds + report.plan.check_seconds:.1f}s; "
        f"ansible {run.seconds:.1f}s, of which {in_tasks:.1f}s in tasks on hosts",
        markup=False,
    )
