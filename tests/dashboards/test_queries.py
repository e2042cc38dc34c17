"""Every panel query parses as PromQL (after Grafana's variables are substituted) and every
per-project query is confined to its project."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import promql_parser
import pytest

from stagectl import dashboards
from stagectl.collection import collection_root
from stagectl.dashboards import SHARED_FOLDER, PanelQuery, substitute
from stagectl.dashboards.promql import CADVISOR_PROJECT_LABEL, PROJECT_LABEL
from stagectl.dashboards.queries import UnknownVariable, variables_used

PROJECT_LABELS = {PROJECT_LABEL, CADVISOR_PROJECT_LABEL}
# A LogQL stream selector: {label="value", ...} at the start of a log query or inside a range.
STREAM_SELECTOR = re.compile(r"\{([^{}]*)\}")
PROJECT_TEMPLATES = collection_root() / "roles" / "project" / "templates"


def _promql(queries: list[PanelQuery]) -> list[PanelQuery]:
    return [q for q in queries if q.language == "promql"]


def _selectors(expr: promql_parser.Expr) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(expr, visit)
    return found


def _project_of(path: str) -> str | None:
    folder = path.split("/")[0]
    return None if folder == SHARED_FOLDER else folder


def test_listing_names_dashboard_and_panel(example_vars: dict[str, Any]) -> None:
    queries = dashboards.panel_queries(example_vars)
    assert queries and all(q.dashboard and q.panel and q.expr for q in queries)
    per_dashboard = Counter(q.path for q in queries)
    assert set(per_dashboard) == set(dashboards.dashboard_paths(example_vars))
    first = queries[0]
    assert first.path == "Shared/system-overview.json" and first.dashboard == "System Overview"
    assert {q.language for q in queries} == {"promql", "logql"}


def test_every_promql_query_parses(any_vars: dict[str, Any]) -> None:
    failures = []
    for query in _promql(dashboards.panel_queries(any_vars)):
        try:
            promql_parser.parse(query.concrete())
        except ValueError as exc:
            failures.append(f"{query.path} / {query.panel} / {query.ref_id}: {exc}\n  {query.expr}")
    assert not failures, "\n".join(failures)


def test_parser_does_reject_broken_promql() -> None:
    """Guards the test above: the parser type-checks, it does not only tokenise."""
    for broken in ("rate(up)", "sum(rate(up[5m])", "histogram_quantile(0.9, up[5m])"):
        with pytest.raises(ValueError):
            promql_parser.parse(broken)


def test_every_variable_a_query_uses_is_defined(any_vars: dict[str, Any]) -> None:
    for query in dashboards.panel_queries(any_vars):
        concrete = query.concrete()  # raises UnknownVariable otherwise
        assert "$" not in concrete and "[[" not in concrete, (query.path, query.panel)


def test_substitution() -> None:
    assert substitute("rate(x[$__rate_interval])", {}) == "rate(x[1m])"
    assert substitute('x{view=~"${view:regex}"}[$__range]', {"view": ".*"}) == 'x{view=~".*"}[1h]'
    assert variables_used("a[[b]] $c ${d} $__interval") == {"b", "c", "d", "__interval"}
    with pytest.raises(UnknownVariable):
        substitute('x{a=~"$nope"}', {})


def test_per_project_promql_is_confined_to_its_project(any_vars: dict[str, Any]) -> None:
    failures = []
    for query in _promql(dashboards.panel_queries(any_vars)):
        project = _project_of(query.path)
        if project is None:
            continue
        if f'project="{project}"' not in query.expr:
            failures.append(f'{query.path} / {query.panel}: no project="{project}"')
        for selector in _selectors(promql_parser.parse(query.concrete())):
            matchers = {
                (m.name, m.value)
                for m in selector.matchers.matchers
                if m.op == promql_parser.MatchOp.Equal
            }
            if not any((label, project) in matchers for label in PROJECT_LABELS):
                failures.append(f"{query.path} / {query.panel}: {selector} is not filtered")
    assert not failures, "\n".join(failures)


def test_per_project_log_queries_are_confined_to_their_project(any_vars: dict[str, Any]) -> None:
    logql = [q for q in dashboards.panel_queries(any_vars) if q.language == "logql"]
    assert logql
    for query in logql:
        project = _project_of(query.path)
        assert project is not None, query.path
        selectors = STREAM_SELECTOR.findall(query.expr)
        assert selectors, query.expr
        assert all(f'project="{project}"' in s for s in selectors), query.expr


def test_app_dashboard_has_the_django_log_panel(example_vars: dict[str, Any]) -> None:
    for project in ("beryl3", "project2"):
        logql = {
            q.expr
            for q in dashboards.panel_queries(example_vars)
            if q.path == f"{project}/application-performance.json" and q.language == "logql"
        }
        assert f'{{project="{project}", service="django"}}' in logql


def test_template_variable_queries_are_confined_too(any_vars: dict[str, Any]) -> None:
    for path, text in dashboards.build(any_vars).items():
        project = _project_of(path)
        for variable in json.loads(text).get("templating", {}).get("list", []):
            if project is not None and variable.get("type") == "query":
                assert f'project="{project}"' in variable["query"], (path, variable["name"])


def test_the_expected_metrics_are_queried(example_vars: dict[str, Any]) -> None:
    """The metric names the exporters' documentation gives, so a rename is noticed."""
    text = "\n".join(q.expr for q in dashboards.panel_queries(example_vars))
    for metric in (
        "django_http_requests_latency_seconds_by_view_method_bucket",
        "django_http_responses_total_by_status_total",
        "django_http_exceptions_total_by_type_total",
        "nginx_http_requests_total",
        "nginx_connections_active",
        "probe_success",
        "probe_duration_seconds",
        "pg_up",
        "pg_stat_database_numbackends",
        "pg_settings_max_connections",
        "pg_stat_database_xact_commit",
        "pg_stat_database_xact_rollback",
        "pg_stat_database_deadlocks",
        "pg_stat_database_blks_hit",
        "pg_stat_database_blks_read",
        "pg_database_size_bytes",
        "redis_up",
        "redis_memory_used_bytes",
        "redis_memory_max_bytes",
        "redis_connected_clients",
        "redis_keyspace_hits_total",
        "redis_commands_processed_total",
        "container_memory_working_set_bytes",
        "container_spec_memory_limit_bytes",
        "container_cpu_usage_seconds_total",
        "node_cpu_seconds_total",
        "node_load5",
        'ALERTS{alertstate="firing"}',
        "prometheus_rule_evaluation_failures_total",
        "alertmanager_notifications_failed_total",
        "prometheus_tsdb_head_series",
        "scrape_duration_seconds",
    ):
        assert metric in text, metric


def test_app_dashboard_counts_requests_from_the_project_nginx_access_log(example_vars: dict[str, Any]) -> None:
    """Traffic, errors and latency from the project nginx's JSON access log (apps without /metrics
    too); the fields read must be fields the log format writes, as numbers."""
    log_format = (PROJECT_TEMPLATES / "nginx.conf.j2").read_text()
    for project in ("beryl3", "project2"):
        logql = [
            q.expr
            for q in dashboards.panel_queries(example_vars)
            if q.path == f"{project}/application-performance.json" and q.language == "logql"
        ]
        nginx = f'{{project="{project}", service="nginx"}}'
        assert any(f"sum by (status) (rate({nginx} | json status" in e for e in logql), logql
        assert any("status >= 500" in e and " / " in e for e in logql), logql
        assert any(f"{nginx} | json request_time | unwrap request_time" in e for e in logql), logql
    for field in ("status", "request_time"):
        assert f'"{field}":${field},' in log_format, field
