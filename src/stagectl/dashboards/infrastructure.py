"""<project> / Infrastructure: the project's containers (cAdvisor) and its services' health."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as model

from stagectl.dashboards.board import Board
from stagectl.dashboards.inputs import ProjectInfo
from stagectl.dashboards.panels import (
    ANY_IS_BAD,
    ANY_IS_WARNING,
    USAGE,
    Query,
    Step,
    alert_list_panel,
    stat_panel,
    table_panel,
    timeseries_panel,
    up_down_mapping,
)
from stagectl.dashboards.promql import (
    CADVISOR_PROJECT_LABEL,
    PROJECT_LABEL,
    RATE,
    by,
    eq,
    increase,
    or_zero,
    rate,
    ratio,
    selector,
)

# A restart shows up as a new container_start_time_seconds value of the same container (docker
# restart keeps the id); a recreated container is a new series and is not counted.
RESTART_WINDOW = "1h"


def _health(board: Board, project: ProjectInfo, p: str, c: str) -> None:
    expected = len(project.containers)
    restarts = f"changes({selector('container_start_time_seconds', c)}[{RESTART_WINDOW}])"
    board.row("Health")
    board.add(
        stat_panel(
            "Containers running",
            [Query(f"count({selector('container_last_seen', c)})", instant=True)],
            thresholds=(Step(None, "red"), Step(expected, "green")),
            no_value="0",
            description=f"Expected {expected}: {', '.join(sorted(project.containers.values()))}.",
        ),
        stat_panel(
            "Scrape targets down",
            [Query(or_zero(f"count({selector('up', p)} == 0)"), instant=True)],
            thresholds=ANY_IS_BAD,
        ),
        stat_panel(
            "Firing alerts",
            [
                Query(
                    or_zero(f"count({selector('ALERTS', p, eq('alertstate', 'firing'))})"),
                    instant=True,
                )
            ],
            thresholds=ANY_IS_BAD,
        ),
        stat_panel(
            f"Restarts ({RESTART_WINDOW})",
            [
                Query(
                    or_zero(f"sum({restarts})"),
                    instant=True,
                )
            ],
            thresholds=ANY_IS_WARNING,
            decimals=0,
        ),
        stat_panel(
            "CPU",
            [Query(f"sum({rate('container_cpu_usage_seconds_total', c)})", instant=True)],
            unit="short",
            decimals=2,
            description="CPU cores used by all of the project's containers.",
        ),
        stat_panel(
            "Memory",
            [Query(f"sum({selector('container_memory_working_set_bytes', c)})", instant=True)],
            unit="bytes",
        ),
        stat_panel(
            "Services",
            [
                Query(by("service", selector("up", p), "min"), "{{service}}", instant=True),
                Query(f"min({selector('pg_up', p)})", "postgres", instant=True),
                Query(f"min({selector('redis_up', p)})", "redis", instant=True),
                Query(f"min({selector('nginx_up', p)})", "nginx", instant=True),
                Query(f"min({selector('probe_success', p)})", "public URL", instant=True),
            ],
            w=12,
            h=6,
            mappings=up_down_mapping(),
            thresholds=(Step(None, "red"), Step(1, "green")),
            description="Scrape targets by service, then what each exporter sees of its service.",
        ),
        alert_list_panel(
            "Alerts",
            label_filter=f"{{{p}}}",
            description=f"Alert rules with instances labelled {p}.",
            w=12,
            h=6,
        ),
    )


def _cpu_memory(board: Board, c: str) -> None:
    working_set = by("name", selector("container_memory_working_set_bytes", c), "max")
    # A limit of 0 means none: drop it so the ratio shows only limited containers.
    limit = by("name", f"{selector('container_spec_memory_limit_bytes', c)} > 0", "max")
    board.row("CPU and memory")
    board.add(
        timeseries_panel(
            "CPU by container",
            [Query(by("name", rate("container_cpu_usage_seconds_total", c)), "{{name}}")],
            unit="short",
            description="CPU cores.",
        ),
        timeseries_panel(
            "CPU throttling",
            [
                Query(
                    ratio(
                        by("name", rate("container_cpu_cfs_throttled_periods_total", c)),
                        by("name", rate("container_cpu_cfs_periods_total", c)),
                    ),
                    "{{name}}",
                )
            ],
            unit="percentunit",
            max_value=1,
            thresholds=USAGE,
            description="Share of scheduler periods in which a CPU-limited container was "
            "throttled.",
        ),
        timeseries_panel(
            "Memory working set by container",
            [Query(working_set, "{{name}}")],
            unit="bytes",
        ),
        timeseries_panel(
            "Memory used of limit",
            [Query(ratio(working_set, limit), "{{name}}")],
            unit="percentunit",
            max_value=1,
            thresholds=USAGE,
            description="The kernel kills the container (OOM) when the working set reaches "
            "the limit.",
        ),
        table_panel(
            "Containers",
            [
                Query(working_set, instant=True, table=True),
                Query(limit, instant=True, table=True),
                Query(
                    f"time() - {by('name', selector('container_start_time_seconds', c), 'max')}",
                    instant=True,
                    table=True,
                ),
                Query(
                    by(
                        "name",
                        f"changes({selector('container_start_time_seconds', c)}[{RESTART_WINDOW}])",
                    ),
                    instant=True,
                    table=True,
                ),
            ],
            merge=True,
            rename={
                "name": "container",
                "Value #A": "memory",
                "Value #B": "memory limit",
                "Value #C": "up for",
                "Value #D": f"restarts ({RESTART_WINDOW})",
            },
            column_units={"memory": "bytes", "memory limit": "bytes", "up for": "dtdurations"},
            h=9,
        ),
    )


def _events_io(board: Board, c: str) -> None:
    board.row("Restarts, OOM, network and disk")
    board.add(
        timeseries_panel(
            "Restarts",
            [
                Query(
                    by("name", f"changes({selector('container_start_time_seconds', c)}[{RATE}])"),
                    "{{name}}",
                )
            ],
            bars=True,
            thresholds=ANY_IS_WARNING,
        ),
        timeseries_panel(
            "OOM kills",
            [Query(by("name", increase("container_oom_events_total", c)), "{{name}}")],
            bars=True,
            thresholds=ANY_IS_BAD,
        ),
        timeseries_panel(
            "Network by container",
            [
                Query(
                    f"{by('name', rate('container_network_receive_bytes_total', c))} * 8",
                    "in {{name}}",
                ),
                Query(
                    f"{by('name', rate('container_network_transmit_bytes_total', c))} * 8",
                    "out {{name}}",
                ),
            ],
            unit="bps",
        ),
        timeseries_panel(
            "Disk I/O by container",
            [
                Query(by("name", rate("container_fs_reads_bytes_total", c)), "read {{name}}"),
                Query(by("name", rate("container_fs_writes_bytes_total", c)), "write {{name}}"),
            ],
            unit="Bps",
        ),
    )


def infrastructure(*, uid: str, title: str, link_tag: str, project: ProjectInfo) -> model.Dashboard:
    p = eq(PROJECT_LABEL, project.name)
    c = eq(CADVISOR_PROJECT_LABEL, project.name)
    board = Board(
        uid=uid,
        title=title,
        description=f"{project.name}: containers' CPU, memory and restarts, and the health of "
        "its services.",
        tags=["stagectl", project.name],
        link_tag=link_tag,
    )
    _health(board, project, p, c)
    _cpu_memory(board, c)
    _events_io(board, c)
    return board.build()
