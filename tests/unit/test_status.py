"""`stagectl status` and `stagectl alert test`: how the answers read from a server are sorted by
project and judged. The stacks and targets are the doctor's recordings of a sandbox
(tests/doctor/recorded/partial_stack.json: beryl3's redis restarting, project2 not deployed,
8 of 17 targets down); alerts and query results are made here in Alertmanager's and Prometheus'
API shapes."""

from __future__ import annotations

import copy
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from stagectl.alerts import judge
from stagectl.ansible_collections.stagectl.staging.plugins.filter.prometheus_samples import (
    notification_outcomes,
    notifications_pending,
    prometheus_samples,
    prometheus_sum_by,
)
from stagectl.derived import Derived
from stagectl.status import BACKUP_MAX_AGE, CERTIFICATE_MIN_DAYS, host_status, summary_lines

RECORDED = Path(__file__).resolve().parents[1] / "doctor" / "recorded"


@pytest.fixture
def model() -> Derived:
    return Derived.model_validate_json((RECORDED / "sandbox_model.json").read_text())


@pytest.fixture
def findings() -> dict[str, Any]:
    recorded = json.loads((RECORDED / "partial_stack.json").read_text())
    now = time.time()
    return {
        "stacks": recorded["stacks"],
        "prometheus": {
            **recorded["prometheus"],
            "queries": {
                "backup_age": [
                    {"metric": {"project": "beryl3"}, "value": [now, "3600"]},
                    {"metric": {"project": "project2"}, "value": [now, str(BACKUP_MAX_AGE + 7200)]},
                ],
                "offsite_age": [
                    {"metric": {"project": "beryl3"}, "value": [now, str(BACKUP_MAX_AGE + 3 * 86400)]},
                    {"metric": {"project": "project2"}, "value": [now, "1800"]},
                ],
                "certificate_days": [
                    {"metric": {"project": "beryl3", "instance": "https://beryl3.sandbox.test"}, "value": [now, "59.6"]},
                    {"metric": {"project": "shared", "instance": "grafana.sandbox.test:443"}, "value": [now, "5"]},
                ],
            },
        },
        "alertmanager": {
            "skipped": False,
            "status": 200,
            "alerts": [
                {"labels": {"alertname": "Watchdog", "severity": "none", "project": "shared"}, "annotations": {}},
                {
                    "labels": {"alertname": "RedisDown", "severity": "critical", "project": "beryl3"},
                    "annotations": {"summary": "[beryl3] Redis is down"},
                    "startsAt": "2026-11-27T01:00:00Z",
                },
                {
                    "labels": {"alertname": "DjangoDown", "severity": "critical", "project": "retired"},
                    "annotations": {"summary": "[retired] The Django app does not answer"},
                },
            ],
        },
    }


def _by_name(status: Any) -> dict[str, Any]:
    return {project.name: project for project in status.projects}


def test_projects_listed_shared_first(findings: dict[str, Any], model: Derived) -> None:
    status = host_status("sandbox", findings, model)
    assert [p.name for p in status.projects] == ["shared", "beryl3", "project2"]


def test_stack_problems_and_undeployed_project(findings: dict[str, Any], model: Derived) -> None:
    projects = _by_name(host_status("sandbox", findings, model))
    assert any(problem.startswith("beryl3-redis:") for problem in projects["beryl3"].problems)
    assert not projects["beryl3"].stack_ok
    assert projects["project2"].stack_error == "not deployed"


def test_targets_sorted_by_project_label(findings: dict[str, Any], model: Derived) -> None:
    projects = _by_name(host_status("sandbox", findings, model))
    targets = findings["prometheus"]["targets"]
    for name, project in projects.items():
        expected = [t for t in targets if t["labels"].get("project") == name]
        assert len(project.targets) == len(expected)
        assert len(project.targets_down) == sum(t["health"] != "up" for t in expected)
    assert sum(len(p.targets_down) for p in projects.values()) == 8


def test_alerts_by_project_quiet_ones_left_out(findings: dict[str, Any], model: Derived) -> None:
    projects = _by_name(host_status("sandbox", findings, model))
    assert [a.name for a in projects["beryl3"].alerts] == ["RedisDown"]
    # Watchdog (severity none) is not a problem; an alert of a project no longer in the
    # inventory is shown with the shared stack rather than dropped.
    assert [a.name for a in projects["shared"].alerts] == ["DjangoDown"]
    assert projects["project2"].alerts == ()


