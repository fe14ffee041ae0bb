"""A replayed A/B test of the linear ranking (control) against the learned reranker (issue 12).

The experiment is real: a layer and an experiment with variants ``linear`` (control, 50%) and
``learned`` (50%) are created and started through ``experiments_app``'s lifecycle (slot
allocation, fresh salts), every user of the test period is assigned by
:func:`experiments_app.public.assign` on their product user id, an exposure is logged at their
first impression of the test period (:func:`log_exposure`), and the experiment is stopped at
the end with the reason :data:`STOP_REASON`. The analysis is ``experiments_app.stats``.

What is replayed (MIND): the behaviors go through :func:`ml_app.evaluation.evaluate_ranking`
(the real ingestion and the product's linear :func:`rank`, in a rolled-back transaction and the
scratch Redis database), which records every impression's feature rows and the linear
ranking's ranks. The days are split by time: the last ``test_days`` UTC days are the test
period (the experiment), the days before them the training period. The learned reranker is
trained once on the training period only, exactly as the walk-forward trains each day's model
(:func:`ml_app.walk_forward.fit` with :data:`walk_forward.PARAMS` and :data:`walk_forward.ROUNDS`,
boosted from the linear score; nothing tuned on the test period); ``params="product"`` uses
the product trainer's parameters instead (:data:`PARAM_SETS`). Every test impression is
ranked by its user's variant and scored on what the user clicked.

Per-user metric (primary): **CTR@k** = the user's clicks at ranks 1..k over the top-k slots
they were shown (``min(k, candidates)`` per impression), k = :data:`TOP_K`. ``stats`` has no
delta-method ratio metric, so it is a per-user ratio averaged over users, each user weighted
equally (Welch's t-test, delta-method interval of the relative lift). Secondary: the user's
mean MIND MRR over their impressions with a click (users without a click in the test period
have no MRR and are left out of it, in both arms alike). CUPED uses the same CTR@k under the
linear ranking on the last ``pre_days`` training days as the pre-period covariate (before the
experiment everyone saw the linear ranking); a user without a pre-period impression gets the
mean of the others' (so no adjustment).

What this is not: both arms are scored on the same logged clicks, which were made in front of
MIND's own ranking. It measures ranking quality on held-out days with the product's
randomisation and statistics, not a change in behaviour (no user saw either ranking). Because
it is a replay, each user can also be scored under both rankings: :class:`Counterfactual` is
that paired comparison over all test users, a check of what the split-sample A/B estimates.

DeskDrop (:mod:`ml_app.ab_replay_deskdrop`) reuses the experiment and the analysis here
(:func:`create_experiment`, :func:`analyse`) on issue 11's DeskDrop protocol.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from experience_app.public import users_ensure
from experiments_app.public import (
    VariantSpec,
    assign,
    compare,
    cuped,
    experiment_create,
    experiment_start,
    experiment_stop,
    log_exposure,
    srm,
    summarize,
)
from inbo.errors import Conflict
from ml_app import ranking_metrics, walk_forward
from ml_app.datasets import mind
from ml_app.evaluation import RANKING, Report, evaluate_ranking
from ml_app.evaluation_scratch import EvaluationError
from ml_app.services.mind import HISTORY_OFFSET, MindSummary, Stream, _Skips, valid_behaviors
from ml_app.services.reranker_training import MAX_ROUNDS as PRODUCT_ROUNDS
from ml_app.services.reranker_training import PARAMS as PRODUCT_PARAMS

CONTROL = "linear"  # the control on MIND: the product's linear ranking
TREATMENT = "learned"
WEIGHT = 50  # each arm's percent
TOP_K = 5
STOP_REASON = "replay finished"
KEY_PREFIX = "replay-linear-vs-learned"
DATASETS = ("mind", "deskdrop")
# The learned arm's LightGBM settings on MIND: the walk-forward's (issue 11's MIND evaluation,
# chosen on the earliest days only), or the product trainer's (``RERANKER_PARAMS``, boosted
# from the linear score as the product does, its maximum rounds without early stopping, and
# binary click labels: its graded labels need the served log).
PARAM_SETS: dict[str, tuple[dict[str, Any], int]] = {
    "walk-forward": (walk_forward.PARAMS, walk_forward.ROUNDS),
    "product": ({**PRODUCT_PARAMS, "init_score": "linear"}, PRODUCT_ROUNDS),
}


MIN_ARM_USERS = 2  # a variance needs two values


class ReplayError(EvaluationError):
    """The replayed A/B test cannot run (too few days, no users, ...)."""


@dataclass(slots=True)
class UserOutcome:
    """One user's test-period figures under the ranking they were served."""

    impressions: int = 0
    slots: int = 0  # top-k positions shown: min(k, candidates) per impression
    clicks: int = 0  # clicks at ranks 1..k
    rr_sum: float = 0.0
    clicked_impressions: int = 0

    def add(self, labels: Sequence[int], ranks: Sequence[int], k: int) -> None:
        self.impressions += 1
        self.slots += min(k, len(labels))
        self.clicks += sum(1 for label, r in zip(labels, ranks, strict=True) if label and r <= k)
        if any(labels):
            self.rr_sum += ranking_metrics.mrr(labels, ranking_metrics.scores_from_ranks(ranks))
            self.clicked_impressions += 1

    @property
    def ctr(self) -> float:
        return self.clicks / self.slots if self.slots else 0.0

    @property
    def mrr(self) -> float | None:
        return self.rr_sum / self.clicked_impressions if self.clicked_impressions else None


