"""Onboarding on the sandbox: `project add` a third project, `deploy --project` wires it completely
(route, scrape jobs) without touching the other projects' containers, a second deploy changes
nothing, and `project remove` takes it off again."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from stagectl.cli import app
from stagectl.deploy import deploy
from tests.deploy.conftest import DEMO_APP, Deployed
from tests.deploy.test_end_to_end import PROJECTS, https

pytestmark = pytest.mark.sandbox
NEW = "shop"


def container_ids(deployed: Deployed) -> dict[str, str]:
    out = deployed.sh("docker ps --format '{{.Names}}\t{{.ID}}'")
    return dict(line.split("\t") for line in out.splitlines() if line)


def scrape_projects(deployed: Deployed) -> set[str]:
    targets = deployed.prometheus("/api/v1/targets", state="active")["data"]["activeTargets"]
    return {t["labels"].get("project", "") for t in targets}


def test_add_deploy_and_remove_a_third_project(deployed: Deployed) -> None:
    env = ["--env", str(deployed.root), "--vault-password-file", str(deployed.vault_password_file)]
    runner = CliRunner()
    before = container_ids(deployed)

    started = time.monotonic()
    added = runner.invoke(app, ["project", "add", NEW, "--repo", str(DEMO_APP), *env])
    assert added.exit_code == 0, added.output
    assert f"next: stagectl deploy --project {NEW}" in added.output
    try:
        first = deploy(deployed.root, deployed.vault_password_file, project=NEW).run
        assert first.ok, "\n".join(f"{f.task}: {f.message}" for f in first.failures)
        assert https(deployed, f"{NEW}.sandbox.test", "/healthz")[0] == 200
        # The demo app's image is cached on the server: what onboarding costs beyond the build.
        print(f"\n[figure] project add + deploy --project {NEW} + HTTPS 200: {time.monotonic() - started:.0f} s")
        again = deploy(deployed.root, deployed.vault_password_file, project=NEW).run
        assert {h: s.changed for h, s in again.hosts.items()} == {"sandbox": 0}

        after = container_ids(deployed)
        others = {name: cid for name, cid in before.items() if name.startswith(tuple(f"{p}-" for p in PROJECTS))}
        assert others and {name: after.get(name) for name in others} == others, "other projects' containers kept"
        # The shared stack is Compose project `shared`: its Prometheus is shared-prometheus-1.
        prometheus = next(name for name in before if name.startswith("shared-prometheus"))
        assert after[prometheus] == before[prometheus], "Prometheus reloaded, not recreated"
        assert https(deployed, f"{NEW}.sandbox.test", "/healthz")[0] == 200
        assert NEW in scrape_projects(deployed)

        removed = runner.invoke(app, ["project", "remove", NEW, "--yes", *env])
        assert removed.exit_code == 0, removed.output
        assert not [name for name in container_ids(deployed) if name.startswith(f"{NEW}-")]
        assert deployed.sh(f"test -e /opt/projects/{NEW} && echo present || echo gone").strip() == "gone"
        assert deployed.sh(f"test -e /opt/backups/{NEW} && echo present || echo gone").strip() == "gone"
        assert https(deployed, f"{NEW}.sandbox.test", "/healthz")[0] != 200
        assert NEW not in scrape_projects(deployed)
        for project in PROJECTS:
            assert https(deployed, f"{project}.sandbox.test", "/healthz")[0] == 200
        assert {name: container_ids(deployed).get(name) for name in others} == others
    finally:
        # A failure above must not leave the project on the shared sandbox: the tests after this
        # one expect the example's two projects only.
        if f"name: {NEW}\n" in deployed.root.joinpath("inventory/staging.yml").read_text():
            runner.invoke(app, ["project", "remove", NEW, "--yes", *env])
