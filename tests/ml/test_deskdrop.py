"""DeskDrop: the CSV reader, the time split and catalog, the baselines and the command."""

from __future__ import annotations

import io
import math

import pytest
from django.core.management import CommandError, call_command

from ml_app.datasets import deskdrop
from ml_app.datasets.deskdrop import Article, Interaction
from ml_app.ranking_metrics import hit_rate_at_k, ndcg_at_k, reciprocal_rank
from ml_app.services import deskdrop_baselines as baselines
from ml_app.services.deskdrop_evaluation import (
    candidate_catalog,
    default_cut,
    evaluate,
    split,
)

HEADER = "timestamp,eventType,contentId,personId,sessionId,userAgent,userRegion,userCountry\n"
ARTICLES_HEADER = (
    "index,timestamp,eventType,contentId,authorPersonId,authorSessionId,authorUserAgent,"
    "authorRegion,authorCountry,contentType,url,title,text,lang\n"
)


def hit(ts: int, item: str, user: str, event: str = "VIEW") -> Interaction:
    return Interaction(ts, event, item, user, "1")


def test_reader_keeps_quoted_commas_and_negative_ids_and_reports_bad_rows_by_line(tmp_path):
    path = tmp_path / "users_interactions.csv"
    path.write_text(
        HEADER
        + '100,VIEW,-3499919498720038879,-8845298781299428018,126,"Mozilla/5.0 (X, like Gecko)",'
        "SP,BR\n"
        + "101,DISLIKE,1,2,3,,,\n"  # line 3: unknown event
        + "102,LIKE,1.5,2,3,,,\n"  # line 4: float id
        + "103,VIEW,1,2\n"  # line 5: short row
        + "\n"
        + "abc,VIEW,1,2,3,,,\n"  # line 7: bad timestamp
        + "104,COMMENT CREATED,99999999999999999999,2,3,,,\n"  # line 8: beyond int64
        + '105,FOLLOW,7,8,9,"agent ""quoted""",,\n'
    )
    read = deskdrop.read_interactions(path)
    assert [r.event for r in read.rows] == ["VIEW", "FOLLOW"]
    first = read.rows[0]
    assert first.content_id == "-3499919498720038879"
    assert first.person_id == "-8845298781299428018"
    assert first.user_agent == "Mozilla/5.0 (X, like Gecko)"
    assert (first.region, first.country) == ("SP", "BR")
    assert read.rows[1].user_agent == 'agent "quoted"'
    reasons = {s.line: s.reason for s in read.skipped}
    assert sorted(reasons) == [3, 4, 5, 7, 8]
    assert "DISLIKE" in reasons[3] and "not an integer" in reasons[4]
    assert "expected 8 columns" in reasons[5] and "Unix seconds" in reasons[7]
    assert "64 bits" in reasons[8]
    assert str(read.skipped[0]).startswith(f"{path}:3: skipped:")


def test_article_reader_numbers_rows_by_their_first_line_across_multiline_text(tmp_path):
    path = tmp_path / "articles.csv"
    path.write_text(
        ARTICLES_HEADER
        + '1,50,CONTENT SHARED,10,5,6,,,,HTML,http://a.test,a title,"line one,\nline two",en\n'
        + "2,60,CONTENT REMOVED,10,5,6,,,,HTML,http://a.test,a title,text,en\n"
        + "3,70,CONTENT EDITED,11,5,6,,,,HTML,http://b.test,b,text,pt\n"  # line 5
    )
    read = deskdrop.read_articles(path)
    assert [(a.event, a.content_id) for a in read.rows] == [
        ("CONTENT SHARED", "10"),
        ("CONTENT REMOVED", "10"),
    ]
    assert read.rows[0].text == "line one,\nline two"
    assert [(s.line, "CONTENT EDITED" in s.reason) for s in read.skipped] == [(5, True)]


def test_reader_refuses_a_file_whose_header_lacks_a_column(tmp_path):
    path = tmp_path / "users_interactions.csv"
    path.write_text("timestamp,eventType,contentId\n1,VIEW,2\n")
    with pytest.raises(deskdrop.RowError, match="personId"):
        deskdrop.read_interactions(path)


def test_event_strengths_live_in_one_table_and_pairs_are_log_scaled():
    assert deskdrop.EVENT_STRENGTH["VIEW"] == 1.0
    assert deskdrop.EVENT_STRENGTH["COMMENT CREATED"] == 4.0
    assert hit(1, "a", "u", "LIKE").strength == 2.0
    assert deskdrop.pair_strength(3.0) == 2.0


