"""Offline top-N recommendations for a DeskDrop test period (``recommend_offline``).

The shipped DeskDrop pipeline is the learned ranker of ``deskdrop_learned`` (candidate
generators, then a LightGBM reranker; cold users get time-decayed popularity); ``baseline=True``
serves the best baseline of ``evaluate_deskdrop`` instead (time-decayed popularity,
``deskdrop_baselines.BEST``). Either is trained on the train file only. Of the test file
only the ``personId`` column is read, so its items can never leak into training or into the
output. Every user gets unseen items only; a user without training interactions (cold) gets
the non-personalized order, a warm user the same order less what they already engaged with.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from ml_app.datasets.deskdrop import SkippedRow, read_interactions
from ml_app.services.deskdrop_baselines import recommend_for_users
from ml_app.services.deskdrop_learned import Timings, recommend_learned

TOP_N = 50
USER_COLUMN = "personId"


@dataclass(slots=True)
class DeskdropOfflineResult:
    """Users written, split into warm (had training interactions) and cold; skipped rows."""

    warm: int = 0
    cold: int = 0
    skipped: list[SkippedRow] = field(default_factory=list)
    timings: Timings | None = None  # the learned ranker's training times (None: baseline)


def read_user_ids(path: Path) -> list[str]:
    """The distinct ``personId`` values of an interactions file, in first-seen order; no other
    column of a row is looked at."""
    users: dict[str, None] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or USER_COLUMN not in reader.fieldnames:
            raise ValueError(f"{path}: no {USER_COLUMN} column in the header")
        for row in reader:
            user = (row.get(USER_COLUMN) or "").strip()
            if user:
                users.setdefault(user, None)
    return list(users)


def recommend_offline_deskdrop(
    train_path: Path, test_path: Path, out_path: Path, *, n: int = TOP_N, baseline: bool = False
) -> DeskdropOfflineResult:
    """Write ``user_id item_1 … item_n`` per test user to ``out_path``; unseen items only."""
    train = read_interactions(train_path)
    if not train.rows:
        raise ValueError(f"no valid interaction in the train file {train_path}")
    result = DeskdropOfflineResult(skipped=train.skipped)
    known = {row.person_id for row in train.rows}
    users = read_user_ids(test_path)
    if baseline:
        ranked = recommend_for_users(train.rows, users, k=n)
    else:
        ranked, result.timings = recommend_learned(train.rows, users, k=n)
    with out_path.open("w", encoding="utf-8") as out:
        for user in users:
            if user in known:
                result.warm += 1
            else:
                result.cold += 1
            out.write(" ".join([user, *ranked[user]]) + "\n")
    return result
