"""``manage.py ab_replay``: a real experiment over a MIND replay, end to end on PostgreSQL."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from experiments_app.assignment import LAYER_BUCKETS, bucket
from experiments_app.models import Experiment, Exposure
from ml_app import ab_replay
from ml_app.datasets import mind
from ml_app.management.commands.ab_replay import render

START = datetime(2019, 11, 9, 8, 0, tzinfo=UTC)
DAYS = 4
USERS = 40
NEWS = 12


def _mind_time(at: datetime) -> str:
    return at.strftime("%m/%d/%Y %I:%M:%S %p").lstrip("0")


def write_fixture(folder: Path, *, days: int = DAYS, users: int = USERS) -> Path:
    """A small synthetic MIND-format log: every user has an impression on each of a few
    days, six candidates each, one or two clicked (lower news numbers are clicked more)."""
    rng = random.Random(0)
    news = [f"N{i}" for i in range(1, NEWS + 1)]
    (folder / "news.tsv").write_text(
        "".join(
            f"{n}\tnews\tnewsworld\tTitle {n}\tAbstract {n}\thttps://example.org/{n}\t[]\t[]\n"
            for n in news
        )
    )
    lines = []
    impression = 0
    for day in range(days):
        for u in range(1, users + 1):
            if rng.random() < 0.3 and day < days - 2:
                continue  # not every user comes every training day
            impression += 1
            at = START + timedelta(days=day, minutes=u * 7 + rng.randrange(5))
            shown = rng.sample(news, 6)
            weights = [1.0 / int(n[1:]) for n in shown]
            clicked = set(rng.choices(shown, weights=weights, k=rng.choice((1, 2))))
            tokens = " ".join(f"{n}-{1 if n in clicked else 0}" for n in shown)
            history = " ".join(rng.sample(news, 2))
            lines.append(f"{impression}\tU{u}\t{_mind_time(at)}\t{history}\t{tokens}\n")
    rng.shuffle(lines)  # file order is not time order
    (folder / "behaviors.tsv").write_text("".join(lines))
    return folder


def run(*args: str) -> str:
    out, err = StringIO(), StringIO()
    call_command("ab_replay", *args, "--no-similarity", stdout=out, stderr=err)
    return out.getvalue()


def test_user_outcome_counts_clicks_in_the_top_k_over_the_slots_shown():
    outcome = ab_replay.UserOutcome()
    outcome.add([0, 1, 0, 0, 0, 0, 1], [1, 2, 3, 4, 5, 6, 7], 5)  # one click in the top 5
    outcome.add([1, 0], [2, 1], 5)  # two candidates: two slots
    outcome.add([0, 0, 0], [1, 2, 3], 5)  # no click: no MRR
    assert outcome.slots == 5 + 2 + 3
    assert outcome.clicks == 2
    assert outcome.ctr == pytest.approx(2 / 10)
    assert outcome.clicked_impressions == 2
    # MIND's MRR: (1/2 + 1/7) / 2, then 1/2.
    assert outcome.mrr == pytest.approx(((1 / 2 + 1 / 7) / 2 + 1 / 2) / 2)


@pytest.mark.django_db
def test_replay_runs_a_real_experiment_and_reports_lift_srm_and_cuped(tmp_path):
    folder = write_fixture(tmp_path)
    report = json.loads(run("--path", str(folder), "--test-days", "2", "--json"))

    experiment = Experiment.objects.get(key="replay-linear-vs-learned-mind")
    assert experiment.status == Experiment.Status.STOPPED
    assert experiment.stop_reason == "replay finished"
    assert (experiment.layer_slot_start, experiment.layer_slot_end) == (0, LAYER_BUCKETS)
    assert experiment.layer.key == report["layer"] == experiment.key
    assert {v.key: (v.weight, v.is_control) for v in experiment.variants.all()} == {
        "linear": (50, True),
        "learned": (50, False),
    }

    # Every test-period user is exposed once, at their first test impression, in the arm
    # the experiment's salt gives them (deterministic: sha256, ADR 0021).
    exposures = Exposure.objects.filter(experiment=experiment).select_related("user", "variant")
    assert exposures.count() == USERS
    for e in exposures:
        point = bucket(experiment.salt, e.user_id)
        expected = "linear" if point < LAYER_BUCKETS // 2 else "learned"
        assert e.variant.key == expected
        assert e.user.username.startswith(mind.username(""))
        assert e.exposed_at.date().isoformat() in report["test_days"]
    counts = {"linear": 0, "learned": 0}
    for e in exposures:
        counts[e.variant.key] += 1
    assert report["exposures"] == counts

    assert report["train_days"] == ["2019-11-09", "2019-11-10"]
    assert report["test_days"] == ["2019-11-11", "2019-11-12"]
    assert report["test_units"] == USERS * 2 and report["unit"] == "impressions"
    assert report["k"] == 5
    ctr = report["metrics"]["ctr@5"]
    assert ctr["control"]["users"] + ctr["treatment"]["users"] == USERS
    assert ctr["control"]["users"] == counts["linear"]
    for arm in (ctr["control"], ctr["treatment"]):
        assert 0.0 <= arm["ci_low"] <= arm["mean"] <= arm["ci_high"] <= 1.0
    assert ctr["lift_ci_low"] <= ctr["lift"] <= ctr["lift_ci_high"]
    assert 0.0 <= ctr["p_value"] <= 1.0
    assert set(report["metrics"]) == {"ctr@5", "mrr"}

    srm = report["srm"]
    assert srm["observed"] == counts
    assert srm["expected_share"] == {"linear": 0.5, "learned": 0.5}
    assert 0.0 <= srm["p_value"] <= 1.0
    assert srm["blocking"] == (srm["p_value"] < 0.001)

    cuped = report["cuped"]
    assert cuped["pre_days"] == ["2019-11-10"]
    assert 0 < cuped["users_with_pre"] <= USERS
    assert cuped["variance_reduction"] <= 1.0
    assert cuped["adjusted"]["control"]["users"] == counts["linear"]
    assert report["counterfactual"]["users"] == USERS
    assert report["stop_reason"] == "replay finished"


@pytest.mark.django_db
def test_a_second_run_is_a_new_experiment_and_the_text_report_reads(tmp_path):
    # Twenty users: each run draws a new salt, and with twelve an arm of one user came up
    # in CI (about one run in 150); with twenty it is one in 25,000 for the primary metric.
    folder = write_fixture(tmp_path, users=20)
    run("--path", str(folder), "--json")
    out = run("--path", str(folder), "--pre-days", "2", "--params", "product")
    assert "experiment 'replay-linear-vs-learned-mind-2'" in out
    assert "product parameters: 100 rounds, lambdarank" in out
    assert "relative lift" in out and "p = " in out
    assert "SRM: observed" in out
    assert "CUPED: covariate" in out and "variance reduction" in out
    assert "Experiment stopped: 'replay finished'" in out
    first, second = Experiment.objects.order_by("id")
    assert first.salt != second.salt  # each run is a new randomisation
    assert Exposure.objects.filter(experiment=second).count() == 20


def _report(experiment) -> ab_replay.ReplayReport:
    return ab_replay.ReplayReport(
        dataset="mind",
        **ab_replay.experiment_fields(experiment),
        k=5,
        train_days=("2019-11-09",),
        test_days=("2019-11-10",),
        control="linear",
        unit="impressions",
        train_units=1,
        train_units_with_click=1,
        test_units=1,
        control_ranker="linear",
        treatment_ranker="learned",
        params={},
    )


@pytest.mark.django_db
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # SRM of 0 / 0
def test_a_secondary_metric_with_an_arm_of_one_user_is_reported_as_not_compared():
    """Regression: a new salt put one user with an MRR in the learned arm and the replay
    died on 'a variant needs at least two users'."""
    experiment = ab_replay.create_experiment("replay-small", "small arms", at=START)
    variants = {u: ("learned" if u in (1, 2, 3) else "linear") for u in range(1, 9)}
    primary = {u: u / 10 for u in range(1, 9)}
    out = _report(experiment)
    ab_replay.analyse(
        out,
        experiment,
        variants,
        primary=("ctr@5", primary),
        secondary=("mrr", {1: 0.5, 4: 1.0, 5: 0.5, 6: 0.25}),  # one learned user
        pre=({u: 0.1 * (u % 3) for u in range(1, 9)}, [START.date()]),
        covariate="ctr@5 before",
        both={u: (v, v) for u, v in primary.items()},
    )
    assert set(out.metrics) == {"ctr@5"}
    assert out.skipped == {
        "mrr": "3 linear and 1 learned users with a value; each arm needs at least 2"
    }
    assert out.metrics["ctr@5"].treatment.users == 3
    assert "mrr: not compared (3 linear and 1 learned users" in "\n".join(render(out))

    with pytest.raises(ab_replay.ReplayError, match="Too few users to compare ctr@5"):
        ab_replay.analyse(
            _report(experiment),
            experiment,
            variants,
            primary=("ctr@5", {1: 0.1, 4: 0.2, 5: 0.3}),
            secondary=("mrr", {}),
            pre=({}, [START.date()]),
            covariate="ctr@5 before",
            both={},
        )


@pytest.mark.django_db
def test_bad_input_is_a_command_error_and_leaves_no_running_experiment(tmp_path):
    with pytest.raises(CommandError, match=r"must hold news\.tsv"):
        run("--path", str(tmp_path))
    folder = write_fixture(tmp_path, days=2, users=4)
    with pytest.raises(CommandError, match="need at least one training day"):
        run("--path", str(folder), "--test-days", "2")
    with pytest.raises(CommandError, match="--k must be"):
        run("--path", str(folder), "--k", "0")
    assert not Experiment.objects.filter(status=Experiment.Status.RUNNING).exists()


def write_deskdrop(folder: Path, *, days: int = 30, users: int = 30) -> Path:
    """A small synthetic DeskDrop interactions file: three articles shared a day, each user
    reading fresh ones most days (two reader groups, even and odd article ids)."""
    rng = random.Random(1)
    start, day_s = 1_460_000_000, 86_400
    lines = []
    for day in range(days):
        for user in range(users):
            if rng.random() < 0.4:
                continue
            for _ in range(rng.randint(1, 3)):
                item = 3 * max(0, day - int(rng.expovariate(0.4))) + rng.randint(0, 2)
                if item % 2 != user % 2 and rng.random() < 0.7:
                    item += 1
                event = rng.choice(["VIEW"] * 8 + ["LIKE", "COMMENT CREATED"])
                at = start + day * day_s + rng.randint(0, day_s - 1)
                lines.append(f"{at},{event},{item},{900 + user},{day}{user},,,\n")
    header = "timestamp,eventType,contentId,personId,sessionId,userAgent,userRegion,userCountry\n"
    (folder / "users_interactions_test.csv").write_text(header + "".join(lines))
    return folder


@pytest.mark.django_db
def test_deskdrop_replay_runs_popularity_against_learned_with_one_exposure_per_user(tmp_path):
    report = json.loads(
        run("--dataset", "deskdrop", "--path", str(write_deskdrop(tmp_path)), "--json")
    )

    experiment = Experiment.objects.get(key="replay-linear-vs-learned-deskdrop")
    assert experiment.status == Experiment.Status.STOPPED
    assert experiment.stop_reason == "replay finished"
    assert {v.key: v.is_control for v in experiment.variants.all()} == {
        "popularity": True,
        "learned": False,
    }
    exposures = Exposure.objects.filter(experiment=experiment).select_related("variant", "user")
    counts = {"popularity": 0, "learned": 0}
    for e in exposures:
        point = bucket(experiment.salt, e.user_id)
        assert e.variant.key == ("popularity" if point < LAYER_BUCKETS // 2 else "learned")
        assert e.user.username.startswith("deskdrop_")
        counts[e.variant.key] += 1
    assert report["control"] == "popularity" and report["unit"] == "interactions"
    assert report["exposures"] == report["srm"]["observed"] == counts
    ndcg = report["metrics"]["ndcg@10"]
    assert ndcg["control"]["users"] == counts["popularity"]
    assert ndcg["treatment"]["users"] == counts["learned"]
    assert report["counterfactual"]["users"] == sum(counts.values()) >= 4
    assert 0.0 <= report["srm"]["p_value"] <= 1.0
    assert report["cuped"]["users_with_pre"] <= sum(counts.values())
