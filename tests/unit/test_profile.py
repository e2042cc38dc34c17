"""`stagectl deploy --profile`: task timings from ansible-runner's events, and the table of the
slowest tasks printed after the summary."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from stagectl import deploy as deploy_mod
from stagectl.cli import app
from stagectl.deploy import DeployReport
from stagectl.plan import PlanReport
from stagectl.runner import HostStats, RunResult, TaskTiming, task_timing
from tests.conftest import EnvFixture

runner = CliRunner()


def _event(kind: str, task: str, duration: Any, role: str = "", host: str = "staging-server",
           changed: bool = False) -> dict[str, Any]:
    """The shape of an ansible-runner job event (its display callback adds start, end, duration)."""
    return {
        "event": kind,
        "uuid": "0f7c",
        "created": "2026-12-04T21:00:00.000000+00:00",
        "event_data": {
            "host": host, "task": task, "role": role, "task_action": "ansible.builtin.file",
            "start": "2026-12-04T21:00:00.000000+00:00", "end": "2026-12-04T21:00:01.250000+00:00",
            "duration": duration, "res": {"changed": changed},
        },
    }


def test_events_that_end_a_task_carry_its_timing() -> None:
    assert task_timing(_event("runner_on_ok", "Create the directories", 1.25, role="project")) == TaskTiming(
        "Create the directories", "staging-server", 1.25, "project"
    )
    assert task_timing(_event("runner_on_failed", "Start the stack", 3)) == TaskTiming(
        "Start the stack", "staging-server", 3.0, ""
    )
    assert task_timing(_event("runner_on_skipped", "Only on Arch", 0.01)) is not None
    # Task starts, loop items and events without a duration are not task runs.
    assert task_timing(_event("runner_on_start", "Create the directories", None)) is None
    assert task_timing(_event("runner_item_on_ok", "Create the directories", 0.5)) is None
    assert task_timing(_event("runner_on_ok", "Create the directories", None)) is None
    assert task_timing({"event": "playbook_on_stats", "event_data": {}}) is None


def test_slowest_sorts_and_limits() -> None:
    run = RunResult(status="successful", rc=0, seconds=10.0, timings=[
        TaskTiming("a", "h", 0.5), TaskTiming("b", "h", 4.0), TaskTiming("c", "h", 2.0),
    ])
    assert [t.task for t in run.slowest(2)] == ["b", "c"]


def test_changed_tasks_come_from_the_results_in_order_once_each() -> None:
    events = [_event("runner_on_ok", "Write the configuration files", 0.2, changed=True),
              _event("runner_on_ok", "Read the state", 0.1),
              _event("runner_on_ok", "Reload Alertmanager", 0.3, changed=True),
              _event("runner_on_ok", "Write the configuration files", 0.2, host="other", changed=True)]
    timings = [t for t in map(task_timing, events) if t is not None]
    run = RunResult(status="successful", rc=0, seconds=1.0, timings=timings)
    assert run.changed_tasks() == ["Write the configuration files", "Reload Alertmanager"]


def _report(timings: list[TaskTiming]) -> DeployReport:
    plan = PlanReport(hosts=["staging-server"], files=[], checks=[], render_seconds=1.5, check_seconds=0.5)
    run = RunResult(status="successful", rc=0, seconds=12.0, tasks=len(timings),
                    hosts={"staging-server": HostStats(ok=len(timings))}, timings=timings)
    return DeployReport(plan=plan, run=run)


@pytest.fixture
def fake_deploy(monkeypatch: pytest.MonkeyPatch) -> list[TaskTiming]:
    """The library call replaced (no server here): the CLI's presentation is what is tested."""
    timings = [TaskTiming(f"task {i:02d}", "staging-server", float(i), "project" if i % 2 else "") for i in range(20)]

    def fake(root: Path, vault_password_file: Path, **_: Any) -> DeployReport:
        return _report(timings)

    monkeypatch.setattr(deploy_mod, "deploy", fake)
    return timings


def test_profile_prints_the_slowest_tasks_after_the_summary(example_env: EnvFixture, fake_deploy: list[TaskTiming]) -> None:
    result = runner.invoke(app, ["deploy", "--env", str(example_env.root), "--vault-password-file",
                                 str(example_env.vault_password_file), "--profile"])
    assert result.exit_code == 0, result.output
    output = result.output
    assert output.index("deploy OK") < output.index("slowest tasks (20 task runs)")
    rows = [line for line in output.splitlines() if "│ staging-server │" in line and "task " in line]
    assert len(rows) == 15, output
    assert "19.00" in rows[0] and "task 19" in rows[0] and "project" in rows[0]
    assert "task 05" in rows[-1] and "task 04" not in output
    assert "by role: project 100.0s/10, - 90.0s/10" in output
    assert "ansible 12.0s, of which 190.0s in tasks on hosts" in output
    assert "validation and rendering 2.0s" in output


def test_without_profile_no_table(example_env: EnvFixture, fake_deploy: list[TaskTiming]) -> None:
    result = runner.invoke(app, ["deploy", "--env", str(example_env.root), "--vault-password-file",
                                 str(example_env.vault_password_file)])
    assert result.exit_code == 0, result.output
    assert "deploy OK" in result.output and "slowest tasks" not in result.output


def test_a_kept_validation_says_so(example_env: EnvFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    report = _report([TaskTiming("task", "staging-server", 1.0)])
    kept = DeployReport(plan=replace(report.plan, cached=True, render_seconds=0.0, check_seconds=0.0), run=report.run)
    monkeypatch.setattr(deploy_mod, "deploy", lambda *_, **__: kept)
    result = runner.invoke(app, ["deploy", "--env", str(example_env.root), "--vault-password-file",
                                 str(example_env.vault_password_file)])
    assert result.exit_code == 0, result.output
    assert "validated 0 files (0 checks passed; unchanged since a validation that passed, not rendered again)" \
        in " ".join(result.output.split()), result.output
