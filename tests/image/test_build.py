"""The app image stagectl builds, for real, for each kind of Django project.

Fixture apps (tests/fixtures/apps/: uv; pip with a `-r` include, a Procfile and psycopg[c], which
is published as source only; Poetry; the app's own Dockerfile) are described by `app:` entries in
one environment, rendered once the way `stagectl plan` renders, built with the rendered
docker-compose.yml and Dockerfile on the local Docker engine, and run beside a PostgreSQL (the
stand-in image) on a private network, as the deploy runs them: the release step first, in a
one-off container, then the web container with the rendered environment file.

Test plumbing only: the build gets the machine's CA bundle as the Dockerfile's optional `ca`
secret (a Compose override file), and the images are the test bed's stand-ins.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import missing_tool
from tests.render.conftest import RenderedEnv, make_environment, render

pytestmark = pytest.mark.docker

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "apps"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
STANDINS = {"postgres": "postgres", "python": "python"}
DOCKER_TIMEOUT = 120
BUILD_TIMEOUT = 1200
WAIT_SECONDS = 120

# Fixture directory -> its `app:` entry (what `stagectl project add` would write).
APPS: dict[str, dict[str, Any]] = {
    "uv-app": {
        "builder": "uv",
        "settings": "uvsite.settings",
        "wsgi": "uvsite.wsgi:application",
        "health_path": "/health/",
        "env": {"FEATURE_FLAG": "on"},
    },
    "pip-app": {
        "builder": "pip",
        "requirements": "requirements.txt",
        "settings": "pipsite.settings",
        "health_path": "/health/",
        # From its Procfile.
        "processes": {
            "web": "gunicorn pipsite.wsgi:application --bind 0.0.0.0:8000 --workers ${GUNICORN_WORKERS:-2}",
            "release": "python manage.py migrate --noinput --verbosity 2",
        },
    },
    # No settings and no WSGI module given: the entrypoint finds them (manage.py, the settings).
    "poetry-app": {"builder": "poetry"},
    "dockerfile-app": {
        "builder": "dockerfile",
        "dockerfile": "Dockerfile",
        "static_root": "/srv/app/staticfiles",
        "health_path": "/health/",
    },
}


def docker(*args: str, timeout: float = DOCKER_TIMEOUT, check: bool = True,
           cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"docker {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def env_file(path: Path) -> dict[str, str]:
    """A Compose env_file as Compose reads it (the rendered one quotes some values)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, value = line.partition("=")
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        elif len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\$", "$").replace("\\\\", "\\")
        values[name] = value
    return values


@dataclass
class Built:
    """One fixture app: its rendered project, image and the files the deploy would have."""

    fixture: str
    project: dict[str, Any]
    rendered: RenderedEnv
    image: str

    @property
    def root(self) -> Path:
        return self.rendered.path(self.project["dirs"]["root"])

    @property
    def compose(self) -> dict[str, Any]:
        return self.rendered.compose(self.project["name"])

    @property
    def env(self) -> dict[str, str]:
        return env_file(self.rendered.path(f"{self.project['dirs']['config']}/.env"))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Built]]:
    """Every fixture app rendered in one environment and built once (BuildKit's cache keeps the
    shared layers, the build stage's packages among them, across apps and runs)."""
    from stagectl.sandbox.images import BuildError, ImageBuilder, docker_available

    if shutil.which("docker") is None or not docker_available():
        missing_tool("no Docker daemon answers `docker info` (scripts/testbed-setup.sh docker)")
    try:
        refs = {r.name: r.ref for r in ImageBuilder(out=lambda _line: None).build(list(STANDINS.values()))}
    except BuildError as exc:
        missing_tool(f"the stand-in images cannot be built here: {exc}")

    tmp = tmp_path_factory.mktemp("image")
    suffix = uuid.uuid4().hex[:6]
    names = {fixture: f"{fixture.split('-')[0]}{suffix}" for fixture in APPS}

    def projects(data: dict[str, Any]) -> None:
        data["staging"]["vars"]["projects"] = [
            {"name": names[fixture], "domain": f"{names[fixture]}.example.test",
             "repo": str(FIXTURES / fixture), "app": app}
            for fixture, app in APPS.items()
        ]

    def images(data: dict[str, Any]) -> None:
        for key, standin in STANDINS.items():
            data["project_defaults"]["images"][key] = refs[standin]

    def selfsigned(data: dict[str, Any]) -> None:
        # `.test` names: no public CA would issue for them, and the model says so.
        data["certificates"]["provider"] = "selfsigned"

    env = make_environment(tmp / "env", tmp / "secret" / "vault-pass", inventory=projects, all_vars=images,
                           staging_vars=selfsigned)
    rendered = render(env, tmp / "out")
    result: dict[str, Built] = {}
    try:
        for fixture in APPS:
            project = rendered.project(names[fixture])
            item = Built(fixture, project, rendered, project["images"]["app"])
            # What the deploy does before building: the source in the app directory.
            shutil.copytree(FIXTURES / fixture, item.root / "app",
                            ignore=shutil.ignore_patterns(".venv", "__pycache__"))
            files = ["-f", str(item.root / "docker-compose.yml")]
            if CA_BUNDLE.is_file():
                override = item.root / "test-build.yml"
                override.write_text(yaml.safe_dump({
                    "services": {"django": {"build": {"secrets": ["ca"]}}},
                    "secrets": {"ca": {"file": str(CA_BUNDLE)}},
                }))
                files += ["-f", str(override)]
            if fixture == "dockerfile-app":
                # Its own Dockerfile names the official Python image, which cannot be pulled here.
                files += ["-f", str(_args_override(item.root, refs["python"]))]
            started = time.monotonic()
            docker("compose", *files, "build", "django", cwd=item.root, timeout=BUILD_TIMEOUT)
            print(f"[figure] image build {fixture}: {time.monotonic() - started:.1f}s")
            result[fixture] = item
        yield result
    finally:
        for item in result.values():
            docker("image", "rm", "--force", item.image, check=False)


