"""Settings for the OCPI platform: everything comes from the environment (see .env.example).

Importing this module never fails; insecure development defaults are refused by the deploy
checks in ``ocpi_platform/checks.py`` (``manage.py check --deploy``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file() and not os.environ.get("OCPI_IGNORE_DOTENV"):
    env.read_env(str(BASE_DIR / ".env"))


def env_secret(name: str, default: str) -> str:
    """Read a secret from NAME, or from the file named by NAME_FILE (container secrets)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return str(env.str(name, default=default))


INSECURE_PREFIX = "insecure-dev-only"

# Where the embedded default keeps its SQLite database and its broker folders.
DATA_DIR = Path(env.str("OCPI_DATA_DIR", default=str(BASE_DIR / "var")))
PORT = env.int("PORT", default=8000)

SECRET_KEY = env_secret("DJANGO_SECRET_KEY", f"{INSECURE_PREFIX}-django-secret-key")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_celery_beat",
    "ocpi_platform.apps.OcpiPlatformConfig",
    "credentials",
    "hubclientinfo",
    "kit",
    "locations",
    "outbox",
    "tariffs",
    "tokens",
]

MIDDLEWARE = [
    "ocpi_platform.ocpi.headers.OcpiHeadersMiddleware",
    "ocpi_platform.ocpi.middleware.OcpiInboundMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "ocpi_platform.ocpi.browser.BrowserSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "ocpi_platform.ocpi.browser.BrowserCsrfViewMiddleware",
    "ocpi_platform.ocpi.browser.BrowserAuthenticationMiddleware",
    "ocpi_platform.ocpi.browser.BrowserMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# OCPI clients PUT/PATCH/POST to paths with or without a trailing slash: never redirect.
APPEND_SLASH = False

ROOT_URLCONF = "ocpi_platform.urls"
WSGI_APPLICATION = "ocpi_platform.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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
    "default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web server, worker and beat share the file: wait for locks instead of failing at once.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    )

else:
    # Keep connections between requests (a new PostgreSQL connection costs more than a page).
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend whose health check skips a connection that worked a moment ago.
        DATABASES["default"]["ENGINE"] = "ocpi_platform.db.postgresql"
        # Django turns psycopg's prepared statements off (prepare_threshold None). Only the
        # hot-path reads that ask for one (ocpi_platform/db/prepared.py) are prepared: the
        # threshold of the automatic ones is out of reach. Behind a pooler in transaction mode
        # (PgBouncer before 1.21) set DATABASE_PREPARED_STATEMENTS=false.
        if env.bool("DATABASE_PREPARED_STATEMENTS", default=True):
            DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
                "prepare_threshold", 2**31 - 1
            )
# A connection that worked in a request that ended less than this many seconds ago is not
# asked SELECT 1 before the next one (ocpi_platform/db/postgresql/base.py).
DATABASE_HEALTH_CHECK_IDLE_SECONDS = env.float("DATABASE_HEALTH_CHECK_IDLE_SECONDS", default=1.0)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["ocpi_platform.ocpi.authentication.OcpiTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["ocpi_platform.ocpi.permissions.RegisteredPartyOnly"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["ocpi_platform.ocpi.envelope.OcpiJsonParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "ocpi_platform.ocpi.envelope.OcpiJsonOnly",
    "EXCEPTION_HANDLER": "ocpi_platform.ocpi.envelope.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "UNAUTHENTICATED_TOKEN": None,
}

# --- Celery -------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = DATA_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 120
CELERY_TASK_TIME_LIMIT = 150
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Wake outbox drains whose backoff is over or whose worker died (its lease ran out).
OCPI_OUTBOX_SWEEP_SECONDS = env.float("OCPI_OUTBOX_SWEEP_SECONDS", default=2.0)
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "outbox-sweep": {
        "task": "outbox.tasks.sweep",
        "schedule": OCPI_OUTBOX_SWEEP_SECONDS,
        "options": {"expires": max(OCPI_OUTBOX_SWEEP_SECONDS * 0.9, 1.0)},
    },
}
# Beat keeps its schedule in the database (django-celery-beat): operators see and change it in
# the admin. The entries above are written there each time beat starts.
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
DJANGO_CELERY_BEAT_TZ_AWARE = True

