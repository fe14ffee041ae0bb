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

import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from experience_app.public import (
    Candidate,
    UserContext,
    Weights,
    bar,
    feature_vector,
    rank,
    users_ensure,
)
from features_app.public import (
    EventIn,
    EventType,
    ItemSignals,
    events_ingest,
    item_signals,
    user_profile,
)
from ml_app import ranking_metrics, walk_forward, walk_forward_gate
from ml_app.datasets import mind
from ml_app.evaluation_scratch import EvaluationError, ScratchState, scratch_state
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
# Methods in the order they are printed. LEARNED is the LightGBM reranker (walk-forward,
# days after the first only), SERVED what the product serves behind its promotion gate
# (:mod:`ml_app.walk_forward_gate`, every day), RANKING the product's linear ranking
# function; the others are baselines computed from the same counters.
LEARNED = "learned"
SERVED = "served"
RANKING = "ranking"
CTR = "ctr"
RANDOM = "random"
POPULARITY = "popularity"
RECENT = "most_recent"
REPLAYED = (RANKING, CTR, RANDOM, POPULARITY, RECENT)
METHODS = (LEARNED, SERVED, *REPLAYED)
METHOD_LABELS = {
    LEARNED: "learned (LightGBM + linear)",
    SERVED: "served by the product (gated)",
    RANKING: "linear ranking (rank)",
    CTR: "real-time CTR (smoothed)",
    RANDOM: "random",
    POPULARITY: "popularity (cumulative clicks)",
    RECENT: "most recent (first seen)",
}
# ``--predictions-ranker`` choices: the method whose ranks are written.
PREDICTION_RANKERS = {SERVED: SERVED, LEARNED: LEARNED, "linear": RANKING}


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
    # Every impression's feature rows, and the walk-forward (learned ranks, models, intervals).
    impressions_log: list[walk_forward.Impression] = field(default_factory=list)
    learned: walk_forward.WalkForward | None = None
    served: walk_forward_gate.Served | None = None
    similarity: bool = False


@dataclass(frozen=True, slots=True)
class _Catalog:
    item_ids: dict[str, int]  # by MIND news id
    facets: dict[int, ItemFacets]  # items with a news row only
    user_ids: dict[str, int]  # by MIND user id


_tiebreak = walk_forward.tiebreak
_position_ranks = walk_forward.position_ranks


def evaluate_ranking(
    *,
    news_path: Path,
    behaviors_path: Path,
    limit: int | None = None,
    freshness_half_life_hours: float | None = None,
    predictions: Path | None = None,
    predictions_ranker: str = SERVED,
    seed: int = 0,
    learned: bool = True,
    similarity: bool = True,
    resamples: int = walk_forward.BOOTSTRAP_RESAMPLES,
    embedding_cache: Path | None = None,
    report: Report | None = None,
    progress: Stream = None,
) -> EvaluationResult:
    """Replay ``behaviors_path`` (the first ``limit`` lines when given) and measure.

    ``freshness_half_life_hours`` overrides the ranking's freshness half-life (product
    setting when ``None``). With ``learned``, the LightGBM reranker is trained walk-forward
    (see :mod:`ml_app.walk_forward`) and ``resamples`` bootstrap resamples give its paired
    intervals; ``similarity`` adds the text-embedding feature (its news embeddings kept in
    ``embedding_cache``, a folder, when given). ``predictions`` receives, in
    the MIND competition format (one line per impression, file order), the ranking of
    ``predictions_ranker`` (:data:`PREDICTION_RANKERS`): by default what the product serves
    (:data:`SERVED`: a learned model only on the days its gate passed, else the linear
    ranking); ``learned``: the walk-forward model's wherever one scored the day; ``linear``.
    Where the chosen ranker has no ranks (no model, or not ``learned``), the linear
    ranking's. Malformed lines are skipped and passed to ``report``.
    """
    if predictions_ranker not in PREDICTION_RANKERS:
        raise ValueError(f"Unknown predictions ranker {predictions_ranker!r}.")
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

    ranks_by_impression: dict[int, list[int]] = {}  # the linear ranking's
    texts = None
    if similarity:
        texts = walk_forward.TextSimilarity(
            {n: f"{r.title}. {r.abstract}" for n, r in news.items()}, cache_dir=embedding_cache
        )
    result.similarity = texts is not None
    with scratch_state(settings.REDIS_EVAL_URL) as lock, transaction.atomic():
        catalog = _write(news, replay, summary, progress)
        result.users = len(catalog.user_ids)
        _replay(replay, catalog, weights, seed, lock, result, ranks_by_impression, texts, progress)
        transaction.set_rollback(True)
    if learned:
        _learn(result, resamples, seed)

    if predictions is not None:
        chosen: dict[int, list[int]] = {}
        if result.learned is not None and result.served is not None:
            chosen = {
                LEARNED: result.learned.ranks,
                SERVED: result.served.ranks,
                RANKING: {},
            }[PREDICTION_RANKERS[predictions_ranker]]
        with predictions.open("w", encoding="utf-8") as out:
            for behavior in behaviors:
                ranks = chosen.get(behavior.impression_id)
                if ranks is None:
                    ranks = ranks_by_impression[behavior.impression_id]
                out.write(f"{behavior.impression_id} [{','.join(map(str, ranks))}]\n")
    result.seconds = time.monotonic() - started
    return result


