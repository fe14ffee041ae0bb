"""The learned reranker's view of a ranked item: a fixed, ordered feature vector.

Every feature is a signal :func:`experience_app.ranking.rank` computes and the served log
keeps with each item (``ServedFeed.items[*].signals``). Training reads the logged signals
and serving reads the live ones through the same :func:`feature_vector`, so the model is
trained on exactly what it is later served (point-in-time correct, no train/serve skew). A
feature the item lacks (no ALS score, no embedding) is NaN, which LightGBM treats as
missing, never as 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

# The signals every ranked candidate has (experience_app.ranking names them in this order),
# and the model's first features. Order is part of a trained model: append new features at
# the end of FEATURES, never reorder either tuple.
BASE_SIGNALS: tuple[str, ...] = (
    "popularity",
    "freshness",
    "affinity",
    "provider_affinity",
    "subscribed",
    "seen",
    "ctr",
    "impressions_log",
    "clicks_log",
    "reads_log",
    "saves_log",
    "dismiss_rate",
    "decayed_clicks_log",
    "expected_clicks_log",
    "age_hours_log",
)
FEATURES: tuple[str, ...] = (
    *BASE_SIGNALS,
    "als",
    "similarity",
    # The user's engagement segment, 0 (dormant) .. 4 (power) (issue 13, features_app).
    "engagement_level",
    # Time and place (issue 13, experience_app.time_place).
    "hour_match",
    "item_hour_lift",
    "region_popularity",
    "language_match",
    # The current reading session (issue 13, features_app.sessions).
    "session",
)


def feature_vector(
    signals: Mapping[str, float], features: tuple[str, ...] = FEATURES
) -> list[float]:
    """``signals`` as the model's input row, in ``features`` order (NaN where absent)."""
    row = []
    for name in features:
        value = signals.get(name)
        row.append(float(value) if value is not None else math.nan)
    return row
