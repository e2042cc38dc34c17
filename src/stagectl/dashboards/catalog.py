"""Which dashboards an environment gets: their paths, folders, UIDs and titles."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from grafana_foundation_sdk.models import dashboard as model

from stagectl.dashboards.alert_summary import alert_summary
from stagectl.dashboards.application import application_performance
from stagectl.dashboards.database import database_performance
from stagectl.dashboards.infrastructure import infrastructure
from stagectl.dashboards.inputs import ProjectInfo, read_environment
from stagectl.dashboards.monitoring_health import monitoring_health
from stagectl.dashboards.system_overview import system_overview

# Capitalised on purpose: project names are lowercase slugs, so no project folder can ever be
# called "Shared". Grafana's file provider (foldersFromFilesStructure) names folders after these
# directories.
SHARED_FOLDER = "Shared"
UID_PREFIX = "stagectl"
MAX_UID = 40  # Grafana refuses longer dashboard UIDs
HASH_CHARS = 8


@dataclass(frozen=True)
class DashboardSpec:
    path: str  # relative: "<folder>/<slug>.json"
    folder: str
    uid: str
    title: str
    make: Callable[[], model.Dashboard]


def dashboard_uid(*parts: str) -> str:
    """`stagectl-<parts>`; past 40 characters the first part (a project name, up to 40
    characters itself) is shortened and suffixed with a hash of its full value, so the UID stays
    unique, stable and still readable."""
    uid = "-".join((UID_PREFIX, *parts))
    if len(uid) <= MAX_UID:
        return uid
    head, *rest = parts
    digest = hashlib.sha256(head.encode()).hexdigest()[:HASH_CHARS]
    fixed = len("-".join((UID_PREFIX, "", digest, *rest)))
    short = head[: max(0, MAX_UID - fixed)].rstrip("-")
    return (
        "-".join((UID_PREFIX, short, digest, *rest))
        if short
        else "-".join((UID_PREFIX, digest, *rest))
    )


def _shared_specs(services: tuple[str, ...]) -> list[DashboardSpec]:
    tag = "shared"
    specs = [
        ("system-overview", "System Overview", partial(system_overview, link_tag=tag)),
        (
            "monitoring-health",
            "Monitoring Health",
            partial(monitoring_health, link_tag=tag, services=services),
        ),
        ("alert-summary", "Alert Summary", partial(alert_summary, link_tag=tag)),
    ]
    return [
        DashboardSpec(
            path=f"{SHARED_FOLDER}/{slug}.json",
            folder=SHARED_FOLDER,
            uid=(uid := dashboard_uid(slug)),
            title=title,
            make=partial(build, uid=uid, title=title),
        )
        for slug, title, build in specs
    ]


def _project_specs(project: ProjectInfo) -> list[DashboardSpec]:
    name = project.name
    specs = [
        ("application-performance", "app", "Application Performance", application_performance),
        ("database-performance", "db", "Database Performance", database_performance),
        ("infrastructure", "infra", "Infrastructure", infrastructure),
    ]
    result: list[DashboardSpec] = []
    for slug, kind, heading, build in specs:
        uid = dashboard_uid(name, kind)
        title = f"{name}: {heading}"
        result.append(
            DashboardSpec(
                path=f"{name}/{slug}.json",
                folder=name,
                uid=uid,
                title=title,
                make=partial(build, uid=uid, title=title, link_tag=name, project=project),
            )
        )
    return result


def dashboard_specs(stagectl_vars: Mapping[str, Any]) -> list[DashboardSpec]:
    """Every dashboard of the environment: the shared ones first, then per project in order."""
    env = read_environment(stagectl_vars)
    specs = _shared_specs(env.shared_services)
    for project in env.projects:
        specs.extend(_project_specs(project))
    return specs
