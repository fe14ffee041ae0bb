"""Time and place signals measured on DeskDrop (issue 13, FEAT-003/004): nDCG@10 with and
without them, on a time split.

Protocol. Interactions before the cut (default: the 80% time point) build the counters;
the test period is then replayed in time order, the counters counting every event after it
is scored, as the feed's counters count live events. Each test session is one request: at
its first event, the session's reader is shown a ranking of the candidates (items active in
the ``CANDIDATE_DAYS`` before, minus what the reader already touched), and the items they
open in that session and had never touched are relevant. A relevant item not yet among the
candidates (first seen in that very session) is a miss for every ranking alike.

Rankings, all scored by the serving ``linear_score`` with the settings' weights, on signals
computed by the serving functions (``experience_app.public.time_place``):

- ``popularity``: lifetime opens (the plain baseline);
- ``base``: ``popularity`` (ln of one plus the decayed opens, the click half-life) and
  ``freshness`` (from the item's first event);
- ``base`` plus the time signals, the place signals, both, and each alone; and the time
  signals on the UTC clock (what the reader's time zone adds).

DeskDrop has no time zones: a reader's zone is the one of the country (and, in the US,
region) their events come from (``ZONES``; others: UTC). An event's country is its own,
else the reader's last known one (as a profile would keep it). A reader's language is the
one they read most among the articles with a known language (only 170 of DeskDrop's
articles have one here, the most read of the year: an item without one gets the mean match
of the candidates with one, so that having a language is no signal). An open is a ``VIEW``.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
from django.conf import settings

from experience_app.public import Weights, linear_score
from experience_app.public import time_place as tp
from ml_app.datasets.deskdrop import Article, Interaction
from ml_app.ranking_metrics import ndcg_at_k

K = 10
TEST_SHARE = 0.2
CANDIDATE_DAYS = 7.0
VIEW = "VIEW"
TIME = ("hour_match", "item_hour_lift")
PLACE = ("region_popularity", "language_match")
# name -> the context signals it weighs (None: lifetime opens alone).
VARIANTS: dict[str, tuple[str, ...] | None] = {
    "popularity": None,
    "base": (),
    "base+time": TIME,
    "base+place": PLACE,
    "base+time+place": TIME + PLACE,
    "base+hour_match": ("hour_match",),
    "base+item_hour_lift": ("item_hour_lift",),
    "base+region_popularity": ("region_popularity",),
    "base+language_match": ("language_match",),
    "base+time (UTC clock)": TIME,
}
UTC_VARIANT = "base+time (UTC clock)"

# A DeskDrop reader's zone from their country (US: region). Others read in UTC.
ZONES = {
    "BR": "America/Sao_Paulo",
    "KR": "Asia/Seoul",
    "AU": "Australia/Sydney",
    "JP": "Asia/Tokyo",
    "PT": "Europe/Lisbon",
    "CN": "Asia/Shanghai",
    "IN": "Asia/Kolkata",
    "CA": "America/Toronto",
    "AR": "America/Argentina/Buenos_Aires",
    "GB": "Europe/London",
    "DE": "Europe/Berlin",
    "NL": "Europe/Amsterdam",
    "CO": "America/Bogota",
    "CL": "America/Santiago",
    "ZA": "Africa/Johannesburg",
    "SG": "Asia/Singapore",
}
US_ZONES = {
    **dict.fromkeys(("CA", "WA", "OR", "NV"), "America/Los_Angeles"),
    **dict.fromkeys(("CO", "AZ", "UT", "NM", "MT", "ID", "WY"), "America/Denver"),
    **dict.fromkeys(
        ("TX", "IL", "MN", "WI", "MO", "IA", "LA", "OK", "KS", "NE", "AL", "MS", "TN", "AR"),
        "America/Chicago",
    ),
}


class ContextEvaluationError(ValueError):
    """The data cannot be evaluated (nothing on one side of the cut, no test session)."""


def zone_of(country: str, region: str) -> ZoneInfo:
    if country == "US":
        return tp.zone(US_ZONES.get(region, "America/New_York"))
    return tp.zone(ZONES.get(country, "UTC"))


@dataclass(frozen=True)
class Figure:
    mean: float
    low: float
    high: float


@dataclass
class ContextResult:
    cut: int
    train_interactions: int
    test_interactions: int
    episodes: int
    relevant: int
    reachable: int  # relevant items among the candidates
    with_country: int  # episodes whose reader had a country
    with_language: int  # episodes whose reader had a language
    candidates_with_language: float  # mean share of candidates with a known language
    mean_candidates: float
    ndcg: dict[str, Figure] = field(default_factory=dict)
    gap: dict[str, Figure] = field(default_factory=dict)  # variant minus base, paired
    bootstrap: int = 0
    weights: dict[str, float] = field(default_factory=dict)  # of the four signals


class _Decayed:
    """Exponentially decayed sums per item, kept as (mass, time of last update)."""

    def __init__(self, n: int, half_life_s: float) -> None:
        self.mass = np.zeros(n)
        self.at = np.zeros(n)
        self.rate = math.log(2.0) / half_life_s

    def add(self, i: int, t: float) -> None:
        self.mass[i] = self.mass[i] * math.exp(-self.rate * (t - self.at[i])) + 1.0
        self.at[i] = t

    def now(self, idx: np.ndarray, t: float) -> np.ndarray:
        return self.mass[idx] * np.exp(-self.rate * (t - self.at[idx]))


class _Total:
    def __init__(self, half_life_s: float) -> None:
        self.mass, self.at, self.rate = 0.0, 0.0, math.log(2.0) / half_life_s

    def add(self, t: float) -> None:
        self.mass = self.mass * math.exp(-self.rate * (t - self.at)) + 1.0
        self.at = t

    def now(self, t: float) -> float:
        return self.mass * math.exp(-self.rate * (t - self.at))


def evaluate_context(
    rows: Sequence[Interaction],
    articles: Sequence[Article],
    *,
    cut: int | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    weights: Weights | None = None,
    progress: Callable[[str], None] | None = None,
) -> ContextResult:
    """nDCG@10 of each ranking of ``VARIANTS`` over the test sessions (module docstring)."""
    ordered = sorted(rows, key=lambda r: r.timestamp)
    if not ordered:
        raise ContextEvaluationError("no interaction")
    if cut is None:
        times = [r.timestamp for r in ordered]
        cut = times[min(len(times) - 1, int(len(times) * (1.0 - TEST_SHARE)))]
    train = sum(1 for r in ordered if r.timestamp < cut)
    if train == 0 or train == len(ordered):
        raise ContextEvaluationError("nothing on one side of the cut")
    w = weights or Weights.from_settings()
    half_life_s = settings.FEATURES_CLICK_HALF_LIFE_HOURS * 3600.0
    items = {item: i for i, item in enumerate(dict.fromkeys(r.content_id for r in ordered))}
    n = len(items)
    lang = {a.content_id: a.lang for a in articles if a.lang and a.content_id in items}
    item_lang = [lang.get(item) for item in items]
    opens_total = np.zeros(n)
    decayed = _Decayed(n, half_life_s)
    first_seen = np.full(n, np.inf)
    last_active = np.full(n, -np.inf)
    for a in articles:
        if a.content_id in items:
            first_seen[items[a.content_id]] = min(first_seen[items[a.content_id]], a.timestamp)
    item_hours = {"local": np.zeros((n, 24)), "utc": np.zeros((n, 24))}
    all_hours = {"local": np.zeros(24), "utc": np.zeros(24)}
    user_hours: dict[str, dict[str, Counter[int]]] = {
        "local": defaultdict(Counter),
        "utc": defaultdict(Counter),
    }
    regional: dict[str, _Decayed] = {}
    regional_total: dict[str, _Total] = {}
    everyone_total = _Total(half_life_s)
    touched: dict[str, set[int]] = defaultdict(set)
    user_place: dict[str, tuple[str, str]] = {}
    user_langs: dict[str, Counter[str]] = defaultdict(Counter)

    # The relevant items of each test session: opened in it (untouched before, see below).
    sessions: dict[tuple[str, str], list[Interaction]] = defaultdict(list)
    for r in ordered:
        if r.timestamp >= cut:
            sessions[r.person_id, r.session_id].append(r)
    started: set[tuple[str, str]] = set()
    scores: dict[str, list[float]] = {name: [] for name in VARIANTS}
    relevant_n = reachable_n = with_country = with_language = 0
    candidate_counts: list[int] = []
    language_shares: list[float] = []

    def apply(r: Interaction) -> None:
        i = items[r.content_id]
        t = float(r.timestamp)
        first_seen[i] = min(first_seen[i], t)
        last_active[i] = max(last_active[i], t)
        touched[r.person_id].add(i)
        if r.country:
            user_place[r.person_id] = (r.country, r.region)
        if r.event != VIEW:
            return
        country, region = (
            (r.country, r.region) if r.country else user_place.get(r.person_id, ("", ""))
        )
        at = datetime.fromtimestamp(r.timestamp, tz=UTC)
        for clock, tz in (("local", zone_of(country, region)), ("utc", tp.zone("UTC"))):
            how = tp.hour_of_week(at, tz)
            user_hours[clock][r.person_id][how] += 1
            item_hours[clock][i, how % 24] += 1
            all_hours[clock][how % 24] += 1
        opens_total[i] += 1
        decayed.add(i, t)
        everyone_total.add(t)
        if country:
            regional.setdefault(country, _Decayed(n, half_life_s)).add(i, t)
            regional_total.setdefault(country, _Total(half_life_s)).add(t)
        if item_lang[i]:
            user_langs[r.person_id][item_lang[i] or ""] += 1

    for index, r in enumerate(ordered):
        key = (r.person_id, r.session_id)
        if r.timestamp >= cut and key not in started:
            started.add(key)
            t = float(r.timestamp)
            seen = touched[r.person_id]
            relevant = {
                items[x.content_id]
                for x in sessions[key]
                if x.event == VIEW and items[x.content_id] not in seen
            }
            if relevant:
                mask = (last_active >= t - CANDIDATE_DAYS * 86400) & (first_seen <= t)
                idx = np.array([i for i in np.flatnonzero(mask) if i not in seen], dtype=np.int64)
                country, region = (
                    (r.country, r.region) if r.country else user_place.get(r.person_id, ("", ""))
                )
                langs = user_langs.get(r.person_id)
                reader_lang = langs.most_common(1)[0][0] if langs else ""
                relevant_n += len(relevant)
                reachable_n += len(relevant & set(idx.tolist()))
                with_country += bool(country)
                with_language += bool(reader_lang)
                candidate_counts.append(len(idx))
                ranked = _rank_all(
                    idx,
                    t,
                    w,
                    opens_total=opens_total,
                    decayed=decayed,
                    first_seen=first_seen,
                    item_hours=item_hours,
                    all_hours=all_hours,
                    user_hours={c: user_hours[c].get(r.person_id, Counter()) for c in user_hours},
                    zone=zone_of(country, region),
                    regional=regional.get(country) if country else None,
                    here_total=regional_total[country].now(t) if country in regional_total else 0.0,
                    everyone_total=everyone_total.now(t),
                    item_lang=item_lang,
                    reader_lang=reader_lang,
                    language_shares=language_shares,
                )
                for name, order in ranked.items():
                    scores[name].append(
                        ndcg_at_k([str(i) for i in order], {str(i) for i in relevant}, K)
                    )
        apply(r)
        if progress and index and index % 20000 == 0:
            progress(f"{index} of {len(ordered)} interactions replayed")
    if not scores["base"]:
        raise ContextEvaluationError("no test session with an item new to its reader")
    result = ContextResult(
        cut=cut,
        train_interactions=train,
        test_interactions=len(ordered) - train,
        episodes=len(scores["base"]),
        relevant=relevant_n,
        reachable=reachable_n,
        with_country=with_country,
        with_language=with_language,
        candidates_with_language=float(np.mean(language_shares)) if language_shares else 0.0,
        mean_candidates=float(np.mean(candidate_counts)),
        bootstrap=bootstrap,
        weights={s: getattr(w, s) for s in TIME + PLACE},
    )
    values = {name: np.array(v) for name, v in scores.items()}
    rng = np.random.default_rng(seed)
    draws = (
        [rng.integers(0, result.episodes, result.episodes) for _ in range(bootstrap)]
        if bootstrap
        else []
    )
    for name, v in values.items():
        result.ndcg[name] = _figure(v, draws)
        result.gap[name] = _figure(v - values["base"], draws)
    return result


def _figure(v: np.ndarray, draws: list[np.ndarray]) -> Figure:
    mean = float(v.mean())
    if not draws:
        return Figure(mean, math.nan, math.nan)
    means = np.sort([float(v[d].mean()) for d in draws])
    return Figure(
        mean, float(means[int(0.025 * len(means))]), float(means[int(0.975 * len(means)) - 1])
    )


def _rank_all(
    idx: np.ndarray,
    t: float,
    w: Weights,
    *,
    opens_total: np.ndarray,
    decayed: _Decayed,
    first_seen: np.ndarray,
    item_hours: dict[str, np.ndarray],
    all_hours: dict[str, np.ndarray],
    user_hours: dict[str, Counter[int]],
    zone: ZoneInfo,
    regional: _Decayed | None,
    here_total: float,
    everyone_total: float,
    item_lang: list[str | None],
    reader_lang: str,
    language_shares: list[float],
) -> dict[str, list[int]]:
    """Each variant's top ``K`` of the candidates ``idx`` at ``t``."""
    if len(idx) == 0:
        return {name: [] for name in VARIANTS}
    at = datetime.fromtimestamp(t, tz=UTC)
    base = {
        "popularity": np.log1p(decayed.now(idx, t)),
        "freshness": 2.0 ** (-(t - first_seen[idx]) / (w.freshness_half_life_hours * 3600.0)),
    }
    signals: dict[str, dict[str, np.ndarray]] = {}
    for clock, tz in (("local", zone), ("utc", tp.zone("UTC"))):
        lifts = tp.hour_lifts(item_hours[clock][idx], all_hours[clock])
        share = tp.user_hour_share(user_hours[clock], all_hours[clock])
        signals[clock] = {
            "hour_match": tp.hour_match(share, lifts),
            "item_hour_lift": tp.item_hour_lift(lifts, tp.hour_of_week(at, tz) % 24),
        }
    place: dict[str, np.ndarray] = {}
    if regional is not None:
        lift = tp.region_popularity(
            regional.now(idx, t), decayed.now(idx, t), here_total, everyone_total
        )
        if lift is not None:
            place["region_popularity"] = lift
    matches = [tp.language_match(reader_lang, item_lang[i]) for i in idx]
    known = [m for m in matches if m is not None]
    language_shares.append(len(known) / len(idx))
    if known:
        # An item without a language here (most: only the most read articles have one, a
        # leak of future popularity) gets the mean match of those with one: knowing the
        # language moves an item only by matching or not, never by being known.
        expected = sum(known) / len(known)
        place["language_match"] = np.array([expected if m is None else m for m in matches])
    out: dict[str, list[int]] = {}
    for name, used in VARIANTS.items():
        if used is None:
            score = opens_total[idx]
        else:
            clock = "utc" if name == UTC_VARIANT else "local"
            values = dict(base)
            for s in used:
                source = place if s in PLACE else signals[clock]
                if s in source:
                    values[s] = source[s]
            off = {s: 0.0 for s in TIME + PLACE if s not in used}
            score = np.asarray(linear_score(values, dataclasses.replace(w, **off)), dtype=float)
        # Best first; ties by a fixed shuffle of the items (never their order of arrival).
        order = np.lexsort((_TIEBREAK[idx % len(_TIEBREAK)], -score))[:K]
        out[name] = [int(idx[j]) for j in order]
    return out


_TIEBREAK = np.array(random.Random(0).sample(range(1 << 20), 1 << 16))
