from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings
from prometheus_client import Gauge

# The project name appears once, here, instead of as a label on every series
# (Prometheus attaches the project to the scrape target). A Gauge rather than an
# Info metric because Info does not work in prometheus_client's multiprocess
# mode; "max" merges the per-worker values without adding a pid label.
APP_INFO = Gauge(
    "demo_app_info",
    "The project this app instance serves (value is always 1)",
    ["project"],
    multiprocess_mode="max",
)


class NotesConfig(AppConfig):
    name = "notes"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        APP_INFO.labels(project=settings.PROJECT_NAME).set(1)
