"""Prometheus' own parser agrees: every dashboard query, as a recording rule, passes promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from stagectl import dashboards

pytestmark = pytest.mark.validators


def test_promtool_accepts_every_promql_query(rich_vars: dict[str, Any], tmp_path: Path) -> None:
    assert shutil.which("promtool"), "promtool missing: run scripts/testbed-setup.sh validators"
    queries = [q for q in dashboards.panel_queries(rich_vars) if q.language == "promql"]
    rules = [
        {"record": f"stagectl:dashboard_query:{index}", "expr": query.concrete()}
        for index, query in enumerate(queries)
    ]
    rules_file = tmp_path / "dashboards.rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        ["promtool", "check", "rules", str(rules_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout + result.stderr
