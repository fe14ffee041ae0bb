"""Offline top-N recommendations for a MovieLens-format test period (``recommend_offline``).

The shipped pipeline (:class:`ml_app.als.AlsModel` with its default parameters, one positive
per rating) is trained on the train file only. Only the user column of the test file is read,
so its items can never leak into training or into the output; a user of the test file without
training ratings (cold) gets the training popularity ranking.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ml_app.als import AlsModel, AlsParams
from ml_app.datasets.movielens import ReadReport, read_ratings, read_users

TOP_N = 50


@dataclass(slots=True)
class OfflineResult:
    """Users written, split into warm (had training ratings) and cold, and skipped lines."""

    warm: int = 0
    cold: int = 0
    train_report: ReadReport = field(default_factory=ReadReport)
    test_report: ReadReport = field(default_factory=ReadReport)


def recommend_offline_movielens(
    train_path: Path,
    test_path: Path,
    out_path: Path,
    *,
    n: int = TOP_N,
    params: AlsParams | None = None,
) -> OfflineResult:
    """Write ``user_id item_1 … item_n`` per test user to ``out_path``; unseen items only."""
    result = OfflineResult()
    ratings = list(read_ratings(train_path, result.train_report))
    if not ratings:
        raise ValueError(f"no valid rating in the train file {train_path}")
    seen: dict[str, set[str]] = defaultdict(set)
    for r in ratings:
        seen[r.user_id].add(r.item_id)
    model = AlsModel.train(((r.user_id, r.item_id, 1.0) for r in ratings), params)
    users = read_users(test_path, result.test_report)
    with out_path.open("w", encoding="utf-8") as out:
        for user in users:
            if user in model.user_index:
                items = [item for item, _ in model.recommend(user, n)]
                result.warm += 1
            else:
                items = model.popular(n, exclude=seen.get(user, ()))
                result.cold += 1
            out.write(" ".join([user, *items]) + "\n")
    return result
