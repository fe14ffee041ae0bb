"""How experiments change the feed without experience_app knowing about experiments (ADR 0021).

experiments_app sits above experience_app: it registers one :class:`TreatmentProvider` at
start-up (``experience_app.public.set_treatment_provider``, called from its
``AppConfig.ready``), as search_app subscribes to reading_app's catalog changes. The feed
asks the provider, per request, what the user's running experiments change — a
:class:`Treatment` — and tells it back when the treated feed was served (the exposure) and
which random choices it made (bandit arms, the exploration slot) with their propensities.

A provider that fails never fails the feed: :func:`resolve` answers the empty treatment
(everyone's default, i.e. control) and the feed is served as without experiments.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from django.db import DatabaseError

logger = logging.getLogger(__name__)

# Candidate sources a variant may switch off (``Treatment.sources_off``).
SOURCES = ("focused", "recent", "fresh", "related", "trending", "als", "similar", "session")


@dataclass(frozen=True, slots=True)
class Assignment:
    """The user is in ``variant`` of ``experiment`` (keys; ids for the exposure log)."""

    experiment: str
    variant: str
    experiment_id: int
    variant_id: int


@dataclass(frozen=True, slots=True)
class Treatment:
    """What the user's running experiments change in their feed. The empty treatment is
    today's feed. Built by the provider from the variants' configs (their union: the
    experiments of one layer never share a user, those of different layers must not change
    the same thing, which experiments_app validates)."""

    assignments: tuple[Assignment, ...] = ()
    # Overrides of ``ranking.Weights`` fields, e.g. {"freshness": 0.8}.
    weights: Mapping[str, float] = field(default_factory=dict)
    # None: the registry's active reranker; "linear": none; "reranker:v3": that version.
    reranker: str | None = None
    # Candidate sources left out (names from ``SOURCES``).
    sources_off: frozenset[str] = frozenset()
    # Section order for this user (keys of ``feed.build.SECTION_ORDER``, others after).
    section_order: tuple[str, ...] | None = None
    # A bandit (its key) that picks the section order per feed build.
    bandit: str | None = None
    # The exploration slot of ``for_you``: {"position": int, "pool": int,
    # "temperature": float, "max_age_hours": float}; None: no slot.
    explore: Mapping[str, Any] | None = None

    @property
    def empty(self) -> bool:
        return not self.assignments

    def signature(self) -> str:
        """Names the treatment: a cached feed built under another one is built again."""
        if self.empty:
            return ""
        raw = json.dumps(
            [
                [[a.experiment, a.variant] for a in self.assignments],
                dict(sorted(self.weights.items())),
                self.reranker,
                sorted(self.sources_off),
                self.section_order,
                self.bandit,
                dict(sorted((self.explore or {}).items())),
            ],
            separators=(",", ":"),
            default=str,
        )
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def experiments_json(self) -> dict[str, str]:
        """{experiment key: variant key}: what the response and the served log carry."""
        return {a.experiment: a.variant for a in self.assignments}


EMPTY = Treatment()


@dataclass(frozen=True, slots=True)
class Decision:
    """One random choice the feed made for a user, with the probability it had (the
    propensity off-policy evaluation divides by). ``kind`` is "bandit" (``key`` the
    bandit, ``arm`` the section order chosen) or "explore" (``arm`` the item id put in the
    exploration slot, ``candidates`` what it was drawn from, with their signals)."""

    kind: str
    key: str
    arm: str
    propensity: float
    context: Mapping[str, Any] = field(default_factory=dict)
    candidates: Sequence[Mapping[str, Any]] = ()
    payload: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind,
            "key": self.key,
            "arm": self.arm,
            "propensity": round(self.propensity, 6),
            "context": dict(self.context),
        }
        if self.candidates:
            data["candidates"] = [dict(c) for c in self.candidates]
        if self.payload:
            data["payload"] = dict(self.payload)
        return data


@dataclass(frozen=True, slots=True)
class FeedContext:
    """What a provider may look at to decide (targeting, bandit context)."""

    now: datetime
    platform: str | None = None
    # The user's engagement segment (``features_app.public.user_segment``), for targeting.
    segment: str | None = None


class TreatmentProvider(Protocol):
    """What experiments_app implements (``experiments_app.serving``)."""

    def treatment(self, user_id: int | None, context: FeedContext) -> Treatment:
        """The user's treatment. Cheap: called on every home request, cache hits too."""
        ...

    def choose(
        self, bandit: str, user_id: int, context: Mapping[str, Any], now: datetime
    ) -> Decision | None:
        """The bandit's arm for this build (``Decision.payload["order"]`` the section
        order), or None to keep the default order (unknown bandit, no state)."""
        ...

    def served(
        self,
        user_id: int,
        treatment: Treatment,
        decisions: Sequence[Decision],
        *,
        request_id: str,
        now: datetime,
    ) -> None:
        """A feed built under ``treatment`` was served: log the exposures (once per user
        and experiment) and the decisions with their propensities."""
        ...


_provider: TreatmentProvider | None = None


def set_provider(provider: TreatmentProvider | None) -> None:
    """Register the one provider (experiments_app's ``AppConfig.ready``); None removes it."""
    global _provider
    _provider = provider


def provider() -> TreatmentProvider | None:
    return _provider


def resolve(user_id: int | None, context: FeedContext) -> Treatment:
    """The user's treatment, or the empty one (no provider, or the provider failed)."""
    if _provider is None or user_id is None:
        return EMPTY
    try:
        return _provider.treatment(user_id, context)
    except Exception:  # an experiment must never take the feed down
        logger.exception("experience.treatment_failed user=%s", user_id)
        return EMPTY


def choose(bandit: str, user_id: int, context: Mapping[str, Any], now: datetime) -> Decision | None:
    if _provider is None:
        return None
    try:
        return _provider.choose(bandit, user_id, context, now)
    except Exception:
        logger.exception("experience.bandit_failed bandit=%s user=%s", bandit, user_id)
        return None


def served(
    user_id: int,
    treatment: Treatment,
    decisions: Sequence[Decision],
    *,
    request_id: str,
    now: datetime,
) -> None:
    """Tell the provider. A database error propagates (the request fails as a 503 rather
    than serving a treated feed whose exposure was not logged); any other failure is
    logged and the response still goes out."""
    if _provider is None or (treatment.empty and not decisions):
        return
    try:
        _provider.served(user_id, treatment, decisions, request_id=request_id, now=now)
    except DatabaseError:
        raise
    except Exception:
        logger.exception("experience.exposure_failed user=%s", user_id)
