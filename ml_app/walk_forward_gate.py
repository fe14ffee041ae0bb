"""The product's promotion gate, mirrored in the walk-forward: what the product would serve.

The product never serves a learned reranker blindly (ADR 0020,
:mod:`ml_app.services.reranker_training`): it trains a candidate on the earlier part of its
data, scores it on a later window the candidate was not trained on against the active
ranking (with no promoted model, the linear ranking), by nDCG@10, registers *the model the
gate scored*, and promotes it only when it is strictly better. Mirrored on the replay, for
every day ``d`` (``d - 1`` being the replay's previous day):

- the gate model is the walk-forward model of ``d - 1``, trained only on the days before
  ``d - 1`` (:func:`ml_app.walk_forward.walk_forward`);
- the gate compares its nDCG@10 on day ``d - 1`` with the linear ranking's on the same
  impressions (per impression, binary click labels, mean over the impressions with a click:
  the nDCG@10 of the MIND tables; the product's metric, with clicks as the grades);
- when strictly better, day ``d`` is served by that same model (the one the gate scored, as
  the registry registers it — not the fresher model trained on the days before ``d``);
  otherwise, and on the days without a gate (the first two: no model scored the day before),
  by the linear ranking, the product's default with no promoted model.

Day ``d``'s own labels take no part in its gate. The baseline is always the linear ranking:
the registry gates against the version active then, which in a serial replay would be the
last model promoted, and keeps it when a later candidate fails; here a failed gate serves
the linear ranking. The two agree as long as no gate passes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import partial

from ml_app import ranking_metrics
from ml_app.walk_forward import (
    BOOTSTRAP_RESAMPLES,
    Impression,
    Interval,
    WalkForward,
    auc_difference,
    learned_ranks,
)

METRIC = "ndcg@10"
LEARNED = "learned"
LINEAR = "linear"


@dataclass(frozen=True, slots=True)
class Gate:
    """The gate that decided what served ``day``: the model of ``gate_day`` (trained on the
    days before it) against the linear ranking on ``gate_day``'s impressions."""

    day: date
    gate_day: date | None  # None: no model scored the day before, no gate
    trained_days: tuple[date, ...]  # what the gated model was trained on
    candidate: float  # the gated model's nDCG@10 on gate_day
    baseline: float  # the linear ranking's, on the same impressions
    impressions: int  # impressions of gate_day with a click
    passed: bool  # strictly better: the product serves the gated model on ``day``

    @property
    def ranker(self) -> str:
        return LEARNED if self.passed else LINEAR


@dataclass(slots=True)
class Served:
    """What the product serves on every day of the replay, and why."""

    gates: dict[date, Gate] = field(default_factory=dict)
    ranks: dict[int, list[int]] = field(default_factory=dict)  # every impression, by id
    # (served - linear) AUC per day a walk-forward model scored, and pooled (key None).
    intervals: dict[date | None, Interval] = field(default_factory=dict)


def mean_ndcg(
    impressions: Sequence[Impression], ranks_of: Callable[[Impression], Sequence[int]], k: int = 10
) -> tuple[float, int]:
    """Mean nDCG@k over the impressions with a click, and how many there are."""
    values = [
        ranking_metrics.ndcg(imp.labels, ranking_metrics.scores_from_ranks(ranks_of(imp)), k)
        for imp in impressions
        if any(imp.labels)
    ]
    return (sum(values) / len(values) if values else math.nan), len(values)


def serve(
    impressions: Sequence[Impression],
    wf: WalkForward,
    *,
    baseline: str,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> Served:
    """Gate every day on the day before it and rank it as the product would serve it;
    ``baseline`` names the linear ranking in :attr:`Impression.ranks`."""
    days = sorted({imp.day for imp in impressions})
    by_day: dict[date, list[Impression]] = {day: [] for day in days}
    for imp in impressions:
        by_day[imp.day].append(imp)
    served = Served()
    for i, day in enumerate(days):
        gate_day = days[i - 1] if i else None
        ranker = wf.rankers.get(gate_day) if gate_day is not None else None
        if gate_day is None or ranker is None:
            gate = Gate(day, None, (), math.nan, math.nan, 0, False)
        else:
            earlier = by_day[gate_day]
            candidate, n = mean_ndcg(earlier, partial(learned_ranks, ranker))
            linear, _ = mean_ndcg(earlier, lambda imp: imp.ranks[baseline])
            passed = n > 0 and candidate > linear
            trained = wf.models[gate_day].trained_days
            gate = Gate(day, gate_day, trained, candidate, linear, n, passed)
        served.gates[day] = gate
        for imp in by_day[day]:
            if gate.passed and ranker is not None:
                served.ranks[imp.impression_id] = learned_ranks(ranker, imp)
            else:
                served.ranks[imp.impression_id] = list(imp.ranks[baseline])

    def interval(log: Sequence[Impression]) -> Interval:
        return auc_difference(
            [imp.labels for imp in log],
            [served.ranks[imp.impression_id] for imp in log],
            [imp.ranks[baseline] for imp in log],
            resamples=resamples,
            seed=seed,
        )

    scored = [day for day in days if day in wf.models]
    for day in scored:
        served.intervals[day] = interval(by_day[day])
    if scored:
        served.intervals[None] = interval([imp for day in scored for imp in by_day[day]])
    return served
