"""`stagectl backup run/list/verify/restore`: what each prints and its exit code for what the
server's backup tool answered. The playbook run is replaced by the answers the playbook
`stagectl.staging.backup` writes (one JSON document per host); everything from there on is real."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from stagectl import backup
from stagectl.cli import app
from stagectl.runner import RunResult
from tests.conftest import EnvFixture

runner = CliRunner()
HOST = "staging-server"
LOG = "2026-12-05T03:07:12Z stagectl-backup"


def _tool(project: str, rc: int = 0, stdout: str = "", stderr: str = "") -> dict[str, Any]:
    return {"backups_tool_project": project, "rc": rc, "stdout": stdout, "stderr": stderr}


class FakeServer:
    """Stands in for `run_reporting_playbook("backup", ...)`; records what it was asked."""

    def __init__(self, *results: dict[str, Any], host_answers: bool = True) -> None:
        self.results = list(results)
        self.host_answers = host_answers
        self.calls: list[dict[str, Any]] = []

    def __call__(self, name: str, root: Path, vault: Path, hosts: list[str], *, out_variable: str,
                 extravars: dict[str, Any], on_progress: object = None) -> tuple[RunResult, dict[str, Any]]:
        assert name == "backup" and out_variable == "stagectl_backup_out"
        self.calls.append(extravars)
        run = RunResult(status="successful", rc=0, seconds=1.0)
        if not self.host_answers:
            return RunResult(status="failed", rc=4, seconds=1.0, errors=["ERROR! unreachable"]), {}
        return run, {HOST: {"action": extravars["backups_tool_action"], "results": self.results}}


def _invoke(env: EnvFixture, *args: str) -> Any:
    return runner.invoke(app, [*args, "--env", str(env.root), "--vault-password-file", str(env.vault_password_file)])


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(*results: dict[str, Any], host_answers: bool = True) -> FakeServer:
        fake = FakeServer(*results, host_answers=host_answers)
        monkeypatch.setattr(backup, "run_reporting_playbook", fake)
        return fake
    return install


def test_list_shows_each_backup_with_its_restore_test(example_env: EnvFixture, server: Any) -> None:
    fake = server(
        _tool("beryl3", stdout="20261205T030712Z\t2400000\t/opt/backups/beryl3/beryl3-20261205T030712Z.dump\t"
                               "verified:1764900000\n"
                               "20261204T030501Z\t2300\t/opt/backups/beryl3/beryl3-20261204T030501Z.dump\tuntested\n"),
        _tool("project2"),
    )
    result = _invoke(example_env, "backup", "list")
    assert result.exit_code == 0, result.output
    # Every project, and the shared stack's state.
    assert fake.calls == [{"backups_tool_action": "list", "backups_tool_projects": ["beryl3", "project2", "shared"]}]
    assert "20261205T030712Z" in result.output and "2.4 MB" in result.output and "2300 B" in result.output
    assert "verified" in result.output and "untested" in result.output
    assert "2 backups of 2 projects; none yet of: project2 (stagectl backup run)" in result.output


def test_parse_list_reads_the_tool_lines() -> None:
    found = backup.parse_list(HOST, "beryl3", "20261205T030712Z\t10\t/x.dump\tfailed:1764900000\nnoise\n"
                                               "20261204T030501Z\t11\t/y.dump\n")
    assert [(b.id, b.size, b.verification) for b in found] == [
        ("20261205T030712Z", 10, "failed"), ("20261204T030501Z", 11, "untested")]
    assert found[0].verified_at is not None and found[1].verified_at is None


def test_run_reports_each_project_and_fails_when_one_fails(example_env: EnvFixture, server: Any) -> None:
    server(
        _tool("beryl3", stderr=f"{LOG} info: backup of project beryl3 done in 3s\n"),
        _tool("project2", rc=1, stderr=f"{LOG} err: container project2-postgres is not running\n"),
    )
    result = _invoke(example_env, "backup", "run")
    assert result.exit_code == 1, result.output
    assert "backup of beryl3 OK" in result.output and "info: backup of project beryl3 done" in result.output
    assert "backup of project2 FAILED" in result.output
    assert "err: container project2-postgres is not running" in result.output
    assert "backup run FAILED (1 failed)" in result.output


def test_verify_of_one_project(example_env: EnvFixture, server: Any) -> None:
    fake = server(_tool("project2", stderr=f"{LOG} info: restore test of project project2 passed\n"))
    result = _invoke(example_env, "backup", "verify", "--project", "project2")
    assert result.exit_code == 0, result.output
    assert fake.calls[0]["backups_tool_projects"] == ["project2"]
    assert "restore test of project2 OK" in result.output and "backup verify OK" in result.output


def test_an_unreachable_host_fails_the_command(example_env: EnvFixture, server: Any) -> None:
    server(host_answers=False)
    result = _invoke(example_env, "backup", "list")
    assert result.exit_code == 1, result.output
    assert f"{HOST}: no answer: ERROR! unreachable" in result.output


def test_restore_passes_the_backup_id_and_reports_success(example_env: EnvFixture, server: Any) -> None:
    fake = server(_tool("beryl3", stderr=f"{LOG} info: safety backup taken: /opt/backups/beryl3/b.dump\n"))
    result = _invoke(example_env, "backup", "restore", "--project", "beryl3", "--yes",
                     "--at", "/opt/backups/beryl3/beryl3-20261205T030712Z.dump")
    assert result.exit_code == 0, result.output
    assert fake.calls == [{"backups_tool_action": "restore", "backups_tool_projects": ["beryl3"],
                           "backups_tool_id": "20261205T030712Z"}]
    assert "backup restore of beryl3 OK" in result.output and "safety backup taken" in result.output


def test_restore_without_at_restores_the_newest(example_env: EnvFixture, server: Any) -> None:
    fake = server(_tool("beryl3"))
    result = _invoke(example_env, "backup", "restore", "--project", "beryl3", "--yes")
    assert result.exit_code == 0, result.output
    assert fake.calls[0]["backups_tool_id"] == "latest"


def test_restore_of_an_unknown_backup_is_exit_2(example_env: EnvFixture, server: Any) -> None:
    server(_tool("beryl3", rc=2, stderr=f"{LOG} err: project beryl3 has no backup 20000101T000000Z in "
                                       "/opt/backups/beryl3; its backups: 20261205T030712Z\n"))
    result = _invoke(example_env, "backup", "restore", "--project", "beryl3", "--yes", "--at", "20000101T000000Z")
    assert result.exit_code == 2, result.output
    assert "error: project beryl3 has no backup 20000101T000000Z" in result.output
    assert "Nothing was changed" in result.output and "stagectl backup list --project beryl3" in result.output
    assert "Traceback" not in result.output


def test_a_failed_restore_is_exit_1_with_the_tools_words(example_env: EnvFixture, server: Any) -> None:
    server(_tool("beryl3", rc=1, stderr=(
        f"{LOG} err: the migrations failed on the restored database\n"
        f"{LOG} err: restore of project beryl3 FAILED; nothing was lost: the previous database is back\n")))
    result = _invoke(example_env, "backup", "restore", "--project", "beryl3", "--yes")
    assert result.exit_code == 1, result.output
    assert "restore of beryl3 FAILED" in result.output
    assert "the previous database is back" in result.output
    assert "backup restore of beryl3 FAILED" in result.output


def test_restore_asks_first_and_stops_on_no(example_env: EnvFixture, server: Any,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    fake = server(_tool("beryl3"))
    monkeypatch.setattr("stagectl.cli.backup.can_ask", lambda: True)
    result = runner.invoke(app, ["backup", "restore", "--project", "beryl3", "--env", str(example_env.root),
                                 "--vault-password-file", str(example_env.vault_password_file)], input="n\n")
    assert result.exit_code == 1, result.output
    assert "Replace the live database of beryl3 with the newest backup?" in result.output
    assert fake.calls == []


def test_restore_from_the_off_site_copy_is_refused_without_one(example_env: EnvFixture, server: Any) -> None:
    fake = server(_tool("beryl3"))
    result = _invoke(example_env, "backup", "restore", "--project", "beryl3", "--yes", "--from", "remote")
    assert result.exit_code == 2, result.output
    assert "no off-site repository (backups.remote" in result.output and fake.calls == []


def test_list_shows_the_off_site_copies(example_env: EnvFixture, server: Any) -> None:
    server(_tool("beryl3", stdout="20261205T030712Z\t2300\t/opt/backups/beryl3/beryl3-20261205T030712Z.dump\tuntested\n"))
    # The playbook lists the off-site copies in `remote_results` when there is a repository.
    fake = backup.run_reporting_playbook
    assert isinstance(fake, FakeServer)
    original = fake.__call__

    def with_remote(*args: Any, **kwargs: Any) -> Any:
        run, findings = original(*args, **kwargs)
        findings[HOST]["remote_results"] = [_tool(
            "beryl3", stdout="20261205T030712Z\t0\t/opt/backups/beryl3/beryl3-20261205T030712Z.dump\tremote:1a2b3c4d\n")]
        return run, findings

    monkeypatched = pytest.MonkeyPatch()
    monkeypatched.setattr(backup, "run_reporting_playbook", with_remote)
    try:
        result = _invoke(example_env, "backup", "list", "--project", "beryl3")
    finally:
        monkeypatched.undo()
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "20261205T030712Z" in line]
    assert len(rows) == 2, result.output
    assert any("off-site" in row and " - " in row for row in rows), result.output
    assert any("local" in row and "2300 B" in row for row in rows), result.output


def test_restore_of_a_part_of_the_shared_stack_names_the_part(example_env: EnvFixture, server: Any) -> None:
    fake = server(_tool("shared", stderr=f"{LOG} info: restore of part certs of the shared stack done in 4s\n"))
    result = _invoke(example_env, "backup", "restore", "--what", "certs", "--yes", "--at", "20261205T030712Z")
    assert result.exit_code == 0, result.output
    assert fake.calls == [{"backups_tool_action": "restore", "backups_tool_projects": ["shared"],
                           "backups_tool_id": "20261205T030712Z", "backups_tool_part": "certs"}]
    assert "backup restore of the shared stack's certs OK" in result.output
    assert "its service runs on it" in result.output


def test_restore_of_a_projects_media_names_the_project_and_part(example_env: EnvFixture, server: Any) -> None:
    fake = server(_tool("beryl3", stderr=f"{LOG} info: restore of the media of project beryl3 done in 9s\n"))
    result = _invoke(example_env, "backup", "restore", "--project", "beryl3", "--what", "media", "--yes")
    assert result.exit_code == 0, result.output
    assert fake.calls == [{"backups_tool_action": "restore", "backups_tool_projects": ["beryl3"],
                           "backups_tool_id": "latest", "backups_tool_part": "media"}]
    assert "backup restore of beryl3's media OK" in result.output
    assert "the newest backup is in place, app healthy" in result.output


@pytest.mark.parametrize(("args", "said"), [
    (["--what", "certs", "--project", "beryl3"], "--what certs restores the shared stack's state, not project beryl3's"),
    (["--what", "database"], "--what database restores a project's database: name the project"),
    (["--what", "media"], "--what media restores a project's media: name the project"),
    (["--project", "shared"], "--what database restores a project's database: name the project"),
    (["--what", "redis-of-everything", "--project", "beryl3"], "--what 'redis-of-everything' is not something stagectl backs up"),
    (["--what", "config", "--at", "yesterday"], "--at 'yesterday' is not a backup id"),
])
def test_a_restore_that_cannot_be_is_refused_before_anything_runs(
    example_env: EnvFixture, server: Any, args: list[str], said: str
) -> None:
    fake = server(_tool("shared"))
    result = _invoke(example_env, "backup", "restore", "--yes", *args)
    assert result.exit_code == 2, result.output
    assert said in result.output and "Traceback" not in result.output
    assert fake.calls == []


def test_list_reads_the_shared_stacks_backups(example_env: EnvFixture, server: Any) -> None:
    server(_tool("shared", stdout="20261205T030712Z\t48213\t/opt/backups/shared/shared-20261205T030712Z.parts\t"
                                 "verified:1764900000\n"))
    result = _invoke(example_env, "backup", "list", "--project", "shared")
    assert result.exit_code == 0, result.output
    assert "shared" in result.output and "20261205T030712Z" in result.output and "48213 B" in result.output
    assert "1 backups of 1 projects" in result.output
