"""User control (issue 13, point 8): what INBO has learned about a reader, said in words,
and the reader's levers on it: edit their settings, remove a learned interest, mute a
provider or topic, reset their recommendations.

Each change takes effect on the very next home: the user's cached feed is forgotten
(``feed.cache.invalidate``). What is learned lives in the feature store (Redis, rebuilt
from the event log); a removal or a reset is recorded here (``ReaderForget``) and the
feature store's recount and fallback leave it out (``forgetting_source``, subscribed in
``ExperienceAppConfig.ready``), so it does not come back.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from django.db import transaction
from django.utils import timezone

from experience_app.models import ReaderForget, ReaderMute, ReaderProfile
from experience_app.selectors import interest_category_ids
from experience_app.services.feed import cache as feed_cache
from features_app import public as features
from features_app.contracts import Forgetting, UserProfile
from inbo.errors import InvalidInput, NotFound
from reading_app import public as reading

logger = logging.getLogger(__name__)

# How many learned categories and providers the profile names, and how many the reader
# skips (negative affinity) it mentions.
TOP_LEARNED = 5
TOP_SKIPPED = 3
# A reader may mute this many providers and topics in all; removals (forgets) are bounded
# the same way (a reset clears them).
MAX_MUTES = 200
MAX_FORGETS = 500

KINDS = (ReaderMute.Kind.PROVIDER.value, ReaderMute.Kind.CATEGORY.value)

# Strength of a learned interest, by its share of the strongest one.
_STRENGTHS = ((0.6, "strong"), (0.25, "medium"), (0.0, "light"))
_CATEGORY_WORDS = {
    "strong": "You read a lot about {name}.",
    "medium": "You often read about {name}.",
    "light": "You sometimes read about {name}.",
    "skipped": "You tend to skip {name}.",
}
_PROVIDER_WORDS = {
    "strong": "You read a lot from {name}.",
    "medium": "You often read {name}.",
    "light": "You sometimes read {name}.",
    "skipped": "You tend to skip {name}.",
}
_ENGAGEMENT_WORDS = {
    "new": "You are new here: INBO is still learning what you like.",
    "casual": "You read now and then.",
    "regular": "You read regularly.",
    "power": "You read on most days, and finish what you open.",
    "dormant": "You have not read for a while.",
}


# --- reads -----------------------------------------------------------------------------


def _learned_profile(user_id: int, now: datetime) -> tuple[UserProfile, bool]:
    """The feature store's profile (Redis), else rebuilt from the log; True when rebuilt."""
    try:
        return features.user_profile(user_id), False
    except redis.RedisError as exc:
        logger.warning("experience.profile_degraded user=%s error=%s", user_id, exc)
        return features.user_profile_from_log(user_id, now=now), True


def _strength(value: float, top: float) -> str:
    share = value / top if top > 0 else 0.0
    return next(name for floor, name in _STRENGTHS if share >= floor)


