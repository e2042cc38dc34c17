"""`stagectl upgrade`: a backup of every project, the OS packages of every host upgraded (playbook
upgrade, role common), a deploy (image tags changed in the environment, anything the upgrade
reset), then the health of the stacks and targets.

The playbook writes what it found per host as JSON; this module turns that into typed results.
Nothing is upgraded when the backup fails, and nothing is deployed when the upgrade fails.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stagectl import backup
from stagectl.deploy import DeployReport, deploy
from stagectl.environment import load_environment
from stagectl.runner import ProgressCallback, RunResult, run_reporting_playbook
from stagectl.status import StatusReport, run_status

# apt-get --simulate: "Inst login.defs [1:4.17.4-2] (1:4.17.4-2+deb13u1 Debian-Security:13/... [all])";
# a package new to the server has no [old] part.
_APT_INST = re.compile(r"^Inst (?P<name>\S+)(?: \[(?P<old>[^\]]+)\])? \((?P<new>\S+)")


@dataclass(frozen=True)
class HostUpgrade:
    host: str
    #: "name old -> new" (Debian) or the names pacman changed (Arch).
    packages: tuple[str, ...] = ()
    #: Why a reboot is due (empty: none is).
    reboot_reasons: tuple[str, ...] = ()
    rebooted: bool = False
    #: Services still running replaced libraries (needrestart), to restart or reboot for.
    services: tuple[str, ...] = ()
    #: Why the host's upgrade did not finish.
    error: str = ""

    @property
    def reboot_due(self) -> bool:
        return bool(self.reboot_reasons) and not self.rebooted


def host_upgrade(host: str, findings: dict[str, Any]) -> HostUpgrade:
    """One host's findings (playbook upgrade) as a result."""
    packages = []
    for line in findings.get("apt_plan") or []:
        match = _APT_INST.match(str(line))
        if match:
            old = match.group("old")
            packages.append(f"{match.group('name')} {old} -> {match.group('new')}" if old
                            else f"{match.group('name')} (new) {match.group('new')}")
    packages += [str(name) for name in findings.get("packages") or []]
    needrestart: dict[str, list[str]] = {}
    for line in findings.get("needrestart") or []:
        key, _, value = str(line).partition(": ")
        needrestart.setdefault(key.removeprefix("NEEDRESTART-"), []).append(value.strip())
    reasons = []
    if needrestart.get("KSTA", ["0"])[0] in ("2", "3"):
        reasons.append(f"kernel {needrestart.get('KEXP', ['?'])[0]} is installed, "
                       f"{needrestart.get('KCUR', ['?'])[0]} runs")
    if findings.get("kernel_replaced"):
        reasons.append("the running kernel's modules were replaced by the upgrade")
    if findings.get("reboot_flag"):
        reasons.append("a package asked for a reboot (/run/reboot-required)")
    rebooted = bool(findings.get("rebooted"))
    return HostUpgrade(
        host=host,
        packages=tuple(packages),
        reboot_reasons=tuple(reasons),
        rebooted=rebooted,
        # needrestart looked before the reboot, which started every service afresh.
        services=() if rebooted else tuple(needrestart.get("SVC", [])),
    )


@dataclass
class UpgradeReport:
    backups: backup.BackupReport
    run: RunResult | None = None
    hosts: list[HostUpgrade] = field(default_factory=list)
    deploy: DeployReport | None = None
    status: StatusReport | None = None
    seconds: float = 0.0

    @property
    def healthy(self) -> bool:
        """Every stack up and healthy, every target up (alerts are reported, not judged here:
        some only resolve minutes later)."""
        return self.status is not None and bool(self.status) and all(
            not host.errors and all(p.stack_ok and not p.targets_down for p in host.projects)
            for host in self.status
        )

    @property
    def ok(self) -> bool:
        return (
            self.backups.ok
            and self.run is not None and self.run.ok
            and not any(h.error for h in self.hosts)
            and self.deploy is not None and self.deploy.run.ok
            and self.healthy
        )


def run_upgrade(
    root: Path,
    vault_password_file: Path,
    *,
    reboot: bool = False,
    on_progress: ProgressCallback | None = None,
    on_step: Callable[[str], None] | None = None,
) -> UpgradeReport:
    """Back up, upgrade, deploy, check; stops at the first step that fails (the report says
    which). Raises EnvironmentInvalid or VaultError (StagectlError) when the environment itself
    is wrong, before anything runs."""
    started = time.monotonic()
    root = root.resolve()  # ansible-runner changes directory
    step = on_step or (lambda _name: None)
    hosts = list(load_environment(root, vault_password_file=vault_password_file, allocate=False)
                 .env.inventory.staging.hosts)

    def done(report: UpgradeReport) -> UpgradeReport:
        report.seconds = time.monotonic() - started
        return report

    step("backing up every project")
    report = UpgradeReport(backups=backup.run_action(root, vault_password_file, "run", on_progress=on_progress))
    if not report.backups.ok:
        return done(report)

    step("upgrading the OS packages")
    report.run, findings = run_reporting_playbook(
        "upgrade", root, vault_password_file, hosts,
        out_variable="stagectl_upgrade_out", extravars={"common_upgrade_reboot": reboot},
        on_progress=on_progress,
    )  # fmt: skip
    report.hosts = [
        host_upgrade(host, findings[host]) if host in findings
        else HostUpgrade(host, error=report.run.failure_detail(host))
        for host in hosts
    ]
    if not report.run.ok or any(h.error for h in report.hosts):
        return done(report)

    step("deploying")
    report.deploy = deploy(root, vault_password_file, on_progress=on_progress)
    if not report.deploy.run.ok:
        return done(report)

    step("checking the health")
    report.status = run_status(root, vault_password_file, on_progress=on_progress)
    return done(report)
