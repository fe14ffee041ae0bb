"""The time and place signals of a feed's candidates (issue 13, FEAT-003/004).

Read with one query (the reader's profile) and one Redis round trip (the counts), computed
by the pure functions of :mod:`experience_app.time_place` and passed to ``rank`` beside the
learned scores. Without Redis the counted signals are absent (never 0), ``language_match``
stays (it needs no counter).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime

import numpy as np
import redis

from experience_app import time_place
from experience_app.ranking import Candidate, round4
from experience_app.services.reader_context import reader_context
from features_app import public as features
from reading_app.public import ItemFacets

logger = logging.getLogger(__name__)


def time_place_signals(
    user_id: int,
    candidates: Iterable[Candidate],
    facets: Mapping[int, ItemFacets],
    *,
    now: datetime,
    degraded: bool,
    proxy_place: time_place.Place | None = None,
) -> dict[int, dict[str, float]]:
    """item -> the time and place signals known for it (see ``experience_app.time_place``)."""
    reader = reader_context(user_id, proxy_place=proxy_place)
    ids = [c.item_id for c in candidates]
    out: dict[int, dict[str, float]] = {item: {} for item in ids}
    # The candidates share a handful of languages: each is matched once.
    match_of: dict[str | None, float | None] = {}
    for item in ids:
        facet = facets.get(item)
        language = facet.language if facet else None
        if language in match_of:
            match = match_of[language]
        else:
            match = match_of[language] = time_place.language_match(reader.language, language)
        if match is not None:
            out[item]["language_match"] = match
    if degraded or not ids:
        return out
    country = reader.place.country if reader.place else None
    try:
        counts = features.context_counts(user_id, ids, country=country, now=now)
    except redis.RedisError as exc:
        logger.warning("experience.time_place_unavailable user=%s error=%s", user_id, exc)
        return out
    hour = reader.local_how(now) % 24
    all_hours = [counts.all_hours.get(h, 0.0) for h in range(24)]
    matrix = np.zeros((len(ids), 24))
    for i, item in enumerate(ids):  # only the hours an item was opened at (sparse)
        for h, n in counts.item_hours.get(item, {}).items():
            if h < 24:
                matrix[i, h] = n
    lifts = time_place.hour_lifts(matrix, all_hours)
    matches = time_place.hour_match(time_place.user_hour_share(counts.user_hours, all_hours), lifts)
    now_lifts = time_place.item_hour_lift(lifts, hour)
    regional = None
    if country is not None:
        pairs = [counts.regional.get(item, (0.0, 0.0)) for item in ids]
        regional = time_place.region_popularity(
            np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]), *counts.region_total
        )
    # Rounded all at once, to the doubles round(v, 4) gives each.
    hour_matches = round4(np.asarray(matches, dtype=float)).tolist()
    hour_lifts = round4(np.asarray(now_lifts, dtype=float)).tolist()
    regions = round4(np.asarray(regional, dtype=float)).tolist() if regional is not None else None
    for i, item in enumerate(ids):
        values = out[item]
        values["hour_match"] = hour_matches[i]
        values["item_hour_lift"] = hour_lifts[i]
        if regions is not None:
            values["region_popularity"] = regions[i]
    return out
