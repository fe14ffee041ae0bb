"""The training commands: ``manage.py train_reranker`` on a served log the test writes, and
``manage.py bench_ml`` (``ml_app.services.training_bench``) on tiny dataset folders in each
format, with real LightGBM and implicit. No timing is asserted: only what was trained on."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from experience_app.models import ModelVersion
from experience_app.public import FEATURES
from experience_app.services import registry
from inbo import keys
from inbo import redis as inbo_redis
from ml_app.services import training_bench
from tests.ml.test_reranker import served_world

# --- train_reranker, train_als ------------------------------------------------------------


def _train(capsys, *args: str) -> str:
    call_command("train_reranker", "--days", "7", "--min-responses", "20", *args)
    return capsys.readouterr().out


@pytest.mark.django_db
def test_train_reranker_prints_the_served_log_and_the_gate_and_promotes(capsys):
    served_world(end=timezone.now() - timedelta(days=2))
    out = _train(capsys)
    assert re.search(r"^served log .*: 160 labelled responses, 1600 rows", out, re.M)
    assert re.search(r"^gate: nDCG@10 .* \(linear\) on \d+ later responses .* -> passed", out, re.M)
    assert "registered reranker:v1 (" in out and "promoted reranker:v1" in out
    assert registry.active("reranker").version == 1


@pytest.mark.django_db
def test_train_reranker_no_promote_leaves_a_candidate(capsys):
    served_world(end=timezone.now() - timedelta(days=2))
    out = _train(capsys, "--no-promote")
    assert "-> passed" in out and "registered reranker:v1" in out
    assert "promoted" not in out
    version = ModelVersion.objects.get()
    assert version.status == "candidate" and version.gate["passed"]
    assert registry.active("reranker") is None


@pytest.mark.django_db
def test_train_reranker_with_too_little_served_log_warns_and_registers_nothing(capsys):
    served_world(responses=5, end=timezone.now() - timedelta(days=2))
    out = _train(capsys)
    assert "5 labelled responses" in out
    warning = "not enough labelled responses (5 < 20): nothing trained"
    assert out.count(warning) == 2  # the training's own line, then the command's warning
    assert "gate:" not in out
    assert not ModelVersion.objects.exists()


@pytest.mark.django_db
def test_train_als_refuses_a_window_under_a_day_and_a_training_already_running():
    with pytest.raises(CommandError, match="--days must be at least 1"):
        call_command("train_als", "--days", "0")
    lock = keys.learned_lock("als_train")
    inbo_redis.state().set(lock, "another worker", ex=60)
    with pytest.raises(CommandError, match="another ALS training holds the lock"):
        call_command("train_als", "--days", "10")
    assert inbo_redis.state().get(lock) == "another worker"
    assert not ModelVersion.objects.exists()


# --- bench_ml -----------------------------------------------------------------------------

DESKDROP_HEADER = (
    "timestamp,eventType,contentId,personId,sessionId,userAgent,userRegion,userCountry\n"
)


def _movielens(folder: Path) -> None:
    """Ten users, each rating seven of their taste group's eight items (16 items in all)."""
    folder.mkdir()
    lines = []
    for u in range(1, 11):
        base = 1 if u % 2 else 11
        lines += [f"{u}\t{base + k}\t{1 + k % 5}\t{880000000 + u * 100 + k}" for k in range(8)]
        lines.pop(-1 - u % 8)
    (folder / "u.data.dev").write_text("\n".join(lines) + "\n")


def _deskdrop(folder: Path) -> None:
    """Six readers of five articles each (one viewed twice, one liked), and a bad row."""
    folder.mkdir()
    rows = [
        f"{1000 + u * 10 + a},VIEW,{-100 - (u + a) % 8},{7000 + u},1,,,\n"
        for u in range(6)
        for a in range(5)
    ]
    rows += ["2000,VIEW,-100,7000,1,,,\n", "2001,LIKE,-107,7001,1,,,\n", "2002,DISLIKE,1,2,3,,,\n"]
    (folder / "users_interactions_dev.csv").write_text(DESKDROP_HEADER + "".join(rows))


