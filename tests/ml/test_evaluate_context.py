"""``manage.py evaluate_context`` on a small DeskDrop-shaped fixture written here (never the
real data): the time and place signals are measured with the serving functions."""

from __future__ import annotations

import csv
import json
import random
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from ml_app.datasets import deskdrop
from ml_app.services.deskdrop_context import VARIANTS, evaluate_context

START = 1_467_331_200  # 2016-07-01 00:00 UTC
HOUR = 3600


def _world(folder: Path, *, seed: int = 0) -> Path:
    """Readers in Brazil read "morning" items at 8-10h São Paulo time, readers in the US read
    "evening" items at 20-22h New York time, over 20 days; articles carry a language."""
    rng = random.Random(seed)
    rows = []
    articles = []
    for day in range(20):
        morning = [f"{1000 + day * 10 + k}" for k in range(3)]
        evening = [f"{5000 + day * 10 + k}" for k in range(3)]
        for item in morning + evening:
            lang = "pt" if item in morning else "en"
            articles.append((START + day * 86400, "CONTENT SHARED", item, "7", lang))
        for reader in range(12):
            brazilian = reader < 6
            # 8-10h in São Paulo (UTC-3) is 11-13h UTC; 20-22h in New York (UTC-4) 0-2h UTC.
            hour = rng.choice((11, 12, 13)) if brazilian else rng.choice((24, 25, 26))
            t = START + day * 86400 + hour * HOUR + rng.randrange(HOUR)
            pool = morning if brazilian else evening
            for k, item in enumerate(rng.sample(pool, 2)):
                rows.append(
                    (
                        t + k * 60,
                        "VIEW",
                        item,
                        str(100 + reader),
                        str(day * 100 + reader),
                        "",
                        "SP" if brazilian else "NY",
                        "BR" if brazilian else "US",
                    )
                )
    with (folder / "users_interactions_test.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(deskdrop.INTERACTION_COLUMNS)
        w.writerows(rows)
    with (folder / "articles_test.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("timestamp", "eventType", "contentId", "authorPersonId", "lang"))
        w.writerows(articles)
    return folder


def test_the_command_prints_ndcg_with_and_without_the_signals(tmp_path):
    out = StringIO()
    call_command(
        "evaluate_context", "--data", str(_world(tmp_path)), "--bootstrap", "50", stdout=out
    )
    text = out.getvalue()
    for name in VARIANTS:
        assert f"\n{name} " in text
    assert "nDCG@10" in text and "minus base" in text


def test_the_signals_find_what_the_world_was_built_with(tmp_path):
    _world(tmp_path)
    rows = deskdrop.read_interactions(tmp_path / "users_interactions_test.csv").rows
    articles = deskdrop.read_articles(tmp_path / "articles_test.csv").rows
    result = evaluate_context(rows, articles, bootstrap=0)
    assert result.episodes > 0 and result.with_country == result.episodes
    # Same items at the same times for everyone: only time and place tell readers apart.
    assert result.ndcg["base+time"].mean > result.ndcg["base"].mean
    assert result.ndcg["base+place"].mean > result.ndcg["base"].mean
    assert result.ndcg["base+region_popularity"].mean > result.ndcg["base"].mean


def test_json_output_and_bad_input(tmp_path):
    out = StringIO()
    call_command(
        "evaluate_context",
        "--data",
        str(_world(tmp_path)),
        "--bootstrap",
        "0",
        "--json",
        stdout=out,
    )
    payload = json.loads(out.getvalue())
    assert set(payload["ndcg"]) == set(VARIANTS)
    with pytest.raises(CommandError):
        call_command("evaluate_context", "--data", str(tmp_path / "missing"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CommandError):
        call_command("evaluate_context", "--data", str(empty))