def _described(
    affinity: Mapping[int, float], names: Mapping[int, str], words: Mapping[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(top liked, top skipped) of an affinity map, each with its strength and sentence;
    targets without a name (deleted since) are left out."""
    known = {k: v for k, v in affinity.items() if k in names}
    liked = sorted((k for k, v in known.items() if v > 0), key=lambda k: (-known[k], k))
    skipped = sorted((k for k, v in known.items() if v < 0), key=lambda k: (known[k], k))
    top = known[liked[0]] if liked else 0.0

    def row(k: int, strength: str) -> dict[str, Any]:
        return {
            "id": k,
            "name": names[k],
            "strength": strength,
            "score": round(known[k], 3),
            "summary": words[strength].format(name=names[k]),
        }

    return (
        [row(k, _strength(known[k], top)) for k in liked[:TOP_LEARNED]],
        [row(k, "skipped") for k in skipped[:TOP_SKIPPED]],
    )


def _segment(user_id: int, reset_at: datetime | None) -> dict[str, Any] | None:
    """The reader's engagement segment and interest cluster, in words (None until the
    segmentation has placed them). A cluster computed before a reset describes the taste
    the reader asked to forget: it is left out until the next run."""
    segment = features.user_segment(user_id)
    if segment is None:
        return None
    engagement = str(segment.engagement)
    stale = reset_at is not None and segment.computed_at <= reset_at
    label = "" if stale else segment.cluster_label or ""
    return {
        "engagement": engagement,
        "engagement_summary": _ENGAGEMENT_WORDS.get(engagement, ""),
        "interest_cluster": label or None,
        "interest_cluster_summary": (
            f"What you read is closest to readers of {label}." if label else ""
        ),
        "computed_at": segment.computed_at,
    }


def _settings(user_id: int) -> dict[str, Any]:
    profile = ReaderProfile.objects.filter(user_id=user_id).first() or ReaderProfile(
        user_id=user_id
    )
    return {
        "timezone": profile.timezone,
        "country": profile.country,
        "region": profile.region,
        "language": profile.language,
        "recommendations_reset_at": profile.recommendations_reset_at,
    }


def mutes_list(*, user_id: int) -> list[dict[str, Any]]:
    """The reader's mutes, newest first, each with the muted thing's name."""
    rows = list(
        ReaderMute.objects.filter(user_id=user_id).values_list("kind", "target_id", "created_at")
    )
    names = _names(
        categories={t for k, t, _ in rows if k == ReaderMute.Kind.CATEGORY},
        providers={t for k, t, _ in rows if k == ReaderMute.Kind.PROVIDER},
    )
    return [
        {"kind": k, "id": t, "name": names[k].get(t, ""), "created_at": at} for k, t, at in rows
    ]


def _names(*, categories: Collection[int], providers: Collection[int]) -> dict[str, dict]:
    return {
        ReaderMute.Kind.CATEGORY: reading.category_names(set(categories)) if categories else {},
        ReaderMute.Kind.PROVIDER: (
            {p: c["name"] for p, c in reading.provider_cards(list(providers)).items()}
            if providers
            else {}
        ),
    }


def profile_read(*, user_id: int, now: datetime | None = None) -> dict[str, Any]:
    """What INBO has learned about the reader, in words, and their editable settings."""
    now = now or timezone.now()
    learned, rebuilt = _learned_profile(user_id, now)
    names = _names(categories=learned.category_affinity, providers=learned.provider_affinity)
    categories, skipped_categories = _described(
        learned.category_affinity, names[ReaderMute.Kind.CATEGORY], _CATEGORY_WORDS
    )
    providers, skipped_providers = _described(
        learned.provider_affinity, names[ReaderMute.Kind.PROVIDER], _PROVIDER_WORDS
    )
    own_settings = _settings(user_id)
    summary = [row["summary"] for row in (*categories[:3], *providers[:2])]
    if not summary:
        summary = ["INBO has not learned your taste yet: read, save or dismiss a few stories."]
    return {
        "summary": summary,
        "learned": {
            "categories": categories,
            "providers": providers,
            "skipped_categories": skipped_categories,
            "skipped_providers": skipped_providers,
            "degraded": rebuilt,
        },
        "picked_topics": reading.categories_by_id(interest_category_ids(user_id=user_id)),
        "subscriptions": len(reading.subscribed_provider_ids(user_id=user_id)),
        "mutes": mutes_list(user_id=user_id),
        "segment": _segment(user_id, own_settings["recommendations_reset_at"]),
        "settings": own_settings,
    }


# --- settings --------------------------------------------------------------------------


def settings_update(*, user_id: int, changes: Mapping[str, str]) -> dict[str, Any]:
    """Change the reader's settings (already validated: time zone, country, region,
    language); a region needs a country. Returns the settings as stored."""
    with transaction.atomic():
        profile, _ = ReaderProfile.objects.select_for_update().get_or_create(user_id=user_id)
        for name, value in changes.items():
            setattr(profile, name, value)
        if profile.region and not profile.country:
            raise InvalidInput(
                "A region needs a country.",
                details={"region": ["Set a country for this region, or clear the region."]},
            )
        profile.save()
    feed_cache.invalidate(user_id)
    return _settings(user_id)


# --- removing a learned interest -------------------------------------------------------


def _target_name(kind: str, target_id: int) -> str:
    """The name of an existing category or provider; NotFound otherwise."""
    if kind == ReaderMute.Kind.CATEGORY:
        name = reading.category_names([target_id]).get(target_id)
    else:
        card = reading.provider_cards([target_id]).get(target_id)
        name = card["name"] if card else None
    if name is None:
        raise NotFound(f"No {kind} with id {target_id}.")
    return name


@dataclass(frozen=True, slots=True)
class Forgotten:
    kind: str
    id: int
    name: str
    at: datetime


def interest_forget(
    *, user_id: int, kind: str, target_id: int, now: datetime | None = None
) -> Forgotten:
    """Forget what the reader's events so far taught INBO about one category or provider:
    recorded (the recount and the fallback leave it out from now on), and zeroed in Redis
    at once. Later reading teaches it again."""
    now = now or timezone.now()
    name = _target_name(kind, target_id)
    with transaction.atomic():
        exists = ReaderForget.objects.filter(user_id=user_id, kind=kind, target_id=target_id)
        if not exists.exists() and ReaderForget.objects.filter(user_id=user_id).count() >= (
            MAX_FORGETS
        ):
            raise InvalidInput(
                f"At most {MAX_FORGETS} removed interests; reset your recommendations instead.",
                details={"id": ["Too many removed interests."]},
            )
        ReaderForget.objects.update_or_create(
            user_id=user_id, kind=kind, target_id=target_id, defaults={"at": now}
        )
    record = Forgetting(
        user_id=user_id,
        before=now,
        category_id=target_id if kind == ReaderForget.Kind.CATEGORY else None,
        provider_id=target_id if kind == ReaderForget.Kind.PROVIDER else None,
    )
    features.forget_now(record)
    feed_cache.invalidate(user_id)
    logger.info("experience.interest_forgotten user=%s kind=%s id=%s", user_id, kind, target_id)
    return Forgotten(kind, target_id, name, now)


def recommendations_reset(*, user_id: int, now: datetime | None = None) -> datetime:
    """Start the reader's recommendations over: everything learned from their events so
    far is forgotten (affinity, seen memory, event counts, learned candidates, user
    vector), in Redis now and in every later recount. Subscriptions, saves, reading
    progress, mutes and picked topics stay."""
    now = now or timezone.now()
    with transaction.atomic():
        profile, _ = ReaderProfile.objects.select_for_update().get_or_create(user_id=user_id)
        profile.recommendations_reset_at = now
        profile.save(update_fields=["recommendations_reset_at", "updated_at"])
        # The reset covers every earlier removal: one row says it all.
        ReaderForget.objects.filter(user_id=user_id).delete()
        ReaderForget.objects.create(user_id=user_id, kind=ReaderForget.Kind.ALL, at=now)
    features.forget_now(Forgetting(user_id=user_id, before=now))
    feed_cache.invalidate(user_id)
    logger.info("experience.recommendations_reset user=%s", user_id)
    return now


def forgetting_source(user_ids: Collection[int] | None) -> Iterable[Forgetting]:
    """Every removal and reset of ``user_ids`` (None: of everyone), for the feature store
    (``features_app.public.subscribe_forgetting``)."""
    rows = ReaderForget.objects.order_by()
    if user_ids is not None:
        rows = rows.filter(user_id__in=list(user_ids))
    for user_id, kind, target_id, at in rows.values_list("user_id", "kind", "target_id", "at"):
        yield Forgetting(
            user_id=user_id,
            before=at,
            category_id=target_id if kind == ReaderForget.Kind.CATEGORY else None,
            provider_id=target_id if kind == ReaderForget.Kind.PROVIDER else None,
        )


# --- mutes -----------------------------------------------------------------------------


def mute_add(*, user_id: int, kind: str, target_id: int) -> tuple[dict[str, Any], bool]:
    """Mute a provider or topic (idempotent): (the mute, whether it is new). NotFound for
    an unknown target; InvalidInput past ``MAX_MUTES``."""
    name = _target_name(kind, target_id)
    with transaction.atomic():
        # Serialises one reader's mutes, so the bound holds under concurrent requests.
        ReaderProfile.objects.select_for_update().get_or_create(user_id=user_id)
        mute = ReaderMute.objects.filter(user_id=user_id, kind=kind, target_id=target_id).first()
        created = mute is None
        if mute is None:
            if ReaderMute.objects.filter(user_id=user_id).count() >= MAX_MUTES:
                raise InvalidInput(
                    f"At most {MAX_MUTES} mutes; unmute something first.",
                    details={"id": ["Too many mutes."]},
                )
            mute = ReaderMute.objects.create(user_id=user_id, kind=kind, target_id=target_id)
    if created:
        feed_cache.invalidate(user_id)
    return {"kind": kind, "id": target_id, "name": name, "created_at": mute.created_at}, created


def mute_remove(*, user_id: int, kind: str, target_id: int) -> None:
    """Unmute; NotFound when it was not muted (by this reader)."""
    deleted, _ = ReaderMute.objects.filter(user_id=user_id, kind=kind, target_id=target_id).delete()
    if not deleted:
        raise NotFound(f"You have not muted {kind} {target_id}.")
    feed_cache.invalidate(user_id)
