"""Django settings for boardsite, all configurable from the environment (see README, "Configuration").

Defaults are the local development stack: SQLite, moto's server as AWS, kombu's filesystem transport for Celery.
With ``DJANGO_DEBUG=false`` the production hardening applies and ``manage.py check --deploy`` passes.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from urllib.parse import urlsplit

from boardsite import coldstart

coldstart.pause()  # on Lambda, until the init is over (boardsite/coldstart.py)

import dj_database_url  # noqa: E402 - after the collector is paused

from boardsite import secrets  # noqa: E402
from offload import registry  # noqa: E402
from offload.config import MAIL_FROM_DEFAULT  # noqa: E402

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
# Secrets (boardsite/secrets.py): SecureStrings under BOARDSITE_SSM_PREFIX become environment variables here, or,
# while Lambda takes a SnapStart snapshot, after each restore (then SECRET_KEY stays empty until the hook sets it, and
# Django refuses to use an empty one).
BOARDSITE_SSM_PREFIX = os.environ.get("BOARDSITE_SSM_PREFIX", "")
SECRETS_AFTER_RESTORE = secrets.settings_load(BOARDSITE_SSM_PREFIX)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
SECRET_KEY_FALLBACKS = env_list("DJANGO_SECRET_KEY_FALLBACKS", "")  # the previous key while rotating
if not SECRET_KEY and not SECRETS_AFTER_RESTORE:
    if not DEBUG:
        raise RuntimeError(
            "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is false "
            "(as a SecureString under BOARDSITE_SSM_PREFIX, or in the environment)"
        )
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production-" + "x" * 20
# On Lambda: the API Gateway host pattern and the custom domain, e.g.
# DJANGO_ALLOWED_HOSTS=".execute-api.eu-west-1.amazonaws.com,photos.example.com" (API Gateway sets Host itself).
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]" if DEBUG else "")


def trusted_origins(hosts: list[str]) -> list[str]:
    """HTTPS origins for the site's own names among ``hosts`` (a custom domain, ``.example.com``).

    A same-host POST passes Django's CSRF origin check without any of these; they matter when the Host the function
    sees is not the one in the browser (CloudFront in front of API Gateway forwards the execute-api host). Never the
    shared ``amazonaws.com`` names: trusting ``*.execute-api...`` would trust every API in the region.
    """
    origins = []
    for host in hosts:
        name = host.lstrip(".")
        if not name or host == "*" or name.endswith(".amazonaws.com") or name in ("localhost", "127.0.0.1", "[::1]"):
            continue
        origins.append(f"https://*.{name}" if host.startswith(".") else f"https://{name}")
    return origins


CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "") or ([] if DEBUG else trusted_origins(ALLOWED_HOSTS))

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "boardsite.core",
    "boardsite.mail",
    "boardsite.accounts",
    "boardsite.boards",
    "boardsite.invitations",
    "boardsite.images",
    "boardsite.avatars",
    "boardsite.notifications",
    "boardsite.control",
]
# The local stack's commands (devstack, runjobs): a development package, absent from the Lambda zips.
if importlib.util.find_spec("devstack") is not None:
    INSTALLED_APPS.append("devstack")

MIDDLEWARE = [
    # Pages and JSON compressed (a board page's HTML shrinks about 8 times). Django pads each response with random bytes
    # against BREACH; Zappa base64-encodes a body with a Content-Encoding for API Gateway (binary_support).
    "django.middleware.gzip.GZipMiddleware",
    "boardsite.core.middleware.ApiEdgeMiddleware",  # sees every /api/ answer (errors included) before compression
    "django.middleware.security.SecurityMiddleware",
    "boardsite.core.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Bearer access tokens on /api/ (boardsite/accounts/tokens.py): before any view, so CSRF's check (a view hook) is
    # skipped for them, and the request acts as the token's owner.
    "boardsite.accounts.tokens.BearerTokenMiddleware",
    # Outside PrivatePagesMiddleware, so that its never-cache headers come first on a signed-in person's page.
    "boardsite.images.cdn.CdnCookieMiddleware",
    "boardsite.core.middleware.PrivatePagesMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
WHITENOISE_MIDDLEWARE = "whitenoise.middleware.WhiteNoiseMiddleware"  # right after SecurityMiddleware, when not DEBUG

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
                "boardsite.notifications.context_processors.notifications",
                "boardsite.control.context_processors.alerts",
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
RDS_CA_BUNDLE = Path(__file__).resolve().parent / "rds-ca-bundle.pem"
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{LOCAL_DIR / 'db.sqlite3'}", conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # DATABASE_URL carries no password on Lambda: it comes from SSM (DATABASE_PASSWORD), after a SnapStart restore.
    DATABASES["default"]["PASSWORD"] = DATABASES["default"].get("PASSWORD") or os.environ.get("DATABASE_PASSWORD", "")
    # One connection per process, kept between requests. bench/db_connections.py (local server, no TLS): connecting
    # per request costs ~0.9 ms CPU and ~5-7 ms wall per request against ~0.1 ms / 0.2 ms reusing one (RDS adds TLS
    # and SCRAM to each connect). The price: every live Lambda instance holds one server connection, busy or idle, so
    # cap the function's reserved concurrency below max_connections, or put RDS Proxy in between (DEPLOY.md); set
    # the server's idle_session_timeout to drop those of instances Lambda froze and discarded.
    # DATABASE_CONN_MAX_AGE=0: connect per request (no idle connections, the dearer requests).
    DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("DATABASE_CONN_MAX_AGE", 300))
    # A kept connection may have died while the instance was frozen (server or proxy idle timeout): test it before
    # the first query of a request instead of failing that request (measured: ~0.1 ms CPU, one round trip).
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)  # well inside the 30 s timeout
    # ?sslmode=verify-full (or verify-ca): the server's certificate is checked against RDS's CAs, shipped in the zip
    # (written by `python -m deploy rds-ca`; Lambda has none, nothing downloads at run time). ?sslrootcert= wins.
    if DATABASES["default"]["OPTIONS"].get("sslmode") in ("verify-full", "verify-ca"):
        DATABASES["default"]["OPTIONS"].setdefault("sslrootcert", str(RDS_CA_BUNDLE))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Celery workers and the local runner write from other processes: wait for the lock instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    # Take the write lock when a transaction starts, so the quota checks serialise as SELECT ... FOR UPDATE does on
    # PostgreSQL (SQLite ignores FOR UPDATE; a deferred transaction would let two requests both see room for one).
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
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

# Static files: served by the web function itself with WhiteNoise when DEBUG is off (README, "Static files"):
# collected at package time (deploy.prebuild.web) into STATIC_ROOT, shipped in the zip, content-hashed names cached
# for ten years as immutable, gzip/brotli variants precomputed. Development keeps runserver's finders.
STATIC_URL = os.environ.get("DJANGO_STATIC_URL", "/static/")
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT") or BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "boardsite" / "static"]
if BOARDSITE_SSM_PREFIX:
    MIDDLEWARE.insert(0, "boardsite.secrets.SecretsMiddleware")  # outermost: nothing runs before the secrets are in
if not DEBUG:
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    MIDDLEWARE.insert(MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1, WHITENOISE_MIDDLEWARE)


def whitenoise_prefix(static_url: str, stage: str) -> str:
    """The path WhiteNoise answers under: STATIC_URL's path without the API Gateway stage Zappa strips.

    On the bare execute-api host the pages need ``/<stage>/static/`` (``DJANGO_STATIC_URL``) while the function sees
    PATH_INFO ``/static/`` (Zappa moves the stage into SCRIPT_NAME); with a custom domain both are ``/static/``.
    """
    path = urlsplit(static_url).path or "/static/"
    if stage and path.startswith(f"/{stage}/"):
        path = path[len(stage) + 1 :]
    return path


WHITENOISE_STATIC_PREFIX = whitenoise_prefix(STATIC_URL, os.environ.get("STAGE", ""))  # Zappa sets STAGE
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- AWS (local: moto's server) -------------------------------------------------------------------------------
# The offload functions read the same variables from their own environment (offload/config.py).
AWS_REGION = os.environ.get("AWS_REGION", "us-east-1")
AWS_ENDPOINT_URL = os.environ.get("AWS_ENDPOINT_URL") or None
BOARDSITE_BUCKET = os.environ.get("BOARDSITE_BUCKET", "boardsite-media")
# Each side's deployed function, which the site invokes to redeliver a lost S3 event (the web stage sets
# BOARDSITE_FUNCTIONS_FUNCTION); unset locally, where the event goes to the queue the local runner polls.
LAMBDA_FUNCTIONS = {
    side: os.environ.get(f"BOARDSITE_{stage.upper()}_FUNCTION", "") for side, stage in registry.ZAPPA_STAGES.items()
}
UPLOAD_MAX_BYTES = int(os.environ.get("UPLOAD_MAX_BYTES", 25 * 1024 * 1024))
# The upload-ticket function (issue_upload_ticket on lambda): its address (deployed: the functions stage's function
# URL; `make run`: devstack's server for it) and the key that signs upload grants for it. Only grants: never
# SECRET_KEY, which the functions must not hold (boardsite/images/grants.py, offload/grants.py).
UPLOAD_TICKET_FUNCTION_URL = os.environ.get("UPLOAD_TICKET_FUNCTION_URL", "").strip()
UPLOAD_GRANT_KEY = os.environ.get("UPLOAD_GRANT_KEY", "")
# A profile picture's size cap (ticket and processor: offload/config.py reads the same variable).
AVATAR_MAX_BYTES = int(os.environ.get("AVATAR_MAX_BYTES", 5 * 1024 * 1024))
UPLOAD_TICKET_SECONDS = min(int(os.environ.get("UPLOAD_TICKET_SECONDS", 600)), 600)
IMAGE_URL_SECONDS = int(os.environ.get("IMAGE_URL_SECONDS", 900))
# Image URLs are signed for a window start, so the same photo keeps the same URL (and the browser's cached copy) this
# long; a URL handed out is still valid for at least IMAGE_URL_SECONDS minus this. At most half the lifetime.
IMAGE_URL_WINDOW_SECONDS = int(os.environ.get("IMAGE_URL_WINDOW_SECONDS", 300))
# Optional: variants through a CloudFront distribution instead of presigned S3 URLs (boardsite/images/cdn.py), e.g.
# https://media.photos.example.com. Its cookies need a Domain covering it and the site (photos.example.com); empty
# is the site's host only. The key pair (BOARDSITE_CDN_KEY_ID, BOARDSITE_CDN_PRIVATE_KEY) is read where it is used.
BOARDSITE_CDN_URL = os.environ.get("BOARDSITE_CDN_URL", "").strip().rstrip("/")
BOARDSITE_CDN_COOKIE_DOMAIN = os.environ.get("BOARDSITE_CDN_COOKIE_DOMAIN", "").strip()
# A processing attempt not settled after this long is started again by the sweep (the trigger was lost: an S3 event,
# a Celery message, a request cut off); each further attempt waits twice as long; after the last the photo fails.
PROCESSING_RETRY_SECONDS = int(os.environ.get("PROCESSING_RETRY_SECONDS", 300))
PROCESSING_MAX_ATTEMPTS = int(os.environ.get("PROCESSING_MAX_ATTEMPTS", 4))

# --- Mail: every message goes to the mail job (SES), in its mode ------------------------------------------------
EMAIL_BACKEND = "boardsite.mail.backends.JobEmailBackend"
DEFAULT_FROM_EMAIL = os.environ.get("BOARDSITE_MAIL_FROM") or MAIL_FROM_DEFAULT  # the SES-verified identity
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# The topics the site publishes to (jobs.publish in lambda mode), by the topic's setting: deployed, the web stage sets
# <setting>_ARN; locally the topic provisioning creates on moto (its default account id).
TOPIC_ARNS = {
    topic.setting: os.environ.get(topic.arn_setting)
    or f"arn:aws:sns:{AWS_REGION}:{os.environ.get('MOTO_ACCOUNT_ID', '123456789012')}:{topic.resolved()}"
    for topic in registry.site_topics()
}

# --- Quotas (counted in the database, so every web process and Lambda instance sees the same numbers) -----------
UPLOAD_MAX_OUTSTANDING = int(os.environ.get("UPLOAD_MAX_OUTSTANDING", 20))  # tickets issued, bytes not yet reported
UPLOAD_DAILY_BYTES = int(os.environ.get("UPLOAD_DAILY_BYTES", 10 * 1024**3))  # per person, over the last 24 hours
BOARD_MAX_PHOTOS = int(os.environ.get("BOARD_MAX_PHOTOS", 10_000))
API_MAX_BODY_BYTES = int(os.environ.get("API_MAX_BODY_BYTES", 64 * 1024))  # JSON bodies are tiny; larger is a 413

# --- Content-Security-Policy (django-csp) --------------------------------------------------------------------------
# Only what the site uses. The bucket's origin (images, uploads) is added per response from the S3 client's own
# presigned URLs, and BOARDSITE_CDN_URL's to img-src: boardsite.core.middleware.ContentSecurityPolicyMiddleware.


def static_origin(static_url: str) -> list[str]:
    """``["https://cdn.example.com"]`` for an absolute STATIC_URL, ``[]`` for a path on this site."""
    parts = urlsplit(static_url)
    if not parts.netloc:
        return []
    return [f"{parts.scheme}://{parts.netloc}" if parts.scheme else parts.netloc]


_STATIC_ORIGIN = static_origin(STATIC_URL)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", *_STATIC_ORIGIN],
        "style-src": ["'self'", *_STATIC_ORIGIN],
        "img-src": ["'self'", "data:", *_STATIC_ORIGIN],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
}

# --- Where each job runs: "inline" | "celery" | "lambda" (see offload/registry.py) ---------------------------------
# Each job's default_mode, unless OFFLOAD_MODES="job=mode,..." says otherwise (boardsite.E001-E005 check the result).
OFFLOAD_MODES = {name: job.default_mode for name, job in registry.JOBS.items()}
OFFLOAD_MODES.update(registry.parse_modes(os.environ.get("OFFLOAD_MODES", "")))
# Where a job's work goes when Lambda keeps throttling the site's own invocations (boardsite/core/invoke.py):
# OFFLOAD_FALLBACKS="process_image=celery".
OFFLOAD_FALLBACKS = registry.parse_modes(os.environ.get("OFFLOAD_FALLBACKS", ""))
# Jobs kept on their OFFLOAD_MODES mode whatever staff route at run time (boardsite/core/routing.py).
OFFLOAD_PINNED = frozenset(name.strip() for name in os.environ.get("OFFLOAD_PINNED", "").split(",") if name.strip())
# The Celery app jobs in celery mode are sent to (loaded on the first such job: boardsite.core.jobs).
OFFLOAD_CELERY_APP = "boardsite.celery.app"

# --- The migration control room (boardsite/control/) ---------------------------------------------------------
# List prices, us-east-1, as published on the AWS Lambda and EC2 pricing pages on PRICES_DATE; an operator in another
# region or with other instances sets their own (boardsite/control/costs.py says how each is used).
PRICES_DATE = "2026-12-01"
LAMBDA_PRICES = {
    "per_request": 0.20 / 1_000_000,
    "per_gb_second": {"x86_64": 0.0000166667, "arm64": 0.0000133334},
    "free_requests": 1_000_000,  # a month, per account
    "free_gb_seconds": 400_000,
}
CELERY_FLEET = {
    "worker_hourly": 0.0168,  # t4g.small on demand: 2 vCPU, 2 GiB
    "concurrency": 2,  # processes per worker
    "target_utilisation": 0.6,  # busy share of a worker at which the fleet adds one
    "min_workers": 1,  # the fleet keeps this many whatever the load
}
# The automatic rollback (boardsite/control/watch.py): compare a canary with its baseline over this window, once
# there are this many canary runs; trip when its error rate is this many points higher, or its p95 this many times.
ROLLBACK_WINDOW_SECONDS = 15 * 60
ROLLBACK_MIN_RUNS = 50
ROLLBACK_ERROR_POINTS = 2.0
ROLLBACK_P95_FACTOR = 2.0
# A photo whose processing never finished keeps its original this long: staff may process it again.
FAILED_RETRY_DAYS = 7
# Photos deleted or moved together (boardsite/images/bulk.py): at most this many per request, and this long to undo
# (deleted ones stay hidden meanwhile and go after it).
BULK_MAX_PHOTOS = 500
BULK_UNDO_SECONDS = int(os.environ.get("BULK_UNDO_SECONDS", 8))
# Run records older than this are deleted by the watch.
RUNS_KEEP_DAYS = 30

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

# --- Mail limits (confirmation links, password resets; the mail itself: EMAIL_BACKEND above) -----------------------
PASSWORD_RESET_RATE = os.environ.get("PASSWORD_RESET_RATE", "") or None  # mails asked per network/address; SIGNUP_RATE
EMAIL_CONFIRM_MAX_AGE = int(os.environ.get("EMAIL_CONFIRM_MAX_AGE", 3 * 24 * 3600))  # confirmation links' lifetime
EMAIL_UNDO_MAX_AGE = int(os.environ.get("EMAIL_UNDO_MAX_AGE", 7 * 24 * 3600))  # the old address can undo a change
# Invitations to a board by address (boardsite/invitations): the link's lifetime, invitations each owner may send and
# each may send to one address (per owner: one owner must not use up an address's invitations for everyone), and the
# floor every answer is padded to (an owner must not time which addresses have accounts).
INVITATION_MAX_AGE = int(os.environ.get("INVITATION_MAX_AGE", 7 * 24 * 3600))
INVITE_RATE_OWNER = os.environ.get("INVITE_RATE_OWNER", "30/h")
INVITE_RATE_ADDRESS = os.environ.get("INVITE_RATE_ADDRESS", "5/d")
INVITATION_MIN_SECONDS = float(os.environ.get("INVITATION_MIN_SECONDS", 0.25))
# A password-reset answer takes at least this long whether or not the address is an account's (its mail is handed
# on only then): the time does not tell. Raise it if the log says an answer took longer.
PASSWORD_RESET_MIN_SECONDS = float(os.environ.get("PASSWORD_RESET_MIN_SECONDS", 0.25))
REAUTH_RATE = os.environ.get("REAUTH_RATE", "5/15m")  # wrong current passwords per session (address/password change)
# Links in mail sent with no request at hand (scheduled jobs): the site's public address. Deployed: the stage sets it.
SITE_URL = os.environ.get("BOARDSITE_SITE_URL") or f"http://127.0.0.1:{os.environ.get('BOARDSITE_PORT', '8000')}"
# Notifications (README, "Notifications"): a burst of "photos added" is mailed once quiet this long; unsubscribe
# links in mail work this long.
NOTIFY_BURST_SECONDS = int(os.environ.get("NOTIFY_BURST_SECONDS", 180))
NOTIFY_BURST_MAX_SECONDS = int(os.environ.get("NOTIFY_BURST_MAX_SECONDS", 900))  # ... but at most this after its first
UNSUBSCRIBE_MAX_AGE = int(os.environ.get("UNSUBSCRIBE_MAX_AGE", 180 * 24 * 3600))

# --- Accounts: one person per name, log-in and sign-up throttling (README, "Accounts and sign-in protection") ------
INSTALLED_APPS += ["axes", "django_ratelimit"]
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]  # last: it turns a lock-out into the log-in page with a 429
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses locked-out accounts and addresses before any password check
    "boardsite.accounts.backends.UsernameKeyBackend",  # finds the account by canonical name
]
# Shared by every web process and Lambda instance: Redis when CACHE_URL is set, else a table in the database.
CACHE_URL = os.environ.get("CACHE_URL", "")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
        if CACHE_URL
        else {
            "BACKEND": "boardsite.accounts.cache.AtomicIncrDatabaseCache",
            "LOCATION": "boardsite_cache",
            # Past this many rows the expired ones are deleted (accounts/cache.py: never live counters, which
            # Django's own culling would drop a third of, letting anyone wipe every throttle with made-up keys).
            "OPTIONS": {"MAX_ENTRIES": 50_000},
        }
    )
}
# django-ratelimit knows neither backend by name (W001): Django's RedisCache increments with Redis' INCR, and
# AtomicIncrDatabaseCache with a compare-and-swap UPDATE (boardsite/accounts/cache.py), so both are atomic and shared.
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"]
SIGNUP_RATE = os.environ.get("SIGNUP_RATE", "10/h")  # sign-up attempts per client address
# Upload tickets issued (POST /api/uploads) per person, and per access token: one script cannot fill the bucket, and a
# burst of a few hundred photos from the page or the client still passes (429 with Retry-After past it).
UPLOAD_TICKET_RATE_USER = os.environ.get("UPLOAD_TICKET_RATE_USER", "600/m")
UPLOAD_TICKET_RATE_TOKEN = os.environ.get("UPLOAD_TICKET_RATE_TOKEN", "300/m")
# GET /api/images?verify=1 asks storage about each id: per client address, and each answer kept this long.
STATUS_VERIFY_RATE = os.environ.get("STATUS_VERIFY_RATE", "20/m")
STATUS_VERIFY_CACHE_SECONDS = int(os.environ.get("STATUS_VERIFY_CACHE_SECONDS", 60))
LOGIN_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", 5))
LOGIN_LOCKOUT_SECONDS = int(os.environ.get("LOGIN_LOCKOUT_SECONDS", 60))  # the first lock-out; each next one doubles
LOGIN_LOCKOUT_MAX_SECONDS = int(os.environ.get("LOGIN_LOCKOUT_MAX_SECONDS", 3600))
# A browser that logged in to an account is not locked out by others' failures for it (accounts.throttle).
LOGIN_DEVICE_COOKIE_AGE = int(os.environ.get("LOGIN_DEVICE_COOKIE_AGE", 365 * 24 * 3600))
# Axes' database handler (state in the shared database, not process memory); a known device's failures are its own.
AXES_HANDLER = "boardsite.accounts.throttle.ThrottleHandler"
# Address and account, each locked out on its own (not only the pair); a known device of the account: the device.
AXES_LOCKOUT_PARAMETERS = "boardsite.accounts.throttle.lockout_parameters"
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = "boardsite.accounts.throttle.cool_off"  # growing lock-outs, see that module
AXES_USE_ATTEMPT_EXPIRATION = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_USERNAME_CALLABLE = "boardsite.accounts.throttle.axes_username"  # the canonical name
AXES_CLIENT_IP_CALLABLE = "boardsite.accounts.throttle.client_address"  # REMOTE_ADDR, never X-Forwarded-For
AXES_LOCKOUT_CALLABLE = "boardsite.accounts.throttle.lockout_response"
AXES_VERBOSE = False
AXES_DISABLE_ACCESS_LOG = True  # a row per successful log-in, never read or cleaned: keep only what throttling needs

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
