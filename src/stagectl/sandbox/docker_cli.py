"""The few `docker` CLI calls the sandbox library makes, with typed errors instead of
CalledProcessError. The CLI rather than an SDK: it is what the test bed provides and what the
image builder uses, and it honours DOCKER_HOST and contexts like the user's own shell does."""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

from stagectl import process
from stagectl.errors import ToolMissing
from stagectl.process import Completed
from stagectl.sandbox.errors import DockerCommandFailed, DockerUnavailable, SandboxError

DEFAULT_TIMEOUT = 120.0


def docker_binary() -> str:
    binary = os.environ.get("STAGECTL_DOCKER", "docker")
    if shutil.which(binary) is None:
        raise ToolMissing(binary, "docker.io")
    return binary


def run(
    *args: str,
    timeout: float = DEFAULT_TIMEOUT,
    input_text: str | None = None,
    check: bool = True,
    hint: str = "",
) -> Completed:
    """Run `docker ARGS`; with check, a non-zero exit raises DockerCommandFailed. A timeout
    always raises."""
    proc = process.run([docker_binary(), *args], timeout=timeout, input_text=input_text, package="docker.io")
    if proc.timed_out:
        raise DockerCommandFailed(list(args), -1, f"timed out after {timeout:.0f}s", hint)
    if check and proc.returncode != 0:
        if "Cannot connect to the Docker daemon" in proc.stderr:
            raise DockerUnavailable(proc.stderr.strip())
        raise DockerCommandFailed(list(args), proc.returncode, proc.stderr, hint)
    return proc


def require_daemon() -> None:
    """Fail early, with the fix, when no daemon answers (rather than on the first real call)."""
    proc = run("info", "--format", "{{.ServerVersion}}", timeout=15, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise DockerUnavailable(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "")


def inspect(kind: str, name: str) -> dict[str, Any] | None:
    """`docker <kind> inspect NAME` as a dict, or None when there is no such object."""
    proc = run(kind, "inspect", name, check=False, timeout=30)
    if proc.returncode != 0:
        # Containers and volumes say "No such ...", networks "network NAME not found".
        if "No such" in proc.stderr or "no such" in proc.stderr or " not found" in proc.stderr:
            return None
        if "Cannot connect to the Docker daemon" in proc.stderr:
            raise DockerUnavailable(proc.stderr.strip())
        raise DockerCommandFailed([kind, "inspect", name], proc.returncode, proc.stderr)
    data = json.loads(proc.stdout)
    return data[0] if data else None


def image_id(ref: str) -> str | None:
    info = inspect("image", ref)
    return str(info["Id"]) if info else None


def in_server(server: str, *args: str, check: bool = True, timeout: float = 60.0) -> str:
    """`docker ARGS` run by the Docker engine inside the sandbox server SERVER (the sandbox's
    own helpers: alert receiver, backup target); its stdout."""
    proc = run("exec", server, "docker", *args, check=False, timeout=timeout)
    if check and proc.returncode != 0:
        if f"No such container: {server}" in proc.stderr:
            raise SandboxError(f"no sandbox named '{server}' is running", hint="start one: `stagectl sandbox up --deploy`")
        raise DockerCommandFailed(list(args), proc.returncode, proc.stderr, hint=f"in sandbox {server}")
    return proc.stdout


def in_helper(server: str, container: str, what: str, *args: str, check: bool = True) -> str:
    """`docker ARGS` about CONTAINER, one of the sandbox's own helpers (WHAT names it for the
    user) inside SERVER: like `in_server`, but a helper that is not there is said in words."""
    try:
        return in_server(server, *args, check=check)
    except DockerCommandFailed as exc:
        if f"No such container: {container}" in exc.stderr:
            raise SandboxError(
                f"the {what} of sandbox '{server}' is not running",
                hint="it starts with `stagectl sandbox up --deploy`",
            ) from None
        raise
