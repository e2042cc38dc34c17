"""promtool and amtool: Prometheus configuration, rule files, web configuration, Alertmanager.

The checks run the Debian 12 tools (promtool 2.42, amtool 0.25) against files meant for the
3.x / 0.28 images: the templates avoid keys only newer versions know, so a pass here means both
accept the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from stagectl.errors import ToolMissing
from stagectl.validators.base import Finding, as_checks, missing_check, require_tool, run

if TYPE_CHECKING:
    from stagectl.render import RenderedFile
    from stagectl.validate import Check

PROMTOOL_PACKAGE = "prometheus"
AMTOOL_PACKAGE = "prometheus-alertmanager"


def _promtool(args: list[str], target: Path) -> list[Finding]:
    promtool = require_tool("promtool", PROMTOOL_PACKAGE)
    # From the file's directory: relative rule_files and password_file resolve as in the
    # container, where the whole config directory is mounted.
    result = run([promtool, *args], cwd=target.parent)
    if result.returncode == 0:
        return []
    return [Finding("promtool", str(target), result.output or f"promtool exited {result.returncode}")]


def check_config(path: Path) -> list[Finding]:
    """`promtool check config`: the configuration and every rule file it references."""
    path = path.resolve()
    return _promtool(["check", "config", path.name], path)


def check_rules(path: Path) -> list[Finding]:
    """`promtool check rules`: syntax, PromQL and templates of one rule file."""
    path = path.resolve()
    return _promtool(["check", "rules", path.name], path)


def check_web_config(path: Path) -> list[Finding]:
    """`promtool check web-config`: TLS and basic-auth settings (bcrypt hashes)."""
    path = path.resolve()
    return _promtool(["check", "web-config", path.name], path)


def check_alertmanager(path: Path) -> list[Finding]:
    """`amtool check-config`: routes, receivers, inhibition rules and templates."""
    amtool = require_tool("amtool", AMTOOL_PACKAGE)
    path = path.resolve()
    result = run([amtool, "check-config", path.name], cwd=path.parent)
    if result.returncode == 0:
        return []
    return [Finding("amtool", str(path), result.output or f"amtool exited {result.returncode}")]


# --- adapters for `stagectl plan` (stagectl.validate) -----------------------------------------


def _adapt(tool: str, check: Callable[[Path], list[Finding]], file: RenderedFile) -> list[Check]:
    try:
        return as_checks(check(file.local), tool=tool, target=file.dest)
    except ToolMissing as exc:
        return [missing_check(exc, file.dest)]


def check_config_file(file: RenderedFile) -> list[Check]:
    return _adapt("promtool", check_config, file)


def check_rules_file(file: RenderedFile) -> list[Check]:
    return _adapt("promtool", check_rules, file)


def check_web_config_file(file: RenderedFile) -> list[Check]:
    return _adapt("promtool", check_web_config, file)


def check_alertmanager_file(file: RenderedFile) -> list[Check]:
    return _adapt("amtool", check_alertmanager, file)
