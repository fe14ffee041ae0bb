"""HTTP caching of the API (docs/API.md, "Caching"; docs/ARCHITECTURE.md, "Caching").

Two rules:

- **By default nothing under ``/api/`` may be stored**: a response that did not say otherwise
  gets ``Cache-Control: private, no-store`` (:func:`default_cache_control`, applied by the
  API's outermost middleware). A shared cache (a CDN, a proxy) never keeps a reader's data,
  and neither does a browser.
- **Views that answer the same to everyone opt in** with :class:`PublicCacheMixin` (the
  catalog): their ``GET``/``HEAD`` answers carry an ``ETag`` (a hash of the body) and a
  ``Last-Modified`` (when the cached representation was built), and a request that already
  has them (``If-None-Match``, ``If-Modified-Since``) gets ``304 Not Modified`` with no body.
  Anonymous requests may be kept by any cache (``public, max-age, stale-while-revalidate``);
  a request that carries credentials gets ``private, no-cache`` (a browser may keep it and
  must revalidate: a cheap 304). Both vary on ``Authorization`` and ``Cookie``, so a shared
  cache never answers a signed-in request with a stored anonymous response, or the reverse.

Such a view serves its rendered JSON bodies from a :class:`~inbo.cache_l1.TwoLevelCache`
(``response_cache``) keyed by the full URL, so a repeated page costs no query; the cache's
owner empties it whenever the data changes.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils.cache import get_conditional_response, patch_vary_headers
from django.utils.http import http_date, parse_http_date_safe
from drf_spectacular.utils import OpenApiResponse
from rest_framework.request import Request

from inbo.cache_l1 import TwoLevelCache

DEFAULT = "private, no-store"
PRIVATE = "private, no-cache"
VARY = ("Authorization", "Cookie")
_SAFE = ("GET", "HEAD")

# For ``extend_schema(responses=...)`` of the views that opt in.
NOT_MODIFIED = {
    304: OpenApiResponse(
        description="Not modified: the `ETag` sent in `If-None-Match` (or the time in "
        "`If-Modified-Since`) still holds. No body."
    )
}


def default_cache_control(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    """``private, no-store`` on an ``/api/`` response that set no ``Cache-Control``."""
    if not response.has_header("Cache-Control"):
        response["Cache-Control"] = DEFAULT
    return response


def public_cache_control() -> str:
    return (
        f"public, max-age={settings.HTTP_CACHE_MAX_AGE}, "
        f"stale-while-revalidate={settings.HTTP_CACHE_STALE_WHILE_REVALIDATE}"
    )


def etag_of(content: bytes) -> str:
    """A strong validator: the same bytes, the same tag."""
    return f'"{hashlib.sha256(content).hexdigest()[:32]}"'


@dataclass(frozen=True)
class CachedBody:
    """A rendered response as the response cache keeps it."""

    content: bytes
    content_type: str
    etag: str
    built_at: float  # Unix time: the response's Last-Modified


class _NotCached(Exception):
    """The view answered something other than a 200: served as it is, never cached."""

    def __init__(self, response: HttpResponseBase) -> None:
        self.response = response


class PublicCacheMixin:
    """For read-only DRF views whose answers do not depend on who asks (no per-user field
    may ever appear in them). ``response_cache`` keeps their JSON bodies; ``list`` and
    ``retrieve`` are served from it."""

    response_cache: TwoLevelCache | None = None

    def list(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponseBase:
        parent = super()
        return self._from_cache(request, lambda: parent.list(request, *args, **kwargs))  # type: ignore[attr-defined]

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponseBase:
        parent = super()
        return self._from_cache(request, lambda: parent.retrieve(request, *args, **kwargs))  # type: ignore[attr-defined]

    def _from_cache(
        self, request: Request, answer: Callable[[], HttpResponseBase]
    ) -> HttpResponseBase:
        renderer = getattr(request, "accepted_renderer", None)
        if (
            self.response_cache is None
            or request.method not in _SAFE
            or getattr(renderer, "format", None) != "json"
        ):
            return answer()  # the browsable API's HTML is not kept
        uri = f"{request.accepted_media_type}|{request.build_absolute_uri()}"
        key = hashlib.sha256(uri.encode()).hexdigest()[:40]

        def build() -> CachedBody:
            response = answer()
            if response.status_code != 200:
                raise _NotCached(response)
            content = self._rendered(response)
            return CachedBody(content, response["Content-Type"], etag_of(content), time.time())

        try:
            body = self.response_cache.get_or_set(key, build)
        except _NotCached as not_cached:
            return not_cached.response
        response = HttpResponse(body.content, content_type=body.content_type)
        response["ETag"] = body.etag
        response["Last-Modified"] = http_date(body.built_at)
        return response

    def _rendered(self, response: HttpResponseBase) -> bytes:
        """Render a DRF response here, as ``finalize_response`` would have."""
        if getattr(response, "is_rendered", True):
            return response.content  # type: ignore[attr-defined]
        request = self.request  # type: ignore[attr-defined]
        response.accepted_renderer = request.accepted_renderer  # type: ignore[attr-defined]
        response.accepted_media_type = request.accepted_media_type  # type: ignore[attr-defined]
        response.renderer_context = self.get_renderer_context()  # type: ignore[attr-defined]
        response.render()  # type: ignore[attr-defined]
        return response.content  # type: ignore[attr-defined]

    def finalize_response(
        self, request: Request, response: HttpResponseBase, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        if request.method not in _SAFE or response.status_code != 200:
            return response
        if not response.has_header("ETag"):
            response["ETag"] = etag_of(self._rendered(response))
        signed_in = request.user.is_authenticated or request.auth is not None
        response["Cache-Control"] = PRIVATE if signed_in else public_cache_control()
        patch_vary_headers(response, VARY)
        last_modified = response.get("Last-Modified")
        answer = get_conditional_response(
            request,  # type: ignore[arg-type]  # a DRF Request reads as its HttpRequest
            etag=response["ETag"],
            last_modified=parse_http_date_safe(last_modified) if last_modified else None,
            response=cast(HttpResponse, response),
        )
        return answer if answer is not None else response
