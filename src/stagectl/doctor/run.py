"""Running doctor: the read-only playbook gathers every host's findings, then the checks judge them."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from stagectl.derived import derive
from stagectl.doctor.checks import Resolver, judge_dns, judge_host
from stagectl.doctor.report import RUN, CheckResult, DoctorReport
from stagectl.environment import load_environment
from stagectl.expectations import expectations
from stagectl.probes import Connection, refused_key
from stagectl.runner import ProgressCallback, RunResult, run_reporting_playbook
from stagectl.sshkeys import inspect_key
from stagectl.troubleshooting import explain


def _no_findings(host: str, run: RunResult) -> CheckResult:
    detail = run.failure_detail(host)
    known = explain(detail)
    return CheckResult(
        RUN,
        host,
        "failed",
        f"the doctor playbook did not finish for {host}: {detail}",
        known.fix
        if known
        else "run `ansible-playbook stagectl.staging.doctor` in the "
        "environment directory to see Ansible's full output",
    )


def run_doctor(
    root: Path,
    vault_password_file: Path,
    on_progress: ProgressCallback | None = None,
    *,
    resolver: Resolver | None = None,
) -> DoctorReport:
    """Run every check against every host of the environment at `root`. Raises
    EnvironmentInvalid/VaultError (StagectlError) when the environment itself is wrong."""
    started = time.monotonic()
    # allocate=False: doctor only reads, and must see the ports the server was deployed with.
    root = root.resolve()  # ansible-runner changes directory
    loaded = load_environment(root, vault_password_file=vault_password_file, allocate=False)
    expect = expectations(derive(loaded.env))
    hosts = list(loaded.env.inventory.staging.hosts)
    run, findings = run_reporting_playbook(
        "doctor", root, vault_password_file, hosts,
        out_variable="stagectl_doctor_out", on_progress=on_progress,
    )
    report = DoctorReport()
    for host in hosts:
        spec = loaded.env.inventory.staging.hosts[host]
        host_findings = findings.get(host)
        if host_findings is None:
            report.append(_no_findings(host, run))
            address = spec.ansible_host if spec else host
        else:
            key_state = (
                inspect_key(Connection.of(host_findings).key)
                if refused_key(host_findings)
                else None
            )
            report.extend(judge_host(host, host_findings, expect, key_state=key_state))
            address = Connection.of(host_findings).host or (spec.ansible_host if spec else host)
        report.extend(judge_dns(host, address, expect.dns_records, resolver or socket.getaddrinfo))
    report.seconds = time.monotonic() - started
    return report
