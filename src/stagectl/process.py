"""The one place stagectl starts a program: validators, git, docker, debootstrap, tar.

Every child runs in its own process group and is tracked while it runs, so an interrupted plan
or sandbox command ends it with everything it started (ansible-lint runs ansible-playbook,
`docker build` runs a daemon-side build) instead of leaving it behind. A missing program becomes
`ToolMissing` naming the package to install; a program that outlives its time is killed and
reported as `exit TIMEOUT_EXIT`, never a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from stagectl.errors import ToolMissing

#: The exit status reported for a program killed at its timeout (coreutils' `timeout` uses it too).
TIMEOUT_EXIT = 124
#: The exit status reported for a program not started because the user interrupted.
INTERRUPTED_EXIT = 130


@dataclass(frozen=True)
class Completed:
    """How a program ended. `timed_out`: killed at its timeout (returncode TIMEOUT_EXIT)."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def output(self) -> str:
        """stdout and stderr, stripped: what a user reads when the program failed."""
        return (self.stdout + self.stderr).strip()


_live: set[subprocess.Popen[bytes]] = set()
_live_lock = threading.Lock()
_stopping = threading.Event()


def run(
    args: Sequence[str],
    *,
    timeout: float,
    package: str = "",
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    input_text: str | None = None,
    stdin: int | IO[bytes] | None = None,
    log: IO[bytes] | None = None,
) -> Completed:
    """Run ARGS to its end. Never raises for a non-zero exit: the caller judges the verdict.

    env adds to this process's environment. input_text is written to the program's stdin;
    otherwise stdin is `stdin` (a file or descriptor), or nothing. With `log`, stdout and stderr
    go to that file as they come (long builds) and Completed carries no output. A missing
    program raises ToolMissing with `package` (the Debian package that provides it)."""
    argv = [str(arg) for arg in args]
    with _live_lock:
        if _stopping.is_set():
            return Completed(tuple(argv), INTERRUPTED_EXIT, "", f"{Path(argv[0]).name} was not run: interrupted")
        try:
            proc = subprocess.Popen(
                argv, cwd=cwd, env={**os.environ, **(env or {})},
                stdin=subprocess.PIPE if input_text is not None else (stdin if stdin is not None else subprocess.DEVNULL),
                stdout=log if log is not None else subprocess.PIPE,
                stderr=subprocess.STDOUT if log is not None else subprocess.PIPE,
                start_new_session=True,
            )  # fmt: skip
        except FileNotFoundError:
            raise ToolMissing(Path(argv[0]).name, package or Path(argv[0]).name) from None
        _live.add(proc)
    timed_out = False
    try:
        try:
            out, err = proc.communicate(
                input=input_text.encode() if input_text is not None else None, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill(proc)
            out, err = proc.communicate()
        except BaseException:
            # Ctrl-C or an error in this thread: the child must not outlive the call.
            _kill(proc)
            proc.wait()
            raise
    finally:
        with _live_lock:
            _live.discard(proc)
    stdout = (out or b"").decode(errors="replace")
    stderr = (err or b"").decode(errors="replace")
    if timed_out:
        stderr += f"\n{Path(argv[0]).name} did not finish within {timeout:.0f}s"
        return Completed(tuple(argv), TIMEOUT_EXIT, stdout, stderr.lstrip("\n"), timed_out=True)
    return Completed(tuple(argv), proc.returncode, stdout, stderr)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def stop_all() -> None:
    """End every running program (and its children) and refuse to start more: the interrupt
    handler of a plan calls it from the main thread while worker threads wait on programs."""
    with _live_lock:
        _stopping.set()
        running = list(_live)
    for proc in running:
        _kill(proc)


def allow_runs() -> None:
    """Start programs again after stop_all (a new command in the same process: tests)."""
    _stopping.clear()
