"""Small JSON API proving the app uses its own PostgreSQL (notes) and Redis (cache)."""

from __future__ import annotations

import json
from typing import Any

from django.core.cache import cache
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

from notes.models import Note

MAX_TEXT = 10_000
MAX_KEY = 200
LIST_LIMIT = 100


def _json_body(request: HttpRequest) -> dict[str, Any] | None:
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _note(note: Note) -> dict[str, Any]:
    return {"id": note.pk, "text": note.text, "created_at": note.created_at.isoformat()}


# CSRF-exempt: a machine-to-machine demo API without sessions or cookies.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def notes(request: HttpRequest) -> JsonResponse:
    """GET: the latest notes, newest first. POST {"text": "..."}: create one."""
    if request.method == "GET":
        latest = Note.objects.all()[:LIST_LIMIT]
        return JsonResponse({"notes": [_note(note) for note in latest]})
    body = _json_body(request)
    text = body.get("text") if body else None
    if not isinstance(text, str) or not text.strip():
        return _error('expected a JSON object {"text": "<non-empty string>"}', 400)
    if len(text) > MAX_TEXT:
        return _error(f"text is longer than {MAX_TEXT} characters", 400)
    return JsonResponse(_note(Note.objects.create(text=text)), status=201)


@csrf_exempt
@require_http_methods(["GET", "PUT"])
def cache_entry(request: HttpRequest, key: str) -> JsonResponse:
    """GET: the cached value or 404. PUT {"value": <JSON>, "timeout": seconds?}: store it."""
    if len(key) > MAX_KEY:
        return _error(f"key is longer than {MAX_KEY} characters", 400)
    try:
        if request.method == "GET":
            missing = object()
            value = cache.get(key, missing)
            if value is missing:
                return _error(f"no cached value for {key!r}", 404)
            return JsonResponse({"key": key, "value": value})
        body = _json_body(request)
        # null is refused: the cache cannot tell a stored null from a miss.
        if body is None or body.get("value") is None:
            return _error(
                'expected a JSON object {"value": <non-null JSON>, "timeout": <seconds>}', 400
            )
        timeout = body.get("timeout", 300)
        if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0:
            return _error("timeout must be a positive integer (seconds)", 400)
        cache.set(key, body["value"], timeout=timeout)
        return JsonResponse({"key": key, "value": body["value"], "timeout": timeout})
    except (ConnectionInterrupted, RedisError) as exc:
        return _error(f"cache unavailable: {type(exc).__name__}", 503)
