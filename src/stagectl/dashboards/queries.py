"""Every query of every panel, read back from the rendered JSON.

Reading the output (not the Python that produced it) means the tests and the sandbox check see
exactly what Grafana will run. `PanelQuery.concrete()` replaces Grafana's variables with values
Prometheus accepts, so a query can be parsed offline or sent to a live Prometheus as is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

# Values for Grafana's built-in variables. 1m is four 15s scrapes, what $__rate_interval resolves
# to at the default scrape interval; 1h is a plausible dashboard range.
BUILTIN_VARIABLES: dict[str, str] = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__auto": "1m",
    "__range": "1h",
    "__interval_ms": "60000",
    "__range_s": "3600",
    "__range_ms": "3600000",
}

# $name, ${name}, ${name:format} and the deprecated [[name]] / [[name:format]].
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")

LANGUAGES = {"prometheus": "promql", "loki": "logql"}


class UnknownVariable(KeyError):
    """A query refers to a variable the dashboard does not define."""


def variables_used(expr: str) -> set[str]:
    return {next(g for g in m.groups() if g) for m in _VARIABLE.finditer(expr)}


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    values = {**BUILTIN_VARIABLES, **variables}

    def value(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        try:
            return values[name]
        except KeyError:
            raise UnknownVariable(name) from None

    return _VARIABLE.sub(value, expr)


@dataclass(frozen=True)
class PanelQuery:
    path: str  # the dashboard's relative path, e.g. "beryl3/application-performance.json"
    dashboard: str  # dashboard title
    uid: str  # dashboard UID
    panel: str  # panel title
    panel_id: int
    ref_id: str
    datasource: str  # data source UID: "prometheus" or "loki"
    expr: str  # as Grafana stores it, variables included
    instant: bool
    variables: Mapping[str, str] = field(default_factory=dict)  # the dashboard's defaults

    @property
    def language(self) -> str:
        return LANGUAGES.get(self.datasource, self.datasource)

    def concrete(self) -> str:
        """The expression with every variable replaced (built-ins and dashboard defaults)."""
        return substitute(self.expr, self.variables)


def _variable_defaults(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """What each dashboard variable stands for when the dashboard opens ("All" where allowed)."""
    defaults: dict[str, str] = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        current = variable.get("current") or {}
        value = current.get("value")
        if variable.get("includeAll") and variable.get("allValue") is not None:
            defaults[variable["name"]] = variable["allValue"]
        elif isinstance(value, str) and value != "$__all":
            defaults[variable["name"]] = value
        else:
            defaults[variable["name"]] = ".*"
    return defaults


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        # Collapsed rows keep their panels inside; expanded rows are followed by them.
        yield from _panels(panel.get("panels") or [])


def dashboard_queries(path: str, text: str) -> list[PanelQuery]:
    dashboard = json.loads(text)
    variables = _variable_defaults(dashboard)
    found: list[PanelQuery] = []
    for panel in _panels(dashboard.get("panels") or []):
        panel_source = (panel.get("datasource") or {}).get("uid", "")
        for target in panel.get("targets") or []:
            found.append(
                PanelQuery(
                    path=path,
                    dashboard=dashboard["title"],
                    uid=dashboard["uid"],
                    panel=panel.get("title", ""),
                    panel_id=panel["id"],
                    ref_id=target.get("refId", ""),
                    datasource=(target.get("datasource") or {}).get("uid", panel_source),
                    expr=target["expr"],
                    instant=bool(target.get("instant")),
                    variables=variables,
                )
            )
    return found
