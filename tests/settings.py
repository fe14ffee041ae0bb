"""Settings for the test run: the project's settings, with test-owned Redis databases.

Redis databases 12-15 belong to the tests (12 evaluation scratch, 13 broker, 14 cache, 15
state; README, "Tests and Redis"), so a run never touches a developer's local queue, cache
or counters (0-3). tests/redis_guard.py stops the run before a flush if one of them holds
keys the tests did not write. pytest-django creates ``test_<name>`` in PostgreSQL.
Environment variables still win, so CI can point the tests elsewhere.
"""

import os

os.environ.setdefault("INBO_ENV", "test")
os.environ.setdefault("REDIS_BROKER_URL", "redis://127.0.0.1:6379/13")
os.environ.setdefault("REDIS_CACHE_URL", "redis://127.0.0.1:6379/14")
os.environ.setdefault("REDIS_STATE_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("REDIS_EVAL_URL", "redis://127.0.0.1:6379/12")
os.environ.setdefault("SECURE_TRANSPORT", "false")
os.environ.setdefault("STATIC_MANIFEST", "false")

from inbo.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, tests only
# Rates high enough that no test trips a throttle by accident; throttling tests set their own.
THROTTLE_RATES = {scope: "100000/min" for scope in THROTTLE_RATES}  # noqa: F405
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": THROTTLE_RATES}  # noqa: F405
WHITENOISE_AUTOREFRESH = True  # no collectstatic in tests
WHITENOISE_USE_FINDERS = True  # ...so static files come from the apps (pytest turns DEBUG off)
# The business rules' version is checked once an hour in tests (5 s in production): a query
# count must not depend on how long a test ran. tests/rules/ checks on every request.
RULES_REFRESH_SECONDS = 3600.0
RULES_RELOAD_SECONDS = 3600.0