def test_backup_age_and_certificates(findings: dict[str, Any], model: Derived) -> None:
    projects = _by_name(host_status("sandbox", findings, model))
    assert projects["beryl3"].backup_ok and projects["beryl3"].backup_age == 3600
    assert not projects["project2"].backup_ok
    assert [(c.domain, round(c.days_left)) for c in projects["beryl3"].certificates] == [("beryl3.sandbox.test", 60)]
    assert not projects["shared"].certificates_ok
    lines = summary_lines(projects.values())
    assert "project2: last successful backup 1d ago" in lines
    assert "shared: certificate of grafana.sandbox.test expires in 5 days" in lines


def test_offsite_age_beside_the_local_one(findings: dict[str, Any], model: Derived) -> None:
    projects = _by_name(host_status("sandbox", findings, model))
    # beryl3's local backups are fresh but its copies stopped leaving the server: not ok.
    assert projects["beryl3"].backup_ok and not projects["beryl3"].offsite_ok
    assert projects["project2"].offsite_ok and projects["project2"].offsite_age == 1800
    # No off-site metric (no `backups.remote`): nothing to judge.
    assert projects["shared"].offsite_age is None and projects["shared"].offsite_ok
    lines = summary_lines(projects.values())
    assert "beryl3: last successful off-site copy 4d ago" in lines
    assert not any(line.startswith("project2: last successful off-site") for line in lines)


def test_status_command_shows_the_offsite_column(
    findings: dict[str, Any], model: Derived, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The CLI's table and summary for a read status (the playbook run replaced: it needs a server)."""
    from typer.testing import CliRunner

    from stagectl import status as status_mod
    from stagectl.cli import app

    def read(*_args: Any, **_kwargs: Any) -> status_mod.StatusReport:
        return status_mod.StatusReport([host_status("sandbox", findings, model)])

    monkeypatch.setattr(status_mod, "run_status", read)
    monkeypatch.setenv("COLUMNS", "250")
    (tmp_path / "key").write_text("x\n")
    result = CliRunner().invoke(app, ["status", "--env", str(tmp_path), "--vault-password-file", str(tmp_path / "key")])
    assert result.exit_code == 1, result.output
    assert "off-site" in result.output and "last backup" in result.output
    beryl3 = next(line for line in result.output.splitlines() if " beryl3 " in line)
    project2 = next(line for line in result.output.splitlines() if " project2 " in line)
    # local age, then off-site age, in that order
    assert beryl3.index("1h ago") < beryl3.index("4d ago"), beryl3
    assert project2.index("1d ago") < project2.index("30m ago"), project2
    assert "beryl3: last successful off-site copy 4d ago" in result.output
    assert "status needs attention" in result.output


def test_healthy_server_is_ok(findings: dict[str, Any], model: Derived) -> None:
    healthy = copy.deepcopy(findings)
    for target in healthy["prometheus"]["targets"]:
        target["health"] = "up"
    healthy["alertmanager"]["alerts"] = healthy["alertmanager"]["alerts"][:1]
    healthy["prometheus"]["queries"] = {}
    status = host_status("sandbox", healthy, model)
    projects = _by_name(status)
    # Stacks are still the recording's (nginx missing, beryl3 redis restarting, project2 missing).
    assert not status.ok
    assert [p.name for p in projects.values() if not p.stack_ok] == ["shared", "beryl3", "project2"]
    assert all(p.targets_down == () and p.alerts == () for p in projects.values())
    assert all(p.backup_ok and p.certificates_ok for p in projects.values())


def test_unanswered_api_is_an_error(findings: dict[str, Any], model: Derived) -> None:
    findings["alertmanager"] = {"skipped": False, "status": -1, "msg": "Connection refused"}
    status = host_status("sandbox", findings, model)
    assert status.errors == ("alertmanager did not answer: Connection refused",)
    assert not status.ok


# --- alert test -----------------------------------------------------------------------------------


def test_alert_test_outcomes() -> None:
    result = judge(
        "sandbox",
        {
            "test_id": "abc",
            "project": "beryl3",
            "accepted": True,
            "receivers": ["default"],
            "expected": {"email": 1, "webhook": 2},
            "outcomes": {"email": {"delivered": 0, "failed": 1}, "webhook": {"delivered": 1, "failed": 1}},
        },
    )
    outcomes = {d.integration: d.outcome for d in result.deliveries}
    assert outcomes == {"email": "failed", "webhook": "1 of 2 failed"}
    assert result.accepted and not result.ok


def test_alert_test_waiting_delivered_and_no_receiver() -> None:
    waiting = judge("h", {"accepted": True, "expected": {"webhook": 1}, "outcomes": {}})
    assert [d.outcome for d in waiting.deliveries] == ["no answer yet"] and not waiting.ok
    delivered = judge("h", {"accepted": True, "expected": {"webhook": 2},
                            "outcomes": {"webhook": {"delivered": 2, "failed": 0}}})
    assert [d.outcome for d in delivered.deliveries] == ["delivered"] and delivered.ok
    silent = judge("h", {"accepted": True, "expected": {}})
    assert silent.ok and silent.deliveries == ()
    assert not judge("h", {"accepted": False, "expected": {}}).ok


# --- the metrics filter ---------------------------------------------------------------------------

EXPOSITION = """\
# HELP alertmanager_notifications_total The total number of attempted notifications.
# TYPE alertmanager_notifications_total counter
alertmanager_notifications_total{integration="email",reason=""} 3
alertmanager_notifications_total{integration="webhook",reason=""} 7
alertmanager_notifications_total{integration="webhook",reason="other"} 1
# HELP alertmanager_notifications_failed_total The total number of failed notifications.
# TYPE alertmanager_notifications_failed_total counter
alertmanager_notifications_failed_total{integration="webhook",reason="clientError"} 2
"""


def test_prometheus_samples_and_sums() -> None:
    samples = prometheus_samples(EXPOSITION, "alertmanager_notifications_total")
    assert samples[0] == {"labels": {"integration": "email", "reason": ""}, "value": 3.0}
    assert prometheus_sum_by(EXPOSITION, "alertmanager_notifications_total", "integration") == {
        "email": 3.0,
        "webhook": 8.0,
    }
    assert prometheus_sum_by(EXPOSITION, "alertmanager_notifications_failed_total", "integration") == {"webhook": 2.0}
    assert prometheus_samples(EXPOSITION, "absent_total") == []


def test_prometheus_samples_rejects_garbage() -> None:
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match="not a Prometheus text exposition"):
        prometheus_samples("this is { not metrics", "x")


