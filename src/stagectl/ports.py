"""Host port allocation and conflict checks.

Ports are allocated once, from fixed bases (PostgreSQL 5432+, Django 8000+, Redis 6379+), and
then written into the inventory, so that adding or removing a project never moves another one.
"""

from __future__ import annotations

from collections.abc import Iterable

from stagectl.errors import Problem
from stagectl.model import PORT_BASES, PORT_KINDS, Project, ProjectPorts

INVENTORY_FILE = "inventory/staging.yml"


def allocate(projects: list[Project], reserved: Iterable[int]) -> tuple[list[Project], dict[str, dict[str, int]]]:
    """Fill in every omitted port with the lowest free one at or above its base.

    Returns the projects with all ports set and, per project name, the ports that were allocated.
    Ports already set (by the user or an earlier allocation) are never changed.
    """
    taken = set(reserved)
    for project in projects:
        taken.update(p for p in project.ports.model_dump().values() if p is not None)

    allocated: dict[str, dict[str, int]] = {}
    result: list[Project] = []
    for project in projects:
        ports = project.ports.model_dump()
        for kind in PORT_KINDS:
            if ports[kind] is None:
                port = PORT_BASES[kind]
                while port in taken:
                    port += 1
                taken.add(port)
                ports[kind] = port
                allocated.setdefault(project.name, {})[kind] = port
        result.append(project.model_copy(update={"ports": ProjectPorts(**ports)}))
    return result, allocated


def conflicts(projects: list[tuple[int, Project]], reserved: dict[str, int]) -> list[Problem]:
    """Every port used twice, or used by a project and the shared stack, as a Problem.

    `projects` pairs each project with its index in the inventory's list, for the field path.
    """
    problems: list[Problem] = []
    owners: dict[int, str] = {port: f"the shared service '{name}'" for name, port in reserved.items()}
    for index, project in projects:
        for kind, port in project.ports.model_dump().items():
            if port is None:
                continue
            field = f"staging.vars.projects[{index}] (name={project.name}).ports.{kind}"
            if port in owners:
                problems.append(
                    Problem(
                        INVENTORY_FILE,
                        field,
                        f"port {port} of project '{project.name}' is already used by {owners[port]}",
                        "pick a free port, or remove the line to have one allocated",
                    )
                )
            else:
                owners[port] = f"project '{project.name}' ({kind})"
    return problems
