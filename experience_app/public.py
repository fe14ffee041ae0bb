"""The experience_app facade: the only module other apps import from here."""

from __future__ import annotations

import redis

from experience_app import open_times, time_place, treatments
from experience_app.datasets import demo as demo_plan
from experience_app.datasets import demo_words
from experience_app.learned import FEATURES, feature_vector
from experience_app.models import ExperienceInteraction, ModelVersion, ServedFeed
from experience_app.ranking import Candidate, Scored, UserContext, Weights, linear_score, rank
from experience_app.selectors import home_engagements, interactions_between, served_between
from experience_app.services import interactions, prebuild, registry
from experience_app.services.feed import build as feed_build
from experience_app.services.feed import cache as feed_cache
from experience_app.services.feed import served_log
from experience_app.services.progress_bars import bar
from experience_app.services.rerank import ArtifactError, load_artifact, rerank
from experience_app.services.users import users_ensure
from experience_app.treatments import SOURCES, Assignment, Decision, FeedContext, Treatment
from inbo import keys
from inbo import redis as inbo_redis

# The ranking function and its inputs are part of the facade: the offline replay
# (ml_app.evaluation) ranks with exactly what the feed ranks with. ``users_ensure`` and
# ``bar`` serve the offline loaders (ml_app), which create accounts and show progress
# as the demo world does. ``demo_plan`` and ``demo_words`` (pure generators of the demo
# world) let bench/ build its large world from the same taxonomy and vocabulary.
__all__ = [
    "FEATURES",
    "SECTION_ORDER",
    "SOURCES",
    "ArtifactError",
    "Assignment",
    "Candidate",
    "Decision",
    "FeedContext",
    "InteractionIn",
    "ModelVersion",
    "Scored",
    "Treatment",
    "UserContext",
    "Weights",
    "analysis_tables",
    "bar",
    "demo_plan",
    "demo_words",
    "feature_vector",
    "feed_cache_stats",
    "home_engagements",
    "home_json",
    "interactions_between",
    "interactions_record",
    "linear_score",
    "load_artifact",
    "model_active",
    "model_promote",
    "model_register",
    "model_rollback",
    "model_versions",
    "open_times",
    "prebuild_stats",
    "rank",
    "rerank",
    "served_between",
    "served_log_flush",
    "set_treatment_provider",
    "time_place",
    "users_ensure",
]

# Experiments (issue 12, ADR 0021): experiments_app, above this app, registers the provider
# the feed asks for each user's treatment (``treatments``); a variant's config names
# sections and sources, a bandit's arms are section orders; rewards are home engagements.
set_treatment_provider = treatments.set_provider
SECTION_ORDER = feed_build.SECTION_ORDER

# A simulated client (experiments_app.traffic, ``manage.py experiment_simulate``) uses the
# product as an app does: the home response, the interactions it reports, and the served
# log's flush that a beat task runs in production.
home_json = feed_cache.home_json
interactions_record = interactions.interactions_record
InteractionIn = interactions.InteractionIn
served_log_flush = served_log.flush


# The model registry (issue 11): ml_app registers what it trains with the gate it measured;
# operators promote and roll back (admin, manage.py); serving loads the active version.
# ``load_artifact`` is how serving reads a version: the gate scores the active one with it.
# ``rerank`` is what the feed runs with the loaded model (bench/ml.py times it).
model_register = registry.register
model_promote = registry.promote
model_rollback = registry.rollback
model_versions = registry.versions
model_active = registry.active


# Predictive caching (OPT-002): the likelihood and selection the beat task runs, which the
# replay on real timestamps (``manage.py evaluate_prebuild``) runs too; the runs' totals and
# home requests by source (pre-built, cached, built) for the metrics.
prebuild_stats = prebuild.stats


def feed_cache_stats() -> dict[str, int] | None:
    """Home feed cache hits and misses since Redis last lost its data; None if unreachable."""
    try:
        raw = inbo_redis.state().hgetall(keys.feed_cache_stats())
    except redis.RedisError:
        return None
    return {"hit": int(raw.get("hit", 0)), "miss": int(raw.get("miss", 0))}


def analysis_tables() -> dict[str, str]:
    """Table names of the served log (``served_feed``: user_id, served_at, items, experiments,
    latency_ms) and of client-reported interactions (``interaction``: user_id,
    interaction_type, section, occurred_at), for analyses that aggregate them in raw SQL
    (experiments' metrics per variant)."""
    return {
        "served_feed": ServedFeed._meta.db_table,
        "interaction": ExperienceInteraction._meta.db_table,
    }
