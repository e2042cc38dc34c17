"""Typed errors. The CLI edge turns them into friendly messages; nothing below it prints."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the user's environment: where, what, and what to do."""

    file: str
    field: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else self.file
        text = f"{where}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class StagectlError(Exception):
    """Base class: every error a user can cause or fix."""

    hint: str = ""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class EnvironmentInvalid(StagectlError):
    """The environment files do not describe a valid environment. Carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        count = len(problems)
        super().__init__(f"the environment has {count} problem{'s' if count != 1 else ''}")

    def __str__(self) -> str:
        return "\n".join([super().__str__() + ":", *(f"  - {p}" for p in self.problems)])


class EnvironmentExists(StagectlError):
    """`init` refuses to overwrite an environment that is already there."""


class SourceError(StagectlError):
    """An app's source is missing, unreachable, or not a Django project stagectl can run."""


class VaultError(StagectlError):
    """The vault or its password file is missing, unreadable or wrong."""


class ToolMissing(StagectlError):
    """An external tool (validator, docker, ...) is not installed."""

    def __init__(self, tool: str, package: str) -> None:
        super().__init__(
            f"'{tool}' is not installed",
            hint=f"install it with: apt-get install {package}",
        )
        self.tool = tool
        self.package = package


class AnsibleSettingInvalid(StagectlError):
    """An ANSIBLE_* variable of the user's shell that stagectl passes on names nothing Ansible has."""


class RenderFailed(StagectlError):
    """Ansible could not render the files (a template or variable error)."""


class ValidationFailed(StagectlError):
    """One or more rendered files were rejected by their upstream validator."""


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped a run. Not a user error: the CLI exits 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by signal {signum}")
        self.signum = signum
