"""gunicorn settings: ``gunicorn -c gunicorn.conf.py demo.wsgi:application``.

Metrics: each worker is a separate process with its own counters, so
prometheus_client runs in multiprocess mode. Every worker writes its values to
files in PROMETHEUS_MULTIPROC_DIR and /metrics (whichever worker answers) sums
them. The directory must be set before any worker imports prometheus_client,
must start empty (stale files from a previous run would be added in), and dead
workers' live gauges must be dropped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# Set here, in the master, before any fork: prometheus_client chooses its
# storage when first imported, and workers inherit the master's environment.
PROMETHEUS_MULTIPROC_DIR = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", "/tmp/prometheus-multiproc"
)

wsgi_app = "demo.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
# Not preloading keeps each worker's imports (and DB connections) after the fork.
preload_app = False
# gunicorn >= 25.1 opens a control socket under $HOME by default; a container
# needs none, and two projects on one host would fight over the same path.
control_socket_disable = True

# Access lines come from demo.middleware.RequestLogMiddleware (JSON, with the
# duration); gunicorn's own messages use the same JSON formatter, on stdout, so
# Loki sees one format. A logconfig_dict switches gunicorn's access log on,
# hence the silenced "gunicorn.access" logger below.
accesslog = None
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
logconfig_dict: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "demo.jsonlog.JsonFormatter"}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json",
        }
    },
    "root": {"handlers": ["stdout"], "level": "INFO"},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": loglevel.upper(), "propagate": False},
        "gunicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
    },
}


def on_starting(server: Any) -> None:
    """Empty the metrics directory (only its contents: it may be a mount point)."""
    directory = Path(PROMETHEUS_MULTIPROC_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    for entry in directory.iterdir():
        if entry.is_file() or entry.is_symlink():
            entry.unlink()


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges; its counters stay so totals never go back."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
