#!/usr/bin/env python3
"""A small INBO API client, standard library only, and a demo of a reader's first minutes.

    python examples/inbo_client.py --base-url http://127.0.0.1:8000

The demo signs up a new reader, exchanges the password for a token, picks interests, reads
the home feed, reports what was shown and read (and retries that batch, to show it is counted
once), opens the next page of a section, then searches and reports the click on a result.
docs/API_COOKBOOK.md shows the same calls with curl; the API reference is /api/docs/.

Errors come back as ``ApiError`` with the envelope's ``code``, ``message`` and ``details``.
A 429 or 503 is retried after the server's ``Retry-After`` (a few times at most); any other
error is raised at once.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

RETRIED_STATUSES = {429, 503}


class ApiError(Exception):
    """An error answer: ``{"error": {"code", "message", "details"}}`` and its HTTP status."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


class InboClient:
    """The INBO API, version 1. Set ``token`` (or call ``sign_in``) for the reader's calls."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        token: str | None = None,
        *,
        timeout: float = 10.0,
        max_retries: int = 3,
        max_wait: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_wait = max_wait

    # --- transport -----------------------------------------------------------------------
    def request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None
    ) -> Any:
        """One API call; the decoded JSON answer (None for 204). Retries 429 and 503."""
        url = f"{self.base_url}/api/v1/{path.lstrip('/')}"
        query = {k: v for k, v in (params or {}).items() if v is not None}
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        for attempt in range(self.max_retries + 1):
            req = urllib.request.Request(url, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as response:
                    payload = response.read()
                    return json.loads(payload) if payload else None
            except urllib.error.HTTPError as exc:
                error = _api_error(exc)
                retry_after = exc.headers.get("Retry-After")
                if exc.code in RETRIED_STATUSES and attempt < self.max_retries:
                    # The server says when to come back; never hammer it, never wait forever.
                    wait = float(retry_after) if retry_after and retry_after.isdigit() else 1.0
                    time.sleep(min(wait, self.max_wait))
                    continue
                raise error from None
        raise AssertionError("unreachable")

    # --- account -------------------------------------------------------------------------
    def register(self, username: str, email: str, password: str) -> dict[str, Any]:
        """Create an account; signs this client in with the new token."""
        answer = self.request(
            "POST",
            "auth/register/",
            body={"username": username, "email": email, "password": password},
        )
        self.token = answer["token"]
        return answer

    def sign_in(self, username: str, password: str) -> dict[str, Any]:
        """Exchange a username and password for a token (``expires_at`` says until when)."""
        self.token = None
        answer = self.request(
            "POST", "auth/token/", body={"username": username, "password": password}
        )
        self.token = answer["token"]
        return answer

    def me(self) -> dict[str, Any]:
        return self.request("GET", "me/")

    def interests(self) -> list[dict[str, Any]]:
        return self.request("GET", "me/interests/")["categories"]

    def set_interests(self, slugs: list[str]) -> list[dict[str, Any]]:
        return self.request("PUT", "me/interests/", body={"categories": slugs})["categories"]

    # --- catalog -------------------------------------------------------------------------
    def providers(self, **filters: Any) -> dict[str, Any]:
        return self.request("GET", "providers/", params=filters)

    def items(self, **filters: Any) -> dict[str, Any]:
        return self.request("GET", "items/", params=filters)

    def item(self, item_id: int) -> dict[str, Any]:
        return self.request("GET", f"items/{item_id}/")

    # --- home and interactions -----------------------------------------------------------
    def home(self) -> dict[str, Any]:
        return self.request("GET", "experience/home/")

    def section_page(self, key: str, cursor: str) -> dict[str, Any]:
        return self.request("GET", f"experience/home/sections/{key}/", params={"cursor": cursor})

    def report(self, interactions: list[dict[str, Any]]) -> dict[str, Any]:
        """Report a batch of interactions. Give each one an ``event_id`` once, when it
        happens, and send the same ids again on a retry: they are stored once."""
        return self.request("POST", "experience/interactions/", body={"interactions": interactions})

    # --- reading -------------------------------------------------------------------------
    def set_progress(self, item_id: int, progress: float, position: int = 0) -> dict[str, Any]:
        return self.request(
            "PUT",
            f"reading/progress/{item_id}/",
            body={"progress": progress, "position": position},
        )

    def continue_reading(self) -> dict[str, Any]:
        return self.request("GET", "reading/continue/")

    def save(self, item_id: int) -> dict[str, Any]:
        return self.request("PUT", f"reading/saves/{item_id}/")

    def unsave(self, item_id: int) -> None:
        self.request("DELETE", f"reading/saves/{item_id}/")

    def subscribe(self, provider_slug: str) -> dict[str, Any]:
        return self.request("POST", "subscriptions/", body={"provider": provider_slug})

    # --- search --------------------------------------------------------------------------
    def search(self, q: str = "", **filters: Any) -> dict[str, Any]:
        """Search items (``type="providers"`` for newsletters); filters as in the API."""
        return self.request("GET", "search/", params={"q": q, **filters})

    def click(self, search_id: str, result_id: int, position: int) -> dict[str, Any]:
        return self.request(
            "POST",
            "search/clicks/",
            body={"search_id": search_id, "id": result_id, "position": position},
        )


def _api_error(exc: urllib.error.HTTPError) -> ApiError:
    try:
        body = json.loads(exc.read() or b"{}")["error"]
        return ApiError(exc.code, body["code"], body["message"], body.get("details"))
    except (ValueError, KeyError, TypeError):
        return ApiError(exc.code, "http_error", exc.reason or "HTTP error")


def interaction(
    item_id: int, kind: str, *, request_id: str, section: str, position: int, **extra: Any
) -> dict[str, Any]:
    """One interaction with a served item, with its idempotency key minted now."""
    return {
        "event_id": str(uuid.uuid4()),
        "item_id": item_id,
        "type": kind,
        "request_id": request_id,
        "section": section,
        "position": position,
        **extra,
    }


def demo(client: InboClient, *, username: str | None = None, say=print) -> dict[str, Any]:
    """A new reader's first minutes; returns what happened at each step."""
    username = username or f"reader-{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(16)
    out: dict[str, Any] = {}

    client.register(username, f"{username}@example.com", password)
    out["user"] = client.sign_in(username, password)["user"]
    say(f"signed up and signed in as {out['user']['username']}")

    # Interests come from the catalog: the categories of the first newsletters listed.
    slugs = sorted(
        {c["slug"] for p in client.providers(page_size=10)["results"] for c in p["categories"]}
    )[:3]
    out["interests"] = [c["slug"] for c in client.set_interests(slugs)]
    say(f"interests: {', '.join(out['interests']) or '(none in the catalog yet)'}")

    home = client.home()
    out["home"] = home
    sections = [s for s in home["sections"] if s["items"]]
    say(f"home: {len(sections)} sections ({', '.join(s['key'] for s in sections)})")
    if not sections:
        say("the catalog is empty: load one first (README, 'Data': manage.py seed_demo)")
        return out

    first = sections[0]
    entry = first["items"][0]
    served = {"request_id": home["request_id"], "section": first["key"]}
    batch = [
        interaction(e["item"]["id"], "impression", position=e["position"], **served)
        for e in first["items"]
    ]
    batch.append(
        interaction(
            entry["item"]["id"], "read", position=entry["position"], dwell_ms=42_000, **served
        )
    )
    out["reported"] = client.report(batch)
    # A retry (say the answer was lost): the same event_ids, so nothing is counted twice.
    out["retried"] = client.report(batch)
    say(
        f"reported {out['reported']['accepted']} interactions; the retry found "
        f"{out['retried']['duplicates']} duplicates"
    )
    client.set_progress(entry["item"]["id"], 0.4, position=1200)
    client.save(entry["item"]["id"])

    paged = next((s for s in sections if s["next_cursor"]), None)
    if paged is not None:
        page = client.section_page(paged["key"], paged["next_cursor"])
        out["section_page"] = page
        say(f"section {paged['key']}: {len(page['items'])} more items")

    # The read item's longest word: a query that finds it (short words may be stop words).
    word = max(entry["item"]["title"].split(), key=len)
    results = client.search(word, sort="relevance", page_size=5)
    out["search"] = results
    say(f"search {word!r}: {results['total']} results")
    if results["results"]:
        hit = results["results"][0]
        out["click"] = client.click(results["search_id"], hit["id"], hit["position"])
        say(f"clicked result {hit['position']} (recorded: {out['click']['recorded']})")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--username", help="the new reader's name (default: a random one)")
    args = parser.parse_args(argv)
    try:
        demo(InboClient(args.base_url), username=args.username)
    except ApiError as exc:
        print(f"error: {exc} {json.dumps(exc.details)}", file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(f"cannot reach {args.base_url}: {exc.reason} (is `make run` up?)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
