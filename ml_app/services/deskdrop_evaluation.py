"""Time-split evaluation of recommenders on DeskDrop (train before a cut, test after).

Protocol (docs/ML.md, "DeskDrop"):

- the cut: given, or the timestamp leaving the last 20% of interactions (by time) as test;
  training is every interaction with ``timestamp < cut``, test every one at or after it;
- the candidate catalog: the articles available at the cut: shared before the cut and not
  removed before it. A share time comes from the articles file when one is given, otherwise
  (and for ids it lacks) from the item's first interaction, since an item read before the cut
  was available then. Items first seen after the cut are unknown at the cut and not ranked;
- evaluated users: every test user with at least one test interaction on a catalog item they
  had not engaged with before the cut; relevant = those items; the ranking is the whole
  catalog less the user's training items. Warm users (seen before the cut) and cold users are
  reported apart;
- metrics per user, averaged: nDCG@10, HR@10, MRR; each with a bootstrap 95% interval
  (users resampled with a fixed seed, the same resamples for every method).

Methods: the baselines of ``deskdrop_baselines`` and ``learned`` (``deskdrop_learned``: candidate
generators and a LightGBM reranker, fitted on the training period only; cold users get decayed
popularity).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from experience_app.public import bar
from ml_app.datasets.deskdrop import REMOVED, SHARED, Article, Interaction
from ml_app.ranking_metrics import hit_rate_at_k, ndcg_at_k, reciprocal_rank
from ml_app.services import deskdrop_baselines as baselines
from ml_app.services import deskdrop_learned as learned

K = 10
TEST_SHARE = 0.2
METRICS = ("ndcg10", "hr10", "mrr")
GROUPS = ("all", "warm", "cold")
LEARNED = learned.LEARNED
METHODS = (*baselines.METHODS, LEARNED)
METHOD_LABELS = {**baselines.METHOD_LABELS, LEARNED: learned.LABEL}


class DeskdropEvaluationError(ValueError):
    """The data cannot be evaluated (no interaction, nothing on one side of the cut)."""


def default_cut(rows: Sequence[Interaction], test_share: float = TEST_SHARE) -> int:
    """The timestamp leaving the last ``test_share`` of interactions (by time) as test."""
    if not rows:
        raise DeskdropEvaluationError("no interaction to cut")
    times = sorted(row.timestamp for row in rows)
    return times[min(len(times) - 1, int(len(times) * (1.0 - test_share)))]


def split(rows: Sequence[Interaction], cut: int) -> tuple[list[Interaction], list[Interaction]]:
    """(training, test): before the cut, and at or after it."""
    return [r for r in rows if r.timestamp < cut], [r for r in rows if r.timestamp >= cut]


def candidate_catalog(
    train: Sequence[Interaction], articles: Sequence[Article], cut: int
) -> dict[str, int]:
    """item → share time, for the items available at ``cut`` (see the module docstring)."""
    shared: dict[str, int] = {}
    removed: set[str] = set()
    for event in sorted((a for a in articles if a.timestamp < cut), key=lambda a: a.timestamp):
        if event.event == SHARED:
            shared.setdefault(event.content_id, event.timestamp)
            removed.discard(event.content_id)
        elif event.event == REMOVED:
            removed.add(event.content_id)
    for row in train:
        if row.timestamp < cut:
            at = shared.get(row.content_id)
            shared[row.content_id] = row.timestamp if at is None else min(at, row.timestamp)
    return {item: at for item, at in shared.items() if item not in removed}


@dataclass(frozen=True)
class Figure:
    mean: float
    low: float
    high: float


@dataclass
class Side:
    users: int = 0
    items: int = 0
    interactions: int = 0


@dataclass
class DeskdropResult:
    cut: int
    train: Side
    test: Side
    catalog: int
    test_on_catalog: int  # test interactions on catalog items the user had not engaged with
    users: dict[str, int]  # group → evaluated users
    figures: dict[str, dict[str, dict[str, Figure]]]  # group → method → metric → figure
    half_life_days: float
    bootstrap: int
    skipped: list[str] = field(default_factory=list)
    timings: learned.Timings | None = None  # the learned method's training times


def _side(rows: Sequence[Interaction]) -> Side:
    return Side(
        users=len({r.person_id for r in rows}),
        items=len({r.content_id for r in rows}),
        interactions=len(rows),
    )


def _bootstrap(
    values: dict[str, dict[str, list[float]]], samples: int, seed: int
) -> dict[str, dict[str, Figure]]:
    """method → metric → mean with a percentile 95% interval over user resamples."""
    n = len(next(iter(next(iter(values.values())).values())))
    if n == 0:
        nan = float("nan")
        return {m: {k: Figure(nan, nan, nan) for k in per} for m, per in values.items()}
    rng = random.Random(seed)
    draws: dict[tuple[str, str], list[float]] = defaultdict(list)
    for _ in range(samples):
        picks = rng.choices(range(n), k=n)
        for method, per in values.items():
            for metric, vals in per.items():
                draws[method, metric].append(sum(vals[i] for i in picks) / n)
    out: dict[str, dict[str, Figure]] = {}
    for method, per in values.items():
        out[method] = {}
        for metric, vals in per.items():
            d = sorted(draws[method, metric])
            low, high = (d[int(0.025 * len(d))], d[int(0.975 * len(d)) - 1]) if d else (0, 0)
            out[method][metric] = Figure(sum(vals) / n, low, high)
    return out


def evaluate(
    rows: Sequence[Interaction],
    articles: Sequence[Article] = (),
    *,
    cut: int | None = None,
    methods: Sequence[str] = METHODS,
    half_life_days: float = baselines.DEFAULT_HALF_LIFE_DAYS,
    bootstrap: int = 1000,
    seed: int = 0,
    progress: IO[str] | Any = None,
    log: Callable[[str], None] | None = None,
) -> DeskdropResult:
    """Fit each method on the interactions before the cut and score it on those after."""
    cut = default_cut(rows) if cut is None else cut
    train, test = split(rows, cut)
    if not train or not test:
        raise DeskdropEvaluationError(
            f"the cut {cut} leaves {len(train)} training and {len(test)} test interactions; "
            "both sides need at least one"
        )
    catalog = candidate_catalog(train, articles, cut)
    fitted = baselines.fit(
        train,
        now=cut,
        shared_at=catalog,
        half_life_days=half_life_days,
        knn=baselines.ITEM_KNN in methods,
    )
    items = frozenset(catalog)
    relevant: dict[str, set[str]] = defaultdict(set)
    test_on_catalog = 0
    for row in test:
        if row.content_id in items and row.content_id not in fitted.pairs.get(row.person_id, {}):
            relevant[row.person_id].add(row.content_id)
            test_on_catalog += 1
    users = sorted(relevant)
    warm = {u for u in users if u in fitted.pairs}
    ranker = None
    if LEARNED in methods:
        ranker = learned.fit_learned(train, now=cut, shared_at=catalog)
    orders = {m: baselines.base_order(fitted, items, m) for m in methods if m != LEARNED}
    per_user: dict[str, dict[str, dict[str, float]]] = {m: {} for m in methods}
    with bar(stream=progress, desc="users", total=len(users) * len(methods)) as b:
        for method in methods:
            for user in users:
                if method == LEARNED:
                    assert ranker is not None
                    ranked = ranker.rank(user)
                else:
                    ranked = baselines.rank_for_user(
                        fitted, method, user, orders[method], catalog=items
                    )
                rel = relevant[user]
                per_user[method][user] = {
                    "ndcg10": ndcg_at_k(ranked, rel, K),
                    "hr10": hit_rate_at_k(ranked, rel, K),
                    "mrr": reciprocal_rank(ranked, rel),
                }
                b.update(1)
    groups = {"all": users, "warm": [u for u in users if u in warm]}
    groups["cold"] = [u for u in users if u not in warm]
    figures = {}
    for group, members in groups.items():
        values = {
            m: {metric: [per_user[m][u][metric] for u in members] for metric in METRICS}
            for m in methods
        }
        figures[group] = _bootstrap(values, bootstrap, seed)
    return DeskdropResult(
        cut=cut,
        train=_side(train),
        test=_side(test),
        catalog=len(catalog),
        test_on_catalog=test_on_catalog,
        users={g: len(m) for g, m in groups.items()},
        figures=figures,
        half_life_days=half_life_days,
        bootstrap=bootstrap,
        timings=ranker.timings if ranker is not None else None,
    )
