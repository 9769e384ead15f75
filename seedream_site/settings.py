"""Seedream Studio settings.

Every setting is read from the environment here and nowhere else, with safe local defaults:
SQLite, files on local disk, the database task queue and the offline sandbox provider.
A malformed value stops start-up with a message that names the variable.
"""

import os
import secrets
import tempfile
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from gallery import catalog  # plain data, no Django imports
from gallery import options as limits

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name, default=""):
    return os.environ.get(name, default)


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}.")


def env_number(name, default, kind=int, minimum=None, maximum=None):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = kind(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a {kind.__name__}, not {value!r}.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value!r}.")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, not {value!r}.")
    return number


def env_choice(name, default, choices):
    value = os.environ.get(name) or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}.")
    return value


def env_list(name, default):
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_url(name, default="", schemes=("http", "https")):
    value = os.environ.get(name, default)
    if value:
        parsed = urlparse(value)
        if parsed.scheme not in schemes or not parsed.netloc:
            raise ImproperlyConfigured(
                f"{name} must be a URL starting with {' or '.join(s + '://' for s in schemes)}, "
                f"not {value!r}."
            )
    return value.rstrip("/")


def env_secret(name):
    """A secret from NAME, or read from the file that NAME_FILE names (Docker or systemd
    credentials), so it need not sit in the environment."""
    value, path = os.environ.get(name, ""), os.environ.get(f"{name}_FILE", "")
    if value and path:
        raise ImproperlyConfigured(f"Set {name} or {name}_FILE, not both.")
    if not path:
        return value
    try:
        return Path(path).read_text().strip()
    except OSError as e:
        raise ImproperlyConfigured(f"{name}_FILE: cannot read {path!r} ({e.strerror}).") from None


def local_secret_key():
    """The key from an untracked file next to manage.py, created on first start."""
    path = BASE_DIR / ".secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# A public HTTPS address lets upstreams call back; it also marks a real deployment.
STUDIO_PUBLIC_URL = env_url("STUDIO_PUBLIC_URL")
ALLOW_SIGNUP = env_bool("ALLOW_SIGNUP", False)

INSTALLED_APPS = [
    "gallery",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "django_tasks",
    "django_tasks_db",
    "axes",
    "csp",
]

MIDDLEWARE = [
    "gallery.middleware.RequestIdMiddleware",
    "gallery.middleware.RequestSizeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "gallery.middleware.OnboardingMiddleware",
    "gallery.middleware.CurrentTeamMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "seedream_site.urls"
WSGI_APPLICATION = "seedream_site.wsgi.application"

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
                "gallery.context_processors.current_team",
            ],
        },
    },
]

# Database: SQLite next to manage.py unless DATABASE_URL says otherwise.
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
except ValueError as e:
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL we understand: {e}") from None

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # WAL lets the web server read while the worker writes; IMMEDIATE takes the write lock at
    # BEGIN, so a transaction waits (busy timeout) instead of failing half-way with
    # "database is locked" when it upgrades from a read to a write.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests need a file (not :memory:) so worker subprocesses see the same database; one per
    # test run, so two runs on one machine never share it.
    DATABASES["default"]["TEST"] = {
        "NAME": str(Path(tempfile.gettempdir()) / f"seedream-test-{os.getpid()}.sqlite3")
    }

# Anything signed (sessions, callback tokens, reset links, signed media URLs) must verify on
# every machine: a key generated per machine would make callbacks from the worker 404 on the web
# machine. Only a single-machine SQLite instance may keep a generated key in a local file.
SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY and DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
    raise ImproperlyConfigured(
        "SECRET_KEY is not set. With a shared database (DATABASE_URL) the studio may run on several "
        "machines, and they must all sign with the same key. Generate one with\n"
        "    python -c 'import secrets; print(secrets.token_urlsafe(50))'\n"
        "and set it as SECRET_KEY (or SECRET_KEY_FILE, a path to a file holding it) in the "
        "environment of every web and worker process."
    )