def _args_override(root: Path, python_image: str) -> Path:
    path = root / "test-args.yml"
    path.write_text(yaml.safe_dump({"services": {"django": {"build": {"args": {"PYTHON_IMAGE": python_image}}}}}))
    return path


@dataclass
class Running:
    item: Built
    network: str
    app: str
    static: Path

    def http(self, path: str, host: str) -> tuple[int, str]:
        """GET from inside the app container, as the healthcheck does (no curl in the image)."""
        code = (
            "import http.client as h,sys;c=h.HTTPConnection('127.0.0.1',8000,timeout=5);"
            f"c.request('GET',{path!r},headers={{'Host':{host!r},'X-Forwarded-Proto':'https'}});"
            "r=c.getresponse();print(r.status);print(r.read().decode())"
        )
        result = docker("exec", self.app, "python", "-c", code, check=False)
        if result.returncode != 0:
            return 0, result.stderr
        status, _, body = result.stdout.partition("\n")
        return int(status), body


def _container_options(item: Built, network: str, static: Path) -> list[str]:
    """The django service's run-time settings from the rendered docker-compose.yml."""
    service = item.compose["services"]["django"]
    options = ["--network", network, "--read-only", "--cap-drop", "ALL",
               "--security-opt", "no-new-privileges:true"]
    for mount in service.get("tmpfs", []):
        options += ["--tmpfs", mount]
    target = next(v.split(":", 1)[1] for v in service["volumes"] if v.startswith("./data/static:"))
    options += ["-v", f"{static}:{target}"]
    for name, value in item.env.items():
        options += ["-e", f"{name}={value}"]
    return options


