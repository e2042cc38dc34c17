"""Observability on the deployed sandbox: status on one screen, a test alert and a real outage
followed to the webhook receiver the sandbox runs, every dashboard query evaluated by the running
Prometheus. Figures (alert latency, series count, memory) are printed for the closing notes.

The webhook receiver is `stagectl.sandbox.alert_sink`, a container on the sandbox's monitoring
network started by the `deployed` fixture; the sandbox environment points alerting.webhook_urls
at it. Nothing here leaves the machine.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest

from stagectl import dashboards
from stagectl.alerts import TEST_ALERT, run_alert_test
from stagectl.derived import derive
from stagectl.environment import VAULT, load_environment
from stagectl.sandbox import mail_sink
from stagectl.status import run_status
from stagectl.vault import decrypt, read_password_file
from tests.conftest import show_figure
from tests.deploy.conftest import Deployed

pytestmark = [pytest.mark.docker, pytest.mark.sandbox]

#: The issue's budget from "PostgreSQL stopped" to "alert received".
ALERT_BUDGET = 120
#: Metrics of exporters the test bed cannot run (their panels are allowed to stay empty).
ABSENT_HERE = ("container_", "cadvisor_", "grafana_", "loki_", "alloy_", "promtail_")
_OVERLAY_ROOT = (
    "the sandbox's / is an overlay filesystem, which node-exporter leaves out by default; a "
    "server's root is a block device"
)
#: Panels (by title) that stay empty on the sandbox for a reason of the test bed or the demo
#: app, not of the dashboards.
EMPTY_HERE = {
    "Root filesystem used": _OVERLAY_ROOT,
    "Root free in 7 days (trend)": _OVERLAY_ROOT,
    "Unapplied migrations": (
        "the demo app leaves django-prometheus' PROMETHEUS_EXPORT_MIGRATIONS off: it would query "
        "the database at every start, image builds included"
    ),
}


def _alerts(notifications: list[dict[str, Any]], since: float = 0) -> list[tuple[float, dict[str, Any]]]:
    """(received_at, alert) for every alert of every notification received after `since`."""
    return [
        (note["received_at"], alert)
        for note in notifications
        if note["received_at"] >= since and isinstance(note.get("payload"), dict)
        for alert in note["payload"].get("alerts") or []
    ]


def _wait_for(deployed: Deployed, match: Callable[[dict[str, Any]], bool], since: float, timeout: float) -> float | None:
    """When the first alert matching `match` arrived after `since`; None if none within timeout."""
    deadline = time.monotonic() + timeout
    while True:
        hits = [at for at, alert in _alerts(deployed.notifications(), since) if match(alert)]
        if hits:
            return min(hits)
        if time.monotonic() > deadline:
            return None
        time.sleep(3)


def test_status_shows_every_stack_target_and_no_alert(deployed: Deployed) -> None:
    # Earlier tests restart services; give alerts they caused the time to resolve.
    deadline = time.monotonic() + 240
    while True:
        report = run_status(deployed.root, deployed.vault_password_file)
        if report.ok or time.monotonic() > deadline:
            break
        time.sleep(15)
    [host] = report
    assert host.errors == ()
    assert [p.name for p in host.projects] == ["shared", "beryl3", "project2"]
    for project in host.projects:
        assert project.stack_ok, (project.name, project.problems, project.stack_error)
        assert project.targets and project.targets_down == (), project.name
        assert project.alerts == (), project.name
    # The blackbox probes reach every public name (monitoring.probe_hosts): their certificates
    # are known, and self-signed ones are far from expiry.
    days = {c.domain: c.days_left for p in host.projects for c in p.certificates}
    assert {"beryl3.sandbox.test", "project2.sandbox.test"} <= set(days)
    assert min(days.values()) > 20
    assert report.ok


def test_alert_test_command_reaches_the_webhook_and_resolves(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    sent = time.time()
    report = run_alert_test(deployed.root, deployed.vault_password_file, "beryl3")
    [result] = report
    assert result.accepted and result.receivers == ("default",)
    deliveries = [(d.integration, d.outcome) for d in result.deliveries]
    why = "" if deliveries == [("email", "delivered"), ("webhook", "delivered")] else deployed.sh(
        "docker logs --since 15m shared-alertmanager-1 2>&1 | grep -i -e email -e smtp | tail -5; "
        "docker logs --tail 20 stagectl-mail-sink 2>&1", check=False)
    assert deliveries == [("email", "delivered"), ("webhook", "delivered")], why
    assert report.ok
    # The e-mail went through the sandbox's relay, which wants STARTTLS and a login checked
    # against the password the deploy took from the vault.
    mails = [m for m in mail_sink.received(deployed.info.name) if result.test_id in (m["subject"] or "")]
    assert mails and all(m["tls"] and m["user"] == mail_sink.USERNAME for m in mails)
    assert mails[0]["to"] == ["ops@sandbox.test"]
    vault = decrypt(deployed.root / VAULT, read_password_file(deployed.vault_password_file))
    assert deployed.sh("cat /opt/shared/alertmanager/config/secrets/smtp_password") == vault["vault_alerting_smtp_password"]

    def ours(status: str) -> Callable[[dict[str, Any]], bool]:
        return lambda alert: (
            alert["labels"].get("test_id") == result.test_id
            and alert["labels"].get("alertname") == TEST_ALERT
            and alert["labels"].get("project") == "beryl3"
            and alert["status"] == status
        )

    assert _wait_for(deployed, ours("firing"), sent, 10) is not None
    resolved = _wait_for(deployed, ours("resolved"), sent, 60)
    assert resolved is not None, "the test alert was not resolved at the receiver"
    show_figure(capsys, f"alert test: sent to resolved at the webhook in {resolved - sent:.1f}s")


def test_postgres_down_alert_reaches_the_webhook_within_budget(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    def postgres_down(status: str) -> Callable[[dict[str, Any]], bool]:
        return lambda alert: (
            alert["labels"].get("alertname") == "PostgresDown"
            and alert["labels"].get("project") == "beryl3"
            and alert["status"] == status
        )

    stopped = time.time()
    deployed.sh("docker stop beryl3-postgres")
    try:
        fired = _wait_for(deployed, postgres_down("firing"), stopped, ALERT_BUDGET + 30)
    finally:
        deployed.sh("docker start beryl3-postgres")
    started = time.time()
    resolved = _wait_for(deployed, postgres_down("resolved"), started, 240)
    window = _alerts(deployed.notifications(), stopped)
    show_figure(
        capsys,
        (f"PostgreSQL down -> webhook: {fired - stopped:.1f}s" if fired else "PostgreSQL down -> webhook: not received")
        + (f"; started -> resolved at the webhook: {resolved - started:.1f}s" if resolved else ""),
    )
    assert fired is not None and fired - stopped <= ALERT_BUDGET, "PostgresDown did not arrive in 2 minutes"
    assert resolved is not None, "PostgresDown was not resolved after PostgreSQL started"
    # Only beryl3 was broken: project2's receiver-side view stays silent.
    assert [a["labels"]["alertname"] for _, a in window if a["labels"].get("project") == "project2"] == []
    # Back to healthy before the next test.
    deployed.sh("timeout 120 bash -c 'until [ \"$(docker inspect -f {{.State.Health.Status}} beryl3-django)\" = healthy ]; do sleep 2; done'")


# Runs in the sandbox: evaluates each expression (stdin, a JSON list) as Prometheus' admin; the
# password is read from the deployed secret file there.
EVALUATE = r"""
import base64, json, sys, urllib.error, urllib.parse, urllib.request
password = open("/opt/shared/prometheus/config/secrets/prometheus_password").read().strip()
auth = "Basic " + base64.b64encode(("admin:" + password).encode()).decode()
answers = []
for expr in json.load(sys.stdin):
    url = "http://127.0.0.1:9090/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": auth}), timeout=30) as r:
            answers.append(json.load(r))
    except urllib.error.HTTPError as exc:
        answers.append(json.load(exc))