def _learn(result: EvaluationResult, resamples: int, seed: int) -> None:
    """Walk-forward training and scoring, then what the product serves behind its gate."""
    log = result.impressions_log
    result.learned = wf = walk_forward.walk_forward(log)
    result.served = served = walk_forward_gate.serve(
        log, wf, baseline=RANKING, resamples=resamples, seed=seed
    )
    for imp in log:
        if (ranks := wf.ranks.get(imp.impression_id)) is not None:
            result.overall[LEARNED].add(imp.labels, ranks)
            result.per_day[imp.day][LEARNED].add(imp.labels, ranks)
        result.overall[SERVED].add(imp.labels, served.ranks[imp.impression_id])
        result.per_day[imp.day][SERVED].add(imp.labels, served.ranks[imp.impression_id])
    wf.compare(log, (RANKING, CTR), resamples=resamples, seed=seed)


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
    similarity: dict[str, float],
) -> tuple[dict[str, list[str]], list[tuple[float, ...]]]:
    """Each method's order of the impression's (distinct) news ids, best first, and the
    learned reranker's feature row of each news id (``news_ids`` order)."""
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
    extra = {catalog.item_ids[n]: {"similarity": v} for n, v in similarity.items()}
    scored = rank(candidates, user, signals, now=now, weights=weights, learned=extra or None)
    ranked = [by_item[s.item_id] for s in scored]
    rows_by_item = {s.item_id: tuple(feature_vector(s.signals)) for s in scored}
    draws = {n: rng.random() for n in news_ids}

    def tie(news_id: str) -> int:
        return _tiebreak(behavior.impression_id, news_id)

    def first_seen(news_id: str) -> float:
        seen = signals[catalog.item_ids[news_id]].first_seen
        return (seen or now).timestamp()

    def ctr(news_id: str) -> float:
        return signals[catalog.item_ids[news_id]].ctr

    orders = {
        RANKING: ranked,
        CTR: sorted(news_ids, key=lambda n: (-ctr(n), tie(n))),
        RANDOM: sorted(news_ids, key=lambda n: draws[n]),
        POPULARITY: sorted(news_ids, key=lambda n: (-signals[catalog.item_ids[n]].clicks, tie(n))),
        RECENT: sorted(news_ids, key=lambda n: (-first_seen(n), tie(n))),
    }
    return orders, [rows_by_item[catalog.item_ids[n]] for n in news_ids]


def _replay(
    replay: list[mind.Behavior],
    catalog: _Catalog,
    weights: Weights,
    seed: int,
    lock: ScratchState,
    result: EvaluationResult,
    ranks_by_impression: dict[int, list[int]],
    texts: walk_forward.TextSimilarity | None,
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
            if texts is not None:
                texts.clicked(behavior.user_id, behavior.history)

        news_ids = list(dict.fromkeys(c.news_id for c in behavior.candidates))
        signals = item_signals([catalog.item_ids[n] for n in news_ids], now=behavior.time)
        user = UserContext(profile=user_profile(user_id))
        sims = texts.scores(behavior.user_id, news_ids) if texts is not None else {}
        orders, rows = _orders(behavior, news_ids, catalog, signals, user, weights, rng, sims)

        shown = [c.news_id for c in behavior.candidates]
        labels = [1 if c.clicked else 0 for c in behavior.candidates]
        day = result.per_day.setdefault(behavior.time.date(), _method_table())
        method_ranks = {}
        for method, order in orders.items():
            ranks = _position_ranks(shown, order)
            result.overall[method].add(labels, ranks)
            day[method].add(labels, ranks)
            method_ranks[method] = tuple(ranks)
        ranks_by_impression[behavior.impression_id] = list(method_ranks[RANKING])
        result.impressions_log.append(
            walk_forward.Impression(
                impression_id=behavior.impression_id,
                day=behavior.time.date(),
                shown=tuple(shown),
                labels=tuple(labels),
                news_ids=tuple(news_ids),
                rows=tuple(rows),
                ranks=method_ranks,
            )
        )
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
        if texts is not None:
            texts.clicked(behavior.user_id, clicked)
