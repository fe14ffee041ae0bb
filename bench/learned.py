"""The learned path in the benchmark world: an active reranker and learned candidates.

``make bench`` measures the home feed twice in one run: on the **linear** path (no learned
candidates in Redis, ``ML_RERANKER_ENABLED=false``: the feed as it was before the learned
models) and on the **learned** path (every measured user has ``als`` and ``similar``
candidates in Redis and a reranker version is active). The difference is everything the
learned path adds to a request: the learned candidates' read (one pipeline of two
``ZREVRANGE``), up to ``ML_LEARNED_POOL`` extra candidates per source through facets,
signals and ranking, and the LightGBM rerank with per-item contributions. Leaving the
candidates in place for the linear run would hide the cost of the larger pool.

The reranker is trained here from synthetic rows with the trainer's parameters
(``ml_app.public.RERANKER_PARAMS``) for the trainer's maximum number of rounds
(``RERANKER_MAX_ROUNDS``), so it is the
largest model training can produce (100 trees of 7 leaves): what it costs to serve
matters here, not what it ranks. The learned candidates are synthetic scores over real
published items of the candidate window.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np

NOTE = "bench: synthetic rows, maximum size (100 rounds of 7 leaves); cost only, not quality"
KIND = "reranker"
CANDIDATES = 200  # per source, as the Celery jobs write them (ML_ALS_CANDIDATES)
CANDIDATES_TTL_SECONDS = 3600


def synthetic_rows(groups: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``groups`` ranked lists of ``size`` candidates: FEATURES-shaped rows (signals in their
    served ranges, ``als``/``similarity`` missing for part of them) and graded labels
    (0-5) that depend on a few features plus noise, so the trees use every leaf."""
    from experience_app.public import FEATURES

    rng = np.random.default_rng(seed)
    n = groups * size
    x = rng.random((n, len(FEATURES)))
    index = {name: i for i, name in enumerate(FEATURES)}
    for name in ("impressions_log", "clicks_log", "reads_log", "saves_log", "age_hours_log"):
        x[:, index[name]] *= 8.0
    x[:, index["subscribed"]] = rng.random(n) < 0.2
    x[:, index["seen"]] = rng.integers(0, 3, n)
    for name, missing in (("als", 0.4), ("similarity", 0.3)):
        x[rng.random(n) < missing, index[name]] = np.nan
    signal = (
        2 * x[:, index["affinity"]]
        + x[:, index["popularity"]]
        + x[:, index["freshness"]]
        + np.nan_to_num(x[:, index["als"]])
        - x[:, index["dismiss_rate"]]
        + rng.normal(0, 0.6, n)
    )
    labels = np.digitize(signal, np.quantile(signal, [0.6, 0.8, 0.9, 0.96, 0.99]))
    return x, labels.astype(np.int32)


def train_booster(groups: int = 300, size: int = 100, threads: int = 1):
    import lightgbm as lgb

    x, y = synthetic_rows(groups, size)
    data = lgb.Dataset(x, label=y, group=[size] * groups, free_raw_data=True)
    from ml_app.public import RERANKER_MAX_ROUNDS, RERANKER_PARAMS

    return lgb.train(
        {**RERANKER_PARAMS, "num_threads": threads}, data, num_boost_round=RERANKER_MAX_ROUNDS
    )


def reranker_version():
    """The benchmark's reranker version in the registry (registered once, reused by later
    runs while its parameters are the same)."""
    from experience_app.public import FEATURES, model_register, model_versions
    from ml_app.public import RERANKER_MAX_ROUNDS, RERANKER_PARAMS

    params = {**RERANKER_PARAMS, "num_boost_round": RERANKER_MAX_ROUNDS, "init_score": "linear"}
    for version in model_versions(KIND, limit=1000):
        same = version.params == params and list(version.features) == list(FEATURES)
        if version.note == NOTE and same:
            return version
    now = datetime.now(UTC)
    return model_register(
        KIND,
        train_booster().model_to_string().encode(),
        trained_from=now - timedelta(days=14),
        trained_to=now,
        params=params,
        metrics={"rows": "synthetic"},
        gate={"passed": False, "reason": "bench model, forced"},
        features=FEATURES,
        note=NOTE,
    )


