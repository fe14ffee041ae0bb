"""Every Redis key INBO writes is built here, next to its TTL.

Form: ``inbo:<app>:<thing>:<id>:v<N>``. Bump ``vN`` when the shape of a value changes, so
old and new code never read each other's values. No other module spells a key literal.
"""

from __future__ import annotations

PREFIX = "inbo"

# Django's cache framework prefixes its own keys (``<prefix>:<version>:<key>``) with this;
# the cache lives in its own database (``REDIS_CACHE_URL``), apart from state and broker.
CACHE_KEY_PREFIX = f"{PREFIX}:cache"

# Beat writes its heartbeat every 30 s; readiness calls beat stalled after this long.
BEAT_HEARTBEAT_TTL_SECONDS = 300


def _key(app: str, thing: str, ident: str | int, version: int) -> str:
    return f"{PREFIX}:{app}:{thing}:{ident}:v{version}"


def beat_heartbeat() -> str:
    """Unix time of beat's last heartbeat (string). TTL: ``BEAT_HEARTBEAT_TTL_SECONDS``."""
    return _key("monitoring", "beat_heartbeat", "global", 1)


# Heartbeats older than this are pruned from the set (a worker that stopped without saying
# so); readiness calls a worker live for a much shorter time (``WORKER_HEARTBEAT_MAX_AGE``).
WORKER_HEARTBEAT_RETENTION_SECONDS = 3600


def worker_heartbeats() -> str:
    """Sorted set: Celery worker node name -> Unix time of its last heartbeat.

    Written by every worker's main process every ``WORKER_HEARTBEAT_SECONDS``; members older
    than ``WORKER_HEARTBEAT_RETENTION_SECONDS`` are pruned on write. No TTL.
    """
    return _key("monitoring", "worker_heartbeats", "global", 1)


def beat_last_run() -> str:
    """Hash: task name -> Unix time beat last sent it (written by beat as it publishes).

    No TTL: a daily task's last run must survive a quiet day.
    """
    return _key("monitoring", "beat_last_run", "global", 1)


# --- inbo.accounts: API token -> user, in the cache database (REDIS_CACHE_URL) ------------
# An entry lives AUTH_TOKEN_CACHE_SECONDS and is deleted on every change that can revoke
# the token; a revocation also leaves a marker for this long, so that a request that read
# PostgreSQL before the change cannot store what it read after it.
AUTH_TOKEN_REVOKED_TTL_SECONDS = 60


def auth_token(digest: str) -> str:
    """JSON: the user and creation time of the API token whose SHA-256 is ``digest`` (the key
    itself is never written to Redis). TTL: ``AUTH_TOKEN_CACHE_SECONDS``."""
    return _key("accounts", "token", digest, 1)


def auth_token_revoked(digest: str) -> str:
    """Marker: the token was revoked or its user changed; nothing may cache it meanwhile.
    TTL: ``AUTH_TOKEN_REVOKED_TTL_SECONDS``."""
    return _key("accounts", "token_revoked", digest, 1)


# --- features_app: counters of what users do ------------------------------------------
# Day buckets are read over the last 28 days (the longest window: sync, reconcile) and
# expire one day after that. A bucket holds the day's counts of a block of item ids, few
# enough that its hash stays a listpack (7 event types x 64 items = 448 fields at most, under
# Redis's default ``hash-max-listpack-entries`` 512); docs/FEATURE_STORE.md measures it.
ITEM_DAILY_WINDOW_DAYS = 28
ITEM_DAILY_BLOCK_ITEMS = 64
# Per-user keys (counts, affinity, seen memory, hours) expire this long after the user's
# last event unless ``FEATURES_USER_IDLE_DAYS`` says otherwise (settings).
USER_STATE_TTL_SECONDS = 30 * 86400
# A key written after the expiry its events give it (an old day, a user idle long ago: a
# replay, a late client) still lives this long rather than vanishing at once.
EXPIRED_WRITE_GRACE_SECONDS = 3600


def item_counts(item_id: int) -> str:
    """Hash of an item's lifetime counts by event type (impression, click, read, …)."""
    return _key("features", "item_counts", item_id, 1)