# --- OCPI ---------------------------------------------------------------------------------
# Base URL under which partners reach this platform (no trailing slash needed).
OCPI_PUBLIC_URL = env.str("OCPI_PUBLIC_URL", default=f"http://127.0.0.1:{PORT}").rstrip("/")
# Our own parties: "CC:PID:ROLE" entries, comma separated (e.g. "NL:ABC:CPO,NL:ABC:EMSP").
OCPI_PARTIES = env.str("OCPI_PARTIES", default="NL:ABC:CPO,NL:ABC:EMSP")
OCPI_BUSINESS_NAME = env.str("OCPI_BUSINESS_NAME", default="OCPI Platform")
OCPI_BUSINESS_WEBSITE = env.str("OCPI_BUSINESS_WEBSITE", default="")
# Key of the HMAC that stores the tokens partners present to us (never stored in plain text).
OCPI_TOKEN_HMAC_KEY = env_secret("OCPI_TOKEN_HMAC_KEY", f"{INSECURE_PREFIX}-token-hmac-key")
# Fernet key(s), comma separated, newest first: encrypt the tokens partners gave us.
OCPI_TOKEN_ENCRYPTION_KEYS = env_secret(
    "OCPI_TOKEN_ENCRYPTION_KEYS", "aW5zZWN1cmUtZGV2LW9ubHktZmVybmV0LWtleS0wMDA="
)
# How long an inbound token stays valid after a rotation replaced it.
OCPI_TOKEN_GRACE_SECONDS = env.int("OCPI_TOKEN_GRACE_SECONDS", default=300)
# Outbound HTTP timeouts (seconds). Registration POST/PUT include two callbacks: longer read.
OCPI_HTTP_CONNECT_TIMEOUT = env.float("OCPI_HTTP_CONNECT_TIMEOUT", default=5.0)
OCPI_HTTP_READ_TIMEOUT = env.float("OCPI_HTTP_READ_TIMEOUT", default=20.0)
OCPI_HTTP_HANDSHAKE_TIMEOUT = env.float("OCPI_HTTP_HANDSHAKE_TIMEOUT", default=60.0)
# Page size cap of our list endpoints (announced in X-Limit).
OCPI_PAGE_LIMIT = env.int("OCPI_PAGE_LIMIT", default=100)
# Seconds a web process serves the locations sender list from its copy before it asks the
# database what changed (0: every page is read from the database).
OCPI_LIST_CACHE_SECONDS = env.float("OCPI_LIST_CACHE_SECONDS", default=1.0)
# Seconds a resolved partner token is reused by a web process (0: look it up every request).
# A token revoked by another process keeps working there for at most this long.
OCPI_AUTH_CACHE_SECONDS = env.float("OCPI_AUTH_CACHE_SECONDS", default=2.0)
# Push outbox: seconds to wait after the 1st, 2nd, ... consecutive transient failure of a
# partner (the last value repeats while the partner stays unreachable).
OCPI_OUTBOX_BACKOFF = tuple(
    env.list("OCPI_OUTBOX_BACKOFF", cast=float, default=[5, 15, 30, 60, 120, 300, 600, 900])
)
# --- Liveness (HubClientInfo status of partners) ---
# Beat runs the ping every OCPI_PING_INTERVAL_SECONDS; a partner not seen (no request from it, no
# successful call to it) for OCPI_PING_IDLE_SECONDS gets a GET on its versions endpoint;
# OCPI_PING_FAILURES consecutive failures make it OFFLINE, the first success CONNECTED again.
OCPI_PING_INTERVAL_SECONDS = env.float("OCPI_PING_INTERVAL_SECONDS", default=60.0)
OCPI_PING_IDLE_SECONDS = env.float("OCPI_PING_IDLE_SECONDS", default=300.0)
OCPI_PING_FAILURES = env.int("OCPI_PING_FAILURES", default=3)
OCPI_PING_TIMEOUT_SECONDS = env.float("OCPI_PING_TIMEOUT_SECONDS", default=10.0)
# A web process writes "seen" (last_connection) at most once per partner in this many seconds.
OCPI_SEEN_THROTTLE_SECONDS = env.float("OCPI_SEEN_THROTTLE_SECONDS", default=30.0)
# Where the locks of periodic work live (one ping run at a time): a Redis URL, by default the
# broker's when it is Redis; empty: a file lock in OCPI_DATA_DIR (one machine, embedded setup).
OCPI_LOCK_URL = env.str(
    "OCPI_LOCK_URL",
    default=CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis", "rediss")) else "",
)
CELERY_BEAT_SCHEDULE["partner-ping"] = {
    "task": "credentials.tasks.ping_idle_partners",
    "schedule": OCPI_PING_INTERVAL_SECONDS,
    "options": {"expires": max(OCPI_PING_INTERVAL_SECONDS * 0.9, 1.0)},
}
# Who resolves the Authorization header to a partner (the core knows no app).
OCPI_TOKEN_RESOLVER = "credentials.tokens.resolve_principal"  # noqa: S105

