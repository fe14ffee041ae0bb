"""Endpoints that exist only for ``make bench`` (routed when ``INBO_BENCH_ENDPOINTS=true``).

The ceiling endpoint is the cheapest authenticated API call this stack can serve: the same
gunicorn worker, middleware, token authentication and JSON renderer as ``home``, one read
of a cached value from Redis and nothing else. ``make bench`` reports every other figure
as a ratio to it (docs/BENCHMARKS.md).
"""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from django.http import Http404
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

# A Django cache entry (the cache Redis database, under the cache's KEY_PREFIX), not an
# application-state key: it can be flushed at any time and is set again on the next call.
CEILING_CACHE_KEY = "bench:ceiling"
CEILING_VALUE = "ceiling"


class CeilingView(APIView):
    """One cached Redis value, behind the same authentication as every API view."""

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        # The URL is only routed when the setting is on; checked here as well so that a
        # URLconf built while it was on never serves it after it was switched off.
        if not settings.INBO_BENCH_ENDPOINTS:
            raise Http404
        value = cache.get(CEILING_CACHE_KEY)
        if value is None:
            value = CEILING_VALUE
            cache.set(CEILING_CACHE_KEY, value, timeout=None)
        return Response({"value": value})


urlpatterns = [path("ceiling/", CeilingView.as_view(), name="bench-ceiling")]