def item_daily(day: int, item_id: int) -> str:
    """Hash of one UTC day's counts of the block of ``ITEM_DAILY_BLOCK_ITEMS`` item ids that
    holds ``item_id``, field ``<item_id>:<event_type>``. Expires at
    :func:`item_daily_expires_at` (the end of the last window that reads the day)."""
    return _key("features", "item_daily", f"{day}.{item_id // ITEM_DAILY_BLOCK_ITEMS}", 2)


def item_daily_expires_at(day: int) -> int:
    """Unix time a day's buckets expire: a day after the last window that reads them."""
    return (day + ITEM_DAILY_WINDOW_DAYS + 1) * 86400


def item_daily_legacy(day: int) -> str:
    """The layout before v2: one hash per UTC day with every item's fields. Nothing writes
    it any more; readers still add it while ``manage.py migrate_counters`` has not moved it
    (or until it expires, 29 days after its last write)."""
    return _key("features", "item_daily", day, 1)


def item_daily_legacy_pattern() -> str:
    """SCAN pattern of the v1 day buckets (:func:`item_daily_legacy`)."""
    return f"{PREFIX}:features:item_daily:*:v1"


def item_daily_parse(key: str) -> tuple[int, int | None] | None:
    """``(day, block)`` of a v2 day bucket, ``(day, None)`` of a v1 one, None otherwise."""
    parts = key.split(":")
    if len(parts) != 5 or parts[2] != "item_daily":
        return None
    day, _, block = parts[3].partition(".")
    if parts[4] == "v2" and block:
        return int(day), int(block)
    if parts[4] == "v1" and not block:
        return int(day), None
    return None


def decayed(kind: str, half_life_hours: float, epoch: int) -> str:
    """Sorted set of exponentially decayed mass per item (``kind``: clicks, expected).

    Scores are stored scaled to the start of ``epoch`` so that adding needs no rewrite of
    older entries; readers scale back to the present. TTL: two epochs.
    """
    return _key("features", f"decayed_{kind}", f"h{half_life_hours:g}e{epoch}", 1)


def item_first_seen() -> str:
    """Hash item id -> unix time of its first impression (set once)."""
    return _key("features", "item_first_seen", "global", 1)


def user_counts(user_id: int) -> str:
    """Hash of a user's event counts by type."""
    return _key("features", "user_counts", user_id, 1)


def user_affinity(user_id: int) -> str:
    """Hash of a user's learned affinity: field ``c<category_id>`` or ``p<provider_id>``."""
    return _key("features", "user_affinity", user_id, 1)


def user_seen(user_id: int) -> str:
    """Hash item id -> impressions the user had of it since their last positive action."""
    return _key("features", "user_seen", user_id, 1)


# Time and place counters (issue 13, FEAT-003/004; experience_app/time_place.py): opens
# counted at the reader's local hour, and per country, decayed like the click sums.
# An item's hours fade with the item; a user's with their other state.
ITEM_HOURS_TTL_SECONDS = 90 * 86400
# A country's decayed sorted set keeps at most this many items (trimmed on write).
REGION_ITEMS_MAX = 5000


def user_hours(user_id: int) -> str:
    """Hash: local hour of week (0 = Monday 00:00 .. 167) -> the user's opens then.
    TTL: ``USER_STATE_TTL_SECONDS``."""
    return _key("features", "user_hours", user_id, 1)


def item_hours(item_id: int) -> str:
    """Hash: readers' local hour of day (0..23) -> opens of the item then.
    TTL: ``ITEM_HOURS_TTL_SECONDS``."""
    return _key("features", "item_hours", item_id, 1)


def hours_global() -> str:
    """Hash: readers' local hour of day (0..23) -> opens of any item then. No TTL (24 fields)."""
    return _key("features", "hours", "global", 1)


def region_clicks(country: str, half_life_hours: float, epoch: int) -> str:
    """Sorted set of decayed opens per item by readers in ``country`` (ISO 3166-1 alpha-2),
    stored as :func:`decayed` stores them (everyone's are ``decayed("clicks", ...)``); at
    most ``REGION_ITEMS_MAX`` members. TTL: two epochs."""
    return _key("features", "region_clicks", f"{country}h{half_life_hours:g}e{epoch}", 1)


