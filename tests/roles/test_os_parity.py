"""Arch Linux, the primary target, cannot be run here (no Arch mirror is reachable): check
statically that its code path is as complete as the Debian one that the Docker tests exercise."""

from __future__ import annotations

import pytest
import yaml

from stagectl import collection

ROLES = ("bootstrap", "common", "security")
FAMILIES = ("Archlinux", "Debian")


@pytest.mark.parametrize("role", ROLES)
def test_every_os_family_defines_the_same_variables(role: str) -> None:
    base = collection.collection_root() / "roles" / role
    keys = {family: set(yaml.safe_load((base / "vars" / f"{family}.yml").read_text()))
            for family in FAMILIES}
    assert keys["Archlinux"] == keys["Debian"], keys


@pytest.mark.parametrize("role", ROLES)
def test_every_os_family_has_its_setup_tasks(role: str) -> None:
    tasks = collection.collection_root() / "roles" / role / "tasks"
    for family in FAMILIES:
        assert (tasks / f"setup-{family}.yml").is_file(), f"{role}: setup-{family}.yml"


def test_arch_specifics() -> None:
    roles = collection.collection_root() / "roles"
    bootstrap = yaml.safe_load((roles / "bootstrap/vars/Archlinux.yml").read_text())
    assert bootstrap["__bootstrap_sudo_group"] == "wheel"  # as the troubleshooting guide expects
    # A refreshed database is always followed by the full upgrade (no partial upgrades).
    assert bootstrap["__bootstrap_python_install"].startswith("pacman -Syu --noconfirm")
    common = yaml.safe_load((roles / "common/vars/Archlinux.yml").read_text())
    assert {"docker", "docker-compose", "python-requests"} <= set(
        common["__common_packages"] + common["__common_docker_packages"])
    security = yaml.safe_load((roles / "security/vars/Archlinux.yml").read_text())
    assert security["__security_sshd_service"] == "sshd.service"
    assert "ufw" in security["__security_packages"]
