"""<project> / Application Performance: Django, the project nginx, the public probe and the logs.

The "Requests at the project nginx" row is computed by Loki from the project nginx's JSON access
log, so an app without a /metrics endpoint still shows its traffic, errors and latency."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.models import dashboard as model

from stagectl.dashboards.board import Board
from stagectl.dashboards.inputs import ProjectInfo
from stagectl.dashboards.panels import (
    ANY_IS_WARNING,
    ERROR_RATIO,
    PROMETHEUS,
    Query,
    Step,
    log_volume_panel,
    logs_panel,
    stat_panel,
    timeseries_panel,
    up_down_mapping,
)
from stagectl.dashboards.promql import (
    INTERVAL,
    PROJECT_LABEL,
    by,
    eq,
    or_zero,
    quantile,
    quote,
    rate,
    ratio,
    re,
    selector,
)

RESPONSES = "django_http_responses_total_by_status_total"
REQUESTS = "django_http_requests_total_by_view_transport_method_total"
LATENCY = "django_http_requests_latency_seconds_by_view_method_bucket"
EXCEPTIONS = "django_http_exceptions_total_by_type_total"
SERVER_ERRORS = re("status", "5..")
# The `view` variable narrows the per-view panels; "All" matches every view.
VIEW = re("view", "$view")


def _view_variable(project: str) -> dash.QueryVariable:
    return (
        dash.QueryVariable("view")
        .label("Django view")
        .datasource(PROMETHEUS)
        .query(f"label_values({selector(LATENCY, eq(PROJECT_LABEL, project))}, view)")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        # A multi-value variable's current selection is a list, even for "All".
        .current(model.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def _overview(board: Board, p: str) -> None:
    total = f"sum({rate(RESPONSES, p)})"
    # No 5xx at all is a ratio of 0, not "No data".
    errors = or_zero(f"sum({rate(RESPONSES, p, SERVER_ERRORS)})")
    board.row("Overview")
    board.add(
        stat_panel("Requests", [Query(total, instant=True)], unit="reqps"),
        stat_panel(
            "5xx ratio",
            [Query(ratio(errors, total), instant=True)],
            unit="percentunit",
            thresholds=ERROR_RATIO,
            no_value="0",
        ),
        stat_panel(
            "p95 latency",
            [Query(quantile(0.95, LATENCY, p), instant=True)],
            unit="s",
            thresholds=(Step(None, "green"), Step(0.5, "orange"), Step(1, "red")),
        ),
        stat_panel(
            "Site probe",
            [Query(f"min({selector('probe_success', p)})", instant=True)],
            mappings=up_down_mapping(),
            thresholds=(Step(None, "red"), Step(1, "green")),
            no_value="no probe",
            description="Blackbox exporter's HTTPS request to the project's domain.",
        ),
        stat_panel(
            "Certificate expires in",
            [Query(f"min({selector('probe_ssl_earliest_cert_expiry', p)}) - time()", instant=True)],
            unit="s",
            thresholds=(Step(None, "red"), Step(7 * 86400, "orange"), Step(14 * 86400, "green")),
        ),
        stat_panel(
            "Unapplied migrations",
            [Query(f"max({selector('django_migrations_unapplied_total', p)})", instant=True)],
            thresholds=ANY_IS_WARNING,
            description="Migrations the running code knows about but the database lacks.",
        ),
    )


def _django(board: Board, p: str) -> None:
    total = f"sum({rate(RESPONSES, p)})"
    # No 5xx at all is a ratio of 0, not "No data".
    errors = or_zero(f"sum({rate(RESPONSES, p, SERVER_ERRORS)})")
    board.row("Django")
    board.add(
        timeseries_panel(
            "Requests by method",
            [Query(by("method", rate(REQUESTS, p)), "{{method}}")],
            unit="reqps",
            stacked=True,
        ),
        timeseries_panel(
            "Responses by status",
            [Query(by("status", rate(RESPONSES, p)), "{{status}}")],
            unit="reqps",
            stacked=True,
        ),
        timeseries_panel(
            "Latency",
            [
                Query(quantile(0.5, LATENCY, p), "p50"),
                Query(quantile(0.95, LATENCY, p), "p95"),
                Query(quantile(0.99, LATENCY, p), "p99"),
            ],
            unit="s",
            description="From django-prometheus' histogram; views only (middleware excluded).",
        ),
        timeseries_panel(
            "5xx ratio",
            [Query(ratio(errors, total), "5xx / all")],
            unit="percentunit",
            thresholds=ERROR_RATIO,
        ),
        timeseries_panel(
            "p95 latency by view",
            [Query(f"topk(10, {quantile(0.95, LATENCY, p, VIEW, labels='view')})", "{{view}}")],
            unit="s",
            description="The ten slowest views of the selection at each point in time.",
        ),
        timeseries_panel(
            "Requests by view",
            [Query(f"topk(10, {by('view', rate(REQUESTS, p, VIEW))})", "{{view}}")],
            unit="reqps",
        ),
        timeseries_panel(
            "Exceptions by type",
            # on(): the 0 line only while no exception of any type was counted.
            [Query(f'{by("type", rate(EXCEPTIONS, p))} or on() vector(0)', "{{type}}")],
            unit="ops",
            bars=True,
        ),
        timeseries_panel(
            "Scrape targets",
            [Query(by("service", selector("up", p), "max"), "{{service}}")],
            max_value=1,
            description="1 when Prometheus reaches the target's /metrics.",
        ),
    )


def _nginx_probe(board: Board, p: str) -> None:
    board.row("nginx and availability")
    board.add(
        timeseries_panel(
            "nginx requests",
            [Query(f"sum({rate('nginx_http_requests_total', p)})", "requests/s")],
            unit="reqps",
            w=8,
        ),
        timeseries_panel(
            "nginx connections",
            [
                Query(f"sum({selector('nginx_connections_active', p)})", "active"),
                Query(f"sum({selector('nginx_connections_reading', p)})", "reading"),
                Query(f"sum({selector('nginx_connections_writing', p)})", "writing"),
                Query(f"sum({selector('nginx_connections_waiting', p)})", "waiting"),
            ],
            w=8,
        ),
        timeseries_panel(
            "nginx dropped connections",
            [
                Query(
                    f"sum({rate('nginx_connections_accepted', p)}) - "
                    f"sum({rate('nginx_connections_handled', p)})",
                    "dropped/s",
                )
            ],
            w=8,
            description="Accepted but not handled: worker_connections is too small.",
        ),
        timeseries_panel(
            "Probe success",
            [Query(selector("probe_success", p), "{{instance}}")],
            max_value=1,
            w=8,
        ),
        timeseries_panel(
            "Probe duration",
            [Query(selector("probe_duration_seconds", p), "{{instance}}")],
            unit="s",
            w=8,
        ),
        timeseries_panel(
            "Probe HTTP status",
            [Query(selector("probe_http_status_code", p), "{{instance}}")],
            w=8,
        ),
    )


def _nginx_access_log(board: Board, project: ProjectInfo) -> None:
    stream = f"{{project={quote(project.name)}, service=\"nginx\"}}"

    def rate_of(pipeline: str) -> str:
        return f"rate({stream} | json {pipeline} | __error__=\"\" [{INTERVAL}])"

    total = f"sum({rate_of('status')})"
    errors = f"sum({rate_of('status | status >= 500')})"
    board.row("Requests at the project nginx (access log)")
    board.add(
        timeseries_panel(
            "Responses by status",
            [Query(f"sum by (status) ({rate_of('status')})", "{{status}}")],
            unit="reqps",
            w=8,
            logql=True,
            description="Every request the project nginx answered (static and media files too), "
            "counted from its access log by Loki: there with or without the app's own metrics.",
        ),
        timeseries_panel(
            "5xx ratio",
            [Query(f"({errors} or vector(0)) / {total}", "5xx / all")],
            unit="percentunit",
            thresholds=ERROR_RATIO,
            w=8,
            logql=True,
        ),
        timeseries_panel(
            "Response time",
            [
                Query(f"quantile_over_time({q}, {stream} | json request_time | unwrap request_time "
                      f"| __error__=\"\" [{INTERVAL}]) by (service)", f"p{round(q * 100)}")
                for q in (0.5, 0.95, 0.99)
            ],
            unit="s",
            w=8,
            logql=True,
            description="nginx's $request_time: from the request's first byte to the response's last.",
        ),
    )


def _logs(board: Board, project: ProjectInfo) -> None:
    board.row("Logs")
    name = quote(project.name)
    board.add(
        log_volume_panel(
            "Log lines by service",
            f"sum by (service) (count_over_time({{project={name}}}[{INTERVAL}]))",
            "{{service}}",
        )
    )
    for service in project.app_log_services:
        board.add(
            logs_panel(
                f"{service.capitalize()} logs",
                f"{{project={name}, service={quote(service)}}}",
                description=f"The {service} container's output, newest first (Loki).",
            )
        )


def application_performance(
    *, uid: str, title: str, link_tag: str, project: ProjectInfo
) -> model.Dashboard:
    p = eq(PROJECT_LABEL, project.name)
    board = Board(
        uid=uid,
        title=title,
        description=f"{project.name} ({project.domain}): throughput, errors, latency, nginx, "
        "availability and logs.",
        tags=["stagectl", project.name],
        link_tag=link_tag,
    )
    board.variable(_view_variable(project.name))
    _overview(board, p)
    _django(board, p)
    _nginx_probe(board, p)
    _nginx_access_log(board, project)
    _logs(board, project)
    return board.build()
