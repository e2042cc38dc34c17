"""A dashboard under construction: rows, panels, stable ids and the canonical JSON text."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

from stagectl.dashboards.panels import PanelBuilder

# Staging servers change slowly; one minute matches the scrape interval and keeps Grafana's
# load on Prometheus small.
REFRESH = "1m"
DEFAULT_RANGE = ("now-6h", "now")


class Board:
    """Collects rows and panels in reading order; `build()` numbers them 1..n."""

    def __init__(
        self,
        *,
        uid: str,
        title: str,
        description: str,
        tags: list[str],
        link_tag: str,
    ) -> None:
        self._builder = (
            dash.Dashboard(title)
            .uid(uid)
            .description(description)
            .tags(tags)
            .refresh(REFRESH)
            .time(*DEFAULT_RANGE)
            .timezone("browser")
            # Crosshair shared between panels: correlating a latency spike with CPU or a
            # restart is the main thing these dashboards are for.
            .tooltip(model.DashboardCursorSync.CROSSHAIR)
            # A drop-down of the sibling dashboards (same folder), found by tag at view time.
            .link(
                dash.DashboardLink("Related dashboards")
                .type(model.DashboardLinkType.DASHBOARDS)
                .tags([link_tag])
                .as_dropdown(True)
                .include_vars(False)
                .keep_time(True)
            )
        )

    def variable(self, variable: dash.QueryVariable) -> None:
        self._builder.with_variable(variable)

    def row(self, title: str) -> None:
        self._builder.with_row(dash.Row(title))

    def add(self, *panels: PanelBuilder) -> None:
        for panel in panels:
            self._builder.with_panel(panel)

    def build(self) -> model.Dashboard:
        dashboard = self._builder.build()
        # Ids in reading order (rows included) rather than whatever Grafana would assign on
        # import: links to a panel (?viewPanel=N) survive a re-render.
        for number, panel in enumerate(dashboard.panels or [], start=1):
            panel.id_val = number
        return dashboard


def encode(dashboard: model.Dashboard) -> str:
    """Canonical JSON: sorted keys, two-space indent, ASCII only, no trailing newline.

    The provisioning template adds the file's final newline, so the rendered file is this text
    plus "\\n". Sorting keys makes the text depend only on content, never on build order.
    """
    return JSONEncoder(sort_keys=True, indent=2, ensure_ascii=True).encode(dashboard)
