"""MovieLens 100K: the u.data reader, evaluate_movielens and recommend_offline on tiny files."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from ml_app import movielens_eval
from ml_app.datasets.movielens import (
    LineError,
    ReadReport,
    parse_rating_line,
    read_ratings,
    read_users,
)


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _structured_lines(users: int = 10, start: int = 880000000) -> list[str]:
    """Two taste groups of items (1-8 and 11-18); user u rates 7 of its group's 8 items."""
    lines = []
    for u in range(1, users + 1):
        base = 1 if u % 2 else 11
        for k in range(8):
            if k != u % 8:
                lines.append(f"{u}\t{base + k}\t{1 + (u + k) % 5}\t{start + u * 100 + k}")
    return lines


# --- reader ---------------------------------------------------------------------------------


def test_parse_rating_line_keeps_ids_as_strings():
    rating = parse_rating_line("196\t242\t3\t881250949")
    assert (rating.user_id, rating.item_id, rating.rating, rating.timestamp) == (
        "196",
        "242",
        3.0,
        881250949,
    )


@pytest.mark.parametrize(
    "line",
    [
        "196\t242\t3",  # too few columns
        "196\t242\t3\t881250949\textra",  # too many
        "196\t242\tthree\t881250949",  # rating not a number
        "196\t242\t7\t881250949",  # rating out of range
        "196\t242\t0\t881250949",
        "196\t242\t3\tyesterday",  # timestamp not an integer
        "\t242\t3\t881250949",  # empty user id
        "196 197\t242\t3\t881250949",  # space in an id
        "196,242,3,881250949",  # wrong separator
    ],
)
def test_parse_rating_line_refuses_a_malformed_line(line):
    with pytest.raises(LineError):
        parse_rating_line(line)


def test_read_ratings_skips_bad_lines_and_reports_their_numbers(tmp_path):
    path = tmp_path / "u.data"
    path.write_bytes(
        b"1\t10\t5\t100\n"
        b"1\t11\tx\t101\n"  # line 2: bad rating
        b"\n"  # line 3: blank, ignored
        b"2\t\xff\t4\t102\n"  # line 4: not UTF-8
        b"2\t10\t4\t103\r\n"  # line 5: CRLF accepted
        b"3\t12\t1\t104"  # line 6: no final newline
    )
    report = ReadReport()
    ratings = list(read_ratings(path, report))
    assert [(r.user_id, r.item_id) for r in ratings] == [("1", "10"), ("2", "10"), ("3", "12")]
    assert [number for number, _ in report.bad] == [2, 4]
    assert "not a number" in report.bad[0][1]
    assert report.lines == 6


def test_read_users_reads_only_the_user_column(tmp_path):
    path = _write(tmp_path / "test", ["5\tgarbage", "3", "5\t\t\t", "", "7\tx\ty\tz\tw"])
    assert read_users(path) == ["5", "3", "7"]


def test_read_ratings_of_an_empty_file_is_empty(tmp_path):
    assert list(read_ratings(_write(tmp_path / "u.data", []))) == []


# --- protocol -------------------------------------------------------------------------------


def test_kfold_partitions_every_rating_once_and_depends_on_the_seed(tmp_path):
    ratings = list(read_ratings(_write(tmp_path / "u.data", _structured_lines())))
    folds = movielens_eval.kfold(ratings, 5, seed=0)

    def key(r):
        return (r.user_id, r.item_id, r.timestamp)

    assert sorted((r for f in folds for r in f), key=key) == sorted(ratings, key=key)
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    assert movielens_eval.kfold(ratings, 5, seed=0) == folds
    assert movielens_eval.kfold(ratings, 5, seed=1) != folds


def test_evaluate_fold_ranks_only_test_fold_items_minus_training_items(tmp_path):
    ratings = list(read_ratings(_write(tmp_path / "u.data", _structured_lines())))
    train = [r for r in ratings if not (r.user_id == "1" and r.item_id == "8")]
    test = [r for r in ratings if r.user_id == "1" and r.item_id == "8"]
    result = movielens_eval.evaluate_fold(train, test)
    # One candidate, relevant: both models put it first.
    assert result.als.ndcg == 1.0 and result.pop.ndcg == 1.0
    assert result.als.precision == pytest.approx(0.1)


