"""The checks doctor reports, by name, and the report that holds them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "failed", "skipped"]


# Check names, in report order. Per-subject checks append the subject: "stack beryl3", "dns NAME".
SSH = "ssh"


PYTHON = "python"


SUDO = "sudo"


SUDO_GROUP = "sudo group"


PORTS = "ports"


DOCKER = "docker"


COMPOSE = "docker compose"


STACK = "stack"


TARGETS = "prometheus targets"


DNS = "dns"


RUN = "doctor run"


NOT_DEPLOYED = "not deployed"


@dataclass(frozen=True)
class CheckResult:
    name: str
    host: str
    status: Status
    detail: str
    fix: str = ""


class DoctorReport(list[CheckResult]):
    """The checks of every host, in order. A list, so the CLI can iterate and filter it."""

    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def failed(self) -> list[CheckResult]:
        return [check for check in self if check.status == "failed"]

    def get(self, name: str, host: str | None = None) -> CheckResult | None:
        """The check called `name` (of `host`, when given), if the report has one."""
        return next((c for c in self if c.name == name and host in (None, c.host)), None)


def skipped(names: Iterable[str], host: str, reason: str, fix: str = "") -> list[CheckResult]:
    return [CheckResult(name, host, "skipped", reason, fix) for name in names]
