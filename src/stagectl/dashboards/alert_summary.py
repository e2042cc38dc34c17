"""Shared / Alert Summary: what is firing now, how bad, and for which project."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as model

from stagectl.dashboards.board import Board
from stagectl.dashboards.panels import (
    ANY_IS_BAD,
    ANY_IS_WARNING,
    Query,
    Step,
    alert_list_panel,
    bar_gauge_panel,
    stat_panel,
    table_panel,
    timeseries_panel,
)
from stagectl.dashboards.promql import by, eq, or_zero, selector

FIRING = eq("alertstate", "firing")
PENDING = eq("alertstate", "pending")
# The severities the alert rules use; anything else still counts in "Firing alerts".
SEVERITIES = (("critical", ANY_IS_BAD), ("warning", ANY_IS_WARNING))


def _now(board: Board) -> None:
    board.row("Now")
    board.add(
        stat_panel(
            "Firing alerts",
            [Query(or_zero(f"count({selector('ALERTS', FIRING)})"), instant=True)],
            w=6,
            thresholds=ANY_IS_BAD,
        ),
        *(
            stat_panel(
                f"Firing: {severity}",
                [
                    Query(
                        or_zero(f"count({selector('ALERTS', FIRING, eq('severity', severity))})"),
                        instant=True,
                    )
                ],
                w=6,
                thresholds=steps,
            )
            for severity, steps in SEVERITIES
        ),
        stat_panel(
            "Pending alerts",
            [Query(or_zero(f"count({selector('ALERTS', PENDING)})"), instant=True)],
            w=6,
            thresholds=(Step(None, "green"), Step(1, "yellow")),
            description="Conditions already true but not yet for the rule's `for` duration.",
        ),
        bar_gauge_panel(
            "Firing by severity",
            [
                Query(
                    by("severity", selector("ALERTS", FIRING), "count"),
                    "{{severity}}",
                    instant=True,
                )
            ],
        ),
        bar_gauge_panel(
            "Firing by project",
            [
                Query(
                    by("project", selector("ALERTS", FIRING), "count"), "{{project}}", instant=True
                )
            ],
            description="Alerts without a project label (server, monitoring) show an empty name.",
        ),
    )


def _details(board: Board) -> None:
    board.row("Details")
    board.add(
        alert_list_panel(
            "Alert list",
            description="Firing, pending and erroring alert rules from Prometheus.",
            h=12,
        ),
        timeseries_panel(
            "Firing alerts over time",
            [Query(by("alertname", selector("ALERTS", FIRING), "count"), "{{alertname}}")],
            w=24,
            stacked=True,
            bars=True,
        ),
        table_panel(
            "Firing alert instances",
            [Query(selector("ALERTS", FIRING), instant=True, table=True)],
            hide_columns=("Time", "__name__", "alertstate", "Value"),
            h=10,
        ),
    )


def alert_summary(*, uid: str, title: str, link_tag: str) -> model.Dashboard:
    board = Board(
        uid=uid,
        title=title,
        description="Current alerts across all projects, by severity and project.",
        tags=["stagectl", "shared"],
        link_tag=link_tag,
    )
    _now(board)
    _details(board)
    return board.build()