# Partners and operators reach us under the public URL: accept its host, trust its origin.
_public = urlsplit(OCPI_PUBLIC_URL)
if _public.hostname and _public.hostname not in ALLOWED_HOSTS and "*" not in ALLOWED_HOSTS:
    ALLOWED_HOSTS.append(_public.hostname)
if f"{_public.scheme}://{_public.netloc}" not in CSRF_TRUSTED_ORIGINS:
    CSRF_TRUSTED_ORIGINS.append(f"{_public.scheme}://{_public.netloc}")
if _public.scheme == "https":
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto.
if env.bool("DJANGO_BEHIND_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Logging: one line per record, never a token value (see credentials.tokens) -------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}

if not DEBUG:
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
    }

# --- Outbound URL policy (SSRF guard; see ocpi_platform/ocpi/urlpolicy.py) ------------------
# Partner URLs are called over https only and never at a loopback, private, link-local,
# unique-local, multicast or unspecified address (checked on the resolved addresses at connect
# time). Plain http and loopback only when OCPI_PUBLIC_URL itself is http on loopback.
# OCPI_OUTBOUND_ALLOWED: comma list of host names (*.vpn.example for the names under it) and
# networks (10.8.0.0/16) allowed despite the address rules, e.g. a partner on a VPN.
OCPI_OUTBOUND_ALLOWED = env.list("OCPI_OUTBOUND_ALLOWED", default=[])

# --- Outbox: delivery lease (hardening) ------------------------------------------------------
# Seconds a drain holds a partner's outbox without renewing it (it renews after each row and
# every third of this while a request runs). A drain killed with its worker blocks the partner
# for at most this long; with the sweep interval it bounds how soon deliveries resume.
OCPI_OUTBOX_LEASE_SECONDS = env.float("OCPI_OUTBOX_LEASE_SECONDS", default=6.0)

# --- Inbound requests (ocpi_platform/ocpi/middleware.py, envelope.OcpiJsonParser) ------------
# Largest request body accepted under /ocpi/, bytes; larger ones get HTTP 413 before being read.
OCPI_MAX_BODY_BYTES = env.int("OCPI_MAX_BODY_BYTES", default=4 * 1024 * 1024)
# Deepest nesting of arrays/objects in a request body; deeper is refused (HTTP 400, 2001).
OCPI_MAX_JSON_DEPTH = env.int("OCPI_MAX_JSON_DEPTH", default=64)
# OPTIONS is answered by the inbound middleware with the envelope: no DRF metadata (docstrings).
REST_FRAMEWORK["DEFAULT_METADATA_CLASS"] = None

# --- Housekeeping (retention of what is done) -----------------------------------------------
# SENT/CANCELLED deliveries, partner events, status changes (the newest per partner stays) and
# finished jobs older than this many days are deleted by an hourly beat task, in batches.
# FAILED deliveries stay until an operator handled them.
OCPI_RETENTION_DAYS = env.float("OCPI_RETENTION_DAYS", default=30.0)
CELERY_BEAT_SCHEDULE["housekeeping-prune"] = {
    "task": "ocpi_platform.tasks.prune_done_rows",
    "schedule": 3600.0,
    "options": {"expires": 3000},
}

# --- Outbound client: answer size (ocpi_platform/ocpi/client.py) ----------------------------
# Largest answer (decoded body) read from a partner, bytes; a larger one is refused without
# reading the rest (PartnerProtocolError). 16 MiB holds a page of 1000 large locations.
OCPI_HTTP_MAX_RESPONSE_BYTES = env.int("OCPI_HTTP_MAX_RESPONSE_BYTES", default=16 * 1024 * 1024)