def region_totals(half_life_hours: float, epoch: int) -> str:
    """Hash: country (or ``all``) -> decayed opens of every item there, stored as
    :func:`decayed` stores them. TTL: two epochs."""
    return _key("features", "region_totals", f"h{half_life_hours:g}e{epoch}", 1)


# ONLY for ``manage.py features_memory_report``, which writes it in its scratch database
# (REDIS_EVAL_URL): the naive layout the hashes above are measured against. Never used by
# the application, never in the state database.
def memory_report_naive_counter(thing: str, ident: str | int, field: str) -> str:
    """One string key per counter: field ``field`` of the compact key ``thing``/``ident``."""
    return _key("features", f"naive_{thing}", f"{ident}.{field.replace(':', '.')}", 1)


def memory_report_bucket(thing: str, ident: str | int, bucket: int) -> str:
    """A what-if layout the report also measures: the fields of ``thing`` for a block of
    item ids in one small hash (``bucket`` = item id // block size)."""
    return _key("features", f"bucketed_{thing}", f"{ident}.b{bucket}", 1)


# --- experience_app: the home feed ---------------------------------------------------
# Snapshots outlive the cached feed so that a client paging a section keeps its order.
FEED_SNAPSHOT_TTL_SECONDS = 30 * 60


def feed(user_id: int) -> str:
    """The user's ranked home feed (JSON). TTL: ``EXPERIENCE_FEED_CACHE_SECONDS``;
    deleted by the user's own feedback."""
    return _key("experience", "feed", user_id, 1)


def feed_snapshot(user_id: int, version: str) -> str:
    """One version of a user's feed, kept for section paging. TTL: 30 minutes."""
    return _key("experience", "feed_snapshot", f"{user_id}.{version}", 1)


def served_buffer() -> str:
    """List of served-feed records waiting to be written to PostgreSQL in batches."""
    return _key("experience", "served_buffer", "global", 1)


def served_flush_lock() -> str:
    """Lock held while one worker moves the served buffer to PostgreSQL."""
    return _key("experience", "served_flush_lock", "global", 1)


def feed_cache_stats() -> str:
    """Hash of feed cache hits and misses (fields ``hit``, ``miss``)."""
    return _key("experience", "feed_cache_stats", "global", 1)


def evaluation_lock() -> str:
    """Lock of ``manage.py evaluate_ranking``'s scratch database (kept in that database)."""
    return _key("experience", "evaluation_lock", "global", 1)


def scratch_marker() -> str:
    """Marks a Redis database as disposable: the scratch database while a command holds it,
    and the test suite's databases. A database that holds keys but not this one belongs to
    someone else, so ``inbo.scratch`` and the tests refuse to flush it. No TTL."""
    return _key("inbo", "scratch_marker", "global", 1)


def dirty_items() -> str:
    """Set of item ids whose counters changed since they were last synced to PostgreSQL."""
    return _key("features", "dirty_items", "global", 1)


def dirty_items_syncing() -> str:
    """Set of item ids a sync run has claimed from ``dirty_items`` and not yet written.

    A run that dies mid-batch leaves them here; the next run takes them first.
    """
    return _key("features", "dirty_items_syncing", "global", 1)


def features_lock(job: str) -> str:
    """Lock held while one process runs a feature-store job (sync, reconcile, snapshot)."""
    return _key("features", "lock", job, 1)


def features_job_status(job: str) -> str:
    """Hash describing the last run of a feature-store job (finished_at, figures)."""
    return _key("features", "job_status", job, 1)


def features_pattern() -> str:
    """SCAN pattern matching every counter key of the feature store (for snapshots)."""
    return f"{PREFIX}:features:*"


def features_counting_paused() -> str:
    """Held (with a TTL) by a job that needs the counters still: reconcile, snapshot and
    restore. Counting refuses to apply a batch while it exists; the batch stays pending."""
    return _key("features", "pause", "global", 1)


