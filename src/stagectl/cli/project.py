"""`project add` and `project remove`: onboard a Django project, or take one off the server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from stagectl import environment
from stagectl.cli.common import EnvDir, VaultFile, console, print_run, run_with_progress, vault_file
from stagectl.derived import derive

app = typer.Typer(help="Onboard a Django project, or take one off the server.", no_args_is_help=True)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Project name: lowercase letters, digits and '-'.")],
    repo: Annotated[str, typer.Option("--repo", help="The app's source: a git URL or a local directory.")],
    domain: Annotated[str | None, typer.Option(help="Domain (default: NAME.<server_domain>).")] = None,
    ref: Annotated[str | None, typer.Option(help="Branch or tag of a git source (default: its default branch).")] = None,
    settings: Annotated[str | None, typer.Option(help="DJANGO_SETTINGS_MODULE (default: the one manage.py sets).")] = None,
    dockerfile: Annotated[str | None, typer.Option(help="Build with this Dockerfile of the source.")] = None,
    env: EnvDir = Path("."),
    vault_password_file: VaultFile = None,
) -> None:
    """Add a Django project: detect how it is built and run, allocate its ports, write its inventory
    entry and generate its secrets. Touches no server; `stagectl deploy --project NAME` does."""
    from stagectl.onboard import add_project

    out = console()
    with out.status(f"inspecting {repo}"):
        added = add_project(env, vault_file(env, vault_password_file), name, repo, domain=domain, ref=ref,
                            settings=settings, dockerfile=dockerfile)
    project, inspection = added.project, added.inspection
    table = Table(title=f"project {project.name}: detected in the source")
    for column in ("setting", "value", "found in"):
        # A settings module or path cut short with an ellipsis is no use: long values fold.
        table.add_column(column, overflow="fold")
    for what, value, where in inspection.found:
        table.add_row(what, value, where)
    out.print(table)
    for warning in inspection.warnings:
        out.print("[yellow]warning:[/] ", end="", markup=True)
        out.print(warning, markup=False)
    out.print(f"domain {project.domain}; ports {project.ports.model_dump()}; worker {project.worker}, "
              f"scheduler {project.scheduler}", markup=False)
    out.print(f"written: {environment.INVENTORY} (entry '{project.name}', with its app: mapping) and "
              f"{environment.VAULT} ({', '.join(added.secrets_added) or 'no new secrets'})", markup=False)
    out.print("DNS: create these A records before the deploy (certificates need them):", markup=False)
    for record, address in added.dns_records:
        out.print(f"  {record}  A  {address}", markup=False)
    out.print(f"next: stagectl deploy --project {project.name} --env {env}", markup=False)


@app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="The project to take off the server.")],
    keep_data: Annotated[bool, typer.Option("--keep-data", help="Keep its data, backups and secrets.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Delete the data without asking.")] = False,
    env: EnvDir = Path("."),
    vault_password_file: VaultFile = None,
) -> None:
    """Final backup, then stop and remove the project's stack and backup timers, drop it from the
    main nginx and Prometheus, and from the inventory. Its data, backups and secrets are deleted
    too unless --keep-data (after a confirmation, or --yes)."""
    from stagectl.onboard import check_removable, remove_project

    out = console()
    loaded = check_removable(env, name)
    project = next(p for p in loaded.projects if p.name == name)
    # A name the wildcard serves has no certificate of its own: the wildcard stays for the others.
    certificates = derive(loaded).certificates
    own_certificate = certificates.lineages[certificates.lineage_of[project.domain]] == [project.domain]
    if not keep_data and not yes:
        typer.confirm(
            f"Delete {project.name}'s data and backups on the server (database, media, backups) and its "
            "secrets? A final backup is taken first but deleted with the rest", abort=True,
        )
    result = run_with_progress(
        out, f"removing {name}",
        lambda progress: remove_project(env, vault_file(env, vault_password_file), name, keep_data=keep_data,
                                        on_progress=progress),
    )
    print_run(out, f"project remove {name}", result.removed)
    if result.refreshed is not None:
        print_run(out, "shared stack without it", result.refreshed)
    for note in result.notes:
        out.print(note, markup=False)
    if result.refreshed is not None:
        kept = "kept (--keep-data)" if keep_data else "deleted"
        certificate = "its certificate deleted" if own_certificate else "the wildcard certificate kept for the other names"
        out.print(f"{name} removed from {environment.INVENTORY}; data, backups and secrets {kept}; "
                  f"{certificate}; the DNS record for {project.domain} can go", markup=False)
    if not (result.removed.ok and result.refreshed is not None and result.refreshed.ok):
        raise typer.Exit(code=1)
