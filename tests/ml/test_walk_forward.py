"""The learned reranker's walk-forward on the replay: training sets, bootstrap, predictions."""

from __future__ import annotations

import math
from datetime import date
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command

from experience_app.public import FEATURES
from ml_app import evaluation, walk_forward, walk_forward_gate
from ml_app.services.reranker_training import linear_scores

DAYS = ("11/09/2019", "11/10/2019", "11/11/2019")
NEWS = {
    "N1": ("sports", "football", "The home team wins the football final", "A late goal."),
    "N2": ("sports", "football", "Football coach signs a new contract", "Three more years."),
    "N3": ("foodanddrink", "recipes", "A quick recipe for tomato soup", "Ready in ten minutes."),
    "N4": ("foodanddrink", "recipes", "How to bake sourdough bread", "Flour, water, salt."),
}


def _mind_files(tmp_path: Path) -> tuple[Path, Path]:
    """Three days of four users; N1 and N5 are clicked often, N3 and N6 rarely."""
    news = tmp_path / "news.tsv"
    news.write_text(
        "".join(
            f"{n}\t{cat}\t{sub}\t{title}\t{abstract}\thttps://example.org/{n}\t[]\t[]\n"
            for n, (cat, sub, title, abstract) in NEWS.items()
        )
    )
    lines = []
    impression_id = 0
    for d, day in enumerate(DAYS):
        for u in range(4):
            for hour in (8, 9, 10):
                impression_id += 1
                clicked = "N1" if (u + hour + d) % 3 else "N5"
                cands = [f"{n}-{1 if n == clicked else 0}" for n in ("N1", "N3", "N5", "N6")]
                history = "N2" if u % 2 else "N4 N7"
                lines.append(
                    f"{impression_id}\tU{u}\t{day} {hour}:{u * 10 + 5:02d}:00 AM\t{history}"
                    f"\t{' '.join(cands)}\n"
                )
    behaviors = tmp_path / "behaviors.tsv"
    behaviors.write_text("".join(reversed(lines)))  # file order is not time order
    return news, behaviors


def _day_of(behaviors: Path) -> dict[int, date]:
    out = {}
    for line in behaviors.read_text().splitlines():
        impression_id, _, when, *_ = line.split("\t")
        month, day, year = when.split()[0].split("/")
        out[int(impression_id)] = date(int(year), int(month), int(day))
    return out


@pytest.mark.django_db
def test_each_day_is_scored_by_a_model_trained_only_on_earlier_days(tmp_path, monkeypatch):
    news, behaviors = _mind_files(tmp_path)
    training_sets: list[list[date]] = []
    real_fit = walk_forward.fit

    def recording_fit(impressions, **kwargs):
        training_sets.append([imp.day for imp in impressions])
        return real_fit(impressions, **kwargs)

    monkeypatch.setattr(walk_forward, "fit", recording_fit)
    result = evaluation.evaluate_ranking(
        news_path=news, behaviors_path=behaviors, similarity=False, resamples=50
    )

    wf = result.learned
    assert wf is not None
    first, second, third = (date(2019, 11, 9), date(2019, 11, 10), date(2019, 11, 11))
    assert list(wf.models) == [second, third]  # no model for the first day
    # What LightGBM was given: only days before the scored one, never that day or later.
    assert [sorted(set(days)) for days in training_sets] == [[first], [first, second]]
    assert len(training_sets[0]) == 12 and len(training_sets[1]) == 24
    day_of = _day_of(behaviors)
    for day, model in wf.models.items():
        assert model.train_impression_ids
        assert all(day_of[i] < day for i in model.train_impression_ids)
        assert all(d < day for d in model.trained_days)
    # Every impression of a scored day has learned ranks; none of the first day has.
    assert {day_of[i] for i in wf.ranks} == {second, third}
    assert len(wf.ranks) == 24
    assert result.per_day[second][evaluation.LEARNED].impressions == 12
    assert result.per_day[first][evaluation.LEARNED].impressions == 0


