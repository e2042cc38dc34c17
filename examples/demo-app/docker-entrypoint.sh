#!/bin/sh
# Container entrypoint for the demo app.
#
#   docker-entrypoint.sh              wait for PostgreSQL (bounded), migrate only if
#                                     DJANGO_MIGRATE_ON_START=1, collectstatic, exec gunicorn
#   docker-entrypoint.sh CMD [ARG...] run CMD instead (e.g. the deployment's separate,
#                                     gated `python manage.py migrate --noinput` step)
#
# Environment: DB_WAIT_TIMEOUT (seconds, default 60), DJANGO_MIGRATE_ON_START (default 0),
# plus everything demo/settings.py and gunicorn.conf.py read.
set -eu

APP_DIR=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
cd "$APP_DIR"

# The image installs dependencies into /app/.venv with `uv sync --frozen --no-dev`.
if [ -x "$APP_DIR/.venv/bin/python" ]; then
    PATH="$APP_DIR/.venv/bin:$PATH"
    export PATH
fi

if [ "$#" -gt 0 ]; then
    exec "$@"
fi

# One JSON line, like the app's own logs, so Loki parses the start-up too.
log() {
    printf '{"timestamp": "%s", "level": "%s", "logger": "entrypoint", "message": "%s", "project": "%s", "pid": %s}\n' \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$2" "${PROJECT_NAME:-demo}" "$$"
}

log INFO "waiting for the database (at most ${DB_WAIT_TIMEOUT:-60}s)"
python manage.py wait_for_db --timeout "${DB_WAIT_TIMEOUT:-60}"

if [ "${DJANGO_MIGRATE_ON_START:-0}" = "1" ]; then
    log INFO "applying migrations (DJANGO_MIGRATE_ON_START=1)"
    python manage.py migrate --noinput --verbosity 0
else
    log INFO "not migrating: DJANGO_MIGRATE_ON_START is not 1, migrations run as a separate step"
fi

python manage.py collectstatic --noinput --verbosity 0
log INFO "static files collected into ${STATIC_ROOT:-/app/staticfiles}"

exec gunicorn --config gunicorn.conf.py demo.wsgi:application
