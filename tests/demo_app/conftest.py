"""Session fixtures for the demo app: uv venv, PostgreSQL, Redis, the beryl3 app.

Tests skip, with the reason, when a tool is missing.
"""

from __future__ import annotations

import os
import pwd
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import missing_tool

from .harness import APP_DIR, App, Postgres, Redis, Tools, find_pg_tool, make_app, run


def pytest_configure(config: pytest.Config) -> None:
    # Also registered at the repo root; repeated here so this folder runs alone.
    config.addinivalue_line("markers", "services: needs real PostgreSQL/Redis/uv on this machine")


def has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture(scope="session")
def tools() -> Tools:
    found = {
        "uv": shutil.which("uv"),
        "initdb": find_pg_tool("initdb"),
        "pg_ctl": find_pg_tool("pg_ctl"),
        "psql": find_pg_tool("psql"),
        "redis_server": shutil.which("redis-server"),
    }
    missing = [name.replace("_", "-") for name, path in found.items() if not path]
    if missing:
        missing_tool(
            f"demo app service tests need {', '.join(missing)}: "
            "apt-get install -y postgresql redis-server && pip install uv"
        )
    if os.geteuid() == 0 and not has_user("postgres"):
        missing_tool("initdb refuses root and there is no postgres user: apt-get install postgresql")
    return Tools(**{name: str(path) for name, path in found.items()})


@pytest.fixture(scope="session")
def app_venv(tools: Tools, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The app's dependencies exactly as the image gets them: ``uv sync --frozen --no-dev``."""
    venv = tmp_path_factory.mktemp("demo-app") / "venv"
    # Not the venv pytest itself may run in: uv would warn that it differs.
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"} | {
        "UV_PROJECT_ENVIRONMENT": str(venv),
        # Use the machine's Python; never download an interpreter.
        "UV_PYTHON_DOWNLOADS": "never",
    }
    run([tools.uv, "sync", "--frozen", "--no-dev"], cwd=APP_DIR, env=env, timeout=600)
    return venv


@pytest.fixture(scope="session")
def postgres(tools: Tools) -> Iterator[Postgres]:
    server = Postgres(tools)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis(tools: Tools) -> Iterator[Redis]:
    server = Redis(tools)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def app(
    app_venv: Path, postgres: Postgres, redis: Redis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[App]:
    """beryl3: migrated by a separate step first (as deployments do), two workers."""
    beryl3 = make_app(
        "beryl3",
        app_venv,
        postgres,
        redis,
        0,
        tmp_path_factory.mktemp("apps"),
        GUNICORN_WORKERS="2",
    )
    beryl3.manage("migrate", "--noinput")
    beryl3.start()
    try:
        yield beryl3
    finally:
        beryl3.stop()
