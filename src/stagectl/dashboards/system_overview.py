"""Shared / System Overview: the host (node-exporter) and every container (cAdvisor) by project."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as model

from stagectl.dashboards.board import Board
from stagectl.dashboards.panels import (
    ANY_IS_BAD,
    USAGE,
    Query,
    Step,
    bar_gauge_panel,
    stat_panel,
    timeseries_panel,
)
from stagectl.dashboards.promql import (
    CADVISOR_PROJECT_LABEL,
    by,
    eq,
    increase,
    ne,
    nre,
    rate,
    selector,
)

IDLE = eq("mode", "idle")
CORES = f"count({selector('node_cpu_seconds_total', IDLE)})"
# Real filesystems only. node-exporter already skips overlay, proc, sysfs and Docker's own
# mounts; tmpfs and ramfs would add noise without ever filling the disk.
REAL_FS = (nre("fstype", "tmpfs|ramfs"),)
ROOT_FS = (eq("mountpoint", "/"), *REAL_FS)
# Physical and bridge-less interfaces: Docker's veth/bridge devices double-count container traffic.
HOST_NICS = nre("device", "lo|veth.*|docker.*|br-.*")
IN_A_PROJECT = ne(CADVISOR_PROJECT_LABEL, "")
NAMED = ne("name", "")
WORKING_SET = "container_memory_working_set_bytes"
NET_IN = "container_network_receive_bytes_total"
NET_OUT = "container_network_transmit_bytes_total"
PROJECT_LEGEND = f"{{{{{CADVISOR_PROJECT_LABEL}}}}}"


def _host(board: Board) -> None:
    board.row("Host")
    board.add(
        stat_panel(
            "CPU busy",
            [Query(f"1 - avg({rate('node_cpu_seconds_total', IDLE)})", instant=True)],
            unit="percentunit",
            thresholds=USAGE,
        ),
        stat_panel(
            "Memory used",
            [
                Query(
                    "1 - sum(node_memory_MemAvailable_bytes) / sum(node_memory_MemTotal_bytes)",
                    instant=True,
                )
            ],
            unit="percentunit",
            thresholds=USAGE,
        ),
        stat_panel(
            "Root filesystem used",
            [
                Query(
                    f"1 - max({selector('node_filesystem_avail_bytes', *ROOT_FS)}) / "
                    f"max({selector('node_filesystem_size_bytes', *ROOT_FS)})",
                    instant=True,
                )
            ],
            unit="percentunit",
            thresholds=USAGE,
        ),
        stat_panel(
            "Load (5m) per core",
            [Query(f"max(node_load5) / {CORES}", instant=True)],
            unit="short",
            decimals=2,
            thresholds=(Step(None, "green"), Step(1, "orange"), Step(2, "red")),
            description="Above 1 means runnable tasks wait for a CPU.",
        ),
        stat_panel(
            "Root free in 7 days (trend)",
            [
                Query(
                    f"min(predict_linear({selector('node_filesystem_avail_bytes', *ROOT_FS)}"
                    f"[6h], 7 * 86400))",
                    instant=True,
                )
            ],
            unit="bytes",
            thresholds=(Step(None, "red"), Step(5e9, "orange"), Step(20e9, "green")),
            description="Linear extrapolation of the last 6 hours: capacity planning, not a "
            "promise.",
        ),
        stat_panel(
            "Uptime",
            [Query("max(node_time_seconds - node_boot_time_seconds)", instant=True)],
            unit="s",
        ),
    )


def _cpu_memory(board: Board) -> None:
    board.row("CPU and memory")
    board.add(
        timeseries_panel(
            "CPU by mode",
            [
                Query(
                    f"{by('mode', rate('node_cpu_seconds_total', ne('mode', 'idle')))} "
                    f"/ scalar({CORES})",
                    "{{mode}}",
                )
            ],
            unit="percentunit",
            stacked=True,
            max_value=1,
        ),
        timeseries_panel(
            "Load average",
            [
                Query("max(node_load1)", "1m"),
                Query("max(node_load5)", "5m"),
                Query("max(node_load15)", "15m"),
                Query(CORES, "CPU cores"),
            ],
        ),
        timeseries_panel(
            "Memory",
            [
                Query(
                    "sum(node_memory_MemTotal_bytes) - sum(node_memory_MemAvailable_bytes)",
                    "used",
                ),
                Query("sum(node_memory_Cached_bytes) + sum(node_memory_Buffers_bytes)", "cache"),
                Query("sum(node_memory_MemAvailable_bytes)", "available"),
                Query("sum(node_memory_MemTotal_bytes)", "total"),
                Query(
                    "sum(node_memory_SwapTotal_bytes) - sum(node_memory_SwapFree_bytes)",
                    "swap used",
                ),
            ],
            unit="bytes",
        ),
        timeseries_panel(
            "OOM kills",
            [Query(f"sum({increase('node_vmstat_oom_kill')})", "processes killed")],
            bars=True,
            thresholds=ANY_IS_BAD,
            description="Processes the kernel killed for lack of memory (host or any container).",
        ),
    )


def _disk_network(board: Board) -> None:
    board.row("Disk and network")
    board.add(
        timeseries_panel(
            "Filesystem used",
            [
                Query(
                    f"1 - {selector('node_filesystem_avail_bytes', *REAL_FS)} "
                    f"/ {selector('node_filesystem_size_bytes', *REAL_FS)}",
                    "{{mountpoint}}",
                )
            ],
            unit="percentunit",
            max_value=1,
            thresholds=USAGE,
        ),
        timeseries_panel(
            "Disk I/O",
            [
                Query(by("device", rate("node_disk_read_bytes_total")), "read {{device}}"),
                Query(by("device", rate("node_disk_written_bytes_total")), "write {{device}}"),
            ],
            unit="Bps",
        ),
        timeseries_panel(
            "Network traffic",
            [
                Query(
                    f"{by('device', rate('node_network_receive_bytes_total', HOST_NICS))} * 8",
                    "in {{device}}",
                ),
                Query(
                    f"{by('device', rate('node_network_transmit_bytes_total', HOST_NICS))} * 8",
                    "out {{device}}",
                ),
            ],
            unit="bps",
        ),
        timeseries_panel(
            "Network errors and drops",
            [
                Query(
                    by("device", rate("node_network_receive_errs_total", HOST_NICS)),
                    "rx errors {{device}}",
                ),
                Query(
                    by("device", rate("node_network_transmit_errs_total", HOST_NICS)),
                    "tx errors {{device}}",
                ),
                Query(
                    by("device", rate("node_network_receive_drop_total", HOST_NICS)),
                    "rx drops {{device}}",
                ),
                Query(
                    by("device", rate("node_network_transmit_drop_total", HOST_NICS)),
                    "tx drops {{device}}",
                ),
            ],
            unit="pps",
        ),
    )


def _containers(board: Board) -> None:
    board.row("Containers by project")
    board.add(
        timeseries_panel(
            "Container CPU by project",
            [
                Query(
                    by(
                        CADVISOR_PROJECT_LABEL,
                        rate("container_cpu_usage_seconds_total", IN_A_PROJECT),
                    ),
                    PROJECT_LEGEND,
                )
            ],
            unit="short",
            stacked=True,
            description="CPU cores used by each project's containers.",
        ),
        timeseries_panel(
            "Container memory by project",
            [
                Query(
                    by(
                        CADVISOR_PROJECT_LABEL,
                        selector("container_memory_working_set_bytes", IN_A_PROJECT),
                    ),
                    PROJECT_LEGEND,
                )
            ],
            unit="bytes",
            stacked=True,
            description="Working set: the memory the kernel counts against a container's limit.",
        ),
        bar_gauge_panel(
            "Top 10 containers by CPU",
            [
                Query(
                    f"topk(10, {by('name', rate('container_cpu_usage_seconds_total', NAMED))})",
                    "{{name}}",
                    instant=True,
                )
            ],
            unit="short",
        ),
        bar_gauge_panel(
            "Top 10 containers by memory",
            [
                Query(
                    f"topk(10, {by('name', selector(WORKING_SET, NAMED), 'max')})",
                    "{{name}}",
                    instant=True,
                )
            ],
            unit="bytes",
        ),
        timeseries_panel(
            "Container network by project",
            [
                Query(
                    f"{by(CADVISOR_PROJECT_LABEL, rate(NET_IN, IN_A_PROJECT))} * 8",
                    f"in {PROJECT_LEGEND}",
                ),
                Query(
                    f"{by(CADVISOR_PROJECT_LABEL, rate(NET_OUT, IN_A_PROJECT))} * 8",
                    f"out {PROJECT_LEGEND}",
                ),
            ],
            unit="bps",
        ),
        timeseries_panel(
            "Running containers by project",
            [
                Query(
                    by(
                        CADVISOR_PROJECT_LABEL,
                        selector("container_last_seen", IN_A_PROJECT),
                        "count",
                    ),
                    PROJECT_LEGEND,
                )
            ],
            unit="short",
        ),
    )


def system_overview(*, uid: str, title: str, link_tag: str) -> model.Dashboard:
    board = Board(
        uid=uid,
        title=title,
        description="The server (node-exporter) and all containers (cAdvisor), by project.",
        tags=["stagectl", "shared"],
        link_tag=link_tag,
    )
    _host(board)
    _cpu_memory(board)
    _disk_network(board)
    _containers(board)
    return board.build()