@dataclass(frozen=True, slots=True)
class Arm:
    """One variant's per-user metric: users, mean and its 95% interval."""

    variant: str
    users: int
    mean: float
    std: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True, slots=True)
class MetricResult:
    """Learned against linear on one per-user metric (``experiments_app.stats.compare``)."""

    metric: str
    control: Arm
    treatment: Arm
    diff: float
    diff_ci_low: float
    diff_ci_high: float
    lift: float
    lift_ci_low: float
    lift_ci_high: float
    p_value: float


@dataclass(frozen=True, slots=True)
class SrmCheck:
    """Chi-square of the exposures per variant against the designed 50/50."""

    observed: dict[str, int]
    expected_share: dict[str, float]
    statistic: float
    p_value: float
    blocking: bool


@dataclass(frozen=True, slots=True)
class CupedCheck:
    """CUPED on the primary metric: the covariate, its coverage, theta, the variance
    reduction and the adjusted comparison."""

    covariate: str
    pre_days: tuple[str, ...]
    users_with_pre: int
    theta: float
    variance_reduction: float
    adjusted: MetricResult


@dataclass(frozen=True, slots=True)
class Counterfactual:
    """Every test user scored under both rankings (a replay can; an A/B cannot): the mean
    of each and the paired difference with its normal 95% interval."""

    metric: str
    users: int
    control: float
    treatment: float
    diff: float
    diff_ci_low: float
    diff_ci_high: float


@dataclass(slots=True)
class ReplayReport:
    """Everything the replayed A/B test measured, and what it ran on."""

    dataset: str
    experiment: str
    layer: str
    layer_salt: str
    experiment_salt: str
    layer_slot: tuple[int, int]
    k: int
    train_days: tuple[str, ...]
    test_days: tuple[str, ...]
    control: str  # the control variant's key
    unit: str  # what is ranked: "impressions" (MIND), "users' test periods" (DeskDrop)
    train_units: int
    train_units_with_click: int
    test_units: int
    control_ranker: str
    treatment_ranker: str
    params: dict[str, Any]
    exposures: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, MetricResult] = field(default_factory=dict)
    # Metrics left out, with why: an arm with fewer than two users has no variance.
    skipped: dict[str, str] = field(default_factory=dict)
    srm: SrmCheck | None = None
    cuped: CupedCheck | None = None
    counterfactual: Counterfactual | None = None
    stop_reason: str = ""
    similarity: bool = False
    fit_seconds: float = 0.0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def experiment_fields(experiment: Any) -> dict[str, Any]:
    """The report's fields that name the experiment it ran: key, layer, salts and slot."""
    return {
        "experiment": experiment.key,
        "layer": experiment.layer.key,
        "layer_salt": experiment.layer.salt,
        "experiment_salt": experiment.salt,
        "layer_slot": (experiment.layer_slot_start, experiment.layer_slot_end),
    }


