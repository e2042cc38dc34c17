"""The alert catalogue (role shared_monitoring, prometheus/rules/*.yml.j2), unit-tested with
`promtool test rules`.

The rule templates are static YAML inside {% raw %}: Jinja renders them here in milliseconds,
without the ansible-playbook run of the render tier (tests/render checks the real render with
`promtool check rules`). The rule files come from the role's manifest (vars/main.yml), so a rule
file added there is picked up here.

Beside this module, one promtool test file per rule file (<group>.test.yml) holds hand-written
cases, and idle.test.yml an idle staging server, to which every alert name of the rendered rules
is added as a "must not fire" case. The tests below run promtool on each file and check that the
files cover the catalogue: every alert, at each of its severities, has a case where it fires and
a case where it does not; docs/alerts.md lists exactly the rules.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from stagectl import collection
from stagectl.errors import ToolMissing
from stagectl.validators.base import require_tool, run
from stagectl.validators.prometheus import PROMTOOL_PACKAGE
from tests.conftest import missing_tool

HERE = Path(__file__).parent
ROLE = collection.collection_root() / "roles" / "shared_monitoring"
DOCS = HERE.parent.parent / "docs" / "alerts.md"
TEST_FILES = sorted(HERE.glob("*.test.yml"))
IDLE = "idle.test.yml"
IDLE_EVAL_TIMES = ("1h", "3h", "6h")
ALWAYS_FIRING = {"Watchdog"}  # the dead man's switch: no case where it does not fire
SEVERITIES = {"critical", "warning"}
SUMMARY_PREFIX = "[{{ $labels.project }}] "


# --- the rules ---------------------------------------------------------------------------------


def rule_templates() -> dict[str, Path]:
    """File name on the server (database.yml, ...) -> template, from the role's manifest."""
    manifest = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["shared_monitoring_static_files"]
    return {
        entry["dest"].rsplit("/", 1)[1]: ROLE / "templates" / entry["src"]
        for entry in manifest
        if entry["kind"] == "prometheus_rules"
    }


def render_rules() -> dict[str, str]:
    """File name -> rendered text. The templates use no variable: any would fail the render."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, keep_trailing_newline=True)
    return {name: env.from_string(path.read_text()).render() for name, path in rule_templates().items()}


RENDERED = render_rules()


def rules_of(name: str) -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RENDERED[name])["groups"] for rule in group["rules"]]


def all_rules() -> list[tuple[str, dict[str, Any]]]:
    """(rule file name, rule) for every alerting rule."""
    return [(name, rule) for name in sorted(RENDERED) for rule in rules_of(name)]


def alert_severities(rules: list[dict[str, Any]]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for rule in rules:
        found[rule["alert"]].add(rule["labels"]["severity"])
    return found


# --- the test files ----------------------------------------------------------------------------


def load_test_file(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def rule_files_of(test: dict[str, Any]) -> list[str]:
    """The rendered rule files a promtool test file loads (`rules/<name>` or `rules/*.yml`)."""
    names: list[str] = []
    for pattern in test["rule_files"]:
        assert pattern.startswith("rules/"), pattern
        names += [name for name in sorted(RENDERED) if Path(name).match(pattern.removeprefix("rules/"))]
    return names


def idle_entries() -> list[dict[str, Any]]:
    """One `exp_alerts: []` case per alert name of the rendered rules (but the always firing) and
    evaluation time: a rule added later is checked against the idle server automatically."""
    names = sorted({rule["alert"] for _, rule in all_rules()} - ALWAYS_FIRING)
    return [{"alertname": name, "eval_time": at, "exp_alerts": []} for at in IDLE_EVAL_TIMES for name in names]


def with_generated(path: Path) -> str:
    """The test file as promtool gets it: the idle one with the generated cases appended."""
    if path.name != IDLE:
        return path.read_text()
    test = load_test_file(path)
    assert rule_files_of(test) == sorted(RENDERED), "the idle server must be evaluated with every rule file"
    [scenario] = test["tests"]
    scenario.setdefault("alert_rule_test", []).extend(idle_entries())
    return yaml.safe_dump(test, sort_keys=False, width=1000)


def alert_cases(path: Path) -> list[dict[str, Any]]:
    """The hand-written alert_rule_test entries of a test file."""
    return [case for test in load_test_file(path)["tests"] for case in test.get("alert_rule_test") or []]


# --- promtool ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def promtool() -> str:
    try:
        return require_tool("promtool", PROMTOOL_PACKAGE)
    except ToolMissing as exc:
        missing_tool(f"promtool is not installed ({exc.hint}); scripts/testbed-setup.sh validators installs it")


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the rendered rules in rules/, where the test files are copied to run."""
    base = tmp_path_factory.mktemp("alert_rules")
    (base / "rules").mkdir()
    for name, text in RENDERED.items():
        (base / "rules" / name).write_text(text)
    return base


@pytest.mark.validators
@pytest.mark.parametrize("name", sorted(RENDERED))
def test_promtool_checks_the_rule_file(name: str, rules_dir: Path, promtool: str) -> None:
    result = run([promtool, "check", "rules", f"rules/{name}"], cwd=rules_dir)
    assert result.returncode == 0, result.output