def features_applied_batches() -> str:
    """Sorted set of pending-batch ids applied to the counters (score: applied at), written
    in the same script as the counters; trimmed after an hour (ADR 0016)."""
    return _key("features", "applied", "global", 1)


def features_sentinel() -> str:
    """Written when the counters are complete (after a restore); its absence means Redis
    came back empty, and the pending sweep rebuilds the counters first."""
    return _key("features", "sentinel", "global", 1)


# Keys a snapshot must not copy: locks and job bookkeeping are not counters. The dirty sets
# are copied: a restored item still waiting for its sync must not be forgotten.
FEATURES_SNAPSHOT_EXCLUDED_THINGS = ("lock", "job_status", "pause", "applied", "sentinel")


def item_counts_pattern() -> str:
    """SCAN pattern of every item's lifetime counts hash (id between the last colons)."""
    return f"{PREFIX}:features:item_counts:*:v1"


def feed_generation(user_id: int) -> str:
    """Counter bumped by the user's feedback; a cached feed built under an older value is
    stale even if it was written after the feedback (a build racing an interaction)."""
    return _key("experience", "feed_generation", user_id, 1)


FEED_GENERATION_TTL_SECONDS = 86400


CO_READ_TTL_SECONDS = 600


def co_read(item_id: int) -> str:
    """JSON list of items most engaged with by an item's recent readers. TTL: 10 minutes."""
    return _key("features", "co_read", item_id, 1)


def feed_pages(user_id: int) -> str:
    """The cached feed's first pages, as the exact JSON the home endpoint sends. Same TTL
    and invalidation as :func:`feed`, which holds their metadata."""
    return _key("experience", "feed_pages", user_id, 1)


def feed_served(user_id: int) -> str:
    """JSON of the served-log items of the cached first pages (what each hit logs)."""
    return _key("experience", "feed_served", user_id, 1)


# --- experience_app: predictive caching (feeds built before the reader opens the app) ----
# A reader's open-time profile lives this long after their last open: a dormant reader's
# profile (and their place among the openers) goes, and nothing is built for them.
OPEN_PROFILE_TTL_SECONDS = 35 * 86400


def open_profile(user_id: int) -> str:
    """Hash of a reader's app opens (a home request after a gap): field ``h<0..167>`` the
    opens per UTC hour of week (halved together past a cap, so recent weeks weigh most),
    ``n`` their sum, ``t`` the Unix time of the last home request, ``p`` the place tag and
    ``f`` the platform it came with. TTL: ``OPEN_PROFILE_TTL_SECONDS``, renewed per open."""
    return _key("experience", "open_profile", user_id, 1)


def openers() -> str:
    """Sorted set: user id -> Unix time of their last home request. The prebuild run reads
    its candidates here and trims members older than ``OPEN_PROFILE_TTL_SECONDS``."""
    return _key("experience", "openers", "global", 1)


def feed_prebuilt(user_id: int) -> str:
    """The version of the user's cached feed when a prebuild run built it (not a request);
    its first hit is counted as served from a pre-built feed and deletes it. Same TTL as
    the pre-built feed."""
    return _key("experience", "feed_prebuilt", user_id, 1)


def prebuild_stats() -> str:
    """Hash of prebuild runs' totals: ``runs``, ``built``, ``skipped`` (feed already
    cached), ``failed``, ``seconds`` (build time spent). No TTL."""
    return _key("experience", "prebuild_stats", "global", 1)


# --- search_app: indexing ---------------------------------------------------------------


def search_last_indexed() -> str:
    """Unix time (string) of the last indexing batch that reached every index. No TTL:
    ``search_health`` and readiness report its age."""
    return _key("search", "last_indexed", "global", 1)


# --- inbo.api: throttling (in the Django cache, REDIS_CACHE_URL) ------------------------


def throttle(scope: str, kind: str, ident: str | int) -> str:
    """Request times of one throttle bucket: a scope (``auth``, ``search``...) per ``user``
    or per ``address``. TTL: the period of the scope's rate (DRF's history list)."""
    return _key("api", f"throttle_{scope}_{kind}", ident, 1)


