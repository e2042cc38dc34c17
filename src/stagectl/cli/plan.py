"""`init` and `plan`: the environment files, written and checked on this machine only."""

from __future__ import annotations

import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from stagectl import plan as plan_mod
from stagectl.cli.common import EnvDir, VaultFile, console, run_with_progress, vault_file


def init(
    directory: Annotated[Path, typer.Argument(help="Where to write the environment (created if missing).")],
    vault_password_file: VaultFile = None,
) -> None:
    """Scaffold the Ansible layout with the example projects and a vault of generated secrets."""
    from stagectl.scaffold import init_environment

    password_file = vault_file(directory, vault_password_file)
    written = init_environment(directory, password_file)
    out = console()
    out.print(f"Environment written to [bold]{directory}[/]:")
    for path in written:
        out.print(f"  {path.relative_to(directory)}", markup=False)
    out.print(f"Vault password file: {password_file} (mode 0600, outside the environment; back it up)", markup=False)
    out.print("Next: stagectl plan " + shlex.join(["--env", str(directory)]), markup=False)


def plan(
    env: EnvDir = Path("."),
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Keep the rendered files here (default: a temporary directory)."),
    ] = None,
    vault_password_file: VaultFile = None,
) -> None:
    """Validate the environment, render every file for every host and check it with upstream tools."""
    out = console()
    keep = out_dir is not None
    rendered = out_dir if out_dir is not None else Path(tempfile.mkdtemp(prefix="stagectl-plan-"))
    try:
        report = run_with_progress(
            out, "validating the environment",
            lambda progress: plan_mod.plan(env, rendered, vault_file(env, vault_password_file), on_progress=progress),
        )
    finally:
        if not keep:
            # The rendered files hold secrets: a temporary render never outlives the command.
            shutil.rmtree(rendered, ignore_errors=True)
    print_plan(out, report, rendered if keep else None)
    if not report.ok:
        raise typer.Exit(code=1)


def print_plan(out: Console, report: plan_mod.PlanReport, kept: Path | None) -> None:
    where = "written to inventory/staging.yml" if report.ok else "not written: the plan failed"
    for name, ports in report.allocated.items():
        out.print(f"allocated ports for {name}: {ports} ({where})", markup=False)
    failed = [c for c in report.checks if c.status == "failed"]
    for check in failed:
        out.print(f"[bold red]FAILED[/] {check.tool} {check.target}", markup=True)
        out.print("  " + check.message.strip().replace("\n", "\n  "), markup=False)
    table = Table(title="stagectl plan", show_lines=False)
    table.add_column("check")
    table.add_column("passed", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("skipped", justify="right")
    for tool, counts in report.summary().items():
        table.add_row(tool, str(counts["passed"]), str(counts["failed"]), str(counts["skipped"]))
    out.print(table)
    for check in report.checks:
        if check.status == "skipped":
            out.print(f"skipped {check.tool} on {check.target}: {check.message}", markup=False)
    for note in report.notes:
        out.print(f"[bold yellow]WARNING[/] {escape(note)}", markup=True)
    hosts = ", ".join(report.hosts)
    out.print(
        f"{len(report.files)} files rendered for {hosts} in {report.render_seconds:.1f}s; "
        f"checks took {report.check_seconds:.1f}s."
        + (f" Rendered files kept in {kept}." if kept else ""),
        markup=False,
    )
    out.print("[bold green]plan OK[/]" if report.ok else "[bold red]plan FAILED[/]")