def test_default_cut_leaves_the_last_fifth_as_test_and_split_is_strict():
    rows = [hit(t, "a", "u") for t in range(10)]
    cut = default_cut(rows)
    assert cut == 8
    train, test = split(rows, cut)
    assert [r.timestamp for r in train] == list(range(8))
    assert [r.timestamp for r in test] == [8, 9]


def test_catalog_is_what_was_shared_before_the_cut_and_not_removed_before_it():
    articles = [
        Article(10, deskdrop.SHARED, "kept", "a"),
        Article(10, deskdrop.SHARED, "removed", "a"),
        Article(20, deskdrop.REMOVED, "removed", "a"),
        Article(10, deskdrop.SHARED, "removed_later", "a"),
        Article(200, deskdrop.REMOVED, "removed_later", "a"),
        Article(150, deskdrop.SHARED, "shared_after", "a"),
        Article(10, deskdrop.SHARED, "reshared", "a"),
        Article(20, deskdrop.REMOVED, "reshared", "a"),
        Article(30, deskdrop.SHARED, "reshared", "a"),
    ]
    train = [hit(40, "read_only", "u"), hit(5, "kept", "u")]
    catalog = candidate_catalog(train, articles, cut=100)
    assert catalog == {"kept": 5, "removed_later": 10, "reshared": 10, "read_only": 40}


def test_no_test_period_interaction_reaches_training_or_popularity():
    rows = [hit(1, "a", "u1"), hit(2, "b", "u2"), hit(3, "b", "u3")]
    later = [hit(10, "a", "u2", "COMMENT CREATED")] * 5
    train, test = split(rows + later, cut=5)
    assert test == later
    fitted = baselines.fit(train, now=5)
    assert fitted.popularity == {"a": 1.0, "b": 2.0}
    assert "a" not in fitted.pairs["u2"]
    with pytest.raises(ValueError, match="not before"):
        baselines.fit(rows + later, now=5)


def test_top_n_metrics_on_a_hand_checked_ranking():
    ranked = ["x", "r1", "y", "r2"]
    relevant = {"r1", "r2"}
    # DCG = 1/log2(3) + 1/log2(5); ideal = 1 + 1/log2(3)
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(ranked, relevant, 10) == pytest.approx(expected)
    assert ndcg_at_k(ranked, relevant, 1) == 0.0
    assert hit_rate_at_k(ranked, relevant, 2) == 1.0
    assert hit_rate_at_k(ranked, relevant, 1) == 0.0
    assert reciprocal_rank(ranked, relevant) == 0.5
    assert reciprocal_rank(ranked, {"z"}) == 0.0


def test_rankings_leave_seen_items_out_and_knn_puts_co_engaged_items_first():
    train = [
        hit(1, "a", "u1"),
        hit(1, "b", "u1"),
        hit(2, "a", "u2"),
        hit(3, "c", "u3"),
        hit(3, "c", "u4"),
        hit(3, "c", "u5"),
    ]
    recs = baselines.recommend_for_users(train, ["u2", "new"], k=5, method=baselines.ITEM_KNN)
    assert recs["u2"] == ["b", "c"]  # b co-engaged with a; c most popular; a seen
    assert recs["new"] == ["c", "a", "b"]
    pop = baselines.recommend_for_users(train, ["u2"], k=1)
    assert pop == {"u2": ["c"]}


def test_evaluation_scores_warm_and_cold_users_on_catalog_items_only():
    rows = [
        hit(1, "old", "u1"),
        hit(2, "hot", "u1"),
        hit(3, "hot", "u2"),
        hit(4, "hot", "u3"),
        hit(10, "hot", "u4"),  # cold user, relevant "hot" (rank 1 by popularity)
        hit(11, "old", "u2"),  # warm user, relevant "old"
        hit(12, "hot", "u1"),  # seen before the cut: not relevant, u1 not evaluated
        hit(13, "brand_new", "u5"),  # not in the catalog: u5 not evaluated
    ]
    result = evaluate(rows, cut=10, methods=[baselines.POPULARITY], bootstrap=20)
    assert result.catalog == 2
    assert result.users == {"all": 2, "warm": 1, "cold": 1}
    cold = result.figures["cold"][baselines.POPULARITY]
    assert cold["hr10"].mean == 1.0 and cold["mrr"].mean == 1.0
    warm = result.figures["warm"][baselines.POPULARITY]
    assert warm["mrr"].mean == 1.0  # u2 saw "hot": "old" is the only candidate left
    assert (result.train.interactions, result.test.interactions) == (4, 4)