print(json.dumps(answers))
"""


def _evaluate(deployed: Deployed, exprs: list[str]) -> list[dict[str, Any]]:
    out = deployed.sh(f"python3 /dev/fd/3 3<<'PY'\n{EVALUATE}PY\n", stdin=json.dumps(exprs), timeout=600)
    answers: list[dict[str, Any]] = json.loads(out)
    return answers


def test_every_dashboard_query_evaluates_and_panels_have_data(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    # Traffic for the request panels: pages, a 404, and the cache endpoint of both apps.
    for project in ("beryl3", "project2"):
        deployed.sh(
            "for path in / /healthz /readyz /notes/ /cache/warm /missing; do "
            f"curl -sk -o /dev/null --resolve {project}.sandbox.test:443:127.0.0.1 "
            f"https://{project}.sandbox.test$path; done"
        )
    time.sleep(35)  # two scrapes of the Django metrics after the traffic
    model = derive(load_environment(deployed.root, vault_password_file=deployed.vault_password_file, allocate=False).env).model_dump()
    queries = [q for q in dashboards.panel_queries(model) if q.language == "promql"]
    answers = _evaluate(deployed, [q.concrete() for q in queries])
    errors = [
        f"{q.path} / {q.panel} / {q.ref_id}: {a.get('error')}\n  {q.concrete()}"
        for q, a in zip(queries, answers, strict=True)
        if a.get("status") != "success"
    ]
    assert errors == [], "\n".join(errors)

    with_data: dict[tuple[str, str], bool] = defaultdict(bool)
    needs_absent: dict[tuple[str, str], bool] = defaultdict(bool)
    for query, answer in zip(queries, answers, strict=True):
        key = (query.path, query.panel)
        with_data[key] |= bool(answer["data"]["result"])
        needs_absent[key] |= any(prefix in query.expr for prefix in ABSENT_HERE)
    empty = sorted(f"{path} / {panel}" for (path, panel), data in with_data.items()
                   if not data and not needs_absent[(path, panel)] and panel not in EMPTY_HERE)
    absent = sum(1 for key, data in with_data.items() if not data and needs_absent[key])
    show_figure(
        capsys,
        f"dashboards: {len(queries)} PromQL queries in {len(with_data)} panels evaluated; "
        f"{sum(with_data.values())} panels with data, {absent} empty because their exporter cannot "
        "run here (cAdvisor, Grafana, Loki, Alloy)",
    )
    assert empty == [], "panels without data although their exporter runs here:\n" + "\n".join(empty)


def test_prometheus_footprint_figures(deployed: Deployed, capsys: pytest.CaptureFixture[str]) -> None:
    series = deployed.prometheus("/api/v1/query", query="prometheus_tsdb_head_series")["data"]["result"]
    memory = deployed.prometheus("/api/v1/query", query='process_resident_memory_bytes{job="prometheus"}')["data"]["result"]
    rules = deployed.prometheus("/api/v1/rules")["data"]["groups"]
    count = sum(len(group["rules"]) for group in rules)
    head_series = int(float(series[0]["value"][1]))
    rss = float(memory[0]["value"][1]) / 2**20
    show_figure(
        capsys,
        f"Prometheus in the sandbox: {head_series} head series, {rss:.0f} MiB resident, "
        f"{count} rules in {len(rules)} groups",
    )
    assert head_series > 0 and count > 0
    assert all(rule.get("health") == "ok" for group in rules for rule in group["rules"])


def test_textfile_metrics_keep_their_project(deployed: Deployed) -> None:
    # The backup tool and the container health timer write textfile metrics; node-exporter
    # exports them with the project they describe (honor_labels), not project="shared".
    deployed.sh("systemctl start stagectl-backup@project2.service", timeout=300)
    deadline = time.monotonic() + 90
    while True:
        backup = deployed.prometheus("/api/v1/query", query="stagectl_backup_last_run_success")["data"]["result"]
        health = deployed.prometheus("/api/v1/query", query="stagectl_container_healthy")["data"]["result"]
        if (backup and health) or time.monotonic() > deadline:
            break
        time.sleep(5)
    last_run = {s["metric"]["project"]: s["value"][1] for s in backup}
    # One series per file the tool wrote (the shared stack's state is the pseudo-project `shared`).
    files = deployed.sh("cd /var/lib/stagectl/textfile && ls stagectl-backup-run-*.prom").split()
    assert last_run["project2"] == "1"
    assert set(last_run) == {f.removeprefix("stagectl-backup-run-").removesuffix(".prom") for f in files}
    healthy = {(s["metric"]["project"], s["metric"]["service"]): s["value"][1] for s in health}
    assert healthy[("beryl3", "django")] == "1" and healthy[("project2", "postgres")] == "1"
    assert healthy[("shared", "prometheus")] == "1"
