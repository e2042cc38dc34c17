"""The reference app, run for real: gunicorn + PostgreSQL + Redis on 127.0.0.1."""

from __future__ import annotations

import json
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .harness import APP_DIR, LOCALHOST, App, Postgres, Redis, make_app, wait_until

pytestmark = pytest.mark.services


def metric(app: App, name: str, **labels: str) -> float | None:
    """Value of one series from /metrics, or None when it is absent."""
    resp = app.request("GET", "/metrics")
    assert resp.status == 200
    for line in resp.body.decode().splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return None


def test_healthz_is_plain_ok(app: App) -> None:
    resp = app.request("GET", "/healthz")
    assert resp.status == 200
    assert resp.body == b"ok"


def test_readyz_reports_each_check(app: App) -> None:
    resp = app.request("GET", "/readyz")
    assert resp.status == 200, resp.body
    assert resp.json() == {
        "status": "ok",
        "checks": {"database": {"ok": True}, "redis": {"ok": True}},
    }


def test_probes_answer_any_host_but_the_site_checks_it(app: App) -> None:
    # Docker's healthcheck and Prometheus use the container name as Host.
    for path in ("/healthz", "/readyz", "/metrics"):
        assert app.request("GET", path, headers={"Host": "beryl3-web:8000"}).status == 200
    assert app.request("GET", "/notes/", headers={"Host": "evil.example.test"}).status == 400
    public = app.request(
        "GET",
        "/notes/",
        headers={"Host": "beryl3.staging.example.test", "X-Forwarded-Proto": "https"},
    )
    assert public.status == 200


def test_notes_round_trip_through_postgres(app: App, postgres: Postgres) -> None:
    text = f"note {uuid.uuid4()}"
    created = app.request("POST", "/notes/", {"text": text})
    assert created.status == 201, created.body
    note = created.json()
    assert note["text"] == text and isinstance(note["id"], int)

    listed = app.request("GET", "/notes/").json()["notes"]
    assert listed[0] == note  # newest first
    # And it really is in this project's database.
    stored = postgres.sql(
        f"SELECT text FROM notes_note WHERE id = {note['id']}", database="beryl3_staging"
    )
    assert stored.strip() == text


@pytest.mark.parametrize(
    "body",
    [b"not json", {"text": ""}, {"text": 5}, ["text"], {"other": "x"}],
)
def test_notes_rejects_bad_input(app: App, body: object) -> None:
    resp = app.request("POST", "/notes/", body)
    assert resp.status == 400
    assert "error" in resp.json()


def test_notes_rejects_other_methods(app: App) -> None:
    assert app.request("DELETE", "/notes/").status == 405


def test_cache_round_trip_through_redis(app: App) -> None:
    key = f"k-{uuid.uuid4().hex}"
    assert app.request("GET", f"/cache/{key}").status == 404
    value = {"answer": 42, "list": [1, "two"]}
    put = app.request("PUT", f"/cache/{key}", {"value": value, "timeout": 60})
    assert put.status == 200, put.body
    got = app.request("GET", f"/cache/{key}")
    assert got.status == 200
    assert got.json() == {"key": key, "value": value}
    assert app.request("PUT", f"/cache/{key}", {"value": None}).status == 400
    assert app.request("PUT", f"/cache/{key}", {"value": 1, "timeout": -1}).status == 400


def test_metrics_aggregate_across_workers(app: App) -> None:
    series = "django_http_requests_total_by_view_transport_method_total"
    labels = {"view": "notes", "method": "GET", "transport": "http"}
    before = metric(app, series, **labels) or 0.0

    def pids_serving_notes() -> set[int]:
        return {
            record["pid"]
            for record in map(json.loads, app.stdout_lines())
            if record.get("logger") == "demo.request" and record.get("path") == "/notes/"
        }

    # Concurrent requests so that both sync workers take some; retry a few
    # rounds in the unlikely case one worker took them all.
    sent = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(5):
            statuses = list(pool.map(lambda _: app.request("GET", "/notes/").status, range(40)))
            assert statuses == [200] * 40
            sent += 40
            if len(pids_serving_notes()) >= 2:
                break
    assert len(pids_serving_notes()) >= 2, "all requests went to one worker"
    assert len(list(app.metrics_dir.glob("counter_*.db"))) >= 2

    # Whichever worker answers /metrics reports the sum over all of them.
    after = metric(app, series, **labels)
    assert after == before + sent

    # The instrumented DB engine and cache backend report too.
    assert (
        metric(app, "django_db_new_connections_total", alias="default", vendor="postgresql") or 0
    ) >= 1
    assert (
        metric(app, "django_db_execute_total", alias="default", vendor="postgresql") or 0
    ) >= sent
    app.request("GET", "/cache/metrics-probe")
    assert (metric(app, "django_cache_get_total", backend="redis") or 0) >= 1
    assert metric(app, "demo_app_info", project="beryl3") == 1.0


