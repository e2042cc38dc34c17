"""Drives ansible-playbook through ansible-runner and turns its events into progress and a summary."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import ansible_runner

from stagectl import collection
from stagectl.environment import INVENTORY
from stagectl.errors import Interrupted

ProgressCallback = Callable[[str, str, float], None]  # (task, host, elapsed seconds)


@dataclass
class HostStats:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0


@dataclass
class Failure:
    host: str
    task: str
    message: str


@dataclass(frozen=True)
class TaskTiming:
    """How long one task took on one host (from its start on the host to its result)."""

    task: str
    host: str
    seconds: float
    role: str = ""
    changed: bool = False


# Events that end a task on a host; ansible-runner gives them the time since its start.
_TASK_END_EVENTS = ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable")


def task_timing(event: dict[str, Any]) -> TaskTiming | None:
    """The timing an ansible-runner event carries, if it ends a task on a host."""
    if event.get("event") not in _TASK_END_EVENTS:
        return None
    data = event.get("event_data") or {}
    duration = data.get("duration")
    if not isinstance(duration, int | float):
        return None
    return TaskTiming(
        task=str(data.get("task") or data.get("task_action") or "?"),
        host=str(data.get("host", "")),
        seconds=float(duration),
        role=str(data.get("role") or ""),
        changed=bool((data.get("res") or {}).get("changed")),
    )


@dataclass
class RunResult:
    status: str
    rc: int
    seconds: float
    hosts: dict[str, HostStats] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # ansible-playbook's own "ERROR!" lines
    tasks: int = 0
    timings: list[TaskTiming] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.failures

    def slowest(self, count: int = 15) -> list[TaskTiming]:
        """The `count` slowest task runs, slowest first."""
        return sorted(self.timings, key=lambda t: t.seconds, reverse=True)[:count]

    def changed_tasks(self) -> list[str]:
        """The tasks (and handlers) that changed something, in the order they ran."""
        return list(dict.fromkeys(t.task for t in self.timings if t.changed))

    def failure_detail(self, host: str) -> str:
        """Why the run did not get as far as it should for `host`, in one line."""
        lines = [*self.errors, *(f"{f.task}: {f.message}" for f in self.failures if f.host in ("", host))]
        return "; ".join(lines) or f"ansible-playbook ended with {self.status} (rc {self.rc})"


def _failure_message(result: dict[str, Any]) -> str:
    # A loop's own msg is only "One or more items failed": the reason is in its failed items.
    failed_items = [r for r in result.get("results", []) if isinstance(r, dict) and r.get("failed")]
    if failed_items:
        return "; ".join(_failure_message(item) for item in failed_items)
    for key in ("msg", "stderr", "module_stderr", "reason"):
        value = result.get(key)
        if value:
            return str(value).strip()
    return "failed (no message)"


_cancelled = threading.Event()


def cancel_runs() -> None:
    """End the runs of other threads (ansible-runner stops their ansible-playbook)."""
    _cancelled.set()


def allow_runs() -> None:
    _cancelled.clear()



def run_playbook(
    playbook: Path,
    inventory: Path,
    *,
    extravars: dict[str, Any] | None = None,
    vault_password_file: Path | None = None,
    limit: str | None = None,
    check: bool = False,
    diff: bool = False,
    on_progress: ProgressCallback | None = None,
    cwd: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> RunResult:
    """Run one playbook of the collection. Secrets never pass on a command line: the vault
    password is read by Ansible from its file.

    SIGINT and SIGTERM end the run: ansible-playbook and its children are killed, the runner's
    files removed, and `Interrupted` raised."""
    started = time.monotonic()
    result = RunResult(status="unknown", rc=-1, seconds=0.0)
    seen_tasks: set[str] = set()
    current = {"task": ""}

    def handle(event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data", {})
        host = data.get("host", "")
        if kind == "playbook_on_task_start":
            current["task"] = data.get("task", "")
            seen_tasks.add(data.get("task_uuid", current["task"]))
        elif kind in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
            result.failures.append(
                Failure(host=host, task=data.get("task", ""), message=_failure_message(data.get("res", {})))
            )
        elif kind == "playbook_on_stats":
            for host_name in set().union(*(data.get(k, {}) for k in ("ok", "changed", "failures", "dark", "skipped"))):
                result.hosts[host_name] = HostStats(
                    ok=data.get("ok", {}).get(host_name, 0),
                    changed=data.get("changed", {}).get(host_name, 0),
                    failed=data.get("failures", {}).get(host_name, 0),
                    unreachable=data.get("dark", {}).get(host_name, 0),
                    skipped=data.get("skipped", {}).get(host_name, 0),
                )
        timing = task_timing(event)
        if timing is not None:
            result.timings.append(timing)
        if on_progress and kind.startswith("runner_on_") and host:
            on_progress(current["task"], host, time.monotonic() - started)
        return True

    cmdline: list[str] = []
    if vault_password_file is not None:
        cmdline += ["--vault-password-file", str(vault_password_file)]
    if check:
        cmdline.append("--check")
    if diff:
        cmdline.append("--diff")

    env = {**collection.ansible_env(), **(extra_env or {})}
    # The CLI may run from a venv that is not on PATH; ansible-playbook must come from the same one.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    private = Path(tempfile.mkdtemp(prefix="stagectl-runner-"))
    # How often the runner asks the cancel callback while the playbook is quiet (default 5s).
    (private / "env").mkdir()
    (private / "env" / "settings").write_text("pexpect_timeout: 0.2\n")
    stop = _StopOnSignal()
    try:
        with stop:
            runner = ansible_runner.run(
                private_data_dir=str(private),
                playbook=str(playbook),
                inventory=str(inventory),
                extravars=extravars or {},
                # ansible-runner splits this with shlex: a path with a space must be quoted.
                cmdline=shlex.join(cmdline) if cmdline else None,
                limit=limit,
                envvars=env,
                event_handler=handle,
                cancel_callback=stop.requested,
                quiet=True,
                project_dir=str(cwd) if cwd else None,
                suppress_env_files=True,
            )
        if stop.signum is not None:
            raise Interrupted(stop.signum)
        stdout = runner.stdout.read() if runner.stdout else ""
        result.errors = [
            line.strip() for line in stdout.splitlines() if line.startswith(("ERROR!", "[ERROR]"))
        ]
        result.status = runner.status
        result.rc = runner.rc
    finally:
        # Artifacts hold task results; never leave them lying around.
        shutil.rmtree(private, ignore_errors=True)
    result.seconds = time.monotonic() - started
    result.tasks = len(seen_tasks)
    return result


class _StopOnSignal:
    """While active (main thread only), SIGINT and SIGTERM ask the running playbook to stop
    instead of killing this process, so that ansible-runner ends its children and every
    `finally` below removes what it made."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def requested(self) -> bool:
        # Runs in other threads (plan's render slices) are ended through `cancel_runs`: only the
        # main thread receives signals.
        return self.signum is not None or _cancelled.is_set()

    def _handle(self, signum: int, _frame: Any) -> None:
        self.signum = signum

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *_exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


def run_reporting_playbook(
    name: str,
    root: Path,
    vault_password_file: Path,
    hosts: Sequence[str],
    *,
    out_variable: str,
    extravars: dict[str, Any] | None = None,
    on_progress: ProgressCallback | None = None,
) -> tuple[RunResult, dict[str, dict[str, Any]]]:
    """Run a read-only playbook of the collection that writes what it found as one JSON file per
    host into the directory named by the extra variable `out_variable`; return the run and the
    findings of each host that wrote its file."""
    out = Path(tempfile.mkdtemp(prefix=f"stagectl-{name}-"))
    try:
        run = run_playbook(
            collection.playbook(name),
            root / INVENTORY,
            extravars={**(extravars or {}), out_variable: str(out)},
            vault_password_file=vault_password_file,
            on_progress=on_progress,
            cwd=root,
        )
        findings: dict[str, dict[str, Any]] = {}
        for host in hosts:
            try:
                findings[host] = json.loads((out / f"{host}.json").read_text())
            except (OSError, json.JSONDecodeError):
                continue
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return run, findings
