"""A live A/B test on the demo world: simulated users drive the whole product (issue 12).

``simulate`` creates a real experiment (control against one treatment, 50/50, primary
metric ``home_ctr``, guardrails ``dismiss_rate`` and ``latency_p95``), runs ``days`` simulated
days before its start (the pre-period CUPED reads) and ``days`` after it, stops it, and
returns the real report (``experiments_app.services.report``). Every simulated session
goes through the product as an app would: ``home_json(user, now=t)`` (the real feed under
the user's treatment, the cache, the exposure log, the served log), then the client reports
what the user did through ``interactions_record`` with the response's ``request_id`` and each
item's section and position (the event log, the Redis counters and the cache invalidation
follow through the normal ingestion path), reading progress is written through
``reading_app``'s facade, and the served log is flushed to PostgreSQL every simulated hour.

The clock. The demo world's items are published up to its creation time and the feed
takes every published item as a candidate, so simulated time must never precede a stored
item: the clock starts at the next whole hour after the wall clock (or after the last
experiment that ended in simulated time), and the world keeps publishing while it runs
(at its own rate: its items per day over the 60 days it was seeded with, from the same
generator, by the same providers), each item created only once the clock has passed its
publication time. Simulated times are thus in the future of the wall clock: read such an
experiment with this module's report (``now`` = its end), not with a wall-clock report.

The behaviour model (the ground truth; it never sees the variant). Each user is a demo
user with the latent favourite subcategories and activity level the demo plan gave them.

* Sessions: per simulated day a Poisson number of home visits with mean
  ``SESSIONS_PER_DAY * activity`` (at most ``MAX_SESSIONS_PER_DAY``), at uniform times.
* Examination (a position-based model): the user looks at the ``s``-th section of the
  response (0 first) with probability ``SECTION_LOOK ** s`` and, in a section looked at, at
  the item in position ``p`` with probability ``POSITION_LOOK ** p``. Every item looked at is
  reported as an ``impression``.
* Click: an item looked at is clicked with probability ``CLICK_BASE * taste * appeal``, at
  most ``MAX_CLICKS`` per session. ``taste`` is ``TASTE["favourite"]`` when one of the item's
  categories is a favourite subcategory, ``TASTE["related"]`` when it shares a top category
  with one, ``TASTE["other"]`` otherwise; ``appeal = FRESH_FLOOR + (1 - FRESH_FLOOR) *
  2 ** (-age / FRESH_HALF_LIFE_HOURS)`` (users prefer new issues: a day-old one appeals 0.76,
  a week-old one 0.37).
* After a click: read to the end with probability ``READ_END_BASE + READ_END_TASTE *
  taste`` (a ``read`` interaction and a completed reading progress), otherwise a partial
  read of uniform depth in ``DEPTH_RANGE`` (reading progress only); the dwell is uniform in
  ``DWELL_SECONDS`` (scaled by depth) and the session's clock moves on by it.
* Dismissal: an item looked at and not clicked is dismissed with probability
  ``DISMISS_BASE * (1 - taste)`` (one in ``HIDE_SHARE`` of them a ``hide``).

So a variant can only move the metrics by what it puts where: the result depends on this
model and is a proof that the pipeline measures, not evidence about real readers.
Deterministic for a seed: the sessions and each session's choices come from generators
seeded by (seed, user number, session), the experiment's salt from the seed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import IO, Any

import numpy as np
from django.contrib.auth import get_user_model
from django.core.management.base import OutputWrapper
from django.db.models import Max
from django.utils import timezone

from experience_app import public as experience
from experiments_app.models import Experiment, Metric
from experiments_app.services import lifecycle
from experiments_app.services.report import experiment_report
from experiments_app.services.validation import VariantSpec, validate_config
from inbo.errors import InvalidInput
from reading_app import public as reading
from reading_app.contracts import ItemIn

# --- the behaviour model (module docstring) ----------------------------------------------
SESSIONS_PER_DAY = 1.2
MAX_SESSIONS_PER_DAY = 6.0
SECTION_LOOK = 0.85
POSITION_LOOK = 0.78
CLICK_BASE = 0.25
TASTE = {"favourite": 1.0, "related": 0.35, "other": 0.08}
FRESH_FLOOR = 0.3
FRESH_HALF_LIFE_HOURS = 48.0
MAX_CLICKS = 3
READ_END_BASE = 0.2
READ_END_TASTE = 0.3
DEPTH_RANGE = (0.05, 0.9)
DWELL_SECONDS = (60.0, 480.0)
DISMISS_BASE = 0.02
HIDE_SHARE = 6

DEFAULT_KEY = "demo-freshness"
DEFAULT_LAYER = "home"
CONTROL = "control"
DEFAULT_TREATMENT = "fresher"
DEFAULT_CONFIG: dict[str, Any] = {"weights": {"freshness": 1.2}}
GUARDRAILS = (Metric.DISMISS_RATE.value, "latency_p95")
STOP_REASON = "simulation finished"
DEMO_WORLD_DAYS = 60  # the days a seeded demo world spans (experience_app.services.demo)
DEMO_USER_PREFIX = "demo_user_"
MAX_DAYS = 30  # the event log keeps partitions three months ahead: stay well inside


@dataclass(frozen=True)
class Settings:
    """What to simulate (``manage.py experiment_simulate`` options)."""

    key: str = DEFAULT_KEY
    layer: str = DEFAULT_LAYER
    treatment: str = DEFAULT_TREATMENT
    config: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_CONFIG))
    days: int = 7
    users: int | None = None  # the first N demo users; None: all
    seed: int = 1
    world_seed: int = 42  # the seed the demo world was generated with
    start: datetime | None = None  # the simulated clock's start; None: the next free hour
    items_per_day: float | None = None  # None: the demo world's own rate


@dataclass(frozen=True)
class SimUser:
    """A demo user as the behaviour model knows them."""

    user_id: int
    number: int
    activity: float
    favourite_ids: frozenset[int]  # favourite subcategories
    related_ids: frozenset[int]  # their top categories

    def taste(self, category_ids: tuple[int, ...]) -> float:
        cats = set(category_ids)
        if cats & self.favourite_ids:
            return TASTE["favourite"]
        if cats & self.related_ids:
            return TASTE["related"]
        return TASTE["other"]


@dataclass
class Outcome:
    """What a simulation did and the experiment's report at its end."""

    key: str
    database: str
    start: datetime
    experiment_start: datetime
    end: datetime
    users: int = 0
    sessions: int = 0
    interactions: Counter[str] = field(default_factory=Counter)
    progress_rows: int = 0
    items_published: int = 0
    served_flushed: int = 0
    report: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "experiment": self.key,
            "database": self.database,
            "start": self.start.isoformat(),
            "experiment_start": self.experiment_start.isoformat(),
            "end": self.end.isoformat(),
            "users": self.users,
            "sessions": self.sessions,
            "interactions": dict(sorted(self.interactions.items())),
            "reading_progress_rows": self.progress_rows,
            "items_published": self.items_published,
            "served_flushed": self.served_flushed,
        }


