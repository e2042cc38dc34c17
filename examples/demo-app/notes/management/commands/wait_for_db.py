"""``manage.py wait_for_db --timeout 60``: block until PostgreSQL accepts queries.

The entrypoint runs it first: in a fresh stack the app container can start
before PostgreSQL has finished initialising its data directory.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.db.utils import OperationalError

logger = logging.getLogger("demo.startup")


class Command(BaseCommand):
    help = "Wait until the default database accepts connections (bounded by --timeout)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
        parser.add_argument("--interval", type=float, default=1.0, help="seconds between tries")

    def handle(self, *args: Any, timeout: float, interval: float, **options: Any) -> None:
        db = connection.settings_dict
        target = f"{db.get('HOST') or 'localhost'}:{db.get('PORT') or 5432}/{db.get('NAME')}"
        deadline = time.monotonic() + timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                connection.ensure_connection()
                with connection.cursor() as cursor:
                    cursor.execute("SELECT 1")
            except OperationalError as exc:
                connection.close()
                if time.monotonic() + interval > deadline:
                    # Never print DATABASE_URL itself: it carries the password.
                    reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
                    raise CommandError(
                        f"database {target} not reachable after {timeout:g}s ({attempt} tries): "
                        f"{reason}. "
                        "Check DATABASE_URL in the project's .env and that the postgres "
                        "container is running and healthy."
                    ) from exc
                time.sleep(interval)
            else:
                connection.close()
                logger.info("database %s is reachable", target, extra={"attempts": attempt})
                return
