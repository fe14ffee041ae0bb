"""The replayed A/B test on DeskDrop (``manage.py ab_replay --dataset deskdrop``).

The same real experiment as on MIND (:mod:`ml_app.ab_replay`: a layer of its own, the control
50 / ``learned`` 50, :func:`assign` on product user ids, one exposure per user, stopped with
"replay finished"), on issue 11's DeskDrop protocol (docs/ML.md, "DeskDrop";
:mod:`ml_app.services.deskdrop_evaluation`): the cut leaves the last 20% of interactions by
time as the test period; the candidate catalog is what was available at the cut; the users are
every test user with a test interaction on a catalog item they had not engaged with before the
cut, and those items are their relevant ones.

The arms. DeskDrop was never replayed through the product's ``rank()`` (it has no
impressions), so the control, the variant ``popularity``, is **decayed popularity** (3-day
half-life), the strongest baseline and the one issue 11's learned ranker is measured against
there; popularity is also what the linear ranking mostly is (docs/ML.md, MIND). Treatment,
``learned``: the learned ranker exactly as issue 11 fits it (:func:`deskdrop_learned.fit_learned`
with its default :class:`LearnedParams`, training period only; cold users get decayed
popularity). Per-user metrics: nDCG@k (k = 10, issue 11's) and MRR over the ranked unseen
catalog. CUPED's covariate: the user's nDCG@k under decayed popularity on the same protocol one
step earlier (the training period cut at its own 80%), for the users it evaluates. The exposure
time is the user's first test interaction; the product user is ``deskdrop_<personId>``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from experience_app.public import users_ensure
from experiments_app.public import assign, experiment_stop, log_exposure
from ml_app.ab_replay import (
    KEY_PREFIX,
    STOP_REASON,
    TREATMENT,
    ReplayError,
    ReplayReport,
    analyse,
    create_experiment,
    experiment_fields,
)
from ml_app.datasets import deskdrop
from ml_app.evaluation import Report
from ml_app.ranking_metrics import ndcg_at_k, reciprocal_rank
from ml_app.services import deskdrop_baselines as baselines
from ml_app.services import deskdrop_evaluation as protocol
from ml_app.services import deskdrop_learned as learned

K = 10
CONTROL = "popularity"  # the control variant's key here: decayed popularity, not linear
CONTROL_METHOD = baselines.POPULARITY_DECAYED


def username(person_id: str) -> str:
    return f"deskdrop_{person_id}"


def _when(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _relevant(
    train: Sequence[deskdrop.Interaction], test: Sequence[deskdrop.Interaction], cut: int
) -> tuple[baselines.Fitted, frozenset[str], dict[str, set[str]], dict[str, int]]:
    """Issue 11's protocol at ``cut``: the fitted baselines, the catalog, each evaluated
    user's relevant items and the catalog's share times."""
    catalog = protocol.candidate_catalog(train, (), cut)
    fitted = baselines.fit(train, now=cut, shared_at=catalog, knn=False)
    items = frozenset(catalog)
    relevant: dict[str, set[str]] = defaultdict(set)
    for row in test:
        if row.content_id in items and row.content_id not in fitted.pairs.get(row.person_id, {}):
            relevant[row.person_id].add(row.content_id)
    return fitted, items, relevant, catalog


def _control_ranking(fitted: baselines.Fitted, items: frozenset[str], user: str) -> list[str]:
    order = baselines.base_order(fitted, items, CONTROL_METHOD)
    return baselines.rank_for_user(fitted, CONTROL_METHOD, user, order, catalog=items)


def replay_deskdrop(
    *,
    interactions_path: Path,
    key: str = f"{KEY_PREFIX}-deskdrop",
    k: int = K,
    report: Report | None = None,
) -> ReplayReport:
    """Run the replayed A/B test on a DeskDrop interactions file (see the module docstring)."""
    started = time.monotonic()
    read = deskdrop.read_interactions(interactions_path)
    if report is not None:
        for skipped in read.skipped:
            report(str(skipped))
    rows = read.rows
    try:
        cut = protocol.default_cut(rows)
    except protocol.DeskdropEvaluationError as error:
        raise ReplayError(str(error)) from None
    train, test = protocol.split(rows, cut)
    fitted, items, relevant, catalog = _relevant(train, test, cut)
    first_test: dict[str, int] = {}
    for row in sorted(test, key=lambda r: r.timestamp):
        if row.person_id in relevant:
            first_test.setdefault(row.person_id, row.timestamp)
    users = sorted(first_test)
    if len(users) < 4:
        raise ReplayError(f"Only {len(users)} users to evaluate after the cut; at least 4.")
    joined = {r.person_id: r.timestamp for r in sorted(rows, key=lambda r: -r.timestamp)}
    ids, _ = users_ensure(
        [username(u) for u in users], joined={username(u): _when(joined[u]) for u in users}
    )
    hypothesis = (
        "On DeskDrop's last 20% of interactions, the learned ranker (candidates -> LightGBM, "
        f"issue 11) ranks the articles users went on to read higher than decayed popularity: "
        f"per-user nDCG@{k} up. Replayed offline by manage.py ab_replay; the learned model is "
        "fitted on the training period only."
    )
    experiment = create_experiment(key, hypothesis, at=_when(cut), control=CONTROL)
    try:
        out = _run(
            experiment, train, test, cut, fitted, items, relevant, catalog, first_test, ids, k
        )
    except BaseException:
        experiment_stop(experiment, reason="replay failed")
        raise
    experiment = experiment_stop(
        experiment, at=_when(max(r.timestamp for r in test)), reason=STOP_REASON
    )
    out.stop_reason = experiment.stop_reason
    out.seconds = time.monotonic() - started
    return out


def _run(
    experiment: Any,
    train: list[deskdrop.Interaction],
    test: list[deskdrop.Interaction],
    cut: int,
    fitted: baselines.Fitted,
    items: frozenset[str],
    relevant: dict[str, set[str]],
    catalog: dict[str, int],
    first_test: dict[str, int],
    ids: dict[str, int],
    k: int,
) -> ReplayReport:
    """Fit the learned ranker, serve and score every user by their variant, analyse."""
    users = sorted(first_test, key=lambda u: (first_test[u], u))
    fit_started = time.monotonic()
    ranker = learned.fit_learned(train, now=cut, shared_at=catalog)
    fit_seconds = time.monotonic() - fit_started

    variants: dict[int, str] = {}
    ndcg: dict[int, float] = {}
    mrr: dict[int, float] = {}
    both: dict[int, tuple[float, float]] = {}
    for user in users:
        uid = ids[username(user)]
        variant = assign(experiment, uid)
        if variant is None:  # 100% of a layer of its own: everyone is in
            raise ReplayError(f"User {uid} is not in the experiment.")
        log_exposure(experiment, variant, uid, _when(first_test[user]))
        variants[uid] = variant.key
        rel = relevant[user]
        control, treatment = _control_ranking(fitted, items, user), ranker.rank(user)
        served = treatment if variant.key == TREATMENT else control
        ndcg[uid] = ndcg_at_k(served, rel, k)
        mrr[uid] = reciprocal_rank(served, rel)
        both[uid] = (ndcg_at_k(control, rel, k), ndcg_at_k(treatment, rel, k))

    # CUPED's pre-period: the same protocol one step earlier, inside the training period.
    inner_cut = protocol.default_cut(train)
    inner_train, inner_test = protocol.split(train, inner_cut)
    inner_fitted, inner_items, inner_relevant, _ = _relevant(inner_train, inner_test, inner_cut)
    pre = {
        ids[username(u)]: ndcg_at_k(
            _control_ranking(inner_fitted, inner_items, u), inner_relevant[u], k
        )
        for u in users
        if u in inner_relevant
    }

    name = f"ndcg@{k}"
    out = ReplayReport(
        dataset="deskdrop",
        **experiment_fields(experiment),
        k=k,
        train_days=(_when(min(r.timestamp for r in train)).isoformat(), _when(cut).isoformat()),
        test_days=(_when(cut).isoformat(), _when(max(r.timestamp for r in test)).isoformat()),
        control=CONTROL,
        unit="interactions",
        train_units=len(train),
        train_units_with_click=len(train),
        test_units=len(test),
        control_ranker="decayed popularity (3-day half-life), unseen catalog items",
        treatment_ranker=(
            "deskdrop_learned.fit_learned on the training period (candidates -> LightGBM "
            f"lambdarank, default LearnedParams; cold users get decayed popularity; fit "
            f"{fit_seconds:.1f} s)"
        ),
        params=asdict(learned.LearnedParams()),
        fit_seconds=fit_seconds,
    )
    analyse(
        out,
        experiment,
        variants,
        primary=(name, ndcg),
        secondary=("mrr", mrr),
        pre=(pre, [_when(inner_cut).date(), _when(cut).date()]),
        covariate=f"{name} under decayed popularity, the training period cut at its own 80%",
        both=both,
    )
    return out