def _behaviors(path: Path, limit: int | None) -> list[mind.Behavior]:
    """Valid behaviors in replay order (time, then impression id); the replay reports the
    skipped lines, so they are only counted here."""
    summary = MindSummary()
    valid = valid_behaviors(path, limit, summary, _Skips(summary, None), None, "behaviors")
    return sorted((b for _, b in valid), key=lambda b: (b.time, b.impression_id))


def _ensure_users(replay: list[mind.Behavior], test: set[date]) -> dict[str, int]:
    """The product user ids of the test period's users, created (committed) as the replay
    and ``load_mind`` create them, so the exposure log can refer to them."""
    first: dict[str, datetime] = {}
    for b in replay:
        first.setdefault(b.user_id, b.time)
    wanted = list(dict.fromkeys(b.user_id for b in replay if b.time.date() in test))
    ids, _ = users_ensure(
        [mind.username(u) for u in wanted],
        joined={mind.username(u): first[u] - HISTORY_OFFSET for u in wanted},
    )
    return {u: ids[mind.username(u)] for u in wanted}


def create_experiment(key: str, hypothesis: str, at: datetime, *, control: str = CONTROL) -> Any:
    """Create and start the experiment in a layer of its own; ``-2``, ``-3``... are appended
    to ``key`` when an earlier run holds it (each run is a new randomisation)."""
    # The learned arm's model is trained by the replay, not a registered version, so its
    # config names none (the validated configs only know "linear", "active", "reranker:vN").
    variants = [
        VariantSpec(control, WEIGHT, True, {"reranker": "linear"} if control == CONTROL else {}),
        VariantSpec(TREATMENT, WEIGHT, False, {}),
    ]
    for n in range(1, 100):
        candidate = key if n == 1 else f"{key}-{n}"
        try:
            experiment = experiment_create(
                key=candidate, hypothesis=hypothesis, layer_key=candidate, variants=variants
            )
        except Conflict:
            continue
        return experiment_start(experiment, at=at)
    raise ReplayError(f"Experiment keys {key!r} to {key}-99 are all taken.")


def _arm(variant: str, values: np.ndarray) -> Arm:
    s = summarize(variant, values)
    return Arm(variant, s.users, s.mean, s.std, s.ci_low, s.ci_high)


def _metric(
    name: str, control: np.ndarray, treatment: np.ndarray, control_key: str
) -> MetricResult:
    c, t = summarize(control_key, control), summarize(TREATMENT, treatment)
    cmp = compare(c, t, "mean")
    return MetricResult(
        metric=name,
        control=_arm(control_key, control),
        treatment=_arm(TREATMENT, treatment),
        diff=cmp.diff,
        diff_ci_low=cmp.ci_low,
        diff_ci_high=cmp.ci_high,
        lift=cmp.lift,
        lift_ci_low=cmp.lift_ci_low,
        lift_ci_high=cmp.lift_ci_high,
        p_value=cmp.p_value,
    )


def _counterfactual(metric: str, control: np.ndarray, treatment: np.ndarray) -> Counterfactual:
    d = treatment - control
    half = 1.959964 * float(d.std(ddof=1)) / math.sqrt(d.size) if d.size > 1 else math.nan
    mean = float(d.mean())
    return Counterfactual(
        metric=metric,
        users=int(d.size),
        control=float(control.mean()),
        treatment=float(treatment.mean()),
        diff=mean,
        diff_ci_low=mean - half,
        diff_ci_high=mean + half,
    )


