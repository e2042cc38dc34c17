"""Settings, read entirely from the environment (the project's ``.env`` on the server).

Names follow the staging documentation: DJANGO_SECRET_KEY, DJANGO_DEBUG,
DJANGO_ALLOWED_HOSTS, DATABASE_URL, REDIS_URL, EMAIL_HOST, EMAIL_PORT,
STATIC_ROOT, MEDIA_ROOT, DJANGO_LOG_LEVEL, PROJECT_NAME.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean: use True or False.")


def env_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def env_required(name: str, example: str, dev_default: str) -> str:
    """A variable production must set; local DEBUG runs get a harmless default."""
    value = os.environ.get(name, "").strip()
    if value:
        return value
    if DEBUG:
        return dev_default
    raise ImproperlyConfigured(
        f"{name} is not set. Set it in the project's .env, e.g. {name}={example} "
        "(only DJANGO_DEBUG=True runs have a default)."
    )


def csrf_origins(hosts: list[str]) -> list[str]:
    """https origins for the allowed hosts: nginx terminates TLS in front of the app."""
    origins = []
    for host in hosts:
        if host == "*":
            continue
        # Django's ".example.com" (domain and subdomains) becomes a wildcard origin.
        origins.append(f"https://*{host}" if host.startswith(".") else f"https://{host}")
    return origins


PROJECT_NAME = os.environ.get("PROJECT_NAME", "demo")

DEBUG = env_bool("DJANGO_DEBUG", default=False)

SECRET_KEY = env_required(
    "DJANGO_SECRET_KEY", "<50 random characters>", "insecure-dev-only-key-" + "x" * 40
)

ALLOWED_HOSTS = env_list(
    env_required(
        "DJANGO_ALLOWED_HOSTS",
        "beryl3.staging.example.com (comma separated)",
        "localhost,127.0.0.1",
    )
)

CSRF_TRUSTED_ORIGINS = env_list(os.environ.get("CSRF_TRUSTED_ORIGINS", "")) or csrf_origins(
    ALLOWED_HOSTS
)

# nginx terminates TLS and forwards the original scheme and host.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = True
# Cookies only over https outside local development (staging is served via TLS).
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
# No SECURE_SSL_REDIRECT: nginx redirects http to https, and the internal
# probes (Docker healthcheck, Prometheus) speak plain http to the app.

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "notes",
]

MIDDLEWARE = [
    # Outermost so it counts every request, including those answered below.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "demo.middleware.RequestLogMiddleware",
    # /healthz, /readyz and /metrics are answered here, before any middleware
    # validates the Host header: probes use container names, not the domain.
    "demo.middleware.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "demo.urls"
WSGI_APPLICATION = "demo.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_required(
            "DATABASE_URL",
            "postgresql://beryl3_user:password@postgres:5432/beryl3_staging",
            "postgresql://postgres@localhost:5432/demo",
        ),
        # Instrumented engine: django_db_* query/connection/error metrics.
        engine="django_prometheus.db.backends.postgresql",
        conn_max_age=60,
        conn_health_checks=True,
    )
}
# Fail fast instead of hanging a worker when the database is unreachable.
DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)

REDIS_URL = env_required("REDIS_URL", "redis://redis:6379/0", "redis://localhost:6379/0")
CACHES = {
    "default": {
        # django-redis wrapped by django_prometheus: django_cache_* hit/miss metrics.
        "BACKEND": "django_prometheus.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SOCKET_CONNECT_TIMEOUT": 2,
            "SOCKET_TIMEOUT": 2,
        },
    }
}

EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))

STATIC_URL = "/static/"
STATIC_ROOT = os.environ.get("STATIC_ROOT", "/app/staticfiles")
MEDIA_URL = "/media/"
MEDIA_ROOT = os.environ.get("MEDIA_ROOT", "/app/media")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR; a management command run with
# it set (e.g. the deployment's migrate step) needs the directory to exist.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

LOG_LEVEL = os.environ.get("DJANGO_LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    # Keep gunicorn's loggers, which gunicorn.conf.py set up before Django loads.
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "demo.jsonlog.JsonFormatter"}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json",
        }
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        # Replace Django's default handlers (console only when DEBUG, mail_admins).
        "django": {"handlers": ["stdout"], "level": LOG_LEVEL, "propagate": False},
        # 4xx are already in the request log; keep 5xx tracebacks.
        "django.request": {"handlers": ["stdout"], "level": "ERROR", "propagate": False},
    },
}
