"""Shared / Monitoring Health: is the monitoring itself working (who watches the watchers)."""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.models import dashboard as model

from stagectl.dashboards.board import Board
from stagectl.dashboards.inputs import SCRAPED_SHARED_SERVICES, service_label
from stagectl.dashboards.panels import (
    ANY_IS_BAD,
    Query,
    Step,
    stat_panel,
    table_panel,
    timeseries_panel,
    up_down_mapping,
)
from stagectl.dashboards.promql import by, eq, increase, or_zero, quantile, rate, re, selector

# Grafana's stat panel shows this when a component has no `up` series at all: the target is
# missing from the Prometheus configuration, which is as bad as being down.
NOT_SCRAPED = "not scraped"
# Loki's push endpoints (HTTP API and the Prometheus-style one Alloy may use).
LOKI_PUSH = re("route", "loki_api_v1_push|api_prom_push")


def _components(board: Board, services: Sequence[str]) -> None:
    board.row("Components")
    # Eight stats fit a 24-column row at width 3; fewer services get wider tiles.
    width = max(3, 24 // max(1, len(services)))
    board.add(
        *(
            stat_panel(
                SCRAPED_SHARED_SERVICES[service],
                [Query(f"max({selector('up', eq('service', service_label(service)))})", instant=True)],
                w=width,
                mappings=up_down_mapping(),
                no_value=NOT_SCRAPED,
                thresholds=(Step(None, "red"), Step(1, "green")),
                description=f'Scrape of the `{service_label(service)}` target '
                f'(label service="{service_label(service)}").',
            )
            for service in services
        )
    )
    board.add(
        stat_panel(
            "Targets down",
            [Query(or_zero("count(up == 0)"), instant=True)],
            w=4,
            h=8,
            thresholds=ANY_IS_BAD,
        ),
        stat_panel(
            "Config reloads failing",
            [
                Query(
                    # `or` joins the two (different metric names), so one failing is enough.
                    or_zero(
                        "count(prometheus_config_last_reload_successful == 0 "
                        "or alertmanager_config_last_reload_successful == 0)"
                    ),
                    instant=True,
                )
            ],
            w=4,
            h=8,
            thresholds=ANY_IS_BAD,
            description="Prometheus or Alertmanager kept its previous configuration after a "
            "reload.",
        ),
        table_panel(
            "Scrape targets",
            [Query("up", instant=True, table=True)],
            w=16,
            h=8,
            hide_columns=("Time", "__name__"),
            rename={"Value": "up"},
            mappings=up_down_mapping(),
        ),
    )


def _scrapes(board: Board) -> None:
    board.row("Scrapes")
    board.add(
        timeseries_panel(
            "Scrape duration by target",
            [
                Query(
                    by("project, service", "scrape_duration_seconds", "max"),
                    "{{project}}/{{service}}",
                )
            ],
            unit="s",
        ),
        timeseries_panel(
            "Samples scraped by target",
            [Query(by("project, service", "scrape_samples_scraped"), "{{project}}/{{service}}")],
        ),
    )


def _tsdb(board: Board) -> None:
    board.row("Prometheus TSDB")
    board.add(
        timeseries_panel("Head series", [Query("sum(prometheus_tsdb_head_series)", "series")], w=8),
        timeseries_panel(
            "Samples appended",
            [Query(f"sum({rate('prometheus_tsdb_head_samples_appended_total')})", "samples/s")],
            unit="ops",
            w=8,
        ),
        timeseries_panel(
            "Storage size",
            [
                Query("sum(prometheus_tsdb_storage_blocks_bytes)", "blocks"),
                Query("sum(prometheus_tsdb_wal_storage_size_bytes)", "WAL"),
            ],
            unit="bytes",
            w=8,
        ),
        timeseries_panel(
            "TSDB failures",
            [
                Query(
                    f"sum({increase('prometheus_tsdb_compactions_failed_total')})",
                    "compactions failed",
                ),
                Query(
                    f"sum({increase('prometheus_tsdb_head_truncations_failed_total')})",
                    "head truncations failed",
                ),
                Query(
                    f"sum({increase('prometheus_tsdb_wal_corruptions_total')})", "WAL corruptions"
                ),
                Query(
                    f"sum({increase('prometheus_tsdb_reloads_failures_total')})",
                    "block reloads failed",
                ),
            ],
            bars=True,
            thresholds=ANY_IS_BAD,
        ),
        timeseries_panel(
            "Ingestion out of bounds",
            [
                Query(
                    f"sum({rate('prometheus_target_scrapes_sample_out_of_order_total')})",
                    "out of order",
                ),
                Query(
                    f"sum({rate('prometheus_target_scrapes_sample_duplicate_timestamp_total')})",
                    "duplicate timestamp",
                ),
                Query(
                    f"sum({rate('prometheus_target_scrapes_exceeded_sample_limit_total')})",
                    "sample limit exceeded",
                ),
            ],
            unit="ops",
            description="Samples Prometheus refused while scraping: a misbehaving exporter.",
        ),
    )


def _rules_notifications(board: Board) -> None:
    board.row("Rules and notifications")
    board.add(
        timeseries_panel(
            "Rule evaluation failures",
            [
                Query(
                    by("rule_group", increase("prometheus_rule_evaluation_failures_total")),
                    "{{rule_group}}",
                )
            ],
            bars=True,
            w=8,
            thresholds=ANY_IS_BAD,
        ),
        timeseries_panel(
            "Rule group evaluation time",
            [
                Query(
                    by("rule_group", "prometheus_rule_group_last_duration_seconds", "max"),
                    "{{rule_group}}",
                )
            ],
            unit="s",
            w=8,
        ),
        timeseries_panel(
            "Prometheus → Alertmanager",
            [
                Query(f"sum({rate('prometheus_notifications_sent_total')})", "sent/s"),
                Query(f"sum({rate('prometheus_notifications_errors_total')})", "errors/s"),
                Query(f"sum({rate('prometheus_notifications_dropped_total')})", "dropped/s"),
                Query("sum(prometheus_notifications_queue_length)", "queued"),
            ],
            w=8,
        ),
        timeseries_panel(
            "Alertmanager notifications by integration",
            [
                Query(
                    by("integration", rate("alertmanager_notifications_total")),
                    "sent {{integration}}",
                ),
                Query(
                    by("integration", rate("alertmanager_notifications_failed_total")),
                    "failed {{integration}}",
                ),
            ],
            unit="ops",
            description="A failed notification means an alert fired and nobody was told.",
        ),
        timeseries_panel(
            "Alertmanager alerts",
            [Query(by("state", "alertmanager_alerts"), "{{state}}")],
        ),
    )


def _logs_pipeline(board: Board) -> None:
    board.row("Logs pipeline and Grafana")
    board.add(
        timeseries_panel(
            "Loki lines received",
            [Query(f"sum({rate('loki_distributor_lines_received_total')})", "lines/s")],
            unit="ops",
            w=8,
        ),
        timeseries_panel(
            "Loki discarded samples",
            [Query(by("reason", rate("loki_discarded_samples_total")), "{{reason}}")],
            unit="ops",
            w=8,
            thresholds=ANY_IS_BAD,
            description="Lines Loki refused (rate limits, too old, too long): they are lost.",
        ),
        timeseries_panel(
            "Alloy → Loki",
            [
                Query(f"sum({rate('loki_write_sent_entries_total')})", "sent/s"),
                Query(f"sum({rate('loki_write_dropped_entries_total')})", "dropped/s"),
            ],
            unit="ops",
            w=8,
        ),
        timeseries_panel(
            "Loki push latency",
            [
                Query(quantile(0.5, "loki_request_duration_seconds_bucket", LOKI_PUSH), "p50"),
                Query(quantile(0.95, "loki_request_duration_seconds_bucket", LOKI_PUSH), "p95"),
            ],
            unit="s",
            w=8,
        ),
        timeseries_panel(
            "Grafana HTTP requests by status",
            [
                Query(
                    by("status_code", rate("grafana_http_request_duration_seconds_count")),
                    "{{status_code}}",
                )
            ],
            unit="reqps",
            w=8,
        ),
        timeseries_panel(
            "Memory of the monitoring services",
            [
                Query(
                    by(
                        "service",
                        selector(
                            "process_resident_memory_bytes",
                            re("service", "prometheus|alertmanager|loki|grafana|alloy"),
                        ),
                        "max",
                    ),
                    "{{service}}",
                )
            ],
            unit="bytes",
            w=8,
        ),
    )


def monitoring_health(
    *, uid: str, title: str, link_tag: str, services: Sequence[str]
) -> model.Dashboard:
    board = Board(
        uid=uid,
        title=title,
        description="Prometheus, Alertmanager, Loki, Grafana and Alloy: up, scraping, storing, "
        "notifying.",
        tags=["stagectl", "shared"],
        link_tag=link_tag,
    )
    _components(board, services)
    _scrapes(board)
    _tsdb(board)
    _rules_notifications(board)
    _logs_pipeline(board)
    return board.build()
