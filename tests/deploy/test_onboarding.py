"""Onboarding on the sandbox: `project add` a third project, `deploy --project` wires it completely
(route, scrape jobs) without touching the other projects' containers, a second deploy changes
nothing, and `project remove` takes it off again. Then each build style of the fixture apps (uv,
pip with a Procfile and a source-only dependency, Poetry, the app's own Dockerfile) the same way,
one at a time, each removed once checked, so the shared sandbox never carries more than three
projects: served over HTTPS through the main nginx, its static files served, its migrations applied.
The styles run with `-m styles` only (minutes each); `scripts/test.sh all` runs the third project."""

from __future__ import annotations

import shlex
import shutil
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from stagectl.cli import app
from stagectl.deploy import deploy
from stagectl.environment import ALL_VARS, INVENTORY
from stagectl.polling import wait_for
from tests.conftest import show_figure
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


def test_add_deploy_and_remove_a_third_project(deployed: Deployed, capsys: pytest.CaptureFixture[str]) -> None:
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
        show_figure(capsys, f"project add + deploy --project {NEW} + HTTPS 200: {time.monotonic() - started:.0f} s")
        again = deploy(deployed.root, deployed.vault_password_file, project=NEW).run
        assert {h: s.changed for h, s in again.hosts.items()} == {"sandbox": 0}

        after = container_ids(deployed)
        others = {name: cid for name, cid in before.items() if name.startswith(tuple(f"{p}-" for p in PROJECTS))}
        assert others and {name: after.get(name) for name in others} == others, "other projects' containers kept"
        # The shared stack is Compose project `shared`: its Prometheus is shared-prometheus-1.
        # It joins the new project's metrics network, which Compose does only by recreating it.
        prometheus = next(name for name in before if name.startswith("shared-prometheus"))
        assert f"{NEW}_metrics" in prometheus_networks(deployed, prometheus)
        # Recreating the main nginx would drop every project's connections.
        main_nginx = "shared-nginx-1"
        assert after[main_nginx] == before[main_nginx], "main nginx reloaded, not recreated"
        assert https(deployed, f"{NEW}.sandbox.test", "/healthz")[0] == 200
        wait_for(lambda: True if NEW in scrape_projects(deployed) else None, timeout=60, interval=2,
                 on_timeout=lambda: AssertionError(f"Prometheus does not scrape {NEW} 60 s after its deploy"))

        # Its backups are expected from now on; its first weekly restore test, before any
        # backup, does nothing and fails nothing (no failed unit, no failed-test metric).
        scheduled = deployed.sh(f"cat /var/lib/stagectl/textfile/stagectl-backup-scheduled-{NEW}.prom")
        assert f'stagectl_backup_scheduled_timestamp_seconds{{project="{NEW}"}}' in scheduled
        deployed.sh(f"systemctl start stagectl-backup-verify@{NEW}.service", timeout=120)
        assert deployed.sh(f"test -e /var/lib/stagectl/textfile/stagectl-backup-verify-{NEW}.prom "
                           "&& echo written || echo none").strip() == "none"
        assert "nothing to test" in deployed.sh(f"journalctl -u stagectl-backup-verify@{NEW}.service -n 5 --no-pager")

        _a_failed_build_says_why_and_the_release_keeps_serving(deployed, NEW)

        removed = runner.invoke(app, ["project", "remove", NEW, "--yes", *env])
        assert removed.exit_code == 0, removed.output
        assert "data, backups and secrets deleted; its certificate deleted" in " ".join(removed.output.split())
        assert not [name for name in container_ids(deployed) if name.startswith(f"{NEW}-")]
        assert deployed.sh(f"test -e /opt/projects/{NEW} && echo present || echo gone").strip() == "gone"
        assert deployed.sh(f"test -e /opt/backups/{NEW} && echo present || echo gone").strip() == "gone"
        assert deployed.sh(f"ls /var/lib/stagectl/textfile | grep -c -- '-{NEW}.prom' || true").strip() == "0"
        # Its certificate goes too: the renewal timer no longer asks the ACME server for the name.
        certificate = f"/etc/letsencrypt/renewal/{NEW}.sandbox.test.conf /etc/letsencrypt/live/{NEW}.sandbox.test"
        assert deployed.sh(f"ls -d {certificate} 2>/dev/null || true").strip() == ""
        assert https(deployed, f"{NEW}.sandbox.test", "/healthz")[0] != 200
        # Prometheus applies a reload at once but drops the removed jobs' targets from its
        # target list a moment later.
        wait_for(lambda: True if NEW not in scrape_projects(deployed) else None, timeout=60, interval=2,
                 on_timeout=lambda: AssertionError(f"Prometheus still scrapes {NEW} 60 s after its removal"))
        for project in PROJECTS:
            assert https(deployed, f"{project}.sandbox.test", "/healthz")[0] == 200
        # Its metrics network goes with it, Prometheus having left it.
        assert f"{NEW}_metrics" not in deployed.sh("docker network ls --format '{{.Name}}'").split()
        assert prometheus_networks(deployed, prometheus) == {"shared", *(f"{p}_metrics" for p in PROJECTS)}
        assert {name: container_ids(deployed).get(name) for name in others} == others
        assert container_ids(deployed)[main_nginx] == before[main_nginx], "main nginx kept on removal"
    finally:
        # A failure above must not leave the project on the shared sandbox: the tests after this
        # one expect the example's two projects only.
        if f"name: {NEW}\n" in deployed.root.joinpath("inventory/staging.yml").read_text():
            runner.invoke(app, ["project", "remove", NEW, "--yes", *env])


