"""Time and place signals (issue 13, FEAT-003/004): pure functions of counts.

The feed (``services.feed.build``) and the offline evaluation on DeskDrop
(``manage.py evaluate_context``, through ``experience_app.public``) compute them with these
same functions, from the counts ``features_app`` keeps (``features_app.context_counters``).
Every value is a log-lift, 0 when nothing is known, so a signal never favours an item for
lack of data:

- ``item_hour_lift``: the item's share of opens at the reader's local hour (three-hour
  window) over every item's share then, smoothed toward 1: morning items in the morning.
- ``hour_match``: how much the item is read at the hours this reader reads: the item's
  hourly lift averaged over the reader's own hour-of-day profile (their local time).
- ``region_popularity``: the share of the item's (decayed) opens from the reader's
  country over that country's share of all opens, smoothed toward 1; absent without a
  country or without opens there.
- ``language_match``: 1 when the item's language (else its provider's) is the reader's,
  0 when it is another; absent when either is unknown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

# Pseudo-counts: how many opens of prior an item's hours and country shares start with, and
# a reader's hour profile.
ITEM_PRIOR = 10.0
USER_PRIOR = 5.0
REGION_PRIOR = 5.0
# An item's lift at hour h reads the opens of h-1, h and h+1 (hours are sparse).
HOUR_WINDOW = 1

SIGNALS = ("hour_match", "item_hour_lift", "region_popularity", "language_match")

# ISO 3166-1 alpha-2 (the tz database's iso3166.tab).
COUNTRIES = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN
    BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ
    DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL
    GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM
    JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME
    MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP
    NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD
    SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO
    TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
    """.split()  # noqa: SIM905 (kept as the table prints it)
)


@dataclass(frozen=True, slots=True)
class Place:
    """Where the reader is: an ISO 3166-1 alpha-2 country and, within it, a region code."""

    country: str
    region: str = ""


def valid_country(value: object) -> str | None:
    """``value`` as an ISO 3166-1 alpha-2 code (upper case), or None if it is not one."""
    if not isinstance(value, str) or len(value) != 2:
        return None
    code = value.upper()
    return code if code in COUNTRIES else None


def valid_region(value: object) -> str:
    """A subdivision code (ISO 3166-2's part after the dash: 1 to 3 letters or digits)."""
    if not isinstance(value, str):
        return ""
    code = value.strip().upper()
    return code if 1 <= len(code) <= 3 and code.isascii() and code.isalnum() else ""


def zone(name: str | None) -> ZoneInfo:
    """The IANA zone ``name``, UTC when unknown."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def hour_of_week(at: datetime, tz: ZoneInfo) -> int:
    """Local hour of week of ``at`` in ``tz`` (0 = Monday 00h .. 167)."""
    local = at.astimezone(tz)
    return local.weekday() * 24 + local.hour


def global_share(all_hours: Sequence[float] | np.ndarray) -> np.ndarray:
    """Every item's share of opens per local hour of day (add-one smoothed), shape (24,)."""
    counts = np.asarray(all_hours, dtype=float)
    return (counts + 1.0) / (counts.sum() + 24.0)


def _window(values: np.ndarray) -> np.ndarray:
    """Per hour, the sum over the hour's window (last axis, circular)."""
    return sum(
        (np.roll(values, -d, axis=-1) for d in range(-HOUR_WINDOW, HOUR_WINDOW + 1)),
        np.zeros_like(values),
    )


def hour_lifts(item_hours: np.ndarray, all_hours: Sequence[float] | np.ndarray) -> np.ndarray:
    """Per item (row of opens by local hour, shape (n, 24)) and hour: the item's share of
    opens in the hour's window, smoothed with ``ITEM_PRIOR`` opens spread like everyone's,
    over everyone's share then. 1.0 everywhere for an item never opened."""
    counts = np.asarray(item_hours, dtype=float).reshape(-1, 24)
    g = _window(global_share(all_hours))
    c = _window(counts)
    width = 2 * HOUR_WINDOW + 1  # each open is in this many windows, as each global share
    n = counts.sum(axis=1, keepdims=True) * width
    # Both windowed shares sum to 1 over the day once divided by the window's width.
    return ((c + ITEM_PRIOR * g) / (n + ITEM_PRIOR * width)) / (g / width)


def item_hour_lift(lifts: np.ndarray, hour: int) -> np.ndarray:
    """ln of each item's lift at the reader's local ``hour`` (``lifts``: :func:`hour_lifts`)."""
    return np.log(lifts[:, hour % 24])


def user_hour_share(
    user_hours: Mapping[int, float], all_hours: Sequence[float] | np.ndarray
) -> np.ndarray:
    """The reader's share of opens per local hour of day (their hour-of-week profile folded
    over the week), smoothed with ``USER_PRIOR`` opens spread like everyone's."""
    g = global_share(all_hours)
    per_hour = np.zeros(24)
    for how, n in user_hours.items():
        per_hour[int(how) % 24] += n
    return (per_hour + USER_PRIOR * g) / (per_hour.sum() + USER_PRIOR)


def hour_match(user_share: np.ndarray, lifts: np.ndarray) -> np.ndarray:
    """ln of each item's hourly lift averaged over the reader's hours: how much the item is
    read at the hours this reader reads (0: as much as any item)."""
    return np.log(lifts @ user_share)


def region_popularity(
    here: np.ndarray, everywhere: np.ndarray, here_total: float, everywhere_total: float
) -> np.ndarray | None:
    """ln of the share of each item's opens from the reader's country (``here``, decayed)
    among its opens everywhere over the country's share of all opens, smoothed with
    ``REGION_PRIOR`` opens at the country's share; None when the country has no opens."""
    if here_total <= 0 or everywhere_total <= 0:
        return None
    f = min(1.0, here_total / everywhere_total)
    here_a, everywhere_a = np.asarray(here, dtype=float), np.asarray(everywhere, dtype=float)
    return np.log(((here_a + REGION_PRIOR * f) / (everywhere_a + REGION_PRIOR)) / f)


def language_match(
    reader: str | None, item: str | None, provider: str | None = None
) -> float | None:
    """1.0 when the item's language (else its provider's) is the reader's, 0.0 when it is
    another, None when either is unknown (primary subtags compared: ``pt-BR`` is ``pt``)."""
    lang = item or provider
    if not reader or not lang:
        return None
    return 1.0 if _primary(reader) == _primary(lang) else 0.0


def _primary(tag: str) -> str:
    return tag.replace("_", "-").split("-", 1)[0].strip().lower()
