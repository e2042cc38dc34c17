"""What every command shares: the options naming the environment and its vault password, the
console, progress and run summaries, and the one place where a typed error becomes a message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from stagectl import environment, troubleshooting
from stagectl.errors import EnvironmentInvalid, StagectlError
from stagectl.runner import ProgressCallback, RunResult

T = TypeVar("T")

EnvDir = Annotated[
    Path,
    typer.Option("--env", "-e", help="The environment directory (from `stagectl init`).", envvar="STAGECTL_ENV"),
]
VaultFile = Annotated[
    Path | None,
    typer.Option(
        "--vault-password-file",
        # Parentheses, not brackets: typer's Rich help would take "[default: ...]" for markup.
        help="File holding the vault password (default: ~/.config/stagectl/<env dir name>.vault-pass).",
        envvar=environment.VAULT_PASSWORD_ENV,
    ),
]


def console() -> Console:
    return Console(stderr=False, highlight=False, soft_wrap=True)


def fail(error: StagectlError) -> NoReturn:
    """The error as the user reads it, on stderr, and exit code 2 (a mistake the user can fix)."""
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


class ErrorHandlingGroup(TyperGroup):
    """The command tree's root: every command (and sub-command) runs inside its `invoke`, so a
    StagectlError raised anywhere below becomes one message and exit code 2, never a traceback."""

    # Any: typer ships its own copy of click, whose Context class has no public name to import.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except StagectlError as error:
            fail(error)


def vault_file(root: Path, given: Path | None) -> Path:
    return given if given is not None else environment.default_vault_password_file(root)


def run_with_progress(out: Console, title: str, work: Callable[[ProgressCallback], T]) -> T:
    """Run `work(progress)` under a live status line: task, host, elapsed."""
    with out.status(title) as status:
        def progress(task: str, host: str, elapsed: float) -> None:
            status.update(f"[{elapsed:6.1f}s] {host}: {task}")

        return work(progress)


def print_run(out: Console, title: str, result: RunResult, *, check: bool = False) -> None:
    """A playbook run's failures (with their known causes and fixes) and its per-host summary."""
    for failure in result.failures:
        out.print(f"[bold red]FAILED[/] {failure.host}: {failure.task}", markup=True)
        out.print("  " + failure.message.strip().replace("\n", "\n  "), markup=False)
        known = troubleshooting.explain(failure.message)
        if known:
            out.print(f"  cause: {known.explanation}\n  fix: {known.fix}", markup=False)
    for error in result.errors:
        out.print(error, markup=False)
    table = Table(title=f"{title}{' (check mode: nothing changed)' if check else ''}")
    for column in ("host", "ok", "changed", "failed", "unreachable", "skipped"):
        table.add_column(column, justify="left" if column == "host" else "right")
    for host, stats in sorted(result.hosts.items()):
        table.add_row(host, str(stats.ok), str(stats.changed), str(stats.failed), str(stats.unreachable),
                      str(stats.skipped))
    out.print(table)
    verdict = "[bold green]OK[/]" if result.ok else "[bold red]FAILED[/]"
    out.print(f"{title} {verdict} in {result.seconds:.1f}s ({result.tasks} tasks)")
