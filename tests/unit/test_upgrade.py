"""`stagectl upgrade`: what the playbook's findings say, and the command's refusals before anything
runs. The upgrade itself runs on the sandbox (tests/deploy/test_upgrade.py)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from stagectl.cli import app
from stagectl.upgrade import HostUpgrade, host_upgrade
from tests.conftest import EnvFixture

runner = CliRunner()


def test_debian_findings_name_each_package_and_why_a_reboot_is_due() -> None:
    result = host_upgrade("staging-server", {
        "os_family": "Debian",
        "apt_plan": [
            "Inst passwd [1:4.17.4-2] (1:4.17.4-2+deb13u1 Debian-Security:13/stable-security [amd64])",
            "Inst linux-image-6.12.0-2-amd64 (6.12.9-1 Debian:13/stable [amd64])",
        ],
        "needrestart": ["NEEDRESTART-VER: 3.11", "NEEDRESTART-KCUR: 6.12.0-1-amd64",
                        "NEEDRESTART-KEXP: 6.12.0-2-amd64", "NEEDRESTART-KSTA: 3",
                        "NEEDRESTART-SVC: ssh.service", "NEEDRESTART-SVC: fail2ban.service"],
        "reboot_flag": True,
        "kernel_replaced": False,
        "rebooted": False,
    })
    assert result.packages == ("passwd 1:4.17.4-2 -> 1:4.17.4-2+deb13u1",
                               "linux-image-6.12.0-2-amd64 (new) 6.12.9-1")
    assert result.reboot_reasons == ("kernel 6.12.0-2-amd64 is installed, 6.12.0-1-amd64 runs",
                                     "a package asked for a reboot (/run/reboot-required)")
    assert result.reboot_due and not result.rebooted
    assert result.services == ("ssh.service", "fail2ban.service")


def test_an_up_to_date_debian_host_needs_nothing() -> None:
    result = host_upgrade("h", {"apt_plan": [], "needrestart": ["NEEDRESTART-VER: 3.11", "NEEDRESTART-KSTA: 1"],
                                "reboot_flag": False, "rebooted": False})
    assert result == HostUpgrade("h")
    assert not result.reboot_due


def test_arch_findings_and_a_reboot_done() -> None:
    result = host_upgrade("arch", {"os_family": "Archlinux", "apt_plan": [], "packages": ["linux", "openssl"],
                                   "needrestart": [], "kernel_replaced": True, "rebooted": True})
    assert result.packages == ("linux", "openssl")
    assert result.reboot_reasons == ("the running kernel's modules were replaced by the upgrade",)
    assert result.rebooted and not result.reboot_due


def test_after_a_reboot_no_service_is_left_on_replaced_libraries() -> None:
    result = host_upgrade("h", {"apt_plan": [], "reboot_flag": True, "rebooted": True,
                                "needrestart": ["NEEDRESTART-KSTA: 1", "NEEDRESTART-SVC: ssh.service"]})
    assert result.rebooted and result.services == ()


def test_a_wrong_vault_password_stops_the_upgrade_before_anything_runs(
    example_env: EnvFixture, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong-pass"
    wrong.write_text("not the password\n")
    result = runner.invoke(app, ["upgrade", "--env", str(example_env.root), "--vault-password-file", str(wrong)])
    assert result.exit_code == 2, result.output
    assert "vault" in result.output and "upgrade: backing up" not in result.output
