"""`dns`: the A records the environment needs, resolved from this machine."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from stagectl import environment
from stagectl.cli.common import EnvDir, console
from stagectl.derived import derive
from stagectl.doctor.checks import judge_dns


def dns(
    env: EnvDir = Path("."),
    check: Annotated[bool, typer.Option("--check/--no-check", help="Also resolve each name here.")] = True,
) -> None:
    """The A records the environment needs, and whether they resolve."""
    loaded = environment.load_environment(env)
    names = [record.name for record in derive(loaded.env).dns_records]
    table = Table(title="DNS records")
    for column in ("record", "type", "value", "resolves"):
        table.add_column(column)
    failed = 0
    for host, spec in loaded.env.inventory.staging.hosts.items():
        address = spec.ansible_host if spec else host
        results = {r.name.removeprefix("dns "): r for r in judge_dns(host, address, names, socket.getaddrinfo)} if check else {}
        for name in names:
            result = results.get(name)
            failed += bool(result and result.status == "failed")
            table.add_row(name, "A", address, (f"{result.status}: {result.detail}" if result else "not checked"))
    console().print(table)
    if failed:
        raise typer.Exit(code=1)
