"""Load test: readers using INBO as the app does (``make loadtest``; docs/BENCHMARKS.md,
"Load test").

Each simulated reader signs in with the API token of a demo user (``scripts/loadtest`` writes
them, one per line, to ``LOADTEST_TOKENS_FILE``), opens the home feed, then repeats, with a
think time of ``LOADTEST_THINK_MIN``..``LOADTEST_THINK_MAX`` seconds (1..5) between actions,
one of these, chosen with these weights:

======================  ======  =========================================================
action                  weight  requests
======================  ======  =========================================================
home                    40      ``GET /experience/home/``: the app opened or pulled to
                                refresh; the most frequent request (a cached feed mostly)
section page            15      ``GET /experience/home/sections/<key>/?cursor=``: scrolling
                                a home section past its first page
interactions            20      ``POST /experience/interactions/``: the batch of what was
                                shown, clicked, read since the last one (up to 50 events)
reading                 15      ``GET /items/<id>/`` then ``PUT /reading/progress/<id>/``:
                                an item opened from the feed and read partly or to the end
search                  10      ``GET /search/?q=``: a word from a title the reader saw
======================  ======  =========================================================

So of every 100 actions, 40 homes, 15 section pages, 20 batches, 15 items read (30 requests)
and 10 searches: 115 requests. A home or section page shown queues impressions of the first
items of its first sections; an item read queues a click and, read to the end, a read.

Each reader sends its own ``X-Forwarded-For`` address (10.x.y.z): with ``TRUSTED_PROXY_COUNT=1``
on the server, the per-address rate limits count each reader apart, as they would behind the
reverse proxy; otherwise every reader shares the one loopback address and its limits.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import uuid
from datetime import UTC, datetime

from locust import HttpUser, between, task

API = "/api/v1"
MAX_BATCH = 50
WORDS = re.compile(r"[^\W\d_]{4,}")
FALLBACK_QUERIES = ("news", "weekly", "science", "market", "design", "football", "travel")


def _tokens() -> list[str]:
    path = os.environ.get("LOADTEST_TOKENS_FILE", "var/loadtest/tokens.txt")
    with open(path) as lines:
        tokens = [line.strip() for line in lines if line.strip()]
    if not tokens:
        raise SystemExit(f"loadtest: no tokens in {path}")
    return tokens


TOKENS = _tokens()
_readers = itertools.count()


def _now() -> str:
    return datetime.now(UTC).isoformat()


class Reader(HttpUser):
    """One reader of the app: a demo user's token, its own session and address."""

    wait_time = between(
        float(os.environ.get("LOADTEST_THINK_MIN", "1")),
        float(os.environ.get("LOADTEST_THINK_MAX", "5")),
    )

    def on_start(self) -> None:
        n = next(_readers)
        self.client.headers.update(
            {
                "Authorization": f"Token {TOKENS[n % len(TOKENS)]}",
                "X-Forwarded-For": f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}",
            }
        )
        self.session_id = uuid.uuid4().hex[:16]
        self.request_id: str | None = None
        self.cursors: dict[str, str] = {}  # section key -> next_cursor
        self.seen: list[tuple[int, str, int]] = []  # (item id, section, position)
        self.words: list[str] = []
        self.pending: list[dict] = []
        self.home()

    # --- what the reader was shown ------------------------------------------------------

    def _shown(self, request_id: str, sections: list[dict]) -> None:
        self.request_id = request_id
        for section in sections:
            if section.get("next_cursor"):
                self.cursors[section["key"]] = section["next_cursor"]
        # The first items of the first sections come on screen: impressions.
        for section in sections[:3]:
            for entry in section["items"][:4]:
                item = entry["item"]
                self.seen.append((item["id"], section["key"], entry["position"]))
                self.words += WORDS.findall(item.get("title") or "")[:3]
                self._event(item["id"], "impression", section["key"], entry["position"])
        del self.seen[:-200], self.words[:-200]

    def _event(self, item_id: int, kind: str, section: str, position: int, **extra) -> None:
        self.pending.append(
            {
                "event_id": str(uuid.uuid4()),
                "item_id": item_id,
                "type": kind,
                "occurred_at": _now(),
                "request_id": self.request_id,
                "section": section,
                "position": position,
                "session_id": self.session_id,
                **extra,
            }
        )
        del self.pending[:-MAX_BATCH]

    # --- actions ------------------------------------------------------------------------

    @task(40)
    def home(self) -> None:
        with self.client.get(f"{API}/experience/home/", name="home", catch_response=True) as r:
            if r.status_code == 200:
                body = r.json()
                self._shown(body["request_id"], body["sections"])

    @task(15)
    def section_page(self) -> None:
        if not self.cursors:
            return self.home()
        key = random.choice(sorted(self.cursors))
        with self.client.get(
            f"{API}/experience/home/sections/{key}/",
            params={"cursor": self.cursors.pop(key)},
            name="section page",
            catch_response=True,
        ) as r:
            if r.status_code == 200:
                body = r.json()
                self._shown(body["request_id"], [body])

    @task(20)
    def interactions(self) -> None:
        if not self.pending:
            return None
        batch, self.pending = self.pending, []
        self.client.post(
            f"{API}/experience/interactions/", json={"interactions": batch}, name="interactions"
        )

    @task(15)
    def read(self) -> None:
        if not self.seen:
            return self.home()
        item_id, section, position = random.choice(self.seen)
        self._event(item_id, "click", section, position)
        self.client.get(f"{API}/items/{item_id}/", name="item")
        progress = random.choice((0.25, 0.5, 0.8, 1.0))
        self.client.put(
            f"{API}/reading/progress/{item_id}/",
            json={"progress": progress, "position": int(progress * 4000)},
            name="progress",
        )
        if progress == 1.0:
            self._event(item_id, "read", section, position, dwell_ms=random.randint(30, 300) * 1000)

    @task(10)
    def search(self) -> None:
        query = random.choice(self.words or FALLBACK_QUERIES).lower()
        self.client.get(f"{API}/search/", params={"q": query}, name="search")
