"""`stagectl alert test`: one test alert through Alertmanager's routing and every receiver.

The playbook `stagectl.staging.alert_test` posts the alert on the server, waits until Alertmanager
has delivered to (or given up on) each configured receiver, resolves the alert and writes what
its counters say per integration to one JSON file per host; `judge` turns that into a result per
integration. Nothing here prints, and the configuration of the server is not changed.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stagectl.derived import SHARED_PROJECT
from stagectl.environment import ALL_VARS, INVENTORY, load_environment
from stagectl.errors import EnvironmentInvalid, Problem
from stagectl.runner import ProgressCallback, RunResult, run_reporting_playbook

#: The alert's name; alertmanager.yml routes it without a group wait.
TEST_ALERT = "StagectlTestAlert"

FIXES = {
    "email": "check alerting.smarthost, email_from and email_to in group_vars/staging.yml, and "
    "that the relay accepts mail from the server (docker logs of the alertmanager container "
    "name the SMTP error)",
    "webhook": "check alerting.webhook_urls in group_vars/staging.yml: the URL must answer POST "
    "with 2xx from inside the server's alertmanager container (its docker logs name the error)",
}


@dataclass(frozen=True)
class Delivery:
    integration: str
    #: Configurations of the integration (one email, each webhook URL).
    expected: int
    #: Requests that succeeded, and notifications Alertmanager gave up on after every retry.
    delivered: int
    failed: int

    @property
    def outcome(self) -> str:
        if self.failed:
            return "failed" if not self.delivered else f"{self.failed} of {self.expected} failed"
        if self.delivered >= self.expected:
            return "delivered"
        return "no answer yet" if not self.delivered else f"{self.delivered} of {self.expected} delivered"

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.delivered >= self.expected


@dataclass(frozen=True)
class AlertTestResult:
    host: str
    test_id: str
    project: str
    #: Alertmanager listed the alert as active after the post.
    accepted: bool
    receivers: tuple[str, ...]
    deliveries: tuple[Delivery, ...]
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.accepted and all(d.ok for d in self.deliveries)


class AlertTestReport(list[AlertTestResult]):
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self) and all(result.ok for result in self)


def judge(host: str, findings: dict[str, Any]) -> AlertTestResult:
    outcomes = findings.get("outcomes") or {}
    deliveries = tuple(
        Delivery(
            integration,
            int(expected),
            int((outcomes.get(integration) or {}).get("delivered", 0)),
            int((outcomes.get(integration) or {}).get("failed", 0)),
        )
        for integration, expected in sorted((findings.get("expected") or {}).items())
    )
    return AlertTestResult(
        host=host,
        test_id=str(findings.get("test_id") or ""),
        project=str(findings.get("project") or SHARED_PROJECT),
        accepted=bool(findings.get("accepted")),
        receivers=tuple(str(r) for r in findings.get("receivers") or []),
        deliveries=deliveries,
    )


def _not_run(host: str, run: RunResult, test_id: str, project: str) -> AlertTestResult:
    return AlertTestResult(host, test_id, project, False, (), (), error=run.failure_detail(host))


def run_alert_test(
    root: Path,
    vault_password_file: Path,
    project: str | None = None,
    on_progress: ProgressCallback | None = None,
    *,
    timeout: int = 60,
) -> AlertTestReport:
    """Send a test alert (labelled with `project`, or the shared stack) on every host."""
    started = time.monotonic()
    root = root.resolve()  # ansible-runner changes directory
    loaded = load_environment(root, vault_password_file=vault_password_file, allocate=False)
    names = [p.name for p in loaded.env.projects]
    project = project or SHARED_PROJECT
    if project != SHARED_PROJECT and project not in names:
        raise EnvironmentInvalid(
            [
                Problem(
                    str(root / INVENTORY),
                    "projects",
                    f"no project named '{project}'",
                    f"choose one of: {', '.join(names)}, or leave --project out for the shared stack",
                )
            ]
        )
    if not loaded.env.settings.shared_services.alertmanager.enabled:
        raise EnvironmentInvalid(
            [
                Problem(
                    str(root / ALL_VARS),
                    "shared_services.alertmanager.enabled",
                    "Alertmanager is disabled: there is nothing to send a test alert through",
                    "enable it and deploy",
                )
            ]
        )
    test_id = secrets.token_hex(6)
    hosts = list(loaded.env.inventory.staging.hosts)
    run, findings = run_reporting_playbook(
        "alert_test", root, vault_password_file, hosts,
        out_variable="stagectl_alert_test_out",
        extravars={"alert_test_project": project, "alert_test_id": test_id, "alert_test_timeout": timeout},
        on_progress=on_progress,
    )
    report = AlertTestReport(
        judge(host, findings[host]) if host in findings else _not_run(host, run, test_id, project)
        for host in hosts
    )
    report.seconds = time.monotonic() - started
    return report
