"""Filters: whether a Compose project runs every service it should, each healthy; whether a
project is as the last deploy left it."""

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


def _healthy(container: dict[str, Any]) -> bool:
    """`docker ps` states health only in its status text: "Up 2 hours (healthy)"."""
    status = str(container.get("Status", ""))
    return container.get("State") == "running" and "(unhealthy)" not in status and "(health:" not in status


def _service(container: dict[str, Any]) -> str:
    labels = dict(item.partition("=")[::2] for item in str(container.get("Labels", "")).split(","))
    return labels.get("com.docker.compose.service", "")


def deploy_settled(text: str, inputs: str, services: Iterable[str]) -> bool:
    """The output of `cat <state file>; echo; docker ps --all --no-trunc --filter
    label=com.docker.compose.project=<project> --format json`: the state file a successful deploy
    wrote (`{"inputs": ..., "containers": [ids]}`), then one JSON line per container. True when
    the state names these `inputs` and exactly the containers that run now, each healthy, one
    per service of `services`: nothing was changed or recreated since that deploy."""
    first, _, rest = str(text or "").partition("\n")
    try:
        state = json.loads(first)
    except ValueError:
        return False
    containers = _containers(rest)
    if not isinstance(state, dict) or containers is None or state.get("inputs") != inputs:
        return False
    return (
        all(_healthy(c) for c in containers)
        and sorted(str(c.get("ID", "")) for c in containers) == sorted(map(str, state.get("containers") or []))
        and sorted(_service(c) for c in containers) == sorted(set(services))
    )


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"compose_settled": compose_settled, "deploy_settled": deploy_settled}
