"""Settings shared by every environment, read from the environment (twelve-factor).

Every variable the code reads is listed in ``ENVIRONMENT_VARIABLES`` so that the
README's configuration table and ``docker-compose.yml`` can be checked against it.
"""

import os
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

# Evidently (drift reports) sends usage telemetry unless DO_NOT_TRACK is set to any value:
# its documented opt-out (docs.evidentlyai.com, FAQ "Telemetry"; evidently/telemetry.py).
# A bank's platform sends nothing out, so every process that loads these settings (web,
# workers, beat, commands) opts out before Evidently can be imported. The older flag of
# evidently.legacy goes with it. Set here, not read: operators cannot turn it back on.
os.environ["DO_NOT_TRACK"] = "1"
os.environ["EVIDENTLY_DISABLE_TELEMETRY"] = "1"

# name -> what it does; tests compare this with docker-compose.yml and the README.
ENVIRONMENT_VARIABLES = {
    "DEBUG": "development mode; off in production settings",
    "SECRET_KEY": "Django's signing key; required when DEBUG is off",
    "ALLOWED_HOSTS": "comma-separated host names the site answers to",
    "CSRF_TRUSTED_ORIGINS": "comma-separated origins (scheme://host) allowed to post forms",
    "DATABASE_URL": "database; default a SQLite file in the project folder",
    "DATABASE_CONN_MAX_AGE": "seconds a database connection is kept between requests (60)",
    "DATABASE_PREPARED_STATEMENTS": "prepare the decision path's statements on PostgreSQL (on)",
    "CELERY_BROKER_URL": "Celery broker; unset runs tasks in-process",
    "CELERY_RESULT_BACKEND": "where Celery keeps task results; default the broker",
    "ARTIFACT_ROOT": "folder for model artifacts and reports",
    "STATIC_ROOT": "where collectstatic puts static files (served by WhiteNoise)",
    "EMAIL_URL": "mail server (smtp://user:pass@host:587, consolemail://); default console",
    "DEFAULT_FROM_EMAIL": "sender address of outgoing mail",
    "LOG_LEVEL": "root log level",
    "SECURE_SSL_REDIRECT": "production only: redirect HTTP to HTTPS (default on)",
    "OPTIMISATION_DISTRIBUTED": "optimisation runs in chunks on workers: auto (default), on, off",
    "OPTIMISATION_CHUNK_CUSTOMERS": "customers per chunk of a distributed run (100000)",
    "OPTIMISATION_CHUNK_LOST_SECONDS": "silence after which a chunk's worker is presumed lost (60)",
    "DECISION_RETENTION_MONTHS": "months decisions are kept before purge_decisions may go (25)",
    "API_KEY_DAYS": "days a new API key lasts unless asked otherwise; 0 never expires (365)",
    "DECISION_LOG_VERIFY_DAYS": "days over which the daily log check re-hashes every row (1)",
    "DECISION_REPLAY_DAILY_SAMPLE": "decisions replayed from a random daily sample (200)",
    "METRICS_TOKEN": "bearer token for /metrics and the status API; unset: no /metrics",
    "LOGIN_FAILURE_LIMIT": "failed sign-ins of one user from one address before a lockout (5)",
    "LOGIN_ACCOUNT_FAILURE_LIMIT": "failed sign-ins of one user from all addresses "
    "together before a lockout everywhere (25)",
    "LOGIN_ADDRESS_FAILURE_LIMIT": "failed sign-ins from one address for all users "
    "together before that address is locked out (100)",
    "LOGIN_LOCKOUT_MINUTES": "how long such a lockout lasts (15)",
    "SESSION_IDLE_MINUTES": "minutes without a request after which a sign-in ends (30)",
    "SITE_URL": "the pages' address (https://arbiter.bank.example), for links in e-mails",
}

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set in the environment when DEBUG is off.")
    # Development only: a fixed key so sessions survive restarts of the demo.
    SECRET_KEY = "insecure-development-key-never-used-with-debug-off"  # noqa: S105

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files served here: no CDN on a bank's network
    # The schedule of the executive report, kept in the database and edited in the admin.
    "django_celery_beat",
    # Failed sign-ins counted per user and address; too many lock that pair out a while.
    "axes",
    "csp",  # its system checks catch a policy written in the settings format before 4.0
    "governance",
    "decisions",
    "monitoring",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # The Content-Security-Policy header: CONTENT_SECURITY_POLICY below, a fixed one for the API.
    "arbiter.content_security.ContentSecurityPolicyMiddleware",
    # Serves collected static files (admin, UI) from the app itself in production.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "arbiter.middleware.SessionIdleClockMiddleware",  # SESSION_IDLE_MINUTES
    "arbiter.middleware.CommonMiddleware",  # Django's, with no APPEND_SLASH under /api/
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A database that cannot be reached: 503 and a page that says so, not a 500.
    "arbiter.middleware.DatabaseUnavailableMiddleware",
    # Answers a locked-out sign-in with the lockout page (django-axes wants it last).
    "axes.middleware.AxesMiddleware",
]

