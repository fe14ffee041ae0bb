"""Session-based next-read models on DeskDrop (issue 13, ML-005): sessions, split, evaluation.

- **Sessions**: a user's events grouped by DeskDrop's ``sessionId`` (the key is the pair
  person + session id), or, when a row has no session id (or ``use_session_ids=False``), a
  user's events split where 30 minutes pass without one. Events of every type count, in time
  order (file order breaks ties); consecutive repeats of an item collapse into one; sessions
  of fewer than two items are dropped.
- **Time split**: the cut is the start of the first session in the last 20% of sessions by
  start time. Sessions starting at or after the cut are the test period; the models see only
  sessions starting before it, cut to their events before it (nothing at or after the cut
  reaches a model).
- **Evaluation**: every test session predicts each next item from its prefix (position
  ``t + 1`` from ``[0..t]``); HR@20 and MRR@20 are averaged over all prediction points. A
  target never seen in training stays in the denominator (no model can rank it, so it counts
  as a miss): nothing is excluded based on the answer. Coverage is the share of training
  items that appear in at least one top-20 list. The current (last) item is never
  recommended: after collapsing repeats it cannot be the next one.
- **Streaming** (``streaming=True``): the same points replayed in time order; the
  incremental models (all but GRU4Rec) also take each test session once it has closed (its
  last event 30 minutes or more before the point), as the product's index would.

Baselines here (popularity, decayed popularity, last-item transitions and co-occurrence,
session-kNN and V-SKNN); the neural model is ``ml_app.session_gru``. Nothing touches the
database.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from features_app.public import session_knn_scores
from ml_app.datasets.deskdrop import Interaction
from ml_app.ranking_metrics import hit_rate_at_k, reciprocal_rank

GAP_SECONDS = 30 * 60
TOP_K = 20
TEST_FRACTION = 0.2
DEFAULT_HALF_LIFE_DAYS = 3.0  # as deskdrop_baselines' decayed popularity


class SessionEvaluationError(ValueError):
    """The data cannot be split or evaluated (too few sessions); the message says why."""


@dataclass(frozen=True, slots=True)
class Session:
    """One reading session: its items in order (repeats collapsed) and their times."""

    key: str
    person_id: str
    items: tuple[str, ...]
    times: tuple[int, ...]

    @property
    def start(self) -> int:
        return self.times[0]

    @property
    def end(self) -> int:
        return self.times[-1]


def _session(key: str, person: str, events: list[tuple[int, int, str]]) -> Session | None:
    events.sort()
    items: list[str] = []
    times: list[int] = []
    for ts, _, item in events:
        if items and items[-1] == item:
            continue
        items.append(item)
        times.append(ts)
    if len(items) < 2:
        return None
    return Session(key, person, tuple(items), tuple(times))


def build_sessions(
    rows: Iterable[Interaction], *, gap_seconds: int = GAP_SECONDS, use_session_ids: bool = True
) -> list[Session]:
    """Sessions of two items or more, ordered by start time then key (see the module doc)."""
    by_id: dict[tuple[str, str], list[tuple[int, int, str]]] = defaultdict(list)
    by_person: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for index, row in enumerate(rows):
        event = (row.timestamp, index, row.content_id)
        if use_session_ids and row.session_id:
            by_id[(row.person_id, row.session_id)].append(event)
        else:
            by_person[row.person_id].append(event)
    sessions: list[Session] = []
    for (person, session_id), events in by_id.items():
        found = _session(f"{person}:{session_id}", person, events)
        if found is not None:
            sessions.append(found)
    for person, events in by_person.items():
        events.sort()
        parts: list[list[tuple[int, int, str]]] = [[]]
        for event in events:
            if parts[-1] and event[0] - parts[-1][-1][0] > gap_seconds:
                parts.append([])
            parts[-1].append(event)
        for number, part in enumerate(parts):
            found = _session(f"{person}:gap{number}", person, part)
            if found is not None:
                sessions.append(found)
    sessions.sort(key=lambda s: (s.start, s.key))
    return sessions


@dataclass(frozen=True)
class SessionSplit:
    cut: int
    train: list[Session]
    test: list[Session]


def time_split(
    sessions: Sequence[Session], *, test_fraction: float = TEST_FRACTION
) -> SessionSplit:
    """Test: sessions starting in the last ``test_fraction`` of sessions by start time.

    Training sessions are cut to their events before the cut and kept with two items or more.
    """
    if not 0 < test_fraction < 1:
        raise SessionEvaluationError("the test fraction must be between 0 and 1")
    if len(sessions) < 2:
        raise SessionEvaluationError(f"{len(sessions)} session(s) of two items; need 2 or more")
    starts = sorted(s.start for s in sessions)
    cut = starts[min(len(starts) - 1, int(len(starts) * (1 - test_fraction)))]
    test = [s for s in sessions if s.start >= cut]
    train = []
    for s in sessions:
        if s.start >= cut:
            continue
        keep = sum(1 for ts in s.times if ts < cut)
        if keep >= 2:
            train.append(Session(s.key, s.person_id, s.items[:keep], s.times[:keep]))
    if not train or not test:
        raise SessionEvaluationError("every session starts at the same time: nothing to train on")
    return SessionSplit(cut, train, test)


class SessionModel:
    """A next-item model: ``fit`` on training sessions, then rank for each prefix."""

    name = "model"
    incremental = False  # True: ``update`` takes one more finished session without a refit

    def fit(self, train: Sequence[Session], cut: int) -> None:
        raise NotImplementedError

    def update(self, session: Session) -> None:
        """Learn one more finished session (incremental models only)."""
        raise NotImplementedError

    def recommend(self, prefix: Sequence[str], k: int) -> list[str]:
        """The top ``k`` next items after ``prefix`` (never its last item)."""
        raise NotImplementedError

    def predict_session(self, items: Sequence[str], k: int) -> list[list[str]]:
        """The top ``k`` after each prefix ``items[:t + 1]``, for ``t`` in ``0..len - 2``."""
        return [self.recommend(items[: t + 1], k) for t in range(len(items) - 1)]


def _top(scores: dict[str, float], k: int, exclude: str, tiebreak: dict[str, float]) -> list[str]:
    """Best ``k`` by score, then by ``tiebreak`` (popularity), then id; ``exclude`` left out."""
    best = heapq.nsmallest(
        k + 1, scores, key=lambda item: (-scores[item], -tiebreak.get(item, 0.0), item)
    )
    return [item for item in best if item != exclude][:k]


class Popularity(SessionModel):
    """Items by their number of training-session occurrences; ``half_life_days`` decays them."""

    def __init__(self, *, half_life_days: float | None = None) -> None:
        self.half_life_days = half_life_days
        decay = "" if half_life_days is None else f", {half_life_days:g}-day half-life"
        self.name = f"popularity{decay}"
        self.ranked: list[str] = []
        self.cut = 0
        self.scores: dict[str, float] = defaultdict(float)

    incremental = True

    def fit(self, train: Sequence[Session], cut: int) -> None:
        self.cut, self.scores = cut, defaultdict(float)
        for s in train:
            self._add(s)
        self.ranked = sorted(self.scores, key=lambda item: (-self.scores[item], item))

    def _add(self, session: Session) -> None:
        for item, ts in zip(session.items, session.times, strict=True):
            if self.half_life_days is None:
                self.scores[item] += 1.0
            else:
                # Weighed against the cut even after it: the order is the same as decaying
                # everything to the moment of the prediction.
                self.scores[item] += 0.5 ** ((self.cut - ts) / 86400.0 / self.half_life_days)

    def update(self, session: Session) -> None:
        self._add(session)
        self.ranked = sorted(self.scores, key=lambda item: (-self.scores[item], item))

    def recommend(self, prefix: Sequence[str], k: int) -> list[str]:
        return [item for item in self.ranked[: k + 1] if item != prefix[-1]][:k]


class LastItem(SessionModel):
    """Items after (``transitions``) or anywhere in a session with (co-occurrence) the last item.

    Co-occurrence counts each pair once per session. Ties break by popularity, then id; only
    items with a count are returned (no popularity filler).
    """

    def __init__(self, *, transitions: bool) -> None:
        self.transitions = transitions
        self.name = "last-item transitions" if transitions else "last-item co-occurrence"
        self.neighbours: dict[str, Counter[str]] = defaultdict(Counter)
        self.popularity: dict[str, float] = {}

    incremental = True

    def fit(self, train: Sequence[Session], cut: int) -> None:
        self.popularity, self.neighbours = {}, defaultdict(Counter)
        for s in train:
            self.update(s)

    def update(self, session: Session) -> None:
        for item in session.items:
            self.popularity[item] = self.popularity.get(item, 0.0) + 1.0
        if self.transitions:
            for a, b in zip(session.items, session.items[1:], strict=False):
                self.neighbours[a][b] += 1
        else:
            distinct = set(session.items)
            for a in distinct:
                self.neighbours[a].update(distinct - {a})

    def recommend(self, prefix: Sequence[str], k: int) -> list[str]:
        found = self.neighbours.get(prefix[-1])
        if not found:
            return []
        return _top(dict(found), k, prefix[-1], self.popularity)


class SessionKNN(SessionModel):
    """Session-kNN (Jannach & Ludewig 2017): score items by the past sessions like this one.

    Candidate neighbours are the ``sample`` most recent training sessions sharing an item with
    the current session; the ``k`` most similar vote for their items with their similarity.
    SKNN: cosine of the binary item sets. V-SKNN (``decay=True``): the current session's
    items weigh by position (linear, the last item 1), similarity = the sum of the shared
    items' weights.
    """

    def __init__(self, *, k: int = 100, sample: int = 500, decay: bool = False) -> None:
        self.k, self.sample, self.decay = k, sample, decay
        self.name = f"{'V-SKNN' if decay else 'SKNN'} (k={k}, sample={sample})"
        self.items: list[frozenset[str]] = []
        self.ends: list[int] = []
        self.by_item: dict[str, list[int]] = defaultdict(list)
        self.popularity: dict[str, float] = {}

    incremental = True

    def fit(self, train: Sequence[Session], cut: int) -> None:
        self.popularity, self.items, self.ends, self.by_item = {}, [], [], defaultdict(list)
        for s in train:
            self.update(s)

    def update(self, session: Session) -> None:
        for item in session.items:
            self.popularity[item] = self.popularity.get(item, 0.0) + 1.0
        self.items.append(frozenset(session.items))
        self.ends.append(session.end)
        for item in self.items[-1]:
            self.by_item[item].append(len(self.items) - 1)

    def recommend(self, prefix: Sequence[str], k: int) -> list[str]:
        candidates = {index for item in prefix for index in self.by_item.get(item, ())}
        if len(candidates) > self.sample:
            candidates = set(
                heapq.nlargest(self.sample, candidates, key=lambda i: (self.ends[i], i))
            )
        # The serving function (features_app.sessions.knn_scores): measured is served.
        scores = session_knn_scores(
            prefix, {i: self.items[i] for i in candidates}, k=self.k, decay=self.decay
        )
        return _top(scores, k, prefix[-1], self.popularity)


@dataclass(frozen=True)
class ModelResult:
    name: str
    hr: float
    mrr: float
    coverage: float
    fit_seconds: float
    predict_seconds: float
    updated: bool = False  # streaming: took test sessions as they finished
    hr_interval: tuple[float, float] | None = None  # bootstrap 95%, test sessions resampled
    mrr_interval: tuple[float, float] | None = None
    # The best model (by MRR) minus this one, paired over the same resamples.
    hr_gap_interval: tuple[float, float] | None = None
    mrr_gap_interval: tuple[float, float] | None = None


@dataclass
class SessionEvaluation:
    cut: int
    train_sessions: int
    test_sessions: int
    train_items: int
    points: int
    unseen_targets: int
    k: int
    streaming: bool = False
    bootstrap: int = 0
    results: list[ModelResult] = field(default_factory=list)

    def winner(self) -> ModelResult:
        return max(self.results, key=lambda r: (r.mrr, r.hr))


def _ranked_lists(
    model: SessionModel, split: SessionSplit, k: int, streaming: bool
) -> Iterator[tuple[int, str, list[str]]]:
    """``(test session index, target, top k)`` for every prediction point.

    Streaming (incremental models only): the points are replayed in time order, and before
    each one the model takes every test session closed by then, i.e. whose last event is more
    than 30 minutes before the point (so never the current session itself).
    """
    if not (streaming and model.incremental):
        for i, s in enumerate(split.test):
            for t, ranked in enumerate(model.predict_session(s.items, k)):
                yield i, s.items[t + 1], ranked[:k]
        return
    test = split.test
    points = sorted((s.times[t], i, t) for i, s in enumerate(test) for t in range(len(s.items) - 1))
    closing = sorted(range(len(test)), key=lambda i: (test[i].end, i))
    taken = 0
    for when, i, t in points:
        while taken < len(closing) and test[closing[taken]].end + GAP_SECONDS < when:
            model.update(test[closing[taken]])
            taken += 1
        yield i, test[i].items[t + 1], model.recommend(test[i].items[: t + 1], k)[:k]


def _interval(
    sums: np.ndarray, points: np.ndarray, resamples: np.ndarray
) -> tuple[float, float] | None:
    if not len(resamples):
        return None
    figures = sums[resamples].sum(axis=1) / np.maximum(1.0, points[resamples].sum(axis=1))
    low, high = np.percentile(figures, [2.5, 97.5])
    return float(low), float(high)


def evaluate(
    split: SessionSplit,
    models: Sequence[SessionModel],
    *,
    k: int = TOP_K,
    streaming: bool = False,
    bootstrap: int = 0,
    seed: int = 0,
    progress: Callable[[str], object] | None = None,
) -> SessionEvaluation:
    """Fit each model on ``split.train`` and score every next item of ``split.test``.

    ``streaming``: incremental models also learn the test sessions as they close (see
    ``_ranked_lists``); the others stay frozen at the cut. ``bootstrap``: 95% percentile
    intervals from that many resamples of the test sessions (a session's points stay
    together; the same resamples for every model).
    """
    known = {item for s in split.train for item in s.items}
    targets = [item for s in split.test for item in s.items[1:]]
    result = SessionEvaluation(
        cut=split.cut,
        train_sessions=len(split.train),
        test_sessions=len(split.test),
        train_items=len(known),
        points=len(targets),
        unseen_targets=sum(1 for item in targets if item not in known),
        k=k,
        streaming=streaming,
        bootstrap=bootstrap,
    )
    resamples = np.random.default_rng(seed).integers(
        0, len(split.test), size=(bootstrap, len(split.test))
    )
    per_session = np.array([len(s.items) - 1 for s in split.test], dtype=float)
    sums: list[tuple[np.ndarray, np.ndarray]] = []
    for model in models:
        started = time.perf_counter()
        model.fit(split.train, split.cut)
        fitted = time.perf_counter()
        hits, ranks = np.zeros(len(split.test)), np.zeros(len(split.test))
        shown: set[str] = set()
        for i, target, top in _ranked_lists(model, split, k, streaming):
            shown.update(top)
            hits[i] += hit_rate_at_k(top, {target}, k)
            ranks[i] += reciprocal_rank(top, {target})
        done = time.perf_counter()
        points = max(1, len(targets))
        sums.append((hits, ranks))
        result.results.append(
            ModelResult(
                name=model.name,
                hr=float(hits.sum()) / points,
                mrr=float(ranks.sum()) / points,
                coverage=len(shown & known) / max(1, len(known)),
                fit_seconds=fitted - started,
                predict_seconds=done - fitted,
                updated=streaming and model.incremental,
                hr_interval=_interval(hits, per_session, resamples),
                mrr_interval=_interval(ranks, per_session, resamples),
            )
        )
        if progress is not None:
            progress(f"{model.name}: fit {fitted - started:.1f} s, scoring {done - fitted:.1f} s")
    if bootstrap and result.results:
        best = result.results.index(result.winner())
        for index, (hits, ranks) in enumerate(sums):
            result.results[index] = replace(
                result.results[index],
                hr_gap_interval=_interval(sums[best][0] - hits, per_session, resamples),
                mrr_gap_interval=_interval(sums[best][1] - ranks, per_session, resamples),
            )
    return result


def baselines(*, half_life_days: float = DEFAULT_HALF_LIFE_DAYS) -> list[SessionModel]:
    """The non-neural models, in the order the table prints them."""
    return [
        Popularity(),
        Popularity(half_life_days=half_life_days),
        LastItem(transitions=False),
        LastItem(transitions=True),
        SessionKNN(decay=False),
        SessionKNN(decay=True),
    ]