@pytest.mark.django_db
def test_feature_rows_are_read_before_the_impressions_outcome(tmp_path):
    news, behaviors = _mind_files(tmp_path)
    result = evaluation.evaluate_ranking(
        news_path=news, behaviors_path=behaviors, learned=False, similarity=False
    )
    log = result.impressions_log
    assert [imp.day for imp in log] == sorted(imp.day for imp in log)  # time order
    assert all(len(row) == len(FEATURES) for imp in log for row in imp.rows)
    column = FEATURES.index("impressions_log")
    # The first impression: nothing shown before it, so no counts yet (its own impression
    # events are ingested after its rows are read); the second sees the first one's.
    assert all(row[column] == 0.0 for row in log[0].rows)
    assert all(row[column] == pytest.approx(math.log1p(1), abs=1e-4) for row in log[1].rows)
    assert all(math.isnan(row[FEATURES.index("als")]) for imp in log for row in imp.rows)
    assert result.learned is None


@pytest.mark.django_db
def test_the_text_similarity_feature_follows_the_users_clicks(tmp_path):
    news, behaviors = _mind_files(tmp_path)
    result = evaluation.evaluate_ranking(
        news_path=news, behaviors_path=behaviors, learned=False, similarity=True
    )
    column = FEATURES.index("similarity")
    for imp in result.impressions_log:
        values = dict(zip(imp.news_ids, (row[column] for row in imp.rows), strict=True))
        # N1 and N3 have text and every user has a history with text; N5 and N6 have none.
        assert not math.isnan(values["N1"]) and not math.isnan(values["N3"])
        assert math.isnan(values["N5"]) and math.isnan(values["N6"])


def test_text_similarity_prefers_the_topic_the_user_clicked():
    texts = {n: f"{title}. {abstract}" for n, (_, _, title, abstract) in NEWS.items()}
    sim = walk_forward.TextSimilarity(texts)
    assert sim.scores("u", ["N2", "N4"]) == {}  # no clicks with text yet
    sim.clicked("u", ["N1", "N99"])
    scores = sim.scores("u", ["N2", "N4", "N99"])
    assert set(scores) == {"N2", "N4"}
    assert scores["N2"] > scores["N4"]


def test_news_embeddings_are_cached_by_content_and_model_version(tmp_path):
    texts = {n: f"{title}. {abstract}" for n, (_, _, title, abstract) in NEWS.items()}
    first = walk_forward.TextSimilarity(texts, cache_dir=tmp_path)
    (cached,) = tmp_path.glob("*.npy")
    vectors = np.load(cached)
    assert vectors.shape == (len(NEWS), 384)
    # N1 and N2 swapped in the file: the next instance reads it instead of embedding again.
    np.save(cached, vectors[[1, 0, 2, 3]])
    again = walk_forward.TextSimilarity(texts, cache_dir=tmp_path)
    for sim in (first, again):
        sim.clicked("u", ["N1"])
    before, after = first.scores("u", ["N3"]), again.scores("u", ["N3"])
    assert before["N3"] == pytest.approx(float(vectors[0] @ vectors[2]), abs=1e-5)
    assert after["N3"] == pytest.approx(float(vectors[1] @ vectors[2]), abs=1e-5)
    walk_forward.TextSimilarity({**texts, "N1": "Another title."}, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 2  # other texts, another file


def test_paired_bootstrap_interval_of_the_auc_difference():
    labels = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0)]
    best = [(1, 2, 3), (2, 1, 3), (3, 2, 1), (1, 2, 3)]
    worst = [(3, 2, 1), (1, 3, 2), (1, 2, 3), (3, 2, 1)]
    same = walk_forward.auc_difference(labels, best, best, resamples=200, seed=1)
    assert (same.mean, same.low, same.high, same.impressions) == (0.0, 0.0, 0.0, 4)
    gap = walk_forward.auc_difference(labels, best, worst, resamples=200, seed=1)
    assert gap.mean == pytest.approx(1.0) and gap.low == pytest.approx(1.0)
    mixed = walk_forward.auc_difference(labels, best, [*worst[:2], *best[2:]], resamples=500)
    assert mixed.mean == pytest.approx(0.5)
    assert mixed.low < mixed.mean < mixed.high
    again = walk_forward.auc_difference(labels, best, [*worst[:2], *best[2:]], resamples=500)
    assert again == mixed  # seeded
    assert walk_forward.auc_difference([(1, 1)], [(1, 2)], [(2, 1)]).impressions == 0


