"""Session-based next-read models (issue 13, ML-005): sessions, split, metrics, models, command."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence

import pytest
from django.core.management import CommandError, call_command

from ml_app.datasets.deskdrop import Interaction
from ml_app.session_gru import GRU4Rec
from ml_app.session_models import (
    LastItem,
    Popularity,
    Session,
    SessionKNN,
    SessionModel,
    SessionSplit,
    build_sessions,
    evaluate,
    time_split,
)

HEADER = "timestamp,eventType,contentId,personId,sessionId,userAgent,userRegion,userCountry\n"
DAY = 86400


def event(ts: int, item: str, person: str = "1", session: str = "", kind: str = "VIEW"):
    return Interaction(ts, kind, item, person, session)


def session(key: str, items: str, start: int = 0) -> Session:
    return Session(key, "1", tuple(items), tuple(start + i for i in range(len(items))))


def test_sessions_follow_session_ids_collapse_repeats_and_drop_single_items():
    rows = [
        event(100, "A", session="7"),
        event(101, "X", session="8"),  # another session of the same user, interleaved
        event(102, "A", session="7", kind="LIKE"),  # consecutive repeat: collapsed
        event(103, "B", session="7"),
        event(104, "A", session="7"),  # not consecutive: kept
        event(105, "A", person="2", session="7"),  # same id, another person: its own session
        event(106, "C", person="2", session="7"),
    ]
    sessions = build_sessions(rows)
    assert [(s.key, s.items, s.times) for s in sessions] == [
        ("1:7", ("A", "B", "A"), (100, 103, 104)),
        ("2:7", ("A", "C"), (105, 106)),
    ]  # "1:8" has a single item


def test_without_session_ids_a_users_events_split_at_thirty_minute_gaps():
    rows = [
        event(0, "A"),
        event(1800, "B"),  # exactly 30 minutes: same session
        event(3601, "C"),  # 30 minutes and 1 second later: a new session
        event(3700, "D"),
        event(50, "Y", person="2"),
        event(60, "Z", person="2"),
    ]
    sessions = build_sessions(rows)
    assert [(s.key, "".join(s.items)) for s in sessions] == [
        ("1:gap0", "AB"),
        ("2:gap0", "YZ"),
        ("1:gap1", "CD"),
    ]
    ignored = build_sessions([event(0, "A", session="5"), event(10, "B", session="6")])
    assert ignored == []
    gaps = build_sessions(
        [event(0, "A", session="5"), event(10, "B", session="6")], use_session_ids=False
    )
    assert [s.items for s in gaps] == [("A", "B")]


def test_time_split_tests_the_last_fifth_of_sessions_and_cuts_training_at_the_cut():
    sessions = [session(f"s{i}", "AB", start=i * 100) for i in range(10)]
    # s_long starts before the cut and runs past it: only its events before the cut are kept.
    sessions.append(Session("long", "1", ("A", "B", "C"), (650, 660, 900)))
    sessions.sort(key=lambda s: (s.start, s.key))
    split = time_split(sessions)
    assert split.cut == 700  # the 9th of 11 starts (index int(11 * 0.8) = 8)
    assert [s.key for s in split.test] == ["s7", "s8", "s9"]
    assert all(ts < split.cut for s in split.train for ts in s.times)
    assert next(s for s in split.train if s.key == "long").items == ("A", "B")
    assert len(split.train) == 8


class Recording(SessionModel):
    name = "recording"
    incremental = True

    def __init__(self) -> None:
        self.fitted: list[Session] = []
        self.updates: list[Session] = []

    def fit(self, train: Sequence[Session], cut: int) -> None:
        self.fitted = list(train)

    def update(self, session: Session) -> None:
        self.updates.append(session)

    def recommend(self, prefix: Sequence[str], k: int) -> list[str]:
        return []


def test_no_model_sees_an_event_at_or_after_the_cut_nor_an_open_session():
    sessions = [
        Session(f"s{i}", "1", ("A", "B", "C"), (i * 10**4, i * 10**4 + 5, i * 10**4 + 1500))
        for i in range(10)
    ]
    split = time_split(sessions)
    model = Recording()
    evaluate(split, [model])
    assert model.fitted and all(ts < split.cut for s in model.fitted for ts in s.times)
    assert model.updates == []  # frozen by default
    evaluate(split, [model], streaming=True)
    taken = [s.key for s in model.updates]
    assert taken == ["s8"]  # s8 closed before s9's points; s9 never closes before a point
    assert len(taken) == len(set(taken))  # each closed session once


class Fixed(SessionModel):
    name = "fixed"

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers

    def fit(self, train: Sequence[Session], cut: int) -> None:
        pass

    def recommend(self, prefix: Sequence[str], k: int) -> list[str]:
        return self.answers.get(prefix[-1], [])[:k]


def test_metrics_by_hand_keep_unseen_targets_as_misses():
    split = SessionSplit(
        cut=10,
        train=[session("t", "ABCX")],
        test=[session("a", "ABC", start=20), session("b", "AN", start=30)],
    )
    # After A: B at rank 2 (hit, 1/2), after B: C at rank 1 (hit, 1), after A in session b:
    # N was never seen in training (miss, 0).
    model = Fixed({"A": ["X", "B"], "B": ["C"]})
    result = evaluate(split, [model], k=2)
    (figures,) = result.results
    assert (result.points, result.unseen_targets, result.train_items) == (3, 1, 4)
    assert figures.hr == pytest.approx(2 / 3)
    assert figures.mrr == pytest.approx((1 / 2 + 1) / 3)
    assert figures.coverage == pytest.approx(3 / 4)  # X, B, C shown out of A, B, C, X
    assert figures.hr_interval is None  # no bootstrap asked
    resampled = evaluate(split, [model], k=2, bootstrap=200).results[0]
    assert resampled.hr_interval is not None and resampled.mrr_interval is not None
    # Session "a" alone: HR 1; session "b" alone: 0; resamples mix whole sessions only.
    assert resampled.hr_interval[0] <= figures.hr <= resampled.hr_interval[1]
    assert resampled.hr_interval[0] >= 0.0 and resampled.hr_interval[1] <= 1.0
    assert evaluate(split, [model], k=1).results[0].hr == pytest.approx(1 / 3)


def chains(repeats: int = 5) -> list[Session]:
    """Deterministic reading paths: A→B→C (most often) and D→E→F."""
    found = []
    for i in range(repeats):
        found.append(session(f"abc{i}", "ABC", start=i * 10))
        found.append(session(f"abc{i}b", "ABC", start=i * 10 + 3))
        found.append(session(f"def{i}", "DEF", start=i * 10 + 5))
    return found


@pytest.mark.parametrize(
    "model",
    [
        LastItem(transitions=True),
        LastItem(transitions=False),
        SessionKNN(k=5, sample=10),
        SessionKNN(k=5, sample=10, decay=True),
    ],
    ids=lambda m: m.name,
)
def test_each_session_model_predicts_the_obvious_next_item(model):
    model.fit(chains(), cut=1000)
    assert model.recommend(["A"], 3)[0] == "B"
    assert model.recommend(["D"], 3)[0] == "E"
    assert "D" not in model.recommend(["D"], 3)  # never the current item
    if model.name.startswith("last-item transitions"):
        assert model.recommend(["A", "B"], 3) == ["C"]
        assert model.recommend(["F"], 3) == []  # nothing follows F: no filler


def test_knn_ranks_the_next_item_of_the_matching_path_first():
    model = SessionKNN(k=10, sample=100, decay=True)
    model.fit([*chains(), session("x", "EBY", start=60)], cut=1000)
    # The current session is D→E: the five D-E-F sessions (similarity 0.5 + 1) outvote E-B-Y
    # (1); items already read are not filtered (D ties F and wins on id), the last one is.
    assert model.recommend(["D", "E"], 3) == ["D", "F", "B"]


def test_popularity_orders_by_count_and_the_decayed_one_favours_recent_items():
    train = [session("old", "AB", start=0), session("old2", "AB", start=5)]
    train.append(session("new", "CB", start=30 * DAY))
    popular = Popularity()
    popular.fit(train, cut=30 * DAY + 10)
    assert popular.recommend(["Z"], 3) == ["B", "A", "C"]
    assert popular.recommend(["B"], 3) == ["A", "C"]
    decayed = Popularity(half_life_days=3)
    decayed.fit(train, cut=30 * DAY + 10)
    assert decayed.recommend(["Z"], 2) == ["B", "C"]


def test_gru4rec_learns_deterministic_paths_better_than_chance():
    paths = ["ABC", "DEF", "GHI", "JKL"]
    train = [
        session(f"{p}{i}", p, start=i * 10 + n) for i in range(10) for n, p in enumerate(paths)
    ]
    test = [session(f"t{p}", p, start=1000) for p in paths]
    model = GRU4Rec(
        epochs=20, embedding=8, hidden=16, batch_size=8, learning_rate=0.03, dropout=0.0
    )
    result = evaluate(SessionSplit(900, train, test), [model], k=1)
    assert len(model.losses) == 20 and model.losses[-1] < model.losses[0]
    lists = model.predict_session(["A", "B", "C"], 5)
    assert len(lists) == 2 and all(len(top) == 5 for top in lists)
    assert "A" not in lists[0] and "B" not in lists[1]  # never the current item
    assert set(model.recommend(["unseen", "A"], 11)) == set("BCDEFGHIJKL")  # unknown input ok
    assert result.points == 8
    assert result.results[0].hr > 0.5  # random HR@1 over 11 candidates is about 0.09


def test_streaming_learns_closed_test_sessions_but_never_the_current_or_an_open_one():
    hour = 3600
    train = [session("t", "AB", start=0)]
    test = [
        session("first", "AN", start=10 * hour),  # N is new; closes at 10 h + 1 s
        session("open", "AM", start=10 * hour + 600),  # M: 10 min later, still open
        session("later", "AN", start=11 * hour),  # more than 30 minutes after "first"
    ]
    split = SessionSplit(5 * hour, train, test)
    frozen = evaluate(split, [LastItem(transitions=True)], k=5)
    streamed = evaluate(split, [LastItem(transitions=True)], k=5, streaming=True)
    assert frozen.results[0].hr == 0.0 and not frozen.results[0].updated
    # Only "later" can hit: it follows the closed "first"; "open" had nothing closed before it.
    assert streamed.results[0].hr == pytest.approx(1 / 3) and streamed.results[0].updated
    model = LastItem(transitions=True)
    model.fit(train, split.cut)
    model.update(test[0])
    assert model.recommend(["A"], 5) == ["B", "N"]  # tie on count, B more popular


def write_fixture(folder) -> None:
    lines = [HEADER]
    ts = 1_470_000_000
    for i in range(20):  # 20 sessions: 16 train, 4 test
        person = str(-9_000_000_000_000_000_000 + i)
        for offset, item in enumerate(("-101", "202", "303")):
            lines.append(f"{ts + i * DAY + offset * 60},VIEW,{item},{person},{i},,,\n")
    folder.joinpath("users_interactions_dev.csv").write_text("".join(lines))


def test_command_prints_the_table_and_json(tmp_path):
    write_fixture(tmp_path)
    out = io.StringIO()
    call_command("evaluate_sessions", "--data", str(tmp_path), "--epochs", "1", stdout=out)
    text = out.getvalue()
    assert "20 sessions of 2+ items; 0 rows skipped." in text
    assert "16 training sessions (3 items), 4 test sessions." in text
    assert "Prediction points: 8; 0 (0.0%) targets unseen" in text
    for name in ("popularity", "last-item transitions", "SKNN", "V-SKNN", "GRU4Rec"):
        assert f"\n{name}" in text
    assert re.search(r"\nlast-item transitions +1\.0000 +1\.0000 ", text)
    assert "Best MRR@20:" in text
    assert "95% intervals (1000 resamples of the test sessions); the best by MRR@20" in text
    # Every test session is A→B→C, so every resample gives transitions the same 1.0.
    assert re.search(r"\nlast-item transitions +HR@20 \[1\.0000, 1\.0000\]  MRR@20 \[1\.0000", text)

    out = io.StringIO()
    call_command(
        "evaluate_sessions", "--data", str(tmp_path), "--epochs", "1", "--streaming", stdout=out
    )
    text = out.getvalue()
    assert "Streaming: models marked * also learn" in text
    assert re.search(r"\nSKNN \(k=100, sample=500\) \* ", text)
    assert re.search(r"\nGRU4Rec \(1 epochs, \d+ units\)  ", text)  # frozen: no star

    out = io.StringIO()
    call_command(
        "evaluate_sessions", "--data", str(tmp_path), "--json", "--epochs", "0", stdout=out
    )
    payload = json.loads(out.getvalue())
    assert payload["points"] == 8 and payload["k"] == 20
    assert [r["name"] for r in payload["results"]][:2] == [
        "popularity",
        "popularity, 3-day half-life",
    ]
    assert not any(r["name"].startswith("GRU4Rec") for r in payload["results"])
    transitions = next(r for r in payload["results"] if r["name"] == "last-item transitions")
    assert transitions["hr"] == 1.0 and transitions["mrr"] == 1.0
    assert transitions["hr_interval"] == [1.0, 1.0] and payload["bootstrap"] == 1000
    assert payload["winner"] == "last-item transitions"
    assert transitions["hr_gap_interval"] == [0.0, 0.0]  # the best minus itself


def test_command_refuses_a_folder_without_interactions(tmp_path):
    with pytest.raises(CommandError, match="no users_interactions"):
        call_command("evaluate_sessions", "--data", str(tmp_path))
    tmp_path.joinpath("users_interactions.csv").write_text(HEADER + "1,VIEW,1,2,3,,,\n")
    with pytest.raises(CommandError, match="need 2 or more"):
        call_command("evaluate_sessions", "--data", str(tmp_path))
