"""Django settings for boardsite, all configurable from the environment (see README, "Configuration").

Defaults are the local development stack: SQLite, moto's server as AWS, kombu's filesystem transport for Celery.
With ``DJANGO_DEBUG=false`` the production hardening applies and ``manage.py check --deploy`` passes.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

from offload.config import queue_name

BASE_DIR = Path(__file__).resolve().parent.parent
LOCAL_DIR = Path(os.environ.get("BOARDSITE_LOCAL_DIR", BASE_DIR / ".local"))


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise RuntimeError("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is false")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production-" + "x" * 20
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "boardsite.core",
    "boardsite.accounts",
    "boardsite.boards",
    "boardsite.images",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "boardsite.urls"
WSGI_APPLICATION = "boardsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "boardsite" / "templates"],
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


def _local_folder(path: Path) -> None:
    # The SQLite file and the embedded Celery transport live here; on Lambda the code folder is read-only.
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass


_local_folder(LOCAL_DIR)
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{LOCAL_DIR / 'db.sqlite3'}", conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Celery workers and the local runner write from other processes: wait for the lock instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # A file, not :memory:, so that tests can share the test database with real worker processes.
    DATABASES["default"]["TEST"] = {"NAME": str(LOCAL_DIR / "test-db.sqlite3")}
# Set by the test suite (tests/isolation.py) to a per-run id: two runs at once never share a test database.
TEST_RUN = os.environ.get("BOARDSITE_TEST_RUN", "")
if TEST_RUN and DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{TEST_RUN}"}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = os.environ.get("DJANGO_STATIC_URL", "/static/")
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "boardsite" / "static"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- AWS (local: moto's server) -------------------------------------------------------------------------------
# The offload functions read the same variables from their own environment (offload/config.py).
AWS_REGION = os.environ.get("AWS_REGION", "us-east-1")
AWS_ENDPOINT_URL = os.environ.get("AWS_ENDPOINT_URL") or None
BOARDSITE_BUCKET = os.environ.get("BOARDSITE_BUCKET", "boardsite-media")
BOARDSITE_RESULTS_QUEUE = queue_name("BOARDSITE_RESULTS_QUEUE")
BOARDSITE_UPLOADS_QUEUE = queue_name("BOARDSITE_UPLOADS_QUEUE")  # local S3 events
# Deployed functions the site may invoke itself (the sweep redelivering a lost S3 event); unset locally.
LAMBDA_FUNCTIONS = {"process_image": os.environ.get("PROCESS_IMAGE_FUNCTION", "")}
UPLOAD_MAX_BYTES = int(os.environ.get("UPLOAD_MAX_BYTES", 25 * 1024 * 1024))
UPLOAD_TICKET_SECONDS = min(int(os.environ.get("UPLOAD_TICKET_SECONDS", 600)), 600)
IMAGE_URL_SECONDS = int(os.environ.get("IMAGE_URL_SECONDS", 900))
PROCESSING_GIVE_UP_SECONDS = int(os.environ.get("PROCESSING_GIVE_UP_SECONDS", 1800))

# --- Where each job runs: "inline" | "celery" | "lambda" (see offload/registry.py) ---------------------------------
# OFFLOAD_MODES="process_image=celery,apply_image_result=celery" overrides these.
OFFLOAD_MODES = {"process_image": "lambda", "apply_image_result": "lambda", "sweep_uploads": "lambda"}
for _item in env_list("OFFLOAD_MODES", ""):
    _job, _, _mode = _item.partition("=")
    OFFLOAD_MODES[_job.strip()] = _mode.strip()

# --- Celery ----------------------------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(LOCAL_DIR / "celery"),
        "data_folder_out": str(LOCAL_DIR / "celery"),
        "processed_folder": str(LOCAL_DIR / "celery-processed"),
        "control_folder": str(LOCAL_DIR / "celery-control"),
        "store_processed": False,
        "polling_interval": 0.2,
    }
    if CELERY_BROKER_URL == "filesystem://"
    else {}
)
if TEST_RUN and CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Two test runs on one Redis: each run's worker takes only its own run's tasks.
    CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = f"boardsite-test-{TEST_RUN}:"
if CELERY_BROKER_URL == "filesystem://":
    for _folder in CELERY_BROKER_TRANSPORT_OPTIONS.values():
        if isinstance(_folder, str):
            _local_folder(Path(_folder))
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True  # a worker dying mid-job leaves the task for another
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"botocore": {"level": "WARNING"}, "urllib3": {"level": "WARNING"}},
}

# --- Production hardening (passes `manage.py check --deploy`) ---------------------------------------------------
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", 31536000))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"
CSRF_FAILURE_VIEW = "boardsite.core.views.csrf_failure"