@pytest.mark.django_db
def test_the_command_prints_the_learned_ranker_and_intervals_per_day(tmp_path):
    news, behaviors = _mind_files(tmp_path)
    target = tmp_path / "prediction.txt"
    out = StringIO()
    call_command(
        "evaluate_ranking",
        "--news",
        str(news),
        "--behaviors",
        str(behaviors),
        "--no-similarity",
        "--bootstrap",
        "100",
        "--predictions",
        str(target),
        stdout=out,
        stderr=StringIO(),
    )
    text = out.getvalue()
    assert "2019-11-09 (no learned model" in text
    assert "2019-11-10 (model trained on 2019-11-09: 12 impressions" in text
    assert "2019-11-11 (model trained on 2019-11-09, 2019-11-10: 24 impressions" in text
    for label in ("linear ranking (rank)", "real-time CTR (smoothed)"):
        lines = [line for line in text.splitlines() if f"learned - {label} AUC:" in line]
        assert len(lines) == 3  # two scored days, and pooled over them
        assert all("[95% " in line and "100 paired bootstrap resamples" in line for line in lines)
    assert "Mean of the daily figures over the 2 days scored by a model" in text
    assert "mean daily AUC gain of the learned ranker" in text
    # What the product serves behind its gate, every day, and why.
    assert text.count("  served by the product (gated): the linear ranking (no gate") == 2
    gate_lines = [line for line in text.splitlines() if "(gate on 2019-11-10: the model" in line]
    assert len(gate_lines) == 1 and "trained on 2019-11-09, nDCG@10" in gate_lines[0]
    served = [line for line in text.splitlines() if "served - linear ranking (rank) AUC:" in line]
    assert len(served) == 3  # two scored days, and pooled over them
    assert "served by the product (gated): a learned model on" in text
    assert len(target.read_text().splitlines()) == 36
    assert f"Predictions written to {target}" in text


@pytest.mark.django_db
def test_learned_predictions_are_the_learned_ranking_where_a_model_scored_the_day(tmp_path):
    news, behaviors = _mind_files(tmp_path)
    target = tmp_path / "prediction.txt"
    result = evaluation.evaluate_ranking(
        news_path=news,
        behaviors_path=behaviors,
        similarity=False,
        resamples=10,
        predictions=target,
        predictions_ranker="learned",
    )
    wf = result.learned
    assert wf is not None
    lines = target.read_text().splitlines()
    file_ids = [int(line.split("\t")[0]) for line in behaviors.read_text().splitlines()]
    assert [int(line.split()[0]) for line in lines] == file_ids  # file order
    by_id = {imp.impression_id: imp for imp in result.impressions_log}
    for line in lines:
        impression_id, ranks = int(line.split()[0]), line.split()[1]
        imp = by_id[impression_id]
        if imp.day == date(2019, 11, 9):  # the first day: no model, the linear ranking
            assert impression_id not in wf.ranks
            expected = list(imp.ranks[evaluation.RANKING])
        else:
            expected = wf.ranks[impression_id]
        assert ranks == f"[{','.join(map(str, expected))}]"
        assert sorted(expected) == list(range(1, len(imp.shown) + 1))


