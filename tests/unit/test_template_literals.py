"""Names and ports that the derived model defines are read from it by the collection, never typed
again: the app's port, the exporters' ports, the shared stack's Compose project (and project
label) and the monitoring user. A literal copy would drift from the model (and from doctor,
status and the tests, which read the model) the day one of them changes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stagectl import collection
from stagectl.derived import ADMIN_USER, APP_PORT, EXPORTER_PORTS, SHARED_PROJECT

COLLECTION = collection.collection_root()
# The alert rules are static text (promtool tests them as they are, without a render): their
# shared `project` label is spelled out, and checked against the model below.
RULES = sorted(COLLECTION.glob("roles/shared_monitoring/templates/prometheus/rules/*.j2"))
FILES = sorted(
    path
    for pattern in ("roles/*/templates/**/*.j2", "roles/*/tasks/*.yml", "roles/*/vars/*.yml",
                    "roles/*/defaults/*.yml", "playbooks/*.yml")
    for path in COLLECTION.glob(pattern)
    if path not in RULES
)
PORTS = "|".join(str(port) for port in (APP_PORT, *EXPORTER_PORTS.values()))
LITERALS = {
    "a port of the model (ProjectView.app_port / exporter_ports)": re.compile(rf"(?<![\d.])(?:{PORTS})(?![\d.])"),
    "the shared Compose project (Derived.shared_project)": re.compile(
        rf"""(?:name|project|org\.stagectl\.project):\s*{SHARED_PROJECT}\b|project!?=\\?"{SHARED_PROJECT}"|'{SHARED_PROJECT}'"""
    ),
    "the monitoring user (Derived.admin_user)": re.compile(
        rf"""(?:username:|basicAuthUser:|admin_user\s*=|_user:)\s*["']?{ADMIN_USER}\b|^\s*{ADMIN_USER}:""", re.MULTILINE
    ),
}


def code_of(path: Path) -> str:
    """The file without its comments (YAML/shell/nginx `#` lines and Jinja `{# #}` blocks)."""
    text = re.sub(r"\{#.*?#\}", "", path.read_text(), flags=re.DOTALL)
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def test_the_collection_has_files_to_check() -> None:
    assert len(FILES) > 50
    assert any(path.name == "prometheus.yml.j2" for path in FILES)


@pytest.mark.parametrize("path", FILES, ids=[str(path.relative_to(COLLECTION)) for path in FILES])
def test_no_literal_copy_of_a_model_value(path: Path) -> None:
    code = code_of(path)
    found = [
        f"{what}: {match.group(0).strip()!r}"
        for what, pattern in LITERALS.items()
        for match in pattern.finditer(code)
    ]
    assert not found, f"{path.relative_to(COLLECTION)} writes out {found}: read it from the stagectl variable"


def test_the_rules_label_the_shared_stack_as_the_model_does() -> None:
    labels = {label for path in RULES for label in re.findall(r'project!?="([a-z0-9-]+)"', path.read_text())}
    assert labels == {SHARED_PROJECT}


def test_the_check_finds_a_literal(tmp_path: Path) -> None:
    template = tmp_path / "x.j2"
    template.write_text("# 8000 in a comment is fine\nproxy_pass http://app:8000;\nname: shared\nusername: admin\n")
    code = code_of(template)
    assert [bool(pattern.search(code)) for pattern in LITERALS.values()] == [True, True, True]
