"""How the app entry becomes what the image and the rollout run (stagectl.derived)."""

from __future__ import annotations

import subprocess

import pytest

from stagectl.derived import image_python_version, process_argv, python_version_notes
from stagectl.environment import INVENTORY, load_environment
from tests.conftest import EnvFixture
from tests.unit.test_environment import _edit_yaml, _projects


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        (None, None),
        ("  ", None),
        (
            "gunicorn --config gunicorn.conf.py demo.wsgi:application",
            ["gunicorn", "--config", "gunicorn.conf.py", "demo.wsgi:application"],
        ),
        ("python manage.py rqworker 'high prio'", ["python", "manage.py", "rqworker", "high prio"]),
        # Shell syntax (a Procfile line is a shell command line) goes to sh.
        # A simple command through sh is exec'd by it (the process gets the container's signals).
        ("gunicorn app.wsgi --bind 0.0.0.0:$PORT", ["sh", "-c", "exec gunicorn app.wsgi --bind 0.0.0.0:$PORT"]),
        ("python manage.py migrate && python manage.py loaddata x",
         ["sh", "-c", "python manage.py migrate && python manage.py loaddata x"]),
        # A variable set for the command (Heroku Procfiles do this for celery) needs env after exec.
        ("REMAP_SIGTERM=SIGQUIT celery -A tasks worker",
         ["sh", "-c", "exec env REMAP_SIGTERM=SIGQUIT celery -A tasks worker"]),
    ],
)
def test_process_argv(command: str | None, argv: list[str] | None) -> None:
    assert process_argv(command) == argv


def test_a_procfile_variable_reaches_the_process() -> None:
    argv = process_argv("GREETING=hello env")
    assert argv is not None
    ran = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True)
    assert "GREETING=hello" in ran.stdout.splitlines()


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("python:3.13-slim-bookworm", "3.13"),
        ("docker.io/library/python:3.12", "3.12"),
        ("registry.example:5000/python:3.11-alpine@sha256:" + "0" * 64, "3.11"),
        ("local/python-standin:latest", None),
        ("python", None),
    ],
)
def test_image_python_version(image: str, version: str | None) -> None:
    assert image_python_version(image) == version


def test_python_version_notes_name_the_project_and_both_versions(example_env: EnvFixture) -> None:
    def pythons(data: dict) -> None:  # type: ignore[type-arg]
        _projects(data)[0]["app"] = {"python": "3.11"}
        _projects(data)[1]["app"] = {"python": "3.13"}

    _edit_yaml(example_env.root / INVENTORY, pythons)
    env = load_environment(example_env.root, vault_password_file=example_env.vault_password_file).env
    notes = python_version_notes(env)
    assert len(notes) == 1, notes
    assert notes[0].startswith("project 'beryl3': app.python is 3.11")
    assert "python:3.13-slim-bookworm (Python 3.13)" in notes[0]
