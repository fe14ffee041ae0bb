"""When readers open the app, and who opens it next (predictive caching, OPT-002): pure
functions of their open counts.

An *open* is a home request after ``EXPERIENCE_SESSION_GAP_MINUTES`` without one. Each
reader's opens are counted per UTC hour of week (:func:`add_open`, which the Redis script of
``services.feed.opens`` mirrors); past ``CAP`` opens every count is halved, so recent weeks
weigh most and the profile stays 168 numbers at most. UTC hours, not local ones: the request
path knows no time zone without a query, and a reader who opens at 08:00 in their zone opens
at a fixed UTC hour but across a daylight-saving change, which the one-hour spread of
:func:`smoothed` absorbs (``manage.py evaluate_prebuild`` reports mornings in local time).

:func:`likelihood` scores "opens within the next ``minutes``": the reader's smoothed share
of opens in the hours the window covers, times their recency. :func:`pick` chooses whom to
build a feed for. The beat task (``services.prebuild``) and the replay on real timestamps
(``ml_app``, through ``experience_app.public``) call these same functions.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

HOURS = 168
# Opens kept before every count is halved: about six weeks of a reader opening three times
# a day; a reader's profile never holds more than this much mass.
CAP = 120.0
# A halved count below this is dropped (the hash keeps only the hours that matter).
FLOOR = 0.05
WEEK_SECONDS = 7 * 86400
# 1970-01-01 was a Thursday: hour of week 0 is Monday 00:00 UTC.
_EPOCH_HOW = 3 * 24


@dataclass(frozen=True, slots=True)
class Policy:
    """How opens are smoothed and weighed (defaults tuned on DeskDrop's earlier months,
    ``manage.py evaluate_prebuild --tune``; figures in docs/ML.md)."""

    # Share of the profile taken from the same hour on every day of the week (a reader
    # whose Tuesdays are few still opens at 08:00 on Tuesday).
    day_mix: float = 0.8
    # Opens of prior spread evenly over the week: a reader with few opens is unsure.
    flat_prior: float = 8.0
    # Each count also spreads this much to the hours either side (clock jitter, DST).
    spread: float = 0.25
    # Recency: the score is multiplied by exp(-days since the last open / this).
    recency_days: float = 7.0
    # The score is multiplied by the reader's (decayed) opens to this power: 0 weighs every
    # reader's habits alike, 1 scores the opens expected in the window.
    volume: float = 1.0


DEFAULT = Policy()


def hour_of_week(ts: float) -> int:
    """UTC hour of week of Unix time ``ts`` (0 = Monday 00h .. 167)."""
    return int((math.floor(ts / 3600) + _EPOCH_HOW) % HOURS)


def add_open(counts: np.ndarray, how: int, cap: float = CAP) -> None:
    """Count one open at hour of week ``how`` in ``counts`` (shape (168,), in place), halving
    every count once the total passes ``cap`` (what the Redis script does)."""
    counts[how] += 1.0
    if counts.sum() > cap:
        counts *= 0.5
        counts[counts < FLOOR] = 0.0


def window_hours(start: float, minutes: float) -> np.ndarray:
    """Per UTC hour of week, the hours of [start, start + minutes) that fall in it."""
    weights = np.zeros(HOURS)
    t, end = float(start), float(start) + minutes * 60.0
    while t < end:
        next_hour = (math.floor(t / 3600) + 1) * 3600.0
        step = min(next_hour, end) - t
        weights[hour_of_week(t)] += step / 3600.0
        t += step
    return weights


def _spread(c: np.ndarray, hours: np.ndarray, spread: float) -> np.ndarray:
    """The counts of ``hours`` (columns), each with ``spread`` of both neighbours' added
    and as much of its own given to them (the week is circular)."""
    before, after = c[:, (hours - 1) % HOURS], c[:, (hours + 1) % HOURS]
    return (1.0 - 2.0 * spread) * c[:, hours] + spread * (before + after)


def smoothed(
    counts: np.ndarray, policy: Policy = DEFAULT, hours: Sequence[int] | np.ndarray | None = None
) -> np.ndarray:
    """Each reader's share of opens per hour of week (rows of ``counts``, shape (m, 168);
    only the columns ``hours`` when given): spread to the neighbouring hours, mixed with the
    same hour of the other days, and shrunk toward an even week by ``flat_prior`` opens. Over
    the whole week, rows sum to 1."""
    c = np.atleast_2d(np.asarray(counts, dtype=float))
    h = np.arange(HOURS) if hours is None else np.asarray(hours, dtype=int)
    own = _spread(c, h, policy.spread)
    # The same hour on each of the week's seven days, averaged.
    days = ((h % 24)[:, None] + 24 * np.arange(7)[None, :]).ravel()
    per_day = _spread(c, days, policy.spread).reshape(len(c), len(h), 7).mean(axis=2)
    mixed = (1.0 - policy.day_mix) * own + policy.day_mix * per_day
    n = c.sum(axis=1, keepdims=True)  # spreading keeps the mass
    return (mixed + policy.flat_prior / HOURS) / (n + policy.flat_prior)


def likelihood(
    counts: np.ndarray,
    last_open: np.ndarray | Sequence[float],
    *,
    now: float,
    minutes: float,
    policy: Policy = DEFAULT,
) -> np.ndarray:
    """Per reader, how likely they open the app in [now, now + minutes): their smoothed
    share of a week's opens in the window's hours, times their opens to the power
    ``volume``, times exp(-days since their last open / ``recency_days``). A ranking score
    (a reader never seen scores 0), not a probability."""
    c = np.atleast_2d(np.asarray(counts, dtype=float))
    if c.shape[0] == 0:
        return np.zeros(0)
    window = window_hours(now, minutes)
    hours = np.flatnonzero(window)  # one or a few hours: no product over the whole week
    share = smoothed(c, policy, hours) @ window[hours]
    volume = c.sum(axis=1) ** policy.volume
    last = np.asarray(last_open, dtype=float)
    days = np.maximum(now - last, 0.0) / 86400.0
    recency = np.exp(-days / policy.recency_days)
    return np.where(last > 0, share * volume * recency, 0.0)


def pick(
    user_ids: Sequence[int] | np.ndarray,
    scores: np.ndarray,
    *,
    budget: int,
    minimum: float = 0.0,
    skip: Collection[int] = (),
) -> list[int]:
    """Up to ``budget`` readers, most likely first, scoring at least ``minimum`` (and above
    0) and not in ``skip`` (their feed is cached already). Ties go to the lower user id."""
    if budget <= 0:
        return []
    ids = np.asarray(user_ids, dtype=np.int64)
    s = np.asarray(scores, dtype=float)
    keep = (s > 0.0) & (s >= minimum)
    if skip:
        keep &= ~np.isin(ids, np.fromiter(skip, dtype=np.int64, count=len(skip)))
    ids, s = ids[keep], s[keep]
    if len(s) > budget:  # the best ``budget`` (and whoever ties the last of them)
        least = -np.partition(-s, budget - 1)[budget - 1]
        ids, s = ids[s >= least], s[s >= least]
    return [int(u) for u in ids[np.lexsort((ids, -s))][:budget]]


def ranked(
    user_ids: Sequence[int] | np.ndarray, scores: np.ndarray, *, minimum: float = 0.0
) -> list[tuple[int, float]]:
    """Every reader scoring at least ``minimum`` (and above 0), most likely first: what the
    beat task walks, skipping cached feeds, until its budget is spent."""
    ids = np.asarray(user_ids)
    s = np.asarray(scores, dtype=float)
    order = np.lexsort((ids, -s))
    return [(int(ids[i]), float(s[i])) for i in order if s[i] > 0.0 and s[i] >= minimum]
