"""Filter: whether a Compose project runs every service it should, each healthy."""

from __future__ import annotations

DOCUMENTATION = r"""
name: compose_settled
short_description: Whether `docker compose ps --all --format json` shows a settled stack
description:
  - Reads O(_input), the output of C(docker compose ps --all --format json) (one JSON object a
    line, or one JSON list), and tells whether exactly the services O(services) have containers,
    each running and healthy (a service without a healthcheck counts as healthy while it runs).
  - A deploy whose files did not change skips C(docker compose up) and the wait for health when
    this is true, as Compose would create, remove and wait for nothing.
  - Any other container of the project (an orphan, a candidate release), a missing service, or
    output that cannot be read makes it false, so the deploy does the full work.
positional: services
options:
  _input:
    description: The output of C(docker compose ps --all --format json).
    type: str
    required: true
  services:
    description: The services C(docker compose up) starts.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Skip Compose when the stack is settled
  ansible.builtin.set_fact:
    settled: "{{ ps.stdout | stagectl.staging.compose_settled(['nginx', 'prometheus']) }}"
"""

RETURN = r"""
_value:
  description: True when the stack is settled.
  type: bool
"""

import json
from collections.abc import Callable, Iterable
from typing import Any


def _containers(text: str) -> list[dict[str, Any]] | None:
    text = text.strip()
    if not text:
        return []
    try:
        if text.startswith("["):
            parsed = json.loads(text)
            return [c for c in parsed if isinstance(c, dict)] if isinstance(parsed, list) else None
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError:
        return None


def compose_settled(text: str, services: Iterable[str]) -> bool:
    containers = _containers(str(text or ""))
    wanted = sorted(set(services))
    if containers is None or not wanted:
        return False
    seen = []
    for container in containers:
        if container.get("State") != "running" or container.get("Health", "") not in ("", "healthy"):
            return False
        seen.append(str(container.get("Service", "")))
    return sorted(seen) == wanted


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"compose_settled": compose_settled}
