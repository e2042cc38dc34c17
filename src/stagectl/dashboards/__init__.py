"""Grafana dashboards as code (grafana-foundation-sdk), emitted as JSON for file provisioning.

    build(stagectl)              -> {"Shared/system-overview.json": "<json>", ...}
    render(stagectl, path)       -> the JSON text of one dashboard
    dashboard_paths(stagectl)    -> every relative path, shared first
    panel_queries(stagectl)      -> every query of every panel, with dashboard and panel titles

`stagectl` is the derived environment variable (stagectl.derived.derive). Output is canonical:
the same environment always gives the same bytes, so a re-deploy changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stagectl.dashboards.board import encode
from stagectl.dashboards.catalog import SHARED_FOLDER, DashboardSpec, dashboard_specs, dashboard_uid
from stagectl.dashboards.inputs import DashboardInputError
from stagectl.dashboards.queries import PanelQuery, dashboard_queries, substitute

__all__ = [
    "SHARED_FOLDER",
    "DashboardInputError",
    "DashboardSpec",
    "PanelQuery",
    "UnknownDashboard",
    "build",
    "dashboard_paths",
    "dashboard_specs",
    "dashboard_uid",
    "panel_queries",
    "render",
    "substitute",
]


class UnknownDashboard(KeyError):
    """A relative path that names no dashboard of the environment."""

    def __init__(self, path: str, known: list[str]) -> None:
        super().__init__(path)
        self.path = path
        self.known = known

    def __str__(self) -> str:
        return f"no dashboard '{self.path}'; this environment has: {', '.join(self.known)}"


def dashboard_paths(stagectl_vars: Mapping[str, Any]) -> list[str]:
    return [spec.path for spec in dashboard_specs(stagectl_vars)]


def render(stagectl_vars: Mapping[str, Any], path: str) -> str:
    """One dashboard's JSON text; only that dashboard is built."""
    specs = {spec.path: spec for spec in dashboard_specs(stagectl_vars)}
    if path not in specs:
        raise UnknownDashboard(path, list(specs))
    return encode(specs[path].make())


def build(stagectl_vars: Mapping[str, Any]) -> dict[str, str]:
    """Every dashboard: relative path -> JSON text, in dashboard_paths() order."""
    return {spec.path: encode(spec.make()) for spec in dashboard_specs(stagectl_vars)}


def panel_queries(stagectl_vars: Mapping[str, Any]) -> list[PanelQuery]:
    """Every query of every panel of every dashboard, in reading order."""
    return [
        query
        for path, text in build(stagectl_vars).items()
        for query in dashboard_queries(path, text)
    ]