def prometheus_networks(deployed: Deployed, container: str) -> set[str]:
    """The networks the shared Prometheus is on."""
    listing = deployed.sh(
        f"docker inspect --format '{{{{range $name, $_ := .NetworkSettings.Networks}}}}{{{{$name}}}} {{{{end}}}}' {container}")
    return set(listing.split())


def _a_failed_build_says_why_and_the_release_keeps_serving(deployed: Deployed, name: str) -> None:
    """A build that fails shows its last lines (the module alone says only "Building ... failed"),
    and the running release goes on serving. The cause: a Debian package that does not exist."""
    inventory = deployed.root / INVENTORY
    data = yaml.safe_load(inventory.read_text())
    entry = next(p for p in data["staging"]["vars"]["projects"] if p["name"] == name)
    entry.setdefault("app", {})["apt_packages"] = ["stagectl-no-such-package"]
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    running = deployed.sh(f"docker inspect --format '{{{{.Image}}}}' {name}-django").strip()

    broken = deploy(deployed.root, deployed.vault_password_file, project=name).run

    assert not broken.ok
    message = "\n".join(f.message for f in broken.failures)
    assert "the build's last lines:" in message, message
    assert "Unable to locate package stagectl-no-such-package" in message, message
    assert deployed.sh(f"docker inspect --format '{{{{.Image}}}}' {name}-django").strip() == running
    assert https(deployed, f"{name}.sandbox.test", "/healthz")[0] == 200


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "apps"
# Fixture directory -> (project name, extra `project add` options).
STYLES: dict[str, tuple[str, list[str]]] = {
    "uv-app": ("uvapp", []),
    "pip-app": ("pipapp", []),
    "poetry-app": ("poetryapp", []),
    "dockerfile-app": ("dockerapp", ["--dockerfile", "Dockerfile"]),
}


def _source(fixture: str, deployed: Deployed, tmp_path: Path) -> Path:
    """The fixture app as `project add` gets it. Test-bed plumbing: no registry answers here, so the
    own Dockerfile's default base image (the official Python image) becomes the environment's
    stand-in for it, as an operator would pin their own base."""
    if fixture != "dockerfile-app":
        return FIXTURES / fixture
    copy = tmp_path / fixture
    shutil.copytree(FIXTURES / fixture, copy, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    python = yaml.safe_load((deployed.root / ALL_VARS).read_text())["project_defaults"]["images"]["python"]
    dockerfile = copy / "Dockerfile"
    text = dockerfile.read_text()
    assert "ARG PYTHON_IMAGE=python:3.13-slim\n" in text
    dockerfile.write_text(text.replace("ARG PYTHON_IMAGE=python:3.13-slim\n", f"ARG PYTHON_IMAGE={python}\n"))
    return copy


def _psql(deployed: Deployed, project: str, sql: str) -> str:
    return deployed.sh(
        f"docker exec {project}-postgres sh -c 'psql -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\" -tAc \"$0\"' "
        f"{shlex.quote(sql)}"
    ).strip()


# Each costs minutes, mostly its image build: outside CI's time budget, run with `-m styles`. In CI,
# tests/image builds and runs every style (the own Dockerfile too) with the rendered files, and the
# third project above goes through the same onboarding on the sandbox.
STYLE_PARAMS = [pytest.param(f, id=f, marks=pytest.mark.styles) for f in STYLES]


@pytest.mark.parametrize("fixture", STYLE_PARAMS)
def test_each_build_style_onboarded_served_and_removed(deployed: Deployed, fixture: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    name, options = STYLES[fixture]
    domain = f"{name}.sandbox.test"
    env = ["--env", str(deployed.root), "--vault-password-file", str(deployed.vault_password_file)]
    runner = CliRunner()
    before = container_ids(deployed)
    others = {n: cid for n, cid in before.items() if n.startswith(tuple(f"{p}-" for p in PROJECTS))}

    started = time.monotonic()
    source = _source(fixture, deployed, tmp_path)
    added = runner.invoke(app, ["project", "add", name, "--repo", str(source), *options, *env])
    assert added.exit_code == 0, added.output
    try:
        result = deploy(deployed.root, deployed.vault_password_file, project=name).run
        assert result.ok, "\n".join(f"{f.task}: {f.message}" for f in result.failures)
        assert https(deployed, domain, "/health/")[0] == 200
        show_figure(capsys, f"{fixture}: project add + deploy --project (image built) + HTTPS 200: "
                            f"{time.monotonic() - started:.0f} s")

        # A file collectstatic wrote in the container, served by the project's nginx.
        status, body = https(deployed, domain, "/static/items/site.css")
        assert (status, body.startswith("body")) == (200, True), (status, body[:200])
        # The release step ran the app's migrations before the app served.
        assert _psql(deployed, name, "SELECT name FROM django_migrations WHERE app = 'items'") == "0001_initial"
        assert _psql(deployed, name, "SELECT to_regclass('public.items_item') IS NOT NULL") == "t"
        assert {n: container_ids(deployed).get(n) for n in others} == others, "other projects' containers kept"
    finally:
        started = time.monotonic()
        removed = runner.invoke(app, ["project", "remove", name, "--yes", *env])
        show_figure(capsys, f"{fixture}: project remove: {time.monotonic() - started:.0f} s")
    assert removed.exit_code == 0, removed.output
    assert not [n for n in container_ids(deployed) if n.startswith(f"{name}-")]
    assert https(deployed, domain, "/health/")[0] != 200
