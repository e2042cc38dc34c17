"""The `compose_settled` filter decides whether a deploy may skip `docker compose up`: only a
stack with exactly its services, each running and healthy, is settled. `deploy_settled_projects`
decides which projects may skip their whole deploy: the same inputs and the same containers as
the last successful deploy left, each healthy, read for all projects at once."""

from __future__ import annotations

import json

from stagectl.ansible_collections.stagectl.staging.plugins.filter.compose_state import (
    compose_settled,
    deploy_settled_projects,
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


# --- deploy_settled_projects: a project as the last deploy left it ---------------------------------


def docker_ps(service: str, cid: str, status: str = "Up 2 hours (healthy)", state: str = "running",
              project: str = "shop") -> dict[str, str]:
    """A line of `docker ps --format json`: health only in the status text, labels as one string."""
    return {"ID": cid, "State": state, "Status": status, "Names": f"{project}-{service}",
            "Labels": f"com.docker.compose.project={project},com.docker.compose.service={service},org.x=a=b"}


def left(inputs: str, *ids: str) -> str:
    return json.dumps({"inputs": inputs, "containers": list(ids)})


def output(state: str, *containers: dict[str, str]) -> str:
    return state + "\n" + ps(*containers)


def deploy_settled(text: str, inputs: str, services: list[str]) -> bool:
    """The filter with the one project `shop` as its candidate."""
    shop = {"name": "shop", "compose_services": services, "details": {"compose_project": "shop", "inputs": inputs}}
    return deploy_settled_projects(text, [shop]) == ["shop"]


STACK = (docker_ps("django", "c1"), docker_ps("nginx", "c2", "Up 2 hours"))


def test_the_same_inputs_and_containers_running_healthy_are_settled() -> None:
    assert deploy_settled(output(left("k1", "c2", "c1"), *STACK), "k1", ["nginx", "django"])


def test_other_inputs_are_not_settled() -> None:
    assert not deploy_settled(output(left("k0", "c1", "c2"), *STACK), "k1", ["nginx", "django"])


def test_no_state_file_is_not_settled() -> None:
    assert not deploy_settled(output("", *STACK), "k1", ["nginx", "django"])
    assert not deploy_settled(output("{not json", *STACK), "k1", ["nginx", "django"])


def test_a_recreated_container_is_not_settled() -> None:
    """Same service, new container (recreated by hand, perhaps with other settings)."""
    assert not deploy_settled(output(left("k1", "c1", "c2"), STACK[0], docker_ps("nginx", "c9")), "k1",
                              ["nginx", "django"])


def test_an_unhealthy_starting_or_stopped_container_is_not_settled() -> None:
    for bad in (docker_ps("nginx", "c2", "Up 1 second (health: starting)"),
                docker_ps("nginx", "c2", "Up 2 hours (unhealthy)"),
                docker_ps("nginx", "c2", "Exited (0) 1 minute ago", state="exited")):
        assert not deploy_settled(output(left("k1", "c1", "c2"), STACK[0], bad), "k1", ["nginx", "django"])


def test_a_candidate_left_from_a_hand_over_is_not_settled() -> None:
    candidate = docker_ps("django-next", "c3")
    assert not deploy_settled(output(left("k1", "c1", "c2", "c3"), *STACK, candidate), "k1", ["nginx", "django"])


# --- many projects, one read ---------------------------------------------------------------------------


def candidate(name: str, inputs: str) -> dict[str, object]:
    """An entry of file_changes' `projects` whose files all match."""
    return {"name": name, "differs": False, "compose_services": ["django", "nginx"],
            "details": {"settles": True, "record": f"/opt/projects/{name}/.stagectl-deployed.json",
                        "compose_project": name, "inputs": inputs}}


SHOP = (docker_ps("django", "s1"), docker_ps("nginx", "s2"))
BLOG = (docker_ps("django", "b1", project="blog"), docker_ps("nginx", "b2", project="blog"))
# The shared stack's containers are Compose containers too; no candidate claims them.
MONITORING = docker_ps("prometheus", "m1", project="monitoring")


def test_each_project_is_judged_on_its_own_record_and_containers() -> None:
    text = "\n".join([left("k-shop", "s1", "s2"), left("k-blog", "b1", "b2"), ps(*SHOP, MONITORING, *BLOG)])
    both = [candidate("shop", "k-shop"), candidate("blog", "k-blog")]
    assert deploy_settled_projects(text, both) == ["shop", "blog"]
    # Another project's inputs, or another project's record, settle nothing.
    assert deploy_settled_projects(text, [candidate("shop", "k-blog"), candidate("blog", "k-blog")]) == ["blog"]
    swapped = "\n".join([left("k-blog", "b1", "b2"), left("k-shop", "s1", "s2"), ps(*SHOP, *BLOG)])
    assert deploy_settled_projects(swapped, both) == []


def test_a_project_without_a_record_leaves_the_others_settled() -> None:
    text = "\n".join(["", left("k-blog", "b1", "b2"), ps(*SHOP, *BLOG)])
    assert deploy_settled_projects(text, [candidate("shop", "k-shop"), candidate("blog", "k-blog")]) == ["blog"]


def test_a_recreated_or_unhealthy_container_unsettles_its_project_only() -> None:
    recreated = "\n".join([left("k-shop", "s1", "s2"), left("k-blog", "b1", "b2"),
                           ps(SHOP[0], docker_ps("nginx", "s9"), *BLOG)])
    both = [candidate("shop", "k-shop"), candidate("blog", "k-blog")]
    assert deploy_settled_projects(recreated, both) == ["blog"]
    unhealthy = "\n".join([left("k-shop", "s1", "s2"), left("k-blog", "b1", "b2"),
                           ps(*SHOP, BLOG[0], docker_ps("nginx", "b2", "Up 1 hour (unhealthy)", project="blog"))])
    assert deploy_settled_projects(unhealthy, both) == ["shop"]


def test_unreadable_or_short_output_settles_nothing() -> None:
    both = [candidate("shop", "k-shop"), candidate("blog", "k-blog")]
    assert deploy_settled_projects("\n".join([left("k-shop", "s1", "s2"), left("k-blog", "b1", "b2"),
                                              "Cannot connect to the Docker daemon"]), both) == []
    assert deploy_settled_projects(left("k-shop", "s1", "s2"), both) == []
    assert deploy_settled_projects("", []) == []
