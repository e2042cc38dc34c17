"""<project> / Database Performance: PostgreSQL (postgres_exporter) and Redis (redis_exporter)."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as model

from stagectl.dashboards.board import Board
from stagectl.dashboards.inputs import ProjectInfo
from stagectl.dashboards.panels import (
    ANY_IS_BAD,
    HIT_RATIO,
    USAGE,
    Query,
    Step,
    stat_panel,
    timeseries_panel,
    up_down_mapping,
)
from stagectl.dashboards.promql import (
    PROJECT_LABEL,
    RANGE,
    by,
    eq,
    increase,
    nre,
    quantile,
    rate,
    ratio,
    selector,
)

UP_STEPS = (Step(None, "red"), Step(1, "green"))
DJANGO_DB_LATENCY = "django_db_query_duration_seconds_bucket"


def _pg_rate(metric: str, p: str, db: str) -> str:
    """A pg_stat_database counter of the project's own database, as a per-second rate."""
    return f"sum({rate(metric, p, db)})"


def _cache_hit(p: str, db: str) -> str:
    hit = _pg_rate("pg_stat_database_blks_hit", p, db)
    read = _pg_rate("pg_stat_database_blks_read", p, db)
    return ratio(hit, f"{hit} + {read}")


def _redis_hit(p: str) -> str:
    hits = f"sum({rate('redis_keyspace_hits_total', p)})"
    misses = f"sum({rate('redis_keyspace_misses_total', p)})"
    return ratio(hits, f"{hits} + {misses}")


def _connections_used(p: str) -> str:
    # numbackends is per database; max_connections is for the whole server, so sum them all.
    return ratio(
        f"sum({selector('pg_stat_database_numbackends', p)})",
        f"max({selector('pg_settings_max_connections', p)})",
    )


def _postgres_overview(board: Board, p: str, db: str) -> None:
    board.row("PostgreSQL")
    board.add(
        stat_panel(
            "PostgreSQL",
            [Query(f"min({selector('pg_up', p)})", instant=True)],
            mappings=up_down_mapping(),
            thresholds=UP_STEPS,
            no_value="no exporter",
        ),
        stat_panel(
            "Connections used",
            [Query(_connections_used(p), instant=True)],
            unit="percentunit",
            thresholds=USAGE,
        ),
        stat_panel(
            "Database size",
            [Query(f"max({selector('pg_database_size_bytes', p, db)})", instant=True)],
            unit="bytes",
        ),
        stat_panel(
            "Cache hit ratio",
            [Query(_cache_hit(p, db), instant=True)],
            unit="percentunit",
            thresholds=HIT_RATIO,
            description="Share of block reads served from shared buffers.",
        ),
        stat_panel(
            "Deadlocks in range",
            [
                Query(
                    f"sum({increase('pg_stat_database_deadlocks', p, db, window=RANGE)})",
                    instant=True,
                )
            ],
            thresholds=ANY_IS_BAD,
            decimals=0,
        ),
        stat_panel(
            "Longest transaction",
            [Query(f"max({selector('pg_stat_activity_max_tx_duration', p, db)})", instant=True)],
            unit="s",
            thresholds=(Step(None, "green"), Step(60, "orange"), Step(300, "red")),
            description="Long transactions hold locks and stop vacuum.",
        ),
    )


def _postgres_activity(board: Board, p: str, db: str) -> None:
    board.row("PostgreSQL activity")
    board.add(
        timeseries_panel(
            "Connections vs max_connections",
            [
                Query(f"sum({selector('pg_stat_database_numbackends', p)})", "connections"),
                Query(f"max({selector('pg_settings_max_connections', p)})", "max_connections"),
            ],
        ),
        timeseries_panel(
            "Connections by state",
            [Query(by("state", selector("pg_stat_activity_count", p, db)), "{{state}}")],
            stacked=True,
        ),
        timeseries_panel(
            "Transactions",
            [
                Query(_pg_rate("pg_stat_database_xact_commit", p, db), "commits/s"),
                Query(_pg_rate("pg_stat_database_xact_rollback", p, db), "rollbacks/s"),
            ],
            unit="ops",
        ),
        timeseries_panel(
            "Deadlocks and conflicts",
            [
                Query(f"sum({increase('pg_stat_database_deadlocks', p, db)})", "deadlocks"),
                Query(f"sum({increase('pg_stat_database_conflicts', p, db)})", "conflicts"),
            ],
            bars=True,
            thresholds=ANY_IS_BAD,
        ),
        timeseries_panel(
            "Cache hit ratio",
            [Query(_cache_hit(p, db), "buffer cache hits")],
            unit="percentunit",
            max_value=1,
            thresholds=HIT_RATIO,
        ),
        timeseries_panel(
            "Tuples",
            [
                Query(_pg_rate(f"pg_stat_database_tup_{kind}", p, db), kind)
                for kind in ("fetched", "returned", "inserted", "updated", "deleted")
            ],
            unit="ops",
        ),
    )