# Sign-in: AxesStandaloneBackend refuses a user and address pair locked out, before the
# password is checked; ModelBackend then checks it.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# LOGIN_FAILURE_LIMIT failed sign-ins for one user from one address lock that pair out for
# LOGIN_LOCKOUT_MINUTES (429 and a page saying so); a success clears the count. Per pair,
# so that a few wrong guesses by a stranger do not lock the user out everywhere; but
# LOGIN_ACCOUNT_FAILURE_LIMIT failures for one user from all addresses together within
# that time do, and LOGIN_ADDRESS_FAILURE_LIMIT from one address for all users pause that
# address, so that guessing from many addresses or against many users gains little
# (governance.sign_in).
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
if AXES_FAILURE_LIMIT < 1:
    raise ImproperlyConfigured("LOGIN_FAILURE_LIMIT must be at least 1.")
LOGIN_ACCOUNT_FAILURE_LIMIT = env.int("LOGIN_ACCOUNT_FAILURE_LIMIT", default=25)
if LOGIN_ACCOUNT_FAILURE_LIMIT < AXES_FAILURE_LIMIT:
    raise ImproperlyConfigured(
        f"LOGIN_ACCOUNT_FAILURE_LIMIT must be at least LOGIN_FAILURE_LIMIT ({AXES_FAILURE_LIMIT}): "
        "it counts one user's failures from all addresses, that one from a single address."
    )
LOGIN_ADDRESS_FAILURE_LIMIT = env.int("LOGIN_ADDRESS_FAILURE_LIMIT", default=100)
if LOGIN_ADDRESS_FAILURE_LIMIT < AXES_FAILURE_LIMIT:
    raise ImproperlyConfigured(
        f"LOGIN_ADDRESS_FAILURE_LIMIT must be at least LOGIN_FAILURE_LIMIT ({AXES_FAILURE_LIMIT}): "
        "it counts one address's failures for all users, that one for a single user."
    )
AXES_HANDLER = "governance.sign_in.SignInHandler"
_LOCKOUT_MINUTES = env.int("LOGIN_LOCKOUT_MINUTES", default=15)
if _LOCKOUT_MINUTES < 1:
    raise ImproperlyConfigured("LOGIN_LOCKOUT_MINUTES must be at least 1.")
AXES_COOLOFF_TIME = timedelta(minutes=_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "governance.sign_in.lockout_response"
AXES_CLIENT_IP_CALLABLE = "governance.sign_in.client_address"
AXES_VERBOSE = False
# A sign-in to the pages or the admin ends after SESSION_IDLE_MINUTES without a request
# (each request restarts the clock; the server forgets the session, so a copied cookie
# stops working too) and when the browser closes. API keys have no session.
_IDLE_MINUTES = env.int("SESSION_IDLE_MINUTES", default=30)
if _IDLE_MINUTES < 1:
    raise ImproperlyConfigured("SESSION_IDLE_MINUTES must be at least 1.")
SESSION_COOKIE_AGE = _IDLE_MINUTES * 60  # each request restarts it (arbiter.middleware)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
# The address of the client: REMOTE_ADDR, or behind the TLS proxy (production settings)
# the last address of X-Forwarded-For, the one the proxy itself appended.
CLIENT_ADDRESS_FROM_PROXY = False

ROOT_URLCONF = "arbiter.urls"
WSGI_APPLICATION = "arbiter.wsgi.application"
ASGI_APPLICATION = "arbiter.asgi.application"

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
                "governance.ui_extensions.navigation",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'arbiter.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# Keep connections between requests: opening a PostgreSQL connection per request (Django's
# default) costs a backend process start and several milliseconds of CPU on both sides.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend with a health check that asks the socket, not the server (no
    # round trip per request); see arbiter/db/postgresql/base.py.
    DATABASES["default"]["ENGINE"] = "arbiter.db.postgresql"
# The real-time decision path's statements run prepared on PostgreSQL (arbiter.db). Off for
# a pooler that cannot keep prepared statements (PgBouncer before 1.21, transaction mode).
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers wait for each other instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("timeout", 20)
    DATABASES["default"]["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")
    # Readers see a snapshot and do not block the writer (nor it them): a check of the
    # decision log (a long read) runs while decisions are logged. Kept in the file.
    DATABASES["default"]["OPTIONS"].setdefault("init_command", "PRAGMA journal_mode=WAL")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "arbiter" / "static"]  # the site's own: its icon

