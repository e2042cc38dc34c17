"""Filters: whether a Compose project runs every service it should, each healthy; whether a
project, or which of many, is as the last deploy left it."""

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


def _label(container: dict[str, Any], name: str) -> str:
    labels = dict(item.partition("=")[::2] for item in str(container.get("Labels", "")).split(","))
    return labels.get(name, "")


def deploy_settled_projects(text: str, candidates: Iterable[dict[str, Any]]) -> list[str]:
    """Which projects are as the last deploy left them. `text` has one line per candidate, in
    order, with the first line of its record (empty when there is none), then `docker ps --all
    --no-trunc --format json --filter label=com.docker.compose.project` of every Compose project.
    A candidate is an entry of `file_changes`' `projects` with `details` (`inputs`,
    `compose_project`) and `compose_services`. A candidate is settled when its record, the one a
    successful deploy wrote (`{"inputs": ..., "containers": [ids]}`), names these `inputs` and
    exactly the containers of its Compose project that run now, each healthy, one per service of
    `compose_services`: nothing was changed or recreated since that deploy. Returns the names of
    the settled candidates."""
    candidates = list(candidates)
    lines = str(text or "").split("\n")
    containers = _containers("\n".join(lines[len(candidates):]))
    if len(lines) < len(candidates) or containers is None:
        return []
    by_project: dict[str, list[dict[str, Any]]] = {}
    for container in containers:
        by_project.setdefault(_label(container, "com.docker.compose.project"), []).append(container)
    return [str(candidate["name"]) for record, candidate in zip(lines, candidates, strict=False)
            if _settled(record, by_project.get(str(candidate["details"]["compose_project"]), []),
                        str(candidate["details"]["inputs"]), candidate["compose_services"])]


def _settled(record: str, containers: list[dict[str, Any]], inputs: str, services: Iterable[str]) -> bool:
    try:
        state = json.loads(record)
    except ValueError:
        return False
    if not isinstance(state, dict) or state.get("inputs") != inputs:
        return False
    return (
        all(_healthy(c) for c in containers)
        and sorted(str(c.get("ID", "")) for c in containers) == sorted(map(str, state.get("containers") or []))
        and sorted(_label(c, "com.docker.compose.service") for c in containers) == sorted(set(services))
    )


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"compose_settled": compose_settled, "deploy_settled_projects": deploy_settled_projects}
