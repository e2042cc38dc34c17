"""The `packages_to_install` filter decides whether a role runs its package manager at all: only
when the one-line package query does not show every package installed. Anything it cannot read
counts as missing, so the role falls back to the package manager's own judgement."""

from __future__ import annotations

import pytest

from stagectl.ansible_collections.stagectl.staging.plugins.filter.package_state import (
    package_query,
    packages_to_install,
)

# dpkg-query --show --showformat='${db:Status-Status} ${Package}\n' curl htop ufw nosuch
DPKG = "installed curl\nconfig-files htop\nnot-installed ufw\n"
# pacman --query curl docker nosuch (the error for nosuch goes to stderr)
PACMAN = "curl 8.15.0-1\ndocker 1:28.3.3-1\n"


def test_debian_only_installed_packages_count() -> None:
    # A removed package whose configuration is kept, one never installed, one dpkg does not know.
    assert packages_to_install(DPKG, ["curl", "htop", "ufw", "nosuch"], "Debian") == ["htop", "ufw", "nosuch"]


def test_debian_everything_installed_needs_nothing() -> None:
    assert packages_to_install("installed curl\ninstalled jq\n", ["jq", "curl"], "Debian") == []


def test_archlinux_lists_installed_packages_with_their_version() -> None:
    assert packages_to_install(PACMAN, ["docker", "curl", "nosuch"], "Archlinux") == ["nosuch"]


@pytest.mark.parametrize("text", ["", "garbage", "installed\n", "curl installed extra words\n"])
def test_output_that_cannot_be_read_leaves_every_package_to_the_package_manager(text: str) -> None:
    assert packages_to_install(text, ["curl", "jq"], "Debian") == ["curl", "jq"]


def test_a_version_pin_is_never_taken_as_installed() -> None:
    assert packages_to_install("installed curl\n", ["curl=8.14.1-2"], "Debian") == ["curl=8.14.1-2"]


def test_an_os_family_without_a_query_installs_through_the_package_manager() -> None:
    assert package_query("Suse") == ["false"]
    assert packages_to_install(PACMAN, ["curl"], "Suse") == ["curl"]