def test_logs_are_json_lines_with_the_project(app: App) -> None:
    app.request("GET", "/notes/")
    app.request("GET", "/does-not-exist")
    lines = app.stdout_lines()
    assert lines
    records = []
    for line in lines:
        record = json.loads(line)  # every stdout line is one JSON object
        assert record["project"] == "beryl3", line
        for key in ("timestamp", "level", "logger", "message"):
            assert key in record, line
        records.append(record)

    requests = [r for r in records if r["logger"] == "demo.request"]
    not_found = [r for r in requests if r["path"] == "/does-not-exist"]
    assert not_found and not_found[-1]["status"] == 404 and not_found[-1]["method"] == "GET"
    assert isinstance(not_found[-1]["duration_ms"], (int, float))
    # Probes stay out of the INFO stream.
    assert not [r for r in requests if r["path"] in ("/healthz", "/readyz", "/metrics")]
    # gunicorn and the entrypoint speak JSON too.
    assert any(
        r["logger"] == "gunicorn.error" and "Booting worker" in r["message"] for r in records
    )
    assert any(r["logger"] == "entrypoint" for r in records)
    # gunicorn's own access log stays off: the middleware line above replaces it.
    assert not [r for r in records if r["logger"] == "gunicorn.access"]
    assert app.stderr_path.read_text() == ""


def test_admin_and_collected_static(app: App) -> None:
    login = app.request("GET", "/admin/login/")
    assert login.status == 200
    assert b"csrfmiddlewaretoken" in login.body
    static_root = Path(app.env["STATIC_ROOT"])
    assert (static_root / "admin" / "css" / "base.css").is_file()


def test_committed_migrations_match_the_models(app: App) -> None:
    app.manage("makemigrations", "--check", "--dry-run")


def test_readyz_fails_while_redis_is_down(app: App, redis: Redis) -> None:
    redis.stop()
    try:
        resp = app.request("GET", "/readyz")
        assert resp.status == 503
        body = resp.json()
        assert body["status"] == "unavailable"
        assert body["checks"]["database"] == {"ok": True}
        assert body["checks"]["redis"]["ok"] is False
        assert body["checks"]["redis"]["error"]
        assert app.request("GET", "/cache/anything").status == 503
        assert app.request("GET", "/healthz").status == 200  # liveness ignores Redis
    finally:
        redis.start()
    wait_until(
        lambda: app.request("GET", "/readyz").status == 200, 15, "readyz after Redis restart"
    )


def test_second_project_has_its_own_database_and_cache(
    app: App, app_venv: Path, postgres: Postgres, redis: Redis, tmp_path: Path
) -> None:
    """project2 beside beryl3: migrated on start, isolated data."""
    project2 = make_app(
        "project2",
        app_venv,
        postgres,
        redis,
        1,
        tmp_path,
        GUNICORN_WORKERS="1",
        DJANGO_MIGRATE_ON_START="1",
    )
    project2.start()
    try:
        assert project2.request("GET", "/readyz").status == 200
        mine = project2.request("POST", "/notes/", {"text": "only in project2"}).json()
        beryl3_note = app.request("POST", "/notes/", {"text": "only in beryl3"}).json()
        project2_texts = [n["text"] for n in project2.request("GET", "/notes/").json()["notes"]]
        beryl3_texts = [n["text"] for n in app.request("GET", "/notes/").json()["notes"]]
        assert project2_texts == [mine["text"]]
        assert beryl3_note["text"] in beryl3_texts and mine["text"] not in beryl3_texts

        key = f"shared-{uuid.uuid4().hex}"
        assert app.request("PUT", f"/cache/{key}", {"value": "beryl3"}).status == 200
        assert project2.request("GET", f"/cache/{key}").status == 404
        assert metric(project2, "demo_app_info", project="project2") == 1.0
        assert all(json.loads(line)["project"] == "project2" for line in project2.stdout_lines())
    finally:
        project2.stop()


def test_entrypoint_gives_up_on_an_unreachable_database(app: App, tmp_path: Path) -> None:
    closed_port = 1  # nothing listens there
    env = app.full_env() | {
        "DATABASE_URL": f"postgresql://u:very-secret-pw@{LOCALHOST}:{closed_port}/nowhere",
        "DB_WAIT_TIMEOUT": "2",
        "STATIC_ROOT": str(tmp_path / "static"),
    }
    import subprocess

    started = time.monotonic()
    result = subprocess.run(
        ["sh", str(APP_DIR / "docker-entrypoint.sh")],
        cwd=APP_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert time.monotonic() - started < 30
    assert f"{LOCALHOST}:{closed_port}/nowhere not reachable after 2s" in result.stderr
    assert "very-secret-pw" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_missing_secret_key_is_a_clear_error(app: App) -> None:
    env = {k: v for k, v in app.full_env().items() if k != "DJANGO_SECRET_KEY"}
    import subprocess

    result = subprocess.run(
        [str(app.venv / "bin" / "python"), "manage.py", "check"],
        cwd=APP_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_home_page_names_the_project_and_links_its_pages(app: App) -> None:
    resp = app.request(
        "GET", "/", headers={"Host": "beryl3.staging.example.test", "X-Forwarded-Proto": "https"}
    )
    assert resp.status == 200, resp.body
    assert resp.headers["content-type"].startswith("text/html")
    page = resp.body.decode()
    assert re.search(r"<h1>\s*beryl3\s*</h1>", page), page
    for href in ("/notes/", "/readyz", "/healthz", "/admin/"):
        assert f'href="{href}"' in page
