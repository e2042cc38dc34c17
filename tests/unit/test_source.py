"""Source inspection on small Django trees the tests write: each build style, each failure."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from stagectl.errors import SourceError
from stagectl.source import checkout, inspect_source

MANAGE = """\
import os, sys
def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{module}")
    from django.core.management import execute_from_command_line
    execute_from_command_line(sys.argv)
"""

SETTINGS = """\
import os
from pathlib import Path
BASE_DIR = Path(__file__).resolve().parent.parent
WSGI_APPLICATION = "mysite.wsgi.application"
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "collected"
MEDIA_URL = "/uploads/"
MEDIA_ROOT = os.path.join(BASE_DIR, "uploads")
"""


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def django_files(prefix: str = "", module: str = "mysite.settings", settings: str = SETTINGS) -> dict[str, str]:
    return {
        f"{prefix}manage.py": MANAGE.format(module=module),
        f"{prefix}{module.replace('.', '/')}.py": settings,
        f"{prefix}mysite/__init__.py": "",
        f"{prefix}mysite/wsgi.py": "application = None\n",
    }


def test_uv_project_with_settings_paths_and_health_urls(tmp_path: Path) -> None:
    top = write_tree(tmp_path, {
        **django_files(),
        "pyproject.toml": '[project]\nname = "x"\nrequires-python = ">=3.12"\n'
                          'dependencies = ["Django>=5", "django_prometheus"]\n',
        "uv.lock": "version = 1\n",
        "mysite/urls.py": 'from django.urls import path, include\nurlpatterns = [\n'
                          '    path("healthz/", v), path("readyz", v), path("", include("django_prometheus.urls"))]\n',
    })
    result = inspect_source(top)
    app = result.app
    assert (app.builder, app.python, app.settings, app.wsgi) == ("uv", "3.12", "mysite.settings", "mysite.wsgi:application")
    assert (app.static_root, app.media_root) == ("/app/collected", "/app/uploads")
    assert not result.warnings
    assert (app.static_url, app.media_url) == ("/static/", "/uploads/")
    assert (app.health_path, app.ready_path, app.metrics_path) == ("/healthz/", "/readyz", "/metrics")
    assert result.manage_py == "manage.py" and app.directory == "."
    assert "django-prometheus" in result.dependencies
    assert ("builder", "uv", "pyproject.toml + uv.lock") in result.found


def test_pip_with_include_and_procfile(tmp_path: Path) -> None:
    top = write_tree(tmp_path, {
        **django_files(),
        "requirements.txt": "-r requirements/base.txt\ngunicorn==23.0  # web\n",
        "requirements/base.txt": "Django==5.2\n-c constraints.txt\ndjango-prometheus\n",
        "requirements/constraints.txt": "celery<6\n",
        "runtime.txt": "python-3.11.9\n",
        "Procfile": "web: gunicorn mysite.wsgi\nrelease: python manage.py migrate\n"
                    "worker: celery -A mysite worker\nbeat: celery -A mysite beat\nflower: celery flower\n",
    })
    result = inspect_source(top)
    app = result.app
    assert (app.builder, app.requirements, app.python) == ("pip", "requirements.txt", "3.11")
    assert {"django", "gunicorn", "django-prometheus"} <= result.dependencies
    assert "celery" not in result.dependencies  # a constraint is not a requirement
    assert app.processes.web == "gunicorn mysite.wsgi"
    assert app.processes.release == "python manage.py migrate"
    assert app.processes.worker == "celery -A mysite worker"
    assert app.processes.scheduler == "celery -A mysite beat"
    assert result.worker and result.scheduler
    assert any("flower" in w for w in result.warnings)
    assert app.metrics_path == "/metrics" and any("django_prometheus.urls" in w for w in result.warnings)


def test_pip_missing_include_is_named(tmp_path: Path) -> None:
    top = write_tree(tmp_path, {**django_files(), "requirements.txt": "Django\n-r missing.txt\n"})
    with pytest.raises(SourceError, match=r"requirements.txt line 2: includes missing.txt"):
        inspect_source(top)


def test_poetry_one_level_down_with_settings_package(tmp_path: Path) -> None:
    base = 'from pathlib import Path\nBASE_DIR = Path(__file__).resolve().parent.parent.parent\n' \
           'WSGI_APPLICATION = "mysite.wsgi.application"\nSTATIC_ROOT = BASE_DIR / "collected"\n'
    top = write_tree(tmp_path, {
        **django_files(prefix="src/", module="mysite.settings.production", settings="from .base import *\nDEBUG = False\n"),
        "src/mysite/settings/__init__.py": "",
        "src/mysite/settings/base.py": base,
        "pyproject.toml": '[tool.poetry.dependencies]\npython = "^3.13"\ndjango = "^5"\n',
        "poetry.lock": "",
    })
    result = inspect_source(top)
    app = result.app
    assert (app.builder, app.python, app.directory) == ("poetry", "3.13", "src")
    assert result.manage_py == "src/manage.py"
    assert app.settings == "mysite.settings.production"
    assert app.static_root == "/app/src/collected"
    assert ("manage.py", "src/manage.py", "one level down") in result.found


def test_own_dockerfile_when_asked_or_when_no_dependency_file(tmp_path: Path) -> None:
    top = write_tree(tmp_path, {**django_files(), "Dockerfile": "FROM python:3.13\n", "docker/Prod.Dockerfile": "FROM x\n"})
    assert inspect_source(top).app.builder == "dockerfile"
    assert inspect_source(top).app.dockerfile == "Dockerfile"
    (top / "requirements.txt").write_text("Django\n")
    assert inspect_source(top).app.builder == "pip"
    asked = inspect_source(top, dockerfile="docker/Prod.Dockerfile").app
    assert (asked.builder, asked.dockerfile) == ("dockerfile", "docker/Prod.Dockerfile")
    with pytest.raises(SourceError, match="--dockerfile nope: no such file"):
        inspect_source(top, dockerfile="nope")


def test_own_dockerfile_paths_are_under_its_final_workdir(tmp_path: Path) -> None:
    top = write_tree(tmp_path, {
        **django_files(),
        "Dockerfile": "FROM python:3.13 AS build\nWORKDIR /build\nFROM python:3.13-slim\n"
                      "WORKDIR /srv\nworkdir app\nCOPY . .\n",
    })
    result = inspect_source(top, dockerfile="Dockerfile")
    assert (result.app.static_root, result.app.media_root) == ("/srv/app/collected", "/srv/app/uploads")
    assert not [w for w in result.warnings if "outside the app directory" in w]
    # Without a WORKDIR in the final stage: stagectl's app directory, as for its own image.
    (top / "Dockerfile").write_text("FROM python:3.13 AS build\nWORKDIR /build\nFROM python:3.13-slim\n")
    assert inspect_source(top, dockerfile="Dockerfile").app.static_root == "/app/collected"


def test_not_django_names_what_is_missing(tmp_path: Path) -> None:
    top = write_tree(tmp_path, {"requirements.txt": "flask\n", "app.py": "print()\n"})
    with pytest.raises(SourceError, match="not a Django project: no manage.py"):
        inspect_source(top)


def test_missing_settings_module(tmp_path: Path) -> None:
    files = django_files()
    del files["mysite/settings.py"]
    top = write_tree(tmp_path, {**files, "requirements.txt": "Django\n"})
    with pytest.raises(SourceError, match="settings module mysite.settings not found"):
        inspect_source(top)
    (top / "manage.py").write_text("import django\n")
    with pytest.raises(SourceError, match="sets no DJANGO_SETTINGS_MODULE") as caught:
        inspect_source(top)
    assert "--settings" in caught.value.hint
    (top / "other.py").write_text(SETTINGS)
    assert inspect_source(top, settings="other").app.settings == "other"


def test_no_dependency_file(tmp_path: Path) -> None:
    top = write_tree(tmp_path, django_files())
    with pytest.raises(SourceError, match="no dependency file"):
        inspect_source(top)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({".python-version": "3.12.4\n", "runtime.txt": "python-3.10.1"}, "3.12"),
        ({"runtime.txt": "python-3.12.1\n"}, "3.12"),
        ({"pyproject.toml": '[project]\nname="x"\nrequires-python = "~=3.11.2"\n'}, "3.11"),
        ({}, None),
    ],
)
def test_python_version_sources(tmp_path: Path, files: dict[str, str], expected: str | None) -> None:
    top = write_tree(tmp_path, {**django_files(), "requirements.txt": "Django\n", **files})
    assert inspect_source(top).app.python == expected


def test_unresolvable_settings_keep_defaults_and_warn(tmp_path: Path) -> None:
    settings = 'import os\nWSGI_APPLICATION = "mysite.wsgi.application"\nSTATIC_ROOT = compute()\n' \
               'STATIC_URL = os.environ.get("STATIC_URL", "/assets/")\nMEDIA_ROOT = os.environ.get("M", "/data/m")\n'
    top = write_tree(tmp_path, {**django_files(settings=settings), "requirements.txt": "Django\n"})
    result = inspect_source(top)
    assert result.app.static_root == "/app/staticfiles"
    assert result.app.static_url == "/assets/"
    assert result.app.media_root == "/data/m"
    assert any("STATIC_ROOT" in w and "keeping /app/staticfiles" in w for w in result.warnings)
    assert any("outside the app directory" in w for w in result.warnings)
    assert result.app.health_path == "/"


def test_checkout_clones_a_local_repository_and_reports_a_bad_url(tmp_path: Path) -> None:
    repo = write_tree(tmp_path / "repo", {**django_files(), "requirements.txt": "Django\n"})
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.invalid", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "trunk"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    with checkout(repo.as_uri(), None) as (src, ref):
        assert ref == "trunk"
        assert inspect_source(src).app.builder == "pip"
    assert not src.exists()
    with pytest.raises(SourceError, match="cannot clone"), checkout((tmp_path / "nope").as_uri(), "main"):
        pass


def test_probes_answered_by_a_middleware(tmp_path: Path) -> None:
    top = write_tree(tmp_path, {
        **django_files(), "requirements.txt": "Django\n",
        "mysite/middleware.py": 'PROBES = {"/healthz": a, "/readyz": b, "/metrics": c}\n',
        "mysite/urls.py": 'urlpatterns = [path("admin/", x)]\n',
    })
    app = inspect_source(top).app
    assert (app.health_path, app.ready_path, app.metrics_path) == ("/healthz", "/readyz", "/metrics")


def test_development_settings_give_way_to_the_projects_server_settings(tmp_path: Path) -> None:
    """manage.py of many projects defaults to settings for a developer's machine (sqlite, DEBUG):
    the server runs the project's staging or production module instead, and says so."""
    base = 'WSGI_APPLICATION = "mysite.wsgi.application"\n'
    top = write_tree(tmp_path, {
        **django_files(module="mysite.settings.dev", settings="from .base import *\nDEBUG = True\n"),
        "mysite/settings/__init__.py": "",
        "mysite/settings/base.py": base,
        "mysite/settings/production.py": "from .base import *\nDEBUG = False\n",
        "requirements.txt": "Django\n",
    })
    result = inspect_source(top)
    assert result.app.settings == "mysite.settings.production"
    assert ("settings", "mysite.settings.production", "beside mysite.settings.dev") in result.found
    assert any("runs mysite.settings.dev" in w and "--settings" in w for w in result.warnings)
    # A staging module wins over production; --settings wins over both.
    (top / "mysite/settings/staging.py").write_text("from .production import *\n")
    assert inspect_source(top).app.settings == "mysite.settings.staging"
    assert inspect_source(top, settings="mysite.settings.dev").app.settings == "mysite.settings.dev"
    # Without a server module, manage.py's choice stands.
    (top / "mysite/settings/staging.py").unlink()
    (top / "mysite/settings/production.py").unlink()
    assert inspect_source(top).app.settings == "mysite.settings.dev"


