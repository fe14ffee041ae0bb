"""The generated demo world, as plain values: pure functions, no database access.

Everything is derived from ``seed`` with one random generator per entity (seeded by a
string such as ``"42:item:17"``), so item 17 is the same item whatever the other counts
are, and the same arguments always give the same world. Times are offsets from an
``anchor`` (the moment the world was first generated), which the caller keeps stable.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils.text import slugify

from experience_app.datasets import demo_words as words
from features_app.contracts import EventType
from reading_app.contracts import CategoryIn, ItemIn, ProviderIn

SOURCE = "demo"
WORDS_PER_MINUTE = 230
EVENT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://inbo.app/datasets/demo/events")
SENTENCES_PER_SECTION = 200
MIN_AGE_SECONDS = 600  # the newest item is ten minutes old


def provider_external_id(number: int) -> str:
    return f"demo:provider:{number}"


def item_external_id(number: int) -> str:
    return f"demo:item:{number}"


def username(number: int) -> str:
    return f"demo_user_{number}"


def _rng(seed: int, *parts: object) -> random.Random:
    # A str seed is hashed with SHA-512: stable across processes and Python runs.
    return random.Random(":".join(map(str, (seed, *parts))))


@dataclass(frozen=True, slots=True)
class Section:
    """A subcategory with its parent: where providers and items live."""

    top: str
    sub: str
    top_slug: str
    slug: str
    terms: tuple[str, ...]
    nouns: tuple[str, ...]
    popularity: float


def sections() -> list[Section]:
    """Every subcategory of the taxonomy, in a fixed order."""
    out = []
    for top, (popularity, nouns, subs) in words.TAXONOMY.items():
        top_slug = slugify(top.replace("&", "and"))
        for sub, terms in subs.items():
            slug = f"{top_slug}-{slugify(sub.replace('&', 'and'))}"
            out.append(Section(top, sub, top_slug, slug, terms, nouns, popularity))
    return out


def categories() -> list[CategoryIn]:
    """Top-level categories and their subcategories (parents first)."""
    tops = {s.top_slug: s.top for s in sections()}
    return [CategoryIn(slug=slug, name=name) for slug, name in tops.items()] + [
        CategoryIn(slug=s.slug, name=s.sub, parent_slug=s.top_slug) for s in sections()
    ]


@dataclass(frozen=True, slots=True)
class DemoProvider:
    number: int
    spec: ProviderIn
    sections: tuple[int, ...]  # indices into sections(), the first is the main one
    weight: float  # how many issues it publishes, relative to the others


@dataclass(frozen=True, slots=True)
class DemoItem:
    number: int
    spec: ItemIn
    provider: int  # index into the provider list
    section: int
    minutes: int
    length: int  # characters of the body


@dataclass(frozen=True, slots=True)
class DemoUser:
    number: int
    username: str
    joined: datetime
    start: datetime  # first moment of activity inside the window
    favourites: tuple[int, ...]  # section indices
    activity: float


@dataclass(frozen=True, slots=True)
class DemoEvent:
    username: str
    item: str  # external id
    event_type: EventType
    occurred_at: datetime
    event_id: uuid.UUID
    context: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DemoProgress:
    username: str
    item: str
    progress: float
    position: int
    started_at: datetime
    updated_at: datetime
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class DemoActivity:
    """What the users did: subscriptions, events, reading progress and saves."""

    subscriptions: list[tuple[str, str, str, datetime]]  # user, provider, status, created
    events: list[DemoEvent]
    progress: list[DemoProgress]
    saves: list[tuple[str, str, datetime]]  # user, item, created


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _fill(template: str, rng: random.Random, section: Section, topic: str | None = None) -> str:
    topic = topic or rng.choice(section.terms)
    topic2 = rng.choice([t for t in section.terms if t != topic] or [topic])
    person = f"{rng.choice(words.FIRST_NAMES)} {rng.choice(words.LAST_NAMES)}"
    return template.format(
        topic=topic,
        Topic=_cap(topic),
        topic2=topic2,
        sub=section.sub,
        org=rng.choice(words.ORGS),
        person=person,
        city=rng.choice(words.CITIES),
        audience=rng.choice(words.AUDIENCES),
        n=rng.choice((3, 4, 5, 6, 7, 10, 12)),
    )


def _provider_name(rng: random.Random, section: Section, author: str, cadence: str) -> str:
    noun, other = rng.sample(section.nouns, 2)
    adjective, first = rng.choice(words.ADJECTIVES), author.split()[0]
    suffix = cadence or rng.choice(words.NAME_SUFFIXES)
    patterns = (
        f"The {adjective} {noun}",
        f"{noun} {suffix}",
        f"{first}'s {section.sub} Notes",
        f"{section.sub} with {first}",
        f"{adjective} {section.sub}",
        f"The {section.sub} {suffix}",
        f"{noun} & {other}",
    )
    return rng.choice(patterns)


def providers(seed: int, count: int) -> list[DemoProvider]:
    """``count`` providers with unique names; provider n never depends on those after it."""
    secs = sections()
    weights = [s.popularity for s in secs]
    used: set[str] = set()
    out = []
    for number in range(1, count + 1):
        rng = _rng(seed, "provider", number)
        main = rng.choices(range(len(secs)), weights=weights)[0]
        own = [main]
        siblings = [i for i, s in enumerate(secs) if s.top == secs[main].top and i != main]
        if siblings and rng.random() < 0.4:
            own.append(rng.choice(siblings))
        if rng.random() < 0.12:
            own.append(rng.choices(range(len(secs)), weights=weights)[0])
        own = list(dict.fromkeys(own))
        label, cadence, _, per_week = rng.choices(
            words.FREQUENCIES, [f[2] for f in words.FREQUENCIES]
        )[0]
        author = f"{rng.choice(words.FIRST_NAMES)} {rng.choice(words.LAST_NAMES)}"
        name = base = _provider_name(rng, secs[main], author, cadence)
        for attempt in range(2, 1000):  # a few random redraws, then a number
            if slugify(name) not in used:
                break
            retry = _provider_name(rng, secs[main], author, cadence)
            name = retry if attempt < 10 else f"{base} {attempt}"
        used.add(slugify(name))
        terms = rng.sample(secs[main].terms, 3)
        description = (
            f"A {label} newsletter about {terms[0]}, {terms[1]} and {terms[2]}. "
            f"Written by {author}, {rng.choice(words.ROLES)}. {rng.choice(words.PITCHES)}"
        )
        slug = slugify(name)
        category_slugs = [secs[main].top_slug] + [secs[i].slug for i in own]
        category_slugs += [secs[i].top_slug for i in own[1:]]
        spec = ProviderIn(
            external_id=provider_external_id(number),
            slug=slug,
            name=name,
            description=description,
            category_slugs=tuple(dict.fromkeys(category_slugs)),
            country=rng.choices(words.COUNTRIES, words.COUNTRY_WEIGHTS)[0],
            website=f"https://{slug}.example.com/",
            is_sponsored=rng.random() < 0.05,
        )
        out.append(DemoProvider(number, spec, tuple(own), per_week * rng.lognormvariate(0, 0.5)))
    return out


def item_offset(seed: int, number: int, days: int) -> timedelta:
    """How long before the anchor item ``number`` was published (its first random draw,
    so the anchor can be recovered from a stored item)."""
    return timedelta(seconds=_rng(seed, "item", number).randint(MIN_AGE_SECONDS, days * 86400))


def _sentence_pools(seed: int) -> list[list[tuple[str, int]]]:
    pools = []
    for index, section in enumerate(sections()):
        rng = _rng(seed, "sentences", index)
        pool = [
            _fill(rng.choice(words.SENTENCES), rng, section) for _ in range(SENTENCES_PER_SECTION)
        ]
        pools.append([(s, len(s.split())) for s in dict.fromkeys(pool)])  # no repeats
    return pools


def _sentence_count(rng: random.Random) -> int:
    """Body length in sentences: mostly short and medium issues, some long reads."""
    size = rng.random()
    if size < 0.25:
        return rng.randint(6, 14)
    if size < 0.75:
        return rng.randint(15, 35)
    if size < 0.95:
        return rng.randint(36, 70)
    return rng.randint(90, 160)


def items(
    seed: int, count: int, provider_list: list[DemoProvider], days: int, anchor: datetime
) -> list[DemoItem]:
    """``count`` items spread over the ``days`` before ``anchor``, with text of every length."""
    if not provider_list:
        return []
    secs, pools = sections(), _sentence_pools(seed)
    cumulative, total = [], 0.0
    for p in provider_list:
        total += p.weight
        cumulative.append(total)
    out = []
    for number in range(1, count + 1):
        rng = _rng(seed, "item", number)
        published = anchor - timedelta(seconds=rng.randint(MIN_AGE_SECONDS, days * 86400))
        provider_index = rng.choices(range(len(provider_list)), cum_weights=cumulative)[0]
        provider = provider_list[provider_index]
        section_index = rng.choice(provider.sections)
        section = secs[section_index]
        topic = rng.choice(section.terms)
        title = _fill(rng.choice(words.TITLES), rng, section, topic)
        summary = _fill(rng.choice(words.SUMMARIES), rng, section, topic)
        pool = pools[section_index]
        sentences = rng.sample(pool, min(len(pool), _sentence_count(rng)))
        texts, start = [], 0
        while start < len(sentences):
            size = rng.randint(2, 6)
            texts.append(" ".join(s for s, _ in sentences[start : start + size]))
            start += size
        texts[0] = f"{summary} {texts[0]}"
        word_total = len(summary.split()) + sum(n for _, n in sentences)
        body = "\n\n".join(texts)
        spec = ItemIn(
            external_id=item_external_id(number),
            provider_external_id=provider.spec.external_id,
            title=title,
            published_at=published,
            summary=summary,
            body=body,
            url=f"{provider.spec.website}p/{slugify(title)[:70]}-{number}",
            category_slugs=(section.top_slug, section.slug),
        )
        minutes = max(1, math.ceil(word_total / WORDS_PER_MINUTE))
        out.append(DemoItem(number, spec, provider_index, section_index, minutes, len(body)))
    return out


def users(seed: int, count: int, days: int, anchor: datetime) -> list[DemoUser]:
    """``count`` readers with one to three favourite subcategories and an activity level."""
    secs = sections()
    weights = [s.popularity for s in secs]
    window_start = anchor - timedelta(days=days)
    out = []
    for number in range(1, count + 1):
        rng = _rng(seed, "user", number)
        wanted = rng.choices((1, 2, 3), weights=(0.3, 0.45, 0.25))[0]
        favourites: list[int] = []
        while len(favourites) < wanted:
            pick = rng.choices(range(len(secs)), weights=weights)[0]
            if pick not in favourites:
                favourites.append(pick)
        if rng.random() < 0.65:
            joined = window_start - timedelta(
                days=rng.randint(1, 400), seconds=rng.randint(0, 86399)
            )
        else:
            joined = anchor - timedelta(seconds=rng.uniform(0.05, 0.95) * days * 86400)
        joined = joined.replace(microsecond=0)
        out.append(
            DemoUser(
                number=number,
                username=username(number),
                joined=joined,
                start=max(joined, window_start),
                favourites=tuple(favourites),
                activity=rng.lognormvariate(0, 0.7),
            )
        )
    return out


def activity(
    seed: int,
    user_list: list[DemoUser],
    provider_list: list[DemoProvider],
    item_list: list[DemoItem],
    anchor: datetime,
    days: int,
) -> DemoActivity:
    """Subscriptions, an interaction history and reading state for every user.

    Users see mostly items of the providers they follow and of their favourite
    subcategories, and click those far more often (about 24% and 16%) than the rest (5%);
    about four clicks in ten are read to the end, four more are partly read, one in eight
    is saved, and a few percent of the items shown unclicked are dismissed or hidden.
    """
    by_provider: dict[int, list[DemoItem]] = {}
    by_section: dict[int, list[DemoItem]] = {}
    for item in item_list:
        by_provider.setdefault(item.provider, []).append(item)
        by_section.setdefault(item.section, []).append(item)
    result = DemoActivity([], [], [], [])
    for user in user_list:
        _user_activity(
            seed, user, provider_list, item_list, by_provider, by_section, anchor, days, result
        )
    return result


_CLICK_RATE = {"subscriptions": 0.24, "for_you": 0.16, "explore": 0.045}
_STATUSES, _STATUS_WEIGHTS = ("active", "paused", "cancelled"), (0.85, 0.05, 0.10)


def _user_activity(
    seed: int,
    user: DemoUser,
    provider_list: list[DemoProvider],
    item_list: list[DemoItem],
    by_provider: dict[int, list[DemoItem]],
    by_section: dict[int, list[DemoItem]],
    anchor: datetime,
    days: int,
    out: DemoActivity,
) -> None:
    rng = _rng(seed, "activity", user.number)
    name = user.username
    favourite = set(user.favourites)
    liked = [i for i, p in enumerate(provider_list) if favourite & set(p.sections)]
    wanted = min(len(provider_list), max(1, round(2 + user.activity * 4 + rng.random() * 3)))
    following: list[int] = []
    for _ in range(wanted * 4):
        if len(following) >= wanted:
            break
        choose_from = liked if liked and rng.random() < 0.8 else range(len(provider_list))
        pick = rng.choice(choose_from)
        if pick not in following:
            following.append(pick)
    followed: list[int] = []
    for index in following:
        status = rng.choices(_STATUSES, _STATUS_WEIGHTS)[0]
        created = user.joined + (anchor - user.joined) * (rng.random() ** 2)
        out.subscriptions.append(
            (name, provider_list[index].spec.external_id, status, created.replace(microsecond=0))
        )
        if status != "cancelled":
            followed.append(index)

    pools = {
        "subscriptions": [i for p in followed for i in by_provider.get(p, [])],
        "for_you": [i for s in user.favourites for i in by_section.get(s, [])],
        "explore": item_list,
    }
    share = (anchor - user.start) / timedelta(days=days)
    impressions = int(50 * user.activity * share) + 3
    seen: set[int] = set()
    latest = anchor - timedelta(seconds=60)
    for _ in range(impressions):
        roll = rng.random()
        surface = "subscriptions" if roll < 0.45 else "for_you" if roll < 0.75 else "explore"
        if not pools[surface]:
            surface = "explore"
        pool = pools[surface]
        if not pool:
            return
        item = rng.choice(pool)
        base = max(item.spec.published_at, user.start)
        span = (latest - base).total_seconds()
        if item.number in seen or span <= 0:
            continue
        seen.add(item.number)
        delay = rng.expovariate(1 / 36_000)
        at = base + timedelta(seconds=delay if delay < span else rng.uniform(0, span))
        at = at.replace(microsecond=0)
        _interaction(seed, rng, name, item, surface, at, anchor, out)


def _event(
    seed: int, user: str, item: DemoItem, kind: EventType, at: datetime, context: dict[str, Any]
) -> DemoEvent:
    key = f"{seed}:{user}:{item.spec.external_id}:{kind.value}"
    return DemoEvent(
        user, item.spec.external_id, kind, at, uuid.uuid5(EVENT_NAMESPACE, key), context
    )


def _interaction(
    seed: int,
    rng: random.Random,
    user: str,
    item: DemoItem,
    surface: str,
    at: datetime,
    anchor: datetime,
    out: DemoActivity,
) -> None:
    """One impression and what followed it: a click, reading, a save, or a dismissal."""
    context = {"surface": surface}
    out.events.append(_event(seed, user, item, EventType.IMPRESSION, at, context))
    if rng.random() >= _CLICK_RATE[surface]:
        roll = rng.random()
        if roll < 0.04:
            kind = EventType.DISMISS if roll < 0.035 else EventType.HIDE
            later = min(at + timedelta(seconds=rng.randint(2, 30)), anchor - timedelta(seconds=1))
            out.events.append(_event(seed, user, item, kind, later, context))
        return
    last = anchor - timedelta(seconds=1)
    clicked = min(at + timedelta(seconds=rng.randint(2, 90)), last)
    out.events.append(_event(seed, user, item, EventType.CLICK, clicked, context))
    needed = timedelta(minutes=item.minutes * rng.uniform(0.6, 1.4))
    roll = rng.random()
    if roll < 0.42 and clicked + needed <= last:
        done = (clicked + needed).replace(microsecond=0)
        out.events.append(_event(seed, user, item, EventType.READ, done, context))
        out.progress.append(
            DemoProgress(user, item.spec.external_id, 1.0, item.length, clicked, done, done)
        )
        if rng.random() < 0.05:
            shared = min(done + timedelta(seconds=rng.randint(5, 120)), last)
            out.events.append(_event(seed, user, item, EventType.SHARE, shared, context))
    elif roll < 0.85:
        fraction = round(rng.uniform(0.05, 0.92), 2)
        touched = min(clicked + needed * fraction, last).replace(microsecond=0)
        position = int(item.length * fraction)
        out.progress.append(
            DemoProgress(user, item.spec.external_id, fraction, position, clicked, touched, None)
        )
    if rng.random() < 0.12:
        saved = min(clicked + timedelta(seconds=rng.randint(5, 60)), last)
        out.events.append(_event(seed, user, item, EventType.SAVE, saved, context))
        out.saves.append((user, item.spec.external_id, saved))
