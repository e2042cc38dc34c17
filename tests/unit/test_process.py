"""The one layer that starts programs (`stagectl.process`) and the one way to wait
(`stagectl.polling`)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from stagectl import process
from stagectl.errors import StagectlError, ToolMissing
from stagectl.polling import wait_for


def test_output_exit_status_input_and_environment() -> None:
    done = process.run(["sh", "-c", 'read line; echo "$line $GREETING"; echo oops >&2; exit 3'],
                       timeout=10, input_text="hello\n", env={"GREETING": "world"})
    assert (done.returncode, done.stdout, done.stderr, done.ok) == (3, "hello world\n", "oops\n", False)
    assert done.output == "hello world\noops"


def test_a_missing_program_names_its_package() -> None:
    with pytest.raises(ToolMissing) as caught:
        process.run(["stagectl-no-such-tool"], timeout=5, package="stagectl-tools")
    assert caught.value.tool == "stagectl-no-such-tool"
    assert "apt-get install stagectl-tools" in caught.value.hint


def test_a_timeout_kills_the_program_and_what_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    started = time.monotonic()
    done = process.run(["sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait"], timeout=1)
    assert done.timed_out and done.returncode == process.TIMEOUT_EXIT
    assert "did not finish within 1s" in done.stderr
    assert time.monotonic() - started < 30
    child = int(pid_file.read_text())
    for _ in range(50):  # the kill is asynchronous: give the kernel a moment to reap
        if not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]:
            break
        time.sleep(0.1)
    else:
        os.kill(child, 9)
        pytest.fail("the program's child outlived the timeout")


def test_log_mode_streams_both_outputs_to_the_file(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    with log.open("wb") as handle:
        done = process.run(["sh", "-c", "echo out; echo err >&2"], timeout=10, log=handle)
    assert done.ok and done.stdout == ""
    assert log.read_text().split() == ["out", "err"]


def test_stop_all_ends_running_programs_and_refuses_new_ones() -> None:
    results: list[process.Completed] = []
    worker = threading.Thread(target=lambda: results.append(process.run(["sleep", "60"], timeout=120)))
    worker.start()
    time.sleep(0.5)
    try:
        process.stop_all()
        worker.join(timeout=20)
        assert results and results[0].returncode != 0
        refused = process.run(["true"], timeout=5)
        assert refused.returncode == process.INTERRUPTED_EXIT and "interrupted" in refused.stderr
    finally:
        process.allow_runs()
    assert process.run(["true"], timeout=5).ok


def test_wait_for_returns_the_first_answer_and_raises_its_own_error_on_timeout() -> None:
    answers = iter([None, None, "ready"])
    assert wait_for(lambda: next(answers), timeout=10, interval=0.01, on_timeout=lambda: StagectlError("late")) == "ready"
    with pytest.raises(StagectlError, match="never"):
        wait_for(lambda: None, timeout=0.2, interval=0.05, on_timeout=lambda: StagectlError("never"))


def test_wait_for_stops_at_once_when_the_probe_raises() -> None:
    calls: list[int] = []

    def probe() -> str | None:
        calls.append(1)
        raise StagectlError("the container stopped")

    with pytest.raises(StagectlError, match="stopped"):
        wait_for(probe, timeout=10, interval=0.01, on_timeout=lambda: StagectlError("late"))
    assert len(calls) == 1
