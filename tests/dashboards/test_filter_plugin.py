"""The collection's filters give templates exactly the JSON that stagectl.dashboards builds."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from stagectl import collection, dashboards

PLUGIN = collection.collection_root() / "plugins" / "filter" / "grafana_dashboards.py"


@pytest.fixture(scope="module")
def plugin() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grafana_dashboards_filter", PLUGIN)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_filters_return_what_the_package_builds(
    plugin: ModuleType, example_vars: dict[str, Any]
) -> None:
    filters = plugin.FilterModule().filters()
    paths = filters["grafana_dashboard_paths"](example_vars)
    assert paths == dashboards.dashboard_paths(example_vars)
    built = dashboards.build(example_vars)
    for path in paths:
        assert filters["grafana_dashboard"](example_vars, path) == built[path]


def test_filter_errors_are_ansible_errors(plugin: ModuleType, example_vars: dict[str, Any]) -> None:
    filters = plugin.FilterModule().filters()
    with pytest.raises(AnsibleFilterError, match="no dashboard 'x.json'.*Shared/system-overview"):
        filters["grafana_dashboard"](example_vars, "x.json")
    with pytest.raises(AnsibleFilterError, match="expects the `stagectl` variable"):
        filters["grafana_dashboard"]("not a mapping", "Shared/system-overview.json")


def test_documentation_is_valid_yaml(plugin: ModuleType) -> None:
    import yaml

    doc = yaml.safe_load(plugin.DOCUMENTATION)
    assert doc["name"] == "grafana_dashboard" and "path" in doc["options"]
    assert yaml.safe_load(plugin.EXAMPLES) and yaml.safe_load(plugin.RETURN)


def test_template_module_renders_the_exact_text(
    example_vars: dict[str, Any], tmp_path: Path
) -> None:
    """Through ansible-playbook and ansible.builtin.template, as the shared_monitoring role will:
    the file is the JSON text plus the template's own final newline, nothing else."""
    path = "beryl3/application-performance.json"
    (tmp_path / "dashboard.json.j2").write_text(
        f"{{{{ stagectl | stagectl.staging.grafana_dashboard('{path}') }}}}\n"
    )
    (tmp_path / "vars.json").write_text(json.dumps({"stagectl": example_vars}))
    (tmp_path / "play.yml").write_text(
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - ansible.builtin.template:\n"
        f"        src: {tmp_path}/dashboard.json.j2\n"
        f"        dest: {tmp_path}/out/dashboard.json\n"
        '        mode: "0644"\n'
        "    - ansible.builtin.copy:\n"
        f"        dest: {tmp_path}/out/paths.json\n"
        '        content: "{{ stagectl | stagectl.staging.grafana_dashboard_paths | to_json }}"\n'
        '        mode: "0644"\n'
    )
    (tmp_path / "out").mkdir()
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "-e",
            f"@{tmp_path / 'vars.json'}",
            str(tmp_path / "play.yml"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **collection.ansible_env()},
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rendered = (tmp_path / "out" / "dashboard.json").read_text()
    assert rendered == dashboards.render(example_vars, path) + "\n"
    paths = json.loads((tmp_path / "out" / "paths.json").read_text())
    assert paths == dashboards.dashboard_paths(example_vars)
