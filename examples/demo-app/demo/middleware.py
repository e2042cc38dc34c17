"""Request logging and probe routing middleware."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from demo.probes import PROBES

logger = logging.getLogger("demo.request")

Handler = Callable[[HttpRequest], HttpResponse]


class RequestLogMiddleware:
    """One JSON log line per request: method, path, status, duration_ms."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        start = time.monotonic()
        response = self.get_response(request)
        duration_ms = round((time.monotonic() - start) * 1000, 2)
        # Probes run every few seconds (Docker healthcheck, Prometheus scrape):
        # keep them out of the INFO stream, visible with DJANGO_LOG_LEVEL=DEBUG.
        level = logging.DEBUG if request.path in PROBES else logging.INFO
        logger.log(
            level,
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": duration_ms,
            },
        )
        return response


class ProbeMiddleware:
    """Answers /healthz, /readyz and /metrics before Host validation.

    Docker's healthcheck and Prometheus address the container by its service
    name or IP, which is not in DJANGO_ALLOWED_HOSTS (the public domain); the
    rest of the site keeps Django's Host check. nginx must not forward these
    paths from the internet.
    """

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path)
        if probe is not None and request.method in ("GET", "HEAD"):
            return probe(request)
        return self.get_response(request)
