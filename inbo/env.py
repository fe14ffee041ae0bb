"""Small, strict readers for environment variables (one place, typed results)."""

from __future__ import annotations

import os
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [part.strip() for part in raw.split(",") if part.strip()]


# Redis serves databases 0-15 unless its `databases` setting says otherwise.
REDIS_LAST_DATABASE = 15


def _redis_url_parts(url: str) -> SplitResult:
    parts = urlsplit(url)
    if not parts.scheme or "://" not in url:
        raise ImproperlyConfigured(f"Not a Redis URL: {url!r}")
    return parts


def redis_db_of(url: str) -> int:
    """The database number of a Redis URL: its path (``redis://h/3``), or its ``db`` query
    parameter (``unix:///run/redis.sock?db=3``), or 0 as redis-py reads it."""
    parts = _redis_url_parts(url)
    raw = "" if parts.scheme == "unix" else parts.path.strip("/")
    if not raw:
        raw = dict(parse_qsl(parts.query)).get("db", "0")
    try:
        db = int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"Not a Redis database number in {url!r}: {raw!r}") from exc
    if db < 0:
        raise ImproperlyConfigured(f"Not a Redis database number in {url!r}: {raw!r}")
    return db


def redis_url_with_db(base_url: str, db: int) -> str:
    """Return ``base_url`` pointing at database ``db`` (replacing any it had)."""
    parts = _redis_url_parts(base_url)
    if parts.scheme == "unix":
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "db"] + [("db", str(db))]
        # urlunsplit would drop the empty host's "//".
        return f"unix://{parts.path}?{urlencode(query)}"
    return urlunsplit(parts._replace(path=f"/{db}"))


def env_redis_role_url(name: str, base_url: str, offset: int) -> str:
    """The URL of one Redis role: ``name`` when set, else ``base_url`` with its database
    number plus ``offset``, so the roles take consecutive databases from the one the operator
    chose (two installations on one server with ``/0`` and ``/4`` never share a database).

    A role past the server's last database is refused rather than wrapped or shared.
    """
    raw = os.environ.get(name, "").strip()
    if raw:
        return raw
    db = redis_db_of(base_url) + offset
    if db > REDIS_LAST_DATABASE:
        raise ImproperlyConfigured(
            f"{name} would be database {db} (REDIS_URL's database "
            f"{redis_db_of(base_url)} + {offset}), past Redis's last database "
            f"({REDIS_LAST_DATABASE}). The roles use four consecutive databases from REDIS_URL's: "
            f"give REDIS_URL a database of at most {REDIS_LAST_DATABASE - 3}, or set "
            "REDIS_BROKER_URL, REDIS_CACHE_URL, REDIS_STATE_URL and REDIS_EVAL_URL explicitly."
        )
    return redis_url_with_db(base_url, db)
