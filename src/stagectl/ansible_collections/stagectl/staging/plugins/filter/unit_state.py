"""Filters: which systemd units are not yet enabled and running (`units_to_start`), and which are
not yet disabled and stopped (`units_to_stop`)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: units_to_start
short_description: The units that `systemctl show` reports as not enabled or not active
description:
  - Reads O(_input), the output of C(systemctl show --property=Id,UnitFileState,ActiveState)
    for the units O(units) (one block of C(key=value) lines a unit, blocks separated by an empty
    line), and returns the units of O(units) that are not both enabled and active, in the order
    of O(units).
  - A deploy asks systemd about all of a role's timers in one command and runs
    M(ansible.builtin.systemd_service) only for the units this returns, instead of one module run
    a unit on every deploy.
  - A unit missing from the output (a unit systemd does not know, output that cannot be read) is
    returned, so the deploy enables and starts it.
  - Its twin C(stagectl.staging.units_to_stop) takes the same arguments and returns the units that
    are not both disabled (or masked) and inactive, for a task that turns units off.
positional: units
options:
  _input:
    description: The output of C(systemctl show --property=Id,UnitFileState,ActiveState UNITS...).
    type: str
    required: true
  units:
    description: The units asked about.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Enable and start the timers that are not yet
  ansible.builtin.systemd_service:
    name: "{{ item }}"
    enabled: true
    state: started
  loop: "{{ timers_state.stdout | stagectl.staging.units_to_start(['a.timer', 'b.timer']) }}"
"""

RETURN = r"""
_value:
  description: The units of O(units) that are not enabled and active.
  type: list
  elements: str
"""

from collections.abc import Callable, Iterable
from typing import Any


def _blocks(text: str) -> dict[str, dict[str, str]]:
    units: dict[str, dict[str, str]] = {}
    for block in str(text or "").split("\n\n"):
        properties = dict(line.partition("=")[::2] for line in block.splitlines() if "=" in line)
        if properties.get("Id"):
            units[properties["Id"]] = properties
    return units


def units_to_start(text: str, units: Iterable[str]) -> list[str]:
    shown = _blocks(text)
    return [
        unit for unit in units
        if shown.get(unit, {}).get("UnitFileState") != "enabled" or shown.get(unit, {}).get("ActiveState") != "active"
    ]  # fmt: skip


def units_to_stop(text: str, units: Iterable[str]) -> list[str]:
    """The units that are not both disabled (or masked) and inactive; a unit missing from the
    output or that systemd does not know is returned, so the deploy's module decides."""
    shown = _blocks(text)
    return [
        unit for unit in units
        if shown.get(unit, {}).get("UnitFileState") not in ("disabled", "masked")
        or shown.get(unit, {}).get("ActiveState") != "inactive"
    ]  # fmt: skip


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"units_to_start": units_to_start, "units_to_stop": units_to_stop}
