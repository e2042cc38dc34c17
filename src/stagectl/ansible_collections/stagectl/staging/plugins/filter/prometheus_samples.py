"""Filter: the samples of one metric in a Prometheus text exposition (a /metrics answer)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: prometheus_samples
short_description: The samples of one metric in a Prometheus /metrics answer
description:
  - Parses O(_input), the text a Prometheus exporter serves at C(/metrics), with the
    C(prometheus_client) parser and returns every sample named O(name) as a dict with C(labels)
    and C(value).
  - Name counters with their C(_total) suffix, as they appear in the text.
  - The same file provides C(stagectl.staging.prometheus_sum_by), which sums the samples of a
    metric by the value of one label and returns a dict; and, for Alertmanager's /metrics,
    C(stagectl.staging.notification_outcomes) (requests delivered and notifications failed per
    integration between two readings) and C(stagectl.staging.notifications_pending) (the
    integrations still waiting for an outcome).
positional: name
options:
  _input:
    description: The exposition text.
    type: str
    required: true
  name:
    description: The sample name, e.g. C(alertmanager_notifications_total).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Sum the webhook notifications Alertmanager sent
  ansible.builtin.debug:
    msg: >-
      {{ metrics.content | stagectl.staging.prometheus_samples('alertmanager_notifications_total')
         | selectattr('labels.integration', 'equalto', 'webhook')
         | map(attribute='value') | sum }}

- name: The same, for every integration at once
  ansible.builtin.debug:
    msg: >-
      {{ metrics.content
         | stagectl.staging.prometheus_sum_by('alertmanager_notifications_total', 'integration') }}
"""

RETURN = r"""
_value:
  description: "One dict per sample with keys C(labels) (a dict) and C(value) (a float), in exposition order."
  type: list
  elements: dict
"""

from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleFilterError


def prometheus_samples(text: str, name: str) -> list[dict[str, Any]]:
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError as exc:  # pragma: no cover - a dependency of stagectl
        raise AnsibleFilterError("prometheus_samples needs the prometheus_client package") from exc
    try:
        return [
            {"labels": dict(sample.labels), "value": float(sample.value)}
            for family in text_string_to_metric_families(str(text))
            for sample in family.samples
            if sample.name == name
        ]
    except ValueError as exc:
        raise AnsibleFilterError(f"not a Prometheus text exposition: {exc}") from exc


def prometheus_sum_by(text: str, name: str, label: str) -> dict[str, float]:
    """The samples named `name`, summed by the value of `label` ("" where it is missing)."""
    sums: dict[str, float] = {}
    for sample in prometheus_samples(text, name):
        key = sample["labels"].get(label, "")
        sums[key] = sums.get(key, 0.0) + sample["value"]
    return sums


def notification_outcomes(text: str, before: str) -> dict[str, dict[str, int]]:
    """What Alertmanager did per integration between two readings of its /metrics: `delivered`
    (requests that succeeded) and `failed` (notifications given up after every retry)."""

    def sums(exposition: str, name: str) -> dict[str, float]:
        return prometheus_sum_by(exposition, name, "integration")

    requests, failed_requests, failed = (
        {key: sums(text, name).get(key, 0.0) - sums(before, name).get(key, 0.0) for key in sums(text, name)}
        for name in (
            "alertmanager_notification_requests_total",
            "alertmanager_notification_requests_failed_total",
            "alertmanager_notifications_failed_total",
        )
    )
    return {
        key: {
            "delivered": int(requests[key] - failed_requests.get(key, 0.0)),
            "failed": int(failed.get(key, 0.0)),
        }
        for key in requests
    }


def notifications_pending(text: str, before: str, expected: dict[str, int]) -> list[str]:
    """The integrations of `expected` (integration -> number of configurations) for which
    Alertmanager has not yet delivered or given up on every configuration."""
    outcomes = notification_outcomes(text, before) if text else {}
    return sorted(
        key
        for key, count in expected.items()
        if sum(outcomes.get(key, {}).values()) < count
    )


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "prometheus_samples": prometheus_samples,
            "prometheus_sum_by": prometheus_sum_by,
            "notification_outcomes": notification_outcomes,
            "notifications_pending": notifications_pending,
        }