ARTIFACT_ROOT = Path(env.str("ARTIFACT_ROOT", default=str(BASE_DIR / "var" / "artifacts")))
# Largest model file accepted by an upload (bytes).
MODEL_ARTIFACT_MAX_BYTES = 200 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 20 * 1024 * 1024
# Largest version content (canonical JSON, bytes): reviewers read it whole, and every
# page and diff of the version carries it.
VERSION_CONTENT_MAX_BYTES = 1024 * 1024

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "ui:dashboard"
LOGOUT_REDIRECT_URL = "login"

# --- Content-Security-Policy ----------------------------------------------------------
# The browser runs scripts from this server's own files only: no inline script, no eval,
# nothing from another origin, so markup slipped into a page (a change note, a rule)
# cannot run. Inline styles stay allowed (the pages style with a <style> block and style
# attributes; CSS cannot run code). Pages may not be framed, and forms post only here.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

# --- e-mail -------------------------------------------------------------------------
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="arbiter@localhost")
# Where people open the pages, for the links in e-mails (review notices). Unset: the links
# are paths (/registry/...) to put after the address people know.
SITE_URL = env.str("SITE_URL", default="")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- REST API -----------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "governance.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "arbiter.openapi.ArbiterAutoSchema",
    "EXCEPTION_HANDLER": "arbiter.api_errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON bodies only; the two uploads (a model file, a population) say so themselves.
    "DEFAULT_PARSER_CLASSES": ["arbiter.parsers.JSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "arbiter.negotiation.FormatNegotiation",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Arbiter API",
    "DESCRIPTION": (
        "Governed decisioning for lenders: real-time decisions with reason codes, kept in a "
        "tamper-evident decision log that replays; portfolio optimisation runs and their "
        "prices; a registry of model, strategy and constraint-set versions under "
        "maker-checker approval, with a tamper-evident audit trail; outcomes, KPIs and "
        "drift. Authenticate with the header `Authorization: Api-Key <key>`. Bodies are "
        "JSON (the two uploads are multipart). "
        'Errors always have the body {"error": {"code", "message", "details"}}. '
        "Any endpoint answers 503 with the code database_unavailable while the database "
        "cannot be reached; retry it later (a decision with the same Idempotency-Key)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "ApiKeyAuth": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "Authorization: Api-Key <key>",
            }
        }
    },
    # Two models have a ``status`` with different choices: name each enum.
    "ENUM_NAME_OVERRIDES": {
        "VersionStatusEnum": "governance.models.VersionStatus",
        "RunStatusEnum": "decisions.models.RunStatus",
        "DriftStatusEnum": "monitoring.models.DriftStatus",
    },
}

# --- Celery -------------------------------------------------------------------------
_BROKER = env.str("CELERY_BROKER_URL", default="")
# Without a broker, tasks run in-process: the embedded default needs no services. (The
# in-memory transport only keeps kombu from looking for an AMQP server on localhost.)
CELERY_TASK_ALWAYS_EAGER = not _BROKER
CELERY_BROKER_URL = _BROKER or "memory://localhost/"
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=_BROKER or None)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
# Runs, reports and alerts keep their outcome in the database; only the distributed runs'
# chunk tasks (decisions.tasks.run_chunk_task) store results, which their coordinator reads.
# Storing none for the rest also spares the web processes, which queue tasks, from
# connecting to the result backend when they do.
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 60 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 55 * 60
# Redis hands an unacknowledged message (acks late) to another worker after the
# visibility timeout. Kombu's default is one hour, the same as the task time limit: a task
# still running at the limit could start a second time beside itself. A quarter of an
# hour more than the limit means only a dead worker's task is handed on.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 15 * 60}
# --- decision log -------------------------------------------------------------------
# Rows per sealed block, and how often beat seals whatever has not filled a block.
DECISION_BLOCK_ROWS = 1000
DECISION_SEAL_SECONDS = 10
# Rows younger than this are left for the next pass: their transaction may still commit.
DECISION_SEAL_GRACE_SECONDS = 5
# The daily check of the decision log re-hashes every row (1), or on a log too large for
# that, every row of the blocks sealed since the last check and 1/N of the older blocks, so
# that each row is re-hashed at least every N days (each block's link is checked daily, as
# is the hash the last check recorded). verify_decisions and "Verify now" re-hash all.
DECISION_LOG_VERIFY_DAYS = env.int("DECISION_LOG_VERIFY_DAYS", default=1)
if not 1 <= DECISION_LOG_VERIFY_DAYS <= 31:
    raise ImproperlyConfigured("DECISION_LOG_VERIFY_DAYS must be from 1 to 31.")