def _wait(predicate: Any, what: str, timeout: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture(scope="module", params=list(APPS))
def running(request: pytest.FixtureRequest, built: dict[str, Built],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """PostgreSQL under the project's container name on a private network, the release step in a
    one-off container of the image, then the web container (no arguments: stagectl's entrypoint,
    or the app's own command)."""
    item = built[request.param]
    project = item.project
    network = f"{project['name']}-net"
    postgres = project["containers"]["postgres"]
    app = project["containers"]["django"]
    static = tmp_path_factory.mktemp(f"{project['name']}-static")
    os.chmod(static, 0o777)  # writable by the image's user: stagectl's app user, or the app's own
    env = item.env
    docker("network", "create", network)
    try:
        docker("run", "--detach", "--name", postgres, "--network", network,
               "-e", f"POSTGRES_DB={env['POSTGRES_DB']}", "-e", f"POSTGRES_USER={env['POSTGRES_USER']}",
               "-e", f"POSTGRES_PASSWORD={env['POSTGRES_PASSWORD']}",
               project["images"]["postgres"])
        _wait(lambda: docker("exec", postgres, "pg_isready", "-q", "-h", "127.0.0.1",
                             "-U", env["POSTGRES_USER"], check=False).returncode == 0, "PostgreSQL")
        options = _container_options(item, network, static)
        release = project["commands"]["release"] or ["python", "manage.py", "migrate", "--noinput"]
        migrated = docker("run", "--rm", *options, item.image, *release, timeout=300)
        docker("run", "--detach", "--name", app, *options, item.image, *_command(item))
        yield Running(item, network, app, static)
        print(f"[release output {request.param}]\n{migrated.stdout[-2000:]}")
    finally:
        logs = docker("logs", app, check=False)
        print(f"[logs {request.param}]\n{logs.stdout[-3000:]}\n{logs.stderr[-3000:]}")
        docker("rm", "--force", app, postgres, check=False)
        docker("network", "rm", network, check=False)


def _command(item: Built) -> list[str]:
    """`command:` of the rendered django service, if any (the app's own image with a web process)."""
    return list(item.compose["services"]["django"].get("command") or [])


def _healthcheck(item: Built) -> list[str]:
    test = item.compose["services"]["django"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    return list(test[1:])


def test_health_path_answers_200_with_the_project_host(running: Running) -> None:
    item = running.item
    domain = item.project["domain"]
    health = item.project["app"]["health_path"]
    check = _healthcheck(item)
    # The rendered healthcheck itself, run in the container: healthy once the app serves.
    _wait(lambda: docker("exec", running.app, *check, check=False).returncode == 0,
          f"{item.fixture}'s healthcheck ({health})")
    assert running.http(health, domain)[0] == 200
    # Another Host is not the project's: Django refuses it, which the check would see as 400.
    assert running.http(health, "elsewhere.example.test")[0] == 400


def test_collectstatic_wrote_into_the_apps_static_root(running: Running) -> None:
    _wait(lambda: (running.static / "items" / "site.css").is_file(), "collected static files")
    assert (running.static / "items" / "site.css").read_text().startswith("body")


def test_release_applied_the_migrations(running: Running) -> None:
    env = running.item.env
    postgres = running.item.project["containers"]["postgres"]
    applied = docker(
        "exec", postgres, "psql", "-U", env["POSTGRES_USER"], "-d", env["POSTGRES_DB"], "-tAc",
        "SELECT name FROM django_migrations WHERE app = 'items'",
    ).stdout.split()
    assert applied == ["0001_initial"]
    tables = docker(
        "exec", postgres, "psql", "-U", env["POSTGRES_USER"], "-d", env["POSTGRES_DB"], "-tAc",
        "SELECT to_regclass('public.items_item') IS NOT NULL",
    ).stdout.strip()
    assert tables == "t"


@pytest.mark.parametrize("running", ["pip-app"], indirect=True)
def test_the_source_only_driver_was_compiled_and_serves(running: Running) -> None:
    domain = running.item.project["domain"]
    _wait(lambda: running.http("/health/", domain)[0] == 200, "the pip app")
    status, body = running.http("/driver/", domain)
    assert (status, body.strip()) == (200, "c")  # psycopg runs its compiled C implementation


@pytest.mark.parametrize("running", ["uv-app"], indirect=True)
def test_app_env_reaches_the_app(running: Running) -> None:
    result = docker("exec", running.app, "python", "-c", "import os; print(os.environ['FEATURE_FLAG'])")
    assert result.stdout.strip() == "on"


def test_the_entrypoint_execs_its_arguments(built: dict[str, Built]) -> None:
    item = built["uv-app"]
    result = docker("run", "--rm", "--read-only", item.image, "python", "-c",
                    "import os, sys; print(os.environ['DJANGO_SETTINGS_MODULE'], sys.argv)", "x")
    assert result.stdout.split()[0] == "uvsite.settings"
    inspect = json.loads(docker("image", "inspect", item.image).stdout)[0]["Config"]
    assert inspect["Entrypoint"] == ["/usr/local/bin/stagectl-entrypoint"]
    assert inspect["User"] == "app"


def test_the_runtime_image_has_no_compiler(built: dict[str, Built]) -> None:
    for fixture in ("uv-app", "pip-app", "poetry-app"):
        image = built[fixture].image
        result = docker("run", "--rm", "--entrypoint", "sh", image, "-c",
                        "command -v gcc cc || echo none; ls /usr/lib/x86_64-linux-gnu | grep -c '^libpq.so.5' ",
                        check=False)
        lines = result.stdout.split()
        assert lines[0] == "none", f"{fixture}: a compiler in the runtime image: {result.stdout}"
        assert int(lines[-1]) >= 1, f"{fixture}: libpq5 missing: {result.stdout}"
