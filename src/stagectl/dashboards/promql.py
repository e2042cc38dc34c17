"""Small helpers that write PromQL text, so label filters are never hand-typed per query.

Every per-project query goes through `selector()` with the project's matcher first: a query that
forgot the project filter would show another project's data, and the tests check for it.
"""

from __future__ import annotations

import json

# Grafana's own interval variables. `$__rate_interval` is at least four scrape intervals, so a
# rate() never looks at fewer than two samples whatever the zoom level.
RATE = "$__rate_interval"
INTERVAL = "$__interval"
RANGE = "$__range"

# Label the Prometheus configuration puts on every target (projects' exporters, Django, probes).
PROJECT_LABEL = "project"
# cAdvisor exports Docker labels as `container_label_<label with . and - turned into _>`; the
# compose files label every project container `org.stagectl.project=<name>`. We match on this
# label directly rather than on a relabelled `project`: cAdvisor is a shared target whose own
# `project` target label names the shared stack, not the container's project.
CADVISOR_PROJECT_LABEL = "container_label_org_stagectl_project"


def quote(value: str) -> str:
    """A PromQL/LogQL string literal (JSON escaping is a subset both languages accept)."""
    return json.dumps(value)


def eq(label: str, value: str) -> str:
    return f"{label}={quote(value)}"


def ne(label: str, value: str) -> str:
    return f"{label}!={quote(value)}"


def re(label: str, pattern: str) -> str:
    return f"{label}=~{quote(pattern)}"


def nre(label: str, pattern: str) -> str:
    return f"{label}!~{quote(pattern)}"


def selector(metric: str, *matchers: str) -> str:
    """`metric{m1,m2}`; the matchers come from eq/ne/re/nre."""
    return f"{metric}{{{','.join(matchers)}}}" if matchers else metric


def rate(metric: str, *matchers: str, window: str = RATE) -> str:
    return f"rate({selector(metric, *matchers)}[{window}])"


def increase(metric: str, *matchers: str, window: str = RATE) -> str:
    return f"increase({selector(metric, *matchers)}[{window}])"


def by(labels: str, expr: str, op: str = "sum") -> str:
    """`sum by (labels) (expr)`; labels is a comma-separated list."""
    return f"{op} by ({labels}) ({expr})"


def quantile(q: float, bucket_metric: str, *matchers: str, labels: str = "") -> str:
    """histogram_quantile over a classic histogram's buckets, aggregated by `le` (+ labels)."""
    group = f"le, {labels}" if labels else "le"
    return f"histogram_quantile({q}, {by(group, rate(bucket_metric, *matchers))})"


def ratio(numerator: str, denominator: str) -> str:
    return f"({numerator}) / ({denominator})"


def or_zero(expr: str) -> str:
    """Make "nothing matched" read 0 instead of "No data" (firing alerts, down targets)."""
    return f"({expr}) or vector(0)"
