"""`stagectl status`: stacks, scrape targets, firing alerts, backup age and certificate expiry of
every project and of the shared stack, on one screen.

Like doctor, two halves: the read-only playbook `stagectl.staging.status` asks the server (Compose,
Prometheus, Alertmanager) and writes what it got to one JSON file per host; the pure functions
here sort those answers by project. Nothing here prints and nothing changes a server.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from stagectl.derived import SHARED_PROJECT, Derived, derive
from stagectl.environment import load_environment
from stagectl.expectations import Expectations, expectations
from stagectl.probes import Findings, parse_compose_ps, stack_problems
from stagectl.runner import ProgressCallback, RunResult, run_reporting_playbook

#: Alerts that fire by design and say nothing about the server's health.
QUIET_SEVERITIES = frozenset({"none", "info"})
#: A daily backup schedule with a random delay leaves at most this long between two successes.
BACKUP_MAX_AGE = 26 * 3600
#: Below this many days the certificate needs attention (the SSL warning alert's threshold).
CERTIFICATE_MIN_DAYS = 20


@dataclass(frozen=True)
class Target:
    job: str
    instance: str
    up: bool
    error: str = ""


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str
    summary: str
    since: str


@dataclass(frozen=True)
class Certificate:
    domain: str
    days_left: float


@dataclass(frozen=True)
class ProjectStatus:
    name: str
    #: Services the stack should run.
    services: int
    #: "service: what is wrong", for each service not running and healthy.
    problems: tuple[str, ...] = ()
    #: Why the stack could not be read at all ("" when it could).
    stack_error: str = ""
    targets: tuple[Target, ...] = ()
    alerts: tuple[Alert, ...] = ()
    #: Seconds since the last successful backup; None when Prometheus has no backup metric.
    backup_age: float | None = None
    #: Seconds since the last successful off-site copy; None when there is none (no
    #: `backups.remote`, or no copy yet).
    offsite_age: float | None = None
    certificates: tuple[Certificate, ...] = ()

    @property
    def stack_ok(self) -> bool:
        return not self.stack_error and not self.problems

    @property
    def targets_down(self) -> tuple[Target, ...]:
        return tuple(t for t in self.targets if not t.up)

    @property
    def backup_ok(self) -> bool:
        return self.backup_age is None or self.backup_age <= BACKUP_MAX_AGE

    @property
    def offsite_ok(self) -> bool:
        # The same daily schedule sends the copy, so the same bound (BackupOffsiteTooOld's).
        return self.offsite_age is None or self.offsite_age <= BACKUP_MAX_AGE

    @property
    def certificates_ok(self) -> bool:
        return all(c.days_left >= CERTIFICATE_MIN_DAYS for c in self.certificates)

    @property
    def ok(self) -> bool:
        return (
            self.stack_ok
            and not self.targets_down
            and not self.alerts
            and self.backup_ok
            and self.offsite_ok
            and self.certificates_ok
        )


@dataclass(frozen=True)
class HostStatus:
    host: str
    projects: tuple[ProjectStatus, ...]
    #: What could not be read (Prometheus or Alertmanager not answering, the run failing).
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors and all(p.ok for p in self.projects)


class StatusReport(list[HostStatus]):
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self) and all(host.ok for host in self)


# --- reading the findings -----------------------------------------------------------------------


def _stack(project: str, expect: Expectations, results: dict[str, Any]) -> tuple[int, tuple[str, ...], str]:
    """(number of services, problems, error) of one Compose project."""
    services = expect.stacks.get(project, ())
    result = results.get(project)
    if not isinstance(result, dict) or result.get("rc") != 0:
        message = str((result or {}).get("stderr") or (result or {}).get("msg") or "").strip()
        return len(services), (), f"docker compose ps failed: {message or 'no answer'}"
    rows = parse_compose_ps(str(result.get("stdout") or ""))
    if not rows:
        return len(services), (), "not deployed"
    problems = stack_problems(services, rows)
    return len(services), tuple(f"{svc.label}: {problem}" for svc, problem in problems), ""


def _targets(findings: Findings) -> dict[str, list[Target]]:
    by_project: dict[str, list[Target]] = {}
    for target in (findings.get("prometheus") or {}).get("targets") or []:
        labels = target.get("labels") or {}
        by_project.setdefault(str(labels.get("project") or SHARED_PROJECT), []).append(
            Target(
                job=str(labels.get("job") or target.get("scrapePool") or ""),
                instance=str(labels.get("instance") or ""),
                up=target.get("health") == "up",
                error=str(target.get("lastError") or ""),
            )
        )
    return by_project


def _alerts(findings: Findings) -> dict[str, list[Alert]]:
    by_project: dict[str, list[Alert]] = {}
    for alert in (findings.get("alertmanager") or {}).get("alerts") or []:
        labels = alert.get("labels") or {}
        severity = str(labels.get("severity") or "")
        if severity in QUIET_SEVERITIES:
            continue
        by_project.setdefault(str(labels.get("project") or SHARED_PROJECT), []).append(
            Alert(
                name=str(labels.get("alertname") or ""),
                severity=severity,
                summary=str((alert.get("annotations") or {}).get("summary") or ""),
                since=str(alert.get("startsAt") or ""),
            )
        )
    return by_project


def _query(findings: Findings, name: str) -> list[tuple[dict[str, str], float]]:
    """The instant vector a status query returned: (labels, value) pairs."""
    samples = ((findings.get("prometheus") or {}).get("queries") or {}).get(name) or []
    out = []
    for sample in samples:
        try:
            out.append((dict(sample.get("metric") or {}), float(sample["value"][1])))
        except (KeyError, IndexError, TypeError, ValueError):
            continue
    return out


def _errors(findings: Findings) -> tuple[str, ...]:
    errors = []
    for service in ("prometheus", "alertmanager"):
        answer = findings.get(service) or {}
        if answer.get("skipped"):
            continue
        if answer.get("status") != 200:
            reason = str(answer.get("msg") or f"HTTP {answer.get('status')}").strip()
            errors.append(f"{service} did not answer: {reason}")
    return tuple(errors)


def host_status(host: str, findings: Findings, model: Derived) -> HostStatus:
    """Sort one host's findings by project, shared stack first."""
    expect = expectations(model)
    stacks = {str(r.get("item")): r for r in findings.get("stacks") or [] if isinstance(r, dict)}
    targets = _targets(findings)
    alerts = _alerts(findings)
    backups = {labels.get("project", ""): value for labels, value in _query(findings, "backup_age")}
    offsite = {labels.get("project", ""): value for labels, value in _query(findings, "offsite_age")}
    certificates: dict[str, list[Certificate]] = {}
    for labels, days in _query(findings, "certificate_days"):
        domain = labels.get("instance", "").removeprefix("https://").split("/")[0].split(":")[0]
        certificates.setdefault(labels.get("project", SHARED_PROJECT), []).append(
            Certificate(domain, days)
        )
    projects = []
    for name in [SHARED_PROJECT, *model.project_names]:
        services, problems, error = _stack(name, expect, stacks)
        projects.append(
            ProjectStatus(
                name=name,
                services=services,
                problems=problems,
                stack_error=error,
                targets=tuple(targets.get(name, ())),
                alerts=tuple(alerts.get(name, ())),
                backup_age=backups.get(name),
                offsite_age=offsite.get(name),
                certificates=tuple(sorted(certificates.get(name, ()), key=lambda c: c.domain)),
            )
        )
    known = {SHARED_PROJECT, *model.project_names}
    # Alerts of a project no longer in the inventory still fire: show them with the shared stack.
    strays = tuple(a for project, items in alerts.items() if project not in known for a in items)
    if strays:
        shared = projects[0]
        projects[0] = replace(shared, alerts=shared.alerts + strays)
    return HostStatus(host, tuple(projects), _errors(findings))


