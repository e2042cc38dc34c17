"""Every command's --help answers with exit 0 and shows each option's help text whole: typer
renders help through Rich, which takes "[...]" for markup and silently drops it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from stagectl.cli import app


def commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name), command


ALL = sorted(commands(typer.main.get_command(app)), key=lambda item: item[0])


def words(text: str) -> str:
    return re.sub(r"[\s│]+", " ", text).strip()


def test_every_command_is_listed() -> None:
    names = {" ".join(path) for path, _ in ALL}
    assert {"plan", "deploy", "sandbox ssh", "backup restore", "certs renew", "project add"} <= names


@pytest.mark.parametrize(("path", "command"), ALL, ids=[" ".join(path) for path, _ in ALL])
def test_help_shows_every_option_text(path: tuple[str, ...], command: Any) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    shown = words(result.output)
    for param in command.params:
        help_text = getattr(param, "help", None)
        if help_text:
            assert words(help_text) in shown, f"{' '.join(path)} {param.name}: help text cut"
