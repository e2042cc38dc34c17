"""`stagectl upgrade` on the session's sandbox: every project backed up first, the OS packages
upgraded from Debian's archive (whatever it has for the sandbox's release today), a deploy, the
health checked after; a second upgrade finds nothing to do and changes nothing; with `--reboot`,
a package's reboot flag gets its reboot and the server comes back healthy."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from stagectl.cli import app
from stagectl.upgrade import run_upgrade
from tests.conftest import show_figure
from tests.deploy.conftest import Deployed

runner = CliRunner()


def test_upgrade_backs_up_upgrades_deploys_and_checks_then_changes_nothing(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    rounds = deployed.sh("grep -E '^SHA_CRYPT' /etc/login.defs")
    first = run_upgrade(deployed.root, deployed.vault_password_file)
    assert first.backups.ok and {t.project for t in first.backups.tools} == {"beryl3", "project2", "shared"}
    [host] = first.hosts
    assert host.error == "" and not host.rebooted
    assert first.deploy is not None and first.deploy.run.ok
    assert first.healthy and first.ok, first.status
    # A package's new configuration file never replaces one stagectl (or the operator) changed.
    assert deployed.sh("grep -E '^SHA_CRYPT' /etc/login.defs") == rounds
    show_figure(capsys, f"upgrade: {len(host.packages)} packages in {first.seconds:.1f}s")

    args = ["upgrade", "--env", str(deployed.root), "--vault-password-file", str(deployed.vault_password_file)]
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "sandbox: 0 packages upgraded" in second.output
    assert "every stack and target healthy" in second.output
    # The deploy's summary row: host, ok, changed, failed, unreachable, skipped.
    row = next(line for line in second.output.splitlines() if line.startswith("│ sandbox"))
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells[2:4] == ["0", "0"], row


def test_upgrade_reboot_reboots_when_a_package_asks_and_the_server_comes_back(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    # Debian's packages ask for a reboot with this flag (a kernel, libc); the sandbox's kernel is
    # the machine's, so the flag is set here. PID 1's start time tells a reboot of the container.
    deployed.sh("touch /run/reboot-required")
    booted = deployed.sh("cut -d ' ' -f 22 /proc/1/stat")
    args = ["upgrade", "--reboot", "--env", str(deployed.root),
            "--vault-password-file", str(deployed.vault_password_file)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "sandbox: rebooted (a package asked for a reboot (/run/reboot-required))" in result.output
    assert "still running replaced libraries" not in result.output
    assert "every stack and target healthy" in result.output
    assert deployed.sh("cut -d ' ' -f 22 /proc/1/stat") != booted
    assert deployed.sh("test -e /run/reboot-required && echo flag || echo none").strip() == "none"
    show_figure(capsys, f"upgrade --reboot: {result.output.splitlines()[-1]}")