SECRET_KEY = SECRET_KEY or local_secret_key()

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Request limits, from the studio's rules (the body's total size is capped by
# gallery.middleware.RequestSizeMiddleware, with a message a person understands).
DATA_UPLOAD_MAX_NUMBER_FIELDS = limits.MAX_REQUEST_FIELDS
DATA_UPLOAD_MAX_NUMBER_FILES = limits.MAX_REQUEST_FILES
AUTH_USER_MODEL = "gallery.User"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "gallery.auth.EmailOrUsernameBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "studio"
LOGOUT_REDIRECT_URL = "login"

# Lockout after repeated failed logins (per address and account name).
AXES_FAILURE_LIMIT = env_number("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_number("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_USERNAME_CALLABLE = "gallery.auth.axes_username"
AXES_VERBOSE = False

# Security headers. An https public address marks a real deployment: cookies only over https,
# HSTS, and plain-http requests redirected (the reverse proxy in front terminates TLS and must
# set X-Forwarded-Proto, see docs/DEPLOY.md).
HTTPS = STUDIO_PUBLIC_URL.startswith("https://")
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CSRF_FAILURE_VIEW = "gallery.views.errors.csrf_failure"
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz/$"]  # load balancers probe over plain http
    SECURE_HSTS_SECONDS = env_number("SECURE_HSTS_SECONDS", 365 * 24 * 3600, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    # Preloading binds the whole domain to https in browsers for months: the operator's call.
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        SILENCED_SYSTEM_CHECKS = ["security.W021"]

# Content-Security-Policy on every page: scripts and styles only from our own static files (no
# inline code, no eval: htmx runs with allowEval off), images also from blob: (the drop zone's
# previews) and data: (Pico's icons), nothing framed, forms only to ourselves.
CSP_IMAGE_SOURCES = ["'self'", "data:", "blob:"]
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": CSP_IMAGE_SOURCES,
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Whitenoise serves straight from the source folders: no collectstatic step for `make run` or
# tests. A deployment that collects static files sets STATIC_ROOT.
STATIC_ROOT = env_str("STATIC_ROOT") or None
WHITENOISE_USE_FINDERS = True

# Files go through the storage API only: local disk by default, S3-compatible object storage
# (django-storages) when S3_BUCKET is set.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))
MEDIA_URL = "/media/"  # never served directly: media views check team membership
S3_BUCKET = env_str("S3_BUCKET")


S3_SINGLE_PUT_BYTES = 256 * 1024 * 1024  # above any result, reference or download the studio stores


def s3_storage(bucket):
    from boto3.s3.transfer import TransferConfig

    """The bucket's objects stay private: media views check the team, then redirect to a
    presigned URL that expires soon (gallery/storage.py)."""
    access_key, secret_key = env_str("S3_ACCESS_KEY_ID"), env_secret("S3_SECRET_ACCESS_KEY")
    if not access_key:
        raise ImproperlyConfigured("S3_BUCKET is set but S3_ACCESS_KEY_ID is not.")
    if not secret_key:
        raise ImproperlyConfigured(
            "S3_BUCKET is set but S3_SECRET_ACCESS_KEY (or S3_SECRET_ACCESS_KEY_FILE) is not."
        )
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": env_url("S3_ENDPOINT_URL") or None,  # None: AWS itself
            "access_key": access_key,
            "secret_key": secret_key,
            "region_name": env_str("S3_REGION") or "us-east-1",
            # Path style works with every S3-compatible server and any bucket name.
            "addressing_style": env_choice("S3_ADDRESSING_STYLE", "path", ("path", "virtual")),
            "signature_version": "s3v4",
            "querystring_auth": True,  # no public URLs: every URL is signed and expires
            # How long a presigned URL lives; SigV4 allows a week at most.
            "querystring_expire": env_number("S3_URL_EXPIRE_SECONDS", 300, minimum=1, maximum=604800),
            "default_acl": None,  # the bucket's own (private) policy, no per-object ACL
            # The pipeline stores results under deterministic names and replaces what a crashed
            # attempt left there, so a name must never be changed to a free one.
            "file_overwrite": True,
            # One PUT per file, streamed from it on the thread that saves: the default (8 MB
            # parts on 10 threads per upload) reads every part into memory, so four 4K PNGs at
            # once held ~4 × 31 MB more, and the local S3 server assembled parts (bench/store.py).
            "transfer_config": TransferConfig(multipart_threshold=S3_SINGLE_PUT_BYTES, use_threads=False),
            # Downloads and ZIPs read an object through a temporary copy: past this size it is
            # kept on disk, not in memory (the default, 0, never leaves memory).
            "max_memory_size": 4 * 1024 * 1024,
        },
    }


STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if S3_BUCKET:
    STORAGES["default"] = s3_storage(S3_BUCKET)
    # Media views redirect images to presigned URLs: the page may show images from there.
    _endpoint = urlparse(STORAGES["default"]["OPTIONS"]["endpoint_url"] or "https://*.amazonaws.com")
    CSP_IMAGE_SOURCES.append(f"{_endpoint.scheme}://{_endpoint.netloc}")

# Background jobs through the tasks API; the database is the queue by default. A redis:// URL
# puts the same jobs on Redis, run by RQ workers (django-tasks-rq; `manage.py worker` picks the
# right loop). The task rows stay the source of truth either way: the lease and the sweeper do
# not depend on the queue (docs/DEPLOY.md, "Which queue").
TASKS_BACKEND = env_str("TASKS_BACKEND", "database")
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# How long one RQ job may run before RQ stops it: far above any step (each network call has its
# own timeout and every step renews the task's lease), below the task deadline.
RQ_JOB_TIMEOUT = env_number("RQ_JOB_TIMEOUT_SECONDS", 600, minimum=10)
if TASKS_BACKEND == "immediate":
    TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
elif TASKS_BACKEND.startswith(("redis://", "rediss://", "unix://")):
    if not urlparse(TASKS_BACKEND).netloc and not TASKS_BACKEND.startswith("unix://"):
        raise ImproperlyConfigured(f"TASKS_BACKEND must be a Redis URL like redis://127.0.0.1:6379/0, not {TASKS_BACKEND!r}.")
    INSTALLED_APPS += ["django_rq", "django_tasks_rq"]
    TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
    # RQ forgets finished jobs by itself (after 500 s); nothing reads them: the task row is the record.
    RQ_QUEUES = {"default": {"URL": TASKS_BACKEND, "DEFAULT_TIMEOUT": RQ_JOB_TIMEOUT}}
    RQ_SHOW_ADMIN_LINK = False
elif TASKS_BACKEND != "database":
    raise ImproperlyConfigured(
        f"TASKS_BACKEND must be 'database', 'immediate' or a Redis URL (redis://host:6379/0), not {TASKS_BACKEND!r}."
    )

# E-mail: printed to the console unless an SMTP host is set.
EMAIL_HOST = env_str("EMAIL_HOST")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_PORT = env_number("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Seedream Studio <studio@localhost>")

INVITE_DAYS = 7
# Password reset e-mails: (requests, per seconds) from one IP address and to one address.
PASSWORD_RESET_IP_LIMIT = (env_number("PASSWORD_RESET_IP_LIMIT", 10, minimum=1), 3600)
PASSWORD_RESET_EMAIL_LIMIT = (env_number("PASSWORD_RESET_EMAIL_LIMIT", 3, minimum=1), 3600)

# Upstream providers. Each real one is used when its key is set, cheapest first; without any
# key the offline sandbox provider is used.
EVOLINK_API_KEY = env_secret("EVOLINK_API_KEY")
EVOLINK_BASE_URL = env_url("EVOLINK_BASE_URL", "https://api.evolink.ai")
EVOLINK_FILES_URL = env_url("EVOLINK_FILES_URL", "https://files-api.evolink.ai")
BYTEPLUS_API_KEY = env_secret("BYTEPLUS_API_KEY")
BYTEPLUS_BASE_URL = env_url("BYTEPLUS_BASE_URL", "https://ark.ap-southeast.bytepluses.com")