def test_python_of_a_pip_compile_header(tmp_path: Path) -> None:
    """requirements.txt compiled by pip-compile names the Python its pins were resolved for."""
    header = "#\n# This file is autogenerated by pip-compile with Python 3.10\n# by the following command:\n"
    top = write_tree(tmp_path, {**django_files(), "requirements.txt": header + "django==4.2\n"})
    result = inspect_source(top)
    assert result.app.python == "3.10"
    assert ("python", "3.10", "requirements.txt (pip-compile header)") in result.found
    # A runtime.txt says it first.
    (top / "runtime.txt").write_text("python-3.12.1\n")
    assert inspect_source(top).app.python == "3.12"


def test_procfile_line_that_runs_nothing_is_refused(tmp_path: Path) -> None:
    top = write_tree(tmp_path, {**django_files(), "requirements.txt": "Django\n", "Procfile": "web: FOO=bar\n"})
    with pytest.raises(SourceError, match="the web process cannot run: 'FOO=bar' sets variables but runs no command"):
        inspect_source(top)


def test_settings_that_are_not_valid_python_are_named_with_their_line(tmp_path: Path) -> None:
    top = write_tree(tmp_path, {**django_files(settings='ALLOWED_HOSTS = ["a"\nDEBUG = False\n'),
                                "requirements.txt": "Django\n"})
    with pytest.raises(SourceError) as raised:
        inspect_source(top)
    assert "mysite/settings.py (settings mysite.settings) is not valid Python: line 1:" in str(raised.value)