def test_command_runs_on_a_tiny_dataset(tmp_path):
    lines = [f"{t},VIEW,{t % 3},{t % 4},{t},,," for t in range(1, 30)]
    lines.insert(3, "oops,VIEW,1,2,3,,,")
    (tmp_path / "users_interactions_tiny.csv").write_text(HEADER + "\n".join(lines) + "\n")
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "evaluate_deskdrop", "--data", str(tmp_path), "--bootstrap", "20", stdout=out, stderr=err
    )
    text = out.getvalue()
    assert "nDCG@10" in text and "HR@10" in text and "MRR" in text
    assert "warm users" in text and "cold users" in text
    assert "item-kNN" in text and "recency" in text
    assert ":5: skipped:" in err.getvalue()


def test_command_refuses_a_folder_without_interactions(tmp_path):
    with pytest.raises(CommandError, match="users_interactions"):
        call_command("evaluate_deskdrop", "--data", str(tmp_path))


def test_decayed_popularity_favours_recent_engagement_over_a_larger_old_total():
    day = baselines.DAY
    train = [hit(0, "old", f"u{i}") for i in range(3)] + [hit(9 * day, "fresh", "v")]
    fitted = baselines.fit(train, now=10 * day, half_life_days=1)
    assert fitted.popularity["old"] > fitted.popularity["fresh"]
    assert baselines.base_order(fitted, {"old", "fresh"}, baselines.POPULARITY_DECAYED) == [
        "fresh",
        "old",
    ]


def test_command_takes_an_iso_cut_and_removed_articles_leave_the_catalog(tmp_path):
    day = 86_400
    cut = 1_476_144_000  # 2016-10-11 00:00:00 UTC
    rows = [f"{cut - day},VIEW,1,{u},1,,," for u in range(5)]
    rows += [f"{cut - day},VIEW,2,9,1,,,", f"{cut + day},VIEW,2,5,1,,,"]
    (tmp_path / "users_interactions_dev.csv").write_text(HEADER + "\n".join(rows) + "\n")
    (tmp_path / "articles_dev.csv").write_text(
        ARTICLES_HEADER
        + f"1,{cut - 2 * day},CONTENT SHARED,2,5,6,,,,HTML,http://a.test,t,text,en\n"
        + f"2,{cut - 2 * day},CONTENT REMOVED,1,5,6,,,,HTML,http://a.test,t,text,en\n"
    )
    out = io.StringIO()
    args = ("evaluate_deskdrop", "--data", str(tmp_path), "--cut", "2016-10-11")
    call_command(*args, "--articles", "--bootstrap", "5", stdout=out, stderr=io.StringIO())
    text = out.getvalue()
    assert f"Cut {cut} (2016-10-11 00:00:00 UTC)" in text
    assert "Candidate catalog at the cut: 1 items" in text  # item 1 was removed before the cut
    out = io.StringIO()
    call_command(*args, "--bootstrap", "5", stdout=out, stderr=io.StringIO())
    assert "Candidate catalog at the cut: 2 items" in out.getvalue()


def test_recommend_offline_writes_unseen_items_for_every_test_user_without_reading_items(
    tmp_path,
):
    train = tmp_path / "train.csv"
    train.write_text(
        HEADER
        + "\n".join(
            [
                "10,VIEW,101,1,1,,,",
                "11,LIKE,102,1,1,,,",
                "12,VIEW,102,2,2,,,",
                "13,VIEW,103,2,2,,,",
                "14,COMMENT CREATED,103,3,3,,,",
            ]
        )
        + "\n"
    )
    test = tmp_path / "test.csv"
    # The item column is garbage: only personId may be read.
    test.write_text(HEADER + "20,VIEW,not-an-id!,1,9,,,\n21,VIEW,,77,9,,,\n22,VIEW,x,1,9,,,\n")
    out_path = tmp_path / "out.txt"
    stdout = io.StringIO()

    call_command(
        "recommend_offline",
        "--dataset",
        "deskdrop",
        "--train",
        str(train),
        "--test",
        str(test),
        "--out",
        str(out_path),
        stdout=stdout,
    )

    lines = [line.split() for line in out_path.read_text().splitlines()]
    assert [line[0] for line in lines] == ["1", "77"]
    assert set(lines[0][1:]) == {"103"}  # user 1 read 101 and 102
    assert set(lines[1][1:]) == {"101", "102", "103"}  # a cold user gets every item
    assert "warm 1, cold 1" in stdout.getvalue()


def test_recommend_offline_refuses_a_test_file_without_person_ids(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text(HEADER + "10,VIEW,101,1,1,,,\n")
    test = tmp_path / "test.csv"
    test.write_text("timestamp,contentId\n1,a\n")

    with pytest.raises(CommandError, match="personId"):
        call_command(
            "recommend_offline",
            "--dataset",
            "deskdrop",
            "--train",
            str(train),
            "--test",
            str(test),
            "--out",
            str(tmp_path / "out.txt"),
        )