def _queries_growth(board: Board, p: str, db: str) -> None:
    board.row("Queries and growth")
    board.add(
        timeseries_panel(
            "Query latency seen by Django",
            [
                Query(quantile(0.5, DJANGO_DB_LATENCY, p), "p50"),
                Query(quantile(0.95, DJANGO_DB_LATENCY, p), "p95"),
            ],
            unit="s",
            description="Statement time measured by django-prometheus' database wrapper "
            "(postgres_exporter has no per-query timing without pg_stat_statements).",
        ),
        timeseries_panel(
            "Queries and errors from Django",
            [
                Query(f"sum({rate('django_db_execute_total', p)})", "queries/s"),
                Query(by("type", rate("django_db_errors_total", p)), "errors/s {{type}}"),
            ],
            unit="ops",
        ),
        timeseries_panel(
            "Database size",
            [
                Query(
                    by(
                        "datname",
                        selector("pg_database_size_bytes", p, nre("datname", "template.*")),
                        "max",
                    ),
                    "{{datname}}",
                )
            ],
            unit="bytes",
            w=8,
        ),
        timeseries_panel(
            "Temporary files written",
            [Query(_pg_rate("pg_stat_database_temp_bytes", p, db), "temp bytes/s")],
            unit="Bps",
            w=8,
            description="Sorts and hashes that did not fit work_mem.",
        ),
        timeseries_panel(
            "Locks by mode",
            [Query(by("mode", selector("pg_locks_count", p, db)), "{{mode}}")],
            w=8,
        ),
    )


def _redis(board: Board, p: str) -> None:
    board.row("Redis")
    memory_used = f"max({selector('redis_memory_used_bytes', p)})"
    # maxmemory 0 means "no limit": drop it so the ratio is empty rather than infinite.
    memory_max = f"max({selector('redis_memory_max_bytes', p)} > 0)"
    board.add(
        stat_panel(
            "Redis",
            [Query(f"min({selector('redis_up', p)})", instant=True)],
            mappings=up_down_mapping(),
            thresholds=UP_STEPS,
            no_value="no exporter",
        ),
        stat_panel(
            "Memory used of maxmemory",
            [Query(ratio(memory_used, memory_max), instant=True)],
            unit="percentunit",
            thresholds=USAGE,
        ),
        stat_panel(
            "Connected clients",
            [Query(f"sum({selector('redis_connected_clients', p)})", instant=True)],
        ),
        stat_panel(
            "Hit ratio",
            [Query(_redis_hit(p), instant=True)],
            unit="percentunit",
            thresholds=HIT_RATIO,
        ),
        stat_panel("Keys", [Query(f"sum({selector('redis_db_keys', p)})", instant=True)]),
        stat_panel(
            "Evicted keys in range",
            [Query(f"sum({increase('redis_evicted_keys_total', p, window=RANGE)})", instant=True)],
            thresholds=ANY_IS_BAD,
            decimals=0,
            description="Keys dropped because maxmemory was reached.",
        ),
        timeseries_panel(
            "Memory used vs maxmemory",
            [Query(memory_used, "used"), Query(memory_max, "maxmemory")],
            unit="bytes",
        ),
        timeseries_panel(
            "Commands",
            [Query(f"sum({rate('redis_commands_processed_total', p)})", "ops/s")],
            unit="ops",
        ),
        timeseries_panel(
            "Hit ratio",
            [
                Query(_redis_hit(p), "Redis keyspace"),
                Query(
                    ratio(
                        f"sum({rate('django_cache_get_hits_total', p)})",
                        f"sum({rate('django_cache_get_total', p)})",
                    ),
                    "Django cache",
                ),
            ],
            unit="percentunit",
            max_value=1,
            thresholds=HIT_RATIO,
        ),
        timeseries_panel(
            "Clients",
            [
                Query(f"sum({selector('redis_connected_clients', p)})", "connected"),
                Query(f"sum({selector('redis_blocked_clients', p)})", "blocked"),
            ],
        ),
    )


def database_performance(
    *, uid: str, title: str, link_tag: str, project: ProjectInfo
) -> model.Dashboard:
    p = eq(PROJECT_LABEL, project.name)
    # pg_stat_database has a row for every database of the server (postgres, templates); the
    # per-database panels show the project's own.
    db = eq("datname", project.database)
    board = Board(
        uid=uid,
        title=title,
        description=f"{project.name}: PostgreSQL database {project.database} and Redis.",
        tags=["stagectl", project.name],
        link_tag=link_tag,
    )
    _postgres_overview(board, p, db)
    _postgres_activity(board, p, db)
    _queries_growth(board, p, db)
    _redis(board, p)
    return board.build()