# --- Credentials: partner jobs whose worker died (credentials/handshake.py) -----------------
# A connect, rotate, unregister or refresh job still RUNNING 180 s after its start (its task's
# hard time limit, 150 s, plus a margin) lost its worker: this beat task fails it, and a dead
# connect leaves the partner FAILED with its token revoked, so the operator can connect again.
CELERY_BEAT_SCHEDULE["partner-job-sweep"] = {
    "task": "credentials.tasks.fail_dead_partner_jobs",
    "schedule": 60.0,
    "options": {"expires": 54},
}

# --- Cockpit and monitoring (issue 13: dashboard, /healthz, /readyz, /metrics, browser fixes) -
# The cockpit app goes first: its admin templates (dashboard index, header) win.
INSTALLED_APPS.insert(0, "cockpit")
# Counts inbound OCPI requests by module, method and status for /metrics (first: sees all).
MIDDLEWARE.insert(0, "cockpit.middleware.InboundMetricsMiddleware")
# Admin dates as 2026-12-01 13:05:00 UTC (with the zone), whatever the locale's defaults.
FORMAT_MODULE_PATH = ["cockpit.formats"]
# Two instances on one host (127.0.0.1:8001 and :8002) must not share their cookies (cookies
# ignore the port): the names carry the instance, from OCPI_PUBLIC_URL's host and port.
OCPI_COOKIE_PREFIX = env.str(
    "OCPI_COOKIE_PREFIX",
    default="ocpi_" + "_".join(filter(None, re.split(r"[^A-Za-z0-9]+", _public.netloc))),
)
SESSION_COOKIE_NAME = f"{OCPI_COOKIE_PREFIX}_sessionid"
CSRF_COOKIE_NAME = f"{OCPI_COOKIE_PREFIX}_csrftoken"
# https public URL: redirect plain http to https and send HSTS (check --deploy W004/W008).
# Behind a TLS-terminating proxy set DJANGO_BEHIND_PROXY=1 too, or every request redirects.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=_public.scheme == "https")
SECURE_HSTS_SECONDS = env.int(
    "DJANGO_SECURE_HSTS_SECONDS", default=31_536_000 if _public.scheme == "https" else 0
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
# Load balancers probe over plain http: the probes are not redirected.
SECURE_REDIRECT_EXEMPT = [r"^healthz/?$", r"^readyz/?$", r"^metrics/?$"]
# Quiet starts: the covering index of locations is a PostgreSQL optimisation (SQLite ignores
# it), and kombu's filesystem broker needs no host but warns without one.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    SILENCED_SYSTEM_CHECKS = ["models.W040"]
if CELERY_BROKER_URL == "filesystem://":
    CELERY_BROKER_URL = "filesystem://localhost/"
# /metrics answers only "Authorization: Bearer <OCPI_METRICS_TOKEN>"; empty: /metrics is off.
OCPI_METRICS_TOKEN = env_secret("OCPI_METRICS_TOKEN", "")
# Beat sends the heartbeat task every OCPI_HEARTBEAT_SECONDS; /readyz fails "worker" when no
# worker ran it for OCPI_READY_WORKER_SECONDS, and "beat" when beat's scheduler has not ticked
# for OCPI_READY_BEAT_SECONDS.
OCPI_HEARTBEAT_SECONDS = env.float("OCPI_HEARTBEAT_SECONDS", default=30.0)
OCPI_READY_WORKER_SECONDS = env.float("OCPI_READY_WORKER_SECONDS", default=120.0)
OCPI_READY_BEAT_SECONDS = env.float("OCPI_READY_BEAT_SECONDS", default=120.0)
CELERY_BEAT_SCHEDULE["cockpit-heartbeat"] = {
    "task": "cockpit.tasks.heartbeat",
    "schedule": OCPI_HEARTBEAT_SECONDS,
    "options": {"expires": max(OCPI_HEARTBEAT_SECONDS * 0.9, 1.0)},
}
# The database scheduler, stamping beat's heartbeat as it ticks.
CELERY_BEAT_SCHEDULER = "cockpit.beat:StampingDatabaseScheduler"

# --- Request journal and partner doctor (journal/, issue 13) ---------------------------------
INSTALLED_APPS.append("journal")
# Right after OcpiHeadersMiddleware: every request under /ocpi/ is journaled after its answer.
MIDDLEWARE.insert(
    MIDDLEWARE.index("ocpi_platform.ocpi.headers.OcpiHeadersMiddleware") + 1,
    "journal.middleware.JournalMiddleware",
)
# Off: nothing is journaled (an emergency switch; the journal is meant to stay on).
OCPI_JOURNAL = env.bool("OCPI_JOURNAL", default=True)
# Journal entries older than this many days are deleted by the hourly housekeeping task.
OCPI_JOURNAL_RETENTION_DAYS = env.float("OCPI_JOURNAL_RETENTION_DAYS", default=7.0)
# While bodies are journaled for a partner (admin, for debugging): each body is cut here.
OCPI_JOURNAL_BODY_MAX_CHARS = env.int("OCPI_JOURNAL_BODY_MAX_CHARS", default=65536)
# Journal entries are buffered per process and written every this many seconds in one INSERT
# (0: each at once, as the tests do). A process killed loses at most this much of its journal.
OCPI_JOURNAL_FLUSH_SECONDS = env.float("OCPI_JOURNAL_FLUSH_SECONDS", default=1.0)
# Read timeout of each request of the partner doctor (manage.py ocpi_doctor, admin button).
OCPI_DOCTOR_READ_TIMEOUT = env.float("OCPI_DOCTOR_READ_TIMEOUT", default=10.0)

# --- Tokens: real-time authorization (tokens/authorization.py, tokens/realtime.py) ----------
# eMSP: a dotted path to the operator's own rule for authorize requests (called with token,
# location, partner; returns a tokens.authorization.Decision, an AllowedType or None to fall
# through to the built-in rules). Empty: valid tokens are ALLOWED, invalid ones BLOCKED.
OCPI_TOKEN_AUTHORIZER = env.str("OCPI_TOKEN_AUTHORIZER", default="")
# CPO: seconds the eMSP has to answer a real-time authorization of our charge point system.
OCPI_TOKEN_AUTHORIZE_TIMEOUT = env.float("OCPI_TOKEN_AUTHORIZE_TIMEOUT", default=3.0)
# CPO: ask the eMSP for tokens whitelisted ALLOWED (the spec lets the CPO choose); off: the
# local copy decides them like ALWAYS tokens.
OCPI_TOKEN_ASK_WHEN_ALLOWED = env.bool("OCPI_TOKEN_ASK_WHEN_ALLOWED", default=True)

# --- Outbox at scale (issue 14): batches, drain budget, lost-task recovery -------------------
# A drain takes up to OCPI_OUTBOX_BATCH rows in one statement and stores their successes in one;
# it drains again while changes come in, for at most OCPI_OUTBOX_DRAIN_SECONDS, then queues its
# next run behind the other partners' drains. At most one drain task is queued per partner
# (OutboxLease.scheduled_at); the beat sweep queues another when the one queued is overdue by
# OCPI_OUTBOX_WAKE_STALE_SECONDS (its task was lost: a broker restart, a publish that failed).
OCPI_OUTBOX_BATCH = env.int("OCPI_OUTBOX_BATCH", default=50)
OCPI_OUTBOX_DRAIN_SECONDS = env.float("OCPI_OUTBOX_DRAIN_SECONDS", default=5.0)
OCPI_OUTBOX_WAKE_STALE_SECONDS = env.float("OCPI_OUTBOX_WAKE_STALE_SECONDS", default=30.0)
# Celery's Django fix-up closes the database connection before and after every task unless
# CELERY_DB_REUSE_MAX is set: a new PostgreSQL connection (and backend process) per task, most of
# an outbox drain's cost. With it, connections are reused across tasks; ocpi_platform/celery.py
# applies CONN_MAX_AGE and CONN_HEALTH_CHECKS before each task (close_old_connections), as
# Django does per request.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
# A wake of more partners than this publishes one task per group of this many partners (their
# drains run in its drain threads, OCPI_OUTBOX_DRAIN_THREADS): fewer tasks, less Celery overhead.
OCPI_OUTBOX_WAKE_GROUP = env.int("OCPI_OUTBOX_WAKE_GROUP", default=10)


# A deliver_many task (a group of OCPI_OUTBOX_WAKE_GROUP partners) drains up to this many of its
# partners at a time, in threads of the worker process (each partner's rows still one at a time,
# in order, under its lease); 1: one after the other. Each thread keeps a database connection.
OCPI_OUTBOX_DRAIN_THREADS = env.int("OCPI_OUTBOX_DRAIN_THREADS", default=10)
