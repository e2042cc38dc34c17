"""Panel factories on top of grafana-foundation-sdk builders.

Each factory takes the few choices that differ between our panels (title, queries, unit,
thresholds, size) and fixes the rest, so every dashboard looks and behaves alike. Query refIds
are assigned here (A, B, ...) so they are stable; panel ids are assigned by `board.Board`.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

from grafana_foundation_sdk.builders import bargauge, logs, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders.common import (
    ReduceDataOptions,
    StackingConfig,
    VizLegendOptions,
    VizTooltipOptions,
)
from grafana_foundation_sdk.builders.loki import Dataquery as LokiQuery
from grafana_foundation_sdk.builders.prometheus import Dataquery as PrometheusQuery
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

# The provisioned data sources have fixed UIDs, so dashboards never depend on data source names.
PROMETHEUS_UID = "prometheus"
LOKI_UID = "loki"
PROMETHEUS = model.DataSourceRef(type_val="prometheus", uid=PROMETHEUS_UID)
LOKI = model.DataSourceRef(type_val="loki", uid=LOKI_UID)

PanelBuilder: TypeAlias = cogbuilder.Builder[model.Panel]


@dataclass(frozen=True)
class Query:
    """One PromQL query of a panel."""

    expr: str
    legend: str = ""
    instant: bool = False  # only the latest value (stat, bar gauge and table panels)
    table: bool = False  # Grafana's table format: one row per series, labels as columns


@dataclass(frozen=True)
class Step:
    """A threshold step: from `value` upwards the field is `color` (None is the base step)."""

    value: float | None
    color: str


# Common threshold sets. Ratios are 0..1 (unit percentunit).
GREEN = (Step(None, "green"),)
USAGE = (Step(None, "green"), Step(0.8, "orange"), Step(0.9, "red"))
ERROR_RATIO = (Step(None, "green"), Step(0.01, "orange"), Step(0.05, "red"))
ANY_IS_BAD = (Step(None, "green"), Step(1, "red"))
ANY_IS_WARNING = (Step(None, "green"), Step(1, "orange"))
HIT_RATIO = (Step(None, "red"), Step(0.8, "orange"), Step(0.95, "green"))


def _ref_id(index: int) -> str:
    return string.ascii_uppercase[index]


def _prometheus_targets(queries: Sequence[Query]) -> list[cogbuilder.Builder[Any]]:
    targets: list[cogbuilder.Builder[Any]] = []
    for index, query in enumerate(queries):
        target = (
            PrometheusQuery()
            .expr(query.expr)
            .ref_id(_ref_id(index))
            .datasource(PROMETHEUS)
            .legend_format(query.legend or "__auto")
        )
        target = target.instant() if query.instant else target.range()
        if query.table:
            target = target.format(PromQueryFormat.TABLE)
        targets.append(target)
    return targets


def _loki_targets(queries: Sequence[Query]) -> list[cogbuilder.Builder[Any]]:
    return [
        LokiQuery().expr(q.expr).ref_id(_ref_id(i)).datasource(LOKI).legend_format(q.legend or "__auto")
        for i, q in enumerate(queries)
    ]


def _thresholds(steps: Sequence[Step]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=s.value, color=s.color) for s in steps])
    )


# The SDK's panel builders share these setters without a common base class that declares them.
_AnyPanel = TypeVar(
    "_AnyPanel", timeseries.Panel, stat.Panel, bargauge.Panel, table.Panel, logs.Panel, dash.Panel
)


def _frame(panel: _AnyPanel, title: str, description: str, w: int, h: int) -> _AnyPanel:
    """Title, size and (only when there is one) description: empty descriptions add noise."""
    panel = panel.title(title).span(w).height(h)
    return panel.description(description) if description else panel


def up_down_mapping(up: str = "UP", down: str = "DOWN") -> list[model.ValueMapping]:
    """1/0 health values (up, pg_up, probe_success, ...) as words, green and red."""
    return [
        model.ValueMap(
            options={
                "0": model.ValueMappingResult(text=down, color="red", index=0),
                "1": model.ValueMappingResult(text=up, color="green", index=1),
            }
        )
    ]


def timeseries_panel(
    title: str,
    queries: Sequence[Query],
    *,
    unit: str = "short",
    description: str = "",
    w: int = 12,
    h: int = 8,
    stacked: bool = False,
    bars: bool = False,
    max_value: float | None = None,
    thresholds: Sequence[Step] = GREEN,
    logql: bool = False,
) -> timeseries.Panel:
    """PromQL queries drawn as lines; with `logql`, LogQL metric queries (numbers Loki computes
    from log lines)."""
    panel = (
        _frame(timeseries.Panel(), title, description, w, h)
        .datasource(LOKI if logql else PROMETHEUS)
        .targets(_loki_targets(queries) if logql else _prometheus_targets(queries))
        .unit(unit)
        .min(0)
        .thresholds(_thresholds(thresholds))
        .fill_opacity(20 if stacked else 10)
        .legend(
            VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        # Several series per panel: one tooltip listing all of them, largest first.
        .tooltip(
            VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    if max_value is not None:
        panel = panel.max(max_value)
    if stacked:
        panel = panel.stacking(StackingConfig().mode(common.StackingMode.NORMAL))
    if bars:
        panel = panel.draw_style(common.GraphDrawStyle.BARS)
    return panel


def stat_panel(
    title: str,
    queries: Sequence[Query],
    *,
    unit: str = "short",
    description: str = "",
    w: int = 4,
    h: int = 4,
    thresholds: Sequence[Step] = GREEN,
    mappings: list[model.ValueMapping] | None = None,
    no_value: str | None = None,
    decimals: int | None = None,
) -> stat.Panel:
    panel = (
        _frame(stat.Panel(), title, description, w, h)
        .datasource(PROMETHEUS)
        .targets(_prometheus_targets(queries))
        .unit(unit)
        .thresholds(_thresholds(thresholds))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.AUTO)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    if mappings:
        panel = panel.mappings(mappings)
    if no_value is not None:
        panel = panel.no_value(no_value)
    if decimals is not None:
        panel = panel.decimals(decimals)
    return panel


def bar_gauge_panel(
    title: str,
    queries: Sequence[Query],
    *,
    unit: str = "short",
    description: str = "",
    w: int = 12,
    h: int = 8,
    thresholds: Sequence[Step] = GREEN,
    max_value: float | None = None,
) -> bargauge.Panel:
    panel = (
        _frame(bargauge.Panel(), title, description, w, h)
        .datasource(PROMETHEUS)
        .targets(_prometheus_targets(queries))
        .unit(unit)
        .min(0)
        .thresholds(_thresholds(thresholds))
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    if max_value is not None:
        panel = panel.max(max_value)
    return panel


def table_panel(
    title: str,
    queries: Sequence[Query],
    *,
    description: str = "",
    w: int = 24,
    h: int = 8,
    hide_columns: Sequence[str] = ("Time",),
    rename: dict[str, str] | None = None,
    merge: bool = False,
    mappings: list[model.ValueMapping] | None = None,
    unit: str = "short",
    column_units: dict[str, str] | None = None,
) -> table.Panel:
    """A table of instant queries; `merge` joins several queries on their common labels.

    `column_units` is keyed by the column's final (renamed) name.
    """
    panel = (
        _frame(table.Panel(), title, description, w, h)
        .datasource(PROMETHEUS)
        .targets(_prometheus_targets(queries))
        .unit(unit)
    )
    if mappings:
        panel = panel.mappings(mappings)
    if merge:
        panel = panel.with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
    panel = panel.with_transformation(
        model.DataTransformerConfig(
            id_val="organize",
            options={
                "excludeByName": {column: True for column in hide_columns},
                "renameByName": dict(rename or {}),
            },
        )
    )
    for column, column_unit in (column_units or {}).items():
        panel = panel.override_by_name(
            column, [model.DynamicConfigValue(id_val="unit", value=column_unit)]
        )
    return panel


def logs_panel(
    title: str, expr: str, *, description: str = "", w: int = 24, h: int = 12
) -> logs.Panel:
    return (
        _frame(logs.Panel(), title, description, w, h)
        .datasource(LOKI)
        .with_target(LokiQuery().expr(expr).ref_id("A").datasource(LOKI).max_lines(500))
        .show_time(True)
        .wrap_log_message(True)
        .enable_log_details(True)
        .sort_order(common.LogsSortOrder.DESCENDING)
    )


def log_volume_panel(
    title: str, expr: str, legend: str, *, description: str = "", w: int = 24, h: int = 6
) -> timeseries.Panel:
    """A LogQL metric query (lines per interval) drawn as stacked bars."""
    return (
        _frame(timeseries.Panel(), title, description, w, h)
        .datasource(LOKI)
        .with_target(LokiQuery().expr(expr).ref_id("A").datasource(LOKI).legend_format(legend))
        .unit("short")
        .min(0)
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(60)
        .stacking(StackingConfig().mode(common.StackingMode.NORMAL))
    )


def alert_list_panel(
    title: str, *, label_filter: str = "", description: str = "", w: int = 24, h: int = 10
) -> dash.Panel:
    """Grafana's alert list (no SDK builder in this SDK line: a generic panel with its options).

    It reads the Prometheus rules through the data source (Grafana lists data-source-managed
    rules), so it shows the same alerts as Alertmanager without a second rule set.
    """
    options: dict[str, object] = {
        "viewMode": "list",
        "groupMode": "default",
        "groupBy": [],
        "maxItems": 50,
        "sortOrder": 3,  # by importance (severity, then state)
        "dashboardAlerts": False,
        "alertName": "",
        "alertInstanceLabelFilter": label_filter,
        "datasource": "",
        "showInstances": True,
        "stateFilter": {
            "firing": True,
            "pending": True,
            "noData": True,
            "normal": False,
            "error": True,
            "recovering": False,
        },
    }
    return _frame(dash.Panel().type("alertlist"), title, description, w, h).options(options)