def appeal(age: timedelta) -> float:
    """How much a user wants an item of this age, relative to a brand-new one."""
    hours = max(0.0, age.total_seconds() / 3600.0)
    return FRESH_FLOOR + (1.0 - FRESH_FLOOR) * 2.0 ** (-hours / FRESH_HALF_LIFE_HOURS)


def _rng(*parts: int) -> np.random.Generator:
    return np.random.default_rng([abs(int(p)) for p in parts])


def salt_for(seed: int, key: str) -> str:
    """The experiment's salt: fixed by the seed, so a run's assignment is reproducible."""
    return hashlib.sha256(f"simulate:{seed}:{key}".encode()).hexdigest()[:16]


# --- the world ---------------------------------------------------------------------------


def demo_users(world_seed: int, limit: int | None = None) -> list[SimUser]:
    """The demo users stored, by number, with their latent tastes from the demo plan."""
    rows = (
        get_user_model()
        .objects.filter(username__startswith=DEMO_USER_PREFIX)
        .values_list("id", "username")
    )
    numbered = sorted(
        (int(name[len(DEMO_USER_PREFIX) :]), uid)
        for uid, name in rows
        if name[len(DEMO_USER_PREFIX) :].isdigit()
    )
    if limit is not None:
        numbered = numbered[:limit]
    if not numbered:
        return []
    plan = experience.demo_plan
    # A user's tastes depend on the seed and their number only (not on the anchor).
    planned = plan.users(world_seed, numbered[-1][0], DEMO_WORLD_DAYS, timezone.now())
    sections = plan.sections()
    slugs = {s.slug for s in sections} | {s.top_slug for s in sections}
    ids = reading.category_ids_by_slug(sorted(slugs))
    out = []
    for number, user_id in numbered:
        favourites = [sections[i] for i in planned[number - 1].favourites]
        out.append(
            SimUser(
                user_id=user_id,
                number=number,
                activity=planned[number - 1].activity,
                favourite_ids=frozenset(ids[s.slug] for s in favourites if s.slug in ids),
                related_ids=frozenset(ids[s.top_slug] for s in favourites if s.top_slug in ids),
            )
        )
    return out


