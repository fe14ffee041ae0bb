"""The bare floor's view: one Redis GET, then a JSON body the size of a warm home answer.

    GET /floor/        (served with ``DJANGO_SETTINGS_MODULE=bench.floor_settings``)

A DRF view without authentication, permissions or throttles, behind no middleware, that
reads its body from the cache database (``REDIS_CACHE_URL``) with a plain redis-py client
and sends it as it is, as the warm home sends its cached JSON. ``BENCH_FLOOR_BODY_BYTES``
sets the body's size (``make bench`` passes the size of a home answer of the same run).
"""

from __future__ import annotations

import json
import os
from functools import cache

import redis
from django.http import HttpRequest, HttpResponse
from django.urls import path
from rest_framework.request import Request
from rest_framework.views import APIView

FLOOR_PATH = "/floor/"
# A plain key in the benchmark's cache database: set on first use, flushed with the cache.
FLOOR_KEY = "bench:floor"
DEFAULT_BODY_BYTES = 11_500


def body_bytes() -> int:
    raw = os.environ.get("BENCH_FLOOR_BODY_BYTES", "").strip()
    return int(raw) if raw else DEFAULT_BODY_BYTES


def make_body(size: int) -> bytes:
    """A JSON document of exactly ``size`` bytes (at least 64): items like a feed page's."""
    items, total = [], 0
    while True:
        item = {"id": len(items) + 1, "title": "An item of the floor", "score": 0.5}
        step = len(json.dumps(item, separators=(",", ":"))) + 1
        if total + step > size - 64:
            break
        items.append(item)
        total += step
    doc = {"items": items, "pad": ""}
    short = size - len(json.dumps(doc, separators=(",", ":")))
    doc["pad"] = "x" * max(short, 0)
    return json.dumps(doc, separators=(",", ":")).encode()


@cache
def client() -> redis.Redis:
    return redis.Redis.from_url(os.environ["REDIS_CACHE_URL"], socket_timeout=1.0)


class FloorView(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []

    def get(self, request: Request) -> HttpResponse:
        body = client().get(FLOOR_KEY)
        if body is None or len(body) != body_bytes():
            body = make_body(body_bytes())
            client().set(FLOOR_KEY, body)
        return HttpResponse(body, content_type="application/json")


def live(request: HttpRequest) -> HttpResponse:
    """What the benchmark's server waits for before measuring (as the app's /health/live/)."""
    return HttpResponse(b'{"status":"ok"}', content_type="application/json")


urlpatterns = [
    path(FLOOR_PATH.strip("/") + "/", FloorView.as_view()),
    path("health/live/", live),
]
