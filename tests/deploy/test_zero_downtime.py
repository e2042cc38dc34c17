"""Zero-downtime releases of a project's app, on the session's deployed sandbox.

While a bounded load loop (stagectl.sandbox.load: a few keep-alive HTTPS connections to the
sandbox's 443 published on 127.0.0.1, SNI and Host beryl3.sandbox.test) requests the app, the
project is deployed (a) with a changed app and a new migration, (b) with a release whose server
never becomes healthy, (c) with a release whose migration fails. No request may fail in any of
them, and afterwards the right release serves: the new one in (a), the previous one in (b) and
(c), with no candidate container left and the project nginx pointed at `beryl3-django` again.
These are also the tests of releases themselves: (a) is built, backed up before its migration
(a complete backup more) and tagged `previous`; the data written before each release is kept.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from stagectl.sandbox.handover import live_file, watch_hand_over
from stagectl.sandbox.load import LoadResult, LoadTarget, background_load
from stagectl.sandbox.releases import NOOP_MIGRATION, failing_migration
from tests.conftest import show_figure
from tests.deploy.conftest import Deployed
from tests.deploy.test_project_stack import (
    Stack,
    assert_ok,
    notes,
    release,
    wait_healthy,
    write_note,
)
from tests.roles.sandbox import PlaybookRun

pytestmark = pytest.mark.sandbox

PROJECT = "beryl3"
DOMAIN = f"{PROJECT}.sandbox.test"
CANDIDATE = f"{PROJECT}-django-next"
LIVE_FILE = live_file(PROJECT)
# At least this many requests per scenario, over this many connections; the loop goes on until
# the deploy has ended, and stops by itself after MAX_SECONDS whatever happens.
MIN_REQUESTS = 10_000
CONNECTIONS = 3
MAX_SECONDS = 900.0
FAILING_MIGRATION = failing_migration("0002_zero_downtime")


@pytest.fixture(scope="module")
def stack(deployed: Deployed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    no_extra = tmp_path_factory.mktemp("zero-downtime") / "extra-vars.json"
    no_extra.write_text("{}")
    stack = Stack(info=deployed.info, root=deployed.root, vault_password_file=deployed.vault_password_file,
                  extra_vars=no_extra, timings=deployed.timings)
    yield stack
    # Later tests redeploy the environment: leave it pointed at the release that runs.
    if stack.good_release is not None:
        stack.set_repo(PROJECT, stack.good_release)


def deploy_under_load(stack: Stack, capsys: pytest.CaptureFixture[str], label: str,
                      *args: str) -> tuple[PlaybookRun, LoadResult]:
    target = LoadTarget(port=stack.info.https_port, server_name=DOMAIN)
    with (watch_hand_over(stack.info.name, PROJECT) as switch,
          background_load(target, connections=CONNECTIONS, min_requests=MIN_REQUESTS,
                          max_seconds=MAX_SECONDS) as load):
        run = stack.deploy(label, "-e", f"stagectl_project={PROJECT}", *args)
    assert load.result is not None
    show_figure(capsys, f"{label}: deploy {run.seconds:.0f} s, {switch.summary()}; load: {load.result.summary()}")
    return run, load.result


def assert_no_failed_request(result: LoadResult) -> None:
    assert result.requests >= MIN_REQUESTS, result.summary()
    assert result.failures == 0, f"{result.summary()}; first failures (s, status): {result.samples}"


def serving_release(stack: Stack) -> str:
    """The RELEASE file of the container the project nginx sends the traffic to, after checking
    that it is `beryl3-django` and that no hand-over is left over."""
    upstream = stack.sh(f"docker exec {PROJECT}-nginx curl -sS http://127.0.0.1:8080/django-upstream").strip()
    assert upstream == f"http://{PROJECT}-django:8000"
    assert stack.sh(f"test -e {LIVE_FILE} && echo left || echo none").strip() == "none"
    names = stack.sh("docker ps -a --format '{{.Names}}'").split()
    assert CANDIDATE not in names, names
    return stack.sh(f"docker exec {PROJECT}-django cat /app/RELEASE").strip()


def test_release_of_a_changed_app_fails_no_request(stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = f"before release {uuid.uuid4().hex[:6]}"
    write_note(stack, PROJECT, text)
    dumps_before = stack.sh(f"stagectl-backup list {PROJECT}").splitlines()
    good = release(tmp_path, "zero-downtime-good")
    (good / "notes" / "migrations" / "0002_zero_downtime.py").write_text(NOOP_MIGRATION)
    stack.set_repo(PROJECT, good)
    old_image = stack.image_id(f"stagectl/{PROJECT}-app:latest")

    run, load = deploy_under_load(stack, capsys, "zero-downtime release of beryl3")
    assert_ok(run)
    stack.good_release = good
    changed = run.changed_tasks()
    assert any("Build the app image" in task for task in changed), changed
    assert any("Back up before migrating" in task for task in changed), changed
    assert any("Start beside the live release the candidate" in task for task in changed), changed
    assert any("Apply in a one-off container" in task for task in changed), changed
    assert_no_failed_request(load)

    # The backup before the migration is a complete one; the data written before it is kept.
    assert len(stack.sh(f"stagectl-backup list {PROJECT}").splitlines()) == len(dumps_before) + 1
    assert text in notes(stack, PROJECT)
    new_image = stack.image_id(f"stagectl/{PROJECT}-app:latest")
    assert new_image and new_image != old_image
    assert stack.image_id(f"stagectl/{PROJECT}-app:previous") == old_image
    assert stack.sh(f"docker inspect --format '{{{{.Image}}}}' {PROJECT}-django").strip() == new_image
    assert serving_release(stack) == "zero-downtime-good"
    applied = stack.sh(f"docker exec {PROJECT}-django python manage.py showmigrations notes")
    assert "[X] 0002_zero_downtime" in applied

    # Nothing left to hand over: the next deploy changes nothing (no candidate, no switch).
    again = stack.deploy("no-op deploy of beryl3 after a release", "-e", f"stagectl_project={PROJECT}")
    assert assert_ok(again)["changed"] == 0, again.changed_tasks()


def test_release_that_never_gets_healthy_fails_no_request(stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert stack.good_release is not None, "needs the release of the test before"
    text = f"before broken release {uuid.uuid4().hex[:6]}"
    write_note(stack, PROJECT, text)
    good_image = stack.image_id(f"stagectl/{PROJECT}-app:latest")
    stack.set_repo(PROJECT, release(tmp_path, "zero-downtime-broken", broken=True))

    run, load = deploy_under_load(stack, capsys, "zero-downtime broken release of beryl3",
                                  "-e", "project_compose_wait_timeout=90")
    assert run.returncode != 0, run.explain()
    assert "the previous release kept serving the traffic throughout" in run.output, run.explain()
    assert_no_failed_request(load)

    assert stack.image_id(f"stagectl/{PROJECT}-app:latest") == good_image
    assert wait_healthy(stack, [f"{PROJECT}-django", f"{PROJECT}-nginx"]) == {}
    assert stack.sh(f"docker inspect --format '{{{{.Image}}}}' {PROJECT}-django").strip() == good_image
    assert serving_release(stack) == "zero-downtime-good"
    assert stack.app(PROJECT, "GET", "/readyz")[0] == 200
    assert text in notes(stack, PROJECT)
    stack.set_repo(PROJECT, stack.good_release)


def test_release_whose_migration_fails_fails_no_request(stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert stack.good_release is not None, "needs the release of the first test"
    good_image = stack.image_id(f"stagectl/{PROJECT}-app:latest")
    bad = release(tmp_path, "zero-downtime-bad-migration")
    migrations = bad / "notes" / "migrations"
    (migrations / "0002_zero_downtime.py").write_text(NOOP_MIGRATION)
    (migrations / "0003_fails.py").write_text(FAILING_MIGRATION)
    stack.set_repo(PROJECT, bad)

    run, load = deploy_under_load(stack, capsys, "zero-downtime release of beryl3 with a failing migration")
    assert run.returncode != 0, run.explain()
    assert "so the new app image was not started" in run.output, run.explain()
    assert_no_failed_request(load)

    assert stack.image_id(f"stagectl/{PROJECT}-app:latest") == good_image
    assert serving_release(stack) == "zero-downtime-good"
    stack.set_repo(PROJECT, stack.good_release)
