"""Filters: the Grafana dashboards of a stagectl environment, as provisioning JSON."""

from __future__ import annotations

DOCUMENTATION = r"""
name: grafana_dashboard
short_description: The JSON text of one Grafana dashboard of a stagectl environment
description:
  - Builds the dashboard at the relative path O(path) with the C(stagectl.dashboards) Python
    package (grafana-foundation-sdk) and returns its canonical JSON text (sorted keys, stable
    panel ids, no trailing newline), the same bytes as C(stagectl.dashboards.render()).
  - The shared dashboards are C(Shared/system-overview.json), C(Shared/monitoring-health.json)
    and C(Shared/alert-summary.json); each project gets
    C(<project>/application-performance.json), C(<project>/database-performance.json) and
    C(<project>/infrastructure.json).
  - The same file also provides C(stagectl.staging.grafana_dashboard_paths), which returns the
    list of every relative path of the environment, shared dashboards first, and
    C(stagectl.staging.grafana_dashboard_files), which returns them as entries of a role's file
    manifest (src, dest, mode, kind, dashboard) for a given template and destination directory.
  - Needs the C(stagectl) Python package importable by Ansible (it ships this collection).
positional: path
options:
  _input:
    description: The derived C(stagectl) variable, given to every host by the vars plugin
      C(stagectl.staging.environment).
    type: dict
    required: true
  path:
    description: The dashboard's path relative to the dashboards directory, C(<folder>/<name>.json).
    type: str
    required: true
"""

EXAMPLES = r"""
# templates/grafana/dashboards/beryl3-application-performance.json.j2 holds only:
#   {{ stagectl | stagectl.staging.grafana_dashboard('beryl3/application-performance.json') }}

- name: Every dashboard path, for a manifest loop
  ansible.builtin.debug:
    msg: "{{ stagectl | stagectl.staging.grafana_dashboard_paths }}"
"""

RETURN = r"""
_value:
  description:
    - C(grafana_dashboard) returns the dashboard JSON text.
    - C(grafana_dashboard_paths) returns the list of relative paths.
  type: raw
"""

from collections.abc import Mapping
from types import ModuleType
from typing import Any

from ansible.errors import AnsibleFilterError


def _dashboards() -> ModuleType:
    """stagectl.dashboards, imported on first use: Ansible loads every filter file of the
    collection to find any one of its filters, in each task's worker, and the dashboard builders
    (grafana-foundation-sdk) took 0.2 s of every task that used a stagectl filter."""
    try:
        import stagectl.dashboards
    except ImportError as exc:  # pragma: no cover - only without the stagectl package
        raise AnsibleFilterError(
            f"the stagectl Python package is not importable by Ansible ({exc}); "
            "install stagectl in the same Python environment as ansible-core"
        ) from None
    return stagectl.dashboards


def _unwrapped(data: Any) -> Any:
    """The values as stored, not templated one by one on access: `stagectl` comes from the vars
    plugin and holds no templates, and item-by-item access made each dashboard cost as much as
    the whole environment (quadratic in projects)."""
    raw = getattr(data, "_non_lazy_copy", None)
    return raw() if callable(raw) else data


def _plain(data: Any) -> Any:
    """Ansible 2.19 hands over lazy, tagged containers; the builders want plain Python values."""
    data = _unwrapped(data)
    if isinstance(data, Mapping):
        return {str(k): _plain(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_plain(v) for v in data]
    if isinstance(data, bool) or data is None:
        return data
    for kind in (int, float, str):
        if isinstance(data, kind):
            return kind(data)
    return data


def _check(stagectl: Any) -> dict[str, Any]:
    from stagectl.dashboards.inputs import ENVIRONMENT_KEYS, PROJECT_KEYS

    if not isinstance(stagectl, Mapping):
        raise AnsibleFilterError(
            "grafana_dashboard expects the `stagectl` variable (a mapping), "
            f"got {type(stagectl).__name__}"
        )
    # Only what the dashboards read: the whole environment converted for each dashboard made
    # the shared stack's rendering quadratic in projects (a dashboard per project, each
    # converting every project's settings).
    data = _unwrapped(stagectl)
    plain: dict[str, Any] = {}
    for key in ENVIRONMENT_KEYS:
        value = _unwrapped(data[key]) if key in data else None
        if key == "projects" and isinstance(value, (list, tuple)):
            plain[key] = [
                {field: _plain(project[field]) for field in PROJECT_KEYS if field in project}
                if isinstance(project := _unwrapped(entry), Mapping) else _plain(entry)
                for entry in value
            ]
        elif key in data:
            plain[key] = _plain(value)
    return plain


def grafana_dashboard(stagectl: Any, path: str) -> str:
    dashboards = _dashboards()
    try:
        return str(dashboards.render(_check(stagectl), str(path)))
    except (dashboards.UnknownDashboard, dashboards.DashboardInputError) as exc:
        raise AnsibleFilterError(f"grafana_dashboard: {exc}") from None


def grafana_dashboard_paths(stagectl: Any) -> list[str]:
    dashboards = _dashboards()
    try:
        return list(dashboards.dashboard_paths(_check(stagectl)))
    except dashboards.DashboardInputError as exc:
        raise AnsibleFilterError(f"grafana_dashboard_paths: {exc}") from None


def grafana_dashboard_files(stagectl: Any, src: str, dest_dir: str) -> list[dict[str, str]]:
    """Manifest entries: the number of dashboards follows the projects, so it cannot be a fixed list."""
    return [
        {"src": str(src), "dest": f"{dest_dir}/{path}", "mode": "0644", "kind": "json", "dashboard": path}
        for path in grafana_dashboard_paths(stagectl)
    ]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "grafana_dashboard": grafana_dashboard,
            "grafana_dashboard_paths": grafana_dashboard_paths,
            "grafana_dashboard_files": grafana_dashboard_files,
        }
