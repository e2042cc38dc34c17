"""The `compose_settled` filter decides whether a deploy may skip `docker compose up`: only a
stack with exactly its services, each running and healthy, is settled."""

from __future__ import annotations

import json

from stagectl.ansible_collections.stagectl.staging.plugins.filter.compose_state import (
    compose_settled,
)


def ps(*containers: dict[str, str]) -> str:
    return "\n".join(json.dumps(c) for c in containers)


def running(service: str, health: str = "healthy") -> dict[str, str]:
    return {"Service": service, "State": "running", "Health": health, "Name": f"x-{service}"}


def test_every_service_running_and_healthy_is_settled() -> None:
    assert compose_settled(ps(running("nginx"), running("exporter", "")), ["nginx", "exporter"])


def test_the_json_list_form_is_read_too() -> None:
    assert compose_settled(json.dumps([running("nginx")]), ["nginx"])


def test_a_missing_service_is_not_settled() -> None:
    assert not compose_settled(ps(running("nginx")), ["nginx", "prometheus"])


def test_an_unhealthy_or_starting_service_is_not_settled() -> None:
    assert not compose_settled(ps(running("nginx", "unhealthy")), ["nginx"])
    assert not compose_settled(ps(running("nginx", "starting")), ["nginx"])


def test_a_stopped_container_is_not_settled() -> None:
    stopped = {"Service": "nginx", "State": "exited", "Health": ""}
    assert not compose_settled(ps(stopped), ["nginx"])


def test_an_extra_container_is_not_settled() -> None:
    # An orphan (a service switched off) or a release candidate: Compose has work to do.
    assert not compose_settled(ps(running("nginx"), running("django-candidate")), ["nginx"])


def test_unreadable_or_empty_output_is_not_settled() -> None:
    assert not compose_settled("Error: no such project", ["nginx"])
    assert not compose_settled("", ["nginx"])
    assert not compose_settled(ps(running("nginx")), [])