# Beat replays this many decisions drawn at random from the whole log each day and keeps
# what it found (decisions.replays; 0: no daily sample). About 2 ms a decision.
DECISION_REPLAY_DAILY_SAMPLE = env.int("DECISION_REPLAY_DAILY_SAMPLE", default=200)
if not 0 <= DECISION_REPLAY_DAILY_SAMPLE <= 10_000:
    raise ImproperlyConfigured("DECISION_REPLAY_DAILY_SAMPLE must be from 0 to 10000.")
# A replay reports its progress every 100 decisions (a fraction of a second apart). Beat
# queues again a replay whose worker has been silent this long (it is presumed dead; the
# same seed draws the same decisions), until it has been started
# DECISION_REPLAY_MAX_ATTEMPTS times, and sends again, on the runs' doubling waits, one
# no worker has taken DECISION_REPLAY_QUEUED_RESEND_SECONDS after it was sent.
DECISION_REPLAY_STALE_SECONDS = 300
DECISION_REPLAY_MAX_ATTEMPTS = 3
DECISION_REPLAY_QUEUED_RESEND_SECONDS = 600
# How long decisions are kept at least. Regulation B (12 CFR 1002.12) asks 25 months for
# credit applications. Nothing is purged automatically: `manage.py purge_decisions`
# removes whole sealed blocks older than this (decisions.retention).
DECISION_RETENTION_MONTHS = env.int("DECISION_RETENTION_MONTHS", default=25)
if DECISION_RETENTION_MONTHS < 1:
    raise ImproperlyConfigured("DECISION_RETENTION_MONTHS must be at least 1 (months).")
# A new API key expires after this many days unless its creator asks otherwise (0: never);
# a key used in its last API_KEY_WARN_DAYS is logged at WARNING, so it is rotated in time.
API_KEY_DAYS = env.int("API_KEY_DAYS", default=365)
if not 0 <= API_KEY_DAYS <= 3650:
    raise ImproperlyConfigured("API_KEY_DAYS must be from 0 (never expire) to 3650.")
API_KEY_WARN_DAYS = 30
# GET /metrics (Prometheus) answers a scraper that sends "Authorization: Bearer <token>";
# without a token set there is no /metrics at all (404).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Largest decision request accepted (bytes); larger bodies get 400 before parsing.
DECISION_MAX_BODY_BYTES = 64 * 1024
# --- optimisation runs ---------------------------------------------------------------
# The longest a run may take end to end (a run may ask for less), the largest
# population, the largest uploaded population file, and how long a running run may go
# without a heartbeat before another worker takes it over (its worker is presumed dead).
OPTIMISATION_TIME_LIMIT_SECONDS = 50 * 60
OPTIMISATION_MAX_CUSTOMERS = 2_000_000
OPTIMISATION_POPULATION_MAX_BYTES = 1024 * 1024 * 1024
OPTIMISATION_HEARTBEAT_STALE_SECONDS = 300
# A running run's worker refreshes its heartbeat this often, whatever it is doing; beat
# sends a run with a stale heartbeat again (its worker stopped) until it has been started
# OPTIMISATION_MAX_ATTEMPTS times, then fails it.
OPTIMISATION_HEARTBEAT_SECONDS = 30.0
OPTIMISATION_MAX_ATTEMPTS = 3
# A queued run that no worker has taken this long after its task was sent is sent again
# (a Redis restarted without its append-only file loses its queued messages). Each later
# wait is as long as the run had been queued (so the waits double), up to
# OPTIMISATION_QUEUED_RESEND_MAX_SECONDS: a run queued behind long ones gathers few spare
# messages (a spare finds the run taken, and ends).
OPTIMISATION_QUEUED_RESEND_SECONDS = 600
OPTIMISATION_QUEUED_RESEND_MAX_SECONDS = 3600
# Distributed runs (decisions/distributed_runs.py): "auto" splits a run into chunks of
# OPTIMISATION_CHUNK_CUSTOMERS for the workers when a broker is configured and the
# population is larger than one chunk; "on" always splits (in-process without a broker);
# "off" never. Chunk tasks go to their own queue (the run's task waits for them); a
# round no worker takes within OPTIMISATION_CHUNK_START_SECONDS fails the run.
OPTIMISATION_DISTRIBUTED = env.str("OPTIMISATION_DISTRIBUTED", default="auto").lower()
if OPTIMISATION_DISTRIBUTED not in ("auto", "on", "off"):
    raise ImproperlyConfigured("OPTIMISATION_DISTRIBUTED must be auto, on or off.")