def replay_mind(
    *,
    news_path: Path,
    behaviors_path: Path,
    key: str = f"{KEY_PREFIX}-mind",
    test_days: int = 2,
    pre_days: int = 1,
    k: int = TOP_K,
    limit: int | None = None,
    similarity: bool = True,
    params: str = "walk-forward",
    embedding_cache: Path | None = None,
    report: Report | None = None,
    progress: Stream = None,
) -> ReplayReport:
    """Run the replayed A/B test on MIND-format files (see the module docstring)."""
    if params not in PARAM_SETS:
        raise ReplayError(f"Unknown parameter set {params!r}: one of {', '.join(PARAM_SETS)}.")
    started = time.monotonic()
    replay = _behaviors(behaviors_path, limit)
    days = sorted({b.time.date() for b in replay})
    if len(days) <= test_days:
        raise ReplayError(
            f"The log spans {len(days)} day(s); {test_days} test day(s) need at least one "
            "training day before them."
        )
    train, test = days[:-test_days], days[-test_days:]
    pre = train[-pre_days:]
    test_set = set(test)
    by_id = {b.impression_id: b for b in replay}
    test_log = [b for b in replay if b.time.date() in test_set]
    user_ids = _ensure_users(replay, test_set)

    hypothesis = (
        "On the MIND replay's held-out days, the learned reranker (LightGBM boosted from the "
        f"linear score, issue 11) puts more of what users clicked in the top {k} than the "
        f"linear ranking: per-user CTR@{k} up. Replayed offline by manage.py ab_replay; the "
        "learned model is trained on the training days only."
    )
    experiment = create_experiment(key, hypothesis, at=test_log[0].time)
    try:
        out = _run(
            experiment,
            news_path=news_path,
            behaviors_path=behaviors_path,
            limit=limit,
            similarity=similarity,
            params=params,
            embedding_cache=embedding_cache,
            report=report,
            progress=progress,
            by_id=by_id,
            user_ids=user_ids,
            days=(train, test, pre),
            k=k,
        )
    except BaseException:
        experiment_stop(experiment, reason="replay failed")
        raise
    experiment = experiment_stop(experiment, at=test_log[-1].time, reason=STOP_REASON)
    out.stop_reason = experiment.stop_reason
    out.seconds = time.monotonic() - started
    return out


def _run(
    experiment: Any,
    *,
    news_path: Path,
    behaviors_path: Path,
    limit: int | None,
    similarity: bool,
    params: str,
    embedding_cache: Path | None,
    report: Report | None,
    progress: Stream,
    by_id: dict[int, mind.Behavior],
    user_ids: dict[str, int],
    days: tuple[list[date], list[date], list[date]],
    k: int,
) -> ReplayReport:
    """Replay, train on the training days, serve and score the test days, analyse."""
    train, test, pre = (set(d) for d in days)
    result = evaluate_ranking(
        news_path=news_path,
        behaviors_path=behaviors_path,
        limit=limit,
        learned=False,
        similarity=similarity,
        embedding_cache=embedding_cache,
        report=report,
        progress=progress,
    )
    log = result.impressions_log
    train_log = [imp for imp in log if imp.day in train]
    if not any(any(imp.labels) for imp in train_log):
        raise ReplayError("No click in the training period: there is nothing to learn from.")
    fit_started = time.monotonic()
    lgb_params, rounds = PARAM_SETS[params]
    model = walk_forward.fit(train_log, params=lgb_params, rounds=rounds)
    fit_seconds = time.monotonic() - fit_started

    def when(imp: walk_forward.Impression) -> tuple[datetime, int]:
        return by_id[imp.impression_id].time, imp.impression_id

    test_log = sorted((imp for imp in log if imp.day in test), key=when)
    variants: dict[int, str] = {}
    served: dict[int, UserOutcome] = {}
    both: dict[int, tuple[UserOutcome, UserOutcome]] = {}  # (linear, learned)
    for imp in test_log:
        behavior = by_id[imp.impression_id]
        uid = user_ids[behavior.user_id]
        if uid not in variants:
            variant = assign(experiment, uid)
            if variant is None:  # 100% of a layer of its own: everyone is in
                raise ReplayError(f"User {uid} is not in {experiment.key!r}.")
            log_exposure(experiment, variant, uid, behavior.time)
            variants[uid] = variant.key
        linear = list(imp.ranks[RANKING])
        learned = walk_forward.learned_ranks(model, imp)
        served.setdefault(uid, UserOutcome()).add(
            imp.labels, learned if variants[uid] == TREATMENT else linear, k
        )
        pair = both.setdefault(uid, (UserOutcome(), UserOutcome()))
        pair[0].add(imp.labels, linear, k)
        pair[1].add(imp.labels, learned, k)
    before: dict[int, UserOutcome] = {}
    for imp in log:
        uid_pre = user_ids.get(by_id[imp.impression_id].user_id)
        if imp.day in pre and uid_pre is not None:
            before.setdefault(uid_pre, UserOutcome()).add(imp.labels, imp.ranks[RANKING], k)

    users = sorted(served)
    ctr_name = f"ctr@{k}"
    out = ReplayReport(
        dataset="mind",
        **experiment_fields(experiment),
        k=k,
        train_days=tuple(d.isoformat() for d in days[0]),
        test_days=tuple(d.isoformat() for d in days[1]),
        control=CONTROL,
        unit="impressions",
        train_units=len(train_log),
        train_units_with_click=sum(1 for imp in train_log if any(imp.labels)),
        test_units=len(test_log),
        control_ranker="the product's linear ranking (experience_app rank())",
        treatment_ranker=(
            f"walk_forward.fit on the training days ({params} parameters: {rounds} rounds, "
            f"{lgb_params['objective']}, boosted from the linear score; similarity "
            f"feature {'on' if result.similarity else 'off'}; fit {fit_seconds:.1f} s)"
        ),
        params={**lgb_params, "rounds": rounds, "set": params},
        similarity=result.similarity,
        fit_seconds=fit_seconds,
    )
    analyse(
        out,
        experiment,
        variants,
        primary=(ctr_name, {u: served[u].ctr for u in users}),
        secondary=("mrr", {u: m for u in users if (m := served[u].mrr) is not None}),
        pre=({u: before[u].ctr for u in users if u in before}, days[2]),
        covariate=f"{ctr_name} under the linear ranking on the last {len(days[2])} training day(s)",
        both={u: (both[u][0].ctr, both[u][1].ctr) for u in users},
    )
    return out