def test_evaluate_movielens_runs_on_a_tiny_file_and_prints_published_rows(tmp_path):
    _write(tmp_path / "u.data", _structured_lines(users=12))
    published = tmp_path / "published.csv"
    published.write_text(
        "source,model,precision@10,ndcg@10\n"
        "Gorse README,WRMF (NFactors 20),0.34727,0.41614\n"
        "Other,BPR,0.1,0.2\n",
        encoding="utf-8",
    )
    out = io.StringIO()
    call_command(
        "evaluate_movielens",
        "--data",
        str(tmp_path),
        "--folds",
        "3",
        "--published",
        str(published),
        stdout=out,
        stderr=io.StringIO(),
    )
    text = out.getvalue()
    assert "random 3-fold" in text
    assert "this run: ALS (implicit)" in text and "this run: ItemPop" in text
    assert "Gorse (published, full 100k): WRMF" in text and "0.4161" in text
    assert "BPR" not in text
    assert "Time split at" in text and "warm users" in text and "cold users" in text


def test_evaluate_movielens_without_a_ratings_file_is_a_command_error(tmp_path):
    with pytest.raises(CommandError):
        call_command("evaluate_movielens", "--data", str(tmp_path), stdout=io.StringIO())


# --- recommend_offline ------------------------------------------------------------------------


def _recommend(tmp_path: Path, test_lines: list[str]) -> tuple[dict[str, list[str]], str]:
    train = _write(tmp_path / "train", _structured_lines(users=10))
    # Extra items so that 50 unseen items exist for everybody.
    with train.open("a", encoding="utf-8") as handle:
        for item in range(100, 160):
            handle.write(f"99\t{item}\t3\t881000000\n")
    test = _write(tmp_path / "test", test_lines)
    out_path = tmp_path / "recs"
    out = io.StringIO()
    call_command(
        "recommend_offline",
        "--dataset",
        "movielens",
        "--train",
        str(train),
        "--test",
        str(test),
        "--out",
        str(out_path),
        stdout=out,
        stderr=io.StringIO(),
    )
    lines = out_path.read_text(encoding="utf-8").splitlines()
    return {line.split(" ")[0]: line.split(" ")[1:] for line in lines}, out.getvalue()


def test_recommend_offline_writes_fifty_unseen_items_per_test_user(tmp_path):
    recs, stdout = _recommend(tmp_path, ["1\t8\t5\t890000000", "2\t11\t4\t890000001"])
    assert list(recs) == ["1", "2"]
    seen_1 = {str(1 + k) for k in range(8) if k != 1}
    for items in recs.values():
        assert len(items) == 50 and len(set(items)) == 50
    assert not seen_1 & set(recs["1"])
    # Which unseen items rank first on so little data is the ALS tests' business
    # (tests/ml/test_als.py); the shipped parameters are tuned for ML-100K's density.
    assert "warm 2" in stdout and "cold 0" in stdout


def test_recommend_offline_gives_cold_users_the_popularity_top_fifty(tmp_path):
    recs, stdout = _recommend(tmp_path, ["404\t1\t5\t890000000", "1\t8\t5\t890000000"])
    assert len(recs["404"]) == 50
    # The most rated training items (each group item is rated by ~4 users) lead.
    assert set(recs["404"][:4]) <= {str(i) for i in range(1, 9)} | {str(i) for i in range(11, 19)}
    assert "warm 1" in stdout and "cold 1" in stdout


def test_recommend_offline_never_reads_the_test_files_items(tmp_path):
    garbage = ["1\tnot-an-item\t??\tnever", "2", "404\t\xa7\t\t"]
    recs, _ = _recommend(tmp_path, garbage)
    assert list(recs) == ["1", "2", "404"]
    clean, _ = _recommend(tmp_path, ["1\t8\t5\t1", "2\t11\t4\t1", "404\t1\t1\t1"])
    assert recs == clean


def test_recommend_offline_refuses_a_missing_train_file(tmp_path):
    with pytest.raises(CommandError):
        call_command(
            "recommend_offline",
            "--dataset",
            "movielens",
            "--train",
            str(tmp_path / "absent"),
            "--test",
            str(_write(tmp_path / "test", ["1"])),
            "--out",
            str(tmp_path / "out"),
            stdout=io.StringIO(),
        )