OPTIMISATION_CHUNK_CUSTOMERS = env.int("OPTIMISATION_CHUNK_CUSTOMERS", default=100_000)
if OPTIMISATION_CHUNK_CUSTOMERS < 1:
    raise ImproperlyConfigured("OPTIMISATION_CHUNK_CUSTOMERS must be at least 1.")
OPTIMISATION_CHUNK_QUEUE = "arbiter-chunks"
OPTIMISATION_CHUNK_START_SECONDS = 60.0
# A started chunk task refreshes its state every sixth of this; one whose refreshes stop
# for this long is presumed lost with its worker and sent again.
OPTIMISATION_CHUNK_LOST_SECONDS = env.float("OPTIMISATION_CHUNK_LOST_SECONDS", default=60.0)
if OPTIMISATION_CHUNK_LOST_SECONDS <= 0:
    raise ImproperlyConfigured("OPTIMISATION_CHUNK_LOST_SECONDS must be positive.")
# The near-tie (customer, action) pairs a distributed run solves exactly on the
# coordinator, and for how long at most.
OPTIMISATION_RESIDUAL_PAIRS = 4_000
OPTIMISATION_RESIDUAL_SECONDS = 2.0
# --- drift (monitoring/drift.py) ------------------------------------------------------
# A window with more decisions than this is compared on a random sample of this many
# (seeded by the model version and window, so a report can be recomputed exactly).
DRIFT_SAMPLE_ROWS = 20_000

# Beat reads its schedule from the database (django-celery-beat): the entries below are
# copied there at start-up, and the executive report's schedule (a periodic task created by
# migration monitoring/0003) is edited in the admin without a deploy.
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "verify-audit-chain-daily": {
        "task": "governance.tasks.audit_chain_verify_task",
        "schedule": 24 * 60 * 60,
    },
    # Ended sign-ins (SESSION_IDLE_MINUTES) deleted from the session table.
    "clear-ended-sessions-daily": {
        "task": "governance.tasks.sessions_clear_task",
        "schedule": 24 * 60 * 60,
    },
    "seal-decision-log": {
        "task": "decisions.tasks.decision_blocks_seal_task",
        "schedule": DECISION_SEAL_SECONDS,
    },
    # Runs whose worker stopped, or that no worker took, are sent again
    # (decisions/optimisation.py).
    "recover-optimisation-runs": {
        "task": "decisions.tasks.optimisation_runs_recover_task",
        "schedule": 60,
    },
    # Replays of a sample whose worker stopped, or that no worker took, are sent again
    # (decisions/replays.py).
    "recover-replay-checks": {
        "task": "decisions.tasks.replay_checks_recover_task",
        "schedule": 60,
    },
    # Every row hash, block digest and link (about 0.1 ms a decision; see docs/decisions.md).
    "verify-decision-log-daily": {
        "task": "decisions.tasks.decision_log_verify_task",
        "schedule": 24 * 60 * 60,
    },
    # A random sample of the whole log replayed (DECISION_REPLAY_DAILY_SAMPLE decisions).
    "replay-decision-sample-daily": {
        "task": "decisions.tasks.decision_replay_daily_task",
        "schedule": 24 * 60 * 60,
    },
    # Alert rules (monitoring/alerts.py): an e-mail once per breach, however often this runs.
    "evaluate-alerts-hourly": {
        "task": "monitoring.tasks.alerts_evaluate_task",
        "schedule": 60 * 60,
    },
    # Drift of every active model version over the last complete UTC days; a day already
    # reported is skipped, so the interval need not line up with midnight.
    "drift-reports-daily": {
        "task": "monitoring.drift_tasks.drift_reports_daily_task",
        "schedule": 6 * 60 * 60,
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