class Publisher:
    """New issues of the demo world's providers, created as the clock passes their time."""

    def __init__(self, settings: Settings, start: datetime, end: datetime) -> None:
        counts = reading.catalog_counts()
        per_day = settings.items_per_day
        if per_day is None:
            per_day = counts["items"] / DEMO_WORLD_DAYS
        days = (end - start).total_seconds() / 86400.0
        count = round(per_day * days)
        self.pending: list[ItemIn] = []
        self.published = 0
        if count <= 0 or counts["providers"] == 0:
            return
        plan = experience.demo_plan
        # Provider n is ``demo:provider:<n>`` whatever the seed (the seed picks its sections):
        # the stored demo providers publish, none is created.
        providers = plan.providers(settings.world_seed, counts["providers"])
        anchor = end + timedelta(seconds=plan.MIN_AGE_SECONDS)
        seed = settings.world_seed * 1_000_003 + settings.seed
        generated = plan.items(seed, count, providers, max(1, math.ceil(days)), anchor)
        tag = f"demo:sim:{settings.key}"
        self.pending = sorted(
            (
                dataclasses.replace(
                    g.spec,
                    external_id=f"{tag}:{g.number}",
                    url=f"{g.spec.url}-{settings.key}",
                    # Spread over [start, end] whatever the rounding of days above.
                    published_at=max(g.spec.published_at, start),
                )
                for g in generated
            ),
            key=lambda i: (i.published_at, i.external_id),
        )

    def publish_until(self, moment: datetime) -> int:
        """Create the items published at or before ``moment``; how many."""
        due = 0
        while due < len(self.pending) and self.pending[due].published_at <= moment:
            due += 1
        if not due:
            return 0
        try:
            reading.items_create_missing(self.pending[:due])
        except InvalidInput as exc:
            raise InvalidInput(
                f"{exc.message} New items are published by the demo providers: run this on a "
                "database holding the demo world only.",
                details=exc.details,
            ) from exc
        del self.pending[:due]
        self.published += due
        return due


def sessions_plan(
    users: list[SimUser], *, seed: int, start: datetime, days: int
) -> list[tuple[datetime, int, int]]:
    """(time, user index, session number) of every home visit over ``days`` from ``start``."""
    out = []
    for index, user in enumerate(users):
        rng = _rng(seed, user.number, 0)
        rate = min(MAX_SESSIONS_PER_DAY, SESSIONS_PER_DAY * user.activity)
        k = 0
        for day in range(days):
            for offset in sorted(rng.uniform(0, 86400, size=rng.poisson(rate))):
                k += 1
                at = start + timedelta(days=day, seconds=round(float(offset)))
                out.append((at, index, k))
    out.sort()
    return out


# --- one session -------------------------------------------------------------------------


def run_session(
    user: SimUser, at: datetime, rng: np.random.Generator, *, namespace: uuid.UUID
) -> tuple[Counter[str], int]:
    """One home visit: the real home response, the user's behaviour, its report through
    the real ingestion. Returns the interactions reported by type and the progress rows.
    Event ids are uuid5 in the run's ``namespace``: another run never collides with them
    (a client's event id is its idempotency key)."""
    body = json.loads(experience.home_json(user.user_id, now=at))
    request_id = uuid.UUID(body["request_id"])
    shown = [
        (s_index, section["key"], entry["position"], int(entry["item"]["id"]))
        for s_index, section in enumerate(body["sections"])
        for entry in section["items"]
    ]
    facets = reading.item_facets([item for *_, item in shown], cached=True)
    clock = at
    events: list[Any] = []
    progress: list[reading.ReadingProgressIn] = []
    clicks = 0
    looked_sections: dict[int, bool] = {}

    def report(item: int, kind: str, section: str, position: int, dwell: int | None = None):
        events.append(
            experience.InteractionIn(
                event_id=uuid.uuid5(namespace, rng.bytes(16).hex()),
                item_id=item,
                interaction_type=kind,
                occurred_at=clock,
                request_id=request_id,
                section=section,
                position=position,
                dwell_ms=dwell,
            )
        )

    for s_index, section, position, item in shown:
        if s_index not in looked_sections:
            looked_sections[s_index] = bool(rng.random() < SECTION_LOOK**s_index)
        facet = facets.get(item)
        if not looked_sections[s_index] or facet is None:
            continue
        if rng.random() >= POSITION_LOOK**position:
            continue
        clock += timedelta(seconds=float(rng.uniform(1.0, 4.0)))
        report(item, "impression", section, position)
        taste = user.taste(facet.category_ids)
        p_click = CLICK_BASE * taste * appeal(at - facet.published_at)
        if clicks < MAX_CLICKS and rng.random() < p_click:
            clicks += 1
            clock += timedelta(seconds=float(rng.uniform(1.0, 3.0)))
            report(item, "click", section, position)
            started = clock
            if rng.random() < READ_END_BASE + READ_END_TASTE * taste:
                depth = 1.0
            else:
                depth = round(float(rng.uniform(*DEPTH_RANGE)), 2)
            dwell = float(rng.uniform(*DWELL_SECONDS)) * depth
            clock += timedelta(seconds=dwell)
            if depth >= 1.0:
                report(item, "read", section, position, dwell=int(dwell * 1000))
            progress.append(
                reading.ReadingProgressIn(
                    user_id=user.user_id,
                    item_id=item,
                    progress=depth,
                    started_at=started,
                    updated_at=clock,
                    completed_at=clock if depth >= 1.0 else None,
                )
            )
        elif rng.random() < DISMISS_BASE * (1.0 - taste):
            kind = "hide" if rng.integers(HIDE_SHARE) == 0 else "dismiss"
            report(item, kind, section, position)
    counts: Counter[str] = Counter()
    if events:
        result = experience.interactions_record(
            user_id=user.user_id, interactions=events, now=clock
        )
        counts.update(e.interaction_type for e in events)
        counts["rejected"] += len(result.rejected)
    created = reading.reading_progress_bulk_create(progress).created if progress else 0
    return counts, created


