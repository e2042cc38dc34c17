"""The part of the `stagectl` variable (stagectl.derived.derive) that the dashboards depend on.

Reading it into small frozen records in one place means the dashboard modules are typed, and a
change in the derived variable fails here with the key's name instead of deep inside a panel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Shared services that expose /metrics and are scraped, in display order, with their titles.
# The keys are those of `stagectl.shared`; their `service` target label is `service_label(key)`.
SCRAPED_SHARED_SERVICES: dict[str, str] = {
    "prometheus": "Prometheus",
    "alertmanager": "Alertmanager",
    "loki": "Loki",
    "grafana": "Grafana",
    "alloy": "Alloy",
    "node_exporter": "node-exporter",
    "cadvisor": "cAdvisor",
    "blackbox_exporter": "Blackbox exporter",
}

def service_label(key: str) -> str:
    """The `service` label prometheus.yml gives a shared service's target: its Compose service
    name, the setting's key with '-' for '_' (node_exporter -> node-exporter)."""
    return key.replace("_", "-")


# Services of a project stack that write application logs worth a panel of their own.
APP_LOG_SERVICES = ("django", "worker", "scheduler")


class DashboardInputError(ValueError):
    """The `stagectl` variable lacks something the dashboards need."""


@dataclass(frozen=True)
class ProjectInfo:
    name: str
    domain: str
    database: str  # the project's PostgreSQL database (pg_stat_database's datname)
    containers: Mapping[str, str]  # service -> container name, every container of the stack

    @property
    def app_log_services(self) -> tuple[str, ...]:
        return tuple(s for s in APP_LOG_SERVICES if s in self.containers)


@dataclass(frozen=True)
class EnvironmentInfo:
    projects: tuple[ProjectInfo, ...]
    shared_services: tuple[str, ...]  # enabled and scraped, in SCRAPED_SHARED_SERVICES order


def _get(data: Mapping[str, Any], key: str, where: str) -> Any:
    try:
        return data[key]
    except (KeyError, TypeError):
        raise DashboardInputError(
            f"the stagectl variable has no '{where}{key}': pass the whole derived `stagectl` "
            "variable (stagectl.derived.derive)"
        ) from None


# The keys of `stagectl` and of each of its projects that read_environment reads: a caller that
# converts the variable first (the Ansible filter) converts only these.
ENVIRONMENT_KEYS = ("projects", "shared")
PROJECT_KEYS = ("name", "domain", "database", "containers")


def _project(data: Mapping[str, Any], index: int) -> ProjectInfo:
    where = f"projects[{index}]."
    containers = _get(data, "containers", where)
    if not isinstance(containers, Mapping):
        raise DashboardInputError(f"the stagectl variable's '{where}containers' is not a mapping")
    return ProjectInfo(
        name=str(_get(data, "name", where)),
        domain=str(_get(data, "domain", where)),
        database=str(_get(_get(data, "database", where), "name", f"{where}database.")),
        containers={str(k): str(v) for k, v in containers.items()},
    )


def read_environment(stagectl_vars: Mapping[str, Any]) -> EnvironmentInfo:
    projects: Sequence[Mapping[str, Any]] = _get(stagectl_vars, "projects", "")
    shared: Mapping[str, Any] = _get(stagectl_vars, "shared", "")
    enabled = tuple(
        name
        for name in SCRAPED_SHARED_SERVICES
        if name in shared and bool(_get(shared[name], "enabled", f"shared.{name}."))
    )
    return EnvironmentInfo(
        projects=tuple(_project(p, i) for i, p in enumerate(projects)),
        shared_services=enabled,
    )
