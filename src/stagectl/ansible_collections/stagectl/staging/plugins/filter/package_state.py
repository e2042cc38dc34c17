"""Filters: the command that lists which packages are installed, and the packages it shows missing."""

from __future__ import annotations

DOCUMENTATION = r"""
name: packages_to_install
short_description: The packages that the package query shows not installed
description:
  - Reads O(_input), the output of the command that the filter C(stagectl.staging.package_query)
    gives for O(os_family), followed by the packages O(packages), and returns the packages of O(packages)
    that it does not show as installed, in the order of O(packages).
  - A package manager module (M(ansible.builtin.apt), M(community.general.pacman)) opens the
    whole package database even when there is nothing to install (about a second a task). A role
    asks for its packages in one short command and runs the module only when this list is not
    empty.
  - A package missing from the output (a name the package manager does not know, a virtual
    package, a version pin such as C(name=1.2)), output that cannot be read, or an OS family
    without a query returns the package, so the role runs the package manager as it always did.
positional: packages, os_family
options:
  _input:
    description: The output of the package query.
    type: str
    required: true
  packages:
    description: The packages the role installs.
    type: list
    elements: str
    required: true
  os_family:
    description: C(ansible_facts['os_family']) of the host.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Read which of the packages are installed
  ansible.builtin.command:
    argv: "{{ (ansible_facts['os_family'] | stagectl.staging.package_query) + ['ufw', 'fail2ban'] }}"
  register: installed
  changed_when: false
  failed_when: false
  check_mode: false

- name: Install the packages that are not
  ansible.builtin.apt:
    name: [ufw, fail2ban]
  when: installed.stdout | stagectl.staging.packages_to_install(['ufw', 'fail2ban'], 'Debian') | length > 0
"""

RETURN = r"""
_value:
  description: The packages of O(packages) not shown as installed.
  type: list
  elements: str
"""

from collections.abc import Callable, Iterable
from typing import Any

# The packages named after the command; each prints one line an installed package, and an error
# on stderr (exit code 1) for a name it does not know.
#   Debian: "installed curl", "config-files htop" (removed, its configuration kept)
#   Arch:   "curl 8.15.0-1" (installed packages only)
_QUERIES: dict[str, list[str]] = {
    "Debian": ["dpkg-query", "--show", "--showformat=${db:Status-Status} ${Package}\\n"],
    "Archlinux": ["pacman", "--query"],
}


def package_query(os_family: str) -> list[str]:
    """The command, without the package names, that lists the installed ones; ['false'] for an
    OS family without a query (its packages then all count as missing)."""
    return list(_QUERIES.get(os_family, ["false"]))


def _installed(text: str, os_family: str) -> set[str]:
    fields = [line.split() for line in str(text or "").splitlines()]
    if os_family == "Debian":
        return {name for status, name in (f for f in fields if len(f) == 2) if status == "installed"}
    if os_family == "Archlinux":
        return {f[0] for f in fields if len(f) == 2}
    return set()


def packages_to_install(text: str, packages: Iterable[str], os_family: str) -> list[str]:
    installed = _installed(text, os_family)
    return [package for package in packages if package not in installed]


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"package_query": package_query, "packages_to_install": packages_to_install}
