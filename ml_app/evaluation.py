"""Offline replay evaluation: MIND-format behaviors through the real ingestion and ranking.

Impressions are replayed in time order (ties by impression id). For each one, its
candidates are ranked by the product's :func:`experience_app.public.rank` with the signals
and profile the feature store holds at that moment (only what was ingested before), and by three
baselines from the same counters; then the impression's events (one ``impression`` per
candidate, one ``click`` per clicked one, grouped by ``impression_id``) go through
``events_ingest`` as a client's batch would. A user's history clicks (the history of
their first impression: MIND's history is the same on every line of a user) are ingested
once, one second before that impression, as ``load_mind`` does.

Isolation: the catalog, users and events are written inside one PostgreSQL transaction
that is rolled back at the end, and the feature store's Redis state is pointed at a
scratch database (``REDIS_EVAL_URL``), flushed before and after under a lock, so a run
touches no other data and two runs cannot share the scratch database.

MIND has no publication times, so freshness is id-level: a candidate's ``published_at`` is
its first impression as the feature store saw it (``ItemSignals.first_seen``), or the
impression's own time for an item never shown before. Candidates without a news row take
part with id-level signals only (no provider, no categories).
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path

import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from experience_app.public import Candidate, UserContext, Weights, bar, rank, users_ensure
from features_app.public import (
    EventIn,
    EventType,
    ItemSignals,
    events_ingest,
    item_signals,
    user_profile,
)
from inbo import redis as inbo_redis
from inbo.scratch import (
    ScratchBusy,
    ScratchForeign,
    ScratchLock,
    ScratchLockLost,
    ScratchUnsafe,
    check_scratch_url,
)
from ml_app import ranking_metrics
from ml_app.datasets import mind
from ml_app.services.mind import (
    HISTORY_OFFSET,
    MindSummary,
    Stream,
    _read_news,
    _Scan,
    _Skips,
    _write_catalog,
    valid_behaviors,
)
from reading_app.public import ItemFacets, item_facets

Report = Callable[[str], None]

SOURCE = "mind_eval"
# Methods in the order they are printed; RANKING is the product's ranking function.
RANKING = "ranking"
RANDOM = "random"
POPULARITY = "popularity"
RECENT = "most_recent"
METHODS = (RANKING, RANDOM, POPULARITY, RECENT)
METHOD_LABELS = {
    RANKING: "ranking (rank)",
    RANDOM: "random",
    POPULARITY: "popularity (cumulative clicks)",
    RECENT: "most recent (first seen)",
}
LOCK_TTL_MS = 10 * 60 * 1000
LOCK_RENEW_SECONDS = 60.0


class EvaluationError(Exception):
    """The evaluation cannot run (scratch database busy or unsafe, counters unavailable)."""


@dataclass(slots=True)
class MethodScores:
    """Sums of per-impression metrics of one method, and how many impressions each has."""

    auc_sum: float = 0.0
    auc_n: int = 0
    mrr_sum: float = 0.0
    ndcg5_sum: float = 0.0
    ndcg10_sum: float = 0.0
    clicked_n: int = 0  # impressions with at least one click: MRR and nDCG
    impressions: int = 0

    def add(self, labels: Sequence[int], ranks: Sequence[int]) -> None:
        scores = ranking_metrics.scores_from_ranks(ranks)
        self.impressions += 1
        if 0 < sum(labels) < len(labels):
            self.auc_sum += ranking_metrics.auc(labels, scores)
            self.auc_n += 1
        if any(labels):
            self.mrr_sum += ranking_metrics.mrr(labels, scores)
            self.ndcg5_sum += ranking_metrics.ndcg(labels, scores, 5)
            self.ndcg10_sum += ranking_metrics.ndcg(labels, scores, 10)
            self.clicked_n += 1

    @property
    def auc(self) -> float:
        return self.auc_sum / self.auc_n if self.auc_n else float("nan")

    @property
    def mrr(self) -> float:
        return self.mrr_sum / self.clicked_n if self.clicked_n else float("nan")

    @property
    def ndcg5(self) -> float:
        return self.ndcg5_sum / self.clicked_n if self.clicked_n else float("nan")

    @property
    def ndcg10(self) -> float:
        return self.ndcg10_sum / self.clicked_n if self.clicked_n else float("nan")

    @property
    def auc_skipped(self) -> int:
        """Impressions left out of AUC: all clicked or none clicked."""
        return self.impressions - self.auc_n


def _method_table() -> dict[str, MethodScores]:
    return {m: MethodScores() for m in METHODS}


@dataclass(slots=True)
class EvaluationResult:
    """What a replay measured, overall and per UTC day of the impression."""

    overall: dict[str, MethodScores] = field(default_factory=_method_table)
    per_day: dict[date, dict[str, MethodScores]] = field(default_factory=dict)
    impressions: int = 0
    users: int = 0
    candidates: int = 0
    candidates_with_text: int = 0
    events_ingested: int = 0
    lines_skipped: int = 0
    freshness_half_life_hours: float = 0.0
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class _Catalog:
    item_ids: dict[str, int]  # by MIND news id
    facets: dict[int, ItemFacets]  # items with a news row only
    user_ids: dict[str, int]  # by MIND user id


class _ScratchLock:
    """The scratch database's lock, with the evaluation's own error messages."""

    def __init__(self, client: redis.Redis) -> None:
        self._lock = ScratchLock(client, ttl_ms=LOCK_TTL_MS, renew_every=LOCK_RENEW_SECONDS)

    def keep(self) -> None:
        """Renew the lock now and then; fail if another run has taken it meanwhile."""
        try:
            self._lock.keep()
        except ScratchLockLost:
            raise EvaluationError("Lost the scratch database lock: the run was too slow.") from None


@contextmanager
def scratch_state(url: str) -> Iterator[_ScratchLock]:
    """Point the application-state client at the scratch database ``url`` for the block,
    holding its lock; the database is flushed before and after."""
    try:
        check_scratch_url(url)
    except ScratchUnsafe as exc:
        raise EvaluationError(
            f"REDIS_EVAL_URL points at the same database as {exc.setting}; the evaluation "
            "flushes its database, so it must be one of its own."
        ) from None
    with inbo_redis.use_state_client(url) as client:
        lock = _ScratchLock(client)
        try:
            lock._lock.acquire()
        except ScratchBusy:
            raise EvaluationError(
                "Another evaluation holds the scratch Redis database (REDIS_EVAL_URL); "
                "wait for it to finish or point REDIS_EVAL_URL at another database."
            ) from None
        except ScratchForeign:
            raise EvaluationError(
                "REDIS_EVAL_URL's database holds keys that no evaluation wrote; the evaluation "
                "flushes its database, so it refuses this one. Point REDIS_EVAL_URL at an empty "
                "database (or empty this one yourself if its keys are disposable)."
            ) from None
        try:
            yield lock
        finally:
            lock._lock.release()


def _tiebreak(impression_id: int, news_id: str) -> int:
    # Fair and deterministic: never the candidate order, which may carry information.
    digest = hashlib.blake2b(f"{impression_id}:{news_id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")


def _position_ranks(news_ids: Sequence[str], order: Sequence[str]) -> list[int]:
    """1-based rank of each position of the impression, given the news ids best first."""
    place = {news_id: i for i, news_id in enumerate(order)}
    positions = sorted(range(len(news_ids)), key=lambda p: (place[news_ids[p]], p))
    ranks = [0] * len(news_ids)
    for r, p in enumerate(positions, start=1):
        ranks[p] = r
    return ranks


def evaluate_ranking(
    *,
    news_path: Path,
    behaviors_path: Path,
    limit: int | None = None,
    freshness_half_life_hours: float | None = None,
    predictions: Path | None = None,
    seed: int = 0,
    report: Report | None = None,
    progress: Stream = None,
) -> EvaluationResult:
    """Replay ``behaviors_path`` (the first ``limit`` lines when given) and measure.

    ``freshness_half_life_hours`` overrides the ranking's freshness half-life (product
    setting when ``None``). ``predictions`` receives the ranking's ranks in the MIND
    competition format, one line per impression in file order. Malformed lines are skipped
    and passed to ``report``.
    """
    started = time.monotonic()
    weights = Weights.from_settings()
    if freshness_half_life_hours is not None:
        weights = replace(weights, freshness_half_life_hours=freshness_half_life_hours)
    result = EvaluationResult(freshness_half_life_hours=weights.freshness_half_life_hours)
    summary = MindSummary()
    skip = _Skips(summary, report)
    news = _read_news(news_path, None, summary, skip, progress)
    behaviors = _read_behaviors(behaviors_path, limit, summary, skip, progress)
    result.lines_skipped = summary.lines_skipped
    replay = sorted(behaviors, key=lambda b: (b.time, b.impression_id))

    ranks_by_impression: dict[int, list[int]] = {}
    with scratch_state(settings.REDIS_EVAL_URL) as lock, transaction.atomic():
        catalog = _write(news, replay, summary, progress)
        result.users = len(catalog.user_ids)
        _replay(replay, catalog, weights, seed, lock, result, ranks_by_impression, progress)
        transaction.set_rollback(True)

    if predictions is not None:
        with predictions.open("w", encoding="utf-8") as out:
            for behavior in behaviors:
                ranks = ranks_by_impression[behavior.impression_id]
                out.write(f"{behavior.impression_id} [{','.join(map(str, ranks))}]\n")
    result.seconds = time.monotonic() - started
    return result


def _read_behaviors(
    path: Path, limit: int | None, summary: MindSummary, skip: _Skips, progress: Stream
) -> list[mind.Behavior]:
    """Valid lines in file order; malformed lines and repeated impression ids are skipped."""
    return [b for _, b in valid_behaviors(path, limit, summary, skip, progress, "behaviors")]


def _write(
    news: dict[str, mind.NewsRow],
    replay: list[mind.Behavior],
    summary: MindSummary,
    progress: Stream,
) -> _Catalog:
    """Categories, providers, items and users, mapped as ``load_mind`` maps them."""
    scan = _Scan()
    for behavior in replay:  # time order: the first time met is the earliest
        scan.user_first.setdefault(behavior.user_id, (behavior.time, behavior.impression_id))
        scan.history.setdefault(behavior.user_id, {}).update(dict.fromkeys(behavior.history))
        for candidate in behavior.candidates:
            scan.first_seen.setdefault(candidate.news_id, behavior.time)
    for user, ids in scan.history.items():
        at = scan.user_first[user][0] - HISTORY_OFFSET
        for news_id in ids:
            if news_id not in scan.first_seen or at < scan.first_seen[news_id]:
                scan.first_seen[news_id] = at
    fallback = replay[0].time if replay else timezone.now()
    item_ids = _write_catalog(news, scan, fallback, summary, progress)
    user_ids, _ = users_ensure(
        [mind.username(u) for u in scan.user_first],
        joined={mind.username(u): at - HISTORY_OFFSET for u, (at, _) in scan.user_first.items()},
    )
    prefix = len(mind.username(""))
    facets = item_facets([item_ids[n] for n in news])
    return _Catalog(
        item_ids=item_ids,
        facets=facets,
        user_ids={name[prefix:]: pk for name, pk in user_ids.items()},
    )


def _event(
    user_id: int, item_id: int, kind: EventType, at: datetime, impression_id: int
) -> EventIn:
    return EventIn(
        user_id=user_id,
        item_id=item_id,
        event_type=kind,
        occurred_at=at,
        event_id=uuid.uuid4(),  # never one already stored: each event of a run is new
        source=SOURCE,
        context={"impression_id": impression_id},
    )


def _ingest(events: list[EventIn], result: EvaluationResult) -> None:
    if not events:
        return
    outcome = events_ingest(events)
    if not outcome.counted:
        raise EvaluationError("The feature store's Redis counters are unavailable.")
    result.events_ingested += outcome.created


def _orders(
    behavior: mind.Behavior,
    news_ids: list[str],
    catalog: _Catalog,
    signals: dict[int, ItemSignals],
    user: UserContext,
    weights: Weights,
    rng: random.Random,
) -> dict[str, list[str]]:
    """Each method's order of the impression's (distinct) news ids, best first."""
    now = behavior.time
    by_item = {catalog.item_ids[n]: n for n in news_ids}
    candidates = []
    for news_id in news_ids:
        item_id = catalog.item_ids[news_id]
        facets = catalog.facets.get(item_id)
        candidates.append(
            Candidate(
                item_id=item_id,
                provider_id=facets.provider_id if facets else None,
                category_ids=facets.category_ids if facets else (),
                published_at=signals[item_id].first_seen or now,
            )
        )
    ranked = [by_item[s.item_id] for s in rank(candidates, user, signals, now=now, weights=weights)]
    draws = {n: rng.random() for n in news_ids}

    def tie(news_id: str) -> int:
        return _tiebreak(behavior.impression_id, news_id)

    def first_seen(news_id: str) -> float:
        seen = signals[catalog.item_ids[news_id]].first_seen
        return (seen or now).timestamp()

    return {
        RANKING: ranked,
        RANDOM: sorted(news_ids, key=lambda n: draws[n]),
        POPULARITY: sorted(news_ids, key=lambda n: (-signals[catalog.item_ids[n]].clicks, tie(n))),
        RECENT: sorted(news_ids, key=lambda n: (-first_seen(n), tie(n))),
    }


def _replay(
    replay: list[mind.Behavior],
    catalog: _Catalog,
    weights: Weights,
    seed: int,
    lock: _ScratchLock,
    result: EvaluationResult,
    ranks_by_impression: dict[int, list[int]],
    progress: Stream,
) -> None:
    rng = random.Random(seed)
    histories_done: set[str] = set()
    for behavior in bar(replay, stream=progress, desc="replay", unit="imp"):
        lock.keep()
        user_id = catalog.user_ids[behavior.user_id]
        if behavior.user_id not in histories_done:
            histories_done.add(behavior.user_id)
            at = behavior.time - HISTORY_OFFSET
            _ingest(
                [
                    _event(
                        user_id, catalog.item_ids[n], EventType.CLICK, at, behavior.impression_id
                    )
                    for n in dict.fromkeys(behavior.history)
                ],
                result,
            )

        news_ids = list(dict.fromkeys(c.news_id for c in behavior.candidates))
        signals = item_signals([catalog.item_ids[n] for n in news_ids], now=behavior.time)
        user = UserContext(profile=user_profile(user_id))
        orders = _orders(behavior, news_ids, catalog, signals, user, weights, rng)

        shown = [c.news_id for c in behavior.candidates]
        labels = [1 if c.clicked else 0 for c in behavior.candidates]
        day = result.per_day.setdefault(behavior.time.date(), _method_table())
        for method, order in orders.items():
            ranks = _position_ranks(shown, order)
            result.overall[method].add(labels, ranks)
            day[method].add(labels, ranks)
            if method == RANKING:
                ranks_by_impression[behavior.impression_id] = ranks
        result.impressions += 1
        result.candidates += len(shown)
        result.candidates_with_text += sum(
            1 for n in shown if catalog.item_ids[n] in catalog.facets
        )

        clicked = list(dict.fromkeys(c.news_id for c in behavior.candidates if c.clicked))
        _ingest(
            [
                _event(user_id, catalog.item_ids[n], kind, behavior.time, behavior.impression_id)
                for kind, ids in ((EventType.IMPRESSION, news_ids), (EventType.CLICK, clicked))
                for n in ids
            ],
            result,
        )
