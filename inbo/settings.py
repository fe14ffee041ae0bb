"""INBO settings: one module, every value from the environment with a local default.

Every variable is documented in ``.env.example``. Local defaults work on a developer
machine with PostgreSQL and Redis on 127.0.0.1; production sets ``DEBUG=false`` and real
secrets, which switches on the secure-transport settings below.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from inbo.env import env_bool, env_float, env_int, env_list, env_redis_role_url, env_str
from inbo.keys import CACHE_KEY_PREFIX

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Core -------------------------------------------------------------------------------
INBO_ENV = env_str("INBO_ENV", "local")  # local | test | staging | production
_DEPLOYED = INBO_ENV in {"staging", "production"}
# Local machines default to DEBUG; deployed environments default to the safe side.
DEBUG = env_bool("DEBUG", not _DEPLOYED)
_DEV_SECRET_KEY = "django-insecure-local-development-only-never-use-this-key-in-deployment"
SECRET_KEY = env_str("SECRET_KEY", "" if _DEPLOYED else _DEV_SECRET_KEY)
if not SECRET_KEY:
    raise ImproperlyConfigured(f"SECRET_KEY must be set when INBO_ENV={INBO_ENV}.")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django_prometheus",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's assets, pinned and served by the app (no CDN)
    "reading_app",
    "features_app",
    "experience_app",
    "search_app",
    "monitoring",
    "ml_app",  # offline: loaders, replay evaluation; no serving app imports it (ADR 0019)
    "experiments_app",  # A/B tests, bandits, off-policy evaluation (issue 12)
    "rules_app",  # business rules on the feed: sponsored, diversity, blocks, boosts (issue 13)
    "inbo.accounts",  # no models: the token cache's invalidation signals
]

MIDDLEWARE = [
    # Outermost: any non-JSON 4xx/5xx under /api/ becomes the error envelope (DEBUG too).
    "inbo.api.middleware.ApiErrorEnvelopeMiddleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # Feed latency by section and interactions by type (monitoring/metrics.py).
    "monitoring.middleware.ApiMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Sessions, request.user and messages: not for token-authenticated API requests (the
    # first two) or under /api/ at all (messages); inbo/api/middleware.py says why.
    "inbo.api.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "inbo.api.middleware.AuthenticationMiddleware",
    # Read replicas: the request's method and user for the routing, its writes remembered.
    "inbo.replicas.ReplicaRoutingMiddleware",
    "inbo.api.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # django-prometheus's, without the series nothing reads (monitoring/middleware.py).
    "monitoring.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "inbo.urls"
WSGI_APPLICATION = "inbo.wsgi.application"

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

# --- Database ---------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/inbo")
_db = dj_database_url.parse(DATABASE_URL, conn_health_checks=True)
_db["ENGINE"] = "django_prometheus.db.backends.postgresql"
_db.setdefault("OPTIONS", {})
# A bounded statement timeout keeps a runaway query from holding a web worker forever.
# JIT compilation costs ~20 ms per statement whose estimate crosses jit_above_cost: a loss
# for the short queries of web requests, so it is off unless DATABASE_JIT asks for it.
DATABASE_STATEMENT_TIMEOUT_MS = env_int("DATABASE_STATEMENT_TIMEOUT_MS", 30000)
DATABASE_JIT = env_bool("DATABASE_JIT", False)
# PgBouncer in transaction mode between this process and PostgreSQL (docs/SCALING.md,
# "Connections"): each transaction may run on another server connection, so nothing may
# outlive one. No server-side cursors (iterator() declares them outside a transaction), no
# psycopg prepared statements (named per server connection), and no `options` startup
# parameter (PgBouncer refuses it): its connect_query sets the same statement_timeout and
# jit on every server connection (deploy/pgbouncer/pgbouncer.ini). Session-level advisory
# locks (search indexing, experiment guardrails) need a direct connection: Celery worker
# and beat connect to PostgreSQL itself, only the web processes go through PgBouncer.
DATABASE_PGBOUNCER = env_bool("DATABASE_PGBOUNCER", False)
if DATABASE_PGBOUNCER:
    _db["DISABLE_SERVER_SIDE_CURSORS"] = True
    _db["OPTIONS"]["prepare_threshold"] = None
else:
    _db["OPTIONS"]["options"] = (
        f"-c statement_timeout={DATABASE_STATEMENT_TIMEOUT_MS}"
        f" -c jit={'on' if DATABASE_JIT else 'off'}"
    )
# Fail fast instead of hanging a request (or a readiness probe) on an unreachable server.
_db["OPTIONS"]["connect_timeout"] = env_int("DATABASE_CONNECT_TIMEOUT", 5)
# How each process holds its connections (docs/SCALING.md, "Connections"; measured by
# `make bench`, docs/BENCHMARKS.md "Connections and servers"):
#   persistent  one connection per thread, kept DATABASE_CONN_MAX_AGE seconds (default)
#   pool        psycopg's pool per process, DATABASE_POOL_MIN..DATABASE_POOL_MAX connections
#               shared by its threads (Django >= 5.1; CONN_MAX_AGE must be 0 with it)
#   none        a new connection for every request (what a short-lived job wants)
# DATABASE_POOL=true, the older switch, still means `pool`.
DATABASE_CONNECTIONS = env_str(
    "DATABASE_CONNECTIONS", "pool" if env_bool("DATABASE_POOL", False) else "persistent"
)
if DATABASE_CONNECTIONS == "pool":
    _db["OPTIONS"]["pool"] = {
        "min_size": env_int("DATABASE_POOL_MIN", 1),
        "max_size": env_int("DATABASE_POOL_MAX", 10),
        # Seconds a request waits for a free connection before failing.
        "timeout": env_float("DATABASE_POOL_TIMEOUT", 10.0),
    }
    _db["CONN_MAX_AGE"] = 0
elif DATABASE_CONNECTIONS == "persistent":
    _db["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60)
elif DATABASE_CONNECTIONS == "none":
    _db["CONN_MAX_AGE"] = 0
else:
    raise ImproperlyConfigured(
        f"DATABASE_CONNECTIONS must be persistent, pool or none, got {DATABASE_CONNECTIONS!r}"
    )
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Read replicas (ADR 0025, docs/OPERATIONS.md "Read replicas"): comma-separated URLs, each a
# connection "replica_N" with the primary's options. Only reads their callers mark as
# lag-tolerant (inbo/replicas.py) go there, and only to a replica at most MAX_LAG seconds
# behind; a user who wrote within READ_YOUR_WRITES_SECONDS reads from the primary. Each
# process checks a replica's lag at most every CHECK seconds, and leaves one it could not
# reach alone for RETRY seconds. Tests use the primary's test database for them (MIRROR).
DATABASE_REPLICA_URLS = env_list("DATABASE_REPLICA_URLS", [])
DATABASE_REPLICA_MAX_LAG_SECONDS = env_float("DATABASE_REPLICA_MAX_LAG_SECONDS", 5.0)
DATABASE_REPLICA_CHECK_SECONDS = env_float("DATABASE_REPLICA_CHECK_SECONDS", 5.0)
DATABASE_REPLICA_RETRY_SECONDS = env_float("DATABASE_REPLICA_RETRY_SECONDS", 30.0)
READ_YOUR_WRITES_SECONDS = env_int("READ_YOUR_WRITES_SECONDS", 5)
for _n, _url in enumerate(DATABASE_REPLICA_URLS, start=1):
    _parsed = dj_database_url.parse(_url)
    DATABASES[f"replica_{_n}"] = {
        **_db,
        **{k: _parsed[k] for k in ("NAME", "USER", "PASSWORD", "HOST", "PORT")},  # type: ignore[typeddict-item, literal-required]
        # A replica that does not answer is skipped: connecting gives up sooner (libpq's
        # least is 2 s).
        "OPTIONS": {
            **_db["OPTIONS"],
            "connect_timeout": env_int("DATABASE_REPLICA_CONNECT_TIMEOUT", 2),
        },
        "TEST": {"MIRROR": "default"},
    }
DATABASE_ROUTERS = ["inbo.db_router.ReplicaRouter"] if DATABASE_REPLICA_URLS else []

# --- Redis: one server, separate databases per role -------------------------------------
# Clearing the cache must never drop a queued task or a counter, so each role has its own
# database (or its own URL in production). Without per-role URLs the roles take four
# consecutive databases from REDIS_URL's own (N broker, N+1 cache, N+2 state, N+3 scratch),
# so the operator's choice of database is kept (ADR 0005).
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_BROKER_URL = env_redis_role_url("REDIS_BROKER_URL", REDIS_URL, 0)
REDIS_CACHE_URL = env_redis_role_url("REDIS_CACHE_URL", REDIS_URL, 1)
REDIS_STATE_URL = env_redis_role_url("REDIS_STATE_URL", REDIS_URL, 2)
# Scratch state of `manage.py evaluate_ranking`: flushed before and after every run.
REDIS_EVAL_URL = env_redis_role_url("REDIS_EVAL_URL", REDIS_URL, 3)
REDIS_SOCKET_TIMEOUT = env_float("REDIS_SOCKET_TIMEOUT", 0.5)
# Circuit breakers of the state and cache clients (inbo/breakers.py, per process): after this
# many consecutive timeouts or refused connections every call fails at once (callers fall
# back) until a trial call after the reset time succeeds. A request waits at most about
# failures x REDIS_SOCKET_TIMEOUT on a hung Redis.
REDIS_BREAKER_FAILURES = env_int("REDIS_BREAKER_FAILURES", 2)
REDIS_BREAKER_RESET_SECONDS = env_float("REDIS_BREAKER_RESET_SECONDS", 5.0)

CACHES = {
    "default": {
        "BACKEND": "inbo.redis.GuardedRedisCache",
        "LOCATION": REDIS_CACHE_URL,
        "KEY_PREFIX": CACHE_KEY_PREFIX,
        "TIMEOUT": 300,
        "OPTIONS": {
            "socket_timeout": REDIS_SOCKET_TIMEOUT,
            "socket_connect_timeout": REDIS_SOCKET_TIMEOUT,
        },
    }
}
# Two-level cache of shared catalog data (inbo/cache_l1.py, docs/ARCHITECTURE.md "Caching"):
# a process checks a namespace's version in Redis at most this often, so a catalog change
# reaches every process's memory within this many seconds.
CACHE_VERSION_CHECK_SECONDS = env_float("CACHE_VERSION_CHECK_SECONDS", 1.0)
# Off: every lookup loads from PostgreSQL (a diagnosis switch; metrics count nothing).
CACHE_L1_ENABLED = env_bool("CACHE_L1_ENABLED", True)
# HTTP caching of the public catalog (inbo/api/http_cache.py): how long a shared cache (a CDN)
# or a browser may reuse an anonymous catalog response, and serve it stale while revalidating.
HTTP_CACHE_MAX_AGE = env_int("HTTP_CACHE_MAX_AGE", 60)
HTTP_CACHE_STALE_WHILE_REVALIDATE = env_int("HTTP_CACHE_STALE_WHILE_REVALIDATE", 300)

# --- Celery -----------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_BROKER_URL)
CELERY_RESULT_BACKEND = None  # tasks write their results to PostgreSQL/Redis state themselves
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = (
    Queue("default"),
    Queue("events"),
    Queue("features"),
    Queue("search"),
    Queue("maintenance"),
)
CELERY_TASK_ROUTES = {
    "inbo.features.*": {"queue": "features"},
    # Building feeds ahead is CPU work that must not delay the events queue.
    "inbo.experience.prebuild_feeds": {"queue": "maintenance"},
    "inbo.experience.*": {"queue": "events"},
    "inbo.search.*": {"queue": "search"},
    "inbo.monitoring.*": {"queue": "maintenance"},
    "inbo.reading.*": {"queue": "maintenance"},
    # Training and fold-in of learned models: long, CPU-bound, never on the event path.
    "inbo.ml.*": {"queue": "maintenance"},
    "inbo.experiments.*": {"queue": "maintenance"},
}
CELERY_TASK_SOFT_TIME_LIMIT = 300
CELERY_TASK_TIME_LIMIT = 360
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A message a worker took but never acknowledged (acks_late, the worker died) is delivered
# again this many seconds after it was taken, when a worker next starts or sweeps.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    # Beat's own heartbeat: readiness reports beat as stalled when this stops.
    "monitoring-beat-heartbeat": {
        "task": "inbo.monitoring.beat_heartbeat",
        "schedule": float(env_int("BEAT_HEARTBEAT_SECONDS", 30)),
        "options": {"expires": env_int("BEAT_HEARTBEAT_SECONDS", 30)},
    },
    # Served feeds are buffered in Redis and written to PostgreSQL in batches.
    "experience-flush-served": {
        "task": "inbo.experience.flush_served",
        "schedule": 10.0,
        "options": {"expires": 10},
    },
    # Predictive caching: feeds of the readers likely to open the app soon, built ahead.
    "experience-prebuild-feeds": {
        "task": "inbo.experience.prebuild_feeds",
        "schedule": float(env_int("EXPERIENCE_PREBUILD_INTERVAL_SECONDS", 600)),
        "options": {"expires": env_int("EXPERIENCE_PREBUILD_INTERVAL_SECONDS", 600)},
    },
    # Feature store: validated counters to ItemFeature, drift repair, backups.
    "features-sync": {
        "task": "inbo.features.sync",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Batches stored while Redis was away (or counting was paused) are counted; an empty
    # Redis is rebuilt first (ADR 0016).
    "features-count-pending": {
        "task": "inbo.features.count_pending",
        "schedule": 15.0,
        "options": {"expires": 14},
    },
    "features-reconcile": {
        "task": "inbo.features.reconcile",
        "schedule": crontab(minute=23),
        "options": {"expires": 3000},
    },
    "features-snapshot": {
        "task": "inbo.features.snapshot",
        "schedule": crontab(minute=41),
        "options": {"expires": 3000},
    },
    # The event log's monthly partitions, three months ahead (idempotent; daily, so a missed
    # run or two changes nothing).
    "features-ensure-partitions": {
        "task": "inbo.features.ensure_partitions",
        "schedule": crontab(hour=1, minute=7),
        "options": {"expires": 6 * 3600},
    },
    # Retention (ADR 0026): old rows of the logs deleted in batches, old event-log months
    # detached with their baselines. Daily; a missed run only leaves rows a day longer.
    "features-retention": {
        "task": "inbo.features.retention",
        "schedule": crontab(hour=4, minute=11),
        "options": {"expires": 6 * 3600},
    },
    # Embeddings: users with new events get their vector and "similar" candidates again;
    # recent items a lost task message left unembedded are embedded (docs/ML.md).
    "features-refresh-user-embeddings": {
        "task": "inbo.features.refresh_user_embeddings",
        "schedule": float(env_int("EMBEDDINGS_JOB_INTERVAL_SECONDS", 60)),
        "options": {"expires": max(1, env_int("EMBEDDINGS_JOB_INTERVAL_SECONDS", 60) - 5)},
    },
    # Segments: engagement and interest clusters of every user, their sizes for the day.
    "features-compute-segments": {
        "task": "inbo.features.compute_segments",
        "schedule": 60.0 * env_int("SEGMENTS_INTERVAL_MINUTES", 60),
        "options": {"expires": 60 * max(1, env_int("SEGMENTS_INTERVAL_MINUTES", 60) - 5)},
    },
    # ALS: nightly training (gate, register, promote, precompute candidates), and every
    # minute the users with new events get fresh candidates from the active version.
    "ml-train-als": {
        "task": "inbo.ml.train_als",
        "schedule": crontab(hour=2, minute=37),
        "options": {"expires": 4 * 3600},
    },
    # The learned reranker: trained daily from the served log, promoted if its gate passed.
    "ml-train-reranker": {
        "task": "inbo.ml.train_reranker",
        "schedule": crontab(hour=3, minute=17),
        "options": {"expires": 4 * 3600},
    },
    "ml-als-fold-in": {
        "task": "inbo.ml.als_fold_in",
        "schedule": float(env_int("ML_ALS_FOLD_IN_INTERVAL_SECONDS", 60)),
        "options": {"expires": max(1, env_int("ML_ALS_FOLD_IN_INTERVAL_SECONDS", 60) - 5)},
    },
    # Search: catalog changes waiting in the outbox reach the indexes in batches.
    "search-index-pending": {
        "task": "inbo.search.index_pending",
        "schedule": float(env_int("SEARCH_INDEX_INTERVAL_SECONDS", 5)),
        "options": {"expires": env_int("SEARCH_INDEX_INTERVAL_SECONDS", 5)},
    },
    # Bandits: decisions past their reward window get their reward; each bandit's state
    # takes them in one step (snapshot in PostgreSQL, copy in Redis).
    "experiments-update-bandits": {
        "task": "inbo.experiments.update_bandits",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Guardrails: a running experiment whose treatment harms a guardrail metric is stopped.
    "experiments-check-guardrails": {
        "task": "inbo.experiments.check_guardrails",
        "schedule": 15 * 60.0,
        "options": {"expires": 14 * 60},
    },
    # Session auth (browsable API, admin) leaves expired rows behind; delete them nightly.
    "reading-clear-expired-sessions": {
        "task": "inbo.reading.clear_expired_sessions",
        "schedule": crontab(hour=3, minute=17),
        "options": {"expires": 3600},
    },
}

# --- Monitoring (docs/OPERATIONS.md) ---------------------------------------------------
# Readiness runs its checks concurrently: each is bounded by its own timeout, the whole
# endpoint by a deadline, so it answers within a second even when a dependency hangs.
HEALTH_CHECK_TIMEOUT_SECONDS = env_float("HEALTH_CHECK_TIMEOUT_SECONDS", 0.5)
HEALTH_DEADLINE_SECONDS = env_float("HEALTH_DEADLINE_SECONDS", 0.8)
# Checks whose failure makes readiness answer 503; the others are reported (and alerted on).
HEALTH_CRITICAL_CHECKS = env_list("HEALTH_CRITICAL_CHECKS", ["postgres", "redis_state"])
# Every worker's main process writes a heartbeat this often; readiness counts a worker as
# live while its last heartbeat is younger than the max age.
WORKER_HEARTBEAT_SECONDS = env_float("WORKER_HEARTBEAT_SECONDS", 10.0)
WORKER_HEARTBEAT_MAX_AGE_SECONDS = env_float("WORKER_HEARTBEAT_MAX_AGE_SECONDS", 45.0)
# Beat is stalled when it has sent nothing for this long (it sends its heartbeat every 30 s).
BEAT_MAX_AGE_SECONDS = env_float("BEAT_MAX_AGE_SECONDS", 120.0)
# The worker's own /metrics (task runs, failures, durations from every prefork child); 0 = off.
WORKER_METRICS_PORT = env_int("WORKER_METRICS_PORT", 0)
WORKER_METRICS_ADDR = env_str("WORKER_METRICS_ADDR", "0.0.0.0")

# --- Client address, throttling, API tokens (docs/OPERATIONS.md "Access") --------------
# Proxies in front of the app that each append the address they saw to X-Forwarded-For.
# 0: the client is REMOTE_ADDR and the header is ignored (a client can write anything in it);
# N: the client is the Nth address from the right. One rule (inbo.api.client_ip) for every
# throttle and for the monitoring endpoints' trust check.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
# Rates per scope (N/sec|min|hour|day), each applied per client address and, where a user is
# signed in, per user. The throttles read this at request time (inbo/api/throttling.py).
THROTTLE_RATES = {
    # Sign-up and token, per address (AUTH_THROTTLE_RATE is the former name, still read).
    "auth": env_str("THROTTLE_RATE_AUTH", env_str("AUTH_THROTTLE_RATE", "20/min")),
    # POSTs of the admin login form, per address.
    "admin_login": env_str("THROTTLE_RATE_ADMIN_LOGIN", "10/min"),
    "search": env_str("THROTTLE_RATE_SEARCH", "120/min"),
    "search_click": env_str("THROTTLE_RATE_SEARCH_CLICK", "120/min"),
    "interactions": env_str("THROTTLE_RATE_INTERACTIONS", "120/min"),
    # Changes to a reader's profile, mutes and removals, and resets (user control).
    "reader_control": env_str("THROTTLE_RATE_READER_CONTROL", "60/min"),
}
# An API token stops working this many hours after it was issued (0: never expires);
# /auth/token/ then issues a new one. /auth/logout/ and /auth/logout-all/ revoke earlier.
TOKEN_TTL_HOURS = env_int("TOKEN_TTL_HOURS", 720)
# A token's user is kept in the cache Redis this many seconds after it was read from
# PostgreSQL (0: every request reads PostgreSQL). Revocations and user changes delete it at
# once (inbo/accounts/token_cache.py); the TTL only bounds a deletion Redis never received.
AUTH_TOKEN_CACHE_SECONDS = env_int("AUTH_TOKEN_CACHE_SECONDS", 300)
# Who sees readiness details and /metrics: callers from these networks (CIDR), or with
# "Authorization: Bearer <MONITORING_TOKEN>" when it is set. Everyone else gets the bare status.
MONITORING_TRUSTED_NETWORKS = env_list("MONITORING_TRUSTED_NETWORKS", ["127.0.0.0/8", "::1/128"])
MONITORING_TOKEN = env_str("MONITORING_TOKEN", "")
try:
    for _cidr in MONITORING_TRUSTED_NETWORKS:
        ipaddress.ip_network(_cidr, strict=False)
except ValueError as _exc:
    raise ImproperlyConfigured(f"MONITORING_TRUSTED_NETWORKS: {_exc}") from _exc

# --- REST API ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # DRF's token, with an expiry (TOKEN_TTL_HOURS).
        "inbo.accounts.authentication.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "inbo.api.pagination.DefaultPagination",
    "PAGE_SIZE": 20,
    "EXCEPTION_HANDLER": "inbo.api.errors.api_exception_handler",
    # JSON only (bounded in size and depth); other content types get 415.
    "DEFAULT_PARSER_CLASSES": ["inbo.api.parsers.JSONParser"],
    "DEFAULT_THROTTLE_RATES": THROTTLE_RATES,
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
# --- REST API: request bodies and errors (inbo/api/parsers.py, inbo/api/errors.py) ------
# Deepest nesting of arrays/objects a JSON body may have (deeper: 400 nesting_too_deep,
# measured before parsing, which recurses once per level).
API_JSON_MAX_DEPTH = env_int("API_JSON_MAX_DEPTH", 32)
# Largest request body in bytes (larger: 413 payload_too_large); Django's own setting.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 2_621_440)
# Retry-After (seconds) of a 503 when PostgreSQL or another dependency is unavailable.
API_RETRY_AFTER_SECONDS = env_int("API_RETRY_AFTER_SECONDS", 5)

SPECTACULAR_SETTINGS = {
    "TITLE": "INBO API",
    "DESCRIPTION": "Newsletter discovery and reading. All errors share one shape: "
    '`{"error": {"code", "message", "details"}}`.',
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v[0-9]+",
    "ENUM_NAME_OVERRIDES": {
        "FeedSectionEnum": "experience_app.services.feed.SECTION_ORDER",
        # The interaction types are the feature store's event types (one enum, EventType).
        "InteractionTypeEnum": "features_app.contracts.EVENT_TYPE_CHOICES",
        "ExperimentStatusEnum": "experiments_app.models.Experiment.Status",
        # What a reader mutes or removes from their learned profile (user control).
        "ReaderTargetKindEnum": "experience_app.models.ReaderMute.Kind",
        # Named too, or drf-spectacular reports the two "kind" enums as a collision.
        "RuleKindEnum": "rules_app.models.Rule.Kind",
    },
    # Request, response and error examples for every operation, kept in one module keyed by
    # operationId (inbo/api/examples.py) rather than spread over the views.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "inbo.api.examples.add_examples",
    ],
    # The docs page loads Swagger UI from the app's static files (drf-spectacular-sidecar,
    # pinned in pyproject.toml), so it works offline and never changes under a CDN's @latest.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No "valid" badge from validator.swagger.io: it would send the schema's URL out.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
}

# --- Auth, i18n, static -----------------------------------------------------------------
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
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG and env_bool("STATIC_MANIFEST", True)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Security: on by default outside DEBUG ----------------------------------------------
_secure = not DEBUG and env_bool("SECURE_TRANSPORT", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _secure)
SECURE_REDIRECT_EXEMPT = [r"^health/", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if _secure else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _secure
SECURE_HSTS_PRELOAD = _secure
SESSION_COOKIE_SECURE = _secure
CSRF_COOKIE_SECURE = _secure
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Search -----------------------------------------------------------------------------
SEARCH_BACKEND = env_str("SEARCH_BACKEND", "postgres")  # postgres | meilisearch
MEILISEARCH_URL = env_str("MEILISEARCH_URL", "http://127.0.0.1:7700")
# Local/test default: the master key scripts/meilisearch.sh and docker-compose start the server
# with. Deployments set a scoped API key (no default there).
_DEV_MEILISEARCH_KEY = "inbo-local-dev-master-key-0123"
MEILISEARCH_API_KEY = env_str("MEILISEARCH_API_KEY", "" if _DEPLOYED else _DEV_MEILISEARCH_KEY)
# Every call to the server gives up after this long (search, writes, health): a slow engine
# degrades search to PostgreSQL instead of holding a web worker.
MEILISEARCH_TIMEOUT_SECONDS = env_float("MEILISEARCH_TIMEOUT_SECONDS", 2.0)
# Circuit breaker of the Meilisearch backend (per process): after this many consecutive
# failed calls searches go straight to PostgreSQL (degraded) until a trial call after the reset
# time succeeds.
MEILISEARCH_BREAKER_FAILURES = env_int("MEILISEARCH_BREAKER_FAILURES", 2)
MEILISEARCH_BREAKER_RESET_SECONDS = env_float("MEILISEARCH_BREAKER_RESET_SECONDS", 15.0)
# Index names: <prefix>_items, <prefix>_providers (one server can host several deployments).
MEILISEARCH_INDEX_PREFIX = env_str("MEILISEARCH_INDEX_PREFIX", "inbo")
# PostgreSQL search (also the fallback): every search statement is cancelled after this long.
SEARCH_STATEMENT_TIMEOUT_MS = env_int("SEARCH_STATEMENT_TIMEOUT_MS", 2000)
# Indexing (inbo.search.index_pending, every SEARCH_INDEX_INTERVAL_SECONDS): outbox rows per
# batch, tries before a change is dead-lettered, base delay of the exponential backoff
# (doubled per try, with jitter, at most an hour).
SEARCH_INDEX_BATCH_SIZE = env_int("SEARCH_INDEX_BATCH_SIZE", 500)
SEARCH_INDEX_MAX_ATTEMPTS = env_int("SEARCH_INDEX_MAX_ATTEMPTS", 6)
SEARCH_INDEX_BACKOFF_SECONDS = env_float("SEARCH_INDEX_BACKOFF_SECONDS", 30.0)
SEARCH_INDEX_INTERVAL_SECONDS = env_int("SEARCH_INDEX_INTERVAL_SECONDS", 5)

# --- Product knobs ----------------------------------------------------------------------
READING_WORDS_PER_MINUTE = env_int("READING_WORDS_PER_MINUTE", 230)
DEMO_USER_PASSWORD = env_str("DEMO_USER_PASSWORD", "inbo-demo")
# Feature store: half-life of decayed click mass (popularity), and the click rate assumed
# for an impression shown outside any list.
FEATURES_CLICK_HALF_LIFE_HOURS = env_float("FEATURES_CLICK_HALF_LIFE_HOURS", 6.0)
FEATURES_PRIOR_CTR = env_float("FEATURES_PRIOR_CTR", 0.04)
# Items per batch of the Redis -> ItemFeature sync, and the lifetime of its lock: renewed
# after every batch, so a killed sync blocks the next one for at most this long.
FEATURES_SYNC_BATCH_SIZE = env_int("FEATURES_SYNC_BATCH_SIZE", 500)
FEATURES_SYNC_LOCK_SECONDS = env_int("FEATURES_SYNC_LOCK_SECONDS", 60)
# ADR 0016: lifetime of the lock (and counting pause) of reconcile, snapshot and restore,
# renewed between their steps, so a killed job frees them this long after it died; and the
# age a pending batch reaches before the sweep counts it (longer than ingestion's own try).
FEATURES_JOB_LOCK_SECONDS = env_int("FEATURES_JOB_LOCK_SECONDS", 300)
FEATURES_PENDING_MIN_AGE_SECONDS = env_float("FEATURES_PENDING_MIN_AGE_SECONDS", 10.0)
# A user's Redis keys (counts, affinity, seen memory, hours) expire this many days after
# their latest event; reconcile does not bring back those of a user idle longer, and
# recounts them from the event log once the user is active again (docs/FEATURE_STORE.md).
FEATURES_USER_IDLE_DAYS = env_float("FEATURES_USER_IDLE_DAYS", 30.0)
# Oldest occurred_at a client may report, in days (older: 400). Bounds the months that need a
# partition: a client can never make the request path create one (features_app/partitions.py).
EVENTS_CLIENT_MAX_AGE_DAYS = env_int("EVENTS_CLIENT_MAX_AGE_DAYS", 30)
# Segments (docs/FEATURE_STORE.md "Segments"): engagement from the events of the last
# SEGMENTS_WINDOW_DAYS (frequency: days active; depth: reads or dwells of at least
# SEGMENTS_DEEP_DWELL_MS per click) and the last event (recency); new users joined less than
# SEGMENTS_NEW_DAYS ago. Interest clusters: k-means with this many clusters over the same window.
SEGMENTS_WINDOW_DAYS = env_int("SEGMENTS_WINDOW_DAYS", 28)
SEGMENTS_NEW_DAYS = env_int("SEGMENTS_NEW_DAYS", 7)
SEGMENTS_DORMANT_DAYS = env_int("SEGMENTS_DORMANT_DAYS", 14)
SEGMENTS_REGULAR_DAYS = env_int("SEGMENTS_REGULAR_DAYS", 4)
SEGMENTS_POWER_DAYS = env_int("SEGMENTS_POWER_DAYS", 12)
SEGMENTS_POWER_DEPTH = env_float("SEGMENTS_POWER_DEPTH", 0.5)
SEGMENTS_DEEP_DWELL_MS = env_int("SEGMENTS_DEEP_DWELL_MS", 30_000)
SEGMENTS_CLUSTERS = env_int("SEGMENTS_CLUSTERS", 8)

# Home experience: ranking weights (see experience_app/ranking.py), sections and caching.
EXPERIENCE_WEIGHT_POPULARITY = env_float("EXPERIENCE_WEIGHT_POPULARITY", 1.0)
EXPERIENCE_WEIGHT_FRESHNESS = env_float("EXPERIENCE_WEIGHT_FRESHNESS", 0.4)
EXPERIENCE_WEIGHT_AFFINITY = env_float("EXPERIENCE_WEIGHT_AFFINITY", 1.0)
EXPERIENCE_WEIGHT_PROVIDER_AFFINITY = env_float("EXPERIENCE_WEIGHT_PROVIDER_AFFINITY", 0.5)
EXPERIENCE_WEIGHT_SUBSCRIBED = env_float("EXPERIENCE_WEIGHT_SUBSCRIBED", 0.5)
EXPERIENCE_WEIGHT_SEEN = env_float("EXPERIENCE_WEIGHT_SEEN", 1.0)
# Cosine of the item's text embedding to the user's (issue 11), for "similar" candidates.
EXPERIENCE_WEIGHT_SIMILARITY = env_float("EXPERIENCE_WEIGHT_SIMILARITY", 0.5)
# Time and place (issue 13, experience_app/time_place.py; docs/ML.md "Time and place signals"):
# chosen on a DeskDrop validation split (hour_match lowered nDCG at every weight tried: 0,
# logged for the learned reranker only).
EXPERIENCE_WEIGHT_HOUR_MATCH = env_float("EXPERIENCE_WEIGHT_HOUR_MATCH", 0.0)
EXPERIENCE_WEIGHT_ITEM_HOUR_LIFT = env_float("EXPERIENCE_WEIGHT_ITEM_HOUR_LIFT", 0.5)
EXPERIENCE_WEIGHT_REGION_POPULARITY = env_float("EXPERIENCE_WEIGHT_REGION_POPULARITY", 0.5)
EXPERIENCE_WEIGHT_LANGUAGE_MATCH = env_float("EXPERIENCE_WEIGHT_LANGUAGE_MATCH", 0.25)
# The reader's place from a header our proxy writes (e.g. CloudFront-Viewer-Country), when
# the profile has none. Empty: never. Honoured only for requests that came through the
# TRUSTED_PROXY_COUNT proxies (and, when PLACE_PROXY_NETWORKS is set, from a peer in one of
# those networks); the value must be an ISO 3166-1 alpha-2 code, else it is ignored.
PLACE_COUNTRY_HEADER = env_str("PLACE_COUNTRY_HEADER", "")
PLACE_REGION_HEADER = env_str("PLACE_REGION_HEADER", "")
PLACE_PROXY_NETWORKS = env_list("PLACE_PROXY_NETWORKS", [])
# Session-kNN score of the item after the current session (issue 13, ML-005), in [0, 1].
EXPERIENCE_WEIGHT_SESSION = env_float("EXPERIENCE_WEIGHT_SESSION", 1.0)
# Without a client session id, a new session starts after this much inactivity.
EXPERIENCE_SESSION_GAP_MINUTES = env_int("EXPERIENCE_SESSION_GAP_MINUTES", 30)

# "Because you read" leaves out items whose text embedding is this close (cosine) to an item
# the reader dismissed or hid in the candidate window: near-copies by meaning (issue 13).
EXPERIENCE_NEAR_COPY_SIMILARITY = env_float("EXPERIENCE_NEAR_COPY_SIMILARITY", 0.85)
# Operators' switch for issue 13's personalization parts, each off on its own without a
# deploy of code: any of "session" (the up_next source and signal), "time_place" (the time
# and place signals) and "rules" (business rules). `make bench` measures the home with all
# three off, then on, in the same run.
EXPERIENCE_PERSONALIZATION_OFF = frozenset(env_list("EXPERIENCE_PERSONALIZATION_OFF", []))
_unknown_off = EXPERIENCE_PERSONALIZATION_OFF - {"session", "time_place", "rules"}
if _unknown_off:
    raise ImproperlyConfigured(
        f"EXPERIENCE_PERSONALIZATION_OFF: unknown {sorted(_unknown_off)} "
        "(known: session, time_place, rules)"
    )

# --- Learned ranking (issue 11, docs/ML.md) -----------------------------------------------
# Serve the active reranker version when there is one (false: always the linear ranking).
ML_RERANKER_ENABLED = env_bool("ML_RERANKER_ENABLED", True)
# How often a web worker asks the registry which version is active (hot reload).
ML_MODEL_RELOAD_SECONDS = env_float("ML_MODEL_RELOAD_SECONDS", 5.0)
# How many of the user's precomputed learned candidates (per source) join the pool.
ML_LEARNED_POOL = env_int("ML_LEARNED_POOL", 30)
# Training (ml_app): a version whose gate passed is promoted by the scheduled training.
ML_AUTO_PROMOTE = env_bool("ML_AUTO_PROMOTE", True)
ML_TRAIN_THREADS = env_int("ML_TRAIN_THREADS", 2)
ML_RERANKER_TRAIN_DAYS = env_int("ML_RERANKER_TRAIN_DAYS", 14)
ML_RERANKER_MAX_GROUPS = env_int("ML_RERANKER_MAX_GROUPS", 50_000)
EXPERIENCE_FRESHNESS_HALF_LIFE_HOURS = env_float("EXPERIENCE_FRESHNESS_HALF_LIFE_HOURS", 24.0)
# An item shown this many times without any engagement is rotated out of the feed.
EXPERIENCE_ROTATE_AFTER_IMPRESSIONS = env_int("EXPERIENCE_ROTATE_AFTER_IMPRESSIONS", 3)
# Partial reads untouched for longer fade out of "continue reading".
EXPERIENCE_CONTINUE_MAX_AGE_DAYS = env_int("EXPERIENCE_CONTINUE_MAX_AGE_DAYS", 14)
# Candidates come from items published within this window (plus trending and co-reading).
EXPERIENCE_CANDIDATE_DAYS = env_int("EXPERIENCE_CANDIDATE_DAYS", 21)
EXPERIENCE_SECTION_PAGE_SIZE = env_int("EXPERIENCE_SECTION_PAGE_SIZE", 10)
EXPERIENCE_SECTION_MAX_ITEMS = env_int("EXPERIENCE_SECTION_MAX_ITEMS", 50)
EXPERIENCE_FEED_CACHE_SECONDS = env_int("EXPERIENCE_FEED_CACHE_SECONDS", 300)
# Predictive caching (OPT-002): every interval, build the feeds of the readers most likely
# to open the app within the lookahead (their open-time profile and recency), at most
# BUDGET feeds or BUDGET_SECONDS of building per run, none below MIN_LIKELIHOOD. A pre-built
# feed is kept TTL seconds (default: lookahead plus interval), then as long as any once hit.
EXPERIENCE_PREBUILD_INTERVAL_SECONDS = env_int("EXPERIENCE_PREBUILD_INTERVAL_SECONDS", 600)
EXPERIENCE_PREBUILD_LOOKAHEAD_MINUTES = env_int("EXPERIENCE_PREBUILD_LOOKAHEAD_MINUTES", 30)
EXPERIENCE_PREBUILD_BUDGET = env_int("EXPERIENCE_PREBUILD_BUDGET", 500)
EXPERIENCE_PREBUILD_BUDGET_SECONDS = env_float("EXPERIENCE_PREBUILD_BUDGET_SECONDS", 120.0)
EXPERIENCE_PREBUILD_MIN_LIKELIHOOD = env_float("EXPERIENCE_PREBUILD_MIN_LIKELIHOOD", 0.05)
EXPERIENCE_PREBUILD_TTL_SECONDS = env_int(
    "EXPERIENCE_PREBUILD_TTL_SECONDS",
    EXPERIENCE_PREBUILD_LOOKAHEAD_MINUTES * 60 + EXPERIENCE_PREBUILD_INTERVAL_SECONDS,
)
EXPERIENCE_PREBUILD_MAX_CANDIDATES = env_int("EXPERIENCE_PREBUILD_MAX_CANDIDATES", 20000)
# Business rules (rules_app, docs/RULES.md): a serving process checks the rules' version this
# often (one indexed query), and reloads them this often whatever it says (a provider
# campaign's newest items).
RULES_REFRESH_SECONDS = env_float("RULES_REFRESH_SECONDS", 5.0)
RULES_RELOAD_SECONDS = env_float("RULES_RELOAD_SECONDS", 300.0)

# Content embeddings (features_app.embeddings, docs/ML.md "Embeddings"). Torch threads per
# process (web and workers: 1; the bulk command takes --threads); characters of the body
# embedded after title and summary (the model reads ~256 word pieces anyway); items per
# incremental task message; the half-life of a user's engagement and the window read; the
# recent items a provider's vector averages; the "similar" candidates and item neighbours
# kept; the users and events one run of the candidates job takes.
EMBEDDINGS_TORCH_THREADS = env_int("EMBEDDINGS_TORCH_THREADS", 1)
EMBEDDINGS_BODY_CHARS = env_int("EMBEDDINGS_BODY_CHARS", 1000)
EMBEDDINGS_BATCH_SIZE = env_int("EMBEDDINGS_BATCH_SIZE", 64)
EMBEDDINGS_TASK_ITEMS = env_int("EMBEDDINGS_TASK_ITEMS", 256)
EMBEDDINGS_USER_HALF_LIFE_DAYS = env_float("EMBEDDINGS_USER_HALF_LIFE_DAYS", 14.0)
EMBEDDINGS_USER_WINDOW_DAYS = env_int("EMBEDDINGS_USER_WINDOW_DAYS", 90)
EMBEDDINGS_PROVIDER_ITEMS = env_int("EMBEDDINGS_PROVIDER_ITEMS", 50)
EMBEDDINGS_CANDIDATES = env_int("EMBEDDINGS_CANDIDATES", 200)
EMBEDDINGS_NEIGHBOURS = env_int("EMBEDDINGS_NEIGHBOURS", 50)
EMBEDDINGS_POOL_MAX_ITEMS = env_int("EMBEDDINGS_POOL_MAX_ITEMS", 50_000)
EMBEDDINGS_JOB_EVENTS = env_int("EMBEDDINGS_JOB_EVENTS", 5000)
EMBEDDINGS_JOB_SWEEP_ITEMS = env_int("EMBEDDINGS_JOB_SWEEP_ITEMS", 256)
EMBEDDINGS_JOB_LOCK_SECONDS = env_int("EMBEDDINGS_JOB_LOCK_SECONDS", 300)
EMBEDDINGS_JOB_INTERVAL_SECONDS = env_int("EMBEDDINGS_JOB_INTERVAL_SECONDS", 60)

# ALS collaborative filtering (ml_app.services.als_training, docs/ML.md "Collaborative
# filtering in the product"): the nightly training's window and hyperparameters; the
# confidence of each event type (impression, dismiss and hide count nothing; a read counts
# READ + READ_DEPTH x the depth its context reports, 1 when none: a read is to the end);
# how a (user, item) pair's summed confidence is scaled ("log": log1p, or "linear"); the
# time split of the gate; what is precomputed; the fold-in job's batch and interval.
ML_ALS_TRAIN_DAYS = env_int("ML_ALS_TRAIN_DAYS", 90)
ML_ALS_FACTORS = env_int("ML_ALS_FACTORS", 64)
ML_ALS_REGULARIZATION = env_float("ML_ALS_REGULARIZATION", 30.0)
ML_ALS_ALPHA = env_float("ML_ALS_ALPHA", 5.0)
ML_ALS_ITERATIONS = env_int("ML_ALS_ITERATIONS", 15)
ML_ALS_CONFIDENCE = env_str("ML_ALS_CONFIDENCE", "log")
ML_ALS_WEIGHT_CLICK = env_float("ML_ALS_WEIGHT_CLICK", 1.0)
ML_ALS_WEIGHT_READ = env_float("ML_ALS_WEIGHT_READ", 2.0)
ML_ALS_WEIGHT_READ_DEPTH = env_float("ML_ALS_WEIGHT_READ_DEPTH", 3.0)
ML_ALS_WEIGHT_SAVE = env_float("ML_ALS_WEIGHT_SAVE", 6.0)
ML_ALS_WEIGHT_SHARE = env_float("ML_ALS_WEIGHT_SHARE", 6.0)
ML_ALS_VALIDATION_SHARE = env_float("ML_ALS_VALIDATION_SHARE", 0.15)
ML_ALS_GATE_MIN_USERS = env_int("ML_ALS_GATE_MIN_USERS", 20)
ML_ALS_GATE_MAX_USERS = env_int("ML_ALS_GATE_MAX_USERS", 5000)
ML_ALS_CANDIDATES = env_int("ML_ALS_CANDIDATES", 200)
ML_ALS_NEIGHBOURS = env_int("ML_ALS_NEIGHBOURS", 50)
ML_ALS_POOL_MAX_ITEMS = env_int("ML_ALS_POOL_MAX_ITEMS", 50_000)
ML_ALS_FOLD_IN_EVENTS = env_int("ML_ALS_FOLD_IN_EVENTS", 5000)
ML_ALS_FOLD_IN_INTERVAL_SECONDS = env_int("ML_ALS_FOLD_IN_INTERVAL_SECONDS", 60)
ML_ALS_LOCK_SECONDS = env_int("ML_ALS_LOCK_SECONDS", 3 * 3600)

# --- Experiments (issue 12, docs/EXPERIMENTS.md) -----------------------------------------
# Running experiments, their variants and the bandits are read once per process this often.
EXPERIMENTS_CACHE_SECONDS = env_float("EXPERIMENTS_CACHE_SECONDS", 10.0)
# A decision's reward counts what the user did in this window after it; it is computed
# (and the bandit updated) once the window has passed.
EXPERIMENTS_REWARD_WINDOW_SECONDS = env_int("EXPERIMENTS_REWARD_WINDOW_SECONDS", 1800)
# Without Redis, the feed reads a bandit's latest snapshot from PostgreSQL at most this often.
EXPERIMENTS_SNAPSHOT_REFRESH_SECONDS = env_float("EXPERIMENTS_SNAPSHOT_REFRESH_SECONDS", 60.0)
# Decisions rewarded per bandit and per run of the update task.
EXPERIMENTS_REWARD_BATCH = env_int("EXPERIMENTS_REWARD_BATCH", 5000)

# Guardrails (experiments_app.services.guardrails): judged only with at least this many users
# in control and in the treatment; the latency p95 guardrail is breached above control by
# more than this fraction (with the interval excluding 0).
EXPERIMENTS_GUARDRAIL_MIN_USERS = env_int("EXPERIMENTS_GUARDRAIL_MIN_USERS", 100)
EXPERIMENTS_LATENCY_GUARDRAIL = env_float("EXPERIMENTS_LATENCY_GUARDRAIL", 0.20)

# --- Benchmark --------------------------------------------------------------------------
# Route the benchmark-only endpoints (GET /api/v1/_bench/ceiling/). Only `make bench` sets it.
INBO_BENCH_ENDPOINTS = env_bool("INBO_BENCH_ENDPOINTS", False)

# --- Logging: one line per event, named events, no personal data ------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "line": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "line"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Retention (ADR 0026, docs/OPERATIONS.md "Retention") -------------------------------
# Days each log keeps its rows (the beat task inbo.features.retention deletes older ones in
# batches); running experiments hold the served log, interactions, decisions and event log
# from 14 days before their start whatever the window. The event log detaches whole months
# older than RETENTION_EVENT_LOG_MONTHS (0: never), their counts kept as baselines; the
# detached tables are dropped only with RETENTION_EVENT_LOG_DROP_DETACHED.
RETENTION_SERVED_DAYS = env_int("RETENTION_SERVED_DAYS", 90)
RETENTION_INTERACTIONS_DAYS = env_int("RETENTION_INTERACTIONS_DAYS", 180)
RETENTION_SEARCH_LOG_DAYS = env_int("RETENTION_SEARCH_LOG_DAYS", 90)
RETENTION_EXPOSURES_DAYS = env_int("RETENTION_EXPOSURES_DAYS", 180)
RETENTION_DECISIONS_DAYS = env_int("RETENTION_DECISIONS_DAYS", 90)
RETENTION_BANDIT_SNAPSHOTS_DAYS = env_int("RETENTION_BANDIT_SNAPSHOTS_DAYS", 7)
RETENTION_EVENT_LOG_MONTHS = env_int("RETENTION_EVENT_LOG_MONTHS", 13)
RETENTION_EVENT_LOG_DROP_DETACHED = env_bool("RETENTION_EVENT_LOG_DROP_DETACHED", False)
# Rows per delete (one short transaction each) and the pause between two batches.
RETENTION_BATCH_SIZE = env_int("RETENTION_BATCH_SIZE", 5000)
RETENTION_BATCH_PAUSE_SECONDS = env_float("RETENTION_BATCH_PAUSE_SECONDS", 0.05)
_retention_floor = {
    # What reads each log, and the days it reads back (a window may not be shorter).
    "RETENTION_SERVED_DAYS": ("reranker training", ML_RERANKER_TRAIN_DAYS + 1),
    "RETENTION_INTERACTIONS_DAYS": (
        "reranker training and the rejections of because_you_read",
        max(ML_RERANKER_TRAIN_DAYS + 1, EXPERIENCE_CANDIDATE_DAYS),
    ),
    "RETENTION_SEARCH_LOG_DAYS": ("search analytics (clicks point at their search)", 1),
    "RETENTION_EXPOSURES_DAYS": ("experiment reports", 1),
    "RETENTION_DECISIONS_DAYS": (
        "bandit rewards",
        -(-EXPERIMENTS_REWARD_WINDOW_SECONDS // 86400) + 1,
    ),
    "RETENTION_BANDIT_SNAPSHOTS_DAYS": ("bandit restores", 1),
}
for _name, (_reader, _floor) in _retention_floor.items():
    if globals()[_name] < _floor:
        raise ImproperlyConfigured(f"{_name} must be at least {_floor} days ({_reader} reads it).")
# Whole months are detached: the retained span is at least RETENTION_EVENT_LOG_MONTHS * 28
# days, and must cover what reads the event log back (training, embeddings, segments,
# clients' late events, the 28-day counters).
_event_log_floor = max(
    ML_ALS_TRAIN_DAYS,
    EMBEDDINGS_USER_WINDOW_DAYS,
    SEGMENTS_WINDOW_DAYS,
    EVENTS_CLIENT_MAX_AGE_DAYS,
    28,
)
if RETENTION_EVENT_LOG_MONTHS and _event_log_floor > RETENTION_EVENT_LOG_MONTHS * 28:
    raise ImproperlyConfigured(
        f"RETENTION_EVENT_LOG_MONTHS must be 0 (never detach) or at least "
        f"{-(-_event_log_floor // 28)} (the event log is read {_event_log_floor} days back)."
    )
