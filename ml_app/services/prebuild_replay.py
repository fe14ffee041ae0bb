"""Predictive caching replayed on DeskDrop's real timestamps (OPT-002).

Protocol. An *open* is a reader's first event after ``GAP_SECONDS`` (30 minutes) without
one, as the home counts opens. Every reader's open profile is learned online from the first
event on, with the serving update (``open_times.add_open``); their last request is their
last event. Simulated time walks a period in steps of the run interval: at each run, the
policy picks up to ``budget`` readers among those seen within the profile TTL, skipping
those whose pre-built feed is still valid, and marks them pre-built at that time. An open
is *served pre-built* when its reader was pre-built within the feed's TTL before it and has
had no event since (every DeskDrop event is an interaction, which invalidates a cached
feed); any event of the reader consumes or invalidates their pre-built feed.

Policies at the same budget: ``likelihood`` (``open_times.likelihood`` and
``open_times.pick``, what the beat task runs, imported through ``experience_app.public``),
``recent`` (the most recently active readers) and ``random`` (readers seen within the
TTL, drawn uniformly with a fixed seed).

Mornings are 06:00-10:00 in the reader's zone: DeskDrop has no time zones, so the zone is
that of the country (US: region) their events come from (``deskdrop_context.zone_of``),
UTC when none is known.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from experience_app.public import open_times as ot
from ml_app.datasets.deskdrop import Interaction
from ml_app.services.deskdrop_context import zone_of

GAP_SECONDS = 30 * 60
PROFILE_TTL_SECONDS = 35 * 86400
MORNING = (6, 10)  # local hours [6, 10)
POLICIES = ("likelihood", "recent", "random")


class ReplayError(ValueError):
    """The data cannot be replayed (no event, or no open in the period)."""


@dataclass(frozen=True)
class Config:
    """A prebuild schedule: runs every ``interval`` seconds, up to ``budget`` feeds each,
    for opens in the next ``lookahead`` minutes, feeds kept ``ttl`` seconds."""

    budget: int
    interval: int = 600
    lookahead: float = 30.0
    ttl: int = 2400
    minimum: float = 0.0


@dataclass
class Outcome:
    """One policy over one period."""

    policy: str
    budget: int
    opens: int = 0
    served: int = 0
    morning_opens: int = 0
    morning_served: int = 0
    built: int = 0
    runs: int = 0
    mean_candidates: float = 0.0

    @property
    def share(self) -> float:
        return self.served / self.opens if self.opens else 0.0

    @property
    def morning_share(self) -> float:
        return self.morning_served / self.morning_opens if self.morning_opens else 0.0

    @property
    def built_per_open(self) -> float:
        return self.built / self.opens if self.opens else 0.0

    @property
    def wasted(self) -> float:
        """Share of the feeds built that no open was served from."""
        return 1.0 - self.served / self.built if self.built else 0.0


@dataclass
class Replay:
    """The events in time order, readers as rows, each event's local hour."""

    ts: np.ndarray  # (e,) Unix seconds, sorted
    user: np.ndarray  # (e,) reader row
    local_hour: np.ndarray  # (e,) hour of day in the reader's zone
    users: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, interactions: Sequence[Interaction]) -> Replay:
        if not interactions:
            raise ReplayError("no interaction to replay")
        rows = sorted(interactions, key=lambda r: (r.timestamp, r.person_id))
        index: dict[str, int] = {}
        place: dict[str, tuple[str, str]] = {}
        ts, user, hour = [], [], []
        for r in rows:
            u = index.setdefault(r.person_id, len(index))
            if r.country:
                place[r.person_id] = (r.country, r.region)
            country, region = place.get(r.person_id, ("", ""))
            tz = zone_of(country, region)
            ts.append(r.timestamp)
            user.append(u)
            hour.append(datetime.fromtimestamp(r.timestamp, tz).hour)
        return cls(np.array(ts, dtype=float), np.array(user), np.array(hour), list(index))


