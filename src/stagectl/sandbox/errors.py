"""Typed errors of the sandbox library. Every one says what went wrong and, in `hint`, what to do;
the CLI prints them without a traceback."""

from __future__ import annotations

import shlex

from stagectl.errors import StagectlError


class SandboxError(StagectlError):
    """Base class of everything the sandbox library raises."""


class DockerUnavailable(SandboxError):
    """No Docker daemon answers on this machine."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "no Docker daemon answers `docker info`" + (f": {detail}" if detail else ""),
            hint="start one with `scripts/testbed-setup.sh docker` (as root), or set DOCKER_HOST",
        )


class DockerCommandFailed(SandboxError):
    """A docker command failed; the message carries its own words."""

    def __init__(self, args: list[str], returncode: int, stderr: str, hint: str = "") -> None:
        self.command = args
        self.returncode = returncode
        self.stderr = stderr
        detail = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {returncode}"
        super().__init__(f"`docker {shlex.join(args[:2])}` failed: {detail}", hint=hint)


class SandboxNotFound(SandboxError):
    """No sandbox container of that name exists."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"no sandbox named '{name}' exists",
            hint="create it with `stagectl sandbox up` (see `docker ps -a --filter "
            "label=org.stagectl.sandbox` for the ones that exist)",
        )
        self.name = name


class NotASandbox(SandboxError):
    """A container or volume of that name exists but was not made by `stagectl sandbox up`:
    the sandbox library never touches it."""


class SandboxPortBusy(SandboxError):
    """A host port the sandbox should publish is taken on 127.0.0.1."""

    def __init__(self, ports: dict[str, int], detail: str = "") -> None:
        self.ports = ports
        listed = ", ".join(f"{what} {port}" for what, port in ports.items())
        super().__init__(
            f"port(s) already in use on 127.0.0.1: {listed}" + (f" ({detail})" if detail else ""),
            hint="pick other ports (e.g. --ssh-port/--http-port/--https-port; 0 picks a free one), "
            "or stop what listens there (`ss -ltnp`)",
        )


class SandboxBootFailed(SandboxError):
    """The sandbox container did not boot systemd or answer SSH in time."""


class SandboxImageError(SandboxError):
    """An image the sandbox needs (server image, stand-ins) could not be built or saved."""


class ArchiveError(SandboxImageError):
    """The stand-in image archive could not be written."""


class SandboxEnvironmentError(SandboxError):
    """The sandbox environment cannot be written from the given inputs."""
