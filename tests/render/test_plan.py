"""`stagectl plan` end to end through the CLI: the example passes every validator, and a broken
template fails the plan with the validator's own words."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stagectl import collection, process, validate
from stagectl.cli import app
from stagectl.validate import Check
from tests.render.conftest import HOST, RenderPool, collection_snapshot

runner = CliRunner()
RULES = "roles/shared_monitoring/templates/prometheus/rules/database.yml.j2"
PROJECTS_CONF = "roles/shared_monitoring/templates/nginx/conf.d/projects.conf.j2"
APP_ENV = "roles/project/templates/app.env.j2"


def _init(tmp_path: Path) -> tuple[Path, Path]:
    root, key = tmp_path / "env", tmp_path / "keys" / "vault-pass"
    result = runner.invoke(app, ["init", str(root), "--vault-password-file", str(key)])
    assert result.exit_code == 0, result.output
    return root, key


def _plan(root: Path, key: Path, out: Path) -> tuple[int, str]:
    result = runner.invoke(
        app, ["plan", "--env", str(root), "--out", str(out), "--vault-password-file", str(key)]
    )
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def _failed(output: str) -> set[tuple[str, str]]:
    """(tool, target) of every check plan reports as FAILED."""
    lines = [line.removeprefix("FAILED ") for line in output.splitlines() if line.startswith("FAILED ")]
    return {(tool, target) for tool, _, target in (line.rpartition(" ") for line in lines)}


@pytest.mark.validators
def test_init_then_plan_passes_every_validator(tmp_path: Path) -> None:
    root, key = _init(tmp_path)
    out = tmp_path / "plan"
    code, output = _plan(root, key, out)
    assert code == 0, output
    assert "FAILED" not in output, output
    assert output.rstrip().endswith("plan OK"), output
    # Every tool took part; the rendered files are kept where --out said.
    for tool in ("promtool", "amtool", "nginx", "docker compose", "shellcheck", "yamllint",
                 "ansible-playbook", "ansible-lint"):
        assert re.search(rf"^│ {re.escape(tool)} +│ +[1-9]\d* │ +0 │", output, re.MULTILINE), (tool, output)
    assert f"Rendered files kept in {out}" in output
    assert (out / HOST / "opt/shared/prometheus/config/prometheus.yml").is_file()
    assert {p.name for p in (out / ".manifest").iterdir()} >= {
        f"{HOST}-backups-beryl3.json", f"{HOST}-backups-project2.json", f"{HOST}-backups.json",
        f"{HOST}-project-beryl3.json", f"{HOST}-project-project2.json", f"{HOST}-shared_monitoring.json",
    }


@pytest.mark.validators
def test_a_broken_template_fails_the_plan_with_the_validators_own_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, render_pool: RenderPool
) -> None:
    """Two templates of a copy of the collection broken at once: an alert rule that promtool
    cannot parse and an nginx directive with a value nginx refuses. The plan fails on exactly
    those files, each check with its tool's own message."""
    copy = collection_snapshot(tmp_path / "collections")
    templates = copy / "ansible_collections" / "stagectl" / "staging"
    rules = templates / RULES
    text = rules.read_text()
    assert "expr: pg_up == 0" in text
    rules.write_text(text.replace("expr: pg_up == 0", "expr: sum(rate(pg_up[5m])", 1))
    conf = templates / PROJECTS_CONF
    text = conf.read_text()
    assert "listen 80;" in text
    conf.write_text(text.replace("listen 80;", "listen 80;\n    proxy_buffering maybe;", 1))

    root, key = _init(tmp_path)
    # Renders of this session run in background threads and read the collection's path when
    # they start: let them start before pointing it at the copy.
    render_pool.wait()
    monkeypatch.setattr(collection, "collections_path", lambda: copy)
    # The collection-level checks (ansible-lint, --syntax-check) are the subject of the test
    # above; here they would only repeat it on the copy.
    monkeypatch.setattr(validate, "ansible_lint", lambda **_: Check("ansible-lint", "collection", "skipped", "not run here"))
    monkeypatch.setattr(validate, "syntax_checks", lambda root, vault_password_file, **_: [])

    code, output = _plan(root, key, tmp_path / "plan")
    assert code == 1, output
    assert output.rstrip().endswith("plan FAILED"), output
    # Exactly the broken files fail these tools (`promtool check config` checks the rule files
    # prometheus.yml loads, so it names the broken rule too); other tools are not this test's.
    assert {(tool, target) for tool, target in _failed(output) if tool in ("promtool", "nginx")} == {
        ("promtool", "/opt/shared/prometheus/config/rules/database.yml"),
        ("promtool", "/opt/shared/prometheus/config/prometheus.yml"),
        ("nginx", "/opt/shared/nginx/config/conf.d/projects.conf"),
    }, output
    promtool = output.split("FAILED promtool /opt/shared/prometheus/config/rules/database.yml", 1)[1]
    promtool = promtool.split("\nFAILED ", 1)[0]
    assert "FAILED" in promtool and "parse error" in promtool, promtool
    nginx = output.split("FAILED nginx /opt/shared/nginx/config/conf.d/projects.conf", 1)[1]
    nginx = nginx.split("\nFAILED ", 1)[0]
    assert 'invalid value "maybe"' in nginx and "test failed" in nginx, nginx
    assert "/etc/nginx/stagectl/conf.d/projects.conf" in nginx, "nginx names the file as the container sees it"


