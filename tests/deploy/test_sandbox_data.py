"""`stagectl sandbox down` then `up` keeps the server's data: the new container is a fresh
operating system (new host keys, no `ansible` user, no Docker) with the old data volumes mounted,
like a reinstalled server with its data disk. Bootstrap and deploy again, and the project's rows
are still there, served through HTTPS by a healthy app.

It also proves that the deploy repairs what Docker does to a missing bind-mount source: a
configuration file replaced by an empty directory (Docker's doing when a container starts
before its file exists) is a file again after the deploy.

This test recreates the session's sandbox, so it runs last (see conftest.py). It costs a second
bootstrap and a whole deploy onto a fresh system (about as long as the session's cold deploy), which
the CI's time budget has no room for: it runs when STAGECTL_TEST_SANDBOX_RECREATE=1 is set."""

from __future__ import annotations

import os
import time

import pytest

from stagectl.deploy import bootstrap, deploy
from stagectl.sandbox import acme, docker_cli, server
from stagectl.sandbox.environment import bootstrap_target
from tests.deploy.conftest import Deployed, _failures
from tests.deploy.test_backup_restore import PROJECT, _notes, _write_note
from tests.deploy.test_end_to_end import https

MARK = "kept across sandbox down and up"


@pytest.mark.skipif(
    os.environ.get("STAGECTL_TEST_SANDBOX_RECREATE") != "1",
    reason="recreates the session's sandbox: a second bootstrap and a whole deploy (about a cold "
    "deploy's time), beyond the CI's time budget; set STAGECTL_TEST_SANDBOX_RECREATE=1 to run it",
)
def test_sandbox_down_and_up_keeps_the_rows(deployed: Deployed) -> None:
    started = time.monotonic()
    _write_note(deployed, MARK)
    old = deployed.info
    redis_conf = f"/opt/projects/{PROJECT}/config/redis.conf"

    result = server.down(old.name)
    assert result.container_removed and not result.volume_removed
    assert set(server.all_volume_names(old.name)) <= set(result.volumes), result
    for volume in server.all_volume_names(old.name):
        assert docker_cli.inspect("volume", volume) is not None, volume

    info = server.up(old.name, old.ssh_port, state_dir=old.state_dir, http_port=old.http_port,
                     https_port=old.https_port, archive_dir=old.archive_dir)
    assert info.action == "created" and info.container_id != old.container_id
    deployed.info = info
    # A fresh system: the bootstrap's user is gone, the data directories are not.
    assert deployed.sh("id -u ansible || echo none").strip() == "none"
    assert deployed.sh(f"test -f {redis_conf} && echo file").strip() == "file"
    # What Docker leaves when the stack's redis starts before its configuration file exists.
    deployed.sh(f"rm {redis_conf} && mkdir {redis_conf}")
    acme.up(old.name)

    target = bootstrap_target(info)
    again = bootstrap(deployed.root, deployed.vault_password_file, target.login, connect_key=target.connect_key)
    assert again.ok, f"bootstrap after down/up failed:\n{_failures(again)}"
    redeploy = deploy(deployed.root, deployed.vault_password_file).run
    assert redeploy.ok, f"deploy after down/up failed:\n{_failures(redeploy)}"

    assert deployed.sh(f"test -f {redis_conf} && echo file").strip() == "file"
    assert MARK in _notes(deployed)
    status, body = https(deployed, f"{PROJECT}.sandbox.test", "/notes/")
    assert status == 200 and MARK in body, body
    health = deployed.sh(f"docker inspect --format '{{{{.State.Health.Status}}}}' {PROJECT}-django {PROJECT}-redis")
    assert health.split() == ["healthy", "healthy"], health
    print(f"\nsandbox down, up, bootstrap and deploy with the data kept: {time.monotonic() - started:.0f}s")