def _synthetic_impressions(n: int, seed: int = 0) -> list[walk_forward.Impression]:
    """Impressions of five candidates whose click follows ``ctr`` (which the linear ranking
    ignores) more than ``popularity`` (which it uses)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        rows = rng.random((5, len(FEATURES)))
        rows[:, FEATURES.index("als")] = np.nan
        clicked = int(np.argmax(rows[:, FEATURES.index("ctr")] + 0.3 * rng.random(5)))
        news_ids = tuple(f"N{i}-{k}" for k in range(5))
        labels = tuple(1 if k == clicked else 0 for k in range(5))
        out.append(
            walk_forward.Impression(
                impression_id=i,
                day=date(2019, 11, 9),
                shown=news_ids,
                labels=labels,
                news_ids=news_ids,
                rows=tuple(tuple(float(v) for v in row) for row in rows),
                ranks={},
            )
        )
    return out


def _matrix(imp: walk_forward.Impression) -> np.ndarray:
    return np.asarray(imp.rows, dtype=np.float64)


def test_the_learned_score_is_the_linear_score_plus_the_boosters_output():
    train = _synthetic_impressions(200)
    params = {**walk_forward.PARAMS, "min_data_in_leaf": 20, "num_threads": 1}
    assert params["init_score"] == "linear"
    model = walk_forward.fit(train, params=params, rounds=20)
    assert model.init_score == "linear" and model.booster.num_trees() == 20
    x = np.vstack([_matrix(imp) for imp in _synthetic_impressions(20, seed=1)])
    raw = model.booster.predict(x, raw_score=True)
    assert np.any(raw != 0.0)  # the booster learned something
    np.testing.assert_allclose(model.scores(x), linear_scores(x) + raw)
    # Without init_score the booster's output is the whole score.
    plain = walk_forward.fit(train, params={**params, "init_score": None}, rounds=20)
    np.testing.assert_allclose(plain.scores(x), plain.booster.predict(x, raw_score=True))


def test_with_no_split_learned_the_learned_ranking_is_the_linear_ranking():
    train = _synthetic_impressions(50)
    # Too few rows for any leaf: every tree is a single leaf of output 0.
    params = {**walk_forward.PARAMS, "min_data_in_leaf": 100_000, "num_threads": 1}
    model = walk_forward.fit(train, params=params, rounds=5)
    for imp in _synthetic_impressions(10, seed=2):
        x = _matrix(imp)
        assert np.all(model.booster.predict(x, raw_score=True) == 0.0)
        np.testing.assert_array_equal(model.scores(x), linear_scores(x))
        linear = dict(zip(imp.news_ids, linear_scores(x), strict=True))
        order = sorted(
            imp.news_ids, key=lambda n: (-linear[n], walk_forward.tiebreak(imp.impression_id, n))
        )
        assert walk_forward.learned_ranks(model, imp) == walk_forward.position_ranks(
            imp.shown, order
        )


def test_an_unknown_init_score_is_refused():
    with pytest.raises(ValueError, match="init_score"):
        walk_forward.fit(_synthetic_impressions(5), params={"init_score": "ctr"}, rounds=1)


def _prediction_lines(target: Path) -> dict[int, list[int]]:
    out = {}
    for line in target.read_text().splitlines():
        impression_id, ranks = line.split()
        out[int(impression_id)] = [int(r) for r in ranks.strip("[]").split(",")]
    return out


@pytest.mark.django_db
def test_predictions_follow_what_the_product_serves_behind_its_gate(tmp_path):
    news, behaviors = _mind_files(tmp_path)
    target = tmp_path / "prediction.txt"
    result = evaluation.evaluate_ranking(
        news_path=news, behaviors_path=behaviors, similarity=False, resamples=10, predictions=target
    )  # the default: what the product serves
    wf, served = result.learned, result.served
    assert wf is not None and served is not None
    written = _prediction_lines(target)
    assert len(written) == 36
    first, second, third = (date(2019, 11, 9), date(2019, 11, 10), date(2019, 11, 11))
    assert served.gates[first].gate_day is None and served.gates[second].gate_day is None
    gate = served.gates[third]
    assert gate.gate_day == second and gate.trained_days == (first,)
    for imp in result.impressions_log:
        assert written[imp.impression_id] == served.ranks[imp.impression_id]
        if served.gates[imp.day].passed:  # the gated model: trained on the first day only
            expected = walk_forward.learned_ranks(wf.rankers[second], imp)
        else:
            expected = list(imp.ranks[evaluation.RANKING])
        assert served.ranks[imp.impression_id] == expected
    scores = result.per_day[first][evaluation.SERVED]
    assert scores.impressions == 12 and result.overall[evaluation.SERVED].impressions == 36

    linear = evaluation.evaluate_ranking(
        news_path=news,
        behaviors_path=behaviors,
        similarity=False,
        resamples=10,
        predictions=target,
        predictions_ranker="linear",
    )
    by_id = {imp.impression_id: imp for imp in linear.impressions_log}
    for impression_id, ranks in _prediction_lines(target).items():
        assert ranks == list(by_id[impression_id].ranks[evaluation.RANKING])
    with pytest.raises(ValueError, match="predictions ranker"):
        evaluation.evaluate_ranking(
            news_path=news, behaviors_path=behaviors, predictions_ranker="ctr", learned=False
        )


GATE_DAYS = (date(2019, 11, 9), date(2019, 11, 10), date(2019, 11, 11), date(2019, 11, 12))
GATE_PARAMS = {**walk_forward.PARAMS, "min_data_in_leaf": 20, "num_threads": 1}


def _gate_log(follows: dict[date, str], n: int = 150) -> list[walk_forward.Impression]:
    """``n`` impressions a day; a day's clicks follow ``ctr`` (which the linear ranking
    ignores: a learned model beats it) or the linear ranking itself (nothing beats it)."""
    out = []
    for d, day in enumerate(GATE_DAYS):
        for imp in _synthetic_impressions(n, seed=d):
            impression_id = d * n + imp.impression_id
            x = _matrix(imp)
            linear = dict(zip(imp.news_ids, linear_scores(x), strict=True))
            order = sorted(
                imp.news_ids, key=lambda k: (-linear[k], walk_forward.tiebreak(impression_id, k))
            )
            labels = imp.labels
            if follows[day] == "linear":
                labels = tuple(1 if k == order[0] else 0 for k in imp.shown)
            linear_ranks = tuple(walk_forward.position_ranks(imp.shown, order))
            out.append(
                walk_forward.Impression(
                    impression_id=impression_id,
                    day=day,
                    shown=imp.shown,
                    labels=labels,
                    news_ids=imp.news_ids,
                    rows=imp.rows,
                    ranks={evaluation.RANKING: linear_ranks},
                )
            )
    return out


def _gated(log: list[walk_forward.Impression]):
    wf = walk_forward.walk_forward(log, params=GATE_PARAMS, rounds=20)
    return wf, walk_forward_gate.serve(log, wf, baseline=evaluation.RANKING, resamples=20)


def test_the_gate_serves_the_gated_model_when_it_beats_linear_and_linear_otherwise():
    first, second, third, fourth = GATE_DAYS
    log = _gate_log({first: "ctr", second: "ctr", third: "linear", fourth: "ctr"})
    wf, served = _gated(log)
    assert list(wf.models) == [second, third, fourth]
    # No model scored the day before the first two days: no gate, the linear ranking.
    for day in (first, second):
        gate = served.gates[day]
        assert gate.gate_day is None and not gate.passed and gate.ranker == "linear"
    # The third day: the model of the second (trained on the first only) beat linear there.
    gate = served.gates[third]
    assert (gate.gate_day, gate.trained_days) == (second, (first,))
    assert gate.candidate > gate.baseline and gate.passed and gate.ranker == "learned"
    assert gate.impressions == 150
    # The fourth: on the third day clicks follow the linear ranking, nothing beats it.
    gate = served.gates[fourth]
    assert (gate.gate_day, gate.trained_days) == (third, (first, second))
    assert gate.baseline == pytest.approx(1.0) and not gate.passed
    for imp in log:
        ranks = served.ranks[imp.impression_id]
        if imp.day == third:  # the model the gate scored, not the fresher one
            assert ranks == walk_forward.learned_ranks(wf.rankers[second], imp)
        else:  # no gate or a failed one: exactly the linear ranking
            assert ranks == list(imp.ranks[evaluation.RANKING])
    assert any(
        served.ranks[imp.impression_id] != wf.ranks[imp.impression_id]
        for imp in log
        if imp.day == third
    )
    assert served.intervals[second].mean == 0.0 and served.intervals[fourth].mean == 0.0
    # The gate passed on the second day, but the third's clicks follow the linear ranking:
    # a gate is a bet on the next day, and this one loses.
    assert served.intervals[third].mean < 0.0
    assert set(served.intervals) == {second, third, fourth, None}


def test_the_gate_never_uses_the_day_it_serves():
    first, second, third, fourth = GATE_DAYS
    base = {first: "ctr", second: "ctr", third: "ctr", fourth: "ctr"}
    _, reference = _gated(_gate_log(base))
    for day in (third, fourth):
        # The served day's own clicks changed (they now follow the linear ranking)...
        _, changed = _gated(_gate_log({**base, day: "linear"}))
        # ...and its gate, and what it serves, did not.
        assert changed.gates[day] == reference.gates[day]
        gate = changed.gates[day]
        assert gate.gate_day is not None and gate.gate_day < day
        assert all(d < gate.gate_day for d in gate.trained_days)
        for imp in _gate_log(base):
            if imp.day == day:
                assert changed.ranks[imp.impression_id] == reference.ranks[imp.impression_id]
