"""One JSON object per log line, for Loki.

Used by both Django's LOGGING and gunicorn's ``logconfig_dict`` so that every
line the container prints on stdout has the same shape.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter


class JsonFormatter(_JsonFormatter):
    """JSON formatter with stable field names and the project on every line.

    Fields: ``timestamp`` (RFC 3339, UTC, milliseconds), ``level``, ``logger``,
    ``message``, ``project``, ``pid``, then whatever ``extra={...}`` a call
    passes (the request middleware adds ``method``, ``path``, ``status``,
    ``duration_ms``).
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", "%(levelname)s %(name)s %(message)s %(process)d")
        kwargs.setdefault(
            "rename_fields",
            {"levelname": "level", "name": "logger", "process": "pid"},
        )
        # Read from the environment rather than settings: gunicorn's master
        # configures logging before Django is loaded.
        kwargs.setdefault("static_fields", {"project": os.environ.get("PROJECT_NAME", "demo")})
        super().__init__(**kwargs)

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        # First key, same format as the entrypoint's lines: easy to read raw.
        created = datetime.fromtimestamp(record.created, tz=UTC)
        log_data["timestamp"] = created.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        super().add_fields(log_data, record, message_dict)