def env_prices(name):
    """PRICES="evolink:doubao-seedream-5.0-pro=0.05, byteplus:doubao-seedream-4.5:4K=0.045": dollars
    per image, for a provider and model (and a quality tier, optionally). The model table
    (gallery/catalog.py) has the defaults; a provider without a price for a model does not run it."""
    prices = {}
    for item in env_list(name, []):
        key, _, value = item.partition("=")
        parts = key.strip().split(":")
        try:
            price = Decimal(value.strip())
        except (InvalidOperation, ValueError):
            price = None
        provider, model, quality = (parts + ["", ""])[:3]
        known = (
            provider in ("evolink", "byteplus", "sandbox")
            and (not model or model in catalog.MODELS)
            and (not quality or (model and catalog.MODELS[model].offers(quality)))
        )
        if price is None or price < 0 or not 1 <= len(parts) <= 3 or not all(parts) or not known:
            raise ImproperlyConfigured(
                f"{name} must list provider:model[:quality]=dollars separated by commas, with a provider of "
                f"evolink, byteplus or sandbox and a model of {', '.join(catalog.MODELS)}; not {item!r}."
            )
        prices[":".join(parts)] = price
    return prices


# Legacy per-provider settings price Seedream 4.0 (and the sandbox, every model); PRICES says the rest.
PRICE_OVERRIDES = env_prices("PRICES")
for _provider, _variable in (("evolink", "EVOLINK_PRICE_PER_IMAGE"), ("byteplus", "BYTEPLUS_PRICE_PER_IMAGE")):
    if os.environ.get(_variable):
        PRICE_OVERRIDES.setdefault(f"{_provider}:doubao-seedream-4.0", Decimal(str(env_number(_variable, 0.0, kind=float, minimum=0))))
if os.environ.get("SANDBOX_PRICE_PER_IMAGE"):
    PRICE_OVERRIDES.setdefault("sandbox", Decimal(str(env_number("SANDBOX_PRICE_PER_IMAGE", 0.0, kind=float, minimum=0))))
# Owners see a warning on the usage page when the EvoLink balance (as last read) falls below this.
EVOLINK_LOW_CREDITS = Decimal(str(env_number("EVOLINK_LOW_CREDITS", 500.0, kind=float, minimum=0)))
# The model the studio offers first (every model of gallery/catalog.py may be picked per task).
DEFAULT_MODEL = env_choice("DEFAULT_MODEL", catalog.SD40, tuple(catalog.MODELS))
# Circuit breaker: after this many failed create calls in a row a provider is skipped for the
# cool-down, then tried again.
BREAKER_FAILURES = env_number("BREAKER_FAILURES", 3, minimum=1)
BREAKER_COOLDOWN_SECONDS = env_number("BREAKER_COOLDOWN_SECONDS", 60.0, kind=float, minimum=0)
# Sandbox timing: seconds in the simulated queue and seconds of simulated generation.
SANDBOX_QUEUE_SECONDS = env_number("SANDBOX_QUEUE_SECONDS", 1.5, kind=float, minimum=0)
SANDBOX_RUN_SECONDS = env_number("SANDBOX_RUN_SECONDS", 4.0, kind=float, minimum=0)