def _alertmanager_metrics(requests: dict[str, int], failed_requests: dict[str, int], failed: dict[str, int]) -> str:
    lines = []
    for name, values in (
        ("alertmanager_notification_requests_total", requests),
        ("alertmanager_notification_requests_failed_total", failed_requests),
        ("alertmanager_notifications_failed_total", failed),
    ):
        lines.append(f"# TYPE {name} counter")
        lines += [f'{name}{{integration="{key}"}} {value}' for key, value in values.items()]
    return "\n".join(lines) + "\n"


def test_notification_outcomes_and_pending() -> None:
    before = _alertmanager_metrics({"email": 4, "webhook": 10}, {"email": 1, "webhook": 0}, {"email": 1, "webhook": 0})
    # Webhook: 2 requests, 1 failed then retried successfully. Email: 3 failed requests, given up.
    after = _alertmanager_metrics({"email": 7, "webhook": 12}, {"email": 4, "webhook": 1}, {"email": 2, "webhook": 0})
    assert notification_outcomes(after, before) == {
        "email": {"delivered": 0, "failed": 1},
        "webhook": {"delivered": 1, "failed": 0},
    }
    assert notifications_pending(after, before, {"email": 1, "webhook": 1}) == []
    assert notifications_pending(after, before, {"webhook": 2}) == ["webhook"]
    assert notifications_pending("", before, {"webhook": 1}) == ["webhook"]


def test_thresholds_are_the_alert_rules() -> None:
    """status judges backups and certificates by the same limits as the alerts that would fire:
    the rules are static text, so the two are compared here instead of typed from one place."""
    from tests.alert_rules.test_rules import render_rules

    rules = {
        (rule["alert"], rule["labels"]["severity"]): " ".join(rule["expr"].split())
        for text in render_rules().values()
        for group in yaml.safe_load(text)["groups"]
        for rule in group["rules"]
    }
    for alert in ("BackupTooOld", "BackupOffsiteTooOld"):
        hours = re.search(r"> (\d+) \* 3600", rules[(alert, "warning")])
        assert hours and int(hours.group(1)) * 3600 == BACKUP_MAX_AGE, alert
    days = re.search(r"/ 86400 < (\d+)", rules[("SslCertificateExpiringSoon", "warning")])
    assert days and int(days.group(1)) == CERTIFICATE_MIN_DAYS