def test_a_template_that_fails_for_one_project_names_that_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, render_pool: RenderPool
) -> None:
    """The projects of a render process are rendered in one task: a template that fails for one
    of them fails the plan naming that project, the template and the file it was for."""
    copy = collection_snapshot(tmp_path / "collections")
    template = copy / "ansible_collections" / "stagectl" / "staging" / APP_ENV
    template.write_text(template.read_text()
                        + "{{ project_spec.no_such_setting if project_name == 'project2' else '' }}\n")
    root, key = _init(tmp_path)
    render_pool.wait()  # see the test above
    monkeypatch.setattr(collection, "collections_path", lambda: copy)
    monkeypatch.setattr(validate, "ansible_lint", lambda **_: Check("ansible-lint", "collection", "skipped", "not run here"))
    monkeypatch.setattr(validate, "syntax_checks", lambda root, vault_password_file, **_: [])

    try:
        code, output = _plan(root, key, tmp_path / "plan")
    finally:
        # A plan that fails stops the validators it started and refuses new ones, as Ctrl-C
        # does: the tests after this one, in this process, run validators again.
        process.allow_runs()
    assert code != 0, output
    message = " ".join(output.split())
    assert ("project project2: app.env.j2 (for /opt/projects/project2/config/.env): "
            "object of type 'dict' has no attribute 'no_such_setting'") in message, output
    assert "project beryl3" not in message, output


def _processes() -> list[tuple[int, int, int, str]]:
    """(pid, parent pid, process group, command line) of every process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            continue
        found.append((int(entry.name), int(fields[1]), int(fields[2]), cmdline))
    return found


@pytest.mark.validators
def test_ctrl_c_stops_the_plan_and_every_validator(tmp_path: Path) -> None:
    """Interrupted while ansible-lint runs (a cold cache: every check runs), the plan exits 130
    and leaves no validator behind, nor anything a validator started."""
    root, key = _init(tmp_path)
    stagectl = Path(sys.executable).parent / "stagectl"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    args = [str(stagectl), "plan", "--env", str(root), "--vault-password-file", str(key)]
    # SIGINT handled as from a terminal (a test run started in the background inherits it
    # ignored, and exec keeps that): reset, then exec stagectl in the same process.
    launcher = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
    proc = subprocess.Popen(
        [sys.executable, "-c", launcher, *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        lint: tuple[int, int, int, str] | None = None
        for _ in range(600):  # until ansible-lint runs: at most 5 minutes on a loaded machine
            lint = next((p for p in _processes() if p[1] == proc.pid and "ansible-lint" in p[3]), None)
            if lint is not None or proc.poll() is not None:
                break
            time.sleep(0.5)
        assert lint is not None, "ansible-lint never started"
        os.kill(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, output
    assert "Traceback" not in output, output
    for _ in range(20):  # killed processes may take a moment to disappear
        left = [p for p in _processes() if p[1] == proc.pid or p[2] == lint[2]]
        if not left:
            break
        time.sleep(0.5)
    assert left == [], left