@pytest.mark.validators
@pytest.mark.parametrize("path", TEST_FILES, ids=[p.name for p in TEST_FILES])
def test_promtool_unit_tests_pass(path: Path, rules_dir: Path, promtool: str, tmp_path: Path) -> None:
    # Each file in a directory of its own, beside a link to the rendered rules: the files run
    # side by side under xdist.
    (tmp_path / "rules").symlink_to(rules_dir / "rules", target_is_directory=True)
    (tmp_path / path.name).write_text(with_generated(path))
    result = run([promtool, "test", "rules", path.name], cwd=tmp_path)
    assert result.returncode == 0, f"promtool test rules {path.name}:\n{result.output}"
    assert "SUCCESS" in result.output, result.output


# --- the catalogue -----------------------------------------------------------------------------


RULE_IDS = [f"{file}:{rule['alert']}:{rule['labels']['severity']}" for file, rule in all_rules()]


@pytest.mark.parametrize(("file", "rule"), all_rules(), ids=RULE_IDS)
def test_every_rule_is_complete(file: str, rule: dict[str, Any]) -> None:
    assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
    assert re.fullmatch(r"\d+[smhd]", rule["for"]), rule["for"]
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description"}, annotations
    assert annotations["description"].strip()
    if rule["alert"] in ALWAYS_FIRING:
        assert rule["labels"] == {"severity": "none", "project": "shared"}
        assert annotations["summary"].startswith("[shared] ")
    else:
        # `project` comes from the series: the expression must keep it (a project label set on
        # the rule would hide a missing one).
        assert rule["labels"].keys() == {"severity"}, rule["labels"]
        assert rule["labels"]["severity"] in SEVERITIES, rule["labels"]
        assert annotations["summary"].startswith(SUMMARY_PREFIX), annotations["summary"]


def test_alert_names_are_unique_per_severity() -> None:
    seen = [(rule["alert"], rule["labels"]["severity"]) for _, rule in all_rules()]
    assert len(seen) == len(set(seen)), sorted(s for s in seen if seen.count(s) > 1)


def test_each_rule_file_has_its_test_file() -> None:
    expected = {f"{Path(name).stem}.test.yml" for name in RENDERED} | {IDLE}
    assert {p.name for p in TEST_FILES} == expected
    for name in RENDERED:
        assert rule_files_of(load_test_file(HERE / f"{Path(name).stem}.test.yml")) == [name]


@pytest.mark.parametrize("path", TEST_FILES, ids=[p.name for p in TEST_FILES])
def test_test_files_name_only_alerts_of_their_rules(path: Path) -> None:
    """promtool passes an alert_rule_test of an alert that does not exist: a typo would make a
    "must not fire" case pass forever."""
    test = load_test_file(path)
    known = alert_severities([rule for name in rule_files_of(test) for rule in rules_of(name)])
    for case in alert_cases(path):
        assert case["alertname"] in known, f"{path.name}: no rule {case['alertname']!r}"
        for alert in case["exp_alerts"] or []:
            labels = alert["exp_labels"]
            assert labels.get("severity") in known[case["alertname"]], (path.name, case)
            assert labels.get("project"), (path.name, case)
            assert alert["exp_annotations"]["summary"].startswith(f"[{labels['project']}] "), (path.name, case)


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_every_alert_fires_and_stays_quiet_in_a_hand_written_case(name: str) -> None:
    """For each alert and severity: a case where it fires, and one where it does not (below the
    threshold, before `for` has elapsed, or only the other severity firing). The idle server's
    generated cases do not count: each rule needs its own."""
    severities = alert_severities(rules_of(name))
    fires: set[tuple[str, str]] = set()
    quiet: set[tuple[str, str]] = set()
    for case in alert_cases(HERE / f"{Path(name).stem}.test.yml"):
        alert = case["alertname"]
        firing = {a["exp_labels"]["severity"] for a in case["exp_alerts"] or []}
        fires |= {(alert, severity) for severity in firing}
        quiet |= {(alert, severity) for severity in severities.get(alert, set()) - firing}
    expected = {(alert, severity) for alert, found in severities.items() for severity in found}
    assert expected - fires == set(), "no case where these fire"
    assert {(a, s) for a, s in expected if a not in ALWAYS_FIRING} - quiet == set(), "no case where these stay quiet"


def test_the_idle_server_is_checked_against_every_alert() -> None:
    generated = {case["alertname"] for case in idle_entries()}
    assert generated == {rule["alert"] for _, rule in all_rules()} - ALWAYS_FIRING
    assert "Watchdog" in {case["alertname"] for case in alert_cases(HERE / IDLE)}


# --- docs/alerts.md ------------------------------------------------------------------------------


def documented() -> set[tuple[str, str, str, str]]:
    """(group, alert, severity, for) of each row of the table in docs/alerts.md."""
    rows = set()
    for line in DOCS.read_text().splitlines():
        cells = [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] not in {"Group", ""} and not set(cells[0]) <= set("-: "):
            rows.add((cells[0], cells[1], cells[2], cells[3]))
    return rows


def test_docs_list_every_alert() -> None:
    rules = {
        (group["name"], rule["alert"], rule["labels"]["severity"], rule["for"])
        for name in RENDERED
        for group in yaml.safe_load(RENDERED[name])["groups"]
        for rule in group["rules"]
    }
    rows = documented()
    assert rules - rows == set(), "rules missing from docs/alerts.md (or with another severity or for)"
    assert rows - rules == set(), "rows of docs/alerts.md without a rule"


def test_promtool_test_files_are_plain_yaml_without_merge_keys() -> None:
    """promtool's YAML parser is strict: a merge key overriding a key fails the whole file."""
    for path in TEST_FILES:
        assert "<<:" not in path.read_text(), path.name