# --- learned models (issue 11): precomputed by Celery, read by the feed ---------------
# A user's learned candidates live a little longer than the nightly retrain that rewrites
# them, so a missed run degrades to stale candidates, not to none.
LEARNED_CANDIDATES_TTL_SECONDS = 3 * 86400
LEARNED_SOURCES = ("als", "similar")


def learned_candidates(source: str, user_id: int) -> str:
    """Sorted set: item id -> score, a user's top items from one learned ``source``.

    ``als``: the ALS model's user x item score (written by ml_app's training and fold-in).
    ``similar``: cosine similarity of the item's text embedding to the user's embedding
    (written by features_app's embedding jobs). TTL: ``LEARNED_CANDIDATES_TTL_SECONDS``.
    """
    if source not in LEARNED_SOURCES:
        raise ValueError(f"unknown learned source {source!r}")
    return _key("learned", f"candidates_{source}", user_id, 1)


def item_neighbours(source: str, item_id: int) -> str:
    """Sorted set: item id -> similarity, an item's nearest items by one learned ``source``
    (``als``: item factors; ``similar``: text embeddings). TTL: as above."""
    if source not in LEARNED_SOURCES:
        raise ValueError(f"unknown learned source {source!r}")
    return _key("learned", f"neighbours_{source}", item_id, 1)


def learned_watermark(job: str) -> str:
    """String: the last ``UserEvent`` id a learned job (ALS fold-in, user embeddings) has
    taken into account. No TTL."""
    return _key("learned", "watermark", job, 1)


def learned_lock(job: str) -> str:
    """Lock of one learned job (training, fold-in, embedding refresh): one run at a time."""
    return _key("learned", "lock", job, 1)


def model_generation(kind: str) -> str:
    """Integer bumped whenever the active version of a model ``kind`` changes, so web
    workers reload it without a restart (they also re-check PostgreSQL every few seconds
    when Redis is away). No TTL."""
    return _key("learned", "model_generation", kind, 1)


# --- features_app: real-time reading sessions (docs/ML.md "Session-based ...") ---------
# Not under ``inbo:features:``: ephemeral state, never copied by counter snapshots nor
# rebuilt by a restore. Bounded: a session keeps its last SESSION_MAX_ITEMS items, an item
# its SESSION_ITEM_MAX_SESSIONS most recent sessions, the index SESSION_INDEX_MAX_SESSIONS
# sessions (the oldest leave it, and every item list they are in), each for at most
# SESSION_INDEX_TTL_SECONDS after its last event.
SESSION_MAX_ITEMS = 50
SESSION_ITEM_MAX_SESSIONS = 500
SESSION_INDEX_MAX_SESSIONS = 50_000
SESSION_INDEX_TTL_SECONDS = 14 * 86400
SESSION_APPLIED_RETENTION_SECONDS = 3600


def session_current(user_id: int) -> str:
    """Hash ``{"sid": session key, "last": unix time of its last engagement}``: the user's
    current session. TTL: twice the session gap (read as over once the gap has passed)."""
    return _key("sessions", "current", user_id, 1)


def session_items() -> str:
    """Hash: session key -> its items in order, comma-separated (the last
    ``SESSION_MAX_ITEMS``, consecutive repeats collapsed). Entries leave with the index."""
    return _key("sessions", "items", "global", 1)


def session_recent() -> str:
    """Sorted set: session key -> unix time of its last engagement (the index, capped at
    ``SESSION_INDEX_MAX_SESSIONS``, entries older than ``SESSION_INDEX_TTL_SECONDS`` pruned)."""
    return _key("sessions", "recent", "global", 1)


def item_sessions(item_id: int | str) -> str:
    """Sorted set: session key -> unix time it last engaged with the item, the
    ``SESSION_ITEM_MAX_SESSIONS`` most recent. TTL: ``SESSION_INDEX_TTL_SECONDS``."""
    return _key("sessions", "item", item_id, 1)


def item_sessions_affixes() -> tuple[str, str]:
    """The text before and after the item id in :func:`item_sessions` (for the Lua scripts,
    which build an item's key from its id)."""
    prefix, _, suffix = item_sessions("\x00").partition("\x00")
    return prefix, suffix