# The task lifecycle (SPEC §8).
TASK_DEADLINE_SECONDS = env_number("TASK_DEADLINE_SECONDS", 15 * 60, minimum=1)
TASK_LEASE_SECONDS = env_number("TASK_LEASE_SECONDS", 120, minimum=1)
TASK_FIRST_CHECK_SECONDS = env_number("TASK_FIRST_CHECK_SECONDS", 3.0, kind=float, minimum=0)
TASK_CHECK_SECONDS = env_number("TASK_CHECK_SECONDS", 3.0, kind=float, minimum=0)
TASK_MAX_RETRIES = env_number("TASK_MAX_RETRIES", 3, minimum=0)
SWEEP_SECONDS = env_number("SWEEP_SECONDS", 30.0, kind=float, minimum=0.1)
SWEEP_GRACE_SECONDS = env_number("SWEEP_GRACE_SECONDS", 30.0, kind=float, minimum=0)
WORKER_HEARTBEAT_SECONDS = env_number("WORKER_HEARTBEAT_SECONDS", 10.0, kind=float, minimum=0.1)
# How often a worker reads provider balances, and prunes rows that grow with use.
BALANCE_SECONDS = env_number("BALANCE_SECONDS", 300.0, kind=float, minimum=1)
PRUNE_SECONDS = env_number("PRUNE_SECONDS", 3600.0, kind=float, minimum=1)
# /healthz?workers=1 fails when the oldest waiting job has waited longer than this.
HEALTHZ_MAX_WAIT_SECONDS = env_number("HEALTHZ_MAX_WAIT_SECONDS", 300.0, kind=float, minimum=1)
MAX_RESULT_BYTES = env_number("MAX_RESULT_BYTES", 64 * 1024 * 1024, minimum=1)
# How many results of a task are downloaded, checked and saved at once (threads of the worker);
# their decoding is bounded apart, by memory (gallery.pipeline.DECODE_MEMORY_BYTES).
STORE_PARALLEL = env_number("STORE_PARALLEL", 4, minimum=1, maximum=32)
# URLs the studio did not choose (result links and their redirects, later reference and callback
# URLs) are fetched over https from public addresses only. For local development against the
# fake upstreams of tests/fakes, both may be relaxed; never in production.
ALLOW_HTTP_URLS = env_bool("ALLOW_HTTP_URLS", False)
ALLOW_LOOPBACK_URLS = env_bool("ALLOW_LOOPBACK_URLS", False)

# The Team API (docs/API.md): requests per minute per key, how long a signed result link works
# (each GET of a task gives a new one) and how many files the file service keeps per team.
API_RATE_LIMIT_PER_MINUTE = env_number("API_RATE_LIMIT_PER_MINUTE", 60, minimum=1)
# Requests with a wrong, revoked or malformed key, per client address, in a sliding window;
# past it: 429. A valid key is never refused by it.
API_AUTH_FAILURE_LIMIT = (
    env_number("API_AUTH_FAILURE_LIMIT", 20, minimum=1),
    60 * env_number("API_AUTH_FAILURE_MINUTES", 5, minimum=1, maximum=24 * 60),
)
API_RESULT_URL_DAYS = env_number("API_RESULT_URL_DAYS", 7, minimum=1, maximum=365)
API_FILE_QUOTA = env_number("API_FILE_QUOTA", 2000, minimum=1)

# Every unhandled error is logged with its traceback and request id, DEBUG or not (Django's own
# default sends them only to ADMINS by e-mail when DEBUG is off: with no ADMINS, nowhere).
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR"):
    raise ImproperlyConfigured(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, not {LOG_LEVEL!r}.")
LOG_FORMAT = env_str("LOG_FORMAT", "text")
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json, not {LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "gallery.logs.ContextFilter"}},
    "formatters": {
        # Both escape control characters (a forged line break in a path stays on its line).
        "text": {"()": "gallery.logs.TextFormatter"},
        "json": {"()": "gallery.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["context"], "formatter": LOG_FORMAT},
    },
    # One handler, on the root: every logger reaches it (and pytest's caplog) once.
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "gallery": {"handlers": [], "level": LOG_LEVEL},
        "django": {"handlers": [], "level": "INFO"},
        "django.server": {"handlers": [], "level": "WARNING"},
        # Every unhandled error of a request (a 500), with its traceback and request id, even
        # with DEBUG off: said here, not left to Django's defaults.
        "django.request": {"handlers": [], "level": "ERROR", "propagate": True},
    },
}