def _mind(folder: Path) -> None:
    """Twelve impressions of four candidates (one clicked each) by four users, plus a
    malformed and a blank line the bench skips."""
    folder.mkdir()
    lines = []
    for n in range(12):
        u = n % 4
        clicked = "N1" if n % 3 else "N5"
        cands = " ".join(f"{c}-{int(c == clicked)}" for c in ("N1", "N3", "N5", "N6"))
        history = "N2" if u % 2 else "N4 N7"
        lines.append(f"{n + 1}\tU{u}\t11/1{n % 3}/2019 9:{n:02d}:00 AM\t{history}\t{cands}\n")
    lines += ["x\tU9\tyesterday\t\tN1-1\n", "\n"]
    (folder / "behaviors_dev.tsv").write_text("".join(lines))


@pytest.fixture
def datasets(tmp_path: Path) -> Path:
    _movielens(tmp_path / "movielens_100k")
    _deskdrop(tmp_path / "deskdrop")
    _mind(tmp_path / "mind_small_subset")
    return tmp_path


def test_bench_ml_trains_als_and_lightgbm_on_each_dataset_and_writes_the_figures(
    datasets, tmp_path, capsys
):
    figures = tmp_path / "bench.json"
    call_command(
        "bench_ml", "--data", str(datasets), "--rounds", "2", "--threads", "1", "--json", figures
    )
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == list(training_bench.READERS)
    for line in out:
        assert re.search(r": ALS [\d.]+s wall, [\d.]+s CPU \(.* pairs, .*1 thread\); ", line)
        assert re.search(r"LightGBM lambdarank [\d.]+s wall, [\d.]+s CPU \(", line)
        assert f"{len(FEATURES)} features, 2 rounds, 1 threads)" in line
    assert "(70 pairs, 10 users x 16 items, 1 thread)" in out[0]
    assert "(1,000 rows in 10 groups," in out[0]
    assert "(31 pairs, 6 users x 8 items, 1 thread)" in out[1]
    assert "(600 rows in 6 groups," in out[1]
    assert "(48 rows in 12 groups," in out[2]

    written = {row["dataset"]: row for row in json.loads(figures.read_text())}
    assert list(written) == list(training_bench.READERS)
    movielens = written["movielens_100k"]
    assert (movielens["als_pairs"], movielens["als_users"], movielens["als_items"]) == (70, 10, 16)
    assert (movielens["gbm_rows"], movielens["gbm_groups"]) == (1000, 10)
    assert (movielens["gbm_rounds"], movielens["gbm_threads"]) == (2, 1)
    mind = written["mind_small_subset"]
    # Clicked candidates and every user's history: N1, N5 clicked; N2, N4, N7 read before.
    assert (mind["als_users"], mind["als_items"]) == (4, 5)
    assert (mind["gbm_rows"], mind["gbm_groups"]) == (48, 12)
    for row in written.values():
        assert row["als_seconds"] >= 0 and row["gbm_cpu_seconds"] >= 0


def test_bench_ml_skips_a_dataset_whose_folder_is_missing(datasets, tmp_path, capsys):
    (datasets / "deskdrop" / "users_interactions_dev.csv").unlink()
    figures = tmp_path / "bench.json"
    call_command(
        "bench_ml",
        "--data",
        str(datasets),
        "--datasets",
        "deskdrop",
        "mind_small_subset",
        "--rounds",
        "1",
        "--threads",
        "1",
        "--json",
        str(figures),
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"deskdrop: skipped ({datasets / 'deskdrop'} has no dataset)"
    assert len(out) == 2 and out[1].startswith("mind_small_subset: ALS ")
    assert [row["dataset"] for row in json.loads(figures.read_text())] == ["mind_small_subset"]


def test_bench_ml_on_an_empty_folder_skips_everything(tmp_path, capsys):
    call_command("bench_ml", "--data", str(tmp_path), "--rounds", "1")
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{name}: skipped ({tmp_path / name} has no dataset)" for name in training_bench.READERS
    ]


def test_the_lambdarank_rows_have_the_reranker_features_with_missing_values():
    x = training_bench.synthetic_features(2000, seed=1)
    assert x.shape == (2000, len(FEATURES))
    als, similarity = FEATURES.index("als"), FEATURES.index("similarity")
    assert 0.3 < (x[:, als] != x[:, als]).mean() < 0.5  # NaN: no ALS score for the item
    assert 0.2 < (x[:, similarity] != x[:, similarity]).mean() < 0.4
    others = [i for i in range(len(FEATURES)) if i not in (als, similarity)]
    assert not (x[:, others] != x[:, others]).any()