def _not_read(host: str, run: RunResult) -> HostStatus:
    return HostStatus(host, (), (f"could not read the status of {host}: {run.failure_detail(host)}",))


def run_status(
    root: Path, vault_password_file: Path, on_progress: ProgressCallback | None = None
) -> StatusReport:
    """Read the status of every host of the environment at `root`. Raises EnvironmentInvalid or
    VaultError (StagectlError) when the environment itself is wrong."""
    started = time.monotonic()
    root = root.resolve()  # ansible-runner changes directory
    # allocate=False: only reads, and must see the ports the server was deployed with.
    loaded = load_environment(root, vault_password_file=vault_password_file, allocate=False)
    model = derive(loaded.env)
    hosts = list(loaded.env.inventory.staging.hosts)
    run, findings = run_reporting_playbook(
        "status", root, vault_password_file, hosts,
        out_variable="stagectl_status_out", on_progress=on_progress,
    )
    report = StatusReport(
        host_status(host, findings[host], model) if host in findings else _not_read(host, run)
        for host in hosts
    )
    report.seconds = time.monotonic() - started
    return report


def age(seconds: float) -> str:
    """A short human duration: 45s, 12m, 5h, 3d."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{max(seconds, 0):.0f}s"


def summary_lines(projects: Iterable[ProjectStatus]) -> list[str]:
    """One line per problem, for the end of the report."""
    lines = []
    for project in projects:
        if project.stack_error:
            lines.append(f"{project.name}: stack {project.stack_error}")
        lines += [f"{project.name}: {problem}" for problem in project.problems]
        lines += [
            f"{project.name}: target {t.job} {t.instance} down" + (f" ({t.error})" if t.error else "")
            for t in project.targets_down
        ]
        lines += [f"{project.name}: {a.severity} {a.name}: {a.summary}" for a in project.alerts]
        if not project.backup_ok and project.backup_age is not None:
            lines.append(f"{project.name}: last successful backup {age(project.backup_age)} ago")
        if not project.offsite_ok and project.offsite_age is not None:
            lines.append(f"{project.name}: last successful off-site copy {age(project.offsite_age)} ago")
        lines += [
            f"{project.name}: certificate of {c.domain} expires in {c.days_left:.0f} days"
            for c in project.certificates
            if c.days_left < CERTIFICATE_MIN_DAYS
        ]
    return lines