def analyse(
    out: ReplayReport,
    experiment: Any,
    variants: dict[int, str],
    *,
    primary: tuple[str, dict[int, float]],
    secondary: tuple[str, dict[int, float]],
    pre: tuple[dict[int, float], Sequence[date]],
    covariate: str,
    both: dict[int, tuple[float, float]],
) -> None:
    """Exposures and SRM from the exposure log, the per-user comparisons, CUPED on the
    primary metric (users without a pre-period value get the others' mean) and the
    counterfactual check, into ``out``."""
    out.exposures = {v.key: v.exposures.count() for v in experiment.variants.all()}
    c = out.control
    check = srm([out.exposures[c], out.exposures[TREATMENT]], [WEIGHT, WEIGHT])
    out.srm = SrmCheck(
        observed=dict(out.exposures),
        expected_share={c: 0.5, TREATMENT: 0.5},
        statistic=check.statistic,
        p_value=check.p_value,
        blocking=check.blocking,
    )
    for role, (name, values) in (("primary", primary), ("secondary", secondary)):
        users = sorted(values)
        arm = np.array([variants[u] == TREATMENT for u in users])
        y = np.array([values[u] for u in users], dtype=float)
        sizes = {c: int((~arm).sum()), TREATMENT: int(arm.sum())}
        if min(sizes.values()) < MIN_ARM_USERS:
            why = (
                f"{sizes[c]} {c} and {sizes[TREATMENT]} {TREATMENT} users with a value; "
                f"each arm needs at least {MIN_ARM_USERS}"
            )
            if role == "primary":
                raise ReplayError(f"Too few users to compare {name}: {why}.")
            out.skipped[name] = why
            continue
        out.metrics[name] = _metric(name, y[~arm], y[arm], c)

    name, values = primary
    users = sorted(values)
    arm = np.array([variants[u] == TREATMENT for u in users])
    y = np.array([values[u] for u in users], dtype=float)
    before, pre_days = pre
    with_pre = [u for u in users if u in before]
    fill = float(np.mean([before[u] for u in with_pre])) if with_pre else 0.0
    x_pre = np.array([before.get(u, fill) for u in users], dtype=float)
    adjusted = cuped(y, x_pre)
    out.cuped = CupedCheck(
        covariate=covariate,
        pre_days=tuple(d.isoformat() for d in pre_days),
        users_with_pre=len(with_pre),
        theta=adjusted.theta,
        variance_reduction=adjusted.variance_reduction,
        adjusted=_metric(f"{name} (CUPED)", adjusted.adjusted[~arm], adjusted.adjusted[arm], c),
    )
    out.counterfactual = _counterfactual(
        name, np.array([both[u][0] for u in users]), np.array([both[u][1] for u in users])
    )
