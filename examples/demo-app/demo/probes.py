"""Liveness, readiness and metrics endpoints for Docker, nginx and Prometheus."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django_prometheus.exports import ExportToDjangoView
from django_redis import get_redis_connection


def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: the process answers. Touches no backing service, so a database
    outage does not make Docker restart healthy app containers."""
    return HttpResponse("ok", content_type="text/plain")


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_redis() -> None:
    get_redis_connection("default").ping()


def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: PostgreSQL answers ``SELECT 1`` and Redis answers PING."""
    checks: dict[str, dict[str, Any]] = {}
    for name, check in (("database", _check_database), ("redis", _check_redis)):
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; reported below
            checks[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}".strip()}
        else:
            checks[name] = {"ok": True}
    ready = all(check["ok"] for check in checks.values())
    if not checks["database"]["ok"]:
        # Drop a broken connection now rather than reusing it for conn_max_age.
        connection.close()
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition; aggregates all gunicorn workers when
    PROMETHEUS_MULTIPROC_DIR is set (see gunicorn.conf.py)."""
    return ExportToDjangoView(request)


PROBES = {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics}