def reranker_activate() -> str:
    """Make the benchmark's reranker the active version; returns its label."""
    from experience_app.public import model_active, model_promote

    version = reranker_version()
    active = model_active(KIND)
    if active is not None and active.id == version.id:
        return str(active.label)
    return str(model_promote(version.id, force=True, by="bench").label)


def reranker_retire() -> None:
    """Roll the benchmark's reranker back (to what was active before it, if anything)."""
    from experience_app.public import model_active, model_rollback

    active = model_active(KIND)
    if active is not None and active.note == NOTE:
        model_rollback(KIND, by="bench")


def candidate_pool() -> list[int]:
    """Published items of the feed's candidate window (what ALS and embeddings rank)."""
    from django.conf import settings

    from reading_app.public import recent_item_ids

    since = datetime.now(UTC) - timedelta(days=settings.EXPERIENCE_CANDIDATE_DAYS)
    return recent_item_ids(since=since, limit=50_000)


def candidates_write(user_ids: list[int], pool: list[int], seed: int = 11) -> int:
    """Top-``CANDIDATES`` ``als`` and ``similar`` lists for each user (synthetic scores over
    ``pool``), as the Celery jobs write them; returns the number of keys written."""
    from inbo import keys
    from inbo import redis as inbo_redis

    rng = random.Random(seed)
    client = inbo_redis.state()
    written = 0
    for start in range(0, len(user_ids), 500):
        pipe = client.pipeline(transaction=False)
        for user_id in user_ids[start : start + 500]:
            for source, top in (("als", 1.2), ("similar", 0.9)):
                items = rng.sample(pool, min(CANDIDATES, len(pool)))
                scores = sorted((rng.uniform(0.05, top) for _ in items), reverse=True)
                key = keys.learned_candidates(source, user_id)
                pipe.delete(key)
                pipe.zadd(key, {str(i): s for i, s in zip(items, scores, strict=True)})
                pipe.expire(key, CANDIDATES_TTL_SECONDS)
                written += 1
        pipe.execute()
    return written


def candidates_forget(user_ids: list[int]) -> None:
    from inbo import keys
    from inbo import redis as inbo_redis

    names = [keys.learned_candidates(s, u) for u in user_ids for s in keys.LEARNED_SOURCES]
    client = inbo_redis.state()
    for start in range(0, len(names), 5000):
        client.delete(*names[start : start + 5000])


def report(figures: dict, ratios: dict) -> list[str]:
    """The learned path's lines of ``make bench``'s table."""
    f, r = figures, ratios
    cold, warm = f["home_cold"], f["home_warm"]
    lc, lw = f["home_cold_learned"], f["home_warm_learned"]

    def app(x: dict) -> float:
        return float(x["cpu_ms_per_request"]["app"])

    return [
        f"learned path (served by {lc['ranker']}; linear runs by {cold['ranker']}): app CPU "
        f"per request cold {app(lc):.2f} vs {app(cold):.2f} ms = "
        f"{r['learned_cold_app_cpu_vs_linear']:.2f}x, warm {app(lw):.2f} vs {app(warm):.2f} ms"
        f" = {r['learned_warm_app_cpu_vs_linear']:.2f}x; app+pg+redis cold "
        f"{r['learned_cold_cpu_cost_vs_linear']:.2f}x, warm "
        f"{r['learned_warm_cpu_cost_vs_linear']:.2f}x",
        f"learned feed cache: warm run {lw['cache_hits']:,} hits / {lw['cache_misses']:,} "
        f"misses; cold run {lc['cache_hits']:,} hits / {lc['cache_misses']:,} misses",
    ]