# --- the run -----------------------------------------------------------------------------


def clock_start(now: datetime | None = None) -> datetime:
    """The next whole hour after the wall clock and after every experiment's end."""
    now = now or timezone.now()
    last = Experiment.objects.aggregate(last=Max("stopped_at"))["last"]
    moment = max(now, last) if last else now
    return moment.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def create_experiment(settings: Settings) -> Experiment:
    """The draft: control (config {}) and the treatment, 50/50, salted by the seed."""
    experiment = lifecycle.experiment_create(
        key=settings.key,
        hypothesis=(
            f"{settings.treatment} ({json.dumps(settings.config, sort_keys=True)}) raises the "
            "home CTR without raising dismissals or latency (simulated users on the demo world)."
        ),
        layer_key=settings.layer,
        variants=[
            VariantSpec(CONTROL, 50, True, {}),
            VariantSpec(settings.treatment, 50, False, settings.config),
        ],
        primary_metric=Metric.HOME_CTR,
        guardrails=GUARDRAILS,
    )
    return lifecycle.experiment_update(experiment, salt=salt_for(settings.seed, settings.key))


def simulate(
    settings: Settings,
    *,
    database: str = "",
    stdout: IO[str] | OutputWrapper | None = None,
) -> Outcome:
    """Run the experiment on simulated traffic (module docstring) and report it."""
    if not 1 <= settings.days <= MAX_DAYS:
        raise InvalidInput(
            f"days is 1 to {MAX_DAYS}.", details={"days": [f"From 1 to {MAX_DAYS}."]}
        )
    validate_config(settings.config, field_name="variant_config")
    users = demo_users(settings.world_seed, settings.users)
    if not users:
        raise InvalidInput(
            "No demo users: run manage.py seed_demo first.", details={"users": ["None found."]}
        )
    start = settings.start or clock_start()
    experiment_start = start + timedelta(days=settings.days)
    end = experiment_start + timedelta(days=settings.days)
    experiment = create_experiment(settings)
    outcome = Outcome(settings.key, database, start, experiment_start, end, users=len(users))
    publisher = Publisher(settings, start, end)
    plan = sessions_plan(users, seed=settings.seed, start=start, days=2 * settings.days)
    # Event ids unique to this run's experiment key (a uuid5 namespace, not a Redis key).
    namespace = uuid.uuid5(uuid.NAMESPACE_URL, f"urn:experiment-simulate:{settings.key}")
    hour: datetime | None = None
    progress = experience.bar(plan, stream=stdout, desc="sessions", unit="session")
    for at, index, k in progress:
        if hour is not None and at >= hour + timedelta(hours=1):
            outcome.served_flushed += flush_served()
        hour = at.replace(minute=0, second=0, microsecond=0)
        publisher.publish_until(at)
        if experiment.status == Experiment.Status.DRAFT and at >= experiment_start:
            outcome.served_flushed += flush_served()
            experiment = lifecycle.experiment_start(experiment, at=experiment_start)
        user = users[index]
        rng = _rng(settings.seed, user.number, k)
        counts, created = run_session(user, at, rng, namespace=namespace)
        outcome.sessions += 1
        outcome.interactions.update(counts)
        outcome.progress_rows += created
    progress.close()
    publisher.publish_until(end)
    outcome.items_published = publisher.published
    outcome.served_flushed += flush_served()
    if experiment.status == Experiment.Status.DRAFT:  # no session after the start
        experiment = lifecycle.experiment_start(experiment, at=experiment_start)
    experiment = lifecycle.experiment_stop(experiment, at=end, reason=STOP_REASON)
    outcome.report = experiment_report(experiment, now=end)
    return outcome


def flush_served() -> int:
    """Move the whole served-log buffer to PostgreSQL (a beat task's job in production)."""
    moved = total = experience.served_log_flush()
    while moved:
        moved = experience.served_log_flush()
        total += moved
    return total