def simulate(
    replay: Replay,
    *,
    start: float,
    end: float,
    config: Config,
    policy: str,
    params: ot.Policy = ot.DEFAULT,
    seed: int = 0,
) -> Outcome:
    """Replay [start, end) with prebuild runs every ``config.interval`` (events before
    ``start`` only teach the profiles)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}")
    n = len(replay.users)
    counts = np.zeros((n, ot.HOURS))
    last = np.zeros(n)
    prebuilt = np.full(n, -np.inf)  # when each reader's valid pre-built feed was built
    rng = np.random.default_rng(seed)
    out = Outcome(policy, config.budget)
    candidates_total = 0
    i, e = 0, len(replay.ts)

    def apply(k: int) -> None:
        u, t = replay.user[k], replay.ts[k]
        if t - last[u] >= GAP_SECONDS:  # an open
            if t >= start:
                served = bool(t - prebuilt[u] <= config.ttl)
                morning = bool(MORNING[0] <= replay.local_hour[k] < MORNING[1])
                out.opens += 1
                out.served += served
                out.morning_opens += morning
                out.morning_served += served and morning
            ot.add_open(counts[u], ot.hour_of_week(t))
        last[u] = t
        prebuilt[u] = -np.inf  # served, or invalidated by the interaction

    while i < e and replay.ts[i] < start:
        apply(i)
        i += 1
    run = start
    while run < end:
        while i < e and replay.ts[i] < run:
            apply(i)
            i += 1
        active = np.flatnonzero((last > 0) & (run - last <= PROFILE_TTL_SECONDS))
        candidates_total += len(active)
        valid = prebuilt[active] >= run - config.ttl
        skip = set(active[valid].tolist())
        if policy == "likelihood":
            # Every reader's row (no copy of the matrix); the inactive ones are not picked.
            scores = ot.likelihood(counts, last, now=run, minutes=config.lookahead, policy=params)[
                active
            ]
        elif policy == "recent":
            scores = last[active]
        else:
            scores = rng.random(len(active)) + 1e-9
        floor = config.minimum if policy == "likelihood" else 0.0  # baselines have no score
        chosen = ot.pick(active, scores, budget=config.budget, minimum=floor, skip=skip)
        prebuilt[chosen] = run
        out.built += len(chosen)
        out.runs += 1
        run += config.interval
    while i < e and replay.ts[i] < end:
        apply(i)
        i += 1
    out.mean_candidates = candidates_total / out.runs if out.runs else 0.0
    return out


def evaluate(
    replay: Replay,
    *,
    start: float,
    end: float,
    budgets: Sequence[int],
    config: Config,
    params: ot.Policy = ot.DEFAULT,
    seed: int = 0,
) -> list[Outcome]:
    """Every policy at every budget over [start, end)."""
    if not ((replay.ts >= start) & (replay.ts < end)).any():
        raise ReplayError("no event in the period")
    return [
        simulate(
            replay,
            start=start,
            end=end,
            config=dataclasses.replace(config, budget=b),
            policy=p,
            params=params,
            seed=seed,
        )
        for b in budgets
        for p in POLICIES
    ]


# Around the serving defaults (chosen on this period by a wider search: opens to the power
# 1 and a few days of recency beat the alternatives at every mix and prior tried).
GRID = tuple(
    ot.Policy(day_mix=d, flat_prior=f, spread=0.25, recency_days=r, volume=1.0)
    for d in (0.5, 0.8)
    for f in (2.0, 8.0)
    for r in (1.5, 3.0, 7.0)
)


def tune(
    replay: Replay,
    *,
    start: float,
    end: float,
    budget: int,
    config: Config,
    grid: Sequence[ot.Policy] = GRID,
) -> list[tuple[ot.Policy, Outcome]]:
    """The likelihood policy's parameters on [start, end), best morning share first (ties:
    the overall share)."""
    results = [
        (
            p,
            simulate(
                replay,
                start=start,
                end=end,
                config=dataclasses.replace(config, budget=budget),
                policy="likelihood",
                params=p,
            ),
        )
        for p in grid
    ]
    return sorted(results, key=lambda pr: (-pr[1].morning_share, -pr[1].share))


MINIMA = (0.0, 0.02, 0.05, 0.1)


def tune_minimum(
    replay: Replay,
    *,
    start: float,
    end: float,
    budget: int,
    config: Config,
    params: ot.Policy,
    target: float = 0.5,
    minima: Sequence[float] = MINIMA,
) -> tuple[float, list[tuple[float, Outcome]]]:
    """The likelihood floor on [start, end) at ``budget``: the highest of ``minima`` that
    still serves ``target`` of the morning opens pre-built (the least work for it), else 0."""
    results = [
        (
            m,
            simulate(
                replay,
                start=start,
                end=end,
                config=dataclasses.replace(config, budget=budget, minimum=m),
                policy="likelihood",
                params=params,
            ),
        )
        for m in minima
    ]
    reaching = [m for m, o in results if o.morning_share >= target]
    return (max(reaching) if reaching else 0.0), results