def session_scratch() -> str:
    """Sorted set the neighbour lookup merges item lists into, deleted within the same
    script (never seen outside it)."""
    return _key("sessions", "scratch", "global", 1)


def session_applied_batches() -> str:
    """Sorted set of pending-batch ids whose engagements the session state took (score:
    applied at), so a batch counted again by the sweep is not appended twice; trimmed after
    ``SESSION_APPLIED_RETENTION_SECONDS``."""
    return _key("sessions", "applied", "global", 1)


# --- experiments_app: bandits -----------------------------------------------------------


def bandit_state(bandit_key: str) -> str:
    """JSON ``{"snapshot": id, "applied": n, "arms": [...], "state": {...}}``: a bandit's
    policy state as of its latest ``BanditSnapshot`` (PostgreSQL holds the truth; this is
    the copy the feed reads, one GET per build). Written by ``inbo.experiments.update_bandits``
    only when newer than what is there. No TTL."""
    return _key("experiments", "bandit_state", bandit_key, 1)


# --- features_app: segments (docs/FEATURE_STORE.md "Segments") -------------------------
# Rewritten by every run (hourly); a key outlives a few missed runs, then the request path
# reads PostgreSQL.
USER_SEGMENT_TTL_SECONDS = 2 * 86400


def user_segment(user_id: int) -> str:
    """The user's segments as JSON ``{"e": engagement, "c": cluster, "l": label, "t": unix
    time computed}``, written by the segmentation job, read with the home's cache read.
    TTL: ``USER_SEGMENT_TTL_SECONDS``."""
    return _key("features", "segment", user_id, 1)


def segments_written() -> str:
    """Unix time (string) of the segmentation run whose copies Redis holds, written once all
    of them are: while it exists, a user without ``user_segment`` was not segmented, and the
    request path asks PostgreSQL only when it is gone (Redis lost its data). TTL:
    ``USER_SEGMENT_TTL_SECONDS``."""
    return _key("features", "segments_written", "global", 1)


# --- rules_app: sponsored campaigns ---------------------------------------------------------

# Kept this long past a campaign's end (its delivery stays readable for reports).
RULES_DELIVERED_GRACE_SECONDS = 7 * 86400
RULES_USER_DAY_TTL_SECONDS = 2 * 86400


def rules_delivered(campaign_id: int) -> str:
    """Integer: impressions a sponsored campaign has delivered (one per feed build that puts
    one of its items on ``for_you``'s first page). TTL: the campaign's end plus
    ``RULES_DELIVERED_GRACE_SECONDS``."""
    return _key("rules", "delivered", campaign_id, 1)


def rules_user_day(campaign_id: int, user_id: int, day: str) -> str:
    """Integer: a campaign's impressions to one user on one UTC day (``day`` YYYYMMDD), for
    the per-user cap. TTL: ``RULES_USER_DAY_TTL_SECONDS``."""
    return _key("rules", "user_day", f"{campaign_id}-{user_id}-{day}", 1)


# --- inbo.cache_l1: two-level cache of shared read-mostly data (Django cache, REDIS_CACHE_URL)
# A namespace's entries are keyed by its current version token (a random string, never
# reused, so a cache database that was emptied can never bring old entries back); replacing
# the token orphans every entry of the older one, which then expires with its TTL.


def cache_namespace_version(namespace: str) -> str:
    """The current version token of a cache namespace (``items``, ``providers``, ...),
    replaced to invalidate every process's copies. No TTL."""
    return _key("cache", "version", namespace, 1)


def cache_entry(namespace: str, version: str, key: str | int) -> str:
    """One cached value of a namespace under its version token. TTL: the namespace's L2 TTL
    (``TwoLevelCache(l2_ttl=...)``)."""
    return _key("cache", namespace, f"{version}.{key}", 1)


# --- inbo.replicas: read-your-writes (state database) --------------------------------------


def recent_write(user_id: int) -> str:
    """Present while ``user_id``'s lag-tolerant reads must use the primary: set by each of
    their writes. TTL: ``READ_YOUR_WRITES_SECONDS``."""
    return _key("db", "recent_write", user_id, 1)
