"""Every dashboard builds in its folder, with a deterministic UID, canonical JSON, a sane grid."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stagectl import dashboards
from stagectl.dashboards import SHARED_FOLDER, DashboardInputError, UnknownDashboard
from tests.dashboards.conftest import LONG_NAME

PROJECT_DASHBOARDS = ("application-performance", "database-performance", "infrastructure")
SHARED_DASHBOARDS = ("system-overview", "monitoring-health", "alert-summary")
UID_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
DATASOURCE_TYPES = {"prometheus": "prometheus", "loki": "loki"}


def _all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels") or [])
    return panels


def _datasource_refs(node: Any) -> list[dict[str, Any]]:
    """Every `datasource` object anywhere in the dashboard (panels, targets, variables)."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource" and isinstance(value, dict):
                found.append(value)
            else:
                found.extend(_datasource_refs(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_datasource_refs(item))
    return found


def test_example_gets_shared_and_per_project_dashboards(example_vars: dict[str, Any]) -> None:
    built = dashboards.build(example_vars)
    expected = [f"{SHARED_FOLDER}/{d}.json" for d in SHARED_DASHBOARDS] + [
        f"{project}/{d}.json" for project in ("beryl3", "project2") for d in PROJECT_DASHBOARDS
    ]
    assert list(built) == expected
    assert dashboards.dashboard_paths(example_vars) == expected


def test_titles_name_the_project_and_uids_are_deterministic(example_vars: dict[str, Any]) -> None:
    built = {path: json.loads(text) for path, text in dashboards.build(example_vars).items()}
    assert built["beryl3/application-performance.json"]["uid"] == "stagectl-beryl3-app"
    assert built["beryl3/database-performance.json"]["uid"] == "stagectl-beryl3-db"
    assert built["project2/infrastructure.json"]["uid"] == "stagectl-project2-infra"
    assert built["Shared/system-overview.json"]["uid"] == "stagectl-system-overview"
    for path, dashboard in built.items():
        folder = path.split("/")[0]
        if folder != SHARED_FOLDER:
            assert dashboard["title"].startswith(f"{folder}: "), path
            assert folder in dashboard["tags"], path


def test_uids_unique_short_and_valid(rich_vars: dict[str, Any]) -> None:
    uids = [json.loads(text)["uid"] for text in dashboards.build(rich_vars).values()]
    assert len(uids) == len(set(uids))
    for uid in uids:
        assert UID_RE.match(uid), uid
    long_uids = [
        u
        for u in uids
        if u.endswith(("-app", "-db", "-infra")) and "beryl3" not in u and "project2" not in u
    ]
    assert len(long_uids) == 3
    assert all(u.startswith("stagectl-a-very-long") and len(u) <= 40 for u in long_uids)


def test_long_names_sharing_a_prefix_get_different_uids() -> None:
    first = dashboards.dashboard_uid(LONG_NAME, "infra")
    second = dashboards.dashboard_uid(LONG_NAME[:-1] + "x", "infra")
    assert first != second
    assert len(first) <= 40 and len(second) <= 40
    assert dashboards.dashboard_uid(LONG_NAME, "infra") == first


def test_json_is_canonical(any_vars: dict[str, Any]) -> None:
    for path, text in dashboards.build(any_vars).items():
        assert text == json.dumps(json.loads(text), sort_keys=True, indent=2), path
        assert text.isascii() and not text.endswith("\n"), path


def test_second_build_is_byte_identical_even_in_another_process(
    rich_vars: dict[str, Any], tmp_path: Path
) -> None:
    first = dashboards.build(rich_vars)
    assert dashboards.build(rich_vars) == first
    # Another interpreter with another hash seed: catches output that depends on set order.
    vars_file = tmp_path / "stagectl.json"
    vars_file.write_text(json.dumps(rich_vars))
    script = (
        "import json, sys; from stagectl import dashboards; "
        "print(json.dumps(dashboards.build(json.load(open(sys.argv[1])))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(vars_file)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert json.loads(result.stdout) == first


def test_render_builds_one_dashboard_identical_to_build(example_vars: dict[str, Any]) -> None:
    built = dashboards.build(example_vars)
    for path in ("Shared/alert-summary.json", "project2/database-performance.json"):
        assert dashboards.render(example_vars, path) == built[path]


def test_unknown_path_names_the_known_ones(example_vars: dict[str, Any]) -> None:
    with pytest.raises(UnknownDashboard) as info:
        dashboards.render(example_vars, "beryl3/nope.json")
    assert "beryl3/application-performance.json" in str(info.value)


def test_incomplete_variable_says_which_key(example_vars: dict[str, Any]) -> None:
    broken = {**example_vars, "projects": [{"name": "x"}]}
    with pytest.raises(DashboardInputError, match=r"projects\[0\]\.containers"):
        dashboards.build(broken)


def test_panel_ids_and_ref_ids_are_stable_and_unique(any_vars: dict[str, Any]) -> None:
    for path, text in dashboards.build(any_vars).items():
        panels = _all_panels(json.loads(text))
        assert [p["id"] for p in panels] == list(range(1, len(panels) + 1)), path
        for panel in panels:
            ref_ids = [t["refId"] for t in panel.get("targets") or []]
            assert len(ref_ids) == len(set(ref_ids)) and all(ref_ids), (path, panel["title"])


def test_datasources_are_the_fixed_uids(any_vars: dict[str, Any]) -> None:
    for path, text in dashboards.build(any_vars).items():
        refs = _datasource_refs(json.loads(text))
        assert refs, path
        for ref in refs:
            assert ref.get("uid") in DATASOURCE_TYPES, (path, ref)
            assert ref.get("type") == DATASOURCE_TYPES[ref["uid"]], (path, ref)


def test_panels_fit_the_grid_without_overlap(any_vars: dict[str, Any]) -> None:
    for path, text in dashboards.build(any_vars).items():
        taken: set[tuple[int, int]] = set()
        for panel in json.loads(text)["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, (path, panel["title"])
            cells = {
                (x, y)
                for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])
            }
            assert not cells & taken, (path, panel["title"])
            taken |= cells


def test_every_panel_has_a_title_and_rows_group_them(any_vars: dict[str, Any]) -> None:
    for path, text in dashboards.build(any_vars).items():
        dashboard = json.loads(text)
        assert dashboard["panels"][0]["type"] == "row", path
        assert all(p.get("title") for p in _all_panels(dashboard)), path
        # Built with types for a current Grafana (the 10.1 build would say 36 or less).
        assert dashboard["schemaVersion"] >= 41, path


def test_expected_contents_are_there(example_vars: dict[str, Any]) -> None:
    built = {path: json.loads(text) for path, text in dashboards.build(example_vars).items()}

    def kinds(path: str) -> set[str]:
        return {p["type"] for p in _all_panels(built[path])}

    assert {"alertlist", "stat", "table"} <= kinds("Shared/alert-summary.json")
    assert {"logs", "timeseries", "stat"} <= kinds("beryl3/application-performance.json")
    titles = {p["title"] for p in _all_panels(built["Shared/monitoring-health.json"])}
    assert {"Prometheus", "Alertmanager", "Loki", "Grafana", "Alloy"} <= titles


def test_disabled_shared_service_gets_no_tile(example_vars: dict[str, Any]) -> None:
    shared = {
        **example_vars["shared"],
        "alloy": {**example_vars["shared"]["alloy"], "enabled": False},
    }
    text = dashboards.render({**example_vars, "shared": shared}, "Shared/monitoring-health.json")
    titles = {p["title"] for p in _all_panels(json.loads(text))}
    assert "Alloy" not in titles and "Loki" in titles


def test_worker_and_scheduler_logs_get_their_own_panels(rich_vars: dict[str, Any]) -> None:
    text = dashboards.render(rich_vars, f"{LONG_NAME}/application-performance.json")
    logs = [p for p in _all_panels(json.loads(text)) if p["type"] == "logs"]
    assert [p["title"] for p in logs] == ["Django logs", "Worker logs", "Scheduler logs"]
    plain = dashboards.render(rich_vars, "beryl3/application-performance.json")
    assert [p["title"] for p in _all_panels(json.loads(plain)) if p["type"] == "logs"] == [
        "Django logs"
    ]


def test_expected_container_count_follows_the_project(rich_vars: dict[str, Any]) -> None:
    def running(path: str) -> dict[str, Any]:
        panels = _all_panels(json.loads(dashboards.render(rich_vars, path)))
        return next(p for p in panels if p["title"] == "Containers running")

    plain = running("beryl3/infrastructure.json")
    busy = running(f"{LONG_NAME}/infrastructure.json")
    assert plain["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]["value"] == 7
    assert busy["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]["value"] == 9
    assert "beryl3-django" in plain["description"]
