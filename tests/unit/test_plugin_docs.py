"""Every plugin of the collection documents itself in YAML that `ansible-doc` can read: a colon
followed by a space inside a plain description line makes the whole block unreadable, and
ansible-doc then shows nothing for the plugin."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from stagectl import collection

PLUGINS = sorted((collection.collection_root() / "plugins").glob("*/*.py"))


def _documentation(path: Path) -> dict[str, str]:
    blocks = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
                    blocks[target.id] = str(node.value.value)
    return blocks


@pytest.mark.parametrize("path", PLUGINS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_plugin_documentation_is_yaml(path: Path) -> None:
    blocks = _documentation(path)
    assert "DOCUMENTATION" in blocks, f"{path.name} has no DOCUMENTATION"
    for name, text in blocks.items():
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            pytest.fail(f"{path.name}: {name} is not YAML: {exc}")
        assert parsed, f"{path.name}: {name} is empty"
