"""The `stagectl` command line. Commands stay thin: they call library functions and present results.
Typed errors from below become one clear message and exit code 2; nothing prints a traceback for a
user's mistake."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from stagectl import environment, plan as plan_mod, vault
from stagectl.errors import EnvironmentInvalid, StagectlError

app = typer.Typer(
    help="One declarative environment to a running, monitored, backed-up Docker staging server.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
secrets_app = typer.Typer(help="Secrets in the ansible-vault file.", no_args_is_help=True)
app.add_typer(secrets_app, name="secrets")

EnvDir = Annotated[
    Path,
    typer.Option("--env", "-e", help="The environment directory (from `stagectl init`).", envvar="STAGECTL_ENV"),
]
VaultFile = Annotated[
    Path | None,
    typer.Option(
        "--vault-password-file",
        help="File holding the vault password [default: ~/.config/stagectl/<env dir name>.vault-pass].",
        envvar=environment.VAULT_PASSWORD_ENV,
    ),
]


def _console() -> Console:
    return Console(stderr=False, highlight=False, soft_wrap=True)


def _fail(error: StagectlError) -> NoReturn:
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if isinstance(error, EnvironmentInvalid):
        err.print(f"[bold red]error:[/] {error.args[0]}:", markup=True)
        for problem in error.problems:
            err.print(f"  - {problem}", markup=False)
    else:
        err.print("[bold red]error:[/] ", end="", markup=True)
        err.print(str(error), markup=False)
        if error.hint:
            err.print(f"  hint: {error.hint}", markup=False)
    raise typer.Exit(code=2)


def _vault_file(root: Path, given: Path | None) -> Path:
    return given if given is not None else environment.default_vault_password_file(root)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Where to write the environment (created if missing).")],
    vault_password_file: VaultFile = None,
) -> None:
    """Scaffold the seed's layout with the example projects and a vault of generated secrets."""
    from stagectl.scaffold import init_environment

    password_file = _vault_file(directory, vault_password_file)
    try:
        written = init_environment(directory, password_file)
    except StagectlError as exc:
        _fail(exc)
    console = _console()
    console.print(f"Environment written to [bold]{directory}[/]:")
    for path in written:
        console.print(f"  {path.relative_to(directory)}", markup=False)
    console.print(f"Vault password file: {password_file} (mode 0600, outside the environment; back it up)", markup=False)
    console.print("Next: [bold]stagectl plan --env " + str(directory) + "[/]")


@app.command()
def plan(
    env: EnvDir = Path("."),
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Keep the rendered files here (default: a temporary directory)."),
    ] = None,
    vault_password_file: VaultFile = None,
) -> None:
    """Validate the environment, render every file for every host and check it with upstream tools."""
    console = _console()
    keep = out is not None
    out_dir = out if out is not None else Path(tempfile.mkdtemp(prefix="stagectl-plan-"))
    try:
        with console.status("validating the environment") as status:
            def progress(task: str, host: str, elapsed: float) -> None:
                status.update(f"[{elapsed:5.1f}s] {host}: {task}")

            report = plan_mod.plan(env, out_dir, _vault_file(env, vault_password_file), on_progress=progress)
    except StagectlError as exc:
        _fail(exc)
    finally:
        if not keep:
            import shutil

            shutil.rmtree(out_dir, ignore_errors=True)
    _print_plan(console, report, out_dir if keep else None)
    if not report.ok:
        raise typer.Exit(code=1)


def _print_plan(console: Console, report: plan_mod.PlanReport, kept: Path | None) -> None:
    for name, ports in report.allocated.items():
        console.print(f"allocated ports for {name}: {ports} (written to inventory/staging.yml)", markup=False)
    failed = [c for c in report.checks if c.status == "failed"]
    for check in failed:
        console.print(f"[bold red]FAILED[/] {check.tool} {check.target}", markup=True)
        console.print("  " + check.message.strip().replace("\n", "\n  "), markup=False)
    table = Table(title="stagectl plan", show_lines=False)
    table.add_column("check")
    table.add_column("passed", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("skipped", justify="right")
    for tool, counts in report.summary().items():
        table.add_row(tool, str(counts["passed"]), str(counts["failed"]), str(counts["skipped"]))
    console.print(table)
    for check in report.checks:
        if check.status == "skipped":
            console.print(f"skipped {check.tool} on {check.target}: {check.message}", markup=False)
    hosts = ", ".join(report.hosts)
    console.print(
        f"{len(report.files)} files rendered for {hosts} in {report.render_seconds:.1f}s; "
        f"checks took {report.check_seconds:.1f}s."
        + (f" Rendered files kept in {kept}." if kept else ""),
        markup=False,
    )
    console.print("[bold green]plan OK[/]" if report.ok else "[bold red]plan FAILED[/]")


@secrets_app.command("generate")
def secrets_generate(env: EnvDir = Path("."), vault_password_file: VaultFile = None) -> None:
    """Add secrets missing from the vault (new projects, new keys); existing secrets are kept."""
    try:
        names = plan_mod.project_names(env)
        password_file = _vault_file(env, vault_password_file)
        password = vault.read_password_file(password_file)
        data = vault.decrypt(env / environment.VAULT, password)
        added = vault.fill_missing(data, names)
        if added:
            vault.write_vault(env / environment.VAULT, data, password)
    except StagectlError as exc:
        _fail(exc)
    console = _console()
    if added:
        console.print("added to the vault: " + ", ".join(added), markup=False)
    else:
        console.print("the vault already holds every secret; nothing changed")


def main() -> None:
    # Ansible and ansible-runner read these; a user's stray setting must not leak secrets to logs.
    os.environ.setdefault("ANSIBLE_NOCOLOR", "1")
    try:
        app()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
